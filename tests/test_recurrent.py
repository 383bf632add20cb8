"""chainrule.nn's recurrent layers (RNN, LSTM, GRU and their cells) and GroupNorm against
PyTorch: torch's state dict loaded into ours, the same inputs, then outputs, final states and
the gradients of the input, the initial states and every weight, over a grid of layer options
in float32 and float64. Also: the layers' dtype errors (every parameterised layer refuses an
input of another dtype than its parameters, as PyTorch does), dropout between layers, the
initial distribution, and the layers under `grad`, `vmap` and `jit`."""

import itertools

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.core import DTypeError, ShapeError
from torch_ref import load_from_torch, torch_dtype, torch_or_skip

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}
T, N, IN, H = 4, 3, 3, 5


def _torch():
    return torch_or_skip('PyTorch is the reference for these layers')


_tdtype = torch_dtype
_load_from_torch = load_from_torch


def _pairs(torch, arrays):
    """Each array as a chainrule leaf and a torch leaf, both requiring grad."""
    return ([cr.tensor(a.copy(), requires_grad=True) for a in arrays],
            [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays])


def _backprop_both(torch, ours_out, theirs_out, dtype):
    """sum(out_k * R_k) over every output, with the same random R_k in both libraries."""
    rng = np.random.default_rng(7)
    loss, tloss = 0, 0
    for o, to in zip(ours_out, theirs_out):
        r = rng.standard_normal(o.shape).astype(dtype)
        loss = loss + (o * r).sum()
        tloss = tloss + (to * torch.from_numpy(r)).sum()
    loss.backward()
    tloss.backward()


def _assert_params_grads(ours, theirs, tol):
    tparams = dict(theirs.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(tparams)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), **tol,
                                   err_msg=name)


# (kind, constructor keywords for both libraries)
KINDS = [('RNN', dict(nonlinearity='tanh')), ('RNN', dict(nonlinearity='relu')),
         ('LSTM', {}), ('GRU', {})]
LAYOUTS = ['seq_first', 'batch_first', 'unbatched']
GRID = list(itertools.product(range(len(KINDS)), [1, 2], [False, True], LAYOUTS,
                              [True, False], [False, True]))


def _grid_id(g):
    k, layers, bidir, layout, bias, h0 = g
    name, kw = KINDS[k]
    return '-'.join([name + kw.get('nonlinearity', ''), f'L{layers}', 'bi' if bidir else 'uni',
                     layout, 'bias' if bias else 'nobias', 'h0' if h0 else 'zeros'])


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
@pytest.mark.parametrize('case', GRID, ids=[_grid_id(g) for g in GRID])
def test_recurrent_layer_matches_torch(case, dtype):
    torch = _torch()
    k, layers, bidir, layout, bias, with_h0 = case
    kind, kw = KINDS[k]
    kw = dict(kw, num_layers=layers, bidirectional=bidir, bias=bias,
              batch_first=layout == 'batch_first')
    torch.manual_seed(sum(map(ord, _grid_id(case))))
    theirs = getattr(torch.nn, kind)(IN, H, **kw).to(_tdtype(torch, dtype))
    ours = getattr(nn, kind)(IN, H, dtype=dtype, **kw)
    _load_from_torch(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())

    rng = np.random.default_rng(0)
    xshape = {'seq_first': (T, N, IN), 'batch_first': (N, T, IN), 'unbatched': (T, IN)}[layout]
    hshape = (layers * (2 if bidir else 1),) + ((N,) if layout != 'unbatched' else ()) + (H,)
    arrays = [rng.standard_normal(xshape).astype(dtype)]
    n_states = 2 if kind == 'LSTM' else 1
    if with_h0:
        arrays += [rng.standard_normal(hshape).astype(dtype) for _ in range(n_states)]
    xs, txs = _pairs(torch, arrays)
    hx = None if not with_h0 else (tuple(xs[1:]) if kind == 'LSTM' else xs[1])
    thx = None if not with_h0 else (tuple(txs[1:]) if kind == 'LSTM' else txs[1])
    out, state = ours(xs[0], hx)
    tout, tstate = theirs(txs[0], thx)
    states, tstates = (state, tstate) if kind == 'LSTM' else ((state,), (tstate,))

    tol = TOL[dtype]
    for o, to in zip((out,) + states, (tout,) + tstates):
        assert o.dtype == dtype and o.shape == tuple(to.shape)
        np.testing.assert_allclose(o.numpy(), to.detach().numpy(), **tol)
    _backprop_both(torch, (out,) + states, (tout,) + tstates, dtype)
    for x, tx in zip(xs, txs):
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    _assert_params_grads(ours, theirs, tol)


