"""PyTorch's everyday API on chainrule, against PyTorch 2.13 on the same inputs.

Driven by `tests/torch_api_table.py`: every `Tensor` method of PyTorch's face and every top-level
function `cr.NAME` that is one of them is called on the table's inputs, in float64 and float32,
and its values (and, where differentiable, the gradients `backward()` gives) compared with
PyTorch's; the in-place `NAME_` forms and the top-level spellings are compared too. A name added
to `chainrule/_torch_methods.py` or `chainrule/_torch_functions.py` without a row in the table
fails `test_every_name_has_a_case`. A sample runs under `cr.grad`, `cr.vmap` and `cr.jit`
(the functions take traced values as well as Tensors). Skipped, with the reason, without
PyTorch.
"""

import contextvars
import threading

import numpy as np
import pytest

import chainrule as cr
from chainrule import _torch_face, _torch_functions, _torch_methods
from chainrule.core import ChainruleError, ShapeError
from torch_api_table import NOT_COMPARED, TABLE, N

torch = pytest.importorskip('torch', reason='PyTorch 2.13 is the reference for the torch API')
torch.set_num_threads(1)


# --- making inputs and reading results ------------------------------------------------------------

def _arrays(case, dtype, seed):
    rng = np.random.default_rng(seed)

    def make(v):
        if isinstance(v, N):
            return v.make(rng, dtype)
        if isinstance(v, (tuple, list)) and any(isinstance(x, N) for x in v):
            return type(v)(make(x) for x in v)
        return v
    return [make(a) for a in case.args], {k: make(v) for k, v in case.kwargs.items()}


def _lib_value(lib, v, grad):
    """A NumPy array as `lib`'s tensor (requiring grad if floating and `grad`); others as they
    are, tuples and lists element by element."""
    if isinstance(v, np.ndarray):
        rg = grad and v.dtype.kind == 'f'
        if lib is torch:
            return torch.tensor(v, requires_grad=rg)
        return cr.tensor(v, requires_grad=rg)
    if isinstance(v, (tuple, list)) and any(isinstance(x, np.ndarray) for x in v):
        return type(v)(_lib_value(lib, x, False) for x in v)
    return v


def _flat(r):
    if isinstance(r, torch.Tensor):
        return [r.detach().numpy(force=True)]
    if isinstance(r, cr.Tensor):
        return [np.asarray(r.data)]
    if isinstance(r, (tuple, list)):
        return [a for x in r for a in _flat(x)]
    return [np.asarray(r)]


def _select(r, outs):
    if outs is None:
        return r
    return [r[i] for i in outs]


def _tol(case, dtype):
    if case.tol is not None:
        return case.tol[0] if dtype == np.float64 else case.tol[1]
    return 1e-7 if dtype == np.float64 else 3e-4


def _close(ours, ref, rtol, what):
    a, b = _flat(ours), _flat(ref)
    assert len(a) == len(b), f'{what}: {len(a)} results, PyTorch gives {len(b)}'
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, f'{what}[{i}]: shape {x.shape}, PyTorch {y.shape}'
        if y.dtype.kind == 'b' or x.dtype.kind == 'b':
            np.testing.assert_array_equal(x, y, err_msg=f'{what}[{i}]')
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol, equal_nan=True,
                                       err_msg=f'{what}[{i}]')


def _cases(names):
    out = []
    for name in names:
        for i, case in enumerate(TABLE.get(name, ())):
            out.append(pytest.param(name, case, id=f'{name}-{i}'))
    return out


def _method_names():
    names = set(_torch_methods.names()) | set(_torch_face.METHODS) | set(_torch_face.UNARY)
    return sorted(n for n in names if not n.endswith('_') and n in TABLE)


def _call(lib, name, case, args, kwargs, form):
    if form == 'function':
        if case.call is not None:
            return case.call(lib, *args, **kwargs)
        return getattr(lib, name)(*args, **kwargs)
    return getattr(args[0], name)(*args[1:], **kwargs)


def _run(lib, name, case, dtype, form, grad, seed=0):
    args, kwargs = _arrays(case, dtype, seed)
    args = [_lib_value(lib, a, grad) for a in args]
    kwargs = {k: _lib_value(lib, v, grad) for k, v in kwargs.items()}
    out = _call(lib, name, case, args, kwargs, form)
    return out, args, kwargs


def _loss(lib, outs, seed):
    """sum(out * w) over the floating outputs, random w (the same for both libraries)."""
    rng = np.random.default_rng(seed + 100)
    total = None
    for o in outs:
        if isinstance(o, (tuple, list)):
            o = _loss(lib, o, seed + 1)
            if o is None:
                continue
        if not isinstance(o, (torch.Tensor, cr.Tensor)) or o.dtype not in (
                torch.float32, torch.float64, np.float32, np.float64):
            continue
        w = rng.standard_normal(tuple(o.shape))
        w = torch.tensor(w, dtype=o.dtype) if lib is torch else np.asarray(w, o.dtype)
        term = (o * w).sum()
        total = term if total is None else total + term
    return total


