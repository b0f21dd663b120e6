# %% [markdown]
# # GRU 门控循环单元: the gated recurrent unit and its two conventions (002.gru)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 门控循环单元 — gated recurrent unit (GRU) — a recurrent network with two gates and no separate
#   cell state.
# * 更新门 — update gate — z_t, how much of the old state to keep.
# * 重置门 — reset gate — r_t, how much of the old state the candidate may read.
# * 候选状态 — candidate state — h̃_t, the new state the update gate mixes in.
# * 约定 — convention — PyTorch's z_t is the article's 1 − z_t: the same GRU, mirrored.
# * 梯度 — gradient — ∂L/∂w for every weight w.
# * 梯度消失 — vanishing gradient — the gradient shrinking over many steps back, which the update
#   gate counters.
#
# Article 002 (§4.1.4) gives the GRU as `y_t = softmax(W_r·[h_{t-1}, x_t]) + b` — **002.gru**.
# Letter for letter that is its RNN (002.rnn, lesson 02) and its LSTM (002.lstm, lesson 03)
# again, the matrix renamed after the reset gate: no gate, no state update, the bias outside the
# softmax. The gated recurrent unit has two gates and a candidate state:
#
#     z_t = σ(W_z [h_{t-1}, x_t] + b_z)              update gate (更新门)
#     r_t = σ(W_r [h_{t-1}, x_t] + b_r)              reset gate  (重置门)
#     h̃_t = tanh(W [r_t ⊙ h_{t-1}, x_t] + b_h)       candidate state
#     h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t           interpolate: keep or replace
#
# (the SEEDS_GUIDE correction, with the biases every implementation adds). PyTorch — and
# tinylm, which follows it — writes the same cell differently, and not only in notation. This
# lesson runs the article's formula, computes the corrected GRU by hand, maps it onto
# `tinylm.nn.GRU`, and derives the gradient of one step.

# %%
import numpy as np

import tinylm
import tinylm.nn as nn
from tinylm.check import compare, rnn_formulas
from tinylm.lesson import check, fast, graded, picture, pyplot

rng = np.random.default_rng(0)
tinylm.manual_seed(0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


# %% [markdown]
# ## 002.gru 的错误 Running 002.gru as written
#
# A vocabulary of three tokens, a state of two and inputs of two, so `W_r` is 3 × 4:

# %%
W_r_article = np.array([[0.3, -0.2, 0.5, 1.0], [-0.4, 0.6, 0.2, -0.3], [0.1, 0.1, -1.0, 0.4]])
b_article = np.array([0.2, -0.1, 0.15])
xs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
xs_other = np.array([[-1.0, 2.0], [0.0, 1.0], [1.0, 1.0]])     # another x_1, the same x_2 and x_3


def article_gru(sequence):
    """002.gru over a sequence: every y_t. Nothing in it updates h_{t-1}, so h stays h_0."""
    h_0 = np.zeros(2)
    return np.array([softmax(W_r_article @ np.concatenate([h_0, x_t])) + b_article for x_t in sequence])


y_article = article_gru(xs)
print("article's y_t, one row per step:\n", y_article.round(4), "\nrow sums:", y_article.sum(axis=1).round(4))
check("fails: every y_t sums to 1 + Σb, so it is not a distribution",
      np.allclose(y_article.sum(axis=1), 1 + b_article.sum()))
check("fails: y_3 is the same whatever x_1 was: no memory", np.allclose(y_article[2], article_gru(xs_other)[2]))

# %% [markdown]
# ## 更正 The corrected GRU by hand
#
# Two inputs, two units, a non-zero starting state so the reset gate has something to reset.
# Each matrix acts on `[h_{t-1}, x_t]`: its first two columns meet the state, the last two the
# input. The state block of `W` is diagonal here — the reason shows in the next section.

# %%
W_z = np.array([[0.5, 0.0, 1.0, -0.5], [0.0, 0.5, 0.5, 0.5]])
W_r = np.array([[0.2, 0.1, -0.5, 1.0], [0.0, 0.3, 1.0, 0.0]])
W = np.array([[0.8, 0.0, 1.0, 0.5], [0.0, -0.6, -0.5, 1.0]])
b_z, b_r, b_h = np.array([0.5, -0.5]), np.zeros(2), np.zeros(2)
h_0 = np.array([0.5, -0.5])


def corrected_gru(sequence, h, W, b_z):
    """The corrected 002.gru by hand from the state h: (every h_t, the gates of step 1)."""
    states = []
    for x_t in sequence:
        z = sigmoid(W_z @ np.concatenate([h, x_t]) + b_z)
        r = sigmoid(W_r @ np.concatenate([h, x_t]) + b_r)
        candidate = np.tanh(W @ np.concatenate([r * h, x_t]) + b_h)
        h = (1 - z) * h + z * candidate
        states.append(h)
        if len(states) == 1:
            first = {"z": z, "r": r, "h̃": candidate}
    return np.array(states), first


states, first = corrected_gru(xs, h_0, W, b_z)
print("step 1:", ", ".join(f"{k} = {np.round(v, 4)}" for k, v in first.items()), f", h_1 = {states[0].round(4)}")
check("h_1 lies between h_0 and h̃_1, unit by unit (z_1 interpolates)",
      np.all((states[0] - h_0) * (states[0] - first["h̃"]) <= 0))

V, c = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 2.0]]), np.array([0.0, 0.1, -0.1])
ys = np.array([softmax(V @ h + c) for h in states])
check("passes: y_t = softmax(V h_t + c) sums to 1", np.allclose(ys.sum(axis=1), 1))
check("passes: h_3 depends on x_1", not np.allclose(states[2], corrected_gru(xs_other, h_0, W, b_z)[0][2]))

