"""Tests of `chainrule.scipy.linalg`: values equal SciPy's on the same inputs; derivatives equal
finite differences to second order in reverse and forward mode; `vmap` equals a loop; `jit`
equals eager; `eigh`'s derivative is that of the triangle it reads (`lower=`/`UPLO`)."""

import numpy as np
import pytest

sl = pytest.importorskip('scipy.linalg', reason='chainrule.scipy.linalg is checked against SciPy')

import chainrule as cr  # noqa: E402
import chainrule.numpy as cnp  # noqa: E402
import chainrule.scipy.linalg as csl  # noqa: E402
from chainrule.core import ShapeError  # noqa: E402
from chainrule.testing import check_grads  # noqa: E402
from test_api import _fd_grad  # noqa: E402

MODES = ('rev', 'fwd')
rng = np.random.default_rng(0)
N = 3
A = rng.standard_normal((N, N))
E = rng.standard_normal((N, N))
B = rng.standard_normal((N, 2))
b1 = rng.standard_normal(N)
SPD = A @ A.T + N * np.eye(N)
AC = A + 1j * rng.standard_normal((N, N))
SYL_B = rng.standard_normal((2, 2))
SYL_Q = rng.standard_normal((N, 2))
AB = rng.standard_normal((4, 5))         # (l, u) = (2, 1): l + u + 1 rows, n = 5
AB[1] += 4.0                             # the main diagonal (row u) dominates
BB = rng.standard_normal((5, 2))

# (id, chainrule function, SciPy function, arguments, derivative order checked)
CASES = [
    ('expm', csl.expm, sl.expm, (A,), 2),
    ('expm_large', csl.expm, sl.expm, (4 * A,), 1),          # needs scaling and squaring
    ('expm_complex', csl.expm, sl.expm, (AC,), 1),
    ('expm_frechet', lambda a, e: csl.expm_frechet(a, e),
     lambda a, e: sl.expm_frechet(a, e), (A, E), 2),
    ('expm_frechet_only', lambda a, e: csl.expm_frechet(a, e, compute_expm=False),
     lambda a, e: sl.expm_frechet(a, e, compute_expm=False), (A, E), 1),
    ('logm', csl.logm, sl.logm, (SPD,), 2),
    ('logm_nonsymmetric', csl.logm, sl.logm, (SPD + 0.5 * A,), 1),
    ('sqrtm', csl.sqrtm, sl.sqrtm, (SPD,), 2),
    ('sqrtm_nonsymmetric', csl.sqrtm, sl.sqrtm, (SPD + 0.5 * A,), 1),
    ('solve_sylvester', csl.solve_sylvester, sl.solve_sylvester, (A, SYL_B, SYL_Q), 2),
    ('solve_banded', lambda ab, b: csl.solve_banded((2, 1), ab, b),
     lambda ab, b: sl.solve_banded((2, 1), ab, b), (AB, BB), 2),
    ('solve_banded_vector', lambda ab, b: csl.solve_banded((2, 1), ab, b),
     lambda ab, b: sl.solve_banded((2, 1), ab, b), (AB, BB[:, 0]), 1),
    ('solve_banded_upper', lambda ab, b: csl.solve_banded((0, 3), ab, b),
     lambda ab, b: sl.solve_banded((0, 3), ab, b), (AB[[3, 2, 0, 1]], BB), 1),
    ('lu_factor', lambda a: csl.lu_factor(a)[0], lambda a: sl.lu_factor(a)[0], (A,), 2),
    ('block_diag', lambda a, b, c: csl.block_diag(a, b, c),
     lambda a, b, c: sl.block_diag(a, b, c), (A, B, b1), 2),
    ('eigh_values', lambda a: csl.eigh(a, eigvals_only=True),
     lambda a: sl.eigh(a, eigvals_only=True), (A,), 2),
    ('eigh_upper', lambda a: csl.eigh(a, lower=False, eigvals_only=True),
     lambda a: sl.eigh(a, lower=False, eigvals_only=True), (A,), 2),
    ('eigh_generalised', lambda a, b: csl.eigh(a, b, eigvals_only=True),
     lambda a, b: sl.eigh(a, b, eigvals_only=True), (A, SPD), 2),
    ('eigh_subset', lambda a: csl.eigh(a, subset_by_index=(1, 2), eigvals_only=True),
     lambda a: sl.eigh(a, subset_by_index=(1, 2), eigvals_only=True), (A,), 1),
]
for lower in (False, True):
    for trans in (0, 1, 2, 'T'):
        for unit in (False, True):
            CASES.append((f'solve_triangular[lower={lower},trans={trans},unit={unit}]',
                          lambda a, b, lo=lower, tr=trans, u=unit: csl.solve_triangular(
                              a, b, trans=tr, lower=lo, unit_diagonal=u),
                          lambda a, b, lo=lower, tr=trans, u=unit: sl.solve_triangular(
                              a, b, trans=tr, lower=lo, unit_diagonal=u),
                          (A + 3 * np.eye(N), B), 1))
    CASES.append((f'cho_solve[lower={lower}]',
                  lambda a, b, lo=lower: csl.cho_solve(csl.cho_factor(a, lower=lo), b),
                  lambda a, b, lo=lower: sl.cho_solve(sl.cho_factor(a, lower=lo), b),
                  (SPD + 0.5 * A, B), 2))     # not symmetric: only the triangle read matters
    CASES.append((f'cho_solve_vector[lower={lower}]',
                  lambda a, b, lo=lower: csl.cho_solve(csl.cho_factor(a, lower=lo), b),
                  lambda a, b, lo=lower: sl.cho_solve(sl.cho_factor(a, lower=lo), b),
                  (SPD, b1), 1))
