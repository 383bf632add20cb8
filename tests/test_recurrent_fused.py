"""The fused recurrent primitives (`chainrule.ops.recurrent`: `lstm_layer`, `gru_layer` and
their VJPs) against the composite reference (`lstm_reference`, `gru_reference`: the same layer
as a dozen primitives per step) and against finite differences, under every transform: reverse
mode eager and functional, `jit` (the VJP staged as one equation), `vmap` (shared weights fold
into the batch; per-example weights use the reference), forward mode, Jacobians, second
derivatives, `Tensor.backward` with `create_graph`, `retain_graph` and hooks. The layers against
PyTorch are in test_recurrent.py; here the modules' fused path is also checked against their
composite path (`fused = False`)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import nn
from chainrule.core import ShapeError
from chainrule.ops import recurrent as rec
from chainrule.testing import check_grads

@pytest.fixture(params=['numpy', 'numba'])
def backend(request, monkeypatch):
    """The time loops: NumPy's, or compiled by numba (skipped without it)."""
    if request.param == 'numba':
        pytest.importorskip('numba', reason='numba compiles the fast time loops (extra: jit)')
        monkeypatch.setattr(rec, 'BACKEND', 'auto')
    else:
        monkeypatch.setattr(rec, 'BACKEND', 'numpy')
    return request.param


KINDS = {'lstm': (rec.lstm_layer, rec.lstm_reference, 4, 2),
         'gru': (rec.gru_layer, rec.gru_reference, 3, 1)}
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _args(kind, T, N, I, H, dtype=np.float64, seed=0):
    """`x, states..., w_ih, w_hh, b_ih, b_hh` for one layer, moderate values."""
    _, _, G, S = KINDS[kind]
    rng = np.random.default_rng(seed)
    shapes = [(T, N, I)] + [(N, H)] * S + [(G * H, I), (G * H, H), (G * H,), (G * H,)]
    return [(rng.standard_normal(s) * (0.6 if i > S else 1.0)).astype(dtype)
            for i, s in enumerate(shapes)]


def _fused(kind, reverse=False):
    return lambda *a: list(KINDS[kind][0](*a, reverse=reverse))


def _ref(kind, reverse=False):
    """The reference's visible results (its residuals dropped)."""
    n = KINDS[kind][3] + 1
    return lambda *a: KINDS[kind][1](*a, reverse=reverse)[:n]


def _loss(fn, seed=3):
    """A scalar mixing every result with fixed random weights."""
    def loss(*a):
        outs = fn(*a)
        rng = np.random.default_rng(seed)
        return sum(cnp.sum(o * rng.standard_normal(o.shape)) for o in outs)
    return loss


def _close(a, b, tol):
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol)


# --- the kernels against the reference ------------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.float32, np.float64], ids=['f32', 'f64'])
@pytest.mark.parametrize('reverse', [False, True], ids=['fwd', 'rev'])
@pytest.mark.parametrize('kind', sorted(KINDS))
def test_values_residuals_and_every_cotangent_equal_the_reference(kind, reverse, dtype,
                                                                  backend):
    L = rec._LSTM if kind == 'lstm' else rec._GRU
    args = _args(kind, 5, 3, 4, 6, dtype)
    out = L.prim.impl(*args, reverse=reverse)
    want = L.reference(*args, reverse=reverse)
    _close(out, want, TOL[dtype])                # the residuals too
    assert all(o.dtype == dtype for o in out)
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal(o.shape).astype(dtype) for o in out[:L.n_out]]
    got = L.vjp_prim.impl(*args, out[0], *out[L.n_out:], *gs, reverse=reverse,
                          needed=(True,) * len(args))
    _, pull = cr.vjp(lambda *a: _ref(kind, reverse)(*a), *args)
    want = pull(gs)
    _close(got, want, TOL[dtype])
    assert [g.shape for g in got] == [a.shape for a in args]
    # only the cotangents asked for are computed (the others come as zeros)
    needed = tuple(i % 2 == 1 for i in range(len(args)))
    some = L.vjp_prim.impl(*args, out[0], *out[L.n_out:], *gs, reverse=reverse, needed=needed)
    _close([s for s, n in zip(some, needed) if n], [w for w, n in zip(want, needed) if n],
           TOL[dtype])
    assert not any(s.any() for s, n in zip(some, needed) if not n)


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), T=st.integers(1, 6), N=st.integers(1, 4),
       I=st.integers(1, 5), H=st.integers(1, 5), reverse=st.booleans(),
       seed=st.integers(0, 2**16), numpy_loops=st.booleans())
