"""Tests of cr.checkpoint: same derivatives as without it, in every mode, and less memory held
between the forward and the backward pass (measured with tracemalloc)."""

import gc
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

rng = np.random.default_rng(2)


def block(x, w):
    for _ in range(8):
        x = cnp.tanh(x @ w) * 1.05 + 0.1 * x
    return x


def test_checkpoint_same_gradient_as_plain():
    x, w = rng.normal(size=(4, 5)), rng.normal(size=(5, 5)) * 0.5
    loss = lambda f: lambda x, w: cnp.sum(f(x, w) ** 2)  # noqa: E731
    g_plain = cr.grad(loss(block), argnums=(0, 1))(x, w)
    g_ckpt = cr.grad(loss(cr.checkpoint(block)), argnums=(0, 1))(x, w)
    for a, b in zip(g_plain, g_ckpt):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # outside any transform a checkpointed function is the function
    np.testing.assert_array_equal(cr.checkpoint(block)(x, w), block(x, w))


def test_checkpoint_matches_finite_differences_and_torch():
    x = rng.normal(size=3)
    w = rng.normal(size=(3, 3)) * 0.5
    f = lambda x: cnp.sum(cr.checkpoint(block)(x, w))  # noqa: E731
    g = cr.grad(f)(x)
    eps = 1e-6
    fd = [(float(f(x + eps * e)) - float(f(x - eps * e))) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    torch = pytest.importorskip('torch')
    from torch.utils.checkpoint import checkpoint as tckpt

    def tblock(x, w):
        for _ in range(8):
            x = torch.tanh(x @ w) * 1.05 + 0.1 * x
        return x
    tx = torch.tensor(x, requires_grad=True)
    tckpt(tblock, tx, torch.tensor(w), use_reentrant=False).sum().backward()
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12)


def test_checkpoint_higher_order_and_pytrees():
    f = cr.checkpoint(lambda p: {'y': cnp.sin(p['a']) * p['b'] ** 2})
    p = {'a': 0.7, 'b': 1.3}
    g = cr.grad(lambda p: f(p)['y'])(p)
    assert g['a'] == pytest.approx(np.cos(0.7) * 1.3 ** 2)
    assert g['b'] == pytest.approx(np.sin(0.7) * 2 * 1.3)
    d2 = cr.grad(lambda a: cr.grad(lambda a: f({'a': a, 'b': 1.3})['y'])(a))(0.7)
    assert d2 == pytest.approx(-np.sin(0.7) * 1.3 ** 2, rel=1e-12)
    # nested checkpoints
    h = cr.checkpoint(lambda x: cr.checkpoint(cnp.exp)(x) * x)
    assert cr.grad(h)(0.5) == pytest.approx(np.exp(0.5) * 1.5, rel=1e-14)
    assert cr.grad(cr.grad(h))(0.5) == pytest.approx(np.exp(0.5) * 2.5, rel=1e-12)


def test_checkpoint_static_argnums_decorator_and_closure_error():
    @cr.checkpoint(static_argnums=(1,))
    def power(x, n):
        assert isinstance(n, int)        # static: never traced
        return x ** n
    assert cr.grad(power)(2.0, 3) == pytest.approx(12.0)
    assert cr.remat is cr.checkpoint

    # a checkpointed function closing over the value being differentiated (JAX's idiom) is
    # closure-converted: d/dw (w * w) = 2w
    def closes_over(w):
        return cr.checkpoint(lambda x: x * w)(w)
    assert cr.grad(closes_over)(2.0) == pytest.approx(4.0)
    assert cr.grad(cr.grad(closes_over))(2.0) == pytest.approx(2.0)

    def loss(p):        # a checkpointed step closing over the parameters, applied 3 times
        step = cr.checkpoint(lambda h: cnp.tanh(h * p[0] + p[1]))
        h = np.array([0.3, -0.2])
        for _ in range(3):
            h = step(h)
        return cnp.sum(h ** 2)

    def loss_plain(p):
        h = np.array([0.3, -0.2])
        for _ in range(3):
            h = cnp.tanh(h * p[0] + p[1])
        return cnp.sum(h ** 2)
    p0 = np.array([0.8, 0.1])
    np.testing.assert_allclose(cr.grad(loss)(p0), cr.grad(loss_plain)(p0), rtol=1e-12)
    np.testing.assert_allclose(cr.grad(loss)(p0), [
        (loss_plain(p0 + d) - loss_plain(p0 - d)) / 2e-6 for d in np.eye(2) * 1e-6], rtol=1e-6)

    # a closure that cannot be staged (Python control flow on the value) is still refused
    def branchy(w):
        return cr.checkpoint(lambda x: x * w if float(cr.stop_gradient(x)) > 0 else x)(w)
    with pytest.raises(cr.ChainruleError, match='as an argument'):
        cr.grad(branchy)(2.0)
    # a closed-over constant is fine
    c = np.array([1.0, 2.0])
    assert cr.grad(lambda x: cnp.sum(cr.checkpoint(lambda x: x * c)(x)))(np.ones(2)).tolist() \
        == [1.0, 2.0]


