# %% [markdown]
# # 文章中的 PyTorch 程序 The articles' programs, run and fixed (000.code.rnn, 000.code.lstm, 000.code.transformer, 002.code.imdb)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 最后时间步 — last time step — out[-1] in PyTorch's (seq, batch, feature) layout.
# * 批次维度 — batch dimension — the axis that counts the examples of a batch.
# * 填充 — padding — extra tokens that make the texts of a batch equally long.
# * 情感分析 — sentiment analysis — classifying a text as positive or negative.
# * 词表 — vocabulary — the tokens a model knows.
# * 编码器 / 解码器 — encoder / decoder — the two halves of the article's Transformer.
# * 变换器 — Transformer — the model of 000.code.transformer.
# * 输出层 — output layer — the last Linear, from the width to the classes.
# * 损失函数 — loss function — the cross-entropy the programs train on.
# * 优化器 / 学习率 — optimizer / learning rate — Adam and its step size.
#
# Two of the articles end with code. Article 000, §4 (具体最佳实践：代码实例和详细解释说明), gives
# three short PyTorch programs — an RNN classifier, an LSTM classifier and an encoder–decoder
# Transformer — and article 002, §5.2 (源代码详细实现和代码解读), an LSTM sentiment classifier
# for IMDB film reviews. Not one of them does what its text says:
#
# * **000.code.rnn** and **000.code.lstm** — the recurrent layer reads its input as
#   (time, batch, features), the program as (batch, time, features): the initial state gets
#   the wrong size, and the "last time step" it classifies is the last *sequence of the batch*.
# * **000.code.transformer** — the number of attention heads is passed where a hidden size was
#   meant, the decoder gets its two inputs in the wrong order, and the output layer does not
#   fit the model's width.
# * **002.code.imdb** — a data-loading API that no longer exists, an output layer with one
#   output per *word* for a two-class label, a prediction without a batch axis, and a Chinese
#   sentence given to an English vocabulary.
#
# tinylm's layers have PyTorch's names, arguments, defaults and shapes, so each program can be
# re-expressed in tinylm step for step (described here in our own words, with our own names).
# For each bug the lesson runs the program as the article has it and shows the failure — an
# error caught and printed, or a behaviour check that does not hold — then runs the corrected
# program through the same checks. You write three small pieces: picking the last time step in
# either layout, picking each text's last real token, and the decoder call.

# %%
import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm import nn
from tinylm.check import compare, rnn_formulas
from tinylm.check.attention_formulas import (decoder_layer, decoder_layer_backward, encoder_layer,
                                             encoder_layer_backward)
from tinylm.data import WordTokenizer
from tinylm.data.labelled import LabelSet, default_sentiment, stratified_split
from tinylm.lesson import check, fast, graded, output_dir, picture, pyplot
from tinylm.models.classifier import LSTMClassifier, LSTMClassifierConfig
from tinylm.optim import Adam

np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)
tinylm.manual_seed(0)


