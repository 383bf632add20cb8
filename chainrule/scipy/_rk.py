"""The adaptive explicit Runge-Kutta solver behind `chainrule.scipy.integrate`, in NumPy:
Dormand-Prince 5(4) ('RK45') and Dormand-Prince 8(5,3) ('DOP853') with Hairer's error norm,
step-size control and starting step (Hairer, Norsett, Wanner, "Solving ODEs I", II.4, II.10).

`_integrate` steps to each requested time exactly (no interpolation), carrying the step size
across, and can record the accepted steps; `_replay` runs those same steps with chainrule ops,
so differentiating it differentiates the unrolled solver (the tests' oracle for the adjoint
method). One step, `_rk_step`, serves both: it uses only arithmetic operators.
"""

import collections
import math

import numpy as np

from chainrule import ops
from chainrule.core import ChainruleError, ShapeError, Tracer


class ODEIntegrationError(ChainruleError, RuntimeError):
    """The adaptive solver could not reach an output time (too many steps, or a step size that
    underflowed: the problem is stiff or the solution blows up)."""


# --- Runge-Kutta tableaus ---------------------------------------------------------------------

_Tableau = collections.namedtuple('_Tableau', 'name c a b e e3 order')

# Dormand-Prince 5(4): the 5th-order solution is propagated; `e` is b - b_hat over the six
# stages and the FSAL stage f(y_new) (the 4th-order embedded solution gives the error)
_RK45 = _Tableau(
    'RK45',
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0),
    a=((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656)),
    b=(35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
    e=(35 / 384 - 5179 / 57600, 0.0, 500 / 1113 - 7571 / 16695, 125 / 192 - 393 / 640,
       -2187 / 6784 + 92097 / 339200, 11 / 84 - 187 / 2100, -1 / 40),
    e3=None, order=4)

# Dormand-Prince 8(5,3) (Hairer's DOP853): twelve stages; its error estimate combines a
# 5th-order (`e`) and a 3rd-order (`e3`) embedded solution
_DOP853 = _Tableau(
    'DOP853',
    c=(0.0, 0.05260015195876773, 0.0789002279381516, 0.1183503419072274, 0.2816496580927726,
       0.3333333333333333, 0.25, 0.3076923076923077, 0.6512820512820513, 0.6,
       0.8571428571428571, 1.0),
    a=((),
       (0.05260015195876773,),
       (0.0197250569845379, 0.0591751709536137),
       (0.02958758547680685, 0.0, 0.08876275643042054),
       (0.2413651341592667, 0.0, -0.8845494793282861, 0.924834003261792),
       (0.037037037037037035, 0.0, 0.0, 0.17082860872947386, 0.12546768756682242),
       (0.037109375, 0.0, 0.0, 0.17025221101954405, 0.06021653898045596, -0.017578125),
       (0.03709200011850479, 0.0, 0.0, 0.17038392571223998, 0.10726203044637328,
        -0.015319437748624402, 0.008273789163814023),
       (0.6241109587160757, 0.0, 0.0, -3.3608926294469414, -0.868219346841726,
        27.59209969944671, 20.154067550477894, -43.48988418106996),
       (0.47766253643826434, 0.0, 0.0, -2.4881146199716677, -0.590290826836843,
        21.230051448181193, 15.279233632882423, -33.28821096898486, -0.020331201708508627),
       (-0.9371424300859873, 0.0, 0.0, 5.186372428844064, 1.0914373489967295,
        -8.149787010746927, -18.52006565999696, 22.739487099350505, 2.4936055526796523,
        -3.0467644718982196),
       (2.273310147516538, 0.0, 0.0, -10.53449546673725, -2.0008720582248625,
        -17.9589318631188, 27.94888452941996, -2.8589982771350235, -8.87285693353063,
        12.360567175794303, 0.6433927460157636)),
    b=(0.054293734116568765, 0.0, 0.0, 0.0, 0.0, 4.450312892752409, 1.8915178993145003,
       -5.801203960010585, 0.3111643669578199, -0.1521609496625161, 0.20136540080403034,
       0.04471061572777259),
    e=(0.01312004499419488, 0.0, 0.0, 0.0, 0.0, -1.2251564463762044, -0.4957589496572502,
       1.6643771824549864, -0.35032884874997366, 0.3341791187130175, 0.08192320648511571,
       -0.022355307863886294, 0.0),
    e3=(-0.18980075407240762, 0.0, 0.0, 0.0, 0.0, 4.450312892752409, 1.8915178993145003,
        -5.801203960010585, -0.4226823213237919, -0.1521609496625161, 0.20136540080403034,
        0.02265179219836082, 0.0),
    order=7)

_METHODS = {'RK45': _RK45, 'DOP853': _DOP853}

_SAFETY, _MIN_FACTOR, _MAX_FACTOR = 0.9, 0.2, 10.0


def _combine(coefs, ks):
    """sum_j coefs[j] * ks[j], skipping zero coefficients (works on arrays and tracers)."""
    out = None
    for c, k in zip(coefs, ks):
        if c:
            term = k * c
            out = term if out is None else out + term
    return out


def _rk_step(f, t, y, fy, h, tab):
    """One explicit Runge-Kutta step of signed size h from (t, y) with f(y, t) = fy given.

    Written with arithmetic operators only, so it runs on arrays (the solver) and on tracers
    (`_replay`, which differentiates the unrolled steps).

    Returns:
        (y_new, ks): the stages followed by the FSAL stage f(y_new, t + h).
    """
    ks = [fy]
    for ci, ai in zip(tab.c[1:], tab.a[1:]):
        ks.append(f(y + _combine(ai, ks) * h, t + ci * h))
    y_new = y + _combine(tab.b, ks) * h
    ks.append(f(y_new, t + h))
    return y_new, ks


