"""ConstantLR, PolynomialLR, MultiplicativeLR, CosineAnnealingWarmRestarts, CyclicLR,
SequentialLR and ChainedScheduler: the learning-rate (and momentum) sequences equal PyTorch
2.13's for the same optimizer and options (skipped, with the reason, without PyTorch)."""

import numpy as np
import pytest

import chainrule as cr


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for the schedules')
    torch.set_num_threads(1)
    return torch


def _opt(lib, name='SGD', **kw):
    ps = [lib.tensor(np.ones(2), requires_grad=True) for _ in range(2)]
    kw = kw or dict(lr=0.1, momentum=0.9)
    return getattr(lib.optim, name)([{'params': [ps[0]]}, {'params': [ps[1]], 'lr': 0.3}], **kw)


def _momenta(opt):
    return [g['betas'][0] if 'betas' in g else g.get('momentum', 0.0) for g in opt.param_groups]


def _run(lib, make, steps, opt_name='SGD', opt_kw=None, epochs=None):
    opt = _opt(lib, opt_name, **(opt_kw or {}))
    sched = make(lib.optim.lr_scheduler, opt)
    out = [[g['lr'] for g in opt.param_groups] + _momenta(opt)]
    for i in range(steps):
        opt.step()
        if epochs is None:
            sched.step()
        else:
            sched.step(epochs[i])
        out.append([g['lr'] for g in opt.param_groups] + _momenta(opt) +
                   list(sched.get_last_lr()))
    return np.array(out[1:], dtype=float), np.array(out[0], dtype=float)


CASES = {
    'constant': lambda L, o: L.ConstantLR(o, factor=0.5, total_iters=4),
    'polynomial': lambda L, o: L.PolynomialLR(o, total_iters=6, power=2.0),
    'multiplicative': lambda L, o: L.MultiplicativeLR(o, lambda e: 0.9 if e % 2 else 0.95),
    'warm_restarts': lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.01),
    'warm_restarts_mult': lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    'cyclic': lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
    'cyclic2': lambda L, o: L.CyclicLR(o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=2,
                                       step_size_down=4, mode='triangular2'),
    'cyclic_exp': lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2,
                                          mode='exp_range', gamma=0.9, cycle_momentum=False),
    'sequential': lambda L, o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1,
                                                             total_iters=3),
                                                  L.ExponentialLR(o, gamma=0.8)],
                                              milestones=[4]),
    'sequential3': lambda L, o: L.SequentialLR(o, [L.ConstantLR(o, factor=0.5, total_iters=2),
                                                   L.CosineAnnealingLR(o, T_max=4),
                                                   L.StepLR(o, step_size=2, gamma=0.5)],
                                               milestones=[3, 7]),
    'chained': lambda L, o: L.ChainedScheduler([L.ConstantLR(o, factor=0.5, total_iters=3),
                                                L.ExponentialLR(o, gamma=0.9)]),
    'chained_poly': lambda L, o: L.ChainedScheduler([L.PolynomialLR(o, total_iters=8),
                                                     L.MultiStepLR(o, [2, 5], gamma=0.5)]),
}


@pytest.mark.parametrize('name', sorted(CASES))
def test_schedule_matches_torch(name):
    torch = _torch()
    ours, ours0 = _run(cr, CASES[name], 14)
    ref, ref0 = _run(torch, CASES[name], 14)
    np.testing.assert_allclose(ours0, ref0, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-15)


def test_cyclic_adam_beta1_matches_torch():
    torch = _torch()
    make = lambda L, o: L.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=2,  # noqa
                                   base_momentum=0.85, max_momentum=0.95)
    ours, _ = _run(cr, make, 9, 'Adam', dict(lr=0.1))
    ref, _ = _run(torch, make, 9, 'Adam', dict(lr=0.1))
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_warm_restarts_fractional_epochs_match_torch():
    torch = _torch()
    epochs = [0.5, 1.0, 1.5, 2.0, 3.25, 5.0, 6.5, 7.0, 13.0, 2.0]
    make = lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2)  # noqa: E731
    ours, _ = _run(cr, make, len(epochs), epochs=epochs)
    ref, _ = _run(torch, make, len(epochs), epochs=epochs)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_bad_arguments_are_named():
    opt = _opt(cr)
    L = cr.optim.lr_scheduler
    with pytest.raises(ValueError, match='T_0'):
        L.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match='milestones'):
        L.SequentialLR(opt, [L.ConstantLR(opt), L.ExponentialLR(opt, 0.9)], milestones=[])
    with pytest.raises(ValueError, match='cycle_momentum'):
        L.CyclicLR(_opt(cr, 'Adagrad', lr=0.1), 0.01, 0.1)
    with pytest.raises(ValueError, match='mode'):
        L.CyclicLR(opt, 0.01, 0.1, mode='sawtooth')


def test_multiplicative_state_round_trip():
    opt = _opt(cr)
    s = cr.optim.lr_scheduler.MultiplicativeLR(opt, lambda e: 0.5)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    opt2 = _opt(cr)
    s2 = cr.optim.lr_scheduler.MultiplicativeLR(opt2, lambda e: 0.5)
    s2.load_state_dict(state)
    assert s2.get_last_lr() == pytest.approx(s.get_last_lr())
    s.step(), s2.step()
    assert s2.get_last_lr() == pytest.approx(s.get_last_lr())
