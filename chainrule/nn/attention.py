"""Attention: `scaled_dot_product_attention` and `MultiheadAttention`, as PyTorch's.

What this module lets you do: attend with PyTorch's functions and layer -- same arguments, same
mask conventions, same parameter names and layout (a PyTorch `state_dict` converted to NumPy
loads) -- eagerly with `loss.backward()`, or inside `grad`, `vmap` and `jit`:

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True, rng=0)
    >>> x = np.ones((3, 5, 8), np.float32)                      # (batch, sequence, features)
    >>> out, weights = mha(x, x, x, key_padding_mask=np.array([[False] * 4 + [True]] * 3))
    >>> out.shape, weights.shape, float(weights.numpy()[..., 4].max())
    ((3, 5, 8), (3, 5, 5), 0.0)

Everything here is a composite of existing operations (matrix products, `log_softmax`, `where`),
so derivatives of every order come from theirs; there is no derivative code in this file.

The mask conventions are PyTorch's, and they differ between the two functions: for
`scaled_dot_product_attention` a boolean `attn_mask` says which positions *take part* (True =
attend); for `MultiheadAttention` boolean `attn_mask` and `key_padding_mask` say which
positions are *masked out* (True = ignore). A float mask is added to the scores in both.

A query row whose keys are all masked out: `scaled_dot_product_attention` (and so
`MultiheadAttention(need_weights=False)`, which `TransformerEncoderLayer` uses) gives zero
attention there, as PyTorch's "safe softmax" does, with zero gradients; `MultiheadAttention`
with `need_weights=True` gives NaN there, as PyTorch's does.
"""

import math

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.core import ConcretizationError, DTypeError, ShapeError, dtype_of, shape_of
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.modules import Linear, Module, Parameter, factory_dtype

__all__ = ['scaled_dot_product_attention', 'multi_head_attention_forward', 'MultiheadAttention']


# --- masks ---------------------------------------------------------------------------------------

def _additive_mask(mask, dtype, masked_when, op, arg):
    """A boolean or float mask as a float array to add to the scores: 0 where a position takes
    part, -inf where it is masked out (`masked_when` is the boolean value that masks), a float
    mask as given (in the scores' dtype, so it never promotes them)."""
    dt = np.dtype(dtype_of(mask))
    if dt == np.bool_:
        keep = not masked_when
        try:                                        # known values: a NumPy constant
            m = np.asarray(ops.concrete(mask))
            return np.where(m == keep, 0.0, -np.inf).astype(dtype)
        except ConcretizationError:                 # traced (jit, vmap): the same, traced
            return ops.astype(ops.where(ops.equal(mask, keep), 0.0, -np.inf), dtype)
    if dt.kind != 'f':
        raise DTypeError(f'{op}: {arg} must be boolean or floating, got dtype {dt}')
    return mask if dt == dtype else ops.astype(mask, dtype)


def _dead_rows(bias):
    """Which query rows of an additive mask have every key masked out (-inf): a boolean array
    with the last axis kept (size 1), None when no row is, or a traced boolean when the mask
    is only known abstractly."""
    try:
        b = np.asarray(ops.concrete(bias))
    except ConcretizationError:
        return cnp.all(ops.equal(bias, -np.inf), axis=-1, keepdims=True)
    if b.shape[-1] == 0:
        return None
    dead = np.all(b == -np.inf, axis=-1, keepdims=True)
    return dead if dead.any() else None


def _softmax_rows(scores, bias, safe):
    """`softmax(scores + bias)` over the last axis. With `safe`, rows whose keys are all masked
    out give zeros instead of NaN (PyTorch's safe softmax): their scores are replaced by zeros
    before the softmax (so no NaN is ever formed, not even in the backward pass) and their
    probabilities by zeros after it."""
    if bias is not None:
        scores = scores + bias
    dead = _dead_rows(bias) if safe and bias is not None else None
    if dead is None:
        return F.softmax(scores, -1)
    zero = np.zeros((), dtype_of(scores))
    return ops.where(dead, zero, F.softmax(ops.where(dead, zero, scores), -1))


