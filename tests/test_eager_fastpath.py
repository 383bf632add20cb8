"""The fast path of `Tensor`'s `+ - * /` (`chainrule._eager_ops`) against the general path.

The operators skip broadcasting, promotion and `bind` when both operands are Tensors of one
eager trace holding arrays of one shape and dtype, or one is a floating Tensor and the other a
Python int or float. Each test here runs the same inputs through the operator and through the
general path (`chainrule.ops.add`/`sub`/`mul`/`div`, which always dispatch through `bind` and
`EagerTrace.process`), checks which path each took (by counting `EagerTrace.process` calls),
and compares values, dtypes, gradients and recorded nodes -- and, where PyTorch is installed,
values and gradients with PyTorch's on the same inputs. The corners that must leave the fast
path (broadcasting, mixed dtypes, NumPy scalars, complex and bool numbers, a capturing `jit`,
`debug_nans`) are driven too, as are the tape's checks it must keep (versions, hooks,
`no_grad`, `create_graph`, transforms over closed-over Tensors).
"""

import operator

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import chainrule as cr
from chainrule import ops
from chainrule.core import GradientError
from chainrule.tensor import EagerTrace

OPS = {'+': (operator.add, ops.add), '-': (operator.sub, ops.sub),
       '*': (operator.mul, ops.mul), '/': (operator.truediv, ops.div)}


class _Processed:
    """Counts `EagerTrace.process` calls (the general path) while installed."""

    def __init__(self, monkeypatch):
        self.n = 0
        orig = EagerTrace.process

        def process(trace, prim, args, params):
            self.n += 1
            return orig(trace, prim, args, params)
        monkeypatch.setattr(EagerTrace, 'process', process)


def _pair(x, y, gx, gy):
    return cr.tensor(x, requires_grad=gx), cr.tensor(y, requires_grad=gy)


def _grads(op, x, y, gx, gy, w, count):
    """Forward value, the number of `EagerTrace.process` calls `op` made, and the gradients
    of `sum(real(op(a, b) * w))` for fresh leaves `a`, `b`."""
    a, b = _pair(x, y, gx, gy)
    n = count.n
    out = op(a, b)
    n = count.n - n
    if gx or gy:
        (out * cr.tensor(w)).real.sum().backward()
    return out, n, (a.grad.data if a.grad is not None else None,
                    b.grad.data if b.grad is not None else None)


def _same(u, v):
    if u is None or v is None:
        assert u is None and v is None
        return
    assert np.asarray(u).dtype == np.asarray(v).dtype
    np.testing.assert_array_equal(u, v)


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
floats = st.floats(-3, 3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(OPS)), shape=shapes,
       dtype=st.sampled_from([np.float64, np.float32, np.complex128]),
       gx=st.booleans(), gy=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_fast_and_general_paths_agree_on_tensor_pairs(name, shape, dtype, gx, gy, seed):
    rng = np.random.default_rng(seed)

    def draw():
        v = rng.uniform(0.5, 2.0, shape)
        if np.dtype(dtype).kind == 'c':
            v = v + 1j * rng.uniform(0.5, 2.0, shape)
        return np.asarray(v, dtype)
    x, y, w = draw(), draw(), draw()
    fast_op, general = OPS[name]
    with pytest.MonkeyPatch.context() as mp:
        count = _Processed(mp)
        out_f, fast_calls, g_f = _grads(fast_op, x, y, gx, gy, w, count)
        out_g, general_calls, g_g = _grads(general, x, y, gx, gy, w, count)
    assert (fast_calls, general_calls) == (0, 1)     # each took the path it was meant to
    _same(out_f.data, out_g.data)
    assert out_f.requires_grad == out_g.requires_grad == (gx or gy)
    for u, v in zip(g_f, g_g):
        _same(u, v)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(OPS)), c=st.one_of(st.integers(-3, 3).filter(bool),
                                                       floats.filter(lambda v: abs(v) > 0.1)),
       reflected=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]))
def test_fast_and_general_paths_agree_with_a_python_number(name, c, reflected, dtype):
    x = np.asarray([0.5, 1.5, -2.0], dtype)
    fast_op, general = OPS[name]
    for op in (fast_op, general):
        a = cr.tensor(x, requires_grad=True)
        out = op(c, a) if reflected else op(a, c)
        out.sum().backward()
        if op is fast_op:
            fast = (out.data, a.grad.data)
        else:
            _same(fast[0], out.data)
            _same(fast[1], a.grad.data)
            assert out.dtype == dtype           # a Python number is weak


