"""Loss modules and the further activation modules PyTorch code reaches for: `MSELoss`,
`L1Loss`, `SmoothL1Loss`, `HuberLoss`, `BCELoss`, `BCEWithLogitsLoss`, `NLLLoss`,
`CrossEntropyLoss`; `SiLU`, `LeakyReLU`, `ELU`, `Softplus`. Each module is called as in
PyTorch, `criterion(input, target)` / `act(x)`, with PyTorch's constructor arguments.

Not yet supported (a clear error): `CrossEntropyLoss(weight=...)` and
`CrossEntropyLoss(label_smoothing=...)` together with `ignore_index` targets in the batch.
"""

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, ShapeError, shape_of
from chainrule.nn import functional as F
from chainrule.nn.modules import Module

__all__ = ['MSELoss', 'L1Loss', 'SmoothL1Loss', 'HuberLoss', 'BCELoss', 'BCEWithLogitsLoss',
           'NLLLoss', 'CrossEntropyLoss', 'SiLU', 'LeakyReLU', 'ELU', 'Softplus']


def _same_shape(op, input, target):
    si, st = shape_of(input), shape_of(target)
    if si != st:
        raise ShapeError(f'{op}: input {si} and target {st} must have one shape')


class _Loss(Module):
    def __init__(self, reduction='mean'):
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"{type(self).__name__}: reduction must be 'mean', 'sum' or "
                             f"'none', got {reduction!r}")
        self.reduction = reduction

    def _reduce(self, losses):
        return F._reduce(losses, self.reduction, type(self).__name__)


class MSELoss(_Loss):
    """`(input - target)**2`, reduced."""

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """`|input - target|`, reduced."""

    def forward(self, input, target):
        _same_shape('L1Loss', input, target)
        return self._reduce(ops.abs(input - target))


class HuberLoss(_Loss):
    """`0.5 d**2` where `|d| < delta`, else `delta (|d| - 0.5 delta)`, with `d = input - target`."""

    def __init__(self, reduction='mean', delta=1.0):
        super().__init__(reduction)
        self.delta = float(delta)

    def forward(self, input, target):
        _same_shape(type(self).__name__, input, target)
        import chainrule.numpy as cnp
        d = input - target
        a = ops.abs(d)
        small = ops.less(a, self.delta)
        losses = cnp.where(small, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        return self._reduce(losses)


class SmoothL1Loss(HuberLoss):
    """Huber's loss divided by `beta` (PyTorch's smooth L1): `0.5 d**2 / beta` where
    `|d| < beta`, else `|d| - 0.5 beta`."""

    def __init__(self, reduction='mean', beta=1.0):
        super().__init__(reduction, beta)

    def forward(self, input, target):
        return super().forward(input, target) / self.delta


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities `input` for targets in [0, 1]; each log is
    clamped at -100, as PyTorch's."""

    def forward(self, input, target):
        _same_shape('BCELoss', input, target)
        import chainrule.numpy as cnp
        log_p = cnp.maximum(ops.log(input), -100.0)
        log_q = cnp.maximum(ops.log(1 - input), -100.0)
        return self._reduce(-(target * log_p + (1 - target) * log_q))


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, stable for any logit (`pos_weight` as PyTorch's)."""

    def __init__(self, reduction='mean', pos_weight=None):
        super().__init__(reduction)
        self.pos_weight = pos_weight

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.reduction,
                                                  self.pos_weight)


class NLLLoss(_Loss):
    """Negative log-likelihood of class indices under log-probabilities `(N, C)`."""

    def __init__(self, reduction='mean', ignore_index=-100):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.reduction, self.ignore_index)


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits `(N, C)` and class indices `(N,)` (or class probabilities),
    with PyTorch's `weight` (per-class weights; the mean divides by the summed weights of the
    targets), `ignore_index` and `label_smoothing`."""

    def __init__(self, weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0):
        super().__init__(reduction)
        self.weight = None if weight is None else np.asarray(getattr(weight, 'data', weight))
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        if self.weight is None and not self.label_smoothing:
            return F.cross_entropy(input, target, self.reduction, self.ignore_index)
        t = np.asarray(getattr(target, 'data', target))
        si = shape_of(input)
        if t.shape != si[:1] or t.dtype.kind not in 'iu':
            raise ChainruleError('CrossEntropyLoss: weight= and label_smoothing= are supported '
                                 'for class-index targets (N,) only')
        if (t == self.ignore_index).any():
            raise ChainruleError('CrossEntropyLoss: weight= or label_smoothing= together with '
                                 'ignore_index targets is not supported yet')
        c = si[1]
        logp = F.log_softmax(input, 1)
        w = np.ones(c) if self.weight is None else self.weight
        eps = self.label_smoothing
        soft = (1 - eps) * np.eye(c)[t] + eps / c                  # (N, C) smoothed targets
        import chainrule.numpy as cnp
        losses = -cnp.sum(logp * (soft * w).astype(logp.dtype), axis=1)
        if self.reduction == 'mean':
            return cnp.sum(losses) / float(w[t].sum())
        return self._reduce(losses)


def _act(name, fn, doc, **defaults):
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        params = dict(defaults)
        params.update(zip(defaults, args))
        params.update({k: v for k, v in kwargs.items() if k != 'inplace'})
        for k, v in params.items():
            setattr(self, k, v)

    def forward(self, x):
        return fn(x, **{k: getattr(self, k) for k in defaults})

    return type(name, (Module,), {'__init__': __init__, 'forward': forward, '__doc__': doc,
                                  '__module__': __name__})


def _silu(x):
    return x * F.sigmoid(x)


def _leaky_relu(x, negative_slope):
    import chainrule.numpy as cnp
    return cnp.where(ops.greater(x, 0), x, x * negative_slope)


def _elu(x, alpha):
    import chainrule.numpy as cnp
    return cnp.where(ops.greater(x, 0), x, alpha * ops.expm1(cnp.minimum(x, 0)))


def _softplus(x, beta, threshold):
    import chainrule.numpy as cnp
    bx = x * beta
    return cnp.where(ops.greater(bx, threshold), x,
                     ops.log1p(ops.exp(cnp.minimum(bx, threshold))) / beta)


SiLU = _act('SiLU', lambda x: _silu(x), '`x * sigmoid(x)` (swish).')
LeakyReLU = _act('LeakyReLU', _leaky_relu, '`x` where positive, else `negative_slope * x`.',
                 negative_slope=0.01)
ELU = _act('ELU', _elu, '`x` where positive, else `alpha * (exp(x) - 1)`.', alpha=1.0)
Softplus = _act('Softplus', _softplus, '`log(1 + exp(beta x)) / beta`, linear above '
                '`threshold`.', beta=1.0, threshold=20.0)
