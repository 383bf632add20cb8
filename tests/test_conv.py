"""The convolution family and batch normalisation against PyTorch: `conv1d`, `conv2d` (groups,
dilation, string padding, padding modes), `conv_transpose2d`, `avg_pool2d`,
`adaptive_avg_pool2d`, `interpolate` (nearest), `batch_norm` and their modules; values and
gradients (input, weight, bias) over grids of options in float32 and float64, PyTorch state
dicts loading, higher derivatives of the primitives (`unfold`, `fold`, `conv2d`, `max_pool2d`,
`pool_scatter`, `pool_gather`, `batch_norm`), and `jit`/`vmap`/`grad` agreeing with eager."""

import itertools
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F
from chainrule.testing import check_grads
from test_nn import DTYPES, TOL, _torch

# torch notes that it pads a copy for 'same' with an even kernel; so do we
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _rand(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def compare_fn(ours, theirs, arrays, dtype, seed=1):
    """`ours(*tensors)` against `theirs(*torch_tensors)`: outputs, and the gradients of
    sum(out * R) for every array that is not None."""
    torch = _torch()
    xs = [None if a is None else cr.tensor(a, requires_grad=True) for a in arrays]
    txs = [None if a is None else torch.from_numpy(a.copy()).requires_grad_(True)
           for a in arrays]
    out, tout = ours(*xs), theirs(*txs)
    tol = TOL[dtype]
    assert out.dtype == dtype
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    r = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    (out * r).sum().backward()
    (tout * torch.from_numpy(r)).sum().backward()
    for i, (x, tx) in enumerate(zip(xs, txs)):
        if x is not None:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol,
                                       err_msg=f'gradient of argument {i}')


def compare_module(ours, theirs, x, dtype):
    """Load our state dict into the torch module, then compare outputs and the gradients of
    the input and of every parameter."""
    torch = _torch()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    xt = cr.tensor(x, requires_grad=True)
    txt = torch.from_numpy(x.copy()).requires_grad_(True)
    out, tout = ours(xt), theirs(txt)
    tol = TOL[dtype]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    r = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    (out * r).sum().backward()
    (tout * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), txt.grad.numpy(), **tol)
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), **tol, err_msg=name)


# --- conv2d and conv1d ------------------------------------------------------------------------

# (input shape, weight shape, stride, padding, dilation, groups, bias)
CONV2D = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 0, 1, 1, True),
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 2), 1, 1, False),
    ((2, 2, 9, 8), (3, 2, 3, 3), 1, 2, 2, 1, True),
    ((1, 2, 9, 10), (2, 2, 2, 3), (2, 3), (0, 1), (3, 2), 1, True),
    ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 1, 2, True),
    ((2, 4, 7, 6), (4, 1, 3, 3), 2, 1, 1, 4, True),           # depthwise
    ((1, 6, 8, 7), (9, 2, 2, 3), (1, 2), 1, (2, 1), 3, False),
    ((2, 2, 5, 5), (3, 2, 4, 4), 1, 'same', 1, 1, True),      # odd total: extra after
    ((2, 2, 7, 6), (3, 2, 3, 2), 1, 'same', 2, 1, True),
    ((2, 4, 5, 6), (4, 2, 3, 3), 1, 'valid', 1, 2, True),
]


# (input shape, weight shape, stride, padding, dilation, groups, bias)
CONV1D = [
    ((2, 3, 11), (4, 3, 3), 1, 0, 1, 1, True),
    ((2, 3, 11), (4, 3, 2), 2, 1, 1, 1, False),
    ((2, 4, 12), (6, 2, 3), 1, 2, 3, 2, True),
    ((3, 4, 9), (4, 1, 5), 1, 'same', 1, 4, True),
    ((2, 2, 10), (3, 2, 4), 1, 'same', 2, 1, True),
    ((2, 2, 10), (3, 2, 4), (3,), 'valid', 1, 1, True),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name,sx,sw,stride,padding,dilation,groups,bias',
                         [('conv2d',) + c for c in CONV2D] + [('conv1d',) + c for c in CONV1D])
def test_conv_matches_torch(name, sx, sw, stride, padding, dilation, groups, bias, dtype):
    ours, theirs = getattr(F, name), getattr(_torch().nn.functional, name)
    x, w = _rand(sx, dtype, 0), _rand(sw, dtype, 1)
    b = _rand(sw[:1], dtype, 2) if bias else None
    compare_fn(lambda x, w, b: ours(x, w, b, stride, padding, dilation, groups),
               lambda x, w, b: theirs(x, w, b, stride, padding, dilation, groups),
               [x, w, b], dtype)


