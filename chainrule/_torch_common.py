"""Helpers shared by the modules of `Tensor`'s PyTorch face (`_torch_methods`, `_torch_shape`,
`_torch_stats`): argument and value handling, the lazy imports of chainrule.numpy's linear
algebra and chainrule.scipy.special."""

import builtins
import numbers

import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, ShapeError, Tracer
from chainrule.tensor import Tensor
from chainrule._torch_face import _cnp, _norm_dim


def _sp():
    import chainrule.scipy.special as sp
    return sp


def _la():
    return _cnp().linalg


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _concrete(x, op):
    """The values of `x` as a NumPy array, for the few methods that must look at them."""
    d = _data(x)
    if isinstance(d, Tracer):
        raise ConcretizationError(f'{op}(): needs the values of its input, which are traced '
                                  'here (inside grad/vmap/jit); call it outside the transform')
    return np.asarray(d)


def _float_of(x):
    """x's dtype if floating (or complex), else the default floating dtype."""
    dt = np.dtype(x.dtype)
    return dt if dt.kind in 'fc' else np.dtype(np.float64)


def _as_float(x):
    return x if np.dtype(x.dtype).kind in 'fc' else ops.astype(x, np.float64)


def _scalar_like(v, x):
    """A Python/NumPy number as a 0-d array of x's dtype (PyTorch: a scalar takes the tensor's
    dtype); a Tensor or array stays as it is."""
    if isinstance(v, (numbers.Number, np.generic)) and not isinstance(v, builtins.bool):
        return np.asarray(v, dtype=np.result_type(x.dtype, type(v)) if isinstance(v, complex)
                          else x.dtype if np.dtype(x.dtype).kind in 'fc' else None)
    return v


def _without(shape, d):
    return shape[:d] + shape[d + 1:]


def _min_dims(op, x, n):
    if len(x.shape) < n:
        raise ShapeError(f'{op}(): input must have at least {n} dimensions, got shape '
                         f'{tuple(x.shape)}')


def _dim_or_flat(self, dim, op):
    """(x, d): with dim None the flattened input and 0."""
    if dim is None:
        return ops.reshape(self, (-1,)), 0
    return self, _norm_dim(op, dim, tuple(self.shape)) if len(self.shape) else 0
