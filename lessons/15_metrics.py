# %% [markdown]
# # 评估指标 Evaluation metrics: accuracy, precision, recall, F1, BLEU, ROUGE, perplexity (004.metrics)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 评估指标 — evaluation metrics — numbers that say how good predictions are.
# * 准确率 — accuracy — the share of predictions that are right.
# * 精确率 — precision — of the items predicted as a class, the share that are.
# * 召回率 — recall — of the items of a class, the share found.
# * F1 分数 — F1 score — 2PR/(P + R), the harmonic mean of precision and recall.
# * 宏平均 / 微平均 — macro / micro average — the mean over classes / the pooled counts.
# * 混淆矩阵 — confusion matrix — counts of (true class, predicted class) pairs.
# * 困惑度 — perplexity — e to the mean cross-entropy: the number of equally likely choices it
#   amounts to.
# * 梯度 — gradient — ∂L/∂w; the metrics here have none, which is why training uses a loss.
#
# Article 004 (§8.3) names the standard yardsticks. For classification there are 准确率
# (accuracy), 召回率 (recall) and F1分数 (the F1 score); precision (精确率) is the third
# member of that family. For generated text there are BLEU and ROUGE. The article lists
# them without formulas. **004.metrics** is a procedure, and this lesson supplies the
# formulas. Each metric is first computed by hand on examples small enough to check on
# paper, then with `tinylm.metrics`, and finally against the reference packages `sacrebleu`
# and `rouge-score` when they are installed. The lesson ends with perplexity, the metric of
# the language model itself.
#
# Counting metrics have no useful gradient. Accuracy is flat almost everywhere, and we show
# this with central differences. So models are trained on cross-entropy, or on a *soft*
# version of a metric. We check the gradients of perplexity and of a soft F1 three ways.

# %%
import math
from collections import Counter

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data import CharTokenizer, default_corpus_text, get_batch, sequential_batches
from tinylm.lesson import check, fast, graded, picture, pyplot
from tinylm.metrics import (accuracy, confusion_matrix, corpus_bleu, evaluate_loss, perplexity,
                            precision_recall_f1, rouge_l, rouge_n, sentence_bleu)
from tinylm.models import GPT, GPTConfig
from tinylm.optim import AdamW

rng = np.random.default_rng(0)
tinylm.manual_seed(0)

# %% [markdown]
# ## 准确率 Accuracy and the confusion matrix (混淆矩阵)
#
# Ten animals, three classes. `accuracy = (1/N) Σ_i [pred_i = true_i]`. The confusion matrix
# C counts each (true, predicted) pair: `C[i, j]` is how many items of true class i were
# predicted as j. Its diagonal holds the correct answers, so accuracy = trace(C) / N.

# %%
true = ["cat", "cat", "cat", "cat", "dog", "dog", "dog", "bird", "bird", "bird"]
pred = ["cat", "cat", "dog", "cat", "dog", "dog", "cat", "bird", "cat", "bird"]
classes = sorted(set(true) | set(pred))                     # ['bird', 'cat', 'dog']
C = np.zeros((3, 3), dtype=np.int64)
for t, p in zip(true, pred):
    C[classes.index(t), classes.index(p)] += 1
print("rows = true, columns = predicted", classes)
print(C)
acc = np.trace(C) / C.sum()
C_lib, labels = confusion_matrix(pred, true)                 # note: pred first, then true
check("the confusion matrix by hand", np.array_equal(C, [[2, 1, 0], [0, 3, 1], [0, 1, 2]]))
check("tinylm's confusion matrix is the same", np.array_equal(C, C_lib) and labels == classes)
check("accuracy = trace / N = 0.7", np.isclose(acc, 0.7) and np.isclose(accuracy(pred, true), acc))

