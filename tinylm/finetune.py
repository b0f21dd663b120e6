"""Fine-tuning a pretrained language model for text classification, three ways (003.finetune).

A pretrained body reads a text and gives one hidden state per token; one of them is the
summary of the text (GPT: the last real token, the only one that has seen all the others
through causal attention; BERT: the [CLS] token). A linear head turns the summary into class
logits, and training minimises

    L = -Σ_i log P(y_i | x_i),   P(· | x_i) = softmax(W · dropout(summary(x_i)) + b)     (004.finetune.loss)

(the mean over each mini-batch). The three methods differ only in what learns:

    head    feature extraction: the body is frozen, only the head trains. The body's summaries
            never change, so they are computed once and the head trains on them alone.
    full    full fine-tuning: body and head train. With a small learning rate (3e-4 here;
            1e-5…5e-5 for a BERT-sized model): 001.code.finetune's lr 1e-3 is the rate of
            training from scratch, and on a pretrained body it overwrites what pretraining learned.
    prompt  prompt tuning: P trainable vectors (a "soft prompt") are put in front of the token
            embeddings; the body stays frozen and the gradient flows through it to the prompt
            (and the head). Only P·E + E·C + C numbers learn.

All use AdamW with weight decay, dropout before the head and early stopping on validation
accuracy (001.overfit). `compare_methods` runs the three and an LSTM classifier trained from
scratch (the corrected 002.code.imdb) on the same split, for one table (`comparison_table`).

    result = finetune("out/best.ckpt", data="reviews.csv", method="prompt", out="clf.ckpt")
    print(comparison_table(compare_methods("out/best.ckpt")))

A body is an adapter around a pretrained model and its tokenizer (BODIES maps a checkpoint's
model kind to its adapter: GPTBody, BertBody). It has `vocab_size`, `n_embd`, `max_len`,
`tokenize(texts, n_prompt)` -> (ids, attention_mask), `embed(ids)` (token embeddings),
`encode(ids, attention_mask, prompt=None)` -> hidden states (B, T, E),
`summary_positions(attention_mask, n_prompt)` -> where each row's summary vector is, and
`describe()` / `from_meta(meta)` to save and rebuild it.
"""
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from . import checkpoint
from .nn import functional as F
from .autograd import no_grad
from .table import format_table
from .data import build_tokenizer, load_tokenizer
from .data.labelled import (Labelled, LabelSet, augmented, default_sentiment, load_labelled, stratified_kfold,
                            stratified_split)
from .metrics import accuracy, average_probs
from .models import build_model
from .models.bert import Bert, BertConfig
from .models.classifier import LSTMClassifier, LSTMClassifierConfig
from .nn import Dropout, Linear, Module, Parameter
from .optim import AdamW, clip_grad_norm_
from .pretrain import SpecialTokens
from .random import generator, manual_seed
from .tensor import Tensor

METHODS = ("head", "full", "prompt")
# Learning rates that work for each method on tinylm's small models: a fresh head or prompt can
# move fast; a pretrained body must move slowly (see "full" above).
DEFAULT_LR = {"head": 1e-2, "full": 3e-4, "prompt": 1e-2, "lstm": 3e-3}


