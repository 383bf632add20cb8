"""Tests for chainrule.scalar: `Value` against PyTorch, finite differences, exact arithmetic,
and against the NumPy core (`cr.grad` and a 0-d `Tensor`) on the same expressions.
"""

import gc
import importlib.util
import math
import random
import sys
import weakref
from fractions import Fraction
from pathlib import Path

import pytest

from chainrule.scalar import Value, dot
from chainrule.scalar.nn import MLP, Layer, Module, Neuron

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- expressions used by several tests
# Each takes scalars of one library (chainrule Value or torch tensor) and a namespace `f` giving
# the functions whose spelling differs (f.tanh(x) etc.).

class _ValueFns:
    tanh = staticmethod(lambda x: x.tanh())
    exp = staticmethod(lambda x: x.exp())
    log = staticmethod(lambda x: x.log())
    sin = staticmethod(lambda x: x.sin())
    cos = staticmethod(lambda x: x.cos())
    sigmoid = staticmethod(lambda x: x.sigmoid())
    sqrt = staticmethod(lambda x: x.sqrt())
    relu = staticmethod(lambda x: x.relu())
    abs = staticmethod(lambda x: x.abs())


def _torch_fns():
    torch = pytest.importorskip("torch")

    class F:
        tanh = staticmethod(torch.tanh)
        exp = staticmethod(torch.exp)
        log = staticmethod(torch.log)
        sin = staticmethod(torch.sin)
        cos = staticmethod(torch.cos)
        sigmoid = staticmethod(torch.sigmoid)
        sqrt = staticmethod(torch.sqrt)
        relu = staticmethod(torch.relu)
        abs = staticmethod(torch.abs)
    return F


def micrograd_sanity(x, f):
    # micrograd's test_sanity_check
    z = 2 * x + 2 + x
    q = f.relu(z) + z * x
    h = f.relu(z * z)
    return h + q + q * x


def micrograd_more_ops(a, b, f):
    # micrograd's test_more_ops
    c = a + b
    d = a * b + b ** 3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + f.relu(b + a)
    d = d + 3 * d + f.relu(b - a)
    e = c - d
    g = e ** 2
    g = g / 2.0
    g = g + 10.0 / g
    return g


def transcendental(a, b, f):
    u = f.tanh(a * b) + f.exp(a / 3) * f.log(b) - f.sigmoid(a - b)
    v = f.sqrt(b * b + 1) * f.sin(a) + f.cos(b) / (1 + a * a)
    return u * v + f.abs(a - 2 * b) + 2 ** a + a ** b - 1 / (b - 3)


def reflected(a, b, f):
    return (3 - a) * (2 / b) + (5 + b) - (a * 0.5) ** 3 + 7 * (1 - b) / (a + 4)


EXPRESSIONS = [
    ('micrograd_sanity', lambda x, y, f: micrograd_sanity(x, f), (-4.0, 0.0)),
    ('micrograd_more_ops', micrograd_more_ops, (-4.0, 2.0)),
    ('transcendental', transcendental, (0.7, 1.3)),
    ('transcendental_2', transcendental, (1.9, 0.6)),
    ('reflected', reflected, (0.3, -0.8)),
]


def value_grad(fn, point):
    xs = [Value(p) for p in point]
    out = fn(*xs, _ValueFns)
    out.backward()
    return out.data, [x.grad for x in xs]


# ---------------------------------------------------------------- against PyTorch

