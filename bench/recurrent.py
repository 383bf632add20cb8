"""One training step (forward + backward) of `nn.LSTM` and `nn.GRU`: chainrule against PyTorch
eager, the same weights and data, in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/recurrent.py

Prints milliseconds per step and the ratio chainrule / PyTorch (> 1 means chainrule is slower)
for chainrule eager (`loss.backward()`), `cr.jit(cr.grad(loss))` of the same step written as a
function of the parameters, and (with numba installed) eager with the NumPy time loops
(`BACKEND = 'numpy'`: what a NumPy-only install runs). All take turns within each round, so a
busy machine slows them alike. chainrule runs each layer and direction as one primitive
(`chainrule.ops.recurrent`): one matrix product for every step's input, then a time loop,
compiled by numba when it is installed, and a hand-derived backward pass.
"""

import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import chainrule as cr  # noqa: E402
from chainrule import nn  # noqa: E402
from chainrule.func import functional_call  # noqa: E402
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

        # the same step as a function of the parameters, differentiated by `grad` and staged
        params = {k: v.numpy() for k, v in ours.named_parameters()}
        step_jit = cr.jit(cr.grad(lambda p, x: functional_call(ours, p, (x,))[0].sum()))

        step_numpy = _with_backend('numpy', step_ours)
        contenders = {'eager': step_ours, 'torch': step_theirs,
                      'jit(grad)': lambda: step_jit(params, x)}
        if compiled:
            contenders['NumPy loops'] = step_numpy
        reps = max(1, 2000 // (T * L * N // 4 + 1))
        best = dict.fromkeys(contenders, float('inf'))
        for fn in contenders.values():
            fn()
        for _ in range(ROUNDS):
            for name, fn in contenders.items():
                best[name] = min(best[name], _time(fn, reps))
        t = best['torch']
        print(f'{kind:4s} T={T:3d} N={N:2d} in={I:3d} H={H:3d} layers={L}: torch '
              f'{t * 1e3:6.2f} ms; chainrule ' + ', '.join(
                  f'{name} {best[name] * 1e3:6.2f} ms (ratio {best[name] / t:.2f})'
                  for name in contenders if name != 'torch')
              + ('' if compiled else ' (numba not installed: NumPy loops)'))


if __name__ == '__main__':
    main()
