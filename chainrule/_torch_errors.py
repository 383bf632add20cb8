"""Bad input to `Tensor`'s PyTorch face gets a chainrule error, never NumPy's.

What this module lets you do: `guard(name, fn)` is `fn` (a method of the PyTorch face,
`self` first) behind one boundary. Every method and top-level function of the face
(`chainrule/_torch_face.py`, `_torch_methods.py`, `_torch_functions.py`) is installed through
it, so the checks below hold for all ~700 names at once instead of one check per function:

- a Python or NumPy exception escaping from inside (a wrong number of arguments, an unknown
  keyword, shapes that do not broadcast, a dtype NumPy has no loop for, an index out of range,
  a singular matrix) is raised again as the chainrule error of the same family (`ArgumentError`,
  `ShapeError`, `DTypeError`, `IndexOutOfRangeError`, `DimError`, `LinAlgError`), whose message
  names the op, what NumPy said, every array argument's name, shape and dtype, and what to do;
  the original stays attached as `__cause__`;
- the dtypes PyTorch refuses on purpose are refused before any work (`DTYPES`: `mean` of an
  integer tensor, `det` of a bool one, `argmax` of a bool one, ...), where NumPy would return an
  answer PyTorch code does not expect.

On the normal path the boundary costs one `try` (free in CPython 3.11+) and, for the names in
`DTYPES`, one dtype-kind test.
"""

import inspect
import re

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, DTypeError, IndexOutOfRangeError, ShapeError
from chainrule._args import ArgumentError
from chainrule.tensor import Tensor

_BOOL = np.dtype(np.bool_)

__all__ = ['LinAlgError', 'guard', 'translate', 'DTYPES']


class LinAlgError(ChainruleError, np.linalg.LinAlgError):
    """A linear-algebra routine cannot complete on its input (a singular matrix in `inv` or
    `solve`, a matrix that is not positive definite in `cholesky`): PyTorch's
    `torch.linalg.LinAlgError`; also NumPy's `LinAlgError` (and so a `ValueError`)."""


# PyTorch refuses these dtypes of `self` on purpose (checked against PyTorch 2.13 in
# tests/test_torch_bad_input.py); NumPy would compute something. Kinds are NumPy's: 'b' bool,
# 'iu' integers.
_FLOATING = ('mean nanmean std var norm dist softmax log_softmax logcumsumexp logaddexp '
             'logaddexp2 hypot igamma igammac lerp quantile nanquantile det logdet slogdet '
             'inverse cholesky cholesky_inverse cholesky_solve qr svd pinverse matrix_exp '
             'triangular_solve renorm frac hardshrink histc histogram frexp nextafter '
             'prelu').split()
_NOT_BOOL = ('abs absolute ceil floor trunc fix argmax argmin kthvalue median nanmedian '
             'matmul mm bmm mv dot vdot inner addmm addmv addbmm baddbmm trace addcmul '
             'addcdiv relu bitwise_left_shift bitwise_right_shift cov corrcoef sub subtract '
             'positive topk round mvlgamma').split()
# torch.linalg's functions take floating-point (or complex) matrices only
_FLOATING += ['linalg.' + n for n in (
    'norm vector_norm matrix_norm inv solve det slogdet eigh eigvalsh eig eigvals svd svdvals '
    'cholesky qr pinv lstsq matrix_exp matrix_rank cond solve_triangular tensorinv '
    'tensorsolve').split()]
# PyTorch refuses these when both operands are booleans
_BOTH_BOOL = ('floor_divide', 'fmod', 'remainder', 'pow')
DTYPES = {**{n: ('iub', 'a floating-point (or complex)') for n in _FLOATING},
          **{n: ('b', 'a numeric (not bool)') for n in _NOT_BOOL}}


def _describe(x):
    shape = getattr(x, 'shape', None)
    if shape is not None and hasattr(x, 'dtype'):
        kind = type(x).__name__ if type(x).__name__ != 'ndarray' else 'array'
        return f'{kind} of shape {tuple(shape)}, {np.dtype(x.dtype).name}'
    if isinstance(x, (list, tuple)) and x and all(hasattr(a, 'shape') for a in x):
        return (f'{type(x).__name__} of {len(x)} arrays of shapes '
                f'{", ".join(str(tuple(a.shape)) for a in x)}')
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + '...'


