"""Fine-tuning a pretrained language model for text classification, three ways (003.finetune).

A pretrained body reads a text and gives one hidden state per token; one of them is the
summary of the text (GPT and Llama: the last real token, the only one that has seen all the
others through causal attention; BERT: the [CLS] token). A linear head turns the summary into
class logits, and training minimises

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

Each is a task of the one Trainer (tinylm.train): AdamW with weight decay, dropout before the
head, evaluation after every epoch and early stopping on validation accuracy (001.overfit);
the classifier kept is the best one (OUT/best.ckpt), and a run resumes exactly (--resume). `compare_methods` runs the three and an LSTM classifier trained from
scratch (the corrected 002.code.imdb) on the same split, for one table (`comparison_table`).

    result = finetune("out/best.ckpt", data="reviews.csv", method="prompt", out="out-clf")
    model, labels = load_classifier("out-clf/best.ckpt")
    print(comparison_table(compare_methods("out/best.ckpt")))
The models (TextClassifier with its GPT, Llama or BERT body, LSTMClassifier) are in tinylm.models.classifier.
"""
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, replace

import numpy as np

from .. import checkpoint
from ..autograd import no_grad
from ..config import option, validate
from ..data import build_tokenizer
from ..data.labelled import (Labelled, LabelSet, augmented, default_sentiment, encode_texts, load_labelled,
                             stratified_kfold, stratified_split)
from ..metrics import accuracy, average_probs
from ..models import LSTMClassifier, LSTMClassifierConfig, TextClassifier
from ..models.classifier import METHODS, body_of
from ..nn import functional as F
from ..table import format_table
from ..tensor import Tensor
from ..train import Task, Trainer, TrainConfig, fingerprint_of

# Learning rates that work for each method on tinylm's small models: a fresh head or prompt can
# move fast; a pretrained body must move slowly (see "full" above).
DEFAULT_LR = {"head": 1e-2, "full": 3e-4, "prompt": 1e-2, "lstm": 3e-3}
LSTM_MAX_LEN = 128  # tokens the LSTM reads of a text
PRETRAINED = ("gpt", "llama", "bert")  # the model kinds a checkpoint to fine-tune may hold
NAMES = {"head": "feature extraction (head)", "full": "full fine-tuning", "prompt": "prompt tuning",
         "lstm": "LSTM from scratch", "ensemble": "ensemble (mean probability)"}


@dataclass
class FinetuneConfig(TrainConfig):
    ckpt: str = option(None, "a pretrained GPT, Llama or BERT checkpoint (tinylm train / pretrain); "
                       "not for --method lstm")
    data: str = option(None, "a .csv (text,label) or .jsonl file (default: the embedded sentiment set)")
    method: str = option("head", "head (feature extraction), full (full fine-tuning), prompt (prompt tuning) or "
                         "lstm (an LSTM classifier from scratch)", choices=[*METHODS, "lstm"])
    epochs: int = option(20, "passes over the training split", min=1)
    n_prompt: int = option(8, "soft-prompt length (prompt tuning)", min=0)
    dropout: float = option(0.1, "dropout before the head", min=0.0, below=1.0)
    augment: int = option(0, "augmented copies of each training text (random insert/replace/delete/swap)", min=0)
    test_fraction: float = option(0.2, "share held out for the test accuracy", min=0.0, below=1.0)
    val_fraction: float = option(0.2, "share of the rest for early stopping", min=0.0, below=1.0)
    # the loop's defaults for fine-tuning: a constant learning rate, an evaluation every epoch
    max_iters: int = option(None, "optimizer steps (default: epochs x batches per epoch)", min=1)
    eval_interval: int = option(None, "steps between evaluations (default: one epoch)", min=1)
    batch_size: int = option(32, "examples per micro-batch", min=1)
    lr: float = option(None, "learning rate (default: per method, " +
                       ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")", min=0.0)
    min_lr: float = option(None, "learning rate at the end of the cosine decay (default: lr, constant)", min=0.0)
    warmup_iters: int = option(0, "linear warm-up steps", min=0)
    weight_decay: float = option(0.01, "weight decay (matrices only; decoupled for adamw)", min=0.0)
    beta2: float = option(0.999, "Adam beta2", min=0.0, below=1.0)
    patience: int = option(5, "early stopping: epochs without a better validation accuracy", min=1)
    seed: int = option(0, "random seed", min=0)
    out: str = option("out-finetune", "output folder (best.ckpt: the classifier; last.ckpt, metrics.jsonl)")


