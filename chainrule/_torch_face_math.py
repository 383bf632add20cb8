"""`Tensor`'s PyTorch face, math methods: `clamp`, `pow`, `softmax(dim)`, `log_softmax(dim)`,
`mm`/`bmm`, and the `UNARY` table (`exp`, `sigmoid`, `relu`, `erf`, ...), whose in-place `_`
forms `_torch_face` installs."""

import numpy as np

from chainrule import ops
from chainrule.core import ShapeError
from chainrule._torch_common import _cnp, _norm_dim, _same_dtype


def _F():
    from chainrule.nn import functional
    return functional


def clamp(self, min=None, max=None):
    """PyTorch's `clamp`: nan stays nan; the gradient passes where min <= x <= max. (Made of
    `where`, whose rule reads only the condition, so `clamp_` needs no copy of the old values.)"""
    if min is None and max is None:
        raise ValueError('clamp(): at least one of min and max must be given')
    cnp = _cnp()
    # the result dtype is PyTorch's promotion of input and bounds: an integer tensor clamped to
    # float bounds gives floats (the bounds are not truncated to integers)
    kind = np.dtype(self.dtype).kind
    if kind in 'biu':
        bounds = [getattr(b, 'dtype', b) for b in (min, max) if b is not None]
        target = np.result_type(self.dtype, *bounds)
        if target.kind == 'f' and not any(hasattr(b, 'dtype') for b in (min, max)):
            target = np.dtype(np.float64)     # (a Python float: the default float dtype)
        if target != self.dtype:
            self = ops.astype(self, target)
    out = self
    if min is not None:
        out = _same_dtype(cnp.where(ops.less(out, min), min, out), self)
    if max is not None:
        out = _same_dtype(cnp.where(ops.greater(out, max), max, out), self)
    return out


def pow_(self, exponent):
    return self ** exponent


def _softmax(name):
    def method(self, dim, dtype=None):
        x = self if dtype is None else ops.astype(self, dtype)
        d = _norm_dim(name, dim, tuple(self.shape))
        if not self.shape:              # a 0-d input: one entry (PyTorch accepts dim 0 / -1)
            return ops.reshape(getattr(_F(), name)(ops.reshape(x, (1,)), 0), ())
        return getattr(_F(), name)(x, d)
    method.__name__ = method.__qualname__ = name
    return method


softmax, log_softmax = _softmax('softmax'), _softmax('log_softmax')


def _checked_matmul(name, nd):
    def method(self, other):
        if len(self.shape) != nd or len(other.shape) != nd:
            raise ShapeError(f'{name}(): expects {nd}-D Tensors, got shapes {tuple(self.shape)}'
                             f' and {tuple(other.shape)}')
        return ops.matmul(self, other)
    method.__name__ = method.__qualname__ = name
    return method


_BOOL = np.dtype(np.bool_)
# the functions whose value is floating: of a bool input PyTorch gives the default float dtype
_FLOAT_OF_BOOL = set('exp log sqrt rsqrt sigmoid tanh reciprocal sin cos exp2 log2 log10 log1p '
                     'expm1 tan erf acos arccos asin arcsin atan arctan acosh arccosh asinh '
                     'arcsinh atanh arctanh cosh sinh deg2rad rad2deg sinc lgamma digamma erfc '
                     'erfinv i0 logit'.split())

UNARY = {
    # (rsqrt and reciprocal as powers: their in-place forms then overwrite the argument that
    # the rule saved first, which the in-place machinery keeps a copy of)
    'exp': ops.exp, 'log': ops.log, 'sqrt': ops.sqrt, 'rsqrt': lambda x: x ** -0.5,
    'sigmoid': lambda x: _F().sigmoid(x), 'tanh': ops.tanh, 'relu': lambda x: _F().relu(x),
    'abs': ops.abs, 'neg': ops.neg, 'negative': ops.neg, 'reciprocal': lambda x: x ** -1.0,
    'sin': ops.sin, 'cos': ops.cos, 'exp2': lambda x: 2.0 ** x,
    # (the square of bools is int64, their sign themselves: PyTorch's)
    'square': lambda x: x * x if x.dtype != np.bool_ else ops.astype(x, np.int64) ** 2,
    'log2': lambda x: _cnp().log2(x), 'log10': lambda x: _cnp().log10(x),
    'log1p': lambda x: _cnp().log1p(x), 'expm1': lambda x: _cnp().expm1(x),
    'tan': lambda x: _cnp().tan(x), 'floor': lambda x: _cnp().floor(x),
    'ceil': lambda x: _cnp().ceil(x),
    'sign': lambda x: x if x.dtype == np.bool_ else _cnp().sign(x),
    'trunc': lambda x: _cnp().trunc(x), 'erf': lambda x: _F().erf(x),
}
