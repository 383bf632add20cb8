"""`chainrule.func` against `torch.func` (PyTorch 2.13) on the same modules, weights and data:
per-example gradients with `functional_call` + `vmap(grad)`, model ensembling with
`stack_module_state`, `grad_and_value`'s order, Jacobians and Hessians of a module's output
with respect to its parameters, and buffers passed in."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import func, nn
from chainrule.nn import functional as F

torch = pytest.importorskip('torch', reason='torch.func (PyTorch 2.13) is the reference')
torch.set_num_threads(1)
RNG = np.random.default_rng(3)


def _pair(make_ours, make_theirs):
    """The same model in both libraries (torch's initial weights, float64)."""
    theirs = make_theirs().double()
    ours = make_ours().to(cr.float64)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(3, 5), lib.nn.Tanh(), lib.nn.Linear(5, 2))


def _close(ours, theirs, rtol=1e-10):
    if isinstance(theirs, dict):
        assert ours.keys() == theirs.keys()
        for k in theirs:
            _close(ours[k], theirs[k], rtol)
        return
    if isinstance(theirs, (tuple, list)):
        for a, b in zip(ours, theirs):
            _close(a, b, rtol)
        return
    a = ours.detach().numpy() if isinstance(ours, cr.Tensor) else np.asarray(ours)
    np.testing.assert_allclose(a, theirs.detach().numpy(), rtol=rtol, atol=1e-12)


def test_per_example_gradients_match_torch_func():
    ours, theirs = _pair(lambda: _mlp(cr), lambda: _mlp(torch))
    x, y = RNG.standard_normal((6, 3)), RNG.integers(0, 2, 6)

    def loss(lib, model):
        def f(params, xb, yb):
            out = lib.func.functional_call(model, params, (xb[None],))
            return lib.nn.functional.cross_entropy(out, yb[None])
        return f

    p_ours = {k: v.detach() for k, v in ours.named_parameters()}
    p_theirs = {k: v.detach() for k, v in theirs.named_parameters()}
    g_ours = func.vmap(func.grad(loss(cr, ours)), in_dims=(None, 0, 0))(p_ours, x, y)
    g_theirs = torch.func.vmap(torch.func.grad(loss(torch, theirs)), in_dims=(None, 0, 0))(
        p_theirs, torch.tensor(x), torch.tensor(y))
    _close(g_ours, g_theirs)
    # and the per-example gradients are the gradients of each example alone
    for i in range(6):
        ours.zero_grad()
        F.cross_entropy(ours(cr.tensor(x[i:i + 1])), y[i:i + 1]).backward()
        for k, p in ours.named_parameters():
            np.testing.assert_allclose(np.asarray(g_ours[k][i]), p.grad.numpy(), rtol=1e-10)


def test_ensemble_with_stack_module_state():
    pairs = [_pair(lambda: _mlp(cr), lambda: _mlp(torch)) for _ in range(3)]
    x = RNG.standard_normal((4, 3))
    p_ours, b_ours = func.stack_module_state([o for o, _ in pairs])
    p_theirs, b_theirs = torch.func.stack_module_state([t for _, t in pairs])
    base_ours, base_theirs = pairs[0]

    out_ours = func.vmap(lambda p, b, x: func.functional_call(base_ours, (p, b), (x,)),
                         in_dims=(0, 0, None))(p_ours, b_ours, x)
    out_theirs = torch.func.vmap(
        lambda p, b, x: torch.func.functional_call(base_theirs, (p, b), (x,)),
        in_dims=(0, 0, None))(p_theirs, b_theirs, torch.tensor(x))
    _close(out_ours, out_theirs)


def test_grad_and_value_order_and_aux():
    def f(lib):
        return lambda x: ((x ** 3).sum(), x * 2)
    x = RNG.standard_normal(3)
    ours = func.grad_and_value(f(cr), has_aux=True)(x)
    theirs = torch.func.grad_and_value(f(torch), has_aux=True)(torch.tensor(x))
    _close(ours[0], theirs[0])
    _close(ours[1], theirs[1])
    g, v = func.grad_and_value(lambda x: (x ** 2).sum())(x)
    np.testing.assert_allclose(g, 2 * x)
    np.testing.assert_allclose(v, (x ** 2).sum())


def test_jacobians_and_hessian_with_respect_to_parameters():
    ours, theirs = _pair(lambda: _mlp(cr), lambda: _mlp(torch))
    x = RNG.standard_normal((2, 3))
    p_ours = {k: v.detach() for k, v in ours.named_parameters()}
    p_theirs = {k: v.detach() for k, v in theirs.named_parameters()}
    for name in ('jacrev', 'jacfwd'):
        j_ours = getattr(func, name)(lambda p: func.functional_call(ours, p, (x,)))(p_ours)
        j_theirs = getattr(torch.func, name)(
            lambda p: torch.func.functional_call(theirs, p, (torch.tensor(x),)))(p_theirs)
        _close(j_ours, j_theirs)
    h_ours = func.hessian(lambda p: func.functional_call(ours, p, (x,)).sum())(p_ours)
    h_theirs = torch.func.hessian(
        lambda p: torch.func.functional_call(theirs, p, (torch.tensor(x),)).sum())(p_theirs)
    _close(h_ours, h_theirs)


def test_vjp_jvp_linearize():
    x, t = RNG.standard_normal(4), RNG.standard_normal(4)
    out, fn = func.vjp(lambda x: x ** 3 - 2 * x, x)
    tout, tfn = torch.func.vjp(lambda x: x ** 3 - 2 * x, torch.tensor(x))
    _close(out, tout)
    _close(fn(t), tfn(torch.tensor(t)))
    _close(func.jvp(lambda x: x ** 3 - 2 * x, (x,), (t,)),
           torch.func.jvp(lambda x: x ** 3 - 2 * x, (torch.tensor(x),), (torch.tensor(t),)))
    out, jfn = func.linearize(lambda x: cnp.exp(x), x)
    np.testing.assert_allclose(jfn(t), np.exp(x) * t)


def test_buffers_passed_in_are_used():
    ours, theirs = _pair(lambda: cr.nn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3))
    ours.eval()
    theirs.eval()
    x = RNG.standard_normal((4, 3))
    bufs = {'running_mean': RNG.standard_normal(3), 'running_var': RNG.uniform(0.5, 2, 3)}
    out = func.functional_call(ours, bufs, (x,))
    ref = torch.func.functional_call(theirs, {k: torch.tensor(v) for k, v in bufs.items()},
                                     (torch.tensor(x),))
    _close(out, ref)
    np.testing.assert_array_equal(ours.running_mean.numpy(), 0)   # the module is unchanged


def test_bad_names_are_clear_errors():
    m = nn.Linear(2, 2)
    with pytest.raises(cr.ChainruleError, match="'wieght'.* are not parameters or buffers"):
        func.functional_call(m, {'wieght': np.zeros((2, 2))}, (np.ones(2),))
    with pytest.raises(cr.ChainruleError, match='more than one dict'):
        func.functional_call(m, ({'bias': np.zeros(2)}, {'bias': np.ones(2)}), (np.ones(2),))
    with pytest.raises(cr.ChainruleError, match='strict=True.*weight'):
        func.functional_call(m, {'bias': np.zeros(2)}, (np.ones(2),), strict=True)
