"""PyTorch's tensor factories and eager random numbers on `chainrule`: `cr.zeros(2, 3)`,
`cr.arange(5)`, `cr.randn(4, 4, generator=g)`, `cr.cat([a, b], dim=1)`, ...

Every factory takes `dtype=` and `requires_grad=`. Sizes are given as PyTorch's (`zeros(2, 3)`
or `zeros((2, 3))`). One difference from PyTorch: the default floating dtype is float64, the
same as `cr.tensor([1.0])` and NumPy's (PyTorch's is float32): pass `dtype=cr.float32` for
PyTorch's.

Randomness: `cr.manual_seed(s)` seeds the global generator that `rand`, `randn`, `randint`,
`randperm` and `normal` use when no `generator=` is given (and `nn.init` and dropout); `cr.Generator().manual_seed(s)` is a
local stream. Both are NumPy `Generator`s on the counter-based Philox bit generator, so one
seed gives one reproducible run; the numbers differ from PyTorch's (another algorithm).

The dtype names PyTorch users write are here too: `cr.float32`, `cr.float64`, `cr.float`
(float32), `cr.double`, `cr.half`, `cr.long`, `cr.int`, `cr.int64`, `cr.bool`, ... (NumPy dtypes).
"""

import builtins
import contextvars
import numbers

import numpy as np

from chainrule._args import ArgumentError
from chainrule.core import DTypeError, ShapeError
from chainrule.tensor import Tensor

__all__ = ['zeros', 'ones', 'full', 'empty', 'arange', 'linspace', 'eye', 'zeros_like',
           'ones_like', 'full_like', 'empty_like', 'rand', 'randn', 'randint', 'randperm',
           'normal', 'cat', 'concat', 'stack', 'manual_seed', 'Generator', 'initial_seed',
           'float32', 'float64', 'float16', 'float', 'double', 'half', 'int64', 'int32', 'int16',
           'int8', 'uint8', 'long', 'int', 'short', 'bool', 'complex64', 'complex128', 'cfloat',
           'cdouble', 'get_default_dtype', 'set_default_dtype', 'rand_like', 'randn_like',
           'randint_like', 'logspace']

float32, float64, float16 = np.float32, np.float64, np.float16
int64, int32, int16, int8, uint8 = np.int64, np.int32, np.int16, np.int8, np.uint8
complex64, complex128 = np.complex64, np.complex128
float, double, half = np.float32, np.float64, np.float16          # PyTorch's aliases
long, int, short, bool = np.int64, np.int32, np.int16, np.bool_
cfloat, cdouble = np.complex64, np.complex128

# PyTorch's default floating dtype (`get_default_dtype`/`set_default_dtype`): what the factories
# make when no dtype is given. A context variable, so a thread or task setting it does not
# change another's; chainrule's default is float64 (PyTorch's is float32). Unset until
# `set_default_dtype` is called: the `nn` layers then follow it, as PyTorch's follow torch's,
# and stay float32 (PyTorch's default) before.
_F64 = np.dtype(np.float64)
_default_dtype = contextvars.ContextVar('chainrule_default_dtype')


def get_default_dtype():
    """The floating dtype the factories (`zeros`, `rand`, `arange` with float arguments, ...)
    and `cr.tensor` of Python floats make when no `dtype=` is given: float64 unless
    `set_default_dtype` changed it."""
    return _default_dtype.get(_F64).type


def layer_dtype():
    """The dtype of the parameters of an `nn` layer built without `dtype=`: the dtype
    `set_default_dtype` set in this context, or float32 (PyTorch's default) if it was never
    called."""
    return _default_dtype.get(np.dtype(np.float32)).type


def floating_dtype(d):
    """`d` as a NumPy floating dtype, or None when it names none."""
    try:
        dt = np.dtype(d)
    except TypeError:
        return None
    return dt if dt.kind == 'f' else None


