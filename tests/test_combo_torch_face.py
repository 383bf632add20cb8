"""PyTorch-faced code under the transforms.

Methods named alike in NumPy and PyTorch mean different things (`x.transpose(0, 1)`: NumPy's
identity permutation, PyTorch's swap; `x.std()`: divide by n or by n - 1; `x.repeat(2, 1)`;
`x.max(dim)`), and the transforms hand the function traced values. Code written against
`Tensor` must get PyTorch's meanings wherever it runs: under `chainrule.func` (torch.func's
spellings) always, under the JAX-spelled transforms and `jit` when the argument is a `Tensor`,
and inside an `nn.Module` whatever it is given. Each case is checked against PyTorch itself on
the same input (values and gradients); NumPy-faced code keeps NumPy's meanings.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for these programs')

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 3))
XS = RNG.standard_normal((4, 3, 3))
W = RNG.standard_normal((3, 3))


def program(T, w):
    """One function written once against a torch-like module `T`, using methods whose meaning
    differs from NumPy's."""
    def f(x):
        y = x.transpose(0, 1) * w                       # a swap, not the identity
        z = y.repeat(2, 1).sum(dim=0)                   # tile rows, reduce over dim 0
        m = x.max(dim=1).values                         # (values, indices)
        s = x.std() + x.var(dim=0).sum()                # n - 1
        v = x.view(-1)[:4].unsqueeze(0).expand(2, 4)     # view, expand
        return (z * m).sum() + s + (v * v).sum() + T.sigmoid(x).flatten(0).mean()
    return f


def _torch_value_and_grad(x):
    xt = torch.tensor(x, requires_grad=True)
    out = program(torch, torch.tensor(W))(xt)
    out.backward()
    return out.item(), xt.grad.numpy()


def _np(v):
    return v.numpy() if isinstance(v, cr.Tensor) else np.asarray(v)


F = program(cr, cr.tensor(W))
WANT_VALUE, WANT_GRAD = _torch_value_and_grad(X)


def test_the_eager_tensor_agrees_with_pytorch():
    x = cr.tensor(X, requires_grad=True)
    out = F(x)
    out.backward()
    np.testing.assert_allclose(out.item(), WANT_VALUE, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), WANT_GRAD, rtol=1e-12)


@pytest.mark.parametrize('spelling', ['func', 'jax-with-Tensor'])
@pytest.mark.parametrize('transform', ['grad', 'value_and_grad', 'vjp', 'jacrev', 'jacfwd',
                                       'jvp'])
def test_gradients_of_pytorch_code(spelling, transform):
    x = X if spelling == 'func' else cr.tensor(X)
    ns = cr.func if spelling == 'func' else cr
    if transform == 'grad':
        g = ns.grad(F)(x)
    elif transform == 'value_and_grad':
        if spelling == 'func':
            g, v = cr.func.grad_and_value(F)(x)
        else:
            v, g = cr.value_and_grad(F)(x)
        np.testing.assert_allclose(_np(v), WANT_VALUE, rtol=1e-12)
    elif transform == 'vjp':
        v, pull = ns.vjp(F, x)
        np.testing.assert_allclose(_np(v), WANT_VALUE, rtol=1e-12)
        g, = pull(np.ones(()))
    elif transform in ('jacrev', 'jacfwd'):
        g = getattr(ns, transform)(F)(x)
    else:
        t = RNG.standard_normal(X.shape)
        v, dv = ns.jvp(F, (x,), (t,))
        np.testing.assert_allclose(_np(dv), np.sum(WANT_GRAD * t), rtol=1e-10)
        return
    np.testing.assert_allclose(_np(g), WANT_GRAD, rtol=1e-10)


