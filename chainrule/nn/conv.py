"""Convolution and resizing layers: PyTorch's `Conv1d`, `Conv2d`, `ConvTranspose2d` and
`Upsample` (the pooling layers are in `chainrule.nn.pooling`; `MaxPool2d`, `AvgPool2d` and
`AdaptiveAvgPool2d` keep working from here).

What this module lets you do: build a convolutional network with PyTorch's constructor
arguments, parameter names, weight layouts and initial distributions, so a PyTorch state dict
(converted to NumPy) loads with `load_state_dict` and gives the same outputs and gradients:

    >>> import numpy as np
    >>> from chainrule import nn
    >>> conv = nn.Conv2d(4, 8, 3, padding=1, groups=2, rng=0)
    >>> conv.weight.shape                     # (C_out, C_in // groups, kh, kw), as PyTorch
    (8, 2, 3, 3)
    >>> conv(np.zeros((1, 4, 5, 5), np.float32)).shape
    (1, 8, 5, 5)

The computation is in `chainrule.nn.functional` (and the primitives of `chainrule.ops.conv`).
"""

import math

import numpy as np

from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.modules import Module, _uniform_param, factory_dtype
from chainrule.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401 (moved)

__all__ = ['Conv1d', 'Conv2d', 'ConvTranspose2d', 'MaxPool2d', 'AvgPool2d',
           'AdaptiveAvgPool2d', 'Upsample']


def _tuple(v, n):
    return (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


class _ConvNd(Module):
    """What `Conv1d` and `Conv2d` share: arguments, parameters and PyTorch's initialisation
    (weight and bias uniform in +-1/sqrt(fan_in), fan_in = C_in // groups * prod(kernel))."""

    _n = 2
    _dtype_check = ('weight', 1)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode='zeros', device=None, dtype=None, rng=None):
        name, n = type(self).__name__, self._n
        dtype = factory_dtype(device, dtype, name)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'{name}: in_channels {in_channels} and out_channels '
                             f'{out_channels} must both be divisible by groups {groups}')
        if padding_mode not in ('zeros', 'reflect', 'replicate', 'circular'):
            raise ValueError(f"{name}: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        if isinstance(padding, str) and padding not in ('same', 'valid'):
            raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same', "
                             f'got {padding!r}')
        if padding == 'same' and any(s != 1 for s in _tuple(stride, n)):
            raise ValueError(f"{name}: padding='same' needs stride 1 (as in PyTorch), got "
                             f'stride={stride}')
        rng = init.get_rng(rng)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _tuple(kernel_size, n), _tuple(stride, n)
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.dilation, self.groups, self.padding_mode = _tuple(dilation, n), groups, padding_mode
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        bound = 1 / math.sqrt(fan_in)
        self.weight = _uniform_param((out_channels, in_channels // groups) + self.kernel_size,
                                     bound, rng, dtype)
        self.bias = _uniform_param((out_channels,), bound, rng, dtype) if bias else None

    def forward(self, x):
        conv = F.conv1d if self._n == 1 else F.conv2d
        padding = self.padding
        if self.padding_mode != 'zeros':
            widths = F.conv_padding_widths(self.kernel_size, self.stride, padding,
                                           self.dilation, type(self).__name__)
            x, padding = F.pad_for_conv(x, widths, self.padding_mode, type(self).__name__), 0
        return conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self):
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'stride={self.stride}')
        if self.padding != (0,) * self._n:
            s += f', padding={self.padding}'
        if self.dilation != (1,) * self._n:
            s += f', dilation={self.dilation}'
        if self.groups != 1:
            s += f', groups={self.groups}'
        if self.bias is None:
            s += ', bias=False'
        if self.padding_mode != 'zeros':
            s += f', padding_mode={self.padding_mode}'
        return s


class Conv2d(_ConvNd):
    """2-D convolution: `(N, C_in, H, W)` -> `(N, C_out, OH, OW)`, weight
    `(C_out, C_in // groups, kh, kw)` (PyTorch's `nn.Conv2d`).

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, dilation: ints or pairs.
        padding: an int, a pair, `'valid'` or `'same'` (stride 1).
        groups: split the channels into this many independent groups.
        bias: whether to learn a bias per output channel.
        padding_mode: 'zeros' (default), 'reflect', 'replicate' or 'circular'.
        device, dtype: PyTorch's factory keywords: the CPU, and the parameters' dtype
            (float32, or what `cr.set_default_dtype` set).
        rng: the seed or generator for the initial values (PyTorch's distribution:
            U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    """


