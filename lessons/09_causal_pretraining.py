# %% [markdown]
# # 因果语言模型预训练 Causal language-model pre-training (004.pretrain.loss, 001.model, 003.clm, 004.encoderonly, 001.train)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 预训练 — pre-training — training on plain text to predict each next token, before any task.
# * 因果语言模型 — causal language model — a model that predicts token t from the tokens before t
#   only.
# * 变换器 — Transformer — the layer family GPT's blocks come from.
# * 嵌入层 / 自注意力层 / 前馈网络 / 输出层 — embedding / self-attention / feed-forward / output
#   layer — 001.model's four parts.
# * 查询 / 值 — query / value — what each position asks with, and what it takes from the positions
#   it attends to.
# * 因果掩码 — causal mask — True (allowed) where key j ≤ query i.
# * 仅编码器 — encoder-only — a stack that sees the whole text at once (BERT), not a causal LM.
# * 损失函数 / 交叉熵 — loss function / cross-entropy — −Σ_t log P(w_t | w_<t), the pre-training
#   loss.
# * 优化器 — optimizer — AdamW here.
# * 学习率 — learning rate — the size of its steps, warmed up then decayed by the trainer.
#
# Pre-training (预训练) teaches a model to predict each next token from the tokens before it:
#
# * **004.pretrain.loss** — the objective `L = −Σ_t log P(w_t | w_<t)`, computed by hand from
#   a tiny GPT's logits and compared with tinylm's cross-entropy.
# * **001.model** — the model's four parts: embedding (嵌入层), self-attention (自注意力层),
#   feed-forward (前馈网络), output layer (输出层). We find each one inside `tinylm.models.GPT`.
# * **003.clm** and **004.encoderonly** — the articles get the architecture wrong twice. One
#   says a causal LM is an encoder–decoder; the other says LLMs "usually use only the
#   encoder". GPT-style models are *decoder-only with a causal mask*. We show what goes wrong
#   when a model can see the future: it cheats during training and is useless at generation.
# * **001.train** — loss + optimizer + iterate + evaluate until a stop condition, with
#   `tinylm.train.Trainer`.

# %%
import math

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data import CharTokenizer, default_corpus_text, get_batch
from tinylm.generate import generate
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.models import GPT, GPTConfig
from tinylm.nn import (Embedding, Linear, Module, TransformerDecoderLayer, TransformerEncoderLayer,
                       generate_square_subsequent_mask)
from tinylm.nn.functional import causal_mask as tinylm_causal_mask
from tinylm.nn.functional import scaled_dot_product_attention
from tinylm.optim import AdamW
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

rng = np.random.default_rng(0)
tinylm.manual_seed(0)
text = default_corpus_text(100_000)
tok = CharTokenizer.train(text)
data = np.array(tok.encode(text))
vocab = tok.vocab_size
print(f"{len(data):,} characters, vocabulary of {vocab}")


# %% [markdown]
# ## 预训练目标 The pre-training loss (004.pretrain.loss)
#
# `L = −Σ_{t=1}^{T} log P(w_t | w_<t)`: at each position, the model's probability for the
# token that really comes next. A text of T + 1 tokens gives T predictions. The input is
# every token but the last, and the target is every token but the first, so the target
# sequence is the input shifted by one. Below we take a tiny untrained GPT, turn its logits
# into log-probabilities by hand (log-softmax = z − log Σ e^z), and add up the target ones.

# %%
gpt = GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=2, n_embd=16)).double()
sample = np.array(tok.encode("return the value"))     # 16 characters: 15 predictions
x, y = sample[:-1], sample[1:]
T = len(x)
logits = gpt(x[None])[0].numpy()[0]                  # (T, vocab)
z_stable = logits - logits.max(1, keepdims=True)                       # minus the row max: exp cannot overflow
log_probs = z_stable - np.log(np.exp(z_stable).sum(1, keepdims=True))  # log-softmax: z - log Σ e^z
L_hand = -log_probs[np.arange(T), y].sum()
for t in range(4):
    print(f"P({tok.decode(y[t:t + 1])!r} | {tok.decode(x[:t + 1])!r}) = {math.exp(log_probs[t, y[t]]):.4f}")