@pytest.mark.parametrize('name, fn, point', EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_against_torch(name, fn, point):
    torch = pytest.importorskip("torch")
    F = _torch_fns()
    ts = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    out_t = fn(*ts, F)
    out_t.backward()
    data, grads = value_grad(fn, point)
    assert data == pytest.approx(out_t.item(), rel=1e-12, abs=1e-12)
    for g, t in zip(grads, ts):
        expected = 0.0 if t.grad is None else t.grad.item()     # None: unused input
        assert g == pytest.approx(expected, rel=1e-10, abs=1e-12)


_POINTS = [-2.5, -0.3, 0.0, 0.4, 3.0]


@pytest.mark.parametrize('op, x', [
    (op, x)
    for op in ['tanh', 'exp', 'log', 'sin', 'cos', 'sigmoid', 'sqrt', 'relu', 'abs']
    for x in _POINTS
    if not (op in ('log', 'sqrt') and x <= 0)          # inside the real domain only
])
def test_unary_against_torch(op, x):
    torch = pytest.importorskip("torch")
    v = Value(x)
    out = getattr(v, op)()
    out.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out_t = getattr(torch, op)(t)
    out_t.backward()
    assert out.data == pytest.approx(out_t.item(), rel=1e-14, abs=1e-15)
    assert v.grad == pytest.approx(t.grad.item(), rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- against finite differences

@pytest.mark.parametrize('name, fn, point', EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_against_finite_differences(name, fn, point):
    _, grads = value_grad(fn, point)
    h = 1e-6
    for i in range(len(point)):
        up = list(point)
        down = list(point)
        up[i] += h
        down[i] -= h
        f_up = fn(*map(Value, up), _ValueFns).data
        f_down = fn(*map(Value, down), _ValueFns).data
        fd = (f_up - f_down) / (2 * h)
        assert grads[i] == pytest.approx(fd, rel=1e-5, abs=1e-5)


def test_random_expressions_against_finite_differences():
    rng = random.Random(0)
    unary = ['tanh', 'sin', 'cos', 'sigmoid', 'exp']
    for trial in range(30):
        point = [rng.uniform(-1, 1) for _ in range(3)]
        ops = [(rng.choice(unary), rng.randrange(3), rng.randrange(3), rng.choice('+-*'))
               for _ in range(8)]

        def fn(*xs):
            vals = list(xs)
            for name, i, j, bop in ops:
                u = getattr(vals[i], name)()
                w = {'+': u + vals[j], '-': u - vals[j], '*': u * vals[j]}[bop]
                vals.append(w)
                vals = vals[-3:]
            return vals[-1]

        xs = [Value(p) for p in point]
        fn(*xs).backward()
        h = 1e-6
        for i in range(3):
            up, down = list(point), list(point)
            up[i] += h
            down[i] -= h
            fd = (fn(*map(Value, up)).data - fn(*map(Value, down)).data) / (2 * h)
            assert xs[i].grad == pytest.approx(fd, rel=1e-5, abs=1e-6), (trial, i)


# ---------------------------------------------------------------- exact arithmetic

def test_fraction_stays_exact():
    a = Value(Fraction(1, 3))
    out = a * a / (a + 1) - a ** 3 + 2 / a - (1 - a) * Fraction(3, 7)
    out.backward()
    x = Fraction(1, 3)
    expected = x * x / (x + 1) - x ** 3 + 2 / x - (1 - x) * Fraction(3, 7)
    dexpected = (x * x + 2 * x) / (x + 1) ** 2 - 3 * x ** 2 - 2 / x ** 2 + Fraction(3, 7)
    assert type(out.data) is Fraction and out.data == expected
    assert type(a.grad) is Fraction and a.grad == dexpected
    assert out.grad == 1 and type(out.grad) is int


def test_int_stays_int_through_add_mul_and_integer_powers():
    a, b = Value(3), Value(-2)
    out = a * b + a ** 2 - b * 5
    out.backward()
    assert out.data == -6 + 9 + 10 and type(out.data) is int
    assert (a.grad, b.grad) == (-2 + 6, 3 - 5)
    assert type(a.grad) is int and type(b.grad) is int


def test_grad_starts_at_integer_zero():
    v = Value(Fraction(1, 2))
    assert v.grad == 0 and type(v.grad) is int


def test_transcendentals_on_exact_data_compute_in_float():
    a = Value(Fraction(1, 2))
    out = a.exp()
    out.backward()
    assert type(out.data) is float and out.data == math.exp(0.5)
    assert type(a.grad) is float and a.grad == math.exp(0.5)
    b = Value(2)
    out = b.log() + b.tanh()
    out.backward()
    assert out.data == pytest.approx(math.log(2) + math.tanh(2))
    assert type(b.grad) is float and b.grad == pytest.approx(0.5 + 1 - math.tanh(2) ** 2)


# ---------------------------------------------------------------- complex, holomorphic

def holomorphic(z, f):
    return z * z * f.sin(z) / (z + 1) + f.exp(z / 2) - f.log(z) * f.cos(z) + f.tanh(z) ** 3 \
        + f.sqrt(z) + f.sigmoid(z)


@pytest.mark.parametrize('z0', [0.5 + 0.3j, -1.2 + 0.7j, 2.0 - 1.5j])
def test_complex_holomorphic_against_finite_differences(z0):
    z = Value(z0)
    out = holomorphic(z, _ValueFns)
    out.backward()
    assert isinstance(out.data, complex)
    h = 1e-6
    fd = (holomorphic(Value(z0 + h), _ValueFns).data
          - holomorphic(Value(z0 - h), _ValueFns).data) / (2 * h)
    fd_imag = (holomorphic(Value(z0 + 1j * h), _ValueFns).data
               - holomorphic(Value(z0 - 1j * h), _ValueFns).data) / (2j * h)
    assert abs(z.grad - fd) < 1e-6 * max(1, abs(fd))
    assert abs(z.grad - fd_imag) < 1e-6 * max(1, abs(fd))      # holomorphic: same both ways


def test_complex_against_torch_is_conjugate():
    torch = pytest.importorskip("torch")
    z0 = 0.5 + 0.3j
    z = Value(z0)
    out = holomorphic(z, _ValueFns)
    out.backward()
    t = torch.tensor(z0, dtype=torch.complex128, requires_grad=True)
    out_t = holomorphic(t, _torch_fns())
    out_t.backward(torch.tensor(1 + 0j, dtype=torch.complex128))
    assert abs(out.data - out_t.item()) < 1e-12
    # PyTorch returns the conjugate of the holomorphic derivative (see engine docstring).
    assert abs(z.grad - t.grad.item().conjugate()) < 1e-10


def test_complex_exact_data():
    z = Value(1 + 2j)
    out = z * z + 3 * z
    out.backward()
    assert out.data == (1 + 2j) ** 2 + 3 * (1 + 2j)
    assert z.grad == 2 * (1 + 2j) + 3


@pytest.mark.parametrize('method', ['relu', 'abs'])
def test_non_holomorphic_on_complex_raises(method):
    with pytest.raises(TypeError, match='complex'):
        getattr(Value(1 + 1j), method)()


# ---------------------------------------------------------------- backward semantics

def test_backward_twice_accumulates_everywhere():
    x = Value(1.5)
    y = x.tanh() * x            # intermediate nodes: micrograd's second call over-counts these
    out = y * y + x
    out.backward()
    first = (x.grad, y.grad, out.grad)
    out.backward()
    assert (x.grad, y.grad, out.grad) == tuple(2 * g for g in first)
    assert out.grad == 2


def test_zero_grad_then_backward_repeats():
    model = MLP(2, [3, 1], rng=random.Random(0))
    out = model([0.5, -0.25])
    model.zero_grad()
    out.backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    assert all(p.grad == 0 for p in model.parameters())
    out2 = model([0.5, -0.25])
    out2.backward()
    assert [p.grad for p in model.parameters()] == grads


def test_shared_subexpression():
    x = Value(3.0)
    y = x * x               # the same node twice as operands
    out = y + y
    out.backward()
    assert x.grad == 4 * 3.0
    assert y.grad == 2


def test_million_node_chain():
    x, one = Value(1.0), Value(1.0)
    y = x
    for _ in range(1_000_000):
        y = y + one         # a chain of 1,000,000 `+` nodes
    y.backward()
    assert y.data == 1_000_001.0
    assert x.grad == 1.0 and one.grad == 1_000_000.0
    del y                   # freeing the chain must not overflow the C stack either


def test_backward_without_recursion_on_a_long_product_chain():
    x = Value(Fraction(1))
    y = x
    for _ in range(5000):
        y = y * Fraction(1, 1)
    y.backward()
    assert x.grad == 1


# ---------------------------------------------------------------- memory: no reference cycles

def test_no_reference_cycles():
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        model = MLP(2, [4, 4, 1], rng=random.Random(0))
        x = Value(0.3)
        out = (model([x, x.tanh()]) * x.exp() / 3 - x.sigmoid() + x.abs()) ** 2
        out.backward()
        probe = weakref.ref(out)
        mid = weakref.ref(model.layers[0].neurons[0]([x, x]))
        del out
        assert probe() is None          # freed by reference counting alone
        assert mid() is None
        del model, x
        assert gc.collect() == 0        # nothing was left for the cycle collector
    finally:
        if was_enabled:
            gc.enable()


def test_micrograd_nodes_do_make_cycles():
    micrograd = pytest.importorskip("micrograd.engine")
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        x = micrograd.Value(0.3)
        out = (x * x + 1).relu()
        out.backward()
        del out, x
        assert gc.collect() > 0         # the contrast the benchmark measures
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------- micrograd compatibility

def test_micrograd_attributes():
    a, b = Value(2.0), Value(-3.0)
    c = a * b
    assert c._prev == {a, b} and isinstance(c._prev, set)
    assert c._op == '*'
    assert a._prev == set() and a._op == ''
    assert repr(c) == 'Value(data=-6.0, grad=0)'
    n = Value(5.0, (a, b), 'custom')
    assert n._prev == {a, b} and n._op == 'custom'


def test_micrograd_style_custom_op():
    """A custom operation written for micrograd (a `_backward` closure) still works."""
    def mytanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), 'tanh')

        def _backward():
            self.grad += (1 - t ** 2) * out.grad
        out._backward = _backward
        return out

    x = Value(0.7)
    out = mytanh(x * 2) * 3
    out.backward()
    expected = 3 * 2 * (1 - math.tanh(1.4) ** 2)
    assert x.grad == pytest.approx(expected, rel=1e-14)
    out.backward()
    assert x.grad == pytest.approx(2 * expected, rel=1e-14)


def test_manual_backward_steps_like_micrograd():
    a, b = Value(2.0), Value(-3.0)
    c = a * b
    c.grad = 1.0
    c._backward()
    assert (a.grad, b.grad) == (-3.0, 2.0)
    a._backward()                       # a leaf's step does nothing


def test_matches_micrograd_itself():
    micrograd = pytest.importorskip("micrograd.engine")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))

    class MgFns:
        relu = staticmethod(lambda x: x.relu())
    for fn, point in [(lambda x, y, f: micrograd_sanity(x, f), (-4.0, 0.0)),
                      (micrograd_more_ops, (-4.0, 2.0))]:
        ms = [micrograd.Value(p) for p in point]
        out_m = fn(*ms, MgFns)
        out_m.backward()
        data, grads = value_grad(fn, point)
        assert data == out_m.data
        # Equal up to the order in which contributions are summed (micrograd's _prev is a set).
        assert grads == pytest.approx([m.grad for m in ms], rel=1e-14)


