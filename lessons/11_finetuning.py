# %% [markdown]
# # 微调 Fine-tuning a pretrained model for classification (003.finetune, 004.finetune.loss, 001.code.finetune)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 微调 — fine-tuning — adapting a pre-trained model to a task with labelled data.
# * 预训练 — pre-training — the language-model training that comes first.
# * 分类头 — classification head — a linear layer from the text's vector to the class logits.
# * 特征提取器微调 — feature extraction — the body frozen, only the head trained.
# * 模型微调 — full fine-tuning — every weight trained.
# * 提示微调 — prompt tuning — a few trained vectors put before the text, the body frozen.
# * 序列表示 — sequence representation — the one vector that stands for the whole text.
# * 灾难性遗忘 — catastrophic forgetting — fine-tuning erasing what pre-training taught.
# * 损失函数 — loss function — −Σ_i log P(y_i | x_i).
# * 优化器 / 学习率 — optimizer / learning rate — AdamW and the size of its steps (the article's
#   1e-3 is too large).
# * 变换器 — Transformer — the model family of Hugging Face's library, whose class names the article
#   gets wrong.
#
# After 预训练 (pre-training) a language model has learned how text goes on. 微调 (fine-tuning)
# reuses it for a task with labels. Here the task is sentiment: is a short review positive or
# negative?
#
# * **003.finetune** — the pretrained model reads the text. One of its hidden vectors is taken
#   as the summary of the whole text: BERT's `[CLS]` vector, or GPT's last-token vector. A small
#   classification head (分类头) maps the summary to class scores. Article 003 (§3.2.2) names
#   three ways to adapt the model: 特征提取器微调 (feature extraction: the body is frozen and
#   only the head learns), 模型微调 (full fine-tuning: everything learns) and 提示微调 (prompt
#   tuning: a prompt steers a frozen model).
# * **004.finetune.loss** — the objective `L = −Σ_i log P(y_i | x_i)` over labelled examples.
#   We compute it by hand from the head's logits and compare with tinylm's cross-entropy.
# * **001.code.finetune** — article 001 (§5.2) gives a PyTorch fine-tuning program with four
#   bugs. We reproduce each one's failure in tinylm and then fix it.
#
# First we need a pretrained model: a tiny GPT trained with `tinylm.train.Trainer` on
# `sentiment_corpus`, unlabelled reviews that each end with a short verdict.

# %%

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data.labelled import default_sentiment, sentiment_corpus, stratified_split
from tinylm.models.classifier import BertBody, GPTBody, TextClassifier
from tinylm.tasks.classify import (FinetuneConfig, compare_methods, comparison_table, finetune, load_classifier,
                                   load_pretrained)
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.metrics import evaluate_loss
from tinylm.models.bert import Bert, BertConfig
from tinylm.optim import AdamW
from tinylm.data.mlm import SpecialTokens
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

tinylm.manual_seed(0)
corpus_file = output_dir() / "11_reviews.txt"
corpus_file.write_text(sentiment_corpus(500), encoding="utf-8")
print(sentiment_corpus(2), end="")

pretrain_cfg = LMConfig(data=str(corpus_file), tokenizer="word", n_layer=1, n_head=2, n_embd=32, block_size=32,
                        batch_size=16, max_iters=60 if fast() else 600, lr=3e-3, min_lr=3e-4, warmup_iters=20,
                        eval_interval=30 if fast() else 150, eval_iters=4, weight_decay=0.0,
                        out=str(output_dir() / "11_pretrain"), progress=False, seed=0)
pretrained = Trainer(LanguageModeling(pretrain_cfg), log=print).run()
ckpt = pretrained["best"]
check("pre-training lowered the language-model loss", pretrained["best_metrics"]["val_loss"] < pretrained["evals"][0]["val_loss"] - 1.5)

data = default_sentiment(160 if fast() else 400)
print(f"{len(data.texts)} labelled sentences, e.g. {data.texts[0]!r} -> {data.labels[0]}")

