"""Saved files and exported graphs, tried as a user and an attacker would (issue 11).

- Round trips: every op-table row, constants and outputs of every kind (0-d, empty, float32,
  complex, integer, bool), linear algebra, FFTs, convolutions, control flow and random programs
  all load back and give the values (NumPy's reference) and gradients of the original.
- chainrule.scipy's primitives (matrix functions, LU, Sylvester and banded solves, convolution,
  special functions) round-trip with SciPy's values and the original's gradients, and load in a
  process that never imported chainrule.scipy.
- Saving is atomic: a write failing midway leaves the previous file loadable; concurrent saves
  to one path from threads all succeed.
- Memory bombs: small files declaring huge arrays load in small memory or are refused.
- Malformed files (truncated at every offset, a byte flipped at every offset, nested JSON,
  crafted parameters for every primitive, wrong structures) raise only the documented error,
  `LoadError` from `cr.load` and `GraphFormatError` from `cr.load_graph`, naming the file.
"""

import errno
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
import chainrule.numpy as cnp
from chainrule import lax
from chainrule.core import registry
from chainrule.export import _canonical
from chainrule.ops import recurrent as rec

sys.path.insert(0, os.path.dirname(__file__))
from op_table import ROWS  # noqa: E402

hypothesis = pytest.importorskip('hypothesis', reason='the random-program tests need hypothesis')
from hypothesis import given, settings, strategies as st  # noqa: E402


def _same(a, b):
    """Loaded and original results: same structure, dtypes, shapes and values (bit for bit:
    both run the same program)."""
    la, ta = cr.tree.tree_flatten(a)
    lb, tb = cr.tree.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


def _close_to_ref(got, want, dtype):
    tol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
    for x, y in zip(cr.tree.tree_flatten(got)[0], cr.tree.tree_flatten(want)[0]):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _round_trip(tmp_path, f, *args, name='f.crg'):
    exp = cr.export(f, *args)
    path = tmp_path / name
    exp.save(path)
    loaded = cr.load_graph(path)
    _same(loaded(*args), exp(*args))
    return loaded, path


# --- round trips: the op table ------------------------------------------------------------------

def _row_cases():
    for row in ROWS:
        for cid, shapes, kw in row.cases():
            for dt in row.dtypes + ((np.complex128,) if row.complex else ()):
                yield pytest.param(row, shapes, kw, dt, id=f'{cid}-{np.dtype(dt).name}')


@pytest.mark.parametrize('row,shapes,kw,dtype', list(_row_cases()))
def test_every_op_table_row_round_trips(tmp_path, row, shapes, kw, dtype):
    rng = np.random.default_rng(0)
    args = row.sample(shapes, dtype, rng)
    f = lambda *a: row.fn(*a, **kw)           # noqa: E731
    path = tmp_path / 'row.crg'
    try:
        exp = cr.export(f, *args)
        exp.save(path)
    except cr.core.ConcretizationError:
        pytest.skip('value-dependent (nonzero, real_if_close, ...): cannot be staged')
    except cr.ChainruleError as e:
        assert 'cannot save a constant of dtype object' in str(e)    # result_type: a dtype
        pytest.skip('the result is a dtype, not an array: refused when exported')
    loaded = cr.load_graph(path)
    got = loaded(*args)
    _same(got, exp(*args))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        want = row.ref(*args, **kw)
    _close_to_ref(got, want, dtype)
    if row.diff and np.dtype(dtype) == np.float64:
        def loss(fn):
            return lambda *a: sum(cnp.sum(cnp.real(o)) for o in cr.tree.tree_flatten(fn(*a))[0]
                                  if cnp.result_type(o).kind in 'fc')
        argnums = tuple(i for i, a in enumerate(args) if a.dtype.kind == 'f')
        if argnums:
            g_loaded = cr.grad(loss(loaded), argnums=argnums)(*args)
            g_orig = cr.grad(loss(f), argnums=argnums)(*args)
            for a, b in zip(g_loaded, g_orig):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# --- round trips: constants and outputs of every kind -----------------------------------------

CONSTS = {
    'zero_d': np.array(2.5), 'empty': np.ones((0, 3)), 'f32': np.arange(3, dtype=np.float32),
    'complex': np.array([1 + 2j, -3j]), 'int': np.arange(4, dtype=np.int32),
    'bool': np.array([True, False, True]), 'u8': np.array(7, np.uint8),
    'c64_0d': np.array(1 - 1j, np.complex64),
}


def test_constants_and_outputs_of_every_kind(tmp_path):
    def f(x):
        return {
            'scaled': x * CONSTS['zero_d'],                          # 0-d constant
            'zero_d_out': cnp.sum(x),                               # 0-d output
            'empty_out': CONSTS['empty'] * x[0],                    # empty result
            'f32': CONSTS['f32'] * np.float32(2.0),                 # float32 constant
            'complex': CONSTS['complex'] * x[0],
            'int': CONSTS['int'] + 1,                               # integer, constant-only
            'bool': cnp.logical_not(CONSTS['bool']),
            'u8': CONSTS['u8'],                                     # a constant as an output
            'c64': CONSTS['c64_0d'] * np.complex64(2),
            'literal': 3.0,
        }
    x = np.array([0.5, -1.5, 2.0])
    loaded, _ = _round_trip(tmp_path, f, x)
    out = loaded(x)
    np.testing.assert_array_equal(out['scaled'], x * 2.5)
    assert out['zero_d_out'].shape == () and out['zero_d_out'] == pytest.approx(1.0)
    assert out['empty_out'].shape == (0, 3)
    assert out['f32'].dtype == np.float32 and list(out['f32']) == [0.0, 2.0, 4.0]
    np.testing.assert_array_equal(out['complex'], np.array([0.5 + 1j, -1.5j]))
    assert out['int'].dtype == np.int32 and list(out['int']) == [1, 2, 3, 4]
    assert list(out['bool']) == [False, True, False]
    assert out['u8'].dtype == np.uint8 and out['u8'] == 7
    assert out['c64'].dtype == np.complex64 and out['c64'] == 2 - 2j
    g = cr.grad(lambda x: loaded(x)['scaled'].sum() + loaded(x)['zero_d_out'])(x)
    np.testing.assert_allclose(g, np.full(3, 3.5))


