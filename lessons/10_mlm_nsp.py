# %% [markdown]
# # 掩码语言模型与下一句预测 Masked LM and next sentence prediction: pre-training BERT (003.mlm, 003.nsp)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 掩码语言模型 — masked language model (MLM) — hide some tokens, predict them from both sides.
# * 下一句预测 — next sentence prediction (NSP) — is sentence B the one that followed A?.
# * 预训练 — pre-training — learning from unlabelled text before fine-tuning.
# * 输入格式 — input format — [CLS] A [SEP] B [SEP], with segment ids.
# * 联合损失 — joint loss — the MLM and NSP losses added.
# * 损失函数 — loss function — cross-entropy over the masked positions and over the pair's label.
# * 优化器 — optimizer — AdamW, run by the trainer.
# * 统计检验 — statistical test — checking that the random masking has the right proportions.
#
# Article 003 (§3.2.1) lists the self-supervised objectives of 预训练 (pre-training). BERT
# uses two of them at once:
#
# * **003.mlm** — 掩码语言模型 (masked language model): hide some tokens of the input and
#   make the model recover them from the context on *both* sides. The article has this right
#   in outline, but it leaves out how BERT does it. BERT picks 15% of the tokens to predict.
#   Of those, 80% become `[MASK]`, 10% become a random token, and 10% stay as they were.
# * **003.nsp** — 下一句预测 (next sentence prediction): given sentences A and B, decide
#   whether B really follows A. Half the training pairs are true successors and half are
#   random sentences.
#
# We do the masking by hand with a seeded generator, then with `tinylm.data.mlm.mask_tokens`,
# and test the 15% / 80-10-10 rule statistically. Next we build NSP pairs and the
# `[CLS] A [SEP] B [SEP]` input. We compute BERT's joint loss by hand and compare it with
# `tinylm.models.bert.Bert`. A short pre-training run ends the lesson.

# %%
import math

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data import WordTokenizer, default_corpus_text
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.models.bert import Bert, BertConfig
from tinylm.data.mlm import SpecialTokens, build_bert_batch, mask_tokens, nsp_pairs, split_sentences
from tinylm.tasks.mlm import pretrain

tinylm.manual_seed(0)
story = "\n".join(["The dog found a stick in the park.", "It carried the stick all the way home.",
                   "The cat watched it from the roof.", "Then rain began to fall.",
                   "The dog ran inside and shook itself dry.", "The cat stayed on the roof.",
                   "Later the sun came out again.", "Both animals slept in the warm garden."])
tok = WordTokenizer.train(story)                # one sentence a line: each first word is in the vocabulary
special = SpecialTokens(tok.vocab_size)        # [PAD] [CLS] [SEP] [MASK] get the ids after the words
print(f"{tok.vocab_size} word pieces + 4 special tokens:",
      {name: i for name, i in zip(SpecialTokens.NAMES, special.ids)})


def show(ids):
    """Each id as its word (without the space before it), or as the name of a special token."""
    base = special.base_vocab_size
    return [SpecialTokens.NAMES[i - base] if i >= base else tok.decode([i]).strip() for i in ids]


# %% [markdown]
# ## 掩码语言模型 Choosing and hiding tokens by hand (003.mlm)
#
# Take one input `[CLS] A [SEP] B [SEP]`. The special tokens are never predicted. Of the
# n = 18 ordinary tokens we select `round(0.15 · 18) = 3`, at random and without repeats. BERT
# picks a fixed number per sequence, rather than flipping a 15% coin for each token. Then
# each selected position draws one uniform number u:
#
# * u < 0.8: the input becomes `[MASK]`;
# * 0.8 ≤ u < 0.9: the input becomes a random ordinary token;
# * u ≥ 0.9: the input keeps its own token.
#
# The label is the original token at every selected position, and −100 ("ignore") everywhere
# else. We make the same random calls, in the same order, as `mask_tokens`, so a generator
# with the same seed gives the same answer both ways.