# %% [markdown]
# What the update gate buys: where `z_t ≈ 0` the state is copied forward untouched, however long
# the gap and whatever the inputs. Push `b_z` far negative and run 50 random inputs:

# %%
kept = corrected_gru(rng.standard_normal((50, 2)), h_0, W, np.full(2, -40.0))[0][-1]
check("with the update gate shut, h_50 is still h_0", np.allclose(kept, h_0))

# %% [markdown]
# ## PyTorch 的约定 tinylm.nn.GRU and how the two forms map
#
# `tinylm.nn.GRU`, like PyTorch, computes (gate blocks stacked in the order r, z, n):
#
#     r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
#     z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
#     n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
#     h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}
#
# Two differences from the corrected form above:
#
# 1. **z ↔ 1 − z.** PyTorch's `z_t` weighs the *old* state. Since σ(−a) = 1 − σ(a), the
#    article's `z` becomes PyTorch's by negating its weights and bias: `W_iz = −W_z[:, 2:]`,
#    `W_hz = −W_z[:, :2]`, `b_iz = −b_z`. A pure relabelling.
# 2. **Where the reset acts.** The article resets the state *before* the matrix, `W (r ⊙ h)`;
#    PyTorch after it, `r ⊙ (W_hn h + b_hn)`. These agree for every `r` and `h` only when
#    `W_hn` is diagonal (and `b_hn = 0`) — so in general they are two different cells, both
#    called GRU (PyTorch's is the one cuDNN implements).
#
# The hand example's state block `W[:, :2]` is diagonal, so mapped into `tinylm.nn.GRU` it
# reproduces the hand numbers exactly:

# %%
check("σ(−a) = 1 − σ(a)", np.allclose(sigmoid(-np.linspace(-3, 3, 7)), 1 - sigmoid(np.linspace(-3, 3, 7))))


def to_tinylm(W_z, W_r, W, b_z, b_r, b_h):
    """The corrected form's parameters as tinylm.nn.GRU's (gate order r, z, n; z negated)."""
    return {"weight_ih_l0": np.vstack([W_r[:, 2:], -W_z[:, 2:], W[:, 2:]]),
            "weight_hh_l0": np.vstack([W_r[:, :2], -W_z[:, :2], W[:, :2]]),
            "bias_ih_l0": np.concatenate([b_r, -b_z, b_h]), "bias_hh_l0": np.zeros(6)}


gru = nn.GRU(2, 2).double()
gru.load_state_dict(to_tinylm(W_z, W_r, W, b_z, b_r, b_h))
output = gru(tinylm.Tensor(xs), tinylm.Tensor(h_0[None]))[0].numpy()
check("diagonal state block: tinylm.nn.GRU equals the corrected GRU by hand", np.allclose(output, states))

