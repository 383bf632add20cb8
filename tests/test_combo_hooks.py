"""Gradient hooks × retain_grad × in-place operations × views, against PyTorch.

PyTorch's rules (kept in `chainrule._hooks`): `retain_grad()` stores the gradient after every
other hook of the tensor has run, whenever it was called; calling it twice stores it once; it
follows the tensor through in-place operations (`.grad` is the gradient of the current value),
while hooks registered with `register_hook` stay with the value they were registered on.
Each program runs once on `torch` and once on `chainrule`, written against either module.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for hook semantics')


def _leaf(M, v):
    return M.tensor(v, dtype=M.float64, requires_grad=True)


def retain_twice(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * x
    y.retain_grad()
    y.retain_grad()
    (y * 3.0).sum().backward()
    return x.grad, y.grad


def retain_then_hook(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * x
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    (y * 3.0).sum().backward()
    return x.grad, y.grad


def retain_hook_retain(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * x
    y.retain_grad()
    y.register_hook(lambda g: g * 10)
    y.retain_grad()
    y.register_hook(lambda g: g + 1)
    (y * 3.0).sum().backward()
    return x.grad, y.grad


def retain_then_inplace(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * 1
    y.retain_grad()
    y.mul_(3)
    (y * y).sum().backward()
    return x.grad, y.grad


def retain_hook_inplace_hook(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * 1
    y.retain_grad()
    y.register_hook(lambda g: g * 2)     # stays on the value before mul_
    y.mul_(3)
    y.register_hook(lambda g: g + 1)     # on the new value: runs before the retained grad
    (y * y).sum().backward()
    return x.grad, y.grad


def retained_view_then_base_inplace(M):
    x = _leaf(M, [[1., 2.], [3., 4.]])
    y = x * 1
    v = y[0]
    v.retain_grad()
    y.mul_(2)
    (v * v).sum().backward()
    return x.grad, v.grad


def retained_base_then_view_inplace(M):
    x = _leaf(M, [[1., 2.], [3., 4.]])
    y = x * 1
    v = y[0]
    y.retain_grad()
    v.mul_(2)
    (y * y).sum().backward()
    return x.grad, y.grad


def retain_with_removed_hook(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * x
    y.retain_grad()
    y.register_hook(lambda g: g * 5).remove()
    (y * y).sum().backward()
    return x.grad, y.grad


def retain_two_backwards(M):
    x = _leaf(M, [1., 2., 3.])
    y = x * x
    y.register_hook(lambda g: g * 2)
    y.retain_grad()
    z = (y / x).sum()
    z.backward(retain_graph=True)
    z.backward()
    return x.grad, y.grad


PROGRAMS = [retain_twice, retain_then_hook, retain_hook_retain, retain_then_inplace,
            retain_hook_inplace_hook, retained_view_then_base_inplace,
            retained_base_then_view_inplace, retain_with_removed_hook, retain_two_backwards]


@pytest.mark.parametrize('program', PROGRAMS, ids=lambda p: p.__name__)
def test_hooks_and_retained_gradients_match_pytorch(program):
    want = program(torch)
    got = program(cr)
    for g, w in zip(got, want):
        assert isinstance(g, cr.Tensor)
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-13)
