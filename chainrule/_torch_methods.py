"""More of `Tensor`'s PyTorch face: the everyday `torch.Tensor` methods beyond the core set of
`chainrule/_torch_face.py` -- arithmetic and comparison by name (`add(other, alpha=)`, `eq`,
`gt`, ...), `maximum`/`minimum`, hyperbolic and inverse trigonometric functions, special
functions (`lgamma`, `digamma`, `erfinv`, ...), `lerp`/`addmm`/`addcmul`, `outer`/`mv`/`kron`,
triangles and diagonals, `topk`/`median`/`kthvalue`/`mode`, cumulative extrema, indexed updates
(`index_add`, `index_fill`, `masked_scatter`, ...), and the linear algebra methods (`inverse`,
`det`, `slogdet`, `cholesky`, `qr`, `svd`, ...).

Every method here is a composite of chainrule.numpy functions and primitives -- no derivative
code -- so it differentiates with `backward()`, and runs inside `grad`, `vmap` and `jit` (the
few that must look at values, such as `unique` or `mode`'s indices, say so and refuse a traced
input with a `ConcretizationError`). The tables below are the whole inventory:

- `ELEMENTWISE`: one-argument functions, each with an in-place `name_` form;
- `BINARY`: two-argument functions `x.name(other)`, each with an in-place form;
- `METHODS`: the rest (keyword arguments, several results);
- `INPLACE`: the in-place forms of `METHODS` entries.

`chainrule/_torch_functions.py` makes each of them a top-level function too (`cr.NAME(input,
...)`), as PyTorch has both.
"""

import builtins
import collections

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, DTypeError, GradientError, ShapeError, Tracer
from chainrule.ops.structural_shape import sum_to_shape
from chainrule.tensor import Tensor
from chainrule._torch_errors import guard
from chainrule._torch_face import clamp as _clamp
from chainrule._torch_face import (_BOOL, _FLOAT_OF_BOOL, _cnp, _inplace, _norm_dim, _same_dtype,
                                   _tensor)
from chainrule._torch_common import (_as_float, _concrete, _data, _float_of, _la, _scalar_like,
                                     _sp)
from chainrule._torch_shape import (_np_split, adjoint, broadcast_to, diag, diag_embed,
                                    diagflat, diagonal_scatter, fliplr, flipud, index_add,
                                    index_copy, index_fill, index_put, masked_scatter, movedim,
                                    msort, narrow_copy, nonzero_static, put, rot90,
                                    scatter_reduce, select, select_scatter, slice_scatter,
                                    split_with_sizes, swapdims, take_along_dim, tensor_split,
                                    tril, triu)
from chainrule._torch_stats import (_cum_extremum, _nan_reduction, aminmax, allclose, argwhere,
                                    bernoulli, bincount, corrcoef, count_nonzero, cov, diff,
                                    equal, frexp, histc, isclose, kthvalue, logcumsumexp,
                                    median, mode, multinomial, nanmedian, nanquantile, quantile,
                                    renorm, topk, unique, unique_consecutive)


# --- elementwise: one argument ------------------------------------------------------------------

def _sgn(x):
    if np.dtype(x.dtype).kind == 'c':
        a = ops.abs(x)
        return _cnp().where(ops.equal(a, 0), 0, x / _cnp().where(ops.equal(a, 0), 1, a))
    return x if x.dtype == np.bool_ else _cnp().sign(x)


def _logit(x, eps=None):
    if eps is not None:
        x = _cnp().clip(x, eps, 1 - eps)
    return ops.log(x / (1 - x))


def _nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    return _same_dtype(_cnp().nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf), x)


def _hardshrink(x, lambd=0.5):
    return _cnp().where(ops.greater(ops.abs(x), lambd), x, np.zeros((), x.dtype))


