# %% [markdown]
# # 循环神经网络 RNN: the recurrent network and backpropagation through time (000.rnn, 002.rnn)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 循环神经网络 — recurrent neural network (RNN) — reads a sequence one step at a time, carrying a
#   hidden state along.
# * 递归神经网络 — recursive neural network — a network over trees; article 000's name for the RNN,
#   a slip.
# * 隐藏状态 — hidden state — h_t, what the network carries from step t to step t + 1.
# * 损失函数 — loss function — the number whose gradient is followed back through the steps.
# * 梯度 — gradient — ∂L/∂w for every weight w.
# * 随时间反向传播 — back-propagation through time (BPTT) — back-propagation through the unrolled
#   steps, from t = T down to 1.
# * 梯度消失 — vanishing gradient — the gradient shrinks at every step back, so early steps barely
#   learn.
# * 更正 — correction — the right form of a formula an article gets wrong.
#
# Two of the articles write down the simple recurrent network:
#
# * **000.rnn** (§3.1) — the state update `h_t = f(W x_t + U h_{t-1} + b)`: the new hidden
#   state mixes the current input with the previous state through one nonlinearity `f`
#   (here tanh). This one is right. The article's heading calls the model 递归神经网络,
#   which usually names a *recursive* network (one that folds a tree, such as a parse tree,
#   with shared weights); the network that runs along a sequence is the *recurrent* one,
#   循环神经网络, the name article 002 uses.
# * **002.rnn** (§4.1.2) — `y_t = softmax(W·[h_{t-1}, x_t]) + b`. This one is wrong three
#   times over: the bias sits outside the softmax, the state update is missing altogether,
#   and the output reads the *old* state through the same matrix that should build the new one.
#
# The lesson computes 000.rnn by hand and with `tinylm.nn.RNN`, runs 002.rnn as written to
# see it fail, corrects it, derives backpropagation through time (BPTT) by hand, and ends
# with the reason simple RNNs forget: the vanishing gradient.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
import tinylm.nn as nn
from tinylm.check import compare, rnn_formulas
from tinylm.lesson import check, fast, graded, picture, pyplot

rng = np.random.default_rng(0)
tinylm.manual_seed(0)


# %% [markdown]
# ## 循环神经网络 The recurrence of 000.rnn by hand
#
# Two inputs, two hidden units, three time steps, and numbers small enough to follow on
# paper. The state starts at `h_0 = 0`, so the first step only sees `W x_1 + b`.

# %%
W = np.array([[0.5, -1.0], [0.25, 0.5]])     # input -> state   (hidden_size, input_size)
U = np.array([[0.5, 0.0], [-0.5, 1.0]])      # state -> state   (hidden_size, hidden_size)
b = np.array([0.0, 0.5])
xs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])   # x_1, x_2, x_3

h = [np.zeros(2)]                            # h[t] is h_t; h[0] = h_0
for x_t in xs:
    h.append(np.tanh(W @ x_t + U @ h[-1] + b))
for t in (1, 2, 3):
    print(f"h_{t} = {np.round(h[t], 4)}")
check("h_1 = tanh(first column of W + b), since x_1 = (1, 0) and h_0 = 0", np.allclose(h[1], np.tanh(W[:, 0] + b)))

# %% [markdown]
# `tinylm.nn.RNN` computes the same recurrence with PyTorch's names: `weight_ih_l0` is `W`,
# `weight_hh_l0` is `U`, and the bias is kept in two halves, `bias_ih_l0 + bias_hh_l0 = b`.
# Its input is `(seq, batch, input_size)`, or `(seq, input_size)` for one unbatched sequence.

# %%
rnn = nn.RNN(2, 2).double()
rnn.load_state_dict({"weight_ih_l0": W, "weight_hh_l0": U, "bias_ih_l0": b, "bias_hh_l0": np.zeros(2)})
output, h_n = rnn(tinylm.Tensor(xs))
print("tinylm output (h_1, h_2, h_3):\n", output.numpy().round(4))
check("tinylm.nn.RNN gives the hand-computed h_1, h_2, h_3", np.allclose(output.numpy(), h[1:]))
check("h_n is the last state h_3", np.allclose(h_n.numpy()[0], h[3]))

# %% [markdown]
# ## 002.rnn 的错误 Running 002.rnn as written
#
# Take a vocabulary of three tokens, so the article's `W` maps the concatenation
# `[h_{t-1}, x_t]` (2 + 2 numbers) to three scores, and give `b` some values:

