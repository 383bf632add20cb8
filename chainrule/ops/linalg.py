"""Linear-algebra primitives: `einsum`, `inv`, `solve`, `triangular_solve`, `det`, `slogdet`,
`cholesky`, `eigh`, `eig`, `svd` and `qr`, each batched over leading dimensions as NumPy's
`np.linalg` is.

What this module lets you do: differentiate through matrix decompositions and solves, to any
order, in reverse and forward mode. `chainrule.numpy.linalg` builds NumPy's API on these
(`norm`, `pinv`, `matrix_power`, ... are composites there).

Every rule below is written with chainrule's own ops, so derivatives of derivatives work. The
JVP (forward) formula of each decomposition is the standard one (Giles 2008, "An extended
collection of matrix derivative results"; Murray 2016 for Cholesky; Townsend 2016 for the SVD;
the eigendecomposition and QR formulas as in JAX). Each VJP is derived as the transpose of its
JVP, one linear step at a time, under chainrule's complex convention: the pairing of a
cotangent `g` with a tangent `t` is `Re(sum(g * t))` with no conjugation, so the transpose of
`t -> A @ t @ B` is `g -> A.T @ g @ B.T` (plain transposes), of `t -> t.conj().T` is
`g -> g.conj().T`, and of the real part is the embedding back into the complex numbers. For a
real input, a complex cotangent keeps its real part.

Notation in the comments: `^T` transpose of the last two axes, `^H` conjugate transpose,
`F_ij = 1 / (w_j - w_i)` for i != j (0 on the diagonal and where eigenvalues coincide),
`o` the elementwise product.

Symmetric/Hermitian inputs. `eigh` reads one triangle (`UPLO`), and its derivative is that of
what it computes: the eigendecomposition of `S = tril(a) + tril(a, -1)^H` (or the `triu` form),
so the cotangent lives on that triangle (HIPS autograd's convention; it agrees with finite
differences on any input). `cholesky` reads the lower triangle but its derivative treats the
input as Hermitian, as JAX and PyTorch do: tangents are symmetrised `(t + t^H) / 2` and
cotangents come back Hermitian. Check it on `(a + a^H) / 2`.
"""

import functools
import math
import string

import numpy as np

from chainrule import ops
from chainrule.core import (ConcretizationError, GradientError, PerArg, Primitive, ShapeError,
                            Tracer, bind, concrete)

__all__ = ['einsum', 'inv', 'solve', 'det', 'slogdet', 'cholesky', 'eigh', 'eig', 'svd', 'qr',
           'triangular_solve']


# --- helpers (all differentiable: they are compositions of primitives) ------------------------

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


# --- cholesky ---------------------------------------------------------------------------------

def _phi(x):
    """The lower triangle with the diagonal halved (Murray 2016's Phi)."""
    n = ops.shape_of(x)[-1]
    return _masked(x, np.tri(n, n, -1) + 0.5 * np.eye(n))


def _cholesky_jvp(t, L, a):
    # A = L L^H: dL = L Phi(L^-1 dA L^-H), with dA symmetrised
    t = _hermitian_part(t)
    y = triangular_solve(L, t, lower=True)              # L^-1 dA
    z = _H(triangular_solve(L, _H(y), lower=True))      # L^-1 dA L^-H
    return _mm(L, _phi(z))


def _cholesky_vjp(g, L, a):
    # the transpose of the JVP: A_bar = L^-T Phi(L^T g) conj(L)^-1, then its Hermitian part
    p = _phi(_mm(_mT(L), g))
    s1 = triangular_solve(_mT(L), p, lower=False)           # L^-T Phi(L^T g)
    s = _mT(triangular_solve(_H(L), _mT(s1), lower=False))  # ... conj(L)^-1
    return _hermitian_part(s)


cholesky_p = Primitive('cholesky', lambda a: _lapack('cholesky', np.linalg.cholesky, a),
                       vjp=[_cholesky_vjp], jvp=[_cholesky_jvp],
                       batch=_batch_leading(lambda: cholesky_p))


# --- eigh -------------------------------------------------------------------------------------

