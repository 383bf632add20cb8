"""`Tensor`'s PyTorch face, reductions over `dim=`/`keepdim=`: `sum`, `mean`, `std`/`var`
(`correction=1` by default), `max`/`min` (with a `dim`: `(values, indices)`), `argmax`,
`prod`, `cumsum`/`cumprod` (`dim` required), `logsumexp`, `norm`; and `sort`/`argsort`."""

import numpy as np

from chainrule import ops
from chainrule.core import Tracer
from chainrule.tensor import Tensor
from chainrule import _torch_common
from chainrule._torch_common import (_axis, _cnp, _dim_arg, _dims, _keep_arg, _norm_dim, _tensor,
                                     values_indices)


# a minimum of booleans is their `all`, a maximum their `any`
_BOOL_AS = {'amin': 'all', 'amax': 'any', 'min': 'all', 'max': 'any'}


def _reduce(self, name, dim, axis, keepdim, keepdims, **kw):
    """`chainrule.numpy`'s reduction `name` over PyTorch's `dim` (or `axis`)."""
    if kw.get('out', 1) is None:        # np.sum(t) calls t.sum(..., out=None)
        del kw['out']
    if axis is not None or dim is not None:
        shape = self.shape
        dim = _dim_arg(name, dim, axis)
        if type(dim) is int and shape:      # the common case, kept cheap
            axis = _norm_dim(name, dim, tuple(shape))
        elif dim == () and name in ('all', 'any'):     # PyTorch: dim=() reduces nothing here
            return ops.not_equal(self, 0) if self.dtype != np.bool_ else self
        else:
            axis = _axis(_dims(name, dim, tuple(shape)), len(shape))
    if name in _BOOL_AS and self.dtype == np.bool_:
        name = _BOOL_AS[name]
    elif name == 'prod' and kw.get('dtype') is None and np.dtype(self.dtype).kind in 'bi':
        kw['dtype'] = np.int64          # PyTorch: a product of bools or ints is int64
    cnp = _torch_common._CNP or _cnp()      # (chainrule.numpy, imported on first use)
    out = getattr(cnp, name)(self, axis=axis, keepdims=keepdim or keepdims, **kw)
    return out if type(out) is Tensor else _tensor(out, self)


def _reduction(name):
    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False, **kw):
        return _reduce(self, name, dim, axis, keepdim, keepdims, **kw)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}(dim=None, keepdim=False)` (`axis=`/`keepdims=` are '
                      'accepted as aliases).')
    return method


def logsumexp(self, dim, keepdim=False, *, axis=None, keepdims=False):
    return _reduce(self, 'logsumexp', dim, axis, keepdim, keepdims)


def prod(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=False):
    return _reduce(self, 'prod', dim, axis, keepdim, keepdims, dtype=dtype)


def _moments(name):
    def method(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
               keepdims=False, ddof=None, **kw):
        if isinstance(dim, bool):       # the overload std(unbiased: bool)
            dim, unbiased = None, dim
        given = [c for c in (unbiased, correction, ddof) if c is not None]
        if len(given) > 1:
            raise TypeError(f'{name}(): pass one of unbiased=, correction= (or ddof=)')
        corr = 1 if not given else (int(given[0]) if unbiased is None else int(bool(unbiased)))
        return _reduce(self, name, dim, axis, keepdim, keepdims, ddof=corr, **kw)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}(dim=None, *, correction=1, keepdim=False)`: the '
                      'default is the unbiased estimate (NumPy\'s `ddof=1`).')
    return method


def _arg_reduction(name):
    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        dim = _dim_arg(name, dim, axis)
        keep = _keep_arg(keepdim, keepdims)
        nd = len(self.shape)
        if dim is None:
            out = _tensor(getattr(_cnp(), name)(ops.reshape(self, (-1,))), self)
            return ops.reshape(out, (1,) * nd) if keep else out
        d = _norm_dim(name, dim, nd)
        if nd == 0:
            return _tensor(np.zeros((), np.int64), self)
        return _tensor(getattr(_cnp(), name)(self, axis=d, keepdims=keep), self)
    method.__name__ = method.__qualname__ = name
    return method


argmax = _arg_reduction('argmax')
argmin = _arg_reduction('argmin')


