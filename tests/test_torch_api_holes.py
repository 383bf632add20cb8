"""Everyday PyTorch API that audits found missing: keyword forms of `reshape`/`view`,
`sum_to_size`, `detach_`, the optimizers' implementation switches (`foreach=`, `fused=`, ...),
and chainrule's errors (not NumPy's) for unconvertible input to `cr.tensor` and the operators.
Each is compared with PyTorch 2.13 on the same inputs."""

import numpy as np
import pytest

import chainrule as cr
from chainrule._args import ArgumentError
from chainrule.core import DTypeError, GradientError, ShapeError

torch = pytest.importorskip('torch')

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4))


def _pair(a=X):
    return cr.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


# --- reshape(shape=), view(size=) -----------------------------------------------------------------

@pytest.mark.parametrize('op, kw, shape', [('reshape', 'shape', (4, 6)),
                                           ('reshape', 'shape', [6, -1]),
                                           ('reshape', 'shape', (24,)),
                                           ('view', 'size', (3, 8)), ('view', 'size', (24,)),
                                           ('view', 'size', [-1, 2])])
def test_shape_keywords_match_torch(op, kw, shape):
    x, tx = _pair()
    w = RNG.standard_normal(torch.tensor(X).reshape(shape).shape)
    out, tout = getattr(x, op)(**{kw: shape}), getattr(tx, op)(**{kw: shape})
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy())
    (out * cr.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize('call', [lambda x: x.reshape(size=(4, 6)),      # view's keyword
                                  lambda x: x.view(shape=(4, 6)),        # reshape's keyword
                                  lambda x: x.reshape(4, 6, shape=(4, 6)),
                                  lambda x: x.view(4, 6, size=(4, 6)),
                                  lambda x: x.reshape(shape=(4, 6), order='F'),
                                  lambda x: x.reshape(shape=24), lambda x: x.view(size=24)])
def test_wrong_shape_keyword_is_refused_naming_the_op(call):
    with pytest.raises(Exception):
        call(torch.tensor(X))                  # PyTorch refuses each of them too
    with pytest.raises(ArgumentError, match=r'^(reshape|view)\(\)'):
        call(cr.tensor(X))


def test_view_dtype_keyword_is_refused_with_the_reason():
    torch.tensor(X).view(dtype=torch.int64)    # PyTorch reinterprets the bytes
    with pytest.raises(TypeError, match='astype'):
        cr.tensor(X).view(dtype=np.int64)


# --- sum_to_size, detach_ ---------------------------------------------------------------------------

@pytest.mark.parametrize('size', [((3, 1),), (1, 4), ((2, 1, 4),), (4,), ((2, 3, 4),), ((),)])
def test_sum_to_size_matches_torch(size):
    x, tx = _pair()
    out, tout = x.sum_to_size(*size), tx.sum_to_size(*size)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12)
    w = RNG.standard_normal(tuple(tout.shape))
    (out * cr.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize('size', [(5,), (2, 1), (1, 2, 3, 4), (3, 4, 1)])
def test_sum_to_size_refuses_a_size_that_does_not_expand(size):
    with pytest.raises(RuntimeError, match='expandable'):
        torch.tensor(X).sum_to_size(*size)
    with pytest.raises(ShapeError, match=r'sum_to_size\(\).*not expandable'):
        cr.tensor(X).sum_to_size(*size)


def test_detach_in_place_matches_torch():
    x, tx = _pair()
    y, ty = x * 2, tx * 2
    assert y.detach_() is y and ty.detach_() is ty
    for a, t in ((y, ty), (x.detach_(), tx.detach_())):
        assert (a.requires_grad, a.is_leaf, a.grad_fn) == (t.requires_grad, t.is_leaf, None)
        np.testing.assert_allclose(a.numpy(), t.numpy())
    z = y * 3                                     # y is a constant now: nothing to record
    assert not z.requires_grad


def test_detach_in_place_refuses_a_view():
    x, tx = _pair()
    with pytest.raises(RuntimeError, match="Can't detach views in-place"):
        (tx * 2)[0].detach_()
    with pytest.raises(GradientError, match=r"detach_\(\).*view.*detach\(\)"):
        (x * 2)[0].detach_()


# --- optimizers: foreach=, fused=, capturable=, differentiable= -------------------------------------

_OPTS = {'SGD': dict(lr=0.1, momentum=0.9), 'Adam': dict(lr=0.1), 'AdamW': dict(lr=0.1),
         'NAdam': dict(lr=0.1), 'Adamax': dict(lr=0.1), 'RMSprop': dict(lr=0.01),
         'Adagrad': dict(lr=0.1), 'Adadelta': dict(lr=1.0)}
_FUSED = ('SGD', 'Adam', 'AdamW', 'Adagrad')
_CAPTURABLE = ('Adam', 'AdamW', 'NAdam', 'Adamax', 'RMSprop', 'Adadelta')


def _run(lib, name, switches, steps=3):
    w0 = np.linspace(-1.0, 1.0, 5)
    if lib is torch:
        p = torch.nn.Parameter(torch.tensor(w0))
        opt = getattr(torch.optim, name)([p], **_OPTS[name], **switches)
    else:
        p = cr.tensor(w0, requires_grad=True)
        opt = getattr(cr.optim, name)([p], **_OPTS[name], **switches)
    for _ in range(steps):
        opt.zero_grad()
        ((p - 0.3) ** 4).sum().backward()
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize('name', sorted(_OPTS))
@pytest.mark.parametrize('switches', [dict(foreach=None), dict(foreach=True),
                                      dict(foreach=False), dict(fused=None),
                                      dict(fused=False), dict(fused=True),
                                      dict(differentiable=False), dict(capturable=False)])
def test_optimizer_switches_match_torch(name, switches):
    (k, v), = switches.items()
    if (k == 'fused' and name not in _FUSED) or (k == 'capturable' and name not in _CAPTURABLE):
        with pytest.raises(TypeError, match='unexpected keyword'):
            _run(torch, name, switches)
        with pytest.raises(ArgumentError, match=rf'{name}\(\): unexpected keyword.*{k}'):
            _run(cr, name, switches)
        return
    # (NAdam's iterates differ from PyTorch's in the last few digits with or without switches)
    np.testing.assert_allclose(_run(cr, name, switches), _run(torch, name, switches),
                               rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize('name, switches, match', [
    ('Adam', dict(capturable=True), 'CUDA graphs'),
    ('RMSprop', dict(capturable=True), 'CUDA graphs'),
    ('SGD', dict(fused=True, foreach=True), 'together'),
    ('Adam', dict(fused=True, foreach=True), 'together'),
])
def test_optimizer_switches_torch_refuses_on_the_cpu_are_refused(name, switches, match):
    with pytest.raises((RuntimeError, AssertionError, TypeError, ValueError)):
        _run(torch, name, switches)
    with pytest.raises(ArgumentError, match=rf'^{name}\(\): .*{match}'):
        _run(cr, name, switches)


def test_optimizer_refuses_a_switch_that_is_not_a_bool():
    # (PyTorch takes any truthy value; a string here is more likely a mistake)
    with pytest.raises(ArgumentError, match=r'^SGD\(\): foreach=.* None, True or False'):
        cr.optim.SGD([cr.tensor([1.0], requires_grad=True)], foreach='yes')


def test_optimizer_refuses_differentiable_true():
    # PyTorch records the step for autograd; chainrule's steps are not recorded: refused
    with pytest.raises(ArgumentError, match=r'^Adam\(\): differentiable=True .*not recorded'):
        cr.optim.Adam([cr.tensor([1.0], requires_grad=True)], differentiable=True)


def test_lbfgs_takes_no_switches_as_torch():
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(TypeError):
        torch.optim.LBFGS([p], foreach=True)
    with pytest.raises(TypeError):
        cr.optim.LBFGS([cr.tensor([1.0, 1.0], requires_grad=True)], foreach=True)


# --- data that is no array of numbers, operands that are no numbers ----------------------------------

@pytest.mark.parametrize('data, match', [
    ([[1, 2], [3]], r'ragged \(lengths 2 and 1 at dim 1\)'),
    ([[[1], [2]], [[3], [4, 5]]], r'ragged \(lengths 2 and 1 at dim 2\)'),
    ([1, [2, 3]], r'ragged \(both numbers and lists at dim 1\)'),
    ('abc', 'holding a str'), (['a', 'b'], 'holding a str'), (None, 'holding a NoneType'),
    ([1.0, None], 'holding a NoneType'), ([object()], 'holding a object'),
])
def test_tensor_of_unconvertible_data_is_refused(data, match):
    with pytest.raises((TypeError, ValueError, RuntimeError)):
        torch.tensor(data)
    with pytest.raises(ArgumentError, match=r'^tensor\(\): .*' + match) as e:
        cr.tensor(data)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize('op, name', [
    (lambda t: t * 'a', 'mul'), (lambda t: 'a' * t, 'mul'), (lambda t: t + None, 'add'),
    (lambda t: None + t, 'add'), (lambda t: t - 'a', 'sub'), (lambda t: t / None, 'div'),
    (lambda t: t ** None, 'pow'), (lambda t: t < None, 'less'), (lambda t: t + b'x', 'add'),
    (lambda t: t @ 'a', 'matmul'), (lambda t: None @ t, 'matmul'),
])
@pytest.mark.parametrize('dtype', ['float64', 'int64'])
def test_operator_with_a_non_number_is_refused_naming_op_and_types(op, name, dtype):
    with pytest.raises(TypeError):
        op(torch.ones(2, dtype=getattr(torch, dtype)))
    with pytest.raises(DTypeError, match=rf'^{name}: cannot (combine an array of dtype {dtype} '
                                         r'.* with|multiply by) a (str|NoneType|bytes) '):
        op(cr.ones(2, dtype=getattr(cr, dtype)))


def test_equality_with_none_keeps_its_answer():
    # (PyTorch falls back to identity, False/True; chainrule answers elementwise, as NumPy)
    np.testing.assert_array_equal((cr.ones(2) == None).numpy(), [False, False])  # noqa: E711
    np.testing.assert_array_equal((cr.ones(2) != None).numpy(), [True, True])    # noqa: E711


# --- mode under transforms ----------------------------------------------------------------------------

_MODE_X = np.array([[3., 1., 3., 1., 2.], [5., 5., 4., 4., 4.], [2., 2., 2., 2., 2.],
                    [7., 1., 9., 0., 0.]])
_MODE_CASES = [(_MODE_X, 1, False), (_MODE_X, 0, True), (_MODE_X, -1, True),
               (RNG.integers(0, 3, (3, 4, 6)).astype(np.float64), 2, False),
               (RNG.integers(0, 3, (3, 4, 6)).astype(np.float64), 1, True),
               (RNG.integers(-2, 2, (5, 7)), 1, False), (RNG.random((4, 6)) < 0.5, 0, False),
               (np.array([4., 1., 4., 1.]), 0, False)]


def _torch_mode(a, dim, keepdim):
    out = torch.tensor(a).mode(dim, keepdim)
    return out.values.numpy(), out.indices.numpy()


@pytest.mark.parametrize('a, dim, keepdim', _MODE_CASES)
def test_mode_under_jit_and_eager_matches_torch(a, dim, keepdim):
    tv, ti = _torch_mode(a, dim, keepdim)
    eager = cr.tensor(a).mode(dim, keepdim)
    jitted = cr.jit(lambda x: tuple(x.mode(dim, keepdim)))(cr.tensor(a))
    for v, i in (tuple(eager), jitted):
        np.testing.assert_array_equal(v.numpy(), tv)
        np.testing.assert_array_equal(i.numpy(), ti)
        assert v.numpy().dtype == tv.dtype and i.numpy().dtype == np.int64


@pytest.mark.parametrize('a, dim, keepdim', [c for c in _MODE_CASES
                                              if c[0].ndim >= 2 and c[1] != 0])
def test_mode_under_vmap_matches_torch(a, dim, keepdim):
    # vmap over the first axis: each row's mode along the (remaining) dim
    d = dim - 1 if dim > 0 else dim
    v, i = cr.func.vmap(lambda r: tuple(r.mode(d, keepdim)))(cr.tensor(a))
    tv, ti = _torch_mode(a, dim, keepdim)
    np.testing.assert_array_equal(v.numpy(), tv)
    np.testing.assert_array_equal(i.numpy(), ti)


@pytest.mark.parametrize('dim', [0, 1])
def test_mode_gradient_under_grad_matches_torch(dim):
    w = RNG.standard_normal(_MODE_X.shape[1 - dim])
    g = cr.func.grad(lambda x: (x.mode(dim).values * cr.tensor(w)).sum())(cr.tensor(_MODE_X))
    tx = torch.tensor(_MODE_X, requires_grad=True)
    (tx.mode(dim).values * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(g.numpy(), tx.grad.numpy())


def test_mode_of_an_empty_dim_under_jit_is_refused():
    with pytest.raises(IndexError, match=r'mode\(\).*size 0'):
        cr.jit(lambda x: tuple(x.mode(1)))(cr.zeros(2, 0))
