"""Class 1 of the combination tests: a `Tensor` that requires grad, closed over by a function
passed to a transform (`grad`, `vmap`, `jvp`, `jacrev`, `checkpoint`, custom rules, `lax`,
`jit`, ...), is an input of the recorded computation: `backward()` reaches it.

Each case computes a scalar from a transform's result in eager Tensor code, calls backward(),
and compares the gradients of the closed-over weight `w` and of the argument `x` with the same
program in PyTorch (`torch.func` composes with PyTorch's autograd the same way).
"""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule import lax, nn

torch = pytest.importorskip('torch', reason='PyTorch is the reference for these cross-checks '
                            '(pip install torch==2.13.0)')
tf = torch.func

W0 = np.array([0.7, -1.2, 0.4])
X0 = np.array([0.5, -0.3, 0.9])
V0 = np.array([1.0, 0.5, -2.0])


def f_cr(w):
    return lambda x: cnp.sum(cnp.tanh(x * w) ** 2)


def f_t(w):
    return lambda x: (torch.tanh(x * w) ** 2).sum()


def e_cr(w):
    return lambda x: cnp.tanh(x * w) * w


def e_t(w):
    return lambda x: torch.tanh(x * w) * w


def _custom_vjp_cr(w, x):
    @cr.custom_vjp
    def g(x):
        return cnp.sum(cnp.sin(x) * w)
    g.defvjp(lambda x: (g(x), x), lambda x, ct: (ct * cnp.cos(x) * w,))
    return g(x) + cnp.sum(cr.grad(g)(x) ** 2)


def _custom_jvp_cr(w, x):
    @cr.custom_jvp
    def g(x):
        return cnp.sum(cnp.sin(x) * w)
    g.defjvp(lambda p, t: (g(p[0]), cnp.sum(cnp.cos(p[0]) * w * t[0])))
    return g(x) + cnp.sum(cr.grad(g)(x) ** 2)


def _sin_w_t(w, x):
    g = lambda x: (torch.sin(x) * w).sum()
    return g(x) + (tf.grad(g)(x) ** 2).sum()


def _scan_cr(w, x):
    def body(c, xi):
        return c * w[0] + xi * w[1], c * w[2]
    c, ys = lax.scan(body, cnp.sum(x) * 0.5, x)
    return c + cnp.sum(ys ** 2)


def _scan_t(w, x):
    c, ys = x.sum() * 0.5, []
    for xi in x:
        c, y = c * w[0] + xi * w[1], c * w[2]
        ys.append(y)
    return c + (torch.stack(ys) ** 2).sum()


