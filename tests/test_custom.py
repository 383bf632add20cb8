"""Tests of custom_jvp, custom_vjp and user-registered primitives: values against finite
differences and against the same function without a custom rule, in every mode available."""

import functools
import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

rng = np.random.default_rng(1)


def fd(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


# --- custom_jvp ------------------------------------------------------------------------------

@cr.custom_jvp
def log1pexp(x):
    return cnp.log1p(cnp.exp(x))


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * (1 - 1 / (1 + cnp.exp(x)))     # sigmoid(x), without inf/inf


def plain_log1pexp(x):
    return cnp.log1p(cnp.exp(x))


def test_custom_jvp_stable_where_plain_is_not():
    with np.errstate(over='ignore', invalid='ignore'):
        assert np.isnan(cr.grad(plain_log1pexp)(800.0))
        assert cr.grad(log1pexp)(800.0) == 1.0


def test_custom_jvp_agrees_with_plain_and_fd():
    for x in [-3.0, -0.2, 0.0, 1.5, 4.0]:
        g = cr.grad(log1pexp)(x)
        assert g == pytest.approx(cr.grad(plain_log1pexp)(x), rel=1e-12)
        assert g == pytest.approx(fd(lambda v: float(plain_log1pexp(v)), x), rel=1e-7)
        # second order: the rule is differentiated (d/dx sigmoid = s (1 - s))
        s = 1 / (1 + np.exp(-x))
        assert cr.grad(cr.grad(log1pexp))(x) == pytest.approx(s * (1 - s), rel=1e-10)


def test_custom_jvp_arrays_and_eager_call():
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(log1pexp(x), np.log1p(np.exp(x)))     # no trace: plain call
    g = cr.grad(lambda x: cnp.sum(log1pexp(x) * x))(x)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(g, s * x + np.log1p(np.exp(x)), rtol=1e-12)


def test_custom_jvp_forward_mode_uses_the_rule():
    jvp = cr.jvp
    with np.errstate(over='ignore', invalid='ignore'):
        out, t = jvp(log1pexp, (800.0,), (2.0,))
    assert float(t) == 2.0        # the plain composite gives inf/inf = nan here


def test_custom_jvp_rule_is_used_not_the_function():
    # a deliberately "wrong" rule proves which derivative is taken
    @cr.custom_jvp
    def f(x, y):
        return x * y

    f.defjvp(lambda p, t: (f(*p), 10.0 * t[0] + 100.0 * t[1]))
    gx, gy = cr.grad(f, argnums=(0, 1))(2.0, 3.0)
    assert (gx, gy) == (10.0, 100.0)
    out, f_vjp = cr.vjp(lambda a: f(a, np.ones(2)), np.array([1.0, 2.0]))
    np.testing.assert_allclose(f_vjp(np.array([1.0, -1.0]))[0], [10.0, -10.0])


def test_custom_jvp_pytrees_nondiff_and_defjvps():
    @cr.custom_jvp
    def f(p):
        return {'s': cnp.sum(p['a'] * p['b'])}

    @f.defjvp
    def _(primals, tangents):
        (p,), (t,) = primals, tangents
        return f(p), {'s': cnp.sum(t['a'] * p['b'] + p['a'] * t['b'])}

    p = {'a': np.array([1.0, 2.0]), 'b': np.array([3.0, 5.0])}
    g = cr.grad(lambda p: f(p)['s'])(p)
    np.testing.assert_allclose(g['a'], p['b'])
    np.testing.assert_allclose(g['b'], p['a'])

    @functools.partial(cr.custom_jvp, nondiff_argnums=(0,))
    def apply(fn, x):
        return fn(x)

    @apply.defjvp
    def _(fn, primals, tangents):
        (x,), (t,) = primals, tangents
        return apply(fn, x), t * 7.0
    assert cr.grad(lambda x: apply(cnp.sin, x))(1.0) == 7.0

    @cr.custom_jvp
    def h(x, y):
        return x * y
    h.defjvps(lambda t, ans, x, y: t * y, lambda t, ans, x, y: t * x)
    assert cr.grad(h, argnums=(0, 1))(3.0, 4.0) == (4.0, 3.0)


def test_custom_jvp_errors():
    @cr.custom_jvp
    def f(x):
        return x
    with pytest.raises(cr.ChainruleError, match='defjvp'):
        cr.grad(f)(1.0)
    f.defjvp(lambda p, t: p[0])      # not a pair
    with pytest.raises(cr.ChainruleError, match='pair'):
        cr.grad(f)(1.0)
    f.defjvp(lambda p, t: (p[0], np.ones(3)))
    with pytest.raises(cr.ChainruleError, match='shape'):
        cr.grad(f)(1.0)


# --- custom_vjp ------------------------------------------------------------------------------

@cr.custom_vjp
def clip_gradient(x, lo, hi):
    return x


def _clip_fwd(x, lo, hi):
    return x, (lo, hi)


def _clip_bwd(res, g):
    lo, hi = res
    return cnp.clip(g, lo, hi), None, None


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def test_clip_gradient():
    assert clip_gradient(3.0, -1.0, 1.0) == 3.0
    assert cr.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 1.0))(2.0) == 1.0
    assert cr.grad(lambda x: 0.5 * clip_gradient(x, -1.0, 1.0))(2.0) == 0.5
    x = np.array([1.0, 2.0, 3.0])
    g = cr.grad(lambda x: cnp.sum(clip_gradient(x, -1.0, 1.0) * np.array([0.5, -4.0, 2.0])))(x)
    np.testing.assert_array_equal(g, [0.5, -1.0, 1.0])


