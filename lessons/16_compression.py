# %% [markdown]
# # 模型压缩 Model compression: quantization, pruning, distillation; data parallelism (001.compress)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 模型压缩 — model compression — a smaller or faster model for nearly the same quality.
# * 量化 — quantization — storing weights as 8-bit integers with a scale.
# * 剪枝 — pruning — setting the smallest weights to zero.
# * 稀疏度 — sparsity — the share of weights that are zero.
# * 知识蒸馏 — knowledge distillation — training a small student to match a large teacher's outputs.
# * 教师 / 学生模型 — teacher / student model — the large model that is copied / the small one that
#   copies.
# * 分布式训练和推理 — distributed training and inference — splitting the work over several devices.
# * 损失函数 — loss function — the validation loss before and after compression.
# * 优化器 — optimizer — AdamW, for the training runs.
#
# Article 001 (§9.9) names two ways to make a trained model cheaper to ship, 量化
# (quantization) and 剪枝 (pruning). For speed it names 分布式训练和推理 (distributed training
# and inference). **001.compress** is a procedure. This lesson writes out the formulas behind
# each method and checks them:
#
# * **quantization**: store each weight as an 8-bit integer plus one float scale per output
#   channel, with a provable error bound;
# * **pruning**: set the weights of smallest magnitude, ranked over the whole model, to zero;
# * **knowledge distillation** (知识蒸馏), the usual third companion: train a small student
#   to match a teacher's softened output distribution, with the T² factor explained;
# * the three methods applied to a trained checkpoint, with a before/after report;
# * distributed training, reduced to what a 2-core machine can show. Data parallelism averages
#   the gradients of replicas, and that equals one large batch.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.compress import (QuantizedLinear, apply_masks, compress_checkpoint, distillation_loss, format_report,
                             kl_divergence, load_compressed, prune, quantize_linear, quantize_weight)
from tinylm.data import CharTokenizer, default_corpus_text, get_batch, load_tokenizer, train_val_split
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.metrics import evaluate_loss
from tinylm.models import GPT, GPTConfig
from tinylm.nn import Linear, Sequential
from tinylm.optim import SGD
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

rng = np.random.default_rng(0)
tinylm.manual_seed(0)

# %% [markdown]
# ## 量化 Per-channel symmetric int8 quantization by hand
#
# A float32 weight takes 4 bytes, an int8 takes 1. For each output channel c (a row of W):
#
# `scale_c = max_j |W_cj| / 127`,  `q_cj = clip(round(W_cj / scale_c), −127, 127)`,  `Ŵ_cj = q_cj · scale_c`.
#
# The row's largest weight maps to ±127. "Symmetric" means zero maps to 0 and there is no
# offset. −128 is left unused, so +x and −x get opposite codes. Rounding to the nearest integer
# moves W/scale by at most ½, so the error is bounded: `|W_cj − Ŵ_cj| ≤ scale_c / 2`. Below,
# the second row's weights are a thousand times smaller than the others, as happens in real
# layers:

# %%
W = np.array([[0.50, -1.27, 0.10, 0.02],
              [0.003, -0.004, 0.001, 0.0005],
              [2.00, 1.00, -0.50, 0.25]])
scale = np.abs(W).max(1) / 127                                   # one scale per row
q = np.clip(np.rint(W / scale[:, None]), -127, 127)
W_hat = q * scale[:, None]
print("scales", scale, "\nq =\n", q.astype(int))
print("largest error per row", np.abs(W - W_hat).max(1), "≤ scale/2 =", scale / 2)
check("row 0: scale = 1.27/127 = 0.01, so q = W · 100", np.isclose(scale[0], 0.01)
      and np.array_equal(q[0], [50, -127, 10, 2]))
check("the error is at most scale/2 in every row", np.all(np.abs(W - W_hat) <= scale[:, None] / 2 + 1e-15))
q_lib, scale_lib = quantize_weight(W)
check("tinylm's quantize_weight gives the same codes and scales",
      np.array_equal(q, q_lib) and np.allclose(scale, scale_lib) and q_lib.dtype == np.int8)

# %% [markdown]
# **Why per channel?** With one scale for the whole matrix (per tensor), `max|W| / 127 = 2/127`
# is larger than every weight in the small row, and the whole row rounds to zero:

