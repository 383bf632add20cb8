"""Tests of cache-blocked execution in `jit`'s generated NumPy code (`chainrule.jit.blocked`).

Blocked code runs the same ufuncs on the same elements as the unblocked code, so its results
must be bitwise the same: random elementwise programs (hypothesis) with broadcasting, scalars,
Python numbers, mixed dtypes, sizes below, at, above and between multiples of the tile,
non-contiguous and empty inputs are run both ways and compared byte for byte. Also: the results
are the caller's (tile buffers are reused across calls, results never), threads calling one
program at once, compositions with `grad`/`vmap`, exported graphs. The numba backend's loops
do the same arithmetic bitwise, but compute sin, cos and exp by `chainrule.jit.vecmath` (within
one ulp of NumPy's, tested in test_jit_vecmath.py): programs with those are compared with a
tolerance, the others byte for byte.
"""

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.jit import blocked


@pytest.fixture
def tiles(monkeypatch):
    """`tiles(t)`: blocked code in tiles of `t` elements for every size (0 for unblocked)."""
    def set_tile(t):
        monkeypatch.setattr(blocked, 'TILE', t or 1)
        monkeypatch.setattr(blocked, 'MIN_SIZE', 0 if t else 1 << 62)
    return set_tile


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _run(f, args, t, tiles, backend='numpy'):
    """f jitted with tiles of `t` elements (0: unblocked): (results, source)."""
    tiles(t)
    j = cr.jit(f, backend=backend)
    with np.errstate(all='ignore'):
        out = j(*args)
    return out, j.source(*args)


UNARY = [cnp.sin, cnp.cos, cnp.exp, cnp.tanh, cnp.negative, cnp.abs, cnp.square]
BINARY = [cnp.add, cnp.subtract, cnp.multiply, cnp.divide, cnp.maximum, cnp.minimum]


def _program(ops, n_out):
    """A function replaying `ops` (each `(kind, fn index, operand indices, literal)`) on its
    arguments; it returns the last `n_out` values computed."""
    def f(*xs):
        vals = list(xs)
        for kind, k, ix, lit in ops:
            a = vals[ix[0] % len(vals)]
            b = vals[ix[1] % len(vals)]
            if kind == 'unary':
                v = UNARY[k](a)
            elif kind == 'binary':
                v = BINARY[k](a, b)
            elif kind == 'literal':
                v = BINARY[k](a, lit) if ix[1] % 2 else BINARY[k](lit, a)
            elif kind == 'mask':        # a boolean promoted in arithmetic (a cast)
                v = cnp.greater(a, b) * a
            elif kind == 'trig':        # sin and cos of one value, then arithmetic
                v = cnp.sin(a) * lit - cnp.cos(a) * b / 3.0
            elif kind == 'where':       # not blockable: cuts a run in two
                v = cnp.where(cnp.greater(a, b), a, b)
            else:                       # a reduction, and its broadcast consumer
                v = a - cnp.max(a, axis=-1, keepdims=True) if np.ndim(a) else a
            vals.append(v)
        return tuple(vals[-n_out:])
    return f


_op = st.tuples(st.sampled_from(['unary'] * 3 + ['binary'] * 3 + ['literal', 'mask', 'trig',
                                                                   'where', 'reduce']),
                st.integers(0, 5), st.tuples(st.integers(0, 50), st.integers(0, 50)),
                st.sampled_from([0.5, 2, -1.5, 3.0]))


