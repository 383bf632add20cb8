"""`chainrule.scipy.optimize`: SciPy's optimizers driven with chainrule's exact derivatives.

Each run is compared with SciPy's own run on the same problem given the analytic derivatives
(`scipy.optimize.rosen_der`, `rosen_hess_prod`, hand-written Jacobians): the same iterates,
so the same solution and iteration count."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

so = pytest.importorskip('scipy.optimize', reason='chainrule.scipy.optimize drives SciPy')
from chainrule.scipy import optimize  # noqa: E402


def rosen(x):
    return cnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])     # SciPy tutorial's starting point


@pytest.mark.parametrize('method', ['BFGS', 'L-BFGS-B', 'CG', 'Newton-CG', 'trust-ncg',
                                    'trust-krylov', 'trust-exact', 'dogleg', 'trust-constr',
                                    'SLSQP', 'TNC'])
def test_minimize_matches_scipy_with_analytic_derivatives(method):
    ours = optimize.minimize(rosen, X0, method=method)
    extra = {}
    if method in ('Newton-CG', 'trust-ncg', 'trust-krylov', 'trust-constr'):
        extra['hessp'] = so.rosen_hess_prod
    if method in ('trust-exact', 'dogleg'):
        extra['hess'] = so.rosen_hess
    ref = so.minimize(so.rosen, X0, jac=so.rosen_der, method=method, **extra)
    assert ours.success == ref.success
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-5, atol=1e-8)   # rounding, over the run
    assert abs(ours.nit - ref.nit) <= 1


def test_pytree_parameters_and_structured_results():
    def loss(p, target):
        return cnp.sum((p['w'] @ p['v'] - target) ** 2) + 0.1 * cnp.sum(p['w'] ** 2) + \
            0.1 * cnp.sum(p['v'] ** 2) + (p['s'] - 2.0) ** 2
    target = np.array([1.0, -2.0, 0.5])
    x0 = {'w': np.eye(3), 'v': np.ones(3), 's': 0.0}
    seen = []
    res = optimize.minimize(loss, x0, args=(target,), method='BFGS', callback=seen.append)
    assert set(res.x) == {'w', 'v', 's'} and res.x['w'].shape == (3, 3)
    assert isinstance(seen[0], dict) and seen[0]['v'].shape == (3,)
    assert set(res.jac) == {'w', 'v', 's'}
    assert res.success
    np.testing.assert_allclose(res.x['s'], 2.0, atol=1e-5)
    g = cr.grad(loss)(res.x, target)
    assert max(np.abs(v).max() for v in g.values()) < 1e-4
    # the same with jit: identical iterates
    res_jit = optimize.minimize(loss, x0, args=(target,), method='BFGS', jit=True)
    np.testing.assert_allclose(res_jit.x['w'], res.x['w'], rtol=1e-10)
    assert res_jit.nit == res.nit


def test_hessian_vector_products_are_supplied():
    res = optimize.minimize(rosen, X0, method='trust-ncg')
    assert res.nhev > 0 and res.success
    res = optimize.minimize(rosen, X0, method='trust-exact')
    assert res.nhev > 0 and res.success


def test_constraint_jacobians():
    f = lambda x: (x[0] - 1) ** 2 + (x[1] - 2.5) ** 2          # noqa: E731  (SciPy's example)
    cons_np = [{'type': 'ineq', 'fun': lambda x: x[0] - 2 * x[1] + 2,
                'jac': lambda x: np.array([1.0, -2.0])},
               {'type': 'ineq', 'fun': lambda x: -x[0] - 2 * x[1] + 6,
                'jac': lambda x: np.array([-1.0, -2.0])},
               {'type': 'ineq', 'fun': lambda x: -x[0] + 2 * x[1] + 2,
                'jac': lambda x: np.array([-1.0, 2.0])}]
    cons = [{k: v for k, v in c.items() if k != 'jac'} for c in cons_np]
    x0 = np.array([2.0, 0.0])
    ours = optimize.minimize(f, x0, method='SLSQP', bounds=((0, None), (0, None)),
                             constraints=cons)
    ref = so.minimize(lambda x: (x[0] - 1) ** 2 + (x[1] - 2.5) ** 2, x0, method='SLSQP',
                      jac=lambda x: np.array([2 * (x[0] - 1), 2 * (x[1] - 2.5)]),
                      bounds=((0, None), (0, None)), constraints=cons_np)
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-8)
    np.testing.assert_allclose(ours.x, [1.4, 1.7], rtol=1e-6)
    # a NonlinearConstraint without a Jacobian gets one
    nl = so.NonlinearConstraint(lambda x: x[0] ** 2 + x[1] ** 2, 0, 1)
    res = optimize.minimize(lambda x: -x[0] - x[1], np.array([0.1, 0.2]),
                            method='trust-constr', constraints=nl)
    np.testing.assert_allclose(res.x, [2 ** -0.5, 2 ** -0.5], rtol=1e-5)


def test_complex_parameters_descend_along_the_conjugate_gradient():
    target = np.array([1 + 2j, -0.5j])
    res = optimize.minimize(lambda z: cnp.sum(cnp.abs(z - target) ** 2), np.zeros(2, complex),
                            method='BFGS')
    assert res.x.dtype == complex
    np.testing.assert_allclose(res.x, target, atol=1e-6)


def test_root_matches_scipy():
    def f(x, a):
        return cnp.stack([x[0] + a * (x[0] - x[1]) ** 3 / 2 - 1,
                          a * (x[1] - x[0]) ** 3 / 2 + x[1]])

    def jac(x, a):
        d = 1.5 * a * (x[0] - x[1]) ** 2
        return np.array([[1 + d, -d], [-d, 1 + d]])
    ours = optimize.root(f, np.array([0.0, 0.0]), args=(1.0,))
    ref = so.root(lambda x: np.asarray(f(x, 1.0)), [0.0, 0.0], jac=lambda x: jac(x, 1.0))
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-10)
    assert ours.nfev == ref.nfev and ours.success
    ours = optimize.root(lambda p: {'a': p['a'] ** 2 - 4.0}, {'a': 1.0}, method='lm', jit=True)
    np.testing.assert_allclose(ours.x['a'], 2.0, rtol=1e-10)
    # a quasi-Newton method gets the residual alone, as SciPy's own run
    g = lambda x: x + 0.5 * cnp.sin(x) - 1.0            # noqa: E731
    ours = optimize.root(g, np.array([0.0, 3.0]), method='broyden1')
    ref = so.root(lambda x: np.asarray(g(x)), [0.0, 3.0], method='broyden1')
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-12)
    assert ours.success


def test_least_squares_dense_matches_scipy():
    t = np.linspace(0, 2, 30)
    y = 3.0 * np.exp(-1.3 * t) + 0.5

    def model(p, t, y):
        return p['a'] * cnp.exp(-p['k'] * t) + p['c'] - y

    def jac(v):
        a, k, _ = v
        e = np.exp(-k * t)
        return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)
    ours = optimize.least_squares(model, {'a': 1.0, 'k': 0.5, 'c': 0.0}, args=(t, y))
    ref = so.least_squares(lambda v: v[0] * np.exp(-v[1] * t) + v[2] - y, [1.0, 0.5, 0.0],
                           jac=jac)
    np.testing.assert_allclose([ours.x['a'], ours.x['k'], ours.x['c']], ref.x, rtol=1e-10)
    np.testing.assert_allclose([ours.x['a'], ours.x['k'], ours.x['c']], [3.0, 1.3, 0.5],
                               rtol=1e-8)
    assert ours.njev == ref.njev


def test_least_squares_sparse_jacobian():
    sparse = pytest.importorskip('scipy.sparse')
    n = 150

    def chain(u, c):     # a nonlinear chain: tridiagonal Jacobian
        p = cnp.concatenate([np.zeros(1), u, np.zeros(1)])
        return 4 * u - p[:-2] - p[2:] + c * cnp.sin(u) - 1.0
    tols = dict(ftol=1e-12, xtol=1e-12, gtol=1e-12)
    ours = optimize.least_squares(chain, np.zeros(n), args=(0.5,), **tols)
    assert sparse.issparse(ours.jac) and ours.jac.nnz == 3 * n - 2
    pattern = sparse.csr_matrix(np.eye(n) + np.eye(n, k=1) + np.eye(n, k=-1))
    ref = so.least_squares(lambda u: np.asarray(chain(u, 0.5)), np.zeros(n),
                           jac_sparsity=pattern, **tols)
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-10, atol=1e-12)
    assert np.abs(chain(ours.x, 0.5)).max() < 1e-12
    dense = optimize.least_squares(chain, np.zeros(n), args=(0.5,), jac_sparsity=False,
                                   jit=True, **tols)
    assert isinstance(dense.jac, np.ndarray)
    np.testing.assert_allclose(dense.x, ours.x, rtol=1e-10, atol=1e-12)


def test_autograd_rosenbrock_example():
    # HIPS autograd's examples/rosenbrock.py: minimize(value_and_grad(rosenbrock), jac=True)
    def rosenbrock(x):
        return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    res = so.minimize(cr.value_and_grad(rosenbrock), np.array([0.0, 0.0]), jac=True,
                      method='CG')
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-4)
    ours = optimize.minimize(rosenbrock, np.array([0.0, 0.0]), method='CG')
    np.testing.assert_allclose(ours.x, res.x, rtol=1e-10)


def test_errors():
    with pytest.raises(ValueError, match='minimize: the objective must return a scalar'):
        optimize.minimize(lambda x: x ** 2, np.ones(2))
    with pytest.raises(ValueError, match='least_squares: jac_sparsity'):
        optimize.least_squares(lambda x: x, np.ones(2), jac_sparsity='sometimes')


def test_docstring_examples():
    import doctest
    res = doctest.testmod(optimize, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed
