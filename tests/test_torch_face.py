"""`Tensor` speaks PyTorch: every method of `chainrule/_torch_face.py`, run with the same
spelling on a chainrule `Tensor` and on a `torch.Tensor` (PyTorch 2.13) holding the same values,
must give the same values, dtypes and shapes, and the same gradients.

The second half pins the names that used to silently mean NumPy's thing on `Tensor`, and checks
that the traced values inside the functional transforms keep NumPy's methods."""

import numpy as np
import pytest

import chainrule as cr
import chainrule.numpy as cnp

torch = pytest.importorskip('torch')
torch.set_num_threads(1)

RNG = np.random.default_rng(13)

_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
           torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16,
           torch.bool: np.bool_, torch.complex128: np.complex128}


def _flat(out):
    """A result as a list of tensors (tuples, named tuples, lists flattened in order)."""
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _flat(x)]
    return [out]


def _compare(ours, theirs, case):
    ours, theirs = _flat(ours), _flat(theirs)
    assert len(ours) == len(theirs), f'{case}: {len(ours)} results, PyTorch {len(theirs)}'
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if not isinstance(b, torch.Tensor):          # size() and friends: Python values
            assert a == b, f'{case}[{k}]: {a!r} != {b!r}'
            continue
        assert isinstance(a, cr.Tensor), f'{case}[{k}]: got {type(a).__name__}'
        assert tuple(a.shape) == tuple(b.shape), f'{case}[{k}]: shape {a.shape} vs {b.shape}'
        assert a.dtype == _DTYPES[b.dtype], f'{case}[{k}]: dtype {a.dtype} vs {b.dtype}'
        np.testing.assert_allclose(np.asarray(a.detach().numpy(), float),
                                   b.detach().numpy().astype(float), rtol=1e-12, atol=1e-12,
                                   err_msg=case)


def _run(fn, arrays, grad=True):
    """fn on chainrule Tensors and on torch tensors of the same float64 values; then, for every
    floating result, backward of sum(result * w) with the same w, and the inputs' gradients."""
    ours = [cr.tensor(a, requires_grad=grad and a.dtype.kind == 'f') for a in arrays]
    theirs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == 'f') for a in arrays]
    o, t = fn(ours[0], *ours[1:]), fn(theirs[0], *theirs[1:])
    return ours, theirs, o, t


SHAPES = [(3, 4), (2, 3, 4), (1, 3, 1)]


def _x(shape):
    return RNG.standard_normal(shape)


