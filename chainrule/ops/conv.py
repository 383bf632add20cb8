"""Convolution and pooling primitives: im2col (`unfold`/`fold`), `conv2d`, `max_pool2d`.

What this module lets you do: build every convolution and pooling layer of `chainrule.nn` from
a few primitives, each one tape node, with rules written in chainrule's own ops (so derivatives
of derivatives, `jit` and `vmap` work):

| primitive | computes | rules |
|---|---|---|
| `unfold(x)` / `fold(c)` | im2col / col2im (with stride, padding, dilation) | linear, each other's transpose |
| `conv2d(x, w, b)` | im2col, one matrix product, bias | VJPs through `fold`/`unfold` |
| `max_pool2d(x)` | max over windows | select by the winners' mask (`pool_scatter`/`pool_gather`) |

The rest are composites with no derivative code: grouped convolution (one `conv2d` per group),
`conv_transpose2d` (a product with the weight, then `fold`: the transpose of a convolution is
col2im of a product, exactly `conv2d`'s input VJP), average pooling (`unfold`, a sum, a
divisor), adaptive average pooling (two small averaging matrices).
"""

import numpy as np

from chainrule import ops
from chainrule.core import (ConcretizationError, Primitive, ShapeError, Tracer, bind,
                            concrete, shape_of)
from chainrule.ops.nn import _matmul2d, _merged_batch, _plain, _same_dtype, _batch_size, \
    _stacked, _workspace, linear

__all__ = ['unfold', 'fold', 'conv2d', 'conv_transpose2d', 'max_pool2d', 'avg_pool2d',
           'adaptive_avg_pool2d', 'conv_output_size', 'pool_out_size']


# --- arguments ----------------------------------------------------------------------------------

def conv_output_size(size, kernel, stride, padding, dilation=1):
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pair(v, name, op):
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    try:
        v = tuple(int(a) for a in v)
    except TypeError:
        raise TypeError(f'{op}: {name} must be an int or a pair of ints, got {v!r}') from None
    if len(v) != 2:
        raise ValueError(f'{op}: {name} must be an int or a pair, got {v!r}')
    return v


def _window_args(s, kernel, stride, padding, op, dilation=1):
    """Kernel, stride, padding (and dilation) as checked pairs for an `(N, C, H, W)` input of
    shape `s`; the dilation is returned only when it was passed."""
    kernel, stride = _pair(kernel, 'kernel', op), _pair(stride, 'stride', op)
    padding, dil = _pair(padding, 'padding', op), _pair(dilation, 'dilation', op)
    if len(s) != 4:
        raise ShapeError(f'{op}: input must be (N, C, H, W), got shape {s}')
    if min(stride) < 1 or min(padding) < 0 or min(dil) < 1 or min(kernel) < 1:
        raise ValueError(f'{op}: kernel {kernel}, stride {stride} and dilation {dil} must be '
                         f'>= 1 and padding {padding} >= 0')
    for d, k, st, p, dl in zip(s[2:], kernel, stride, padding, dil):
        if conv_output_size(d, k, st, p, dl) < 1:
            raise ShapeError(f'{op}: kernel {kernel} (dilation {dil}) is larger than the input '
                             f'{tuple(s[2:])} with padding {padding}')
    return kernel, stride, padding, dil


