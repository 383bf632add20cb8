"""Custom derivative rules written as PyTorch code, called with Tensors.

A `custom_vjp` or `custom_jvp` function called with `Tensor`s is PyTorch code, and so are its
rules: `fwd`, `bwd(residuals, g)` and `jvp(primals, tangents)` must see Tensors (PyTorch's
`x.std()` divides by n - 1, `x.transpose(0, 1)` swaps, `g.repeat(3, 1)` tiles), whatever
values the machinery runs them on -- concrete arrays in the primitive's impl and in the eager
backward pass, tracers under the transforms. They used to receive NumPy arrays there, and a
rule written with PyTorch's method meanings silently computed NumPy's. Each case is checked
against `torch.autograd.Function` running the same rule code, or against the rule's analytic
value with PyTorch's meanings.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for these rules')

RNG = np.random.default_rng(11)
X = RNG.standard_normal((3, 3))
W = RNG.standard_normal((3, 3))
XS = RNG.standard_normal((4, 3, 3))
C = RNG.standard_normal(3)         # weights of the outputs in the loss


# the function and its rules, written once against a torch-like Tensor
def fun(x, w):
    return (x.transpose(0, 1) * w).sum(dim=0) * x.std()


def bwd_rule(res, g):
    x, w = res
    gx = (g.unsqueeze(0) * w).transpose(0, 1) * x.std()
    gw = x.transpose(0, 1) * g.unsqueeze(0) + g.repeat(3, 1).var()
    return gx, gw


class TorchF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return fun(x, w)

    @staticmethod
    def backward(ctx, g):
        return bwd_rule(ctx.saved_tensors, g)


def _cr_f():
    @cr.custom_vjp
    def f(x, w):
        return fun(x, w)
    f.defvjp(lambda x, w: (fun(x, w), (x, w)), bwd_rule)
    return f


def _torch_grads(x, w, create_graph=False):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    loss = (TorchF.apply(xt, wt) * torch.tensor(C)).sum()
    return xt, wt, loss, torch.autograd.grad(loss, (xt, wt), create_graph=create_graph)


def _np(v):
    return v.detach().numpy() if isinstance(v, (cr.Tensor, torch.Tensor)) else np.asarray(v)


def _close(got, want, rtol=1e-12):
    for a, b in zip(got, want):
        np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=1e-12)


def test_custom_vjp_eager_backward_runs_the_rules_with_pytorchs_meanings():
    f = _cr_f()
    x, w = cr.tensor(X, requires_grad=True), cr.tensor(W, requires_grad=True)
    out = f(x, w)
    (out * cr.tensor(C)).sum().backward()
    _, _, loss, want = _torch_grads(X, W)
    np.testing.assert_allclose(_np(out), _np(fun(torch.tensor(X), torch.tensor(W))), rtol=1e-12)
    _close((x.grad, w.grad), want)


@pytest.mark.parametrize('spelling', ['func', 'jax'])
def test_custom_vjp_under_grad_given_tensors(spelling):
    f = _cr_f()
    grad = cr.func.grad if spelling == 'func' else cr.grad
    got = grad(lambda x, w: (f(x, w) * cr.tensor(C)).sum(), argnums=(0, 1))(
        cr.tensor(X), cr.tensor(W))
    _close(got, _torch_grads(X, W)[3])


def test_custom_vjp_value_and_grad_value_uses_fwd_with_pytorchs_meanings():
    f = _cr_f()
    _, val = cr.func.grad_and_value(lambda x: (f(x, cr.tensor(W)) * cr.tensor(C)).sum())(
        cr.tensor(X))
    want = (fun(torch.tensor(X), torch.tensor(W)) * torch.tensor(C)).sum()
    np.testing.assert_allclose(_np(val), want.item(), rtol=1e-12)


def test_custom_vjp_per_example_gradients_under_vmap():
    f = _cr_f()
    per = cr.func.vmap(cr.func.grad(lambda x, w: (f(x, w) * cr.tensor(C)).sum()),
                       in_dims=(0, None))(cr.tensor(XS), cr.tensor(W))
    want = [_torch_grads(x, W)[3][0] for x in XS]
    _close(per, want)


def test_custom_vjp_second_derivative_differentiates_the_rule():
    f = _cr_f()
    x, w = cr.tensor(X, requires_grad=True), cr.tensor(W, requires_grad=True)
    gx, gw = cr.autograd.grad((f(x, w) * cr.tensor(C)).sum(), (x, w), create_graph=True)
    ((gx * gx).sum() + gw.sum()).backward()
    xt, wt, _, (tgx, tgw) = _torch_grads(X, W, create_graph=True)
    ((tgx * tgx).sum() + tgw.sum()).backward()
    _close((gx, gw, x.grad, w.grad), (tgx, tgw, xt.grad, wt.grad), rtol=1e-10)


def test_custom_vjp_under_jit_of_grad_given_tensors():
    f = _cr_f()
    g = cr.jit(cr.func.grad(lambda x, w: (f(x, w) * cr.tensor(C)).sum(), argnums=(0, 1)))
    for _ in range(2):
        _close(g(cr.tensor(X), cr.tensor(W)), _torch_grads(X, W)[3])


def test_numpy_code_keeps_numpys_meanings_in_its_rules():
    # the same rule structure given arrays: NumPy's std (divide by n) in bwd
    @cr.custom_vjp
    def f(x):
        return x * 2.0
    f.defvjp(lambda x: (x * 2.0, x), lambda x, g: (g * x.std(),))
    got = cr.grad(lambda x: f(x).sum())(X)
    np.testing.assert_allclose(got, np.full_like(X, X.std()), rtol=1e-12)


# custom_jvp: h(x) = x * std(x), with the rule t -> t * std(x) + x * sum(t) / 4 (linear in t)
def _cr_h():
    @cr.custom_jvp
    def h(x):
        return x * x.std()

    @h.defjvp
    def h_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return h(x), t * x.std() + x * (t.sum() / 4)
    return h


V = RNG.standard_normal(5)
S1 = V.std(ddof=1)                 # PyTorch's std
JAC = np.diag(np.full(5, S1)) + np.outer(V, np.ones(5)) / 4


def test_custom_jvp_eager_backward_transposes_the_rule_with_pytorchs_meanings():
    h = _cr_h()
    x = cr.tensor(V, requires_grad=True)
    out = h(x)
    (out * cr.tensor(V[::-1].copy())).sum().backward()
    np.testing.assert_allclose(out.numpy(), V * S1, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), JAC.T @ V[::-1], rtol=1e-12)


@pytest.mark.parametrize('mode', ['jacfwd', 'jacrev'])
def test_custom_jvp_jacobians_given_a_tensor(mode):
    h = _cr_h()
    np.testing.assert_allclose(_np(getattr(cr.func, mode)(h)(cr.tensor(V))), JAC, rtol=1e-12)


def test_custom_jvp_under_vmap_of_jvp_given_tensors():
    h = _cr_h()
    ts = RNG.standard_normal((3, 5))
    got = cr.func.vmap(lambda t: cr.func.jvp(h, (cr.tensor(V),), (t,))[1])(cr.tensor(ts))
    np.testing.assert_allclose(_np(got), ts @ JAC.T, rtol=1e-12)