def _cases():
    """(id, fn, shapes): fn(x) spelled the same for both libraries."""
    c = []
    for s in SHAPES:
        nd = len(s)
        dims = [0, nd - 1, -1, -nd]
        for d in dims:
            for keep in (False, True):
                for name in ('sum', 'mean', 'amax', 'amin', 'logsumexp', 'prod'):
                    c.append((f'{name}-{s}-d{d}-k{keep}',
                              lambda x, n=name, d=d, k=keep: getattr(x, n)(d, keepdim=k), s))
                for name in ('std', 'var'):
                    c.append((f'{name}-{s}-d{d}-k{keep}',
                              lambda x, n=name, d=d, k=keep: getattr(x, n)(d, keepdim=k), s))
                    c.append((f'{name}-c0-{s}-d{d}-k{keep}', lambda x, n=name, d=d, k=keep:
                              getattr(x, n)(dim=d, correction=0, keepdim=k), s))
                for name in ('max', 'min', 'argmax', 'argmin', 'all', 'any'):
                    c.append((f'{name}-{s}-d{d}-k{keep}',
                              lambda x, n=name, d=d, k=keep: getattr(x, n)(d, keepdim=k), s))
                c.append((f'norm-{s}-d{d}-k{keep}', lambda x, d=d, k=keep: x.norm(dim=d, keepdim=k), s))
                c.append((f'norm1-{s}-d{d}', lambda x, d=d: x.norm(1, d), s))
                c.append((f'norminf-{s}-d{d}', lambda x, d=d: x.norm(float('inf'), d), s))
                c.append((f'norm3-{s}-d{d}', lambda x, d=d: x.norm(3, d), s))
            c += [
                (f'axis-alias-sum-{s}-{d}', lambda x, d=d: x.sum(axis=d, keepdims=True), s),
                (f'axis-alias-max-{s}-{d}', lambda x, d=d: x.max(axis=d), s),
                (f'cumsum-{s}-{d}', lambda x, d=d: x.cumsum(d), s),
                (f'cumprod-{s}-{d}', lambda x, d=d: x.cumprod(dim=d), s),
                (f'softmax-{s}-{d}', lambda x, d=d: x.softmax(d), s),
                (f'log_softmax-{s}-{d}', lambda x, d=d: x.log_softmax(dim=d), s),
                (f'sort-{s}-{d}', lambda x, d=d: x.sort(d), s),
                (f'sort-desc-{s}-{d}', lambda x, d=d: x.sort(dim=d, descending=True), s),
                (f'argsort-{s}-{d}', lambda x, d=d: x.argsort(d), s),
                (f'flatten-{s}-{d}', lambda x, d=d: x.flatten(d), s),
                (f'flatten-to-{s}-{d}', lambda x, d=d: x.flatten(0, d), s),
                (f'squeeze-{s}-{d}', lambda x, d=d: x.squeeze(d), s),
                (f'unsqueeze-{s}-{d}', lambda x, d=d: x.unsqueeze(d), s),
                (f'transpose-{s}-{d}', lambda x, d=d: x.transpose(0, d), s),
                (f'size-{s}-{d}', lambda x, d=d: x.size(d), s),
                (f'chunk-{s}-{d}', lambda x, d=d: x.chunk(2, d), s),
                (f'chunk3-{s}-{d}', lambda x, d=d: x.chunk(3, dim=d), s),
                (f'split-{s}-{d}', lambda x, d=d: x.split(2, d), s),
                (f'split-list-{s}-{d}', lambda x, d=d: x.split([x.shape[d] - 1, 1], dim=d)
                 if x.shape[d] > 1 else x.split([1], d), s),
                (f'unbind-{s}-{d}', lambda x, d=d: x.unbind(d), s),
                (f'narrow-{s}-{d}', lambda x, d=d: x.narrow(d, 0, 1), s),
                (f'narrow-neg-{s}-{d}', lambda x, d=d: x.narrow(d, -1, 1), s),
                (f'index_select-{s}-{d}', lambda x, d=d: x.index_select(
                    d, (torch if isinstance(x, torch.Tensor) else cr).tensor([0, 0, x.shape[d] - 1])),
                 s),
            ]
        c += [
            (f'sum-all-{s}', lambda x: x.sum(), s), (f'mean-all-{s}', lambda x: x.mean(), s),
            (f'std-all-{s}', lambda x: x.std(), s), (f'var-all-{s}', lambda x: x.var(), s),
            (f'var-unbiased-false-{s}', lambda x: x.var(False), s),
            (f'max-all-{s}', lambda x: x.max(), s), (f'min-all-{s}', lambda x: x.min(), s),
            (f'argmax-all-{s}', lambda x: x.argmax(), s),
            (f'argmin-all-k-{s}', lambda x: x.argmin(keepdim=True), s),
            (f'amax-dims-{s}', lambda x: x.amax((0, -1)), s),
            (f'sum-dims-{s}', lambda x: x.sum((0, -1), keepdim=True), s),
            (f'mean-dims-{s}', lambda x: x.mean(dim=[-1, 0]), s),
            (f'std-dims-{s}', lambda x: x.std(dim=(0, 1)), s),
            (f'prod-all-{s}', lambda x: x.prod(), s),
            (f'norm-{s}', lambda x: x.norm(), s), (f'norm-p1-{s}', lambda x: x.norm(p=1), s),
            (f'norm-dims-{s}', lambda x: x.norm(dim=(0, 1)), s),
            (f'all-{s}', lambda x: (x > -5).all(), s), (f'any-{s}', lambda x: (x > 1).any(), s),
            (f'size-{s}', lambda x: tuple(x.size()), s), (f'dim-{s}', lambda x: x.dim(), s),
            (f'ndim-{s}', lambda x: x.ndim, s), (f'numel-{s}', lambda x: x.numel(), s),
            (f'flatten-all-{s}', lambda x: x.flatten(), s),
            (f'squeeze-all-{s}', lambda x: x.squeeze(), s),
            (f'T-{s}', lambda x: x.permute(*reversed(range(x.dim()))), s),
            (f'mT-{s}', lambda x: x.mT, s),
            (f'permute-{s}', lambda x: x.permute(*range(x.dim() - 1, -1, -1)), s),
            (f'permute-neg-{s}', lambda x: x.permute([-1] + list(range(x.dim() - 1))), s),
            (f'view-{s}', lambda x, s=s: x.view(-1, s[-1]), s),
            (f'reshape-{s}', lambda x, s=s: x.reshape(s[-1], -1), s),
            (f'unflatten-{s}', lambda x: x.flatten().unflatten(0, (x.shape[0], -1)), s),
            (f'expand-{s}', lambda x, s=s: x[..., :1].expand(2, *s[:-1], 5), s),
            (f'expand-keep-{s}', lambda x, s=s: x[..., :1].expand(*[-1] * (len(s) - 1), 3), s),
            (f'repeat-{s}', lambda x, s=s: x.repeat(2, *[1] * (len(s) - 1)), s),
            (f'repeat-more-{s}', lambda x, s=s: x.repeat(2, 3, *[1] * len(s)), s),
            (f'tile-{s}', lambda x: x.tile(2), s), (f'tile-more-{s}', lambda x: x.tile(2, 1, 1, 2), s),
            (f'contiguous-{s}', lambda x: x.transpose(0, -1).contiguous(), s),
            (f'clone-{s}', lambda x: x.clone(), s),
        ]
        for name in ('exp', 'sigmoid', 'tanh', 'relu', 'abs', 'neg', 'sin', 'cos',
                     'floor', 'ceil', 'sign', 'square', 'expm1'):
            c.append((f'{name}-{s}', lambda x, n=name: getattr(x, n)(), s))
        for name in ('log', 'sqrt', 'rsqrt', 'reciprocal', 'log1p', 'log2', 'log10'):
            c.append((f'{name}-{s}', lambda x, n=name: getattr(x.abs() + 0.5, n)(), s))
        c += [
            (f'clamp-{s}', lambda x: x.clamp(-0.5, 0.5), s),
            (f'clamp-min-{s}', lambda x: x.clamp(min=0.1), s),
            (f'clamp-max-{s}', lambda x: x.clamp(max=0.1), s),
            (f'clip-{s}', lambda x: x.clip(-0.5, 0.5), s),
            (f'pow-{s}', lambda x: x.pow(3), s), (f'pow-t-{s}', lambda x: x.abs().pow(x), s),
            (f'float-{s}', lambda x: x.float(), s), (f'double-{s}', lambda x: x.float().double(), s),
            (f'long-{s}', lambda x: (x * 10).long(), s), (f'int-{s}', lambda x: (x * 10).int(), s),
            (f'bool-{s}', lambda x: x.bool(), s), (f'half-{s}', lambda x: x.half().double(), s),
            (f'to-{s}', lambda x: x.to(torch.float32 if isinstance(x, torch.Tensor)
                                       else cr.float32), s),
            (f'to-tensor-{s}', lambda x: x.to(x.float()), s),
            (f'type_as-{s}', lambda x: (x * 10).long().type_as(x), s),
            (f'masked_fill-{s}', lambda x: x.masked_fill(x > 0, 2.5), s),
            (f'masked_select-{s}', lambda x: x.masked_select(x > 0), s),
            (f'where-{s}', lambda x: x.where(x > 0, x * 3), s),
            (f'nonzero-{s}', lambda x: (x > 0).nonzero(), s),
            (f'nonzero-tuple-{s}', lambda x: (x > 0).nonzero(as_tuple=True), s),
            (f'new_zeros-{s}', lambda x: x.new_zeros(2, 3), s),
            (f'new_ones-{s}', lambda x: x.new_ones((2,)), s),
            (f'new_full-{s}', lambda x: x.new_full((2, 2), 1.5), s),
            (f'max-other-{s}', lambda x: x.max(x.flip(0)), s),
        ]
    c += [
        ('t-2d', lambda x: x.t(), (3, 4)), ('t-1d', lambda x: x.t(), (3,)),
        ('T-2d', lambda x: x.T, (3, 4)),
        ('matmul', lambda x: x.matmul(x.t()), (3, 4)), ('mm', lambda x: x.mm(x.t()), (3, 4)),
        ('bmm', lambda x: x.bmm(x.mT), (2, 3, 4)),
        ('expand_as', lambda x: x[:, :1].expand_as(x), (3, 4)),
        ('size-0d', lambda x: tuple(x.sum().size()), (3,)),
        ('max-0d', lambda x: x.sum().max(0), (3,)),
        ('flatten-0d', lambda x: x.sum().flatten(), (3,)),
        ('split-uneven', lambda x: x.split(3, dim=1), (2, 7)),
        ('chunk-fewer', lambda x: x.chunk(4, 1), (2, 6)),
        ('squeeze-tuple', lambda x: x.squeeze((0, 1, 2)), (1, 3, 1)),
        ('std-legacy', lambda x: x.std(1, False, True), (3, 4)),
    ]
    return c