def test_constants_in_any_byte_order_or_layout(tmp_path):
    big = np.arange(6.0).reshape(2, 3).astype('>f8')
    fortran = np.asfortranarray(np.arange(6.0).reshape(2, 3) * 10)
    loaded, _ = _round_trip(tmp_path, lambda x: x * big + fortran + big[:, ::2].sum(), np.ones(3))
    np.testing.assert_array_equal(loaded(np.ones(3)), big + fortran + (0 + 2 + 3 + 5))


def test_issue_example_logaddexp_with_a_0d_constant(tmp_path):
    loaded, _ = _round_trip(tmp_path, lambda s: cnp.logaddexp(0.0, s), np.array(1.0))
    assert loaded(np.array(1.0)) == pytest.approx(np.logaddexp(0.0, 1.0), rel=1e-15)
    assert cr.grad(loaded)(np.array(1.0)) == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-15)


# programs reaching the primitives the op table does not (linear algebra, FFTs, convolutions,
# pooling, control flow) -- and, with their gradients, the primitives of backward passes
RNG = np.random.default_rng(1)
SPD = (lambda a: a @ a.T + 3 * np.eye(3))(RNG.standard_normal((3, 3)))
IMG = RNG.standard_normal((2, 3, 6, 6))
KER = RNG.standard_normal((4, 3, 3, 3))

PROGRAMS = {
    'linalg': (lambda a, b: (cnp.linalg.inv(a), cnp.linalg.solve(a, b), cnp.linalg.det(a),
                             cnp.linalg.slogdet(a)[1], cnp.linalg.cholesky(a),
                             cnp.linalg.eigh(a)[0], cnp.linalg.svd(a)[1],
                             cnp.linalg.qr(a)[1], cnp.abs(cnp.linalg.eigvals(a))),
               (SPD, RNG.standard_normal((3, 2))),
               lambda a, b: (np.linalg.inv(a), np.linalg.solve(a, b), np.linalg.det(a),
                             np.linalg.slogdet(a)[1], np.linalg.cholesky(a),
                             np.linalg.eigh(a)[0], np.linalg.svd(a)[1],
                             np.linalg.qr(a)[1], np.sort(np.abs(np.linalg.eigvals(a))))),
    'fft': (lambda x: (cnp.fft.fftn(x), cnp.fft.ifft(x), cnp.fft.rfftn(x),
                       cnp.fft.irfft(cnp.fft.rfft(x), n=5)),
            (RNG.standard_normal((4, 5)),),
            lambda x: (np.fft.fftn(x), np.fft.ifft(x), np.fft.rfftn(x),
                       np.fft.irfft(np.fft.rfft(x), n=5))),
    'einsum': (lambda a, b: cnp.einsum('ij,jk->ik', a, b), (SPD, RNG.standard_normal((3, 2))),
               lambda a, b: np.einsum('ij,jk->ik', a, b)),
    'nn': (lambda x, w: (F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2),
                         F.log_softmax(x[:, :, 0, 0], dim=-1),
                         F.cross_entropy(x[:, :, 0, 0], np.array([0, 2])),
                         F.linear(x[:, :, 0, 0], w[:, :, 0, 0]),
                         F.conv2d(x, w, padding=2, dilation=2),
                         F.batch_norm(x, None, None, training=True)),
           (IMG, KER), None),
    'control': (lambda x: (lax.cond(cnp.sum(x) > 0, lambda v: v * 2.0, lambda v: -v, x),
                           lax.scan(lambda c, r: (c + r, c * r), cnp.zeros(3), x),
                           lax.fori_loop(0, 3, lambda i, v: v * 1.5, x)),
                (RNG.standard_normal((4, 3)),), None),
    # one LSTM layer run backwards and one GRU layer (chainrule.ops.recurrent), biases constant
    'recurrent': (lambda x, w, v: (
        rec.lstm_layer(x, x[0], x[1], w, w[:, :2] * 0.5, np.full(8, 0.1), None, reverse=True),
        rec.gru_layer(x, x[-1], v, v[::-1] - 0.3, None, np.full(6, -0.2))),
        (RNG.standard_normal((3, 2, 2)), RNG.standard_normal((8, 2)),
         RNG.standard_normal((6, 2))), None),
    'while': (lambda x: lax.while_loop(lambda v: cnp.sum(v) < 100.0, lambda v: v * 2.0, x),
              (np.abs(RNG.standard_normal(3)) + 0.5,), None),
}


def _loss(fn):
    return lambda *a: sum(cnp.sum(cnp.real(o)) for o in cr.tree.tree_flatten(fn(*a))[0]
                          if cnp.result_type(o).kind in 'fc')


