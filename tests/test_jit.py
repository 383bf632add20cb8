"""Tests of staging, `jit`, the graph passes and code generation.

`jit(f)` must equal `f` and `jit(grad(f))` must equal `grad(f)` for every row of the op table;
`jit` composes with `grad`, `jvp` and `vmap` in every position; printed graphs are checked
against golden text; the cache traces once per signature; the passes remove what they claim
to; buffer reuse never changes a result.
"""

import logging
import os
import sys

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import ConcretizationError
from chainrule.interpreters.staging import (
    GraphTypeError, ShapedArray, TracerBoolError, Var, typecheck)
from chainrule.jit import codegen, optimize

sys.path.insert(0, os.path.dirname(__file__))
try:
    from op_table import ROWS
except ImportError:     # pragma: no cover - the op table lives with the ops tests
    ROWS = []

# one case per row, float64
FIRST = {}
for _row in ROWS:
    for _cid, _shapes, _kw in _row.cases():
        FIRST.setdefault(_cid.split('[')[0] + str(id(_row)), (_row, _cid, _shapes, _kw))
FIRST = list(FIRST.values())


def _args(row, shapes):
    return row.sample(shapes, np.float64, np.random.default_rng(0))


def _close(got, want, rtol=1e-10):
    if isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, rtol)
        return
    want = np.asarray(want)
    got = np.asarray(got)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype,
                                                                  want.shape, want.dtype)
    if want.dtype.kind in 'fc':
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(got, want)


# functions of chainrule.numpy whose result's shape or dtype depends on the values: jit cannot
# stage them (sort, argmax, searchsorted, ... are primitives: chainrule.ops.sorting)
UNSTAGEABLE = {'argwhere', 'nonzero', 'flatnonzero', 'unique', 'bincount', 'histogram',
               'real_if_close', 'where_nonzero'}


def _stage_or_skip(fn, name):
    """Run `fn`; the functions in UNSTAGEABLE must instead raise a ConcretizationError that
    says why (their result's shape or dtype depends on the values)."""
    if name in UNSTAGEABLE:
        with pytest.raises(ConcretizationError, match='depend'):
            fn()
        return _UNSTAGED
    try:
        return fn()
    except ConcretizationError as e:
        raise AssertionError(
            f'{name} cannot be staged by jit (it reads concrete values). If that is by '
            'design, add it to UNSTAGEABLE in tests/test_jit.py') from e


_UNSTAGED = object()


# --- the op table ---------------------------------------------------------------------------------

@pytest.mark.parametrize('row,cid,shapes,kw', FIRST, ids=[c[1] for c in FIRST])
def test_jit_equals_eager_for_every_op(row, cid, shapes, kw):
    args = _args(row, shapes)
    want = row.fn(*args, **kw)
    got = _stage_or_skip(lambda: cr.jit(lambda *a: row.fn(*a, **kw))(*args), row.name)
    if got is not _UNSTAGED:
        _close(got, want)


def _float_pos(args):
    return tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == 'f')


# differentiable rows with a floating argument to differentiate
DIFF_FLOAT = [c for c in FIRST if c[0].diff and _float_pos(_args(c[0], c[2]))]


@pytest.mark.parametrize('row,cid,shapes,kw', DIFF_FLOAT, ids=[c[1] for c in DIFF_FLOAT])
def test_jit_of_grad_equals_grad_for_every_op(row, cid, shapes, kw):
    args = _args(row, shapes)
    pos = _float_pos(args)

    def loss(*a):
        out = row.fn(*a, **kw)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return sum(cnp.sum(cnp.sin(o)) for o in outs)

    want = cr.grad(loss, argnums=pos)(*args)
    got = _stage_or_skip(lambda: cr.jit(cr.grad(loss, argnums=pos))(*args), row.name)
    if got is not _UNSTAGED:
        _close(got, want, 1e-9)
    # and the other way round: differentiating the compiled program
    got2 = _stage_or_skip(lambda: cr.grad(cr.jit(loss), argnums=pos)(*args), row.name)
    if got2 is not _UNSTAGED:
        _close(got2, want, 1e-9)


