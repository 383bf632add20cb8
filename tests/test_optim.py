"""chainrule.optim: a few steps of each optimizer match PyTorch's on the same parameters and
gradients; schedules match PyTorch's; clipping; state dicts survive save/load."""

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn, optim


def _torch():
    torch = pytest.importorskip('torch')
    torch.set_num_threads(1)
    return torch


CONFIGS = [
    ('SGD', dict(lr=0.1)),
    ('SGD', dict(lr=0.1, momentum=0.9)),
    ('SGD', dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ('SGD', dict(lr=0.05, momentum=0.5, dampening=0.3)),
    ('Adam', dict(lr=0.01)),
    ('Adam', dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True)),
    ('AdamW', dict(lr=0.01)),
    ('AdamW', dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    ('RMSprop', dict(lr=0.01)),
    ('RMSprop', dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.05)),
    ('Adagrad', dict(lr=0.1)),
    ('Adagrad', dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
]


@pytest.mark.parametrize('dtype', [np.float32, np.float64], ids=['f32', 'f64'])
@pytest.mark.parametrize('name,kw', CONFIGS, ids=[f'{n}-{i}' for i, (n, _) in
                                                  enumerate(CONFIGS)])
def test_steps_match_torch(name, kw, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    inits = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (5,)]]
    ours = [cr.tensor(a, requires_grad=True) for a in inits]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    opt = getattr(optim, name)(ours, **kw)
    topt = getattr(torch.optim, name)(theirs, **kw)
    for step in range(5):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in inits]
        for p, tp, g in zip(ours, theirs, grads):
            p.grad = cr.tensor(g)
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-12)
        for p, tp in zip(ours, theirs):
            assert p.dtype == dtype
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), **tol,
                                       err_msg=f'step {step}')


def test_step_updates_in_place_and_bumps_the_version():
    w = cr.tensor(np.ones(3), requires_grad=True)
    data = w.data
    y = w * w                                      # saves w for the backward pass
    y.sum().backward(retain_graph=True)
    optim.SGD([w], lr=0.5).step()
    assert w.data is data                          # updated in place
    np.testing.assert_allclose(w.numpy(), 0.0)
    with pytest.raises(cr.GradientError, match='modified in place'):
        y.sum().backward()


def test_zero_grad_and_param_groups():
    a = cr.tensor(np.ones(2), requires_grad=True)
    b = cr.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{'params': [a]}, {'params': [b], 'lr': 1.0}], lr=0.1)
    ((a + b) * 2).sum().backward()
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.8)
    np.testing.assert_allclose(b.numpy(), -1.0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match='two groups'):
        optim.SGD([{'params': [a]}, {'params': [a]}], lr=0.1)
    with pytest.raises(ValueError, match='leaf'):
        optim.SGD([a * 2], lr=0.1)


SCHEDULES = [
    ('StepLR', dict(step_size=3, gamma=0.5)),
    ('CosineAnnealingLR', dict(T_max=10, eta_min=0.01)),
    ('LinearLR', dict(start_factor=0.1, total_iters=4)),
    ('LambdaLR', dict(lr_lambda=lambda e: 0.9 ** e)),
]


@pytest.mark.parametrize('name,kw', SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedules_match_torch(name, kw):
    torch = _torch()
    w = cr.tensor(np.ones(2), requires_grad=True)
    tw = torch.ones(2, requires_grad=True)
    opt, topt = optim.SGD([w], lr=0.2), torch.optim.SGD([tw], lr=0.2)
    s, ts = getattr(optim, name)(opt, **kw), getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    for _ in range(12):
        assert s.get_last_lr()[0] == pytest.approx(ts.get_last_lr()[0], rel=1e-9, abs=1e-12)
        opt.step()
        topt.step()
        s.step()
        ts.step()


def test_warmup_cosine():
    opt = optim.SGD([cr.tensor(np.ones(1), requires_grad=True)], lr=1.0)
    s = optim.WarmupCosineLR(opt, warmup_steps=4, total_steps=12, eta_min=0.1)
    lrs = []
    for _ in range(14):
        lrs.append(s.get_last_lr()[0])
        s.step()
    np.testing.assert_allclose(lrs[:5], [0, 0.25, 0.5, 0.75, 1.0])
    assert lrs[8] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 2)) / 2)
    np.testing.assert_allclose(lrs[12:], 0.1)


@pytest.mark.parametrize('norm_type', [2.0, 1.0, math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    torch = _torch()
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in [(3, 4), (5,)]]
    ps = [cr.tensor(np.zeros(g.shape), requires_grad=True) for g in grads]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, tp, g in zip(ps, tps, grads):
        p.grad, tp.grad = cr.tensor(g), torch.from_numpy(g.copy())
    n = optim.clip_grad_norm_(ps, 1.5, norm_type)
    tn = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type)
    assert n == pytest.approx(float(tn), rel=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)
    # under the limit: untouched
    assert optim.clip_grad_norm_(ps, 100.0, norm_type) == pytest.approx(1.5, rel=1e-5)
    np.testing.assert_allclose(ps[0].grad.numpy(), tps[0].grad.numpy(), rtol=1e-12)


def test_optimizer_state_survives_save_and_load(tmp_path):
    def make():
        m = nn.Linear(3, 2, rng=0)
        return m, optim.Adam(m.parameters(), lr=0.05)

    x, y = np.ones((4, 3), np.float32), np.array([0, 1, 1, 0])

    def train(m, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()

    m1, o1 = make()
    train(m1, o1, 3)
    cr.save(tmp_path / 'ckpt.npz', {'model': m1.state_dict(), 'opt': o1.state_dict()})
    train(m1, o1, 3)
    m2, o2 = make()
    state = cr.load(tmp_path / 'ckpt.npz')
    m2.load_state_dict(state['model'])
    o2.load_state_dict(state['opt'])
    assert o2.state[m2.weight]['step'] == 3
    train(m2, o2, 3)
    np.testing.assert_array_equal(m2.weight.numpy(), m1.weight.numpy())
    np.testing.assert_array_equal(m2.bias.numpy(), m1.bias.numpy())
