"""The code-generation choices that make a jitted training step fast (issue 6's benchmark).

Each test checks both that the optimisation is visible in `.source()` and that the jitted
values equal eager chainrule (bitwise where the generated code does the same arithmetic).
"""

import collections
import re

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.jit import _fast_key, _tree_builder, compiled
from chainrule.tree import tree_flatten


def _mlp_loss(params, x, y1h):
    """Mean cross-entropy of a two-hidden-layer ReLU network (the benchmark's model)."""
    (w1, b1), (w2, b2), (w3, b3) = params
    logits = cnp.maximum(cnp.maximum(x @ w1 + b1, 0.0) @ w2 + b2, 0.0) @ w3 + b3
    logp = logits - cnp.logsumexp(logits, axis=1, keepdims=True)
    return -cnp.sum(logp * y1h) / x.shape[0]


def _sgd_step(params, x, y1h):
    loss, grads = cr.value_and_grad(_mlp_loss)(params, x, y1h)
    return [(w - 0.05 * gw, b - 0.05 * gb) for (w, b), (gw, gb) in zip(params, grads)], loss


def _mlp_problem(dtype=np.float32):
    rng = np.random.default_rng(0)
    sizes = [8, 16, 16, 4]
    params = [(rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(n).astype(dtype))
              for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((5, 8)).astype(dtype)
    y1h = np.eye(4, dtype=dtype)[rng.integers(0, 4, 5)]
    return params, x, y1h


# --- dispatch: pytrees of arrays take the fast path ---------------------------------------------

def test_training_step_on_a_list_of_tuples_equals_eager_and_hits_the_fast_path():
    params, x, y1h = _mlp_problem()
    j = cr.jit(_sgd_step)
    want_p, want_l = _sgd_step(params, x, y1h)
    for _ in range(3):              # first call traces, later ones take the fast path
        got_p, got_l = j(params, x, y1h)
        assert type(got_p) is list and all(type(t) is tuple for t in got_p)
        # to float32 rounding, not bitwise: jit fuses the loss's composite log-softmax into the
        # `log_softmax` primitive, which rounds differently
        np.testing.assert_allclose(got_l, want_l, rtol=1e-6)
        for g, w in zip(tree_flatten(got_p)[0], tree_flatten(want_p)[0]):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    assert j.cache_info() == (2, 1, 1) and sum(map(len, j._fast)) == 1   # one fast-path entry (grad mode on)


def test_fast_key_tells_structures_and_signatures_apart_and_refuses_other_leaves():
    a, b = np.ones(3), np.ones(3, np.float32)
    k1 = _fast_key(([a, (a,)], a))[0]
    assert k1 != _fast_key(([a, a], a))[0]            # tuple vs leaf at the same place
    assert k1 != _fast_key(([(a,), a], a))[0]          # order of children
    assert k1 != _fast_key(([a, (b,)], a))[0]          # dtype
    assert k1 != _fast_key(([a, (a,)], a[:2]))[0]      # shape
    assert k1 != _fast_key(((a, (a,)), a))[0]          # list vs tuple
    leaves = _fast_key(([a, (b,)], a))[1]
    assert [x is y for x, y in zip(leaves, [a, b, a])] == [True] * 3    # tree_flatten's order
    assert _fast_key((a, 1.0)) is None and _fast_key(({'w': a},)) is None


def test_retrace_on_a_new_shape_through_the_fast_path_and_non_array_leaves_still_work():
    j = cr.jit(lambda ps, s: [p * s for p in ps])
    out = j([np.ones(2), np.ones(3)], 2.0)        # a Python float: the general path
    np.testing.assert_array_equal(out[1], 2 * np.ones(3))
    f = cr.jit(lambda ps: (ps[0] + ps[1], None, [ps[0]]))
    a = f([np.ones(2), np.ones(2)])
    b = f([np.ones(4), np.ones(4)])
    c = f([np.ones(4), np.ones(4)])
    assert a[0].shape == (2,) and b[0].shape == (4,) and a[1] is None and type(a[2]) is list
    np.testing.assert_array_equal(c[0], 2 * np.ones(4))
    assert f.cache_info() == (1, 2, 2)


def test_tree_builder_rebuilds_every_structure():
    Point = collections.namedtuple('Point', 'x y')
    for tree in [([(1, 2), (3, 4)], 5), 7, (1,), [1, None, (2,)], ((), [3]), {'a': 1, 'b': [2]},
                 Point(1, (2, 3))]:
        leaves, td = tree_flatten(tree)
        assert _tree_builder(td)(leaves) == tree
    assert type(_tree_builder(tree_flatten(Point(1, 2))[1])([1, 2])) is Point


# --- maximum / minimum with a scalar read a contiguous constant -----------------------------------

@pytest.mark.parametrize('fn', [lambda x: cnp.maximum(x, 0.0), lambda x: cnp.minimum(x, 0.25),
                                lambda x: cnp.maximum(0.0, x)])
def test_maximum_by_a_scalar_uses_a_full_constant_and_equals_numpy(fn):
    x = np.array([[-1.0, 0.0, -0.0, 2.0], [np.nan, -np.inf, np.inf, 0.25]], np.float32)
    j = cr.jit(fn)
    src = j.source(x)
    assert '_full_2x4' in src
    got, want = j(x), fn(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)          # NaN where NumPy has NaN
    # the constant is read-only: nothing can write into it by mistake
    name = re.search(r'_f32_\w+_full_2x4', src).group(0)
    const = compiled(j.graph(x)).__globals__[name]
    assert const.shape == (2, 4) and not const.flags.writeable


def test_maximum_by_a_scalar_on_a_big_array_keeps_the_scalar():
    x = np.zeros(2 ** 20 + 1)       # over 4 MiB of float64: the constant would cost more
    assert '_full_' not in cr.jit(lambda x: cnp.maximum(x, 0.0)).source(x)


# --- maximum's backward pass as one boolean-mask multiply ------------------------------------------

def test_relu_backward_is_one_mask_multiply_in_the_source():
    params, x, y1h = _mlp_problem()
    src = cr.jit(_sgd_step).source(params, x, y1h)
    # both hidden layers: one multiply by the boolean mask, in place, unless something ties
    assert len(re.findall(r'= np\.multiply\((\w+), \w+, out=\1\) if not \w+\.any\(\) else',
                          src)) == 2
    assert src.count('np.greater(') == 2 and src.count('np.equal(') == 2


@pytest.mark.parametrize('ties', [False, True])
def test_relu_backward_equals_eager_bitwise_with_and_without_ties(ties):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    if ties:
        x[::2, ::3] = 0.0
    w = rng.standard_normal((7, 7)).astype(np.float32)
    f = lambda x, w: cnp.sum(cnp.maximum(x, 0.0) @ w)     # d/dx_ij = step(x_ij) sum_k w_jk
    g = cr.grad(f)
    want = g(x, w)
    j = cr.jit(g)
    assert '.any() else' in j.source(x, w)
    got = j(x, w)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    if ties:    # the tie rule is still in force: half the cotangent at x == 0
        np.testing.assert_allclose(got[0, 0], 0.5 * w.sum(axis=1)[0], rtol=1e-5)
    np.testing.assert_allclose(got[x < 0], 0.0)


def test_maximum_and_minimum_of_two_arrays_split_ties_for_both_arguments():
    x = np.array([1.0, 2.0, 3.0, -1.0])
    y = np.array([1.0, 0.0, 5.0, -1.0])
    for op in (cnp.maximum, cnp.minimum):
        g = cr.grad(lambda x, y: cnp.sum(op(x, y) * cnp.arange(1.0, 5.0)), argnums=(0, 1))
        j = cr.jit(g)
        assert '.any() else' in j.source(x, y)
        for got, want in zip(j(x, y), g(x, y)):
            np.testing.assert_array_equal(got, want)
        # analytic: weight k at each position, split in half at the ties (positions 0 and 3)
        wx, wy = j(x, y)
        np.testing.assert_array_equal(wx + wy, np.arange(1.0, 5.0))
        assert wx[0] == wy[0] == 0.5 and wx[3] == wy[3] == 2.0


def test_a_mask_used_elsewhere_keeps_the_original_equations():
    # the comparison's result is a graph output too: the pattern does not apply
    def f(x):
        return cr.grad(lambda x: cnp.sum(cnp.maximum(x, 0.0)))(x), x > 0
    x = np.array([-1.0, 0.0, 2.0])
    j = cr.jit(f)
    got, want = j(x), f(x)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


# --- views and reductions without Python wrappers --------------------------------------------------

def test_transposes_and_reshapes_are_ndarray_methods_and_full_reductions_use_axis_none():
    def f(x):
        return cnp.sum(cnp.transpose(x, (2, 0, 1)).reshape(4, 6) @ cnp.ones((6, 2)).T.T), \
            cnp.sum(x.T, axis=0), cnp.max(x, axis=(0, 1, 2))
    x = np.arange(24.0).reshape(2, 3, 4)
    j = cr.jit(f)
    src = j.source(x)
    assert '.transpose((2, 0, 1))' in src and '.reshape((4, 6))' in src
    assert 'np.transpose(' not in src and 'np.reshape(' not in src
    assert 'axis=None' in src and 'axis=0,' in src
    for got, want in zip(j(x), f(x)):
        np.testing.assert_array_equal(got, want)


def test_mlp_step_in_float32_has_no_float64_anywhere():
    params, x, y1h = _mlp_problem()
    g = cr.jit(_sgd_step).graph(params, x, y1h)
    text = str(g)
    assert 'f64' not in text and 'float64' not in cr.jit(_sgd_step).source(params, x, y1h)
    assert all(c.dtype == np.float32 for c in g.consts)


def _scaled_chain(x):
    return cnp.sum(cnp.sin(x) * 0.9 + cnp.exp(-(x * x)))


@pytest.mark.parametrize('n', [1000, 200000])        # below and far above 1 << 16 elements
def test_the_backward_seed_leaves_no_full_size_constant(n):
    """The seed of `grad` broadcast to the input's shape and scaled during tracing is a large
    constant array of one value; the passes replace it by a scalar (no full-array operand)."""
    x = np.random.default_rng(1).uniform(-1, 1, n)
    j = cr.jit(cr.grad(_scaled_chain))
    graph = j.graph(x)
    assert all(np.size(c) == 1 for c in graph.consts), [np.shape(c) for c in graph.consts]
    want = np.cos(x) * 0.9 - 2.0 * x * np.exp(-(x * x))
    np.testing.assert_allclose(j(x), want, rtol=1e-14, atol=1e-15)


def test_uniform_value_is_cheap_and_exact():
    from chainrule.jit.passes import _uniform_value
    big = np.full(10**6, 0.9)
    assert _uniform_value(big) == 0.9
    assert _uniform_value(np.broadcast_to(np.float32(2.0), (10**7,))) == 2.0   # strides 0
    almost = big.copy()
    almost[123457] = 1.0          # not among the sampled elements: found by the full pass
    assert _uniform_value(almost) is None
    assert _uniform_value(np.arange(10.0)) is None
    assert _uniform_value(np.array([], np.float64)) is None


# --- a sum over one axis of a float matrix is a product with a ones vector --------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402


def _matrix(rng, shape, dtype, layout):
    if layout == 'F':
        return np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    if layout == 'strided':
        return rng.standard_normal((shape[0], 2 * shape[1])).astype(dtype)[:, ::2]
    return rng.standard_normal(shape).astype(dtype)


@settings(max_examples=80, deadline=None)
@given(shape=st.tuples(st.integers(0, 9), st.integers(0, 9)), axis=st.sampled_from([0, 1, -1]),
       keepdims=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(['C', 'F', 'strided']), seed=st.integers(0, 2 ** 16))
def test_a_sum_over_one_axis_of_a_float_matrix_is_a_product_with_ones(shape, axis, keepdims,
                                                                       dtype, layout, seed):
    x = _matrix(np.random.default_rng(seed), shape, dtype, layout)

    def f(x):
        return cnp.sum(x * 1.5, axis=axis, keepdims=keepdims), cnp.sum(x, axis=axis)
    j = cr.jit(f)
    src = j.source(x)
    assert 'np.add.reduce' not in src and src.count('np.dot(') == 2
    for got, want in zip(j(x), (np.sum(x * dtype(1.5), axis=axis, keepdims=keepdims),
                                np.sum(x, axis=axis))):
        assert got.dtype == want.dtype and got.shape == want.shape
        # BLAS adds in another order than NumPy: equal to rounding
        np.testing.assert_allclose(got, want, rtol=4e-6 if dtype == np.float32 else 1e-14,
                                   atol=1e-5 if dtype == np.float32 else 1e-13)


def test_sums_with_infinities_and_nan_agree_with_numpy_and_the_ones_are_read_only():
    x = np.array([[1.0, np.inf, np.nan, -np.inf], [2.0, np.inf, 0.0, np.inf],
                  [-0.5, 1.0, 3.0, 1e38]], np.float32)
    j = cr.jit(lambda x: (cnp.sum(x, axis=0), cnp.sum(x, axis=1, keepdims=True)))
    with np.errstate(invalid='ignore'):             # inf - inf: both warn, both give NaN
        pairs = list(zip(j(x), (x.sum(0), x.sum(1, keepdims=True))))
    for got, want in pairs:
        np.testing.assert_array_equal(got, want)
    src = j.source(x)
    g = compiled(j.graph(x)).__globals__
    names = re.findall(r'_ones_f32_\w+', src)
    assert names and all(not g[n].flags.writeable for n in names)


def test_long_rows_and_other_dtypes_keep_numpys_reduction():
    # along a contiguous row NumPy sums pairwise: rows longer than 128 stay with it
    x = np.ones((3, 200), np.float32)
    src = cr.jit(lambda x: (cnp.sum(x, axis=1), cnp.sum(x, axis=0))).source(x)
    assert src.count('np.add.reduce') == 1 and src.count('np.dot(') == 1
    for arr in (np.ones((3, 4), np.int64), np.ones((3, 4), np.complex128),
                np.ones((2, 3, 4), np.float32)):
        src = cr.jit(lambda x: cnp.sum(x, axis=0)).source(arr)
        assert 'np.add.reduce' in src and 'np.dot' not in src


def test_bias_gradients_of_the_training_step_are_products_with_ones():
    params, x, y1h = _mlp_problem()
    src = cr.jit(_sgd_step).source(params, x, y1h)
    assert src.count('np.dot(_ones_f32_5, ') == 3            # one per layer: sum over the batch
    # and against the gradient written out in NumPy (float64) for the last layer's bias
    (w1, b1), (w2, b2), (w3, b3) = [(w.astype(np.float64), b.astype(np.float64))
                                    for w, b in params]
    h = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0) @ w3 + b3
    sm = np.exp(h - h.max(1, keepdims=True))
    sm /= sm.sum(1, keepdims=True)
    db3 = ((sm - y1h) / x.shape[0]).sum(0)
    new, _ = cr.jit(_sgd_step)(params, x, y1h)
    np.testing.assert_allclose(new[2][1], params[2][1] - 0.05 * db3, rtol=1e-5, atol=1e-6)