def test_op_table_is_exercised():
    assert len(FIRST) > 50


# --- composition: jit at every position ---------------------------------------------------------

def _f(x):
    return cnp.sum(cnp.tanh(x) * cnp.sin(x) ** 2 + cnp.exp(-x * x))


X = np.array([0.3, -1.2, 0.7])


def test_composition_with_jit_everywhere():
    g = cr.grad(_f)(X)
    hv = cr.grad(lambda x: cnp.sum(cr.grad(_f)(x)))(X)
    jit, grad = cr.jit, cr.grad
    for name, fn in {
        'jit(grad)': jit(grad(_f)),
        'grad(jit)': grad(jit(_f)),
        'jit(grad(jit))': jit(grad(jit(_f))),
        'jit(jit(grad))': jit(jit(grad(_f))),
    }.items():
        np.testing.assert_allclose(fn(X), g, rtol=1e-12, err_msg=name)
    for name, fn in {
        'grad(grad(jit))': grad(lambda x: cnp.sum(grad(jit(_f))(x))),
        'grad(jit(grad))': grad(lambda x: cnp.sum(jit(grad(_f))(x))),
        'jit(grad(grad))': jit(grad(lambda x: cnp.sum(grad(_f)(x)))),
        'jit(grad(jit(grad)))': jit(grad(lambda x: cnp.sum(jit(grad(_f))(x)))),
    }.items():
        np.testing.assert_allclose(fn(X), hv, rtol=1e-12, err_msg=name)


def test_composition_with_jvp_and_vmap():
    Xs = np.random.default_rng(0).standard_normal((4, 3))
    want = np.array([_f(x) for x in Xs])
    np.testing.assert_allclose(cr.vmap(cr.jit(_f))(Xs), want, rtol=1e-12)
    np.testing.assert_allclose(cr.jit(cr.vmap(_f))(Xs), want, rtol=1e-12)
    gw = np.array([cr.grad(_f)(x) for x in Xs])
    np.testing.assert_allclose(cr.vmap(cr.grad(cr.jit(_f)))(Xs), gw, rtol=1e-12)
    np.testing.assert_allclose(cr.jit(cr.vmap(cr.grad(_f)))(Xs), gw, rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(cr.jit(cr.grad(_f)))(Xs), gw, rtol=1e-12)
    t = np.array([1.0, -0.5, 2.0])
    y, yt = cr.jvp(cr.jit(_f), (X,), (t,))
    assert y == pytest.approx(_f(X)) and yt == pytest.approx(cr.grad(_f)(X) @ t)
    y2, yt2 = cr.jit(lambda x, t: cr.jvp(_f, (x,), (t,)))(X, t)
    assert y2 == pytest.approx(y) and yt2 == pytest.approx(yt)
    # forward over reverse through a compiled gradient: a Hessian-vector product
    hvp = cr.jvp(cr.jit(cr.grad(_f)), (X,), (t,))[1]
    hvp_ref = cr.jvp(cr.grad(_f), (X,), (t,))[1]
    np.testing.assert_allclose(hvp, hvp_ref, rtol=1e-10)


from test_jacobians import FUNCS as _COMPOSITION_FUNCS  # noqa: E402  (the composition test's functions)


