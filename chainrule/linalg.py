"""`torch.linalg`'s names and conventions on chainrule: `cr.linalg.norm(t)`,
`cr.linalg.solve(A, B)`, `cr.linalg.eigh(A)`, `cr.linalg.svd(A, full_matrices=False)`, ...

Each function is a thin layer over `chainrule.numpy.linalg` (differentiable, and working on
`Tensor`s and on the traced values inside `grad`/`vmap`/`jit` alike), with PyTorch's argument
names (`dim=`, `keepdim=`, `ord=`, `upper=`, `left=`) and results (named tuples with PyTorch's
field names: `eigh` gives `(eigenvalues, eigenvectors)`, `svd` `(U, S, Vh)`, `slogdet`
`(sign, logabsdet)`, `qr` `(Q, R)`, `lstsq` `(solution, residuals, rank, singular_values)`).
`out=` is refused, as everywhere in chainrule.
"""

import collections

import numpy as np

from chainrule.core import ShapeError
from chainrule._args import ArgumentError
from chainrule._torch_errors import LinAlgError
from chainrule.tensor import Tensor
from chainrule._torch_functions import _traced_call, refuse_out

__all__ = ['norm', 'vector_norm', 'matrix_norm', 'inv', 'solve', 'det', 'slogdet', 'eigh',
           'eigvalsh', 'eig', 'eigvals', 'svd', 'svdvals', 'cholesky', 'qr', 'pinv', 'lstsq',
           'matrix_power', 'matrix_exp', 'cross', 'matrix_rank', 'cond', 'multi_dot', 'vecdot',
           'diagonal', 'solve_triangular', 'tensorinv', 'tensorsolve', 'LinAlgError']


def _la():
    import chainrule.numpy as cnp
    return cnp.linalg


def _square(op, A):
    s = tuple(A.shape)
    if len(s) < 2 or s[-1] != s[-2]:
        raise ShapeError(f'linalg.{op}(): A must be a (batch of) square matrices, got shape {s}')


def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None, out=None):
    """The vector `ord`-norm of the entries over `dim` (every entry when None; a tuple of dims
    is one vector, not a matrix)."""
    refuse_out('linalg.vector_norm', out)
    return _traced_call('linalg.vector_norm', lambda t: t.norm(
        'fro' if ord == 2 else ord, dim, keepdim, dtype), x)


def matrix_norm(A, ord='fro', dim=(-2, -1), keepdim=False, *, dtype=None, out=None):
    refuse_out('linalg.matrix_norm', out)
    if len(A.shape) < 2:
        raise ShapeError(f'linalg.matrix_norm(): A must have at least 2 dimensions, got shape '
                         f'{tuple(A.shape)}')
    x = A if dtype is None else A.astype(dtype)
    return _la().norm(x, ord=ord, axis=tuple(dim), keepdims=keepdim)


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None, out=None):
    """`torch.linalg.norm`: with `ord` and no `dim`, a vector norm of a 1-D input or a matrix norm
    of a 2-D one; with neither, the 2-norm of every entry; with an int `dim` a vector norm, with
    a pair a matrix norm."""
    refuse_out('linalg.norm', out)
    nd = len(A.shape)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if nd == 1:
            return vector_norm(A, ord, None, keepdim, dtype=dtype)
        if nd == 2:
            return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
        raise ShapeError(f'linalg.norm(): with ord={ord!r} and no dim the input must be 1-D or '
                         f'2-D, got shape {tuple(A.shape)}')
    if isinstance(dim, (int, np.integer)) or len(dim) == 1:
        return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
    return matrix_norm(A, 'fro' if ord is None else ord, dim, keepdim, dtype=dtype)


def inv(A, *, out=None):
    refuse_out('linalg.inv', out)
    _square('inv', A)
    return _la().inv(A)


