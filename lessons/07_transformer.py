# %% [markdown]
# # Transformer 编码器与解码器 The Transformer encoder and decoder (000.enc, 000.dec, 003.arch)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 变换器 — Transformer — the encoder–decoder built from attention and feed-forward layers (usually
#   left untranslated).
# * 编码器 / 解码器 — encoder / decoder — the encoder reads the source; the decoder writes the
#   target, attending to the encoder's output.
# * 层归一化 — layer normalization (LayerNorm) — (x − mean)/√(var + ε)·γ + β over each position's
#   features.
# * 残差连接 — residual connection — x + Sublayer(x): the sublayer adds to its input.
# * 前馈网络 — feed-forward network — W₂ ReLU(W₁ h + b₁) + b₂, applied to every position alone.
# * 查询 / 值 — query / value — in cross-attention the queries come from the decoder, keys and
#   values from the encoder.
# * 因果掩码 — causal mask — keeps position i from attending to any later position.
# * 基本架构 — basic architecture — the layer diagram of article 003 (003.arch).
#
# Article 003 (§4.1) draws the Transformer: an **encoder** of N blocks (multi-head
# self-attention, feed-forward, each followed by Add & Norm) and a **decoder** of N blocks
# (masked self-attention, attention over the encoder's output, feed-forward), then a Linear
# layer and a softmax (**003.arch**). Article 000 (§3.3) writes each block as one line:
#
# * **000.enc** — `Encoder(X, Mask) = LayerNorm(X + MultiHeadAttention(X, X, X) Wᴱ)`
# * **000.dec** — `Decoder(X, Y, Mask) = LayerNorm(X + MultiHeadAttention(X, Y, Y) Wᴰ)`
#
# Both lines are only the first sublayer of a block. This lesson builds them as written with
# tinylm's layers, shows what each cannot do, and compares them with
# `tinylm.nn.TransformerEncoderLayer` and `TransformerDecoderLayer`. It starts with the Norm
# of Add & Norm, LayerNorm, whose backward pass you derive; you also build the causal mask.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm import nn
from tinylm.check.attention_formulas import CASES, layernorm_formula, mha
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot, three_way

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
tinylm.manual_seed(0)


def numpy_params(module):
    """The module's parameters as NumPy arrays, by PyTorch's names."""
    return {name: p.numpy() for name, p in module.named_parameters()}


# %% [markdown]
# ## 层归一化 LayerNorm
#
# LayerNorm rescales each token's vector on its own: subtract the mean μ of its E features,
# divide by the standard deviation `√(σ² + ε)` (σ² the biased variance, ε = 10⁻⁵ against
# division by zero), then apply a learned per-feature scale γ and shift β:
# `y = (x − μ)/√(σ² + ε) ⊙ γ + β`. By hand for x = [1, 2, 3, 6]:

# %%
def layer_norm_np(x, gamma, beta, eps=1e-5):
    """(x − μ) / √(σ² + ε) ⊙ γ + β over the last axis."""
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


x_ln = np.array([1.0, 2.0, 3.0, 6.0])
mu, var = x_ln.mean(), x_ln.var()                  # μ = 3, σ² = (4 + 1 + 0 + 9) / 4 = 3.5
x_hat = (x_ln - mu) / np.sqrt(var + 1e-5)          # [−2, −1, 0, 3] / 1.8708
print("μ =", mu, " σ² =", var, " x̂ =", x_hat)
check("μ = 3 and σ² = 3.5", mu == 3.0 and var == 3.5)
check("x̂ by hand", np.allclose(x_hat, [-1.0690, -0.5345, 0.0, 1.6036], atol=5e-5))
norm = nn.LayerNorm(4).double()                     # γ = 1, β = 0 to start
check("tinylm's LayerNorm agrees", np.allclose(norm(tinylm.Tensor(x_ln)).numpy(), x_hat))
check("and so does the NumPy function", np.allclose(layer_norm_np(x_ln, 1.0, 0.0), x_hat))

