"""The attention layers' gradients derived by hand, in plain NumPy (no tinylm ops, no autograd).

Each layer has a NumPy forward that returns (output, saved) and a backward that turns
dL/d(output) into dL/d(every input and parameter), one equation per line. The *_formula
functions wrap them in the signature tinylm.check.compare expects,

    formula(grad_out, **arrays) -> {name: gradient},

and CASES holds small float64 examples (the only part that uses tinylm itself):
CASES[name]() -> (fn, formula, inputs) for compare(fn, formula, inputs), where fn computes the
same thing with tinylm's layers, so the three answers (autograd, central differences, these
formulas) can be set side by side:

    from tinylm.check import compare
    from tinylm.check.attention_formulas import CASES
    print(compare(*CASES["mha"]()))

Notation: G = dL/d(output) of the step at hand; a Linear is y = x Wᵀ + b, rows are positions;
⊙ is element-wise; Σ_j sums over the last axis. Arrays are batch-first, (N, L, E).
"""
import numpy as np

from ..nn import functional as F
from ..nn.attention import MultiheadAttention
from ..nn.functional import scaled_dot_product_attention
from ..nn.layers import LayerNorm
from ..nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer, generate_square_subsequent_mask
from ..tensor import Tensor
from .compare import use_tensors

# --- softmax ---------------------------------------------------------------------------------


