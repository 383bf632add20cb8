"""Optimizer and scheduler state: `state_dict()` has PyTorch's layout (the same state entries
per parameter and the same group hyperparameters, PyTorch's implementation switches aside),
round-trips through `cr.save`/`cr.load` so that checkpoint -> fresh objects -> resume gives
exactly the iterates of an uninterrupted run, and a PyTorch optimizer's or scheduler's state
dict, converted to NumPy, loads and continues as PyTorch continues."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for state layouts')
    torch.set_num_threads(1)
    return torch


_rng = np.random.default_rng(11)
_X = _rng.standard_normal((8, 3))
_Y = _rng.standard_normal((8, 2))
_INIT = [_rng.standard_normal((3, 2)), _rng.standard_normal(2)]


def _loss(lib, w, b):
    r = (lib.tensor(_X) @ w + b).tanh() - lib.tensor(_Y)
    return (r * r).sum() + 0.1 * (w * w * w * w).sum()


# (optimizer, its arguments, scheduler or None, its arguments, scheduler steps per step)
SETUPS = [
    ('SGD', dict(lr=0.05, momentum=0.9, nesterov=True), 'OneCycleLR',
     dict(max_lr=0.1, total_steps=12)),
    ('SGD', dict(lr=0.05, weight_decay=0.1, maximize=False), 'StepLR', dict(step_size=3)),
    ('Adam', dict(lr=0.05, amsgrad=True), 'OneCycleLR',
     dict(max_lr=0.1, total_steps=12, three_phase=True)),
    ('AdamW', dict(lr=0.05), 'CosineAnnealingLR', dict(T_max=8)),
    ('NAdam', dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True), 'OneCycleLR',
     dict(max_lr=0.1, total_steps=12, anneal_strategy='linear')),
    ('Adamax', dict(lr=0.05), 'ExponentialLR', dict(gamma=0.9)),
    ('RMSprop', dict(lr=0.01, momentum=0.5, centered=True), 'OneCycleLR',
     dict(max_lr=0.02, total_steps=12)),
    ('Adagrad', dict(lr=0.1, lr_decay=0.01), 'ReduceLROnPlateau', dict(patience=1, factor=0.5)),
    ('Adadelta', dict(lr=1.0), 'MultiStepLR', dict(milestones=[3, 7])),
    ('LBFGS', dict(lr=0.5, max_iter=3, history_size=4), None, None),
    ('LBFGS', dict(max_iter=3, line_search_fn='strong_wolfe'), None, None),
]
_IDS = [f'{o}-{s}' for o, _, s, _ in SETUPS]


def _train(lib, opt, sched, params, steps, losses):
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = _loss(lib, *params)
            loss.backward()
            return loss
        loss = opt.step(closure)
        losses.append(float(loss.detach().numpy()))
        if sched is not None:
            if type(sched).__name__ == 'ReduceLROnPlateau':
                sched.step(round(losses[-1], 1))     # plateaus, so the rate drops
            else:
                sched.step()


def _make(lib, name, kw, sched_name, sched_kw, values):
    params = [lib.tensor(np.array(v), requires_grad=True) for v in values]
    opt = getattr(lib.optim, name)(params, **kw)
    sched = None if sched_name is None else \
        getattr(lib.optim.lr_scheduler, sched_name)(opt, **sched_kw)
    return params, opt, sched


@pytest.mark.parametrize('name,kw,sched_name,sched_kw', SETUPS, ids=_IDS)
def test_checkpoint_resume_equals_an_uninterrupted_run(name, kw, sched_name, sched_kw,
                                                       tmp_path):
    params, opt, sched = _make(cr, name, kw, sched_name, sched_kw, _INIT)
    whole = []
    _train(cr, opt, sched, params, 10, whole)
    # the same run, stopped after 4 steps, saved, and resumed in fresh objects
    params, opt, sched = _make(cr, name, kw, sched_name, sched_kw, _INIT)
    first = []
    _train(cr, opt, sched, params, 4, first)
    path = tmp_path / 'ckpt.npz'
    cr.save(path, {'params': [p.numpy() for p in params], 'opt': opt.state_dict(),
                   'sched': None if sched is None else sched.state_dict()})
    _train(cr, opt, sched, params, 6, [])               # later steps do not touch the file
    ckpt = cr.load(path)
    params2, opt2, sched2 = _make(cr, name, {**kw, 'lr': 123.0}, sched_name, sched_kw,
                                  ckpt['params'])
    opt2.load_state_dict(ckpt['opt'])
    if sched2 is not None:
        sched2.load_state_dict(ckpt['sched'])
    rest = []
    _train(cr, opt2, sched2, params2, 6, rest)
    assert first + rest == whole                        # bit for bit
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    if sched is not None:
        assert sched.get_last_lr() == sched2.get_last_lr()


def _to_numpy(x, torch):
    """A PyTorch state dict with every tensor converted to a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().numpy().copy()
    if isinstance(x, dict):
        return {k: _to_numpy(v, torch) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy(v, torch) for v in x)
    return x