# %% [markdown]
# ## 精确率、召回率与F1分数 Precision, recall and F1: per class, macro and micro
#
# For a class c, read three counts off C:
#
# * TP = `C[c, c]`: predicted c, and it was c;
# * FP = column c minus TP: predicted c, but it was something else;
# * FN = row c minus TP: it was c, but the prediction was something else.
#
# Then `precision = TP / (TP + FP)`, "how many of my c's were right". `recall = TP / (TP + FN)`,
# "how many real c's did I find". F1 is their harmonic mean,
# `F1 = 2PR / (P + R) = 2TP / (2TP + FP + FN)`. There are two ways to summarise the classes:
#
# * **macro**: compute each class's score, then take the plain mean, so a rare class counts as
#   much as a common one;
# * **micro**: add up TP, FP and FN over all classes first, then compute. Every wrong
#   prediction is an FP for one class and an FN for another, so micro P = R = F1 = accuracy.

# %%
tp = np.diag(C)
fp = C.sum(0) - tp
fn = C.sum(1) - tp
P, Rc = tp / (tp + fp), tp / (tp + fn)
F1 = 2 * tp / (2 * tp + fp + fn)
for c, name in enumerate(classes):
    print(f"{name:5s} TP {tp[c]} FP {fp[c]} FN {fn[c]}   precision {P[c]:.4f} recall {Rc[c]:.4f} F1 {F1[c]:.4f}")
micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())
print(f"macro F1 {F1.mean():.4f}, micro F1 {micro:.4f}")
per_class = precision_recall_f1(pred, true, average=None)
check("bird: P = 1, R = 2/3, F1 = 0.8", np.allclose([P[0], Rc[0], F1[0]], [1, 2 / 3, 0.8]))
check("F1 = 2PR/(P+R) = 2TP/(2TP+FP+FN)", np.allclose(F1, 2 * P * Rc / (P + Rc)))
check("per-class scores equal tinylm's",
      all(np.allclose([per_class[n]["precision"], per_class[n]["recall"], per_class[n]["f1"]], [P[c], Rc[c], F1[c]])
          for c, n in enumerate(classes)))
check("macro F1 equals tinylm's", np.isclose(F1.mean(), precision_recall_f1(pred, true)["f1"]))
check("micro P = R = F1 = accuracy", np.isclose(micro, acc)
      and all(np.isclose(v, acc) for v in precision_recall_f1(pred, true, average="micro").values()))

# %% [markdown]
# Your turn: macro F1 from the two label lists. Use `2TP / (2TP + FP + FN)`. It needs no
# special case for a class that is never predicted, where P = 0/0, because every class in the
# list appears at least once in `true` or `pred`, so the denominator is never 0.

# %%
def macro_f1(pred, true):
    """The mean over classes (those in pred or true) of each class's F1."""
    # BEGIN SOLUTION hint: per class c count tp (p == t == c), fp (p == c != t), fn (t == c != p); F1 = 2tp/(2tp+fp+fn)
    scores = []
    for c in set(pred) | set(true):
        tp = sum(p == t == c for p, t in zip(pred, true))
        fp = sum(p == c != t for p, t in zip(pred, true))
        fn = sum(t == c != p for p, t in zip(pred, true))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)
    # END SOLUTION


many_true, many_pred = rng.integers(0, 5, 300).tolist(), rng.integers(0, 6, 300).tolist()   # class 5 never true
graded("your macro F1 on the animals is 0.7111", lambda: np.isclose(macro_f1(pred, true), 0.71111111))
graded("your macro F1 equals tinylm's on 300 random labels (one class never true)",
       lambda: np.isclose(macro_f1(many_pred, many_true), precision_recall_f1(many_pred, many_true)["f1"]))

# %% [markdown]
# Why macro F1 matters: on imbalanced data, accuracy flatters a lazy model. Take 95 ham
# e-mails and 5 spam, and a filter that says "ham" every time:

# %%
mail_true = ["ham"] * 95 + ["spam"] * 5
lazy = ["ham"] * 100
scores = precision_recall_f1(lazy, mail_true, average=None)
print(f"accuracy {accuracy(lazy, mail_true):.2f}, macro F1 {precision_recall_f1(lazy, mail_true)['f1']:.3f}, "
      f"spam recall {scores['spam']['recall']:.1f}")