# %% [markdown]
# ### Its backward pass
#
# With `g = dL/dy` and `r = 1/√(σ² + ε)`: β and γ act feature by feature, so
# `dβ = Σ_rows g` and `dγ = Σ_rows g ⊙ x̂` (summed over every token). Through x̂ it takes more
# care, because μ and σ² depend on every x_i. Write `ĝ = g ⊙ γ` (= dL/dx̂). From
# `x̂_j = (x_j − μ) r`, `∂μ/∂x_i = 1/E` and `∂r/∂x_i = −r³ (x_i − μ)/E`,
#
#     ∂x̂_j/∂x_i = r (δ_ij − 1/E − x̂_i x̂_j / E)
#
# and summing `ĝ_j ∂x̂_j/∂x_i` over j:
#
#     dx = r (ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂))      (means over the E features)
#
# The engine's version of this formula (tinylm/check/attention_formulas.py), three ways:

# %%
check("LayerNorm: the engine's formula, three ways",
      three_way("LayerNorm, the engine's formula", *CASES["layernorm"]()))


# %%
def layer_norm_backward(x, gamma, g, eps=1e-5):
    """(dx, dγ, dβ) of y = (x − μ)/√(σ² + ε) ⊙ γ + β over the last axis, given g = dL/dy."""
    # BEGIN SOLUTION hint: r = 1/√(σ²+ε), x̂ = (x−μ) r; dβ = Σ_rows g, dγ = Σ_rows g ⊙ x̂; ĝ = g ⊙ γ; dx = r (ĝ − mean(ĝ) − x̂ mean(ĝ ⊙ x̂)), means over the last axis
    r = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    xhat = (x - x.mean(axis=-1, keepdims=True)) * r
    rows = tuple(range(x.ndim - 1))
    gh = g * gamma
    dx = r * (gh - gh.mean(axis=-1, keepdims=True) - xhat * (gh * xhat).mean(axis=-1, keepdims=True))
    return dx, (g * xhat).sum(axis=rows), g.sum(axis=rows)
    # END SOLUTION


# %%
ln_inputs = {"input": tinylm.Tensor(rng.standard_normal((2, 3, 5)), requires_grad=True),
             "weight": tinylm.Tensor(rng.normal(1, 0.5, 5), requires_grad=True),
             "bias": tinylm.Tensor(rng.normal(0, 0.5, 5), requires_grad=True)}


def your_layernorm_formula(grad_out, input, weight, bias):
    d_x, d_weight, d_bias = layer_norm_backward(input, weight, grad_out)
    return {"input": d_x, "weight": d_weight, "bias": d_bias}


graded("your LayerNorm backward: autograd vs numeric vs yours",
       lambda: three_way("LayerNorm, your formula", lambda input, weight, bias: F.layer_norm(input, 5, weight, bias),
                         your_layernorm_formula, ln_inputs))
graded("your LayerNorm backward equals the engine's",
       lambda: all(np.allclose(a, b) for a, b in zip(
           your_layernorm_formula(np.ones((2, 3, 5)), *(t.numpy() for t in ln_inputs.values())).values(),
           layernorm_formula(np.ones((2, 3, 5)), *(t.numpy() for t in ln_inputs.values())).values())))

# %% [markdown]
# ## 编码器 The encoder as article 000 writes it (000.enc)
#
# `Encoder(X, Mask) = LayerNorm(X + MultiHeadAttention(X, X, X) Wᴱ)`: self-attention, one more
# matrix Wᴱ, a residual connection and a LayerNorm. Built from tinylm's layers (E = 8, two
# heads):

# %%
E, H, FF = 8, 2, 16


