# %% [markdown]
# # 过拟合与欠拟合 Over-fitting, under-fitting and uncertainty (001.overfit, 001.uncertainty)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 过拟合 / 欠拟合 — over-fitting / under-fitting — learning the training set by heart / not even
#   fitting it.
# * 数据增强 — data augmentation — new training examples made by editing old ones.
# * 正则化 — regularisation — anything that holds the weights back from fitting noise.
# * 权重衰减 — weight decay — shrink every weight a little at every step.
# * 丢弃法 — dropout — zero random activations while training.
# * 交叉验证 — cross-validation — train k times, each time validating on a different fold.
# * 早停法 — early stopping — stop when the validation loss has not improved for a while, keep the
#   best epoch.
# * 置信度 / 不确定性 — confidence / uncertainty — how sure a prediction is / how unsure.
# * 投票 / 集成学习 — voting / ensemble learning — combining several models' predictions.
# * 损失函数 — loss function — the cross-entropy, on training and validation data.
# * 优化器 / 学习率 — optimizer / learning rate — AdamW and its step size.
#
# Article 001 (§9.5–§9.7) lists remedies for three common problems in training:
#
# * **001.overfit** — 过拟合 (over-fitting): the model learns its training examples by heart
#   and does worse on new ones. The remedies listed are 数据增强 (data augmentation by random
#   insertion, replacement and deletion), 正则化 (regularisation: weight decay and dropout),
#   交叉验证 (cross-validation) and 早停法 (early stopping). 欠拟合 (under-fitting) is the
#   opposite: the model is too weak even for its training data. The remedies there are more
#   data, a bigger model, a better learning rate and less regularisation.
# * **001.uncertainty** — 预测不确定性 (prediction uncertainty): measure how sure a prediction
#   is (置信度, confidence), and combine several predictions by 投票 (voting) or averaging.
#
# Each remedy gets a formula computed by hand and checked against tinylm. The model is a small
# bag-of-words classifier on `default_sentiment`: each sentence becomes a vector of word
# counts, and a one-hidden-layer network maps it to two logits (negative, positive). With
# only 40 training sentences it over-fits within about ten epochs, and it trains in milliseconds.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.check import compare
from tinylm.data.labelled import (NEGATIVE_GROUPS, POSITIVE_GROUPS, SYNONYMS, augment, augmented,
                                  default_sentiment, sentiment_corpus, stratified_kfold, stratified_split)
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.metrics import average_probs, confidence, entropy, vote
from tinylm.nn import Dropout, Linear, Module
from tinylm.optim import Adam, AdamW
from tinylm.random import generator
from tinylm.tasks.lm import LanguageModeling, LMConfig
from tinylm.train import Trainer

rng = np.random.default_rng(0)
tinylm.manual_seed(0)
data = default_sentiment(400)
words = sorted({w for text in data.texts for w in text.split()} | set(SYNONYMS))   # every word augmentation can write
column = {w: i for i, w in enumerate(words)}

rest, test = stratified_split(data.labels, 0.5, seed=0)                            # 200 to learn from, 200 to test
pool, val = (rest[i] for i in stratified_split([data.labels[i] for i in rest], 0.5, seed=0))
train = pool[stratified_split([data.labels[i] for i in pool], 0.4, seed=0)[1]]     # 40 training sentences
train_set, val_set, test_set = data.subset(train), data.subset(val), data.subset(test)


def bag(examples):
    """(N, V) word counts of a Labelled set of sentences, and their labels (negative 0, positive 1)."""
    X = np.zeros((len(examples.texts), len(words)), dtype=np.float32)
    for row, text in enumerate(examples.texts):
        for w in text.split():
            X[row, column[w]] += 1
    return X, np.array([label == "positive" for label in examples.labels], dtype=np.int64)


class BagClassifier(Module):
    """word counts -> Linear -> ReLU -> Dropout -> Linear -> 2 logits."""

    def __init__(self, vocab, hidden, dropout=0.0):
        super().__init__()
        self.fc1, self.drop, self.fc2 = Linear(vocab, hidden), Dropout(dropout), Linear(hidden, 2)

    def forward(self, x):
        return self.fc2(self.drop(self.fc1(x).relu()))


