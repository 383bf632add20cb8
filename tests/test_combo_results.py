"""Results are the caller's (issue 10, class 3), tested as a product.

Every result kind (each transform, `jit`, `jit` of each transform, transforms of `jit`, a graph
from `make_graph`, a saved and loaded graph) x every result form (an input passed through, a
constant, the same array twice, a view of an input or of a constant, 0-d values, a pytree) x
the caller writing into what it got: every array result is writable, writing into one changes
no other result, the caller's inputs (and the constant the function closes over) stay as they
were, and the next call returns the same values. Expected values come from NumPy: every form is
affine in its input, `f(v) = f(0) + J v`, so its Jacobian, gradients and products are exact.

Also: the reproductions from the issue, and the memory a call through `jit` (and the other
graph-carrying primitives) must not keep after it returns.
"""

import copy
import gc
import weakref

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import lax
from chainrule.tree import tree_flatten, tree_leaves, tree_unflatten

C = np.array([1.0, 2.0, 3.0])          # a constant the forms close over
C_SAVED = C.copy()


@pytest.fixture(autouse=True)
def _restore_constant():
    """A test that finds `C` changed fails; the next one starts from the right `C` again."""
    yield
    C[...] = C_SAVED


def _s(f):
    """The scalar `sum over the output leaves of their sums`, for the gradient kinds."""
    return lambda v: sum(cnp.sum(leaf) for leaf in tree_leaves(f(v)))


# name: (chainrule function of v (shape (3,)), the same in NumPy)
FORMS = {
    'input': (lambda v: v, lambda v: v),
    'input_plus_zero': (lambda v: v + 0.0, lambda v: v + 0.0),
    'constant': (lambda v: C, lambda v: C),
    'folded_constant': (lambda v: (C * 2.0, v * 1.0), lambda v: (C * 2.0, v * 1.0)),
    'same_array_twice': (lambda v: (lambda y: (y, y))(v * 2.0),
                         lambda v: (v * 2.0, v * 2.0)),
    'input_twice': (lambda v: (v, v), lambda v: (v, v)),
    'views_of_input': (lambda v: (cnp.reshape(v, (3, 1)), v[1:], cnp.transpose(v)),
                       lambda v: (v.reshape(3, 1), v[1:], v.T)),
    'result_and_its_views': (lambda v: (lambda y: (y, cnp.reshape(y, (3, 1)), y[1:]))(v * 2.0),
                             lambda v: (v * 2.0, (v * 2.0).reshape(3, 1), (v * 2.0)[1:])),
    'views_of_constant': (lambda v: (cnp.broadcast_to(C, (2, 3)), C[1:], v * 1.0),
                          lambda v: (np.broadcast_to(C, (2, 3)), C[1:], v * 1.0)),
    'zero_d': (lambda v: (cnp.sum(v), v[0], cnp.sum(C)),
               lambda v: (np.sum(v), v[0], np.sum(C))),
    'pytree': (lambda v: {'a': v, 'b': [v * 2.0, C], 'c': (cnp.sum(v), v)},
               lambda v: {'a': v, 'b': [v * 2.0, C], 'c': (np.sum(v), v)}),
}

V = np.array([0.5, -1.0, 2.0])
T = np.array([1.0, 0.25, -0.5])
B = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -3.0]])


def _leaves(ref, v):
    return [np.asarray(x, float) for x in tree_leaves(ref(v))]


def _jac(ref):
    """The Jacobian of each output leaf (shape out + (3,)): columns f(e_i) - f(0)."""
    base = _leaves(ref, np.zeros(3))
    cols = [_leaves(ref, e) for e in np.eye(3)]
    return [np.stack([c[k] - base[k] for c in cols], axis=-1) for k in range(len(base))]


def _cotangent(ref):
    """A cotangent shaped like the output, different in each leaf and element."""
    leaves, td = tree_flatten(ref(V))
    cts = [np.arange(1.0, np.size(x) + 1).reshape(np.shape(x)) * (k + 1)
           for k, x in enumerate(leaves)]
    return tree_unflatten(td, cts)


def _vjp_ref(ref, ct):
    """J^T ct, summed over the output leaves."""
    return sum(np.tensordot(np.asarray(c, float), j, axes=np.ndim(c))
               for c, j in zip(tree_leaves(ct), _jac(ref)))


def _grad_ref(ref):
    return sum(j.reshape(-1, 3).sum(0) for j in _jac(ref))


def _loaded(tmp_path, fun, *example):
    path = tmp_path / 'graph.crg'
    cr.export(fun, *example).save(path)
    return cr.load_graph(path)


