"""Datasets and batches for training: PyTorch's `DataLoader`, `TensorDataset`, `Subset` and
`random_split`, and the digits example data.

What this module lets you do: cut arrays into (optionally shuffled, seeded) mini-batches,

    >>> import numpy as np
    >>> from chainrule.data import DataLoader
    >>> x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    >>> [yb.tolist() for _, yb in DataLoader((x, y), batch_size=2)]
    [[0, 1], [2, 3], [4]]
    >>> len(DataLoader((x, y), batch_size=2, drop_last=True))
    2

split a dataset at random into non-overlapping parts (`random_split(ds, [0.8, 0.2])`), take a
`Subset` by indices, and load scikit-learn's bundled 8x8 digits (no download) split into training
and held-out sets with `load_digits`.

A dataset is a tuple of arrays with one first axis (a `TensorDataset`), or any object with
`__len__` and `__getitem__`. Batches are made as in PyTorch: the examples of a batch are passed
to `collate_fn`, by default `default_collate`, which stacks arrays, Tensors and numbers into
`Tensor`s and keeps the structure of tuples (as lists, as PyTorch does), dicts and named tuples.
Arrays datasets (and `Subset`s of them) are batched by fancy indexing instead, one NumPy call
per array, with the same result.
"""

import collections.abc
import math
import numbers
import warnings

import numpy as np

from chainrule._args import ArgumentError
from chainrule.core import IndexOutOfRangeError, ShapeError
from chainrule.tensor import Tensor

__all__ = ['DataLoader', 'TensorDataset', 'Subset', 'random_split', 'default_collate',
           'load_digits']


class TensorDataset:
    """Arrays (or Tensors) sharing their first axis, indexed together: `ds[i]` is a tuple of
    `Tensor`s, one per array (PyTorch's `TensorDataset`).

    Args:
        *arrays: arrays with the same length along axis 0.
    """

    def __init__(self, *arrays):
        arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
        if not arrays:
            raise ArgumentError('TensorDataset: needs at least one array')
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ShapeError(f'TensorDataset: array {i} is 0-d (a single value); every '
                                 'array needs a first axis over the examples')
        n = {len(a) for a in arrays}
        if len(n) != 1:
            raise ShapeError(f'TensorDataset: arrays have different lengths along axis 0: '
                             f'{[len(a) for a in arrays]}')
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, i):
        try:
            return tuple(Tensor(a[i]) for a in self.arrays)
        except IndexError:
            raise _out_of_range(i, len(self)) from None

    def _rows(self, idx):
        """The batch at integer array `idx`: one array per field (fancy indexing)."""
        try:
            return [a[idx] for a in self.arrays]
        except IndexError:
            raise _out_of_range(idx, len(self)) from None


def _out_of_range(i, n):
    return IndexOutOfRangeError(f'TensorDataset: index {i} is out of range for a dataset of {n} '
                                f'examples (valid: -{n} to {n - 1}); check the sampler or the '
                                'indices given')