# %% [markdown]
# ## 序列表示 The summary vector: [CLS] or the last token (003.finetune)
#
# `tinylm.models.classifier.GPTBody` wraps the pretrained GPT as a text encoder. `tokenize` turns a
# list of texts into a padded (B, T) array of token ids and an attention mask (1 on real
# tokens, 0 on padding). `encode` runs GPT without its output layer and gives one hidden
# vector per token, of shape (B, T, E).
#
# BERT puts a `[CLS]` token first and, since it attends both ways, that token's vector has seen
# the whole text. GPT's attention is causal: position t sees positions ≤ t only. The one
# vector that has seen every word is therefore at the *last real token*, at index
# `(number of real tokens) − 1` of each row. We pick it by hand and compare with
# `TextClassifier.summarize`:

# %%
body = load_pretrained(ckpt)
texts = ["the food was good .", "the plot was dull but the music was really great ."]
ids, mask = body.tokenize(texts)
print("ids:\n", ids, "\nattention mask:\n", mask)
with tinylm.no_grad():
    hidden = body.encode(ids, mask).numpy()                           # (B, T, E)
    last = mask.sum(1) - 1                                            # the last real token of each row
    summary_by_hand = hidden[np.arange(len(texts)), last]
    clf = TextClassifier(body, num_classes=2, method="full").eval()
    summary_tinylm = clf.summarize(ids, mask).numpy()
print("last real token of each row:", last)
check("the summary is the hidden state at the last real token", np.allclose(summary_by_hand, summary_tinylm))

# %% [markdown]
# Two checks show why it is the *last* token. First, change the first word, and the last
# token's vector changes while the first token's vector does not depend on anything after it.
# Second, the padding on the right of a short text cannot reach its last token, because it
# comes later. So the short text's summary is the same alone as inside a padded batch.

# %%
with tinylm.no_grad():
    other_ids, _ = body.tokenize(["the meal was good ."])
    h_food, h_meal = (body.encode(i, np.ones_like(i)).numpy()[0] for i in (ids[:1, :mask[0].sum()], other_ids))
    alone_ids, alone_mask = body.tokenize(texts[:1])
    alone = clf.summarize(alone_ids, alone_mask).numpy()[0]
print("the texts differ in token 2 of 6 (food/meal); change of each position's vector:",
      np.abs(h_food - h_meal).max(1).round(3))
check("positions before the changed word do not move (causal attention)", np.allclose(h_food[:1], h_meal[:1]))
check("the last token's vector changes: it has seen the whole text", not np.allclose(h_food[-1], h_meal[-1]))
check("padding on the right does not change a text's summary", np.allclose(alone, summary_tinylm[0], atol=1e-5))

# %% [markdown]
# ## 分类头与微调损失 The head and the fine-tuning loss (004.finetune.loss)
#
# The head is one linear layer, `z_i = W s_i + b`, which maps the summary `s_i` (E numbers) to
# C class logits. Its softmax is `P(y | x_i)`, and the fine-tuning loss over N examples is
#
# `L = −Σ_i log P(y_i | x_i) = −Σ_i (z_{i,y_i} − log Σ_c e^{z_{i,c}})`.
#
# `tinylm.tasks.classify` trains on the mean over each mini-batch, which is the same objective
# divided by N. Here is the loss by hand from the head's logits for six sentences, computed in
# float64:

# %%
batch = data.subset(range(6))
labels = np.array([1 if label == "positive" else 0 for label in batch.labels])   # negative 0, positive 1
with tinylm.no_grad():
    S = clf.summarize(*body.tokenize(batch.texts)).numpy().astype(np.float64)      # (N, E)
W = clf.head.weight.numpy().astype(np.float64)                                     # (C, E)
b = clf.head.bias.numpy().astype(np.float64)                                       # (C,)
z = S @ W.T + b
log_p = z - z.max(1, keepdims=True)
log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))                         # log softmax
L_hand = -log_p[np.arange(len(labels)), labels].sum()
L_tinylm = F.cross_entropy(tinylm.Tensor(z), labels, reduction="sum").item()
print("P(y_i | x_i) =", np.exp(log_p[np.arange(len(labels)), labels]).round(4))
print(f"L by hand {L_hand:.6f}, tinylm's cross_entropy (sum) {L_tinylm:.6f}")
check("L = −Σ log P(y_i | x_i) by hand equals cross_entropy's sum", np.isclose(L_hand, L_tinylm))
check("...and N times its mean, the loss fine-tuning uses",
      np.isclose(L_hand, len(labels) * F.cross_entropy(tinylm.Tensor(z), labels).item()))

