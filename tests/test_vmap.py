"""`cr.vmap`: every public function of the op table equals a loop over the batch, for
`in_axes` 0, 1 and `None` mixes; the batching rules with awkward cases (advanced indexing
whose axes NumPy moves to the front, indexed updates, matmul ranks); per-example gradients
against a loop and `torch.func`; nesting, pytrees, `out_axes`, the loop fallback and its
report, and the errors."""

import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import ConcretizationError
from chainrule.interpreters.batching import BatchingFallbackWarning
from chainrule.tree import tree_flatten
from op_table import F64, ROWS

B = 3

# Functions whose result's shape or dtype depends on the values (NumPy runs on one concrete
# value), which a batch does not have: vmap raises ConcretizationError for them. (sort, argmax,
# searchsorted, ... are primitives with batching rules: chainrule.ops.sorting.)
NEEDS_CONCRETE = {
    'argwhere', 'nonzero', 'flatnonzero', 'unique', 'bincount', 'histogram', 'where_nonzero',
    'real_if_close'}
NOT_ARRAYS = {'result_type'}      # returns a dtype, not an array: nothing to batch


def _axes(mode, shapes):
    n = len(shapes)
    if mode == '0':
        return [0] * n
    if mode == '1':
        return [min(1, len(s)) for s in shapes]       # axis 1 where the example has an axis
    if mode == 'first':
        return [0] + [None] * (n - 1)
    return [None] * (n - 1) + [0]


CASES = []
for _row in ROWS:
    if _row.name in NOT_ARRAYS:
        continue
    for _cid, _shapes, _kw in _row.cases():
        for _mode in ('0', '1', 'first', 'last'):
            if _mode in ('first', 'last') and len(_shapes) < 2:
                continue
            CASES.append((_row, f'{_cid}-in_axes={_mode}', _shapes, _kw, _mode))


def _batch(row, shapes, mode):
    examples = [row.sample(shapes, F64, np.random.default_rng(s)) for s in range(B)]
    axes = _axes(mode, shapes)
    args = [examples[0][i] if a is None else np.stack([e[i] for e in examples], axis=a)
            for i, a in enumerate(axes)]
    calls = [[examples[0][i] if a is None else examples[b][i] for i, a in enumerate(axes)]
             for b in range(B)]
    return axes, args, calls


@pytest.mark.parametrize('row,cid,shapes,kw,mode', CASES, ids=[c[1] for c in CASES])
def test_op_table_vmap_equals_loop(row, cid, shapes, kw, mode):
    axes, args, calls = _batch(row, shapes, mode)
    f = lambda *xs: row.fn(*xs, **kw)              # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter('error', BatchingFallbackWarning)   # every op here has a rule
        try:
            got = cr.vmap(f, in_axes=tuple(axes))(*args)
        except ConcretizationError as e:
            # allowed only where the batched argument is one NumPy must see concretely
            assert 'inside vmap' in str(e)
            if row.name not in NEEDS_CONCRETE:
                pytest.xfail(f'{row.name} needs a concrete value under vmap (a new row? list it '
                             'in NEEDS_CONCRETE, or make it a primitive with a batching rule)')
            return
    want = [tree_flatten(f(*c))[0] for c in calls]
    got = tree_flatten(got)[0]
    assert len(got) == len(want[0])
    for j, g in enumerate(got):
        w = np.stack([np.asarray(want[b][j]) for b in range(B)])
        assert np.shape(g) == w.shape
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12, atol=1e-14)


# --- batching rules in awkward cases ---------------------------------------------------------

def _loop(f, in_axes, *args):
    size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = [f(*[a if ax is None else np.take(a, b, axis=ax) for a, ax in zip(args, in_axes)])
            for b in range(size)]
    return np.stack([np.asarray(o) for o in outs])