def _arguments(fn, args, kwargs):
    """'input: Tensor of shape (3, 4), float64; other: ...' for the call, argument names from
    `fn`'s signature where it has one."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
        named = []
        for k, v in bound.items():
            if isinstance(v, tuple) and k not in kwargs:     # *args
                named += [(f'{k}[{i}]', a) for i, a in enumerate(v)]
            elif isinstance(v, dict) and k not in kwargs:    # **kwargs
                named += list(v.items())
            else:
                named.append((k, v))
    except (TypeError, ValueError):
        named = [(f'argument {i}', a) for i, a in enumerate(args)] + list(kwargs.items())
    return '; '.join(f'{"input" if k == "self" else k}: {_describe(v)}' for k, v in named)


def _signature(name, fn):
    try:
        sig = str(inspect.signature(fn))
    except (TypeError, ValueError):
        return ''
    if sig.startswith('(*args, **kwargs)'):
        return ''
    return f' (its signature: {name}{re.sub(r"^[(][A-Za-z_]+", "(input", sig)})'


_BINDING = re.compile(r'(positional argument|keyword argument|required (positional|keyword)|'
                      r'got multiple values|takes no arguments|takes \d|unexpected keyword)')
_DTYPE = re.compile(r'(ufunc|dtype|numpy boolean|not supported for the input types|'
                    r'casting|Cannot cast|data type)', re.I)
_BROADCAST = re.compile(r'broadcast|shape mismatch|operands could not', re.I)


def translate(name, exc, fn, args, kwargs):
    """The chainrule error to raise for `exc`, which escaped from `fn(*args, **kwargs)`, the
    implementation of the PyTorch-face op `name`."""
    msg = str(exc).strip() or type(exc).__name__
    # a Python message names the private function: say the op's name instead
    msg = re.sub(r'^[\w.<>]+[(][)] ', f'{name}() ', msg)
    if not msg.startswith(name):
        msg = f'{name}(): {msg}'
    given = f' Given {_arguments(fn, args, kwargs)}.'
    if isinstance(exc, TypeError) and _BINDING.search(msg):
        return ArgumentError(f'{msg}.{_signature(name, fn)} Pass the arguments PyTorch\'s '
                             f'{name} takes, by its names.')
    if isinstance(exc, np.linalg.LinAlgError):
        what = ('the matrix is singular (not invertible): check it, or use a least-squares '
                'solution (cr.linalg.lstsq) or the pseudo-inverse (cr.linalg.pinv)'
                if 'ingular' in msg else
                'cholesky needs a symmetric positive-definite matrix: check that it is one '
                '(its eigenvalues are positive), or add a small multiple of the identity'
                if 'definite' in msg else 'check the matrix')
        return LinAlgError(f'{msg}.{given} {what[0].upper()}{what[1:]}.')
    if isinstance(exc, np.exceptions.AxisError) or (isinstance(exc, IndexError) and
                                                     'dimension' in msg.lower()):
        from chainrule._torch_common import DimError
        return DimError(f'{msg}.{given} Pass a dim in [-ndim, ndim) of the input.')
    if isinstance(exc, ValueError) and _BROADCAST.search(msg):
        return ShapeError(f'{msg}.{given} The shapes must broadcast (each trailing dimension '
                          'equal, or 1 in one of them): reshape, unsqueeze or expand one '
                          'argument.')
    if isinstance(exc, (TypeError, IndexError)) and _DTYPE.search(msg):
        return DTypeError(f'{msg}.{given} Convert the argument to a dtype the op takes '
                          '(.double()/.float() for floating point, .long() for integers, '
                          '.bool() for booleans).')
    if isinstance(exc, IndexError):
        return IndexOutOfRangeError(f'{msg}.{given} Indices must lie in [-size, size) of '
                                    'the dimension they index.')
    if isinstance(exc, ValueError) and ('empty' in msg or 'zero-size' in msg):
        return ShapeError(f'{msg}.{given} The input has no elements along the dimension '
                          'reduced: reduce a non-empty input, or over another dim.')
    if isinstance(exc, ValueError) and 'shape' in msg.lower():
        return ShapeError(f'{msg}.{given}')
    return ArgumentError(f'{msg}.{given}')


def refuse_dtype(name, x, kinds, what):
    if np.dtype(x.dtype).kind in kinds:
        raise DTypeError(f'{name}(): input has dtype {np.dtype(x.dtype).name}, but {name} '
                         f'needs {what} input (PyTorch refuses it too): convert it first, '
                         'e.g. ' + (f'cr.{name}(x.double(), ...)' if '.' in name else
                                    f'x.double().{name}(...)'))


def _name_op(name, exc, fn, args, kwargs):
    """A chainrule error from a primitive inside `name` (`div` inside `addcdiv`) names the op
    the user called too, with its arguments."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str) and \
            not re.match(rf'(linalg[.])?{re.escape(name)}\b', exc.args[0]):
        exc.args = (f'{name}(): {exc.args[0]} (Given {_arguments(fn, args, kwargs)}.)',)


_FOREIGN = (TypeError, ValueError, LookupError, ArithmeticError)


# PyTorch's keyword names for arguments chainrule's implementations take by position (or
# under NumPy's name): keyword -> position after the input, with the default that fills a
# gap (REQUIRED: none). `x.pow(exponent=2)`, `x.flip(dims=(0,))`, `x.diagonal(dim1=0, dim2=1)`.
REQUIRED = object()
_D = ((('dims', REQUIRED),), ('flip', 'tile', 'permute'))
TORCH_KEYWORDS = {
    **{n: (('exponent', REQUIRED),) for n in ('pow', 'float_power')},
    'heaviside': (('values', REQUIRED),), 'mm': (('mat2', REQUIRED),),
    **{n: _D[0] for n in _D[1]},
    'expand': (('size', REQUIRED),), 'repeat': (('repeats', REQUIRED),),
    'new_zeros': (('size', REQUIRED),), 'new_ones': (('size', REQUIRED),),
    'new_empty': (('size', REQUIRED),),
    'new_full': (('size', REQUIRED), ('fill_value', REQUIRED)),
    'diagonal': (('offset', 0), ('dim1', 0), ('dim2', 1)),
    'swapaxes': (('axis0', REQUIRED), ('axis1', REQUIRED)),
    **{n: (('split_size', REQUIRED),) for n in ('split', 'unsafe_split')},
}


