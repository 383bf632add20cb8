"""The eager tape and Python's cyclic garbage collector (issue 16, part 1).

The W5 chain, `x = x * b + a` 1000 times on shape (4,) float64 and then `backward()` (2,000
recorded ops), in one process that has imported PyTorch (and JAX, when installed): chainrule
with the collector on, chainrule with it off, and PyTorch eager on the same chain. A process
that has imported large libraries holds hundreds of thousands of objects the collector tracks,
and every full collection scans them all; the objects a recorded op leaves alive decide how
often that happens. Where the peers imported here hold fewer tracked objects than `--heap`
(default 333,000, the heap of the issue's measurement with torch, jax and HIPS autograd),
the rest is allocated as small containers, so the collector has the same heap to scan.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=. python bench/gc_tape.py

Prints, per mode, microseconds per recorded op (forward + backward), the ratios the issue
sets targets for (chainrule gc-on / PyTorch <= 0.5, chainrule gc-on / gc-off <= 1.1), the time
of NumPy's calls alone (three ufunc calls per op on shape (4,), what W5's forward and backward
passes make: the floor of any tape on NumPy) as a fraction of PyTorch's, the
collections per call by generation (counted with `gc.callbacks`), and the objects of collector
types (counted toward the next generation-0 collection) that one recorded op leaves alive until
backward.

Timing: each mode runs blocks of `--calls` calls (so a block includes the full collections
that come every few calls, amortised as a program sees them), the modes take turns block by
block, and the best block of `--rounds` is kept.
"""

import argparse
import gc
import os
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

N_ITER = 1000          # iterations of x = x * b + a: 2 recorded ops each
N_OPS = 2 * N_ITER


def w5_chainrule(cr):
    x0 = cr.tensor(np.full(4, 0.5), requires_grad=True)
    a = cr.tensor(np.full(4, 0.01), requires_grad=True)
    b = cr.tensor(np.full(4, 0.999), requires_grad=True)

    def run():
        x = x0
        for _ in range(N_ITER):
            x = x * b + a
        x.sum().backward()
        x0.grad = a.grad = b.grad = None
    return run


def w5_torch(torch):
    x0 = torch.full((4,), 0.5, dtype=torch.float64, requires_grad=True)
    a = torch.full((4,), 0.01, dtype=torch.float64, requires_grad=True)
    b = torch.full((4,), 0.999, dtype=torch.float64, requires_grad=True)

    def run():
        x = x0
        for _ in range(N_ITER):
            x = x * b + a
        x.sum().backward()
        x0.grad = a.grad = b.grad = None
    return run


class Collections:
    """Counts the collections of each generation while installed in `gc.callbacks`."""

    def __init__(self):
        self.counts = [0, 0, 0]
        self.pause = 0.0
        self._t = 0.0

    def __call__(self, phase, info):
        if phase == 'start':
            self.counts[info['generation']] += 1
            self._t = time.perf_counter()
        else:
            self.pause += time.perf_counter() - self._t

    def reset(self):
        self.counts = [0, 0, 0]
        self.pause = 0.0


def numpy_floor():
    """NumPy's own share of one recorded op: W5's forward and backward make three ufunc calls
    per op on shape (4,) (the op itself; the cotangents g * y and g * x of a product and the
    sums into the leaves that fan in), so one block runs 3 * N_OPS such calls."""
    u = np.full(4, 0.5)
    v = np.full(4, 0.999)

    def run():
        for _ in range(N_OPS):
            u * v
            u + v
            u * v
    return run


