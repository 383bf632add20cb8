"""Benchmark: one training step of micrograd's moons MLP, chainrule's `Value` against micrograd.

Run it as

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/scalar_moons.py

It times one full step -- forward over 100 points, SVM max-margin loss plus L2, `zero_grad`,
`backward`, SGD update -- of the 2->16->16->1 MLP on `make_moons(n_samples=100, noise=0.1)`,
with both libraries in the same process, from identical initial weights (copied from one model
into the other), with Python's garbage collector on, as users run it. It also reports each with
the collector off (collecting between steps, outside the timed region), to show what the
collector costs: micrograd's per-node `_backward` closures capture their own node, so every node
is a reference cycle the collector must scan; chainrule's nodes hold no cycles.

micrograd is a benchmark-only dependency (`pip install micrograd`); without it only chainrule is
timed. The data come from scikit-learn when installed, else from an equivalent generator here.
"""

import argparse
import gc
import math
import random
import statistics
import sys
import time
from pathlib import Path

try:
    import chainrule  # noqa: F401
except ImportError:     # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

def moons(n=100, noise=0.1, seed=0):
    """The two-moons data set as Python lists: `X` (n pairs of floats) and `y` (n values +-1).

    Args:
        n: the number of points.
        noise: the standard deviation of the Gaussian noise added to each coordinate.
        seed: the random seed.

    Returns:
        `(X, y)`, plain Python lists.
    """
    try:
        from sklearn.datasets import make_moons
    except ImportError:
        rng = random.Random(seed)
        X, y = [], []
        for i in range(n):
            t = math.pi * rng.random()
            if i % 2:
                X.append([math.cos(t) + rng.gauss(0, noise), math.sin(t) + rng.gauss(0, noise)])
                y.append(-1.0)
            else:
                X.append([1 - math.cos(t) + rng.gauss(0, noise),
                          0.5 - math.sin(t) + rng.gauss(0, noise)])
                y.append(1.0)
        return X, y
    X, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return X.tolist(), [float(2 * v - 1) for v in y]


def make_step(Value, model, X, y, lr=0.5, alpha=1e-4):
    """One micrograd-demo training step as a function of no arguments (returns the loss).

    Args:
        Value: the `Value` class of the library (it wraps the inputs).
        model: an MLP of that library.
        X, y: the data, as plain lists.
        lr: the SGD step size.
        alpha: the L2 penalty.

    Returns:
        A function running one step: forward, loss, `zero_grad`, `backward`, update.
    """
    def step():
        inputs = [list(map(Value, row)) for row in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = alpha * sum((p * p for p in model.parameters()))
        total = data_loss + reg_loss
        model.zero_grad()
        total.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        return total.data
    return step


def time_steps(step, n, gc_on):
    """Run `step` n times; returns the list of seconds per step, with the collector on or off."""
    times = []
    was = gc.isenabled()
    gc.collect()
    try:
        for _ in range(n):
            if gc_on:
                gc.enable()
            else:
                gc.disable()
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
            if not gc_on:
                gc.collect()        # free the previous step's cycles outside the timed region
    finally:
        (gc.enable if was else gc.disable)()
    return times


def main(argv=None):
    """Time both libraries and print ms/step and the ratios.

    Args:
        argv: command-line arguments (`--steps`, `--seed`); default `sys.argv[1:]`.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=10, help='timed steps per configuration')
    parser.add_argument('--seed', type=int, default=1337)
    args = parser.parse_args(argv)

    from chainrule.scalar import Value
    from chainrule.scalar.nn import MLP

    X, y = moons(seed=args.seed)
    # chainrule's default MLP (one `dot` node per neuron), and one that builds micrograd's own
    # graph (a `*` and a `+` node per weight): the second compares the engines node for node.
    models = {'chainrule': MLP(2, [16, 16, 1], rng=random.Random(args.seed)),
              'chainrule fused=False': MLP(2, [16, 16, 1], rng=random.Random(args.seed),
                                           fused=False)}
    init = [p.data for p in models['chainrule'].parameters()]

    try:
        from micrograd.engine import Value as MgValue
        from micrograd.nn import MLP as MgMLP
    except ImportError:
        MgValue = None
        print("micrograd is not installed (pip install micrograd): timing chainrule only")
    if MgValue is not None:
        models['micrograd'] = MgMLP(2, [16, 16, 1])
        # micrograd's backward is a recursive topological sort; this graph is a few hundred deep.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

    def reset():                                # identical initial weights everywhere
        for model in models.values():
            params = model.parameters()
            assert len(params) == len(init)
            for p, v in zip(params, init):
                p.data = v

    reset()
    first = {name: make_step(MgValue if name == 'micrograd' else Value, model, X, y)()
             for name, model in models.items()}
    print("first-step loss: " + "  ".join(f"{k} {v!r}" for k, v in first.items()))
    reset()

    results = {}
    for name, model in models.items():
        step = make_step(MgValue if name == 'micrograd' else Value, model, X, y)
        for gc_on in (True, False):
            label = f"{name}, gc {'on' if gc_on else 'off'}"
            step()                              # warm up
            times = time_steps(step, args.steps, gc_on)
            results[label] = ms = 1000 * statistics.median(times)
            print(f"{label:32s} {ms:8.1f} ms/step   (median of {args.steps}; "
                  f"min {1000 * min(times):.1f}, max {1000 * max(times):.1f})")

    if MgValue is not None:
        for name in ('chainrule', 'chainrule fused=False'):
            on = results['micrograd, gc on'] / results[f'{name}, gc on']
            off = results['micrograd, gc off'] / results[f'{name}, gc off']
            print(f"{name:22s} is {on:5.1f}x faster than micrograd with gc on (as users run "
                  f"it), {off:4.1f}x with gc off")
        gc_cost = results['micrograd, gc on'] / results['micrograd, gc off']
        print(f"micrograd takes {gc_cost:.1f}x longer per step with the collector on")


if __name__ == '__main__':
    main()
