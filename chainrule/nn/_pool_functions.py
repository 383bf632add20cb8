"""The pooling functions of `chainrule.nn.functional`: PyTorch's `max_pool1d/2d/3d` (with
`dilation`, `ceil_mode`, `return_indices`), `avg_pool1d/2d/3d`, `lp_pool1d/2d/3d`,
`adaptive_max_pool1d/2d/3d`, `adaptive_avg_pool1d/2d/3d` and `max_unpool1d/2d/3d`, with its
arguments, defaults, output sizes, index conventions and gradients (the gradient of a max goes
to the first largest entry of its window, in PyTorch's scan order).

Each checks its arguments as PyTorch does, with errors that name the op and the shapes, and
accepts PyTorch's unbatched input `(C, *spatial)`. The work is in `chainrule.ops.pooling` and
`chainrule.ops.conv` (composites of primitives that have every rule, so everything here works
eagerly with `backward()` and inside `grad`, `vmap` and `jit`).
"""

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ShapeError, shape_of
from chainrule.ops import conv as convops
from chainrule.ops import pooling
from chainrule.nn._activation_functions import relu

__all__ = ['max_pool1d', 'max_pool2d', 'max_pool3d', 'max_pool1d_with_indices',
           'max_pool2d_with_indices', 'max_pool3d_with_indices', 'avg_pool1d', 'avg_pool2d',
           'avg_pool3d', 'lp_pool1d', 'lp_pool2d', 'lp_pool3d', 'adaptive_max_pool1d',
           'adaptive_max_pool2d', 'adaptive_max_pool3d', 'adaptive_avg_pool1d',
           'adaptive_avg_pool2d', 'adaptive_avg_pool3d', 'max_unpool1d', 'max_unpool2d',
           'max_unpool3d']

_DIMS = {1: '(N, C, L) or (C, L)', 2: '(N, C, H, W) or (C, H, W)',
         3: '(N, C, D, H, W) or (C, D, H, W)'}


# --- arguments ----------------------------------------------------------------------------------

def _tuple(v, nd, name, op):
    """An int, or a sequence of 1 or `nd` ints, as an `nd`-tuple of ints."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return (int(v),) * nd
    try:
        t = tuple(int(a) for a in v)
    except (TypeError, ValueError):
        raise TypeError(f'{op}: {name} must be an int or a tuple of {nd} ints, got '
                        f'{v!r:.60}') from None
    if len(t) == 1:
        return t * nd
    if len(t) != nd:
        raise ValueError(f'{op}: {name} must be an int or a tuple of {nd} ints, got {v!r:.60}')
    return t


def _spatial(input, nd, op):
    s = tuple(shape_of(input))
    if len(s) not in (nd + 1, nd + 2) or 0 in s[-nd - 1:]:
        raise ShapeError(f'{op}: input must be {_DIMS[nd]} with no empty channel or spatial '
                         f'axis, got shape {s}')
    return s[-nd:]


def _window(input, nd, op, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """Checked `(kernel, stride, padding, dilation)` tuples, PyTorch's checks and order."""
    sp = _spatial(input, nd, op)
    k = _tuple(kernel_size, nd, 'kernel_size', op)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else _tuple(stride, nd, 'stride', op)
    p, d = _tuple(padding, nd, 'padding', op), _tuple(dilation, nd, 'dilation', op)
    for name, v in (('kernel_size', k), ('stride', s), ('dilation', d)):
        if min(v) < 1:
            raise ValueError(f'{op}: {name} must be greater than zero, got {name}={v}')
    if min(p) < 0:
        raise ValueError(f'{op}: padding must be non-negative, got padding={p}')
    if any(2 * pi > ki for ki, pi in zip(k, p)):
        raise ValueError(f'{op}: padding {p} must be at most half of kernel_size {k} (as in '
                         f'PyTorch, whatever the dilation)')
    outs = tuple(convops.pool_out_size(*a, ceil_mode) for a in zip(sp, k, s, p, d))
    if min(outs) < 1:
        raise ShapeError(f'{op}: input of spatial size {sp} gives output size {outs} (kernel_'
                         f'size {k}, stride {s}, padding {p}, dilation {d}, ceil_mode='
                         f'{bool(ceil_mode)}): the output is too small; use a smaller kernel '
                         f'or dilation, or a larger input or padding')
    return k, s, p, d


