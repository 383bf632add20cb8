"""Operators and array methods for every tracer type, defined once.

`install(cls)` gives a class NumPy's operators (`+ - * / ** @`, comparisons, unary `- + abs ~`)
and the common array methods (`sum`, `reshape`, `T`, ...), all routed through chainrule's
wrappers, so the same rule set serves `Tensor`, the reverse-mode tracer, the forward-mode tracer
and the staging tracer. `Tensor` then overrides the names PyTorch defines with PyTorch's meaning
(`chainrule/_torch_face.py`), on its own class only.
"""

import numpy as np

from chainrule import ops


def _rev(fn):
    return lambda self, other: fn(other, self)


OPERATORS = {
    '__add__': ops.add, '__radd__': _rev(ops.add),
    '__sub__': ops.sub, '__rsub__': _rev(ops.sub),
    '__mul__': ops.mul, '__rmul__': _rev(ops.mul),
    '__truediv__': ops.div, '__rtruediv__': _rev(ops.div),
    '__pow__': ops.power, '__rpow__': _rev(ops.power),
    '__matmul__': ops.matmul, '__rmatmul__': _rev(ops.matmul),
    '__mod__': ops.mod, '__rmod__': _rev(ops.mod),
    '__floordiv__': ops.floor_divide, '__rfloordiv__': _rev(ops.floor_divide),
    '__lt__': ops.less, '__le__': ops.less_equal, '__gt__': ops.greater,
    '__ge__': ops.greater_equal, '__eq__': ops.equal, '__ne__': ops.not_equal,
    # bitwise, as NumPy's operators (on booleans the same as logical; on integers not)
    '__and__': ops.bitwise_and, '__or__': ops.bitwise_or, '__xor__': ops.bitwise_xor,
    '__rand__': _rev(ops.bitwise_and), '__ror__': _rev(ops.bitwise_or),
    '__rxor__': _rev(ops.bitwise_xor),
    '__neg__': ops.neg, '__pos__': lambda self: self, '__abs__': ops.abs,
    '__invert__': ops.invert,
    '__getitem__': ops.getitem,
}


def _ndim(self):
    return len(self.shape)


def _size(self):
    return int(np.prod(self.shape))


def _T(self):
    return ops.transpose(self)


