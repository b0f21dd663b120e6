# %% [markdown]
# # LSTM 长短期记忆网络: gates, the cell state, and memory across a long gap (000.lstm, 002.lstm)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 长短期记忆网络 — long short-term memory (LSTM) — a recurrent network with a cell state that
#   gates decide to keep, write or show.
# * 门控机制 — gating — a sigmoid between 0 and 1 that scales how much of a signal passes.
# * 输入门 / 遗忘门 / 输出门 — input / forget / output gate — i_t decides what is written, f_t what
#   is kept, o_t what is shown.
# * 细胞状态 — cell state — C_t, the LSTM's long-term memory.
# * 候选值 — candidate — C̃_t, the new content the input gate may write.
# * 损失函数 — loss function — here the cross-entropy of naming the remembered symbol.
# * 优化器 — optimizer — Adam, which trains the memory task.
# * 学习率 — learning rate — the size of the optimizer's steps (0.05 here).
#
# * **000.lstm** (§3.2) — the long short-term memory cell. Three gates, each a sigmoid of the
#   current input and the previous hidden state, and a candidate cell value:
#
#       i_t = σ(W_xi x_t + W_hi h_{t-1} + b_i)          input gate   (输入门)
#       f_t = σ(W_xf x_t + W_hf h_{t-1} + b_f)          forget gate  (遗忘门)
#       o_t = σ(W_xo x_t + W_ho h_{t-1} + b_o)          output gate  (输出门)
#       C̃_t = tanh(W_xC x_t + W_hC h_{t-1} + b_C)       candidate
#       C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t                 cell state
#       h_t = o_t ⊙ tanh(C_t)                           hidden state
#
#   This is right, except for a typo: the article prints `W_HC` twice (in the candidate's formula
#   and in its list of weight matrices) where it means `W_hC`, the state-to-candidate matrix.
# * **002.lstm** (§4.1.3) — `y_t = softmax(W_f·[h_{t-1}, x_t]) + b`. This is not an LSTM: it is
#   002.rnn's formula (lesson 02) with the matrix renamed after the forget gate. It has no cell
#   state, no gate multiplies anything, and no state is ever updated.
#
# The lesson computes one step by hand, matches `tinylm.nn.LSTM` (and its gate order), checks
# the gradients three ways, then trains the article's formula and a real LSTM on a small memory
# task and watches the LSTM's gates at work.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
import tinylm.nn as nn
from tinylm.check import compare, rnn_formulas
from tinylm.lesson import check, fast, graded, picture, pyplot
from tinylm.optim import Adam

rng = np.random.default_rng(0)
tinylm.manual_seed(0)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


# %% [markdown]
# ## 门控机制 The gates of 000.lstm by hand
#
# Two inputs and two hidden units, with the article's matrices kept apart by name:
# `Wx["i"]` is `W_xi`, `Wh["C"]` is `W_hC`, and so on. The forget gate's bias is 1, so it starts
# mostly open (a common initialisation: remember by default).

# %%
Wx = {"i": np.array([[0.5, 0.0], [0.0, 0.5]]), "f": np.array([[0.0, 0.5], [0.5, 0.0]]),
      "o": np.array([[1.0, 0.0], [0.0, -1.0]]), "C": np.array([[1.0, -1.0], [0.5, 0.5]])}
Wh = {"i": np.array([[0.1, 0.0], [0.0, 0.1]]), "f": np.array([[0.2, 0.0], [0.0, 0.2]]),
      "o": np.array([[0.0, 0.3], [0.3, 0.0]]), "C": np.array([[0.5, -0.5], [0.0, 1.0]])}
b = {"i": np.zeros(2), "f": np.ones(2), "o": np.zeros(2), "C": np.zeros(2)}


def article_step(x, h, c, Wx, Wh, b):
    """One step of 000.lstm with the article's named matrices: (h_t, C_t, gates {i, f, o, C̃})."""
    i = sigmoid(Wx["i"] @ x + Wh["i"] @ h + b["i"])
    f = sigmoid(Wx["f"] @ x + Wh["f"] @ h + b["f"])
    o = sigmoid(Wx["o"] @ x + Wh["o"] @ h + b["o"])
    candidate = np.tanh(Wx["C"] @ x + Wh["C"] @ h + b["C"])      # W_hC, printed W_HC
    c = f * c + i * candidate
    return o * np.tanh(c), c, {"i": i, "f": f, "o": o, "C̃": candidate}


