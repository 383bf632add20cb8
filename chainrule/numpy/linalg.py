"""`chainrule.numpy.linalg`: NumPy's `np.linalg`, differentiable to any order.

What you can do with it: write linear algebra exactly as with `np.linalg` -- solves, inverses,
determinants, decompositions (`cholesky`, `eigh`, `eig`, `svd`, `qr`), norms, pseudo-inverses --
on NumPy arrays, `Tensor`s or traced values, real or complex, batched over leading dimensions,
and differentiate through it in reverse or forward mode.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> a = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> cr.grad(lambda a: cnp.linalg.slogdet(a)[1])(a)      # d log|det a| / da = inv(a).T
    array([[ 0.6, -0.2],
           [-0.2,  0.4]])

The decompositions and solves are primitives (`chainrule.ops.linalg_decompositions` and
`chainrule.ops.linalg_solve`, where the derivative formulas live); everything else here (`norm`,
`pinv`, `lstsq`, `matrix_power`, `multi_dot`, `eigvalsh`, `cond`, `tensorsolve`, ...) is a
composite with no derivative code of its own. Every public name of
NumPy 2's `np.linalg` is here, so `np.linalg.*` called on a `Tensor` dispatches to it.

Differences from NumPy, all deliberate:
- `eig` always returns complex arrays (NumPy returns real ones when every eigenvalue happens
  to be real), so the output dtype does not depend on the values.
- The derivative of `cholesky` treats the input as Hermitian (as JAX and PyTorch do): the
  gradient comes back Hermitian. `eigh`/`eigvalsh` are differentiated as what they compute,
  the Hermitian matrix read from the `UPLO` triangle, so their gradient lives on that triangle
  and agrees with finite differences on any input (as HIPS autograd's).
- Eigenvectors and singular vectors are defined up to sign (phase, for complex): only
  functions that do not depend on that choice have meaningful derivatives.
- Derivatives of `svd(..., full_matrices=True)` (NumPy's default) of a non-square matrix exist
  only while the extra columns of U / rows of Vh are unused (they are not unique); likewise
  the extra columns of Q from `qr(mode='complete')` when m > n. `svd(hermitian=True)` computes the general SVD (same
  `s`; `U`, `Vh` up to the usual signs).
- `det` is differentiable everywhere, singular matrices included (its gradient is the
  transposed adjugate, taken through the SVD when the matrix is nearly singular); `inv`,
  `solve` and `slogdet` need a non-singular one.
- `norm` has a zero gradient at the zero vector (a subgradient) instead of NaN.
- Errors: a non-square matrix gives `chainrule.ShapeError` naming the op and shape; a singular
  matrix gives NumPy's `LinAlgError` with the op named.
"""

import builtins
from collections import namedtuple

import numpy as _np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ConcretizationError, ShapeError, Tracer, concrete, dtype_of, shape_of
from chainrule.ops import linalg as _la

__all__ = ['inv', 'solve', 'det', 'slogdet', 'cholesky', 'eigh', 'eigvalsh', 'eig', 'eigvals',
           'svd', 'svdvals', 'qr', 'norm', 'vector_norm', 'matrix_norm', 'pinv', 'matrix_power',
           'multi_dot', 'cond', 'matrix_rank', 'matrix_transpose', 'diagonal', 'trace', 'outer',
           'vecdot', 'lstsq', 'tensorinv', 'tensorsolve', 'matmul', 'tensordot', 'cross',
           'LinAlgError']

LinAlgError = _np.linalg.LinAlgError

EigResult = namedtuple('EigResult', 'eigenvalues eigenvectors')
EighResult = namedtuple('EighResult', 'eigenvalues eigenvectors')
SVDResult = namedtuple('SVDResult', 'U S Vh')
QRResult = namedtuple('QRResult', 'Q R')
SlogdetResult = namedtuple('SlogdetResult', 'sign logabsdet')


# --- primitives, with NumPy's signatures ------------------------------------------------------

def inv(a):
    """The inverse of each square matrix in `a` (shape (..., n, n))."""
    return _la.inv(a)


def solve(a, b):
    """The solution x of `a @ x = b`.

    Args:
        a: (..., n, n) coefficient matrices.
        b: a vector (n,) or a stack of matrices (..., n, k) (NumPy 2's rule); batch dimensions
            broadcast with `a`'s.

    Returns:
        x, shaped like `b` (with the broadcast batch dimensions).
    """
    return _la.solve(a, b)