def _grads(args):
    gs = []
    for a in list(args):
        if isinstance(a, (torch.Tensor, cr.Tensor)) and a.requires_grad:
            g = a.grad
            gs.append(np.zeros(tuple(a.shape)) if g is None else _flat(g)[0])
    return gs


# --- values and gradients, method spelling --------------------------------------------------------

@pytest.mark.parametrize('dtype', [np.float64, np.float32], ids=['f64', 'f32'])
@pytest.mark.parametrize('name,case', _cases(_method_names()))
def test_method_matches_torch(name, case, dtype):
    if not case.method:
        pytest.skip(f'{name}: PyTorch has no method spelling')
    ref, targs, _ = _run(torch, name, case, dtype, 'method', case.grad)
    ours, oargs, _ = _run(cr, name, case, dtype, 'method', case.grad)
    rtol = _tol(case, dtype)
    _close(_select(ours, case.outs), _select(ref, case.outs), rtol, f'{name} values')
    for x, y in zip(_flat(_select(ours, case.outs)), _flat(_select(ref, case.outs))):
        if y.dtype.kind in 'biu':
            assert x.dtype.kind == y.dtype.kind, f'{name}: dtype {x.dtype}, PyTorch {y.dtype}'
    if not case.grad:
        return
    outs = ours if isinstance(ours, (tuple, list)) else [ours]
    routs = ref if isinstance(ref, (tuple, list)) else [ref]
    if case.outs is not None:
        outs, routs = _select(outs, case.outs), _select(routs, case.outs)
    lt, lo = _loss(torch, routs, 1), _loss(cr, outs, 1)
    if lt is None or not lt.requires_grad:
        pytest.skip(f'{name}: no differentiable output in PyTorch')
    lt.backward()
    if lo is not None and lo.requires_grad:
        lo.backward()
    # (a result whose derivative is zero wherever it exists -- floor, sign -- records nothing:
    # no .grad, compared as zeros)
    for i, (g, h) in enumerate(zip(_grads(oargs), _grads(targs))):
        np.testing.assert_allclose(g, h, rtol=rtol * 10, atol=rtol * 10,
                                   err_msg=f'{name}: gradient of argument {i}')


# --- the top-level spelling -----------------------------------------------------------------------

@pytest.mark.parametrize('name,case', _cases(sorted(n for n in
                                                    _torch_functions.METHOD_FUNCTIONS
                                                    if not n.endswith('_'))))
def test_function_matches_torch(name, case):
    ref, _, _ = _run(torch, name, case, np.float64, 'function', False)
    ours, _, _ = _run(cr, name, case, np.float64, 'function', False)
    _close(_select(ours, case.outs), _select(ref, case.outs), _tol(case, np.float64),
           f'cr.{name}')


def _inplace_names():
    ours = (set(_torch_face.INPLACE) | set(_torch_methods.INPLACE))
    return sorted(n for n in ours if n[:-1] in TABLE and hasattr(torch.Tensor, n))


@pytest.mark.parametrize('name', _inplace_names())
def test_inplace_matches_torch(name):
    base = name[:-1]
    for case in TABLE[base]:
        args, kwargs = _arrays(case, np.float64, 0)
        if not isinstance(args[0], np.ndarray):
            continue
        t = [_lib_value(torch, a, False) for a in args]
        try:
            getattr(t[0], name)(*t[1:], **kwargs)
        except RuntimeError:        # PyTorch refuses this case in place (a dtype or shape)
            continue
        o = [_lib_value(cr, a, False) for a in args]
        r = getattr(o[0], name)(*o[1:], **kwargs)
        assert r is o[0], f'{name} must return its input'
        _close(o[0], t[0], _tol(case, np.float64), name)
        return
    pytest.skip(f'{name}: no case of {base} that PyTorch runs in place')


@pytest.mark.parametrize('name', sorted(n for n in _torch_functions.METHOD_FUNCTIONS
                                        if n.endswith('_') and n[:-1] in TABLE))
def test_inplace_functions(name):
    """`cr.exp_(t)` and the other top-level in-place spellings write into `t`."""
    case = TABLE[name[:-1]][0]
    args, kwargs = _arrays(case, np.float64, 0)
    t = [_lib_value(torch, a, False) for a in args]
    getattr(torch, name)(*t, **kwargs)
    o = [_lib_value(cr, a, False) for a in args]
    assert getattr(cr, name)(*o, **kwargs) is o[0]
    _close(o[0], t[0], 1e-7, f'cr.{name}')


def test_nonzero_static():
    x = np.array([[0.0, 1.0], [2.0, 0.0]])
    for size in (1, 2, 4):
        a = cr.nonzero_static(cr.tensor(x), size=size, fill_value=-7)
        b = torch.nonzero_static(torch.tensor(x), size=size, fill_value=-7)
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fill_and_zero_functions():
    t = cr.ones(3)
    assert cr.fill_(t, 2.5) is t and t.tolist() == [2.5] * 3
    assert cr.zero_(t) is t and t.tolist() == [0.0] * 3