@pytest.mark.parametrize('mode', ['zeros', 'reflect', 'replicate', 'circular'])
@pytest.mark.parametrize('padding', [1, (2, 1), 'same'])
def test_conv2d_module_padding_modes_match_torch(mode, padding):
    torch = _torch()
    ours = nn.Conv2d(4, 6, (3, 4), padding=padding, padding_mode=mode, groups=2, dilation=1,
                     dtype=np.float64, rng=0)
    theirs = torch.nn.Conv2d(4, 6, (3, 4), padding=padding, padding_mode=mode, groups=2).double()
    compare_module(ours, theirs, _rand((2, 4, 6, 7), np.float64), np.float64)


@pytest.mark.parametrize('dtype', DTYPES)
def test_conv1d_module_loads_a_torch_state_dict(dtype):
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2,
                             padding_mode='reflect').to(getattr(torch, np.dtype(dtype).name))
    ours = nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, padding_mode='reflect',
                     dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    compare_module(ours, theirs, _rand((3, 4, 13), dtype), dtype)


def test_conv_initialisation_has_pytorchs_bounds():
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in // groups * prod(kernel) (for the
    # transposed convolution: C_out // groups * prod(kernel), PyTorch's weight dim 1)
    for m, fan_in in [(nn.Conv2d(8, 4, 3, groups=4, rng=0), 2 * 9),
                      (nn.Conv1d(6, 4, 5, rng=0), 30),
                      (nn.ConvTranspose2d(4, 6, (2, 3), groups=2, rng=0), 3 * 6)]:
        bound = 1 / np.sqrt(fan_in)
        for p in (m.weight, m.bias):
            v = p.numpy()
            assert v.dtype == np.float32
            assert np.abs(v).max() <= bound and np.abs(v).max() > 0.5 * bound


# --- conv_transpose2d -------------------------------------------------------------------------

# (input shape, weight shape, stride, padding, output_padding, groups, dilation, bias)
CONVT = [
    ((2, 3, 4, 5), (3, 4, 3, 3), 1, 0, 0, 1, 1, True),
    ((2, 3, 4, 5), (3, 2, 3, 2), 2, 1, 1, 1, 1, False),
    ((1, 2, 5, 4), (2, 3, 2, 3), (2, 3), (1, 0), (1, 2), 1, 1, True),
    ((2, 4, 3, 4), (4, 2, 3, 3), 2, 1, 0, 2, 1, True),
    ((2, 2, 4, 4), (2, 3, 3, 2), 1, 1, 0, 1, 2, True),
    ((1, 6, 3, 3), (6, 1, 3, 3), 3, 2, (2, 1), 3, (2, 1), True),
    ((2, 2, 3, 4), (2, 2, 2, 2), 1, 0, 1, 1, 2, True),       # output_padding < dilation only
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('sx,sw,stride,padding,opad,groups,dilation,bias', CONVT)
def test_conv_transpose2d_matches_torch(sx, sw, stride, padding, opad, groups, dilation, bias,
                                        dtype):
    tF = _torch().nn.functional
    x, w = _rand(sx, dtype, 0), _rand(sw, dtype, 1)
    b = _rand((sw[1] * groups,), dtype, 2) if bias else None
    compare_fn(
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, opad, groups, dilation),
        lambda x, w, b: tF.conv_transpose2d(x, w, b, stride, padding, opad, groups, dilation),
        [x, w, b], dtype)


