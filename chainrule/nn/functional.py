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

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ShapeError, Tracer, dtype_of, shape_of
from chainrule.ops import nn as nnops
from chainrule.ops.nn import erf, linear, relu, sigmoid
from chainrule.nn import _activation_functions, _loss_functions
from chainrule.nn._activation_functions import *  # noqa: F401,F403 (PyTorch's names)
from chainrule.nn._loss_functions import *  # noqa: F401,F403 (PyTorch's names)
from chainrule.nn._loss_functions import _reduce  # noqa: F401 (the modules' reductions)

__all__ = [
    'linear', 'relu', 'gelu', 'tanh', 'sigmoid', 'softmax', 'log_softmax', 'erf',
    'cross_entropy', 'nll_loss', 'mse_loss', 'binary_cross_entropy_with_logits',
    'conv2d', 'max_pool2d', 'dropout', 'layer_norm', 'group_norm', 'batch_norm',
    'embedding', 'one_hot',
] + _activation_functions.__all__ + [n for n in _loss_functions.__all__
                                     if n not in ('cross_entropy', 'nll_loss', 'mse_loss',
                                                  'binary_cross_entropy_with_logits')]


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

def conv2d(input, weight, bias=None, stride=1, padding=0):
    """2-D convolution (cross-correlation, as PyTorch's `F.conv2d`).

    Computed as im2col: the input unfolded into patch rows, then one matrix product with the
    flattened weight, as a single primitive (one tape node).

    Args:
        input: `(N, C_in, H, W)`.
        weight: `(C_out, C_in, kh, kw)`.
        bias: optional `(C_out,)`.
        stride, padding: ints or pairs (zero padding); `padding` may also be PyTorch's
            `'valid'` (none) or `'same'` (output as large as the input, stride 1 only; an even
            kernel gets the extra row/column of padding after, as in PyTorch).

    Returns:
        `(N, C_out, OH, OW)`.
    """
    if isinstance(padding, str):
        input, padding = _string_padding(input, weight, stride, padding)
    return nnops.conv2d(input, weight, bias, stride, padding)


def _string_padding(input, weight, stride, padding):
    if padding == 'valid':
        return input, 0
    if padding != 'same':
        raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got "
                         f'{padding!r}')
    if stride not in (1, (1, 1), [1, 1]):
        raise ValueError(f"conv2d: padding='same' needs stride 1 (as in PyTorch), got {stride}")
    # total padding k - 1 per axis: (k - 1) // 2 before, the rest after
    (t, b), (l, r) = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in shape_of(weight)[2:]]
    if (t, l) == (b, r):
        return input, (t, l)
    return cnp.pad(input, ((0, 0), (0, 0), (t, b), (l, r))), 0


def max_pool2d(input, kernel_size, stride=None, padding=0):
    """2-D max pooling over windows of `kernel_size` (PyTorch's `F.max_pool2d`; padding is with
    -inf). The gradient goes to the first maximum of each window, as in PyTorch.

    Args:
        input: `(N, C, H, W)`.
        kernel_size: int or pair.
        stride: int or pair; defaults to `kernel_size`.
        padding: int or pair, at most half the kernel.

    Returns:
        `(N, C, OH, OW)`.
    """
    k, s, p = nnops._window_args(shape_of(input), kernel_size,
                                 kernel_size if stride is None else stride, padding, 'max_pool2d')
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f'max_pool2d: padding {p} must be at most half the kernel {k}')
    return nnops.max_pool2d(input, kernel=k, stride=s, padding=p)


# --- regularisation and normalisation ------------------------------------------------------

def dropout(input, p=0.5, training=True, rng=None):
    """Zero each element with probability `p` and scale the rest by `1/(1-p)` (identity when
    not training).

    Args:
        input: any array.
        p: drop probability in [0, 1).
        training: apply dropout (True) or return `input` unchanged.
        rng: anything `np.random.default_rng` accepts (an int seed, a `Generator`, ...) for
            reproducible masks; the default generator (seeded by `nn.init.manual_seed`) if
            omitted.
    """
    if not 0 <= p < 1:
        raise ValueError(f'dropout: p must be in [0, 1), got {p}')
    if not training or p == 0:
        return input
    from chainrule.nn import init
    keep = init._draw(rng).random(shape_of(input)) >= p
    return input * (keep * (1.0 / (1.0 - p))).astype(dtype_of(input))


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
    """Batch normalisation over axis 0 (and any trailing axes after the channels, for
    `(N, C, L)` inputs), PyTorch's `F.batch_norm`.

    In training, the batch statistics normalise and `running_mean`/`running_var` (NumPy
    arrays, updated in place) move towards them by `momentum` (with the unbiased variance, as
    PyTorch); in evaluation the running statistics normalise.
    """
    si = shape_of(input)
    if len(si) not in (2, 3):
        raise ShapeError(f'batch_norm: input must be (N, C) or (N, C, L), got shape {si}')
    axes = (0,) if len(si) == 2 else (0, 2)
    shape = (1, si[1]) + (1,) * (len(si) - 2)
    if training:
        mu = cnp.mean(input, axis=axes, keepdims=True)
        d = input - mu
        var = cnp.mean(d * d, axis=axes, keepdims=True)
        if running_mean is not None:
            n = int(np.prod([si[a] for a in axes]))
            m = np.asarray(ops.concrete(mu)).reshape(-1)
            v = np.asarray(ops.concrete(var)).reshape(-1) * (n / max(n - 1, 1))
            running_mean *= 1 - momentum
            running_mean += momentum * m.astype(running_mean.dtype)
            running_var *= 1 - momentum
            running_var += momentum * v.astype(running_var.dtype)
        out = d / ops.sqrt(var + eps)
    else:
        out = (input - ops.reshape(running_mean, shape)) / ops.sqrt(
            ops.reshape(running_var, shape) + eps)
    if weight is not None:
        out = out * ops.reshape(weight, shape)
    if bias is not None:
        out = out + ops.reshape(bias, shape)
    return out


def embedding(input, weight):
    """Rows of `weight` `(num_embeddings, dim)` picked by integer indices `input` (any shape):
    the result has shape `input.shape + (dim,)`; the gradient scatters back into the rows."""
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