xs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
h_t, c_t, hs, cs = np.zeros(2), np.zeros(2), [], []
for t, x_t in enumerate(xs, 1):
    h_t, c_t, gates = article_step(x_t, h_t, c_t, Wx, Wh, b)
    hs.append(h_t)
    cs.append(c_t)
    if t == 1:
        first = gates
        print("step 1:", ", ".join(f"{k} = {np.round(v, 4)}" for k, v in gates.items()))
    print(f"C_{t} = {np.round(c_t, 4)},  h_{t} = {np.round(h_t, 4)}")
check("C_1 = i_1 ⊙ C̃_1: with C_0 = 0 the forget gate has nothing to forget",
      np.allclose(cs[0], first["i"] * first["C̃"]))
check("h_1 = o_1 ⊙ tanh(C_1)", np.allclose(hs[0], first["o"] * np.tanh(cs[0])))

# %% [markdown]
# ## tinylm.nn.LSTM and PyTorch's gate order i, f, g, o
#
# `tinylm.nn.LSTM`, like PyTorch, stacks the four input matrices into one `weight_ih_l0` of
# 4·hidden_size rows, in the order **i, f, g, o** — `g` is the candidate `C̃` — and likewise
# `weight_hh_l0` and the two bias halves. Stacked in that order, the article's numbers give the
# article's results:

# %%
def stacked(order):
    """The article's matrices as tinylm's/PyTorch's stacked parameters, gate blocks in `order`."""
    return {"weight_ih_l0": np.vstack([Wx[k] for k in order]), "weight_hh_l0": np.vstack([Wh[k] for k in order]),
            "bias_ih_l0": np.concatenate([b[k] for k in order]), "bias_hh_l0": np.zeros(8)}


lstm = nn.LSTM(2, 2).double()
lstm.load_state_dict(stacked("ifCo"))
output, (_, c_n) = lstm(tinylm.Tensor(xs))
check("tinylm.nn.LSTM gives the hand-computed h_1, h_2, h_3", np.allclose(output.numpy(), hs))
check("and the last cell state C_3", np.allclose(c_n.numpy()[0], cs[-1]))

# %% [markdown]
# The article lists the gates as i, f, o and then C̃. Stacking them in that order silently swaps
# the output gate and the candidate — no error, just a different network:

# %%
lstm.load_state_dict(stacked("ifoC"))
swapped = lstm(tinylm.Tensor(xs))[0].numpy()
print("h_3 with the blocks in the order i, f, o, C̃:", swapped[-1].round(4), " (right:", hs[-1].round(4), ")")
check("the order i, f, o, C̃ gives wrong numbers", not np.allclose(swapped, hs))

# %% [markdown]
# ## 你的练习 One LSTM step in the stacked form
#
# With the stacked parameters all four pre-activations come from two matrix products,
# `a = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh` (rows are batch items), split into four blocks of
# hidden_size columns in the order i, f, g, o. Write the step:

# %%
def lstm_cell_step(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """One LSTM step for a batch: x (batch, input_size), h and c (batch, hidden_size), PyTorch's
    stacked parameters (gate order i, f, g, o). Returns (h', c')."""
    # BEGIN SOLUTION hint: a = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh → ifgo; σ(i,f,o), tanh(g); c' = fc + ig; h' = o tanh c'
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=-1)
    i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
    c = f * c + i * g
    return o * np.tanh(c), c
    # END SOLUTION


cell = nn.LSTMCell(3, 4).double()
x_b, h_b, c_b = rng.standard_normal((5, 3)), rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
h_ref, c_ref = cell(tinylm.Tensor(x_b), (tinylm.Tensor(h_b), tinylm.Tensor(c_b)))
params = [p.numpy() for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]

seq_layer = nn.LSTM(3, 4).double()
layer_names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
seq = rng.standard_normal((6, 2, 3))
seq_out = seq_layer(tinylm.Tensor(seq))[0].numpy()


def your_sequence():
    """Your step run along `seq` with seq_layer's parameters, from zero states: every h_t."""
    h, c, out = np.zeros((2, 4)), np.zeros((2, 4)), []
    for x_t in seq:
        h, c = lstm_cell_step(x_t, h, c, *(getattr(seq_layer, n).numpy() for n in layer_names))
        out.append(h)
    return np.array(out)


