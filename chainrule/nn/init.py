"""Parameter initialisers, each with an explicit seed.

What this module lets you do: draw initial weights reproducibly. Every function takes `rng`: an
int seed, a `numpy.random.Generator`, or `None` for the default generator (seeded with
`manual_seed`, like `torch.manual_seed`). Functions return NumPy arrays (float32 unless `dtype=`
says otherwise); the `_`-suffixed forms fill a `Tensor` in place, as PyTorch's do.

    >>> from chainrule.nn import init
    >>> w = init.kaiming_uniform((3, 4), rng=0)
    >>> w.shape, w.dtype, bool(abs(w).max() <= 0.5)         # bound 1/sqrt(fan_in) = 1/2
    ((3, 4), dtype('float32'), True)

The gains and bounds are PyTorch's, so a layer initialised here has the same distribution as
its PyTorch twin (not the same numbers: the generators differ).
"""

import contextvars
import math

import numpy as np

__all__ = ['manual_seed', 'get_rng', 'uniform', 'normal', 'zeros', 'ones', 'xavier_uniform',
           'xavier_normal', 'kaiming_uniform', 'kaiming_normal', 'calculate_gain',
           'uniform_', 'normal_', 'zeros_', 'ones_', 'xavier_uniform_', 'kaiming_uniform_',
           'xavier_normal_', 'kaiming_normal_', 'constant_', 'trunc_normal_', 'eye_']

_default = contextvars.ContextVar('chainrule_init_rng', default=None)


def manual_seed(seed):
    """Seed the default generator used when an initialiser gets `rng=None`.

    Args:
        seed: an int.

    Returns:
        The new `numpy.random.Generator`.
    """
    g = np.random.default_rng(seed)
    _default.set(g)
    return g


def get_rng(rng=None):
    """A `numpy.random.Generator` from `None` (the default one, seeded by `manual_seed`) or
    anything `np.random.default_rng` accepts: an int seed, a sequence of ints, a
    `SeedSequence`, a `BitGenerator` or a `Generator`."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (bool, np.bool_)):     # a flag passed where a seed goes (seed 0 or 1)
        raise TypeError(f'rng={rng!r} is not a seed: pass None, an int, a SeedSequence, a '
                        'BitGenerator or a numpy.random.Generator')
    if rng is not None:
        try:
            return np.random.default_rng(rng)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f'rng={rng!r:.40} is not accepted ({e}); pass None (the generator seeded by '
                'chainrule.nn.init.manual_seed), an int seed, a sequence of ints, a '
                'numpy.random.SeedSequence, a BitGenerator or a numpy.random.Generator') \
                from None
    g = _default.get()
    if g is None:
        g = manual_seed(None)
    return g


def _draw(rng):
    """The generator an initialiser draws from: `get_rng(rng)`, staged while `jit` traces
    when it is a generator with state (not a fixed seed: that gives the same numbers at every
    call, traced or not), so `jit` feeds it fresh bits at every call."""
    from chainrule.random._staged import generator
    g = get_rng(rng)
    if rng is None:
        return generator(g, get_rng)
    return generator(g, rng) if isinstance(rng, np.random.Generator) else g


def _fans(shape):
    """PyTorch's fan-in and fan-out: `(out, in, *kernel)` -> `(in * k, out * k)`."""
    if len(shape) < 2:
        raise ValueError(f'fan in and fan out need at least 2 dimensions, got shape {shape}')
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """PyTorch's recommended gain for a nonlinearity ('linear', 'relu', 'tanh', 'leaky_relu',
    'sigmoid', 'selu')."""
    if nonlinearity in ('linear', 'conv2d', 'sigmoid'):
        return 1.0
    if nonlinearity == 'tanh':
        return 5.0 / 3
    if nonlinearity == 'relu':
        return math.sqrt(2.0)
    if nonlinearity == 'leaky_relu':
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == 'selu':
        return 3.0 / 4
    raise ValueError(f'calculate_gain: unknown nonlinearity {nonlinearity!r}')


def uniform(shape, low=0.0, high=1.0, rng=None, dtype=np.float32):
    """Samples of U(low, high)."""
    return _draw(rng).uniform(low, high, size=shape).astype(dtype)


