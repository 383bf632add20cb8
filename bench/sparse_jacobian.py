"""Sparse Jacobians (`cr.sparse.jacobian`) against dense `jacfwd` and against SciPy's coloured
finite differences, on a discretised 1-D PDE residual, in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/sparse_jacobian.py [--n 10000]
        [--dense-n 2000] [--repeat 5]      (--dense-n 10000: dense at full size, ~4 GB)

The problem (issue 12): the residual of the steady reaction-diffusion equation
-u'' + u^3 + sin(u) = 1 on (0, 1) with zero boundary values, by central differences on n
interior points: r_i = (2 u_i - u_{i-1} - u_{i+1}) / h^2 + u_i^3 + sin(u_i) - 1. Its
Jacobian is tridiagonal (3n - 2 nonzeros), so three colours suffice.

Contenders, each checked against the exact tridiagonal Jacobian before timing:
  * `cr.sparse.jacobian(residual)`: pattern detection + colouring on first use (timed
    separately), then one vmapped `jvp` per colour (3) on each call;
  * dense `cr.jacfwd(residual)`: n jvps and an n x n result (8 n^2 bytes: at n = 10,000 that
    is 800 MB per copy, so it is timed at `--dense-n` and its time at n extrapolated as
    O(n^2), stated as such);
  * SciPy's `approx_derivative(..., sparsity=(pattern, groups))`, the coloured finite
    differences behind `least_squares(jac_sparsity=...)`, with its own `group_columns`
    colouring (timed separately) and 2-point differences (the residual evaluated 3 + 1
    times, in NumPy).
Times are the best of `--repeat` runs; ratios are the other's time / chainrule's.
"""

import argparse
import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402


def make_residual(n, xp):
    h = 1.0 / (n + 1)
    zero = np.zeros(1)

    def residual(u):
        p = xp.concatenate([zero, u, zero])
        return (2 * u - p[:-2] - p[2:]) / h ** 2 + u ** 3 + xp.sin(u) - 1.0
    return residual


def exact_jacobian(u):
    from scipy import sparse
    n = u.size
    h = 1.0 / (n + 1)
    main = 2 / h ** 2 + 3 * u ** 2 + np.cos(u)
    off = np.full(n - 1, -1 / h ** 2)
    return sparse.diags([off, main, off], [-1, 0, 1], format='csr')


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=10000)
    ap.add_argument('--dense-n', type=int, default=2000)
    ap.add_argument('--repeat', type=int, default=5)
    args = ap.parse_args()
    from scipy.optimize._numdiff import approx_derivative, group_columns

    n = args.n
    u = np.linspace(0.0, 1.0, n) ** 2
    J_exact = exact_jacobian(u)
    residual = make_residual(n, cnp)
    residual_np = make_residual(n, np)

    # chainrule, sparse: first call (stage the program, propagate the pattern, colour), then
    t0 = time.perf_counter()
    jac = cr.sparse.jacobian(residual, mode='fwd')
    pattern = jac.sparsity_pattern(u)
    colours = jac.colours(u)
    t_setup = time.perf_counter() - t0
    t_sparse, J = best(lambda: jac(u), args.repeat)
    err = abs(J - J_exact).max() / abs(J_exact).max()
    assert err < 1e-12, err
    assert pattern.nnz == 3 * n - 2 and colours[1] == 3

    # SciPy: coloured 2-point finite differences with its own colouring
    t0 = time.perf_counter()
    groups = group_columns(pattern)
    t_group = time.perf_counter() - t0
    f0 = residual_np(u)
    t_fd, J_fd = best(lambda: approx_derivative(residual_np, u, method='2-point', f0=f0,
                                                sparsity=(pattern, groups)), args.repeat)
    err_fd = abs(J_fd - J_exact).max() / abs(J_exact).max()

    # dense jacfwd, at dense-n (memory), extrapolated as n^2
    nd = min(args.dense_n, n)
    ud = np.linspace(0.0, 1.0, nd) ** 2
    rd = make_residual(nd, cnp)
    t_dense_nd, Jd = best(lambda: cr.jacfwd(rd)(ud), max(1, args.repeat // 2))
    assert abs(Jd - exact_jacobian(ud).toarray()).max() < 1e-6 * abs(Jd).max()
    jd = cr.sparse.jacobian(rd, mode='fwd')
    jd(ud)
    t_sparse_nd, _ = best(lambda: jd(ud), args.repeat)
    t_dense = t_dense_nd * (n / nd) ** 2

    print(f'1-D reaction-diffusion residual, n = {n} unknowns, tridiagonal Jacobian '
          f'({pattern.nnz} nonzeros, {colours[1]} colours); best of {args.repeat}; '
          f'one BLAS thread')
    print(f'  chainrule sparse, per call (3 vmapped jvps):   {t_sparse * 1e3:9.2f} ms')
    print(f'  chainrule sparse, first-call setup (pattern + colouring): {t_setup * 1e3:9.2f} ms')
    print(f'  SciPy coloured 2-point FD (approx_derivative): {t_fd * 1e3:9.2f} ms   '
          f'ratio {t_fd / t_sparse:6.2f}x   (max rel. error {err_fd:.1e} vs 0 for AD)')
    print(f'  SciPy group_columns colouring:                 {t_group * 1e3:9.2f} ms')
    print(f'  dense jacfwd at n = {nd}:  {t_dense_nd * 1e3:9.2f} ms vs sparse '
          f'{t_sparse_nd * 1e3:.2f} ms: ratio {t_dense_nd / t_sparse_nd:7.1f}x')
    if nd < n:
        print(f'  dense jacfwd at n = {n} (extrapolated as n^2 from n = {nd}; '
              f'{8 * n * n / 1e6:.0f} MB result): ~{t_dense:8.2f} s   ratio '
              f'~{t_dense / t_sparse:8.0f}x')


if __name__ == '__main__':
    main()
