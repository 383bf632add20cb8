"""`chainrule.numpy` array creation: `array`/`asarray` (also from lists of traced values),
`*_like`, `full`, `linspace`, `meshgrid`, `copy`."""

import numpy as _np

from chainrule import ops
from chainrule.core import dtype_of, shape_of, Tracer
from numpy import dtype


def array(obj, dtype=None, copy=True, ndmin=0):
    """`np.array`, and also from (nested) lists of traced scalars: `cnp.array([x, 2 * y])`."""
    if isinstance(obj, Tracer):
        out = obj if dtype is None else ops.astype(obj, dtype)
        return out if ndmin <= out.ndim else ops.reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
    if isinstance(obj, (list, tuple)) and _contains_tracer(obj):
        out = stack([array(o) for o in obj])
        return out if dtype is None else ops.astype(out, dtype)
    return _np.array(obj, dtype=dtype, copy=copy, ndmin=ndmin)


def _contains_tracer(obj):
    stack_ = [obj]
    while stack_:
        o = stack_.pop()
        if isinstance(o, Tracer):
            return True
        if isinstance(o, (list, tuple)):
            stack_.extend(o)
    return False


def asarray(obj, dtype=None):
    if isinstance(obj, Tracer) or (isinstance(obj, (list, tuple)) and _contains_tracer(obj)):
        return array(obj, dtype=dtype)
    return _np.asarray(obj, dtype=dtype)


def _const_like(fn):
    def f(a, dtype=None, shape=None):
        return fn(shape_of(a) if shape is None else shape, dtype=dtype or dtype_of(a))
    f.__name__ = fn.__name__ + '_like'
    return f


zeros_like = _const_like(_np.zeros)


ones_like = _const_like(_np.ones)


empty_like = _const_like(_np.zeros)


def full_like(a, fill_value, dtype=None, shape=None):
    if isinstance(fill_value, Tracer):
        return ops.broadcast_to(ops.astype(fill_value, dtype or dtype_of(a)), shape or shape_of(a))
    return _np.full(shape or shape_of(a), fill_value, dtype=dtype or dtype_of(a))


def meshgrid(*xi, copy=True, sparse=False, indexing='xy'):
    """`np.meshgrid`, differentiable in the coordinate vectors: output i is vector i reshaped
    along axis i (axes 0 and 1 swapped for `indexing='xy'`) and broadcast to the grid."""
    if not _is_traced(*xi):
        return _np.meshgrid(*xi, copy=copy, sparse=sparse, indexing=indexing)
    if indexing not in ('xy', 'ij'):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    nd = len(xi)
    axes = list(range(nd))
    if indexing == 'xy' and nd > 1:
        axes[0], axes[1] = 1, 0
    outs = [ops.reshape(x, (1,) * a + (-1,) + (1,) * (nd - a - 1)) for x, a in zip(xi, axes)]
    if not sparse:
        grid = _np.broadcast_shapes(*[shape_of(o) for o in outs])
        outs = [ops.broadcast_to(o, grid) for o in outs]
    return tuple(outs)


def full(shape, fill_value, dtype=None):
    """`np.full`, differentiable in `fill_value` (its gradient is the cotangent's sum)."""
    if not isinstance(fill_value, Tracer):
        return _np.full(shape, fill_value, dtype=dtype)
    shape = (int(shape),) if isinstance(shape, (int, _np.integer)) else tuple(shape)
    return ops.broadcast_to(fill_value if dtype is None else ops.astype(fill_value, dtype), shape)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`np.linspace`, differentiable in `start` and `stop`: sample i is
    `start + (stop - start) * i / div`, linear in both."""
    if not _is_traced(start, stop):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
    div = num - 1 if endpoint else num
    dt = result_type(start, stop, float(num))
    span = stop - start
    step = span / div if div > 0 else span * _np.nan
    bshape = _np.broadcast_shapes(shape_of(start), shape_of(stop))
    t = (_np.arange(num) / div if div > 0 else _np.zeros(num)).astype(dt)
    out = start + _np.reshape(t, (num,) + (1,) * len(bshape)) * span
    if endpoint and num > 1:     # exactly `stop` at the end, as NumPy
        out = ops.at_set(out, ops.broadcast_to(stop, bshape), (num - 1,))
    out = moveaxis(out, 0, axis) if axis != 0 else out
    out = out if dtype is None else ops.astype(out, dtype)
    return (out, step) if retstep else out


def copy(a, order='K', subok=False):
    """`np.copy`: for a `Tensor`, `clone()` (a new Tensor whose gradient flows back to `a`);
    other traced values cannot be modified in place, so they are their own copy."""
    if getattr(a, '_is_tensor', False):
        return a.clone()
    if isinstance(a, Tracer):
        return a
    return _np.copy(a, order=order, subok=subok)


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _is_traced  # noqa: E402
from chainrule.numpy._predicates import result_type, shape  # noqa: E402
from chainrule.numpy._shape import moveaxis, stack  # noqa: E402