# %%
s_tensor = np.abs(W).max() / 127
W_tensor = np.clip(np.rint(W / s_tensor), -127, 127) * s_tensor
print("per-tensor codes of row 1:", np.rint(W[1] / s_tensor).astype(int))
print(f"row 1 relative error: per tensor {np.abs(W[1] - W_tensor[1]).max() / np.abs(W[1]).max():.0%}, "
      f"per channel {np.abs(W[1] - W_hat[1]).max() / np.abs(W[1]).max():.2%}")
check("per tensor, the small row is wiped out", np.all(W_tensor[1] == 0))
check("per channel, it keeps better than 0.5% accuracy", np.abs(W[1] - W_hat[1]).max() < 0.005 * np.abs(W[1]).max())

# %% [markdown]
# Your turn: the per-channel quantizer, returning (q, scale). Leave a row of zeros at scale 1
# so you never divide by 0.

# %%
def quantize_per_channel(W):
    """(q, scale): int8 codes (out, in) and one scale per row, symmetric, codes in [-127, 127]."""
    # BEGIN SOLUTION hint: scale = max |row| / 127 (1 for a zero row); q = rint(W / scale), clipped to ±127, as int8
    scale = np.abs(W).max(axis=1) / 127
    scale = np.where(scale == 0, 1.0, scale)
    return np.clip(np.rint(W / scale[:, None]), -127, 127).astype(np.int8), scale
    # END SOLUTION


W_test = rng.standard_normal((16, 24)) * rng.uniform(0.001, 3, (16, 1))
W_test[5] = 0.0
graded("your codes and scales equal quantize_weight's",
       lambda: (lambda mine, ref: np.array_equal(mine[0], ref[0]) and np.allclose(mine[1], ref[1]))(
           quantize_per_channel(W_test), quantize_weight(W_test)))
graded("your quantization keeps |W - q·scale| <= scale/2 with codes in [-127, 127]",
       lambda: (lambda qs: np.all(np.abs(W_test - qs[0] * qs[1][:, None]) <= qs[1][:, None] / 2 + 1e-12)
                and np.abs(qs[0]).max() == 127)(quantize_per_channel(W_test)))

# %% [markdown]
# `quantize_linear` turns a `Linear` into a `QuantizedLinear`. That layer keeps the int8
# codes and the scales as buffers, which are saved but not learned, and rebuilds Ŵ on every
# forward pass. So the saving is in storage; the matrix multiply is still done in float. Its
# output moves by at most `Σ_j |x_j| · scale_c / 2` per output channel:

# %%
lin = Linear(64, 32).double()
qlin = quantize_linear(lin)
x_in = rng.standard_normal((5, 64))
y_float, y_int8 = lin(tinylm.Tensor(x_in)).numpy(), qlin(tinylm.Tensor(x_in)).numpy()
bound = np.abs(x_in).sum(1, keepdims=True) * qlin.weight_scale.numpy()[None, :] / 2
stored = qlin.weight_int8.numpy().nbytes + 4 * qlin.out_features                     # int8 codes + float32 scales
print(f"largest output change {np.abs(y_float - y_int8).max():.2e}; weight storage {stored} bytes "
      f"instead of {4 * lin.weight.numel()} ({stored / (4 * lin.weight.numel()):.1%})")
check("QuantizedLinear computes x Ŵᵀ + b", np.allclose(y_int8, x_in @ (qlin.weight_int8.numpy() *
                                                                       qlin.weight_scale.numpy()[:, None]).T
                                                       + lin.bias.numpy()))
check("its output stays within the error bound", np.all(np.abs(y_float - y_int8) <= bound))
check("the weights take about a quarter of the space", stored / (4 * lin.weight.numel()) < 0.27)

# %% [markdown]
# Backpropagation through a QuantizedLinear, three ways. Only the input and the bias get
# gradients: `∂L/∂x = g Ŵ`, `∂L/∂b = Σ_rows g`. The codes are integers, fixed once quantized.

# %%
q_int8, q_scale = qlin.weight_int8, qlin.weight_scale
W_deq = q_int8.numpy() * q_scale.numpy()[:, None]
report = compare(lambda x, b: QuantizedLinear(q_int8, q_scale, b)(x),
                 lambda g, x, b: {"x": g @ W_deq, "b": g.sum(0)},
                 {"x": tinylm.Tensor(x_in[:2], requires_grad=True),
                  "b": tinylm.Tensor(lin.bias.numpy(), requires_grad=True)})
