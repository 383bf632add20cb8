"""Implicit differentiation (`cr.fixed_point`, `cr.custom_root`): values against closed forms
and SciPy, gradients against differentiating the unrolled iteration, finite differences and
analytic derivatives; the solver's iterations are never recorded."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads


def babylonian(x, a):
    return (x + a / x) / 2


def test_fixed_point_scalar_closed_form():
    a = 3.0
    np.testing.assert_allclose(cr.fixed_point(babylonian, 1.0, a), np.sqrt(a), rtol=1e-14)
    np.testing.assert_allclose(cr.grad(lambda a: cr.fixed_point(babylonian, 1.0, a))(a),
                               0.5 / np.sqrt(a), rtol=1e-12)
    _, t = cr.jvp(lambda a: cr.fixed_point(babylonian, 1.0, a), (a,), (1.0,))
    np.testing.assert_allclose(t, 0.5 / np.sqrt(a), rtol=1e-12)


def contraction(x, p):
    """A pytree fixed point: a small tanh network and a linear recursion."""
    return {'u': cnp.tanh(p['W'] @ x['u'] + p['b']), 'v': 0.5 * x['v'] + p['b'][0] * x['u'][1]}


P = {'W': np.array([[0.3, -0.2], [0.1, 0.4]]), 'b': np.array([0.5, -0.1])}
X0 = {'u': np.zeros(2), 'v': np.array(0.0)}


def _loss(x):
    return cnp.sum(x['u'] ** 2) + 3 * x['v']


def _unrolled(p, steps=300):
    x = X0
    for _ in range(steps):
        x = contraction(x, p)
    return x


def test_fixed_point_gradient_equals_unrolled_iteration():
    got = cr.grad(lambda p: _loss(cr.fixed_point(contraction, X0, p)))(P)
    want = cr.grad(lambda p: _loss(_unrolled(p)))(P)
    for k in P:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12)
    x = cr.fixed_point(contraction, X0, P)
    np.testing.assert_allclose(x['u'], _unrolled(P)['u'], rtol=1e-12)
    # forward mode (the transpose of the implicit VJP) and the whole Jacobian
    jf = cr.jacfwd(lambda b: cr.fixed_point(contraction, X0, {'W': P['W'], 'b': b})['u'])(P['b'])
    ju = cr.jacfwd(lambda b: _unrolled({'W': P['W'], 'b': b})['u'])(P['b'])
    np.testing.assert_allclose(jf, ju, rtol=1e-9, atol=1e-12)


def test_fixed_point_against_finite_differences():
    check_grads(lambda W, b: _loss(cr.fixed_point(contraction, X0, {'W': W, 'b': b})),
                (P['W'], P['b']), order=1, modes=('fwd', 'rev'))


def test_solver_iterations_are_not_recorded():
    # the iteration runs on concrete values: a solver written with raw NumPy works under grad
    calls = []

    def solve(g, x):
        for _ in range(60):
            calls.append(type(x))
            x = np.asarray(x) - np.asarray(g(x)) / (3 * np.asarray(x) ** 2)
        return x
    cube_root = lambda a: cr.custom_root(lambda x, a: x ** 3 - a, 1.0, a, solve=solve)  # noqa
    np.testing.assert_allclose(cr.grad(cube_root)(8.0), 1 / 12, rtol=1e-12)
    assert all(t in (float, np.ndarray, np.float64) for t in calls)


def test_custom_root_newton_against_scipy():
    optimize = pytest.importorskip('scipy.optimize', reason='SciPy is the reference root finder')

    def f(x, p):       # a nonlinear system with a parameter vector
        return cnp.stack([x[0] ** 3 + p[0] * x[1] - 1.0, cnp.sin(x[1]) + p[1] * x[0] - 0.5])
    p = np.array([0.7, 1.3])
    x = cr.custom_root(f, np.array([0.5, 0.5]), p)
    # the system has several roots: SciPy, started next to ours, must stay on it
    ref = optimize.fsolve(lambda x: np.asarray(f(x, p)), np.asarray(x) + 0.05, xtol=1e-13)
    np.testing.assert_allclose(x, ref, rtol=1e-10)
    np.testing.assert_allclose(f(x, p), 0, atol=1e-12)
    # implicit Jacobian dx/dp = -A^{-1} B against finite differences of SciPy's solution
    J = cr.jacrev(lambda p: cr.custom_root(f, np.array([0.5, 0.5]), p))(p)
    eps = 1e-6
    fd = np.stack([(optimize.fsolve(lambda x: np.asarray(f(x, p + eps * e)), ref, xtol=1e-14)
                    - optimize.fsolve(lambda x: np.asarray(f(x, p - eps * e)), ref, xtol=1e-14))
                   / (2 * eps) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8)


def test_second_derivative_of_a_fixed_point():
    # d2/da2 sqrt(a) = -a^{-3/2} / 4
    a = 2.0
    h = cr.grad(cr.grad(lambda a: cr.fixed_point(babylonian, 1.0, a)))(a)
    np.testing.assert_allclose(h, -0.25 * a ** -1.5, rtol=1e-9)


def test_custom_tangent_solve_and_errors():
    seen = []

    def tangent_solve(g, x, ct):      # A = d(x^3 - a)/dx = 3x^2, scalar
        seen.append(True)
        return ct / (3 * x ** 2)
    g = cr.grad(lambda a: cr.custom_root(lambda x, a: x ** 3 - a, 1.0, a,
                                         tangent_solve=tangent_solve))(27.0)
    np.testing.assert_allclose(g, 1 / 27, rtol=1e-12)
    assert seen
    with pytest.raises(RuntimeError, match='fixed_point: no convergence'):
        cr.fixed_point(lambda x, a: 2 * x + a, 1.0, 1.0, max_iter=20)
    with pytest.raises(RuntimeError, match='Newton did not converge'):
        cr.custom_root(lambda x, a: x ** 2 + a, 1.0, 1.0, max_iter=5)


def test_docstring_examples():
    import doctest
    import chainrule.implicit
    res = doctest.testmod(chainrule.implicit, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed


def test_autograd_fixed_points_example():
    # HIPS autograd's examples/fixed_points.py: sqrt(a) as the fixed point of Newton's
    # iteration and of gradient descent on (x^2 - a)^2 / 4, from guess 10, gradient 0.5/sqrt(a)
    newton = lambda x, a: 0.5 * (x + a / x)                # noqa: E731
    descent = lambda x, a: x - 0.05 * (x ** 2 - a)         # noqa: E731
    for it in (newton, descent):
        np.testing.assert_allclose(cr.fixed_point(it, 10.0, 2.0, tol=1e-13), np.sqrt(2.0),
                                   rtol=1e-10)
        np.testing.assert_allclose(cr.grad(lambda a: cr.fixed_point(it, 10.0, a))(2.0),
                                   0.5 / np.sqrt(2.0), rtol=1e-9)