class ArticleEncoder(nn.Module):
    """000.enc as written: LayerNorm(X + MHA(X, X, X) Wᴱ)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=True)
        self.w_e = nn.Linear(E, E, bias=False)
        self.norm = nn.LayerNorm(E)

    def forward(self, x):
        return self.norm(x + self.w_e(self.attn(x, x, x, need_weights=False)[0]))


article_enc = ArticleEncoder().double()
layer_enc = nn.TransformerEncoderLayer(E, H, dim_feedforward=FF, dropout=0.0, batch_first=True).double()
x_enc = rng.standard_normal((1, 4, E))
print(f"parameters: article's encoder {article_enc.num_parameters()}, "
      f"TransformerEncoderLayer {layer_enc.num_parameters()}")
print(layer_enc)

# %% [markdown]
# ### Wᴱ duplicates Wᴼ
#
# Multi-head attention already ends with its output projection Wᴼ (`out_proj`), so
# `MHA(X, X, X) Wᴱ` applies two matrices in a row, which is one matrix: the product. Fold Wᴱ
# into the real layer's out_proj (in the Linear convention `y = x Wᵀ + b`, the folded weight
# is `Wᴱ_w · Wᴼ_w` and the folded bias `Wᴱ_w · bᴼ`) and the article's whole encoder equals the
# *first sublayer* of `TransformerEncoderLayer`, `norm1(x + self_attn(x, x, x))`.

# %%
p_art = numpy_params(article_enc)
w_e = p_art["w_e.weight"]
layer_enc.load_state_dict({**{n: p.numpy() for n, p in layer_enc.named_parameters()},
                           "self_attn.in_proj_weight": p_art["attn.in_proj_weight"],
                           "self_attn.in_proj_bias": p_art["attn.in_proj_bias"],
                           "self_attn.out_proj.weight": w_e @ p_art["attn.out_proj.weight"],
                           "self_attn.out_proj.bias": w_e @ p_art["attn.out_proj.bias"],
                           "norm1.weight": p_art["norm.weight"], "norm1.bias": p_art["norm.bias"]})
xt = tinylm.Tensor(x_enc)
first_sublayer = layer_enc.norm1(xt + layer_enc.self_attn(xt, xt, xt, need_weights=False)[0])
check("the article's encoder is one attention sublayer, with Wᴱ folded into Wᴼ",
      np.allclose(article_enc(xt).numpy(), first_sublayer.numpy()))

# %% [markdown]
# ### 没有前馈网络 No feed-forward sublayer: nothing nonlinear happens inside a token
#
# Give the block a single token (a sequence of length one). Attention over one key has weight
# 1, so it is just `x Wⱽ Wᴼ Wᴱ` plus a bias: linear. LayerNorm then only centres and rescales.
# So as a token x moves along a straight line, the sum inside the LayerNorm moves along a
# straight line too, and after centring and rescaling every output stays in one plane: the
# outputs of 25 points on a line have rank 2. The real layer's feed-forward sublayer,
# `FFN(h) = W₂ ReLU(W₁ h + b₁) + b₂`, with its own residual and LayerNorm, bends the line
# through the ReLU's kinks into many dimensions. That position-wise nonlinearity is what the
# article's block cannot represent, whatever its weights.

# %%
t_line = np.linspace(-3, 3, 25)[:, None]
line = (rng.standard_normal(E) + t_line * rng.standard_normal(E))[:, None, :]   # 25 one-token sequences


def rank_on_line(model, norm):
    """The rank of the outputs on the line, after undoing the last LayerNorm's γ and β."""
    with tinylm.no_grad():
        out = model(tinylm.Tensor(line)).numpy()[:, 0]
    s = np.linalg.svd((out - norm.bias.numpy()) / norm.weight.numpy(), compute_uv=False)
    return int((s > 1e-9 * s[0]).sum()), s


rank_art, s_art = rank_on_line(article_enc, article_enc.norm)
rank_layer, s_layer = rank_on_line(layer_enc, layer_enc.norm2)
print("singular values, article's encoder:", s_art[:4], "\nsingular values, TransformerEncoderLayer:", s_layer[:4])
check("the article's encoder maps a line of tokens into a plane (rank 2)", rank_art == 2)
check("the feed-forward sublayer bends it into more dimensions", rank_layer > 2)

# %% [markdown]
# ### The Mask is never used
#
# The formula's left side takes a Mask, the right side has no place for it. So a padding token
# (a filler at the end of a short sentence) is read by every real token: changing what sits in
# the pad changes their outputs. The real layer takes `src_key_padding_mask` (True = pad):

# %%
pad = np.array([[False, False, False, True]])
x_other = x_enc.copy()
x_other[0, 3] = 7.0                                           # anything in the pad position
with tinylm.no_grad():
    leak = np.abs(article_enc(tinylm.Tensor(x_other)).numpy() - article_enc(xt).numpy())[0, :3].max()
    masked = [layer_enc(tinylm.Tensor(x), src_key_padding_mask=pad).numpy()[0, :3] for x in (x_enc, x_other)]
