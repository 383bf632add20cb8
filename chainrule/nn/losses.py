"""Loss modules, PyTorch's `torch.nn` losses: each is called as `criterion(input, target)`
with PyTorch's constructor arguments (including the deprecated `size_average`/`reduce`), and
computes its `nn.functional` counterpart (`chainrule/nn/_loss_functions.py`).
"""

import numpy as np

from chainrule.nn import functional as F
from chainrule.nn.modules import Module

__all__ = ['MSELoss', 'L1Loss', 'SmoothL1Loss', 'HuberLoss', 'BCELoss', 'BCEWithLogitsLoss',
           'NLLLoss', 'CrossEntropyLoss', 'KLDivLoss', 'PoissonNLLLoss', 'GaussianNLLLoss',
           'MarginRankingLoss', 'HingeEmbeddingLoss', 'SoftMarginLoss', 'CosineEmbeddingLoss',
           'TripletMarginLoss', 'MultiLabelSoftMarginLoss']

_REDUCTIONS = ('mean', 'sum', 'none')


def _constant(w):
    """A class-weight argument as a NumPy array (PyTorch registers it as a buffer)."""
    return None if w is None else np.asarray(getattr(w, 'data', w))


class _Loss(Module):
    _extra_reductions = ()

    def __init__(self, size_average=None, reduce=None, reduction='mean'):
        super().__init__()
        reduction = F._loss_functions._reduction(size_average, reduce, reduction)
        if reduction not in _REDUCTIONS + self._extra_reductions:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{_REDUCTIONS + self._extra_reductions}, got {reduction!r}")
        self.reduction = reduction


_LEGACY = ('size_average', 'reduce', 'reduction')


def _loss(name, fn, doc, order=_LEGACY, **options):
    """A loss module calling `fn(*inputs, reduction=..., **options)`; its constructor takes
    `options` (with their defaults) and `size_average`/`reduce`/`reduction`, positionally in
    PyTorch's `order`. A `weight` option is kept as a NumPy array."""
    def __init__(self, *args, **kwargs):
        if len(args) > len(order):
            raise TypeError(f'{name}() takes at most {len(order)} positional arguments '
                            f'({", ".join(order)}), got {len(args)}')
        given = dict(zip(order, args))
        twice = set(given) & set(kwargs)
        unknown = set(kwargs) - set(order)
        if twice or unknown:
            raise TypeError(f'{name}: unexpected or repeated argument(s) '
                            f'{sorted(twice | unknown)}')
        given.update(kwargs)
        _Loss.__init__(self, given.pop('size_average', None), given.pop('reduce', None),
                       given.pop('reduction', 'mean'))
        for k, v in dict(options, **given).items():
            setattr(self, k, _constant(v) if k == 'weight' else v)

    def forward(self, *inputs):
        return fn(*inputs, reduction=self.reduction, **{k: getattr(self, k) for k in options})

    return type(name, (_Loss,), {'__init__': __init__, 'forward': forward, '__doc__': doc,
                                 '__module__': __name__})


_WEIGHTED = ('weight',) + _LEGACY
MSELoss = _loss('MSELoss', F.mse_loss, '`(input - target)**2`, reduced.')
L1Loss = _loss('L1Loss', F.l1_loss, '`|input - target|`, reduced.')
SmoothL1Loss = _loss('SmoothL1Loss', F.smooth_l1_loss, "Huber's loss divided by `beta` "
                     "(PyTorch's smooth L1).", _LEGACY + ('beta',), beta=1.0)
BCELoss = _loss('BCELoss', F.binary_cross_entropy, 'Binary cross-entropy of probabilities; '
                "each log is clamped at -100, as PyTorch's.", _WEIGHTED, weight=None)
KLDivLoss = _loss('KLDivLoss', F.kl_div, "KL divergence from log-probabilities `input` "
                  "(`reduction='batchmean'` gives the per-example divergence).",
                  _LEGACY + ('log_target',), log_target=False)
KLDivLoss._extra_reductions = ('batchmean',)
PoissonNLLLoss = _loss('PoissonNLLLoss', F.poisson_nll_loss, 'Poisson negative '
                       'log-likelihood of counts.',
                       ('log_input', 'full', 'size_average', 'eps', 'reduce', 'reduction'),
                       log_input=True, full=False, eps=1e-8)
MarginRankingLoss = _loss('MarginRankingLoss', F.margin_ranking_loss,
                          '`max(0, -y (x1 - x2) + margin)`.', ('margin',) + _LEGACY,
                          margin=0.0)
HingeEmbeddingLoss = _loss('HingeEmbeddingLoss', F.hinge_embedding_loss,
                           '`x` for target 1, `max(0, margin - x)` for target -1.',
                           ('margin',) + _LEGACY, margin=1.0)
SoftMarginLoss = _loss('SoftMarginLoss', F.soft_margin_loss, '`log(1 + exp(-y x))`.')
CosineEmbeddingLoss = _loss('CosineEmbeddingLoss', F.cosine_embedding_loss,
                            '`1 - cos` for target 1, `max(0, cos - margin)` for -1.',
                            ('margin',) + _LEGACY, margin=0.0)
TripletMarginLoss = _loss('TripletMarginLoss', F.triplet_margin_loss,
                          '`max(d(a, p) - d(a, n) + margin, 0)`.',
                          ('margin', 'p', 'eps', 'swap') + _LEGACY, margin=1.0, p=2.0, eps=1e-6,
                          swap=False)
MultiLabelSoftMarginLoss = _loss('MultiLabelSoftMarginLoss', F.multilabel_soft_margin_loss,
                                 'One-vs-all logistic loss averaged over the classes.',
                                 _WEIGHTED, weight=None)


class HuberLoss(_Loss):
    """`0.5 d**2` where `|d| < delta`, else `delta (|d| - 0.5 delta)`, with `d = input - target`."""

    def __init__(self, reduction='mean', delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = float(delta)

    def forward(self, input, target):
        return F.huber_loss(input, target, self.reduction, self.delta)


class GaussianNLLLoss(_Loss):
    """Negative log-likelihood under normals of mean `input` and variance `var`:
    `criterion(input, target, var)`."""

    def __init__(self, *, full=False, eps=1e-6, reduction='mean'):
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, stable for any logit (`weight`, `pos_weight` as
    PyTorch's)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction='mean',
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.weight = _constant(weight)
        self.pos_weight = _constant(pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class NLLLoss(_Loss):
    """Negative log-likelihood of class indices under log-probabilities `(N, C)` (or
    `(N, C, d1, ...)`), with per-class `weight` and `ignore_index`."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction='mean'):
        super().__init__(size_average, reduce, reduction)
        self.weight = _constant(weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits `(N, C)` (or `(N, C, d1, ...)`) and class indices (or class
    probabilities), with PyTorch's `weight` (the mean divides by the summed weights of the
    targets), `ignore_index` and `label_smoothing`."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction='mean', label_smoothing=0.0):
        super().__init__(size_average, reduce, reduction)
        self.weight = _constant(weight)
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)
