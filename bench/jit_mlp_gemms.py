"""The eight matrix products of the jitted MLP step (bench/jit_bench.py --mlp), one at a time.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/jit_mlp_gemms.py [--cpu-time]

The step (64-256-256-10, batch 64, float32) spends most of its time in these products, so this
prints, for each: its shapes and the layout the generated code passes to NumPy, and the time of
equivalent formulations -- `np.dot` on the operands as the step has them; the call the
generated code makes (it differs for `g2 @ W2.T`: see `numpy_codegen._transposed_operand`);
the same on C-contiguous operands (the layout
BLAS likes best, as a reference: making it would cost a copy); the transposed formulation
`(B.T @ A.T).T`; `out=` into a preallocated array; `scipy.linalg.blas.sgemm` with trans flags
(no copies; scipy optional); for the weight-gradient products, the SGD update folded into sgemm
(`alpha=-lr, beta=1` on a copy of W) against the product followed by `W - lr * dW`; and
`jax.jit` of the one product (jax optional; its per-call overhead, a jitted `a[0, 0]`, printed
too). Best of interleaved rounds, in microseconds; GFLOP/s of the generated call.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
# the thread settings, the pinning to one core, `--cpu-time` and the interleaved best-of-rounds
# timer are jit_bench's
from jit_bench import CLOCK, best_times  # noqa: E402

LR = 0.05


def main():
    rng = np.random.default_rng(0)

    def f(*s):
        return rng.standard_normal(s).astype(np.float32)
    x, w1, w2, w3 = f(64, 64), f(64, 256), f(256, 256), f(256, 10)
    h1, h2, g1, g2, g3 = f(64, 256), f(64, 256), f(64, 256), f(64, 256), f(64, 10)
    # (name, A, B, generated call, the weight the product's gradient updates or None)
    cases = [
        ('fwd 1: x @ W1', x, w1, lambda: np.dot(x, w1), None),
        ('fwd 2: h1 @ W2', h1, w2, lambda: np.dot(h1, w2), None),
        ('fwd 3: h2 @ W3', h2, w3, lambda: np.dot(h2, w3), None),
        ('bwd: g3 @ W3.T', g3, w3.T, lambda: np.dot(g3, w3.T), None),
        ('bwd: h2.T @ g3 (dW3)', h2.T, g3, lambda: np.dot(h2.T, g3), w3),
        ('bwd: g2 @ W2.T', g2, w2.T, lambda: np.dot(w2, g2.T).T, None),
        ('bwd: h1.T @ g2 (dW2)', h1.T, g2, lambda: np.dot(h1.T, g2), w2),
        ('bwd: x.T @ g1 (dW1)', x.T, g1, lambda: np.dot(x.T, g1), w1),
    ]
    try:
        from scipy.linalg.blas import sgemm
    except ImportError:
        sgemm = None
        print('  (scipy not installed: sgemm skipped)')
    try:
        import jax
        import jax.numpy as jnp
        jdot = jax.jit(lambda a, b: a @ b)
        jtriv = jax.jit(lambda a, b: a[0, 0])
    except ImportError:
        jax = None
        print('  (jax not installed: skipped)')

    def layout(a):
        return 'C' if a.flags.c_contiguous else 'F' if a.flags.f_contiguous else 'strided'

    def sgemm_call(A, B, alpha=1.0, beta=0.0, c=None):
        """C = alpha A @ B + beta c as F-ordered sgemm of the transposed problem, no copies:
        C.T = B.T @ A.T, with each operand passed as an F-contiguous array and a trans flag."""
        Bt, ta = (B.T, 0) if B.T.flags.f_contiguous else (B, 1)
        At, tb = (A.T, 0) if A.T.flags.f_contiguous else (A, 1)
        if c is None:
            return lambda: sgemm(alpha, Bt, At, trans_a=ta, trans_b=tb).T
        return lambda: sgemm(alpha, Bt, At, beta=beta, c=c().T, trans_a=ta, trans_b=tb,
                             overwrite_c=1).T

    print(f'numpy {np.__version__}; best of 15 interleaved rounds; '
          f'{"wall" if CLOCK.__name__ == "perf_counter" else "CPU"} time in us. np.dot(A,B): '
          'NumPy on the operands as the step has them; generated: what jit emits now; '
          '+update: the product then W - lr*dW; sgemm+upd: that update folded into sgemm; '
          'jax ovh: a jitted a[0, 0]')
    rows = []
    for name, A, B, gen, w in cases:
        m, k = A.shape
        n = B.shape[1]
        ref = A.astype(np.float64) @ B.astype(np.float64)
        assert np.allclose(gen(), ref, rtol=1e-4, atol=1e-3)
        out = np.empty((m, n), np.float32)
        Ac, Bc = np.ascontiguousarray(A), np.ascontiguousarray(B)
        r = {'np.dot(A,B)': lambda: np.dot(A, B),
             'generated': gen,
             'C-contig': lambda: np.dot(Ac, Bc),
             '(B.T@A.T).T': lambda: np.dot(B.T, A.T).T,
             'out=': lambda: np.dot(A, B, out=out)}
        if sgemm is not None:
            r['sgemm'] = sgemm_call(A, B)
            assert np.allclose(r['sgemm'](), ref, rtol=1e-4, atol=1e-3)
        if w is not None:
            lr = np.float32(LR)

            def update(gen=gen, w=w, lr=lr):
                d = gen()
                np.multiply(lr, d, out=d)
                return np.subtract(w, d, out=d)
            r['+update'] = update
            if sgemm is not None:
                r['sgemm+upd'] = sgemm_call(A, B, -LR, 1.0, w.copy)
                assert np.allclose(r['sgemm+upd'](), update(), rtol=1e-4, atol=1e-4)
        if jax is not None:
            ja, jb = jnp.asarray(Ac), jnp.asarray(Bc)
            r['jax.jit'] = lambda: jdot(ja, jb).block_until_ready()
            r['jax ovh'] = lambda: jtriv(ja, jb).block_until_ready()
        t = {k: v * 1e6 for k, v in best_times(r, 50, 15).items()}
        rows.append((name, f'{m}x{k} @ {k}x{n}', f'{layout(A)},{layout(B)}', t,
                     2 * m * n * k / t['generated'] / 1e3))
    keys = list(dict.fromkeys(k for row in rows for k in row[3]))
    print(f'{"product":22s} {"shapes":17s} {"layout":7s}' + ''.join(f'{k:>12s}' for k in keys) +
          '   GFLOP/s')
    for name, shapes, lay, t, gf in rows:
        print(f'{name:22s} {shapes:17s} {lay:7s}' +
              ''.join(f'{t[k]:12.1f}' if k in t else f'{"":12s}' for k in keys) + f'{gf:9.0f}')
    total = {k: sum(row[3].get(k, 0.0) for row in rows) for k in keys
             if all(k in row[3] for row in rows)}
    print(f'{"sum":48s}' + ''.join(f'{total[k]:12.1f}' if k in total else f'{"":12s}'
                                   for k in keys))


if __name__ == '__main__':
    main()
