"""In-place writes through views made inside `jit` of a Tensor argument (or of a Tensor made in
the jitted function).

Eagerly, `v = x[0:2]; v += 1` changes the caller's `x`, and `x * 2` afterwards sees the write.
Under jit such a view used to be a copy: the write was silently dropped. Each case runs the same
function eagerly, jitted (twice: the traced call and a cached one) and in PyTorch on the same
input, and compares the return value, the argument afterwards and its version counter.
"""

import numpy as np
import pytest

import chainrule as cr

torch = pytest.importorskip('torch', reason='PyTorch is the reference for these cases')


def _slice(x):
    v = x[0:1]
    v += 1
    return x * 2


def _view(x):
    x.view(6).mul_(3)
    return x + 0


def _reshape(x):
    x.reshape(3, 2).sub_(1)
    return x * 1


def _transpose(x):
    x.T[0] = 7.0
    return x * 1


def _column(x):
    x[:, 1].add_(5)
    return x.sum(0)


def _detach(x):
    x.detach().mul_(2)
    return x * 1


def _view_of_view(x):
    x[0:2][:, 1].add_(4)
    return x * 1


def _aliases(x):
    row, col = x[0], x[:, 0]     # both made before the write: col must see it
    row.add_(1)
    x.mul_(2)                    # and row must see this one
    return row * 1 + col.sum()


def _made_inside(x):
    y = x * 1
    y[1].fill_(-1.0)
    return y * 3


def _setitem_then_return_view(x):
    v = x[:, 1:]
    v[0] = 10.0
    return v


CASES = [_slice, _view, _reshape, _transpose, _column, _detach, _view_of_view, _aliases,
         _made_inside, _setitem_then_return_view]


@pytest.mark.parametrize('fn', CASES, ids=lambda f: f.__name__)
def test_a_write_through_a_view_of_an_argument_reaches_it_as_eagerly(fn):
    base = np.arange(6.0).reshape(2, 3)
    xe, xj, xt = cr.tensor(base.copy()), cr.tensor(base.copy()), torch.tensor(base.copy())
    jf = cr.jit(fn)
    for _ in range(2):
        re, rj, rt = fn(xe), jf(xj), fn(xt)
        np.testing.assert_allclose(re.numpy(), rt.numpy())
        np.testing.assert_allclose(rj.numpy(), rt.numpy())
        np.testing.assert_allclose(xe.numpy(), xt.numpy())
        np.testing.assert_allclose(xj.numpy(), xt.numpy())
        assert xj._version[0] == xe._version[0]
    assert jf.cache_info().misses == 1


def test_a_copy_made_by_advanced_indexing_is_not_written_back():
    def f(x):
        c = x[[0, 1], 0]      # a copy, eagerly too
        c.add_(100)
        return x + c.sum()

    xe, xj, xt = (cr.tensor(np.ones((2, 2))), cr.tensor(np.ones((2, 2))),
                  torch.ones((2, 2), dtype=torch.float64))
    for _ in range(2):
        np.testing.assert_allclose(cr.jit(f)(xj).numpy(), f(xt).numpy())
        f(xe)
    np.testing.assert_allclose(xj.numpy(), xt.numpy())
    np.testing.assert_allclose(xe.numpy(), xt.numpy())


def test_a_recorded_write_through_a_view_of_an_argument_has_eager_gradients():
    def f(x, w):
        x[0:1].mul_(w)
        return (x * x).sum()

    results = []
    for run in (f, cr.jit(f)):
        x = cr.tensor(np.arange(6.0).reshape(2, 3))
        w = cr.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
        out = run(x, w)
        out.backward()
        results.append((out.item(), w.grad.numpy(), x.detach().numpy()))
    xt = torch.arange(6.0, dtype=torch.float64).reshape(2, 3)
    wt = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    out = f(xt, wt)
    out.backward()
    for value, wg, xv in results:
        assert value == pytest.approx(out.item())
        np.testing.assert_allclose(wg, wt.grad.numpy())
        np.testing.assert_allclose(xv, xt.detach().numpy())