# ---------------------------------------------------------------- errors and edge cases

def test_unsupported_operand_types():
    v = Value(1.0)
    for bad in ['a', [1.0], None, object()]:
        for op in [lambda: v + bad, lambda: bad + v, lambda: v - bad, lambda: bad - v,
                   lambda: v * bad, lambda: bad * v, lambda: v / bad, lambda: bad / v,
                   lambda: v ** bad]:
            with pytest.raises(TypeError, match='unsupported operand|can only concatenate'
                                                '|can.t multiply'):
                op()
    with pytest.raises(TypeError, match="Value\\(data\\) needs a number.*str"):
        Value('1.0')


def test_domain_errors_are_clear():
    with pytest.raises(ValueError, match='log.*complex'):
        Value(-1.0).log()
    with pytest.raises(ValueError, match='sqrt.*negative'):
        Value(-4.0).sqrt()
    assert Value(1000.0).exp().data == math.inf        # overflow: inf, as NumPy and PyTorch


def test_power_edge_cases():
    x = Value(0.0)
    y = x ** 0.5
    y.backward()
    assert y.data == 0.0 and x.grad == math.inf        # PyTorch agrees: d sqrt(x) at 0 is inf
    x = Value(2.0)
    y = x ** 0
    y.backward()
    assert y.data == 1.0 and x.grad == 0
    x, p = Value(1.5), Value(2.5)
    y = x ** p
    y.backward()
    assert y.data == pytest.approx(1.5 ** 2.5)
    assert x.grad == pytest.approx(2.5 * 1.5 ** 1.5)
    assert p.grad == pytest.approx(1.5 ** 2.5 * math.log(1.5))


