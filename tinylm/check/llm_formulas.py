"""The gradients of the blocks that came after GPT-2 (Llama's), derived by hand in plain NumPy.

RMSNorm, SiLU, the SwiGLU feed-forward, rotary position embeddings (RoPE) and grouped-query
attention, each as a NumPy forward returning (output, saved) and a backward turning
dL/d(output) into dL/d(every input and parameter), one equation per line — as
tinylm.check.attention_formulas does for the attention layers, whose helpers (linear, attention
and their backwards) are used here. CASES[name]() -> (fn, formula, inputs) for
tinylm.check.compare, fn computing the same thing with tinylm's layers:

    from tinylm.check import compare
    from tinylm.check.llm_formulas import CASES
    print(compare(*CASES["gqa"]()))

Notation: G = dL/d(output); a Linear without bias is y = x Wᵀ; ⊙ is element-wise; means are
over the last axis; arrays are batch-first, (N, L, E).
"""
import numpy as np

from ..nn import functional as F
from ..nn.attention import GroupedQueryAttention
from ..nn.layers import RMSNorm, SwiGLU
from ..nn.positional import RotaryEmbedding
from .attention_formulas import _layer_case, _leaf, attention, attention_backward, linear_backward

# --- RMSNorm -----------------------------------------------------------------------------------


def rms_norm(x, weight, eps=1e-6):
    """y = x̂ ⊙ γ, x̂ = x / √(mean(x²) + ε), over the last axis; saved (x̂, 1/√(mean(x²) + ε), γ)."""
    rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)  # r = 1/√(mean_j x_j² + ε)
    xhat = x * rstd                                              # x̂ = x r
    return xhat * weight, (xhat, rstd, weight)                   # y = x̂ ⊙ γ


def rms_norm_backward(g, saved):
    """(dx, dγ) of y = x̂ ⊙ γ. From ∂r/∂x_i = -r³ x_i / E: ∂x̂_j/∂x_i = r (δ_ij - x̂_i x̂_j / E)."""
    xhat, rstd, weight = saved
    d_weight = (g * xhat).sum(axis=tuple(range(g.ndim - 1)))     # dγ = Σ_rows G ⊙ x̂
    gh = g * weight                                              # ĝ = G ⊙ γ = dL/dx̂
    dx = rstd * (gh - xhat * (gh * xhat).mean(axis=-1, keepdims=True))  # dx = r (ĝ - x̂ mean(ĝ ⊙ x̂))
    return dx, d_weight


# --- SiLU and SwiGLU ---------------------------------------------------------------------------


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))                          # σ(x) = 1/(1 + e⁻ˣ), no overflow


def silu(x):
    """SiLU(x) = x σ(x)."""
    return x * sigmoid(x)


def silu_backward(g, x):
    """dx = G ⊙ σ(x) (1 + x (1 - σ(x))): the product rule on x σ(x), with σ' = σ (1 - σ)."""
    s = sigmoid(x)
    return g * s * (1 + x * (1 - s))


def swiglu(p, x):
    """SwiGLU(x) = W_down (SiLU(W_gate x) ⊙ W_up x); p holds gate_proj.weight, up_proj.weight, down_proj.weight."""
    a = x @ p["gate_proj.weight"].T                              # a = x W_gateᵀ
    b = x @ p["up_proj.weight"].T                                # b = x W_upᵀ
    h = silu(a) * b                                              # h = SiLU(a) ⊙ b
    return h @ p["down_proj.weight"].T, (p, x, a, b, h)          # y = h W_downᵀ


def swiglu_backward(g, saved):
    """(dx, {parameter name: gradient})."""
    p, x, a, b, h = saved
    d_h, d_down, _ = linear_backward(g, h, p["down_proj.weight"])  # dh = G W_down, dW_down = Gᵀ h
    d_a = silu_backward(d_h * b, a)                              # da = dh ⊙ b ⊙ SiLU'(a)
    d_b = d_h * silu(a)                                          # db = dh ⊙ SiLU(a)
    d_x_a, d_gate, _ = linear_backward(d_a, x, p["gate_proj.weight"])
    d_x_b, d_up, _ = linear_backward(d_b, x, p["up_proj.weight"])
    return d_x_a + d_x_b, {"gate_proj.weight": d_gate, "up_proj.weight": d_up, "down_proj.weight": d_down}


# --- rotary position embedding ---------------------------------------------------------------------


def rope_angles(positions, dim, base=10000.0):
    """cos, sin of p θ_i, θ_i = base^(-2i/dim), for every position p and i < dim/2: (len, dim/2) each."""
    angles = np.asarray(positions)[:, None] * base ** (-np.arange(0, dim, 2) / dim)
    return np.cos(angles), np.sin(angles)


def rotate_half(x):
    """[x₁, x₂] -> [-x₂, x₁] (the halves of the last axis): multiplication by i of each pair (x_i, x_{i+d/2})."""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope(x, cos, sin):
    """y = x ⊙ [cos, cos] + rotate_half(x) ⊙ [sin, sin]: each pair (x_i, x_{i+d/2}) rotated by p θ_i."""
    c, s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    return x * c + rotate_half(x) * s


def rope_backward(g, cos, sin):
    """dx = Rᵀ G = G ⊙ [cos, cos] - rotate_half(G ⊙ [sin, sin]), since rotate_half is antisymmetric
    (its transpose is minus itself): the rotation by the opposite angle."""
    c, s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    return g * c - rotate_half(g * s)


# --- grouped-query attention ------------------------------------------------------------------------