def test_checkpoint_forward_mode():
    jvp = cr.jvp
    w = rng.normal(size=(3, 3)) * 0.5
    x, t = rng.normal(size=3), rng.normal(size=3)
    out, tan = jvp(lambda x: cr.checkpoint(block)(x, w), (x,), (t,))
    out2, tan2 = jvp(lambda x: block(x, w), (x,), (t,))
    np.testing.assert_allclose(out, out2)
    np.testing.assert_allclose(tan, tan2, rtol=1e-12)


def test_checkpoint_with_tensor_backward():
    w = cr.tensor(rng.normal(size=(3, 3)) * 0.5, requires_grad=True)
    x = rng.normal(size=(2, 3))
    cr.checkpoint(block)(cr.tensor(x), w).sum().backward()
    g_ckpt = w.grad.numpy().copy()
    w.grad = None
    block(cr.tensor(x), w).sum().backward()
    np.testing.assert_allclose(g_ckpt, w.grad.numpy(), rtol=1e-12)


def _held_bytes(fn, x):
    """Bytes still allocated after the forward pass of vjp(fn, x): what is kept for backward."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out, f_vjp = cr.vjp(fn, x)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        (g,) = f_vjp(np.ones_like(out))
    finally:
        tracemalloc.stop()
    return held, g


def _blk(x):
    for _ in range(10):
        x = cnp.sin(x) * 0.9 + 0.1
    return x


_ck_blk = cr.checkpoint(_blk)


def _plain_net(x):
    for _ in range(4):
        x = _blk(x)
    return x


def _ckpt_net(x):
    for _ in range(4):
        x = _ck_blk(x)
    return x


def memory_figures(n=100_000):
    """(bytes held without checkpoint, with checkpoint, gradients of both) for 4 blocks of 10
    elementwise ops on `n` float64 values. `python tests/test_checkpoint.py` prints them."""
    x = np.random.default_rng(0).normal(size=n)
    held_plain, g_plain = _held_bytes(_plain_net, x)
    held_ckpt, g_ckpt = _held_bytes(_ckpt_net, x)
    return held_plain, held_ckpt, g_plain, g_ckpt


def test_checkpoint_saves_memory():
    # 4 blocks of 10 elementwise ops on 100k float64 (800 kB each): without checkpointing
    # reverse mode keeps ~40 arrays (and their inputs); with block-wise checkpoints only the
    # block boundaries.
    held_plain, held_ckpt, g_plain, g_ckpt = memory_figures()
    np.testing.assert_allclose(g_ckpt, g_plain, rtol=1e-12)
    mb = 800_000
    assert held_plain > 40 * mb                  # every intermediate kept
    assert held_ckpt < 8 * mb                    # inputs and outputs of 4 blocks
    assert held_plain > 5 * held_ckpt


def test_checkpoint_under_vmap_and_jit():
    import warnings
    ck = cr.checkpoint(lambda x, w: cnp.tanh(x @ w))
    xs, w = rng.normal(size=(4, 3)), rng.normal(size=(3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')      # batched as one call, no per-example loop
        out = cr.vmap(ck, in_axes=(0, None))(xs, w)
        gw = cr.grad(lambda w: cnp.sum(cr.vmap(ck, in_axes=(0, None))(xs, w) ** 2))(w)
        gj = cr.jit(cr.grad(lambda w: cnp.sum(ck(xs, w) ** 2)))(w)
    np.testing.assert_allclose(out, np.tanh(xs @ w))
    t = np.tanh(xs @ w)
    expect = xs.T @ (2 * t * (1 - t ** 2))
    np.testing.assert_allclose(gw, expect, rtol=1e-12)
    np.testing.assert_allclose(gj, expect, rtol=1e-12)


def _tensor_net(blocks, x, ckpt):
    for blk in blocks:
        f = (lambda h, blk=blk: cnp.tanh(blk[1](cnp.tanh(blk[0](h))))) if not ckpt else \
            cr.checkpoint(lambda h, blk=blk: cnp.tanh(blk[1](cnp.tanh(blk[0](h)))))
        x = f(x)
    return x


def _tensor_grads(blocks, x0, ckpt):
    x = cr.tensor(x0, requires_grad=True)
    for blk in blocks:
        for m in blk:
            m.zero_grad()
    (_tensor_net(blocks, x, ckpt) ** 2).sum().backward()
    return [x.grad.numpy()] + [p.grad.numpy().copy() for blk in blocks for m in blk
                               for p in m.parameters()]


def test_checkpoint_tensor_code_with_closed_over_modules():
    # PyTorch style: blocks of layers closed over, the input a Tensor with or without grad
    blocks = [(cr.nn.Linear(6, 6, dtype=np.float64, rng=k), cr.nn.Linear(6, 6, dtype=np.float64,
                                                                           rng=10 + k))
              for k in range(3)]
    x0 = rng.normal(size=(5, 6))
    for a, b in zip(_tensor_grads(blocks, x0, True), _tensor_grads(blocks, x0, False)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    torch = pytest.importorskip('torch')
    tx = torch.tensor(x0, requires_grad=True)
    h = tx
    for l1, l2 in blocks:
        h = torch.tanh(torch.nn.functional.linear(
            torch.tanh(torch.nn.functional.linear(h, torch.tensor(l1.weight.numpy()),
                                                  torch.tensor(l1.bias.numpy()))),
            torch.tensor(l2.weight.numpy()), torch.tensor(l2.bias.numpy())))
    (h ** 2).sum().backward()
    np.testing.assert_allclose(_tensor_grads(blocks, x0, True)[0], tx.grad.numpy(), rtol=1e-10)


def test_checkpoint_tensor_code_module_argument_hooks_and_errors():
    lin = cr.nn.Linear(3, 3, dtype=np.float64, rng=0)
    x = cr.tensor(rng.normal(size=(4, 3)))
    cnp.tanh(lin(x)).sum().backward()
    expect = lin.weight.grad.numpy().copy()
    for f in [cr.checkpoint(lambda m, x: cnp.tanh(m(x))), cr.checkpoint(lambda x: cnp.tanh(lin(x)))]:
        lin.zero_grad()
        calls = []
        handle = lin.weight.register_hook(lambda g: calls.append(1))
        out = f(lin, x) if f.__wrapped__.__code__.co_argcount == 2 else f(x)
        out.sum().backward()
        handle.remove()
        np.testing.assert_allclose(lin.weight.grad.numpy(), expect, rtol=1e-12)
        assert calls == [1]                         # the hook ran once, in the real backward
    # parameters passed explicitly work too
    lin.zero_grad()
    cr.checkpoint(lambda x, w, b: cnp.tanh(x @ w.T + b))(x, lin.weight, lin.bias).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), expect, rtol=1e-12)
    # second order through a checkpoint of Tensor code: fine when the Tensors are arguments,
    # refused with the way out when they are closed over
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    cr.checkpoint(lambda v: (v ** 3).sum())(w).backward(create_graph=True)
    gw = w.grad
    np.testing.assert_allclose(gw.numpy(), [3.0, 12.0])
    w.grad = None
    gw.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0, 12.0])
    with pytest.raises(cr.GradientError, match='create_graph.*pass those Tensors as arguments'):
        cr.checkpoint(lambda x: lin(x))(x).sum().backward(create_graph=True)
    # a parameter modified in place between forward and backward is detected
    out = cr.checkpoint(lambda x: lin(x))(x).sum()
    with cr.no_grad():
        lin.weight.data[...] += 1.0
        lin.weight._version[0] += 1
    with pytest.raises(cr.GradientError, match='modified in place'):
        out.backward()


def test_checkpoint_tensor_code_saves_memory():
    blocks = [[cr.nn.Linear(200, 200, dtype=np.float64, rng=k) for _ in range(4)]
              for k in range(3)]
    x = cr.tensor(np.random.default_rng(0).normal(size=(100, 200)))

    def net(ckpt):
        h = x
        for blk in blocks:
            def f(h, blk=blk):
                for m in blk:
                    h = cnp.tanh(m(h))
                return h
            h = cr.checkpoint(f)(h) if ckpt else f(h)
        return (h ** 2).sum()

    held = {}
    for ckpt in (False, True):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        loss = net(ckpt)
        gc.collect()
        held[ckpt] = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        loss.backward()
    # each of the 12 layers keeps its input and its tanh output (160 kB each) without
    # checkpointing; with it, only the 3 block outputs (and the loss's square) are kept
    assert held[False] > 20 * 160_000, held
    assert held[True] < 5 * 160_000, held
    assert held[False] > 4 * held[True], held


def test_checkpoint_of_a_module_in_functional_mode():
    # functional use: the module is a pytree whose leaves are its parameters' data
    lin = cr.nn.Linear(3, 2, dtype=np.float64, rng=1)
    x = rng.normal(size=(5, 3))
    ck = cr.checkpoint(lambda m, x: cnp.tanh(m(x)))

    def loss(f):
        return lambda m: cnp.sum(f(m, x) ** 2)
    g_ck = cr.grad(loss(ck))(lin)
    g = cr.grad(loss(lambda m, x: cnp.tanh(m(x))))(lin)
    assert type(g_ck) is type(lin)
    np.testing.assert_allclose(g_ck.weight.data, g.weight.data, rtol=1e-12)
    np.testing.assert_allclose(g_ck.bias.data, g.bias.data, rtol=1e-12)


if __name__ == '__main__':
    plain, ckpt, _, _ = memory_figures()
    print(f'held between forward and backward: {plain / 1e6:.1f} MB without checkpoint, '
          f'{ckpt / 1e6:.1f} MB with block-wise checkpoint ({plain / ckpt:.0f}x less)')


def test_checkpoint_tensor_code_closing_over_an_intermediate_warns():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    a = w * 2.0                                  # has history: its tape continues outside
    x = cr.tensor([3.0, 4.0], requires_grad=True)
    with pytest.warns(cr.custom.CallBypassedWarning, match='nothing is checkpointed'):
        out = cr.checkpoint(lambda x: x * a)(x)
    out.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [6.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
