# %% [markdown]
# # 多头注意力 Multi-head attention (000.mha, 003.mha, 004.mha)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 多头注意力 — multi-head attention — several attentions side by side, each on its own projection,
#   their outputs joined.
# * 头 — head — one of those attentions, of width d_model / heads.
# * 查询 / 键 / 值 — query / key / value — the three projections of the input, W^Q, W^K, W^V.
# * 拆分与拼接 — split and concatenate — cut the width into heads, run them, put the outputs back
#   side by side.
# * 掩码 / 因果掩码 — mask / causal mask — scores set to −∞ before the softmax; causal: no position
#   sees a later one.
# * 热力图 — heatmap — a picture of one head's weights.
# * 梯度 — gradient — ∂L/∂w for every weight w.
# * 勘误 — erratum — a correction of an article.
#
# One attention (lesson 05) gives each query one set of weights over the keys. Multi-head
# attention runs h of them side by side, each on its own small projection of the tokens, and
# joins their outputs:
#
# * **003.mha**, **004.mha** — `head_i = Attention(Q W_iᵠ, K W_iᴷ, V W_iⱽ)`,
#   `MultiHead(Q, K, V) = Concat(head_1, ..., head_h) Wᴼ`.
# * **000.mha** — the same Concat and Wᴼ, with the projections written outside,
#   `MultiHeadAttention(Q, K, V) = MultiHead(QWᵠ, KWᴷ, VWⱽ)`, but without ever saying what
#   head_i is.
#
# This lesson runs article 000's version to see what is missing, computes the heads by hand
# in NumPy, matches them with `tinylm.nn.MultiheadAttention` (whose weights are stored the
# way PyTorch stores them), adds the two kinds of mask, and checks the gradients three ways.
# You write the split into heads, the Concat, and the gradient of the projection weights.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check.attention_formulas import CASES, attention, attention_backward
from tinylm.lesson import check, fast, graded, output_dir, picture, three_way

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)


# %% [markdown]
# Four tokens with 4-dimensional embeddings, h = 2 heads of d = E/h = 2 features each, and
# the four weight matrices in the articles' convention (a token is a row, projected by
# `x W`). Small rounded numbers, so every step can be printed.

# %%
tokens = ["I", "like", "eating", "apples"]
E, h = 4, 2
d = E // h
X = np.round(rng.normal(0, 1, (4, E)), 1)
W_Q, W_K, W_V, W_O = (np.round(rng.normal(0, 0.8, (E, E)), 1) for _ in range(4))
print("X =\n", X, "\nWᵠ =\n", W_Q)

# %% [markdown]
# ## 勘误 Erratum: head_i is never defined (000.mha)
#
# Article 000 projects once, `QWᵠ, KWᴷ, VWⱽ`, and then concatenates h heads without saying
# what a head computes. The only thing its symbols allow is attention on the full projections,
# the same for every head. Run that reading: h copies of a (4, E) head make a (4, h·E) Concat,
# which Wᴼ, (E, E) as in the layer, cannot multiply.

# %%
full_head, _ = attention(X @ W_Q, X @ W_K, X @ W_V)
concat_000 = np.concatenate([full_head] * h, axis=1)
try:
    tinylm.Tensor(concat_000) @ tinylm.Tensor(W_O)
    shape_error = None
except ValueError as err:
    shape_error = str(err)
print("Concat(head, head) Wᴼ:", shape_error)
check("the article's Concat (4, 8) does not fit Wᴼ (4, 4)", shape_error is not None)

# %% [markdown]
# Give Wᴼ h·E rows so that it fits, and a worse problem shows: every head is the same, so
# `Concat(head, ..., head) Wᴼ = head (Wᴼ_1 + ... + Wᴼ_h)`, where Wᴼ_i are Wᴼ's row blocks.
# That is a single attention with one weight pattern per query: the h heads add nothing.

# %%
W_O_wide = np.round(rng.normal(0, 0.8, (h * E, E)), 1)
out_000 = concat_000 @ W_O_wide
one_head = full_head @ sum(np.split(W_O_wide, h))
check("with a wider Wᴼ, the article's multi-head equals one head", np.allclose(out_000, one_head))

# %% [markdown]
# ## 多头注意力 The heads by hand (003.mha, 004.mha)
#
# Article 003 (and 004) define the heads: head i has its own projections `W_iᵠ, W_iᴷ, W_iⱽ`
# of shape (E, d), d = E/h. Put side by side, the h matrices W_iᵠ are one (E, E) matrix Wᵠ,
# so head i's projection is the column block i·d .. (i+1)·d of Wᵠ: one big projection,
# cut into slices. Each head then attends in its own d-dimensional space, with its own
# weights.

