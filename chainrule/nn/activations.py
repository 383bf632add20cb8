"""Activation and shaping modules beyond `ReLU`, `Tanh`, `Sigmoid`, `GELU` and the softmaxes:
PyTorch's `torch.nn` names and constructor arguments, each computing its `nn.functional`
counterpart (`chainrule/nn/_activation_functions.py`). `PReLU` and `RMSNorm` hold parameters.
"""

import numpy as np

from chainrule.nn import functional as F
from chainrule.nn.modules import Module, Parameter, _module, factory_dtype

__all__ = ['SiLU', 'LeakyReLU', 'ELU', 'Softplus', 'SELU', 'CELU', 'ReLU6', 'Hardtanh',
           'Hardsigmoid', 'Hardswish', 'Mish', 'Softsign', 'Softshrink', 'Hardshrink',
           'Tanhshrink', 'Threshold', 'LogSigmoid', 'Softmin', 'Softmax2d', 'GLU', 'PReLU',
           'RMSNorm', 'CosineSimilarity', 'PairwiseDistance', 'Unflatten', 'ZeroPad1d',
           'ZeroPad2d', 'ConstantPad1d', 'ConstantPad2d', 'ReflectionPad1d', 'ReflectionPad2d',
           'ReplicationPad1d', 'ReplicationPad2d', 'CircularPad1d', 'CircularPad2d']


SiLU = _module('SiLU', F.silu, '`x * sigmoid(x)` (swish).', inplace=False)
LeakyReLU = _module('LeakyReLU', F.leaky_relu, '`x` where positive, else `negative_slope * x`.',
                    negative_slope=0.01, inplace=False)
ELU = _module('ELU', F.elu, '`x` where positive, else `alpha * (exp(x) - 1)`.', alpha=1.0,
              inplace=False)
Softplus = _module('Softplus', F.softplus, '`log(1 + exp(beta x)) / beta`, linear above '
                   '`threshold`.', beta=1.0, threshold=20.0)
SELU = _module('SELU', F.selu, 'Self-normalising ELU.', inplace=False)
CELU = _module('CELU', F.celu, '`max(0, x) + min(0, alpha (exp(x / alpha) - 1))`.', alpha=1.0,
               inplace=False)
ReLU6 = _module('ReLU6', F.relu6, '`min(max(x, 0), 6)`.', inplace=False)
Hardtanh = _module('Hardtanh', F.hardtanh, '`x` clipped to `[min_val, max_val]`.',
                   min_val=-1.0, max_val=1.0, inplace=False)
Hardsigmoid = _module('Hardsigmoid', F.hardsigmoid, '`relu6(x + 3) / 6`.', inplace=False)
Hardswish = _module('Hardswish', F.hardswish, '`x * relu6(x + 3) / 6`.', inplace=False)
Mish = _module('Mish', F.mish, '`x * tanh(softplus(x))`.', inplace=False)
Softsign = _module('Softsign', F.softsign, '`x / (1 + |x|)`.')
Softshrink = _module('Softshrink', F.softshrink, 'Soft thresholding by `lambd`.', lambd=0.5)
Hardshrink = _module('Hardshrink', F.hardshrink, '`x` where `|x| > lambd`, else 0.', lambd=0.5)
Tanhshrink = _module('Tanhshrink', F.tanhshrink, '`x - tanh(x)`.')
Threshold = _module('Threshold', F.threshold, '`x` where `x > threshold`, else `value`.',
                    threshold=None, value=None, inplace=False)
LogSigmoid = _module('LogSigmoid', F.logsigmoid, '`log(sigmoid(x))`, without overflow.')
Softmin = _module('Softmin', F.softmin, '`softmax(-x)` along `dim`.', dim=-1)
GLU = _module('GLU', F.glu, 'Gated linear unit along `dim`.', dim=-1)


class Softmax2d(Module):
    """Softmax over the channels of `(N, C, H, W)` or `(C, H, W)` input."""

    def forward(self, x):
        return F.softmax(x, -3)


class CosineSimilarity(Module):
    """`cosine_similarity(x1, x2, dim, eps)`."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """`pairwise_distance(x1, x2, p, eps, keepdim)`."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


class PReLU(Module):
    """`x` where positive, else `weight * x`, with a learned slope (one, or one per channel)."""

    _dtype_check = ('weight', 1)         # an input of another dtype raises (Module)

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(np.full(num_parameters, init,
                                        factory_dtype(device, dtype, 'PReLU')))

    def forward(self, x):
        return F.prelu(x, self.weight)


class RMSNorm(Module):
    """Root-mean-square normalisation over the trailing `normalized_shape` axes, with a learned
    scale (`elementwise_affine`); `eps=None` is the machine epsilon of the input's dtype."""

    _dtype_check = ('weight', 1)         # an input of another dtype raises (Module)

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None):
        super().__init__()
        dtype = factory_dtype(device, dtype, 'RMSNorm')
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) \
            if elementwise_affine else None

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class Unflatten(Module):
    """Split axis `dim` into `unflattened_size`."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        import chainrule.numpy as cnp
        s = tuple(x.shape)
        d = self.dim % len(s)
        return cnp.reshape(x, s[:d] + self.unflattened_size + s[d + 1:])


def _pad_module(name, mode, k):
    doc = f"Pads the last {k} ax{'is' if k == 1 else 'es'} ({mode!r} mode, `F.pad`)."

    def __init__(self, padding, value=0.0):
        Module.__init__(self)
        self.padding = (int(padding),) * (2 * k) if np.ndim(padding) == 0 else tuple(padding)
        if len(self.padding) != 2 * k:
            raise ValueError(f'{name}: padding must be an int or {2 * k} ints, got {padding}')
        self.value = value

    def forward(self, x):
        if mode == 'constant':
            return F.pad(x, self.padding, 'constant', self.value)
        return F.pad(x, self.padding, mode)

    return type(name, (Module,), {'__init__': __init__, 'forward': forward, '__doc__': doc,
                                  '__module__': __name__})


ZeroPad1d, ZeroPad2d = _pad_module('ZeroPad1d', 'constant', 1), _pad_module('ZeroPad2d',
                                                                           'constant', 2)
ConstantPad1d = _pad_module('ConstantPad1d', 'constant', 1)
ConstantPad2d = _pad_module('ConstantPad2d', 'constant', 2)
ReflectionPad1d = _pad_module('ReflectionPad1d', 'reflect', 1)
ReflectionPad2d = _pad_module('ReflectionPad2d', 'reflect', 2)
ReplicationPad1d = _pad_module('ReplicationPad1d', 'replicate', 1)
ReplicationPad2d = _pad_module('ReplicationPad2d', 'replicate', 2)
CircularPad1d = _pad_module('CircularPad1d', 'circular', 1)
CircularPad2d = _pad_module('CircularPad2d', 'circular', 2)