def set_default_dtype(d):
    """Set the default floating dtype (float16, float32 or float64) for the current context
    (thread or asyncio task); `cr.set_default_dtype(cr.float32)` gives PyTorch's default. The
    `nn` layers built afterwards without `dtype=` take it too, as in PyTorch."""
    dt = floating_dtype(d)
    if dt is None:
        raise TypeError(f'set_default_dtype(): only floating dtypes (float16, float32, float64) '
                        f'are supported, got {d!r}')
    _default_dtype.set(dt)


def _ragged(data):
    """'lengths 2 and 1 at dim 1' for the first ragged level of nested lists, else None."""
    level, depth = [data], 0
    while level and all(isinstance(v, (list, tuple)) for v in level):
        lengths = sorted({len(v) for v in level})
        if len(lengths) > 1:
            return f'lengths {lengths[-1]} and {lengths[0]} at dim {depth}'
        level, depth = [u for v in level for u in v], depth + 1
    if any(isinstance(v, (list, tuple)) for v in level):
        return f'both numbers and lists at dim {depth}'
    return None


def unconvertible(data, exc=None):
    """The error for `cr.tensor(data)` where `data` is no (rectangular) array of numbers: an
    `ArgumentError` (a TypeError and a ValueError, as PyTorch raises one or the other)."""
    ragged = _ragged(data) if isinstance(data, (list, tuple)) else None
    if ragged:
        return ArgumentError(f'tensor(): the nested sequences are ragged ({ragged}); a Tensor '
                             'needs every list at one depth to have the same length: pad '
                             'them, or make one Tensor per list')
    try:
        items = np.asarray(data, dtype=object).ravel()
    except (ValueError, TypeError):
        items = ()
    bad = next((v for v in items if not isinstance(v, (numbers.Number, np.generic))), data)
    why = f' ({exc})' if exc is not None else ''
    return ArgumentError(f'tensor(): cannot make a Tensor of {type(data).__name__} data '
                         f'holding a {type(bad).__name__} ({bad!r:.40}){why}; a Tensor holds '
                         'numbers or booleans only: convert the data to numbers first')


def _default_for(data):
    """The dtype to give `data` (Python numbers or nested lists) as PyTorch infers it: floats
    take the default floating dtype, complex numbers the matching complex one (None: NumPy's
    choice, and always while the default is float64, so `cr.tensor` pays nothing for it)."""
    d = _default_dtype.get(_F64)
    if d == np.float64:
        return None
    kind = np.asarray(data).dtype.kind
    if kind == 'f':
        return d
    if kind == 'c':
        return np.complex128 if d == np.float64 else np.complex64
    return None


def _size(size, op):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (builtins.int, np.integer)) or isinstance(s, builtins.bool) or s < 0:
            raise ShapeError(f'{op}(): sizes must be non-negative ints, got {size!r}')
    return tuple(builtins.int(s) for s in size)


def _make(array, requires_grad):
    return Tensor(array, requires_grad=requires_grad)


