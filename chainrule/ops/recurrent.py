"""Recurrent layers as primitives: one LSTM or GRU layer, one direction, over a whole sequence.

What this module lets you do: run a layer of `chainrule.nn.LSTM` / `nn.GRU` as one operation
with a hand-derived backward pass through time, so a training step records one tape node per
layer and direction instead of a dozen per time step. The layout is PyTorch's: gates stacked
along axis 0 of each weight (LSTM `i, f, g, o`; GRU `r, z, n`, with `b_hn` inside the reset
gate's product), sequences `(T, N, features)`.

| primitive | arguments -> results |
|---|---|
| `lstm_layer` | `x, h0, c0, w_ih, w_hh, b_ih, b_hh` -> `ys, h_n, c_n` + residuals `acts, cs, tcs` |
| `lstm_layer_vjp` | arguments, `ys`, residuals, the outputs' cotangents -> a cotangent per argument |
| `gru_layer` | `x, h0, w_ih, w_hh, b_ih, b_hh` -> `ys, h_n` + residuals `rz, n, ghn` |
| `gru_layer_vjp` | likewise |

The residuals are what the backward pass reads (the gates after their nonlinearity, the cell
states and their tanh; for the GRU the hidden part of the candidate's pre-activation): results
of the primitive, so the tape and staged graphs keep them with the node instead of recomputing
them, as a `custom_vjp`'s residuals. Nothing but the VJP primitive consumes them, and the VJP
primitive's own rules treat them as functions of the arguments (their cotangents are zero).

The kernels. The input term `x W_ih^T + b` of every step is one matrix product up front;
each step then does one product `h W_hh^T` and a few elementwise operations in preallocated
buffers. Sigmoid is computed as `(1 + tanh(a/2)) / 2`: the rows of the sigmoid gates in the
weights and biases are halved once (exact in binary floating point), so one `tanh` covers all
gates of a step. The backward pass's NumPy loop folds each gate's derivative into per-step
multipliers computed for all steps at once (vectorised over time), leaving a handful of
operations and one matrix product per step inside the loop; the weight gradients are one
product each after it. With numba installed (`BACKEND = 'auto'`) both time loops run compiled
(`chainrule.ops._recurrent_numba`: one BLAS call and one pass over the gates per step), which on
small hidden sizes is several times faster than a dozen NumPy calls per step.

The equations and their derivatives (`*` elementwise, `s' = s (1 - s)`, `u = tanh(c)`):

    LSTM  c = f c_prev + i g,  h = o u.   With dh, dc the gradients at step t:
          da_o = dh u o(1-o);  dc += dh o (1 - u^2);  da_i = dc g i(1-i);  da_f = dc c_prev f(1-f)
          da_g = dc i (1 - g^2);  dc_prev = dc f;  dh_prev = da W_hh  (plus the output's cotangent)
    GRU   r = s(..), z = s(..), n = tanh(gx_n + r ghn), h = n + z (h_prev - n).
          da_n = dh (1-z)(1-n^2);  da_z = dh (h_prev - n) z(1-z);  da_r = da_n ghn r(1-r)
          the hidden part's gradient is (da_r, da_z, da_n r); dh_prev = dh z + that @ W_hh

Every other rule comes from the composite reference (`lstm_reference`, `gru_reference`: the
same layer written with chainrule's primitives, a dozen per step), so every transform applies:
- reverse mode, eager `Tensor.backward` and `grad`: the kernels (no argument traced);
  under `jit` the VJP primitive is one staged equation that runs the same kernel;
- higher derivatives (`grad(grad)`, `hessian`, `backward(create_graph=True)`): the VJP
  primitive's own VJP is the reverse pass through the reference's reverse pass -- exact, at the
  composite's cost;
- forward mode (`jvp`, `jacfwd`): the reference's tangents (also for the VJP primitive);
- `vmap`: with shared weights the mapped axis joins the batch axis `N` (one kernel call); with
  per-example weights, and for the VJP primitive, the reference runs vectorised.
"""

import numpy as np

from chainrule import ops
from chainrule.core import AllArgs, Primitive, ShapeError, bind, dtype_of, shape_of
from chainrule.ops import _recurrent_numba, nn as _nn
from chainrule.ops.nn import _matmul2d, _workspace

