"""Attention and the transformer encoder against PyTorch 2.13 on the same weights and inputs:
`F.scaled_dot_product_attention`, `nn.MultiheadAttention`, `nn.TransformerEncoderLayer` and
`nn.TransformerEncoder` -- outputs, attention weights, and the gradients of the inputs and of
every parameter, over a grid of options, in float32 and float64; PyTorch's eval-mode fast path;
dropout by its statistics; the bad-input errors; and the composites under `jit`, `vmap` and
second derivatives."""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.core import DTypeError, ShapeError
from chainrule.nn import functional as F
from chainrule.testing import check_grads
from torch_ref import load_from_torch, torch_dtype, torch_or_skip

# PyTorch's own warnings about its nested-tensor fast path and mixed mask types
pytestmark = [pytest.mark.filterwarnings('ignore:The PyTorch API of nested tensors'),
              pytest.mark.filterwarnings('ignore:Support for mismatched')]

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _torch():
    return torch_or_skip('the reference for attention is PyTorch '
                                                '(pip install torch==2.13.0)')


_tdtype = torch_dtype
_load_from_torch = load_from_torch


def _close(a, b, dtype, what):
    a = a.numpy() if isinstance(a, cr.Tensor) else np.asarray(a)
    b = b.detach().numpy()
    assert a.shape == b.shape, f'{what}: shape {a.shape} != {b.shape}'
    np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=what)


def _run_both(torch, ours, theirs, arrays, dtype, call, *, outputs=(0,)):
    """Call both modules (or functions) on the same arrays (floating ones require grad), then
    compare the chosen outputs and the gradients of `sum(out * R)` over them with respect to
    every floating input and every parameter. `call(f, xs)` calls `f` on the inputs."""
    xs = [cr.tensor(a, requires_grad=a.dtype.kind == 'f') for a in arrays]
    txs = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == 'f') for a in arrays]
    got, want = call(ours, xs), call(theirs, txs)
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    rng = np.random.default_rng(1)
    loss, tloss = 0, 0
    for i in outputs:
        if want[i] is None:
            assert got[i] is None, f'output {i}: None in PyTorch'
            continue
        assert got[i].dtype == dtype, f'output {i}: dtype {got[i].dtype}'
        _close(got[i], want[i], dtype, f'output {i}')
        r = rng.standard_normal(got[i].shape).astype(dtype)
        ok = np.isfinite(want[i].detach().numpy())             # NaN rows (torch's too) aside
        loss = loss + (got[i] * np.where(ok, r, 0)).sum()
        tloss = tloss + (torch.nan_to_num(want[i], 0.0) * torch.from_numpy(r * ok)).sum()
    loss.backward()
    tloss.backward()
    for j, (x, tx) in enumerate(zip(xs, txs)):
        if tx.requires_grad:
            _close(x.grad, tx.grad, dtype, f'gradient of input {j}')
    if isinstance(theirs, torch.nn.Module):
        tparams = dict(theirs.named_parameters())
        ours_params = dict(ours.named_parameters())
        assert sorted(ours_params) == sorted(tparams)
        for name, p in ours_params.items():
            _close(p.grad, tparams[name].grad, dtype, f'gradient of {name}')
    return got


# --- scaled_dot_product_attention -----------------------------------------------------------

SDPA_CASES = [
    # (name, q shape, k shape, v shape, mask kind, keyword arguments)
    ('plain', (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7), None, {}),
    ('3d', (3, 4, 5), (3, 6, 5), (3, 6, 5), None, {}),
    ('broadcast-batch', (2, 3, 4, 5), (1, 3, 6, 5), (3, 6, 5), None, {}),
    ('bool-mask', (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), ('bool', (4, 6)), {}),
    ('bool-mask-broadcast', (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), ('bool', (2, 1, 4, 6)),
     {}),
    ('bool-mask-dead-row', (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), ('dead', (4, 6)), {}),
    ('float-mask', (2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 5), ('float', (3, 4, 6)), {}),
    ('float-mask-grad', (2, 4, 5), (2, 6, 5), (2, 6, 5), ('float-grad', (2, 4, 6)), {}),
    ('causal', (2, 3, 5, 4), (2, 3, 5, 4), (2, 3, 5, 4), None, {'is_causal': True}),
    ('causal-rect', (2, 4, 4), (2, 6, 4), (2, 6, 4), None, {'is_causal': True}),
    ('causal-more-queries', (2, 6, 4), (2, 3, 4), (2, 3, 4), None, {'is_causal': True}),
    ('scale', (2, 4, 5), (2, 6, 5), (2, 6, 5), ('bool', (4, 6)), {'scale': 0.3}),
    ('gqa', (2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 5), None, {'enable_gqa': True}),
]