def _device(device, op):
    from chainrule._torch_methods import check_device
    check_device(device, op + '()')


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_size(size, 'zeros'), dtype or get_default_dtype()), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_size(size, 'ones'), dtype or get_default_dtype()), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    """Uninitialised in PyTorch; zeros here (as cheap, and never garbage)."""
    return _make(np.zeros(_size(size, 'empty'), dtype or get_default_dtype()), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """PyTorch's `full`: the dtype is inferred from `fill_value` (bool, int64, the default
    float or complex) unless given."""
    if dtype is None:
        dtype = np.result_type(fill_value)
        if dtype.kind == 'f':
            dtype = get_default_dtype()
    return _make(np.full(_size((size,), 'full'), fill_value, dtype), requires_grad)


def _need_shape(input, op):
    if not hasattr(input, 'shape') or not hasattr(input, 'dtype'):
        raise ArgumentError(f'{op}(): input must be a Tensor (or an array), got a '
                            f'{type(input).__name__}; for a shape use the factory itself, e.g. '
                            f'cr.{op[:-5]}(2, 3)')


def _like(fn):
    def like(input, *args, dtype=None, requires_grad=False):
        _need_shape(input, fn.__name__ + '_like')
        return fn(tuple(input.shape), *args, dtype=input.dtype if dtype is None else dtype,
                  requires_grad=requires_grad)
    like.__name__ = fn.__name__ + '_like'
    like.__doc__ = f'`{fn.__name__}` with the shape (and, by default, the dtype) of `input`.'
    return like


zeros_like, ones_like, empty_like = _like(zeros), _like(ones), _like(empty)
full_like = _like(full)


def _random_like(fn):
    def like(input, *args, dtype=None, requires_grad=False, generator=None, device=None):
        _device(device, fn.__name__ + '_like')
        _need_shape(input, fn.__name__ + '_like')
        dt = input.dtype if dtype is None else dtype
        if fn.__name__ != 'randint' and np.dtype(dt).kind not in 'fc':
            raise DTypeError(f'{fn.__name__}_like(): input has dtype {np.dtype(dt)}, and '
                             f'{fn.__name__} draws floating-point samples (PyTorch refuses it '
                             f'too): pass dtype=, e.g. cr.{fn.__name__}_like(x, '
                             'dtype=cr.float64)')
        return fn(*args, tuple(input.shape), dtype=dt, requires_grad=requires_grad,
                  generator=generator) if fn.__name__ == 'randint' else fn(
            tuple(input.shape), dtype=dt, requires_grad=requires_grad, generator=generator)
    like.__name__ = fn.__name__ + '_like'
    like.__doc__ = f'`{fn.__name__}` with the shape (and, by default, the dtype) of `input`.'
    return like


def arange(start, end=None, step=1, *, dtype=None, requires_grad=False):
    """PyTorch's `arange`: int64 for integer arguments, else the default float dtype."""
    if end is None:
        start, end = 0, start
    if step == 0 or (end - start) * step < 0:
        raise ArgumentError(f'arange(): step={step!r} never gets from start={start!r} to '
                            f'end={end!r} (PyTorch refuses it too); give a step of the sign of '
                            'end - start')
    if dtype is None:
        ints = builtins.all(isinstance(v, (builtins.int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else get_default_dtype()
    return _make(np.arange(start, end, step, dtype=dtype), requires_grad)


def linspace(start, end, steps, *, dtype=None, requires_grad=False):
    return _make(np.linspace(start, end, steps, dtype=dtype or get_default_dtype()), requires_grad)


def eye(n, m=None, *, dtype=None, requires_grad=False):
    return _make(np.eye(n, m, dtype=dtype or get_default_dtype()), requires_grad)


def cat(tensors, dim=0, *, axis=None):
    """PyTorch's `cat` (alias `concat`): join along an existing dimension."""
    import chainrule.numpy as cnp
    _sequence(tensors, 'cat')
    return cnp.concatenate(list(tensors), axis=dim if axis is None else axis)


def _sequence(tensors, op):
    if isinstance(tensors, Tensor) or not hasattr(tensors, '__iter__'):
        raise ArgumentError(f'{op}(): tensors must be a sequence of Tensors, got a '
                            f'{type(tensors).__name__}: pass [a, b, ...] (a Tensor is not split '
                            'into its rows)')


concat = cat


def stack(tensors, dim=0, *, axis=None):
    import chainrule.numpy as cnp
    _sequence(tensors, 'stack')
    return cnp.stack(list(tensors), axis=dim if axis is None else axis)


# --- eager randomness ----------------------------------------------------------------------------

class Generator:
    """A local random stream (PyTorch's `torch.Generator`): `g = cr.Generator().manual_seed(0)`
    and `cr.randn(3, generator=g)`. Philox, counter-based; reseeding restarts the stream."""

    def __init__(self, device='cpu'):
        self.manual_seed(np.random.SeedSequence().entropy % (2 ** 63))

    def manual_seed(self, seed):
        self._seed = builtins.int(seed)
        self._np = np.random.Generator(np.random.Philox(self._seed))
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return self._np.bit_generator.state

    def set_state(self, state):
        self._np.bit_generator.state = state
        return self


_global = Generator()


def manual_seed(seed):
    """Seed the global generator, PyTorch's one stream: `rand`, `randn`, ... without
    `generator=`, and `nn.init` and dropout without `rng=` (`chainrule.nn.init`'s default
    generator becomes this one). Returns it."""
    from chainrule.nn import init
    _global.manual_seed(seed)
    init._default.set(_global._np)
    return _global


def initial_seed():
    return _global.initial_seed()


def _cast(a, dtype):
    """`a` as `dtype`, without a copy when it already is; a value staged by `jit` (drawn
    through `chainrule.random`) is cast by the `astype` op."""
    if isinstance(a, np.ndarray):
        return a.astype(dtype, copy=False)
    from chainrule import ops
    return a if a.dtype == dtype else ops.astype(a, np.dtype(dtype))


def _gen(generator):
    """The NumPy generator to draw from; while `jit` traces, a staged one drawing through a
    hidden key input that `jit` fills from this generator at every call
    (`chainrule.random._staged`), so nothing random is frozen into the program."""
    from chainrule.random._staged import generator as staged
    if generator is not None:
        return staged(generator._np, generator)
    from chainrule.nn import init
    return staged(init.get_rng(), init.get_rng)


def rand(*size, generator=None, dtype=None, requires_grad=False):
    """Uniform on [0, 1)."""
    a = _gen(generator).random(_size(size, 'rand'))
    return _make(_cast(a, dtype or get_default_dtype()), requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False):
    """Standard normal."""
    a = _gen(generator).standard_normal(_size(size, 'randn'))
    return _make(_cast(a, dtype or get_default_dtype()), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, requires_grad=False):
    """PyTorch's `randint(low=0, high, size)`: integers in [low, high), int64 by default."""
    if size is None:        # randint(high, size)
        if high is None:
            raise TypeError('randint(): missing the size argument')
        low, high, size = 0, low, high
    a = _gen(generator).integers(low, high, _size((size,), 'randint'))
    return _make(_cast(a, dtype or np.int64), requires_grad)


def randperm(n, *, generator=None, dtype=None, requires_grad=False):
    return _make(_cast(_gen(generator).permutation(n), dtype or np.int64), requires_grad)


rand_like, randn_like, randint_like = (_random_like(rand), _random_like(randn),
                                       _random_like(randint))


def logspace(start, end, steps, base=10.0, *, dtype=None, requires_grad=False):
    return _make(np.logspace(start, end, steps, base=base, dtype=dtype or get_default_dtype()),
                 requires_grad)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, requires_grad=False):
    """Normal samples: with tensors `mean`/`std` their broadcast shape, else `size`."""
    m = np.asarray(mean.data if isinstance(mean, Tensor) else mean)
    s = np.asarray(std.data if isinstance(std, Tensor) else std)
    shape = _size((size,), 'normal') if size is not None else np.broadcast_shapes(m.shape,
                                                                                  s.shape)
    if np.any(s < 0):
        raise ArgumentError(f'normal(): std must be >= 0, got {s.tolist()} (PyTorch refuses it '
                            'too)')
    a = m + s * _gen(generator).standard_normal(shape)
    if dtype is None:
        dtype = np.result_type(m, s) if m.ndim or s.ndim else get_default_dtype()
        dtype = dtype if np.dtype(dtype).kind in 'fc' else get_default_dtype()
    return _make(_cast(a, dtype), requires_grad)


def _guard_all():
    # the factories behind the PyTorch face's boundary (`chainrule/_torch_errors.py`): NumPy's
    # errors (a negative size, linspace of -1 steps, randint with low >= high, an empty list to
    # cat) come back as chainrule's, naming the function and its arguments
    import inspect
    from chainrule._torch_errors import guard
    for name in __all__:
        fn = globals()[name]
        if inspect.isfunction(fn) and not name.startswith(('get_', 'set_', 'manual_seed')):
            globals()[name] = guard(name, fn)


_guard_all()
