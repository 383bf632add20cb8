"""The loss functions of `chainrule.nn.functional`, with PyTorch's signatures, defaults and
formulas: class losses (`cross_entropy` with `weight`, `ignore_index`, `label_smoothing`,
probability targets and `(N, C, d1, ...)` inputs; `nll_loss`), regression losses (`mse_loss`,
`l1_loss`, `smooth_l1_loss`, `huber_loss`, `gaussian_nll_loss`, `poisson_nll_loss`),
probability losses (`binary_cross_entropy`, `binary_cross_entropy_with_logits`, `kl_div`,
`multilabel_soft_margin_loss`) and margin/embedding losses (`margin_ranking_loss`,
`hinge_embedding_loss`, `soft_margin_loss`, `cosine_embedding_loss`, `triplet_margin_loss`).

Every one is a composite of differentiable primitives (no derivative code here) and takes NumPy
arrays, `Tensor`s or traced values. PyTorch's deprecated `size_average=`/`reduce=` arguments are
accepted and mapped to `reduction` as PyTorch maps them.
"""

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ShapeError, Tracer, dtype_of, shape_of
from chainrule.nn._activation_functions import softplus0
from chainrule.ops import nn as nnops

__all__ = ['cross_entropy', 'nll_loss', 'mse_loss', 'l1_loss', 'smooth_l1_loss', 'huber_loss',
           'binary_cross_entropy', 'binary_cross_entropy_with_logits', 'kl_div',
           'poisson_nll_loss', 'gaussian_nll_loss', 'margin_ranking_loss',
           'hinge_embedding_loss', 'soft_margin_loss', 'cosine_embedding_loss',
           'triplet_margin_loss', 'multilabel_soft_margin_loss', 'pairwise_distance',
           'cosine_similarity']