def _batched(input, nd, fn):
    """`fn(input)` for `(N, C, *spatial)`; for PyTorch's unbatched `(C, *spatial)`, run as a
    batch of one and drop that axis again (of every result)."""
    s = tuple(shape_of(input))
    if len(s) == nd + 2:
        return fn(input)
    out = fn(ops.reshape(input, (1,) + s))
    if isinstance(out, tuple):
        return tuple(ops.reshape(o, tuple(shape_of(o))[1:]) for o in out)
    return ops.reshape(out, tuple(shape_of(out))[1:])


# --- max pooling --------------------------------------------------------------------------------

def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
              op=None):
    op = op or f'max_pool{nd}d'
    k, s, p, d = _window(input, nd, op, kernel_size, stride, padding, dilation, ceil_mode)
    return _batched(input, nd, lambda x: pooling.max_pool(x, k, s, p, d, bool(ceil_mode),
                                                          bool(return_indices)))


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """1-D max pooling (PyTorch's `F.max_pool1d`); see `max_pool2d`."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling over windows of `kernel_size` (PyTorch's `F.max_pool2d`). Padding is
    with -inf (never chosen); the gradient goes to the first maximum of each window in scan
    order (rows, then columns), as in PyTorch.

    Args:
        input: `(N, C, H, W)` or `(C, H, W)`.
        kernel_size: int or pair.
        stride: int or pair; defaults to `kernel_size`.
        padding: int or pair, at most half the kernel.
        dilation: spacing between a window's taps.
        ceil_mode: round the output size up (a last, partial window), but every window starts
            inside the input or its left padding, as in PyTorch.
        return_indices: also return, for each output, the flat index `h*W + w` of its winner
            in its `(H, W)` plane (int64), for `max_unpool2d`.

    Returns:
        `(N, C, OH, OW)`, or `(values, indices)` with `return_indices`.
    """
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """3-D max pooling (PyTorch's `F.max_pool3d`) over `(D, H, W)`; flat indices
    `(d*H + h)*W + w`; otherwise as `max_pool2d`."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """`max_pool1d(..., return_indices=True)`."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """`max_pool2d(..., return_indices=True)`."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    """`max_pool3d(..., return_indices=True)`."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, True)


# --- average and power-average pooling ----------------------------------------------------------