# --- the table covers every name ------------------------------------------------------------------

def test_every_name_has_a_case():
    names = set(_torch_methods.names()) | set(_torch_functions.METHOD_FUNCTIONS)
    missing = sorted(n for n in names
                     if not (TABLE.get(n) or n in NOT_COMPARED or
                             (n.endswith('_') and (TABLE.get(n[:-1]) or n in NOT_COMPARED))))
    assert not missing, f'names without a row in tests/torch_api_table.py: {missing}'


def test_function_names_are_torch_functions_and_methods():
    """METHOD_FUNCTIONS lists only names PyTorch has at top level and as a Tensor method, and
    none of them replaces an older chainrule name."""
    for n in _torch_functions.METHOD_FUNCTIONS:
        assert callable(getattr(torch, n, None)), n
        assert hasattr(torch.Tensor, n), n
    clash = {'grad', 'jit', 'vmap', 'tensor', 'save', 'load'} & set(_torch_functions.FUNCTIONS)
    assert not clash


# --- under the transforms -------------------------------------------------------------------------

def _unary_cases():
    out = []
    for name in sorted(_torch_functions.METHOD_FUNCTIONS):
        cases = TABLE.get(name) or ()
        for case in cases[:1]:
            # the first argument traced; other array arguments (floating ones, closed over as
            # constants) allowed
            if not case.grad or case.call or case.outs or not case.args or \
                    type(case.args[0]).__name__ not in ('N', 'G') or \
                    any(isinstance(a, N) and type(a).__name__ not in ('N', 'G')
                        for a in case.args[1:]) or \
                    any(isinstance(a, (tuple, list)) and any(isinstance(b, N) for b in a)
                        for a in case.args) or \
                    any(isinstance(v, N) for v in case.kwargs.values()):
                continue
            out.append(pytest.param(name, case, id=name))
    return out


UNARY_CASES = _unary_cases()


@pytest.mark.parametrize('name,case', UNARY_CASES)
def test_function_under_grad(name, case):
    """`cr.grad` of `sum(cr.NAME(x, ...) * w)` (x traced) equals PyTorch's gradient."""
    (x, *rest), kwargs = _arrays(case, np.float64, 3)
    rest_t = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in rest]
    outs_t = getattr(torch, name)(torch.tensor(x, requires_grad=True), *rest_t, **kwargs)
    w = [np.random.default_rng(5).standard_normal(tuple(o.shape))
         for o in (outs_t if isinstance(outs_t, tuple) else (outs_t,))
         if isinstance(o, torch.Tensor) and o.dtype == torch.float64]
    if not w:
        pytest.skip(f'{name}: no floating output')
    xt = torch.tensor(x, requires_grad=True)
    r = getattr(torch, name)(xt, *rest_t, **kwargs)
    r = [o for o in (r if isinstance(r, tuple) else (r,)) if o.dtype == torch.float64]
    sum(((o * torch.tensor(wi)).sum() for o, wi in zip(r, w)), torch.zeros(())).backward()

    def f(x):
        r = getattr(cr, name)(x, *rest, **kwargs)
        r = [o for o in (r if isinstance(r, tuple) else (r,)) if o.dtype == np.float64]
        return sum(((o * wi).sum() for o, wi in zip(r, w)), 0.0)
    g = cr.grad(f)(x)
    np.testing.assert_allclose(g, xt.grad.numpy(force=True), rtol=1e-7, atol=1e-9)


_VMAP_JIT = ['exp', 'sigmoid', 'softmax', 'sum', 'std', 'maximum', 'lerp', 'tril', 'topk',
             'logaddexp', 'clamp_min', 'nan_to_num', 'diff', 'cummax', 'logcumsumexp', 'norm',
             'kthvalue', 'median', 'atan2', 'xlogy', 'erfinv', 'movedim', 'diag_embed',
             'renorm', 'sort', 'hypot', 'cumsum', 'flip', 'sgn', 'frac']


def _sample(names):
    return [pytest.param(p.values[0], p.values[1], id=p.id) for p in UNARY_CASES
            if p.values[0] in names]


@pytest.mark.parametrize('name,case', _sample(_VMAP_JIT))
def test_function_under_vmap_and_jit(name, case):
    (x, *rest), kwargs = _arrays(case, np.float64, 4)
    x2 = np.stack([x, x[::-1].copy() * 0.5])

    def f(x):
        return getattr(cr, name)(x, *rest, **kwargs)

    eager = [_flat(f(cr.tensor(xi))) for xi in x2]
    batched = _flat(cr.vmap(f)(x2))
    for k, b in enumerate(batched):
        np.testing.assert_allclose(b, np.stack([e[k] for e in eager]), rtol=1e-10, atol=1e-12,
                                   err_msg=f'vmap({name})')
    jitted = _flat(cr.jit(f)(x))
    for k, (a, b) in enumerate(zip(jitted, eager[0])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f'jit({name})')