def _reduce(losses, reduction, op):
    if reduction == 'mean':
        return cnp.mean(losses)
    if reduction == 'sum':
        return cnp.sum(losses)
    if reduction == 'none':
        return losses
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduction(size_average, reduce, reduction):
    """PyTorch's mapping of the deprecated `size_average`/`reduce` pair onto `reduction`."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return 'none' if not reduce else 'mean' if size_average else 'sum'


def _same_shape(op, *arrays, names=('input', 'target')):
    shapes = [shape_of(a) for a in arrays]
    if any(s != shapes[0] for s in shapes[1:]):
        told = ', '.join(f'{n} {s}' for n, s in zip(names, shapes))
        raise ShapeError(f'{op}: {told} must have one shape')


def _hinge(x):
    """`max(x, 0)` with derivative 1 at 0 (PyTorch's `clamp_min(0)` in its margin losses)."""
    return cnp.where(ops.greater_equal(x, 0), x, 0.0)


def _grad_as_identity(x, y):
    """`y`'s value with `x`'s derivative (PyTorch's in-place clamps under `no_grad`)."""
    return x + ops.stop_gradient(y - x)


# --- class losses ----------------------------------------------------------------------------

def _classes_last(input, target, op):
    """Logits/log-probabilities as `(M, C)` rows and class-index targets as `(M,)`, from
    PyTorch's `(C,)`/`()`, `(N, C)`/`(N,)` and `(N, C, d1, ...)`/`(N, d1, ...)` layouts; and
    the target's shape (the shape of `reduction='none'` results)."""
    si, st = shape_of(input), shape_of(target)
    if len(si) == 1 and st == ():
        return ops.reshape(input, (1, si[0])), ops.reshape(target, (1,)), ()
    if len(si) < 2 or st != si[:1] + si[2:]:
        raise ShapeError(f'{op}: input {si} and target {st} do not fit: input must be (N, C) '
                         'or (N, C, d1, ...) and target (N,) or (N, d1, ...) class indices '
                         '(or (C,) and ())')
    if len(si) == 2:
        return input, target, st
    return (ops.reshape(cnp.moveaxis(input, 1, -1), (-1, si[1])), ops.reshape(target, (-1,)),
            st)


def _as_labels(target):
    return target if isinstance(target, Tracer) else np.asarray(getattr(target, 'data', target))


def _check_class_weight(op, weight, c):
    if weight is not None and tuple(shape_of(weight)) != (c,):
        raise ShapeError(f'{op}: weight must hold one value per class, shape ({c},), got '
                         f'shape {tuple(shape_of(weight))}')


def _weighted_picks(logp, t, weight, ignore_index, op):
    """`(-logp[i, t_i] * w_i, w_i)` per row, `w_i` the weight of the row's class (0 for
    `ignore_index` rows); `w_i` is None when every row weighs 1."""
    c = shape_of(logp)[1]
    _check_class_weight(op, weight, c)
    t = nnops.class_labels(t, c, ignore_index, op)
    dt = dtype_of(logp)
    onehot = nnops._onehot(t, c, dt)
    picked = -cnp.sum(logp * onehot, axis=1)
    all_kept = not isinstance(t, Tracer) and not (np.asarray(t) == ignore_index).any()
    if weight is None and all_kept:
        return picked, None
    w = ops.astype(ops.not_equal(t, ignore_index), dt)
    if weight is not None:
        w = w * cnp.sum(onehot * ops.astype(weight, dt), axis=1)
    return picked * w, w


def _finish(losses, w, reduction, shape, op):
    """Reduce per-row losses: a weighted mean divides by the summed weights (nan when it is 0,
    as PyTorch); 'none' gives the target's shape."""
    if reduction == 'none':
        return ops.reshape(losses, shape)
    if reduction == 'mean' and w is not None:
        return nnops.mean_over_kept(cnp.sum(losses), cnp.sum(w))
    return _reduce(losses, reduction, op)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction='mean'):
    """Negative log-likelihood of class indices `target` under log-probabilities `input`:
    `-weight[t] * input[i, t]` per example, PyTorch's `F.nll_loss`.

    Args:
        input: log-probabilities `(N, C)`, `(N, C, d1, ...)` or `(C,)`.
        target: class indices `(N,)`, `(N, d1, ...)` or `()`.
        weight: optional per-class weights `(C,)`; the mean then divides by the summed weights
            of the targets.
        ignore_index: a target that counts for nothing (loss 0, left out of the mean).
        reduction: 'mean' (default), 'sum' or 'none'.

    Raises:
        IndexOutOfRangeError: a target outside `[0, C)` that is not `ignore_index`, named with
            its position.
    """
    reduction = _reduction(size_average, reduce, reduction)
    logp, t, shape = _classes_last(input, _as_labels(target), 'nll_loss')
    losses, w = _weighted_picks(logp, t, weight, ignore_index, 'nll_loss')
    return _finish(losses, w, reduction, shape, 'nll_loss')


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                  reduce=None, reduction='mean', label_smoothing=0.0):
    """Cross-entropy from logits, numerically stable, PyTorch's `F.cross_entropy`.

    Args:
        input: logits `(N, C)`, `(N, C, d1, ...)` or `(C,)`.
        target: class indices (`(N,)`, `(N, d1, ...)` or `()`), or class probabilities of
            `input`'s shape (soft labels).
        weight: optional per-class weights `(C,)`. With class indices, the mean divides by the
            summed weights of the targets (PyTorch's rule); with probabilities, by the number of
            examples.
        ignore_index: a class index that counts for nothing (class-index targets only).
        reduction: 'mean' (default), 'sum' or 'none'.
        label_smoothing: in [0, 1]: the target becomes `(1 - s) * onehot + s / C`.

    Raises:
        IndexOutOfRangeError: a target outside `[0, C)` that is not `ignore_index` (PyTorch:
            "Target 7 is out of bounds"); the message names it and its position.
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f'cross_entropy: label_smoothing must be in [0, 1], got '
                         f'{label_smoothing}')
    si = shape_of(input)
    if shape_of(target) == si and np.dtype(dtype_of(target)).kind in 'fc':
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    t = _as_labels(target)
    if len(si) == 2 and weight is None and not label_smoothing and \
            reduction in ('mean', 'sum', 'none'):
        return nnops.cross_entropy(input, t, reduction=reduction, ignore_index=ignore_index)
    logits, t, shape = _classes_last(input, t, 'cross_entropy')
    logp = nnops.log_softmax(logits, 1)
    losses, w = _weighted_picks(logp, t, weight, ignore_index, 'cross_entropy')
    out = _finish(losses, w, reduction, shape, 'cross_entropy')
    if not label_smoothing:
        return out
    # PyTorch: (1 - s) * nll + s / C * smooth, smooth = -sum_c weight_c logp_c over kept rows,
    # its mean divided by the same denominator as the nll's
    c = si[1] if len(si) > 1 else si[0]
    dt = dtype_of(logp)
    keep = ops.astype(ops.not_equal(t, ignore_index), dt)
    wc = 1.0 if weight is None else ops.astype(weight, dt)
    smooth = -cnp.sum(logp * wc, axis=1) * keep
    if reduction == 'mean':
        denom = cnp.sum(keep) if w is None else cnp.sum(w)
        smooth = nnops.mean_over_kept(cnp.sum(smooth), denom)
    elif reduction == 'sum':
        smooth = cnp.sum(smooth)
    else:
        smooth = ops.reshape(smooth, shape)
    return (1 - label_smoothing) * out + (label_smoothing / c) * smooth


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    si = shape_of(input)
    axis = 0 if len(si) == 1 else 1
    c = si[axis]
    _check_class_weight('cross_entropy', weight, c)
    logp = nnops.log_softmax(input, axis)
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / c
    if weight is not None:
        shape = (c,) + (1,) * (len(si) - axis - 1)
        target = target * ops.reshape(ops.astype(weight, dtype_of(logp)), shape)
    return _reduce(-cnp.sum(target * logp, axis=axis), reduction, 'cross_entropy')


# --- regression losses -----------------------------------------------------------------------

def mse_loss(input, target, size_average=None, reduce=None, reduction='mean', weight=None):
    """Mean squared error `(input - target)**2`, reduced (`weight` multiplies each term)."""
    _same_shape('mse_loss', input, target)
    d = input - target
    losses = d * d if weight is None else d * d * weight
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'mse_loss')


def l1_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    """Mean absolute error `|input - target|`, reduced."""
    _same_shape('l1_loss', input, target)
    return _reduce(ops.abs(input - target), _reduction(size_average, reduce, reduction),
                   'l1_loss')


def _huber(input, target, delta, op):
    _same_shape(op, input, target)
    d = input - target
    a = ops.abs(d)
    return cnp.where(ops.less(a, delta), 0.5 * d * d, delta * (a - 0.5 * delta))


def huber_loss(input, target, reduction='mean', delta=1.0, weight=None):
    """Huber's loss: `0.5 d**2` where `|d| < delta`, else `delta (|d| - 0.5 delta)`."""
    if delta <= 0:
        raise ValueError(f'huber_loss: delta must be positive, got {delta}')
    losses = _huber(input, target, float(delta), 'huber_loss')
    return _reduce(losses if weight is None else losses * weight, reduction, 'huber_loss')


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction='mean', beta=1.0):
    """PyTorch's smooth L1: `0.5 d**2 / beta` where `|d| < beta`, else `|d| - 0.5 beta` (the L1
    loss when `beta` is 0)."""
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f'smooth_l1_loss: beta must be >= 0, got {beta}')
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    return _reduce(_huber(input, target, float(beta), 'smooth_l1_loss') / beta, reduction,
                   'smooth_l1_loss')


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction='mean'):
    """Negative log-likelihood of `target` under normals of mean `input` and variance `var`:
    `0.5 (log var + (input - target)**2 / var)` (+ `0.5 log 2 pi` with `full`). `var` has
    `input`'s shape, or it without its last axis (or with last axis 1: one variance per
    example). Variances below `eps` are raised to `eps` for the value only, as PyTorch."""
    si, sv = shape_of(input), shape_of(var)
    _same_shape('gaussian_nll_loss', input, target)
    if sv != si:
        if sv == si[:-1]:
            var = cnp.expand_dims(var, -1)
        elif not (sv == si[:-1] + (1,)):
            raise ShapeError(f'gaussian_nll_loss: var {sv} must have the shape of input {si}, '
                             'or that shape with its last axis 1 or dropped')
    if not isinstance(var, Tracer) and np.any(np.asarray(getattr(var, 'data', var)) < 0):
        raise ValueError('gaussian_nll_loss: var has negative entries')
    var = _grad_as_identity(var, ops.maximum(var, eps))
    d = input - target
    losses = 0.5 * (ops.log(var) + d * d / var)
    if full:
        losses = losses + 0.5 * math.log(2 * math.pi)
    return _reduce(losses, reduction, 'gaussian_nll_loss')


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8,
                     reduce=None, reduction='mean'):
    """Negative log-likelihood of counts `target` under Poisson rates: `exp(input) - target *
    input` when `input` is the log-rate (default), else `input - target * log(input + eps)`;
    with `full`, Stirling's term `t log t - t + 0.5 log(2 pi t)` for targets above 1."""
    _same_shape('poisson_nll_loss', input, target)
    if log_input:
        losses = ops.exp(input) - target * input
    else:
        losses = input - target * ops.log(input + eps)
    if full:
        big = ops.greater(target, 1)
        t = cnp.where(big, target, 1.0)
        stirling = t * ops.log(t) - t + 0.5 * ops.log(2 * math.pi * t)
        losses = losses + cnp.where(big, stirling, 0.0)
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'poisson_nll_loss')