check("95% accurate, yet it finds no spam", accuracy(lazy, mail_true) == 0.95 and scores["spam"]["recall"] == 0)
check("macro F1 exposes it: about 0.49", abs(precision_recall_f1(lazy, mail_true)["f1"] - 0.487) < 1e-3)

# %% [markdown]
# ## 梯度 Metrics have no gradient; soft F1 has one
#
# Nudge a logit by ε and the argmax almost never changes, so accuracy's central differences
# are exactly zero. A model cannot learn from that. When a metric must be optimised
# directly, replace hard counts by probabilities. For a binary task with `p_i = σ(z_i)`:
#
# `softTP = Σ p_i y_i`, `softF1 = 2 softTP / (Σ p_i + Σ y_i)`.
#
# With 0/1 predictions this is exactly F1, since `Σ p + Σ y = (TP + FP) + (TP + FN)`. Its
# derivative is `∂softF1/∂p_i = 2y_i / D − 2 softTP / D²` with `D = Σ p + Σ y`, times
# `σ'(z_i) = p_i (1 − p_i)`.

# %%
z_cls = rng.standard_normal((6, 3))
y_cls = np.array([0, 1, 2, 2, 1, 0])


def acc_of(z):
    return np.mean(z.argmax(1) == y_cls)


eps = 1e-6
numeric = np.zeros_like(z_cls)
for idx in np.ndindex(*z_cls.shape):
    up, down = z_cls.copy(), z_cls.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric[idx] = (acc_of(up) - acc_of(down)) / (2 * eps)
check("accuracy's central differences are all zero", np.all(numeric == 0))

z_bin = rng.standard_normal(8)
y_bin = np.array([1, 0, 1, 1, 0, 0, 1, 0])


def soft_f1(z):
    p = z.sigmoid()
    return 2 * (p * tinylm.Tensor(y_bin.astype(np.float64))).sum() / (p.sum() + float(y_bin.sum()))


def soft_f1_formula(g, z):
    p = 1 / (1 + np.exp(-z))
    D = p.sum() + y_bin.sum()
    return {"z": g * (2 * y_bin / D - 2 * (p * y_bin).sum() / D ** 2) * p * (1 - p)}


report = compare(soft_f1, soft_f1_formula, {"z": tinylm.Tensor(z_bin, requires_grad=True)})
print(report.table("soft F1 = 2 Σ p·y / (Σ p + Σ y): autograd vs numeric vs formula"))
check("soft F1's gradient, three ways", report.passed)
hard = (z_bin > 0).astype(int)
check("with 0/1 predictions soft F1 is the F1 of class 1",
      np.isclose(soft_f1(tinylm.Tensor(np.where(hard == 1, 50.0, -50.0))).item(),
                 precision_recall_f1(hard.tolist(), y_bin.tolist(), average=None)[1]["f1"]))

# %% [markdown]
# ## BLEU: clipped n-gram precision
#
# BLEU scores a generated sentence (the hypothesis) against one or more human references.
# The first ingredient is the *modified* n-gram precision. Count each n-gram of the
# hypothesis, but never more times than it appears in the reference that has the most of
# it. Without the clip, a degenerate output scores perfectly:

# %%
def ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


silly = "the the the the the the the".split()
ref_a, ref_b = "the cat is on the mat".split(), "there is a cat on the mat".split()
counts = ngrams(silly, 1)
max_ref = {g: max(ngrams(r, 1)[g] for r in (ref_a, ref_b)) for g in counts}     # 'the': 2 in ref_a
clipped = sum(min(c, max_ref[g]) for g, c in counts.items())
print(f"unclipped unigram precision {sum(c for g, c in counts.items() if max_ref[g]) / len(silly):.3f}, "
      f"clipped {clipped}/{len(silly)} = {clipped / len(silly):.3f}")
