"""The activation and shaping functions of `chainrule.nn.functional` beyond `relu`, `gelu`,
`tanh`, `sigmoid` and the softmaxes: PyTorch's names, arguments, defaults and derivatives
(including which side of a kink gets which one-sided derivative), as composites of
differentiable primitives. Also `normalize`, `pad`, `rms_norm` and `glu`.
"""

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ShapeError, dtype_of, shape_of
from chainrule.ops import nn as nnops

__all__ = ['elu', 'selu', 'celu', 'leaky_relu', 'relu6', 'hardtanh', 'hardsigmoid',
           'hardswish', 'silu', 'mish', 'softplus', 'softsign', 'softshrink', 'hardshrink',
           'tanhshrink', 'threshold', 'logsigmoid', 'softmin', 'glu', 'prelu', 'normalize',
           'pad', 'rms_norm']

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# --- PyTorch's inplace=True ----------------------------------------------------------------------
#
# With inplace=True PyTorch writes the result into the input and returns it; code may rely on
# the input changing (`F.relu(x, inplace=True)` then reading `x`). So the result is computed from
# a copy of the input (whose saved values the write cannot disturb) and written into it: for a
# Tensor an in-place copy autograd records (and refuses on a leaf that requires grad, as
# PyTorch); a NumPy array is written into. Values traced by grad, vmap or jit cannot change:
# the result is returned, as JAX would.

def _source(input, inplace):
    return input.clone() if inplace and getattr(input, '_is_tensor', False) else input


def _written(input, result, inplace):
    if not inplace:
        return result
    if getattr(input, '_is_tensor', False):
        return input.copy_(result)
    if isinstance(input, np.ndarray):
        np.copyto(input, np.asarray(getattr(result, 'data', result)), casting='same_kind')
        return input
    return result


def relu(input, inplace=False):
    """`max(x, 0)`, with derivative 0 at 0 (as PyTorch)."""
    if not inplace:
        return nnops.relu(input)
    return _written(input, nnops.relu(_source(input, True)), True)


def elu(input, alpha=1.0, inplace=False):
    """`x` where positive, else `alpha * (exp(x) - 1)`."""
    x = _source(input, inplace)
    pos = ops.greater(x, 0)
    return _written(input, cnp.where(pos, x, alpha * ops.expm1(cnp.where(pos, 0.0, x))), inplace)


def selu(input, inplace=False):
    """`scale * elu(x, alpha)` with the self-normalising constants of Klambauer et al."""
    x = _source(input, inplace)
    return _written(input, _SELU_SCALE * elu(x, _SELU_ALPHA), inplace)