def error_of(action):
    """'ErrorType: message' of the error action() raises, or None when it runs through."""
    try:
        action()
    except (ValueError, IndexError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def influence(fn, x, axis):
    """D[i, j] = 1 when nudging x at index j along `axis` changes row i of fn(x) (NumPy in and out;
    the rows of the output are its first axis)."""
    base = fn(x)
    d = np.zeros((base.shape[0], x.shape[axis]), dtype=int)
    for j in range(x.shape[axis]):
        moved = x.copy()
        np.moveaxis(moved, axis, 0)[j] += 0.5          # moveaxis gives a view: this nudges moved itself
        d[:, j] = np.abs(fn(moved) - base).reshape(base.shape[0], -1).max(axis=1) > 1e-9
    return d


def run(module, *arrays):
    """A NumPy-in, NumPy-out call of a tinylm module, without recording a graph."""
    with tinylm.no_grad():
        return module(*(tinylm.Tensor(a) for a in arrays)).numpy()


# %% [markdown]
# ## 4.1–4.2 使用 PyTorch 实现 RNN 和 LSTM: the recurrent classifiers (000.code.rnn, 000.code.lstm)
#
# **What the program does.** A module holds an `nn.RNN` built from the input width and a hidden
# width alone — no other argument — and a Linear layer from the hidden width to the classes.
# Its forward pass makes an all-zero initial state of shape (1, *first axis of x*, hidden
# width), runs the RNN from it, indexes the RNN's output as `out[:, -1, :]` (the last position
# along the *second* axis) and puts that through the Linear layer. The LSTM program of §4.2 is
# the same with `nn.LSTM` and a second zero tensor for the cell state. Both treat x as
# (batch, time, features): the batch size is read from axis 0, and "the last step" is taken
# along axis 1.
#
# **How the layer reads its input.** A recurrent layer built without `batch_first=True` — in
# PyTorch and in tinylm alike — reads axis 0 as *time*: input (seq, batch, features), output
# (seq, batch, hidden), initial state (num_layers, batch, hidden) with batch = x.shape[1]. So
# the program and its layer disagree about which axis is which. Here it is in tinylm, one
# class for both articles' programs:

# %%
class ArticleClassifier(nn.Module):
    """000.code.rnn (cell=nn.RNN) and 000.code.lstm (cell=nn.LSTM) as printed, in tinylm."""

    def __init__(self, cell, n_features, n_hidden, n_classes):
        super().__init__()
        self.n_hidden = n_hidden
        self.recurrent = cell(n_features, n_hidden)         # batch_first=False: the layer reads axis 0 as time
        self.head = nn.Linear(n_hidden, n_classes)

    def forward(self, x):
        zeros = tinylm.zeros(1, x.shape[0], self.n_hidden, dtype=x.dtype)       # axis 0 taken for the batch
        state = (zeros, zeros) if isinstance(self.recurrent, nn.LSTM) else zeros
        out, _ = self.recurrent(x, state)
        return self.head(out[:, -1, :])                     # axis 1 is the batch: its last member


class SequenceClassifier(nn.Module):
    """The same, corrected: x is (seq, batch, features), the layer's own layout."""

    def __init__(self, cell, n_features, n_hidden, n_classes):
        super().__init__()
        self.n_hidden = n_hidden
        self.recurrent = cell(n_features, n_hidden)
        self.head = nn.Linear(n_hidden, n_classes)

    def forward(self, x):
        zeros = tinylm.zeros(1, x.shape[1], self.n_hidden, dtype=x.dtype)       # the batch is axis 1
        state = (zeros, zeros) if isinstance(self.recurrent, nn.LSTM) else zeros
        out, _ = self.recurrent(x, state)
        return self.head(out[-1])                           # the last time step of every sequence


# %% [markdown]
# ### The zero state does not fit unless batch = seq
#
# A batch of B = 4 sequences of T = 6 steps with 2 features. Whichever way round x is given,
# the program sizes its zero state by the wrong axis, and the layer refuses it:

# %%
cells = {"000.code.rnn": nn.RNN, "000.code.lstm": nn.LSTM}
B, T, FEATURES, HIDDEN = 4, 6, 2, 8
x_batch_major = rng.standard_normal((B, T, FEATURES))      # (batch, seq, features): as the program reads it
x_time_major = x_batch_major.transpose(1, 0, 2).copy()     # (seq, batch, features): as the layer reads it
pairs = {}
for name, cell in cells.items():
    tinylm.manual_seed(0)
    article = ArticleClassifier(cell, FEATURES, HIDDEN, 2).to(tinylm.float64)
    fixed = SequenceClassifier(cell, FEATURES, HIDDEN, 2).to(tinylm.float64)
    fixed.load_state_dict(article.state_dict())            # the same weights: only the forward differs
    pairs[name] = article, fixed
    for layout, x in (("(batch, seq, ·)", x_batch_major), ("(seq, batch, ·)", x_time_major)):
        error = error_of(lambda: run(article, x))
        print(f"{name}, x as {layout}: {error}")
        check(f"fails: {name} with x as {layout} and batch ≠ seq stops with a shape error", error is not None)
    check(f"passes: the corrected {name} classifies the batch, one row per sequence",
          run(fixed, x_time_major).shape == (B, 2))

# %% [markdown]
# ### When batch = seq it runs — and mixes up the sequences
#
# With B = T = 5 the shapes happen to line up and no error warns anyone. What does the program
# compute then? We nudge one sequence of the batch at a time and look which predictions move:
# `D[i, j] = 1` when changing sequence j changes prediction i. A classifier must give
# `D = I` — each prediction depends on its own sequence alone — and each prediction must
# depend on *every* step of its sequence.
#
# * x given as (batch, seq, ·), as the program means it: the layer runs its recurrence *across
#   the batch* (axis 0), so prediction i reads sequences 0..i — and of its own sequence only the
#   last step, which is the layer's "batch" column the program picks.
# * x given as (seq, batch, ·), the layer's layout: `out[:, -1, :]` is sequence B−1 at every
#   time step, so every one of the B "predictions" reads sequence B−1 alone.


# %%
def own_steps(model, batch_axis, x):
    """1 for each step of sequence 0 of x that moves prediction 0 (sequences along batch_axis)."""
    def predict_first(sequence):
        moved = x.copy()
        np.moveaxis(moved, batch_axis, 0)[0] = sequence
        return run(model, moved)[:1]
    return influence(predict_first, np.moveaxis(x, batch_axis, 0)[0].copy(), axis=0)[0]


N_SQ = 5
x_square = rng.standard_normal((N_SQ, N_SQ, FEATURES))
influences = {}
for name, (article, fixed) in pairs.items():
    influences[name] = {"as printed, x (batch, seq, ·)": influence(lambda x: run(article, x), x_square, axis=0),
                        "as printed, x (seq, batch, ·)": influence(lambda x: run(article, x), x_square, axis=1),
                        "corrected": influence(lambda x: run(fixed, x), x_square, axis=1)}
    steps_article, steps_fixed = own_steps(article, 0, x_square), own_steps(fixed, 1, x_square)
    for layout, d in influences[name].items():
        print(f"{name}, {layout}: D =\n{d}")
    print(f"{name}: the steps of sequence 0 that reach prediction 0: as printed {steps_article}, "
          f"corrected {steps_fixed}")
    d = influences[name]
    check(f"fails: {name}, x as (batch, seq, ·): prediction i reads sequences 0..i",
          np.array_equal(d["as printed, x (batch, seq, ·)"], np.tril(np.ones((N_SQ, N_SQ), dtype=int))))
    check(f"fails: {name}, x as (batch, seq, ·): prediction 0 reads only the last step of its sequence",
          steps_article.tolist() == [0] * (N_SQ - 1) + [1])
    check(f"fails: {name}, x as (seq, batch, ·): every prediction reads sequence B−1 alone",
          np.array_equal(d["as printed, x (seq, batch, ·)"], np.eye(N_SQ, dtype=int)[[-1] * N_SQ]))
    check(f"passes: the corrected {name} gives D = I", np.array_equal(d["corrected"], np.eye(N_SQ, dtype=int)))
    check(f"passes: the corrected {name}: every step of a sequence reaches its prediction", steps_fixed.all())

# %% [markdown]
# The fix is one of two: keep the default layout, feed x as (seq, batch, ·), size the state by
# `x.shape[1]` and read `out[-1]` (as `SequenceClassifier` does); or build the layer with
# `batch_first=True`, and then x as (batch, seq, ·), the state by `x.shape[0]` and `out[:, -1]`
# are all right. (The state may also simply be left out: the layer then starts from zeros of
# the right shape itself.)
#
# ### 最后时间步 Your turn: the last time step in either layout
#
# A recurrent layer's output holds h_t for every step. A classifier wants the last one for
# every sequence, `(batch, hidden)`. Which index that is depends on the layout the layer was
# built with. For a one-layer network it is also the final state h_n the layer returns — which
# is how the checks below test your answer.

# %%
def last_time_step(out, batch_first):
    """Every sequence's output at its last step, (batch, hidden), from a recurrent layer's output:
    (seq, batch, hidden) when batch_first is False, (batch, seq, hidden) when it is True."""
    # BEGIN SOLUTION hint: time is axis 0 without batch_first, axis 1 with it: out[-1] or out[:, -1]
    return out[:, -1] if batch_first else out[-1]
    # END SOLUTION


# %%
def last_step_is_final_state(cell, batch_first):
    """Does last_time_step pick h_n of a one-layer `cell` for a batch of 3 sequences of 5 steps?"""
    layer = cell(FEATURES, HIDDEN, batch_first=batch_first)
    shape = (3, 5, FEATURES) if batch_first else (5, 3, FEATURES)
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    out, final = layer(tinylm.Tensor(x))
    h_n = final[0] if cell is nn.LSTM else final
    return np.allclose(last_time_step(out, batch_first).numpy(), h_n.numpy()[0])


def classify_with_your_last_step(x):
    """The corrected RNN classifier's predictions, read through last_time_step (x: (seq, batch, ·))."""
    model = pairs["000.code.rnn"][1]
    with tinylm.no_grad():
        out, _ = model.recurrent(tinylm.Tensor(x))
        return model.head(last_time_step(out, False)).numpy()


graded("RNN, batch_first=False: your last step is the final state h_n",
       lambda: last_step_is_final_state(nn.RNN, False))
graded("LSTM, batch_first=False: your last step is the final state h_n",
       lambda: last_step_is_final_state(nn.LSTM, False))
graded("LSTM, batch_first=True: your last step is the final state h_n",
       lambda: last_step_is_final_state(nn.LSTM, True))
graded("a classifier reading your last step gives D = I",
       lambda: np.array_equal(influence(classify_with_your_last_step, x_square, axis=1), np.eye(N_SQ, dtype=int)))

# %% [markdown]
# ## 三种梯度 The classifier's gradient, three ways
#
# Where does the loss enter the recurrent layer? Write the head as `z = h_T W_cᵀ + b_c` and let
# `v = ∂L/∂z` (batch, classes). Then
#
#     ∂L/∂W_c = vᵀ h_T,    ∂L/∂b_c = Σ_batch v,    ∂L/∂h_T = v W_c
#
# and the loss reaches the layer's outputs at one place only: `∂L/∂out[t] = 0` before the last
# step and `∂L/∂out[T] = v W_c` at it. From there backpropagation through time carries it back
# (lessons 02 and 03; here the engine's BPTT formulas `rnn_formulas.rnn_bptt` and `lstm_bptt`).
# This formula against autograd and central differences, on 3 sequences of 3 steps: first for
# the corrected readout `out[-1]`, then for the article's `out[:, -1, :]` — with batch = seq it
# has the same shape, so only the numbers can tell them apart.

# %%
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def last_state(input, h0, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, c0=None):
    """h_T of a one-layer tanh RNN (c0 None) or LSTM (gates i, f, g, o), in NumPy; rows are batch items."""
    h, c = h0[0], None if c0 is None else c0[0]
    for x_t in input:
        a = x_t @ weight_ih_l0.T + bias_ih_l0 + h @ weight_hh_l0.T + bias_hh_l0
        if c is None:
            h = np.tanh(a)
        else:
            i, f, g, o = np.split(a, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
    return h


def classifier_formula(bptt):
    """The hand gradient of z = h_T W_cᵀ + b_c on top of a recurrent layer whose BPTT is `bptt`."""
    def formula(grad_out, weight, bias, **recurrent):
        d_out = np.zeros(recurrent["input"].shape[:2] + (weight.shape[1],))
        d_out[-1] = grad_out @ weight                      # the loss meets the outputs at the last step only
        return {"weight": grad_out.T @ last_state(**recurrent), "bias": grad_out.sum(axis=0),
                **bptt(d_out, **recurrent)}
    return formula


def classifier_case(cell, readout):
    """compare()'s (fn, inputs): a recurrent layer (2 -> 3) and a 2-class head on 3 sequences of
    3 steps, the head reading readout(output of the layer)."""
    layer = cell(2, 3).to(tinylm.float64)
    case_rng = np.random.default_rng(5)
    states = ("h0", "c0") if cell is nn.LSTM else ("h0",)
    shapes = {"input": (3, 3, 2), **{s: (1, 3, 3) for s in states},
              **{n: p.shape for n, p in layer.named_parameters()}, "weight": (2, 3), "bias": (2,)}
    inputs = {n: tinylm.Tensor(case_rng.uniform(-0.8, 0.8, s), requires_grad=True) for n, s in shapes.items()}

    def fn(weight, bias, **recurrent):
        return readout(rnn_formulas.run_layer(layer, **recurrent)[0]) @ weight.T + bias

    return fn, inputs


readouts = {"corrected, out[-1]": lambda out: out[-1], "as printed, out[:, -1, :]": lambda out: out[:, -1, :]}
for name, (cell, bptt) in {"000.code.rnn": (nn.RNN, rnn_formulas.rnn_bptt),
                           "000.code.lstm": (nn.LSTM, rnn_formulas.lstm_bptt)}.items():
    reports = {}
    for readout_name, readout in readouts.items():
        fn, inputs = classifier_case(cell, readout)
        reports[readout_name] = compare(fn, classifier_formula(bptt), inputs)
        print(reports[readout_name].table(f"{name} {readout_name}: autograd vs numeric vs the last-step formula"))
    check(f"passes: {name} corrected, all three gradients agree", reports["corrected, out[-1]"].passed)
    check(f"fails: {name} as printed, the loss enters the layer elsewhere than the last step",
          not reports["as printed, out[:, -1, :]"].passed)

# %% [markdown]
# ## 训练 Training both on a toy task
#
# Each sequence is T = 8 numbers drawn uniformly from [−1, 1]; its class is 1 when their sum is
# positive. The corrected classifiers train on batches of 64 sequences, (seq, batch, ·). The
# article's program runs at all only with batch = seq, so it trains on batches of 8 sequences
# given as (batch, seq, ·), the way it means them.
#
# How well *can* the printed program do? Its prediction for a sequence sees, of that sequence,
# only the last number (and the last numbers of the sequences before it in the batch, which say
# nothing about its label). From the last number alone the best guess is its sign. On average
# that rule is right about 62% of the time (measured below on 200,000 fresh sequences), and no
# program that sees only the last number does better on average. A test set of 256 sequences
# gives each score a sampling error of about ±0.03 (one standard error), so a printed model
# can land a little above the rule's own test score by chance, but not far above its average.

# %%
T_TOY, STEPS = 8, (60 if fast() else 150)


def toy_data(n, seed):
    """n sequences (T_TOY, n, 1) of uniform numbers in [-1, 1], and whether each one's sum is positive."""
    x = np.random.default_rng(seed).uniform(-1, 1, (T_TOY, n, 1)).astype(np.float32)
    return x, (x.sum(axis=(0, 2)) > 0).astype(np.int64)


x_train, y_train = toy_data(1024, 1)
x_test, y_test = toy_data(256, 2)
last_number_rule = np.mean((x_test[-1, :, 0] > 0) == y_test)
x_many, y_many = toy_data(200_000, 4)
rule_average = np.mean((x_many[-1, :, 0] > 0) == y_many)      # the rule's accuracy on average
standard_error = np.sqrt(rule_average * (1 - rule_average) / len(y_test))


def train_classifier(model, batch_major):
    """STEPS steps of Adam on the cross-entropy; the loss at every step. batch_major: batches of
    T_TOY sequences, given as (batch, seq, ·)."""
    optimizer, batch_rng, losses = Adam(model.parameters(), lr=0.02), np.random.default_rng(3), []
    for _ in range(STEPS):
        pick = batch_rng.choice(len(y_train), T_TOY if batch_major else 64, replace=False)
        x = x_train[:, pick].transpose(1, 0, 2) if batch_major else x_train[:, pick]
        loss = F.cross_entropy(model(tinylm.Tensor(x)), y_train[pick])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def toy_accuracy(model, batch_major):
    if batch_major:   # groups of T_TOY test sequences, each group given as (batch, seq, ·)
        logits = np.concatenate([run(model, x_test[:, k:k + T_TOY].transpose(1, 0, 2))
                                 for k in range(0, len(y_test), T_TOY)])
    else:
        logits = run(model, x_test)
    return np.mean(logits.argmax(axis=1) == y_test)


curves = {}
for name, cell in cells.items():
    for version, model_class, batch_major in (("corrected", SequenceClassifier, False),
                                              ("as printed", ArticleClassifier, True)):
        tinylm.manual_seed(0)
        model = model_class(cell, 1, 16, 2)
        curves[f"{name}, {version}"] = train_classifier(model, batch_major)
        toy_score = toy_accuracy(model, batch_major)
        print(f"{name}, {version}: test accuracy {toy_score:.3f} after {STEPS} steps")
        if version == "corrected":
            check(f"passes: the corrected {name} classifies the sums with accuracy > 0.8", toy_score > 0.8)
        else:
            check(f"fails: {name} as printed stays within 3 standard errors of the last-number rule's average",
                  toy_score < rule_average + 3 * standard_error)
print(f"the last-number rule: {last_number_rule:.3f} on the test set, {rule_average:.3f} on average (the best a "
      f"program that sees only the last number can do on average); one standard error on {len(y_test)} test "
      f"sequences: {standard_error:.3f}")
check("the last-number rule is right about 62% of the time on average", abs(rule_average - 0.62) < 0.01)
check("its test score is within 2 standard errors of its average",
      abs(last_number_rule - rule_average) < 2 * standard_error)

# %% [markdown]
# ## 4.3 使用 PyTorch 实现 Transformer: the encoder–decoder (000.code.transformer)
#
# **What the program does.** Its constructor takes an input width, a "hidden size" and an
# output size (n_features, n_hidden and n_out below). It stacks two encoder layers built as
# `TransformerEncoderLayer(n_features, n_hidden)` into an encoder, two decoder layers built the
# same way into a decoder, and ends with `Linear(n_hidden, n_out)`. Its forward pass encodes x,
# calls the decoder with the encoder's output as the first argument and x as the second, and
# applies the Linear layer. There is no embedding, so x is already vectors of n_features
# numbers. Three mistakes:
#
# 1. The second argument of both layer constructors is **nhead**, the number of attention
#    heads, not a hidden size. The width of the feed-forward sublayer is the third argument,
#    `dim_feedforward`, which is left at its default, 2048.
# 2. The decoder's signature is `decoder(tgt, memory)`: the target sequence first, then the
#    encoder's output (the "memory"). The program passes them the other way round.
# 3. Every layer keeps the model width d_model = n_features, so the decoder's output has
#    n_features features; `Linear(n_hidden, …)` does not fit it.

# %%
class ArticleTransformer(nn.Module):
    """000.code.transformer as printed, in tinylm (default layout (seq, batch, features), dropout 0.1)."""

    def __init__(self, n_features, n_hidden, n_out):
        super().__init__()
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(n_features, n_hidden), 2)   # 2nd: nhead
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(n_features, n_hidden), 2)
        self.head = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        encoded = self.encoder(x)
        return self.head(self.decoder(encoded, x))         # (encoded, x): the decoder wants (tgt, memory)


