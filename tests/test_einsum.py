"""Tests of `chainrule.numpy.einsum`: forward values equal `np.einsum` for explicit and implicit
outputs, ellipses, repeated letters (diagonals, traces), broadcasting size-1 axes and any number
of operands; derivatives equal finite differences to second order in reverse and forward mode
(real, complex, float32); gradients equal PyTorch's; vmap; shape errors name the op and
shapes."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads

MODES = ('rev', 'fwd')
rng = np.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


def C(*shape):
    return R(*shape) + 1j * R(*shape)


CASES = [
    ('ij,jk->ik', R(3, 4), R(4, 5)),
    ('ij,jk', R(3, 4), C(4, 5)),                 # implicit output, mixed real/complex
    ('ii->i', R(3, 3)),                          # diagonal
    ('ii', C(4, 4)),                             # trace
    ('iij->ij', R(3, 3, 2)),
    ('iii->', R(2, 2, 2)),
    ('ijj,jk->ik', R(2, 3, 3), R(3, 2)),         # a diagonal inside a contraction
    ('ii,i->i', R(3, 3), R(3)),
    ('ij->ji', R(2, 3)),
    ('ij->', R(2, 3)),
    ('ij->i', C(2, 3)),                          # a letter only in the operand: broadcast back
    ('i,i', R(4), R(4)),
    ('i,j->ij', R(3), R(2)),
    ('ijk', R(2, 3, 4)),
    ('...ij,...jk->...ik', R(2, 1, 3, 4), R(5, 4, 2)),   # ellipsis with broadcasting
    ('...ii->...i', R(2, 3, 3)),
    ('...,...->...', R(3, 1), R(4)),
    ('bij,bjk->bik', R(2, 3, 4), R(2, 4, 2)),
    ('ij,jk,kl->il', R(2, 3), R(3, 4), R(4, 2)),
    ('ijk,jil->kl', R(2, 3, 4), R(3, 2, 5)),
    ('i,ij,j', R(3), R(3, 4), R(4)),
    (',i->i', np.float64(2.0), R(3)),            # a scalar operand
    ('ij,ij->ij', R(3, 1), R(3, 4)),             # a size-1 axis broadcast against a letter
    ('ab,cd->abcd', R(2, 1), R(1, 3)),
    ('Ba,aA', R(2, 3), R(3, 4)),                 # upper-case letters sort first
    ('ij,jk->', C(2, 3), C(3, 2)),
    ('ij,kl,jl->ik', R(3, 2), R(4, 5), R(2, 5)),
]
IDS = [c[0] or 'empty' for c in CASES]


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_forward_equals_numpy(case):
    spec, *ops = case
    want = np.einsum(spec, *ops)
    got = cnp.einsum(spec, *ops)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    traced = cnp.einsum(spec, *[cr.Tensor(o) for o in ops])
    np.testing.assert_allclose(traced.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_every_implementation_path_equals_numpy(case, monkeypatch):
    # large contractions of two operands run as one batched matmul, others through
    # np.einsum(optimize=True): force those paths on these small cases
    from chainrule.ops import linalg_einsum
    monkeypatch.setattr(linalg_einsum, 'EINSUM_SMALL', -1)
    spec, *ops = case
    want = np.einsum(spec, *ops)
    got = cnp.einsum(spec, *ops)
    assert np.shape(got) == np.shape(want) and np.result_type(got) == np.result_type(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_gradients_match_finite_differences(case):
    spec, *ops = case
    check_grads(lambda *a: cnp.einsum(spec, *a), tuple(np.asarray(o) for o in ops), order=2,
                modes=MODES)


def test_interleaved_form_and_optimize_flag():
    a, b = R(3, 4), R(4, 5)
    np.testing.assert_allclose(cnp.einsum(a, [0, 1], b, [1, 2], [0, 2]), a @ b)
    w = R(4)
    np.testing.assert_allclose(cnp.einsum(a, [Ellipsis, 1], w, [1]),
                               np.einsum(a, [Ellipsis, 1], w, [1]))
    np.testing.assert_allclose(cnp.einsum('ij,jk->ik', a, b, optimize='greedy'), a @ b)


def test_float32_stays_float32():
    a, b = R(3, 4).astype(np.float32), R(4, 2).astype(np.float32)
    out = cnp.einsum('ij,jk->ik', cr.Tensor(a), cr.Tensor(b))
    assert out.dtype == np.float32
    check_grads(lambda x, y: cnp.einsum('ij,jk->ki', x, y), (a, b), order=1, modes=MODES)
    g = cr.grad(lambda x: cnp.sum(cnp.einsum('ii->i', x)))(R(3, 3).astype(np.float32))
    assert g.dtype == np.float32


def test_analytic_gradients():
    a = R(4, 4)
    np.testing.assert_array_equal(cr.grad(lambda a: cnp.einsum('ii', a))(a), np.eye(4))
    w = R(4)
    np.testing.assert_allclose(cr.grad(lambda a: cnp.sum(w * cnp.einsum('ii->i', a)))(a),
                               np.diag(w))
    # the Hessian of the quadratic form x^T A x is A + A^T
    x = R(4)
    h = cr.hessian(lambda x: cnp.einsum('i,ij,j', x, a, x))(x)
    np.testing.assert_allclose(h, a + a.T, rtol=1e-12)


TORCH = [
    ('bij,bjk->bik', R(2, 3, 4), R(2, 4, 2)),
    ('ii->i', R(3, 3)),
    ('ij,jk,kl->il', C(2, 3), R(3, 4), C(4, 2)),
    ('...ij->...ji', R(2, 3, 4)),
    ('ij->', R(2, 5)),
]


@pytest.mark.parametrize('case', TORCH, ids=[c[0] for c in TORCH])
def test_gradients_match_torch(case):
    torch = pytest.importorskip('torch')
    spec, *ops = case
    ws = [R(*np.shape(np.einsum(spec, *ops)))]

    def loss(*xs):
        out = cnp.einsum(spec, *xs)
        return cnp.sum(ws[0] * (cnp.real(out) ** 2 + cnp.imag(out) if cnp.iscomplexobj(out)
                                else out ** 2))

    got = cr.grad(loss, argnums=tuple(range(len(ops))))(*ops)
    dt = np.result_type(*ops)    # torch.einsum needs one dtype; the cast is part of the loss
    ts = [torch.tensor(o, requires_grad=True) for o in ops]
    casts = [t.to(torch.complex128) if dt.kind == 'c' else t for t in ts]
    out = torch.einsum(spec, *casts)
    w = torch.tensor(ws[0])
    (w * (out.real ** 2 + out.imag if out.is_complex() else out ** 2)).sum().backward()
    for g, t in zip(got, ts):
        # PyTorch's gradient for complex inputs is the conjugate of ours (JAX's convention)
        np.testing.assert_allclose(g, np.conj(t.grad.numpy()), rtol=1e-10, atol=1e-12)


def test_vmap_equals_a_loop():
    xs, y = R(5, 3, 4), R(4, 2)
    f = lambda x, y: cnp.einsum('ij,jk->ik', x, y)  # noqa: E731
    np.testing.assert_allclose(cr.vmap(f, in_axes=(0, None))(xs, y),
                               np.stack([x @ y for x in xs]), rtol=1e-12)
    g = cr.vmap(cr.grad(lambda x: cnp.einsum('ii', x @ x.T)))(R(3, 2, 2))
    assert g.shape == (3, 2, 2)


def test_jit_of_grad():
    f = lambda a, b: cnp.sum(cnp.einsum('ij,jk->ik', a, b) ** 2)  # noqa: E731
    a, b = R(3, 4), R(4, 2)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(a, b), cr.grad(f)(a, b), rtol=1e-12)


def test_shape_errors_name_the_op_and_shapes():
    with pytest.raises(cr.ShapeError, match=r"einsum: .*\(3, 4\), \(5, 6\).*'j' has sizes 4 and 5"):
        cnp.einsum('ij,jk->ik', R(3, 4), R(5, 6))
    with pytest.raises(cr.ShapeError, match='2 operand subscripts for 1 operands'):
        cnp.einsum('ij,jk->ik', R(3, 4))
    with pytest.raises(cr.ShapeError, match="'ijk' names 3 axes of an operand with 2"):
        cnp.einsum('ijk->ik', cr.Tensor(R(3, 4)))
    with pytest.raises(cr.ShapeError, match="appear in no operand"):
        cnp.einsum('ij->iz', R(3, 4))
    with pytest.raises(cr.ShapeError, match=r"needs '\.\.\.'"):
        cnp.einsum('...i->i', R(2, 3))
    with pytest.raises(cr.ShapeError, match='invalid subscript'):
        cnp.einsum('i1->i', R(2, 3))


def test_docstring_examples():
    import doctest

    import chainrule.numpy._einsum as mod
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted and not res.failed
