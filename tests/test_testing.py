"""The checker is tested too: `check_grads` passes on right rules and fails, with a report that
names the mode, the order, the argument and the worst element, on deliberately wrong ones."""

import re

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import bind
from chainrule.testing import check_grads, check_vjp, default_tolerance

X = np.array([0.3, -1.1, 0.8, 1.9])


def _report_values(msg):
    """(index, expected, got) from the worst-element line of a report."""
    m = re.search(r'worst element at index \(([\d, ]*)\): expected (\S+) \(finite differences\), '
                  r'got (\S+) \(', msg)
    assert m, msg
    idx = tuple(int(i) for i in m.group(1).split(',') if i.strip())
    return idx, complex(m.group(2)), complex(m.group(3))


# --- passes on right rules --------------------------------------------------------------------

@pytest.mark.parametrize('modes', [('rev',), ('fwd',), ('fwd', 'rev')])
def test_passes_on_correct_functions_to_third_order(modes):
    check_grads(lambda x: cnp.sin(x) * cnp.exp(x / 3), (X,), order=3, modes=modes)
    check_grads(lambda x, y: cnp.tanh(x) * y ** 2, (X, X[::-1].copy()), order=2, modes=modes)


def test_passes_with_tuple_outputs_integer_arguments_and_float32():
    check_grads(lambda x, n: (cnp.sin(x) * n, cnp.sum(x ** 2)), (X, np.arange(4)), order=2)
    check_grads(lambda x: cnp.log1p(x * x), (X.astype(np.float32),), order=1)
    check_grads(lambda n: n * 2, (np.arange(3),))   # nothing to differentiate: nothing to check


def test_pytree_outputs(make_primitive):
    f = lambda x: {'a': cnp.sin(x), 'b': [x * 2, (cnp.cos(x), cnp.argmax(x))]}   # noqa: E731
    check_grads(f, (X,), order=2, modes=('rev', 'fwd'))
    p = make_primitive('test_bad_cos', np.cos, vjp=[lambda g, ans, x: g * cnp.sin(x)])
    with pytest.raises(AssertionError, match='argument 0'):
        check_grads(lambda x: {'a': cnp.sin(x), 'b': [bind(p, x)]}, (X,), order=1)


def test_complex_inputs_follow_the_jax_convention():
    z = np.array([1 + 2j, 0.3 - 0.5j])
    check_grads(lambda z: cnp.abs(z) ** 2, (z,), order=2, modes=('fwd', 'rev'))
    check_grads(lambda z: cnp.exp(z) * cnp.conj(z), (z,), order=2, modes=('fwd', 'rev'))


def test_default_tolerances_are_looser_for_float32():
    eps64, rtol64, _ = default_tolerance(np.float64)
    eps32, rtol32, _ = default_tolerance(np.float32)
    assert eps32 > eps64 and rtol32 > rtol64
    assert default_tolerance(np.complex64) == default_tolerance(np.float32)


def test_fwd_without_forward_mode_is_a_clear_not_implemented(monkeypatch):
    monkeypatch.delattr(cr, 'jvp')
    with pytest.raises(NotImplementedError, match='chainrule.jvp'):
        check_grads(cnp.sin, (X,), modes=('fwd',))
    with pytest.raises(ValueError, match='unknown mode'):
        check_grads(cnp.sin, (X,), modes=('backward',))


# --- fails on wrong ones, naming what is wrong ---------------------------------------------------

def test_wrong_vjp_fails_with_a_worst_element_report(make_primitive):
    # d/dx sin(x) written as x instead of cos(x)
    p = make_primitive('test_bad_sin_vjp', np.sin, vjp=[lambda g, ans, x: g * x],
                       jvp=[lambda t, ans, x: t * cnp.cos(x)])
    f = lambda x: cnp.sum(bind(p, x))   # noqa: E731  (scalar output: the cotangent is one number)
    with pytest.raises(AssertionError) as info:
        check_grads(f, (X,), order=1)
    msg = str(info.value)
    assert 'reverse mode (vjp), order 1' in msg and 'argument 0 (shape (4,))' in msg
    idx, expected, got = _report_values(msg)
    # the cotangent u is a random scalar, so expected = u cos(x), got = u x; the worst element is
    # where |cos(x) - x| is largest
    assert idx == (int(np.argmax(np.abs(np.cos(X) - X))),)
    assert (expected / got).real == pytest.approx(np.cos(X[idx]) / X[idx], rel=1e-6)
    assert 'abs error' in msg and 'rel error' in msg
    # forward mode uses the (right) JVP rule, so it passes
    check_grads(f, (X,), order=1, modes=('fwd',))


