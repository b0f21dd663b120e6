"""Optimizers and learning-rate schedules (001.train, 002.mse's W <- W - α dL/dW, and Adam).

Every optimizer updates ``p.data`` in place from ``p.grad`` for the parameters it was given,
like PyTorch: ``loss.backward(); opt.step(); opt.zero_grad()``. Parameters can be split into
groups with their own settings (e.g. no weight decay on biases and norms).

The learning-rate schedule (warmup_cosine, the Trainer's): a warm-up over the first W steps, a
cosine decay from lr to min_lr until step D, then min_lr. Two warm-ups, chosen by `warmup`
(TrainConfig.warmup, --warmup), for the step t = 0, 1, 2, ...:

    step t         warmup="nanogpt" (default)     warmup="linear"
    t < W          lr · (t + 1) / (W + 1)         lr · t / W
    W <= t < D     min_lr + ½ (1 + cos(π (t - W) / (D - W))) (lr - min_lr)      (the same)
    t >= D         min_lr                                                       (the same)

"linear" starts from zero (step 0 moves no weight; only Adam's moments start to fill) and
climbs by lr/W a step to reach lr exactly at t = W, the warm-up of Hugging Face's
get_cosine_schedule_with_warmup. "nanogpt" (Karpathy's nanoGPT) never uses a zero rate: step 0
already gets lr/(W + 1), and step W - 1 gets lr · W/(W + 1), just under lr. With W = 10:
nanogpt 0.091, 0.182, ..., 0.909, then 1.0; linear 0.0, 0.1, ..., 0.9, then 1.0 (times lr).
"""
import math
import numbers

from .backend import kernels_for
from .tensor import Tensor