def test_conv_transpose2d_module_and_output_size_match_torch():
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    ours = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = _rand((2, 4, 4, 5), np.float64)
    compare_module(ours, theirs, x, np.float64)
    got = ours(x, output_size=(8, 10)).numpy()
    want = theirs(torch.from_numpy(x), output_size=(8, 10)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# --- pooling and resizing ---------------------------------------------------------------------

# (input shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG = [
    ((2, 3, 6, 7), 2, None, 0, False, True, None),
    ((2, 3, 7, 7), 3, 2, 1, False, True, None),
    ((2, 3, 7, 7), 3, 2, 1, False, False, None),
    ((2, 2, 7, 8), (3, 2), (2, 3), (1, 1), True, True, None),
    ((2, 2, 7, 8), (3, 2), (2, 3), (1, 1), True, False, None),
    ((1, 2, 5, 5), 2, 2, 0, True, True, None),
    ((1, 2, 6, 5), 3, 2, 1, True, False, 4),
    ((1, 2, 5, 6), 4, 3, 2, True, True, None),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('sx,k,s,p,ceil,cip,div', AVG)
def test_avg_pool2d_matches_torch(sx, k, s, p, ceil, cip, div, dtype):
    tF = _torch().nn.functional
    compare_fn(lambda x: F.avg_pool2d(x, k, s, p, ceil, cip, div),
               lambda x: tF.avg_pool2d(x, k, s, p, ceil, cip, div), [_rand(sx, dtype)], dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('sx,size', [((2, 3, 8, 6), (4, 3)), ((2, 3, 7, 5), (3, 2)),
                                     ((2, 3, 5, 7), 1), ((1, 2, 5, 6), (None, 4)),
                                     ((3, 5, 4), (2, 3)), ((1, 2, 3, 3), (5, 4))])
def test_adaptive_avg_pool2d_matches_torch(sx, size, dtype):
    tF = _torch().nn.functional
    compare_fn(lambda x: F.adaptive_avg_pool2d(x, size),
               lambda x: tF.adaptive_avg_pool2d(x, size), [_rand(sx, dtype)], dtype)


INTERP = [
    ((2, 3, 4, 5), dict(scale_factor=2)),
    ((2, 3, 4, 5), dict(scale_factor=(2, 3))),
    ((2, 3, 4, 5), dict(scale_factor=1.5)),
    ((2, 3, 6, 5), dict(scale_factor=0.5)),
    ((2, 3, 4, 5), dict(size=(7, 3))),
    ((2, 3, 4, 5), dict(size=8)),
    ((2, 3, 7), dict(scale_factor=2.5)),
    ((1, 2, 3, 4, 2), dict(size=(5, 4, 3))),
    ((2, 3, 4, 5), dict(scale_factor=1.7, recompute_scale_factor=True)),
    ((2, 3, 5, 4), dict(size=(7, 9), mode='nearest-exact')),
]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('sx,kw', INTERP)
def test_interpolate_nearest_matches_torch(sx, kw, dtype):
    tF = _torch().nn.functional
    compare_fn(lambda x: F.interpolate(x, **kw), lambda x: tF.interpolate(x, **kw),
               [_rand(sx, dtype)], dtype)


def test_pool_and_upsample_modules_match_torch():
    torch = _torch()
    x = _rand((2, 3, 7, 6), np.float64)
    for ours, theirs in [
            (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
             torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)),
            (nn.AdaptiveAvgPool2d((2, 4)), torch.nn.AdaptiveAvgPool2d((2, 4))),
            (nn.Upsample(scale_factor=2), torch.nn.Upsample(scale_factor=2)),
            (nn.Upsample(size=(9, 5)), torch.nn.Upsample(size=(9, 5))),
            (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1))]:
        compare_module(ours, theirs, x, np.float64)


# --- batch normalisation ----------------------------------------------------------------------

@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', [(8, 3), (4, 3, 5), (4, 3, 5, 6), (2, 3, 2, 3, 4)])
@pytest.mark.parametrize('affine', [True, False])
def test_batch_norm_training_matches_torch(shape, affine, dtype):
    torch = _torch()
    tF = torch.nn.functional
    c = shape[1]
    x = _rand(shape, dtype) * 3 + 1
    w, b = (_rand((c,), dtype, 3), _rand((c,), dtype, 4)) if affine else (None, None)
    rm, rv = np.linspace(-1, 1, c).astype(dtype), np.linspace(0.5, 2, c).astype(dtype)
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    compare_fn(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, True, 0.3, 1e-3),
               lambda x, w, b: tF.batch_norm(x, trm, trv, w, b, True, 0.3, 1e-3),
               [x, w, b], dtype)
    np.testing.assert_allclose(rm, trm.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv, trv.numpy(), **TOL[dtype])
    # evaluation: the running statistics normalise
    compare_fn(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.3, 1e-3),
               lambda x, w, b: tF.batch_norm(x, trm, trv, w, b, False, 0.3, 1e-3),
               [x, w, b], dtype)


@pytest.mark.parametrize('kw', [dict(), dict(momentum=None), dict(affine=False),
                                dict(track_running_stats=False), dict(eps=1e-2, momentum=0.5)])