__all__ = ['lstm_layer', 'gru_layer', 'lstm_reference', 'gru_reference']


# --- NumPy kernels -------------------------------------------------------------------------------

# Which loops run the time steps: 'auto' compiles them with numba when it is installed (see
# chainrule.ops._recurrent_numba; much faster on small hidden sizes), 'numpy' always uses the
# NumPy loops below. Results agree to rounding either way.
BACKEND = 'auto'


def _compiled(dtype):
    """The compiled loops for `dtype`, or None (NumPy loops)."""
    if BACKEND == 'numpy' or dtype not in _COMPILED_DTYPES:
        return None
    return _recurrent_numba.kernels(dtype)


_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _gate_scale(kinds, h, dtype):
    """Per gate row: 0.5 for a sigmoid gate ('s'), 1 for a tanh gate ('t')."""
    return np.repeat(np.array([0.5 if k == 's' else 1.0 for k in kinds], dtype), h)


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _previous(ys, first, reverse, scratch=None):
    """The value before each step, in time order: `first` for the first step processed, else
    the neighbouring step's value (one copy; in this thread's workspace `scratch` if named)."""
    out = np.empty_like(ys) if scratch is None else _workspace(scratch, ys.shape, ys.dtype)
    if reverse:
        out[:-1], out[-1] = ys[1:], first
    else:
        out[1:], out[0] = ys[:-1], first
    return out


def _input_weight_grad(dg, inp):
    """`sum over steps and batch of dg^T inp`: one product."""
    return dg.reshape(-1, dg.shape[-1]).T @ inp.reshape(-1, inp.shape[-1])


def _hidden_weight_grad(dg, first, ys, reverse):
    """`sum_t dg_t^T h_prev_t`, h_prev the state before each step (`first` before the first one
    processed): two products, no copy of the shifted states."""
    G, H = dg.shape[-1], ys.shape[-1]
    if reverse:
        out = dg[-1].T @ first
        if len(ys) > 1:
            out += dg[:-1].reshape(-1, G).T @ ys[1:].reshape(-1, H)
    else:
        out = dg[0].T @ first
        if len(ys) > 1:
            out += dg[1:].reshape(-1, G).T @ ys[:-1].reshape(-1, H)
    return out


def _only(needed, args, makers):
    """The cotangents `needed` (the others zeros, never computed: the input's gradient of a
    first layer costs a matrix product over every step)."""
    return tuple(make() if need else np.zeros(a.shape, a.dtype)
                 for need, a, make in zip(needed, args, makers))


def _bias_grad(d):
    flat = d.reshape(-1, d.shape[-1])
    return np.ones(flat.shape[0], d.dtype) @ flat


def _lstm_impl(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, reverse):
    T, N, _ = x.shape
    H = h0.shape[-1]
    scale = _gate_scale('ssts', H, x.dtype)
    shift = 1 - scale                      # sigmoid = tanh(a/2) / 2 + 1/2; tanh gate unchanged
    acts = _matmul2d(x, (w_ih * scale[:, None]).T)     # every step's input term, then in place
    acts += (b_ih + b_hh) * scale
    whh = np.ascontiguousarray((w_hh * scale[:, None]).T)   # (np.dot's fast layout)
    cs, tcs, ys = (np.empty((T, N, H), x.dtype) for _ in range(3))
    k = _compiled(x.dtype)
    if k is not None:
        nb = _recurrent_numba.blocks(4, H)
        k['lstm_forward'](acts, _recurrent_numba.column_blocks(whh, nb),
                          *_recurrent_numba.tiled(scale, shift, N),
                          np.ascontiguousarray(h0), np.ascontiguousarray(c0), ys, cs, tcs,
                          reverse, x.dtype.type(1))
    else:
        _lstm_loop(acts, whh, scale, shift, h0, c0, ys, cs, tcs, reverse)
    last = 0 if reverse else T - 1
    return ys, ys[last].copy(), cs[last].copy(), acts, cs, tcs


