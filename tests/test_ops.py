"""Generic tests driven by the op table (`tests/op_table.py`): every public `chainrule.numpy`
function against its NumPy reference (values and dtypes, on arrays, `Tensor`s and traced
values); against finite differences in reverse and forward mode, to second order in float64
(with every mix of the two modes) and first order in float32 and complex128; against PyTorch's
gradients where torch has the function; and through `Tensor.backward()`, reached both by
`cnp.f(t)` and by plain NumPy calls (`np.sin(t)`)."""

import numbers

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.interpreters.reverse import vjp_flat
from chainrule.testing import check_grads
from op_table import C128, F32, F64, NOT_TESTED_HERE, ROWS

CASES = [(row, cid, shapes, kw) for row in ROWS for cid, shapes, kw in row.cases()]
DIFF = [c for c in CASES if c[0].diff]
FIRST = {}
for _c in CASES:
    FIRST.setdefault(_c[0].name, _c)   # one case per row, for the slower reference tests
FIRST = list(FIRST.values())


def _ids(cases):
    return [c[1] for c in cases]


def _args(row, shapes, dtype, seed=0):
    return row.sample(shapes, dtype, np.random.default_rng(seed))


def _float_positions(args):
    return [i for i, a in enumerate(args) if np.asarray(a).dtype.kind in 'fc']


def _bind(row, args, kw):
    """`row.fn` as a function of the floating arguments only (the others are held fixed)."""
    pos = _float_positions(args)

    def f(*xs):
        call = list(args)
        for i, x in zip(pos, xs):
            call[i] = x
        return row.fn(*call, **kw)
    return f, [args[i] for i in pos]


def _plain(x):
    """Results as NumPy objects: Tensors unwrapped, lists and tuples elementwise."""
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, cr.Tensor):
        return x.data
    return x


def assert_same(got, want, rtol, what):
    """Values equal within rtol and, for arrays, the same dtype and shape."""
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want), \
            f'{what}: got {type(got).__name__} of {len(got) if hasattr(got, "__len__") else "?"}'
        for k, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, rtol, f'{what}[{k}]')
        return
    if isinstance(want, (np.ndarray, np.generic)):
        g = np.asarray(got)
        assert g.dtype == want.dtype, f'{what}: dtype {g.dtype}, NumPy gives {want.dtype}'
        assert g.shape == want.shape, f'{what}: shape {g.shape}, NumPy gives {want.shape}'
        if want.dtype.kind in 'fc':
            np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, want, err_msg=what)
        return
    if isinstance(want, numbers.Number) and not isinstance(want, bool):
        assert got == pytest.approx(want, rel=rtol), what
        return
    assert got == want, f'{what}: {got!r} != {want!r}'


def _weighted_sum(out, ws):
    """sum_k sum(out_k * w_k): a scalar whose gradient is the VJP of `out` with `ws`."""
    outs = out if isinstance(out, (list, tuple)) else [out]
    total = 0.0
    for o, w in zip(outs, ws):
        total = total + cnp.sum(cnp.real(o * w) if np.iscomplexobj(w) else o * w)
    return total


def _weights(row, args, kw, seed=1):
    out = row.ref(*args, **kw)
    outs = out if isinstance(out, (list, tuple)) else [out]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(np.shape(o)) for o in outs]


# --- forward: equals NumPy ---------------------------------------------------------------------

@pytest.mark.parametrize('dtype', [F64, F32], ids=['f64', 'f32'])
@pytest.mark.parametrize('row,cid,shapes,kw', CASES, ids=_ids(CASES))
def test_forward_matches_numpy(row, cid, shapes, kw, dtype):
    if dtype not in row.dtypes:
        pytest.skip('dtype not tested for this row')
    args = _args(row, shapes, dtype)
    want = row.ref(*args, **kw)
    rtol = 1e-12 if dtype == F64 else 2e-6
    # plain arrays: exactly NumPy
    assert_same(row.fn(*args, **kw), want, rtol, f'{cid} on arrays')
    # Tensors (no grad, then grad): same values and dtypes
    ts = [cr.Tensor(a) for a in args]
    assert_same(_plain(row.fn(*ts, **kw)), want, rtol, f'{cid} on Tensors')
    if not row.diff:
        return
    tg = [cr.Tensor(a, requires_grad=np.asarray(a).dtype.kind in 'fc') for a in args]
    assert_same(_plain(row.fn(*tg, **kw)), want, rtol, f'{cid} on Tensors requiring grad')
    # under reverse mode: the traced computation gives the same values and dtypes
    f, xs = _bind(row, args, kw)
    assert_same(cr.vjp(f, *xs)[0], want, rtol, f'{cid} traced by vjp')


