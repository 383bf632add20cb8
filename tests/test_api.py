"""Tests of the functional API: grad / value_and_grad / vjp with pytrees, argnums, has_aux,
dtypes, complex numbers, and stop_gradient."""

import collections

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import tree as T

rng = np.random.default_rng(0)
Params = collections.namedtuple('Params', ['w', 'b'])


def _fd_grad(f, x, eps=1e-6):
    """Central finite differences of scalar f at array x."""
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


def mlp_loss(params, x, y):
    h = cnp.tanh(x @ params['layers'][0]['w'] + params['layers'][0]['b'])
    out = h @ params['layers'][1]['w'] + params['layers'][1]['b']
    return cnp.mean((out - y) ** 2) + params['scale'] * cnp.sum(params['layers'][0]['w'] ** 2)


def _mlp_params():
    return {'layers': [{'w': rng.normal(size=(3, 4)), 'b': rng.normal(size=4)},
                       {'w': rng.normal(size=(4, 2)), 'b': rng.normal(size=2)}],
            'scale': 0.1}


def test_grad_of_nested_dict_matches_finite_differences():
    params = _mlp_params()
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    g = cr.grad(mlp_loss)(params, x, y)
    assert T.tree_structure(g) == T.tree_structure(params)
    assert isinstance(g['scale'], float)
    flat, unravel = T.ravel_pytree(params)
    g_fd = _fd_grad(lambda v: float(mlp_loss(unravel(v), x, y)), flat)
    np.testing.assert_allclose(T.ravel_pytree(g)[0], g_fd, rtol=1e-6, atol=1e-8)


def test_grad_matches_torch_on_same_inputs():
    torch = pytest.importorskip('torch')
    params = _mlp_params()
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    g = cr.grad(mlp_loss)(params, x, y)
    tp = T.tree_map(lambda a: torch.tensor(a, dtype=torch.float64, requires_grad=True), params)
    L0, L1 = tp['layers']
    h = torch.tanh(torch.tensor(x) @ L0['w'] + L0['b'])
    out = h @ L1['w'] + L1['b']
    loss = ((out - torch.tensor(y)) ** 2).mean() + tp['scale'] * (L0['w'] ** 2).sum()
    loss.backward()
    T.tree_map(lambda a, t: np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10), g, tp)


def test_argnums_int_tuple_negative():
    f = lambda a, b, c: a * b ** 2 + c  # noqa: E731
    assert cr.grad(f)(2.0, 3.0, 1.0) == 9.0
    assert cr.grad(f, argnums=1)(2.0, 3.0, 1.0) == 12.0
    assert cr.grad(f, argnums=(0, 1))(2.0, 3.0, 1.0) == (9.0, 12.0)
    assert cr.grad(f, argnums=(-1,))(2.0, 3.0, 1.0) == (1.0,)
    with pytest.raises(cr.ChainruleError, match='argnums'):
        cr.grad(f, argnums=3)(2.0, 3.0, 1.0)


def test_list_tuple_namedtuple_and_none_inputs():
    def f(xs, p, nothing):
        assert nothing is None
        return xs[0] * xs[1][0] + cnp.sum(p.w * p.b)
    xs = [2.0, (np.array(3.0),)]
    p = Params(w=np.array([1.0, 2.0]), b=np.array([3.0, 4.0]))
    gxs, gp, gn = cr.grad(f, argnums=(0, 1, 2))(xs, p, None)
    assert isinstance(gxs, list) and isinstance(gxs[1], tuple)
    assert gxs[0] == 3.0 and isinstance(gxs[0], float)
    assert gxs[1][0] == 2.0 and isinstance(gxs[1][0], np.ndarray)
    assert isinstance(gp, Params)
    np.testing.assert_array_equal(gp.w, [3.0, 4.0])
    np.testing.assert_array_equal(gp.b, [1.0, 2.0])
    assert gn is None