# --- probability losses ----------------------------------------------------------------------

# PyTorch's derivative of binary cross-entropy is (p - t) / max(p (1 - p), 1e-12): the exact one
# where p (1 - p) >= 1e-12, finite at p = 0 and 1 (where the logs are clamped at -100 and their
# derivatives would be infinite, and 0 * inf NaN). Both sides are written so that neither sends a
# NaN into the other's derivative.
_BCE_EPS = 1e-12


def _bce_inside(p, t):
    """`-(t log p + (1 - t) log(1 - p))` where p (1 - p) >= eps (elsewhere on p = 1/2)."""
    p = cnp.where(ops.greater_equal(p * (1 - p), _BCE_EPS), p, 0.5)
    return -(t * ops.log(p) + (1 - t) * ops.log(1 - p))


def _bce_edge(p, t):
    """Near 0 and 1: the value with the logs clamped at -100, and PyTorch's derivatives
    `(p - t) / eps` and `1 / eps` (the terms in `d = p - p0` are 0 in value)."""
    p0 = ops.stop_gradient(p)
    # log(max(q, smallest subnormal)) clamped at -100 is log(q) clamped, without log(0)'s warning
    low = np.finfo(np.result_type(dtype_of(p), np.float32)).smallest_subnormal
    value = -(t * cnp.maximum(ops.log(cnp.maximum(p0, low)), -100.0)
              + (1 - t) * cnp.maximum(ops.log(cnp.maximum(1 - p0, low)), -100.0))
    d = p - p0
    return ops.stop_gradient(value) + d * ((p0 - t) / _BCE_EPS) + d * d * (0.5 / _BCE_EPS)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction='mean'):
    """Binary cross-entropy of probabilities `input` for targets in [0, 1]:
    `-weight (t log p + (1 - t) log(1 - p))`, each log clamped at -100 as PyTorch's, with
    PyTorch's finite derivative at p = 0 and 1."""
    _same_shape('binary_cross_entropy', input, target)
    x = getattr(input, 'data', input)
    if not isinstance(x, Tracer) and np.size(x) and \
            (np.nanmin(np.asarray(x)) < 0 or np.nanmax(np.asarray(x)) > 1):
        raise ValueError('binary_cross_entropy: input must be probabilities in [0, 1] '
                         '(for logits use binary_cross_entropy_with_logits)')
    losses = cnp.where(ops.greater_equal(input * (1 - input), _BCE_EPS),
                       _bce_inside(input, target), _bce_edge(input, target))
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'binary_cross_entropy')


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction='mean', pos_weight=None):
    """Binary cross-entropy of `target` in [0, 1] under logits `input`, stable for any logit:
    `pos_weight t log(1 + exp(-x)) + (1 - t) log(1 + exp(x))`, times `weight` (written so,
    not as `(1 - t) x + ...`, its derivative keeps its precision where `t` is 0 or 1).

    Args:
        input: logits, any shape.
        target: probabilities of the positive class, the same shape.
        weight: optional weight of each term (broadcast against `input`).
        reduction: 'mean' (default), 'sum' or 'none'.
        pos_weight: optional weight of the positive class (broadcast against the last axis).
    """
    _same_shape('binary_cross_entropy_with_logits', input, target)
    pos = target * softplus0(-input)                          # -t log sigmoid(x)
    if pos_weight is not None:
        pos = pos * pos_weight
    losses = pos + (1 - target) * softplus0(input)            # -(1 - t) log sigmoid(-x)
    if weight is not None:
        losses = losses * weight
    return _reduce(losses, _reduction(size_average, reduce, reduction),
                   'binary_cross_entropy_with_logits')