check("the clipped unigram precision of 'the ×7' is 2/7", clipped == 2)
check("tinylm agrees: BLEU-1 without brevity penalty = 2/7",
      np.isclose(corpus_bleu([silly], [[ref_a, ref_b]], max_n=1, smooth="none"), 100 * 2 / 7))

# %% [markdown]
# ## BLEU: brevity penalty and the geometric mean
#
# Precision alone rewards saying little: a one-word output "the" has unigram precision 1.
# BLEU therefore multiplies by a brevity penalty. With c the hypothesis length and r the
# reference length closest to it (the shorter one on a tie),
# `BP = 1 if c ≥ r, else exp(1 − r/c)`. Then
#
# `BLEU = 100 · BP · exp((1/N) Σ_{n=1}^{N} log p_n)`, with N = 4,
#
# the geometric mean of the four clipped precisions. Over a corpus, the counts m_n, t_n and
# the lengths c, r are summed over all sentences first. Corpus BLEU is *not* the average of
# the sentence BLEUs. By hand, on two sentences with two references each:

# %%
hyps = [h.split() for h in ("the cat sat on the mat", "there is a dog")]
refs = [[r.split() for r in ("the cat is sitting on the mat", "a cat sat on a mat")],
        [r.split() for r in ("a dog is in the garden", "there is a dog playing in the garden")]]
m, t = np.zeros(4), np.zeros(4)
c_len = r_len = 0
for hyp, rs in zip(hyps, refs):
    c_len += len(hyp)
    r_len += min((len(r) for r in rs), key=lambda L: (abs(L - len(hyp)), L))
    for n in range(1, 5):
        hc = ngrams(hyp, n)
        best = Counter()
        for r in rs:
            best |= ngrams(r, n)                         # the largest count of each n-gram over the references
        m[n - 1] += sum(min(k, best[g]) for g, k in hc.items())
        t[n - 1] += sum(hc.values())
bp = 1.0 if c_len >= r_len else math.exp(1 - r_len / c_len)
bleu_hand = 100 * bp * math.exp(np.mean(np.log(m / t)))
print("matches", m, "of", t, f"; c = {c_len}, r = {r_len}, BP = {bp:.4f}; BLEU = {bleu_hand:.4f}")
check("corpus BLEU by hand equals tinylm's", np.isclose(bleu_hand, corpus_bleu(hyps, refs)))
sentence_mean = np.mean([sentence_bleu(h, r) for h, r in zip(hyps, refs)])
check("corpus BLEU is not the mean of the sentence BLEUs", abs(sentence_mean - bleu_hand) > 1)

# %% [markdown]
# Your turn: the two ingredients. `clipped_counts(hyp, refs, n)` returns (m, t), the clipped
# matches and the number of hypothesis n-grams. `brevity_penalty(c, r)` is the formula above.

# %%
def clipped_counts(hyp, refs, n):
    """(m, t): hypothesis n-grams matched, each clipped at its largest count in one reference; and their total."""
    # BEGIN SOLUTION hint: count hyp n-grams; for each, min(count, max over refs of its count there); t = sum of counts
    hyp_counts = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
    ref_counts = [Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1)) for r in refs]
    m = sum(min(k, max(rc[g] for rc in ref_counts)) for g, k in hyp_counts.items())
    return m, sum(hyp_counts.values())
    # END SOLUTION


def brevity_penalty(c, r):
    """1 when the hypothesis length c reaches the reference length r, else exp(1 - r/c)."""
    # BEGIN SOLUTION hint: no penalty when c >= r; a short hypothesis gets exp(1 - r/c)
    return 1.0 if c >= r else math.exp(1 - r / c)
    # END SOLUTION


