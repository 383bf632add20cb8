"""chainrule.optim.lr_scheduler: the learning-rate (and momentum) sequences of every scheduler
equal PyTorch 2.13's for the same optimizer, option set and metric sequence. Reference:
`torch.optim.lr_scheduler`, skipped (with the reason) when PyTorch is not installed."""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.optim import lr_scheduler


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for the schedules')
    torch.set_num_threads(1)
    return torch


def _two_groups(lib, opt_name, opt_kw):
    ps = [lib.tensor(np.ones(2), requires_grad=True) for _ in range(2)]
    return getattr(lib.optim, opt_name)([{'params': [ps[0]]}, {'params': [ps[1]], 'lr': 0.3}],
                                        **opt_kw)


def _momenta(opt):
    return [g['betas'][0] if 'betas' in g else g.get('momentum') for g in opt.param_groups]


def _sequence(lib, opt_name, opt_kw, sched_name, sched_kw, steps, metrics=None):
    """lr and momentum of both groups after construction and after each step."""
    opt = _two_groups(lib, opt_name, opt_kw)
    sched = getattr(lib.optim.lr_scheduler, sched_name)(opt, **sched_kw)
    out = [[g['lr'] for g in opt.param_groups] + _momenta(opt)]
    for i in range(steps):
        opt.step()
        sched.step(*([] if metrics is None else [metrics[i]]))
        out.append([g['lr'] for g in opt.param_groups] + _momenta(opt))
    return np.array(out, dtype=float), sched


ONE_CYCLE = [
    ('SGD', dict(lr=0.1, momentum=0.9), dict(max_lr=1.0, total_steps=20)),
    ('SGD', dict(lr=0.1, momentum=0.9), dict(max_lr=[1.0, 2.0], epochs=3, steps_per_epoch=7,
                                             pct_start=0.25, anneal_strategy='linear')),
    ('SGD', dict(lr=0.1), dict(max_lr=0.5, total_steps=25, three_phase=True,
                               cycle_momentum=False, div_factor=10.0, final_div_factor=100.0)),
    ('Adam', dict(lr=0.1), dict(max_lr=0.01, total_steps=30, base_momentum=0.8,
                                max_momentum=[0.9, 0.95], three_phase=True)),
    ('AdamW', dict(lr=0.1), dict(max_lr=0.01, total_steps=16, pct_start=0.5)),
    ('RMSprop', dict(lr=0.1, momentum=0.5), dict(max_lr=0.02, total_steps=12)),
]


@pytest.mark.parametrize('opt_name,opt_kw,kw', ONE_CYCLE,
                         ids=[f'{o}-{i}' for i, (o, _, _) in enumerate(ONE_CYCLE)])
def test_one_cycle_matches_torch(opt_name, opt_kw, kw):
    torch = _torch()
    n = kw.get('total_steps') or kw['epochs'] * kw['steps_per_epoch']
    ours, _ = _sequence(cr, opt_name, opt_kw, 'OneCycleLR', kw, n - 1)
    theirs, _ = _sequence(torch, opt_name, opt_kw, 'OneCycleLR', kw, n - 1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15)
    assert len(np.unique(ours[:, 0])) > n // 2               # the rate did move


def test_one_cycle_errors():
    w = cr.tensor(np.ones(2), requires_grad=True)
    sched = optim.OneCycleLR(optim.SGD([w], lr=0.1, momentum=0.9), max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match='total_steps=3'):
        sched.step()
    with pytest.raises(ValueError, match='cycle_momentum'):
        optim.OneCycleLR(optim.Adagrad([w]), max_lr=1.0, total_steps=3)
    with pytest.raises(ValueError, match='total_steps'):
        optim.OneCycleLR(optim.SGD([w]), max_lr=1.0)
    with pytest.raises(ValueError, match='anneal_strategy'):
        optim.OneCycleLR(optim.SGD([w]), max_lr=1.0, total_steps=3, anneal_strategy='exp')