def _rms(x):
    return math.sqrt(float(np.mean(np.square(np.abs(x))))) if x.size else 0.0


def _error_norm(tab, ks, h, y, y_new, rtol, atol):
    scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
    err5 = _combine(tab.e, ks) * h / scale
    if tab.e3 is None:
        return _rms(err5)
    # DOP853: |h| |err5|^2 / sqrt(n (|err5|^2 + 0.01 |err3|^2)) (Hairer's combination)
    err3 = _combine(tab.e3, ks) * h / scale
    n5, n3 = float(np.sum(np.abs(err5) ** 2)), float(np.sum(np.abs(err3) ** 2))
    if n5 == 0 and n3 == 0:
        return 0.0
    return n5 / math.sqrt((n5 + 0.01 * n3) * err5.size)


def _initial_step(f, t0, y0, f0, direction, tab, rtol, atol):
    """Hairer's starting step: a step whose explicit Euler error would be about the tolerance."""
    scale = atol + np.abs(y0) * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    f1 = np.asarray(f(y0 + h0 * direction * f0, t0 + h0 * direction))
    d2 = _rms((f1 - f0) / scale) / h0
    if max(d1, d2) <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1 / (tab.order + 1))
    return min(100 * h0, h1)


def _integrate(f, y0, ts, tab, rtol, atol, mxstep, hmax, h0=None, record=None):
    """y at each time of `ts` (ts[0] the start), by the adaptive method `tab`, in NumPy.

    Args:
        f: f(y, t) -> dy/dt, on arrays of y0's shape.
        record: a list; if given, the accepted steps (t, signed h) of each interval are
            appended to it, one list per interval (what `_replay` needs).
    """
    y = np.asarray(y0)
    ys = [y]
    t = float(ts[0])
    fy = np.asarray(f(y, t))
    h_abs = None if not h0 else abs(float(h0))
    for t_end in ts[1:]:
        t_end = float(t_end)
        steps = []
        if record is not None:
            record.append(steps)
        if t_end == t:
            ys.append(y)
            continue
        direction = 1.0 if t_end > t else -1.0
        if h_abs is None:
            h_abs = _initial_step(f, t, y, fy, direction, tab, rtol, atol)
        n = 0
        while (t_end - t) * direction > 0:
            if n >= mxstep:
                raise ODEIntegrationError(
                    f'odeint: more than mxstep={mxstep} steps between t={ts[0]} .. {t_end} '
                    f'(reached t={t}); raise mxstep, loosen rtol/atol, or the problem is stiff')
            n += 1
            h_abs = min(h_abs, hmax)
            remaining = abs(t_end - t)
            last = h_abs >= remaining
            h = remaining * direction if last else h_abs * direction
            if abs(h) <= 10 * np.spacing(abs(t)):
                raise ODEIntegrationError(f'odeint: the step size underflowed at t={t} (the '
                                          'solution may blow up there)')
            y_new, ks = _rk_step(f, t, y, fy, h, tab)
            y_new = np.asarray(y_new)
            err = _error_norm(tab, [np.asarray(k) for k in ks], h, y, y_new, rtol, atol)
            if err <= 1.0:
                steps.append((t, h))
                t = t_end if last else t + h
                y, fy = y_new, np.asarray(ks[-1])
                factor = _MAX_FACTOR if err == 0 else min(
                    _MAX_FACTOR, _SAFETY * err ** (-1 / (tab.order + 1)))
                # a step cut short to land on t_end says nothing about the step size
                h_abs = max(h_abs, abs(h) * factor) if last else abs(h) * factor
            else:
                h_abs = abs(h) * max(_MIN_FACTOR, _SAFETY * err ** (-1 / (tab.order + 1)))
        ys.append(y)
    return np.stack(ys), h_abs


def _replay(func, y0, ts, args, steps, method='RK45'):
    """The solution at `ts` by replaying the accepted `steps` (from `_integrate(record=...)`)
    with chainrule ops: differentiating this differentiates the unrolled solver (the oracle
    the tests compare the adjoint method with)."""
    tab = _METHODS[method]
    f = (lambda y, t: _as_rhs_value(func(y, t, *args), y))
    y = y0
    ys = [y]
    for interval in steps:
        for t, h in interval:
            y, _ = _rk_step(f, t, y, f(y, t), h, tab)
        ys.append(y)
    return ops.concatenate([ops.reshape(v, (1,) + tuple(ops.shape_of(v))) for v in ys], 0)


def _as_rhs_value(out, y):
    """func's result as one array of y's shape (a list of components is stacked)."""
    if isinstance(out, (list, tuple)):
        parts = [o if isinstance(o, Tracer) else np.asarray(o) for o in out]
        out = ops.concatenate([ops.reshape(p, (1,) + tuple(ops.shape_of(p))) for p in parts], 0)
    elif not isinstance(out, Tracer):
        out = np.asarray(out)
    if tuple(ops.shape_of(out)) != tuple(ops.shape_of(y)):
        raise ShapeError(f'odeint: func returned shape {tuple(ops.shape_of(out))} for a state '
                         f'of shape {tuple(ops.shape_of(y))}; dy/dt must have the shape of y')
    return out