@dataclass
class FinetuneConfig:
    """The settings of finetune, compare_methods and cross_validate (keyword arguments there)."""
    epochs: int = 20
    lr: float = None            # None: DEFAULT_LR of the method
    batch_size: int = 32
    weight_decay: float = 0.01  # AdamW's decoupled weight decay, on matrices (not biases, gains)
    dropout: float = 0.1        # before the head
    patience: int = 5           # early stopping: epochs without a better validation accuracy
    n_prompt: int = 8           # soft-prompt length P (method "prompt")
    augment: int = 0            # augmented copies of each training text (insert/replace/delete/swap)
    test_fraction: float = 0.2  # held out for the final accuracy
    val_fraction: float = 0.2   # of the rest, for early stopping
    seed: int = 0

    def check(self):
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("n_prompt", "augment"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


# --- bodies: pretrained models seen as text encoders ------------------------------------------
def encode_texts(tokenizer, texts, max_len, pad_id=0):
    """(ids, attention_mask), int64 arrays (N, T): each text's first max_len token ids, padded on
    the right with pad_id up to T, the longest kept length; mask 1 on real tokens, 0 on padding."""
    if max_len < 1:
        raise ValueError(f"no room for the text: {max_len} positions are left for its tokens")
    encoded = [tokenizer.encode(text)[:max_len] for text in texts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"text {i} ({texts[i]!r}) has no tokens")
    T = max(map(len, encoded))
    ids, mask = np.full((len(texts), T), pad_id, dtype=np.int64), np.zeros((len(texts), T), dtype=np.int64)
    for i, row in enumerate(encoded):
        ids[i, :len(row)], mask[i, :len(row)] = row, 1
    return ids, mask


def _expand(prompt, batch):
    """The soft prompt (P, E) repeated for every row of a batch: (B, P, E)."""
    return prompt.unsqueeze(0).expand(batch, *prompt.shape)


class GPTBody(Module):
    """A pretrained GPT (and its tokenizer) as a text encoder: its forward pass without the
    output layer. The summary of a text is the hidden state at its last real token."""

    kind = "gpt"

    def __init__(self, gpt, tokenizer):
        super().__init__()
        self.model, self.tokenizer = gpt, tokenizer
        self.vocab_size, self.n_embd, self.max_len = gpt.config.vocab_size, gpt.config.n_embd, gpt.config.block_size

    @classmethod
    def from_meta(cls, meta):
        """A GPT of the checkpoint's configuration (weights still to load) with its tokenizer."""
        return cls(build_model("gpt", **meta["model"]["config"]), load_tokenizer(meta["tokenizer"]))

    def describe(self):
        """What from_meta needs to build this body again (saved in the classifier's checkpoint)."""
        return {"model": {"kind": self.kind, "config": dataclasses.asdict(self.model.config)},
                "tokenizer": self.tokenizer.to_dict()}

    def tokenize(self, texts, n_prompt=0):
        """(ids, attention_mask) of the texts, cut to leave room for n_prompt prompt vectors."""
        return encode_texts(self.tokenizer, texts, self.max_len - n_prompt)

    def embed(self, ids):
        return self.model.wte(ids)

    def encode(self, ids, attention_mask, prompt=None):
        """Hidden states (B, P + T, E) after GPT's final LayerNorm, with the P soft-prompt
        vectors, if any, in front of the T token embeddings:

            x = [prompt; wte(ids)] + wpe(0..P+T-1);   x = Block(x) for every block;   h = LN_f(x)

        Attention is causal, so a real token never sees the padding on its right, and the
        mask is not needed here (a body attending both ways, like BERT's, needs it)."""
        gpt = self.model
        x = self.embed(ids)
        if prompt is not None:
            x = F.cat([_expand(prompt, x.shape[0]), x], 1)
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"GPT: {length} positions (prompt and tokens) exceed block_size {self.max_len}")
        x = gpt.drop(x + gpt.wpe(gpt.wte.weight.xp.arange(length)))
        for block in gpt.h:
            x = block(x)
        return gpt.ln_f(x)

    def summary_positions(self, attention_mask, n_prompt=0):
        """The last real token of each right-padded row, after the n_prompt prompt positions."""
        return n_prompt + np.asarray(attention_mask).sum(1) - 1