def fit(train_xy, val_xy, epochs, hidden=256, dropout=0.0, weight_decay=0.0, seed=0):
    """Full-batch AdamW (lr 3e-3). Returns (model, curve): curve[e] = (train loss, val loss, val
    accuracy, mean confidence on the validation sentences it gets wrong) after epoch e. The model
    keeps the weights of the epoch with the lowest validation loss, as a trainer with early
    stopping does."""
    tinylm.manual_seed(seed)
    model = BagClassifier(len(words), hidden, dropout)
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    (X, y), (Xv, yv) = (tinylm.Tensor(train_xy[0]), train_xy[1]), (tinylm.Tensor(val_xy[0]), val_xy[1])
    curve, best = [], (np.inf, None)
    for _ in range(epochs):
        model.train()
        loss = F.cross_entropy(model(X), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with tinylm.no_grad():
            train_loss, logits = F.cross_entropy(model(X), y).item(), model(Xv)
        val_loss, p = F.cross_entropy(logits, yv).item(), F.softmax(logits, -1).numpy()
        wrong = p.argmax(1) != yv
        curve.append((train_loss, val_loss, 1 - wrong.mean(), p[wrong].max(1).mean() if wrong.any() else np.nan))
        if val_loss < best[0]:
            best = (val_loss, [q.numpy().copy() for q in model.parameters()])
    for q, saved in zip(model.parameters(), best[1]):
        q.data = saved
    return model, np.array(curve)


print(f"{len(words)} words; {len(train)} training, {len(val)} validation, {len(test)} test sentences")

# %% [markdown]
# ## 过拟合 An over-fitting curve
#
# 256 hidden units for 40 sentences is far more capacity than the data can pin down. The
# training loss falls towards zero as the network memorises the 40 examples. The validation
# loss falls for about ten epochs and then turns up. From there on, every step fits accidents
# of the training set, and the network grows *confidently wrong* on new sentences. The last
# column shows this: its average confidence on the validation sentences it gets wrong.

# %%
epochs = 40 if fast() else 150
plain_model, plain = fit(bag(train_set), bag(val_set), epochs)
for e in sorted({0, 5, 11, 20, epochs - 1}):
    print(f"epoch {e + 1:3d}: train loss {plain[e, 0]:.4f}, val loss {plain[e, 1]:.4f}, "
          f"val accuracy {plain[e, 2]:.3f}, confidence when wrong {plain[e, 3]:.3f}")
lowest = int(plain[:, 1].argmin())
check("the training loss goes to zero: the 40 sentences are memorised", plain[-1, 0] < 0.01)
check("the validation loss turns up after its minimum", plain[-1, 1] > 1.5 * plain[lowest, 1] and lowest < epochs // 2)
check("the over-fitted network is far surer of its mistakes", plain[-1, 3] > plain[lowest, 3] + 0.15)

# %% [markdown]
# ## 早停法 Early stopping
#
# Watch the validation loss after every epoch, and remember the best epoch so far. Stop once
# `patience` epochs in a row have failed to beat it, and go back to the best epoch's weights.
# Patience lets training ride out a small bump without stopping at the first one. Your turn:
# return the best epoch and the epoch at which training stops (the last epoch if the rule
# never fires). Epochs are counted from 0, and only a strictly lower loss counts as better.

# %%
def early_stopping(val_losses, patience):
    """(best_epoch, stop_epoch) for a sequence of validation losses, one per epoch."""
    # BEGIN SOLUTION hint: keep the best loss, its epoch and the epochs since it; stop when that count reaches patience
    best, best_epoch, stale = np.inf, 0, 0
    for epoch, loss in enumerate(val_losses):
        if loss < best:
            best, best_epoch, stale = loss, epoch, 0
        else:
            stale += 1
            if stale >= patience:
                return best_epoch, epoch
    return best_epoch, len(val_losses) - 1
    # END SOLUTION


def stopping_reference(val_losses, patience):
    """The same rule without a loop: the epochs since the best so far are e − argmin(losses[:e+1])."""
    losses = np.asarray(val_losses)
    since_best = np.arange(len(losses)) - np.array([losses[:e + 1].argmin() for e in range(len(losses))])
    fired = np.flatnonzero(since_best >= patience)
    stop = int(fired[0]) if len(fired) else len(losses) - 1
    return int(losses[:stop + 1].argmin()), stop


patience = 10
best_epoch, stop_epoch = stopping_reference(plain[:, 1], patience)
with tinylm.no_grad():
    Xv, yv = bag(val_set)
    restored = F.cross_entropy(plain_model(tinylm.Tensor(Xv)), yv).item()
print(f"patience {patience}: best epoch {best_epoch + 1}, stop after epoch {stop_epoch + 1} of {epochs}; "
      f"val accuracy {plain[best_epoch, 2]:.3f} there vs {plain[-1, 2]:.3f} at the end, "
      f"val loss {plain[best_epoch, 1]:.3f} vs {plain[-1, 1]:.3f}")
check("early stopping saves most of the epochs", stop_epoch < epochs - 1)
check("the best-loss epoch is not the most accurate one, nor more accurate than the last",
      plain[best_epoch, 2] < plain[:, 2].max() and plain[best_epoch, 2] <= plain[-1, 2])
check("but its network is far less sure of its mistakes than the last epoch's",
      plain[best_epoch, 3] < plain[-1, 3] - 0.15)
check("the restored weights are the best epoch's", np.isclose(restored, plain[best_epoch, 1], atol=1e-6))

toy = [1.0, 0.8, 0.7, 0.72, 0.69, 0.75, 0.8, 0.9, 0.95, 0.5]
graded("your rule on a made-up curve: best epoch 4, stop at epoch 7 (patience 3)",
       lambda: tuple(early_stopping(toy, 3)) == (4, 7))
graded("a bump shorter than the patience does not stop training", lambda: tuple(early_stopping(toy, 6)) == (9, 9))
graded("your rule on the over-fitting curve matches the reference",
       lambda: all(tuple(early_stopping(list(plain[:, 1]), p)) == stopping_reference(plain[:, 1], p)
                   for p in (1, 3, patience)))

# %% [markdown]
# Stopping on the validation *loss* is not stopping on accuracy. Here the best-loss epoch is
# not the most accurate one, and not even as accurate as the last epoch (the line printed
# above): accuracy only asks on which side of ½ each probability falls, and it keeps creeping
# up while the loss gets worse. What goes bad after the best epoch is the probabilities: the
# network grows sure of its mistakes. Early stopping on the loss keeps the network whose
# confidence still means something, and the uncertainty section below depends on that. If
# accuracy is all you need, watch accuracy instead: `tinylm.tasks.classify` stops on validation
# accuracy (ties broken by the loss); for a language model the one `tinylm.train.Trainer` stops
# on the validation loss.
#
# ## 权重衰减 Weight decay (正则化, regularisation)
#
# L2 regularisation adds `(λ/2)‖w‖²` to the loss, so its gradient gains `λ w` and every step
# pulls the weights towards zero. With plain SGD that is the same as shrinking the weights by
# `(1 − lr λ)` each step. Adam breaks the equivalence, because it divides each gradient by its
# running size `√v̂`, and the `λ w` term gets divided too. AdamW (Loshchilov & Hutter)
# *decouples* the decay from the gradient:
#
# `w ← w (1 − lr λ)`, then the ordinary Adam step with `m̂ / (√v̂ + ε)`.
#
# One step by hand, with β = (0.9, 0.999). After the first step `m̂ = g` and `v̂ = g²`, so Adam
# moves each weight by about `lr · sign(g)`. The third weight gets no gradient at all:

# %%
w0, g0 = np.array([1.0, -2.0, 0.5]), np.array([0.2, -0.1, 0.0])
lr, lam, (b1, b2), eps = 0.1, 0.5, (0.9, 0.999), 1e-8


def adam_step(w, g):
    m_hat, v_hat = (1 - b1) * g / (1 - b1), (1 - b2) * g ** 2 / (1 - b2)          # first step: bias-corrected moments
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


adamw_hand = adam_step(w0 * (1 - lr * lam), g0)           # decay the weight, then an Adam step on g
adam_l2_hand = adam_step(w0, g0 + lam * w0)               # Adam with L2: λ w goes into the gradient


def one_step(optimizer_class, weight_decay):
    w = tinylm.Tensor(w0.copy(), requires_grad=True)
    w.grad = tinylm.Tensor(g0)
    optimizer_class([w], lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay).step()
    return w.numpy()


print("AdamW by hand", adamw_hand.round(6), " tinylm", one_step(AdamW, lam).round(6))
print("Adam + L2    ", adam_l2_hand.round(6), " tinylm", one_step(Adam, lam).round(6))
check("AdamW: w(1 − lr λ) then Adam, by hand = tinylm.optim.AdamW", np.allclose(adamw_hand, one_step(AdamW, lam)))
check("Adam with weight_decay folds λw into the gradient", np.allclose(adam_l2_hand, one_step(Adam, lam)))
check("AdamW shrinks the gradient-free weight by exactly lr·λ·w = 0.025",
      np.isclose(w0[2] - adamw_hand[2], lr * lam * w0[2]))
check("Adam + L2 moves it a full lr = 0.1, and a 10× smaller λ barely changes that",
      np.isclose(w0[2] - adam_l2_hand[2], lr) and np.isclose(w0[2] - one_step(Adam, lam / 10)[2], lr, atol=1e-6))

# %% [markdown]
# Under Adam, the strength λ hardly matters for a weight whose gradient is small: the
# normaliser turns any `λ w` into a step of size lr. AdamW's decay stays proportional to λ
# and to the weight. The L2 term's gradient, three ways, on a least-squares loss
# `½‖X w − y‖² + (λ/2)‖w‖²` whose gradient is `Xᵀ(X w − y) + λ w`:

# %%
X_ls, y_ls = rng.standard_normal((5, 3)), rng.standard_normal(5)


def l2_loss(w):
    residual = tinylm.Tensor(X_ls) @ w - tinylm.Tensor(y_ls)
    return 0.5 * (residual ** 2).sum() + 0.5 * lam * (w ** 2).sum()


report = compare(l2_loss, lambda g, w: {"w": g * (X_ls.T @ (X_ls @ w - y_ls) + lam * w)},
                 {"w": tinylm.Tensor(w0.copy(), requires_grad=True)})
print(report.table("½‖Xw − y‖² + (λ/2)‖w‖²: autograd vs numeric vs formula"))
check("the L2 gradient, three ways", report.passed)

# %% [markdown]
# ## Dropout
#
# During training, dropout zeroes each unit with probability p and multiplies the survivors by
# `1/(1 − p)`. A unit's expected value stays `(1 − p) · x/(1 − p) = x`, so at evaluation time
# the layer does nothing and the next layer sees inputs of the same size as in training. The
# network cannot rely on any single unit, because any unit may be missing. By hand, with the
# same random numbers as `tinylm.nn.functional.dropout` (tinylm draws one uniform number per
# element and keeps it when `u ≥ p`):

# %%
x_small, p_drop = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]), 0.5
tinylm.manual_seed(4)
keep = generator().random(x_small.shape) >= p_drop
by_hand = x_small * keep / (1 - p_drop)
tinylm.manual_seed(4)
by_tinylm = F.dropout(tinylm.Tensor(x_small), p_drop).numpy()
print("kept:\n", keep.astype(int), "\nby hand:\n", by_hand, "\ntinylm:\n", by_tinylm)
check("dropout by hand = tinylm.nn.functional.dropout", np.allclose(by_hand, by_tinylm))

