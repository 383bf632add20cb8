"""Indexing: the primitives `getitem` (basic and advanced indices), `scatter_add` (its
transpose), and the indexed updates `at_set` and `at_add`, with `normalize_index`."""


import numpy as np

from chainrule import ops
from chainrule.core import (ConcretizationError, IndexOutOfRangeError, Primitive, Tracer, bind,
                            concrete)
from chainrule.ops.structural_shape import _batch_size, astype, broadcast_to, transpose


# --- indexing ---------------------------------------------------------------------------------

def _is_basic(idx):
    return all(i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))
               for i in idx)


def normalize_index(idx):
    """An index as a tuple NumPy understands, with tracers made concrete, lists made arrays and
    boolean masks replaced by the integer arrays they select (so the output shape depends only
    on the index, and scatter-add can invert it)."""
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    for i in idx:
        if isinstance(i, Tracer):
            i = concrete(i)
        if isinstance(i, (list, np.ndarray)) or (isinstance(i, np.generic) and i.dtype == bool):
            a = np.asarray(i)
            if a.dtype == bool:
                out.extend(np.nonzero(a))
                continue
            if a.dtype.kind not in 'iu':
                raise IndexError(f'getitem: arrays used as indices must be integer or boolean, '
                                 f'got dtype {a.dtype}')
            out.append(a)
        elif isinstance(i, (bool, np.bool_)):
            out.append(np.asarray(i))
        else:
            out.append(i)
    return tuple(out)


def _getitem_impl(x, *, idx):
    return np.asarray(x)[idx]


def _scatter_add_impl(g, *, idx, shape):
    out = np.zeros(shape, dtype=np.result_type(g))
    if _is_basic(idx):
        out[idx] = g
    else:
        np.add.at(out, idx, g)
    return out


def _written(v, x, idx):
    """`v` (shaped like the update `y` of `x[idx] = y`) zeroed where its write was overwritten:
    with repeated indices NumPy keeps the last write, and only that one reaches the result."""
    if _is_basic(idx):
        return v                  # ints and slices never repeat a position
    shape = ops.shape_of(x)
    ids = np.arange(int(np.prod(ops.shape_of(v)))).reshape(ops.shape_of(v))
    owner = np.full(shape, -1)
    owner[idx] = ids              # NumPy's own rule decides which write wins
    kept = owner[idx] == ids
    return v if kept.all() else ops.where(kept, v, 0)


def _at_set_impl(x, y, *, idx):
    out = np.array(x, copy=True)
    out[idx] = y
    return out


def _at_add_impl(x, y, *, idx):
    out = np.array(x, copy=True)
    if _is_basic(idx):
        out[idx] += y
    else:
        np.add.at(out, idx, y)
    return out


def _indexed_batch_dim(idx):
    """Where the batch axis lands in `x[(slice(None),) + idx]`: in front, unless NumPy moves
    the advanced-index axes there (advanced indices -- integer arrays, and integers among
    them -- separated by a slice, `None` or `...`); then it follows those axes."""
    if not any(isinstance(i, np.ndarray) for i in idx):
        return 0
    adv = [k for k, i in enumerate(idx)
           if isinstance(i, (np.ndarray, int, np.integer)) and not isinstance(i, bool)]
    if adv[-1] - adv[0] + 1 == len(adv):
        return 0
    return len(np.broadcast_shapes(*[np.shape(idx[k]) for k in adv]))


def _getitem_batch(args, dims, *, idx):
    return bind(getitem_p, args[0], idx=(slice(None),) + idx), _indexed_batch_dim(idx)


def _move_batch_axis(x, dim):
    """Move axis 0 of `x` to position `dim`."""
    if dim == 0:
        return x
    nd = len(ops.shape_of(x))
    return transpose(x, tuple(range(1, dim + 1)) + (0,) + tuple(range(dim + 1, nd)))


def _scatter_add_batch(args, dims, *, idx, shape):
    u, = args
    u = _move_batch_axis(u, _indexed_batch_dim(idx))
    return bind(scatter_add_p, u, idx=(slice(None),) + idx,
                shape=(_batch_size(args, dims),) + shape), 0


