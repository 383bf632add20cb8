"""Deep graphs: a chain of 1,000,000 operations differentiates without `RecursionError`, and the
graph frees itself by reference counting once it is no longer needed.

SLOW: each of the two million-operation tests below takes several seconds (about 5-15 s on one
core); they are the only slow tests here, and the suite runs them once each.

The chain is 500,000 steps of `y = y * a + b`, so its derivative is exactly `a ** 500000`. The
cyclic garbage collector is switched off while they run: the graph must be freed by reference
counting alone (it holds no cycles), which is what keeps long training runs cheap.
"""

import gc
import weakref

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

STEPS = 500_000          # two operations per step: 1,000,000 recorded operations
A, B = 0.999999, 1e-3


@pytest.fixture
def no_cyclic_gc():
    enabled = gc.isenabled()
    gc.disable()
    yield
    if enabled:
        gc.enable()


def test_tensor_backward_through_a_million_ops_then_the_graph_is_freed(no_cyclic_gc):
    x = cr.Tensor(np.array([0.5, -0.25]), requires_grad=True)
    y = x
    for i in range(STEPS):
        y = y * A + B
        if i == STEPS // 2:
            mid_data = weakref.ref(y.data)       # an intermediate value (saved by the next mul)
            mid_node = weakref.ref(y._node)      # and the tape node that produced it
    loss = y.sum()
    assert mid_data() is not None and mid_node() is not None
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full(2, A ** STEPS), rtol=1e-9)
    del y
    # backward() released what the rules needed, though `loss` still holds the graph
    assert mid_data() is None, 'the saved intermediate array outlived backward()'
    assert mid_node() is not None
    del loss
    assert mid_node() is None, 'the graph was not freed when its output was dropped'


def test_grad_through_a_million_ops_then_the_graph_is_freed(no_cyclic_gc):
    nodes = []

    def f(x):
        y = x
        for i in range(STEPS):
            y = y * A + B
            if i == STEPS // 2:
                nodes.append(weakref.ref(y.node))   # y is the reverse-mode tracer here
        return cnp.sum(y)

    g = cr.grad(f)(np.array([0.5, -0.25]))
    np.testing.assert_allclose(g, np.full(2, A ** STEPS), rtol=1e-9)
    assert len(nodes) == 1 and nodes[0]() is None, 'the tape outlived cr.grad'


def test_second_order_through_a_long_chain():
    # nested grad over 5,000 steps: the inner backward pass is itself recorded
    n = 5_000

    def f(x):
        y = x
        for _ in range(n):
            y = y * A + B * cnp.tanh(y)
        return cnp.sum(y)

    x = np.array([0.3])
    d2 = cr.grad(lambda x: cnp.sum(cr.grad(f)(x)))(x)
    h = 1e-4
    fd = (cr.grad(f)(x + h) - cr.grad(f)(x - h)) / (2 * h)
    np.testing.assert_allclose(d2, fd, rtol=1e-5)
