"""Pooling layers: PyTorch's `MaxPool1d/2d/3d`, `AvgPool1d/2d/3d`, `LPPool1d/2d/3d`,
`AdaptiveMaxPool1d/2d/3d`, `AdaptiveAvgPool1d/2d/3d` and `MaxUnpool1d/2d/3d`, with PyTorch's
constructor arguments (`ceil_mode`, `dilation`, `return_indices`, `count_include_pad`,
`divisor_override`), no parameters:

    >>> import numpy as np
    >>> from chainrule import nn
    >>> pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, idx = pool(x)
    >>> idx.ravel().tolist()                  # flat indices h*W + w, as PyTorch's
    [5, 7, 13, 15]
    >>> unpool(y, idx).shape
    (1, 1, 4, 4)

The computation is in `chainrule.nn.functional`.
"""

from chainrule.nn import functional as F
from chainrule.nn.modules import Module

__all__ = ['MaxPool1d', 'MaxPool2d', 'MaxPool3d', 'AvgPool1d', 'AvgPool2d', 'AvgPool3d',
           'LPPool1d', 'LPPool2d', 'LPPool3d', 'AdaptiveMaxPool1d', 'AdaptiveMaxPool2d',
           'AdaptiveMaxPool3d', 'AdaptiveAvgPool1d', 'AdaptiveAvgPool2d', 'AdaptiveAvgPool3d',
           'MaxUnpool1d', 'MaxUnpool2d', 'MaxUnpool3d']


class _MaxPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return type(self)._fn(x, self.kernel_size, self.stride, self.padding, self.dilation,
                              self.ceil_mode, self.return_indices)

    def extra_repr(self):
        return (f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, '
                f'dilation={self.dilation}, ceil_mode={self.ceil_mode}')


class MaxPool1d(_MaxPoolNd):
    """Max pooling over `kernel_size` windows of `(N, C, L)` (PyTorch's `nn.MaxPool1d`);
    see `MaxPool2d`."""
    _fn = F.max_pool1d


class MaxPool2d(_MaxPoolNd):
    """Max pooling over `kernel_size` windows (PyTorch's `nn.MaxPool2d`): `stride` defaults to
    the kernel, padding is with -inf (at most half the effective kernel), `dilation` spaces
    the taps, `ceil_mode` keeps a last partial window, `return_indices` also returns the
    winners' flat indices for `MaxUnpool2d`."""
    _fn = F.max_pool2d


class MaxPool3d(_MaxPoolNd):
    """Max pooling over `(D, H, W)` windows (PyTorch's `nn.MaxPool3d`); see `MaxPool2d`."""
    _fn = F.max_pool3d


class _AvgPoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x):
        return type(self)._fn(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                              self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}'


class AvgPool1d(_AvgPoolNd):
    """Average pooling of `(N, C, L)` (PyTorch's `nn.AvgPool1d`); see `AvgPool2d`."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """Average pooling over `kernel_size` windows (PyTorch's `nn.AvgPool2d`): `stride` defaults
    to the kernel, zero `padding` counted in the divisor unless `count_include_pad=False`,
    `ceil_mode` for a last partial window, `divisor_override` to divide by a fixed number."""
    _fn = F.avg_pool2d


class AvgPool3d(_AvgPoolNd):
    """Average pooling over `(D, H, W)` windows (PyTorch's `nn.AvgPool3d`); see
    `AvgPool2d`."""
    _fn = F.avg_pool3d


class _LPPoolNd(Module):
    _fn = None

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, x):
        return type(self)._fn(x, float(self.norm_type), self.kernel_size, self.stride,
                              self.ceil_mode)

    def extra_repr(self):
        return (f'norm_type={self.norm_type}, kernel_size={self.kernel_size}, '
                f'stride={self.stride}, ceil_mode={self.ceil_mode}')


class LPPool1d(_LPPoolNd):
    """Power-average pooling (PyTorch's `nn.LPPool1d`): `(sum of x**p over the window)**(1/p)`."""
    _fn = F.lp_pool1d


class LPPool2d(_LPPoolNd):
    """Power-average pooling (PyTorch's `nn.LPPool2d`): `(sum of x**p over the window)**(1/p)`."""
    _fn = F.lp_pool2d


class LPPool3d(_LPPoolNd):
    """Power-average pooling over `(D, H, W)` (PyTorch's `nn.LPPool3d`)."""
    _fn = F.lp_pool3d


class _AdaptiveMaxPoolNd(Module):
    _fn = None

    def __init__(self, output_size, return_indices=False):
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return type(self)._fn(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f'output_size={self.output_size}'


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed `output_size` (PyTorch's `nn.AdaptiveMaxPool1d`)."""
    _fn = F.adaptive_max_pool1d


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed `output_size` (an int or a pair, `None` keeping that input size),
    PyTorch's bins; `return_indices` as `MaxPool2d`'s."""
    _fn = F.adaptive_max_pool2d


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max pooling of `(D, H, W)` to a fixed `output_size` (PyTorch's `nn.AdaptiveMaxPool3d`)."""
    _fn = F.adaptive_max_pool3d


class _AdaptiveAvgPoolNd(Module):
    _fn = None

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        return type(self)._fn(x, self.output_size)

    def extra_repr(self):
        return f'output_size={self.output_size}'


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed `output_size` (PyTorch's `nn.AdaptiveAvgPool1d`)."""
    _fn = F.adaptive_avg_pool1d


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling to a fixed `output_size` (an int or a pair, `None` keeping that input
    size), whatever the input size (PyTorch's bins)."""
    _fn = F.adaptive_avg_pool2d


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average pooling of `(D, H, W)` to a fixed `output_size` (PyTorch's
    `nn.AdaptiveAvgPool3d`)."""
    _fn = F.adaptive_avg_pool3d


class _MaxUnpoolNd(Module):
    _fn = None

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, input, indices, output_size=None):
        return type(self)._fn(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f'kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}'


class MaxUnpool1d(_MaxUnpoolNd):
    """The inverse of `MaxPool1d` (PyTorch's `nn.MaxUnpool1d`); see `MaxUnpool2d`."""
    _fn = F.max_unpool1d


class MaxUnpool2d(_MaxUnpoolNd):
    """The inverse of `MaxPool2d(return_indices=True)` (PyTorch's `nn.MaxUnpool2d`): zeros,
    with each pooled value put back at its index; `forward(input, indices, output_size=None)`."""
    _fn = F.max_unpool2d


class MaxUnpool3d(_MaxUnpoolNd):
    """The inverse of `MaxPool3d` (PyTorch's `nn.MaxUnpool3d`); see `MaxUnpool2d`."""
    _fn = F.max_unpool3d
