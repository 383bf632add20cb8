"""The eager tape and Python's cyclic garbage collector (issue 16, part 1).

A recorded operation leaves one object the collector tracks alive until backward: its node
(no tuple of parents, no version-counter list, no tuple of saved counters). A graph holds no
reference cycles, so reference counting frees it -- with hooks, `retain_grad` and
`create_graph` too -- and the collector finds nothing to collect. The version counters that
recording no longer allocates are made when first needed; the in-place checks that read them
still fire (the gradients here are analytic).
"""

import gc
import weakref

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import GradientError
from chainrule.interpreters.reverse import Node


@pytest.fixture
def no_cyclic_gc():
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if enabled:
        gc.enable()


def _leaves():
    return (cr.tensor(np.full(4, 0.5), requires_grad=True),
            cr.tensor(np.full(4, 0.01), requires_grad=True),
            cr.tensor(np.full(4, 0.999), requires_grad=True))


def _tracked_new(fn):
    """Objects the collector tracks that `fn()` left alive (after a collection, which untracks
    the tuples holding only arrays), by type name, with what `fn` returned."""
    gc.collect()
    before = {id(o) for o in gc.get_objects()}
    keep = fn()
    gc.collect()
    counts = {}
    for o in gc.get_objects():
        if id(o) not in before:
            name = type(o).__name__
            counts[name] = counts.get(name, 0) + 1
    return counts, keep


@pytest.mark.parametrize('step', ['x * b + a', 'tanh(x * b + 0.5)', 'x * 2.0 - a'])
def test_a_recorded_op_leaves_only_its_node_for_the_collector(no_cyclic_gc, step):
    x0, a, b = _leaves()
    steps = {'x * b + a': (lambda x: x * b + a, 2),
             'tanh(x * b + 0.5)': (lambda x: cnp.tanh(x * b + 0.5), 3),
             'x * 2.0 - a': (lambda x: x * 2.0 - a, 2)}
    f, ops_per_step = steps[step]
    n = 300

    def forward():
        x = x0
        for _ in range(n):
            x = f(x)
        return x

    counts, x = _tracked_new(forward)
    assert counts.pop('Node') == n * ops_per_step
    # what is left is this test's own bookkeeping (the id set, frames), not per-op objects
    assert sum(counts.values()) < 10, counts
    x.sum().backward()
    assert x0.grad is not None


def _cyclic_garbage(scenario):
    """What the collector finds after `scenario()` ran and dropped everything it made. It runs
    twice, and the second run counts: a first call may build lazily made caches (and the
    garbage of building them), which are no part of the tape."""
    scenario()
    gc.collect()
    scenario()
    return gc.collect()


def test_forward_backward_leaves_nothing_for_the_collector(no_cyclic_gc):
    def scenario():
        x0, a, b = _leaves()
        x = x0
        for _ in range(500):
            x = x * b + a
        x.sum().backward()
        # x_n = b x_(n-1) + a: dx_n/dx_0 = b^n, dx_n/da = (1 - b^n) / (1 - b)
        np.testing.assert_allclose(x0.grad.data, np.full(4, 0.999 ** 500))
        np.testing.assert_allclose(a.grad.data, np.full(4, (1 - 0.999 ** 500) / (1 - 0.999)))

    assert _cyclic_garbage(scenario) == 0


def test_hooks_retain_grad_and_create_graph_leave_no_cycles(no_cyclic_gc):
    def scenario():
        w = cr.tensor(np.array([1.5, -2.0]), requires_grad=True)
        seen = []
        y = w * w
        y.register_hook(lambda g: seen.append(g.data.copy()))
        z = y * 3.0
        z.retain_grad()
        loss = z.sum()
        (g,) = cr.autograd.grad(loss, [w], create_graph=True)    # 6 w, differentiable
        g.sum().backward()                                        # d/dw sum(6 w) = 6
        np.testing.assert_allclose(w.grad.data, [6.0, 6.0])
        loss.backward()
        np.testing.assert_allclose(w.grad.data, [6.0 + 9.0, 6.0 - 12.0])
        # (both passes ran z's retain_grad hook, as PyTorch 2.13's do: 1 + 1)
        np.testing.assert_allclose(z.grad.data, [2.0, 2.0])
        np.testing.assert_allclose(seen[-1], [3.0, 3.0])
        node = weakref.ref(y._node)
        del y, z, loss, g
        assert node() is None, 'the graph was not freed by reference counting'

    assert _cyclic_garbage(scenario) == 0


