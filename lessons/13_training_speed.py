# %% [markdown]
# # 训练加速 Training speed: gradient accumulation and mixed precision (004.speed)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 训练加速 — speeding up training — the same result for less time or memory.
# * 梯度累积 — gradient accumulation — add the gradients of several small batches, then take one
#   step.
# * 混合精度训练 — mixed-precision training — compute in float16, keep float32 master weights.
# * 半精度 — half precision (float16) — 16-bit floats: half the memory, a narrow range.
# * 下溢 / 溢出 — underflow / overflow — a number too small (becomes 0) or too large (becomes ∞) for
#   its type.
# * 损失缩放 / 动态损失缩放 — loss scaling / dynamic loss scaling — multiply the loss so small
#   gradients survive float16; adjust the factor as training goes.
# * 损失函数 — loss function — the cross-entropy being scaled.
# * 学习率 / 优化器 — learning rate / optimizer — the step size, and the rule that steps (AdamW).
#
# Article 004 (§8.2) names two ways to train faster or on smaller hardware: gradient
# accumulation (梯度累积) and mixed-precision training (混合精度训练). Both are exact tricks
# when done right, and this lesson checks each one numerically:
#
# * **Gradient accumulation.** Run a large batch as k micro-batches. Scale each micro-batch's
#   loss by 1/k and let the gradients add up, then take one optimizer step. The gradient is
#   the large batch's, exactly. We check this on a tiny GPT.
# * **Mixed precision.** Compute in float16, which is half the memory and much faster on
#   GPUs, and keep float32 master weights. float16's narrow range flushes small gradients to
#   zero. *Loss scaling* multiplies the loss by 2^k before the backward pass and divides the
#   gradient by 2^k afterwards, and the gradient survives. *Dynamic* loss scaling picks 2^k
#   by itself: halve the scale on an overflow and skip the step; double it after N clean steps.
#
# The mixed-precision loop below is first written out in NumPy float16/float32 on a small
# model, so every cast is visible; the last section runs the same procedure with the engine's
# own `tinylm.amp` (`tinylm train --amp`).

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data import CharTokenizer, default_corpus_text, get_batch
from tinylm.lesson import check, graded, picture, pyplot
from tinylm.models import GPT, GPTConfig

rng = np.random.default_rng(0)
tinylm.manual_seed(0)

# %% [markdown]
# ## 梯度累积 Gradient accumulation equals the large batch
#
# GPT's loss is the *mean* cross-entropy over the B·T tokens of a batch. Split the B rows into
# k micro-batches of equal size. The batch mean is then the mean of the k micro-batch
# means, `L = (1/k) Σ_i L_i`, so `∇L = Σ_i ∇(L_i / k)`. tinylm adds every `backward()`
# into `.grad`, as PyTorch does. So calling `(L_i / k).backward()` for each micro-batch
# leaves `∇L` behind, with only one micro-batch's activations in memory at a time.

# %%
text = default_corpus_text(20_000)
tok = CharTokenizer.train(text)
data = np.array(tok.encode(text))
gpt = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
for p in gpt.parameters():
    p.data = p.data.astype(np.float64)          # float64: we compare gradients
x, y = get_batch(data, 8, 16, rng)


def gradients():
    """{name: copy of .grad} for every parameter, then clear the gradients."""
    out = {name: p.grad.numpy().copy() for name, p in gpt.named_parameters()}
    gpt.zero_grad()
    return out


_, loss = gpt(x, y)
loss.backward()
big = gradients()

k = 4
micro = np.split(np.arange(len(x)), k)          # 4 micro-batches of 2 rows
for rows in micro:
    _, loss_i = gpt(x[rows], y[rows])
    (loss_i / k).backward()                     # accumulates into .grad
accumulated = gradients()

for rows in micro:
    _, loss_i = gpt(x[rows], y[rows])
    loss_i.backward()                           # the common slip: no 1/k
unscaled = gradients()

worst = max(np.abs(big[n] - accumulated[n]).max() for n in big)
print(f"largest difference, big batch vs {k} accumulated micro-batches: {worst:.2e}")
check("accumulated micro-batch gradients = the big batch's gradient",
      all(np.allclose(big[n], accumulated[n], atol=1e-12) for n in big))
check("without the 1/k the gradient is k times too large",
      all(np.allclose(unscaled[n], k * big[n], atol=1e-12) for n in big))

# %% [markdown]
# The same check as a three-way table, for one parameter, the final LayerNorm's gain `w`.
# Autograd and central differences differentiate the *big-batch* loss as a function of `w`.
# The "formula" column is the gradient accumulated from the four micro-batches.

