# %% [markdown]
# # 注意力机制 Attention: softmax(QKᵀ/√d_k)V (000.attn, 001.softmax, 004.attn.steps, 001.weighted, 001.example)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 注意力机制 — attention mechanism — each position takes a weighted mix of the values of all
#   positions.
# * 查询 / 键 / 值 — query / key / value — q_i asks, each key k_j says how well it matches, the
#   values v_j are what gets mixed.
# * 密钥 — key (article 000's word) — 密钥 is a cryptographic key; the usual term is 键.
# * 注意力分数 — attention score — z_ij = q_i·k_j/√d_k, before the softmax (article 001 gives this
#   name to the weights α).
# * 注意力权重 — attention weight — α_ij = softmax of the scores: non-negative, each row sums to 1.
# * 软最大函数 — softmax function — e^{z_i}/Σ_j e^{z_j}; article 003 says 软最大值, article 000
#   writes 软件函数 ("software function").
# * 加权输出 — weighted output — o_i = Σ_j α_ij v_j, the attention's result.
# * 自注意力 — self-attention — queries, keys and values all come from one sequence.
# * 热力图 — heatmap — a picture of the weight matrix, one colour per α_ij.
#
# Four of the five articles describe the same computation, each from a different side:
#
# * **001.softmax** — the softmax function `α_i = e^{z_i} / Σ_j e^{z_j}` that turns scores into
#   weights. Article 001 writes it with 注意力分数 (attention score) on the left, but its α_i are
#   the attention *weights* (注意力权重): the scores are the z_i that go in. (The Chinese name
#   软最大值, "soft maximum", is article 003's; article 000 misnames the function, below.)
# * **000.attn** — the whole formula `Attention(Q, K, V) = softmax(QKᵀ / √d_k) V`.
# * **004.attn.steps** — the same formula as four steps: project the tokens to queries, keys
#   and values; take query·key dot products; scale and softmax; mix the values.
# * **001.weighted** and **001.example** — article 001's "weighted output" and its worked
#   example. Both are wrong, and this lesson runs them to show how.
#
# Each piece is computed by hand in NumPy, then with tinylm, and the gradients are checked
# three ways. You write two backward passes yourself: the softmax's and the whole attention's.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check.attention_formulas import CASES, softmax_formula
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot, three_way

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)


def leaf(array):
    """A float64 tensor that collects a gradient."""
    return tinylm.Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


# %% [markdown]
# ## Softmax 软最大函数 (001.softmax)
#
# Softmax exponentiates each score and divides by the total, so the weights are positive and
# sum to one; a larger score gets a larger share. Article 000 calls it 软件函数 ("software
# function"), a slip for 软最大函数 / softmax function (article 003 says 软最大值). Three
# scores by hand:

# %%
z = np.array([2.0, 0.0, -2.0])
e = np.exp(z)                       # [e², e⁰, e⁻²] = [7.3891, 1, 0.1353]
alpha = e / e.sum()                 # 7.3891 / 8.5244 = 0.8668, ...
print("e^z =", e, " sum =", e.sum(), " α =", alpha)
check("the weights sum to one", np.isclose(alpha.sum(), 1.0))
check("α₁ = e² / (e² + e⁰ + e⁻²) = 0.8668", abs(alpha[0] - 0.8668) < 5e-5)
check("tinylm's softmax gives the same", np.allclose(F.softmax(tinylm.Tensor(z)).numpy(), alpha))

# %% [markdown]
# ### Why subtract the maximum
#
# `e^{z}` overflows a float64 above z ≈ 709. Scores of 10⁴ are not exotic (an unscaled dot
# product of long vectors, or a logit before a low temperature), and the textbook formula
# then computes ∞ / ∞ = NaN. Softmax does not change when the same number is subtracted from
# every score (it cancels between numerator and denominator), so we subtract the largest one:
# every exponent is then ≤ 0 and the largest term is exactly 1.