# %% [markdown]
# The gradient, with `P` the softmax probabilities and `Y` the one-hot labels, is
# `∂L/∂z = P − Y`. Through `z = S Wᵀ + b` that gives `∂L/∂W = (P − Y)ᵀ S`,
# `∂L/∂b = Σ_i (P − Y)_i` and `∂L/∂S = (P − Y) W`. The last one flows into the body: in full
# fine-tuning it goes on to every weight of the GPT, and in feature extraction it stops here.
# Three ways:

# %%
onehot = np.eye(2)[labels]


def head_loss(S, W, b):
    return F.cross_entropy(S @ W.T + b, labels, reduction="sum")


def head_gradients(grad_out, S, W, b):
    logits = S @ W.T + b
    P = np.exp(logits - logits.max(1, keepdims=True))
    G = grad_out * (P / P.sum(1, keepdims=True) - onehot)                          # ∂L/∂z, scaled by grad_out
    return {"S": G @ W, "W": G.T @ S, "b": G.sum(0)}


report = compare(head_loss, head_gradients, {name: tinylm.Tensor(a, requires_grad=True)
                                             for name, a in (("S", S), ("W", W), ("b", b))})
print(report.table("L = −Σ log softmax(S Wᵀ + b)_y: autograd vs numeric vs formula"))
check("the head's gradients, three ways", report.passed)

# %% [markdown]
# ## 三种微调方法 Three ways to fine-tune (003.finetune)
#
# What differs between the methods is which parameters learn:
#
# * **特征提取器微调 feature extraction** (`method="head"`): the body is frozen
#   (`requires_grad = False`), and only the head's `E·C + C` numbers learn.
# * **模型微调 full fine-tuning** (`method="full"`): all of them learn.
# * **提示微调 prompt tuning** (`method="prompt"`): article 003 describes a prompt written in
#   words that steers the model. Its learned form is a *soft prompt*: P trainable vectors put in
#   front of the token embeddings of every text. The body stays frozen, but the gradient flows
#   back through it to the prompt. `P·E + E·C + C` numbers learn.
#
# Your turn. Write the freezing rule: every parameter of `classifier.body` stops learning, and
# the function returns how many numbers still learn.

# %%
def freeze_body(classifier):
    """Set requires_grad = False on every parameter of classifier.body; return the number of
    numbers (elements) that still learn."""
    # BEGIN SOLUTION hint: named_parameters() names the body's "body.…"; count p.numel() of those still requiring grad
    for name, p in classifier.named_parameters():
        if name.startswith("body."):
            p.requires_grad = False
    return sum(p.numel() for p in classifier.parameters() if p.requires_grad)
    # END SOLUTION


E, C, P = body.n_embd, 2, FinetuneConfig().n_prompt


def thawed(method):
    """A classifier on a freshly loaded body with every parameter learning, as if nothing were frozen."""
    return TextClassifier(load_pretrained(ckpt), C, method, n_prompt=P).requires_grad_(True)


graded("feature extraction: your frozen classifier trains E·C + C numbers",
       lambda: freeze_body(thawed("head")) == E * C + C)
graded("...the same count as TextClassifier(method='head')",
       lambda: freeze_body(thawed("head"))
       == TextClassifier(load_pretrained(ckpt), C, "head").num_parameters(trainable_only=True))
graded("...and only head.weight and head.bias learn",
       lambda: (lambda m: (freeze_body(m), {n for n, p in m.named_parameters() if p.requires_grad})[1])(
           thawed("head")) == {"head.weight", "head.bias"})
graded("prompt tuning: your frozen classifier trains P·E + E·C + C numbers",
       lambda: freeze_body(thawed("prompt")) == P * E + E * C + C)

# %% [markdown]
# Second part: the soft prompt. The prompt is one (P, E) matrix shared by every text. Repeat
# it for each row of the batch, then put it in front of the (B, T, E) token embeddings along
# the time axis. The rest of GPT runs unchanged on the P + T positions.

