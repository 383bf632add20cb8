"""`chainrule.numpy` indexing: `take`, `take_along_axis`, `sort`, `partition`, diagonals and
triangles, and functional indexed updates (`cnp.at(x)[idx].set(v)`)."""

import builtins
import numpy as _np

from chainrule import ops
from chainrule.core import dtype_of, shape_of, ShapeError, Tracer
from chainrule.ops import mod
from numpy import indices


def partition(a, kth, axis=-1, kind='introselect', order=None):
    """`np.partition`, differentiable: each element's gradient follows it to its place."""
    if not isinstance(a, Tracer):
        return _np.partition(a, kth, axis, kind, order)
    if axis is None:
        a, axis = ravel(a), 0
    v = _values(a)
    perm = _np.argpartition(v[0], kth, axis, kind, order) if v is not None else \
        ops.sorting.argpartition(a, kth, axis)
    return ops.sorting.take_along_axis(a, perm, axis)


def take(a, indices, axis=None, mode=None):
    """`np.take`, differentiable in `a`, with modes 'raise' (the default), 'wrap' and 'clip';
    `indices` may be traced (computed inside `vmap` or `jit`): then one gather primitive."""
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axis1(axis, len(shape_of(a)), 'take')
    n = shape_of(a)[axis]
    if mode == 'wrap':
        indices = mod(indices, n)
    elif mode == 'clip':
        indices = clip(indices, 0, n - 1)
    iv = _values(indices)
    if iv is None:
        return ops.sorting.take(a, indices, axis)
    return a[(slice(None),) * axis + (_np.asarray(iv[0]),)]


def take_along_axis(arr, indices, axis=-1):
    """`np.take_along_axis`, differentiable in `arr`; `indices` may be traced (the result of
    `argsort` inside `vmap` or `jit`). One gather primitive whose VJP is a scatter-add."""
    if axis is None:
        arr, axis = ravel(arr), 0
    if not _is_traced(arr, indices):
        return _np.take_along_axis(_np.asarray(arr), _np.asarray(indices), axis)
    return ops.sorting.take_along_axis(arr, indices, axis)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """`np.sort`, differentiable: `take_along_axis(a, argsort(a))`, so the gradient follows
    each element to its sorted place. The sort is stable unless `kind` names another one
    ('quicksort' is about 3x faster, but tied elements then get each other's gradients in an
    order NumPy chooses)."""
    if not isinstance(a, Tracer):
        return _np.sort(a, axis=axis, kind=kind, order=order)
    if axis is None:
        a, axis = ravel(a), 0
    if stable is None:
        stable = kind in (None, 'stable', 'mergesort')
    v = _values(a)
    perm = _np.argsort(v[0], axis=axis, kind='stable' if stable else None) if v is not None \
        else ops.sorting.argsort(a, axis, stable=stable)
    return ops.sorting.take_along_axis(a, perm, axis)


def diagonal(a, offset=0, axis1=0, axis2=1):
    s = shape_of(a)
    nd = len(s)
    if nd < 2:
        raise ShapeError(f'diagonal: needs an array of at least two dimensions, got shape {s}')
    a1, a2 = _axis1(axis1, nd, 'diagonal'), _axis1(axis2, nd, 'diagonal')
    if a1 == a2:
        raise ShapeError(f'diagonal: axis1 and axis2 are the same axis ({a1}) of shape {s}')
    rest = [i for i in range(nd) if i not in (a1, a2)]
    b = transpose(a, tuple(rest) + (a1, a2))
    n1, n2 = s[a1], s[a2]
    if offset >= 0:
        k = builtins.max(0, builtins.min(n1, n2 - offset))
        i, j = _np.arange(k), _np.arange(k) + offset
    else:
        k = builtins.max(0, builtins.min(n1 + offset, n2))
        i, j = _np.arange(k) - offset, _np.arange(k)
    return b[(Ellipsis, i, j)]


