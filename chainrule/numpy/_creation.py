"""`chainrule.numpy` array creation: `array`/`asarray` (also from lists of traced values),
`*_like`, `full`, `linspace`, `meshgrid`, `copy`."""

import numpy as _np

from chainrule import ops
from chainrule.core import ConcretizationError, Tracer, concrete, dtype_of, shape_of
from numpy import dtype


def _sizes_known(fn, name=None):
    """NumPy's creation function `fn` (sizes in, constants out), with a ConcretizationError
    naming it (or `name`) when a size is a traced value (NumPy raised a bare TypeError)."""
    name = name or fn.__name__

    def known(v):
        if isinstance(v, Tracer):
            try:
                return concrete(v)
            except ConcretizationError:
                raise ConcretizationError(
                    f'{name}: a size or shape argument is a {type(v).__name__} of shape '
                    f'{tuple(v.shape)} and dtype {v.dtype} that a transform is tracing; sizes '
                    'must be known when the function is traced. Compute them from shapes '
                    '(x.shape[0]) or pass them as static arguments of jit (static_argnums / '
                    'static_argnames).') from None
        if isinstance(v, (tuple, list)) and any(isinstance(x, Tracer) for x in v):
            return type(v)(known(x) for x in v)
        return v

    def wrapper(*args, **kwargs):
        return fn(*[known(a) for a in args], **{k: known(v) for k, v in kwargs.items()})
    wrapper.__name__ = wrapper.__qualname__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn
    wrapper._lists_as_arrays = False    # sizes, not arrays: never stacked (see _base)
    return wrapper


# constants: nothing to differentiate
arange, empty, eye, geomspace, identity, indices, logspace, ones, tri, zeros = map(
    _sizes_known, (_np.arange, _np.empty, _np.eye, _np.geomspace, _np.identity, _np.indices,
                   _np.logspace, _np.ones, _np.tri, _np.zeros))


def array(obj, dtype=None, copy=True, ndmin=0):
    """`np.array`, and also from (nested) lists of traced scalars: `cnp.array([x, 2 * y])`."""
    if isinstance(obj, Tracer):
        out = obj if dtype is None else ops.astype(obj, dtype)
        return out if ndmin <= out.ndim else ops.reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
    if isinstance(obj, (list, tuple)) and _contains_tracer(obj):
        out = stack([array(o) for o in obj])
        return out if dtype is None else ops.astype(out, dtype)
    return _np.array(obj, dtype=dtype, copy=copy, ndmin=ndmin)


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


class _Concatenator:
    """`cnp.r_[...]` and `cnp.c_[...]`: NumPy's index tricks for building an array from
    slices (`1:4`, `0:1:5j`), scalars and arrays, also when some of them are traced. A leading
    string sets the axis, the minimum number of dimensions and where a short item's axes go
    (`'0,2,-1'`), as in NumPy; the matrix directives `'r'`/`'c'` are not supported."""

    def __init__(self, np_trick, axis, ndmin, trans1d):
        self.np_trick, self.axis, self.ndmin, self.trans1d = np_trick, axis, ndmin, trans1d

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not _contains_tracer(list(items)):
            return self.np_trick[key]
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        if isinstance(items[0], str):
            spec = [int(v) for v in items[0].split(',')]
            axis, ndmin, trans1d = (spec + [ndmin, trans1d][len(spec) - 1:])[:3]
            items = items[1:]
        arrays = []
        for item in items:
            if isinstance(item, slice):
                item = self.np_trick[item]          # a range: NumPy's arange or linspace
            elif isinstance(item, str):
                raise ValueError(f'r_/c_: only a leading string directive is supported, got '
                                 f'{item!r} among the items')
            item = asarray(item)
            nd = len(shape_of(item))
            if nd < ndmin:
                item = ops.reshape(item, (1,) * (ndmin - nd) + shape_of(item))
                if trans1d != -1:   # NumPy: the item's own axes start at position trans1d
                    k1, k2 = trans1d + (ndmin - nd + 1 if trans1d < 0 else 0), ndmin - nd
                    order = list(range(ndmin))
                    item = ops.transpose(item, tuple(order[:k1] + order[k2:] + order[k1:k2]))
            arrays.append(item)
        return concatenate(arrays, axis=axis)

    def __len__(self):
        return 0


r_ = _Concatenator(_np.r_, 0, 1, -1)
c_ = _Concatenator(_np.c_, -1, 2, 0)


class _CastingType(type):
    """The metaclass of `cnp.float32` and its kin: `isinstance`/`issubclass` answer for
    NumPy's own scalar type, so these stand in for NumPy's types everywhere."""

    def __instancecheck__(cls, obj):
        return isinstance(obj, cls.numpy_type)

    def __subclasscheck__(cls, sub):
        return issubclass(sub, cls.numpy_type)


def _casting_type(t):
    """NumPy's scalar type `t` (a dtype wherever NumPy takes one: `np.dtype(cnp.float32)`,
    `x.astype(cnp.float32)`), which also casts a traced value or `Tensor`: `cnp.float32(x)` is
    `x` converted to float32, differentiably (NumPy's `np.float32(x)` cannot see a tracer)."""
    def new(cls, *args, **kwargs):
        if args and isinstance(args[0], Tracer):
            return ops.astype(args[0], t)
        if args and isinstance(args[0], (list, tuple)) and _contains_tracer(args[0]):
            return ops.astype(asarray(args[0]), t)
        return t(*args, **kwargs)
    doc = _casting_type.__doc__.replace('`t`', f'`{t.__name__}`')
    return _CastingType(t.__name__, (t,), {'__new__': new, 'numpy_type': t, '__doc__': doc,
                                           '__module__': 'chainrule.numpy'})


(float16, float32, float64, complex64, complex128, int8, int16, int32, int64, uint8) = map(
    _casting_type, (_np.float16, _np.float32, _np.float64, _np.complex64, _np.complex128,
                    _np.int8, _np.int16, _np.int32, _np.int64, _np.uint8))


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _contains_tracer, _is_traced  # noqa: E402
from chainrule.numpy._predicates import result_type, shape  # noqa: E402
from chainrule.numpy._shape import concatenate, moveaxis, stack  # noqa: E402
