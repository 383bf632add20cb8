"""Functions of neural networks: activations, losses, convolution, pooling, normalisation.

What this module lets you do: write a network as plain functions of arrays, PyTorch's
`torch.nn.functional` style. Every function takes NumPy arrays, `Tensor`s or traced values (so
it works eagerly with `loss.backward()` and inside `grad`, `vmap` and `jit`) and returns the same
kind. Names, arguments and defaults follow PyTorch (`dim=` for the axis, `reduction='mean'`).

    >>> import numpy as np, chainrule as cr
    >>> import chainrule.nn.functional as F
    >>> z = cr.tensor(np.array([[2.0, 0.0, -1.0]]), requires_grad=True)
    >>> loss = F.cross_entropy(z, np.array([0]))
    >>> loss.backward()
    >>> np.round(z.grad.numpy(), 4)           # softmax(z) - onehot(0)
    array([[-0.1562,  0.1142,  0.042 ]])
"""

import functools
import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule._args import ArgumentError
from chainrule.core import ConcretizationError, DTypeError, ShapeError, Tracer, dtype_of, shape_of
from chainrule.ops import conv as convops
from chainrule.ops import nn as nnops
from chainrule.ops.nn import erf, linear, sigmoid
from chainrule.nn import _activation_functions, _loss_functions
from chainrule.nn._activation_functions import *  # noqa: F401,F403 (PyTorch's names)
from chainrule.nn._activation_functions import relu
from chainrule.nn._loss_functions import *  # noqa: F401,F403 (PyTorch's names)
from chainrule.nn._loss_functions import _reduce  # noqa: F401 (the modules' reductions)
from chainrule.nn import _pool_functions
from chainrule.nn._pool_functions import *  # noqa: F401,F403 (PyTorch's names)

__all__ = [
    'linear', 'relu', 'gelu', 'tanh', 'sigmoid', 'softmax', 'log_softmax', 'erf',
    'cross_entropy', 'nll_loss', 'mse_loss', 'binary_cross_entropy_with_logits',
    'conv1d', 'conv2d', 'conv_transpose2d', 'interpolate', 'dropout', 'layer_norm',
    'group_norm', 'batch_norm', 'embedding', 'one_hot',
] + _activation_functions.__all__ + _pool_functions.__all__ + [
    n for n in _loss_functions.__all__
    if n not in ('cross_entropy', 'nll_loss', 'mse_loss', 'binary_cross_entropy_with_logits')]


def _labels(target):
    """Class labels as an integer array (they are never differentiated)."""
    t = ops.concrete(target) if isinstance(target, Tracer) else np.asarray(target)
    return np.asarray(t)


# --- activations ---------------------------------------------------------------------------

def tanh(x):
    """Hyperbolic tangent."""
    return ops.tanh(x)


def gelu(x, approximate='none'):
    """Gaussian error linear unit `x * Phi(x)` (PyTorch's default, exact with `erf`), or with
    `approximate='tanh'` the tanh approximation."""
    if approximate == 'tanh':
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1 + ops.tanh(c * (x + 0.044715 * (x * x * x))))
    if approximate != 'none':
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return x * (erf(x * (1 / math.sqrt(2.0))) + 1) * 0.5


def log_softmax(x, dim=-1):
    """Log-probabilities along `dim`: `x - logsumexp(x, dim)`, without overflow."""
    return nnops.log_softmax(x, dim)


def softmax(x, dim=-1):
    """Probabilities along `dim`: `exp(x) / sum(exp(x))`, without overflow."""
    return ops.exp(nnops.log_softmax(x, dim))


# --- convolution and pooling ---------------------------------------------------------------
# PyTorch's names and arguments; the work is in chainrule.ops.conv (primitives `conv2d`,
# `unfold`/`fold`, and composites of them). Pooling is in chainrule.nn._pool_functions.

_PAD_MODES = {'zeros': None, 'reflect': 'reflect', 'replicate': 'edge', 'circular': 'wrap'}


def _unbatched_too(spatial):
    """Also accept PyTorch's unbatched input `(C, *spatial)`: run it as a batch of one and drop
    the batch axis of the result."""
    def wrap(fn):
        @functools.wraps(fn)
        def f(input, *args, **kwargs):
            si = shape_of(input)
            if len(si) != spatial + 1:
                return fn(input, *args, **kwargs)
            out = fn(ops.reshape(input, (1,) + tuple(si)), *args, **kwargs)
            return ops.reshape(out, shape_of(out)[1:])
        return f
    return wrap