def _int_args(row, shapes):
    rng = np.random.default_rng(0)
    return [rng.random(s) < 0.5 if d == 'bool' else rng.integers(1, 4, s)
            for s, d in zip(shapes, row.domains(len(shapes)))]


def _numpy_takes(row, args, kw):
    """Whether NumPy's reference accepts these arguments (decided when tests are collected, so
    cases without a reference are not generated rather than skipped)."""
    try:
        with np.errstate(all='ignore'):
            row.ref(*args, **kw)
        return True
    except (TypeError, ValueError):
        return False


INT_CASES = [c for c in CASES if _numpy_takes(c[0], _int_args(c[0], c[2]), c[3])]


@pytest.mark.parametrize('row,cid,shapes,kw', INT_CASES, ids=_ids(INT_CASES))
def test_forward_on_integers_matches_numpy(row, cid, shapes, kw):
    """Integer inputs keep NumPy's result dtypes (tril of ints stays int, sqrt gives float)."""
    args = _int_args(row, shapes)
    with np.errstate(all='ignore'):
        want = row.ref(*args, **kw)
        assert_same(row.fn(*args, **kw), want, 1e-12, f'{cid} on integer arrays')
        assert_same(_plain(row.fn(*[cr.Tensor(a) for a in args], **kw)), want, 1e-12,
                    f'{cid} on integer Tensors')


BROADCAST_OPS = {'add': (cnp.add, np.add), 'multiply': (cnp.multiply, np.multiply),
                 'divide': (cnp.divide, np.divide), 'maximum': (cnp.maximum, np.maximum),
                 'arctan2': (cnp.arctan2, np.arctan2)}


@settings(max_examples=30, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                 max_side=3),
       name=st.sampled_from(sorted(BROADCAST_OPS)), seed=st.integers(0, 2 ** 16))
def test_binary_ops_on_any_broadcastable_shapes(shapes, name, seed):
    fn, ref = BROADCAST_OPS[name]
    rng = np.random.default_rng(seed)
    x, y = (rng.uniform(0.5, 2.0, s) for s in shapes.input_shapes)
    assert_same(fn(x, y), ref(x, y), 1e-15, name)
    check_grads(fn, (x, y), order=1, modes=('rev', 'fwd'))


# --- gradients: finite differences -------------------------------------------------------------

@pytest.mark.parametrize('row,cid,shapes,kw', DIFF, ids=_ids(DIFF))
def test_grads_float64_second_order_both_modes(row, cid, shapes, kw):
    args = _args(row, shapes, F64)
    f, xs = _bind(row, args, kw)
    f.__name__ = cid
    # both modes, and at second order every mix: rev of rev, fwd of rev, rev of fwd, fwd of fwd
    check_grads(f, xs, order=row.order, modes=('rev', 'fwd'))


@pytest.mark.parametrize('row,cid,shapes,kw', DIFF, ids=_ids(DIFF))
def test_grads_float32_first_order(row, cid, shapes, kw):
    if F32 not in row.dtypes:
        pytest.skip('float32 not tested for this row')
    args = _args(row, shapes, F32)
    f, xs = _bind(row, args, kw)
    f.__name__ = cid
    check_grads(f, xs, order=1, modes=('rev', 'fwd'))
    # the cotangents themselves come back in the inputs' dtype (float32 stays float32), not
    # just after `vjp` converts them
    ws = _weights(row, args, kw)
    _, pull = vjp_flat(lambda *z: [_weighted_sum(f(*z), ws)], xs)
    for i, g in enumerate(pull([np.float32(1)])):
        if g is not None:
            assert np.asarray(g).dtype == F32, f'{cid}: cotangent {i} has dtype {g.dtype}'
            assert np.shape(g) == np.shape(xs[i])


COMPLEX = [c for c in DIFF if c[0].complex]


@pytest.mark.parametrize('row,cid,shapes,kw', COMPLEX, ids=_ids(COMPLEX))
def test_grads_complex(row, cid, shapes, kw):
    args = _args(row, shapes, C128)
    f, xs = _bind(row, args, kw)
    f.__name__ = cid
    check_grads(f, xs, order=2, modes=('rev', 'fwd'))


