"""`jit` and the values a jitted function closes over.

A `Tensor` made outside the jitted function (a module's parameter or buffer) is read anew on
every call: operations on it are staged into the program (it becomes an input), never run once
at trace time -- so an optimizer's in-place update, or a buffer's running statistics, are seen
by the next call, in grad mode and under `no_grad`, and `backward()` reaches the parameter
through computations derived from it. Every case is checked against the same code run eagerly.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import nn, optim
from chainrule.interpreters.staging import TracerBoolError

RNG = np.random.default_rng(7)

# functions of x and a closed-over parameter W, each deriving something from W alone
DERIVED = {
    'exp(W)': lambda W, x: cnp.sum(x * cnp.exp(W)),
    'W.T @ W': lambda W, x: cnp.sum((W.T @ W) @ x),
    'W * 2 + 1': lambda W, x: cnp.sum(x * (W * 2 + 1)),
    'np.tanh(W)': lambda W, x: cnp.sum(x * np.tanh(W)),
    'W[0]': lambda W, x: cnp.sum(x * W[0]),
    'W.sum()': lambda W, x: W.sum() * cnp.sum(x),
    'direct': lambda W, x: cnp.sum(W @ x),
}


def _update(W):
    with cr.no_grad():
        W -= 0.3 * cr.tensor(RNG.standard_normal(W.shape))


@pytest.mark.parametrize('grad_mode', [True, False], ids=['grad', 'no_grad'])
@pytest.mark.parametrize('name', DERIVED)
def test_parameter_updates_are_seen(name, grad_mode):
    body = DERIVED[name]
    W = cr.tensor(RNG.standard_normal((3, 3)), requires_grad=True)
    x = RNG.standard_normal(3)
    f = cr.jit(lambda x: body(W, x))
    for _ in range(3):
        with cr.set_grad_enabled(grad_mode):
            out, ref = f(x), body(W, x)
        np.testing.assert_allclose(np.asarray(out.detach()), np.asarray(ref.detach()),
                                   rtol=1e-12)
        if grad_mode:
            out.backward()
            got = W.grad.numpy().copy()
            W.grad = None
            ref.backward()
            np.testing.assert_allclose(got, W.grad.numpy(), rtol=1e-12)
            W.grad = None
        _update(W)
    assert f.cache_info().misses == 1           # read by reference, not retraced


def test_buffer_without_grad_is_read_each_call():
    buf = cr.tensor(np.array([1.0, 2.0]))          # requires_grad=False, like a buffer
    f = cr.jit(lambda x: x * cnp.exp(buf))
    np.testing.assert_allclose(f(np.ones(2)), np.exp([1.0, 2.0]))
    buf.data[:] = [0.0, 0.5]
    np.testing.assert_allclose(f(np.ones(2)), np.exp([0.0, 0.5]))
    buf.zero_()
    np.testing.assert_allclose(f(np.ones(2)), [1.0, 1.0])


def test_jitted_evaluation_sees_batchnorm_running_statistics():
    """Train eagerly, evaluate with a jitted function: the evaluation must use the running
    statistics of now, not of when it was traced."""
    cr.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    x_val = RNG.standard_normal((6, 4)).astype(np.float32)
    evaluate = cr.jit(lambda x: model(x))
    for step in range(4):
        model.train()
        opt.zero_grad()
        xb = cr.tensor(RNG.standard_normal((8, 4)) * 3 + 1, dtype=cr.float32)
        cnp.mean(model(xb) ** 2).backward()
        opt.step()
        model.eval()
        with cr.no_grad():
            np.testing.assert_allclose(np.asarray(evaluate(x_val)), model(x_val).numpy(),
                                       rtol=1e-6, atol=1e-6, err_msg=f'step {step}')
        np.testing.assert_allclose(evaluate(x_val).detach().numpy(),
                                   model(x_val).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_nested_jit_and_grad_inside_jit():
    W = cr.tensor(RNG.standard_normal(3), requires_grad=True)
    inner = cr.jit(lambda x: cnp.sum(cnp.sin(W) * x))
    outer = cr.jit(lambda x: inner(x) * 2 + cr.grad(lambda y: cnp.sum(cnp.exp(W) * y ** 2))(x))
    x = RNG.standard_normal(3)
    for _ in range(2):
        with cr.no_grad():
            got = outer(x)
            ref = cnp.sum(cnp.sin(W) * x) * 2 + 2 * cnp.exp(W) * x
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-12)
        _update(W)


def test_python_control_flow_on_a_captured_tensor_is_a_clear_error():
    """A closed-over Tensor is symbolic while the function is traced (it is an input of the
    program), so a Python `if` on its values is refused rather than frozen."""
    W = cr.tensor(np.array([1.0, -1.0]))
    f = cr.jit(lambda x: x * 2 if W.sum() > 0 else x)
    with pytest.raises(TracerBoolError):
        f(np.ones(2))


def test_reading_a_captured_tensor_while_tracing_is_a_clear_error():
    """`.item()`, `float()`, `.tolist()`, `.numpy()` of a closed-over Tensor inside a jitted
    function would freeze today's value into the program: refused, naming what to do."""
    from chainrule.core import ConcretizationError
    W = cr.tensor(np.array([1.5, 2.0]), requires_grad=True)
    for read in (lambda: W[0].item(), lambda: float(W[1]), lambda: W.tolist(),
                 lambda: W.numpy(), lambda: np.asarray(W)):
        f = cr.jit(lambda x, read=read: x * read())
        with pytest.raises(ConcretizationError, match='closes over|jit'):
            f(np.ones(2))
    # outside jit the same reads work
    assert W[0].item() == 1.5 and W.tolist() == [1.5, 2.0]


def test_detach_and_clone_of_a_captured_tensor_are_staged():
    W = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    f = cr.jit(lambda x: cnp.sum(x * W.detach() + W.clone() * x))
    x = np.array([3.0, -1.0])
    for _ in range(2):
        out = f(x)
        out.backward()
        np.testing.assert_allclose(out.item(), float(np.sum(x * W.detach().numpy() * 2)))
        np.testing.assert_allclose(W.grad.numpy(), x)      # through clone only, not detach
        W.grad = None
        _update(W)


def test_in_place_change_of_a_captured_tensor_happens_on_every_call():
    """Staged at trace time and written back after each call (it was refused: it would have
    happened once, when the function was traced). More in test_combo_jit_mutation.py."""
    counter = cr.tensor(np.zeros(1))

    def step(x):
        counter.add_(1)
        return x * 2

    f = cr.jit(step)
    for k in range(1, 4):
        np.testing.assert_array_equal(np.asarray(f(np.ones(1))), [2.0])
        np.testing.assert_array_equal(counter.numpy(), [float(k)])
    assert f.cache_info().misses == 1
    # a Tensor made inside the jitted function may be changed in place
    f = cr.jit(lambda x: cr.tensor(np.ones(2)).mul_(3) * x)
    np.testing.assert_array_equal(np.asarray(f(np.full(2, 2.0))), [6.0, 6.0])


def test_backward_inside_jit_names_the_two_ways_that_work():
    model = nn.Linear(3, 1)

    def step(x):
        loss = cnp.sum(model(x) ** 2)
        loss.backward()
        return loss

    with pytest.raises(cr.ChainruleError, match=r'jit\(forward\)\(x\); loss.backward'):
        cr.jit(step)(np.ones((2, 3), np.float32))
    # the first way: the jitted forward's result is a Tensor whose backward reaches the model
    loss = cr.jit(lambda x: cnp.sum(model(x) ** 2))(np.ones((2, 3), np.float32))
    loss.backward()
    ref = model.weight.grad.numpy().copy()
    model.zero_grad()
    cnp.sum(model(np.ones((2, 3), np.float32)) ** 2).backward()
    np.testing.assert_allclose(ref, model.weight.grad.numpy(), rtol=1e-6)