@_unbatched_too(2)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation, as PyTorch's `F.conv2d`).

    Computed as im2col: the input unfolded into patch rows, then one matrix product with the
    flattened weight, as a single primitive (one tape node); with `groups`, one per group.

    Args:
        input: `(N, C_in, H, W)`.
        weight: `(C_out, C_in // groups, kh, kw)`.
        bias: optional `(C_out,)`.
        stride, padding, dilation: ints or pairs (zero padding); `padding` may also be
            PyTorch's `'valid'` (none) or `'same'` (output as large as the input, stride 1
            only; an odd total padding puts the extra row/column after, as in PyTorch).
        groups: split the channels into this many groups, each convolved with its own slice
            of the output channels (`groups=C_in` is a depthwise convolution).

    Returns:
        `(N, C_out, OH, OW)`.
    """
    if isinstance(padding, str):
        input, padding = _string_padding(input, weight, stride, padding, dilation, 'conv2d')
    return convops.conv2d(input, weight, bias, stride, padding, dilation, groups)


@_unbatched_too(1)
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution (PyTorch's `F.conv1d`): `input` `(N, C_in, L)`, `weight`
    `(C_out, C_in // groups, k)`, `bias` `(C_out,)` -> `(N, C_out, L_out)`; a 2-D convolution
    over a height of one. `padding` may be an int, `'valid'` or `'same'`."""
    si, sw = shape_of(input), shape_of(weight)
    if len(si) != 3 or len(sw) != 3:
        raise ShapeError(f'conv1d: input {si} and weight {sw} do not fit: input must be '
                         '(N, C_in, L) and weight (C_out, C_in // groups, k)')
    one = lambda v, name: (1, _single(v, name, 'conv1d'))   # noqa: E731
    x4 = ops.reshape(input, (si[0], si[1], 1, si[2]))
    w4 = ops.reshape(weight, (sw[0], sw[1], 1, sw[2]))
    if isinstance(padding, str):
        x4, padding = _string_padding(x4, w4, one(stride, 'stride'), padding,
                                      one(dilation, 'dilation'), 'conv1d')
        padding = padding if isinstance(padding, tuple) else (0, padding)
    else:
        padding = (0, _single(padding, 'padding', 'conv1d'))
    out = convops.conv2d(x4, w4, bias, one(stride, 'stride'), padding,
                         one(dilation, 'dilation'), groups)
    so = shape_of(out)
    return ops.reshape(out, (so[0], so[1], so[3]))


def _single(v, name, op):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f'{op}: {name} must be an int or a 1-tuple, got {v!r}')
        v = v[0]
    return int(v)


def _string_padding(input, weight, stride, padding, dilation, op):
    """`'valid'`/`'same'` padding: `(input, padding)`, the input padded here when 'same' needs
    more after than before (an odd total)."""
    widths = conv_padding_widths(shape_of(weight)[2:], stride, padding, dilation, op)
    if all(a == b for a, b in widths):
        return input, tuple(a for a, _ in widths)
    return cnp.pad(input, ((0, 0), (0, 0)) + tuple(widths)), 0