def softmax(x):
    """y_i = e^{x_i - m} / Σ_j e^{x_j - m}, m = max_j x_j, along the last axis (001.softmax)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(g, y):
    """dx = (diag(y) - y yᵀ) g, the Jacobian-vector product, row by row."""
    return y * (g - (g * y).sum(axis=-1, keepdims=True))        # dx_i = y_i (g_i - Σ_j g_j y_j)


# --- layer norm --------------------------------------------------------------------------------


def layer_norm(x, weight, bias, eps=1e-5):
    """y = x̂ ⊙ γ + β, x̂ = (x - μ) / √(σ² + ε), over the last axis; saved (x̂, 1/√(σ² + ε), γ)."""
    mu = x.mean(axis=-1, keepdims=True)                         # μ = mean_j x_j
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)  # 1/√(σ² + ε), σ² biased
    xhat = (x - mu) * rstd                                      # x̂ = (x - μ) / √(σ² + ε)
    return xhat * weight + bias, (xhat, rstd, weight)           # y = x̂ ⊙ γ + β


def layer_norm_backward(g, saved):
    """(dx, dγ, dβ) of y = x̂ ⊙ γ + β."""
    xhat, rstd, weight = saved
    rows = tuple(range(g.ndim - 1))
    d_bias = g.sum(axis=rows)                                   # dβ = Σ_rows G
    d_weight = (g * xhat).sum(axis=rows)                        # dγ = Σ_rows G ⊙ x̂
    gh = g * weight                                             # ĝ = G ⊙ γ = dL/dx̂
    # dx = (ĝ - mean_j ĝ - x̂ mean_j(ĝ ⊙ x̂)) / √(σ² + ε): the mean and the variance depend on x too
    dx = rstd * (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, d_weight, d_bias


# --- linear ------------------------------------------------------------------------------------


def linear(x, weight, bias):
    return x @ weight.T + bias                                  # y = x Wᵀ + b


def linear_backward(g, x, weight):
    """(dx, dW, db) of y = x Wᵀ + b, summed over every row (batch and position)."""
    rows_g, rows_x = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return (g @ weight,                                         # dx = G W
            rows_g.T @ rows_x,                                  # dW = Gᵀ x
            rows_g.sum(axis=0))                                 # db = Σ_rows G


# --- scaled dot-product attention --------------------------------------------------------------


def attention(q, k, v, mask=0.0, scale=None):
    """O = A V, A = softmax(S), S = Q Kᵀ s + M, s = 1/√d_k (000.attn); M a float mask (0 or -∞).
    Shapes (..., L, E), (..., S, E), (..., S, Ev)."""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    a = softmax(q @ np.swapaxes(k, -1, -2) * scale + mask)     # A = softmax(Q Kᵀ s + M)
    return a @ v, (q, k, v, a, scale)                           # O = A V


def attention_backward(g, saved):
    """(dQ, dK, dV) of O = softmax(Q Kᵀ s + M) V. M is a constant, so it drops out of dS."""
    q, k, v, a, scale = saved
    d_v = np.swapaxes(a, -1, -2) @ g                            # dV = Aᵀ G
    d_a = g @ np.swapaxes(v, -1, -2)                            # dA = G Vᵀ
    d_s = softmax_backward(d_a, a)                              # dS = A ⊙ (dA - Σ_j dA ⊙ A)
    d_q = d_s @ k * scale                                       # dQ = dS K s
    d_k = np.swapaxes(d_s, -1, -2) @ q * scale                  # dK = dSᵀ Q s
    return d_q, d_k, d_v


def additive(mask):
    """A MultiheadAttention mask as the M added to the scores: bool True (masked) -> -∞, False -> 0;
    a float mask as it is; None -> 0."""
    if mask is None:
        return 0.0
    mask = np.asarray(mask)
    return np.where(mask, -np.inf, 0.0) if mask.dtype == bool else mask


# --- multi-head attention ----------------------------------------------------------------------


def mha(p, prefix, x_q, x_k, x_v, num_heads, attn_mask=None, key_padding_mask=None):
    """MultiHead = Concat(head_1..head_h) Wᴼ, head_i = Attention(Q W_iᵠ, K W_iᴷ, V W_iⱽ) (003.mha).

    p maps PyTorch's names (after `prefix`, e.g. "self_attn.") to arrays; x_q (N, L, E),
    x_k and x_v (N, S, E); masks as MultiheadAttention takes them (attn_mask (L, S),
    key_padding_mask (N, S)).
    """
    (n, length, e), s, h = x_q.shape, x_k.shape[1], num_heads
    w_q, w_k, w_v = np.split(p[prefix + "in_proj_weight"], 3)   # Wᵠ, Wᴷ, Wⱽ: rows of in_proj_weight
    b_q, b_k, b_v = np.split(p[prefix + "in_proj_bias"], 3)
    heads = lambda x: x.reshape(x.shape[0], x.shape[1], h, e // h).transpose(0, 2, 1, 3)  # noqa: E731
    q = heads(linear(x_q, w_q, b_q))                            # Q W_iᵠ for every head i: (N, h, L, E/h)
    k = heads(linear(x_k, w_k, b_k))                            # K W_iᴷ
    v = heads(linear(x_v, w_v, b_v))                            # V W_iⱽ
    mask = additive(attn_mask)                                  # M from attn_mask (L, S)
    if key_padding_mask is not None:
        mask = mask + additive(key_padding_mask).reshape(n, 1, 1, s)  # -∞ at padded keys, every head and query
    o, saved_attn = attention(q, k, v, mask)                    # head_i = Attention(·, ·, ·)
    concat = o.transpose(0, 2, 1, 3).reshape(n, length, e)      # Concat(head_1, ..., head_h)
    out = linear(concat, p[prefix + "out_proj.weight"], p[prefix + "out_proj.bias"])  # · Wᴼ (+ bias)
    return out, (p, prefix, x_q, x_k, x_v, saved_attn, concat)


def mha_backward(g, saved):
    """(dx_q, dx_k, dx_v, {prefixed parameter name: gradient})."""
    p, prefix, x_q, x_k, x_v, saved_attn, concat = saved
    (n, length, e), s = x_q.shape, x_k.shape[1]
    h = saved_attn[0].shape[1]
    d_concat, d_wo, d_bo = linear_backward(g, concat, p[prefix + "out_proj.weight"])  # through · Wᴼ
    d_o = d_concat.reshape(n, length, h, e // h).transpose(0, 2, 1, 3)  # undo Concat: one slice per head
    d_q, d_k, d_v = attention_backward(d_o, saved_attn)         # through every head's attention
    merge = lambda d, side: d.transpose(0, 2, 1, 3).reshape(n, side, e)  # noqa: E731  (heads back to columns)
    w_q, w_k, w_v = np.split(p[prefix + "in_proj_weight"], 3)
    dx_q, d_wq, d_bq = linear_backward(merge(d_q, length), x_q, w_q)  # Q = x_q Wᵠᵀ + bᵠ
    dx_k, d_wk, d_bk = linear_backward(merge(d_k, s), x_k, w_k)       # K = x_k Wᴷᵀ + bᴷ
    dx_v, d_wv, d_bv = linear_backward(merge(d_v, s), x_v, w_v)       # V = x_v Wⱽᵀ + bⱽ
    grads = {prefix + "in_proj_weight": np.concatenate([d_wq, d_wk, d_wv]),  # stacked as in_proj_weight
             prefix + "in_proj_bias": np.concatenate([d_bq, d_bk, d_bv]),
             prefix + "out_proj.weight": d_wo, prefix + "out_proj.bias": d_bo}
    return dx_q, dx_k, dx_v, grads


# --- feed-forward sublayer, encoder and decoder layers (post-norm, ReLU, dropout 0) -------------


def feed_forward(p, x):
    """FFN(x) = W₂ ReLU(W₁ x + b₁) + b₂."""
    z = linear(x, p["linear1.weight"], p["linear1.bias"])      # z = x W₁ᵀ + b₁
    r = np.maximum(z, 0.0)                                      # r = ReLU(z)
    return linear(r, p["linear2.weight"], p["linear2.bias"]), (p, x, z, r)  # W₂ r + b₂


def feed_forward_backward(g, saved):
    p, x, z, r = saved
    d_r, d_w2, d_b2 = linear_backward(g, r, p["linear2.weight"])  # through W₂ r + b₂
    d_z = d_r * (z > 0)                                         # dz = dr ⊙ ReLU'(z) = dr ⊙ [z > 0]
    d_x, d_w1, d_b1 = linear_backward(d_z, x, p["linear1.weight"])  # through x W₁ᵀ + b₁
    return d_x, {"linear1.weight": d_w1, "linear1.bias": d_b1, "linear2.weight": d_w2, "linear2.bias": d_b2}


def _norm(p, i, x):
    return layer_norm(x, p[f"norm{i}.weight"], p[f"norm{i}.bias"])


def _norm_backward(g, saved, i):
    d_x, d_w, d_b = layer_norm_backward(g, saved)
    return d_x, {f"norm{i}.weight": d_w, f"norm{i}.bias": d_b}


def encoder_layer(p, src, nhead, src_mask=None, src_key_padding_mask=None):
    """003.arch encoder block, post-norm:  h = LN₁(x + MHA(x, x, x)),  y = LN₂(h + FFN(h))."""
    a, s_attn = mha(p, "self_attn.", src, src, src, nhead, src_mask, src_key_padding_mask)
    h, s_n1 = _norm(p, 1, src + a)                              # h = LN₁(x + MHA(x, x, x))
    f, s_ff = feed_forward(p, h)
    y, s_n2 = _norm(p, 2, h + f)                                # y = LN₂(h + FFN(h))
    return y, (s_attn, s_n1, s_ff, s_n2)


def encoder_layer_backward(g, saved):
    """(dsrc, {parameter name: gradient})."""
    s_attn, s_n1, s_ff, s_n2 = saved
    d_sum2, grads = _norm_backward(g, s_n2, 2)                  # d(h + FFN(h)) through LN₂
    d_h, g_ff = feed_forward_backward(d_sum2, s_ff)
    d_h = d_h + d_sum2                                          # dh = dFFN/dh · d + d (the residual)
    d_sum1, g_n1 = _norm_backward(d_h, s_n1, 1)                 # d(x + MHA(x, x, x)) through LN₁
    dx_q, dx_k, dx_v, g_attn = mha_backward(d_sum1, s_attn)
    d_src = d_sum1 + dx_q + dx_k + dx_v                         # x is the residual, the queries, keys and values
    return d_src, {**grads, **g_ff, **g_n1, **g_attn}


def decoder_layer(p, tgt, memory, nhead, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                  memory_key_padding_mask=None):
    """003.arch decoder block, post-norm, with memory m from the encoder:
    h₁ = LN₁(x + MHA(x, x, x; causal mask)),  h₂ = LN₂(h₁ + MHA(h₁, m, m)),  y = LN₃(h₂ + FFN(h₂))."""
    a1, s_self = mha(p, "self_attn.", tgt, tgt, tgt, nhead, tgt_mask, tgt_key_padding_mask)
    h1, s_n1 = _norm(p, 1, tgt + a1)                            # h₁ = LN₁(x + MHA(x, x, x))
    a2, s_cross = mha(p, "multihead_attn.", h1, memory, memory, nhead, memory_mask, memory_key_padding_mask)
    h2, s_n2 = _norm(p, 2, h1 + a2)                             # h₂ = LN₂(h₁ + MHA(h₁, m, m))
    f, s_ff = feed_forward(p, h2)
    y, s_n3 = _norm(p, 3, h2 + f)                               # y = LN₃(h₂ + FFN(h₂))
    return y, (s_self, s_n1, s_cross, s_n2, s_ff, s_n3)


def decoder_layer_backward(g, saved):
    """(dtgt, dmemory, {parameter name: gradient})."""
    s_self, s_n1, s_cross, s_n2, s_ff, s_n3 = saved
    d_sum3, grads = _norm_backward(g, s_n3, 3)                  # through LN₃
    d_h2, g_ff = feed_forward_backward(d_sum3, s_ff)
    d_h2 = d_h2 + d_sum3                                        # dh₂ = FFN branch + residual
    d_sum2, g_n2 = _norm_backward(d_h2, s_n2, 2)                # through LN₂
    dq_cross, dk_cross, dv_cross, g_cross = mha_backward(d_sum2, s_cross)
    d_h1 = d_sum2 + dq_cross                                    # dh₁ = residual + the cross-attention's queries
    d_memory = dk_cross + dv_cross                              # dm: memory gives the keys and the values
    d_sum1, g_n1 = _norm_backward(d_h1, s_n1, 1)                # through LN₁
    dq_self, dk_self, dv_self, g_self = mha_backward(d_sum1, s_self)
    d_tgt = d_sum1 + dq_self + dk_self + dv_self                # x: residual, queries, keys, values
    return d_tgt, d_memory, {**grads, **g_ff, **g_n2, **g_cross, **g_n1, **g_self}


# --- the formulas, in compare()'s signature ----------------------------------------------------


def softmax_formula(grad_out, input):
    return {"input": softmax_backward(grad_out, softmax(input))}


def layernorm_formula(grad_out, input, weight, bias):
    d_x, d_w, d_b = layer_norm_backward(grad_out, layer_norm(input, weight, bias)[1])
    return {"input": d_x, "weight": d_w, "bias": d_b}


def attention_formula(grad_out, query, key, value, attn_mask):
    """scaled_dot_product_attention's boolean mask is True where a query MAY attend: M = 0 there, else -∞."""
    saved = attention(query, key, value, np.where(attn_mask, 0.0, -np.inf))[1]
    d_q, d_k, d_v = attention_backward(grad_out, saved)
    return {"query": d_q, "key": d_k, "value": d_v}