# name: (f, ref, tmp_path) -> (call: () -> results, expected results, the caller's arrays)
def _kinds():
    k = {}

    def jit(f, ref, tp):
        v, j = V.copy(), cr.jit(f)
        return lambda: j(v), ref(V), [v]
    k['jit'] = jit

    def vmap(wrap_inner, wrap_outer):
        def kind(f, ref, tp):
            b, g = B.copy(), wrap_outer(cr.vmap(wrap_inner(f)))
            exp = [np.stack([np.asarray(tree_leaves(ref(r))[i]) for r in B])
                   for i in range(len(tree_leaves(ref(V))))]
            return lambda: tree_leaves(g(b)), exp, [b]
        return kind
    k['vmap'] = vmap(lambda f: f, lambda g: g)
    k['jit(vmap)'] = vmap(lambda f: f, cr.jit)
    k['vmap(jit)'] = vmap(cr.jit, lambda g: g)

    def jvp(wrap_inner, outer_jit):
        def kind(f, ref, tp):
            v, t = V.copy(), T.copy()
            g = lambda v, t: cr.jvp(wrap_inner(f), (v,), (t,))
            g = cr.jit(g) if outer_jit else g
            exp = (ref(V), [j @ T for j in _jac(ref)])
            return lambda: g(v, t), exp, [v, t]
        return kind

    def vjp(wrap_inner, outer_jit):
        def kind(f, ref, tp):
            v, ct = V.copy(), _cotangent(ref)
            if outer_jit:
                g = cr.jit(lambda v, ct: cr.vjp(f, v)[1](ct))
                call = lambda: g(v, ct)
                exp = (_vjp_ref(ref, ct),)
            else:
                def call():
                    out, fn = cr.vjp(wrap_inner(f), v)
                    return out, fn(ct)
                exp = (ref(V), (_vjp_ref(ref, ct),))
            return call, exp, [v] + tree_leaves(ct)
        return kind
    same = lambda f: f
    for label, inner, outer_jit in (('{}', same, False), ('jit({})', same, True),
                                    ('{}(jit)', cr.jit, False)):
        k[label.format('jvp')] = jvp(inner, outer_jit)
        k[label.format('vjp')] = vjp(inner, outer_jit)

    def gradient(make, exp_of):
        def kind(f, ref, tp):
            v, g = V.copy(), make(_s(f))
            return lambda: g(v), exp_of(ref), [v]
        return kind
    value = lambda ref: float(sum(np.sum(x) for x in _leaves(ref, V)))
    k['grad'] = gradient(cr.grad, _grad_ref)
    k['jit(grad)'] = gradient(lambda s: cr.jit(cr.grad(s)), _grad_ref)
    k['grad(jit)'] = gradient(lambda s: cr.grad(cr.jit(s)), _grad_ref)
    k['value_and_grad'] = gradient(cr.value_and_grad, lambda r: (value(r), _grad_ref(r)))
    k['jit(value_and_grad)'] = gradient(lambda s: cr.jit(cr.value_and_grad(s)),
                                        lambda r: (value(r), _grad_ref(r)))
    k['hessian'] = gradient(cr.hessian, lambda r: np.zeros((3, 3)))
    k['jit(hessian)'] = gradient(lambda s: cr.jit(cr.hessian(s)), lambda r: np.zeros((3, 3)))

    def jacobian(make):
        def kind(f, ref, tp):
            v, g = V.copy(), make(f)
            return lambda: tree_leaves(g(v)), _jac(ref), [v]
        return kind
    k['jacfwd'] = jacobian(cr.jacfwd)
    k['jacrev'] = jacobian(cr.jacrev)
    k['jit(jacfwd)'] = jacobian(lambda f: cr.jit(cr.jacfwd(f)))
    k['jit(jacrev)'] = jacobian(lambda f: cr.jit(cr.jacrev(f)))
    k['jacrev(jit)'] = jacobian(lambda f: cr.jacrev(cr.jit(f)))

    def graph(f, ref, tp):
        v, g = V.copy(), cr.make_graph(f)(V)       # a Graph, called on flat arguments
        return lambda: g(v), ref(V), [v]
    k['make_graph'] = graph

    def loaded(f, ref, tp):
        v, g = V.copy(), _loaded(tp, f, V)
        return lambda: g(v), ref(V), [v]
    k['loaded'] = loaded

    def loaded_grad(f, ref, tp):
        v, g = V.copy(), _loaded(tp, cr.grad(_s(f)), V)
        return lambda: g(v), _grad_ref(ref), [v]
    k['loaded(grad)'] = loaded_grad

    def grad_loaded(f, ref, tp):
        v, prog = V.copy(), _loaded(tp, _s(f), V)
        g = cr.grad(lambda v: prog(v))
        return lambda: g(v), _grad_ref(ref), [v]
    k['grad(loaded)'] = grad_loaded
    return k


