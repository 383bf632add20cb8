"""`chainrule.numpy` functions with non-differentiable results: indices (`argmax`, `argsort`,
`nonzero`, `searchsorted`), truth values (`all`, `any`, `isin`), counts and shapes."""

import numpy as _np

from chainrule import ops
from chainrule.core import concrete, dtype_of, shape_of, Tracer
from chainrule.ops import equal, less_equal, logical_and, logical_not, logical_or, not_equal


def _nondiff_reduce(fn):
    def f(*args, **kwargs):
        # every argument made concrete: a Tensor left among `args` would dispatch straight back
        # here through __array_function__, forever
        def values(x):
            return _concrete_for(fn.__name__, 'the shape of its result depends on the values', x)
        return fn(*[values(x) for x in args], **{k: values(v) for k, v in kwargs.items()})
    f.__name__ = fn.__name__
    f.__doc__ = f'`np.{fn.__name__}` on the values (not differentiable; its result\'s shape ' \
        'depends on the values, so not inside vmap or jit).'
    return f


argwhere, nonzero, flatnonzero, unique = map(_nondiff_reduce, (
    _np.argwhere, _np.nonzero, _np.flatnonzero, _np.unique))


# Not differentiable (integer or boolean results), with static result shapes: NumPy itself on
# concrete values, the primitives of chainrule.ops.sorting on values traced by vmap, jit or grad.

def argmax(a, axis=None, out=None, *, keepdims=False):
    """`np.argmax`: the index of the first largest element (flattened, or along `axis`)."""
    v = _values(a)
    if v is not None or out is not None:
        return _np.argmax(concrete(a), axis=axis, out=out, keepdims=keepdims)
    return ops.sorting.argmax(a, axis, keepdims)


def argmin(a, axis=None, out=None, *, keepdims=False):
    """`np.argmin`: the index of the first smallest element (flattened, or along `axis`)."""
    v = _values(a)
    if v is not None or out is not None:
        return _np.argmin(concrete(a), axis=axis, out=out, keepdims=keepdims)
    return ops.sorting.argmin(a, axis, keepdims)


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """`np.argsort`: the indices that sort `a` along `axis`."""
    v = _values(a)
    if v is not None:
        return _np.argsort(v[0], axis=axis, kind=kind, order=order, stable=stable)
    if axis is None:
        a, axis = ravel(a), 0
    return ops.sorting.argsort(a, axis, stable=bool(stable) or kind in ('stable', 'mergesort'))


def _all_any(np_fn, op, a, axis, out, keepdims, where, masked):
    v = _values(a, where)
    if v is not None or out is not None:
        kw = {} if where is None else {'where': concrete(where)}
        return np_fn(concrete(a), axis=axis, out=out, keepdims=keepdims, **kw)
    if where is not None:
        a = masked(a, where)
    return op(a, axis, keepdims)


def all(a, axis=None, out=None, keepdims=False, *, where=None):
    """`np.all`: whether every element (along `axis`, among those `where` selects) is true."""
    return _all_any(_np.all, ops.sorting.all, a, axis, out, keepdims, where,
                    lambda a, w: logical_or(a, logical_not(w)))


def any(a, axis=None, out=None, keepdims=False, *, where=None):
    """`np.any`: whether some element (along `axis`, among those `where` selects) is true."""
    return _all_any(_np.any, ops.sorting.any, a, axis, out, keepdims, where,
                    lambda a, w: logical_and(a, w))


def count_nonzero(a, axis=None, *, keepdims=False):
    """`np.count_nonzero`: the number of non-zero elements (along `axis`)."""
    v = _values(a)
    if v is not None:
        return _np.count_nonzero(v[0], axis=axis, keepdims=keepdims)
    return ops.sum(ops.astype(not_equal(a, 0), _np.intp), axis=axis, keepdims=keepdims)


def searchsorted(a, v, side='left', sorter=None):
    """`np.searchsorted`: where to insert `v` into the sorted 1-D `a` to keep it sorted."""
    vals = _values(a, v, sorter)
    if vals is not None:
        return _np.searchsorted(vals[0], vals[1], side=side, sorter=vals[2])
    if sorter is not None:
        a = take(a, sorter)
    return ops.sorting.searchsorted(a, v, side)


def digitize(x, bins, right=False):
    """`np.digitize`: the index of the bin each `x` falls in. Inside `vmap` and `jit` the bins'
    direction is decided by their first and last elements (non-monotonic bins go unnoticed)."""
    vals = _values(x, bins)
    if vals is not None:
        return _np.digitize(vals[0], vals[1], right=right)
    side = 'left' if right else 'right'     # as NumPy: the arguments are swapped
    n = shape_of(bins)[0]
    up = searchsorted(bins, x, side)
    down = n - searchsorted(flip(bins), x, side)
    return where(less_equal(bins[0], bins[-1]), up, down)


def isin(element, test_elements, assume_unique=False, invert=False):
    """`np.isin`: whether each element of `element` is among `test_elements`."""
    vals = _values(element, test_elements)
    if vals is not None:
        return _np.isin(vals[0], vals[1], assume_unique=assume_unique, invert=invert)
    s = shape_of(element)
    hit = ops.sorting.any(equal(reshape(element, s + (1,)), ravel(test_elements)), axis=-1)
    return logical_not(hit) if invert else hit


def shape(a):
    return shape_of(a)


def ndim(a):
    return len(shape_of(a))


def size(a, axis=None):
    s = shape_of(a)
    return int(_np.prod(s)) if axis is None else s[axis]


def result_type(*args):
    return _np.result_type(*[dtype_of(a) if isinstance(a, Tracer) else a for a in args])


def iscomplexobj(x):
    """`np.iscomplexobj`: whether the dtype of `x` (also a list or a dtype-carrying object) is
    complex."""
    dt = dtype_of(x) if isinstance(x, (Tracer, _np.ndarray, _np.generic)) else _np.asarray(x).dtype
    return dt.kind == 'c'


def isrealobj(x):
    return not iscomplexobj(x)


bincount = _nondiff_reduce(_np.bincount)     # result shapes depend on the values


histogram = _nondiff_reduce(_np.histogram)


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _concrete_for, _values  # noqa: E402
from chainrule.numpy._elementwise import invert, where  # noqa: E402
from chainrule.numpy._indexing import take  # noqa: E402
from chainrule.numpy._shape import flip, ravel, reshape  # noqa: E402
