"""Training a language model: the loop of 001.train / 002.loop on the engine.

    for step in range(max_iters):
        lr = warm-up then cosine decay
        for each of grad_accum micro-batches:  loss = model(x, y);  (loss / grad_accum).backward()
        clip the gradient norm;  AdamW step;  zero the gradients
        every eval_interval steps: estimate train and val loss, keep the best and last checkpoints,
        stop early when val loss has not improved for `patience` evaluations

Everything that decides what happens next — weights, optimizer moments, step, the random
generators of the batches and of dropout — goes into the checkpoint, so a resumed run
computes exactly the losses the uninterrupted run would have.
"""
import dataclasses
import json
import os
import time
from dataclasses import dataclass

import numpy as np

from . import checkpoint
from .amp import MixedPrecision
from .autograd import no_grad
from .backend import to_device
from .data import build_tokenizer, get_batch, load_text, load_tokenizer, train_val_split
from .models import MODELS, build_model
from .optim import SGD, AdamW, clip_grad_norm_, warmup_cosine
from .random import get_state, manual_seed, set_state
from .tensor import Tensor


@dataclass
class TrainConfig:
    data: str = None            # a UTF-8 text file; None: the documentation text inside CPython
    model: str = "gpt"          # gpt | lstm | rnn
    tokenizer: str = "char"     # char | word | bpe
    vocab_size: int = 512       # for bpe (and a cap for word)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    n_hidden: int = 256         # lstm/rnn hidden size
    block_size: int = 64
    batch_size: int = 12
    max_iters: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = None  # None: max_iters
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    optimizer: str = "adamw"    # adamw | sgd
    momentum: float = 0.9       # for sgd
    grad_clip: float = 1.0
    dropout: float = 0.0
    grad_accum: int = 1
    eval_interval: int = 250
    eval_iters: int = 20
    patience: int = None        # early stopping: evaluations without improvement
    log_interval: int = 10
    device: str = "cpu"
    seed: int = 1337
    out: str = "out"
    resume: bool = False
    progress: bool = True
    carry_state: bool = False   # lstm/rnn: read the text as batch_size streams, carrying the hidden state
    amp: bool = False           # mixed precision: float16 compute, float32 master weights, loss scaling

    def model_fields(self, vocab_size):
        common = {"vocab_size": vocab_size, "block_size": self.block_size, "n_layer": self.n_layer,
                  "dropout": self.dropout, "n_embd": self.n_embd}
        if self.model == "gpt":
            return {**common, "n_head": self.n_head}
        return {**common, "n_hidden": self.n_hidden}


def configure_optimizer(model, cfg, params=None):
    """AdamW (or SGD) with weight decay on matrices only: biases and LayerNorm gains are not decayed.
    params: the tensors to update, when not the model's own (mixed precision's master weights)."""
    params = list(model.parameters() if params is None else params)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw":
        return AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: expected 'adamw' or 'sgd'")


def model_from_meta(meta, arrays):
    """Rebuild a model from a checkpoint's description and load its weights."""
    kind, fields = meta["model"]["kind"], meta["model"]["config"]
    if kind not in MODELS:
        raise ValueError(f"checkpoint holds an unknown model kind {kind!r}")
    model = build_model(kind, **{k: v for k, v in fields.items() if k != "cell"})
    model.load_state_dict({k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")})
    return model


def save_checkpoint(path, model, optimizer, tokenizer, step, extra, more_arrays=None, state=None):
    """One checkpoint file; `state` replaces model.state_dict() (mixed precision's float32 masters)."""
    arrays = {f"model/{k}": v.numpy() for k, v in (state or model.state_dict()).items()}
    arrays.update(more_arrays or {})
    opt_state = optimizer.state_dict()
    for i, s in opt_state["state"].items():
        for k, v in s.items():
            arrays[f"optim/{i}/{k}"] = v if isinstance(v, np.ndarray) else v.get()
    meta = {"model": {"kind": model.kind, "config": dataclasses.asdict(model.config)},
            "tokenizer": tokenizer.to_dict(), "step": step,
            "optimizer": {"steps": opt_state["steps"], "groups": opt_state["groups"]},
            "rng": get_state(), **extra}
    checkpoint.save(path, arrays, meta)


def load_optimizer_state(optimizer, meta, arrays):
    state = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, i, name = key.split("/", 2)
            state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"steps": meta["optimizer"]["steps"], "groups": meta["optimizer"]["groups"],
                               "state": state})


def _carry_from_arrays(arrays, kind):
    """The carried hidden state from a checkpoint: (h, c) for an LSTM, h for an RNN."""
    tensors = tuple(Tensor(a) for a in arrays)
    return tensors if kind == "lstm" else tensors[0]


