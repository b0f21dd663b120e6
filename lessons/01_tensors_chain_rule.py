# %% [markdown]
# # 张量与链式法则 Tensors, gradient descent and the chain rule (002.mse, 002.loop)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 张量 — tensor — an n-dimensional array of numbers; tinylm's also records the ops that made it.
# * 损失函数 — loss function — the one number training makes small; here ½ Σ (y − ŷ)².
# * 梯度 — gradient — the partial derivatives ∂L/∂w of the loss, one per weight.
# * 链式法则 — chain rule — the derivative of f(g(x)) is f′(g(x))·g′(x): derivatives multiply along
#   the computation.
# * 梯度下降 — gradient descent — step every weight against its gradient: W ← W − α ∂L/∂W.
# * 学习率 — learning rate — α, the size of that step.
# * 优化器 — optimizer — the rule that turns gradients into weight updates (plain gradient descent
#   here, Adam later).
# * 前向计算 / 反向传播 — forward pass / backward pass (back-propagation) — compute the output, then
#   the gradients from the loss back.
# * 自动求导 — automatic differentiation (autograd) — the engine records each op and applies the
#   chain rule for you.
# * 微调 / 应用 — fine-tuning / applying — train a trained model a little more on new data / use it
#   on new inputs.
# * 交叉熵 — cross-entropy — −log p(target), the loss of a language model.
# * 勘误 — erratum — a correction of an article.
#
# Article 002 (§4.2.3) trains with a squared error and plain gradient descent:
#
# * **002.mse** — loss `L = ½ Σ_i (y_i − ŷ_i)²`, gradient by the chain rule
#   `∂L/∂W = ∂L/∂ŷ · ∂ŷ/∂W`, update `W ← W − α ∂L/∂W`.
# * **002.loop** — the training procedure: preprocess → embed → build → initialise →
#   forward → loss → backward → update → evaluate (→ fine-tune → apply).
#
# This lesson computes each step by hand in NumPy, then with tinylm's autograd, and checks
# the gradient three ways. It ends with the article's one slip: for a *language model* the
# loss is cross-entropy over the vocabulary, not a squared error on vectors.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot

rng = np.random.default_rng(0)

# %% [markdown]
# ## 前向计算 The forward pass by hand
#
# A linear model `ŷ = W x + b` on three inputs with two outputs, and its squared error
# against a target `y`. Small numbers, so every value can be followed on paper.

# %%
W = np.array([[0.5, -1.0, 0.25], [1.5, 0.0, -0.5]])
b = np.array([0.1, -0.2])
x = np.array([1.0, 2.0, -1.0])
y = np.array([0.0, 1.0])

y_hat = W @ x + b                       # [0.5 - 2 - 0.25 + 0.1, 1.5 + 0 + 0.5 - 0.2] = [-1.65, 1.8]
L = 0.5 * np.sum((y - y_hat) ** 2)      # ½ (1.65² + 0.8²) = 1.68125
print("ŷ =", y_hat, " L =", L)
check("ŷ by hand", np.allclose(y_hat, [-1.65, 1.8]))
check("L by hand", np.isclose(L, 1.68125))

# %% [markdown]
# ## 链式法则 The chain rule by hand
#
# `∂L/∂ŷ = ŷ − y` (the ½ cancels the square's 2), and since `ŷ_i = Σ_j W_ij x_j + b_i`,
# `∂ŷ_i/∂W_ij = x_j` and `∂ŷ_i/∂b_i = 1`. So `∂L/∂W = (ŷ − y) xᵀ` (an outer product) and
# `∂L/∂b = ŷ − y`. Write these two lines yourself:

# %%
def mse_gradients(W, b, x, y):
    """dL/dW and dL/db of L = ½ Σ (y - (W x + b))²."""
    # BEGIN SOLUTION hint: let g = (W @ x + b) - y; then dL/dW is the outer product of g and x, dL/db is g
    g = (W @ x + b) - y
    return np.outer(g, x), g
    # END SOLUTION


# %% [markdown]
# ## 自动求导 The same with tinylm's autograd
#
# tinylm records each operation; `backward()` walks the record in reverse and applies the
# chain rule, leaving `∂L/∂W` in `W.grad`.

