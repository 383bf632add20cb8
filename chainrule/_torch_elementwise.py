"""`Tensor`'s elementwise PyTorch methods beyond the core set of `chainrule/_torch_face.py`:
the tables `ELEMENTWISE` (one argument: hyperbolic and inverse trigonometric functions, special
functions such as `lgamma`, `digamma`, `erfinv`, predicates such as `isposinf`, ...) and
`BINARY` (two arguments: arithmetic and comparison by name, `add(other, alpha=)`, `eq`, `gt`,
`maximum`, `fmod`, `xlogy`, ...), with which of them have an in-place `name_` form, and the
wrappers that make each entry a method. `chainrule/_torch_methods.py` installs them.

Every entry is a composite of chainrule.numpy functions and primitives, no derivative code.
"""

import numpy as np

from chainrule import ops
from chainrule.core import Tracer
from chainrule.tensor import Tensor
from chainrule._torch_face import _BOOL, _FLOAT_OF_BOOL, _cnp, _same_dtype, _tensor
from chainrule._torch_common import (_as_float, _concrete, _data, _float_of, _scalar_like,
                                     _sp)


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