class EncoderDecoder(nn.Module):
    """000.code.transformer corrected: nhead heads and a feed-forward width of its own; the decoder
    reads the target under a causal mask and attends to the encoder's output; a head as wide as
    the model."""

    def __init__(self, d_model, nhead, dim_feedforward, output_size, num_layers=2):
        super().__init__()
        block = dict(dim_feedforward=dim_feedforward, dropout=0.0)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model, nhead, **block), num_layers)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(d_model, nhead, **block), num_layers)
        self.head = nn.Linear(d_model, output_size)

    def forward(self, src, tgt):
        memory = self.encoder(src)                                               # (S, N, d_model)
        mask = nn.generate_square_subsequent_mask(tgt.shape[0], dtype=tgt.dtype)
        return self.head(self.decoder(tgt, memory, tgt_mask=mask))               # (T, N, output_size)


# %% [markdown]
# ### Heads, not hidden units
#
# With n_features = 16, a "hidden size" of 32 asks for 32 heads over 16 features, which cannot
# be split; a hidden size of 8 builds — a model of 8 heads of 2 features each, with
# feed-forward sublayers 2048 wide:

# %%
E, NHEAD, FF, OUT, S_LEN, T_LEN, N_PAIRS = 16, 4, 32, 5, 6, 4, 2
error = error_of(lambda: ArticleTransformer(E, 32, OUT))
print("ArticleTransformer(16, 32, 5):", error)
check("fails: n_hidden = 32 becomes 32 heads, which do not divide 16 features", error is not None)