def test_hessian_of_pytorch_code_matches_torch():
    def h(T):
        return lambda x: (x.transpose(0, 1) @ x).std() * x.repeat(1, 2).sum()
    want = torch.autograd.functional.hessian(h(torch), torch.tensor(X)).numpy()
    np.testing.assert_allclose(_np(cr.func.hessian(h(cr))(X)), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_np(cr.hessian(h(cr))(cr.tensor(X))), want, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize('spelling', ['func', 'jax-with-Tensor'])
def test_vmap_of_pytorch_code(spelling):
    want = np.array([_torch_value_and_grad(x)[0] for x in XS])
    if spelling == 'func':
        got = cr.func.vmap(F)(XS)
    else:
        got = cr.vmap(F)(cr.tensor(XS))
    np.testing.assert_allclose(_np(got), want, rtol=1e-12)
    # per-example gradients
    want_g = np.stack([_torch_value_and_grad(x)[1] for x in XS])
    got_g = (cr.func.vmap(cr.func.grad(F))(XS) if spelling == 'func'
             else cr.vmap(cr.grad(F))(cr.tensor(XS)))
    np.testing.assert_allclose(_np(got_g), want_g, rtol=1e-10)


@pytest.mark.parametrize('requires_grad', [False, True])
def test_jit_of_pytorch_code_given_a_tensor(requires_grad):
    jf = cr.jit(F)
    out = jf(cr.tensor(X, requires_grad=requires_grad))
    np.testing.assert_allclose(_np(out), WANT_VALUE, rtol=1e-12)
    np.testing.assert_allclose(_np(cr.jit(cr.func.grad(F))(X)), WANT_GRAD, rtol=1e-10)


def test_jit_traces_a_tensor_and_an_array_argument_separately():
    """The same values as a NumPy array are NumPy code's input (NumPy's meanings): another
    trace, not the cached Tensor one."""
    f = cr.jit(lambda x: x.transpose(0, 1)[0])     # NumPy: identity; PyTorch: swap
    np.testing.assert_array_equal(_np(f(cr.tensor(X))), X[:, 0])
    np.testing.assert_array_equal(_np(f(X)), X[0])
    np.testing.assert_array_equal(_np(f(cr.tensor(X))), X[:, 0])


class _TorchStyle(cr.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = cr.nn.Linear(3, 2).to(cr.float64)

    def forward(self, x):
        return self.lin(x.transpose(0, 1)).std(dim=0).sum() + x.repeat(2, 1).max(dim=1).values.sum()


def _torch_module_value_and_grad(m, x):
    lin = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(m.lin.weight.numpy()))
        lin.bias.copy_(torch.tensor(m.lin.bias.numpy()))
    xt = torch.tensor(x, requires_grad=True)
    out = lin(xt.transpose(0, 1)).std(dim=0).sum() + xt.repeat(2, 1).max(dim=1).values.sum()
    out.backward()
    return out.item(), xt.grad.numpy()


def test_a_module_sees_tensors_whatever_the_transform_gives_it():
    m = _TorchStyle()
    want_values = [_torch_module_value_and_grad(m, x)[0] for x in XS]
    np.testing.assert_allclose(_np(cr.vmap(m)(XS)), want_values, rtol=1e-12)
    np.testing.assert_allclose(_np(cr.jit(m)(XS[0])), want_values[0], rtol=1e-12)
    value, grad = _torch_module_value_and_grad(m, XS[1])
    np.testing.assert_allclose(_np(cr.grad(m)(XS[1])), grad, rtol=1e-10)
    np.testing.assert_allclose(_np(cr.jacfwd(m)(XS[1])), grad, rtol=1e-10)
    np.testing.assert_allclose(_np(cr.vmap(cr.grad(m))(XS))[1], grad, rtol=1e-10)


def test_numpy_code_under_the_jax_spelling_keeps_numpys_meanings():
    f = lambda x: (x.transpose() * W).sum() + x.std() + x.repeat(2).sum()   # noqa: E731
    want = (X.T * W).sum() + X.std() + np.repeat(X, 2).sum()
    np.testing.assert_allclose(_np(cr.vmap(f)(XS))[0], (XS[0].T * W).sum() + XS[0].std()
                               + np.repeat(XS[0], 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(_np(cr.jit(f)(X)), want, rtol=1e-12)
    eps = 1e-6
    e = np.zeros_like(X)
    e[0, 1] = eps
    fd = (f(X + e) - f(X - e)) / (2 * eps)
    np.testing.assert_allclose(_np(cr.grad(f)(X))[0, 1], fd, rtol=1e-6)


def _staged_forms():
    """The same PyTorch-faced program through the call boundaries that stage a function:
    checkpoint, custom_vjp, lax.cond, lax.scan, lax.while_loop, lax.fori_loop."""
    f = program(cr, cr.tensor(W))
    fc = cr.custom_vjp(f)
    fc.defvjp(lambda x: (f(x), x), lambda x, g: (cr.func.grad(f)(x) * g,))

    def scanned(x):         # f once, through a scan of one step
        c, _ = cr.lax.scan(lambda c, xt: (c + f(xt), None), x.sum() * 0,
                           x.unsqueeze(0))
        return c

    def looped(x):
        return cr.lax.fori_loop(0, 1, lambda i, c: c + f(x), x.sum() * 0)

    def while_looped(x):
        return cr.lax.while_loop(lambda c: c[0] < 1, lambda c: (c[0] + 1, c[1] + f(c[2]), c[2]),
                                 (0, x.sum() * 0, x))[1]
    return {'checkpoint': cr.checkpoint(f), 'custom_vjp': fc,
            'cond': lambda x: cr.lax.cond(True, f, lambda x: f(x) * 2, x),
            'scan': scanned, 'fori_loop': looped, 'while_loop': while_looped}


@pytest.mark.parametrize('form', ['checkpoint', 'custom_vjp', 'cond', 'scan', 'fori_loop',
                                  'while_loop'])
def test_staged_call_boundaries_given_a_tensor(form):
    fn = _staged_forms()[form]
    x = cr.tensor(X, requires_grad=True)
    out = fn(x)
    np.testing.assert_allclose(_np(out), WANT_VALUE, rtol=1e-12)
    if form == 'while_loop':
        return          # (while_loop is not reverse-differentiable)
    out.backward()
    np.testing.assert_allclose(x.grad.numpy(), WANT_GRAD, rtol=1e-10)