def test_batchnorm2d_trains_and_evaluates_as_torch(kw):
    torch = _torch()
    theirs = torch.nn.BatchNorm2d(3, **kw).double()
    ours = nn.BatchNorm2d(3, dtype=np.float64, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():
        if ours.weight is not None:
            theirs.weight.copy_(torch.linspace(0.5, 1.5, 3))
            theirs.bias.copy_(torch.linspace(-0.2, 0.3, 3))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for step in range(3):
        x = _rand((4, 3, 5, 6), np.float64, step) * (step + 1) + step
        if ours.weight is not None:
            for p in ours.parameters():
                p.grad = None
            theirs.zero_grad()
        compare_module(ours, theirs, x, np.float64)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
    ours.eval()
    theirs.eval()
    x = _rand((2, 3, 4, 4), np.float64, 9)
    np.testing.assert_allclose(np.asarray(ours(x)), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_batchnorm_checks_its_input():
    with pytest.raises(cr.ShapeError, match='BatchNorm2d: expected 4D input'):
        nn.BatchNorm2d(3)(np.ones((2, 3, 4), np.float32))
    with pytest.raises(cr.ShapeError, match=r'running_mean \(4,\) does not fit'):
        nn.BatchNorm2d(4)(np.ones((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        nn.BatchNorm2d(3)(np.ones((1, 3, 1, 1), np.float32))


# --- errors -----------------------------------------------------------------------------------

def test_bad_arguments_raise_clear_errors():
    x = np.ones((1, 4, 5, 5), np.float32)
    with pytest.raises(cr.ShapeError, match=r'conv2d: input \(1, 4, 5, 5\) and weight '
                                            r'\(2, 3, 3, 3\).*groups=1'):
        F.conv2d(x, np.ones((2, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match='padding_mode must be'):
        nn.Conv2d(4, 2, 3, padding_mode='mirror')
    with pytest.raises(ValueError, match='divisible by groups'):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        F.conv2d(x, np.ones((2, 4, 3, 3), np.float32), stride=2, padding='same')
    with pytest.raises(ValueError, match='output_padding .* must be smaller'):
        F.conv_transpose2d(x, np.ones((4, 2, 3, 3), np.float32), stride=2, output_padding=2)
    with pytest.raises(NotImplementedError, match="mode 'area' is not supported"):
        F.interpolate(x, scale_factor=2, mode='area')
    with pytest.raises(ValueError, match='exactly one of size and scale_factor'):
        F.interpolate(x)
    with pytest.raises(cr.ShapeError, match='conv2d: kernel'):
        F.conv2d(x, np.ones((2, 4, 3, 3), np.float32), dilation=3)


# --- higher derivatives and transforms ---------------------------------------------------------

PRIMS = [
    ('conv2d-dilated-grouped', lambda x: F.conv2d(
        x, np.linspace(-1, 1, 4 * 1 * 2 * 3).reshape(4, 1, 2, 3), np.arange(4.0), (2, 1),
        1, (2, 1), 2), (1, 2, 6, 5)),
    ('conv_transpose2d', lambda x: F.conv_transpose2d(
        x, np.linspace(-1, 1, 2 * 3 * 3 * 2).reshape(2, 3, 3, 2), None, 2, 1, 1, 1, (1, 2)),
     (1, 2, 3, 3)),
    ('avg_pool2d', lambda x: F.avg_pool2d(x, 3, 2, 1, True, False), (1, 2, 6, 5)),
    ('adaptive_avg_pool2d', lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (1, 2, 5, 4)),
    ('interpolate', lambda x: F.interpolate(x, scale_factor=1.5), (1, 2, 3, 3)),
    ('batch_norm', lambda x: F.batch_norm(x, None, None, np.array([1.5, -0.5]),
                                          np.array([0.1, 0.2]), True), (3, 2, 2, 2)),
    ('batch_norm-noaffine', lambda x: F.batch_norm(x, None, None, training=True), (4, 2, 3)),
    ('max_pool2d', lambda x: F.max_pool2d(x, 2), (1, 2, 4, 6)),
]


@pytest.mark.parametrize('name,fn,shape', PRIMS, ids=[p[0] for p in PRIMS])
def test_derivatives_to_second_order(name, fn, shape):
    x = np.random.default_rng(0).standard_normal(shape) + 0.1
    check_grads(lambda x: cr.numpy.sin(fn(x)), (x,), order=2, modes=('fwd', 'rev'))


def test_batch_norm_weight_and_bias_derivatives_to_second_order():
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 2))
    check_grads(lambda w, b: cr.numpy.sin(F.batch_norm(x, None, None, w, b, True)),
                (np.array([1.5, -0.5]), np.array([0.1, 0.2])), order=2, modes=('fwd', 'rev'))


def test_unfold_and_fold_with_dilation_are_transposes():
    from chainrule.ops import conv
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    c = conv.unfold(x, (3, 2), (2, 1), (1, 0), (2, 3))
    y = rng.standard_normal(c.shape)
    lhs = np.sum(c * y)
    rhs = np.sum(x * conv.fold(y, x.shape, (3, 2), (2, 1), (1, 0), (2, 3)))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def _net(x, p):
    h = F.conv2d(x, p['w1'], p['b1'], 1, 'same', 2, 2)
    h = F.batch_norm(h, None, None, p['g'], p['be'], True)
    h = F.relu(h)
    h = F.avg_pool2d(h, 2, ceil_mode=True)
    h = F.conv_transpose2d(h, p['wt'], None, 2, 1, 1)
    h = F.interpolate(F.adaptive_avg_pool2d(h, (3, 2)), scale_factor=2)
    return cr.numpy.sum(h * h)


def _params():
    rng = np.random.default_rng(0)
    return {'w1': rng.standard_normal((4, 1, 3, 3)), 'b1': rng.standard_normal(4),
            'g': rng.standard_normal(4), 'be': rng.standard_normal(4),
            'wt': rng.standard_normal((4, 2, 3, 3))}


def test_jit_of_grad_matches_eager_grad():
    x = np.random.default_rng(1).standard_normal((3, 2, 7, 6))
    want = cr.grad(_net, argnums=(0, 1))(x, _params())
    got = cr.jit(cr.grad(_net, argnums=(0, 1)))(x, _params())
    for a, b in zip(cr.tree.tree_leaves(want), cr.tree.tree_leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_vmap_of_grad_matches_a_loop():
    xs = np.random.default_rng(1).standard_normal((3, 2, 2, 7, 6))
    with warnings.catch_warnings():
        warnings.simplefilter('error')              # a looping fallback would warn
        per = cr.vmap(cr.grad(_net, argnums=(0, 1)), in_axes=(0, None))(xs, _params())
    for i in range(3):
        one = cr.grad(_net, argnums=(0, 1))(xs[i], _params())
        for a, b in zip(cr.tree.tree_leaves(per), cr.tree.tree_leaves(one)):
            np.testing.assert_allclose(np.asarray(a)[i], b, rtol=1e-9, atol=1e-11)


def test_vmap_over_per_example_conv_weights():
    rng = np.random.default_rng(2)
    x, ws = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((3, 6, 2, 3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = cr.vmap(lambda w: F.conv2d(x, w, None, 1, 2, 2, 2))(ws)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(out)[k], F.conv2d(x, ws[k], None, 1, 2, 2, 2),
                                   rtol=1e-12)


def test_cnn_with_batchnorm_module_matches_torch_after_training_steps():
    torch = _torch()
    torch.manual_seed(0)
    tnn = torch.nn
    # no conv bias before a BatchNorm: its gradient is zero up to rounding, which Adam would
    # amplify into steps of size lr in either direction
    theirs = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1, bias=False), tnn.BatchNorm2d(4),
                            tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False),
                            tnn.BatchNorm2d(6), tnn.ReLU(), tnn.AdaptiveAvgPool2d(1),
                            tnn.Flatten(), tnn.Linear(6, 3))
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False),
                         nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(6, 3))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    opt = cr.optim.Adam(ours.parameters(), lr=1e-2)
    topt = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
        y = rng.integers(0, 3, 8)
        opt.zero_grad()
        loss = F.cross_entropy(ours(x), y)
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = tnn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert float(loss) == pytest.approx(float(tloss.detach()), rel=1e-5)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=2e-4, atol=2e-5,
                                   err_msg=k)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=2e-4, atol=2e-5)


