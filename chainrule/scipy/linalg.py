"""`scipy.linalg` on chainrule: triangular, Cholesky, LU, banded and Sylvester solves, the matrix
exponential, logarithm and square root, `eigh` and `block_diag`, with SciPy's names, argument
order and defaults, differentiable to any order in reverse and forward mode.

What this module lets you do: write `import chainrule.scipy.linalg as sla` where you had
`import scipy.linalg as sla`, and differentiate the code (`grad`, `jacfwd`, `vmap`, `jit`).

How it is built. Solves reuse the primitives of `chainrule.ops.linalg` (`triangular_solve`,
`cholesky`, `eigh`) as composites; new primitives are declared only where SciPy computes
something those cannot express:

- `expm`, `logm`, `sqrtm`: one primitive each. Their derivative is the Frechet derivative
  `L_f(A, E)`, which for any primary matrix function is the upper-right block of
  `f([[A, E], [0, A]])` (Higham, "Functions of Matrices", thm. 3.6) -- so the JVP binds the
  same primitive on a 2n x 2n matrix, and derivatives of derivatives follow by composition.
  The VJP is `L_f(A^T, G)` (the adjoint of the Frechet derivative of a primary function, under
  chainrule's unconjugated pairing).
- `lu`: the packed factor of `lu_factor`; with `A[perm] = L U` and `X = L^-1 dA[perm] U^-1`,
  `dL = L tril(X, -1)` and `dU = triu(X) U` (the packed tangent is their sum).
- `solve_sylvester`: `A X + X B = Q`, so `dX = sylv(A, B, dQ - dA X - X dB)` and the
  cotangents are `Q_bar = sylv(A^T, B^T, G)`, `A_bar = -Q_bar X^T`, `B_bar = -X^T Q_bar`.
- `solve_banded`: as `solve`, with `A_bar = -b_bar x^T` read back onto the band.

Functions that read one triangle (`cho_factor`, `eigh`) are differentiated as what they compute,
the Hermitian matrix built from that triangle, so gradients agree with finite differences on any
input. `expm` runs in NumPy (Higham's scaling and squaring with a [13/13] Pade approximant);
`logm`, `sqrtm`, `lu_factor`, `solve_sylvester` and `solve_banded` call SciPy (the optional
`scipy` extra), imported when first used.
"""

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, Tracer, bind
from chainrule.ops import linalg as _la
from chainrule.ops.linalg import _H, _mT, _mm, _tril, _like_input, _from_triangle

__all__ = ['solve_triangular', 'cho_factor', 'cho_solve', 'lu_factor', 'lu_solve', 'expm',
           'expm_frechet', 'sqrtm', 'logm', 'solve_sylvester', 'solve_banded', 'eigh',
           'block_diag']


def _scipy_linalg(name):
    try:
        import scipy.linalg
    except ImportError:
        raise ImportError(f'chainrule.scipy.linalg.{name} calls SciPy, which is not installed: '
                          'pip install "chainrule[scipy]"') from None
    return scipy.linalg


def _per_matrix(fn, *arrays):
    """`fn` applied to each matrix of stacks `arrays` (..., n, m) with one batch shape."""
    arrays = [np.asarray(a) for a in arrays]
    batch = arrays[0].shape[:-2]
    if not batch:
        return fn(*arrays)
    outs = [fn(*[a[i] for a in arrays]) for i in np.ndindex(batch)]
    return np.stack(outs).reshape(batch + outs[0].shape)


def _batch_leading(get_prim):
    """The vmap rule of a primitive that maps over leading axes: an unbatched argument is
    broadcast to the batch, then the primitive runs on the stack."""
    def rule(args, dims, **params):
        size = next(ops.shape_of(a)[0] for a, d in zip(args, dims) if d is not None)
        args = [a if d is not None else ops.broadcast_to(a, (size,) + tuple(ops.shape_of(a)))
                for a, d in zip(args, dims)]
        return bind(get_prim(), *args, **params), 0
    return rule


