"""`Tensor`'s PyTorch methods of several arguments and of linear algebra: `lerp`,
`addcmul`/`addcdiv`, the `addmm` family (`addmv`, `addr`, `baddbmm`, `addbmm`), `clamp_min`/
`clamp_max`, products (`outer`, `inner`, `mv`, `vdot`, `kron`, `cross`, `dist`), and `inverse`,
`det`, `logdet`, `slogdet`, `cholesky*`, `qr`, `svd` (PyTorch's `V`, not `Vh`), `pinverse`,
`matrix_power`, `matrix_exp`, `triangular_solve`. `chainrule/_torch_methods.py` installs them.

Every one is a composite of chainrule.numpy, chainrule.linalg and primitives, no derivative
code.
"""

import builtins
import collections

import numpy as np

from chainrule import ops
from chainrule.core import DTypeError, ShapeError
from chainrule.tensor import Tensor
from chainrule._torch_face import clamp as _clamp
from chainrule._torch_face import _cnp, _norm_dim, _tensor
from chainrule._torch_common import _la
from chainrule._torch_shape import adjoint


# --- several arguments ----------------------------------------------------------------------------

def _scaled(beta, x, alpha, y):
    """beta x + alpha y, as PyTorch's addmm family: beta = 0 ignores x (nan and inf too)."""
    if beta == 0:
        return y if alpha == 1 else alpha * y
    return (x if beta == 1 else beta * x) + (y if alpha == 1 else alpha * y)


def _need_dims(op, **arrays):
    for name, (a, nd) in arrays.items():
        if len(a.shape) != nd:
            raise ShapeError(f'{op}(): {name} must be {nd}-D, got shape {tuple(a.shape)}')


def lerp(self, end, weight):
    return self + weight * (end - self)


def addcmul(self, tensor1, tensor2, *, value=1):
    return self + value * tensor1 * tensor2


def addcdiv(self, tensor1, tensor2, *, value=1):
    if all(np.dtype(t.dtype).kind in 'biu' for t in (tensor1, tensor2) if hasattr(t, 'dtype')):
        raise DTypeError(f'addcdiv(): tensor1 and tensor2 are integers ({np.dtype(tensor1.dtype)}'
                         f', {np.dtype(tensor2.dtype)}): PyTorch refuses integer division here '
                         'too; convert one of them with .double(), or use addcmul with '
                         'the reciprocal')
    return self + value * tensor1 / tensor2


def addmm(self, mat1, mat2, *, beta=1, alpha=1):
    _need_dims('addmm', mat1=(mat1, 2), mat2=(mat2, 2))
    return _scaled(beta, self, alpha, ops.matmul(mat1, mat2))


def addmv(self, mat, vec, *, beta=1, alpha=1):
    _need_dims('addmv', mat=(mat, 2), vec=(vec, 1))
    return _scaled(beta, self, alpha, ops.matmul(mat, vec))


def addr(self, vec1, vec2, *, beta=1, alpha=1):
    _need_dims('addr', vec1=(vec1, 1), vec2=(vec2, 1))
    return _scaled(beta, self, alpha, outer(vec1, vec2))


def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
    _need_dims('baddbmm', batch1=(batch1, 3), batch2=(batch2, 3))
    return _scaled(beta, self, alpha, ops.matmul(batch1, batch2))


def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
    _need_dims('addbmm', batch1=(batch1, 3), batch2=(batch2, 3))
    return _scaled(beta, self, alpha, _cnp().sum(ops.matmul(batch1, batch2), axis=0))


def clamp_min(self, min):
    return _clamp(self, min=min)    # (PyTorch's promotion: float bounds on ints give floats)


def clamp_max(self, max):
    return _clamp(self, max=max)


def outer(self, vec2):
    _need_dims('outer', input=(self, 1), vec2=(vec2, 1))
    return ops.mul(ops.reshape(self, (-1, 1)), ops.reshape(vec2, (1, -1)))


def inner(self, other):
    return _cnp().inner(self, other)


def mv(self, vec):
    _need_dims('mv', input=(self, 2), vec=(vec, 1))
    return ops.matmul(self, vec)


def vdot(self, other):
    _need_dims('vdot', input=(self, 1), other=(other, 1))
    return _cnp().sum(ops.conj(self) * other)


def kron(self, other):
    return _cnp().kron(self, other)