# %%
big = np.array([1e4, 0.0, -1e4])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(big) / np.exp(big).sum()
print("naive softmax of [1e4, 0, -1e4]:", naive)


def softmax_np(z):
    """Softmax along the last axis, computed stably: subtract each row's maximum first."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


stable = softmax_np(big)
print("with the maximum subtracted:   ", stable)
check("the naive formula gives NaN at logits of 1e4", np.isnan(naive).any())
check("the shifted one is finite and one-hot", np.array_equal(stable, [1.0, 0.0, 0.0]))
check("shifting changes nothing where the naive one works", np.allclose(softmax_np(z), alpha))
check("tinylm's softmax stays finite too", np.array_equal(F.softmax(tinylm.Tensor(big)).numpy(), stable))

# %% [markdown]
# ### The softmax's gradient
#
# With `y = softmax(x)`, `∂y_i/∂x_j = y_i (δ_ij − y_j)`: the Jacobian is `diag(y) − y yᵀ`.
# Backward never builds that matrix; it needs only the product with the upstream gradient
# `g = dL/dy`:
#
#     dx_i = Σ_j g_j y_j (δ_ji − y_i) = y_i g_i − y_i Σ_j g_j y_j = y_i (g_i − Σ_j g_j y_j)
#
# so `dx = y ⊙ (g − Σ_j g_j y_j)`, row by row. Here is the engine's own formula
# (tinylm/check/attention_formulas.py) against autograd and central differences; then you
# write it.

# %%
x_soft = leaf(rng.normal(0, 2, (3, 5)))
check("softmax: the engine's formula, three ways",
      three_way("softmax, the engine's formula", lambda input: F.softmax(input, dim=-1), softmax_formula,
                {"input": x_soft}))


# %%
def softmax_vjp(y, g):
    """dL/dx for y = softmax(x) along the last axis, given y and g = dL/dy."""
    # BEGIN SOLUTION hint: dx = y ⊙ (g − Σ_j g_j y_j), the sum along the last axis with keepdims=True
    return y * (g - (g * y).sum(axis=-1, keepdims=True))
    # END SOLUTION


# %%
y_row, g_row = softmax_np(np.array([1.0, -0.5, 0.25, 2.0])), np.array([0.3, -1.0, 0.5, 0.2])
jacobian = np.diag(y_row) - np.outer(y_row, y_row)        # ∂y_i/∂x_j = y_i (δ_ij − y_j)
graded("your softmax_vjp equals (diag(y) − y yᵀ) g",
       lambda: np.allclose(softmax_vjp(y_row, g_row), jacobian @ g_row))
graded("your softmax_vjp: autograd vs numeric vs yours",
       lambda: three_way("softmax, your formula", lambda x: F.softmax(x, dim=-1),
                         lambda g, x: {"x": softmax_vjp(softmax_np(x), g)}, {"x": x_soft}))

# %% [markdown]
# ## 注意力 Attention(Q, K, V) = softmax(QKᵀ/√d_k) V (000.attn)
#
# Each of the L queries (rows of Q) is compared with each of the S keys (rows of K) by a dot
# product; the scores are divided by √d_k, the keys' width; a softmax over the keys turns
# each row into weights; and each query's output is the weighted average of the value rows.
# Article 000 calls the keys 密钥 (a cryptographic key); the usual term is 键.
#
# Two queries, three keys and values, d_k = 2:

# %%
Q = np.array([[1.0, 0.0], [0.0, 1.0]])
K = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
V = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
S = Q @ K.T / np.sqrt(2)            # [[1, 0, 1], [0, 1, 1]] / √2
A = softmax_np(S)                   # row 0: [e^0.7071, 1, e^0.7071] / 5.0562 = [0.4011, 0.1978, 0.4011]
O = A @ V                           # row 0: 0.4011·[1, 0] + 0.1978·[0, 1] + 0.4011·[2, 2]
print("scores / √d_k =\n", S, "\nweights =\n", A, "\noutput =\n", O)
check("row 0's weights by hand", np.allclose(A[0], [0.4011, 0.1978, 0.4011], atol=5e-5))
check("row 0's output by hand", np.allclose(O[0], [1.2033, 1.0], atol=5e-5))
O_tiny = F.scaled_dot_product_attention(tinylm.Tensor(Q), tinylm.Tensor(K), tinylm.Tensor(V))
check("tinylm's scaled_dot_product_attention agrees", np.allclose(O_tiny.numpy(), O))

# %% [markdown]
# ## 自注意力的步骤 The four steps (004.attn.steps)
#
# In a model, Q, K and V are not given: each token's embedding x_i is projected three ways,
# `q_i = x_i W_Q`, `k_i = x_i W_K`, `v_i = x_i W_V`. Four tokens with 4-dimensional
# embeddings, projected to d_k = 3:

# %%
tokens = ["I", "like", "eating", "apples"]
X = np.round(rng.normal(0, 1, (4, 4)), 1)
W_Q, W_K, W_V = (np.round(rng.normal(0, 0.7, (4, 3)), 1) for _ in range(3))

Qs, Ks, Vs = X @ W_Q, X @ W_K, X @ W_V      # step 1: projections, each (4, 3)
dots = Qs @ Ks.T                            # step 2: dot products q_i·k_j, (4, 4)
weights = softmax_np(dots / np.sqrt(3))     # step 3: scale by 1/√d_k and softmax each row
out = weights @ Vs                          # step 4: o_i = Σ_j α_ij v_j
print("X =\n", X, "\nq_i·k_j =\n", dots, "\nα =\n", weights, "\noutput =\n", out)
check("every row of weights sums to one", np.allclose(weights.sum(axis=1), 1.0))

# %% [markdown]
# The same four steps with tinylm tensors, ending in the engine's
# `tinylm.nn.functional.scaled_dot_product_attention` (PyTorch's name and arguments):

# %%
Xt = tinylm.Tensor(X)
Qt, Kt, Vt = Xt @ tinylm.Tensor(W_Q), Xt @ tinylm.Tensor(W_K), Xt @ tinylm.Tensor(W_V)
out_t = F.scaled_dot_product_attention(Qt, Kt, Vt)
check("tinylm's four steps equal the hand computation", np.allclose(out_t.numpy(), out))
_, weights_t = F.attention(Qt, Kt, Vt)      # the same call, also returning the weights
check("and so do its weights", np.allclose(weights_t.numpy(), weights))

# %% [markdown]
# ## 为什么除以 √d_k Why divide by √d_k
#
# If the entries of q and k are independent with mean 0 and variance 1, then `q·k` is a sum of
# d_k products, each of variance 1, so `Var(q·k) = d_k`: the scores spread out as the vectors
# get longer. Wide scores saturate the softmax: one weight near 1, the rest near 0, and the
# Jacobian `diag(y) − y yᵀ` near zero, so almost no gradient reaches Q and K. Dividing by
# √d_k brings the variance back to 1 at every width. Measured on random vectors, 8 keys per
# query (the last column is the softmax's gradient size, Σ|J| of its Jacobian):

# %%
samples = 500 if fast() else 2000
widths = [4, 64, 1024]
rows = []
for d_k in widths:
    q = rng.standard_normal((samples, 1, d_k))
    k = rng.standard_normal((samples, 8, d_k))
    raw = (q @ k.transpose(0, 2, 1))[:, 0]                      # (samples, 8) dot products
    for name, s in (("q·k", raw), ("q·k/√d_k", raw / np.sqrt(d_k))):
        y = softmax_np(s)
        jac = np.abs(y[:, :, None] * np.eye(8) - y[:, :, None] * y[:, None, :]).sum(axis=(1, 2))
        rows.append((d_k, name, s.var(), y.max(axis=1).mean(), jac.mean()))
print(f"{'d_k':>5}  {'scores':<9} {'variance':>9} {'largest weight':>15} {'Σ|J|':>7}")
for d_k, name, var, top, jac in rows:
    print(f"{d_k:>5}  {name:<9} {var:>9.2f} {top:>15.3f} {jac:>7.3f}")
raw_rows, scaled_rows = rows[0::2], rows[1::2]
check("Var(q·k) ≈ d_k", all(abs(r[2] / r[0] - 1) < 0.15 for r in raw_rows))
check("Var(q·k/√d_k) ≈ 1 at every width", all(abs(r[2] - 1) < 0.15 for r in scaled_rows))
check("unscaled at d_k = 1024 the softmax is almost one-hot", raw_rows[-1][3] > 0.9)
check("... and passes back less than a tenth of the gradient", raw_rows[-1][4] < 0.1 * scaled_rows[-1][4])
check("scaled, the weights stay spread out", all(r[3] < 0.5 for r in scaled_rows))

# %% [markdown]
# ## 注意力的梯度 Attention's backward pass
#
# Go back through the forward steps `S = Q Kᵀ s` (s = 1/√d_k), `A = softmax(S)`, `O = A V`
# with `G = dL/dO`:
#
# * `O = A V`: `dV = Aᵀ G` and `dA = G Vᵀ` (the matrix-product rule);
# * `A = softmax(S)` row by row: `dS = softmax_vjp(A, dA)`, your function above;
# * `S = Q Kᵀ s`: `dQ = dS K s` and `dK = dSᵀ Q s`.
#
# First the engine's formulas on a masked example (tinylm.check.attention_formulas; a masked
# score is a constant −∞, so the mask drops out of the gradient), then yours.

# %%
check("attention with a mask: the engine's formulas, three ways",
      three_way("softmax(QKᵀ/√d_k + M)V, the engine's formulas", *CASES["attention"]()))


# %%
def attention_backward(q, k, v, g):
    """(dQ, dK, dV) of O = softmax(Q Kᵀ/√d_k) V, given g = dL/dO; arrays (..., L or S, d)."""
    # BEGIN SOLUTION hint: redo the forward (s = 1/√d_k, A = softmax_np(Q Kᵀ s)); dV = Aᵀ G, dA = G Vᵀ, dS = softmax_vjp(A, dA), dQ = dS K s, dK = dSᵀ Q s
    s = 1.0 / np.sqrt(q.shape[-1])
    a = softmax_np(q @ np.swapaxes(k, -1, -2) * s)
    d_v = np.swapaxes(a, -1, -2) @ g
    d_s = softmax_vjp(a, g @ np.swapaxes(v, -1, -2))
    return d_s @ k * s, np.swapaxes(d_s, -1, -2) @ q * s, d_v
    # END SOLUTION


# %%
qkv = {"query": leaf(rng.standard_normal((2, 3, 4))), "key": leaf(rng.standard_normal((2, 5, 4))),
       "value": leaf(rng.standard_normal((2, 5, 3)))}
graded("your attention_backward: autograd vs numeric vs yours",
       lambda: three_way("softmax(QKᵀ/√d_k)V, your formula", F.scaled_dot_product_attention,
                         lambda g, query, key, value: attention_backward(query, key, value, g), qkv))

# %% [markdown]
# ## 加权输出 Erratum: the weighted output is a weighted sum, not ⊙ (001.weighted)
#
# Article 001 (§4.2.2) writes the self-attention output as "embedding ⊙ attention score" and
# calls ⊙ a dot product. Two mistakes: ⊙ is the element-wise (Hadamard) product, not a dot
# product (a dot product of two vectors is one number); and attention does not multiply each
# embedding by its scores, it mixes the value vectors: `o_i = Σ_j α_ij v_j`, i.e. `O = A V`.
#
# Run the article's version on the four tokens above, with the vectors they carry (their
# values, 4 × 3) as the "embedding" and their 4 × 4 weights as the "score".

# %%
try:
    tinylm.Tensor(Vs) * tinylm.Tensor(weights)
    failure = None
except ValueError as err:
    failure = str(err)
print("embedding ⊙ score:", failure)
check("⊙ of (4, 3) vectors and (4, 4) scores is a shape error", failure is not None and "(4, 3)" in failure)
check("⊙ is not a dot product: [1,0,-1] ⊙ [1,0,-1] is a vector, the dot product 2",
      np.array_equal(np.array([1, 0, -1]) * np.array([1, 0, -1]), [1, 0, 1]) and np.dot([1, 0, -1], [1, 0, -1]) == 2)

# %% [markdown]
# When the number of tokens happens to equal the width, ⊙ runs and returns nonsense. A test
# any attention must pass: if every token carries the same value vector v, every output is v,
# because the weights of each row sum to one. Three tokens, width three:

# %%
v_same = np.tile([1.0, 2.0, 3.0], (3, 1))                     # three tokens, all with value [1, 2, 3]
a3 = softmax_np(rng.normal(0, 1, (3, 3)))
print("article (⊙):   \n", v_same * a3)
print("weighted sum:  \n", a3 @ v_same)
check("the article's ⊙ fails the same-value test", not np.allclose(v_same * a3, v_same))
check("Σ_j α_ij v_j passes it", np.allclose(a3 @ v_same, v_same))

# %% [markdown]
# The correct output, one row at a time as the sum `o_i = Σ_j α_ij v_j`, equals `A V` and
# tinylm's output for the four tokens:

# %%
by_sum = np.array([sum(weights[i, j] * Vs[j] for j in range(4)) for i in range(4)])
check("Σ_j α_ij v_j = A V = tinylm's attention", np.allclose(by_sum, out) and np.allclose(by_sum, out_t.numpy()))

# %% [markdown]
# ## 案例分析 Erratum: the worked example (001.example)
#
# Article 001 (§4.3) feeds the token ids `[1, 2, 3, 4, 5]` through an "embedding vector"
# `[1, 0, -1]`, then a self-attention layer. Several things go wrong.
#
# **Shapes.** An embedding layer is a table with one row per id; a single 3-vector is a table
# of three numbers, so ids 3, 4 and 5 have no row. The article's embedded sequence
# `[1, 0, -1, 1, 0]` is one number per token, yet the dot product it then takes is between
# 3-vectors.

# %%
ids = np.array([1, 2, 3, 4, 5])
try:
    F.embedding(ids, tinylm.Tensor(np.array([1.0, 0.0, -1.0])))
    lookup_error = None
except IndexError as err:
    lookup_error = str(err)
print(lookup_error)
try:
    np.dot(np.array([1, 0, -1, 1, 0]), np.array([1, 0, -1]))
    dot_error = None
except ValueError as err:
    dot_error = str(err)
print("sequence · embedding:", dot_error)
check("one 3-vector cannot embed five ids", lookup_error is not None)
check("the embedded sequence (5,) and the embedding (3,) do not line up", dot_error is not None)

# %% [markdown]
# **Scores.** The article computes one dot product, `[1,0,-1]·[1,0,-1] = 2`, then a softmax
# over three scores `2, 0, −2`: the 0 and −2 are never derived, and five tokens should give
# five scores per query. **Arithmetic.** Even taking the three scores as given,
# `e² / (e² + e⁰ + e⁻²) = 7.3891 / 8.5244 = 0.8668`, not the article's 0.8647 (which happens
# to be `1 − e⁻²`).

# %%
article_value = 0.8647
correct_value = np.exp(2) / (np.exp(2) + np.exp(0) + np.exp(-2))
print(f"e²/(e²+e⁰+e⁻²) = {correct_value:.6f}, article {article_value}, 1 − e⁻² = {1 - np.exp(-2):.6f}")
check("e²/(e²+e⁰+e⁻²) = 0.8668", abs(correct_value - 0.8668) < 5e-5)
check("the article's 0.8647 is off by 0.002", abs(correct_value - article_value) > 1e-3)
check("0.8647 is 1 − e⁻², not the softmax", abs(1 - np.exp(-2) - article_value) < 5e-5)

# %% [markdown]
# **Output.** The article's "output" `[1,0,-1] ⊙ 0.8647 = [0.8647, 0, −0.8647]` shrinks one
# vector; it mixes nothing, and its weights (0.8647 three times) do not sum to one.
#
# ### The example done right
#
# Give each id a row of a 6 × 3 embedding table, with token 1 at the article's `[1, 0, −1]`
# and tokens 2 and 3 chosen so that their dot products with token 1 are exactly the
# article's 0 and −2. Self-attention with Q = K = V = the embeddings (no projections, as
# the article intends):

# %%
table = np.array([[0.0, 0.0, 0.0],      # id 0 (unused)
                  [1.0, 0.0, -1.0],     # id 1, the article's vector
                  [0.0, 1.0, 0.0],      # id 2: ·[1,0,-1] = 0
                  [-1.0, 0.0, 1.0],     # id 3: ·[1,0,-1] = −2
                  [1.0, 1.0, 0.0],      # id 4: ·[1,0,-1] = 1
                  [0.0, 0.0, 1.0]])     # id 5: ·[1,0,-1] = −1
E5 = table[ids]                                   # (5, 3): one row per token
z1 = E5 @ E5[0]                                   # token 1's five scores
print("token 1's dot products with tokens 1..5:", z1)
check("tokens 1, 2, 3 give the article's 2, 0, −2", np.array_equal(z1[:3], [2.0, 0.0, -2.0]))
check("over those three keys, unscaled, the weight is 0.8668", abs(softmax_np(z1[:3])[0] - correct_value) < 1e-12)

# %% [markdown]
# That is one reading in which the article's three terms make sense: three tokens, no √d_k.
# The full layer uses all five keys and the scale 1/√3:

# %%
A5 = softmax_np(E5 @ E5.T / np.sqrt(3))           # (5, 5) weights
O5 = A5 @ E5                                      # (5, 3): o_i = Σ_j α_ij e_j
print("token 1's weights:", A5[0], "\noutputs:\n", O5)

emb = tinylm.nn.Embedding(6, 3)
emb.load_state_dict({"weight": table})
E5_t = emb(ids)
O5_t, A5_t = F.attention(E5_t, E5_t, E5_t)
check("tinylm's Embedding + attention agree with the hand computation",
      np.allclose(O5_t.numpy(), O5, atol=1e-6) and np.allclose(A5_t.numpy(), A5, atol=1e-6))
check("the output has one row per token, (5, 3)", O5_t.shape == (5, 3))
check("each row of weights sums to one", np.allclose(A5.sum(axis=1), 1.0))
check("token 1's output is not the article's [0.8647, 0, −0.8647]",
      not np.allclose(O5[0], [0.8647, 0, -0.8647], atol=1e-3))

# %% [markdown]
# ## 热力图 Attention heatmaps
#
# Row i of a weight matrix is how much query token i takes from each key token. The four
# tokens of the 004.attn.steps example, and the corrected 001.example:

# %%
try:
    plt = pyplot()
    from tinylm.viz import attention_heatmap

    picture(attention_heatmap(weights_t, tokens, output_dir() / "05_attention_steps.png", title="004.attn.steps"))
    picture(attention_heatmap(A5_t, [f"id {i}" for i in ids], output_dir() / "05_attention_example.png",
                              title="001.example, corrected"))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogx(widths, [r[3] for r in raw_rows], "o-", label="q·k")
    ax.semilogx(widths, [r[3] for r in scaled_rows], "o-", label="q·k / √d_k")
    ax.set_xlabel("d_k")
    ax.set_ylabel("mean largest weight (8 keys)")
    ax.legend()
    fig.tight_layout()
    picture(fig, "05_scaling.png")
    check("the heatmaps were written", (output_dir() / "05_attention_steps.png").is_file())
except ImportError:
    print("(matplotlib not installed: no heatmaps)")