@pytest.mark.parametrize('name', sorted(PROGRAMS))
def test_programs_beyond_the_op_table_round_trip(tmp_path, name):
    f, args, ref = PROGRAMS[name]
    loaded, _ = _round_trip(tmp_path, f, *args)
    if ref is not None:
        got = loaded(*args)
        if name == 'linalg':
            got = got[:-1] + (np.sort(got[-1]),)
        _close_to_ref(got, ref(*args), np.float64)
    if name == 'while':
        return                                       # while_loop: forward mode only
    g = cr.grad(_loss(loaded), argnums=tuple(range(len(args))))(*args)
    want = cr.grad(_loss(f), argnums=tuple(range(len(args))))(*args)
    for a, b in zip(g, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the backward program itself (pool_scatter, fold, ... in it) round-trips too
    _round_trip(tmp_path, cr.grad(_loss(f), argnums=tuple(range(len(args)))), *args,
                name='grad.crg')


UNARY_OPS = [cnp.sin, cnp.tanh, cnp.exp, lambda x: x * 2.0, lambda x: x - 1.0, cnp.abs,
             lambda x: cnp.sum(x, axis=0, keepdims=True) + x, lambda x: x.T.T,
             lambda x: cnp.cumsum(x, axis=-1), lambda x: cnp.maximum(x, 0.5),
             lambda x: x[::-1], lambda x: cnp.where(x > 0, x, -x),
             lambda x: cnp.reshape(x, (-1,))[: x.size].reshape(x.shape)]
BINARY_OPS = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: cnp.arctan2(a, b),
              lambda a, b: a @ cnp.swapaxes(b, -1, -2) @ a if a.ndim == 2 else a * b]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(UNARY_OPS) + len(BINARY_OPS) - 1),
                          st.integers(0, 10)), min_size=1, max_size=8),
       st.sampled_from([(3,), (2, 3), (3, 3)]), st.sampled_from([np.float64, np.float32]),
       st.integers(0, 2**16))
def test_random_programs_round_trip(tmp_path_factory, ops, shape, dtype, seed):
    def prog(x, y):
        vals = [x, y]
        for k, j in ops:
            a = vals[j % len(vals)]
            if k < len(UNARY_OPS):
                vals.append(UNARY_OPS[k](a))
            else:
                vals.append(BINARY_OPS[k - len(UNARY_OPS)](a, vals[(j + 1) % len(vals)]))
        return vals[2:]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    tmp = tmp_path_factory.mktemp('random')
    loaded, _ = _round_trip(tmp, prog, x, y)
    _close_to_ref(loaded(x, y), prog(x, y), dtype)
    if dtype == np.float64:
        ga = cr.grad(_loss(loaded), argnums=(0, 1))(x, y)
        gb = cr.grad(_loss(prog), argnums=(0, 1))(x, y)
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


# --- atomic and concurrent saves -----------------------------------------------------------------

def _fail_partway(monkeypatch):
    """Make the array writer raise 'no space left' on its second array (midway through a
    file)."""
    real = np.lib.format.write_array
    calls = []

    def write_array(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(*a, **k)
    monkeypatch.setattr(np.lib.format, 'write_array', write_array)


def test_a_save_failing_midway_leaves_the_previous_file_loadable(tmp_path, monkeypatch):
    p_state, p_graph = tmp_path / 'state.npz', tmp_path / 'prog.crg'
    cr.save(p_state, {'w': np.ones(3), 'b': np.zeros(2)})
    cr.export(lambda x: x * np.arange(3.0) + 1.0, np.ones(3)).save(p_graph)
    with monkeypatch.context() as m:
        _fail_partway(m)
        with pytest.raises(OSError, match='No space'):
            cr.save(p_state, {'w': np.full(3, 9.0), 'b': np.ones(2)})
    with monkeypatch.context() as m:
        _fail_partway(m)
        with pytest.raises(OSError, match='No space'):
            cr.export(lambda x: x * np.arange(3.0) - np.ones(3), np.ones(3)).save(p_graph)
    np.testing.assert_array_equal(cr.load(p_state)['w'], np.ones(3))
    np.testing.assert_array_equal(cr.load_graph(p_graph)(np.ones(3)), [1.0, 2.0, 3.0])
    assert sorted(os.listdir(tmp_path)) == ['prog.crg', 'state.npz']     # no temp files left


def test_saved_files_get_the_usual_permissions(tmp_path):
    """The temporary file is private while written; the saved one is readable as any file
    open() makes (0o666 less the umask), not 0o600."""
    probe = tmp_path / 'probe'
    probe.write_bytes(b'')
    cr.save(tmp_path / 's.npz', {'a': 1})
    cr.export(lambda x: x * 2.0, np.ones(2)).save(tmp_path / 'g.crg')
    for name in ('s.npz', 'g.crg'):
        assert (tmp_path / name).stat().st_mode & 0o777 == probe.stat().st_mode & 0o777


def test_concurrent_saves_to_one_path_all_succeed(tmp_path):
    p_state, p_graph = tmp_path / 'state.npz', tmp_path / 'prog.crg'
    errors = []
    programs = [cr.export(lambda x, k=k: x * float(k), np.ones(2)) for k in range(4)]

    def work(k):
        try:
            for i in range(5):
                cr.save(p_state, {'k': k, 'i': i, 'w': np.full(1000, float(k))})
                programs[k].save(p_graph)
        except Exception as e:   # noqa: BLE001 - collected and reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = cr.load(p_state)
    np.testing.assert_array_equal(state['w'], np.full(1000, float(state['k'])))
    assert cr.load_graph(p_graph)(np.ones(2))[0] in (0.0, 1.0, 2.0, 3.0)
    assert sorted(os.listdir(tmp_path)) == ['prog.crg', 'state.npz']


# --- memory bombs -----------------------------------------------------------------------------

def _npy_header(shape, dtype='<f8'):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {'descr': dtype, 'fortran_order': False, 'shape': shape})
    return buf.getvalue()


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _replace_entry(path, name, data):
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries[name] = data
    with zipfile.ZipFile(path, 'w') as z:
        for n, b in entries.items():
            z.writestr(n, b)


