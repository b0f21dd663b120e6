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
resumed run computes exactly the losses the uninterrupted run would have. Ctrl-C (SIGINT) or
SIGTERM lets the current step finish, saves last.ckpt and raises TrainingInterrupted (the
command exits 130 or 143); a loss that is not finite stops training before anything is written.
A checkpoint also records what the run was trained on (the task's fingerprint: data, tokenizer),
and --resume refuses to continue on something else.
"""
import glob
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import checkpoint, distributed
from .amp import MixedPrecision
from .backend import get_kernels, to_device
from .config import option, validate
from .files import atomic_write
from .optim import SGD, WARMUPS, AdamW, clip_grad_norm_, warmup_cosine
from .random import get_state, manual_seed, set_state
from .viz import loss_curve_svg


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
    warmup: str = option("nanogpt", "warm-up shape: nanogpt, lr·(t+1)/(W+1), or linear, lr·t/W from zero "
                         "(tinylm.optim)", choices=list(WARMUPS))
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
    nproc: int = option(1, "processes: N > 1 runs this command on N processes with mpiexec, each on 1/N of every "
                        "batch (data parallel; the same training as one process)", min=1)
    zero: int = option(0, "with several processes, ZeRO stage 1 shards the optimizer state across them (0: off)",
                       choices=[0, 1])
    out: str = option("out", "output folder (best.ckpt, last.ckpt, metrics.jsonl, loss.svg)")
    resume: bool = option(False, "continue from OUT/last.ckpt")
    progress: bool = option(True, "show a progress bar")


    def check(self):
        """Rules between fields (tinylm.config.validate calls this)."""
        if self.batch_size % self.nproc:
            raise ValueError(f"--batch-size {self.batch_size} does not split evenly over --nproc {self.nproc} "
                             f"processes: choose a multiple of {self.nproc} (the batch size is the global batch)")
        if self.zero and self.amp:
            raise ValueError("--zero 1 with --amp is not supported: the float32 master weights would need sharding too")


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

    def memory_needed(self):
        """An estimate in bytes of what training will allocate, from the config alone (checked before
        anything is built), or None: the config's own memory_needed() where it has one (the text
        tasks' configs), else None. See estimate_bytes."""
        estimate = getattr(self.cfg, "memory_needed", None)
        return estimate() if estimate is not None else None

    def fingerprint(self):
        """What the run trains on (a dict: data hash, tokenizer, ...), after setup: a resume that
        would train on something else is refused."""
        return {}

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


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT or SIGTERM after finishing a step; last.ckpt holds that step.
    exit_status: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM), as shells report it."""

    def __init__(self, signum, step, path):
        self.exit_status = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} after step {step}: saved {path}; run the "
                         "same command with --resume to continue")


class NonFiniteLoss(RuntimeError):
    """The loss (or an evaluation metric) became NaN or infinite: training stops, nothing is written."""


def fingerprint_of(text):
    """A short hash of a text (or bytes), recorded in checkpoints to tell which data a run trained on."""
    import hashlib

    return hashlib.sha256(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()[:16]


def estimate_bytes(parameters, activations):
    """float32 bytes of a training run: the weights, their gradients and Adam's two moments (4 copies
    of the parameters) and the activations kept for backward (counted in values)."""
    return 4 * (4 * parameters + activations)


def check_memory(needed, what):
    """Refuse up front, with the estimate, a run that cannot fit in this machine's memory."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > total:
        raise ValueError(f"{what} needs about {needed / 2 ** 30:.3g} GiB of memory (weights, gradients, optimizer "
                         f"state and activations); this machine has {total / 2 ** 30:,.1f} GiB")


