"""Neural-network primitives: the few operations that earn a primitive by speed or stability.

What this module lets you do: build `chainrule.nn` layers from a handful of fused operations, so
an eager training step records few tape nodes (on small arrays the cost of an op is Python
overhead, not arithmetic). Every rule is written in chainrule's own ops, so derivatives of
derivatives work.

| primitive | computes | why a primitive |
|---|---|---|
| `linear(x, w, b)` | `x @ w.T + b` | one node instead of transpose, matmul, broadcast, add |
| `relu(x)` | `max(x, 0)` | `maximum` splits ties and needs a broadcast of 0 |
| `sigmoid(x)` | `1 / (1 + exp(-x))`, as `(1 + tanh(x/2)) / 2` | stable for any `x`, one node |
| `erf(x)` | the error function (exact GELU) | NumPy has none |
| `log_softmax(x, axis)` | `x - logsumexp(x)` | stable, VJP `g - softmax * sum(g)` |
| `cross_entropy(z, t)` | `-mean(log_softmax(z)[i, t_i])` | one node, VJP `(softmax - onehot) / N` |
| `conv2d(x, w, b)` | im2col, one matmul, bias | one node; its rules use `unfold`/`fold` |
| `unfold(x)` / `fold(c)` | im2col / col2im | each other's transpose (the conv's traced rules) |
| `max_pool2d(x)` | max over windows | VJP/JVP select by the winners' mask (`pool_scatter`) |

Each primitive also has a `vmap` rule (at the end of the file), so per-example gradients of a
network vectorise.

Rules with NumPy fast paths: when no argument is traced (the eager backward pass), a rule
computes its formula with NumPy directly; the same formula in chainrule ops serves every traced
case (higher derivatives, `jit`, `vmap`), so the fast path never changes what is differentiable.
"""

import math

import numpy as np

from chainrule import ops
from chainrule.core import (
    IndexOutOfRangeError, Primitive, ShapeError, Tracer, bind, dtype_of, shape_of)

__all__ = ['linear', 'relu', 'sigmoid', 'erf', 'log_softmax', 'cross_entropy', 'class_labels',
           'unfold', 'fold', 'conv2d', 'max_pool2d', 'conv_output_size']


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
    # (1 + tanh(x/2)) / 2 equals 1 / (1 + exp(-x)) and never overflows
    return (np.tanh(x * 0.5) + 1) * 0.5


def _erf_impl(x):
    try:
        from scipy.special import erf as _erf
    except ImportError:     # NumPy only: Python's math.erf, one element at a time
        x = np.asarray(x)
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return _erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

relu_p    = Primitive('relu',    lambda x: np.maximum(x, 0), elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans > 0)])
sigmoid_p = Primitive('sigmoid', _sigmoid_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans * (1 - ans))])
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


# --- im2col: unfold and fold --------------------------------------------------------------------

def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


# Layout. Patches are ordered (kh, kw, c) within a row, channels fastest, and images are
# handled channels-last inside: the copies then move runs of C contiguous numbers. The results
# are NCHW *views* of channels-last memory, which NumPy's elementwise ops keep (order 'K'), so a
# conv -> relu -> pool -> conv chain never transposes data between layers.

def _unfold_impl(x, *, kernel, stride, padding):
    # (N, C, H, W) -> (N, OH, OW, kh*kw*C): row (n, i, j) holds the patch under output pixel
    # (i, j)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = _pad_hw(x, padding, 0).transpose(0, 2, 3, 1)              # NHWC view
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    n, oh, ow, c = win.shape[:4]                                  # (n, oh, ow, c, kh, kw)
    return win.transpose(0, 1, 2, 4, 5, 3).reshape(n, oh, ow, kh * kw * c)


