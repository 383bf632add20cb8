"""One training step (forward + backward) of `nn.LSTM` and `nn.GRU`: chainrule's eager `Tensor`
against PyTorch eager, the same weights and data, in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/recurrent.py

Prints milliseconds per step and the ratio chainrule / PyTorch (> 1 means chainrule is slower).
They take turns within each round, so a busy machine slows all alike. chainrule runs each layer
and direction as one primitive (`chainrule.ops.recurrent`): one matrix product for every step's
input, then a time loop, compiled by numba when it is installed, and a hand-derived backward
pass. With numba the line also gives the NumPy time loops' figure (`BACKEND = 'numpy'`, what a
NumPy-only install runs).
"""

import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from chainrule import nn  # noqa: E402
from chainrule.ops import recurrent as rec  # noqa: E402

# (kind, sequence length, batch, input size, hidden size, layers)
CASES = [('LSTM', 35, 20, 64, 128, 2), ('GRU', 35, 20, 64, 128, 2),
         ('LSTM', 10, 4, 8, 16, 1), ('LSTM', 200, 8, 16, 32, 1)]
ROUNDS = 5


def _time(fn, reps):
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def _with_backend(name, fn):
    def run():
        old, rec.BACKEND = rec.BACKEND, name
        try:
            fn()
        finally:
            rec.BACKEND = old
    return run


def main():
    import torch
    torch.set_num_threads(1)
    compiled = rec._compiled(np.dtype(np.float32)) is not None
    for kind, T, N, I, H, L in CASES:
        theirs = getattr(torch.nn, kind)(I, H, L)
        ours = getattr(nn, kind)(I, H, L)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((T, N, I)).astype(np.float32)
        tx = torch.from_numpy(x)

        def step_ours():
            out, _ = ours(x)
            out.sum().backward()

        def step_theirs():
            out, _ = theirs(tx)
            out.sum().backward()

        step_numpy = _with_backend('numpy', step_ours)
        reps = max(1, 2000 // (T * L * N // 4 + 1))
        step_ours(), step_theirs(), step_numpy()
        best_o = best_t = best_n = float('inf')
        for _ in range(ROUNDS):
            best_o = min(best_o, _time(step_ours, reps))
            best_t = min(best_t, _time(step_theirs, reps))
            if compiled:
                best_n = min(best_n, _time(step_numpy, reps))
        print(f'{kind:4s} T={T:3d} N={N:2d} in={I:3d} H={H:3d} layers={L}: chainrule '
              f'{best_o * 1e3:7.2f} ms, torch {best_t * 1e3:7.2f} ms, ratio {best_o / best_t:.2f}'
              + (f'  (NumPy loops {best_n * 1e3:7.2f} ms, ratio {best_n / best_t:.2f})'
                 if compiled else '  (NumPy loops: numba is not installed)'))


if __name__ == '__main__':
    main()
