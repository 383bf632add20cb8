"""Tests of `chainrule.numpy.linalg`: forward values equal NumPy's; derivatives equal finite
differences to second order in reverse and forward mode (real, complex, batched, float32);
gradients equal PyTorch's where it is installed; analytic values; errors name the op."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads

LA = cnp.linalg
MODES = ('rev', 'fwd')
rng = np.random.default_rng(0)


def real(*shape):
    return rng.standard_normal(shape)


def cplx(*shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def well_conditioned(x):
    """x plus a multiple of the identity, so that inverses and solves are well conditioned."""
    return x + 3 * np.eye(x.shape[-1])


def herm(a):
    """The Hermitian part of a (traced) matrix: the input cholesky/eigh expect."""
    return (a + cnp.conj(cnp.swapaxes(a, -1, -2))) * 0.5


def spd(a):
    """A Hermitian positive-definite matrix built from any square `a`."""
    return cnp.matmul(a, cnp.conj(cnp.swapaxes(a, -1, -2))) + np.eye(a.shape[-1], dtype=a.dtype)


def abs2(x):
    return cnp.real(x * cnp.conj(x))


# --- gauge-invariant views of the decompositions ------------------------------------------------
# Eigenvectors and singular vectors are fixed only up to sign (phase): these losses do not
# depend on that choice, so finite differences are meaningful.

def eigh_view(a):
    w, v = LA.eigh(herm(a))
    return w, abs2(v), cnp.matmul(v * w[..., None, :] ** 3, cnp.conj(cnp.swapaxes(v, -1, -2)))


def eig_view(a):
    w, v = LA.eig(a)
    return w, abs2(v)


def svd_view(a):
    u, s, vh = LA.svd(a, full_matrices=False)
    return s, cnp.matmul(u, vh), abs2(u) * 2.0, abs2(vh)


SQ = well_conditioned(real(3, 3))
SQC = well_conditioned(cplx(3, 3))
BATCH = well_conditioned(real(2, 3, 3))
RHS = real(3, 2)
CHAIN = [real(4), real(3, 5), real(5, 2)]
RHS2 = real(5, 2)
LSQ_A = real(5, 3)
TS_B = real(6)
TENSOR_A = well_conditioned(real(6, 6)).reshape(6, 2, 3)

# name -> (function, arguments to check at)
GRAD_CASES = {
    'inv': (LA.inv, [SQ, SQC, BATCH]),
    'solve_a': (lambda a: LA.solve(a, RHS.astype(a.dtype)), [SQ, SQC, BATCH]),
    'solve_b': (lambda b: LA.solve(SQ, b), [real(3), real(3, 2), cplx(3, 2), real(2, 3, 1)]),
    'det': (LA.det, [SQ, SQC, real(2, 3, 3)]),
    'slogdet': (lambda a: tuple(LA.slogdet(a)), [real(3, 3), SQC, real(2, 3, 3)]),
    'cholesky': (lambda a: LA.cholesky(spd(a)), [real(3, 3), cplx(3, 3), real(2, 3, 3)]),
    'cholesky_upper': (lambda a: LA.cholesky(spd(a), upper=True), [real(3, 3)]),
    'eigh': (eigh_view, [real(3, 3), cplx(3, 3), real(2, 3, 3)]),
    'eigvalsh': (lambda a: LA.eigvalsh(herm(a)), [real(4, 4), cplx(3, 3)]),
    'eig': (eig_view, [real(3, 3), cplx(3, 3), real(2, 3, 3)]),
    'eigvals': (LA.eigvals, [real(3, 3)]),
    'svd_square': (svd_view, [real(3, 3), cplx(3, 3)]),
    'svd_tall': (svd_view, [real(4, 2), cplx(4, 2), real(2, 4, 3)]),
    'svd_wide': (svd_view, [real(2, 4), cplx(2, 4)]),
    'svdvals': (lambda a: LA.svd(a, compute_uv=False), [real(3, 4), cplx(4, 3)]),
    'qr_tall': (lambda a: tuple(LA.qr(a)), [real(4, 3), cplx(4, 3), real(2, 3, 3)]),
    'qr_wide': (lambda a: tuple(LA.qr(a)), [real(2, 4), cplx(2, 3)]),
    'qr_r': (lambda a: LA.qr(a, mode='r'), [real(4, 3)]),
    'pinv': (LA.pinv, [real(3, 2), real(2, 4), cplx(3, 2), real(2, 2, 3)]),
    'matrix_power_5': (lambda a: LA.matrix_power(a, 5), [real(3, 3) / 2, cplx(3, 3) / 2]),
    'matrix_power_-2': (lambda a: LA.matrix_power(a, -2), [SQ]),
    'multi_dot': (lambda a: LA.multi_dot([CHAIN[0], a, CHAIN[1], CHAIN[2]]), [real(4, 3)]),
    'lstsq': (lambda a: (LA.lstsq(a, RHS2)[0], LA.lstsq(a, RHS2)[1], LA.lstsq(a, RHS2)[3]),
              [real(5, 3)]),
    'lstsq_b': (lambda b: LA.lstsq(LSQ_A, b)[:2], [real(5), real(5, 2)]),
    'tensorinv': (lambda a: LA.tensorinv(a, ind=1), [TENSOR_A]),
    'tensorsolve': (lambda a: LA.tensorsolve(a, TS_B), [TENSOR_A]),
    'cond': (LA.cond, [SQ]),
    'cond_fro': (lambda a: LA.cond(a, 'fro'), [SQ]),
}


@pytest.mark.parametrize('name', sorted(GRAD_CASES))
def test_gradients_match_finite_differences(name):
    f, xs = GRAD_CASES[name]
    for x in xs:
        check_grads(f, (x,), order=2, modes=MODES)


NORM_VECTOR_ORDS = [None, 2, 1, -1, np.inf, -np.inf, 3, 0.5]
NORM_MATRIX_ORDS = [None, 'fro', 'nuc', 1, -1, 2, -2, np.inf, -np.inf]


@pytest.mark.parametrize('ord', NORM_VECTOR_ORDS + [0], ids=str)
def test_vector_norm_values_and_gradients(ord):
    v = real(5)
    x = cplx(3, 4, 2)
    np.testing.assert_allclose(LA.norm(v, ord), np.linalg.norm(v, ord))
    for axis, keep in [(1, True), (-1, False), (0, False)]:
        np.testing.assert_allclose(LA.norm(x, ord, axis=axis, keepdims=keep),
                                   np.linalg.norm(x, ord, axis=axis, keepdims=keep))
    if ord != 0:   # the 0-"norm" is a count: no derivative
        check_grads(lambda v: LA.norm(v, ord), (v,), order=2, modes=MODES)
        check_grads(lambda x: LA.norm(x, ord, axis=1, keepdims=True), (x,), order=1,
                    modes=MODES)


@pytest.mark.parametrize('ord', NORM_MATRIX_ORDS, ids=str)
def test_matrix_norm_values_and_gradients(ord):
    m = real(4, 3)
    x = cplx(3, 2, 4)
    np.testing.assert_allclose(LA.norm(m, ord), np.linalg.norm(m, ord))
    for axes, keep in [((2, 0), True), ((0, 1), False)]:
        np.testing.assert_allclose(LA.norm(x, ord, axis=axes, keepdims=keep),
                                   np.linalg.norm(x, ord, axis=axes, keepdims=keep))
    check_grads(lambda m: LA.norm(m, ord), (m,), order=2, modes=MODES)
    check_grads(lambda x: LA.norm(x, ord, axis=(2, 0)), (x,), order=1, modes=MODES)


def test_norm_defaults_and_numpy2_names():
    x = real(2, 3, 4)
    np.testing.assert_allclose(LA.norm(x), np.linalg.norm(x))
    np.testing.assert_allclose(LA.norm(x, keepdims=True), np.linalg.norm(x, keepdims=True))
    np.testing.assert_allclose(LA.vector_norm(x, axis=(0, 2), ord=3),
                               np.linalg.vector_norm(x, axis=(0, 2), ord=3))
    np.testing.assert_allclose(LA.matrix_norm(x, ord='nuc'), np.linalg.matrix_norm(x, ord='nuc'))
    # the zero vector: a zero (sub)gradient, not NaN
    np.testing.assert_array_equal(cr.grad(LA.norm)(np.zeros(3)), np.zeros(3))
    with pytest.raises(cr.ShapeError, match='norm'):
        LA.norm(x, 2)
    with pytest.raises(ValueError, match='norm'):
        LA.norm(real(3), 'fro')


def test_triangular_solve_primitive():
    # the helper of the cholesky and qr rules: reads one triangle, batched, any dtype
    from chainrule.ops.linalg import triangular_solve
    low = np.tril(real(3, 3)) + 3 * np.eye(3)
    junk = np.triu(real(3, 3), 1)            # ignored, as the other triangle is in LAPACK
    b = real(3, 2)
    for lower, a, junk_ in [(True, low, junk), (False, low.T, junk.T)]:
        np.testing.assert_allclose(triangular_solve(a + junk_, b, lower=lower),
                                   np.linalg.solve(a, b), rtol=1e-12)
        check_grads(lambda a, b: triangular_solve(a, b, lower=lower), (a + junk_, b), order=2,
                    modes=MODES)
    batch = np.tril(cplx(2, 3, 3)) + 3 * np.eye(3)
    np.testing.assert_allclose(triangular_solve(batch, b, lower=True),
                               np.linalg.solve(batch, b), rtol=1e-12)
    check_grads(lambda a, b: triangular_solve(a, b, lower=True), (batch, cplx(2, 3, 1)),
                order=2, modes=MODES)


def test_numpy_functions_on_a_tensor_dispatch_here():
    a = cr.Tensor(2 * np.eye(3), requires_grad=True)
    loss = np.linalg.slogdet(a)[1] + np.linalg.norm(a) + np.einsum('ii', a)
    loss.backward()
    np.testing.assert_allclose(a.grad.numpy(), 0.5 * np.eye(3) + a.numpy() / np.linalg.norm(
        2 * np.eye(3)) + np.eye(3), rtol=1e-12)


# --- forward values equal NumPy's ---------------------------------------------------------------

FORWARD = [
    ('inv', LA.inv, np.linalg.inv, [SQ, SQC, BATCH]),
    ('solve', LA.solve, np.linalg.solve, [(SQ, real(3)), (BATCH, real(2, 3, 4)), (SQC, real(3, 1)),
                                          (BATCH, real(3))]),
    ('det', LA.det, np.linalg.det, [SQ, SQC, BATCH]),
    ('slogdet', LA.slogdet, np.linalg.slogdet, [SQ, SQC, BATCH]),
    ('cholesky', LA.cholesky, np.linalg.cholesky, [np.asarray(spd(SQ)), np.asarray(spd(SQC))]),
    ('eigh', LA.eigh, np.linalg.eigh, [SQ, SQC, BATCH]),
    ('eigvalsh', LA.eigvalsh, np.linalg.eigvalsh, [SQ]),
    ('eig', LA.eig, np.linalg.eig, [SQ, SQC]),
    ('eigvals', LA.eigvals, np.linalg.eigvals, [BATCH]),
    ('svd', LA.svd, np.linalg.svd, [real(3, 4), cplx(2, 4, 3)]),
    ('svd_reduced', lambda a: LA.svd(a, False), lambda a: np.linalg.svd(a, False), [real(5, 3)]),
    ('qr', LA.qr, np.linalg.qr, [real(4, 3), cplx(3, 4), real(2, 3, 5)]),
    ('qr_complete', lambda a: LA.qr(a, 'complete'), lambda a: np.linalg.qr(a, 'complete'),
     [real(4, 3)]),
    ('pinv', LA.pinv, np.linalg.pinv, [real(3, 5), cplx(2, 4, 3)]),
    ('matrix_power', lambda a: LA.matrix_power(a, 3), lambda a: np.linalg.matrix_power(a, 3),
     [SQ, BATCH]),
    ('matrix_power_0', lambda a: LA.matrix_power(a, 0), lambda a: np.linalg.matrix_power(a, 0),
     [SQ]),
    ('matrix_power_neg', lambda a: LA.matrix_power(a, -3),
     lambda a: np.linalg.matrix_power(a, -3), [SQ]),
    ('multi_dot', lambda a: LA.multi_dot([a, real(3, 6), real(6, 2), real(2, 4)]),
     lambda a: None, [real(5, 3)]),
    ('cond', LA.cond, np.linalg.cond, [SQ, BATCH]),
    ('matrix_rank', LA.matrix_rank, np.linalg.matrix_rank, [real(4, 2) @ real(2, 5)]),
    ('lstsq', LA.lstsq, np.linalg.lstsq, [(real(5, 3), real(5, 2)), (real(5, 3), real(5)),
                                          (real(3, 5), real(3, 2)),
                                          (real(5, 2) @ real(2, 3), real(5))]),
    ('tensorinv', lambda a: LA.tensorinv(a, ind=1), lambda a: np.linalg.tensorinv(a, ind=1),
     [real(6, 2, 3)]),
    ('tensorsolve', LA.tensorsolve, np.linalg.tensorsolve, [(real(6, 2, 3), real(6)),
                                                            (real(2, 3, 6), real(2, 3))]),
    ('tensorsolve_axes', lambda a, b: LA.tensorsolve(a, b, axes=(0,)),
     lambda a, b: np.linalg.tensorsolve(a, b, axes=(0,)), [(real(3, 6, 2), real(6))]),
    ('cross', LA.cross, np.linalg.cross, [(real(4, 3), real(4, 3))]),
    ('tensordot', lambda a, b: LA.tensordot(a, b, axes=1),
     lambda a, b: np.linalg.tensordot(a, b, axes=1), [(real(4, 3), real(3, 2))]),
    ('matmul', LA.matmul, np.linalg.matmul, [(real(2, 4, 3), real(3, 2))]),
    ('vecdot', LA.vecdot, np.linalg.vecdot, [(cplx(4, 3), cplx(3))]),
    ('outer', LA.outer, np.linalg.outer, [(real(4), real(3))]),
    ('trace', LA.trace, np.linalg.trace, [BATCH]),
    ('diagonal', LA.diagonal, np.linalg.diagonal, [BATCH]),
    ('matrix_transpose', LA.matrix_transpose, np.linalg.matrix_transpose, [BATCH]),
]


def _compare(got, want):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _compare(g, w)
        return
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)
    assert np.shape(got) == np.shape(want)


@pytest.mark.parametrize('case', FORWARD, ids=[c[0] for c in FORWARD])
def test_forward_equals_numpy(case):
    name, f, ref, inputs = case
    for x in inputs:
        args = x if isinstance(x, tuple) else (x,)
        if name == 'multi_dot':
            mats = [args[0], real(3, 6), real(6, 2), real(2, 4)]
            want = np.linalg.multi_dot(mats)
            got = LA.multi_dot(mats)
        else:
            got, want = f(*args), ref(*args)
        _compare(tuple(got) if isinstance(got, tuple) else got,
                 tuple(want) if isinstance(want, tuple) else want)
        # and with traced inputs: the value is the same
        if name not in ('matrix_rank',):
            traced = cr.Tensor(args[0])
            out = f(traced, *args[1:]) if name != 'multi_dot' else None
            if out is not None:
                vals = tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else \
                    np.asarray(out)
                _compare(vals, tuple(want) if isinstance(want, tuple) else want)


def test_eig_is_always_complex():
    w, v = LA.eig(np.diag([1.0, 2.0]))       # NumPy would return float arrays here
    assert w.dtype == v.dtype == np.complex128
    np.testing.assert_allclose(w, [1, 2])


def test_multi_dot_chooses_the_cheap_order():
    # (A B) C costs 10*100*5 + 10*5*50 = 7500, A (B C) 100*5*50 + 10*100*50 = 75000
    from chainrule.numpy.linalg import _chain_order
    assert _chain_order([10, 100, 5, 50])[0][2] == 1
    assert _chain_order([50, 5, 100, 10])[0][2] == 0


# --- float32 ----------------------------------------------------------------------------------

F32_CASES = ['inv', 'det', 'slogdet', 'eigh', 'svd_tall', 'qr_tall', 'cholesky', 'solve_a']


@pytest.mark.parametrize('name', F32_CASES)
def test_float32_stays_float32_and_gradients_match(name):
    f, xs = GRAD_CASES[name]
    x = xs[0].astype(np.float32)
    out = f(x)
    for o in (out if isinstance(out, tuple) else (out,)):
        assert np.asarray(o).dtype == np.float32, (name, np.asarray(o).dtype)
    check_grads(f, (x,), order=1, modes=MODES)
    g = cr.grad(lambda x: cnp.sum(f(x)[0] if isinstance(out, tuple) else f(x)))(x)
    assert g.dtype == np.float32


@pytest.mark.parametrize('name', ['inv', 'slogdet', 'eigh', 'svd_square', 'qr_tall', 'eig',
                                  'cholesky', 'pinv'])
def test_complex64_stays_complex64_and_gradients_match(name):
    f, xs = GRAD_CASES[name]
    x = next(x for x in xs if np.iscomplexobj(x)).astype(np.complex64)
    out = f(x)
    for o in (out if isinstance(out, tuple) else (out,)):
        assert np.asarray(o).dtype in (np.complex64, np.float32), (name, np.asarray(o).dtype)
    check_grads(f, (x,), order=1, modes=MODES)


# --- analytic values --------------------------------------------------------------------------

def test_analytic_gradients():
    a = SQ
    inv_t = np.linalg.inv(a).T
    np.testing.assert_allclose(cr.grad(lambda a: LA.slogdet(a)[1])(a), inv_t, rtol=1e-12)
    np.testing.assert_allclose(cr.grad(LA.det)(a), np.linalg.det(a) * inv_t, rtol=1e-12)
    # d tr(A^-1) = -tr(A^-1 dA A^-1): gradient -(A^-2)^T
    np.testing.assert_allclose(cr.grad(lambda a: cnp.trace(LA.inv(a)))(a),
                               -np.linalg.matrix_power(np.linalg.inv(a), 2).T, rtol=1e-12)
    # the sum of the eigenvalues of a symmetric matrix is its trace: gradient I
    s = a + a.T
    np.testing.assert_allclose(cr.grad(lambda s: cnp.sum(LA.eigvalsh(s)))(s), np.eye(3),
                               atol=1e-12)
    # the nuclear norm of a matrix with distinct singular values: gradient U V^T
    u, _, vh = np.linalg.svd(a)
    np.testing.assert_allclose(cr.grad(lambda a: LA.norm(a, 'nuc'))(a), u @ vh, atol=1e-12)
    # complex: log|det A| = Re tr(log A) changes by Re sum(A^-T o dA), so in JAX's convention
    # (gradient d/dx - i d/dy of a real function) its gradient is A^-T, unconjugated
    c = SQC
    np.testing.assert_allclose(cr.grad(lambda c: LA.slogdet(c)[1])(c), np.linalg.inv(c).T,
                               rtol=1e-12)


def test_holomorphic_derivatives():
    # det, inv, fft and einsum are holomorphic: grad(..., holomorphic=True) is the complex
    # derivative, d det / dA = adj(A)^T
    c = SQC
    np.testing.assert_allclose(cr.grad(LA.det, holomorphic=True)(c),
                               np.linalg.det(c) * np.linalg.inv(c).T, rtol=1e-12)
    ci = np.linalg.inv(c)
    np.testing.assert_allclose(cr.grad(lambda a: cnp.sum(LA.inv(a)), holomorphic=True)(c),
                               -(ci @ np.ones((3, 3)) @ ci).T, rtol=1e-12)
    z = cplx(5)
    np.testing.assert_allclose(cr.grad(lambda z: cnp.fft.fft(z)[1], holomorphic=True)(z),
                               np.exp(-2j * np.pi * np.arange(5) / 5), rtol=1e-12)
    np.testing.assert_allclose(cr.grad(lambda a: cnp.einsum('ij,ji', a, a), holomorphic=True)(c),
                               2 * c.T, rtol=1e-12)


def test_det_gradient_at_singular_matrices():
    # det is a polynomial: its gradient adj(A)^T exists everywhere. At (nearly) singular A
    # the rules use the SVD form of the adjugate instead of det(A) inv(A).
    np.testing.assert_allclose(cr.grad(LA.det)(np.array([[1.0, 2.0], [2.0, 4.0]])),
                               [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)
    np.testing.assert_array_equal(cr.grad(LA.det)(np.zeros((3, 3))), np.zeros((3, 3)))
    rank2 = real(3, 2) @ real(2, 3)
    check_grads(LA.det, (rank2,), order=2, modes=MODES)
    # rank n-2 and complex: first order (the SVD's own derivative is not exact there)
    for a in [real(4, 2) @ real(2, 4), (real(3, 2) @ real(2, 3)) * (1 + 1j),
              np.stack([np.eye(3), np.ones((3, 3))])]:
        check_grads(LA.det, (a,), order=1, modes=MODES)


def test_hessian_of_logdet():
    # d^2 log det A [E, F] = -tr(A^-1 E A^-1 F): the Hessian applied to E is -(A^-1 E A^-1)^T
    a = SQ
    e = real(3, 3)
    hv = cr.jvp(cr.grad(lambda a: LA.slogdet(a)[1]), (a,), (e,))[1]
    ai = np.linalg.inv(a)
    np.testing.assert_allclose(hv, -(ai @ e @ ai).T, rtol=1e-10)


# --- PyTorch --------------------------------------------------------------------------------

def _torch_grad(torch_f, x):
    torch = pytest.importorskip('torch')
    t = torch.tensor(x, requires_grad=True)
    out = torch_f(torch, t)
    out.backward()
    # PyTorch's gradient of a real loss of complex z is the conjugate of JAX's (and ours)
    return np.conj(t.grad.numpy())


TORCH_CASES = [
    ('inv', lambda x: cnp.sum(cnp.sin(LA.inv(x))), lambda T, x: T.sin(T.linalg.inv(x)).sum(),
     [SQ, BATCH]),
    ('inv_complex', lambda x: cnp.sum(abs2(LA.inv(x))),
     lambda T, x: (T.linalg.inv(x).abs() ** 2).sum(), [SQC]),
    ('det', lambda x: cnp.sum(LA.det(x)), lambda T, x: T.linalg.det(x).sum(), [SQ, BATCH]),
    ('slogdet', lambda x: cnp.sum(LA.slogdet(x)[1]), lambda T, x: T.linalg.slogdet(x)[1].sum(),
     [SQ, SQC]),
    ('solve', lambda x: cnp.sum(cnp.sin(LA.solve(x, np.arange(6.0).reshape(3, 2)))),
     lambda T, x: T.sin(T.linalg.solve(x, T.arange(6.0, dtype=x.dtype).reshape(3, 2))).sum(),
     [SQ]),
    ('cholesky', lambda x: cnp.sum(cnp.sin(LA.cholesky(spd(x)))),
     lambda T, x: T.sin(T.linalg.cholesky(x @ x.mT + T.eye(3, dtype=x.dtype))).sum(), [SQ]),
    ('eigh', lambda x: cnp.sum(cnp.sin(LA.eigh(herm(x))[0])) + cnp.sum(LA.eigh(herm(x))[1] ** 4),
     lambda T, x: (lambda w, v: T.sin(w).sum() + (v ** 4).sum())(*T.linalg.eigh((x + x.mT) / 2)),
     [real(4, 4)]),
    ('eigh_complex', lambda x: cnp.sum(cnp.sin(LA.eigvalsh(herm(x)))),
     lambda T, x: T.sin(T.linalg.eigvalsh((x + x.mH) / 2)).sum(), [cplx(3, 3)]),
    ('svd', lambda x: cnp.sum(cnp.sin(LA.svd(x, False)[1])) + cnp.sum(
        cnp.matmul(LA.svd(x, False)[0], LA.svd(x, False)[2]) ** 3),
     lambda T, x: (lambda u, s, vh: T.sin(s).sum() + ((u @ vh) ** 3).sum())(
         *T.linalg.svd(x, full_matrices=False)), [real(4, 3), real(3, 5)]),
    ('qr', lambda x: cnp.sum(cnp.sin(LA.qr(x)[0])) + cnp.sum(LA.qr(x)[1] ** 2),
     lambda T, x: (lambda q, r: T.sin(q).sum() + (r ** 2).sum())(*T.linalg.qr(x)),
     [real(4, 3)]),
    ('eig', lambda x: cnp.sum(abs2(LA.eigvals(x))),
     lambda T, x: (T.linalg.eigvals(x).abs() ** 2).sum(), [real(3, 3), cplx(3, 3)]),
    ('pinv', lambda x: cnp.sum(cnp.sin(LA.pinv(x))), lambda T, x: T.sin(T.linalg.pinv(x)).sum(),
     [real(3, 2)]),
    ('matrix_power', lambda x: cnp.sum(LA.matrix_power(x, 3)),
     lambda T, x: T.linalg.matrix_power(x, 3).sum(), [SQ]),
    ('norm_nuc', lambda x: LA.norm(x, 'nuc'), lambda T, x: T.linalg.matrix_norm(x, 'nuc'),
     [real(3, 4)]),
    ('norm_2', lambda x: LA.norm(x, 2), lambda T, x: T.linalg.matrix_norm(x, 2), [cplx(3, 4)]),
    ('norm_vec3', lambda x: LA.norm(x, 3), lambda T, x: T.linalg.vector_norm(x, 3), [cplx(5)]),
]


@pytest.mark.parametrize('case', TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_gradients_match_torch(case):
    _, f, torch_f, xs = case
    for x in xs:
        np.testing.assert_allclose(cr.grad(f)(x), _torch_grad(torch_f, x), rtol=1e-8,
                                   atol=1e-10)


# --- transforms and front ends ----------------------------------------------------------------

def test_vmap_equals_a_loop():
    xs = BATCH
    for f in [LA.inv, LA.det, lambda a: LA.slogdet(a)[1], lambda a: LA.eigh(a + a.T)[0],
              lambda a: LA.svd(a, compute_uv=False), lambda a: LA.solve(a, np.ones(3))]:
        np.testing.assert_allclose(cr.vmap(f)(xs), np.stack([f(x) for x in xs]), rtol=1e-12)
    # per-example gradients
    g = cr.vmap(cr.grad(lambda a: LA.slogdet(a)[1]))(xs)
    np.testing.assert_allclose(g, np.linalg.inv(xs).transpose(0, 2, 1), rtol=1e-12)
    # an unbatched matrix with batched right-hand sides
    bs = real(4, 3)
    np.testing.assert_allclose(cr.vmap(lambda b: LA.solve(SQ, b))(bs),
                               np.linalg.solve(SQ, bs.T).T, rtol=1e-12)


COMPOSE = {
    'inv': LA.inv, 'slogdet': lambda a: LA.slogdet(a)[1],
    'eigvalsh': lambda a: LA.eigvalsh(a + a.T),
    'svdvals': lambda a: LA.svd(a, compute_uv=False), 'qr': lambda a: LA.qr(a)[1],
    'eig': lambda a: cnp.abs(LA.eigvals(a)), 'cholesky': lambda a: LA.cholesky(spd(a)),
    'pinv': LA.pinv, 'norm2': lambda a: LA.norm(a, 2), 'solve': lambda a: LA.solve(a, a[0]),
}


@pytest.mark.parametrize('name', sorted(COMPOSE))
def test_transforms_compose(name, recwarn):
    # jacfwd and jacrev agree (both vmap the rules: no loop fallback may warn); the Hessian
    # (forward over reverse) equals jacrev(jacfwd) and is symmetric
    f = COMPOSE[name]
    jf, jr = cr.jacfwd(f)(SQ), cr.jacrev(f)(SQ)
    np.testing.assert_allclose(jf, jr, rtol=1e-9, atol=1e-10)
    s = lambda a: cnp.sum(f(a))  # noqa: E731
    h = cr.hessian(s)(SQ)
    np.testing.assert_allclose(h, cr.jacrev(cr.jacfwd(s))(SQ), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(h, h.transpose(2, 3, 0, 1), rtol=1e-8, atol=1e-10)
    assert not [w for w in recwarn if 'no batching rule' in str(w.message)]


def test_tensor_backward():
    a = cr.Tensor(SQ, requires_grad=True)
    loss = LA.slogdet(a)[1] + cnp.sum(LA.inv(a))
    loss.backward()
    ai = np.linalg.inv(SQ)
    np.testing.assert_allclose(a.grad.numpy(), ai.T - (ai @ np.ones((3, 3)) @ ai).T, rtol=1e-10)


def test_jit_of_grad():
    f = lambda a: LA.slogdet(a)[1] + cnp.sum(LA.svd(a, compute_uv=False))  # noqa: E731
    np.testing.assert_allclose(cr.jit(cr.grad(f))(SQ), cr.grad(f)(SQ), rtol=1e-12)


# --- errors -----------------------------------------------------------------------------------

def test_shape_errors_name_the_op_and_shapes():
    with pytest.raises(cr.ShapeError, match=r'inv: .*\(3, 4\)'):
        LA.inv(real(3, 4))
    with pytest.raises(cr.ShapeError, match=r'det: .*\(5,\)'):
        LA.det(real(5))
    with pytest.raises(cr.ShapeError, match=r'solve: .*\(3, 3\).*\(4,\)'):
        LA.solve(SQ, real(4))
    with pytest.raises(cr.ShapeError, match=r'solve: .*\(2, 3, 3\).*\(4, 3, 1\)'):
        LA.solve(BATCH, real(4, 3, 1))
    with pytest.raises(cr.ShapeError, match='cholesky'):
        cr.grad(lambda a: cnp.sum(LA.cholesky(a)))(real(2, 3))


def test_singular_matrix_raises_linalg_error_naming_the_op():
    with pytest.raises(np.linalg.LinAlgError, match='inv: Singular matrix'):
        LA.inv(np.ones((3, 3)))
    with pytest.raises(LA.LinAlgError, match='solve: Singular matrix'):
        cr.grad(lambda a: cnp.sum(LA.solve(a, np.ones(3))))(np.ones((3, 3)))
    with pytest.raises(np.linalg.LinAlgError, match='cholesky'):
        LA.cholesky(-np.eye(2))
    with pytest.raises(np.linalg.LinAlgError, match='slogdet: .* singular'):
        cr.grad(lambda a: LA.slogdet(a)[1])(np.ones((2, 2)))


def test_full_matrices_svd_derivative_needs_a_square_matrix_or_unused_extra_vectors():
    with pytest.raises(cr.GradientError, match='full_matrices=False'):
        cr.grad(lambda a: cnp.sum(LA.svd(a)[0]))(real(3, 2))
    with pytest.raises(cr.GradientError, match='full_matrices=False'):
        cr.grad(lambda a: cnp.sum(LA.svd(a)[2]))(real(2, 3))
    # NumPy's default full_matrices=True, used for s and the first min(m, n) singular vectors
    for a in [real(4, 2), cplx(2, 4)]:
        check_grads(lambda a: LA.svd(a)[1], (a,), order=2)
        check_grads(lambda a: (lambda u, s, vh: cnp.matmul(u[:, :2], vh[:2]))(*LA.svd(a)), (a,),
                    order=1)


def test_complete_qr_is_differentiable_through_its_first_columns():
    for a in [real(5, 3), cplx(5, 3)]:
        check_grads(lambda a: (lambda q, r: (q[:, :3], r))(*LA.qr(a, 'complete')), (a,), order=2)
    with pytest.raises(cr.GradientError, match="mode='complete'"):
        cr.grad(lambda a: cnp.sum(LA.qr(a, 'complete')[0]))(real(5, 3))


def test_integer_input_is_promoted():
    np.testing.assert_allclose(LA.inv(np.array([[2, 0], [0, 4]])), [[0.5, 0], [0, 0.25]])


def test_docstring_examples():
    import doctest

    import chainrule.numpy.linalg as mod
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed
