"""Sorting, searching and gathering (`chainrule.ops.sorting`) under every transform: forward
equals NumPy; gradients of `sort`/`take_along_axis`/`take` against finite differences and
PyTorch (`torch.sort`, `torch.gather`); `vmap` equals a loop for in_axes 0, 1 and None; `jit`
equals eager; `vmap(grad)` of a sort-based loss; indexing with a computed integer array; and
the clear errors of the functions whose result's shape depends on the values."""

import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import ConcretizationError, ShapeError
from chainrule.interpreters.batching import BatchingFallbackWarning
from chainrule.ops import sorting
from chainrule.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 5))          # distinct values: sorting has no ties
W = np.linspace(-1.0, 2.0, 5)


def _loop(f, in_axes, *args):
    size = next(np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None)
    outs = [f(*[a if ax is None else np.take(a, b, axis=ax) for a, ax in zip(args, in_axes)])
            for b in range(size)]
    return np.stack([np.asarray(o) for o in outs])


def _vmap_equals_loop(f, in_axes, *args):
    with warnings.catch_warnings():
        warnings.simplefilter('error', BatchingFallbackWarning)    # every rule is vectorised
        got = cr.vmap(f, in_axes=in_axes)(*args)
    want = _loop(f, in_axes, *args)
    assert np.shape(got) == want.shape and np.asarray(got).dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


# --- forward: equals NumPy, and the wrappers check shapes ------------------------------------

@pytest.mark.parametrize('f,ref', [
    (lambda x: sorting.argsort(x, 0), lambda x: np.argsort(x, 0, kind='stable')),
    (lambda x: sorting.argmax(x), np.argmax),
    (lambda x: sorting.argmin(x, 1, keepdims=True), lambda x: np.argmin(x, 1, keepdims=True)),
    (lambda x: sorting.argmax(x, keepdims=True), lambda x: np.argmax(x, keepdims=True)),
    (lambda x: sorting.all(x > -1, 1), lambda x: np.all(x > -1, 1)),
    (lambda x: sorting.any(x > 1, (0, 1), keepdims=True),
     lambda x: np.any(x > 1, (0, 1), keepdims=True)),
    (lambda x: sorting.take(x, np.array([[0, 3], [4, 4]]), 1),
     lambda x: np.take(x, np.array([[0, 3], [4, 4]]), 1)),
    (lambda x: sorting.take_along_axis(x, np.argsort(x, 0)[:2], 0),
     lambda x: np.take_along_axis(x, np.argsort(x, 0)[:2], 0)),
    # broadcasting outside the axis, as NumPy's take_along_axis
    (lambda x: sorting.take_along_axis(x, np.array([[1, 0, 2]]), 1),
     lambda x: np.take_along_axis(x, np.array([[1, 0, 2]]), 1)),
    (lambda x: sorting.scatter_along_axis(x, np.array([[0, 0, 1, 2, 2]] * 4), 1, 3),
     lambda x: np.stack([np.bincount([0, 0, 1, 2, 2], r, 3) for r in x])),
])
def test_primitives_equal_numpy(f, ref):
    got, want = f(X), ref(X)
    assert np.shape(got) == np.shape(want) and np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_allclose(got, want, rtol=1e-15)


@pytest.mark.parametrize('prim,args,params', [
    (sorting.argsort_p, (X,), {'axis': 0, 'stable': True}),
    (sorting.argpartition_p, (X,), {'kth': (1, 2), 'axis': 1}),
    (sorting.argmax_p, (X,), {'axis': 1, 'keepdims': True}),
    (sorting.argmin_p, (X,), {'axis': 0, 'keepdims': False}),
    (sorting.all_p, (X > 0,), {'axis': (0, 1), 'keepdims': False}),
    (sorting.any_p, (X,), {'axis': (1,), 'keepdims': True}),
    (sorting.searchsorted_p, (X[0], X), {'side': 'left'}),
    (sorting.searchsorted_p, (np.sort(X, 1), X[:, :2].astype(np.float32)), {'side': 'right'}),
    (sorting.take_along_axis_p, (X.astype(np.float32), np.zeros((2, 5), int)), {'axis': 0}),
    (sorting.scatter_along_axis_p, (X, np.zeros((4, 5), int)), {'axis': 1, 'n': 7}),
])
def test_shape_rules_agree_with_the_impls(prim, args, params):
    out = prim.impl(*args, **params)
    assert prim.shape(*args, **params) == (out.shape, out.dtype)