tinylm.manual_seed(0)
article_tf = ArticleTransformer(E, 8, OUT).to(tinylm.float64).eval()
attn, block = article_tf.encoder.layers[0].self_attn, article_tf.encoder.layers[0]
print(f"ArticleTransformer(16, 8, 5): {attn.num_heads} heads of width {attn.head_dim}, feed-forward width "
      f"{block.linear1.out_features}, {article_tf.num_parameters()} parameters")
check("fails: n_hidden = 8 builds 8 heads of 2 features and a feed-forward width of 2048",
      attn.num_heads == 8 and attn.head_dim == 2 and block.linear1.out_features == 2048)

# %% [markdown]
# ### The output layer does not fit
#
# A source of S = 6 vectors for a batch of 2, in the layers' layout (seq, batch, features):

# %%
src = rng.standard_normal((S_LEN, N_PAIRS, E))
tgt = rng.standard_normal((T_LEN, N_PAIRS, E))
error = error_of(lambda: run(article_tf, src))
print("article's forward:", error)
check("fails: the decoder's output has 16 features, Linear(8, 5) expects 8", error is not None)

# %% [markdown]
# ### 解码器的参数顺序 The decoder's arguments the wrong way round
#
# Fix the heads and the head width, and the program runs. What it computes is still not an
# encoder–decoder: the decoder's *target* is the encoder's output and its *memory* is x, so
# there is no target sequence at all, and the output has one row per source position. Take a
# real pair, a source of S = 6 and a target of T = 4, and the corrected model's layers; call
# the decoder both ways:
#
# * `decoder(memory, tgt)`, the article's order: S rows instead of T; a causal mask for the
#   T target tokens does not fit the S "queries"; and without one, every output row reads
#   every target token — including the ones it should be predicting.
# * `decoder(tgt, memory, tgt_mask=causal)`: T rows, and row i reads target tokens 0..i only.