print(report.table("QuantizedLinear: autograd vs numeric vs formula"))
check("QuantizedLinear's gradients, three ways", report.passed)

# %% [markdown]
# ## 剪枝 Global magnitude pruning by hand
#
# Unstructured magnitude pruning sets the weights with the smallest |w| to zero. "Global"
# means all layers are ranked together. For sparsity s over n weights, put every |w| in one
# list, sort it, and zero the first `k = round(s · n)`; the threshold is the k-th smallest |w|.
# A layer whose weights are small overall loses more than the target share. Below the second
# layer's weights are 10 times smaller than the first's:

# %%
net = Sequential(Linear(6, 5), Linear(5, 4))
with tinylm.no_grad():
    net[1].weight.data *= 0.1
weights = [net[0].weight.numpy().copy(), net[1].weight.numpy().copy()]
sparsity = 0.4
magnitudes = np.concatenate([np.abs(w).ravel() for w in weights])
k = round(sparsity * magnitudes.size)                             # 0.4 · 50 = 20 weights to zero
threshold = np.sort(magnitudes)[k - 1]
hand_masks = [np.abs(w) > threshold for w in weights]             # no ties among random floats
for i, m in enumerate(hand_masks):
    print(f"layer {i}: {m.size} weights, {(~m).sum()} pruned ({(~m).mean():.0%})")
print(f"threshold |w| <= {threshold:.4f}: {k} of {magnitudes.size} weights")

result = prune(net, sparsity)
engine_masks = [net[0].weight_mask.numpy().copy(), net[1].weight_mask.numpy().copy()]
check("exactly round(0.4 · 50) = 20 weights are zero", sum((~m).sum() for m in hand_masks) == 20 == result["zeros"]
      and sum(int((layer.weight.numpy() == 0).sum()) for layer in net) == 20)
check("prune finds the same threshold", np.isclose(result["threshold"], threshold))
check("...and the same masks", all(np.array_equal(h, e) for h, e in zip(hand_masks, engine_masks)))
check("the small layer loses more than 40%, the large one less",
      result["layers"]["1"] > sparsity > result["layers"]["0"])

# %% [markdown]
# Your turn: the global masks for any list of weight matrices. Break ties by position, as a
# stable sort does, so that exactly k weights go even when some |w| are equal.

# %%
def global_prune_masks(weights, sparsity):
    """One boolean mask per matrix (True = kept), zeroing the round(sparsity · n) smallest |w| overall."""
    # BEGIN SOLUTION hint: order = argsort(concatenated |w|, kind="stable"); drop the first round(s·n); split back
    flat = np.concatenate([np.abs(w).ravel() for w in weights])
    keep = np.ones(flat.size, dtype=bool)
    keep[np.argsort(flat, kind="stable")[:round(sparsity * flat.size)]] = False
    sizes = np.cumsum([w.size for w in weights])[:-1]
    return [m.reshape(w.shape) for m, w in zip(np.split(keep, sizes), weights)]
    # END SOLUTION


tied = [np.array([[0.1, -0.3], [0.1, 0.2]]), np.array([[0.1, 0.5, -0.1]])]   # five weights of |w| = 0.1
graded("your masks equal prune's on the two-layer net",
       lambda: all(np.array_equal(m, e) for m, e in zip(global_prune_masks(weights, sparsity), engine_masks)))
graded("with ties, exactly round(s·n) weights go, the earliest first",
       lambda: [m.tolist() for m in global_prune_masks(tied, 3 / 7)] == [[[False, True], [False, True]],
                                                                         [[False, True, True]]])

# %% [markdown]
# To fine-tune after pruning, a pruned weight must stay zero. But in `y = x Wᵀ` a weight that
# is merely set to zero still gets the gradient `gᵀ x`, and the next optimizer step revives it.
# One fix puts the mask inside the forward pass, `y = x (W ⊙ M)ᵀ`. The gradient is then
# `∂L/∂W = (gᵀ x) ⊙ M`, zero at every pruned weight, though momentum and weight decay can
# still move one. tinylm takes the other fix: `apply_masks` re-zeroes the pruned weights after
# every optimizer step. First the masked gradient, three ways:

# %%
M = engine_masks[0]
x_p = rng.standard_normal((3, 6))
report = compare(lambda w: tinylm.Tensor(x_p) @ (w * tinylm.Tensor(M.astype(np.float64))).T,
                 lambda g, w: {"w": (g.T @ x_p) * M},
                 {"w": tinylm.Tensor(weights[0], requires_grad=True)})