def tracked_alive_per_op(cr):
    """Objects the collector tracks that one recorded op leaves alive until backward: the
    growth of generation 0's count over a forward pass with the collector off."""
    x0 = cr.tensor(np.full(4, 0.5), requires_grad=True)
    a = cr.tensor(np.full(4, 0.01), requires_grad=True)
    b = cr.tensor(np.full(4, 0.999), requires_grad=True)
    gc.collect()
    gc.disable()
    try:
        c0 = gc.get_count()[0]
        x = x0
        for _ in range(N_ITER):
            x = x * b + a
        grown = gc.get_count()[0] - c0
        x.sum().backward()
        del x
    finally:
        gc.enable()
    return grown / N_OPS


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--heap', type=int, default=333_000,
                   help='tracked objects to have in the process (filler tops up the imports)')
    p.add_argument('--calls', type=int, default=30, help='calls per timed block')
    p.add_argument('--rounds', type=int, default=5, help='timed blocks per mode (best kept)')
    args = p.parse_args()

    import torch
    torch.set_num_threads(1)
    peers = ['torch ' + torch.__version__]
    try:
        import jax  # noqa: F401   (only to enlarge the heap, as a real program's imports do)
        import jax.numpy  # noqa: F401
        peers.append('jax ' + jax.__version__)
    except ImportError:
        print('jax is not installed here: its part of the heap is made up with filler')
    try:
        import autograd  # noqa: F401
        import autograd.numpy  # noqa: F401
        peers.append('HIPS autograd')
    except ImportError:
        print('HIPS autograd is not installed here: its part of the heap is made up with filler')
    import chainrule as cr
    import chainrule.numpy  # noqa: F401

    gc.collect()
    imported = len(gc.get_objects())
    filler = [[i] for i in range(max(0, args.heap - imported))]
    gc.collect()
    heap = len(gc.get_objects())
    print(f'Python {sys.version.split()[0]}, gc thresholds {gc.get_threshold()}; imported: '
          f'{", ".join(peers)}, chainrule; tracked objects: {imported:,} after the imports, '
          f'{heap:,} with filler')

    per_op = tracked_alive_per_op(cr)
    print(f'chainrule: {per_op:.2f} objects of collector types (counted toward a generation-0 '
          'collection) alive per recorded op at the end of the forward pass')

    fns = {'chainrule, gc on': (w5_chainrule(cr), True),
           'chainrule, gc off': (w5_chainrule(cr), False),
           'PyTorch eager, gc on': (w5_torch(torch), True),
           'NumPy calls alone': (numpy_floor(), True)}
    cb = Collections()
    gc.callbacks.append(cb)
    best = {name: float('inf') for name in fns}
    colls = {name: [0, 0, 0] for name in fns}
    pauses = {name: 0.0 for name in fns}
    try:
        for fn, _ in fns.values():
            fn()
        for _ in range(args.rounds):
            for name, (fn, gc_on) in fns.items():
                if not gc_on:
                    gc.disable()
                cb.reset()
                t = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                dt = time.perf_counter() - t
                gc.enable()
                colls[name] = [c + k for c, k in zip(colls[name], cb.counts)]
                pauses[name] += cb.pause
                best[name] = min(best[name], dt / args.calls)
    finally:
        gc.callbacks.remove(cb)
        gc.enable()
    total = args.rounds * args.calls
    print(f'W5: x = x * b + a, {N_ITER} times on shape (4,) float64, then backward() ({N_OPS} '
          f'recorded ops); best of {args.rounds} blocks of {args.calls} calls, modes interleaved')
    print(f'  {"mode":22s} {"ms/call":>8s} {"us/op":>7s}   collections per call (gen 0/1/2)'
          '   gc pause ms/call')
    for name, t in best.items():
        c = '/'.join(f'{k / total:.2f}' for k in colls[name])
        print(f'  {name:22s} {t * 1e3:8.2f} {t / N_OPS * 1e6:7.2f}   {c:>32s}'
              f'   {pauses[name] / total * 1e3:8.2f}')
    on, off, pt = best['chainrule, gc on'], best['chainrule, gc off'], best['PyTorch eager, gc on']
    print(f'  chainrule gc on / PyTorch eager: {on / pt:.2f} (target <= 0.5)')
    print(f'  chainrule gc on / gc off:        {on / off:.2f} (target <= 1.1)')
    print(f'  NumPy calls alone / PyTorch eager: {best["NumPy calls alone"] / pt:.2f} '
          '(the floor of a NumPy-backed tape: 3 calls per recorded op)')
    del filler


if __name__ == '__main__':
    main()
