"""Smoke tests of the core engine: grad, nested grad, Tensor backward, errors."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp


def test_grad_of_sin_squared_matches_analytic():
    x = np.linspace(-2, 2, 7)
    g = cr.grad(lambda x: cnp.sum(cnp.sin(x) ** 2))(x)
    np.testing.assert_allclose(g, np.sin(2 * x), rtol=1e-12)


def test_nested_grad_without_perturbation_confusion():
    # d/dx [x * d/dy (x * y)] = d/dx x**2 = 2x
    assert cr.grad(lambda x: x * cr.grad(lambda y: x * y)(2.0))(3.0) == pytest.approx(6.0)


def test_second_derivative_of_exp_x_squared():
    x = 0.7
    d2 = cr.grad(cr.grad(lambda x: cnp.exp(x * x)))(x)
    assert d2 == pytest.approx((2 + 4 * x * x) * np.exp(x * x), rel=1e-12)


def test_complex_convention_matches_jax():
    assert cr.grad(lambda z: cnp.abs(z) ** 2)(1 + 2j) == pytest.approx(2 - 4j)


def test_tensor_backward_and_create_graph():
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    (w ** 3).sum().backward(create_graph=True)
    g = w.grad
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, 4.0]))
    w.grad = None
    g.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 6 * np.array([1.0, 2.0]))


def test_freed_graph_error_names_both_fixes():
    a = cr.tensor(np.ones(3), requires_grad=True)
    loss = (a * a).sum()
    loss.backward()
    with pytest.raises(cr.GradientError, match='retain_graph=True.*recompute'):
        loss.backward()


def test_matmul_shape_error_names_shapes():
    a = cr.tensor(np.ones((3, 4)), requires_grad=True)
    with pytest.raises(cr.ShapeError, match=r'matmul: shapes \(3, 4\) and \(5, 6\) do not align'):
        a @ np.ones((5, 6))


def test_grad_errors():
    with pytest.raises(cr.GradientError, match='jacrev'):
        cr.grad(lambda x: x * np.ones(3))(2.0)
    with pytest.raises(cr.DTypeError):
        cr.grad(lambda x: x)(2)
    assert cr.grad(lambda x: 3.0)(2.0) == 0.0
