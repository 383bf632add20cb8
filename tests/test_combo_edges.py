"""Edges that used to return a wrong value instead of an error (issue 10, class 6; issue 12's
TypeError for complex or boolean `grad` outputs), tested as products: every transform x
argnums pattern, every transform x kind of non-numeric output, every class-label loss x path x
bad target, every differentiation path x integer/boolean cast target x operation after it.

Expected values are analytic (JAX's semantics written out by hand), or PyTorch's on the same
inputs (skipped, with the reason, when PyTorch is absent).
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
import chainrule.nn.functional as F
from chainrule import nn
from chainrule.core import bind
from chainrule.ops.structural import astype_p


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for the loss values')
    torch.set_num_threads(1)
    return torch


# --- duplicate argnums: each requested derivative, as JAX gives it ---------------------------

def f3(a, b):
    return a * b * b          # df/da = b^2, df/db = 2ab; d2f/da2 = 0, d2f/dadb = 2b, d2f/db2 = 2a


def _first(a, b):
    return {0: b * b, 1: 2 * a * b}


def _second(a, b):
    return {(0, 0): 0.0, (0, 1): 2 * b, (1, 0): 2 * b, (1, 1): 2 * a}


ARGNUMS = [(0, 0), (1, 1), (1, 0, 1), (0, 1, 0, 0), (-1, 1)]


@pytest.mark.parametrize('argnums', ARGNUMS)
@pytest.mark.parametrize('transform', ['grad', 'value_and_grad', 'jacrev', 'jacfwd'])
def test_duplicate_argnums_give_each_requested_derivative(transform, argnums):
    a, b = 1.5, 2.0
    res = getattr(cr, transform)(f3, argnums=argnums)(a, b)
    if transform == 'value_and_grad':
        value, res = res
        assert value == pytest.approx(a * b * b)
    want = [_first(a, b)[k % 2] for k in argnums]
    assert len(res) == len(argnums)
    np.testing.assert_allclose(np.array(res, dtype=float), want, rtol=1e-12)


@pytest.mark.parametrize('argnums', ARGNUMS)
def test_duplicate_argnums_hessian(argnums):
    a, b = 1.5, 2.0
    h = cr.hessian(f3, argnums=argnums)(a, b)
    want = [[_second(a, b)[(i % 2, j % 2)] for j in argnums] for i in argnums]
    np.testing.assert_allclose(np.array(h, dtype=float), want, rtol=1e-12)


@pytest.mark.parametrize('transform', ['grad', 'jacrev', 'jacfwd'])
def test_duplicate_argnums_on_arrays_and_pytrees_are_separate_results(transform):
    # the repeated results are equal, and each is the caller's: writing into one leaves the
    # other alone
    p = {'w': np.array([1.0, -2.0]), 'b': np.array(0.5)}
    x = np.array([3.0, 4.0])

    def loss(p, x):
        return cnp.sum(p['w'] * x) + p['b'] ** 2

    g1, g2 = getattr(cr, transform)(loss, argnums=(0, 0))(p, x)
    for g in (g1, g2):
        np.testing.assert_allclose(g['w'], x)
        np.testing.assert_allclose(g['b'], 2 * 0.5)
    g1['w'] *= 0
    np.testing.assert_allclose(g2['w'], x)


# --- outputs grad cannot differentiate: a clear TypeError ------------------------------------

GARBAGE = {
    'None': (None, 'None'),
    'str': ('abc', 'str'),
    'list': ([1.0, 2.0], 'list of 2'),
    'tuple': ((1.0, 2.0), 'has_aux=True'),
    'dict': ({'a': 1.0}, 'dict of 1'),
    'object': (object(), 'object'),
}


@pytest.mark.parametrize('kind', sorted(GARBAGE))
@pytest.mark.parametrize('transform', ['grad', 'value_and_grad'])
@pytest.mark.parametrize('traced', [False, True], ids=['constant', 'traced-inside'])
def test_grad_of_non_scalar_outputs_raises_a_type_error(transform, kind, traced):
    out, says = GARBAGE[kind]

    def fun(v):
        if traced and isinstance(out, list):
            return [v, v * 2]
        if traced and isinstance(out, tuple):
            return (v, v * 2)
        if traced and isinstance(out, dict):
            return {'a': v}
        return out

    with pytest.raises(cr.OutputTypeError, match=f'grad needs fun to return a real scalar.*{says}'):
        getattr(cr, transform)(fun)(1.0)
    # catchable as what JAX and HIPS autograd raise, and as chainrule's GradientError
    assert issubclass(cr.OutputTypeError, TypeError)
    assert issubclass(cr.OutputTypeError, cr.GradientError)


@pytest.mark.parametrize('out,says', [
    (lambda v: v * 1j, 'holomorphic=True'),
    (lambda v: v > 0, 'dtype bool'),
    (lambda v: cnp.sum(v).astype(np.int32), 'dtype int32'),
    (lambda v: v * cnp.ones(3), r'shape \(3,\)'),
], ids=['complex', 'bool', 'int', 'non-scalar'])
def test_grad_of_complex_boolean_integer_or_vector_output_is_a_type_error(out, says):
    with pytest.raises(TypeError, match=says):
        cr.grad(out)(1.0)
    with pytest.raises(cr.GradientError, match=says):      # still a GradientError
        cr.value_and_grad(out)(1.0)


@pytest.mark.parametrize('out', [
    lambda v: 'abc', lambda v: np.array(['x', 'y']), lambda v: {'a': [v, 'text']},
    lambda v: object()], ids=['str', 'str-array', 'nested-str', 'object'])
@pytest.mark.parametrize('transform', ['jacrev', 'jacfwd', 'hessian', 'vjp', 'jvp'])
def test_jacobians_vjp_jvp_of_non_numeric_outputs_raise(transform, out):
    def fun(v):
        return out(v)
    fun.__name__ = 'myfun'
    with pytest.raises(cr.OutputTypeError, match='needs myfun to return arrays or numbers'):
        if transform == 'vjp':
            cr.vjp(fun, 1.0)
        elif transform == 'jvp':
            cr.jvp(fun, (1.0,), (1.0,))
        else:
            getattr(cr, transform)(fun)(1.0)


@pytest.mark.parametrize('transform', ['jacrev', 'jacfwd', 'hessian'])
def test_jacobian_of_no_output_or_an_empty_one(transform):
    # JAX: a function returning None has the Jacobian None; an empty output an empty Jacobian
    assert getattr(cr, transform)(lambda v: None)(1.0) is None
    j = getattr(cr, transform)(lambda v: v[:0] * 2.0)(np.ones(3))
    assert j.shape == ((0, 3) if transform != 'hessian' else (0, 3, 3))


# --- class targets out of range: an error naming the target, its position, the classes ------

def _ce(z, t):
    return F.cross_entropy(z, t)


def _nll(z, t):
    return F.nll_loss(F.log_softmax(z), t)


def _ce_none(z, t):
    return cnp.sum(F.cross_entropy(z, t, reduction='none'))


def _nll_sum(z, t):
    return F.nll_loss(F.log_softmax(z), t, reduction='sum')


LOSSES = {'cross_entropy': _ce, 'nll_loss': _nll, 'cross_entropy-none': _ce_none,
          'nll_loss-sum': _nll_sum}


def _eager(loss, z, t):
    return loss(z, t)


def _backward(loss, z, t):
    zt = cr.tensor(z, requires_grad=True)
    loss(zt, t).backward()
    return zt.grad


PATHS = {
    'eager': _eager,
    'backward': _backward,
    'grad': lambda loss, z, t: cr.grad(loss)(z, t),
    'vmap': lambda loss, z, t: cr.vmap(loss)(z[None], t[None]),
    'vmap-grad': lambda loss, z, t: cr.vmap(cr.grad(loss))(z[None], t[None]),
    'jit': lambda loss, z, t: cr.jit(loss)(z, t),
    'jit-grad': lambda loss, z, t: cr.jit(cr.grad(loss))(z, t),
    'jvp': lambda loss, z, t: cr.jvp(lambda v: loss(v, t), (z,), (np.ones_like(z),)),
}


@pytest.mark.parametrize('bad,pos', [(7, 1), (-1, 2), (3, 0), (-100, None)],
                         ids=['too-large', 'negative', 'equal-to-C', 'ignore-index'])
@pytest.mark.parametrize('path', sorted(PATHS))
@pytest.mark.parametrize('name', sorted(LOSSES))
def test_out_of_range_targets_raise_on_every_path(name, path, bad, pos):
    z = np.random.default_rng(1).normal(size=(4, 3))
    t = np.array([0, 1, 2, 1])
    if pos is None:                    # -100 is PyTorch's ignore_index: no error
        t[1] = bad
        PATHS[path](LOSSES[name], z, t)
        return
    t[pos] = bad
    op = name.split('-')[0]
    where = rf'\(0, {pos}\)' if path.startswith('vmap') else str(pos)
    with pytest.raises(cr.IndexOutOfRangeError,
                       match=rf'{op}: target {bad} at position {where} is out of bounds '
                             r'for 3 classes'):
        PATHS[path](LOSSES[name], z, t)


def test_issue_reproductions_for_targets():
    z = np.array([[1.0, 2.0, 3.0]])
    with pytest.raises(IndexError, match='target -1 at position 0'):
        F.cross_entropy(z, [-1])
    with pytest.raises(IndexError, match='target 7 at position 0 is out of bounds for 3'):
        F.nll_loss(F.log_softmax(z), [7])


@pytest.mark.parametrize('reduction', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('ignore_index,targets', [
    (-100, [0, -100, 2, 1]), (1, [0, 1, 2, 1]), (2, [2, 2, 2, 2]), (-100, [0, 1, 2, 1])],
    ids=['default', 'in-range', 'all-ignored', 'none-ignored'])
@pytest.mark.parametrize('loss', ['cross_entropy', 'nll_loss'])
def test_ignore_index_matches_torch(loss, ignore_index, targets, reduction):
    torch = _torch()
    z = np.random.default_rng(2).normal(size=(4, 3))
    t = np.array(targets)
    zt = torch.tensor(z, requires_grad=True)
    if loss == 'cross_entropy':
        want = torch.nn.functional.cross_entropy(zt, torch.tensor(t), reduction=reduction,
                                                 ignore_index=ignore_index)
    else:
        want = torch.nn.functional.nll_loss(torch.log_softmax(zt, 1), torch.tensor(t),
                                            reduction=reduction, ignore_index=ignore_index)
    want.sum().backward()

    def ours(v):
        if loss == 'cross_entropy':
            return F.cross_entropy(v, t, reduction=reduction, ignore_index=ignore_index)
        return F.nll_loss(F.log_softmax(v), t, reduction=reduction, ignore_index=ignore_index)

    zc = cr.tensor(z, requires_grad=True)
    got = ours(zc)
    got.sum().backward()
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(zc.grad.numpy(), zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    # the functional paths agree with the eager one (vmap over a batch of one, jit)
    g = cr.grad(lambda v: cnp.sum(ours(v)))(z)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    gv = cr.vmap(cr.grad(lambda v, tt: cnp.sum(
        F.cross_entropy(v, tt, reduction=reduction, ignore_index=ignore_index)
        if loss == 'cross_entropy' else
        F.nll_loss(F.log_softmax(v), tt, reduction=reduction, ignore_index=ignore_index))))(
            np.stack([z, z]), np.stack([t, t]))
    np.testing.assert_allclose(gv, np.stack([zt.grad.numpy()] * 2), rtol=1e-12, atol=1e-15)
    gj = cr.jit(cr.grad(lambda v: cnp.sum(ours(v))))(z)
    np.testing.assert_allclose(gj, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_one_hot_and_embedding_refuse_out_of_range_labels():
    np.testing.assert_array_equal(F.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(cr.IndexOutOfRangeError, match='one_hot: label 3 at position 1'):
        F.one_hot(np.array([2, 3]), 3)
    with pytest.raises(cr.IndexOutOfRangeError, match=r'one_hot: label -1 at position \(1, 0\)'):
        F.one_hot(np.array([[2], [-1]]), 3)
    emb = nn.Embedding(4, 2, rng=0)
    with pytest.raises(cr.IndexOutOfRangeError, match='embedding: index -1 at position 0 is out of bounds for 4 rows'):
        emb(np.array([-1, 0]))
    with pytest.raises(cr.IndexOutOfRangeError, match='embedding: index 4 at position 1'):
        emb(np.array([0, 4]))


# --- casts to integer or boolean dtypes cut the gradient -------------------------------------

CASTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
         np.bool_]
AFTER = {
    'times-float': lambda c: c * 1.5,
    'to-float-sin': lambda c: cnp.sin(c.astype(np.float64)),
    'to-float32-square': lambda c: c.astype(np.float32) ** 2,
    'sum-then-scale': lambda c: cnp.sum(c) * 0.5 + cnp.zeros(3),
}
X = np.array([0.3, 1.7, 2.2])


def _f(dt, after):
    # the cast path contributes value but no derivative; x**2 beside it keeps a derivative
    return lambda x: cnp.sum(AFTER[after](x.astype(dt))) + cnp.sum(x * x)


def _backward_grad(f, x):
    t = cr.tensor(x, requires_grad=True)
    f(t).backward()
    return t.grad.numpy()


DIFF = {
    'grad': lambda f, x: cr.grad(f)(x),
    'backward': _backward_grad,
    'jvp': lambda f, x: np.array([cr.jvp(f, (x,), (e,))[1] for e in np.eye(3)]),
    'jacfwd': lambda f, x: cr.jacfwd(f)(x),
    'jacrev': lambda f, x: cr.jacrev(f)(x),
    'vmap-grad': lambda f, x: cr.vmap(cr.grad(f))(np.stack([x, x]))[1],
    'jit-grad': lambda f, x: cr.jit(cr.grad(f))(x),
    'grad-jit': lambda f, x: cr.grad(cr.jit(f))(x),
    'grad-of-grad-sum': lambda f, x: cr.grad(lambda v: cnp.sum(cr.grad(f)(v) * v))(x) - 2 * x,
}


@pytest.mark.parametrize('after', sorted(AFTER))
@pytest.mark.parametrize('dt', CASTS, ids=[np.dtype(d).name for d in CASTS])
@pytest.mark.parametrize('path', sorted(DIFF))
def test_integer_and_boolean_casts_cut_the_gradient(path, dt, after):
    g = DIFF[path](_f(dt, after), X)
    # d/dx (piecewise constant + sum x^2) = 2x (for grad-of-grad-sum: d/dx sum(2x * x) - 2x = 2x)
    np.testing.assert_allclose(np.asarray(g, dtype=float), 2 * X, rtol=1e-12)


def test_issue_reproduction_for_casts():
    g = cr.grad(lambda x: cnp.sum(x.astype(np.int64) * 1.5))(X)
    np.testing.assert_array_equal(g, np.zeros(3))
    t = cr.tensor(X, requires_grad=True)
    c = t.astype(np.int64)
    assert not c.requires_grad            # PyTorch: x.long().requires_grad is False
    (c * 1.5 + t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.ones(3))


@pytest.mark.parametrize('dt', [np.int32, np.uint8, np.bool_])
def test_the_astype_primitive_rules_themselves_give_zero(dt):
    # binding the primitive directly (as a loaded graph does) skips the wrapper's detaching:
    # its VJP and JVP rules are zero for an integer or boolean target
    dt = np.dtype(dt)
    g = cr.grad(lambda x: cnp.sum(bind(astype_p, x, dtype=dt) * 2.0 + x))(X)
    np.testing.assert_array_equal(g, np.ones(3))
    _, t = cr.jvp(lambda x: bind(astype_p, x, dtype=dt) * 2.0, (X,), (np.ones(3),))
    np.testing.assert_array_equal(t, np.zeros(3))


def test_float_and_complex_casts_keep_the_gradient():
    g = cr.grad(lambda x: cnp.sum(x.astype(np.float32) ** 2))(X)
    np.testing.assert_allclose(g, 2 * X, rtol=1e-6)
    g = cr.grad(lambda x: cnp.sum(cnp.abs(x.astype(np.complex128) * 1j) ** 2))(X)
    np.testing.assert_allclose(g, 2 * X, rtol=1e-12)


# --- a reduction's dtype= casts before accumulating, as NumPy does ----------------------------

REDUCTIONS = ['sum', 'mean', 'prod', 'cumsum', 'cumprod', 'nansum', 'nanmean']
R_DTYPES = [np.int64, np.int8, np.uint8, np.bool_, np.float32, np.float64]


@pytest.mark.parametrize('dt', R_DTYPES, ids=[np.dtype(d).name for d in R_DTYPES])
@pytest.mark.parametrize('name', REDUCTIONS)
def test_reduction_dtype_matches_numpy_and_integer_ones_cut_the_gradient(name, dt):
    x = np.array([0.3, 1.7, 2.2, 1.6])
    try:
        want = getattr(np, name)(x, dtype=dt)
    except TypeError:
        pytest.skip(f'NumPy refuses np.{name}(float array, dtype={np.dtype(dt).name})')
    fn = getattr(cnp, name)
    got = fn(x, dtype=dt)
    traced, _ = cr.jvp(lambda v: fn(v, dtype=dt), (x,), (np.ones(4),))
    for v in (got, traced):
        assert np.asarray(v).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(np.asarray(v, dtype=float), np.asarray(want, dtype=float),
                                   rtol=1e-6)
    if np.dtype(dt).kind in 'biu':
        g = cr.grad(lambda v: cnp.sum(fn(v, dtype=dt) * 1.5) + cnp.sum(v))(x)
        np.testing.assert_array_equal(g, np.ones(4))
