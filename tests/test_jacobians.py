"""Jacobians and Hessians (`jacfwd`, `jacrev`, `jacobian`, `hessian`, `hvp`,
`elementwise_grad`) against closed forms and `torch.func`, and the composition test: for
functions with elementwise ops, reductions, matmul, indexing and Python control flow,
`grad(grad f)`, `jacfwd(jacrev f)`, `jacrev(jacfwd f)`, `vmap(grad f)`, `grad(sum vmap f)`,
`jvp(grad f)` and `grad` of `jvp` all agree with each other, with finite differences and with
`torch.func`."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

RNG = np.random.default_rng(0)
W = RNG.normal(size=(5, 5)) / 2


def bench_fn(x):
    return cnp.sum(cnp.tanh(W @ x) ** 2) + cnp.sum(x ** 4)


def bench_hessian(x):
    # f = sum(tanh(Wx)^2) + sum(x^4); with u = Wx, s = tanh(u):
    # d/du tanh(u)^2 = 2 s (1 - s^2);  d2/du2 = 2 (1 - s^2)(1 - 3 s^2)
    s = np.tanh(W @ x)
    return W.T @ np.diag(2 * (1 - s ** 2) * (1 - 3 * s ** 2)) @ W + np.diag(12 * x ** 2)


def test_jacfwd_and_jacrev_equal_closed_form():
    x = RNG.normal(size=5)
    J = (1 - np.tanh(W @ x) ** 2)[:, None] * W
    for jac in (cr.jacfwd, cr.jacrev, cr.jacobian):
        np.testing.assert_allclose(jac(lambda x: cnp.tanh(W @ x))(x), J, rtol=1e-12)


def test_jacobian_shapes_are_output_shape_then_input_shape():
    A = RNG.normal(size=(2, 3))

    def f(X):                        # (3, 4) -> (2, 4)
        return cnp.sin(A @ X)
    X = RNG.normal(size=(3, 4))
    Jf, Jr = cr.jacfwd(f)(X), cr.jacrev(f)(X)
    assert Jf.shape == Jr.shape == (2, 4, 3, 4)
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-15)
    # J[i, j, k, l] = cos((AX)_ij) A_ik [j == l]
    want = np.einsum('ij,ik,jl->ijkl', np.cos(A @ X), A, np.eye(4))
    np.testing.assert_allclose(Jr, want, rtol=1e-12, atol=1e-15)
    # scalar in, scalar out
    assert cr.jacfwd(cnp.sin)(0.3) == pytest.approx(np.cos(0.3))
    assert cr.jacrev(cnp.sin)(0.3) == pytest.approx(np.cos(0.3))


def test_jacobians_with_argnums_pytrees_and_aux():
    def f(p, x):
        return {'y': cnp.tanh(p['w'] * x + p['b']), 'n': cnp.sum(x * x)}, 'aux'
    p = {'w': np.array([1.0, 2.0]), 'b': 0.5}
    x = np.array([0.3, -0.2])
    for jac in (cr.jacfwd, cr.jacrev):
        J, aux = jac(f, argnums=(0, 1), has_aux=True)(p, x)
        assert aux == 'aux'
        s = 1 - np.tanh(p['w'] * x + 0.5) ** 2
        np.testing.assert_allclose(J['y'][0]['w'], np.diag(s * x), rtol=1e-12)
        np.testing.assert_allclose(J['y'][0]['b'], s, rtol=1e-12)
        np.testing.assert_allclose(J['y'][1], np.diag(s * p['w']), rtol=1e-12)
        np.testing.assert_allclose(J['n'][1], 2 * x, rtol=1e-12)
        np.testing.assert_allclose(J['n'][0]['w'], np.zeros(2))


def test_hessian_equals_closed_form_and_every_other_order():
    x = RNG.normal(size=5)
    H = bench_hessian(x)
    np.testing.assert_allclose(cr.hessian(bench_fn)(x), H, rtol=1e-11, atol=1e-12)
    for outer in (cr.jacfwd, cr.jacrev):
        for inner in (cr.jacfwd, cr.jacrev):
            np.testing.assert_allclose(outer(inner(bench_fn))(x), H, rtol=1e-11, atol=1e-12)


def test_hessian_matches_torch_func():
    torch = pytest.importorskip('torch')
    from torch.func import hessian, jacrev
    x = RNG.normal(size=5)
    Wt = torch.tensor(W)

    def tf(x):
        return (torch.tanh(Wt @ x) ** 2).sum() + (x ** 4).sum()
    np.testing.assert_allclose(cr.hessian(bench_fn)(x), hessian(tf)(torch.tensor(x)).numpy(),
                               rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(cr.jacrev(lambda x: cnp.tanh(W @ x) * x)(x),
                               jacrev(lambda x: torch.tanh(Wt @ x) * x)(torch.tensor(x)).numpy(),
                               rtol=1e-12)


def test_hvp_and_elementwise_grad():
    x, v = RNG.normal(size=5), RNG.normal(size=5)
    np.testing.assert_allclose(cr.hvp(bench_fn, (x,), (v,)), bench_hessian(x) @ v, rtol=1e-11)
    a, b = cr.hvp(lambda x, y: cnp.sum(x * x * y), (x, x), (v, v))
    # f = sum(x^2 y): H = [[2 diag(y), 2 diag(x)], [2 diag(x), 0]]
    np.testing.assert_allclose(a, 2 * x * v + 2 * x * v, rtol=1e-12)
    np.testing.assert_allclose(b, 2 * x * v, rtol=1e-12)
    np.testing.assert_allclose(cr.elementwise_grad(cnp.tanh)(x), 1 - np.tanh(x) ** 2, rtol=1e-12)


def test_jacrev_of_integer_input_and_integer_output_errors():
    with pytest.raises(cr.DTypeError):
        cr.jacrev(lambda x: x * 1.0)(np.arange(3))
    with pytest.raises(cr.ChainruleError, match='dtype'):
        cr.jacrev(lambda x: cnp.argmax(x))(np.arange(3.0))


# --- the composition test -----------------------------------------------------------------------

IDX = np.array([3, 0, 3, 1])


def f_elementwise(x):
    return cnp.sum(cnp.sin(x) * cnp.exp(x / 3) + cnp.sqrt(x * x + 1))


def f_reductions(x):
    return cnp.logsumexp(x) + cnp.max(x * x) * 0.5 + cnp.prod(x[:3]) + cnp.var(x)


def f_matmul(x):
    return cnp.sum(cnp.tanh(W @ x) ** 2) + x @ W @ x * 0.1


def f_indexing(x):
    y = cnp.at(x)[1:3].set(x[IDX[:2]] * x[4])
    return cnp.sum(y[IDX] ** 3) + cnp.sum(cnp.cumsum(x)[::2] ** 2)


def f_control(x, n=3):
    # Python control flow: a loop, and a branch on a Python value
    for i in range(n):
        x = cnp.sin(x) * x if i % 2 == 0 else x + cnp.cos(x)
    return cnp.sum(x ** 2)


def f_branch_on_value(x):
    # a branch on a (concrete) value: fine for grad/jacobians, not for vmap over x
    if cnp.sum(x) > 0:
        return cnp.sum(x ** 3)
    return cnp.sum(cnp.exp(x))


FUNCS = [f_elementwise, f_reductions, f_matmul, f_indexing, f_control, f_branch_on_value]


def _fd_gradient(f, x, h=1e-5):
    e = np.eye(len(x))
    return np.array([(f(x + h * e[i]) - f(x - h * e[i])) / (2 * h) for i in range(len(x))])


def _fd_hessian(g, x, h=1e-5):
    e = np.eye(len(x))
    return np.array([(g(x + h * e[i]) - g(x - h * e[i])) / (2 * h) for i in range(len(x))])


@pytest.mark.parametrize('f', FUNCS, ids=[f.__name__ for f in FUNCS])
def test_composition_all_ways_agree(f):
    rng = np.random.default_rng(7)
    x = rng.uniform(0.2, 1.0, size=5)
    n = len(x)
    g = cr.grad(f)
    G = g(x)
    np.testing.assert_allclose(G, _fd_gradient(lambda z: float(f(z)), x), rtol=1e-6, atol=1e-8)
    H = cr.jacfwd(cr.jacrev(f))(x)
    np.testing.assert_allclose(H, _fd_hessian(g, x), rtol=1e-5, atol=1e-7)
    eye = np.eye(n)
    ways = {
        'jacrev(jacfwd)': cr.jacrev(cr.jacfwd(f))(x),
        'hessian': cr.hessian(f)(x),
        'grad(grad) rows': np.array([cr.grad(lambda z: g(z)[i])(x) for i in range(n)]),
        'jvp(grad)': np.array([cr.jvp(g, (x,), (eye[i],))[1] for i in range(n)]),
        'vmap(jvp(grad))': cr.vmap(lambda v: cr.jvp(g, (x,), (v,))[1])(eye),
        'grad of jvp': np.array([cr.grad(lambda z: cr.jvp(f, (z,), (eye[i],))[1])(x)
                                 for i in range(n)]),
        'jacrev(grad)': cr.jacrev(g)(x),
    }
    for name, h in ways.items():
        np.testing.assert_allclose(h, H, rtol=1e-10, atol=1e-12, err_msg=name)
    # gradients of a batch of inputs, each way
    xs = rng.uniform(0.2, 1.0, size=(4, n))
    per = np.array([g(z) for z in xs])
    if f is not f_branch_on_value:
        np.testing.assert_allclose(cr.vmap(g)(xs), per, rtol=1e-12, atol=1e-14)
        summed = cr.grad(lambda zs: cnp.sum(cr.vmap(f)(zs)))(xs)
        np.testing.assert_allclose(summed, per, rtol=1e-12, atol=1e-14)
    # scalar second derivative, grad(grad), on a one-variable slice of f
    line = lambda t: f(x + t * eye[0])                        # noqa: E731
    assert cr.grad(cr.grad(line))(0.0) == pytest.approx(H[0, 0], rel=1e-10, abs=1e-12)


TORCH_FUNCS = {
    'f_elementwise': lambda t, x: (t.sin(x) * t.exp(x / 3) + t.sqrt(x * x + 1)).sum(),
    'f_matmul': lambda t, x: (t.tanh(t.tensor(W) @ x) ** 2).sum() + x @ t.tensor(W) @ x * 0.1,
    'f_control': lambda t, x: _torch_control(t, x),
}


def _torch_control(t, x):
    for i in range(3):
        x = t.sin(x) * x if i % 2 == 0 else x + t.cos(x)
    return (x ** 2).sum()


@pytest.mark.parametrize('name', sorted(TORCH_FUNCS))
def test_composition_matches_torch_func(name):
    torch = pytest.importorskip('torch')
    from torch.func import grad, hessian, jacfwd, jacrev, vmap
    f = globals()[name]
    tf = lambda x: TORCH_FUNCS[name](torch, x)               # noqa: E731
    x = np.random.default_rng(8).uniform(0.2, 1.0, size=5)
    xs = np.random.default_rng(9).uniform(0.2, 1.0, size=(4, 5))
    tx, txs = torch.tensor(x), torch.tensor(xs)
    np.testing.assert_allclose(cr.hessian(f)(x), hessian(tf)(tx).numpy(), rtol=1e-10)
    np.testing.assert_allclose(cr.jacrev(cr.jacfwd(f))(x), jacrev(jacfwd(tf))(tx).numpy(),
                               rtol=1e-10)
    np.testing.assert_allclose(cr.vmap(cr.grad(f))(xs), vmap(grad(tf))(txs).numpy(), rtol=1e-10)


def test_hessian_with_aux_and_of_a_vector_function():
    H, aux = cr.hessian(lambda x: (cnp.sum(x ** 3), 'aux'), has_aux=True)(np.array([1.0, 2.0]))
    assert aux == 'aux'
    np.testing.assert_allclose(H, np.diag([6.0, 12.0]))
    # for f: R^2 -> R^2, the Hessian has shape (2, 2, 2): H[i] is the Hessian of f_i
    H = cr.hessian(lambda x: cnp.stack([x[0] * x[1] ** 2, cnp.sin(x[0])]))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(H[0], [[0.0, 4.0], [4.0, 2.0]])
    np.testing.assert_allclose(H[1], [[-np.sin(1.0), 0.0], [0.0, 0.0]], atol=1e-15)


def test_jacobians_compose_with_vmap_both_ways():
    A = RNG.normal(size=(3, 3))
    f = lambda x: cnp.tanh(A @ x) * x                      # noqa: E731
    g = lambda x: cnp.sum(f(x) ** 2)                       # noqa: E731
    xs = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(cr.vmap(cr.jacrev(f))(xs), [cr.jacrev(f)(x) for x in xs],
                               rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(cr.jacfwd(f))(xs), [cr.jacrev(f)(x) for x in xs],
                               rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(cr.hessian(g))(xs), [cr.hessian(g)(x) for x in xs],
                               rtol=1e-12)
    # the Jacobian of the batched map is block diagonal: J[i, :, j, :] = [i == j] J_f(x_i)
    want = np.zeros((4, 3, 4, 3))
    for i, x in enumerate(xs):
        want[i, :, i, :] = cr.jacrev(f)(x)
    np.testing.assert_allclose(cr.jacfwd(cr.vmap(f))(xs), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cr.jacrev(cr.vmap(f))(xs), want, rtol=1e-12, atol=1e-15)


def test_holomorphic_jacobians_and_hessian():
    z = np.array([1 + 2j, 0.5 - 1j])
    f = lambda z: cnp.sin(z) * z                       # noqa: E731  (holomorphic)
    want = np.diag(np.cos(z) * z + np.sin(z))
    for jac in (cr.jacfwd, cr.jacrev):
        np.testing.assert_allclose(jac(f, holomorphic=True)(z), want, rtol=1e-12)
    # d2/dz2 of sum(z**3) is diag(6 z)
    np.testing.assert_allclose(cr.hessian(lambda z: cnp.sum(z ** 3), holomorphic=True)(z),
                               np.diag(6 * z), rtol=1e-12)
    with pytest.raises(cr.DTypeError, match=r'holomorphic=True\) needs complex inputs'):
        cr.jacfwd(f, holomorphic=True)(np.array([1.0, 2.0]))
    with pytest.raises(cr.DTypeError, match='complex outputs'):
        cr.jacrev(lambda z: cnp.abs(z), holomorphic=True)(z)