# %%
def multihead_by_hand(x_q, x_k, x_v, mask=0.0):
    """Concat(head_1, ..., head_h) Wᴼ with head_i = Attention(x_q W_iᵠ, x_k W_iᴷ, x_v W_iⱽ);
    mask M is added to every head's scores. Returns (output, [head i's weights])."""
    heads, head_weights = [], []
    for i in range(h):
        cols = slice(i * d, (i + 1) * d)                        # head i's columns
        o_i, saved = attention(x_q @ W_Q[:, cols], x_k @ W_K[:, cols], x_v @ W_V[:, cols], mask)
        heads.append(o_i)                                       # head_i, (..., L, d)
        head_weights.append(saved[3])                           # its softmax weights, (..., L, S)
    return np.concatenate(heads, axis=-1) @ W_O, head_weights   # Concat(...) Wᴼ


mh, head_weights = multihead_by_hand(X, X, X)
for i, w in enumerate(head_weights):
    print(f"head {i + 1} weights =\n", w)
print("MultiHead =\n", mh)
check("the two heads attend differently", not np.allclose(head_weights[0], head_weights[1], atol=0.05))

# %% [markdown]
# ## tinylm.nn.MultiheadAttention
#
# The layer stores the three projections as PyTorch does: one `in_proj_weight` of shape
# (3E, E) with rows `[Wᵠᵀ; Wᴷᵀ; Wⱽᵀ]`, transposed because a Linear computes `y = x Wᵀ + b`, and
# Wᴼ as the Linear `out_proj`. So head i's query projection W_iᵠ is rows i·d .. (i+1)·d of
# the first block of in_proj_weight, transposed. Load our matrices (biases zero) and compare.
# The parameters are switched to float64 first, since gradients are checked below.

# %%
mha = tinylm.nn.MultiheadAttention(E, h, batch_first=True)
for p in mha.parameters():
    p.data = p.data.astype(np.float64)
mha.load_state_dict({"in_proj_weight": np.concatenate([W_Q.T, W_K.T, W_V.T]), "in_proj_bias": np.zeros(3 * E),
                     "out_proj.weight": W_O.T, "out_proj.bias": np.zeros(E)})

w_q, w_k, w_v = np.split(mha.in_proj_weight.numpy(), 3)        # three (E, E) blocks of rows
check("in_proj_weight = [Wᵠᵀ; Wᴷᵀ; Wⱽᵀ]", np.array_equal(w_q, W_Q.T) and np.array_equal(w_k, W_K.T)
      and np.array_equal(w_v, W_V.T))
check("head i's W_iᵠ is rows i·d..(i+1)·d of the query block, transposed",
      all(np.array_equal(w_q[i * d:(i + 1) * d].T, W_Q[:, i * d:(i + 1) * d]) for i in range(h)))

Xt = tinylm.Tensor(X[None])                                    # a batch of one sentence, (1, 4, E)
out_t, weights_t = mha(Xt, Xt, Xt, average_attn_weights=False)
print("tinylm output =\n", out_t.numpy()[0])
check("tinylm's MultiheadAttention equals the heads by hand", np.allclose(out_t.numpy()[0], mh))
check("and its per-head weights too", all(np.allclose(weights_t.numpy()[0, i], head_weights[i]) for i in range(h)))
check("the default weights are the heads' average",
      np.allclose(mha(Xt, Xt, Xt)[1].numpy()[0], np.mean(head_weights, axis=0)))


# %% [markdown]
# ## 拆分与拼接 Your turn: splitting into heads and Concat
#
# The loop above slices one head at a time. The layer does all heads at once: reshape the
# projected (N, L, E) array to (N, L, h, d), then move the head axis forward to get
# (N, h, L, d), a batch of h attentions. Concat is the reverse. Write both.

# %%
def split_heads(x, num_heads):
    """(N, L, E) -> (N, num_heads, L, E/num_heads): head i gets columns i·d .. (i+1)·d."""
    # BEGIN SOLUTION hint: reshape to (N, L, num_heads, d), then swap axes 1 and 2
    n, length, e = x.shape
    return x.reshape(n, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)
    # END SOLUTION


def merge_heads(x):
    """(N, h, L, d) -> (N, L, h·d): Concat(head_1, ..., head_h) along the features."""
    # BEGIN SOLUTION hint: undo split_heads: swap axes 1 and 2 back, then reshape to (N, L, h·d)
    n, heads, length, dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, length, heads * dim)
    # END SOLUTION


# %%
def multihead_vectorised(x):
    """All heads at once with your split_heads and merge_heads."""
    q, k, v = (split_heads((x @ w)[None], h) for w in (W_Q, W_K, W_V))
    return merge_heads(attention(q, k, v)[0])[0] @ W_O


Q_all = X @ W_Q
graded("split_heads gives head i the columns i·d..(i+1)·d",
       lambda: all(np.array_equal(split_heads(Q_all[None], h)[0, i], Q_all[:, i * d:(i + 1) * d]) for i in range(h)))