def conv_padding_widths(kernel, stride, padding, dilation, op):
    """The `(before, after)` padding per spatial axis for `padding` (an int, a tuple, `'valid'`
    or `'same'`: total `d * (k - 1)` per axis, half before and the rest after, stride 1 only,
    as in PyTorch)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == 'valid':
            return [(0, 0)] * n
        if padding != 'same':
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got "
                             f'{padding!r}')
        st = (stride,) * n if isinstance(stride, (int, np.integer)) else tuple(stride)
        if any(s != 1 for s in st):
            raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got "
                             f'{stride}')
        dil = (dilation,) * n if isinstance(dilation, (int, np.integer)) else tuple(dilation)
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dil)]
    pads = (padding,) * n if isinstance(padding, (int, np.integer)) else tuple(padding)
    return [(int(p), int(p)) for p in pads]


def pad_for_conv(input, widths, padding_mode, op):
    """`input` `(N, C, ...)` padded by `widths` (`(before, after)` per spatial axis) in
    `padding_mode` ('reflect', 'replicate' or 'circular', PyTorch's modules' names), for a
    convolution then run without padding."""
    if padding_mode not in _PAD_MODES or padding_mode == 'zeros':
        raise ValueError(f"{op}: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                         f"'circular', got {padding_mode!r}")
    return cnp.pad(input, ((0, 0), (0, 0)) + tuple(widths), mode=_PAD_MODES[padding_mode])


@_unbatched_too(2)
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """Transposed 2-D convolution (PyTorch's `F.conv_transpose2d`, the gradient of `conv2d`
    with respect to its input).

    Args:
        input: `(N, C_in, H, W)`.
        weight: `(C_in, C_out // groups, kh, kw)` (PyTorch's layout).
        bias: optional `(C_out,)`.
        stride, padding, output_padding, dilation: ints or pairs; `output_padding` adds rows
            and columns at the end of the output (it must be smaller than the stride or the
            dilation).
        groups: as for `conv2d`.

    Returns:
        `(N, C_out, OH, OW)`, `OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) +
        output_padding + 1`.
    """
    return convops.conv_transpose2d(input, weight, bias, stride, padding, output_padding,
                                    groups, dilation)


def interpolate(input, size=None, scale_factor=None, mode='nearest', align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial axes of `input` `(N, C, ...)` (PyTorch's `F.interpolate`), with
    `mode='nearest'`: output index `i` reads input index `floor(i * scale)`, where `scale` is
    `in / out` for `size`, or `1 / scale_factor` (PyTorch's rule, unless
    `recompute_scale_factor=True`, which uses `in / out`).

    Args:
        input: `(N, C, L)`, `(N, C, H, W)` or `(N, C, D, H, W)`.
        size: the output's spatial size (an int or one per axis), or
        scale_factor: a multiplier (a float or one per axis).
        mode: 'nearest' ('nearest-exact' too: index `floor((i + 0.5) * scale)`), or the
            linear modes 'linear' (3-D input), 'bilinear', 'bicubic' (4-D), 'trilinear' (5-D),
            as PyTorch computes them (`chainrule.nn._interpolate`).
        align_corners: for the linear modes, PyTorch's meaning (default False).

    Raises:
        NotImplementedError: PyTorch's mode 'area', or `antialias=True`.
        ArgumentError: a mode PyTorch does not have, both or neither of size and
            scale_factor, a non-integer size.
        ShapeError: an output length < 1, one size per axis that does not fit the input.
    """
    from chainrule.nn._interpolate import MODES, interpolate_linear
    if mode not in ('nearest', 'nearest-exact', 'area') and mode not in MODES:
        raise ArgumentError(f"interpolate: mode={mode!r} is not one of PyTorch's modes; chainrule "
                            "has 'nearest', 'nearest-exact', 'linear', 'bilinear', 'trilinear' "
                            "and 'bicubic'")
    if mode not in ('nearest', 'nearest-exact') and mode not in MODES:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported; chainrule has "
                                  "'nearest', 'nearest-exact', 'linear', 'bilinear', "
                                  "'trilinear' and 'bicubic'")
    if align_corners and mode not in MODES:
        raise ArgumentError("interpolate: align_corners only applies to the linear modes, "
                            f"not mode={mode!r}")
    if antialias:
        raise NotImplementedError('interpolate: antialias=True is not supported')
    si = shape_of(input)
    nsp = len(si) - 2
    if nsp < 1:
        raise ShapeError(f'interpolate: input must be (N, C, ...) with spatial axes, got {si}')
    if mode in MODES and MODES[mode] != nsp:
        raise ShapeError(f'interpolate: mode={mode!r} needs a {MODES[mode] + 2}-D input '
                         f'(N, C, {MODES[mode]} spatial axes), got shape {si}')
    if (size is None) == (scale_factor is None):
        raise ArgumentError('interpolate: give exactly one of size and scale_factor')
    ins = si[2:]

    def per_axis(v, name):
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,) * nsp
        if len(v) != nsp:
            raise ShapeError(f'interpolate: {name} {v} must have one entry per spatial axis '
                             f'({nsp}) of input {si}')
        return v
    if size is not None:
        outs = per_axis(size, 'size')
        if not all(isinstance(o, (int, np.integer)) and not isinstance(o, bool) for o in outs):
            raise ArgumentError(f'interpolate: size {size!r} must be ints (the output length '
                                'of each spatial axis); for a multiplier pass scale_factor=')
        outs = tuple(int(o) for o in outs)
    else:
        sf = tuple(float(f) for f in per_axis(scale_factor, 'scale_factor'))
        outs = tuple(int(math.floor(i * f)) for i, f in zip(ins, sf))
        scales = tuple(i / o if o else 0.0 for i, o in zip(ins, outs)) \
            if recompute_scale_factor else tuple(1.0 / f if f else 0.0 for f in sf)
    if min(outs) < 1:
        raise ShapeError(f'interpolate: the output size {outs} of input {si} must be positive '
                         '(each spatial length >= 1): pass a larger size or scale_factor')
    if size is not None:
        scales = tuple(i / o for i, o in zip(ins, outs))
    if mode in MODES:
        return interpolate_linear(input, mode, outs, scales, bool(align_corners))
    out = input
    for ax, (n_in, n_out, sc) in enumerate(zip(ins, outs, scales)):
        if n_in == n_out:
            continue
        off = 0.5 if mode == 'nearest-exact' else 0.0
        # float32 arithmetic, as PyTorch computes the source index
        src = np.floor((np.arange(n_out, dtype=np.float32) + np.float32(off))
                       * np.float32(sc)).astype(np.int64)
        src = np.minimum(src, n_in - 1)
        out = _take_axis(out, src, 2 + ax)
    return out


