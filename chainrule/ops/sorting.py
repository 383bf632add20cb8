"""Sorting, searching and gathering primitives: the value-dependent part of NumPy's API, made
of primitives so that it works under every transform.

What this module lets you do: sort, rank, search and index by computed positions inside `vmap`
and `jit`, where values are batched or abstract and NumPy cannot be handed one concrete array.
`argsort`, `argpartition`, `argmax`/`argmin`, `all`/`any` and `searchsorted` are primitives
with no derivative (their results are integers or booleans: constants to `grad`), each with a
batching rule; `take_along_axis` (a gather along one axis with an integer array that may itself
be traced) is differentiable, and its transpose `scatter_along_axis` (a scatter-add) is its VJP.
`chainrule.numpy` builds `sort` (`take_along_axis(x, argsort(x))`, so the gradient follows each
element to its sorted place), `take`, `partition`, `interp`, `digitize` and indexing with a
traced integer array (`x[cnp.argmax(x)]`, `cnp.at(x)[i].set(v)`) on them.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> cr.vmap(cnp.sort)(np.array([[3.0, 1.0, 2.0], [0.0, -1.0, 5.0]]))
    array([[ 1.,  2.,  3.],
           [-1.,  0.,  5.]])

Functions whose *output shape* depends on the values (`nonzero`, `unique`, boolean-mask
indexing, `repeat` with traced counts) cannot be primitives with a static shape; they stay on
concrete values and raise `ConcretizationError` under `vmap` and `jit`.

Every primitive here has a `shape` rule, so `jit` finds result types without sorting zeros;
the impls are valid on zero arrays too (index 0 is always in range), which is how the tests
check the rules against them.
"""

import builtins

import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, Primitive, ShapeError, Tracer, bind
from chainrule.ops.structural import _all_batched, _shifted_axis, normalize_axis

__all__ = [
    'argsort', 'argpartition', 'argmax', 'argmin', 'all', 'any', 'searchsorted',
    'take_along_axis', 'scatter_along_axis', 'take', 'getitem_traced', 'index_update_traced',
]


# --- not differentiable: integer and boolean results ---------------------------------------------
# Each is a reduction or scan along `axis` (an int, or a tuple for all/any): under vmap the axis
# moves past the batch axis (`_shifted_axis`), which also serves nested vmaps. The `shape` rules
# give jit the result types without running the sort on zeros.

_INDEX = np.dtype(np.intp)


def _per_element(x, **params):
    return x.shape, _INDEX              # argsort, argpartition: one index per element


def _argsort_impl(x, *, axis, stable):
    return np.argsort(x, axis=axis, kind='stable' if stable else None)


argsort_p = Primitive('argsort', _argsort_impl, vjp=None, shape=_per_element,
                      batch=lambda args, dims, **p: _shifted_axis(argsort_p)(args, dims, **p))
argpartition_p = Primitive(
    'argpartition', lambda x, *, kth, axis: np.argpartition(x, kth, axis=axis), vjp=None,
    shape=_per_element,
    batch=lambda args, dims, **p: _shifted_axis(argpartition_p)(args, dims, **p))


def _reduction(name, fn, dtype):
    def shape(x, *, axis, keepdims):
        axes = axis if isinstance(axis, tuple) else (axis,)
        if keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(x.shape)), dtype
        return tuple(d for i, d in enumerate(x.shape) if i not in axes), dtype

    prim = Primitive(name, lambda x, *, axis, keepdims: fn(x, axis=axis, keepdims=keepdims),
                     vjp=None, shape=shape)
    prim.batch = _shifted_axis(prim)
    return prim


argmax_p = _reduction('argmax', np.argmax, _INDEX)     # axis: an int (the wrapper ravels for
argmin_p = _reduction('argmin', np.argmin, _INDEX)     # axis=None)
all_p = _reduction('all', np.all, np.dtype(np.bool_))  # axis: a tuple
any_p = _reduction('any', np.any, np.dtype(np.bool_))


