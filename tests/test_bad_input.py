"""Bad input to the API gets a typed chainrule error naming the argument, what was given and
what is accepted -- or the right answer (issue 11)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule import nn, optim
from chainrule.core import ConcretizationError, DTypeError, GradientError


def _sum(x):
    return cnp.sum(x * x)


# --- argnums, static_argnums, static_argnames --------------------------------------------------

@pytest.mark.parametrize('transform', [cr.grad, cr.value_and_grad, cr.jacrev, cr.jacfwd])
@pytest.mark.parametrize('bad', ['a', 0.0, [], None, (0, 'b'), True])
def test_argnums_of_the_wrong_type(transform, bad):
    with pytest.raises(cr.ArgumentError, match=r'argnums=.*int'):
        transform(_sum, argnums=bad)(np.ones(2))


def test_argnums_out_of_range_names_it():
    with pytest.raises(cr.ArgumentError, match=r'argnums=3 but .* 1 positional'):
        cr.grad(_sum, argnums=3)(np.ones(2))


@pytest.mark.parametrize('bad', ['a', 1.0, ('x',)])
def test_static_argnums_of_the_wrong_type(bad):
    with pytest.raises(cr.ArgumentError, match='static_argnums='):
        cr.jit(lambda x, n: x * n, static_argnums=bad)


def test_static_argnums_beyond_the_parameters_is_refused():
    with pytest.raises(cr.ArgumentError, match=r'static_argnums=3.*takes 1 positional'):
        cr.jit(lambda x: x * 2, static_argnums=3)
    with pytest.raises(cr.ArgumentError, match=r"static_argnames names 'm'"):
        cr.jit(lambda x, n: x * n, static_argnames='m')
    with pytest.raises(cr.ArgumentError, match='static_argnames='):
        cr.jit(lambda x, n: x * n, static_argnames=3)


def _power(x, n, flip=False):
    out = x
    for _ in range(n - 1):          # Python control flow: n must be static
        out = out * x
    if flip:
        out = -out
    return out


@pytest.mark.parametrize('make', [
    lambda: cr.jit(_power, static_argnums=(1, 2)),
    lambda: cr.jit(_power, static_argnames=('n', 'flip')),
    lambda: cr.jit(_power, static_argnums=1, static_argnames='flip'),
])
def test_static_arguments_by_position_or_keyword(make):
    f = make()
    x = np.array([1.5, -2.0])
    np.testing.assert_allclose(f(x, 3), x ** 3)
    np.testing.assert_allclose(f(x, n=3), x ** 3)
    np.testing.assert_allclose(f(x, 2, flip=True), -x ** 2)
    np.testing.assert_allclose(f(x, n=2, flip=True), -x ** 2)
    np.testing.assert_allclose(cr.grad(lambda x: cnp.sum(f(x, n=3)))(x), 3 * x ** 2)


def test_unhashable_static_argument_names_the_problem():
    f = cr.jit(lambda x, n: x * len(n), static_argnames='n')
    with pytest.raises(cr.ArgumentError, match='hashable.*list'):
        f(np.ones(2), n=[1, 2])


def test_export_takes_static_argnames(tmp_path):
    exp = cr.export(lambda x, n: _power(x, n), np.ones(2), 3, static_argnames='n')
    p = tmp_path / 'p.crg'
    exp.save(p)
    x = np.array([2.0, -1.0])
    np.testing.assert_allclose(cr.load_graph(p)(x), x ** 3)


# --- concrete values under jit --------------------------------------------------------------------

def test_item_under_jit_is_a_concretization_error():
    with pytest.raises(ConcretizationError, match=r'\.item\(\).*static'):
        cr.jit(lambda a: a[0].item())(np.ones(3))
    with pytest.raises(ConcretizationError, match=r'\.tolist\(\)'):
        cr.jit(lambda a: a.tolist())(np.ones(3))
    assert cr.tensor(np.array([2.5])).sum().item() == 2.5      # eager: the number


@pytest.mark.parametrize('make', [
    lambda a: cnp.zeros(a[0].astype(np.int64)),
    lambda a: cnp.ones((2, a.sum().astype(np.int64))),
    lambda a: cnp.arange(a[0].astype(np.int64)),
    lambda a: cnp.eye(a[0].astype(np.int64)),
    lambda a: cnp.tile(a, a[0].astype(np.int64)),
])
def test_traced_value_as_a_size_is_a_concretization_error(make):
    with pytest.raises(ConcretizationError, match='size or shape argument.*static'):
        cr.jit(make)(np.ones(3))


# --- backward with nothing differentiable ---------------------------------------------------------

def test_backward_through_only_zero_derivative_ops_says_why():
    x = cr.tensor(np.array([0.5, 1.5]), requires_grad=True)
    with pytest.raises(GradientError, match='derivative is zero.*cr.grad returns'):
        cnp.floor(x).sum().backward()
    # and cr.grad gives what the message says: zeros (the derivative of floor away from jumps)
    np.testing.assert_array_equal(cr.grad(lambda v: cnp.sum(cnp.floor(v)))(np.array([0.5, 1.5])),
                                  [0.0, 0.0])


def test_cross_entropy_target_out_of_range_names_it():
    z = cr.tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(cr.IndexOutOfRangeError, match=r'target 3 .* 3 classes'):
        F.cross_entropy(z, np.array([0, 3]))


# --- optimizers ---------------------------------------------------------------------------------

@pytest.mark.parametrize('cls,kwargs,name', [
    (optim.SGD, {'lr': -0.1}, 'lr'), (optim.SGD, {'lr': 0.1, 'momentum': -0.5}, 'momentum'),
    (optim.SGD, {'lr': 0.1, 'weight_decay': -1e-4}, 'weight_decay'),
    (optim.Adam, {'lr': -1e-3}, 'lr'), (optim.Adam, {'betas': (1.5, 0.9)}, 'betas'),
    (optim.Adam, {'betas': (0.9, -0.1)}, 'betas'), (optim.Adam, {'eps': -1e-8}, 'eps'),
    (optim.Adam, {'weight_decay': -1.0}, 'weight_decay'),
    (optim.AdamW, {'weight_decay': -1e-2}, 'weight_decay'),
    (optim.RMSprop, {'alpha': -0.5}, 'alpha'), (optim.RMSprop, {'lr': float('nan')}, 'lr'),
    (optim.SGD, {'lr': 'fast'}, 'lr'),
])
def test_optimizer_hyperparameters_out_of_range(cls, kwargs, name):
    p = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=f'{name}=.*invalid'):
        cls([p], **kwargs)
    with pytest.raises(ValueError, match=f'{name}=.*invalid'):    # in a parameter group too
        cls([{'params': [p], **kwargs}])


def test_valid_edge_hyperparameters_are_accepted():
    # the edges of the valid ranges are accepted, and behave: lr=0 leaves the parameter alone,
    # and Adam with betas=(0, 0) steps by lr * g / |g| = lr * sign(g)
    p = cr.tensor(np.ones(2), requires_grad=True)
    for opt, want in ((optim.SGD([p], lr=0.0, momentum=0.0, weight_decay=0.0), [1.0, 1.0]),
                      (optim.Adam([p], lr=0.1, betas=(0.0, 0.0), eps=0.0), [0.9, 1.1])):
        with cr.no_grad():
            p.data[...] = 1.0
        p.grad = cr.tensor([2.0, -3.0])
        opt.step()
        np.testing.assert_allclose(p.numpy(), want, rtol=1e-12)


# --- operands of the wrong kind -------------------------------------------------------------------

def test_checkpoint_of_a_string_says_what_is_accepted():
    with pytest.raises(DTypeError, match=r"holds a str \('x'\).*arrays, numbers and Tensors"):
        cr.checkpoint(cnp.sin)('x')


@pytest.mark.parametrize('fn', [lambda v, t: v + t, lambda v, t: t + v, lambda v, t: t * v])
def test_value_with_tensor_says_what_is_accepted(fn):
    with pytest.raises(DTypeError, match=r'with a Value.*array, a number or a Tensor'):
        fn(cr.Value(1.0), cr.tensor(np.array(2.0), requires_grad=True))


# --- empty axes -------------------------------------------------------------------------------

def test_softmax_over_an_empty_axis_is_empty():
    for fn in (F.softmax, F.log_softmax):
        x = cr.tensor(np.ones((2, 0)), requires_grad=True)
        out = fn(x, dim=-1)
        assert out.shape == (2, 0)
        out.sum().backward()
        assert x.grad.shape == (2, 0)


def test_logsumexp_of_an_empty_reduction_is_minus_infinity():
    assert cnp.logsumexp(np.ones(0)) == -np.inf              # log(0), as NumPy/SciPy/JAX
    np.testing.assert_array_equal(cnp.logsumexp(np.ones((2, 0)), axis=1), [-np.inf] * 2)
    assert cnp.logsumexp(np.ones((2, 0)), axis=0).shape == (0,)
    assert cnp.logsumexp(np.ones((3, 0), np.float32), axis=1).dtype == np.float32
    assert cnp.logsumexp(np.ones((2, 0)), axis=1, keepdims=True).shape == (2, 1)
    sp = pytest.importorskip('scipy.special', reason='SciPy is the reference for logsumexp')
    np.testing.assert_array_equal(cnp.logsumexp(np.ones((2, 0)), axis=1),
                                  sp.logsumexp(np.ones((2, 0)), axis=1))


# --- rng= ---------------------------------------------------------------------------------------

@pytest.mark.parametrize('rng', [0, [1, 2], np.random.SeedSequence(0), np.random.PCG64(0),
                                 np.random.default_rng(0)])
def test_every_rng_accepts_what_default_rng_accepts(rng):
    x = cr.tensor(np.ones(1000))
    out = F.dropout(x, 0.5, rng=rng).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0} and 300 < (out == 0).sum() < 700
    assert nn.Dropout(0.5, rng=rng)(x).shape == (1000,)
    assert nn.Linear(3, 2, rng=rng).weight.shape == (2, 3)
    from chainrule.scalar import nn as micro
    assert len(micro.MLP(2, [3, 1], rng=rng).parameters()) == 13


def test_dropout_with_a_seed_is_reproducible():
    x = cr.tensor(np.ones(64))
    a, b = F.dropout(x, 0.3, rng=7).numpy(), F.dropout(x, 0.3, rng=7).numpy()
    np.testing.assert_array_equal(a, b)
    keep = np.random.default_rng(7).random(64) >= 0.3
    np.testing.assert_allclose(a, np.where(keep, 1 / 0.7, 0.0))


def test_rng_of_the_wrong_kind_names_it():
    with pytest.raises(TypeError, match="rng='abc' is not accepted"):
        F.dropout(cr.tensor(np.ones(3)), 0.5, rng='abc')
