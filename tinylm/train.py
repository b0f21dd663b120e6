"""The one training loop (001.train, 002.loop), for every task tinylm trains.

    for step in range(max_iters):
        every eval_interval steps: evaluate; keep best.ckpt (the best score) and last.ckpt;
                                   stop early when the score has not improved for `patience` evaluations
        lr = warm-up, then cosine decay to min_lr
        for each of grad_accum micro-batches:  loss = task.loss(task.batch(...));  (loss / grad_accum).backward()
        clip the gradient norm;  optimizer step;  zero the gradients

A *task* (tinylm.tasks: causal LM, MLM + NSP, seq2seq, classification, distillation) supplies
the model, its batches, its loss and its evaluation; the Trainer owns everything else: the
optimizer and its parameter groups, the schedule, gradient accumulation, clipping, mixed
precision, the device, evaluation and early stopping, the checkpoints, exact resume,
metrics.jsonl, the progress bar and the loss curve.

Everything that decides what happens next — weights, optimizer moments, step, the random
generators of the batches and of dropout, the task's own state — goes into the checkpoint, so a
resumed run computes exactly the losses the uninterrupted run would have.
"""
import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import checkpoint
from .amp import MixedPrecision
from .backend import to_device
from .config import option, validate
from .optim import SGD, AdamW, clip_grad_norm_, warmup_cosine
from .random import get_state, manual_seed, set_state


