"""Tests of `chainrule.scipy.integrate`: `odeint` and `solve_ivp` values equal SciPy's (and
closed forms); adjoint-method gradients equal finite differences, closed forms, and the gradient
of the unrolled solver (the same accepted steps replayed with chainrule ops); forward mode and
second order; `vmap` equals a loop; `jit` equals eager; errors are clear."""

import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import ChainruleError, ShapeError
from chainrule.scipy.integrate import (ODEIntegrationError, _integrate, _METHODS, _replay,
                                       odeint, solve_ivp)
from chainrule.testing import check_grads

MODES = ('rev', 'fwd')
TIGHT = dict(rtol=1e-11, atol=1e-11)


def lotka_volterra(y, t, a, b, c, d):
    return cnp.stack([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])


def forced(y, t, p):
    # non-autonomous: exercises the derivative in t0 and in the output times
    return -p * y + cnp.sin(3.0 * t) * y[::-1]


Y0 = np.array([1.0, 0.5])
T = np.array([0.0, 0.4, 1.1, 2.0])
P = (1.0, 0.6, 0.8, 0.5)


# --- values -----------------------------------------------------------------------------------

def test_odeint_equals_scipy():
    si = pytest.importorskip('scipy.integrate', reason='values are compared with SciPy')

    def np_rhs(y, t, a, b, c, d):
        return np.array([a * y[0] - b * y[0] * y[1], -c * y[1] + d * y[0] * y[1]])
    want = si.odeint(np_rhs, Y0, T, args=P, rtol=1e-13, atol=1e-13)
    for method in ('RK45', 'DOP853'):
        got = odeint(lotka_volterra, Y0, T, args=P, method=method, **TIGHT)
        np.testing.assert_allclose(got, want, rtol=1e-8)
    # SciPy's default tolerances: the answers agree to about that tolerance
    np.testing.assert_allclose(odeint(lotka_volterra, Y0, T, args=P), want, rtol=1e-6)


@pytest.mark.parametrize('method', ['RK45', 'DOP853'])
def test_solve_ivp_equals_scipy(method):
    si = pytest.importorskip('scipy.integrate', reason='values are compared with SciPy')
    fun = (lambda t, y, *p: lotka_volterra(y, t, *p))
    ref = si.solve_ivp(fun, (0.0, 2.0), Y0, method=method, t_eval=T, args=P, rtol=1e-12,
                       atol=1e-12)
    res = solve_ivp(fun, (0.0, 2.0), Y0, method=method, t_eval=T, args=P, rtol=1e-12,
                    atol=1e-12)
    assert res.y.shape == ref.y.shape == (2, 4) and res.success
    np.testing.assert_allclose(res.t, ref.t)
    np.testing.assert_allclose(res.y, ref.y, rtol=1e-9)
    free = solve_ivp(fun, (0.0, 2.0), Y0, method=method, args=P)
    ref_free = si.solve_ivp(fun, (0.0, 2.0), Y0, method=method, args=P)
    assert free.t[0] == 0.0 and free.t[-1] == 2.0 and free.y.shape == (2, len(free.t))
    np.testing.assert_allclose(free.y[:, -1], ref_free.y[:, -1], rtol=1e-2)


def test_closed_form_values_and_gradients():
    # y' = -k y: y(t) = y0 exp(-k t); dy/dk = -t y, dy/dy0 = exp(-k t), dy/dt = -k y
    def final(y0, t1, k):
        return odeint(lambda y, t, k: -k * y, cnp.reshape(y0, (1,)), cnp.stack([0.0 * t1, t1]),
                      args=(k,), **TIGHT)[1, 0]
    y0, t1, k = 2.0, 1.5, 0.7
    y = y0 * np.exp(-k * t1)
    np.testing.assert_allclose(final(y0, t1, k), y, rtol=1e-9)
    g = cr.grad(final, argnums=(0, 1, 2))(y0, t1, k)
    np.testing.assert_allclose(g, [np.exp(-k * t1), -k * y, -t1 * y], rtol=1e-8)
    # second derivative in k: t^2 y
    np.testing.assert_allclose(cr.grad(cr.grad(final, argnums=2), argnums=2)(y0, t1, k),
                               t1 ** 2 * y, rtol=1e-6)


def test_decreasing_times_and_repeated_times():
    back = odeint(lambda y, t, k: -k * y, np.array([1.0]), np.array([1.0, 0.5, 0.5, 0.0]),
                  args=(0.3,), **TIGHT)
    np.testing.assert_allclose(back[:, 0], np.exp(0.3 * np.array([0.0, 0.5, 0.5, 1.0])),
                               rtol=1e-9)


