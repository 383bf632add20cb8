"""`TransformerEncoderLayer` and `TransformerEncoder`, as PyTorch's.

What this module lets you do: build a transformer encoder with PyTorch's constructor arguments
and parameter names (`layers.0.self_attn.in_proj_weight`, `layers.0.linear1.weight`,
`layers.0.norm1.weight`, ...), so a PyTorch `state_dict` converted to NumPy loads, and train it
eagerly or functionally:

    >>> import numpy as np
    >>> from chainrule import nn
    >>> layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
    ...                                    batch_first=True, rng=0)
    >>> encoder = nn.TransformerEncoder(layer, num_layers=2)
    >>> encoder(np.ones((4, 5, 8), np.float32)).shape
    (4, 5, 8)
    >>> sorted(encoder.state_dict())[:2]
    ['layers.0.linear1.bias', 'layers.0.linear1.weight']

Both are composites of `MultiheadAttention`, `Linear`, `LayerNorm` and `Dropout`.

One difference from PyTorch: in evaluation under `torch.no_grad()`, PyTorch's encoder may take
its "fast path", which for a `src_key_padding_mask` turns the batch into nested tensors and
returns zeros at the padded positions; chainrule computes those positions as PyTorch's
ordinary path does (numbers nobody should read, as the keys there are padding). Every other
position agrees.
"""

import copy

import numpy as np

from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.attention import MultiheadAttention
from chainrule.nn.containers import ModuleList
from chainrule.nn.modules import Dropout, LayerNorm, Linear, Module, factory_dtype

__all__ = ['TransformerEncoderLayer', 'TransformerEncoder']

_ACTIVATIONS = {'relu': F.relu, 'gelu': F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block, each with a residual connection and a layer
    norm: PyTorch's `nn.TransformerEncoderLayer`.

    Post-norm (the default): `x = norm1(x + sa(x)); x = norm2(x + ff(x))`. With
    `norm_first=True`: `x = x + sa(norm1(x)); x = x + ff(norm2(x))`. `ff(x)` is
    `linear2(dropout(activation(linear1(x))))`, and `sa` and `ff` end with dropout.

    Args:
        d_model: features of each position.
        nhead: attention heads.
        dim_feedforward: width of the feed-forward block.
        dropout: dropout probability (attention weights, feed-forward, residual branches).
        activation: 'relu', 'gelu', or a callable (a function or a module).
        layer_norm_eps: the layer norms' epsilon.
        batch_first: inputs `(N, L, E)` rather than `(L, N, E)`.
        norm_first: pre-norm instead of post-norm.
        bias: learn biases in the linear layers and layer norms.
        device, dtype: the CPU; parameter dtype (float32, or `cr.set_default_dtype`'s).
        rng: seed or Generator for the initial values.

    Calling it: `layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`, with
    `MultiheadAttention`'s mask conventions (boolean True = ignored); `is_causal` is PyTorch's
    hint that `src_mask` is the causal mask (the mask is what counts).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation='relu',
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
                 device=None, dtype=None, rng=None):
        dtype = factory_dtype(device, dtype, 'TransformerEncoderLayer')
        rng = init.get_rng(rng)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype, rng=rng)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, rng=rng)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, rng=rng)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' "
                                 f'or a callable, got {activation!r}')
            self._activation = _ACTIVATIONS[activation]
        elif callable(activation):
            self._activation = activation
            if isinstance(activation, Module):
                self.activation = activation       # a submodule, as PyTorch registers it
        else:
            raise TypeError(f'TransformerEncoderLayer: activation must be a string or a '
                            f'callable, got {type(activation).__name__}')

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self._activation(self.linear1(x))))
        return self.dropout2(x)

    def extra_repr(self):
        return f'norm_first={self.norm_first}'


class TransformerEncoder(Module):
    """A stack of `num_layers` copies of `encoder_layer` (deep copies: each has its own
    parameters, all starting equal, as PyTorch's), then an optional final `norm`.

    Args:
        encoder_layer: a `TransformerEncoderLayer` (or any module with its call signature).
        num_layers: how many copies.
        norm: an optional module applied to the output (e.g. a `LayerNorm`).
        enable_nested_tensor, mask_check: accepted for PyTorch's signature; they only choose
            PyTorch's fast path, which chainrule does not have.

    Calling it: `encoder(src, mask=None, src_key_padding_mask=None, is_causal=None)`.
    """

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
                 mask_check=True):
        if not isinstance(encoder_layer, Module):
            raise TypeError(f'TransformerEncoder: encoder_layer must be a Module, got '
                            f'{type(encoder_layer).__name__}')
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        if self.norm is not None:
            x = self.norm(x)
        return x

    def extra_repr(self):
        return f'num_layers={self.num_layers}'