# %%
Wt = tinylm.Tensor(W, requires_grad=True)
bt = tinylm.Tensor(b, requires_grad=True)
loss = 0.5 * ((tinylm.Tensor(y) - (Wt @ tinylm.Tensor(x) + bt)) ** 2).sum()
loss.backward()
print("autograd dL/dW =\n", Wt.grad.numpy())
check("tinylm's forward equals the hand computation", np.isclose(loss.item(), L))
graded("your dL/dW equals autograd's", lambda: np.allclose(mse_gradients(W, b, x, y)[0], Wt.grad.numpy()))
graded("your dL/db equals autograd's", lambda: np.allclose(mse_gradients(W, b, x, y)[1], bt.grad.numpy()))

# %% [markdown]
# ## 三种梯度 Three ways to the gradient
#
# `compare` puts three answers side by side: autograd, central differences
# `(L(w + ε) − L(w − ε)) / 2ε` for every weight, and your formula. It weights the output by a
# random `v` (the "upstream gradient"), so your formula receives `v` as `grad_out`:
# for a vector output `ŷ`, `∂(v·ŷ)/∂W = v xᵀ` — the same outer product with `v` in place of
# `ŷ − y`.

# %%
def model(W, b):
    return W @ tinylm.Tensor(x) + b


def formula(grad_out, W, b):
    return {"W": np.outer(grad_out, x), "b": grad_out}


report = compare(model, formula, {"W": tinylm.Tensor(W, requires_grad=True), "b": tinylm.Tensor(b, requires_grad=True)})
print(report.table("ŷ = W x + b: autograd vs numeric vs formula"))
check("all three gradients agree", report.passed)

# %% [markdown]
# ## 训练循环 The training loop of 002.loop
#
# Now the whole procedure on data: make a data set from a hidden "true" model (preprocess),
# build and initialise a model, and repeat forward → loss → backward → update, evaluating
# on held-out data as we go. `W ← W − α ∂L/∂W` is the update of 002.mse.

# %%
true_W = rng.standard_normal((2, 3))
X = rng.standard_normal((200, 3))
Y = X @ true_W.T + 0.01 * rng.standard_normal((200, 2))
X_train, Y_train, X_val, Y_val = X[:160], Y[:160], X[160:], Y[160:]

tinylm.manual_seed(0)
W_model = tinylm.zeros(2, 3, dtype=tinylm.float64, requires_grad=True)   # initialise
alpha, history = 0.1, []
for step in range(40 if fast() else 200):
    pred = tinylm.Tensor(X_train) @ W_model.T                               # forward
    loss = 0.5 * ((pred - tinylm.Tensor(Y_train)) ** 2).sum(1).mean()       # loss
    W_model.grad = None
    loss.backward()                                                         # backward
    with tinylm.no_grad():
        W_model.data -= alpha * W_model.grad.data                           # update
    with tinylm.no_grad():                                                  # evaluate
        val = 0.5 * ((tinylm.Tensor(X_val) @ W_model.T - tinylm.Tensor(Y_val)) ** 2).sum(1).mean()
    history.append((loss.item(), val.item()))
print(f"loss {history[0][0]:.4f} -> {history[-1][0]:.4f}, validation {history[-1][1]:.4f}")
check("the training loss went down by 100x", history[-1][0] < history[0][0] / 100)
check("the learned W is close to the true one", np.abs(W_model.numpy() - true_W).max() < 0.05)

# %% [markdown]
# ### 002.loop by hand, once
#
# The same procedure with nothing but NumPy, each of 002.loop's steps named. There is no
# 嵌入 (embedding) step here: the inputs are vectors already (lesson 08 turns words into
# vectors). The backward step is the chain rule of the previous sections, for a batch of N
# rows: with `P = X Wᵀ`, `L = (1/N) Σ_n ½‖P_n − Y_n‖²` gives `∂L/∂W = (P − Y)ᵀ X / N`. Then the
# two steps the autograd loop left out: 微调 (fine-tune) the trained model on new data with a
# smaller learning rate, and 应用 (apply) it to an input it never saw.