# %%
tinylm.manual_seed(0)
fixed_tf = EncoderDecoder(E, NHEAD, FF, OUT).to(tinylm.float64)
memory = run(fixed_tf.encoder, src)
causal = nn.generate_square_subsequent_mask(T_LEN, dtype=np.float64)


def decode_swapped(target):
    with tinylm.no_grad():
        return fixed_tf.decoder(tinylm.Tensor(memory), tinylm.Tensor(target)).numpy()


def decode_right(target):
    with tinylm.no_grad():
        return fixed_tf.decoder(tinylm.Tensor(target), tinylm.Tensor(memory), tgt_mask=causal).numpy()


error = error_of(lambda: fixed_tf.decoder(tinylm.Tensor(memory), tinylm.Tensor(tgt), tgt_mask=causal))
d_swapped, d_right = influence(decode_swapped, tgt, axis=0), influence(decode_right, tgt, axis=0)
print(f"decoder(memory, tgt): shape {decode_swapped(tgt).shape}; with the causal mask: {error}\n"
      f"target tokens reaching each output row, article's order:\n{d_swapped}\n"
      f"decoder(tgt, memory, tgt_mask): shape {decode_right(tgt).shape}; target tokens reaching each row:\n{d_right}")
check("fails: decoder(memory, tgt) gives one row per source position (S), not per target token (T)",
      decode_swapped(tgt).shape == (S_LEN, N_PAIRS, E))
check("fails: the causal mask of the target does not fit the article's order", error is not None)
check("fails: in the article's order every output row reads every target token, the future included",
      d_swapped.all())
check("passes: decoder(tgt, memory, tgt_mask) gives (T, N, E)", decode_right(tgt).shape == (T_LEN, N_PAIRS, E))
check("passes: and row i reads target tokens 0..i only",
      np.array_equal(d_right, np.tril(np.ones((T_LEN, T_LEN), dtype=int))))

# %% [markdown]
# The whole corrected model, forward and backward: logits of shape (T, N, output_size), a
# cross-entropy against a target class for every target position, and a gradient for every
# parameter.

# %%
logits = fixed_tf(tinylm.Tensor(src), tinylm.Tensor(tgt))
classes = rng.integers(0, OUT, (T_LEN, N_PAIRS))
loss = F.cross_entropy(logits.reshape(-1, OUT), classes.reshape(-1))
loss.backward()
print(f"logits {tuple(logits.shape)}, cross-entropy {loss.item():.4f} (log 5 = {np.log(OUT):.4f} for a uniform guess)")
check("passes: the corrected model's logits are (T, N, output_size)", logits.shape == (T_LEN, N_PAIRS, OUT))
check("passes: every parameter gets a gradient",
      all(p.grad is not None and np.abs(p.grad.numpy()).max() > 0 for p in fixed_tf.parameters()))

# %% [markdown]
# ### 三种梯度 Its gradient, three ways: the source is reached through the memory only
#
# The chain rule across the encoder–decoder junction. With the engine's hand-derived
# per-layer backward formulas (tinylm/check/attention_formulas.py, checked one by one in
# lesson 07): the head sends `G W_head` into the top decoder layer; walking the decoder layers
# down, each returns the gradient for its target input *and* for the memory it attended to —
# every decoder layer reads the same memory, so those memory gradients **add up**; that sum
# then walks down through the encoder layers to the source. One source–target pair, the
# gradients with respect to the source and the target vectors:

# %%
encoder_params = [{n: p.numpy() for n, p in layer.named_parameters()} for layer in fixed_tf.encoder.layers]
decoder_params = [{n: p.numpy() for n, p in layer.named_parameters()} for layer in fixed_tf.decoder.layers]
head_weight = fixed_tf.head.weight.numpy()


def encoder_decoder_formula(grad_out, src, tgt):
    """dL/dsrc and dL/dtgt of head(decoder(tgt, encoder(src), causal mask)) for one unbatched pair."""
    memory, encoder_saved = src[None], []
    for p in encoder_params:
        memory, saved = encoder_layer(p, memory, NHEAD)
        encoder_saved.append(saved)
    y, decoder_saved = tgt[None], []
    mask = np.triu(np.full((len(tgt), len(tgt)), -np.inf), 1)
    for p in decoder_params:
        y, saved = decoder_layer(p, y, memory, NHEAD, tgt_mask=mask)
        decoder_saved.append(saved)
    d_y, d_memory = grad_out[None] @ head_weight, np.zeros_like(memory)     # through the head: G W_head
    for saved in reversed(decoder_saved):
        d_y, d_memory_layer, _ = decoder_layer_backward(d_y, saved)
        d_memory += d_memory_layer                                           # every decoder layer reads memory
    for saved in reversed(encoder_saved):
        d_memory, _ = encoder_layer_backward(d_memory, saved)
    return {"src": d_memory[0], "tgt": d_y[0]}