# searchsorted. One sorted row `a` (n,) and values `v` of any shape, as NumPy -- or, once
# batched, rows `a` (*lead, n) and values `v` (*lead, ...) searched row by row. NumPy has no
# batched searchsorted, so `_searchsorted_rows` merges instead: stable-sort each row of
# [v, a] (side='left': a value goes before the equal elements of `a`) or [a, v] ('right': after
# them); the answer for a value is the number of elements of `a` before it in the merged order.
# Exact (comparisons only), O((n + m) log(n + m)) per row, and vectorised over the rows.

def _searchsorted_rows(a, v, side):
    n, m = a.shape[-1], v.shape[-1]
    dt = np.result_type(a, v)
    left = side == 'left'
    both = np.concatenate([v.astype(dt), a.astype(dt)] if left else [a.astype(dt), v.astype(dt)],
                          axis=-1)
    order = np.argsort(both, axis=-1, kind='stable')
    from_a = (order >= m) if left else (order < n)
    a_before = np.cumsum(from_a, axis=-1)          # at a value's place: the elements of a before it
    rank = np.empty_like(order)                    # the inverse permutation: where each entry went
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n + m), order.shape), axis=-1)
    where_v = rank[..., :m] if left else rank[..., n:]
    return np.take_along_axis(a_before, where_v, axis=-1).astype(np.intp)


def _searchsorted_impl(a, v, *, side):
    a, v = np.asarray(a), np.asarray(v)
    if a.ndim == 1:
        return np.searchsorted(a, v, side=side)
    lead = a.shape[:-1]
    rows = np.reshape(v, lead + (-1,))
    return _searchsorted_rows(a, rows, side).reshape(v.shape)


def _searchsorted_batch(args, dims, *, side):
    a, v = args
    if dims[0] is None and len(ops.shape_of(a)) == 1:
        return bind(searchsorted_p, a, v, side=side), 0   # one row: the batch is part of v
    a, v = _all_batched(args, dims)
    return bind(searchsorted_p, a, v, side=side), 0


searchsorted_p = Primitive('searchsorted', _searchsorted_impl, vjp=None,
                           shape=lambda a, v, *, side: (v.shape, _INDEX),
                           batch=_searchsorted_batch)


# --- gather and scatter-add along one axis --------------------------------------------------------
# take_along_axis: out[..., j, ...] = x[..., idx[..., j, ...], ...] along `axis`, with idx of x's
# shape except along `axis` (the wrapper broadcasts the other axes). It is linear in x; its
# transpose adds each g[..., j, ...] into slot idx[..., j, ...] (repeated indices accumulate):
# scatter_along_axis, whose own transpose is the gather again.

def _full_index(idx, axis):
    """The index tuple that picks `idx` along `axis` and every position along the others."""
    nd = idx.ndim
    return tuple(idx if i == axis else
                 np.arange(d).reshape((1,) * i + (d,) + (1,) * (nd - i - 1))
                 for i, d in enumerate(idx.shape))


def _scatter_along_axis_impl(u, idx, *, axis, n):
    u = np.asarray(u)
    shape = u.shape[:axis] + (n,) + u.shape[axis + 1:]
    out = np.zeros(shape, u.dtype)
    np.add.at(out, _full_index(np.asarray(idx), axis), u)
    return out


def _gather_batch(prim):
    def rule(args, dims, *, axis, **params):
        x, idx = _all_batched(args, dims)
        return bind(prim, x, idx, axis=axis + 1, **params), 0
    return rule


take_along_axis_p = Primitive(
    'take_along_axis', lambda x, idx, *, axis: np.take_along_axis(x, idx, axis=axis),
    shape=lambda x, idx, *, axis: (idx.shape, x.dtype),
    vjp=[lambda g, ans, x, idx, *, axis:
         scatter_along_axis(g, idx, axis, ops.shape_of(x)[axis]), None],
    jvp=[lambda t, ans, x, idx, *, axis: take_along_axis(t, idx, axis), None],
    batch=lambda args, dims, **p: _gather_batch(take_along_axis_p)(args, dims, **p))
scatter_along_axis_p = Primitive(
    'scatter_along_axis', _scatter_along_axis_impl,
    shape=lambda u, idx, *, axis, n: (u.shape[:axis] + (n,) + u.shape[axis + 1:], u.dtype),
    vjp=[lambda g, ans, u, idx, *, axis, n: take_along_axis(g, idx, axis), None],
    jvp=[lambda t, ans, u, idx, *, axis, n: scatter_along_axis(t, idx, axis, n), None],
    batch=lambda args, dims, **p: _gather_batch(scatter_along_axis_p)(args, dims, **p))


