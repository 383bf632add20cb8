"""Compiled time loops for `chainrule.ops.recurrent`, used when numba is installed.

What this module lets you do: run the per-step part of an LSTM or GRU layer (forward and
backward through time) as one compiled loop per layer instead of a dozen NumPy calls per step.
On small hidden sizes each NumPy call costs about a microsecond of overhead for a few hundred
multiply-adds, so the per-step calls, not the arithmetic, set the time; compiled, a step is one
`np.dot` (BLAS) and one pass over the gates. The matrix products over all steps (the input
term, the weight gradients) stay in `chainrule.ops.recurrent`, in NumPy.

The kernels read and write the same buffers as the NumPy loops there (the same residuals:
the gates after their nonlinearity, `c`, `tanh(c)`; for the GRU `r, z`, `n`, the hidden part of
the candidate's pre-activation), from the unscaled pre-activations. float64 uses libm's `tanh`;
float32 uses a rational approximation of `tanh` that the compiler vectorises (libm's scalar
`tanhf` costs more than the whole step otherwise), within a few float32 ulps (max absolute error
3.5e-7 on [-12, 12]; measured against float64 `tanh`), with the arithmetic in float32.

numba is an optional dependency (`pip install chainrule[jit]`); `kernels(dtype)` returns None
without it, and the kernels are compiled once per process and dtype on first use.
"""

import numpy as np

_compiled = {}      # dtype -> the kernels of that dtype, or None when numba is missing


# tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], saturating beyond: the float32 rational approximation
# also used by Eigen (coefficients from its `ptanh_float`)
_TANH_CLAMP = 7.90531110763549805
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
           5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
           4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
           4.89352518554385e-03)


def blocks(gates, hidden):
    """How many column blocks the hidden product of a step is split into: whole gates, each
    block at most 384 columns where the gates allow."""
    for nb in range(1, gates + 1):
        if gates % nb == 0 and gates * hidden // nb <= 384:
            return nb
    return gates