def _mT(self):
    nd = len(self.shape)
    return ops.transpose(self, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def shape_keyword(op, keyword, shape, kwargs):
    """The shape of `x.op(*shape, **kwargs)` where `kwargs` is not empty: PyTorch's (and
    NumPy's) keyword form `x.reshape(shape=(2, 3))`, `x.view(size=(2, 3))`; any other keyword,
    or the shape given twice, is an `ArgumentError` naming the op."""
    from chainrule._args import ArgumentError
    if shape or set(kwargs) != {keyword}:
        extra = sorted(set(kwargs) - {keyword})
        raise ArgumentError(
            f'{op}(): ' + (f'unexpected keyword argument(s) {extra}' if extra else
                           f'the shape given both by position and as {keyword}=') +
            f'; its signature: {op}(*{keyword}) or {op}({keyword}=tuple). Pass the new shape '
            f'by position, x.{op}(2, 3), or as x.{op}({keyword}=(2, 3))')
    shape = kwargs[keyword]
    if not isinstance(shape, (tuple, list)):
        raise ArgumentError(f'{op}(): {keyword}= must be a tuple of ints, got '
                            f'{type(shape).__name__} (as PyTorch): pass {keyword}=({shape!r},) '
                            f'or x.{op}({shape!r})')
    return (tuple(shape),)


def _reshape(self, *shape, **kwargs):
    if kwargs:
        shape = shape_keyword('reshape', 'shape', shape, kwargs)
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = shape[0]
    return ops.reshape(self, shape)


def _transpose(self, *axes):
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = axes[0]
    return ops.transpose(self, axes or None)


def _len(self):
    if not self.shape:
        raise TypeError('len() of a 0-d array')
    return self.shape[0]


def _iter(self):
    if not self.shape:
        raise TypeError('iteration over a 0-d array')
    return (self[i] for i in range(self.shape[0]))


def _cnp(name):
    def method(self, *args, **kwargs):
        import chainrule.numpy as cnp
        if 'out' in kwargs and kwargs['out'] is None:   # np.sum(x) calls x.sum(..., out=None)
            del kwargs['out']
        return getattr(cnp, name)(self, *args, **kwargs)
    method.__name__ = name
    return method


METHODS = ['sum', 'mean', 'prod', 'max', 'min', 'var', 'std', 'cumsum', 'cumprod', 'ravel',
           'squeeze', 'swapaxes', 'clip', 'dot', 'conj', 'conjugate', 'round',
           'argmax', 'argmin', 'all', 'any', 'repeat', 'diagonal', 'trace', 'sort', 'argsort',
           'take']


# --- NumPy interoperability: np.sin(t), np.sum(t) on any tracer run chainrule.numpy's function --

_UFUNC_ALIASES = {'divide': 'true_divide', 'absolute': 'abs', 'conjugate': 'conj'}


# jit's abstract values (no `_concrete`) keep what NumPy did before tracers took part in its
# protocols: operators with an ndarray on the left still reach the tracer's reflected method, and
# any other NumPy function raises the staging tracer's own error saying to use chainrule.numpy
# inside jit (tests/test_jit.py pins it)
_OPERATOR_UFUNCS = frozenset([
    'add', 'subtract', 'multiply', 'divide', 'true_divide', 'power', 'matmul', 'remainder',
    'floor_divide', 'less', 'less_equal', 'greater', 'greater_equal', 'equal', 'not_equal',
    'bitwise_and', 'bitwise_or', 'bitwise_xor'])


def _staged(self):
    return getattr(self, '_concrete', None) is None


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    import chainrule.numpy as cnp
    if _staged(self) and ufunc.__name__ not in _OPERATOR_UFUNCS:
        return self.__array__()
    name = ufunc.__name__
    if kwargs.pop('out', None) is not None:
        from chainrule.core import ChainruleError
        raise ChainruleError(
            f'np.{name}(..., out=...) on a {type(self).__name__}: writing into an output array '
            f'is not differentiable; use the result instead (y = np.{name}(x)).')
    if method in ('reduce', 'accumulate') and len(inputs) == 1:
        # np.add.reduce(t) is np.sum(t, axis=0) (a ufunc's reduce defaults to the first axis)
        name = (_REDUCE if method == 'reduce' else _ACCUMULATE).get(name)
        kwargs.setdefault('axis', 0)
    elif method != '__call__':
        name = None
    fn = getattr(cnp, _UFUNC_ALIASES.get(name, name), None) if name else None
    if fn is None:
        return NotImplemented
    return fn(*inputs, **kwargs)


_REDUCE = {'add': 'sum', 'multiply': 'prod', 'maximum': 'max', 'minimum': 'min',
           'logical_and': 'all', 'logical_or': 'any'}
_ACCUMULATE = {'add': 'cumsum', 'multiply': 'cumprod'}


def _array_function(self, func, types, args, kwargs):
    import chainrule.numpy as cnp
    if _staged(self):
        # NumPy's own implementation, as if no override existed (`_implementation` from NumPy
        # 1.25; before, functools.wraps's `__wrapped__`)
        impl = getattr(func, '_implementation', None) or func.__wrapped__
        return impl(*args, **kwargs)
    target = cnp
    for part in (func.__module__ or '').split('.')[1:]:   # numpy.linalg.inv -> cnp.linalg.inv
        target = getattr(target, part, None)
        if target is None:
            return NotImplemented
    fn = getattr(target, func.__name__, None)
    if fn is None or fn is func:    # NumPy's own function re-exported: it would call back here
        return NotImplemented
    return fn(*args, **kwargs)


def _array(self, *args, **kwargs):
    # without this, np.asarray(tracer) (and every NumPy function that is not dispatched) made a
    # 0-d object array holding the tracer, and the derivative was silently lost
    from chainrule.core import ConcretizationError
    dtype = args[0] if args else kwargs.get('dtype')
    cast = (f' To cast it to {np.dtype(dtype)} (np.{np.dtype(dtype).type.__name__}(x) lands '
            f'here), use cnp.{np.dtype(dtype).type.__name__}(x) or x.astype(...).'
            if dtype is not None else '')
    raise ConcretizationError(
        f'np.asarray (or a NumPy function chainrule.numpy does not provide) was called on a '
        f'{type(self).__name__} of shape {tuple(self.shape)} and dtype {self.dtype}, a value '
        'that a transform (grad, jvp, vmap) is tracing: converting it to a NumPy array would '
        'lose the derivative. Use chainrule.numpy (cnp.sin(x), cnp.asarray(x)); for a value '
        f'that needs no derivative, cr.stop_gradient(x) first.{cast}')


def _to_number(self, *args):
    # float(x) / complex(x) / math.sin(x) on a traced value gave a bare TypeError in reverse mode
    # and, in forward mode, the value with its derivative silently dropped
    from chainrule.core import ConcretizationError
    raise ConcretizationError(
        f'a Python number was asked of a {type(self).__name__} of shape {tuple(self.shape)} '
        'that a transform (grad, jvp, vmap) is tracing (float(x), math.sin(x), ...): a Python '
        'number carries no derivative, so the result would be wrong. Keep it an array '
        '(chainrule.numpy: cnp.sin(x), not math.sin(x)), or use cr.stop_gradient(x) where no '
        'derivative should flow.')


def _item(self, *args):
    # x.item() / x.tolist() on a traced value: an AttributeError before
    from chainrule.core import ConcretizationError
    raise ConcretizationError(
        f'.item() / .tolist() was called on a {type(self).__name__} of shape '
        f'{tuple(self.shape)} and dtype {self.dtype} that a transform is tracing (inside jit '
        'its value does not exist yet; inside grad, jvp or vmap a Python number would carry no '
        'derivative). Keep it an array (index it: x[0]), or pass the value as a static '
        'argument of jit (static_argnums/static_argnames).')


def install(cls, skip=()):
    for name, fn in OPERATORS.items():
        if name not in skip:
            setattr(cls, name, fn)
    cls.__hash__ = object.__hash__   # __eq__ is elementwise; identity hashing, as PyTorch does
    cls.ndim = property(_ndim)
    cls.size = property(_size)
    cls.T = property(_T)
    cls.mT = property(_mT)
    cls.real = property(ops.real)
    cls.imag = property(ops.imag)
    cls.reshape = _reshape
    cls.flatten = lambda self: ops.reshape(self, (-1,))   # NumPy has no flatten function
    cls.transpose = _transpose
    cls.astype = lambda self, dtype: ops.astype(self, dtype)
    cls.__len__ = _len
    cls.__iter__ = _iter
    for name in METHODS:
        if name not in skip:
            setattr(cls, name, _cnp(name))
    cls.__array_ufunc__ = _array_ufunc
    cls.__array_function__ = _array_function
    cls.__array__ = _array
    cls.__float__ = cls.__complex__ = cls.__int__ = _to_number
    cls.item = cls.tolist = _item
