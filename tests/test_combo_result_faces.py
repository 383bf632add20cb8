"""What torch.func-spelled transforms and `jit` hand back to a caller who gave them Tensors.

The caller writes PyTorch code, so the results must be Tensors: a NumPy array in their place
answers the caller's next `g.std()` or `g.transpose(0, 1)` with NumPy's meaning (divide by n;
the identity permutation), silently. Results that no Tensor operation made -- a custom rule's
cotangent, a gradient that is zero, a Hessian, a jitted program's output for a Tensor that does
not require grad -- used to come back as NumPy arrays. Each case checks the type and a
PyTorch-only meaning on the result against torch on the same values.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for the meanings')

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.3, 0.1, -0.2]])


def _custom():
    @cr.custom_vjp
    def f(x):
        return x * 2.0
    f.defvjp(lambda x: (x * 2.0, None), lambda _, g: (g * 2.0 + 1.0,))
    return f


def _cases():
    f = _custom()
    x = cr.tensor(X)
    return {
        'grad of a custom_vjp': lambda: cr.func.grad(lambda x: (f(x) * x.detach()).sum())(x),
        'zero grad': lambda: cr.func.grad(lambda x: (x * 0.0).sum() * 0.0)(x),
        'grad_and_value': lambda: cr.func.grad_and_value(lambda x: (f(x) * x.detach()).sum())(
            x)[0],
        'vjp': lambda: cr.func.vjp(f, x)[1](cr.tensor(X))[0],
        'jacrev': lambda: cr.func.jacrev(lambda x: f(x).sum(dim=0))(x)[0],
        'jacfwd': lambda: cr.func.jacfwd(lambda x: f(x).sum(dim=0))(x)[0],
        'hessian': lambda: cr.func.hessian(lambda x: (x * x * x[0, 0]).sum())(x)[0, 0],
        'vmap': lambda: cr.func.vmap(f)(x),
        'jvp': lambda: cr.func.jvp(f, (x,), (x,))[1],
        'jit': lambda: cr.jit(lambda x: x * 2.0)(x),
        'jit of grad': lambda: cr.jit(cr.func.grad(lambda x: (f(x) * x.detach()).sum()))(x),
    }


@pytest.mark.parametrize('case', sorted(_cases()))
def test_results_given_tensors_are_tensors_with_pytorchs_meanings(case):
    got = _cases()[case]()
    assert isinstance(got, cr.Tensor), type(got)
    want = torch.tensor(got.numpy())
    np.testing.assert_allclose(got.std().item(), want.std().item(), rtol=1e-13)
    np.testing.assert_allclose(got.transpose(0, 1).numpy(), want.transpose(0, 1).numpy())


def test_jit_results_given_arrays_stay_arrays_and_are_fresh():
    j = cr.jit(lambda x: x * 2.0)
    a = j(X)
    assert type(a) is np.ndarray
    t = j(cr.tensor(X))
    t.numpy()[...] = 0.0           # the caller's: writing into it changes no later call
    np.testing.assert_allclose(j(cr.tensor(X)).numpy(), X * 2.0)