def det(a):
    """The determinant of each square matrix in `a`."""
    return _la.det(a)


def slogdet(a):
    """`(sign, logabsdet)` of each square matrix in `a`: det = sign * exp(logabsdet).

    Returns:
        `SlogdetResult(sign, logabsdet)`; `sign` is complex (of modulus 1) for complex `a`,
        and `logabsdet` is always real. Only `logabsdet` (and, for complex `a`, the phase of
        `sign`) has a derivative.
    """
    return SlogdetResult(*_la.slogdet(a))


def cholesky(a, /, *, upper=False):
    """The Cholesky factor of each Hermitian positive-definite matrix in `a`.

    Args:
        a: (..., n, n); like NumPy, only its lower triangle is read.
        upper: return the upper factor U = L^H (a = U^H U) instead of L (a = L L^H).

    Returns:
        L (or U), (..., n, n).
    """
    L = _la.cholesky(a)
    return _la._H(L) if upper else L


def eigh(a, UPLO='L'):
    """Eigenvalues (ascending, real) and orthonormal eigenvectors of Hermitian matrices.

    Returns:
        `EighResult(eigenvalues, eigenvectors)`; column `v[..., :, i]` belongs to `w[..., i]`.
    """
    return EighResult(*_la.eigh(a, UPLO))


def eigvalsh(a, UPLO='L'):
    """The eigenvalues of Hermitian matrices, ascending."""
    if not isinstance(a, Tracer):
        return _np.linalg.eigvalsh(_la._square('eigvalsh', a), UPLO)
    return _la.eigh(a, UPLO)[0]


def eig(a):
    """Eigenvalues and unit-norm right eigenvectors of general square matrices.

    Returns:
        `EigResult(eigenvalues, eigenvectors)`, both complex.
    """
    return EigResult(*_la.eig(a))


def eigvals(a):
    """The (complex) eigenvalues of general square matrices."""
    return _la.eig(a)[0]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """The singular value decomposition a = U diag(S) Vh of each matrix in `a` (..., m, n).

    Args:
        full_matrices: U is (..., m, m) and Vh (..., n, n) (NumPy's default); otherwise
            (..., m, k) and (..., k, n) with k = min(m, n). For m != n, derivatives through the
            extra columns of U / rows of Vh do not exist: pass False if you use them.
        compute_uv: return only S (descending) when False.
        hermitian: accepted for NumPy compatibility; the general SVD is computed.

    Returns:
        `SVDResult(U, S, Vh)`, or S.
    """
    if not compute_uv:
        return svdvals(a)
    return SVDResult(*_la.svd(a, full_matrices))


def svdvals(x, /):
    """The singular values of each matrix in `x`, descending."""
    if not isinstance(x, Tracer):
        return _np.linalg.svd(_la._matrix('svdvals', x), compute_uv=False)
    return _la.svd(x, False)[1]


def qr(a, mode='reduced'):
    """The QR decomposition a = Q R of each matrix in `a` (..., m, n).

    Args:
        mode: 'reduced' (Q (..., m, k), R (..., k, n), k = min(m, n)), 'complete' (Q square)
            or 'r' (R only). ('raw' is not supported.)

    Returns:
        `QRResult(Q, R)`, or R for mode 'r'.
    """
    if mode not in ('reduced', 'complete', 'r'):
        raise NotImplementedError(f"qr: mode {mode!r} is not supported ('reduced', 'complete', "
                                  "'r')")
    a = _la._matrix('qr', a)
    m, n = shape_of(a)[-2:]
    if isinstance(a, Tracer) and m < n:
        # a = [X Y] with X square: X = Q R1, and R = [R1, Q^H Y]. Every step is differentiable,
        # while the QR primitive's own derivative needs m >= n.
        q, r1 = _la.qr(a[..., :, :m], False)
        r = ops.concatenate([r1, _la._mm(_la._H(q), a[..., :, m:])], axis=-1)
    else:
        q, r = _la.qr(a, mode == 'complete')
    return r if mode == 'r' else QRResult(q, r)


# --- norms ------------------------------------------------------------------------------------

