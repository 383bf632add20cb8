"""`chainrule.numpy` shape functions: reshaping, transposing, joining, splitting, flipping,
rolling, tiling and padding arrays."""

import builtins
import numpy as _np

from chainrule import ops
from chainrule.core import concrete, shape_of, ShapeError, Tracer
from numpy import dtype


def rollaxis(a, axis, start=0):
    """`np.rollaxis`, as a transpose (prefer `moveaxis`)."""
    n = len(shape_of(a))
    axis %= n
    start = start + n if start < 0 else start
    if not 0 <= start <= n:
        raise ShapeError(f'rollaxis: start {start} is out of bounds for {n} dimensions')
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = [i for i in range(n) if i != axis]
    axes.insert(start, axis)
    return ops.transpose(a, tuple(axes))


def reshape(a, newshape=None, order='C', *, shape=None):
    shape = newshape if shape is None else shape
    if order in ('A', 'K'):     # NumPy: 'F' for an array laid out in Fortran order only
        fortran = isinstance(a, _np.ndarray) and a.flags.f_contiguous and not a.flags.c_contiguous
        order = 'F' if fortran else 'C'
    if order == 'F':            # Fortran order = C order on the axes reversed, then reversed back
        shape = (shape,) if isinstance(shape, (int, _np.integer)) else tuple(shape)
        return ops.transpose(ops.reshape(ops.transpose(a), shape[::-1]))
    if order != 'C':
        raise ValueError(f"reshape: order must be 'C', 'F', 'A' or 'K', got {order!r}")
    return ops.reshape(a, shape)


def ravel(a, order='C'):
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    return ops.transpose(a, axes)


def permute_dims(a, axes=None):
    return ops.transpose(a, axes)


def _axis1(axis, ndim, op):
    """One axis, checked against `ndim` (a ShapeError naming `op` when out of bounds, as
    NumPy's AxisError) and made non-negative."""
    return ops.normalize_axis(int(axis), ndim, op)[0]


def moveaxis(a, source, destination):
    nd = len(shape_of(a))
    src = [_axis1(s, nd, 'moveaxis') for s in ((source,) if isinstance(source, int) else source)]
    dst = [_axis1(d, nd, 'moveaxis')
           for d in ((destination,) if isinstance(destination, int) else destination)]
    if len(src) != len(dst):
        raise ShapeError(f'moveaxis: source {source} and destination {destination} must have the '
                         'same number of elements')
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(a, tuple(order))


def swapaxes(a, axis1, axis2):
    nd = len(shape_of(a))
    perm = list(range(nd))
    axis1, axis2 = _axis1(axis1, nd, 'swapaxes'), _axis1(axis2, nd, 'swapaxes')
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return ops.transpose(a, tuple(perm))


def squeeze(a, axis=None):
    s = shape_of(a)
    if axis is None:
        ax = tuple(i for i, d in enumerate(s) if d == 1)
    else:
        ax = ops.normalize_axis(axis, len(s), 'squeeze')
        bad = [i for i in ax if s[i] != 1]
        if bad:
            raise ShapeError(f'squeeze: cannot select axis {bad[0]} of shape {s}: its size is not 1')
    return ops.reshape(a, tuple(d for i, d in enumerate(s) if i not in ax))


def expand_dims(a, axis):
    s = list(shape_of(a))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = len(s) + len(axes)
    for ax in ops.normalize_axis(axes, nd, 'expand_dims'):
        s.insert(ax, 1)
    return ops.reshape(a, tuple(s))