OTHER_COMPLEX = [c for c in DIFF if not c[0].complex
                 and _numpy_takes(c[0], _args(c[0], c[2], C128), c[3])]


@pytest.mark.parametrize('row,cid,shapes,kw', OTHER_COMPLEX, ids=_ids(OTHER_COMPLEX))
def test_complex_inputs_everywhere_numpy_takes_them(row, cid, shapes, kw):
    """Rows not marked `complex`, with complex128 inputs wherever NumPy accepts them: the same
    values and dtypes as NumPy, and first derivatives in both modes."""
    args = _args(row, shapes, C128)
    with np.errstate(all='ignore'):
        want = row.ref(*args, **kw)
    assert_same(row.fn(*args, **kw), want, 1e-12, f'{cid} on complex arrays')
    leaves = want if isinstance(want, (list, tuple)) else [want]
    if not all(np.all(np.isfinite(w)) for w in leaves):
        return      # values checked above (inf/nan where NumPy has them); no derivative there
    assert_same(_plain(row.fn(*[cr.Tensor(a) for a in args], **kw)), want, 1e-12,
                f'{cid} on complex Tensors')
    f, xs = _bind(row, args, kw)
    assert_same(cr.vjp(f, *xs)[0], want, 1e-12, f'{cid} traced by vjp')
    check_grads(f, xs, order=1, modes=('rev', 'fwd'))


# non-differentiable rows with a floating argument to differentiate against
NONDIFF = [c for c in CASES if not c[0].diff and _float_positions(_args(c[0], c[2], F64))]


@pytest.mark.parametrize('row,cid,shapes,kw', NONDIFF, ids=_ids(NONDIFF))
def test_nondifferentiable_functions_give_constants(row, cid, shapes, kw):
    args = _args(row, shapes, F64)
    f, xs = _bind(row, args, kw)
    outs, _ = vjp_flat(lambda *z: [f(*z)], xs)
    out = outs[0]
    leaves = out if isinstance(out, (list, tuple)) else [out]
    assert not any(isinstance(o, cr.core.Tracer) for o in leaves), \
        f'{cid}: a non-differentiable function returned a traced value'
    if isinstance(out, np.ndarray) and out.dtype.kind == 'f' and out.shape == np.shape(xs[0]):
        # product rule with f' = 0: d/dx sum(f(x) * x) = f(x)
        g = cr.grad(lambda x: cnp.sum(f(x, *xs[1:]) * x))(xs[0])
        np.testing.assert_allclose(g, f(*xs), rtol=1e-15, err_msg=cid)


# --- gradients: PyTorch ------------------------------------------------------------------------

TORCH = [c for c in FIRST if c[0].torch is not None]
_KW = {'axis': 'dim', 'keepdims': 'keepdim', 'ddof': 'correction'}


def _torch_call(T, row, ts, kw):
    fn = row.torch
    if callable(fn):
        return fn(T, *ts, **kw)
    kw = dict(kw)
    if row.name in ('var', 'std'):
        kw.setdefault('ddof', 0)
    if row.name in ('cumsum', 'cumprod') and 'axis' not in kw:
        ts = [ts[0].flatten()] + list(ts[1:])
        kw['axis'] = 0
    if row.name == 'logsumexp' and 'axis' not in kw:
        kw['axis'] = tuple(range(ts[0].ndim))
    tk = {_KW.get(k, k): v for k, v in kw.items() if v is not None}
    return getattr(T, fn)(*ts, **tk)


@pytest.mark.parametrize('row,cid,shapes,kw', TORCH, ids=_ids(TORCH))
def test_gradients_match_torch(row, cid, shapes, kw):
    T = pytest.importorskip('torch')
    T.set_num_threads(1)
    args = _args(row, shapes, F64)
    ws = _weights(row, args, kw)
    pos = _float_positions(args)
    ts = [T.tensor(a, requires_grad=i in pos) for i, a in enumerate(args)]
    out = _torch_call(T, row, ts, kw)
    outs = out if isinstance(out, (list, tuple)) else [out]
    loss = sum((o * T.tensor(w)).sum() for o, w in zip(outs, ws))
    loss.backward()
    f, xs = _bind(row, args, kw)
    gs = cr.grad(lambda *z: _weighted_sum(f(*z), ws), argnums=tuple(range(len(xs))))(*xs)
    for i, g in zip(pos, gs):
        np.testing.assert_allclose(g, ts[i].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f'{cid}: gradient of argument {i}')