print(report.table("y = x (W ⊙ M)ᵀ: autograd vs numeric vs (gᵀx) ⊙ M"))
check("the masked layer's gradient, three ways", report.passed)

opt = SGD(net.parameters(), lr=0.1, momentum=0.9)


def pruned_still_zero():
    return all(np.all(layer.weight.numpy()[~m] == 0) for layer, m in zip(net, engine_masks))


for step in range(3):
    loss = (net(tinylm.Tensor(rng.standard_normal((8, 6)).astype(np.float32))) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step == 0:
        check("one plain optimizer step revives pruned weights", not pruned_still_zero())
    apply_masks(net)
check("with apply_masks after every step, the pruned weights stay zero", pruned_still_zero())

# %% [markdown]
# ## 知识蒸馏 Knowledge distillation: KL at temperature T, and the T² factor
#
# A teacher's full output distribution says more than the one correct label does. Which
# wrong answers are *almost* right? Distillation (Hinton et al., 2015) trains the student on
# the teacher's probabilities, softened by a temperature T:
#
# `p = softmax(t / T)` (teacher), `q = softmax(s / T)` (student),
# `KL(p ‖ q) = Σ_v p_v (log p_v − log q_v)`, averaged over positions;
#
# `L = α T² KL(p ‖ q) + (1 − α) CE(s, y)`.
#
# Differentiating, `∂KL/∂s = (q − p) / T` per position. When T is large next to the logit gaps,
# `q − p ≈ (s − t) / (V T)` after centring, so the soft gradient shrinks like 1/T². The T²
# factor cancels that, and the balance α between the soft and hard terms stays the same
# whatever T is.

# %%
s_log = rng.standard_normal((3, 5))                # 3 positions, a vocabulary of 5
t_log = 2 * rng.standard_normal((3, 5))
targets = np.array([1, 0, 4])
T, alpha = 2.0, 0.5


def softmax_rows(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


p_t, q_s = softmax_rows(t_log / T), softmax_rows(s_log / T)
kl_hand = np.mean((p_t * (np.log(p_t) - np.log(q_s))).sum(-1))
ce_hand = -np.mean(np.log(softmax_rows(s_log)[np.arange(3), targets]))
loss_hand = alpha * T ** 2 * kl_hand + (1 - alpha) * ce_hand
print(f"KL at T={T}: {kl_hand:.6f}; CE: {ce_hand:.6f}; L = {loss_hand:.6f}")
check("KL by hand equals kl_divergence", np.isclose(kl_hand, kl_divergence(tinylm.Tensor(s_log), tinylm.Tensor(t_log),
                                                                            T).item()))
check("L by hand equals distillation_loss", np.isclose(loss_hand, distillation_loss(
    tinylm.Tensor(s_log), tinylm.Tensor(t_log), targets, T, alpha).item()))
check("KL ≥ 0, and 0 when the student equals the teacher", kl_hand > 0 and abs(kl_divergence(
    tinylm.Tensor(t_log), tinylm.Tensor(t_log), T).item()) < 1e-12)

# %% [markdown]
# The gradient of the whole loss with respect to the student's logits, three ways:
# `∂L/∂s = [α T (q − p) + (1 − α)(softmax(s) − onehot(y))] / N`.

# %%
def distill_formula(g, s):
    q_T = softmax_rows(s / T)
    return {"s": g * (alpha * T * (q_T - p_t) + (1 - alpha) * (softmax_rows(s) - np.eye(5)[targets])) / len(s)}


report = compare(lambda s: distillation_loss(s, tinylm.Tensor(t_log), targets, T, alpha), distill_formula,
                 {"s": tinylm.Tensor(s_log, requires_grad=True)})
print(report.table("distillation loss: autograd vs numeric vs formula"))
check("the distillation gradient, three ways", report.passed)

norms = {}
for temp in (1.0, 2.0, 4.0, 8.0):
    s_t = tinylm.Tensor(s_log, requires_grad=True)
    kl_divergence(s_t, tinylm.Tensor(t_log), temp).backward()
    norms[temp] = np.linalg.norm(s_t.grad.numpy())
    print(f"T = {temp:3.0f}: |∂KL/∂s| = {norms[temp]:.5f}, times T² = {temp ** 2 * norms[temp]:.5f}")
check("without T², doubling T from 4 to 8 divides the soft gradient by about 4",
      3.5 < norms[4.0] / norms[8.0] < 4.5)
check("with T², it changes by less than 10%", abs(64 * norms[8.0] / (16 * norms[4.0]) - 1) < 0.1)

# %% [markdown]
# ## 压缩报告 All three on a trained checkpoint
#
# `compress_checkpoint` takes a checkpoint file and applies, in order: pruning of the Linear
# weights, optional distillation from a teacher checkpoint (here the original model, which
# recovers some of what pruning cost), and int8 quantization. It writes a new checkpoint and
# a before/after report. First a small GPT, trained by `tinylm.train.Trainer` for a few
# dozen steps:

# %%
corpus_file = output_dir() / "16_corpus.txt"
corpus_file.write_text(default_corpus_text(20_000), encoding="utf-8")
cfg = LMConfig(data=str(corpus_file), n_layer=2, n_head=2, n_embd=64, block_size=32, batch_size=8,
               max_iters=20 if fast() else 60, lr=3e-3, min_lr=3e-4, warmup_iters=5,
               eval_interval=10 if fast() else 30, eval_iters=2, weight_decay=0.0,
               out=str(output_dir() / "16_run"), progress=False, seed=0)
summary = Trainer(LanguageModeling(cfg), log=print).run()
runs = (("16_pruned.ckpt", {"prune": 0.5}), ("16_int8.ckpt", {"quantize": "int8"}),
        ("16_all.ckpt", {"prune": 0.5, "distill_from": summary["best"], "max_iters": 5 if fast() else 30,
                         "quantize": "int8"}))
reports = [compress_checkpoint(summary["best"], output_dir() / name, data=str(corpus_file), **options)
           for name, options in runs]
rows = [reports[0][0]] + [after for _, after in reports]          # one "before" row, then each "after"
print(format_report(rows))
base, pruned, int8, everything = rows
check("pruning alone halves the nonzero Linear weights but not the file: zeros are stored densely",
      pruned["nonzero"] < 0.6 * base["nonzero"] and pruned["bytes"] > 0.95 * base["bytes"])
check("int8 shrinks the file to well under half", int8["bytes"] < 0.45 * base["bytes"])
check("all three: a far smaller model whose validation loss stays within 0.2 nats",
      everything["bytes"] < 0.45 * base["bytes"] and everything["val_loss"] < base["val_loss"] + 0.2)

model, meta = load_compressed(output_dir() / "16_all.ckpt")
n_quantized = sum(isinstance(m, QuantizedLinear) for m in model.modules())
print(f"reloaded: {n_quantized} QuantizedLinear layers; skipped: {meta['compression']['quantized']['skipped']}")
corpus_ids = load_tokenizer(meta["tokenizer"]).encode(corpus_file.read_text(encoding="utf-8"))
val_ids = train_val_split(np.array(corpus_ids), 0.1)[1]           # the text compress_checkpoint validated on
check("the reloaded compressed model gives the reported validation loss",
      np.isclose(evaluate_loss(model, val_ids)[0], everything["val_loss"]))

# %% [markdown]
# The tied `lm_head` stays in float. Its matrix *is* the token embedding, and quantizing it
# would either change the embedding too or store a second copy. tinylm's `QuantizedLinear`
# also computes in float after rebuilding Ŵ, so it is no faster. Real int8 speed-ups need
# integer matrix-multiply kernels, which NumPy does not provide.
#
# ## 分布式训练和推理 Distributed training and inference, in miniature
#
# Spreading a model over many GPUs is outside a 2-core lesson. The core idea of *data
# parallelism* (PyTorch's DistributedDataParallel) still fits in a few lines. Each of R
# replicas holds the same weights and takes 1/R of the batch. After the backward pass they
# average their gradients, an "all-reduce". Since the loss is a mean over the batch, the
# average of the half-batch gradients is the whole batch's gradient. It is the same identity
# as gradient accumulation (004.speed, lesson 13), with the micro-batches running side by side
# instead of one after another. Every replica then takes the same optimizer step, so the
# replicas stay identical. Two "replicas" of a tiny GPT:

# %%
text = default_corpus_text(20_000)
ctok = CharTokenizer.train(text)
data = np.array(ctok.encode(text))
config = GPTConfig(vocab_size=ctok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
replicas = [GPT(config).double(), GPT(config).double()]
replicas[1].load_state_dict(replicas[0].state_dict())          # the same starting weights
x, y = get_batch(data, 8, 16, np.random.default_rng(1))

_, big_loss = replicas[0](x, y)
big_loss.backward()
big = {n: p.grad.numpy().copy() for n, p in replicas[0].named_parameters()}
replicas[0].zero_grad()

for replica, rows_ in zip(replicas, (slice(0, 4), slice(4, 8))):   # each replica: its half of the batch
    replica(x[rows_], y[rows_])[1].backward()
params = [dict(r.named_parameters()) for r in replicas]
with tinylm.no_grad():
    for name in params[0]:                                         # all-reduce: average, then share
        mean = (params[0][name].grad.numpy() + params[1][name].grad.numpy()) / 2
        for p in params:
            p[name].grad = tinylm.Tensor(mean.copy())
worst = max(np.abs(params[0][n].grad.numpy() - big[n]).max() for n in big)
print(f"largest difference between the averaged replica gradient and the big batch's: {worst:.1e}")
check("averaging the replicas' gradients gives the big batch's gradient",
      all(np.allclose(params[0][n].grad.numpy(), big[n], atol=1e-12) for n in big))
for replica in replicas:
    SGD(replica.parameters(), lr=0.1).step()
check("after the same step, the replicas hold identical weights",
      all(np.array_equal(params[0][n].numpy(), params[1][n].numpy()) for n in params[0]))

# %% [markdown]
# The same fact as a three-way table, for the final LayerNorm gain. Autograd and central
# differences differentiate the *whole-batch* loss; the "formula" column is the averaged
# replica gradient before the step. Everything before `ln_f` is held fixed:

# %%
replica = GPT(config).double()
replica.load_state_dict(replicas[0].state_dict())
halves = []
for rows_ in (slice(0, 4), slice(4, 8)):
    replica(x[rows_], y[rows_])[1].backward()
    halves.append(replica.ln_f.weight.grad.numpy().copy())
    replica.zero_grad()
with tinylm.no_grad():
    hidden = replica.wte(x) + replica.wpe(np.arange(16))
    for block in replica.h:
        hidden = block(hidden)


def whole_batch_loss(w):
    normed = F.layer_norm(hidden, (16,), w, tinylm.Tensor(replica.ln_f.bias.numpy()))
    return F.cross_entropy((normed @ tinylm.Tensor(replica.wte.weight.numpy()).T).reshape(-1, ctok.vocab_size),
                           y.reshape(-1))


report = compare(whole_batch_loss, lambda g, w: {"w": g * (halves[0] + halves[1]) / 2},
                 {"w": tinylm.Tensor(replica.ln_f.weight.numpy(), requires_grad=True)})
print(report.table("ln_f.weight: whole-batch autograd vs numeric vs replica average"))
check("the all-reduced gradient passes the three-way check", report.passed)

# %% [markdown]
# *Distributed inference* splits the model instead of the batch. In tensor parallelism each
# device holds some rows of a weight matrix, computes its share of the output features, and
# the shares are concatenated: `x Wᵀ = [x W₁ᵀ, x W₂ᵀ]` for `W = [W₁; W₂]`. Pipeline
# parallelism puts whole layers on different devices. Both are exact rearrangements of the
# same arithmetic:

# %%
W_big, x_tp = rng.standard_normal((6, 4)), rng.standard_normal((3, 4))
check("two devices' output shares, concatenated, equal the full layer",
      np.allclose(np.concatenate([x_tp @ W_big[:3].T, x_tp @ W_big[3:].T], axis=1), x_tp @ W_big.T))

try:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].hist(magnitudes, bins=20)
    axes[0].axvline(threshold, color="red", label=f"threshold, sparsity {sparsity:.0%}")
    axes[0].set_xlabel("|w|")
    axes[0].set_title("global magnitude pruning")
    axes[0].legend()
    axes[1].bar([r["model"].replace("after: ", "") for r in rows], [r["bytes"] / 1024 for r in rows])
    axes[1].set_ylabel("KiB on disk")
    axes[1].tick_params(axis="x", labelrotation=20, labelsize=7)
    fig.tight_layout()
    picture(fig, "16_compression.png")
except ImportError:
    print("(matplotlib not installed: no compression plot)")
