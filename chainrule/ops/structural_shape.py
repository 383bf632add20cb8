"""Broadcasting, reshaping, transposing and dtype conversion: the primitives `broadcast_to`,
`reshape`, `transpose`, `astype`, with `sum_to_shape` (broadcasting's transpose), and the
helpers every structural `vmap` rule shares."""

import math

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, Tracer, bind


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
    g = ops.sum(g, axis=axes, keepdims=False) if axes else g
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
