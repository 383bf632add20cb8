"""Neural-network primitives: the few operations that earn a primitive by speed or stability.

What this module lets you do: build `chainrule.nn` layers from a handful of fused operations, so
an eager training step records few tape nodes (on small arrays the cost of an op is Python
overhead, not arithmetic). Every rule is written in chainrule's own ops, so derivatives of
derivatives work.

| primitive | computes | why a primitive |
|---|---|---|
| `linear(x, w, b)` | `x @ w.T + b` | one node instead of transpose, matmul, broadcast, add |
| `relu(x)` | `max(x, 0)` | `maximum` splits ties and needs a broadcast of 0 |
| `sigmoid(x)` | `1 / (1 + exp(-x))` (SciPy's `expit`, or a two-sided formula) | exact to rounding for any `x`, one node |
| `erf(x)` | the error function (exact GELU) | NumPy has none |
| `log_softmax(x, axis)` | `x - logsumexp(x)` | stable, VJP `g - softmax * sum(g)` |
| `cross_entropy(z, t)` | `-mean(log_softmax(z)[i, t_i])` | one node, VJP `(softmax - onehot) / N` |
| `batch_norm(x, w, b)` | `(x - mean) / sqrt(var + eps) * w + b`, batch statistics | one node; one fused derivative formula |

Convolution and pooling (`unfold`, `fold`, `conv2d`, `max_pool2d`) live in `chainrule.ops.conv`.

Each primitive also has a `vmap` rule (at the end of the file), so per-example gradients of a
network vectorise.

Rules with NumPy fast paths: when no argument is traced (the eager backward pass), a rule
computes its formula with NumPy directly; the same formula in chainrule ops serves every traced
case (higher derivatives, `jit`, `vmap`), so the fast path never changes what is differentiable.
"""

import functools
import math
import threading

import numpy as np

from chainrule import ops
from chainrule.core import (
    IndexOutOfRangeError, Primitive, ShapeError, Tracer, bind, dtype_of, shape_of)

__all__ = ['linear', 'relu', 'sigmoid', 'erf', 'log_softmax', 'cross_entropy', 'class_labels',
           'batch_norm']

# the convolution family moved to chainrule.ops.conv; these names keep working from here
_MOVED_TO_CONV = ('unfold', 'fold', 'conv2d', 'max_pool2d', 'conv_output_size', '_window_args',
                  '_pad_hw', '_pair')


def __getattr__(name):
    if name in _MOVED_TO_CONV:
        from chainrule.ops import conv
        return getattr(conv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Workspace. The im2col matrices (chainrule.ops.conv) and batch normalisation's centred
# inputs are the largest arrays of a small CNN's step and live only until the operation that
# consumes them; allocating them afresh each time costs more than filling them (each is new
# memory from the operating system: a page fault per 4 KiB). So the rules fill per-thread
# scratch arrays instead, reused from call to call; nothing in them is ever returned to a
# caller.
_scratch = threading.local()


def _filled(value, m, dtype):
    """A read-only vector of `m` entries equal to `value` (0 or 1), shared by this thread."""
    spaces = getattr(_scratch, 'filled', None)
    if spaces is None:
        spaces = _scratch.filled = {}
    key = (value, np.dtype(dtype))
    buf = spaces.get(key)
    if buf is None or buf.size < m:
        buf = spaces[key] = np.full(m, value, dtype)
        buf.flags.writeable = False
    return buf[:m]


def _workspace(name, shape, dtype):
    """A scratch array of `shape` and `dtype` for this thread, reused by the next call with the
    same `name` (its contents are overwritten by then)."""
    spaces = getattr(_scratch, 'spaces', None)
    if spaces is None:
        spaces = _scratch.spaces = {}
    size = math.prod(shape)
    buf = spaces.get((name, np.dtype(dtype)))
    if buf is None or buf.size < size:
        buf = spaces[(name, np.dtype(dtype))] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


# --- linear: x @ w.T + b ------------------------------------------------------------------------

def _matmul2d(a, b):
    """`a @ b` for `a` `(..., k)` and 2-D `b` as one matrix product (NumPy would otherwise loop
    over the leading axes of `a`, one small product per row block)."""
    if a.ndim == 2:
        return np.matmul(a, b)
    return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[1],))


def _linear_impl(x, w, *b):
    out = _matmul2d(x, w.T)
    if b:
        out += b[0]     # out is a fresh array: add the bias in place
    return out


