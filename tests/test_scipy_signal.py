"""Tests of `chainrule.scipy.signal`: `convolve`, `correlate` and `fftconvolve` equal SciPy's
(every mode, 1-d to 3-d, odd and even sizes, either input the larger, real and complex,
direct and FFT); derivatives in both inputs equal finite differences to second order in reverse
and forward mode; `vmap` equals a loop; `jit` equals eager."""

import warnings

import numpy as np
import pytest

ss = pytest.importorskip('scipy.signal', reason='chainrule.scipy.signal is checked against SciPy')

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
import chainrule.scipy.signal as csig  # noqa: E402
from chainrule.core import ShapeError  # noqa: E402
from chainrule.testing import check_grads  # noqa: E402

MODES = ('rev', 'fwd')
rng = np.random.default_rng(1)
SHAPES = [((7,), (3,)), ((7,), (4,)), ((3,), (8,)), ((6,), (6,)), ((5, 6), (2, 3)),
          ((4, 5), (3, 2)), ((2, 3), (4, 5)), ((4, 3, 5), (2, 2, 3))]
FUNCS = [('convolve', csig.convolve, ss.convolve), ('correlate', csig.correlate, ss.correlate)]


def sample(shape, complex_=False):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


@pytest.mark.parametrize('name,fn,ref', FUNCS, ids=[f[0] for f in FUNCS])
@pytest.mark.parametrize('shapes', SHAPES, ids=[f'{a}x{b}' for a, b in SHAPES])
@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
@pytest.mark.parametrize('method', ['direct', 'fft', 'auto'])
def test_values_equal_scipy(name, fn, ref, shapes, mode, method):
    for cplx in (False, True):
        x, k = sample(shapes[0], cplx), sample(shapes[1], cplx)
        try:
            want = ref(x, k, mode=mode, method=method)
        except ValueError:
            with pytest.raises(ShapeError, match="valid' mode"):
                fn(x, k, mode=mode, method=method)
            continue
        got = fn(x, k, mode=mode, method=method)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('shapes', SHAPES[:6], ids=[f'{a}x{b}' for a, b in SHAPES[:6]])