def test_float_in_float_out_and_dtypes_kept():
    g = cr.grad(lambda x: x ** 3)(2.0)
    assert type(g) is float and g == 12.0
    g32 = cr.grad(lambda x: cnp.sum(x ** 2))(np.ones(3, np.float32))
    assert g32.dtype == np.float32
    v, g = cr.value_and_grad(lambda x: x ** 2)(3.0)
    assert v == 9.0 and g == 6.0


def test_integer_inputs_raise_dtype_error():
    with pytest.raises(cr.DTypeError, match='argument 0.*int'):
        cr.grad(lambda x: x * 2.0)(2)
    with pytest.raises(cr.DTypeError, match=r"argument 0 of <lambda>, at \['b'\], has dtype int"):
        cr.grad(lambda d: d['a'] * d['b'])({'a': 1.0, 'b': np.array(2)})
    # an integer argument that is not differentiated is fine
    assert cr.grad(lambda x, n: x ** n)(2.0, 3) == 12.0


def test_non_scalar_output_error_names_jacrev_and_vjp():
    with pytest.raises(cr.GradientError, match=r'shape \(3,\).*jacrev.*vjp'):
        cr.grad(lambda x: x * 2.0)(np.ones(3))


def test_independent_inputs_give_zeros():
    ga, gb = cr.grad(lambda a, b: cnp.sum(a ** 2), argnums=(0, 1))(
        np.ones(2), {'u': np.ones((2, 2), np.float32), 'v': 1.0})
    np.testing.assert_array_equal(ga, [2.0, 2.0])
    np.testing.assert_array_equal(gb['u'], np.zeros((2, 2)))
    assert gb['u'].dtype == np.float32 and gb['v'] == 0.0 and isinstance(gb['v'], float)
    assert cr.grad(lambda x: 3.0)(np.ones(2)).tolist() == [0.0, 0.0]


def test_has_aux_with_pytree_aux():
    def f(p):
        y = p['a'] * 3.0
        return y ** 2, {'y': y, 'label': 'run1', 'n': [1, 2]}
    (v, aux), g = cr.value_and_grad(f, has_aux=True)({'a': 2.0})
    assert v == 36.0 and g == {'a': 36.0}
    assert aux['label'] == 'run1' and aux['n'] == [1, 2]
    assert not isinstance(aux['y'], cr.core.Tracer) and float(aux['y']) == 6.0
    g, aux = cr.grad(f, has_aux=True)({'a': 2.0})
    assert g == {'a': 36.0} and float(aux['y']) == 6.0
    with pytest.raises(cr.ChainruleError, match='pair'):
        cr.grad(lambda x: x, has_aux=True)(1.0)


def test_complex_convention_and_holomorphic():
    # JAX's convention: grad of a real function of z is the conjugate of dL/dz-bar... 2*conj(z)
    assert cr.grad(lambda z: cnp.abs(z) ** 2)(1 + 2j) == pytest.approx(2 - 4j)
    assert cr.grad(lambda z: (z * cnp.conj(z)).real)(1 + 2j) == pytest.approx(2 - 4j)
    # holomorphic: the complex derivative
    z = 0.3 - 1.1j
    assert cr.grad(lambda z: z ** 2, holomorphic=True)(z) == pytest.approx(2 * z)
    assert cr.grad(lambda z: cnp.exp(z), holomorphic=True)(z) == pytest.approx(np.exp(z))
    gd = cr.grad(lambda p: cnp.sum(p['z'] ** 3), holomorphic=True)(
        {'z': np.array([1 + 1j, 2 - 1j])})
    np.testing.assert_allclose(gd['z'], 3 * np.array([1 + 1j, 2 - 1j]) ** 2)
    with pytest.raises(cr.GradientError, match='holomorphic=True'):
        cr.grad(lambda z: z ** 2)(1 + 1j)
    with pytest.raises(cr.DTypeError, match='complex'):
        cr.grad(lambda z: z ** 2, holomorphic=True)(1.0)


