"""Tests of `chainrule.scipy.stats`: every method of every distribution equals SciPy's on data
inside and outside the support, at broadcast shapes and invalid parameters; derivatives in the
data and every parameter equal finite differences to second order in reverse and forward mode
(MissingRuleError for a cdf's derivative in a parameter of an incomplete beta/gamma function);
`vmap` equals a loop and `jit` equals eager; SciPy's argument conventions (positional loc and
scale, frozen distributions); HIPS autograd's Gaussian-process example with gradient checks."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import MissingRuleError
from chainrule.testing import check_grads

sst = pytest.importorskip('scipy.stats', reason='chainrule.scipy needs SciPy '
                                                '(pip install chainrule[scipy])')
import chainrule.scipy.stats as st  # noqa: E402

MODES = ('rev', 'fwd')
CONT = ('logpdf', 'pdf', 'cdf', 'logcdf', 'sf', 'logsf')
DISC = ('logpmf', 'pmf', 'cdf', 'logcdf', 'sf', 'logsf')

# name: (parameters (shapes, then loc and scale for continuous ones), data inside the support,
#        data of the value tests (edges and outside the support), how many leading parameters a
#        cdf cannot be differentiated in)
CONTINUOUS = {
    'norm':     ((0.3, 1.7), (-2.0, 3.0), [-40.0, -1e3, 0.3, 40.0, np.inf, -np.inf, np.nan], 0),
    't':        ((2.5, 0.1, 1.2), (-3.0, 3.0), [-1e3, 0.1, 1e3, np.inf, np.nan], 1),
    'beta':     ((2.0, 3.0, -0.1, 1.3), (0.0, 1.1), [-0.5, -0.1, 1.2, 2.0, np.nan], 2),
    'gamma':    ((2.5, -0.5, 1.3), (-0.3, 4.0), [-1.0, -0.5, 0.0, 1e3, np.inf, np.nan], 1),
    'chi2':     ((3.0, -0.5, 1.5), (-0.3, 4.0), [-1.0, -0.5, 1e3, np.inf, np.nan], 1),
    'expon':    ((-0.5, 2.0), (-0.3, 4.0), [-1.0, -0.5, 1e3, np.inf, np.nan], 0),
    'laplace':  ((0.2, 0.7), (-3.0, 3.0), [-30.0, 0.2, 30.0, np.inf, -np.inf, np.nan], 0),
    'logistic': ((0.2, 0.7), (-3.0, 3.0), [-800.0, 0.2, 800.0, np.inf, -np.inf, np.nan], 0),
    'cauchy':   ((0.2, 0.7), (-3.0, 3.0), [-1e6, 0.2, 1e6, np.inf, -np.inf, np.nan], 0),
}
DISCRETE = {
    'poisson':   ((2.3,), [0.0, 1.0, 3.0, 7.0], [-1.0, 0.0, 2.5, 40.0, np.inf, np.nan], 0),
    'bernoulli': ((0.3,), [0.0, 1.0], [-1.0, 0.0, 0.5, 1.0, 2.0, np.nan], 0),
    'binom':     ((5.0, 0.35), [0.0, 2.0, 4.0, 5.0], [-1.0, 0.0, 2.5, 5.0, 6.0, np.nan], 1),
}
LOC = {'poisson': 1.0, 'bernoulli': -1.0, 'binom': 2.0}


def _data(name, rng, shape):
    params, dom, _, _ = CONTINUOUS[name]
    return rng.uniform(dom[0], dom[1], shape)


# --- values -----------------------------------------------------------------------------------

@pytest.mark.parametrize('method', CONT)
@pytest.mark.parametrize('name', sorted(CONTINUOUS))
def test_continuous_values_equal_scipy(name, method):
    params, _, edges, _ = CONTINUOUS[name]
    rng = np.random.default_rng(0)
    ref, ours = getattr(getattr(sst, name), method), getattr(getattr(st, name), method)
    x = np.concatenate([_data(name, rng, 12), edges])
    with np.errstate(all='ignore'):
        want = ref(x, *params)
        got = ours(x, *params)
    if name == 'laplace' and method in ('logcdf', 'logsf'):
        # SciPy takes log(cdf), -inf in the far tail; ours is the exact -|z| - log 2 there
        z = (x - 0.2) / 0.7
        far = (z < -20) if method == 'logcdf' else (z > 20)
        np.testing.assert_allclose(got[far & np.isfinite(x)],
                                   -np.abs(z[far & np.isfinite(x)]) - math.log(2), rtol=1e-14)
        want, got = want[~far], got[~far]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True)
    # and traced, with every parameter a traced argument
    with np.errstate(all='ignore'):
        traced = cr.vjp(lambda x, *p: ours(x, *p), x, *[np.float64(p) for p in params])[0]
    np.testing.assert_allclose(traced, ours(x, *params), rtol=1e-14, equal_nan=True)


@pytest.mark.parametrize('method', DISC)
@pytest.mark.parametrize('name', sorted(DISCRETE))
def test_discrete_values_equal_scipy(name, method):
    params, inside, edges, _ = DISCRETE[name]
    ref, ours = getattr(getattr(sst, name), method), getattr(getattr(st, name), method)
    k = np.array(inside + edges)
    # atol: far in a tail, log(cdf) is -2e-36 here where SciPy rounds it to 0
    with np.errstate(all='ignore'):
        np.testing.assert_allclose(ours(k, *params), ref(k, *params), rtol=1e-12, atol=1e-30,
                                   equal_nan=True)
        np.testing.assert_allclose(ours(k, *params, loc=LOC[name]),
                                   ref(k, *params, loc=LOC[name]), rtol=1e-12, atol=1e-30,
                                   equal_nan=True)


@pytest.mark.parametrize('name', sorted(CONTINUOUS))
def test_broadcasting_and_invalid_parameters_like_scipy(name):
    params, _, _, _ = CONTINUOUS[name]
    rng = np.random.default_rng(1)
    x = _data(name, rng, (2, 1, 4))
    # every parameter gets its own broadcast shape; the last value of each is invalid
    # (scale <= 0, a shape parameter <= 0) where a parameter can be invalid
    ps = []
    for i, p in enumerate(params):
        v = np.full((3, 1) if i % 2 == 0 else (4,), p, dtype=float)
        v[-1] = -1.0 if (i < len(params) - 2 or i == len(params) - 1) else p
        ps.append(v)
    for method in CONT:
        with np.errstate(all='ignore'):
            want = getattr(getattr(sst, name), method)(x, *ps)
            got = getattr(getattr(st, name), method)(x, *ps)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, equal_nan=True,
                                   err_msg=f'{name}.{method}')


def test_discrete_invalid_parameters_give_nan():
    with np.errstate(all='ignore'):
        for dist, args in [('poisson', (-1.0,)), ('bernoulli', (1.5,)), ('binom', (3.5, 0.5)),
                           ('binom', (3.0, -0.1))]:
            want = getattr(sst, dist).logpmf([0.0, 1.0], *args)
            got = getattr(st, dist).logpmf([0.0, 1.0], *args)
            np.testing.assert_array_equal(got, want)


# --- derivatives ------------------------------------------------------------------------------

@pytest.mark.parametrize('method', CONT)
@pytest.mark.parametrize('name', sorted(CONTINUOUS))
def test_continuous_derivatives_in_data_and_every_parameter(name, method):
    params, _, _, fixed = CONTINUOUS[name]
    rng = np.random.default_rng(2)
    x = _data(name, rng, 5)
    if name == 'laplace':
        x = x[np.abs(x - 0.2) > 0.05]          # away from the kink at loc
    f = getattr(getattr(st, name), method)
    n = fixed if method in ('cdf', 'logcdf', 'sf', 'logsf') else 0
    const = params[:n]
    check_grads(lambda x, *p: f(x, *const, *p), (x,) + tuple(np.float64(p) for p in params[n:]),
                order=2, modes=MODES)


@pytest.mark.parametrize('method', DISC)
@pytest.mark.parametrize('name', sorted(DISCRETE))
def test_discrete_derivatives_in_the_parameters(name, method):
    params, inside, _, _ = DISCRETE[name]
    f = getattr(getattr(st, name), method)
    k = np.array(inside)
    if method in ('logsf', 'sf', 'logcdf', 'cdf'):
        # where both tails are positive (the log of a tail that is 0 has no derivative)
        k = k[k < {'binom': params[0], 'bernoulli': 1}.get(name, np.inf)]
    # binom's n is an integer (SciPy gives nan off the integers): differentiate in p only
    const = params[:1] if name == 'binom' else ()
    check_grads(lambda *p: f(k, *const, *p), tuple(np.float64(p) for p in params[len(const):]),
                order=2, modes=MODES)


def test_analytic_gradients():
    # d/dmu log N(x; mu, s) = (x - mu)/s^2, d/ds = ((x - mu)^2 - s^2)/s^3
    g = cr.grad(st.norm.logpdf, argnums=(0, 1, 2))(1.3, 0.4, 1.5)
    assert g[1] == pytest.approx(0.9 / 2.25) and g[0] == pytest.approx(-0.9 / 2.25)
    assert g[2] == pytest.approx((0.81 - 2.25) / 1.5 ** 3)
    # the normal logcdf's slope far in the left tail is about -x (log_ndtr, no underflow)
    assert cr.grad(st.norm.logcdf)(-40.0) == pytest.approx(40.02498, rel=1e-6)
    # d/dmu log Poisson(k; mu) = k/mu - 1
    assert cr.grad(st.poisson.logpmf, argnums=1)(3.0, 2.0) == pytest.approx(0.5)
    # gamma.cdf in x is the pdf
    assert cr.grad(st.gamma.cdf)(1.7, 2.5) == pytest.approx(sst.gamma.pdf(1.7, 2.5), rel=1e-13)


@pytest.mark.parametrize('call,arg', [
    (lambda df: st.t.cdf(0.3, df), "betainc: no derivative in its argument 'a'"),
    (lambda a: st.gamma.cdf(0.3, a), "gammainc: no derivative in its argument 'a'"),
    (lambda a: st.beta.sf(0.3, a, 2.0), "betainc: no derivative in its argument 'b'"),
    (lambda df: st.chi2.logcdf(0.3, df), "gammaincc?: no derivative in its argument 'a'"),
    (lambda n: st.binom.cdf(2.0, n, 0.3), "betainc: no derivative in its argument 'a'"),
], ids=['t', 'gamma', 'beta', 'chi2', 'binom'])
def test_cdf_in_a_shape_parameter_raises_missing_rule(call, arg):
    with pytest.raises(MissingRuleError, match=arg):
        cr.grad(call)(3.0)


# --- transforms -------------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(CONTINUOUS))
def test_vmap_equals_a_loop_and_jit_equals_eager(name):
    params, _, _, _ = CONTINUOUS[name]
    rng = np.random.default_rng(3)
    xs = _data(name, rng, (4, 3))
    ps = [np.float64(p) * rng.uniform(0.9, 1.1, 4) for p in params]
    for method in ('logpdf', 'cdf'):
        f = getattr(getattr(st, name), method)
        out = cr.vmap(f)(xs, *ps)
        loop = np.stack([f(xs[i], *[p[i] for p in ps]) for i in range(4)])
        np.testing.assert_allclose(out, loop, rtol=1e-13)
        np.testing.assert_allclose(cr.jit(f)(xs[0], *params), f(xs[0], *params), rtol=1e-14)
    g = cr.grad(lambda x, *p: cnp.sum(getattr(st, name).logpdf(x, *p)), argnums=tuple(
        range(len(params) + 1)))
    gv = cr.vmap(g)(xs, *ps)
    for i in range(4):
        for a, b in zip(gv, g(xs[i], *[p[i] for p in ps])):
            np.testing.assert_allclose(a[i], b, rtol=1e-12)
    for a, b in zip(cr.jit(g)(xs[0], *params), g(xs[0], *params)):
        np.testing.assert_allclose(a, b, rtol=1e-13)


@pytest.mark.parametrize('name', sorted(DISCRETE))
def test_discrete_vmap_and_jit(name):
    params, inside, _, _ = DISCRETE[name]
    k = np.array(inside)
    p = params[-1] * np.array([0.8, 0.9, 1.0])
    f = getattr(st, name).logpmf
    out = cr.vmap(lambda q: f(k, *params[:-1], q))(p)
    np.testing.assert_allclose(out, np.stack([f(k, *params[:-1], q) for q in p]), rtol=1e-13)
    g = cr.grad(lambda q: cnp.sum(f(k, *params[:-1], q)))
    np.testing.assert_allclose(cr.jit(g)(p[0]), g(p[0]), rtol=1e-13)
    np.testing.assert_allclose(cr.vmap(g)(p), [g(q) for q in p], rtol=1e-13)


# --- SciPy's conventions ----------------------------------------------------------------------

def test_arguments_positional_keyword_and_frozen():
    x = np.array([0.1, 1.2, 2.5])
    want = sst.gamma.logpdf(x, 2.5, 0.1, 1.3)
    for got in (st.gamma.logpdf(x, 2.5, 0.1, 1.3), st.gamma.logpdf(x, 2.5, loc=0.1, scale=1.3),
                st.gamma.logpdf(x, a=2.5, scale=1.3, loc=0.1), st.gamma(2.5, 0.1, 1.3).logpdf(x),
                st.gamma(2.5, scale=1.3, loc=0.1).logpdf(x)):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_allclose(st.norm(1.0, 2.0).cdf(x), sst.norm(1.0, 2.0).cdf(x), rtol=1e-14)
    np.testing.assert_allclose(st.poisson(2.0, loc=1).pmf(x.round()),
                               sst.poisson(2.0, loc=1).pmf(x.round()), rtol=1e-14)
    np.testing.assert_allclose(st.norm.ppf([0.1, 0.5], 1.0, 2.0),
                               sst.norm.ppf([0.1, 0.5], 1.0, 2.0), rtol=1e-14)
    with pytest.raises(TypeError, match=r"gamma.logpdf\(\) missing the shape parameter 'a'"):
        st.gamma.logpdf(x)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mu'"):
        st.norm.logpdf(x, mu=1.0)
    with pytest.raises(TypeError, match="multiple values for argument 'loc'"):
        st.norm.logpdf(x, 1.0, loc=1.0)
    with pytest.raises(TypeError, match='at most 3 parameters'):
        st.t.logpdf(x, 1.0, 2.0, 3.0, 4.0)


# --- dirichlet --------------------------------------------------------------------------------

ALPHA = np.array([1.5, 2.0, 0.7])


def test_dirichlet_values_equal_scipy():
    rng = np.random.default_rng(4)
    x = rng.dirichlet(ALPHA, size=5).T                     # (K, N): components first
    for xx in (x, x[:-1], x[:, 0], x[:-1, 0]):
        np.testing.assert_allclose(st.dirichlet.logpdf(xx, ALPHA),
                                   sst.dirichlet.logpdf(xx, ALPHA), rtol=1e-13)
        np.testing.assert_allclose(st.dirichlet.pdf(xx, ALPHA), sst.dirichlet.pdf(xx, ALPHA),
                                   rtol=1e-13)
    np.testing.assert_allclose(st.dirichlet(ALPHA).logpdf(x), sst.dirichlet(ALPHA).logpdf(x),
                               rtol=1e-13)
    # alpha = 1 lets a component be 0, as in SciPy
    np.testing.assert_allclose(st.dirichlet.logpdf([0.0, 0.4, 0.6], [1.0, 2.0, 3.0]),
                               sst.dirichlet.logpdf([0.0, 0.4, 0.6], [1.0, 2.0, 3.0]))
    for bad, alpha in [([0.5, 0.6, 0.1], ALPHA), ([0.5, 0.5], ALPHA[:1]), ([0.4, 0.6, 0.0], ALPHA),
                       ([0.3, 0.3, 0.4], -ALPHA), ([1.2, -0.2, 0.0], [1.0, 1.0, 1.0])]:
        with pytest.raises(ValueError, match='dirichlet'):
            st.dirichlet.logpdf(bad, alpha)


def test_dirichlet_derivatives():
    rng = np.random.default_rng(5)
    x = rng.dirichlet(ALPHA, size=4).T[:-1]               # K - 1 free components
    check_grads(st.dirichlet.logpdf, (x, ALPHA), order=2, modes=MODES)
    # d/dalpha_i = log x_i - digamma(alpha_i) + digamma(sum alpha)
    import scipy.special as ss
    x1 = np.array([0.2, 0.5, 0.3])
    g = cr.grad(lambda a: st.dirichlet.logpdf(x1, a))(ALPHA)
    np.testing.assert_allclose(g, np.log(x1) - ss.digamma(ALPHA) + ss.digamma(ALPHA.sum()),
                               rtol=1e-13)
    np.testing.assert_allclose(cr.vmap(lambda a: st.dirichlet.logpdf(x1, a))(
        np.stack([ALPHA, 2 * ALPHA])), [st.dirichlet.logpdf(x1, a) for a in (ALPHA, 2 * ALPHA)])


# --- multivariate_normal ----------------------------------------------------------------------

rng = np.random.default_rng(6)
C = rng.normal(size=(3, 3))
COV = C @ C.T + 0.5 * np.eye(3)
MEAN = np.array([0.3, -0.2, 1.0])
XS = rng.normal(size=(5, 3))
SINGULAR = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])


@pytest.mark.parametrize('x,mean,cov,kw', [
    (XS, MEAN, COV, {}), (XS[0], MEAN, COV, {}), (XS.reshape(5, 1, 3), MEAN, COV, {}),
    (XS, None, COV, {}), (XS, MEAN, 2.5, {}), (XS, MEAN, np.array([1.0, 2.0, 0.5]), {}),
    (XS[:, 0], 0.5, 2.0, {}), (1.3, None, 1, {}), (XS[:, :1], [0.5], [[2.0]], {}),
    (XS, MEAN, COV, {'allow_singular': True}),
    (np.array([[1.0, 1.0, 0.5], [1.0, 2.0, 0.5]]), None, SINGULAR, {'allow_singular': True}),
    (np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]), np.zeros(3), np.array([1.0, 0.0, 2.0]),
     {'allow_singular': True}), (np.array([0.5, 1.5]), None, 2.0, {}),
], ids=['matrix', 'one_point', 'batch_axes', 'no_mean', 'scalar_cov', 'diagonal_cov', 'dim1',
        'scalar_x', 'dim1_matrix', 'allow_singular_regular', 'singular', 'singular_diagonal',
        'no_mean_scalar_cov'])
def test_multivariate_normal_values_equal_scipy(x, mean, cov, kw):
    want = sst.multivariate_normal.logpdf(x, mean, cov, **kw)
    got = st.multivariate_normal.logpdf(x, mean, cov, **kw)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(st.multivariate_normal.pdf(x, mean, cov, **kw),
                               sst.multivariate_normal.pdf(x, mean, cov, **kw), rtol=1e-12)
    np.testing.assert_allclose(st.multivariate_normal(mean, cov, **kw).logpdf(x), want,
                               rtol=1e-12)


def test_multivariate_normal_errors_like_scipy():
    with pytest.raises(np.linalg.LinAlgError):
        st.multivariate_normal.logpdf(XS, None, SINGULAR)
    with pytest.raises(ValueError, match='positive semidefinite'):
        st.multivariate_normal.logpdf(XS, None, -SINGULAR, allow_singular=True)
    with pytest.raises(ValueError, match='dimension 3'):
        st.multivariate_normal.logpdf(XS[:, :2], MEAN, COV)
    with pytest.raises(ValueError, match=r'cov of shape \(2, 2\)'):
        st.multivariate_normal.logpdf(XS, MEAN, np.eye(2))


def test_multivariate_normal_derivatives():
    sym = lambda c: (c + c.T) / 2            # noqa: E731  (the test perturbs both triangles)
    f = st.multivariate_normal.logpdf
    check_grads(lambda x, m, c: f(x, m, c), (XS, MEAN, COV), order=2, modes=MODES)
    check_grads(lambda x, m, c: f(x, m, c), (XS, MEAN, np.array([1.0, 2.0, 0.5])), order=2,
                modes=MODES)
    check_grads(lambda x, m, c: f(x, m, c), (XS[0], MEAN, 1.7), order=2, modes=MODES)
    check_grads(lambda x, m, c: f(x, m, sym(c), allow_singular=True), (XS, MEAN, COV), order=2,
                modes=MODES)
    # analytic: d/dx = -cov^-1 (x - mean)
    g = cr.grad(lambda x: f(x, MEAN, COV))(XS[0])
    np.testing.assert_allclose(g, -np.linalg.solve(COV, XS[0] - MEAN), rtol=1e-12)
    # on a singular covariance, the derivative in x along its support
    gs = cr.grad(lambda x: f(x, None, SINGULAR, allow_singular=True))(np.array([1.0, 1.0, 0.5]))
    np.testing.assert_allclose(gs, -np.linalg.pinv(SINGULAR) @ [1.0, 1.0, 0.5], rtol=1e-10)


def test_multivariate_normal_vmap_and_jit():
    f = lambda x, m: st.multivariate_normal.logpdf(x, m, COV)    # noqa: E731
    ms = np.stack([MEAN, 2 * MEAN])
    np.testing.assert_allclose(cr.vmap(f, in_axes=(None, 0))(XS, ms), [f(XS, m) for m in ms],
                               rtol=1e-13)
    g = cr.grad(lambda m: cnp.sum(f(XS, m)))
    np.testing.assert_allclose(cr.jit(g)(MEAN), g(MEAN), rtol=1e-13)
    np.testing.assert_allclose(cr.jit(f)(XS, MEAN), f(XS, MEAN), rtol=1e-13)


# --- HIPS autograd's Gaussian-process example (examples/gaussian_process.py), with chainrule ----

def _rbf_covariance(kernel_params, x, xp, xnp):
    output_scale = xnp.exp(kernel_params[0])
    lengthscales = xnp.exp(kernel_params[1:])
    diffs = xnp.expand_dims(x / lengthscales, 1) - xnp.expand_dims(xp / lengthscales, 0)
    return output_scale * xnp.exp(-0.5 * xnp.sum(diffs ** 2, axis=2))


def _gp_log_marginal_likelihood(params, x, y, mvn, xnp):
    mean, noise_scale, cov_params = params[0], xnp.exp(params[1]) + 0.0001, params[2:]
    cov_y_y = _rbf_covariance(cov_params, x, x, xnp) + noise_scale * xnp.eye(len(y))
    prior_mean = mean * xnp.ones(len(y))
    return mvn.logpdf(y, prior_mean, cov_y_y)


def test_autograd_gaussian_process_example():
    r = np.random.default_rng(7)
    x = np.concatenate([np.linspace(0, 3, 9), np.linspace(6, 8, 9)]).reshape(-1, 1)
    y = np.cos(x[:, 0]) + r.normal(scale=0.1, size=len(x))
    params = 0.1 * r.normal(size=4)        # mean, log noise, log output scale, log lengthscale
    want = _gp_log_marginal_likelihood(params, x, y, sst.multivariate_normal, np)
    got = _gp_log_marginal_likelihood(params, x, y, st.multivariate_normal, cnp)
    assert got == pytest.approx(want, rel=1e-12)

    def objective(p):
        return -_gp_log_marginal_likelihood(p, x, y, st.multivariate_normal, cnp)
    check_grads(objective, (params,), order=2, modes=MODES)
    # the optimisation of the example: a few gradient steps lower the objective
    g, p = cr.grad(objective), params
    for _ in range(10):
        p = p - 0.02 * g(p)
    assert -_gp_log_marginal_likelihood(p, x, y, sst.multivariate_normal, np) < -want


def test_tensor_backward_through_a_likelihood():
    x = np.array([0.5, 1.5, 4.0])
    mu = cr.Tensor(np.array(2.0), requires_grad=True)
    rate = cr.Tensor(np.array(1.5), requires_grad=True)
    nll = -(st.norm.logpdf(x, mu, 1.3).sum() + st.gamma.logpdf(x, 2.0, scale=1 / rate).sum())
    nll.backward()
    assert float(mu.grad) == pytest.approx(-np.sum(x - 2.0) / 1.69)
    # gamma(a, scale=1/rate): d/drate sum log p = sum(a/rate - x)
    assert float(rate.grad) == pytest.approx(-np.sum(2.0 / 1.5 - x))


# --- HIPS autograd's black-box variational inference example (examples/black_box_svi.py) ------

def _funnel_log_density(x, norm, xnp):
    mu, log_sigma = x[:, 0], x[:, 1]
    return norm.logpdf(log_sigma, 0, 1.35) + norm.logpdf(mu, 0, xnp.exp(log_sigma))


def _negative_elbo(params, eps, norm, xnp):
    """The reparameterised ELBO of a diagonal Gaussian q, on fixed standard-normal draws `eps`
    (so the objective is deterministic and can be checked against finite differences)."""
    d = eps.shape[1]
    mean, log_std = params[:d], params[d:]
    samples = eps * xnp.exp(log_std) + mean
    entropy = 0.5 * d * (1.0 + math.log(2 * math.pi)) + xnp.sum(log_std)
    return -(entropy + xnp.mean(_funnel_log_density(samples, norm, xnp)))


def test_autograd_black_box_vi_example():
    eps = np.random.default_rng(8).normal(size=(40, 2))
    params = np.array([-1.0, -1.0, -5.0, -5.0])           # the example's initial q
    want = _negative_elbo(params, eps, sst.norm, np)
    assert _negative_elbo(params, eps, st.norm, cnp) == pytest.approx(want, rel=1e-13)
    objective = lambda p: _negative_elbo(p, eps, st.norm, cnp)    # noqa: E731
    check_grads(objective, (params,), order=2, modes=MODES)
    g, p = cr.grad(objective), params
    for _ in range(20):
        p = p - 0.05 * g(p)
    assert _negative_elbo(p, eps, sst.norm, np) < want


@pytest.mark.parametrize('name', sorted(CONTINUOUS) + sorted(DISCRETE))
def test_float32_data_with_python_parameters_stays_float32(name):
    # Python numbers are weak (NumPy 2): float32 data gives float32 results and gradients
    if name in CONTINUOUS:
        params, _, edges, _ = CONTINUOUS[name]
        x = np.concatenate([_data(name, np.random.default_rng(9), 6), edges]).astype(np.float32)
        methods = CONT
    else:
        params, inside, edges, _ = DISCRETE[name]
        x = np.array(inside + edges, np.float32)
        methods = DISC
    for method in methods:
        with np.errstate(all='ignore'):
            got = getattr(getattr(st, name), method)(x, *params)
            want = getattr(getattr(sst, name), method)(x.astype(np.float64), *params)
        assert got.dtype == np.float32, f'{name}.{method}'
        # (a log-probability below -80 is a probability under float32's smallest number)
        ok = np.isfinite(want) & (np.abs(want) < 1e30) & (want > -80)
        np.testing.assert_allclose(got[ok], want[ok], rtol=2e-5, atol=1e-6)
    g = cr.grad(lambda p: cnp.sum(getattr(getattr(st, name), methods[0])(x[:2], p,
                                                                        *params[1:])))
    assert g(np.float32(params[0])).dtype == np.float32


@pytest.mark.parametrize('name', sorted(CONTINUOUS))
def test_jit_equals_eager_outside_the_support(name):
    params, _, edges, _ = CONTINUOUS[name]
    x = np.array(edges)
    for method in CONT:
        f = getattr(getattr(st, name), method)
        with np.errstate(all='ignore'):
            np.testing.assert_array_equal(cr.jit(f)(x, *params), f(x, *params))