def _lstm_loop(acts, whh, scale, shift, h0, c0, ys, cs, tcs, reverse):
    T, N, H = ys.shape
    a4 = acts.reshape(T, N, 4, H)
    i_, f_, g_, o_ = a4[:, :, 0], a4[:, :, 1], a4[:, :, 2], a4[:, :, 3]
    hw = np.empty((N, 4 * H), acts.dtype)
    tmp = np.empty((N, H), acts.dtype)
    h, c = h0, c0
    for t in _steps(T, reverse):
        a = acts[t]
        np.dot(h, whh, out=hw)
        a += hw
        np.tanh(a, out=a)
        a *= scale
        a += shift
        ct = cs[t]
        np.multiply(f_[t], c, out=ct)
        np.multiply(i_[t], g_[t], out=tmp)
        ct += tmp
        np.tanh(ct, out=tcs[t])
        np.multiply(o_[t], tcs[t], out=ys[t])
        h, c = ys[t], ct


def _lstm_vjp_impl(x, h0, c0, w_ih, w_hh, b_ih, b_hh, ys, acts, cs, tcs, gys, gh, gc, *,
                   reverse, needed):
    T, N, _ = x.shape
    H = h0.shape[-1]
    da = _workspace('lstm_da', (T, N, 4 * H), x.dtype)     # (consumed here: scratch memory)
    dh = np.array(gh, x.dtype)
    dc = np.array(gc, x.dtype)
    k = _compiled(x.dtype)
    if k is not None:
        k['lstm_backward'](acts, _previous(cs, c0, reverse, 'lstm_cprev'), tcs,
                           np.ascontiguousarray(gys), dh, dc, _row_blocks(w_hh, 4, H), da, reverse,
                           x.dtype.type(1))
    else:
        _lstm_vjp_loop(da, dh, dc, acts, cs, tcs, c0, w_hh, gys, reverse)
    gb = _bias_grad(da) if needed[5] or needed[6] else None
    return _only(needed, (x, h0, c0, w_ih, w_hh, b_ih, b_hh), (
        lambda: _matmul2d(da, w_ih), lambda: dh, lambda: dc, lambda: _input_weight_grad(da, x),
        lambda: _hidden_weight_grad(da, h0, ys, reverse), lambda: gb, lambda: gb.copy()))


def _row_blocks(w_hh, gates, H):
    """`w_hh` (gates * H, H) as the compiled loops' row blocks (nb, rows, H)."""
    return np.ascontiguousarray(w_hh).reshape(_recurrent_numba.blocks(gates, H), -1, H)


def _lstm_vjp_loop(da, dh, dc, acts, cs, tcs, c0, w_hh, gys, reverse):
    T, N, H = cs.shape
    a4 = acts.reshape(T, N, 4, H)
    i, f, g, o = a4[:, :, 0], a4[:, :, 1], a4[:, :, 2], a4[:, :, 3]
    # per-step multipliers, all steps at once: [da_i, da_f, da_g] = dc * m, da_o = dh * p,
    # and dc gains dh * od
    m = np.empty((T, N, 3, H), da.dtype)
    np.multiply(g, i * (1 - i), out=m[:, :, 0])
    np.multiply(_previous(cs, c0, reverse), f * (1 - f), out=m[:, :, 1])
    np.multiply(i, 1 - g * g, out=m[:, :, 2])
    p = tcs * (o * (1 - o))
    od = o * (1 - tcs * tcs)
    da4 = da.reshape(T, N, 4, H)
    tmp = np.empty((N, H), da.dtype)
    for t in _steps(T, not reverse):
        dh += gys[t]
        np.multiply(dh, p[t], out=da4[t, :, 3])
        np.multiply(dh, od[t], out=tmp)
        dc += tmp
        np.multiply(m[t], dc[:, None, :], out=da4[t, :, :3])
        dc *= f[t]
        np.dot(da[t], w_hh, out=dh)


