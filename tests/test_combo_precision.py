"""Derivatives at the edges of their inputs, on every path (grad, jit, vmap, Tensor.backward,
second order): the logistic family far into its tails, against analytic formulas written so
that they keep their relative precision; binary cross-entropy at probabilities 0 and 1,
against PyTorch's formula."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule import nn

X = np.array([-745., -700., -100., -40., -37., -20., -3., -0.5, 0., 0.5, 3., 20., 37., 40., 100.,
              700., 745.])
T = (np.arange(X.size) % 3) / 2.0          # targets 0, 0.5, 1 for the cross-entropies


def _e(x):
    return np.exp(-np.abs(x))


def _sig(x):
    e = _e(x)
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# (function, analytic first derivative, analytic second derivative), each exact to a few ulps
FAMILY = {
    'sigmoid': (F.sigmoid, lambda x: _e(x) / (1 + _e(x)) ** 2,
                lambda x: -np.sign(x) * _e(x) * (1 - _e(x)) / (1 + _e(x)) ** 3),
    'logsigmoid': (F.logsigmoid, lambda x: _sig(-x), lambda x: -_e(x) / (1 + _e(x)) ** 2),
    # PyTorch's softplus is x itself beyond its threshold (20): derivative 1, then 0
    'softplus': (F.softplus, lambda x: np.where(x > 20, 1.0, _sig(x)),
                 lambda x: np.where(x > 20, 0.0, _e(x) / (1 + _e(x)) ** 2)),
    # sigmoid(x) - t, as -sigmoid(-x) where t = 1 (no cancellation there)
    'bce_with_logits': (lambda x: F.binary_cross_entropy_with_logits(x, T, reduction='none'),
                        lambda x: np.where(T == 1, -_sig(-x), _sig(x) - T),
                        lambda x: _e(x) / (1 + _e(x)) ** 2),
    'silu': (F.silu, lambda x: _sig(x) * (1 + x * _sig(-x)), None),
}

PATHS = ['grad', 'jit-grad', 'vmap-grad', 'tensor-backward']


def _first(f, path, x):
    total = lambda x: cnp.sum(f(x))     # noqa: E731
    if path == 'grad':
        return cr.grad(total)(x)
    if path == 'jit-grad':
        return cr.jit(cr.grad(total))(x)
    if path == 'vmap-grad':
        return cr.vmap(cr.grad(lambda xi, i: cnp.sum(f_at(f, xi, i))))(x, np.arange(x.size))
    t = cr.Tensor(x, requires_grad=True)
    total(t).backward()
    return t.grad.numpy()


def f_at(f, xi, i):
    """Element i of f's result for element x_i (vmap over elements of a function whose
    targets are per element)."""
    full = cnp.where(np.arange(X.size) == i, xi, X)
    return cnp.sum(cnp.where(np.arange(X.size) == i, f(full), 0.0))


def _assert_relative(got, want, tol=1e-14):
    """Relative error within `tol`, for normal numbers (subnormal results are not graded)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = np.abs(got - want) > tol * np.abs(want) + 1e-300
    assert not bad.any(), f'at x={X[bad]}: got {got[bad]}, want {want[bad]}'


@pytest.mark.parametrize('path', PATHS)
@pytest.mark.parametrize('name', list(FAMILY))
def test_first_derivatives_keep_their_relative_precision_in_the_tails(name, path):
    f, d1, _ = FAMILY[name]
    _assert_relative(_first(f, path, X), d1(X))


@pytest.mark.parametrize('name', [n for n in FAMILY if FAMILY[n][2] is not None])
def test_second_derivatives_keep_their_relative_precision(name):
    f, _, d2 = FAMILY[name]
    h = cr.vmap(cr.grad(cr.grad(lambda xi, i: cnp.sum(f_at(f, xi, i)))))(X, np.arange(X.size))
    _assert_relative(h, d2(X))