class Classification(Task):
    """Text classification: L = -1/B Σ_i log P(y_i | x_i) (004.finetune.loss) on batches of
    (texts, labels); an epoch is one pass over the training split in a random order (one
    permutation per epoch, from the seed and the epoch: a resumed run sees the same batches).
    Evaluation: validation loss and accuracy; the best classifier has the best accuracy, ties
    broken by the lower loss.

    parts: (train, val, test), each Labelled; labelset: their LabelSet (default: from cfg.data,
    split as finetune does). model: a classifier to train instead of building one.
    """

    kind = "classify"

    def __init__(self, cfg, parts=None, labelset=None, model=None):
        super().__init__(cfg)
        if cfg.lr is None:
            self.cfg = cfg = replace(cfg, lr=DEFAULT_LR[cfg.method])
        if cfg.method != "lstm" and cfg.ckpt is None and model is None:
            raise ValueError(f"--method {cfg.method} fine-tunes a pretrained model: give its checkpoint with --ckpt")
        if parts is None:
            data, labelset = dataset(cfg.data)
            parts = three_way(data, cfg)
        self.parts, self.labelset, self.given = parts, labelset, model

    def setup(self, saved):
        cfg = self.cfg
        train = augmented(self.parts[0], cfg.augment, cfg.seed) if cfg.augment else self.parts[0]
        self.ys = [self.labelset.encode(p.labels) for p in (train, *self.parts[1:])]
        if saved is not None:
            self.model = checkpoint.model_from(*saved, path=cfg.out)
        elif self.given is not None:
            self.model = self.given
        elif cfg.method == "lstm":
            tokenizer = build_tokenizer("word", "\n".join(train.texts))  # its own vocabulary: the training words
            self.model = LSTMClassifier(LSTMClassifierConfig(tokenizer.vocab_size, len(self.labelset),
                                                             dropout=cfg.dropout))
            self.model.tokenizer = tokenizer
        else:
            self.model = TextClassifier(load_pretrained(cfg.ckpt), len(self.labelset), cfg.method, cfg.n_prompt,
                                        cfg.dropout)
        self.inputs = [self.tokenize(p.texts) for p in (train, *self.parts[1:])]
        self.features = self.inputs
        if cfg.method == "head":  # the frozen body's summaries never change: compute them once
            self.features = [(in_batches(self.model, self.model.summarize, x),) for x in self.inputs[:2]]
        self.batches_per_epoch = math.ceil(len(self.ys[0]) / cfg.batch_size)

    def tokenize(self, texts):
        return tokenize(self.model, texts)

    def forward(self, *inputs):
        """Class logits of a batch of features (summaries for "head", else ids and masks)."""
        if self.cfg.method == "head":
            return self.model.classify(Tensor(inputs[0]))
        return classifier_forward(self.model)(*inputs)

    def fingerprint(self):
        pieces = [json.dumps([p.texts, p.labels]) for p in self.parts]
        return {"data": fingerprint_of("\n".join(pieces)), "method": self.cfg.method, "augment": self.cfg.augment}

    def schedule(self):
        cfg = self.cfg
        per_epoch = math.ceil(self.batches_per_epoch / cfg.grad_accum)
        return cfg.max_iters or cfg.epochs * per_epoch, cfg.eval_interval or per_epoch

    def describe(self):
        return (f"{NAMES[self.cfg.method]}: {self.model.num_parameters(trainable_only=True):,} of "
                f"{self.model.num_parameters():,} parameters learn; {len(self.ys[0])} training texts, "
                f"{len(self.labelset)} labels")

    def batch(self, i, rng):
        epoch, j = divmod(i, self.batches_per_epoch)
        order = np.random.default_rng([self.cfg.seed, epoch]).permutation(len(self.ys[0]))
        rows = order[j * self.cfg.batch_size:(j + 1) * self.cfg.batch_size]
        return tuple(a[rows] for a in self.features[0]), self.ys[0][rows]

    def batch_items(self, batch):
        return len(batch[1])

    def loss(self, batch):
        inputs, y = batch
        return F.cross_entropy(self.forward(*inputs), y)

    def evaluate(self, step):
        was_training = self.model.training
        self.model.eval()
        with no_grad():
            logits = self.forward(*self.on_device(self.features[1]))
        self.model.train(was_training)
        val_accuracy, val_loss = score(logits.numpy(), self.ys[1])
        return {"val_loss": val_loss, "val_accuracy": val_accuracy}

    def score(self, metrics):
        return (metrics["val_accuracy"], -metrics["val_loss"])

    def state(self):
        return {"labels": self.labelset.names, "method": self.cfg.method}, {}


