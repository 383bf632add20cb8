"""Tests of `chainrule.scipy.special`, driven by a table with one row per function: values equal
SciPy's on random, edge and broadcast inputs (float64 and float32); derivatives equal finite
differences to second order in reverse and forward mode; `vmap` equals a loop; `jit` equals
eager; derivatives with no formula raise MissingRuleError naming the argument. HIPS autograd's
mixture-model example (logsumexp) runs as a test with gradient checks."""

import math
import sys
from dataclasses import dataclass, field

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import MissingRuleError
from chainrule.testing import check_grads

ss = pytest.importorskip('scipy.special', reason='chainrule.scipy needs SciPy '
                                                 '(pip install chainrule[scipy])')
import chainrule.scipy.special as sp  # noqa: E402

MODES = ('rev', 'fwd')
POS = (0.3, 4.0)
UNIT = (0.05, 0.95)
SIGNED = (-3.0, 3.0)


@dataclass
class Row:
    """One function: `fn(*arrays)` against `ref(*arrays)` (SciPy), arguments sampled from
    `domain` (one `(lo, hi)` per argument), at each argument-shape tuple in `shapes`."""

    name: str
    fn: object
    ref: object
    domain: list
    shapes: list = None
    edges: list = field(default_factory=list)    # extra points for the value test (1 argument)
    order: int = 2
    rtol: float = 1e-12
    f32: bool = True        # float32 arguments give float32 (False: a float64 constant promotes)

    def __post_init__(self):
        if self.shapes is None:
            n = len(self.domain)
            self.shapes = [((),) * n, ((4,),) * n] + ([((3, 1), (1, 4))] if n == 2 else
                                                      [((3, 1), (4,), ())] if n == 3 else [])

    def sample(self, shapes, seed=0, dtype=np.float64):
        rng = np.random.default_rng(seed)
        return [np.asarray(rng.uniform(lo, hi, s), dtype) for s, (lo, hi) in
                zip(shapes, self.domain)]


def unary(name, domain=SIGNED, edges=(), **kw):
    return Row(name, getattr(sp, name), getattr(ss, name), [domain], edges=list(edges), **kw)


def binary(name, domain, **kw):
    return Row(name, getattr(sp, name), getattr(ss, name), domain, **kw)


def fixed(name, first, domain, **kw):
    """A function of (order, x) with the order held at `first`: differentiated in x only."""
    f, r = getattr(sp, name), getattr(ss, name)
    return Row(f'{name}[{first}]', lambda x: f(first, x), lambda x: r(first, x), [domain], **kw)


NEG_INT = [-3.0, -2.0, -1.0, 0.0]
BIG = [1e-300, 1e-10, 50.0, 170.0, 1e10, 1e300]
SPECIAL = [np.inf, -np.inf, np.nan]

