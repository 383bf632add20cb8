"""The eager `Tensor` API (issue 2): dtypes, operators, indexing, methods, `backward()` and its
options, hooks, grad mode, conversions, and the errors a user meets -- each checked against
NumPy, `cr.grad`, finite differences, the scalar `Value` engine or PyTorch."""

import threading

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.scalar import Value

RNG = np.random.default_rng(0)
A = RNG.uniform(0.5, 2.0, (3, 4))
B = RNG.uniform(0.5, 2.0, (3, 4))


def leaf(x, dtype=None):
    return cr.Tensor(np.array(x, dtype=dtype), requires_grad=True)


# --- dtypes -----------------------------------------------------------------------------------

def test_dtype_rules_follow_numpy_2():
    assert cr.Tensor(1.5).dtype == np.float64
    assert cr.tensor([1.0, 2.0]).dtype == np.float64
    assert cr.tensor([1, 2]).dtype == np.int64
    assert cr.tensor([1.0], dtype=np.float32).dtype == np.float32
    t32 = cr.Tensor(np.ones(3, np.float32), requires_grad=True)
    assert (t32 * 2.0).dtype == np.float32          # a Python float is weak
    assert (2.0 / t32 + 1).dtype == np.float32
    assert (t32 ** 2).dtype == np.float32
    assert (t32 + np.ones(3)).dtype == np.float64   # a float64 array is not
    assert (t32 + cr.Tensor(np.ones(3))).dtype == np.float64
    assert (cr.tensor([1, 2]) * 2.5).dtype == np.float64
    assert (cr.tensor([1, 2]) / 2).dtype == np.float64
    loss = (t32 * 2.0).sum()
    loss.backward()
    assert loss.dtype == np.float32 and t32.grad.dtype == np.float32


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(cr.DTypeError, match='floating.*int64'):
        cr.tensor([1, 2], requires_grad=True)
    with pytest.raises(cr.DTypeError):
        cr.tensor([True]).requires_grad_()


# --- operators --------------------------------------------------------------------------------

BINARY_OPS = {
    'add': lambda x, y: x + y, 'sub': lambda x, y: x - y, 'mul': lambda x, y: x * y,
    'div': lambda x, y: x / y, 'pow': lambda x, y: x ** y, 'mod': lambda x, y: x % y,
    'matmul': lambda x, y: x @ y.T,
}


@pytest.mark.parametrize('name, other', [
    (name, other) for name in BINARY_OPS
    for other in ['tensor', 'array', 'scalar', 'reflected_array', 'reflected_scalar']
    if not (name == 'matmul' and 'scalar' in other)     # NumPy's matmul takes no scalars
])
def test_binary_operators_values_and_gradients(name, other):
    op = BINARY_OPS[name]
    y = {'scalar': 1.5, 'reflected_scalar': 1.5}.get(other, B)
    reflected = other.startswith('reflected')
    f = (lambda x: op(y, x)) if reflected else (lambda x: op(x, y))
    x = leaf(A)
    ty = leaf(B) if other == 'tensor' else None
    out = op(x, ty) if ty is not None else f(x)
    want = op(A, B) if ty is not None else f(A)
    assert isinstance(out, cr.Tensor)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-14)
    out.sum().backward()
    g = cr.grad(lambda a: cnp.sum(op(a, B) if ty is not None else f(a)))(A)
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-12)
    if ty is not None:
        np.testing.assert_allclose(ty.grad.numpy(), cr.grad(lambda b: cnp.sum(op(A, b)))(B),
                                   rtol=1e-12)