CASES = _cases()


@pytest.mark.parametrize('case', CASES, ids=[c[0] for c in CASES])
def test_method_matches_torch(case):
    name, fn, shape = case
    x = _x(shape)
    ours, theirs, o, t = _run(fn, [x])
    _compare(o, t, name)
    pairs = [(a, b) for a, b in zip(_flat(o), _flat(t))
             if isinstance(b, torch.Tensor) and b.requires_grad]
    if not pairs:
        assert not any(isinstance(a, cr.Tensor) and a.requires_grad for a in _flat(o)), name
        return
    lo, lt = None, 0
    for a, b in pairs:
        w = RNG.standard_normal(tuple(a.shape))
        lt = lt + (b * torch.tensor(w.astype(_DTYPES[b.dtype]))).sum()
        if a.requires_grad:
            term = (a * cr.tensor(w.astype(a.dtype))).sum()
            lo = term if lo is None else lo + term
    lt.backward()
    if lo is None:
        # floor, ceil, sign, ...: chainrule does not record operations whose derivative is
        # zero wherever it exists (PyTorch records them and returns zeros)
        np.testing.assert_array_equal(theirs[0].grad.numpy(), 0, err_msg=name)
        return
    lo.backward()
    np.testing.assert_allclose(ours[0].grad.numpy(), theirs[0].grad.numpy(), rtol=1e-10,
                               atol=1e-12, err_msg=name)


# --- indexing helpers with index tensors ---------------------------------------------------------

@pytest.mark.parametrize('dim', [0, 1, -1, -2])
def test_gather_scatter_match_torch(dim):
    x = _x((3, 4))
    src = _x((3, 4))
    idx = RNG.integers(0, x.shape[dim], size=(2, 3))
    # scatter's written positions distinct (PyTorch leaves duplicates' winner unspecified)
    uniq = (np.array([RNG.permutation(4)[:3]]) if dim in (1, -1) else
            RNG.integers(0, 3, size=(1, 3)))
    for fn in (lambda L, a, s, i: a.gather(dim, L.tensor(i)),
               lambda L, a, s, i: a.scatter(dim, L.tensor(uniq), s[:1, :3]),
               lambda L, a, s, i: a.scatter(dim, L.tensor(uniq), 0.5),
               lambda L, a, s, i: a.scatter_add(dim, L.tensor(i), s[:2, :3])):
        ours = [cr.tensor(v, requires_grad=True) for v in (x, src)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (x, src)]
        o, t = fn(cr, *ours, idx), fn(torch, *theirs, idx)
        _compare(o, t, f'gather/scatter dim {dim}')
        w = RNG.standard_normal(tuple(o.shape))
        (o * cr.tensor(w)).sum().backward()
        (t * torch.tensor(w)).sum().backward()
        for a, b in zip(ours, theirs):
            if b.grad is None:
                assert a.grad is None
            else:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)