def _check_broadcast(op, arg, s, target):
    try:
        ok = np.broadcast_shapes(s, target) == tuple(target)
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f'{op}: {arg} of shape {s} cannot be broadcast to the attention '
                         f'scores\' shape {tuple(target)}')


# --- scaled dot-product attention ------------------------------------------------------------

def _float_dtype(op, **arrays):
    dts = {k: np.dtype(dtype_of(a)) for k, a in arrays.items()}
    first = next(iter(dts.values()))
    if first.kind != 'f' or any(d != first for d in dts.values()):
        raise DTypeError(f'{op}: ' + ', '.join(f'{k} has dtype {d}' for k, d in dts.items()) +
                         '; they must be one floating dtype (cast with .float() or .double())')
    return first


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0,
                                 is_causal=False, scale=None, enable_gqa=False):
    """`softmax(query @ key^T * scale + mask) @ value`, PyTorch's
    `F.scaled_dot_product_attention`.

    Args:
        query: `(..., L, E)`.
        key: `(..., S, E)`.
        value: `(..., S, Ev)`; the leading axes of the three broadcast together.
        attn_mask: optional, broadcastable to `(..., L, S)`: boolean (True = take part), or
            float (added to the scores, in the query's dtype).
        dropout_p: dropout probability on the attention weights (applied whenever it is
            positive, as in PyTorch: pass 0 in evaluation).
        is_causal: mask out the keys after each query (the upper triangle, aligned at the top
            left as PyTorch's); not together with `attn_mask`.
        scale: the factor on the scores; `1/sqrt(E)` by default.
        enable_gqa: grouped-query attention: `key` and `value` with fewer heads (axis -3) than
            `query`, each shared by a group of query heads.

    Returns:
        `(..., L, Ev)`. A query row whose keys are all masked out gives zeros (with zero
        gradients), as PyTorch's.

    Raises:
        ShapeError: shapes that do not fit (named with the shapes).
        DTypeError: query, key and value of different or non-floating dtypes.
    """
    op = 'scaled_dot_product_attention'
    sq, sk, sv = shape_of(query), shape_of(key), shape_of(value)
    if len(sq) < 2 or len(sk) < 2 or len(sv) < 2 or sq[-1] != sk[-1] or sk[-2] != sv[-2]:
        raise ShapeError(f'{op}: query {sq}, key {sk} and value {sv} do not fit: they must be '
                         '(..., L, E), (..., S, E) and (..., S, Ev)')
    dt = _float_dtype(op, query=query, key=key, value=value)
    if enable_gqa:
        key, value = _repeat_heads(op, query, key, value)
        sk = shape_of(key)
    L, S = sq[-2], sk[-2]
    scores_shape = np.broadcast_shapes(sq[:-2], sk[:-2], shape_of(value)[:-2]) + (L, S)
    bias = None
    if is_causal:
        if attn_mask is not None:
            raise ValueError(f'{op}: pass either attn_mask or is_causal=True, not both')
        bias = np.where(np.tril(np.ones((L, S), bool)), 0.0, -np.inf).astype(dt)
    elif attn_mask is not None:
        _check_broadcast(op, 'attn_mask', shape_of(attn_mask), scores_shape)
        bias = _additive_mask(attn_mask, dt, False, op, 'attn_mask')
    s = 1 / math.sqrt(sq[-1]) if scale is None else scale
    scores = ops.matmul(query * np.asarray(s, dt), cnp.swapaxes(key, -1, -2))
    p = _softmax_rows(scores, bias, safe=True)
    if dropout_p > 0:
        p = F.dropout(p, dropout_p, training=True)
    return ops.matmul(p, value)