def _index_update_batch(prim):
    def rule(args, dims, *, idx):
        x, y = args
        size = _batch_size(args, dims)
        if dims[0] is None:
            x = broadcast_to(x, (size,) + ops.shape_of(x))
        k = _indexed_batch_dim(idx)
        idx_b = (slice(None),) + idx
        if dims[1] is None:
            if not k and not isinstance(y, Tracer):
                return bind(prim, x, y, idx=idx_b), 0      # a constant broadcasts by itself
            target = np.broadcast_to(np.empty((), np.bool_), ops.shape_of(x)[1:])[idx].shape
            y = broadcast_to(y if isinstance(y, Tracer) else np.asarray(y, ops.dtype_of(x)),
                             (size,) + target)
        return bind(prim, x, _move_batch_axis(y, k), idx=idx_b), 0
    return rule


getitem_p = Primitive('getitem', _getitem_impl, linear=True,
                      vjp=[lambda g, ans, x, *, idx: scatter_add(g, idx, ops.shape_of(x))],
                      batch=_getitem_batch)
scatter_add_p = Primitive('scatter_add', _scatter_add_impl, linear=True,
                          vjp=[lambda g, ans, u, *, idx, shape: getitem(g, idx)],
                          batch=_scatter_add_batch)
at_set_p = Primitive('at_set', _at_set_impl,
                     vjp=[lambda g, ans, x, y, *, idx: at_set(g, 0, idx),
                          lambda g, ans, x, y, *, idx: _written(getitem(g, idx), x, idx)],
                     jvp=[lambda t, ans, x, y, *, idx: at_set(t, 0, idx),
                          lambda t, ans, x, y, *, idx:
                          scatter_add(_written(t, x, idx), idx, ops.shape_of(x))],
                     batch=lambda args, dims, *, idx: _index_update_batch(at_set_p)(
                         args, dims, idx=idx))
at_add_p = Primitive('at_add', _at_add_impl, linear=True,
                     vjp=[lambda g, ans, x, y, *, idx: g,
                          lambda g, ans, x, y, *, idx: getitem(g, idx)],
                     batch=lambda args, dims, *, idx: _index_update_batch(at_add_p)(
                         args, dims, idx=idx))


def getitem(x, idx):
    """`x[idx]` for ints, slices, `None`, `...`, integer and boolean arrays."""
    try:
        idx = normalize_index(idx)
    except ConcretizationError:     # an index array traced by vmap or jit: a gather
        return ops.sorting.getitem_traced(x, idx)
    if not isinstance(x, Tracer):
        return np.asarray(x)[idx]
    try:
        shape = np.empty(ops.shape_of(x), dtype=np.bool_)[idx].shape  # checks the index
    except IndexError as e:
        raise IndexOutOfRangeError(f'getitem: index {idx!r} does not fit shape '
                                   f'{ops.shape_of(x)}: {e}') from None
    del shape
    return bind(getitem_p, x, idx=idx)


def scatter_add(u, idx, shape):
    """A zero array of `shape` with `u` added at `idx` (repeated indices accumulate)."""
    return bind(scatter_add_p, u, idx=idx, shape=tuple(shape))


def _index_update(prim, x, idx, y):
    try:
        idx = normalize_index(idx)
    except ConcretizationError:     # an index array traced by vmap or jit: a scatter
        return ops.sorting.index_update_traced('set' if prim is at_set_p else 'add', x, idx, y)
    xs = ops.shape_of(x)
    target = np.empty(xs, dtype=np.bool_)[idx].shape
    if isinstance(y, Tracer):
        y = broadcast_to(astype(y, ops.dtype_of(x)), target)
    return bind(prim, x, y, idx=idx)


def at_set(x, y, idx):
    """A copy of `x` with `x[idx] = y` (functional; `x` is not modified)."""
    return _index_update(at_set_p, x, idx, y)


def at_add(x, y, idx):
    """A copy of `x` with `y` added at `x[idx]`; repeated indices accumulate."""
    return _index_update(at_add_p, x, idx, y)