# %%
a, b = tok.encode("The dog found a stick in the park."), tok.encode("It carried the stick all the way home.")
ids = np.array([special.cls_id] + a + [special.sep_id] + b + [special.sep_id])
ordinary = np.setdiff1d(np.arange(special.vocab_size), special.ids)     # the ids a random token comes from

hand_rng = np.random.default_rng(0)
candidates = np.flatnonzero(~np.isin(ids, special.ids))                  # positions that may be predicted
n_select = max(1, round(0.15 * len(candidates)))
chosen = hand_rng.choice(candidates, size=n_select, replace=False)       # 15%, without repeats
u = hand_rng.random(n_select)                                            # one draw per chosen position
randomised = chosen[(u >= 0.8) & (u < 0.9)]
random_ids = hand_rng.choice(ordinary, size=len(randomised))

hand_inputs, hand_labels = ids.copy(), np.full_like(ids, -100)
hand_labels[chosen] = ids[chosen]
hand_inputs[chosen[u < 0.8]] = special.mask_id
hand_inputs[randomised] = random_ids
for pos, draw in zip(chosen, u):
    rule = "[MASK]" if draw < 0.8 else "random" if draw < 0.9 else "unchanged"
    before, after = show([ids[pos], hand_inputs[pos]])
    print(f"position {pos:2d} {before!r:9}  u = {draw:.3f} -> {rule:9} input {after!r}")
print("input:", " ".join(show(hand_inputs)))

engine_inputs, engine_labels = mask_tokens(ids, np.random.default_rng(0), special.vocab_size, special.ids,
                                           special.mask_id)
check("3 of the 18 ordinary tokens are selected", n_select == 3 and len(candidates) == 18)
check("mask_tokens with the same seed gives the same inputs", np.array_equal(hand_inputs, engine_inputs))
check("...and the same labels", np.array_equal(hand_labels, engine_labels))
check("special tokens are never selected", np.all(engine_labels[np.isin(ids, special.ids)] == -100))

# %% [markdown]
# Your turn: the 80/10/10 rule. Given the selected positions, their draws u, and one random
# token for each position whose u falls in [0.8, 0.9) (in order), return the corrupted input
# and the labels.

# %%
def bert_corrupt(ids, chosen, u, random_ids, mask_id):
    """(inputs, labels) of the masked-LM task for the selected positions `chosen`."""
    # BEGIN SOLUTION hint: labels -100 except ids at chosen; inputs: mask_id if u < 0.8, random_ids if 0.8 <= u < 0.9
    inputs, labels = ids.copy(), np.full_like(ids, -100)
    labels[chosen] = ids[chosen]
    inputs[chosen[u < 0.8]] = mask_id
    inputs[chosen[(u >= 0.8) & (u < 0.9)]] = random_ids
    return inputs, labels
    # END SOLUTION


boundary_ids = np.arange(10, 20)
boundary = (np.array([1, 3, 4, 6, 8, 9]), np.array([0.05, 0.8, 0.95, 0.79999, 0.9, 0.85]), np.array([7, 2]))
graded("your rule reproduces mask_tokens on the seeded example",
       lambda: all(np.array_equal(m, e) for m, e in zip(
           bert_corrupt(ids, chosen, u, random_ids, special.mask_id), (engine_inputs, engine_labels))))
graded("your rule puts u = 0.8 in the random band and u = 0.9 in the unchanged band",
       lambda: np.array_equal(bert_corrupt(boundary_ids, *boundary, mask_id=99)[0],
                              [10, 99, 12, 7, 14, 15, 99, 17, 18, 2]))
graded("your labels are -100 except at the selected positions",
       lambda: np.array_equal(bert_corrupt(boundary_ids, *boundary, mask_id=99)[1],
                              [-100, 11, -100, 13, 14, -100, 16, -100, 18, 19]))

