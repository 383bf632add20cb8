"""Pooling in 1, 2 and 3 dimensions, with PyTorch's options: composites, no derivative code.

What this module lets you do: max pooling with `dilation`, `ceil_mode` and the winners' flat
indices (`return_indices`), adaptive max pooling, `max_unpool`, N-d average pooling and
power-average (`lp_pool`) pooling, all built from primitives that already have every rule:

| function | built from |
|---|---|
| `max_pool(x, ...)` | the `max_pool2d` primitive (plain 1-D/2-D windows), else `argmax_pool` |
| `argmax_pool(x, taps)` | `take` (each window's taps), `argmax`, `take_along_axis` |
| `max_unpool(x, idx, ...)` | `argsort` (the last write of a repeated index), `scatter_along_axis` |
| `avg_pool(x, ...)` | `avg_pool2d` per pair of axes (sums), then PyTorch's divisor |

`argmax_pool` reads every window's taps (their flat positions in the `(spatial...)` plane are
static, computed here in NumPy), takes the first largest (`argmax`; PyTorch's choice at ties, in
its scan order: depth, then rows, then columns), and gathers `x` at the winner's flat index. The
gradient then goes to exactly that entry, as in PyTorch, and the index is what PyTorch's
`return_indices` returns. A tap in the padding is replaced by the nearest tap of the same
window inside the input (a repeat changes neither the maximum nor which entry wins first), so
no -inf padding is ever materialised and an input of -inf still sends its gradient to a real
entry.
"""

import numpy as np

from chainrule import ops
from chainrule.core import ShapeError, Tracer, concrete, ConcretizationError, shape_of
from chainrule.ops import sorting
from chainrule.ops.conv import avg_pool2d, max_pool2d, pool_out_size

__all__ = ['pool_out_size', 'max_pool', 'argmax_pool', 'window_taps', 'adaptive_taps',
           'max_unpool', 'avg_pool']


# --- which input entries each window reads ---------------------------------------------------

def window_taps(size, out, k, s, p, d, op='max_pool'):
    """`(out, k)` positions along one axis of length `size` that window `o`'s taps read:
    `o*s - p + j*d`, with a tap in the padding moved to the window's nearest tap inside."""
    pos = np.arange(out)[:, None] * s - p + np.arange(k)[None, :] * d
    inside = (pos >= 0) & (pos < size)
    empty = ~inside.any(axis=1)
    if empty.any():
        raise ShapeError(f'{op}: window {int(np.argmax(empty))} along an axis of size {size} '
                         f'reads only padding (kernel {k}, stride {s}, padding {p}, dilation '
                         f'{d}): use less padding or dilation')
    first = np.where(inside, pos, size).min(axis=1)[:, None]
    last = np.where(inside, pos, -1).max(axis=1)[:, None]
    return np.where(pos < 0, first, np.where(pos >= size, last, pos))


def adaptive_taps(size, out):
    """`(out, K)` positions of PyTorch's adaptive bins along one axis: bin `o` spans
    `floor(o*size/out)` to `ceil((o+1)*size/out)`; shorter bins repeat their last entry."""
    o = np.arange(out)
    start, end = (o * size) // out, -(-((o + 1) * size) // out)
    k = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(k)[None, :], end[:, None] - 1)


def _flat_windows(spatial, taps):
    """`(O, K)`: the flat positions in the plane `spatial` of every window's taps, windows in
    output order and taps in scan order (the first axis slowest)."""
    n = len(spatial)
    strides = [int(np.prod(spatial[a + 1:])) for a in range(n)]
    flat = np.zeros((1,) * (2 * n), np.intp)
    for a, (t, st) in enumerate(zip(taps, strides)):
        shape = [1] * (2 * n)
        shape[a], shape[n + a] = t.shape
        flat = flat + (t * st).reshape(shape)
    outs = tuple(t.shape[0] for t in taps)
    return flat.reshape(int(np.prod(outs)), -1), outs


def argmax_pool(x, taps):
    """Max pooling of `x` `(..., *spatial)` over windows whose taps along each of the last
    `len(taps)` axes are `taps[a]` `(O_a, K_a)`. Returns `(values, indices)`, both
    `(..., *O)`: the first largest entry of each window and its flat index in its plane
    (int64, PyTorch's `return_indices`)."""
    nd = len(taps)
    s = tuple(shape_of(x))
    lead, spatial = s[:-nd], s[-nd:]
    win, outs = _flat_windows(spatial, taps)
    xf = ops.reshape(x, lead + (int(np.prod(spatial)),))
    o, k = win.shape
    got = sorting.take(ops.stop_gradient(xf), win, len(lead))            # (..., O, K)
    slot = sorting.argmax(got, axis=-1)                                  # (..., O)
    idx = sorting.take(win.ravel(), ops.add(slot, np.arange(o) * k), 0)  # win[o, slot]
    if ops.dtype_of(idx) != np.int64:
        idx = ops.astype(idx, np.int64)
    values = sorting.take_along_axis(xf, idx, -1)
    return ops.reshape(values, lead + outs), ops.reshape(idx, lead + outs)


# --- max pooling --------------------------------------------------------------------------------