def test_the_graph_is_freed_when_the_loss_goes_out_of_scope(no_cyclic_gc):
    x0, a, b = _leaves()

    def step():
        x = x0
        for _ in range(200):
            x = x * b + a
        return x.sum(), weakref.ref(x._node), weakref.ref(x.data)

    def scenario():
        loss, node, data = step()
        assert node() is not None and data() is not None
        del loss
        assert node() is None and data() is None

    assert _cyclic_garbage(scenario) == 0


def test_parents_of_nodes_of_any_arity():
    x = cr.tensor(np.arange(3.0), requires_grad=True)
    y = cr.tensor(np.ones(3), requires_grad=True)
    c = cnp.concatenate([x, y, x, np.zeros(2)])          # four arguments
    assert c._node.parents == (x._node, y._node, x._node, None)
    assert (x * 2.0)._node.parents == (x._node, None)
    assert cnp.sin(x)._node.parents == (x._node,)
    assert x._node.parents == ()
    node = Node(None, None, (x._node, None, y._node), None, None)
    assert node.parents == (x._node, None, y._node) and node.nparents == 3
    c.sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0, 2.0])


# --- version counters made when first needed ---------------------------------------------------

def test_a_result_saved_then_modified_in_place_is_detected():
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0                       # a result: no counter yet
    z = y * y                         # saves y
    y.mul_(3.0)                       # recorded in place: y's counter is made, then bumped
    with pytest.raises(GradientError, match="'mul'"):
        z.sum().backward()


def test_a_result_modified_through_a_view_or_detach_is_detected():
    for alias in (lambda t: t[0:1], lambda t: t.detach(), lambda t: t.view(2)):
        x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
        y = x * 2.0
        z = cnp.sin(y)                # saves y (sin reads its argument)
        with cr.no_grad():
            alias(y).add_(1.0)
        with pytest.raises(GradientError, match="'sin'"):
            z.sum().backward()


def test_an_unmodified_result_passes_and_a_modified_unread_one_too():
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 2.0
    z = cnp.sin(y)
    _ = y.detach()                    # an alias made, nothing written: version still 0
    z.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2.0 * np.cos(2.0 * np.array([1.0, 2.0])))
    x.grad = None
    y = x * 2.0
    z = y + x                         # add reads neither value
    with cr.no_grad():
        y.add_(5.0)
    z.sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_a_leaf_saved_at_a_later_version_is_checked_from_that_version():
    w = cr.tensor(np.array([1.0, -1.0]), requires_grad=True)
    for _ in range(3):                # an optimizer's updates bump the leaf's counter
        with cr.no_grad():
            w -= 0.5
    x = cr.tensor(np.array([2.0, 3.0]), requires_grad=True)
    y = x * w                         # saves w at version 3
    y.sum().backward()                # unmodified since: passes
    np.testing.assert_allclose(x.grad.data, [-0.5, -2.5])
    y = x * w
    with cr.no_grad():
        w -= 0.5
    with pytest.raises(GradientError, match="'mul'"):
        y.sum().backward()


def test_a_constant_result_saved_then_modified_is_detected():
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with cr.no_grad():
        c = x * 3.0                   # made without a node: its counter is its own
    y = x * c                         # saves c, which needs no grad
    c.add_(1.0)
    with pytest.raises(GradientError, match="'mul'"):
        y.sum().backward()


def test_results_of_a_multiple_result_op_are_checked():
    x = cr.tensor(np.array([[2.0, 1.0], [1.0, 3.0]]), requires_grad=True)
    w, v = cnp.linalg.eigh(x)
    z = w * w
    with cr.no_grad():
        w.mul_(2.0)
    with pytest.raises(GradientError):
        z.sum().backward()


def test_create_graph_through_a_leaf_updated_before():
    # the rules' own operations save the leaf through the nodes' values: saved at the leaf's
    # current version (2 here), not at 0
    x = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = cr.tensor(np.array([0.5, -1.5]), requires_grad=True)
    with cr.no_grad():
        w += 0.25
        w *= 2.0                                   # w = [1.5, -2.5], version 2
    s = (x * w).sum()
    (g,) = cr.autograd.grad(s * s, [x], create_graph=True)     # 2 s w
    penalty = g.sum()                              # 2 s sum(w)
    penalty.backward()
    wv, xv = np.array([1.5, -2.5]), np.array([1.0, 2.0])
    sv = xv @ wv
    np.testing.assert_allclose(w.grad.data, 2 * xv * wv.sum() + 2 * sv)
    np.testing.assert_allclose(x.grad.data, 2 * wv * wv.sum())
