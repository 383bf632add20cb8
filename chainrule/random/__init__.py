"""Random numbers for functional and jitted code: explicit keys, as JAX's `jax.random`.

What you can do with it: draw random numbers in code that `jit` compiles, `vmap` batches and
`grad` differentiates, reproducibly, with no hidden state:

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import random as crr
    >>> key = crr.key(0)                      # a key is a plain uint32 array of shape (2,)
    >>> k1, k2 = crr.split(key)               # two independent keys; never reuse one
    >>> crr.normal(k1, (3,)).shape, crr.uniform(k2, (2, 2), minval=-1.0, maxval=1.0).shape
    ((3,), (2, 2))
    >>> step = cr.jit(lambda k, x: x + 0.1 * crr.normal(k, x.shape))
    >>> a, b = step(k1, np.zeros(3)), step(k2, np.zeros(3))    # new key, new numbers
    >>> bool((a != b).all()), bool((step(k1, np.zeros(3)) == a).all())
    (True, True)

A key is an ordinary array, so it is a pytree leaf that passes through `jit` (as an argument),
`vmap` (a batch of keys, e.g. `split(key, 5)`, gives a batch of independent streams), `grad`
(keys and random bits carry no gradient; reparameterised samples such as `mu + sigma *
normal(k)` differentiate in `mu` and `sigma`), `lax.scan` (carry a key or `fold_in` the step),
export/load, and anything that stores arrays. The same key always gives the same numbers: to
get new numbers, `split` the key or `fold_in` a counter, and use each key once.

The generator is Threefry-2x32 with 20 rounds (Random123's counter-based hash, checked against
its published known-answer vectors), written as one vectorised primitive,
`threefry2x32` (`chainrule.random._threefry`); every sampler here is a composite of it and
`chainrule.numpy` operations. Keys, `split`, `fold_in`, `bits` and `uniform` give the same
numbers as JAX's default (partitionable) Threefry implementation; the normal and derived
distributions use other transformations (Box-Muller; Wichura's AS241 quantile for
`truncated_normal`), so their numbers differ from JAX's while their distributions agree.

Randomness inside `jit` from chainrule's own eager generator (`cr.randn`, `cr.rand`,
`cr.randint`, `cr.randperm`, `cr.normal`, `nn.Dropout`, `F.dropout`, `nn.init`) is not frozen
either: `jit` draws it through hidden key inputs that it fills with fresh bits from that
generator at every call (`chainrule.random._staged`), so a jitted training step with dropout
gets a new mask each call, and `cr.manual_seed(s)` makes jitted runs reproducible. NumPy's own
generators (`np.random.*`, a `np.random.Generator`) cannot be staged: `jit` raises
`FrozenRandomnessError` when tracing consumed them. `grad` and `vmap` run the function at
every call, so any generator works there (under `vmap`, one draw serves the whole batch;
`chainrule.func.vmap` takes PyTorch's `randomness=`: 'error', the default, raises
`RandomnessError`, 'same' shares one draw, 'different' draws per example).
"""

import math
import operator

import numpy as np

from chainrule import ops
from chainrule.core import DTypeError, ShapeError, Tracer, dtype_of, shape_of
from chainrule.random._staged import FrozenRandomnessError, RandomnessError
from chainrule.random._threefry import threefry2x32, threefry2x32_p

__all__ = ['key', 'PRNGKey', 'split', 'fold_in', 'bits', 'random_bits', 'uniform', 'normal',
           'truncated_normal', 'bernoulli', 'categorical', 'gumbel', 'exponential', 'randint',
           'permutation', 'choice', 'threefry2x32_p', 'FrozenRandomnessError', 'RandomnessError']

_U32 = np.dtype(np.uint32)
_U64 = np.dtype(np.uint64)


def _cnp():
    import chainrule.numpy as cnp
    return cnp


# --- keys --------------------------------------------------------------------------------------

