"""In-place writes inside `jit` (functionalization at the call boundary).

An in-place change of a Tensor a jitted function closes over -- a BatchNorm's running
statistics, a counter, an optimizer's state and parameters -- or of a Tensor argument is staged
while tracing and written back after every call, as the eager code would have done it. Each case
runs the same code eagerly (and, where PyTorch has it, in torch on the same weights) and
compares. Until this was built the first kind was refused at trace time and BatchNorm in
training mode raised ConcretizationError under jit.
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import nn, optim
from chainrule.core import ConcretizationError

RNG = np.random.default_rng(11)


def _np(x):
    return np.asarray(x.detach().numpy() if isinstance(x, cr.Tensor) else x)


# --- counters, ordering, dtypes, versions --------------------------------------------------------

def test_counter_counts_every_call_and_bumps_its_version_as_eagerly():
    counter = cr.tensor(np.array(0, np.int64))
    total = cr.tensor(np.zeros(2, np.float32))

    def step(x):
        counter.add_(1)
        total.add_(x)              # float64 into float32: cast as eagerly (same_kind)
        total.mul_(1.0)
        return x * 2

    f = cr.jit(step)
    for k in range(1, 5):
        f(np.full(2, 0.5))
        assert int(counter.item()) == k and counter.dtype == np.int64
        np.testing.assert_allclose(total.numpy(), [0.5 * k] * 2)
        assert total.dtype == np.float32
        assert counter._version[0] == k and total._version[0] == 2 * k
    assert f.cache_info().misses == 1
    # the same function run eagerly bumps the versions the same way
    counter2, total2 = cr.tensor(np.array(0, np.int64)), cr.tensor(np.zeros(2, np.float32))
    counter2.add_(1)
    total2.add_(np.full(2, 0.5))
    total2.mul_(1.0)
    assert counter2._version[0] == 1 and total2._version[0] == 2


def test_a_read_after_a_write_in_the_same_trace_sees_the_new_value():
    state = cr.tensor(np.array([1.0, 2.0]))

    def step(x):
        before = state * 1
        state.mul_(x)
        after = state + 0
        state.add_(1)
        return before, after, cnp.sum(state)

    f = cr.jit(step)
    s = state.numpy().copy()
    for x in (np.array([2.0, 3.0]), np.array([-1.0, 0.5])):
        before, after, total = f(x)
        np.testing.assert_allclose(_np(before), s)
        np.testing.assert_allclose(_np(after), s * x)
        s = s * x + 1
        np.testing.assert_allclose(_np(total), s.sum())
        np.testing.assert_allclose(state.numpy(), s)


def test_a_write_that_reads_nothing_and_integer_state():
    flag = cr.tensor(np.array([0, 0, 0]))
    f = cr.jit(lambda x: (flag.fill_(7), x + 1)[1])
    f(np.ones(1))
    np.testing.assert_array_equal(flag.numpy(), [7, 7, 7])
    flag.zero_()
    f(np.ones(1))
    np.testing.assert_array_equal(flag.numpy(), [7, 7, 7])


# --- views and aliasing --------------------------------------------------------------------------

def _views_program(buf, view):
    def step(x):
        buf[0] += 1                 # an element of a captured Tensor
        buf[2:] = x                 # a region
        view.mul_(2)                # a view made outside, captured: writes into buf
        return buf * 1, view * 1    # reads see every write, through either alias
    return step


def test_writes_through_views_and_aliases_match_eager():
    base = cr.tensor(np.arange(5.0))
    eager_buf = cr.tensor(np.arange(5.0))
    f = cr.jit(_views_program(base, base[1:3]))
    ref = _views_program(eager_buf, eager_buf[1:3])
    for x in (np.array([7.0, 8.0, 9.0]), np.array([-1.0, 0.0, 1.0])):
        got, want = f(x), ref(x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(_np(g), _np(w))
        np.testing.assert_allclose(base.numpy(), eager_buf.numpy())
    assert base._version[0] == eager_buf._version[0]


def _inner_views_program(buf):
    def step(x):
        v = buf[1:3]                # a view made inside the function: writes reach buf
        v += x[:2]
        w = buf.reshape(5)[3:]
        buf.mul_(2)                 # ... and a write to buf is seen through w
        d = buf.detach()            # an alias sharing buf's memory
        d[0] = -7.0
        t = buf.reshape(5, 1).T
        t[0, 4] = 0.5
        return v * 1, w * 1, buf[[0, 4]] * 1     # (advanced indexing: a copy, as eagerly)
    return step


def test_views_made_inside_the_function_write_through_as_eagerly():
    base, eager_buf = cr.tensor(np.arange(5.0)), cr.tensor(np.arange(5.0))
    f, ref = cr.jit(_inner_views_program(base)), _inner_views_program(eager_buf)
    for x in (np.array([7.0, 8.0, 9.0]), np.array([-1.0, 0.0, 1.0])):
        for g, w in zip(f(x), ref(x)):
            np.testing.assert_allclose(_np(g), _np(w))
        np.testing.assert_allclose(base.numpy(), eager_buf.numpy())
        assert base._version[0] == eager_buf._version[0]


def test_a_view_of_a_leaf_that_requires_grad_is_refused_in_grad_mode_as_eagerly():
    W = cr.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(cr.GradientError, match='view of a leaf Tensor'):
        W[0:2].add_(1)
    with pytest.raises(cr.GradientError, match='view of a leaf Tensor'):
        cr.jit(lambda x: (W[0:2].add_(1), x)[1])(np.ones(1))
    np.testing.assert_allclose(W.detach().numpy(), np.ones(3))


# --- Tensor arguments: written back, as torch.compile does ---------------------------------------

def test_in_place_change_of_a_tensor_argument_is_written_back():
    def step(x, y):
        x.mul_(2)
        x[0] = -1.0
        return x + y

    x, y = cr.tensor(np.array([1.0, 2.0, 3.0])), np.ones(3)
    xe = cr.tensor(np.array([1.0, 2.0, 3.0]))
    f = cr.jit(step)
    for _ in range(3):
        np.testing.assert_allclose(_np(f(x, y)), _np(step(xe, y)))
        np.testing.assert_allclose(x.numpy(), xe.numpy())
        assert x._version[0] == xe._version[0]
    # a NumPy array argument is a value (as in jax.jit): the caller's array is left alone
    a = np.array([1.0, 2.0])
    g = cr.jit(lambda v: v * 2)
    np.testing.assert_allclose(g(a), [2.0, 4.0])
    np.testing.assert_allclose(a, [1.0, 2.0])


def test_in_place_change_of_a_leaf_argument_that_requires_grad():
    w = cr.tensor(np.array([1.0, 2.0]), requires_grad=True)

    def bad(p):
        p.add_(1)
        return p * 1

    with pytest.raises(cr.GradientError, match='leaf Tensor .* requires grad'):
        cr.jit(bad)(w)
    np.testing.assert_allclose(w.numpy(), [1.0, 2.0])

    def sgd(p, g):
        with cr.no_grad():
            p.sub_(0.5 * g)
        return cnp.sum(p * p)

    f = cr.jit(sgd)
    out = f(w, np.array([2.0, 2.0]))
    np.testing.assert_allclose(w.detach().numpy(), [0.0, 1.0])
    assert w.is_leaf and w.requires_grad
    np.testing.assert_allclose(_np(out), 1.0)


# --- BatchNorm in training mode ------------------------------------------------------------------

def _cnn(momentum, track=True):
    cr.manual_seed(3)
    # (no bias before BatchNorm, as usual: its gradient is zero up to rounding noise, which
    # Adam would normalise into steps of either sign)
    return nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3, momentum=momentum,
                                                           track_running_stats=track),
                         nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def _grads(model):
    return {k: p.grad.numpy().copy() for k, p in model.named_parameters()}


@pytest.mark.parametrize('momentum', [0.1, None], ids=['momentum', 'cumulative'])
def test_batchnorm_training_under_jit_matches_eager(momentum):
    eager, jitted = _cnn(momentum), _cnn(momentum)
    f = cr.jit(lambda x: jitted(x))
    for step in range(4):
        x = RNG.standard_normal((5, 2, 6, 6)).astype(np.float32) * 2 + 1
        want, got = eager(x), f(x)
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-5)
        cnp.sum(want ** 2).backward()
        cnp.sum(got ** 2).backward()
        for k, g in _grads(eager).items():
            np.testing.assert_allclose(_grads(jitted)[k], g, rtol=1e-4, atol=1e-5,
                                       err_msg=f'{k} at step {step}')
        eager.zero_grad()
        jitted.zero_grad()
        be, bj = eager[1], jitted[1]
        np.testing.assert_allclose(bj.running_mean.numpy(), be.running_mean.numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(bj.running_var.numpy(), be.running_var.numpy(), rtol=1e-5,
                                   atol=1e-6)
        assert int(bj.num_batches_tracked.item()) == step + 1
        assert bj.running_mean._version[0] == be.running_mean._version[0]
        assert not bj.running_mean.requires_grad and bj.running_mean.is_leaf
    assert f.cache_info().misses == 1
    # evaluation afterwards, jitted too, uses the statistics accumulated under jit
    eager.eval()
    jitted.eval()
    x = RNG.standard_normal((3, 2, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(_np(cr.jit(lambda x: jitted(x))(x)), _np(eager(x)), rtol=1e-5,
                               atol=1e-5)


def _torch_cnn(model, momentum):
    torch = pytest.importorskip('torch', reason='PyTorch reference for BatchNorm training')
    tm = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, bias=False), torch.nn.BatchNorm2d(3, momentum=momentum),
                             torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    tm.load_state_dict({k: torch.tensor(np.array(v)) for k, v in model.state_dict().items()})
    return torch, tm


@pytest.mark.parametrize('momentum', [0.1, None], ids=['momentum', 'cumulative'])
def test_batchnorm_training_under_jit_matches_torch(momentum):
    ours = _cnn(momentum)
    torch, theirs = _torch_cnn(ours, momentum)
    f = cr.jit(lambda x: ours(x))
    for step in range(3):
        x = RNG.standard_normal((5, 2, 6, 6)).astype(np.float32) * 2 + 1
        got = f(x)
        want = theirs(torch.tensor(x))
        np.testing.assert_allclose(_np(got), want.detach().numpy(), rtol=1e-4, atol=1e-5)
        cnp.sum(got ** 2).backward()
        (want ** 2).sum().backward()
        for k, p in theirs.named_parameters():
            np.testing.assert_allclose(_grads(ours)[k], p.grad.numpy(), rtol=1e-4, atol=1e-4,
                                       err_msg=f'{k} at step {step}')
        ours.zero_grad()
        theirs.zero_grad()
        tb = theirs[1]
        np.testing.assert_allclose(ours[1].running_mean.numpy(), tb.running_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours[1].running_var.numpy(), tb.running_var.numpy(),
                                   rtol=1e-5, atol=1e-6)
        assert int(ours[1].num_batches_tracked.item()) == int(tb.num_batches_tracked)


def _loss_of(model):
    names = [k for k, _ in model.named_parameters()]

    def loss(params, x):
        out = cr.func.functional_call(model, dict(zip(names, params)), (x,))
        return cnp.sum(out ** 2)
    return loss


@pytest.mark.parametrize('where', ['jit(grad)', 'grad inside jit'])
def test_grad_through_batchnorm_training_with_jit(where):
    """The gradient flows through the batch statistics (not the running ones), and the
    running statistics move on every call, as eagerly and in torch."""
    eager, jitted = _cnn(0.1), _cnn(0.1)
    torch, theirs = _torch_cnn(eager, 0.1)
    g_eager = cr.grad(_loss_of(eager))
    if where == 'jit(grad)':
        g_jit = cr.jit(cr.grad(_loss_of(jitted)))
    else:
        inner = _loss_of(jitted)
        g_jit = cr.jit(lambda ps, x: [g * 1 for g in cr.grad(inner)(ps, x)])
    for step in range(3):
        x = RNG.standard_normal((4, 2, 6, 6)).astype(np.float32)
        want = g_eager([p for p in eager.parameters()], x)
        got = g_jit([p for p in jitted.parameters()], x)
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        for (k, tp), w, g in zip(theirs.named_parameters(), want, got):
            np.testing.assert_allclose(_np(g), _np(w), rtol=1e-4, atol=1e-5, err_msg=k)
            np.testing.assert_allclose(_np(g), tp.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=k)
        theirs.zero_grad()
        for m in (eager, jitted):
            np.testing.assert_allclose(m[1].running_mean.numpy(),
                                       theirs[1].running_mean.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(m[1].running_var.numpy(), theirs[1].running_var.numpy(),
                                       rtol=1e-5, atol=1e-6)
            assert int(m[1].num_batches_tracked.item()) == step + 1


def test_functional_call_updates_the_buffers_it_is_given_under_jit_as_torch():
    """torch.func.functional_call in training mode updates the buffer Tensors passed to it
    (the module's own stay); under jit they are Tensor arguments, written back."""
    model = _cnn(0.1)
    torch, theirs = _torch_cnn(model, 0.1)
    ours = {k: cr.tensor(v.numpy().copy()) for k, v in model.named_buffers()}
    eager = {k: cr.tensor(v.numpy().copy()) for k, v in model.named_buffers()}
    tbufs = {k: v.clone() for k, v in theirs.named_buffers()}
    f = cr.jit(lambda b, x: cr.func.functional_call(model, b, (x,)))
    for step in range(3):
        x = RNG.standard_normal((4, 2, 6, 6)).astype(np.float32)
        got = f(ours, x)
        want = cr.func.functional_call(model, eager, (x,))
        ref = torch.func.functional_call(theirs, tbufs, (torch.tensor(x),))
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(got), ref.detach().numpy(), rtol=1e-4, atol=1e-5)
        for k, t in tbufs.items():
            np.testing.assert_allclose(ours[k].numpy(), eager[k].numpy(), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(ours[k].numpy(), t.numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=k)
    assert int(model[1].num_batches_tracked.item()) == 0       # the module's own: untouched
    np.testing.assert_array_equal(model[1].running_mean.numpy(), np.zeros(3, np.float32))


# --- a whole training step: gradients and the optimizer's in-place updates -----------------------

def _sgd_momentum(lr=0.05, momentum=0.9):
    def init(params):
        return {'buf': [cr.zeros_like(p) for p in params]}

    def update(params, grads, state):
        with cr.no_grad():
            for p, g, b in zip(params, grads, state['buf']):
                b.mul_(momentum).add_(g)
                p.sub_(lr * b)
    return init, update


def _adam(lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    def init(params):
        return {'t': cr.tensor(np.array(0.0)), 'm': [cr.zeros_like(p) for p in params],
                'v': [cr.zeros_like(p) for p in params]}

    def update(params, grads, state):
        with cr.no_grad():
            state['t'].add_(1)
            t = state['t']
            for p, g, m, v in zip(params, grads, state['m'], state['v']):
                m.mul_(b1).add_((1 - b1) * g)
                v.mul_(b2).add_((1 - b2) * g * g)
                mhat = m / (1 - b1 ** t)
                vhat = v / (1 - b2 ** t)
                p.sub_(lr * mhat / (cnp.sqrt(vhat) + eps))
    return init, update


def _trainer(model, opt):
    params = list(model.parameters())
    init, update = opt
    state = init(params)
    loss_fn = _loss_of(model)

    def step(x):
        loss, grads = cr.value_and_grad(loss_fn)(params, x)
        update(params, grads, state)
        return loss
    return step


@pytest.mark.parametrize('opt', ['sgd_momentum', 'adam'])
def test_jitted_training_step_equals_the_eager_loop_and_torch(opt):
    make = {'sgd_momentum': _sgd_momentum, 'adam': _adam}[opt]
    eager, jitted = _cnn(0.1), _cnn(0.1)
    torch, theirs = _torch_cnn(eager, 0.1)
    topt = (torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9) if opt == 'sgd_momentum'
            else torch.optim.Adam(theirs.parameters(), lr=0.01))
    step_eager, step_jit = _trainer(eager, make()), cr.jit(_trainer(jitted, make()))
    for step in range(5):
        x = RNG.standard_normal((4, 2, 6, 6)).astype(np.float32)
        le, lj = step_eager(x), step_jit(x)
        topt.zero_grad()
        lt = (theirs(torch.tensor(x)) ** 2).sum()
        lt.backward()
        topt.step()
        np.testing.assert_allclose(_np(lj), _np(le), rtol=1e-4, err_msg=f'step {step}')
        np.testing.assert_allclose(_np(lj), lt.item(), rtol=1e-4, err_msg=f'step {step}')
        for (k, p), q, (_, tp) in zip(jitted.named_parameters(), eager.parameters(),
                                      theirs.named_parameters()):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=f'{k} at step {step}')
            np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=f'{k} at step {step} (torch)')
        np.testing.assert_allclose(jitted[1].running_var.numpy(), eager[1].running_var.numpy(),
                                   rtol=1e-5)
    assert step_jit.cache_info().misses == 1
    assert all(p.is_leaf and p.requires_grad for p in jitted.parameters())


