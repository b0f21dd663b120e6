# %% [markdown]
# # GPT-2 之后 What changed since GPT-2: RMSNorm, RoPE, SwiGLU, grouped-query attention
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 均方根 — RMS, root mean square — √(mean_j x_j²) = √((x_1² + … + x_d²)/d).
# * 均方根归一化 — RMSNorm — x / √(mean(x²) + ε) ⊙ γ: LayerNorm without the mean and without β.
# * 前置归一化 — pre-norm — x + Sublayer(Norm(x)), the norm before each sublayer (GPT-2, Llama),
#   not after the residual sum as in 003.arch's post-norm Norm(x + Sublayer(x)).
# * 旋转位置编码 — RoPE, rotary position embedding — queries and keys turned by an angle
#   proportional to their position before their dot product.
# * 频率 — frequencies θ_i — θ_i = base^(−2i/d), i = 0 … d/2 − 1, base = 10000: feature pair i
#   turns by p·θ_i at position p.
# * 半分布局 — half-split ("rotate_half") layout — feature i paired with feature i + d/2 (Hugging
#   Face's Llama); the interleaved layout pairs 2i with 2i + 1 (the RoPE paper, Meta's code).
# * 门控线性单元 — GLU, gated linear unit — f(x W) ⊙ (x V), one projection gating another;
#   SwiGLU takes f = SiLU, SiLU(x) = x σ(x) (also called swish), σ the logistic sigmoid.
# * 头维度 — head dimension d — the width of one attention head, d_model / n_heads.
# * 键值缓存 — KV cache — the keys and values of every earlier position, kept during generation so
#   that a new token does not recompute them (004.generate).
# * 分组查询注意力 — GQA, grouped-query attention — a group of query heads shares one key/value
#   head; MHA (multi-head) gives each query head its own, MQA (multi-query) one for all.
#
# The articles stop at the Transformer of 2017–2019: the blocks of article 003's diagram
# (**003.arch**), multi-head attention (**000.mha**, **003.mha**), generation one token at a
# time (**004.generate**). GPT-2 (2019) is built from exactly those. The open models that
# came after — Llama (2023) and most of its successors — keep the decoder-only block and
# the loss (**004.pretrain.loss**) and change four pieces:
#
# | GPT-2 (tinylm.models.GPT) | since (tinylm.models.Llama) | what it buys |
# |---|---|---|
# | LayerNorm | RMSNorm | one statistic instead of two; no bias |
# | learned position vectors | RoPE: q and k rotated by position | scores see relative positions |
# | GELU MLP, 4·d wide | SwiGLU, 8/3·d wide | a gated MLP, the same parameters |
# | multi-head attention | grouped-query attention | a KV cache several times smaller |
#
# and drop every bias. This lesson takes them one at a time: the formula, a small example by
# hand, the engine's layer (tinylm.nn), and the gradient three ways (autograd, central
# differences, the hand-derived formula of tinylm/check/llm_formulas.py). You write the
# RMSNorm backward, the rotary embedding and the KV-cache size.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm import nn
from tinylm.check import llm_formulas as hand
from tinylm.check.llm_formulas import CASES
from tinylm.generate import generate
from tinylm.lesson import check, fast, graded, three_way
from tinylm.models import build_model

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
tinylm.manual_seed(0)


def run(module, x):
    """A NumPy-in, NumPy-out call of a tinylm module."""
    with tinylm.no_grad():
        return module(tinylm.Tensor(x)).numpy()


# %% [markdown]
# ## 均方根归一化 RMSNorm instead of LayerNorm
#
# LayerNorm (003.arch) centres each token's vector and divides by its standard deviation:
# `(x − μ)/√(σ² + ε) ⊙ γ + β`. RMSNorm skips the centring and the shift:
#
#     y = x / √(mean(x²) + ε) ⊙ γ
#
# By hand for x = [1, 2, 3, 6]: mean(x²) = (1 + 4 + 9 + 36)/4 = 12.5, RMS = √12.5 = 3.5355, so
# x̂ = x / 3.5355 = [0.2828, 0.5657, 0.8485, 1.6971]. LayerNorm gives [−1.0690, −0.5345, 0, 1.6036]
# (lesson 07): RMSNorm keeps the signs and the offset of x, it only fixes the scale.