graded("your step's h' equals tinylm.nn.LSTMCell's",
       lambda: np.allclose(lstm_cell_step(x_b, h_b, c_b, *params)[0], h_ref.numpy()))
graded("your step's c' equals tinylm.nn.LSTMCell's",
       lambda: np.allclose(lstm_cell_step(x_b, h_b, c_b, *params)[1], c_ref.numpy()))
graded("your step, run over 6 steps, equals tinylm.nn.LSTM", lambda: np.allclose(your_sequence(), seq_out))

# %% [markdown]
# ## 三种梯度 Gradients three ways
#
# Backpropagation through time for the LSTM (derived in `tinylm.check.rnn_formulas.lstm_bptt`)
# has one new path: the cell state. Since `C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t`,
#
#     δC_{t-1} = δC_t ⊙ f_t  (+ what reaches C_{t-1} through h_{t-1})
#
# — the gradient along the cell is only *scaled by the forget gate*, with no weight matrix and
# no squashing derivative in between. Where `f_t ≈ 1` it passes many steps almost unchanged,
# which is how the LSTM escapes the vanishing gradient of lesson 02. Autograd, central
# differences and the hand formula:

# %%
report = compare(*rnn_formulas.CASES["lstm"]())
print(report.table("LSTM BPTT: autograd vs numeric vs formula"))
check("the three LSTM gradients agree", report.passed)

# %% [markdown]
# ## 002.lstm 的错误 The article's "LSTM" cannot remember
#
# Read `y_t = softmax(W_f·[h_{t-1}, x_t]) + b` as generously as possible: put the bias inside
# the softmax, and let `h_{t-1}` be a learned vector (nothing in the formula updates it, so it is
# the same at every step). Its output at step t is then a function of `x_t` alone.
#
# The task: a sequence starts with one of K = 4 symbols, marked by an extra input channel, and
# continues with random distractor symbols. At every later step the model must name the *first*
# symbol. Only a model that carries information across the gap can beat chance (1/4).

# %%
K, gap = 4, (8 if fast() else 15)


def memory_batch(n, gap, gen):
    """(x, s): x (gap + 1, n, K + 1), one-hot symbols plus a 'remember this' channel set at t = 0;
    s (n,), the first symbols."""
    s = gen.integers(0, K, n)
    symbols = np.concatenate([s[None], gen.integers(0, K, (gap, n))])
    x = np.zeros((gap + 1, n, K + 1), dtype=np.float32)
    x[np.arange(gap + 1)[:, None], np.arange(n), symbols] = 1
    x[0, :, K] = 1
    return x, s


class ArticleLSTM(nn.Module):
    """002.lstm, bias moved inside: logits_t = W_f [h, x_t] + b with h a learned constant."""

    def __init__(self, hidden_size):
        super().__init__()
        self.h = nn.Parameter(tinylm.zeros(hidden_size))
        self.W_f = nn.Linear(hidden_size + K + 1, K)

    def forward(self, x):
        h = self.h.reshape(1, 1, -1).expand(x.shape[0], x.shape[1], self.h.shape[0])
        return self.W_f(tinylm.cat([h, x], dim=-1))


class MemoryLSTM(nn.Module):
    """A real LSTM (000.lstm) and a linear read-out of its hidden state."""

    def __init__(self, hidden_size):
        super().__init__()
        self.lstm = nn.LSTM(K + 1, hidden_size)
        self.lstm.bias_hh_l0.data[hidden_size:2 * hidden_size] += 1.0   # forget gate starts open
        self.head = nn.Linear(hidden_size, K)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def train(model, steps, gen):
    """Adam on the cross-entropy of naming the first symbol at every step after it."""
    opt = Adam(model.parameters(), lr=0.05)
    for _ in range(steps):
        x, s = memory_batch(32, gap, gen)
        logits = model(tinylm.Tensor(x))[1:]
        loss = F.cross_entropy(logits.reshape(-1, K), np.tile(s, gap))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def last_step_accuracy(model, gen):
    x, s = memory_batch(500, gap, gen)
    with tinylm.no_grad():
        return float((model(tinylm.Tensor(x)).numpy()[-1].argmax(-1) == s).mean())


