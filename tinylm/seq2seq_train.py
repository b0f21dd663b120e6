"""Training an encoder–decoder Transformer (003.arch) on the numbers task, scored with BLEU.

    task = numbers 0..max_number, digits <-> words (tinylm.data.transduction)
    for step in range(steps):
        src, tgt_in, tgt_out = a random batch of training pairs
        logits = model(src, tgt_in)                 # teacher forcing: the decoder reads the true prefix
        loss = cross-entropy(logits, tgt_out) over the non-pad positions (optionally label-smoothed)
        backward; clip the gradient norm; AdamW step with warm-up + cosine learning rate
    then decode the test split greedily and with beam search, and score the outputs:
        BLEU (tinylm.metrics.corpus_bleu, 0..100) and exact match (the share of outputs equal to the reference)

    result = train_seq2seq(steps=300, direction="digits2words")
    result["test"]["greedy"]["exact_match"], result["test"]["beam"]["bleu"]
"""
import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from . import checkpoint
from .nn import functional as F
from .autograd import no_grad
from .data.transduction import Vocab, make_task
from .metrics import corpus_bleu
from .models.seq2seq import Seq2Seq, Seq2SeqConfig
from .optim import clip_grad_norm_, warmup_cosine
from .random import manual_seed
from .tensor import Tensor
from .train import TrainConfig, configure_optimizer, save_checkpoint


@dataclass
class Seq2SeqTrainConfig:
    direction: str = "digits2words"   # digits2words | words2digits
    max_number: int = 999             # the task's numbers: 0..max_number
    d_model: int = 64
    nhead: int = 4
    num_layers: int = 2               # encoder blocks, and as many decoder blocks
    dim_feedforward: int = 128
    dropout: float = 0.1
    share_embeddings: bool = True     # one table for source words, target words and the output layer
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    eval_interval: int = 250          # steps between validation losses in the log
    beam_size: int = 4
    length_penalty: float = 0.0       # 0: rank beams by log-probability; 1 (HF's default) favours longer outputs
    max_eval: int = None              # decode only the first max_eval test pairs (None: all)
    seed: int = 0
    out: str = None                   # a folder for seq2seq.ckpt (None: nothing saved)


def sequence_loss(logits, tgt_out, pad_id, label_smoothing=0.0):
    """Mean cross-entropy of the next-token predictions over the non-pad target positions.

    With label smoothing ε the target distribution is (1-ε) on the right token and ε spread
    evenly over all V tokens:  L = (1-ε) · CE + ε · mean_c(-log p_c)  (Szegedy et al. 2016).
    """
    V = logits.shape[-1]
    logits, target = logits.reshape(-1, V), np.asarray(tgt_out).reshape(-1)
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


def train_seq2seq(log=print, **options):
    """Train on the numbers task with Seq2SeqTrainConfig(**options); evaluate on the test split.

    Returns {"model", "vocab", "config", "train_losses", "val_losses" [(step, loss)],
    "test": evaluate_seq2seq's dict, "checkpoint": path or None}.
    """
    cfg = Seq2SeqTrainConfig(**options)
    for name in ("steps", "batch_size", "num_layers", "beam_size", "eval_interval"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if not 0 <= cfg.label_smoothing < 1:
        raise ValueError(f"label-smoothing must be in [0, 1), got {cfg.label_smoothing}")
    manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    task = make_task(cfg.max_number, cfg.direction, seed=cfg.seed)
    vocab = task.vocab
    V = len(vocab)
    longest = max(max(len(s.split()), len(t.split())) for s, t in task.train + task.val + task.test)
    model = Seq2Seq(Seq2SeqConfig(V, V, cfg.d_model, cfg.nhead, cfg.num_layers, cfg.num_layers,
                                  cfg.dim_feedforward, cfg.dropout, max_len=longest + 8, pad_id=vocab.pad_id,
                                  share_embeddings=cfg.share_embeddings))
    # the trainer's optimizer set-up: AdamW, no weight decay on biases and LayerNorm gains
    optimizer = configure_optimizer(model, TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay))
    log(f"seq2seq with {model.num_parameters():,} parameters on {cfg.direction} 0..{cfg.max_number}: "
        f"{len(task.train)} training pairs, vocabulary {V}")
    train_losses, val_losses = [], []
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, cfg.steps)
        src, tgt_in, tgt_out = vocab.batch([task.train[i] for i in rng.integers(0, len(task.train), cfg.batch_size)])
        loss = sequence_loss(model(src, tgt_in), tgt_out, vocab.pad_id, cfg.label_smoothing)
        loss.backward()
        if cfg.grad_clip:
            clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        train_losses.append(loss.item())
        if (step + 1) % cfg.eval_interval == 0 or step + 1 == cfg.steps:
            val_losses.append((step + 1, validation_loss(model, vocab, task.val)))
            log(f"step {step + 1}: train loss {train_losses[-1]:.4f}, val loss {val_losses[-1][1]:.4f}")
    test = evaluate_seq2seq(model, vocab, task.test[:cfg.max_eval], cfg.beam_size, cfg.length_penalty)
    for name, s in test.items():
        log(f"test {name}: BLEU {s['bleu']:.1f}, exact match {s['exact_match']:.1%}")
    path = None
    if cfg.out:
        path = os.path.join(cfg.out, "seq2seq.ckpt")
        save_checkpoint(path, model, optimizer, vocab, cfg.steps,
                        {"train_config": dataclasses.asdict(cfg),
                         "test": {k: {m: s[m] for m in ("bleu", "exact_match")} for k, s in test.items()}})
    return {"model": model, "vocab": vocab, "config": cfg, "train_losses": train_losses,
            "val_losses": val_losses, "test": test, "checkpoint": path}


def load_seq2seq(path):
    """(model, vocab) from a checkpoint written by train_seq2seq."""
    arrays, meta = checkpoint.load(path)
    if meta["model"]["kind"] != Seq2Seq.kind:
        raise ValueError(f"{path} holds a {meta['model']['kind']!r} model, not a seq2seq one")
    model = Seq2Seq(Seq2SeqConfig(**meta["model"]["config"]))
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model.eval(), Vocab.from_dict(meta["tokenizer"])


def translate(model, vocab, text, beam_size=4, length_penalty=0.0, max_len=None):
    """The model's output text for one source text (beam search; beam_size=1 is greedy)."""
    src = np.array([vocab.encode(text)], dtype=np.int64)
    max_len = max_len or min(model.config.max_len - 1, 2 * src.shape[1] + 8)
    ids = model.beam_search(src, beam_size, max_len, vocab.bos_id, vocab.eos_id, length_penalty)[0][0]
    return vocab.decode(ids)