def test_optimizer_step_inside_jit_names_the_two_ways_that_work():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.step()
        return x

    with pytest.raises(cr.ChainruleError, match=r'step\(\) inside a jitted function.*in-place'):
        cr.jit(step)(np.ones(2))


# --- recorded writes: made in grad mode from values that require grad ----------------------------

def test_a_write_in_grad_mode_is_recorded_as_eagerly():
    def run(fun):
        W = cr.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
        acc = cr.tensor(np.zeros(3))
        out = fun(W, acc)(np.array([0.5, 1.0, 2.0]))
        cnp.sum(acc * acc).backward()
        return _np(out), acc.detach().numpy(), W.grad.numpy(), acc.requires_grad

    def program(W, acc):
        def f(x):
            acc.copy_(W * x)
            return cnp.sum(acc)
        return f

    eager = run(program)
    jitted = run(lambda W, acc: cr.jit(program(W, acc)))
    for e, j in zip(eager, jitted):
        np.testing.assert_allclose(j, e)


# --- combinations with other transforms ---------------------------------------------------------

def test_nested_jit_writes_once_per_inner_call():
    counter = cr.tensor(np.array(0.0))
    inner = cr.jit(lambda x: (counter.add_(1), x * 2)[1])
    outer = cr.jit(lambda x: inner(inner(x)) + counter)
    for k in range(1, 4):
        np.testing.assert_allclose(_np(outer(np.ones(1))), 4 + 2 * k)
        assert counter.item() == 2 * k and counter._version[0] == 2 * k