def _repeat_heads(op, query, key, value):
    sq, sk, sv = shape_of(query), shape_of(key), shape_of(value)
    if len(sq) < 3 or len(sk) < 3 or len(sv) < 3 or sk[-3] != sv[-3] or sq[-3] % sk[-3]:
        raise ShapeError(f'{op}: enable_gqa needs query {sq}, key {sk} and value {sv} with '
                         'heads on axis -3, the query\'s a multiple of the key\'s and value\'s')
    g = sq[-3] // sk[-3]
    if g == 1:
        return key, value
    return cnp.repeat(key, g, axis=-3), cnp.repeat(value, g, axis=-3)


# --- multi-head attention ----------------------------------------------------------------------

def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    """PyTorch's `F.multi_head_attention_forward`: sequence-first inputs `(L, N, E)`,
    `(S, N, kdim)`, `(S, N, vdim)` (or unbatched `(L, E)`, ...), the parameters passed in.
    `MultiheadAttention` documents the arguments.

    Returns:
        `(attn_output (L, N, E), attn_weights or None)`.
    """
    return _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight,
                in_proj_bias, bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight,
                out_proj_bias, training, key_padding_mask, need_weights, attn_mask,
                use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight,
                static_k, static_v, average_attn_weights, is_causal, batch_first=False)


def _same_map(fn, query, key, value):
    """`fn` applied to query, key and value, once per distinct object (so that self-attention,
    `query is key is value`, stays recognisable and costs one operation)."""
    q = fn(query)
    k = q if key is query else fn(key)
    v = q if value is query else k if value is key else fn(value)
    return q, k, v


