"""In-place writes, inside a transform, into Tensors made outside it (combination tests).

A function that closes over a Tensor and writes a traced value into it (`buf.add_(x)` inside
`grad` or `vmap`) used to leave the transform's tracer inside the Tensor after the transform
returned: every later use computed with a dead tracer. Such a write is refused with the fix
(PyTorch's torch.func refuses it too), except where the value carries nothing of the transform
but its value (written under `no_grad()`, `detach()`ed, or not traced at all), which is written
as eagerly. Inside `jit` such writes are staged and written back (tests/test_combo_jit_mutation.py).
"""

import numpy as np
import pytest

import chainrule as cr
from chainrule import lax
from chainrule.core import ChainruleError

X = np.array([0.5, -1.0, 2.0])

# each write: (name, function of (buf, x) that writes a value depending on x into buf)
WRITES = [
    ('add_', lambda buf, x: buf.add_(x)),
    ('mul_', lambda buf, x: buf.mul_(x)),
    ('copy_', lambda buf, x: buf.copy_(x * 2)),
    ('setitem', lambda buf, x: buf.__setitem__(0, x[1])),
    ('setitem_slice', lambda buf, x: buf.__setitem__(slice(1, 3), x[:2])),
    ('iadd_view', lambda buf, x: buf[1:].add_(x[1:])),
]


def _transforms():
    """(name, run f(x) -> a scalar through the transform)."""
    return [
        ('grad', lambda f: cr.grad(f)(X)),
        ('value_and_grad', lambda f: cr.value_and_grad(f)(X)),
        ('vjp', lambda f: cr.vjp(f, X)[1](1.0)),
        ('jvp', lambda f: cr.jvp(f, (X,), (np.ones(3),))),
        ('jacrev', lambda f: cr.jacrev(f)(X)),
        ('hessian', lambda f: cr.hessian(f)(X)),
        ('vmap', lambda f: cr.vmap(f)(np.stack([X, 2 * X]))),
        ('func.grad', lambda f: cr.func.grad(f)(cr.tensor(X))),
        ('func.vmap', lambda f: cr.func.vmap(f)(cr.tensor(np.stack([X, X])))),
        ('scan', lambda f: lax.scan(lambda c, x: (c + f(x), None), 0.0, np.stack([X, X]))),
    ]


@pytest.mark.parametrize('tname,run', _transforms(), ids=[n for n, _ in _transforms()])
@pytest.mark.parametrize('wname,write', WRITES, ids=[n for n, _ in WRITES])
def test_a_traced_write_into_an_outside_tensor_is_refused_and_leaves_it_intact(tname, run,
                                                                                 wname, write):
    buf = cr.tensor(np.array([1.0, 2.0, 3.0]))
    v0 = buf._version[0]

    def f(x):
        write(buf, x)
        return (x * x).sum()

    with pytest.raises(ChainruleError, match='made outside the .* being traced') as e:
        run(f)
    assert 'argument' in str(e.value)          # names the fix
    assert type(buf.data) is np.ndarray        # no tracer left inside
    # the refused write changed nothing (a write through a view of a slice may have been
    # refused after nothing was stored either)
    np.testing.assert_array_equal(buf.data, [1.0, 2.0, 3.0])
    assert buf._version[0] in (v0, v0 + 1)
    # and the Tensor still works eagerly
    np.testing.assert_array_equal((buf * 2).numpy(), [2.0, 4.0, 6.0])


@pytest.mark.parametrize('tname,run', [t for t in _transforms() if t[0] in
                                       ('grad', 'value_and_grad', 'vjp', 'jacrev', 'hessian',
                                        'func.grad', 'jvp')],
                         ids=lambda v: v if isinstance(v, str) else '')
def test_a_write_under_no_grad_or_of_a_detached_value_is_written_as_its_value(tname, run):
    """Under grad (and jvp), a value written under no_grad(), or detach()ed, carries no
    derivative: its value is written, as eagerly (BatchNorm's running statistics are such a
    write)."""
    buf = cr.zeros(3, dtype=cr.float64)
    calls = []

    def f(x):
        with cr.no_grad():
            buf.add_(x)
        calls.append(1)
        return (x * x).sum()

    run(f)
    assert type(buf.data) is np.ndarray
    # hessian and jacrev run the function once per trace; each call adds x's value once
    np.testing.assert_allclose(buf.numpy(), len(calls) * X)

    buf2 = cr.zeros(3, dtype=cr.float64)
    if tname in ('grad', 'func.grad'):
        def g(x):
            buf2.copy_((x if isinstance(x, cr.Tensor) else cr.tensor(x)).detach() * 3)
            return (x * x).sum()
        grad = cr.grad(g)(X) if tname == 'grad' else cr.func.grad(g)(cr.tensor(X))
        np.testing.assert_allclose(np.asarray(grad.numpy() if hasattr(grad, 'numpy')
                                              else grad), 2 * X)
        np.testing.assert_allclose(buf2.numpy(), 3 * X)


def test_a_write_of_an_untraced_value_inside_a_transform_is_written():
    count = cr.zeros((), dtype=cr.int64)

    def f(x):
        count.add_(1)
        return (x * x).sum()

    np.testing.assert_allclose(cr.grad(f)(X), 2 * X)
    cr.vmap(f)(np.stack([X, X]))
    assert int(count.item()) == 2