@pytest.mark.parametrize('f', _COMPOSITION_FUNCS, ids=[f.__name__ for f in _COMPOSITION_FUNCS])
def test_transforms_composition_test_with_jit_at_every_position(f):
    """The composition test of the transforms issue (tests/test_jacobians.py), with `jit`
    inserted at every position: all ways of computing the gradient and the Hessian agree."""
    x = np.random.default_rng(7).uniform(0.2, 1.0, size=5)
    n = len(x)
    jit, grad = cr.jit, cr.grad
    if f.__name__ == 'f_branch_on_value':   # a Python `if` on a value: cannot be staged
        with pytest.raises(TracerBoolError):
            jit(f)(x)
        return
    G = grad(f)(x)
    H = cr.hessian(f)(x)
    eye = np.eye(n)
    grads = {
        'jit(grad)': jit(grad(f))(x), 'grad(jit)': grad(jit(f))(x),
        'jit(grad(jit))': jit(grad(jit(f)))(x),
        'vjp(jit)': cr.vjp(jit(f), x)[1](np.ones(()))[0],
        'jvp(jit) rows': np.array([cr.jvp(jit(f), (x,), (eye[i],))[1] for i in range(n)]),
    }
    for name, g in grads.items():
        np.testing.assert_allclose(g, G, rtol=1e-11, atol=1e-13, err_msg=name)
    hessians = {
        'jit(hessian)': jit(cr.hessian(f))(x), 'hessian(jit)': cr.hessian(jit(f))(x),
        'jacfwd(jit(grad))': cr.jacfwd(jit(grad(f)))(x),
        'jacrev(jit(grad))': cr.jacrev(jit(grad(f)))(x),
        'jit(jacrev(jit(grad)))': jit(cr.jacrev(jit(grad(f))))(x),
        'grad(jit(grad)) rows': np.array([grad(lambda z: jit(grad(f))(z)[i])(x)
                                          for i in range(n)]),
        'jvp(jit(grad))': np.array([cr.jvp(jit(grad(f)), (x,), (eye[i],))[1]
                                    for i in range(n)]),
        'jit(vmap(jvp(grad)))': jit(cr.vmap(lambda v: cr.jvp(grad(f), (x,), (v,))[1]))(eye),
        'vmap(jit(jvp(grad)))': cr.vmap(jit(lambda v: cr.jvp(grad(f), (x,), (v,))[1]))(eye),
    }
    for name, h in hessians.items():
        np.testing.assert_allclose(h, H, rtol=1e-10, atol=1e-12, err_msg=name)
    xs = np.random.default_rng(8).uniform(0.2, 1.0, size=(4, n))
    per = np.array([grad(f)(z) for z in xs])
    for name, fn in {'vmap(jit(grad))': cr.vmap(jit(grad(f))),
                     'jit(vmap(grad))': jit(cr.vmap(grad(f))),
                     'vmap(grad(jit))': cr.vmap(grad(jit(f)))}.items():
        np.testing.assert_allclose(fn(xs), per, rtol=1e-11, atol=1e-13, err_msg=name)


def test_jit_closure_over_an_outer_grad_tracer_is_differentiated():
    # d/dy [jit(x -> x * y)(y)] = d/dy y**2 = 2y: the captured y must stay differentiable
    assert cr.grad(lambda y: cr.jit(lambda x: x * y)(y))(3.0) == pytest.approx(6.0)


def test_jit_on_tensors_records_one_node_and_backward_works():
    w = cr.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    loss = cr.jit(_f)(w)
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), cr.grad(_f)(w.data), rtol=1e-12)


def test_pytrees_in_and_out():
    def f(params, x):
        h = cnp.tanh(x @ params['w'] + params['b'])
        return {'out': h, 'norm': cnp.sum(h * h)}, [x.shape[0]]

    p = {'w': np.ones((3, 2)) * 0.1, 'b': np.array([0.5, -0.5])}
    x = np.arange(6.0).reshape(2, 3)
    got, want = cr.jit(f)(p, x), f(p, x)
    np.testing.assert_allclose(got[0]['out'], want[0]['out'])
    assert got[0]['norm'] == pytest.approx(want[0]['norm'])
    assert got[1] == [2] or list(np.asarray(got[1])) == [2]


# --- golden IR ----------------------------------------------------------------------------------

def test_printed_graph_of_a_small_function():
    g = cr.make_graph(lambda x, y: cnp.sin(x) * y + 2.0)(np.ones(3), np.ones(3))
    assert str(g) == '\n'.join([
        '{ lambda ; a:f64[3] b:f64[3]. let',
        '    c:f64[3] = sin a',
        '    d:f64[3] = mul c b',
        '    e:f64[3] = add d 2.0',
        '  in (e) }'])