# --- log_softmax is written out as the ufunc calls of its impl --------------------------------------

@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), data=st.data(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_log_softmax_in_the_source_is_bitwise_its_impl(shape, data, dtype, seed):
    from chainrule.nn.functional import log_softmax
    from chainrule.ops.nn import _log_softmax_impl
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label='axis')
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 30).astype(dtype)
    special = data.draw(st.sampled_from([None, np.inf, -np.inf, np.nan]), label='special')
    if special is not None:
        x.flat[rng.integers(0, x.size)] = special
    j = cr.jit(lambda x: log_softmax(x, axis))
    src = j.source(x)
    assert '_log_softmax_impl' not in src and 'np.maximum.reduce' in src
    with np.errstate(all='ignore'):
        got = j(x)
        want = _log_softmax_impl(x, axis=axis % len(shape))
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    # and the reference, in float64 NumPy
    if special is None:
        x64 = x.astype(np.float64)
        ref = x64 - x64.max(axis, keepdims=True)
        ref -= np.log(np.exp(ref).sum(axis, keepdims=True))
        np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


# --- a @ b.T with few rows runs as (b @ a.T).T ------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(m=st.sampled_from([1, 3, 64, 65]), k=st.sampled_from([127, 128, 160]),
       n=st.sampled_from([1, 2, 127, 128, 130]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2 ** 16))
