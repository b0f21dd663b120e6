"""tinylm.nn.functional: functions over tensors, PyTorch's ``torch.nn.functional`` names and arguments.

Each is a thin wrapper that checks its arguments and calls the ops in tinylm.ops.
"""
import math

import numpy as np

from .. import ops
from ..random import generator
from ..tensor import Tensor, as_tensor, get_default_dtype

__all__ = ["cat", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "linear_gelu", "log_softmax",
           "matmul", "relu", "rms_norm", "sigmoid", "silu", "softmax", "split", "stack", "tanh", "where",
           "scaled_dot_product_attention", "attention", "causal_mask"]

cat, stack, split, where, matmul = ops.cat, ops.stack, ops.split, ops.where, ops.matmul


def relu(x):
    return x.relu()


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def gelu(x, approximate="none"):
    """x Φ(x); approximate='tanh' uses the tanh formula (GPT-2's)."""
    return ops.Gelu.apply(x, approximate=approximate)


def _linear_inputs(name, input, weight, bias):
    """(input, weight[, bias]) for LinearOp, after checking their shapes in one line."""
    if weight.ndim != 2 or input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"{name}: input {tuple(input.shape)} and weight {tuple(weight.shape)} do not fit: "
                         f"expected weight (out_features, in_features) and input (..., in_features)")
    if bias is None:
        return input, weight
    if tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{name}: bias of shape {tuple(bias.shape)}, expected ({weight.shape[0]},)")
    return input, weight, bias


def linear(input, weight, bias=None):
    """x Wᵀ + b, W (out_features, in_features), as one op (tinylm.ops.LinearOp)."""
    return ops.LinearOp.apply(*_linear_inputs("linear", input, weight, bias))


def linear_gelu(input, weight, bias=None, approximate="none"):
    """gelu(linear(input, weight, bias), approximate) as one op: the bias and GELU in one kernel."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"linear_gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return ops.LinearOp.apply(*_linear_inputs("linear_gelu", input, weight, bias), gelu=approximate)


def silu(x):
    """x σ(x), the SiLU or "swish" (the gate of SwiGLU)."""
    return ops.Silu.apply(x)


def swiglu(gate, up):
    """SiLU(gate) ⊙ up, SwiGLU's gate (gate = x W_gateᵀ, up = x W_upᵀ), as one op (tinylm.ops.SwiGLUOp):
    what silu(gate) * up computes, without the arrays in between. gate and up have one shape."""
    if tuple(gate.shape) != tuple(up.shape):
        raise ValueError(f"swiglu: gate {tuple(gate.shape)} and up {tuple(up.shape)} must have one shape")
    return ops.SwiGLUOp.apply(gate, up)


def softmax(x, dim=-1):
    return x.softmax(dim)


def log_softmax(x, dim=-1):
    return x.log_softmax(dim)


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """Mean (or sum, or per-item) of -log softmax(input)[target] (004.pretrain.loss).

    input: logits (N, C), (C,) or (N, C, d1, ...); target: class indices (N,), () or (N, d1, ...).
    Targets equal to ignore_index (e.g. padding) add nothing and are not counted in the mean.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    target = as_tensor(target).data  # an array on its own device (np.asarray refuses a CuPy array)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must be logits of shape (N, C), (C,) or (N, C, ...), got a scalar")
    if input.ndim == 1:
        logits, expected = input.unsqueeze(0), ()
    else:
        logits, expected = input, (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"cross_entropy: target of shape {target.shape} does not fit logits of shape "
                         f"{input.shape}: expected target shape {expected}")
    classes = logits.shape[1]
    bad = (target != ignore_index) & ((target < 0) | (target >= classes))
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(target[bad][0])} is out of range for "
                         f"{classes} classes (expected 0..{classes - 1} or ignore_index={ignore_index})")
    if logits.ndim > 2:  # (N, C, d1, ...) -> (N*d1*..., C)
        logits = logits.permute((0,) + tuple(range(2, logits.ndim)) + (1,)).reshape(-1, classes)
    rows = target.reshape(-1)
    loss = ops.CrossEntropyOp.apply(logits, target=logits.xp.asarray(rows), ignore_index=ignore_index,
                                  reduction=reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing `normalized_shape` axes."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {shape}")
    flat = x.reshape(x.shape[:x.ndim - len(shape)] + (-1,))
    if weight is None and bias is None:
        y = ops.LayerNormOp.apply(flat, eps=eps)
    else:  # a missing weight is 1 and a missing bias 0, constants without gradient
        weight = weight if weight is not None else Tensor(x.xp.ones(shape, dtype=x.dtype))
        bias = bias if bias is not None else Tensor(x.xp.zeros(shape, dtype=x.dtype))
        y = ops.LayerNormOp.apply(flat, weight.reshape(-1), bias.reshape(-1), eps=eps)
    return y.reshape(x.shape)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x²) + eps) * weight over the trailing `normalized_shape` axes (RMSNorm);
    eps=None takes the machine epsilon of the input's dtype, as PyTorch does."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.shape[input.ndim - len(shape):] != shape:
        raise ValueError(f"rms_norm: input of shape {input.shape} does not end with normalized_shape {shape}")
    if weight is not None and weight.shape != shape:
        raise ValueError(f"rms_norm: weight has shape {weight.shape}, expected {shape}")
    eps = float(np.finfo(input.dtype).eps) if eps is None else eps
    if len(shape) == 1:  # over the last axis, as the op computes: no views to make (and no ops for them)
        return ops.RMSNormOp.apply(*((input,) if weight is None else (input, weight)), eps=eps)
    flat = input.reshape(input.shape[:input.ndim - len(shape)] + (-1,))
    args = (flat,) if weight is None else (flat, weight.reshape(-1))
    return ops.RMSNormOp.apply(*args, eps=eps).reshape(input.shape)