print(f"L by hand = {L_hand:.6f};  untrained, so about T·log V = {T * math.log(vocab):.3f}")
L_ce = F.cross_entropy(tinylm.Tensor(logits), y).item()
check("L = cross_entropy mean × T", np.isclose(L_hand, L_ce * T))
check("L = the loss GPT returns × T", np.isclose(L_hand, gpt(x[None], y[None])[1].item() * T))
check("an untrained model is close to uniform: L/T ≈ log V", abs(L_hand / T - math.log(vocab)) < 0.3)

# %% [markdown]
# Differentiating `−log softmax(z)_y` with respect to the logits gives `softmax(z) − onehot(y)`
# at every position. So the gradient pushes the target's logit up, and every other logit down
# in proportion to its probability. Three ways:

# %%
onehot = np.eye(vocab)[y]


def softmax_rows(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


report = compare(lambda z: F.cross_entropy(z, y, reduction="sum"),
                 lambda g, z: {"z": g * (softmax_rows(z) - onehot)},
                 {"z": tinylm.Tensor(logits, requires_grad=True)})
print(report.table("L = -Σ log P(w_t | w_<t): autograd vs numeric vs softmax - onehot"))
check("the loss's gradient, three ways", report.passed)

# %% [markdown]
# Your turn: write the shift that turns a text of token ids into (input, target) pairs.
# `get_batch` does the same thing for many windows at once.

# %%
def shifted_pairs(ids):
    """(x, y) for next-token prediction: y[t] is the token that follows x[t]."""
    # BEGIN SOLUTION hint: the input drops the last token, the target drops the first
    return ids[:-1], ids[1:]
    # END SOLUTION


graded("your pairs: x drops the last token, y the first",
       lambda: (lambda xy: np.array_equal(xy[0], np.arange(9)) and np.array_equal(xy[1], np.arange(1, 10)))(
           shifted_pairs(np.arange(10))))
graded("your pairs give the pre-training loss computed by hand",
       lambda: np.isclose(gpt(shifted_pairs(sample)[0][None], shifted_pairs(sample)[1][None])[1].item() * T, L_hand))

# %% [markdown]
# ## 模型构建 The model's parts (001.model)
#
# Article 001 (§3.2.2) lists embedding → self-attention → feed-forward → output layer. Here
# is where each one lives in tinylm's GPT. A block wraps attention and feed-forward in
# LayerNorm and a residual connection, and the output layer reuses the token embedding
# matrix (weight tying):

# %%
parts = {"嵌入层 embedding (wte, wpe)": ["wte.", "wpe."],
         "自注意力层 self-attention (h.i.ln_1, h.i.attn)": ["ln_1.", "attn."],
         "前馈网络 feed-forward (h.i.ln_2, h.i.mlp)": ["ln_2.", "mlp."],
         "输出层 output layer (ln_f, lm_head = wteᵀ)": ["ln_f."]}
sizes = {part: sum(p.numel() for name, p in gpt.named_parameters() if any(k in name for k in keys))
         for part, keys in parts.items()}
for part, size in sizes.items():
    print(f"{size:6d} parameters  {part}")
check("the four parts hold every parameter", sum(sizes.values()) == gpt.num_parameters())
check("the output layer is the token embedding (weight tying)", gpt.lm_head.weight is gpt.wte.weight)

with tinylm.no_grad():
    h = gpt.wte(x[None]) + gpt.wpe(np.arange(T))                  # embedding
    for block in gpt.h:
        h = h + block.attn(block.ln_1(h))                         # self-attention (causal)
        h = h + block.mlp(block.ln_2(h))                          # feed-forward
    by_parts = gpt.lm_head(gpt.ln_f(h)).numpy()[0]                # output layer
check("running the parts one by one gives GPT's logits", np.allclose(by_parts, logits))

# %% [markdown]
# The four parts once more, in plain NumPy from the weights alone: no layer of the engine runs,
# only its state dict is read. Each line is one formula: LayerNorm `(h − mean)/√(var + ε)·γ + β`,
# each head's `softmax(q kᵀ/√d + M) v` with the causal mask M, GELU `a·Φ(a)`.

# %%
weights = {name: p.numpy() for name, p in gpt.named_parameters()}
erf = np.vectorize(math.erf)


def layer_norm_np(h, name):
    centred = h - h.mean(-1, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + 1e-5) * weights[name + ".weight"] \
        + weights[name + ".bias"]


def linear_np(h, name):
    return h @ weights[name + ".weight"].T + weights[name + ".bias"]


def gpt_numpy(ids, n_layer=1, n_head=2):
    """001.model by hand: embedding → (self-attention → feed-forward) × n_layer → output layer."""
    T = len(ids)
    h = weights["wte.weight"][ids] + weights["wpe.weight"][:T]                 # 嵌入层 embedding
    for i in range(n_layer):
        q, k, v = np.split(linear_np(layer_norm_np(h, f"h.{i}.ln_1"), f"h.{i}.attn.c_attn"), 3, axis=1)
        d = q.shape[1] // n_head
        future = np.triu(np.ones((T, T), dtype=bool), 1)
        heads = [softmax_rows(np.where(future, -np.inf, q[:, s] @ k[:, s].T / math.sqrt(d))) @ v[:, s]
                 for s in (slice(j * d, (j + 1) * d) for j in range(n_head))]
        h = h + linear_np(np.concatenate(heads, 1), f"h.{i}.attn.c_proj")      # 自注意力层 self-attention
        a = linear_np(layer_norm_np(h, f"h.{i}.ln_2"), f"h.{i}.mlp.c_fc")
        h = h + linear_np(a * 0.5 * (1 + erf(a / math.sqrt(2))), f"h.{i}.mlp.c_proj")  # 前馈网络 feed-forward
    return layer_norm_np(h, "ln_f") @ weights["wte.weight"].T                   # 输出层 output layer


check("001.model in NumPy, from the weights alone, gives GPT's logits", np.allclose(gpt_numpy(x), logits))

# %% [markdown]
# ## 因果掩码 The causal mask
#
# In self-attention, the query at position i takes a weighted sum over the keys at
# positions j. A causal model lets query i see only keys `j ≤ i`. The mask is a boolean
# (T × T) matrix, True where attention is **allowed**, and it is lower triangular. Masked
# scores become −∞ before the softmax, so their weight is exactly 0. (This is tinylm's
# convention, `tinylm.nn.functional.causal_mask` and the boolean `attn_mask` of
# scaled_dot_product_attention. Lesson 07's `blocked_mask` is the opposite, True where
# attention is blocked, as PyTorch's MultiheadAttention takes it.) Write it:

# %%
def causal_mask(T):
    """Boolean (T, T): True where query i is allowed to attend to key j (j ≤ i)."""
    # BEGIN SOLUTION hint: compare the key index (a row vector) with the query index (a column vector)
    return np.arange(T)[None, :] <= np.arange(T)[:, None]
    # END SOLUTION


q, k, v = (tinylm.Tensor(np.random.default_rng(s).standard_normal((1, 2, 6, 4))) for s in (1, 2, 3))
graded("your mask equals tinylm's causal mask", lambda: np.array_equal(causal_mask(6), tinylm_causal_mask(6, 6)))
graded("attention with your mask equals GPT's causal attention",
       lambda: np.allclose(scaled_dot_product_attention(q, k, v, attn_mask=tinylm.Tensor(causal_mask(6))).numpy(),
                           scaled_dot_product_attention(q, k, v, is_causal=True).numpy()))

# %% [markdown]
# ## 因果语言模型 A causal LM is decoder-only (003.clm)
#
# Article 003 says a causal LM uses "a Transformer encoder–decoder". The test of a causal
# model is simple: change the tokens *after* position t, and the outputs at positions ≤ t
# must not move. Below are four small models of the same width:
#
# * tinylm's GPT: decoder-only, with causal self-attention;
# * the article's encoder–decoder: an encoder reads the text, and a decoder with *masked*
#   self-attention attends to the encoder's output ("memory");
# * encoder-only: one Transformer block with no mask;
# * the same block with the causal mask, which makes it a decoder-only model.

# %%
class OneBlockLM(Module):
    """Embeddings → one Transformer block → output layer. Without the causal mask it is an
    encoder-only model; with it, a decoder-only one."""

    def __init__(self, vocab_size, d, block_size, causal):
        super().__init__()
        self.wte, self.wpe = Embedding(vocab_size, d), Embedding(block_size, d)
        self.block = TransformerEncoderLayer(d, 2, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.head = Linear(d, vocab_size)
        self.causal = causal

    def forward(self, idx):
        length = idx.shape[1]
        mask = generate_square_subsequent_mask(length) if self.causal else None
        return self.head(self.block(self.wte(idx) + self.wpe(np.arange(length)), src_mask=mask))


class EncoderDecoderLM(Module):
    """003.clm as written: an encoder reads the text; a decoder (masked self-attention, then
    attention to the encoder's output) predicts the next token."""

    def __init__(self, vocab_size, d, block_size):
        super().__init__()
        self.wte, self.wpe = Embedding(vocab_size, d), Embedding(block_size, d)
        self.encoder = TransformerEncoderLayer(d, 2, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = TransformerDecoderLayer(d, 2, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.head = Linear(d, vocab_size)

    def forward(self, idx):
        length = idx.shape[1]
        h = self.wte(idx) + self.wpe(np.arange(length))
        memory = self.encoder(h)
        return self.head(self.decoder(h, memory, tgt_mask=generate_square_subsequent_mask(length)))


def sees_future(logits_of, ids, t):
    """Do the outputs at positions <= t change when every token after t is changed?"""
    other = ids.copy()
    other[t + 1:] = (other[t + 1:] + 1) % vocab
    with tinylm.no_grad():
        return not np.allclose(logits_of(ids[None])[0, :t + 1], logits_of(other[None])[0, :t + 1])


models = {"GPT (decoder-only)": lambda ids: gpt(ids)[0].numpy(),
          "encoder–decoder (003.clm)": lambda ids, m=EncoderDecoderLM(vocab, 16, 16): m(ids).numpy(),
          "encoder-only (004.encoderonly)": lambda ids, m=OneBlockLM(vocab, 16, 16, causal=False): m(ids).numpy(),
          "encoder block + causal mask": lambda ids, m=OneBlockLM(vocab, 16, 16, causal=True): m(ids).numpy()}
leaks = {name: sees_future(fn, x, 5) for name, fn in models.items()}
for name, leak in leaks.items():
    print(f"{name:32s} outputs at t <= 5 {'CHANGE' if leak else 'do not change'} when tokens after 5 change")
check("GPT never sees the future", not leaks["GPT (decoder-only)"])
check("the article's encoder–decoder sees the future through the encoder's memory",
      leaks["encoder–decoder (003.clm)"])
check("an encoder-only model sees the future", leaks["encoder-only (004.encoderonly)"])
check("a block with the causal mask is decoder-only and does not", not leaks["encoder block + causal mask"])

# %% [markdown]
# The encoder–decoder's decoder does mask its own self-attention. The future leaks in anyway,
# through the memory, because the encoder read the whole text. Masking the encoder as well
# would fix the leak, but then the encoder is just one more causal stack in front of the
# decoder: a decoder-only model with extra weights. This is why GPT is a stack of masked
# self-attention blocks and nothing else.
#
# ## 仅编码器 What an encoder-only model learns (004.encoderonly)
#
# Article 004 says LLMs "usually use only the encoder". That is true of BERT, which is trained
# to fill in masked tokens. It is wrong for a model that generates text. Train an encoder-only
# model on next-token prediction, and at every position but the last it can *see* the answer
# one step ahead and simply copy it. We train it next to a GPT of the same width on the same
# batches:

# %%
window, steps = 16, 120 if fast() else 250
tinylm.manual_seed(0)
bidirectional = OneBlockLM(vocab, 32, window, causal=False)
causal_gpt = GPT(GPTConfig(vocab_size=vocab, block_size=window, n_layer=1, n_head=2, n_embd=32))
runs = {"encoder-only": (bidirectional, lambda ids: bidirectional(ids)),
        "GPT": (causal_gpt, lambda ids: causal_gpt(ids)[0])}
final = {}
for name, (model, logits_of) in runs.items():
    opt = AdamW(model.parameters(), lr=5e-3)
    batch_rng = np.random.default_rng(1)
    for step in range(steps):
        xb, yb = get_batch(data, 16, window, batch_rng)
        loss = F.cross_entropy(logits_of(xb).reshape(-1, vocab), yb.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    final[name] = loss.item()
print({name: round(v, 3) for name, v in final.items()}, "(training loss, nats per token)")

# %% [markdown]
# When the model generates text, the next token does not exist yet. The honest test of a
# language model is therefore to predict `w_t` from `w_≤t` alone: feed each prefix on its
# own and score only its last position. For GPT this changes nothing, since it never looked
# ahead anyway. For the encoder-only model it removes the answer it had been copying.

# %%
xb, yb = get_batch(data, 32, window, np.random.default_rng(2))
honest = {}
with tinylm.no_grad():
    for name, (model, logits_of) in runs.items():
        per_position = [F.cross_entropy(logits_of(xb[:, :t + 1])[:, -1], yb[:, t]).item() for t in range(window)]
        one_pass = F.cross_entropy(logits_of(xb).reshape(-1, vocab), yb.reshape(-1)).item()
        honest[name] = (float(np.mean(per_position)), one_pass)
        print(f"{name:13s} loss with the future visible {one_pass:.3f}, "
              f"predicting from the past only {honest[name][0]:.3f}")
check("the encoder-only model 'learns' far faster than GPT: it copies the visible next token",
      final["encoder-only"] < 0.5 * final["GPT"])
check("...but from the past alone it is worse than GPT", honest["encoder-only"][0] > honest["GPT"][0] + 1)
check("GPT's loss is the same either way: it never used the future", np.isclose(*honest["GPT"], atol=1e-5))

# %% [markdown]
# Generation shows the same thing. Greedy continuations of one prompt, for both models. At
# the last position of a prompt there is no next token to copy, so the encoder-only model is
# answering a question it never learned:

# %%
prompt = np.array(tok.encode("The "))
text_out = {"GPT": tok.decode(generate(causal_gpt, prompt, max_new_tokens=40)[0])}
ids = prompt[None]
with tinylm.no_grad():
    for _ in range(40):
        nxt = bidirectional(ids[:, -window:])[:, -1].numpy().argmax(-1)
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
text_out["encoder-only"] = tok.decode(ids[0])
for name, sample_text in text_out.items():
    print(f"{name:13s} {sample_text!r}")

# %% [markdown]
# ## 训练 Training until a stop condition (001.train)
#
# Article 001 (§3.2.3, flowchart §3.5) trains in a loop: loss (交叉熵) → optimizer (Adam) →
# iterate → evaluate → stop condition reached? `tinylm.train.Trainer` is that loop (the one loop
# that trains every task; `tinylm.tasks.lm.LanguageModeling` supplies the batches and the loss). It warms
# up the learning rate, clips the gradient, uses AdamW, and every `eval_interval` steps it
# estimates the training and validation losses. It keeps the best checkpoint, and it stops
# early once the validation loss has not improved for `patience` evaluations. Here it trains
# a small GPT on a slice of the default corpus:

# %%
corpus_file = output_dir() / "09_corpus.txt"
corpus_file.write_text(default_corpus_text(8000), encoding="utf-8")
cfg = LMConfig(data=str(corpus_file), n_layer=2, n_head=2, n_embd=32, block_size=32, batch_size=8,
               max_iters=40 if fast() else 300, lr=3e-3, min_lr=3e-4, warmup_iters=10,
               eval_interval=10 if fast() else 30, eval_iters=4, patience=3, weight_decay=0.0,
               out=str(output_dir() / "09_run"), progress=False, seed=0)
summary = Trainer(LanguageModeling(cfg), log=print).run()
evals = summary["evals"]
check("the training loss went down", evals[-1]["train_loss"] < evals[0]["train_loss"] - 0.5)
check("the best validation loss is below the starting one", summary["best_metrics"]["val_loss"] < evals[0]["val_loss"] - 0.5)

# %% [markdown]
# The stop rule by hand: go through the evaluations, count how many in a row failed to beat
# the best validation loss so far, and stop when that count reaches `patience`. If it never
# does, training ends at `max_iters`. The Trainer should have stopped at the same step.

# %%
best, stale, stop = math.inf, 0, cfg.max_iters
for e in evals:
    best, stale = (e["val_loss"], 0) if e["val_loss"] < best else (best, stale + 1)
    if stale >= cfg.patience:
        stop = e["step"]
        break
print(f"stop rule by hand: step {stop}; the Trainer stopped at step {summary['steps']}"
      f" ({'early stopping' if stop < cfg.max_iters else 'max_iters reached'})")
check("the Trainer stopped where the rule says", summary["steps"] == stop)
check("the best checkpoint holds the best validation loss",
      np.isclose(summary["best_metrics"]["val_loss"], min(e["val_loss"] for e in evals)))

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([e["step"] for e in evals], [e["train_loss"] for e in evals], label="train")
    ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    picture(fig, "09_pretraining_loss.png")
except ImportError:
    print("(matplotlib not installed: no loss plot)")