def _check_key(k, op):
    """`k` as a key: a uint32 array (or traced value) of shape (2,)."""
    if getattr(k, '_is_tensor', False):
        k = k.data
    if not isinstance(k, Tracer):
        k = np.asarray(k)
    if tuple(shape_of(k)) != (2,) or dtype_of(k) != _U32:
        hint = (' (a batch of keys: map over it with cr.vmap)' if tuple(shape_of(k))[-1:] == (2,)
                and dtype_of(k) == _U32 else '')
        raise ShapeError(f'random.{op}: the key must be a uint32 array of shape (2,) as '
                         f'chainrule.random.key(seed) makes, got {dtype_of(k)} of shape '
                         f'{tuple(shape_of(k))}{hint}')
    return k


def _shape(shape, op):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise ShapeError(f'random.{op}: shape must be a tuple of ints, got {shape!r}') from None
    if any(s < 0 for s in shape):
        raise ShapeError(f'random.{op}: shape {shape} has a negative size')
    return shape


def _to_u32(x):
    """An integer (or traced integer) as uint32, modulo 2^32."""
    if isinstance(x, Tracer) or getattr(x, '_is_tensor', False):
        return ops.astype(x, _U32) if dtype_of(x) != _U32 else x
    return np.uint32(int(x) % 2 ** 32)


def key(seed):
    """A key from an integer seed (as `jax.random.key` / `PRNGKey`): the seed's 64 bits as two
    uint32 words, high word first. `key(0)` is `[0, 0]`.

    Args:
        seed: a Python or NumPy integer (negative ones are taken modulo 2^64), or a traced
            0-d integer array.

    Returns:
        A uint32 array of shape (2,).
    """
    if isinstance(seed, Tracer) or getattr(seed, '_is_tensor', False):
        if shape_of(seed) != () or np.dtype(dtype_of(seed)).kind not in 'iu':
            raise DTypeError(f'random.key: the seed must be a 0-d integer, got '
                             f'{dtype_of(seed)} of shape {shape_of(seed)}')
        s = ops.astype(seed, _U64)      # int64 -> uint64 wraps, as NumPy's astype
        return _cnp().stack([ops.astype(ops.floor_divide(s, 2 ** 32), _U32),
                             ops.astype(s, _U32)])
    if isinstance(seed, np.ndarray) and seed.shape == () and seed.dtype.kind in 'iu':
        seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise DTypeError(f'random.key: the seed must be an integer, got {seed!r:.60}')
    s = int(seed) % 2 ** 64
    return np.array([s >> 32, s & 0xFFFFFFFF], dtype=_U32)


PRNGKey = key


def split(key, num=2):
    """`num` new keys from `key` (`num` may be a shape): `split(key, 3)` has shape (3, 2).
    The i-th new key is the hash of counter i under `key`, so `split(key, n)[i]` equals
    `fold_in(key, i)`; the parent key should not be used again."""
    k = _check_key(key, 'split')
    return threefry2x32(k, np.uint32(0), _shape(num, 'split'))


def fold_in(key, data):
    """A new key from `key` and an integer `data` (modulo 2^32), e.g. a step number (which may
    be traced, inside `jit` or `lax.scan`): the hash of counter `data` under `key`."""
    k = _check_key(key, 'fold_in')
    if tuple(shape_of(data)) != ():
        raise ShapeError(f'random.fold_in: data must be a scalar, got shape {shape_of(data)}')
    return threefry2x32(k, _to_u32(data), ())


# --- raw bits ----------------------------------------------------------------------------------