@pytest.mark.parametrize('f', [
    lambda x: x[[0, 2], :, [1, 0]],             # advanced indices split by a slice: to the front
    lambda x: x[1, :, [0, 1, 1]],               # an int counts as advanced here
    lambda x: x[:, [1, 0]][None, ..., 1],
    lambda x: x[x.shape[0] - 1],
    lambda x: cnp.at(x)[[0, 2], :, [1, 1]].add(1.0) * x,
    lambda x: cnp.at(x)[[0, 2], :, [1, 0]].set(x[0, :, 0] * 2),
    lambda x: cnp.at(x)[1:, 0].set(5.0),
    lambda x: cnp.diag(x[0, :, 1]),             # scatter_add
    lambda x: cnp.cumsum(x, axis=1) + cnp.cumprod(x + 2, axis=-1),
    lambda x: cnp.max(x, axis=(0, 2)) + cnp.sum(x, axis=1).sum(),
    lambda x: cnp.concatenate([x, np.ones((3, 2, 2))], axis=2),
    lambda x: cnp.broadcast_to(x[0, 0], (4, 2)),
])
def test_indexing_and_structural_rules_equal_loop(f):
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter('error', BatchingFallbackWarning)
        np.testing.assert_allclose(cr.vmap(f)(x), _loop(f, (0,), x), rtol=1e-13)
        np.testing.assert_allclose(cr.vmap(f, in_axes=2)(np.moveaxis(x, 0, 2)),
                                   _loop(f, (0,), x), rtol=1e-13)


@pytest.mark.parametrize('sa,sb,axes', [
    ((3, 4), (4, 5), (0, None)), ((3, 4), (4, 5), (None, 0)), ((3, 4), (4, 5), (0, 0)),
    ((3, 4), (2, 4, 5), (0, None)), ((2, 3, 4), (4, 5), (None, 0)), ((4,), (4, 5), (0, None)),
    ((3, 4), (4,), (None, 0)), ((4,), (4,), (0, 0)), ((2, 3, 4), (2, 4, 5), (0, 0)),
])
def test_matmul_batch_rule_equals_loop(sa, sb, axes):
    rng = np.random.default_rng(1)
    a = rng.normal(size=((5,) if axes[0] is not None else ()) + sa)
    b = rng.normal(size=((5,) if axes[1] is not None else ()) + sb)
    got = cr.vmap(cnp.matmul, in_axes=axes)(a, b)
    np.testing.assert_allclose(got, _loop(np.matmul, axes, a, b), rtol=1e-12)


def test_in_axes_none_mix_with_weak_scalars_and_where_condition():
    x = np.random.default_rng(2).normal(size=(5, 3))
    c = np.array([True, False, True])

    def f(x, c):
        return cnp.where(c, x * 2.0, 1.0 - x) + cnp.where(x[0] > 0, x, 0.0)
    np.testing.assert_allclose(cr.vmap(f, in_axes=(0, None))(x, c), _loop(f, (0, None), x, c))
    cs = np.random.default_rng(3).random((5, 3)) < 0.5
    np.testing.assert_allclose(cr.vmap(f, in_axes=(1, 0))(x.T, cs), _loop(f, (1, 0), x.T, cs))


# --- gradients and nesting ---------------------------------------------------------------------

def _loss(w, x, y):
    return (cnp.tanh(cnp.dot(x, w[:-1]) + w[-1]) - y) ** 2