W_full = W.copy()
W_full[0, 1], W_full[1, 0] = 0.7, -0.4       # off-diagonal entries in the state block
gru.load_state_dict(to_tinylm(W_z, W_r, W_full, b_z, b_r, b_h))
output_full = gru(tinylm.Tensor(xs), tinylm.Tensor(h_0[None]))[0].numpy()
states_full = corrected_gru(xs, h_0, W_full, b_z)[0]
print(f"general state block: the two cells differ by up to {np.abs(output_full - states_full).max():.4f}")
check("general state block: resetting before and after the matrix are different cells",
      not np.allclose(output_full, states_full))

# %% [markdown]
# PyTorch's form by hand, for any weights — this is the step the rest of the lesson uses:

# %%
def gru_step(x, h, weight_ih, weight_hh, bias_ih, bias_hh):
    """One GRU step in PyTorch's form: (h', (r, z, n, gh_n)), with gh_n = W_hn h + b_hn."""
    gi_r, gi_z, gi_n = np.split(x @ weight_ih.T + bias_ih, 3, axis=-1)
    gh_r, gh_z, gh_n = np.split(h @ weight_hh.T + bias_hh, 3, axis=-1)
    r, z = sigmoid(gi_r + gh_r), sigmoid(gi_z + gh_z)
    n = np.tanh(gi_n + r * gh_n)
    return (1 - z) * n + z * h, (r, z, n, gh_n)


random_gru = nn.GRU(3, 4).double()
seq, h_start = rng.standard_normal((5, 3)), rng.standard_normal(4)
names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
h_t, by_hand = h_start, []
for x_t in seq:
    h_t = gru_step(x_t, h_t, *(getattr(random_gru, n).numpy() for n in names))[0]
    by_hand.append(h_t)
check("PyTorch's form by hand equals tinylm.nn.GRU (random weights, 5 steps)",
      np.allclose(random_gru(tinylm.Tensor(seq), tinylm.Tensor(h_start[None]))[0].numpy(), by_hand))

# %% [markdown]
# ## 你的练习 The gradient of one GRU step
#
# Let `g = ∂L/∂h'` arrive from above. Walk `gru_step` backwards, writing `a_r, a_z` for the
# arguments of the two sigmoids and `a_n = gi_n + r ⊙ gh_n` for the tanh's:
#
#     h' = (1 − z) ⊙ n + z ⊙ h   →   δn = g ⊙ (1 − z),   δz = g ⊙ (h − n),   and g ⊙ z straight to h
#     n = tanh(a_n)              →   δa_n = δn ⊙ (1 − n²)         (also δgi_n)
#     a_n = gi_n + r ⊙ gh_n      →   δr = δa_n ⊙ gh_n,   δgh_n = δa_n ⊙ r
#     r = σ(a_r), z = σ(a_z)     →   δa_r = δr ⊙ r(1 − r),   δa_z = δz ⊙ z(1 − z)
#
# `gi = W_ih x + b_ih` receives `[δa_r, δa_z, δa_n]` and `gh = W_hh h + b_hh` receives
# `[δa_r, δa_z, δgh_n]`; each then passes `Wᵀ δ` to its input and `δ xᵀ` (or `δ hᵀ`) to its
# weight. Fill in the unbatched version:

