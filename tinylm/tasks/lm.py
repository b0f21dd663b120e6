"""Causal language modelling (004.pretrain.loss, 003.clm done right): predict every next token.

    text -> tokenizer -> ids -> 90% train / 10% validation
    batch: random windows x = ids[i:i+T], y = ids[i+1:i+T+1];   loss = model(x, y)[1]
           = -1/(B T) Σ log P(y_bt | x_b,≤t)

    Trainer(LanguageModeling(LMConfig(data="text.txt", max_iters=500))).run()

GPT, Llama, LSTM or RNN models (tinylm.models). With carry_state, a recurrent model reads the
text as batch_size parallel streams and carries its hidden state from one batch to the next
(truncated backpropagation through time).
"""
from dataclasses import dataclass

import numpy as np

from .. import checkpoint, distributed
from ..autograd import no_grad
from ..config import option
from ..data import build_tokenizer, get_batch, load_text, train_val_split
from ..models import LlamaConfig, build_model
from ..tensor import Tensor
from ..train import Task, TrainConfig, estimate_bytes, fingerprint_of


@dataclass
class LMConfig(TrainConfig):
    data: str = option(None, "UTF-8 text file (default: the documentation text inside CPython)")
    model: str = option("gpt", "gpt, llama, lstm or rnn", choices=["gpt", "llama", "lstm", "rnn"])
    tokenizer: str = option("char", "char, word or bpe", choices=["char", "word", "bpe"])
    vocab_size: int = option(512, "vocabulary size for bpe (and the cap for word)", min=2)
    n_layer: int = option(4, "transformer blocks (gpt, llama) or recurrent layers", min=1)
    n_head: int = option(4, "attention heads (gpt, llama)", min=1)
    n_kv_heads: int = option(None, "llama: key/value heads, a divisor of n-head (grouped-query attention; "
                             "default: n-head)", min=1)
    intermediate_size: int = option(None, "llama: SwiGLU's hidden width (default: 8/3 n-embd rounded up to a "
                                    "multiple of 32)", min=1)
    tie_weights: bool = option(True, "llama: the output layer shares the token embedding's weight (gpt always does)")
    n_embd: int = option(128, "embedding width", min=1)
    n_hidden: int = option(256, "hidden size (lstm, rnn)", min=1)
    block_size: int = option(64, "context length in tokens", min=1)
    dropout: float = option(0.0, "dropout probability", min=0.0, below=1.0)
    carry_state: bool = option(False, "lstm/rnn: read the text as parallel streams and carry the hidden state "
                               "across batches")

    def memory_needed(self, vocab_size=None):
        """estimate_bytes of this model and batch (vocabulary: vocab_size, or 256 characters)."""
        V = vocab_size or vocab_cap(self) or 256
        E, L, T, B = self.n_embd, self.n_layer, self.block_size, self.batch_size
        if self.model == "gpt":
            parameters = V * E + T * E + L * (12 * E * E + 13 * E) + 2 * E
            per_token = L * (16 * E + 2 * self.n_head * T) + 4 * V  # attention keeps a T-long row per head
        elif self.model == "llama":  # per layer: q, o (E x E), k, v (E x kv), SwiGLU (3 E x F), two RMSNorms
            shape = LlamaConfig(**self.model_fields(V))
            kv, F = shape.kv_heads * (E // self.n_head), shape.hidden_size
            head = 0 if self.tie_weights else V * E
            parameters = V * E + head + L * (2 * E * E + 2 * E * kv + 3 * E * F + 2 * E) + E
            per_token = L * (12 * E + 4 * F + 2 * self.n_head * T) + 4 * V
        else:
            H, gates = self.n_hidden, 4 if self.model == "lstm" else 1
            parameters = V * E + gates * (E + H) * H + (L - 1) * gates * 2 * H * H + H * V
            per_token = L * 8 * H + 4 * V
        return estimate_bytes(parameters, B * T * per_token)

    def model_fields(self, vocab_size):
        common = {"vocab_size": vocab_size, "block_size": self.block_size, "n_layer": self.n_layer,
                  "dropout": self.dropout, "n_embd": self.n_embd}
        if self.model == "gpt":
            return {**common, "n_head": self.n_head}
        if self.model == "llama":
            return {**common, "n_head": self.n_head, "n_kv_heads": self.n_kv_heads,
                    "intermediate_size": self.intermediate_size, "tie_weights": self.tie_weights}
        return {**common, "n_hidden": self.n_hidden}


def vocab_cap(cfg):
    """The vocabulary size asked of a bpe or word tokenizer; None for char (its text's characters)."""
    return cfg.vocab_size if cfg.tokenizer in ("bpe", "word") else None


def trained_on(cfg, data_hash):
    """A text task's fingerprint: the text's hash, the tokenizer kind and its vocabulary size."""
    return {"data": data_hash, "tokenizer": cfg.tokenizer, "vocab_size": vocab_cap(cfg)}


class LanguageModeling(Task):
    """Next-token prediction on a text file; evaluation: the mean loss on both splits."""

    kind = "lm"
    unit = "tokens"

    def setup(self, saved):
        cfg = self.cfg
        if cfg.carry_state and cfg.model in ("gpt", "llama"):
            raise ValueError(f"carry-state is for the recurrent models (--model lstm or rnn), not {cfg.model}")
        if cfg.carry_state and distributed.world().size > 1:
            raise ValueError("carry-state runs on one process: each stream's hidden state would live on one rank")
        text = load_text(cfg.data)
        self.data_hash = fingerprint_of(text)
        if saved is None:
            tokenizer = build_tokenizer(cfg.tokenizer, text, vocab_cap(cfg))
            self.model = build_model(cfg.model, tokenizer=tokenizer, **cfg.model_fields(tokenizer.vocab_size))
        else:
            self._check_resumable(saved[1])
            self.model = checkpoint.model_from(*saved, path=cfg.out)
        ids = np.asarray(self.model.tokenizer.encode(text), dtype=np.int64)
        self.train_ids, self.val_ids = train_val_split(ids)
        if min(len(self.train_ids), len(self.val_ids)) <= cfg.block_size:
            raise ValueError(f"the text is too short: {len(ids)} tokens give a validation split of "
                             f"{len(self.val_ids)} tokens, not more than block_size {cfg.block_size}")
        self.stream_pos, self.carry = 0, None

    def _check_resumable(self, meta):
        saved, cfg = meta["model"], self.cfg
        if saved["kind"] != cfg.model:
            raise ValueError(f"{cfg.out}/last.ckpt holds a {saved['kind']} model, but --model {cfg.model} was asked for")
        wanted = cfg.model_fields(saved["config"]["vocab_size"])
        diff = [f"{k}={saved['config'][k]} (asked {v})" for k, v in wanted.items() if saved["config"].get(k) != v]
        if diff:
            raise ValueError(f"{cfg.out}/last.ckpt does not match the requested model: " + ", ".join(diff))

    def fingerprint(self):
        return trained_on(self.cfg, self.data_hash)

    def describe(self):
        return (f"{self.cfg.model} with {self.model.num_parameters():,} parameters; {self.cfg.tokenizer} tokenizer, "
                f"vocabulary {self.model.tokenizer.vocab_size}; {len(self.train_ids):,} training tokens")

    # --- batches and the loss ---------------------------------------------------------------
    def batch(self, i, rng):
        if self.cfg.carry_state:
            return self.stream_batch()
        return get_batch(self.train_ids, self.cfg.batch_size, self.cfg.block_size, rng)

    def batch_items(self, batch):
        return batch[0].size

    def stream_batch(self):
        """The next windows of batch_size parallel streams of the training text: row b reads
        stream b from position stream_pos on, so the hidden state left by one batch is the
        right start for the next (truncated backpropagation through time)."""
        T, B = self.cfg.block_size, self.cfg.batch_size
        length = (len(self.train_ids) - 1) // B
        if length <= T:
            raise ValueError(f"carry-state needs more than block_size {T} tokens per stream, got {length}")
        if self.stream_pos + T > length:      # the streams are used up: start again, from a fresh state
            self.stream_pos, self.carry = 0, None
        starts = np.arange(B)[:, None] * length + self.stream_pos + np.arange(T)
        self.stream_pos += T
        return self.train_ids[starts], self.train_ids[starts + 1]

    def loss(self, batch):
        x, y = batch
        if not self.cfg.carry_state:
            return self.model(x, y)[1]
        _, loss = self.model(x, y, state=self.carry)
        self.carry = self.model.detached_state()
        return loss

    def evaluate(self, step):
        """Mean loss over eval_iters batches of each split, from a generator of their own (seeded
        by the step), so evaluating never changes what training sees."""
        cfg, out = self.cfg, {}
        self.model.eval()
        with no_grad():
            for split, data in (("train", self.train_ids), ("val", self.val_ids)):
                rng = np.random.default_rng([cfg.seed, step, split == "val"])
                losses = [self.model(*self.on_device(get_batch(data, cfg.batch_size, cfg.block_size, rng)))[1].item()
                          for _ in range(cfg.eval_iters)]
                out[f"{split}_loss"] = float(np.mean(losses))
        self.model.train()
        return out

    # --- what a resume needs besides the weights ------------------------------------------------
    def state(self):
        carried = () if self.carry is None else self.carry if isinstance(self.carry, tuple) else (self.carry,)
        return {"stream_pos": self.stream_pos}, {f"carry/{i}": t.numpy() for i, t in enumerate(carried)}

    def load_state(self, meta, arrays):
        self.stream_pos = meta["stream_pos"]
        carried = tuple(Tensor(arrays[f"carry/{i}"]) for i in range(2) if f"carry/{i}" in arrays)
        if carried:
            carried = tuple(t.to(self.cfg.device) for t in carried)
            self.carry = carried if self.cfg.model == "lstm" else carried[0]