def column_blocks(w_t, nb):
    """`w_t` (K, nb * C) as `nb` contiguous column blocks, an array (nb, K, C)."""
    k, n = w_t.shape
    return np.ascontiguousarray(w_t.reshape(k, nb, n // nb).transpose(1, 0, 2))


_tiles = {}


def tiled(scale, shift, n):
    """`scale` and `shift` repeated for `n` rows (cached: the same few shapes recur)."""
    key = (scale.tobytes(), scale.dtype, n)
    got = _tiles.get(key)
    if got is None:
        if len(_tiles) > 64:
            _tiles.clear()
        got = _tiles[key] = (np.tile(scale, n), np.tile(shift, n))
    return got


def kernels(dtype):
    """The compiled loops for `dtype` (float32 or float64) as a dict, or None when numba is
    not installed."""
    dtype = np.dtype(dtype)
    if dtype not in _compiled:
        try:
            import numba
        except ImportError:
            _compiled[dtype] = None
        else:
            _compiled[dtype] = _build(numba, dtype.type)
    return _compiled[dtype]


def _build(numba, dt):
    njit = numba.njit(cache=False, error_model='numpy')
    half, one = dt(0.5), dt(1.0)
    clamp = dt(_TANH_CLAMP)
    p6, p5, p4, p3, p2, p1, p0 = (dt(c) for c in _TANH_P)
    q3, q2, q1, q0 = (dt(c) for c in _TANH_Q)

    if dt is np.float32:
        @njit
        def tanh(x):
            if x > clamp:       # (comparisons, so a NaN stays NaN)
                x = clamp
            elif x < -clamp:
                x = -clamp
            x2 = x * x
            p = ((((((p6 * x2 + p5) * x2 + p4) * x2 + p3) * x2 + p2) * x2 + p1) * x2 + p0) * x
            return p / (((q3 * x2 + q2) * x2 + q1) * x2 + q0)
    else:
        @njit
        def tanh(x):
            return np.tanh(x)

    # The loops that call `tanh` run over flat, contiguous rows with the result written in
    # place or to one other array, which the compiler vectorises; the sigmoid gates' rows of the
    # weights and biases come halved (as for the NumPy loops), so one `tanh` serves every gate:
    # sigmoid(x) = tanh(x / 2) / 2 + 1/2, the `scale` and `shift` per entry of a step's gates.

    # The hidden product of a step, `h @ W` with W in column blocks `wb` (nb, H, C) (the
    # backward's `d @ W^T` with W^T in row blocks (nb, C, H)): one BLAS call per block. Wide
    # products (4H = 512 columns for H = 128) run at half the speed of two half-width ones.
    @njit
    def hidden_product(h, wb):
        nb, _, C = wb.shape
        if nb == 1:
            return np.dot(h, wb[0])
        out = np.empty((h.shape[0], nb * C), h.dtype)
        for b in range(nb):
            out[:, b * C:(b + 1) * C] = np.dot(h, wb[b])
        return out

    @njit
    def hidden_product_t(d, wb):
        nb, C, _ = wb.shape
        if nb == 1:
            return np.dot(d, wb[0])
        acc = np.dot(np.ascontiguousarray(d[:, :C]), wb[0])
        for b in range(1, nb):
            acc += np.dot(np.ascontiguousarray(d[:, b * C:(b + 1) * C]), wb[b])
        return acc

    @njit
    def activate(a, hw, scale, shift):
        for k in range(a.size):
            a[k] = tanh(a[k] + hw[k]) * scale[k] + shift[k]

    @njit
    def tanh_into(src, dst):
        for k in range(src.size):
            dst[k] = tanh(src[k])

    @njit
    def lstm_forward(acts, whh_t, scale, shift, h0, c0, ys, cs, tcs, reverse):
        # acts: (T, N, 4H) pre-activations without the hidden term, overwritten with the gates
        T, N, G = acts.shape
        H = G // 4
        h = h0.copy()
        c = c0.copy()
        for s in range(T):
            t = T - 1 - s if reverse else s
            a = acts[t]
            activate(a.reshape(-1), hidden_product(h, whh_t).reshape(-1), scale, shift)
            ct = cs[t]
            for n in range(N):
                for j in range(H):
                    ct[n, j] = a[n, H + j] * c[n, j] + a[n, j] * a[n, 2 * H + j]
            ut = tcs[t]
            tanh_into(ct.reshape(-1), ut.reshape(-1))
            yt = ys[t]
            for n in range(N):
                for j in range(H):
                    yt[n, j] = a[n, 3 * H + j] * ut[n, j]
            h = yt
            c = ct

    @njit
    def lstm_backward(acts, cprev, tcs, gys, dh, dc, w_hh, da, reverse):
        # dh, dc: the final states' cotangents in, the initial states' out; da: (T, N, 4H)
        T, N, G = acts.shape
        H = G // 4
        for s in range(T):
            t = s if reverse else T - 1 - s
            for n in range(N):
                for j in range(H):
                    i = acts[t, n, j]
                    f = acts[t, n, H + j]
                    g = acts[t, n, 2 * H + j]
                    o = acts[t, n, 3 * H + j]
                    u = tcs[t, n, j]
                    d = dh[n, j] + gys[t, n, j]
                    da[t, n, 3 * H + j] = d * u * (o * (one - o))
                    cc = dc[n, j] + d * o * (one - u * u)
                    da[t, n, j] = cc * g * (i * (one - i))
                    da[t, n, H + j] = cc * cprev[t, n, j] * (f * (one - f))
                    da[t, n, 2 * H + j] = cc * i * (one - g * g)
                    dc[n, j] = cc * f
            dh[:, :] = hidden_product_t(da[t], w_hh)

    @njit
    def gru_forward(gx, whh_t, bhn, h0, ys, rz, nn, ghn, reverse):
        # gx: (T, N, 3H) input term plus b_ih and the hidden biases of r and z, those two gates'
        # entries halved (as are their rows of whh_t)
        T, N, G = gx.shape
        H = G // 3
        h = h0.copy()
        for s in range(T):
            t = T - 1 - s if reverse else s
            gh = hidden_product(h, whh_t)
            gt, rzt, nt, hnt = gx[t], rz[t], nn[t], ghn[t]
            for n in range(N):
                row, out, hw = gt[n], rzt[n], gh[n]
                for j in range(2 * H):
                    out[j] = tanh(row[j] + hw[j]) * half + half
            for n in range(N):
                for j in range(H):
                    hn = gh[n, 2 * H + j] + bhn[j]
                    hnt[n, j] = hn
                    nt[n, j] = gt[n, 2 * H + j] + rzt[n, j] * hn
            flat = nt.reshape(-1)
            tanh_into(flat, flat)
            yt = ys[t]
            for n in range(N):
                for j in range(H):
                    cand = nt[n, j]
                    yt[n, j] = cand + rzt[n, H + j] * (h[n, j] - cand)
            h = yt

    @njit
    def gru_backward(rz, nn, ghn, hprev, gys, dh, w_hh, dgh, dgx, reverse):
        T, N, H = nn.shape
        for s in range(T):
            t = s if reverse else T - 1 - s
            for n in range(N):
                for j in range(H):
                    r = rz[t, n, j]
                    z = rz[t, n, H + j]
                    cand = nn[t, n, j]
                    d = dh[n, j] + gys[t, n, j]
                    da_n = d * (one - z) * (one - cand * cand)
                    da_z = d * (hprev[t, n, j] - cand) * (z * (one - z))
                    da_r = da_n * ghn[t, n, j] * (r * (one - r))
                    dgh[t, n, j] = da_r
                    dgh[t, n, H + j] = da_z
                    dgh[t, n, 2 * H + j] = da_n * r
                    dgx[t, n, j] = da_r
                    dgx[t, n, H + j] = da_z
                    dgx[t, n, 2 * H + j] = da_n
                    dh[n, j] = d * z
            dh += hidden_product_t(dgh[t], w_hh)

    return dict(lstm_forward=lstm_forward, lstm_backward=lstm_backward,
                gru_forward=gru_forward, gru_backward=gru_backward, tanh_into=tanh_into)