def _inputs(data, shape):
    """The arguments: a full-size array (maybe non-contiguous), and maybe a row, a column, a
    0-d array and a second full-size array, in a mix of dtypes."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label='seed'))
    dtypes = [np.float64, np.float32, np.int32]

    def arr(shape, dt, layout):
        if dt == np.int32:
            return rng.integers(-3, 4, shape).astype(np.int32)
        if layout == 'strided' and len(shape) >= 1:
            big = rng.uniform(-2, 2, (shape[0] * 2,) + shape[1:]).astype(dt)
            return big[::2]
        if layout == 'transposed' and len(shape) == 2:
            return rng.uniform(-2, 2, shape[::-1]).astype(dt).T
        return rng.uniform(-2, 2, shape).astype(dt)

    layout = data.draw(st.sampled_from(['contiguous', 'strided', 'transposed']), label='layout')
    args = [arr(shape, data.draw(st.sampled_from(dtypes[:2]), label='dtype'), layout)]
    extra = [shape, shape[-1:] if shape else (), (shape[0], 1) if len(shape) == 2 else (1,), ()]
    for s in data.draw(st.lists(st.sampled_from(range(len(extra))), max_size=3), label='extra'):
        args.append(arr(extra[s], data.draw(st.sampled_from(dtypes), label='dt'), 'contiguous'))
    return args


_SHAPES = st.sampled_from([(0,), (1,), (3,), (4,), (8,), (9,), (13,), (5, 3), (4, 4), (7, 2),
                           (0, 3), (3, 0), (2, 5)])


def _transcendental(ops):
    """Whether a program calls sin, cos or exp (which the numba backend computes to within
    one ulp of NumPy, not bitwise)."""
    return any(kind == 'trig' or (kind == 'unary' and UNARY[k] in (cnp.sin, cnp.cos, cnp.exp))
               for kind, k, _, _ in ops)


def _assert_close_after_ulps(got, want, single):
    """`got` equals `want` up to one-ulp differences in transcendental values carried
    through up to a dozen further operations (of float32 values somewhere if `single`)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind != 'f':
        np.testing.assert_array_equal(got, want)
        return
    tol = 1e-4 if single or want.dtype == np.float32 else 1e-10
    finite = want[np.isfinite(want)]
    scale = 1.0 + (float(np.max(np.abs(finite))) if finite.size else 0.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True)


def _check_random_program(data, shape, t, tiles, backend):
    ops = data.draw(st.lists(_op, min_size=2, max_size=12), label='ops')
    n_out = data.draw(st.integers(1, 3), label='n_out')
    args = _inputs(data, shape)
    f = _program(ops, n_out)
    try:
        want, _ = _run(f, args, 0, tiles)
    except Exception as e:      # a program NumPy refuses (e.g. an int32 max over an empty axis)
        with pytest.raises(type(e)):
            _run(f, args, t, tiles, backend)
        return
    got, src = _run(f, args, t, tiles, backend)
    if backend == 'numba' and 'cache-blocked' not in src:
        # no run to tile: the numba backend fuses it with numba's own math functions
        # (checked against eager with a tolerance in test_jit.py)
        return
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if backend == 'numba' and _transcendental(ops):
            _assert_close_after_ulps(g, w, any(np.asarray(a).dtype == np.float32
                                               for a in args))
        else:
            assert _same_bits(g, w), src


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), shape=_SHAPES, t=st.sampled_from([1, 2, 4, 5]))
def test_blocked_code_is_bitwise_the_unblocked_code(data, shape, t, tiles):
    _check_random_program(data, shape, t, tiles, 'numpy')


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), shape=_SHAPES, t=st.sampled_from([2, 5]))
def test_numba_backend_blocked_code_is_numpys(data, shape, t, tiles):
    """With numba: runs of arithmetic, sin, cos and exp as compiled loops; bitwise NumPy's
    for arithmetic, within the documented ulp bound for sin/cos/exp."""
    pytest.importorskip('numba')
    _check_random_program(data, shape, t, tiles, 'numba')


def _chain(x, r):
    for _ in range(3):
        x = cnp.sin(x) * 0.9 + cnp.exp(-(x * x)) * r
    return x