def test_sigmoid_is_stable_for_large_inputs():
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(1000.0).sigmoid().data == 1.0
    x = Value(-800.0)
    x.sigmoid().backward()
    assert x.grad == 0.0


def test_other_number_types_pass_through():
    from decimal import Decimal
    d = Value(Decimal('1.5'))
    out = d * d + 2 * d
    out.backward()
    assert out.data == Decimal('5.25') and d.grad == Decimal('5.0')


def test_error_in_backward_leaves_the_graph_clean():
    x = Value(2.0)
    y = x * 3
    bad = Value(1.0, (y,), 'boom')

    def _backward():
        raise RuntimeError('boom')
    bad._backward = _backward
    out = bad * y
    with pytest.raises(RuntimeError, match='boom'):
        out.backward()
    x.grad = 0
    (y * 1.0).backward()                # no cotangent left over from the failed pass
    assert x.grad == 3.0


# ---------------------------------------------------------------- dot and nn

def test_dot_equals_sum_of_products_bit_for_bit():
    rng = random.Random(3)
    ws = [Value(rng.uniform(-1, 1)) for _ in range(7)]
    xs = [Value(rng.uniform(-1, 1)) for _ in range(7)]
    b = Value(0.25)
    fused = dot(ws, xs, b).tanh()
    fused.backward()
    g_fused = [v.grad for v in ws + xs + [b]]
    for v in ws + xs + [b]:
        v.grad = 0
    plain = sum((w * x for w, x in zip(ws, xs)), b).tanh()
    plain.backward()
    assert fused.data == plain.data
    assert g_fused == [v.grad for v in ws + xs + [b]]


