"""Fourier primitives: the complex FFT (`fftn`, forward or inverse), the real-input FFT (`rfftn`)
and its inverse (`irfftn`), over any set of axes, with NumPy's `norm` modes.

What this module lets you do: differentiate through discrete Fourier transforms, to any order.
`chainrule.numpy.fft` builds NumPy's API on these three primitives (`n`/`s` by cropping and
zero-padding the input, `fft2`, `fftshift`, ... as composites).

All three are linear (real-linear for `irfftn`), so their JVP is the op applied to the tangent
(`linear=True`), and their VJP is the transpose under chainrule's pairing `Re(sum(g * t))`
(no conjugation):

- The DFT matrix is symmetric (`F[j, k] = exp(-2 pi i j k / n)`), so the transpose of `fftn`
  is `fftn` itself and that of `ifftn` is `ifftn`, with the same `norm` scaling.
- `rfftn` is the full FFT of a real input, keeping the first n//2 + 1 frequencies along the
  last axis. Its transpose pads the cotangent back to length n with zeros, applies the same
  FFT, and keeps the real part (the transpose of embedding the reals in the complex numbers).
- `irfftn` reads its input as the non-redundant half of a Hermitian spectrum c:
  x_j = (1/n) Re(sum_k w_k c_k exp(2 pi i j k / n)), with w_k = 2 for the frequencies that
  stand for a conjugate pair and w_k = 1 for the zero frequency and (n even) the Nyquist one,
  whose imaginary parts are ignored. Its transpose is therefore `w * ifftn(g)`, cropped to the
  half-spectrum.
"""

import numpy as np

from chainrule import ops
from chainrule.core import Primitive, ShapeError, Tracer, bind

__all__ = ['fftn', 'rfftn', 'irfftn', 'resize', 'NORMS']

NORMS = (None, 'backward', 'ortho', 'forward')


def _shift_axes(axes):
    """The vmap rule's view of `axes`: the batch axis is in front."""
    return tuple(a + 1 for a in axes)


def _fftn_impl(x, *, axes, norm, inverse):
    return (np.fft.ifftn if inverse else np.fft.fftn)(x, axes=axes, norm=norm)


fftn_p = Primitive(
    'fftn', _fftn_impl, linear=True,
    vjp=[lambda g, ans, x, *, axes, norm, inverse: fftn(g, axes, norm, inverse)],
    batch=lambda args, dims, *, axes, norm, inverse:
        (fftn(args[0], _shift_axes(axes), norm, inverse), 0))


def _rfftn_vjp(g, ans, x, *, axes, norm):
    n = ops.shape_of(x)[axes[-1]]
    return ops.real(fftn(resize(g, axes[-1], n), axes, norm, False))


rfftn_p = Primitive(
    'rfftn', lambda x, *, axes, norm: np.fft.rfftn(x, axes=axes, norm=norm), linear=True,
    vjp=[_rfftn_vjp],
    batch=lambda args, dims, *, axes, norm: (rfftn(args[0], _shift_axes(axes), norm), 0))


def _hermitian_weights(n, axis, ndim, dtype):
    """w_k along `axis`: 1 for the zero frequency and (n even) the Nyquist one, 2 otherwise."""
    m = n // 2 + 1
    w = np.full(m, 2.0, dtype=dtype)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w.reshape(tuple(m if i == axis else 1 for i in range(ndim)))