# %%
def prepend_prompt(prompt, x):
    """(B, P + T, E): the soft prompt (P, E) in front of every row of the embeddings x (B, T, E)."""
    # BEGIN SOLUTION hint: prompt.unsqueeze(0).expand(B, P, E) repeats it per row; F.cat([...], 1) joins along time
    return F.cat([prompt.unsqueeze(0).expand(x.shape[0], *prompt.shape), x], 1)
    # END SOLUTION


def encode_with_prompt(gpt, ids, prompt):
    """GPT's hidden states with the soft prompt in front: [prompt; wte(ids)] + wpe → blocks → LayerNorm."""
    x = prepend_prompt(prompt, gpt.wte(ids))
    x = x + gpt.wpe(np.arange(x.shape[1]))
    for block in gpt.h:
        x = block(x)
    return gpt.ln_f(x)


prompted = TextClassifier(load_pretrained(ckpt), C, "prompt", n_prompt=P).eval()
p_ids, p_mask = prompted.tokenize(texts)
with tinylm.no_grad():
    library_states = prompted.body.encode(p_ids, p_mask, prompted.prompt).numpy()
positions = prompted.body.summary_positions(p_mask, P)
print(f"prompt {tuple(prompted.prompt.shape)}, tokens {p_ids.shape} -> hidden states {library_states.shape}; "
      f"summary positions {positions} = P + (real tokens) − 1")
check("with a prompt, the summary sits P positions later", np.array_equal(positions, P + p_mask.sum(1) - 1))
graded("your prompted input has P + T positions",
       lambda: prepend_prompt(prompted.prompt, prompted.body.embed(p_ids)).shape == (2, P + p_ids.shape[1], E))
graded("every row starts with the prompt itself",
       lambda: np.allclose(prepend_prompt(prompted.prompt, prompted.body.embed(p_ids)).numpy()[:, :P],
                           prompted.prompt.numpy()))
graded("GPT on your prompted input equals GPTBody.encode with the prompt",
       lambda: np.allclose(encode_with_prompt(prompted.body.model, p_ids, prompted.prompt).numpy(), library_states,
                           atol=1e-5))

# %% [markdown]
# One training step of each method shows where the learning goes. We take a snapshot, run one
# AdamW step on the parameters that require a gradient, and ask what moved:

# %%
step_batch = data.subset(range(16))
step_labels = np.array([1 if label == "positive" else 0 for label in step_batch.labels])
moved = {}
for method in ("head", "full", "prompt"):
    tinylm.manual_seed(0)
    model = TextClassifier(load_pretrained(ckpt), C, method, n_prompt=P)
    before = {name: p.numpy().copy() for name, p in model.named_parameters()}
    optimizer = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    F.cross_entropy(model(*model.tokenize(step_batch.texts)), step_labels).backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not np.array_equal(p.numpy(), before[name])}
    moved[method] = (model.num_parameters(trainable_only=True), any(n.startswith("body.") for n in changed),
                     "head.weight" in changed, "prompt" in changed)
    print(f"{method:6s}: {moved[method][0]:6,} trainable numbers; body moved {moved[method][1]}, "
          f"head moved {moved[method][2]}, prompt moved {moved[method][3]}")
check("feature extraction: only the head moves", moved["head"][1:] == (False, True, False))
check("full fine-tuning: body and head move", moved["full"][1:3] == (True, True))
check("prompt tuning: the prompt and head move, through a frozen body", moved["prompt"][1:] == (False, True, True))

# %% [markdown]
# For BERT the summary is the `[CLS]` vector instead. `BertBody.tokenize` writes
# `[CLS] tokens [SEP] [PAD]…` and `summary_positions` is 0 in every row. Nothing else in
# `TextClassifier` changes. An untrained BERT over the same tokenizer shows the layout:

# %%
special = SpecialTokens(body.tokenizer.vocab_size)
bert_body = BertBody(Bert(BertConfig(vocab_size=special.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)),
                     body.tokenizer, special)
bert_ids, bert_mask = bert_body.tokenize(texts)
print("BERT input of the short text:", special.decode(bert_ids[0], body.tokenizer), "| mask", bert_mask[0])
check("BERT's rows start with [CLS] and its summary is position 0",
      np.all(bert_ids[:, 0] == special.cls_id) and np.all(bert_body.summary_positions(bert_mask) == 0))