def solve(A, B, *, left=True, out=None):
    """X with `A X = B` (`X A = B` with `left=False`); B is a (batch of) vector(s) when its
    shape is A's without the last dimension, as PyTorch's."""
    refuse_out('linalg.solve', out)
    _square('solve', A)
    from chainrule import ops
    if not left:
        mt = lambda m: ops.transpose(m, tuple(range(len(m.shape) - 2)) + (  # noqa: E731
            len(m.shape) - 1, len(m.shape) - 2))
        return mt(solve(mt(A), mt(B)))
    if len(B.shape) == 1 or tuple(B.shape) == tuple(A.shape[:-1]):
        x = _la().solve(A, ops.reshape(B, tuple(B.shape) + (1,)))
        return ops.reshape(x, tuple(x.shape[:-1]))
    return _la().solve(A, B)


def det(A, *, out=None):
    refuse_out('linalg.det', out)
    _square('det', A)
    return _la().det(A)


_Slogdet = collections.namedtuple('slogdet', ['sign', 'logabsdet'])
_Eigh = collections.namedtuple('eigh', ['eigenvalues', 'eigenvectors'])
_Eig = collections.namedtuple('eig', ['eigenvalues', 'eigenvectors'])
_SVD = collections.namedtuple('svd', ['U', 'S', 'Vh'])
_QR = collections.namedtuple('qr', ['Q', 'R'])
_Lstsq = collections.namedtuple('lstsq', ['solution', 'residuals', 'rank', 'singular_values'])


def slogdet(A, *, out=None):
    refuse_out('linalg.slogdet', out)
    _square('slogdet', A)
    return _Slogdet(*_la().slogdet(A))


def _hermitian(A, UPLO):
    """A with the triangle `UPLO` read (the values `eigh` sees), whose gradient is PyTorch's
    symmetric one: the values of the triangle, the derivative of (A + A^H) / 2."""
    from chainrule import ops
    import chainrule.numpy as cnp
    nd = len(A.shape)
    mt = lambda m: ops.conj(ops.transpose(m, tuple(range(nd - 2)) + (nd - 1, nd - 2)))  # noqa
    tri = cnp.tril if UPLO == 'L' else cnp.triu
    off = -1 if UPLO == 'L' else 1
    used = tri(A) + mt(tri(A, off))
    sym = (A + mt(A)) / 2
    return ops.stop_gradient(used) + (sym - ops.stop_gradient(sym))


def eigh(A, UPLO='L', *, out=None):
    """`(eigenvalues, eigenvectors)` of the Hermitian matrices whose `UPLO` triangle A holds;
    the gradient with respect to A is symmetric, as PyTorch's."""
    refuse_out('linalg.eigh', out)
    _square('eigh', A)
    return _Eigh(*_la().eigh(_hermitian(A, UPLO), UPLO=UPLO))


def eigvalsh(A, UPLO='L', *, out=None):
    refuse_out('linalg.eigvalsh', out)
    _square('eigvalsh', A)
    return _la().eigvalsh(_hermitian(A, UPLO), UPLO=UPLO)


def eig(A, *, out=None):
    refuse_out('linalg.eig', out)
    _square('eig', A)
    return _Eig(*_la().eig(A))


def eigvals(A, *, out=None):
    refuse_out('linalg.eigvals', out)
    _square('eigvals', A)
    return _la().eigvals(A)


def svd(A, full_matrices=True, *, driver=None, out=None):
    refuse_out('linalg.svd', out)
    return _SVD(*_la().svd(A, full_matrices=full_matrices))


def svdvals(A, *, driver=None, out=None):
    refuse_out('linalg.svdvals', out)
    return _la().svdvals(A)


def cholesky(A, *, upper=False, out=None):
    refuse_out('linalg.cholesky', out)
    _square('cholesky', A)
    return _la().cholesky(A, upper=upper)


