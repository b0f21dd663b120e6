"""Training an encoder–decoder Transformer (003.arch) on the numbers task, scored with BLEU.

    task = numbers 0..max_number, digits <-> words (tinylm.data.transduction)
    batch: src, tgt_in, tgt_out = a random batch of training pairs
    loss = cross-entropy(model(src, tgt_in), tgt_out) over the non-pad positions (optionally
           label-smoothed); teacher forcing: the decoder reads the true prefix
    then decode the test split greedily and with beam search, and score the outputs:
        BLEU (tinylm.metrics.corpus_bleu, 0..100) and exact match (the share of outputs equal to the reference)

    result = train_seq2seq(max_iters=300, direction="digits2words")
    result["test"]["greedy"]["exact_match"], result["test"]["beam"]["bleu"]
"""
from dataclasses import dataclass

import numpy as np

from .. import checkpoint
from ..autograd import no_grad
from ..config import option
from ..data.transduction import make_task
from ..metrics import corpus_bleu
from ..models import build_model
from ..models.inputs import on_model_device
from ..nn import functional as F
from ..tensor import Tensor
from ..train import Task, Trainer, TrainConfig


@dataclass
class Seq2SeqTrainConfig(TrainConfig):
    direction: str = option("digits2words", "digits2words or words2digits", choices=["digits2words", "words2digits"])
    max_number: int = option(999, "the task's numbers: 0..max_number", min=1)
    d_model: int = option(64, "model width", min=1)
    nhead: int = option(4, "attention heads", min=1)
    num_layers: int = option(2, "encoder blocks, and as many decoder blocks", min=1)
    dim_feedforward: int = option(128, "feed-forward width", min=1)
    dropout: float = option(0.1, "dropout probability", min=0.0, below=1.0)
    share_embeddings: bool = option(True, "one table for source words, target words and the output layer")
    label_smoothing: float = option(0.0, "label smoothing epsilon", min=0.0, below=1.0)
    beam_size: int = option(4, "beams for the test decoding", min=1)
    length_penalty: float = option(0.0, "0: rank beams by log-probability; 1 (HF's default) favours longer outputs")
    max_eval: int = option(None, "decode only the first max_eval test pairs (default: all)", min=1)
    # the loop's defaults for this task
    max_iters: int = option(1000, "optimizer steps", min=1)
    batch_size: int = option(32, "sentence pairs per micro-batch", min=1)
    warmup_iters: int = option(50, "linear warm-up steps", min=0)
    weight_decay: float = option(0.01, "weight decay (matrices only; decoupled for adamw)", min=0.0)
    seed: int = option(0, "random seed", min=0)
    out: str = option("out-seq2seq", "output folder (best.ckpt, last.ckpt, metrics.jsonl)")


def sequence_loss(logits, tgt_out, pad_id, label_smoothing=0.0):
    """Mean cross-entropy of the next-token predictions over the non-pad target positions.

    With label smoothing ε the target distribution is (1-ε) on the right token and ε spread
    evenly over all V tokens:  L = (1-ε) · CE + ε · mean_c(-log p_c)  (Szegedy et al. 2016).
    """
    V = logits.shape[-1]
    logits, target = logits.reshape(-1, V), on_model_device(tgt_out, logits).reshape(-1)
    loss = F.cross_entropy(logits, target, ignore_index=pad_id)
    if not label_smoothing:
        return loss
    real = Tensor((target != pad_id).astype(logits.dtype))
    spread = -(logits.log_softmax(-1).mean(-1) * real).sum() / real.sum()
    return loss * (1 - label_smoothing) + spread * label_smoothing


def decode_budget(pairs, vocab):
    """How many tokens to let the decoder produce: the longest target of the task plus <eos>, plus slack."""
    return max(len(vocab.encode(t)) for _, t in pairs) + 3


def evaluate_seq2seq(model, vocab, pairs, beam_size=4, length_penalty=0.0, max_len=None):
    """Decode every source of `pairs` greedily and with beam search; BLEU and exact match of each.

    Returns {"greedy": {"bleu", "exact_match", "outputs"}, "beam": {...}}: BLEU in 0..100 over
    the word tokens, exact_match in 0..1, outputs the decoded texts in the order of `pairs`.
    """
    if not pairs:
        raise ValueError("evaluate_seq2seq needs at least one (source, target) pair")
    src, _, _ = vocab.batch(pairs)
    max_len = max_len or decode_budget(pairs, vocab)
    ids = {"greedy": model.greedy_decode(src, max_len, vocab.bos_id, vocab.eos_id)[0],
           "beam": model.beam_search(src, beam_size, max_len, vocab.bos_id, vocab.eos_id, length_penalty)[0]}
    references = [t for _, t in pairs]
    scores = {}
    for name, sequences in ids.items():
        outputs = [vocab.decode(s) for s in sequences]
        scores[name] = {"bleu": corpus_bleu([o.split() for o in outputs], [[r.split()] for r in references]),
                        "exact_match": float(np.mean([o == r for o, r in zip(outputs, references)])),
                        "outputs": outputs}
    return scores