print(f"article's encoder: the pad moves the real tokens' outputs by up to {leak:.3f}")
check("article's encoder: the pad leaks into the real tokens", leak > 1e-3)
check("TransformerEncoderLayer with src_key_padding_mask: it does not", np.allclose(*masked))

# %% [markdown]
# ### The full encoder block by hand
#
# With the two missing pieces added, one block of 003.arch is (post-norm, as in the original
# Transformer and PyTorch's default):
#
#     h = LayerNorm₁(x + MHA(x, x, x))           the attention sublayer, Add & Norm
#     y = LayerNorm₂(h + FFN(h))                 the feed-forward sublayer, Add & Norm
#
# In NumPy with the layer's own weights (MHA by the hand formula of lesson 06, from
# tinylm/check/attention_formulas.py):

# %%
p = numpy_params(layer_enc)
h_np = layer_norm_np(x_enc + mha(p, "self_attn.", x_enc, x_enc, x_enc, H)[0], p["norm1.weight"], p["norm1.bias"])
ffn = np.maximum(h_np @ p["linear1.weight"].T + p["linear1.bias"], 0) @ p["linear2.weight"].T + p["linear2.bias"]
y_np = layer_norm_np(h_np + ffn, p["norm2.weight"], p["norm2.bias"])
check("TransformerEncoderLayer = the two sublayers by hand", np.allclose(layer_enc(xt).numpy(), y_np))

# %% [markdown]
# Its gradients, three ways, with the engine's formulas (a dozen parameter tensors, each
# element nudged twice for the central differences: the full run only):

# %%
if not fast():
    check("TransformerEncoderLayer: the engine's formulas, three ways",
          three_way("TransformerEncoderLayer, the engine's formulas", *CASES["encoder"]()))

# %% [markdown]
# ## 解码器 The decoder as article 000 writes it (000.dec)
#
# `Decoder(X, Y, Mask) = LayerNorm(X + MultiHeadAttention(X, Y, Y) Wᴰ)`: the target tokens X
# ask, the encoder's output Y (the "memory") answers. Missing: the **masked self-attention**
# over the target tokens themselves, which comes first in a real decoder block, and the
# feed-forward sublayer. (Wᴰ duplicates Wᴼ, as Wᴱ did.)
#
# A decoder generates one token at a time, so position i may use target tokens 0..i and
# never a later one. We test that directly: change target token j and see which outputs i
# move. `D[i, j] = 1` when token j reaches output i.