def kl_div(input, target, size_average=None, reduce=None, reduction='mean', log_target=False):
    """Kullback-Leibler divergence with log-probabilities `input`: `t (log t - input)` per
    element (0 where `t` is 0), or `exp(t) (t - input)` with `log_target`. `reduction=
    'batchmean'` divides the sum by the batch size (the true KL divergence per example;
    PyTorch's 'mean' divides by the number of elements)."""
    _same_shape('kl_div', input, target)
    if log_target:
        losses = ops.exp(target) * (target - input)
    else:
        pos = ops.greater(target, 0)
        safe = cnp.where(pos, target, 1.0)
        losses = cnp.where(pos, target * ops.log(safe), 0.0) - target * input
    reduction = _reduction(size_average, reduce, reduction)
    if reduction == 'batchmean':
        n = shape_of(input)[0] if shape_of(input) else 1
        return cnp.sum(losses) / n
    return _reduce(losses, reduction, 'kl_div')


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction='mean'):
    """One-vs-all logistic loss of `(N, C)` logits for `(N, C)` 0/1 targets, averaged over the
    classes: `-mean_c(t log sigmoid(x) + (1 - t) log sigmoid(-x))`."""
    _same_shape('multilabel_soft_margin_loss', input, target)
    losses = target * softplus0(-input) + (1 - target) * softplus0(input)
    if weight is not None:
        losses = losses * weight
    losses = cnp.mean(losses, axis=-1)
    return _reduce(losses, _reduction(size_average, reduce, reduction),
                   'multilabel_soft_margin_loss')