_rng = np.random.default_rng(3)
_METRICS = list(np.concatenate([np.linspace(1.0, 0.5, 5), np.full(8, 0.5),
                                0.5 - 1e-6 * np.arange(6), 0.4 + 0.05 * _rng.random(20)]))

PLATEAU = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(patience=1, factor=0.5, threshold=1e-3, threshold_mode='abs', cooldown=2),
    dict(mode='max', patience=2, factor=0.3, threshold=0.01),
    dict(mode='max', patience=0, threshold_mode='abs', threshold=0.0, min_lr=[0.01, 0.05]),
    dict(patience=1, factor=0.2, min_lr=0.02, eps=1e-3),
]


@pytest.mark.parametrize('kw', PLATEAU, ids=[str(sorted(k.items())) for k in PLATEAU])
def test_reduce_on_plateau_matches_torch(kw):
    torch = _torch()
    ours, s = _sequence(cr, 'SGD', dict(lr=0.1), 'ReduceLROnPlateau', kw, len(_METRICS),
                        _METRICS)
    theirs, ts = _sequence(torch, 'SGD', dict(lr=0.1), 'ReduceLROnPlateau', kw, len(_METRICS),
                           _METRICS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-15)
    assert (s.best, s.num_bad_epochs, s.cooldown_counter) == (ts.best, ts.num_bad_epochs,
                                                               ts.cooldown_counter)


def test_reduce_on_plateau_reduces_and_takes_a_tensor_metric():
    w = cr.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    s = optim.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    for m in [1.0, 1.0, 1.0, cr.tensor(1.0), 1.0]:
        s.step(m)
    assert opt.param_groups[0]['lr'] == 0.25
    with pytest.raises(ValueError, match='factor'):
        optim.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match='mode'):
        optim.ReduceLROnPlateau(opt, mode='up')


CLOSED_FORM = [
    ('StepLR', dict(step_size=3, gamma=0.5)),
    ('MultiStepLR', dict(milestones=[2, 5, 6], gamma=0.3)),
    ('ExponentialLR', dict(gamma=0.9)),
    ('CosineAnnealingLR', dict(T_max=10, eta_min=0.01)),
    ('LinearLR', dict(start_factor=0.1, total_iters=4)),
]


@pytest.mark.parametrize('name,kw', CLOSED_FORM, ids=[c[0] for c in CLOSED_FORM])
def test_closed_forms_match_torch_on_two_groups(name, kw):
    torch = _torch()
    ours, _ = _sequence(cr, 'SGD', dict(lr=0.2, momentum=0.5), name, kw, 12)
    theirs, _ = _sequence(torch, 'SGD', dict(lr=0.2, momentum=0.5), name, kw, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def test_lr_scheduler_is_a_module_with_pytorchs_names():
    import chainrule.optim.lr_scheduler as m
    assert m is lr_scheduler is cr.optim.lr_scheduler
    for n in ['StepLR', 'MultiStepLR', 'ExponentialLR', 'CosineAnnealingLR', 'LinearLR',
              'LambdaLR', 'OneCycleLR', 'ReduceLROnPlateau', 'LRScheduler']:
        assert getattr(m, n) is getattr(optim, n)
    assert issubclass(optim.ReduceLROnPlateau, optim.LRScheduler)


def test_resume_with_last_epoch():
    # PyTorch's last_epoch argument: a scheduler made at step k continues the schedule
    w = cr.tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([w], lr=1.0)
    s = optim.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        s.step()
    s2 = optim.CosineAnnealingLR(opt, T_max=10, last_epoch=3)
    assert s2.get_last_lr() == s.get_last_lr() == [(1 + math.cos(math.pi * 4 / 10)) / 2]
    with pytest.raises(KeyError, match='initial_lr'):
        optim.StepLR(optim.SGD([w], lr=1.0), step_size=2, last_epoch=3)
