"""Multi-head attention (003.mha, 004.mha), PyTorch's nn.MultiheadAttention arguments and names;
grouped-query attention with rotary positions (Llama's), Hugging Face's names.

    head_i    = Attention(Q W_iᵠ, K W_iᴷ, V W_iⱽ)            (003.mha; 000.mha never defines head_i)
    MultiHead = Concat(head_1, ..., head_h) Wᴼ

The h query projections W_iᵠ (E, E/h) side by side are one (E, E) matrix, and the same for
W_iᴷ and W_iⱽ; PyTorch stores the three stacked as in_proj_weight (3E, E), rows [Wᵠ; Wᴷ; Wⱽ]
(transposed, as Linear stores weights), and Wᴼ as the Linear out_proj. One projection of the
whole sequence, cut into h slices of E/h columns, gives every head's Q W_iᵠ at once.
"""
import numpy as np

from ..factories import zeros
from ..tensor import as_tensor, data_of
from . import functional as F
from . import init
from .layers import Linear, check_last_dim
from .module import Module, Parameter
from .positional import RotaryEmbedding


class MultiheadAttention(Module):
    """MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, kdim=None, vdim=None):
    000.mha / 003.mha, head_i = softmax(q_i k_iᵀ/√d) v_i, y = Concat(head_1..head_h) W_O.

    Parameters (PyTorch's names and shapes, E = embed_dim):
        in_proj_weight (3E, E), in_proj_bias (3E,)   [Wᵠ; Wᴷ; Wⱽ] and their biases
        out_proj.weight (E, E), out_proj.bias (E,)   Wᴼ
    in_proj_weight starts Xavier-uniform, out_proj.weight as any Linear, both biases at 0.
    dropout is applied to the attention weights while training. kdim and vdim (keys and
    values of another width) are not supported: they must be None or embed_dim.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, kdim=None, vdim=None):
        super().__init__()
        if not isinstance(num_heads, int) or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads}), a positive integer")
        for name, dim in (("kdim", kdim), ("vdim", vdim)):
            if dim not in (None, embed_dim):
                raise ValueError(f"MultiheadAttention: {name}={dim} is not supported, keys and values must have "
                                 f"embed_dim={embed_dim} features (pass {name}=None)")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(init.xavier_uniform_(zeros(3 * embed_dim, embed_dim)))
        self.in_proj_bias = Parameter(zeros(3 * embed_dim)) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """(output, weights): output shaped like query; weights (N, L, S) averaged over the heads, or
        (N, num_heads, L, S) with average_attn_weights=False, or None with need_weights=False.

        query (L, N, E), key and value (S, N, E) — (N, L, E) and (N, S, E) with batch_first — or
        unbatched (L, E), (S, E). Masks (True or -∞ means "may NOT attend"; floats are added):
        attn_mask (L, S) or (N*num_heads, L, S) (unbatched: (num_heads, L, S)), key_padding_mask (N, S)
        (unbatched: (S,)). is_causal=True only says that attn_mask is the causal mask (it must be
        given, as in PyTorch). A query with every key masked gets zero weights and attends to
        nothing (PyTorch returns NaN there when need_weights=True, and zeros otherwise).
        """
        E, H, d = self.embed_dim, self.num_heads, self.head_dim
        query, key, value, batched = self._as_batch_first(query, key, value)
        (N, L, _), S = query.shape, key.shape[1]
        mask = self._merged_mask(attn_mask, key_padding_mask, N, L, S, batched, is_causal, query)

        q, k, v = (x @ w.T for x, w in zip((query, key, value), self.in_proj_weight.split(E)))
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.split(E)
            q, k, v = q + b_q, k + b_k, v + b_v
        # Q W_iᵠ, K W_iᴷ, V W_iⱽ for every head i: columns i·d .. (i+1)·d, moved to a head axis (N, H, ·, d)
        q, k, v = (x.reshape(N, x.shape[1], H, d).transpose(1, 2) for x in (q, k, v))
        # head_i = Attention(Q W_iᵠ, K W_iᴷ, V W_iⱽ), all heads at once
        heads, weights = F.attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        # MultiHead = Concat(head_1, ..., head_h) Wᴼ
        out = self.out_proj(heads.transpose(1, 2).reshape(N, L, E))

        if not batched:
            out, weights = out[0], weights[0]
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, (weights.mean(dim=-3) if average_attn_weights else weights)

    def _as_batch_first(self, query, key, value):
        """query, key, value as (N, L, E), (N, S, E), (N, S, E), checked; and whether they came batched."""
        E = self.embed_dim
        batched = query.ndim == 3

        def layout(seq):  # the expected shape, in words
            return (f"(N, {seq}, {E})" if self.batch_first else f"({seq}, N, {E})") if batched else f"({seq}, {E})"

        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention expected query, key, value all batched {layout('L')} or all "
                             f"unbatched (L, {E}), got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        for name, x, seq in (("query", query, "L"), ("key", key, "S"), ("value", value, "S")):
            check_last_dim(f"MultiheadAttention {name}", x, E, layout(seq))
        shapes = f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)}"
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        if key.shape[:2] != value.shape[:2] or key.shape[0] != query.shape[0]:
            raise ValueError(f"MultiheadAttention expected key and value {layout('S')} with the same S and "
                             f"the query's N, got {shapes}")
        return query, key, value, batched

    def _merged_mask(self, attn_mask, key_padding_mask, N, L, S, batched, is_causal, like):
        """One float mask M added to the scores, broadcastable to (N, H, L, S), or None.

        A boolean mask becomes -∞ where True (masked) and 0 elsewhere; a float one is used as
        given; attn_mask and key_padding_mask add up, as PyTorch merges them.
        """
        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal=True is a hint that attn_mask is causal, so "
                             "attn_mask is needed: pass attn_mask=generate_square_subsequent_mask(L)")
        H = self.num_heads
        if batched:
            per_head, per_head_words = (N * H, L, S), "(N*num_heads, L, S)"
            padding_shape, padding_words = (N, S), "(N, S)"
        else:
            per_head, per_head_words = (H, L, S), "(num_heads, L, S)"
            padding_shape, padding_words = (S,), "(S,)"
        mask = None
        if attn_mask is not None:
            m = _additive(attn_mask, "attn_mask", like)
            if m.shape == per_head:
                m = m.reshape(N, H, L, S)
            elif m.shape != (L, S):
                raise ValueError(f"MultiheadAttention: attn_mask of shape {tuple(m.shape)}, expected (L, S) = "
                                 f"{(L, S)} or {per_head_words} = {per_head}")
            mask = m
        if key_padding_mask is not None:
            m = _additive(key_padding_mask, "key_padding_mask", like)
            if m.shape != padding_shape:
                raise ValueError(f"MultiheadAttention: key_padding_mask of shape {tuple(m.shape)}, expected "
                                 f"{padding_words} = {padding_shape}")
            m = m.reshape(N, 1, 1, S)  # the same keys hidden from every head and query
            mask = m if mask is None else mask + m
        return mask

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, " \
               f"batch_first={self.batch_first}"


class GroupedQueryAttention(Module):
    """GroupedQueryAttention(embed_dim, num_heads, num_kv_heads=None, bias=False, dropout=0.0, rope_base=10000.0)

    Causal self-attention in which each group of num_heads / num_kv_heads query heads shares one
    key/value head (GQA, Ainslie et al. 2023), with rotary position embeddings on the queries and
    keys: Llama's attention. With d = embed_dim / num_heads and H_kv = num_kv_heads:

        q_i = RoPE(x W_iᵠ),  k_j = RoPE(x W_jᴷ),  v_j = x W_jⱽ                   (j = 1 .. H_kv)
        head_i = softmax(q_i k_jᵀ/√d + M) v_j,  j the key/value head of query head i's group
        y = Concat(head_1 .. head_h) Wᴼ                                          (003.mha)

    num_kv_heads = num_heads is multi-head attention; 1 is multi-query attention. Only the H_kv
    key/value heads are projected and kept in a KV cache: num_heads / num_kv_heads times less
    cache than multi-head attention. Parameters (Hugging Face's Llama names, Linear layout):
        q_proj (E, E), k_proj (H_kv d, E), v_proj (H_kv d, E), o_proj (E, E)
    Query head i uses key/value head i // (num_heads / num_kv_heads), as Hugging Face's
    repeat_kv. rope_base=None: no rotary embedding. forward(x, cache=None): x (N, L, E) ->
    (N, L, E); cache, a dict, keeps the rotated keys and the values of earlier positions for
    generation (feed the prompt first, then one token at a time).
    """

    def __init__(self, embed_dim, num_heads, num_kv_heads=None, bias=False, dropout=0.0, rope_base=10000.0):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if not isinstance(num_heads, int) or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"GroupedQueryAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads}), a positive integer")
        if not isinstance(num_kv_heads, int) or num_kv_heads <= 0 or num_heads % num_kv_heads:
            raise ValueError(f"GroupedQueryAttention: num_kv_heads ({num_kv_heads}) must be a positive integer "
                             f"dividing num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.num_kv_heads = embed_dim, num_heads, num_kv_heads
        self.head_dim, self.dropout = embed_dim // num_heads, dropout
        self.q_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = Linear(embed_dim, num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = Linear(embed_dim, num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = Linear(embed_dim, embed_dim, bias=bias)
        self.rotary = None if rope_base is None else RotaryEmbedding(self.head_dim, rope_base)

    def forward(self, x, cache=None):
        if x.ndim != 3:
            raise ValueError(f"GroupedQueryAttention expected input (N, L, {self.embed_dim}), got {tuple(x.shape)}")
        check_last_dim("GroupedQueryAttention", x, self.embed_dim, f"(N, L, {self.embed_dim})")
        N, L, E = x.shape
        start = cache["k"].shape[2] if cache is not None and "k" in cache else 0
        if L > 1 and start:
            raise ValueError("GroupedQueryAttention: with a KV cache, feed the whole prompt first, then one token "
                             "at a time")
        # (N, L, heads · d) -> (N, heads, L, d): one slice of d columns per head
        q = self.q_proj(x).reshape(N, L, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = (proj(x).reshape(N, L, self.num_kv_heads, self.head_dim).transpose(1, 2)
                for proj in (self.k_proj, self.v_proj))
        if self.rotary is not None:  # positions start .. start + L - 1
            q, k = self.rotary(q, offset=start), self.rotary(k, offset=start)
        if cache is not None:
            if "k" in cache:
                k, v = F.cat([cache["k"], k], 2), F.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k.detach(), v.detach()
        heads = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=L > 1, enable_gqa=True)
        return self.o_proj(heads.transpose(1, 2).reshape(N, L, E))  # Concat(head_1..head_h) Wᴼ

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
                f"rope_base={None if self.rotary is None else self.rotary.base}")


def _additive(mask, name, like):
    """A boolean mask (True = may NOT attend) as 0 / -∞ in like's dtype and on like's device; a
    float mask cast to them."""
    data = data_of(mask)
    dtype = data.dtype if hasattr(data, "dtype") else np.asarray(data).dtype
    if dtype.kind == "b":
        return as_tensor(like.xp.where(like.xp.asarray(data), -np.inf, 0.0).astype(like.dtype))
    if dtype.kind == "f":
        return as_tensor(mask, like=like).to(like.device).astype(like.dtype)
    raise TypeError(f"MultiheadAttention: {name} must be boolean or floating, got {dtype}")
