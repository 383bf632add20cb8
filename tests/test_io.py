"""cr.save / cr.load: round trips of nested state, a format that never unpickles, and clear
errors for damaged or foreign files."""

import io
import zipfile

import numpy as np
import pytest

import chainrule as cr
from chainrule.io import LoadError


def _state():
    return {
        'model': {'fc.weight': np.arange(6, dtype=np.float32).reshape(2, 3),
                  'fc.bias': np.zeros(2, np.float64), 'count': np.array(7, np.int64)},
        'opt': {'state': {0: {'step': 3, 'exp_avg': np.ones(3, np.float32)}},
                'param_groups': [{'lr': 0.1, 'betas': (0.9, 0.999), 'nesterov': False,
                                  'params': [0, 1], 'name': None}]},
        'tensor': cr.tensor(np.array([1.5, -2.0])),
        'scalar': np.float32(2.5), 'inf': float('inf'), 'text': 'héllo', 'flags': [True, 1.0],
        'complex': np.array([1 + 2j]), 'empty': {}, 'nested': [[np.ones((0, 2))], ()],
    }


def _check_equal(a, b):
    if isinstance(a, cr.Tensor):
        assert isinstance(b, cr.Tensor) and not b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, (np.ndarray, np.generic)):
        assert type(a) is type(b) and a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _check_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _check_equal(x, y)
    else:
        assert type(a) is type(b) and a == b


def test_round_trip_keeps_structure_types_and_dtypes(tmp_path):
    path = tmp_path / 'state.npz'
    state = _state()
    cr.save(path, state)
    _check_equal(state, cr.load(path))
    # the archive is plain NumPy, readable without pickle, arrays named by their path
    with np.load(path, allow_pickle=False) as z:
        assert 'model/fc.weight' in z.files and 'opt/state/0/exp_avg' in z.files
    # file objects work too
    buf = io.BytesIO()
    cr.save(buf, state)
    buf.seek(0)
    _check_equal(state, cr.load(buf))


def test_module_state_dict_round_trip(tmp_path):
    m = cr.nn.Sequential(cr.nn.Linear(3, 4, rng=0), cr.nn.BatchNorm1d(4))
    cr.save(tmp_path / 'm.npz', m.state_dict())
    m2 = cr.nn.Sequential(cr.nn.Linear(3, 4, rng=1), cr.nn.BatchNorm1d(4))
    m2.load_state_dict(cr.load(tmp_path / 'm.npz'))
    x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    m.eval(), m2.eval()
    np.testing.assert_array_equal(m(x).numpy(), m2(x).numpy())


def test_unsupported_values_are_refused():
    with pytest.raises(TypeError, match='cannot store a object at x'):
        cr.save(io.BytesIO(), {'x': object()})
    with pytest.raises(TypeError, match='dtype object'):
        cr.save(io.BytesIO(), {'x': np.array([{}, 1], dtype=object)})
    with pytest.raises(TypeError, match='dict keys'):
        cr.save(io.BytesIO(), {(1, 2): 3})


def test_truncated_and_corrupt_files_give_a_clear_error(tmp_path):
    path = tmp_path / 'state.npz'
    cr.save(path, _state())
    data = path.read_bytes()
    for bad in [data[:len(data) // 2], data[:100], b'', b'not a zip file at all',
                data[:200] + bytes(50) + data[250:]]:
        p = tmp_path / 'bad.npz'
        p.write_bytes(bad)
        with pytest.raises(LoadError, match='cannot read'):
            cr.load(p)
    with pytest.raises(FileNotFoundError):
        cr.load(tmp_path / 'missing.npz')


def test_foreign_files_are_refused_and_pickles_never_loaded(tmp_path):
    p = tmp_path / 'plain.npz'
    np.savez(p, a=np.ones(2))
    with pytest.raises(LoadError, match='not one written by chainrule.save'):
        cr.load(p)
    p = tmp_path / 'single.npy'
    np.save(p, np.ones(2))
    with pytest.raises(LoadError, match='single array'):
        cr.load(p)
    # an archive whose array entry is a pickle: refused, never unpickled
    p = tmp_path / 'pickled.npz'
    cr.save(p, {'w': np.ones(2)})
    with zipfile.ZipFile(p, 'a') as z:
        b = io.BytesIO()
        np.save(b, np.array([object()], dtype=object), allow_pickle=True)
        z.writestr('w2.npy', b.getvalue())
    meta = cr.load(p)                       # the untouched entries still load
    np.testing.assert_array_equal(meta['w'], np.ones(2))
    p2 = tmp_path / 'pickled2.npz'
    with zipfile.ZipFile(p2, 'w') as z, zipfile.ZipFile(p) as src:
        for name in src.namelist():           # w.npy now holds the pickle
            if name != 'w2.npy':
                z.writestr(name, src.read('w2.npy' if name == 'w.npy' else name))
    with pytest.raises(LoadError, match='cannot read'):
        cr.load(p2)


def test_save_replaces_a_file_only_when_complete(tmp_path):
    path = tmp_path / 'state.npz'
    cr.save(path, {'a': np.ones(2)})
    with pytest.raises(TypeError):
        cr.save(path, {'a': np.zeros(2), 'b': object()})
    np.testing.assert_array_equal(cr.load(path)['a'], np.ones(2))
    assert [f.name for f in tmp_path.iterdir()] == ['state.npz']