def test_tensor_code_under_grad_vmap_jit():
    """PyTorch-style code with top-level functions and methods mixed, under the transforms."""
    def f(x):
        h = cr.tanh(cr.addmm(cr.zeros(3), x, cr.eye(4, 3)))
        return cr.logsumexp(h.clamp_min(-0.5).mul(2).add(x[:, :3], alpha=0.5), dim=1).sum()

    x = np.random.default_rng(0).standard_normal((2, 4))

    def ref(x):
        h = torch.tanh(torch.addmm(torch.zeros(3, dtype=x.dtype), x,
                                   torch.eye(4, 3, dtype=x.dtype)))
        return torch.logsumexp(h.clamp_min(-0.5).mul(2).add(x[:, :3], alpha=0.5), dim=1).sum()
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).backward()
    np.testing.assert_allclose(cr.grad(f)(x), xt.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(cr.jit(f)(x), ref(torch.tensor(x)).item(), rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(f)(np.stack([x, 2 * x])),
                               [f(cr.tensor(x)).item(), f(cr.tensor(2 * x)).item()],
                               rtol=1e-12)


# --- cr.linalg against torch.linalg ---------------------------------------------------------------

def _spd(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def _w(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape) + 3 * np.eye(shape[-1])


def _n(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


LINALG = [
    ('norm', (_n(3, 4),), {}), ('norm', (_n(4),), dict(ord=3)),
    ('norm', (_n(3, 4),), dict(ord='nuc')), ('norm', (_n(3, 4),), dict(ord=2)),
    ('norm', (_n(2, 3, 4),), dict(dim=(1, 2))), ('norm', (_n(2, 3, 4),), dict(dim=1, ord=1)),
    ('norm', (_n(3, 4),), dict(ord=float('inf'))),
    ('vector_norm', (_n(2, 3, 4),), {}), ('vector_norm', (_n(2, 3, 4),), dict(ord=1, dim=(0, 2))),
    ('vector_norm', (_n(3, 4),), dict(ord=float('-inf'), dim=1, keepdim=True)),
    ('matrix_norm', (_n(2, 3, 4),), {}), ('matrix_norm', (_n(2, 3, 4),), dict(ord=1)),
    ('matrix_norm', (_n(3, 4),), dict(ord=-2)),
    ('inv', (_w(3, 3),), {}), ('inv', (_w(2, 3, 3),), {}),
    ('solve', (_w(3, 3), _n(3)), {}), ('solve', (_w(2, 3, 3), _n(2, 3)), {}),
    ('solve', (_w(3, 3), _n(3, 2)), {}), ('solve', (_w(3, 3), _n(2, 3)), dict(left=False)),
    ('det', (_w(2, 3, 3),), {}), ('slogdet', (_w(3, 3),), {}),
    ('eigvalsh', (_spd(3),), {}), ('eigh', (_spd(3),), dict(outs=[0])),
    ('svdvals', (_n(4, 3),), {}), ('svd', (_n(4, 3),), dict(full_matrices=False, outs=[1])),
    ('cholesky', (_spd(3),), {}), ('cholesky', (_spd(3),), dict(upper=True)),
    ('qr', (_n(4, 3),), {}),
    ('qr', (_n(4, 3),), dict(mode='complete', nograd=True)),   # PyTorch: not differentiable
    ('pinv', (_n(4, 3),), {}), ('matrix_power', (_w(3, 3), 3), {}),
    ('matrix_power', (_w(3, 3), -1), {}), ('matrix_exp', (0.3 * _n(3, 3),), {}),
    ('cross', (_n(4, 3), _n(4, 3)), {}), ('vecdot', (_n(3, 4), _n(3, 4)), {}),
    ('multi_dot', ([_n(2, 3), _n(3, 4), _n(4, 2)],), {}),
    ('solve_triangular', (np.triu(_w(3, 3)), _n(3, 2)), dict(upper=True)),
    ('solve_triangular', (np.tril(_w(3, 3)), _n(2, 3)), dict(upper=False, left=False)),
    ('cond', (_w(3, 3),), {}), ('diagonal', (_n(2, 3, 3),), dict(offset=1)),
    ('lstsq', (_n(5, 3), _n(5, 2)), dict(outs=[0])),
]


@pytest.mark.parametrize('name,args,kwargs', LINALG,
                         ids=[f'{n}-{i}' for i, (n, _, _) in enumerate(LINALG)])
def test_linalg_matches_torch(name, args, kwargs):
    kwargs = dict(kwargs)
    outs = kwargs.pop('outs', None)
    nograd = kwargs.pop('nograd', False)

    def run(lib):
        def conv(a):
            if isinstance(a, list):
                return [conv(x) for x in a]
            if isinstance(a, np.ndarray):
                return (torch.tensor(a, requires_grad=not nograd) if lib is torch
                        else cr.tensor(a, requires_grad=not nograd))
            return a
        xs = [conv(a) for a in args]
        r = getattr(lib.linalg, name)(*xs, **kwargs)
        r = _select(r, outs) if outs is not None or isinstance(r, tuple) else r
        return r, xs
    ref, txs = run(torch)
    ours, oxs = run(cr)
    _close(ours, ref, 1e-8, f'linalg.{name}')
    if nograd:
        return
    lt, lo = _loss(torch, ref if isinstance(ref, (list, tuple)) else [ref], 2), \
        _loss(cr, ours if isinstance(ours, (list, tuple)) else [ours], 2)
    if lt is None:
        return
    lt.backward()
    lo.backward()

    def leaves(xs):
        return [y for x in xs for y in (x if isinstance(x, list) else [x])
                if isinstance(y, (torch.Tensor, cr.Tensor))]
    for i, (a, b) in enumerate(zip(leaves(oxs), leaves(txs))):
        np.testing.assert_allclose(_flat(a.grad)[0], b.grad.numpy(), rtol=1e-6, atol=1e-8,
                                   err_msg=f'linalg.{name}: gradient of argument {i}')


def test_linalg_under_grad():
    a = _spd(3)
    f = lambda a: cr.linalg.slogdet(a).logabsdet + cr.linalg.vector_norm(a, 3)  # noqa: E731
    at = torch.tensor(a, requires_grad=True)
    (torch.linalg.slogdet(at).logabsdet + torch.linalg.vector_norm(at, 3)).backward()
    np.testing.assert_allclose(cr.grad(f)(a), at.grad.numpy(), rtol=1e-10)


# --- functions that are not methods ---------------------------------------------------------------

OTHER = [
    ('einsum', lambda L, a, b, c: L.einsum('ij,jk->ik', a, b), True),
    ('einsum list', lambda L, a, b, c: L.einsum('ij,jk,kl->il', [a, b, c]), True),
    ('tensordot', lambda L, a, b, c: L.tensordot(a, b, dims=1), True),
    ('tensordot pairs', lambda L, a, b, c: L.tensordot(a, c, dims=([0], [0])), True),
    ('meshgrid', lambda L, a, b, c: L.meshgrid(a[0], b[:, 0]), True),
    ('meshgrid xy', lambda L, a, b, c: L.meshgrid(a[0], b[:, 0], indexing='xy'), True),
    ('broadcast_tensors', lambda L, a, b, c: L.broadcast_tensors(a, a[0]), True),
    ('block_diag', lambda L, a, b, c: L.block_diag(a, b[0], c[0, 0]), True),
    ('cdist', lambda L, a, b, c: L.cdist(a, b.T), True),
    ('cdist p1', lambda L, a, b, c: L.cdist(a, b.T, p=1), True),
    ('cdist p3', lambda L, a, b, c: L.cdist(a, b.T, p=3.0), True),
    ('hstack', lambda L, a, b, c: L.hstack([a, a]), True),
    ('vstack', lambda L, a, b, c: L.vstack([a, a[:1]]), True),
    ('dstack', lambda L, a, b, c: L.dstack([a, a]), True),
    ('column_stack', lambda L, a, b, c: L.column_stack([a[0], a[1]]), True),
    ('atleast_2d', lambda L, a, b, c: L.atleast_2d(a[0]), True),
    ('atleast_3d', lambda L, a, b, c: L.atleast_3d(a), True),
    ('cartesian_prod', lambda L, a, b, c: L.cartesian_prod(a[0], b[:2, 0]), True),
    ('trapezoid', lambda L, a, b, c: L.trapezoid(a), True),
    ('trapezoid x', lambda L, a, b, c: L.trapezoid(a, a[0].detach() * 0 + L.arange(
        3, dtype=a.dtype), dim=1), True),
    ('trapz dx', lambda L, a, b, c: L.trapz(a, dx=0.5, dim=0), True),
    ('cumulative_trapezoid', lambda L, a, b, c: L.cumulative_trapezoid(a, dim=1), True),
    ('std_mean', lambda L, a, b, c: L.std_mean(a, 1), True),
    ('var_mean', lambda L, a, b, c: L.var_mean(a, dim=0, correction=0), True),
    ('where', lambda L, a, b, c: L.where(a > 0, a, b.T), True),
    ('where scalar', lambda L, a, b, c: L.where(a > 0, a, 0.0), True),
    ('polar', lambda L, a, b, c: L.polar(a.abs(), a).real, True),
    ('complex', lambda L, a, b, c: L.complex(a, a * 2).imag, True),
    ('chain_matmul', lambda L, a, b, c: L.chain_matmul(a, b, a), True),
    ('tril_indices', lambda L, a, b, c: L.tril_indices(3, 4, 1), False),
    ('triu_indices', lambda L, a, b, c: L.triu_indices(4, 3, -1), False),
    ('searchsorted', lambda L, a, b, c: L.searchsorted(L.sort(a[0]).values.detach(),
                                                       b[:, 0].detach()), False),
    ('bucketize', lambda L, a, b, c: L.bucketize(b[:, 0].detach(),
                                                 L.sort(a[0]).values.detach(), right=True),
     False),
    ('polygamma', lambda L, a, b, c: L.polygamma(1, a.abs() + 0.5), True),
]


@pytest.mark.parametrize('label,fn,diff', OTHER, ids=[o[0] for o in OTHER])
def test_other_functions_match_torch(label, fn, diff):
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((2, 3)), rng.standard_normal((3, 2)),
              rng.standard_normal((2, 4))]

    def run(lib):
        xs = [(torch.tensor(a, requires_grad=diff) if lib is torch
               else cr.tensor(a, requires_grad=diff)) for a in arrays]
        return fn(lib, *xs), xs
    ref, txs = run(torch)
    ours, oxs = run(cr)
    _close(ours, ref, 1e-8, label)
    if not diff:
        return
    lt = _loss(torch, ref if isinstance(ref, (tuple, list)) else [ref], 3)
    lo = _loss(cr, ours if isinstance(ours, (tuple, list)) else [ours], 3)
    lt.backward()
    lo.backward()
    for i, (a, b) in enumerate(zip(oxs, txs)):
        ga = np.zeros(a.shape) if a.grad is None else _flat(a.grad)[0]
        gb = np.zeros(tuple(b.shape)) if b.grad is None else b.grad.numpy()
        np.testing.assert_allclose(ga, gb, rtol=1e-8, atol=1e-10,
                                   err_msg=f'{label}: gradient of argument {i}')


def test_where_one_argument_and_nonzero_tuple():
    c = np.array([[True, False], [False, True]])
    for a, b in zip(cr.where(cr.tensor(c)), torch.where(torch.tensor(c))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- factories, default dtype, devices, modes ---------------------------------------------------

def test_random_like_and_from_numpy():
    x = cr.zeros(2, 3, dtype=cr.float32)
    for f in (cr.randn_like, cr.rand_like):
        r = f(x)
        assert r.shape == (2, 3) and r.dtype == np.float32
    r = cr.randint_like(x, 5)
    assert r.shape == (2, 3) and 0 <= r.numpy().min() and r.numpy().max() < 5
    cr.manual_seed(3)
    a = cr.randn_like(x)
    cr.manual_seed(3)
    np.testing.assert_array_equal(a.numpy(), cr.randn_like(x).numpy())
    arr = np.arange(3.0)
    t = cr.from_numpy(arr)
    arr[0] = 7
    assert t[0].item() == 7.0
    with pytest.raises(TypeError, match='from_numpy'):
        cr.from_numpy([1.0])
    np.testing.assert_allclose(cr.logspace(0, 2, 3).numpy(), torch.logspace(0, 2, 3).numpy())


def test_random_methods():
    cr.manual_seed(0)
    p = cr.full((2000,), 0.3)
    b = p.bernoulli()
    assert set(np.unique(b.numpy())) <= {0.0, 1.0} and abs(b.numpy().mean() - 0.3) < 0.05
    assert cr.bernoulli(p).shape == (2000,)
    m = cr.tensor([[0.0, 1.0, 3.0], [1.0, 1.0, 0.0]]).multinomial(2)
    assert m.shape == (2, 2) and set(m.numpy()[0]) == {1, 2} and set(m.numpy()[1]) == {0, 1}
    counts = np.bincount(cr.tensor([0.2, 0.8]).multinomial(4000, replacement=True).numpy(),
                         minlength=2)
    assert abs(counts[1] / 4000 - 0.8) < 0.05


def test_default_dtype():
    # in a copy of this context: setting the default dtype (even back to float64) makes nn
    # layers follow it, so it must not leak into later tests
    contextvars.copy_context().run(_default_dtype_checks)


def _default_dtype_checks():
    assert cr.get_default_dtype() == np.float64
    try:
        cr.set_default_dtype(cr.float32)
        assert cr.get_default_dtype() == np.float32
        for t in (cr.zeros(2), cr.ones(2), cr.randn(2), cr.rand(2), cr.arange(0.0, 2.0),
                  cr.linspace(0, 1, 3), cr.eye(2), cr.full((2,), 1.5), cr.tensor([1.0, 2.0]),
                  cr.as_tensor([1.5]), cr.scalar_tensor(2.0)):
            assert t.dtype == np.float32, t
        assert cr.arange(3).dtype == np.int64 and cr.tensor([1, 2]).dtype == np.int64
        assert cr.tensor(np.ones(2)).dtype == np.float64        # an array keeps its dtype
        seen = []
        th = threading.Thread(target=lambda: seen.append(cr.get_default_dtype()))
        th.start()
        th.join()
        assert seen == [np.float64]           # a context variable: other threads unaffected
    finally:
        cr.set_default_dtype(cr.float64)
    assert cr.zeros(1).dtype == np.float64
    with pytest.raises(TypeError, match='set_default_dtype'):
        cr.set_default_dtype(cr.int64)


def test_devices():
    t = cr.ones(2)
    assert str(t.device) == 'cpu' and t.device == 'cpu' and t.device == cr.device('cpu')
    assert t.is_cuda is False and t.cpu() is t and t.get_device() == -1
    assert t.to('cpu') is t and t.to(device='cpu') is t
    with pytest.raises(ChainruleError, match='CPU'):
        t.to('cuda')
    m = cr.nn.Linear(2, 3, device='cpu')
    assert m.to('cpu') is m and m.cpu() is m and m.to(torch.device('cpu')) is m
    assert m.to('cpu', cr.float64).weight.dtype == np.float64
    with pytest.raises(ChainruleError, match=r"Linear\(\): device='cuda'"):
        cr.nn.Linear(2, 3, device='cuda')
    with pytest.raises(ChainruleError, match='cuda'):
        m.cuda()
    with pytest.raises(ChainruleError, match='device'):
        cr.device('cuda:0')
    with pytest.raises(ChainruleError, match='as_tensor'):
        cr.as_tensor([1.0], device='mps')


def test_inference_mode():
    w = cr.ones(2, requires_grad=True)
    with cr.inference_mode():
        assert cr.is_inference_mode_enabled() and not cr.is_grad_enabled()
        assert not (w * 2).requires_grad
    assert (w * 2).requires_grad and not cr.is_inference_mode_enabled()

    @cr.inference_mode()
    def f(x):
        return x * 2
    assert not f(w).requires_grad
    with cr.inference_mode(False):
        assert (w * 2).requires_grad


def test_utils_data_alias():
    from chainrule.utils.data import DataLoader, TensorDataset
    assert cr.utils.data is cr.data and DataLoader is cr.data.DataLoader
    batches = list(DataLoader(TensorDataset(cr.ones(4, 2), cr.zeros(4)), batch_size=2))
    assert len(batches) == 2 and batches[0][0].shape == (2, 2)


# --- nn idioms ------------------------------------------------------------------------------------

def test_embedding_padding_idx_matches_torch():
    ours = cr.nn.Embedding(6, 3, padding_idx=2, dtype=cr.float64)
    ref = torch.nn.Embedding(6, 3, padding_idx=2, dtype=torch.float64)
    np.testing.assert_array_equal(ours.weight.numpy()[2], 0.0)
    np.testing.assert_array_equal(ref.weight.detach().numpy()[2], 0.0)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.numpy()))
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    w = np.random.default_rng(0).standard_normal((2, 3, 3))
    (ours(cr.tensor(idx)) * w).sum().backward()
    (ref(torch.tensor(idx)) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-12)
    assert cr.nn.Embedding(4, 2, padding_idx=-1).padding_idx == 3
    with pytest.raises(ValueError, match='padding_idx'):
        cr.nn.Embedding(4, 2, padding_idx=4)


def test_nn_constructor_arguments():
    d = cr.nn.Dropout(p=0.5, inplace=False)
    d.eval()
    x = cr.ones(3)
    assert (d(x).numpy() == 1).all()
    cr.nn.Dropout(0.2, inplace=True)


def test_init_functions():
    cr.manual_seed(0)
    w = cr.nn.Parameter(cr.zeros(400, 300, dtype=cr.float32))
    cr.nn.init.xavier_normal_(w)
    assert abs(w.numpy().std() - np.sqrt(2 / 700)) < 0.01 * np.sqrt(2 / 700) * 10
    cr.nn.init.kaiming_normal_(w, mode='fan_out', nonlinearity='relu')
    assert abs(w.numpy().std() - np.sqrt(2 / 400)) < 0.05 * np.sqrt(2 / 400)
    cr.nn.init.constant_(w, 0.25)
    assert (w.numpy() == 0.25).all()
    cr.nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 0.5
    cr.nn.init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(400, 300))