def _fold_impl(cols, *, kernel, stride, padding, shape):
    # the transpose of unfold: every patch entry is added back where it came from
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = shape
    oh, ow = cols.shape[1:3]
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    out = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += cols[:, :, :, i, j]
    return out[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


unfold_p = Primitive(
    'unfold', _unfold_impl, linear=True,
    vjp=[lambda g, ans, x, *, kernel, stride, padding:
         fold(g, shape_of(x), kernel=kernel, stride=stride, padding=padding)])
fold_p = Primitive(
    'fold', _fold_impl, linear=True,
    vjp=[lambda g, ans, c, *, kernel, stride, padding, shape:
         unfold(g, kernel=kernel, stride=stride, padding=padding)])


def _pair(v, name, op):
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    v = tuple(int(a) for a in v)
    if len(v) != 2:
        raise ValueError(f'{op}: {name} must be an int or a pair, got {v!r}')
    return v


def unfold(x, kernel, stride=1, padding=0):
    """Patches of `x` `(N, C, H, W)` as rows: `(N, OH, OW, kh*kw*C)` (im2col).

    Args:
        x: a batch of images `(N, C, H, W)`.
        kernel, stride, padding: ints or pairs (padding is with zeros).

    Returns:
        The patches, ordered `(kh, kw, c)` within a row (channels fastest; a PyTorch conv
        weight `w` matches `w.transpose(0, 2, 3, 1)`).
    """
    kernel, stride, padding = _window_args(shape_of(x), kernel, stride, padding, 'unfold')
    return bind(unfold_p, x, kernel=kernel, stride=stride, padding=padding)


def _window_args(s, kernel, stride, padding, op):
    """Kernel, stride and padding as checked pairs for an `(N, C, H, W)` input of shape `s`."""
    kernel, stride = _pair(kernel, 'kernel', op), _pair(stride, 'stride', op)
    padding = _pair(padding, 'padding', op)
    if len(s) != 4:
        raise ShapeError(f'{op}: input must be (N, C, H, W), got shape {s}')
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f'{op}: stride {stride} must be >= 1 and padding {padding} >= 0')
    for d, k, st, p in zip(s[2:], kernel, stride, padding):
        if conv_output_size(d, k, st, p) < 1:
            raise ShapeError(f'{op}: kernel {kernel} is larger than the input {s[2:]} with '
                             f'padding {padding}')
    return kernel, stride, padding


def fold(cols, shape, kernel, stride=1, padding=0):
    """The transpose of `unfold`: patch rows `(N, OH, OW, kh*kw*C)` summed back into an image
    of `shape` `(N, C, H, W)` (col2im); overlapping entries add up."""
    kernel, stride = _pair(kernel, 'kernel', 'fold'), _pair(stride, 'stride', 'fold')
    padding = _pair(padding, 'padding', 'fold')
    return bind(fold_p, cols, kernel=kernel, stride=stride, padding=padding,
                shape=tuple(int(d) for d in shape))


# --- conv2d: unfold, one matrix product, bias; one tape node -------------------------------

