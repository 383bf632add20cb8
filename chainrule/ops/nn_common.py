"""What the neural-network primitives (`chainrule.ops.nn_*`, `chainrule.ops.conv`,
`chainrule.ops.recurrent`) share: per-thread scratch workspaces, one matrix product for
`(..., k) @ (k, n)`, the test for a rule's NumPy fast path (`_plain`), one dtype for an impl's
arguments, and the helpers of the `vmap` rules.
"""

import math
import threading

import numpy as np

from chainrule import ops
from chainrule.core import Tracer, bind, dtype_of, shape_of


# Workspace. The im2col matrices (chainrule.ops.conv) and batch normalisation's centred
# inputs are the largest arrays of a small CNN's step and live only until the operation that
# consumes them; allocating them afresh each time costs more than filling them (each is new
# memory from the operating system: a page fault per 4 KiB). So the rules fill per-thread
# scratch arrays instead, reused from call to call; nothing in them is ever returned to a
# caller.
_scratch = threading.local()


def _filled(value, m, dtype):
    """A read-only vector of `m` entries equal to `value` (0 or 1), shared by this thread."""
    spaces = getattr(_scratch, 'filled', None)
    if spaces is None:
        spaces = _scratch.filled = {}
    key = (value, np.dtype(dtype))
    buf = spaces.get(key)
    if buf is None or buf.size < m:
        buf = spaces[key] = np.full(m, value, dtype)
        buf.flags.writeable = False
    return buf[:m]


def _workspace(name, shape, dtype):
    """A scratch array of `shape` and `dtype` for this thread, reused by the next call with the
    same `name` (its contents are overwritten by then)."""
    spaces = getattr(_scratch, 'spaces', None)
    if spaces is None:
        spaces = _scratch.spaces = {}
    size = math.prod(shape)
    buf = spaces.get((name, np.dtype(dtype)))
    if buf is None or buf.size < size:
        buf = spaces[(name, np.dtype(dtype))] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def _matmul2d(a, b):
    """`a @ b` for `a` `(..., k)` and 2-D `b` as one matrix product (NumPy would otherwise loop
    over the leading axes of `a`, one small product per row block)."""
    if a.ndim == 2:
        return np.matmul(a, b)
    return np.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[1],))


def _plain(*xs):
    """No argument is traced: a rule may then use NumPy directly (the eager backward pass,
    where Python overhead per call is the cost that matters); the chainrule-ops form of the
    same formula serves every traced case, so higher derivatives are unaffected."""
    return not any(isinstance(x, Tracer) for x in xs)


def _same_dtype(args):
    """Arrays for an impl: lists made arrays, and one dtype for all (NumPy's promotion, made
    explicit so each cotangent comes back in its own argument's dtype)."""
    args = tuple(a if isinstance(a, Tracer) else np.asarray(a) for a in args)
    dts = [dtype_of(a) for a in args]
    if len(set(dts)) > 1:
        r = np.result_type(*dts)
        args = tuple(ops.astype(a, r) for a in args)
    return args


# --- batching rules (vmap) ----------------------------------------------------------------------
# Batched arguments arrive with the vmap axis first; a rule returns (out, out_axis). The image
# ops treat their N examples independently, so the vmap axis simply merges into N.

def _batch_size(args, dims):
    return next(shape_of(a)[0] for a, d in zip(args, dims) if d is not None)


def _stacked(a, d, size):
    """`a` with the vmap axis first, broadcast along it if `a` is not batched."""
    return a if d is not None else ops.broadcast_to(a, (size,) + tuple(shape_of(a)))


def _merged_batch(prim):
    """The rule of an op on `(N, ...)` arrays whose examples are independent: vmap's axis B
    merges into N (`(B, N, ...)` -> `(B*N, ...)`), the op runs once, and the result splits."""
    def rule(args, dims, **params):
        size = _batch_size(args, dims)
        flat = []
        for a, d in zip(args, dims):
            s = shape_of(_stacked(a, d, size))
            flat.append(ops.reshape(_stacked(a, d, size), (s[0] * s[1],) + tuple(s[2:])))
        if 'shape' in params:                      # fold: the image shape grows with N
            params['shape'] = (size * params['shape'][0],) + tuple(params['shape'][1:])
        out = bind(prim, *flat, **params)
        s = shape_of(out)
        return ops.reshape(out, (size, s[0] // size) + tuple(s[1:])), 0
    return rule