def test_inplace_forms_match_torch():
    x = _x((3, 4))
    for name, args in [('exp_', ()), ('log_', ()), ('sqrt_', ()), ('rsqrt_', ()),
                       ('sigmoid_', ()), ('tanh_', ()), ('relu_', ()), ('abs_', ()),
                       ('neg_', ()), ('reciprocal_', ()), ('sin_', ()), ('cos_', ()),
                       ('clamp_', (0.6, 0.9)), ('pow_', (2,)), ('masked_fill_', None),
                       ('scatter_', 'scatter'), ('scatter_add_', 'scatter')]:
        ours = cr.tensor(np.abs(x) + 0.5, requires_grad=True)
        theirs = torch.tensor(np.abs(x) + 0.5, requires_grad=True)
        ya, yb = ours * 1.0, theirs * 1.0
        if args is None:
            ra = ya.masked_fill_(ya > 1, 0.0)
            rb = yb.masked_fill_(yb > 1, 0.0)
        elif args == 'scatter':
            i = np.array([[2, 0, 1, 2]])
            ra = getattr(ya, name)(0, cr.tensor(i), ours[:1] * 3.0)
            rb = getattr(yb, name)(0, torch.tensor(i), theirs[:1] * 3.0)
        else:
            ra, rb = getattr(ya, name)(*args), getattr(yb, name)(*args)
        assert ra is ya, f'{name} returns self'
        _compare(ya, yb, name)
        ya.sum().backward()
        yb.sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-12,
                                   err_msg=name)


def test_inplace_on_a_view_reaches_the_base():
    # a PyTorch-named view (permute, narrow, expand's base...) shares memory and version
    for make in (lambda v: v.permute(1, 0), lambda v: v.narrow(1, 1, 2),
                 lambda v: v[1], lambda v: v.narrow(0, 1, 1), lambda v: v.t(),
                 lambda v: v.transpose(0, 1), lambda v: v.unsqueeze(0), lambda v: v.flatten()):
        res = []
        for L in (cr, torch):
            a = L.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
            b = a * 1.0
            v = make(b)
            v.mul_(10.0)
            (b * b).sum().backward()
            res.append((b.detach().numpy().copy(), a.grad.numpy().copy()))
        np.testing.assert_allclose(res[0][0], res[1][0])
        np.testing.assert_allclose(res[0][1], res[1][1])


VIEWS = {
    'permute': lambda y: y.permute(1, 0), 'transpose': lambda y: y.transpose(0, 1),
    't': lambda y: y.t(), 'mT': lambda y: y.mT, 'narrow': lambda y: y.narrow(1, 1, 2),
    'unbind': lambda y: y.unbind(1)[2], 'chunk': lambda y: y.chunk(2, 1)[1],
    'split': lambda y: y.split(1, 0)[1], 'flatten': lambda y: y.flatten(),
    'unflatten': lambda y: y.unflatten(1, (3, 1)), 'squeeze': lambda y: y[None].squeeze(0),
    'unsqueeze': lambda y: y.unsqueeze(-1), 'view': lambda y: y.view(3, 2),
    'contiguous': lambda y: y.contiguous(), 'expand_then_read': lambda y: y[:1],
}


@pytest.mark.parametrize('name', list(VIEWS))
def test_view_methods_share_memory_and_the_version_counter(name):
    x = cr.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = x * 2.0
    z = cr.numpy.sin(y)          # saves y
    v = VIEWS[name](y)
    with cr.no_grad():
        v.fill_(5.0)             # through the view: y changes, and its counter moves
    assert (y.numpy() == 5.0).sum() == v.numel()
    with pytest.raises(cr.GradientError, match='sin'):
        z.sum().backward()


def test_expand_is_a_view_of_its_base():
    y = cr.tensor(np.arange(3.0))
    e = y.expand(4, 3)
    with cr.no_grad():
        y.add_(1.0)
    np.testing.assert_array_equal(e.numpy(), np.tile(np.arange(3.0) + 1, (4, 1)))


# --- factories -----------------------------------------------------------------------------------

