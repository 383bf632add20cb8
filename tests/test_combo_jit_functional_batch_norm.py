"""`F.batch_norm(..., training=True)` with running statistics, called directly inside `jit`:
the running statistics (captured Tensors or Tensor arguments) move on every call as torch's
`F.batch_norm` moves them, and the output and the weight/bias gradients agree. It used to raise
ConcretizationError (only the module `nn.BatchNorm*` staged the update)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.core import ConcretizationError

torch = pytest.importorskip('torch', reason='PyTorch is the reference for F.batch_norm')
TF = torch.nn.functional

RNG = np.random.default_rng(5)


@pytest.mark.parametrize('dtype,tol', [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize('shape', [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_captured_running_stats_move_as_torch_over_three_calls(shape, dtype, tol):
    c = shape[1]
    xs = RNG.standard_normal((3,) + shape).astype(dtype)
    w0, b0 = RNG.standard_normal(c).astype(dtype), RNG.standard_normal(c).astype(dtype)
    rm, rv = cr.tensor(np.zeros(c, dtype)), cr.tensor(np.ones(c, dtype))
    w, b = cr.tensor(w0, requires_grad=True), cr.tensor(b0, requires_grad=True)
    trm, trv = torch.zeros(c, dtype=torch.from_numpy(xs).dtype), \
        torch.ones(c, dtype=torch.from_numpy(xs).dtype)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)

    @cr.jit
    def f(x):
        return F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-4)

    for x in xs:
        out = f(cr.tensor(x))
        tout = TF.batch_norm(torch.tensor(x), trm, trv, tw, tb, training=True, momentum=0.3,
                             eps=1e-4)
        (out * out).sum().backward()
        (tout * tout).sum().backward()
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=tol,
                                   atol=tol)
        np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=tol, atol=tol)
        assert rm.dtype == dtype and rv.dtype == dtype
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=100 * tol, atol=100 * tol)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=100 * tol, atol=100 * tol)
    assert f.cache_info().misses == 1


def test_running_stats_passed_as_arguments_are_written_back_as_torch():
    xs = RNG.standard_normal((3, 5, 2, 4))
    rm, rv = cr.tensor(np.zeros(2)), cr.tensor(np.ones(2))
    trm, trv = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    f = cr.jit(lambda x, m, v: F.batch_norm(x, m, v, training=True, momentum=0.1))
    eager = lambda x, m, v: F.batch_norm(x, m, v, training=True, momentum=0.1)  # noqa: E731
    em, ev = cr.tensor(np.zeros(2)), cr.tensor(np.ones(2))
    for x in xs:
        out = f(cr.tensor(x), rm, rv)
        eout = eager(cr.tensor(x), em, ev)
        tout = TF.batch_norm(torch.tensor(x), trm, trv, training=True, momentum=0.1)
        np.testing.assert_allclose(out.numpy(), tout.numpy(), atol=1e-12)
        np.testing.assert_allclose(eout.numpy(), tout.numpy(), atol=1e-12)
        for got in ((rm, rv), (em, ev)):
            np.testing.assert_allclose(got[0].numpy(), trm.numpy(), atol=1e-14)
            np.testing.assert_allclose(got[1].numpy(), trv.numpy(), atol=1e-14)


def test_the_module_and_the_functional_form_agree_under_jit():
    xs = RNG.standard_normal((3, 4, 3)).astype(np.float32)
    bn = cr.nn.BatchNorm1d(3, momentum=0.2)
    rm, rv = cr.tensor(np.zeros(3, np.float32)), cr.tensor(np.ones(3, np.float32))
    fm = cr.jit(lambda x: bn(x))
    ff = cr.jit(lambda x: F.batch_norm(x, rm, rv, bn.weight, bn.bias, training=True,
                                       momentum=0.2))
    for x in xs:
        np.testing.assert_array_equal(fm(cr.tensor(x)).detach().numpy(),
                                      ff(cr.tensor(x)).detach().numpy())
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm.numpy())
    np.testing.assert_array_equal(bn.running_var.numpy(), rv.numpy())


def test_numpy_running_stats_under_jit_and_any_under_vmap_are_refused_clearly():
    x = RNG.standard_normal((4, 3))
    with pytest.raises(ConcretizationError, match='running_mean .*NumPy array.*Tensor'):
        cr.jit(lambda x: F.batch_norm(x, np.zeros(3), np.ones(3), training=True))(cr.tensor(x))
    rm, rv = cr.tensor(np.zeros(3)), cr.tensor(np.ones(3))
    with pytest.raises(ConcretizationError, match='vmap'):
        cr.vmap(lambda x: F.batch_norm(x, rm, rv, training=True))(cr.tensor(x[None]))
    np.testing.assert_array_equal(rm.numpy(), np.zeros(3))
