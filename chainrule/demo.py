"""The main demo: train a small convolutional network on handwritten digits, on a CPU.

    python -m chainrule.demo                 # full run: about 98% held-out accuracy
    python -m chainrule.demo --quick         # one epoch on a subset, a few seconds
    python -m chainrule.demo --help
    mpiexec -n 2 python -m chainrule.demo --distributed   # data parallel over MPI ranks

What it shows: `chainrule.nn` layers (`Conv2d`, `MaxPool2d`, `Linear`, ...) trained eagerly
with `loss.backward()` and `chainrule.optim.Adam` on scikit-learn's bundled 8x8 digits (no
download), with a progress bar; the held-out accuracy; the model saved with `cr.save` (an
`.npz` that cannot run code when loaded), loaded into a fresh model and checked to predict
identically; a PNG of the loss and accuracy curves; and a picture of the model's graph (DOT
text always, SVG when Graphviz is installed). Everything is written to the output folder
(`demo_out/` by default).

Needs the demo extras: `pip install 'chainrule[demo]'` (scikit-learn, matplotlib, tqdm).
"""

import argparse
import os
import sys
import time

import numpy as np

import chainrule as cr
from chainrule import nn, optim
from chainrule.data import DataLoader, load_digits

__all__ = ['SmallCNN', 'main', 'train']


def SmallCNN(rng=0, dtype=np.float32):
    """The demo's network for `(N, 1, 8, 8)` images: two 3x3 convolutions with ReLU and 2x2
    max pooling (16 and 32 channels), then a 128-64-10 classifier. Its state-dict names are
    those of the same `torch.nn.Sequential`.

    Args:
        rng: seed (or generator) of the initial weights.
        dtype: parameter dtype.

    Returns:
        An `nn.Sequential`.
    """
    rng = nn.init.get_rng(rng)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, rng=rng, dtype=dtype), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128, 64, rng=rng, dtype=dtype), nn.ReLU(),
        nn.Linear(64, 10, rng=rng, dtype=dtype))


def _need(module, what):
    try:
        return __import__(module, fromlist=['_'])
    except ImportError:
        raise SystemExit(f"the demo needs {module} for {what}: pip install 'chainrule[demo]'") \
            from None


def predict(model, x, batch_size=512):
    """Logits of `model` on `x`, in evaluation mode and without recording."""
    model.eval()
    with cr.no_grad():
        out = [np.asarray(model(x[i:i + batch_size]).data) for i in range(0, len(x), batch_size)]
    model.train()
    return np.concatenate(out)


def accuracy(model, x, y):
    return float(np.mean(predict(model, x).argmax(1) == y))