def _flat_weight(w):
    """`(O, C, kh, kw)` -> `(O, kh*kw*C)`, the row order of `unfold`."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _conv_impl(x, w, *b, stride, padding):
    kernel = w.shape[2:]
    cols = _unfold_impl(x, kernel=kernel, stride=stride, padding=padding)
    n, oh, ow, k = cols.shape
    out = np.matmul(cols.reshape(-1, k), _flat_weight(w).T)
    if b:
        out += b[0]
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)     # NCHW view, channels last


def _conv_vjp_x(g, ans, x, w, *b, stride, padding):
    # x enters through unfold(x) @ W^T: pull g back through the product, then fold
    kernel = shape_of(w)[2:]
    if _plain(g, w):
        gcols = _matmul2d(g.transpose(0, 2, 3, 1), _flat_weight(w))
        return _fold_impl(gcols, kernel=kernel, stride=stride, padding=padding,
                          shape=x.shape)
    gt = ops.transpose(g, (0, 2, 3, 1))
    w2 = ops.reshape(ops.transpose(w, (0, 2, 3, 1)), (shape_of(w)[0], -1))
    return fold(ops.matmul(gt, w2), shape_of(x), kernel, stride, padding)


def _conv_vjp_w(g, ans, x, w, *b, stride, padding):
    # dL/dW = sum over pixels of g (outer) patch, back in (O, C, kh, kw) order
    o, c, kh, kw = shape_of(w)
    if _plain(g, x):
        cols = _unfold_impl(x, kernel=(kh, kw), stride=stride, padding=padding)
        gw = np.matmul(g.transpose(0, 2, 3, 1).reshape(-1, o).T,
                       cols.reshape(-1, cols.shape[-1]))
        return np.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    cols = unfold(x, (kh, kw), stride, padding)
    gt = ops.reshape(ops.transpose(g, (1, 0, 2, 3)), (o, -1))
    gw = ops.matmul(gt, ops.reshape(cols, (-1, kh * kw * c)))
    return ops.transpose(ops.reshape(gw, (o, kh, kw, c)), (0, 3, 1, 2))


def _conv_vjp_b(g, ans, x, w, *b, stride, padding):
    return g.sum(axis=(0, 2, 3)) if _plain(g) else ops.sum(g, axis=(0, 2, 3))


conv2d_p = Primitive(
    'conv2d', _conv_impl,
    vjp=[_conv_vjp_x, _conv_vjp_w, _conv_vjp_b],
    jvp=[lambda t, ans, x, w, *b, stride, padding: conv2d(t, w, None, stride, padding),
         lambda t, ans, x, w, *b, stride, padding: conv2d(x, t, None, stride, padding),
         lambda t, ans, x, w, *b, stride, padding:
         ops.broadcast_to(ops.reshape(t, (1, -1, 1, 1)), shape_of(ans))])


def conv2d(x, w, b=None, stride=1, padding=0):
    """2-D convolution (cross-correlation) of `x` `(N, C, H, W)` with `w` `(O, C, kh, kw)`,
    plus `b` `(O,)`: `(N, O, OH, OW)`. One primitive: im2col, one matrix product, the bias."""
    sx, sw = shape_of(x), shape_of(w)
    if len(sx) != 4 or len(sw) != 4 or sx[1] != sw[1] or (
            b is not None and shape_of(b) != sw[:1]):
        raise ShapeError(f'conv2d: input {sx} and weight {sw}' +
                         (f' and bias {shape_of(b)}' if b is not None else '') +
                         ' do not fit: input must be (N, C_in, H, W), weight '
                         '(C_out, C_in, kh, kw) and bias (C_out,)')
    _, stride, padding = _window_args(sx, sw[2:], stride, padding, 'conv2d')
    args = _same_dtype((x, w) if b is None else (x, w, b))
    return bind(conv2d_p, *args, stride=stride, padding=padding)


# --- max pooling ------------------------------------------------------------------------------
# max_pool2d picks, in each window, the first largest entry (PyTorch's choice at ties). Its
# derivative is a selection by a mask that depends on x only through which entry wins, so the
# VJP scatters g to the winners (`pool_scatter`) and the JVP gathers the tangent at the winners
# (`pool_gather`); the two are linear in their first argument and each other's transpose, which
# is all higher derivatives need (the mask is locally constant).

def _offsets(kernel, stride, out_hw):
    """For each window offset (i, j): the slice of the padded input that offset visits."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
                   slice(j, j + sw * (ow - 1) + 1, sw))


