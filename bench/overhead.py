"""Cost per recorded op (forward + backward on tiny arrays) and per step of a small MLP:
chainrule's eager `Tensor` against PyTorch eager and HIPS autograd (when installed), in one
process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/overhead.py

Prints microseconds per op and the ratios (peer time / chainrule time: > 1 means chainrule is
faster). The contenders take turns within each round, so a busy machine slows all alike.
"""

import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402

N_OPS = 2000        # ops per chain
REPEAT = 7


def best(fn, repeat=REPEAT):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def chain_chainrule():
    x = cr.tensor(np.full(8, 0.5), requires_grad=True)
    y = x
    for _ in range(N_OPS // 4):
        y = cnp.tanh(y * 1.001 + 0.01) * x
    y.sum().backward()


def chain_torch(torch):
    def run():
        x = torch.full((8,), 0.5, dtype=torch.float64, requires_grad=True)
        y = x
        for _ in range(N_OPS // 4):
            y = torch.tanh(y * 1.001 + 0.01) * x
        y.sum().backward()
    return run


def chain_autograd(anp, agrad):
    def f(x):
        y = x
        for _ in range(N_OPS // 4):
            y = anp.tanh(y * 1.001 + 0.01) * x
        return anp.sum(y)
    g = agrad(f)
    return lambda: g(np.full(8, 0.5))


def chain_grad():
    def f(x):
        y = x
        for _ in range(N_OPS // 4):
            y = cnp.tanh(y * 1.001 + 0.01) * x
        return cnp.sum(y)
    g = cr.grad(f)
    return lambda: g(np.full(8, 0.5))


def chain_numpy():
    # the floor: the same NumPy calls with no recording (forward only, twice for fwd+bwd)
    x = np.full(8, 0.5)
    y = x
    for _ in range(N_OPS // 4):
        y = np.tanh(y * 1.001 + 0.01) * x
    for _ in range(N_OPS // 4):
        y = np.tanh(y * 1.001 + 0.01) * x


def mlp_setup(rng, sizes=(64, 256, 256, 10), batch=64):
    Ws = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
    bs = [np.zeros(b, np.float32) for b in sizes[1:]]
    X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    return Ws, bs, X, y


def mlp_chainrule(Ws, bs, X, y):
    params = [cr.tensor(a, requires_grad=True) for p in zip(Ws, bs) for a in p]
    onehot = np.eye(10, dtype=np.float32)[y]

    def step():
        h = X
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = cnp.maximum(h, 0.0)
        m = cnp.max(h, axis=1, keepdims=True).detach()
        logp = h - m - cnp.log(cnp.sum(cnp.exp(h - m), axis=1, keepdims=True))
        loss = -(logp * onehot).sum() / len(y)
        for p in params:
            p.grad = None
        loss.backward()
        with cr.no_grad():
            for p in params:
                p -= 0.01 * p.grad
    return step


def mlp_torch(torch, Ws, bs, X, y):
    params = [torch.tensor(a, requires_grad=True) for p in zip(Ws, bs) for a in p]
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def step():
        h = Xt
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, yt)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 0.01 * p.grad
    return step


def interleaved(fns, rounds=REPEAT):
    """Best time of each function over `rounds` rounds, the functions taking turns within each
    round, so that load from other processes on a shared machine hits all of them alike."""
    for fn in fns.values():
        fn()
    best_t = {name: float('inf') for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            best_t[name] = min(best_t[name], time.perf_counter() - t)
    return best_t


def main():
    fns = {'chainrule Tensor': chain_chainrule, 'chainrule grad()': chain_grad(),
           'NumPy, no recording (floor)': chain_numpy}
    try:
        import torch
        torch.set_num_threads(1)
        fns['PyTorch eager'] = chain_torch(torch)
    except ImportError:
        torch = None
    try:
        import autograd.numpy as anp
        from autograd import grad as agrad
        fns['HIPS autograd'] = chain_autograd(anp, agrad)
    except ImportError:
        pass
    times = interleaved(fns)
    t_cr = times['chainrule Tensor']
    print(f'per recorded op, forward + backward, arrays of 8 float64 ({N_OPS} ops, best of '
          f'{REPEAT} interleaved rounds); ratio = peer time / chainrule Tensor time:')
    for name, t in times.items():
        print(f'  {name:30s} {t / N_OPS * 1e6:7.2f} us/op   ratio: {t / t_cr:5.2f}x')
    rng = np.random.default_rng(0)
    data = mlp_setup(rng)
    steps = {'chainrule Tensor': mlp_chainrule(*data)}
    if torch is not None:
        steps['PyTorch eager'] = mlp_torch(torch, *data)
    times = interleaved(steps, rounds=30)
    print('MLP 64-256-256-10, batch 64, float32, one training step (composite log-softmax; '
          'best of 30 interleaved):')
    for name, t in times.items():
        print(f'  {name:30s} {t * 1e3:7.3f} ms   ratio: {t / times["chainrule Tensor"]:5.2f}x')


if __name__ == '__main__':
    main()