def test_vmap_over_batchnorm_weights_only():
    # x unbatched (its statistics known eagerly), the weights batched: one normalisation per
    # weight vector
    x = np.random.default_rng(3).standard_normal((4, 2, 3, 3))
    ws = np.random.default_rng(4).standard_normal((3, 2))
    out = cr.vmap(lambda w: F.batch_norm(x, None, None, w, np.zeros(2), True))(ws)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(out)[k],
                                   F.batch_norm(x, None, None, ws[k], np.zeros(2), True),
                                   rtol=1e-12, atol=1e-12)


# --- residuals the eager path keeps for backward -------------------------------------------------
# conv2d keeps x's unfolded columns (its weight VJP reads them instead of unfolding x again)
# whenever a weight gradient may be recorded on concrete values; nowhere else.

def test_conv2d_keeps_its_columns_only_where_a_weight_gradient_is_recorded():
    from chainrule.ops import conv
    x, w = _rand((2, 3, 6, 5), np.float64, 0), _rand((4, 3, 3, 3), np.float64, 1)
    out = F.conv2d(cr.tensor(x), cr.tensor(w, requires_grad=True), None, (2, 1), 1, (1, 2))
    cols = out._node.args[-1]
    np.testing.assert_array_equal(cols, conv.unfold(x, 3, (2, 1), 1, (1, 2)))
    # a frozen weight: nothing kept (only the input's gradient is recorded)
    out = F.conv2d(cr.tensor(x, requires_grad=True), cr.tensor(w), None, 1, 1)
    assert len(out._node.args) == 2
    # under jit the input is abstract, and a concrete one closed over is not baked in either
    for graph in (cr.make_graph(lambda x, w: F.conv2d(x, w, None, 1, 1))(x, w),
                  cr.make_graph(lambda w: F.conv2d(x, w, None, 1, 1))(w)):
        (eqn,) = [e for e in graph.eqns if e.prim.name == 'conv2d']
        assert len(eqn.invars) == 2


