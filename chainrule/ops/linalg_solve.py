"""Solves and determinants: the primitives `inv`, `solve`, `triangular_solve` (the helper of
the cholesky and qr rules), `det` and `slogdet`, each with its wrapper. Conventions (complex
cotangents, notation) are in `chainrule.ops.linalg`'s docstring.
"""

import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, Primitive, ShapeError, bind, concrete
from chainrule.ops.linalg_common import (_H, _as_float, _batch_leading, _is_complex, _lapack,
                                         _mm, _mT, _real_dtype, _row, _scalar_to_matrix,
                                         _square, _tril)


# --- inv, solve, det, slogdet -----------------------------------------------------------------

# d(A^-1) = -A^-1 dA A^-1; its transpose is g -> -A^-T g A^-T.
inv_p = Primitive(
    'inv', lambda a: _lapack('inv', np.linalg.inv, a),
    vjp=[lambda g, ans, a: ops.neg(_mm(_mm(_mT(ans), g), _mT(ans)))],
    jvp=[lambda t, ans, a: ops.neg(_mm(_mm(ans, t), ans))],
    batch=_batch_leading(lambda: inv_p))


def _solve_T(a, g):
    return solve(_mT(a), g)


# x = A^-1 b (b a batch of matrices (..., n, k)): dx = A^-1 (db - dA x), so
# b_bar = A^-T g and A_bar = -b_bar x^T.
solve_p = Primitive(
    'solve', lambda a, b: _lapack('solve', np.linalg.solve, a, b),
    vjp=[lambda g, ans, a, b: ops.neg(_mm(_solve_T(a, g), _mT(ans))),
         lambda g, ans, a, b: _solve_T(a, g)],
    jvp=[lambda t, ans, a, b: ops.neg(solve(a, _mm(t, ans))),
         lambda t, ans, a, b: solve(a, t)],
    # batch dimensions broadcast in the wrapper, so an unbatched argument just works
    batch=lambda args, dims: (solve(*args), 0))


def _nearly_singular(a, ans):
    """Whether det(A) A^-1 would lose most digits: |det A| tiny next to Hadamard's bound
    prod_i |row_i| (>= |det A|). Needs concrete values; under `jit` it answers False."""
    try:
        ac, dc = np.asarray(concrete(a)), np.asarray(concrete(ans))
    except ConcretizationError:
        return False
    bound = np.prod(np.linalg.norm(ac, axis=-1), axis=-1)
    tol = np.sqrt(np.finfo(_real_dtype(ac)).eps)
    return bool(np.any(np.abs(dc) <= tol * bound))


def _adjugate(a, ans):
    """adj(A) = det(A) A^-1, also for a singular A (where det is still differentiable)."""
    if not _nearly_singular(a, ans):
        try:
            return ops.mul(_scalar_to_matrix(ans), inv(a))
        except np.linalg.LinAlgError:
            pass
    # A = U S V^H: adj(A) = adj(V^H) adj(S) adj(U) = det(U) det(V^H) V adj(S) U^H, where
    # adj(S) = diag(p), p_i = prod_{j != i} s_j, formed as prod_j (s_j (1 - e_j) + e_j): exact
    # with zero singular values, and so are its derivatives (no division anywhere)
    from chainrule.ops.linalg_decompositions import svd   # (it imports this module)
    u, s, vh = svd(a, False)
    n = ops.shape_of(s)[-1]
    eye = np.eye(n, dtype=ops.dtype_of(s))
    p = None
    for j in range(n):
        col = ops.add(ops.mul(ops.getitem(s, (Ellipsis, slice(j, j + 1))), 1 - eye[j]), eye[j])
        p = col if p is None else ops.mul(p, col)
    scale = ops.mul(det(u), det(vh))
    return ops.mul(_scalar_to_matrix(scale), _mm(ops.mul(_H(vh), _row(p)), _H(u)))


# d det A = tr(adj(A) dA) (Jacobi's formula; adj(A) = det(A) A^-1), so A_bar = g adj(A)^T.
det_p = Primitive(
    'det', lambda a: _lapack('det', np.linalg.det, a),
    vjp=[lambda g, ans, a: ops.mul(_scalar_to_matrix(g), _mT(_adjugate(a, ans)))],
    jvp=[lambda t, ans, a: ops.sum(ops.mul(_mT(_adjugate(a, ans)), t), axis=(-2, -1))],
    batch=_batch_leading(lambda: det_p))


def _slogdet_jvp(t, ans, a):
    # c = tr(A^-1 dA) = d log det A: d logabsdet = Re c; d sign = sign * i Im c (0 when real)
    sign, _ = ans
    c = ops.sum(ops.mul(_mT(_slogdet_inv(a)), t), axis=(-2, -1))
    if not _is_complex(c):
        return np.zeros(ops.shape_of(sign), ops.dtype_of(sign)), c
    return ops.mul(sign, ops.mul(ops.astype(ops.imag(c), ops.dtype_of(c)), 1j)), ops.real(c)


