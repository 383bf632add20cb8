"""More of `Tensor`'s PyTorch face: the everyday `torch.Tensor` methods beyond the core set of
`chainrule/_torch_face.py` -- arithmetic and comparison by name (`add(other, alpha=)`, `eq`,
`gt`, ...), `maximum`/`minimum`, hyperbolic and inverse trigonometric functions, special
functions (`lgamma`, `digamma`, `erfinv`, ...), `lerp`/`addmm`/`addcmul`, `outer`/`mv`/`kron`,
triangles and diagonals, `topk`/`median`/`kthvalue`/`mode`, cumulative extrema, indexed updates
(`index_add`, `index_fill`, `masked_scatter`, ...), and the linear algebra methods (`inverse`,
`det`, `slogdet`, `cholesky`, `qr`, `svd`, ...).

Every method here is a composite of chainrule.numpy functions and primitives -- no derivative
code -- so it differentiates with `backward()`, and runs inside `grad`, `vmap` and `jit` (the
few that must look at values, such as `unique`, say so and refuse a traced input with a
`ConcretizationError`). The tables are the whole inventory; the functions behind them live by
topic in `_torch_elementwise.py` (one and two arguments), `_torch_matrix.py` (several arguments,
linear algebra), `_torch_shape.py` and `_torch_stats.py`, and stay importable from here:

- `ELEMENTWISE`: one-argument functions, each with an in-place `name_` form;
- `BINARY`: two-argument functions `x.name(other)`, each with an in-place form;
- `METHODS`: the rest (keyword arguments, several results);
- `INPLACE`: the in-place forms of `METHODS` entries.

`chainrule/_torch_functions.py` makes each of them a top-level function too (`cr.NAME(input,
...)`), as PyTorch has both.
"""

import collections

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, DTypeError, GradientError, ShapeError, Tracer
from chainrule.ops.structural_shape import sum_to_shape
from chainrule.tensor import Tensor
from chainrule._torch_errors import guard
from chainrule._torch_face import _cnp, _inplace, _tensor
from chainrule._torch_common import _concrete, _sp
from chainrule._torch_elementwise import (BINARY, ELEMENTWISE, _BINARY_NO_INPLACE,  # noqa: F401
                                          _INPLACE_ANYWAY, _NO_INPLACE, _binary, _elementwise,
                                          _hardshrink, _logit, _nan_to_num, _sgn, _signbit)
from chainrule._torch_matrix import (_need_dims, _scaled, addbmm, addcdiv,  # noqa: F401
                                     addcmul, addmm, addmv, addr, baddbmm, cholesky,
                                     cholesky_inverse, cholesky_solve, clamp_max, clamp_min,
                                     cross, det, dist, inner, inverse, kron, lerp, logdet,
                                     matrix_exp, matrix_power, mv, norm_of, outer, pinverse,
                                     qr, slogdet, svd, triangular_solve, vdot)
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