# %%
with tinylm.no_grad():
    hidden = gpt.wte(x) + gpt.wpe(np.arange(x.shape[1]))
    for block in gpt.h:
        hidden = block(hidden)                  # everything before ln_f, held fixed
C = gpt.config.n_embd


def big_batch_loss(w):
    normed = F.layer_norm(hidden, (C,), w, tinylm.Tensor(gpt.ln_f.bias.numpy()))
    logits = normed @ tinylm.Tensor(gpt.wte.weight.numpy()).T
    return F.cross_entropy(logits.reshape(-1, tok.vocab_size), y.reshape(-1))


report = compare(big_batch_loss, lambda g, w: {"w": g * accumulated["ln_f.weight"]},
                 {"w": tinylm.Tensor(gpt.ln_f.weight.numpy(), requires_grad=True)})
print(report.table("ln_f.weight: big-batch autograd vs numeric vs accumulated micro-batches"))
check("the accumulated gradient passes the three-way check", report.passed)

# %% [markdown]
# One caveat: "mean of the micro-batch means" equals the batch mean only when every
# micro-batch counts the same number of tokens. Padding (targets set to `ignore_index`)
# breaks that. The fix is to weight each micro-batch by its share of the counted tokens,
# `L = Σ_i (n_i / n) L_i`, in place of `1/k`:

# %%
y_pad = y.copy()
y_pad[0, :12] = -1                              # 12 padded targets in the first micro-batch
_, loss = gpt(x, y_pad)
loss.backward()
big_pad = gradients()
counted = (y_pad != -1).sum()
for rows in micro:
    _, loss_i = gpt(x[rows], y_pad[rows])
    (loss_i / k).backward()
naive = gradients()
for rows in micro:
    _, loss_i = gpt(x[rows], y_pad[rows])
    (loss_i * ((y_pad[rows] != -1).sum() / counted)).backward()
weighted = gradients()
check("with padding, 1/k no longer gives the big batch's gradient",
      not all(np.allclose(big_pad[n], naive[n], atol=1e-9) for n in big_pad))
check("weighting by counted tokens does", all(np.allclose(big_pad[n], weighted[n], atol=1e-12) for n in big_pad))

# %% [markdown]
# `tinylm.train.Trainer` does the same thing with `grad_accum=k` in its config. Its batches
# hold no padding, so the plain 1/k is exact there.
#
# ## 混合精度 float16's range problem, by hand
#
# float16 has 5 exponent bits and 10 mantissa bits. Its largest value is 65504, its smallest
# normal value 2⁻¹⁴ ≈ 6.1e-5, and its smallest subnormal 2⁻²⁴ ≈ 6.0e-8. A gradient of 1e-8
# is nothing to float32, but in float16 it becomes exactly 0. A value above 65504 becomes
# inf. And a float16 weight of 1 cannot take an update of 1e-4, because 1 + 1e-4 rounds back
# to 1. That last one is why the weights are kept and updated in float32 (the "master"
# copy), and only the compute is done in float16.

# %%
info = np.finfo(np.float16)
print(f"float16: max {info.max}, smallest normal {info.tiny:.3g}, smallest subnormal {info.smallest_subnormal:.3g}, "
      f"eps {info.eps:.3g}")
with np.errstate(over="ignore"):
    big_value = np.float16(70000.0)
check("1e-8 flushes to zero in float16", np.float16(1e-8) == 0)
check("70000 overflows to inf in float16", np.isinf(big_value))
check("a float16 weight of 1 ignores an update of 1e-4", np.float16(1) + np.float16(1e-4) == np.float16(1))
check("float32 keeps both", np.float32(1e-8) > 0 and np.float32(1) + np.float32(1e-4) > 1)

# %% [markdown]
# **Loss scaling, by hand.** Multiply the loss, and with it every gradient, by `s = 2^16`
# before the float16 backward pass. Then convert the gradient to float32 and divide by s.
# Scaling by a power of two changes only the exponent, so no digit is lost to the scaling
# itself:

# %%
g = 1e-8
s = 2.0 ** 16
scaled16 = np.float16(g * s)                    # 6.55e-4: inside float16's range
recovered = np.float32(scaled16) / s
print(f"g = {g:g}: float16(g) = {float(np.float16(g)):g}; float16(g·2^16) = {float(scaled16):.4g}; "
      f"back in float32 ÷ 2^16 = {recovered:.6g}")
check("loss scaling saves the gradient", np.float16(g) == 0 and abs(recovered - g) / g < 1e-3)
with np.errstate(over="ignore"):
    check("but too large a scale overflows a gradient of 2", np.isinf(np.float16(2.0 * s)))