def _mask(rng, kind, shape, dtype):
    if kind == 'bool':
        m = rng.random(shape) < 0.7
        m[..., 0] = True                                        # no row all masked out
        return m
    if kind == 'dead':
        m = rng.random(shape) < 0.7
        m[..., 0] = True
        m[1] = False                                            # query 1 sees nothing
        return m
    return (rng.standard_normal(shape) * np.where(rng.random(shape) < 0.2, np.inf, 1)
            ).astype(dtype) if kind == 'float' else rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name,sq,sk,sv,mask,kw', SDPA_CASES, ids=[c[0] for c in SDPA_CASES])
def test_sdpa_matches_torch(name, sq, sk, sv, mask, kw, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (sq, sk, sv)]
    if mask is not None:
        m = _mask(rng, mask[0], mask[1], dtype)
        if mask[0] == 'float':
            m = -np.abs(m)                                     # -inf entries, never +inf
            m[..., 0] = 0
        arrays.append(m)

    def call(fn, xs):
        return fn(*xs[:3], attn_mask=xs[3] if len(xs) > 3 else None, **kw)

    got = _run_both(torch, F.scaled_dot_product_attention,
                    torch.nn.functional.scaled_dot_product_attention, arrays, dtype, call)
    if mask is not None and mask[0] == 'dead':
        assert np.all(got[0].numpy()[..., 1, :] == 0)          # PyTorch's safe softmax


def test_sdpa_fully_masked_row_has_zero_gradient():
    """A query that sees no key: zero output, and zero (not NaN) gradients everywhere."""
    rng = np.random.default_rng(0)
    q, k, v = (cr.tensor(rng.standard_normal((3, 4)), requires_grad=True) for _ in range(3))
    mask = np.ones((3, 3), bool)
    mask[0] = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out.sum().backward()
    assert np.all(out.numpy()[0] == 0)
    for t in (q, k, v):
        assert np.all(np.isfinite(t.grad.numpy()))
    assert np.all(q.grad.numpy()[0] == 0)


# --- MultiheadAttention ------------------------------------------------------------------------

MHA_OPTIONS = [
    # (name, constructor keywords, call keywords, input kind)
    ('plain', {}, {}, 'cross'),
    ('self', {}, {}, 'self'),
    ('kv-same', {}, {}, 'kv'),
    ('kdim-vdim', {'kdim': 5, 'vdim': 7}, {}, 'cross'),
    ('kdim-vdim-kv', {'kdim': 5, 'vdim': 5}, {}, 'kv'),
    ('no-bias', {'bias': False}, {}, 'cross'),
    ('bias-kv-zero-attn', {'add_bias_kv': True, 'add_zero_attn': True}, {}, 'cross'),
    ('kpm-bool', {}, {'key_padding_mask': 'bool'}, 'cross'),
    ('kpm-float', {}, {'key_padding_mask': 'float'}, 'cross'),
    ('mask-2d-bool', {}, {'attn_mask': 'bool2'}, 'self'),
    ('mask-3d-float', {}, {'attn_mask': 'float3'}, 'cross'),
    ('mask-3d-bool+kpm', {}, {'attn_mask': 'bool3', 'key_padding_mask': 'bool'}, 'cross'),
    ('causal', {}, {'attn_mask': 'causal', 'is_causal': True}, 'self'),
    ('masks+bias-kv', {'add_bias_kv': True, 'add_zero_attn': True},
     {'attn_mask': 'bool2', 'key_padding_mask': 'bool'}, 'cross'),
    ('per-head-weights', {}, {'average_attn_weights': False, 'key_padding_mask': 'bool'},
     'cross'),
    ('dead-rows', {}, {'attn_mask': 'dead'}, 'self'),
]

