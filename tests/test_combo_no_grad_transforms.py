"""`no_grad()` × the functional transforms, against torch.func.

torch.func's rules: a reverse-mode transform (`grad`, `vjp`, `jacrev`) respects a `no_grad()`
block inside the function it differentiates (what the block computes is a constant for it); a
transform begun inside a `no_grad()` block differentiates as usual (the block outside it does
not matter); forward mode (`jvp`, `jacfwd`) ignores grad mode; `enable_grad()` inside the block
turns it back on. chainrule ignored the inner block, so `y` computed under `no_grad()` was
differentiated: a silently different gradient. Each program runs on torch and chainrule.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='torch.func is the reference for grad mode')

X = np.array([0.5, -1.0, 2.0])
XB = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def inner(M):
    def f(x):
        with M.no_grad():
            y = M.sin(x) * x
        return (y * x + x * x).sum()
    return f


def reenabled(M):
    def f(x):
        with M.no_grad():
            with M.enable_grad():
                y = M.sin(x) * x
            z = x * 3.0
        return (y * x + z * x).sum()
    return f


def vector(M):
    def f(x):
        with M.no_grad():
            y = M.exp(x)
        return y * x
    return f


def _np(v):
    return v.detach().numpy() if isinstance(v, (cr.Tensor, torch.Tensor)) else np.asarray(v)


def _outer_no_grad(M):
    with M.no_grad():
        return M.func.grad(inner(M))(M.tensor(X))


def _vjp(M):
    out, fn = M.func.vjp(vector(M), M.tensor(X))
    return fn(M.tensor(XB[0]))[0]


CASES = {
    'grad': lambda M: M.func.grad(inner(M))(M.tensor(X)),
    'grad, enable_grad inside': lambda M: M.func.grad(reenabled(M))(M.tensor(X)),
    'grad inside an outer no_grad': _outer_no_grad,
    'vjp': _vjp,
    'jacrev': lambda M: M.func.jacrev(vector(M))(M.tensor(X)),
    'jacfwd (forward mode ignores it)': lambda M: M.func.jacfwd(vector(M))(M.tensor(X)),
    'hessian': lambda M: M.func.hessian(inner(M))(M.tensor(X)),
    'vmap(grad)': lambda M: M.func.vmap(M.func.grad(inner(M)))(M.tensor(XB)),
    'grad(grad)': lambda M: M.func.grad(lambda x: M.func.grad(inner(M))(x).sum())(
        M.tensor(X)),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_no_grad_inside_a_transformed_function(case):
    want = _np(CASES[case](torch))
    np.testing.assert_allclose(_np(CASES[case](cr)), want, rtol=1e-13, atol=1e-15)


def test_the_jax_spelling_given_tensors_respects_it_too():
    want = _np(torch.func.grad(inner(torch))(torch.tensor(X)))
    np.testing.assert_allclose(_np(cr.grad(inner(cr))(cr.tensor(X))), want, rtol=1e-13)
    np.testing.assert_allclose(_np(cr.jit(cr.func.grad(inner(cr)))(cr.tensor(X))), want,
                               rtol=1e-13)


@pytest.mark.parametrize('form', ['backward through jit', 'grad of jit', 'jit of grad'])
def test_no_grad_inside_a_jitted_function(form):
    # staged inside the block: a constant for any derivative of the program
    xt = torch.tensor(X, requires_grad=True)
    inner(torch)(xt).backward()
    want = xt.grad.numpy()
    if form == 'backward through jit':
        x = cr.tensor(X, requires_grad=True)
        cr.jit(inner(cr))(x).backward()
        got = x.grad
    elif form == 'grad of jit':
        got = cr.func.grad(cr.jit(inner(cr)))(cr.tensor(X))
    else:
        got = cr.jit(cr.func.grad(inner(cr)))(cr.tensor(X))
    np.testing.assert_allclose(_np(got), want, rtol=1e-13)


def test_a_jitted_function_called_under_no_grad_is_still_differentiable_later():
    f = cr.jit(lambda x: (cr.sin(x) * x).sum())
    with cr.no_grad():
        value = f(cr.tensor(X, requires_grad=True))
    assert not value.requires_grad
    x = cr.tensor(X, requires_grad=True)
    f(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(X) * X + np.sin(X), rtol=1e-13)
