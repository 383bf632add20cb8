"""Forward mode (`cr.jvp`, `cr.linearize`, `chainrule.interpreters.forward`): every public
function of the op table against finite differences to second order, the rule sources
(direct rules, `linear`/`elementwise` shortcuts, the double-VJP fallback), symbolic zeros,
pytrees, Tensor code and errors."""

import doctest

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import Primitive, registry
from chainrule.interpreters.forward import jvp_rule_kind
from chainrule.testing import check_grads
from op_table import C128, F32, F64, ROWS

DIFF = [(row, cid, shapes, kw) for row in ROWS if row.diff for cid, shapes, kw in row.cases()]
COMPLEX = [c for c in DIFF if c[0].complex]
F32_CASES = [c for c in DIFF if F32 in c[0].dtypes]


def _bind(row, args, kw):
    """`row.fn` as a function of its floating arguments (integer ones held fixed)."""
    pos = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind in 'fc']

    def f(*xs):
        call = list(args)
        for i, x in zip(pos, xs):
            call[i] = x
        return row.fn(*call, **kw)
    f.__name__ = row.name
    return f, [args[i] for i in pos]


@pytest.mark.parametrize('row,cid,shapes,kw', DIFF, ids=[c[1] for c in DIFF])
def test_op_table_forward_mode_matches_finite_differences(row, cid, shapes, kw):
    # jvp, and the jvp of the jvp (order 2), against central differences in float64
    f, xs = _bind(row, row.sample(shapes, F64, np.random.default_rng(0)), kw)
    check_grads(f, xs, order=min(row.order, 2), modes=('fwd',))


@pytest.mark.parametrize('row,cid,shapes,kw', F32_CASES, ids=[c[1] for c in F32_CASES])
def test_op_table_forward_mode_float32_keeps_dtype(row, cid, shapes, kw):
    # first order in float32 (looser tolerances); every tangent has its output's dtype
    # (float32, except where NumPy itself promotes, as np.cov does)
    f, xs = _bind(row, row.sample(shapes, F32, np.random.default_rng(2)), kw)
    check_grads(f, xs, order=1, modes=('fwd',))
    out, t = cr.jvp(f, tuple(xs), tuple(np.ones_like(x) for x in xs))
    for o, leaf in zip(cr.tree.tree_leaves(out), cr.tree.tree_leaves(t)):
        assert np.asarray(leaf).dtype == np.asarray(o).dtype, cid


@pytest.mark.parametrize('row,cid,shapes,kw', COMPLEX, ids=[c[1] for c in COMPLEX])
def test_op_table_forward_mode_complex(row, cid, shapes, kw):
    f, xs = _bind(row, row.sample(shapes, C128, np.random.default_rng(1)), kw)
    check_grads(f, xs, order=1, modes=('fwd', 'rev'))


def test_every_structural_and_elementwise_primitive_has_a_direct_jvp_and_batch_rule():
    import chainrule.ops.elementwise as ew
    import chainrule.ops.structural as st
    mine = [p for m in (ew, st) for p in vars(m).values() if isinstance(p, Primitive)]
    assert len(mine) > 60
    fallback = [p.name for p in mine if jvp_rule_kind(p) == 'double-vjp']
    assert fallback == [], f'these primitives rely on the double-VJP fallback: {fallback}'
    unbatched = [p.name for p in mine if p.batch is None]
    assert unbatched == [], f'these primitives have no batching rule: {unbatched}'


def test_rule_kinds_cover_the_registry():
    kinds = {name: jvp_rule_kind(p) for name, p in registry.items()}
    assert kinds['sin'] == 'elementwise' and kinds['reshape'] == 'linear'
    assert kinds['matmul'] == 'rules' and kinds['floor'] == 'constant'
    assert set(kinds.values()) <= {'rules', 'linear', 'elementwise', 'constant', 'double-vjp'}


def test_jvp_analytic_values():
    x = np.linspace(-1, 1, 5)
    t = np.arange(5.0)
    out, tan = cr.jvp(lambda x: cnp.sin(x) * cnp.exp(x), (x,), (t,))
    np.testing.assert_allclose(out, np.sin(x) * np.exp(x))
    np.testing.assert_allclose(tan, (np.cos(x) + np.sin(x)) * np.exp(x) * t, rtol=1e-13)
    # two arguments, product rule: d(xy) = y dx + x dy
    out, tan = cr.jvp(lambda a, b: a * b, (3.0, 4.0), (1.0, 2.0))
    assert out == 12.0 and tan == 4.0 + 6.0


def test_complex_abs_tangent_is_real_part_of_conj_z_dz_over_abs():
    z = np.array([1 + 2j, -0.5 + 0.25j])
    dz = np.array([0.3 - 1j, 2 + 1j])
    _, t = cr.jvp(cnp.abs, (z,), (dz,))
    np.testing.assert_allclose(t, (np.conj(z) * dz).real / np.abs(z), rtol=1e-13)
    h = 1e-7
    np.testing.assert_allclose(t, (np.abs(z + h * dz) - np.abs(z - h * dz)) / (2 * h), rtol=1e-6)


class _Counted:
    """Counts how often each JVP rule of a test primitive runs."""

    def __init__(self):
        self.calls = {'x': 0, 'y': 0}

    def rule(self, which, fn):
        def r(t, ans, x, y):
            self.calls[which] += 1
            return fn(t, x, y)
        return r