@pytest.mark.parametrize('side', ['left', 'right'])
def test_searchsorted_rows_merge_equals_numpy_row_by_row(side):
    # the batched impl (several sorted rows at once) with ties between `a` and `v`, and NaN
    a = np.sort(RNG.integers(0, 6, (3, 7)).astype(float), axis=1)
    v = np.concatenate([RNG.integers(-1, 7, (3, 9)).astype(float), np.full((3, 1), np.nan)], 1)
    got = sorting.searchsorted_p.impl(a, v, side=side)
    want = np.stack([np.searchsorted(a[i], v[i], side=side) for i in range(3)])
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype


@pytest.mark.parametrize('fn,pattern', [
    (lambda: sorting.take_along_axis(X, np.zeros((4, 2, 1), int), 1),
     r'take_along_axis: indices of shape \(4, 2, 1\).*\(4, 5\)'),
    (lambda: sorting.take_along_axis(X, np.zeros((3, 2), int), 1),
     r'take_along_axis: indices of shape \(3, 2\) do not broadcast .*\(4, 5\)'),
    (lambda: sorting.argsort(X, 2), r'argsort: axis 2 .* dimension 2'),
    (lambda: sorting.argmax(np.ones((2, 0)), 1), r'argmax: axis 1 of shape \(2, 0\) is empty'),
    (lambda: sorting.searchsorted(X, 1.0), r'searchsorted: a must be 1-D, got shape \(4, 5\)'),
    (lambda: sorting.argpartition(X, 5), r'argpartition: kth=5 .* shape \(4, 5\)'),
])
def test_shape_errors_name_the_op_and_the_shapes(fn, pattern):
    with pytest.raises(ShapeError, match=pattern):
        fn()


def test_float_indices_are_refused():
    with pytest.raises(IndexError, match='take_along_axis: indices must be integers'):
        sorting.take_along_axis(X, np.zeros((4, 1)), 1)


# --- gradients -------------------------------------------------------------------------------

def test_sort_gradient_is_the_weight_of_each_elements_sorted_place():
    x = X[0]
    g = cr.grad(lambda x: cnp.sum(cnp.sort(x) * W))(x)
    # element i lands at place rank(i), so d/dx_i sum_j sort(x)_j w_j = w[rank(i)]
    np.testing.assert_allclose(g, W[np.argsort(np.argsort(x))], rtol=1e-15)


def test_sort_is_stable_so_tied_elements_keep_their_order_and_their_gradients():
    x = np.array([1.0, 1.0, 0.0, 1.0])
    w = np.array([0.0, 1.0, 2.0, 3.0])
    loss = lambda x: cnp.sum(cnp.sort(x) * w)                       # noqa: E731
    want = np.array([1.0, 2.0, 0.0, 3.0])      # the tied ones take places 1, 2, 3 in order
    np.testing.assert_array_equal(cr.grad(loss)(x), want)
    np.testing.assert_array_equal(cr.vmap(cr.grad(loss))(np.stack([x, x])), [want, want])
    np.testing.assert_array_equal(cr.jit(cr.grad(loss))(x), want)
    # a faster unstable sort on request: the same values, ties in NumPy's order
    np.testing.assert_array_equal(cr.vmap(lambda x: cnp.sort(x, kind='quicksort'))(X),
                                  np.sort(X, axis=1))


@pytest.mark.parametrize('f', [
    lambda x: cnp.sort(x, axis=0) * np.arange(20.0).reshape(4, 5),
    lambda x: cnp.sort(x) ** 2,
    lambda x: cnp.take_along_axis(x, np.array([[0, 0, 3], [1, 2, 2], [4, 0, 1], [3, 3, 3]]), 1)
    * x[:, :3],                                             # repeated indices: a scatter-add
    lambda x: cnp.take(x, np.array([[1, 1], [0, 3]]), axis=0) ** 3,
    lambda x: cnp.partition(x, 2, axis=1) * x,
])
def test_gradients_against_finite_differences_to_second_order(f):
    check_grads(f, (X,), order=2, modes=('fwd', 'rev'))


def test_gradients_through_traced_indices_against_finite_differences():
    # the permutation itself traced (inside vmap over a batch of one), gradients of everything
    f = lambda x: cr.vmap(lambda r: cnp.sort(r) * cnp.sort(r)[::-1])(x)  # noqa: E731
    check_grads(f, (X,), order=2, modes=('fwd', 'rev'))


def test_sort_and_gather_gradients_match_torch():
    torch = pytest.importorskip('torch')
    idx = np.array([[0, 0, 3], [1, 2, 2], [4, 0, 1], [3, 3, 3]])
    v = RNG.normal(size=(4, 5))

    def ours(x):
        return cnp.sum(cnp.sort(x, axis=0) * v) + cnp.sum(cnp.take_along_axis(x, idx, 1) ** 2)

    t = torch.tensor(X, requires_grad=True)
    loss = (torch.sort(t, dim=0).values * torch.tensor(v)).sum() + \
        (torch.gather(t, 1, torch.tensor(idx)) ** 2).sum()
    loss.backward()
    np.testing.assert_allclose(cr.grad(ours)(X), t.grad.numpy(), rtol=1e-13)
    # the same inside jit, where argsort is a staged primitive
    np.testing.assert_allclose(cr.jit(cr.grad(ours))(X), t.grad.numpy(), rtol=1e-13)


def test_scatter_along_axis_is_the_transpose_of_the_gather():
    # <take(x, idx), u> = <x, scatter(u, idx)> for every x and u: the VJP pair is consistent
    idx = np.array([[0, 0, 3], [1, 2, 2], [4, 0, 1], [3, 3, 3]])
    u = RNG.normal(size=(4, 3))
    lhs = np.sum(sorting.take_along_axis(X, idx, 1) * u)
    rhs = np.sum(X * sorting.scatter_along_axis(u, idx, 1, 5))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13)
    check_grads(lambda u: sorting.scatter_along_axis(u, idx, 1, 5) ** 2, (u,), order=2,
                modes=('fwd', 'rev'))