def load_pretrained(path):
    """The body (DecoderBody or BertBody: the pretrained model and its tokenizer) of a checkpoint."""
    arrays, meta = checkpoint.load(path)
    kind = meta["model"]["kind"]
    if kind not in PRETRAINED:
        what = "a fine-tuned classifier" if kind in ("classifier", "lstm_classifier") else f"a {kind!r} language model"
        raise ValueError(f"{path} holds {what}; fine-tuning needs a 'gpt', 'llama' or 'bert' checkpoint")
    quantized = (meta.get("compression") or {}).get("quantize")
    if quantized:
        raise ValueError(f"{path} holds an {quantized}-quantized model (tinylm compress); fine-tuning needs float "
                         f"weights: give the checkpoint it was made from ({meta['compression'].get('source')})")
    return body_of(checkpoint.model_from(arrays, meta, path))


def tokenize(model, texts):
    """(ids, attention_mask) of texts as a classifier reads them."""
    if isinstance(model, LSTMClassifier):
        return encode_texts(model.tokenizer, list(texts), LSTM_MAX_LEN)
    return model.tokenize(texts)


def classifier_forward(model):
    """forward(ids, attention_mask) -> logits of either classifier (the LSTM takes lengths)."""
    if isinstance(model, LSTMClassifier):
        return lambda ids, mask: model(ids, mask.sum(1))
    return model


def in_batches(model, forward, inputs, batch_size=256):
    """forward(*rows of inputs) for all rows, with `model` in evaluation mode and without a graph, as one array."""
    was_training = model.training
    model.eval()
    with no_grad():
        out = [forward(*(a[i:i + batch_size] for a in inputs)).numpy() for i in range(0, len(inputs[0]), batch_size)]
    model.train(was_training)
    return np.concatenate(out)


def score(logits, y):
    """(accuracy, mean cross-entropy) of logits (N, C) for the classes y (N,)."""
    return accuracy(logits.argmax(1), y), F.cross_entropy(Tensor(logits), y).item()


def _probabilities(logits):
    return F.softmax(Tensor(logits), -1).numpy()


