"""The matrix helpers every linear-algebra rule shares (`chainrule.ops.linalg_solve`,
`linalg_decompositions`, `linalg_einsum`, and `chainrule.numpy.linalg`/`chainrule.scipy.linalg`):
batched transposes and products, diagonals, triangles, safe reciprocals, running a LAPACK
routine with the op named in its error, and the shape checks of the wrappers. All are
differentiable: they are compositions of primitives.
"""

import numpy as np

from chainrule import ops
from chainrule.core import ShapeError, Tracer, bind


def _mm(a, b):
    return ops.matmul(a, b)


def _mT(x):
    """Swap the last two axes."""
    nd = len(ops.shape_of(x))
    return ops.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _is_complex(x):
    return ops.dtype_of(x).kind == 'c'


def _conj(x):
    return ops.conj(x) if _is_complex(x) else x


def _H(x):
    return _conj(_mT(x))


def _real_dtype(x):
    dt = ops.dtype_of(x)
    return np.finfo(dt).dtype if dt.kind in 'fc' else np.dtype(np.float64)


def _diag(x):
    """The diagonal of the last two axes, shape (..., n)."""
    i = np.arange(ops.shape_of(x)[-1])
    return ops.getitem(x, (Ellipsis, i, i))


def _diag_embed(v):
    """A batch of diagonal matrices with `v` (..., n) on the diagonal."""
    n = ops.shape_of(v)[-1]
    return ops.mul(ops.reshape(v, ops.shape_of(v) + (1,)), np.eye(n, dtype=_real_dtype(v)))


def _col(v):
    """(..., n) -> (..., n, 1): one value per row."""
    return ops.reshape(v, ops.shape_of(v) + (1,))


def _row(v):
    """(..., n) -> (..., 1, n): one value per column."""
    s = ops.shape_of(v)
    return ops.reshape(v, s[:-1] + (1, s[-1]))


def _scalar_to_matrix(v):
    return ops.reshape(v, ops.shape_of(v) + (1, 1))


def _masked(x, mask):
    """`x * mask` for a constant real mask, in x's precision."""
    return ops.mul(x, mask.astype(_real_dtype(x)))


def _tril(x, k=0):
    s = ops.shape_of(x)
    return _masked(x, np.tri(s[-2], s[-1], k))


def _recip_diff(w):
    """F_ij = 1 / (w_j - w_i), and 0 where w_j == w_i (the diagonal, and degenerate pairs whose
    true derivative is undefined; 0 there is the convention JAX and PyTorch use)."""
    return _safe_recip(ops.sub(_row(w), _col(w)))


def _safe_recip(s):
    """1 / s, and 0 where s == 0 (with a zero derivative there, not NaN)."""
    zero = ops.equal(s, 0)
    return ops.where(zero, 0, ops.div(1, ops.where(zero, 1, s)))


def _like_input(g, x):
    """A cotangent in the form of the input `x`: a real input keeps the real part."""
    if _is_complex(g) and not _is_complex(x):
        return ops.real(g)
    return g


def _hermitian_part(x):
    return ops.mul(ops.add(x, _H(x)), 0.5)


def _lapack(name, fn, *args, **kwargs):
    """Run a NumPy linalg routine; a LinAlgError comes back with the op named."""
    try:
        return fn(*args, **kwargs)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError(f'{name}: {e}') from None


def _batch_leading(get_prim):
    """The vmap rule of a one-matrix primitive: it already maps over leading axes, and the
    batch axis (first) is one of them."""
    return lambda args, dims, **params: (bind(get_prim(), *args, **params), 0)


def _as_float(x):
    dt = ops.dtype_of(x)
    if dt.kind in 'fc':
        return x
    return ops.astype(x, np.float64) if isinstance(x, Tracer) else np.asarray(x, np.float64)


def _square(name, a):
    s = ops.shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f'{name}: expected a square matrix or a stack of them (shape (..., n, n)),'
                         f' got shape {s}')
    return _as_float(a)


def _matrix(name, a):
    s = ops.shape_of(a)
    if len(s) < 2:
        raise ShapeError(f'{name}: expected a matrix or a stack of them (shape (..., m, n)), got '
                         f'shape {s}')
    return _as_float(a)
