"""Sparse Jacobians and Hessians (`cr.sparse`): detected patterns contain every nonzero of the
dense Jacobian, colourings are valid, and compressed results equal dense `jacfwd`/`hessian`."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

sp = pytest.importorskip('scipy.sparse', reason='cr.sparse returns scipy.sparse matrices')

RNG = np.random.default_rng(0)


def residual(u):
    """-u'' + u**3 - 1 on a grid with zero boundary values (tridiagonal Jacobian)."""
    p = cnp.concatenate([np.zeros(1), u, np.zeros(1)])
    return 2 * u - p[:-2] - p[2:] + u ** 3 - 1.0


def laplace_2d(u):
    """A 5-point stencil on a 4 x 5 grid, through reshape, pad and slicing."""
    g = cnp.pad(cnp.reshape(u, (4, 5)), 1)
    out = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return cnp.ravel(cnp.exp(out) * u.reshape(4, 5).T.T)


CASES = {
    'tridiagonal': (residual, (9,)),
    'stencil_2d': (laplace_2d, (20,)),
    'gather_const_index': (lambda x: x[np.array([3, 0, 0, 5])] * cnp.sin(x[:4]), (6,)),
    'scatter': (lambda x: cnp.at(cnp.zeros(7))[np.array([0, 2, 2])].add(x[:3] ** 2) + x[::-1],
                (7,)),
    'cumsum_rows': (lambda x: cnp.ravel(cnp.cumsum(x.reshape(3, 4), axis=1)), (12,)),
    'row_sums': (lambda x: cnp.sum(cnp.tanh(x.reshape(3, 4)), axis=1), (12,)),
    'max_then_broadcast': (lambda x: x * cnp.max(x.reshape(2, 3), axis=1).repeat(3), (6,)),
    'block_matmul': (lambda x: cnp.ravel(x.reshape(3, 2, 2) @ x.reshape(3, 2, 2)), (12,)),
    'matmul_const': (lambda x: np.diag(np.arange(1.0, 6.0)) @ x ** 2, (5,)),
    'softmax_blocks': (lambda x: cnp.ravel(cr.nn.functional.log_softmax(x.reshape(2, 3), -1)),
                       (6,)),
    'where_transpose': (lambda x: cnp.where(x > 0, x, 2 * x).reshape(2, 3).T.ravel(), (6,)),
    'unknown_primitive_dense': (lambda x: cnp.linalg.solve(np.eye(3) * 2 + 0.1, x[:3]) * x[3:],
                                (6,)),
    'stop_gradient_cut': (lambda x: x * cr.stop_gradient(cnp.sum(x)) + (x > 0) * 1.0, (4,)),
}


@pytest.mark.parametrize('name', sorted(CASES))
@pytest.mark.parametrize('mode', ['fwd', 'rev', 'auto'])
def test_sparse_jacobian_equals_dense(name, mode):
    f, shape = CASES[name]
    x = RNG.uniform(0.2, 1.5, shape)
    dense = cr.jacfwd(f)(x).reshape(-1, x.size)
    jac = cr.sparse.jacobian(f, mode=mode)
    J = jac(x)
    assert sp.issparse(J) and J.shape == dense.shape
    np.testing.assert_allclose(J.toarray(), dense, rtol=1e-12, atol=1e-14)
    pattern = jac.sparsity_pattern(x).toarray().astype(bool)
    assert not np.any((dense != 0) & ~pattern), 'a nonzero outside the detected pattern'


def test_patterns_are_tight_where_the_structure_is_known():
    pat = cr.sparse.jacobian_sparsity(residual)(np.ones(9)).toarray()
    np.testing.assert_array_equal(pat, np.eye(9) + np.eye(9, k=1) + np.eye(9, k=-1))
    assert cr.sparse.jacobian(residual, mode='fwd').colours(np.ones(9))[1] == 3
    x = RNG.uniform(0.2, 1.5, 20)
    pat = cr.sparse.jacobian_sparsity(laplace_2d)(x).toarray().astype(bool)
    np.testing.assert_array_equal(pat, cr.jacfwd(laplace_2d)(x) != 0)
    # (A @ A)[i, j] reads row i and column j of A, block by block
    f = CASES['block_matmul'][0]
    x = RNG.uniform(0.2, 1.5, 12)
    np.testing.assert_array_equal(cr.sparse.jacobian_sparsity(f)(x).toarray(),
                                  cr.jacfwd(f)(x) != 0)
    pat = cr.sparse.jacobian_sparsity(CASES['cumsum_rows'][0])(np.ones(12)).toarray()
    np.testing.assert_array_equal(pat, np.kron(np.eye(3), np.tril(np.ones((4, 4)))))
    # a primitive with no pattern rule (solve) is dense over what its inputs depend on
    pat = cr.sparse.jacobian_sparsity(CASES['unknown_primitive_dense'][0])(np.ones(6)).toarray()
    np.testing.assert_array_equal(pat, np.hstack([np.ones((3, 3)), np.eye(3)]))
    # stop_gradient and comparisons carry no derivative
    pat = cr.sparse.jacobian_sparsity(CASES['stop_gradient_cut'][0])(np.ones(4)).toarray()
    np.testing.assert_array_equal(pat, np.eye(4))


def test_colourings_are_valid():
    for density in (0.02, 0.1, 0.5):
        P = sp.random(60, 40, density=density, random_state=1, format='csr')
        for colours, count, M in [(*cr.sparse.colour_columns(P), P.toarray() != 0),
                                  (*cr.sparse.colour_rows(P), (P.toarray() != 0).T)]:
            assert colours.max() + 1 == count
            for k in range(count):
                assert (M[:, colours == k].sum(axis=1) <= 1).all()


def test_sparse_hessian():
    def energy(x):     # a chain: each term couples neighbours
        return cnp.sum((x[1:] - x[:-1] ** 2) ** 2) + cnp.sum(cnp.cos(x))
    x = RNG.uniform(-1, 1, 8)
    h = cr.sparse.hessian(energy)
    H = h(x)
    np.testing.assert_allclose(H.toarray(), cr.hessian(energy)(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(h.sparsity_pattern(x).toarray(),
                                  np.eye(8) + np.eye(8, k=1) + np.eye(8, k=-1))
    assert h.colours(x)[1] == 3
    np.testing.assert_array_equal(cr.sparse.hessian_sparsity(energy)(x).toarray(),
                                  h.sparsity_pattern(x).toarray())


def test_user_supplied_pattern():
    x = RNG.uniform(0.2, 1.5, 9)
    band = sp.csr_matrix(np.eye(9) + np.eye(9, k=1) + np.eye(9, k=-1))
    J = cr.sparse.jacobian(residual, sparsity=band)(x)
    np.testing.assert_allclose(J.toarray(), cr.jacfwd(residual)(x), rtol=1e-12)
    J = cr.sparse.jacobian(residual, sparsity=band.toarray() != 0, mode='rev')(x)
    np.testing.assert_allclose(J.toarray(), cr.jacfwd(residual)(x), rtol=1e-12)
    with pytest.raises(ValueError, match=r'sparsity has shape \(8, 8\).*\(9, 9\)'):
        cr.sparse.jacobian(residual, sparsity=np.eye(8))(x)
    with pytest.raises(ValueError, match='mode'):
        cr.sparse.jacobian(residual, mode='sideways')


def test_matrix_inputs_and_against_scipy_finite_differences():
    numdiff = pytest.importorskip('scipy.optimize._numdiff',
                                  reason="SciPy's coloured finite differences are the reference")
    x = RNG.uniform(0.2, 1.5, (4, 5))
    J = cr.sparse.jacobian(lambda u: laplace_2d(u.ravel()))(x)
    P = cr.sparse.jacobian_sparsity(laplace_2d)(x.ravel())
    fd = numdiff.approx_derivative(lambda u: np.asarray(laplace_2d(u)), x.ravel(),
                                   method='3-point', sparsity=P)
    np.testing.assert_allclose(J.toarray(), fd.toarray(), rtol=1e-6, atol=1e-8)


def test_docstring_examples():
    import doctest
    import chainrule.sparse
    res = doctest.testmod(chainrule.sparse, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed
