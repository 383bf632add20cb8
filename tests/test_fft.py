"""Tests of `chainrule.numpy.fft`: forward values and dtypes equal NumPy's for every function and
argument form (`n`/`s` cropping and padding, `axis`/`axes`, `norm`); derivatives equal finite
differences to second order in reverse and forward mode; gradients equal PyTorch's; analytic
values (Parseval); vmap; errors."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads

F = cnp.fft
MODES = ('rev', 'fwd')
rng = np.random.default_rng(0)
X = rng.standard_normal((4, 6, 5))
XC = X + 1j * rng.standard_normal(X.shape)
X1 = rng.standard_normal(7)

# (id, function of one array, the same call in NumPy, inputs)
CASES = [
    ('fft', lambda a: F.fft(a), np.fft.fft, [X, XC, X1]),
    ('fft_pad_ortho', lambda a: F.fft(a, 8, axis=1, norm='ortho'),
     lambda a: np.fft.fft(a, 8, axis=1, norm='ortho'), [X, XC]),
    ('fft_crop_forward', lambda a: F.fft(a, 3, axis=0, norm='forward'),
     lambda a: np.fft.fft(a, 3, axis=0, norm='forward'), [XC]),
    ('ifft', lambda a: F.ifft(a, 4), lambda a: np.fft.ifft(a, 4), [X, XC]),
    ('fft2', lambda a: F.fft2(a), np.fft.fft2, [XC]),
    ('fft2_s', lambda a: F.fft2(a, (3, 8)), lambda a: np.fft.fft2(a, (3, 8)), [X]),
    ('ifft2', lambda a: F.ifft2(a, axes=(0, 2), norm='ortho'),
     lambda a: np.fft.ifft2(a, axes=(0, 2), norm='ortho'), [XC]),
    ('fftn', lambda a: F.fftn(a), np.fft.fftn, [XC]),
    ('fftn_s', lambda a: F.fftn(a, s=(5, 4)), lambda a: np.fft.fftn(a, s=(5, 4), axes=(1, 2)), [X]),
    ('ifftn', lambda a: F.ifftn(a, axes=(2, 0), norm='forward'),
     lambda a: np.fft.ifftn(a, axes=(2, 0), norm='forward'), [XC]),
    ('rfft', lambda a: F.rfft(a), np.fft.rfft, [X, X1]),
    ('rfft_n', lambda a: F.rfft(a, 8, axis=1, norm='ortho'),
     lambda a: np.fft.rfft(a, 8, axis=1, norm='ortho'), [X]),
    ('rfft2', lambda a: F.rfft2(a, norm='forward'), lambda a: np.fft.rfft2(a, norm='forward'), [X]),
    ('rfftn', lambda a: F.rfftn(a), np.fft.rfftn, [X]),
    ('rfftn_s_axes', lambda a: F.rfftn(a, s=(3, 4), axes=(2, 0)),
     lambda a: np.fft.rfftn(a, s=(3, 4), axes=(2, 0)), [X]),
    ('irfft', lambda a: F.irfft(a), np.fft.irfft, [XC]),
    ('irfft_odd_ortho', lambda a: F.irfft(a, 7, axis=1, norm='ortho'),
     lambda a: np.fft.irfft(a, 7, axis=1, norm='ortho'), [XC]),
    ('irfft_real_input', lambda a: F.irfft(a, 9), lambda a: np.fft.irfft(a, 9), [X]),
    ('irfft2', lambda a: F.irfft2(a), np.fft.irfft2, [XC]),
    ('irfftn', lambda a: F.irfftn(a), np.fft.irfftn, [XC]),
    ('irfftn_s', lambda a: F.irfftn(a, s=(5, 5), axes=(0, 1), norm='forward'),
     lambda a: np.fft.irfftn(a, s=(5, 5), axes=(0, 1), norm='forward'), [XC]),
    ('hfft', lambda a: F.hfft(a, 6), lambda a: np.fft.hfft(a, 6), [XC]),
    ('ihfft', lambda a: F.ihfft(a, norm='ortho'), lambda a: np.fft.ihfft(a, norm='ortho'), [X]),
    ('fftshift', lambda a: F.fftshift(a), np.fft.fftshift, [X, XC]),
    ('fftshift_axes', lambda a: F.fftshift(a, axes=(0, 2)),
     lambda a: np.fft.fftshift(a, axes=(0, 2)), [X]),
    ('ifftshift', lambda a: F.ifftshift(a, axes=1), lambda a: np.fft.ifftshift(a, axes=1), [XC]),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_forward_equals_numpy(case):
    _, f, ref, xs = case
    for x in xs:
        got, want = f(x), ref(x)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        traced = f(cr.Tensor(x))
        np.testing.assert_allclose(traced.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_gradients_match_finite_differences(case):
    _, f, _, xs = case
    for x in xs:
        check_grads(f, (x,), order=2, modes=MODES)


@pytest.mark.parametrize('case', [c for c in CASES if c[0] in ('fft', 'rfft2', 'irfft', 'ifftn')],
                         ids=['fft', 'rfft2', 'irfft', 'ifftn'])
def test_float32(case):
    _, f, ref, xs = case
    x = xs[0].astype(np.complex64 if np.iscomplexobj(xs[0]) else np.float32)
    got, want = f(x), ref(x)
    assert got.dtype == want.dtype        # NumPy 2: complex64 / float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    check_grads(f, (x,), order=1, modes=MODES)


def test_parseval_and_analytic_gradients():
    x = X1
    n = len(x)
    # sum |fft x|^2 = n sum x^2, so its gradient is 2 n x
    np.testing.assert_allclose(cr.grad(lambda x: cnp.sum(cnp.abs(F.fft(x)) ** 2))(x), 2 * n * x,
                               rtol=1e-12)
    # with norm='ortho' the transform is unitary: gradient 2 x
    np.testing.assert_allclose(
        cr.grad(lambda x: cnp.sum(cnp.abs(F.fft(x, norm='ortho')) ** 2))(x), 2 * x, rtol=1e-12)
    # the zero frequency of rfft is the sum: gradient of its real part is all ones
    np.testing.assert_allclose(cr.grad(lambda x: cnp.real(F.rfft(x)[0]))(x), np.ones(n))
    # irfft(rfft(x)) = x, so the gradient of <w, irfft(rfft(x))> is w
    w = rng.standard_normal(n)
    np.testing.assert_allclose(cr.grad(lambda x: cnp.sum(w * F.irfft(F.rfft(x), n)))(x), w,
                               rtol=1e-12)
    # complex input, JAX's convention: grad of |fft(z)[k]|^2 is 2 conj(fft(z)[k]) conj(e_k)
    z = XC[0, 0]
    k = 2
    e = np.exp(-2j * np.pi * k * np.arange(len(z)) / len(z))
    want = 2 * np.conj(np.fft.fft(z)[k]) * e
    np.testing.assert_allclose(cr.grad(lambda z: cnp.abs(F.fft(z)[k]) ** 2)(z), want, rtol=1e-12)


def _torch_grad(torch_f, x):
    torch = pytest.importorskip('torch')
    t = torch.tensor(x, requires_grad=True)
    torch_f(torch, t).backward()
    return np.conj(t.grad.numpy())    # PyTorch's complex gradient is the conjugate of ours


def _loss(z):
    return cnp.sum(cnp.real(z) ** 3) + cnp.sum(cnp.sin(cnp.imag(z))) if cnp.iscomplexobj(z) \
        else cnp.sum(z ** 3)


def _torch_loss(T, z):
    return (z.real ** 3).sum() + T.sin(z.imag).sum() if z.is_complex() else (z ** 3).sum()


TORCH = [
    ('fft', lambda a: F.fft(a, 8, axis=1, norm='ortho'),
     lambda T, a: T.fft.fft(a, 8, dim=1, norm='ortho'), [X, XC]),
    ('ifft2', lambda a: F.ifft2(a, (3, 4)), lambda T, a: T.fft.ifft2(a, (3, 4)), [XC]),
    ('fftn', lambda a: F.fftn(a, norm='forward'), lambda T, a: T.fft.fftn(a, norm='forward'), [XC]),
    ('rfft', lambda a: F.rfft(a, 7, axis=0), lambda T, a: T.fft.rfft(a, 7, dim=0), [X]),
    ('rfftn', lambda a: F.rfftn(a, axes=(0, 2)), lambda T, a: T.fft.rfftn(a, dim=(0, 2)), [X]),
    ('irfft', lambda a: F.irfft(a), lambda T, a: T.fft.irfft(a), [XC]),
    ('irfft_odd', lambda a: F.irfft(a, 9, norm='ortho'),
     lambda T, a: T.fft.irfft(a, 9, norm='ortho'), [XC]),
    ('irfft2', lambda a: F.irfft2(a, (6, 6)), lambda T, a: T.fft.irfft2(a, (6, 6)), [XC]),
    ('irfftn', lambda a: F.irfftn(a), lambda T, a: T.fft.irfftn(a), [XC]),
    ('fftshift', lambda a: F.fftshift(F.fft(a)), lambda T, a: T.fft.fftshift(T.fft.fft(a)), [X]),
]


@pytest.mark.parametrize('case', TORCH, ids=[c[0] for c in TORCH])
def test_gradients_match_torch(case):
    _, f, torch_f, xs = case
    for x in xs:
        got = cr.grad(lambda a: _loss(f(a)))(x)
        want = _torch_grad(lambda T, a: _torch_loss(T, torch_f(T, a)), x)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_vmap_and_jit():
    f = lambda x: cnp.abs(F.rfft(x, 8)) ** 2   # noqa: E731
    np.testing.assert_allclose(cr.vmap(f)(X[0]), np.stack([f(r) for r in X[0]]), rtol=1e-12)
    g = cr.grad(lambda x: cnp.sum(F.irfft(F.fft(x) * 2j, 5)))
    np.testing.assert_allclose(cr.jit(g)(X1), g(X1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cr.vmap(g)(X[0]), np.stack([g(r) for r in X[0]]), atol=1e-12)


def test_errors():
    with pytest.raises(TypeError, match='rfftn'):
        F.rfft(XC)
    with pytest.raises(ValueError, match='norm'):
        F.fft(X, norm='sideways')
    with pytest.raises(cr.ShapeError, match='axis 3'):
        F.fft(X, axis=3)
    with pytest.raises(ValueError, match='fftn: s .* axes'):
        F.fftn(X, s=(2, 3), axes=(0,))
    with pytest.raises(ValueError, match='invalid number of data points'):
        F.fft(X, 0)


def test_docstring_examples():
    import doctest

    import chainrule.numpy.fft as mod
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed
