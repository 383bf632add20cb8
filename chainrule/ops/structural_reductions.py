"""Reductions and scans: the primitives `sum`, `max`, `cumsum` and `cumprod` (whose rules solve
a linear recurrence without dividing by `x`), with `normalize_axis`."""

import builtins

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, Tracer, bind
from chainrule.ops.structural_indexing import getitem
from chainrule.ops.structural_join import concatenate
from chainrule.ops.structural_shape import broadcast_to, reshape


# --- reductions -------------------------------------------------------------------------------

def _kept_shape(shape, axis):
    return tuple(1 if i in axis else d for i, d in enumerate(shape))


def _sum_vjp(g, ans, x, *, axis, keepdims):
    xs = ops.shape_of(x)
    if not keepdims:
        g = reshape(g, _kept_shape(xs, axis))
    return broadcast_to(g, xs)


def _max_weights(ans, x, axis, keepdims):
    # the gradient of a max goes to the elements equal to it, split evenly among ties
    xs = ops.shape_of(x)
    a = ans if keepdims else reshape(ans, _kept_shape(xs, axis))
    mask = ops.astype(ops.equal(x, a), ops.dtype_of(x))
    return mask / sum(mask, axis=axis, keepdims=True)


def _shifted_axis(prim):
    """vmap rule of a reduction or scan: its `axis` (an int or a tuple) moves past the batch
    axis."""
    def rule(args, dims, *, axis, **params):
        axis = tuple(a + 1 for a in axis) if isinstance(axis, tuple) else axis + 1
        return bind(prim, args[0], axis=axis, **params), 0
    return rule


sum_p = Primitive('sum', lambda x, *, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                  vjp=[_sum_vjp], linear=True,
                  batch=lambda args, dims, **p: _shifted_axis(sum_p)(args, dims, **p))
max_p = Primitive(
    'max', lambda x, *, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
    vjp=[lambda g, ans, x, *, axis, keepdims:
         _sum_vjp(g, ans, x, axis=axis, keepdims=keepdims) * _max_weights(ans, x, axis, keepdims)],
    jvp=[lambda t, ans, x, *, axis, keepdims:
         sum(t * _max_weights(ans, x, axis, keepdims), axis=axis, keepdims=keepdims)],
    batch=lambda args, dims, **p: _shifted_axis(max_p)(args, dims, **p))
cumsum_p = Primitive('cumsum', lambda x, *, axis: np.cumsum(x, axis=axis),
                     vjp=[lambda g, ans, x, *, axis: _flip(cumsum(_flip(g, axis), axis), axis)],
                     linear=True,
                     batch=lambda args, dims, **p: _shifted_axis(cumsum_p)(args, dims, **p))
cumprod_p = Primitive(
    'cumprod', lambda x, *, axis: np.cumprod(x, axis=axis),
    # without dividing by x, so zeros in x are exact (see _cumprod_vjp and _cumprod_jvp)
    vjp=[lambda g, ans, x, *, axis: _cumprod_vjp(g, ans, x, axis)],
    jvp=[lambda t, ans, x, *, axis: _cumprod_jvp(t, ans, x, axis)],
    batch=lambda args, dims, **p: _shifted_axis(cumprod_p)(args, dims, **p))


def _flip(x, axis):
    return getitem(x, (slice(None),) * axis + (slice(None, None, -1),))


# cumprod's derivatives. With out_j = out_{j-1} x_j and E_j = out_{j-1} (E_0 = 1, the exclusive
# product), the tangent obeys D_j = x_j D_{j-1} + E_j t_j, and the cotangent S_i = sum_{j >= i}
# g_j prod_{i < k <= j} x_k obeys S_i = g_i + x_{i+1} S_{i+1}, with grad_i = E_i S_i. Both are
# first-order linear recurrences, solved below by doubling in log2(n) steps of products and
# sums only: no division by x (the textbook out_j / x_i is nan at x_i = 0), and the rules stay
# differentiable by composition.

def _along(x, axis, sl):
    return getitem(x, (slice(None),) * axis + (sl,))


def _padded(x, axis, d, fill):
    """x shifted d places along `axis`, the first d entries being `fill`."""
    shape = list(ops.shape_of(x))
    shape[axis] = d
    head = np.full(shape, fill, dtype=ops.dtype_of(x))
    return concatenate([head, _along(x, axis, slice(None, -d))], axis)


def _linear_recurrence(a, b, axis):
    """s with s_j = b_j + a_j s_{j-1} (s_{-1} = 0) along `axis`: element j holds the map
    s -> b_j + a_j s composed over a window that doubles each step (Hillis-Steele scan)."""
    n = ops.shape_of(b)[axis]
    d = 1
    while d < n:
        b = b + a * _padded(b, axis, d, 0)
        a = a * _padded(a, axis, d, 1)
        d *= 2
    return b


def _exclusive(ans, axis):
    return _padded(ans, axis, 1, 1)


def _cumprod_jvp(t, ans, x, axis):
    if ops.shape_of(x)[axis] == 0:
        return t
    return _linear_recurrence(x, _exclusive(ans, axis) * t, axis)


def _cumprod_vjp(g, ans, x, axis):
    if ops.shape_of(x)[axis] == 0:
        return g
    nxt = _flip(_padded(_flip(x, axis), axis, 1, 0), axis)    # x_{i+1}, and 0 past the end
    s = _flip(_linear_recurrence(_flip(nxt, axis), _flip(g, axis), axis), axis)
    return _exclusive(ans, axis) * s


def normalize_axis(axis, ndim, op='sum'):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ShapeError(f'{op}: axis {a} is out of bounds for an array of dimension {ndim}')
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f'{op}: repeated axis in {axis}')
    return tuple(sorted(out))


def sum(x, axis=None, keepdims=False):
    xs = ops.shape_of(x)
    axis = normalize_axis(axis, len(xs), 'sum')
    if not isinstance(x, Tracer):
        return np.sum(x, axis=axis, keepdims=keepdims)
    if not axis:
        return x
    return bind(sum_p, x, axis=axis, keepdims=bool(keepdims))


def max(x, axis=None, keepdims=False):
    xs = ops.shape_of(x)
    axis = normalize_axis(axis, len(xs), 'max')
    if 0 in [xs[a] for a in axis]:
        raise ShapeError(f'max: zero-size reduction over axis {axis} of shape {xs} has no '
                         'identity')
    if not axis:
        return x
    return bind(max_p, x, axis=axis, keepdims=bool(keepdims))


def cumsum(x, axis=None):
    if axis is None or not ops.shape_of(x):     # a 0-d input acts as 1-D, as in NumPy
        x, axis = reshape(x, (-1,)), 0 if axis is None else axis
    axis = normalize_axis(axis, len(ops.shape_of(x)), 'cumsum')[0]
    return bind(cumsum_p, x, axis=axis)


def cumprod(x, axis=None):
    if axis is None or not ops.shape_of(x):     # a 0-d input acts as 1-D, as in NumPy
        x, axis = reshape(x, (-1,)), 0 if axis is None else axis
    axis = normalize_axis(axis, len(ops.shape_of(x)), 'cumprod')[0]
    return bind(cumprod_p, x, axis=axis)
