"""Batches for training: a `DataLoader`-style iterator and the digits example data.

What this module lets you do: cut arrays into (optionally shuffled, seeded) mini-batches,

    >>> import numpy as np
    >>> from chainrule.data import DataLoader
    >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in DataLoader((x, y), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> len(DataLoader((x, y), batch_size=2, drop_last=True))
    2

and load scikit-learn's bundled 8x8 digits (no download) split into training and held-out
sets with `load_digits`. A dataset is a tuple of arrays with one first axis (batches are taken by
fancy indexing, one NumPy call per array), or any object with `__len__` and `__getitem__`
returning a tuple per example (batches are stacked). Batches come out as `Tensor`s.
"""

import numpy as np

from chainrule.tensor import Tensor

__all__ = ['DataLoader', 'TensorDataset', 'load_digits']


class TensorDataset:
    """Arrays (or Tensors) sharing their first axis, indexed together.

    Args:
        *arrays: arrays with the same length along axis 0.
    """

    def __init__(self, *arrays):
        arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
        if not arrays:
            raise ValueError('TensorDataset: needs at least one array')
        n = {len(a) for a in arrays}
        if len(n) != 1:
            raise ValueError(f'TensorDataset: arrays have different lengths along axis 0: '
                             f'{[len(a) for a in arrays]}')
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        return tuple(a[i] for a in self.arrays)


class DataLoader:
    """Iterate over a dataset in mini-batches.

    Args:
        dataset: a tuple/list of arrays with one first axis (or a `TensorDataset`, or any
            object with `__len__` and `__getitem__` returning a tuple per example).
        batch_size: examples per batch.
        shuffle: draw a new random order at every pass.
        drop_last: skip a last batch smaller than `batch_size`.
        seed: seed (or `numpy.random.Generator`) of the shuffling; the same seed gives the
            same sequence of epochs.
        sampler: an iterable of indices with `len()` that gives the order of each pass instead
            (e.g. `chainrule.distributed.DistributedSampler`, one rank's shard); excludes
            `shuffle`.
        generator: a `cr.Generator` for the shuffling (PyTorch's spelling). With neither
            `seed` nor `generator`, the global generator (`cr.manual_seed`) shuffles.

    Each batch is a tuple of `Tensor`s (no history); a single-array dataset gives 1-tuples.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 sampler=None, generator=None):
        if sampler is not None and shuffle:
            raise ValueError('DataLoader: pass either shuffle=True or a sampler (which decides '
                             'the order itself), not both')
        self.sampler = sampler
        if isinstance(dataset, (tuple, list)):
            dataset = TensorDataset(*dataset)
        if batch_size < 1:
            raise ValueError(f'DataLoader: batch_size must be >= 1, got {batch_size}')
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        if generator is not None:
            seed = generator._np
        self.rng = None if seed is None else (
            seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed))

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            order = np.fromiter(self.sampler, np.int64)
            n = len(order)
        else:
            n = len(self.dataset)
            if self.shuffle:
                from chainrule.nn import init        # the global generator, read at each pass
                order = (self.rng or init.get_rng()).permutation(n)
            else:
                order = np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        arrays = getattr(self.dataset, 'arrays', None)
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            if arrays is not None:
                parts = [a[idx] for a in arrays]
            else:
                items = [self.dataset[int(i)] for i in idx]
                parts = [np.stack([np.asarray(it[k]) for it in items])
                         for k in range(len(items[0]))]
            yield tuple(Tensor(p) for p in parts)


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 1797 8x8 handwritten digits, scaled to [0, 1], split at random.

    Args:
        test_fraction: the share of examples held out.
        seed: seed of the split.

    Returns:
        `((x_train, y_train), (x_test, y_test))`: float32 images of shape `(n, 64)` and int64
        labels 0-9.

    Raises:
        ImportError: scikit-learn is missing (the message names the extra to install).
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install 'chainrule[demo]' "
                          '(or pip install scikit-learn)') from None
    d = _load()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])
