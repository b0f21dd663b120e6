"""Pre-training objectives: BERT's masked LM + next sentence prediction, or a causal LM.

    mlm+nsp (003.mlm, 003.nsp), an encoder (tinylm.models.bert):
        text -> sentences -> pairs (A, B, is_next): B is A's next sentence half of the time
             -> [CLS] A [SEP] B [SEP] [PAD]... with segment ids 0 (A) / 1 (B)
             -> 15% of the tokens selected to be predicted: 80% of them become [MASK], 10% a
                random token, 10% stay as they are
             -> loss = CE(MLM at the selected positions) + CE(NSP on [CLS])
    clm (003.clm done right): a decoder-only GPT predicting each next token, trained by
        tinylm.train.Trainer.

    special = SpecialTokens(tokenizer.vocab_size)       # [PAD] [CLS] [SEP] [MASK] after the vocabulary
    batch = build_bert_batch(nsp_pairs(split_sentences(text), rng, 16), tokenizer, special, 64, rng)
    out = model(**batch)                                  # out.loss, out.mlm_logits, out.nsp_logits
    pretrain(objective="mlm+nsp", steps=500, out="out-bert")
    model, tokenizer, special = load_bert("out-bert/best.ckpt")
"""
import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np

from . import checkpoint
from .autograd import no_grad
from .data import build_tokenizer, load_text, load_tokenizer
from .models.bert import Bert, BertConfig
from .optim import clip_grad_norm_, warmup_cosine
from .random import manual_seed
from .train import TrainConfig, Trainer, configure_optimizer, save_checkpoint

OBJECTIVES = ("mlm+nsp", "clm")


class SpecialTokens:
    """The four special tokens, given the ids after the tokenizer's own vocabulary (base_vocab_size):

        [PAD] fills a short input;  [CLS] starts it (its vector feeds NSP and classifiers);
        [SEP] ends each sentence;   [MASK] hides a token the MLM must predict.
    """

    NAMES = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")

    def __init__(self, base_vocab_size):
        if not isinstance(base_vocab_size, (int, np.integer)) or base_vocab_size < 1:
            raise ValueError(f"base_vocab_size must be a positive integer, got {base_vocab_size!r}")
        self.base_vocab_size = int(base_vocab_size)
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = range(self.base_vocab_size, self.base_vocab_size + 4)

    @property
    def ids(self):
        return (self.pad_id, self.cls_id, self.sep_id, self.mask_id)

    @property
    def vocab_size(self):
        """The model's vocabulary: the tokenizer's ids and the four special ones."""
        return self.base_vocab_size + len(self.NAMES)

    def decode(self, ids, tokenizer):
        """Text of ids with the special tokens written as [CLS], [SEP], ... (padding left out)."""
        pieces, run = [], []
        for i in list(ids) + [self.pad_id]:  # a final [PAD] flushes the last run of ordinary ids
            if i < self.base_vocab_size:
                run.append(i)
                continue
            if run:
                pieces.append(tokenizer.decode(run))
                run = []
            if i != self.pad_id:
                pieces.append(self.NAMES[i - self.base_vocab_size])
        return " ".join(pieces)

    def to_dict(self):
        return {"base_vocab_size": self.base_vocab_size}

    @classmethod
    def from_dict(cls, d):
        return cls(d["base_vocab_size"])


def mask_tokens(ids, rng, vocab_size, special_ids, mask_id, prob=0.15):
    """003.mlm, as BERT does it: (inputs, labels) for the masked-LM task.

    In each sequence (a row of ids (B, T), or ids (T,)), round(prob · n) of its n non-special
    positions (at least one) are selected at random, without repetition. Each selected
    position gets, independently:
        80%: [MASK] (mask_id)    10%: a random ordinary token    10%: its own token, unchanged
    labels holds the original token at the selected positions and -100 (ignored) elsewhere.
    Random tokens are drawn uniformly from 0..vocab_size-1 minus the special ids. Keeping or
    randomising some selected tokens means the model cannot tell which inputs are real, so it
    keeps a good representation of every token (not only of [MASK]) for fine-tuning, where
    [MASK] never appears.
    """
    ids = np.asarray(ids)
    if ids.ndim not in (1, 2) or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError(f"mask_tokens expected token ids of shape (T,) or (B, T), got shape {ids.shape} "
                         f"dtype {ids.dtype}")
    if not 0 <= prob <= 1:
        raise ValueError(f"mask_tokens: prob must be between 0 and 1, got {prob}")
    rows = ids.reshape(-1, ids.shape[-1]).astype(np.int64)
    inputs, labels = rows.copy(), np.full_like(rows, -100)
    ordinary = np.setdiff1d(np.arange(vocab_size), special_ids)
    selectable = ~np.isin(rows, special_ids)
    for r in range(len(rows)):
        candidates = np.flatnonzero(selectable[r])
        if prob == 0 or not len(candidates):
            continue
        chosen = rng.choice(candidates, size=max(1, round(prob * len(candidates))), replace=False)
        labels[r, chosen] = rows[r, chosen]
        u = rng.random(len(chosen))                       # one draw per selected position
        inputs[r, chosen[u < 0.8]] = mask_id              # 80%: [MASK]
        randomised = chosen[(u >= 0.8) & (u < 0.9)]       # 10%: a random token
        inputs[r, randomised] = rng.choice(ordinary, size=len(randomised))
        # the other 10% (u >= 0.9) keep their token: predicted, but not hidden
    return inputs.reshape(ids.shape), labels.reshape(ids.shape)