# %%
W_article = np.array([[0.2, -0.4, 1.0, 0.3], [0.5, 0.1, -0.2, 0.8], [-0.3, 0.6, 0.4, -0.5]])
b_article = np.array([0.1, 0.2, -0.05])


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def article_rnn(h_prev, x_t):
    """002.rnn as printed: y_t = softmax(W·[h_{t-1}, x_t]) + b."""
    return softmax(W_article @ np.concatenate([h_prev, x_t])) + b_article


y_1 = article_rnn(np.zeros(2), xs[0])
print("article's y_1 =", y_1.round(4), " sum =", y_1.sum().round(4))
check("fails: with b outside the softmax, y_t sums to 1 + Σb, not 1", np.isclose(y_1.sum(), 1 + b_article.sum()))

# %% [markdown]
# Where does the next `h_t` come from? The formula never says. The only new vector it makes is
# `y_t`; feeding that back as the state does not even fit, because `y_t` has one entry per
# token (3) while `W` expects a state of 2:

# %%
try:
    tinylm.Tensor(W_article) @ tinylm.cat([tinylm.Tensor(y_1), tinylm.Tensor(xs[1])])
    shape_error = None
except ValueError as e:
    shape_error = str(e)
print("feeding y_1 back as h_1:", shape_error)
check("fails: y_t cannot serve as the next state (a shape error)", shape_error is not None)

# %% [markdown]
# So nothing ever updates the state: `h_{t-1}` stays `h_0` forever, and `y_t` depends on `x_t`
# alone. Two sequences that differ only in their first input give the same last output — the
# network remembers nothing, which is the one thing a recurrent network is for:

# %%
def article_run(sequence):
    """002.rnn over a sequence: every y_t, with h_{t-1} left at h_0 since no formula updates it."""
    h_0 = np.zeros(2)
    return np.array([article_rnn(h_0, x_t) for x_t in sequence])


xs_other = xs.copy()
xs_other[0] = [-1.0, 2.0]                    # a different x_1, same x_2 and x_3
print("article's y_3 for the two sequences:", article_run(xs)[2].round(4), article_run(xs_other)[2].round(4))
check("fails: the article's y_3 ignores x_1 entirely", np.allclose(article_run(xs)[2], article_run(xs_other)[2]))

# %% [markdown]
# ## 更正 The corrected 002.rnn
#
# Move the bias inside, write the state update, and read the output from the *new* state:
#
#     h_t = tanh(W [h_{t-1}, x_t] + b)          (W has hidden_size rows)
#     y_t = softmax(V h_t + c)                  (V has one row per token)
#
# The first line is 000.rnn: splitting the columns of `W` into the part that meets `h_{t-1}`
# and the part that meets `x_t`, `W [h; x] = W_hh h + W_ih x`. So `W = [W_hh W_ih]` — `U` and
# `W` of 000.rnn side by side — and `tinylm.nn.RNN` with a `tinylm.nn.Linear` head computes it.

# %%
W_cat = np.hstack([U, W])                    # [W_hh W_ih], (hidden_size, hidden_size + input_size)
V = np.array([[1.0, -1.0], [0.5, 0.5], [-1.0, 2.0]])
c = np.array([0.0, 0.1, -0.1])


def corrected_rnn(sequence):
    """(every h_t, every y_t) of the corrected 002.rnn, by hand."""
    h_t, states, outputs = np.zeros(2), [], []
    for x_t in sequence:
        h_t = np.tanh(W_cat @ np.concatenate([h_t, x_t]) + b)
        states.append(h_t)
        outputs.append(softmax(V @ h_t + c))
    return np.array(states), np.array(outputs)


states, ys = corrected_rnn(xs)
states_other, ys_other = corrected_rnn(xs_other)
check("W [h; x] = W_hh h + W_ih x (the concatenated weight is [W_hh W_ih])",
      np.allclose(W_cat @ np.concatenate([h[1], xs[1]]), U @ h[1] + W @ xs[1]))
check("[weight_hh_l0 weight_ih_l0] of the tinylm layer is that W",
      np.allclose(np.hstack([rnn.weight_hh_l0.numpy(), rnn.weight_ih_l0.numpy()]), W_cat))