E, H, N, L, S = 8, 2, 3, 4, 6


def _mha_inputs(rng, ckw, kind, batched, batch_first, dtype):
    kd, vd = ckw.get('kdim', E), ckw.get('vdim', E)
    S_ = L if kind == 'self' else S

    def shape(n, d):
        return (n, d) if not batched else (N, n, d) if batch_first else (n, N, d)

    q = rng.standard_normal(shape(L, E)).astype(dtype)
    k = rng.standard_normal(shape(S_, kd)).astype(dtype)
    v = rng.standard_normal(shape(S_, vd)).astype(dtype)
    return q, k, v, S_


def _mha_masks(rng, call_kw, S_, batched, dtype):
    """The masks named in call_kw, as NumPy arrays (None stays)."""
    n = N if batched else 1
    out = {}
    for arg, kind in call_kw.items():
        if arg not in ('attn_mask', 'key_padding_mask'):
            out[arg] = kind
            continue
        if arg == 'key_padding_mask':
            m = rng.random((n, S_)) < 0.3
            m[:, 0] = False                                     # every query sees a key
            if kind == 'float':
                m = np.where(m, -np.inf, rng.standard_normal(m.shape)).astype(dtype)
            out[arg] = m if batched else m[0]
            continue
        if kind == 'causal':
            m = np.triu(np.ones((L, S_), bool), 1)
        elif kind == 'dead':
            m = rng.random((L, S_)) < 0.3
            m[:, 0] = False
            m[2] = True                                         # query 2 sees nothing
        elif kind == 'bool2':
            m = rng.random((L, S_)) < 0.3
            m[:, 0] = False
        else:
            m = rng.random((n * H, L, S_)) < 0.3
            m[..., 0] = False
            if kind == 'float3':
                m = np.where(m, -np.inf, rng.standard_normal(m.shape)).astype(dtype)
        out[arg] = m
    return out


def _mha_call(torch, masks):
    def call(f, xs):
        m = {k: (torch.from_numpy(v) if isinstance(f, torch.nn.Module) else v)
             if isinstance(v, np.ndarray) else v for k, v in masks.items()}
        return f(*xs, **m)
    return call


def _mha_pair(torch, ckw, batch_first, dtype, dropout=0.0):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(E, H, dropout=dropout, batch_first=batch_first,
                                         **ckw).to(_tdtype(torch, dtype))
    ours = nn.MultiheadAttention(E, H, dropout=dropout, batch_first=batch_first, dtype=dtype,
                                 rng=0, **ckw)
    _load_from_torch(ours, theirs)
    return ours, theirs


def _arrays_for(kind, q, k, v):
    """The inputs as passed: self-attention passes one array three times (so both libraries
    see `query is key is value`), 'kv' one array for key and value."""
    if kind == 'self':
        return [q]
    if kind == 'kv':
        return [q, k]
    return [q, k, v]


def _expand(xs, kind):
    return xs * 3 if kind == 'self' else [xs[0], xs[1], xs[1]] if kind == 'kv' else xs


