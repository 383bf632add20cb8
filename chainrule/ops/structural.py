"""Structural primitives: broadcasting, reshaping, transposing, indexing, concatenating,
dtype conversion, reductions and matrix products.

Most of these are linear (`linear=True`): their JVP is the op applied to the tangent, and
their VJP is the transposed op -- `broadcast_to` and `sum` transpose into each other, `getitem`
into a scatter-add, `concatenate` into slices, `reshape` and `transpose` into themselves.
"""

import builtins
import math

import numpy as np

from chainrule import ops
from chainrule.core import (
    ConcretizationError, PerArg, Primitive, ShapeError, Tracer, bind, concrete)


# --- broadcasting, reshaping, transposing, dtype ---------------------------------------------

def _broadcast_to_vjp(g, ans, x, *, shape):
    return sum_to_shape(g, ops.shape_of(x))


# vmap rules (`batch`): a batched argument carries the batch axis first (its dim is 0), an
# unbatched one has dim None; a rule returns (out, out_dim). Each rule below shifts the op's
# axis parameters past the batch axis, or puts the batch size in front of its shape parameter.

def _batch_size(args, dims):
    return next(ops.shape_of(a)[0] for a, d in zip(args, dims) if d is not None)


def _all_batched(args, dims):
    """Every argument with the batch axis in front (unbatched ones broadcast along it)."""
    size = _batch_size(args, dims)
    return [a if d is not None else broadcast_to(a, (size,) + ops.shape_of(a))
            for a, d in zip(args, dims)]


def _broadcast_to_batch(args, dims, *, shape):
    x, = args
    size, per = ops.shape_of(x)[0], ops.shape_of(x)[1:]
    # per-example broadcasting aligns trailing axes: new unit axes go after the batch axis
    x = reshape(x, (size,) + (1,) * (len(shape) - len(per)) + per)
    return broadcast_to(x, (size,) + shape), 0


broadcast_to_p = Primitive('broadcast_to', lambda x, *, shape: np.broadcast_to(x, shape),
                           vjp=[_broadcast_to_vjp], linear=True, batch=_broadcast_to_batch)
reshape_p = Primitive('reshape', lambda x, *, shape: np.reshape(x, shape),
                      vjp=[lambda g, ans, x, *, shape: reshape(g, ops.shape_of(x))], linear=True,
                      batch=lambda args, dims, *, shape:
                          (reshape(args[0], ops.shape_of(args[0])[:1] + shape), 0))
transpose_p = Primitive('transpose', lambda x, *, axes: np.transpose(x, axes),
                        vjp=[lambda g, ans, x, *, axes: transpose(g, tuple(np.argsort(axes)))],
                        linear=True,
                        batch=lambda args, dims, *, axes:
                            (transpose(args[0], (0,) + tuple(a + 1 for a in axes)), 0))
def _is_discrete(dtype):
    """Integer and boolean dtypes: values there are piecewise constant in the input."""
    return dtype.kind in 'biu'


def _astype_vjp(g, ans, x, *, dtype):
    # a cast to an integer or boolean dtype is piecewise constant: zero derivative (JAX)
    if _is_discrete(dtype):
        return ops.zeros_like(x)
    return _cast_cotangent(g, ops.dtype_of(x))


def _astype_jvp(t, ans, x, *, dtype):
    # None: a symbolic zero, so the integer result is a constant to forward mode
    return None if _is_discrete(dtype) else astype(t, dtype)


astype_p = Primitive('astype', lambda x, *, dtype: np.asarray(x).astype(dtype),
                     vjp=[_astype_vjp], jvp=[_astype_jvp],
                     batch=lambda args, dims, *, dtype: (astype(args[0], dtype), 0))


def _cast_cotangent(g, dtype):
    """A cotangent in the dtype of the value it belongs to: a complex cotangent of a real
    value keeps its real part (the transpose of the real-to-complex embedding)."""
    gd = ops.dtype_of(g)
    if gd == dtype:
        return g
    if gd.kind == 'c' and dtype.kind != 'c':
        g = ops.real(g)
    return astype(g, dtype)


def sum_to_shape(g, shape):
    """Sum `g` over the axes that broadcasting added or stretched, so it has `shape`."""
    gs = ops.shape_of(g)
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and gs[lead + i] != 1)
    g = sum(g, axis=axes, keepdims=False) if axes else g
    return reshape(g, shape) if ops.shape_of(g) != shape else g