# %%
class ArticleDecoder(nn.Module):
    """000.dec as written: LayerNorm(X + MHA(X, Y, Y) Wᴰ)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, H, batch_first=True)
        self.w_d = nn.Linear(E, E, bias=False)
        self.norm = nn.LayerNorm(E)

    def forward(self, x, y):
        return self.norm(x + self.w_d(self.attn(x, y, y, need_weights=False)[0]))


def dependency(fn, x):
    """D[i, j] = 1 when changing token j of x (N, L, E) changes output i of fn (NumPy in and out)."""
    base = fn(x)
    d = np.zeros((x.shape[1], x.shape[1]), dtype=int)
    for j in range(x.shape[1]):
        moved = x.copy()
        moved[:, j] += rng.standard_normal(x.shape[-1])
        d[:, j] = np.abs(fn(moved) - base).max(axis=(0, 2)) > 1e-9
    return d


def run(module, *args, **kwargs):
    """A NumPy-in, NumPy-out call of a tinylm module."""
    with tinylm.no_grad():
        return module(*(tinylm.Tensor(a) for a in args), **kwargs).numpy()


article_dec = ArticleDecoder().double()
layer_dec = nn.TransformerDecoderLayer(E, H, dim_feedforward=FF, dropout=0.0, batch_first=True).double()
T = 5
tgt = rng.standard_normal((1, T, E))
memory = rng.standard_normal((1, 6, E))                        # the encoder's output for 6 source tokens
future_mask = nn.generate_square_subsequent_mask(T, dtype=np.float64)   # −∞ above the diagonal

deps = {
    "000.dec, Y = memory": dependency(lambda x: run(article_dec, x, memory), tgt),
    "000.dec, Y = X": dependency(lambda x: run(article_dec, x, x), tgt),
    "decoder layer, no mask": dependency(lambda x: run(layer_dec, x, memory), tgt),
    "decoder layer, causal": dependency(lambda x: run(layer_dec, x, memory, tgt_mask=future_mask), tgt),
}
for name, d in deps.items():
    print(f"{name}:\n{d}")
lower = np.tril(np.ones((T, T), dtype=int))
check("000.dec with Y = memory: token i sees no earlier target token (D is diagonal)",
      np.array_equal(deps["000.dec, Y = memory"], np.eye(T, dtype=int)))
check("000.dec on its own tokens (Y = X, Mask unused): every token sees the future",
      deps["000.dec, Y = X"].all())
check("TransformerDecoderLayer without tgt_mask: the future leaks",
      deps["decoder layer, no mask"][np.triu_indices(T, 1)].all())
check("with the causal tgt_mask: exactly the tokens 0..i reach output i",
      np.array_equal(deps["decoder layer, causal"], lower))


# %% [markdown]
# ### 因果掩码 Your turn: the causal mask
#
# `generate_square_subsequent_mask` builds the float form, −∞ above the diagonal.
# MultiheadAttention (and so the decoder's `tgt_mask`) also takes a boolean mask, True where
# query i may **not** look at key j: True means *blocked*, as in PyTorch. Build that one, the
# upper triangle. (Lesson 09's `causal_mask` is the opposite convention, True where attention
# is *allowed*, as tinylm.nn.functional.causal_mask and `attn_mask` of
# scaled_dot_product_attention have it; one is the other's `~`.)

# %%
def blocked_mask(length):
    """(length, length) booleans, True where query i is blocked from key j (j > i, the future)."""
    # BEGIN SOLUTION hint: key j is hidden from query i when j > i: compare np.arange(length) as a row with it as a column (or np.triu with k=1)
    return np.arange(length)[None, :] > np.arange(length)[:, None]
    # END SOLUTION


# %%
graded("blocked_mask(5) is True exactly where the float mask is −∞",
       lambda: np.array_equal(blocked_mask(T), np.isneginf(future_mask.numpy())))
graded("the decoder layer gives the same output with your mask",
       lambda: np.allclose(run(layer_dec, tgt, memory, tgt_mask=blocked_mask(T)),
                           run(layer_dec, tgt, memory, tgt_mask=future_mask)))
graded("with your mask, output i depends on tokens 0..i only",
       lambda: np.array_equal(dependency(lambda x: run(layer_dec, x, memory, tgt_mask=blocked_mask(T)), tgt), lower))
check("blocked (True = may not look, this lesson) is the opposite of allowed (True = may look, lesson 09)",
      np.array_equal(np.isneginf(future_mask.numpy()), ~F.causal_mask(T, T)))

# %% [markdown]
# The real decoder block, three sublayers with Add & Norm each, is checked three ways with the
# engine's formulas (the full run only):

# %%
if not fast():
    check("TransformerDecoderLayer: the engine's formulas, three ways",
          three_way("TransformerDecoderLayer, the engine's formulas", *CASES["decoder"]()))

# %% [markdown]
# ## 基本架构 The whole stack (003.arch)
#
# Article 003's diagram: embedding → N × [multi-head attention, feed-forward, Add & Norm] for
# the encoder; N × [masked multi-head attention, multi-head attention over the encoder's
# output, feed-forward, Add & Norm] for the decoder; Linear; softmax. Its drawing shows one
# Add & Norm per block; the layers have one after *every* sublayer (two in an encoder block,
# three in a decoder block). Attention alone does not see word order, so a position encoding
# is added to the embeddings. A tiny encoder–decoder from tinylm's layers, shapes printed
# at each stage:

# %%
class TinyTransformer(nn.Module):
    """Embedding + position -> encoder ×N; embedding + position -> decoder ×N -> Linear (logits)."""

    def __init__(self, src_vocab, tgt_vocab, d_model=E, nhead=H, num_layers=2, dim_feedforward=FF):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model)
        self.position = nn.SinusoidalPositionalEncoding(d_model, max_len=32)
        block = dict(dim_feedforward=dim_feedforward, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, nhead, **block), num_layers)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(d_model, nhead, **block), num_layers)
        self.out = nn.Linear(d_model, tgt_vocab)

    def forward(self, src, tgt, src_padding=None, show=False):
        stages = [("source ids", src)]
        x = self.position(self.src_embed(src))
        memory = self.encoder(x, src_key_padding_mask=src_padding)
        stages += [("source embedded + position", x), ("encoder ×N = memory", memory), ("target ids", tgt)]
        y = self.position(self.tgt_embed(tgt))
        mask = nn.generate_square_subsequent_mask(tgt.shape[1], dtype=y.dtype)
        h = self.decoder(y, memory, tgt_mask=mask, memory_key_padding_mask=src_padding, tgt_is_causal=True)
        logits = self.out(h)
        stages += [("target embedded + position", y), ("decoder ×N", h), ("Linear: logits", logits)]
        if show:
            for name, t in stages:
                print(f"  {name:<28} {tuple(t.shape)}")
        return logits


model = TinyTransformer(src_vocab=12, tgt_vocab=10).double()
src = np.array([[3, 7, 1, 4, 9], [5, 2, 8, 0, 0]])             # sentence 2 has 3 tokens and 2 pads
src_padding = np.array([[False] * 5, [False, False, False, True, True]])
tgt_in = np.array([[1, 4, 6, 2], [1, 3, 3, 9]])
logits = model(src, tgt_in, src_padding, show=True)
probs = F.softmax(logits, dim=-1)
print(f"  {'softmax: probabilities':<28} {tuple(probs.shape)}")
check("logits are (batch, target length, target vocabulary)", logits.shape == (2, 4, 10))
check("each position's probabilities sum to one", np.allclose(probs.numpy().sum(axis=-1), 1.0))
check("an encoder block has 2 Add & Norms, a decoder block 3",
      sum(isinstance(m, nn.LayerNorm) for m in model.encoder.layers[0].modules()) == 2
      and sum(isinstance(m, nn.LayerNorm) for m in model.decoder.layers[0].modules()) == 3)

# %% [markdown]
# Two behaviour checks on the whole stack: a later target token cannot change an earlier
# prediction (the causal mask, through both decoder blocks), and the source pads change
# nothing (the padding mask, in the encoder and in the decoder's attention over memory).
# Then one cross-entropy loss on the next target tokens: backward reaches every parameter.

# %%
with tinylm.no_grad():
    tgt_changed = tgt_in.copy()
    tgt_changed[:, 3] = 7
    src_changed = src.copy()
    src_changed[1, 3:] = [11, 6]
    base = model(src, tgt_in, src_padding).numpy()
    later = model(src, tgt_changed, src_padding).numpy()
    repadded = model(src_changed, tgt_in, src_padding).numpy()
check("the stack is causal: changing target token 3 leaves predictions 0..2 alone",
      np.allclose(later[:, :3], base[:, :3]) and not np.allclose(later[:, 3], base[:, 3]))
check("the source pads change nothing", np.allclose(repadded, base))

tgt_next = np.array([[4, 6, 2, -100], [3, 3, 9, -100]])        # each position's next token; -100: none, ignored
loss = F.cross_entropy(model(src, tgt_in, src_padding).reshape(-1, 10), tgt_next.reshape(-1), ignore_index=-100)
loss.backward()
print(f"cross-entropy {loss.item():.4f} (log 10 = {np.log(10):.4f} for a uniform guess)")
check("every parameter of the stack gets a gradient",
      all(p.grad is not None and np.abs(p.grad.numpy()).max() > 0 for p in model.parameters()))

# %% [markdown]
# ## 图 Pictures
#
# The four dependency tables of 000.dec side by side, and one decoder block's causal
# self-attention weights (all zero above the diagonal):

# %%
try:
    plt = pyplot()
    from tinylm.viz import attention_heatmap

    fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
    for ax, (name, d) in zip(axes, deps.items()):
        ax.imshow(d, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("changed token j")
        ax.set_ylabel("output i")
    fig.tight_layout()
    picture(fig, "07_dependency.png")
    tgt_t = tinylm.Tensor(tgt)
    _, self_weights = layer_dec.self_attn(tgt_t, tgt_t, tgt_t, attn_mask=future_mask)
    picture(attention_heatmap(self_weights[0], [f"t{i}" for i in range(T)],
                              output_dir() / "07_decoder_self_attention.png", title="masked self-attention"))
    check("the pictures were written", (output_dir() / "07_dependency.png").is_file())
except ImportError:
    print("(matplotlib not installed: no pictures)")