def train(epochs=15, seed=0, batch_size=16, lr=4e-3, quick=False, progress=True,
          distributed=False):
    """Train `SmallCNN` on the digits.

    Args:
        epochs: passes over the training set.
        seed: seed of the split, the initial weights and the shuffling.
        batch_size: examples per step.
        lr: Adam's peak learning rate (cosine decay over the run).
        quick: one epoch on 300 training and 100 held-out examples.
        progress: show a tqdm progress bar (on rank 0 only when distributed).
        distributed: data parallel over the ranks of an MPI job (`chainrule.distributed`):
            each rank takes `batch_size / ranks` examples of every step's batch, so the steps
            and the global batch are those of one process.

    Returns:
        `(model, optimizer, history, (x_test, y_test))`, `history` a dict of per-epoch lists
        `loss`, `train_acc`, `test_acc` and the float `seconds`.
    """
    (x_tr, y_tr), (x_te, y_te) = load_digits(test_fraction=0.2, seed=seed)
    x_tr, x_te = x_tr.reshape(-1, 1, 8, 8), x_te.reshape(-1, 1, 8, 8)
    if quick:
        epochs = 1
        x_tr, y_tr, x_te, y_te = x_tr[:300], y_tr[:300], x_te[:100], y_te[:100]
    model = SmallCNN(rng=seed)
    run, sampler, dist = model, None, None
    if distributed:
        import chainrule.distributed as dist
        run = dist.DistributedDataParallel(model)
        sampler = dist.DistributedSampler(len(x_tr), shuffle=True, seed=seed)
        batch_size = max(1, batch_size // dist.size())
        progress = progress and dist.is_main_process()
    opt = optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader((x_tr, y_tr), batch_size=batch_size, shuffle=sampler is None,
                        seed=seed, sampler=sampler)
    sched = optim.CosineAnnealingLR(opt, T_max=max(1, epochs * len(loader)))
    F = nn.functional
    history = {'loss': [], 'train_acc': [], 'test_acc': []}
    bar = None
    if progress:
        tqdm = _need('tqdm', 'the progress bar').tqdm
        bar = tqdm(total=epochs * len(loader), desc='training', unit='step', file=sys.stderr)
    start = time.perf_counter()
    for epoch in range(epochs):
        total, count = 0.0, 0
        if sampler is not None:
            sampler.set_epoch(epoch)
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(run(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(yb)
            count += len(yb)
            if bar is not None:
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f'{float(loss):.3f}')
        if dist is not None:
            m = dist.reduce_metrics({'total': total, 'count': count}, op='sum')
            total, count = m['total'], m['count']
        history['loss'].append(total / count)
        history['train_acc'].append(accuracy(model, x_tr, y_tr))
        history['test_acc'].append(accuracy(model, x_te, y_te))
    if bar is not None:
        bar.close()
    history['seconds'] = time.perf_counter() - start
    return model, opt, history, (x_te, y_te)


def plot_history(history, path):
    """Write the loss and accuracy curves to a PNG at `path` (matplotlib, Agg backend)."""
    matplotlib = _need('matplotlib', 'the training curves')
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = np.arange(1, len(history['loss']) + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, history['loss'], marker='o')
    a.set(xlabel='epoch', ylabel='training loss (cross-entropy)', title='loss')
    b.plot(epochs, history['train_acc'], marker='o', label='training')
    b.plot(epochs, history['test_acc'], marker='o', label='held out')
    b.set(xlabel='epoch', ylabel='accuracy', title='accuracy')
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_model(model, x, folder):
    """Write the graph of one forward pass (loss included) as DOT, and as SVG when Graphviz is
    installed. Returns the paths written."""
    out = nn.functional.cross_entropy(model(x[:1]), np.zeros(1, np.int64))
    g = cr.viz.draw(out)
    paths = [os.path.join(folder, 'model_graph.dot')]
    with open(paths[0], 'w') as f:
        f.write(g.source)
    try:
        paths.append(g.render(os.path.join(folder, 'model_graph.svg')))
    except cr.viz.GraphvizNotFoundError:
        pass
    return paths


def main(argv=None):
    """Run the demo (see the module docstring); returns a dict of results."""
    p = argparse.ArgumentParser(
        prog='python -m chainrule.demo',
        description='Train a small CNN on scikit-learn\'s 8x8 digits with chainrule: progress '
                    'bar, held-out accuracy, save and reload, curves (PNG) and the model graph '
                    '(DOT, SVG with Graphviz).')
    p.add_argument('--epochs', type=int, default=15, help='passes over the training set '
                   '(default 15)')
    p.add_argument('--seed', type=int, default=0, help='seed of the split, initial weights and '
                   'shuffling (default 0)')
    p.add_argument('--out', default='demo_out', help='output folder (default demo_out/)')
    p.add_argument('--batch-size', type=int, default=16, help='examples per step (default 16)')
    p.add_argument('--lr', type=float, default=4e-3, help="Adam's peak learning rate "
                   '(default 4e-3)')
    p.add_argument('--quick', action='store_true', help='one epoch on a subset (a few seconds; '
                   'used by the test suite)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.add_argument('--distributed', action='store_true', help='data parallel over the ranks of '
                   'an MPI job: mpiexec -n 2 python -m chainrule.demo --distributed (needs '
                   "pip install 'chainrule[mpi]'); rank 0 prints and writes the outputs")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        p.error('--epochs and --batch-size must be at least 1 and --lr positive')

    main_rank, save, load = True, cr.save, cr.load
    if args.distributed:
        import chainrule.distributed as dist
        main_rank = dist.is_main_process()
        save, load = dist.save_checkpoint, dist.load_checkpoint
    if main_rank:
        os.makedirs(args.out, exist_ok=True)
    model, opt, history, (x_te, y_te) = train(args.epochs, args.seed, args.batch_size, args.lr,
                                              args.quick, not args.no_progress,
                                              args.distributed)
    acc = history['test_acc'][-1]
    ranks = f', {dist.size()} ranks' if args.distributed else ''
    if main_rank:
        print(f'held-out accuracy: {acc:.2%} on {len(y_te)} images '
              f'({len(history["loss"])} epochs{ranks}, {history["seconds"]:.1f} s)')

    path = os.path.join(args.out, 'model.npz')
    save(path, {'model': model.state_dict(), 'optimizer': opt.state_dict(),
                'epochs': len(history['loss']), 'test_acc': acc})
    state = load(path)
    fresh = SmallCNN(rng=args.seed + 1)
    fresh.load_state_dict(state['model'])
    same = bool(np.array_equal(predict(model, x_te), predict(fresh, x_te)))
    if not same:
        raise SystemExit('the reloaded model predicts differently')
    if not main_rank:
        return {'test_acc': acc, 'history': history, 'reload_identical': same}
    print(f'saved to {path}; reloaded model predicts identically: {same}')

    png = plot_history(history, os.path.join(args.out, 'training.png'))
    graphs = draw_model(model, x_te, args.out)
    print('wrote ' + ', '.join([png] + graphs))
    return {'test_acc': acc, 'history': history, 'reload_identical': same, 'model_path': path,
            'png': png, 'graphs': graphs}


if __name__ == '__main__':
    main()