def test_printed_graph_with_broadcast_params_and_constants():
    w = np.arange(6.0).reshape(2, 3)
    g = cr.make_graph(lambda x: cnp.sum(x @ w, axis=0))(np.ones((4, 2), np.float32))
    assert str(g) == '\n'.join([
        '{ lambda a:f64[2,3] ; b:f32[4,2]. let',
        '    c:f64[4,2] = astype[dtype=float64] b',
        '    d:f64[4,3] = matmul c a',
        '    e:f64[3] = sum[axis=(0,) keepdims=False] d',
        '  in (e) }'])


def test_printed_gradient_graph_after_optimisation():
    # d/dx sum(x * x) = 2x: the backward pass's broadcast of the seed 1.0 and the multiply by
    # ones are simplified away, and the two products g*x + g*x become one equation each
    graph = cr.jit(cr.grad(lambda x: cnp.sum(x * x))).graph(np.ones(3))
    assert str(graph) == '\n'.join([
        '{ lambda ; a:f64[3]. let',
        '    b:f64[3] = add a a',
        '  in (b) }'])


def test_typecheck_accepts_staged_graphs_and_names_a_bad_equation():
    g = cr.make_graph(cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2)))(np.ones((2, 3)))
    assert typecheck(g)
    assert typecheck(optimize(g))
    g.eqns[1].outvars[0].aval = ShapedArray((5,), np.float64)
    with pytest.raises(GraphTypeError, match=r'equation 1 \('):
        typecheck(g)


def test_typecheck_rejects_use_before_definition():
    g = cr.make_graph(lambda x: cnp.exp(cnp.sin(x)))(np.ones(2))
    g.eqns.reverse()
    with pytest.raises(GraphTypeError, match='used before it is defined'):
        typecheck(g)


# --- control flow and errors ----------------------------------------------------------------------

def test_python_if_on_a_traced_value_explains_what_to_do():
    def f(x):
        if cnp.sum(x) > 0:
            return x
        return -x
    with pytest.raises(TracerBoolError, match=r'static_argnums.*chainrule\.lax'):
        cr.jit(f)(np.ones(2))
    with pytest.raises(TracerBoolError):
        cr.jit(cr.grad(lambda x: cnp.sum(f(x))))(np.ones(2))


def test_numpy_function_on_a_staged_value_says_use_cnp():
    with pytest.raises(TracerBoolError, match='chainrule.numpy'):
        cr.jit(lambda x: np.sin(x))(np.ones(2))


def test_static_argnums_allow_python_control_flow():
    def f(x, n, mode):
        for _ in range(n):
            x = cnp.sin(x) if mode == 'sin' else cnp.cos(x)
        return x
    j = cr.jit(f, static_argnums=(1, 2))
    x = np.array([0.1, 0.2])
    np.testing.assert_allclose(j(x, 3, 'sin'), f(x, 3, 'sin'))
    np.testing.assert_allclose(j(x, 2, 'cos'), f(x, 2, 'cos'))
    j(x, 3, 'sin')
    assert j.cache_info() == (1, 2, 2)


def test_cache_traces_once_per_signature_and_logs_retraces(caplog):
    calls = []

    def f(x):
        calls.append(1)
        return x * 2.0

    j = cr.jit(f)
    with caplog.at_level(logging.INFO, logger='chainrule.jit'):
        for _ in range(3):
            j(np.ones(3))
        assert len(calls) == 1 and not caplog.records
        j(np.ones(4))                       # new shape: retrace
        j(np.ones(3, np.float32))           # new dtype: retrace
        j(np.ones(4))
    assert len(calls) == 3
    info = j.cache_info()
    assert (info.hits, info.misses, info.size) == (3, 3, 3)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 2 and 'retracing' in msgs[0] and 'f64[4]' in msgs[0]
    assert 'f32[3]' in msgs[1] and 'f64[3]' in msgs[1]   # names the earlier signature too


