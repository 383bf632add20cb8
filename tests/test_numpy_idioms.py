"""NumPy idioms that scientific code writes every day (issue 12, part 2): traced values inside
list arguments, `r_`/`c_`, `select`, `iscomplex`/`isreal`, NumPy scalar types as casts,
`logsumexp(b=)`, and NumPy's floating-point error state.

Every value is checked against NumPy or SciPy on the same inputs, every gradient against the
gradient of the same function given the stacked array (or against finite differences).
"""

import warnings

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.testing import check_grads
from chainrule.tree import tree_leaves

VEC = np.array([0.3, 0.6, 0.9])
MAT = np.array([[2.0, 0.5], [0.3, 1.5]])
W = np.array([0.7, -0.4])
CUBE = np.arange(1.0, 9.0).reshape(2, 2, 2) / 4
ARRAYS = {'v': VEC, 'm': MAT, 'w': W, 'c': CUBE}
# argument patterns tried in turn: the first one plain arrays are accepted in is used
PATTERNS = [('v',), ('m',), ('v', 'v'), ('m', 'm'), ('m', 'w'), ('v', 'v', 'v')]


class A:
    """An array argument in a pattern: 'v' (3,), 'm' (2, 2), 'w' (2,) or 'c' (2, 2, 2)."""

    def __init__(self, kind):
        self.kind = kind


V, M, Wv, C = A('v'), A('m'), A('w'), A('c')
# functions whose other arguments are not arrays: arrays (A) and constants
SPECIAL = {
    'array_split': (V, 2), 'split': (V, 3), 'hsplit': (V, 3), 'vsplit': (M, 2), 'dsplit': (C, 2),
    'broadcast_to': (V, (2, 3)), 'expand_dims': (V, 0), 'full': ((2, 3), V),
    'moveaxis': (M, 0, 1), 'pad': (V, 1), 'partition': (V, 1), 'repeat': (V, 2),
    'reshape': (V, (3, 1)), 'roll': (V, 1), 'rollaxis': (M, 1), 'swapaxes': (M, 0, 1),
    'take': (V, [0, 2]), 'take_along_axis': (V, np.array([2, 0]), 0), 'tile': (V, 2),
    'einsum': ('ij,j->i', M, Wv), 'index_add': (V, [0, 2], Wv), 'index_update': (V, 1, 2.0),
    'linalg.matrix_power': (M, 3), 'linalg.tensorinv': (M, 1), 'linalg.tensorsolve': (M, Wv),
    'linalg.cholesky': (M,),
}
# integer-only or value-shaped functions: checked on lists of `Tensor`s below instead
INTEGER = {'bincount', 'bitwise_and', 'bitwise_invert', 'bitwise_not', 'bitwise_or',
           'bitwise_xor', 'invert'}
OWN_TESTS = {'at': 'JAX-style helper, not an array function',
             'select': 'takes lists of arrays: test_select_values_and_gradients',
             'linalg.multi_dot': 'a list of arrays: test_sequence_parameters_keep_their_arrays'}


def _public_functions():
    out = []
    for prefix, mod in (('', cnp), ('linalg.', cnp.linalg), ('fft.', cnp.fft)):
        for name in sorted(dir(mod)):
            f = getattr(mod, name)
            if getattr(f, '_lists_as_arrays', False):
                out.append((prefix + name, f))
    return out


def _plain(p):
    return [ARRAYS[a.kind] if isinstance(a, A) else a for a in p]


def _pattern(name, f):
    if name in SPECIAL:
        return SPECIAL[name]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for p in PATTERNS:
            p = tuple(A(k) for k in p)
            try:
                f(*_plain(p))
                return p
            except Exception:
                pass
    return None


def _as_list(x, kind, i):
    """`x` (traced) written as a Python list, as scientific code builds it: of traced scalars,
    of traced rows, or mixing in a constant."""
    if kind in 'vw':
        return [x[0], 0.6, x[2]] if i % 2 and kind == 'v' else [x[j] for j in range(len(x))]
    if kind == 'c' or i % 2:
        return [x[0], x[1]]
    return [[x[0, 0], x[0, 1]], [x[1, 0], x[1, 1]]]


def _as_array(x, kind, i):
    return cnp.stack(_as_list(x, kind, i)) if kind == 'v' and i % 2 else x