def _take_axis(x, idx, axis):
    """`x` indexed by the integer array `idx` along `axis`: a repeat of every entry when `idx`
    is [0,..,0, 1,..,1, ...] with equal runs (an integer upscale), else a gather."""
    n = shape_of(x)[axis]
    r = len(idx) // n
    if r * n == len(idx) and np.array_equal(idx, np.repeat(np.arange(n), r)):
        s = tuple(shape_of(x))
        y = ops.broadcast_to(ops.reshape(x, s[:axis + 1] + (1,) + s[axis + 1:]),
                             s[:axis + 1] + (r,) + s[axis + 1:])
        return ops.reshape(y, s[:axis] + (n * r,) + s[axis + 1:])
    return cnp.take(x, idx, axis=axis)


# --- regularisation and normalisation ------------------------------------------------------

def dropout(input, p=0.5, training=True, inplace=False, *, rng=None):
    """Zero each element with probability `p` and scale the rest by `1/(1-p)` (identity when
    not training).

    Args:
        input: any array.
        p: drop probability in [0, 1).
        training: apply dropout (True) or return `input` unchanged.
        inplace: PyTorch's: write the result into `input` (a Tensor or NumPy array) and
            return it.
        rng: (keyword) anything `np.random.default_rng` accepts (an int seed, a `Generator`,
            ...) for reproducible masks; the default generator (seeded by
            `nn.init.manual_seed`) if omitted.
    """
    if not isinstance(inplace, (bool, np.bool_)):
        raise TypeError(f'dropout: inplace must be True or False, got {inplace!r:.40} (the '
                        'fourth argument is inplace, as in PyTorch; pass a generator or seed '
                        'as rng=)')
    if not 0 <= p < 1:
        raise ValueError(f'dropout: p must be in [0, 1), got {p}')
    if not training or p == 0:
        return input
    from chainrule.nn import init
    x = _activation_functions._source(input, inplace)
    keep = init._draw(rng).random(shape_of(x)) >= p
    out = x * (keep * (1.0 / (1.0 - p))).astype(dtype_of(x))
    return _activation_functions._written(input, out, inplace)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing `normalized_shape` axes to mean 0 and variance 1 (biased
    variance, as PyTorch), then scale by `weight` and shift by `bias`."""
    axes = _activation_functions.trailing_axes('layer_norm', input, normalized_shape)
    mu = cnp.mean(input, axis=axes, keepdims=True)
    d = input - mu
    var = cnp.mean(d * d, axis=axes, keepdims=True)
    out = d / ops.sqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Group normalisation (PyTorch's `F.group_norm`): the `C` channels of `(N, C, *)` are split
    into `num_groups` groups of consecutive channels, and each sample's group is normalised to
    mean 0 and variance 1 (biased) over its channels and spatial positions, then scaled by
    `weight` `(C,)` and shifted by `bias` `(C,)` per channel. The same in training and
    evaluation (no running statistics).

    Args:
        input: `(N, C)` or `(N, C, *)`.
        num_groups: a divisor of `C`.
        weight, bias: optional per-channel affine parameters `(C,)`.
        eps: added to the variance.
    """
    si = tuple(shape_of(input))
    if len(si) < 2:
        raise ShapeError(f'group_norm: input must be (N, C, *), got shape {si}')
    c = si[1]
    if num_groups < 1 or c % num_groups:
        raise ShapeError(f'group_norm: the {c} channels of input {si} do not split into '
                         f'num_groups={num_groups} groups (it must divide the channel count)')
    for name, p in (('weight', weight), ('bias', bias)):
        if p is not None and tuple(shape_of(p)) != (c,):
            raise ShapeError(f'group_norm: {name} {tuple(shape_of(p))} must be ({c},), one '
                             f'value per channel of input {si}')
    g = ops.reshape(input, (si[0], num_groups, -1))
    mu = cnp.mean(g, axis=2, keepdims=True)
    d = g - mu
    var = cnp.mean(d * d, axis=2, keepdims=True)
    out = ops.reshape(d / ops.sqrt(var + eps), si)
    shape = (1, c) + (1,) * (len(si) - 2)
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation of `input` `(N, C, ...)` per channel, over the batch and every axis
    after the channels (PyTorch's `F.batch_norm`; `(N, C)`, `(N, C, L)`, `(N, C, H, W)`, ...).

    In training, the batch statistics normalise (biased variance) and `running_mean` and
    `running_var` (Tensors or NumPy arrays, updated in place, if given) move towards them by
    `momentum`, with the unbiased variance, as PyTorch; in evaluation the running statistics
    normalise. The training form is one primitive whose derivative is one fused formula.
    Under `jit` the update of running statistics that are Tensors (captured or arguments) is
    staged and written back after every call, as `nn.BatchNorm*` does; NumPy arrays cannot be
    updated there (a clear error), nor can any under `vmap` (PyTorch refuses it too).

    Args:
        input: `(N, C, ...)`.
        running_mean, running_var: `(C,)` Tensors, NumPy arrays, or None.
        weight, bias: optional `(C,)` scale and shift.
        training: use (and record) the batch statistics.
        momentum: the weight of the new batch in the running averages.
        eps: added to the variance.
    """
    si = shape_of(input)
    if len(si) < 2:
        raise ShapeError(f'batch_norm: input must be (N, C, ...), got shape {si}')
    c = si[1]
    for name, v in (('running_mean', running_mean), ('running_var', running_var),
                    ('weight', weight), ('bias', bias)):
        if v is not None and tuple(shape_of(v)) != (c,):
            raise ShapeError(f'batch_norm: {name} {tuple(shape_of(v))} does not fit input {si}: '
                             f'it must be ({c},), one entry per channel')
    if training:
        count = math.prod(si) // c
        if count <= 1:
            raise ValueError(f'batch_norm: expected more than 1 value per channel when '
                             f'training, got input of shape {si}')
        try:
            xv = ops.concrete(input)
        except ConcretizationError:             # inside jit or vmap: the statistics are traced
            xv = None
        stats = None
        if isinstance(xv, np.ndarray):
            # (mean, variance, and x - mean: a residual the rules read instead of recomputing)
            stats = nnops.batch_moments(xv, keep_centred=True)
        if running_mean is not None or running_var is not None:
            if stats is None:
                _stage_running_stats(input, running_mean, running_var, momentum)
            else:
                _update_running_stats(running_mean, running_var, stats[:2], momentum, count)
        return nnops.batch_norm(input, weight, bias, eps, stats)
    if running_mean is None or running_var is None:
        raise ValueError('batch_norm: evaluation (training=False) needs running_mean and '
                         'running_var')
    # (x - mean) / sqrt(var + eps) * w + b as one scale and one shift per channel, in
    # chainrule ops: the running statistics may be buffers a jitted evaluation reads each call
    shape = (1, c) + (1,) * (len(si) - 2)
    scale = 1.0 / ops.sqrt(ops.add(running_var, eps))
    if weight is not None:
        scale = ops.mul(weight, scale)
    shift = ops.neg(ops.mul(running_mean, scale))
    if bias is not None:
        shift = ops.add(shift, bias)
    return ops.add(ops.mul(input, ops.reshape(scale, shape)), ops.reshape(shift, shape))


def _stage_running_stats(x, running_mean, running_var, momentum):
    """Training inside `jit`, where `x` (N, C, ...) is staged: move the running statistics
    (Tensors: captured ones, arguments, or made in the function) towards x's per-channel mean
    and unbiased variance with in-place writes, which jit stages and writes back after every
    call (`chainrule._functionalize`); no gradient flows into them. A batch traced by vmap, or
    running statistics that are NumPy arrays (jit cannot write into those), are refused."""
    from chainrule.interpreters.batching import BatchTracer
    from chainrule.tensor import Tensor, no_grad
    v = x
    while isinstance(v, Tracer):
        if isinstance(v, BatchTracer):
            raise ConcretizationError(
                f'batch_norm: training with running_mean/running_var under vmap: every example '
                f'(here of shape {tuple(shape_of(x))}) would write its own statistics into the '
                'one buffer, which PyTorch refuses too. Pass running_mean=None and '
                'running_var=None, use training=False, or call it outside vmap.')
        get = getattr(v, '_concrete', None)
        if get is None:
            break                       # a value staged by jit
        try:
            v = get()
        except ConcretizationError:     # a Tensor a jit being traced captures: staged too
            break
    for name, r in (('running_mean', running_mean), ('running_var', running_var)):
        if r is not None and not isinstance(r, Tensor):
            raise ConcretizationError(
                f'batch_norm: {name} (shape {tuple(shape_of(r))}) is a NumPy array, which a '
                'staged (jitted) call cannot update in place on every call. Pass it as a '
                'chainrule Tensor (cr.tensor(...), or a BatchNorm module\'s buffer): jit '
                'writes the new running statistics into it after each call.')
    s = tuple(shape_of(x))
    axes = (0,) + tuple(range(2, len(s)))
    count = math.prod(s) // s[1]
    with no_grad():
        xs = ops.stop_gradient(x)
        mean = ops.sum(xs, axis=axes) * (1.0 / count)
        centred = xs - ops.reshape(mean, (1, s[1]) + (1,) * (len(s) - 2))
        var = ops.sum(centred * centred, axis=axes) * (1.0 / (count - 1))
        for r, new in ((running_mean, mean), (running_var, var)):
            if r is not None:
                r.copy_(r * (1 - momentum) + ops.astype(momentum * new, r.dtype))


def _update_running_stats(running_mean, running_var, stats, momentum, count):
    """Move the running statistics towards this batch's `stats` (mean, biased variance; the
    running variance takes the unbiased one, as PyTorch), in place."""
    mean, var = stats
    for r, new in ((running_mean, mean), (running_var, var * (count / (count - 1)))):
        if r is not None:
            r *= 1 - momentum
            r += (momentum * new).astype(r.dtype, copy=False)


def embedding(input, weight):
    """Rows of `weight` `(num_embeddings, dim)` picked by integer indices `input` (any shape):
    the result has shape `input.shape + (dim,)`; the gradient scatters back into the rows."""
    dt = np.dtype(dtype_of(input) if isinstance(input, Tracer) else np.asarray(input).dtype)
    if dt.kind not in 'iu':
        raise DTypeError(f'embedding: indices must be integers (as PyTorch: Long or Int), got '
                         f'dtype {dt} of shape {tuple(shape_of(input))}; convert them with '
                         ".astype(np.int64)")
    if isinstance(input, Tracer):          # checked when the values are known (vmap, jit)
        return cnp.take(weight, nnops.class_labels(input, shape_of(weight)[0], None, 'embedding'),
                        axis=0)
    idx = _labels(input)
    nnops.check_label_values(idx, shape_of(weight)[0], None, 'embedding', 'index', 'rows')
    return weight[idx]


def one_hot(labels, num_classes, dtype=np.float32):
    """Integer labels as one-hot rows (a constant NumPy array); a label outside
    `[0, num_classes)` raises IndexOutOfRangeError naming it and its position."""
    if isinstance(labels, Tracer):         # checked when the values are known (vmap, jit)
        t = nnops.class_labels(labels, num_classes, None, 'one_hot')
        return ops.astype(ops.equal(cnp.expand_dims(t, -1), np.arange(num_classes)), dtype)
    t = _labels(labels)
    nnops.check_label_values(t, num_classes, None, 'one_hot', 'label')
    return (t[..., None] == np.arange(num_classes)).astype(dtype)


# attention lives in its own module (which uses the functions above)
from chainrule.nn.attention import (multi_head_attention_forward,  # noqa: E402
                                    scaled_dot_product_attention)

__all__ += ['scaled_dot_product_attention', 'multi_head_attention_forward']