def test_npy_header_declaring_2_to_40_elements_is_refused_without_allocating(tmp_path):
    p = tmp_path / 'bomb.npz'
    cr.save(p, {'w': np.ones(2)})
    _replace_entry(p, 'w.npy', _npy_header((2**40,)) + b'\0' * 16)
    assert p.stat().st_size < 2000
    holder = []
    peak = _peak(lambda: holder.append(pytest.raises(cr.LoadError, cr.load, p)))
    assert 'bomb.npz' in str(holder[0].value) and '2 bytes' not in str(holder[0].value)
    assert 'declares shape (1099511627776,)' in str(holder[0].value)
    assert peak < 2**20

    prog = tmp_path / 'bomb.crg'
    cr.export(lambda x: x * np.arange(3.0), np.ones(3)).save(prog)
    _replace_entry(prog, 'a0.npy', _npy_header((2**40,)) + b'\0' * 24)
    peak = _peak(lambda: holder.append(pytest.raises(cr.GraphFormatError, cr.load_graph,
                                                     prog)))
    assert 'bomb.crg' in str(holder[1].value) and 'declares shape' in str(holder[1].value)
    assert peak < 2**20


def _forge(path, edit):
    """Rewrite the JSON inside a saved graph with `edit(body)`, recomputing its checksum (a
    forger can; validation must not rely on it)."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    doc = json.loads(np.load(io.BytesIO(entries['__graph__.npy'])).tobytes())
    edit(doc['body'])
    doc['sha256'] = hashlib.sha256(_canonical(doc['body']).encode()).hexdigest()
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(doc).encode(), np.uint8))
    entries['__graph__.npy'] = buf.getvalue()
    with zipfile.ZipFile(path, 'w') as z:
        for n, b in entries.items():
            z.writestr(n, b)


@pytest.mark.parametrize('n', [2**26, 2**31, 2**40])
def test_huge_declared_shapes_load_in_small_memory(tmp_path, n):
    """The issue's bombs: small files declaring 512 MiB, 16 GiB, 8 TiB arrays. A consistent
    graph over such shapes loads (no array is made until it runs), allocating little."""
    def f(x, m):
        return (cnp.sum(cnp.exp(cnp.sin(x) * 2.0 + x)), cnp.cumsum(x, axis=0), m @ m.T,
                cnp.transpose(m)[:, 1:])
    p = tmp_path / 'huge.crg'
    cr.export(f, np.ones(7), np.ones((5, 3))).save(p)
    k = 2 ** (n.bit_length() // 2)

    def scale(body):    # what a forger does: declare the same program at huge sizes
        for g in body['graphs']:
            g['avals'] = [[[{7: n, 5: k, 4: k - 1}.get(d, d) for d in a[0]], a[1]]
                          for a in g['avals']]
    _forge(p, scale)
    assert p.stat().st_size < 8000
    peak = _peak(lambda: cr.load_graph(p))
    assert peak < 2**22
    loaded = cr.load_graph(p)
    assert [a.shape for a in loaded.in_avals] == [(n,), (k, 3)]
    assert [a.shape for a in loaded.graph.out_avals] == [(), (n,), (k, k), (3, k - 1)]


def test_forged_inconsistent_huge_shapes_are_refused_in_small_memory(tmp_path):
    p = tmp_path / 'bad.crg'
    cr.export(lambda x: cnp.sin(x) @ x, np.ones((5, 5))).save(p)

    def scale(body):
        g = body['graphs'][body['main']]
        g['avals'][-1][0] = [2**31, 2**31]
    _forge(p, scale)
    holder = []
    peak = _peak(lambda: holder.append(pytest.raises(cr.GraphFormatError, cr.load_graph, p)))
    assert 'bad.crg' in str(holder[0].value) and 'matmul' in str(holder[0].value)
    assert peak < 2**21


# --- malformed files: only the documented error, naming the file ----------------------------------

def _small_state_file(tmp_path):
    p = tmp_path / 'small.npz'
    cr.save(p, {'w': np.arange(3.0), 'n': [1, (2.5, None)], 't': 'x'})
    return p


def _small_graph_file(tmp_path):
    p = tmp_path / 'small.crg'
    cr.export(lambda x: cnp.sum(cnp.sin(x) * np.arange(3.0)), np.ones(3)).save(p)
    return p


def _small_file(tmp_path, kind):
    """A small valid file of `kind`, its loader and the error that loader documents."""
    if kind == 'state':
        return _small_state_file(tmp_path), cr.load, cr.LoadError
    return _small_graph_file(tmp_path), cr.load_graph, cr.GraphFormatError


def _only_documented(load, path, error, data):
    path.write_bytes(data)
    try:
        load(path)
    except error as e:
        assert path.name in str(e)
        return 'refused'
    return 'loaded'


@pytest.mark.parametrize('kind', ['state', 'graph'])
def test_truncation_at_every_offset(tmp_path, kind):
    path, load, error = _small_file(tmp_path, kind)
    data = path.read_bytes()
    for n in range(len(data)):
        assert _only_documented(load, path, error, data[:n]) == 'refused', n


@pytest.mark.parametrize('kind', ['state', 'graph'])
def test_a_byte_flipped_at_every_offset(tmp_path, kind):
    path, load, error = _small_file(tmp_path, kind)
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = set()
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << int(rng.integers(8))
        outcomes.add(_only_documented(load, path, error, bytes(flipped)))
    assert 'refused' in outcomes


@pytest.mark.parametrize('kind', ['state', 'graph'])
@settings(max_examples=60, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                      max_size=6))
def test_random_corruption(tmp_path_factory, kind, edits):
    tmp = tmp_path_factory.mktemp('fuzz')
    path, load, error = _small_file(tmp, kind)
    data = bytearray(path.read_bytes())
    for pos, byte in edits:
        data[pos % len(data)] = byte
    _only_documented(load, path, error, bytes(data))


def test_deeply_nested_json_is_refused(tmp_path):
    p = _small_graph_file(tmp_path)
    deep = '[' * 100_000 + ']' * 100_000
    with zipfile.ZipFile(p) as z:
        doc = json.loads(np.load(io.BytesIO(z.read('__graph__.npy'))).tobytes())
    doc['body']['in_tree'] = 'DEEP'
    text = json.dumps(doc).replace('"DEEP"', deep)
    _replace_entry(p, '__graph__.npy', _npy_bytes(np.frombuffer(text.encode(), np.uint8)))
    with pytest.raises(cr.GraphFormatError, match='small.crg.*nested'):
        cr.load_graph(p)
    p = _small_state_file(tmp_path)
    meta = {'format': 'chainrule-state', 'version': 1, 'state': None}
    text = json.dumps(meta).replace('null', '[' * 100_000 + ']' * 100_000)
    _replace_entry(p, '__chainrule__.npy', _npy_bytes(np.frombuffer(text.encode(), np.uint8)))
    with pytest.raises(cr.LoadError, match='small.npz.*nested'):
        cr.load(p)


def _npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize('state,match', [
    ({'list': 'abc'}, 'malformed list'),
    ({'tuple': {'a': 1}}, 'malformed tuple'),
    ({'dict': [['a']]}, 'malformed dict'),
    ({'dict': [['a', 1], ['a', 2]]}, 'repeats a key'),
    ({'dict': [[['k'], 1]]}, 'malformed dict'),
    ({'float': 'os.system'}, 'malformed float'),
    ({'array': 'w', 'scalar': 'yes'}, 'malformed array'),
    ({'list': [{'array': 'w'}, {'array': 'w'}]}, 'used twice'),
    ({'array': 'nope'}, 'missing'),
    ({'array': ['w']}, 'missing'),
    ({'tensor': 't'}, 'tensor'),
    ({'pickle': 'x'}, 'unknown entry kind'),
    ([1, 2], 'malformed node'),
])
def test_wrong_structures_are_refused(tmp_path, state, match):
    p = tmp_path / 'crafted.npz'
    cr.save(p, {'w': np.ones(2), 't': np.array(['text'])})
    meta = {'format': 'chainrule-state', 'version': 1, 'state': state}
    _replace_entry(p, '__chainrule__.npy',
                   _npy_bytes(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
    with pytest.raises(cr.LoadError, match=f'crafted.npz.*{match}'):
        cr.load(p)


def test_unsupported_compression_is_refused_not_notimplemented(tmp_path):
    p = _small_state_file(tmp_path)
    data = bytearray(p.read_bytes())
    # the compression method of the first local header and of its central directory entry
    for at in (8, data.rfind(b'PK\x01\x02') + 10):
        data[at:at + 2] = (99).to_bytes(2, 'little')
    p.write_bytes(bytes(data))
    with pytest.raises(cr.LoadError, match='small.npz.*compression'):
        cr.load(p)


# crafted parameters: every primitive in a corpus of saved programs, each parameter replaced by
# values of the wrong kind (or dropped, or joined by an unexpected one such as NumPy's `out=`)
BAD_PARAMS = [{'str': 'a'}, {'num': ['float', '1.5']}, -1, -(2**62), 2**62, None, True,
              {'tuple': []}, {'tuple': [{'tuple': [1]}]}, {'dtype': 'float64'},
              {'slice': [None, None, None]}, {'ellipsis': True}, {'graph': 0},
              {'list': [0, 1]}, {'tuple': [0, 0, 0, 0, 0]}, {'str': 'left'}]


def _corpus(tmp_path):
    """One saved program per primitive it can reach: (path, graph index, equation index)."""
    found = {}
    rng = np.random.default_rng(0)
    programs = [(lambda *a, r=row, kw=kw: r.fn(*a, **kw), row.sample(shapes, np.float64, rng))
                for row in ROWS for _, shapes, kw in row.cases()]
    programs += [(f, args) for f, args, _ in PROGRAMS.values()]
    programs += [
        (lambda x: cr.jvp(lambda y: F.max_pool2d(y, 2), (x,), (x,))[1], (IMG,)),
        (cr.grad(lambda x: cnp.sum(cnp.sort(x) * np.arange(3.0))), (np.array([2.0, 0.5, 1.0]),)),
        (lambda x: cnp.partition(x, 1), (np.array([2.0, 0.5, 1.0]),)),
        (lambda z, t: F.cross_entropy(z, t), (np.ones((2, 3)), np.array([0, 2]))),
        (lambda k: cr.random.normal(k, (3,)), (cr.random.key(0),)),     # threefry2x32
    ]
    programs += [(cr.grad(_loss(f), argnums=tuple(range(len(a)))), a)
                 for f, a, _ in PROGRAMS.values() if f is not PROGRAMS['while'][0]]
    if _has_scipy():
        programs += [(f, args) for f, args, _ in _scipy_programs().values()]
    for k, (f, args) in enumerate(programs):
        try:
            exp = cr.export(f, *args)
            path = tmp_path / f'p{k}.crg'
            exp.save(path)
        except cr.ChainruleError:
            continue
        with zipfile.ZipFile(path) as z:
            body = json.loads(np.load(io.BytesIO(z.read('__graph__.npy'))).tobytes())['body']
        for gi, g in enumerate(body['graphs']):
            for ei, e in enumerate(g['eqns']):
                found.setdefault(e['prim'], (path, gi, ei))
    return found


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp('corpus'))


def test_crafted_parameters_for_every_primitive(corpus):
    from chainrule._graphcheck import SCHEMAS
    reached = set(corpus)
    # every primitive with parameters that a saved program can contain is exercised
    missing = set(SCHEMAS) - reached - {'jit_call'}     # (inlined when staged)
    assert not missing, missing
    cases = 0
    for prim, (path, gi, ei) in sorted(corpus.items()):
        original = path.read_bytes()
        params = json.loads(np.load(io.BytesIO(zipfile.ZipFile(path).read(
            '__graph__.npy'))).tobytes())['body']['graphs'][gi]['eqns'][ei]['params']
        edits = [lambda p: p.update(out={'array': 'a0'}), lambda p: p.update(where=True)]
        for name in params:
            edits.append(lambda p, n=name: p.pop(n))
            edits.extend(lambda p, n=name, v=v: p.update({n: v}) for v in BAD_PARAMS)
        for edit in edits:
            path.write_bytes(original)
            _forge(path, lambda b: edit(b['graphs'][gi]['eqns'][ei]['params']))
            cases += 1
            try:
                loaded = cr.load_graph(path)
            except cr.GraphFormatError as e:
                assert path.name in str(e)
                continue
            # accepted: the value was valid after all, and the program runs (or fails with
            # chainrule's or NumPy's linear-algebra error on these all-ones inputs)
            try:
                loaded(*[np.ones(a.shape, a.dtype) for a in loaded.in_avals])
            except (cr.ChainruleError, np.linalg.LinAlgError):
                pass
    assert cases > 500


# values a forger might put anywhere in the JSON description
_JUNK = [None, True, False, 0, 1, -1, 7, 2**40, -2**70, 1.5, 'a', '*', 'int', [], {}, [0], [[]],
         {'tuple': []}, {'lit': ['int', 1]}, {'lit': ['float', 'nan']}, {'graph': 0},
         {'graph': 1}, {'array': 'a0'}, {'dtype': 'bool'}, {'str': 'x'},
         {'slice': [0, 1, 0]}, {'list': [1]}, {'dict': [['a', '*']]}, [[], 'float64'],
         [[3], 'int8'], ['*'], {'tuple': ['*', '*']}]


def _json_paths(x, path=()):
    todo = [(x, path)]
    while todo:
        v, p = todo.pop()
        yield p
        items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
        todo.extend((c, p + (k,)) for k, c in items)


def test_structure_aware_fuzz(corpus):
    """Any node of a saved graph's JSON replaced by junk (checksum recomputed, as a forger
    would): loading raises GraphFormatError or gives a program that runs."""
    rng = np.random.default_rng(11)
    paths = sorted({v[0] for v in corpus.values()})
    for _ in range(400):
        path = paths[rng.integers(len(paths))]
        original = path.read_bytes()
        with zipfile.ZipFile(path) as z:
            body = json.loads(np.load(io.BytesIO(z.read('__graph__.npy'))).tobytes())['body']
        nodes = [p for p in _json_paths(body) if p and p[0] in ('graphs', 'in_tree', 'out_tree',
                                                                 'main')]
        where = nodes[rng.integers(len(nodes))]
        junk = _JUNK[rng.integers(len(_JUNK))]

        def edit(b):
            target = b
            for k in where[:-1]:
                target = target[k]
            target[where[-1]] = junk
        _forge(path, edit)
        try:
            loaded = cr.load_graph(path)
        except cr.GraphFormatError as e:
            assert path.name in str(e)
        else:
            try:
                loaded(*[np.ones(a.shape, a.dtype) for a in loaded.in_avals])
            except (cr.ChainruleError, np.linalg.LinAlgError):
                pass
        path.write_bytes(original)


def test_no_crafted_file_runs_code(tmp_path):
    """Nothing in a file can name a Python object other than a registered primitive and a
    NumPy dtype: attempts are refused before anything runs."""
    p = _small_graph_file(tmp_path)
    for evil in ['os.system', '__import__', 'builtins.eval', 'checkpoint_call']:
        _forge(p, lambda b: b['graphs'][0]['eqns'][0].update(prim=evil))
        with pytest.raises(cr.GraphFormatError, match='small.crg'):
            cr.load_graph(p)
        p.unlink()
        p = _small_graph_file(tmp_path)
    assert 'checkpoint_call' in registry


# --- names -----------------------------------------------------------------------------------

def test_errors_and_modules_are_importable_from_chainrule():
    import chainrule.export
    assert isinstance(chainrule.export, type(sys))
    assert cr.export is chainrule.export and callable(cr.export)
    assert cr.LoadError is cr.io.LoadError and issubclass(cr.LoadError, cr.ChainruleError)
    assert cr.GraphFormatError is chainrule.export.GraphFormatError
    assert cr.testing.check_grads is not None


def test_save_accepts_pytorch_argument_order(tmp_path):
    p = tmp_path / 'torch_order.npz'
    cr.save({'w': np.ones(2)}, p)
    np.testing.assert_array_equal(cr.load(p)['w'], np.ones(2))
    cr.save(str(p), {'w': np.zeros(2)})
    np.testing.assert_array_equal(cr.load(p)['w'], np.zeros(2))
    with pytest.raises(cr.ChainruleError, match='cr.save\\(path, state\\)'):
        cr.save({'w': 1}, {'v': 2})


def test_a_long_chain_of_nested_graphs_is_refused(tmp_path):
    p = tmp_path / 'chain.crg'
    cr.export(lambda x: lax.cond(x > 0, lambda v: v + 1.0, lambda v: v - 1.0, x),
              np.array(1.0)).save(p)

    def chain(body):     # graph k's cond takes graph k + 1 as a branch, 5000 deep
        gs = body['graphs']
        main = gs[body['main']]
        template = json.dumps(main)
        for k in range(5000):
            g = main if k == 0 else json.loads(template)
            eq = next(e for e in g['eqns'] if e['prim'] == 'cond')
            nxt = len(gs) + (1 if k else 0)     # the index the next graph gets
            eq['params']['branches'] = {'tuple': [{'graph': nxt}] * 2}
            if k:
                gs.append(g)
    _forge(p, chain)
    with pytest.raises(cr.GraphFormatError, match='chain.crg.*nested more than'):
        cr.load_graph(p)


def test_every_primitive_has_a_parameter_schema_and_a_shape_rule():
    """Adding a primitive means declaring how a loaded graph checks it: its parameters in
    `_graphcheck.SCHEMAS` (the impl's keyword-only parameters) and a rule giving its result
    types from shapes and dtypes alone (its own `shape`, elementwise, or `_graphcheck.RULES`)."""
    import importlib
    import inspect
    from chainrule._graphcheck import DECLARING_MODULES, RULES, SCHEMAS, not_loadable
    for module in DECLARING_MODULES:          # (their primitives are checked too)
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    problems = []
    for name, prim in sorted(registry.items()):
        home = getattr(prim.impl, '__module__', None) or 'numpy'
        if not_loadable(name) or not home.startswith(('chainrule', 'numpy')):
            continue         # (primitives that other tests register)
        if isinstance(prim.impl, np.ufunc):
            kw = set()
        else:
            ps = inspect.signature(prim.impl).parameters.values()
            kw = {p.name for p in ps if p.kind == p.KEYWORD_ONLY}
        if kw != set(SCHEMAS.get(name, {})):
            problems.append(f'{name}: impl takes {sorted(kw)}, schema lists '
                            f'{sorted(SCHEMAS.get(name, {}))}')
        if not (name in RULES or prim.shape is not None or prim.elementwise or
                name == 'where'):
            problems.append(f'{name}: no rule for its result types')
    assert not problems, problems


def test_zip_headers_declaring_more_than_the_file_holds_are_refused(tmp_path):
    """A member whose zip headers claim 2^40 bytes (with a matching .npy header) must not be
    allocated: sizes are checked against the archive's own length."""
    p = tmp_path / 'liar.npz'
    cr.save(p, {'w': np.ones(2)})
    data = bytearray(p.read_bytes())
    at = data.rfind(b'PK\x01\x02')                   # the central directory entry of w.npy
    while at >= 0:
        name_len = int.from_bytes(data[at + 28:at + 30], 'little')
        if data[at + 46:at + 46 + name_len] == b'w.npy':
            break
        at = data.rfind(b'PK\x01\x02', 0, at)
    data[at + 20:at + 28] = (2**32 - 2).to_bytes(4, 'little') * 2   # compressed, uncompressed
    p.write_bytes(bytes(data))
    holder = []
    peak = _peak(lambda: holder.append(pytest.raises(cr.LoadError, cr.load, p)))
    assert 'liar.npz' in str(holder[0].value) and peak < 2**20


# --- chainrule.scipy's primitives: round trips, and loading without importing chainrule.scipy --

def _has_scipy():
    try:
        import scipy  # noqa: F401
    except ImportError:
        return False
    return True


def _scipy_programs():
    """name -> (program, args, SciPy's reference for its value) for each primitive of
    chainrule.scipy a saved graph can hold."""
    import scipy.linalg
    import scipy.signal
    import scipy.special
    import chainrule.scipy.linalg as sla
    import chainrule.scipy.signal as sig
    import chainrule.scipy.special as sp
    rng = np.random.default_rng(5)
    a = 0.3 * rng.standard_normal((3, 3))
    m = rng.standard_normal((3, 3))
    spd = m @ m.T + 3 * np.eye(3)
    near_eye = np.eye(3) + 0.2 * rng.standard_normal((3, 3))
    b2 = rng.standard_normal((2, 2)) + 3 * np.eye(2)
    q = rng.standard_normal((3, 2))
    ab = np.array([[0.0, 1.0, 0.5, 0.2], [4.0, 5.0, 6.0, 5.0], [1.0, 0.3, 0.7, 0.0]])
    rhs = rng.standard_normal((4, 2))
    x1, k1 = rng.standard_normal(7), rng.standard_normal(3)
    x2, k2 = rng.standard_normal((5, 4)), rng.standard_normal((2, 3))
    xs = rng.uniform(0.5, 3.0, 5)
    mode_progs = {
        f'convolve_{mode}_{method}': (
            lambda x, k, mode=mode, method=method: sig.convolve(x, k, mode=mode, method=method),
            (x1, k1), lambda x, k, mode=mode: scipy.signal.convolve(x, k, mode=mode))
        for mode in ('full', 'same', 'valid') for method in ('direct', 'fft')}
    return {
        'expm': (sla.expm, (a,), scipy.linalg.expm),
        'expm_batched': (sla.expm, (np.stack([a, 2 * a]),),
                         lambda s: np.stack([scipy.linalg.expm(x) for x in s])),
        'logm': (sla.logm, (near_eye,), scipy.linalg.logm),
        'sqrtm': (sla.sqrtm, (spd,), scipy.linalg.sqrtm),
        'lu_solve': (lambda a, b: sla.lu_solve(sla.lu_factor(a), b), (spd + a, q),
                     lambda a, b: scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), b)),
        'lu_solve_transposed': (
            lambda a, b: sla.lu_solve(sla.lu_factor(a), b, trans=1), (spd + a, q),
            lambda a, b: scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), b, trans=1)),
        'solve_sylvester': (sla.solve_sylvester, (spd, b2, q), scipy.linalg.solve_sylvester),
        'solve_banded': (lambda ab, b: sla.solve_banded((1, 1), ab, b), (ab, rhs),
                         lambda ab, b: scipy.linalg.solve_banded((1, 1), ab, b)),
        **mode_progs,
        'convolve_2d': (lambda x, k: sig.convolve(x, k, mode='same'), (x2, k2),
                        lambda x, k: scipy.signal.convolve(x, k, mode='same')),
        'correlate': (lambda x, k: sig.correlate(x, k, mode='valid'), (x1, k1),
                      lambda x, k: scipy.signal.correlate(x, k, mode='valid')),
        'special': (lambda x: sp.gammaln(x) + sp.digamma(x) * sp.i0e(x) - sp.erfinv(x / 4),
                    (xs,), lambda x: scipy.special.gammaln(x) + scipy.special.digamma(x) *
                    scipy.special.i0e(x) - scipy.special.erfinv(x / 4)),
        'special_two_args': (lambda x: sp.gammainc(2.5, x) + sp.betaln(x, 1.5) + sp.polygamma(1, x),
                             (xs,), lambda x: scipy.special.gammainc(2.5, x) +
                             scipy.special.betaln(x, 1.5) + scipy.special.polygamma(1, x)),
    }