def run(cfg, parts, labelset, log=print):
    """Train a classifier of cfg.method on parts = (train, val, test) with the Trainer, keep its
    best weights, and measure it. Returns (task, result, test probabilities): result holds the
    test accuracy, the best validation accuracy, the trainable and total parameter counts, the
    training time in seconds and the epochs run."""
    start = time.perf_counter()
    task = Classification(cfg, parts, labelset)
    summary = Trainer(task, log).run()
    arrays, _ = checkpoint.load(summary["best"])
    task.model.load_state_dict(checkpoint.model_state(arrays))
    seconds = time.perf_counter() - start
    test_logits = in_batches(task.model, classifier_forward(task.model), task.inputs[2])
    test_accuracy, _ = score(test_logits, task.ys[2])
    log(f"{NAMES[cfg.method]}: test accuracy {test_accuracy:.3f} ({len(task.ys[2])} texts), {seconds:.1f} s")
    epochs = math.ceil(summary["steps"] * cfg.grad_accum / task.batches_per_epoch)
    return task, {"method": cfg.method, "accuracy": test_accuracy, "val_accuracy": summary["best_metrics"]["val_accuracy"],
                  "trainable": task.model.num_parameters(trainable_only=True),
                  "parameters": task.model.num_parameters(), "seconds": seconds, "epochs": epochs}, \
        _probabilities(test_logits)


def examples(data):
    """Labelled examples from a .csv/.jsonl path, a (texts, labels) pair, or None (the embedded set)."""
    if data is None:
        return default_sentiment()
    if isinstance(data, str) or hasattr(data, "__fspath__"):
        return load_labelled(data)
    data = Labelled(*data)
    if len(data.texts) != len(data.labels):
        raise ValueError(f"{len(data.texts)} texts but {len(data.labels)} labels: they must pair up")
    return data


def dataset(data):
    """(examples, their LabelSet) to train on: at least two labels."""
    data = examples(data)
    labelset = LabelSet.from_labels(data.labels)
    if len(labelset) < 2:
        raise ValueError(f"classification needs examples of at least two labels, got only {labelset.names}")
    return data, labelset


def three_way(data, cfg):
    """(train, val, test): test is cfg.test_fraction of each label, val cfg.val_fraction of the rest."""
    rest, test = stratified_split(data.labels, cfg.test_fraction, cfg.seed)
    rest = data.subset(rest)
    train, val = stratified_split(rest.labels, cfg.val_fraction, cfg.seed)
    return rest.subset(train), rest.subset(val), data.subset(test)


def comparison_table(results):
    """One row per method: test accuracy, best validation accuracy, trainable parameters (and
    their share of all the model's), training time and epochs."""
    head = ["method", "test acc", "val acc", "trainable params", "of all", "time (s)", "epochs"]
    rows = [[NAMES[r["method"]], f"{r['accuracy']:.3f}",
             "-" if r["val_accuracy"] is None else f"{r['val_accuracy']:.3f}", f"{r['trainable']:,}", f"{100 * r['trainable'] / r['parameters']:.1f}%", f"{r['seconds']:.1f}",
             "-" if r["epochs"] is None else r["epochs"]] for r in results]
    return format_table(head, rows)



# --- what the command line calls -------------------------------------------------------------------
def finetune(ckpt, data=None, method="head", out=None, log=print, **settings):
    """Fine-tune the pretrained checkpoint `ckpt` for classification by `method` ("head",
    "full", "prompt", or "lstm" from scratch) on `data` (a .csv/.jsonl path, a (texts, labels)
    pair, or None for the embedded sentiment set); settings are FinetuneConfig's fields.

    The data are split, stratified, into train / validation (early stopping) / test. The
    classifier with the best validation accuracy is OUT/best.ckpt (out: a folder; None: a
    temporary one, removed afterwards). Returns the result dict (test accuracy, trainable
    parameters, ...)."""
    with _folder(out) as folder:
        cfg = validate(FinetuneConfig(ckpt=ckpt, data=None, method=method, out=folder, **settings))
        data, labelset = dataset(data)
        task, result, _ = run(cfg, three_way(data, cfg), labelset, log)
    return result