# --- passes --------------------------------------------------------------------------------------

def _prims(graph):
    return [e.prim.name for e in graph.eqns]


def test_dead_code_and_common_subexpressions_are_removed():
    def f(x):
        unused = cnp.exp(x) * 3.0          # dead
        del unused
        return cnp.sin(x) + cnp.sin(x)     # one sin
    g = cr.jit(f).graph(np.ones(3))
    assert _prims(g) == ['sin', 'add']


def test_constant_folding():
    # tracing never records an equation on constants alone (bind runs those eagerly), but
    # graphs built or loaded otherwise can have them: `exp(c)` and `sum(c)` fold into constants
    from chainrule.interpreters.staging import Eqn, Graph, raise_to_aval
    from chainrule.ops.elementwise import add_p, exp_p, mul_p
    from chainrule.ops.structural import sum_p
    c = np.arange(3.0)
    cv, x = Var(raise_to_aval(c)), Var(ShapedArray((3,), np.float64))
    e1, s1 = Var(cv.aval), Var(ShapedArray((), np.float64))
    m, out = Var(cv.aval), Var(cv.aval)
    g = Graph([cv], [c], [x], [Eqn(exp_p, [cv], {}, [e1]),
                               Eqn(sum_p, [cv], {'axis': (0,), 'keepdims': False}, [s1]),
                               Eqn(mul_p, [x, e1], {}, [m]), Eqn(add_p, [m, s1], {}, [out])],
              [out])
    opt = optimize(g)
    assert _prims(opt) == ['mul', 'add']
    assert typecheck(opt)
    np.testing.assert_allclose(opt(np.ones(3))[0], np.exp(c) + 3.0)


def test_double_transpose_and_reshape_and_neg_are_simplified():
    g = cr.jit(lambda x: -(-(x.T.T.reshape(6).reshape(2, 3)))).graph(np.ones((2, 3)))
    assert g.eqns == [] and g.outvars[0] is g.invars[0]


def test_broadcast_then_sum_becomes_a_multiply():
    # the gradient of a bias that was broadcast over a batch: sum(broadcast(g))
    def loss(b, x):
        return cnp.sum(x + b)
    g = cr.jit(cr.grad(loss)).graph(np.ones(3), np.ones((5, 3)))
    assert 'sum' not in _prims(g) and 'broadcast_to' not in _prims(g)
    np.testing.assert_allclose(cr.jit(cr.grad(loss))(np.ones(3), np.ones((5, 3))), 5.0)


def test_buffer_reuse_is_used_and_never_clobbers_a_live_view():
    def f(x):
        a = cnp.exp(x)                 # a fresh buffer
        v = a.reshape(2, 3)            # a view of it, still used below
        b = cnp.sin(a)                 # may not write into a: v is alive
        return cnp.cos(b) * 2.0, v     # cos(b) may write into b
    x = np.linspace(0, 1, 6)
    j = cr.jit(f)
    src = j.source(x)
    assert 'd = np.sin(b)\n' in src and 'np.cos(d, out=d)' in src
    for got, want in zip(j(x), f(x)):
        np.testing.assert_allclose(got, want, rtol=1e-15)


def test_source_is_straight_line_numpy_naming_the_primitives():
    src = cr.jit(cr.grad(lambda x: cnp.sum(cnp.tanh(x) ** 2))).source(np.ones(3))
    assert src.startswith('def jitted(a):')
    assert 'np.tanh(a)' in src and '# ' in src and 'tanh' in src
    assert 'bind' not in src and 'for ' not in src and 'if ' not in src


def test_codegen_output_runs_as_python():
    g = cr.make_graph(lambda x: cnp.maximum(x, 0.0) @ x.T)(np.ones((2, 3)))
    src, glob = codegen(g)
    exec(src, glob)
    x = np.array([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]])
    np.testing.assert_allclose(glob['jitted'](x)[0], np.maximum(x, 0) @ x.T)