def mha_formula(grad_out, query, key, value, num_heads, key_padding_mask, **params):
    saved = mha(params, "", query, key, value, num_heads, key_padding_mask=key_padding_mask)[1]
    d_q, d_k, d_v, grads = mha_backward(grad_out, saved)
    return {"query": d_q, "key": d_k, "value": d_v, **grads}


def encoder_formula(grad_out, src, nhead, src_key_padding_mask, **params):
    saved = encoder_layer(params, src, nhead, src_key_padding_mask=src_key_padding_mask)[1]
    d_src, grads = encoder_layer_backward(grad_out, saved)
    return {"src": d_src, **grads}


def decoder_formula(grad_out, tgt, memory, nhead, tgt_mask, memory_key_padding_mask, **params):
    saved = decoder_layer(params, tgt, memory, nhead, tgt_mask=tgt_mask,
                          memory_key_padding_mask=memory_key_padding_mask)[1]
    d_tgt, d_memory, grads = decoder_layer_backward(grad_out, saved)
    return {"tgt": d_tgt, "memory": d_memory, **grads}


# --- the cases ---------------------------------------------------------------------------------


def _leaf(array):
    return Tensor(array, requires_grad=True)


def _random_parameters(module, rng):
    """A float64 leaf tensor of N(0, 0.5²) values for every parameter of module, by name."""
    return {name: _leaf(0.5 * rng.standard_normal(p.shape)) for name, p in module.named_parameters()}