@pytest.mark.filterwarnings('ignore:invalid value encountered')     # dead rows: NaN, as torch
@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('need_weights', [True, False])
@pytest.mark.parametrize('name,ckw,call_kw,kind', MHA_OPTIONS, ids=[c[0] for c in MHA_OPTIONS])
def test_mha_matches_torch(name, ckw, call_kw, kind, need_weights, batch_first, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _mha_pair(torch, ckw, batch_first, dtype)
    q, k, v, S_ = _mha_inputs(rng, ckw, kind, True, batch_first, dtype)
    masks = _mha_masks(rng, call_kw, S_, True, dtype)
    masks['need_weights'] = need_weights
    call = _mha_call(torch, masks)
    _run_both(torch, ours, theirs, _arrays_for(kind, q, k, v), dtype,
              lambda f, xs: call(f, _expand(xs, kind)), outputs=(0, 1))


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('name,ckw,call_kw', [
    ('plain', {}, {}),
    ('kdim-vdim-masks', {'kdim': 5, 'vdim': 7},
     {'key_padding_mask': 'bool', 'attn_mask': 'bool3'}),
    ('bias-kv-2d-mask', {'add_bias_kv': True}, {'attn_mask': 'bool2'}),
    ('per-head', {}, {'average_attn_weights': False, 'key_padding_mask': 'float'}),
])
@pytest.mark.parametrize('batch_first', [False, True])               # ignored unbatched
def test_mha_unbatched_matches_torch(name, ckw, call_kw, batch_first, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _mha_pair(torch, ckw, batch_first, dtype)
    q, k, v, S_ = _mha_inputs(rng, ckw, 'cross', False, False, dtype)
    masks = _mha_masks(rng, call_kw, S_, False, dtype)
    got = _run_both(torch, ours, theirs, [q, k, v], dtype, _mha_call(torch, masks),
                    outputs=(0, 1))
    assert got[0].shape == (L, E)


@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('call_kw', [{}, {'key_padding_mask': 'bool'},
                                     {'attn_mask': 'bool2'}], ids=['plain', 'kpm', 'mask'])
def test_mha_eval_matches_torch_fast_path(call_kw, batch_first):
    """In evaluation under no_grad, PyTorch's self-attention takes its native fast path;
    the numbers are the same."""
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _mha_pair(torch, {}, batch_first, np.float32, dropout=0.3)
    ours.eval()
    theirs.eval()
    q, _, _, S_ = _mha_inputs(rng, {}, 'self', True, batch_first, np.float32)
    masks = _mha_masks(rng, call_kw, S_, True, np.float32)
    tq = torch.from_numpy(q)
    with torch.no_grad():
        want = theirs(tq, tq, tq, **{k: torch.from_numpy(m) for k, m in masks.items()})
    got = ours(q, q, q, **masks)
    for g, w in zip(got, want):
        _close(g, w, np.float32, 'eval output')


def test_mha_parameters_and_init_follow_torch():
    torch = _torch()
    for ckw in ({}, {'kdim': 5, 'vdim': 7}, {'add_bias_kv': True, 'bias': False}):
        ours = nn.MultiheadAttention(E, H, rng=0, **ckw)
        theirs = torch.nn.MultiheadAttention(E, H, **ckw)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    m = nn.MultiheadAttention(64, 4, rng=0)
    b = np.sqrt(6 / (64 + 3 * 64))                              # Xavier-uniform over (3E, E)
    w = m.in_proj_weight.numpy()
    assert w.dtype == np.float32 and np.abs(w).max() <= b and np.abs(w).max() > 0.9 * b
    assert np.all(m.in_proj_bias.numpy() == 0) and np.all(m.out_proj.bias.numpy() == 0)
    assert np.abs(m.out_proj.weight.numpy()).max() <= 1 / 8


# --- TransformerEncoderLayer and TransformerEncoder --------------------------------------------

D, NH, FF = 8, 2, 16

ENC_OPTIONS = [
    # (name, constructor keywords (activation as a name or a (ours, theirs) pair), masks)
    ('post-relu', {}, {}),
    ('pre-gelu', {'norm_first': True, 'activation': 'gelu'}, {}),
    ('callable', {'activation': ('fn-tanh',)}, {'src_key_padding_mask': 'bool'}),
    ('module-act', {'activation': ('mod-gelu-tanh',), 'norm_first': True},
     {'src_mask': 'causal', 'is_causal': True}),
    ('no-bias', {'bias': False, 'layer_norm_eps': 1e-3}, {'src_mask': 'bool'}),
    ('masks', {'norm_first': True}, {'src_mask': 'float', 'src_key_padding_mask': 'bool'}),
    ('float-kpm', {}, {'src_key_padding_mask': 'float'}),
]


def _activation(torch, spec, ours):
    if isinstance(spec, str):
        return spec
    if spec[0] == 'fn-tanh':
        return F.tanh if ours else torch.tanh
    return nn.GELU('tanh') if ours else torch.nn.GELU('tanh')


def _enc_kw(torch, ckw, ours):
    kw = dict(ckw)
    if 'activation' in kw:
        kw['activation'] = _activation(torch, kw['activation'], ours)
    return kw


def _enc_masks(rng, masks, n, Lx, dtype, batched=True):
    out = {}
    for k, kind in masks.items():
        if k == 'is_causal':
            out[k] = kind
        elif k == 'src_key_padding_mask':
            m = rng.random((n, Lx)) < 0.3
            m[:, 0] = False
            if kind == 'float':
                m = np.where(m, -np.inf, 0.5 * rng.standard_normal(m.shape)).astype(dtype)
            out[k] = m if batched else m[0]
        elif kind == 'causal':
            out[k] = np.triu(np.ones((Lx, Lx), bool), 1)
        elif kind == 'bool':
            m = rng.random((Lx, Lx)) < 0.3
            np.fill_diagonal(m, False)
            out[k] = m
        else:
            out[k] = np.where(np.triu(np.ones((Lx, Lx), bool), 1), -np.inf,
                              rng.standard_normal((Lx, Lx))).astype(dtype)
    return out


def _enc_pair(torch, ckw, dtype, layers=None, final_norm=False, dropout=0.0):
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(D, NH, FF, dropout=dropout, **_enc_kw(torch, ckw, False))
    ol = nn.TransformerEncoderLayer(D, NH, FF, dropout=dropout, rng=0, dtype=dtype,
                                    **_enc_kw(torch, ckw, True))
    if layers is None:
        theirs, ours = tl, ol
    else:
        theirs = torch.nn.TransformerEncoder(
            tl, layers, norm=torch.nn.LayerNorm(D) if final_norm else None,
            enable_nested_tensor=False)
        ours = nn.TransformerEncoder(ol, layers, norm=nn.LayerNorm(D, dtype=dtype)
                                     if final_norm else None)
    theirs = theirs.to(_tdtype(torch, dtype))
    with torch.no_grad():                       # distinct layers (PyTorch's copies are equal)
        for p in theirs.parameters():
            p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype))
    _load_from_torch(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('batch_first', [False, True])
@pytest.mark.parametrize('name,ckw,masks', ENC_OPTIONS, ids=[c[0] for c in ENC_OPTIONS])
def test_encoder_layer_matches_torch(name, ckw, masks, batch_first, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _enc_pair(torch, dict(ckw, batch_first=batch_first), dtype)
    x = rng.standard_normal((N, L, D) if batch_first else (L, N, D)).astype(dtype)
    m = _enc_masks(rng, masks, N, L, dtype)
    _run_both(torch, ours, theirs, [x], dtype, _mha_call(torch, m))


@pytest.mark.parametrize('dtype', DTYPES)
def test_encoder_layer_unbatched_matches_torch(dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _enc_pair(torch, {'norm_first': True}, dtype)
    x = rng.standard_normal((L, D)).astype(dtype)
    m = _enc_masks(rng, {'src_key_padding_mask': 'bool', 'src_mask': 'bool'}, 1, L, dtype,
                   batched=False)
    got = _run_both(torch, ours, theirs, [x], dtype, _mha_call(torch, m))
    assert got[0].shape == (L, D)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('final_norm', [False, True])
@pytest.mark.parametrize('norm_first', [False, True])
def test_encoder_matches_torch(norm_first, final_norm, dtype):
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _enc_pair(torch, {'norm_first': norm_first, 'batch_first': True}, dtype,
                             layers=3, final_norm=final_norm)
    x = rng.standard_normal((N, L, D)).astype(dtype)
    m = _enc_masks(rng, {'mask': 'causal', 'src_key_padding_mask': 'bool'}, N, L, dtype)
    m['mask'] = m.pop('src_mask', None)
    m = {k: v for k, v in m.items() if v is not None}
    _run_both(torch, ours, theirs, [x], dtype, _mha_call(torch, m))


def test_encoder_copies_the_layer():
    layer = nn.TransformerEncoderLayer(D, NH, FF, rng=0)
    enc = nn.TransformerEncoder(layer, 2)
    p0 = dict(enc.layers[0].named_parameters())
    p1 = dict(enc.layers[1].named_parameters())
    for name, p in layer.named_parameters():
        assert p0[name] is not p and p1[name] is not p0[name]
        np.testing.assert_array_equal(p0[name].numpy(), p.numpy())
        np.testing.assert_array_equal(p1[name].numpy(), p.numpy())
    torch = _torch()
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NH, FF), 2,
                                        enable_nested_tensor=False)
    assert sorted(enc.state_dict()) == sorted(theirs.state_dict())


@pytest.mark.parametrize('norm_first', [False, True])
@pytest.mark.parametrize('activation', ['relu', 'gelu'])
def test_encoder_eval_matches_torch_fast_path(activation, norm_first):
    """In evaluation under no_grad PyTorch takes its fused fast path (and, for a padding mask,
    nested tensors, which give zeros at the padded positions); every unpadded position
    agrees, and so does the whole output without a padding mask."""
    torch = _torch()
    rng = np.random.default_rng(0)
    ours, theirs = _enc_pair(torch, {'norm_first': norm_first, 'batch_first': True,
                                     'activation': activation}, np.float32, layers=2,
                             dropout=0.2)
    # PyTorch's default, which it takes unless norm_first (one of its reasons not to)
    theirs.enable_nested_tensor = theirs.use_nested_tensor = not norm_first
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((N, L, D)).astype(np.float32)
    kpm = np.zeros((N, L), bool)
    kpm[0, 2:] = kpm[1, 3:] = True
    with torch.no_grad():
        want_plain = theirs(torch.from_numpy(x))
        want_kpm = theirs(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(kpm))
    assert np.all(want_kpm.numpy()[kpm] == 0) == (not norm_first)   # the fast path was taken
    _close(ours(x), want_plain, np.float32, 'eval, no mask')
    got = ours(x, src_key_padding_mask=kpm).numpy()
    np.testing.assert_allclose(got[~kpm], want_kpm.numpy()[~kpm], **TOL[np.float32])


# --- dropout -----------------------------------------------------------------------------------

def test_sdpa_dropout_statistics():
    """q = k = 0 makes every weight 1/S; with v the identity the output is the weights: after
    dropout each is 0 (with probability p) or 1/(S (1 - p))."""
    cr.manual_seed(0)
    S_, p = 10, 0.3
    q = np.zeros((200, 5, 4))
    v = np.broadcast_to(np.eye(S_), (200, S_, S_))
    out = F.scaled_dot_product_attention(q, np.zeros((200, S_, 4)), v, dropout_p=p)
    out = np.asarray(out)
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / (S_ * (1 - p)))
    assert abs(1 - kept.mean() - p) < 0.02                     # 10 000 draws: sd 0.005
    assert abs(out.sum(-1).mean() - 1) < 0.02                  # unbiased


