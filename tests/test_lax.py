"""Tests of `chainrule.lax`: values equal the Python loops they stand for, derivatives equal
finite differences and the unrolled Python versions, under `grad`, `jit`, forward mode, and
second order; errors say what is wrong."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import lax
from chainrule.core import ChainruleError, GradientError, ShapeError
from chainrule.interpreters.forward import jvp_flat


def _fd(f, x, eps=1e-6):
    """Central finite differences of scalar `f` at array `x`."""
    x = np.asarray(x, float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * eps)
    return g


# --- cond -----------------------------------------------------------------------------------------

def _branchy(x):
    return lax.cond(cnp.sum(x) > 0,
                    lambda x: cnp.sum(cnp.sin(x) * x),
                    lambda x: cnp.sum(x ** 3),
                    x)


@pytest.mark.parametrize('x', [np.array([0.5, 0.2]), np.array([-0.5, -0.7])])
def test_cond_value_and_gradient(x):
    want = np.sum(np.sin(x) * x) if x.sum() > 0 else np.sum(x ** 3)
    assert _branchy(x) == pytest.approx(want)
    assert cr.jit(_branchy)(x) == pytest.approx(want)
    g = cr.grad(_branchy)(x)
    np.testing.assert_allclose(g, _fd(_branchy, x), rtol=1e-6)
    np.testing.assert_allclose(cr.jit(cr.grad(_branchy))(x), g, rtol=1e-12)
    np.testing.assert_allclose(cr.grad(cr.jit(_branchy))(x), g, rtol=1e-12)


def test_cond_second_derivative_and_forward_mode():
    f = lambda x: lax.cond(x > 0, lambda x: cnp.sin(x) * x, lambda x: -x ** 3, x)
    for x in (0.7, -1.3):
        d2 = cr.grad(cr.grad(f))(x)
        want = 2 * np.cos(x) - x * np.sin(x) if x > 0 else -6 * x
        assert d2 == pytest.approx(want, rel=1e-10)
        assert cr.jit(cr.grad(cr.grad(f)))(x) == pytest.approx(want, rel=1e-10)
        _, (t,) = jvp_flat(lambda x: [f(x)], [np.asarray(x)], [np.asarray(1.0)])
        assert t == pytest.approx(cr.grad(f)(x), rel=1e-12)


def test_cond_closure_over_outer_values_is_differentiated():
    # the branches close over y; d/dy of cond(True, x*y, ...) at x=2 is 2
    def f(y):
        return lax.cond(True, lambda x: x * y, lambda x: x + y, 2.0)
    assert cr.grad(f)(3.0) == pytest.approx(2.0)
    assert cr.jit(cr.grad(f))(3.0) == pytest.approx(2.0)


def test_cond_branches_must_agree():
    with pytest.raises(ChainruleError, match='branches return different types'):
        lax.cond(True, lambda x: x, lambda x: cnp.sum(x), np.ones(3))
    with pytest.raises(ShapeError, match='scalar'):
        lax.cond(np.array([True, False]), lambda x: x, lambda x: x, 1.0)


# --- scan and fori_loop ---------------------------------------------------------------------------

def _rnn(w, xs):
    def step(h, x):
        h = cnp.tanh(w * h + x)
        return h, h * h
    h, ys = lax.scan(step, cnp.zeros(2), xs)
    return cnp.sum(h) + cnp.sum(ys)


def _rnn_python(w, xs):
    h = np.zeros(2)
    total = 0.0
    for x in xs:
        h = cnp.tanh(w * h + x)
        total = total + cnp.sum(h * h)
    return cnp.sum(h) + total


XS = np.random.default_rng(0).standard_normal((5, 2))
W = np.array([0.8, -0.6])


def test_scan_value_equals_the_python_loop():
    assert _rnn(W, XS) == pytest.approx(_rnn_python(W, XS), rel=1e-12)
    assert cr.jit(_rnn)(W, XS) == pytest.approx(_rnn_python(W, XS), rel=1e-12)
    carry, ys = lax.scan(lambda c, x: (c + x, c * x), 1.0, np.arange(1.0, 5.0), reverse=True)
    # reversed: c goes 1 -> 5 -> 8 -> 10 -> 11, ys aligned with xs
    assert carry == 11.0
    np.testing.assert_allclose(ys, [10.0, 16.0, 15.0, 4.0])


def test_scan_gradients_equal_the_unrolled_loop_and_finite_differences():
    gw, gx = cr.grad(_rnn, argnums=(0, 1))(W, XS)
    rw, rx = cr.grad(_rnn_python, argnums=(0, 1))(W, XS)
    np.testing.assert_allclose(gw, rw, rtol=1e-12)
    np.testing.assert_allclose(gx, rx, rtol=1e-12)
    np.testing.assert_allclose(gw, _fd(lambda w: _rnn(w, XS), W), rtol=1e-6)
    jw, jx = cr.jit(cr.grad(_rnn, argnums=(0, 1)))(W, XS)
    np.testing.assert_allclose(jw, rw, rtol=1e-12)
    np.testing.assert_allclose(jx, rx, rtol=1e-12)
    kw = cr.grad(cr.jit(_rnn))(W, XS)
    np.testing.assert_allclose(kw, rw, rtol=1e-12)


def test_scan_second_order_and_forward_mode():
    h = cr.grad(lambda w: cnp.sum(cr.grad(_rnn)(w, XS)))(W)
    h_ref = cr.grad(lambda w: cnp.sum(cr.grad(_rnn_python)(w, XS)))(W)
    np.testing.assert_allclose(h, h_ref, rtol=1e-10)
    t = np.array([1.0, 0.5])
    _, (jt,) = jvp_flat(lambda w: [_rnn(w, XS)], [W], [t])
    assert jt == pytest.approx(cr.grad(_rnn_python)(W, XS) @ t, rel=1e-12)


def test_fori_loop_with_concrete_bounds_is_reverse_differentiable():
    def power(x, n):
        return lax.fori_loop(0, n, lambda i, acc: acc * x, 1.0)
    assert cr.grad(power)(3.0, 4) == pytest.approx(108.0)
    assert cr.jit(cr.grad(power), static_argnums=1)(3.0, 4) == pytest.approx(108.0)
    # the loop index is usable in the body
    f = lambda x: lax.fori_loop(1, 4, lambda i, acc: acc + x ** i, 0.0)   # x + x^2 + x^3
    assert cr.grad(f)(2.0) == pytest.approx(1 + 4 + 12)
    assert lax.fori_loop(3, 3, lambda i, a: a + 1, 5.0) == 5.0


def test_scan_errors_name_the_types():
    with pytest.raises(ChainruleError, match=r'carry of the type it was given.*f32'):
        lax.scan(lambda c, x: (c.astype(np.float32), x), np.zeros(2), np.ones((3, 2)))
    with pytest.raises(ShapeError, match='leading axes'):
        lax.scan(lambda c, x: (c, x), 0.0, (np.ones(3), np.ones(4)))


# --- while_loop ---------------------------------------------------------------------------------

def _while_pow(x):
    # multiply by x while the counter is below 5: x**5
    return lax.while_loop(lambda s: s[0] < 5, lambda s: (s[0] + 1, s[1] * x), (0, 1.0))[1]


def test_while_loop_value_jit_and_forward_mode():
    assert _while_pow(2.0) == 32.0
    assert cr.jit(_while_pow)(2.0) == 32.0
    _, (t,) = jvp_flat(lambda x: [_while_pow(x)], [np.asarray(2.0)], [np.asarray(1.0)])
    assert t == pytest.approx(5 * 2.0 ** 4)
    _, (t2,) = jvp_flat(lambda x: [cr.jit(_while_pow)(x)], [np.asarray(2.0)],
                        [np.asarray(1.0)])
    assert t2 == pytest.approx(80.0)


def test_while_loop_reverse_mode_says_to_use_fori_loop_or_scan():
    with pytest.raises(GradientError, match='fori_loop.*scan'):
        cr.grad(_while_pow)(2.0)


def test_fori_loop_with_traced_bounds_becomes_a_while_loop():
    f = cr.jit(lambda n, x: lax.fori_loop(0, n, lambda i, a: a * x, 1.0))
    assert f(np.int64(3), 2.0) == 8.0
    assert f(np.int64(5), 2.0) == 32.0
    assert f.cache_info().misses == 1       # one trace serves every trip count


def test_python_if_inside_jit_points_to_lax():
    with pytest.raises(ChainruleError, match='chainrule.lax'):
        cr.jit(lambda x: x if x > 0 else -x)(1.0)


# --- vmap -----------------------------------------------------------------------------------------

def test_vmap_of_cond_and_scan_equals_a_loop_without_falling_back():
    import warnings
    Xs = np.random.default_rng(1).standard_normal((4, 3))
    f = lambda x: lax.cond(cnp.sum(x) > 0, lambda x: cnp.sin(x), lambda x: -x, x)   # batched pred
    g = lambda x: lax.cond(True, lambda x: cnp.sin(x) * x, lambda x: -x, x)          # shared pred
    h = lambda x: lax.scan(lambda c, xi: (c * xi + 1.0, c), 0.5, x)
    with warnings.catch_warnings():
        warnings.simplefilter('error')      # a loop-and-stack fallback would warn
        for fn in (f, g):
            np.testing.assert_allclose(cr.vmap(fn)(Xs), np.array([fn(x) for x in Xs]))
        c, ys = cr.vmap(h)(Xs)
        np.testing.assert_allclose(c, [h(x)[0] for x in Xs])
        np.testing.assert_allclose(ys, np.array([h(x)[1] for x in Xs]))
        gh = cr.jit(cr.vmap(cr.grad(lambda x: h(x)[0])))(Xs)
        np.testing.assert_allclose(gh, np.array([cr.grad(lambda x: h(x)[0])(x) for x in Xs]))
        gf = cr.vmap(cr.grad(lambda x: cnp.sum(f(x))))(Xs)
        np.testing.assert_allclose(gf, np.array([cr.grad(lambda x: cnp.sum(f(x)))(x)
                                                 for x in Xs]))


def test_vmap_of_while_loop_gives_each_example_its_own_trip_count():
    import warnings

    def halvings(x):      # how many times x is halved before it drops below 1
        return lax.while_loop(lambda s: s[0] >= 1.0, lambda s: (s[0] / 2, s[1] + 1), (x, 0))[1]
    xs = np.array([0.5, 3.0, 17.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        np.testing.assert_array_equal(cr.vmap(halvings)(xs), [0, 2, 5, 1])
        np.testing.assert_array_equal(cr.jit(cr.vmap(halvings))(xs), [0, 2, 5, 1])
        np.testing.assert_allclose(cr.vmap(_while_pow)(xs), xs ** 5)


def test_printed_graph_lists_the_branches_of_cond():
    g = cr.make_graph(lambda x: lax.cond(cnp.sum(x) > 0, lambda x: cnp.sin(x), lambda x: -x, x))(
        np.ones(3))
    assert str(g) == '\n'.join([
        '{ lambda ; a:f64[3]. let',
        '    b:f64[] = sum[axis=(0,) keepdims=False] a',
        '    c:bool[] = greater b 0',
        '    d:f64[3] = cond[branches=(<graph 1->1, 1 eqns>, <graph 1->1, 1 eqns>)] c a',
        '      branches[0] = { lambda ; a:f64[3]. let',
        '                        b:f64[3] = neg a',
        '                      in (b) }',
        '      branches[1] = { lambda ; a:f64[3]. let',
        '                        b:f64[3] = sin a',
        '                      in (b) }',
        '  in (d) }'])
