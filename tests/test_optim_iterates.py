"""Every optimizer and option set (maximize and weight decay included) follows PyTorch 2.13's
iterates for 30 steps on the same nonlinear problem from the same start: float64 to a few
units in the last place, float32 to float precision; LBFGS with and without the strong-Wolfe
line search, on real and complex parameters. Reference: `torch.optim`, skipped (with the
reason) when PyTorch is not installed."""

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for optimizer steps')
    torch.set_num_threads(1)
    return torch


_rng = np.random.default_rng(7)
_X = _rng.standard_normal((6, 3))
_Y = _rng.standard_normal((6, 5))
_INIT = [_rng.standard_normal((3, 5)), _rng.standard_normal(5)]


def _loss(lib, w, b, sign):
    """A smooth nonconvex regression loss written once for both libraries (`sign=-1` gives
    the loss to maximise)."""
    x, y = lib.tensor(_X, dtype=w.dtype), lib.tensor(_Y, dtype=w.dtype)
    r = (x @ w + b).tanh() - y
    return sign * ((r * r).sum() + 0.1 * (w * w * w * w).sum())


def _np(t):
    return t.detach().numpy()


def _iterates(lib, name, kw, dtype, steps=30):
    maximize = kw.get('maximize', False)
    ps = [lib.tensor(a.astype(dtype), requires_grad=True) for a in _INIT]
    opt = getattr(lib.optim, name)(ps, **kw)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(lib, *ps, -1.0 if maximize else 1.0).backward()
        opt.step()
        out.append(np.concatenate([_np(p).ravel() for p in ps]))
    return np.array(out)


CONFIGS = [
    ('SGD', dict(lr=0.02, maximize=True)),
    ('SGD', dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True)),
    ('Adam', dict(lr=0.02, maximize=True, weight_decay=0.05)),
    ('Adam', dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True)),
    ('AdamW', dict(lr=0.02, weight_decay=0.2, maximize=True)),
    ('RMSprop', dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1, maximize=True)),
    ('Adagrad', dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True)),
    ('NAdam', dict()),
    ('NAdam', dict(lr=0.02, betas=(0.8, 0.99), momentum_decay=0.01)),
    ('NAdam', dict(lr=0.02, weight_decay=0.1)),
    ('NAdam', dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ('Adamax', dict()),
    ('Adamax', dict(lr=0.05, betas=(0.7, 0.9), eps=1e-6, weight_decay=0.1)),
    ('Adamax', dict(lr=0.05, maximize=True)),
    ('Adadelta', dict()),
    ('Adadelta', dict(lr=0.5, rho=0.7, eps=1e-4, weight_decay=0.1)),
    ('Adadelta', dict(lr=0.5, maximize=True, weight_decay=0.05)),
]
_IDS = [f'{n}-{"-".join(f"{k}={v}" for k, v in kw.items())}' for n, kw in CONFIGS]


@pytest.fixture
def torch64():
    """PyTorch with float64 as its default dtype, so its scalar state (`NAdam`'s `mu_product`,
    kept in a float32 tensor by default) is float64 like ours."""
    torch = _torch()
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(old)


@pytest.mark.parametrize('name,kw', CONFIGS, ids=_IDS)
def test_iterates_match_torch_float64(name, kw, torch64):
    ours = _iterates(cr, name, kw, np.float64)
    theirs = _iterates(torch64, name, kw, np.float64)
    assert np.abs(ours - theirs[0]).max() > 1e-3           # the parameters moved
    # near machine precision: the gradients themselves differ in the last place (NumPy's and
    # PyTorch's tanh and matmul), and 30 steps of a nonlinear problem grow that to at most
    # ~1e-13 (measured: 3e-17 to 3e-14)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=2e-13)


@pytest.mark.parametrize('name,kw', CONFIGS[::3], ids=_IDS[::3])
def test_iterates_match_torch_float32(name, kw):
    torch = _torch()
    ours = _iterates(cr, name, kw, np.float32, steps=10)
    theirs = _iterates(torch, name, kw, np.float32, steps=10)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-6)


def test_maximize_ascends():
    # no reference needed: maximising -|w - 3|^2 brings w to 3
    for name, kw in [('SGD', dict(lr=0.1)), ('Adam', dict(lr=0.1)),
                     ('Adadelta', dict(lr=5.0)), ('NAdam', dict(lr=0.1))]:
        w = cr.tensor(np.zeros(2), requires_grad=True)
        opt = getattr(optim, name)([w], maximize=True, **kw)
        for _ in range(300):
            opt.zero_grad()
            (-((w - 3.0) ** 2).sum()).backward()
            opt.step()
        np.testing.assert_allclose(w.numpy(), 3.0, atol=1e-2, err_msg=name)