# --- bad input ------------------------------------------------------------------------------------

def test_bad_input_names_op_and_argument():
    t = cr.ones(3, 4)
    with pytest.raises(cr.ArgumentError, match=r'exp\(\): out='):
        cr.exp(t, out=t)
    with pytest.raises(cr.ArgumentError, match='linalg.inv'):
        cr.linalg.inv(t[:3, :3], out=t)
    with pytest.raises(IndexError, match=r'topk\(\): k=9 .* size 4'):
        t.topk(9)
    with pytest.raises(ShapeError, match=r'addmm\(\): mat2 must be 2-D'):
        t.addmm(t, cr.ones(4))
    with pytest.raises(ShapeError, match=r'tril\(\): .* at least 2'):
        cr.ones(3).tril()
    with pytest.raises(ShapeError, match=r'linalg.inv\(\): .* square .* \(3, 4\)'):
        cr.linalg.inv(t)
    with pytest.raises(ShapeError, match='broadcast_to'):
        t.broadcast_to(2, 3)
    with pytest.raises(ShapeError, match='take_along_dim'):
        t.take_along_dim(cr.tensor([0]), 1)
    with pytest.raises(ShapeError, match=r'index_add\(\): source of shape \(2, 4\)'):
        t.index_add(0, cr.tensor([0, 1, 2]), cr.ones(2, 4))
    with pytest.raises(IndexError, match='index_fill'):
        t.index_fill(1, cr.tensor([7]), 0.0)
    with pytest.raises(TypeError, match=r'where\(\): condition must be a bool'):
        cr.where(t, t, t)
    with pytest.raises(TypeError, match=r'exp\(\): input must be a Tensor.*cr.tensor'):
        cr.exp([1.0, 2.0])
    with pytest.raises(ValueError, match='rounding_mode'):
        t.div(2, rounding_mode='round')
    with pytest.raises(ShapeError, match=r'cross\(\): dim 1 has size 4'):
        t.cross(t, dim=1)
    with pytest.raises(ShapeError, match=r'hsplit\(\): 3 sections'):
        t.hsplit(3)
    with pytest.raises(ChainruleError, match="scatter_reduce.*'amax'"):
        t.scatter_reduce(0, cr.zeros(3, 4, dtype=cr.int64), t, 'amax')
    with pytest.raises(IndexError, match='dim 5 is out of range'):
        t.diff(dim=5)