def test_grad_of_a_jitted_function_that_counts():
    counter = cr.tensor(np.array(0.0))
    f = cr.jit(lambda x: (counter.add_(1), cnp.sum(cnp.sin(x)))[1])
    x = np.array([0.3, 1.2])
    for k in range(1, 3):
        np.testing.assert_allclose(cr.grad(f)(x), np.cos(x))
        assert counter.item() == k


def test_batchnorm_training_under_vmap_is_refused_naming_the_fix():
    bn = nn.BatchNorm1d(3)
    x = RNG.standard_normal((4, 5, 3)).astype(np.float32)
    with pytest.raises(ConcretizationError, match='track_running_stats=False'):
        cr.func.vmap(bn)(x)
    assert int(bn.num_batches_tracked.item()) == 0          # nothing counted by the refusal
    with pytest.raises(ConcretizationError, match='track_running_stats=False'):
        cr.jit(cr.func.vmap(bn))(x)
    # without running statistics it works: each example normalised by its own batch
    free = nn.BatchNorm1d(3, track_running_stats=False)
    got = cr.func.vmap(free)(x)
    want = np.stack([_np(free(x[i])) for i in range(4)])
    np.testing.assert_allclose(_np(got), want, rtol=1e-5, atol=1e-6)


def test_a_batched_write_to_captured_state_is_refused():
    total = cr.tensor(np.zeros(2))

    def add(x):
        total.add_(x)
        return x

    with pytest.raises(ConcretizationError, match='differs from one example to the next'):
        cr.jit(cr.vmap(add))(np.ones((3, 2)))
    with pytest.raises(ConcretizationError, match='vmap'):
        cr.vmap(cr.jit(add))(np.ones((3, 2)))
    np.testing.assert_allclose(total.numpy(), [0.0, 0.0])