def test_products_with_a_transposed_operand_equal_numpy_in_either_layout(m, k, n, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)
    mask = rng.standard_normal((m, n)) > 0

    def f(a, b, mask):
        p = a @ b.T
        return p * mask + 1.0, p - 2.0    # elementwise uses of the product
    j = cr.jit(f)
    swapped = m <= 64 and k >= 128 and n >= 2 * m
    src = j.source(a, b, mask)
    assert ('np.dot(b, a.T).T' in src) == swapped, src
    q, r = j(a, b, mask)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(q, (a @ b.T) * mask + 1.0, **tol)
    np.testing.assert_allclose(r, (a @ b.T) - 2.0, **tol)
    # each elementwise result is an array of its own (none written into the transposed
    # product), C-ordered, writable; writing into one changes nothing else
    assert q.dtype == r.dtype == dtype and q.flags.writeable and r.flags.writeable
    assert q.flags.c_contiguous and r.flags.c_contiguous and not np.shares_memory(q, r)
    q[...] = 7.0
    np.testing.assert_allclose(j(a, b, mask)[0], (a @ b.T) * mask + 1.0, **tol)
    # a product that is itself a result keeps NumPy's layout
    j2 = cr.jit(lambda a, b: a @ b.T)
    assert 'np.dot(b, a.T).T' not in j2.source(a, b) and j2(a, b).flags.c_contiguous