@pytest.mark.parametrize('name', sorted(OPS))
def test_values_and_gradients_match_pytorch(name):
    torch = pytest.importorskip('torch', reason='PyTorch is the reference here')
    rng = np.random.default_rng(0)
    x, y, w = (rng.uniform(0.5, 2.0, (3, 4)) for _ in range(3))
    fast_op, _ = OPS[name]
    for c in (None, 2.5, 3):
        a = cr.tensor(x, requires_grad=True)
        b = cr.tensor(y, requires_grad=True) if c is None else c
        ta = torch.tensor(x, requires_grad=True)
        tb = torch.tensor(y, requires_grad=True) if c is None else c
        for rev in (False, True):
            out = fast_op(b, a) if rev else fast_op(a, b)
            tout = fast_op(tb, ta) if rev else fast_op(ta, tb)
            np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=1e-14)
            (out * cr.tensor(w)).sum().backward()
            (tout * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(a.grad.data, ta.grad.numpy(), rtol=1e-14)
        if c is None:
            np.testing.assert_allclose(b.grad.data, tb.grad.numpy(), rtol=1e-14)


def test_the_fast_path_records_the_node_the_general_path_records():
    x0 = cr.tensor(np.arange(1.0, 4.0), requires_grad=True)
    x = x0 * 2.0                      # an intermediate result (its counter is its node's)
    c = cr.tensor(np.full(3, 0.5))    # a constant Tensor: its version is saved too
    for u, v in ((x, x0), (x, c), (c, x), (x, 3.0), (3.0, x)):
        f = u * v
        g = ops.mul(u, v)
        nf, ng = f._node, g._node
        assert nf.prim is ng.prim and nf.nparents == ng.nparents == 2
        assert nf.parents == ng.parents
        assert nf.versions == ng.versions
        assert all((p is q) for p, q in zip(nf.args, ng.args))
        assert not nf.params and not ng.params


@pytest.mark.parametrize('case', ['broadcast', 'mixed float dtypes', 'int and float',
                                  'numpy scalar', 'complex number', 'bool number', '0-d'])
def test_operands_the_fast_path_leaves_to_the_general_path(monkeypatch, case):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 2.0, (2, 3))
    a = cr.tensor(x, requires_grad=True)
    other = {'broadcast': cr.tensor(rng.uniform(0.5, 2.0, (3,)), requires_grad=True),
             'mixed float dtypes': cr.tensor(x.astype(np.float32), requires_grad=True),
             'int and float': cr.tensor(np.arange(6).reshape(2, 3)),
             'numpy scalar': np.float32(2.0),
             'complex number': 2.0 + 1.0j,
             'bool number': True,
             '0-d': cr.tensor(np.float64(3.0), requires_grad=True)}[case]
    torch = pytest.importorskip('torch', reason='PyTorch is the reference here')
    count = _Processed(monkeypatch)
    out = a * other
    assert count.n >= 1       # (broadcasting and casts are operations of their own)
    t_a = torch.tensor(x, requires_grad=True)
    t_other = (torch.tensor(other.data, requires_grad=other.requires_grad)
               if isinstance(other, cr.Tensor) else
               torch.tensor(other) if isinstance(other, np.generic) else other)
    t_out = t_a * t_other
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-6)
    if case == 'complex number':      # JAX's convention: the conjugate of PyTorch's gradient
        return
    out.sum().backward()
    t_out.sum().backward()
    np.testing.assert_allclose(a.grad.data, t_a.grad.numpy(), rtol=1e-6)
    if isinstance(other, cr.Tensor) and other.requires_grad:
        np.testing.assert_allclose(other.grad.data, t_other.grad.numpy(), rtol=1e-6)


def test_no_grad_records_nothing_on_the_fast_path():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    with cr.no_grad():
        for out in (a * b, a + 1.0, 2.0 / a):
            assert not out.requires_grad and out._node is None
    assert (a * b).requires_grad


def test_an_in_place_write_after_the_fast_path_is_caught_by_backward():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    y = a * b                 # saves a and b
    with cr.no_grad():
        b.mul_(3.0)           # ... and b is written in place afterwards
    with pytest.raises(GradientError, match="saved by 'mul'"):
        y.sum().backward()
    a2, b2 = _pair(np.ones(3), np.full(3, 2.0), True, True)
    y2 = a2 + b2              # add reads neither argument: the write is harmless
    with cr.no_grad():
        b2.mul_(3.0)
    y2.sum().backward()
    np.testing.assert_array_equal(a2.grad.data, np.ones(3))


def test_an_in_place_write_to_an_intermediate_result_is_caught():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    h = a * b
    y = h * b                 # saves h, whose counter is made only now
    h.add_(1.0)
    with pytest.raises(GradientError, match="saved by 'mul'"):
        y.sum().backward()