ROWS = [
    unary('gamma', (0.2, 5.0), NEG_INT + [-2.5, 0.5, 171.0, 172.0] + SPECIAL),
    Row('gamma_negative', sp.gamma, ss.gamma, [(-2.9, -2.1)]),
    unary('gammaln', POS, NEG_INT + [-2.5] + BIG + SPECIAL),
    Row('gammaln_negative', sp.gammaln, ss.gammaln, [(-2.9, -2.1)]),
    unary('gammasgn', SIGNED, NEG_INT + [-2.5, -1.5] + SPECIAL),
    unary('rgamma', SIGNED, NEG_INT + [200.0] + SPECIAL),
    unary('digamma', POS, NEG_INT + [-2.5] + BIG + SPECIAL),
    Row('psi', sp.psi, ss.psi, [POS]),
    fixed('polygamma', 1, POS), fixed('polygamma', 3, POS),
    Row('polygamma_array_n', lambda x: sp.polygamma(np.array([0, 1, 2]), x),
        lambda x: ss.polygamma(np.array([0, 1, 2]), x), [POS], shapes=[((3,),), ((2, 3),)]),
    Row('multigammaln', lambda a: sp.multigammaln(a, 3), lambda a: ss.multigammaln(a, 3),
        [(1.2, 4.0)]),
    binary('beta', [POS, POS]),
    binary('betaln', [POS, POS]),
    Row('betainc', lambda x: sp.betainc(2.5, 0.7, x), lambda x: ss.betainc(2.5, 0.7, x), [UNIT],
        edges=[0.0, 1.0, -0.5, 1.5, np.nan]),
    Row('betainc_array_ab', lambda x: sp.betainc(np.array([0.5, 1.0, 3.0]), 2.0, x),
        lambda x: ss.betainc(np.array([0.5, 1.0, 3.0]), 2.0, x), [UNIT],
        shapes=[((3,),), ((2, 3),)], f32=False),
    Row('gammainc', lambda x: sp.gammainc(1.7, x), lambda x: ss.gammainc(1.7, x), [POS],
        edges=[0.0, 1e-300, 1e3, np.inf, -1.0, np.nan]),
    Row('gammaincc', lambda x: sp.gammaincc(0.6, x), lambda x: ss.gammaincc(0.6, x), [POS],
        edges=[0.0, 1e3, np.inf, np.nan]),
    unary('erf', SIGNED, [0.0, 30.0, -30.0] + SPECIAL),
    unary('erfc', SIGNED, [0.0, 26.0, 30.0, -30.0] + SPECIAL),
    unary('erfinv', (-0.95, 0.95), [0.0, 1.0, -1.0, 1 - 1e-15, 2.0, np.nan]),
    unary('erfcinv', (0.05, 1.95), [0.0, 1.0, 2.0, 1e-300, 3.0, np.nan]),
    unary('ndtr', SIGNED, [0.0, 40.0, -40.0] + SPECIAL),
    unary('log_ndtr', (-8.0, 4.0), [0.0, 40.0, -40.0, -1e5] + SPECIAL),
    Row('log_ndtr_left_tail', sp.log_ndtr, ss.log_ndtr, [(-60.0, -30.0)]),
    unary('ndtri', UNIT, [0.0, 1.0, 0.5, 1e-300, np.nan]),
    unary('expit', (-6.0, 6.0), [0.0, 40.0, -40.0, 800.0, -800.0] + SPECIAL),
    Row('expit_tails', sp.expit, ss.expit, [(30.0, 40.0)]),
    unary('logit', UNIT, [0.0, 1.0, 0.5, 0.5 + 1e-12, 1e-300, -1.0, 2.0, np.nan]),
    binary('xlogy', [SIGNED, POS], edges=None),
    binary('xlog1py', [SIGNED, (-0.9, 3.0)]),
    unary('entr', POS, [0.0, -1.0, 1e-300] + SPECIAL),
    unary('j0', (-8.0, 8.0), [0.0, 1e3] + SPECIAL),
    unary('j1', (-8.0, 8.0), [0.0, 1e3] + SPECIAL),
    fixed('jn', 3, (-8.0, 8.0)), fixed('jn', 0, (0.5, 8.0)),
    unary('y0', (0.5, 8.0), [0.0, -1.0, 1e3, np.inf, np.nan]),
    unary('y1', (0.5, 8.0), [0.0, -1.0, 1e3, np.inf, np.nan]),
    fixed('yn', 2, (0.5, 8.0)), fixed('yn', 0, (0.5, 8.0)),
    unary('i0', SIGNED, [0.0, 700.0, 800.0] + SPECIAL),
    unary('i1', SIGNED, [0.0, 700.0, 800.0] + SPECIAL),
    unary('i0e', SIGNED, [0.0, 1e3, -1e3] + SPECIAL),
    unary('i1e', SIGNED, [0.0, 1e3, -1e3] + SPECIAL),
    fixed('iv', 1.5, (0.1, 5.0)), fixed('iv', 0.0, SIGNED), fixed('iv', -0.7, (0.1, 5.0)),
    fixed('ive', 2.5, (0.1, 5.0)), fixed('ive', 1.0, SIGNED),
    fixed('kv', 0.5, (0.1, 5.0)), fixed('kv', 2.0, (0.1, 5.0)),
]
# xlogy's edges are pairs: tested separately
for _r in ROWS:
    if _r.edges is None:
        _r.edges = []