CELLS = [('RNNCell', dict(nonlinearity='tanh')), ('RNNCell', dict(nonlinearity='relu')),
         ('LSTMCell', {}), ('GRUCell', {})]
CELL_GRID = list(itertools.product(range(len(CELLS)), [True, False], [False, True],
                                   [False, True]))


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
@pytest.mark.parametrize('case', CELL_GRID, ids=[
    f"{CELLS[k][0]}{CELLS[k][1].get('nonlinearity', '')}-{'bias' if b else 'nobias'}-"
    f"{'unbatched' if u else 'batched'}-{'hx' if h else 'zeros'}"
    for k, b, u, h in CELL_GRID])
def test_cell_matches_torch(case, dtype):
    torch = _torch()
    k, bias, unbatched, with_hx = case
    kind, kw = CELLS[k]
    torch.manual_seed(k)
    theirs = getattr(torch.nn, kind)(IN, H, bias=bias, **kw).to(_tdtype(torch, dtype))
    ours = getattr(nn, kind)(IN, H, bias=bias, dtype=dtype, **kw)
    _load_from_torch(ours, theirs)
    rng = np.random.default_rng(1)
    lead = () if unbatched else (N,)
    arrays = [rng.standard_normal(lead + (IN,)).astype(dtype)]
    lstm = kind == 'LSTMCell'
    if with_hx:
        arrays += [rng.standard_normal(lead + (H,)).astype(dtype) for _ in range(1 + lstm)]
    xs, txs = _pairs(torch, arrays)
    hx = None if not with_hx else (tuple(xs[1:]) if lstm else xs[1])
    thx = None if not with_hx else (tuple(txs[1:]) if lstm else txs[1])
    out, tout = ours(xs[0], hx), theirs(txs[0], thx)
    outs, touts = (out, tout) if lstm else ((out,), (tout,))
    tol = TOL[dtype]
    for o, to in zip(outs, touts):
        assert o.dtype == dtype and o.shape == tuple(to.shape)
        np.testing.assert_allclose(o.numpy(), to.detach().numpy(), **tol)
    _backprop_both(torch, outs, touts, dtype)
    for x, tx in zip(xs, txs):
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    _assert_params_grads(ours, theirs, tol)


def test_cells_unrolled_equal_the_layer():
    """An LSTMCell stepped by hand over a sequence gives the one-layer LSTM's output (the same
    weights under the cell's names)."""
    lstm = nn.LSTM(IN, H, rng=0)
    cell = nn.LSTMCell(IN, H)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((T, N, IN)).astype(np.float32)
    out, (h_n, c_n) = lstm(x)
    state = None
    for t in range(T):
        state = cell(x[t], state)
        np.testing.assert_allclose(state[0].numpy(), out.numpy()[t], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(state[1].numpy(), c_n.numpy()[0], rtol=1e-6, atol=1e-7)


# --- dropout between layers, initial values -----------------------------------------------------

def test_dropout_between_layers_only_in_training():
    torch = _torch()
    torch.manual_seed(0)
    theirs = torch.nn.GRU(IN, H, num_layers=2, dropout=0.5)
    ours = nn.GRU(IN, H, num_layers=2, dropout=0.5)
    _load_from_torch(ours, theirs)
    x = np.random.default_rng(3).standard_normal((T, N, IN)).astype(np.float32)
    ours.eval(), theirs.eval()
    out, h = ours(x)
    tout, th = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **TOL[np.float32])
    ours.train()
    cr.manual_seed(5)
    a, ha = ours(x)
    cr.manual_seed(5)
    b, _ = ours(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())        # reproducible from the seed
    assert not np.allclose(a.numpy(), out.numpy())              # the second layer saw dropout
    # the first layer's final state is before any dropout: unchanged
    np.testing.assert_allclose(ha.numpy()[0], h.numpy()[0], rtol=1e-6)


@pytest.mark.parametrize('kind', ['RNN', 'LSTM', 'GRU', 'RNNCell', 'LSTMCell', 'GRUCell'])
def test_initial_values_follow_pytorchs_distribution_and_the_global_seed(kind):
    cr.manual_seed(11)
    a = getattr(nn, kind)(6, 64)
    cr.manual_seed(11)
    b = getattr(nn, kind)(6, 64)
    bound = 1 / np.sqrt(64)
    values = []
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=name)
        assert p.dtype == np.float32 and np.abs(p.numpy()).max() <= bound
        values.append(p.numpy().ravel())
    v = np.concatenate(values)
    # U(-b, b): mean 0, standard deviation b / sqrt(3), over thousands of draws
    assert abs(v.mean()) < 0.05 * bound and abs(v.std() / (bound / np.sqrt(3)) - 1) < 0.05