@cr.custom_vjp
def my_sin(x):
    return cnp.sin(x)


my_sin.defvjp(lambda x: (cnp.sin(x), cnp.cos(x)), lambda cos_x, g: (g * cos_x,))


def test_custom_vjp_agrees_with_plain_fd_and_higher_order():
    for x in [-1.2, 0.3, 2.0]:
        assert cr.grad(my_sin)(x) == pytest.approx(np.cos(x), rel=1e-14)
        assert cr.grad(my_sin)(x) == pytest.approx(fd(np.sin, x), rel=1e-8)
        # grad(grad): differentiates bwd (g * cos x) and fwd's residual cos x -> -sin x
        assert cr.grad(cr.grad(my_sin))(x) == pytest.approx(-np.sin(x), rel=1e-12)
        assert cr.grad(cr.grad(cr.grad(my_sin)))(x) == pytest.approx(-np.cos(x), rel=1e-12)
        f = lambda x: my_sin(x) * x ** 2  # noqa: E731
        p = lambda x: np.sin(x) * x ** 2  # noqa: E731
        assert cr.grad(f)(x) == pytest.approx(fd(p, x), rel=1e-7)
        d2 = cr.grad(cr.grad(f))(x)
        assert d2 == pytest.approx(cr.grad(cr.grad(lambda x: cnp.sin(x) * x ** 2))(x), rel=1e-12)


def test_custom_vjp_residuals_saved_not_recomputed():
    calls = {'fwd': 0, 'fun': 0}

    @cr.custom_vjp
    def f(x):
        calls['fun'] += 1
        return x * 2.0

    def fwd(x):
        calls['fwd'] += 1
        return x * 2.0, None

    f.defvjp(fwd, lambda res, g: (g * 2.0,))
    f(np.ones(2))
    assert calls == {'fwd': 0, 'fun': 1}            # no trace: the function itself
    x, y = np.ones(3), np.ones(3)
    assert cr.grad(lambda x: cnp.sum(f(x)))(x).tolist() == [2.0, 2.0, 2.0]
    # under grad: fwd once; fun once on abstract values only (staged, to find values it
    # closes over), never evaluated
    assert calls == {'fwd': 1, 'fun': 2}
    _ = y