FACTORIES = [
    ('zeros', lambda L: L.zeros(2, 3, dtype=L.float32)),
    ('zeros-tuple', lambda L: L.zeros((2, 3), dtype=L.float64)),
    ('ones', lambda L: L.ones(4, dtype=L.int64)),
    ('full', lambda L: L.full((2, 2), 7)), ('full-bool', lambda L: L.full((2,), True)),
    ('full-f', lambda L: L.full((2,), 1.5, dtype=L.float64)),
    ('empty', lambda L: L.empty(2, 3, dtype=L.float32).shape),
    ('arange', lambda L: L.arange(5)), ('arange2', lambda L: L.arange(2, 11, 3)),
    ('arange-f', lambda L: L.arange(0.0, 1.0, 0.25, dtype=L.float64)),
    ('linspace', lambda L: L.linspace(0, 1, 7, dtype=L.float64)),
    ('eye', lambda L: L.eye(3, dtype=L.float64)), ('eye2', lambda L: L.eye(2, 4, dtype=L.int32)),
    ('zeros_like', lambda L: L.zeros_like(L.ones(2, 3, dtype=L.float32))),
    ('ones_like', lambda L: L.ones_like(L.ones(2, dtype=L.int64), dtype=L.float64)),
    ('full_like', lambda L: L.full_like(L.ones(2, dtype=L.float64), 3.0)),
    ('cat', lambda L: L.cat([L.ones(2, 3, dtype=L.float64), L.zeros(1, 3, dtype=L.float64)])),
    ('cat-dim', lambda L: L.cat((L.ones(2, 3, dtype=L.float64), L.zeros(2, 1, dtype=L.float64)),
                                dim=-1)),
    ('stack', lambda L: L.stack([L.ones(2, dtype=L.float64)] * 3, dim=1)),
    ('randint-shape', lambda L: (L.randint(0, 5, (3, 4)).shape, L.randint(0, 5, (3,)).dtype)),
    ('randperm-dtype', lambda L: (L.randperm(6).dtype, sorted(L.randperm(6).tolist()))),
    ('rand-dtype', lambda L: (L.rand(2, 3, dtype=L.float32).dtype,
                              L.randn(2, dtype=L.float64).dtype)),
]


@pytest.mark.parametrize('case', FACTORIES, ids=[c[0] for c in FACTORIES])
def test_factories_match_torch(case):
    name, fn = case
    o, t = fn(cr), fn(torch)
    if isinstance(t, tuple):
        conv = [(_DTYPES[b] if isinstance(b, torch.dtype) else tuple(b) if
                 isinstance(b, torch.Size) else b) for b in t]
        assert [tuple(a) if isinstance(a, tuple) else a for a in o] == conv, name
        return
    if isinstance(t, torch.Size):
        assert tuple(o) == tuple(t)
        return
    _compare(o, t, name)


def test_factories_requires_grad_and_default_dtype():
    w = cr.zeros(2, 3, requires_grad=True)
    (w * 2.0).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2.0)
    # chainrule's default floating dtype is float64, as cr.tensor([1.0]) (documented difference)
    assert cr.zeros(2).dtype == np.float64 and cr.arange(1.0, 2.0, 0.5).dtype == np.float64
    assert cr.float is np.float32 and cr.long is np.int64 and cr.double is np.float64


def test_manual_seed_and_generators_reproduce():
    cr.manual_seed(3)
    a = [cr.randn(4), cr.rand(2, 2), cr.randint(0, 9, (5,)), cr.randperm(7), cr.normal(1.0, 2.0, (3,))]
    cr.manual_seed(3)
    b = [cr.randn(4), cr.rand(2, 2), cr.randint(0, 9, (5,)), cr.randperm(7), cr.normal(1.0, 2.0, (3,))]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    g = cr.Generator().manual_seed(3)
    h = cr.Generator().manual_seed(3)
    np.testing.assert_array_equal(cr.randn(5, generator=g).numpy(), cr.randn(5, generator=h).numpy())
    assert not np.array_equal(cr.randn(5, generator=g).numpy(), cr.randn(5, generator=g).numpy())
    # the distributions are right: uniform in [0, 1), normal moments, randint range
    u = cr.rand(20000, generator=g).numpy()
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = cr.normal(cr.tensor(np.full(20000, 2.0)), 3.0, generator=g).numpy()
    assert abs(n.mean() - 2.0) < 0.1 and abs(n.std() - 3.0) < 0.1
    r = cr.randint(3, size=(1000,), generator=g).numpy()
    assert set(r.tolist()) == {0, 1, 2}


def test_one_seed_reproduces_init_dropout_and_factories():
    def run():
        cr.manual_seed(7)
        lin = cr.nn.Linear(3, 2)
        drop = cr.nn.functional.dropout(cr.ones(4, 4), 0.5)
        order = [b[0].numpy() for b in cr.data.DataLoader([np.arange(6.0)], 2, shuffle=True)]
        return [lin.weight.numpy().copy(), drop.numpy(), cr.randn(3).numpy(),
                np.concatenate(order)]

    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)
    g = cr.Generator().manual_seed(1)
    h = cr.Generator().manual_seed(1)
    one = [b[0].numpy() for b in cr.data.DataLoader([np.arange(9.0)], 4, True, generator=g)]
    two = [b[0].numpy() for b in cr.data.DataLoader([np.arange(9.0)], 4, True, generator=h)]
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    assert sorted(np.concatenate(one).tolist()) == list(range(9))


def test_docs_method_table_is_current():
    import os
    from chainrule._torch_face import method_table
    page = os.path.join(os.path.dirname(__file__), '..', 'docs', 'coming-from', 'pytorch.md')
    with open(page) as f:
        assert method_table() in f.read(), 'run python docs/gen_reference.py'


# --- the names that used to silently mean NumPy's thing -----------------------------------------

