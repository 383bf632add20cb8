"""`F.interpolate`'s linear modes -- 'linear', 'bilinear', 'trilinear' and 'bicubic' -- as
PyTorch computes them: separable, one spatial axis at a time, each output position a fixed
weighted sum of input positions along that axis (a gather and a multiply: composites with no
derivative code, so they differentiate and run under the transforms).

Source position of output index `i` (scale `s` = in / out, or 1 / scale_factor):
`align_corners=False`: `(i + 0.5) s - 0.5` (clamped at 0 for the linear modes);
`align_corners=True`: `i (in - 1) / (out - 1)`. Linear modes blend the two neighbours;
'bicubic' the four, with Keys' cubic convolution kernel at `A = -0.75` (PyTorch's), indices
clamped to the border.
"""

import numpy as np

from chainrule import ops
import chainrule.numpy as cnp

# mode: number of spatial axes it applies to
MODES = {'linear': 1, 'bilinear': 2, 'trilinear': 3, 'bicubic': 2}
_A = -0.75


def _source(n_in, n_out, scale, align_corners, cubic):
    i = np.arange(n_out, dtype=np.float64)
    if align_corners:
        return i * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    src = (i + 0.5) * scale - 0.5
    return src if cubic else np.maximum(src, 0.0)


def _cubic_weights(t):
    def near(x):        # |x| <= 1
        return ((_A + 2) * x - (_A + 3)) * x * x + 1

    def far(x):         # 1 < |x| < 2
        return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _weighted_taps(x, axis, taps, dtype):
    """sum_k w_k * x[..., idx_k, ...] along `axis` (each w_k broadcast along that axis)."""
    nd = len(ops.shape_of(x))
    out = None
    for idx, w in taps:
        shape = [1] * nd
        shape[axis] = len(w)
        term = cnp.take(x, idx, axis=axis) * np.asarray(w, dtype).reshape(shape)
        out = term if out is None else out + term
    return out


def interpolate_linear(x, mode, outs, scales, align_corners):
    """Resize the spatial axes of `x` (N, C, ...) to `outs` by `mode`; `scales` the in/out
    ratios PyTorch uses when `align_corners` is False."""
    shape = ops.shape_of(x)
    dtype = ops.dtype_of(x)
    out = x
    for ax, (n_in, n_out, sc) in enumerate(zip(shape[2:], outs, scales)):
        if n_in == n_out and not align_corners and sc == 1.0:
            continue
        cubic = mode == 'bicubic'
        src = _source(n_in, n_out, sc, align_corners, cubic)
        base = np.floor(src)
        t = src - base
        base = base.astype(np.int64)
        if cubic:
            taps = [(np.clip(base + k - 1, 0, n_in - 1), w)
                    for k, w in enumerate(_cubic_weights(t))]
        else:
            i0 = np.minimum(base, n_in - 1)
            i1 = np.minimum(i0 + 1, n_in - 1)
            taps = [(i0, 1.0 - t), (i1, t)]
        out = _weighted_taps(out, 2 + ax, taps, dtype)
    return out