class Trainer:
    """Runs TrainConfig; `log` receives one line per message."""

    def __init__(self, cfg, log=print):
        self.cfg, self.log = cfg, log
        self.last_path = os.path.join(cfg.out, "last.ckpt")
        self.best_path = os.path.join(cfg.out, "best.ckpt")
        self.metrics_path = os.path.join(cfg.out, "metrics.jsonl")

    # --- set-up -------------------------------------------------------------------------
    def _setup(self):
        cfg = self.cfg
        for name in ("batch_size", "block_size", "max_iters", "grad_accum", "eval_interval", "eval_iters"):
            if getattr(cfg, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
        if cfg.carry_state and cfg.model == "gpt":
            raise ValueError("carry-state is for the recurrent models (--model lstm or rnn), not gpt")
        manual_seed(cfg.seed)
        self.batch_rng = np.random.default_rng(cfg.seed)
        self.stream_pos, self.carry = 0, None
        text = load_text(cfg.data)
        self.start_step, self.best_val, self.stale = 0, float("inf"), 0
        if cfg.resume:
            arrays, meta = checkpoint.load(self.last_path)
            self.tokenizer = load_tokenizer(meta["tokenizer"])
            self.model = model_from_meta(meta, arrays)
            self._check_resumable(meta)
            self.optimizer = configure_optimizer(self.model, cfg)
            load_optimizer_state(self.optimizer, meta, arrays)
            set_state(meta["rng"])
            self.batch_rng.bit_generator.state = meta["batch_rng"]
            self.stream_pos = meta.get("stream_pos", 0)
            carried = [arrays[f"carry/{i}"] for i in range(2) if f"carry/{i}" in arrays]
            self.carry = _carry_from_arrays(carried, cfg.model) if carried else None
            self.start_step, self.best_val, self.stale = meta["step"], meta["best_val"], meta["stale"]
            self.log(f"resuming from {self.last_path} at step {self.start_step}")
        else:
            vocab = cfg.vocab_size if cfg.tokenizer in ("bpe", "word") else None
            self.tokenizer = build_tokenizer(cfg.tokenizer, text, vocab)
            self.model = build_model(cfg.model, **cfg.model_fields(self.tokenizer.vocab_size))
            self.optimizer = configure_optimizer(self.model, cfg)
        if cfg.device != "cpu":
            self.model.to(cfg.device)
            for state in self.optimizer.state.values():
                for k in state:
                    state[k] = to_device(state[k], cfg.device)
        self.mp = None
        if cfg.amp:
            self.mp = MixedPrecision(self.model)
            saved = self.optimizer.state_dict()
            self.optimizer = configure_optimizer(self.model, cfg, self.mp.master_parameters())
            self.optimizer.load_state_dict(saved)
            if cfg.resume and "loss_scaler" in meta:
                self.mp.scaler.load_state_dict(meta["loss_scaler"])
        ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        self.train_ids, self.val_ids = train_val_split(ids)
        if min(len(self.train_ids), len(self.val_ids)) <= cfg.block_size:
            raise ValueError(f"the text is too short: {len(ids)} tokens give a validation split of "
                             f"{len(self.val_ids)} tokens, not more than block_size {cfg.block_size}")

    def _check_resumable(self, meta):
        saved, cfg = meta["model"], self.cfg
        if saved["kind"] != cfg.model:
            raise ValueError(f"{self.last_path} holds a {saved['kind']} model, but --model {cfg.model} was asked for")
        wanted = cfg.model_fields(saved["config"]["vocab_size"])
        diff = [f"{k}={saved['config'][k]} (asked {v})" for k, v in wanted.items() if saved["config"].get(k) != v]
        if diff:
            raise ValueError(f"{self.last_path} does not match the requested model: " + ", ".join(diff))

    # --- pieces of the loop ---------------------------------------------------------------
    def batch(self, split, rng):
        data = self.train_ids if split == "train" else self.val_ids
        x, y = get_batch(data, self.cfg.batch_size, self.cfg.block_size, rng)
        if self.cfg.device != "cpu":
            x, y = to_device(x, self.cfg.device), to_device(y, self.cfg.device)
        return x, y

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

    def estimate_loss(self, step):
        """Mean loss over eval_iters batches of each split, from a generator of their own (seeded
        by the step), so evaluating never changes what training sees."""
        self.model.eval()
        out = {}
        with no_grad():
            for split in ("train", "val"):
                rng = np.random.default_rng([self.cfg.seed, step, split == "val"])
                out[split] = float(np.mean([self.model(*self.batch(split, rng))[1].item()
                                            for _ in range(self.cfg.eval_iters)]))
        self.model.train()
        return out

    def _write_metrics(self, row):
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def _trim_metrics(self):
        """On resume, drop logged rows from steps the resumed run will log again."""
        if not os.path.exists(self.metrics_path):
            return
        with open(self.metrics_path, encoding="utf-8") as f:
            rows = [r for r in map(json.loads, f) if r["step"] < self.start_step]
        with open(self.metrics_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    def _save(self, path, step):
        carried = {} if self.carry is None else {
            f"carry/{i}": t.numpy() for i, t in enumerate(self.carry if isinstance(self.carry, tuple) else (self.carry,))}
        extra = {"batch_rng": self.batch_rng.bit_generator.state, "best_val": self.best_val, "stale": self.stale,
                 "stream_pos": self.stream_pos, "train_config": dataclasses.asdict(self.cfg)}
        if self.mp is not None:
            extra["loss_scaler"] = self.mp.scaler.state_dict()
        save_checkpoint(path, self.model, self.optimizer, self.tokenizer, step, extra, carried,
                        state=self.mp.master_state_dict() if self.mp is not None else None)

    # --- the loop -------------------------------------------------------------------------
    def run(self):
        """Train; returns a summary dict (steps, losses, best val loss, tokens/s, paths)."""
        cfg = self.cfg
        self._setup()
        os.makedirs(cfg.out, exist_ok=True)
        if cfg.resume:
            self._trim_metrics()
        elif os.path.exists(self.metrics_path):
            os.remove(self.metrics_path)
        n_params = self.model.num_parameters()
        self.log(f"{cfg.model} with {n_params:,} parameters; {cfg.tokenizer} tokenizer, vocabulary "
                 f"{self.tokenizer.vocab_size}; {len(self.train_ids):,} training tokens")
        decay_iters = cfg.lr_decay_iters or cfg.max_iters
        tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum
        bar = _progress(cfg, self.start_step)
        train_losses, history, step = [], [], self.start_step
        tokens_per_s, timer = 0.0, time.perf_counter()
        try:
            for step in range(self.start_step, cfg.max_iters + 1):
                if step % cfg.eval_interval == 0 or step == cfg.max_iters:
                    if not (cfg.resume and step == self.start_step):
                        if self._evaluate(step, history):
                            break
                    timer = time.perf_counter()
                if step == cfg.max_iters:
                    break
                lr = warmup_cosine(step, cfg.lr, cfg.min_lr, cfg.warmup_iters, decay_iters)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss = self._train_step()
                train_losses.append(loss)
                now = time.perf_counter()
                tokens_per_s = tokens_per_step / max(now - timer, 1e-9)
                timer = now
                if step % cfg.log_interval == 0:
                    self._write_metrics({"step": step, "train_loss": loss, "lr": lr, "tokens_per_s": tokens_per_s})
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_s:,.0f}")
                    bar.update(1)
            else:
                step = cfg.max_iters
        except KeyboardInterrupt:
            self.log(f"interrupted at step {step}: saving {self.last_path}")
        finally:
            if bar is not None:
                bar.close()
        self._save(self.last_path, step)
        _plot_losses(self.metrics_path, os.path.join(cfg.out, "loss.png"))
        return {"steps": step, "train_losses": train_losses, "evals": history, "best_val": self.best_val,
                "tokens_per_s": tokens_per_s, "last": self.last_path, "best": self.best_path}

    def _train_step(self):
        cfg = self.cfg
        total = 0.0
        for _ in range(cfg.grad_accum):
            if cfg.carry_state:
                x, y = self.stream_batch()
                _, loss = self.model(x, y, state=self.carry)
                self.carry = self.model.detached_state()
            else:
                x, y = self.batch("train", self.batch_rng)
                _, loss = self.model(x, y)
            total += loss.item() / cfg.grad_accum
            if self.mp is not None:
                self.mp.backward(loss / cfg.grad_accum)
            else:
                (loss / cfg.grad_accum).backward()
        if self.mp is not None:
            self.mp.step(self.optimizer, cfg.grad_clip)
            return total
        if cfg.grad_clip:
            clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return total

    def _evaluate(self, step, history):
        """Log the losses, keep best/last checkpoints; True when early stopping says stop."""
        losses = self.estimate_loss(step)
        history.append({"step": step, **losses})
        self._write_metrics({"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                             "lr": self.optimizer.param_groups[0]["lr"]})
        self.log(f"step {step}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if losses["val"] < self.best_val:
            self.best_val, self.stale = losses["val"], 0
            self._save(self.best_path, step)
        else:
            self.stale += 1
        self._save(self.last_path, step)
        if self.cfg.patience is not None and self.stale >= self.cfg.patience:
            self.log(f"early stopping: val loss has not improved for {self.stale} evaluations")
            return True
        return False


def _progress(cfg, start):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.max_iters, initial=start, unit="step", dynamic_ncols=True, leave=False)


def _plot_losses(metrics_path, png_path):
    """A loss-curve PNG when matplotlib is installed (the `plot` extra); nothing otherwise."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(metrics_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    fig, ax = plt.subplots(figsize=(6, 4))
    train = [(r["step"], r["train_loss"]) for r in rows if "val_loss" not in r]
    val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
    for points, label in ((train, "train"), (val, "val")):
        if points:
            ax.plot(*zip(*points), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