def test_per_example_gradients_equal_loop_and_torch():
    rng = np.random.default_rng(4)
    w, xs, ys = rng.normal(size=4), rng.normal(size=(8, 3)), rng.normal(size=8)
    got = cr.vmap(cr.grad(_loss), in_axes=(None, 0, 0))(w, xs, ys)
    want = np.stack([cr.grad(_loss)(w, x, y) for x, y in zip(xs, ys)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    torch = pytest.importorskip('torch')
    from torch.func import grad, vmap

    def tloss(w, x, y):
        return (torch.tanh(x @ w[:-1] + w[-1]) - y) ** 2
    t = vmap(grad(tloss), in_dims=(None, 0, 0))(*map(torch.tensor, (w, xs, ys)))
    np.testing.assert_allclose(got, t.numpy(), rtol=1e-10)


def test_grad_of_vmap_and_vmap_of_grad_agree():
    rng = np.random.default_rng(5)
    w, xs, ys = rng.normal(size=4), rng.normal(size=(6, 3)), rng.normal(size=6)
    total = cr.grad(lambda w: cnp.sum(cr.vmap(_loss, in_axes=(None, 0, 0))(w, xs, ys)))(w)
    per = cr.vmap(cr.grad(_loss), in_axes=(None, 0, 0))(w, xs, ys)
    np.testing.assert_allclose(total, per.sum(0), rtol=1e-12)


def test_nested_vmap_and_out_axes():
    x = np.arange(24.0).reshape(2, 3, 4)
    f = cr.vmap(cr.vmap(lambda v: cnp.sum(v * v), in_axes=1), in_axes=0)
    np.testing.assert_allclose(f(x), (x * x).sum(1))
    y = cr.vmap(lambda v: v * 2, in_axes=1, out_axes=-1)(x)
    np.testing.assert_allclose(y, np.moveaxis(x * 2, 1, -1))
    # outputs that do not depend on the batch are broadcast (or kept, with out_axes=None)
    a, b = cr.vmap(lambda v: (np.ones(2), cnp.sum(v)), out_axes=(1, 0))(x)
    assert a.shape == (2, 2) and b.shape == (2,)
    assert cr.vmap(lambda v: (v, 7.0), out_axes=(0, None))(x)[1] == 7.0


def test_pytree_in_axes():
    params = {'w': np.ones(3), 'b': np.arange(4.0)}
    xs = np.arange(12.0).reshape(4, 3)
    out = cr.vmap(lambda p, x: cnp.dot(p['w'], x) + p['b'], in_axes=({'w': None, 'b': 0}, 0))(
        params, xs)
    np.testing.assert_allclose(out, xs.sum(1) + params['b'])
    res = cr.vmap(lambda t: {'s': t[0] + t[1]}, in_axes=((0, 1),))((xs, xs.T))
    np.testing.assert_allclose(res['s'], 2 * xs)


def test_tensor_code_runs_inside_vmap():
    def f(x):
        t = cr.Tensor(x)
        return (t * t).sum()
    np.testing.assert_allclose(cr.vmap(f)(np.arange(6.0).reshape(2, 3)), [5.0, 50.0])


# --- the fallback ------------------------------------------------------------------------------

def test_loop_fallback_warns_or_reports_and_is_correct(make_primitive):
    p = make_primitive('test_vmap_unbatched_cube', lambda x: x ** 3,
                       vjp=[lambda g, ans, x: g * 3 * x * x])
    x = np.arange(6.0).reshape(3, 2)
    with pytest.warns(BatchingFallbackWarning, match='test_vmap_unbatched_cube'):
        np.testing.assert_allclose(cr.vmap(lambda v: p(v) + 1)(x), x ** 3 + 1)
    out, fallbacks = cr.vmap(lambda v: p(p(v)), report=True)(x)
    np.testing.assert_allclose(out, x ** 9)
    assert fallbacks == {'test_vmap_unbatched_cube': 2}
    # the fallback composes with gradients: per-example d/dx x**3 = 3 x**2
    g = cr.vmap(cr.grad(lambda v: cnp.sum(p(v))), report=True)(x)[0]
    np.testing.assert_allclose(g, 3 * x ** 2)


# --- errors -----------------------------------------------------------------------------------

def test_mismatched_sizes_name_each_argument_and_shape():
    with pytest.raises(cr.ShapeError, match=r'argument 0 of shape \(3, 2\) mapped over axis 0 '
                                            r'\(size 3\); argument 1 of shape \(2, 5\) mapped '
                                            r'over axis 1 \(size 5\)'):
        cr.vmap(lambda a, b: a, in_axes=(0, 1))(np.ones((3, 2)), np.ones((2, 5)))
    with pytest.raises(cr.ShapeError, match=r'argument 0 of shape \(3,\).*only 1 axes'):
        cr.vmap(lambda a: a, in_axes=1)(np.ones(3))
    with pytest.raises(cr.ChainruleError, match='in_axes has 1 entries.*2 positional'):
        cr.vmap(lambda a, b: a, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match='nothing to map'):
        cr.vmap(lambda a: a, in_axes=None)(np.ones(3))
    with pytest.raises(cr.ChainruleError, match='out_axes is None for output 0'):
        cr.vmap(lambda a: a, out_axes=None)(np.ones(3))


def test_python_control_flow_on_batched_values_raises_with_advice():
    def f(x):
        return x if x > 0 else -x
    with pytest.raises(ConcretizationError, match='cnp.where'):
        cr.vmap(f)(np.array([1.0, -2.0]))
    np.testing.assert_allclose(cr.vmap(lambda x: cnp.where(x > 0, x, -x))(np.array([1.0, -2.0])),
                               [1.0, 2.0])


def test_keyword_arguments_are_passed_unmapped():
    x = np.arange(6.0).reshape(3, 2)
    out = cr.vmap(lambda v, scale=1.0, axis=0: cnp.sum(v * scale, axis=axis))(x, scale=2.0, axis=0)
    np.testing.assert_allclose(out, 2 * x.sum(1))


def test_vmap_over_a_tensor_records_for_backward():
    t = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    out = cr.vmap(lambda r: (r * r).sum())(t)
    np.testing.assert_allclose(out.data, [5.0, 50.0])
    out.sum().backward()
    np.testing.assert_allclose(t.grad.data, 2 * np.arange(6.0).reshape(2, 3))
