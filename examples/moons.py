"""Train a small MLP on the two-moons data set with chainrule's scalar `Value`: micrograd's demo.

Run it as

    python examples/moons.py [--steps 100] [--seed 1337] [--out moons.png]

It builds the 2 -> 16 -> 16 -> 1 MLP of `chainrule.scalar.nn`, trains it on scikit-learn's
`make_moons(n_samples=100, noise=0.1)` with micrograd's loss -- the SVM max-margin loss
`mean(relu(1 - y * score))` plus an L2 penalty `1e-4 * sum(p**2)` -- and plain SGD with a
learning rate decaying from 1.0 to 0.1, to 100% training accuracy. It then draws the decision
boundary to a PNG when matplotlib is installed (it says so and skips the picture when not).

`train()` is importable, so tests run the same code.
"""

import argparse
import random
import sys
from pathlib import Path

try:
    import chainrule  # noqa: F401
except ImportError:     # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chainrule.scalar import Value
from chainrule.scalar.nn import MLP


def make_data(n_samples=100, noise=0.1, seed=1337):
    """The two-moons data set, as plain Python lists.

    Args:
        n_samples: the number of points.
        noise: the standard deviation of the Gaussian noise.
        seed: the random state for scikit-learn.

    Returns:
        `(X, y)`: X a list of `[x0, x1]` floats, y a list of labels -1.0 or 1.0.

    Raises:
        ImportError: scikit-learn is missing (the message says how to install it).
    """
    try:
        from sklearn.datasets import make_moons
    except ImportError:
        raise ImportError("this example needs scikit-learn for its data: "
                          "pip install scikit-learn") from None
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return X.tolist(), [2.0 * v - 1.0 for v in y.tolist()]


def loss(model, X, y, alpha=1e-4):
    """micrograd's demo loss: SVM max-margin loss plus L2, and the accuracy.

    Args:
        model: the MLP.
        X: a list of input pairs.
        y: a list of labels -1.0 or 1.0.
        alpha: the L2 penalty.

    Returns:
        `(total_loss, accuracy)`: a Value and a float in [0, 1].
    """
    inputs = [list(map(Value, row)) for row in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = alpha * sum(p * p for p in model.parameters())
    accuracy = sum((yi > 0) == (si.data > 0) for yi, si in zip(y, scores)) / len(y)
    return data_loss + reg_loss, accuracy


def train(steps=100, seed=1337, X=None, y=None, verbose=False):
    """Train the 2-16-16-1 MLP on the moons data with SGD, as micrograd's demo does.

    Args:
        steps: the number of full-batch SGD steps.
        seed: seeds the data (when X, y are not given) and the initial weights.
        X, y: the data; default `make_data(seed=seed)`.
        verbose: print the loss and accuracy every 10 steps.

    Returns:
        `(model, X, y, history)`: history is a list of `(loss, accuracy)` per step, the
        accuracy measured before that step's update; the last entry is measured after training.
    """
    if X is None or y is None:
        X, y = make_data(seed=seed)
    model = MLP(2, [16, 16, 1], rng=random.Random(seed))
    history = []
    for k in range(steps):
        total, acc = loss(model, X, y)
        history.append((total.data, acc))
        model.zero_grad()
        total.backward()
        lr = 1.0 - 0.9 * k / steps
        for p in model.parameters():
            p.data -= lr * p.grad
        if verbose and k % 10 == 0:
            print(f"step {k:3d}  loss {total.data:.4f}  accuracy {acc:.0%}")
    total, acc = loss(model, X, y)
    history.append((total.data, acc))
    if verbose:
        print(f"final     loss {total.data:.4f}  accuracy {acc:.0%}")
    return model, X, y, history


def predict(model, points):
    """The model's scores at many points, in plain floats (no graph is built).

    Args:
        model: a trained MLP.
        points: a list of `[x0, x1]`.

    Returns:
        A list of floats.
    """
    layers = [[([w.data for w in n.w], n.b.data, n.nonlin) for n in layer.neurons]
              for layer in model.layers]
    out = []
    for x in points:
        for layer in layers:
            x = [_act(b + sum(wi * xi for wi, xi in zip(w, x)), nl) for w, b, nl in layer]
        out.append(x[0])
    return out


def _act(v, nonlin):
    return max(v, 0.0) if nonlin else v


def plot_decision_boundary(model, X, y, path='moons.png'):
    """Draw the data and the model's decision boundary to an image file.

    Args:
        model: a trained MLP.
        X, y: the data.
        path: the image file to write.

    Returns:
        `path`, or None when matplotlib is not installed (a message says so).
    """
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no picture: pip install matplotlib")
        return None
    x0s, x1s = [p[0] for p in X], [p[1] for p in X]
    lo0, hi0, lo1, hi1 = min(x0s) - 1, max(x0s) + 1, min(x1s) - 1, max(x1s) + 1
    n = 120
    g0 = [lo0 + (hi0 - lo0) * i / (n - 1) for i in range(n)]
    g1 = [lo1 + (hi1 - lo1) * j / (n - 1) for j in range(n)]
    scores = predict(model, [[a, b] for b in g1 for a in g0])
    Z = [[1.0 if scores[j * n + i] > 0 else 0.0 for i in range(n)] for j in range(n)]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(g0, g1, Z, cmap=plt.cm.Spectral, alpha=0.8)
    ax.scatter(x0s, x1s, c=y, s=40, cmap=plt.cm.Spectral, edgecolors='k')
    ax.set_title('chainrule.scalar MLP on make_moons')
    fig.savefig(path, dpi=100, bbox_inches='tight')
    plt.close(fig)
    return path


def main(argv=None):
    """Train, report, and draw.

    Args:
        argv: command-line arguments; default `sys.argv[1:]`.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--seed', type=int, default=1337)
    parser.add_argument('--out', default='moons.png', help='where to draw the decision boundary')
    args = parser.parse_args(argv)
    model, X, y, history = train(steps=args.steps, seed=args.seed, verbose=True)
    path = plot_decision_boundary(model, X, y, args.out)
    if path:
        print(f"decision boundary drawn to {path}")


if __name__ == '__main__':
    main()