for trans in (0, 1, 2):
    CASES.append((f'lu_solve[trans={trans}]',
                  lambda a, b, tr=trans: csl.lu_solve(csl.lu_factor(a), b, trans=tr),
                  lambda a, b, tr=trans: sl.lu_solve(sl.lu_factor(a), b, trans=tr),
                  (A, B), 2 if trans == 0 else 1))
CASES.append(('lu_solve_vector', lambda a, b: csl.lu_solve(csl.lu_factor(a), b),
              lambda a, b: sl.lu_solve(sl.lu_factor(a), b), (A, b1), 1))
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize('name,fn,ref,args,order', CASES, ids=IDS)
def test_values_equal_scipy(name, fn, ref, args, order):
    out, want = fn(*args), ref(*args)
    for o, w in zip(out if isinstance(out, tuple) else (out,),
                    want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(o, w, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize('name,fn,ref,args,order', CASES, ids=IDS)
def test_derivatives_match_finite_differences(name, fn, ref, args, order):
    check_grads(fn, args, order=order, modes=MODES)


def test_lu_factor_returns_scipys_pivots():
    lu, piv = csl.lu_factor(A)
    lu_ref, piv_ref = sl.lu_factor(A)
    np.testing.assert_array_equal(piv, piv_ref)
    np.testing.assert_allclose(lu, lu_ref, rtol=1e-12)


def test_cho_factor_holds_the_factor_in_its_triangle():
    for lower in (False, True):
        c, lo = csl.cho_factor(SPD, lower=lower)
        ref, lo_ref = sl.cho_factor(SPD, lower=lower)
        assert lo == lo_ref
        tri = np.tril if lower else np.triu
        np.testing.assert_allclose(tri(c), tri(ref), rtol=1e-12)


def test_expm_analytic_rotation():
    # expm([[0, t], [-t, 0]]) is the rotation by t, and d/dt of its (0, 1) entry is cos t
    def entry(t):
        return csl.expm(cnp.stack([cnp.stack([0.0 * t, t]), cnp.stack([-t, 0.0 * t])]))[0, 1]
    np.testing.assert_allclose(entry(0.7), np.sin(0.7), rtol=1e-14)
    np.testing.assert_allclose(cr.grad(entry)(0.7), np.cos(0.7), rtol=1e-12)
    np.testing.assert_allclose(cr.grad(cr.grad(entry))(0.7), -np.sin(0.7), rtol=1e-10)


def test_expm_frechet_is_the_directional_derivative_of_expm():
    _, L = csl.expm_frechet(A, E)
    _, L_jvp = cr.jvp(csl.expm, (A,), (E,))
    np.testing.assert_allclose(L_jvp, L, rtol=1e-10, atol=1e-12)


def test_sqrtm_squares_back_and_logm_inverts_expm():
    s = csl.sqrtm(SPD)
    np.testing.assert_allclose(s @ s, SPD, rtol=1e-10)
    np.testing.assert_allclose(csl.logm(csl.expm(0.3 * A)), 0.3 * A, rtol=1e-8, atol=1e-12)


# --- eigh: the derivative of what is computed -------------------------------------------------

@pytest.mark.parametrize('lower', [True, False])
def test_eigh_gradient_reads_one_triangle(lower):
    a = np.array([[2.0, 5.0], [1.0, 3.0]])
    uplo = 'L' if lower else 'U'
    want = _fd_grad(lambda x: np.linalg.eigh(x, uplo)[0][1], a)
    got_np = cr.grad(lambda x: cnp.linalg.eigh(x, uplo)[0][1])(a)
    got_sp = cr.grad(lambda x: csl.eigh(x, lower=lower)[0][1])(a)
    np.testing.assert_allclose(got_np, want, atol=1e-7)
    np.testing.assert_allclose(got_sp, want, atol=1e-7)
    if lower:   # the numbers of issue 12 (HIPS autograd and finite differences agree on them)
        np.testing.assert_allclose(got_np, [[0.2763932, 0.0], [0.89442719, 0.7236068]],
                                   atol=1e-7)


@pytest.mark.parametrize('uplo', ['L', 'U'])
def test_numpy_eigh_derivatives_on_nonsymmetric_and_complex_input(uplo):
    def view(x):
        w, v = cnp.linalg.eigh(x, uplo)
        return w, cnp.real(v * cnp.conj(v))
    check_grads(view, (A,), order=2, modes=MODES)
    check_grads(view, (AC,), order=1, modes=MODES)


def test_eigh_eigenvectors_match_scipy_up_to_sign():
    w, v = csl.eigh(A, SPD)
    w_ref, v_ref = sl.eigh(A, SPD)
    np.testing.assert_allclose(w, w_ref, rtol=1e-10)
    np.testing.assert_allclose(np.abs(v), np.abs(v_ref), rtol=1e-8)
    np.testing.assert_allclose(v.T @ SPD @ v, np.eye(N), atol=1e-10)    # b-orthonormal


# --- stacks and broadcasting -----------------------------------------------------------------

STACK_SPD = np.einsum('bij,bkj->bik', *(2 * [rng.standard_normal((2, N, N))])) + N * np.eye(N)
STACKED = [
    ('expm', csl.expm, sl.expm, (rng.standard_normal((2, N, N)),)),
    ('logm', csl.logm, sl.logm, (STACK_SPD,)),
    ('sqrtm', csl.sqrtm, sl.sqrtm, (STACK_SPD,)),
    ('lu_factor', lambda a: csl.lu_factor(a)[0], lambda a: sl.lu_factor(a)[0],
     (rng.standard_normal((2, N, N)),)),
    ('solve_sylvester', csl.solve_sylvester, sl.solve_sylvester,
     (rng.standard_normal((2, N, N)), SYL_B, SYL_Q)),
    # one right-hand side (n, k) for a stack of matrices: it broadcasts
    ('solve_triangular', lambda a, b: csl.solve_triangular(a, b, lower=True),
     lambda a, b: sl.solve_triangular(a, b, lower=True),
     (rng.standard_normal((2, N, N)) + 3 * np.eye(N), B)),
    ('cho_solve', lambda a, b: csl.cho_solve(csl.cho_factor(a), b),
     lambda a, b: sl.cho_solve(sl.cho_factor(a), b), (STACK_SPD, B)),
    ('lu_solve', lambda a, b: csl.lu_solve(csl.lu_factor(a), b),
     lambda a, b: sl.lu_solve(sl.lu_factor(a), b), (rng.standard_normal((2, N, N)), B)),
]


@pytest.mark.parametrize('name,fn,ref,args', STACKED, ids=[c[0] for c in STACKED])
def test_stacks_of_matrices_equal_scipy_per_matrix(name, fn, ref, args):
    out = fn(*args)
    batched = [a.ndim == 3 for a in args]
    for i in range(2):
        one = [a[i] if b else a for a, b in zip(args, batched)]
        np.testing.assert_allclose(out[i], ref(*one), rtol=1e-9, atol=1e-11)
    check_grads(fn, args, order=1, modes=MODES)


# --- vmap, jit --------------------------------------------------------------------------------

STACK = rng.standard_normal((4, N, N))
BATCHED = [
    ('expm', lambda a: csl.expm(a), (STACK,)),
    ('logm', lambda a: csl.logm(a @ np.swapaxes(a, -1, -2) + N * np.eye(N)), (STACK,)),
    ('lu_solve', lambda a, b: csl.lu_solve(csl.lu_factor(a), b), (STACK, rng.standard_normal(
        (4, N, 2)))),
    ('solve_triangular', lambda a, b: csl.solve_triangular(a + 3 * np.eye(N), b, lower=True),
     (STACK, rng.standard_normal((4, N)))),
    ('solve_sylvester', lambda a, q: csl.solve_sylvester(a, SYL_B, q),
     (STACK, rng.standard_normal((4, N, 2)))),
    ('solve_banded', lambda ab, b: csl.solve_banded((2, 1), ab + AB, b),
     (0.1 * rng.standard_normal((4, 4, 5)), rng.standard_normal((4, 5)))),
    ('cho_solve', lambda a, b: csl.cho_solve(csl.cho_factor(a @ np.swapaxes(a, -1, -2) +
                                                           N * np.eye(N)), b),
     (STACK, rng.standard_normal((4, N)))),
]


@pytest.mark.parametrize('name,fn,args', BATCHED, ids=[b[0] for b in BATCHED])
def test_vmap_equals_a_loop(name, fn, args):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')       # no loop-and-stack fallback
        out = cr.vmap(fn)(*args)
        grads = cr.vmap(cr.grad(lambda *xs: cnp.sum(fn(*xs) ** 2)))(*args)
    loop = np.stack([fn(*xs) for xs in zip(*args)])
    np.testing.assert_allclose(out, loop, rtol=1e-10, atol=1e-12)
    loop_g = np.stack([cr.grad(lambda *xs: cnp.sum(fn(*xs) ** 2))(*xs) for xs in zip(*args)])
    np.testing.assert_allclose(grads, loop_g, rtol=1e-8, atol=1e-10)


def test_jit_equals_eager():
    def f(a, b):
        x = csl.cho_solve(csl.cho_factor(a @ a.T + N * np.eye(N)), b)
        return cnp.sum(csl.expm(0.1 * a) @ x) + cnp.sum(csl.lu_solve(csl.lu_factor(a), b))
    np.testing.assert_allclose(cr.jit(f)(A, B), f(A, B), rtol=1e-12)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(A, B), cr.grad(f)(A, B), rtol=1e-10)


# --- errors -----------------------------------------------------------------------------------

def test_errors_name_the_function_and_shapes():
    with pytest.raises(ShapeError, match=r'expm: A must be a square matrix.*\(2, 3\)'):
        csl.expm(np.ones((2, 3)))
    with pytest.raises(ShapeError, match=r'solve_triangular: shapes \(3, 3\) \(a\) and \(4,\)'):
        csl.solve_triangular(A, np.ones(4))
    with pytest.raises(ShapeError, match=r'solve_sylvester: .*q must be \(\.\.\., 3, 2\)'):
        csl.solve_sylvester(A, SYL_B, np.ones((2, 2)))
    with pytest.raises(ShapeError, match=r'solve_banded: .*ab must be \(4, n\)'):
        csl.solve_banded((2, 1), np.ones((3, 5)), np.ones(5))
    with pytest.raises(ValueError, match='trans must be'):
        csl.solve_triangular(A, B, trans=3)
    with pytest.raises(NotImplementedError, match='type=1'):
        csl.eigh(A, SPD, type=2)


def test_tensor_inputs_get_their_gradient_from_backward():
    a = cr.Tensor(A.copy(), requires_grad=True)
    cnp.sum(csl.expm(a) * E).backward()
    np.testing.assert_allclose(a.grad.numpy(), cr.grad(lambda x: cnp.sum(csl.expm(x) * E))(A),
                               rtol=1e-12)
