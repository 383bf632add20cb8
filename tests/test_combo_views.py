"""Mutation, views and aliasing of `Tensor`, as combinations (issue 10, class 2).

The product test runs one program in chainrule and in PyTorch: every in-place operation x every
view kind x grad mode on/off x the kind of base (a leaf that requires grad, a non-leaf, a leaf
without grad) x the kind of operand (requiring grad or not). It compares, stage by stage, what
happened: the values of the base and the view, which of them require grad, the gradients of a
loss using both afterwards, and whether backward through a value saved *before* the write
raises -- where PyTorch raises (an in-place operation on a view of a leaf, a saved value
modified), chainrule must raise too, and where PyTorch computes, chainrule must compute the
same numbers. The reproductions from the issue and the thread test follow.
"""

import contextlib
import sys
import threading

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import ChainruleError

TORCH_REASON = 'PyTorch is the reference for view and in-place semantics (pip install torch)'

X = np.array([[0.3, -1.2, 2.0], [1.5, 0.7, -0.4]])
RNG = np.random.default_rng(0)


class Chainrule:
    """The program's library: chainrule."""

    errors = (ChainruleError,)

    def tensor(self, a, requires_grad=False):
        return cr.tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)

    sin = staticmethod(cnp.sin)
    no_grad = staticmethod(cr.no_grad)

    @staticmethod
    def values(t):
        return np.array(t.detach().numpy())

    @staticmethod
    def grad(t):
        return None if t.grad is None else np.array(t.grad.numpy())


class Torch:
    """The same program's library: PyTorch."""

    def __init__(self, torch):
        self.torch = torch
        self.errors = (RuntimeError,)
        self.sin = torch.sin
        self.no_grad = torch.no_grad

    def tensor(self, a, requires_grad=False):
        return self.torch.tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)

    @staticmethod
    def values(t):
        return t.detach().numpy().copy()

    @staticmethod
    def grad(t):
        return None if t.grad is None else t.grad.numpy().copy()


# the view kinds: each a view of the (2, 3) base in both libraries
VIEWS = {
    'slice': lambda b: b[:, 1:],
    'row': lambda b: b[1],
    'newaxis': lambda b: b[None],
    'ellipsis': lambda b: b[...],
    'reshape': lambda b: b.reshape(3, 2),
    'view': lambda b: b.view(3, 2),
    'flatten': lambda b: b.flatten(),
    'ravel': lambda b: b.ravel(),
    'swapaxes': lambda b: b.swapaxes(0, 1),
    'T': lambda b: b.T,
    'mT': lambda b: b.mT,
    'transpose': lambda b: b.transpose(1, 0),    # the same swap in NumPy's and PyTorch's terms
    'view_of_view': lambda b: b.T[1:],
    'detach': lambda b: b.detach(),              # shares memory and version, not history
}


def _bcast(o):
    return o[..., :1]                            # broadcasts back to o's shape


# the in-place operations: (op(view, operand), whether the operand is used)
OPS = {
    '+=': lambda v, o: v.__iadd__(o),
    '-=': lambda v, o: v.__isub__(o),
    '*=': lambda v, o: v.__imul__(o),
    '/=': lambda v, o: v.__itruediv__(o),
    'add_': lambda v, o: v.add_(o),
    'add_alpha': lambda v, o: v.add_(o, alpha=2.0),
    'sub_': lambda v, o: v.sub_(o),
    'mul_': lambda v, o: v.mul_(o),
    'div_': lambda v, o: v.div_(o),
    'zero_': lambda v, o: v.zero_(),
    'fill_': lambda v, o: v.fill_(2.5),
    'fill_tensor': lambda v, o: v.fill_(o.sum()),
    'copy_': lambda v, o: v.copy_(o),
    'copy_broadcast': lambda v, o: v.copy_(_bcast(o)),
    'setitem': lambda v, o: v.__setitem__(0, o[0]),
    'setitem_all': lambda v, o: v.__setitem__(Ellipsis, o),
    'setitem_mask': lambda v, o: v.__setitem__(v > 0.5, 7.0),
    'scalar_mul': lambda v, o: v.__imul__(3.0),
    '**=': lambda v, o: v.__ipow__(2.0),
    '%=': lambda v, o: v.__imod__(o),
}
NO_OPERAND = {'zero_', 'fill_', 'setitem_mask', 'scalar_mul', '**='}