IDS = [r.name for r in ROWS]


# --- values -----------------------------------------------------------------------------------

@pytest.mark.parametrize('row', ROWS, ids=IDS)
def test_values_equal_scipy(row):
    for shapes in row.shapes:
        args = row.sample(shapes)
        want = row.ref(*args)
        got = row.fn(*args)
        np.testing.assert_allclose(got, want, rtol=row.rtol, atol=1e-300,
                                   err_msg=f'{row.name} at shapes {shapes}')
        assert np.shape(got) == np.shape(want)
        # traced: the same values
        np.testing.assert_allclose(cr.vjp(row.fn, *args)[0], want, rtol=row.rtol, atol=1e-300)


@pytest.mark.parametrize('row', [r for r in ROWS if r.edges], ids=[r.name for r in ROWS if r.edges])
def test_values_at_edges_equal_scipy(row):
    x = np.array(row.edges)
    with np.errstate(all='ignore'):
        want = row.ref(x)
        got = row.fn(x)
        traced = cr.vjp(row.fn, x)[0]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0, equal_nan=True)
    np.testing.assert_allclose(traced, want, rtol=1e-13, atol=0, equal_nan=True)


@pytest.mark.parametrize('row', ROWS, ids=IDS)
def test_float32_keeps_its_dtype(row):
    args = row.sample(row.shapes[1], dtype=np.float32)
    got = row.fn(*args)
    dt = np.float32 if row.f32 else np.float64
    assert np.asarray(got).dtype == dt, row.name
    want = row.ref(*[a.astype(np.float64) for a in args])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    if row.name != 'gammasgn':
        g = cr.grad(lambda *a: cnp.sum(row.fn(*a)))(*args)
        assert np.asarray(g).dtype == np.float32, row.name


def test_xlogy_xlog1py_conventions():
    x = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, -1.0])
    y = np.array([0.0, -1.0, np.inf, 3.0, np.nan, 0.0, -1.0, -np.inf, 5.0])
    with np.errstate(all='ignore'):
        np.testing.assert_array_equal(sp.xlogy(x, y), ss.xlogy(x, y))
        np.testing.assert_array_equal(sp.xlog1py(x, y - 1), ss.xlog1py(x, y - 1))
    # at x = 0 the derivative in x is still log(y) (the function is x log y, continuous there)
    assert cr.grad(sp.xlogy)(0.0, 3.0) == pytest.approx(math.log(3.0))
    assert cr.grad(sp.xlogy, argnums=1)(0.0, 3.0) == 0.0
    # and no nan leaks into the gradient at 0 * log(0)
    assert cr.grad(sp.xlogy, argnums=1)(0.0, 0.0) == 0.0
    assert cr.grad(sp.xlog1py)(0.0, 2.0) == pytest.approx(math.log(3.0))


def test_logit_is_accurate_near_one_half():
    x = 0.5 + np.geomspace(1e-15, 1e-3, 7)
    np.testing.assert_allclose(sp.logit(x), ss.logit(x), rtol=1e-14)


# --- derivatives ------------------------------------------------------------------------------

GRAD_ROWS = [r for r in ROWS if r.name != 'gammasgn']


@pytest.mark.parametrize('row', GRAD_ROWS, ids=[r.name for r in GRAD_ROWS])
def test_derivatives_match_finite_differences(row):
    for k, shapes in enumerate(row.shapes):
        args = row.sample(shapes, seed=k + 1)
        check_grads(row.fn, args, order=row.order, modes=MODES)


def test_gammasgn_has_zero_derivative():
    assert cr.grad(lambda x: sp.gammasgn(x) * x)(-2.5) == -1.0


