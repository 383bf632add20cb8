"""Cost per recorded op (forward + backward on tiny arrays) and per step of a small MLP:
chainrule's eager `Tensor` against PyTorch eager and HIPS autograd (when installed), in one
process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/overhead.py

Prints microseconds per op and the ratios (peer time / chainrule time: > 1 means chainrule is
faster).
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


def main():
    rows = []
    t_cr = best(chain_chainrule)
    t_grad = best(chain_grad())
    t_np = best(chain_numpy)
    rows.append(('chainrule Tensor', t_cr))
    rows.append(('chainrule grad()', t_grad))
    rows.append(('NumPy, no recording (floor)', t_np))
    try:
        import torch
        torch.set_num_threads(1)
        rows.append(('PyTorch eager', best(chain_torch(torch))))
    except ImportError:
        torch = None
    try:
        import autograd.numpy as anp
        from autograd import grad as agrad
        rows.append(('HIPS autograd', best(chain_autograd(anp, agrad))))
    except ImportError:
        pass
    print(f'per recorded op, forward + backward, arrays of 8 float64 ({N_OPS} ops, best of {REPEAT}):')
    for name, t in rows:
        print(f'  {name:30s} {t / N_OPS * 1e6:7.2f} us/op   ratio vs chainrule Tensor: '
              f'{t / t_cr:5.2f}x')
    rng = np.random.default_rng(0)
    data = mlp_setup(rng)
    t_mlp = best(mlp_chainrule(*data), repeat=20)
    print('MLP 64-256-256-10, batch 64, float32, one training step (best of 20):')
    print(f'  chainrule Tensor               {t_mlp * 1e3:7.3f} ms')
    if torch is not None:
        t_tm = best(mlp_torch(torch, *data), repeat=20)
        print(f'  PyTorch eager                  {t_tm * 1e3:7.3f} ms   ratio: {t_tm / t_mlp:5.2f}x')


if __name__ == '__main__':
    main()