# An operand and a constant (the node keeps one counter, checked by backward without a call),
# and one-argument ops: which in-place writes after recording must be refused -- those whose
# backward reads the written value: `x * c` and `x / c` save only c, `x ** c` and `sin` save
# x, `exp` its output. PyTorch refuses the same writes, except `c / x`, whose rule it writes
# with the result (-g * out**2 / c) where chainrule's reads x (-g * c / x**2).
_WRITE_AFTER = [      # (name, op, what is written, the op named in the error, torch refuses)
    ('x * 2.0', lambda x: x * 2.0, 'x', None, False),
    ('2.0 * x', lambda x: 2.0 * x, 'x', None, False),
    ('x / 2.0', lambda x: x / 2.0, 'x', None, False),
    ('2.0 / x', lambda x: 2.0 / x, 'x', 'div', False),
    ('x ** 3.0', lambda x: x ** 3.0, 'x', 'pow', True),
    ('exp(x), x written', lambda x: x.exp(), 'x', None, False),
    ('exp(x), result written', lambda x: x.exp(), 'y', 'exp', True),
    ('sin(x)', lambda x: x.sin(), 'x', 'sin', True),
]


@pytest.mark.parametrize('case', _WRITE_AFTER, ids=[c[0] for c in _WRITE_AFTER])
@pytest.mark.parametrize('leaf', [True, False], ids=['leaf', 'intermediate'])
def test_in_place_writes_after_an_op_with_a_constant_or_one_argument(case, leaf):
    _, f, written, refused_by, torch_refuses = case
    w = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = w if leaf else w * 1.0          # an intermediate's counter is made only by the write
    y = f(x)
    with cr.no_grad():
        (x if written == 'x' else y).add_(1.0)
    if refused_by:
        with pytest.raises(GradientError, match=f"'{refused_by}'"):
            y.sum().backward()
    else:
        y.sum().backward()
        assert w.grad is not None
    torch = pytest.importorskip('torch')
    tw = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    tx = tw if leaf else tw * 1.0
    ty = f(tx)
    with torch.no_grad():
        (tx if written == 'x' else ty).add_(1.0)
    if torch_refuses:
        with pytest.raises(RuntimeError, match='modified by an inplace operation'):
            ty.sum().backward()
    else:
        ty.sum().backward()
        if not refused_by:
            np.testing.assert_allclose(w.grad.data, tw.grad.numpy())


def test_hooks_and_retain_grad_see_fast_path_results():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    h = a * b
    h.retain_grad()
    seen = []
    b.register_hook(lambda g: seen.append(g.data.copy()))
    a.register_hook(lambda g: g * 10.0)
    y = h + h * 2.0
    y.sum().backward()
    np.testing.assert_array_equal(h.grad.data, np.full(3, 3.0))
    np.testing.assert_array_equal(b.grad.data, np.full(3, 3.0))
    np.testing.assert_array_equal(seen[0], np.full(3, 3.0))
    np.testing.assert_array_equal(a.grad.data, np.full(3, 60.0))
    h.grad.data[0] = -1.0     # the retained gradient is the caller's: b's is untouched
    np.testing.assert_array_equal(b.grad.data, np.full(3, 3.0))


def test_add_hands_one_cotangent_to_both_arguments_without_aliasing_their_grads():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    (a + b).sum().backward()
    a.grad.data[0] = 5.0
    np.testing.assert_array_equal(b.grad.data, np.ones(3))
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    (a - b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, np.ones(3))
    np.testing.assert_array_equal(b.grad.data, -np.ones(3))


def test_create_graph_differentiates_the_fast_path_rules():
    x = cr.tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = (x * x * x + x * 2.0 - x / 4.0).sum()
    y.backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.data, 3 * x.data ** 2 + 2.0 - 0.25)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_transforms_over_closed_over_tensors_reach_the_tensor_tape():
    w = cr.tensor(np.array([0.5, 2.0]), requires_grad=True)

    def f(x):
        return ((x * w + w) * x).sum()       # the Tensor w meets grad's traced x
    x = np.array([1.0, 3.0])
    gx = cr.grad(f)(x)
    np.testing.assert_allclose(gx, 2 * x * w.data + w.data)
    f(cr.tensor(x)).backward()
    np.testing.assert_allclose(w.grad.data, x * x + x)
    out = cr.vmap(lambda row: (row * w * w).sum())(np.ones((3, 2)))
    np.testing.assert_allclose(np.asarray(out), np.full(3, 4.25))


def test_a_jit_capturing_the_tensors_stages_the_fast_path_ops():
    a, b = _pair(np.ones(3), np.full(3, 2.0), True, True)
    f = cr.jit(lambda x: (a * b + x * a).sum())
    assert float(f(np.ones(3))) == pytest.approx(9.0)
    with cr.no_grad():
        b.mul_(2.0)           # read anew on every call: the product was staged, not baked in
    assert float(f(np.ones(3))) == pytest.approx(15.0)


def test_debug_nans_sees_fast_path_results():
    a = cr.tensor(np.array([1.0, 0.0]), requires_grad=True)
    b = cr.tensor(np.array([1.0, 0.0]), requires_grad=True)
    with cr.debug_nans(), np.errstate(invalid='ignore'):
        with pytest.raises(FloatingPointError, match='div'):
            a / b
