"""The elementwise activations that earn a primitive (`relu`, `sigmoid`, `erf`) and
`log_softmax` (stable; its VJP `g - softmax * sum(g)` reads the output)."""

import math

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, bind, shape_of
from chainrule.ops.nn_common import _filled


def _sigmoid_impl(x):
    # exact to rounding for every real x: (1 + tanh(x/2)) / 2, used before, lost the relative
    # precision of small values (sigmoid(-40) came out 0, sigmoid(-20) 1e-8 off)
    x = np.asarray(x)
    if x.dtype.kind == 'c':
        return 1 / (1 + np.exp(-x))
    if x.dtype.kind != 'f':
        x = x.astype(np.float64)
    if _expit is not None:
        return _expit(x)
    e = np.exp(-np.abs(x))          # NumPy only: the formula that cannot overflow on each side
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


try:
    from scipy.special import expit as _expit
except ImportError:
    _expit = None


def _erf_impl(x):
    try:
        from scipy.special import erf as _erf
    except ImportError:     # NumPy only: Python's math.erf, one element at a time
        x = np.asarray(x)
        return np.vectorize(math.erf, otypes=[x.dtype])(x)
    return _erf(x)


_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

def _relu_impl(x):
    # NumPy's maximum against a scalar runs about 3x slower than against an array of zeros
    # in the same memory order (the scalar, broadcast, misses the vector loop): so, on large
    # floating arrays, the array (a view of x in its memory order, and shared zeros)
    if x.size < 4096 or x.dtype.kind != 'f':
        return np.maximum(x, 0)
    perm = sorted(range(x.ndim), key=lambda i: -x.strides[i])
    xm = x.transpose(perm)
    if not xm.flags.c_contiguous:
        return np.maximum(x, 0)
    out = np.maximum(xm, _filled(0, x.size, x.dtype).reshape(xm.shape))
    return out.transpose(np.argsort(perm))


relu_p    = Primitive('relu',    _relu_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans > 0)])
# sigmoid' = sigmoid(x) sigmoid(-x): written with 1 - ans it rounds to 0 beyond x = 37
sigmoid_p = Primitive('sigmoid', _sigmoid_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ans * sigmoid(-x))])
erf_p     = Primitive('erf',     _erf_impl, elementwise=True,
                      vjp=[lambda g, ans, x: g * (ops.exp(-(x * x)) * _TWO_OVER_SQRT_PI)])


def relu(x):
    """`max(x, 0)`, with derivative 0 at 0 (as PyTorch)."""
    return bind(relu_p, x)


def sigmoid(x):
    """The logistic function `1 / (1 + exp(-x))`, stable for any `x`."""
    return bind(sigmoid_p, x)


def erf(x):
    """The error function `2/sqrt(pi) * integral_0^x exp(-t^2) dt`."""
    return bind(erf_p, x)


# --- log_softmax and cross-entropy ----------------------------------------------------------

def _log_softmax_impl(x, *, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


# d log_softmax(x)_i / dx_j = delta_ij - softmax_j, so the VJP is g - softmax * sum(g) and the
# JVP t - sum(softmax * t); softmax = exp(ans) is recovered from the output.
log_softmax_p = Primitive(
    'log_softmax', _log_softmax_impl,
    vjp=[lambda g, ans, x, *, axis: g - ops.exp(ans) * ops.sum(g, axis=axis, keepdims=True)],
    jvp=[lambda t, ans, x, *, axis: t - ops.sum(ops.exp(ans) * t, axis=axis, keepdims=True)])


def log_softmax(x, axis=-1):
    """`x - logsumexp(x, axis)`: log-probabilities from logits, without overflow."""
    nd = len(shape_of(x))
    if nd == 0:
        raise ShapeError('log_softmax: needs at least one axis, got a 0-d array')
    axis = ops.normalize_axis(axis, nd, 'log_softmax')[0]
    if shape_of(x)[axis] == 0:
        return ops.mul(x, 0.0)     # over an empty axis: an empty result, as PyTorch gives
    return bind(log_softmax_p, x, axis=axis)


log_softmax_p.batch = lambda args, dims, *, axis: (bind(log_softmax_p, args[0], axis=axis + 1),
                                                   0)