def _extremum(name, fn_elementwise):
    arg = _arg_reduction('arg' + name)

    def method(self, dim=None, keepdim=False, *, axis=None, keepdims=False):
        if isinstance(dim, (Tensor, np.ndarray, Tracer)):      # max(other): elementwise
            return fn_elementwise(self, dim)
        dim = _dim_arg(name, dim, axis)
        if dim is None:
            return getattr(_cnp(), _BOOL_AS[name] if self.dtype == np.bool_ else name)(self)
        keep = _keep_arg(keepdim, keepdims)
        nd = len(self.shape)
        d = _norm_dim(name, dim, nd)
        if nd == 0:
            return values_indices(self, arg(self, 0))
        idx = arg(self, d, True)
        vals = _cnp().take_along_axis(self, idx, axis=d)
        if not keep:
            vals, idx = ops.reshape(vals, _drop(self.shape, d)), ops.reshape(idx, _drop(
                self.shape, d))
        return values_indices(vals, idx)
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (f'PyTorch\'s `{name}()`: the {name}imum of all elements; `{name}(dim, '
                      'keepdim=False)`: a named tuple `(values, indices)`; `{name}(other)`: '
                      'elementwise.')
    return method


def _drop(shape, d):
    return tuple(shape[:d]) + tuple(shape[d + 1:])


def cumsum(self, dim=None, *, dtype=None, axis=None):
    dim = _dim_arg('cumsum', dim, axis)
    if dim is None:
        raise TypeError('cumsum(): missing the dim argument (PyTorch requires it; '
                        'flatten() first for a cumulative sum over every element)')
    nd = len(self.shape)
    d = _norm_dim('cumsum', dim, nd)
    out = _cnp().cumsum(self, axis=d if nd else None, dtype=dtype)
    return ops.reshape(out, ()) if nd == 0 else out


def cumprod(self, dim=None, *, dtype=None, axis=None):
    dim = _dim_arg('cumprod', dim, axis)
    if dim is None:
        raise TypeError('cumprod(): missing the dim argument (PyTorch requires it)')
    nd = len(self.shape)
    d = _norm_dim('cumprod', dim, nd)
    out = _cnp().cumprod(self, axis=d if nd else None, dtype=dtype)
    return ops.reshape(out, ()) if nd == 0 else out


def norm(self, p='fro', dim=None, keepdim=False, dtype=None):
    """PyTorch's `norm(p='fro', dim=None, keepdim=False)`: a vector norm over `dim` (all
    elements when None); 'fro' is the 2-norm of the elements, `p` may be any number, inf or
    -inf. (Matrix norms: `chainrule.numpy.linalg.norm`.)"""
    cnp = _cnp()
    x = self if dtype is None else ops.astype(self, dtype)
    dims = _axis(_dims('norm', dim, len(self.shape)), len(self.shape))
    keep = bool(keepdim)
    a = ops.abs(x)
    if p == 'fro' or p == 2:
        return ops.sqrt(cnp.sum(a * a, axis=dims, keepdims=keep))
    if p == 'nuc':
        return cnp.linalg.norm(x, 'nuc', axis=dims, keepdims=keep)
    if p == np.inf or p == float('inf'):
        return cnp.amax(a, axis=dims, keepdims=keep)
    if p == -np.inf:
        return cnp.amin(a, axis=dims, keepdims=keep)
    if p == 0:
        return cnp.sum(ops.astype(ops.not_equal(x, 0), a.dtype), axis=dims, keepdims=keep)
    if p == 1:
        return cnp.sum(a, axis=dims, keepdims=keep)
    return cnp.sum(a ** p, axis=dims, keepdims=keep) ** (1.0 / p)


def sort(self, dim=-1, descending=False, stable=False):
    """PyTorch's `sort`: a named tuple `(values, indices)` (NumPy's sorts in place)."""
    cnp = _cnp()
    nd = len(self.shape)
    d = _norm_dim('sort', dim, nd)
    if nd == 0:
        return values_indices(self, argmax(self))
    # (descending: the ascending order of -x, of not-x for booleans, which NumPy cannot negate)
    key = (ops.logical_not(self) if np.dtype(self.dtype).kind == 'b' else -self) \
        if descending else self
    idx = _tensor(cnp.argsort(key, axis=d, kind='stable'), self)
    return values_indices(cnp.take_along_axis(self, idx, axis=d), idx)


def argsort(self, dim=-1, descending=False, stable=False):
    return sort(self, dim, descending, stable).indices