def program(L, op, view, grad_on, base, operand):
    """What happens, stage by stage, as a dict (a stage that raised holds 'raise')."""
    out = {}
    leaf = L.tensor(X, requires_grad=True)
    b = {'leaf': lambda: leaf, 'nonleaf': lambda: leaf * 1.5,
         'plain': lambda: L.tensor(X)}[base]()
    pre = L.sin(b)           # saves b for its backward pass
    pre2 = b * 2.0           # saves only the constant: modifying b does not matter to it
    v = VIEWS[view](b)
    shape = tuple(v.shape)
    o = L.tensor(RNG_O[shape], requires_grad=operand == 'grad')
    try:
        with contextlib.nullcontext() if grad_on else L.no_grad():
            OPS[op](v, o)
    except L.errors:
        out['op'] = 'raise'
        return out
    out['b'], out['v'] = L.values(b), L.values(v)
    out['requires_grad'] = (bool(b.requires_grad), bool(v.requires_grad))
    kb = L.tensor(KB)
    loss = (b * kb).sum() + (v * L.tensor(KV[shape])).sum()
    for name, y in (('loss', loss), ('pre', (pre * kb).sum()), ('pre2', (pre2 * kb).sum())):
        leaf.grad = o.grad = None
        if not y.requires_grad:
            out[name] = 'no grad'
            continue
        try:
            y.backward(retain_graph=True)
        except L.errors:
            out[name] = 'raise'
            continue
        out[name] = (L.grad(leaf), L.grad(o))
    return out


KB = RNG.standard_normal(X.shape)
_SHAPES = [(2, 2), (3,), (1, 2, 3), (2, 3), (3, 2), (6,)]
KV = {s: RNG.standard_normal(s) for s in _SHAPES}
RNG_O = {s: RNG.uniform(0.5, 2.0, s) for s in _SHAPES}


def _same(a, b, where):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f'{where}[{k}]')
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray), (where, a, b)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=where)
    else:
        assert a == b, (where, a, b)


OP_OPERANDS = [(op, operand) for op in OPS for operand in ('grad', 'const')
               if not (op in NO_OPERAND and operand == 'grad')]


@pytest.mark.parametrize('base', ['leaf', 'nonleaf', 'plain'])
@pytest.mark.parametrize('grad_on', [True, False], ids=['grad', 'no_grad'])
@pytest.mark.parametrize('view', list(VIEWS))
@pytest.mark.parametrize('op,operand', OP_OPERANDS)
def test_inplace_through_views_matches_pytorch(op, operand, view, grad_on, base):
    torch = pytest.importorskip('torch', reason=TORCH_REASON)
    ours = program(Chainrule(), op, view, grad_on, base, operand)
    ref = program(Torch(torch), op, view, grad_on, base, operand)
    assert list(ours) == list(ref), (ours, ref)
    for stage in ref:
        _same(ours[stage], ref[stage], stage)


# --- the reproductions and the cases around them ------------------------------------------

def test_write_through_a_view_under_no_grad_is_detected():
    x = cr.tensor([1., 2.], requires_grad=True)
    y = cnp.sin(x)
    v = x[0:1]
    with cr.no_grad():
        v += 1
    assert x.numpy().tolist() == [2., 2.]
    with pytest.raises(cr.GradientError, match=r"saved by 'sin'.*modified in place"):
        y.sum().backward()


def test_inplace_on_a_view_is_recorded_on_the_base():
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    y = x * 1.0
    v = y[0:2]
    v *= 10
    np.testing.assert_array_equal(y.numpy(), [10., 20., 3.])
    y.sum().backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [10., 10., 1.])
    x.grad = None
    v.sum().backward()       # the view's history is the view of the base's new history
    np.testing.assert_array_equal(x.grad.numpy(), [10., 10., 0.])


def test_several_views_of_views_and_inplace_on_the_base():
    # y = 2x; a, b overlapping views; c a view of the view a; writes through each and the base
    x = cr.tensor(np.arange(1., 7.), requires_grad=True)
    y = x * 2.0
    a, b = y[0:4], y[2:6]
    c = a.reshape(2, 2)[:, 1]          # y[1], y[3]
    a *= 3.0                           # y[0:4] *= 3
    c += x[4:6]                        # y[1] += x4, y[3] += x5
    y *= x                             # the base, after its views were written
    b -= 1.0
    want_y = np.array([6., 12. + 5., 18., 24. + 6., 10., 12.]) * np.arange(1., 7.)
    want_y[2:6] -= 1.0
    np.testing.assert_allclose(y.numpy(), want_y)
    np.testing.assert_allclose(np.concatenate([a.numpy(), b.numpy()[2:]]), want_y)
    np.testing.assert_allclose(c.numpy(), want_y[[1, 3]])
    # d/dx of sum(y): y_i = x_i * (s_i * 2 x_i [+ x_{i+3}]), s = 3 on 0:4
    y.sum().backward(retain_graph=True)
    xs = np.arange(1., 7.)
    want = 2 * np.array([3, 3, 3, 3, 1, 1.]) * 2 * xs
    want[1] += xs[4]
    want[3] += xs[5]
    want[4] += xs[1]
    want[5] += xs[3]
    np.testing.assert_allclose(x.grad.numpy(), want)
    x.grad = None
    c.sum().backward()                 # c's history follows the base's latest
    want_c = np.zeros(6)
    want_c[[1, 3]] = 2 * 3 * 2 * xs[[1, 3]] + xs[[4, 5]]
    want_c[[4, 5]] = xs[[1, 3]]
    np.testing.assert_allclose(x.grad.numpy(), want_c)