# %% [markdown]
# ## 比较 The three methods on the same split
#
# `compare_methods` trains each method on the same stratified train / validation / test split
# of the labelled sentences. It uses AdamW, dropout before the head, and early stopping on
# validation accuracy. The learning rate is each method's default: 1e-2 for a fresh head or
# prompt, 3e-4 for the pretrained body.

# %%
results = compare_methods(ckpt, data=data, methods=("head", "full", "prompt"), ensemble=False,
                          log=lambda line: None, epochs=3 if fast() else 20, patience=5, progress=False)
print(comparison_table(results))
by_method = {r["method"]: r for r in results}
check("trainable numbers: head E·C + C, prompt P·E + E·C + C, full all",
      by_method["head"]["trainable"] == E * C + C and by_method["prompt"]["trainable"] == P * E + E * C + C
      and by_method["full"]["trainable"] == by_method["full"]["parameters"])
if not fast():
    check("each method beats guessing (0.5) on the test split", all(r["accuracy"] > 0.7 for r in results))
    check("full fine-tuning, which changes the most, is the most accurate here",
          by_method["full"]["accuracy"] >= max(r["accuracy"] for r in results))

# %% [markdown]
# Feature extraction is the cheapest: the frozen body's summaries are computed once, and only
# 66 numbers are trained on them. Full fine-tuning adapts every weight to the task and is the
# most accurate here. Prompt tuning sits in between, with a few hundred numbers. Its cost is a
# pass through the whole body every step, since the gradient has to reach the prompt.
#
# ## 勘误 The article's fine-tuning program (001.code.finetune)
#
# In words, article 001's program (§5.2) does this. It loads a pretrained model class and a
# tokenizer class, both named after "Transformer", from Hugging Face Transformers, with the
# weights of `bert-base-uncased`. It defines a preprocessing function that encodes a text with
# special tokens. Its training function, for every batch, encodes the batch's texts, runs the
# model on them, takes cross-entropy against the labels and steps the optimizer. Training uses
# Adam with learning rate 0.001 on a data set left as `...`. Last, it counts correct answers
# over a validation loader. Four things are wrong.
#
# **1. The classes do not exist.** Hugging Face Transformers has no `TransformerModel` or
# `TransformerTokenizer`. The real names are `AutoTokenizer` with `AutoModel` (or
# `BertTokenizer`, `BertModel`). For classification there is
# `AutoModelForSequenceClassification`, which also adds the head; a bare `AutoModel` returns
# hidden states, not class scores. The same mistake in tinylm:

# %%
try:
    from tinylm.models import TransformerModel  # noqa: F401
    missing_class = None
except ImportError as err:
    missing_class = str(err)
print("ImportError:", missing_class)
check("importing a class that does not exist fails at once", missing_class is not None)
check("tinylm's real pieces: a pretrained body and a classifier on top",
      isinstance(body, GPTBody) and isinstance(clf, TextClassifier))

# %% [markdown]
# **2. The texts never become a tensor.** The program hands the batch's list of strings to the
# tokenizer's one-text `encode`, and hands the result straight to the model. A model needs a
# rectangular array of token ids. Texts of different lengths give rows of different lengths, so
# they must be padded, and the padding must be marked with a mask. tinylm refuses each wrong
# input with a clear error:

# %%
errors = {}
for what, attempt in (("tokenizer.encode(list of texts)", lambda: body.tokenizer.encode(texts)),
                      ("classifier(list of texts)", lambda: clf(texts, None))):
    try:
        attempt()
    except (TypeError, ValueError) as err:
        errors[what] = str(err)
    print(f"{what}: {errors.get(what)}")
lengths = [len(body.tokenizer.encode(t)) for t in texts]
print("token counts of the two texts:", lengths, "-> padded to one (B, T) array:", ids.shape)
check("a list of texts is refused by the tokenizer", "str" in errors.get("tokenizer.encode(list of texts)", ""))
check("...and by the model, which asks for integer ids", "integer" in errors.get("classifier(list of texts)", ""))
check("the texts' lengths differ, so padding is needed", len(set(lengths)) > 1)
with tinylm.no_grad():
    batched = clf(ids, mask).numpy()
    one_by_one = np.concatenate([clf(*body.tokenize([t])).numpy() for t in texts])