# %% [markdown]
# ## 统计检验 The 15% and 80/10/10 rates over many tokens
#
# On one sentence the rates are just luck, so we need many tokens. Below we mask R rows, each
# `[CLS]` + 40 random ordinary tokens + `[SEP]` from a 50-word vocabulary, so every row has
# exactly `round(0.15 · 40) = 6` selections. Two things should hold:
#
# * each position is selected in each row with probability 6/40 = 0.15, so its count over the R
#   rows is Binomial(R, 0.15);
# * of the S = 6R selections, the number turned to `[MASK]` is Binomial(S, 0.8). A random
#   replacement can land on the original token by chance (1 in 50), so the number left
#   unchanged is Binomial(S, 0.1 + 0.1/50), and the number truly changed to another token is
#   Binomial(S, 0.1 · 49/50).
#
# A count k from Binomial(N, p) lies within 4 standard deviations `√(N p (1 − p))` of `N p`
# except with probability about 6e-5. The 40 per-position counts are tested together, so they
# get 4.5 standard deviations.

# %%
R, n_tok = (500 if fast() else 3000), 40
stat_special = SpecialTokens(50)
stat_rng = np.random.default_rng(1)
rows = np.concatenate([np.full((R, 1), stat_special.cls_id), stat_rng.integers(0, 50, (R, n_tok)),
                       np.full((R, 1), stat_special.sep_id)], axis=1)
inputs, labels = mask_tokens(rows, stat_rng, stat_special.vocab_size, stat_special.ids, stat_special.mask_id)
selected = labels != -100
S = int(selected.sum())