_SCIPY_NAMES = ['expm', 'expm_batched', 'logm', 'sqrtm', 'lu_solve', 'lu_solve_transposed',
                'solve_sylvester', 'solve_banded'] + \
    [f'convolve_{mode}_{method}' for mode in ('full', 'same', 'valid')
     for method in ('direct', 'fft')] + ['convolve_2d', 'correlate', 'special',
                                         'special_two_args']


def _run_python(script, cwd):
    """Run `script` in a fresh interpreter that imports this checkout's chainrule."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(cr.__file__)))
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                       timeout=300, cwd=str(cwd), env=dict(os.environ, PYTHONPATH=root))
    assert r.returncode == 0, r.stderr


def _scalar_loss(f):
    return lambda *a: cnp.sum(cnp.real(f(*a)) ** 2)


@pytest.mark.parametrize('name', _SCIPY_NAMES)
def test_scipy_primitives_round_trip_with_values_and_gradients(tmp_path, name):
    pytest.importorskip('scipy', reason='chainrule.scipy computes with SciPy')
    f, args, ref = _scipy_programs()[name]
    loaded, path = _round_trip(tmp_path, f, *args)
    np.testing.assert_allclose(loaded(*args), ref(*args), rtol=1e-9, atol=1e-12)
    argnums = tuple(range(len(args)))
    got = cr.grad(_scalar_loss(loaded), argnums=argnums)(*args)
    want = cr.grad(_scalar_loss(f), argnums=argnums)(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    # and the gradient program itself round-trips
    gl, _ = _round_trip(tmp_path, cr.grad(_scalar_loss(f), argnums=argnums), *args,
                        name='grad.crg')
    for g, w in zip(gl(*args), want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_scipy_primitive_graph_loads_in_a_process_that_never_imported_chainrule_scipy(
        tmp_path):
    """load_graph imports the chainrule module that declares a primitive the file uses; the
    user imports only chainrule."""
    pytest.importorskip('scipy', reason='chainrule.scipy computes with SciPy')
    import chainrule.scipy.linalg as sla
    import chainrule.scipy.signal as sig
    import chainrule.scipy.special as sp
    rng = np.random.default_rng(8)
    a, x, k = 0.3 * rng.standard_normal((3, 3)), rng.uniform(0.5, 2.0, 6), rng.standard_normal(3)

    def f(a, x, k):
        lu = sla.lu_solve(sla.lu_factor(sla.expm(a)), x[:3])
        return cnp.sum(sig.convolve(x, k, mode='same') * sp.gammaln(x)) + cnp.sum(lu)
    cr.export(f, a, x, k).save(tmp_path / 'sci.crg')
    np.savez(tmp_path / 'in.npz', a=a, x=x, k=k)
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, chainrule as cr
        assert not [m for m in sys.modules if m.startswith('chainrule.scipy.')], 'preloaded'
        f = cr.load_graph({str(tmp_path / 'sci.crg')!r})
        z = np.load({str(tmp_path / 'in.npz')!r})
        args = (z['a'], z['x'], z['k'])
        g = cr.grad(f, argnums=(0, 1, 2))(*args)
        np.savez({str(tmp_path / 'out.npz')!r}, value=f(*args), ga=g[0], gx=g[1], gk=g[2])
    """)
    _run_python(script, tmp_path)
    out = np.load(tmp_path / 'out.npz')
    import scipy.linalg
    import scipy.signal
    import scipy.special
    want = np.sum(scipy.signal.convolve(x, k, mode='same') * scipy.special.gammaln(x)) + \
        np.sum(scipy.linalg.lu_solve(scipy.linalg.lu_factor(scipy.linalg.expm(a)), x[:3]))
    np.testing.assert_allclose(out['value'], want, rtol=1e-12)
    g = cr.grad(f, argnums=(0, 1, 2))(a, x, k)
    for got, w in zip((out['ga'], out['gx'], out['gk']), g):
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12)