@pytest.mark.parametrize('bias', [False, True])
def test_conv2d_derivatives_in_input_weight_and_bias_to_second_order(bias):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, 2, 3)), \
        rng.standard_normal(3)
    f = (lambda x, w, b: cr.numpy.sin(F.conv2d(x, w, b, (2, 1), 1, (1, 2)))) if bias else \
        (lambda x, w: cr.numpy.sin(F.conv2d(x, w, None, 1, (0, 1))))
    check_grads(f, (x, w, b) if bias else (x, w), order=2, modes=('fwd', 'rev'))


def test_vmap_over_the_bias_alone_with_a_concrete_input_and_weight():
    rng = np.random.default_rng(5)
    x, w, bs = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), \
        rng.standard_normal((3, 4))
    out = cr.vmap(lambda b: F.conv2d(x, w, b, 1, 1))(bs)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(out)[k], F.conv2d(x, w, bs[k], 1, 1), rtol=1e-12)
    # and the gradient in the weight per bias, through vmap of grad
    gw = cr.vmap(cr.grad(lambda w, b: cr.numpy.sum(F.conv2d(x, w, b, 1, 1) ** 2)),
                 in_axes=(None, 0))(w, bs)
    for k in range(3):
        np.testing.assert_allclose(
            np.asarray(gw)[k], cr.grad(lambda w: cr.numpy.sum(F.conv2d(x, w, bs[k], 1, 1) ** 2))(w),
            rtol=1e-10)


# batch_norm keeps x - mean (computed once, with the statistics); each of its three rules
# computes the per-channel sums of g and g * (x - mean) it needs.

def test_batch_norm_derivatives_in_input_weight_and_bias_together_to_second_order():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((3, 2, 2, 3)), np.array([1.5, -0.5]), np.array([0.1, 0.2])
    check_grads(lambda x, w, b: cr.numpy.sin(F.batch_norm(x, None, None, w, b, True)),
                (x, w, b), order=2, modes=('fwd', 'rev'))