def _from_triangle(t, UPLO):
    """The Hermitian matrix an `UPLO` routine reads from `t`: `tril(t) + tril(t, -1)^H` for 'L'
    (the imaginary part of the diagonal is ignored, as LAPACK does)."""
    lower = t if UPLO == 'L' else _mT(t)
    s = ops.add(_tril(lower), _H(_tril(lower, -1)))
    return _hermitian_part(s if UPLO == 'L' else _mT(s))


def _to_triangle(h, UPLO):
    """The transpose of `_from_triangle` applied to a Hermitian `h`: the strict triangle read
    gets both off-diagonal halves (`2 h`), the diagonal `h`, the other triangle 0."""
    n = ops.shape_of(h)[-1]
    mask = 2 * np.tri(n, n, -1) + np.eye(n)
    return _masked(h, mask if UPLO == 'L' else mask.T)


def _eigh_jvp(t, ans, a, *, UPLO):
    # A V = V diag(w), V unitary: with X = V^H dS V, dw = Re diag(X), dV = V (F o X), where dS
    # is the tangent of the Hermitian matrix read from the UPLO triangle
    w, v = ans
    x = _mm(_mm(_H(v), _from_triangle(t, UPLO)), v)
    dw = _diag(x)
    dw = ops.real(dw) if _is_complex(dw) else dw
    return dw, _mm(v, ops.mul(_recip_diff(w), x))


def _eigh_vjp(g, ans, a, *, UPLO):
    # transpose of the JVP: S_bar = Hermitian part of conj(V) (diag(g_w) + F o (V^T g_V)) V^T,
    # then back onto the triangle that was read
    gw, gv = g
    w, v = ans
    inner = ops.add(_diag_embed(gw), ops.mul(_recip_diff(w), _mm(_mT(v), gv)))
    s_bar = _hermitian_part(_mm(_mm(_conj(v), inner), _mT(v)))
    return _like_input(_to_triangle(s_bar, UPLO), a)


eigh_p = Primitive('eigh', lambda a, *, UPLO: tuple(_lapack('eigh', np.linalg.eigh, a, UPLO)),
                   multiple_results=True, vjp=[_eigh_vjp], jvp=[_eigh_jvp],
                   batch=_batch_leading(lambda: eigh_p))


# --- eig --------------------------------------------------------------------------------------

def _eig_impl(a):
    w, v = _lapack('eig', np.linalg.eig, a)
    # NumPy returns real arrays when every eigenvalue happens to be real; chainrule always
    # returns complex ones (as JAX does), so the output dtype does not depend on the values
    ct = np.result_type(a.dtype, np.complex64)
    return w.astype(ct, copy=False), v.astype(ct, copy=False)


def _eig_jvp(t, ans, a):
    # A V = V diag(w): with X = V^-1 dA V, dw = diag(X) and dV = V (F o X) + V diag(c), where
    # c keeps each column at unit norm (NumPy's normalisation): c_j = -Re(v_j^H (V (F o X))_j)
    w, v = ans
    t = ops.astype(t, ops.dtype_of(v))
    x = _mm(solve(v, t), v)
    du = _mm(v, ops.mul(_recip_diff(w), x))
    norm_fix = ops.real(ops.sum(ops.mul(ops.conj(v), du), axis=-2))
    return _diag(x), ops.sub(du, ops.mul(v, _row(norm_fix)))


def _eig_vjp(g, ans, a):
    # transpose of the JVP, step by step:
    #   normalisation: g_u = g_V - conj(V) o Re(colsum(g_V o V))
    #   X -> (diag X, V (F o X)):  g_X = diag(g_w) + F o (V^T g_u)
    #   dA -> V^-1 dA V:           A_bar = V^-T g_X V^T
    gw, gv = g
    w, v = ans
    gu = ops.sub(gv, ops.mul(ops.conj(v), _row(ops.real(ops.sum(ops.mul(gv, v), axis=-2)))))
    gx = ops.add(_diag_embed(gw), ops.mul(_recip_diff(w), _mm(_mT(v), gu)))
    return _like_input(solve(_mT(v), _mm(gx, _mT(v))), a)


eig_p = Primitive('eig', _eig_impl, multiple_results=True, vjp=[_eig_vjp], jvp=[_eig_jvp],
                  batch=_batch_leading(lambda: eig_p))


