"""PyTorch's `inplace=True` on activations and dropout, where it meets autograd and the
transforms: the input itself changes (code may read it afterwards, as in PyTorch), gradients
flow as PyTorch's, a leaf that requires grad is refused, and traced values (grad, jit) give
the result. Dropout's fourth positional argument is `inplace`, as PyTorch's."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from torch_ref import torch_or_skip

X = np.array([-4.0, -1.5, -0.2, 0.0, 0.3, 1.0, 2.5, 7.0])

ACTS = [('relu', {}), ('elu', {'alpha': 0.7}), ('selu', {}), ('celu', {'alpha': 1.3}),
        ('leaky_relu', {'negative_slope': 0.2}), ('hardtanh', {'min_val': -0.5, 'max_val': 2.0}),
        ('relu6', {}), ('hardsigmoid', {}), ('hardswish', {}), ('silu', {}), ('mish', {}),
        ('threshold', {'threshold': 0.5, 'value': -2.0})]
MODULES = {'relu': 'ReLU', 'elu': 'ELU', 'selu': 'SELU', 'celu': 'CELU', 'leaky_relu': 'LeakyReLU',
           'hardtanh': 'Hardtanh', 'relu6': 'ReLU6', 'hardsigmoid': 'Hardsigmoid',
           'hardswish': 'Hardswish', 'silu': 'SiLU', 'mish': 'Mish', 'threshold': 'Threshold'}


def _run(lib, F_, name, kw, x, module):
    w = lib.tensor(x, requires_grad=True) if lib is not cr else cr.tensor(x, requires_grad=True)
    h = w * 1.5
    if module:
        mod = getattr(lib.nn, MODULES[name])(**kw, inplace=True)
        out = mod(h)
    else:
        out = getattr(F_, name)(h, **kw, inplace=True)
    assert out is h                                  # the input itself, returned
    (h * h * lib.tensor(1.0 + np.arange(len(x)))).sum().backward()
    return h.detach().numpy(), w.grad.detach().numpy()


@pytest.mark.parametrize('module', [False, True], ids=['functional', 'module'])
@pytest.mark.parametrize('name,kw', ACTS, ids=[a for a, _ in ACTS])
def test_inplace_activation_changes_its_input_and_differentiates_as_torch(name, kw, module):
    torch = torch_or_skip('PyTorch is the reference for inplace=True')
    torch.set_default_dtype(torch.float64)
    try:
        want = _run(torch, torch.nn.functional, name, kw, X, module)
    finally:
        torch.set_default_dtype(torch.float32)
    got = _run(cr, F, name, kw, X, module)
    for g, t in zip(got, want):
        np.testing.assert_allclose(g, t, rtol=1e-6, atol=1e-7)   # torch's float32 constants


@pytest.mark.parametrize('name,kw', ACTS, ids=[a for a, _ in ACTS])
def test_inplace_on_arrays_leaves_and_traced_values(name, kw):
    fn = getattr(F, name)
    a = X.copy()
    out = fn(a, **kw, inplace=True)
    np.testing.assert_array_equal(a, np.asarray(out))
    np.testing.assert_allclose(a, np.asarray(fn(X, **kw)))
    leaf = cr.tensor(X, requires_grad=True)
    with pytest.raises(cr.GradientError, match='leaf'):
        fn(leaf, **kw, inplace=True)
    # traced values cannot change: the result is what the transforms see
    want = cr.grad(lambda x: fn(x, **kw).sum())(X)
    np.testing.assert_allclose(cr.grad(lambda x: fn(x, **kw, inplace=True).sum())(X), want)
    np.testing.assert_allclose(cr.jit(lambda x: fn(x, **kw, inplace=True))(X), fn(X, **kw))


def test_dropout_fourth_argument_is_inplace_as_in_torch():
    x = cr.tensor(np.ones(1000)) * 1.0
    out = F.dropout(x, 0.5, True, True)
    assert out is x and set(np.unique(x.numpy())) == {0.0, 2.0}
    d = nn.Dropout(0.5, True)
    y = cr.tensor(np.ones(1000)) * 1.0
    assert d(y) is y and set(np.unique(y.numpy())) == {0.0, 2.0}
    assert nn.Dropout(0.5)(np.ones(3)).shape == (3,)
    # a seed in the old position is a clear error, not a silently fixed mask
    with pytest.raises(TypeError, match='fourth argument is inplace'):
        F.dropout(np.ones(3), 0.5, True, 7)
    with pytest.raises(TypeError, match='not a seed'):
        F.dropout(np.ones(3), 0.5, rng=True)
    a, b = F.dropout(np.ones(50), 0.5, rng=3), F.dropout(np.ones(50), 0.5, rng=3)
    np.testing.assert_array_equal(a, b)


def test_relu_module_accepts_torchs_arguments():
    x = cr.tensor(np.array([-1.0, 2.0])) * 1.0
    assert nn.ReLU(True)(x) is x and x.numpy().tolist() == [0.0, 2.0]
    y = np.array([-1.0, 2.0])
    assert nn.ReLU()(y).tolist() == [0.0, 2.0] and y.tolist() == [-1.0, 2.0]


def _mlp(inplace):
    return nn.Sequential(nn.Linear(3, 5, dtype=np.float64), nn.ReLU(inplace=inplace),
                         nn.Linear(5, 5, dtype=np.float64), nn.ELU(inplace=inplace),
                         nn.Hardtanh(inplace=inplace), nn.Linear(5, 2, dtype=np.float64))


def test_inplace_modules_under_every_transform_equal_the_plain_model():
    """A model built with inplace=True, run eagerly (backward), jitted, functionally under
    grad and under vmap, gives what the same model without inplace gives."""
    import chainrule.func as cf
    import chainrule.numpy as cnp
    m, m0 = _mlp(True), _mlp(False)
    m0.load_state_dict(m.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3))

    def step(model, fn):
        for p in model.parameters():
            p.grad = None
        out = fn(x)
        out.sum().backward()
        return [np.asarray(out.detach().numpy())] + [p.grad.numpy() for p in model.parameters()]

    want = step(m0, m0)
    for fn in (m, cr.jit(lambda x: m(x))):
        for a, b in zip(step(m, fn), want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    params = {k: v.detach().numpy() for k, v in m.named_parameters()}
    g = cr.grad(lambda p: cnp.sum(cf.functional_call(m, p, (x,))))(params)
    g0 = cr.grad(lambda p: cnp.sum(cf.functional_call(m0, p, (x,))))(params)
    for k in g:
        np.testing.assert_allclose(g[k], g0[k], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(cr.vmap(m)(x)), want[0], rtol=1e-12, atol=1e-12)


def test_clone_of_a_tensor_traced_by_a_transform():
    """Tensor.clone() inside grad/jit of module code (a Tensor holding a traced value that does
    not itself require grad) is an operation, not a NumPy copy of the tracer."""
    import chainrule.func as cf
    import chainrule.numpy as cnp
    lin = nn.Linear(3, 2, dtype=np.float64)
    x = np.ones((2, 3))
    params = {k: v.detach().numpy() for k, v in lin.named_parameters()}
    f = lambda p: cnp.sum(cf.functional_call(lin, p, (x,)).clone() * 2)     # noqa: E731
    np.testing.assert_allclose(cr.grad(f)(params)['bias'], [4.0, 4.0])
    np.testing.assert_allclose(cr.jit(f)(params), f(params))