# %%
# preprocess: the same split as above (X_train, Y_train, X_val, Y_val); build + initialise:
W_hand = np.zeros((2, 3))
for step in range(len(history)):
    P = X_train @ W_hand.T                                          # forward
    loss_hand = 0.5 * ((P - Y_train) ** 2).sum(1).mean()            # loss
    grad_W = (P - Y_train).T @ X_train / len(X_train)               # backward
    W_hand -= alpha * grad_W                                        # update
    val_hand = 0.5 * ((X_val @ W_hand.T - Y_val) ** 2).sum(1).mean()  # evaluate
print(f"by hand: loss {loss_hand:.4f}, validation {val_hand:.4f}")
check("002.loop by hand gives autograd's weights and losses",
      np.allclose(W_hand, W_model.numpy(), rtol=1e-10, atol=1e-12)
      and np.isclose(loss_hand, history[-1][0]) and np.isclose(val_hand, history[-1][1]))

new_W = true_W + 0.3 * rng.standard_normal((2, 3))                  # fine-tune: the task moved a little
X_new = rng.standard_normal((40, 3))
Y_new = X_new @ new_W.T
before = 0.5 * ((X_new @ W_hand.T - Y_new) ** 2).sum(1).mean()
for step in range(100):
    W_hand -= 0.05 * (X_new @ W_hand.T - Y_new).T @ X_new / len(X_new)
after = 0.5 * ((X_new @ W_hand.T - Y_new) ** 2).sum(1).mean()
x_unseen = np.array([0.5, -1.0, 2.0])                               # apply
print(f"fine-tuning: loss on the new data {before:.4f} -> {after:.4f}; applied to {x_unseen}: "
      f"{W_hand @ x_unseen} (the new task's answer {new_W @ x_unseen})")
check("fine-tuning fits the new data", after < before / 10)
check("the fine-tuned model applied to an unseen input gives the new task's answer",
      np.allclose(W_hand @ x_unseen, new_W @ x_unseen, atol=0.1))

# %% [markdown]
# The computation graph of one loss evaluation, as Graphviz DOT (rendered to PNG when the
# `dot` program is installed):

# %%
from tinylm.viz import draw_graph  # noqa: E402

small = 0.5 * ((tinylm.Tensor(X_val[:2]) @ W_model.T - tinylm.Tensor(Y_val[:2])) ** 2).sum()
dot = draw_graph(small, output_dir() / "01_graph.dot")
check("the graph shows the matmul and the square", "MatMul" in dot and "Pow" in dot)

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogy([h[0] for h in history], label="train")
    ax.semilogy([h[1] for h in history], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("½ squared error")
    ax.legend()
    fig.tight_layout()
    picture(fig, "01_loss.png")
except ImportError:
    print("(matplotlib not installed: no loss plot)")

# %% [markdown]
# ## 勘误 Erratum: a language model's loss is cross-entropy (002.mse)
#
# 002.mse is right about gradient descent, but a language model predicts a *distribution*
# over the vocabulary, and its loss is the cross-entropy `−log p(target)` (004.pretrain.loss).
# Why not the squared error between `softmax(z)` and the one-hot target? Because when the
# model is confidently wrong the softmax saturates and the squared error's gradient vanishes,
# while cross-entropy's gradient `p − onehot` stays large. Here the model puts almost all
# probability on token 0 while the answer is token 2:

# %%
z = tinylm.tensor([8.0, 0.0, -8.0], dtype=tinylm.float64, requires_grad=True)
onehot = np.array([0.0, 0.0, 1.0])
mse = 0.5 * ((F.softmax(z) - tinylm.Tensor(onehot)) ** 2).sum()
mse.backward()
g_mse = np.abs(z.grad.numpy()).max()
z.grad = None
F.cross_entropy(z, np.array(2)).backward()
g_ce = np.abs(z.grad.numpy()).max()
print(f"largest gradient: squared error {g_mse:.2e}, cross-entropy {g_ce:.2e}")
check("the squared error barely moves a confidently wrong model", g_mse < 1e-3)
check("cross-entropy pushes it hard", g_ce > 0.9)