def bleu_from_parts(hyps, refs):
    """Corpus BLEU-4 (no smoothing) assembled from your clipped_counts and brevity_penalty."""
    m = np.sum([[clipped_counts(h, rs, n)[0] for n in range(1, 5)] for h, rs in zip(hyps, refs)], axis=0)
    t = np.sum([[clipped_counts(h, rs, n)[1] for n in range(1, 5)] for h, rs in zip(hyps, refs)], axis=0)
    c = sum(len(h) for h in hyps)
    r = sum(min((len(x) for x in rs), key=lambda L: (abs(L - len(h)), L)) for h, rs in zip(hyps, refs))
    return 100 * brevity_penalty(c, r) * math.exp(np.mean(np.log(m / t)))


graded("your clipped count of 'the ×7' is (2, 7)", lambda: clipped_counts(silly, [ref_a, ref_b], 1) == (2, 7))
graded("your clipped trigram counts with two references are (2, 4)",
       lambda: clipped_counts(hyps[0], refs[0], 3) == (2, 4))
graded("your brevity penalty: exp(1 - 7/6) when short, 1 when long enough",
       lambda: np.isclose(brevity_penalty(6, 7), math.exp(1 - 7 / 6)) and brevity_penalty(8, 7) == 1.0)
graded("BLEU from your parts equals tinylm's corpus_bleu", lambda: np.isclose(bleu_from_parts(hyps, refs),
                                                                              corpus_bleu(hyps, refs, smooth="none")))

# %% [markdown]
# ## BLEU: smoothing
#
# A short sentence often has no matching 4-gram. Then p_4 = 0 and the geometric mean, and
# with it BLEU, is 0, however good the rest of the sentence is. Smoothing replaces the zero.
# sacrebleu's default ("exp") gives the k-th order with no match `p_n = 1 / (2^k t_n)`. The
# "floor" method uses `0.1 / t_n`, and "add-k" uses `(m_n + 1) / (t_n + 1)` for n ≥ 2:

# %%
one_h, one_r = hyps[0], [refs[0][0]]                  # "the cat sat on the mat" vs "the cat is sitting on the mat"
m1 = [sum(min(k, ngrams(one_r[0], n)[g]) for g, k in ngrams(one_h, n).items()) for n in range(1, 5)]
t1 = [len(one_h) - n + 1 for n in range(1, 5)]
bp1 = math.exp(1 - 7 / 6)
p_exp = [m1[n] / t1[n] if m1[n] else 1 / (2 * t1[n]) for n in range(4)]   # one zero order: k = 1
p_add = [m1[0] / t1[0]] + [(m1[n] + 1) / (t1[n] + 1) for n in range(1, 4)]
by_hand = {"none": 0.0, "exp": 100 * bp1 * math.exp(np.mean(np.log(p_exp))),
           "add-k": 100 * bp1 * math.exp(np.mean(np.log(p_add)))}
print("matches", m1, "of", t1)
for method, value in by_hand.items():
    print(f"smooth={method:6s} by hand {value:8.4f}   tinylm {sentence_bleu(one_h, one_r, smooth=method):8.4f}")
check("no 4-gram matches", m1[3] == 0)
check("each smoothing method by hand equals tinylm",
      all(np.isclose(v, sentence_bleu(one_h, one_r, smooth=k)) for k, v in by_hand.items()))

# %% [markdown]
# Checked against sacrebleu, the reference implementation. `tokenize="none"` makes it split
# on spaces exactly as we did. sacrebleu takes the references as "streams", one list per
# reference position:

# %%
try:
    import sacrebleu

    ours = corpus_bleu(hyps, refs)
    theirs = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r[j]) for r in refs] for j in range(2)],
                                   tokenize="none").score
    print(f"corpus BLEU: tinylm {ours:.6f}, sacrebleu {theirs:.6f}")
    check("corpus BLEU equals sacrebleu's", np.isclose(ours, theirs))
    check("sentence BLEU (exp smoothing) equals sacrebleu's",
          np.isclose(sentence_bleu(one_h, one_r), sacrebleu.sentence_bleu(" ".join(one_h), [" ".join(one_r[0])],
                                                                           tokenize="none").score))
except ImportError:
    print("(sacrebleu not installed: skipping the comparison with it)")