def normal(shape, mean=0.0, std=1.0, rng=None, dtype=np.float32):
    """Samples of N(mean, std^2)."""
    return (_draw(rng).standard_normal(size=shape) * std + mean).astype(dtype)


def zeros(shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def ones(shape, dtype=np.float32):
    return np.ones(shape, dtype)


def xavier_uniform(shape, gain=1.0, rng=None, dtype=np.float32):
    """Glorot: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    b = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -b, b, rng, dtype)


def xavier_normal(shape, gain=1.0, rng=None, dtype=np.float32):
    """Glorot: N(0, s^2) with s = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng, dtype)


def kaiming_uniform(shape, a=math.sqrt(5), nonlinearity='leaky_relu', rng=None,
                    dtype=np.float32):
    """He: U(-b, b) with b = gain * sqrt(3 / fan_in). The default `a = sqrt(5)` is PyTorch's
    default for `Linear` and `Conv2d` weights, which makes b = 1 / sqrt(fan_in)."""
    fan_in, _ = _fans(shape)
    b = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan_in)
    return uniform(shape, -b, b, rng, dtype)


def kaiming_normal(shape, a=0.0, nonlinearity='relu', rng=None, dtype=np.float32):
    """He: N(0, s^2) with s = gain / sqrt(fan_in)."""
    fan_in, _ = _fans(shape)
    return normal(shape, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan_in), rng, dtype)


def _fill(tensor, values):
    from chainrule.tensor import no_grad
    with no_grad():
        tensor.data[...] = values
        tensor._version[0] += 1
    return tensor


def uniform_(tensor, low=0.0, high=1.0, rng=None):
    """Fill `tensor` in place with U(low, high) samples."""
    return _fill(tensor, uniform(tensor.shape, low, high, rng, tensor.dtype))


def normal_(tensor, mean=0.0, std=1.0, rng=None):
    """Fill `tensor` in place with N(mean, std^2) samples."""
    return _fill(tensor, normal(tensor.shape, mean, std, rng, tensor.dtype))


def zeros_(tensor):
    return _fill(tensor, 0)


def ones_(tensor):
    return _fill(tensor, 1)


def xavier_uniform_(tensor, gain=1.0, rng=None):
    return _fill(tensor, xavier_uniform(tensor.shape, gain, rng, tensor.dtype))


def kaiming_uniform_(tensor, a=math.sqrt(5), nonlinearity='leaky_relu', rng=None):
    return _fill(tensor, kaiming_uniform(tensor.shape, a, nonlinearity, rng, tensor.dtype))


def xavier_normal_(tensor, gain=1.0, rng=None):
    return _fill(tensor, xavier_normal(tensor.shape, gain, rng, tensor.dtype))


def kaiming_normal_(tensor, a=0.0, mode='fan_in', nonlinearity='leaky_relu', rng=None):
    """PyTorch's `kaiming_normal_` (its defaults: `a=0`, `mode='fan_in'`, leaky_relu's gain with
    slope 0, which is relu's): N(0, s^2) with s = gain / sqrt(fan)."""
    fan_in, fan_out = _fans(tensor.shape)
    if mode not in ('fan_in', 'fan_out'):
        raise ValueError(f"kaiming_normal_: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == 'fan_in' else fan_out
    return _fill(tensor, normal(tensor.shape, 0.0, calculate_gain(nonlinearity, a) /
                                math.sqrt(fan), rng, tensor.dtype))


def constant_(tensor, val):
    return _fill(tensor, val)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, rng=None):
    """N(mean, std^2) restricted to [a, b] (redrawing the samples that fall outside)."""
    g = get_rng(rng)
    out = np.empty(tensor.shape)
    todo = np.ones(tensor.shape, bool)
    while todo.any():
        out[todo] = mean + std * g.standard_normal(int(todo.sum()))
        todo = (out < a) | (out > b)
    return _fill(tensor, out.astype(tensor.dtype))


def eye_(tensor):
    if len(tensor.shape) != 2:
        raise ValueError(f'eye_: the tensor must be 2-D, got shape {tuple(tensor.shape)}')
    return _fill(tensor, np.eye(*tensor.shape, dtype=tensor.dtype))
