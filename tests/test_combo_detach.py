"""`Tensor.detach()` inside the transforms, against torch.func.

Inside `grad`, `vmap`, `jacrev`, `jacfwd`, `hessian` and `jit`, a Tensor's data is a traced
value. `detach()` must cut the transform's derivative as well as the tape's (torch.func's
`detach` does): it used to rewrap the traced value unchanged, so `x * x.detach()` was
differentiated as `x * x` -- a silently doubled gradient. Each case runs the same program on
torch.func and on chainrule's torch-spelled and JAX-spelled transforms.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='torch.func is the reference for detach')

X = np.array([0.5, -1.0, 2.0])
XB = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def scalar(M):
    return lambda x: (x * M.sin(x.detach()) + x.detach() * x * x).sum()


def vector(M):
    return lambda x: x * x.detach() + M.exp(x.detach()) * x


def _np(v):
    return v.detach().numpy() if isinstance(v, (cr.Tensor, torch.Tensor)) else np.asarray(v)


CASES = {
    'grad': lambda M, F: F.grad(scalar(M))(M.tensor(X)),
    'jacrev': lambda M, F: F.jacrev(vector(M))(M.tensor(X)),
    'jacfwd': lambda M, F: F.jacfwd(vector(M))(M.tensor(X)),
    'hessian': lambda M, F: F.hessian(scalar(M))(M.tensor(X)),
    'vmap(grad)': lambda M, F: F.vmap(F.grad(scalar(M)))(M.tensor(XB)),
    'grad(grad)': lambda M, F: F.grad(lambda x: F.grad(scalar(M))(x).sum())(M.tensor(X)),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_detach_cuts_the_transforms_derivative(case):
    want = _np(CASES[case](torch, torch.func))
    np.testing.assert_allclose(_np(CASES[case](cr, cr.func)), want, rtol=1e-13, atol=1e-15)


def test_detach_under_the_jax_spelling_and_jit():
    want = _np(torch.func.grad(scalar(torch))(torch.tensor(X)))
    np.testing.assert_allclose(_np(cr.grad(scalar(cr))(cr.tensor(X))), want, rtol=1e-13)
    np.testing.assert_allclose(_np(cr.jit(cr.func.grad(scalar(cr)))(cr.tensor(X))), want,
                               rtol=1e-13)


def test_a_transformed_function_detaching_its_argument_under_backward():
    # the transform's result is recorded on the tape: the detached factor is a constant there
    xt = torch.tensor(X, requires_grad=True)
    torch.func.vmap(vector(torch))(xt.unsqueeze(0)).sum().backward()
    x = cr.tensor(X, requires_grad=True)
    cr.func.vmap(vector(cr))(x.unsqueeze(0)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-13)