# --- svd --------------------------------------------------------------------------------------

def _svd_check(a, full_matrices):
    m, n = ops.shape_of(a)[-2:]
    if full_matrices and m != n:
        raise GradientError(
            f'svd: derivatives of the full_matrices=True decomposition of a non-square matrix '
            f'(shape {ops.shape_of(a)}) are not defined (the extra columns of U or rows of Vh '
            'are not unique) unless only s and the first min(m, n) columns of U / rows of Vh '
            'are used; pass full_matrices=False')
    return m, n


def _zero_beyond(g, k, axis):
    """Whether cotangent `g` is zero past index k along `axis` (-1: columns, -2: rows), as for
    the extra singular vectors of a full_matrices=True SVD used only for s (needs concrete
    values; under `jit` it answers False)."""
    try:
        c = np.asarray(concrete(g))
    except ConcretizationError:
        return False
    return not np.any(c[..., k:] if axis == -1 else c[..., k:, :])


def _svd_jvp(t, ans, a, *, full_matrices):
    # A = U diag(s) V^H. With P = U^H dA V: ds = Re diag(P);
    # dU = U (F o (P S + S P^H) + i Im diag(P) / s), dV = V (F o (S P + P^H S)), F_ij =
    # 1 / (s_j^2 - s_i^2); plus, for non-square A, the part of dA outside the column spaces.
    m, n = _svd_check(a, full_matrices)
    u, s, vh = ans
    v = _H(vh)
    t = ops.astype(t, ops.dtype_of(u)) if _is_complex(u) else t
    p = _mm(_mm(_H(u), t), v)
    dp = _diag(p)
    ds = ops.real(dp) if _is_complex(dp) else dp
    f = _recip_diff(ops.mul(s, s))
    s_row, s_col = _row(s), _col(s)
    pss = ops.mul(p, s_row)
    sps = ops.mul(s_col, p)
    inner_u = ops.mul(f, ops.add(pss, _H(pss)))
    if _is_complex(p):
        im = ops.mul(ops.astype(ops.imag(dp), ops.dtype_of(p)), 1j)
        inner_u = ops.add(inner_u, _diag_embed(ops.mul(im, _safe_recip(s))))
    du = _mm(u, inner_u)
    dv = _mm(v, ops.mul(f, ops.add(sps, _H(sps))))
    if m > n:
        dav = _mm(t, v)
        du = ops.add(du, ops.div(ops.sub(dav, _mm(u, _mm(_H(u), dav))), s_row))
    if n > m:
        dahu = _mm(_H(t), u)
        dv = ops.add(dv, ops.div(ops.sub(dahu, _mm(v, _mm(vh, dahu))), s_row))
    return du, ds, _H(dv)


def _svd_vjp(g, ans, a, *, full_matrices):
    # transpose of the JVP above, step by step (j_U = U^T g_U, j_V = V^T g_V, g_V = g_Vh^H):
    #   g_P = (F o j_U + (F o j_U)^H) S + S (F o j_V + (F o j_V)^H) + diag(g_s)
    #         [+ (D - D^H) / 2 with D = diag(diag(j_U) / s), complex only]
    #   A_bar = conj(U) g_P V^T
    #           + (g_U - conj(U) j_U) S^-1 V^T                  (m > n)
    #           + conj(U) S^-1 (g_Vh - g_Vh conj(V) V^T)        (n > m)
    gu, gs, gvh = g
    u, s, vh = ans
    m, n = ops.shape_of(a)[-2:]
    if full_matrices and m != n and _zero_beyond(gu, min(m, n), -1) and \
            _zero_beyond(gvh, min(m, n), -2):
        # only s and the first k columns of U / rows of Vh are used: the reduced rule applies
        k = min(m, n)
        u, gu = ops.getitem(u, (Ellipsis, slice(0, k))), ops.getitem(gu, (Ellipsis, slice(0, k)))
        vh, gvh = (ops.getitem(x, (Ellipsis, slice(0, k), slice(None))) for x in (vh, gvh))
        full_matrices = False
    _svd_check(a, full_matrices)
    v = _H(vh)
    f = _recip_diff(ops.mul(s, s))
    s_row, s_col = _row(s), _col(s)
    ju = _mm(_mT(u), gu)
    jv = _mm(_mT(v), _H(gvh))
    fu = ops.mul(f, ju)
    fv = ops.mul(f, jv)
    gp = ops.add(ops.add(ops.mul(ops.add(fu, _H(fu)), s_row), ops.mul(s_col, ops.add(fv, _H(fv)))),
                 _diag_embed(gs))
    if _is_complex(ju):
        d = _diag_embed(ops.mul(_diag(ju), _safe_recip(s)))
        gp = ops.add(gp, ops.mul(ops.sub(d, _H(d)), 0.5))
    out = _mm(_mm(_conj(u), gp), _mT(v))
    if m > n:
        out = ops.add(out, _mm(ops.div(ops.sub(gu, _mm(_conj(u), ju)), s_row), _mT(v)))
    if n > m:
        proj = ops.sub(gvh, _mm(_mm(gvh, _conj(v)), _mT(v)))
        out = ops.add(out, _mm(ops.div(_conj(u), s_row), proj))
    return _like_input(out, a)