def test_float32_stays_float32_through_python_scalars():
    x = np.ones(3, np.float32)
    assert cr.jit(lambda x: x * 2.0 + 1)(x).dtype == np.float32
    assert cr.jit(cr.grad(lambda x: cnp.sum(x * x)))(x).dtype == np.float32


def test_var_names_go_past_z():
    def f(x):
        for _ in range(40):
            x = cnp.sin(x)
        return x
    g = cr.make_graph(f)(np.ones(2))
    assert 'ba:f64[2] = sin' in str(g)
    assert isinstance(g.eqns[-1].outvars[0], Var)
    np.testing.assert_allclose(cr.jit(f)(np.ones(2)), f(np.ones(2)))


# --- the numba backend ----------------------------------------------------------------------------

def _chain(x):
    for _ in range(6):
        x = cnp.sin(x) * 1.5 + cnp.tanh(x) - x * x * 0.1
    return cnp.sum(x)


def test_numba_backend_equals_numpy_backend_or_falls_back():
    x = np.linspace(-1, 1, 1000)
    want = cr.grad(_chain)(x)
    got = cr.jit(cr.grad(_chain), backend='numba')(x)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_numba_backend_falls_back_silently_without_numba(monkeypatch):
    jit_module = sys.modules['chainrule.jit.numba_backend']     # (cr.jit is the function)
    monkeypatch.setattr(jit_module, '_numba', False)     # as if `import numba` had failed
    x = np.linspace(-1, 1, 50)
    j = cr.jit(cr.grad(_chain), backend='numba')
    np.testing.assert_allclose(j(x), cr.grad(_chain)(x), rtol=1e-12)
    assert 'numba' not in j.source(x) and 'np.sin(a)' in j.source(x)


def test_numba_backend_fuses_the_chain_into_one_kernel():
    pytest.importorskip('numba')
    x = np.linspace(-1, 1, 50)
    src = cr.jit(cr.grad(_chain), backend='numba').source(x)
    # one loop with vectorised sin (chainrule.jit.vecmath), and its twin with libm's sin, run
    # only when an argument is beyond vecmath's range
    assert src.count('@numba.njit') == 2 and 'vm_sin64(' in src and 'math.sin' in src
    assert 'def _kernel0_libm(' in src


def test_abstract_eval_tells_int_and_float_literals_apart():
    from chainrule.interpreters.staging import Literal, abstract_eval
    from chainrule.ops.elementwise import mul_p
    i64 = ShapedArray((3,), np.int64)
    assert abstract_eval(mul_p, [i64, Literal(2)], {}) == [ShapedArray((3,), np.int64)]
    assert abstract_eval(mul_p, [i64, Literal(2.0)], {}) == [ShapedArray((3,), np.float64)]


def test_numba_backend_with_broadcast_rows_columns_comparisons_and_where():
    def f(x, b, c):
        y = cnp.where(x > 0, x * b, -x) + c * 2.0        # b: a row, c: a column
        return cnp.sum(cnp.maximum(y, 0.1) * cnp.tanh(y))
    rng = np.random.default_rng(3)
    x, b, c = rng.standard_normal((5, 4)), rng.standard_normal(4), rng.standard_normal((5, 1))
    want = cr.grad(f, argnums=(0, 1, 2))(x, b, c)
    got = cr.jit(cr.grad(f, argnums=(0, 1, 2)), backend='numba')(x, b, c)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_bcast_index_reads_rows_and_columns_without_copies():
    from chainrule.jit import _bcast_index
    assert _bcast_index((4,), (5, 4)) == ('mod', 4)
    assert _bcast_index((1, 4), (5, 4)) == ('mod', 4)
    assert _bcast_index((5, 1), (5, 4)) == ('div', 4)
    assert _bcast_index((2, 1, 3), (2, 4, 3)) is None     # a middle axis: copied instead


