"""chainrule.nn: every layer and loss against PyTorch (outputs and gradients, float32 and
float64), the module walk, state dicts, the functional (pytree) style, higher derivatives of
the nn primitives, and drawing a Tensor graph."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F
import chainrule.numpy as cnp
from chainrule.core import IndexOutOfRangeError

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _torch():
    torch = pytest.importorskip('torch')
    torch.set_num_threads(1)
    return torch


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def compare_module(torch, ours, theirs, inputs, dtype, *, grad_inputs=True):
    """Same parameters in both, then outputs, input gradients and parameter gradients of
    sum(out * R) must agree."""
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    xs = [cr.tensor(x, requires_grad=grad_inputs and x.dtype.kind == 'f') for x in inputs]
    txs = [torch.from_numpy(x.copy()).requires_grad_(grad_inputs and x.dtype.kind == 'f')
           for x in inputs]
    out = ours(*xs)
    tout = theirs(*txs)
    tol = TOL[dtype]
    assert out.dtype == dtype
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    r = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    (out * r).sum().backward()
    (tout * torch.from_numpy(r)).sum().backward()
    for x, tx in zip(xs, txs):
        if tx.requires_grad:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **tol,
                                   err_msg=name)
    return out


LAYERS = [
    # (name, ours, theirs, input shapes)
    ('Linear', lambda d: nn.Linear(5, 3, dtype=d, rng=0),
     lambda t: t.nn.Linear(5, 3), [(4, 5)]),
    ('Linear-3d-nobias', lambda d: nn.Linear(5, 3, bias=False, dtype=d, rng=0),
     lambda t: t.nn.Linear(5, 3, bias=False), [(2, 4, 5)]),
    ('Conv2d', lambda d: nn.Conv2d(3, 4, 3, dtype=d, rng=0),
     lambda t: t.nn.Conv2d(3, 4, 3), [(2, 3, 7, 6)]),
    ('Conv2d-stride-pad', lambda d: nn.Conv2d(2, 3, (3, 2), stride=2, padding=1, dtype=d, rng=0),
     lambda t: t.nn.Conv2d(2, 3, (3, 2), stride=2, padding=1), [(2, 2, 7, 8)]),
    ('MaxPool2d', lambda d: nn.MaxPool2d(2), lambda t: t.nn.MaxPool2d(2), [(2, 3, 6, 7)]),
    ('MaxPool2d-overlap-pad', lambda d: nn.MaxPool2d(3, stride=2, padding=1),
     lambda t: t.nn.MaxPool2d(3, stride=2, padding=1), [(2, 2, 7, 6)]),
    ('Flatten', lambda d: nn.Flatten(), lambda t: t.nn.Flatten(), [(2, 3, 4, 5)]),
    ('LayerNorm', lambda d: nn.LayerNorm((4, 5), dtype=d),
     lambda t: t.nn.LayerNorm((4, 5)), [(3, 4, 5)]),
    ('BatchNorm1d', lambda d: nn.BatchNorm1d(4, dtype=d), lambda t: t.nn.BatchNorm1d(4),
     [(6, 4)]),
    ('BatchNorm1d-3d', lambda d: nn.BatchNorm1d(3, dtype=d), lambda t: t.nn.BatchNorm1d(3),
     [(4, 3, 5)]),
    ('ReLU', lambda d: nn.ReLU(), lambda t: t.nn.ReLU(), [(4, 6)]),
    ('GELU', lambda d: nn.GELU(), lambda t: t.nn.GELU(), [(4, 6)]),
    ('GELU-tanh', lambda d: nn.GELU('tanh'), lambda t: t.nn.GELU('tanh'), [(4, 6)]),
    ('Tanh', lambda d: nn.Tanh(), lambda t: t.nn.Tanh(), [(4, 6)]),
    ('Sigmoid', lambda d: nn.Sigmoid(), lambda t: t.nn.Sigmoid(), [(4, 6)]),
    ('Softmax', lambda d: nn.Softmax(dim=1), lambda t: t.nn.Softmax(dim=1), [(4, 6)]),
    ('LogSoftmax', lambda d: nn.LogSoftmax(dim=0), lambda t: t.nn.LogSoftmax(dim=0), [(4, 6)]),
    ('Sequential', lambda d: nn.Sequential(nn.Linear(6, 8, dtype=d, rng=0), nn.Tanh(),
                                           nn.Linear(8, 2, dtype=d, rng=1)),
     lambda t: t.nn.Sequential(t.nn.Linear(6, 8), t.nn.Tanh(), t.nn.Linear(8, 2)), [(5, 6)]),
]


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
@pytest.mark.parametrize('name,ours,theirs,shapes', LAYERS, ids=[r[0] for r in LAYERS])
def test_layer_matches_torch(name, ours, theirs, shapes, dtype):
    torch = _torch()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    inputs = [_rand(rng, s, dtype) for s in shapes]
    tm = theirs(torch).to(torch.float64 if dtype == np.float64 else torch.float32)
    compare_module(torch, ours(dtype), tm, inputs, dtype)


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
def test_embedding_matches_torch(dtype):
    torch = _torch()
    ours = nn.Embedding(7, 3, dtype=dtype, rng=0)
    theirs = torch.nn.Embedding(7, 3).to(torch.float64 if dtype == np.float64 else torch.float32)
    idx = np.array([[1, 4, 1], [6, 0, 1]])
    compare_module(torch, ours, theirs, [idx], dtype, grad_inputs=False)


def test_batchnorm_running_stats_and_eval_match_torch():
    torch = _torch()
    ours, theirs = nn.BatchNorm1d(3, momentum=0.2), torch.nn.BatchNorm1d(3, momentum=0.2)
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = _rand(rng, (8, 3), np.float32) * 2 + 1
        ours(x)
        theirs(torch.from_numpy(x))
    for name, v in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], v.numpy(), rtol=1e-5, err_msg=name)
    ours.eval()
    theirs.eval()
    x = _rand(rng, (5, 3), np.float32)
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    assert int(ours.num_batches_tracked.item()) == 3


def test_dropout_scaling_mask_and_eval():
    d = nn.Dropout(0.25, rng=0)
    x = cr.tensor(np.ones((200, 50), np.float32), requires_grad=True)
    y = d(x)
    kept = y.numpy() != 0
    assert 0.7 < kept.mean() < 0.8                       # about 1 - p kept
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75)
    d.eval()
    assert d(x) is x
    # the same seed gives the same mask
    np.testing.assert_array_equal(nn.Dropout(0.25, rng=0)(x).numpy(), y.numpy())


# --- losses -----------------------------------------------------------------------------------

LOSSES = [
    ('mse', lambda F_, x, t: F_.mse_loss(x, t), 'real'),
    ('mse-sum', lambda F_, x, t: F_.mse_loss(x, t, reduction='sum'), 'real'),
    ('cross_entropy', lambda F_, x, t: F_.cross_entropy(x, t), 'label'),
    ('cross_entropy-sum', lambda F_, x, t: F_.cross_entropy(x, t, reduction='sum'), 'label'),
    ('cross_entropy-none', lambda F_, x, t: F_.cross_entropy(x, t, reduction='none'), 'label'),
    ('cross_entropy-soft', lambda F_, x, t: F_.cross_entropy(x, t), 'prob'),
    ('nll', lambda F_, x, t: F_.nll_loss(F_.log_softmax(x, 1), t), 'label'),
    ('nll-none', lambda F_, x, t: F_.nll_loss(x, t, reduction='none'), 'label'),
    ('bce_logits', lambda F_, x, t: F_.binary_cross_entropy_with_logits(x, t), 'unit'),
    ('bce_logits-none', lambda F_, x, t: F_.binary_cross_entropy_with_logits(
        x, t, reduction='none'), 'unit'),
    ('log_softmax', lambda F_, x, t: F_.log_softmax(x, dim=1), None),
    ('softmax', lambda F_, x, t: F_.softmax(x, dim=0), None),
]


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
@pytest.mark.parametrize('name,fn,target', LOSSES, ids=[r[0] for r in LOSSES])
def test_loss_matches_torch(name, fn, target, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    x = _rand(rng, (6, 5), dtype) * 3
    t = {'real': _rand(rng, (6, 5), dtype), 'label': rng.integers(0, 5, 6),
         'unit': rng.random((6, 5)).astype(dtype), None: None,
         'prob': rng.dirichlet(np.ones(5), 6).astype(dtype)}[target]
    xt = cr.tensor(x, requires_grad=True)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    out = fn(F, xt, t)
    tout = fn(torch.nn.functional, tx, None if t is None else torch.from_numpy(t))
    tol = TOL[dtype]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    assert out.dtype == dtype
    r = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    (out * r).sum().backward()
    (tout * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), **tol)


def test_losses_are_stable_for_huge_logits():
    z = cr.tensor(np.array([[1000.0, -1000.0, 0.0]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([1]))
    assert loss.item() == pytest.approx(2000.0)
    loss.backward()
    np.testing.assert_allclose(z.grad.numpy(), [[1.0, -1.0, 0.0]], atol=1e-12)
    x = cr.tensor(np.array([800.0, -800.0]), requires_grad=True)
    b = F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0]), reduction='sum')
    assert b.item() == pytest.approx(1600.0)
    b.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, -1.0])
    assert np.isfinite(F.log_softmax(np.array([1e4, 0.0, -1e4]))).all()


def test_shape_errors_name_the_op_and_shapes():
    with pytest.raises(cr.ShapeError, match=r'linear: input \(2, 4\), weight \(3, 5\)'):
        nn.Linear(5, 3)(np.ones((2, 4), np.float32))
    with pytest.raises(cr.ShapeError, match=r'conv2d: input \(1, 2, 5, 5\) and weight'):
        nn.Conv2d(3, 4, 3)(np.ones((1, 2, 5, 5), np.float32))
    with pytest.raises(cr.ShapeError, match=r'cross_entropy: logits \(4, 3\) and targets \(5,\)'):
        F.cross_entropy(np.ones((4, 3)), np.zeros(5, int))
    with pytest.raises(cr.ShapeError, match='mse_loss'):
        F.mse_loss(np.ones(3), np.ones(4))


# --- the module walk and state dicts ----------------------------------------------------------

class Net(nn.Module):
    def __init__(self):
        self.blocks = [nn.Linear(3, 4, rng=0), {'a': nn.Linear(4, 4, rng=1)}]
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, rng=2))
        self.scale = nn.Parameter(np.ones(2, np.float32))
        self.norm = nn.BatchNorm1d(2)
        self.drop = nn.Dropout(0.5, rng=0)
        self._hidden = nn.Linear(2, 2)            # private: not walked
        self.tied = self.blocks[0]                # shared: counted once

    def forward(self, x):
        h = self.blocks[1]['a'](self.blocks[0](x))
        return self.drop(self.norm(self.head(h) * self.scale))


def test_walk_finds_parameters_in_lists_dicts_and_submodules():
    m = Net()
    names = [n for n, _ in m.named_parameters()]
    assert names == ['blocks.0.weight', 'blocks.0.bias', 'blocks.1.a.weight', 'blocks.1.a.bias',
                     'head.1.weight', 'head.1.bias', 'scale', 'norm.weight', 'norm.bias']
    assert [n for n, _ in m.named_buffers()] == ['norm.running_mean', 'norm.running_var',
                                                 'norm.num_batches_tracked']
    assert len(m.parameters()) == 9
    assert list(m.state_dict()) == names[:7] + ['norm.weight', 'norm.bias',
                                                'norm.running_mean', 'norm.running_var',
                                                'norm.num_batches_tracked']
    assert m.children()[0] is m.blocks[0] and m.head in m.children()
    m.eval()
    assert all(not mod.training for mod in m.modules())
    m.train()
    assert m.drop.training and m.head[1].training


def test_zero_grad_and_backward_fill_every_parameter():
    m = Net()
    out = m(np.ones((4, 3), np.float32))
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_load_state_dict_errors_name_keys_and_shapes():
    m = nn.Sequential(nn.Linear(3, 2))
    sd = m.state_dict()
    bad = dict(sd)
    del bad['0.bias']
    bad['0.extra'] = np.zeros(1)
    bad['0.weight'] = np.zeros((3, 3))
    with pytest.raises(nn.StateDictError) as e:
        m.load_state_dict(bad)
    msg = str(e.value)
    assert 'missing keys: 0.bias' in msg and 'unexpected keys: 0.extra' in msg
    assert '0.weight: shape (3, 3) in the state dict, (2, 3) in the model' in msg
    w = np.arange(6.0).reshape(2, 3)
    assert m.load_state_dict({'0.weight': w}, strict=False) == (['0.bias'], [])
    np.testing.assert_array_equal(m[0].weight.numpy(), w.astype(np.float32))
    assert m[0].weight.dtype == np.float32


def test_torch_state_dict_loads_and_gives_the_same_outputs():
    torch = _torch()
    from chainrule.demo import SmallCNN
    torch.manual_seed(0)
    tnn = torch.nn
    theirs = tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Flatten(), tnn.Linear(128, 64), tnn.ReLU(), tnn.Linear(64, 10))
    ours = SmallCNN(rng=5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


# --- functional style: modules are pytrees ----------------------------------------------------

def test_grad_of_a_loss_in_the_model_matches_backward():
    model = nn.Sequential(nn.Linear(4, 6, rng=0), nn.GELU(), nn.Linear(6, 3, rng=1))
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 4), dtype=np.float32), np.array([0, 2, 1, 1, 0])

    def loss_fn(m, x, y):
        return F.cross_entropy(m(x), y)

    g = cr.grad(loss_fn)(model, x, y)
    assert isinstance(g, nn.Sequential) and g is not model
    loss_fn(model, x, y).backward()
    for (name, p), (gname, gp) in zip(model.named_parameters(), g.named_parameters()):
        assert name == gname
        np.testing.assert_allclose(gp.numpy(), p.grad.numpy(), rtol=1e-5, atol=1e-7)
    # a functional SGD step: same structure, so tree_map pairs parameters with gradients
    new = cr.tree.tree_map(lambda p, d: p - 0.1 * d, model, g)
    np.testing.assert_allclose(new[0].weight.numpy(),
                               model[0].weight.numpy() - 0.1 * p_grad(model), rtol=1e-6)
    assert model[0].weight.numpy() is not new[0].weight.numpy()


def p_grad(model):
    return model[0].weight.grad.numpy()


# --- the primitives' rules: higher order and forward mode -------------------------------------

PRIMITIVE_FUNCS = [
    ('linear', lambda x: F.linear(x, np.arange(12.0).reshape(4, 3) / 10 - 0.5, np.ones(4)),
     (2, 3)),
    ('relu', F.relu, (3, 4)),
    ('sigmoid', F.sigmoid, (3, 4)),
    ('gelu', F.gelu, (3, 4)),
    ('log_softmax', lambda x: F.log_softmax(x, 1), (3, 4)),
    ('cross_entropy', lambda x: F.cross_entropy(x, np.array([0, 3, 1]), reduction='none'),
     (3, 4)),
    ('conv2d', lambda x: F.conv2d(x, np.linspace(-1, 1, 2 * 2 * 3 * 2).reshape(2, 2, 3, 2),
                                  stride=(2, 1), padding=1), (1, 2, 5, 4)),
    ('max_pool2d', lambda x: F.max_pool2d(x, 3, 2, 1), (1, 2, 5, 6)),
]


@pytest.mark.parametrize('name,fn,shape', PRIMITIVE_FUNCS, ids=[r[0] for r in PRIMITIVE_FUNCS])
def test_derivatives_of_nn_primitives_to_second_order(name, fn, shape):
    # sin(...) adds curvature, so second derivatives exercise the rules' own derivatives
    from chainrule.testing import check_grads
    x = np.random.default_rng(0).standard_normal(shape) + 0.1
    check_grads(lambda x: cr.numpy.sin(fn(x)), (x,), order=2, modes=('fwd', 'rev'))


def test_unfold_and_fold_are_transposes():
    from chainrule.ops import nn as nnops
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    c = nnops.unfold(x, (3, 2), (2, 1), (1, 0))
    y = rng.standard_normal(c.shape)
    # <unfold(x), y> == <x, fold(y)>
    lhs = np.sum(c * y)
    rhs = np.sum(x * nnops.fold(y, x.shape, (3, 2), (2, 1), (1, 0)))
    assert lhs == pytest.approx(rhs, rel=1e-12)


# --- drawing a Tensor graph -------------------------------------------------------------------

def test_tensor_viz_graph_draws_ops_and_values():
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = F.relu(w * 3.0).sum()
    nodes, edges = loss._viz_graph()
    ops = [label for _, label, kind in nodes if kind == 'op']
    assert ops == ['mul', 'relu', 'sum']
    values = [label for _, label, kind in nodes if kind == 'value']
    assert values[0].startswith('leaf (2,) float64') and '[1., 2.]' in values[0]
    assert values[-1].startswith('() float64') and '9.' in values[-1]
    assert len(edges) == 6
    g = cr.viz.draw(loss)
    assert 'label="relu"' in g.source
    assert cr.viz.draw_text(loss).splitlines()[0].startswith('[sum]')
    const = cr.tensor(np.ones(3))
    assert const._viz_graph() == ([('v0', '(3,) float64\n[1., 1., 1.]', 'value')], [])


# --- vmap: per-example gradients and per-example weights, with no looping fallback -------------

def _vmap_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=0, dtype=np.float64), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3, rng=1, dtype=np.float64),
                         nn.LogSoftmax(dim=1))


def test_vmap_of_grad_gives_per_example_gradients():
    import warnings
    model = _vmap_model()
    rng = np.random.default_rng(0)
    xs, ys = rng.random((5, 2, 1, 4, 4)), rng.integers(0, 3, (5, 2))

    def loss(m, x, y):
        return F.cross_entropy(m(x), y) + F.nll_loss(m(x), y, reduction='sum')

    with warnings.catch_warnings():
        warnings.simplefilter('error')               # a looping fallback would warn
        per = cr.vmap(cr.grad(loss), in_axes=(None, 0, 0))(model, xs, ys)
    for i in range(5):
        g = cr.grad(loss)(model, xs[i], ys[i])
        for (n, a), (_, b) in zip(per.named_parameters(), g.named_parameters()):
            np.testing.assert_allclose(a.numpy()[i], b.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=n)


def test_vmap_over_stacked_weights_runs_each_model():
    import warnings
    model = _vmap_model()
    stacked = cr.tree.tree_map(lambda p: np.stack([p, 1.5 * p, -p]), model)
    x = np.random.default_rng(1).random((2, 1, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = cr.vmap(lambda m, x: m(x), in_axes=(0, None))(stacked, x)
    for k, scale in enumerate([1.0, 1.5, -1.0]):
        one = cr.tree.tree_map(lambda p: scale * p, model)
        np.testing.assert_allclose(np.asarray(out)[k], one(x).numpy(), rtol=1e-12)


# --- initialisers and data loading ------------------------------------------------------------

def test_initialisers_are_seeded_and_have_pytorchs_bounds():
    from chainrule.nn import init
    a, b = init.kaiming_uniform((64, 32), rng=3), init.kaiming_uniform((64, 32), rng=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and np.abs(a).max() <= 1 / np.sqrt(32)
    assert np.abs(a).max() > 0.9 / np.sqrt(32)              # fills the range
    w = init.xavier_normal((300, 200), rng=0, dtype=np.float64)
    assert w.std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    init.manual_seed(7)
    l1 = nn.Linear(4, 3)
    init.manual_seed(7)
    l2 = nn.Linear(4, 3)
    np.testing.assert_array_equal(l1.weight.numpy(), l2.weight.numpy())
    c = nn.Conv2d(2, 5, 3, rng=0, dtype=np.float64)
    assert c.weight.dtype == np.float64 and np.abs(c.weight.numpy()).max() <= 1 / np.sqrt(18)
    init.zeros_(c.bias)
    assert not c.bias.numpy().any() and c.bias.requires_grad


def test_module_to_converts_parameters_and_buffers():
    m = nn.Sequential(nn.Linear(3, 2, rng=0), nn.BatchNorm1d(2)).double()
    assert all(t.dtype == np.float64 for _, t in m.state_dict().items()
               if t.dtype.kind == 'f')
    assert m(np.ones((4, 3))).dtype == np.float64
    assert m.state_dict()['1.num_batches_tracked'].dtype == np.int64


def test_dataloader_batches_shuffles_with_a_seed_and_drops_the_last():
    from chainrule.data import DataLoader, TensorDataset
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    batches = list(DataLoader((x, y), batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert isinstance(batches[0][0], cr.Tensor) and not batches[0][0].requires_grad
    np.testing.assert_array_equal(batches[1][0].numpy(), x[4:8])
    dl = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, drop_last=True, seed=0)
    assert len(dl) == 2
    e1, e2 = [np.concatenate([b[1].numpy() for b in dl]) for _ in range(2)]
    assert len(e1) == 8 and len(set(e1)) == 8 and not np.array_equal(e1, e2)  # a new order
    dl2 = DataLoader((x, y), batch_size=4, shuffle=True, drop_last=True, seed=0)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in dl2]), e1)
    for xb, yb in DataLoader((x, y), batch_size=3, shuffle=True, seed=1):
        np.testing.assert_array_equal(xb.numpy()[:, 0], 2 * yb.numpy())   # rows stay paired

    class Pairs:                                   # any indexable dataset
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(2, i), i

    (xb, yb), = list(DataLoader(Pairs(), batch_size=5))
    np.testing.assert_array_equal(yb.numpy(), np.arange(5))
    assert xb.shape == (5, 2)
    with pytest.raises(ValueError, match='different lengths'):
        DataLoader((x, y[:5]))


def test_jit_tells_apart_models_with_the_same_parameter_names():
    a = nn.Sequential(nn.Linear(3, 2, rng=0), nn.Tanh())
    b = nn.Sequential(nn.Linear(3, 2, rng=0), nn.ReLU())
    f = cr.jit(lambda m, x: m(x))
    x = -np.ones((1, 3), np.float32)
    np.testing.assert_allclose(f(a, x), a(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(f(b, x), b(x).numpy(), rtol=1e-6)
    # a jitted functional training step: the updated model has the input's structure
    loss = lambda m, x: cr.numpy.sum(m(x) ** 2)        # noqa: E731
    step = cr.jit(lambda m, x: cr.tree.tree_map(lambda p, g: p - 0.1 * g, m,
                                                cr.grad(loss)(m, x)))
    m1 = step(a, x)
    m2 = step(m1, x)
    assert cr.tree.tree_structure(m2) == cr.tree.tree_structure(a)
    assert loss(m2, x).item() < loss(m1, x).item() < loss(a, x).item()


def test_tied_parameters_stay_tied_in_the_gradient_copy():
    m = Net()
    x = np.random.default_rng(0).random((4, 3), dtype=np.float32)
    g = cr.grad(lambda m: cr.numpy.sum(m.eval()(x)))(m)
    assert g.tied is g.blocks[0] and g.tied.weight is g.blocks[0].weight
    m.eval()(x).sum().backward()
    np.testing.assert_allclose(g.tied.weight.numpy(), m.blocks[0].weight.grad.numpy(),
                               rtol=1e-5, atol=1e-7)
    assert g.norm.running_mean is m.norm.running_mean          # buffers are shared


def test_erf_without_scipy_matches(monkeypatch):
    import sys
    from chainrule.ops import nn as nnops
    x = np.linspace(-3, 3, 13).astype(np.float32)
    ref = nnops._erf_impl(x)
    monkeypatch.setitem(sys.modules, 'scipy.special', None)     # import fails: NumPy only
    got = nnops._erf_impl(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert nnops._erf_impl(np.float64(0.5)) == pytest.approx(0.5204998778130465, rel=1e-15)


def test_embedding_and_one_hot_with_traced_indices():
    """Indices that are traced (vmap over a batch of index arrays, jit) are gathered and checked
    when their values are known, instead of being refused as needing concrete values."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3))
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    np.testing.assert_array_equal(cr.vmap(lambda i: F.embedding(i, w))(idx), w[idx])
    np.testing.assert_array_equal(cr.jit(lambda i: F.embedding(i, w))(idx), w[idx])
    ws = rng.standard_normal((3, 4, 3))          # weights and indices both batched
    np.testing.assert_array_equal(cr.vmap(F.embedding)(idx, ws),
                                  np.stack([ws[k][idx[k]] for k in range(3)]))
    # the gradient scatters back: each row gets 2 * w[row] times the number of its uses
    g = cr.jit(cr.grad(lambda w, i: cnp.sum(F.embedding(i, w) ** 2)))(w, idx)
    counts = np.bincount(idx.ravel(), minlength=4)[:, None]
    np.testing.assert_allclose(g, 2 * counts * w)
    expected = (idx[..., None] == np.arange(4)).astype(np.float32)
    for f in (cr.vmap(lambda i: F.one_hot(i, 4)), cr.jit(lambda i: F.one_hot(i, 4))):
        out = f(idx)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, expected)
    with pytest.raises(IndexOutOfRangeError, match=r'embedding: index 7 at position 1 .* 4 rows'):
        cr.jit(lambda i: F.embedding(i, w))(np.array([0, 7]))
    with pytest.raises(IndexOutOfRangeError, match=r'one_hot: label -1 .* 4 classes'):
        cr.vmap(lambda i: F.one_hot(i, 4))(np.array([[0, 1], [-1, 2]]))
