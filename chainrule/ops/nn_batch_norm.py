"""Batch normalisation with the batch statistics as one primitive, and one fused formula for its
derivative (VJP and JVP alike); its NumPy path works on channels-last memory with BLAS sums.
"""

import functools
import math

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, bind, dtype_of, shape_of
from chainrule.ops.nn_common import (_batch_size, _filled, _plain, _same_dtype, _stacked,
                                     _workspace)


# --- batch normalisation: one node, and one fused formula for its derivative ----------------------
# y = xhat * w + b with xhat = (x - mean) * invstd, the mean and the (biased) variance taken over
# every axis but the channels (axis 1), invstd = 1 / sqrt(var + eps). The Jacobian of xhat in x
# is invstd * (I - 1/M - xhat xhat^T / M) (M entries per channel): symmetric, so the JVP and the
# VJP are one formula, dx = invstd * (v - mean(v) - xhat * mean(v * xhat)) with v = g * w (VJP)
# or v = t (JVP, then times w). As a composite (mean, subtract, square, mean, sqrt, divide) the
# backward pass would take a dozen nodes and as many full-size temporaries.

def _bn_axes(nd):
    return (0,) + tuple(range(2, nd))


def _bn_channel(v, nd):
    """A per-channel `(C,)` array shaped to broadcast against `(N, C, ...)`."""
    return ops.reshape(v, (1, -1) + (1,) * (nd - 2))


# The NumPy path works on channels-last memory (what `conv2d` produces), seen as a matrix
# `(M, C)`, M = N * spatial size: a sum over M is then a product with a vector of ones (BLAS;
# NumPy's own reduction along the long axis of a narrow matrix is ~50x slower), and a
# per-channel vector meets the data as one tiled row of a wider view `(M / r, r * C)` (a
# broadcast against C alone runs NumPy's inner loop on C entries at a time).

class _ChannelsLast:
    """An `(N, C, ...)` array as channels-last rows: `m` `(M, C)` (a view when the memory
    is channels-last already, else one copy) and `wide` `(M / r, r * C)`, the same memory."""

    __slots__ = ('shape', 'perm', 'm', 'wide', 'reps', 'ones')

    def __init__(self, x):
        nd = x.ndim
        self.shape = x.shape
        self.perm = (0,) + tuple(range(2, nd)) + (1,)
        c = x.shape[1]
        self.m = np.ascontiguousarray(x.transpose(self.perm)).reshape(-1, c)
        self.reps = _row_reps(self.m.shape[0], c)
        self.wide = self.m.reshape(-1, self.reps * c)
        self.ones = _ones(self.m.shape[0], x.dtype)

    def like(self, a):
        """Another array of the same shape, in the same rows."""
        return np.ascontiguousarray(a.transpose(self.perm)).reshape(self.wide.shape)

    def row(self, v):
        """A per-channel vector as one row of the wide view."""
        out = np.empty(self.reps * v.shape[0], v.dtype)
        out.reshape(self.reps, -1)[...] = v
        return out

    def total(self, wide):
        """Per-channel sums of a wide array."""
        return self.ones @ wide.reshape(self.m.shape)

    def back(self, wide):
        """A wide result as an `(N, C, ...)` view (channels-last memory)."""
        n, c = self.shape[:2]
        nd = len(self.shape)
        return wide.reshape((n,) + self.shape[2:] + (c,)).transpose(
            (0, nd - 1) + tuple(range(1, nd - 1)))

    def moments(self, keep_centred=False):
        """`(mean, biased variance)` per channel (two passes: the variance of the centred
        values, which loses nothing to cancellation), with one scratch array; with
        `keep_centred`, also the centred values `x - mean` as a (fresh) wide array."""
        count = self.m.shape[0]
        mean = self.ones @ self.m
        mean /= count
        scratch = _workspace('moments', self.wide.shape, self.wide.dtype)
        xc = np.subtract(self.wide, self.row(mean), out=None if keep_centred else scratch)
        var = self.total(np.multiply(xc, xc, out=scratch))
        var /= count
        return (mean, var, xc) if keep_centred else (mean, var)


def _ones(m, dtype):
    """A read-only vector of `m` ones (the sums' BLAS operand), shared by this thread."""
    return _filled(1, m, dtype)