class Conv1d(_ConvNd):
    """1-D convolution: `(N, C_in, L)` -> `(N, C_out, L_out)`, weight `(C_out, C_in // groups,
    k)` (PyTorch's `nn.Conv1d`); arguments as for `Conv2d`, with ints (or 1-tuples)."""

    _n = 1


class ConvTranspose2d(Module):
    """Transposed 2-D convolution (PyTorch's `nn.ConvTranspose2d`): `(N, C_in, H, W)` ->
    `(N, C_out, OH, OW)`, `OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) +
    output_padding + 1`; weight `(C_in, C_out // groups, kh, kw)`.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, output_padding, groups,
            bias, dilation: as PyTorch (padding is implicit zero padding of the matching
            convolution; only padding_mode='zeros', as PyTorch).
        device, dtype, rng: as for `Conv2d` (bound 1/sqrt(C_out // groups * kh * kw),
            PyTorch's).
    """

    _dtype_check = ('weight', 1)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode='zeros',
                 device=None, dtype=None, rng=None):
        dtype = factory_dtype(device, dtype, 'ConvTranspose2d')
        if padding_mode != 'zeros':
            raise ValueError(f"ConvTranspose2d: only padding_mode='zeros' is supported (as in "
                             f'PyTorch), got {padding_mode!r}')
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'ConvTranspose2d: in_channels {in_channels} and out_channels '
                             f'{out_channels} must both be divisible by groups {groups}')
        rng = init.get_rng(rng)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _tuple(kernel_size, 2), _tuple(stride, 2)
        self.padding, self.output_padding = _tuple(padding, 2), _tuple(output_padding, 2)
        self.groups, self.dilation, self.padding_mode = groups, _tuple(dilation, 2), padding_mode
        bound = 1 / math.sqrt(out_channels // groups * math.prod(self.kernel_size))
        self.weight = _uniform_param((in_channels, out_channels // groups) + self.kernel_size,
                                     bound, rng, dtype)
        self.bias = _uniform_param((out_channels,), bound, rng, dtype) if bias else None

    def forward(self, x, output_size=None):
        opad = self.output_padding
        if output_size is not None:
            opad = self._output_padding(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, opad,
                                  self.groups, self.dilation)

    def _output_padding(self, x, output_size):
        """The output_padding that gives `output_size` (PyTorch's `output_size=` argument)."""
        want = tuple(output_size)[-2:]
        h, w = x.shape[-2:]
        out = []
        for i, n, s, p, d, k in zip((h, w), want, self.stride, self.padding, self.dilation,
                                    self.kernel_size):
            least = (i - 1) * s - 2 * p + d * (k - 1) + 1
            if not least <= n < least + s:
                raise ValueError(f'ConvTranspose2d: output_size {tuple(output_size)} is not '
                                 f'reachable from input {tuple(x.shape)}: each size must be in '
                                 f'[{least}, {least + s})')
            out.append(n - least)
        return tuple(out)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, padding={self.padding}, '
                f'output_padding={self.output_padding}, groups={self.groups}, '
                f'dilation={self.dilation}')


class Upsample(Module):
    """Resize the spatial axes by `scale_factor` or to `size` (PyTorch's `nn.Upsample`);
    `mode='nearest'`, 'nearest-exact', or the linear modes of `F.interpolate`."""

    def __init__(self, size=None, scale_factor=None, mode='nearest', align_corners=None,
                 recompute_scale_factor=None):
        from chainrule.nn._interpolate import MODES
        if mode not in ('nearest', 'nearest-exact') and mode not in MODES:
            raise NotImplementedError(f"Upsample: mode {mode!r} is not supported; chainrule "
                                      "has 'nearest', 'nearest-exact', 'linear', 'bilinear', "
                                      "'trilinear' and 'bicubic'")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        what = f'size={self.size}' if self.size is not None else \
            f'scale_factor={self.scale_factor}'
        return f"{what}, mode='{self.mode}'"