def test_casts_from_masks_happen_inside_the_ufuncs_that_use_them():
    # maximum's backward pass builds float masks from comparisons; the generated code casts
    # inside the ufunc (dtype=) instead of materialising each mask
    f = lambda x: cnp.sum(cnp.maximum(x, 0.0) * x)
    x = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]], np.float32)
    j = cr.jit(cr.grad(f))
    assert 'dtype=np.float32' in j.source(x)
    got = j(x)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, cr.grad(f)(x))


_A = np.random.default_rng(0).standard_normal((4, 4))
_SPD = _A @ _A.T + 4 * np.eye(4)
MATRIX_FUNCS = {
    'inv': (lambda a: cnp.sum(cnp.linalg.inv(a)), _A),
    'det': (lambda a: cnp.linalg.det(a), _A),
    'cholesky': (lambda a: cnp.sum(cnp.linalg.cholesky(a)), _SPD),
    'eigh': (lambda a: cnp.sum(cnp.linalg.eigh(a)[0] ** 2), _SPD),
    'solve': (lambda a: cnp.sum(cnp.linalg.solve(a, np.ones(4))), _A),
    'svd': (lambda a: cnp.sum(cnp.linalg.svd(a)[1]), _A),
    'slogdet': (lambda a: cnp.linalg.slogdet(a)[1], _A),
    'fft': (lambda a: cnp.sum(cnp.abs(cnp.fft.fft(a))), _A),
    'einsum': (lambda a: cnp.einsum('ij,jk->', a, a), _A),
}


@pytest.mark.parametrize('name', sorted(MATRIX_FUNCS))
def test_jit_of_matrix_primitives_and_their_gradients(name):
    # primitives whose abstract evaluation on zero matrices fails (singular) retry on identities
    f, a = MATRIX_FUNCS[name]
    g = cr.grad(f)(a)
    assert cr.jit(f)(a) == pytest.approx(f(a), rel=1e-12)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(a), g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cr.grad(cr.jit(f))(a), g, rtol=1e-10, atol=1e-12)


def test_constant_filled_arrays_from_the_backward_pass_become_scalars():
    # d/dx sum(x**3 - 0.5 x) = 3x^2 - 0.5: the backward pass's broadcast constants (the seed,
    # -0.5 everywhere) end up as scalar literals, not arrays held by the program
    f = lambda x: cnp.sum(x ** 3 - x * 0.5)
    x = np.linspace(-1, 1, 5)
    g = cr.jit(cr.grad(f)).graph(x)
    assert g.constvars == []
    assert str(g) == '\n'.join([
        '{ lambda ; a:f64[5]. let',
        '    b:f64[5] = mul a a',
        '    c:f64[5] = mul 3 b',
        '    d:f64[5] = add -0.5 c',
        '  in (d) }'])
    np.testing.assert_allclose(cr.jit(cr.grad(f))(x), 3 * x ** 2 - 0.5, rtol=1e-15)


# --- random programs: the passes and the code generator never change a result ------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_UNARY = [cnp.sin, cnp.tanh, cnp.exp, lambda v: -v, lambda v: v * v, lambda v: v.T.T,
          lambda v: cnp.maximum(v, 0.1), lambda v: v * 1.0 + 0.0, lambda v: cnp.sum(v, axis=0)
          * np.ones((2, 3))]
_BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b,
           lambda a, b: a * cnp.sum(b, axis=1, keepdims=True), lambda a, b: cnp.where(a > b, a, b)]


_NUMBA_EXAMPLES = [0]


@settings(max_examples=40, deadline=None)
@pytest.mark.filterwarnings('ignore::RuntimeWarning')    # exp(exp(...)) may overflow: both agree
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 8), st.integers(0, 3), st.integers(0, 3)),
                min_size=1, max_size=12))