def broadcast_to(array, shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return ops.broadcast_to(array, shape)


def broadcast_arrays(*args):
    s = _np.broadcast_shapes(*[shape_of(a) for a in args])
    return [ops.broadcast_to(a, s) for a in args]


def atleast_1d(*arys):
    res = [a if len(shape_of(a)) >= 1 else ops.reshape(a, (1,)) for a in arys]
    return res[0] if len(res) == 1 else res


def atleast_2d(*arys):
    res = []
    for a in arys:
        s = shape_of(a)
        res.append(a if len(s) >= 2 else ops.reshape(a, (1,) * (2 - len(s)) + s))
    return res[0] if len(res) == 1 else res


def atleast_3d(*arys):
    res = []
    for a in arys:
        s = shape_of(a)
        if len(s) == 0:
            a = ops.reshape(a, (1, 1, 1))
        elif len(s) == 1:
            a = ops.reshape(a, (1, s[0], 1))
        elif len(s) == 2:
            a = ops.reshape(a, s + (1,))
        res.append(a)
    return res[0] if len(res) == 1 else res


def concatenate(arrays, axis=0, dtype=None):
    out = ops.concatenate([asarray(a) for a in arrays], axis)
    return out if dtype is None else ops.astype(out, dtype)


concat = concatenate


def stack(arrays, axis=0):
    arrays = [asarray(a) for a in arrays]
    if not arrays:
        raise ValueError('stack: need at least one array')
    shapes = {shape_of(a) for a in arrays}
    if len(shapes) != 1:
        raise ShapeError(f'stack: all input arrays must have the same shape, got '
                         f'{[shape_of(a) for a in arrays]}')
    return ops.concatenate([expand_dims(a, axis) for a in arrays], axis)


def hstack(tup):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, 0 if len(shape_of(arrs[0])) == 1 else 1)


def vstack(tup):
    return concatenate([atleast_2d(a) for a in tup], 0)


row_stack = vstack


def dstack(tup):
    return concatenate([atleast_3d(a) for a in tup], 2)


def column_stack(tup):
    arrs = []
    for a in tup:
        a = asarray(a)
        arrs.append(ops.reshape(a, (-1, 1)) if len(shape_of(a)) < 2 else a)
    return concatenate(arrs, 1)


def append(arr, values, axis=None):
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


def split(ary, indices_or_sections, axis=0):
    axis = _axis1(axis, len(shape_of(ary)), 'split')
    n = shape_of(ary)[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ShapeError(f'split: array of size {n} along axis {axis} does not divide into '
                             f'{indices_or_sections} equal sections (use array_split)')
        return array_split(ary, indices_or_sections, axis)
    return _split_at(ary, list(indices_or_sections), axis)


def array_split(ary, indices_or_sections, axis=0):
    axis = _axis1(axis, len(shape_of(ary)), 'array_split')
    n = shape_of(ary)[axis]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
        cuts = list(_np.cumsum(sizes)[:-1])
        return _split_at(ary, cuts, axis)
    return _split_at(ary, list(indices_or_sections), axis)


def _split_at(ary, cuts, axis):
    nd = len(shape_of(ary))
    axis = _axis1(axis, nd, 'split')
    return ops.split(ary, cuts, axis)       # one node: its VJP concatenates the cotangents


def hsplit(ary, sections):
    return split(ary, sections, 1 if len(shape_of(ary)) > 1 else 0)


def vsplit(ary, sections):
    return split(ary, sections, 0)


def dsplit(ary, sections):
    return split(ary, sections, 2)


def flip(m, axis=None):
    nd = len(shape_of(m))
    axes = ops.normalize_axis(axis, nd, 'flip')
    return m[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(nd))]


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    perm = list(range(len(shape_of(m))))
    perm[axes[0]], perm[axes[1]] = perm[axes[1]], perm[axes[0]]
    if k == 1:
        return transpose(flip(m, axes[1]), perm)
    return flip(transpose(m, perm), axes[1])


def roll(a, shift, axis=None):
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape_of(a))
    if not isinstance(axis, int):
        for s, ax in zip(shift if not isinstance(shift, int) else [shift] * len(axis), axis):
            a = roll(a, s, ax)
        return a
    nd = len(shape_of(a))
    axis = _axis1(axis, nd, 'roll')
    n = shape_of(a)[axis]
    if n == 0:
        return a
    s = int(shift) % n
    if s == 0:
        return a
    pre = (slice(None),) * axis
    return concatenate([a[pre + (slice(n - s, None),)], a[pre + (slice(0, n - s),)]], axis)