@dataclass
class TrainConfig:
    """What every task shares: the loop, the optimizer, the schedule, the outputs. A task's config
    subclasses it, adding its own fields (and its own defaults where they differ)."""
    max_iters: int = option(2000, "optimizer steps", min=1)
    batch_size: int = option(12, "examples (sequences) per micro-batch", min=1)
    grad_accum: int = option(1, "micro-batches per step (gradient accumulation)", min=1)
    lr: float = option(1e-3, "peak learning rate", min=0.0)
    min_lr: float = option(1e-4, "learning rate at the end of the cosine decay", min=0.0)
    warmup_iters: int = option(100, "linear warm-up steps", min=0)
    lr_decay_iters: int = option(None, "steps of cosine decay (default: max-iters)", min=1)
    optimizer: str = option("adamw", "adamw or sgd", choices=["adamw", "sgd"])
    weight_decay: float = option(0.1, "weight decay (matrices only; decoupled for adamw)", min=0.0)
    beta1: float = option(0.9, "Adam beta1", min=0.0, below=1.0)
    beta2: float = option(0.99, "Adam beta2", min=0.0, below=1.0)
    momentum: float = option(0.9, "SGD momentum", min=0.0, below=1.0)
    grad_clip: float = option(1.0, "max gradient norm (0: off)", min=0.0)
    eval_interval: int = option(250, "steps between evaluations", min=1)
    eval_iters: int = option(20, "batches per evaluation", min=1)
    patience: int = option(None, "early stopping: evaluations without a better score", min=1)
    log_interval: int = option(10, "steps between metrics.jsonl rows", min=1)
    device: str = option("cpu", "cpu or cuda", choices=["cpu", "cuda"])
    amp: bool = option(False, "mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    seed: int = option(1337, "random seed", min=0)
    out: str = option("out", "output folder (best.ckpt, last.ckpt, metrics.jsonl, loss.png)")
    resume: bool = option(False, "continue from OUT/last.ckpt")
    progress: bool = option(True, "show a progress bar")


class Task:
    """What a task supplies to the Trainer. Subclasses set `kind` and `unit` and implement
    setup, batch, loss and evaluate; the other methods have defaults that fit most tasks.

    setup(saved)        build the data, the tokenizer and the model: fresh, or from `saved`, the
                        (arrays, meta) of the checkpoint being resumed. Sets self.model.
    batch(i, rng)       the i-th training micro-batch (i counts micro-batches from 0); rng is
                        the Trainer's batch generator, saved in every checkpoint.
    loss(batch)         the scalar loss Tensor of self.model on a batch, in training mode.
    evaluate(step)      a dict of metrics with at least "val_loss", in evaluation mode.
    score(metrics)      a tuple, larger is better: picks best.ckpt and drives early stopping.
    """

    kind = None
    unit = "examples"   # what batch_items counts, for the "<unit>_per_s" speed

    def __init__(self, cfg):
        self.cfg = validate(cfg)
        self.model = None

    # --- what the Trainer asks ------------------------------------------------------------
    def schedule(self):
        """(max_iters, eval_interval)."""
        return self.cfg.max_iters, self.cfg.eval_interval

    def parameters(self):
        """The tensors the optimizer updates: the model's trainable parameters."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def batch_items(self, batch):
        """How many `unit`s a micro-batch holds."""
        return self.cfg.batch_size

    def score(self, metrics):
        return (-metrics["val_loss"],)

    def after_step(self):
        """Called after every optimizer step (distillation re-applies its pruning masks here)."""

    def state(self):
        """(meta, arrays) the task needs to resume and to rebuild its model: saved in every checkpoint."""
        return {}, {}

    def load_state(self, meta, arrays):
        """Restore what state() saved (called on resume, after setup)."""

    def describe(self):
        """One line about the task, logged at the start."""
        return f"{self.kind} with {self.model.num_parameters():,} parameters"

    def on_device(self, batch):
        """The arrays of a batch on the configured device (for evaluation batches)."""
        return _on_device(batch, self.cfg.device)


def configure_optimizer(params, cfg):
    """AdamW (or SGD) over `params` with weight decay on matrices only: biases, LayerNorm gains
    and other vectors are not decayed."""
    params = list(params)
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw":
        return AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: expected 'adamw' or 'sgd'")


def _on_device(batch, device):
    """The arrays of a batch (an array, or a tuple, list or dict of them) copied to `device`."""
    if device == "cpu":
        return batch
    if isinstance(batch, dict):
        return {k: _on_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_on_device(v, device) for v in batch)
    return to_device(batch, device) if isinstance(batch, np.ndarray) else batch


class Trainer:
    """Runs a task; `log` receives one line per message. `run()` returns a summary dict."""

    def __init__(self, task, log=print):
        self.task, self.cfg, self.log = task, task.cfg, log
        self.last_path = os.path.join(self.cfg.out, "last.ckpt")
        self.best_path = os.path.join(self.cfg.out, "best.ckpt")
        self.metrics_path = os.path.join(self.cfg.out, "metrics.jsonl")

    # --- set-up -------------------------------------------------------------------------
    def _setup(self):
        cfg, task = self.cfg, self.task
        manual_seed(cfg.seed)
        self.batch_rng = np.random.default_rng(cfg.seed)
        self.start_step, self.best, self.stale = 0, None, 0
        saved = checkpoint.load(self.last_path) if cfg.resume else None
        if saved is not None and saved[1].get("task", {}).get("kind") != task.kind:
            raise ValueError(f"{self.last_path} was written by a {saved[1].get('task', {}).get('kind')!r} run, "
                             f"not {task.kind!r}: choose another --out, or leave out --resume")
        task.setup(saved)
        task.model.train()
        self.optimizer = configure_optimizer(task.parameters(), cfg)
        if saved is not None:
            arrays, meta = saved
            checkpoint.load_optimizer_state(self.optimizer, meta, arrays)
            task.load_state(meta["task"], {k[len("task/"):]: v for k, v in arrays.items() if k.startswith("task/")})
            set_state(meta["rng"])
            self.batch_rng.bit_generator.state = meta["batch_rng"]
            self.start_step, self.stale = meta["step"], meta["stale"]
            self.best = None if meta["best"] is None else tuple(meta["best"])
            self.log(f"resuming from {self.last_path} at step {self.start_step}")
        if cfg.device != "cpu":
            task.model.to(cfg.device)
            for state in self.optimizer.state.values():
                for k in state:
                    state[k] = to_device(state[k], cfg.device)
        self.mp = None
        if cfg.amp:
            trainable = {id(p) for p in task.parameters()}
            self.mp = MixedPrecision(task.model)
            masters = [m for p, m in zip(self.mp.params, self.mp.masters) if id(p) in trainable]
            state = self.optimizer.state_dict()
            self.optimizer = configure_optimizer(masters, cfg)
            self.optimizer.load_state_dict(state)
            if saved is not None and "loss_scaler" in saved[1]:
                self.mp.scaler.load_state_dict(saved[1]["loss_scaler"])

    def _save(self, path, step):
        task_meta, task_arrays = self.task.state()
        meta = {"task": {"kind": self.task.kind, **task_meta}, "batch_rng": self.batch_rng.bit_generator.state,
                "rng": get_state(), "best": self.best, "stale": self.stale, "train_config": asdict(self.cfg)}
        if self.mp is not None:
            meta["loss_scaler"] = self.mp.scaler.state_dict()
        checkpoint.save_model(path, self.task.model, meta, {f"task/{k}": v for k, v in task_arrays.items()},
                              optimizer=self.optimizer, step=step,
                              state=self.mp.master_state_dict() if self.mp is not None else None)

    # --- metrics.jsonl ----------------------------------------------------------------------
    def _write_metrics(self, row):
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def _trim_metrics(self):
        """On resume, drop logged rows from steps the resumed run will log again: those after the
        checkpoint's step, and its training row (the evaluation at that step is not run again)."""
        if not os.path.exists(self.metrics_path):
            return
        with open(self.metrics_path, encoding="utf-8") as f:
            rows = [r for r in map(json.loads, f)
                    if r["step"] < self.start_step or (r["step"] == self.start_step and "val_loss" in r)]
        with open(self.metrics_path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)

    # --- the loop -------------------------------------------------------------------------
    def run(self):
        """Train; returns {"steps", "train_losses", "evals" (one dict of metrics per evaluation,
        with its step), "best_metrics" (the best evaluation's), "<unit>_per_s", and the checkpoint
        paths "best" and "last"}."""
        cfg, task = self.cfg, self.task
        self._setup()
        os.makedirs(cfg.out, exist_ok=True)
        if cfg.resume:
            self._trim_metrics()
        elif os.path.exists(self.metrics_path):
            os.remove(self.metrics_path)
        self.log(task.describe())
        max_iters, eval_interval = task.schedule()
        decay_iters = cfg.lr_decay_iters or max_iters
        min_lr = cfg.lr if cfg.min_lr is None else cfg.min_lr
        bar = _progress(cfg, max_iters, self.start_step)
        speed_key = f"{task.unit}_per_s"
        train_losses, history, step, speed = [], [], self.start_step, 0.0
        timer = time.perf_counter()
        try:
            for step in range(self.start_step, max_iters + 1):
                if step % eval_interval == 0 or step == max_iters:
                    if not (cfg.resume and step == self.start_step):
                        if self._evaluate(step, history):
                            break
                    timer = time.perf_counter()
                if step == max_iters:
                    break
                lr = warmup_cosine(step, cfg.lr, min_lr, cfg.warmup_iters, decay_iters)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, items = self._train_step(step)
                train_losses.append(loss)
                now = time.perf_counter()
                speed, timer = items / max(now - timer, 1e-9), now
                if step % cfg.log_interval == 0:
                    self._write_metrics({"step": step, "train_loss": loss, "lr": lr, speed_key: speed})
                if bar is not None:
                    bar.set_postfix(loss=f"{loss:.4f}")
                    bar.update(1)
            else:
                step = max_iters
        except KeyboardInterrupt:
            self.log(f"interrupted at step {step}: saving {self.last_path}")
        finally:
            if bar is not None:
                bar.close()
        self._save(self.last_path, step)
        _plot_losses(self.metrics_path, os.path.join(cfg.out, "loss.png"))
        best = max(history, key=task.score, default=None)
        return {"steps": step, "train_losses": train_losses, "evals": history, "best_metrics": best, speed_key: speed,
                "best": self.best_path, "last": self.last_path}

    def _train_step(self, step):
        """One optimizer step over grad_accum micro-batches; returns (mean loss, items seen)."""
        cfg, task = self.cfg, self.task
        total, items = 0.0, 0
        for micro in range(cfg.grad_accum):
            batch = task.batch(step * cfg.grad_accum + micro, self.batch_rng)
            items += task.batch_items(batch)
            loss = task.loss(_on_device(batch, cfg.device))
            total += loss.item() / cfg.grad_accum
            if self.mp is not None:
                self.mp.backward(loss / cfg.grad_accum)
            else:
                (loss / cfg.grad_accum).backward()
        if self.mp is not None:
            self.mp.step(self.optimizer, cfg.grad_clip)
        else:
            if cfg.grad_clip:
                clip_grad_norm_(task.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.optimizer.zero_grad()
        task.after_step()
        return total, items

    def _evaluate(self, step, history):
        """Log the metrics, keep best/last checkpoints; True when early stopping says stop."""
        metrics = self.task.evaluate(step)
        history.append({"step": step, **metrics})
        self._write_metrics({"step": step, **metrics, "lr": self.optimizer.param_groups[0]["lr"]})
        self.log(f"step {step}: " + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items()))
        score = self.task.score(metrics)
        if self.best is None or score > self.best:
            self.best, self.stale = score, 0
            self._save(self.best_path, step)
        else:
            self.stale += 1
        self._save(self.last_path, step)
        if self.cfg.patience is not None and self.stale >= self.cfg.patience:
            self.log(f"early stopping: no better score for {self.stale} evaluations")
            return True
        return False


def _progress(cfg, total, start):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, leave=False)


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
    ax.set_ylabel("loss (nats per prediction)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