svd_p = Primitive(
    'svd', lambda a, *, full_matrices: tuple(
        _lapack('svd', np.linalg.svd, a, full_matrices=full_matrices, compute_uv=True)),
    multiple_results=True, vjp=[_svd_vjp], jvp=[_svd_jvp], batch=_batch_leading(lambda: svd_p))


# --- qr ---------------------------------------------------------------------------------------

def _qr_check(a, full_matrices):
    m, n = ops.shape_of(a)[-2:]
    if m < n or (full_matrices and m != n):
        raise GradientError(
            f'qr: the derivative of this primitive needs m >= n and the reduced decomposition '
            f'(shape {ops.shape_of(a)}, mode {"complete" if full_matrices else "reduced"}); '
            'chainrule.numpy.linalg.qr handles m < n by splitting the matrix; with m > n, '
            "mode='complete' is differentiable only while the extra columns of Q are unused")


def _right_solve(x, r):
    """x R^-1 for upper triangular R, as (R^-T x^T)^T."""
    return _mT(triangular_solve(_mT(r), _mT(x), lower=True))


def _qr_jvp(t, ans, a, *, full_matrices):
    # A = Q R (m >= n). With Y = dA R^-1 and X = Q^H Y, the skew part of Q^H dQ is
    # O = tril(X, -1) - tril(X, -1)^H (+ i Im diag X when complex), and
    # dQ = Q (O - X) + Y, dR = (X - O) R. (Townsend, "Differentiating the QR decomposition".)
    _qr_check(a, full_matrices)
    q, r = ans
    y = _right_solve(ops.astype(t, ops.dtype_of(q)) if _is_complex(q) else t, r)
    x = _mm(_H(q), y)
    low = _tril(x, -1)
    o = ops.sub(low, _H(low))
    if _is_complex(x):
        o = ops.add(o, _diag_embed(ops.mul(ops.astype(ops.imag(_diag(x)), ops.dtype_of(x)), 1j)))
    return ops.add(_mm(q, ops.sub(o, x)), y), _mm(ops.sub(x, o), r)


def _qr_vjp(g, ans, a, *, full_matrices):
    # transpose of the JVP: g_O = Q^T g_Q - g_R R^T;
    # g_X = g_R R^T - Q^T g_Q + tril(g_O - g_O^H, -1) [+ i Im diag(g_O)];
    # g_Y = g_Q + conj(Q) g_X; A_bar = g_Y R^-T
    gq, gr = g
    q, r = ans
    m, n = ops.shape_of(a)[-2:]
    if full_matrices and m > n and _zero_beyond(gq, n, -1):
        # mode='complete' used only through the first n columns of Q (the rows of R below n
        # are constant zeros): the reduced rule applies
        q, gq = (ops.getitem(x, (Ellipsis, slice(0, n))) for x in (q, gq))
        r, gr = (ops.getitem(x, (Ellipsis, slice(0, n), slice(None))) for x in (r, gr))
        full_matrices = False
    _qr_check(a, full_matrices)
    qg = _mm(_mT(q), gq)
    grr = _mm(gr, _mT(r))
    go = ops.sub(qg, grr)
    gx = ops.add(ops.sub(grr, qg), _tril(ops.sub(go, _H(go)), -1))
    if _is_complex(go):
        gx = ops.add(gx, _diag_embed(ops.mul(ops.astype(ops.imag(_diag(go)), ops.dtype_of(go)),
                                             1j)))
    gy = ops.add(gq, _mm(_conj(q), gx))
    return _like_input(_mT(triangular_solve(r, _mT(gy), lower=False)), a)