def qr(A, mode='reduced', *, out=None):
    refuse_out('linalg.qr', out)
    if mode not in ('reduced', 'complete', 'r'):
        raise ArgumentError(f"linalg.qr(): mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    if mode == 'r':
        r = _la().qr(A, mode='r')
        return _QR(Tensor(np.zeros((0,), A.dtype)), r)
    return _QR(*_la().qr(A, mode=mode))


def pinv(A, *, atol=None, rtol=None, hermitian=False, out=None):
    refuse_out('linalg.pinv', out)
    if atol is not None:
        raise NotImplementedError('linalg.pinv(): atol= is not supported; pass rtol=')
    return _la().pinv(A, rtol=rtol, hermitian=hermitian) if rtol is not None else \
        _la().pinv(A, hermitian=hermitian)


def lstsq(A, B, rcond=None, *, driver=None):
    """`(solution, residuals, rank, singular_values)` of the least-squares problem `A X = B`."""
    x, res, rank, s = _la().lstsq(A, B, rcond=rcond)
    return _Lstsq(x, res, rank, s)


def matrix_power(A, n, *, out=None):
    refuse_out('linalg.matrix_power', out)
    _square('matrix_power', A)
    return _la().matrix_power(A, n)


def matrix_exp(A):
    _square('matrix_exp', A)
    from chainrule.scipy import linalg as sla
    return sla.expm(A)


def cross(input, other, *, dim=-1, out=None):
    refuse_out('linalg.cross', out)
    import chainrule.numpy as cnp
    return cnp.cross(input, other, axis=dim)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False, out=None):
    refuse_out('linalg.matrix_rank', out)
    r = _la().matrix_rank(A.data if isinstance(A, Tensor) else A, hermitian=hermitian,
                          rtol=rtol, tol=atol)
    return Tensor(np.asarray(r, np.int64))


def cond(A, p=None, *, out=None):
    refuse_out('linalg.cond', out)
    return _la().cond(A, p)


def multi_dot(tensors, *, out=None):
    refuse_out('linalg.multi_dot', out)
    return _la().multi_dot(list(tensors))


def vecdot(x, y, *, dim=-1, out=None):
    """The dot product of vectors along `dim`, conjugating `x` (PyTorch's)."""
    refuse_out('linalg.vecdot', out)
    import chainrule.numpy as cnp
    from chainrule import ops
    return cnp.sum(ops.conj(x) * y, axis=dim)


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    import chainrule.numpy as cnp
    return cnp.diagonal(A, offset=offset, axis1=dim1, axis2=dim2)


def solve_triangular(A, B, *, upper, left=True, unitriangular=False, out=None):
    """X with `A X = B` (`X A = B` with `left=False`) for a triangular A (the other triangle is
    not read)."""
    refuse_out('linalg.solve_triangular', out)
    from chainrule import ops
    from chainrule.scipy import linalg as sla
    if not left:
        mt = lambda m: ops.transpose(m, tuple(range(len(m.shape) - 2)) + (  # noqa: E731
            len(m.shape) - 1, len(m.shape) - 2))
        return mt(solve_triangular(mt(A), mt(B), upper=not upper, unitriangular=unitriangular))
    return sla.solve_triangular(A, B, lower=not upper, unit_diagonal=unitriangular)


def tensorinv(A, ind=2, *, out=None):
    refuse_out('linalg.tensorinv', out)
    return _la().tensorinv(A, ind=ind)


def tensorsolve(A, B, dims=None, *, out=None):
    refuse_out('linalg.tensorsolve', out)
    return _la().tensorsolve(A, B, axes=dims)


def _guard_all():
    # every function behind the PyTorch face's boundary (`chainrule/_torch_errors.py`): a
    # singular matrix raises `LinAlgError`, an integer matrix a `DTypeError`, NumPy's errors
    # come back as chainrule's naming the function and its arguments
    from chainrule._torch_errors import guard
    for name in __all__:
        if name != 'LinAlgError':
            globals()[name] = guard('linalg.' + name, globals()[name])


_guard_all()