def _gru_impl(x, h0, w_ih, w_hh, b_ih, b_hh, *, reverse):
    T, N, _ = x.shape
    H = h0.shape[-1]
    scale = _gate_scale('sst', H, x.dtype)
    gx = _matmul2d(x, (w_ih * scale[:, None]).T)
    gx += b_ih * scale
    gx[..., :2 * H] += b_hh[:2 * H] * 0.5        # the hidden biases of r and z join the input's
    whh = np.ascontiguousarray((w_hh * scale[:, None]).T)
    rz = np.empty((T, N, 2 * H), x.dtype)
    n, ghn, ys = (np.empty((T, N, H), x.dtype) for _ in range(3))
    k = _compiled(x.dtype)
    if k is not None:
        k['gru_forward'](gx, _recurrent_numba.column_blocks(whh, _recurrent_numba.blocks(3, H)),
                         np.ascontiguousarray(b_hh[2 * H:]), np.ascontiguousarray(h0),
                         ys, rz, n, ghn, reverse, x.dtype.type(1))
    else:
        _gru_loop(gx, whh, b_hh[2 * H:], h0, ys, rz, n, ghn, reverse)
    return ys, ys[0 if reverse else T - 1].copy(), rz, n, ghn


def _gru_loop(gx, whh, bhn, h0, ys, rz, n, ghn, reverse):
    T, N, H = ys.shape
    gh = np.empty((N, 3 * H), gx.dtype)
    tmp = np.empty((N, H), gx.dtype)
    h = h0
    for t in _steps(T, reverse):
        np.dot(h, whh, out=gh)
        a = rz[t]
        np.add(gx[t, :, :2 * H], gh[:, :2 * H], out=a)
        np.tanh(a, out=a)
        a *= 0.5
        a += 0.5
        hn, nt = ghn[t], n[t]
        np.add(gh[:, 2 * H:], bhn, out=hn)
        np.multiply(a[:, :H], hn, out=nt)
        nt += gx[t, :, 2 * H:]
        np.tanh(nt, out=nt)
        np.subtract(h, nt, out=tmp)
        tmp *= a[:, H:]
        np.add(nt, tmp, out=ys[t])
        h = ys[t]


def _gru_vjp_impl(x, h0, w_ih, w_hh, b_ih, b_hh, ys, rz, n, ghn, gys, gh, *, reverse, needed):
    T, N, _ = x.shape
    H = h0.shape[-1]
    dgh = _workspace('gru_dgh', (T, N, 3 * H), x.dtype)
    dh = np.array(gh, x.dtype)
    k = _compiled(x.dtype)
    if k is not None:
        dgx = _workspace('gru_dgx', dgh.shape, x.dtype)
        k['gru_backward'](rz, n, ghn, _previous(ys, h0, reverse, 'gru_hprev'),
                          np.ascontiguousarray(gys), dh,
                          _row_blocks(w_hh, 3, H), dgh, dgx, reverse, x.dtype.type(1))
    else:
        dgx = _gru_vjp_loop(dgh, dh, ys, h0, rz, n, ghn, w_hh, gys, reverse)
    return _only(needed, (x, h0, w_ih, w_hh, b_ih, b_hh), (
        lambda: _matmul2d(dgx, w_ih), lambda: dh, lambda: _input_weight_grad(dgx, x),
        lambda: _hidden_weight_grad(dgh, h0, ys, reverse), lambda: _bias_grad(dgx),
        lambda: _bias_grad(dgh)))


def _gru_vjp_loop(dgh, dh, ys, h0, rz, n, ghn, w_hh, gys, reverse):
    T, N, H = n.shape
    r, z = rz[..., :H], rz[..., H:]
    pn = (1 - z) * (1 - n * n)                           # da_n per dh
    # the hidden part's gradient per dh: [da_r, da_z, da_n r]
    m = np.empty((T, N, 3, H), n.dtype)
    np.multiply(pn * ghn, r * (1 - r), out=m[:, :, 0])
    np.multiply(_previous(ys, h0, reverse) - n, z * (1 - z), out=m[:, :, 1])
    np.multiply(pn, r, out=m[:, :, 2])
    dgh4 = dgh.reshape(T, N, 3, H)
    dhs = np.empty((T, N, H), n.dtype)
    tmp = np.empty((N, H), n.dtype)
    for t in _steps(T, not reverse):
        d = dhs[t]
        np.add(dh, gys[t], out=d)
        np.multiply(m[t], d[:, None, :], out=dgh4[t])
        np.dot(dgh[t], w_hh, out=tmp)
        np.multiply(d, z[t], out=dh)
        dh += tmp
    dgx = dgh.copy()
    np.multiply(dhs, pn, out=dgx.reshape(T, N, 3, H)[:, :, 2])
    return dgx