def _mha(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
         bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias, training,
         key_padding_mask, need_weights, attn_mask, use_separate_proj_weight, q_proj_weight,
         k_proj_weight, v_proj_weight, static_k, static_v, average_attn_weights, is_causal,
         *, batch_first):
    """`multi_head_attention_forward` for either layout; the work is done batch first."""
    op = 'multi_head_attention_forward'
    batched = _check_mha_shapes(op, query, key, value, key_padding_mask, attn_mask, num_heads,
                                batch_first)
    if not batched:                      # one sequence: a batch of one, removed at the end
        query, key, value = _same_map(lambda t: cnp.expand_dims(t, 0), query, key, value)
        if key_padding_mask is not None:
            key_padding_mask = cnp.expand_dims(key_padding_mask, 0)
    elif not batch_first:
        query, key, value = _same_map(lambda t: cnp.swapaxes(t, 0, 1), query, key, value)
    N, L, E = shape_of(query)
    if E != embed_dim_to_check:
        raise ShapeError(f'{op}: query has {E} features (last axis of {shape_of(query)}), '
                         f'the layer was built for embed_dim={embed_dim_to_check}')
    H = num_heads
    Eh = E // H
    if Eh * H != E:
        raise ShapeError(f'{op}: embed_dim {E} is not divisible by num_heads {H}')
    if is_causal and attn_mask is None:
        raise ValueError(f'{op}: is_causal=True is a hint that attn_mask is the causal mask; '
                         'pass attn_mask too (True above the diagonal: '
                         'np.triu(np.ones((L, L), bool), 1)), or use '
                         'scaled_dot_product_attention(is_causal=True)')
    dt = np.dtype(dtype_of(query))

    # masks, as additive float masks (True = masked out)
    if attn_mask is not None:
        attn_mask = _additive_mask(attn_mask, dt, True, op, 'attn_mask')
        if len(shape_of(attn_mask)) == 3:                        # (N * H, L, S)
            attn_mask = ops.reshape(attn_mask, (N, H) + shape_of(attn_mask)[1:])
    if key_padding_mask is not None:
        key_padding_mask = _additive_mask(key_padding_mask, dt, True, op, 'key_padding_mask')

    if bias_k is not None or bias_v is not None:
        if bias_k is None or bias_v is None:
            raise ValueError(f'{op}: bias_k and bias_v go together; got only one')
        if static_k is not None or static_v is not None:
            raise ValueError(f'{op}: bias_k/bias_v cannot be added to static_k/static_v')
    if query is key and key is value and not use_separate_proj_weight and bias_k is None:
        # self-attention: one product with the packed weight, split into q, k, v by heads
        qkv = ops.reshape(F.linear(query, in_proj_weight, in_proj_bias), (N, L, 3, H, Eh))
        qkv = cnp.transpose(qkv, (2, 0, 3, 1, 4))                   # (3, N, H, L, Eh)
        q, k, v = qkv[0], qkv[1], qkv[2]
    else:
        q, k, v = _projections(query, key, value, E, in_proj_weight, in_proj_bias,
                               use_separate_proj_weight, q_proj_weight, k_proj_weight,
                               v_proj_weight)
        if bias_k is not None:
            k = cnp.concatenate([k, cnp.broadcast_to(ops.reshape(bias_k, (1, 1, E)),
                                                     (N, 1, E))], 1)
            v = cnp.concatenate([v, cnp.broadcast_to(ops.reshape(bias_v, (1, 1, E)),
                                                     (N, 1, E))], 1)
            attn_mask, key_padding_mask = _pad_masks(attn_mask, key_padding_mask)
        q, k, v = (_heads(t, N, H, Eh) for t in (q, k, v))      # (N, H, L or S, Eh)
    if static_k is not None:
        k = _static(op, 'static_k', static_k, N, H, Eh)
    if static_v is not None:
        v = _static(op, 'static_v', static_v, N, H, Eh)
    if add_zero_attn:
        k = cnp.concatenate([k, np.zeros((N, H, 1, Eh), dt)], 2)
        v = cnp.concatenate([v, np.zeros((N, H, 1, Eh), dt)], 2)
        attn_mask, key_padding_mask = _pad_masks(attn_mask, key_padding_mask)
    S = shape_of(k)[2]

    bias = attn_mask
    if key_padding_mask is not None:
        _check_broadcast(op, 'key_padding_mask', shape_of(key_padding_mask), (N, S))
        kpm = ops.reshape(key_padding_mask, (N, 1, 1, S))
        bias = kpm if bias is None else bias + kpm
    if bias is not None:
        _check_broadcast(op, 'attn_mask', shape_of(bias), (N, H, L, S))
    if not training:
        dropout_p = 0.0

    if need_weights:
        scores = ops.matmul(q * np.asarray(1 / math.sqrt(Eh), dt), cnp.swapaxes(k, -1, -2))
        w = _softmax_rows(scores, bias, safe=False)
        if dropout_p > 0:
            w = F.dropout(w, dropout_p, training=True)
        out = ops.matmul(w, v)
    else:
        out = scaled_dot_product_attention(q, k, v, bias, dropout_p)
        w = None
    out = ops.reshape(cnp.swapaxes(out, 1, 2), (N, L, E))      # heads side by side again
    out = F.linear(out, out_proj_weight, out_proj_bias)
    if w is not None and average_attn_weights:
        w = cnp.mean(w, axis=1)
    if not batched:
        out = ops.reshape(out, (L, E))
        w = None if w is None else ops.reshape(w, shape_of(w)[1:])
    elif not batch_first:
        out = cnp.swapaxes(out, 0, 1)
    return out, w


def _projections(query, key, value, E, in_proj_weight, in_proj_bias, separate, q_proj_weight,
                 k_proj_weight, v_proj_weight):
    """The input projections of `(N, L, E)`, `(N, S, kdim)`, `(N, S, vdim)`."""
    if separate:
        ws = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        ws = (in_proj_weight[:E], in_proj_weight[E:2 * E], in_proj_weight[2 * E:])
    bs = (None,) * 3 if in_proj_bias is None else \
        (in_proj_bias[:E], in_proj_bias[E:2 * E], in_proj_bias[2 * E:])
    return tuple(F.linear(t, w, b) for t, w, b in zip((query, key, value), ws, bs))