class BertBody(Module):
    """A pretrained BERT (tinylm.pretrain, objective mlm+nsp) as a text encoder. A text is read
    as [CLS] tokens [SEP] [PAD]...; its summary is the hidden state of [CLS] (003.finetune).
    A soft prompt goes right after [CLS]: [CLS] p_1..p_P tokens [SEP]."""

    kind = "bert"

    def __init__(self, bert, tokenizer, special):
        super().__init__()
        self.model, self.tokenizer, self.special = bert, tokenizer, special
        self.vocab_size, self.n_embd, self.max_len = special.vocab_size, bert.config.n_embd, bert.config.block_size
        # The pre-training heads (MLM, pooler + NSP) play no part in classification: frozen, they
        # are left out of the trainable parameters. mlm_decoder.weight is the embedding table
        # itself (tied), which stays trainable.
        for head in (bert.mlm_dense, bert.mlm_norm, bert.mlm_decoder, bert.pooler, bert.nsp_classifier):
            head.requires_grad_(False)
        bert.word_embeddings.weight.requires_grad = True

    @classmethod
    def from_meta(cls, meta):
        return cls(Bert(BertConfig(**meta["model"]["config"])), load_tokenizer(meta["tokenizer"]),
                   SpecialTokens.from_dict(meta["special"]))

    def describe(self):
        return {"model": {"kind": self.kind, "config": dataclasses.asdict(self.model.config)},
                "tokenizer": self.tokenizer.to_dict(), "special": self.special.to_dict()}

    def tokenize(self, texts, n_prompt=0):
        """[CLS] + each text's first tokens + [SEP], [PAD] after, leaving room for the prompt."""
        tokens, mask = encode_texts(self.tokenizer, texts, self.max_len - 2 - n_prompt, self.special.pad_id)
        (n, T), lengths = tokens.shape, mask.sum(1)
        ids = np.full((n, T + 2), self.special.pad_id, dtype=np.int64)
        ids[:, 0], ids[:, 1:T + 1] = self.special.cls_id, tokens
        ids[np.arange(n), lengths + 1] = self.special.sep_id
        return ids, (np.arange(T + 2) < (lengths + 2)[:, None]).astype(np.int64)

    def embed(self, ids):
        return self.model.word_embeddings(ids)

    def encode(self, ids, attention_mask, prompt=None):
        """Hidden states (B, P + T, E) of BERT's last encoder block, computed as Bert.encode does
        (one segment, id 0) with the prompt vectors put in after the [CLS] embedding:

            x = [w_[CLS] + s_0; prompt; w_rest + s_0];   h = Encoder(Dropout(LN(x + positions)))

        where the encoder hides padding from attention (attention_mask 0), never the prompt."""
        bert, mask = self.model, np.asarray(attention_mask)
        x = self.embed(ids) + bert.token_type_embeddings(np.zeros_like(ids))
        if prompt is not None:
            batch = x.shape[0]
            x = F.cat([x[:, :1], _expand(prompt, batch), x[:, 1:]], 1)
            mask = np.concatenate([mask[:, :1], np.ones((batch, len(prompt)), dtype=mask.dtype), mask[:, 1:]], 1)
        x = bert.embed_dropout(bert.embed_norm(bert.position_embeddings(x)))
        return bert.encoder(x, src_key_padding_mask=mask == 0)

    def summary_positions(self, attention_mask, n_prompt=0):
        """[CLS], first in every row."""
        return np.zeros(len(attention_mask), dtype=np.int64)


BODIES = {"gpt": GPTBody, "bert": BertBody}


def load_pretrained(path):
    """The body (with its pretrained weights and tokenizer) of a checkpoint of a kind in BODIES."""
    arrays, meta = checkpoint.load(path)
    kind = meta["model"]["kind"]
    if kind not in BODIES:
        what = "a fine-tuned classifier" if kind == "classifier" else f"a {kind!r} language model"
        raise ValueError(f"{path} holds {what}; fine-tuning needs a {' or '.join(map(repr, BODIES))} checkpoint")
    body = BODIES[kind].from_meta(meta)
    body.model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return body


# --- the classifier -----------------------------------------------------------------------------
class TextClassifier(Module):
    """body -> summary vector -> dropout -> Linear -> class logits, trained by `method`.
    forward(ids, attention_mask) -> logits (B, C); `tokenize(texts)` gives its inputs."""

    kind = "classifier"

    def __init__(self, body, num_classes, method="head", n_prompt=8, dropout=0.1):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
        self.body, self.method = body, method
        self.n_prompt = n_prompt if method == "prompt" else 0
        if self.n_prompt:
            # start the soft prompt from the embeddings of random tokens: vectors the body knows
            rows = generator().integers(0, body.vocab_size, self.n_prompt)
            self.prompt = Parameter(body.embed(rows).data.copy())
        else:
            self.prompt = None
        self.drop = Dropout(dropout)
        self.head = Linear(body.n_embd, num_classes)
        if method != "full":
            body.requires_grad_(False)  # feature extraction and prompt tuning: the body does not learn

    def train(self, mode=True):
        """A frozen body stays in evaluation mode (no dropout): it gives the features it was trained to."""
        super().train(mode)
        if self.method != "full":
            self.body.eval()
        return self

    def tokenize(self, texts):
        """(ids, attention_mask) of the texts, as the body reads them (with room for the prompt)."""
        return self.body.tokenize(list(texts), self.n_prompt)

    def summarize(self, ids, attention_mask):
        """(B, E): the body's hidden state at each text's summary position."""
        hidden = self.body.encode(ids, attention_mask, self.prompt)
        positions = self.body.summary_positions(attention_mask, self.n_prompt)
        return hidden[np.arange(len(positions)), positions]

    def classify(self, summary):
        """Class logits (B, C) from summary vectors (B, E)."""
        return self.head(self.drop(summary))

    def forward(self, ids, attention_mask):
        return self.classify(self.summarize(ids, attention_mask))