def test_derivatives_against_known_values():
    # d/dx log Gamma = digamma; digamma(1) = -euler_gamma; psi'(1) = pi^2/6
    assert cr.grad(sp.gammaln)(1.0) == pytest.approx(-np.euler_gamma, rel=1e-14)
    assert cr.grad(sp.digamma)(1.0) == pytest.approx(math.pi ** 2 / 6, rel=1e-14)
    # d/dx erfinv at 0: sqrt(pi)/2
    assert cr.grad(sp.erfinv)(0.0) == pytest.approx(math.sqrt(math.pi) / 2, rel=1e-15)
    # J0' = -J1, I0' = I1, K_{1/2}'(z) by hand: K_{1/2}(z) = sqrt(pi/(2z)) e^-z
    assert cr.grad(sp.j0)(1.3) == pytest.approx(-ss.j1(1.3), rel=1e-14)
    assert cr.grad(sp.i0)(1.3) == pytest.approx(ss.i1(1.3), rel=1e-14)
    k = lambda z: math.sqrt(math.pi / (2 * z)) * math.exp(-z)            # noqa: E731
    assert cr.grad(lambda z: sp.kv(0.5, z))(0.8) == pytest.approx(
        -k(0.8) * (1 + 1 / (2 * 0.8)), rel=1e-13)
    # 1/Gamma at its zeros: (-1)^n n!
    for n in range(4):
        assert cr.grad(sp.rgamma)(-float(n)) == pytest.approx((-1) ** n * math.factorial(n))
    # the expit derivative far in the tail (ans * (1 - ans) would give 0)
    assert cr.grad(sp.expit)(40.0) == pytest.approx(math.exp(-40.0), rel=1e-14)
    # log_ndtr' = phi/Phi, about -x far in the left tail
    assert cr.grad(sp.log_ndtr)(-40.0) == pytest.approx(40.02498, rel=1e-6)
    # gammainc' in x is the gamma density
    assert cr.grad(lambda x: sp.gammainc(3.0, x))(2.0) == pytest.approx(
        2.0 ** 2 * math.exp(-2.0) / 2, rel=1e-14)


@pytest.mark.parametrize('fn,arg', [
    (lambda v: sp.polygamma(v, 2.0), 'n'), (lambda v: sp.jn(v, 2.0), 'n'),
    (lambda v: sp.yn(v, 2.0), 'n'), (lambda v: sp.iv(v, 2.0), 'v'),
    (lambda v: sp.ive(v, 2.0), 'v'), (lambda v: sp.kv(v, 2.0), 'v'),
    (lambda a: sp.betainc(a, 2.0, 0.3), 'a'), (lambda b: sp.betainc(2.0, b, 0.3), 'b'),
    (lambda a: sp.gammainc(a, 2.0), 'a'), (lambda a: sp.gammaincc(a, 2.0), 'a'),
], ids=['polygamma', 'jn', 'yn', 'iv', 'ive', 'kv', 'betainc_a', 'betainc_b', 'gammainc',
        'gammaincc'])
def test_derivative_without_a_formula_names_the_argument(fn, arg):
    name = fn.__code__.co_names[-1]
    for transform in (cr.grad(fn), lambda x: cr.jvp(fn, (x,), (1.0,))):
        with pytest.raises(MissingRuleError, match=f"{name}: no derivative in its argument "
                                                   f"'{arg}'"):
            transform(1.0)


# --- transforms -------------------------------------------------------------------------------

@pytest.mark.parametrize('row', ROWS, ids=IDS)
def test_vmap_equals_a_loop(row):
    shapes = row.shapes[1]
    batch = [np.stack(c) for c in zip(*[row.sample(shapes, seed=s) for s in range(3)])]
    out = cr.vmap(row.fn)(*batch)
    loop = np.stack([row.fn(*[b[i] for b in batch]) for i in range(3)])
    np.testing.assert_allclose(out, loop, rtol=1e-13)
    if row.name == 'gammasgn':
        return
    g = cr.vmap(cr.grad(lambda *a: cnp.sum(row.fn(*a))))(*batch)
    gl = np.stack([cr.grad(lambda *a: cnp.sum(row.fn(*a)))(*[b[i] for b in batch])
                   for i in range(3)])
    np.testing.assert_allclose(g, gl, rtol=1e-13)


@pytest.mark.parametrize('row', ROWS, ids=IDS)
def test_jit_equals_eager(row):
    args = row.sample(row.shapes[1])
    np.testing.assert_allclose(cr.jit(row.fn)(*args), row.fn(*args), rtol=1e-14)
    if row.name == 'gammasgn':
        return
    f = cr.grad(lambda *a: cnp.sum(row.fn(*a)))
    np.testing.assert_allclose(cr.jit(f)(*args), f(*args), rtol=1e-14)