def test_mha_and_encoder_dropout_train_eval():
    """Evaluation turns dropout off (equal to the module without dropout); training draws a
    new mask every call, unbiased: the mean over many calls approaches evaluation's output."""
    cr.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, D)).astype(np.float64)
    for make in (lambda p: nn.MultiheadAttention(D, NH, dropout=p, batch_first=True,
                                                 dtype=np.float64, rng=3),
                 lambda p: nn.TransformerEncoderLayer(D, NH, FF, dropout=p, batch_first=True,
                                                      dtype=np.float64, rng=3)):
        drop, plain = make(0.25), make(0.0)

        def run(m):
            out = m(x, x, x) if isinstance(m, nn.MultiheadAttention) else m(x)
            return (out[0] if isinstance(out, tuple) else out).numpy()

        reference = run(plain)
        drop.eval()
        np.testing.assert_allclose(run(drop), reference, rtol=1e-12, atol=1e-12)
        drop.train()
        a, b = run(drop), run(drop)
        assert not np.allclose(a, reference) and not np.allclose(a, b)
        if isinstance(drop, nn.MultiheadAttention):            # linear in the weights
            mean = np.mean([run(drop) for _ in range(400)], axis=0)
            assert np.abs(mean - reference).max() < 0.1 * np.abs(reference).max()