# --- training -------------------------------------------------------------------------------
def _optimizer(model, lr, weight_decay):
    """AdamW over the parameters that learn — frozen ones left out — with weight decay on
    matrices only (biases and LayerNorm gains are not decayed), as in tinylm.train."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return AdamW([g for g in groups if g["params"]], lr=lr)


def _outputs(model, forward, inputs, batch_size=256):
    """forward(*rows of inputs) for all rows, in evaluation mode and without a graph, as one array."""
    was_training = model.training
    model.eval()
    with no_grad():
        out = [forward(*(a[i:i + batch_size] for a in inputs)).numpy() for i in range(0, len(inputs[0]), batch_size)]
    model.train(was_training)
    return np.concatenate(out)


def _score(logits, y):
    """(accuracy, mean cross-entropy) of logits (N, C) for the classes y (N,)."""
    return accuracy(logits.argmax(1), y), F.cross_entropy(Tensor(logits), y).item()


def _probabilities(logits):
    return F.softmax(Tensor(logits), -1).numpy()


def fit(model, forward, train, val, cfg, lr, log=print, name=""):
    """Mini-batch training of forward(*inputs) -> logits on L = -Σ_i log P(y_i | x_i)
    (004.finetune.loss, averaged over each batch), with AdamW and gradient clipping.

    train, val: (inputs, y), inputs a tuple of arrays with one row per example. After every
    epoch the validation accuracy is measured; the best weights so far (ties broken by the
    lower validation loss) are kept, and training stops early after cfg.patience epochs
    without a better one (001.overfit). Returns (best validation accuracy, epochs run), with
    the best weights restored."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(model, lr, cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    (inputs, y), (val_inputs, val_y) = train, val
    best, best_weights, stale = (-1.0, math.inf), None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order, losses = rng.permutation(len(y)), []
        for first in range(0, len(y), cfg.batch_size):
            rows = order[first:first + cfg.batch_size]
            loss = F.cross_entropy(forward(*(a[rows] for a in inputs)), y[rows])
            loss.backward()
            clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        val_accuracy, val_loss = _score(_outputs(model, forward, val_inputs), val_y)
        log(f"{name} epoch {epoch}: train loss {np.mean(losses):.4f}, val loss {val_loss:.4f}, "
            f"val accuracy {val_accuracy:.3f}")
        if val_accuracy > best[0] or (val_accuracy == best[0] and val_loss < best[1]):
            best, best_weights, stale = (val_accuracy, val_loss), [p.data.copy() for p in params], 0
        else:
            stale += 1
            if stale >= cfg.patience:
                log(f"{name}: early stopping, no better val accuracy for {stale} epochs")
                break
    for p, w in zip(params, best_weights):
        p.data = w
    return best[0], epoch


# --- one method, start to end ------------------------------------------------------------------
LSTM_MAX_LEN = 128  # tokens the LSTM reads of a text
NAMES = {"head": "feature extraction (head)", "full": "full fine-tuning", "prompt": "prompt tuning",
         "lstm": "LSTM from scratch", "ensemble": "ensemble (mean probability)"}