def test_tensor_backward():
    x = cr.Tensor(np.array([0.5, 1.5, 2.5]), requires_grad=True)
    (sp.gammaln(x) + sp.i0e(x)).sum().backward()
    v = x.data
    np.testing.assert_allclose(x.grad, ss.digamma(v) + ss.i1e(v) - ss.i0e(v), rtol=1e-13)


# --- composites: logsumexp, softmax -----------------------------------------------------------

A = np.random.default_rng(3).normal(size=(3, 4))
B = np.random.default_rng(4).uniform(-1, 2, size=(3, 4))


@pytest.mark.parametrize('kw', [{}, {'axis': 0}, {'axis': -1, 'keepdims': True}, {'axis': (0, 1)},
                                {'b': B}, {'b': B, 'axis': 1}, {'b': B[0], 'axis': 0},
                                {'b': B, 'return_sign': True},
                                {'b': B, 'axis': 1, 'return_sign': True, 'keepdims': True}],
                         ids=lambda kw: ','.join(f'{k}={"B" if k == "b" else v}'
                                                 for k, v in kw.items()) or 'default')
def test_logsumexp_equals_scipy_and_is_differentiable(kw):
    with np.errstate(invalid='ignore'):
        want = ss.logsumexp(A, **kw)
        got = sp.logsumexp(A, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True)
    if kw.get('return_sign') or 'b' not in kw:
        b = kw.get('b')
        rest = {k: v for k, v in kw.items() if k != 'b'}

        def f(a, *bb):
            out = sp.logsumexp(a, b=bb[0] if bb else None, **rest)
            return out[0] if rest.get('return_sign') else out
        check_grads(f, (A,) + ((b,) if b is not None else ()), order=2, modes=MODES)


def test_logsumexp_edges():
    with np.errstate(all='ignore'):
        for a, kw in [([-np.inf, -np.inf], {}), ([np.inf, 1.0], {}), ([1000.0, 1000.0], {}),
                      ([1000.0, 0.0], {'b': [0.0, 1.0]}), ([np.inf, 0.0], {'b': [0.0, 1.0]}),
                      ([1.0, 2.0], {'b': [1.0, -1.0]}), ([1.0, 1.0], {'b': [1.0, -1.0],
                                                                        'return_sign': True}),
                      ([1.0, 2.0], {'b': [1.0, -1.0], 'return_sign': True})]:
            want = ss.logsumexp(np.array(a), **{k: np.array(v) if k == 'b' else v
                                                for k, v in kw.items()})
            got = sp.logsumexp(np.array(a), **kw)
            np.testing.assert_allclose(got, want, rtol=1e-14, equal_nan=True, err_msg=f'{a} {kw}')
    # the gradient in a weight that is 0 is exp(a_i - logsumexp)
    g = cr.grad(lambda b: sp.logsumexp(np.array([0.0, 1.0]), b=b))(np.array([1.0, 0.0]))
    np.testing.assert_allclose(g, [1.0, math.e], rtol=1e-14)


@pytest.mark.parametrize('axis', [None, 0, 1])
def test_softmax_and_log_softmax(axis):
    np.testing.assert_allclose(sp.softmax(A, axis=axis), ss.softmax(A, axis=axis), rtol=1e-14)
    np.testing.assert_allclose(sp.log_softmax(A, axis=axis), ss.log_softmax(A, axis=axis),
                               rtol=1e-14)
    check_grads(lambda a: sp.softmax(a, axis=axis), (A,), order=2, modes=MODES)
    check_grads(lambda a: sp.log_softmax(a, axis=axis), (A,), order=2, modes=MODES)


def test_multigammaln_checks_like_scipy():
    with pytest.raises(ValueError, match='greater than'):
        sp.multigammaln(0.9, 3)
    with pytest.raises(ValueError, match='positive integer'):
        sp.multigammaln(3.0, 1.5)