def _loss(f, p, build, xs):
    xs_, args = list(xs), []
    for i, a in enumerate(p):
        args.append(build(xs_.pop(0), a.kind, i) if isinstance(a, A) else a)
    out = f(*args)
    leaves = [leaf for leaf in tree_leaves(out)
              if not isinstance(leaf, np.dtype) and cnp.result_type(leaf).kind in 'fc']
    total = sum(cnp.sum(cnp.real(leaf * cnp.conj(leaf))) for leaf in leaves) + 0.0 * xs[0].sum()
    aux = [np.asarray(cr.stop_gradient(leaf)) for leaf in tree_leaves(out)]
    return total, aux


FUNCTIONS = [(n, f) for n, f in _public_functions() if n not in OWN_TESTS and n not in INTEGER]


def test_the_surface_is_covered():
    # every public function takes some argument pattern, so the test below exercises it
    assert len(FUNCTIONS) > 240
    assert [n for n, f in FUNCTIONS if _pattern(n, f) is None] == []


@pytest.mark.parametrize('name,f', FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_traced_values_in_lists_are_stacked(name, f):
    p = _pattern(name, f)
    xs = tuple(ARRAYS[a.kind].copy() for a in p if isinstance(a, A))
    nums = tuple(range(len(xs)))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        (v_list, aux_list), g_list = cr.value_and_grad(
            lambda *xs: _loss(f, p, _as_list, xs), argnums=nums, has_aux=True)(*xs)
        (v_arr, aux_arr), g_arr = cr.value_and_grad(
            lambda *xs: _loss(f, p, _as_array, xs), argnums=nums, has_aux=True)(*xs)
    np.testing.assert_allclose(v_list, v_arr, rtol=1e-12, equal_nan=True)
    for a, b in zip(g_list, g_arr):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert len(aux_list) == len(aux_arr)
    for a, b in zip(aux_list, aux_arr):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('name', sorted(INTEGER))
def test_integer_functions_take_lists_of_tensors(name):
    f = getattr(cnp, name)
    ints = [cr.tensor(np.int64(3)), cr.tensor(np.int64(5)), 6]
    args = (ints,) if name in ('bincount', 'invert', 'bitwise_not', 'bitwise_invert') else \
        (ints, [1, 4, 2])
    want = getattr(np, name)(np.array([3, 5, 6]),
                             *([np.array([1, 4, 2])] if len(args) > 1 else []))
    np.testing.assert_array_equal(np.asarray(cr.stop_gradient(f(*args))), want)


@pytest.mark.parametrize('f,expected', [
    (lambda x: cnp.mean([x, x + 2]), 1.0),
    (lambda x: cnp.sum([x, x * x]), 1 + 2 * 1.5),
    (lambda x: cnp.max([x, 2 * x]), 2.0),
    (lambda x: cnp.prod([x, x, 3.0]), 6 * 1.5),
    (lambda x: cnp.cumsum([x, x])[-1], 2.0),
    (lambda x: cnp.dot([x, 1.0], [x, 2.0]), 2 * 1.5),
    (lambda x: cnp.where([True, False], [x, x], [0.0, x]).sum(), 2.0),
    (lambda x: cnp.exp([x, 0.0])[0], np.exp(1.5)),
    (lambda x: cnp.tanh([x])[0], 1 - np.tanh(1.5) ** 2),
    (lambda x: cnp.add([x, x], 1.0).sum(), 2.0),
    (lambda x: cnp.append([x], [x, 1.0]).sum(), 2.0),
    (lambda x: cnp.linalg.norm([x, 2.0]), 1.5 / np.hypot(1.5, 2.0)),
])
def test_issue_examples(f, expected):
    # the calls of issue 12 that raised ConcretizationError, against the analytic derivative
    np.testing.assert_allclose(cr.grad(f)(1.5), expected, rtol=1e-12)


def test_plain_lists_beside_traced_values():
    # NumPy converts every list; a primitive's function does too, next to a traced value
    t = cr.tensor([1.0, 2.0], requires_grad=True)
    cnp.maximum(t, [1.5, 1.5]).sum().backward()
    np.testing.assert_allclose(t.grad, [0.0, 1.0])
    np.testing.assert_allclose(cr.grad(lambda x: cnp.add(x, [1.0, 2.0]).sum())(np.ones(2)), 1.0)
    np.testing.assert_array_equal(cr.vmap(lambda x: cnp.bitwise_and(x, [1, 4]))(
        np.full((3, 2), 5)), np.full((3, 2), [1, 4]))


def test_lists_of_tensors_reach_backward():
    t = cr.tensor(2.0, requires_grad=True)
    cnp.mean([t, t * t]).backward()
    np.testing.assert_allclose(t.grad, (1 + 2 * 2.0) / 2)


def test_lists_under_vmap_and_jit():
    f = lambda x: cnp.sum([x, 2 * x, 3.0])             # noqa: E731
    np.testing.assert_allclose(cr.vmap(f)(VEC), 3 * VEC + 3)
    np.testing.assert_allclose(cr.jit(f)(VEC[0]), 3 * VEC[0] + 3)
    np.testing.assert_allclose(cr.jit(cr.grad(f))(0.7), 3.0)


def test_sequence_parameters_keep_their_arrays():
    # concatenate takes a sequence of arrays of different shapes: it is not stacked
    x = np.array([1.0, 2.0])
    g = cr.grad(lambda x: cnp.concatenate([x, x[:1]]).sum())(x)
    np.testing.assert_allclose(g, [2.0, 1.0])
    g = cr.grad(lambda a: cnp.linalg.multi_dot([a, a[:, :1]]).sum())(MAT)
    np.testing.assert_allclose(g, cr.grad(lambda a: (a @ a[:, :1]).sum())(MAT))


# --- r_ and c_ ------------------------------------------------------------------------------

X = np.array([1.0, 2.0])


@pytest.mark.parametrize('build', [
    lambda m, x: m.r_[x, 0:3, 5.0],
    lambda m, x: m.r_[x, x[0], -1:1:5j],
    lambda m, x: m.r_['0,2', x, x],
    lambda m, x: m.r_['0,2,0', x, x],
    lambda m, x: m.r_['-1', x[:, None] * np.ones((2, 2)), np.ones((2, 1))],
    lambda m, x: m.c_[x, 2 * x, np.ones(2)],
    lambda m, x: m.c_[x[None, :], 3.0, [[7.0]]],
])
def test_r_c_values_and_gradients(build):
    np.testing.assert_allclose(build(cnp, X), build(np, X))
    traced = build(cnp, cr.tensor(X))
    np.testing.assert_allclose(traced.data if hasattr(traced, 'data') else traced, build(np, X))
    check_grads(lambda x: build(cnp, x), (X,), order=2, modes=('fwd', 'rev'))


# --- select, iscomplex, isreal ----------------------------------------------------------------

AM = np.array([[1.05, 2.0, 3.0], [0.5, -1.0, 2.0]])


def test_select_values_and_gradients():
    f = lambda m, a: m.select([a > 1, a < 0], [a ** 2, a * 2], 7.0)      # noqa: E731
    np.testing.assert_allclose(f(cnp, AM), f(np, AM))
    np.testing.assert_allclose(cr.vmap(lambda a: f(cnp, a))(AM), f(np, AM))
    check_grads(lambda a: f(cnp, a), (AM,), order=2, modes=('fwd', 'rev'))
    # the first condition that holds wins; a traced default broadcasts
    g = cr.grad(lambda d: cnp.select([AM > 0, AM > 1], [AM, -AM], d).sum())(0.5)
    assert g == (AM <= 0).sum()
    with pytest.raises(ValueError, match='same length'):
        cnp.select([AM > 1], [AM, AM])


def test_iscomplex_isreal():
    z = np.array([1 + 0j, 1j, 2 - 3j])
    for x in (z, AM, 2.0, 1j):
        np.testing.assert_array_equal(cnp.iscomplex(x), np.iscomplex(x))
        np.testing.assert_array_equal(cnp.isreal(x), np.isreal(x))
        np.testing.assert_array_equal(cr.vmap(cnp.iscomplex)(np.atleast_1d(x)),
                                      np.iscomplex(np.atleast_1d(x)))
    assert cnp.iscomplexobj([1j, 2]) and not cnp.iscomplexobj([1.0]) and cnp.isrealobj(AM)
    assert cr.grad(lambda x: cnp.iscomplexobj(x) + 0.0 * x)(1.0) == 0.0


# --- NumPy scalar types cast traced values ----------------------------------------------------

def test_scalar_types_cast_traced_values():
    assert cr.grad(lambda x: cnp.float32(x) * 3)(2.0) == 3.0
    assert cr.grad(lambda x: cnp.float64(cnp.float32(x) ** 2))(1.5) == 3.0
    np.testing.assert_allclose(cr.grad(lambda z: cnp.real(cnp.complex128(z) * 1j + z))(2.0), 1.0)
    assert cr.grad(lambda x: cnp.float64(cnp.int32(x)) + x)(2.7) == 1.0     # the cast cuts
    out = cr.jit(lambda x: cnp.float32(x))(np.array([1.0, 2.0]))
    assert out.dtype == np.float32
    t = cr.tensor([1.0, 2.0], requires_grad=True)
    y = cnp.float32(t)
    assert isinstance(y, cr.Tensor) and y.dtype == np.float32
    (y * y).sum().backward()
    np.testing.assert_allclose(t.grad, [2.0, 4.0])


def test_numpy_scalar_type_on_a_traced_value_says_what_to_use():
    # NumPy's own np.float32(x) cannot return a traced value: the error names the cast to use
    from chainrule.core import ConcretizationError
    with pytest.raises(ConcretizationError, match=r'cnp\.float32\(x\) or x\.astype'):
        cr.grad(lambda x: np.float32(x) * 2)(1.0)


def test_scalar_types_still_are_numpy_types():
    assert type(cnp.float32(1.5)) is np.float32 and cnp.float64(2) == 2.0
    assert np.dtype(cnp.float32) == np.float32 and cnp.zeros(2, cnp.int32).dtype == np.int32
    assert isinstance(np.float64(1.0), cnp.float64) and issubclass(np.float32, cnp.float32)
    assert np.issubdtype(cnp.float32, np.floating) and np.finfo(cnp.float32).bits == 32
    np.testing.assert_array_equal(cnp.float32([1, 2]), np.float32([1, 2]))


# --- logsumexp(b=, return_sign=) -------------------------------------------------------------

def test_logsumexp_b_against_scipy():
    special = pytest.importorskip('scipy.special', reason='SciPy is the reference')
    b = np.array([[1.0, -2.0, 0.5], [1.0, 1.0, 0.0]])
    for axis in (None, 0, 1):
        for keepdims in (False, True):
            got = cnp.logsumexp(AM, axis=axis, keepdims=keepdims, b=b, return_sign=True)
            want = special.logsumexp(AM, axis=axis, keepdims=keepdims, b=b, return_sign=True)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-12)
    bp = np.abs(b) + 0.1
    np.testing.assert_allclose(cnp.logsumexp(AM, axis=1, b=bp),
                               special.logsumexp(AM, axis=1, b=bp))
    # b == 0 drops the term, even at +inf (SciPy's rule)
    a = np.array([np.inf, 1.0])
    assert cnp.logsumexp(a, b=[0.0, 2.0]) == special.logsumexp(a, b=[0.0, 2.0])
    check_grads(lambda a, b: cnp.logsumexp(a, axis=1, b=b), (AM, bp), order=2,
                modes=('fwd', 'rev'))
    check_grads(lambda a: cnp.logsumexp(a, axis=0, b=b, return_sign=True)[0], (AM,), order=2,
                modes=('fwd', 'rev'))


# --- seterr / geterr / errstate --------------------------------------------------------------

def test_error_state():
    old = cnp.geterr()
    assert old == np.geterr()
    with cnp.errstate(divide='raise'):
        assert cnp.geterr()['divide'] == 'raise'
        with pytest.raises(FloatingPointError):
            cnp.log(cnp.asarray(0.0))
        with pytest.raises(FloatingPointError):
            cr.grad(lambda x: cnp.sum(cnp.log(x)))(np.array([0.0, 1.0]))
    with cnp.errstate(all='ignore'):
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            assert cr.grad(lambda x: cnp.log(x))(0.0) == np.inf
    prev = cnp.seterr(invalid='raise')
    try:
        with pytest.raises(FloatingPointError):
            cnp.sqrt(cnp.asarray(-1.0))
    finally:
        cnp.seterr(**prev)
    assert cnp.geterr() == old