def test_two_batch_norms_reached_by_one_cotangent_keep_their_own_sums():
    # the sum hands the same cotangent array to both nodes; each has its own residual, so
    # neither may read the other's sums
    torch = _torch()
    x = _rand((4, 3, 5, 5), np.float64) * 2 + 1
    ws = [_rand((3,), np.float64, s) for s in (1, 2)]
    bs = [_rand((3,), np.float64, s) for s in (3, 4)]
    compare_fn(lambda x, w1, b1, w2, b2: F.batch_norm(x, None, None, w1, b1, True)
               + F.batch_norm(x * x, None, None, w2, b2, True),
               lambda x, w1, b1, w2, b2: torch.nn.functional.batch_norm(
                   x, None, None, w1, b1, True) + torch.nn.functional.batch_norm(
                   x * x, None, None, w2, b2, True),
               [x, ws[0], bs[0], ws[1], bs[1]], np.float64)
    out = F.batch_norm(cr.tensor(x, requires_grad=True), None, None, ws[0], bs[0], True)
    np.testing.assert_allclose(out._node.args[-1], (x - x.mean(axis=(0, 2, 3), keepdims=True))
                               .transpose(0, 2, 3, 1).reshape(out._node.args[-1].shape),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('how', ['backward', 'vjp'])
def test_batch_norm_gradient_of_a_reused_cotangent_array_changed_in_place(how):
    # a caller who hands the same gradient array again after changing it in place gets the
    # gradient of the new values (rules that remembered sums by the array's identity did not)
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal((4, 3, 5, 5))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    results = []
    if how == 'backward':
        xt, wt, bt = (cr.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.batch_norm(xt, None, None, wt, bt, True)
        for scale in (1.0, 3.0):
            if scale != 1.0:
                g *= scale
            y.backward(g, retain_graph=True)
            results.append([t.grad.numpy().copy() for t in (xt, wt, bt)])
            for t in (xt, wt, bt):
                t.grad = None
    else:
        _, pullback = cr.vjp(lambda x, w, b: F.batch_norm(x, None, None, w, b, True), x, w, b)
        for scale in (1.0, 3.0):
            if scale != 1.0:
                g *= scale
            results.append([np.array(c) for c in pullback(g)])
    for first, second in zip(*results):
        np.testing.assert_allclose(second, 3.0 * first, rtol=1e-12, atol=1e-12)


# max_pool2d over non-overlapping windows keeps x's windows laid out as contiguous slabs (one
# per window offset); the backward pass finds each window's first maximum from them.

@pytest.mark.parametrize('kernel', [2, (3, 2), (1, 3)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_max_pool2d_with_ties_matches_torch_in_every_mode(kernel, channels_last):
    torch = _torch()
    rng = np.random.default_rng(0)
    # many ties (zeros after a relu, halves), and windows that leave rows/columns out
    x = np.round(np.maximum(rng.standard_normal((2, 3, 7, 8)), 0) * 2) / 2
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    g = rng.standard_normal(F.max_pool2d(x, kernel).shape)
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    ty = torch.nn.functional.max_pool2d(tx, kernel)
    (ty * torch.from_numpy(g)).sum().backward()
    want, want_grad = ty.detach().numpy(), tx.grad.numpy()
    # eager Tensor (the tiles kept), retained graph and a second backward
    xt = cr.tensor(x, requires_grad=True)
    y = F.max_pool2d(xt, kernel)
    assert len(y._node.args) == 2
    np.testing.assert_array_equal(y.numpy(), want)
    (y * g).sum().backward(retain_graph=True)
    np.testing.assert_array_equal(xt.grad.numpy(), want_grad)
    (y * g).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), 2 * want_grad)
    # reverse and forward mode over concrete values (tiles kept), and jit (none)
    out, pull = cr.vjp(lambda x: F.max_pool2d(x, kernel), x)
    np.testing.assert_array_equal(pull(g)[0], want_grad)
    np.testing.assert_array_equal(cr.jit(cr.grad(lambda x: cr.numpy.sum(
        F.max_pool2d(x, kernel) * g)))(x), want_grad)
    t = rng.standard_normal(x.shape)
    _, tout = cr.jvp(lambda x: F.max_pool2d(x, kernel), (x,), (t,))
    np.testing.assert_array_equal(tout, _torch_jvp_of_pool(torch, x, t, kernel))


def _torch_jvp_of_pool(torch, x, t, kernel):
    # t read at torch's winners (the indices max_pool2d returns, flat over H*W)
    out, idx = torch.nn.functional.max_pool2d(torch.from_numpy(np.ascontiguousarray(x)), kernel,
                                              return_indices=True)
    tt = torch.from_numpy(t).flatten(2)
    return tt.gather(2, idx.flatten(2)).view_as(out).numpy()


def test_relu_in_every_memory_layout_equals_numpy_maximum():
    # relu compares against zeros laid out like its input (much faster than against the
    # scalar 0); whatever the layout, values, NaNs, dtype and shape must be NumPy's
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 6, 16, 20))
    base[0, 0, 0, :3] = [np.nan, -0.0, np.inf]
    cases = [base, base.transpose(0, 3, 1, 2), base.transpose(3, 2, 1, 0), base[:, ::2],
             base.astype(np.float32), base.reshape(96, 80).T, base[0, 0, 0]]
    for x in cases:
        got = F.relu(cr.tensor(x)).numpy()
        want = np.maximum(x, 0)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert not np.shares_memory(got, x)
    x = cr.tensor(base.transpose(0, 3, 1, 2), requires_grad=True)
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (base.transpose(0, 3, 1, 2) > 0) * 1.0)


def _block(F_, x, w, g, b):
    """Conv (no bias) -> BatchNorm (batch statistics) -> ReLU -> 2x2 max pool, in either library."""
    h = F_.conv2d(x, w, None, 1, 1)
    h = F_.batch_norm(h, None, None, g, b, True)
    return F_.max_pool2d(F_.relu(h), 2)


def test_conv_batchnorm_relu_pool_block_double_backward_matches_torch():
    # every residual the eager path keeps (columns, centred values, window slabs) is met by
    # create_graph=True (the rules then run traced, recomputing from x) and by retain_graph
    torch = _torch()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((3, 2, 6, 6)), rng.standard_normal((4, 2, 3, 3)),
              rng.standard_normal(4) + 1.5, rng.standard_normal(4)]
    r = rng.standard_normal((3, 4, 3, 3))
    ours = [cr.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    out = _block(F, *ours)
    tout = _block(torch.nn.functional, *theirs)
    loss = (cr.numpy.sin(out) * r).sum()
    tloss = (torch.sin(tout) * torch.from_numpy(r)).sum()
    loss.backward(create_graph=True, retain_graph=True)
    tgrads = torch.autograd.grad(tloss, theirs, create_graph=True)
    grads = [t.grad for t in ours]
    for got, want in zip(grads, tgrads):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-9,
                                   atol=1e-11)
    # a second backward through the retained graph adds the same again
    for t in ours:
        t.grad = None
    loss.backward(retain_graph=True)   # (the gradients' own graph still needs it below)
    for t, want in zip(ours, tgrads):
        np.testing.assert_allclose(t.grad.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-11)
    # second order: the gradient of sum(grad_w^2 + grad_x^2) in every argument
    for t in ours:
        t.grad = None
    ((grads[0] * grads[0]).sum() + (grads[1] * grads[1]).sum()).backward()
    second = torch.autograd.grad((tgrads[0] ** 2).sum() + (tgrads[1] ** 2).sum(), theirs)
    for t, want in zip(ours, second):
        np.testing.assert_allclose(t.grad.numpy(), want.numpy(), rtol=1e-7, atol=1e-9)