def compare_methods(ckpt, data=None, methods=(*METHODS, "lstm"), ensemble=True, out=None, log=print, **settings):
    """Every method of `methods` (head, full, prompt, and the LSTM classifier from scratch) on
    the same train / validation / test split; returns their result dicts, for comparison_table.
    out: a folder for one sub-folder per method (None: temporary).

    ensemble: add a row for the average of all the methods' test probabilities, their soft
    vote (001.uncertainty), to compare with its members."""
    data, labelset = dataset(data)
    if any(m != "lstm" for m in methods):
        load_pretrained(ckpt)  # a wrong checkpoint fails now, not after the first methods ran
    results, probabilities = [], []
    with _folder(out) as folder:
        for method in methods:
            cfg = validate(FinetuneConfig(ckpt=ckpt, method=method, out=os.path.join(folder, method), **settings))
            _, result, probs = run(cfg, three_way(data, cfg), labelset, log)
            results.append(result)
            probabilities.append(probs)
        test_labels = three_way(data, cfg)[2].labels
    if ensemble and len(methods) > 1:
        _, prediction = average_probs(probabilities)
        results.append({"method": "ensemble", "accuracy": accuracy(prediction, labelset.encode(test_labels)),
                        "val_accuracy": None, "epochs": None,
                        **{key: sum(r[key] for r in results) for key in ("trainable", "parameters", "seconds")}})
    return results


def cross_validate(ckpt, data=None, method="head", k=5, out=None, log=print, **settings):
    """k-fold cross-validation (001.overfit): each stratified fold is the test set once, a model
    trained on the rest (minus a validation split for early stopping). Returns the fold
    accuracies with their mean and standard deviation."""
    data, labelset = dataset(data)
    accuracies = []
    with _folder(out) as folder:
        for i, (rest, test) in enumerate(stratified_kfold(data.labels, k, settings.get("seed", 0))):
            cfg = validate(FinetuneConfig(ckpt=ckpt, method=method, out=os.path.join(folder, f"fold{i + 1}"),
                                          **settings))
            rest = data.subset(rest)
            train, val = stratified_split(rest.labels, cfg.val_fraction, cfg.seed)
            _, result, _ = run(cfg, (rest.subset(train), rest.subset(val), data.subset(test)), labelset, log)
            accuracies.append(result["accuracy"])
            log(f"fold {i + 1}/{k}: test accuracy {result['accuracy']:.3f}")
    return {"method": method, "k": k, "accuracies": accuracies, "mean": float(np.mean(accuracies)),
            "std": float(np.std(accuracies))}


class _folder:
    """`with _folder(out) as path`: out itself, or a temporary folder removed afterwards when out is None."""

    def __init__(self, out):
        self.out, self.tmp = out, None

    def __enter__(self):
        if self.out is not None:
            return os.fspath(self.out)
        self.tmp = tempfile.TemporaryDirectory(prefix="tinylm-finetune-")
        return self.tmp.name

    def __exit__(self, *exc):
        if self.tmp is not None:
            self.tmp.cleanup()


def load_classifier(path):
    """(classifier in evaluation mode, LabelSet) from a checkpoint written by finetune (OUT/best.ckpt)."""
    arrays, meta = checkpoint.load(path)
    if meta.get("task", {}).get("kind") != Classification.kind:
        raise ValueError(f"{path} holds a {meta['model']['kind']!r} model, not a fine-tuned classifier "
                         "(tinylm finetune makes one)")
    return checkpoint.model_from(arrays, meta, path).eval(), LabelSet(meta["task"]["labels"])


def predict(path, texts):
    """The label name the classifier saved at `path` gives each text."""
    model, labelset = load_classifier(path)
    return labelset.decode(in_batches(model, classifier_forward(model), tokenize(model, texts)).argmax(1))


def evaluate(path, data):
    """Accuracy of the classifier saved at `path` on `data` (a .csv/.jsonl path or a (texts,
    labels) pair); a label the classifier was not trained on -> ValueError naming it and the
    labels it knows."""
    data = examples(data)
    model, labelset = load_classifier(path)
    y = labelset.encode(data.labels)
    return score(in_batches(model, classifier_forward(model), tokenize(model, data.texts)), y)[0]