qr_p = Primitive(
    'qr', lambda a, *, full_matrices: tuple(
        _lapack('qr', np.linalg.qr, a, mode='complete' if full_matrices else 'reduced')),
    multiple_results=True, vjp=[_qr_vjp], jvp=[_qr_jvp], batch=_batch_leading(lambda: qr_p))


# --- einsum -----------------------------------------------------------------------------------
# One primitive for every contraction. Its parameter `spec` is canonical: explicit output, no
# ellipsis, operands of exactly the sizes the letters say (the wrapper broadcasts size-1 axes).
# Einsum is linear in each operand, so the JVP in operand i is the same einsum with the tangent
# in slot i, and the VJP is the einsum of g with the other operands, producing operand i's
# letters. Two cases need care in the VJP: a letter only in operand i was summed away, so its
# cotangent is broadcast (an extra `ones(n)` operand carrying that letter); a letter repeated
# within operand i ('ii->i') selects a diagonal, so its cotangent lives on that diagonal (each
# repeat gets a fresh letter tied to the first by an `eye(n)` operand).

EINSUM_SMALL = 2000   # total operand size up to which NumPy's plain C loop is used


def _einsum_impl(*operands, spec):
    big = len(operands) > 2 or sum(getattr(o, 'size', 1) for o in operands) > EINSUM_SMALL
    if not big:
        return np.einsum(spec, *operands)     # tiny: NumPy's direct C loop is fastest
    if len(operands) == 2:
        out = _einsum_as_matmul(spec, *operands)
        if out is not None:
            return out
    # optimize=True finds a contraction order and uses BLAS (tensordot)
    return np.einsum(spec, *operands, optimize=True)


@functools.lru_cache(maxsize=512)
def _matmul_plan(spec):
    """How to run a two-operand contraction as one batched matmul, or None (a repeated letter
    within an operand). Letters are batch (both operands and the output), contracted (both
    operands only), or free (one operand and the output); a letter in one operand only is
    summed out first."""
    lhs, out = spec.split('->')
    a, b = lhs.split(',')
    if len(set(a)) != len(a) or len(set(b)) != len(b) or len(set(out)) != len(out):
        return None
    batch = [c for c in out if c in a and c in b]
    contr = [c for c in a if c in b and c not in out]
    left = [c for c in a if c not in b and c in out]
    right = [c for c in b if c not in a and c in out]
    sum_a = tuple(i for i, c in enumerate(a) if c not in b and c not in out)
    sum_b = tuple(i for i, c in enumerate(b) if c not in a and c not in out)
    a_kept = [c for c in a if c in b or c in out]
    b_kept = [c for c in b if c in a or c in out]
    perm_a = tuple(a_kept.index(c) for c in batch + left + contr)
    perm_b = tuple(b_kept.index(c) for c in batch + contr + right)
    res = batch + left + right
    perm_out = tuple(res.index(c) for c in out)
    return sum_a, sum_b, perm_a, perm_b, perm_out, len(batch), len(left), len(contr)