# --- the composite reference: the same layers in chainrule's primitives ------------------------
# Each per-step value keeps a leading axis of length 1, so the steps come out of one split and
# go back with one concatenate (slicing step by step would make reverse mode quadratic in T).

def _time_steps(v, T):
    return ops.split(v, range(1, T), 0) if T > 1 else [v]


def _stack_steps(vs):
    return ops.concatenate(vs, axis=0) if len(vs) > 1 else vs[0]


def _reference(step, x, states, w_ih, w_hh, b_ih, b_hh, reverse, n_res):
    T = shape_of(x)[0]
    gx = _time_steps(_nn.linear(x, w_ih, b_ih), T)
    state = [ops.reshape(s, (1,) + tuple(shape_of(s))) for s in states]
    ys, res = [None] * T, [[None] * T for _ in range(n_res)]
    for t in _steps(T, reverse):
        state, saved = step(gx[t], state, w_hh, b_hh)
        ys[t] = state[0]
        for r, v in zip(res, saved):
            r[t] = v
    finals = [ops.reshape(s, tuple(shape_of(s))[1:]) for s in state]
    return [_stack_steps(ys)] + finals + [_stack_steps(r) for r in res]


def _lstm_ref_step(gx, state, w_hh, b_hh):
    h, c = state
    H = shape_of(h)[-1]
    i, f, g, o = ops.split(gx + _nn.linear(h, w_hh, b_hh), (H, 2 * H, 3 * H), -1)
    i, f, g, o = _nn.sigmoid(i), _nn.sigmoid(f), ops.tanh(g), _nn.sigmoid(o)
    c = f * c + i * g
    u = ops.tanh(c)
    h = o * u
    return [h, c], [ops.concatenate([i, f, g, o], axis=-1), c, u]


def _gru_ref_step(gx, state, w_hh, b_hh):
    h, = state
    H = shape_of(h)[-1]
    rx, zx, nx = ops.split(gx, (H, 2 * H), -1)
    rh, zh, nh = ops.split(_nn.linear(h, w_hh, b_hh), (H, 2 * H), -1)
    r, z = _nn.sigmoid(rx + rh), _nn.sigmoid(zx + zh)
    n = ops.tanh(nx + r * nh)
    h = n + z * (h - n)                         # (1 - z) * n + z * h
    return [h], [ops.concatenate([r, z], axis=-1), n, nh]


def lstm_reference(x, h0, c0, w_ih, w_hh, b_ih, b_hh, *, reverse=False):
    """The `lstm_layer` primitive's results, `[ys, h_n, c_n, acts, cs, tcs]`, as a composite
    of chainrule's primitives (about a dozen per step): the reference the primitive is tested
    against and the source of its rules for every transform but plain reverse mode."""
    return _reference(_lstm_ref_step, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, reverse, 3)


def gru_reference(x, h0, w_ih, w_hh, b_ih, b_hh, *, reverse=False):
    """The `gru_layer` primitive's results, `[ys, h_n, rz, n, ghn]`, as a composite (see
    `lstm_reference`)."""
    return _reference(_gru_ref_step, x, (h0,), w_ih, w_hh, b_ih, b_hh, reverse, 3)


# --- the rules ---------------------------------------------------------------------------------