# --- wrappers: check shapes, normalise arguments, bind -------------------------------------------

def _axis(axis, nd, op):
    return normalize_axis(int(axis), builtins.max(nd, 1), op)[0]


def _check_int(idx, op):
    dt = ops.dtype_of(idx)
    if dt.kind not in 'iu':
        raise IndexError(f'{op}: indices must be integers, got dtype {dt}')


def argsort(x, axis=-1, stable=True):
    """Indices that sort `x` along `axis` (stable by default: ties keep their order)."""
    s = ops.shape_of(x)
    if not s:
        x, s = ops.reshape(x, (1,)), (1,)
    return bind(argsort_p, x, axis=_axis(axis, len(s), 'argsort'), stable=bool(stable))


def argpartition(x, kth, axis=-1):
    """`np.argpartition`: indices that put the `kth` element(s) of `x` in their sorted place."""
    s = ops.shape_of(x)
    axis = _axis(axis, len(s), 'argpartition')
    kth = tuple(int(k) for k in kth) if isinstance(kth, (tuple, list, np.ndarray)) else int(kth)
    for k in (kth if isinstance(kth, tuple) else (kth,)):
        if not -s[axis] <= k < s[axis]:
            raise ShapeError(f'argpartition: kth={k} is out of bounds for axis {axis} of '
                             f'shape {s}')
    return bind(argpartition_p, x, kth=kth, axis=axis)


def _arg_reduce(prim, x, axis, keepdims):
    s = ops.shape_of(x)
    if axis is None:
        if 0 in s:
            raise ShapeError(f'{prim.name}: an empty array of shape {s} has no {prim.name[3:]}')
        out = bind(prim, ops.reshape(x, (-1,)), axis=0, keepdims=False)
        return ops.reshape(out, (1,) * len(s)) if keepdims else out
    axis = _axis(axis, len(s), prim.name)
    if s and s[axis] == 0:
        raise ShapeError(f'{prim.name}: axis {axis} of shape {s} is empty (no {prim.name[3:]})')
    if not s:
        x = ops.reshape(x, (1,))
    return bind(prim, x, axis=axis, keepdims=bool(keepdims) and bool(s))