def _layer_case(layer, call, formula, inputs, rng):
    """(fn, formula, inputs) for a layer: fn swaps the given tensors in and runs call(layer, **inputs)."""
    params = _random_parameters(layer, rng)

    def fn(**arrays):
        use_tensors(layer, {name: arrays.pop(name) for name in params})
        return call(layer, **arrays)

    return fn, formula, {**inputs, **params}


def _softmax_case():
    rng = np.random.default_rng(0)
    return lambda input: F.softmax(input, dim=-1), softmax_formula, {"input": _leaf(rng.normal(0, 2, (3, 5)))}


def _layernorm_case():
    rng = np.random.default_rng(1)
    return _layer_case(LayerNorm(5), lambda layer, input: layer(input), layernorm_formula,
                       {"input": _leaf(rng.standard_normal((2, 3, 5)))}, rng)


def _attention_case():
    rng = np.random.default_rng(2)
    mask = rng.random((3, 5)) < 0.7
    mask[:, 0] = True  # every query may attend somewhere
    inputs = {"query": _leaf(rng.standard_normal((2, 3, 4))), "key": _leaf(rng.standard_normal((2, 5, 4))),
              "value": _leaf(rng.standard_normal((2, 5, 3))), "attn_mask": mask}
    return scaled_dot_product_attention, attention_formula, inputs


