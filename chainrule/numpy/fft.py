"""`chainrule.numpy.fft`: NumPy's `np.fft`, differentiable to any order.

What you can do with it: call `fft ifft fft2 ifft2 fftn ifftn rfft irfft rfft2 irfft2 rfftn
irfftn hfft ihfft fftshift ifftshift` with NumPy's arguments (`n`/`s`, `axis`/`axes`, `norm`)
on arrays, `Tensor`s or traced values, and differentiate through them in reverse or forward
mode.

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> x = np.array([1.0, 2.0, 0.0, -1.0])
    >>> energy = lambda x: cnp.sum(cnp.abs(cnp.fft.fft(x, norm='ortho')) ** 2)
    >>> cr.grad(energy)(x)        # the unitary FFT keeps sum(x**2) (Parseval): gradient 2x
    array([ 2.,  4.,  0., -2.])

Everything here is a composite of the three primitives of `chainrule.ops.fft` (where the
derivative formulas are explained): `n`/`s` crop or zero-pad the input as NumPy does, the 2-D
and 1-D versions are `*n` versions over fixed axes, and `fftshift`/`ifftshift` are `roll`s.
`fftfreq` and `rfftfreq` are NumPy's (constants). Output dtypes follow NumPy 2: float32 and
complex64 inputs give complex64 (and float32) outputs.
"""

from numpy.fft import fftfreq, rfftfreq  # noqa: F401  (constants: nothing to differentiate)

import chainrule.numpy as cnp
from chainrule.core import shape_of
from chainrule.ops import fft as _f

__all__ = ['fft', 'ifft', 'fft2', 'ifft2', 'fftn', 'ifftn', 'rfft', 'irfft', 'rfft2', 'irfft2',
           'rfftn', 'irfftn', 'hfft', 'ihfft', 'fftshift', 'ifftshift', 'fftfreq', 'rfftfreq']


def _cook(a, s, axes, name, inverse_real=False):
    """NumPy's rules for `s` and `axes`: the sizes per axis (the input's by default; for an
    inverse real transform the last is 2 (m - 1)), and the axes (the last len(s) by default)."""
    nd = len(shape_of(a))
    shapeless = s is None
    if axes is None:
        axes = list(range(nd)) if s is None else list(range(-len(s), 0))
    axes = list(axes)
    for ax in axes:
        if not -nd <= ax < nd:
            raise cnp.ShapeError(f'{name}: axis {ax} is out of bounds for shape {shape_of(a)}')
    axes = [ax % nd for ax in axes]
    s = [shape_of(a)[ax] for ax in axes] if s is None else list(s)
    if len(s) != len(axes):
        raise ValueError(f'{name}: s {tuple(s)} and axes {tuple(axes)} have different lengths')
    s = [shape_of(a)[ax] if d is None or d == -1 else int(d) for d, ax in zip(s, axes)]
    if inverse_real and shapeless:
        s[-1] = (shape_of(a)[axes[-1]] - 1) * 2
    for d in s:
        if d < 1:
            raise ValueError(f'{name}: invalid number of data points ({d}) specified')
    return s, axes


def _resized(a, s, axes):
    for d, ax in zip(s, axes):
        a = _f.resize(a, ax, d)
    return a


def _c2c(a, s, axes, norm, inverse, name):
    s, axes = _cook(a, s, axes, name)
    return _f.fftn(_resized(a, s, axes), axes, norm, inverse)


def _r2c(a, s, axes, norm, name):
    s, axes = _cook(a, s, axes, name)
    return _f.rfftn(_resized(a, s, axes), axes, norm)


def _c2r(a, s, axes, norm, name):
    s, axes = _cook(a, s, axes, name, inverse_real=True)
    n = s[-1]
    a = _resized(a, s[:-1] + [n // 2 + 1], axes)
    return _f.irfftn(a, axes, n, norm)


def _one(n):
    return None if n is None else [n]


def fft(a, n=None, axis=-1, norm=None):
    """The 1-D discrete Fourier transform along `axis` (input cropped/zero-padded to `n`)."""
    return _c2c(a, _one(n), [axis], norm, False, 'fft')


def ifft(a, n=None, axis=-1, norm=None):
    """The 1-D inverse discrete Fourier transform along `axis`."""
    return _c2c(a, _one(n), [axis], norm, True, 'ifft')


def fft2(a, s=None, axes=(-2, -1), norm=None):
    """The 2-D discrete Fourier transform over `axes`."""
    return _c2c(a, s, axes, norm, False, 'fft2')


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """The 2-D inverse discrete Fourier transform over `axes`."""
    return _c2c(a, s, axes, norm, True, 'ifft2')


def fftn(a, s=None, axes=None, norm=None):
    """The N-D discrete Fourier transform over `axes` (all axes by default)."""
    return _c2c(a, s, axes, norm, False, 'fftn')


def ifftn(a, s=None, axes=None, norm=None):
    """The N-D inverse discrete Fourier transform over `axes`."""
    return _c2c(a, s, axes, norm, True, 'ifftn')


def rfft(a, n=None, axis=-1, norm=None):
    """The 1-D FFT of a real input: the n//2 + 1 non-negative frequencies."""
    return _r2c(a, _one(n), [axis], norm, 'rfft')


def irfft(a, n=None, axis=-1, norm=None):
    """The inverse of `rfft`: `n` real points (default 2 (m - 1) for m input frequencies)."""
    return _c2r(a, _one(n), [axis], norm, 'irfft')


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """The 2-D FFT of a real input, halved along the last axis."""
    return _r2c(a, s, axes, norm, 'rfft2')


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """The inverse of `rfft2`."""
    return _c2r(a, s, axes, norm, 'irfft2')


def rfftn(a, s=None, axes=None, norm=None):
    """The N-D FFT of a real input, halved along the last of `axes`."""
    return _r2c(a, s, axes, norm, 'rfftn')


def irfftn(a, s=None, axes=None, norm=None):
    """The inverse of `rfftn`."""
    return _c2r(a, s, axes, norm, 'irfftn')


_SWAP = {None: 'forward', 'backward': 'forward', 'forward': 'backward', 'ortho': 'ortho'}


def hfft(a, n=None, axis=-1, norm=None):
    """The FFT of a Hermitian-symmetric signal given by its first half: real output of `n`
    points (NumPy: `irfft(conj(a), n)` with the opposite normalisation)."""
    return irfft(cnp.conj(a), n, axis, _SWAP[norm] if norm in _SWAP else norm)


def ihfft(a, n=None, axis=-1, norm=None):
    """The inverse of `hfft`: `conj(rfft(a, n))` with the opposite normalisation."""
    return cnp.conj(rfft(a, n, axis, _SWAP[norm] if norm in _SWAP else norm))


def _shift(x, axes, sign):
    nd = len(shape_of(x))
    axes = list(range(nd)) if axes is None else [axes] if isinstance(axes, int) else list(axes)
    shifts = [sign * (shape_of(x)[ax] // 2) for ax in axes]
    return cnp.roll(x, shifts, axes)


def fftshift(x, axes=None):
    """Move the zero frequency to the centre (a `roll` by n // 2 along each of `axes`)."""
    return _shift(x, axes, 1)


def ifftshift(x, axes=None):
    """The inverse of `fftshift` (a `roll` by -(n // 2))."""
    return _shift(x, axes, -1)