@pytest.mark.parametrize('name,kw', [('NAdam', dict(lr=0.5)), ('Adamax', dict(lr=0.5)),
                                     ('Adadelta', dict(lr=1.0))])
def test_hyperparameter_checks(name, kw):
    w = cr.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match='lr=-1'):
        getattr(optim, name)([w], **{**kw, 'lr': -1})
    bad = dict(NAdam=dict(momentum_decay=-1), Adamax=dict(betas=(1.0, 0.9)),
               Adadelta=dict(rho=1.5))[name]
    with pytest.raises(ValueError, match=list(bad)[0]):
        getattr(optim, name)([w], **{**kw, **bad})


# --- LBFGS -------------------------------------------------------------------------------------

def _rosenbrock(x):
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _lbfgs_run(lib, kw, x0, loss_fn, steps):
    x = lib.tensor(x0.copy(), requires_grad=True)
    opt = lib.optim.LBFGS([x], **kw)
    losses, iterates = [], []

    def closure():
        opt.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(_np(opt.step(closure))))
        iterates.append(_np(x).copy())
    st = opt.state[opt.param_groups[0]['params'][0]]
    return np.array(losses), np.array(iterates), (st['func_evals'], st['n_iter'])


LBFGS_CONFIGS = [
    dict(max_iter=5),
    dict(max_iter=5, line_search_fn='strong_wolfe'),
    dict(lr=0.5, max_iter=7, history_size=3),
    dict(lr=1, max_iter=8, history_size=2, line_search_fn='strong_wolfe', max_eval=9),
    dict(lr=0.1, tolerance_change=1e-5, tolerance_grad=1e-4),
]


@pytest.mark.parametrize('kw', LBFGS_CONFIGS, ids=[str(sorted(k.items())) for k in
                                                    LBFGS_CONFIGS])
def test_lbfgs_matches_torch(kw):
    torch = _torch()
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    ours = _lbfgs_run(cr, dict(kw), x0, _rosenbrock, 4)
    theirs = _lbfgs_run(torch, dict(kw), x0, _rosenbrock, 4)
    assert ours[2] == theirs[2]                     # the same closure calls and iterations
    # last-place differences of the gradients grow along Rosenbrock's valley: measured at most
    # 1e-14 after 4 steps, but 3e-10 with the short history (history_size=2), where each step
    # amplifies them ~30x; the identical counts above show the same path was taken
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-9, atol=1e-12)


def test_lbfgs_strong_wolfe_reaches_rosenbrock_minimum():
    x = cr.tensor(np.array([-1.2, 1.0]), requires_grad=True)
    opt = optim.LBFGS([x], line_search_fn='strong_wolfe', max_iter=100, tolerance_grad=1e-12,
                      tolerance_change=1e-15)

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(x)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(x.numpy(), [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize('line_search_fn', [None, 'strong_wolfe'])
def test_lbfgs_complex_and_maximize_match_torch(line_search_fn):
    torch = _torch()
    a = np.array([[1.0 + 0.5j, 0.3], [0.2j, 2.0 - 1j]])
    b = np.array([1 - 1j, 0.5j])

    def loss_cr(z):
        return (cr.numpy.abs(cr.numpy.matmul(a, z) - b) ** 2).sum() + (
            cr.numpy.abs(z) ** 4).sum()

    def loss_t(z):
        return ((torch.tensor(a) @ z - torch.tensor(b)).abs() ** 2).sum() + (z.abs() ** 4).sum()

    kw = dict(lr=0.5, max_iter=10, line_search_fn=line_search_fn)
    z0 = np.array([0.1 + 0.2j, -0.3j])
    ours = _lbfgs_run(cr, dict(kw), z0, loss_cr, 3)
    theirs = _lbfgs_run(torch, dict(kw), z0, loss_t, 3)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-10, atol=1e-12)
    # maximize=True on the negated loss gives the same iterates as minimising it (torch's
    # LBFGS has no maximize: its closure returns the loss itself)
    ours_max = _lbfgs_run(cr, dict(kw, maximize=True), z0, lambda z: -loss_cr(z), 3)
    np.testing.assert_allclose(ours_max[1], theirs[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_max[0], -theirs[0], rtol=1e-10)


def test_lbfgs_refuses_groups_and_a_missing_closure():
    w = cr.tensor(np.zeros(2), requires_grad=True)
    v = cr.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(ValueError, match='groups'):
        optim.LBFGS([{'params': [w]}, {'params': [v]}])
    with pytest.raises(ValueError, match='closure'):
        optim.LBFGS([w]).step()
    with pytest.raises(ValueError, match='line_search_fn'):
        optim.LBFGS([w], line_search_fn='armijo')