# --- Tensor: NumPy calls on Tensors are differentiable ------------------------------------------

TENSOR = [c for c in FIRST if c[0].diff]


@pytest.mark.parametrize('row,cid,shapes,kw', TENSOR, ids=_ids(TENSOR))
def test_tensor_backward_matches_grad(row, cid, shapes, kw):
    args = _args(row, shapes, F64)
    ws = _weights(row, args, kw)
    f, xs = _bind(row, args, kw)
    want = cr.grad(lambda *z: _weighted_sum(f(*z), ws), argnums=tuple(range(len(xs))))(*xs)
    pos = _float_positions(args)
    calls = [('cnp', row.fn)] + ([('np', row.ref)] if row.dispatch else [])
    for how, fn in calls:
        ts = [cr.Tensor(a, requires_grad=i in pos) for i, a in enumerate(args)]
        out = fn(*ts, **kw)
        loss = _weighted_sum(out, ws)
        assert isinstance(loss, cr.Tensor), f'{cid} via {how}: got {type(loss).__name__}'
        loss.backward()
        for i, g in zip(pos, want):
            got = ts[i].grad
            # as in PyTorch, an input the output does not depend on gets no .grad at all
            got = np.zeros_like(g) if got is None and not np.any(g) else got.numpy()
            np.testing.assert_allclose(got, g, rtol=1e-12, atol=1e-14,
                                       err_msg=f'{cid} via {how}: argument {i}')


@pytest.mark.parametrize('row,cid,shapes,kw', TENSOR, ids=_ids(TENSOR))
def test_tensor_create_graph_matches_grad_of_grad(row, cid, shapes, kw):
    """backward(create_graph=True), then backward through the gradients: a Hessian-vector
    product, equal to the one from nested cr.grad."""
    args = _args(row, shapes, F64)
    ws = _weights(row, args, kw)
    f, xs = _bind(row, args, kw)
    rng = np.random.default_rng(5)
    vs = [rng.standard_normal(np.shape(x)) for x in xs]
    nums = tuple(range(len(xs)))

    def directional(*z):
        gs = cr.grad(lambda *q: _weighted_sum(f(*q), ws), argnums=nums)(*z)
        return sum(cnp.sum(g * v) for g, v in zip(gs, vs))

    want = cr.grad(directional, argnums=nums)(*xs)
    pos = _float_positions(args)
    ts = [cr.Tensor(a, requires_grad=i in pos) for i, a in enumerate(args)]
    _weighted_sum(row.fn(*ts, **kw), ws).backward(create_graph=True)
    gs = [ts[i].grad for i in pos]
    for t in ts:
        t.grad = None
    total = sum((g * v).sum() for g, v in zip(gs, vs) if g is not None and g.requires_grad)
    if isinstance(total, cr.Tensor):     # (a linear function has no second derivative)
        total.backward()
    for i, w in zip(pos, want):
        got = ts[i].grad
        got = np.zeros_like(w) if got is None else got.numpy()
        np.testing.assert_allclose(got, w, rtol=1e-10, atol=1e-12, err_msg=f'{cid}: argument {i}')


# --- coverage -----------------------------------------------------------------------------------

def test_every_public_function_has_a_row():
    # functions only: classes (dtypes, exceptions) have nothing to differentiate
    public = {n for n in dir(cnp) if not n.startswith('_') and callable(getattr(cnp, n))
              and not isinstance(getattr(cnp, n), type)}
    public |= {'linalg', 'fft'}
    rows = {r.name for r in ROWS}
    missing = sorted(public - rows - set(NOT_TESTED_HERE))
    assert not missing, f'chainrule.numpy functions with no row in tests/op_table.py: {missing}'
    # and every row names a public function (`name` or `name_variant`; `getitem` is `x[idx]`)
    known = public | {'getitem'}
    stale = [n for n in sorted(rows) if not any(n == p or n.startswith(p + '_') for p in known)]
    stale += sorted(set(NOT_TESTED_HERE) - public)
    assert not stale, f'rows or exemptions naming no public function: {stale}'


# --- regressions found by the table --------------------------------------------------------------

PRODUCTS = {
    'cumprod': (lambda x: cnp.cumprod(x, axis=1), lambda T, t: T.cumprod(t, 1)),
    'prod': (lambda x: cnp.prod(x, axis=1), lambda T, t: T.prod(t, 1)),
    'cumprod_flat': (lambda x: cnp.cumprod(x), lambda T, t: T.cumprod(t.flatten(), 0)),
}