def _pad_hw(x, padding, value, scratch=False):
    """`x` `(N, C, H, W)` padded with `value` on both sides of H and W, in x's memory layout
    (np.pad is slower and always returns C order); in this thread's workspace if `scratch`."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    shape = (n, c, h + 2 * ph, w + 2 * pw)
    if scratch and x.transpose(0, 2, 3, 1).flags.c_contiguous:
        out = _workspace('pad', (n, h + 2 * ph, w + 2 * pw, c), x.dtype).transpose(0, 3, 1, 2)
    else:
        out = np.empty_like(x, shape=shape)
    out.fill(value)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


# --- im2col: unfold and fold --------------------------------------------------------------------
# Layout. Patches are ordered (kh, kw, c) within a row, channels fastest, and images are
# handled channels-last inside: the copies then move runs of C contiguous numbers. The results
# are NCHW *views* of channels-last memory, which NumPy's elementwise ops keep (order 'K'), so a
# conv -> relu -> pool -> conv chain never transposes data between layers.

def _unfold_impl(x, *, kernel, stride, padding, dilation=(1, 1), scratch=False):
    # (N, C, H, W) -> (N, OH, OW, kh*kw*C): row (n, i, j) holds the patch under output pixel
    # (i, j); kernel tap (a, b) reads x[i*sh + a*dh - ph, j*sw + b*dw - pw]. With `scratch`,
    # in this thread's workspace (for the conv rules, which consume it at once)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    xp = _pad_hw(x, padding, 0, scratch).transpose(0, 2, 3, 1)     # NHWC view
    n, hp, wp, c = xp.shape
    oh, ow = (hp - dh * (kh - 1) - 1) // sh + 1, (wp - dw * (kw - 1) - 1) // sw + 1
    shape = (n, oh, ow, kh, kw, c)
    out = _workspace('cols', shape, x.dtype) if scratch else np.empty(shape, x.dtype)
    if c < 4:
        # few channels (an image's first layer): one strided copy per kernel tap moves runs of
        # OW entries, where the windows' copy below would move runs of C
        for i in range(kh):
            for j in range(kw):
                out[:, :, :, i, j] = xp[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                                        j * dw:j * dw + sw * (ow - 1) + 1:sw]
        return out.reshape(n, oh, ow, kh * kw * c)
    sn, sy, sx, sc = xp.strides
    # the windows as a strided view (no copy): (n, oh, ow, kh, kw, c)
    win = np.lib.stride_tricks.as_strided(
        xp, shape, (sn, sy * sh, sx * sw, sy * dh, sx * dw, sc), writeable=False)
    np.copyto(out, win)                                           # the one copy
    return out.reshape(n, oh, ow, kh * kw * c)


def _fold_impl(cols, *, kernel, stride, padding, shape, dilation=(1, 1)):
    # the transpose of unfold: every patch entry is added back where it came from
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    n, c, h, w = shape
    oh, ow = cols.shape[1:3]
    cols = cols.reshape(n, oh, ow, kh, kw, c)
    out = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                j * dw:j * dw + sw * (ow - 1) + 1:sw] += cols[:, :, :, i, j]
    return out[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


def _fold_vjp(g, ans, c, *, kernel, stride, padding, shape, dilation=(1, 1)):
    # unfold, cut to the patch grid of `c` (a transposed convolution's output_padding can leave
    # the image room for more windows than `c` has: those rows never reached it)
    u = unfold(g, kernel, stride, padding, dilation)
    oh, ow = shape_of(c)[1:3]
    if tuple(shape_of(u)[1:3]) != (oh, ow):
        u = ops.getitem(u, (slice(None), slice(0, oh), slice(0, ow)))
    return u


def _unfold_prim_impl(x, *, kernel, stride, padding, dilation=(1, 1)):
    return _unfold_impl(x, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


unfold_p = Primitive(
    'unfold', _unfold_prim_impl, linear=True,
    vjp=[lambda g, ans, x, *, kernel, stride, padding, dilation=(1, 1):
         fold(g, shape_of(x), kernel, stride, padding, dilation)])
fold_p = Primitive('fold', _fold_impl, linear=True, vjp=[_fold_vjp])


def unfold(x, kernel, stride=1, padding=0, dilation=1):
    """Patches of `x` `(N, C, H, W)` as rows: `(N, OH, OW, kh*kw*C)` (im2col).

    Args:
        x: a batch of images `(N, C, H, W)`.
        kernel, stride, padding, dilation: ints or pairs (padding is with zeros).

    Returns:
        The patches, ordered `(kh, kw, c)` within a row (channels fastest; a PyTorch conv
        weight `w` matches `w.transpose(0, 2, 3, 1)`).
    """
    kernel, stride, padding, dilation = _window_args(shape_of(x), kernel, stride, padding,
                                                     'unfold', dilation)
    return bind(unfold_p, x, kernel=kernel, stride=stride, padding=padding,
                **_dil(dilation))


def fold(cols, shape, kernel, stride=1, padding=0, dilation=1):
    """The transpose of `unfold`: patch rows `(N, OH, OW, kh*kw*C)` summed back into an image
    of `shape` `(N, C, H, W)` (col2im); overlapping entries add up."""
    kernel, stride = _pair(kernel, 'kernel', 'fold'), _pair(stride, 'stride', 'fold')
    padding, dilation = _pair(padding, 'padding', 'fold'), _pair(dilation, 'dilation', 'fold')
    return bind(fold_p, cols, kernel=kernel, stride=stride, padding=padding,
                shape=tuple(int(d) for d in shape), **_dil(dilation))


def _dil(dilation):
    """The dilation as a keyword only when it is not 1: graphs of undilated convolutions keep
    their parameters (and saved graphs their format)."""
    return {} if dilation == (1, 1) else {'dilation': dilation}


# --- conv2d: unfold, one matrix product, bias; one tape node -------------------------------

def _flat_weight(w):
    """`(O, C, kh, kw)` -> `(O, kh*kw*C)`, the row order of `unfold`."""
    return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def _conv_impl(x, w, *rest, stride, padding, dilation=(1, 1)):
    b, cols = _bias_cols(rest)
    if cols is None:
        cols = _unfold_impl(x, kernel=w.shape[2:], stride=stride, padding=padding,
                            dilation=dilation, scratch=True)
    n, oh, ow, k = cols.shape
    out = np.matmul(cols.reshape(-1, k), _flat_weight(w).T)
    if b:
        out += b[0]
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)     # NCHW view, channels last


def _bias_cols(rest):
    """The arguments of `conv2d_p` after x and w, as `(bias, cols)`: an optional bias `(O,)`
    (a tuple of it, or empty), then, from the eager path only, x's unfolded columns
    `(N, OH, OW, K)` or None (told apart by their number of axes)."""
    if rest and len(shape_of(rest[-1])) == 4:
        return rest[:-1], rest[-1]
    return rest, None


def _conv_vjp_x(g, ans, x, w, *rest, stride, padding, dilation=(1, 1)):
    # x enters through unfold(x) @ W^T: pull g back through the product, then fold
    kernel = shape_of(w)[2:]
    if _plain(g, w):
        full = [d * (k - 1) - p for k, p, d in zip(kernel, padding, dilation)]
        if stride == (1, 1) and min(full) >= 0 and w.shape[1] >= 8:
            # stride 1: the correlation of g, zero-padded to full size, with the flipped and
            # transposed kernel -- an im2col of g and one product, cheaper than col2im's
            # strided adds (unless C_in is so small that the product is nearly a vector's)
            gcols = _unfold_impl(g, kernel=kernel, stride=stride, padding=tuple(full),
                                 dilation=dilation, scratch=True)
            wf = w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(-1, w.shape[1])
            n, h, wd, k = gcols.shape
            return np.matmul(gcols.reshape(-1, k), wf).reshape(n, h, wd, -1).transpose(
                0, 3, 1, 2)
        gcols = _matmul2d(g.transpose(0, 2, 3, 1), _flat_weight(w))
        return _fold_impl(gcols, kernel=kernel, stride=stride, padding=padding,
                          shape=x.shape, dilation=dilation)
    gt = ops.transpose(g, (0, 2, 3, 1))
    w2 = ops.reshape(ops.transpose(w, (0, 2, 3, 1)), (shape_of(w)[0], -1))
    return fold(ops.matmul(gt, w2), shape_of(x), kernel, stride, padding, dilation)


def _conv_vjp_w(g, ans, x, w, *rest, stride, padding, dilation=(1, 1)):
    # dL/dW = sum over pixels of g (outer) patch, back in (O, C, kh, kw) order
    o, c, kh, kw = shape_of(w)
    if _plain(g, x):
        cols = _bias_cols(rest)[1]          # the forward's columns, when it kept them
        if cols is None:
            cols = _unfold_impl(x, kernel=(kh, kw), stride=stride, padding=padding,
                                dilation=dilation, scratch=True)
        gw = np.matmul(g.transpose(0, 2, 3, 1).reshape(-1, o).T,
                       cols.reshape(-1, cols.shape[-1]))
        return np.ascontiguousarray(gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2))
    cols = unfold(x, (kh, kw), stride, padding, dilation)
    gt = ops.reshape(ops.transpose(g, (1, 0, 2, 3)), (o, -1))
    gw = ops.matmul(gt, ops.reshape(cols, (-1, kh * kw * c)))
    return ops.transpose(ops.reshape(gw, (o, kh, kw, c)), (0, 3, 1, 2))


def _conv_vjp_b(g, ans, x, w, *rest, **p):
    return g.sum(axis=(0, 2, 3)) if _plain(g) else ops.sum(g, axis=(0, 2, 3))


def _bind_conv(x, w, b, p):
    return bind(conv2d_p, x, w, **p) if b is None else bind(conv2d_p, x, w, b, **p)


# Arguments: x, w, the bias if any and, from the eager path only, x's unfolded columns (see
# `_saved_columns`): a constant equal to what the rules would compute from x, never
# differentiated (its rule slot is never called: the columns have no parent in any trace, and
# traced rules unfold x themselves, so higher derivatives see their dependence on x).
conv2d_p = Primitive(
    'conv2d', _conv_impl,
    vjp=[_conv_vjp_x, _conv_vjp_w, _conv_vjp_b, None],
    jvp=[lambda t, ans, x, w, *rest, **p: _bind_conv(t, w, None, p),
         lambda t, ans, x, w, *rest, **p: _bind_conv(x, t, None, p),
         lambda t, ans, x, w, *rest, **p:
         ops.broadcast_to(ops.reshape(t, (1, -1, 1, 1)), shape_of(ans)), None])


def _saved_columns(x, w, kernel, stride, padding, dilation):
    """x unfolded (a fresh array), for `conv2d_p` to compute with and keep as a residual: the
    weight's VJP then reads it instead of unfolding x a second time, at the cost of keeping
    `kh*kw` times x's size until backward (PyTorch's mkldnn keeps a workspace too). Only
    where a weight gradient may be asked for on concrete values: an eager Tensor weight that
    requires grad, or reverse (or forward) mode over concrete inputs. None for plain arrays
    and under jit and vmap, whose values are abstract (nothing is baked into a graph)."""
    if not isinstance(w, Tracer) or getattr(w, 'requires_grad', True) is False:
        return None
    try:
        xv, wv = concrete(x), concrete(w)
    except ConcretizationError:
        return None
    if not (isinstance(xv, np.ndarray) and isinstance(wv, np.ndarray)):
        return None
    return _unfold_impl(xv, kernel=kernel, stride=stride, padding=padding, dilation=dilation)


def _channel_slice(a, axis, g, size):
    idx = (slice(None),) * axis + (slice(g * size, (g + 1) * size),)
    return ops.getitem(a, idx)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of `x` `(N, C, H, W)` with `w`
    `(O, C // groups, kh, kw)`, plus `b` `(O,)`: `(N, O, OH, OW)`, zero padding.

    One primitive for `groups=1` (im2col, one matrix product, the bias); with groups, one per
    group on its slice of channels, the results concatenated (a composite).
    """
    sx, sw = shape_of(x), shape_of(w)
    groups = int(groups)
    if groups < 1:
        raise ValueError(f'conv2d: groups must be >= 1, got {groups}')
    if len(sx) != 4 or len(sw) != 4 or sx[1] != sw[1] * groups or sw[0] % groups or (
            b is not None and shape_of(b) != sw[:1]):
        raise ShapeError(f'conv2d: input {sx} and weight {sw}' +
                         (f' and bias {shape_of(b)}' if b is not None else '') +
                         f' do not fit with groups={groups}: input must be (N, C_in, H, W), '
                         'weight (C_out, C_in // groups, kh, kw) with C_out divisible by '
                         'groups, and bias (C_out,)')
    _, stride, padding, dilation = _window_args(sx, sw[2:], stride, padding, 'conv2d', dilation)
    args = _same_dtype((x, w) if b is None else (x, w, b))
    p = dict(stride=stride, padding=padding, **_dil(dilation))
    if groups == 1:
        cols = _saved_columns(args[0], args[1], tuple(sw[2:]), stride, padding, dilation)
        return bind(conv2d_p, *args, **p) if cols is None else bind(conv2d_p, *args, cols, **p)
    x, w, *b = args
    ci, co = sw[1], sw[0] // groups
    outs = [_bind_conv(_channel_slice(x, 1, g, ci), _channel_slice(w, 0, g, co),
                       _channel_slice(b[0], 0, g, co) if b else None, p)
            for g in range(groups)]
    return ops.concatenate(outs, axis=1)


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """The transposed convolution (PyTorch's `F.conv_transpose2d`) of `x` `(N, C_in, H, W)`
    with `w` `(C_in, C_out // groups, kh, kw)`: `(N, C_out, OH, OW)` with
    `OH = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1`.

    A composite: each input pixel times the weight gives a patch (`linear`), and `fold` adds
    the patches into the output image (col2im), exactly the input VJP of `conv2d`.
    """
    sx, sw = shape_of(x), shape_of(w)
    groups = int(groups)
    if groups < 1:
        raise ValueError(f'conv_transpose2d: groups must be >= 1, got {groups}')
    if len(sx) != 4 or len(sw) != 4 or sx[1] != sw[0] or sw[0] % groups or (
            b is not None and shape_of(b) != (sw[1] * groups,)):
        raise ShapeError(f'conv_transpose2d: input {sx} and weight {sw}' +
                         (f' and bias {shape_of(b)}' if b is not None else '') +
                         f' do not fit with groups={groups}: input must be (N, C_in, H, W), '
                         'weight (C_in, C_out // groups, kh, kw) with C_in divisible by groups, '
                         'and bias (C_out,)')
    op = 'conv_transpose2d'
    kernel = tuple(sw[2:])
    stride, padding = _pair(stride, 'stride', op), _pair(padding, 'padding', op)
    opad, dilation = _pair(output_padding, 'output_padding', op), _pair(dilation, 'dilation', op)
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(opad) < 0:
        raise ValueError(f'{op}: stride {stride} and dilation {dilation} must be >= 1, padding '
                         f'{padding} and output_padding {opad} >= 0')
    for o, s, d in zip(opad, stride, dilation):
        if o >= s and o >= d:
            raise ValueError(f'{op}: output_padding {opad} must be smaller than either the '
                             f'stride {stride} or the dilation {dilation} (as in PyTorch)')
    n, _, h, wd = sx
    out_hw = [(i - 1) * s - 2 * p + d * (k - 1) + o + 1
              for i, s, p, d, k, o in zip((h, wd), stride, padding, dilation, kernel, opad)]
    if min(out_hw) < 1:
        raise ShapeError(f'{op}: input {sx} with kernel {kernel}, stride {stride}, padding '
                         f'{padding} gives an empty output {tuple(out_hw)}')
    args = _same_dtype((x, w) if b is None else (x, w, b))
    x, w, *b = args
    ci, co = sw[0] // groups, sw[1]
    xt = ops.transpose(x, (0, 2, 3, 1))                               # (N, H, W, C_in)
    outs = []
    for g in range(groups):
        xg = xt if groups == 1 else _channel_slice(xt, 3, g, ci)
        wg = w if groups == 1 else _channel_slice(w, 0, g, ci)
        # (C_in, C_out, kh, kw) -> (kh*kw*C_out, C_in): rows in unfold's patch order
        w2 = ops.reshape(ops.transpose(wg, (2, 3, 1, 0)), (-1, ci))
        outs.append(fold(linear(xg, w2), (n, co) + tuple(out_hw), kernel, stride, padding,
                         dilation))
    out = outs[0] if groups == 1 else ops.concatenate(outs, axis=1)
    if b:
        out = out + ops.reshape(b[0], (1, -1, 1, 1))
    return out


