"""Rank-revealing linear algebra under the transforms: `pinv`, `lstsq`, `matrix_rank` and the
0-"norm" decide with the values (which singular values count), and must do so per example
under `vmap` and inside the program under `jit`, against NumPy run on each example."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from test_api import _fd_grad

RNG = np.random.default_rng(0)


def _batch(m, n, ranks):
    """One (m, n) matrix of each rank in `ranks`, stacked: under vmap, examples with different
    ranks must each keep their own singular values."""
    out = []
    for r in ranks:
        out.append(RNG.standard_normal((m, r)) @ RNG.standard_normal((r, n)))
    return np.stack(out)


A_TALL = _batch(6, 4, [4, 2, 3, 1])
A_WIDE = _batch(3, 5, [3, 1, 2, 3])
B = RNG.standard_normal((6, 2))
B_WIDE = RNG.standard_normal((3, 2))


def _transformed(fn, how, batch):
    if how == 'vmap':
        return np.asarray(cr.vmap(fn)(batch))
    if how == 'jit':
        jf = cr.jit(fn)
        return np.stack([np.asarray(jf(a)) for a in batch])
    if how == 'jit-vmap':
        return np.asarray(cr.jit(cr.vmap(fn))(batch))
    return np.asarray(cr.vmap(cr.jit(fn))(batch))


HOWS = ['vmap', 'jit', 'jit-vmap', 'vmap-jit']


@pytest.mark.parametrize('how', HOWS)
@pytest.mark.parametrize('batch', [A_TALL, A_WIDE], ids=['tall', 'wide'])
def test_pinv_per_example_equals_numpy(how, batch):
    got = _transformed(cnp.linalg.pinv, how, batch)
    np.testing.assert_allclose(got, np.stack([np.linalg.pinv(a) for a in batch]), atol=1e-10)


@pytest.mark.parametrize('how', HOWS)
def test_lstsq_solution_rank_and_residuals_under_transforms(how):
    want = [np.linalg.lstsq(a, B, rcond=None) for a in A_TALL]
    x = _transformed(lambda a: cnp.linalg.lstsq(a, B, rcond=None)[0], how, A_TALL)
    rank = _transformed(lambda a: cnp.asarray(cnp.linalg.lstsq(a, B, rcond=None)[2]), how,
                        A_TALL)
    res = _transformed(lambda a: cnp.linalg.lstsq(a, B, rcond=None)[1], how, A_TALL)
    np.testing.assert_allclose(x, np.stack([w[0] for w in want]), atol=1e-10)
    np.testing.assert_array_equal(rank, [w[2] for w in want])
    np.testing.assert_allclose(res[0], want[0][1], rtol=1e-9)     # full rank: NumPy's


def test_lstsq_residuals_under_vmap_are_those_of_the_solution():
    x, res, rank, s = cr.vmap(lambda a: cnp.linalg.lstsq(a, B, rcond=None))(A_TALL)
    for a, xi, ri in zip(A_TALL, np.asarray(x), np.asarray(res)):
        np.testing.assert_allclose(ri, np.sum((B - a @ xi) ** 2, axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(rank, [np.linalg.matrix_rank(a) for a in A_TALL])


def test_lstsq_wide_under_vmap_has_no_residuals_as_numpy():
    x, res, rank, _ = cr.vmap(lambda a: cnp.linalg.lstsq(a, B_WIDE, rcond=None))(A_WIDE)
    assert np.asarray(res).shape[-1] == 0
    for a, xi in zip(A_WIDE, np.asarray(x)):
        np.testing.assert_allclose(xi, np.linalg.lstsq(a, B_WIDE, rcond=None)[0], atol=1e-10)


@pytest.mark.parametrize('how', HOWS)
def test_matrix_rank_and_zero_norm_under_transforms(how):
    got = _transformed(lambda a: cnp.asarray(cnp.linalg.matrix_rank(a)), how, A_TALL)
    np.testing.assert_array_equal(got, [np.linalg.matrix_rank(a) for a in A_TALL])
    v = np.array([[0., 1., 2.], [0., 0., 3.], [0., 0., 0.]])
    got = _transformed(lambda x: cnp.linalg.norm(x, ord=0), how, v)
    np.testing.assert_array_equal(got, [np.linalg.norm(x, ord=0) for x in v])


@pytest.mark.parametrize('fn', ['pinv', 'lstsq'])
def test_gradients_at_full_rank_under_jit_and_vmap_equal_finite_differences(fn):
    full = A_TALL[0]
    if fn == 'pinv':
        loss = lambda a: cnp.sum(cnp.sin(cnp.linalg.pinv(a)))              # noqa: E731
        ref = lambda a: np.sum(np.sin(np.linalg.pinv(a)))                  # noqa: E731
    else:
        loss = lambda a: cnp.sum(cnp.linalg.lstsq(a, B, rcond=None)[0] ** 2)          # noqa
        ref = lambda a: np.sum(np.linalg.lstsq(a, B, rcond=None)[0] ** 2)             # noqa
    want = _fd_grad(ref, full)
    np.testing.assert_allclose(cr.jit(cr.grad(loss))(full), want, rtol=1e-6, atol=1e-7)
    batch = np.stack([full, 2 * full])
    got = cr.vmap(cr.grad(loss))(batch)
    np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1], _fd_grad(ref, 2 * full), rtol=1e-6, atol=1e-7)