def test_hessian_of_a_sort_based_function_is_analytic():
    # f = sum_j w_j sort(x)_j^3: element i sits at place r(i), so H = diag(6 w_r(i) x_i)
    x = X[3]
    rank = np.argsort(np.argsort(x))
    f = lambda x: cnp.sum(cnp.sort(x) ** 3 * W)                      # noqa: E731
    want = np.diag(6 * W[rank] * x)
    np.testing.assert_allclose(cr.hessian(f)(x), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cr.jacrev(cr.jacfwd(f))(x), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(cr.jit(cr.hessian(f))(x), want, rtol=1e-13, atol=1e-15)


# --- vmap equals a loop ------------------------------------------------------------------------

B3 = RNG.normal(size=(3, 4, 5))
B4 = RNG.normal(size=(3, 2, 4, 5))
SORTED = np.sort(RNG.normal(size=(3, 6)), axis=1)
VALS = RNG.normal(size=(3, 4))


@pytest.mark.parametrize('name,f,in_axes,args', [
    ('sort', lambda x: cnp.sort(x), (0,), (B3,)),
    ('sort_axis0_in1', lambda x: cnp.sort(x, axis=0), (1,), (B3,)),
    ('sort_flat', lambda x: cnp.sort(x, axis=None), (2,), (B3,)),
    ('argsort', lambda x: cnp.argsort(x, axis=0), (0,), (B3,)),
    ('argmax', lambda x: cnp.argmax(x), (1,), (B3,)),
    ('argmin_axis', lambda x: cnp.argmin(x, axis=1, keepdims=True), (0,), (B3,)),
    ('all', lambda x: cnp.all(x > -1.5, axis=0), (1,), (B3,)),
    ('any_where', lambda x: cnp.any(x > 1, where=x < 1.5), (0,), (B3,)),
    ('searchsorted_both', lambda a, v: cnp.searchsorted(a, v), (0, 0), (SORTED, VALS)),
    ('searchsorted_a', lambda a, v: cnp.searchsorted(a, v, side='right'), (0, None),
     (SORTED, VALS)),
    ('searchsorted_v', lambda a, v: cnp.searchsorted(a, v), (None, 1), (SORTED[0], VALS)),
    ('take_along_axis_x', lambda x, i: cnp.take_along_axis(x, i, 1), (0, None),
     (B3, np.array([[0, 4], [1, 1], [3, 2], [0, 0]]))),
    ('take_along_axis_idx', lambda x, i: cnp.take_along_axis(x, i, 0), (None, 0),
     (B3[0], RNG.integers(0, 4, (3, 2, 5)))),
    ('take_along_axis_both', lambda x, i: cnp.take_along_axis(x, i, -1), (2, 0),
     (B3, RNG.integers(0, 4, (5, 3, 2)))),
    ('take_traced', lambda x, i: cnp.take(x, i, axis=1), (None, 0),
     (B3[0], RNG.integers(0, 5, (3, 2, 2)))),
    ('take_wrap', lambda x, i: cnp.take(x, i, mode='wrap'), (0, 0),
     (B3, RNG.integers(-30, 30, (3, 7)))),
    ('getitem_argmax', lambda x: x[cnp.argmax(x[:, 0])], (0,), (B3,)),
    ('getitem_slices', lambda x: x[1:, cnp.argsort(x[0])[:3]], (2,), (B3,)),
    ('getitem_ellipsis', lambda x: x[..., cnp.argmin(x[0])], (0,), (B3,)),
    ('getitem_int', lambda x: x[2, cnp.argsort(x[0])], (0,), (B3,)),
    # an integer and the array separated by a slice: NumPy puts the gathered axes first
    ('getitem_split', lambda x: x[1, :, cnp.argsort(x[0, 0])[:3]], (0,), (B4,)),
    ('getitem_split_none', lambda x: x[:, 0, None, cnp.argmin(x[0, 0])], (1,), (B4,)),
    ('trimmed_mean', lambda x: cnp.mean(cnp.sort(x)[1:-1]), (0,), (B3[:, 0],)),
    ('median_low', lambda x: cnp.partition(x, 2, axis=-1)[..., 2], (1,), (B3,)),
    ('interp', lambda x, fp: cnp.interp(x, np.array([-2.0, 0.0, 1.0, 3.0]), fp), (0, 0),
     (3 * B3[:, 0], B3[:, :, 0])),
    ('interp_xp', lambda x, xp: cnp.interp(x, xp, np.arange(6.0)), (None, 0),
     (VALS[0], SORTED)),
    ('digitize', lambda x, b: cnp.digitize(x, b), (0, 0), (VALS, SORTED)),
    ('digitize_decreasing', lambda x, b: cnp.digitize(x, b[::-1], right=True), (0, 0),
     (VALS, SORTED)),
    ('isclose', lambda a, b: cnp.isclose(a, cnp.round(b, 1)), (0, None),
     (cnp.round(B3, 1) + 1e-9, B3[0])),
    ('allclose', lambda a, b: cnp.allclose(a, b), (0, 0), (B3, B3 + 1e-9 * np.arange(3)[:, None,
                                                                                        None])),
    ('array_equal', lambda a, b: cnp.array_equal(a, b), (0, None), (np.stack([B3[0], B3[1],
                                                                                 B3[0]]), B3[0])),
    ('count_nonzero', lambda x: cnp.count_nonzero(x > 0, axis=1), (0,), (B3,)),
    ('isin', lambda e, t: cnp.isin(e, t), (0, 0),
     (RNG.integers(0, 5, (3, 4)), RNG.integers(0, 5, (3, 2)))),
])
def test_vmap_equals_loop(name, f, in_axes, args):
    _vmap_equals_loop(f, in_axes, *args)


@pytest.mark.parametrize('x,f', [
    (B3, lambda x: cnp.at(x)[cnp.argmax(x[:, 0])].set(0.0)),
    (B3, lambda x: cnp.at(x)[:, cnp.argsort(x[0]) % 3].set(x * 2)),   # repeats: the last wins
    (B3, lambda x: cnp.at(x)[:, cnp.argsort(x[0])[:3] % 2].add(x[:, :3])),   # repeats add up
    (B4, lambda x: cnp.at(x)[1, :, cnp.argsort(x[0, 0])[:3]].set(x[0, :3, :4])),   # axes first
    (B4, lambda x: cnp.at(x)[1, :, cnp.argsort(x[0, 0])[:3] % 2].add(x[0, :3, :4])),
    (B3, lambda x: cnp.at(x)[..., cnp.argsort(x[0]) % 2].set(x * 3)),
    (B3, lambda x: cnp.at(x)[1:, cnp.argmin(x[0])].add(1.0)),
    (B3, lambda x: cnp.at(x)[cnp.argmin(x[0]) - 4].multiply(3.0)),        # a negative index
])
def test_indexed_updates_at_traced_indices(x, f):
    # the loop runs the eager path (NumPy's own indexed assignment and np.add.at)
    _vmap_equals_loop(f, (0,), x)
    # (repeated indices are summed before they are added to x: equal up to rounding)
    np.testing.assert_allclose(cr.jit(f)(x[0]), f(x[0]), rtol=1e-14)


@pytest.mark.parametrize('kind', ['set', 'add'])
def test_indexed_update_gradients_at_traced_indices(kind):
    def f(x):
        def one(r):
            at = cnp.at(r)[cnp.argsort(r) % 3]
            return at.set(r * r) if kind == 'set' else at.add(r * r)
        return cr.vmap(one)(x)
    check_grads(f, (X,), order=2, modes=('fwd', 'rev'))


def test_nested_vmap_of_searchsorted_and_gather():
    a = np.sort(RNG.normal(size=(2, 3, 6)), axis=-1)
    v = RNG.normal(size=(2, 3, 4))
    f = cr.vmap(cr.vmap(lambda a, v: cnp.take(a, cnp.searchsorted(a, v) % 6)), in_axes=(0, 0))
    want = np.array([[np.take(a[i, j], np.searchsorted(a[i, j], v[i, j]) % 6)
                      for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(f(a, v), want)
    # a shared row searched by values batched twice
    g = cr.vmap(cr.vmap(lambda v: cnp.searchsorted(a[0, 0], v)))
    np.testing.assert_array_equal(g(v), np.searchsorted(a[0, 0], v))


def _trimmed_mean(x):
    return cnp.mean(cnp.sort(x)[1:-1])


def test_per_example_gradients_of_a_trimmed_mean():
    xs = RNG.normal(size=(6, 5))
    got = cr.vmap(cr.grad(_trimmed_mean))(xs)
    want = np.stack([cr.grad(_trimmed_mean)(x) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-15)
    # analytically: 1/3 on the three middle elements, 0 on the smallest and the largest
    rank = np.argsort(np.argsort(xs, axis=1), axis=1)
    np.testing.assert_allclose(got, np.where((rank > 0) & (rank < 4), 1 / 3, 0.0), rtol=1e-15)
    # and per-example Hessian-vector products (forward over reverse over vmap)
    v = np.ones(5)
    hv = cr.vmap(lambda x: cr.jvp(cr.grad(lambda y: cnp.sum(cnp.sort(y) ** 2 * W)), (x,),
                                  (v,))[1])(xs)
    np.testing.assert_allclose(hv, 2 * W[rank] * v, rtol=1e-14)


# --- jit equals eager ----------------------------------------------------------------------------

@pytest.mark.parametrize('f', [
    cnp.sort,
    lambda x: cnp.sort(x, axis=0),
    lambda x: cnp.argsort(x, axis=None),
    lambda x: (cnp.argmax(x, axis=1), cnp.argmin(x)),
    lambda x: (cnp.all(x < 3), cnp.any(x > 1, axis=0)),
    lambda x: x[1, cnp.argmax(x[1])],
    lambda x: cnp.searchsorted(cnp.sort(x[0]), x[1:]),
    lambda x: cnp.interp(x, cnp.sort(x[0]), np.arange(5.0)),
    lambda x: cnp.partition(x, (1, 3), axis=1),
    lambda x: (cnp.isclose(x, x + 1e-9), cnp.allclose(x, x * 2), cnp.count_nonzero(x > 0)),
])
def test_jit_equals_eager(f):
    jf = cr.jit(f)
    got, want = jf(X), f(X)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype and np.shape(g) == np.shape(w)
        np.testing.assert_array_equal(g, w)
    assert jf.cache_info().misses == 1


def test_jit_of_grad_of_sort():
    loss = lambda x: cnp.sum(cnp.sort(x) * W)                      # noqa: E731
    jg = cr.jit(cr.grad(loss))
    for x in (X[0], X[1]):          # one trace, and the permutation is recomputed per call
        np.testing.assert_allclose(jg(x), W[np.argsort(np.argsort(x))], rtol=1e-15)
    assert jg.cache_info().misses == 1
    src = jg.source(X[0])
    assert 'argsort' in src and 'scatter_along_axis' in src


def test_grad_of_jit_and_vmap_of_jit_of_sort():
    f = cr.jit(lambda x: cnp.sum(cnp.sort(x)[:2]))                  # the two smallest
    x = X[2]
    want = np.zeros(5)
    want[np.argsort(x)[:2]] = 1.0
    np.testing.assert_allclose(cr.grad(f)(x), want)
    np.testing.assert_allclose(cr.vmap(f)(X), np.sort(X, axis=1)[:, :2].sum(1), rtol=1e-15)


def test_export_round_trip_of_a_sorting_graph(tmp_path):
    f = lambda x: cnp.searchsorted(cnp.sort(x[0]), x[1], side='right') + cnp.argmax(x, 0)  # noqa
    exp = cr.export(f, X)
    path = tmp_path / 'g.json'
    exp.save(str(path))
    loaded = cr.load_graph(str(path))
    np.testing.assert_array_equal(loaded(X), f(X))


# --- eager paths stay NumPy's; Tensors ------------------------------------------------------------

def test_plain_arrays_and_tensors_get_numpy_results():
    assert type(cnp.argmax(X)) is np.intp or isinstance(cnp.argmax(X), np.integer)
    t = cr.Tensor(X, requires_grad=True)
    assert isinstance(cnp.argsort(t), np.ndarray)
    np.testing.assert_array_equal(cnp.argsort(t), np.argsort(X))
    assert cnp.allclose(t, X) is True
    s = cnp.sort(t, axis=0)
    (s * np.arange(20.0).reshape(4, 5)).sum().backward()
    want = np.empty((4, 5))
    np.put_along_axis(want, np.argsort(X, axis=0), np.arange(20.0).reshape(4, 5), axis=0)
    np.testing.assert_allclose(t.grad, want)


def test_tensor_code_inside_vmap_sorts():
    def f(x):
        t = cr.Tensor(x)
        # (Tensor's sort is PyTorch's: a named tuple (values, indices))
        return (t.sort().values[..., -1] - t[t.argmin()]).data
    _vmap_equals_loop(f, (0,), X)


# --- what cannot be batched or staged: a clear error ----------------------------------------------

@pytest.mark.parametrize('f', [
    cnp.nonzero, cnp.unique, cnp.flatnonzero, cnp.argwhere,
    lambda x: cnp.where(x > 0),
    lambda x: cnp.repeat(x, cnp.argsort(x)),
])
def test_data_dependent_shapes_give_a_clear_error(f):
    with pytest.raises(ConcretizationError, match='inside vmap'):
        cr.vmap(f)(X)
    with pytest.raises(ConcretizationError, match='abstract|concrete value'):
        cr.jit(f)(X[0])


def test_boolean_mask_and_unsupported_index_patterns_name_the_alternative():
    with pytest.raises(ConcretizationError, match=r'cnp\.where\(mask, x, 0\)'):
        cr.vmap(lambda x: x[x > 0])(X)
    with pytest.raises(ConcretizationError, match=r'cnp\.take\(x, i, axis\)'):
        cr.vmap(lambda x: x[[0, 1], cnp.argsort(x[0])[:2]])(B3)
    with pytest.raises(ConcretizationError, match=r'cnp\.take'):
        cr.jit(lambda x: x[cnp.argsort(x[0]), cnp.argsort(x[1])])(X)