class Trainer:
    """Runs a task; `log` receives one line per message. `run()` returns a summary dict."""

    def __init__(self, task, log=print):
        self.task, self.cfg, self.world = task, task.cfg, distributed.world()
        self._log = log if self.world.is_root else (lambda line: None)  # rank 0 alone logs and writes files
        self.bar, self.stop_signal, self.owner = None, None, None
        self.last_path = os.path.join(self.cfg.out, "last.ckpt")
        self.best_path = os.path.join(self.cfg.out, "best.ckpt")
        self.metrics_path = os.path.join(self.cfg.out, "metrics.jsonl")

    # --- set-up -------------------------------------------------------------------------
    def _setup(self):
        cfg, task, world = self.cfg, self.task, self.world
        if cfg.nproc > 1 and world.size != cfg.nproc:
            raise ValueError(f"--nproc {cfg.nproc} asks for {cfg.nproc} processes, but this run has {world.size}: start "
                             f"it with the tinylm command and --nproc, or with mpiexec -n {cfg.nproc}")
        if cfg.batch_size % world.size:
            raise ValueError(f"--batch-size {cfg.batch_size} does not split evenly over {world.size} processes: "
                             f"choose a multiple of {world.size} (the batch size is the global batch)")
        manual_seed(cfg.seed)
        self.batch_rng = np.random.default_rng(cfg.seed)
        self.start_step, self.best, self.stale = 0, None, 0
        needed = task.memory_needed()
        if needed is not None:
            check_memory(needed, f"this {task.kind} run")
        saved = checkpoint.load(self.last_path) if cfg.resume else None
        kind = saved[1].get("task", {}).get("kind") if saved is not None else task.kind
        if kind != task.kind:
            writer = f"a {kind!r} training run" if kind else "no training run (it holds no training state)"
            raise ValueError(f"{self.last_path} was written by {writer}, not a {task.kind!r} one: choose another "
                             "--out, or leave out --resume")
        task.setup(saved)
        if saved is not None:
            self._check_fingerprint(saved[1]["task"].get("fingerprint", {}))
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
        if world.size > 1:
            self._setup_data_parallel()

    def _setup_data_parallel(self):
        """Every rank starts from rank 0's weights; with ZeRO-1, rank r keeps the optimizer state
        of its shard of the parameters only (owner[i]: the rank that updates parameter i)."""
        cfg, world = self.cfg, self.world
        world.broadcast([p.data for p in self.task.model.parameters()])
        params = self.optimizer._params()
        state_bytes = sum(2 * p.data.nbytes for p in params)  # Adam's two moments
        self.log(f"data parallel on {world.size} processes: global batch {cfg.batch_size}, "
                 f"{cfg.batch_size // world.size} per process")
        if cfg.zero:
            self.owner = distributed.partition([p.numel() for p in params], world.size)
            for p, owner in zip(params, self.owner):
                if owner != world.rank:
                    self.optimizer.state.pop(id(p), None)
            mine = sum(2 * p.data.nbytes for p, owner in zip(params, self.owner) if owner == world.rank)
            self.log(f"ZeRO-1: optimizer state {mine / 2 ** 20:.2f} MiB on rank 0, of {state_bytes / 2 ** 20:.2f} MiB "
                     f"in all ({world.size} shards)")

    def _check_fingerprint(self, saved):
        now = self.task.fingerprint()
        for key in sorted(set(saved) | set(now)):
            if saved.get(key) != now.get(key):
                raise ValueError(f"{self.last_path} was trained with {key} {saved.get(key)!r}, this run asks for "
                                 f"{now.get(key)!r}: resume with the same settings, or choose another --out")

    def _optimizer_state(self):
        """The optimizer's whole state; with ZeRO-1 every rank's shard is gathered (on rank 0)."""
        state = self.optimizer.state_dict()
        if self.owner is not None:
            shards = self.world.gather(state["state"])
            state["state"] = {i: s for shard in (shards or []) for i, s in shard.items()}
        return state

    def _save(self, path, step):
        """Write a checkpoint (rank 0; with ZeRO-1 every rank takes part in gathering the state)."""
        optimizer_state = self._optimizer_state()
        if not self.world.is_root:
            return
        task_meta, task_arrays = self.task.state()
        meta = {"task": {"kind": self.task.kind, "fingerprint": self.task.fingerprint(), **task_meta}, "batch_rng": self.batch_rng.bit_generator.state,
                "rng": get_state(), "best": self.best, "stale": self.stale, "train_config": asdict(self.cfg)}
        if self.mp is not None:
            meta["loss_scaler"] = self.mp.scaler.state_dict()
        checkpoint.save_model(path, self.task.model, meta, {f"task/{k}": v for k, v in task_arrays.items()},
                              optimizer_state=optimizer_state, step=step,
                              state=self.mp.master_state_dict() if self.mp is not None else None)

    # --- metrics.jsonl ----------------------------------------------------------------------
    def _write_metrics(self, row):
        if not self.world.is_root:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def _trim_metrics(self):
        """On resume, drop logged rows from steps the resumed run will log again: those after the
        checkpoint's step, and its training row (the evaluation at that step is not run again).
        A torn last line (a run killed while writing it) is dropped with a warning."""
        if not os.path.exists(self.metrics_path):
            return
        rows = read_metrics(self.metrics_path, self.log)
        rows = [r for r in rows if r["step"] < self.start_step or (r["step"] == self.start_step and "val_loss" in r)]
        atomic_write(self.metrics_path, lambda f: f.writelines(json.dumps(r) + "\n" for r in rows))

    def _remove_stray_files(self):
        """Temporary files that a killed run left in the output folder (atomic_write's .tmp-*)."""
        stray = glob.glob(os.path.join(glob.escape(self.cfg.out), ".tmp-*"))
        for path in stray:
            os.remove(path)
        if stray:
            self.log(f"removed {len(stray)} temporary file(s) left in {self.cfg.out} by an interrupted run")

    # --- log lines and signals -------------------------------------------------------------
    def log(self, line):
        """One line to the log; above the progress bar, not appended to it, while the bar is shown."""
        if self.bar is None:
            self._log(line)
            return
        from tqdm import tqdm

        with tqdm.external_write_mode():
            self._log(line)

    def _on_signal(self, signum, frame):
        if self.stop_signal is not None:  # asked twice: stop now (last.ckpt is the last evaluation's)
            raise KeyboardInterrupt
        self.stop_signal = signum
        self.log(f"{signal.Signals(signum).name} received: finishing this step, then saving (again to stop at once)")

    def _catch_signals(self):
        """Route SIGINT and SIGTERM to _on_signal; returns the handlers to restore (none off the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    # --- the loop -------------------------------------------------------------------------
    def run(self):
        """Train; returns {"steps", "train_losses", "evals" (one dict of metrics per evaluation,
        with its step), "best_metrics" (the best evaluation's), "<unit>_per_s", and the checkpoint
        paths "best" and "last"}."""
        cfg, task = self.cfg, self.task
        self._setup()
        if self.world.is_root:
            os.makedirs(cfg.out, exist_ok=True)
            self._remove_stray_files()
            if cfg.resume:
                self._trim_metrics()
            elif os.path.exists(self.metrics_path):
                os.remove(self.metrics_path)
        self.log(task.describe())
        max_iters, eval_interval = task.schedule()
        decay_iters = cfg.lr_decay_iters or max_iters
        min_lr = cfg.lr if cfg.min_lr is None else cfg.min_lr
        speed_key = f"{task.unit}_per_s"
        train_losses, history, step, speed = [], [], self.start_step, 0.0
        self.bar, self.stop_signal = _progress(cfg, max_iters, self.start_step), None
        handlers = self._catch_signals()
        if get_kernels(cfg.device) == "numba":
            self.log("the first step compiles the Numba kernels it uses, unless an earlier run cached them")
        try:
            timer = time.perf_counter()
            for step in range(self.start_step, max_iters + 1):
                if step % eval_interval == 0 or step == max_iters:
                    if not (cfg.resume and step == self.start_step):
                        if self._evaluate(step, history):
                            break
                    timer = time.perf_counter()
                if step == max_iters or self.world.any(self.stop_signal is not None):
                    self.stop_signal = self.stop_signal or (signal.SIGINT if step < max_iters else None)
                    break
                lr = warmup_cosine(step, cfg.lr, min_lr, cfg.warmup_iters, decay_iters, cfg.warmup)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, items = self._train_step(step)
                train_losses.append(loss)
                now = time.perf_counter()
                speed, timer = items / max(now - timer, 1e-9), now
                if step % cfg.log_interval == 0:
                    self._write_metrics({"step": step, "train_loss": loss, "lr": lr, speed_key: speed})
                if self.bar is not None:
                    self.bar.set_postfix(loss=f"{loss:.4f}")
                    self.bar.update(1)
            else:
                step = max_iters
            self._save(self.last_path, step)
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        if self.world.is_root:
            loss_curve_svg(read_metrics(self.metrics_path), os.path.join(cfg.out, "loss.svg"))
        if self.stop_signal is not None:
            raise TrainingInterrupted(self.stop_signal, step, self.last_path)
        best = max(history, key=task.score, default=None)
        return {"steps": step, "train_losses": train_losses, "evals": history, "best_metrics": best, speed_key: speed,
                "best": self.best_path if os.path.exists(self.best_path) else self.last_path, "last": self.last_path}

    def _train_step(self, step):
        """One optimizer step over grad_accum micro-batches; returns (mean loss, items seen)."""
        cfg, task, world = self.cfg, self.task, self.world
        total, items = 0.0, 0
        for micro in range(cfg.grad_accum):
            batch = task.batch(step * cfg.grad_accum + micro, self.batch_rng)  # the global batch, on every rank
            items += task.batch_items(batch)
            loss = task.loss(_on_device(distributed.shard(batch, world.rank, world.size), cfg.device))
            total += loss.item() / cfg.grad_accum
            if self.mp is not None:
                self.mp.backward(loss / cfg.grad_accum)
            else:
                (loss / cfg.grad_accum).backward()
        total = world.mean(total)
        if not math.isfinite(total):
            raise NonFiniteLoss(f"loss became {total} at step {step}; nothing of that step was saved, the last "
                                f"good checkpoint is {self.last_path} (try a lower --lr)")
        world.allreduce_mean([p.grad.data for p in task.parameters() if p.grad is not None])
        if self.mp is not None:
            self.mp.step(self.optimizer, cfg.grad_clip)
        else:
            if cfg.grad_clip:
                clip_grad_norm_(task.parameters(), cfg.grad_clip)
            self._optimizer_step()
        task.after_step()
        return total, items

    def _optimizer_step(self):
        """optimizer.step(); with ZeRO-1 each rank updates its shard, then each shard goes to every rank."""
        if self.owner is None:
            self.optimizer.step()
            self.optimizer.zero_grad()
            return
        params = self.optimizer._params()
        for p, owner in zip(params, self.owner):
            if owner != self.world.rank:
                p.grad = None  # not this rank's to update: no moments kept, no update computed
        self.optimizer.step()
        self.optimizer.zero_grad()
        for rank in range(self.world.size):
            self.world.broadcast([p.data for p, owner in zip(params, self.owner) if owner == rank], root=rank)

    def _evaluate(self, step, history):
        """Log the metrics, keep best/last checkpoints; True when early stopping says stop."""
        metrics = self.task.evaluate(step)
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"{bad[0]} became {metrics[bad[0]]} at step {step}; nothing of that step was saved, "
                                f"the last good checkpoint is {self.last_path} (try a lower --lr)")
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


def read_metrics(path, warn=None):
    """The rows of a metrics.jsonl file (a list of dicts). A torn last line — a run killed while
    writing it — is dropped, with a line to `warn` naming the file; a bad line elsewhere is an error."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines) - (lines[-1] == ""):
                raise ValueError(f"{path} line {number} is not a JSON row: the file was edited or damaged; "
                                 "repair or delete that line") from None
            if warn is not None:
                warn(f"dropped a torn last line of {path} (a run was killed while writing it)")
    return rows