def _plain(*xs):
    """No argument is traced: a rule may then use NumPy directly (the eager backward pass,
    where Python overhead per call is the cost that matters); the chainrule-ops form of the
    same formula serves every traced case, so higher derivatives are unaffected."""
    return not any(isinstance(x, Tracer) for x in xs)


def _linear_vjp_x(g, ans, x, w, *b):
    return _matmul2d(g, w) if _plain(g, w) else ops.matmul(g, w)


def _linear_vjp_w(g, ans, x, w, *b):
    # dL/dw = g^T x, with every leading (batch) axis of x and g summed over
    k = shape_of(w)
    if _plain(g, x):
        return np.matmul(g.reshape(-1, k[0]).T, x.reshape(-1, k[1]))
    if len(shape_of(g)) != 2:
        g, x = ops.reshape(g, (-1, k[0])), ops.reshape(x, (-1, k[1]))
    return ops.matmul(ops.transpose(g), x)


def _linear_vjp_b(g, ans, x, w, *b):
    lead = tuple(range(len(shape_of(g)) - 1))
    return g.sum(axis=lead) if _plain(g) else ops.sum(g, axis=lead)


def _linear_jvp_b(t, ans, x, w, *b):
    return ops.broadcast_to(t, shape_of(ans))


linear_p = Primitive(
    'linear', _linear_impl,
    vjp=[_linear_vjp_x, _linear_vjp_w, _linear_vjp_b],
    jvp=[lambda t, ans, x, w, *b: linear(t, w),
         lambda t, ans, x, w, *b: linear(x, t),
         _linear_jvp_b],
    doc='x @ w.T + b, PyTorch layout: w is (out_features, in_features).')


def _same_dtype(args):
    """Arrays for an impl: lists made arrays, and one dtype for all (NumPy's promotion, made
    explicit so each cotangent comes back in its own argument's dtype)."""
    args = tuple(a if isinstance(a, Tracer) else np.asarray(a) for a in args)
    dts = [dtype_of(a) for a in args]
    if len(set(dts)) > 1:
        r = np.result_type(*dts)
        args = tuple(ops.astype(a, r) for a in args)
    return args


def linear(x, w, b=None):
    """`x @ w.T + b` (PyTorch's `F.linear`): `x` `(..., in)`, `w` `(out, in)`, `b` `(out,)`.

    Args:
        x: the input, any number of leading axes.
        w: the weight, shape `(out_features, in_features)`.
        b: optional bias, shape `(out_features,)`.

    Returns:
        An array of shape `(..., out_features)`.
    """
    sx, sw = shape_of(x), shape_of(w)
    if len(sw) != 2 or not sx or sx[-1] != sw[1] or (
            b is not None and shape_of(b) != (sw[0],)):
        raise ShapeError(f'linear: input {sx}, weight {sw}' +
                         (f', bias {shape_of(b)}' if b is not None else '') +
                         ' do not fit: the weight must be (out, in) with in = the last axis of '
                         'the input, and the bias (out,)')
    args = _same_dtype((x, w) if b is None else (x, w, b))
    return bind(linear_p, *args)


# --- elementwise activations ------------------------------------------------------------------

def _sigmoid_impl(x):
    # exact to rounding for every real x: (1 + tanh(x/2)) / 2, used before, lost the relative
    # precision of small values (sigmoid(-40) came out 0, sigmoid(-20) 1e-8 off)
    x = np.asarray(x)
    if x.dtype.kind == 'c':
        return 1 / (1 + np.exp(-x))
    if x.dtype.kind != 'f':
        x = x.astype(np.float64)
    if _expit is not None:
        return _expit(x)
    e = np.exp(-np.abs(x))          # NumPy only: the formula that cannot overflow on each side
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


try:
    from scipy.special import expit as _expit
except ImportError:
    _expit = None


def _erf_impl(x):
    try:
        from scipy.special import erf as _erf
    except ImportError:     # NumPy only: Python's math.erf, one element at a time
        x = np.asarray(x)
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return _erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

def _relu_impl(x):
    # NumPy's maximum against a scalar runs about 3x slower than against an array of zeros
    # in the same memory order (the scalar, broadcast, misses the vector loop): so, on large
    # floating arrays, the array (a view of x in its memory order, and shared zeros)
    if x.size < 4096 or x.dtype.kind != 'f':
        return np.maximum(x, 0)
    perm = sorted(range(x.ndim), key=lambda i: -x.strides[i])
    xm = x.transpose(perm)
    if not xm.flags.c_contiguous:
        return np.maximum(x, 0)
    out = np.maximum(xm, _filled(0, x.size, x.dtype).reshape(xm.shape))
    return out.transpose(np.argsort(perm))


