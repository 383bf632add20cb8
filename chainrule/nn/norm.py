"""Normalisation layers: `LayerNorm`, `BatchNorm1d`, `BatchNorm2d`, `GroupNorm` (PyTorch's).

What this module lets you do: normalise activations as PyTorch does, with PyTorch's parameter
and buffer names, so a PyTorch state dict (converted to NumPy) loads:

    >>> import numpy as np
    >>> from chainrule import nn
    >>> bn = nn.BatchNorm2d(3)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    >>> y = bn(np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32))
    >>> int(bn.num_batches_tracked.numpy()), bn.eval().training
    (1, False)

Batch normalisation in training normalises with the batch statistics (one primitive whose
derivative is one fused formula) and moves the running statistics (buffers) towards them; in
evaluation it normalises with the running statistics.
"""


import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, ShapeError, Tracer
from chainrule.interpreters.batching import BatchTracer
from chainrule.nn import functional as F
from chainrule.nn.modules import Module, Parameter, factory_dtype
from chainrule.tensor import Tensor, no_grad

__all__ = ['LayerNorm', 'BatchNorm1d', 'BatchNorm2d', 'GroupNorm']


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` axes, then scale and shift (weight 1,
    bias 0 initially)."""

    _dtype_check = ('weight', 1)

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        dtype = factory_dtype(device, dtype, 'LayerNorm')
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) \
            if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) \
            if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f'{self.normalized_shape}, eps={self.eps}'


class _BatchNorm(Module):
    """Batch normalisation over the batch (and the axes after the channels), PyTorch's.

    Args:
        num_features: the number of channels C (axis 1 of the input).
        eps: added to the variance.
        momentum: the weight of each new batch in the running averages; None for the
            cumulative average (1 / num_batches_tracked), as PyTorch.
        affine: learn `weight` (initially 1) and `bias` (initially 0).
        track_running_stats: keep `running_mean`, `running_var` and `num_batches_tracked` as
            buffers (in `state_dict`) and normalise with them in evaluation; without them the
            batch statistics normalise in evaluation too.
        device, dtype: PyTorch's factory keywords: the CPU, and the dtype of the parameters
            and running statistics (float32, or what `cr.set_default_dtype` set).

    In training mode the running statistics are updated in place on every call: eagerly, under
    `grad`, and under `jit` (the update is staged and written back after each call of the
    compiled program, see `chainrule._functionalize`). Under `vmap` a module that tracks them
    is refused in training mode, as PyTorch's `torch.func.vmap` refuses it (each example would
    write its own statistics into one buffer): use `track_running_stats=False` or eval mode.
    """

    _dims = ()
    _dtype_check = ('weight', 1)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None):
        dtype = factory_dtype(device, dtype, type(self).__name__)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        if track_running_stats:
            self.running_mean = Tensor(np.zeros(num_features, dtype))
            self.running_var = Tensor(np.ones(num_features, dtype))
            self.num_batches_tracked = Tensor(np.array(0, np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        nd = len(x.shape)
        if nd not in self._dims:
            want = ' or '.join(f'{d}D' for d in self._dims)
            raise ShapeError(f'{type(self).__name__}: expected {want} input (got {nd}D input '
                             f'of shape {tuple(x.shape)})')
        track = self.running_mean is not None
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and track and not self._concrete_input(x):
            return self._train_staged(x)
        if self.training and track:
            n = self.num_batches_tracked.data
            if isinstance(n, np.ndarray) and n.flags.writeable:
                n += 1      # in place, as the running moments: a buffer functional_call was
            else:           # given (PyTorch updates those) counts too
                self.num_batches_tracked.data = n + 1
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.data)
            for t in (self.running_mean, self.running_var, self.num_batches_tracked):
                t._version[0] += 1
        if track and not self.training:
            # the buffers themselves (not their arrays): a jitted evaluation then reads the
            # running statistics on every call instead of those of the time it was traced
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, training=False, eps=self.eps)
        return F.batch_norm(x, self.running_mean.data if track else None,
                            self.running_var.data if track else None, self.weight, self.bias,
                            training=True, momentum=factor, eps=self.eps)

    def _concrete_input(self, x):
        """Whether `x` has values now (eager, or under grad/jvp), so the running statistics
        are updated from them; False for a value staged by jit. A value batched by vmap is
        refused: every example would write its own statistics into the one buffer."""
        while isinstance(x, Tracer):
            if isinstance(x, BatchTracer):
                raise ConcretizationError(
                    f'{type(self).__name__} in training mode updates its running statistics '
                    f'from the batch, but under vmap every example (here of shape '
                    f'{tuple(x.shape)}) would write its own statistics into the one buffer, '
                    'which PyTorch refuses too. Use track_running_stats=False (each example '
                    'normalised by its own statistics), eval() mode, or call the module outside '
                    'vmap.')
            get = getattr(x, '_concrete', None)
            if get is None:
                return False
            try:
                x = get()
            except ConcretizationError:     # a Tensor a jit being traced captures: staged
                return False
        return True

    def _train_staged(self, x):
        """Training inside `jit`: normalise with the batch statistics, and move the running
        statistics towards them with in-place writes that the compiled program stages and
        writes back on every call (no gradient flows into the running statistics)."""
        with no_grad():
            if self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = ops.astype(1.0 / self.num_batches_tracked, self.running_mean.dtype)
            else:
                factor = self.momentum
        F._stage_running_stats(x, self.running_mean, self.running_var, factor)
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)

    def extra_repr(self):
        return (f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'affine={self.affine}, track_running_stats={self.track_running_stats}')


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of `(N, C)` or `(N, C, L)` inputs (PyTorch's `nn.BatchNorm1d`);
    arguments as `BatchNorm2d`."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of `(N, C, H, W)` inputs per channel (PyTorch's `nn.BatchNorm2d`).

    Args:
        num_features: the number of channels C.
        eps, momentum, affine, track_running_stats, dtype: as PyTorch (`momentum=None` is the
            cumulative average); the running statistics are buffers in `state_dict`, with
            `num_batches_tracked`.
    """

    _dims = (4,)


class GroupNorm(Module):
    """Group normalisation of `(N, C, *)` inputs (see `nn.functional.group_norm`): statistics
    per sample and group of `num_channels // num_groups` consecutive channels, the same in
    training and evaluation.

    Args:
        num_groups: how many groups the channels split into (must divide `num_channels`).
        num_channels: `C`, the size of axis 1 of the input.
        eps: added to the variance.
        affine: learn a per-channel `weight` (ones) and `bias` (zeros).
        device, dtype: the CPU; parameter dtype (float32, or `cr.set_default_dtype`'s).
    """

    _dtype_check = ('weight', 1)

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None,
                 dtype=None):
        dtype = factory_dtype(device, dtype, 'GroupNorm')
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