def _einsum_as_matmul(spec, a, b):
    plan = _matmul_plan(spec)
    if plan is None:
        return None
    sum_a, sum_b, perm_a, perm_b, perm_out, nb, nl, nc = plan
    a, b = np.asarray(a), np.asarray(b)
    if sum_a:
        a = a.sum(axis=sum_a)
    if sum_b:
        b = b.sum(axis=sum_b)
    a = a.transpose(perm_a)
    b = b.transpose(perm_b)
    bs, ls, cs = a.shape[:nb], a.shape[nb:nb + nl], a.shape[nb + nl:]
    rs = b.shape[nb + nc:]
    if b.shape[:nb + nc] != bs + cs:
        return None          # a size-1 axis broadcast against a letter: leave it to NumPy
    # a: (batch, L, K) @ b: (batch, K, R), each group of letters merged into one axis
    k = math.prod(cs)
    m = a.reshape(bs + (math.prod(ls), k))
    n = b.reshape(bs + (k, math.prod(rs)))
    res = np.matmul(m, n).reshape(bs + ls + rs)
    return res.transpose(perm_out) if perm_out != tuple(range(len(perm_out))) else res


def _einsum_vjp(i, g, ans, *operands, spec):
    lhs, out = spec.split('->')
    subs = lhs.split(',')
    target = subs[i]
    others = [j for j in range(len(subs)) if j != i]
    present = set(out).union(*[subs[j] for j in others])
    fresh = iter(c for c in string.ascii_letters if c not in spec)
    shape = ops.shape_of(operands[i])
    rdt = _real_dtype(g)
    new_target, extra_subs, extra_ops, seen = [], [], [], set()
    for c, n in zip(target, shape):
        if c in seen:
            f = next(fresh)
            new_target.append(f)
            extra_subs.append(c + f)
            extra_ops.append(np.eye(n, dtype=rdt))
            continue
        seen.add(c)
        new_target.append(c)
        if c not in present and target.count(c) == 1:
            extra_subs.append(c)
            extra_ops.append(np.ones(n, dtype=rdt))
    vjp_spec = ','.join([out] + [subs[j] for j in others] + extra_subs) + '->' + \
        ''.join(new_target)
    return bind(einsum_p, g, *[operands[j] for j in others], *extra_ops, spec=vjp_spec)


def _einsum_jvp(i, t, ans, *operands, spec):
    args = list(operands)
    args[i] = t
    return bind(einsum_p, *args, spec=spec)


def _einsum_batch(args, dims, *, spec):
    # a batched operand gets a fresh letter for its leading batch axis; so does the output
    b = next(c for c in string.ascii_letters if c not in spec)
    lhs, out = spec.split('->')
    subs = [b + s if d is not None else s for s, d in zip(lhs.split(','), dims)]
    return bind(einsum_p, *args, spec=','.join(subs) + '->' + b + out), 0


einsum_p = Primitive('einsum', _einsum_impl, vjp=PerArg(_einsum_vjp), jvp=PerArg(_einsum_jvp),
                     batch=_einsum_batch)


def _einsum_error(subscripts, shapes, why):
    return ShapeError(f'einsum: subscripts {subscripts!r} do not fit operand shapes '
                      f'{list(shapes)}: {why}')


@functools.lru_cache(maxsize=512)
def einsum_spec(subscripts, shapes):
    """Parse `subscripts` for operands of `shapes` (a tuple of shape tuples) into a canonical
    spec. Cached: a training loop parses each contraction once.

    Returns:
        (spec, sizes): `spec` with an explicit output, ellipses replaced by letters; `sizes`
        maps each letter to its size (after broadcasting size-1 axes).
    """
    s = subscripts.replace(' ', '')
    lhs, arrow, out = s.partition('->')
    subs = lhs.split(',')
    if len(subs) != len(shapes):
        raise _einsum_error(subscripts, shapes, f'{len(subs)} operand subscripts for '
                            f'{len(shapes)} operands')
    for part in subs + [out]:
        bad = set(part.replace('...', '')) - set(string.ascii_letters)
        if bad or part.count('...') > 1 or part.replace('...', '').count('.'):
            raise _einsum_error(subscripts, shapes, f'invalid subscript {part!r} (use letters '
                                'and at most one ellipsis)')
    free = [c for c in string.ascii_letters if c not in s]
    n_ell = 0
    for sub, shp in zip(subs, shapes):
        named = len(sub.replace('...', ''))
        if '...' in sub:
            if named > len(shp):
                raise _einsum_error(subscripts, shapes, f'{sub!r} names {named} axes of an '
                                    f'operand with {len(shp)}')
            n_ell = max(n_ell, len(shp) - named)
        elif named != len(shp):
            raise _einsum_error(subscripts, shapes, f'{sub!r} names {named} axes of an operand '
                                f'with {len(shp)}')
    ell = ''.join(free[:n_ell])
    canon = []
    for sub, shp in zip(subs, shapes):
        k = len(shp) - len(sub.replace('...', ''))
        canon.append(sub.replace('...', ell[n_ell - k:] if k else ''))
    if arrow:
        if '...' in out:
            out = out.replace('...', ell)
        elif n_ell:
            raise _einsum_error(subscripts, shapes, "the output needs '...' for the broadcast "
                                'axes')
        if len(set(out)) != len(out):
            raise _einsum_error(subscripts, shapes, f'output {out!r} repeats a letter')
        missing = set(out) - set(''.join(canon))
        if missing:
            raise _einsum_error(subscripts, shapes, f'output letters {sorted(missing)} appear in '
                                'no operand')
    else:
        # implicit output: the broadcast axes, then the letters used once, alphabetically
        letters = lhs.replace('...', '').replace(',', '')
        out = ell + ''.join(sorted(c for c in set(letters) if letters.count(c) == 1))
    sizes = {}
    for sub, shp in zip(canon, shapes):
        for c, d in zip(sub, shp):
            d = int(d)
            old = sizes.get(c)
            if old is None or old == 1:
                sizes[c] = d
            elif d != 1 and d != old:
                raise _einsum_error(subscripts, shapes, f'letter {c!r} has sizes {old} and {d}')
    return ','.join(canon) + '->' + out, sizes