def _run(method, pretrained, labelset, parts, cfg, log):
    """Train a classifier by `method` on parts = (train, val, test), each Labelled; pretrained is
    a body (None for "lstm"). Returns (model, result, test probabilities): result
    holds the test accuracy, the best validation accuracy, the trainable and total parameter
    counts, the training time in seconds and the epochs run."""
    manual_seed(cfg.seed)
    start = time.perf_counter()
    train = augmented(parts[0], cfg.augment, cfg.seed) if cfg.augment else parts[0]
    ys = [labelset.encode(p.labels) for p in (train, *parts[1:])]
    if method == "lstm":
        tokenizer = build_tokenizer("word", "\n".join(train.texts))  # its own vocabulary: the training words
        model = LSTMClassifier(LSTMClassifierConfig(tokenizer.vocab_size, len(labelset), dropout=cfg.dropout))
        inputs = [encode_texts(tokenizer, p.texts, LSTM_MAX_LEN) for p in (train, *parts[1:])]

        def forward(ids, mask):
            return model(ids, mask.sum(1))
    else:
        model = forward = TextClassifier(pretrained, len(labelset), method, cfg.n_prompt, cfg.dropout)
        inputs = [model.tokenize(p.texts) for p in (train, *parts[1:])]
    fit_forward, fit_inputs = forward, inputs
    if method == "head":  # the frozen body's summaries never change: compute them once
        fit_inputs = [(_outputs(model, model.summarize, x),) for x in inputs[:2]]

        def fit_forward(summary):
            return model.classify(Tensor(summary))
    val_accuracy, epochs = fit(model, fit_forward, (fit_inputs[0], ys[0]), (fit_inputs[1], ys[1]),
                               cfg, cfg.lr or DEFAULT_LR[method], log, NAMES[method])
    seconds = time.perf_counter() - start
    test_logits = _outputs(model, forward, inputs[2])
    test_accuracy, _ = _score(test_logits, ys[2])
    log(f"{NAMES[method]}: test accuracy {test_accuracy:.3f} ({len(ys[2])} texts), {seconds:.1f} s")
    return model, {"method": method, "accuracy": test_accuracy, "val_accuracy": val_accuracy,
                   "trainable": model.num_parameters(trainable_only=True), "parameters": model.num_parameters(),
                   "seconds": seconds, "epochs": epochs}, _probabilities(test_logits)


def _examples(data):
    """Labelled examples from a .csv/.jsonl path, a (texts, labels) pair, or None (the embedded set)."""
    if data is None:
        return default_sentiment()
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        return load_labelled(data)
    data = Labelled(*data)
    if len(data.texts) != len(data.labels):
        raise ValueError(f"{len(data.texts)} texts but {len(data.labels)} labels: they must pair up")
    return data


def _dataset(data):
    """(examples, their LabelSet) to train on: at least two labels."""
    data = _examples(data)
    labelset = LabelSet.from_labels(data.labels)
    if len(labelset) < 2:
        raise ValueError(f"classification needs examples of at least two labels, got only {labelset.names}")
    return data, labelset


def _three_way(data, cfg):
    """(train, val, test): test is cfg.test_fraction of each label, val cfg.val_fraction of the rest."""
    rest, test = stratified_split(data.labels, cfg.test_fraction, cfg.seed)
    rest = data.subset(rest)
    train, val = stratified_split(rest.labels, cfg.val_fraction, cfg.seed)
    return rest.subset(train), rest.subset(val), data.subset(test)


def _checked(methods, settings, allowed):
    """The FinetuneConfig of `settings`, once `methods` are all in `allowed` and the settings make sense."""
    for method in methods:
        if method not in allowed:
            raise ValueError(f"unknown method {method!r}: expected one of {', '.join(allowed)}")
    cfg = FinetuneConfig(**settings)
    cfg.check()
    return cfg


# --- what the command line calls -------------------------------------------------------------------
def finetune(ckpt, data=None, method="head", out=None, log=print, **settings):
    """Fine-tune the pretrained checkpoint `ckpt` for classification by `method` ("head",
    "full" or "prompt") on `data` (a .csv/.jsonl path, a (texts, labels) pair, or None for
    the embedded sentiment set); settings are FinetuneConfig's fields (epochs, lr, ...).

    The data are split, stratified, into train / validation (early stopping) / test. With
    `out`, the classifier (body, prompt, head, tokenizer, label names) is saved there as one
    checkpoint, atomically, once training is done: a failure leaves nothing behind.
    Returns the result dict of the method (accuracy on the test split, trainable parameters, …)."""
    cfg = _checked([method], settings, METHODS)
    data, labelset = _dataset(data)
    parts = _three_way(data, cfg)
    model, result, _ = _run(method, load_pretrained(ckpt), labelset, parts, cfg, log)
    if out is not None:
        arrays = {f"model/{k}": v.numpy() for k, v in model.state_dict().items()}
        config = {"method": method, "n_prompt": model.n_prompt, "dropout": cfg.dropout, "num_classes": len(labelset)}
        checkpoint.save(out, arrays, {"model": {"kind": "classifier", "config": config},
                                      "body": model.body.describe(), "labels": labelset.names,
                                      "pretrained": str(ckpt), "finetune": dataclasses.asdict(cfg),
                                      "result": result})
        log(f"saved the classifier to {out}")
    return result