tinylm.manual_seed(0)
ones = F.dropout(tinylm.ones(200_000, dtype=tinylm.float64), 0.3).numpy()
print(f"p = 0.3 on 200,000 ones: {np.mean(ones == 0):.4f} zeroed, mean {ones.mean():.4f}")
check("the expected value is preserved", abs(ones.mean() - 1) < 0.01 and abs(np.mean(ones == 0) - 0.3) < 0.01)
layer = Dropout(0.5)
x_t = tinylm.Tensor(x_small)
check("train mode: elements dropped", not np.allclose(layer.train()(x_t).numpy(), x_small))
check("eval mode: the identity", np.array_equal(layer.eval()(x_t).numpy(), x_small))

# %% [markdown]
# Dropout multiplies by a fixed mask, so its gradient is the same mask:
# `∂L/∂x = g ⊙ keep/(1 − p)`. (The mask must be the same in every call, so the function
# reseeds tinylm before each draw.)

# %%
def dropped(x):
    tinylm.manual_seed(4)
    return F.dropout(x, p_drop)


report = compare(dropped, lambda g, x: {"x": g * keep / (1 - p_drop)},
                 {"x": tinylm.Tensor(x_small, requires_grad=True)})
print(report.table("dropout: autograd vs numeric vs g ⊙ mask/(1 − p)"))
check("dropout's gradient, three ways", report.passed)