@pytest.mark.parametrize('name', list(PRODUCTS))
def test_products_with_exact_zeros(name):
    # the textbook rule out / x is nan at x = 0; the derivative of a product is a polynomial
    fn, torch_fn = PRODUCTS[name]
    x = np.array([[2.0, 0.0, 3.0, -0.5], [0.0, 1.5, 0.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    check_grads(fn, (x,), order=2, modes=('rev', 'fwd'))
    T = pytest.importorskip('torch')
    t = T.tensor(x, requires_grad=True)
    w = np.random.default_rng(0).standard_normal(np.shape(fn(x)))
    (torch_fn(T, t) * T.tensor(w)).sum().backward()
    np.testing.assert_allclose(cr.grad(lambda z: cnp.sum(fn(z) * w))(x), t.grad.numpy())


@pytest.mark.parametrize('name', ['fmax', 'fmin'])
def test_fmax_fmin_ignore_nans_on_either_side(name):
    x = np.array([np.nan, 1.0, np.nan, 3.0])
    y = np.array([2.0, np.nan, np.nan, -1.0])
    fn, ref = getattr(cnp, name), getattr(np, name)
    for a, b in [(x, y), (y, x)]:
        np.testing.assert_array_equal(fn(cr.Tensor(a), b).data, ref(a, b))
        np.testing.assert_array_equal(fn(a, cr.Tensor(b)).data, ref(a, b))
    t = cr.Tensor(x, requires_grad=True)
    fn(t, y).sum().backward()     # the gradient goes to whichever value was picked
    np.testing.assert_array_equal(t.grad.numpy(), [0.0, 1.0, 1.0, name == 'fmax'])


# --- shape errors: raised by chainrule, naming the op and the shapes -----------------------------

def _T(*shape):
    return cr.Tensor(np.ones(shape), requires_grad=True)


SHAPE_ERRORS = {
    'add': (lambda: _T(3, 4) + _T(5), r'add: shapes \(3, 4\) and \(5,\)'),
    'matmul': (lambda: _T(3, 4) @ _T(5, 6), r'matmul: shapes \(3, 4\) and \(5, 6\) do not align'),
    'concatenate': (lambda: cnp.concatenate([_T(2, 3), _T(2, 4)]),
                    r'concatenate: shapes \[\(2, 3\), \(2, 4\)\]'),
    'stack': (lambda: cnp.stack([_T(2, 3), _T(3, 2)]), r'stack: .*\(2, 3\), \(3, 2\)'),
    'broadcast_to': (lambda: cnp.broadcast_to(_T(3), (4, 2)), r'broadcast_to: .*\(3,\).*\(4, 2\)'),
    'reshape': (lambda: _T(3, 4).reshape(5, 2), r'reshape: .*\(3, 4\).*\(5, 2\)'),
    'where': (lambda: cnp.where(np.ones(3, bool), _T(4), _T(3)), r'where: shapes \(3,\)'),
    'tensordot': (lambda: cnp.tensordot(_T(3, 4), _T(5, 6)), r'tensordot: shapes \(3, 4\)'),
    'sum': (lambda: cnp.sum(_T(3, 4), axis=2), r'sum: axis 2 .* dimension 2'),
    'sum_dim': (lambda: _T(3, 4).sum(dim=2), r'sum: dim 2 .* shape \(3, 4\)'),   # Tensor's
    'transpose': (lambda: cnp.transpose(_T(3, 4), (0, 0)),
                  r'transpose: axes \(0, 0\).*\(3, 4\)'),
    'squeeze': (lambda: cnp.squeeze(_T(3, 4), axis=0), r'squeeze: .*axis 0 of shape \(3, 4\)'),
    'split': (lambda: cnp.split(_T(5), 2), r'split: array of size 5'),
    'moveaxis': (lambda: cnp.moveaxis(_T(3, 4), 2, 0), r'moveaxis: axis 2 .* dimension 2'),
    'swapaxes': (lambda: cnp.swapaxes(_T(3, 4), 0, 2), r'swapaxes: axis 2 .* dimension 2'),
    'expand_dims': (lambda: cnp.expand_dims(_T(3, 4), 5), r'expand_dims: axis 5 .* dimension 3'),
    'diff': (lambda: cnp.diff(_T(3), axis=1), r'diff: axis 1 .* dimension 1'),
    'roll': (lambda: cnp.roll(_T(3), 1, axis=1), r'roll: axis 1 .* dimension 1'),
    'repeat': (lambda: cnp.repeat(_T(3), [1, 2], axis=0), r'repeat: .*\(2,\).*shape \(3,\)'),
    'pad': (lambda: cnp.pad(_T(3), ((1, 1),) * 3), r'pad: .*shape \(3,\)'),
    'diagonal': (lambda: cnp.diagonal(_T(3)), r'diagonal: .*shape \(3,\)'),
    'cross': (lambda: cnp.cross(_T(4), _T(3)), r'cross: .*\(4,\) and \(3,\)'),
    'at': (lambda: cnp.at(_T(4))[1:3].set(_T(3)), r'\(3,\) to \(2,\)'),
    'split_axis': (lambda: cnp.split(_T(4), 2, axis=1), r'split: axis 1 .* dimension 1'),
    'take_axis': (lambda: cnp.take(_T(3, 4), [0], axis=2), r'take: axis 2 .* dimension 2'),
    'tensordot_axes': (lambda: cnp.tensordot(_T(3, 4), _T(4, 5), axes=([3], [0])),
                       r'tensordot: axis 3 .* dimension 2'),
    'gradient_axis': (lambda: cnp.gradient(_T(3, 4), axis=2), r'gradient: axis 2'),
    'take_along_axis': (lambda: cnp.take_along_axis(_T(3, 4), np.zeros((3, 5, 1), int), 1),
                        r'take_along_axis: .*\(3, 5, 1\).*\(3, 4\)'),
}


@pytest.mark.parametrize('name', list(SHAPE_ERRORS))
def test_shape_errors_name_the_op_and_the_shapes(name):
    fn, pattern = SHAPE_ERRORS[name]
    with pytest.raises(cr.ShapeError, match=pattern):
        fn()


def test_std_of_zero_variance_has_zero_gradient():
    # a one-element group (or constant data) has std identically 0: gradient 0, not nan
    for x, kw in [(np.array(2.0), {}), (np.ones((1, 3)), {'axis': 0}), (np.ones(3), {})]:
        g = cr.grad(lambda a: cnp.sum(cnp.std(a, **kw)))(x)
        np.testing.assert_array_equal(g, np.zeros_like(x))
    check_grads(lambda a: cnp.std(a, axis=0), (np.ones((1, 3)),), order=2, modes=('rev', 'fwd'))


def _complex_fd_grad(f, z, h=1e-7):
    """df/dx - i df/dy per element (the convention of `grad` for a real f of complex z)."""
    out = np.zeros_like(z)
    for k in range(z.size):
        e = np.zeros_like(z)
        e.flat[k] = h
        dr = (f(z + e) - f(z - e)) / (2 * h)
        e.flat[k] = 1j * h
        di = (f(z + e) - f(z - e)) / (2 * h)
        out.flat[k] = dr - 1j * di
    return out


def test_complex_sign_is_differentiated_as_z_over_abs_z():
    """NumPy 2's sign(z) = z/|z| for complex z: its derivative is not zero (it was silently zero
    when sign was declared non-differentiable for every dtype). Zero at z = 0, as the value."""
    z = np.array([1 + 2j, -3 + 0.5j, 0.2 - 0.1j])
    w = np.array([1.0, 2.0, -0.5])

    def f(z):
        s = cnp.sign(z)
        return cnp.sum(cnp.real(s) * w + 3 * cnp.imag(s))

    expected = _complex_fd_grad(lambda v: float(np.sum(np.real(np.sign(v)) * w
                                                       + 3 * np.imag(np.sign(v)))), z)
    np.testing.assert_allclose(cr.grad(f)(z), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(z), expected, rtol=1e-6, atol=1e-8)
    t = cr.tensor(z, requires_grad=True)
    f(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-6, atol=1e-8)
    per_row = cr.vmap(cr.grad(f))(np.stack([z, 2 * z]))
    np.testing.assert_allclose(per_row[0], expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(per_row[1], expected / 2, rtol=1e-6, atol=1e-8)
    # value and zero: as NumPy
    np.testing.assert_array_equal(cnp.sign(np.array([0j, 2 - 2j])), np.sign([0j, 2 - 2j]))
    assert cr.grad(lambda v: cnp.real(cnp.sign(v)))(0j) == 0
    # real sign keeps derivative 0
    np.testing.assert_array_equal(cr.grad(lambda x: cnp.sum(cnp.sign(x) * 0 + cnp.sign(x)))(
        np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 0.0])