def test_custom_vjp_many_args_pytrees_and_bwd_called_once():
    n_bwd = [0]

    @cr.custom_vjp
    def f(p, x):
        return {'y': p['w'] * x + p['b'], 'z': x}

    def fwd(p, x):
        return f(p, x), (p['w'], x)

    def bwd(res, g):
        n_bwd[0] += 1
        w, x = res
        return {'w': cnp.sum(g['y'] * x), 'b': cnp.sum(g['y'])}, g['y'] * w + g['z']

    f.defvjp(fwd, bwd)
    p, x = {'w': 3.0, 'b': 1.0}, np.array([1.0, 2.0])

    def loss(p, x):
        out = f(p, x)
        return cnp.sum(out['y'] ** 2) + cnp.sum(out['z'])

    def plain(p, x):
        return cnp.sum((p['w'] * x + p['b']) ** 2) + cnp.sum(x)

    gp, gx = cr.grad(loss, argnums=(0, 1))(p, x)
    n = n_bwd[0]
    assert n == 1                                   # one bwd call for all three inputs
    ep, ex = cr.grad(plain, argnums=(0, 1))(p, x)
    assert gp['w'] == pytest.approx(ep['w']) and gp['b'] == pytest.approx(ep['b'])
    np.testing.assert_allclose(gx, ex)


def test_custom_vjp_nondiff_argnums_and_kwargs():
    @functools.partial(cr.custom_vjp, nondiff_argnums=(0,))
    def apply_scaled(fn, x, scale=1.0):
        return fn(x) * scale

    def fwd(fn, x, scale):
        return apply_scaled(fn, x, scale), (x, scale)

    def bwd(fn, res, g):
        x, scale = res
        return g * scale * 100.0, None              # a marked rule: 100x

    apply_scaled.defvjp(fwd, bwd)
    assert cr.grad(lambda x: apply_scaled(cnp.sin, x, scale=2.0))(1.0) == 200.0
    with pytest.raises(cr.ChainruleError, match='static argument'):
        cr.grad(lambda s: apply_scaled(s, 1.0))(1.0)


def test_custom_vjp_forward_mode_transposes_bwd():
    jvp = cr.jvp
    # the tangent is the transpose of bwd (linearised at g = 0, as bwd should be linear in g)
    scale_grad = cr.custom_vjp(lambda x: x)
    scale_grad.defvjp(lambda x: (x, None), lambda res, g: (g * np.array([3.0, -1.0]),))
    out, t = jvp(scale_grad, (np.array([2.0, 0.5]),), (np.array([3.0, 0.5]),))
    np.testing.assert_allclose(out, [2.0, 0.5])
    np.testing.assert_allclose(t, [9.0, -0.5])
    out, t = jvp(my_sin, (0.4,), (1.0,))
    assert float(t) == pytest.approx(np.cos(0.4))


def test_custom_vjp_with_tensor_backward():
    w = cr.tensor([2.0, -3.0], requires_grad=True)
    loss = (clip_gradient(w, -1.0, 1.0) * cr.tensor([5.0, 0.25])).sum()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 0.25])


def test_custom_vjp_errors():
    @cr.custom_vjp
    def f(x, y):
        return x * y
    with pytest.raises(cr.ChainruleError, match='defvjp'):
        cr.grad(f)(1.0, 2.0)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with pytest.raises(cr.ChainruleError, match='one cotangent per differentiable argument'):
        cr.grad(f)(1.0, 2.0)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (np.ones(3), None))
    with pytest.raises(cr.ChainruleError, match='shape'):
        cr.grad(f)(1.0, 2.0)
    f.defvjp(lambda x, y: x * y, None)
    with pytest.raises(cr.ChainruleError, match='pair'):
        cr.grad(f)(1.0, 2.0)
    # closing over a differentiated value is closure-converted: the (deliberately marked) rule
    # gives the argument's part, 1, and the closed-over w gets d(w y)/dw = y = 2
    def uses_closure(w):
        h = cr.custom_vjp(lambda y: w * y)
        h.defvjp(lambda y: (w * y, None), lambda r, g: (g,))
        return h(w)
    assert cr.grad(uses_closure)(2.0) == 3.0

    # a closure that cannot be staged (Python control flow on a value) is still refused
    def branchy(w):
        h = cr.custom_vjp(lambda y: w * y if float(cr.stop_gradient(y)) > 0 else y)
        h.defvjp(lambda y: (w * y, None), lambda r, g: (g,))
        return h(w)
    with pytest.raises(cr.ChainruleError, match='as an argument'):
        cr.grad(branchy)(2.0)