ELEMENTWISE = {
    'absolute': ops.abs, 'positive': lambda x: x,
    'acos': ops.arccos, 'arccos': ops.arccos, 'asin': ops.arcsin, 'arcsin': ops.arcsin,
    'atan': ops.arctan, 'arctan': ops.arctan, 'acosh': ops.arccosh, 'arccosh': ops.arccosh,
    'asinh': ops.arcsinh, 'arcsinh': ops.arcsinh, 'atanh': ops.arctanh, 'arctanh': ops.arctanh,
    'cosh': ops.cosh, 'sinh': ops.sinh,
    'deg2rad': lambda x: _cnp().deg2rad(_as_float(x)),
    'rad2deg': lambda x: _cnp().rad2deg(_as_float(x)),
    'sinc': lambda x: _cnp().sinc(x),
    'fix': lambda x: _cnp().trunc(x), 'frac': lambda x: x - _cnp().trunc(x),
    'sgn': _sgn,
    'lgamma': lambda x: _sp().gammaln(x), 'digamma': lambda x: _sp().digamma(x),
    'erfc': lambda x: _sp().erfc(x), 'erfinv': lambda x: _sp().erfinv(x),
    'i0': lambda x: _sp().i0(x),
    'logit': _logit, 'nan_to_num': _nan_to_num, 'hardshrink': _hardshrink,
    'angle': lambda x: _cnp().angle(x) if np.dtype(x.dtype).kind == 'c' else _same_dtype(
        _cnp().where(ops.less(x, 0), np.pi, 0.0) + 0 * x, _as_float(x)),
    'conj_physical': lambda x: ops.conj(x) if np.dtype(x.dtype).kind == 'c' else x,
    'resolve_conj': lambda x: x, 'resolve_neg': lambda x: x,
    # predicates: boolean results, no gradient
    'isnan': ops.isnan, 'isfinite': ops.isfinite, 'isinf': ops.isinf,
    'isposinf': lambda x: ops.logical_and(ops.isinf(x), ops.greater(x, 0)),
    'isneginf': lambda x: ops.logical_and(ops.isinf(x), ops.less(x, 0)),
    'isreal': lambda x: ops.equal(ops.imag(x), 0) if np.dtype(x.dtype).kind == 'c'
    else ops.equal(x, x) | ops.isnan(x),
    'signbit': lambda x: _signbit(x),
    'logical_not': ops.logical_not, 'bitwise_not': ops.invert,
}

# in-place forms are PyTorch's for these (predicates have none: their result is boolean)
_NO_INPLACE = {'absolute', 'positive', 'isnan', 'isfinite', 'isinf', 'isposinf', 'isneginf',
               'isreal', 'signbit', 'sgn', 'conj_physical', 'resolve_conj', 'resolve_neg',
               'hardshrink', 'sinc', 'lgamma', 'digamma', 'erfinv', 'erfc', 'i0'}
_INPLACE_ANYWAY = {'sgn', 'sinc', 'lgamma', 'digamma', 'erfinv', 'erfc', 'i0', 'logical_not',
                   'bitwise_not', 'conj_physical'}


def _signbit(x):
    d = _data(x)
    if not isinstance(d, Tracer):
        return _tensor(np.signbit(np.asarray(d)), x) if isinstance(x, Tensor) else np.signbit(d)
    # traced: x < 0, or a negative zero (1/x = -inf), nan's sign bit aside
    return ops.logical_or(ops.less(x, 0), ops.logical_and(ops.equal(x, 0),
                                                          ops.less(1.0 / x, 0)))


# --- elementwise: two arguments -----------------------------------------------------------------

def _add(x, other, alpha=1):
    return x + (other if alpha == 1 else _scalar_like(alpha, x) * other)


def _sub(x, other, alpha=1):
    return x - (other if alpha == 1 else _scalar_like(alpha, x) * other)


def _div(x, other, rounding_mode=None):
    if rounding_mode is None:
        return ops.div(_as_float(x), other)
    if rounding_mode == 'trunc':
        return _same_dtype(_cnp().trunc(ops.div(x, other)), x) \
            if np.dtype(x.dtype).kind in 'fc' else _same_dtype(
                _cnp().trunc(ops.div(_as_float(x), other)), x)
    if rounding_mode == 'floor':
        return ops.floor_divide(x, other)
    raise ValueError(f"div(): rounding_mode must be None, 'trunc' or 'floor', got "
                     f'{rounding_mode!r}')