def argmax(x, axis=None, keepdims=False):
    """Index of the (first) largest element, over the flattened array or along `axis`."""
    return _arg_reduce(argmax_p, x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index of the (first) smallest element, over the flattened array or along `axis`."""
    return _arg_reduce(argmin_p, x, axis, keepdims)


def all(x, axis=None, keepdims=False):
    """Whether every element (along `axis`) is true."""
    return bind(all_p, x, axis=normalize_axis(axis, len(ops.shape_of(x)), 'all'),
                keepdims=bool(keepdims))


def any(x, axis=None, keepdims=False):
    """Whether any element (along `axis`) is true."""
    return bind(any_p, x, axis=normalize_axis(axis, len(ops.shape_of(x)), 'any'),
                keepdims=bool(keepdims))


def searchsorted(a, v, side='left'):
    """Where to insert `v` into the sorted 1-D `a` to keep it sorted (`np.searchsorted`)."""
    if side not in ('left', 'right'):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    if len(ops.shape_of(a)) != 1:
        raise ShapeError(f'searchsorted: a must be 1-D, got shape {ops.shape_of(a)} (with v of '
                         f'shape {ops.shape_of(v)})')
    return bind(searchsorted_p, a, v, side=side)


def _aligned(x, idx, axis, op):
    """`x` and `idx` broadcast against each other on every axis but `axis` (as NumPy's
    take_along_axis does), so the primitives see matching shapes."""
    sx, si = ops.shape_of(x), ops.shape_of(idx)
    if len(sx) != len(si):
        raise ShapeError(f'{op}: indices of shape {si} must have as many dimensions as the '
                         f'array of shape {sx}')
    if sx[:axis] == si[:axis] and sx[axis + 1:] == si[axis + 1:]:
        return x, idx               # the common case (sort): nothing to broadcast
    try:
        other = np.broadcast_shapes(sx[:axis] + (1,) + sx[axis + 1:],
                                    si[:axis] + (1,) + si[axis + 1:])
    except ValueError:
        raise ShapeError(f'{op}: indices of shape {si} do not broadcast against the array of '
                         f'shape {sx} outside axis {axis}') from None
    want_x = other[:axis] + sx[axis:axis + 1] + other[axis + 1:]
    want_i = other[:axis] + si[axis:axis + 1] + other[axis + 1:]
    if sx != want_x:
        x = ops.broadcast_to(x, want_x)
    if si != want_i:
        idx = ops.broadcast_to(idx, want_i) if isinstance(idx, Tracer) else \
            np.broadcast_to(idx, want_i)
    return x, idx


def take_along_axis(x, idx, axis):
    """`np.take_along_axis(x, idx, axis)`, differentiable in `x`; `idx` may be traced."""
    if not isinstance(idx, Tracer):
        idx = np.asarray(idx)
    _check_int(idx, 'take_along_axis')
    axis = _axis(axis, len(ops.shape_of(x)), 'take_along_axis')
    x, idx = _aligned(x, idx, axis, 'take_along_axis')
    return bind(take_along_axis_p, x, idx, axis=axis)


def scatter_along_axis(u, idx, axis, n):
    """Zeros with `n` entries along `axis`, and `u` added at `idx` along it (repeats add up)."""
    su, si = ops.shape_of(u), ops.shape_of(idx)
    if su != si:
        raise ShapeError(f'scatter_along_axis: values of shape {su} and indices of shape {si} '
                         'must match')
    return bind(scatter_along_axis_p, u, idx, axis=int(axis), n=int(n))


def take(x, idx, axis):
    """`np.take(x, idx, axis)` for an integer `idx` of any shape (possibly traced): the
    result has `idx`'s shape in place of `axis`. A gather along one axis."""
    s = ops.shape_of(x)
    axis = _axis(axis, len(s), 'take')
    if not isinstance(idx, Tracer):
        idx = np.asarray(idx)
    _check_int(idx, 'take')
    si = ops.shape_of(idx)
    m = int(np.prod(si))
    # idx laid along `axis` and broadcast over the others, then one gather
    flat = ops.reshape(idx, (1,) * axis + (m,) + (1,) * (len(s) - axis - 1))
    out = take_along_axis(x, flat, axis)
    return ops.reshape(out, s[:axis] + si + s[axis + 1:])


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _traced_index(x, idx, op):
    """Take apart an index holding one integer array `t` with no concrete value.

    Returns:
        (basic, full, t, axis, front): `basic` is the index with `t` replaced by a full slice
        (integers, slices, `...` and None: concrete), `full` whether it selects all of `x`,
        `axis` the axis of `x[basic]` that `t` indexes, and `front` whether NumPy puts the
        gathered axes first (a slice, `...` or None separates two advanced indices -- integers
        count as advanced ones).
    """
    idx = idx if isinstance(idx, tuple) else (idx,)
    traced = [k for k, i in enumerate(idx) if isinstance(i, Tracer)]
    k = traced[0]
    t = idx[k]
    if ops.dtype_of(t) == np.bool_:
        raise ConcretizationError(
            f'{op}: a traced boolean mask (shape {ops.shape_of(t)}) selects a number of '
            'elements that depends on the values, which vmap and jit cannot represent: use '
            'cnp.where(mask, x, 0) to keep the shape, or apply the mask outside the transform.')
    simple = builtins.all(i is None or i is Ellipsis or isinstance(i, slice) or _is_int(i)
                          for j, i in enumerate(idx) if j != k)
    if len(traced) > 1 or not simple:
        raise ConcretizationError(
            f'{op}: indexing an array of shape {ops.shape_of(x)} with {idx!r}: an integer '
            'index array without a concrete value (inside vmap or jit) is supported alone '
            'along one axis, with integers, slices, ... and None around it (x[i], x[:, i], '
            'x[0, ..., i]). Use cnp.take(x, i, axis) or cnp.take_along_axis(x, i, axis) for '
            'other patterns.')
    _check_int(t, op)
    # `t` indexes the axis of x[basic] after those kept by the entries before it (slices,
    # None, the ellipsis; integers remove theirs)
    nd_used = builtins.sum(1 for i in idx if i is not None and i is not Ellipsis)
    ell = len(ops.shape_of(x)) - nd_used
    axis = builtins.sum(ell if i is Ellipsis else 0 if _is_int(i) else 1 for i in idx[:k])
    basic = idx[:k] + (slice(None),) + idx[k + 1:]
    full = builtins.all(i is Ellipsis or (isinstance(i, slice) and i == slice(None))
                        for i in basic)
    adv = [j for j, i in enumerate(idx) if j == k or _is_int(i)]
    front = adv[-1] - adv[0] + 1 != len(adv) and axis > 0 and len(ops.shape_of(t)) > 0
    return basic, full, t, axis, front


def _front_order(nd, axis, nt):
    """The transpose that moves axes axis..axis+nt-1 of an nd-array to the front."""
    moved = list(range(axis, axis + nt))
    return tuple(moved + [a for a in range(nd) if a not in moved])


def getitem_traced(x, idx):
    """`x[idx]` where `idx` holds an integer array with no concrete value (inside `vmap` or
    `jit`): one such array, among integers, slices, `...` and `None`, is a gather along the
    axis it indexes (`x[i]`, `x[:, i]`, `x[..., i]`, `x[1:, i]`, `x[0, i]`), with NumPy's
    placement of the result's axes. Other patterns raise a `ConcretizationError` that names
    the alternatives."""
    basic, full, t, axis, front = _traced_index(x, idx, 'getitem')
    out = take(x if full else ops.getitem(x, basic), t, axis)
    if front:
        out = ops.transpose(out, _front_order(len(ops.shape_of(out)), axis,
                                              len(ops.shape_of(t))))
    return out


def index_update_traced(kind, x, idx, y):
    """`cnp.at(x)[idx].set(y)` (`kind='set'`) or `.add(y)` (`'add'`) where `idx` holds an
    integer array with no concrete value (the index patterns of `getitem_traced`): a
    scatter along the axis it indexes. Repeated indices accumulate for `add`; for `set` the
    last one wins, as in NumPy."""
    op = f'at[...].{kind}'
    basic, full, t, axis, front = _traced_index(x, idx, op)
    region = x if full else ops.getitem(x, basic)        # the part of x the index reaches
    sr, st = ops.shape_of(region), ops.shape_of(t)
    n, m, nt = sr[axis], int(np.prod(st)), len(st)
    dt = ops.dtype_of(x)
    inplace = sr[:axis] + st + sr[axis + 1:]             # x[idx]'s shape, `t`'s axes in place
    if isinstance(y, Tracer):
        y = ops.astype(y, dt)
    else:
        y = np.asarray(y, dt)
    if front:
        order = _front_order(len(inplace), axis, nt)
        y = ops.broadcast_to(y, tuple(inplace[a] for a in order))
        y = ops.transpose(y, tuple(np.argsort(order)))
    else:
        y = ops.broadcast_to(y, inplace)
    lay = (1,) * axis + (m,) + (1,) * (len(sr) - axis - 1)   # t laid along `axis`
    y = ops.reshape(y, sr[:axis] + (m,) + sr[axis + 1:])
    ti = ops.mod(ops.reshape(t, (m,)), n)                # negative indices count from the end
    if kind == 'set':
        # the last of repeated indices wins: drop each entry whose index recurs later on
        later = np.triu(np.ones((m, m), np.bool_), 1)
        same = ops.equal(ops.reshape(ti, (m, 1)), ops.reshape(ti, (1, m)))
        keep = ops.logical_not(any(ops.logical_and(same, later), axis=1))
        y = ops.where(ops.reshape(keep, lay), y, np.zeros((), dt))
    upd = scatter_along_axis(y, ops.broadcast_to(ops.reshape(ti, lay), ops.shape_of(y)),
                             axis, n)
    if kind == 'add':
        new = region + upd
    else:
        hits = scatter_along_axis(np.ones(m, np.intp), ti, 0, n)
        new = ops.where(ops.reshape(ops.greater(hits, 0), lay[:axis] + (n,) + lay[axis + 1:]),
                        upd, region)
    return new if full else ops.at_set(x, new, basic)