def _heads(t, N, H, Eh):
    """(N, S, H * Eh) -> (N, H, S, Eh)."""
    return cnp.swapaxes(ops.reshape(t, (N, shape_of(t)[1], H, Eh)), 1, 2)


def _static(op, arg, t, N, H, Eh):
    s = shape_of(t)
    if len(s) != 3 or s[0] != N * H or s[2] != Eh:
        raise ShapeError(f'{op}: {arg} must be (N * num_heads, S, head_dim) = '
                         f'({N * H}, S, {Eh}), got {s}')
    return ops.reshape(t, (N, H) + s[1:])


def _pad_masks(attn_mask, key_padding_mask):
    """One more key (bias_k or the zero attention): a column of zeros (take part) on each
    additive mask."""
    out = []
    for m in (attn_mask, key_padding_mask):
        if m is not None:
            s = shape_of(m)
            m = cnp.concatenate([m, np.zeros(s[:-1] + (1,), dtype_of(m))], -1)
        out.append(m)
    return out


def _check_mha_shapes(op, query, key, value, key_padding_mask, attn_mask, num_heads,
                      batch_first):
    """Batched (3-D) or unbatched (2-D) inputs, with masks to match, as PyTorch checks them.
    Returns whether the input is batched."""
    sq, sk, sv = shape_of(query), shape_of(key), shape_of(value)
    names = f'query {sq}, key {sk}, value {sv}'
    if len(sq) not in (2, 3):
        raise ShapeError(f'{op}: query must be 2-D (unbatched) or 3-D (batched), got {sq}')
    batched = len(sq) == 3
    kind, kpm_shape = ('a batched (3-D)', '2-D (N, S)') if batched else \
        ('an unbatched (2-D)', '1-D (S,)')
    if len(sk) != len(sq) or len(sv) != len(sq):
        raise ShapeError(f'{op}: {kind} query needs key and value of as many axes: {names}')
    if key_padding_mask is not None and len(shape_of(key_padding_mask)) != len(sq) - 1:
        raise ShapeError(f'{op}: with {kind[kind.index(" ") + 1:]} inputs key_padding_mask '
                         f'must be {kpm_shape}, got {shape_of(key_padding_mask)}')
    if sk[:-1] != sv[:-1]:
        raise ShapeError(f'{op}: key and value must have one sequence length and batch: '
                         f'{names}')
    if attn_mask is not None:
        sm = shape_of(attn_mask)
        seq = 1 if batched and batch_first else 0
        L, S = sq[seq], sk[seq]
        N = 1 if not batched else sq[1 - seq]
        if len(sm) == 2:
            if sm != (L, S):
                raise ShapeError(f'{op}: a 2-D attn_mask must be (L, S) = ({L}, {S}), got {sm}')
        elif len(sm) == 3:
            if sm != (N * num_heads, L, S):
                raise ShapeError(f'{op}: a 3-D attn_mask must be (N * num_heads, L, S) = '
                                 f'({N * num_heads}, {L}, {S}), got {sm}')
        else:
            raise ShapeError(f'{op}: attn_mask must be 2-D or 3-D, got {sm}')
    return batched