# --- margin and embedding losses -------------------------------------------------------------

def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                        reduction='mean'):
    """`max(0, -target (input1 - input2) + margin)` for targets +1/-1."""
    _same_shape('margin_ranking_loss', input1, input2, target,
                names=('input1', 'input2', 'target'))
    losses = _hinge(-target * (input1 - input2) + margin)
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'margin_ranking_loss')


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None,
                         reduction='mean'):
    """`input` where the target is 1, `max(0, margin - input)` where it is -1."""
    _same_shape('hinge_embedding_loss', input, target)
    losses = (cnp.where(ops.not_equal(target, 1), _hinge(margin - input), 0.0)
              + cnp.where(ops.not_equal(target, -1), input, 0.0))
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'hinge_embedding_loss')


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction='mean'):
    """Two-class logistic loss `log(1 + exp(-target * input))` for targets +1/-1."""
    _same_shape('soft_margin_loss', input, target)
    return _reduce(softplus0(-target * input), _reduction(size_average, reduce, reduction),
                   'soft_margin_loss')


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """`||x1 - x2 + eps||_p` along the last axis (the `eps` keeps the gradient finite at 0)."""
    d = x1 - x2 + eps
    if p == 2:
        return cnp.linalg.norm(d, axis=-1, keepdims=keepdim)
    return cnp.linalg.norm(d, ord=p, axis=-1, keepdims=keepdim)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """`sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps))` along `dim` (inputs broadcast; the
    clamp at `eps` changes values only, as PyTorch's)."""
    n1 = cnp.linalg.norm(x1, axis=dim, keepdims=True)
    n2 = cnp.linalg.norm(x2, axis=dim, keepdims=True)
    n1 = _grad_as_identity(n1, ops.maximum(n1, eps))
    n2 = _grad_as_identity(n2, ops.maximum(n2, eps))
    return cnp.sum((x1 / n1) * (x2 / n2), axis=dim)


def cosine_embedding_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                          reduction='mean'):
    """`1 - cos(x1, x2)` where the target is 1, `max(0, cos(x1, x2) - margin)` where it is -1;
    the cosine along the last axis with PyTorch's `1e-12` added to each squared norm."""
    _same_shape('cosine_embedding_loss', input1, input2, names=('input1', 'input2'))
    eps = 1e-12
    dot = cnp.sum(input1 * input2, axis=-1)
    m1 = cnp.sum(input1 * input1, axis=-1) + eps
    m2 = cnp.sum(input2 * input2, axis=-1) + eps
    cos = dot / ops.sqrt(m1 * m2)
    losses = (cnp.where(ops.equal(target, 1), 1 - cos, 0.0)
              + cnp.where(ops.equal(target, -1), _hinge(cos - margin), 0.0))
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'cosine_embedding_loss')


def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False,
                        size_average=None, reduce=None, reduction='mean'):
    """`max(d(a, p) - d(a, n) + margin, 0)` with `d` the `pairwise_distance`; with `swap`,
    `d(a, n)` is replaced by `min(d(a, n), d(p, n))`."""
    _same_shape('triplet_margin_loss', anchor, positive, negative,
                names=('anchor', 'positive', 'negative'))
    d_ap = pairwise_distance(anchor, positive, p, eps)
    d_an = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_an = ops.minimum(d_an, pairwise_distance(positive, negative, p, eps))
    losses = _hinge(d_ap - d_an + margin)
    return _reduce(losses, _reduction(size_average, reduce, reduction), 'triplet_margin_loss')