def test_a_write_inside_a_lax_loop_body_with_a_value_of_the_body_is_refused():
    from chainrule import lax
    counter = cr.tensor(np.array(0.0))

    def body(i, c):
        counter.add_(cnp.sum(c))
        return c + 1

    with pytest.raises(cr.ChainruleError, match='Carry the value through the loop'):
        cr.jit(lambda x: lax.fori_loop(0, 3, body, x))(np.ones(1))
    assert counter.item() == 0.0


# --- the cache, export ---------------------------------------------------------------------------

def test_a_captured_tensor_replaced_by_another_object_is_traced_again():
    bn = nn.BatchNorm1d(2).eval()
    f = cr.jit(lambda x: bn(x))
    x = np.ones((3, 2), np.float32)
    np.testing.assert_allclose(_np(f(x)), _np(bn(x)), rtol=1e-6)
    bn.running_mean = cr.tensor(np.array([1.0, -1.0], np.float32))
    np.testing.assert_allclose(_np(f(x)), _np(bn(x)), rtol=1e-6)     # the new buffer
    state = {'n': cr.tensor(np.array(0.0))}

    def count(x):
        state['n'].add_(1)
        return x

    g = cr.jit(count)
    g(x)
    old = state['n']
    state['n'] = cr.tensor(np.array(10.0))
    g(x)
    assert old.item() == 1.0 and state['n'].item() == 11.0
    assert g.cache_info().misses == 2
    # a Tensor only written (never read), whose data changed shape: traced again too
    t = cr.tensor(np.zeros(2))
    h = cr.jit(lambda x: (t.fill_(3.0), x)[1])
    h(x)
    t.data = np.zeros(4)
    h(x)
    np.testing.assert_array_equal(t.numpy(), [3.0] * 4)