def test_args_may_be_a_pytree_and_tfirst_swaps_arguments():
    params = {'a': 1.0, 'b': np.array([0.6, 0.8, 0.5])}

    def rhs(t, y, p):
        return lotka_volterra(y, t, p['a'], p['b'][0], p['b'][1], p['b'][2])
    got = odeint(rhs, Y0, T, args=(params,), tfirst=True)
    np.testing.assert_allclose(got, odeint(lotka_volterra, Y0, T, args=P), rtol=1e-12)
    g = cr.grad(lambda p: cnp.sum(odeint(rhs, Y0, T, args=(p,), tfirst=True)))(params)
    assert set(g) == {'a', 'b'} and g['b'].shape == (3,)


# --- derivatives ------------------------------------------------------------------------------

@pytest.mark.parametrize('method', ['RK45', 'DOP853'])
def test_first_derivatives_in_every_argument(method):
    def f(y0, t, a, b):
        return odeint(lotka_volterra, y0, t, args=(a, b, 0.8, 0.5), method=method, **TIGHT)
    check_grads(f, (Y0, T, 1.0, 0.6), order=1, modes=MODES, rtol=1e-5, atol=1e-7)
    check_grads(lambda y0, t, p: odeint(forced, y0, t, args=(p,), method=method, **TIGHT),
                (Y0, T, 0.7), order=1, modes=MODES, rtol=1e-5, atol=1e-7)