def max_pool(x, kernel, stride, padding, dilation, ceil_mode=False, return_indices=False):
    """Max pooling of `x` `(N, C, *spatial)` over `len(kernel)` spatial axes (1, 2 or 3), with
    the arguments checked by `chainrule.nn.functional`: tuples, padding with -inf (never
    chosen), PyTorch's `ceil_mode` and `dilation`. Returns the values, or `(values, indices)`."""
    nd = len(kernel)
    spatial = tuple(shape_of(x))[-nd:]
    outs = [pool_out_size(*a, ceil_mode)
            for a in zip(spatial, kernel, stride, padding, dilation)]
    floor_outs = [pool_out_size(*a) for a in zip(spatial, kernel, stride, padding, dilation)]
    if nd <= 2 and not return_indices and set(dilation) == {1} and outs == floor_outs:
        # the primitive's case (with its fast non-overlapping path)
        if nd == 2:
            return max_pool2d(x, kernel, stride, padding)
        n, c, length = shape_of(x)
        out = max_pool2d(ops.reshape(x, (n, c, 1, length)), (1,) + tuple(kernel),
                         (1,) + tuple(stride), (0,) + tuple(padding))
        return ops.reshape(out, (n, c, outs[0]))
    taps = [window_taps(*a, 'max_pool%dd' % nd)
            for a in zip(spatial, outs, kernel, stride, padding, dilation)]
    values, idx = argmax_pool(x, taps)
    return (values, idx) if return_indices else values


# --- unpooling ----------------------------------------------------------------------------------

def max_unpool(x, indices, out_size, op='max_unpool'):
    """Zeros of shape `(N, C, *out_size)` with each entry of `x` `(N, C, *in)` written at its
    flat index (`indices`, shaped like `x`) in its plane: PyTorch's `max_unpool`. Where an
    index repeats, the last write's value stays (PyTorch leaves the choice open), and every
    repeat gets the gradient there (PyTorch's backward gathers the output's gradient at
    `indices`)."""
    sx, si = tuple(shape_of(x)), tuple(shape_of(indices))
    nd = len(out_size)
    if sx != si:
        raise ShapeError(f'{op}: indices of shape {si} must have the shape of the input {sx}')
    lead = sx[:-nd]
    m, n = int(np.prod(sx[-nd:])), int(np.prod(out_size))
    idx = indices if isinstance(indices, Tracer) else np.asarray(indices)
    if ops.dtype_of(idx).kind not in 'iu':
        raise TypeError(f'{op}: indices must be integers (what max_pool returns with '
                        f'return_indices=True), got dtype {ops.dtype_of(idx)}')
    try:
        iv = concrete(idx)
    except ConcretizationError:
        iv = None
    if iv is not None and np.size(iv) and (np.min(iv) < 0 or np.max(iv) >= n):
        bad = np.min(iv) if np.min(iv) < 0 else np.max(iv)
        raise ValueError(f'{op}: found an invalid max index {bad} (output planes are of size '
                         f'{"x".join(map(str, out_size))}, {n} entries)')
    xf, idf = ops.reshape(x, lead + (m,)), ops.reshape(idx, lead + (m,))
    # the last of each repeated index: sort the indices (stably) and compare neighbours
    order = sorting.argsort(idf, axis=-1, stable=True)
    srt = sorting.take_along_axis(idf, order, -1)
    ends = ops.concatenate([ops.not_equal(ops.getitem(srt, (Ellipsis, slice(1, None))),
                                          ops.getitem(srt, (Ellipsis, slice(None, -1)))),
                            np.ones(lead + (1,), bool)], axis=-1)
    last = sorting.take_along_axis(ends, sorting.argsort(order, axis=-1, stable=True), -1)
    # the earlier repeats write x - stop_gradient(x): zero, with x's derivative
    y = ops.where(last, xf, ops.sub(xf, ops.stop_gradient(xf)))
    out = sorting.scatter_along_axis(y, idf, len(lead), n)
    return ops.reshape(out, lead + tuple(out_size))


# --- average pooling in N-d ---------------------------------------------------------------------

def _counts(size, out, k, s, p, count_include_pad):
    """Per output position along one axis: how many entries PyTorch's divisor counts."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    if not count_include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, size)
    return end - start


def avg_pool(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    """Average pooling of `x` `(N, C, *spatial)` over 1, 2 or 3 axes (checked tuples). 1-D and
    2-D are `avg_pool2d`; 3-D sums over (H, W) windows with it, then over depth windows, and
    divides by PyTorch's divisor (a product of per-axis counts, or `divisor_override`)."""
    nd = len(kernel)
    s = tuple(shape_of(x))
    if nd == 2:
        return avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)
    if nd == 1:
        out = avg_pool2d(ops.reshape(x, s[:2] + (1,) + s[2:]), (1,) + tuple(kernel),
                         (1,) + tuple(stride), (0,) + tuple(padding), ceil_mode,
                         count_include_pad, divisor_override)
        return ops.reshape(out, s[:2] + tuple(shape_of(out))[3:])
    n, c, d, h, w = s
    (kd, kh, kw), (sd, sh, sw), (pd, ph, pw) = kernel, stride, padding
    hw = avg_pool2d(ops.reshape(x, (n, c * d, h, w)), (kh, kw), (sh, sw), (ph, pw), ceil_mode,
                    True, 1)
    oh, ow = tuple(shape_of(hw))[2:]
    sums = avg_pool2d(ops.reshape(hw, (n, c, d, oh * ow)), (kd, 1), (sd, 1), (pd, 0),
                      ceil_mode, True, 1)
    od = tuple(shape_of(sums))[2]
    sums = ops.reshape(sums, (n, c, od, oh, ow))
    if divisor_override:
        return sums * (1.0 / divisor_override)
    per = [_counts(*a, count_include_pad)
           for a in zip((d, h, w), (od, oh, ow), kernel, stride, padding)]
    div = per[0][:, None, None] * per[1][None, :, None] * per[2][None, None, :]
    return sums * (1.0 / div).astype(ops.dtype_of(sums))
