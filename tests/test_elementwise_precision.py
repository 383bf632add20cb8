"""Derivative precision of every unary rule in `chainrule/ops/elementwise.py`, against mpmath.

Each rule is evaluated (reverse mode and forward mode) over a wide range of arguments, tails
included (`tanh` at 20 and 350, `expm1` at -700, `arcsin` at 1 - 1e-15, `arcsinh` at 1e200), and
compared with the exact derivative computed by mpmath at 50 digits and rounded to float64. A
rule written in a form that cancels or overflows (`1 - tanh(x)^2`, `1 - x*x`, `sqrt(x*x + 1)`)
fails here long before it fails a finite-difference check.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

mp = pytest.importorskip('mpmath', reason='the high-precision reference needs mpmath '
                                          '(pip install chainrule[test])')
mp.mp.dps = 50

# rounding of a derivative formula of a few operations: a few units in the last place
RTOL = 4e-15
# results in the subnormal range carry only a few significant digits
ATOL = 1e-305


def _tails(lo, hi, n=60):
    """Points spread over +-[lo, hi] on a log scale."""
    g = np.geomspace(lo, hi, n)
    return np.concatenate([-g[::-1], g])


def _near_one(n=40):
    """Points approaching +-1 from inside: 1 - 1e-16 ... 1 - 1e-1, and the middle."""
    g = 1 - np.geomspace(1.2e-16, 0.5, n)
    return np.concatenate([-g, g, np.linspace(-0.9, 0.9, 19)])


# name: (exact derivative in mpmath, sample points)
CASES = {
    'exp':     (mp.exp,                           np.linspace(-745, 709, 301)),
    'exp2':    (lambda x: mp.power(2, x) * mp.log(2), np.linspace(-1070, 1023, 301)),
    'expm1':   (mp.exp,                           np.concatenate([np.linspace(-745, 709, 301),
                                                                  _tails(1e-300, 1e-3)])),
    'log':     (lambda x: 1 / x,                  np.geomspace(1e-307, 1e307, 151)),
    'log2':    (lambda x: 1 / (x * mp.log(2)),    np.geomspace(1e-307, 1e307, 151)),
    'log10':   (lambda x: 1 / (x * mp.log(10)),   np.geomspace(1e-307, 1e307, 151)),
    'log1p':   (lambda x: 1 / (1 + x),            np.concatenate([np.geomspace(1e-307, 1e307, 151),
                                                                  -(1 - np.geomspace(1e-16, 1, 40)),
                                                                  -np.geomspace(1e-300, 0.5, 40)])),
    'sin':     (mp.cos,                           np.linspace(-100, 100, 401)),
    'cos':     (lambda x: -mp.sin(x),             np.linspace(-100, 100, 401)),
    'tan':     (lambda x: 1 / mp.cos(x) ** 2,     np.linspace(-1.57, 1.57, 301)),
    'arcsin':  (lambda x: 1 / mp.sqrt(1 - x * x), _near_one()),
    'arccos':  (lambda x: -1 / mp.sqrt(1 - x * x), _near_one()),
    'arctan':  (lambda x: 1 / (1 + x * x),        _tails(1e-300, 1e150)),
    'sinh':    (mp.cosh,                          np.linspace(-710, 710, 301)),
    'cosh':    (mp.sinh,                          np.linspace(-710, 710, 301)),
    'tanh':    (lambda x: 1 / mp.cosh(x) ** 2,    np.concatenate([np.linspace(-370, 370, 741),
                                                                  _tails(1e-300, 1)])),
    'arcsinh': (lambda x: 1 / mp.sqrt(x * x + 1), _tails(1e-300, 1e300)),
    'arccosh': (lambda x: 1 / mp.sqrt(x * x - 1), 1 + np.geomspace(2.3e-16, 1e300, 151)),
    'arctanh': (lambda x: 1 / (1 - x * x),        np.concatenate([_near_one(),
                                                                  _tails(1e-300, 1e-2)])),
    'sqrt':    (lambda x: 1 / (2 * mp.sqrt(x)),   np.geomspace(1e-307, 1e307, 151)),
    'cbrt':    (lambda x: 1 / (3 * mp.cbrt(abs(x)) ** 2), _tails(1e-300, 1e300)),
    'abs':     (mp.sign,                          _tails(1e-300, 1e300)),
    'negative': (lambda x: -1,                     _tails(1e-300, 1e300)),
}


def _exact(d, xs):
    out = np.empty(len(xs))
    for k, x in enumerate(xs):
        v = d(mp.mpf(float(x)))
        out[k] = float(v) if abs(v) < mp.mpf('1.79e308') else float(mp.sign(v)) * np.inf
    return out


def _compare(name, xs, got, want, mode):
    with np.errstate(invalid='ignore'):
        bad = ~((got == want) | (np.abs(got - want) <= RTOL * np.abs(want) + ATOL))
    if np.any(bad):
        with np.errstate(all='ignore'):
            rel = np.where(bad, np.abs(got - want) / np.abs(want), 0)
        k = int(np.argmax(np.where(np.isnan(rel), np.inf, rel)))
        raise AssertionError(
            f'{name} ({mode}): {int(bad.sum())} of {len(xs)} derivatives off; worst at '
            f'x={xs[k]!r}: got {got[k]!r}, exact {want[k]!r} (rel. error {rel[k]:.3g})')


@pytest.mark.parametrize('name', sorted(CASES))
def test_unary_derivative_is_accurate_over_the_whole_range(name):
    d, xs = CASES[name]
    xs = np.asarray(xs, dtype=np.float64)
    f = getattr(cnp, name)
    want = _exact(d, xs)
    with np.errstate(all='ignore'):
        _, pull = cr.vjp(f, xs)
        (rev,) = pull(np.ones_like(xs))
        fwd = np.asarray(cr.jvp(f, (xs,), (np.ones_like(xs),))[1])
    _compare(name, xs, rev, want, 'reverse mode')
    _compare(name, xs, fwd, want, 'forward mode')


def test_every_unary_rule_of_the_elementwise_table_is_checked_here():
    from chainrule.ops import elementwise
    unary = {p.name for p in vars(elementwise).values()
             if isinstance(p, cr.core.Primitive) and p.elementwise and p.vjp is not None
             and len(p.vjp) == 1}
    # complex-only parts (their derivative is 1 or 0 on the reals) and the identity-like ops
    unary -= {'conj', 'real', 'imag'}
    names = {('negative' if n == 'neg' else n) for n in unary}
    assert names <= set(CASES), f'unary rules with no precision check: {names - set(CASES)}'


def test_tanh_derivative_in_the_tail_matches_the_issue():
    # issue 12: grad(tanh)(20.0) was 0.0 (exact 1.7e-17) and grad(tanh)(15.0) off by 1.7e-4
    assert cr.grad(cnp.tanh)(20.0) == pytest.approx(1.6993417021166355e-17, rel=1e-15)
    assert cr.grad(cnp.tanh)(15.0) == pytest.approx(float(1 / mp.cosh(15) ** 2), rel=1e-15)