def random_bits(key, bit_width=32, shape=()):
    """Random unsigned integers of `bit_width` bits (8, 16, 32 or 64), JAX's layout: element i
    is made from the two hash words (y0, y1) of counter i, as `y0 ^ y1` (truncated to 8 or 16
    bits) or, for 64 bits, `y0 * 2^32 + y1`."""
    k = _check_key(key, 'random_bits')
    if bit_width not in (8, 16, 32, 64):
        raise ValueError(f'random.random_bits: bit_width must be 8, 16, 32 or 64, got '
                         f'{bit_width!r}')
    w = threefry2x32(k, np.uint32(0), _shape(shape, 'random_bits'))
    y0, y1 = w[..., 0], w[..., 1]
    if bit_width == 64:
        return ops.astype(y0, _U64) * (2 ** 32) + ops.astype(y1, _U64)
    x = ops.bitwise_xor(y0, y1)
    return x if bit_width == 32 else ops.astype(x, np.dtype(f'uint{bit_width}'))


def bits(key, shape=(), dtype=np.uint32):
    """Uniformly random unsigned integers of `dtype` (uint8, uint16, uint32 (default) or
    uint64; JAX in 64-bit mode defaults to uint64)."""
    dt = np.dtype(dtype)
    if dt.kind != 'u':
        raise DTypeError(f'random.bits: dtype must be an unsigned integer type, got {dt}')
    return random_bits(key, dt.itemsize * 8, shape)


# --- continuous distributions --------------------------------------------------------------------

def _float_dtype(dtype, op):
    dt = np.dtype(dtype)
    if dt.kind != 'f':
        raise DTypeError(f'random.{op}: dtype must be a floating type, got {dt}')
    return dt


