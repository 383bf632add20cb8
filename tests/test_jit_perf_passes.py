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
