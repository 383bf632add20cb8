"""One training step (forward, loss, backward, optimizer update) of an MLP 64-256-256-10, of
the demo's small CNN, and of a CNN with BatchNorm (Conv-BN-ReLU-MaxPool twice, then Linear;
Adam) on scikit-learn's digits, batch 64: chainrule's eager `Tensor` + `nn` + `optim` against
PyTorch eager, in one process, one BLAS thread.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/train_step.py [names]

Prints the best-of-several CPU time per step for each and the ratio torch / chainrule (> 1 means
chainrule is faster). All use float32, the same initial weights and the same batches; SGD with
momentum 0.9 unless the name says Adam. Optional arguments pick workloads by a part of their
name (`python bench/train_step.py BatchNorm`).

Measured on the development machine (2 shared cores under a load of ~10, NumPy with OpenBLAS,
torch 2.13.0+cpu), one run each: MLP 746-843 us vs torch 908-1013 us (torch/chainrule
1.20-1.22); small CNN 0.98 on main before the conv work, 1.32 after; CNN+BatchNorm with Adam
0.70 with the first BatchNorm2d, 1.15-1.28 after (best of 7 runs of 200 steps each; the load
moves single runs by +-10%). With the eager residuals (conv columns, pool window slabs, batch
norm's centred values and shared sums) and relu against zeros: the CNN+BatchNorm step 1.07-1.09x
faster than without them, measured in one process with the changes switched on and off in
turn (small CNN 1.07x); under load 3-7 torch/chainrule = 1.26-1.39 (the untouched MLP reads
1.31 there against 1.05-1.11 on a quiet machine: load inflates the ratio).
"""

import os
import sys
import time

for _v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_v, '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from chainrule import nn, optim  # noqa: E402
from chainrule.demo import SmallCNN  # noqa: E402

BATCH = 64
STEPS = 200       # steps per timing run
REPEAT = 7


def batches(x, y, n):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        i = rng.integers(0, len(x), BATCH)
        out.append((x[i], y[i]))
    return out


def mlp():
    return nn.Sequential(nn.Linear(64, 256, rng=1), nn.ReLU(), nn.Linear(256, 256, rng=2),
                         nn.ReLU(), nn.Linear(256, 10, rng=3))


def torch_mlp(torch):
    return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10))


def torch_cnn(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(16, 32, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Flatten(), tnn.Linear(128, 64), tnn.ReLU(), tnn.Linear(64, 10))


def cnn_bn():
    """Conv-BN-ReLU-MaxPool twice, then Linear (no conv bias before a BatchNorm)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False, rng=1), nn.BatchNorm2d(16),
                         nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1, bias=False, rng=2), nn.BatchNorm2d(32),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10, rng=3))


def torch_cnn_bn(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 16, 3, padding=1, bias=False), tnn.BatchNorm2d(16),
                          tnn.ReLU(), tnn.MaxPool2d(2),
                          tnn.Conv2d(16, 32, 3, padding=1, bias=False), tnn.BatchNorm2d(32),
                          tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(128, 10))


def _sgd(lib, params):
    return lib.SGD(params, lr=0.01, momentum=0.9)


def _adam(lib, params):
    return lib.Adam(params, lr=1e-3)


def run_chainrule(model, data, make_opt=_sgd):
    opt = make_opt(optim, model.parameters())
    F = nn.functional

    def run():
        for xb, yb in data:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        return float(loss)
    return run


def run_torch(torch, model, data, make_opt=_sgd):
    opt = make_opt(torch.optim, model.parameters())
    tdata = [(torch.from_numpy(xb), torch.from_numpy(yb)) for xb, yb in data]
    ce = torch.nn.functional.cross_entropy

    def run():
        for xb, yb in tdata:
            opt.zero_grad()
            loss = ce(model(xb), yb)
            loss.backward()
            opt.step()
        return float(loss.detach())
    return run


def best(*fns):
    """Best CPU time per step of each runner, in microseconds. The runners take turns, round
    after round, so a burst of load from elsewhere on the machine hits all of them alike, and
    the clock is this process's CPU time (`time.process_time`: both run single-threaded in
    this process), which does not count the time the process waits for a core."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(REPEAT):
        for fn, ts in zip(fns, times):
            t = time.process_time()
            fn()
            ts.append(time.process_time() - t)
    return [min(ts) / STEPS * 1e6 for ts in times]


def main():
    from chainrule.data import load_digits
    (x, y), _ = load_digits(seed=0)
    rows = []
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    only = sys.argv[1:]
    for name, make, make_t, shape, make_opt in [
            ('MLP 64-256-256-10', mlp, torch_mlp, (-1, 64), _sgd),
            ('small CNN', lambda: SmallCNN(rng=0), torch_cnn, (-1, 1, 8, 8), _sgd),
            ('CNN+BatchNorm, Adam', cnn_bn, torch_cnn_bn, (-1, 1, 8, 8), _adam)]:
        if only and not any(o.lower() in name.lower() for o in only):
            continue
        data = [(xb.reshape(shape), yb) for xb, yb in batches(x, y, STEPS)]
        model = make()
        runners = [run_chainrule(model, data, make_opt)]
        if torch is not None:
            tm = make_t(torch)
            # the same initial weights in both
            tm.load_state_dict({k: torch.from_numpy(v.copy())
                                for k, v in model.state_dict().items()})
            runners.append(run_torch(torch, tm, data, make_opt))
        t_cr, t_t = (best(*runners) + [None])[:2]
        rows.append((name, t_cr, t_t))
    print(f'one training step, batch {BATCH}, float32, 1 thread (SGD momentum; Adam where '
          'named), best of %d runs of %d steps' % (REPEAT, STEPS))
    for name, t_cr, t_t in rows:
        line = f'  {name:22s} chainrule {t_cr:8.1f} us'
        if t_t is not None:
            line += f'   torch {t_t:8.1f} us   torch/chainrule = {t_t / t_cr:.2f}'
        print(line)


if __name__ == '__main__':
    main()
