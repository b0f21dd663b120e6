"""tinylm.nn.functional: PyTorch's torch.nn.functional names over tinylm's ops."""
import math

import numpy as np

from ..functional import (cat, cross_entropy, dropout, embedding, gelu, layer_norm, log_softmax, relu,
                          sigmoid, softmax, split, stack, tanh, where)
from .. import ops
from ..tensor import as_tensor

__all__ = ["cat", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "log_softmax", "relu",
           "sigmoid", "softmax", "split", "stack", "tanh", "where", "scaled_dot_product_attention",
           "attention", "causal_mask"]


def causal_mask(queries, keys, xp=np):
    """A boolean (queries, keys) array, True where query i may see key j, i.e. j <= i (the lower
    triangle, starting top-left as in PyTorch's is_causal)."""
    return xp.arange(keys)[None, :] <= xp.arange(queries)[:, None]


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """Scaled dot-product attention, returning (output, weights): the one code path behind
    scaled_dot_product_attention and nn.MultiheadAttention.

    000.attn: Attention(Q, K, V) = softmax(QKᵀ/√d_k + M) V, in the steps of 004.attn.steps.
    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev) -> output (..., L, Ev),
    weights (..., L, S); leading axes broadcast. M is built from the masks:

    * attn_mask boolean: True means "may attend" (M = 0), False means masked (M = -∞);
    * attn_mask floating: added to the scores as it is (e.g. -∞ or a learned bias);
    * is_causal: query i sees keys j <= i only (no attn_mask allowed with it, as in PyTorch).

    A query that may attend to no key at all gets zero weights (so a zero output) instead of
    the 0/0 = NaN of a softmax over nothing, as PyTorch's scaled_dot_product_attention does.
    dropout_p > 0 drops weights (scaling the rest by 1/(1-p)) before they mix the values, and
    the returned weights are those dropped ones, as PyTorch's MultiheadAttention returns them.
    """
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(f"attention expected query (..., L, E), key (..., S, E), value (..., S, Ev), got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    (L, E), S = query.shape[-2:], key.shape[-2]
    if key.shape[-1] != E or value.shape[-2] != S:
        raise ValueError(f"attention expected key (..., S, {E}) and value (..., S, Ev) with the same S, got "
                         f"key {tuple(key.shape)} and value {tuple(value.shape)} for query {tuple(query.shape)}")
    if is_causal and attn_mask is not None:
        raise ValueError("attention: give attn_mask or is_causal=True, not both (fold the causal "
                         "mask into attn_mask instead)")
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    if is_causal and L == S:
        # the common case, causal self-attention, as one fused op: scale, mask the future, softmax
        weights = ops.CausalSoftmax.apply(query @ key.mT, scale=scale)
        if dropout_p > 0:
            weights = dropout(weights, dropout_p)
        return weights @ value, weights
    # 004.attn.steps 2 and 3: dot products of every query with every key, scaled by 1/√d_k
    scores = (query @ key.mT) * scale
    if attn_mask is not None:
        mask = as_tensor(attn_mask, like=query)
        expected = np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (L, S)
        if not _broadcasts_to(mask.shape, expected):
            raise ValueError(f"attention: attn_mask of shape {tuple(mask.shape)} does not broadcast to the "
                             f"scores' shape (..., L, S) = {expected}")
        if mask.dtype == np.bool_:
            scores = where(mask, scores, -math.inf)        # + M, M = 0 where allowed, -∞ where not
        elif mask.dtype.kind == "f":
            scores = scores + mask.astype(scores.dtype)    # + M, a float mask as given
        else:
            raise TypeError(f"attention: attn_mask must be boolean or floating, got {mask.dtype}")
    if is_causal:
        scores = where(causal_mask(L, S, scores.xp), scores, -math.inf)  # key j > query i: M = -∞
    # 004.attn.steps 3: softmax over the keys, α_ij = e^{s_ij} / Σ_j' e^{s_ij'} (001.softmax);
    # a query whose every key is masked would get a softmax over nothing (0/0): it gets zero weights
    blind = scores.xp.isneginf(scores.data).all(axis=-1, keepdims=True)
    if blind.any():
        weights = where(blind, 0.0, softmax(where(blind, 0.0, scores), dim=-1))
    else:
        weights = softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    # 004.attn.steps 4: output_i = Σ_j α_ij v_j, the weighted sum of the values (not 001.weighted's ⊙)
    return weights @ value, weights


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(QKᵀ/√d_k + M) V (000.attn, 004.attn.steps), PyTorch's arguments and semantics.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). A boolean attn_mask
    marks with True the keys a query MAY attend (the opposite of MultiheadAttention's masks);
    a floating one is added to the scores. scale defaults to 1/√E. See `attention` for details.
    """
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale)[0]
