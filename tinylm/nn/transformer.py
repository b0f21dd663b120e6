"""Transformer encoder and decoder layers and stacks (003.arch), PyTorch's arguments and names.

003.arch draws the encoder as N blocks of [multi-head self-attention, Add & Norm,
feed-forward, Add & Norm] and the decoder as N blocks of [masked self-attention, Add & Norm,
attention over the encoder's output, Add & Norm, feed-forward, Add & Norm]. Article 000 writes

    000.enc:  Encoder(X)    = LayerNorm(X + MHA(X, X, X) Wᴱ)
    000.dec:  Decoder(X, Y) = LayerNorm(X + MHA(X, Y, Y) Wᴰ)

which is only the first sublayer of each block. The corrections made here:

* every block ends with a position-wise feed-forward sublayer FFN(x) = W₂ f(W₁ x + b₁) + b₂
  (f = ReLU or GELU), with its own residual and LayerNorm: x = LayerNorm(x + FFN(x));
* the extra Wᴱ / Wᴰ of 000 is dropped: MHA already ends with its output projection Wᴼ;
* the decoder starts with MASKED self-attention over its own tokens (tgt_mask, usually the
  causal mask of generate_square_subsequent_mask: position i sees positions <= i only), and
  only then attends to the encoder's output ("memory") as the keys and values;
* the Mask that 000 passes around is used: attn masks and key-padding masks reach every MHA.

Post-norm (norm_first=False, the original Transformer and PyTorch's default) puts each
LayerNorm after its residual sum, as above; pre-norm (norm_first=True) normalises the
sublayer's input instead: x = x + Sublayer(LayerNorm(x)).
"""
import copy

import numpy as np

from . import functional as F
from ..tensor import Tensor, get_default_dtype
from .attention import MultiheadAttention
from .functional import causal_mask
from .layers import Dropout, LayerNorm, Linear
from .module import Module, ModuleList

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(activation):
    if callable(activation):
        return activation
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be 'relu', 'gelu' or a function, got {activation!r}")
    return _ACTIVATIONS[activation]


def generate_square_subsequent_mask(sz, dtype=None, device="cpu"):
    """The causal mask (sz, sz) for attn_mask/tgt_mask: 0 on and below the diagonal, -∞ above it,
    so position i attends to positions j <= i only (PyTorch's Transformer.generate_square_subsequent_mask),
    on `device` ('cpu' or 'cuda')."""
    return Tensor(np.where(causal_mask(sz, sz), 0.0, -np.inf).astype(dtype or get_default_dtype())).to(device)


class _Block(Module):
    """What the encoder and decoder blocks share: the feed-forward sublayer and Add & Norm."""

    def _feed_forward(self, x, dropout):
        # FFN(x) = W₂ f(W₁ x + b₁) + b₂, the same at every position
        return dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _add_norm(self, x, sublayer, norm):
        """Post-norm: LayerNorm(x + Sublayer(x)) (003.arch's Add & Norm); pre-norm: x + Sublayer(LayerNorm(x))."""
        return x + sublayer(norm(x)) if self.norm_first else norm(x + sublayer(x))


class TransformerEncoderLayer(_Block):
    """One encoder block of 003.arch: self-attention, then feed-forward, each with Add & Norm.

    TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
    layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True); submodules self_attn,
    linear1, dropout, linear2, norm1, norm2, dropout1, dropout2, as in PyTorch.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)      # W₁, b₁
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)      # W₂, b₂
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # after (or before) self-attention
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # after (or before) the feed-forward
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        """src (S, N, E), (N, S, E) with batch_first, or (S, E) -> the same shape."""
        def self_attention(x):  # MHA(X, X, X), the Wᴼ inside it (no extra Wᴱ)
            out = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask,
                                 need_weights=False, is_causal=is_causal)[0]
            return self.dropout1(out)

        x = self._add_norm(src, self_attention, self.norm1)
        # the feed-forward sublayer with its own residual + LayerNorm, missing from 000.enc
        return self._add_norm(x, lambda h: self._feed_forward(h, self.dropout2), self.norm2)


class TransformerDecoderLayer(_Block):
    """One decoder block of 003.arch: masked self-attention, attention over the encoder's output,
    feed-forward, each with Add & Norm.

    Same arguments as TransformerEncoderLayer; submodules self_attn, multihead_attn, linear1,
    dropout, linear2, norm1..3, dropout1..3, as in PyTorch.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)      # W₁, b₁
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)      # W₂, b₂
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # around the masked self-attention
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # around the attention over memory
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)  # around the feed-forward
        self.dropout1, self.dropout2, self.dropout3 = Dropout(dropout), Dropout(dropout), Dropout(dropout)
        self.activation = _activation(activation)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        """tgt (T, N, E) and memory (S, N, E) (batch_first: (N, T, E), (N, S, E); or unbatched) -> tgt's shape."""
        def masked_self_attention(x):  # 000.dec lacks this sublayer: tgt_mask keeps position i from seeing j > i
            out = self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                                 need_weights=False, is_causal=tgt_is_causal)[0]
            return self.dropout1(out)

        def cross_attention(x):  # 000.dec's MHA(X, Y, Y): queries from the decoder, keys and values from memory
            out = self.multihead_attn(x, memory, memory, attn_mask=memory_mask,
                                      key_padding_mask=memory_key_padding_mask, need_weights=False,
                                      is_causal=memory_is_causal)[0]
            return self.dropout2(out)

        x = self._add_norm(tgt, masked_self_attention, self.norm1)
        x = self._add_norm(x, cross_attention, self.norm2)
        # the feed-forward sublayer with its own residual + LayerNorm, missing from 000.dec
        return self._add_norm(x, lambda h: self._feed_forward(h, self.dropout3), self.norm3)


class _Stack(Module):
    """num_layers deep copies of one layer (layers.0, layers.1, ...; equal at the start, trained
    apart), then an optional final norm, as PyTorch's TransformerEncoder/Decoder build them."""

    def __init__(self, layer, num_layers, norm=None):
        super().__init__()
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{type(self).__name__}: num_layers must be a positive integer, got {num_layers!r}")
        self.layers = ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def _finish(self, x):
        return x if self.norm is None else self.norm(x)


class TransformerEncoder(_Stack):
    """Encoder(X) = the N encoder blocks of 003.arch applied in turn (×N), then `norm` if given."""

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        return self._finish(x)


class TransformerDecoder(_Stack):
    """The N decoder blocks of 003.arch applied in turn (×N), each attending to the same memory,
    then `norm` if given."""

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return self._finish(x)