# --- average pooling (composites) ---------------------------------------------------------------

def pool_out_size(size, k, s, p, d=1, ceil_mode=False):
    """PyTorch's pooled length along one axis: (size + 2p - d(k-1) - 1) / s + 1, rounded down,
    or up with `ceil_mode` -- but then the last window must start inside the input or its
    left padding."""
    span = size + 2 * p - d * (k - 1) - 1
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p:
        out -= 1
    return out


def avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over windows of `x` `(N, C, H, W)` (checked pairs from
    `chainrule.nn.functional.avg_pool2d`): `unfold` (zero padding), a sum over each window, and
    PyTorch's divisor: the window's size clipped to the padded input (`count_include_pad`),
    or the number of input entries in it, or `divisor_override`."""
    n, c, h, w = shape_of(x)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ceil_mode:
        oh, ow = pool_out_size(h, kh, sh, ph, 1, True), pool_out_size(w, kw, sw, pw, 1, True)
    else:
        oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    # rows and columns the windows reach past the padded input (ceil_mode) come as more zeros
    eh, ew = max((oh - 1) * sh + kh - h - 2 * ph, 0), max((ow - 1) * sw + kw - w - 2 * pw, 0)
    if eh or ew:
        from chainrule import numpy as cnp
        x = cnp.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)))
        cols = unfold(x, kernel, stride, 0)
    else:
        cols = unfold(x, kernel, stride, padding)
    cols = cols if (oh, ow) == tuple(shape_of(cols)[1:3]) else \
        ops.getitem(cols, (slice(None), slice(0, oh), slice(0, ow)))
    s = ops.sum(ops.reshape(cols, (n, oh, ow, kh * kw, c)), axis=3)       # (N, OH, OW, C)
    if divisor_override:
        scale = 1.0 / divisor_override
    else:
        scale = 1.0 / _pool_counts(h, w, oh, ow, kernel, stride, padding, count_include_pad)
    return ops.transpose(s * scale.astype(ops.dtype_of(s)) if isinstance(scale, np.ndarray)
                         else s * scale, (0, 3, 1, 2))


def _pool_counts(h, w, oh, ow, kernel, stride, padding, count_include_pad):
    """How many entries each window averages over, `(OH, OW, 1)`: per axis, the window clipped
    to the padded input, or to the input itself when padding does not count."""
    per_axis = []
    for size, o, k, s, p in zip((h, w), (oh, ow), kernel, stride, padding):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        per_axis.append(end - start)
    return (per_axis[0][:, None] * per_axis[1][None, :])[:, :, None].astype(np.float64)


def _adaptive_matrix(size, out, dtype):
    """`(out, size)`: row i averages input entries floor(i*size/out) .. ceil((i+1)*size/out),
    PyTorch's bins."""
    m = np.zeros((out, size), dtype)
    for i in range(out):
        a, b = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avg_pool2d(x, output_size):
    """Average pooling of `x` `(N, C, H, W)` to `output_size` `(OH, OW)` with PyTorch's bins
    (possibly overlapping): a mean over equal blocks when the sizes divide, else a product with
    one averaging matrix per axis."""
    n, c, h, w = shape_of(x)
    oh, ow = output_size
    if h % oh == 0 and w % ow == 0:
        r = ops.reshape(x, (n, c, oh, h // oh, ow, w // ow))
        return ops.sum(r, axis=(3, 5)) * (1.0 / ((h // oh) * (w // ow)))
    dt = ops.dtype_of(x)
    mh, mw = _adaptive_matrix(h, oh, dt), _adaptive_matrix(w, ow, dt)
    return ops.matmul(ops.matmul(mh, x), np.ascontiguousarray(mw.T))


# --- max pooling ------------------------------------------------------------------------------
# max_pool2d picks, in each window, the first largest entry (PyTorch's choice at ties). Its
# derivative is a selection by a mask that depends on x only through which entry wins, so the
# VJP scatters g to the winners (`pool_scatter`) and the JVP gathers the tangent at the winners
# (`pool_gather`); the two are linear in their first argument and each other's transpose, which
# is all higher derivatives need (the mask is locally constant).

def _offsets(kernel, stride, out_hw):
    """For each window offset (i, j): the slice of the padded input that offset visits."""
    (kh, kw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield (slice(None), slice(None), slice(i, i + sh * (oh - 1) + 1, sh),
                   slice(j, j + sw * (ow - 1) + 1, sw))


def _tiles(x, kernel, out_hw, scratch=False):
    """Non-overlapping windows (stride = kernel, no padding) as a contiguous
    `(kh*kw, N, OH, OW, C)` array: each window offset becomes one contiguous slab, so the
    per-offset comparisons below run over long runs of memory instead of strided fours (in
    this thread's workspace with `scratch`, for a caller that is done with it before the next
    call)."""
    (kh, kw), (oh, ow) = kernel, out_hw
    n, c = x.shape[:2]
    xh = x[:, :, :oh * kh, :ow * kw].transpose(0, 2, 3, 1).reshape(n, oh, kh, ow, kw, c)
    shape = (kh, kw, n, oh, ow, c)
    out = _workspace('tiles', shape, x.dtype) if scratch else np.empty(shape, x.dtype)
    np.copyto(out, xh.transpose(2, 4, 0, 1, 3, 5))
    return out.reshape(kh * kw, n, oh, ow, c)


def _is_tiling(kernel, stride, padding):
    return kernel == stride and padding == (0, 0)


def _tile_masks(x, ans, kernel, tiles=None):
    """Per window offset (i, j): where it holds its window's first maximum, `(N, OH, OW, C)`
    (from x's `tiles` when the forward pass kept them)."""
    kh, kw = kernel
    if tiles is None:
        tiles = _tiles(x, kernel, ans.shape[2:], scratch=True)
    a = np.ascontiguousarray(ans.transpose(0, 2, 3, 1))
    free = np.ones(a.shape, bool)
    for k in range(kh * kw):
        m = np.equal(tiles[k], a)
        m &= free
        if k + 1 < kh * kw:
            np.greater(free, m, out=free)         # free and not m
        yield divmod(k, kw), m


def _pool_impl(x, *tiles, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        out_hw = _pool_out_hw(x.shape, kernel, stride, padding)
        t = tiles[0] if tiles else _tiles(x, kernel, out_hw, scratch=True)
        return t.max(axis=0).transpose(0, 3, 1, 2)
    xp = _pad_hw(x, padding, -np.inf)
    out = None
    for sl in _offsets(kernel, stride, _pool_out_hw(x.shape, kernel, stride, padding)):
        out = xp[sl].copy(order='K') if out is None else np.maximum(out, xp[sl], out=out)
    return out


def _pool_masks(x, ans, kernel, stride, padding):
    """`(slice, mask)` per window offset: where that offset holds its window's first maximum
    (never in the padding: an input of -inf wins over it, as in PyTorch)."""
    xp = _pad_hw(x, padding, -np.inf)
    inside = None if padding == (0, 0) else \
        _pad_hw(np.ones((1, 1) + x.shape[2:], bool), padding, False)
    taken = np.zeros(ans.shape, bool)
    for sl in _offsets(kernel, stride, ans.shape[2:]):
        m = (xp[sl] == ans) & ~taken
        if inside is not None:
            m &= inside[sl]
        taken |= m
        yield sl, m


def _pool_out_hw(shape, kernel, stride, padding):
    return tuple(conv_output_size(d, k, s, p)
                 for d, k, s, p in zip(shape[2:], kernel, stride, padding))


def _scatter_tiles(g, x, ans, kernel, tiles=None):
    """`g` at each (non-overlapping) window's first maximum, zeros elsewhere."""
    (kh, kw), (n, c, h, w), (oh, ow) = kernel, x.shape, ans.shape[2:]
    gh = np.ascontiguousarray(g.transpose(0, 2, 3, 1))
    # straight into the image, channels-last (zeros only where no window reaches)
    exact = (oh * kh, ow * kw) == (h, w)
    img = (np.empty if exact else np.zeros)((n, h, w, c), g.dtype)
    iv = img[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
    for (i, j), m in _tile_masks(x, ans, kernel, tiles):
        np.multiply(gh, m, out=iv[:, :, i, :, j])   # (copyto with where= is far slower)
    return img.transpose(0, 3, 1, 2)


def _gather_tiles(t, x, ans, kernel, tiles=None):
    """`t` read at each (non-overlapping) window's first maximum."""
    t_tiles = _tiles(t, kernel, ans.shape[2:])
    out = np.zeros(t_tiles.shape[1:], t.dtype)
    for (i, j), m in _tile_masks(x, ans, kernel, tiles):
        out += t_tiles[i * kernel[1] + j] * m  # the masks are disjoint
    return out.transpose(0, 3, 1, 2)


def _pool_scatter_impl(g, x, ans, *, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        return _scatter_tiles(g, x, ans, kernel)
    (ph, pw), (n, c, h, w) = padding, x.shape
    # the layout of x (channels-last memory after a conv), so the relu before sees one layout
    out = _pad_hw(np.zeros_like(x, dtype=g.dtype), padding, 0)
    for sl, m in _pool_masks(x, ans, kernel, stride, padding):
        out[sl] += np.where(m, g, 0)
    return out[:, :, ph:ph + h, pw:pw + w]


def _pool_gather_impl(t, x, ans, *, kernel, stride, padding):
    if _is_tiling(kernel, stride, padding):
        return _gather_tiles(t, x, ans, kernel)
    tp = _pad_hw(t, padding, 0)
    out = np.zeros(ans.shape, dtype=t.dtype)
    for sl, m in _pool_masks(x, ans, kernel, stride, padding):
        out += np.where(m, tp[sl], 0)
    return out


def _pool_vjp(g, ans, x, *tiles, **p):
    if tiles and _plain(g):
        return _scatter_tiles(g, x, ans, p['kernel'], tiles[0])
    return pool_scatter(g, x, ans, **p)


def _pool_jvp(t, ans, x, *tiles, **p):
    if tiles and _plain(t):
        return _gather_tiles(t, x, ans, p['kernel'], tiles[0])
    return pool_gather(t, x, ans, **p)


# Arguments: x and, from the eager path only, for non-overlapping windows, x's tiles (see
# `_saved_tiles`): a constant equal to what the rules would compute from x, never
# differentiated; traced rules recompute what they need from x.
max_pool2d_p = Primitive('max_pool2d', _pool_impl, vjp=[_pool_vjp, None], jvp=[_pool_jvp, None])
pool_scatter_p = Primitive(
    'pool_scatter', _pool_scatter_impl,
    vjp=[lambda g, out, u, x, ans, **p: pool_gather(g, x, ans, **p), None, None],
    jvp=[lambda t, out, u, x, ans, **p: pool_scatter(t, x, ans, **p), None, None])
pool_gather_p = Primitive(
    'pool_gather', _pool_gather_impl,
    vjp=[lambda g, out, t, x, ans, **p: pool_scatter(g, x, ans, **p), None, None],
    jvp=[lambda t, out, u, x, ans, **p: pool_gather(t, x, ans, **p), None, None])


def max_pool2d(x, kernel, stride, padding):
    """Max over `kernel` windows of `x` `(N, C, H, W)` (padding with -inf); arguments as pairs,
    checked by `chainrule.nn.functional.max_pool2d`."""
    p = dict(kernel=kernel, stride=stride, padding=padding)
    tiles = _saved_tiles(x, kernel, stride, padding)
    return bind(max_pool2d_p, x, **p) if tiles is None else bind(max_pool2d_p, x, tiles, **p)


def _saved_tiles(x, kernel, stride, padding):
    """x's non-overlapping windows as `_tiles` (a fresh array), for `max_pool2d_p` to take
    the max of and keep as a residual: the backward pass then finds each window's winner by
    comparisons over contiguous slabs, without rearranging x again (x's size, kept until
    backward). Only for a tiling pool of a Tensor that requires grad or a value traced by
    reverse or forward mode over concrete inputs; None for plain arrays and under jit and
    vmap."""
    if not _is_tiling(kernel, stride, padding) or not isinstance(x, Tracer) or \
            getattr(x, 'requires_grad', True) is False:
        return None
    try:
        xv = concrete(x)
    except ConcretizationError:
        return None
    if not isinstance(xv, np.ndarray):
        return None
    return _tiles(xv, kernel, _pool_out_hw(xv.shape, kernel, stride, padding))


def pool_scatter(g, x, ans, **p):
    """The VJP of `max_pool2d`: `g` `(N, C, OH, OW)` added at each window's maximum of `x`."""
    return bind(pool_scatter_p, g, ops.stop_gradient(x), ops.stop_gradient(ans), **p)


def pool_gather(t, x, ans, **p):
    """The JVP of `max_pool2d`: `t` (shaped like `x`) read at each window's maximum."""
    return bind(pool_gather_p, t, ops.stop_gradient(x), ops.stop_gradient(ans), **p)


# --- batching rules (vmap) ----------------------------------------------------------------------

def _conv_batch(args, dims, **p):
    b, cols = _bias_cols(tuple(args[2:]))
    if cols is not None:        # x unbatched and concrete: its columns are not needed here
        args, dims = args[:-1], dims[:-1]
    x, w = args[:2]
    if dims[1] is None and (not b or dims[2] is None):       # shared weights: B merges into N
        sx = shape_of(x)
        out = bind(conv2d_p, ops.reshape(x, (sx[0] * sx[1],) + tuple(sx[2:])), w, *b, **p)
        return ops.reshape(out, tuple(sx[:2]) + tuple(shape_of(out)[1:])), 0
    # per-example weights: unfold every image, then one batched product with the weights
    size = _batch_size(args, dims)
    xs, ws = _stacked(x, dims[0], size), _stacked(w, dims[1], size)
    _, n, c, h, wd = shape_of(xs)
    _, o, _, kh, kw = shape_of(ws)
    cols = unfold(ops.reshape(xs, (size * n, c, h, wd)), (kh, kw), p['stride'], p['padding'],
                  p.get('dilation', 1))
    _, oh, ow, k = shape_of(cols)
    w2 = ops.reshape(ops.transpose(ws, (0, 1, 3, 4, 2)), (size, o, k))
    out = ops.matmul(ops.reshape(cols, (size, n * oh * ow, k)), ops.transpose(w2, (0, 2, 1)))
    if b:
        out = out + ops.reshape(_stacked(b[0], dims[2], size), (size, 1, o))
    return ops.transpose(ops.reshape(out, (size, n, oh, ow, o)), (0, 1, 4, 2, 3)), 0


conv2d_p.batch = _conv_batch
for _p in (unfold_p, fold_p, pool_scatter_p, pool_gather_p):
    _p.batch = _merged_batch(_p)
# (x's tiles, a residual of concrete values only, never reach a batching rule batched; they
# are dropped, and the rule's own pass recomputes what it needs)
max_pool2d_p.batch = lambda args, dims, **p: _merged_batch(max_pool2d_p)(args[:1], dims[:1],
                                                                          **p)
