"""Matrix decompositions: the primitives `cholesky`, `eigh`, `eig`, `svd` and `qr`, each with
its JVP and VJP formulas and its wrapper. The formulas' sources, the complex convention the
VJPs are transposed under, and how `eigh`/`cholesky` treat symmetric inputs are in
`chainrule.ops.linalg`'s docstring.
"""

import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, GradientError, Primitive, bind, concrete
from chainrule.ops.linalg_common import (_H, _batch_leading, _col, _conj, _diag, _diag_embed,
                                         _hermitian_part, _is_complex, _lapack, _like_input,
                                         _masked, _matrix, _mm, _mT, _recip_diff, _row,
                                         _safe_recip, _square, _tril)
from chainrule.ops.linalg_solve import solve, triangular_solve


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