def _check_number(owner, name, value, high=math.inf, positive=False):
    """A one-line error naming `name` and its range unless value is a finite number >= 0 (> 0
    when positive) and below high."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and (0 < value if positive else 0 <= value) and value < high):
        expected = ("> 0" if positive else ">= 0") + ("" if high == math.inf else f" and < {high:g}")
        raise ValueError(f"{owner}: {name} must be a finite number {expected}, got {value!r}")


class Optimizer:
    """Holds param_groups (dicts with "params" and settings) and per-parameter state.

    Each group's settings are checked (check_settings) before anything is built."""

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            self.check_settings(group)
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: every parameter must be a Tensor with "
                                    "requires_grad=True")
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of arrays (momentum buffers, moments)
        self.steps = 0

    def check_settings(self, group):
        """Raise a one-line error naming the first setting of `group` out of its range (PyTorch's
        ranges: lr, eps, weight_decay and momentum >= 0; each of betas >= 0 and < 1), all finite."""
        owner = type(self).__name__
        for name in ("lr", "eps", "weight_decay", "momentum"):
            if name in group:
                _check_number(owner, name, group[name])
        if "betas" in group:
            betas = group["betas"]
            if not isinstance(betas, (tuple, list)) or len(betas) != 2:
                raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
            for i, beta in enumerate(betas):
                _check_number(owner, f"betas[{i}]", beta, high=1.0)

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """The settings and state of every parameter, by position (arrays copied)."""
        index = {id(p): i for i, p in enumerate(self._params())}
        return {"steps": self.steps,
                "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
                "state": {index[pid]: {k: v.copy() for k, v in s.items()} for pid, s in self.state.items()}}

    def load_state_dict(self, state):
        """Take the settings, state and step count of state_dict(); all of it is checked first,
        so a mismatch changes nothing."""
        params = self._params()
        if len(state["groups"]) != len(self.param_groups):
            raise ValueError(f"optimizer state has {len(state['groups'])} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        groups = [{**group, **saved} for group, saved in zip(self.param_groups, state["groups"])]
        for group in groups:
            self.check_settings(group)
        moments = {}
        for i, s in state["state"].items():
            p = params[int(i)]
            if any(v.shape != p.shape for v in s.values()):
                raise ValueError(f"optimizer state for parameter {i} does not match its shape {p.shape}")
            moments[id(p)] = {k: p.xp.asarray(v, dtype=p.dtype) for k, v in s.items()}
        for group, checked in zip(self.param_groups, groups):
            group.update(checked)
        self.state = moments
        self.steps = state["steps"]


class SGD(Optimizer):
    """v <- μ v + (g + λ w);   w <- w - lr v   (plain gradient descent when momentum μ = 0, 002.mse)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def step(self):
        self.steps += 1
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.data + wd * p.data if wd else p.grad.data
                if mu:
                    state = self.state.setdefault(id(p), {})
                    if "momentum" not in state:
                        state["momentum"] = g.copy()
                    else:
                        state["momentum"] *= mu
                        state["momentum"] += g
                    g = state["momentum"]
                p.data -= lr * g


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), t the step count:

        m <- β1 m + (1-β1) g,   v <- β2 v + (1-β2) g²,
        w <- w - lr · (m / (1-β1^t)) / (√(v / (1-β2^t)) + ε)

    weight_decay adds λ w to g (L2 regularisation, coupled with the adaptive scaling).
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas  # check_settings refuses anything else
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    def step(self):
        self.steps += 1
        t = self.steps
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                w, g = p.data, p.grad.data
                state = self.state.setdefault(id(p), {})
                if not state:
                    state["exp_avg"], state["exp_avg_sq"] = p.xp.zeros_like(w), p.xp.zeros_like(w)
                kernels_for(w).adam_step(w, g, state["exp_avg"], state["exp_avg_sq"], lr, b1, b2, eps, wd,
                                         self.decoupled, t)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): w <- w (1 - lr λ) before the Adam
    step, so decay does not pass through the adaptive scaling. PyTorch's default λ = 0.01."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)


def clip_grad_norm_(params, max_norm):
    """Scale all gradients by min(1, max_norm / ‖g‖), ‖g‖ the norm of all of them together.
    Returns ‖g‖ before clipping (as PyTorch's torch.nn.utils.clip_grad_norm_). max_norm must be
    a finite number > 0 (to clip nothing, do not call it)."""
    _check_number("clip_grad_norm_", "max_norm", max_norm, positive=True)
    grads = [p.grad.data for p in params if p.grad is not None]
    if not grads:
        return 0.0
    # Σ g² of each gradient as one dot product g·g (BLAS, its vector partial sums in the gradient's
    # dtype, float16 widened to float32): 70 µs for the default GPT, 380 µs with float64 copies
    flat = [g.reshape(-1) if g.dtype.itemsize >= 4 else g.reshape(-1).astype("float32") for g in grads]
    total = math.sqrt(sum(float(g @ g) for g in flat))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


WARMUPS = ("nanogpt", "linear")


def warmup_cosine(step, lr, min_lr, warmup_iters, decay_iters, warmup="nanogpt"):
    """The learning rate at `step`: a linear warm-up to lr over warmup_iters steps, then cosine
    decay to min_lr at decay_iters, then min_lr. warmup="nanogpt": lr (step + 1)/(warmup_iters + 1)
    during the warm-up (nanoGPT's); "linear": lr step/warmup_iters, from zero (the table in this
    module's docstring sets them side by side). Every number is finite and >= 0."""
    for name, value in (("step", step), ("lr", lr), ("min_lr", min_lr), ("warmup_iters", warmup_iters),
                        ("decay_iters", decay_iters)):
        _check_number("warmup_cosine", name, value)
    if warmup not in WARMUPS:
        raise ValueError(f"warmup_cosine: warmup must be 'nanogpt' or 'linear', got {warmup!r}")
    if step < warmup_iters:
        if warmup == "linear":
            return lr * step / warmup_iters
        return lr * (step + 1) / (warmup_iters + 1)
    if step >= decay_iters:
        return min_lr
    progress = (step - warmup_iters) / max(1, decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