def _abs_sq(x):
    return cnp.real(x * cnp.conj(x)) if cnp.iscomplexobj(x) else x * x


def _sqrt_safe(sq):
    """sqrt with gradient 0 (not infinity) at 0: the 2-norm of a zero vector gets the zero
    subgradient, as in PyTorch."""
    zero = cnp.equal(sq, 0)
    return cnp.where(zero, 0.0, cnp.sqrt(cnp.where(zero, 1.0, sq)))


def _inexact(x):
    if isinstance(x, Tracer):
        return x if dtype_of(x).kind in 'fc' else ops.astype(x, _np.float64)
    x = _np.asarray(x)
    return x if x.dtype.kind in 'fc' else x.astype(_np.float64)


def _vector_norm(x, ord, axis):
    """The `ord`-norm along `axis` (one axis; keeps it, as size 1)."""
    if ord is None or ord == 2:
        return _sqrt_safe(cnp.sum(_abs_sq(x), axis=axis, keepdims=True))
    if isinstance(ord, str):
        raise ValueError(f'norm: invalid norm order {ord!r} for vectors')
    ax = cnp.abs(x)
    if ord == _np.inf:
        return cnp.max(ax, axis=axis, keepdims=True)
    if ord == -_np.inf:
        return cnp.min(ax, axis=axis, keepdims=True)
    if ord == 0:
        # the number of non-zero entries: a count, with no derivative (traced values too, so
        # it works under vmap and jit)
        nz = ops.astype(cnp.not_equal(ops.stop_gradient(x), 0), _np.finfo(dtype_of(x)).dtype)
        return cnp.sum(nz, axis=axis, keepdims=True)
    if ord == 1:
        return cnp.sum(ax, axis=axis, keepdims=True)
    return cnp.sum(ax ** ord, axis=axis, keepdims=True) ** (1.0 / ord)


def _matrix_norm(x, ord, axes):
    """The matrix `ord`-norm over `axes` (row axis, column axis); shape: the other axes."""
    row, col = axes
    if row == col:
        raise ValueError('norm: duplicate axes given')
    if ord is None or ord == 'fro':
        return _sqrt_safe(cnp.sum(_abs_sq(x), axis=axes))
    if ord in (_np.inf, -_np.inf, 1, -1):
        red = cnp.max if ord > 0 else cnp.min
        # inf: the largest absolute row sum; 1: the largest absolute column sum
        summed, other = (col, row) if builtins.abs(ord) == _np.inf else (row, col)
        s = cnp.sum(cnp.abs(x), axis=summed, keepdims=True)
        return cnp.squeeze(red(s, axis=other, keepdims=True), axis=axes)
    if ord in (2, -2, 'nuc'):
        s = svdvals(cnp.moveaxis(x, axes, (-2, -1)))
        if ord == 'nuc':
            return cnp.sum(s, axis=-1)
        return cnp.max(s, axis=-1) if ord == 2 else cnp.min(s, axis=-1)
    raise ValueError(f'norm: invalid norm order {ord!r} for matrices')