KINDS = _kinds()


def _assert_same(got, want, what):
    gl, wl = tree_leaves(got), tree_leaves(want)
    assert len(gl) == len(wl), f'{what}: {len(gl)} results, expected {len(wl)}'
    for i, (g, w) in enumerate(zip(gl, wl)):
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w, float), rtol=1e-12,
                                   atol=1e-12, err_msg=f'{what}: result {i}')


def _write_into_each(results, what):
    """Write into every array result, one at a time, checking first that the writes into the
    earlier ones did not reach it."""
    leaves = tree_leaves(results)
    before = copy.deepcopy(leaves)
    for i, (r, b) in enumerate(zip(leaves, before)):
        if not isinstance(r, np.ndarray):
            # a NumPy scalar or Python number: immutable, nothing can write through it
            assert isinstance(r, (float, int, complex, np.generic)), (what, i, type(r))
            continue
        np.testing.assert_array_equal(r, b, err_msg=f'{what}: writing into an earlier result '
                                                    f'changed result {i} (they share memory)')
        assert r.flags.writeable, f'{what}: result {i} is read-only'
        r[...] = -7.0


@pytest.mark.parametrize('form', list(FORMS))
@pytest.mark.parametrize('kind', list(KINDS))
def test_writing_into_results_changes_nothing_else(kind, form, tmp_path):
    f, ref = FORMS[form]
    call, expected, inputs = KINDS[kind](f, ref, tmp_path)
    saved = [x.copy() for x in inputs]
    what = f'{kind} of {form}'
    first = call()
    _assert_same(first, expected, what)
    _write_into_each(first, what)
    for x, s in zip(inputs, saved):
        np.testing.assert_array_equal(x, s, err_msg=f'{what}: the caller\'s input changed')
    np.testing.assert_array_equal(C, C_SAVED, err_msg=f'{what}: the closed-over constant '
                                                      'changed')
    _assert_same(call(), expected, f'{what}, the next call')


def test_grad_of_same_array_twice_in_a_pytree_input_gives_two_arrays():
    x = np.ones(3)
    f = lambda p: cnp.sum(p['a'] * 2.0) + cnp.sum(p['b'])
    for g in (cr.grad(f), cr.jit(cr.grad(f))):
        got = g({'a': x, 'b': x})
        got['a'] *= 10.0
        np.testing.assert_array_equal(got['b'], np.ones(3))
        np.testing.assert_array_equal(got['a'], np.full(3, 20.0))
    ga, gb = cr.grad(lambda a, b: cnp.sum(a * b), argnums=(0, 1))(x, x)
    ga += 1.0
    np.testing.assert_array_equal(gb, np.ones(3))
    np.testing.assert_array_equal(x, np.ones(3))


# --- the reproductions from the issue -----------------------------------------------------------

def test_a_cached_constant_gradient_is_not_handed_out():
    x = np.ones((8, 4))
    w = np.ones((4, 3))
    b = np.zeros(3)
    step = cr.jit(cr.grad(lambda w, b: cnp.sum(x @ w + b), argnums=(0, 1)))
    gw, gb = step(w, b)
    gb *= 0.1
    gw[...] = 0.0
    np.testing.assert_array_equal(step(w, b)[1], [8.0, 8.0, 8.0])     # 8 rows of x
    np.testing.assert_array_equal(step(w, b)[0], np.full((4, 3), 8.0))


def test_jit_never_returns_its_argument():
    a = np.ones(3)
    assert cr.jit(lambda v: v + 0.0)(a) is not a
    assert cr.jit(lambda v: v)(a) is not a
    r = cr.jit(lambda v: cnp.reshape(v, (3, 1)))(a)
    assert not np.shares_memory(r, a)


def test_gradients_are_writable():
    g = cr.grad(lambda v: cnp.sum(v))(np.ones(3))
    g *= 0.5
    np.testing.assert_array_equal(g, [0.5, 0.5, 0.5])


def test_vjp_output_written_into_does_not_change_the_pullback():
    # exp's rule uses its output: the vjp keeps it, so the caller gets its own copy
    x = np.array([0.0, 1.0])
    out, f_vjp = cr.vjp(cnp.exp, x)
    out[...] = 0.0
    np.testing.assert_allclose(f_vjp(np.ones(2))[0], np.exp(x), rtol=1e-15)