def split_sentences(text):
    """The sentences of text: pieces ending at ., ! or ? (kept) or at a line break, stripped;
    pieces without a letter or digit (empty lines, stray punctuation) are dropped."""
    if not isinstance(text, str):
        raise TypeError(f"split_sentences takes a str, got {type(text).__name__}")
    pieces = (p.strip() for p in re.split(r"(?<=[.!?])|\n", text))
    return [p for p in pieces if re.search(r"\w", p)]


def nsp_pairs(sentences, rng, n):
    """003.nsp: n pairs (A, B, is_next) from a list of consecutive sentences.

    A is a random sentence that has a successor; with probability 1/2, B is that successor
    (is_next=True), otherwise a random sentence from elsewhere in the corpus: never A itself,
    and never a sentence with the same text as the true next one (is_next=False).
    """
    sentences = list(sentences)
    if len(sentences) < 3:
        raise ValueError(f"next sentence prediction needs at least 3 sentences (a pair and another one to "
                         f"draw a random B from), got {len(sentences)}")
    codes = {}  # one integer per distinct sentence text, to compare texts quickly
    text_id = np.array([codes.setdefault(s, len(codes)) for s in sentences])
    pairs = []
    for _ in range(n):
        i = int(rng.integers(0, len(sentences) - 1))
        if rng.random() < 0.5:
            pairs.append((sentences[i], sentences[i + 1], True))
            continue
        others = np.flatnonzero(text_id != text_id[i + 1])
        others = others[others != i]
        if not len(others):
            raise ValueError(f"no sentence differs from both {sentences[i]!r} and its successor: the corpus "
                             "needs more distinct sentences for next sentence prediction")
        pairs.append((sentences[i], sentences[int(rng.choice(others))], False))
    return pairs