def test_conv_batchnorm_relu_pool_block_under_every_transform():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    g, b = rng.standard_normal(3) + 1.5, rng.standard_normal(3)

    def f(x, w, g, b):
        return cr.numpy.sum(cr.numpy.sin(_block(F, x, w, g, b)))

    args = (x, w, g, b)
    check_grads(f, args, order=2, modes=('fwd', 'rev'))
    want = cr.grad(f, argnums=(0, 1, 2, 3))(*args)
    for got in (cr.jit(cr.grad(f, argnums=(0, 1, 2, 3)))(*args),
                cr.jacrev(f, argnums=(0, 1, 2, 3))(*args),
                cr.jacfwd(f, argnums=(0, 1, 2, 3))(*args)):
        for a, e in zip(got, want):
            np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-11)
    xs = rng.standard_normal((3,) + x.shape)
    per = cr.vmap(cr.grad(f, argnums=1), in_axes=(0, None, None, None))(xs, w, g, b)
    for i in range(3):
        np.testing.assert_allclose(np.asarray(per)[i], cr.grad(f, argnums=1)(xs[i], w, g, b),
                                   rtol=1e-9, atol=1e-11)
    hw = cr.hessian(lambda w: f(x, w, g, b))(w)
    np.testing.assert_allclose(hw, cr.jacrev(cr.grad(lambda w: f(x, w, g, b)))(w), rtol=1e-8,
                               atol=1e-10)


# PyTorch's unbatched inputs: (C, H, W) for the 2-D layers, (C, L) for conv1d

def _rand_like_torch(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize('case', ['conv2d', 'conv1d', 'conv_transpose2d', 'max_pool2d',
                                  'avg_pool2d'])
def test_unbatched_inputs_match_pytorch(case):
    torch = _torch()
    TF = torch.nn.functional
    if case == 'conv2d':
        arrays = [_rand_like_torch((3, 7, 6), 1), _rand_like_torch((4, 3, 3, 2), 2),
                  _rand_like_torch((4,), 3)]
        fns = [lambda M: lambda x, w, b: M.conv2d(x, w, b, stride=(2, 1), padding='valid')]
    elif case == 'conv1d':
        arrays = [_rand_like_torch((3, 9), 1), _rand_like_torch((2, 3, 3), 2), None]
        fns = [lambda M: lambda x, w, b: M.conv1d(x, w, None, padding='same')]
    elif case == 'conv_transpose2d':
        arrays = [_rand_like_torch((3, 5, 4), 1), _rand_like_torch((3, 2, 3, 3), 2), None]
        fns = [lambda M: lambda x, w, b: M.conv_transpose2d(x, w, None, stride=2, padding=1)]
    elif case == 'max_pool2d':
        arrays = [_rand_like_torch((3, 8, 6), 1)]
        fns = [lambda M: lambda x: M.max_pool2d(x, 2)]
    else:
        arrays = [_rand_like_torch((3, 8, 7), 1)]
        fns = [lambda M: lambda x: M.avg_pool2d(x, 3, 2, 1)]
    for make in fns:
        compare_fn(make(F), make(TF), arrays, np.float64)


def test_unbatched_input_through_a_module_and_vmap():
    torch = _torch()
    conv = nn.Conv2d(3, 4, 3, padding=1).to(cr.float64)
    x = _rand_like_torch((3, 6, 6), 4)
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    tconv.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                           conv.state_dict().items()})
    want = tconv(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(conv(cr.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)
    xs = np.stack([x, 2 * x])
    got = cr.vmap(conv)(xs)       # each example is an unbatched (C, H, W) input
    np.testing.assert_allclose(np.asarray(got)[1], tconv(torch.from_numpy(2 * x)).detach()
                               .numpy(), rtol=1e-12, atol=1e-12)