# %%
def gru_step_gradient(grad_out, input, hx, weight_ih, weight_hh, bias_ih, bias_hh):
    """dL/d(every argument) of h' = gru_step(input, hx, ...) for vectors input and hx, given grad_out = dL/dh'."""
    _, (r, z, n, gh_n) = gru_step(input, hx, weight_ih, weight_hh, bias_ih, bias_hh)
    # BEGIN SOLUTION hint: the δ lines; d_gi = [δa_r, δa_z, δa_n], d_gh = [δa_r, δa_z, r δa_n]; δhx = g z + W_hhᵀ d_gh
    dn, dz = grad_out * (1 - z), grad_out * (hx - n)
    da_n = dn * (1 - n ** 2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dz * z * (1 - z)
    d_gi = np.concatenate([da_r, da_z, da_n])
    d_gh = np.concatenate([da_r, da_z, da_n * r])
    return {"input": weight_ih.T @ d_gi, "hx": grad_out * z + weight_hh.T @ d_gh,
            "weight_ih": np.outer(d_gi, input), "weight_hh": np.outer(d_gh, hx), "bias_ih": d_gi, "bias_hh": d_gh}
    # END SOLUTION


cell = nn.GRUCell(3, 4).double()


def one_step(input, hx, **parameters):
    """tinylm.nn.GRUCell with the given tensors in place of its parameters."""
    for name, value in parameters.items():
        setattr(cell, name, value)
    return cell(input, hx)


def step_inputs(z_shift=0.0):
    """Random float64 inputs for one_step; z_shift is added to the hidden bias of the z gate."""
    gen = np.random.default_rng(5)
    shapes = {"input": (3,), "hx": (4,), "weight_ih": (12, 3), "weight_hh": (12, 4), "bias_ih": (12,), "bias_hh": (12,)}
    arrays = {n: gen.uniform(-0.8, 0.8, s) for n, s in shapes.items()}
    arrays["bias_hh"][4:8] += z_shift
    return arrays


def your_gradient_table():
    inputs = {n: tinylm.Tensor(a, requires_grad=True) for n, a in step_inputs().items()}
    table = compare(one_step, gru_step_gradient, inputs)
    print(table.table("one GRU step: autograd vs numeric vs your formula"))
    return table.passed


def your_highway():
    """With z ≈ 1 the cell copies h, so dL/dh should be grad_out itself."""
    g = np.random.default_rng(6).standard_normal(4)
    return np.allclose(gru_step_gradient(g, **step_inputs(z_shift=30.0))["hx"], g)


graded("your one-step GRU gradient agrees with autograd and central differences", your_gradient_table)
graded("with z ≈ 1 your dL/dh_{t-1} equals dL/dh_t (the state is copied)", your_highway)

# %% [markdown]
# ## 三种梯度 A whole sequence, three ways
#
# Backpropagation through time chains these steps; `tinylm.check.rnn_formulas.gru_bptt` does it
# for a batch over four steps:

# %%
report = compare(*rnn_formulas.CASES["gru"]())
print(report.table("GRU BPTT: autograd vs numeric vs formula"))
check("the three GRU gradients agree", report.passed)

# %% [markdown]
# ## 更新门与梯度 The update gate keeps gradients alive
#
# Because `∂h_t/∂h_{t-1}` contains the term `diag(z_t)` (PyTorch's z: the part of the state that
# is copied), a GRU whose update gate leans towards keeping passes gradients back over many
# steps, where the tanh RNN of lesson 02 lets them vanish. Measure `‖∂h_T/∂h_0‖` with autograd
# (one backward pass per row of the Jacobian) for an RNN and for GRUs whose z-bias is shifted:

# %%
H, T_max = 4, (20 if fast() else 40)
xs_long = rng.standard_normal((T_max, 3))
T_grid = list(range(1, T_max + 1, 3))


def jacobian_norms(layer):
    """‖∂h_T/∂h_0‖ (spectral norm) for T in T_grid, by autograd."""
    h0 = tinylm.zeros(1, H, dtype=tinylm.float64, requires_grad=True)
    out = layer(tinylm.Tensor(xs_long), h0)[0]
    norms = []
    for T in T_grid:
        rows = []
        for i in range(H):
            h0.grad = None
            out[T - 1].backward(np.eye(H)[i], retain_graph=True)
            rows.append(h0.grad.numpy()[0])
        norms.append(np.linalg.norm(np.array(rows), 2))
    return np.array(norms)


curves = {"tanh RNN": jacobian_norms(nn.RNN(3, H).double())}
for shift in (0.0, 2.0, 4.0):
    layer = nn.GRU(3, H).double()
    layer.bias_hh_l0.data[H:2 * H] += shift
    curves[f"GRU, z-bias +{shift:g}"] = jacobian_norms(layer)
for name, norms in curves.items():
    print(f"{name:16s} ‖∂h_T/∂h_0‖ at T = {T_grid[-1]}: {norms[-1]:.2e}")
check("a GRU leaning towards keeping its state passes back far more gradient than the RNN",
      curves["GRU, z-bias +4"][-1] > 100 * curves["tanh RNN"][-1])

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, norms in curves.items():
        ax.semilogy(T_grid, norms, marker=".", label=name)
    ax.set_xlabel("T (steps back)")
    ax.set_ylabel("‖∂h_T/∂h_0‖")
    ax.set_title("the update gate as a gradient highway")
    ax.legend(fontsize=8)
    fig.tight_layout()
    picture(fig, "04_gru_gradient.png")
except ImportError:
    print("(matplotlib not installed: no plot)")
