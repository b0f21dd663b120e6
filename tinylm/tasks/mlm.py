"""Pre-training objectives: BERT's masked LM + next sentence prediction, or a causal LM.

    mlm+nsp (003.mlm, 003.nsp), an encoder (tinylm.models.bert), data from tinylm.data.mlm:
        batch = [CLS] A [SEP] B [SEP] pairs, 15% of the tokens to predict (80/10/10)
        loss  = CE(MLM at the selected positions) + CE(NSP on [CLS])
    clm (003.clm done right): a decoder-only GPT predicting each next token (tasks.lm).

    pretrain(objective="mlm+nsp", max_iters=500, out="out-bert")
    model, tokenizer, special = load_bert("out-bert/best.ckpt")
"""
from dataclasses import dataclass, fields

import numpy as np

from .. import checkpoint
from ..autograd import no_grad
from ..config import option
from ..data import build_tokenizer, load_text
from ..data.mlm import SpecialTokens, build_bert_batch, nsp_pairs, split_sentences
from ..models import build_model
from ..train import Task, Trainer, TrainConfig, fingerprint_of
from .lm import LanguageModeling, LMConfig, trained_on, vocab_cap

OBJECTIVES = ("mlm+nsp", "clm")


@dataclass
class PretrainConfig(TrainConfig):
    objective: str = option("mlm+nsp", "mlm+nsp (a BERT-style encoder) or clm (a GPT)", choices=list(OBJECTIVES))
    data: str = option(None, "UTF-8 text file (default: the documentation text inside CPython)")
    tokenizer: str = option("word", "char, word or bpe", choices=["char", "word", "bpe"])
    vocab_size: int = option(1000, "vocabulary size for bpe (and the cap for word); special tokens come on top",
                             min=2)
    n_layer: int = option(2, "transformer blocks", min=1)
    n_head: int = option(4, "attention heads", min=1)
    n_embd: int = option(128, "hidden size", min=1)
    block_size: int = option(64, "bert: the longest [CLS] A [SEP] B [SEP]; gpt: the context", min=1)
    dropout: float = option(0.1, "dropout probability", min=0.0, below=1.0)
    mask_prob: float = option(0.15, "mlm: the share of tokens to mask and predict", min=0.0, max=1.0)
    # the loop's defaults for pre-training (BERT's optimizer settings)
    batch_size: int = option(16, "sentence pairs (or sequences) per micro-batch", min=1)
    max_iters: int = option(1000, "optimizer steps", min=1)
    lr: float = option(5e-4, "peak learning rate", min=0.0)
    min_lr: float = option(5e-5, "learning rate at the end of the cosine decay", min=0.0)
    weight_decay: float = option(0.01, "weight decay (matrices only; decoupled for adamw)", min=0.0)
    beta2: float = option(0.999, "Adam beta2", min=0.0, below=1.0)
    eval_interval: int = option(200, "steps between evaluations", min=1)
    eval_iters: int = option(10, "batches per evaluation", min=1)
    out: str = option("out-pretrain", "output folder (best.ckpt, last.ckpt, metrics.jsonl)")

    def memory_needed(self):
        """About a GPT's of the same sizes (tasks.lm), the special tokens on top of the vocabulary."""
        return self.lm_config().memory_needed(vocab_cap(self) + 4 if vocab_cap(self) else 256)

    def lm_config(self):
        """The same settings for a GPT trained as a causal LM (the clm objective)."""
        same = {f.name: getattr(self, f.name) for f in fields(LMConfig) if hasattr(self, f.name)}
        return LMConfig(**same, model="gpt")


class MaskedLM(Task):
    """BERT pre-training: masked LM + next sentence prediction on the sentences of a text."""

    kind = "mlm+nsp"
    unit = "pairs"

    def setup(self, saved):
        cfg = self.cfg
        text = load_text(cfg.data)
        self.data_hash = fingerprint_of(text)
        sentences = split_sentences(text)
        n_val = max(3, round(0.1 * len(sentences)))
        self.train_sentences, self.val_sentences = sentences[:-n_val], sentences[-n_val:]
        if len(self.train_sentences) < 3:
            raise ValueError(f"the text has {len(sentences)} sentences: mlm+nsp needs at least {n_val + 3} "
                             f"({n_val} for validation and 3 for training)")
        if saved is None:
            tokenizer = build_tokenizer(cfg.tokenizer, text, vocab_cap(cfg))
            self.model = build_model("bert", tokenizer=tokenizer, vocab_size=SpecialTokens(tokenizer.vocab_size).vocab_size,
                                     block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                                     n_embd=cfg.n_embd, dropout=cfg.dropout)
        else:
            self.model = checkpoint.model_from(*saved, path=cfg.out)
        self.special = SpecialTokens(self.model.tokenizer.vocab_size)

    def fingerprint(self):
        return trained_on(self.cfg, self.data_hash)

    def describe(self):
        return (f"bert with {self.model.num_parameters():,} parameters; {self.cfg.tokenizer} tokenizer, vocabulary "
                f"{self.special.base_vocab_size} + {len(self.special.NAMES)} special; "
                f"{len(self.train_sentences):,} training sentences")

    def _batch(self, sentences, rng):
        cfg = self.cfg
        return build_bert_batch(nsp_pairs(sentences, rng, cfg.batch_size), self.model.tokenizer, self.special,
                                cfg.block_size, rng, cfg.mask_prob)

    def batch(self, i, rng):
        return self._batch(self.train_sentences, rng)

    def loss(self, batch):
        return self.model(**batch).loss

    def evaluate(self, step):
        """Mean losses and NSP accuracy over the same eval_iters validation batches every time."""
        rng = np.random.default_rng([self.cfg.seed, 1])
        rows = []
        self.model.eval()
        with no_grad():
            for _ in range(self.cfg.eval_iters):
                batch = self._batch(self.val_sentences, rng)
                out = self.model(**self.on_device(batch))
                correct = (out.nsp_logits.numpy().argmax(-1) == batch["nsp_labels"]).mean()
                rows.append([out.loss.item(), out.mlm_loss.item(), out.nsp_loss.item(), correct])
        self.model.train()
        loss, mlm, nsp, accuracy = np.mean(rows, axis=0).tolist()
        return {"val_loss": loss, "mlm_loss": mlm, "nsp_loss": nsp, "nsp_accuracy": accuracy}


def pretrain(log=print, **options):
    """Pre-train with PretrainConfig(**options); returns the Trainer's summary and the objective.

    mlm+nsp: evaluations hold val_loss, mlm_loss, nsp_loss and nsp_accuracy on the validation
    sentences (the same batches every time). clm: a GPT, evaluations hold train_loss and val_loss.
    Checkpoints OUT/best.ckpt (lowest validation loss) and OUT/last.ckpt.
    """
    cfg = PretrainConfig(**options)
    task = LanguageModeling(cfg.lm_config()) if cfg.objective == "clm" else MaskedLM(cfg)
    return {"objective": cfg.objective, **Trainer(task, log).run()}


def load_bert(path):
    """(model, tokenizer, special) from a checkpoint written by pretrain(objective="mlm+nsp");
    the model comes in eval mode (call .train() to fine-tune it)."""
    model, _ = checkpoint.load_model(path)
    if model.kind != "bert":
        raise ValueError(f"{path} holds a {model.kind!r} model, not a pre-trained BERT")
    return model, model.tokenizer, SpecialTokens(model.tokenizer.vocab_size)