def norm(x, ord=None, axis=None, keepdims=False):
    """Matrix or vector norm, as `np.linalg.norm`.

    Args:
        x: an array; with `axis=None` it must be 1-D or 2-D unless `ord` is None (then the
            2-norm of all entries is returned).
        ord: vector norms: None/2, inf, -inf, 0 (a count), 1, any other number p
            (sum |x|^p)^(1/p); matrix norms: None/'fro', 'nuc', inf, -inf, 1, -1, 2, -2.
        axis: an int (vector norms) or a pair of ints (matrix norms), or None.
        keepdims: keep the reduced axes with size 1.

    Returns:
        The norm(s), real.
    """
    x = _inexact(x)
    nd = len(shape_of(x))
    if axis is None:
        if ord is None:
            out = _sqrt_safe(cnp.sum(_abs_sq(x)))
            return cnp.reshape(out, (1,) * nd) if keepdims else out
        if nd not in (1, 2):
            raise ShapeError(f'norm: ord={ord!r} with axis=None needs a 1-D or 2-D array, got '
                             f'shape {shape_of(x)}')
        axis = tuple(range(nd))
    elif isinstance(axis, (int, _np.integer)):
        axis = (int(axis),)
    else:
        axis = tuple(int(a) for a in axis)
    for a in axis:
        if not -nd <= a < nd:
            raise ShapeError(f'norm: axis {a} is out of bounds for shape {shape_of(x)}')
    axis = tuple(a % nd for a in axis)
    if len(axis) == 1:
        out = _vector_norm(x, ord, axis[0])
        return out if keepdims else cnp.squeeze(out, axis=axis)
    if len(axis) == 2:
        out = _matrix_norm(x, ord, axis)
        if keepdims:
            out = cnp.reshape(out, tuple(1 if i in axis else d for i, d in enumerate(shape_of(x))))
        return out
    raise ShapeError(f'norm: axis must be an int or a pair of ints, got {axis}')


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    """NumPy 2's `linalg.vector_norm`: the vector `ord`-norm over `axis` (None: all entries)."""
    x = _inexact(x)
    if axis is None:
        out = _vector_norm(cnp.ravel(x), ord, 0)[0]
        return cnp.reshape(out, (1,) * len(shape_of(x))) if keepdims else out
    axes = (axis,) if isinstance(axis, (int, _np.integer)) else tuple(axis)
    nd = len(shape_of(x))
    axes = tuple(sorted(a % nd for a in axes))
    rest = [i for i in range(nd) if i not in axes]
    moved = cnp.reshape(cnp.transpose(x, rest + list(axes)),
                        tuple(shape_of(x)[i] for i in rest) + (-1,))
    out = cnp.squeeze(_vector_norm(moved, ord, -1), axis=-1)
    if keepdims:
        out = cnp.reshape(out, tuple(1 if i in axes else d for i, d in enumerate(shape_of(x))))
    return out


def matrix_norm(x, /, *, keepdims=False, ord='fro'):
    """NumPy 2's `linalg.matrix_norm`: the matrix `ord`-norm over the last two axes."""
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)


def cond(x, p=None):
    """The condition number of each matrix in `x` in the `p`-norm (None: 2-norm via the
    singular values)."""
    if p is None or p in (2, -2):
        s = svdvals(x)
        big, small = s[..., 0], s[..., -1]
        return big / small if p != -2 else small / big
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def matrix_rank(A, tol=None, hermitian=False, *, rtol=None):
    """The rank (an integer: no derivative). Under `vmap` or `jit` (values not known while
    tracing) an integer array computed in the program, NumPy's rule: the singular values above
    `tol`, by default `max(s) * max(m, n) * eps` (or `max(s) * rtol`)."""
    try:
        A = _np.asarray(concrete(A))
    except ConcretizationError:
        return _traced_rank('matrix_rank', A, tol, rtol)
    return _np.linalg.matrix_rank(A, tol=tol, hermitian=hermitian, rtol=rtol)


def _traced_rank(op, A, tol, rtol):
    if len(shape_of(A)) < 2:
        return cnp.sum(ops.astype(cnp.not_equal(ops.stop_gradient(A), 0), _np.int64))
    s = ops.stop_gradient(svdvals(A))
    if tol is None:
        m, n = shape_of(A)[-2:]
        if rtol is None:
            rtol = builtins.max(m, n) * _np.finfo(_np.result_type(dtype_of(A), _np.float32)).eps
        tol = _smax(s) * cnp.asarray(rtol)[..., None]
    else:
        tol = cnp.asarray(tol)[..., None]
    return cnp.sum(ops.astype(cnp.greater(s, tol), _np.int64), axis=-1)


def _smax(s):
    """The largest singular value of each matrix, keeping the axis (0 for a 0 x n matrix)."""
    if shape_of(s)[-1] == 0:
        return cnp.zeros(tuple(shape_of(s)[:-1]) + (1,), dtype_of(s))
    return cnp.max(s, axis=-1, keepdims=True)


# --- composites ---------------------------------------------------------------------------------