# %% [markdown]
# ## ROUGE-1, ROUGE-2 and ROUGE-L
#
# ROUGE comes from summarisation and leans on recall: how much of the reference did the
# output cover? ROUGE-N counts the overlapping n-grams, `overlap = Σ_g min(count_hyp(g),
# count_ref(g))`, with `P = overlap / #hyp n-grams`, `R = overlap / #ref n-grams` and
# `F = 2PR / (P + R)`. ROUGE-L replaces the overlap with the length of the longest common
# subsequence (LCS), the longest run of words found in both texts in the same order, though
# not necessarily next to each other. The LCS comes from a table over prefixes:
# `L[i][j] = L[i−1][j−1] + 1` if the i-th and j-th words match, else `max(L[i−1][j], L[i][j−1])`.

# %%
hyp_text, ref_text = "the cat was found under the bed", "the cat was under the bed"
h_tok, r_tok = hyp_text.split(), ref_text.split()


def prf(overlap, n_hyp, n_ref):
    p, r = overlap / n_hyp, overlap / n_ref
    return p, r, 2 * p * r / (p + r)


hand_rouge = {}
for n in (1, 2):
    hc, rc = ngrams(h_tok, n), ngrams(r_tok, n)
    hand_rouge[f"rouge{n}"] = prf(sum((hc & rc).values()), sum(hc.values()), sum(rc.values()))
L = np.zeros((len(h_tok) + 1, len(r_tok) + 1), dtype=int)
for i, hw in enumerate(h_tok, 1):
    for j, rw in enumerate(r_tok, 1):
        L[i, j] = L[i - 1, j - 1] + 1 if hw == rw else max(L[i - 1, j], L[i, j - 1])
print("LCS table (rows: hypothesis prefixes, columns: reference prefixes):\n", L[1:, 1:])
hand_rouge["rougeL"] = prf(L[-1, -1], len(h_tok), len(r_tok))
for name, (p, r, f) in hand_rouge.items():
    print(f"{name:7s} P {p:.4f} R {r:.4f} F {f:.4f}")
ours = {"rouge1": rouge_n(hyp_text, ref_text, 1), "rouge2": rouge_n(hyp_text, ref_text, 2),
        "rougeL": rouge_l(hyp_text, ref_text)}
check("ROUGE-2 by hand: 4 shared bigrams, P = 4/6, R = 4/5", np.allclose(hand_rouge["rouge2"][:2], [4 / 6, 4 / 5]))
check("LCS = 6: 'the cat was under the bed'", L[-1, -1] == 6)
check("ROUGE-1/2/L by hand equal tinylm's",
      all(np.allclose(hand_rouge[k], [ours[k]["precision"], ours[k]["recall"], ours[k]["fmeasure"]]) for k in ours))

# %% [markdown]
# ROUGE-1 ignores word order entirely. Scramble the hypothesis and ROUGE-1 does not move,
# while ROUGE-2 and ROUGE-L drop:

# %%
scrambled = "bed the under found was cat the"
for name, fn in (("rouge1", lambda h: rouge_n(h, ref_text, 1)), ("rouge2", lambda h: rouge_n(h, ref_text, 2)),
                 ("rougeL", lambda h: rouge_l(h, ref_text))):
    print(f"{name}: in order {fn(hyp_text)['fmeasure']:.3f}, scrambled {fn(scrambled)['fmeasure']:.3f}")
check("scrambling leaves ROUGE-1 unchanged", rouge_n(scrambled, ref_text, 1) == rouge_n(hyp_text, ref_text, 1))
check("...but lowers ROUGE-2 and ROUGE-L", rouge_n(scrambled, ref_text, 2)["fmeasure"] < 0.2
      and rouge_l(scrambled, ref_text)["fmeasure"] < ours["rougeL"]["fmeasure"])

try:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    theirs = scorer.score(ref_text, hyp_text)                 # rouge-score takes the reference first
    check("ROUGE-1/2/L equal rouge-score's",
          all(np.allclose([ours[k]["precision"], ours[k]["recall"], ours[k]["fmeasure"]], tuple(theirs[k]))
              for k in ours))