def test_any_shape_grad_equals_the_reference(kind, T, N, I, H, reverse, seed, numpy_loops):
    old, rec.BACKEND = rec.BACKEND, 'numpy' if numpy_loops else 'auto'
    try:
        _any_shape(kind, T, N, I, H, reverse, seed)
    finally:
        rec.BACKEND = old


def _any_shape(kind, T, N, I, H, reverse, seed):
    args = _args(kind, T, N, I, H, seed=seed)
    argnums = tuple(range(len(args)))
    v, g = cr.value_and_grad(_loss(_fused(kind, reverse)), argnums=argnums)(*args)
    v0, g0 = cr.value_and_grad(_loss(_ref(kind, reverse)), argnums=argnums)(*args)
    np.testing.assert_allclose(v, v0, rtol=1e-10)
    _close(g, g0, TOL[np.float64])


@pytest.mark.parametrize('reverse', [False, True], ids=['fwd', 'rev'])
@pytest.mark.parametrize('kind', sorted(KINDS))
def test_derivatives_to_second_order_match_finite_differences(kind, reverse):
    # order 2 in both modes: the VJP kernel, the forward rule and the VJP primitive's own rules
    args = _args(kind, 3, 2, 2, 2)
    check_grads(_loss(_fused(kind, reverse)), tuple(args), order=2, modes=('rev', 'fwd'))


# --- transforms -------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', sorted(KINDS))
def test_jit_of_grad_stages_the_kernels_and_agrees(kind):
    args = _args(kind, 4, 3, 2, 3)
    argnums = tuple(range(len(args)))
    f = cr.grad(_loss(_fused(kind)), argnums=argnums)
    jf = cr.jit(f)
    _close(jf(*args), f(*args), TOL[np.float64])
    _close(jf(*args), cr.grad(_loss(_ref(kind)), argnums=argnums)(*args), TOL[np.float64])
    src = jf.source(*args)
    assert f'_{kind}_layer_vjp_impl(' in src and f'_{kind}_layer_impl(' in src


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_saved_graph_runs_the_layer_and_its_gradient(kind, tmp_path):
    args = _args(kind, 3, 2, 2, 3)
    g = cr.grad(_loss(_fused(kind)), argnums=(0, 1))
    path = tmp_path / 'rnn.crg'
    cr.export(g, *args).save(path)
    loaded = cr.load_graph(path)
    _close(loaded(*args), g(*args), TOL[np.float64])


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_vmap_with_shared_weights_folds_into_the_batch(kind):
    args = _args(kind, 4, 2, 3, 3)
    S = KINDS[kind][3]
    xs = np.stack([args[0], args[0][::-1] * 0.5, args[0] + 1.0])     # (B, T, N, I)
    f = lambda x: _fused(kind)(x, *args[1:])                          # noqa: E731
    got = cr.vmap(f)(xs)
    for b in range(3):
        _close([o[b] for o in got], _ref(kind)(xs[b], *args[1:]), TOL[np.float64])
    # the initial states mapped too, along another axis
    hs = np.stack([args[1], -args[1]], axis=1)                         # (N, B, H)
    f2 = lambda h: _fused(kind)(args[0], h, *args[2:])                 # noqa: E731
    got = cr.vmap(f2, in_axes=1)(hs)
    for b in range(2):
        _close([o[b] for o in got], _ref(kind)(args[0], hs[:, b], *args[2:]), TOL[np.float64])
    assert S in (1, 2)


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_per_example_gradients_under_vmap(kind):
    # vmap(grad): the VJP primitive under vmap (per-example weight gradients); and per-example
    # weights (the forward primitive's reference path)
    args = _args(kind, 3, 2, 2, 3)
    xs = np.stack([args[0], args[0] * -0.7])
    grad_w = cr.grad(lambda x, w: _loss(_fused(kind))(x, *args[1:-4], w, *args[-3:]), argnums=1)
    got = cr.vmap(grad_w, in_axes=(0, None))(xs, args[-4])
    ws = np.stack([args[-4], args[-4] * 0.5])
    got2 = cr.vmap(grad_w)(xs, ws)
    ref_w = cr.grad(lambda x, w: _loss(_ref(kind))(x, *args[1:-4], w, *args[-3:]), argnums=1)
    for b in range(2):
        np.testing.assert_allclose(got[b], ref_w(xs[b], args[-4]), **TOL[np.float64])
        np.testing.assert_allclose(got2[b], ref_w(xs[b], ws[b]), **TOL[np.float64])


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_jacobians_forward_and_reverse_agree_with_the_reference(kind):
    args = _args(kind, 3, 2, 2, 2)
    f = lambda x: _fused(kind, True)(x, *args[1:])[0]                 # noqa: E731
    fr = lambda x: _ref(kind, True)(x, *args[1:])[0]                  # noqa: E731
    jf, jr, j0 = cr.jacfwd(f)(args[0]), cr.jacrev(f)(args[0]), cr.jacrev(fr)(args[0])
    np.testing.assert_allclose(jf, j0, **TOL[np.float64])
    np.testing.assert_allclose(jr, j0, **TOL[np.float64])


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_hessian_equals_the_reference(kind):
    args = _args(kind, 2, 2, 2, 2)
    f = lambda w: _loss(_fused(kind))(*args[:-3], w, *args[-2:])       # w_hh # noqa: E731
    fr = lambda w: _loss(_ref(kind))(*args[:-3], w, *args[-2:])        # noqa: E731
    np.testing.assert_allclose(cr.hessian(f)(args[-3]), cr.hessian(fr)(args[-3]),
                               **TOL[np.float64])