class _Layer:
    """One recurrent cell kind: how many arguments and visible results its layer primitive
    has, its reference composite, and the pair of primitives (the layer, its VJP)."""

    def __init__(self, name, n_states, gates, impl, vjp_impl, reference):
        self.name, self.n_states, self.gates = name, n_states, gates
        self.n_in = n_states + 5                 # x, states, w_ih, w_hh, b_ih, b_hh
        self.n_out = n_states + 1                # ys, final states
        self.reference = reference
        self.prim = Primitive(
            name, impl, multiple_results=True, shape=self._shape,
            vjp=AllArgs(self._vjp), jvp=self._jvp, batch=self._batch,
            doc=f'One {name[:-6].upper()} layer (one direction) over a sequence, with residuals '
                'for its VJP (see chainrule.ops.recurrent).')
        self.vjp_prim = Primitive(
            name + '_vjp', vjp_impl, multiple_results=True, shape=self._vjp_shape,
            vjp=AllArgs(self._vjp_vjp), jvp=self._vjp_jvp, batch=self._vjp_batch,
            doc=f'The VJP of {name}: backpropagation through time with its residuals.')

    # shapes: x (T, N, I), states (N, H), weights (G H, I) and (G H, H), biases (G H,)
    def _shape(self, x, *rest, reverse):
        T, N, _ = x.shape
        H = rest[0].shape[-1]
        dt = x.dtype
        seq, state = (T, N, H), (N, H)
        res = [(T, N, 4 * H), seq, seq] if self.n_states == 2 else [(T, N, 2 * H), seq, seq]
        return [(s, dt) for s in [seq] + [state] * self.n_states + res]

    def _vjp_shape(self, *args, reverse, needed):
        if len(needed) != self.n_in:
            raise ValueError(f'{self.name}_vjp: needed must give {self.n_in} flags, got '
                             f'{len(needed)}')
        return [(a.shape, a.dtype) for a in args[:self.n_in]]

    def _split_vjp_args(self, args):
        n = self.n_in
        return args[:n], args[n:n + 4], args[n + 4:]     # arguments, ys + residuals, cotangents

    # reverse mode: the NumPy kernel, one primitive (staged as one equation under jit)
    def _vjp(self, needed, g, out, *args, reverse):
        k = self.n_out
        return tuple(bind(self.vjp_prim, *args, out[0], *out[k:], *g[:k], reverse=reverse,
                          needed=tuple(bool(n) for n in needed)))

    # forward mode, vmap fallbacks and higher derivatives: the reference composite
    def _ref(self, args, reverse):
        return list(self.reference(*args, reverse=reverse))

    def _ref_vjp(self, args, reverse):
        """The reference's reverse pass: the cotangents of the arguments (zeros where none
        flows) from `args` = the VJP primitive's arguments (its residuals unused)."""
        from chainrule.custom import pull_back
        prim_args, _, cts = self._split_vjp_args(list(args))
        k = self.n_out
        got = pull_back(lambda xs: self._ref(xs, reverse)[:k], prim_args, list(cts))
        return [ops.zeros_like(a) if c is None else c for c, a in zip(got, prim_args)]

    def _jvp(self, tangents, out, *args, reverse):
        from chainrule.interpreters.forward import jvp_flat
        return tuple(jvp_flat(lambda *xs: self._ref(xs, reverse), list(args),
                              list(tangents))[1])

    def _vjp_jvp(self, tangents, out, *args, reverse, needed):
        from chainrule.interpreters.forward import jvp_flat
        return tuple(jvp_flat(lambda *xs: self._ref_vjp(xs, reverse), list(args),
                              list(tangents))[1])

    def _vjp_vjp(self, wanted, g, out, *args, reverse, needed):
        from chainrule.custom import pull_back
        got = pull_back(lambda xs: self._ref_vjp(xs, reverse), list(args), list(g))
        return tuple(ops.zeros_like(a) if c is None else c for c, a in zip(got, args))

    # vmap: shared weights -> the mapped axis joins the batch axis; otherwise the reference
    def _batch(self, args, dims, *, reverse):
        n_s = self.n_states
        if any(d is not None for d in dims[n_s + 1:]):
            return _vectorised(lambda *xs: self._ref(xs, reverse), args, dims)
        B = next(shape_of(a)[0] for a, d in zip(args, dims) if d is not None)
        x = args[0]
        T, N = shape_of(x)[-3:-1]
        if dims[0] is None:
            x = ops.broadcast_to(x, (B,) + tuple(shape_of(x)))
        x = ops.reshape(ops.transpose(x, (1, 0, 2, 3)), (T, B * N, -1))
        states = [ops.reshape(s if d is not None else
                              ops.broadcast_to(s, (B,) + tuple(shape_of(s))), (B * N, -1))
                  for s, d in zip(args[1:n_s + 1], dims[1:n_s + 1])]
        out = bind(self.prim, x, *states, *args[n_s + 1:], reverse=reverse)
        dims = [0 if 1 <= j <= n_s else 1 for j in range(len(out))]   # states: (N, H)
        return [ops.reshape(o, (B, N, -1) if d == 0 else (T, B, N, -1))
                for o, d in zip(out, dims)], dims

    def _vjp_batch(self, args, dims, *, reverse, needed):
        return _vectorised(lambda *xs: self._ref_vjp(xs, reverse), args, dims)