check("fixed: padded ids + mask give each text the logits it gets alone", np.allclose(batched, one_by_one, atol=1e-5))

# %% [markdown]
# **3. `val_loader` is never defined.** The evaluation loop reads a validation loader that the
# program never creates, so it stops with a NameError:

# %%
def article_evaluation():
    """The article's evaluation reads batches from `val_loader`, a name its program never defines."""
    return sum(len(batch) for batch in val_loader)  # noqa: F821


try:
    article_evaluation()
    undefined = None
except NameError as err:
    undefined = str(err)
print("NameError:", undefined)
check("the evaluation stops: val_loader is not defined", undefined is not None and "val_loader" in undefined)
kept, held_out = stratified_split(data.labels, 0.2, seed=0)
val_labels = [data.labels[i] for i in held_out]
print(f"fixed: a stratified split, {len(kept)} to train, {len(held_out)} to validate "
      f"({val_labels.count('positive')} positive, {val_labels.count('negative')} negative)")
check("the fix: a validation split disjoint from training", not set(kept) & set(held_out))

# %% [markdown]
# **4. The learning rate.** An lr of 1e-3 is what you would use to train from scratch. BERT is
# usually fine-tuned at 1e-5 to 5e-5. A large step overwrites what pre-training put into the
# weights (catastrophic forgetting). To measure this, take the language-model loss of the
# pretrained GPT on reviews it has never seen. Fine-tune the whole model at several rates, then
# measure the same loss with the fine-tuned body. The frozen-body methods are a control: their
# body cannot change.
#
# The right rate depends on the model's size. Ours has 17 thousand parameters, not 110
# million, so the usual range lies below it. At 3e-5 it barely learns the task in a few
# epochs, and 3e-4 is tinylm's default. The trend is the point: the higher the rate, the more
# of the language model is lost.

# %%
held_text = np.array(body.tokenizer.encode(sentiment_corpus(100, seed=2)))
lm_before, _ = evaluate_loss(body.model, held_text)
forgetting = {}
for method, lr in (("head", None), ("full", 1e-3), ("full", 3e-4), ("full", 3e-5)):
    clf_path = output_dir() / "11_classifier"
    result = finetune(ckpt, data=data, method=method, out=str(clf_path), log=lambda line: None,
                      epochs=2 if fast() else 10, patience=20, lr=lr, progress=False)
    tuned, _ = load_classifier(clf_path / "best.ckpt")
    forgetting[(method, lr)] = (result["accuracy"], evaluate_loss(tuned.body.model, held_text)[0])
print(f"language-model loss of the pretrained GPT on unseen reviews: {lm_before:.4f} nats/token")
print("method  lr      test acc  LM loss after  increase")
for (method, lr), (acc, lm_after) in forgetting.items():
    print(f"{method:6s}  {lr or 1e-2:.0e}   {acc:.3f}     {lm_after:.4f}         {lm_after - lm_before:+.4f}")
increase = {key: lm_after - lm_before for key, (_, lm_after) in forgetting.items()}
check("feature extraction leaves the language model exactly as it was", increase[("head", None)] == 0)
check("full fine-tuning at the article's 1e-3 forgets more than at 3e-4",
      increase[("full", 1e-3)] > increase[("full", 3e-4)])
check("...and far more than at 3e-5", increase[("full", 1e-3)] > 5 * max(increase[("full", 3e-5)], 1e-3))

try:
    plt = pyplot()

    rates = [lr for method, lr in forgetting if method == "full"]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.semilogx(rates, [forgetting[("full", lr)][1] for lr in rates], "o-", label="after full fine-tuning")
    ax.axhline(lm_before, color="gray", linestyle="--", label="pretrained (and feature extraction)")
    ax.set_xlabel("fine-tuning learning rate")
    ax.set_ylabel("LM loss on unseen reviews")
    ax.legend(fontsize=8)
    fig.tight_layout()
    picture(fig, "11_forgetting.png")
except ImportError:
    print("(matplotlib not installed: no forgetting plot)")