def test_zero_d_and_python_float_results_keep_their_conventions():
    assert type(cr.grad(lambda x: x * x)(3.0)) is float
    g = cr.grad(lambda x: x * x)(np.array(3.0))
    assert isinstance(g, np.ndarray) and g.shape == () and g == 6.0
    g[()] = 1.0                                   # a 0-d array result is writable too
    v, g = cr.value_and_grad(lambda x: cnp.sum(x * x))(np.ones(2))
    assert np.ndim(v) == 0 and not isinstance(v, np.ndarray)    # a NumPy scalar, as before
    out = cr.jit(lambda x: cnp.sum(x))(np.ones(2))
    assert np.ndim(out) == 0 and out == 2.0


ZERO_STEPS = {
    'while_loop': lambda x: lax.while_loop(lambda c: cnp.sum(c) > 100.0, lambda c: c * 2.0, x),
    'fori_loop': lambda x: lax.fori_loop(3, 3, lambda i, c: c * 2.0, x),
    'scan': lambda x: lax.scan(lambda c, r: (c * r, r), x, np.ones((0, 3)))[0],
    'cond': lambda x: lax.cond(True, lambda c: c, lambda c: c * 2.0, x),
}


@pytest.mark.parametrize('name', list(ZERO_STEPS))
def test_control_flow_hands_out_copies_when_no_step_ran(name):
    # with no iteration the carry is the argument: the result must still be the caller's own
    x = np.ones(3)
    for run in (ZERO_STEPS[name], cr.jit(ZERO_STEPS[name])):
        r = run(x)
        np.testing.assert_array_equal(r, np.ones(3))
        r *= 5.0
        np.testing.assert_array_equal(x, np.ones(3), err_msg=name)


# --- what a call must not keep alive -----------------------------------------------------------

N = 1_000_000      # 8 MB per float64 array


def _sin_dot(x, w):
    return cnp.sum(cnp.sin(x) * w)


@cr.custom_vjp
def _custom_sin_dot(x, w):
    return cnp.sum(cnp.sin(x) * w)


_custom_sin_dot.defvjp(lambda x, w: (_custom_sin_dot(x, w), (x, w)),
                       lambda res, g: (g * cnp.cos(res[0]) * res[1], g * cnp.sin(res[0])))


# graph-carrying primitives: each kept its last call's arguments and cotangents before
WRAPPED = {
    'jit': cr.jit(_sin_dot),
    'custom_vjp': _custom_sin_dot,
    'checkpoint': cr.checkpoint(_sin_dot),
    'lax.cond': lambda x, w: lax.cond(True, _sin_dot, lambda x, w: cnp.sum(x * w), x, w),
}


def _released(make_call):
    """Run a backward pass on fresh 8 MB arrays; return weak references to its argument,
    its gradient and the other argument, taken after the caller dropped them."""
    refs = make_call()
    gc.collect()
    return [r for r in refs if r() is not None]


@pytest.mark.parametrize('name', list(WRAPPED))
def test_grad_through_a_graph_primitive_keeps_nothing_alive(name):
    fn = WRAPPED[name]

    def run():
        x, w = np.full(N, 0.5), np.full(N, 2.0)
        g = cr.grad(fn)(x, w)
        np.testing.assert_allclose(g[:3], 2.0 * np.cos(0.5), rtol=1e-12)
        return [weakref.ref(x), weakref.ref(w), weakref.ref(g)]
    assert not _released(run), f'grad through {name} kept its arrays alive'


@pytest.mark.parametrize('name', list(WRAPPED))
def test_tensor_backward_through_a_graph_primitive_keeps_nothing_alive(name):
    fn = WRAPPED[name]

    def run():
        x, w = np.full(N, 0.5), np.full(N, 2.0)
        tx = cr.tensor(x, requires_grad=True)
        tw = cr.tensor(w, requires_grad=True)
        fn(tx, tw).backward()
        np.testing.assert_allclose(tx.grad.numpy()[:3], 2.0 * np.cos(0.5), rtol=1e-12)
        np.testing.assert_allclose(tw.grad.numpy()[:3], np.sin(0.5), rtol=1e-12)
        return [weakref.ref(tx.data), weakref.ref(tw.data), weakref.ref(tx.grad.data),
                weakref.ref(tw.grad.data)]
    assert not _released(run), f'Tensor.backward through {name} kept its arrays alive'


def test_repeated_grad_of_jit_does_not_grow_memory():
    import tracemalloc
    f = cr.grad(cr.jit(_sin_dot))
    w = np.full(N, 2.0)
    f(np.full(N, 0.5), w)                       # trace and compile first
    tracemalloc.start()
    try:
        for _ in range(3):
            f(np.full(N, 0.5), w)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < N * 8 // 4, f'{current} bytes still allocated after the calls'