def test_wrong_jvp_fails_in_forward_mode_only(make_primitive):
    p = make_primitive('test_bad_sin_jvp', np.sin, vjp=[lambda g, ans, x: g * cnp.cos(x)],
                       jvp=[lambda t, ans, x: t * cnp.cos(x) * 1.01])
    check_grads(lambda x: bind(p, x), (X,), order=1, modes=('rev',))
    with pytest.raises(AssertionError, match=r'forward mode \(jvp\), order 1') as info:
        check_grads(lambda x: bind(p, x), (X,), order=1, modes=('fwd',))
    assert 'output 0 (shape (4,))' in str(info.value)


def test_rule_whose_own_derivative_is_wrong_fails_at_second_order(make_primitive):
    # right first derivative, but computed with stop_gradient: its derivative is lost
    p = make_primitive('test_bad_sin_2nd', np.sin,
                       vjp=[lambda g, ans, x: g * cnp.stop_gradient(cnp.cos(x))])
    f = lambda x: bind(p, x)   # noqa: E731
    check_grads(f, (X,), order=1)
    with pytest.raises(AssertionError, match='reverse mode.*order 2'):
        check_grads(f, (X,), order=2)


def test_the_report_names_the_wrong_argument(make_primitive):
    # x * y with the cotangent of y wrong (g * y instead of g * x)
    p = make_primitive('test_bad_mul', np.multiply,
                       vjp=[lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * y])
    y = np.array([2.0, -0.5, 1.5, 0.7])
    with pytest.raises(AssertionError) as info:
        check_grads(lambda x, y: bind(p, x, y), (X, y), order=1)
    lines = str(info.value).splitlines()
    arg0 = next(ln for ln in lines if 'argument 0' in ln)
    arg1 = next(ln for ln in lines if 'argument 1' in ln)
    assert '0 of 4 elements outside tolerance' in arg0
    assert '0 of 4' not in arg1


def test_complex_rule_with_the_other_convention_fails(make_primitive):
    # |z|^2 with PyTorch's cotangent (2 z) instead of JAX's (2 conj z)
    bad = make_primitive('test_bad_abs2', lambda z: np.abs(z) ** 2,
                         vjp=[lambda g, ans, z: g * 2 * z])
    good = make_primitive('test_good_abs2', lambda z: np.abs(z) ** 2,
                          vjp=[lambda g, ans, z: g * 2 * cnp.conj(z)])
    z = np.array([1 + 2j, -0.5 + 0.3j])
    check_grads(lambda z: bind(good, z), (z,), order=1)
    with pytest.raises(AssertionError) as info:
        check_grads(lambda z: bind(bad, z), (z,), order=1)
    idx, expected, got = _report_values(str(info.value))
    assert expected == pytest.approx(got.conjugate(), rel=1e-6)   # off by exactly a conjugate


def test_float32_check_still_catches_a_wrong_rule(make_primitive):
    p = make_primitive('test_bad_exp32', np.exp, vjp=[lambda g, ans, x: g * ans * 1.05])
    with pytest.raises(AssertionError, match='argument 0'):
        check_grads(lambda x: bind(p, x), (X.astype(np.float32),), order=1)


def test_nan_derivative_is_reported_as_the_worst_element(make_primitive):
    p = make_primitive('test_nan_vjp', np.sin,
                       vjp=[lambda g, ans, x: cnp.where(x > 1.5, np.nan, g * cnp.cos(x))])
    with pytest.raises(AssertionError) as info:
        check_vjp(lambda x: bind(p, x), (X,))
    assert 'worst element at index (3,)' in str(info.value)