def pinv(a, rcond=None, hermitian=False, *, rtol=None):
    """The Moore-Penrose pseudo-inverse, through the SVD: V diag(1/s) U^H, with singular values
    at or below `rcond * max(s)` treated as zero (NumPy's default `rcond` is 1e-15).

    Args:
        a: (..., m, n).
        rcond, rtol: the relative cutoff (give at most one); scalar or broadcasting against the
            stack.
        hermitian: accepted for NumPy compatibility.

    Returns:
        (..., n, m). Its derivative is that of the formula at a fixed rank.
    """
    if rcond is not None and rtol is not None:
        raise ValueError('pinv: give rcond or rtol, not both')
    cut = rtol if rtol is not None else (1e-15 if rcond is None else rcond)
    a = _la._matrix('pinv', a)
    u, s, vh = _la.svd(a, False)
    # the cut-off as operations, not NumPy on concrete values, so pinv works under vmap and jit
    sc = ops.stop_gradient(s)
    keep = cnp.greater(sc, cnp.asarray(cut)[..., None] * _smax(sc))
    s_inv = cnp.where(keep, 1.0 / cnp.where(keep, s, 1.0), 0.0)
    return _la._mm(_la._H(vh), s_inv[..., :, None] * _la._H(u))


def matrix_power(a, n):
    """`a` multiplied by itself `n` times (n < 0: powers of the inverse; n = 0: the identity),
    by repeated squaring."""
    a = _la._square('matrix_power', a) if isinstance(a, Tracer) else _np.asarray(a)
    if len(shape_of(a)) < 2 or shape_of(a)[-1] != shape_of(a)[-2]:
        raise ShapeError(f'matrix_power: expected a square matrix, got shape {shape_of(a)}')
    n = int(n)
    if n == 0:
        eye = _np.eye(shape_of(a)[-1], dtype=dtype_of(a))
        return _np.broadcast_to(eye, shape_of(a)).copy()
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else cnp.matmul(result, base)
        n >>= 1
        if n:
            base = cnp.matmul(base, base)
    return result


def _chain_order(dims):
    """The cheapest parenthesisation of a matrix chain with `dims` (n+1 sizes): `split[i][j]`
    is where to split the product of matrices i..j (the classic dynamic programme)."""
    n = len(dims) - 1
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = _np.inf
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def multi_dot(arrays, *, out=None):
    """`np.linalg.multi_dot`: the product of a chain of matrices, in the cheapest order. The
    first may be 1-D (a row) and the last 1-D (a column)."""
    if out is not None:
        raise NotImplementedError('multi_dot: out= is not supported (results are new arrays)')
    arrays = [a if isinstance(a, Tracer) else _np.asarray(a) for a in arrays]
    if len(arrays) < 2:
        raise ValueError('multi_dot: expecting at least two arrays')
    first_1d = len(shape_of(arrays[0])) == 1
    last_1d = len(shape_of(arrays[-1])) == 1
    if first_1d:
        arrays[0] = cnp.reshape(arrays[0], (1, -1))
    if last_1d:
        arrays[-1] = cnp.reshape(arrays[-1], (-1, 1))
    for a in arrays:
        if len(shape_of(a)) != 2:
            raise ShapeError(f'multi_dot: arrays must be 2-D (the first and last may be 1-D), got '
                             f'shapes {[shape_of(b) for b in arrays]}')
    split = _chain_order([shape_of(arrays[0])[0]] + [shape_of(a)[1] for a in arrays])
    # evaluate the parenthesisation with an explicit stack: (i, j) -> product of i..j
    done = {}
    todo = [(0, len(arrays) - 1)]
    while todo:
        i, j = todo[-1]
        if i == j:
            done[i, j] = arrays[i]
            todo.pop()
            continue
        k = split[i][j]
        if (i, k) not in done:
            todo.append((i, k))
        elif (k + 1, j) not in done:
            todo.append((k + 1, j))
        else:
            done[i, j] = cnp.matmul(done.pop((i, k)), done.pop((k + 1, j)))
            todo.pop()
    res = done[0, len(arrays) - 1]
    if first_1d and last_1d:
        return res[0, 0]
    if first_1d:
        return res[0]
    if last_1d:
        return res[:, 0]
    return res


def matrix_transpose(x, /):
    """Swap the last two axes."""
    return _la._mT(x)


def diagonal(x, /, *, offset=0):
    """The diagonals of the last two axes."""
    return cnp.diagonal(x, offset, -2, -1)


def trace(x, /, *, offset=0, dtype=None):
    """The sums of the diagonals of the last two axes."""
    return cnp.sum(diagonal(x, offset=offset), axis=-1, dtype=dtype)


