"""`linear(x, w, b)`: `x @ w.T + b` (PyTorch's layout) as one primitive, with NumPy fast paths
in its rules and a `vmap` rule that handles per-example weights.
"""

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, bind, shape_of
from chainrule.ops.nn_common import _batch_size, _matmul2d, _plain, _same_dtype, _stacked


# --- linear: x @ w.T + b ------------------------------------------------------------------------

def _linear_impl(x, w, *b):
    out = _matmul2d(x, w.T)
    if b:
        out += b[0]     # out is a fresh array: add the bias in place
    return out


def _linear_vjp_x(g, ans, x, w, *b):
    return _matmul2d(g, w) if _plain(g, w) else ops.matmul(g, w)


def _linear_vjp_w(g, ans, x, w, *b):
    # dL/dw = g^T x, with every leading (batch) axis of x and g summed over
    k = shape_of(w)
    if _plain(g, x):
        return np.matmul(g.reshape(-1, k[0]).T, x.reshape(-1, k[1]))
    if len(shape_of(g)) != 2:
        g, x = ops.reshape(g, (-1, k[0])), ops.reshape(x, (-1, k[1]))
    return ops.matmul(ops.transpose(g), x)


def _linear_vjp_b(g, ans, x, w, *b):
    lead = tuple(range(len(shape_of(g)) - 1))
    return g.sum(axis=lead) if _plain(g) else ops.sum(g, axis=lead)


def _linear_jvp_b(t, ans, x, w, *b):
    return ops.broadcast_to(t, shape_of(ans))


linear_p = Primitive(
    'linear', _linear_impl,
    vjp=[_linear_vjp_x, _linear_vjp_w, _linear_vjp_b],
    jvp=[lambda t, ans, x, w, *b: linear(t, w),
         lambda t, ans, x, w, *b: linear(x, t),
         _linear_jvp_b],
    doc='x @ w.T + b, PyTorch layout: w is (out_features, in_features).')


def linear(x, w, b=None):
    """`x @ w.T + b` (PyTorch's `F.linear`): `x` `(..., in)`, `w` `(out, in)`, `b` `(out,)`.

    Args:
        x: the input, any number of leading axes.
        w: the weight, shape `(out_features, in_features)`.
        b: optional bias, shape `(out_features,)`.

    Returns:
        An array of shape `(..., out_features)`.
    """
    sx, sw = shape_of(x), shape_of(w)
    if len(sw) != 2 or not sx or sx[-1] != sw[1] or (
            b is not None and shape_of(b) != (sw[0],)):
        raise ShapeError(f'linear: input {sx}, weight {sw}' +
                         (f', bias {shape_of(b)}' if b is not None else '') +
                         ' do not fit: the weight must be (out, in) with in = the last axis of '
                         'the input, and the bias (out,)')
    args = _same_dtype((x, w) if b is None else (x, w, b))
    return bind(linear_p, *args)


def _linear_batch(args, dims):
    x, w, *b = args
    if dims[1] is None and (not b or dims[2] is None):
        return bind(linear_p, *args), 0            # leading axes of x are batch axes already
    # per-example weights: one batched matrix product, (B, M, in) @ (B, in, out)
    size = _batch_size(args, dims)
    xs = _stacked(x, dims[0], size)
    sx = shape_of(xs)
    out = ops.matmul(ops.reshape(xs, (size, -1, sx[-1])),
                     ops.transpose(_stacked(w, dims[1], size), (0, 2, 1)))
    if b:
        out = out + ops.reshape(_stacked(b[0], dims[2], size), (size, 1, -1))
    return ops.reshape(out, tuple(sx[:-1]) + (shape_of(out)[-1],)), 0


linear_p.batch = _linear_batch
