"""Normalisation layers that are not in `modules.py`: `GroupNorm`.

What this module lets you do: normalise activations per sample, in groups of channels, with
PyTorch's `nn.GroupNorm` names, defaults and parameters (`weight` ones and `bias` zeros of shape
`(num_channels,)`), so a PyTorch state dict loads:

    >>> import numpy as np
    >>> from chainrule import nn
    >>> gn = nn.GroupNorm(2, 4)
    >>> y = gn(np.arange(16, dtype=np.float32).reshape(2, 4, 2))
    >>> np.round(y.numpy()[0, :2, :], 3)      # channels 0 and 1 of sample 0: one group
    array([[-1.342, -0.447],
           [ 0.447,  1.342]], dtype=float32)
"""

import numpy as np

from chainrule.nn import functional as F
from chainrule.nn.modules import Module, Parameter

__all__ = ['GroupNorm']


class GroupNorm(Module):
    """Group normalisation of `(N, C, *)` inputs (see `nn.functional.group_norm`): statistics
    per sample and group of `num_channels // num_groups` consecutive channels, the same in
    training and evaluation.

    Args:
        num_groups: how many groups the channels split into (must divide `num_channels`).
        num_channels: `C`, the size of axis 1 of the input.
        eps: added to the variance.
        affine: learn a per-channel `weight` (ones) and `bias` (zeros).
        dtype: parameter dtype (float32 by default).
    """

    _dtype_check = ('weight', 1)

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, dtype=np.float32):
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f'GroupNorm: num_channels={num_channels} must be divisible by '
                             f'num_groups={num_groups}')
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine)
        self.weight = Parameter(np.ones(num_channels, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, dtype)) if affine else None

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f'{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}'