def _positional(name, spec, args, kwargs):
    """`args`/`kwargs` with PyTorch's keywords in `spec` moved to their positions."""
    if not any(k in kwargs for k, _ in spec):
        return args, kwargs
    args = list(args)
    for i, (k, default) in enumerate(spec, start=1):
        if k not in kwargs:
            continue
        if len(args) > i:
            raise ArgumentError(f'{name}(): got {k} both by position and by keyword')
        while len(args) < i:
            d = spec[len(args) - 1][1]
            if d is REQUIRED:
                raise ArgumentError(f'{name}(): missing {spec[len(args) - 1][0]} (given '
                                    f'{k}=)')
            args.append(d)
        args.append(kwargs.pop(k))
    return tuple(args), kwargs


def _refused(kinds):
    """The dtypes of these NumPy kinds, as a set (membership is one hash lookup)."""
    return frozenset(np.dtype(c) for c in np.typecodes['All']
                     if c not in 'MmOSUV' and np.dtype(c).kind in kinds)


def _dtype(x):
    return x.data.dtype if isinstance(x, Tensor) else np.asarray(x).dtype \
        if not hasattr(x, 'dtype') else x.dtype


def guard(name, fn, unary=False, float_of_bool=False):
    """`fn` (self first) behind the boundary described at the top of this module. `unary`:
    `fn` takes the input only (the wrapper checks that, so there is one frame, not two);
    `float_of_bool`: a bool input is first made the default float dtype (PyTorch's `exp` of a
    bool tensor is floating; NumPy's would be float16)."""
    base = name[:-1] if name.endswith('_') else name
    kinds, what = DTYPES.get(base, ('', ''))
    spec = TORCH_KEYWORDS.get(base)
    if spec:
        inner = fn

        def fn(*args, **kwargs):
            if kwargs:
                args, kwargs = _positional(name, spec, args, kwargs)
            return inner(*args, **kwargs)
        fn.__name__, fn.__doc__, fn.__wrapped__ = name, inner.__doc__, inner
    refused = _refused(kinds)

    if unary:
        checks = bool(refused) or float_of_bool

        def method(self, *args, **kwargs):
            if args or kwargs:
                raise ArgumentError(f'{name}() takes only the input, got {len(args)} more '
                                    f'positional and {sorted(kwargs)} keyword argument(s) '
                                    f'(its signature: {name}(input))')
            if checks:
                try:
                    d = self.data.dtype
                except AttributeError:          # (a traced value, not a Tensor)
                    d = self.dtype
                if d in refused:
                    refuse_dtype(name, self, kinds, what)
                if float_of_bool and d is _BOOL:
                    self = ops.astype(self, np.float64)
            try:
                return fn(self)
            except ChainruleError as e:
                _name_op(name, e, fn, (self,), {})
                raise
            except _FOREIGN as e:
                raise translate(name, e, fn, (self,), {}) from e
    elif base in _BOTH_BOOL:
        def method(self, *args, **kwargs):
            other = args[0] if args else kwargs.get('other', kwargs.get('exponent'))
            if _dtype(self) is _BOOL and (isinstance(other, bool) or
                                          getattr(other, 'dtype', None) == np.bool_):
                raise DTypeError(f'{name}(): both operands are bool (PyTorch refuses it too): '
                                 f'convert one first, e.g. x.long().{name}(...)')
            try:
                return fn(self, *args, **kwargs)
            except ChainruleError as e:
                _name_op(name, e, fn, (self,) + args, kwargs)
                raise
            except _FOREIGN as e:
                raise translate(name, e, fn, (self,) + args, kwargs) from e
    elif not refused:
        def method(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ChainruleError as e:
                _name_op(name, e, fn, args, kwargs)
                raise
            except _FOREIGN as e:
                raise translate(name, e, fn, args, kwargs) from e
    else:
        def method(self, *args, **kwargs):
            if _dtype(self) in refused:      # (a slot read and a set lookup: cheap)
                refuse_dtype(name, self, kinds, what)
            try:
                return fn(self, *args, **kwargs)
            except ChainruleError as e:
                _name_op(name, e, fn, (self,) + args, kwargs)
                raise
            except _FOREIGN as e:
                raise translate(name, e, fn, (self,) + args, kwargs) from e
    method.__name__ = method.__qualname__ = name
    method.__doc__ = fn.__doc__
    if not unary:
        method.__wrapped__ = fn        # inspect.signature(method) is fn's
    return method