def gqa(p, x, num_heads, num_kv_heads, base=10000.0):
    """Causal self-attention, num_heads query heads sharing num_kv_heads key/value heads, RoPE on
    q and k: head_i = softmax(q_i k_jᵀ/√d + M) v_j with j = i // (num_heads / num_kv_heads);
    y = Concat(heads) Wᴼ. p holds {q,k,v,o}_proj.weight."""
    n, length, e = x.shape
    d, groups = e // num_heads, num_heads // num_kv_heads

    def heads(w, count):                                         # (N, L, count·d) -> (N, count, L, d)
        return (x @ w.T).reshape(n, length, count, d).transpose(0, 2, 1, 3)

    cos, sin = rope_angles(np.arange(length), d, base)
    q_raw, k_raw = heads(p["q_proj.weight"], num_heads), heads(p["k_proj.weight"], num_kv_heads)
    q, k = rope(q_raw, cos, sin), rope(k_raw, cos, sin)         # rotate queries and keys by position
    v = heads(p["v_proj.weight"], num_kv_heads)
    k_rep, v_rep = np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1)  # KV head j serves query heads j·g ..
    mask = np.where(np.tril(np.ones((length, length), bool)), 0.0, -np.inf)   # M: -∞ on future keys
    o, att = attention(q, k_rep, v_rep, mask)
    concat = o.transpose(0, 2, 1, 3).reshape(n, length, e)       # Concat(head_1..head_h)
    return concat @ p["o_proj.weight"].T, (p, x, cos, sin, att, concat, num_heads, num_kv_heads)


def gqa_backward(g, saved):
    """(dx, {parameter name: gradient}). A key/value head used by g query heads gets the sum of
    their gradients: the transpose of repeating it is summing over its group."""
    p, x, cos, sin, att, concat, num_heads, num_kv_heads = saved
    n, length, e = x.shape
    d, groups = e // num_heads, num_heads // num_kv_heads
    d_concat, d_o_proj, _ = linear_backward(g, concat, p["o_proj.weight"])
    d_o = d_concat.reshape(n, length, num_heads, d).transpose(0, 2, 1, 3)
    d_q, d_k_rep, d_v_rep = attention_backward(d_o, att)
    d_k = d_k_rep.reshape(n, num_kv_heads, groups, length, d).sum(axis=2)  # Σ over the query heads of the group
    d_v = d_v_rep.reshape(n, num_kv_heads, groups, length, d).sum(axis=2)
    d_q, d_k = rope_backward(d_q, cos, sin), rope_backward(d_k, cos, sin)  # undo the rotations

    def flat(t):                                                 # (N, heads, L, d) -> (N, L, heads·d)
        return t.transpose(0, 2, 1, 3).reshape(n, length, -1)

    grads, d_x = {"o_proj.weight": d_o_proj}, 0.0
    for name, d_heads in (("q_proj", d_q), ("k_proj", d_k), ("v_proj", d_v)):
        d_x_part, grads[f"{name}.weight"], _ = linear_backward(flat(d_heads), x, p[f"{name}.weight"])
        d_x = d_x + d_x_part                                     # x feeds all three projections
    return d_x, grads


# --- the formulas, in compare()'s signature ----------------------------------------------------


def rmsnorm_formula(grad_out, input, weight):
    d_x, d_w = rms_norm_backward(grad_out, rms_norm(input, weight)[1])
    return {"input": d_x, "weight": d_w}


def silu_formula(grad_out, input):
    return {"input": silu_backward(grad_out, input)}


def swiglu_formula(grad_out, input, **params):
    d_x, grads = swiglu_backward(grad_out, swiglu(params, input)[1])
    return {"input": d_x, **grads}


def rope_formula(grad_out, input, offset):
    cos, sin = rope_angles(np.arange(offset, offset + input.shape[-2]), input.shape[-1])
    return {"input": rope_backward(grad_out, cos, sin)}


def gqa_formula(grad_out, input, num_heads, num_kv_heads, **params):
    d_x, grads = gqa_backward(grad_out, gqa(params, input, num_heads, num_kv_heads)[1])
    return {"input": d_x, **grads}


# --- the cases ---------------------------------------------------------------------------------


def _rmsnorm_case():
    rng = np.random.default_rng(11)
    return _layer_case(RMSNorm(5, eps=1e-6), lambda layer, input: layer(input), rmsnorm_formula,
                       {"input": _leaf(rng.standard_normal((2, 3, 5)))}, rng)


def _silu_case():
    rng = np.random.default_rng(12)
    return lambda input: F.silu(input), silu_formula, {"input": _leaf(rng.normal(0, 3, (3, 5)))}


def _swiglu_case():
    rng = np.random.default_rng(13)
    return _layer_case(SwiGLU(4, 6), lambda layer, input: layer(input), swiglu_formula,
                       {"input": _leaf(rng.standard_normal((2, 3, 4)))}, rng)


def _rope_case():
    rng = np.random.default_rng(14)
    rotary = RotaryEmbedding(6)
    return (lambda input, offset: rotary(input, offset=offset), rope_formula,
            {"input": _leaf(rng.standard_normal((2, 3, 4, 6))), "offset": 5})


def _gqa_case():
    rng = np.random.default_rng(15)

    def call(layer, input, num_heads, num_kv_heads):
        return layer(input)

    return _layer_case(GroupedQueryAttention(8, 4, 2), call, gqa_formula,
                       {"input": _leaf(rng.standard_normal((2, 4, 8))), "num_heads": 4, "num_kv_heads": 2}, rng)


CASES = {"rmsnorm": _rmsnorm_case, "silu": _silu_case, "swiglu": _swiglu_case, "rope": _rope_case,
         "gqa": _gqa_case}