# --- the modules: fused path against the composite path ------------------------------------------

MODULE_CASES = [('LSTM', 1, False, False, True), ('LSTM', 2, True, True, True),
                ('LSTM', 3, False, False, False), ('GRU', 1, False, True, True),
                ('GRU', 2, True, False, False), ('GRU', 2, False, True, True)]


def _module_run(m, x, h, fused, create_graph=False):
    """Output, final states and every gradient (input, initial states, parameters) of one
    training-style step, with the path chosen."""
    m.fused = fused
    x = cr.tensor(x, requires_grad=True)
    hx = tuple(cr.tensor(s, requires_grad=True) for s in h)
    cr.manual_seed(5)                                    # the same dropout masks
    out, fin = m(x, hx if len(hx) == 2 else hx[0])
    fin = fin if isinstance(fin, tuple) else (fin,)
    rng = np.random.default_rng(2)
    loss = (out * rng.standard_normal(out.shape)).sum() + sum(
        (f * rng.standard_normal(f.shape)).sum() for f in fin)
    loss.backward(create_graph=create_graph)
    grads = [x.grad] + [s.grad for s in hx] + [p.grad for p in m.parameters()]
    return [out, *fin], grads, m


@pytest.mark.parametrize('dtype', [np.float32, np.float64], ids=['f32', 'f64'])
@pytest.mark.parametrize('case', MODULE_CASES, ids=lambda c: '-'.join(map(str, c)))
def test_module_fused_path_equals_the_composite_path(case, dtype, backend):
    kind, layers, bidir, batch_first, bias = case
    m = getattr(nn, kind)(3, 4, num_layers=layers, bidirectional=bidir, batch_first=batch_first,
                          bias=bias, dropout=0.3 if layers > 1 else 0.0, dtype=dtype, rng=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 3) if batch_first else (5, 2, 3)).astype(dtype)
    dirs = 2 if bidir else 1
    h = [rng.standard_normal((layers * dirs, 2, 4)).astype(dtype)
         for _ in range(2 if kind == 'LSTM' else 1)]
    outs, grads, _ = _module_run(m, x, h, True)
    for p in m.parameters():
        p.grad = None
    outs0, grads0, _ = _module_run(m, x, h, False)
    _close([o.numpy() for o in outs], [o.numpy() for o in outs0], TOL[dtype])
    _close([g.numpy() for g in grads], [g.numpy() for g in grads0], TOL[dtype])
    assert all(o.dtype == dtype for o in outs)


@pytest.mark.parametrize('kind', ['LSTM', 'GRU'])
def test_double_backward_through_the_module(kind):
    # create_graph=True: the gradient is itself differentiable (through the reference)
    m = getattr(nn, kind)(2, 3, dtype=np.float64, rng=0)
    x = np.random.default_rng(1).standard_normal((3, 2, 2))
    results = []
    for fused in (True, False):
        m.fused = fused
        for p in m.parameters():
            p.grad = None
        xt = cr.tensor(x, requires_grad=True)
        out, _ = m(xt)
        (gx,) = cr.autograd.grad((out ** 2).sum(), [xt], create_graph=True)
        (gx * gx).sum().backward()
        results.append([xt.grad.numpy()] + [p.grad.numpy() for p in m.parameters()])
    _close(results[0], results[1], TOL[np.float64])