def _pad_hw(x, padding, value):
    """`x` `(N, C, H, W)` padded with `value` on both sides of H and W, in x's memory layout
    (np.pad is slower and always returns C order)."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = np.empty_like(x, shape=(n, c, h + 2 * ph, w + 2 * pw))
    out.fill(value)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _tiles(x, kernel, out_hw):
    """Non-overlapping windows (stride = kernel, no padding) as a contiguous
    `(kh*kw, N, OH, OW, C)` array: each window offset becomes one contiguous slab, so the
    per-offset comparisons below run over long runs of memory instead of strided fours."""
    (kh, kw), (oh, ow) = kernel, out_hw
    n, c = x.shape[:2]
    xh = x[:, :, :oh * kh, :ow * kw].transpose(0, 2, 3, 1).reshape(n, oh, kh, ow, kw, c)
    return np.ascontiguousarray(xh.transpose(2, 4, 0, 1, 3, 5)).reshape(kh * kw, n, oh, ow, c)


def _untile(tiles, kernel, shape):
    """The transpose of `_tiles`: `(kh*kw, N, OH, OW, C)` back to an `(N, C, H, W)` image
    (channels-last memory), zeros where no window reaches."""
    (kh, kw), (n, c, h, w) = kernel, shape
    _, _, oh, ow, _ = tiles.shape
    img = tiles.reshape(kh, kw, n, oh, ow, c).transpose(2, 3, 0, 4, 1, 5)
    img = img.reshape(n, oh * kh, ow * kw, c)
    if (oh * kh, ow * kw) != (h, w):
        full = np.zeros((n, h, w, c), tiles.dtype)
        full[:, :oh * kh, :ow * kw] = img
        img = full
    return img.transpose(0, 3, 1, 2)


def _is_tiling(kernel, stride, padding):
    return kernel == stride and padding == (0, 0)


def _tile_masks(x, ans, kernel):
    """Per window offset k: where offset k holds its window's first maximum, `(N, OH, OW, C)`."""
    tiles = _tiles(x, kernel, ans.shape[2:])
    a = ans.transpose(0, 2, 3, 1)
    taken = np.zeros(a.shape, bool)
    for k in range(len(tiles)):
        m = tiles[k] == a
        m &= ~taken
        taken |= m
        yield k, m