# --- transforms ---------------------------------------------------------------------------------

def test_lstm_under_grad_vmap_and_jit():
    model = nn.LSTM(IN, H, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    x = np.random.default_rng(4).standard_normal((T, N, IN))

    def loss(m, x):
        out, (h, c) = m(x)
        return (out ** 2).sum() + (c * h).sum()

    out = loss(model, x)
    out.backward()
    g = cr.grad(loss)(model, x)
    for (name, p), (_, q) in zip(model.named_parameters(), g.named_parameters()):
        np.testing.assert_allclose(np.asarray(q.data), p.grad.numpy(), rtol=1e-10,
                                   err_msg=name)
    # per-sequence outputs under vmap (over the batch axis) equal the batched run
    per = cr.vmap(lambda s: model(s)[0], in_axes=1, out_axes=1)(x)
    np.testing.assert_allclose(np.asarray(per.data if hasattr(per, 'data') else per),
                               model(x)[0].numpy(), rtol=1e-10)
    jitted = cr.jit(lambda x: loss(model, x))
    np.testing.assert_allclose(np.asarray(jitted(x).data), out.numpy(), rtol=1e-12)


# --- GroupNorm ------------------------------------------------------------------------------

GN_CASES = [((4, 6), 3, True), ((2, 6, 5), 2, True), ((2, 6, 3, 4), 3, True),
            ((2, 6, 3, 4), 6, False), ((3, 4, 2, 2, 2), 1, True)]


@pytest.mark.parametrize('dtype', DTYPES, ids=['f32', 'f64'])
@pytest.mark.parametrize('shape,groups,affine', GN_CASES,
                         ids=[f'{s}-G{g}-{"affine" if a else "plain"}' for s, g, a in GN_CASES])
def test_group_norm_matches_torch(shape, groups, affine, dtype):
    torch = _torch()
    c = shape[1]
    theirs = torch.nn.GroupNorm(groups, c, affine=affine).to(_tdtype(torch, dtype))
    if affine:                      # weights other than ones and zeros, so they are tested
        with torch.no_grad():
            theirs.weight.normal_()
            theirs.bias.normal_()
    ours = nn.GroupNorm(groups, c, affine=affine, dtype=dtype)
    _load_from_torch(ours, theirs)
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype) * 3 + 1
    (xs,), (txs,) = _pairs(torch, [x])
    out, tout = ours(xs), theirs(txs)
    tol = TOL[dtype]
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), **tol)
    np.testing.assert_allclose(
        nn.functional.group_norm(x, groups, ours.weight, ours.bias).numpy()
        if affine else nn.functional.group_norm(x, groups), tout.detach().numpy(), **tol)
    _backprop_both(torch, (out,), (tout,), dtype)
    np.testing.assert_allclose(xs.grad.numpy(), txs.grad.numpy(), **tol)
    if affine:
        _assert_params_grads(ours, theirs, tol)


def test_group_norm_bad_arguments():
    with pytest.raises(ValueError, match='divisible by num_groups=4'):
        nn.GroupNorm(4, 6)
    with pytest.raises(ShapeError, match=r'group_norm: weight \(6,\) must be \(4,\)'):
        nn.GroupNorm(2, 6)(np.ones((2, 4, 3), np.float32))
    with pytest.raises(ShapeError, match='do not split into num_groups=3'):
        nn.functional.group_norm(np.ones((2, 4)), 3)


# --- recurrent argument errors ----------------------------------------------------------------

def test_recurrent_bad_arguments():
    lstm = nn.LSTM(IN, H, num_layers=2)
    x = np.ones((T, N, IN), np.float32)
    with pytest.raises(ShapeError, match=r'LSTM: input of shape \(4, 3, 2\)'):
        lstm(np.ones((T, N, 2), np.float32))
    h = np.zeros((1, N, H), np.float32)
    with pytest.raises(ShapeError, match=r'h_0 has shape \(1, 3, 5\), expected \(2, 3, 5\)'):
        lstm(x, (h, h))
    with pytest.raises(TypeError, match=r'pair \(h_0, c_0\)'):
        lstm(x, np.zeros((2, N, H), np.float32))
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(IN, H, nonlinearity='sigmoid')
    with pytest.raises(ShapeError, match='GRUCell: state of shape'):
        nn.GRUCell(IN, H)(np.ones((N, IN), np.float32), np.ones((N + 1, H), np.float32))


# --- dtype errors: every parameterised layer, as PyTorch ---------------------------------------