# %% [markdown]
# ## 损失缩放 Mixed-precision training on a small model
#
# The model is a linear regression `ŷ = X w` with N = 4096 examples. Its targets are small
# (about 1e-3), as many activations in deep networks are. Each step runs:
#
# 1. forward in float16 (float16 inputs, float32 accumulation, float16 output, like tensor cores);
# 2. backward: the gradient with respect to ŷ, `s · 2(ŷ − y)/N`, stored in float16, then
#    `g = Xᵀ(...)`, also stored in float16;
# 3. unscale in float32, `g / s`, and skip the step if anything is inf or NaN;
# 4. update the float32 master weights, `w ← w − lr · g`.
#
# The backward pass is written by hand. Here is its formula, `∇_w mean((Xw − y)²) = 2Xᵀ(Xw − y)/N`,
# checked three ways on a few rows:

# %%
N, d = 4096, 8
X = rng.standard_normal((N, d)).astype(np.float32)
w_true = (1e-3 * rng.standard_normal(d)).astype(np.float32)
y_reg = X @ w_true
X16 = X.astype(np.float16)

Xs, ys = X[:6].astype(np.float64), y_reg[:6].astype(np.float64)
report = compare(lambda w: ((tinylm.Tensor(Xs) @ w - tinylm.Tensor(ys)) ** 2).mean(),
                 lambda g_out, w: {"w": g_out * 2 * Xs.T @ (Xs @ w - ys) / len(Xs)},
                 {"w": tinylm.Tensor(rng.standard_normal(d) * 1e-3, requires_grad=True)})
print(report.table("mean((Xw − y)²): autograd vs numeric vs 2Xᵀ(Xw − y)/N"))
check("the hand backward used below is right", report.passed)


def train_mixed(scale, steps=200, lr=0.25, update_rule=None, growth_interval=20):
    """Train w in mixed precision; returns (losses, scales, skipped). update_rule(scale,
    found_inf, clean_steps, growth_interval) -> (scale, clean_steps) makes the scale dynamic;
    scale=None trains in float32 throughout, as the reference."""
    w = np.zeros(d, dtype=np.float32)          # the float32 master weights
    losses, scales, skipped, clean = [], [], 0, 0
    for _ in range(steps):
        if scale is None:
            grad = 2 * X.T @ (X @ w - y_reg) / N
            found_inf = False
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                y_hat = (X16.astype(np.float32) @ w.astype(np.float16).astype(np.float32)).astype(np.float16)
                d_yhat = (scale * 2 * (y_hat.astype(np.float32) - y_reg) / N).astype(np.float16)
                grad16 = (X16.T.astype(np.float32) @ d_yhat.astype(np.float32)).astype(np.float16)
                grad = grad16.astype(np.float32) / scale   # unscale in float32
            found_inf = not np.all(np.isfinite(grad))
            if update_rule is not None:
                scale, clean = update_rule(scale, found_inf, clean, growth_interval)
        if found_inf:
            skipped += 1                        # skip the update: the gradient is unusable
        else:
            w -= lr * grad
        losses.append(float(np.mean((X @ w - y_reg) ** 2)))
        scales.append(scale)
    return losses, scales, skipped


runs = {"float32": train_mixed(None), "float16, no scaling": train_mixed(1.0),
        "float16, scale 2^12": train_mixed(2.0 ** 12), "float16, scale 2^40": train_mixed(2.0 ** 40)}
for name, (losses, _, skipped) in runs.items():
    print(f"{name:22s} final loss {losses[-1]:.3e}   skipped steps {skipped}")
initial = float(np.mean(y_reg ** 2))
check("without scaling, float16 gradients underflow: training stalls 100x above the scaled run",
      runs["float16, no scaling"][0][-1] > 100 * runs["float16, scale 2^12"][0][-1])
check("a good static scale (2^12) trains to float16's precision",
      runs["float16, scale 2^12"][0][-1] < 1e-6 * initial)
check("a too-large static scale (2^40) overflows on every step: nothing is learned",
      runs["float16, scale 2^40"][2] == 200 and np.isclose(runs["float16, scale 2^40"][0][-1], initial))

# %% [markdown]
# ## 动态损失缩放 Dynamic loss scaling
#
# A good scale depends on the model and on how far training has gone, since gradients shrink
# as the loss falls. Dynamic loss scaling finds the scale by trial:
#
# * an overflow (any inf or NaN in the unscaled gradient) means the scale is too large:
#   **halve** it, skip that step, and reset the count of clean steps;
# * after `growth_interval` clean steps in a row, try a larger one: **double** it, and reset
#   the count;
# * otherwise keep the scale and add one to the count.
#
# (PyTorch's GradScaler does this with an initial scale of 2^16 and an interval of 2000 steps.
# Our toy uses 20.) Write the update:

# %%
def update_scale(scale, found_inf, clean_steps, growth_interval):
    """One step of dynamic loss scaling: returns (new scale, new count of clean steps)."""
    # BEGIN SOLUTION hint: overflow halves the scale; growth_interval clean steps double it; either resets the count
    if found_inf:
        return scale / 2, 0
    clean_steps += 1
    if clean_steps >= growth_interval:
        return scale * 2, 0
    return scale, clean_steps
    # END SOLUTION


def dynamic_run():
    """Mixed-precision training from the too-large scale 2^40, with your update rule."""
    losses, scales, skipped = train_mixed(2.0 ** 40, update_rule=update_scale)
    print(f"dynamic scaling from 2^40: final loss {losses[-1]:.3e}, skipped steps {skipped}")
    print("log2(scale) every 20 steps:", [int(np.log2(s)) for s in scales[::20]])
    try:
        plt = pyplot()

        fig, axes = plt.subplots(1, 2, figsize=(9, 3))
        for name, (run_losses, _, _) in runs.items():
            axes[0].semilogy(run_losses, label=name)
        axes[0].semilogy(losses, "k--", label="float16, dynamic scale")
        axes[0].set_ylabel("loss")
        axes[0].legend(fontsize=7)
        axes[1].plot(np.log2(scales))
        axes[1].set_ylabel("log2(loss scale)")
        for ax in axes:
            ax.set_xlabel("step")
        fig.tight_layout()
        picture(fig, "13_loss_scaling.png")
    except ImportError:
        print("(matplotlib not installed: no plot)")
    return losses, scales, skipped


def clean_run(n):
    """(scale, count) after n clean steps from (1024, 0) with interval 10."""
    state = (1024.0, 0)
    for _ in range(n):
        state = update_scale(state[0], False, state[1], 10)
    return state


graded("an overflow halves the scale and resets the count", lambda: update_scale(1024.0, True, 7, 10) == (512.0, 0))
graded("a clean step keeps the scale and counts", lambda: update_scale(1024.0, False, 3, 10) == (1024.0, 4))
graded("10 clean steps double the scale, 9 do not",
       lambda: clean_run(9) == (1024.0, 9) and clean_run(10) == (2048.0, 0))
graded("from 2^40 your rule recovers: a few skipped steps, then training like the best static scale",
       lambda: (lambda r: 0 < r[2] < 40 and r[0][-1] < 1e-6 * initial)(dynamic_run()))


# %% [markdown]
# ## tinylm.amp: the same procedure in the engine
#
# `tinylm.amp.LossScaler` follows the rule you wrote (halve on overflow, double after
# `growth_interval` clean steps), and `MixedPrecision` keeps float16 parameters for the
# forward and backward passes and float32 master weights for the optimizer. Its float16 ops
# compute their sums (softmax, layer norm, cross-entropy) in float32, and the loss stays
# float32, as PyTorch's autocast does.

# %%
from tinylm.amp import LossScaler, MixedPrecision  # noqa: E402
from tinylm.models import build_model  # noqa: E402
from tinylm.optim import AdamW  # noqa: E402

engine_scaler = LossScaler(init_scale=1024.0, growth_interval=10)
events = [True] * 12 + [False] + [True] * 10
for finite in events:
    engine_scaler.update(finite)
print(f"after 12 clean steps, an overflow and 10 clean steps: scale {engine_scaler.scale:g}")
check("LossScaler: x2 after 10 clean steps, /2 on the overflow, x2 after 10 more", engine_scaler.scale == 2048.0)

tinylm.manual_seed(0)
amp_model = build_model("gpt", vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16)
mp = MixedPrecision(amp_model)
amp_opt = AdamW(mp.master_parameters(), lr=1e-2)
amp_rng = np.random.default_rng(0)
x_amp, y_amp = amp_rng.integers(0, 11, (4, 8)), amp_rng.integers(0, 11, (4, 8))
amp_losses = []
for _ in range(20):
    loss = amp_model(x_amp, y_amp)[1]
    amp_losses.append(loss.item())
    mp.backward(loss)
    mp.step(amp_opt, grad_clip=1.0)
print(f"tinylm.amp on a tiny GPT: loss {amp_losses[0]:.3f} -> {amp_losses[-1]:.3f}, scale {mp.scaler.scale:g}")
check("the model computes in float16, the optimizer updates float32 masters",
      all(p.dtype == np.float16 for p in amp_model.parameters())
      and all(m.dtype == np.float32 for m in mp.master_parameters()))
check("mixed-precision training lowers the loss", amp_losses[-1] < amp_losses[0] - 0.3)