def swapped_call(src, tgt):
    """The article's order, head fixed: head(decoder(encoder(src), tgt)), no mask."""
    return fixed_tf.head(fixed_tf.decoder(fixed_tf.encoder(src), tgt))


GRAD_S, GRAD_T = (3, 2) if fast() else (S_LEN, T_LEN)     # every element is nudged twice: keep fast runs short
pair = {"src": tinylm.Tensor(rng.standard_normal((GRAD_S, E)), requires_grad=True),
        "tgt": tinylm.Tensor(rng.standard_normal((GRAD_T, E)), requires_grad=True)}
report = compare(lambda src, tgt: fixed_tf(src, tgt), encoder_decoder_formula, pair)
print(report.table("corrected encoder–decoder: autograd vs numeric vs the chained formulas"))
check("passes: the corrected call, all three gradients agree", report.passed)

equal_lengths = {"src": tinylm.Tensor(rng.standard_normal((GRAD_T, E)), requires_grad=True),
                 "tgt": pair["tgt"]}
report = compare(swapped_call, encoder_decoder_formula, equal_lengths)
print(report.table("article's order, S = T so that no shape gives it away: autograd vs numeric vs the formulas"))
check("fails: in the article's order the gradients are not those of an encoder–decoder", not report.passed)

# %% [markdown]
# ### 解码器调用 Your turn: the decoder call
#
# Write the middle of the corrected forward pass: run the encoder over the source, then the
# decoder over the target, attending to the encoder's output, under a causal mask so that
# target position i sees positions 0..i only.

# %%
def encode_then_decode(encoder, decoder, src, tgt):
    """The decoder's states for the target tgt (T, N, E) given the source src (S, N, E): (T, N, E)."""
    # BEGIN SOLUTION hint: memory = encoder(src); then decoder(tgt, memory, tgt_mask=a causal T×T mask)
    memory = encoder(src)
    mask = nn.generate_square_subsequent_mask(tgt.shape[0], dtype=tgt.dtype)
    return decoder(tgt, memory, tgt_mask=mask)
    # END SOLUTION


# %%
def your_decoding(source, target):
    with tinylm.no_grad():
        return encode_then_decode(fixed_tf.encoder, fixed_tf.decoder, tinylm.Tensor(source),
                                  tinylm.Tensor(target)).numpy()


graded("your call gives one row per target token, (T, N, E)", lambda: your_decoding(src, tgt).shape == tgt.shape)
graded("your call gives the corrected decoder states", lambda: np.allclose(your_decoding(src, tgt), decode_right(tgt)))
graded("with your call, row i reads target tokens 0..i only",
       lambda: np.array_equal(influence(lambda t: your_decoding(src, t), tgt, axis=0),
                              np.tril(np.ones((T_LEN, T_LEN), dtype=int))))
graded("with your call, every source vector reaches every row (through the memory)",
       lambda: influence(lambda s: your_decoding(s, tgt), src, axis=0).all())

# %% [markdown]
# ## 5.2 项目实战：IMDB 情感分析 The LSTM sentiment classifier (002.code.imdb)
#
# **What the program does.** It loads the IMDB film reviews through torchtext's old data API (a
# `Field` that tokenises with spaCy and lower-cases, `IMDB.splits`, then a `Dataset.zip` over
# examples turned into tensors), takes the vocabulary from the field, and builds a model: an
# embedding of 100 dimensions, an `LSTM(100, 128, batch_first=True)`, and a
# `Linear(128, vocab_size)` applied to the LSTM output at the last position, `x[:, -1, :]`. It
# trains with Adam (learning rate 10⁻³) and cross-entropy for 10 epochs, reports the mean test
# loss, and predicts: split a string on spaces, look each piece up in the vocabulary, run the
# model on that list of ids, take the argmax, and turn the class id back into a *vocabulary
# word*. The string it predicts is Chinese. The text around it says the data set has 25,000
# training and 2,500 test reviews. What goes wrong:
#
# * **The data API is gone.** torchtext moved `Field` and its datasets to `torchtext.legacy` in
#   version 0.9 and deleted them in 0.12; its development stopped altogether with 0.18 (2024).
#   `IMDB` was never in `torchtext.data` (it lived in `torchtext.datasets`, and its `splits`
#   wanted a field for the labels too), and `Dataset.zip` is not part of its documented API.
#   Here the data is tinylm's own labelled sentiment set (`default_sentiment`), its words
#   numbered by tinylm's `WordTokenizer` trained on the training texts.
# * **IMDB's size.** It has 50,000 labelled reviews, split evenly: 25,000 for training and
#   **25,000** for testing, not 2,500.
# * **The output layer**, the **padding**, the **missing batch axis** and the **Chinese
#   sentence** are shown below, on the same small model (24-dimensional embedding, 32 hidden
#   units instead of 100 and 128, so it trains in seconds).

# %%
data = default_sentiment(400)
labels = LabelSet.from_labels(data.labels)
train_rows, test_rows = stratified_split(data.labels, 0.25)
train_set, test_set = data.subset(train_rows), data.subset(test_rows)
tokenizer = WordTokenizer.train("\n".join(train_set.texts))


def batch_of(texts):
    """(ids, lengths): the texts' word ids right-padded with 0 to the longest, and their lengths."""
    encoded = [tokenizer.encode(text) for text in texts]
    ids = np.zeros((len(encoded), max(map(len, encoded))), dtype=np.int64)
    for row, words in enumerate(encoded):
        ids[row, :len(words)] = words
    return ids, np.array([len(words) for words in encoded])


train_ids, train_lengths = batch_of(train_set.texts)
test_ids, test_lengths = batch_of(test_set.texts)
y_train_s, y_test_s = labels.encode(train_set.labels), labels.encode(test_set.labels)
V = tokenizer.vocab_size
print(f"{len(train_set.texts)} training and {len(test_set.texts)} test sentences, {V} words "
      f"(id 0 is {tokenizer.tokens[0]!r}, the unknown word and the padding)")
print("e.g.", repr(test_set.texts[0]), "->", test_set.labels[0])