def validation_loss(model, vocab, pairs, batch_size=128):
    """Mean cross-entropy per target token over `pairs` (teacher forcing, no dropout)."""
    was_training = model.training
    model.eval()
    total = count = 0
    with no_grad():
        for i in range(0, len(pairs), batch_size):
            src, tgt_in, tgt_out = vocab.batch(pairs[i:i + batch_size])
            n = int((tgt_out != vocab.pad_id).sum())
            total += sequence_loss(model(src, tgt_in), tgt_out, vocab.pad_id).item() * n
            count += n
    model.train(was_training)
    return total / count


class Translation(Task):
    """The numbers task: source words in, target words out; evaluation: the validation loss."""

    kind = "seq2seq"
    unit = "pairs"

    def setup(self, saved):
        cfg = self.cfg
        self.task = make_task(cfg.max_number, cfg.direction, seed=cfg.seed)
        vocab, V = self.task.vocab, len(self.task.vocab)
        if saved is None:
            pairs = self.task.train + self.task.val + self.task.test
            longest = max(max(len(s.split()), len(t.split())) for s, t in pairs)
            self.model = build_model("seq2seq", tokenizer=vocab, src_vocab_size=V, tgt_vocab_size=V,
                                     d_model=cfg.d_model, nhead=cfg.nhead, num_encoder_layers=cfg.num_layers,
                                     num_decoder_layers=cfg.num_layers, dim_feedforward=cfg.dim_feedforward,
                                     dropout=cfg.dropout, max_len=longest + 8, pad_id=vocab.pad_id,
                                     share_embeddings=cfg.share_embeddings)
        else:
            self.model = checkpoint.model_from(*saved, path=cfg.out)

    def fingerprint(self):
        return {"direction": self.cfg.direction, "max_number": self.cfg.max_number}

    def describe(self):
        cfg = self.cfg
        return (f"seq2seq with {self.model.num_parameters():,} parameters on {cfg.direction} 0..{cfg.max_number}: "
                f"{len(self.task.train)} training pairs, vocabulary {len(self.task.vocab)}")

    def batch(self, i, rng):
        train = self.task.train
        return self.task.vocab.batch([train[j] for j in rng.integers(0, len(train), self.cfg.batch_size)])

    def loss(self, batch):
        src, tgt_in, tgt_out = batch
        return sequence_loss(self.model(src, tgt_in), tgt_out, self.task.vocab.pad_id, self.cfg.label_smoothing)

    def evaluate(self, step):
        return {"val_loss": validation_loss(self.model, self.task.vocab, self.task.val)}


def train_seq2seq(log=print, **options):
    """Train on the numbers task with Seq2SeqTrainConfig(**options); evaluate on the test split.

    Returns the Trainer's summary with "model", "vocab", "test" (evaluate_seq2seq's dict of the
    final model) and "checkpoint" (its path, OUT/last.ckpt).
    """
    task = Translation(Seq2SeqTrainConfig(**options))
    summary = Trainer(task, log).run()
    cfg, model, vocab = task.cfg, task.model, task.task.vocab
    test = evaluate_seq2seq(model, vocab, task.task.test[:cfg.max_eval], cfg.beam_size, cfg.length_penalty)
    for name, s in test.items():
        log(f"test {name}: BLEU {s['bleu']:.1f}, exact match {s['exact_match']:.1%}")
    return {**summary, "model": model, "vocab": vocab, "test": test, "checkpoint": summary["last"]}


def load_seq2seq(path):
    """(model, vocab) from a checkpoint written by train_seq2seq."""
    model, _ = checkpoint.load_model(path, kinds=("seq2seq",))
    return model, model.tokenizer


def translate(model, vocab, text, beam_size=4, length_penalty=0.0, max_len=None):
    """The model's output text for one source text (beam search; beam_size=1 is greedy)."""
    src = np.array([vocab.encode(text)], dtype=np.int64)
    max_len = max_len or min(model.config.max_len - 1, 2 * src.shape[1] + 8)
    ids = model.beam_search(src, beam_size, max_len, vocab.bos_id, vocab.eos_id, length_penalty)[0][0]
    return vocab.decode(ids)