class MultiheadAttention(Module):
    """Multi-head attention, PyTorch's `nn.MultiheadAttention`: the query, key and value
    projected, split into `num_heads` heads, attended separately, joined and projected out.

    Args:
        embed_dim: features of the query (and of the output).
        num_heads: heads; must divide `embed_dim`.
        dropout: dropout probability on the attention weights in training.
        bias: learn biases for the input and output projections.
        add_bias_kv: learn one more key and value (`bias_k`, `bias_v`, shape (1, 1, E)),
            appended to every sequence.
        add_zero_attn: append a key and value of zeros to every sequence.
        kdim, vdim: features of key and value (default `embed_dim`); when they differ from it
            the projections are `q_proj_weight`, `k_proj_weight`, `v_proj_weight` instead of
            the packed `in_proj_weight` `(3 E, E)` -- PyTorch's names and layout.
        batch_first: inputs and outputs `(N, L, E)` rather than `(L, N, E)`.
        device, dtype: the CPU; parameter dtype (float32, or `cr.set_default_dtype`'s).
        rng: seed or Generator for the initial values (PyTorch's distributions: Xavier-uniform
            projections, zero biases).

    Calling it: `mha(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)` returns
    `(attn_output, attn_weights)`: `(N, L, E)` (or `(L, N, E)`, or `(L, E)` unbatched) and the
    weights `(N, L, S)` averaged over heads, `(N, H, L, S)` with
    `average_attn_weights=False`, or None with `need_weights=False`. Boolean masks mark with
    True what is *ignored*: `key_padding_mask` `(N, S)` (padding keys), `attn_mask` `(L, S)` or
    `(N * num_heads, L, S)`; float masks are added to the scores.

    Raises:
        DTypeError: an input whose dtype is not the parameters' (PyTorch raises too).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
                 add_zero_attn=False, kdim=None, vdim=None, batch_first=False,
                 device=None, dtype=None, rng=None):
        dtype = factory_dtype(device, dtype, 'MultiheadAttention')
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f'MultiheadAttention: embed_dim and num_heads must be positive, '
                             f'got {embed_dim} and {num_heads}')
        if embed_dim % num_heads:
            raise ValueError(f'MultiheadAttention: embed_dim {embed_dim} must be divisible by '
                             f'num_heads {num_heads}')
        rng = init.get_rng(rng)
        E = embed_dim
        self.embed_dim, self.num_heads, self.dropout = E, num_heads, dropout
        self.kdim = E if kdim is None else kdim
        self.vdim = E if vdim is None else vdim
        self.head_dim = E // num_heads
        self.batch_first = batch_first
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(init.xavier_uniform((3 * E, E), rng=rng, dtype=dtype))
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = Parameter(init.xavier_uniform((E, E), rng=rng, dtype=dtype))
            self.k_proj_weight = Parameter(init.xavier_uniform((E, self.kdim), rng=rng,
                                                               dtype=dtype))
            self.v_proj_weight = Parameter(init.xavier_uniform((E, self.vdim), rng=rng,
                                                               dtype=dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * E, dtype)) if bias else None
        if add_bias_kv:
            self.bias_k = Parameter(init.xavier_normal((1, 1, E), rng=rng, dtype=dtype))
            self.bias_v = Parameter(init.xavier_normal((1, 1, E), rng=rng, dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype, rng=rng)
        if bias:
            self.out_proj.bias.data[...] = 0

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False):
        self._check_dtypes(query=query, key=key, value=value)
        return _mha(query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight,
                    self.in_proj_bias, self.bias_k, self.bias_v, self.add_zero_attn,
                    self.dropout, self.out_proj.weight, self.out_proj.bias, self.training,
                    key_padding_mask, need_weights, attn_mask, not self._qkv_same_embed_dim,
                    self.q_proj_weight, self.k_proj_weight, self.v_proj_weight, None, None,
                    average_attn_weights, is_causal, batch_first=self.batch_first)

    def _check_dtypes(self, **inputs):
        want = np.dtype(self.out_proj.weight.dtype)
        for k, x in inputs.items():
            d = np.dtype(dtype_of(x))
            if d != want:
                raise DTypeError(
                    f'{type(self).__name__}: {k} has dtype {d} but the parameters are {want}; '
                    f'convert the input (x.astype(np.{want})) or the module (.to(np.{d}))')

    def extra_repr(self):
        return (f'embed_dim={self.embed_dim}, num_heads={self.num_heads}, '
                f'dropout={self.dropout}, batch_first={self.batch_first}')