def test_pytorch_names_no_longer_mean_numpys_thing():
    a = np.arange(6.0).reshape(2, 3)
    x, tx = cr.tensor(a), torch.tensor(a)
    pairs = [
        (x.transpose(0, 1), tx.transpose(0, 1)),      # was: returned unchanged (axes (0, 1))
        (x.repeat(2, 1), tx.repeat(2, 1)),            # was: NumPy's element repeat
        (x.flatten(1), tx.flatten(1)),                # was: TypeError
        (x.std(), tx.std()),                          # was: ddof=0
        (x.var(1), tx.var(1)),
        (x.max(1).values, tx.max(1).values), (x.max(1).indices, tx.max(1).indices),
        (x.sort(1, descending=True).values, tx.sort(1, descending=True).values),
        (x.squeeze(0), tx.squeeze(0)),                # was: ValueError (size 2 is kept)
        ((x > 2).nonzero(), (tx > 2).nonzero()),     # was: NumPy's tuple of arrays
    ]
    for o, t in pairs:
        _compare(o, t, 'silent mismatch')
    assert x.size() == tuple(tx.size()) and x.size(1) == tx.size(1) == 3
    with pytest.raises(TypeError, match='dim'):
        x.cumsum()                                    # PyTorch requires the dim
    with pytest.raises(cr.ShapeError):
        x.repeat(2)                                   # fewer sizes than dims, as PyTorch