def within(count, trials, p, sigmas=4.0):
    """Is `count` within `sigmas` standard deviations of a Binomial(trials, p) mean?"""
    return abs(count - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


per_position = selected[:, 1:-1].sum(0)
z = (per_position - R * 0.15) / math.sqrt(R * 0.15 * 0.85)
n_mask = int((inputs[selected] == stat_special.mask_id).sum())
n_same = int((inputs[selected] == labels[selected]).sum())
n_random = S - n_mask - n_same
print(f"{S} of {R * n_tok} ordinary tokens selected ({S / (R * n_tok):.2%}); "
      f"per-position |z| at most {abs(z).max():.2f}")
print(f"[MASK] {n_mask / S:.2%} (expect 80%), random {n_random / S:.2%} (expect 9.8%), "
      f"unchanged {n_same / S:.2%} (expect 10.2%)")
check("every row has exactly 6 selections, so 15% overall", np.all(selected.sum(1) == 6))
check("[CLS] and [SEP] are never selected", not selected[:, [0, -1]].any())
check("each position is selected at a binomial rate of 15%", all(within(c, R, 0.15, 4.5) for c in per_position))
check("[MASK] rate: Binomial(S, 0.8)", within(n_mask, S, 0.8))
check("random rate: Binomial(S, 0.1 · 49/50)", within(n_random, S, 0.1 * 49 / 50))
check("unchanged rate: Binomial(S, 0.1 + 0.1/50)", within(n_same, S, 0.1 + 0.1 / 50))
check("a random replacement is never [PAD], [CLS] or [SEP]",
      not np.isin(inputs[selected], [stat_special.pad_id, stat_special.cls_id, stat_special.sep_id]).any())

# %% [markdown]
# **Why not always `[MASK]`?** The model is fine-tuned and used on text that has no `[MASK]`
# in it. If only `[MASK]` positions were ever predicted, the model would learn that any
# visible ordinary token is the real one, and it could skip building a useful vector for it.
# The random 10% means a visible token can be wrong. The unchanged 10% means the answer is
# sometimes the visible token itself. Together they force the model to keep a contextual
# representation of *every* token. The numbers: of the tokens a model sees as ordinary words,
# the share that are prediction targets is `0.15 · 0.2 / (0.85 + 0.15 · 0.2) ≈ 3.4%`, and
# about half of those targets show their own token. Since 0.2 of the selected tokens stay
# visible, the mismatch between pre-training input and real input is small, while the model
# still cannot tell which words it will be asked about.

# %%
visible = inputs[:, 1:-1] != stat_special.mask_id
target_share = (visible & selected[:, 1:-1]).sum() / visible.sum()
honest_share = n_same / (n_same + n_random)
print(f"visible ordinary tokens that are targets: {target_share:.2%} (theory {0.15 * 0.2 / (0.85 + 0.15 * 0.2):.2%}); "
      f"of those, showing their own token: {honest_share:.1%}")
check("about 3.4% of the visible words are secretly targets", abs(target_share - 0.034) < 0.004)
check("about half of those show their true token", abs(honest_share - 0.51) < 0.05)

# %% [markdown]
# ## 下一句预测 Sentence pairs (003.nsp)
#
# `nsp_pairs` draws a sentence A that has a successor. With probability ½, B is that successor
# (is_next), otherwise a random sentence that is neither A nor the true successor. The story
# splits into 8 sentences:

# %%
sentences = split_sentences(story)
pairs = nsp_pairs(sentences, np.random.default_rng(2), 4)
for sa, sb, is_next in pairs:
    print(f"{'IsNext ' if is_next else 'NotNext'}  A: {sa!r:45}  B: {sb!r}")

many = nsp_pairs(sentences, np.random.default_rng(3), 4000)
n_next = sum(p[2] for p in many)
print(f"{n_next} of {len(many)} pairs are true successors")
check("half the pairs are true successors: Binomial(N, 0.5)", within(n_next, len(many), 0.5))
check("a true pair is two consecutive sentences",
      all(sentences.index(sb) == sentences.index(sa) + 1 for sa, sb, nxt in many if nxt))
check("a false pair's B is neither A nor A's successor",
      all(sb not in (sa, sentences[sentences.index(sa) + 1]) for sa, sb, nxt in many if not nxt))

# %% [markdown]
# ## 输入格式 The input `[CLS] A [SEP] B [SEP]` with segment ids
#
# BERT reads both sentences as one input. `[CLS]` comes first, and its final vector feeds the
# NSP classifier. Each sentence ends with `[SEP]`, and `[PAD]` fills the row up to max_len.
# Three more arrays go with it. `token_type_ids` (segment ids) is 0 on `[CLS] A [SEP]` and 1
# on `B [SEP]`, and it adds a learned segment embedding. `attention_mask` is 1 on real tokens,
# so nothing attends to padding. `nsp_labels` is 0 when B follows A and 1 when it does not,
# the Hugging Face convention. Built by hand with no masking (mask_prob = 0), then by
# `build_bert_batch`:

# %%
max_len = 24
hand = {k: np.zeros((len(pairs), max_len), dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
hand["input_ids"][:] = special.pad_id
for r, (sa, sb, _) in enumerate(pairs):
    ta, tb = tok.encode(sa), tok.encode(sb)
    seq = [special.cls_id] + ta + [special.sep_id] + tb + [special.sep_id]
    hand["input_ids"][r, :len(seq)] = seq
    hand["token_type_ids"][r, len(ta) + 2:len(seq)] = 1
    hand["attention_mask"][r, :len(seq)] = 1
hand["nsp_labels"] = np.array([0 if nxt else 1 for *_, nxt in pairs])

plain = build_bert_batch(pairs, tok, special, max_len, np.random.default_rng(4), mask_prob=0.0)
print(" ".join(show(plain["input_ids"][0])))
print("segments:", "".join(map(str, plain["token_type_ids"][0])))
print("mask:    ", "".join(map(str, plain["attention_mask"][0])))
check("no pair needed truncating", all(len(tok.encode(sa)) + len(tok.encode(sb)) <= max_len - 3 for sa, sb, _ in pairs))
check("build_bert_batch lays the pair out as [CLS] A [SEP] B [SEP] [PAD]...",
      all(np.array_equal(hand[k], plain[k]) for k in hand))
check("without masking every label is -100", np.all(plain["mlm_labels"] == -100))

batch = build_bert_batch(pairs, tok, special, max_len, np.random.default_rng(5))
print("masked row 0:", " ".join(show(batch["input_ids"][0])))
print("its targets: ", [show([t])[0] for t in batch["mlm_labels"][0] if t != -100])
check("masking touches only real, ordinary tokens",
      np.all(batch["attention_mask"][batch["mlm_labels"] != -100] == 1)
      and not np.isin(plain["input_ids"][batch["mlm_labels"] != -100], special.ids).any())

# %% [markdown]
# ## 联合损失 BERT's joint loss by hand
#
# BERT's pre-training loss is the sum of two cross-entropies:
#
# `L = −(1/|M|) Σ_{i∈M} log softmax(z_i)[x_i]  −  (1/B) Σ_b log softmax(s_b)[y_b]`
#
# Here M is the set of selected positions (label ≠ −100), z_i the MLM logits at position i
# over the vocabulary, x_i the original token, s_b the NSP logits of row b (computed from the
# `[CLS]` vector), and y_b its label. The MLM mean runs over the selected positions only. The
# other 85% of positions, and all the padding, contribute nothing.
#
# Your turn: the MLM part, in NumPy.

# %%
def mlm_loss(logits, labels):
    """Mean cross-entropy of logits (B, T, V) at the positions where labels != -100."""
    # BEGIN SOLUTION hint: keep the rows z = logits[labels != -100]; log-softmax them; average -logp at the labels
    keep = labels != -100
    z = logits[keep] - logits[keep].max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -log_p[np.arange(len(z)), labels[keep]].mean()
    # END SOLUTION


# %%
bert = Bert(BertConfig(vocab_size=special.vocab_size, block_size=max_len, n_layer=1, n_head=2, n_embd=16,
                       dropout=0.0)).double()
out = bert(**batch)


def log_softmax_rows(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


z_mlm, z_nsp = out.mlm_logits.numpy(), out.nsp_logits.numpy()
keep = batch["mlm_labels"] != -100
mlm_hand = -log_softmax_rows(z_mlm[keep])[np.arange(keep.sum()), batch["mlm_labels"][keep]].mean()
nsp_hand = -log_softmax_rows(z_nsp)[np.arange(len(z_nsp)), batch["nsp_labels"]].mean()
print(f"{keep.sum()} selected positions of {keep.size}: MLM {mlm_hand:.6f} "
      f"(≈ log V = {math.log(special.vocab_size):.3f}), NSP {nsp_hand:.6f} (≈ log 2 = {math.log(2):.3f}); "
      f"Bert says {out.mlm_loss.item():.6f} + {out.nsp_loss.item():.6f}")
check("the MLM loss by hand equals Bert's mlm_loss", np.isclose(mlm_hand, out.mlm_loss.item()))
check("the NSP loss by hand equals Bert's nsp_loss", np.isclose(nsp_hand, out.nsp_loss.item()))
check("Bert's loss is their sum", np.isclose(mlm_hand + nsp_hand, out.loss.item()))
graded("your MLM loss equals Bert's", lambda: np.isclose(mlm_loss(z_mlm, batch["mlm_labels"]), out.mlm_loss.item()))
graded("your MLM loss ignores the unselected positions",
       lambda: np.isclose(mlm_loss(np.where(keep[..., None], z_mlm, 5.0 * z_mlm + 1.0), batch["mlm_labels"]),
                          out.mlm_loss.item()))

# %% [markdown]
# Averaging over every position is a tempting slip. The denominator then counts the positions
# that hold no prediction, so the loss comes out several times too small, and it varies with
# the amount of padding:

# %%
all_positions = -log_softmax_rows(z_mlm.reshape(-1, special.vocab_size))[
    np.arange(keep.size), np.where(keep, batch["mlm_labels"], 0).reshape(-1)] * keep.reshape(-1)
print(f"mean over all {keep.size} positions: {all_positions.mean():.4f}, "
      f"over the {keep.sum()} selected: {mlm_hand:.4f}")
check("dividing by every position shrinks the loss by |M| / (B·T)",
      np.isclose(all_positions.mean(), mlm_hand * keep.sum() / keep.size))

# %% [markdown]
# The gradient with respect to the logits, three ways. For a selected position i,
# `∂L/∂z_i = (softmax(z_i) − onehot(x_i)) / |M|`, and it is 0 at every other position. For
# row b, `∂L/∂s_b = (softmax(s_b) − onehot(y_b)) / B`.

# %%
two = slice(0, 2)                                # two rows keep the central differences quick
z2, lab2 = z_mlm[two].reshape(-1, special.vocab_size), batch["mlm_labels"][two].reshape(-1)
s2, nsp2 = z_nsp[two], batch["nsp_labels"][two]


def joint_loss(z, s):
    return F.cross_entropy(z, lab2, ignore_index=-100) + F.cross_entropy(s, nsp2)


def joint_formula(g, z, s):
    sel = lab2 != -100
    dz = np.zeros_like(z)
    dz[sel] = (np.exp(log_softmax_rows(z[sel])) - np.eye(z.shape[1])[lab2[sel]]) / sel.sum()
    ds = (np.exp(log_softmax_rows(s)) - np.eye(2)[nsp2]) / len(s)
    return {"z": g * dz, "s": g * ds}


report = compare(joint_loss, joint_formula, {"z": tinylm.Tensor(z2, requires_grad=True),
                                             "s": tinylm.Tensor(s2, requires_grad=True)})
print(report.table("L = MLM CE (selected positions) + NSP CE: autograd vs numeric vs formula"))
check("the joint loss's gradient, three ways", report.passed)

# %% [markdown]
# ## 预训练 A short pre-training run
#
# `tinylm.tasks.mlm.pretrain(objective="mlm+nsp")` runs the whole loop (the one Trainer, with
# the MaskedLM task). It splits a text into
# sentences, draws NSP pairs, masks them with the 80/10/10 rule, and trains a `Bert` with
# AdamW on the sum of both losses. It evaluates on held-out sentences, always on the same
# batches. Here it runs on 30,000 characters of the default corpus, with a one-layer BERT of
# width 32, for a few dozen steps:

# %%
corpus_file = output_dir() / "10_corpus.txt"
corpus_file.write_text(default_corpus_text(30_000), encoding="utf-8")
steps = 20 if fast() else 80
summary = pretrain(objective="mlm+nsp", data=str(corpus_file), tokenizer="word", vocab_size=300, n_layer=1,
                   n_head=2, n_embd=32, block_size=32, batch_size=16, max_iters=steps, lr=5e-3, min_lr=3e-4,
                   warmup_iters=5, eval_interval=5 if fast() else 20, eval_iters=3, dropout=0.0, seed=0,
                   out=str(output_dir() / "10_bert"), progress=False)
evals = summary["evals"]
print(f"MLM loss {evals[0]['mlm_loss']:.3f} -> {evals[-1]['mlm_loss']:.3f} (uniform guessing: log 304 = "
      f"{math.log(304):.3f}); NSP loss {evals[-1]['nsp_loss']:.3f} (log 2 = {math.log(2):.3f})")
check("the MLM loss went down", evals[-1]["mlm_loss"] < evals[0]["mlm_loss"] - 0.5)
check("the untrained model starts near uniform guessing", abs(evals[0]["mlm_loss"] - math.log(304)) < 0.5)

# %% [markdown]
# In a run this short the MLM loss falls first, because word frequencies alone are easy to
# learn. NSP stays near log 2 = 0.693: telling a true successor from a random sentence needs
# far more training. NSP also proved weak at scale: RoBERTa dropped it and matched or beat
# BERT, and ALBERT's authors argued that a random B is too easy, since its topic alone gives
# it away, and replaced NSP with predicting the order of two consecutive sentences.

# %%
try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(summary["train_losses"], label="train (MLM + NSP)")
    ax.plot([e["step"] for e in evals], [e["mlm_loss"] for e in evals], "o-", label="validation MLM")
    ax.plot([e["step"] for e in evals], [e["nsp_loss"] for e in evals], "s-", label="validation NSP")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats)")
    ax.legend()
    fig.tight_layout()
    picture(fig, "10_pretraining_loss.png")
except ImportError:
    print("(matplotlib not installed: no loss plot)")