def _param(v, dt):
    """A distribution parameter in the sample dtype: Python numbers stay (weak), arrays and
    traced values are cast when their dtype differs."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    if not isinstance(v, Tracer) and not getattr(v, '_is_tensor', False):
        v = np.asarray(v)
    return v if dtype_of(v) == dt else ops.astype(v, dt)


def _fits(shape, op, **params):
    for name, v in params.items():
        s = tuple(shape_of(v))
        try:
            ok = np.broadcast_shapes(s, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise ShapeError(f'random.{op}: {name} of shape {s} does not broadcast to the '
                             f'sample shape {shape}')


def _unit(key, shape, dt, op):
    """Uniform on [0, 1) with every mantissa bit random, as JAX: the top `nmant` bits of a
    random word, times 2^-nmant."""
    fi = np.finfo(dt)
    nbits = fi.bits
    b = random_bits(_check_key(key, op), nbits, shape)
    m = ops.floor_divide(b, 2 ** (nbits - fi.nmant))
    return ops.astype(m, dt) * (2.0 ** -fi.nmant)


def uniform(key, shape=(), dtype=np.float64, minval=0.0, maxval=1.0):
    """Uniform samples on [minval, maxval) (on [0, 1) bit for bit JAX's for the same key and
    dtype; with other bounds to within rounding).

    Args:
        key: a key (`key(seed)`, `split`, `fold_in`).
        shape: the sample shape; `minval` and `maxval` must broadcast to it.
        dtype: a floating dtype (float64 by default, float32, float16).
        minval, maxval: the bounds; differentiable (a sample is `minval + u * (maxval -
            minval)`).
    """
    dt = _float_dtype(dtype, 'uniform')
    shape = _shape(shape, 'uniform')
    lo, hi = _param(minval, dt), _param(maxval, dt)
    _fits(shape, 'uniform', minval=lo, maxval=hi)
    u = _unit(key, shape, dt, 'uniform')
    if isinstance(minval, (int, float)) and isinstance(maxval, (int, float)) and \
            (minval, maxval) == (0.0, 1.0):
        return u
    return ops.maximum(lo, u * (hi - lo) + lo)


def normal(key, shape=(), dtype=np.float64):
    """Standard normal samples, by the Box-Muller transform of two uniforms:
    `sqrt(-2 log(1 - u1)) cos(2 pi u2)`. For other means and scales write `mu + sigma *
    normal(key, shape)`, which differentiates in `mu` and `sigma` (the reparameterisation)."""
    dt = _float_dtype(dtype, 'normal')
    shape = _shape(shape, 'normal')
    work = np.dtype(np.float32) if dt == np.float16 else dt     # float16 has too few bits
    cnp = _cnp()
    u = _unit(key, (2,) + shape, work, 'normal')
    z = cnp.sqrt(cnp.log1p(-u[0]) * -2.0) * cnp.cos(u[1] * (2 * math.pi))
    return z if work == dt else ops.astype(z, dt)


# Wichura's AS241 (Applied Statistics 37(3), 1988, 477-484): the standard normal quantile to
# about 1e-16 relative error; coefficients from lowest to highest power
_AS241 = {
    'a': (3.3871328727963666080, 1.3314166789178437745e2, 1.9715909503065514427e3,
          1.3731693765509461125e4, 4.5921953931549871457e4, 6.7265770927008700853e4,
          3.3430575583588128105e4, 2.5090809287301226727e3),
    'b': (1.0, 4.2313330701600911252e1, 6.8718700749205790830e2, 5.3941960214247511077e3,
          2.1213794301586595867e4, 3.9307895800092710610e4, 2.8729085735721942674e4,
          5.2264952788528545610e3),
    'c': (1.42343711074968357734, 4.63033784615654529590, 5.76949722146069140550,
          3.64784832476320460504, 1.27045825245236838258, 2.41780725177450611770e-1,
          2.27238449892691845833e-2, 7.74545014278341407640e-4),
    'd': (1.0, 2.05319162663775882187, 1.67638483018380384940, 6.89767334985100004550e-1,
          1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
          1.05075007164441684324e-9),
    'e': (6.65790464350110377720, 5.46378491116411436990, 1.78482653991729133580,
          2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
          2.71155556874348757815e-5, 2.01033439929228813265e-7),
    'f': (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
          7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
          2.04426310338993978564e-15),
}


def _poly(coefs, x):
    out = coefs[-1]
    for c in coefs[-2::-1]:
        out = out * x + c
    return out


def _ndtri(p):
    """The standard normal quantile of `p` in (0, 1) (AS241, all three branches computed and
    selected, so it vectorises and stages)."""
    cnp = _cnp()
    q = p - 0.5
    r = 0.180625 - q * q
    central = q * _poly(_AS241['a'], r) / _poly(_AS241['b'], r)
    t = cnp.sqrt(-cnp.log(cnp.minimum(p, 1.0 - p)))        # the distance into the nearer tail
    near = _poly(_AS241['c'], t - 1.6) / _poly(_AS241['d'], t - 1.6)
    far = _poly(_AS241['e'], t - 5.0) / _poly(_AS241['f'], t - 5.0)
    tail = cnp.where(t <= 5.0, near, far)
    return cnp.where(cnp.abs(q) <= 0.425, central, cnp.where(q < 0, -tail, tail))


def truncated_normal(key, lower, upper, shape=None, dtype=np.float64):
    """Standard normal samples conditioned on `lower < x < upper`, by the inverse CDF:
    `ndtri(uniform(Phi(lower), Phi(upper)))`. Bounds above 0 are mirrored below it, where the
    normal CDF keeps its precision; bounds beyond about 8 standard deviations into the tail lose
    it (the CDF there rounds to 0).

    Args:
        key: a key.
        lower, upper: the bounds (broadcastable to `shape`; may be infinite).
        shape: the sample shape; by default the broadcast shape of the bounds.
        dtype: a floating dtype.
    """
    dt = _float_dtype(dtype, 'truncated_normal')
    cnp = _cnp()
    lo, hi = _param(lower, dt), _param(upper, dt)
    if shape is None:
        shape = np.broadcast_shapes(tuple(shape_of(lo)), tuple(shape_of(hi)))
    shape = _shape(shape, 'truncated_normal')
    _fits(shape, 'truncated_normal', lower=lo, upper=hi)
    flip = lo > 0                       # sample -x from (-upper, -lower) instead
    a = cnp.where(flip, -hi, lo)
    b = cnp.where(flip, -lo, hi)
    phi = lambda x: (ops.nn.erf(x * (1 / math.sqrt(2))) + 1.0) * 0.5   # noqa: E731
    u = uniform(key, shape, dt, 0.0, 1.0)
    pa, pb = phi(a), phi(b)
    p = pa + u * (pb - pa)
    tiny = np.finfo(dt).tiny
    z = _ndtri(cnp.clip(p, tiny, 1.0 - np.finfo(dt).epsneg))
    z = cnp.where(flip, -z, z)
    return ops.astype(cnp.clip(z, lo, hi), dt) if dtype_of(z) != dt else cnp.clip(z, lo, hi)


def exponential(key, shape=(), dtype=np.float64):
    """Exponential samples with rate 1: `-log(1 - u)`."""
    dt = _float_dtype(dtype, 'exponential')
    return -_cnp().log1p(-uniform(key, shape, dt))


def gumbel(key, shape=(), dtype=np.float64):
    """Standard Gumbel samples: `-log(-log(u))`, u uniform on [tiny, 1)."""
    dt = _float_dtype(dtype, 'gumbel')
    cnp = _cnp()
    u = uniform(key, shape, dt, minval=float(np.finfo(dt).tiny), maxval=1.0)
    return -cnp.log(-cnp.log(u))


# --- discrete distributions ----------------------------------------------------------------------

def bernoulli(key, p=0.5, shape=None):
    """Booleans that are True with probability `p` (broadcast to `shape`, by default `p`'s
    shape): `uniform < p`."""
    cnp = _cnp()
    if shape is None:
        shape = tuple(shape_of(p))
    shape = _shape(shape, 'bernoulli')
    dt = np.dtype(dtype_of(p)) if np.dtype(dtype_of(p)).kind == 'f' else np.dtype(np.float64)
    _fits(shape, 'bernoulli', p=p)
    return cnp.less(uniform(key, shape, dt), p)


def categorical(key, logits, axis=-1, shape=None):
    """Samples of class indices from unnormalised log-probabilities, by the Gumbel-max trick:
    `argmax(logits + gumbel, axis)`.

    Args:
        key: a key.
        logits: the log-probabilities (up to a constant) along `axis`.
        axis: the class axis of `logits`.
        shape: the sample shape: the batch shape of `logits` (its shape without `axis`, the
            default) with any leading dimensions for more samples per distribution.
    """
    cnp = _cnp()
    ls = tuple(shape_of(logits))
    if not ls:
        raise ShapeError('random.categorical: logits must have at least one dimension')
    ax = axis % len(ls)
    if ls[ax] == 0:
        raise ShapeError(f'random.categorical: logits {ls} have no classes along axis {axis}')
    batch = ls[:ax] + ls[ax + 1:]
    shape = batch if shape is None else _shape(shape, 'categorical')
    if shape[len(shape) - len(batch):] != batch:
        raise ShapeError(f'random.categorical: shape {shape} must end with the batch shape '
                         f'{batch} of logits {ls} (axis {axis})')
    prefix = shape[:len(shape) - len(batch)]
    dt = np.dtype(dtype_of(logits))
    dt = dt if dt.kind == 'f' else np.dtype(np.float64)
    g = gumbel(key, prefix + ls, dt)
    return cnp.argmax(g + logits, axis=len(prefix) + ax)


def randint(key, shape, minval, maxval, dtype=np.int64):
    """Integers uniform on [minval, maxval): 64 random bits modulo the range (the bias, at
    most range / 2^64, is far below anything measurable).

    Args:
        key: a key.
        shape: the sample shape; the bounds must broadcast to it.
        minval, maxval: the bounds (integers or integer arrays, possibly traced).
        dtype: an integer dtype.
    """
    dt = np.dtype(dtype)
    if dt.kind not in 'iu':
        raise DTypeError(f'random.randint: dtype must be an integer type, got {dt}')
    shape = _shape(shape, 'randint')
    traced = any(isinstance(v, Tracer) or getattr(v, '_is_tensor', False)
                 for v in (minval, maxval))
    if not traced:
        lo, hi = np.asarray(minval, np.int64), np.asarray(maxval, np.int64)
        _fits(shape, 'randint', minval=lo, maxval=hi)
        if np.any(hi <= lo):
            raise ValueError(f'random.randint: maxval must exceed minval, got minval={minval} '
                             f'maxval={maxval}')
    else:
        lo, hi = ops.astype(minval, np.int64), ops.astype(maxval, np.int64)
        _fits(shape, 'randint', minval=lo, maxval=hi)
    span = ops.astype(hi - lo, _U64)
    r = ops.mod(random_bits(key, 64, shape), span)
    return ops.astype(ops.astype(r, np.int64) + lo, dt)


def permutation(key, x, axis=0, independent=False):
    """A random permutation of `range(x)` (for an int `x`), or of `x`'s entries along `axis`:
    a stable argsort of 64 random bits per entry.

    Args:
        key: a key.
        x: an int n, or an array (possibly traced).
        axis: the axis to shuffle.
        independent: shuffle each slice along `axis` on its own (rather than moving whole
            slices).
    """
    cnp = _cnp()
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        n = int(x)
        if n < 0:
            raise ValueError(f'random.permutation: n must be non-negative, got {n}')
        return cnp.argsort(random_bits(key, 64, (n,)), stable=True)
    s = tuple(shape_of(x))
    if not s:
        raise ShapeError('random.permutation: x must be an int or an array with at least one '
                         'dimension')
    ax = axis % len(s)
    if independent:
        order = cnp.argsort(random_bits(key, 64, s), axis=ax, stable=True)
        return cnp.take_along_axis(x, order, axis=ax)
    perm = cnp.argsort(random_bits(key, 64, (s[ax],)), stable=True)
    return cnp.take(x, perm, axis=ax)


def choice(key, a, shape=(), replace=True, p=None, axis=0):
    """Random entries of `a` (an int n means `range(n)`) along `axis`, with or without
    replacement, uniformly or with probabilities `p`.

    With replacement: uniform indices, or the inverse CDF of `p` at uniforms. Without:
    the first entries of a random permutation, or, with `p`, the top entries of
    `log p + gumbel` (the Gumbel-top-k trick: sampling without replacement in proportion to
    `p`).
    """
    cnp = _cnp()
    shape = _shape(shape, 'choice')
    if isinstance(a, (int, np.integer)) and not isinstance(a, bool):
        n, arr = int(a), None
    else:
        arr = a
        s = tuple(shape_of(a))
        if not s:
            raise ShapeError('random.choice: a must be an int or an array with at least one '
                             'dimension')
        axis = axis % len(s)
        n = s[axis]
    k = math.prod(shape)
    if n == 0 and k:
        raise ValueError('random.choice: cannot choose from an empty population')
    if not replace and k > n:
        raise ValueError(f'random.choice: cannot take {k} samples from {n} without '
                         'replacement')
    if p is not None and tuple(shape_of(p)) != (n,):
        raise ShapeError(f'random.choice: p must have shape ({n},), got {tuple(shape_of(p))}')
    if replace and p is None:
        idx = randint(key, shape, 0, n)
    elif replace:
        cdf = cnp.cumsum(p)
        u = uniform(key, shape, np.dtype(dtype_of(cdf)))
        idx = cnp.minimum(cnp.searchsorted(cdf, u * cdf[-1], side='right'), n - 1)
    elif p is None:
        idx = cnp.reshape(permutation(key, n)[:k], shape)
    else:
        g = gumbel(key, (n,), np.dtype(dtype_of(p)) if np.dtype(dtype_of(p)).kind == 'f'
                   else np.float64)
        idx = cnp.reshape(cnp.argsort(-(cnp.log(p) + g), stable=True)[:k], shape)
    if arr is None:
        return idx
    return cnp.take(arr, idx, axis=axis)