def _fmod(x, other):
    """C's fmod: the remainder has the dividend's sign (x - trunc(x / y) y)."""
    # (integer arithmetic only when both are integers: a Python float divisor makes floats)
    other_kind = np.dtype(other.dtype).kind if hasattr(other, 'dtype') else \
        'f' if isinstance(other, float) else 'i'
    if np.dtype(x.dtype).kind in 'iu' and other_kind in 'iub':
        return _same_dtype(x - _cnp().trunc(ops.div(x, other)).astype(x.dtype) * other, x)
    return x - _cnp().trunc(ops.div(x, other)) * other


def _copysign(x, other):
    x = _as_float(x)            # PyTorch: copysign of integers or bools is floating
    sb = _signbit(other if isinstance(other, (Tensor, Tracer)) else np.asarray(other))
    return _cnp().where(sb, -ops.abs(x), ops.abs(x))


def _heaviside(x, values):
    return _cnp().heaviside(x, values)


def _xlogy(x, other):
    return _sp().xlogy(x, other)


def _float_power(x, other):
    x = ops.astype(x, np.complex128 if np.dtype(x.dtype).kind == 'c' else np.float64)
    return ops.power(x, other if isinstance(other, (Tensor, Tracer)) else
                     np.asarray(other, np.float64))


def _concrete_binary(name, npfn):
    def fn(x, other):
        out = npfn(_concrete(x, name), _concrete(other, name))
        return _tensor(out, x) if isinstance(x, Tensor) else out
    return fn


BINARY = {
    'add': _add, 'sub': _sub, 'subtract': _sub,
    'mul': ops.mul, 'multiply': ops.mul,
    'div': _div, 'divide': _div, 'true_divide': lambda x, y: ops.div(_as_float(x), y),
    'floor_divide': ops.floor_divide, 'remainder': ops.mod, 'fmod': _fmod,
    'eq': ops.equal, 'ne': ops.not_equal, 'not_equal': ops.not_equal,
    'gt': ops.greater, 'greater': ops.greater, 'ge': ops.greater_equal,
    'greater_equal': ops.greater_equal, 'lt': ops.less, 'less': ops.less,
    'le': ops.less_equal, 'less_equal': ops.less_equal,
    'maximum': ops.maximum, 'minimum': ops.minimum,
    'fmax': lambda x, y: _cnp().fmax(x, y), 'fmin': lambda x, y: _cnp().fmin(x, y),
    'atan2': lambda x, y: ops.arctan2(_as_float(x), y),
    'arctan2': lambda x, y: ops.arctan2(_as_float(x), y),
    'hypot': lambda x, y: _cnp().hypot(x, y),
    'logaddexp': lambda x, y: _cnp().logaddexp(x, y),
    'logaddexp2': lambda x, y: _cnp().logaddexp2(x, y),
    'xlogy': _xlogy, 'copysign': _copysign, 'heaviside': _heaviside,
    'float_power': _float_power,
    'ldexp': lambda x, y: x * ops.power(np.asarray(2.0, _float_of(x)), y),
    'igamma': lambda x, y: _sp().gammainc(x, y), 'igammac': lambda x, y: _sp().gammaincc(x, y),
    'logical_and': ops.logical_and, 'logical_or': ops.logical_or,
    'logical_xor': ops.logical_xor,
    'bitwise_and': ops.bitwise_and, 'bitwise_or': ops.bitwise_or,
    'bitwise_xor': ops.bitwise_xor,
    'bitwise_left_shift': _concrete_binary('bitwise_left_shift', np.left_shift),
    'bitwise_right_shift': _concrete_binary('bitwise_right_shift', np.right_shift),
    'gcd': _concrete_binary('gcd', np.gcd), 'lcm': _concrete_binary('lcm', np.lcm),
    'nextafter': _concrete_binary('nextafter', np.nextafter),
}