@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
def test_fftconvolve_equals_scipy(shapes, mode):
    x, k = sample(shapes[0]), sample(shapes[1])
    if mode == 'valid' and not (all(a >= b for a, b in zip(*shapes)) or
                                all(b >= a for a, b in zip(*shapes))):
        return
    np.testing.assert_allclose(csig.fftconvolve(x, k, mode=mode),
                               ss.fftconvolve(x, k, mode=mode), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
def test_fftconvolve_axes_broadcast_the_other_axes(mode):
    x, k = sample((3, 8, 2)), sample((1, 3, 2))
    np.testing.assert_allclose(csig.fftconvolve(x, k, mode=mode, axes=1),
                               ss.fftconvolve(x, k, mode=mode, axes=1), rtol=1e-10, atol=1e-12)
    check_grads(lambda a, b: csig.fftconvolve(a, b, mode=mode, axes=[1]), (x, k), order=1,
                modes=MODES)


def test_integer_inputs_give_scipys_integers():
    x, k = np.arange(6), np.array([1, 2, 3])
    for method in ('direct', 'fft'):
        got, want = csig.convolve(x, k, method=method), ss.convolve(x, k, method=method)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_zero_dimensional_inputs_multiply():
    assert csig.convolve(np.array(2.0), np.array(3.0)) == ss.convolve(np.array(2.0),
                                                                      np.array(3.0))


@pytest.mark.parametrize('name,fn,ref', FUNCS, ids=[f[0] for f in FUNCS])
@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
@pytest.mark.parametrize('method', ['direct', 'fft'])
def test_derivatives_in_both_inputs(name, fn, ref, mode, method):
    x, k = sample((5, 6)), sample((2, 3))
    check_grads(lambda a, b: fn(a, b, mode=mode, method=method), (x, k), order=2, modes=MODES)


def test_derivatives_complex_and_larger_second_input():
    x, k = sample((4,), True), sample((7,), True)
    for fn in (csig.convolve, csig.correlate):
        check_grads(lambda a, b: fn(a, b, mode='valid'), (x, k), order=1, modes=MODES)
        check_grads(lambda a, b: fn(a, b, mode='same'), (x, k), order=1, modes=MODES)


def test_gradient_of_a_filter_is_the_correlation_with_the_input():
    # d/dk sum(g * convolve(x, k)) = correlate(g, x) restricted to k's extent: analytic check
    x, k = sample(9), sample(3)
    g = sample(11)
    got = cr.grad(lambda k_: cnp.sum(g * csig.convolve(x, k_)))(k)
    want = np.array([np.dot(g[m:m + 9], x) for m in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize('mode', ['full', 'same', 'valid'])
def test_vmap_equals_a_loop(mode):
    xs, ks = sample((4, 7, 3)), sample((4, 3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # no loop-and-stack fallback
        both = cr.vmap(lambda a, b: csig.convolve(a, b, mode=mode))(xs, ks)
        one = cr.vmap(lambda a: csig.correlate(a, ks[0], mode=mode))(xs)
        g = cr.vmap(cr.grad(lambda a, b: cnp.sum(csig.convolve(a, b, mode=mode) ** 2),
                            argnums=(0, 1)))(xs, ks)
    np.testing.assert_allclose(both, np.stack([ss.convolve(a, b, mode=mode)
                                               for a, b in zip(xs, ks)]), rtol=1e-10)
    np.testing.assert_allclose(one, np.stack([ss.correlate(a, ks[0], mode=mode) for a in xs]),
                               rtol=1e-10)
    loop = [cr.grad(lambda a, b: cnp.sum(csig.convolve(a, b, mode=mode) ** 2),
                    argnums=(0, 1))(a, b) for a, b in zip(xs, ks)]
    for i in range(2):
        np.testing.assert_allclose(g[i], np.stack([lg[i] for lg in loop]), rtol=1e-10)


def test_jit_equals_eager():
    x, k = sample((6, 5)), sample((3, 2))

    def f(a, b):
        return cnp.sum(csig.convolve(a, b, mode='same') ** 2) + cnp.sum(
            csig.fftconvolve(a, b, mode='valid'))
    np.testing.assert_allclose(cr.jit(f)(x, k), f(x, k), rtol=1e-12)
    np.testing.assert_allclose(cr.jit(cr.grad(f, argnums=(0, 1)))(x, k)[1],
                               cr.grad(f, argnums=(0, 1))(x, k)[1], rtol=1e-12)


def test_errors():
    with pytest.raises(ShapeError, match='same dimensionality.*\\(3,\\) and \\(2, 2\\)'):
        csig.convolve(np.ones(3), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="valid' mode"):
        csig.convolve(np.ones((3, 5)), np.ones((4, 2)), mode='valid')
    with pytest.raises(ValueError, match="mode must be"):
        csig.correlate(np.ones(3), np.ones(2), mode='middle')
    with pytest.raises(ValueError, match="method must be"):
        csig.convolve(np.ones(3), np.ones(2), method='fast')


def test_tensor_inputs_get_their_gradient_from_backward():
    x = cr.Tensor(np.arange(5.0), requires_grad=True)
    k = cr.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (csig.correlate(x, k, mode='same') ** 2).sum().backward()
    gx, gk = cr.grad(lambda a, b: cnp.sum(csig.correlate(a, b, mode='same') ** 2),
                     argnums=(0, 1))(np.arange(5.0), np.array([1.0, 2.0]))
    np.testing.assert_allclose(x.grad.numpy(), gx, rtol=1e-12)
    np.testing.assert_allclose(k.grad.numpy(), gk, rtol=1e-12)