def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override, op=None):
    op = op or f'avg_pool{nd}d'
    k, s, p, _ = _window(input, nd, op, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and divisor_override <= 0:
        raise ValueError(f'{op}: divisor_override must be > 0, got {divisor_override}')
    return _batched(input, nd, lambda x: pooling.avg_pool(
        x, k, s, p, bool(ceil_mode), bool(count_include_pad), divisor_override))


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """1-D average pooling (PyTorch's `F.avg_pool1d`); see `avg_pool2d`."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     None)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling (PyTorch's `F.avg_pool2d`).

    Args:
        input: `(N, C, H, W)` or `(C, H, W)`.
        kernel_size: int or pair.
        stride: int or pair; defaults to `kernel_size`.
        padding: int or pair (zeros), at most half the kernel.
        ceil_mode: round the output size up (a last, partial window), as PyTorch.
        count_include_pad: divide by the window size including padding (True, the default)
            or by the number of input entries in the window.
        divisor_override: divide every window's sum by this instead.

    Returns:
        `(N, C, OH, OW)`.
    """
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-D average pooling (PyTorch's `F.avg_pool3d`) over `(D, H, W)`; see `avg_pool2d`."""
    return _avg_pool(3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                     divisor_override)


def _lp_pool(nd, input, norm_type, kernel_size, stride, ceil_mode):
    op = f'lp_pool{nd}d'
    k = _tuple(kernel_size, nd, 'kernel_size', op)
    if norm_type == float('inf'):
        return _max_pool(nd, cnp.abs(input), kernel_size, stride, 0, 1, ceil_mode, False, op)
    if norm_type == -float('inf'):
        return -_max_pool(nd, -cnp.abs(input), kernel_size, stride, 0, 1, ceil_mode, False, op)
    if not norm_type:
        raise ValueError(f'{op}: norm_type must be non-zero, got {norm_type!r}')
    out = _avg_pool(nd, cnp.power(input, norm_type), kernel_size, stride, 0, ceil_mode, True,
                    None, op)
    # PyTorch's formula: sign(out) * relu(|out|), times the window size, to the power 1/p
    return cnp.power(cnp.sign(out) * relu(cnp.abs(out)) * float(np.prod(k)), 1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling (PyTorch's `F.lp_pool1d`): `(sum over the window of x**p)**(1/p)`
    (PyTorch's formula; no padding)."""
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling (PyTorch's `F.lp_pool2d`): `(sum over the window of x**p)**(1/p)`
    (PyTorch's formula, including its scaling of a partial `ceil_mode` window; no
    padding). `norm_type=inf` is max pooling of `|x|`."""
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling over `(D, H, W)` (PyTorch's `F.lp_pool3d`); see `lp_pool2d`."""
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# --- adaptive pooling ---------------------------------------------------------------------------

def _output_size(output_size, sp, op):
    nd = len(sp)
    if isinstance(output_size, (int, np.integer)):
        size = (int(output_size),) * nd
    else:
        try:
            size = tuple(output_size)
        except TypeError:
            size = ()
    if len(size) != nd or not all(o is None or (isinstance(o, (int, np.integer)) and o >= 1)
                                  for o in size):
        raise ValueError(f'{op}: output_size must be a positive int or a tuple of {nd} '
                         f'(positive ints or None), got {output_size!r:.60}')
    return tuple(d if o is None else int(o) for d, o in zip(sp, size))


def _adaptive_max_pool(nd, input, output_size, return_indices):
    op = f'adaptive_max_pool{nd}d'
    sp = _spatial(input, nd, op)
    taps = [pooling.adaptive_taps(d, o) for d, o in zip(sp, _output_size(output_size, sp, op))]

    def run(x):
        values, idx = pooling.argmax_pool(x, taps)
        return (values, idx) if return_indices else values
    return _batched(input, nd, run)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    """Max pooling to `output_size` (PyTorch's `F.adaptive_max_pool1d`); see
    `adaptive_max_pool2d`."""
    return _adaptive_max_pool(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max pooling to a given output size (PyTorch's `F.adaptive_max_pool2d`): output `(i, j)`
    is the largest entry of rows `floor(i*H/OH)` to `ceil((i+1)*H/OH)` and the same for
    columns; with `return_indices`, also its flat index `h*W + w` (int64). `None` in
    `output_size` keeps that input size."""
    return _adaptive_max_pool(2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    """Max pooling of `(D, H, W)` to `output_size` (PyTorch's `F.adaptive_max_pool3d`)."""
    return _adaptive_max_pool(3, input, output_size, return_indices)


def adaptive_avg_pool1d(input, output_size):
    """Average pooling to `output_size` (PyTorch's `F.adaptive_avg_pool1d`)."""
    sp = _spatial(input, 1, 'adaptive_avg_pool1d')
    (o,) = _output_size(output_size, sp, 'adaptive_avg_pool1d')

    def run(x):
        n, c, length = shape_of(x)
        out = convops.adaptive_avg_pool2d(ops.reshape(x, (n, c, 1, length)), (1, o))
        return ops.reshape(out, (n, c, o))
    return _batched(input, 1, run)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a given output size (PyTorch's `F.adaptive_avg_pool2d`): output
    entry `(i, j)` averages rows `floor(i*H/OH)` to `ceil((i+1)*H/OH)` and the same for columns.

    Args:
        input: `(N, C, H, W)` (or `(C, H, W)`).
        output_size: an int or a pair; `None` in the pair keeps that input size.
    """
    sp = _spatial(input, 2, 'adaptive_avg_pool2d')
    size = _output_size(output_size, sp, 'adaptive_avg_pool2d')
    return _batched(input, 2, lambda x: convops.adaptive_avg_pool2d(x, size))


def adaptive_avg_pool3d(input, output_size):
    """Average pooling of `(D, H, W)` to `output_size` (PyTorch's `F.adaptive_avg_pool3d`):
    the bins are products of per-axis bins, so (H, W) then D, each `adaptive_avg_pool2d`."""
    sp = _spatial(input, 3, 'adaptive_avg_pool3d')
    od, oh, ow = _output_size(output_size, sp, 'adaptive_avg_pool3d')

    def run(x):
        n, c, d, h, w = shape_of(x)
        hw = convops.adaptive_avg_pool2d(ops.reshape(x, (n, c * d, h, w)), (oh, ow))
        out = convops.adaptive_avg_pool2d(ops.reshape(hw, (n, c, d, oh * ow)), (od, oh * ow))
        return ops.reshape(out, (n, c, od, oh, ow))
    return _batched(input, 3, run)


# --- unpooling ----------------------------------------------------------------------------------

def _max_unpool(nd, input, indices, kernel_size, stride, padding, output_size):
    op = f'max_unpool{nd}d'
    sp = _spatial(input, nd, op)
    k = _tuple(kernel_size, nd, 'kernel_size', op)
    s = k if stride is None else _tuple(stride, nd, 'stride', op)
    p = _tuple(padding, nd, 'padding', op)
    default = tuple((i - 1) * si + ki - 2 * pi for i, ki, si, pi in zip(sp, k, s, p))
    if output_size is None:
        size = default
    else:
        size = tuple(int(o) for o in output_size)
        if len(size) == nd + 2:
            size = size[2:]
        if len(size) != nd:
            raise ValueError(f'{op}: output_size must have {nd} or {nd + 2} entries, got '
                             f'{tuple(output_size)}')
        for a, (o, df, si) in enumerate(zip(size, default, s)):
            if not df - si < o < df + si:
                raise ValueError(f'{op}: output_size {size} is invalid: size {a} must be '
                                 f'between {df - si} and {df + si} (exclusive) for input '
                                 f'{sp}, kernel_size {k}, stride {s}, padding {p}')
    if min(size) < 1:
        raise ShapeError(f'{op}: input {sp} with kernel_size {k}, stride {s} and padding {p} '
                         f'gives an empty output {size}')
    return _batched_pair(input, indices, nd, lambda x, i: pooling.max_unpool(x, i, size, op))


def _batched_pair(input, indices, nd, fn):
    s, si = tuple(shape_of(input)), tuple(shape_of(indices))
    if len(s) == nd + 2:
        return fn(input, indices)
    if si != s:
        raise ShapeError(f'max_unpool{nd}d: indices of shape {si} must have the shape of the '
                         f'input {s}')
    out = fn(ops.reshape(input, (1,) + s), ops.reshape(indices, (1,) + s))
    return ops.reshape(out, tuple(shape_of(out))[1:])


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of `max_pool1d` (PyTorch's `F.max_unpool1d`); see `max_unpool2d`."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """Zeros with each input entry put back at the flat index `max_pool2d(...,
    return_indices=True)` gave it (PyTorch's `F.max_unpool2d`).

    Args:
        input, indices: `(N, C, H, W)` or `(C, H, W)`: pooled values and their indices.
        kernel_size, stride, padding: the pooling's (stride defaults to the kernel).
        output_size: the output's spatial size (or full shape); by default
            `(H - 1)*stride - 2*padding + kernel_size` per axis, and within one stride of it.

    Returns:
        `(N, C, OH, OW)`; the gradient of an entry is the output's gradient at its index.
    """
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of `max_pool3d` (PyTorch's `F.max_unpool3d`); see `max_unpool2d`."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)
