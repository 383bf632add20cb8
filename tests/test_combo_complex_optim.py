"""Complex parameters x every optimizer and option set x problem: the iterates equal PyTorch's.

`Tensor.grad` is in JAX's convention (the conjugate of PyTorch's), and the optimizers step along
`conj(grad)`, treating a complex number as its (real, imaginary) pair where PyTorch does
(`view_as_real`). Reference: `torch.optim` on the same problem from the same start; skipped
(with the reason) when PyTorch is not installed.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import optim
from chainrule.core import DTypeError


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for optimizer steps')
    torch.set_num_threads(1)
    return torch


OPTIONS = [
    ('SGD', dict(lr=0.01)),
    ('SGD', dict(lr=0.01, momentum=0.9)),
    ('SGD', dict(lr=0.01, momentum=0.9, dampening=0.5)),
    ('SGD', dict(lr=0.01, momentum=0.9, nesterov=True)),
    ('SGD', dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    ('SGD', dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ('Adam', dict(lr=0.05)),
    ('Adam', dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6)),
    ('Adam', dict(lr=0.05, weight_decay=0.1)),
    ('Adam', dict(lr=0.05, amsgrad=True)),
    ('Adam', dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    ('AdamW', dict(lr=0.05)),
    ('AdamW', dict(lr=0.05, weight_decay=0.3)),
    ('AdamW', dict(lr=0.05, amsgrad=True)),
    ('RMSprop', dict(lr=0.01)),
    ('RMSprop', dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ('RMSprop', dict(lr=0.01, momentum=0.5)),
    ('RMSprop', dict(lr=0.01, centered=True)),
    ('RMSprop', dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ('Adagrad', dict(lr=0.1)),
    ('Adagrad', dict(lr=0.1, lr_decay=0.01, weight_decay=0.1)),
    ('Adagrad', dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ('NAdam', dict(lr=0.05)),
    ('NAdam', dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)),
    ('Adamax', dict(lr=0.05, weight_decay=0.1)),
    ('Adadelta', dict(lr=1.0)),
    ('Adadelta', dict(lr=0.5, weight_decay=0.1)),
    ('SGD', dict(lr=0.01, momentum=0.9, maximize=True)),
    ('Adam', dict(lr=0.05, maximize=True)),
]

_rng = np.random.default_rng(0)
_A = _rng.normal(size=(6, 3)) + 1j * _rng.normal(size=(6, 3))
_B = _rng.normal(size=6) + 1j * _rng.normal(size=6)


def _lstsq_cr(z):
    return (cnp.abs(cnp.matmul(_A.astype(z.dtype), z) - _B.astype(z.dtype)) ** 2).sum()


def _lstsq_torch(torch, z):
    return ((torch.tensor(_A, dtype=z.dtype) @ z - torch.tensor(_B, dtype=z.dtype)).abs() ** 2
            ).sum()


def _target_cr(z):                        # the issue's reproduction: abs(z - (1+2j))**2
    return (cnp.abs(z - (1 + 2j)) ** 2).sum()


def _target_torch(torch, z):
    return ((z - (1 + 2j)).abs() ** 2).sum()


PROBLEMS = {
    'lstsq': (_lstsq_cr, _lstsq_torch, lambda: np.array([0.5 - 1j, -0.3 + 0.2j, 1.0 + 0.7j])),
    'abs2': (_target_cr, _target_torch, lambda: np.array([0j])),
}


def _iterates_cr(name, kw, loss, z0, steps, dtype):
    z = cr.tensor(z0.astype(dtype), requires_grad=True)
    opt = getattr(optim, name)([z], **kw)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss(z).backward()
        opt.step()
        out.append(z.data.copy())
    return np.array(out)


def _iterates_torch(torch, name, kw, loss, z0, steps, dtype):
    z = torch.tensor(z0.astype(dtype), requires_grad=True)
    opt = getattr(torch.optim, name)([z], **kw)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        loss(torch, z).backward()
        opt.step()
        out.append(z.detach().numpy().copy())
    return np.array(out)


@pytest.mark.parametrize('problem', sorted(PROBLEMS))
@pytest.mark.parametrize('name,kw', OPTIONS, ids=[f'{n}-{sorted(k.items())}' for n, k in OPTIONS])
def test_complex_iterates_match_torch(name, kw, problem):
    torch = _torch()
    loss_cr, loss_torch, z0 = PROBLEMS[problem]
    ours = _iterates_cr(name, kw, loss_cr, z0(), 30, np.complex128)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)       # NAdam's mu_product: float64, as ours
    try:
        theirs = _iterates_torch(torch, name, kw, loss_torch, z0(), 30, np.complex128)
    finally:
        torch.set_default_dtype(old)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('name,kw', [OPTIONS[1], OPTIONS[9], OPTIONS[17], OPTIONS[19]],
                         ids=['SGD', 'Adam-amsgrad', 'RMSprop-centered', 'Adagrad'])
def test_complex64_iterates_match_torch(name, kw):
    torch = _torch()
    ours = _iterates_cr(name, kw, _lstsq_cr, PROBLEMS['lstsq'][2](), 20, np.complex64)
    theirs = _iterates_torch(torch, name, kw, _lstsq_torch, PROBLEMS['lstsq'][2](), 20,
                             np.complex64)
    assert ours.dtype == np.complex64
    np.testing.assert_allclose(ours, theirs, rtol=2e-4, atol=2e-5)


def test_issue_reproduction_reaches_the_minimum():
    # no reference needed: the minimum of |z - (1+2j)|^2 is 1+2j
    z = cr.tensor(np.array([0j]), requires_grad=True)
    opt = optim.SGD([z], lr=0.1)
    for _ in range(100):
        opt.zero_grad()
        (cnp.abs(z - (1 + 2j)) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(z.numpy(), [1 + 2j], atol=1e-8)


@pytest.mark.parametrize('name,kw', [('SGD', dict(lr=0.1, momentum=0.9)),
                                     ('Adam', dict(lr=0.1)), ('Adagrad', dict(lr=0.5))])
def test_mixed_real_and_complex_parameters_and_state_roundtrip(name, kw, tmp_path):
    # a real and a complex parameter in one optimizer; state is complex, shaped like the
    # parameter, and survives state_dict -> save -> load -> continue unchanged
    torch = _torch()
    w0, z0 = np.array([0.5, -1.0]), np.array([[0.3 - 0.2j, -1 + 1j]])

    def loss_cr(w, z):
        return (cnp.abs(z * w - (1 - 2j)) ** 2).sum() + (w ** 2).sum()

    def run_cr(split):
        w, z = cr.tensor(w0, requires_grad=True), cr.tensor(z0, requires_grad=True)
        opt = getattr(optim, name)([w, z], **kw)
        for i in range(10):
            if i == split:
                path = str(tmp_path / 'opt.npz')
                cr.save(path, opt.state_dict())
                opt = getattr(optim, name)([w, z], **kw)
                opt.load_state_dict(cr.load(path))
            opt.zero_grad()
            loss_cr(w, z).backward()
            opt.step()
        return w.data, z.data, opt

    w_t, z_t = torch.tensor(w0, requires_grad=True), torch.tensor(z0, requires_grad=True)
    opt_t = getattr(torch.optim, name)([w_t, z_t], **kw)
    for _ in range(10):
        opt_t.zero_grad()
        ((z_t * w_t - (1 - 2j)).abs() ** 2).sum().add((w_t ** 2).sum()).backward()
        opt_t.step()
    for split in (None, 4):
        w, z, opt = run_cr(split)
        np.testing.assert_allclose(w, w_t.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(z, z_t.detach().numpy(), rtol=1e-10)
    for k, v in opt.state[opt.param_groups[0]['params'][1]].items():
        if isinstance(v, np.ndarray):
            assert v.dtype == np.complex128 and v.shape == z0.shape, k


def test_manual_step_along_conj_grad_matches_torch():
    # the documented rule for a hand-written step: z -= lr * conj(z.grad)
    torch = _torch()
    z = cr.tensor(np.array([0.2 + 0.1j]), requires_grad=True)
    _lstsq_like = (cnp.abs(z * (2 - 1j) - 1j) ** 2).sum()
    _lstsq_like.backward()
    zt = torch.tensor([0.2 + 0.1j], requires_grad=True)
    ((zt * (2 - 1j) - 1j).abs() ** 2).sum().backward()
    np.testing.assert_allclose(np.conj(z.grad.numpy()), zt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize('norm_type', [2.0, 1.0, float('inf')])
def test_clip_grad_norm_on_complex_grads_matches_torch(norm_type):
    torch = _torch()
    z0 = np.array([3 + 4j, -1 + 2j])
    w0 = np.array([0.5, -2.0])
    z, w = cr.tensor(z0, requires_grad=True), cr.tensor(w0, requires_grad=True)
    ((cnp.abs(z * w.astype(complex) - 1j) ** 2).sum()).backward()
    zt, wt = torch.tensor(z0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    ((zt * wt.to(torch.complex128) - 1j).abs() ** 2).sum().backward()
    total = optim.clip_grad_norm_([z, w], max_norm=1.5, norm_type=norm_type)
    total_t = torch.nn.utils.clip_grad_norm_([zt, wt], max_norm=1.5, norm_type=norm_type)
    assert total == pytest.approx(float(total_t), rel=1e-12)
    np.testing.assert_allclose(np.conj(z.grad.numpy()), zt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-6)
    # then an optimizer step on clipped gradients still matches
    opt, opt_t = optim.SGD([z, w], lr=0.1), torch.optim.SGD([zt, wt], lr=0.1)
    opt.step()
    opt_t.step()
    np.testing.assert_allclose(z.numpy(), zt.detach().numpy(), rtol=1e-6)


def test_clip_grad_value_matches_torch_and_refuses_complex():
    torch = _torch()
    w0 = np.array([[0.5, -2.0, 3.0]])
    w, wt = cr.tensor(w0, requires_grad=True), torch.tensor(w0, requires_grad=True)
    (w ** 3).sum().backward()
    (wt ** 3).sum().backward()
    optim.clip_grad_value_(w, 1.0)
    torch.nn.utils.clip_grad_value_(wt, 1.0)
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy())
    z = cr.tensor(np.array([1 + 1j]), requires_grad=True)
    (cnp.abs(z) ** 2).sum().backward()
    with pytest.raises(DTypeError, match='clip_grad_value_.*complex128.*clip_grad_norm_'):
        optim.clip_grad_value_([z], 0.1)