def test_export_refuses_a_program_that_writes_back():
    bn = nn.BatchNorm1d(2)
    x = np.ones((3, 2), np.float32)
    with pytest.raises(cr.ChainruleError, match='export: .*in place.*eval\\(\\) mode'):
        cr.export(lambda x: bn(x), x)
    assert int(bn.num_batches_tracked.item()) == 0
    bn.eval()                                   # the fix the message names
    exp = cr.export(lambda x: bn(x), x)
    np.testing.assert_allclose(_np(exp(x)), _np(bn(x)), rtol=1e-6)


# --- a captured Tensor is never read as a constant while tracing ----------------------------------
# BatchNorm (module and functional) in training mode decided "concrete input: update the running
# statistics from NumPy values now" for a Tensor the jitted function closes over, so its batch
# statistics were baked into the program at trace time: the second call, after the captured
# input changed, normalised with the first call's statistics and moved the running ones the
# same way again. A captured Tensor's value is an input of the program (Tensor._concrete refuses).

def test_batchnorm_on_a_captured_input_reads_it_on_every_call():
    rng = np.random.default_rng(0)
    x0 = rng.normal(size=(5, 3)).astype(np.float32)
    runs = []
    for jitted in (False, True):
        bn = cr.nn.BatchNorm1d(3)
        x = cr.tensor(x0.copy())

        def f():
            y = bn(x)
            return (y * y * y).sum()      # depends on the statistics (sum of y alone does not)
        g = cr.jit(f) if jitted else f
        outs = [float(g().item())]
        with cr.no_grad():
            x.mul_(2.0).add_(1.0)
        outs.append(float(g().item()))
        runs.append((outs, bn.running_mean.numpy().copy(), bn.running_var.numpy().copy(),
                     int(bn.num_batches_tracked.item())))
    (eo, em, ev, en), (jo, jm, jv, jn) = runs
    np.testing.assert_allclose(jo, eo, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jm, em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jv, ev, rtol=1e-5)
    assert jn == en == 2


