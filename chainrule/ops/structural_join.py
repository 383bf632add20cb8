"""Joining and splitting arrays: the primitives `concatenate` and `split` (its transpose, one
node for all the pieces)."""


import numpy as np

from chainrule import ops
from chainrule.core import PerArg, Primitive, ShapeError, Tracer, bind
from chainrule.ops.structural_indexing import getitem
from chainrule.ops.structural_shape import _all_batched, astype, reshape


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
