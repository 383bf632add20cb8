"""Randomness where it meets the transforms: a checkpointed function that draws (dropout) is
re-run in the backward pass, and the re-run must draw what the first run drew, or the gradient
belongs to another mask than the value (a silent wrong gradient). The oracle is the same
program without checkpointing, from the same seed."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.func as cf
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule import nn
from chainrule.tree import tree_leaves

X = np.linspace(0.5, 2.0, 24).reshape(4, 6)
W = np.linspace(-1.0, 1.0, 36).reshape(6, 6)


def block(x, w):
    """Two dropouts and a nonlinearity, so every part of the gradient depends on the masks."""
    h = F.dropout(cnp.tanh(x @ w), 0.5, training=True)
    return F.dropout(h * h + x, 0.3, training=True)


def loss(block_fn):
    return lambda x, w: cnp.sum(cnp.sin(block_fn(x, w)))


def _seeded(fn, *args):
    cr.manual_seed(7)
    return fn(*args)


@pytest.mark.parametrize('mode', ['grad', 'jit-grad', 'vjp', 'hessian-vector'])
def test_functional_gradient_of_checkpointed_dropout_equals_the_plain_one(mode):
    plain, ck = loss(block), loss(cr.checkpoint(block))
    if mode == 'grad':
        run = lambda f: cr.value_and_grad(f, argnums=(0, 1))     # noqa: E731
    elif mode == 'jit-grad':
        run = lambda f: cr.jit(cr.value_and_grad(f, argnums=(0, 1)))    # noqa: E731
    elif mode == 'vjp':
        def run(f):
            def g(x, w):
                out, pull = cr.vjp(f, x, w)
                return out, pull(np.float64(1.0))
            return g
    else:
        def run(f):
            def g(x, w):     # d/dx <grad_w f, v>: the recomputation under a second derivative
                return cr.grad(lambda x: cnp.sum(cr.grad(f, argnums=1)(x, w) * W))(x)
            return g
    want, got = _seeded(run(plain), X, W), _seeded(run(ck), X, W)
    for a, b in zip(tree_leaves(want), tree_leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_jvp_of_checkpointed_dropout_equals_the_plain_one():
    t = np.cos(X)
    want = _seeded(lambda: cr.jvp(lambda x: block(x, W), (X,), (t,)))
    got = _seeded(lambda: cr.jvp(lambda x: cr.checkpoint(block)(x, W), (X,), (t,)))
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize('transform', ['jacrev', 'jacfwd', 'hessian'])
def test_jacobians_of_checkpointed_dropout_equal_the_plain_ones(transform):
    T = {'jacrev': cr.jacrev, 'jacfwd': cr.jacfwd,
         'hessian': lambda g: cr.hessian(lambda x: cnp.sum(g(x)))}[transform]
    f = lambda blk: (lambda x: cnp.sin(blk(x, W)).sum(axis=1))      # noqa: E731
    np.testing.assert_allclose(_seeded(T(f(cr.checkpoint(block))), X), _seeded(T(f(block)), X),
                               rtol=1e-12, atol=1e-12)

@pytest.mark.parametrize('create_graph', [False, True])
@pytest.mark.parametrize('generator', ['global', 'local'])
def test_tensor_backward_through_checkpointed_dropout_layers(create_graph, generator):
    """Eager Tensor code, as PyTorch's torch.utils.checkpoint: a module with Dropout, the
    gradients of the parameters and (create_graph) a second derivative."""
    def make():
        cr.manual_seed(3)
        rng = np.random.default_rng(11) if generator == 'local' else None
        return nn.Sequential(nn.Linear(6, 6, dtype=np.float64), nn.Tanh(),
                             nn.Dropout(0.5, rng=rng), nn.Linear(6, 3, dtype=np.float64),
                             nn.Dropout(0.2, rng=rng))

    def run(checkpointed):
        model = make()
        x = cr.Tensor(X, requires_grad=True)
        if create_graph:      # differentiated Tensors as arguments, as create_graph needs
            w1, w2 = model[0].weight, model[3].weight

            def body(x, w1, w2):
                h = F.dropout(cr.Tensor.tanh(x @ w1.T), 0.5, rng=model[2]._rng)
                return F.dropout(h @ w2.T, 0.2, rng=model[4]._rng)
            out = (cr.checkpoint(body) if checkpointed else body)(x, w1, w2)
            gx, = cr.autograd.grad((out ** 3).sum(), [x], create_graph=True)
            (gx ** 2).sum().backward()
            return [x.grad.numpy(), w1.grad.numpy(), w2.grad.numpy()]
        out = (cr.checkpoint(model) if checkpointed else model)(x)
        (out ** 3).sum().backward()
        return [x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]

    for a, b in zip(run(False), run(True)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


def test_the_stream_goes_on_as_without_checkpointing():
    """The re-run leaves the generator where the first run left it: the draws after a
    checkpointed training step are those after a plain one."""
    after = []
    for fn in (block, cr.checkpoint(block)):
        cr.manual_seed(5)
        cr.grad(loss(fn))(X, W)
        after.append(np.asarray(cr.randn(5).numpy()))
    np.testing.assert_array_equal(after[1], after[0])


def test_nested_checkpoints_and_vmap_of_the_gradient():
    inner = cr.checkpoint(lambda x, w: F.dropout(x @ w, 0.5))
    outer = cr.checkpoint(lambda x, w: block(inner(x, w), w))
    plain = lambda x, w: block(F.dropout(x @ w, 0.5), w)      # noqa: E731
    for f in (lambda g: cr.grad(loss(g), argnums=1),
              lambda g: cr.vmap(cr.grad(loss(g), argnums=1), in_axes=(0, None))):
        want = _seeded(f(plain), X, W)
        got = _seeded(f(outer), X, W)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- chainrule.func.vmap(randomness=...) as torch.func.vmap ------------------------------------

ONES = np.ones((6, 400))


def _dropout_row(r):
    return F.dropout(r, 0.5, training=True)


def _rows(out):
    out = np.asarray(out)
    assert set(np.unique(out)) <= {0.0, 2.0}        # p = 0.5: kept entries doubled
    return out


@pytest.mark.parametrize('where', ['eager', 'jit(vmap)', 'vmap(jit)', 'vmap(jit) cached'])
def test_randomness_different_draws_per_example(where):
    f = cf.vmap(_dropout_row, randomness='different')
    if where == 'jit(vmap)':
        f = cr.jit(f)
    elif where.startswith('vmap(jit)'):
        inner = cr.jit(_dropout_row)
        if where.endswith('cached'):
            inner(ONES[0])                          # traced before, outside the vmap
        f = cf.vmap(inner, randomness='different')
    cr.manual_seed(0)
    a = _rows(f(ONES))
    for i in range(len(a)):
        for j in range(i):
            assert (a[i] != a[j]).any()
    assert 0.4 < (a == 0).mean() < 0.6
    b = _rows(f(ONES))
    assert (a != b).any()                           # fresh numbers at every call
    cr.manual_seed(0)
    np.testing.assert_array_equal(_rows(f(ONES)), a)     # reseeding repeats them


@pytest.mark.parametrize('where', ['eager', 'jit(vmap)', 'vmap(jit)'])
def test_randomness_same_shares_one_draw(where):
    f = cf.vmap(_dropout_row, randomness='same')
    if where == 'jit(vmap)':
        f = cr.jit(f)
    elif where == 'vmap(jit)':
        f = cf.vmap(cr.jit(_dropout_row), randomness='same')
    a = _rows(f(ONES))
    assert (a == a[0]).all() and 0.4 < (a == 0).mean() < 0.6


@pytest.mark.parametrize('draw', [_dropout_row, lambda r: r + cr.randn(400).numpy(),
                                  cr.jit(_dropout_row)], ids=['dropout', 'randn', 'jitted'])
def test_randomness_error_is_the_default_and_names_the_choices(draw):
    with pytest.raises(cr.random.RandomnessError, match="randomness='same'.*'different'"):
        cf.vmap(draw)(ONES)
    np.asarray(cf.vmap(lambda r: r * 2)(ONES))        # no draw, no error


def test_per_example_gradients_see_each_examples_own_mask():
    """grad inside vmap with 'different': each example's gradient is its own mask, and the
    value agrees with it (d sum(dropout(x)) / dx = mask / (1 - p))."""
    x = np.linspace(1.0, 2.0, 6 * 50).reshape(6, 50)
    vg = cf.vmap(cf.grad_and_value(lambda r: cnp.sum(_dropout_row(r) * r)),
                 randomness='different')
    cr.manual_seed(1)
    g, v = vg(x)
    mask = (np.asarray(g) != 0) * 2.0
    np.testing.assert_allclose(g, 2 * x * mask, rtol=1e-12)
    np.testing.assert_allclose(v, np.sum(mask * x * x, axis=1), rtol=1e-12)
    assert len({tuple(m) for m in mask}) == 6


def test_an_ensemble_with_dropout_gets_one_mask_per_model():
    models = [nn.Sequential(nn.Linear(4, 64, dtype=np.float64), nn.Dropout(0.5)) for _ in range(3)]
    for m in models:
        m[0].weight.data[...] = 1.0
        m[0].bias.data[...] = 0.0
    params, buffers = cf.stack_module_state(models)
    x = np.ones((2, 4))
    call = lambda p, b: cf.functional_call(models[0], (p, b), (x,))      # noqa: E731
    out = np.asarray(cf.vmap(call, randomness='different')(params, buffers))
    assert out.shape == (3, 2, 64)
    assert not (out[0] == out[1]).all() and not (out[1] == out[2]).all()
