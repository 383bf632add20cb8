"""Helpers shared by the modules of `Tensor`'s PyTorch face (`_torch_face` and its
`_torch_face_*` parts, `_torch_methods`, `_torch_shape`, `_torch_stats`): PyTorch's argument
spelling (`dim=` or `axis=`, sizes as `f(2, 3)` or `f((2, 3))`, dims checked and normalised),
results as Tensors, value handling, and the lazy imports of chainrule.numpy, its linear algebra
and chainrule.scipy.special."""

import builtins
import collections
import numbers

import numpy as np

from chainrule import ops
from chainrule.core import ConcretizationError, ShapeError, Tracer
from chainrule._args import ArgumentError
from chainrule.tensor import Tensor

# torch.return_types.max / min / sort / topk ...: named tuples with `values` and `indices`
values_indices = collections.namedtuple('values_indices', ['values', 'indices'])


# --- argument spelling -------------------------------------------------------------------------

def _dim_arg(op, dim, axis, default=None):
    """PyTorch's `dim=` or its alias `axis=`, not both."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f'{op}(): got both dim={dim!r} and axis={axis!r}; pass one')
        return axis
    return default if dim is None else dim


def _keep_arg(keepdim, keepdims):
    return bool(keepdim or keepdims)


class DimError(ShapeError, IndexError):
    """A `dim` out of range: a `ShapeError`, and an `IndexError` as PyTorch raises."""


def _norm_dim(op, dim, ndim):
    """One dimension index in [0, ndim) (0-d tensors accept 0 and -1, as PyTorch's); `ndim`
    may be the shape itself (then the error names it)."""
    shape = None
    if isinstance(ndim, tuple):
        shape, ndim = ndim, len(ndim)
    n = builtins.max(ndim, 1)
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise ArgumentError(f'{op}(): dim must be an int, got {dim!r} ({type(dim).__name__})'
                            + (f' for a Tensor of shape {tuple(shape)}' if shape is not None
                               else '') + '; pass one dimension index, e.g. dim=-1')
    if not -n <= dim < n:
        of = f'of shape {tuple(shape)}' if shape is not None else f'with {ndim} dimension(s)'
        raise DimError(f'{op}: dim {dim} is out of range for a Tensor {of} (expected a dim in '
                       f'[{-n}, {n - 1}])')
    return int(dim) % n


def _dims(op, dim, ndim):
    """`dim` (None, an int, or a sequence of ints) as a sorted tuple of axes, None for all."""
    if dim is None:
        return None
    if isinstance(dim, (list, tuple)):
        if len(dim) == 0:
            return None          # PyTorch: an empty dim list reduces over every dimension
        out = tuple(sorted({_norm_dim(op, d, ndim) for d in dim}))
        if len(out) != len(dim):
            shape = f' of a Tensor of shape {ndim}' if isinstance(ndim, tuple) else ''
            raise ArgumentError(f'{op}(): dim {tuple(dim)}{shape} names a dimension twice '
                                '(PyTorch refuses it too); list each dimension once')
        return out
    return (_norm_dim(op, dim, ndim),)


def _axis(dims, ndim):
    """`_dims`' result as the axis of a NumPy-style reduction (0-d tensors reduce nothing)."""
    if dims is None or ndim == 0:
        return None
    return dims


def _sizes(args, op):
    """`f(2, 3)` or `f((2, 3))` or `f([2, 3])`, as PyTorch's size arguments."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    for s in args:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f'{op}(): sizes must be ints, got {args!r}')
    return tuple(int(s) for s in args)


def _tensor(out, like):
    """A result as a Tensor of `like`'s trace: the non-differentiable functions of
    chainrule.numpy (argmax, all, ...) hand back plain arrays."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, Tracer) and out._trace.level > like._trace.level:
        return out      # staged by a jit that captures `like` (see `chainrule.jit`)
    return Tensor._wrap(np.asarray(out) if isinstance(out, np.generic) else out, None,
                        like._trace)


_CNP = None


def _cnp():
    global _CNP
    if _CNP is None:
        import chainrule.numpy as cnp
        _CNP = cnp
    return _CNP


def _same_dtype(res, a):
    return res if res.dtype == a.dtype else ops.astype(res, a.dtype)


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
    return self, _norm_dim(op, dim, tuple(self.shape))