def _irfftn_vjp(g, ans, x, *, axes, n, norm):
    gs = ops.shape_of(g)
    cdt = np.result_type(ops.dtype_of(g), np.complex64)
    full = fftn(ops.astype(g, cdt), axes, norm, True)
    half = resize(full, axes[-1], n // 2 + 1)
    return ops.mul(half, _hermitian_weights(n, axes[-1], len(gs), ops.dtype_of(g)))


def _irfftn_impl(x, *, axes, n, norm):
    s = [x.shape[a] for a in axes[:-1]] + [n]
    return np.fft.irfftn(x, s=s, axes=axes, norm=norm)


irfftn_p = Primitive(
    'irfftn', _irfftn_impl, linear=True, vjp=[_irfftn_vjp],
    batch=lambda args, dims, *, axes, n, norm: (irfftn(args[0], _shift_axes(axes), n, norm), 0))


# --- wrappers ---------------------------------------------------------------------------------

def _check(name, x, axes, norm):
    if norm not in NORMS:
        raise ValueError(f'{name}: invalid norm {norm!r}; use "backward", "ortho" or "forward"')
    nd = len(ops.shape_of(x))
    out = []
    for a in axes:
        a = int(a)
        if not -nd <= a < nd:
            raise ShapeError(f'{name}: axis {a} is out of bounds for shape {ops.shape_of(x)}')
        out.append(a % nd)
    if len(set(out)) != len(out):
        raise ShapeError(f'{name}: repeated axes {tuple(axes)}')
    for a in out:
        if ops.shape_of(x)[a] < 1:
            raise ShapeError(f'{name}: axis {a} of shape {ops.shape_of(x)} has no points')
    return tuple(out), None if norm == 'backward' else norm


def _complex(x):
    dt = ops.dtype_of(x)
    cdt = np.result_type(dt, np.complex64) if dt.kind in 'fc' else np.dtype(np.complex128)
    if isinstance(x, Tracer):
        return ops.astype(x, cdt)
    return np.asarray(x, cdt)


def fftn(x, axes, norm=None, inverse=False):
    """The complex FFT (or, with `inverse`, its inverse) of `x` over `axes`."""
    axes, norm = _check('ifftn' if inverse else 'fftn', x, axes, norm)
    if not axes:
        return _complex(x)
    return bind(fftn_p, _complex(x), axes=axes, norm=norm, inverse=bool(inverse))


def rfftn(x, axes, norm=None):
    """The FFT of real `x` over `axes`, halved (n//2 + 1 frequencies) along the last of them."""
    axes, norm = _check('rfftn', x, axes, norm)
    dt = ops.dtype_of(x)
    if dt.kind == 'c':
        raise TypeError(f'rfftn: the input must be real, got dtype {dt} (use fftn for complex '
                        'input, or take .real first)')
    if not axes:
        raise ShapeError('rfftn: needs at least one axis')
    if dt.kind != 'f':
        x = ops.astype(x, np.float64) if isinstance(x, Tracer) else np.asarray(x, np.float64)
    return bind(rfftn_p, x, axes=axes, norm=norm)


def irfftn(x, axes, n, norm=None):
    """The inverse of `rfftn`: `x` holds n//2 + 1 frequencies along the last of `axes`, and
    the result has `n` real points there."""
    axes, norm = _check('irfftn', x, axes, norm)
    if not axes:
        raise ShapeError('irfftn: needs at least one axis')
    n = int(n)
    if n < 1:
        raise ShapeError(f'irfftn: invalid number of output points {n}')
    have = ops.shape_of(x)[axes[-1]]
    if have != n // 2 + 1:
        raise ShapeError(f'irfftn: for {n} output points axis {axes[-1]} of the input must have '
                         f'{n // 2 + 1} frequencies, got shape {ops.shape_of(x)}')
    return bind(irfftn_p, _complex(x), axes=axes, n=n, norm=norm)


def resize(x, axis, n):
    """`x` cropped or zero-padded to length `n` along `axis` (how NumPy's FFTs apply `n`/`s`)."""
    s = ops.shape_of(x)
    have = s[axis]
    if n == have:
        return x
    if n < have:
        return ops.getitem(x, (slice(None),) * axis + (slice(0, n),))
    pad = np.zeros(s[:axis] + (n - have,) + s[axis + 1:], ops.dtype_of(x))
    if not isinstance(x, Tracer):
        return np.concatenate([x, pad], axis)
    return ops.concatenate([x, pad], axis)
