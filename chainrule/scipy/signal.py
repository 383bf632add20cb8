"""`scipy.signal`'s convolutions on chainrule: `convolve`, `correlate` and `fftconvolve`, n-d,
modes 'full', 'same' (SciPy's centring) and 'valid', differentiable in both inputs to any order
and batched under `vmap`.

What this module lets you do: differentiate signal- and image-processing code written with
SciPy's convolutions (a learned filter, a deconvolution loss) by changing one import.

One primitive, `convolve`, computes the full n-d convolution over the trailing axes of two
arrays whose leading `nbatch` axes are batch axes of one shape. Everything else is a composite:
'same' and 'valid' slice the full result, correlation is convolution with the flipped
(conjugated) second input. The primitive is bilinear, so its JVP is itself with a tangent in
one slot, and its VJP is a correlation -- the same primitive with the other input flipped,
sliced to the valid part:

    z = x * k (full)  =>  x_bar = valid(g * flip(k)),  k_bar = valid(g * flip(x))

(chainrule's unconjugated pairing: no conjugation in the transpose). The batching rule adds the
mapped axis to the batch axes. `method` picks the direct sum (a loop over the smaller input's
elements, each a vectorised multiply-add) or the FFT (NumPy's `rfftn`/`fftn`); 'auto' chooses
by an operation count.
"""

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, Tracer, bind

__all__ = ['convolve', 'correlate', 'fftconvolve']


# --- the primitive ----------------------------------------------------------------------------

def _direct(x, k, nbatch):
    """Full convolution by a loop over k's elements (k the smaller input)."""
    bshape = x.shape[:nbatch]
    n, m = x.shape[nbatch:], k.shape[nbatch:]
    out = np.zeros(bshape + tuple(a + b - 1 for a, b in zip(n, m)), np.result_type(x, k))
    ones = (1,) * len(n)
    for idx in np.ndindex(m):
        w = k[(Ellipsis,) + idx].reshape(bshape + ones)
        out[(Ellipsis,) + tuple(slice(i, i + a) for i, a in zip(idx, n))] += w * x
    return out


def _fft(x, k, nbatch):
    axes = tuple(range(nbatch, x.ndim))
    size = tuple(a + b - 1 for a, b in zip(x.shape[nbatch:], k.shape[nbatch:]))
    dt = np.result_type(x, k, np.float32)
    if dt.kind == 'c':
        out = np.fft.ifftn(np.fft.fftn(x, size, axes) * np.fft.fftn(k, size, axes), size, axes)
    else:
        out = np.fft.irfftn(np.fft.rfftn(x, size, axes) * np.fft.rfftn(k, size, axes), size, axes)
    res = np.result_type(x, k)
    if res.kind in 'iub':       # SciPy returns integers for integer inputs: round the FFT's
        return np.rint(out).astype(res)
    return out.astype(res, copy=False)


def _choose(x, k, nbatch):
    """'direct' or 'fft' by the operation counts of the two methods (direct: N M products;
    FFT: a few transforms of the full size, ~ S log S each)."""
    n, m = x.size // max(1, int(np.prod(x.shape[:nbatch]))), k.size // max(
        1, int(np.prod(k.shape[:nbatch])))
    full = np.prod([a + b - 1 for a, b in zip(x.shape[nbatch:], k.shape[nbatch:])])
    return 'direct' if min(n, m) * max(n, m) <= 12 * full * np.log2(max(full, 2)) + 2000 \
        else 'fft'


def _convolve_impl(x, k, *, nbatch, method):
    x, k = np.asarray(x), np.asarray(k)
    if method == 'auto':
        method = _choose(x, k, nbatch)
    if method == 'fft':
        return _fft(x, k, nbatch)
    # the loop runs over the smaller input (convolution commutes)
    return _direct(x, k, nbatch) if k[(0,) * nbatch].size <= x[(0,) * nbatch].size else \
        _direct(k, x, nbatch)


def _flip(x, nbatch):
    nd = len(ops.shape_of(x))
    return ops.getitem(x, (slice(None),) * nbatch + (slice(None, None, -1),) * (nd - nbatch))


def _valid_part(z, start, size, nbatch):
    return ops.getitem(z, (slice(None),) * nbatch +
                       tuple(slice(s, s + n) for s, n in zip(start, size)))


def _conv_vjp(g, other, own, nbatch, method):
    # the transpose of t -> t * other: correlate g with `other`, keeping own's extent
    m = ops.shape_of(other)[nbatch:]
    full = bind(convolve_p, g, _flip(other, nbatch), nbatch=nbatch, method=method)
    ct = _valid_part(full, [a - 1 for a in m], ops.shape_of(own)[nbatch:], nbatch)
    if ops.dtype_of(ct).kind == 'c' and ops.dtype_of(own).kind != 'c':
        ct = ops.real(ct)
    return ct


def _conv_batch(args, dims, *, nbatch, method):
    size = next(ops.shape_of(a)[0] for a, d in zip(args, dims) if d is not None)
    args = [a if d is not None else ops.broadcast_to(a, (size,) + tuple(ops.shape_of(a)))
            for a, d in zip(args, dims)]
    return bind(convolve_p, *args, nbatch=nbatch + 1, method=method), 0