def test_stop_gradient():
    f = lambda x: x * cr.stop_gradient(x) ** 2  # noqa: E731   d/dx = x**2 with x held
    assert cr.grad(f)(3.0) == 9.0
    g = cr.grad(lambda p: cnp.sum(cr.stop_gradient(p)['a'] * p['b']))(
        {'a': np.array([1.0, 2.0]), 'b': np.array([3.0, 4.0])})
    np.testing.assert_array_equal(g['a'], [0.0, 0.0])
    np.testing.assert_array_equal(g['b'], [1.0, 2.0])
    assert cr.grad(cr.grad(lambda x: cr.stop_gradient(x) * x ** 2))(2.0) == 4.0


def test_grad_of_grad_with_pytrees():
    def f(p):
        return p['x'] ** 3 * p['y']
    dfdx = lambda p: cr.grad(f)(p)['x']  # noqa: E731   3 x^2 y
    g2 = cr.grad(dfdx)({'x': 2.0, 'y': 5.0})
    assert g2 == {'x': pytest.approx(60.0), 'y': pytest.approx(12.0)}


def test_vjp_pytree_in_and_out():
    def f(p, x):
        return {'s': cnp.sum(p['w'] * x), 'v': [p['w'] * 2.0, x ** 2]}
    p, x = {'w': np.array([1.0, 2.0])}, np.array([3.0, 4.0])
    out, f_vjp = cr.vjp(f, p, x)
    assert T.tree_structure(out) == T.tree_structure({'s': 0, 'v': [0, 0]})
    np.testing.assert_allclose(out['s'], 11.0)
    ct = {'s': 1.0, 'v': [np.array([1.0, 0.0]), np.array([0.0, 1.0])]}
    gp, gx = f_vjp(ct)
    np.testing.assert_allclose(gp['w'], x + np.array([2.0, 0.0]))
    np.testing.assert_allclose(gx, p['w'] + np.array([0.0, 8.0]))
    gp2, _ = f_vjp(ct)                      # callable again
    np.testing.assert_allclose(gp2['w'], gp['w'])
    with pytest.raises(cr.ChainruleError, match='structure'):
        f_vjp({'s': 1.0})
    with pytest.raises(cr.ChainruleError, match='shape'):
        f_vjp({'s': 1.0, 'v': [np.ones(3), np.ones(2)]})


def test_vjp_matches_torch():
    torch = pytest.importorskip('torch')
    A = rng.normal(size=(3, 3))
    x = rng.normal(size=3)
    ct = rng.normal(size=3)
    out, f_vjp = cr.vjp(lambda x: cnp.sin(A @ x) * x, x)
    (gx,) = f_vjp(ct)
    _, t_vjp = torch.func.vjp(lambda x: torch.sin(torch.tensor(A) @ x) * x, torch.tensor(x))
    np.testing.assert_allclose(gx, t_vjp(torch.tensor(ct))[0].numpy(), rtol=1e-12)


def test_vjp_has_aux_and_constant_outputs():
    out, f_vjp, aux = cr.vjp(lambda x: ((x * 2.0, np.ones(2)), {'x2': x ** 2}),
                             np.array([1.0, 3.0]), has_aux=True)
    np.testing.assert_allclose(aux['x2'], [1.0, 9.0])
    (g,) = f_vjp((np.ones(2), np.ones(2)))
    np.testing.assert_allclose(g, [2.0, 2.0])
    out, f_vjp = cr.vjp(lambda a, b: a * 1.0, 2.0, 5.0)
    assert f_vjp(1.0) == (1.0, 0.0)


def test_registered_class_input():
    class Linear:
        def __init__(self, w, b):
            self.w, self.b = w, b
    try:
        T.register_pytree_node(Linear, lambda m: ((m.w, m.b), None),
                               lambda _, ch: Linear(*ch))
    except ValueError:   # pragma: no cover - already registered in this process
        pass
    m = Linear(np.array([1.0, -2.0]), 0.5)
    g = cr.grad(lambda m, x: cnp.sum((m.w * x + m.b) ** 2))(m, np.array([2.0, 1.0]))
    assert isinstance(g, Linear)
    r = np.array([1.0 * 2 + 0.5, -2.0 + 0.5])
    np.testing.assert_allclose(g.w, 2 * r * np.array([2.0, 1.0]))
    assert g.b == pytest.approx(2 * r.sum())