def broadcast_to(x, shape):
    shape = tuple(shape)
    xs = ops.shape_of(x)
    if xs == shape:
        return x
    try:
        if np.broadcast_shapes(xs, shape) != shape:
            raise ValueError
    except ValueError:
        raise ShapeError(f'broadcast_to: cannot broadcast shape {xs} to {shape}') from None
    return bind(broadcast_to_p, x, shape=shape)


def reshape(x, shape):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(d) for d in shape)
    xs = ops.shape_of(x)
    size = int(math.prod(xs))
    if -1 in shape:
        known = int(math.prod([d for d in shape if d != -1]))
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise ShapeError(f'reshape: cannot reshape shape {xs} (size {size}) into {shape}')
        shape = tuple(size // known if d == -1 else d for d in shape)
    if int(math.prod(shape)) != size:
        raise ShapeError(f'reshape: cannot reshape shape {xs} (size {size}) into {shape} '
                         f'(size {int(math.prod(shape))})')
    if xs == shape:
        return x
    return bind(reshape_p, x, shape=shape)


def transpose(x, axes=None):
    nd = len(ops.shape_of(x))
    if axes is None:
        axes = tuple(range(nd))[::-1]
    else:
        axes = tuple(int(a) % nd if nd else int(a) for a in axes)
        if sorted(axes) != list(range(nd)):
            raise ShapeError(f'transpose: axes {axes} are not a permutation of the {nd} axes '
                             f'of shape {ops.shape_of(x)}')
    if axes == tuple(range(nd)):
        return x
    return bind(transpose_p, x, axes=axes)


def astype(x, dtype):
    """`x` converted to `dtype`. A cast from a floating or complex dtype to an integer or
    boolean one cuts the derivative (the result is piecewise constant in `x`): the value is
    detached first, so every transform and `Tensor` sees a constant, as for `stop_gradient`."""
    dtype = np.dtype(dtype)
    xd = ops.dtype_of(x)
    if xd == dtype:
        return x
    if isinstance(x, Tracer) and _is_discrete(dtype) and not _is_discrete(xd):
        x = ops.stop_gradient(x)
    return bind(astype_p, x, dtype=dtype)


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
        raise IndexError(f'getitem: index {idx!r} does not fit shape {ops.shape_of(x)}: {e}') \
            from None
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


# --- concatenate ------------------------------------------------------------------------------

def _concatenate_vjp(i, g, ans, *xs, axis):
    start = 0
    for x in xs[:i]:
        start += ops.shape_of(x)[axis]
    stop = start + ops.shape_of(xs[i])[axis]
    idx = (slice(None),) * axis + (slice(start, stop),)
    return getitem(g, idx)


concatenate_p = Primitive('concatenate', lambda *xs, axis: np.concatenate(xs, axis),
                          vjp=PerArg(_concatenate_vjp), linear=True,
                          batch=lambda args, dims, *, axis:
                              (bind(concatenate_p, *_all_batched(args, dims), axis=axis + 1), 0))


def concatenate(xs, axis=0):
    xs = list(xs)
    if not xs:
        raise ValueError('concatenate: need at least one array')
    shapes = [ops.shape_of(x) for x in xs]
    if axis is None:
        xs = [reshape(x, (-1,)) for x in xs]
        axis = 0
        shapes = [ops.shape_of(x) for x in xs]
    nd = len(shapes[0])
    if nd == 0:
        raise ShapeError('concatenate: zero-dimensional arrays cannot be concatenated')
    axis = int(axis)
    if not -nd <= axis < nd:
        raise ShapeError(f'concatenate: axis {axis} is out of bounds for shapes {shapes}')
    axis %= nd
    for s in shapes:
        if len(s) != nd or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise ShapeError(f'concatenate: shapes {shapes} must match except along axis {axis}')
    if not any(isinstance(x, Tracer) for x in xs):
        return np.concatenate(xs, axis)
    dt = np.result_type(*[ops.dtype_of(x) for x in xs])
    xs = [astype(x, dt) if isinstance(x, Tracer) else np.asarray(x, dt) for x in xs]
    return bind(concatenate_p, *xs, axis=axis)



# --- split: the transpose of concatenate -------------------------------------------------------
# One node for all the pieces, so the backward pass concatenates their cotangents once; slicing
# piece by piece would scatter each cotangent into a zero array of the whole input and add them
# up (quadratic in the number of pieces: the time steps of a recurrent layer).

def _split_vjp(g, ans, x, *, cuts, axis):
    return concatenate(list(g), axis)             # pieces without a cotangent come as zeros


split_p = Primitive('split', lambda x, *, cuts, axis: tuple(np.split(x, cuts, axis)),
                    multiple_results=True, linear=True, vjp=[_split_vjp],
                    batch=lambda args, dims, *, cuts, axis:
                        (bind(split_p, args[0], cuts=cuts, axis=axis + 1), 0))


def split(x, cuts, axis=0):
    """`numpy.split(x, cuts, axis)` at the indices `cuts`, as one primitive: a list of pieces
    (views for an array, as NumPy's)."""
    nd = len(ops.shape_of(x))
    if not -nd <= axis < nd:
        raise ShapeError(f'split: axis {axis} is out of bounds for shape {ops.shape_of(x)}')
    return list(bind(split_p, x, cuts=tuple(int(c) for c in cuts), axis=axis % nd))

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


# --- matrix product ---------------------------------------------------------------------------

def _swap(x):
    nd = len(ops.shape_of(x))
    return transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _matmul_batch(args, dims):
    a, b = args
    sa, sb = ops.shape_of(a), ops.shape_of(b)
    if dims[1] is None and len(sb) == 2:
        # (B, ..., m, k) @ (k, n): the batch folds into the rows of one product
        out = bind(matmul_p, reshape(a, (-1, sa[-1])), b)
        return reshape(out, sa[:-1] + sb[-1:]), 0
    if dims[0] is None and len(sa) == 2 and len(sb) == 3:
        # (m, k) @ (B, k, n): the batch folds into the columns, (m, k) @ (k, B n)
        cols = reshape(transpose(b, (1, 0, 2)), (sb[1], sb[0] * sb[2]))
        return reshape(bind(matmul_p, a, cols), (sa[0], sb[0], sb[2])), 1
    # per-example ranks differ: unit axes after the batch axis line the stack axes up
    rank = builtins.max(len(s) - (d is not None) for s, d in ((sa, dims[0]), (sb, dims[1])))
    new = []
    for x, s, d in ((a, sa, dims[0]), (b, sb, dims[1])):
        if d is not None and len(s) - 1 < rank:
            x = reshape(x, s[:1] + (1,) * (rank - len(s) + 1) + s[1:])
        new.append(x)
    return bind(matmul_p, *new), 0


matmul_p = Primitive(
    'matmul', np.matmul,
    vjp=[lambda g, ans, a, b: sum_to_shape(matmul(g, _swap(b)), ops.shape_of(a)),
         lambda g, ans, a, b: sum_to_shape(matmul(_swap(a), g), ops.shape_of(b))],
    jvp=[lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t)],
    batch=_matmul_batch)