except ImportError:
    print("(rouge-score not installed: skipping the comparison with it)")

# %% [markdown]
# ## 困惑度 Perplexity: the language model's own metric
#
# A language model is scored on held-out text by its mean cross-entropy per token,
# `loss = −(1/N) Σ_t log P(w_t | w_<t)`, and by the perplexity `PPL = exp(loss)`. A model that
# spreads its probability evenly over V tokens has loss log V and perplexity exactly V. So
# perplexity reads as "the number of tokens the model is choosing between". `evaluate_loss`
# reads the text once, in consecutive windows of block_size. By hand, with the same windows,
# for an untrained tiny GPT and then for one trained for a few dozen steps:

# %%
text = default_corpus_text(20_000)
ctok = CharTokenizer.train(text)
ids = np.array(ctok.encode(text))
train_ids, val_ids = ids[:18_000], ids[18_000:]
V = ctok.vocab_size
gpt = GPT(GPTConfig(vocab_size=V, block_size=32, n_layer=1, n_head=2, n_embd=32))


def loss_by_hand(model, data):
    total, count = 0.0, 0
    with tinylm.no_grad():
        for x, y in sequential_batches(data, 16, 32):
            logits = model(x)[0].numpy().astype(np.float64)
            z = logits - logits.max(-1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total -= np.take_along_axis(log_p, y[..., None], -1).sum()
            count += y.size
    return total / count, count


before, n_tokens = loss_by_hand(gpt, val_ids)
ev_before = evaluate_loss(gpt, val_ids)
opt = AdamW(gpt.parameters(), lr=3e-3)
batch_rng = np.random.default_rng(1)
for step in range(20 if fast() else 150):
    _, loss = gpt(*get_batch(train_ids, 16, 32, batch_rng))
    opt.zero_grad()
    loss.backward()
    opt.step()
after, _ = loss_by_hand(gpt, val_ids)
print(f"{n_tokens} validation tokens, vocabulary {V}: perplexity {perplexity(before):.2f} untrained, "
      f"{perplexity(after):.2f} after training")
check("evaluate_loss equals the hand loop", np.isclose(before, ev_before[0], rtol=1e-5) and ev_before[1] == n_tokens)
check("evaluate_loss after training too", np.isclose(after, evaluate_loss(gpt, val_ids)[0], rtol=1e-5))
check("an untrained model's perplexity is close to V", abs(perplexity(before) - V) / V < 0.1)
check("training lowers the perplexity", perplexity(after) < 0.6 * perplexity(before))

# %% [markdown]
# Perplexity is differentiable, unlike the counting metrics. Its gradient with respect to the
# logits is `PPL · (softmax(z_t) − onehot(w_t)) / N` at each position:

# %%
z_lm = rng.standard_normal((10, 7))
w_lm = rng.integers(0, 7, 10)


def ppl_formula(g, z):
    e = np.exp(z - z.max(1, keepdims=True))
    s = e / e.sum(1, keepdims=True)
    ppl = math.exp(-np.log(s[np.arange(10), w_lm]).mean())
    return {"z": g * ppl * (s - np.eye(7)[w_lm]) / 10}


report = compare(lambda z: F.cross_entropy(z, w_lm).exp(), ppl_formula,
                 {"z": tinylm.Tensor(z_lm, requires_grad=True)})
print(report.table("PPL = exp(mean CE): autograd vs numeric vs formula"))
check("perplexity's gradient, three ways", report.passed)

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(C, cmap="Blues")
    ax.set_xticks(range(3), classes)
    ax.set_yticks(range(3), classes)
    for (i, j), v in np.ndenumerate(C):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {acc:.1f}, macro F1 {F1.mean():.3f}")
    fig.tight_layout()
    picture(fig, "15_confusion_matrix.png")
except ImportError:
    print("(matplotlib not installed: no confusion-matrix plot)")