@pytest.mark.parametrize('name,kw,sched_name,sched_kw', SETUPS, ids=_IDS)
def test_layout_is_pytorchs_and_pytorch_state_loads(name, kw, sched_name, sched_kw, tmp_path):
    torch = _torch()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)             # NAdam's mu_product in float64, as ours
    try:
        tparams, topt, tsched = _make(torch, name, kw, sched_name, sched_kw, _INIT)
        _train(torch, topt, tsched, tparams, 4, [])
        params, opt, sched = _make(cr, name, kw, sched_name, sched_kw, _INIT)
        _train(cr, opt, sched, params, 4, [])
        # the same layout
        ours, theirs = opt.state_dict(), topt.state_dict()
        switches = {'foreach', 'fused', 'capturable', 'differentiable'}
        for g, tg in zip(ours['param_groups'], theirs['param_groups']):
            ours_only = {'maximize'} if name == 'LBFGS' else set()   # torch's LBFGS has none
            assert set(g) - ours_only == set(tg) - switches
            assert g['params'] == tg['params']
        assert ours['state'].keys() == theirs['state'].keys()
        for i in ours['state']:
            assert ours['state'][i].keys() == theirs['state'][i].keys()
        # PyTorch's state, converted to NumPy (and through a file), continues as PyTorch does
        cr.save(tmp_path / 't.npz', {
            'params': [p.detach().numpy() for p in tparams],
            'opt': _to_numpy(theirs, torch),
            'sched': None if tsched is None else _to_numpy(tsched.state_dict(), torch)})
        ckpt = cr.load(tmp_path / 't.npz')
        params, opt, sched = _make(cr, name, kw, sched_name, sched_kw, ckpt['params'])
        opt.load_state_dict(ckpt['opt'])
        if sched is not None:
            sched.load_state_dict(ckpt['sched'])
        mine, reference = [], []
        _train(cr, opt, sched, params, 6, mine)
        _train(torch, topt, tsched, tparams, 6, reference)
    finally:
        torch.set_default_dtype(old)
    np.testing.assert_allclose(mine, reference, rtol=1e-11)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    if sched is not None:
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=1e-13)


def test_state_dict_is_a_copy_and_checks_the_parameter_count():
    w = cr.tensor(np.ones(2), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    before = sd['state'][0]['exp_avg'].copy()
    opt.step()
    np.testing.assert_array_equal(sd['state'][0]['exp_avg'], before)
    v = cr.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r'\[1\] parameters per group.*\[2\]'):
        optim.Adam([w, v]).load_state_dict(sd)


def test_loaded_state_takes_the_parameter_dtype():
    w = cr.tensor(np.ones(2, np.float32), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    opt.load_state_dict({'state': {0: {'momentum_buffer': np.ones(2)}},
                         'param_groups': [{'lr': np.array(0.5), 'momentum': 0.9,
                                           'dampening': 0, 'weight_decay': 0,
                                           'nesterov': False, 'maximize': False,
                                           'foreach': None, 'params': [0]}]})
    assert opt.state[w]['momentum_buffer'].dtype == np.float32
    assert opt.param_groups[0]['lr'] == 0.5 and 'foreach' not in opt.param_groups[0]