def test_a_long_chain_runs_as_one_blocked_loop_with_a_tail(tiles):
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    r = np.float64(0.5)
    want, _ = _run(_chain, (x, r), 0, tiles)
    got, src = _run(_chain, (x, r), 64, tiles)
    assert src.count('for _s in range(0, 1000, 64)') == 1
    assert 'the last tile: 40 of 64' in src
    assert _same_bits(got, want)
    # the reference: eager NumPy
    np.testing.assert_allclose(got, _chain(x, r), rtol=1e-14)


def test_small_arrays_are_left_unblocked_by_default():
    x = np.ones(100)
    assert 'cache-blocked' not in cr.jit(_chain).source(x, 1.0)
    big = np.ones(blocked.MIN_SIZE)
    assert 'cache-blocked' in cr.jit(_chain).source(big, 1.0)


def test_rows_of_the_leading_axis_when_operands_broadcast_along_it(tiles):
    rng = np.random.default_rng(1)
    x, row, col = rng.standard_normal((37, 6)), rng.standard_normal(6), rng.standard_normal((37, 1))

    def f(x, row, col):
        y = cnp.tanh(x * row + col)
        return y - cnp.max(y, axis=1, keepdims=True) * 0.5 + cnp.sin(col)
    want, _ = _run(f, (x, row, col), 0, tiles)
    got, src = _run(f, (x, row, col), 12, tiles)     # 2 rows a tile
    assert 'rows of the leading axis' in src and 'the last tile: 1 of 2' in src
    assert _same_bits(got, want)
    np.testing.assert_allclose(got, np.tanh(x * row + col) - np.tanh(x * row + col).max(
        1, keepdims=True) * 0.5 + np.sin(col), rtol=1e-14)


def test_uniform_constant_is_read_as_one_element(tiles):
    c = np.full(50, -0.0)

    def f(x):
        return cnp.exp(x) * c + cnp.sin(x)
    x = np.linspace(-1, 1, 50)
    want, _ = _run(f, (x,), 0, tiles)
    got, src = _run(f, (x,), 8, tiles)
    assert _same_bits(got, want)                     # -0.0 * positive stays -0.0 where it was


def test_results_are_the_callers_across_calls(tiles):
    tiles(16)
    x = np.random.default_rng(2).uniform(-1, 1, 100)

    def f(x):
        y = cnp.sin(x) * 2.0
        z = cnp.exp(y) + x
        return z, y, z * 3.0
    j = cr.jit(f)
    first = j(x)
    keep = [a.copy() for a in first]
    x0 = x.copy()
    for a in first:
        a[...] = 7.0                                 # the caller writes into every result
    second = j(x)
    for a, b in zip(second, keep):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, x0)             # the argument untouched
    for a in second:
        assert not np.shares_memory(a, x)
        assert all(not np.shares_memory(a, b) for b in first)
        assert a.flags.writeable and a.flags.owndata or a.base is not None
    assert not any(np.shares_memory(a, b) for i, a in enumerate(second)
                   for b in second[i + 1:])


def test_a_result_that_is_an_argument_or_a_broadcast_is_copied(tiles):
    tiles(4)
    x = np.linspace(0, 1, 10)

    def f(x):
        return cnp.sin(x) + cnp.cos(x), x, cnp.broadcast_to(cnp.sum(x), (10,))
    y, same, b = cr.jit(f)(x)
    assert not np.shares_memory(same, x) and b.flags.writeable
    np.testing.assert_allclose(y, np.sin(x) + np.cos(x), rtol=1e-15)