def test_the_training_steps_second_layer_backward_product_is_computed_transposed():
    rng = np.random.default_rng(0)
    sizes = [16, 256, 256, 4]
    params = [(rng.standard_normal((m, n)).astype(np.float32) * 0.1, np.zeros(n, np.float32))
              for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y1h = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    src = cr.jit(_sgd_step).source(params, x, y1h)
    assert src.count(').T\n') == 1 and re.search(r'= np\.dot\((\w+), (\w+)\.T\)\.T', src)
    want_p, want_l = _sgd_step(params, x, y1h)
    got_p, got_l = cr.jit(_sgd_step)(params, x, y1h)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-5)
    for g, w in zip(tree_flatten(got_p)[0], tree_flatten(want_p)[0]):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# --- a negation absorbed by its user ------------------------------------------------------------------

_NEG_USERS = [lambda a, n: a + n, lambda a, n: n + a, lambda a, n: a - n, lambda a, n: n * 2.5,
              lambda a, n: -0.0 * n, lambda a, n: n / 3.0, lambda a, n: n / -0.0,
              lambda a, n: (n * 1j) if a.dtype.kind == 'c' else n * 0.5,
              lambda a, n: 2.0 - n, lambda a, n: n + 1.5, lambda a, n: n - 1.5, lambda a, n: n - a]