def test_views_made_before_the_base_requires_grad_follow_it():
    w = cr.tensor([1., 2.], requires_grad=True)
    y = cr.tensor(np.zeros(3))
    v = y[0:2]
    y[1:] = w * 3.0                    # y now has history; v is regenerated from it
    assert y.requires_grad and not y.is_leaf and v.requires_grad
    np.testing.assert_array_equal(v.numpy(), [0., 3.])
    v.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3., 0.])


def test_refused_inplace_operations_name_the_reason():
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    with pytest.raises(cr.GradientError, match='view of a leaf Tensor that requires grad'):
        x[0:2].mul_(2.0)
    with pytest.raises(cr.GradientError, match='leaf Tensor that requires grad'):
        x.zero_()
    y = x * 1.0
    with cr.no_grad():
        v = y[0:2]
    with pytest.raises(cr.GradientError, match='view made under no_grad'):
        v *= 2.0
    with cr.no_grad():
        v *= 2.0                        # allowed: nothing is recorded
    np.testing.assert_array_equal(y.numpy(), [2., 4., 3.])
    b = cr.tensor([1., 2.]).reshape(1, 2)
    e = cnp.broadcast_to(b, (3, 2))
    with pytest.raises(ChainruleError, match='read-only view'):
        e += 1.0
    z = cr.tensor([1 + 2j, 3j], requires_grad=True) * 1.0
    with pytest.raises(cr.GradientError, match=r'\.real or \.imag'):
        z.real.mul_(2.0)


def test_a_view_made_a_leaf_that_requires_grad_is_refused_too():
    y = cr.tensor(np.zeros(3))
    v = y[0:2].requires_grad_()
    assert v.is_leaf
    with pytest.raises(cr.GradientError, match='view of a leaf'):
        v.mul_(2.0)


def test_optimizer_steps_and_init_bump_the_counter_shared_with_views():
    from chainrule import nn, optim
    w = nn.Parameter(np.array([1., 2., 3.]))
    y = cnp.sin(w[0:2])                  # sin saves the view's values
    opt = optim.SGD([w], lr=0.1)
    y.sum().backward(retain_graph=True)
    opt.step()
    with pytest.raises(cr.GradientError, match="'sin'"):
        y.sum().backward()
    lin = nn.Linear(3, 2, rng=0)
    z = cnp.sin(lin.weight.T)            # a transposed view of the parameter
    nn.init.zeros_(lin.weight)
    with pytest.raises(cr.GradientError, match="'sin'"):
        z.sum().backward()


def test_every_augmented_assignment_writes_in_place():
    # Python runs `t op= x` as `t = t op x` when the type has no in-place method: the view's
    # base would silently keep its old values
    cases = {'//=': (lambda v: v.__ifloordiv__(2), np.array([2., 3., 3.])),
             '&=': (lambda v: v.__iand__(1), np.array([1, 1, 3])),
             '|=': (lambda v: v.__ior__(8), np.array([13, 15, 3])),
             '^=': (lambda v: v.__ixor__(1), np.array([4, 6, 3]))}
    for name, (op, want) in cases.items():
        y = cr.tensor(np.array([5, 7, 3], dtype=want.dtype))
        v = y[0:2]
        assert op(v) is v
        np.testing.assert_array_equal(y.numpy(), want, err_msg=name)
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    y = x * 1.0
    v = y[1:]
    v **= 2
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1., 4., 6.])     # PyTorch's


def test_real_and_imag_views_share_the_version_counter():
    x = cr.tensor([1 + 2j, 3 - 1j], requires_grad=True)
    y = x * x                            # saves x
    with cr.no_grad():
        x.imag[...] = 0.0
    np.testing.assert_array_equal(x.numpy(), [1., 3.])
    with pytest.raises(cr.GradientError, match="'mul'"):
        y.real.sum().backward()