CASES = {
    # name: (chainrule program, PyTorch program), both of (w, x) -> scalar
    'grad': (lambda w, x: cnp.sum(cr.grad(f_cr(w))(x) ** 2),
             lambda w, x: (tf.grad(f_t(w))(x) ** 2).sum()),
    'value_and_grad': (lambda w, x: (lambda vg: vg[0] + cnp.sum(vg[1] ** 2))(
                           cr.value_and_grad(f_cr(w))(x)),
                       lambda w, x: (lambda gv: gv[1] + (gv[0] ** 2).sum())(
                           tf.grad_and_value(f_t(w))(x))),
    'vjp': (lambda w, x: (lambda r: cnp.sum(r[0]) + cnp.sum(r[1](V0)[0] ** 2))(
                cr.vjp(e_cr(w), x)),
            lambda w, x: (lambda r: r[0].sum() + (r[1](torch.tensor(V0))[0] ** 2).sum())(
                tf.vjp(e_t(w), x))),
    'jvp': (lambda w, x: (lambda r: cnp.sum(r[0]) + cnp.sum(r[1] ** 2))(
                cr.jvp(e_cr(w), (x,), (V0,))),
            lambda w, x: (lambda r: r[0].sum() + (r[1] ** 2).sum())(
                tf.jvp(e_t(w), (x,), (torch.tensor(V0),)))),
    'vmap': (lambda w, x: cnp.sum(cr.vmap(f_cr(w))(cnp.stack([x, 2 * x, -x])) ** 2),
             lambda w, x: (tf.vmap(f_t(w))(torch.stack([x, 2 * x, -x])) ** 2).sum()),
    'vmap_in_axes_none': (lambda w, x: cnp.sum(cr.vmap(lambda r, s: cnp.sum(r * s * w),
                                                       in_axes=(0, None))(
                              cnp.stack([x, 2 * x]), x) ** 2),
                          lambda w, x: (tf.vmap(lambda r, s: (r * s * w).sum(),
                                                in_dims=(0, None))(
                              torch.stack([x, 2 * x]), x) ** 2).sum()),
    'jacfwd': (lambda w, x: cnp.sum(cr.jacfwd(e_cr(w))(x) ** 2),
               lambda w, x: (tf.jacfwd(e_t(w))(x) ** 2).sum()),
    'jacrev': (lambda w, x: cnp.sum(cr.jacrev(e_cr(w))(x) ** 2),
               lambda w, x: (tf.jacrev(e_t(w))(x) ** 2).sum()),
    'hessian': (lambda w, x: cnp.sum(cr.hessian(f_cr(w))(x) ** 2),
                lambda w, x: (tf.hessian(f_t(w))(x) ** 2).sum()),
    'hvp': (lambda w, x: cnp.sum(cr.hvp(f_cr(w), (x,), (V0,)) ** 2),
            lambda w, x: (tf.jvp(tf.grad(f_t(w)), (x,), (torch.tensor(V0),))[1] ** 2).sum()),
    'grad_of_grad': (lambda w, x: cnp.sum(cr.grad(lambda x: cnp.sum(cr.grad(f_cr(w))(x)))(x)
                                          ** 2),
                     lambda w, x: (tf.grad(lambda x: tf.grad(f_t(w))(x).sum())(x) ** 2).sum()),
    'vmap_of_grad': (lambda w, x: cnp.sum(cr.vmap(cr.grad(f_cr(w)))(cnp.stack([x, -x])) ** 2),
                     lambda w, x: (tf.vmap(tf.grad(f_t(w)))(torch.stack([x, -x])) ** 2).sum()),
    'jit': (lambda w, x: cr.jit(f_cr(w))(x), lambda w, x: f_t(w)(x)),
    'grad_of_jit': (lambda w, x: cnp.sum(cr.grad(cr.jit(f_cr(w)))(x) ** 2),
                    lambda w, x: (tf.grad(f_t(w))(x) ** 2).sum()),
    'jit_of_grad': (lambda w, x: cnp.sum(cr.jit(cr.grad(f_cr(w)))(x) ** 2),
                    lambda w, x: (tf.grad(f_t(w))(x) ** 2).sum()),
    'checkpoint': (lambda w, x: cr.checkpoint(f_cr(w))(x), lambda w, x: f_t(w)(x)),
    'grad_of_checkpoint': (lambda w, x: cnp.sum(cr.grad(cr.checkpoint(f_cr(w)))(x) ** 2),
                           lambda w, x: (tf.grad(f_t(w))(x) ** 2).sum()),
    'custom_vjp': (_custom_vjp_cr, _sin_w_t),
    'custom_jvp': (_custom_jvp_cr, _sin_w_t),
    'scan': (_scan_cr, _scan_t),
    'cond': (lambda w, x: lax.cond(True, lambda x: cnp.sum(x * w) ** 2, lambda x: cnp.sum(x),
                                   x),
             lambda w, x: (x * w).sum() ** 2),
    'grad_of_cond': (lambda w, x: cnp.sum(cr.grad(lambda x: lax.cond(
                         False, lambda x: cnp.sum(x), lambda x: cnp.sum(cnp.sin(x * w)), x))(x)
                         ** 2),
                     lambda w, x: (tf.grad(lambda x: torch.sin(x * w).sum())(x) ** 2).sum()),
}