def _pool_impl(x, *, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        return _tiles(x, kernel, _pool_out_hw(x.shape, kernel, stride, padding)).max(
            axis=0).transpose(0, 3, 1, 2)
    xp = _pad_hw(x, padding, -np.inf)
    out = None
    for sl in _offsets(kernel, stride, _pool_out_hw(x.shape, kernel, stride, padding)):
        out = xp[sl].copy(order='K') if out is None else np.maximum(out, xp[sl], out=out)
    return out


def _pool_masks(x, ans, kernel, stride, padding):
    """`(slice, mask)` per window offset: where that offset holds its window's first maximum."""
    xp = _pad_hw(x, padding, -np.inf)
    taken = np.zeros(ans.shape, bool)
    for sl in _offsets(kernel, stride, ans.shape[2:]):
        m = (xp[sl] == ans) & ~taken
        taken |= m
        yield sl, m


def _pool_out_hw(shape, kernel, stride, padding):
    return tuple(conv_output_size(d, k, s, p)
                 for d, k, s, p in zip(shape[2:], kernel, stride, padding))


def _pool_scatter_impl(g, x, ans, *, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        gh = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
        out = np.empty((kernel[0] * kernel[1],) + gh.shape, g.dtype)
        for k, m in _tile_masks(x, ans, kernel):
            np.multiply(gh, m, out=out[k])        # (copyto with where= is far slower)
        return _untile(out, kernel, x.shape)
    (ph, pw), (n, c, h, w) = padding, x.shape
    # the layout of x (channels-last memory after a conv), so the relu before sees one layout
    out = _pad_hw(np.zeros_like(x, dtype=g.dtype), padding, 0)
    for sl, m in _pool_masks(x, ans, kernel, stride, padding):
        out[sl] += np.where(m, g, 0)
    return out[:, :, ph:ph + h, pw:pw + w]


def _pool_gather_impl(t, x, ans, *, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        tiles = _tiles(t, kernel, ans.shape[2:])
        out = np.zeros(tiles.shape[1:], t.dtype)
        for k, m in _tile_masks(x, ans, kernel):
            out += tiles[k] * m                   # the masks are disjoint
        return out.transpose(0, 3, 1, 2)
    tp = _pad_hw(t, padding, 0)
    out = np.zeros(ans.shape, dtype=t.dtype)
    for sl, m in _pool_masks(x, ans, kernel, stride, padding):
        out += np.where(m, tp[sl], 0)
    return out


max_pool2d_p = Primitive(
    'max_pool2d', _pool_impl,
    vjp=[lambda g, ans, x, **p: pool_scatter(g, x, ans, **p)],
    jvp=[lambda t, ans, x, **p: pool_gather(t, x, ans, **p)])
pool_scatter_p = Primitive(
    'pool_scatter', _pool_scatter_impl,
    vjp=[lambda g, out, u, x, ans, **p: pool_gather(g, x, ans, **p), None, None],
    jvp=[lambda t, out, u, x, ans, **p: pool_scatter(t, x, ans, **p), None, None])
pool_gather_p = Primitive(
    'pool_gather', _pool_gather_impl,
    vjp=[lambda g, out, t, x, ans, **p: pool_scatter(g, x, ans, **p), None, None],
    jvp=[lambda t, out, u, x, ans, **p: pool_gather(t, x, ans, **p), None, None])


def max_pool2d(x, kernel, stride, padding):
    """Max over `kernel` windows of `x` `(N, C, H, W)` (padding with -inf); arguments as pairs,
    checked by `chainrule.nn.functional.max_pool2d`."""
    return bind(max_pool2d_p, x, kernel=kernel, stride=stride, padding=padding)


def pool_scatter(g, x, ans, **p):
    """The VJP of `max_pool2d`: `g` `(N, C, OH, OW)` added at each window's maximum of `x`."""
    return bind(pool_scatter_p, g, ops.stop_gradient(x), ops.stop_gradient(ans), **p)


def pool_gather(t, x, ans, **p):
    """The JVP of `max_pool2d`: `t` (shaped like `x`) read at each window's maximum."""
    return bind(pool_gather_p, t, ops.stop_gradient(x), ops.stop_gradient(ans), **p)


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


def _conv_batch(args, dims, *, stride, padding):
    x, w, *b = args
    if dims[1] is None and (not b or dims[2] is None):       # shared weights: B merges into N
        sx = shape_of(x)
        out = bind(conv2d_p, ops.reshape(x, (sx[0] * sx[1],) + tuple(sx[2:])), w, *b,
                   stride=stride, padding=padding)
        return ops.reshape(out, tuple(sx[:2]) + tuple(shape_of(out)[1:])), 0
    # per-example weights: unfold every image, then one batched product with the weights
    size = _batch_size(args, dims)
    xs, ws = _stacked(x, dims[0], size), _stacked(w, dims[1], size)
    _, n, c, h, wd = shape_of(xs)
    _, o, _, kh, kw = shape_of(ws)
    cols = unfold(ops.reshape(xs, (size * n, c, h, wd)), (kh, kw), stride, padding)
    _, oh, ow, k = shape_of(cols)
    w2 = ops.reshape(ops.transpose(ws, (0, 1, 3, 4, 2)), (size, o, k))
    out = ops.matmul(ops.reshape(cols, (size, n * oh * ow, k)), ops.transpose(w2, (0, 2, 1)))
    if b:
        out = out + ops.reshape(_stacked(b[0], dims[2], size), (size, 1, o))
    return ops.transpose(ops.reshape(out, (size, n, oh, ow, o)), (0, 1, 4, 2, 3)), 0


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


linear_p.batch = _linear_batch
conv2d_p.batch = _conv_batch
cross_entropy_p.batch = _ce_batch
log_softmax_p.batch = lambda args, dims, *, axis: (bind(log_softmax_p, args[0], axis=axis + 1),
                                                   0)
for _p in (unfold_p, fold_p, max_pool2d_p, pool_scatter_p, pool_gather_p):
    _p.batch = _merged_batch(_p)