def outer(x1, x2, /):
    """The outer product of two vectors."""
    if len(shape_of(x1)) != 1 or len(shape_of(x2)) != 1:
        raise ShapeError(f'outer: expected two 1-D arrays, got shapes {shape_of(x1)} and '
                         f'{shape_of(x2)}')
    return cnp.outer(x1, x2)


def vecdot(x1, x2, /, *, axis=-1):
    """sum(conj(x1) * x2) along `axis`, broadcasting the other axes."""
    return cnp.sum(cnp.conj(x1) * x2, axis=axis)


def matmul(x1, x2, /):
    """`x1 @ x2` (NumPy 2's `linalg.matmul`)."""
    return cnp.matmul(x1, x2)


def tensordot(x1, x2, /, *, axes=2):
    """`np.tensordot` (NumPy 2's `linalg.tensordot`)."""
    return cnp.tensordot(x1, x2, axes)


def cross(x1, x2, /, *, axis=-1):
    """The cross product of 3-vectors along `axis` (NumPy 2's `linalg.cross`)."""
    return cnp.cross(x1, x2, axis=axis)


def lstsq(a, b, rcond=None):
    """The least-squares solution of `a @ x = b`, through the pseudo-inverse.

    Args:
        a: (m, n).
        b: (m,) or (m, k).
        rcond: relative cutoff for small singular values (default: machine epsilon times
            max(m, n), NumPy's).

    Returns:
        `(x, residuals, rank, s)` as NumPy: `residuals` (the squared 2-norm of each column of
        `b - a @ x`) is empty unless rank == n < m; `rank` is an int. `x`, `residuals` and `s`
        are differentiable (at a fixed rank). Under `vmap` and `jit`, where the rank is not
        known while tracing (JAX's rule): `rank` is an integer array, and `residuals` are
        given whenever m > n, whatever the rank (the squared norms of the residuals of the
        minimum-norm solution `x`).
    """
    a = _la._matrix('lstsq', a)
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != 2 or len(sb) not in (1, 2) or sb[0] != sa[0]:
        raise ShapeError(f'lstsq: shapes {sa} (a) and {sb} (b) do not fit: a must be (m, n) and b '
                         '(m,) or (m, k)')
    m, n = sa
    if rcond is None:
        rcond = _np.finfo(_np.result_type(dtype_of(a), _np.float32)).eps * builtins.max(m, n)
    s = svdvals(a)
    try:
        sc = _np.asarray(concrete(s))
        rank = int(_np.sum(sc > rcond * sc.max())) if sc.size else 0
    except ConcretizationError:         # traced by vmap or jit: the rank in the program
        rank = _traced_rank('lstsq', a, None, rcond)
        sc = None
    x = cnp.matmul(pinv(a, rcond=rcond), b)
    if m > n and (sc is None or rank == n):
        r = b - cnp.matmul(a, x)
        residuals = cnp.sum(_abs_sq(r), axis=0)
        if len(sb) == 1:
            residuals = cnp.reshape(residuals, (1,))
    else:
        residuals = _np.zeros((0,), _np.finfo(_np.result_type(dtype_of(a), _np.float32)).dtype)
    return x, residuals, rank, s


def tensorinv(a, ind=2):
    """The inverse of `a` read as a linear map from its last axes to its first `ind` ones."""
    s = shape_of(a)
    rows, cols = s[:ind], s[ind:]
    r, c = int(_np.prod(rows)), int(_np.prod(cols))
    if r != c:
        raise ShapeError(f'tensorinv: shape {s} with ind={ind} is not square ({r} x {c})')
    return cnp.reshape(inv(cnp.reshape(a, (r, c))), cols + rows)


def tensorsolve(a, b, axes=None):
    """x with `tensordot(a, x, axes=x.ndim) = b`."""
    nd = len(shape_of(a))
    if axes is not None:
        rest = [i for i in range(nd) if i not in [ax % nd for ax in axes]]
        a = cnp.transpose(a, rest + [ax % nd for ax in axes])
    sb = shape_of(b)
    out_shape = shape_of(a)[len(sb):]
    r, c = int(_np.prod(sb)), int(_np.prod(out_shape))
    if r != c:
        raise ShapeError(f'tensorsolve: a of shape {shape_of(a)} and b of shape {sb} do not make '
                         f'a square system ({r} x {c})')
    return cnp.reshape(solve(cnp.reshape(a, (r, c)), cnp.ravel(b)), out_shape)
