"""Mixed-precision training (004.speed): float16 compute, float32 master weights, dynamic loss scaling.

float16 halves memory traffic and runs on a GPU's tensor cores, but it has 10 mantissa bits
and a range of about 6e-8 to 65504: small gradients flush to zero, and an update lr·g is
often below the rounding step of a weight. So:

* the model computes in float16, while the optimizer updates float32 copies of the weights
  (the master weights), which are rounded to float16 again after each step;
* the loss is multiplied by a scale S before backward, so the gradients (all multiplied by S)
  stay above float16's smallest values; they are divided by S, in float32, before the step;
* S is dynamic: a step whose gradients hold inf or NaN (S too large) is skipped and S halved;
  after `growth_interval` good steps in a row S is doubled.
"""
import numpy as np

from .nn import Parameter
from .optim import clip_grad_norm_
from .tensor import Tensor


class LossScaler:
    """Dynamic loss scaling: the scale S, halved on overflow, doubled after a run of good steps."""

    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        if init_scale <= 0 or growth_factor <= 1 or not 0 < backoff_factor < 1 or growth_interval < 1:
            raise ValueError("LossScaler: expected init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 "
                             "and growth_interval >= 1")
        self.scale = float(init_scale)
        self.growth_factor, self.backoff_factor, self.growth_interval = growth_factor, backoff_factor, growth_interval
        self.good_steps = 0

    def update(self, finite):
        """After a step: S ← S·backoff when the gradients overflowed, S ← S·growth after
        growth_interval finite steps in a row."""
        if not finite:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0

    def state_dict(self):
        return {"scale": self.scale, "good_steps": self.good_steps}

    def load_state_dict(self, state):
        self.scale, self.good_steps = float(state["scale"]), int(state["good_steps"])


class MixedPrecision:
    """Runs `model` in float16 and keeps float32 master weights for the optimizer.

        mp = MixedPrecision(model)
        opt = AdamW(mp.master_parameters(), ...)
        loss = model(x, y)[1];  mp.backward(loss);  mp.step(opt, grad_clip=1.0)

    step returns False when it skipped the update (the scaled gradients overflowed).
    """

    def __init__(self, model, scaler=None):
        self.model, self.scaler = model, scaler or LossScaler()
        self.params = list(model.parameters())
        self.masters = [Parameter(p.data.astype(np.float32)) for p in self.params]
        for p in self.params:
            p.data = p.data.astype(np.float16)

    def master_parameters(self):
        return list(self.masters)

    def master_state_dict(self):
        """The model's state dict with the float32 master weights in place of the float16 ones."""
        state = self.model.state_dict()
        by_id = {id(p): m for p, m in zip(self.params, self.masters)}
        for name, p in self.model._named_state():
            if id(p) in by_id:
                state[name] = by_id[id(p)].detach()
        return state

    def backward(self, loss):
        """loss·S, backward: every gradient is S times too large, so small ones survive float16.
        When S is too large some overflow to inf: expected, step() then skips (no warnings)."""
        with np.errstate(over="ignore", invalid="ignore"):
            (loss * self.scaler.scale).backward()

    def step(self, optimizer, grad_clip=None):
        """Unscale the gradients into the masters (float32), skip the step if any is inf or NaN,
        else clip, step and round the masters back into the float16 model."""
        finite = True
        for p, m in zip(self.params, self.masters):
            if p.grad is None:
                m.grad = None
                continue
            g = p.grad.data.astype(np.float32) / self.scaler.scale
            finite = finite and bool(p.xp.isfinite(g).all())
            m.grad = Tensor(g)
        if finite:
            if grad_clip:
                clip_grad_norm_(self.masters, grad_clip)
            optimizer.step()
            for p, m in zip(self.params, self.masters):
                p.data[...] = m.data.astype(np.float16)
        self.scaler.update(finite)
        for p, m in zip(self.params, self.masters):
            p.grad = m.grad = None
        return finite
