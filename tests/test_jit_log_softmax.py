"""`jit`'s log-softmax fusion (`chainrule.jit.passes`): the composite spellings of
`x - logsumexp(x)` become the `log_softmax` primitive, forward and backward.

Each spelling is checked three ways: the optimised graph holds `log_softmax` and none of the
composite's pieces (so the pass fired, and the maximum's VJP is gone from the gradient); the
values equal the same program jitted without the passes (`optimize=False`); and both equal the
analytic log-softmax and its gradient computed here in float64 NumPy. Where the pattern is not
exact (other axes, a shift that is not the maximum of the same input) the pass must not fire.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
import chainrule.scipy.special as csp


def _prims(graph):
    return [e.prim.name for e in graph.eqns]


def _ref_log_softmax(x, axis):
    x = np.asarray(x, np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _ref_grad(x, w, axis):
    """The gradient of sum(log_softmax(x) * w): w - softmax(x) * sum(w, axis)."""
    sm = np.exp(_ref_log_softmax(x, axis))
    return w - sm * w.sum(axis=axis, keepdims=True)


# --- the spellings ----------------------------------------------------------------------------

def _lse_keepdims(x, a):
    return x - cnp.logsumexp(x, axis=a, keepdims=True)


def _lse_expand_dims(x, a):
    return x - cnp.expand_dims(cnp.logsumexp(x, axis=a), a)


def _lse_scipy(x, a):
    return x - csp.logsumexp(x, axis=a, keepdims=True)


def _lse_none_index(x, a):
    idx = tuple(None if i == a % x.ndim else slice(None) for i in range(x.ndim))
    return x - cnp.logsumexp(x, axis=a)[idx]


def _hand(x, a):
    m = cnp.max(x, axis=a, keepdims=True)
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m), axis=a, keepdims=True))


def _hand_stop_gradient(x, a):
    m = cr.stop_gradient(cnp.max(x, axis=a, keepdims=True))
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m), axis=a, keepdims=True))


def _hand_grouped(x, a):
    m = cnp.max(x, axis=a, keepdims=True)
    return x - (m + cnp.log(cnp.sum(cnp.exp(x - m), axis=a, keepdims=True)))


def _hand_log_first(x, a):
    m = cnp.max(x, axis=a, keepdims=True)
    return x - cnp.log(cnp.sum(cnp.exp(x - m), axis=a, keepdims=True)) - m


def _hand_expand_dims(x, a):
    m = cnp.expand_dims(cnp.max(x, axis=a), a)
    return x - m - cnp.expand_dims(cnp.log(cnp.sum(cnp.exp(x - m), axis=a)), a)


def _hand_method_max(x, a):
    m = x.max(axis=a, keepdims=True)
    s = cnp.exp(x - m).sum(axis=a, keepdims=True)
    return (x - m) - cnp.log(s)


SPELLINGS = [_lse_keepdims, _lse_expand_dims, _lse_scipy, _lse_none_index, _hand,
             _hand_stop_gradient, _hand_grouped, _hand_log_first, _hand_expand_dims,
             _hand_method_max]


def _loss(spelling, a):
    def loss(x, w):
        return cnp.sum(spelling(x, a) * w)
    return loss


def _problem(shape, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    w = rng.standard_normal(shape).astype(dtype)
    return x, w


# --- the pass fires on every spelling ----------------------------------------------------------

@pytest.mark.parametrize('spelling', SPELLINGS, ids=lambda f: f.__name__)
@pytest.mark.parametrize('shape,axis', [((5, 7), 1), ((5, 7), 0), ((5, 7), -1), ((3, 4, 6), 1)])
def test_forward_graph_is_one_log_softmax(spelling, shape, axis):
    x, _ = _problem(shape)
    f = cr.jit(lambda x: spelling(x, axis))
    assert _prims(f.graph(x)) == ['log_softmax']
    np.testing.assert_allclose(f(x), _ref_log_softmax(x, axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f(x), cr.jit(lambda x: spelling(x, axis), optimize=False)(x),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('spelling', SPELLINGS, ids=lambda f: f.__name__)
@pytest.mark.parametrize('shape,axis', [((5, 7), 1), ((5, 7), 0), ((3, 4, 6), -2)])
def test_gradient_graph_uses_the_fused_primitive_and_drops_the_maximum(spelling, shape, axis):
    x, w = _problem(shape)
    vg = cr.jit(cr.value_and_grad(_loss(spelling, axis)))
    prims = _prims(vg.graph(x, w))
    assert prims.count('log_softmax') == 1
    # the composite's pieces and the maximum's VJP (its tie mask) are gone; the backward's one
    # exp is the softmax recovered from the log-probabilities
    for gone in ('max', 'log', 'equal', 'isfinite', 'where', 'div'):
        assert gone not in prims, (gone, prims)
    assert prims.count('exp') == 1
    val, g = vg(x, w)
    np.testing.assert_allclose(val, np.sum(_ref_log_softmax(x, axis) * w), rtol=1e-12)
    np.testing.assert_allclose(g, _ref_grad(x, w, axis), rtol=1e-10, atol=1e-12)
    val0, g0 = cr.jit(cr.value_and_grad(_loss(spelling, axis)), optimize=False)(x, w)
    np.testing.assert_allclose(val, val0, rtol=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('spelling', [_lse_keepdims, _hand, _hand_expand_dims],
                         ids=lambda f: f.__name__)
def test_grad_of_jit_differentiates_the_fused_primitive(spelling):
    x, w = _problem((4, 6))
    f = cr.jit(lambda x: spelling(x, 1))
    g = cr.grad(lambda x: cnp.sum(f(x) * w))(x)
    np.testing.assert_allclose(g, _ref_grad(x, w, 1), rtol=1e-10, atol=1e-12)


def test_random_shapes_axes_and_spellings_match_the_unfused_program():
    rng = np.random.default_rng(7)
    for trial in range(40):
        nd = int(rng.integers(1, 4))
        shape = tuple(int(d) for d in rng.integers(2, 6, nd))
        axis = int(rng.integers(-nd, nd))
        spelling = SPELLINGS[trial % len(SPELLINGS)]
        dtype = (np.float64, np.float32)[trial % 2]
        x, w = _problem(shape, dtype, seed=trial)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
        loss = _loss(spelling, axis)
        fused = cr.jit(cr.value_and_grad(loss))
        assert 'log_softmax' in _prims(fused.graph(x, w)), (spelling.__name__, shape, axis)
        val, g = fused(x, w)
        val0, g0 = cr.jit(cr.value_and_grad(loss), optimize=False)(x, w)
        assert val.dtype == g.dtype == dtype
        np.testing.assert_allclose(val, val0, **tol)
        np.testing.assert_allclose(g, g0, **tol)
        np.testing.assert_allclose(g, _ref_grad(x.astype(np.float64), w, axis), **tol)


def test_extreme_logits_stay_finite_as_in_the_composite():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4 + 1]])
    w = np.ones_like(x)
    for spelling in (_lse_keepdims, _hand):
        got = cr.jit(lambda x: spelling(x, 1))(x)
        np.testing.assert_allclose(got, _ref_log_softmax(x, 1), rtol=1e-12)
        g = cr.jit(cr.grad(_loss(spelling, 1)))(x, w)
        np.testing.assert_allclose(g, _ref_grad(x, w, 1), rtol=1e-12, atol=1e-12)


# --- where the pattern is not exact, the pass does not fire ------------------------------------

def _other_axes(x, w):
    m = cnp.max(x, axis=0, keepdims=True)
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m), axis=1, keepdims=True))


def _max_of_another_input(x, w):
    m = cnp.max(w, axis=1, keepdims=True)
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m), axis=1, keepdims=True))


def _shift_not_the_maximum(x, w):
    m = cnp.max(x, axis=1, keepdims=True) + 1.0
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m), axis=1, keepdims=True))


def _no_shift(x, w):
    return x - cnp.log(cnp.sum(cnp.exp(x), axis=1, keepdims=True))


def _subtracted_from_another_input(x, w):
    return w - cnp.logsumexp(x, axis=1, keepdims=True)


def _two_axes(x, w):
    return x - cnp.logsumexp(x, axis=(0, 1), keepdims=True)


def _different_shifts(x, w):
    m = cnp.max(x, axis=1, keepdims=True)
    m2 = cr.stop_gradient(cnp.max(x, axis=1, keepdims=True) * 0.5)
    return x - m - cnp.log(cnp.sum(cnp.exp(x - m2), axis=1, keepdims=True))


@pytest.mark.parametrize('fn', [_other_axes, _max_of_another_input, _shift_not_the_maximum,
                                _no_shift, _subtracted_from_another_input, _two_axes,
                                _different_shifts], ids=lambda f: f.__name__)
def test_inexact_patterns_are_left_alone(fn):
    x, w = _problem((4, 4))        # square: an axis mix-up would still type-check
    w = w * 0.1
    f = cr.jit(fn)
    assert 'log_softmax' not in _prims(f.graph(x, w))
    np.testing.assert_allclose(f(x, w), cr.jit(fn, optimize=False)(x, w), rtol=1e-12)
    loss = cr.jit(cr.grad(lambda x, w: cnp.sum(fn(x, w) * w), argnums=(0, 1)))
    assert 'log_softmax' not in _prims(loss.graph(x, w))
    for got, want in zip(loss(x, w), cr.jit(cr.grad(lambda x, w: cnp.sum(fn(x, w) * w),
                                                    argnums=(0, 1)), optimize=False)(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_intermediates_used_elsewhere_are_kept():
    x, w = _problem((3, 5))

    def f(x):
        m = cnp.max(x, axis=1, keepdims=True)
        e = cnp.exp(x - m)
        s = cnp.sum(e, axis=1, keepdims=True)
        return x - m - cnp.log(s), e, s, m

    logp, e, s, m = cr.jit(f)(x)
    prims = _prims(cr.jit(f).graph(x))
    assert 'log_softmax' in prims and 'exp' in prims and 'max' in prims
    want_m = x.max(axis=1, keepdims=True)
    np.testing.assert_allclose(logp, _ref_log_softmax(x, 1), rtol=1e-12)
    np.testing.assert_allclose(e, np.exp(x - want_m), rtol=1e-12)
    np.testing.assert_allclose(s, np.exp(x - want_m).sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(m, want_m)


def test_logsumexp_used_elsewhere_keeps_its_gradient():
    # d/dx [sum(logp * w) + sum(lse * v)]: the lse term's gradient is softmax * v, so the
    # cotangent reaching the maximum still cancels, but the lse path must stay
    x, w = _problem((4, 6))
    v = np.linspace(-1, 1, 4)[:, None]

    def loss(x):
        m = cnp.max(x, axis=1, keepdims=True)
        lse = m + cnp.log(cnp.sum(cnp.exp(x - m), axis=1, keepdims=True))
        return cnp.sum((x - lse) * w) + cnp.sum(lse * v)

    g = cr.jit(cr.grad(loss))(x)
    sm = np.exp(_ref_log_softmax(x, 1))
    np.testing.assert_allclose(g, _ref_grad(x, w, 1) + sm * v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, cr.jit(cr.grad(loss), optimize=False)(x), rtol=1e-10)


def test_generated_code_shrinks():
    x, w = _problem((8, 10), np.float32)
    for spelling in (_lse_keepdims, _hand):
        vg = cr.value_and_grad(_loss(spelling, 1))
        fused = cr.jit(vg).source(x, w)
        plain = cr.jit(vg, optimize=False).source(x, w)
        # the fused primitive (the code generator writes it out as its ufunc calls), and no
        # equation of the composite's maximum or its isfinite guard
        assert '= log_softmax[axis=1] ' in fused
        assert ' = max[' not in fused and 'np.isfinite' not in fused
        assert ' = max[' in plain
        assert len(cr.jit(vg).graph(x, w).eqns) < len(cr.jit(vg, optimize=False).graph(x, w).eqns) - 8


# --- exports carry the fused primitive ----------------------------------------------------------

def test_exported_training_step_with_the_fused_primitive_loads_and_runs(tmp_path):
    rng = np.random.default_rng(3)
    params = [rng.standard_normal((6, 5)).astype(np.float32), np.zeros(5, np.float32)]
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y1h = np.eye(5, dtype=np.float32)[[0, 3, 1, 4]]

    def step(params, x, y1h):
        def loss(p):
            h = x @ p[0] + p[1]
            m = cnp.max(h, axis=1, keepdims=True)
            logp = h - m - cnp.log(cnp.sum(cnp.exp(h - m), axis=1, keepdims=True))
            return -cnp.sum(logp * y1h) / x.shape[0]
        val, g = cr.value_and_grad(loss)(params)
        return [p - 0.1 * gp for p, gp in zip(params, g)], val

    exp = cr.export(step, params, x, y1h)
    assert 'log_softmax' in str(exp)
    path = tmp_path / 'step.crg'
    exp.save(path)
    loaded = cr.load_graph(path)
    got_p, got_l = loaded(params, x, y1h)
    want_p, want_l = cr.jit(step, optimize=False)(params, x, y1h)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-6)
    for g, w in zip(got_p, want_p):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # the loaded program is still differentiable through the fused primitive
    gx = cr.grad(lambda x: loaded(params, x, y1h)[1])(x)
    gx0 = cr.grad(lambda x: step(params, x, y1h)[1])(x)
    np.testing.assert_allclose(gx, gx0, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('spelling', [_lse_keepdims, _hand, _hand_expand_dims],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize('transform', ['hessian', 'jacfwd', 'vmap_grad'])
def test_other_transforms_through_the_fused_graph_match_the_unfused(spelling, transform):
    x, w = _problem((3, 4))
    loss = _loss(spelling, 1)
    f = {'hessian': lambda: cr.hessian(loss),
         'jacfwd': lambda: cr.jacfwd(lambda x, w: spelling(x, 1)),
         'vmap_grad': lambda: cr.vmap(cr.grad(loss), in_axes=(0, None))}[transform]()
    args = (np.stack([x, x[::-1]]), w) if transform == 'vmap_grad' else (x, w)
    got = cr.jit(f)(*args)
    want = cr.jit(f, optimize=False)(*args)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    if transform == 'hessian':      # d/dx of w - softmax * sum(w), by finite differences
        eps = 1e-6
        dx = np.zeros_like(x)
        dx[1, 2] = eps
        fd = (_ref_grad(x + dx, w, 1) - _ref_grad(x - dx, w, 1)) / (2 * eps)
        np.testing.assert_allclose(got[..., 1, 2], fd, rtol=1e-5, atol=1e-8)


def test_input_that_is_itself_a_row_subtraction_is_still_fused():
    # z = x - r (r broadcast along the same axis), then z - logsumexp(z): the subtraction chain
    # (x - r) - lse is not the hand spelling, but z - lse is a log-softmax of z
    x, w = _problem((5, 7))
    r = np.linspace(-2, 2, 5)[:, None]

    def f(x):
        z = x - r
        return z - cnp.logsumexp(z, axis=1, keepdims=True)

    assert _prims(cr.jit(f).graph(x)).count('log_softmax') == 1
    np.testing.assert_allclose(cr.jit(f)(x), _ref_log_softmax(x - r, 1), rtol=1e-12)
    g = cr.jit(cr.grad(lambda x: cnp.sum(f(x) * w)))(x)
    np.testing.assert_allclose(g, _ref_grad(x - r, w, 1), rtol=1e-10, atol=1e-12)