def test_floordiv_and_comparisons_give_constants():
    x = leaf(A)
    for op, ref in [(lambda a: a < 1.0, A < 1.0), (lambda a: a <= B, A <= B),
                    (lambda a: a > B, A > B), (lambda a: 1.0 >= a, 1.0 >= A),
                    (lambda a: a == A, A == A), (lambda a: a != B, A != B),
                    (lambda a: a // 0.7, A // 0.7), (lambda a: 3.0 // a, 3.0 // A),
                    (lambda a: B < a, B < A), (lambda a: B >= a, B >= A),   # ndarray on the left
                    (lambda a: B == a, B == A), (lambda a: B // a, B // A)]:
        out = op(x)
        assert isinstance(out, cr.Tensor) and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), ref)


def test_unary_operators():
    x = leaf(A - 1.0)
    np.testing.assert_array_equal((-x).numpy(), -(A - 1.0))
    np.testing.assert_array_equal((+x).numpy(), A - 1.0)
    np.testing.assert_array_equal(abs(x).numpy(), np.abs(A - 1.0))
    np.testing.assert_array_equal((~cr.tensor([True, False])).numpy(), [False, True])
    # & | ^ ~ are bitwise, as NumPy's (the same as logical on booleans, not on integers)
    i = cr.tensor([6, 5])
    for got, want in [(i & 3, [2, 1]), (3 | i, [7, 7]), (i ^ 1, [7, 4]), (~i, [-7, -6]),
                      ((x > 0) & (x < 0.5), (A - 1.0 > 0) & (A - 1.0 < 0.5))]:
        np.testing.assert_array_equal(got.numpy(), want)
    (abs(-x) + (+x)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.sign(A - 1.0) + 1)


def test_matmul_shape_error_names_the_op_and_every_shape():
    a = leaf(np.ones((3, 4)))
    with pytest.raises(cr.ShapeError, match=r'matmul: shapes \(3, 4\) and \(5, 6\) do not align'):
        a @ np.ones((5, 6))
    with pytest.raises(cr.ShapeError, match=r'add: shapes \(3, 4\) and \(5,\)'):
        a + np.ones(5)
    with pytest.raises(cr.ShapeError, match=r'reshape: .*\(3, 4\).*\(5,\)'):
        a.reshape(5)


# --- indexing ---------------------------------------------------------------------------------

INDICES = [1, (slice(None), slice(1, None)), (None, Ellipsis, 0), [0, 2], np.array([[0, 1]]),
           ([0, 0, 2], [1, 1, 3]), (slice(None), [3, 0, 3])]


@pytest.mark.parametrize('idx', INDICES, ids=[repr(i) for i in INDICES])
def test_indexing_values_and_gradients(idx):
    x = leaf(A)
    out = x[idx]
    np.testing.assert_array_equal(out.numpy(), A[idx])
    w = RNG.standard_normal(np.shape(A[idx]))
    (out * w).sum().backward()
    want = np.zeros_like(A)
    np.add.at(want, idx if not isinstance(idx, list) else (idx,), w)   # repeats accumulate
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-15)


def test_boolean_mask_indexing():
    x = leaf(A - 1.2)
    out = x[x > 0]
    np.testing.assert_array_equal(out.numpy(), (A - 1.2)[A > 1.2])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), (A > 1.2).astype(float))


def test_setitem_without_grad_writes_the_data():
    t = cr.tensor(np.zeros(4))
    t[1:3] = 5.0
    t[np.array([0])] = cr.tensor([2.0])
    np.testing.assert_array_equal(t.numpy(), [2.0, 5.0, 5.0, 0.0])


def test_setitem_is_differentiable_in_both_the_target_and_the_value():
    x, v = leaf(A), leaf([7.0, 8.0, 9.0, 10.0])
    y = x * 2.0
    y[1] = v
    assert y.numpy()[1].tolist() == [7.0, 8.0, 9.0, 10.0]
    (y * B).sum().backward()
    want = 2.0 * B
    want[1] = 0.0    # overwritten: no gradient reaches x there
    np.testing.assert_allclose(x.grad.numpy(), want)
    np.testing.assert_allclose(v.grad.numpy(), B[1])


def test_setitem_on_a_leaf_requiring_grad_is_refused():
    x = leaf(A)
    with pytest.raises(cr.GradientError, match='no_grad'):
        x[0] = 1.0
    with cr.no_grad():
        x[0, 0] = 1.0
    assert x.numpy()[0, 0] == 1.0


# --- methods ----------------------------------------------------------------------------------