def _square(name, a, what='a'):
    a = _la._as_float(a)
    s = ops.shape_of(a)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f'{name}: {what} must be a square matrix or a stack of them (shape '
                         f'(..., n, n)), got shape {s}')
    return a


def _eye_like(a):
    n = ops.shape_of(a)[-1]
    return np.eye(n, dtype=_la._real_dtype(a))


# --- matrix functions: expm, logm, sqrtm ------------------------------------------------------

# Higham 2005, "The scaling and squaring method for the matrix exponential revisited": the
# [13/13] Pade coefficients and the largest 1-norm for which it is accurate to double precision
_PADE13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
           129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920.,
           40840800., 960960., 16380., 182., 1.)
_THETA13 = 5.371920351148152


def _expm_one(a):
    n1 = np.abs(a).sum(axis=0).max() if a.size else 0.0
    s = max(0, int(np.ceil(np.log2(n1 / _THETA13)))) if n1 > 0 else 0
    a = a / 2.0 ** s
    b = _PADE13
    eye = np.eye(a.shape[0], dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4 + b[3] * a2
             + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 + \
        b[0] * eye
    r = np.linalg.solve(v - u, v + u)
    for _ in range(s):
        r = r @ r
    return r


def _frechet_by_block(get_prim, a, e):
    """L_f(a, e): the upper-right block of f([[a, e], [0, a]]) for the primary matrix function
    of primitive `get_prim()`."""
    n = ops.shape_of(a)[-1]
    dt = np.result_type(ops.dtype_of(a), ops.dtype_of(e))
    a, e = ops.astype(a, dt), ops.astype(e, dt)
    zero = np.zeros(ops.shape_of(a), dt)
    big = ops.concatenate([ops.concatenate([a, e], axis=-1),
                           ops.concatenate([zero, a], axis=-1)], axis=-2)
    return ops.getitem(bind(get_prim(), big), (Ellipsis, slice(0, n), slice(n, 2 * n)))


def _matrix_function(name, impl):
    """A primary matrix function as a primitive, with its Frechet derivative as JVP and the
    adjoint of the Frechet derivative as VJP (see the module docstring)."""
    prim = Primitive(
        name, impl,
        vjp=[lambda g, ans, a: _like_input(_frechet_by_block(lambda: prim, _mT(a), g), a)],
        jvp=[lambda t, ans, a: _frechet_by_block(lambda: prim, a, t)],
        batch=_batch_leading(lambda: prim))
    return prim


def _logm_impl(a):
    return _per_matrix(_scipy_linalg('logm').logm, a)


def _sqrtm_impl(a):
    return _per_matrix(_scipy_linalg('sqrtm').sqrtm, a)


expm_p = _matrix_function('expm', lambda a: _per_matrix(_expm_one, a))
logm_p = _matrix_function('logm', _logm_impl)
sqrtm_p = _matrix_function('sqrtm', _sqrtm_impl)


def expm(A):
    """The matrix exponential of each square matrix in `A` (..., n, n)."""
    return bind(expm_p, _square('expm', A, 'A'))


def expm_frechet(A, E, method=None, compute_expm=True, check_finite=True):
    """The Frechet derivative of `expm` at `A` in direction `E`, as SciPy's `expm_frechet`.

    Computed as the upper-right block of `expm([[A, E], [0, A]])` (its upper-left block is
    `expm(A)`), so it is differentiable in both `A` and `E`. `method` and `check_finite` are
    accepted for SciPy compatibility.

    Returns:
        `(expm(A), L)` when `compute_expm`, else `L`.
    """
    A = _square('expm_frechet', A, 'A')
    E = _square('expm_frechet', E, 'E')
    if ops.shape_of(A) != ops.shape_of(E):
        raise ShapeError(f'expm_frechet: A and E must have one shape, got {ops.shape_of(A)} and '
                         f'{ops.shape_of(E)}')
    if method not in (None, 'SPS', 'blockEnlarge'):
        raise ValueError(f"expm_frechet: unknown method {method!r} (use 'SPS' or 'blockEnlarge')")
    n = ops.shape_of(A)[-1]
    dt = np.result_type(ops.dtype_of(A), ops.dtype_of(E))
    A, E = ops.astype(A, dt), ops.astype(E, dt)
    zero = np.zeros(ops.shape_of(A), dt)
    big = bind(expm_p, ops.concatenate([ops.concatenate([A, E], axis=-1),
                                        ops.concatenate([zero, A], axis=-1)], axis=-2))
    L = ops.getitem(big, (Ellipsis, slice(0, n), slice(n, 2 * n)))
    if not compute_expm:
        return L
    return ops.getitem(big, (Ellipsis, slice(0, n), slice(0, n))), L


def logm(A, disp=True):
    """The principal matrix logarithm of each square matrix in `A` (SciPy's `logm`; complex
    where the logarithm of a real matrix is not real). `disp` is accepted for compatibility."""
    return bind(logm_p, _square('logm', A, 'A'))


def sqrtm(A, disp=True, blocksize=64):
    """The principal matrix square root of each square matrix in `A` (SciPy's `sqrtm`).
    `disp` and `blocksize` are accepted for compatibility."""
    return bind(sqrtm_p, _square('sqrtm', A, 'A'))


# --- triangular and Cholesky solves -----------------------------------------------------------

def _as_columns(name, a, b):
    """b as (..., n, k), and whether it was a vector (n,)."""
    b = _la._as_float(b)
    n = ops.shape_of(a)[-1]
    sb = ops.shape_of(b)
    if len(sb) == 1 and sb[0] == n:
        return ops.reshape(b, (n, 1)), True
    if len(sb) < 2 or sb[-2] != n:
        raise ShapeError(f'{name}: shapes {ops.shape_of(a)} (a) and {sb} (b) do not fit: b must '
                         f'be ({n},) or (..., {n}, k)')
    return b, False


def _trans_code(name, trans):
    codes = {0: 0, 1: 1, 2: 2, 'N': 0, 'T': 1, 'C': 2}
    if trans not in codes:
        raise ValueError(f"{name}: trans must be 0, 1, 2 or 'N', 'T', 'C', got {trans!r}")
    return codes[trans]


def _tri_solve(a, b, lower, trans):
    """op(a) x = b for the triangle `lower` of a, op = identity, transpose or conjugate
    transpose (trans 0, 1, 2); b (..., n, k)."""
    if trans == 0:
        return _la.triangular_solve(a, b, lower=lower)
    at = _mT(a) if trans == 1 else _H(a)
    return _la.triangular_solve(at, b, lower=not lower)


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """x with `a x = b` (or `a^T x = b`, `a^H x = b` for trans 1, 2), reading only the `lower`
    (or upper) triangle of `a`; with `unit_diagonal` the diagonal is taken to be ones.

    Args:
        a: (..., n, n). b: (n,) or (..., n, k); batch dimensions broadcast.

    Returns:
        x, of b's shape (batch dimensions broadcast).
    """
    a = _square('solve_triangular', a)
    code = _trans_code('solve_triangular', trans)
    bm, vector = _as_columns('solve_triangular', a, b)
    if unit_diagonal:
        eye = _eye_like(a)
        a = ops.add(ops.mul(a, 1 - eye), eye)
    x = _tri_solve(a, bm, bool(lower), code)
    return ops.reshape(x, ops.shape_of(x)[:-1]) if vector else x


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """The Cholesky factor of the Hermitian positive-definite matrix whose `lower` (or upper)
    triangle `a` holds, as SciPy's `cho_factor`.

    Returns:
        `(c, lower)`: `c` holds the factor in that triangle (`a = c c^H` when lower, `c^H c`
        otherwise). Unlike SciPy, whose other triangle holds leftover values, chainrule's holds
        zeros; `cho_solve` reads only the factor's triangle either way.
    """
    a = _square('cho_factor', a)
    uplo = 'L' if lower else 'U'
    L = _la.cholesky(_from_triangle(a, uplo))
    return (L if lower else _H(L)), bool(lower)


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with `a x = b` from `cho_factor(a)`'s `(c, lower)`."""
    c, lower = c_and_lower
    c = _square('cho_solve', c, 'c')
    bm, vector = _as_columns('cho_solve', c, b)
    if lower:            # a = L L^H: L y = b, L^H x = y
        x = _tri_solve(c, _tri_solve(c, bm, True, 0), True, 2)
    else:                # a = U^H U: U^H y = b, U x = y
        x = _tri_solve(c, _tri_solve(c, bm, False, 2), False, 0)
    return ops.reshape(x, ops.shape_of(x)[:-1]) if vector else x


# --- LU ---------------------------------------------------------------------------------------

def _perm_from_piv_impl(piv):
    """LAPACK's sequential row interchanges (row i swapped with row piv[i]) as the permutation
    `perm` with `A[perm] = L U`."""
    piv = np.asarray(piv)
    n = piv.shape[-1]
    perm = np.broadcast_to(np.arange(n), piv.shape).copy()
    flat_perm, flat_piv = perm.reshape(-1, n), piv.reshape(-1, n)
    for p, q in zip(flat_perm, flat_piv):
        for i, j in enumerate(q):
            p[i], p[j] = p[j], p[i]
    return perm


# integer in, integer out: no derivative
lu_perm_p = Primitive('lu_pivots_to_permutation', _perm_from_piv_impl, vjp=None,
                      batch=lambda args, dims: (bind(lu_perm_p, args[0]), 0))


def _rows(x, perm):
    """x[..., perm, :] with one permutation per matrix of the stack."""
    batch = ops.shape_of(x)[:-2]
    idx = tuple(np.arange(d).reshape((d,) + (1,) * (len(batch) - k)) for k, d in
                enumerate(batch))
    return ops.getitem(x, idx + (perm,))


def _inverse_perm(perm):
    return ops.sorting.argsort(perm, axis=-1) if isinstance(perm, Tracer) else \
        np.argsort(perm, axis=-1)


def _lu_parts(lu):
    eye = _eye_like(lu)
    return ops.add(_tril(lu, -1), eye), ops.sub(lu, _tril(lu, -1))


def _lu_impl(a):
    sl = _scipy_linalg('lu_factor')
    a = np.asarray(a)
    res = [sl.lu_factor(a[i], check_finite=False) for i in np.ndindex(a.shape[:-2])]
    lu = np.stack([r[0] for r in res]).reshape(a.shape)
    piv = np.stack([r[1] for r in res]).reshape(a.shape[:-1])
    return lu, piv


def _lu_jvp(t, ans, a):
    # A[perm] = L U: X = L^-1 dA[perm] U^-1; d(packed) = L tril(X, -1) + triu(X) U
    lu, piv = ans
    L, U = _lu_parts(lu)
    perm = bind(lu_perm_p, piv)
    y = _la.triangular_solve(L, _rows(t, perm), lower=True)
    x = _mT(_la.triangular_solve(_mT(U), _mT(y), lower=True))
    d = ops.add(_mm(L, _tril(x, -1)), _mm(ops.sub(x, _tril(x, -1)), U))
    return d, np.zeros(ops.shape_of(piv), ops.dtype_of(piv))


def _lu_vjp(g, ans, a):
    # the transpose of the JVP: X_bar = tril(L^T g, -1) + triu(g U^T), masked to where each
    # factor lives; A[perm]_bar = L^-T X_bar U^-T, then rows put back with the inverse permutation
    glu = g[0]
    lu, piv = ans
    L, U = _lu_parts(lu)
    gl = _tril(glu, -1)
    gu = ops.sub(glu, gl)
    xb = ops.add(_tril(_mm(_mT(L), gl), -1), ops.sub(_mm(gu, _mT(U)),
                                                     _tril(_mm(gu, _mT(U)), -1)))
    y = _la.triangular_solve(_mT(L), xb, lower=False)
    ap = _mT(_la.triangular_solve(U, _mT(y), lower=False))
    return _like_input(_rows(ap, _inverse_perm(bind(lu_perm_p, piv))), a)


lu_p = Primitive('lu', _lu_impl, multiple_results=True, vjp=[_lu_vjp],
                 jvp=[_lu_jvp], batch=_batch_leading(lambda: lu_p))


def lu_factor(a, overwrite_a=False, check_finite=True):
    """The pivoted LU factorisation of square matrices `a` (..., n, n), as SciPy's.

    Returns:
        `(lu, piv)`: `L` (unit diagonal, not stored) and `U` packed in one matrix, and LAPACK's
        0-based row interchanges (row i was swapped with row piv[i]).
    """
    return tuple(bind(lu_p, _square('lu_factor', a)))


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """x with `a x = b` (trans 0), `a^T x = b` (1) or `a^H x = b` (2) from `lu_factor(a)`."""
    lu, piv = lu_and_piv
    lu = _square('lu_solve', lu, 'lu')
    code = _trans_code('lu_solve', trans)
    bm, vector = _as_columns('lu_solve', lu, b)
    piv = piv if isinstance(piv, Tracer) else np.asarray(piv)
    perm = bind(lu_perm_p, piv)
    L, U = _lu_parts(lu)
    batch = np.broadcast_shapes(ops.shape_of(lu)[:-2], ops.shape_of(bm)[:-2])
    bm = ops.broadcast_to(bm, batch + ops.shape_of(bm)[-2:])
    perm = ops.broadcast_to(perm, batch + ops.shape_of(perm)[-1:]) if isinstance(perm, Tracer) \
        else np.broadcast_to(perm, batch + perm.shape[-1:])
    if code == 0:        # L U x = b[perm]
        x = _tri_solve(U, _tri_solve(L, _rows(bm, perm), True, 0), False, 0)
    else:                # a^T = U^T L^T P^T: x = (L^-T U^-T b)[inverse perm]
        y = _tri_solve(L, _tri_solve(U, bm, False, code), True, code)
        x = _rows(y, _inverse_perm(perm))
    return ops.reshape(x, ops.shape_of(x)[:-1]) if vector else x


# --- Sylvester --------------------------------------------------------------------------------

def _sylvester_impl(a, b, q):
    sl = _scipy_linalg('solve_sylvester')
    return _per_matrix(sl.solve_sylvester, a, b, q)


def _sylv(a, b, q):
    return bind(solve_sylvester_p, a, b, q)


def _sylvester_q_bar(g, x, a, b, q):
    # the inverse of X -> A X + X B is transposed by solving with A^T, B^T
    return _sylv(_mT(a), _mT(b), g)


def _sylvester_jvp(ts, x, a, b, q):
    ta, tb, tq = ts
    return _sylv(a, b, ops.sub(ops.sub(tq, _mm(ta, x)), _mm(x, tb)))


solve_sylvester_p = Primitive(
    'solve_sylvester', _sylvester_impl,
    vjp=[lambda g, x, a, b, q: ops.neg(_mm(_sylvester_q_bar(g, x, a, b, q), _mT(x))),
         lambda g, x, a, b, q: ops.neg(_mm(_mT(x), _sylvester_q_bar(g, x, a, b, q))),
         _sylvester_q_bar],
    jvp=_sylvester_jvp,
    batch=_batch_leading(lambda: solve_sylvester_p))


def solve_sylvester(a, b, q):
    """X with `a X + X b = q` (Bartels-Stewart, through SciPy): a (..., m, m), b (..., n, n),
    q (..., m, n)."""
    a = _square('solve_sylvester', a, 'a')
    b = _square('solve_sylvester', b, 'b')
    q = _la._as_float(q)
    sa, sb, sq = ops.shape_of(a), ops.shape_of(b), ops.shape_of(q)
    if len(sq) < 2 or sq[-2:] != (sa[-1], sb[-1]):
        raise ShapeError(f'solve_sylvester: shapes {sa} (a), {sb} (b) and {sq} (q) do not fit: '
                         f'q must be (..., {sa[-1]}, {sb[-1]})')
    batch = np.broadcast_shapes(sa[:-2], sb[:-2], sq[:-2])
    dt = np.result_type(ops.dtype_of(a), ops.dtype_of(b), ops.dtype_of(q))
    a, b, q = (ops.broadcast_to(ops.astype(x, dt), batch + ops.shape_of(x)[-2:])
               for x in (a, b, q))
    return bind(solve_sylvester_p, a, b, q)


# --- banded solve -----------------------------------------------------------------------------
# SciPy's band storage: ab[u + i - j, j] = a[i, j], ab of shape (l + u + 1, n). The primitive
# takes stacks, ab (..., l + u + 1, n) and b (..., n, k); the rules shift rows along an axis
# instead of forming the dense matrix.

def _shift(v, k, axis):
    """w with w[i] = v[i - k] along `axis` (negative), zeros shifted in."""
    s = tuple(ops.shape_of(v))
    n = s[axis]
    if k == 0:
        return v
    if abs(k) >= n:
        return np.zeros(s, ops.dtype_of(v))
    pad_shape = list(s)
    pad_shape[axis] = abs(k)
    pad = np.zeros(tuple(pad_shape), ops.dtype_of(v))
    head = (Ellipsis, slice(0, n - k)) if k > 0 else (Ellipsis, slice(-k, n))
    part = ops.getitem(v, head + (slice(None),) * (-1 - axis))
    return ops.concatenate([pad, part] if k > 0 else [part, pad], axis=axis)


def _band_row(ab, r):
    return ops.getitem(ab, (Ellipsis, r, slice(None)))


def _stack_rows(rows):
    return ops.concatenate([ops.reshape(v, tuple(ops.shape_of(v))[:-1] + (1,) +
                                        tuple(ops.shape_of(v))[-1:]) for v in rows], axis=-2)


def _band_matvec(ab, x, l, u):
    """a @ x for a in band storage: a[j + r - u, j] = ab[r, j]; x (..., n, k)."""
    out = None
    for r in range(l + u + 1):
        row = _band_row(ab, r)
        col = ops.reshape(row, tuple(ops.shape_of(row)) + (1,))
        term = _shift(ops.mul(col, x), r - u, -2)
        out = term if out is None else ops.add(out, term)
    return out


def _band_outer(y, x, l, u):
    """(y x^T) read onto the band: out[r, j] = sum_k y[j + r - u, k] x[j, k]."""
    return _stack_rows([ops.sum(ops.mul(_shift(y, u - r, -2), x), axis=-1)
                        for r in range(l + u + 1)])


def _band_transpose(ab, l, u):
    """a^T in band storage (its l and u swap): row r' is ab's row l + u - r' shifted by r' - l."""
    return _stack_rows([_shift(_band_row(ab, l + u - r), l - r, -1) for r in range(l + u + 1)])


def _banded_impl(ab, b, *, l, u):
    sl = _scipy_linalg('solve_banded')
    return _per_matrix(lambda m, v: sl.solve_banded((l, u), m, v, check_finite=False), ab, b)


def _banded_b_bar(g, x, ab, b, *, l, u):
    return bind(solve_banded_p, _band_transpose(ab, l, u), g, l=u, u=l)


solve_banded_p = Primitive(
    'solve_banded', _banded_impl,
    vjp=[lambda g, x, ab, b, *, l, u: ops.neg(_band_outer(
             _banded_b_bar(g, x, ab, b, l=l, u=u), x, l, u)),
         _banded_b_bar],
    jvp=[lambda t, x, ab, b, *, l, u: ops.neg(bind(solve_banded_p, ab,
                                                   _band_matvec(t, x, l, u), l=l, u=u)),
         lambda t, x, ab, b, *, l, u: bind(solve_banded_p, ab, t, l=l, u=u)],
    batch=_batch_leading(lambda: solve_banded_p))


def solve_banded(l_and_u, ab, b, overwrite_ab=False, overwrite_b=False, check_finite=True):
    """x with `a x = b` for a banded `a` in SciPy's band storage (`ab[u + i - j, j] = a[i, j]`,
    shape (l + u + 1, n)); b is (n,) or (n, k)."""
    l, u = (int(v) for v in l_and_u)
    ab, b = _la._as_float(ab), _la._as_float(b)
    sa, sb = ops.shape_of(ab), ops.shape_of(b)
    if len(sa) != 2 or sa[0] != l + u + 1 or len(sb) not in (1, 2) or sb[0] != sa[1]:
        raise ShapeError(f'solve_banded: shapes {sa} (ab) and {sb} (b) do not fit (l, u) = '
                         f'({l}, {u}): ab must be ({l + u + 1}, n) and b (n,) or (n, k)')
    dt = np.result_type(ops.dtype_of(ab), ops.dtype_of(b))
    bm = ops.astype(ops.reshape(b, (sb[0], 1)) if len(sb) == 1 else b, dt)
    x = bind(solve_banded_p, ops.astype(ab, dt), bm, l=l, u=u)
    return ops.reshape(x, sb) if len(sb) == 1 else x


# --- eigh, block_diag -------------------------------------------------------------------------

def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """Eigenvalues (ascending) and eigenvectors of a Hermitian matrix, or of the generalised
    problem `a v = w b v` (`type=1`, `b` Hermitian positive definite), as SciPy's `eigh`.

    Only the `lower` (or upper) triangle of `a` (and `b`) is read, and the derivative is that of
    the Hermitian matrix built from it. With `b`, eigenvectors are normalised so that
    `v^H b v = I`. `subset_by_index=(lo, hi)` keeps eigenvalues lo..hi (inclusive).

    Returns:
        `w`, or `(w, v)` with `v[:, i]` the eigenvector of `w[i]`.
    """
    a = _square('eigh', a)
    uplo = 'L' if lower else 'U'
    if type != 1:
        raise NotImplementedError(f'eigh: only type=1 (a v = w b v) is supported, got type={type}')
    if subset_by_value is not None:
        raise NotImplementedError('eigh: subset_by_value is not supported (its output size '
                                  'depends on the values); use subset_by_index')
    if b is None:
        w, v = _la.eigh(a, uplo)
    else:
        b = _square('eigh', b, 'b')
        # b = L L^H: a v = w b v  <=>  (L^-1 a L^-H) y = w y with v = L^-H y
        L = _la.cholesky(_from_triangle(b, uplo))
        s = _from_triangle(a, uplo)
        c = _la.triangular_solve(L, _H(_la.triangular_solve(L, s, lower=True)), lower=True)
        w, y = _la.eigh(c, 'L')
        v = _la.triangular_solve(_H(L), y, lower=False)
    if subset_by_index is not None:
        lo, hi = (int(i) for i in subset_by_index)
        n = ops.shape_of(a)[-1]
        if not 0 <= lo <= hi < n:
            raise ValueError(f'eigh: subset_by_index {subset_by_index} is not within [0, {n - 1}]')
        w = ops.getitem(w, (Ellipsis, slice(lo, hi + 1)))
        v = ops.getitem(v, (Ellipsis, slice(None), slice(lo, hi + 1)))
    return w if eigvals_only else (w, v)


def block_diag(*arrs):
    """The block-diagonal matrix with `arrs` on its diagonal, as SciPy's `block_diag`: 0-d and
    1-d inputs count as 1 x n rows; no input gives an empty (1, 0) array."""
    if not arrs:
        return np.empty((1, 0))
    mats = []
    for k, x in enumerate(arrs):
        nd = len(ops.shape_of(x))
        if nd > 2:
            raise ShapeError(f'block_diag: argument {k} has shape {ops.shape_of(x)}; arguments '
                             'must have at most 2 dimensions')
        mats.append(ops.reshape(x, (1,) * (2 - nd) + tuple(ops.shape_of(x))) if nd < 2 else x)
    dt = np.result_type(*[ops.dtype_of(m) for m in mats])
    width = sum(ops.shape_of(m)[1] for m in mats)
    rows, col = [], 0
    for m in mats:
        r, c = ops.shape_of(m)
        parts = [np.zeros((r, col), dt), ops.astype(m, dt) if isinstance(m, Tracer) else
                 np.asarray(m, dt), np.zeros((r, width - col - c), dt)]
        rows.append(ops.concatenate(parts, axis=1))
        col += c
    return ops.concatenate(rows, axis=0)