def test_views_of_a_0d_base():
    # NumPy returns scalars, not 0-d arrays, from operations on 0-d arrays; a view of one
    # must still write through, as in PyTorch
    x = cr.tensor(2.0, requires_grad=True)
    y = x * 1.0
    v = y.reshape(1)
    w = y[None, None]
    v *= 3.0
    assert y.item() == 6.0 and w.numpy().tolist() == [[6.0]]
    y.backward(retain_graph=True)
    assert x.grad.item() == 3.0
    x.grad = None
    w.sum().backward()
    assert x.grad.item() == 3.0


def test_reshape_of_a_non_contiguous_tensor_is_a_copy_and_view_refuses():
    y = cr.tensor(X).T
    r = y.reshape(6)                     # a copy, as in NumPy and PyTorch: no shared counter
    r += 1.0
    np.testing.assert_array_equal(y.numpy(), X.T)
    with pytest.raises(cr.ShapeError, match='without copying'):
        y.view(6)
    with pytest.raises(TypeError, match='astype'):
        y.view(np.float32)
    assert cr.tensor(X).view(3, 2).view(6).shape == (6,)


def test_assignments_overwrite_inf_and_nan():
    t = cr.tensor([-np.inf, np.nan, 2.])
    np.testing.assert_array_equal(t.zero_().numpy(), [0., 0., 0.])
    t = cr.tensor([-np.inf, np.nan, 2.])
    np.testing.assert_array_equal(t.fill_(5.0).numpy(), [5., 5., 5.])
    t = cr.tensor([-np.inf, np.nan, 2.])
    np.testing.assert_array_equal(t.copy_(cr.tensor([1., 2., 3.])).numpy(), [1., 2., 3.])
    # recorded: zero gradient for the overwritten values, identity for copy_'s source
    x = cr.tensor([-np.inf, np.nan, 2.], requires_grad=True)
    s = cr.tensor([4., 5., 6.], requires_grad=True)
    y = x * 1.0
    y.copy_(s)
    np.testing.assert_array_equal(y.numpy(), [4., 5., 6.])
    (y * cr.tensor([1., 2., 3.])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0., 0., 0.])
    np.testing.assert_array_equal(s.grad.numpy(), [1., 2., 3.])
    x.grad = None
    y = x * 1.0
    y.zero_()
    y.fill_(cr.tensor(2.0))
    np.testing.assert_array_equal(y.numpy(), [2., 2., 2.])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0., 0., 0.])


def test_copy_casts_and_broadcasts_like_pytorch():
    torch = pytest.importorskip('torch', reason=TORCH_REASON)
    t = cr.tensor(np.zeros((2, 3), np.float32))
    t.copy_(np.array([1.5, 2.5, 3.5]))
    r = torch.zeros((2, 3)).copy_(torch.tensor([1.5, 2.5, 3.5], dtype=torch.float64))
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), r.numpy())
    i = cr.tensor(np.zeros(3, np.int64))
    i.copy_(cr.tensor([1.7, -2.7, 3.2]))
    ri = torch.zeros(3, dtype=torch.int64).copy_(torch.tensor([1.7, -2.7, 3.2]))
    np.testing.assert_array_equal(i.numpy(), ri.numpy())
    with pytest.raises(cr.ShapeError, match=r'copy_.*\(2,\).*\(2, 3\)'):
        t.copy_(np.ones(2))


def test_numpy_of_a_tensor_that_requires_grad_is_read_only():
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    y = cnp.sin(x)
    a = x.numpy()
    assert np.shares_memory(a, x.data) and not a.flags.writeable
    with pytest.raises(ValueError, match='read-only'):
        a[0] = 5.0
    assert not np.asarray(x).flags.writeable and not y.numpy().flags.writeable
    np.asarray(x, dtype=np.float32)[0] = 1.0            # a converted copy is the caller's
    d = x.detach().numpy()                              # shares memory, writable (PyTorch)
    assert d is x.data and d.flags.writeable
    with cr.no_grad():
        x.detach()[0] = 9.0                             # through the Tensor: detected
    assert a[0] == 9.0
    with pytest.raises(cr.GradientError, match="'sin'"):
        y.sum().backward()
    assert cr.tensor([1., 2.]).numpy().flags.writeable  # no grad: a plain shared array


def test_aliases_without_history_share_the_version_counter():
    x = cr.tensor([1., 2.], requires_grad=True)
    for alias in (x.detach(), cr.Tensor(x), cr.stop_gradient(x)):
        y = cnp.sin(x)
        with cr.no_grad():
            alias *= 1.0
        with pytest.raises(cr.GradientError, match="'sin'"):
            y.sum().backward()
    fresh = cr.Tensor(x, dtype=np.float32)              # a converted copy: its own counter
    assert fresh._version is not x._version


