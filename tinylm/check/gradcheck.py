"""Gradient checking: autograd's answer against central differences, in float64.

For a function f of tensors x_1..x_k with any output shape, gradcheck reduces the output
to a scalar with a fixed random weight v, L(x) = Σ v ⊙ f(x), and compares

    autograd:  dL/dx (one backward pass)
    numeric:   (L(x + ε e_i) - L(x - ε e_i)) / 2ε     for every element i of every input,

which checks the whole vector-Jacobian product that backward computes. An element passes
when |autograd - numeric| <= atol + rtol |numeric| (PyTorch's rule and defaults).
"""
from dataclasses import dataclass

import numpy as np

from ..autograd import no_grad
from ..table import format_table
from ..tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by gradcheck(raise_on_fail=True); the message names the input and index."""


@dataclass
class InputCheck:
    """How one input's gradient compares."""

    name: str
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    autograd: float   # the two values at the worst index
    numeric: float
    passed: bool


class GradcheckReport:
    """One InputCheck per checked input; true when all pass; str() is a table."""

    def __init__(self, checks, eps, atol, rtol):
        self.checks, self.eps, self.atol, self.rtol = checks, eps, atol, rtol

    @property
    def passed(self):
        return all(c.passed for c in self.checks)

    def __bool__(self):
        return self.passed

    def __iter__(self):
        return iter(self.checks)

    def __getitem__(self, key):
        if isinstance(key, str):
            return next(c for c in self.checks if c.name == key)
        return self.checks[key]

    def table(self):
        head = ("input", "shape", "max abs err", "max rel err", "worst index", "autograd", "numeric", "result")
        rows = [(c.name, str(c.shape), f"{c.max_abs_err:.2e}", f"{c.max_rel_err:.2e}", str(c.worst_index),
                 f"{c.autograd:.6g}", f"{c.numeric:.6g}", "PASS" if c.passed else "FAIL") for c in self.checks]
        return format_table(head, rows) + f"\n(eps={self.eps:g}, atol={self.atol:g}, rtol={self.rtol:g})"

    __str__ = table

    def __repr__(self):
        return f"<GradcheckReport {'PASS' if self.passed else 'FAIL'}: {len(self.checks)} inputs>"


def gradients(fn, inputs, eps=1e-6, seed=0):
    """Autograd and central-difference gradients of L = Σ v ⊙ fn(inputs), v fixed random weights.

    inputs: a list of arguments (tensors, arrays, numbers) or a dict name -> argument (fn then
    gets keywords). Tensors with requires_grad=True are checked, as float64 copies.
    Returns (names, arrays, weights, analytic, numeric): the checked inputs' names and float64
    values, v (one array per output), and two dicts name -> gradient.
    """
    named = isinstance(inputs, dict)
    names = list(inputs) if named else [f"input {i}" for i in range(len(inputs))]
    values = list(inputs.values()) if named else list(inputs)
    checked = [i for i, v in enumerate(values) if isinstance(v, Tensor) and v.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        values[i] = Tensor(values[i].numpy().astype(np.float64), requires_grad=True)

    def call():
        outs = fn(**dict(zip(names, values))) if named else fn(*values)
        return outs if isinstance(outs, (tuple, list)) else (outs,)

    outputs = call()
    gen = np.random.default_rng(seed)
    weights = [gen.standard_normal(o.shape) for o in outputs]

    def projected(outs):  # L = Σ v ⊙ f(x), as a float
        return sum(float((o.numpy().astype(np.float64) * w).sum()) for o, w in zip(outs, weights))

    loss = sum((o * Tensor(w)).sum() for o, w in zip(outputs, weights) if o.requires_grad)
    if not isinstance(loss, Tensor):
        raise ValueError("gradcheck: the output does not depend on any input that requires grad")
    loss.backward()

    analytic, numeric = {}, {}
    with no_grad():
        for i in checked:
            x = values[i].data
            analytic[names[i]] = values[i].grad.numpy() if values[i].grad is not None else np.zeros_like(x)
            num = np.empty_like(x)
            for idx in np.ndindex(x.shape):
                saved = x[idx]
                x[idx] = saved + eps
                up = projected(call())
                x[idx] = saved - eps
                down = projected(call())
                x[idx] = saved
                num[idx] = (up - down) / (2 * eps)
            numeric[names[i]] = num
    arrays = {n: (v.numpy() if isinstance(v, Tensor) else v) for n, v in zip(names, values)}
    return [names[i] for i in checked], arrays, weights, analytic, numeric


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_on_fail=False, seed=0):
    """Check fn's gradients with respect to every input that has requires_grad=True.

    inputs: a list of arguments for fn (tensors, arrays, numbers) or a dict name -> argument
    (then fn is called with keywords). Checked tensors are copied to float64 first.
    Returns a GradcheckReport; with raise_on_fail, a failure raises GradcheckError naming
    the input and the index of the worst mismatch.
    """
    names, _, _, analytic, numeric = gradients(fn, inputs, eps, seed)
    report = GradcheckReport([_compare(n, analytic[n], numeric[n], atol, rtol) for n in names], eps, atol, rtol)
    if raise_on_fail and not report.passed:
        bad = next(c for c in report if not c.passed)
        raise GradcheckError(
            f"gradcheck failed for {bad.name} (shape {bad.shape}) at index {bad.worst_index}: autograd "
            f"{bad.autograd:.6g} vs numeric {bad.numeric:.6g} (abs err {bad.max_abs_err:.2e}, allowed "
            f"{atol:g} + {rtol:g}*|numeric|)")
    return report


def _compare(name, analytic, numeric, atol, rtol):
    """One InputCheck: errors, and the index where the allowance is exceeded the most."""
    abs_err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    rel_err = np.divide(abs_err, scale, out=np.zeros_like(abs_err), where=scale > 0)
    excess = abs_err - (atol + rtol * np.abs(numeric))
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.size else ()
    worst = tuple(int(i) for i in worst)
    return InputCheck(
        name=name, shape=tuple(analytic.shape),
        max_abs_err=float(abs_err.max()) if abs_err.size else 0.0,
        max_rel_err=float(rel_err.max()) if rel_err.size else 0.0,
        worst_index=worst,
        autograd=float(analytic[worst]) if analytic.size else 0.0,
        numeric=float(numeric[worst]) if numeric.size else 0.0,
        passed=bool((excess <= 0).all()))