# results whose dtype is not the input's (comparisons, float promotion): no in-place form
_BINARY_NO_INPLACE = {'logaddexp', 'logaddexp2', 'bitwise_left_shift', 'bitwise_right_shift',
                      'float_power', 'maximum', 'minimum', 'fmax', 'fmin', 'greater',
                      'greater_equal', 'less', 'less_equal', 'igamma', 'igammac'}


def _elementwise(name, fn):
    if name in _FLOAT_OF_BOOL:
        def method(self, *args, **kwargs):
            if self.dtype is _BOOL:
                self = ops.astype(self, np.float64)
            return fn(self, *args, **kwargs)
        method.__name__ = method.__qualname__ = name
        method.__wrapped__ = fn
        return method

    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__wrapped__ = fn
    return method


def _binary(name, fn):
    def method(self, other, *args, **kwargs):
        if isinstance(other, (list, tuple)):
            other = np.asarray(other)
        return fn(self, other, *args, **kwargs)
    method.__name__ = method.__qualname__ = name
    method.__wrapped__ = fn
    return method


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


# --- predicates on the Tensor itself --------------------------------------------------------------

def _F():
    from chainrule.nn import functional
    return functional


def histogram(self, bins=100, *, range=None, weight=None, density=False):
    """`(hist, bin_edges)`, NumPy's `histogram` of the values (no gradient)."""
    a = _concrete(self, 'histogram')
    w = None if weight is None else _concrete(weight, 'histogram')
    b = _concrete(bins, 'histogram') if isinstance(bins, Tensor) else bins
    h, e = np.histogram(a, bins=b, range=range, weights=w, density=density)
    out = collections.namedtuple('histogram', ['hist', 'bin_edges'])
    return out(_tensor(h.astype(a.dtype), self), _tensor(e.astype(a.dtype), self))


def _kind_pred(name, kinds):
    def method(self):
        return np.dtype(self.dtype).kind in kinds
    method.__name__ = method.__qualname__ = name
    return method


def is_nonzero(self):
    if int(np.prod(self.shape)) != 1:
        raise RuntimeError(f'is_nonzero(): a Tensor of shape {tuple(self.shape)} is ambiguous; '
                           'it must have exactly one element')
    return bool(_concrete(self, 'is_nonzero').reshape(()) != 0)


class device:
    """PyTorch's `torch.device`: chainrule has one device, the CPU. `str(t.device)` is 'cpu'."""

    type = 'cpu'
    index = None

    def __init__(self, type='cpu', index=None):
        check_device(type, 'device')

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return 'cpu'

    def __eq__(self, other):
        return str(other).split(':')[0] == 'cpu' if isinstance(other, (str, device)) else \
            NotImplemented

    def __hash__(self):
        return hash('cpu')


CPU = object.__new__(device)


def check_device(dev, op):
    """Accept PyTorch's `device=` when it names the CPU (None, 'cpu', 'cpu:0', a `device`);
    anything else is refused, naming the op."""
    if dev is None or isinstance(dev, device):
        return
    if (isinstance(dev, str) or type(dev).__name__ == 'device') and \
            str(dev).split(':')[0] == 'cpu':         # 'cpu', 'cpu:0', PyTorch's device('cpu')
        return
    raise ChainruleError(f'{op}: device={dev!r} is not available; chainrule runs on the CPU '
                         "only (pass device='cpu' or leave it out)")


def cpu(self):
    return self