def einsum(subscripts, *operands):
    """`np.einsum(subscripts, *operands)`: explicit or implicit output, ellipsis broadcasting,
    repeated letters (diagonals, traces), any number of operands; differentiable to any order.

    Args:
        subscripts: NumPy's subscript string, e.g. 'ij,jk->ik', '...ii->...i', 'ii'.
        *operands: arrays, numbers or tracers.

    Returns:
        The contraction, as NumPy computes it.
    """
    shapes = tuple(ops.shape_of(o) for o in operands)
    spec, sizes = einsum_spec(subscripts, shapes)
    if not any(isinstance(o, Tracer) for o in operands):
        return _einsum_impl(*operands, spec=spec)
    subs = spec.split('->')[0].split(',')
    dt = np.result_type(*[ops.dtype_of(o) for o in operands])
    if dt.kind not in 'fc':
        dt = np.result_type(dt, np.float64) if dt.kind != 'b' else np.dtype(np.float64)
    args = []
    for o, sub, shp in zip(operands, subs, shapes):
        if isinstance(o, Tracer):
            o = ops.astype(o, dt)
        else:
            o = np.asarray(o, dt)
        full = tuple(sizes[c] for c in sub)
        if full != shp:
            o = ops.broadcast_to(o, full) if isinstance(o, Tracer) else np.broadcast_to(o, full)
        args.append(o)
    return bind(einsum_p, *args, spec=spec)


# --- wrappers: shape checks, batching of solve, integer inputs ---------------------------------

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


def cholesky(a):
    """The lower Cholesky factor L (a = L L^H) of each Hermitian positive-definite matrix."""
    return bind(cholesky_p, _square('cholesky', a))


def eigh(a, UPLO='L'):
    """(w, v): ascending eigenvalues and orthonormal eigenvectors of Hermitian matrices."""
    if UPLO not in ('L', 'U'):
        raise ValueError(f"eigh: UPLO must be 'L' or 'U', got {UPLO!r}")
    return bind(eigh_p, _square('eigh', a), UPLO=UPLO)


def eig(a):
    """(w, v): eigenvalues and unit-norm right eigenvectors (always complex)."""
    return bind(eig_p, _square('eig', a))


def svd(a, full_matrices=True):
    """(U, s, Vh) with a = U diag(s) Vh."""
    return bind(svd_p, _matrix('svd', a), full_matrices=bool(full_matrices))


def qr(a, full_matrices=False):
    """(Q, R) with a = Q R. Differentiable for m >= n (reduced); `chainrule.numpy.linalg.qr`
    also handles m < n."""
    return bind(qr_p, _matrix('qr', a), full_matrices=bool(full_matrices))