# (spelled so that NumPy's ndarray method and Tensor's PyTorch method mean the same: where the two
# differ -- max/min over a dim, std/var's default correction, repeat, sort -- Tensor follows
# PyTorch, tested against PyTorch in tests/test_torch_face.py)
METHODS = {
    'sum': lambda t: t.sum(), 'sum_axis': lambda t: t.sum(axis=1, keepdims=True),
    'mean': lambda t: t.mean(0), 'max': lambda t: t.max(), 'min': lambda t: t.min(),
    'prod': lambda t: t.prod(1), 'var': lambda t: t.var(ddof=0),
    'std': lambda t: t.std(axis=0, ddof=1), 'cumsum': lambda t: t.cumsum(1),
    'reshape': lambda t: t.reshape(2, 6), 'reshape_tuple': lambda t: t.reshape((4, -1)),
    'T': lambda t: t.T, 'transpose': lambda t: t.transpose(1, 0), 'ravel': lambda t: t.ravel(),
    'flatten': lambda t: t.flatten(), 'squeeze': lambda t: t.reshape(1, 12).squeeze(),
    'swapaxes': lambda t: t.swapaxes(0, 1), 'clip': lambda t: t.clip(0.8, 1.5),
    'dot': lambda t: t.dot(np.ones(4)), 'diagonal': lambda t: t.diagonal(),
    'trace': lambda t: t.trace(), 'take': lambda t: t.take([0, 5]),
    'astype': lambda t: t.astype(np.float32), 'conj': lambda t: t.conj(),
    'real': lambda t: t.real, 'round': lambda t: t.round(1),
}


@pytest.mark.parametrize('name', list(METHODS))
def test_methods_match_numpy_and_grad(name):
    m = METHODS[name]
    x = leaf(A)
    out = m(x)
    want = m(A)
    np.testing.assert_allclose(np.asarray(out.numpy(), float), want, rtol=1e-14)
    assert out.dtype == np.asarray(want).dtype
    if not out.requires_grad:
        assert name == 'round'
        return
    w = RNG.standard_normal(out.shape)
    (out * w).sum().backward()
    g = cr.grad(lambda a: cnp.sum(m(a) * w))(A)
    np.testing.assert_allclose(x.grad.numpy(), g, rtol=1e-12)


def test_shape_properties():
    t = cr.tensor(A)
    assert t.shape == (3, 4) and t.ndim == 2 and t.size() == (3, 4) and len(t) == 3
    assert t.dim() == 2 and t.numel() == 12
    assert [r.shape for r in t] == [(4,)] * 3


# --- backward ---------------------------------------------------------------------------------

def test_backward_with_gradient_argument():
    x = leaf(A)
    y = x * x
    g = RNG.standard_normal(A.shape)
    y.backward(gradient=g)
    np.testing.assert_allclose(x.grad.numpy(), 2 * A * g)
    with pytest.raises(cr.GradientError, match='one-element'):
        (leaf(A) * 2).backward()
    with pytest.raises(cr.ShapeError, match=r'gradient has shape \(2,\)'):
        (leaf(A) * 2).backward(gradient=np.ones(2))


def test_second_backward_through_a_freed_graph_names_both_fixes():
    x = leaf(A)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(cr.GradientError, match='retain_graph=True.*recompute'):
        loss.backward()


def test_retain_graph_allows_a_second_backward_which_accumulates():
    x = leaf(A)
    loss = (cnp.exp(x) * x).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    np.testing.assert_allclose(first, np.exp(A) * (1 + A))


def test_gradients_accumulate_across_graphs_until_zero_grad():
    x = leaf(A)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(A, 5.0))
    x.zero_grad()
    assert x.grad is None
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full_like(A, 4.0))


def test_create_graph_gives_differentiable_gradients():
    x = leaf([0.3, 1.2])
    (cnp.sin(x) * x).sum().backward(create_graph=True)
    g = x.grad            # sin x + x cos x
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), np.sin(x.numpy()) + x.numpy() * np.cos(x.numpy()))
    x.grad = None
    g.sum().backward()    # 2 cos x - x sin x
    xs = np.array([0.3, 1.2])
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.cos(xs) - xs * np.sin(xs))


def test_leaves_that_do_not_require_grad_get_no_grad_and_fan_in_sums():
    x, c = leaf(A), cr.tensor(B)
    y = x * c
    (y + y * x + x).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.numpy(), B + 2 * A * B + 1)


def test_backward_without_history_is_an_error():
    with pytest.raises(cr.GradientError, match='does not require grad'):
        cr.tensor(A).sum().backward()


def test_detach_and_requires_grad_():
    x = leaf(A)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.numpy(), x.numpy())
    y = (x * d).sum()          # d is a constant: dy/dx = d
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), A)
    t = cr.tensor(A)
    assert t.requires_grad_() is t and t.requires_grad
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * A)
    t.requires_grad_(False)
    assert not (t * t).requires_grad
    with pytest.raises(cr.GradientError, match='leaf'):
        (x * 2).requires_grad_(False)