def test_mha_dropout_on_returned_weights_as_torch():
    """PyTorch returns the attention weights after dropout: rows no longer sum to one."""
    cr.manual_seed(0)
    m = nn.MultiheadAttention(D, NH, dropout=0.5, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((6, 2, D))
    _, w = m(x, x, x, average_attn_weights=False)
    w = w.numpy()
    assert np.any(w == 0) and not np.allclose(w.sum(-1), 1)
    m.eval()
    np.testing.assert_allclose(m(x, x, x)[1].numpy().sum(-1), 1, rtol=1e-12)


# --- errors ------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    x = np.zeros((2, 4, 8), np.float32)
    with pytest.raises(ShapeError, match=r'scaled_dot_product_attention.*\(2, 4, 8\).*\(2, 4, 7\)'):
        F.scaled_dot_product_attention(x, np.zeros((2, 4, 7), np.float32), x)
    with pytest.raises(ShapeError, match=r'attn_mask of shape \(3, 4\)'):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match='not both'):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.ones((4, 4), bool), is_causal=True)
    with pytest.raises(DTypeError, match='float32.*float64'):
        F.scaled_dot_product_attention(x, x.astype(np.float64), x)
    with pytest.raises(DTypeError, match='attn_mask must be boolean or floating'):
        F.scaled_dot_product_attention(x, x, x, attn_mask=np.ones((4, 4), np.int64))
    with pytest.raises(ValueError, match='divisible'):
        nn.MultiheadAttention(8, 3)
    m = nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
    with pytest.raises(DTypeError, match='query has dtype float64 but the parameters are '
                                         'float32'):
        m(x.astype(np.float64), x, x)
    with pytest.raises(ShapeError, match=r'key_padding_mask must be 2-D'):
        m(x, x, x, key_padding_mask=np.zeros(4, bool))
    with pytest.raises(ShapeError, match=r'3-D attn_mask must be \(N \* num_heads, L, S\) = '
                                         r'\(4, 4, 4\), got \(2, 4, 4\)'):
        m(x, x, x, attn_mask=np.zeros((2, 4, 4), bool))
    with pytest.raises(ShapeError, match='embed_dim=8'):
        m(np.zeros((2, 4, 6), np.float32), x, x)
    with pytest.raises(ValueError, match='is_causal=True is a hint'):
        m(x, x, x, is_causal=True)
    enc = nn.TransformerEncoderLayer(8, 2, 16, rng=0)
    with pytest.raises(DTypeError, match='float64'):
        enc(x.astype(np.float64))
    with pytest.raises(ValueError, match="activation must be 'relu', 'gelu'"):
        nn.TransformerEncoderLayer(8, 2, activation='swish')