def test_every_module_declaring_primitives_is_imported_by_load_graph_when_needed(tmp_path):
    """Every primitive that importing chainrule (and chainrule.lax) does not declare is declared
    by a module of `_graphcheck.DECLARING_MODULES`, so a saved graph using it loads in a
    process that never imported that module."""
    script = textwrap.dedent("""
        import importlib, pkgutil
        import chainrule, chainrule.lax
        from chainrule._graphcheck import DECLARING_MODULES, not_loadable
        from chainrule.core import registry
        base = set(registry)
        for m in pkgutil.walk_packages(chainrule.__path__, 'chainrule.'):
            try:
                importlib.import_module(m.name)
            except ImportError:       # (an optional extra that is not installed)
                pass
        new = {n: getattr(registry[n].impl, '__module__', '') for n in set(registry) - base}
        # (primitives no file may hold, such as MPI collectives, need no declaring module)
        bad = sorted(f'{n} ({m})' for n, m in new.items()
                     if m not in DECLARING_MODULES and not not_loadable(n))
        assert not bad, bad
    """)
    _run_python(script, tmp_path)


def test_saved_odeint_is_refused_clearly(tmp_path):
    """odeint's right-hand side is a Python function, which no file may carry: export refuses
    it when saving, and a file naming odeint is refused on load."""
    pytest.importorskip('scipy', reason='chainrule.scipy computes with SciPy')
    from chainrule._graphcheck import not_loadable
    from chainrule.scipy.integrate import odeint
    assert not_loadable('odeint')
    exp = cr.export(lambda k: odeint(lambda y, t, k: -k * y, np.ones(2), np.linspace(0, 1, 3),
                                     args=(k,)), np.float64(0.5))
    with pytest.raises(cr.ChainruleError, match='cannot save a parameter'):
        exp.save(tmp_path / 'ode.crg')