def test_register_hook_sees_and_can_replace_the_gradient():
    x = leaf(A)
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    h = y.register_hook(lambda g: g * 10)
    (y * B).sum().backward()
    np.testing.assert_allclose(seen[0], B)
    np.testing.assert_allclose(x.grad.numpy(), 20 * B)
    h.remove()
    x.zero_grad()
    (x * 2 * B).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * B)
    xl = leaf(A)
    xl.register_hook(lambda g: g * 0)    # a hook on a leaf changes what is accumulated
    (xl * 3).sum().backward()
    np.testing.assert_array_equal(xl.grad.numpy(), np.zeros_like(A))


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf(A)
    y = x * x
    y.retain_grad()
    z = y.sum() * 3
    z.backward()
    np.testing.assert_allclose(y.grad.numpy(), np.full_like(A, 3.0))
    np.testing.assert_allclose(x.grad.numpy(), 6 * A)


# --- grad mode --------------------------------------------------------------------------------

def test_no_grad_and_enable_grad_as_context_managers_and_decorators():
    x = leaf(A)
    with cr.no_grad():
        assert not (x * 2).requires_grad
        with cr.enable_grad():
            assert (x * 2).requires_grad
        assert not cr.is_grad_enabled()
    assert cr.is_grad_enabled() and (x * 2).requires_grad

    @cr.no_grad()
    def f(t):
        return t * 2

    @cr.enable_grad()
    def g(t):
        return t * 2

    assert not f(x).requires_grad
    with cr.no_grad():
        assert g(x).requires_grad
    assert cr.is_grad_enabled()


def test_grad_mode_is_per_thread():
    x = leaf(A)
    inside, release = threading.Event(), threading.Event()
    result = {}

    def worker():
        with cr.no_grad():
            inside.set()
            release.wait(5)
            result['worker'] = (x * 2).requires_grad

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    result['main'] = (x * 2).requires_grad   # while the other thread is inside no_grad
    release.set()
    t.join()
    assert result == {'main': True, 'worker': False}


# --- conversions --------------------------------------------------------------------------------

def test_numpy_item_and_asarray():
    x = leaf(A)
    # shares memory; read-only because x requires grad (its values may be saved for backward)
    assert isinstance(x.numpy(), np.ndarray) and np.shares_memory(x.numpy(), x.data)
    assert not x.numpy().flags.writeable and x.detach().numpy() is x.data
    np.testing.assert_array_equal(np.asarray(x), A)
    assert np.asarray(x, dtype=np.float32).dtype == np.float32
    s = x.sum()
    assert s.item() == pytest.approx(A.sum()) and isinstance(s.item(), float)
    assert float(s) == pytest.approx(A.sum())
    with pytest.raises(ValueError, match='one element'):
        x.item()
    assert x.tolist() == A.tolist()


def test_numpy_functions_on_tensors_are_differentiable():
    x = leaf(A)
    y = np.sum(np.sin(x) * np.exp(x))
    assert isinstance(y, cr.Tensor)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp(A) * (np.sin(A) + np.cos(A)))


# --- in-place modification and the version counter ----------------------------------------------

def test_inplace_change_of_a_saved_tensor_is_detected():
    x = leaf(A)
    c = cr.tensor(B)
    y = (x * c).sum()      # mul saves c for x's gradient
    c += 1.0               # modifies c in place after it was saved
    with pytest.raises(cr.GradientError, match=r"'mul'.*modified in place.*version 0.*1"):
        y.backward()


def test_inplace_change_through_a_detached_view_is_detected():
    x = leaf(A)
    c = leaf(B)
    y = (x * c).sum()
    d = c.detach()          # shares c's data and its version counter
    with cr.no_grad():
        d *= 2.0
    with pytest.raises(cr.GradientError, match='modified in place'):
        y.backward()


def test_inplace_change_of_a_saved_output_is_detected():
    x = leaf(A)
    y = cnp.exp(x)            # exp's backward uses its output: d exp(x) = exp(x) dx
    with cr.no_grad():
        y += 1.0
    with pytest.raises(cr.GradientError, match=r"output of 'exp'.*modified in place"):
        y.sum().backward()
    z = x * 3.0               # mul's backward does not use its output: nothing to detect
    with cr.no_grad():
        z += 1.0
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full_like(A, 3.0))