def tile(A, reps):
    if isinstance(reps, Tracer) or (isinstance(reps, (tuple, list)) and
                                    builtins.any(isinstance(r, Tracer) for r in reps)):
        from chainrule.numpy._creation import _sizes_known
        reps = _sizes_known(lambda r: r, 'tile')(reps)     # concrete, or a clear error
        reps = reps.tolist() if isinstance(reps, _np.ndarray) else reps
    reps = (int(reps),) if isinstance(reps, (int, _np.integer)) else tuple(int(r) for r in reps)
    s = shape_of(A)
    nd = builtins.max(len(s), len(reps))
    s = (1,) * (nd - len(s)) + s
    reps = (1,) * (nd - len(reps)) + reps
    a = reshape(A, s)
    # put a new axis of size r before each axis, broadcast, and merge the pairs
    inter = []
    for d in s:
        inter += [1, d]
    a = reshape(a, tuple(inter))
    big = []
    for r, d in zip(reps, s):
        big += [r, d]
    a = broadcast_to(a, tuple(big))
    return reshape(a, tuple(r * d for r, d in zip(reps, s)))


def repeat(a, repeats, axis=None):
    if axis is None or not shape_of(a):         # a 0-d input acts as 1-D, as in NumPy
        a, axis = ravel(a), 0 if axis is None else axis
    nd = len(shape_of(a))
    axis = _axis1(axis, nd, 'repeat')
    n = shape_of(a)[axis]
    r = _np.asarray(concrete(repeats))
    if r.ndim == 0 or r.shape == (1,):
        repeats = int(r.reshape(()))
    elif r.shape != (n,):
        raise ShapeError(f'repeat: repeats of shape {r.shape} do not match the {n} elements along '
                         f'axis {axis} of shape {shape_of(a)}')
    if isinstance(repeats, (int, _np.integer)):
        s = shape_of(a)
        b = expand_dims(a, axis + 1)
        b = broadcast_to(b, s[:axis + 1] + (int(repeats),) + s[axis + 1:])
        return reshape(b, s[:axis] + (n * int(repeats),) + s[axis + 1:])
    idx = _np.repeat(_np.arange(n), _np.asarray(concrete(repeats)))
    return take(a, idx, axis)


def pad(array, pad_width, mode='constant', constant_values=0):
    """`np.pad` for modes 'constant', 'edge', 'reflect', 'symmetric' and 'wrap'."""
    s = shape_of(array)
    try:
        pw = _np.broadcast_to(_np.asarray(pad_width, dtype=int), (len(s), 2))
    except ValueError:
        raise ShapeError(f'pad: pad_width {pad_width!r} does not fit shape {s} (one (before, '
                         'after) pair per axis, or one pair or number for all)') from None
    if mode == 'constant':
        out_shape = tuple(d + int(lo) + int(hi) for d, (lo, hi) in zip(s, pw))
        idx = tuple(slice(int(lo), int(lo) + d) for d, (lo, _) in zip(s, pw))
        if isinstance(constant_values, Tracer) or _np.ndim(constant_values) != 0:
            raise NotImplementedError('pad: constant_values must be a number')
        base = _np.full(out_shape, constant_values, dtype=result_type(array))
        if not isinstance(array, Tracer):
            base[idx] = array
            return base
        return ops.at_set(base, array, idx)
    out = array
    for ax, (lo, hi) in enumerate(pw):
        n = shape_of(out)[ax]
        lo, hi = int(lo), int(hi)
        if not lo and not hi:
            continue
        if mode == 'edge':
            left, right = _np.zeros(lo, int), _np.full(hi, n - 1)
        elif mode == 'wrap':
            left, right = _np.arange(-lo, 0) % n, _np.arange(n, n + hi) % n
        elif mode in ('reflect', 'symmetric'):
            period = _np.r_[_np.arange(n), _np.arange(n - 1, -1, -1)] if mode == 'symmetric' \
                else _np.r_[_np.arange(n), _np.arange(n - 2, 0, -1)]
            left = period[_np.arange(-lo, 0) % len(period)]
            right = period[_np.arange(n, n + hi) % len(period)]
        else:
            raise NotImplementedError(f'pad: mode {mode!r} is not supported (constant, edge, '
                                      'reflect, symmetric, wrap)')
        idx = _np.concatenate([left, _np.arange(n), right]).astype(int)
        out = take(out, idx, ax)
    return out


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._creation import array, asarray  # noqa: E402
from chainrule.numpy._indexing import take  # noqa: E402
from chainrule.numpy._predicates import ndim, result_type, shape  # noqa: E402