def test_value_dependent_methods_refuse_traced_inputs():
    with pytest.raises(cr.core.ConcretizationError, match=r'unique\(\)'):
        cr.grad(lambda x: cr.unique(x).sum())(np.ones(3))
    # mode is a composite on traced input (tests/test_torch_api_holes.py): the gradient reaches
    # the last occurrence of the mode, as PyTorch's
    g = cr.grad(lambda x: cr.mode(x).values.sum())(np.ones(3))
    np.testing.assert_array_equal(np.asarray(g), [0.0, 0.0, 1.0])


# --- F.interpolate's linear modes ---------------------------------------------------------------

INTERP = [
    ('linear', (2, 3, 5), dict(scale_factor=2)), ('linear', (2, 3, 5), dict(size=3)),
    ('linear', (2, 3, 5), dict(size=8, align_corners=True)),
    ('bilinear', (1, 2, 4, 5), dict(scale_factor=2)),
    ('bilinear', (1, 2, 4, 5), dict(size=(7, 3))),
    ('bilinear', (1, 2, 4, 5), dict(size=(6, 9), align_corners=True)),
    ('bilinear', (1, 2, 4, 5), dict(scale_factor=(1.5, 0.6))),
    ('bilinear', (1, 2, 4, 5), dict(scale_factor=1.7, recompute_scale_factor=True)),
    ('bicubic', (1, 2, 4, 5), dict(scale_factor=2)),
    ('bicubic', (1, 2, 5, 4), dict(size=(3, 7))),
    ('bicubic', (1, 2, 4, 5), dict(size=(8, 6), align_corners=True)),
    ('trilinear', (1, 1, 3, 4, 2), dict(scale_factor=2)),
    ('trilinear', (1, 1, 3, 4, 2), dict(size=(2, 5, 3), align_corners=True)),
]