def truncate_pair(a, b, budget):
    """Drop tokens from the end of the longer of a and b until len(a) + len(b) <= budget."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()
    return a, b


def build_bert_batch(pairs, tokenizer, special, max_len, rng, mask_prob=0.15):
    """A BERT batch from (A, B, is_next) text pairs, as a dict of int64 arrays ready for model(**batch):

        input_ids       [CLS] A [SEP] B [SEP] [PAD]..., masked by mask_tokens   (B, max_len)
        token_type_ids  0 on [CLS] A [SEP], 1 on B [SEP], 0 on padding
        attention_mask  1 on real tokens, 0 on padding
        mlm_labels      the original token where one is to be predicted, -100 elsewhere
        nsp_labels      0 when B follows A, 1 when it is a random sentence      (B,)

    A pair longer than max_len is cut by truncate_pair (the longer sentence loses its end).
    """
    if max_len < 5:
        raise ValueError(f"max_len must be at least 5 ([CLS] A [SEP] B [SEP] with a token each), got {max_len}")
    if not pairs:
        raise ValueError("build_bert_batch needs at least one sentence pair")
    n = len(pairs)
    input_ids = np.full((n, max_len), special.pad_id, dtype=np.int64)
    token_type_ids = np.zeros((n, max_len), dtype=np.int64)
    attention_mask = np.zeros((n, max_len), dtype=np.int64)
    for row, (a_text, b_text, _) in enumerate(pairs):
        a, b = truncate_pair(tokenizer.encode(a_text), tokenizer.encode(b_text), max_len - 3)
        sequence = [special.cls_id] + a + [special.sep_id] + b + [special.sep_id]
        input_ids[row, :len(sequence)] = sequence
        token_type_ids[row, len(a) + 2:len(sequence)] = 1
        attention_mask[row, :len(sequence)] = 1
    inputs, labels = mask_tokens(input_ids, rng, special.vocab_size, special.ids, special.mask_id, mask_prob)
    return {"input_ids": inputs, "token_type_ids": token_type_ids, "attention_mask": attention_mask,
            "mlm_labels": labels, "nsp_labels": np.array([0 if is_next else 1 for *_, is_next in pairs])}


@dataclass
class PretrainConfig:
    objective: str = "mlm+nsp"  # mlm+nsp (BERT) | clm (GPT)
    data: str = None            # a UTF-8 text file; None: the documentation text inside CPython
    tokenizer: str = "word"     # char | word | bpe
    vocab_size: int = 1000      # for bpe (and a cap for word); the special tokens come on top
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64        # bert: the longest [CLS] A [SEP] B [SEP]; gpt: the context
    batch_size: int = 16
    steps: int = 1000
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_iters: int = 100
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    grad_clip: float = 1.0
    dropout: float = 0.1
    mask_prob: float = 0.15     # mlm: the share of tokens to predict
    eval_interval: int = 200
    eval_iters: int = 10
    device: str = "cpu"
    seed: int = 1337
    out: str = "out-pretrain"

    def train_config(self):
        """The same settings as a TrainConfig for a GPT (the clm objective, and the optimizer set-up)."""
        same = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(self, f.name)}
        return TrainConfig(**same, model="gpt", max_iters=self.steps, progress=False)


def load_bert(path):
    """(model, tokenizer, special) from a checkpoint written by pretrain(objective="mlm+nsp");
    the model comes in eval mode (call .train() to fine-tune it)."""
    arrays, meta = checkpoint.load(path)
    if meta["model"]["kind"] != Bert.kind or "special" not in meta:
        raise ValueError(f"{path} holds a {meta['model']['kind']!r} model, not a pre-trained BERT")
    model = Bert(BertConfig(**meta["model"]["config"]))
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval(), load_tokenizer(meta["tokenizer"]), SpecialTokens.from_dict(meta["special"])


def pretrain(log=print, **options):
    """Pre-train with PretrainConfig(**options); returns a summary dict.

    clm: tinylm.train.Trainer's summary (a GPT; checkpoints OUT/best.ckpt and OUT/last.ckpt).
    mlm+nsp: {"steps", "train_losses", "evals" (one dict per evaluation: step, loss, mlm_loss,
    nsp_loss, nsp_accuracy on the validation sentences, the same batches every time), "best_val",
    "best", "last"} with checkpoints OUT/best.ckpt (lowest validation loss) and OUT/last.ckpt.
    """
    cfg = PretrainConfig(**options)
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {cfg.objective!r}: expected one of {', '.join(OBJECTIVES)}")
    if cfg.objective == "clm":
        return {"objective": "clm", **Trainer(cfg.train_config(), log).run()}
    for name in ("batch_size", "steps", "eval_interval", "eval_iters"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    text = load_text(cfg.data)
    tokenizer = build_tokenizer(cfg.tokenizer, text, cfg.vocab_size if cfg.tokenizer in ("bpe", "word") else None)
    special = SpecialTokens(tokenizer.vocab_size)
    sentences = split_sentences(text)
    n_val = max(3, round(0.1 * len(sentences)))
    train_sentences, val_sentences = sentences[:-n_val], sentences[-n_val:]
    if len(train_sentences) < 3:
        raise ValueError(f"the text has {len(sentences)} sentences: mlm+nsp needs at least {n_val + 3} "
                         f"({n_val} for validation and 3 for training)")
    model = Bert(BertConfig(vocab_size=special.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                            n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout))
    if cfg.device != "cpu":
        model.to(cfg.device)
    optimizer = configure_optimizer(model, cfg.train_config())
    log(f"bert with {model.num_parameters():,} parameters; {cfg.tokenizer} tokenizer, vocabulary "
        f"{tokenizer.vocab_size} + {len(special.NAMES)} special; {len(train_sentences):,} training sentences")

    def evaluate(step):
        """Mean losses and NSP accuracy over the same eval_iters validation batches every time."""
        eval_rng = np.random.default_rng([cfg.seed, 1])
        rows = []
        model.eval()
        with no_grad():
            for _ in range(cfg.eval_iters):
                batch = build_bert_batch(nsp_pairs(val_sentences, eval_rng, cfg.batch_size), tokenizer, special,
                                         cfg.block_size, eval_rng, cfg.mask_prob)
                out = model(**batch)
                correct = (out.nsp_logits.numpy().argmax(-1) == batch["nsp_labels"]).mean()
                rows.append([out.loss.item(), out.mlm_loss.item(), out.nsp_loss.item(), correct])
        model.train()
        loss, mlm, nsp, accuracy = np.mean(rows, axis=0).tolist()
        log(f"step {step}: val loss {loss:.4f} (mlm {mlm:.4f}, nsp {nsp:.4f}, nsp accuracy {accuracy:.1%})")
        return {"step": step, "loss": loss, "mlm_loss": mlm, "nsp_loss": nsp, "nsp_accuracy": accuracy}

    paths = {"best": os.path.join(cfg.out, "best.ckpt"), "last": os.path.join(cfg.out, "last.ckpt")}
    extra = {"special": special.to_dict(), "pretrain_config": dataclasses.asdict(cfg)}
    train_losses, evals, best_val = [], [], float("inf")
    for step in range(cfg.steps + 1):
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            evals.append(evaluate(step))
            if evals[-1]["loss"] < best_val:
                best_val = evals[-1]["loss"]
                save_checkpoint(paths["best"], model, optimizer, tokenizer, step, {**extra, "best_val": best_val})
        if step == cfg.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.steps)
        batch = build_bert_batch(nsp_pairs(train_sentences, rng, cfg.batch_size), tokenizer, special,
                                 cfg.block_size, rng, cfg.mask_prob)
        loss = model(**batch).loss
        loss.backward()
        if cfg.grad_clip:
            clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        train_losses.append(loss.item())
    save_checkpoint(paths["last"], model, optimizer, tokenizer, cfg.steps, {**extra, "best_val": best_val})
    return {"objective": "mlm+nsp", "steps": cfg.steps, "train_losses": train_losses, "evals": evals,
            "best_val": best_val, **paths}