def test_retain_graph_and_hooks_on_the_outputs():
    m = nn.LSTM(2, 3, dtype=np.float64, rng=0)
    x = cr.tensor(np.random.default_rng(1).standard_normal((4, 2, 2)), requires_grad=True)
    out, (h, c) = m(x)
    seen = []
    out.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 2)
    loss = out.sum() + c.sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()                                     # a second time: gradients accumulate
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-12)
    assert len(seen) == 2 and np.all(seen[0] == 1)
    # the hook doubled the output's cotangent: compare with the composite path, doubled by hand
    m.fused = False
    x0 = cr.tensor(x.numpy(), requires_grad=True)
    out0, (_, c0) = m(x0)
    (2 * out0.sum() + c0.sum()).backward()
    np.testing.assert_allclose(first, x0.grad.numpy(), rtol=1e-10)
    with pytest.raises(cr.GradientError, match='second time'):
        out2, _ = nn.LSTM(2, 3, dtype=np.float64, rng=0)(x)
        out2.sum().backward()
        out2.sum().backward()


def test_the_training_step_records_one_node_per_layer_and_direction():
    m = nn.GRU(2, 3, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    out, _ = m(np.ones((50, 1, 2)))
    seen, names, stack = set(), [], [out._node]
    while stack:
        n = stack.pop()
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        names.append(n.prim.name if n.prim is not None else 'leaf')
        stack.extend(n.parents)
    assert names.count('gru_layer') == 4, names
    assert len(seen) < 40, f'{len(seen)} nodes for 50 steps: the layers did not fuse'


def test_the_compiled_loops_are_used_when_numba_is_installed():
    pytest.importorskip('numba', reason='numba compiles the fast time loops (extra: jit)')
    from chainrule.ops import _recurrent_numba
    assert rec.BACKEND == 'auto'
    assert set(_recurrent_numba.kernels(np.float32)) == {
        'lstm_forward', 'lstm_backward', 'gru_forward', 'gru_backward', 'tanh_into'}
    assert rec._compiled(np.dtype(np.float64)) is not None
    assert rec._compiled(np.dtype(np.float16)) is None           # (NumPy loops)


@pytest.mark.parametrize('kind,H', [('lstm', 100), ('gru', 130)])
def test_wide_hidden_products_split_in_blocks_agree_with_the_numpy_loops(kind, H, monkeypatch):
    pytest.importorskip('numba', reason='numba compiles the fast time loops (extra: jit)')
    from chainrule.ops import _recurrent_numba
    L = rec._LSTM if kind == 'lstm' else rec._GRU
    assert _recurrent_numba.blocks(L.gates, H) > 1
    args = _args(kind, 3, 2, 3, H, seed=4)
    args[L.n_states + 2] *= 0.1                                # w_hh: moderate values
    gs = [np.random.default_rng(5).standard_normal(o.shape) for o in
          L.prim.impl(*args, reverse=True)[:L.n_out]]
    results = []
    for backend in ('auto', 'numpy'):
        monkeypatch.setattr(rec, 'BACKEND', backend)
        out = L.prim.impl(*args, reverse=True)
        cts = L.vjp_prim.impl(*args, out[0], *out[L.n_out:], *gs, reverse=True,
                              needed=(True,) * len(args))
        results.append(list(out) + list(cts))
    _close(results[0], results[1], TOL[np.float64])


def test_the_float32_tanh_of_the_compiled_loops_is_within_a_few_ulps():
    pytest.importorskip('numba', reason='numba compiles the fast time loops (extra: jit)')
    from chainrule.ops import _recurrent_numba
    k = _recurrent_numba.kernels(np.float32)
    x = np.concatenate([np.linspace(-12, 12, 20001), [0.0, -0.0, 1e-30, 50.0, -50.0, np.nan]])
    x = x.astype(np.float32)
    y = np.empty_like(x)
    k['tanh_into'](x.copy(), y)
    want = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(y[:-1], want[:-1], rtol=0, atol=4e-7)
    assert np.isnan(y[-1]) and y[-3] == 1 and y[-2] == -1


def test_bad_shapes_are_refused_naming_the_op():
    args = _args('lstm', 3, 2, 2, 3)
    with pytest.raises(ShapeError, match=r'lstm_layer: input \(3, 2, 2\).*weight_hh \(12, 2\)'):
        rec.lstm_layer(*args[:4], args[4][:, :2], *args[5:])
    with pytest.raises(ShapeError, match='gru_layer.*T > 0'):
        rec.gru_layer(np.zeros((0, 2, 2)), *_args('gru', 3, 2, 2, 3)[1:])
    with pytest.raises(TypeError, match='gru_layer: needs real floating'):
        rec.gru_layer(*[a.astype(np.int64) for a in _args('gru', 3, 2, 2, 3)])