def _vectorised(fn, args, dims):
    """`fn` (a list-valued function) mapped over `args` by vmap: `(results, their axes)`."""
    from chainrule.interpreters.batching import vmap_flat
    outs, out_dims, _ = vmap_flat(lambda *xs: list(fn(*xs)), list(args), list(dims))
    return outs, out_dims


_LSTM = _Layer('lstm_layer', 2, 4, _lstm_impl, _lstm_vjp_impl, lstm_reference)
_GRU = _Layer('gru_layer', 1, 3, _gru_impl, _gru_vjp_impl, gru_reference)
lstm_layer_p, lstm_layer_vjp_p = _LSTM.prim, _LSTM.vjp_prim
gru_layer_p, gru_layer_vjp_p = _GRU.prim, _GRU.vjp_prim


# --- the wrappers --------------------------------------------------------------------------------

def _check(layer, x, states, w_ih, w_hh, b_ih, b_hh):
    op, G = layer.name, layer.gates
    sx, sw, sv = shape_of(x), shape_of(w_ih), shape_of(w_hh)
    ss = [shape_of(s) for s in states]
    H = sv[-1] if len(sv) == 2 else None
    ok = (len(sx) == 3 and sx[0] > 0 and len(sw) == 2 and H is not None and
          sv == (G * H, H) and sw == (G * H, sx[2]) and all(s == (sx[1], H) for s in ss) and
          shape_of(b_ih) == (G * H,) and shape_of(b_hh) == (G * H,))
    if not ok:
        names = ['h0', 'c0'][:len(states)]
        raise ShapeError(
            f'{op}: input {sx}, ' + ', '.join(f'{n} {s}' for n, s in zip(names, ss)) +
            f', weight_ih {sw}, weight_hh {sv}, bias_ih {shape_of(b_ih)}, bias_hh '
            f'{shape_of(b_hh)} do not fit: expected input (T, N, I) with T > 0, states (N, H), '
            f'weight_ih ({G}H, I), weight_hh ({G}H, H) and biases ({G}H,)')


def _run(layer, x, states, w_ih, w_hh, b_ih, b_hh, reverse):
    dt = dtype_of(w_ih)
    b_ih = np.zeros(shape_of(w_ih)[:1], dt) if b_ih is None else b_ih
    b_hh = np.zeros(shape_of(w_ih)[:1], dt) if b_hh is None else b_hh
    _check(layer, x, states, w_ih, w_hh, b_ih, b_hh)
    args = _nn._same_dtype((x, *states, w_ih, w_hh, b_ih, b_hh))
    if np.dtype(dtype_of(args[0])).kind != 'f':
        raise TypeError(f'{layer.name}: needs real floating-point arrays, got '
                        f'{dtype_of(args[0])}')
    out = bind(layer.prim, *args, reverse=bool(reverse))
    return out[:layer.n_out]


def lstm_layer(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One LSTM layer in one direction over a whole sequence, PyTorch's equations and layout.

    Args:
        x: the input sequence `(T, N, I)`.
        h0, c0: the initial hidden and cell states `(N, H)`.
        w_ih, w_hh: weights `(4H, I)` and `(4H, H)`, gates `i, f, g, o` stacked along axis 0.
        b_ih, b_hh: biases `(4H,)`, or None for none.
        reverse: run from the last step to the first (the reverse direction of a
            bidirectional layer); `ys` stays in time order.

    Returns:
        `(ys, h_n, c_n)`: the hidden state at every step `(T, N, H)` and the final states.
    """
    return _run(_LSTM, x, (h0, c0), w_ih, w_hh, b_ih, b_hh, reverse)


def gru_layer(x, h0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False):
    """One GRU layer in one direction over a whole sequence (gates `r, z, n`, `b_hn` inside the
    reset gate's product, as PyTorch). Arguments as `lstm_layer` with 3H gate rows and no
    cell state; returns `(ys, h_n)`."""
    return _run(_GRU, x, (h0,), w_ih, w_hh, b_ih, b_hh, reverse)