def test_functional_batch_norm_on_a_captured_input_reads_it_on_every_call():
    import chainrule.nn.functional as F
    x0 = np.random.default_rng(1).normal(size=(6, 4))
    stats = []
    for jitted in (False, True):
        x = cr.tensor(x0.copy())
        rm, rv = cr.zeros(4, dtype=cr.float64), cr.ones(4, dtype=cr.float64)
        f = (lambda: F.batch_norm(x, rm, rv, training=True, momentum=0.5).sum())
        g = cr.jit(f) if jitted else f
        g()
        with cr.no_grad():
            x.mul_(3.0)
        g()
        stats.append((rm.numpy().copy(), rv.numpy().copy()))
    # the second batch is 3 x: analytic running statistics with momentum 0.5
    m1, v1 = x0.mean(0), x0.var(0, ddof=1)
    want_m = 0.5 * (0.5 * m1) + 0.5 * 3 * m1
    want_v = 0.5 * (0.5 + 0.5 * v1) + 0.5 * 9 * v1
    for m, v in stats:
        np.testing.assert_allclose(m, want_m, rtol=1e-12)
        np.testing.assert_allclose(v, want_v, rtol=1e-12)


def test_a_captured_tensor_read_as_a_constant_while_tracing_is_refused():
    x = cr.tensor(np.arange(3.0))
    with pytest.raises(cr.core.ConcretizationError, match='closes over'):
        cr.jit(lambda: cr.core.concrete(x) * 2)()