head = nn.Linear(2, 3).double()
head.load_state_dict({"weight": V, "bias": c})
y_tinylm = F.softmax(head(rnn(tinylm.Tensor(xs))[0]), dim=-1)
print("corrected y_t, one row per step:\n", ys.round(4))
check("tinylm (RNN + Linear + softmax) gives the corrected y_t", np.allclose(y_tinylm.numpy(), ys))
check("passes: every corrected y_t sums to 1", np.allclose(ys.sum(axis=1), 1))
check("passes: the corrected h_3 and y_3 remember x_1",
      not np.allclose(states[2], states_other[2]) and not np.allclose(ys[2], ys_other[2]))

# %% [markdown]
# ## 随时间反向传播 Backpropagation through time by hand
#
# Write `a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh` and `h_t = tanh(a_t)` for t = 1..T, and
# let `g_t = ∂L/∂h_t` be what the loss sends to each output directly (`grad_out[t]`). The loss
# reaches `h_t` twice: directly, and through `a_{t+1}`, which reads it via `W_hh`. Walking
# backwards from t = T:
#
#     δh_t = g_t + W_hhᵀ δa_{t+1}             (no second term at t = T)
#     δa_t = δh_t ⊙ (1 − h_t²)                 (tanh' = 1 − tanh²)
#     ∂L/∂W_ih = Σ_t δa_t x_tᵀ,  ∂L/∂W_hh = Σ_t δa_t h_{t-1}ᵀ,  ∂L/∂b_ih = ∂L/∂b_hh = Σ_t δa_t
#     ∂L/∂x_t = W_ihᵀ δa_t,       ∂L/∂h_0 = W_hhᵀ δa_1
#
# The same weights are used at every step, so their gradients are *sums* over time. Write the
# backward walk for one unbatched sequence (Python index `t` holds step t + 1; `h[t]` is the
# state before it):

# %%
def rnn_bptt(grad_out, input, h0, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0):
    """dL/d(every input) of a tanh RNN over one sequence: input (T, input_size), h0 (1, hidden_size),
    grad_out (T, hidden_size) = dL/dh_t. Returns a dict keyed like the arguments."""
    h = [h0[0]]                              # the forward again, keeping every state
    for x_t in input:
        h.append(np.tanh(weight_ih_l0 @ x_t + bias_ih_l0 + weight_hh_l0 @ h[-1] + bias_hh_l0))
    # BEGIN SOLUTION hint: for t = T-1..0: dh = grad_out[t] + W_hhᵀ da_next; da = dh(1 - h[t+1]²); sum outer products
    dW_ih, dW_hh = np.zeros_like(weight_ih_l0), np.zeros_like(weight_hh_l0)
    db, dx = np.zeros_like(bias_ih_l0), np.zeros_like(input)
    carried = np.zeros_like(h0[0])           # W_hhᵀ δa_{t+1}: nothing after the last step
    for t in reversed(range(len(input))):
        dh = grad_out[t] + carried
        da = dh * (1 - h[t + 1] ** 2)
        dW_ih += np.outer(da, input[t])
        dW_hh += np.outer(da, h[t])
        db += da
        dx[t] = weight_ih_l0.T @ da
        carried = weight_hh_l0.T @ da
    return {"input": dx, "h0": carried[None], "weight_ih_l0": dW_ih, "weight_hh_l0": dW_hh,
            "bias_ih_l0": db, "bias_hh_l0": db}
    # END SOLUTION


# %% [markdown]
# ## 三种梯度 Three ways to the gradient
#
# `compare` weights the output sequence by a fixed random `v` (so `grad_out = v`) and puts
# autograd, central differences and your formula side by side for every input. First the
# batched formula that ships with tinylm (`tinylm.check.rnn_formulas.rnn_bptt`, the same walk
# with a batch axis), then yours on an unbatched sequence of 4 steps, then on 12.

# %%
report = compare(*rnn_formulas.CASES["rnn"]())
print(report.table("tinylm's batched BPTT formula: autograd vs numeric vs formula"))
check("tinylm's BPTT formula agrees with autograd and central differences", report.passed)