def test_symbolic_zeros_skip_the_rules_of_constant_arguments(make_primitive):
    c = _Counted()
    scale_p = make_primitive(
        'test_fwd_scaled_product', lambda x, y: x * y,
        vjp=[lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x],
        jvp=[c.rule('x', lambda t, x, y: t * y), c.rule('y', lambda t, x, y: t * x)])
    w = np.array([2.0, 3.0])
    _, t = cr.jvp(lambda x: scale_p(x, w), (np.ones(2),), (np.ones(2),))
    np.testing.assert_allclose(t, w)
    assert c.calls == {'x': 1, 'y': 0}
    # a value that does not depend on the input gets an instantiated zero tangent
    out, t = cr.jvp(lambda x: (x * 2, w * 3), (np.ones(2),), (np.ones(2),))
    np.testing.assert_allclose(t[1], np.zeros(2))


def test_double_vjp_fallback_matches_finite_differences_to_second_order(make_primitive):
    # a primitive with only a VJP: out = cumulative sum of x**3 along the last axis
    def vjp_rule(g, ans, x):
        rev = g[..., ::-1]
        return cnp.cumsum(rev, axis=-1)[..., ::-1] * 3 * x * x

    p = make_primitive('test_fwd_cubic_cumsum', lambda x: np.cumsum(x ** 3, axis=-1),
                       vjp=[vjp_rule])
    assert jvp_rule_kind(p) == 'double-vjp'
    x = np.random.default_rng(0).normal(size=(2, 4))
    check_grads(lambda x: p(x), (x,), order=2, modes=('fwd', 'rev'))
    _, t = cr.jvp(lambda x: p(x), (x,), (np.ones_like(x),))
    np.testing.assert_allclose(t, np.cumsum(3 * x ** 2, axis=-1), rtol=1e-12)


def test_double_vjp_fallback_for_multiple_results(make_primitive):
    def vjp_rule(g, ans, x):
        gs, gc = g
        return gs * cnp.cos(x) - gc * cnp.sin(x)

    p = make_primitive('test_fwd_sincos', lambda x: (np.sin(x), np.cos(x)), vjp=[vjp_rule],
                       multiple_results=True)
    x = np.array([0.3, 1.2])
    (s, c), (ts, tc) = cr.jvp(lambda x: p(x), (x,), (np.array([1.0, 2.0]),))
    np.testing.assert_allclose(ts, np.cos(x) * [1, 2], rtol=1e-13)
    np.testing.assert_allclose(tc, -np.sin(x) * [1, 2], rtol=1e-13)


def test_jvp_pytrees_aux_and_integer_inputs():
    params = {'w': np.array([1.0, 2.0]), 'b': 0.5}
    tangents = {'w': np.array([1.0, 0.0]), 'b': 1.0}

    def f(p, n):
        y = cnp.sum(p['w'] ** 2) + p['b'] * n
        return {'y': y, 'both': (y, 2 * p['w'])}, 'aux'

    out, tan, aux = cr.jvp(f, (params, 3), (tangents, 0), has_aux=True)
    assert aux == 'aux'
    assert out['y'] == pytest.approx(5.0 + 1.5)
    assert tan['y'] == pytest.approx(2 * 1.0 + 3 * 1.0)
    np.testing.assert_allclose(tan['both'][1], [2.0, 0.0])


def test_jvp_runs_tensor_code():
    def f(x):
        t = cr.Tensor(x)
        return (t * t).sum()
    out, tan = cr.jvp(f, (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    assert float(out) == 5.0 and float(tan) == 6.0


def test_nested_jvp_second_derivative_no_perturbation_confusion():
    # d/dx [x * d/dy (x y)] = 2x, all in forward mode
    def inner(x):
        return cr.jvp(lambda y: x * y, (2.0,), (1.0,))[1]
    _, t = cr.jvp(lambda x: x * inner(x), (3.0,), (1.0,))
    assert t == pytest.approx(6.0)
    # third derivative of sin by jvp of jvp of jvp
    d1 = lambda x: cr.jvp(cnp.sin, (x,), (1.0,))[1]            # noqa: E731
    d2 = lambda x: cr.jvp(d1, (x,), (1.0,))[1]                 # noqa: E731
    d3 = cr.jvp(d2, (0.4,), (1.0,))[1]
    assert d3 == pytest.approx(-np.cos(0.4), rel=1e-12)


def test_linearize():
    out, f_jvp = cr.linearize(lambda x: cnp.sin(x) * 2, np.array([0.0, 1.0]))
    np.testing.assert_allclose(out, 2 * np.sin([0.0, 1.0]))
    np.testing.assert_allclose(f_jvp(np.array([1.0, 1.0])), 2 * np.cos([0.0, 1.0]))


def test_jvp_errors():
    with pytest.raises(cr.ShapeError, match=r'tangent 0 has shape \(3,\).*\(2,\)'):
        cr.jvp(cnp.sin, (np.ones(2),), (np.ones(3),))
    with pytest.raises(TypeError, match='tuples'):
        cr.jvp(cnp.sin, np.ones(2), np.ones(2))
    with pytest.raises(cr.ChainruleError, match='1 primal.*2 tangent'):
        cr.jvp(cnp.sin, (np.ones(2),), (np.ones(2), np.ones(2)))


def test_float32_tangents_stay_float32():
    x = np.ones(3, np.float32)
    out, t = cr.jvp(lambda x: cnp.tanh(x) * 2.0, (x,), (x,))
    assert out.dtype == np.float32 and t.dtype == np.float32


def test_transforms_docstring_examples():
    import chainrule.transforms as tr
    res = doctest.testmod(tr, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 5 and res.failed == 0