relu_p    = Primitive('relu',    _relu_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans > 0)])
# sigmoid' = sigmoid(x) sigmoid(-x): written with 1 - ans it rounds to 0 beyond x = 37
sigmoid_p = Primitive('sigmoid', _sigmoid_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans * sigmoid(-x))])
erf_p     = Primitive('erf',     _erf_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ops.exp(-(x * x)) * _TWO_OVER_SQRT_PI)])


def relu(x):
    """`max(x, 0)`, with derivative 0 at 0 (as PyTorch)."""
    return bind(relu_p, x)


def sigmoid(x):
    """The logistic function `1 / (1 + exp(-x))`, stable for any `x`."""
    return bind(sigmoid_p, x)


def erf(x):
    """The error function `2/sqrt(pi) * integral_0^x exp(-t^2) dt`."""
    return bind(erf_p, x)


# --- log_softmax and cross-entropy ----------------------------------------------------------

def _log_softmax_impl(x, *, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# d log_softmax(x)_i / dx_j = delta_ij - softmax_j, so the VJP is g - softmax * sum(g) and the
# JVP t - sum(softmax * t); softmax = exp(ans) is recovered from the output.
log_softmax_p = Primitive(
    'log_softmax', _log_softmax_impl,
    vjp=[lambda g, ans, x, *, axis: g - ops.exp(ans) * ops.sum(g, axis=axis, keepdims=True)],
    jvp=[lambda t, ans, x, *, axis: t - ops.sum(ops.exp(ans) * t, axis=axis, keepdims=True)])


def log_softmax(x, axis=-1):
    """`x - logsumexp(x, axis)`: log-probabilities from logits, without overflow."""
    nd = len(shape_of(x))
    if nd == 0:
        raise ShapeError('log_softmax: needs at least one axis, got a 0-d array')
    axis = ops.normalize_axis(axis, nd, 'log_softmax')[0]
    if shape_of(x)[axis] == 0:
        return ops.mul(x, 0.0)     # over an empty axis: an empty result, as PyTorch gives
    return bind(log_softmax_p, x, axis=axis)


def _onehot(t, n, dtype):
    return ops.astype(ops.equal(ops.reshape(t, (-1, 1)), np.arange(n)), dtype)


# --- class labels: checked where their values are known ----------------------------------------

def check_label_values(t, n, ignore_index, op, what='target', of='classes'):
    """Raise IndexOutOfRangeError naming the first entry of integer array `t` outside `[0, n)`
    that is not `ignore_index` (None: no entry is ignored), its position and `n` (`n` `of`)."""
    t = np.asarray(t)
    if not t.size:
        return
    lo, hi = t.min(), t.max()
    if lo >= 0 and hi < n:
        return
    bad = (t < 0) | (t >= n)
    if ignore_index is not None:
        bad &= t != ignore_index
    if not bad.any():
        return
    pos = tuple(int(i) for i in np.argwhere(bad)[0])
    where = pos[0] if len(pos) == 1 else pos
    ignored = '' if ignore_index is None else f', or ignore_index={ignore_index}'
    raise IndexOutOfRangeError(
        f'{op}: {what} {int(t[pos])} at position {where} is out of bounds for {n} {of} '
        f"(valid {'indices' if what == 'index' else what + 's'} are 0..{n - 1}{ignored})")


# what an entry is called and what it counts, per op (cross_entropy, nll_loss: targets of classes)
_LABEL_NOUNS = {'embedding': ('index', 'rows'), 'one_hot': ('label', 'classes')}


def _labels_impl(t, *, num_classes, ignore_index, op):
    check_label_values(t, num_classes, ignore_index, op, *_LABEL_NOUNS.get(op, ('target', 'classes')))
    return t


# the identity on integer labels, checking them when it runs: at once eagerly and under grad,
# on the whole stack under vmap, and when the compiled function runs under jit
class_labels_p = Primitive('class_labels', _labels_impl, vjp=None,
                           batch=lambda args, dims, **p: (bind(class_labels_p, args[0], **p), 0))


def class_labels(t, num_classes, ignore_index=None, op='class_labels'):
    """`t` (integer class labels), checked to lie in `[0, num_classes)` or equal
    `ignore_index`; IndexOutOfRangeError names the first that does not."""
    if np.dtype(dtype_of(t)).kind not in 'iu':
        raise TypeError(f'{op}: targets must be integer class indices, got dtype {dtype_of(t)}')
    ignore_index = None if ignore_index is None else int(ignore_index)
    return bind(class_labels_p, t, num_classes=int(num_classes), ignore_index=ignore_index, op=op)


# --- cross-entropy: ignored targets (ignore_index) count for nothing, as in PyTorch -------------

def _ce_keep(t, ignore_index, dtype):
    """The rows that count, as a `(n, 1)` column of 1/0 of `dtype`, and how many they are;
    `(None, n)` when every row counts (then nothing need be masked)."""
    n = shape_of(t)[0]
    if not isinstance(t, Tracer):
        keep = np.asarray(t) != ignore_index
        if keep.all():
            return None, n
        return keep.astype(dtype).reshape(n, 1), int(keep.sum())
    keep = ops.astype(ops.not_equal(t, ignore_index), dtype)
    return ops.reshape(keep, (n, 1)), ops.sum(keep)


def mean_over_kept(total, count):
    """`total / count` for a traced count of the rows that count: nan when none does (PyTorch's
    value), with a zero derivative there rather than nan."""
    return ops.where(ops.greater(count, 0), total / ops.maximum(count, 1), np.nan)


def _ce_impl(z, t, *, reduction, ignore_index=-100):
    logp = _log_softmax_impl(z, axis=1)
    n = z.shape[0]
    keep = t != ignore_index
    if keep.all():
        losses, count = -logp[np.arange(n), t], n
    else:
        losses = np.where(keep, -logp[np.arange(n), np.where(keep, t, 0)], 0).astype(logp.dtype)
        count = int(keep.sum())
    if reduction == 'mean':
        with np.errstate(invalid='ignore'):       # every target ignored: nan, as PyTorch
            return (losses.sum() / count).astype(logp.dtype)
    return losses.sum() if reduction == 'sum' else losses


def _ce_scale(g, n, count, reduction):
    """How the cotangent of the reduced loss reaches each sample's loss, as a column."""
    if reduction == 'mean':
        return g / (max(count, 1) if isinstance(count, int) else ops.maximum(count, 1))
    if reduction == 'sum':
        return g
    return ops.reshape(g, (n, 1))


def _ce_vjp(g, ans, z, t, *, reduction, ignore_index=-100):
    # d(-log softmax(z)_t)/dz = softmax(z) - onehot(t), zero in ignored rows
    n, c = shape_of(z)
    if _plain(g, z, t):
        d = np.exp(_log_softmax_impl(z, axis=1))
        keep = t != ignore_index
        count = n
        if keep.all():
            d[np.arange(n), t] -= 1
        else:
            d[np.arange(n)[keep], t[keep]] -= 1
            d[~keep] = 0
            count = int(keep.sum())
        if reduction == 'none':
            return d * g.reshape(n, 1)
        return d * (g / max(count, 1) if reduction == 'mean' else g)
    d, count = _ce_rows(z, t, ignore_index)
    return d * _ce_scale(g, n, count, reduction)


def _ce_rows(z, t, ignore_index):
    """`softmax(z) - onehot(t)` with ignored rows zeroed, and how many rows count (chainrule
    ops, for traced values)."""
    c = shape_of(z)[1]
    d = ops.exp(log_softmax(z, axis=1)) - _onehot(t, c, dtype_of(z))
    keep, count = _ce_keep(t, ignore_index, dtype_of(z))
    return (d if keep is None else d * keep), count


def _ce_jvp(tz, ans, z, t, *, reduction, ignore_index=-100):
    d, count = _ce_rows(z, t, ignore_index)
    per = ops.sum(d * tz, axis=1)
    if reduction == 'none':
        return per
    s = ops.sum(per)
    if reduction == 'sum':
        return s
    return s / count if isinstance(count, int) else mean_over_kept(s, count)


cross_entropy_p = Primitive('cross_entropy', _ce_impl, vjp=[_ce_vjp, None], jvp=[_ce_jvp, None])


def cross_entropy(z, t, reduction='mean', ignore_index=-100):
    """Cross-entropy of integer class labels `t` `(N,)` under logits `z` `(N, C)`.

    Args:
        z: logits, shape `(N, C)`.
        t: integer labels in `[0, C)`, shape `(N,)`; a label equal to `ignore_index` counts
            for nothing (loss 0, and not in the mean's denominator), as in PyTorch.
        reduction: 'mean', 'sum' or 'none'.
        ignore_index: the label to ignore (PyTorch's default -100).

    Returns:
        The loss (a scalar, or `(N,)` for 'none').

    Raises:
        IndexOutOfRangeError: a label outside `[0, C)` that is not `ignore_index` (named with
            its position), wherever the labels' values are known: eagerly, under `grad` and
            `vmap`, and when a `jit`-compiled function runs.
    """
    sz, st = shape_of(z), shape_of(t)
    if len(sz) != 2 or st != sz[:1]:
        raise ShapeError(f'cross_entropy: logits {sz} and targets {st} do not fit: logits must '
                         'be (N, C) and targets (N,) integer class indices')
    if reduction not in ('mean', 'sum', 'none'):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got "
                         f'{reduction!r}')
    t = class_labels(t, sz[1], ignore_index, 'cross_entropy')
    return bind(cross_entropy_p, z, t, reduction=reduction, ignore_index=int(ignore_index))


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


