"""`nn.functional`'s activations and losses, and their modules, against PyTorch 2.13 on the same
float64 inputs: values, and the gradients of `sum(out * w)` with respect to every floating
input. Inputs include the kinks (0, +-1, +-3, 6, +-lambd, thresholds) so that the one-sided
derivative PyTorch picks there is checked too."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for nn.functional')
torch.set_num_threads(1)
TF = torch.nn.functional
RNG = np.random.default_rng(21)
KINKS = np.array([0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, -0.5, 20.0, 2.0])


def _x(shape=(4, 6), kinks=True):
    x = RNG.standard_normal(shape) * 3
    if kinks:
        x.flat[:len(KINKS)] = KINKS
    return x


def _compare(fn_ours, fn_theirs, arrays, rtol=1e-10, atol=1e-12, nondiff=()):
    diff = [a.dtype.kind == 'f' and k not in nondiff for k, a in enumerate(arrays)]
    ours = [cr.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    theirs = [torch.tensor(a, requires_grad=d) for a, d in zip(arrays, diff)]
    o, t = fn_ours(*ours), fn_theirs(*theirs)
    assert tuple(o.shape) == tuple(t.shape)
    np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
    w = RNG.standard_normal(tuple(t.shape))
    (o * cr.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if b.grad is None:
            continue
        assert a.grad is not None, f'input {k}: no gradient'
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f'gradient of input {k}')


ACTIVATIONS = [
    ('elu', {}), ('elu', {'alpha': 0.7}), ('selu', {}), ('celu', {'alpha': 1.5}),
    ('leaky_relu', {}), ('leaky_relu', {'negative_slope': 0.2}), ('relu6', {}),
    ('hardtanh', {}), ('hardtanh', {'min_val': -2.0, 'max_val': 0.5}), ('hardsigmoid', {}),
    ('hardswish', {}), ('silu', {}), ('mish', {}), ('softplus', {}),
    ('softplus', {'beta': 2.0, 'threshold': 5.0}), ('softsign', {}), ('softshrink', {}),
    ('softshrink', {'lambd': 1.0}), ('hardshrink', {}), ('hardshrink', {'lambd': 1.0}),
    ('tanhshrink', {}), ('threshold', {'threshold': 0.5, 'value': -2.0}), ('logsigmoid', {}),
    ('softmin', {'dim': 1}), ('softmin', {'dim': 0}), ('glu', {}), ('glu', {'dim': 0}),
    ('normalize', {}), ('normalize', {'p': 1.0, 'dim': 0}), ('normalize', {'p': 3.0}),
]


@pytest.mark.parametrize('name,kw', ACTIVATIONS, ids=lambda v: str(v))
def test_activation_function(name, kw):
    _compare(lambda x: getattr(F, name)(x, **kw), lambda x: getattr(TF, name)(x, **kw), [_x()],
             rtol=_rtol(name))


def _rtol(name):
    """PyTorch's float64 kernels of celu and hardsigmoid use float32 constants (1/alpha, 1/6):
    their derivatives are off by ~3e-8 relative (ours match the formula to rounding)."""
    return 1e-7 if name.lower() in ('celu', 'hardsigmoid') else 1e-10


MODULES = [
    ('SiLU', ()), ('LeakyReLU', (0.1,)), ('ELU', (0.5,)), ('Softplus', (2.0, 10.0)),
    ('SELU', ()), ('CELU', (0.8,)), ('ReLU6', ()), ('Hardtanh', (-0.5, 2.0)), ('Hardsigmoid', ()),
    ('Hardswish', ()), ('Mish', ()), ('Softsign', ()), ('Softshrink', (0.3,)),
    ('Hardshrink', (0.3,)), ('Tanhshrink', ()), ('Threshold', (0.1, 5.0)), ('LogSigmoid', ()),
    ('Softmin', (1,)), ('GLU', (1,)), ('Unflatten', (1, (2, 3))), ('ZeroPad1d', (2,)),
    ('ConstantPad1d', ((1, 3), 2.5)), ('ReflectionPad1d', ((2, 1),)),
    ('ReplicationPad1d', (2,)), ('CircularPad1d', ((1, 2),)),
    # the basic ones as PyTorch code spells them (`ReLU(inplace=True)` is the usual idiom)
    ('ReLU', ()), ('Tanh', ()), ('Sigmoid', ()), ('GELU', ('tanh',)),
    ('GELU', ()), ('Softmax', (0,)), ('LogSoftmax', (1,)), ('Identity', (54,)),
]


@pytest.mark.parametrize('name,args', MODULES, ids=lambda v: str(v))
def test_activation_module(name, args):
    _compare(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), [_x((3, 6))],
             rtol=_rtol(name))


@pytest.mark.parametrize('name,args', [('ZeroPad2d', ((1, 2, 0, 1),)),
                                       ('ConstantPad2d', (1, -1.0)),
                                       ('ReflectionPad2d', ((1, 2, 2, 0),)),
                                       ('ReplicationPad2d', (2,)), ('CircularPad2d', (1,)),
                                       ('Softmax2d', ())])
def test_2d_modules(name, args):
    _compare(getattr(nn, name)(*args), getattr(torch.nn, name)(*args), [_x((2, 3, 4, 5))])


@pytest.mark.parametrize('pad,mode', [((1, 2), 'constant'), ((2, 0, 1, 1), 'reflect'),
                                      ((1, 1, 2, 2), 'replicate'), ((1, 2, 2, 1), 'circular'),
                                      ((-1, 2, 1, -2), 'constant'), ((1, 1, 1, 1, 1, 0), 'constant')])
def test_pad(pad, mode):
    _compare(lambda x: F.pad(x, pad, mode), lambda x: TF.pad(x, pad, mode), [_x((2, 3, 4, 5))])


def test_parameterised_modules_match_pytorch():
    x = _x((4, 3, 5))
    for ours, theirs in [(nn.PReLU(), torch.nn.PReLU()), (nn.PReLU(3, 0.1), torch.nn.PReLU(3, 0.1)),
                         (nn.RMSNorm(5), torch.nn.RMSNorm(5)),
                         (nn.RMSNorm((3, 5), eps=1e-3), torch.nn.RMSNorm((3, 5), eps=1e-3))]:
        theirs = theirs.double()
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.tensor(RNG.standard_normal(tuple(p.shape))))
        ours = ours.to(cr.float64)
        ours.load_state_dict({k: v.numpy().copy() for k, v in theirs.state_dict().items()})
        _compare(ours, theirs, [x])
        for (n, p), (m, q) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert n == m
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_two_input_functions():
    a, b = _x((4, 6), False), _x((4, 6), False)
    for kw in ({}, {'dim': 0}, {'eps': 10.0}):
        _compare(lambda x, y: F.cosine_similarity(x, y, **kw),
                 lambda x, y: TF.cosine_similarity(x, y, **kw), [a, b])
    for kw in ({}, {'p': 1.0}, {'p': 3.0, 'keepdim': True}):
        _compare(lambda x, y: F.pairwise_distance(x, y, **kw),
                 lambda x, y: TF.pairwise_distance(x, y, **kw), [a, b])
    _compare(lambda x, y: F.prelu(x, y), lambda x, y: TF.prelu(x, y),
             [_x((4, 6)), np.array([0.3])])
    _compare(lambda x, w: F.rms_norm(x, (6,), w), lambda x, w: TF.rms_norm(x, (6,), w),
             [a, RNG.standard_normal(6)])


def _probs(shape):
    return RNG.uniform(0.02, 0.98, shape)


def _classes(n, c, ignore=None):
    t = RNG.integers(0, c, n)
    if ignore is not None:
        t[::3] = ignore
    return t


# (name, kwargs, inputs builder): the inputs in PyTorch's order
LOSSES = [
    ('l1_loss', {}, lambda: [_x(), _x()]),
    ('l1_loss', {'reduction': 'sum'}, lambda: [_x(), _x()]),
    ('mse_loss', {'reduction': 'none'}, lambda: [_x(), _x()]),
    ('smooth_l1_loss', {'beta': 0.5}, lambda: [_x(), _x()]),
    ('smooth_l1_loss', {'beta': 0.0}, lambda: [_x(), _x()]),
    ('huber_loss', {'delta': 2.0, 'reduction': 'none'}, lambda: [_x(), _x()]),
    ('binary_cross_entropy', {}, lambda: [_probs((4, 3)), _probs((4, 3))]),
    ('binary_cross_entropy', {'weight': RNG.uniform(size=3)}, lambda: [_probs((4, 3)),
                                                                       _probs((4, 3))]),
    ('binary_cross_entropy_with_logits', {'weight': RNG.uniform(size=3),
                                          'pos_weight': RNG.uniform(1, 2, 3)},
     lambda: [_x((4, 3)), _probs((4, 3))]),
    ('kl_div', {'reduction': 'batchmean'}, lambda: [np.log(_probs((4, 5))), _probs((4, 5))]),
    ('kl_div', {'reduction': 'sum', 'log_target': True},
     lambda: [np.log(_probs((4, 5))), np.log(_probs((4, 5)))]),
    ('kl_div', {'reduction': 'none'}, lambda: [np.log(_probs((2, 3))),
                                               np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])]),
    ('poisson_nll_loss', {}, lambda: [_x((3, 4), False), RNG.poisson(2.0, (3, 4)) * 1.0]),
    ('poisson_nll_loss', {'log_input': False, 'full': True},
     lambda: [_probs((3, 4)) * 3, RNG.poisson(2.0, (3, 4)) * 1.0]),
    ('gaussian_nll_loss', {}, lambda: [_x((4, 3)), _x((4, 3)), _probs((4, 3))]),
    ('gaussian_nll_loss', {'full': True, 'reduction': 'sum'},
     lambda: [_x((4, 3)), _x((4, 3)), _probs((4, 1))]),
    ('gaussian_nll_loss', {'eps': 0.5}, lambda: [_x((4, 3)), _x((4, 3)), _probs((4,))]),
    ('margin_ranking_loss', {'margin': 0.3},
     lambda: [_x((6,)), _x((6,)), RNG.choice([-1.0, 1.0], 6)]),
    ('hinge_embedding_loss', {'margin': 1.5}, lambda: [_x((4, 3)), RNG.choice([-1.0, 1.0], (4, 3))]),
    ('soft_margin_loss', {}, lambda: [_x((4, 3)), RNG.choice([-1.0, 1.0], (4, 3))]),
    ('cosine_embedding_loss', {'margin': 0.2},
     lambda: [_x((5, 4), False), _x((5, 4), False), RNG.choice([-1, 1], 5)]),
    ('triplet_margin_loss', {}, lambda: [_x((5, 4)), _x((5, 4)), _x((5, 4))]),
    ('triplet_margin_loss', {'p': 1.0, 'swap': True, 'margin': 2.0},
     lambda: [_x((5, 4)), _x((5, 4)), _x((5, 4))]),
    ('multilabel_soft_margin_loss', {'weight': RNG.uniform(size=3)},
     lambda: [_x((4, 3)), RNG.integers(0, 2, (4, 3)) * 1.0]),
    ('nll_loss', {'weight': RNG.uniform(0.5, 2, 5)}, lambda: [_x((6, 5)), _classes(6, 5)]),
    ('nll_loss', {'ignore_index': 1, 'reduction': 'none'}, lambda: [_x((6, 5)), _classes(6, 5, 1)]),
    ('nll_loss', {}, lambda: [_x((2, 5, 3, 2)), RNG.integers(0, 5, (2, 3, 2))]),
    ('nll_loss', {}, lambda: [_x((5,)), np.array(3)]),
    ('cross_entropy', {'weight': RNG.uniform(0.5, 2, 5)}, lambda: [_x((6, 5)), _classes(6, 5)]),
    ('cross_entropy', {'weight': RNG.uniform(0.5, 2, 5), 'ignore_index': 2},
     lambda: [_x((6, 5)), _classes(6, 5, 2)]),
    ('cross_entropy', {'label_smoothing': 0.2}, lambda: [_x((6, 5)), _classes(6, 5)]),
    ('cross_entropy', {'label_smoothing': 0.1, 'weight': RNG.uniform(0.5, 2, 5),
                       'ignore_index': 0}, lambda: [_x((6, 5)), _classes(6, 5, 0)]),
    ('cross_entropy', {'label_smoothing': 0.1, 'ignore_index': 0, 'reduction': 'sum'},
     lambda: [_x((6, 5)), _classes(6, 5, 0)]),
    ('cross_entropy', {'label_smoothing': 0.3, 'reduction': 'none'},
     lambda: [_x((2, 5, 3)), RNG.integers(0, 5, (2, 3))]),
    ('cross_entropy', {'weight': RNG.uniform(0.5, 2, 4)}, lambda: [_x((3, 4, 2, 2)),
                                                                   RNG.integers(0, 4, (3, 2, 2))]),
    ('cross_entropy', {}, lambda: [_x((4,)), np.array(1)]),
    ('cross_entropy', {'weight': RNG.uniform(0.5, 2, 4), 'label_smoothing': 0.1},
     lambda: [_x((3, 4)), np.apply_along_axis(lambda r: r / r.sum(), 1, _probs((3, 4)))]),
]


@pytest.mark.parametrize('name,kw,make', LOSSES, ids=lambda v: v if isinstance(v, str) else '')
def test_loss_function(name, kw, make):
    arrays = make()
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    _compare(lambda *a: getattr(F, name)(*a, **kw), lambda *a: getattr(TF, name)(*a, **tkw),
             arrays, nondiff=_nondiff(name, arrays))


def _nondiff(name, arrays):
    """Inputs not compared by gradient: +-1 labels PyTorch refuses to differentiate, and
    targets holding 0 where PyTorch's derivative of `t log t` is nan (ours: the derivative of
    the other terms; the true one is -inf)."""
    if name.lower().replace('_', '') in ('softmarginloss', 'hingeembeddingloss'):
        return {1}
    if name.lower().replace('_', '') in ('kldiv', 'poissonnllloss', 'kldivloss') and \
            not (arrays[1] != 0).all():
        return {1}
    return ()


LOSS_MODULES = [
    ('KLDivLoss', {'reduction': 'batchmean'}, lambda: [np.log(_probs((4, 5))), _probs((4, 5))]),
    ('PoissonNLLLoss', {'full': True}, lambda: [_x((3, 4), False), RNG.poisson(3.0, (3, 4)) * 1.0]),
    ('GaussianNLLLoss', {}, lambda: [_x((4, 3)), _x((4, 3)), _probs((4, 3))]),
    ('MarginRankingLoss', {'margin': 0.5}, lambda: [_x((6,)), _x((6,)), RNG.choice([-1.0, 1.0], 6)]),
    ('HingeEmbeddingLoss', {}, lambda: [_x((4, 3)), RNG.choice([-1.0, 1.0], (4, 3))]),
    ('SoftMarginLoss', {'reduction': 'sum'}, lambda: [_x((4, 3)), RNG.choice([-1.0, 1.0], (4, 3))]),
    ('CosineEmbeddingLoss', {}, lambda: [_x((5, 4)), _x((5, 4)), RNG.choice([-1, 1], 5)]),
    ('TripletMarginLoss', {'swap': True}, lambda: [_x((5, 4)), _x((5, 4)), _x((5, 4))]),
    ('MultiLabelSoftMarginLoss', {}, lambda: [_x((4, 3)), RNG.integers(0, 2, (4, 3)) * 1.0]),
    ('BCELoss', {'reduction': 'sum'}, lambda: [_probs((4, 3)), _probs((4, 3))]),
    ('L1Loss', {'size_average': False}, lambda: [_x(), _x()]),
    ('MSELoss', {'reduce': False}, lambda: [_x(), _x()]),
    ('NLLLoss', {'weight': RNG.uniform(0.5, 2, 5), 'ignore_index': 3},
     lambda: [_x((6, 5)), _classes(6, 5, 3)]),
    ('CrossEntropyLoss', {'weight': RNG.uniform(0.5, 2, 5), 'ignore_index': 3,
                          'label_smoothing': 0.15}, lambda: [_x((6, 5)), _classes(6, 5, 3)]),
    ('BCEWithLogitsLoss', {'pos_weight': RNG.uniform(1, 2, 3)}, lambda: [_x((4, 3)), _probs((4, 3))]),
]


@pytest.mark.parametrize('name,kw,make', LOSS_MODULES, ids=lambda v: v if isinstance(v, str) else '')
def test_loss_module(name, kw, make):
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    arrays = make()
    _compare(getattr(nn, name)(**kw), getattr(torch.nn, name)(**tkw), arrays,
             nondiff=_nondiff(name, arrays))


def test_positional_constructor_arguments_follow_pytorch():
    """Loss and activation constructors take positional arguments in PyTorch's order."""
    assert nn.ReLU(inplace=True).training and nn.GELU(approximate='tanh').approximate == 'tanh'
    assert nn.Softmax(dim=0).dim == 0 and isinstance(nn.Identity(3, bias=False), nn.Module)
    with pytest.raises(TypeError, match='ReLU'):
        nn.ReLU(True, 2)
    assert nn.TripletMarginLoss(0.5, 1.0).p == 1.0
    assert nn.SmoothL1Loss(None, None, 'sum', 0.3).beta == 0.3
    assert nn.NLLLoss(None, None, 4).ignore_index == 4
    assert nn.CrossEntropyLoss(None, None, 4, None, 'sum', 0.2).label_smoothing == 0.2
    with pytest.raises(TypeError, match='KLDivLoss'):
        nn.KLDivLoss(logtarget=True)
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction='batchmean')