def test_batchnorm_training_under_func_grad_updates_running_stats_as_torch():
    torch = pytest.importorskip('torch', reason='the reference values come from PyTorch')
    x = np.random.default_rng(0).normal(size=(5, 3))
    bn = cr.nn.BatchNorm1d(3, dtype=cr.float64)
    tb = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    params = dict(bn.named_parameters())
    g = cr.func.grad(lambda p, x: cr.func.functional_call(bn, p, (x,)).pow(2).sum())(
        params, cr.tensor(x))
    tb(torch.tensor(x)).pow(2).sum().backward()
    np.testing.assert_allclose(bn.running_mean.numpy(), tb.running_mean.numpy())
    np.testing.assert_allclose(bn.running_var.numpy(), tb.running_var.numpy())
    assert int(bn.num_batches_tracked.item()) == 1
    np.testing.assert_allclose(g['weight'].numpy(), tb.weight.grad.numpy(), atol=1e-12)


# --- no_grad() and detach() inside a transform ---------------------------------------------------
# torch.func.grad respects a no_grad() block and detach() inside the function (their values are
# constants to it); forward mode (jvp) is not governed by grad mode. These used to be ignored by
# every transform (the gradient went through), and by jit's staged program.

def _y_no_grad(x):
    with cr.no_grad():
        y = x * 2
    return (y * x).sum()


def _y_detach(x):
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    return (x.detach() * 2 * x).sum()


def _y_nested(x):
    with cr.no_grad():
        with cr.enable_grad():      # recording again: the gradient goes through y
            y = x * 2
    return (y * x).sum()


CASES = [('no_grad', _y_no_grad, 2.0), ('detach', _y_detach, 2.0), ('enable_grad', _y_nested, 4.0)]
X3 = np.array([1.0, 2.0, 3.0])


def _ways(f):
    """Each way of taking the gradient of f at X3, as an array."""
    def eager(fn):
        w = cr.tensor(X3, requires_grad=True)
        fn(w).backward()
        return w.grad.numpy()
    arr = lambda v: np.asarray(v.numpy() if isinstance(v, cr.Tensor) else v)   # noqa: E731
    return {
        'grad': lambda: arr(cr.grad(f)(X3)),
        'func.grad': lambda: arr(cr.func.grad(f)(cr.tensor(X3))),
        'vjp': lambda: arr(cr.vjp(f, X3)[1](1.0)[0]),
        'jacrev': lambda: arr(cr.jacrev(f)(X3)),
        'eager': lambda: eager(f),
        'jit-eager': lambda: eager(cr.jit(f)),
        'grad(jit)': lambda: arr(cr.grad(cr.jit(f))(X3)),
        'func.grad(jit)': lambda: arr(cr.func.grad(cr.jit(f))(cr.tensor(X3))),
        'jit(grad)': lambda: arr(cr.jit(cr.grad(f))(X3)),
        'vmap(grad)': lambda: arr(cr.vmap(cr.grad(f))(np.stack([X3, X3])))[1],
        'grad in no_grad': lambda: _outer_no_grad(lambda: arr(cr.grad(f)(X3))),
    }


def _outer_no_grad(run):
    with cr.no_grad():            # an outer no_grad() does not stop a transform begun inside it
        return run()


@pytest.mark.parametrize('way', list(_ways(_y_no_grad)))
@pytest.mark.parametrize('case,f,slope', CASES, ids=[c[0] for c in CASES])
def test_no_grad_and_detach_inside_a_transform_cut_the_gradient_as_torch(case, f, slope, way):
    # analytic: y is a constant 2x (or, under enable_grad, differentiable): d/dx sum(y x)
    np.testing.assert_allclose(_ways(f)[way](), slope * X3)


@pytest.mark.parametrize('case,f,slope', CASES, ids=[c[0] for c in CASES])
def test_reference_torch_func_agrees(case, f, slope):
    torch = pytest.importorskip('torch', reason='the reference values come from PyTorch')

    def tf(x):
        if case == 'detach':
            return (x.detach() * 2 * x).sum()
        with torch.no_grad():
            if case == 'enable_grad':
                with torch.enable_grad():
                    y = x * 2
            else:
                y = x * 2
        return (y * x).sum()
    t = torch.tensor(X3)
    np.testing.assert_allclose(torch.func.grad(tf)(t).numpy(), slope * X3)
    # forward mode: grad mode does not govern it (torch.func.jvp's tangent goes through y)
    _, tt = torch.func.jvp(tf, (t,), (torch.ones(3),))
    # (detach() cuts forward mode too, in both libraries)
    for fn in (f, cr.jit(f)):
        _, ct = cr.jvp(fn, (X3,), (np.ones(3),))
        np.testing.assert_allclose(float(ct), tt.item())


def test_hessian_with_no_grad_inside_follows_torch():
    torch = pytest.importorskip('torch', reason='the reference values come from PyTorch')

    def tf(x):
        with torch.no_grad():
            y = x * x
        return (y * x).sum()

    def cf(x):
        with cr.no_grad():
            y = x * x
        return (y * x).sum()
    want = torch.func.hessian(tf)(torch.tensor(X3)).numpy()     # jacfwd(jacrev): 2 diag(x)
    np.testing.assert_allclose(cr.hessian(cf)(X3), want)
    np.testing.assert_allclose(cr.hessian(cr.jit(cf))(X3), want)