def test_dot_with_numbers_and_shared_values():
    x = Value(3.0)
    out = dot([x, 2.0, x], [x, x, 5.0], 1.0)           # 1 + x*x + 2x + 5x
    out.backward()
    assert out.data == 1 + 9 + 6 + 15
    assert x.grad == 2 * 3.0 + 2 + 5
    with pytest.raises(ValueError, match='dot'):
        dot([x], [x, x])
    with pytest.raises(TypeError, match='dot'):
        dot([x], ['a'])


def test_mlp_fused_and_unfused_agree_bit_for_bit():
    a = MLP(2, [16, 16, 1], rng=random.Random(5))
    b = MLP(2, [16, 16, 1], rng=random.Random(5), fused=False)
    point = [0.3, -0.7]
    out_a, out_b = a(point), b(point)
    (out_a * out_a).backward()
    (out_b * out_b).backward()
    assert out_a.data == out_b.data
    assert [p.grad for p in a.parameters()] == [p.grad for p in b.parameters()]


def test_nn_structure_and_seeds():
    model = MLP(2, [16, 16, 1], rng=7)
    assert len(model.parameters()) == (2 + 1) * 16 + (16 + 1) * 16 + (16 + 1)
    again = MLP(2, [16, 16, 1], rng=random.Random(7))
    assert [p.data for p in model.parameters()] == [p.data for p in again.parameters()]
    assert all(-1 <= p.data <= 1 for p in model.parameters())
    assert model.layers[0].neurons[0].b.data == 0
    assert not model.layers[-1].neurons[0].nonlin and model.layers[0].neurons[0].nonlin
    assert isinstance(model([1.0, 2.0]), Value)                 # one output: a Value
    assert len(Layer(3, 4)([1.0, 2.0, 3.0])) == 4
    assert repr(Neuron(3)) == 'ReLUNeuron(3)'
    assert repr(Neuron(3, nonlin=False)) == 'LinearNeuron(3)'
    assert repr(MLP(2, [1])) == 'MLP of [Layer of [LinearNeuron(2)]]'