def test_inplace_ops_keep_shape_and_dtype_as_numpy_does():
    i = cr.tensor([1, 2])
    with pytest.raises(cr.DTypeError, match=r'\+=: a float64 result .* int64 Tensor'):
        i += 1.5                        # NumPy and PyTorch refuse too (no silent truncation)
    i *= 3
    np.testing.assert_array_equal(i.numpy(), [3, 6])
    f = cr.tensor([1.0, 2.0])
    with pytest.raises(cr.ShapeError, match=r'\(3, 2\).*cannot change the shape \(2,\)'):
        f += np.ones((3, 2))
    x = leaf(np.ones(2, np.float32))
    y = x * 1.0
    y += leaf(np.ones(2))               # recorded; a float64 result is cast back to float32
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    with pytest.raises(cr.ShapeError, match='cannot change the shape'):
        y += np.ones((3, 2))


def test_inplace_ops_on_non_leaves_are_recorded():
    x = leaf(A)
    y = x * 1.0
    y *= x
    y += 2.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * A)
    with pytest.raises(cr.GradientError, match='leaf'):
        x += 1.0


# --- one scalar expression, four ways -----------------------------------------------------------

VALUE_FNS = {name: (lambda n: lambda v: getattr(v, n)())(name)
             for name in ('tanh', 'exp', 'log', 'sin', 'cos', 'sqrt', 'sigmoid')}
ARRAY_FNS = dict(tanh=cnp.tanh, exp=cnp.exp, log=cnp.log, sin=cnp.sin, cos=cnp.cos,
                 sqrt=cnp.sqrt, sigmoid=lambda t: 1.0 / (1.0 + cnp.exp(-t)))

EXPRESSIONS = {
    'poly': lambda F, a, b: a * a * b + 3.0 * b - a / b - 1.0,
    'tanh_exp': lambda F, a, b: F['tanh'](a * b) + F['exp'](a - b),
    'pow_log': lambda F, a, b: F['log'](a ** 3.0 + b ** 2.0) * a,
    'sigmoid_sqrt': lambda F, a, b: F['sigmoid'](a * b) + F['sqrt'](a * a + b * b),
    'sin_cos': lambda F, a, b: (F['sin'](a) * F['cos'](b) - F['cos'](a)) / (b + 2.0),
    'reflected': lambda F, a, b: 2.0 / a - 3.0 ** b + (1.0 - a) * (2.0 + b),
}


@pytest.mark.parametrize('name', list(EXPRESSIONS))
def test_value_tensor_grad_and_finite_differences_agree(name):
    expr = EXPRESSIONS[name]
    a0, b0 = 0.7, 1.3
    va, vb = Value(a0), Value(b0)            # micrograd-style scalar engine
    vout = expr(VALUE_FNS, va, vb)
    vout.backward()
    ta, tb = leaf(a0), leaf(b0)              # 0-d Tensors
    tout = expr(ARRAY_FNS, ta, tb)
    tout.backward()
    # cr.grad through the same expression on Tensors whose data are traced
    gout = cr.grad(lambda a, b: expr(ARRAY_FNS, cr.Tensor(a), cr.Tensor(b)).data,
                   argnums=(0, 1))(a0, b0)
    h = 1e-6                                 # centred finite differences on Python floats

    def f(a, b):
        return expr(VALUE_FNS, Value(a), Value(b)).data

    fd = [(f(a0 + h, b0) - f(a0 - h, b0)) / (2 * h), (f(a0, b0 + h) - f(a0, b0 - h)) / (2 * h)]
    assert tout.shape == () and tout.item() == pytest.approx(vout.data, rel=1e-14)
    for i, (v, t, g, d) in enumerate(zip([va.grad, vb.grad], [ta.grad.item(), tb.grad.item()],
                                         gout, fd)):
        assert t == pytest.approx(v, rel=1e-12), f'{name}: Tensor vs Value, argument {i}'
        assert g == pytest.approx(v, rel=1e-12), f'{name}: grad vs Value, argument {i}'
        assert d == pytest.approx(v, rel=1e-6), f'{name}: finite differences, argument {i}'


# --- PyTorch -------------------------------------------------------------------------------------