def test_threads_calling_one_program_at_once(tiles):
    tiles(32)
    j = cr.jit(_chain)
    xs = [np.random.default_rng(i).uniform(-1, 1, 5000) for i in range(4)]
    want = [_chain(x, 0.5) for x in xs]
    errors = []

    def work(i):
        for _ in range(20):
            got = j(xs[i], 0.5)
            if not np.allclose(got, want[i], rtol=1e-14, atol=0):
                errors.append(i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors


def _loss(x, r):
    return cnp.sum(_chain(x, r) ** 2)


def test_compositions_with_grad_and_vmap(tiles):
    rng = np.random.default_rng(3)
    x, r = rng.uniform(-1, 1, 300), 0.7
    xb = rng.uniform(-1, 1, (4, 300))
    forms = {
        'jit(grad)': lambda: cr.jit(cr.grad(_loss))(x, r),
        'grad(jit)': lambda: cr.grad(cr.jit(_loss))(x, r),
        'jit(grad(jit))': lambda: cr.jit(cr.grad(cr.jit(_loss)))(x, r),
        'vmap(jit(grad))': lambda: cr.vmap(cr.jit(cr.grad(_loss)), in_axes=(0, None))(xb, r),
        'jit(vmap(grad))': lambda: cr.jit(cr.vmap(cr.grad(_loss), in_axes=(0, None)))(xb, r),
    }
    eager = {'jit(grad)': cr.grad(_loss)(x, r)}
    eager['vmap'] = np.stack([cr.grad(_loss)(xi, r) for xi in xb])
    for name, form in forms.items():
        tiles(0)
        want = form()
        tiles(32)
        got = form()
        assert _same_bits(got, want), name
        ref = eager['vmap'] if 'vmap' in name else eager['jit(grad)']
        np.testing.assert_allclose(got, ref, rtol=1e-12, err_msg=name)
    # the gradient itself against finite differences
    h = 1e-6
    e = np.zeros_like(x)
    e[7] = h
    fd = (_loss(x + e, r) - _loss(x - e, r)) / (2 * h)
    np.testing.assert_allclose(cr.jit(cr.grad(_loss))(x, r)[7], fd, rtol=1e-6)


def test_exported_graphs_are_unaffected(tiles, tmp_path):
    x = np.random.default_rng(4).uniform(-1, 1, 200)
    paths = []
    for t in (0, 16):
        tiles(t)
        p = tmp_path / f'g{t}.crg'
        cr.export(cr.grad(_loss), x, 0.5).save(p)
        paths.append(p)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    loaded = cr.load_graph(paths[1])
    assert 'cache-blocked' in loaded.source()
    np.testing.assert_allclose(loaded(x, 0.5), cr.grad(_loss)(x, 0.5), rtol=1e-12)


def test_numba_backend_runs_sin_cos_exp_and_arithmetic_as_one_loop(tiles):
    """A run of sin, cos, exp and arithmetic is one numba loop per tile (vectorised sin/cos/exp),
    run again with libm's sin/cos in a tile where an argument is beyond their range: values
    within one ulp per function of NumPy's, and libm's (bitwise NumPy's) for huge arguments,
    inf and NaN."""
    pytest.importorskip('numba')
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-30, 30, 997), [0.0, -0.0, 5e-324]])
    huge = x.copy()
    huge[500:503] = [1e22, np.inf, np.nan]

    def f(x):
        return cnp.sin(x) * cnp.cos(x) + cnp.exp(-x * x), cnp.sin(x)
    tiles(64)
    jn = cr.jit(f, backend='numba')
    src = jn.source(x)
    assert src.count('@numba.njit') == 2 and 'vm_sin64(' in src and 'vm_exp64(' in src
    assert '_libm(' in src and 'math.sin(' in src       # the twin for huge arguments
    for arg in (x, huge):
        with np.errstate(invalid='ignore'):
            got = jn(arg)
            want = np.sin(arg) * np.cos(arg) + np.exp(-arg * arg), np.sin(arg)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-15, atol=1e-16)
        np.testing.assert_allclose(got[1], want[1], rtol=2.3e-16, atol=0)
    # the tile holding 1e22, inf and NaN ran with libm: NumPy's values there, bit for bit
    with np.errstate(invalid='ignore'):
        assert _same_bits(got[1][448:512], np.sin(huge[448:512]))
    assert np.isnan(got[1][501:503]).all()