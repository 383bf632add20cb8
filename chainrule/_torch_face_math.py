"""`Tensor`'s PyTorch face, math methods: `clamp`, `pow`, `softmax(dim)`, `log_softmax(dim)`,
`mm`/`bmm`, and the `UNARY` table (`exp`, `sigmoid`, `relu`, `erf`, ...), whose in-place `_`
forms `_torch_face` installs."""

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
    out = self
    if min is not None:
        out = _same_dtype(cnp.where(ops.less(out, min), min, out), self)
    if max is not None:
        out = _same_dtype(cnp.where(ops.greater(out, max), max, out), self)
    return out


def pow_(self, exponent):
    return self ** exponent


def softmax(self, dim, dtype=None):
    x = self if dtype is None else ops.astype(self, dtype)
    return _F().softmax(x, _norm_dim('softmax', dim, tuple(self.shape)))


def log_softmax(self, dim, dtype=None):
    x = self if dtype is None else ops.astype(self, dtype)
    return _F().log_softmax(x, _norm_dim('log_softmax', dim, tuple(self.shape)))


def _checked_matmul(name, nd):
    def method(self, other):
        if len(self.shape) != nd or len(other.shape) != nd:
            raise ShapeError(f'{name}(): expects {nd}-D Tensors, got shapes {tuple(self.shape)}'
                             f' and {tuple(other.shape)}')
        return ops.matmul(self, other)
    method.__name__ = method.__qualname__ = name
    return method


UNARY = {
    # (rsqrt and reciprocal as powers: their in-place forms then overwrite the argument that
    # the rule saved first, which the in-place machinery keeps a copy of)
    'exp': ops.exp, 'log': ops.log, 'sqrt': ops.sqrt, 'rsqrt': lambda x: x ** -0.5,
    'sigmoid': lambda x: _F().sigmoid(x), 'tanh': ops.tanh, 'relu': lambda x: _F().relu(x),
    'abs': ops.abs, 'neg': ops.neg, 'negative': ops.neg, 'reciprocal': lambda x: x ** -1.0,
    'sin': ops.sin, 'cos': ops.cos, 'square': lambda x: x * x, 'exp2': lambda x: 2.0 ** x,
    'log2': lambda x: _cnp().log2(x), 'log10': lambda x: _cnp().log10(x),
    'log1p': lambda x: _cnp().log1p(x), 'expm1': lambda x: _cnp().expm1(x),
    'tan': lambda x: _cnp().tan(x), 'floor': lambda x: _cnp().floor(x),
    'ceil': lambda x: _cnp().ceil(x), 'sign': lambda x: _cnp().sign(x),
    'trunc': lambda x: _cnp().trunc(x), 'erf': lambda x: _F().erf(x),
}