convolve_p = Primitive(
    'convolve', _convolve_impl,
    vjp=[lambda g, z, x, k, *, nbatch, method: _conv_vjp(g, k, x, nbatch, method),
         lambda g, z, x, k, *, nbatch, method: _conv_vjp(g, x, k, nbatch, method)],
    jvp=[lambda t, z, x, k, *, nbatch, method: bind(convolve_p, t, k, nbatch=nbatch,
                                                    method=method),
         lambda t, z, x, k, *, nbatch, method: bind(convolve_p, x, t, nbatch=nbatch,
                                                    method=method)],
    batch=_conv_batch)


# --- the SciPy functions ----------------------------------------------------------------------

_MODES = ('full', 'same', 'valid')


def _check(name, in1, in2, mode, method):
    if mode not in _MODES:
        raise ValueError(f"{name}: mode must be 'full', 'same' or 'valid', got {mode!r}")
    if method not in ('auto', 'direct', 'fft'):
        raise ValueError(f"{name}: method must be 'auto', 'direct' or 'fft', got {method!r}")
    s1, s2 = ops.shape_of(in1), ops.shape_of(in2)
    if len(s1) != len(s2):
        raise ShapeError(f'{name}: in1 and in2 should have the same dimensionality, got shapes '
                         f'{s1} and {s2}')
    if 0 in s1 or 0 in s2:
        raise ShapeError(f'{name}: empty input, shapes {s1} and {s2}')


def _as_input(x):
    return x if isinstance(x, Tracer) else np.asarray(x)


def _convolve_axes(name, in1, in2, mode, axes, method):
    """The convolution of in1 and in2 over `axes` (None: all), other axes broadcast."""
    in1, in2 = _as_input(in1), _as_input(in2)
    _check(name, in1, in2, mode, method)
    nd = len(ops.shape_of(in1))
    if nd == 0:
        return ops.mul(in1, in2)
    axes = tuple(sorted(ops.normalize_axis(axes, nd, name)))
    s1, s2 = ops.shape_of(in1), ops.shape_of(in2)
    others = [i for i in range(nd) if i not in axes]
    try:
        bshape = np.broadcast_shapes(tuple(s1[i] for i in others), tuple(s2[i] for i in others))
    except ValueError:
        raise ShapeError(f'{name}: shapes {s1} and {s2} must agree (or be 1) on the axes that '
                         f'are not convolved ({tuple(others)})') from None
    n = [s1[i] for i in axes]
    m = [s2[i] for i in axes]
    if mode == 'valid' and not (all(a >= b for a, b in zip(n, m)) or
                                all(b >= a for a, b in zip(n, m))):
        raise ShapeError(f"{name}: for 'valid' mode, one input must be at least as large as the "
                         f'other in every convolved dimension, got shapes {s1} and {s2}')
    perm = tuple(others) + axes
    x = ops.transpose(in1, perm)
    k = ops.transpose(in2, perm)
    nb = len(others)
    x = ops.broadcast_to(x, tuple(bshape) + tuple(n))
    k = ops.broadcast_to(k, tuple(bshape) + tuple(m))
    full = bind(convolve_p, x, k, nbatch=nb, method=method)
    if mode == 'full':
        out = full
    elif mode == 'same':       # SciPy's centring: the middle len(in1) entries of the full result
        out = _valid_part(full, [(a + b - 1 - a) // 2 for a, b in zip(n, m)], n, nb)
    else:
        out = _valid_part(full, [min(a, b) - 1 for a, b in zip(n, m)],
                          [abs(a - b) + 1 for a, b in zip(n, m)], nb)
    inv = tuple(int(i) for i in np.argsort(perm))
    return ops.transpose(out, inv)


def convolve(in1, in2, mode='full', method='auto'):
    """The n-d convolution of `in1` and `in2` (same number of dimensions), as SciPy's.

    Args:
        mode: 'full' (every overlap), 'same' (in1's shape, centred on the full result as SciPy
            does) or 'valid' (only complete overlaps; one input must be at least as large as
            the other in every dimension).
        method: 'auto', 'direct' or 'fft'.
    """
    return _convolve_axes('convolve', in1, in2, mode, None, method)


def correlate(in1, in2, mode='full', method='auto'):
    """The n-d cross-correlation `z[k] = sum_n in1[n + k] conj(in2[n])`, as SciPy's: the
    convolution of `in1` with the flipped, conjugated `in2` (modes as for `convolve`)."""
    in1, in2 = _as_input(in1), _as_input(in2)
    _check('correlate', in1, in2, mode, method)
    nd = len(ops.shape_of(in2))
    flipped = ops.getitem(in2, (slice(None, None, -1),) * nd) if nd else in2
    if ops.dtype_of(in2).kind == 'c':
        flipped = ops.conj(flipped)
    return _convolve_axes('correlate', in1, flipped, mode, None, method)


def fftconvolve(in1, in2, mode='full', axes=None):
    """The convolution of `in1` and `in2` by FFT, as SciPy's `fftconvolve`: over `axes` (all
    by default); the other axes must agree or be 1, and broadcast."""
    return _convolve_axes('fftconvolve', in1, in2, mode, axes, 'fft')