DTYPE_LAYERS = [
    # (name, ours, theirs, input shape, extra positional inputs)
    ('Linear', lambda: nn.Linear(3, 2), lambda t: t.nn.Linear(3, 2), (4, 3)),
    ('Conv2d', lambda: nn.Conv2d(2, 3, 3), lambda t: t.nn.Conv2d(2, 3, 3), (1, 2, 5, 5)),
    ('LayerNorm', lambda: nn.LayerNorm(3), lambda t: t.nn.LayerNorm(3), (4, 3)),
    ('BatchNorm1d', lambda: nn.BatchNorm1d(3), lambda t: t.nn.BatchNorm1d(3), (4, 3)),
    ('GroupNorm', lambda: nn.GroupNorm(1, 3), lambda t: t.nn.GroupNorm(1, 3), (4, 3, 2)),
    ('RMSNorm', lambda: nn.RMSNorm(3), None, (4, 3)),      # torch only warns (no fused kernel)
    ('PReLU', lambda: nn.PReLU(), lambda t: t.nn.PReLU(), (4, 3)),
    ('RNN', lambda: nn.RNN(3, 2), lambda t: t.nn.RNN(3, 2), (5, 4, 3)),
    ('LSTM', lambda: nn.LSTM(3, 2), lambda t: t.nn.LSTM(3, 2), (5, 4, 3)),
    ('GRU', lambda: nn.GRU(3, 2), lambda t: t.nn.GRU(3, 2), (5, 4, 3)),
    ('RNNCell', lambda: nn.RNNCell(3, 2), lambda t: t.nn.RNNCell(3, 2), (4, 3)),
    ('LSTMCell', lambda: nn.LSTMCell(3, 2), lambda t: t.nn.LSTMCell(3, 2), (4, 3)),
    ('GRUCell', lambda: nn.GRUCell(3, 2), lambda t: t.nn.GRUCell(3, 2), (4, 3)),
]


@pytest.mark.parametrize('name,ours,theirs,shape', DTYPE_LAYERS,
                         ids=[c[0] for c in DTYPE_LAYERS])
def test_a_float32_layer_refuses_a_float64_input_as_torch_does(name, ours, theirs, shape):
    m = ours()
    x = np.ones(shape)                                  # float64
    with pytest.raises(DTypeError) as e:
        m(x)
    msg = str(e.value)
    assert msg.startswith(name + ':') and 'float64' in msg and 'float32' in msg
    assert 'model.to(cr.float64)' in msg and 'x.float()' in msg
    with pytest.raises(DTypeError):                     # a Tensor, the same
        m(cr.tensor(x))
    m(x.astype(np.float32))                             # the matching dtype runs
    m.to(cr.float64)(x)                                 # and so does a converted model
    try:
        torch = pytest.importorskip('torch')
    except pytest.skip.Exception:
        return
    if theirs is None:
        return
    with pytest.raises((RuntimeError, ValueError)):     # PyTorch refuses it too
        theirs(torch)(torch.ones(shape, dtype=torch.float64))


def test_the_dtype_check_sees_initial_states_and_traced_values():
    lstm = nn.LSTM(3, 2)
    x = np.ones((5, 4, 3), np.float32)
    h = np.zeros((1, 4, 2), np.float32)
    with pytest.raises(DTypeError, match="LSTM: input of dtype float64 .* 'weight_ih_l0'"):
        lstm(x, (h, h.astype(np.float64)))
    lin = nn.Linear(3, 2)
    x64 = np.ones((4, 3))
    for transform in (cr.jit, cr.vmap, lambda f: cr.grad(lambda x: f(x).sum())):
        with pytest.raises(DTypeError, match='Linear: input of dtype float64'):
            transform(lambda x: lin(x))(x64)
    # the functional form, as in JAX, promotes: the check is the module's
    assert nn.functional.linear(x64, lin.weight, lin.bias).dtype == np.float64


def test_modules_without_parameters_of_a_dtype_accept_any_input():
    x = np.ones((4, 3))
    assert nn.LayerNorm(3, elementwise_affine=False)(x).dtype == np.float64
    assert nn.GroupNorm(1, 3, affine=False)(x).dtype == np.float64
    assert nn.ReLU()(x).dtype == np.float64
    assert nn.Embedding(5, 2)(np.array([1, 2])).dtype == np.float32


def test_dropout_with_one_layer_warns_as_torch_does():
    torch = _torch()
    with pytest.warns(UserWarning, match='num_layers=1'):
        torch.nn.LSTM(IN, H, dropout=0.3)
    with pytest.warns(UserWarning, match='num_layers=1 it does nothing'):
        nn.LSTM(IN, H, dropout=0.3)