def embedding(input, weight):
    """Rows of `weight` picked by the integer ids in `input`: out[..., :] = weight[input[...], :].
    Its gradient adds each output row's gradient into the row it came from (a scatter-add)."""
    ids = as_tensor(input).data  # an array on its own device (np.asarray refuses a CuPy array)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    rows = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        bad = int(ids.min() if ids.min() < 0 else ids.max())
        raise IndexError(f"embedding: id {bad} is out of range for a table of {rows} rows (expected 0..{rows - 1})")
    return weight[weight.xp.asarray(ids)]


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), so the expected
    value is unchanged (001.overfit). A no-op when not training or p == 0; the gradient flows
    through the same mask, since this is a plain multiplication."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be between 0 and 1, got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = generator().random(x.shape) >= p
    scale = (keep / (1 - p)).astype(x.dtype if x.dtype.kind == "f" else get_default_dtype())
    return x * Tensor(x.xp.asarray(scale))


def causal_mask(queries, keys, xp=np):
    """A boolean (queries, keys) array, True where query i may see key j, i.e. j <= i (the lower
    triangle, starting top-left as in PyTorch's is_causal)."""
    return xp.arange(keys)[None, :] <= xp.arange(queries)[:, None]


def _broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _grouped(query, key, value, attn_mask):
    """Grouped-query attention's shapes: query (..., Hq, L, E) with Hq = g·H heads and key, value
    (..., H, S, ·) become query (..., H, g, L, E), key and value (..., H, 1, S, ·), so query heads
    j·g .. j·g + g - 1 share key/value head j, broadcast across the group axis — what repeating
    each key/value head g times (PyTorch's repeat_interleave, Hugging Face's repeat_kv) computes,
    without copying K and V. A mask with a head axis (..., Hq or 1, L, S) gets the same group axis."""
    if query.ndim < 3 or key.ndim < 3 or value.ndim < 3:
        raise ValueError(f"attention with enable_gqa expects query (..., Hq, L, E), key and value (..., H, S, ·), "
                         f"got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    hq, h = query.shape[-3], key.shape[-3]
    if value.shape[-3] != h or hq % h:
        raise ValueError(f"attention with enable_gqa: {hq} query heads need a number of key/value heads that "
                         f"divides them, got key {tuple(key.shape)} and value {tuple(value.shape)}")
    query = query.reshape(query.shape[:-3] + (h, hq // h) + query.shape[-2:])
    if attn_mask is not None:
        attn_mask = as_tensor(attn_mask, like=query)
        if attn_mask.ndim >= 3 and attn_mask.shape[-3] == hq:
            attn_mask = attn_mask.reshape(attn_mask.shape[:-3] + (h, hq // h) + attn_mask.shape[-2:])
        elif attn_mask.ndim >= 3:
            attn_mask = attn_mask.unsqueeze(-3)
    return query, key.unsqueeze(-3), value.unsqueeze(-3), attn_mask


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
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

    enable_gqa: grouped-query attention, query (..., Hq, L, E) and key, value (..., H, S, ·) with
    H dividing Hq; query head i reads key/value head i // (Hq/H) (see _grouped). The weights
    come back as (..., Hq, L, S).
    """
    if enable_gqa and key.ndim >= 3 and query.ndim >= 3 and query.shape[-3] != key.shape[-3]:
        heads = query.shape[-3]
        out, weights = attention(*_grouped(query, key, value, attn_mask), dropout_p, is_causal, scale)
        return (out.reshape(out.shape[:-4] + (heads,) + out.shape[-2:]),
                weights.reshape(weights.shape[:-4] + (heads,) + weights.shape[-2:]))
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
        weights = ops.CausalSoftmaxOp.apply(query @ key.mT, scale=scale)
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
                                 scale=None, enable_gqa=False):
    """softmax(QKᵀ/√d_k + M) V (000.attn, 004.attn.steps), PyTorch's arguments and semantics.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev). A boolean attn_mask
    marks with True the keys a query MAY attend (the opposite of MultiheadAttention's masks);
    a floating one is added to the scores. scale defaults to 1/√E. enable_gqa=True lets key and
    value have fewer heads (axis -3) than query (grouped-query attention). See `attention`.

    Causal self-attention (is_causal, no attn_mask, no dropout, key shaped like query, value with
    their leading axes) is one op, CausalAttentionOp, whose kernels never keep the L×L weights;
    with enable_gqa, the key/value heads are broadcast over their group of query heads first (a
    view, no copy: see _grouped), and their gradients summed over the group by autograd.
    """
    if (enable_gqa and is_causal and attn_mask is None and dropout_p == 0 and query.ndim >= 3
            and key.ndim == value.ndim == query.ndim and query.shape[-3] != key.shape[-3]
            and key.shape[-2:] == query.shape[-2:] and key.shape[:-3] == query.shape[:-3] == value.shape[:-3]):
        heads = query.shape[-3]
        q, k, v, _ = _grouped(query, key, value, None)  # (..., H, g, L, ·) and (..., H, 1, L, ·)
        out = scaled_dot_product_attention(q, k.expand(q.shape), v.expand(q.shape[:-1] + v.shape[-1:]),
                                           is_causal=True, scale=scale)
        return out.reshape(out.shape[:-4] + (heads,) + out.shape[-2:])
    if (is_causal and attn_mask is None and dropout_p == 0 and query.ndim >= 2 and key.shape == query.shape
            and value.ndim == query.ndim and value.shape[:-1] == query.shape[:-1]):
        scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
        return ops.CausalAttentionOp.apply(query, key, value, scale=scale)
    return attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)[0]