def test_losses_under_transforms_match_eager():
    """The composite losses run under jit and vmap and give the eager values and gradients."""
    x, t = _x((6, 5), False), _classes(6, 5, 2)
    w = RNG.uniform(0.5, 2, 5)

    def loss(x, t):
        return F.cross_entropy(x, t, weight=w, ignore_index=2, label_smoothing=0.1)

    eager = cr.grad(loss)(x, t)
    np.testing.assert_allclose(cr.jit(cr.grad(loss))(x, t), eager, rtol=1e-12)
    per = cr.vmap(cr.grad(loss))(np.stack([x, 2 * x]), np.stack([t, t]))
    np.testing.assert_allclose(per[0], eager, rtol=1e-12)
    np.testing.assert_allclose(per[1], cr.grad(loss)(2 * x, t), rtol=1e-12)


def test_bad_input_is_named():
    with pytest.raises(cr.core.ShapeError, match='cross_entropy: input .* and target'):
        F.cross_entropy(np.ones((3, 4, 2)), np.zeros((3, 3), int))
    with pytest.raises(ValueError, match='binary_cross_entropy: input must be probabilities'):
        F.binary_cross_entropy(np.array([1.5]), np.array([1.0]))
    with pytest.raises(cr.core.ShapeError, match='glu: dimension'):
        F.glu(np.ones((2, 3)))
    with pytest.raises(cr.core.ShapeError, match="pad: 'reflect' padding"):
        F.pad(np.ones((2, 3)), (3, 0), 'reflect')
    with pytest.raises(cr.core.IndexOutOfRangeError, match='nll_loss: target 7'):
        F.nll_loss(np.zeros((2, 3, 2)), np.array([[0, 1], [7, 0]]))