# %%
x_rms = np.array([1.0, 2.0, 3.0, 6.0])
rms = np.sqrt((x_rms ** 2).mean())
by_hand = x_rms / rms
print("RMS =", rms, " x̂ =", by_hand)
check("mean(x²) = 12.5", (x_rms ** 2).mean() == 12.5)
check("x̂ by hand", np.allclose(by_hand, [0.2828, 0.5657, 0.8485, 1.6971], atol=5e-5))
rms_layer = nn.RMSNorm(4, eps=0.0).double()
layer_norm = nn.LayerNorm(4, eps=0.0).double()
check("tinylm's RMSNorm agrees", np.allclose(run(rms_layer, x_rms), by_hand))

# %% [markdown]
# What each norm forgets. Both outputs stay the same when x is multiplied by a positive
# number (the scale is divided out). Only LayerNorm also forgets a constant added to every
# feature: RMSNorm sees x + 5 as a different vector. In a pre-norm network the residual
# stream is never normalised in place, so little is lost, and RMSNorm needs one reduction
# over the features (Σ x²) where LayerNorm needs two (Σ x, then Σ (x − μ)²).

# %%
for name, layer in (("LayerNorm", layer_norm), ("RMSNorm", rms_layer)):
    print(f"{name:9}  x: {run(layer, x_rms)}  3x: {run(layer, 3 * x_rms)}  x + 5: {run(layer, x_rms + 5)}")
check("both forget the scale", np.allclose(run(rms_layer, 3 * x_rms), run(rms_layer, x_rms))
      and np.allclose(run(layer_norm, 3 * x_rms), run(layer_norm, x_rms)))
check("only LayerNorm forgets a shift", np.allclose(run(layer_norm, x_rms + 5), run(layer_norm, x_rms))
      and not np.allclose(run(rms_layer, x_rms + 5), run(rms_layer, x_rms)))

# %% [markdown]
# ### Its backward pass
#
# With `r = 1/√(mean(x²) + ε)`, `x̂ = x r`, `g = dL/dy` and `ĝ = g ⊙ γ = dL/dx̂`: γ acts feature by
# feature, so `dγ = Σ_rows g ⊙ x̂`. Through x̂: `∂r/∂x_i = −r³ x_i / d`, so
#
#     ∂x̂_j/∂x_i = r (δ_ij − x̂_i x̂_j / d)     and     dx = r (ĝ − x̂ ⊙ mean(ĝ ⊙ x̂))
#
# LayerNorm's dx has one more term, `− mean(ĝ)`, which comes from the mean it subtracts.
# Write it in NumPy:

# %%
def rms_norm_backward(x, gamma, g, eps=1e-6):
    """(dx, dγ) of y = x / √(mean(x²) + ε) ⊙ γ over the last axis, given g = dL/dy."""
    # BEGIN SOLUTION hint: r = 1/√(mean(x²)+ε) (keepdims), x̂ = x r; dγ = Σ over every axis but the last of g ⊙ x̂; ĝ = g ⊙ γ; dx = r (ĝ − x̂ mean(ĝ ⊙ x̂)), the mean over the last axis
    r = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    xhat = x * r
    gh = g * gamma
    dx = r * (gh - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, (g * xhat).sum(axis=tuple(range(x.ndim - 1)))
    # END SOLUTION


# %%
rms_inputs = {"input": tinylm.Tensor(rng.standard_normal((2, 3, 5)), requires_grad=True),
              "weight": tinylm.Tensor(rng.normal(1, 0.5, 5), requires_grad=True)}


def your_rmsnorm_formula(grad_out, input, weight):
    d_x, d_weight = rms_norm_backward(input, weight, grad_out)
    return {"input": d_x, "weight": d_weight}


graded("your RMSNorm backward: autograd vs numeric vs yours",
       lambda: three_way("RMSNorm, your formula", lambda input, weight: F.rms_norm(input, 5, weight, eps=1e-6),
                         your_rmsnorm_formula, rms_inputs))
graded("your RMSNorm backward equals the engine's",
       lambda: all(np.allclose(a, b) for a, b in zip(
           your_rmsnorm_formula(np.ones((2, 3, 5)), *(t.numpy() for t in rms_inputs.values())).values(),
           hand.rmsnorm_formula(np.ones((2, 3, 5)), *(t.numpy() for t in rms_inputs.values())).values())))

# %% [markdown]
# The engine's RMSNorm (tinylm.nn.RMSNorm, the fused op RMSNormOp and its kernels
# rms_norm / rms_norm_backward in NumPy, Numba and CUDA), three ways:

# %%
check("RMSNorm: the engine's layer and formula, three ways", three_way("RMSNorm", *CASES["rmsnorm"]()))

# %% [markdown]
# ## 旋转位置编码 RoPE instead of a position table
#
# GPT-2 adds a learned vector P[p] to the embedding of the token at position p (lesson 09's
# `wpe`). Attention then compares `(x_m + P[m]) · (x_n + P[n])` after the projections: the
# score mixes *absolute* positions, and positions beyond the table do not exist.
#
# RoPE adds nothing to the embeddings. Inside attention, the query at position m and the key
# at position n are each rotated, feature pair by feature pair, by the angle position × θ_i:
#
#     θ_i = 10000^(−2i/d)
#     (x_i, x_{i+d/2})  ↦  (x_i cos pθ_i − x_{i+d/2} sin pθ_i,  x_{i+d/2} cos pθ_i + x_i sin pθ_i)
#
# A rotation by mθ followed by the transposed rotation by nθ is the rotation by (n − m)θ, so
#
#     (R_m q) · (R_n k) = q · R_m^T R_n k = q · R_{n−m} k
#
# depends on the offset n − m only. By hand with d = 2 (one pair, θ_0 = 1 radian per
# position): q = [1, 0] at position 3 becomes [cos 3, sin 3] = [−0.9900, 0.1411].

# %%
rotary2 = nn.RotaryEmbedding(2)
q_rot = run(rotary2, np.array([[1.0, 0.0]] * 4))               # positions 0, 1, 2, 3
print("q = [1, 0] at positions 0..3:\n", q_rot)
check("at position 3: [cos 3, sin 3]", np.allclose(q_rot[3], [np.cos(3), np.sin(3)]))
check("a rotation keeps the length", np.allclose(np.linalg.norm(q_rot, axis=1), 1.0))

# %% [markdown]
# Write the rotation for any even head dimension, in the half-split layout (pair i with i + d/2):
# x has shape (..., T, d) and holds positions `offset .. offset + T − 1`.

# %%
def rope(x, offset=0, base=10000.0):
    """x (..., T, d) rotated by RoPE: pair (x_i, x_{i+d/2}) at position p by the angle p·base^(−2i/d)."""
    # BEGIN SOLUTION hint: θ = base ** (−np.arange(0, d, 2)/d); angles = positions[:, None] * θ, shape (T, d/2); split x into halves x1, x2; return concatenate([x1 cos − x2 sin, x2 cos + x1 sin]) along the last axis
    d, length = x.shape[-1], x.shape[-2]
    angles = np.arange(offset, offset + length)[:, None] * base ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(angles), np.sin(angles)
    x1, x2 = x[..., :d // 2], x[..., d // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    # END SOLUTION


# %%
x_rope = rng.standard_normal((2, 3, 6, 8))
graded("your rope equals tinylm's RotaryEmbedding",
       lambda: np.allclose(rope(x_rope), run(nn.RotaryEmbedding(8), x_rope)))
graded("with an offset too (a KV cache's positions)",
       lambda: np.allclose(rope(x_rope[..., 2:, :], offset=2), rope(x_rope)[..., 2:, :]))

# %% [markdown]
# The relative property, numerically: one query q and one key k, placed at positions m and
# n. The score `rope(q at m) · rope(k at n)` is the same along each diagonal n − m = constant.
# With learned absolute position vectors P (GPT-2's way, here random), it is not.

# %%
d_head = 8
q_vec, k_vec = rng.standard_normal(d_head), rng.standard_normal(d_head)
rotary8 = nn.RotaryEmbedding(d_head)
spots = 6
q_at = run(rotary8, np.tile(q_vec, (spots, 1)))                # q placed at positions 0..5
k_at = run(rotary8, np.tile(k_vec, (spots, 1)))
rope_scores = q_at @ k_at.T                                    # [m, n] = rope(q, m) · rope(k, n)
table = rng.standard_normal((spots, d_head))                   # learned absolute positions P
absolute_scores = (q_vec + table) @ (k_vec + table).T
print("RoPE scores, rows m, columns n:\n", rope_scores)
print("absolute positions:\n", absolute_scores)
diagonals = [np.diagonal(rope_scores, offset) for offset in range(-spots + 1, spots)]
check("RoPE: every diagonal (fixed n − m) holds one value", all(np.allclose(dg, dg[0]) for dg in diagonals))
check("absolute positions: the diagonals vary", not np.allclose(np.diagonal(absolute_scores, 1),
                                                               np.diagonal(absolute_scores, 1)[0]))

# %% [markdown]
# ### The layout matters when weights are loaded
#
# The RoPE paper pairs neighbouring features (2i, 2i + 1); Hugging Face's Llama pairs i with
# i + d/2. Both are the same rotations applied to a different order of the features: the
# interleaved rotation of x equals the half-split rotation of x with its features reordered
# [0, 2, 4, …, 1, 3, 5, …]. That is why converting Meta's weights to Hugging Face's format
# permutes the rows of the q and k projections — and why tinylm, which loads Hugging Face
# files, rotates in the half-split layout.

# %%
def rope_interleaved(x, base=10000.0):
    """RoPE as in the paper: pair (x_2i, x_2i+1) rotated by p θ_i."""
    d, length = x.shape[-1], x.shape[-2]
    angles = np.arange(length)[:, None] * base ** (-np.arange(0, d, 2) / d)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * np.cos(angles) - odd * np.sin(angles)
    out[..., 1::2] = odd * np.cos(angles) + even * np.sin(angles)
    return out


order = np.r_[0:d_head:2, 1:d_head:2]                          # [0, 2, 4, 6, 1, 3, 5, 7]
x_layout = rng.standard_normal((5, d_head))
check("interleaved RoPE = half-split RoPE on reordered features",
      np.allclose(rope_interleaved(x_layout)[:, order], run(rotary8, x_layout[:, order])))
check("…but not on the features as they are", not np.allclose(rope_interleaved(x_layout), run(rotary8, x_layout)))

# %% [markdown]
# RoPE's backward is the rotation by the opposite angles, `dx = Rᵀ g` (a rotation's inverse is
# its transpose): tinylm.ops.Rotary. Three ways, at positions 5..8:

# %%
check("RoPE: the engine's op and formula, three ways", three_way("RoPE", *CASES["rope"]()))

# %% [markdown]
# ## 门控前馈 SwiGLU instead of the GELU MLP
#
# GPT-2's feed-forward sublayer is `GELU(x W_fc) W_proj`, 4·d wide. Llama's is a gated linear
# unit with SiLU as the gate:
#
#     SwiGLU(x) = W_down (SiLU(W_gate x) ⊙ W_up x),   SiLU(z) = z σ(z)
#
# SiLU and GELU (z Φ(z)) are close relatives: both ≈ z for large z, ≈ 0 for very negative
# z, smooth, with a small dip below zero. By hand, SiLU(−1) = −1 · σ(−1) = −1/(1 + e) =
# −0.2689 and GELU(−1) = −Φ(−1) = −0.1587; SiLU(2) = 2σ(2) = 1.7616 and GELU(2) = 1.9545.

# %%
z = np.array([-4.0, -1.0, 0.0, 1.0, 2.0])
silu_z, gelu_z = (f(tinylm.Tensor(z)).numpy() for f in (F.silu, F.gelu))
print("z:", z, "\nSiLU:", silu_z, "\nGELU:", gelu_z)
check("SiLU(−1) = −1/(1 + e)", np.isclose(silu_z[1], -1 / (1 + np.e)))
check("SiLU(2) and GELU(−1) by hand",
      np.isclose(silu_z[4], 1.7616, atol=1e-4) and np.isclose(gelu_z[1], -0.1587, atol=1e-4))
check("SiLU: the engine's op and formula, three ways", three_way("SiLU", *CASES["silu"]()))

# %% [markdown]
# The gate makes the sublayer a *product* of two projections: scaling the input by s scales
# `W_up x` by s and, for large inputs, `SiLU(W_gate x)` by s too, so SwiGLU grows like s²
# where the GELU MLP grows like s. And three matrices instead of two: a hidden width of
# 8/3·d gives 3 · d · 8d/3 = 8d² parameters, the 2 · d · 4d of GPT-2's MLP.

# %%
d_model = 12
mlp_gelu = nn.Sequential(nn.Linear(d_model, 4 * d_model, bias=False), nn.Linear(4 * d_model, d_model, bias=False))
swiglu = nn.SwiGLU(d_model, 8 * d_model // 3).double()
print(swiglu)
check("8/3·d wide SwiGLU = 4·d wide MLP in parameters (8d²)",
      swiglu.num_parameters() == mlp_gelu.num_parameters() == 8 * d_model ** 2)
p_sw = {name: t.numpy() for name, t in swiglu.named_parameters()}
x_sw = rng.standard_normal((3, d_model))
a_sw, b_sw = x_sw @ p_sw["gate_proj.weight"].T, x_sw @ p_sw["up_proj.weight"].T
check("SwiGLU = W_down (SiLU(W_gate x) ⊙ W_up x), by hand",
      np.allclose(run(swiglu, x_sw), (a_sw / (1 + np.exp(-a_sw)) * b_sw) @ p_sw["down_proj.weight"].T))
big = 50 * x_sw
growth = np.linalg.norm(run(swiglu, 2 * big)) / np.linalg.norm(run(swiglu, big))
print(f"doubling a large input multiplies SwiGLU's output by {growth:.3f}")
check("…by about 4 (a product of two projections)", abs(growth - 4) < 0.2)
check("SwiGLU: the engine's layer and formula, three ways", three_way("SwiGLU", *CASES["swiglu"]()))

# %% [markdown]
# ## 分组查询注意力 Grouped-query attention and the KV cache
#
# Generating token t+1 needs the keys and values of all t earlier tokens, in every layer
# (004.generate). Multi-head attention (000.mha) keeps one key and one value vector of size d
# per head, per layer, per position. Grouped-query attention keeps n_kv_heads < n_heads
# key/value heads; query head i reads key/value head `i // (n_heads / n_kv_heads)`. In bytes:
#
#     KV cache = 2 (K and V) × layers × n_kv_heads × d × positions × batch × bytes per number
#
# Write it:

# %%
def kv_cache_bytes(layers, kv_heads, head_dim, positions, batch=1, bytes_per_number=2):
    """The bytes of a KV cache holding `positions` positions (float16 by default)."""
    # BEGIN SOLUTION hint: 2 (keys and values) × layers × kv_heads × head_dim × positions × batch × bytes_per_number
    return 2 * layers * kv_heads * head_dim * positions * batch * bytes_per_number
    # END SOLUTION


# %% [markdown]
# Published sizes: Llama 2 70B has 80 layers, 64 query heads of d = 128 and 8 key/value
# heads; Llama 3 8B 32 layers, 32 query heads of d = 128 and 8 key/value heads. With a
# 4096-token context in float16, multi-head attention would need 2 · 80 · 64 · 128 · 4096 · 2
# bytes = 10.7 GB of cache for one sequence of the 70B model; its 8 key/value heads need 1.34 GB.

# %%
graded("kv_cache_bytes: Llama 2 70B, 4096 tokens, multi-head: 10.7 GB",
       lambda: kv_cache_bytes(80, 64, 128, 4096) == 10_737_418_240)
graded("…with its 8 key/value heads: 8 times less",
       lambda: kv_cache_bytes(80, 8, 128, 4096) * 8 == kv_cache_bytes(80, 64, 128, 4096))
for name, layers, heads, kv in (("Llama 2 70B", 80, 64, 8), ("Llama 3 8B", 32, 32, 8)):
    mha_gb, gqa_gb = (2 * layers * h * 128 * 4096 * 2 / 1e9 for h in (heads, kv))
    print(f"{name}: 4096 tokens, float16: multi-head {mha_gb:.2f} GB, grouped ({kv} KV heads) {gqa_gb:.2f} GB")

# %% [markdown]
# By the engine: a small tinylm Llama (4 layers, 4 query heads of d = 8, float32) fills its
# cache on a 40-token prompt, with 4, 2 and 1 key/value heads. The cache's arrays are counted
# and compared with the formula; the generated tokens are checked against generation without
# a cache.

# %%
prompt = rng.integers(0, 50, (1, 40))
for kv in (4, 2, 1):
    tinylm.manual_seed(0)
    small = build_model("llama", vocab_size=50, block_size=64, n_layer=4, n_head=4, n_kv_heads=kv, n_embd=32)
    caches = [{} for _ in range(4)]
    with tinylm.no_grad():
        small(prompt, caches=caches)
    held = sum(c["k"].numpy().nbytes + c["v"].numpy().nbytes for c in caches)
    print(f"n_kv_heads = {kv}: the cache holds {held:,} bytes for 40 positions; "
          f"{small.num_parameters():,} parameters")
    check(f"n_kv_heads = {kv}: the cache is 2 × 4 × {kv} × 8 × 40 × 4 bytes", held == 2 * 4 * kv * 8 * 40 * 4)
    check(f"n_kv_heads = {kv}: cached generation = recomputation",
          np.array_equal(generate(small, prompt[:, :5], max_new_tokens=8, use_cache=True),
                         generate(small, prompt[:, :5], max_new_tokens=8, use_cache=False)))

# %% [markdown]
# Sharing a key/value head is the same as repeating it for every query head of its group
# (Hugging Face's `repeat_kv`): the hand formula repeats K and V with `np.repeat`, the engine
# broadcasts them over a group axis without copying (`scaled_dot_product_attention(...,
# enable_gqa=True)`). In the backward pass the gradient of a shared key/value head is the
# sum over its group. Three ways, 4 query heads sharing 2 key/value heads:

# %%
gqa_layer = nn.GroupedQueryAttention(8, 4, 2).double()
x_gqa = rng.standard_normal((2, 5, 8))
gqa_p = {name: t.numpy() for name, t in gqa_layer.named_parameters()}
check("GroupedQueryAttention = the hand formula with repeated K, V", np.allclose(run(gqa_layer, x_gqa),
                                                                               hand.gqa(gqa_p, x_gqa, 4, 2)[0]))
check("grouped-query attention: the engine's layer and formula, three ways", three_way("GQA", *CASES["gqa"]()))

# %% [markdown]
# ## 合起来 Together: Llama beside GPT
#
# tinylm.models.Llama stacks them: embedding → N × [x + GQA(RMSNorm(x)), x + SwiGLU(RMSNorm(x))]
# → RMSNorm → Linear, no biases, no position table. At the width of `tinylm train`'s GPT the
# two have about the same number of parameters; the README compares their speed and their
# validation loss after the same training (`tinylm train --model llama`).

# %%
tinylm.manual_seed(0)
gpt = build_model("gpt", vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
llama = build_model("llama", vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
print(f"GPT {gpt.num_parameters():,} parameters, Llama {llama.num_parameters():,}")
check("about the same size (within 1%)", abs(llama.num_parameters() / gpt.num_parameters() - 1) < 0.01)
check("Llama has no bias and no position table",
      not any(name.endswith("bias") for name, _ in llama.named_parameters())
      and not any("wpe" in name for name, _ in llama.named_parameters()))
ids = rng.integers(0, 65, (2, 33))
steps = 3 if fast() else 30
for name, model in (("GPT", gpt), ("Llama", llama)):
    opt = tinylm.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):  # one batch, learned by heart: both must drive its loss down
        loss = model(ids[:, :-1], ids[:, 1:])[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(f"{name}: loss on one batch {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")
    check(f"{name} learns", losses[-1] < losses[0])
