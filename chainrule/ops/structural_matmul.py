"""The matrix product: the primitive `matmul`, with NumPy's rules for 1-D operands and batch
dimensions, and its `vmap` rule (a batch folded into the rows or columns of one product)."""

import builtins

import numpy as np

from chainrule import ops
from chainrule.core import DTypeError, Primitive, ShapeError, Tracer, bind
from chainrule.ops.structural_shape import astype, reshape, sum_to_shape, transpose


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
        other = next((v for v in (a, b) if v is None or isinstance(v, (str, bytes))), a)
        if other is None or isinstance(other, (str, bytes)):
            raise DTypeError(f'matmul: cannot multiply by a {type(other).__name__} '
                             f'({other!r:.40}); the operands must be arrays or Tensors')
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
