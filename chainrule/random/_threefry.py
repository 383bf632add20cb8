"""The one random primitive: the Threefry-2x32 hash of counters `start, start+1, ...` under a key.

Threefry (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3", SC 2011,
the Random123 library) is a counter-based generator: the n-th random word is a keyed hash of n,
so any word can be computed without the ones before it, and a key plus a counter is the whole
state. Threefry-2x32 maps a key of two 32-bit words and a counter of two 32-bit words to two
32-bit words in 20 rounds of add, rotate and xor (ARX), with the key injected every four rounds.
JAX uses the same function, with the same key and counter layout, so a key, `split`, `fold_in`
and the raw bits here equal JAX's (`jax_threefry_partitionable`, JAX's default since 0.5).

`threefry2x32_p(key, start, *, shape)`: `key` is `(*batch, 2)` uint32 and `start` a uint32 of
shape broadcastable with `batch`; the result is `(*batch, *shape, 2)` uint32, the hash of the
64-bit counters `start + i` (high word first) for `i` in row-major order over `shape`. The
hash is not differentiable (its outputs are constants to every transform); a batch of keys is
a batch of streams, which is all its `vmap` rule has to say; `jit` calls `impl` as it is.
"""

import math

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, bind

__all__ = ['threefry2x32_p', 'threefry2x32', 'hash_pairs']

# rotation distances of Threefry-2x32 (Random123's R_32x2), used cyclically, and the constant
# that makes the third key word of the schedule (Skein's C240 for 32-bit words)
_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)
_PARITY = np.uint32(0x1BD11BDA)
_U32 = np.uint32


# elements hashed at a time: the ~130 passes of the rounds then run on arrays that stay in the
# CPU's cache instead of streaming through memory (measured ~1.4x faster for 2e6 counters)
_CHUNK = 1 << 16


def hash_pairs(k0, k1, x0, x1, rounds=20):
    """Threefry-2x32 with `rounds` rounds on broadcastable uint32 arrays: key `(k0, k1)`,
    counter `(x0, x1)`. Returns `(y0, y1)`, new arrays of the broadcast shape. Random123's
    layout: a key injection before the first round and after every fourth, the i-th adding
    `ks[i % 3]`, `ks[(i + 1) % 3] + i`."""
    k0 = np.asarray(k0, _U32)
    k1 = np.asarray(k1, _U32)
    shape = np.broadcast_shapes(k0.shape, k1.shape, np.shape(x0), np.shape(x1))
    n = math.prod(shape)
    if n > 2 * _CHUNK:
        flat = [np.broadcast_to(a, shape).reshape(-1) for a in (k0, k1, x0, x1)]
        y0 = np.empty(n, _U32)
        y1 = np.empty(n, _U32)
        for i in range(0, n, _CHUNK):
            part = slice(i, i + _CHUNK)
            y0[part], y1[part] = _hash(*(a[part] for a in flat), rounds)
        return y0.reshape(shape), y1.reshape(shape)
    return _hash(k0, k1, x0, x1, rounds)


def _hash(k0, k1, x0, x1, rounds):
    ks = (k0, k1, k0 ^ k1 ^ _PARITY)
    shape = np.broadcast_shapes(k0.shape, k1.shape, np.shape(x0), np.shape(x1))
    y0 = np.empty(shape, _U32)
    y1 = np.empty(shape, _U32)
    np.add(x0, k0, out=y0, dtype=_U32, casting='unsafe')     # uint32 arithmetic wraps mod 2^32
    np.add(x1, k1, out=y1, dtype=_U32, casting='unsafe')
    t = np.empty(shape, _U32)
    for r in range(rounds):
        rot = _ROTATIONS[r % 8]
        y0 += y1                                           # x0 += x1
        np.left_shift(y1, _U32(rot), out=t)                # x1 = rotl(x1, rot) ^ x0
        y1 >>= _U32(32 - rot)
        y1 |= t
        y1 ^= y0
        if r % 4 == 3:
            i = r // 4 + 1
            y0 += ks[i % 3]
            y1 += ks[(i + 1) % 3]
            y1 += _U32(i)
    return y0, y1


def _impl(key, start, *, shape):
    key = np.asarray(key)
    start = np.asarray(start)
    if key.dtype != _U32 or start.dtype != _U32 or key.shape[-1:] != (2,):
        raise ShapeError(f'threefry2x32: the key must be uint32 of shape (..., 2) and start '
                         f'uint32, got key {key.dtype}{list(key.shape)}, start '
                         f'{start.dtype}{list(start.shape)}')
    batch = np.broadcast_shapes(key.shape[:-1], start.shape)
    lead = (Ellipsis,) + (None,) * len(shape)
    n = math.prod(shape)
    # the 64-bit counters start + i, as (high, low) words; i runs over `shape` row-major
    c = start.astype(np.uint64)[lead] + np.arange(n, dtype=np.uint64).reshape(shape)
    hi = (c >> np.uint64(32)).astype(_U32)
    lo = c.astype(_U32)                                    # the low 32 bits
    y0, y1 = hash_pairs(key[..., 0][lead], key[..., 1][lead], hi, lo)
    out = np.empty(batch + tuple(shape) + (2,), _U32)
    out[..., 0] = y0
    out[..., 1] = y1
    return out


def _shape_rule(key, start, *, shape):
    return tuple(np.broadcast_shapes(key.shape[:-1], start.shape)) + tuple(shape) + (2,), \
        np.dtype(_U32)


def _batch(args, dims, *, shape):
    """A batch of keys (or of starts) is a batch of streams. The batched arguments carry the
    batch axis first; the others get a leading axis of 1, and both get ones after it up to a
    common rank, so the impl's broadcasting pairs example with example."""
    key, start = args
    kb = len(ops.shape_of(key)) - 1 - (dims[0] is not None)      # per-example batch ranks
    sb = len(ops.shape_of(start)) - (dims[1] is not None)
    r = max(kb, sb)

    def lift(x, d, own):
        s = ops.shape_of(x)
        if d is None:
            return ops.reshape(x, (1,) * (r - own + 1) + tuple(s))
        return ops.reshape(x, s[:1] + (1,) * (r - own) + tuple(s[1:]))
    return bind(threefry2x32_p, lift(key, dims[0], kb), lift(start, dims[1], sb),
                shape=shape), 0


threefry2x32_p = Primitive('threefry2x32', _impl, vjp=None, shape=_shape_rule, batch=_batch,
                           doc='Threefry-2x32 (20 rounds) of the counters start + i under key')


def threefry2x32(key, start, shape):
    """The `(*batch, *shape, 2)` uint32 hash words of counters `start + i` under `key`."""
    return bind(threefry2x32_p, key, start, shape=tuple(int(s) for s in shape))