steps = 40 if fast() else 100
tinylm.manual_seed(0)
article, memory = ArticleLSTM(16), MemoryLSTM(16)
article_loss = train(article, steps, np.random.default_rng(1))
memory_loss = train(memory, steps, np.random.default_rng(1))
article_acc = last_step_accuracy(article, np.random.default_rng(2))
memory_acc = last_step_accuracy(memory, np.random.default_rng(2))
print(f"after {steps} steps, gap {gap}: article's formula loss {article_loss:.3f}, accuracy {article_acc:.3f}; "
      f"LSTM loss {memory_loss:.3f}, accuracy {memory_acc:.3f}  (chance 0.25)")

x_a, _ = memory_batch(2, gap, np.random.default_rng(3))
x_changed = x_a.copy()
x_changed[0, :, :K] = np.roll(x_a[0, :, :K], 1, axis=-1)   # change the first symbols, keep everything after
with tinylm.no_grad():
    same = np.allclose(article(tinylm.Tensor(x_a)).numpy()[-1], article(tinylm.Tensor(x_changed)).numpy()[-1])
check("fails: the article's last output does not depend on the first symbol at all", same)
check("fails: the article's formula stays near chance at the last step", article_acc < 0.4)
check("passes: the LSTM names the first symbol after the whole gap", memory_acc > 0.9)

# %% [markdown]
# ## 门随时间变化 The gates over time
#
# Split the trained layer's stacked parameters back into the article's named matrices and run
# `article_step` by hand along one test sequence, keeping every gate. The input gate decides
# what is written into the cell, the forget gate how much of the cell survives each step, and
# the output gate how much of it shows in `h_t`.

# %%
def named_gates(layer):
    """The article's (Wx, Wh, b) from a one-layer LSTM's stacked parameters (gate order i, f, g, o)."""
    names = ("i", "f", "C", "o")
    w_ih = np.split(layer.weight_ih_l0.numpy().astype(np.float64), 4)
    w_hh = np.split(layer.weight_hh_l0.numpy().astype(np.float64), 4)
    bias = np.split((layer.bias_ih_l0.numpy() + layer.bias_hh_l0.numpy()).astype(np.float64), 4)
    return dict(zip(names, w_ih)), dict(zip(names, w_hh)), dict(zip(names, bias))


x_seq, s_seq = memory_batch(1, gap, np.random.default_rng(4))
trained = named_gates(memory.lstm)
h_t, c_t, history = np.zeros(16), np.zeros(16), {"i": [], "f": [], "o": [], "C": [], "h": []}
for x_t in x_seq[:, 0].astype(np.float64):
    h_t, c_t, gates = article_step(x_t, h_t, c_t, *trained)
    for k in ("i", "f", "o"):
        history[k].append(gates[k])
    history["C"].append(c_t)
    history["h"].append(h_t)
history = {k: np.array(v) for k, v in history.items()}
with tinylm.no_grad():
    layer_h = memory.lstm(tinylm.Tensor(x_seq))[0].numpy()[:, 0]
print(f"mean input gate: {history['i'][0].mean():.2f} on the marked symbol, "
      f"{history['i'][1:].mean():.2f} on the distractors; mean forget gate {history['f'][1:].mean():.2f}")
check("the hand-run gates reproduce the trained layer's h_t", np.allclose(history["h"], layer_h, atol=1e-5))

try:
    plt = pyplot()

    fig, axes = plt.subplots(4, 1, figsize=(7, 7), sharex=True)
    for ax, (key, label) in zip(axes, [("i", "input gate i_t"), ("f", "forget gate f_t"),
                                      ("o", "output gate o_t"), ("C", "cell state C_t")]):
        top = np.abs(history[key]).max() if key == "C" else 1.0          # gates lie in (0, 1); C_t around 0
        image = ax.imshow(history[key].T, aspect="auto", cmap="RdBu_r" if key == "C" else "viridis",
                          vmin=-top if key == "C" else 0.0, vmax=top)
        ax.set_ylabel("unit")
        ax.set_title(label, fontsize=9)
        fig.colorbar(image, ax=ax)
    axes[-1].set_xlabel(f"step t (t = 0: the symbol {s_seq[0]} to remember)")
    fig.tight_layout()
    picture(fig, "03_lstm_gates.png")
except ImportError:
    print("(matplotlib not installed: no plot)")

# %% [markdown]
# In the picture (`03_lstm_gates.png`), the units whose forget gate stays near 1 after t = 0 are
# the memory: their `C_t` holds, and here even builds up, a pattern set by the first symbol,
# while the input gate, wider open on the marked symbol than on the distractors, decides what
# gets written. Nothing in 002.lstm's single matrix could play any of these parts.
