"""Pooling against PyTorch on the same inputs: `max_pool1d/2d/3d` with `ceil_mode`,
`dilation` and `return_indices` (values, indices, gradients routed to the first maximum at
ties), `avg_pool1d/2d/3d`, `lp_pool*`, adaptive max/avg pooling, `max_unpool*`, their modules,
under `grad`/`vmap`/`jit`, and PyTorch's argument errors (as clear chainrule errors)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
from chainrule import nn
from chainrule.core import ShapeError
from chainrule.nn import functional as F
from test_nn import DTYPES, TOL, _torch

BAD = (ValueError, ShapeError, TypeError)


def _ties(rng, shape, dtype=np.float64):
    """Many exact ties (small integers and halves) so which maximum wins is tested."""
    return (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)


def _compare(cr_fn, t_fn, x, dtype, exact=False, seed=1):
    """Values (and indices, when a pair is returned) and the gradient of sum(out * g) of
    `cr_fn` and `t_fn` on the same `x`."""
    torch = _torch()
    tol = dict(rtol=0, atol=0) if exact else TOL[dtype]
    x = x.astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    want = t_fn(tx)
    xt = cr.tensor(x, requires_grad=True)
    got = cr_fn(xt)
    if isinstance(want, tuple):
        (want, widx), (got, gidx) = want, got
        assert gidx.dtype == np.int64
        np.testing.assert_array_equal(gidx.numpy(), widx.numpy())
    assert got.dtype == dtype and got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), **tol)
    g = np.random.default_rng(seed).standard_normal(got.shape).astype(dtype)
    (want * torch.tensor(g)).sum().backward()
    (got * g).sum().backward()
    # (overlapping windows add gradients up in another order than PyTorch)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **TOL[dtype])


# --- max pooling --------------------------------------------------------------------------------

MAX_CASES = [
    # (nd, shape, kwargs)
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (1, (2, 3, 10), dict(kernel_size=2, dilation=3, padding=1)),
    (1, (3, 9), dict(kernel_size=4, stride=3, ceil_mode=True)),                # unbatched
    (2, (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (2, (2, 3, 7, 8), dict(kernel_size=(2, 3), stride=(2, 1), dilation=(2, 1), padding=(1, 1))),
    (2, (2, 2, 6, 6), dict(kernel_size=2)),                                     # the primitive
    (2, (2, 2, 5, 7), dict(kernel_size=3, stride=1, padding=1)),                # the primitive
    (2, (2, 9, 10), dict(kernel_size=3, stride=2, ceil_mode=True, dilation=2)),  # unbatched
    (3, (1, 2, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (3, (1, 2, 6, 5, 7), dict(kernel_size=(2, 3, 2), dilation=(2, 1, 2), stride=(1, 2, 2))),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('indices', [False, True])
@pytest.mark.parametrize('nd,shape,kw', MAX_CASES)
def test_max_pool_matches_torch_with_ties(nd, shape, kw, indices, dtype):
    torch = _torch()
    x = _ties(np.random.default_rng(0), shape)
    name = f'max_pool{nd}d'
    _compare(lambda t: getattr(F, name)(t, return_indices=indices, **kw),
             lambda t: getattr(torch.nn.functional, name)(t, return_indices=indices, **kw),
             x, dtype, exact=True)


@pytest.mark.filterwarnings('ignore:invalid value:RuntimeWarning')   # the test's sum of -infs
def test_max_pool_of_minus_inf_sends_the_gradient_to_the_input_not_the_padding():
    # an input of -inf: the padding (-inf too in PyTorch's view) never wins
    torch = _torch()
    x = np.full((1, 1, 3), -np.inf)
    x[0, 0, 2] = 1.0
    for v, ri in [(x, True), (np.full((1, 1, 3), -np.inf), True), (x, False),
                  (np.full((1, 1, 3), -np.inf), False),                  # the primitive too
                  (np.full((1, 1, 3, 4), -np.inf), False), (np.full((1, 1, 3, 4), -np.inf), True)]:
        name = f'max_pool{v.ndim - 2}d'
        _compare(lambda t: getattr(F, name)(t, 3, 1, 1, return_indices=ri),
                 lambda t: getattr(torch.nn.functional, name)(t, 3, 1, 1, return_indices=ri),
                 v, np.float64, exact=True)


def _torch_or_same_refusal(torch, name, x, kw):
    """PyTorch's `name(x, **kw)`, or None when PyTorch refuses the arguments -- after checking
    that chainrule refuses them too, with an error naming the op."""
    try:
        return getattr(torch.nn.functional, name)(torch.tensor(x), **kw)
    except RuntimeError:
        with pytest.raises(BAD, match=name):
            getattr(F, name)(x, **kw)
        return None


@settings(max_examples=60, deadline=None)
@given(nd=st.sampled_from([1, 2]), size=st.integers(1, 9), k=st.integers(1, 4),
       s=st.integers(1, 4), p=st.integers(0, 2), d=st.integers(1, 3), ceil=st.booleans(),
       seed=st.integers(0, 99))
def test_max_pool_sizes_and_ceil_mode_edges_match_torch(nd, size, k, s, p, d, ceil, seed):
    torch = _torch()
    shape = (1, 2) + (size, size + 1)[:nd]
    x = _ties(np.random.default_rng(seed), shape)
    kw = dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil,
              return_indices=True)
    name = f'max_pool{nd}d'
    want = _torch_or_same_refusal(torch, name, x, kw)
    if want is None:
        return
    if not np.isfinite(want[0].numpy()).all():
        return          # a window of padding only: PyTorch gives -inf, chainrule an error
    got, idx = getattr(F, name)(x, **kw)
    np.testing.assert_array_equal(got, want[0].numpy())
    np.testing.assert_array_equal(idx, want[1].numpy())
    g = np.random.default_rng(seed).standard_normal(got.shape)
    tx = torch.tensor(x, requires_grad=True)
    (getattr(torch.nn.functional, name)(tx, **kw)[0] * torch.tensor(g)).sum().backward()
    grad = cr.grad(lambda x: cr.numpy.sum(getattr(F, name)(x, **kw)[0] * g))(x)
    np.testing.assert_array_equal(grad, tx.grad.numpy())


@settings(max_examples=50, deadline=None)
@given(nd=st.sampled_from([1, 2]), size=st.integers(1, 9), k=st.integers(1, 4),
       s=st.integers(1, 4), p=st.integers(0, 2), ceil=st.booleans(), cip=st.booleans(),
       seed=st.integers(0, 99))
def test_avg_pool_sizes_and_ceil_mode_edges_match_torch(nd, size, k, s, p, ceil, cip, seed):
    torch = _torch()
    shape = (1, 2) + (size, size + 2)[:nd]
    x = np.random.default_rng(seed).standard_normal(shape)
    kw = dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil, count_include_pad=cip)
    name = f'avg_pool{nd}d'
    want = _torch_or_same_refusal(torch, name, x, kw)
    if want is None:
        return
    np.testing.assert_allclose(getattr(F, name)(x, **kw), want.numpy(), **TOL[np.float64])


# --- average, power-average and adaptive pooling ------------------------------------------------

AVG_CASES = [
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                         count_include_pad=False)),
    (1, (3, 10), dict(kernel_size=4, stride=3, padding=2)),
    (2, (2, 3, 7, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                           divisor_override=4)),
    (3, (2, 2, 5, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    (3, (2, 2, 5, 6, 7), dict(kernel_size=(2, 3, 3), stride=(1, 2, 3), padding=(1, 1, 0),
                              count_include_pad=False)),
    (3, (2, 5, 6, 7), dict(kernel_size=2, divisor_override=3)),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('nd,shape,kw', AVG_CASES)
def test_avg_pool_matches_torch(nd, shape, kw, dtype):
    torch = _torch()
    x = np.random.default_rng(0).standard_normal(shape)
    name = f'avg_pool{nd}d'
    _compare(lambda t: getattr(F, name)(t, **kw),
             lambda t: getattr(torch.nn.functional, name)(t, **kw), x, dtype)


LP_CASES = [
    (1, (2, 3, 9), 2.0, dict(kernel_size=3, stride=2)),
    (1, (2, 3, 9), 3, dict(kernel_size=2, ceil_mode=True)),
    (2, (2, 3, 7, 8), 2, dict(kernel_size=(2, 3), stride=2, ceil_mode=True)),
    (2, (2, 3, 7, 8), float('inf'), dict(kernel_size=3, stride=2)),
    (3, (1, 2, 4, 5, 6), 1.5, dict(kernel_size=2)),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('nd,shape,p,kw', LP_CASES)
def test_lp_pool_matches_torch(nd, shape, p, kw, dtype):
    torch = _torch()
    x = np.random.default_rng(0).uniform(0.2, 2.0, shape)        # away from pow's kink at 0
    name = f'lp_pool{nd}d'
    _compare(lambda t: getattr(F, name)(t, p, **kw),
             lambda t: getattr(torch.nn.functional, name)(t, p, **kw), x, dtype)


ADAPTIVE_CASES = [(1, (2, 3, 11), 4), (1, (3, 7), 7), (2, (2, 3, 7, 9), (3, 4)),
                  (2, (2, 3, 7, 9), (None, 2)), (2, (3, 5, 5), 5), (3, (1, 2, 5, 6, 7), (2, 3, 4))]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('nd,shape,size', ADAPTIVE_CASES)
def test_adaptive_pools_match_torch(nd, shape, size, dtype):
    torch = _torch()
    x = _ties(np.random.default_rng(0), shape)
    for indices in (False, True):
        _compare(lambda t: getattr(F, f'adaptive_max_pool{nd}d')(t, size, indices),
                 lambda t: getattr(torch.nn.functional, f'adaptive_max_pool{nd}d')(
                     t, size, indices), x, dtype, exact=True)
    _compare(lambda t: getattr(F, f'adaptive_avg_pool{nd}d')(t, size),
             lambda t: getattr(torch.nn.functional, f'adaptive_avg_pool{nd}d')(t, size),
             x, dtype)


# --- unpooling ----------------------------------------------------------------------------------

UNPOOL_CASES = [
    (1, (2, 3, 11), dict(kernel_size=3, stride=2, padding=1), None),
    (2, (2, 3, 7, 8), dict(kernel_size=2), (7, 8)),
    (2, (2, 3, 7, 8), dict(kernel_size=3, stride=1, padding=1), None),     # repeated indices
    (2, (3, 6, 6), dict(kernel_size=2, stride=2), (1, 3, 7, 7)),
    (3, (1, 2, 5, 6, 4), dict(kernel_size=2, stride=2), (5, 6, 4)),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('nd,shape,kw,size', UNPOOL_CASES)
def test_max_unpool_after_max_pool_matches_torch(nd, shape, kw, size, dtype):
    torch = _torch()
    x = _ties(np.random.default_rng(0), shape)
    pool, unpool = f'max_pool{nd}d', f'max_unpool{nd}d'

    def ours(t):
        y, i = getattr(F, pool)(t, return_indices=True, **kw)
        return getattr(F, unpool)(y * 2.0, i, output_size=size, **kw)

    def theirs(t):
        y, i = getattr(torch.nn.functional, pool)(t, return_indices=True, **kw)
        return getattr(torch.nn.functional, unpool)(y * 2.0, i, output_size=size, **kw)
    _compare(ours, theirs, x, dtype, exact=True)


def test_max_unpool_repeats_each_get_the_gradient_and_bad_indices_fail():
    torch = _torch()
    x, idx = np.array([[[1.0, 1.0, 3.0]]]), np.array([[[1, 1, 4]]])
    _compare(lambda t: F.max_unpool1d(t, idx, 2, output_size=[5]),
             lambda t: torch.nn.functional.max_unpool1d(t, torch.tensor(idx), 2,
                                                        output_size=[5]),
             x, np.float64, exact=True)
    with pytest.raises(ValueError, match='max_unpool1d.*invalid max index 5'):
        F.max_unpool1d(x, np.array([[[0, 1, 5]]]), 2, output_size=[5])
    with pytest.raises(ValueError, match='max_unpool1d: output_size .*between 4 and 8'):
        F.max_unpool1d(x, idx, 2, output_size=[4])
    with pytest.raises(ShapeError, match='max_unpool2d: indices of shape'):
        F.max_unpool2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 3), np.int64), 2)


# --- modules ------------------------------------------------------------------------------------

def test_pooling_modules_match_torch_modules():
    torch = _torch()
    x = _ties(np.random.default_rng(0), (2, 3, 9, 10))
    pairs = [
        (nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True),
         torch.nn.MaxPool2d(3, 2, 1, return_indices=True, ceil_mode=True)),
        (nn.MaxPool2d(2, dilation=2), torch.nn.MaxPool2d(2, dilation=2)),
        (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
         torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
        (nn.LPPool2d(2, 3, 2), torch.nn.LPPool2d(2, 3, 2)),
        (nn.AdaptiveMaxPool2d((4, 3), return_indices=True),
         torch.nn.AdaptiveMaxPool2d((4, 3), return_indices=True)),
        (nn.AdaptiveAvgPool2d(4), torch.nn.AdaptiveAvgPool2d(4)),
    ]
    for ours, theirs in pairs:
        _compare(ours, theirs, x, np.float32, exact=not isinstance(ours, nn.LPPool2d) and
                 not isinstance(ours, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)))
    x1, x3 = x[:, :, 0], x[:, :, :4, None].repeat(3, 3)
    for name, args, kw, v in [('MaxPool1d', (3, 2), dict(ceil_mode=True), x1),
                              ('AvgPool1d', (3, 2, 1), {}, x1),
                              ('AdaptiveAvgPool1d', (3,), {}, x1),
                              ('AdaptiveMaxPool1d', (3,), {}, x1),
                              ('MaxPool3d', (2,), dict(ceil_mode=True), x3),
                              ('AvgPool3d', (2,), {}, x3),
                              ('AdaptiveAvgPool3d', (2,), {}, x3),
                              ('AdaptiveMaxPool3d', (2,), {}, x3),
                              ('LPPool1d', (2, 3), {}, np.abs(x1) + 0.5),
                              ('LPPool3d', (2, 2), {}, np.abs(x3) + 0.5)]:
        _compare(getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw), v,
                 np.float64)
    # MaxUnpool2d, with the pooled size passed on
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    tpool, tunpool = torch.nn.MaxPool2d(2, return_indices=True), torch.nn.MaxUnpool2d(2)
    _compare(lambda t: unpool(*pool(t), output_size=(9, 10)),
             lambda t: tunpool(*tpool(t), output_size=(9, 10)), x, np.float64, exact=True)
    _compare(lambda t: nn.MaxUnpool1d(2)(*nn.MaxPool1d(2, return_indices=True)(t)),
             lambda t: torch.nn.MaxUnpool1d(2)(*torch.nn.MaxPool1d(2, return_indices=True)(t)),
             x1, np.float64, exact=True)
    assert 'ceil_mode=True' in repr(nn.MaxPool2d(2, ceil_mode=True))


# --- transforms ---------------------------------------------------------------------------------

def test_pooling_under_grad_vmap_and_jit_agrees_with_eager():
    rng = np.random.default_rng(0)
    xs = _ties(rng, (3, 2, 2, 7, 8))

    def f(x):
        y, i = F.max_pool2d(x, 3, 2, 1, dilation=1, ceil_mode=True, return_indices=True)
        z = F.max_unpool2d(y, i, 3, 2, 1, output_size=(7, 8))
        a = F.adaptive_max_pool2d(x, (3, 2))
        b = F.max_pool1d(x[:, 0], 2, dilation=2, ceil_mode=True)
        c = F.lp_pool2d(x * x + 1.0, 2, 2, ceil_mode=True)
        return (cr.numpy.sum(z * z) + cr.numpy.sum(a ** 3) + cr.numpy.sum(b * b) +
                cr.numpy.sum(c) + cr.numpy.sum(F.avg_pool1d(x[:, 1], 3, 2, 1, True, False)))

    eager = [cr.grad(f)(x) for x in xs]
    np.testing.assert_allclose(cr.vmap(cr.grad(f))(xs), np.stack(eager), rtol=1e-12)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(xs[0]), eager[0], rtol=1e-12)
    np.testing.assert_allclose(cr.jit(f)(xs[1]), f(xs[1]), rtol=1e-12)
    # indices under vmap and jit equal eager ones
    g = lambda x: F.max_pool3d(x[None], 2, 1, 1, ceil_mode=True, return_indices=True)[1]
    np.testing.assert_array_equal(cr.vmap(g)(xs), np.stack([g(x) for x in xs]))
    np.testing.assert_array_equal(cr.jit(g)(xs[0]), g(xs[0]))
    # second derivatives through the max (a selection: locally linear)
    from chainrule.testing import check_grads
    x = rng.standard_normal((1, 2, 5, 6))
    check_grads(lambda x: F.max_pool2d(x, 2, 2, 1, dilation=2, ceil_mode=True) ** 2, (x,),
                order=2, modes=['fwd', 'rev'])


# --- bad arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize('call,err,match', [
    (lambda x: F.max_pool2d(x, 3, padding=2), ValueError,
     r'max_pool2d: padding \(2, 2\) must be at most half of kernel_size \(3, 3\)'),
    (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError,
     r'max_pool2d: dilation must be greater than zero'),
    (lambda x: F.max_pool2d(x, 2, stride=0), ValueError, 'max_pool2d: stride must be'),
    (lambda x: F.max_pool2d(x, 7), ShapeError,
     r'max_pool2d: input of spatial size \(5, 6\) gives output size \(0, 0\)'),
    (lambda x: F.max_pool3d(x[0, 0], 2), ShapeError,
     r'max_pool3d: input must be \(N, C, D, H, W\)'),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), ValueError, 'max_pool2d: kernel_size must be'),
    (lambda x: F.avg_pool2d(x, 3, padding=2), ValueError, 'avg_pool2d: padding'),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, 'divisor_override'),
    (lambda x: F.lp_pool2d(x, 2, 7), ShapeError, 'lp_pool2d: input of spatial size'),
    (lambda x: F.adaptive_max_pool2d(x, (0, 2)), ValueError,
     'adaptive_max_pool2d: output_size must be'),
    (lambda x: F.max_pool1d(x[0, 0], 2, padding=1, dilation=3), ShapeError,
     'max_pool1d: window 0 .* reads only padding'),
])
def test_bad_pooling_arguments_raise_errors_naming_op_and_shapes(call, err, match):
    x = np.zeros((1, 2, 5, 6))
    if 'reads only padding' in match:
        x = np.zeros((1, 1, 1, 2))
    with pytest.raises(err, match=match):
        call(x)


def test_pooling_module_example_runs():
    import doctest

    from chainrule.nn import pooling
    res = doctest.testmod(pooling, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0


def test_pooling_programs_and_their_gradients_save_and_load(tmp_path):
    # the composites' graphs (constant window indices, argmax, argsort, scatters) round-trip
    x = _ties(np.random.default_rng(0), (2, 2, 7, 8))

    def f(x):
        y, i = F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
        return (F.max_unpool2d(y, i, 3, 2, 1, output_size=(7, 8)), i,
                F.adaptive_max_pool2d(x, (3, 5)), F.avg_pool3d(x[None], 2, ceil_mode=True))

    def loss(x):
        out = f(x)
        return cr.numpy.sum(out[0] ** 2) + cr.numpy.sum(out[2] ** 3) + cr.numpy.sum(out[3])
    for fn in (f, cr.grad(loss)):
        exp = cr.export(fn, x)
        exp.save(tmp_path / 'f.crg')
        got, want = cr.load_graph(tmp_path / 'f.crg')(x), fn(x)
        for a, b in zip(*(cr.tree.tree_flatten(v)[0] for v in (got, want))):
            np.testing.assert_array_equal(a, b)