class Subset:
    """The examples of `dataset` at `indices`, in that order (PyTorch's `Subset`).

    Args:
        dataset: any dataset (`__len__` and `__getitem__`).
        indices: a sequence of integer indices into it.
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, (list, tuple)):
            return [self.dataset[self.indices[j]] for j in i]
        return self.dataset[self.indices[i]]

    def _rows(self, idx):
        inner = getattr(self.dataset, '_rows', None)
        if inner is None:
            return None
        return inner(np.asarray(self.indices, dtype=np.int64)[idx])


def random_split(dataset, lengths, generator=None):
    """Split `dataset` at random into non-overlapping `Subset`s (PyTorch's `random_split`).

    Args:
        dataset: the dataset to split.
        lengths: the sizes of the parts, summing to `len(dataset)`; or fractions summing to 1,
            each part then getting `floor(fraction * len(dataset))` examples and the remainder
            handed out one by one from the first part on (PyTorch's rule).
        generator: a `cr.Generator` for the permutation; by default the global generator
            (`cr.manual_seed`). The split is reproducible from the seed, but it is not the
            split PyTorch draws from the same seed (the generators differ).

    Returns:
        A list of `Subset`s, one per length.

    Raises:
        ValueError: a fraction outside [0, 1], or lengths that do not add up to the size.
    """
    from chainrule.factories import randperm
    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        sizes = []
        for i, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ArgumentError(f'random_split: the fraction at index {i}, {frac!r}, is not '
                                    'between 0 and 1')
            sizes.append(math.floor(n * frac))
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f'random_split: the part at index {i} is empty', stacklevel=2)
        lengths = sizes
    if any(not isinstance(k, numbers.Integral) or k < 0 for k in lengths) or sum(lengths) != n:
        raise ArgumentError(f'random_split: lengths {lengths} must be non-negative integers '
                            f'summing to the size of the dataset ({n}), or fractions summing to '
                            '1')
    order = randperm(n, generator=generator).numpy().tolist()
    ends = np.cumsum(lengths).tolist()
    return [Subset(dataset, order[end - k:end]) for end, k in zip(ends, lengths)]


def default_collate(batch):
    """PyTorch's `default_collate`: combine a list of examples into a batch.

    Tensors, arrays and NumPy scalars are stacked into a `Tensor` (no history); Python floats
    give a float64 `Tensor`, ints an int64 one, bools a bool one; strings stay as they come (a
    list of the batch's strings, a tuple within a field); a dict gives a dict of batches, a
    named tuple the same named tuple, and a tuple or list a list of batches (PyTorch's
    choice), field by field.

    Raises:
        TypeError: an example of a type it cannot batch (the message names it).
        ValueError: sequences of different lengths in one batch.
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        return Tensor(np.stack([np.asarray(b.data) for b in batch]))
    if isinstance(elem, (np.ndarray, np.generic)):
        if np.asarray(elem).dtype.kind not in 'biufc':
            raise ArgumentError(f'default_collate: cannot batch arrays of dtype {elem.dtype}')
        return Tensor(np.stack([np.asarray(b) for b in batch]))
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=bool))
    if isinstance(elem, numbers.Integral):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, (str, bytes)):
        return batch                          # as PyTorch: a list, or a tuple within a field
    if isinstance(elem, collections.abc.Mapping):
        out = {k: default_collate([b[k] for b in batch]) for k in elem}
        try:
            return out if type(elem) is dict else type(elem)(out)
        except TypeError:                     # a mapping type that cannot be built from a dict
            return out
    if isinstance(elem, tuple) and hasattr(elem, '_fields'):        # a named tuple
        return type(elem)(*(default_collate(f) for f in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(b) != len(elem) for b in batch):
            raise ArgumentError(f'default_collate: the examples of a batch are sequences of '
                                f'different lengths {sorted({len(b) for b in batch})}')
        return [default_collate(f) for f in zip(*batch)]
    raise ArgumentError(f'default_collate: cannot batch a {type(elem).__name__}; examples may be '
                        'Tensors, arrays, numbers, strings, and dicts, tuples or lists of them '
                        '(or pass collate_fn=)')


class DataLoader:
    """Iterate over a dataset in mini-batches (PyTorch's `DataLoader`, in one process).

    Args:
        dataset: a tuple/list of arrays with one first axis (or a `TensorDataset`), or any
            object with `__len__` and `__getitem__`.
        batch_size: examples per batch (None: one example at a time, not collated).
        shuffle: draw a new random order at every pass.
        sampler: an iterable of indices with `len()` that gives the order of each pass instead
            (e.g. `chainrule.distributed.DistributedSampler`, one rank's shard); excludes
            `shuffle`.
        batch_sampler: an iterable of lists of indices, one per batch; excludes `batch_size`,
            `shuffle`, `sampler` and `drop_last`.
        num_workers: accepted for PyTorch code; batches are always made in this process.
        collate_fn: makes a batch from a list of examples (default: `default_collate`).
        pin_memory: accepted and ignored (there is no GPU).
        drop_last: skip a last batch smaller than `batch_size`.
        generator: a `cr.Generator` for the shuffling. With neither `generator` nor `seed`,
            the global generator (`cr.manual_seed`) shuffles.
        seed: seed (or `numpy.random.Generator`) of the shuffling; the same seed gives the
            same sequence of epochs.

    A batch of an arrays dataset is a list of `Tensor`s (no history), one per array, as
    PyTorch gives for a `TensorDataset`.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False, *,
                 generator=None, seed=None):
        if sampler is not None and shuffle:
            raise ArgumentError('DataLoader: pass either shuffle=True or a sampler (which decides '
                                'the order itself), not both')
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ArgumentError('DataLoader: batch_sampler gives whole batches, so it excludes '
                                'batch_size, shuffle, sampler and drop_last')
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(
                batch_size, numbers.Integral) or batch_size < 1):
            raise ArgumentError(f'DataLoader: batch_size must be a positive int (or None: one '
                                f'example at a time, unbatched), got {batch_size!r}')
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ArgumentError(f'DataLoader: num_workers must be an int >= 0, got '
                                f'{num_workers!r} (batches are made in this process anyway)')
        if not isinstance(drop_last, (bool, np.bool_)):
            raise ArgumentError(f'DataLoader: drop_last must be True or False, got {drop_last!r}')
        for name, s in (('sampler', sampler), ('batch_sampler', batch_sampler)):
            if s is not None and not hasattr(s, '__iter__'):
                raise ArgumentError(f'DataLoader: {name} must be an iterable of '
                                    f'{"indices" if name == "sampler" else "lists of indices"}'
                                    f', got {type(s).__name__}')
        if collate_fn is not None and not callable(collate_fn):
            raise ArgumentError(f'DataLoader: collate_fn must be a function of a list of '
                                f'examples, got {type(collate_fn).__name__}')
        if not hasattr(dataset, '__len__') or not hasattr(dataset, '__getitem__'):
            raise ArgumentError(f'DataLoader: the dataset must have __len__ and __getitem__ '
                                f'(a TensorDataset, a tuple of arrays, ...), got '
                                f'{type(dataset).__name__}')
        if isinstance(dataset, (tuple, list)) and all(
                np.ndim(a.data if isinstance(a, Tensor) else a) > 0 for a in dataset):
            dataset = TensorDataset(*dataset)       # arrays sharing a first axis
        # (a list of numbers, or of examples of mixed kinds: PyTorch's list of examples)
        self.dataset = dataset
        self.batch_size = None if batch_size is None else int(batch_size)
        self.shuffle = shuffle
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.num_workers = num_workers
        if generator is not None:
            seed = generator._np
        self.rng = None if seed is None else (
            seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed))

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _batches(self):
        """The index arrays of one pass, one per batch."""
        if self.batch_sampler is not None:
            for idx in self.batch_sampler:
                yield np.asarray(list(idx), dtype=np.int64)
            return
        if self.sampler is not None:
            order = np.fromiter(self.sampler, np.int64)
        elif self.shuffle:
            from chainrule.nn import init        # the global generator, read at each pass
            order = (self.rng or init.get_rng()).permutation(len(self.dataset))
        else:
            order = np.arange(len(self.dataset))
        n = len(order)
        if self.batch_size is None:
            yield from order
            return
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __iter__(self):
        fast = getattr(self.dataset, '_rows', None) if self.collate_fn is None else None
        collate = self.collate_fn or default_collate
        if self.batch_size is None and self.batch_sampler is None:
            # PyTorch's batch_size=None: one example at a time, not collated into a batch
            for i in self._batches():
                ex = self.dataset[int(i)]
                yield list(ex) if isinstance(ex, tuple) else ex
            return
        for idx in self._batches():
            parts = fast(idx) if fast is not None else None
            if parts is not None:
                yield [Tensor(p) for p in parts]
            else:
                yield collate([self.dataset[int(i)] for i in idx])


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