# --- the composites under the transforms -------------------------------------------------------

def test_sdpa_second_derivatives_and_transforms():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4)) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])

    def f(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    check_grads(f, (q, k, v), order=2, modes=('fwd', 'rev'))
    want = f(q, k, v)
    np.testing.assert_allclose(cr.jit(f)(q, k, v), want, rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(f)(q, k, v), want, rtol=1e-12)

    # the mask as a traced argument (jit), unbatched and batched (vmap): the same numbers,
    # and the same zero rows
    def g(q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    np.testing.assert_allclose(cr.jit(g)(q, k, v, mask), want, rtol=1e-12)
    np.testing.assert_allclose(cr.vmap(g, in_axes=(0, 0, 0, None))(q, k, v, mask), want,
                               rtol=1e-12)
    masks = np.stack([mask, ~mask])
    np.testing.assert_allclose(cr.vmap(g)(q, k, v, masks),
                               [g(q[i], k[i], v[i], masks[i]) for i in range(2)], rtol=1e-12)

    def loss(q, mask):
        return cr.numpy.sum(g(q, k, v, mask) ** 2)

    gq = cr.grad(loss)(q, mask)
    assert np.all(np.isfinite(gq)) and np.all(gq[:, 1] == 0)
    np.testing.assert_allclose(cr.jit(cr.grad(loss))(q, mask), gq, rtol=1e-10)


def test_mha_functional_style_grad_matches_eager():
    """Modules are pytrees: cr.grad of a loss of the module gives the same parameter
    gradients as loss.backward()."""
    rng = np.random.default_rng(0)
    enc = nn.TransformerEncoderLayer(D, NH, FF, dropout=0.0, batch_first=True,
                                     dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 5, D))
    kpm = np.array([[False] * 4 + [True], [False] * 5])

    def loss(m):
        return cr.numpy.sum(m(x, src_key_padding_mask=kpm) ** 2)

    g = cr.grad(loss)(enc)
    enc(x, src_key_padding_mask=kpm).pow(2).sum().backward()
    for (name, p), (_, gp) in zip(enc.named_parameters(), g.named_parameters()):
        np.testing.assert_allclose(np.asarray(gp.data), p.grad.numpy(), rtol=1e-10,
                                   err_msg=name)
    np.testing.assert_allclose(cr.jit(loss)(enc), np.asarray(loss(enc)), rtol=1e-12)

    # the padding mask as a traced argument: jit(grad) and vmap over a batch of masks
    def loss2(m, x, kpm):
        return cr.numpy.sum(m(x, src_key_padding_mask=kpm) ** 2)

    gj = cr.jit(cr.grad(loss2))(enc, x, kpm)
    for (name, p), (_, gp) in zip(enc.named_parameters(), gj.named_parameters()):
        np.testing.assert_allclose(np.asarray(gp.data), p.grad.numpy(), rtol=1e-10,
                                   err_msg=name)
    with cr.no_grad():
        per_row = cr.vmap(lambda x, k: loss2(enc, x[None], k[None]))(x, kpm)
        want = [float(loss2(enc, x[i:i + 1], kpm[i:i + 1])) for i in range(2)]
    np.testing.assert_allclose(np.asarray(per_row), want, rtol=1e-12)


def test_deepcopy_keeps_settings():
    layer = nn.TransformerEncoderLayer(D, NH, FF, activation=nn.GELU('tanh'), norm_first=True,
                                       rng=0)
    c = copy.deepcopy(layer)
    assert c.norm_first and isinstance(c.activation, nn.GELU)
    assert c.activation is not layer.activation


def test_tensor_deepcopy_is_a_fresh_leaf():
    """TransformerEncoder deep-copies its layer: a copied Tensor is a new leaf (same values,
    requires_grad and grad, its own storage) that backward reaches; a non-leaf refuses."""
    w = nn.Parameter(np.arange(3.0))
    w.grad = cr.tensor(np.ones(3))
    c = copy.deepcopy(w)
    assert type(c) is nn.Parameter and c.requires_grad and c.is_leaf
    assert not np.shares_memory(c.numpy(), w.numpy())
    np.testing.assert_array_equal(c.grad.numpy(), w.grad.numpy())
    c.grad = None
    (c * c).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), [0.0, 2.0, 4.0])
    pair = copy.deepcopy([w, w])                               # one copy of a shared tensor
    assert pair[0] is pair[1]
    with pytest.raises(cr.core.GradientError, match='only leaf Tensors'):
        copy.deepcopy(w * 2)


def test_module_examples_run():
    import doctest

    from chainrule.nn import attention, transformer
    for mod in (attention, transformer):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