def test_nn_uses_global_random_like_micrograd():
    random.seed(1337)
    a = MLP(2, [4, 1])
    random.seed(1337)
    b = MLP(2, [4, 1])
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]


def test_module_parameters_found_by_walking_attributes():
    class Two(Module):
        def __init__(self):
            self.first = Neuron(2, rng=0)
            self.scale = Value(2.0)
            self.blocks = [Neuron(2, rng=1), (Neuron(1, rng=2),)]
            self.shared = self.scale                # counted once

    m = Two()
    params = m.parameters()
    assert len(params) == 3 + 1 + 3 + 2
    assert params[3] is m.scale
    for p in params:
        p.grad = 5
    m.zero_grad()
    assert all(p.grad == 0 for p in params)


def test_moons_mlp_reaches_full_training_accuracy():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("moons_example", ROOT / "examples" / "moons.py")
    moons = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moons)
    model, X, y, history = moons.train(steps=100, seed=1337)
    final_loss, final_accuracy = history[-1]
    assert final_accuracy == 1.0
    assert final_loss < 0.05 < history[0][0]
    scores = moons.predict(model, X)
    assert all((s > 0) == (t > 0) for s, t in zip(scores, y))


# ---------------------------------------------------------------- against the NumPy core

class _CoreFns:
    """The same functions on chainrule's core: work on floats, tracers and Tensors alike."""

    @staticmethod
    def _cnp():
        import chainrule.numpy as cnp
        return cnp

    tanh = staticmethod(lambda x: _CoreFns._cnp().tanh(x))
    exp = staticmethod(lambda x: _CoreFns._cnp().exp(x))
    log = staticmethod(lambda x: _CoreFns._cnp().log(x))
    sin = staticmethod(lambda x: _CoreFns._cnp().sin(x))
    cos = staticmethod(lambda x: _CoreFns._cnp().cos(x))
    sigmoid = staticmethod(lambda x: 1 / (1 + _CoreFns._cnp().exp(-x)))
    sqrt = staticmethod(lambda x: _CoreFns._cnp().sqrt(x))
    relu = staticmethod(lambda x: _CoreFns._cnp().maximum(x, 0.0))
    abs = staticmethod(lambda x: _CoreFns._cnp().abs(x))


@pytest.mark.parametrize('name, fn, point', EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_value_tensor_and_grad_agree(name, fn, point):
    import chainrule as cr
    value, grads = value_grad(fn, point)

    # cr.grad on Python floats
    argnums = tuple(range(len(point)))
    core_value, core_grads = cr.value_and_grad(lambda *xs: fn(*xs, _CoreFns), argnums)(*point)
    assert core_value == pytest.approx(value, rel=1e-12)
    assert core_grads == pytest.approx(grads, rel=1e-12, abs=1e-12)

    # a 0-d Tensor and backward()
    ts = [cr.tensor(p, requires_grad=True) for p in point]
    out = fn(*ts, _CoreFns)
    out.backward()
    assert out.item() == pytest.approx(value, rel=1e-12)
    # an input the output does not depend on keeps grad None, as in PyTorch
    tgrads = [0.0 if t.grad is None else t.grad.item() for t in ts]
    assert tgrads == pytest.approx(grads, rel=1e-12, abs=1e-12)