def test_shape_errors_name_the_function():
    with pytest.raises(cr.core.ShapeError, match=r'betaln: argument shapes \(3,\), \(4,\)'):
        cr.grad(lambda a: cnp.sum(sp.betaln(a, cnp.ones(4))))(np.ones(3))


def test_missing_scipy_says_what_to_install(monkeypatch):
    import chainrule.scipy as csp
    monkeypatch.setitem(sys.modules, 'scipy.special', None)
    monkeypatch.setattr(sp, '_special', None)
    with pytest.raises(ImportError, match=r'pip install chainrule\[scipy\]'):
        sp.gammaln(1.5)
    with pytest.raises(ImportError, match=r'pip install chainrule\[scipy\]'):
        csp.require_scipy('special')


def test_every_primitive_is_exercised_by_a_row():
    from test_registry import primitives_used
    used = set()
    for row in ROWS:
        used |= primitives_used(row.fn, row.sample(row.shapes[0]))
    missing = sorted(set(sp.primitives()) - used)
    assert not missing, f'chainrule.scipy.special primitives with no row: {missing}'


def test_public_names_are_scipys():
    for name in sp.__all__:
        assert hasattr(ss, name), name


# --- HIPS autograd's mixture-model example (examples/gmm.py), with chainrule ------------------

def _gmm_log_marginal_likelihood(params, data, special, mvn, xnp):
    """The log marginal likelihood of a Gaussian mixture: log proportions normalised by
    logsumexp, per-cluster full covariances cov = C^T C, logsumexp over clusters."""
    logp = params['log proportions'] - special.logsumexp(params['log proportions'])
    lls = []
    for k in range(len(logp)):
        c = params['cov sqrts'][k]
        lls.append(logp[k] + mvn.logpdf(data, params['means'][k], xnp.dot(c.T, c)))
    return xnp.sum(special.logsumexp(xnp.vstack(lls), axis=0))


def test_autograd_gmm_example():
    import scipy.stats as sst

    import chainrule.scipy.stats as cst
    rng = np.random.default_rng(5)
    k, d = 3, 2
    params = {'log proportions': rng.normal(size=k), 'means': rng.normal(size=(k, d)),
              'cov sqrts': rng.normal(size=(k, d, d)) + 2 * np.eye(d)}
    data = rng.normal(size=(20, d)) * 2
    want = _gmm_log_marginal_likelihood(params, data, ss, sst.multivariate_normal, np)
    got = _gmm_log_marginal_likelihood(params, data, sp, cst.multivariate_normal, cnp)
    assert got == pytest.approx(want, rel=1e-12)

    def objective(lp, mu, cs):
        return _gmm_log_marginal_likelihood({'log proportions': lp, 'means': mu, 'cov sqrts': cs},
                                            data, sp, cst.multivariate_normal, cnp)
    check_grads(objective, (params['log proportions'], params['means'], params['cov sqrts']),
                order=2, modes=MODES)
    # a few steps of gradient ascent raise the likelihood
    g = cr.grad(lambda p: _gmm_log_marginal_likelihood(p, data, sp, cst.multivariate_normal,
                                                       cnp))
    p = params
    for _ in range(5):
        gp = g(p)
        p = {n: p[n] + 0.01 * gp[n] for n in p}
    assert _gmm_log_marginal_likelihood(p, data, ss, sst.multivariate_normal, np) > want


def test_ive_derivative_for_complex_z_is_refused_not_wrong():
    # ive scales by exp(-|Re z|), not complex-differentiable: a clear error, never a guess
    from chainrule.scipy import special as csp
    with pytest.raises(cr.DTypeError, match='complex'):
        cr.grad(lambda z: cnp.abs(csp.ive(1.0, z)) ** 2)(np.complex128(0.5 + 0.3j))
    # real z still differentiates: d/dz ive(1, z) at 0.7 by central differences
    sp = pytest.importorskip('scipy.special')
    h = 1e-6
    fd = (sp.ive(1.0, 0.7 + h) - sp.ive(1.0, 0.7 - h)) / (2 * h)
    np.testing.assert_allclose(cr.grad(lambda z: csp.ive(1.0, z))(0.7), fd, rtol=1e-7)