def matmul(a, b):
    """`a @ b` with NumPy's rules (1-D operands are promoted, batch dimensions broadcast)."""
    sa, sb = ops.shape_of(a), ops.shape_of(b)
    if not sa or not sb:
        raise ShapeError(f'matmul: scalar operands are not allowed (shapes {sa} and {sb}); '
                         'use * for scaling')
    ka = sa[-1]
    kb = sb[-2] if len(sb) > 1 else sb[0]
    if ka != kb:
        raise ShapeError(f'matmul: shapes {sa} and {sb} do not align: {ka} (last axis of the '
                         f'first) != {kb} ({"second-to-last" if len(sb) > 1 else "only"} axis '
                         'of the second)')
    if len(sa) > 2 and len(sb) > 2:
        try:
            np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ShapeError(f'matmul: batch dimensions of shapes {sa} and {sb} cannot be '
                             'broadcast together') from None
    if not (isinstance(a, Tracer) or isinstance(b, Tracer)):
        return np.matmul(a, b)
    if len(sa) == 1:
        return reshape(matmul(reshape(a, (1, ka)), b), sb[:-2] + sb[-1:] if len(sb) > 1 else ())
    if len(sb) == 1:
        return reshape(matmul(a, reshape(b, (kb, 1))), sa[:-1])
    da, db = ops.dtype_of(a), ops.dtype_of(b)
    if da != db:
        r = np.result_type(da, db)
        a, b = astype(a, r) if isinstance(a, Tracer) else a, astype(b, r) if isinstance(b, Tracer) else b
    return bind(matmul_p, a, b)