# --- primitives from user code ---------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[float])
erf = cr.custom.primitive(
    'test_erf', _erf,
    vjp=[lambda g, out, x: g * (2 / math.sqrt(math.pi)) * cnp.exp(-x * x)],
    elementwise=True)


def test_user_primitive_first_and_second_order():
    x = np.array([-1.0, 0.2, 1.5])
    np.testing.assert_allclose(erf(x), _erf(x))
    g = cr.grad(lambda x: cnp.sum(erf(x)))(x)
    np.testing.assert_allclose(g, [fd(lambda v: math.erf(v), xi) for xi in x], rtol=1e-7)
    d2 = cr.grad(cr.grad(lambda x: erf(x)))(0.7)
    assert d2 == pytest.approx(-2 * 0.7 * 2 / math.sqrt(math.pi) * math.exp(-0.49), rel=1e-12)
    assert erf.primitive.name == 'test_erf' and 'test_erf' in cr.core.registry
    with pytest.raises(cr.ChainruleError, match='already registered'):
        cr.custom.primitive('test_erf', _erf)


def test_user_primitive_matches_torch():
    torch = pytest.importorskip('torch')
    x = rng.normal(size=5)
    g = cr.grad(lambda x: cnp.sum(erf(x) ** 2))(x)
    t = torch.tensor(x, requires_grad=True)
    (torch.erf(t) ** 2).sum().backward()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


# --- composition with the other transforms ---------------------------------------------------

COMPOSED = [
    # (custom function of a vector, the same without custom rules)
    (lambda x: cnp.sum(log1pexp(x) * x), lambda x: cnp.sum(plain_log1pexp(x) * x)),
    (lambda x: cnp.sum(my_sin(x) * x ** 2), lambda x: cnp.sum(cnp.sin(x) * x ** 2)),
    (lambda x: cnp.sum(cr.checkpoint(lambda x: cnp.tanh(x) * x)(x) ** 2),
     lambda x: cnp.sum((cnp.tanh(x) * x) ** 2)),
]


@pytest.mark.parametrize('k', range(len(COMPOSED)))
def test_custom_rules_compose_with_every_transform(k):
    import warnings
    f, plain = COMPOSED[k]
    x = np.array([-1.1, 0.3, 1.7])
    g = cr.grad(plain)(x)
    H = cr.hessian(plain)(x)
    with warnings.catch_warnings():
        warnings.simplefilter('error')      # no loop-and-stack fallback for call primitives
        np.testing.assert_allclose(cr.grad(f)(x), g, rtol=1e-12)
        np.testing.assert_allclose(cr.jit(cr.grad(f))(x), g, rtol=1e-12)
        np.testing.assert_allclose(cr.grad(cr.jit(f))(x), g, rtol=1e-12)
        xs = np.stack([x, 2 * x, -x])
        np.testing.assert_allclose(cr.vmap(cr.grad(f))(xs),
                                   np.stack([cr.grad(plain)(r) for r in xs]), rtol=1e-12)
        np.testing.assert_allclose(cr.grad(lambda xs: cnp.sum(cr.vmap(f)(xs)))(xs),
                                   np.stack([cr.grad(plain)(r) for r in xs]), rtol=1e-12)
        np.testing.assert_allclose(cr.hessian(f)(x), H, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cr.jacrev(cr.jacrev(f))(x), H, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cr.jacrev(cr.jacfwd(f))(x), H, rtol=1e-10, atol=1e-12)
        _, t = cr.jvp(cr.grad(f), (x,), (np.ones(3),))
        np.testing.assert_allclose(t, H.sum(1), rtol=1e-10)