@functools.lru_cache(maxsize=256)
def _row_reps(m, c, target=256):
    """How many channel vectors make one row of the wide view: the most that divide `m` and
    fit `target` entries. (Short rows also keep each row from starting at the same offset
    modulo 4 KiB as the tiled vector, which stalls the loads behind the stores: rows of 1024
    float32 run 4x slower.)"""
    best = 1
    for r in range(1, max(target // c, 1) + 1):
        if m % r == 0:
            best = r
    return best


def batch_moments(x, keep_centred=False):
    """The per-channel mean and biased variance of a NumPy `(N, C, ...)` array; with
    `keep_centred`, also `x - mean` (the residual `batch_norm` takes as a third statistic)."""
    return _ChannelsLast(x).moments(keep_centred)


def _bn_normalized_traced(x, eps):
    axes = _bn_axes(len(shape_of(x)))
    xc = x - ops.sum(x, axis=axes, keepdims=True) * (1.0 / _bn_count(x))
    var = ops.sum(xc * xc, axis=axes, keepdims=True) * (1.0 / _bn_count(x))
    invstd = 1.0 / ops.sqrt(var + eps)
    return xc * invstd, invstd


def _bn_count(x):
    s = shape_of(x)
    return math.prod(s) // s[1]


def _bn_centred(cl, stats, scratch=False):
    """`(x - mean as a wide array, biased variance, kept)` from `stats`, x's `(mean, var)` or
    `(mean, var, x - mean)` when the caller has them (the eager path computes them once, for
    the running statistics too; `kept`: the centred array is that residual, to be read and
    never written), else computed here; in this thread's workspace if `scratch`."""
    if len(stats) == 3:
        return stats[2], stats[1], True
    mean, var = stats if stats else cl.moments()
    out = _workspace('bn', cl.wide.shape, cl.wide.dtype) if scratch else None
    return np.subtract(cl.wide, cl.row(mean), out=out), var, False


def _bn_impl(x, w, b, *stats, eps):
    cl = _ChannelsLast(x)
    xc, var, kept = _bn_centred(cl, stats)
    scale = w / np.sqrt(var + eps)
    out = np.multiply(xc, cl.row(scale.astype(x.dtype, copy=False)), out=None if kept else xc)
    out += cl.row(b)
    return cl.back(out)


def _bn_sums(gw, xc, cl, scratch=None):
    """`(sum g, sum g * xc)` per channel, `gw` being the cotangent `g` as a wide array (`scratch`, if
    given, receives the product). Each rule computes its own: sums kept between the rules of
    a node, keyed by the cotangent array, were stale when a caller reused that array with new
    values (`backward(g, retain_graph=True)`, `g *= 3`, `backward(g)`)."""
    return cl.total(gw), cl.total(np.multiply(gw, xc, out=scratch))


def _bn_dx(v, x, w, stats, eps):
    """`w * invstd * (v - mean(v) - xhat * mean(v * xhat))`: the derivative of
    `xhat * w` along `v` (VJP and JVP alike, the Jacobian being symmetric)."""
    if _plain(v, x, w):
        cl = _ChannelsLast(x)
        xc, var, kept = _bn_centred(cl, stats, scratch=True)
        invstd = 1 / np.sqrt(var + eps)
        vw = cl.like(v)
        count = cl.m.shape[0]
        a = invstd * w
        # = vw * a + xc * (-a invstd^2 sum(v xc) / M) + (-a sum(v) / M), per channel
        out = np.empty_like(xc)
        sv, svx = _bn_sums(vw, xc, cl, out)
        e = a * invstd * invstd * svx * (-1.0 / count)
        f = a * sv * (-1.0 / count)
        np.multiply(vw, cl.row(a.astype(x.dtype, copy=False)), out=out)
        out += np.multiply(xc, cl.row(e.astype(x.dtype, copy=False)),
                           out=_workspace('bn', xc.shape, xc.dtype) if kept else xc)
        out += cl.row(f.astype(x.dtype, copy=False))
        return cl.back(out)
    # traced: computed from x alone (the statistics handed to the eager path are constants,
    # and a derivative of this rule must see them depend on x)
    axes, m = _bn_axes(len(shape_of(x))), 1.0 / _bn_count(x)
    xhat, invstd = _bn_normalized_traced(x, eps)
    d = invstd * (v - ops.sum(v, axis=axes, keepdims=True) * m
                  - xhat * (ops.sum(v * xhat, axis=axes, keepdims=True) * m))
    return d * _bn_channel(w, len(shape_of(x)))


def _bn_vjp_w(g, ans, x, w, b, *stats, eps):
    if _plain(g, x):
        cl = _ChannelsLast(x)
        xc, var, kept = _bn_centred(cl, stats, scratch=True)
        sums = _bn_sums(cl.like(g), xc, cl, None if kept else xc)
        return (sums[1] / np.sqrt(var + eps)).astype(w.dtype, copy=False)
    return ops.sum(g * _bn_normalized_traced(x, eps)[0], axis=_bn_axes(len(shape_of(x))))


def _bn_vjp_b(g, ans, x, w, b, *stats, eps):
    if _plain(g):
        cl = _ChannelsLast(g)
        return cl.ones @ cl.m
    return ops.sum(g, axis=_bn_axes(len(shape_of(x))))


# Arguments: x, w, b and, from the eager path only, x's mean, biased variance and centred
# values `x - mean` (a wide channels-last array, see `_ChannelsLast`) as constants equal to
# what the rules would compute from x (they are not differentiated; traced rules recompute
# them from x so higher derivatives see their dependence on x).
batch_norm_p = Primitive(
    'batch_norm', _bn_impl,
    vjp=[lambda g, ans, x, w, b, *stats, eps: _bn_dx(g, x, w, stats, eps),
         _bn_vjp_w, _bn_vjp_b, None, None, None],
    jvp=[lambda t, ans, x, w, b, *stats, eps: _bn_dx(t, x, w, stats, eps),
         lambda t, ans, x, w, b, *stats, eps:
         _bn_normalized_traced(x, eps)[0] * _bn_channel(t, len(shape_of(x))),
         lambda t, ans, x, w, b, *stats, eps:
         ops.broadcast_to(_bn_channel(t, len(shape_of(x))), shape_of(ans)), None, None, None],
    doc='Batch normalisation with the batch statistics: (x - mean) / sqrt(var + eps) * w + b, '
        'over every axis but axis 1.')


def batch_norm(x, w=None, b=None, eps=1e-5, stats=None):
    """Normalise `x` `(N, C, ...)` with its own batch statistics (per channel, over every other
    axis; biased variance), then scale by `w` `(C,)` and shift by `b` `(C,)`.

    `stats`: optionally `(mean, var)`, x's per-channel mean and biased variance as NumPy
    arrays, when the caller has computed them from x's values (they are not recomputed), or
    `(mean, var, centred)` as `batch_moments(x, keep_centred=True)` gives them (the centred
    values are then kept for the backward pass instead of being computed twice more).
    """
    s = shape_of(x)
    c = s[1] if len(s) >= 2 else None
    if len(s) < 2 or any(v is not None and shape_of(v) != (c,) for v in (w, b)):
        raise ShapeError(f'batch_norm: input {s} with weight '
                         f'{None if w is None else shape_of(w)} and bias '
                         f'{None if b is None else shape_of(b)} do not fit: input must be '
                         '(N, C, ...) and weight and bias (C,)')
    dt = dtype_of(x)
    w = np.ones(c, dt) if w is None else w
    b = np.zeros(c, dt) if b is None else b
    args = _same_dtype((x, w, b))
    if stats is not None:
        args += tuple(np.asarray(v, dtype_of(args[0])) for v in stats)
    return bind(batch_norm_p, *args, eps=float(eps))


def _bn_batch(args, dims, *, eps):
    # each vmapped example has its own statistics: its channels join the channel axis,
    # (B, N, C, ...) -> (N, B*C, ...)
    size = _batch_size(args, dims)
    x = _stacked(args[0], dims[0], size)
    s = shape_of(x)
    xm = ops.reshape(ops.transpose(x, (1, 0) + tuple(range(2, len(s)))),
                     (s[1], size * s[2]) + tuple(s[3:]))
    # (x's statistics, if passed, are dropped: the rule recomputes them per example)
    wb = [ops.reshape(_stacked(a, d, size), (-1,)) for a, d in zip(args[1:3], dims[1:3])]
    out = bind(batch_norm_p, xm, *wb, eps=eps)
    out = ops.reshape(out, (s[1], size) + tuple(s[2:]))
    return ops.transpose(out, (1, 0) + tuple(range(2, len(s)))), 0


batch_norm_p.batch = _bn_batch