# %% [markdown]
# Now both on the over-fitting network: dropout 0.5 before the output layer and AdamW weight
# decay λ = 1 (a shrink of lr·λ = 0.3% per step). The training loss still gets small, but the
# validation loss climbs more slowly:

# %%
_, regular = fit(bag(train_set), bag(val_set), epochs, dropout=0.5, weight_decay=1.0)
for name, curve in (("plain", plain), ("dropout + weight decay", regular)):
    print(f"{name:23s} lowest val loss {curve[:, 1].min():.3f}, final val loss {curve[-1, 1]:.3f}, "
          f"final val accuracy {curve[-1, 2]:.3f}")
check("regularisation slows the over-fitting: a lower final validation loss", regular[-1, 1] < 0.8 * plain[-1, 1])

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve, colour in (("plain", plain, "C0"), ("dropout + weight decay", regular, "C1")):
        ax.plot(curve[:, 0], color=colour, linestyle=":", label=f"{name}: train")
        ax.plot(curve[:, 1], color=colour, label=f"{name}: validation")
    ax.axvline(best_epoch, color="gray", linestyle="--", label=f"early stopping's best epoch (patience {patience})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_ylim(0, 1.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    picture(fig, "14_overfitting.png")
except ImportError:
    print("(matplotlib not installed: no over-fitting plot)")

# %% [markdown]
# ## 数据增强 Data augmentation
#
# New training sentences can be made from old ones by small random edits that keep the label:
# insert a word, replace a word by a synonym, delete a word (`augment`'s fourth edit swaps two
# words). Replacement by hand: choose one of the words that has synonyms, then one of its
# synonyms, with the same two random draws `augment` makes.

# %%
sentence = "the food was not really good ."
hand_rng, lib_rng = np.random.default_rng(5), np.random.default_rng(5)
tokens = sentence.split()
candidates = [i for i, w in enumerate(tokens) if w in SYNONYMS]
i = candidates[hand_rng.integers(len(candidates))]
tokens[i] = SYNONYMS[tokens[i]][hand_rng.integers(len(SYNONYMS[tokens[i]]))]
replaced = augment(sentence, lib_rng, "replace")
print(f"replace by hand: {' '.join(tokens)!r}\nreplace, tinylm: {replaced!r}")
check("replacement by hand = augment(..., 'replace')", " ".join(tokens) == replaced)
for op in ("insert", "delete", "swap"):
    print(f"{op:7s} {augment(sentence, np.random.default_rng(1), op)!r}")
deletions = [augment(sentence, np.random.default_rng(s), "delete", n=3) for s in range(50)]
check("deletion never removes a negation (that would flip the label)", all("not" in d.split() for d in deletions))
positive_words = {w for group in POSITIVE_GROUPS for w in group}
negative_words = {w for group in NEGATIVE_GROUPS for w in group}
check("a synonym keeps the polarity: positive words are replaced by positive ones, negative by negative",
      all(set(SYNONYMS[w]) <= positive_words for w in positive_words)
      and all(set(SYNONYMS[w]) <= negative_words for w in negative_words))

# %% [markdown]
# `augmented` adds `copies` edited versions of every training sentence, each with one edit of
# a random kind. The 40 training sentences do not show every synonym, and a word the network
# never saw in training has an untrained column in its first layer. Augmentation shows it more
# words:

# %%
more = augmented(train_set, copies=4, seed=1)
seen_before, seen_after = ({w for t in texts for w in t.split()} for texts in (train_set.texts, more.texts))
print(f"{len(train_set.texts)} sentences -> {len(more.texts)} after augmentation, e.g. {more.texts[len(train)]!r}")
print(f"distinct words in training: {len(seen_before)} -> {len(seen_after)}; new: {sorted(seen_after - seen_before)}")
check("augmented() keeps every label and multiplies the data by 1 + copies",
      len(more.texts) == 5 * len(train) and more.labels == train_set.labels * 5)
check("augmentation shows the network words its training set lacked", len(seen_after) > len(seen_before))
_, with_augmentation = fit(bag(more), bag(val_set), epochs)
for name, curve in (("40 sentences", plain), ("40 + 160 augmented", with_augmentation)):
    e = int(curve[:, 1].argmin())
    print(f"{name:19s} lowest val loss {curve[e, 1]:.3f} (epoch {e + 1}), val accuracy there {curve[e, 2]:.3f}")
augmented_best = int(with_augmentation[:, 1].argmin())
check("augmentation does not help here: the lowest validation loss is no lower, the accuracy there no higher",
      with_augmentation[augmented_best, 1] >= plain[:, 1].min() - 0.005
      and with_augmentation[augmented_best, 2] <= plain[lowest, 2])

# %% [markdown]
# Here the edited copies do not help: the lowest validation loss is no lower, and the accuracy
# there no higher. Two new words are little, and augmentation cannot fix what a bag of words
# cannot see. In "dull but great" the word after "but" decides the label, and word counts lose
# the order. Edits of the same 40 sentences add no such information. More real sentences do:
# trained on 160, the same network is more accurate than on 40 (the cross-validation below
# checks it), and an order-aware model, such as lesson 11's fine-tuned GPT, can read "but".
# Augmentation can pay off when the test data use words and phrasings the training data lack,
# which is the usual case with real text and a small labelled set; it did not here.
#
# ## 交叉验证 Cross-validation
#
# One validation split gives one number, and with 100 validation sentences that number is
# noisy. k-fold cross-validation splits the data into k folds and trains k times. Each time a
# different fold validates and the other k − 1 train. Every example is validated on exactly
# once. `stratified_kfold` deals each label round the folds like cards, so every fold keeps
# the label balance. The checks by hand:

# %%
k = 5
rest_labels = [data.labels[i] for i in rest]
folds = stratified_kfold(rest_labels, k, seed=0)
validated = np.sort(np.concatenate([v for _, v in folds]))
positives = [sum(rest_labels[i] == "positive" for i in v) for _, v in folds]
print("fold sizes", [len(v) for _, v in folds], "positives per fold", positives)
check("every example is validated on exactly once", np.array_equal(validated, np.arange(len(rest))))
check("a fold's training and validation parts never overlap",
      all(not set(t) & set(v) and len(t) + len(v) == len(rest) for t, v in folds))
check("each fold keeps the label balance (within one)", max(positives) - min(positives) <= 1)

# %% [markdown]
# Cross-validation for 选择最佳模型 (choosing a model): the plain network against the
# regularised one, each trained `cv_epochs` epochs on four folds (160 sentences) and scored on
# the fifth. The settings are compared on the mean over folds, with the spread to show how
# much one split alone could mislead:

# %%
cv_epochs = 10 if fast() else 30
cv = {}
for name, settings in (("plain", {}), ("dropout + weight decay", {"dropout": 0.5, "weight_decay": 1.0})):
    scores = [fit(bag(data.subset(rest[t])), bag(data.subset(rest[v])), cv_epochs, **settings)[1][-1, 1:3]
              for t, v in folds]
    cv[name] = np.array(scores)                                      # (k, 2): final val loss, val accuracy
    print(f"{name:23s} fold accuracies {cv[name][:, 1].round(3)}, mean {cv[name][:, 1].mean():.3f} "
          f"± {cv[name][:, 1].std():.3f}; mean val loss {cv[name][:, 0].mean():.3f}")
chosen = min(cv, key=lambda name: cv[name][:, 0].mean())
print("lower mean validation loss:", chosen)
check("the folds disagree: one split alone is a noisy estimate", all(np.ptp(s[:, 1]) > 0 for s in cv.values()))
check("trained on 160 real sentences, the plain network is more accurate than on 40",
      cv["plain"][:, 1].mean() > plain[best_epoch, 2])

# %% [markdown]
# ## 欠拟合 Under-fitting
#
# An under-fitting model has a high loss on its *training* data, and its validation loss is
# about as high. There is no gap, because it has not learned enough to over-fit. Two GPT
# language models trained by `tinylm.train.Trainer` on the same reviews for the same number of
# steps: one with 4-dimensional embeddings, one with 32. The remedy the article names first,
# 增加模型复杂度 (a bigger model), lowers both losses:

# %%
corpus_file = output_dir() / "14_reviews.txt"
corpus_file.write_text(sentiment_corpus(300), encoding="utf-8")
lm_losses = {}
for width, heads in ((4, 1), (32, 2)):
    cfg = LMConfig(data=str(corpus_file), tokenizer="word", n_layer=1, n_head=heads, n_embd=width, block_size=32,
                   batch_size=16, max_iters=60 if fast() else 300, lr=3e-3, min_lr=3e-4, warmup_iters=10,
                   eval_interval=60 if fast() else 300, eval_iters=8, weight_decay=0.0,
                   out=str(output_dir() / f"14_lm_{width}"), progress=False, seed=0)
    final = Trainer(LanguageModeling(cfg), log=lambda line: None).run()["evals"][-1]
    lm_losses[width] = (final["train_loss"], final["val_loss"])
    print(f"n_embd {width:2d}: train loss {final['train_loss']:.3f}, val loss {final['val_loss']:.3f}")
check("the small model under-fits: its training loss is far above the bigger model's",
      lm_losses[4][0] > lm_losses[32][0] + 0.3)
check("...with no over-fitting gap (val ≈ train)", abs(lm_losses[4][1] - lm_losses[4][0]) < 0.15)
check("the bigger model lowers the validation loss too", lm_losses[32][1] < lm_losses[4][1] - 0.3)

# %% [markdown]
# ## 不确定性 Uncertainty: confidence, entropy, voting, averaging (001.uncertainty)
#
# For a predicted distribution p over C classes:
#
# * 置信度 confidence `max_c p_c`: 1 when sure, 1/C when guessing;
# * entropy `H(p) = −Σ_c p_c log p_c`: 0 when sure, log C when guessing;
# * 投票 hard voting over M models: each model votes for its argmax, and the most votes win;
# * averaging (soft voting) `p̄ = (1/M) Σ_m p_m`, then `argmax p̄`. A confident model counts
#   for more than a hesitant one.
#
# Three models, four examples, three classes, by hand and with `tinylm.metrics`:

# %%
probs = np.array([[[0.70, 0.20, 0.10], [0.40, 0.35, 0.25], [0.10, 0.10, 0.80], [0.34, 0.33, 0.33]],
                  [[0.60, 0.30, 0.10], [0.10, 0.80, 0.10], [0.20, 0.60, 0.20], [0.05, 0.90, 0.05]],
                  [[0.50, 0.10, 0.40], [0.45, 0.45, 0.10], [0.30, 0.40, 0.30], [0.30, 0.40, 0.30]]])
conf_hand = probs.max(-1)
entropy_hand = -(probs * np.log(probs)).sum(-1)
votes = probs.argmax(-1)                                                    # (models, examples)
hard_hand = [int(np.bincount(votes[:, n], minlength=3).argmax()) for n in range(4)]   # ties: the smaller class
soft_mean = probs.mean(0)
print("confidence\n", conf_hand.round(3), "\nentropy\n", entropy_hand.round(3))
print("each model's vote per example\n", votes, "\nhard vote", hard_hand, " soft vote", soft_mean.argmax(-1))
check("confidence by hand = tinylm.metrics.confidence", np.allclose(conf_hand, confidence(probs)))
check("entropy by hand = tinylm.metrics.entropy", np.allclose(entropy_hand, entropy(probs)))
check("hard vote by hand = tinylm.metrics.vote", hard_hand == vote(list(votes)))
check("soft vote by hand = tinylm.metrics.average_probs",
      np.allclose(soft_mean, average_probs(list(probs))[0]) and np.array_equal(soft_mean.argmax(-1),
                                                                              average_probs(list(probs))[1]))
check("example 3: two hesitant votes beat a confident one (hard), the confident one wins the average (soft)",
      hard_hand[2] == 1 and soft_mean[2].argmax() == 2)

# %% [markdown]
# A model trained to be sure of itself pushes its entropy down. The entropy of `softmax(z)` as
# a function of the logits has gradient `∂H/∂z_k = −p_k (log p_k + H)`. Three ways:

# %%
z_small = np.array([1.0, -0.5, 2.0, 0.3])


def softmax_entropy(z):
    return -(F.softmax(z) * F.log_softmax(z)).sum()


def entropy_gradient(g, z):
    p = np.exp(z - z.max())
    p /= p.sum()
    H = -(p * np.log(p)).sum()
    return {"z": -g * p * (np.log(p) + H)}


report = compare(softmax_entropy, entropy_gradient, {"z": tinylm.Tensor(z_small, requires_grad=True)})
print(report.table("H(softmax(z)): autograd vs numeric vs −p(log p + H)"))
check("the entropy's gradient, three ways", report.passed)

# %% [markdown]
# Your turn: the soft vote. Average the M models' probability arrays (each of shape (..., C))
# and predict the class with the highest mean, the smaller class on a tie.

# %%
def soft_vote(probs_list):
    """(mean probabilities, predicted class) of a list of M arrays of shape (..., C)."""
    # BEGIN SOLUTION hint: stack the M arrays, take the mean over the model axis, then argmax over the last axis
    mean = np.mean(np.stack(probs_list), axis=0)
    return mean, mean.argmax(-1)
    # END SOLUTION


graded("your soft vote on the table equals average_probs",
       lambda: np.allclose(soft_vote(list(probs))[0], soft_mean)
       and np.array_equal(soft_vote(list(probs))[1], average_probs(list(probs))[1]))
graded("a single model's soft vote is that model's own prediction",
       lambda: np.array_equal(soft_vote([probs[1]])[1], probs[1].argmax(-1)))

# %% [markdown]
# ## 集成学习 An ensemble of small classifiers
#
# Seven networks (three in fast mode), each trained with its own seed on its own bootstrap
# sample: 40 sentences drawn with replacement from the 40 training sentences. They make
# different mistakes, and averaging cancels part of them. Each member keeps its
# best-validation-loss weights (early stopping), and all are scored on the 200 test sentences.

# %%
members = 3 if fast() else 7
Xt, yt = bag(test_set)
member_probs = []
for seed in range(members):
    sample = train[np.random.default_rng(seed).integers(0, len(train), len(train))]
    model, _ = fit(bag(data.subset(sample)), bag(val_set), 20, hidden=64, dropout=0.3, weight_decay=0.01, seed=seed)
    model.eval()
    with tinylm.no_grad():
        member_probs.append(F.softmax(model(tinylm.Tensor(Xt)), -1).numpy().astype(np.float64))
member_acc = [float((p.argmax(1) == yt).mean()) for p in member_probs]
mean_probs, soft_pred = average_probs(member_probs)
hard_pred = np.array(vote([p.argmax(1) for p in member_probs]))
soft_acc, hard_acc = float((soft_pred == yt).mean()), float((hard_pred == yt).mean())
print("member test accuracies", np.round(member_acc, 3), f"mean {np.mean(member_acc):.3f}")
print(f"hard vote {hard_acc:.3f}, soft vote {soft_acc:.3f}")
check("the soft vote is at least as accurate as the average member", soft_acc >= np.mean(member_acc))
check("so is the hard vote", hard_acc >= np.mean(member_acc))
graded("your soft vote gives the ensemble's predictions", lambda: np.array_equal(soft_vote(member_probs)[1], soft_pred))

# %% [markdown]
# Is the ensemble's confidence worth anything? If it is, the predictions it is sure of should
# be right more often. Sort the test sentences by confidence and compare the two halves:

# %%
conf = confidence(mean_probs)
right = soft_pred == yt
order = np.argsort(-conf, kind="stable")
sure, unsure = order[:len(order) // 2], order[len(order) // 2:]
print(f"mean confidence: right {conf[right].mean():.3f}, wrong {conf[~right].mean():.3f}; "
      f"mean entropy: right {entropy(mean_probs)[right].mean():.3f}, wrong {entropy(mean_probs)[~right].mean():.3f}")
print(f"accuracy of the more confident half {right[sure].mean():.3f}, of the less confident half "
      f"{right[unsure].mean():.3f}")
check("right answers come with higher confidence than wrong ones", conf[right].mean() > conf[~right].mean())
check("...and lower entropy", entropy(mean_probs)[right].mean() < entropy(mean_probs)[~right].mean())
check("the more confident half is the more accurate one", right[sure].mean() > right[unsure].mean())