# (complex values are left alone: a complex product mixes the parts, so a zero's sign could flip)


@settings(max_examples=60, deadline=None)
@given(users=st.lists(st.integers(0, len(_NEG_USERS) - 1), min_size=1, max_size=4),
       dtype=st.sampled_from([np.float32, np.float64, np.complex128]),
       keep=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_negations_folded_into_their_users_are_bitwise_the_unoptimised_program(users, dtype,
                                                                              keep, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 4)).astype(dtype)
    c = rng.standard_normal((3, 4)).astype(dtype)
    c[0, :3] = [0.0, np.inf, np.nan]          # signed zeros, infinities and NaN flip exactly

    def f(a, c):
        n = -cnp.sin(c) if keep else -c
        outs = [_NEG_USERS[u](a, n) for u in users]
        return tuple(outs) + ((n,) if keep else ())
    with np.errstate(all='ignore'):
        got = cr.jit(f)(a, c)
        plain = cr.jit(f, optimize=False)(a, c)
        eager = f(a, c)
    for g, p, e in zip(got, plain, eager):
        assert g.dtype == p.dtype == e.dtype
        np.testing.assert_array_equal(g, p)
        np.testing.assert_array_equal(g, e)
        assert (np.signbit(g.real) == np.signbit(p.real))[~np.isnan(p.real)].all()
    g = cr.jit(f).graph(a, c)
    # (`n - a` and `n - 1.5` keep it: -(c + a) would need the negation anyway)
    if not keep and dtype != np.complex128 and not {10, 11} & set(users):
        assert 'neg' not in [e.prim.name for e in g.eqns]     # every negation absorbed
