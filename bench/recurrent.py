"""One training step (forward + backward) of `nn.LSTM` and `nn.GRU`: chainrule's eager `Tensor`
against PyTorch eager, the same weights and data, in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/recurrent.py

Prints milliseconds per step and the ratio chainrule / PyTorch (> 1 means chainrule is slower).
The two take turns within each round, so a busy machine slows both alike. chainrule's layers
are composites of its primitives (one matrix product for every step's input, then about a
dozen operations per step); PyTorch runs a fused kernel per step.
"""

import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from chainrule import nn  # noqa: E402

# (kind, sequence length, batch, input size, hidden size, layers)
CASES = [('LSTM', 35, 20, 64, 128, 2), ('GRU', 35, 20, 64, 128, 2),
         ('LSTM', 10, 4, 8, 16, 1), ('LSTM', 200, 8, 16, 32, 1)]
ROUNDS = 5


def _time(fn, reps):
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def main():
    import torch
    torch.set_num_threads(1)
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

        reps = max(1, 2000 // (T * L * N // 4 + 1))
        step_ours(), step_theirs()
        best_o = best_t = float('inf')
        for _ in range(ROUNDS):
            best_o = min(best_o, _time(step_ours, reps))
            best_t = min(best_t, _time(step_theirs, reps))
        print(f'{kind:4s} T={T:3d} N={N:2d} in={I:3d} H={H:3d} layers={L}: chainrule '
              f'{best_o * 1e3:7.2f} ms, torch {best_t * 1e3:7.2f} ms, ratio {best_o / best_t:.2f}')


if __name__ == '__main__':
    main()