def sum_to_size(self, *size):
    """PyTorch's `sum_to_size(*size)`: `self` summed down to `size`, which must broadcast
    (expand) to `self`'s shape -- the adjoint of `expand(self.shape)`."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = size[0]
    size, shape = tuple(int(d) for d in size), tuple(self.shape)
    if len(size) > len(shape) or any(d != 1 and d != s for d, s in
                                     zip(size[::-1], shape[::-1])):
        raise ShapeError(f'sum_to_size(): size {size} is not expandable to the input\'s shape '
                         f'{shape} (each dimension of size must equal the input\'s or be 1, '
                         'counted from the last): pass such a size')
    return sum_to_shape(self, size)


def detach_(self):
    """PyTorch's `detach_()`: cut this Tensor from its history in place (it becomes a leaf
    that does not require grad) and return it; refused on a view, as PyTorch does."""
    from chainrule._views import _view_info
    if _view_info(self) is not None:
        raise GradientError("detach_(): can't detach a view in place; use detach() instead, "
                            'which returns a new Tensor sharing the data')
    if isinstance(self.data, Tracer):
        self.data = ops.stop_gradient(self.data)
    self._node = None
    self.requires_grad = False
    return self


# --- the tables -----------------------------------------------------------------------------------

METHODS = {
    'lerp': lerp, 'addcmul': addcmul, 'addcdiv': addcdiv, 'addmm': addmm, 'addmv': addmv,
    'addr': addr, 'baddbmm': baddbmm, 'addbmm': addbmm, 'clamp_min': clamp_min,
    'clamp_max': clamp_max, 'outer': outer, 'ger': outer, 'inner': inner, 'mv': mv,
    'vdot': vdot, 'kron': kron, 'cross': cross, 'dist': dist,
    'broadcast_to': broadcast_to, 'movedim': movedim, 'moveaxis': movedim,
    'swapdims': swapdims, 'adjoint': adjoint, 'tril': tril, 'triu': triu, 'diag': diag,
    'diag_embed': diag_embed, 'diagflat': diagflat, 'rot90': rot90, 'fliplr': fliplr,
    'flipud': flipud, 'tensor_split': tensor_split, 'hsplit': _np_split('hsplit', 1, 1),
    'vsplit': _np_split('vsplit', 0, 2), 'dsplit': _np_split('dsplit', 2, 3),
    'split_with_sizes': split_with_sizes, 'take_along_dim': take_along_dim, 'select': select,
    'msort': msort, 'select_scatter': select_scatter, 'slice_scatter': slice_scatter,
    'diagonal_scatter': diagonal_scatter, 'put': put, 'narrow_copy': narrow_copy,
    'nonzero_static': nonzero_static,
    'unsafe_chunk': lambda self, *a, **k: self.chunk(*a, **k),
    'unsafe_split': lambda self, *a, **k: self.split(*a, **k),
    'unsafe_split_with_sizes': split_with_sizes,
    'prelu': lambda self, weight: _F().prelu(self, weight),
    'histogram': histogram,
    'index_add': index_add, 'index_copy': index_copy, 'index_fill': index_fill,
    'index_put': index_put, 'masked_scatter': masked_scatter, 'scatter_reduce': scatter_reduce,
    'median': median, 'nanmedian': nanmedian, 'kthvalue': kthvalue, 'topk': topk, 'mode': mode,
    'quantile': quantile, 'nanquantile': nanquantile, 'count_nonzero': count_nonzero,
    'nansum': _nan_reduction('nansum'), 'nanmean': _nan_reduction('nanmean'),
    'aminmax': aminmax, 'cummax': _cum_extremum('cummax', 'max'),
    'cummin': _cum_extremum('cummin', 'min'), 'logcumsumexp': logcumsumexp, 'diff': diff,
    'renorm': renorm, 'cov': cov, 'corrcoef': corrcoef,
    'isclose': isclose, 'allclose': allclose, 'equal': equal,
    'unique': unique, 'unique_consecutive': unique_consecutive, 'bincount': bincount,
    'histc': histc, 'argwhere': argwhere, 'frexp': frexp, 'bernoulli': bernoulli,
    'multinomial': multinomial,
    'inverse': inverse, 'det': det, 'logdet': logdet, 'slogdet': slogdet,
    'cholesky': cholesky, 'cholesky_inverse': cholesky_inverse,
    'cholesky_solve': cholesky_solve, 'qr': qr, 'svd': svd, 'pinverse': pinverse,
    'matrix_power': matrix_power, 'matrix_exp': matrix_exp,
    'triangular_solve': triangular_solve,
    'polygamma': lambda self, n: _sp().polygamma(n, self),
    'mvlgamma': lambda self, p: _sp().multigammaln(self, p),
    'is_floating_point': _kind_pred('is_floating_point', 'f'),
    'is_complex': _kind_pred('is_complex', 'c'), 'is_signed': _kind_pred('is_signed', 'fic'),
    'is_nonzero': is_nonzero,
    'is_same_size': lambda self, other: tuple(self.shape) == tuple(other.shape),
    'is_inference': lambda self: False, 'is_conj': lambda self: False,
    'is_neg': lambda self: False, 'get_device': lambda self: -1, 'cpu': cpu,
    'is_distributed': lambda self: False, 'sum_to_size': sum_to_size, 'detach_': detach_,
}

INPLACE = {name + '_': fn for name, fn in ELEMENTWISE.items()
           if name not in _NO_INPLACE or name in _INPLACE_ANYWAY}
INPLACE.update({name + '_': fn for name, fn in BINARY.items() if name not in _BINARY_NO_INPLACE})
INPLACE.update({name + '_': METHODS[name] for name in (
    'lerp', 'addcmul', 'addcdiv', 'addmm', 'addmv', 'addr', 'baddbmm', 'addbmm', 'clamp_min',
    'clamp_max', 'tril', 'triu', 'index_add', 'index_copy', 'index_fill', 'index_put',
    'masked_scatter', 'renorm', 'polygamma', 'mvlgamma', 'scatter_reduce', 'put')})
# the in-place forms of `_torch_face`'s methods it does not install itself
INPLACE.update({'erf_': lambda x: _F().erf(x), 'negative_': ops.neg,
                'round_': lambda x, decimals=0: _cnp().round(x, decimals)})
# in-place forms that chainrule's Tensor defines itself already (with its own alpha handling)
for _n in ('add_', 'sub_', 'mul_', 'div_'):
    INPLACE.pop(_n, None)


_NUMPY_FACED = ('conj', 'diagonal', 'dot', 'ravel', 'round', 'swapaxes', 'trace', 'take')
# Tensor's own methods of PyTorch's meaning behind the same boundary (not hot paths)
_OWN = ('clone', 'detach')


def install(cls=Tensor):
    # every method behind one boundary: bad input gets a chainrule error (`_torch_errors`)
    for name, fn in ELEMENTWISE.items():
        setattr(cls, name, guard(name, _elementwise(name, fn)))
    for name, fn in BINARY.items():
        setattr(cls, name, guard(name, _binary(name, fn)))
    for name, fn in METHODS.items():
        setattr(cls, name, guard(name, fn))
    for name, fn in INPLACE.items():
        setattr(cls, name, guard(name, _inplace(name, fn)))
    # the NumPy-faced methods PyTorch also has (not hot paths) behind the same boundary
    numpy_take = cls.take

    def take(self, index, *args, **kwargs):
        if np.dtype(getattr(index, 'dtype', np.int64)).kind not in 'iu':
            raise DTypeError(f'take(): index must be an integer Tensor, got dtype '
                             f'{np.dtype(index.dtype).name} (a bool index would select as a '
                             'mask): convert it with .long(), or use masked_select for a mask')
        return numpy_take(self, index, *args, **kwargs)
    cls.take = take
    numpy_conj = cls.conj
    # PyTorch: the conjugate of a real tensor is itself (NumPy's makes int8 of bools)
    cls.conj = lambda self: numpy_conj(self) if np.dtype(self.dtype).kind == 'c' else self
    for name in _OWN:
        setattr(cls, name, guard(name, getattr(cls, name)))
    for name in _NUMPY_FACED:
        setattr(cls, name, guard(name, getattr(cls, name)))
        getattr(cls, name).numpy_faced = True     # (NumPy's meaning, PyTorch's too: 'both')
    cls.device = property(lambda self: CPU, doc="The CPU (`str(t.device) == 'cpu'`).")
    cls.is_cuda = property(lambda self: False)


install()


def names():
    """Every method name this module installs."""
    return sorted(set(ELEMENTWISE) | set(BINARY) | set(METHODS) | set(INPLACE) |
                  {'device', 'is_cuda'})