def test_random_programs_jit_and_jit_grad_equal_eager(steps):
    # a random program over a growing list of values; each step applies a unary op to one value
    # or a binary op to two, so values are reused (fan-out) and some are dead
    def f(x, y):
        vals = [x, y]
        for unary, k, i, j in steps:
            a, b = vals[-1 - i % len(vals)], vals[-1 - j % len(vals)]
            vals.append(_UNARY[k % len(_UNARY)](a) if unary else _BINARY[k % len(_BINARY)](a, b))
        return cnp.sum(cnp.tanh(vals[-1]))
    rng = np.random.default_rng(len(steps))
    x, y = rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 3))
    np.testing.assert_allclose(cr.jit(f)(x, y), f(x, y), rtol=1e-12)
    want = cr.grad(f, argnums=(0, 1))(x, y)
    # numba compiles each new program (~0.3 s), so only the first few examples use it
    _NUMBA_EXAMPLES[0] += 1
    for backend in ('numpy', 'numba') if _NUMBA_EXAMPLES[0] <= 4 else ('numpy',):
        got = cr.jit(cr.grad(f, argnums=(0, 1)), backend=backend)(x, y)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_closed_over_parameters_are_captured_by_reference_and_reached_by_backward():
    from chainrule import nn
    m = nn.Linear(3, 2, rng=0)
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    f = cr.jit(lambda x: (m(x) ** 2).sum())
    # reference computed by hand: d/dW sum((x W^T + b)^2) = 2 (x W^T + b)^T x
    W, b = m.weight.numpy().copy(), m.bias.numpy().copy()
    r = x @ W.T + b
    out = f(x)
    np.testing.assert_allclose(out.item(), (r ** 2).sum(), rtol=1e-5)
    out.backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), 2 * r.T @ x, rtol=1e-5)
    np.testing.assert_allclose(m.bias.grad.numpy(), 2 * r.sum(0), rtol=1e-5)
    # a second call reuses the trace and sees the parameters' in-place update (by reference)
    with cr.no_grad():
        m.weight -= 1.0
    r2 = x @ (W - 1.0).T + b
    np.testing.assert_allclose(f(x).item(), (r2 ** 2).sum(), rtol=1e-5)
    assert f.cache_info().hits >= 1
    # the functional style passes the module as an argument, and gets its gradients
    g = cr.jit(cr.grad(lambda model, x: model(x).sum()))(m, np.ones((4, 3), np.float32))
    np.testing.assert_allclose(np.asarray(g.weight), np.full((2, 3), 4.0), rtol=1e-6)


def test_python_number_arguments_stay_weak_as_in_eager_numpy():
    # NumPy 2: float32 array * 2.0 stays float32, int32 array * 2.0 becomes float64
    for arr in (np.ones(3, np.float32), np.ones(3, np.int32), np.ones(3, np.float64)):
        for s in (2.0, 2, True):
            got = cr.jit(lambda a, s: a * s + s)(arr, s)
            want = arr * s + s
            assert got.dtype == want.dtype, (arr.dtype, type(s))
            np.testing.assert_array_equal(got, want)
    g = cr.jit(cr.grad(lambda a, s: cnp.sum(a * s)))(np.ones(3, np.float32), 2.0)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.full(3, 2.0, np.float32))


def test_a_trace_made_under_no_grad_is_not_reused_when_gradients_are_wanted():
    from chainrule import nn
    m = nn.Linear(3, 2, rng=0)
    x = np.ones((4, 3), np.float32)
    f = cr.jit(lambda x: m(x).sum())
    with cr.no_grad():
        assert not f(x).requires_grad
        f(x)
    assert f.cache_info().hits == 1
    out = f(x)                          # with grad on, a trace of its own, recording backward
    assert out.requires_grad
    out.backward()
    np.testing.assert_allclose(m.weight.grad.numpy(), np.full((2, 3), 4.0), rtol=1e-6)
    # a captured Tensor whose data changes dtype is traced again, not run with stale avals
    # (through the functional linear, which promotes: the module refuses mixed dtypes)
    g = cr.jit(lambda x: nn.functional.linear(x, m.weight, m.bias).sum())
    with cr.no_grad():
        assert g(x).dtype == np.float32
        m.weight.data = np.ones((2, 3), np.float64)
        assert g(x).dtype == np.float64