def test_second_derivatives():
    check_grads(lambda y0, t, p: odeint(forced, y0, t, args=(p,), **TIGHT),
                (Y0, T[:3], 0.7), order=2, modes=MODES, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('method', ['RK45', 'DOP853'])
def test_adjoint_gradient_equals_the_unrolled_solvers(method):
    # the same accepted steps, replayed with chainrule ops and differentiated through: the
    # discrete gradient, which the adjoint (continuous) gradient approaches with the tolerance
    tol = dict(rtol=1e-10, atol=1e-10)
    steps = []
    p = np.array(P)
    _integrate(lambda y, t: np.asarray(lotka_volterra(y, t, *p)), Y0, T, _METHODS[method],
               tol['rtol'], tol['atol'], 10 ** 5, np.inf, record=steps)
    assert sum(len(s) for s in steps) > len(T)       # several steps per interval

    def loss_unrolled(y0, p):
        return cnp.sum(_replay(lotka_volterra, y0, T, tuple(p[i] for i in range(4)), steps,
                               method) ** 2)

    def loss_adjoint(y0, p):
        return cnp.sum(odeint(lotka_volterra, y0, T, args=tuple(p[i] for i in range(4)),
                              method=method, **tol) ** 2)
    np.testing.assert_allclose(loss_unrolled(Y0, p), loss_adjoint(Y0, p), rtol=1e-12)
    gu = cr.grad(loss_unrolled, argnums=(0, 1))(Y0, p)
    ga = cr.grad(loss_adjoint, argnums=(0, 1))(Y0, p)
    for u, a in zip(gu, ga):
        np.testing.assert_allclose(a, u, rtol=1e-7)


def test_adjoint_gradient_equals_finite_differences():
    def loss(y0, a):
        return cnp.sum(odeint(lotka_volterra, y0, T, args=(a, 0.6, 0.8, 0.5), **TIGHT) ** 2)
    g_y0, g_a = cr.grad(loss, argnums=(0, 1))(Y0, 1.0)
    eps = 1e-6
    fd_y0 = [(loss(Y0 + eps * e, 1.0) - loss(Y0 - eps * e, 1.0)) / (2 * eps) for e in np.eye(2)]
    fd_a = (loss(Y0, 1.0 + eps) - loss(Y0, 1.0 - eps)) / (2 * eps)
    np.testing.assert_allclose(g_y0, fd_y0, rtol=1e-6)
    np.testing.assert_allclose(g_a, fd_a, rtol=1e-6)


def test_backward_pass_memory_does_not_grow_with_the_steps():
    # grad's tape holds one odeint node whatever the number of solver steps: a longer horizon
    # (many more steps) records the same nodes on the outermost reverse trace (the inner
    # traces are the per-step vector-Jacobian products of func, freed as the solver goes)
    from chainrule.interpreters.reverse import ReverseTrace
    counts = []
    for t_end in (1.0, 30.0):
        seen = {}
        orig = ReverseTrace.process

        def count(self, prim, args, params, orig=orig, seen=seen):
            seen.setdefault(self.level, []).append(prim.name)
            return orig(self, prim, args, params)
        ReverseTrace.process = count
        try:
            cr.grad(lambda a: cnp.sum(odeint(lotka_volterra, Y0, np.array([0.0, t_end]),
                                             args=(a, 0.6, 0.8, 0.5))))(1.0)
        finally:
            ReverseTrace.process = orig
        outer = seen[min(seen)]
        assert outer.count('odeint') == 1
        counts.append(len(outer))
    assert counts[0] == counts[1]


# --- vmap, jit --------------------------------------------------------------------------------

def test_vmap_equals_a_loop():
    ys = np.stack([Y0, 1.3 * Y0, 0.7 * Y0])
    a = np.array([1.0, 1.2, 0.9])

    def f(y0, a):
        return odeint(lotka_volterra, y0, T, args=(a, 0.6, 0.8, 0.5), **TIGHT)
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # no loop-and-stack fallback
        out = cr.vmap(f)(ys, a)
        per_y0 = cr.vmap(f, in_axes=(0, None))(ys, 1.0)
        g = cr.vmap(cr.grad(lambda y0, a: cnp.sum(f(y0, a)), argnums=(0, 1)))(ys, a)
    np.testing.assert_allclose(out, np.stack([f(y, b) for y, b in zip(ys, a)]), rtol=1e-8)
    np.testing.assert_allclose(per_y0, np.stack([f(y, 1.0) for y in ys]), rtol=1e-8)
    loop = [cr.grad(lambda y0, a: cnp.sum(f(y0, a)), argnums=(0, 1))(y, b) for y, b in zip(ys, a)]
    np.testing.assert_allclose(g[0], np.stack([lg[0] for lg in loop]), rtol=1e-7)
    np.testing.assert_allclose(g[1], np.array([lg[1] for lg in loop]), rtol=1e-7)
    # batched output times: solved one example at a time
    ts = np.stack([T, 1.5 * T])
    np.testing.assert_allclose(
        cr.vmap(lambda t: odeint(lotka_volterra, Y0, t, args=P, **TIGHT))(ts),
        np.stack([odeint(lotka_volterra, Y0, t, args=P, **TIGHT) for t in ts]), rtol=1e-12)


def test_jit_equals_eager():
    def loss(y0, a):
        return cnp.sum(odeint(lotka_volterra, y0, T, args=(a, 0.6, 0.8, 0.5)) ** 2)
    np.testing.assert_allclose(cr.jit(loss)(Y0, 1.0), loss(Y0, 1.0), rtol=1e-12)
    for j, e in zip(cr.jit(cr.grad(loss, argnums=(0, 1)))(Y0, 1.0),
                    cr.grad(loss, argnums=(0, 1))(Y0, 1.0)):
        np.testing.assert_allclose(j, e, rtol=1e-10)


# --- errors -----------------------------------------------------------------------------------

def test_closing_over_a_differentiated_value_is_refused_with_a_fix():
    with pytest.raises(ChainruleError, match='args='):
        cr.grad(lambda k: cnp.sum(odeint(lambda y, t: -k * y, Y0, T)))(0.5)


def test_errors():
    with pytest.raises(ShapeError, match=r'func returned shape \(3,\) for a state of shape '
                                         r'\(2,\)'):
        odeint(lambda y, t: cnp.ones(3), Y0, T)
    with pytest.raises(ValueError, match='monotonic'):
        odeint(lotka_volterra, Y0, np.array([0.0, 1.0, 0.5]), args=P)
    with pytest.raises(ODEIntegrationError, match='mxstep'):
        odeint(lambda y, t: 50 * cnp.cos(50 * t) * cnp.ones(1), np.zeros(1),
               np.array([0.0, 10.0]), mxstep=5)
    with pytest.raises(ValueError, match='method must be one of'):
        solve_ivp(lambda t, y: -y, (0, 1), Y0, method='BDF')


def test_docstring_examples():
    import doctest

    import chainrule.scipy.integrate as mod
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed


def test_tensor_parameters_get_their_gradient_from_backward():
    k = cr.Tensor(np.array(0.5), requires_grad=True)
    y = odeint(lambda y, t, k: -k * y, np.array([2.0]), np.array([0.0, 1.0]), args=(k,), **TIGHT)
    y[1, 0].backward()
    np.testing.assert_allclose(k.grad.numpy(), -2.0 * np.exp(-0.5), rtol=1e-8)


def test_jacfwd_and_jacrev_equal_finite_differences():
    # jacfwd batches the forward-sensitivity system and jacrev the adjoint one (vmap rules)
    def f(y0):
        return odeint(lotka_volterra, y0, T[:3], args=P, **TIGHT)
    eps = 1e-6
    fd = np.stack([(f(Y0 + eps * e) - f(Y0 - eps * e)) / (2 * eps) for e in np.eye(2)], -1)
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # no loop-and-stack fallback
        np.testing.assert_allclose(cr.jacfwd(f)(Y0), fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(cr.jacrev(f)(Y0), fd, rtol=1e-6, atol=1e-8)


def test_complex_times_are_refused_not_truncated():
    import chainrule as cr
    with pytest.raises(cr.DTypeError, match='times t must be real'):
        odeint(lambda y, t: -y, np.ones(2), np.array([0.0, 1.0 + 1e-3j]))
