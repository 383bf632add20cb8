"""float32 stays float32 on every path (issue 10, class 6): an op with a Python-number constant
(`2.0 ** x`, `x * 2.5`, `where(x > 1, x * x, 2.0)`, ...) keeps its derivative in the input's
dtype under every transform and composition, as NumPy 2 keeps `float32 array * 2.0` float32.

Python numbers are weak (NEP 50), NumPy scalars and 0-d arrays are not. Two rules made a strong
float64 out of a Python-number argument: `2.0 ** x`'s took `log(2.0)` as a NumPy float64, and
`minimum(2.0, x)`'s took the dtype of its mask from the 2.0; the derivative turned float64 on
every path but plain `grad` (whose result is cast back to the input's dtype). Each case is
checked for its dtype and against the derivative written out by hand (first and second
order)."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.tree import tree_leaves

LN2, LN3 = np.log(2.0), np.log(3.0)

# name: (op on a float32 array with a Python-number constant, d op/dv, d2 op/dv2), in NumPy
OPS = {
    'x ** 3.0': (lambda v: v ** 3.0, lambda v: 3 * v ** 2, lambda v: 6 * v),
    '2.0 ** x': (lambda v: 2.0 ** v, lambda v: 2.0 ** v * LN2, lambda v: 2.0 ** v * LN2 ** 2),
    '3 ** x': (lambda v: 3 ** v, lambda v: 3.0 ** v * LN3, lambda v: 3.0 ** v * LN3 ** 2),
    'x * 2.5': (lambda v: v * 2.5, lambda v: 2.5 + 0 * v, lambda v: 0 * v),
    '2.5 * x': (lambda v: 2.5 * v, lambda v: 2.5 + 0 * v, lambda v: 0 * v),
    'sin(x + 2.5)': (lambda v: cnp.sin(v + 2.5), lambda v: np.cos(v + 2.5),
                     lambda v: -np.sin(v + 2.5)),
    'sin(2.5 - x)': (lambda v: cnp.sin(2.5 - v), lambda v: -np.cos(2.5 - v),
                     lambda v: -np.sin(2.5 - v)),
    '2.5 / x': (lambda v: 2.5 / v, lambda v: -2.5 / v ** 2, lambda v: 5.0 / v ** 3),
    'x / 2.5': (lambda v: v / 2.5, lambda v: 0.4 + 0 * v, lambda v: 0 * v),
    'where(x > 1, x * x, 2.0)': (lambda v: cnp.where(v > 1.0, v * v, 2.0),
                                 lambda v: np.where(v > 1, 2 * v, 0.0),
                                 lambda v: np.where(v > 1, 2.0, 0.0)),
    'maximum(x, 1.0)': (lambda v: cnp.maximum(v, 1.0), lambda v: (v > 1) * 1.0,
                        lambda v: 0 * v),
    'minimum(2.0, x)': (lambda v: cnp.minimum(2.0, v), lambda v: (v < 2) * 1.0,
                        lambda v: 0 * v),
    'maximum(1.0, x)': (lambda v: cnp.maximum(1.0, v), lambda v: (v > 1) * 1.0,
                        lambda v: 0 * v),
    'arctan2(1.0, x)': (lambda v: cnp.arctan2(1.0, v), lambda v: -1.0 / (1 + v ** 2),
                        lambda v: 2 * v / (1 + v ** 2) ** 2),
    '5.0 % x': (lambda v: 5.0 % v, lambda v: -np.floor(5.0 / v), lambda v: 0 * v),
}

X = np.array([0.5, 1.5, 2.5], np.float32)      # no ties with the constants
T = np.array([1.0, -0.5, 2.0], np.float32)


def _total(op):
    return lambda v: cnp.sum(op(v))


# name: (op, x, t) -> (results, expected values from d1 and d2 at x)
PATHS = {
    'grad': lambda op, x, t: (cr.grad(_total(op))(x), 'd1'),
    'jit(grad)': lambda op, x, t: (cr.jit(cr.grad(_total(op)))(x), 'd1'),
    'grad(jit)': lambda op, x, t: (cr.grad(cr.jit(_total(op)))(x), 'd1'),
    'value_and_grad': lambda op, x, t: (cr.value_and_grad(_total(op))(x)[1], 'd1'),
    'jacrev': lambda op, x, t: (cr.jacrev(op)(x), 'diag d1'),
    'jacfwd': lambda op, x, t: (cr.jacfwd(op)(x), 'diag d1'),
    'jit(jacrev)': lambda op, x, t: (cr.jit(cr.jacrev(op))(x), 'diag d1'),
    'jit(jacfwd)': lambda op, x, t: (cr.jit(cr.jacfwd(op))(x), 'diag d1'),
    'vmap(grad)': lambda op, x, t: (cr.vmap(cr.grad(op))(x), 'd1'),
    'jit(vmap(grad))': lambda op, x, t: (cr.jit(cr.vmap(cr.grad(op)))(x), 'd1'),
    'vmap(jit(grad))': lambda op, x, t: (cr.vmap(cr.jit(cr.grad(op)))(x), 'd1'),
    'jvp': lambda op, x, t: (cr.jvp(op, (x,), (t,))[1], 'd1 t'),
    'jvp(jit)': lambda op, x, t: (cr.jvp(cr.jit(op), (x,), (t,))[1], 'd1 t'),
    'vjp': lambda op, x, t: (cr.vjp(op, x)[1](t)[0], 'd1 t'),
    'jvp(grad)': lambda op, x, t: (cr.jvp(cr.grad(_total(op)), (x,), (t,))[1], 'd2 t'),
    'hessian': lambda op, x, t: (cr.hessian(_total(op))(x), 'diag d2'),
    'jit(hessian)': lambda op, x, t: (cr.jit(cr.hessian(_total(op)))(x), 'diag d2'),
    'grad(grad)': lambda op, x, t: (cr.vmap(cr.grad(cr.grad(op)))(x), 'd2'),
    'Tensor.backward': lambda op, x, t: (_tensor_grad(op, x), 'd1'),
}


def _tensor_grad(op, x):
    tx = cr.tensor(x, requires_grad=True)
    op(tx).sum().backward()
    return tx.grad.numpy()


def _expected(how, d1, d2, x, t):
    x64, t64 = x.astype(np.float64), t.astype(np.float64)
    d = {'d1': d1(x64), 'd2': d2(x64)}
    if how.startswith('diag '):
        return np.diag(d[how[5:]])
    if how.endswith(' t'):
        return d[how[:2]] * t64
    return d[how]


@pytest.mark.parametrize('path', list(PATHS))
@pytest.mark.parametrize('op', list(OPS))
def test_float32_stays_float32(op, path):
    fn, d1, d2 = OPS[op]
    got, how = PATHS[path](fn, X, T)
    for leaf in tree_leaves(got):
        assert np.result_type(leaf) == np.float32, \
            f'{path} of {op}: a float32 input gave a {np.result_type(leaf)} derivative'
    np.testing.assert_allclose(np.asarray(got, np.float64), _expected(how, d1, d2, X, T),
                               rtol=2e-6, atol=1e-6, err_msg=f'{path} of {op}')


@pytest.mark.parametrize('path', ['jit', 'vmap', 'jvp primal'])
@pytest.mark.parametrize('op', list(OPS))
def test_float32_values_stay_float32(op, path):
    fn = OPS[op][0]
    got = {'jit': lambda: cr.jit(fn)(X), 'vmap': lambda: cr.vmap(fn)(X),
           'jvp primal': lambda: cr.jvp(fn, (X,), (T,))[0]}[path]()
    assert np.result_type(got) == np.float32, f'{path} of {op}: {np.result_type(got)}'