def bptt_case(steps, seed):
    """compare()'s (fn, inputs) for a random one-layer RNN (3 inputs, 3 units) over `steps` steps."""
    layer = nn.RNN(3, 3).double()
    case_rng = np.random.default_rng(seed)
    shapes = {"input": (steps, 3), "h0": (1, 3), **{n: p.shape for n, p in layer.named_parameters()}}
    inputs = {n: tinylm.Tensor(case_rng.uniform(-0.8, 0.8, s), requires_grad=True) for n, s in shapes.items()}
    return (lambda **t: rnn_formulas.run_layer(layer, **t)[0]), inputs


def your_bptt_table(steps, seed):
    fn, inputs = bptt_case(steps, seed)
    table = compare(fn, rnn_bptt, inputs)
    print(table.table(f"your BPTT over {steps} steps: autograd vs numeric vs formula"))
    return table.passed


graded("your BPTT over 4 steps agrees with autograd and central differences", lambda: your_bptt_table(4, 1))
graded("your BPTT over 12 steps agrees with autograd and central differences", lambda: your_bptt_table(12, 2))

# %% [markdown]
# ## 梯度消失 The vanishing gradient
#
# How much does the last state still depend on the first? By the chain rule the Jacobian is a
# product of one factor per step:
#
#     ∂h_T/∂h_0 = ∏_{t=T..1} diag(1 − h_t²) W_hh,     so   ‖∂h_T/∂h_0‖ ≤ ‖W_hh‖^T
#
# since each tanh' is at most 1. When `‖W_hh‖ < 1` the bound, and the gradient with it,
# shrinks geometrically with T: an error at step T can barely change what happened at step 1.
# Build the product by hand for a randomly initialised 8-unit RNN, and check it against
# autograd's Jacobian (one backward pass per row, `h_T.backward(e_i)`):

# %%
H, T_max = 8, (20 if fast() else 60)
layer = nn.RNN(4, H).double()
xs_long = rng.standard_normal((T_max, 4))
W_hh = layer.weight_hh_l0.numpy()

h_t, J, norms = np.zeros(H), np.eye(H), []
for x_t in xs_long:
    h_t = np.tanh(layer.weight_ih_l0.numpy() @ x_t + layer.bias_ih_l0.numpy() + W_hh @ h_t + layer.bias_hh_l0.numpy())
    J = (1 - h_t ** 2)[:, None] * W_hh @ J             # diag(1 − h_t²) W_hh times the product so far
    norms.append(np.linalg.norm(J, 2))
bound = np.linalg.norm(W_hh, 2) ** np.arange(1, T_max + 1)

T_check = 10
h0 = tinylm.zeros(1, H, dtype=tinylm.float64, requires_grad=True)
out, _ = layer(tinylm.Tensor(xs_long[:T_check]), h0)
rows = []
for i in range(H):
    h0.grad = None
    out[T_check - 1].backward(np.eye(H)[i], retain_graph=True)
    rows.append(h0.grad.numpy()[0])
J_check = np.eye(H)
for t in range(T_check):                     # the hand product again, stopped at T_check
    J_check = (1 - out.numpy()[t] ** 2)[:, None] * W_hh @ J_check
print(f"‖W_hh‖ = {np.linalg.norm(W_hh, 2):.3f};  ‖∂h_T/∂h_0‖ at T = 1, 10, {T_max}: "
      f"{norms[0]:.2e}, {norms[9]:.2e}, {norms[-1]:.2e}")
check(f"the hand product equals autograd's Jacobian at T = {T_check}", np.allclose(J_check, np.array(rows)))
check("the norm never exceeds the bound ‖W_hh‖^T", np.all(np.array(norms) <= bound * (1 + 1e-12)))
check(f"after {T_max} steps the gradient has shrunk over 1000-fold", norms[-1] < 1e-3 * norms[0])

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    steps = np.arange(1, T_max + 1)
    ax.semilogy(steps, norms, label="‖∂h_T/∂h_0‖")
    ax.semilogy(steps, bound, "--", label="bound ‖W_hh‖^T")
    ax.set_xlabel("T (steps back)")
    ax.set_ylabel("spectral norm")
    ax.set_title("a simple RNN forgets: the vanishing gradient")
    ax.legend()
    fig.tight_layout()
    picture(fig, "02_vanishing_gradient.png")
except ImportError:
    print("(matplotlib not installed: no plot)")

# %% [markdown]
# The LSTM (lesson 03) and the GRU (lesson 04) add a path through time along which the state
# is *copied*, scaled by a gate near 1 rather than squeezed through `W_hh` and tanh at every
# step — which is what lets them carry information, and gradients, across long gaps.