def _slogdet_vjp(g, ans, a):
    # the transpose of t -> (sign i Im c, Re c), c = sum(A^-T o t): with u = g_sign * sign,
    # <g, (ds, dl)> = Re((i Im u + g_logabsdet) c), so A_bar = (g_l + i Im(g_s sign)) A^-T
    g_sign, g_log = g
    sign, _ = ans
    w = g_log
    if _is_complex(sign):
        w = ops.add(ops.astype(w, ops.dtype_of(sign)),
                    ops.mul(ops.astype(ops.imag(ops.mul(g_sign, sign)), ops.dtype_of(sign)), 1j))
    return ops.mul(_scalar_to_matrix(w), _mT(_slogdet_inv(a)))


def _slogdet_inv(a):
    try:
        return inv(a)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(
            'slogdet: the derivative of log|det a| is infinite at a singular matrix (det a = 0); '
            'differentiate det instead, which is smooth there') from None


slogdet_p = Primitive('slogdet', lambda a: tuple(np.linalg.slogdet(a)), multiple_results=True,
                      vjp=[_slogdet_vjp], jvp=[_slogdet_jvp],
                      batch=_batch_leading(lambda: slogdet_p))


# --- triangular_solve: the helper of the cholesky and qr rules ---------------------------------

def _triangular_solve_impl(a, b, *, lower):
    # only the `lower` (or upper) triangle of a is read. SciPy's solver exploits the structure
    # (O(n^2 k) instead of an LU factorisation) when it is installed and a is a single matrix;
    # otherwise NumPy's general solver on the triangle gives the same x.
    if a.ndim == 2:
        try:
            from scipy.linalg import solve_triangular
        except ImportError:
            solve_triangular = None
        if solve_triangular is not None:
            return _lapack('triangular_solve', solve_triangular, a, b, lower=lower,
                           check_finite=False)
    tri = np.tril(a) if lower else np.triu(a)
    return _lapack('triangular_solve', np.linalg.solve, tri, b)


def _tri(x, lower):
    return _tril(x) if lower else _mT(_tril(_mT(x)))


# x = A^-1 b for triangular A: as `solve`, with A's cotangent kept on its triangle
triangular_solve_p = Primitive(
    'triangular_solve', _triangular_solve_impl,
    vjp=[lambda g, ans, a, b, *, lower: ops.neg(_tri(_mm(triangular_solve(
             _mT(a), g, lower=not lower), _mT(ans)), lower)),
         lambda g, ans, a, b, *, lower: triangular_solve(_mT(a), g, lower=not lower)],
    jvp=[lambda t, ans, a, b, *, lower: ops.neg(triangular_solve(
             a, _mm(_tri(t, lower), ans), lower=lower)),
         lambda t, ans, a, b, *, lower: triangular_solve(a, t, lower=lower)],
    batch=lambda args, dims, *, lower: (triangular_solve(*args, lower=lower), 0))


def triangular_solve(a, b, *, lower):
    """x with a @ x = b for lower (or upper) triangular matrices `a` (..., n, n) and `b`
    (..., n, k); batch dimensions broadcast."""
    a = _square('triangular_solve', a)
    sa, sb = ops.shape_of(a), ops.shape_of(b)
    if len(sb) < 2 or sb[-2] != sa[-1]:
        raise ShapeError(f'triangular_solve: shapes {sa} (a) and {sb} (b) do not fit: b must be '
                         f'(..., {sa[-1]}, k)')
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    dt = np.result_type(ops.dtype_of(a), ops.dtype_of(b))
    a = ops.broadcast_to(ops.astype(a, dt), batch + sa[-2:])
    b = ops.broadcast_to(ops.astype(b, dt), batch + sb[-2:])
    return bind(triangular_solve_p, a, b, lower=bool(lower))


def inv(a):
    """The inverse of each square matrix in `a` (..., n, n)."""
    return bind(inv_p, _square('inv', a))


def solve(a, b):
    """x with a @ x = b: `b` is a vector (n,) or a stack of matrices (..., n, k), as in NumPy 2;
    batch dimensions broadcast."""
    a = _square('solve', a)
    b = _as_float(b)
    sa, sb = ops.shape_of(a), ops.shape_of(b)
    n = sa[-1]
    vector = len(sb) == 1
    if (vector and sb[0] != n) or (not vector and (len(sb) < 2 or sb[-2] != n)):
        raise ShapeError(f'solve: shapes {sa} (a) and {sb} (b) do not fit: b must be (n,) or '
                         f'(..., n, k) with n = {n}')
    bm = ops.reshape(b, (n, 1)) if vector else b
    try:
        batch = np.broadcast_shapes(sa[:-2], ops.shape_of(bm)[:-2])
    except ValueError:
        raise ShapeError(f'solve: batch dimensions of shapes {sa} (a) and {sb} (b) cannot be '
                         'broadcast together') from None
    dt = np.result_type(ops.dtype_of(a), ops.dtype_of(bm))
    a = ops.broadcast_to(ops.astype(a, dt), batch + sa[-2:])
    bm = ops.broadcast_to(ops.astype(bm, dt), batch + ops.shape_of(bm)[-2:])
    x = bind(solve_p, a, bm)
    return ops.reshape(x, batch + (n,)) if vector else x


def det(a):
    """The determinant of each square matrix in `a`."""
    return bind(det_p, _square('det', a))


def slogdet(a):
    """(sign, log|det|) of each square matrix in `a` (sign complex for complex `a`)."""
    return bind(slogdet_p, _square('slogdet', a))