def _mha_case():
    rng = np.random.default_rng(3)
    padding = np.array([[False] * 4, [False, False, True, True]])  # the second item has 2 real keys of 4
    inputs = {"query": _leaf(rng.standard_normal((2, 3, 4))), "key": _leaf(rng.standard_normal((2, 4, 4))),
              "value": _leaf(rng.standard_normal((2, 4, 4))), "num_heads": 2, "key_padding_mask": padding}

    def call(layer, query, key, value, num_heads, key_padding_mask):
        return layer(query, key, value, key_padding_mask=key_padding_mask, need_weights=False)[0]

    return _layer_case(MultiheadAttention(4, 2, batch_first=True), call, mha_formula, inputs, rng)


def _encoder_case():
    rng = np.random.default_rng(4)
    inputs = {"src": _leaf(rng.standard_normal((2, 3, 4))), "nhead": 2,
              "src_key_padding_mask": np.array([[False] * 3, [False, False, True]])}

    def call(layer, src, nhead, src_key_padding_mask):
        return layer(src, src_key_padding_mask=src_key_padding_mask)

    layer = TransformerEncoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True)
    return _layer_case(layer, call, encoder_formula, inputs, rng)


def _decoder_case():
    rng = np.random.default_rng(5)
    inputs = {"tgt": _leaf(rng.standard_normal((2, 3, 4))), "memory": _leaf(rng.standard_normal((2, 4, 4))),
              "nhead": 2, "tgt_mask": generate_square_subsequent_mask(3, dtype=np.float64).numpy(),
              "memory_key_padding_mask": np.array([[False] * 4, [False, True, False, True]])}

    def call(layer, tgt, memory, nhead, tgt_mask, memory_key_padding_mask):
        return layer(tgt, memory, tgt_mask=tgt_mask, memory_key_padding_mask=memory_key_padding_mask,
                     tgt_is_causal=True)

    layer = TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0, batch_first=True)
    return _layer_case(layer, call, decoder_formula, inputs, rng)


CASES = {"softmax": _softmax_case, "layernorm": _layernorm_case, "attention": _attention_case,
         "mha": _mha_case, "encoder": _encoder_case, "decoder": _decoder_case}