class ArticleSentiment(nn.Module):
    """002.code.imdb's model as printed, in tinylm: embedding, batch-first LSTM, and one output per
    vocabulary word, read at the last column of the batch."""

    def __init__(self, n_words, n_embed, n_hidden):
        super().__init__()
        self.embed = nn.Embedding(n_words, n_embed)
        self.lstm = nn.LSTM(n_embed, n_hidden, batch_first=True)
        self.head = nn.Linear(n_hidden, n_words)           # one output per word, for a two-class label

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.head(out[:, -1, :])                     # the last column: padding for the shorter texts


def fit(forward, parameters, epochs):
    """Adam (lr 0.01) on the cross-entropy over the training sentences, 10 batches an epoch;
    the mean loss of each epoch."""
    optimizer, batch_rng, history = Adam(parameters, lr=0.01), np.random.default_rng(4), []
    for _ in range(epochs):
        losses = []
        for rows in np.array_split(batch_rng.permutation(len(y_train_s)), 10):
            loss = F.cross_entropy(forward(train_ids[rows], train_lengths[rows]), y_train_s[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    return history


EPOCHS = 4 if fast() else 8
tinylm.manual_seed(0)
article_model = ArticleSentiment(V, 24, 32)
with tinylm.no_grad():
    untrained = article_model(test_ids).numpy().argmax(axis=1)
article_history = fit(lambda ids, lengths: article_model(ids), article_model.parameters(), EPOCHS)

tinylm.manual_seed(0)
classifier = LSTMClassifier(LSTMClassifierConfig(V, num_classes=len(labels), n_embd=24, n_hidden=32, dropout=0.0))
classifier_history = fit(classifier, classifier.parameters(), EPOCHS)
classifier.eval()
with tinylm.no_grad():
    accuracy = np.mean(classifier(test_ids, test_lengths).numpy().argmax(axis=1) == y_test_s)
print(f"LSTMClassifier: test accuracy {accuracy:.3f} after {EPOCHS} epochs")
check("passes: the corrected classifier (tinylm.models.classifier.LSTMClassifier) reaches accuracy > 0.8",
      accuracy > 0.8)

# %% [markdown]
# ### 输出层 One output per word for a two-class label
#
# The labels are class ids 0 and 1. Cross-entropy only needs each label to be a valid index
# into the logits, and 0 and 1 are valid among V, so nothing complains: the program trains a
# V-way classifier of which two classes ever occur. Before training its argmax lands almost
# anywhere among the V words; after training, V − 2 classes still take probability, and the
# article's `predict` turns the winning class id back into a *word* of the vocabulary:

# %%
with tinylm.no_grad():
    probabilities = F.softmax(article_model(test_ids), dim=-1).numpy()
predicted = probabilities.argmax(axis=1)
as_words = {int(c): tokenizer.tokens[c] for c in np.unique(predicted)}
print(f"untrained: {np.mean(untrained > 1):.0%} of the predicted classes are word ids outside {{0, 1}}, e.g. "
      f"{sorted(set(untrained.tolist()))[:8]}")
print(f"trained: probability left on the {V - 2} classes no label uses: {probabilities[:, 2:].sum(axis=1).mean():.4f}"
      f" on average; predict() turns the predicted classes into the words {as_words}")
check("fails: the untrained V-way head predicts mostly word ids that are no class", np.mean(untrained > 1) > 0.5)
check("fails: the head has V outputs, V − 2 of them never a target", article_model.head.weight.shape[0] == V)
check("fails: the article's predict returns vocabulary words, not label names",
      not set(as_words.values()) & set(labels.names))
check("passes: the corrected head has one output per class", classifier.head.weight.shape[0] == len(labels))

# %% [markdown]
# ### 填充 The last column is padding
#
# Texts in a batch differ in length, so the shorter ones are padded on the right. The article
# reads every text at the last column, which for a short text is a padding step: its prediction
# then depends on how long the *other* texts in its batch are. `LSTMClassifier` reads each row
# at its own last real token (its `lengths - 1`). Here every batch was cut from sets padded to
# their longest sentence, so most sentences reached the printed model's head only after several
# padding steps, and it learned next to nothing. A short test sentence, alone and then batched
# with the longest:

# %%
short, longest = int(np.argmin(test_lengths)), int(np.argmax(test_lengths))
alone_ids, alone_lengths = batch_of([test_set.texts[short]])
padded_ids, padded_lengths = batch_of([test_set.texts[short], test_set.texts[longest]])
with tinylm.no_grad():
    article_alone, article_padded = article_model(alone_ids).numpy()[0], article_model(padded_ids).numpy()[0]
    fixed_alone = classifier(alone_ids, alone_lengths).numpy()[0]
    fixed_padded = classifier(padded_ids, padded_lengths).numpy()[0]
print(f"{test_set.texts[short]!r}: {alone_ids.shape[1]} tokens, padded to {padded_ids.shape[1]}")
check("fails: the article's prediction for a text changes when a longer text joins its batch",
      not np.allclose(article_alone, article_padded))
check("passes: LSTMClassifier's does not", np.allclose(fixed_alone, fixed_padded))
article_accuracy = np.mean(probabilities[:, :2].argmax(axis=1) == y_test_s)
print(f"test accuracy: as printed {article_accuracy:.3f}, LSTMClassifier {accuracy:.3f}")
check("fails: trained on padded batches read at the last column, the printed model stays near chance (< 0.7)",
      article_accuracy < 0.7)


# %% [markdown]
# ### 最后一个真实词 Your turn: each text's last real token
#
# Given the LSTM's batch-first outputs `(batch, seq, hidden)` and each text's length, pick
# every row's output at its own last real token: `(batch, hidden)`.

# %%
def last_real_token(out, lengths):
    """out (B, T, H) batch first, lengths (B,) the real tokens of each row -> (B, H)."""
    # BEGIN SOLUTION hint: row b's last real token sits at position lengths[b] - 1: index rows and positions together
    return out[np.arange(len(lengths)), np.asarray(lengths) - 1]
    # END SOLUTION


# %%
def classify_with_your_readout(ids, lengths):
    with tinylm.no_grad():
        out, _ = classifier.rnn(classifier.embed(ids))
        return classifier.head(last_real_token(out, lengths)).numpy()


graded("your readout gives LSTMClassifier's logits on the test set",
       lambda: np.allclose(classify_with_your_readout(test_ids, test_lengths),
                           classifier(test_ids, test_lengths).numpy()))
graded("with your readout a text's prediction ignores its batch's padding",
       lambda: np.allclose(classify_with_your_readout(alone_ids, alone_lengths)[0],
                           classify_with_your_readout(padded_ids, padded_lengths)[0]))

# %% [markdown]
# ### 批次维度 The prediction has no batch axis
#
# `predict` turns one text into a flat list of ids, shape (T,). The embedding makes that
# (T, 24), which a batch-first LSTM takes as one *unbatched* sequence and answers with
# (T, 32) — and the three-index `out[:, -1, :]` has nothing to index. `LSTMClassifier` says
# what it wants instead; one text is a batch of one, `ids[None]`:

# %%
one_text = np.array(tokenizer.encode(test_set.texts[0]))
error_article = error_of(lambda: article_model(one_text))
error_classifier = error_of(lambda: classifier(one_text, [len(one_text)]))
with tinylm.no_grad():
    one_prediction = classifier(one_text[None], [len(one_text)]).numpy()
print("article's model on ids of shape", one_text.shape, "->", error_article)
print("LSTMClassifier on the same ->", error_classifier)
print(f"with a batch axis, ids {one_text[None].shape}: {labels.decode(one_prediction.argmax(axis=1))} "
      f"(the label is {test_set.labels[0]!r})")
check("fails: without a batch axis the article's model stops with an index error", error_article is not None)
check("passes: LSTMClassifier refuses it with a message naming the shape it expects", error_classifier is not None)
check("passes: with the batch axis it classifies the text", one_prediction.shape == (1, len(labels)))

# %% [markdown]
# ### 中文句子与英文词表 A Chinese sentence, an English vocabulary
#
# The article asks its IMDB model about a Chinese sentence. Its `predict` splits on spaces, and
# a Chinese sentence has none, so the whole sentence is one "word" — unknown. tinylm's
# `WordTokenizer` cuts Chinese into characters, and none of them is in a vocabulary learned from
# English reviews: every id is the unknown id 0. So two Chinese sentences of the same length
# that say opposite things — "I really like this film" and "I really hate this film" — are the
# same input to the model and get the same prediction. To classify Chinese the vocabulary, and
# the training data, must contain Chinese.

# %%
likes, hates = "我很喜欢这部电影。", "我很讨厌这部电影。"
print(f"split on spaces: {likes.split()} — one piece")
print(f"{likes} -> {tokenizer.encode(likes)}\n{hates} -> {tokenizer.encode(hates)}")
with tinylm.no_grad():
    chinese = classifier(np.array([tokenizer.encode(likes), tokenizer.encode(hates)]),
                         [len(likes), len(hates)]).numpy()
check("fails: split on spaces, the Chinese sentence is a single unknown 'word'", len(likes.split()) == 1)
check("fails: every character of it is unknown to an English vocabulary",
      set(tokenizer.encode(likes)) == {0} and set(tokenizer.encode(hates)) == {0})
check("fails: 'like' and 'hate' get the same prediction", np.allclose(chinese[0], chinese[1]))

# %% [markdown]
# ### 三种梯度 The corrected head's gradient, three ways (004.finetune.loss)
#
# The classifier is trained on `L = −(1/N) Σ_i log P(y_i | x_i)` with `P = softmax(z)`,
# `z = s W_cᵀ + b_c` on the summaries s (each text's last real LSTM state). By hand,
# `∂L/∂z = (P − onehot(y)) / N`, and then `∂L/∂W_c = (∂L/∂z)ᵀ s`, `∂L/∂b_c = Σ ∂L/∂z`,
# `∂L/∂s = (∂L/∂z) W_c`. (With the article's V-way head the same formula holds — it is the
# label set that is wrong: every step pushes down V − 2 logits that no label ever needs.)

# %%
with tinylm.no_grad():
    out_test, _ = classifier.rnn(classifier.embed(test_ids[:6]))
summaries = out_test.numpy()[np.arange(6), test_lengths[:6] - 1].astype(np.float64)
targets = y_test_s[:6]


def head_loss_formula(grad_out, summary, weight, bias):
    z = summary @ weight.T + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d_z = grad_out * (p - np.eye(weight.shape[0])[targets]) / len(targets)
    return {"summary": d_z @ weight, "weight": d_z.T @ summary, "bias": d_z.sum(axis=0)}


head_inputs = {"summary": tinylm.Tensor(summaries, requires_grad=True),
               "weight": tinylm.Tensor(classifier.head.weight.numpy().astype(np.float64), requires_grad=True),
               "bias": tinylm.Tensor(classifier.head.bias.numpy().astype(np.float64), requires_grad=True)}
report = compare(lambda summary, weight, bias: F.cross_entropy(summary @ weight.T + bias, targets),
                 head_loss_formula, head_inputs)
print(report.table("classifier head + cross-entropy: autograd vs numeric vs formula"))
check("passes: the head's three gradients agree", report.passed)

# %% [markdown]
# ## 图 Pictures
#
# Who reads whom in the 000.code.rnn classifier (the D tables above), and the training curves of
# the toy task and of the sentiment classifiers.

# %%
try:
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, (layout, d) in zip(axes, influences["000.code.rnn"].items()):
        ax.imshow(d, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(layout, fontsize=9)
        ax.set_xlabel("changed sequence j")
        ax.set_ylabel("prediction i")
    fig.tight_layout()
    picture(fig, "17_rnn_classifier_influence.png")

    fig, (ax_toy, ax_text) = plt.subplots(1, 2, figsize=(10, 3.4))
    for name, losses in curves.items():
        ax_toy.plot(losses, label=name, linestyle="-" if "corrected" in name else "--")
    ax_toy.set_xlabel("step")
    ax_toy.set_ylabel("cross-entropy")
    ax_toy.set_title("toy task: is the sum positive?", fontsize=9)
    ax_toy.legend(fontsize=7)
    ax_text.plot(article_history, "--", label="002.code.imdb as printed (V-way head)")
    ax_text.plot(classifier_history, label="LSTMClassifier (2-way head)")
    ax_text.set_xlabel("epoch")
    ax_text.set_ylabel("mean cross-entropy")
    ax_text.set_title("sentiment", fontsize=9)
    ax_text.legend(fontsize=7)
    fig.tight_layout()
    picture(fig, "17_training.png")
    check("the pictures were written", (output_dir() / "17_training.png").is_file())
except ImportError:
    print("(matplotlib not installed: no pictures)")