graded("merge_heads undoes split_heads", lambda: np.array_equal(merge_heads(split_heads(Q_all[None], h))[0], Q_all))
graded("all heads at once equal tinylm's MultiheadAttention",
       lambda: np.allclose(multihead_vectorised(X), out_t.numpy()[0]))

# %% [markdown]
# ## 掩码 Masks
#
# Two masks keep a query from some keys; each puts −∞ on the hidden scores, so their weight is
# e^{−∞} = 0. For `MultiheadAttention`, **True means masked** (may NOT attend):
#
# * `attn_mask` (L, S), the same for every sentence — here the causal mask, True above the
#   diagonal, so token i sees tokens 0..i only (a language model must not read ahead);
#   `tinylm.nn.generate_square_subsequent_mask(L)` is the float form, −∞ above the diagonal;
# * `key_padding_mask` (N, S), per sentence — True at padding, so no query reads a pad.
#
# A batch of two: our sentence, and a second one of three real tokens plus a pad.

# %%
causal = np.triu(np.ones((4, 4), dtype=bool), k=1)            # True above the diagonal
print("causal attn_mask (True = masked):\n", causal.astype(int))
out_c, w_c = mha(Xt, Xt, Xt, attn_mask=causal, average_attn_weights=False)
mh_c, hw_c = multihead_by_hand(X, X, X, np.where(causal, -np.inf, 0.0))
check("causal: tinylm equals the heads by hand with M = −∞ above the diagonal", np.allclose(out_c.numpy()[0], mh_c))
check("causal: every weight above the diagonal is 0", np.all(w_c.numpy()[0][:, causal] == 0))
out_f = mha(Xt, Xt, Xt, attn_mask=tinylm.nn.generate_square_subsequent_mask(4, dtype=np.float64))[0]
check("the float mask (−∞ above the diagonal) gives the same", np.allclose(out_f.numpy(), out_c.numpy()))

X_later = X.copy()
X_later[3] += 5.0                                             # change only the last token
out_later = mha(tinylm.Tensor(X_later[None]), tinylm.Tensor(X_later[None]), tinylm.Tensor(X_later[None]),
                attn_mask=causal)[0]
check("causal: changing the last token leaves tokens 0..2 unchanged",
      np.allclose(out_later.numpy()[0, :3], out_c.numpy()[0, :3]))

# %% [markdown]
# `scaled_dot_product_attention` (PyTorch's function, lesson 05) uses the **opposite** boolean
# convention: True means "may attend". The same causal head, both ways:

# %%
q0, k0, v0 = (tinylm.Tensor(X @ w[:, :d]) for w in (W_Q, W_K, W_V))   # head 1's projections
head0 = F.scaled_dot_product_attention(q0, k0, v0, attn_mask=~causal)
check("sdpa with attn_mask = ~causal is head 1 under the causal mask",
      np.allclose(head0.numpy(), attention(X @ W_Q[:, :d], X @ W_K[:, :d], X @ W_V[:, :d],
                                           np.where(causal, -np.inf, 0.0))[0]))
check("and equals is_causal=True", np.allclose(head0.numpy(), F.scaled_dot_product_attention(q0, k0, v0,
                                                                                            is_causal=True).numpy()))

# %%
X2 = np.stack([X, np.round(rng.normal(0, 1, (4, E)), 1)])     # (2, 4, E): two sentences
padding = np.array([[False, False, False, False], [False, False, False, True]])
X2t = tinylm.Tensor(X2)
out_p, w_p = mha(X2t, X2t, X2t, key_padding_mask=padding, average_attn_weights=False)
mh_p, _ = multihead_by_hand(X2, X2, X2, np.where(padding, -np.inf, 0.0)[:, None, :])   # (N, 1, S)
check("padding: tinylm equals the heads by hand", np.allclose(out_p.numpy(), mh_p))
check("padding: no query of sentence 2 gives the pad any weight", np.all(w_p.numpy()[1, :, :, 3] == 0))
X2_other = X2.copy()
X2_other[1, 3] = 9.0                                          # put anything in the pad
out_other = mha(tinylm.Tensor(X2_other), tinylm.Tensor(X2_other), tinylm.Tensor(X2_other),
                key_padding_mask=padding)[0]
check("padding: what sits in the pad changes none of the real tokens",
      np.allclose(out_other.numpy()[:, :3], out_p.numpy()[:, :3]))

# %% [markdown]
# ## 热力图 One heatmap per head
#
# Each head has its own pattern, which is the point of having several. With and without the
# causal mask:

# %%
try:
    import matplotlib  # noqa: F401  (attention_heatmap draws with it)
    from tinylm.viz import attention_heatmap

    for i in range(h):
        picture(attention_heatmap(weights_t[0, i], tokens, output_dir() / f"06_head{i + 1}.png",
                                  title=f"head {i + 1}"))
        picture(attention_heatmap(w_c[0, i], tokens, output_dir() / f"06_head{i + 1}_causal.png",
                                  title=f"head {i + 1}, causal mask"))
    check("one heatmap per head was written", all((output_dir() / f"06_head{i + 1}.png").is_file() for i in range(h)))
except ImportError:
    print("(matplotlib not installed: no heatmaps)")

# %% [markdown]
# ## 梯度 The gradients, three ways
#
# Backward goes through the same steps in reverse, with `G = dL/d(output)` and the Linear
# convention `y = x Wᵀ + b` the layer uses:
#
# * `out = C Wᴼᵀ + bᴼ`, C the Concat: `dWᴼ = Gᵀ C`, `dbᴼ = Σ G`, `dC = G Wᴼ`;
# * Concat: head i's gradient is the column block i of dC;
# * each head: lesson 05's attention backward gives `dQ_i, dK_i, dV_i`; placed back in their
#   columns they make dQ, dK, dV (N, L, E);
# * `Q = x_q Wᵠᵀ + bᵠ`: `dWᵠ = dQᵀ x_q` and `dbᵠ = Σ dQ`, summed over every sentence and
#   position, and `dx_q = dQ Wᵠ`; the same for K and V. in_proj_weight's gradient is the three
#   stacked in its order, `[dWᵠ; dWᴷ; dWⱽ]`.
#
# The engine's formulas (tinylm/check/attention_formulas.py) on a layer with biases and a
# padding mask, against autograd and central differences (the full run only; your version
# below runs every time):

# %%
mha_fn, engine_formula, mha_inputs = CASES["mha"]()
if not fast():
    check("MultiheadAttention: the engine's formulas, three ways",
          three_way("MultiheadAttention, the engine's formulas", mha_fn, engine_formula, mha_inputs))


# %% [markdown]
# Now write the last step, the gradient of the projection weights. `d_q`, `d_k`, `d_v` are
# the gradients of the projected queries, keys and values, (N, L, E) and (N, S, E).

# %%
def in_proj_grads(x_q, x_k, x_v, d_q, d_k, d_v):
    """(d in_proj_weight (3E, E), d in_proj_bias (3E,)) of Q = x_q Wᵠᵀ + bᵠ, K = ..., V = ..."""
    # BEGIN SOLUTION hint: flatten every array to rows (-1, E); dW = dPᵀ x and db = Σ_rows dP for each (x, dP) pair; stack them in the order Q, K, V
    rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
    pairs = ((x_q, d_q), (x_k, d_k), (x_v, d_v))
    d_weight = np.concatenate([rows(dp).T @ rows(x) for x, dp in pairs])
    d_bias = np.concatenate([rows(dp).sum(axis=0) for _, dp in pairs])
    return d_weight, d_bias
    # END SOLUTION


# %%
def mha_formula_with_yours(grad_out, query, key, value, num_heads, key_padding_mask, **p):
    """MultiheadAttention's gradients by hand, head by head, with your in_proj_grads."""
    dim = query.shape[-1] // num_heads
    w_q, w_k, w_v = np.split(p["in_proj_weight"], 3)
    b_q, b_k, b_v = np.split(p["in_proj_bias"], 3)
    q, k, v = query @ w_q.T + b_q, key @ w_k.T + b_k, value @ w_v.T + b_v
    mask = np.where(key_padding_mask, -np.inf, 0.0)[:, None, :]          # (N, 1, S): padded keys, every query
    d_concat = grad_out @ p["out_proj.weight"]                            # dC = G Wᴼ
    concat, d_q, d_k, d_v = (np.zeros_like(a) for a in (q, q, k, v))
    for i in range(num_heads):
        cols = slice(i * dim, (i + 1) * dim)
        concat[..., cols], saved = attention(q[..., cols], k[..., cols], v[..., cols], mask)
        d_q[..., cols], d_k[..., cols], d_v[..., cols] = attention_backward(d_concat[..., cols], saved)
    d_in_weight, d_in_bias = in_proj_grads(query, key, value, d_q, d_k, d_v)
    rows_g, rows_c = grad_out.reshape(-1, grad_out.shape[-1]), concat.reshape(-1, concat.shape[-1])
    return {"query": d_q @ w_q, "key": d_k @ w_k, "value": d_v @ w_v,
            "in_proj_weight": d_in_weight, "in_proj_bias": d_in_bias,
            "out_proj.weight": rows_g.T @ rows_c, "out_proj.bias": rows_g.sum(axis=0)}


graded("your projection-weight gradients: autograd vs numeric vs yours",
       lambda: three_way("MultiheadAttention, your in_proj gradients", mha_fn, mha_formula_with_yours, mha_inputs))