def test_traced_values_keep_numpys_methods():
    # inside grad/vmap the traced values are NumPy-faced: transpose(axes), repeat, axis=, ddof=0
    a = RNG.standard_normal((2, 3))

    def f(v):
        return cnp.sum(v.transpose((1, 0)).repeat(2, axis=0) ** 2) + v.std() + v.max(axis=1).sum()

    g = cr.grad(f)(a)
    h = 1e-6
    fd = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        e = np.zeros_like(a)
        e[i] = h
        fd[i] = (f(a + e) - f(a - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    assert cr.vmap(lambda v: v.sum(axis=0))(np.ones((4, 2, 3))).shape == (4, 3)


def test_tensor_methods_run_inside_transforms():
    # Tensor code inside grad / vmap / jit: its data is a tracer; the PyTorch methods still work
    a = RNG.standard_normal((3, 4))

    def loss(v):
        t = cr.Tensor(v)
        s = t.transpose(0, 1).flatten(0).unflatten(0, (4, 3)).permute(1, 0)
        m = s.max(1).values + s.std(1) + s.logsumexp(-1) + s.norm(dim=1)
        parts = s.chunk(2, 1)
        return (m.sum() + parts[0].sum() * parts[1].mean() + s.narrow(0, 1, 2).amax()).data

    def torch_loss(v):
        s = v.transpose(0, 1).flatten(0).unflatten(0, (4, 3)).permute(1, 0)
        m = s.max(1).values + s.std(1) + s.logsumexp(-1) + s.norm(dim=1)
        parts = s.chunk(2, 1)
        return m.sum() + parts[0].sum() * parts[1].mean() + s.narrow(0, 1, 2).amax()

    ta = torch.tensor(a, requires_grad=True)
    torch_loss(ta).backward()
    np.testing.assert_allclose(cr.grad(loss)(a), ta.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(cr.jit(cr.grad(loss))(a), ta.grad.numpy(), rtol=1e-10)
    batch = RNG.standard_normal((2, 3, 4))
    want = [torch_loss(torch.tensor(b)).item() for b in batch]
    np.testing.assert_allclose(cr.vmap(loss)(batch), want, rtol=1e-10)


def test_bad_arguments_give_clear_errors():
    x = cr.tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match='dim 2 is out of range'):
        x.sum(2)
    with pytest.raises(TypeError, match='both dim'):
        x.sum(dim=0, axis=1)
    with pytest.raises(cr.ShapeError, match='expand'):
        x.expand(4, 3)
    with pytest.raises(cr.ShapeError, match='permute'):
        x.permute(1, 0, 2)
    with pytest.raises(cr.ShapeError, match='t\\(\\)'):
        cr.tensor(np.ones((2, 2, 2))).t()
    with pytest.raises(cr.ShapeError, match='sections'):
        x.split([1, 1], 1)
    with pytest.raises(IndexError, match='narrow'):
        x.narrow(1, 2, 2)
    with pytest.raises(TypeError, match='bool'):
        x.masked_fill(x, 0.0)
    with pytest.raises(cr.ShapeError, match='mm'):
        x.mm(cr.tensor(np.ones(3)))


# --- nn: loss and activation modules against torch.nn --------------------------------------------

def _probs(shape):
    return 1 / (1 + np.exp(-RNG.standard_normal(shape)))


NN_CASES = [
    ('MSELoss', lambda nn: nn.MSELoss(), 'regression'),
    ('MSELoss-sum', lambda nn: nn.MSELoss(reduction='sum'), 'regression'),
    ('L1Loss', lambda nn: nn.L1Loss(), 'regression'),
    ('L1Loss-none', lambda nn: nn.L1Loss(reduction='none'), 'regression'),
    ('SmoothL1Loss', lambda nn: nn.SmoothL1Loss(beta=0.5), 'regression'),
    ('HuberLoss', lambda nn: nn.HuberLoss(delta=0.7), 'regression'),
    ('HuberLoss-sum', lambda nn: nn.HuberLoss(reduction='sum'), 'regression'),
    ('BCELoss', lambda nn: nn.BCELoss(), 'probs'),
    ('BCEWithLogitsLoss', lambda nn: nn.BCEWithLogitsLoss(), 'binary'),
    ('NLLLoss', lambda nn: nn.NLLLoss(), 'logprobs'),
    ('NLLLoss-ignore', lambda nn: nn.NLLLoss(ignore_index=1), 'logprobs'),
    ('CrossEntropyLoss', lambda nn: nn.CrossEntropyLoss(), 'classes'),
    ('CrossEntropyLoss-ignore', lambda nn: nn.CrossEntropyLoss(ignore_index=2), 'classes'),
    ('CrossEntropyLoss-weight', lambda nn: nn.CrossEntropyLoss(
        weight=(torch.tensor if nn is torch.nn else cr.tensor)(np.array([0.5, 2.0, 1.0, 3.0]))),
     'classes'),
    ('CrossEntropyLoss-smooth', lambda nn: nn.CrossEntropyLoss(label_smoothing=0.1), 'classes'),
    ('CrossEntropyLoss-smooth-w-sum', lambda nn: nn.CrossEntropyLoss(
        weight=(torch.tensor if nn is torch.nn else cr.tensor)(np.array([0.5, 2.0, 1.0, 3.0])),
        label_smoothing=0.2, reduction='sum'), 'classes'),
    ('SiLU', lambda nn: nn.SiLU(), 'act'), ('LeakyReLU', lambda nn: nn.LeakyReLU(0.2), 'act'),
    ('LeakyReLU-default', lambda nn: nn.LeakyReLU(), 'act'),
    ('ELU', lambda nn: nn.ELU(alpha=0.5), 'act'), ('Softplus', lambda nn: nn.Softplus(), 'act'),
    ('Softplus-beta', lambda nn: nn.Softplus(beta=2.0, threshold=1.0), 'act'),
]


@pytest.mark.parametrize('case', NN_CASES, ids=[c[0] for c in NN_CASES])
def test_nn_modules_match_torch(case):
    name, make, kind = case
    x = RNG.standard_normal((5, 4)) * 2
    if kind == 'probs':
        x = _probs((5, 4))
    if kind == 'logprobs':
        x = x - np.log(np.exp(x).sum(1, keepdims=True))
    if kind in ('logprobs', 'classes'):
        target = np.array([0, 1, 3, 2, 1])
    elif kind in ('probs', 'binary'):
        target = _probs((5, 4))
    else:
        target = RNG.standard_normal((5, 4))
    outs, grads = [], []
    for L in (cr, torch):
        xi = L.tensor(x, requires_grad=True)
        mod = make(L.nn)
        out = mod(xi) if kind == 'act' else mod(xi, L.tensor(target))
        w = np.linspace(-1, 1, int(np.prod(out.shape))).reshape(tuple(out.shape))
        (out * L.tensor(w)).sum().backward()
        outs.append(out.detach().numpy())
        grads.append(xi.grad.numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-9, atol=1e-12, err_msg=name)


# --- nn: containers, hooks, buffers, apply, written once for both libraries ----------------------

def _net(L):
    class Net(L.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = L.nn.ModuleList([L.nn.Linear(3, 4), L.nn.Linear(4, 4)])
            self.layers.append(L.nn.Linear(4, 2))
            self.heads = L.nn.ModuleDict({'a': L.nn.Linear(2, 1), 'b': L.nn.Linear(2, 1)})
            self.scales = L.nn.ParameterList([L.nn.Parameter(L.ones(2, dtype=L.float64))])
            self.register_buffer('offset', L.zeros(2, dtype=L.float64))

        def forward(self, x):
            for layer in self.layers[:-1]:
                x = layer(x).tanh()
            x = self.layers[-1](x) * self.scales[0] + self.offset
            return self.heads['a'](x) + self.heads['b'](x).sigmoid()
    return Net().double() if L is torch else Net().to(np.float64)


def test_containers_hooks_and_buffers_match_torch():
    nets = {L: _net(L) for L in (cr, torch)}
    names = {L: list(n.state_dict()) for L, n in nets.items()}
    assert sorted(names[cr]) == sorted(names[torch])      # (the order may differ)
    assert [n for n, _ in nets[cr].named_buffers()] == ['offset']
    # the same weights: torch's state_dict loads into chainrule's module
    nets[cr].load_state_dict({k: v.numpy() for k, v in nets[torch].state_dict().items()})
    calls = {cr: [], torch: []}
    for L, net in nets.items():
        net.layers[1].register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
        h = net.layers[1].register_forward_hook(lambda m, args, out: out + 1.0)
        net.heads['a'].register_forward_hook(
            lambda m, args, out, L=L: calls[L].append(tuple(out.shape)))
        net.apply(lambda m, L=L: calls[L].append(type(m).__name__))
        if L is cr:
            h_cr = h
        else:
            h_t = h
    assert calls[cr] == calls[torch]
    x = RNG.standard_normal((5, 3))
    res = []
    for L, net in nets.items():
        xi = L.tensor(x)
        y = net(xi).sum()
        y.backward()
        res.append((y.item(), net.layers[0].weight.grad.numpy().copy(),
                    net.scales[0].grad.numpy().copy()))
    assert res[0][0] == pytest.approx(res[1][0], rel=1e-12)
    np.testing.assert_allclose(res[0][1], res[1][1], rtol=1e-10)
    np.testing.assert_allclose(res[0][2], res[1][2], rtol=1e-10)
    assert calls[cr] == calls[torch]
    h_cr.remove()
    h_t.remove()
    outs = [net(L.tensor(x)).detach().numpy() for L, net in nets.items()]
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-10)
    assert len(nets[cr].layers) == 3 and list(nets[cr].heads) == ['a', 'b']
    with pytest.raises(TypeError, match='ModuleList holds only'):
        nets[cr].layers.append(3)


# --- cr.autograd.grad ----------------------------------------------------------------------------

def test_autograd_grad_gradient_penalty_matches_torch():
    x0 = RNG.standard_normal((4, 3))
    w0 = RNG.standard_normal((3, 5))
    v0 = RNG.standard_normal((5,))
    res = []
    for L in (cr, torch):
        x = L.tensor(x0, requires_grad=True)
        w = L.tensor(w0, requires_grad=True)
        v = L.tensor(v0, requires_grad=True)
        h = (x @ w).tanh()                                   # a non-leaf input too
        y = (h @ v).sum()
        gx, gh = L.autograd.grad(y, [x, h], create_graph=True)
        assert x.grad is None and w.grad is None             # nothing accumulated
        penalty = ((gx.norm(dim=1) - 1) ** 2).mean() + (gh ** 2).sum()
        penalty.backward()
        res.append([gx.detach().numpy().copy(), gh.detach().numpy().copy(), x.grad.numpy(),
                    w.grad.numpy(), v.grad.numpy()])
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_autograd_grad_options_match_torch():
    x0 = RNG.standard_normal(3)
    res = []
    for L in (cr, torch):
        x = L.tensor(x0, requires_grad=True)
        u = L.tensor(x0 * 2, requires_grad=True)
        y1, y2 = x.exp(), (x * x).sum()
        g = L.autograd.grad([y1, y2], [x, u], grad_outputs=[L.tensor(np.arange(3.0)), None],
                            allow_unused=True, retain_graph=True)
        assert g[1] is None
        (again,) = L.autograd.grad(y2, x)
        res.append([g[0].numpy(), again.numpy()])
        with pytest.raises(RuntimeError if L is torch else cr.GradientError):
            L.autograd.grad(y2, u)
        with pytest.raises(RuntimeError if L is torch else cr.GradientError):
            L.autograd.grad(y1, x)                        # non-scalar without grad_outputs
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def _functions(L):
    class ScaledExp(L.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, scale):
            y = (x * w).exp() * scale
            ctx.save_for_backward(y, x, w)
            ctx.scale = scale
            return y

        @staticmethod
        def backward(ctx, g):
            y, x, w = ctx.saved_tensors
            gx = g * y * w if ctx.needs_input_grad[0] else None
            gw = (g * y * x).sum(0) if ctx.needs_input_grad[1] else None
            return gx, gw, None

    class Pair(L.autograd.Function):                 # two outputs
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2.0, x.sin()

        @staticmethod
        def backward(ctx, ga, gb):
            (x,) = ctx.saved_tensors
            return ga * 2.0 + gb * x.cos()
    return ScaledExp, Pair


def test_autograd_function_matches_torch():
    x0, w0 = RNG.standard_normal((4, 3)), RNG.standard_normal(3)
    res = []
    for L in (cr, torch):
        ScaledExp, Pair = _functions(L)
        x, w = L.tensor(x0, requires_grad=True), L.tensor(w0, requires_grad=True)
        y = ScaledExp.apply(x, w, 0.5)
        a, b = Pair.apply(y)
        ((a * b).sum() + (y ** 2).mean()).backward()
        frozen = ScaledExp.apply(L.tensor(x0), w, 2.0)     # x needs no grad
        frozen.sum().backward()
        res.append([y.detach().numpy(), x.grad.numpy(), w.grad.numpy()])
    for p, q in zip(*res):
        np.testing.assert_allclose(p, q, rtol=1e-10)


@pytest.mark.parametrize('make', [
    lambda o, L: L.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    lambda o, L: L.optim.lr_scheduler.MultiStepLR(o, milestones=[1, 4], gamma=0.3),
    lambda o, L: L.optim.lr_scheduler.ExponentialLR(o, gamma=0.9),
], ids=['StepLR', 'MultiStepLR', 'ExponentialLR'])
def test_lr_schedulers_match_torch(make):
    lrs = []
    for L in (cr, torch):
        p = L.nn.Parameter(L.zeros(2, dtype=L.float64))
        opt = L.optim.SGD([p], lr=0.1)
        sched = make(opt, L)
        seq = []
        for _ in range(7):
            opt.step()
            sched.step()
            seq.append(sched.get_last_lr()[0])
        lrs.append(seq)
    np.testing.assert_allclose(lrs[0], lrs[1], rtol=1e-12)
    from chainrule.optim.lr_scheduler import StepLR     # importable as PyTorch's module
    assert StepLR is cr.optim.StepLR
