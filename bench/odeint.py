"""`odeint` gradients: chainrule's adjoint method against HIPS autograd's `odeint` (also an
adjoint method: SciPy's LSODA forward and backward, autograd's VJPs of the right-hand side), on
the same problem, one BLAS thread; time and peak memory as the horizon (number of steps) grows.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/odeint.py [--repeat 3]

Problem: the Lotka-Volterra system (4 parameters), 50 output times on [0, t_end] for t_end in
(10, 100), loss = sum of the squared trajectory, gradient in the initial state and the
parameters, rtol = atol = 1e-8 for both. The gradients are checked to agree (rtol 1e-4) before
timing. Peak memory is tracemalloc's peak during one gradient: with the adjoint method it
should not grow with the number of solver steps. HIPS autograd is a benchmark-only dependency
(`pip install autograd`); it is skipped with a note when absent.
"""

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

try:
    import chainrule  # noqa: F401
except ImportError:     # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.scipy.integrate import odeint

Y0 = np.array([1.0, 0.5])
P = np.array([1.0, 0.6, 0.8, 0.5])
TOL = dict(rtol=1e-8, atol=1e-8)


def chainrule_grad(t):
    def rhs(y, s, p):
        return cnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], -p[2] * y[1] + p[3] * y[0] * y[1]])

    def loss(y0, p):
        return cnp.sum(odeint(rhs, y0, t, args=(p,), **TOL) ** 2)
    g = cr.grad(loss, argnums=(0, 1))
    return lambda: g(Y0, P)


def autograd_grad(t):
    try:
        import autograd
        import autograd.numpy as anp
        from autograd.builtins import tuple as atuple   # a differentiable tuple of args
        from autograd.scipy.integrate import odeint as aodeint
    except ImportError:
        return None

    def rhs(y, s, p):
        return anp.array([p[0] * y[0] - p[1] * y[0] * y[1], -p[2] * y[1] + p[3] * y[0] * y[1]])

    def loss(y0, p):
        return anp.sum(aodeint(rhs, y0, t, atuple((p,)), **TOL) ** 2)
    g = autograd.grad(loss, argnum=(0, 1))
    return lambda: g(Y0, P)


def best_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_memory(fn):
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args(argv)
    print(f'{"t_end":>6} {"contender":>10} {"time (s)":>10} {"peak (KiB)":>11} {"ratio":>7}')
    for t_end in (10.0, 100.0):
        t = np.linspace(0.0, t_end, 50)
        ours = chainrule_grad(t)
        peer = autograd_grad(t)
        g = ours()
        if peer is not None:
            for a, b in zip(peer(), g):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8)
        t_ours = best_time(ours, args.repeat)
        print(f'{t_end:6.0f} {"chainrule":>10} {t_ours:10.3f} {peak_memory(ours) / 1024:11.0f}'
              f' {"":>7}')
        if peer is None:
            print(f'{t_end:6.0f} {"autograd":>10}  (not installed: pip install autograd)')
            continue
        t_peer = best_time(peer, args.repeat)
        print(f'{t_end:6.0f} {"autograd":>10} {t_peer:10.3f} {peak_memory(peer) / 1024:11.0f} '
              f'{t_peer / t_ours:7.2f}')
    print('ratio = autograd time / chainrule time (> 1: chainrule is faster)')


if __name__ == '__main__':
    main()
