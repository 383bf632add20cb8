"""The compiled time loops of `chainrule.ops.recurrent` (numba; imported only when numba is
installed, see `chainrule.ops._recurrent_numba`).

Each loop is compiled once per dtype and cached on disk (numba's `cache=True`: beside this file,
or in the user's cache directory where that is read-only), so only the first use on a machine
pays the compilation. The float32 `tanh` is a rational approximation that the compiler
vectorises (coefficients of Eigen's `ptanh_float`; within 4e-7 of the exact value), with the
arithmetic in float32: every kernel takes the dtype's 1 (`one`) so constants keep its type.
float64 uses libm's `tanh`.
"""

import numba
import numpy as np
from numba.extending import overload

from chainrule.ops._recurrent_numba import _TANH_CLAMP, _TANH_P, _TANH_Q

_jit = numba.njit(cache=True, error_model='numpy')


def _tanh(x):
    """tanh in compiled code (see the overload below); plain NumPy elsewhere."""
    return np.tanh(x)


@overload(_tanh)
def _tanh_for(x):
    if x != numba.types.float32:
        return lambda x: np.tanh(x)
    f = np.float32
    clamp = f(_TANH_CLAMP)
    p6, p5, p4, p3, p2, p1, p0 = (f(c) for c in _TANH_P)
    q3, q2, q1, q0 = (f(c) for c in _TANH_Q)

    def rational(x):
        if x > clamp:       # (comparisons, so a NaN stays NaN)
            x = clamp
        elif x < -clamp:
            x = -clamp
        x2 = x * x
        p = ((((((p6 * x2 + p5) * x2 + p4) * x2 + p3) * x2 + p2) * x2 + p1) * x2 + p0) * x
        return p / (((q3 * x2 + q2) * x2 + q1) * x2 + q0)
    return rational


# The loops that call `tanh` run over flat, contiguous rows with the result written in
# place or to one other array, which the compiler vectorises; the sigmoid gates' rows of the
# weights and biases come halved (as for the NumPy loops), so one `tanh` serves every gate:
# sigmoid(x) = tanh(x / 2) / 2 + 1/2, the `scale` and `shift` per entry of a step's gates.

# The hidden product of a step, `h @ W` with W in column blocks `wb` (nb, H, C) (the
# backward's `d @ W^T` with W^T in row blocks (nb, C, H)): one BLAS call per block. Wide
# products (4H = 512 columns for H = 128) run at half the speed of two half-width ones.
@_jit
def hidden_product(h, wb):
    nb, _, C = wb.shape
    if nb == 1:
        return np.dot(h, wb[0])
    out = np.empty((h.shape[0], nb * C), h.dtype)
    for b in range(nb):
        out[:, b * C:(b + 1) * C] = np.dot(h, wb[b])
    return out


@_jit
def hidden_product_t(d, wb):
    nb, C, _ = wb.shape
    if nb == 1:
        return np.dot(d, wb[0])
    acc = np.dot(np.ascontiguousarray(d[:, :C]), wb[0])
    for b in range(1, nb):
        acc += np.dot(np.ascontiguousarray(d[:, b * C:(b + 1) * C]), wb[b])
    return acc


@_jit
def activate(a, hw, scale, shift):
    for k in range(a.size):
        a[k] = _tanh(a[k] + hw[k]) * scale[k] + shift[k]


@_jit
def tanh_into(src, dst):
    for k in range(src.size):
        dst[k] = _tanh(src[k])


@_jit
def lstm_forward(acts, whh_t, scale, shift, h0, c0, ys, cs, tcs, reverse, one):
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


@_jit
def lstm_backward(acts, cprev, tcs, gys, dh, dc, w_hh, da, reverse, one):
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


@_jit
def gru_forward(gx, whh_t, bhn, h0, ys, rz, nn, ghn, reverse, one):
    # gx: (T, N, 3H) input term plus b_ih and the hidden biases of r and z, those two gates'
    # entries halved (as are their rows of whh_t)
    T, N, G = gx.shape
    H = G // 3
    half = one / (one + one)
    h = h0.copy()
    for s in range(T):
        t = T - 1 - s if reverse else s
        gh = hidden_product(h, whh_t)
        gt, rzt, nt, hnt = gx[t], rz[t], nn[t], ghn[t]
        for n in range(N):
            row, out, hw = gt[n], rzt[n], gh[n]
            for j in range(2 * H):
                out[j] = _tanh(row[j] + hw[j]) * half + half
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


@_jit
def gru_backward(rz, nn, ghn, hprev, gys, dh, w_hh, dgh, dgx, reverse, one):
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