def test_inplace_with_an_operand_that_shares_memory_raises_like_pytorch():
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    y = x * 1.0
    y *= y                  # mul saved y as its operand too, and y changed: PyTorch raises
    with pytest.raises(cr.GradientError, match="'mul'"):
        y.sum().backward()
    y = x * 1.0
    y *= 2.0                # the operand is a constant: the old y is not needed
    y += x                  # add needs no values at all
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3., 3., 3.])


def test_mul_inplace_keeps_the_old_value_it_needs():
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    w = cr.tensor([4., 5., 6.], requires_grad=True)
    y = x * 1.0
    v = y[1:]
    v *= w[1:]              # d/dw needs the old y[1:], which the write overwrites
    v /= w[1:]              # and d/dw of this needs the product
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1., 1., 1.])
    np.testing.assert_allclose(w.grad.numpy(), [0., 0., 0.], atol=1e-15)
    np.testing.assert_allclose(y.numpy(), [1., 2., 3.])


def test_shape_only_uses_of_a_saved_value_do_not_raise():
    # PyTorch's SumBackward and SliceBackward keep sizes, not values: neither does chainrule
    x = cr.tensor([1., 2., 3.], requires_grad=True)
    y = x * 1.0
    s, v = y.sum(), y[0:2]
    with cr.no_grad():
        y += 1.0
    s.backward(retain_graph=True)
    v.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2., 2., 1.])


def test_create_graph_through_an_inplace_view_write():
    torch = pytest.importorskip('torch', reason=TORCH_REASON)

    x = cr.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x * x
    y[1:] *= x[:2]
    y.sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    (g * g).sum().backward()
    tx = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    ty = tx * tx
    ty[1:] *= tx[:2]
    (tg,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    (tg * tg).sum().backward()
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_gradients_of_different_tensors_never_share_memory():
    # add's rule hands one cotangent to both arguments: each .grad must still be its own
    x = cr.tensor([1., 2.], requires_grad=True)
    a, b = x * 1.0, x * 2.0
    a.retain_grad()
    b.retain_grad()
    (a + b).sum().backward()
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.numpy(), [1., 1.])
    p = cr.tensor([1., 2.], requires_grad=True)
    q = cr.tensor([3., 4.], requires_grad=True)
    (p * q + q).sum().backward(create_graph=True)
    (p + q).sum().backward(create_graph=True)
    p2 = cr.tensor([1., 2.], requires_grad=True)
    q2 = cr.tensor([3., 4.], requires_grad=True)
    (p2 + q2).sum().backward(create_graph=True)
    assert p2.grad is not q2.grad
    with cr.no_grad():
        p2.grad.mul_(0.5)
    np.testing.assert_array_equal(q2.grad.numpy(), [1., 1.])
    np.testing.assert_array_equal(p.grad.detach().numpy(), [4., 5.])
    np.testing.assert_array_equal(q.grad.detach().numpy(), [3., 4.])


# --- class 5: threads accumulating into one leaf ----------------------------------------------------

@contextlib.contextmanager
def _fast_switching():
    # switch threads every microsecond, so a race in the accumulation would show
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _in_threads(work, n=4):
    errors = []

    def run():
        try:
            work()
        except Exception as e:      # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(n)]
    with _fast_switching():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


def test_backward_from_several_threads_accumulates_every_contribution():
    w = cr.tensor(np.ones(3), requires_grad=True)
    iters = 500

    def work():
        for _ in range(iters):
            (w * 2).sum().backward()
    _in_threads(work)
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 4 * iters * 2.0))


def test_retain_grad_and_create_graph_accumulate_from_several_threads():
    w = cr.tensor([1.5], requires_grad=True)
    h = w * 1.0
    h.retain_grad()
    iters = 300

    def work():
        for _ in range(iters):
            (h * 3.0).sum().backward(retain_graph=True)
    _in_threads(work)
    np.testing.assert_array_equal(h.grad.numpy(), [4 * iters * 3.0])
    np.testing.assert_array_equal(w.grad.numpy(), [4 * iters * 3.0])

    v = cr.tensor([1.5], requires_grad=True)

    def work2():
        for _ in range(iters // 3):
            (v * v).sum().backward(create_graph=True)     # .grad is a Tensor with history
    _in_threads(work2)
    n = 4 * (iters // 3)
    np.testing.assert_allclose(v.grad.numpy(), [n * 2 * 1.5])
    g = v.grad
    v.grad = None
    g.sum().backward()                                    # d/dv of n * 2v
    np.testing.assert_allclose(v.grad.numpy(), [2.0 * n])