def test_vmap_of_custom_vjp_keeps_the_rule():
    x = np.array([2.0, 0.5, -3.0])
    g = cr.vmap(cr.grad(lambda x: 5.0 * clip_gradient(x, -1.0, 1.0)))(x)
    np.testing.assert_array_equal(g, [1.0, 1.0, 1.0])
    # shared (unbatched) argument: its cotangent is summed over the batch
    gw = cr.grad(lambda w: cnp.sum(cr.vmap(lambda x: clip_gradient(x * w, -1.0, 1.0))(x)))(3.0)
    assert gw == pytest.approx(x.sum())
    assert cr.jit(lambda x: clip_gradient(x, -1.0, 1.0))(x).tolist() == x.tolist()


def test_second_order_with_tensor_create_graph():
    # Tensor.backward(create_graph=True) runs the rules on Tensors: custom_vjp's residuals and
    # the custom_jvp rule's closed-over inputs must stay connected for the second derivative
    x0 = np.array([0.3, 1.2])
    s = 1 / (1 + np.exp(-x0))
    cases = [(my_sin, np.cos(x0), -np.sin(x0)),
             (log1pexp, s, s * (1 - s)),
             (cr.checkpoint(lambda x: cnp.sin(x) * x), np.cos(x0) * x0 + np.sin(x0),
              2 * np.cos(x0) - x0 * np.sin(x0))]
    for f, d1, d2 in cases:
        x = cr.tensor(x0, requires_grad=True)
        f(x).sum().backward(create_graph=True)
        g = x.grad
        np.testing.assert_allclose(g.numpy(), d1, rtol=1e-12)
        x.grad = None
        g.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), d2, rtol=1e-12)


def test_tensor_create_graph_through_multiple_result_primitive():
    # regression (chainrule/tensor.py): a multiple-result node's outputs were disconnected in
    # create_graph mode, so rules using them (eigh's eigenvectors) lost a term. Here
    # f(s) = sum_k V[0,k]^2 w_k = A[0,0] does not depend on s: every derivative is 0.
    A0, E = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])

    def f(s):
        w, v = cnp.linalg.eigh(A0 + s * E)
        return cnp.sum(v[0] ** 2 * w)
    s = cr.tensor(0.2, requires_grad=True)
    f(s).backward(create_graph=True)
    g = s.grad
    s.grad = None
    g.backward()
    assert abs(float(s.grad.numpy())) < 1e-12
    assert abs(cr.grad(cr.grad(f))(0.2)) < 1e-12


def test_closure_without_traced_argument_is_converted():
    def f(w):
        h = cr.custom_vjp(lambda y: y * w)
        h.defvjp(lambda y: (y * w, None), lambda r, g: (g * 0.0,))
        return h(3.0)           # constant argument, traced closure: d/dw (3 w) = 3
    assert cr.grad(f)(2.0) == 3.0


def test_custom_vjp_static_residuals():
    # residuals may mix arrays with static data (shapes, strings, numbers, None); only the
    # arrays are saved as results, and grad(grad) pulls back through the right ones
    f = cr.custom_vjp(lambda x: x * 2.0)

    def fwd(x):
        return x * 2.0, (x.shape, 'tag', 3, None, np.arange(3), x)

    def bwd(res, g):
        shape, tag, n, none, idx, x = res
        assert (shape, tag, n, none, idx.shape) == ((2,), 'tag', 3, None, (3,))
        return (g * 2.0 * x,)            # a marked rule: d/dx = 2x instead of 2
    f.defvjp(fwd, bwd)
    x = np.array([1.0, 3.0])
    np.testing.assert_allclose(cr.grad(lambda x: cnp.sum(f(x)))(x), [2.0, 6.0])
    np.testing.assert_allclose(cr.grad(lambda x: cnp.sum(cr.grad(lambda x: cnp.sum(f(x)))(x)))(x),
                               [2.0, 2.0])
    np.testing.assert_allclose(cr.vmap(cr.grad(lambda x: cnp.sum(f(x))))(np.stack([x, 2 * x])),
                               [[2.0, 6.0], [4.0, 12.0]])
    np.testing.assert_allclose(cr.jit(cr.grad(lambda x: cnp.sum(f(x))))(x), [2.0, 6.0])