def cross(self, other, dim=None):
    """PyTorch's `cross`: along `dim`, by default the first dimension of size 3."""
    shape = np.broadcast_shapes(tuple(self.shape), tuple(other.shape))
    if dim is None:
        dims = [i for i, s in enumerate(shape) if s == 3]
        if not dims:
            raise ShapeError(f'cross(): no dimension of size 3 in shapes {tuple(self.shape)} and '
                             f'{tuple(other.shape)}')
        dim = dims[0]
    d = _norm_dim('cross', dim, shape)
    if shape[d] != 3:
        raise ShapeError(f'cross(): dim {dim} has size {shape[d]} in the broadcast shape {shape}'
                         '; it must be 3')
    return _cnp().cross(self, other, axis=d)


def dist(self, other, p=2):
    return norm_of(self - other, p)


def norm_of(x, p):
    return x.norm(p) if isinstance(x, Tensor) else Tensor._wrap(x, None).norm(p).data


# --- linear algebra ------------------------------------------------------------------------------

def inverse(self):
    return _la().inv(self)


def det(self):
    return _la().det(self)


def logdet(self):
    s = _la().slogdet(self)
    return _cnp().where(ops.less(s.sign, 0), np.nan, s.logabsdet + ops.log(ops.abs(s.sign)))


def slogdet(self):
    s = _la().slogdet(self)
    return collections.namedtuple('slogdet', ['sign', 'logabsdet'])(s.sign, s.logabsdet)


def cholesky(self, upper=False):
    L = _la().cholesky(self)
    return adjoint(L) if upper else L


def cholesky_inverse(self, upper=False):
    L = adjoint(self) if upper else self
    return _la().inv(ops.matmul(L, adjoint(L)))


def cholesky_solve(self, input2, upper=False):
    L = adjoint(input2) if upper else input2
    return _la().solve(ops.matmul(L, adjoint(L)), self)


def qr(self, some=True):
    q, r = _la().qr(self, mode='reduced' if some else 'complete')
    return collections.namedtuple('qr', ['Q', 'R'])(q, r)


def svd(self, some=True, compute_uv=True):
    """PyTorch's `svd`: `(U, S, V)` with `V` (not `Vh`): `A = U diag(S) V^H`."""
    if not compute_uv:
        s = _la().svdvals(self)
        m, n = self.shape[-2:]
        z = np.zeros(tuple(self.shape[:-2]) + ((m, m) if not some else (m, builtins.min(m, n))),
                     self.dtype)
        z2 = np.zeros(tuple(self.shape[:-2]) + ((n, n) if not some else (n, builtins.min(m, n))),
                      self.dtype)
        return collections.namedtuple('svd', ['U', 'S', 'V'])(_tensor(z, self), s,
                                                              _tensor(z2, self))
    u, s, vh = _la().svd(self, full_matrices=not some)
    return collections.namedtuple('svd', ['U', 'S', 'V'])(u, s, adjoint(vh))


def pinverse(self, rcond=1e-15):
    return _la().pinv(self, rcond=rcond)


def matrix_power(self, n):
    if n > 1 and self.dtype == np.bool_:
        raise DTypeError('matrix_power(): a power of a bool matrix (PyTorch refuses it too): '
                         'convert it first, e.g. x.long() or x.double()')
    if n < 0 and np.dtype(self.dtype).kind not in 'fc':
        raise DTypeError(f'matrix_power(): a negative power n={n} inverts the matrix, which '
                         f'needs a floating-point input, got dtype {np.dtype(self.dtype).name} '
                         '(PyTorch refuses it too): convert it first, e.g. x.double()')
    return _la().matrix_power(self, n)


def matrix_exp(self):
    from chainrule.scipy import linalg as sla
    return sla.expm(self)


def triangular_solve(self, A, upper=True, transpose=False, unitriangular=False):
    """PyTorch's `b.triangular_solve(A)`: `(solution, A)` of A X = b (A^T X = b)."""
    from chainrule.scipy import linalg as sla
    x = sla.solve_triangular(A, self, trans=1 if transpose else 0, lower=not upper,
                             unit_diagonal=unitriangular)
    return collections.namedtuple('triangular_solve', ['solution', 'cloned_coefficient'])(
        x, A.clone() if isinstance(A, Tensor) else A)