def compare_methods(ckpt, data=None, methods=METHODS + ("lstm",), ensemble=True, log=print, **settings):
    """Every method of `methods` (head, full, prompt, and the LSTM classifier from scratch) on
    the same train / validation / test split; returns their result dicts, for comparison_table.

    ensemble: add a row for the average of all the methods' test probabilities, their soft
    vote (001.uncertainty), to compare with its members."""
    cfg = _checked(methods, settings, METHODS + ("lstm",))
    data, labelset = _dataset(data)
    parts = _three_way(data, cfg)
    load_pretrained(ckpt)  # a wrong checkpoint fails now, not after the first methods ran
    results, probabilities = [], []
    for method in methods:
        _, result, probs = _run(method, None if method == "lstm" else load_pretrained(ckpt), labelset, parts,
                                cfg, log)
        results.append(result)
        probabilities.append(probs)
    if ensemble and len(methods) > 1:
        _, prediction = average_probs(probabilities)
        results.append({"method": "ensemble", "accuracy": accuracy(prediction, labelset.encode(parts[2].labels)),
                        "val_accuracy": None, "epochs": None,
                        **{key: sum(r[key] for r in results) for key in ("trainable", "parameters", "seconds")}})
    return results


def comparison_table(results):
    """One row per method: test accuracy, best validation accuracy, trainable parameters (and
    their share of all the model's), training time and epochs."""
    head = ["method", "test acc", "val acc", "trainable params", "of all", "time (s)", "epochs"]
    rows = [[NAMES[r["method"]], f"{r['accuracy']:.3f}",
             "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}", f"{r['trainable']:,}", f"{100 * r['trainable'] / r['parameters']:.1f}%", f"{r['seconds']:.1f}",
             "-" if r["epochs"] is None else r["epochs"]] for r in results]
    return format_table(head, rows)


def cross_validate(ckpt, data=None, method="head", k=5, log=print, **settings):
    """k-fold cross-validation (001.overfit): each stratified fold is the test set once, a model
    trained on the rest (minus a validation split for early stopping). Returns the fold
    accuracies with their mean and standard deviation."""
    cfg = _checked([method], settings, METHODS + ("lstm",))
    data, labelset = _dataset(data)
    accuracies = []
    for i, (rest, test) in enumerate(stratified_kfold(data.labels, k, cfg.seed)):
        rest = data.subset(rest)
        train, val = stratified_split(rest.labels, cfg.val_fraction, cfg.seed)
        pretrained = None if method == "lstm" else load_pretrained(ckpt)
        _, result, _ = _run(method, pretrained, labelset, (rest.subset(train), rest.subset(val), data.subset(test)),
                         cfg, log)
        accuracies.append(result["accuracy"])
        log(f"fold {i + 1}/{k}: test accuracy {result['accuracy']:.3f}")
    return {"method": method, "k": k, "accuracies": accuracies, "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies))}


def load_classifier(path):
    """(classifier in evaluation mode, LabelSet) from a checkpoint saved by finetune."""
    arrays, meta = checkpoint.load(path)
    kind = meta["model"]["kind"]
    if kind != "classifier":
        raise ValueError(f"{path} holds a {kind!r} language model, not a fine-tuned classifier "
                         "(tinylm finetune makes one)")
    config = meta["model"]["config"]
    body = BODIES[meta["body"]["model"]["kind"]].from_meta(meta["body"])
    model = TextClassifier(body, config["num_classes"], config["method"], config["n_prompt"], config["dropout"])
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval(), LabelSet(meta["labels"])


def predict(path, texts):
    """The label name the classifier saved at `path` gives each text."""
    model, labelset = load_classifier(path)
    return labelset.decode(_outputs(model, model, model.tokenize(texts)).argmax(1))


def evaluate(path, data):
    """Accuracy of the classifier saved at `path` on `data` (a .csv/.jsonl path or a (texts,
    labels) pair); a label the classifier was not trained on -> ValueError naming it and the
    labels it knows."""
    data = _examples(data)
    model, labelset = load_classifier(path)
    y = labelset.encode(data.labels)
    return _score(_outputs(model, model, model.tokenize(data.texts)), y)[0]