def _lib(torch=None):
    """The few functions the programs below need, in chainrule's or torch's spelling."""
    if torch is None:
        return dict(tanh=cnp.tanh, log=cnp.log, exp=cnp.exp,
                    sum=lambda t, axis=None, keepdims=False:
                    t.sum() if axis is None else t.sum(axis, keepdim=keepdims),
                    max=lambda t, axis: t.max(axis).values)   # Tensor speaks PyTorch here
    return dict(tanh=torch.tanh, log=torch.log, exp=torch.exp,
                sum=lambda t, axis=None, keepdims=False:
                t.sum() if axis is None else t.sum(axis, keepdim=keepdims),
                max=lambda t, axis: t.max(axis).values)


TORCH_PROGRAMS = {
    'mlp': lambda L, x, w1, w2: L['sum'](L['tanh'](x @ w1) @ w2),
    'softmax_xent': lambda L, x, w1, w2: -L['sum'](L['log'](
        L['exp'](x @ w1) / L['sum'](L['exp'](x @ w1), 1, True))[:, 0]) / 5.0,
    'indexing_and_max': lambda L, x, w1, w2: L['sum'](L['max'](
        x[:, 1:] * w1[1:, :2].T[0], 1) ** 2) + L['sum'](w2[[0, 0, 2]] * 3.0),
}


@pytest.mark.parametrize('name', list(TORCH_PROGRAMS))
def test_tensor_gradients_match_torch(name):
    torch = pytest.importorskip('torch')
    torch.set_num_threads(1)
    prog = TORCH_PROGRAMS[name]
    data = [RNG.standard_normal(s) for s in [(5, 3), (3, 4), (4, 2)]]
    ours = [cr.Tensor(d, requires_grad=True) for d in data]
    theirs = [torch.tensor(d, requires_grad=True) for d in data]
    lo = prog(_lib(), *ours)
    lo.backward()
    lt = prog(_lib(torch), *theirs)
    lt.backward()
    assert lo.item() == pytest.approx(lt.item(), rel=1e-12)
    for a, b in zip(ours, theirs):
        if b.grad is None:      # an input the loss does not use: no .grad in either library
            assert a.grad is None
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


# --- Tensor code inside transforms ---------------------------------------------------------------

@pytest.mark.parametrize('create_graph', [False, True])
def test_backward_inside_grad_is_differentiated_by_grad(create_graph):
    # a gradient penalty: d/dx sum(d/dw sum(sin(w) w)) = 2 cos x - x sin x. Under cr.grad the
    # Tensor's data is traced, so its .grad stays traced whatever create_graph says
    def f(x):
        w = cr.Tensor(x, requires_grad=True)
        (cnp.sin(w) * w).sum().backward(create_graph=create_graph)
        return w.grad.sum()

    x = np.array([0.3, 1.1])
    np.testing.assert_allclose(cr.grad(f)(x), 2 * np.cos(x) - x * np.sin(x), rtol=1e-14)


def test_repr():
    assert repr(sum(cr.tensor([1.0, 2.0], requires_grad=True))) == 'Tensor(3., grad_fn=add)'
    assert repr(cr.tensor([1.0], dtype=np.float32)) == 'Tensor([1.], dtype=float32)'
    assert repr(leaf([1.0])) == 'Tensor([1.], requires_grad=True)'


def test_complex_tensors_follow_the_same_convention_as_grad():
    # JAX's convention, as cr.grad: d|z|^2 gives 2 conj(z) (PyTorch's .grad is 2 z)
    z0 = np.array([1 + 2j, 0.5 - 1j])
    z = leaf(z0)
    (abs(z) ** 2).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), 2 * np.conj(z0))
    np.testing.assert_allclose(z.grad.numpy(),
                               cr.grad(lambda w: cnp.sum(cnp.abs(w) ** 2))(z0))
    x = leaf([1.0, 2.0])          # a real leaf through complex intermediates keeps a real grad
    cnp.abs(x * 1j + 1).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), np.array([1.0, 2.0]) / np.sqrt([2.0, 5.0]))


def test_backward_of_a_complex_scalar_without_gradient_is_refused():
    # PyTorch refuses: the implicit seed 1 would silently give the holomorphic derivative
    z = cr.tensor(np.array([1 + 2j]), requires_grad=True)
    with pytest.raises(cr.GradientError, match='real scalar'):
        (z * z).sum().backward()
    (z.conj() * z).real.sum().backward()          # a real loss: 2 z in JAX's convention
    np.testing.assert_allclose(z.grad.numpy(), [2 - 4j])
