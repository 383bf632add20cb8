"""Cross-entropy of integer class labels as one primitive (VJP `(softmax - onehot) / N`,
ignored targets counting for nothing, as in PyTorch), and `class_labels`: labels checked to be
in range wherever their values are known (eagerly, under grad and vmap, when a jitted
function runs).
"""

import numpy as np

from chainrule import ops
from chainrule.core import (
    IndexOutOfRangeError, Primitive, ShapeError, Tracer, bind, dtype_of, shape_of)
from chainrule.ops.nn_activations import _log_softmax_impl, log_softmax
from chainrule.ops.nn_common import _batch_size, _plain, _stacked


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


cross_entropy_p.batch = _ce_batch