# --- batching rules (vmap) ----------------------------------------------------------------------
# Batched arguments arrive with the vmap axis first; a rule returns (out, out_axis). The image
# ops treat their N examples independently, so the vmap axis simply merges into N.

def _batch_size(args, dims):
    return next(shape_of(a)[0] for a, d in zip(args, dims) if d is not None)


def _stacked(a, d, size):
    """`a` with the vmap axis first, broadcast along it if `a` is not batched."""
    return a if d is not None else ops.broadcast_to(a, (size,) + tuple(shape_of(a)))


def _merged_batch(prim):
    """The rule of an op on `(N, ...)` arrays whose examples are independent: vmap's axis B
    merges into N (`(B, N, ...)` -> `(B*N, ...)`), the op runs once, and the result splits."""
    def rule(args, dims, **params):
        size = _batch_size(args, dims)
        flat = []
        for a, d in zip(args, dims):
            s = shape_of(_stacked(a, d, size))
            flat.append(ops.reshape(_stacked(a, d, size), (s[0] * s[1],) + tuple(s[2:])))
        if 'shape' in params:                      # fold: the image shape grows with N
            params['shape'] = (size * params['shape'][0],) + tuple(params['shape'][1:])
        out = bind(prim, *flat, **params)
        s = shape_of(out)
        return ops.reshape(out, (size, s[0] // size) + tuple(s[1:])), 0
    return rule


def _linear_batch(args, dims):
    x, w, *b = args
    if dims[1] is None and (not b or dims[2] is None):
        return bind(linear_p, *args), 0            # leading axes of x are batch axes already
    # per-example weights: one batched matrix product, (B, M, in) @ (B, in, out)
    size = _batch_size(args, dims)
    xs = _stacked(x, dims[0], size)
    sx = shape_of(xs)
    out = ops.matmul(ops.reshape(xs, (size, -1, sx[-1])),
                     ops.transpose(_stacked(w, dims[1], size), (0, 2, 1)))
    if b:
        out = out + ops.reshape(_stacked(b[0], dims[2], size), (size, 1, -1))
    return ops.reshape(out, tuple(sx[:-1]) + (shape_of(out)[-1],)), 0


def _ce_batch(args, dims, *, reduction, ignore_index=-100):
    # every (example, row) pair is one row of a single unreduced cross-entropy
    size = _batch_size(args, dims)
    z, t = (_stacked(a, d, size) for a, d in zip(args, dims))
    _, n, c = shape_of(z)
    per = bind(cross_entropy_p, ops.reshape(z, (size * n, c)), ops.reshape(t, (size * n,)),
               reduction='none', ignore_index=ignore_index)
    per = ops.reshape(per, (size, n))
    if reduction == 'none':
        return per, 0
    s = ops.sum(per, axis=1)
    if reduction == 'sum':
        return s, 0
    if not isinstance(t, Tracer) and (np.asarray(t) != ignore_index).all():
        return s / n, 0
    count = ops.sum(ops.astype(ops.not_equal(t, ignore_index), dtype_of(s)), axis=1)
    return mean_over_kept(s, count), 0


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


linear_p.batch = _linear_batch
cross_entropy_p.batch = _ce_batch
batch_norm_p.batch = _bn_batch
log_softmax_p.batch = lambda args, dims, *, axis: (bind(log_softmax_p, args[0], axis=axis + 1),
                                                   0)