def _run_cr(prog, x_requires_grad):
    w = cr.tensor(W0, requires_grad=True)
    x = cr.tensor(X0, requires_grad=x_requires_grad)
    out = prog(w, x)
    out.backward()
    return out.item(), w.grad.numpy(), (x.grad.numpy() if x_requires_grad else None)


def _run_torch(prog, x_requires_grad):
    w = torch.tensor(W0, requires_grad=True)
    x = torch.tensor(X0, requires_grad=x_requires_grad)
    out = prog(w, x)
    out.backward()
    return out.item(), w.grad.numpy(), (x.grad.numpy() if x_requires_grad else None)


@pytest.mark.parametrize('x_requires_grad', [True, False], ids=['x_requires_grad', 'x_const'])
@pytest.mark.parametrize('name', list(CASES))
def test_backward_reaches_tensors_closed_over_by_a_transform(name, x_requires_grad):
    ours, theirs = CASES[name]
    v, gw, gx = _run_cr(ours, x_requires_grad)
    tv, tgw, tgx = _run_torch(theirs, x_requires_grad)
    np.testing.assert_allclose(v, tv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, tgw, rtol=1e-9, atol=1e-12)
    if x_requires_grad:
        np.testing.assert_allclose(gx, tgx, rtol=1e-9, atol=1e-12)


def test_issue_reproductions():
    lin = nn.Linear(2, 1, rng=0)
    X = cr.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    cr.vmap(lin)(X).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), [[3.0, 3.0]])
    np.testing.assert_allclose(lin.bias.grad.numpy(), [3.0])
    # with X not requiring grad, the weights still do
    lin.zero_grad()
    cr.vmap(lin)(cr.tensor(np.ones((3, 2), np.float32))).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), [[3.0, 3.0]])

    w = cr.tensor([1., 2.], requires_grad=True)
    x = cr.tensor([.5, -.3], requires_grad=True)
    g = cr.grad(lambda x: cnp.sum(cnp.tanh(x * w)))(x)
    cnp.sum(g ** 2).backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.665, 0.720], atol=1e-3)


def test_per_example_gradients_of_a_model_train_the_model():
    # a gradient penalty on per-example input gradients: the classic torch.func composition
    rng = np.random.default_rng(0)
    m = nn.Linear(3, 1, rng=0)
    tm = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(m.weight.numpy(), dtype=torch.float64))
        tm.bias.copy_(torch.tensor(m.bias.numpy(), dtype=torch.float64))
    m = m.to(np.float64) if hasattr(m, 'to') else m
    X = rng.standard_normal((5, 3))
    loss = lambda x: cnp.sum(cnp.tanh(m(x)))
    gx = cr.vmap(cr.grad(loss))(X)
    (cnp.sum(gx ** 2)).backward()
    tloss = lambda x: torch.tanh(tm(x)).sum()
    tgx = tf.vmap(tf.grad(tloss))(torch.tensor(X))
    (tgx ** 2).sum().backward()
    np.testing.assert_allclose(np.asarray(gx.numpy(), np.float64), tgx.detach().numpy(),
                               rtol=1e-5)
    np.testing.assert_allclose(m.weight.grad.numpy(), tm.weight.grad.numpy(), rtol=1e-4)
    np.testing.assert_allclose(m.bias.grad.numpy(), tm.bias.grad.numpy(), rtol=1e-4, atol=1e-9)


def test_custom_rules_with_the_tensor_as_an_argument_match_pytorch():
    @cr.custom_vjp
    def g(x, w):
        return cnp.sum(cnp.sin(x) * w)
    g.defvjp(lambda x, w: (g(x, w), (x, w)),
             lambda r, ct: (ct * cnp.cos(r[0]) * r[1], ct * cnp.sin(r[0])))
    w = cr.tensor(W0, requires_grad=True)
    x = cr.tensor(X0, requires_grad=True)
    (g(x, w) + cnp.sum(cr.grad(g)(x, w) ** 2)).backward()
    tw = torch.tensor(W0, requires_grad=True)
    tx = torch.tensor(X0, requires_grad=True)
    _sin_w_t(tw, tx).backward()
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10)
