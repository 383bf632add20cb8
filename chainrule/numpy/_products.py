"""`chainrule.numpy` products: `dot`, `vdot`, `inner`, `outer`, `tensordot`, `kron`, `cross`,
`einsum`."""

import builtins
import numpy as _np

from chainrule.core import shape_of, ShapeError
from chainrule.ops import conj, matmul


def dot(a, b):
    """`np.dot`: a scalar product for 0-d operands, `matmul` for 1-D/2-D, and for N-D a sum
    over the last axis of `a` and the second-to-last of `b`."""
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    if len(sa) <= 2 and len(sb) <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [-2 if len(sb) > 1 else -1]))


def vdot(a, b):
    return sum(conj(ravel(a)) * ravel(b))


def inner(a, b):
    sa, sb = shape_of(a), shape_of(b)
    if not sa or not sb:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    a, b = ravel(a), ravel(b)
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def tensordot(a, b, axes=2):
    """`np.tensordot` as transpose, reshape and one `matmul`."""
    sa, sb = shape_of(a), shape_of(b)
    if isinstance(axes, int):
        ax_a = list(range(len(sa) - axes, len(sa)))
        ax_b = list(range(axes))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, int) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, int) else list(ax_b)
    ax_a = [_axis1(x, len(sa), 'tensordot') for x in ax_a]
    ax_b = [_axis1(x, len(sb), 'tensordot') for x in ax_b]
    if len(ax_a) != len(ax_b) or builtins.any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b)):
        raise ShapeError(f'tensordot: shapes {sa} and {sb} do not align on axes {ax_a} and {ax_b}')
    free_a = [i for i in range(len(sa)) if i not in ax_a]
    free_b = [j for j in range(len(sb)) if j not in ax_b]
    k = int(_np.prod([sa[i] for i in ax_a]))
    A = reshape(transpose(a, free_a + ax_a), (-1, k))
    B = reshape(transpose(b, ax_b + free_b), (k, -1))
    return reshape(matmul(A, B), tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def kron(a, b):
    sa, sb = shape_of(a), shape_of(b)
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a, b = reshape(a, sa), reshape(b, sb)
    ai, bi = [], []
    for x, y in zip(sa, sb):
        ai += [x, 1]
        bi += [1, y]
    return reshape(reshape(a, tuple(ai)) * reshape(b, tuple(bi)),
                   tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    na, nb = shape_of(a)[-1:], shape_of(b)[-1:]
    if na not in ((2,), (3,)) or nb not in ((2,), (3,)):
        raise ShapeError(f'cross: the vectors must have 2 or 3 components along the axis, got '
                         f'shapes {shape_of(a)} and {shape_of(b)}')
    if na == nb == (2,):        # NumPy: the z component of the 3-vectors (a0, a1, 0), (b0, b1, 0)
        return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    # a 2-vector against a 3-vector: its third component is 0
    a, b = (concatenate([v, v[..., :1] * 0], axis=-1) if n == (2,) else v
            for v, n in ((a, na), (b, nb)))
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    c = stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)
    return moveaxis(c, -1, axisc)


def einsum(subscripts, *operands, optimize=False):
    """`np.einsum`: explicit or implicit output, ellipsis, repeated letters, the interleaved
    form; one primitive (see `chainrule.numpy._einsum`)."""
    from chainrule.numpy._einsum import einsum as _einsum
    return _einsum(subscripts, *operands, optimize=optimize)


# The topic modules call one another; each imports its siblings last, once all of its own
# names are defined, so any import order resolves.
from chainrule.numpy._elementwise import multiply  # noqa: E402
from chainrule.numpy._reductions import sum  # noqa: E402
from chainrule.numpy._shape import (  # noqa: E402
    _axis1, concatenate, moveaxis, ravel, reshape, stack, transpose)
