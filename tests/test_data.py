"""chainrule.data: `Subset`, `random_split` (PyTorch's lengths and fractions rule; the split
itself from our generator: sizes, disjointness, coverage, reproducibility), `default_collate`
and `DataLoader(collate_fn=, batch_sampler=)` against PyTorch's batches of the same examples."""

import collections
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import DataLoader, Subset, TensorDataset, default_collate, random_split


def _torch():
    torch = pytest.importorskip('torch', reason='PyTorch is the reference for the data API')
    torch.set_num_threads(1)
    return torch


class Squares:
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return i * i


SPLITS = [[3, 7], [0.3, 0.3, 0.4], [0.5, 0.5], [0.34, 0.33, 0.33], [0.1] * 10,
          [1 / 3] * 3, [0.25, 0.75], [0.0, 1.0], [0, 10], [10], [1.0]]


@pytest.mark.parametrize('n', [10, 7, 1, 23])
@pytest.mark.parametrize('lengths', SPLITS, ids=str)
def test_random_split_sizes_follow_pytorch(n, lengths):
    torch = _torch()
    if all(isinstance(k, int) for k in lengths) and sum(lengths) != n:
        lengths = [n - sum(lengths[1:])] + lengths[1:] if n >= sum(lengths[1:]) else [n]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')           # empty parts warn in both
        theirs = [len(s) for s in torch.utils.data.random_split(range(n), lengths)]
        parts = random_split(list(range(n)), lengths, generator=cr.Generator().manual_seed(0))
    assert [len(s) for s in parts] == theirs
    got = [x for s in parts for x in (s[i] for i in range(len(s)))]
    assert sorted(got) == list(range(n))          # disjoint and covering


def test_random_split_is_reproducible_and_random():
    ds = Squares()
    a = random_split(ds, [0.5, 0.5], generator=cr.Generator().manual_seed(3))
    b = random_split(ds, [0.5, 0.5], generator=cr.Generator().manual_seed(3))
    c = random_split(ds, [0.5, 0.5], generator=cr.Generator().manual_seed(4))
    assert [s.indices for s in a] == [s.indices for s in b] != [s.indices for s in c]
    assert [a[0][i] for i in range(5)] == [i * i for i in a[0].indices]
    cr.manual_seed(5)
    d = random_split(ds, [4, 6])
    cr.manual_seed(5)
    assert [s.indices for s in random_split(ds, [4, 6])] == [s.indices for s in d]


def test_random_split_errors():
    with pytest.raises(ValueError, match='summing to the size'):
        random_split(range(10), [3, 3])
    with pytest.raises(ValueError, match='summing to the size'):
        random_split(range(10), [0.5, 0.6])
    with pytest.warns(UserWarning, match='empty'):
        random_split(range(2), [0.1, 0.1, 0.8])


def test_subset_indexes_through_and_batches_like_its_dataset():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    ds = TensorDataset(x, y)
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3
    xs, ys = sub[1]
    np.testing.assert_array_equal(xs.numpy(), x[2])
    assert ys.item() == 2
    assert [t[1].item() for t in sub[[0, 2]]] == [7, 5]
    (xb, yb), = list(DataLoader(sub, batch_size=3))          # fast path: fancy indexing
    np.testing.assert_array_equal(yb.numpy(), [7, 2, 5])
    (xb2, yb2), = list(DataLoader(sub, batch_size=3, collate_fn=default_collate))
    np.testing.assert_array_equal(xb.numpy(), xb2.numpy())    # the same as collating
    np.testing.assert_array_equal(yb.numpy(), yb2.numpy())
    nested = Subset(Subset(Squares(), [9, 8, 7]), [2, 0])
    assert [nested[0], nested[1]] == [49, 81]


class Examples:
    """A dataset of structured examples: a tuple, a dict, a named tuple, numbers, strings."""

    Pair = collections.namedtuple('Pair', 'a b')

    def __init__(self, lib):
        self.lib = lib

    def __len__(self):
        return 5

    def __getitem__(self, i):
        x = self.lib.tensor(np.arange(3.0) + i)
        return (x, i, float(i) / 2, bool(i % 2), f'name{i}',
                {'v': np.full((2,), i, np.float32), 'pair': self.Pair(i, [i, 2 * i])})


def _plain(batch, torch):
    """A batch as nested lists/dicts of NumPy arrays (for comparison across libraries)."""
    if isinstance(batch, (cr.Tensor, torch.Tensor)):
        return np.asarray(batch.numpy())
    if isinstance(batch, dict):
        return {k: _plain(v, torch) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch).__name__, [_plain(v, torch) for v in batch]
    return batch


def _assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, tuple):
        assert a[0] == b[0] and len(a[1]) == len(b[1])
        for u, v in zip(a[1], b[1]):
            _assert_same(u, v)
    else:
        assert a == b


def test_default_collate_matches_pytorch():
    torch = _torch()
    ours = list(DataLoader(Examples(cr), batch_size=2))
    theirs = list(torch.utils.data.DataLoader(Examples(torch), batch_size=2))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        _assert_same(_plain(a, torch), _plain(b, torch))


def test_tensor_dataset_batches_match_pytorch():
    torch = _torch()
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    ours = list(DataLoader(TensorDataset(x, y), batch_size=4))
    theirs = list(torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=4))
    for a, b in zip(ours, theirs):
        _assert_same(_plain(a, torch), _plain(b, torch))
    a, b = TensorDataset(x, y)[3], torch.utils.data.TensorDataset(torch.tensor(x),
                                                                  torch.tensor(y))[3]
    _assert_same(_plain(a, torch), _plain(b, torch))


def test_collate_fn_and_batch_sampler():
    x = np.arange(12.0).reshape(6, 2)
    seen = []

    def collate(examples):
        seen.append(len(examples))
        return cr.stack([e[0] for e in examples]).sum()

    out = [float(b.item()) for b in DataLoader((x,), batch_size=4, collate_fn=collate)]
    assert out == [x[:4].sum(), x[4:].sum()] and seen == [4, 2]
    dl = DataLoader((x,), batch_sampler=[[5, 0], [2, 3, 1]])
    assert len(dl) == 2
    assert [b[0].numpy()[:, 0].tolist() for b in dl] == [[10.0, 0.0], [4.0, 6.0, 2.0]]
    with pytest.raises(ValueError, match='batch_sampler'):
        DataLoader((x,), batch_size=2, batch_sampler=[[0]])
    with pytest.raises(TypeError, match='cannot batch a object'):
        default_collate([object(), object()])
    with pytest.raises(ValueError, match='different lengths'):
        default_collate([(1, 2), (1,)])