@pytest.mark.parametrize('dtype', [np.float64, np.float32], ids=['f64', 'f32'])
@pytest.mark.parametrize('mode,shape,kw', INTERP, ids=[f'{m}-{i}' for i, (m, _, _) in
                                                       enumerate(INTERP)])
def test_interpolate_linear_modes_match_torch(mode, shape, kw, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.interpolate(xt, mode=mode, **kw)
    xo = cr.tensor(x, requires_grad=True)
    ours = cr.nn.functional.interpolate(xo, mode=mode, **kw)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(ours.numpy(), ref.detach().numpy(), rtol=rtol, atol=rtol)
    w = np.random.default_rng(1).standard_normal(tuple(ref.shape))
    (ref * torch.tensor(w, dtype=ref.dtype)).sum().backward()
    (ours * w.astype(dtype)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=rtol * 10,
                               atol=rtol * 10)


def test_interpolate_bilinear_module_and_errors():
    x = np.random.default_rng(2).standard_normal((1, 1, 3, 3))
    up = cr.nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)
    ref = torch.nn.Upsample(scale_factor=2, mode='bilinear', align_corners=False)
    np.testing.assert_allclose(up(cr.tensor(x)).numpy(), ref(torch.tensor(x)).numpy(),
                               rtol=1e-12)
    with pytest.raises(ShapeError, match=r"mode='bilinear' needs a 4-D input"):
        cr.nn.functional.interpolate(cr.ones(1, 1, 4), scale_factor=2, mode='bilinear')
    with pytest.raises(NotImplementedError, match='antialias'):
        cr.nn.functional.interpolate(cr.tensor(x), scale_factor=2, mode='bilinear',
                                     antialias=True)
    # under the transforms: the gradient of a bilinear resize, jitted
    g = cr.jit(cr.grad(lambda x: (cr.nn.functional.interpolate(
        x, size=(5, 4), mode='bilinear') ** 2).sum()))(x)
    xt = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.interpolate(xt, size=(5, 4), mode='bilinear') ** 2).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-10)