def diag(v, k=0):
    s = shape_of(v)
    if len(s) == 1:
        n = s[0] + builtins.abs(k)
        i = _np.arange(s[0]) + builtins.max(-k, 0)
        j = _np.arange(s[0]) + builtins.max(k, 0)
        if not isinstance(v, Tracer):
            return _np.diag(v, k)
        return ops.scatter_add(v, (i, j), (n, n))
    if len(s) == 2:
        return diagonal(v, k)
    raise ShapeError(f'diag: input must be 1-D or 2-D, got shape {s}')


def diagflat(v, k=0):
    return diag(ravel(v), k)


def trace(a, offset=0, axis1=0, axis2=1):
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


def tril(m, k=0):
    s = shape_of(m)
    mask = _np.tri(*s[-2:], k=k, dtype=bool)    # as NumPy: a 1-D m gives a square result
    return where(mask, m, _np.zeros((), dtype_of(m)))   # a zero of m's dtype: ints stay ints


def triu(m, k=0):
    s = shape_of(m)
    mask = ~_np.tri(*s[-2:], k=k - 1, dtype=bool)
    return where(mask, m, _np.zeros((), dtype_of(m)))


class _At:
    """`cnp.at(x)[idx].set(v)` / `.add(v)` / `.multiply(v)`: functional indexed updates (JAX's
    `x.at[idx].set(v)`); `x` itself is never modified."""

    __slots__ = ('x', 'idx')

    def __init__(self, x, idx=None):
        self.x, self.idx = x, idx

    def __getitem__(self, idx):
        return _At(self.x, idx)

    def set(self, values):
        return ops.at_set(self.x, values, self.idx)

    def add(self, values):
        return ops.at_add(self.x, values, self.idx)

    def subtract(self, values):
        return ops.at_add(self.x, -values, self.idx)

    def multiply(self, values):
        """Multiply the indexed elements by `values`; a position indexed k times is multiplied
        by all k of its values, as NumPy's `np.multiply.at` and JAX's `.at[].multiply`."""
        x, idx = self.x, self.idx
        parts = idx if isinstance(idx, tuple) else (idx,)
        if builtins.any(isinstance(i, Tracer) for i in parts):
            # traced indices (vmap, jit): positions unknown here, each written once
            return ops.at_set(x, x[idx] * values, idx)
        shape = shape_of(x)
        pos = _np.arange(int(_np.prod(shape))).reshape(shape)[idx]   # flat position per write
        if _np.unique(pos).size == pos.size:
            return ops.at_set(x, x[idx] * values, idx)
        # repeated positions: rounds of distinct positions, round r holding the r-th write to
        # each, applied one after another (multiplication commutes, so the order is free)
        pf = pos.ravel()
        vf = ravel(broadcast_to(values, pos.shape))
        order = _np.argsort(pf, kind='stable')
        first = _np.r_[True, pf[order][1:] != pf[order][:-1]]
        rank = _np.empty(pf.size, _np.intp)
        rank[order] = _np.arange(pf.size) - _np.maximum.accumulate(
            _np.where(first, _np.arange(pf.size), 0))
        out = ravel(x)
        for r in range(int(rank.max()) + 1):
            sel = _np.nonzero(rank == r)[0]
            out = ops.at_set(out, out[pf[sel]] * vf[sel], pf[sel])
        return reshape(out, shape)

    def get(self):
        return self.x[self.idx]


def at(x):
    return _At(x)


def index_update(x, idx, values):
    return ops.at_set(x, values, idx)


def index_add(x, idx, values):
    return ops.at_add(x, values, idx)


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._base import _is_traced, _values  # noqa: E402
from chainrule.numpy._elementwise import clip, where  # noqa: E402
from chainrule.numpy._predicates import shape  # noqa: E402
from chainrule.numpy._reductions import sum  # noqa: E402
from chainrule.numpy._shape import _axis1, broadcast_to, ravel, reshape, transpose  # noqa: E402