def celu(input, alpha=1.0, inplace=False):
    """`max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`."""
    if alpha == 0:
        raise ValueError('celu: alpha must not be 0')
    x = _source(input, inplace)
    pos = ops.greater(x, 0)
    out = cnp.where(pos, x, alpha * ops.expm1(cnp.where(pos, 0.0, x) / alpha))
    return _written(input, out, inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """`x` where positive, else `negative_slope * x`."""
    x = _source(input, inplace)
    return _written(input, cnp.where(ops.greater(x, 0), x, x * negative_slope), inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """`x` clipped to `[min_val, max_val]`; derivative 1 strictly inside, 0 elsewhere."""
    if min_val > max_val:
        raise ValueError(f'hardtanh: min_val {min_val} is above max_val {max_val}')
    x = _source(input, inplace)
    out = cnp.where(ops.less_equal(x, min_val), min_val,
                    cnp.where(ops.greater_equal(x, max_val), max_val, x))
    return _written(input, out, inplace)


def relu6(input, inplace=False):
    """`min(max(x, 0), 6)`."""
    x = _source(input, inplace)
    return _written(input, hardtanh(x, 0.0, 6.0), inplace)


def hardsigmoid(input, inplace=False):
    """`relu6(x + 3) / 6`: 0 below -3, 1 above 3, linear between."""
    x = _source(input, inplace)
    out = cnp.where(ops.less_equal(x, -3), 0.0,
                    cnp.where(ops.greater_equal(x, 3), 1.0, x / 6 + 0.5))
    return _written(input, out, inplace)


def hardswish(input, inplace=False):
    """`x * relu6(x + 3) / 6` (MobileNetV3), with PyTorch's derivatives at the kinks (0 at -3,
    1 at 3)."""
    x = _source(input, inplace)
    out = cnp.where(ops.less_equal(x, -3), 0.0, cnp.where(ops.less(x, 3), x * (x + 3) / 6, x))
    return _written(input, out, inplace)


def silu(input, inplace=False):
    """`x * sigmoid(x)` (swish)."""
    x = _source(input, inplace)
    return _written(input, x * nnops.sigmoid(x), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """`log(1 + exp(beta x)) / beta`, and `x` itself where `beta x > threshold`."""
    bx = input * beta
    linear = ops.greater(bx, threshold)
    return cnp.where(linear, input, softplus0(cnp.where(linear, 0.0, bx)) / beta)


def mish(input, inplace=False):
    """`x * tanh(softplus(x))`."""
    x = _source(input, inplace)
    return _written(input, x * ops.tanh(softplus(x)), inplace)


def softsign(input):
    """`x / (1 + |x|)`."""
    return input / (1 + ops.abs(input))


def softshrink(input, lambd=0.5):
    """`x - lambd` above `lambd`, `x + lambd` below `-lambd`, 0 between."""
    if lambd < 0:
        raise ValueError(f'softshrink: lambd must be >= 0, got {lambd}')
    return cnp.where(ops.greater(input, lambd), input - lambd,
                     cnp.where(ops.less(input, -lambd), input + lambd, 0.0))


def hardshrink(input, lambd=0.5):
    """`x` where `|x| > lambd`, else 0."""
    return cnp.where(ops.greater(ops.abs(input), lambd), input, 0.0)


def tanhshrink(input):
    """`x - tanh(x)`."""
    return input - ops.tanh(input)


def threshold(input, threshold, value, inplace=False):
    """`x` where `x > threshold`, else `value`."""
    x = _source(input, inplace)
    return _written(input, cnp.where(ops.greater(x, threshold), x, value), inplace)


def softplus0(x):
    """`log(1 + exp(x))` for any `x`: `x + log1p(exp(-x))` at x >= 0, `log1p(exp(x))` below,
    each side computed on an input clamped to its half (so the other side's overflow never
    reaches a derivative). Every derivative keeps its relative precision far into the tails,
    and there is no kink at 0 (`max(x, 0) + log1p(exp(-|x|))` has one in its second derivative).
    """
    pos = ops.greater_equal(x, 0)
    xp, xn = cnp.where(pos, x, 0.0), cnp.where(pos, 0.0, x)
    return cnp.where(pos, xp + ops.log1p(ops.exp(-xp)), ops.log1p(ops.exp(xn)))


def logsigmoid(input):
    """`log(sigmoid(x)) = -log(1 + exp(-x))`, without overflow or loss of precision."""
    return -softplus0(-input)


def softmin(input, dim=-1, dtype=None):
    """`softmax(-x)` along `dim`."""
    if dtype is not None:
        input = ops.astype(input, np.dtype(dtype))
    return ops.exp(nnops.log_softmax(-input, dim))


def glu(input, dim=-1):
    """Gated linear unit: the first half of `dim` times the sigmoid of the second half."""
    s = shape_of(input)
    if s[dim] % 2:
        raise ShapeError(f'glu: dimension {dim} of input {s} must have an even size')
    a, b = cnp.split(input, 2, axis=dim)
    return a * nnops.sigmoid(b)


def prelu(input, weight):
    """`x` where positive, else `weight * x`; `weight` is one slope or one per channel (axis 1,
    axis 0 for 1-D input)."""
    s, sw = shape_of(input), shape_of(weight)
    n = int(np.prod(sw))
    if n != 1:
        channels = s[1] if len(s) >= 2 else s[0] if s else 1
        if n != channels:
            raise ShapeError(f'prelu: weight {sw} must have 1 element or one per channel '
                             f'({channels} for input {s})')
        weight = ops.reshape(weight, (n,) + (1,) * (len(s) - 2) if len(s) >= 2 else (n,))
    else:
        weight = ops.reshape(weight, ())
    return cnp.where(ops.greater(input, 0), input, weight * input)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """`x / max(||x||_p, eps)` along `dim`."""
    if out is not None:
        raise TypeError('normalize: out= is not supported (chainrule results are new arrays)')
    n = cnp.linalg.norm(input, ord=None if p == 2 else p, axis=dim, keepdims=True)
    return input / ops.maximum(n, eps)


_PAD_MODES = {'constant': 'constant', 'reflect': 'reflect', 'replicate': 'edge',
              'circular': 'wrap'}


def pad(input, pad, mode='constant', value=None):
    """PyTorch's `F.pad`: `pad` lists (before, after) sizes from the last axis backwards,
    `(left, right, top, bottom, ...)`; `mode` 'constant' (with `value`, default 0), 'reflect',
    'replicate' or 'circular'. Negative sizes crop."""
    pad = tuple(int(v) for v in pad)
    s = shape_of(input)
    if len(pad) % 2 or len(pad) // 2 > len(s):
        raise ShapeError(f'pad: {pad} must hold (before, after) pairs for at most the {len(s)} '
                         f'axes of input {s}')
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_PAD_MODES)}, got {mode!r}")
    if mode != 'constant' and value:
        raise ValueError(f"pad: value= is only used with mode='constant', not {mode!r}")
    widths = [(0, 0)] * len(s)
    for k in range(len(pad) // 2):
        widths[len(s) - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    crop = tuple(slice(max(-a, 0), d - max(-b, 0)) for (a, b), d in zip(widths, s))
    if any(a < 0 or b < 0 for a, b in widths):
        input = input[crop]
        widths = [(max(a, 0), max(b, 0)) for a, b in widths]
    if mode == 'constant':
        return cnp.pad(input, widths, mode='constant', constant_values=0 if value is None
                       else value)
    for (a, b), d in zip(widths, shape_of(input)):
        if mode == 'reflect' and (a >= d or b >= d):
            raise ShapeError(f"pad: 'reflect' padding {(a, b)} must be smaller than the padded "
                             f'axis ({d}) of input {shape_of(input)}')
    return cnp.pad(input, widths, mode=_PAD_MODES[mode])


def trailing_axes(op, input, normalized_shape):
    """The trailing axes of `input` that a layer/RMS norm over `normalized_shape` reduces."""
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(normalized_shape)
    s = shape_of(input)
    k = len(normalized_shape)
    if tuple(s[len(s) - k:]) != normalized_shape:
        raise ShapeError(f'{op}: input {s} does not end with normalized_shape '
                         f'{normalized_shape}')
    return tuple(range(len(s) - k, len(s)))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """`x / sqrt(mean(x**2) + eps)` over the trailing `normalized_shape` axes, times `weight`;
    `eps` defaults to the machine epsilon of `input`'s dtype, as PyTorch."""
    axes = trailing_axes('rms_norm', input, normalized_shape)
    if eps is None:
        eps = float(np.finfo(dtype_of(input)).eps)
    out = input / ops.sqrt(cnp.mean(input * input, axis=axes, keepdims=True) + eps)
    return out if weight is None else out * weight