def test_sigmoid_values_keep_their_relative_precision():
    _assert_relative(F.sigmoid(X), _sig(X))
    _assert_relative(cr.jit(F.sigmoid)(X), _sig(X))
    x32 = np.array([-80., -20., -3., 0., 3., 20., 80.], np.float32)
    got = F.sigmoid(x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _sig(x32.astype(np.float64)), rtol=2e-7)
    assert F.sigmoid(np.array([1, 2])).dtype == np.float64        # integers: float64, as NumPy
    np.testing.assert_allclose(F.sigmoid(np.array([1 + 1j])), 1 / (1 + np.exp(-(1 + 1j))))


# --- binary cross-entropy of probabilities at 0 and 1 ----------------------------------------
#
# PyTorch's derivative is w (p - t) / max(p (1 - p), 1e-12): finite where the log is clamped.
# A sigmoid output rounds to exactly 1 in float32 beyond x = 17, so confident predictions reach
# these points in ordinary training.

P = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1e-13, 1 - 1e-13, 0.3, 0.5])
PT = np.array([0.0, 0.3, 1.0, 0.0, 0.7, 1.0, 0.2, 0.9, 0.3, 1.0])


def _bce_grad_reference(p, t, w=1.0):
    return w * (p - t) / np.maximum(p * (1 - p), 1e-12)


@pytest.mark.parametrize('path', ['grad', 'jit-grad', 'vmap-grad', 'tensor-backward'])
def test_bce_gradient_at_probabilities_zero_and_one_is_pytorchs(path):
    w = np.linspace(0.5, 2.0, P.size)
    f = lambda p: cnp.sum(F.binary_cross_entropy(p, PT, weight=w, reduction='sum'))  # noqa
    if path == 'grad':
        got = cr.grad(f)(P)
    elif path == 'jit-grad':
        got = cr.jit(cr.grad(f))(P)
    elif path == 'vmap-grad':
        got = cr.vmap(cr.grad(lambda p, t, wi: F.binary_cross_entropy(p, t, weight=wi,
                                                                       reduction='sum')))(P, PT, w)
    else:
        t = cr.Tensor(P, requires_grad=True)
        nn.BCELoss(weight=w, reduction='sum')(t, PT).backward()
        got = t.grad.numpy()
    np.testing.assert_allclose(got, _bce_grad_reference(P, PT, w), rtol=1e-12)


def test_bce_values_and_gradients_match_torch_at_the_edges():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for BCELoss')
    for red in ('mean', 'sum', 'none'):
        for dt, tdt in ((np.float64, torch.float64), (np.float32, torch.float32)):
            p, t = P.astype(dt), PT.astype(dt)
            tp = torch.tensor(p, requires_grad=True)
            want = torch.nn.functional.binary_cross_entropy(tp, torch.tensor(t), reduction=red)
            want.backward(torch.ones_like(want))
            got = F.binary_cross_entropy(p, t, reduction=red)
            g = cr.grad(lambda p: cnp.sum(F.binary_cross_entropy(p, t, reduction=red)))(p)
            assert got.dtype == dt and g.dtype == dt
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-6)
            np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_sigmoid_then_bce_trains_through_a_saturated_float32_output():
    """The failure as a user meets it: float32 logits past 17, sigmoid gives 1.0 exactly,
    BCELoss against target 0 must still give a finite, descending gradient."""
    z = cr.Tensor(np.array([20.0, -20.0, 0.5], np.float32), requires_grad=True)
    loss = nn.BCELoss()(nn.Sigmoid()(z), np.array([0.0, 1.0, 1.0], np.float32))
    loss.backward()
    g = z.grad.numpy()
    assert np.isfinite(g).all() and g[0] > 0 and g[1] < 0 and g[2] < 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-740, 740, allow_nan=False), min_size=1, max_size=20))
def test_logistic_family_derivatives_anywhere(xs):
    x = np.array(xs)
    _assert_relative(cr.grad(lambda x: cnp.sum(F.sigmoid(x)))(x), _e(x) / (1 + _e(x)) ** 2)
    _assert_relative(cr.grad(lambda x: cnp.sum(F.logsigmoid(x)))(x), _sig(-x))
    _assert_relative(cr.grad(lambda x: cnp.sum(F.binary_cross_entropy_with_logits(
        x, np.ones_like(x), reduction='sum')))(x), -_sig(-x))
