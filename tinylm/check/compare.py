"""Three-way gradient check: autograd, central differences, and a hand-derived formula.

A learner who derived dL/dW on paper writes it as a NumPy function and compares:

    def my_formula(grad_out, x, w):          # grad_out = dL/dy; returns dL/d(each input)
        return {"x": grad_out @ w.T, "w": x.T @ grad_out}

    print(compare(lambda x, w: x @ w, my_formula, {"x": x, "w": w}))

The formula receives dL/d(output) — the fixed random weights v of L = Σ v ⊙ f(x) — and the
inputs as float64 arrays, by name; it returns a dict name -> gradient (or a tuple in the
order of the checked inputs).
"""
from dataclasses import dataclass

import numpy as np

from ..table import format_table
from .gradcheck import gradients


@dataclass
class CompareRow:
    """One input: how far apart the three gradients are (max abs and relative error)."""

    name: str
    shape: tuple
    autograd_vs_numeric: float
    formula_vs_numeric: float
    formula_vs_autograd: float
    rel_err: float            # the largest of the three, relative to the gradient's size
    passed: bool


class CompareReport:
    """One CompareRow per checked input; true when all pass; str() is a table."""

    def __init__(self, rows, atol, rtol):
        self.rows, self.atol, self.rtol = rows, atol, rtol

    @property
    def passed(self):
        return all(r.passed for r in self.rows)

    def __bool__(self):
        return self.passed

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        return next(r for r in self.rows if r.name == key) if isinstance(key, str) else self.rows[key]

    def table(self, title=None):
        head = ("input", "shape", "|auto-num|", "|formula-num|", "|formula-auto|", "rel err", "result")
        rows = [(r.name, str(r.shape), f"{r.autograd_vs_numeric:.2e}", f"{r.formula_vs_numeric:.2e}",
                 f"{r.formula_vs_autograd:.2e}", f"{r.rel_err:.2e}", "PASS" if r.passed else "FAIL")
                for r in self.rows]
        return (f"{title}\n" if title else "") + format_table(head, rows)

    __str__ = table


def compare(fn, formula, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Compare autograd, central differences and `formula` for every input with requires_grad.

    A row passes when each pair agrees elementwise within atol + rtol * |reference|.
    """
    names, arrays, weights, analytic, numeric = gradients(fn, inputs, eps, seed)
    grad_out = weights[0] if len(weights) == 1 else tuple(weights)
    derived = formula(grad_out, **arrays) if isinstance(inputs, dict) else formula(grad_out, *arrays.values())
    if not isinstance(derived, dict):
        derived = dict(zip(names, derived))
    missing = [n for n in names if n not in derived]
    if missing:
        raise ValueError(f"compare: the formula returned no gradient for {', '.join(missing)}")
    rows = []
    for n in names:
        a, num, f = analytic[n], numeric[n], np.asarray(derived[n], dtype=np.float64)
        if f.shape != num.shape:
            raise ValueError(f"compare: the formula's gradient for {n} has shape {f.shape}, expected {num.shape}")
        pairs = [(a, num), (f, num), (f, a)]
        errs = [float(np.abs(x - y).max()) if x.size else 0.0 for x, y in pairs]
        ok = all(np.all(np.abs(x - y) <= atol + rtol * np.abs(y)) for x, y in pairs)
        scale = max(float(np.abs(num).max()) if num.size else 0.0, 1e-12)
        rows.append(CompareRow(n, tuple(num.shape), *errs, max(errs) / scale, bool(ok)))
    return CompareReport(rows, atol, rtol)


def use_tensors(module, tensors):
    """Make `module` compute with the given tensors in place of its parameters of the same
    (PyTorch) names, e.g. "self_attn.in_proj_weight": a plain tensor assigned to the attribute
    replaces the Parameter, so backward reaches that very tensor."""
    for name, t in tensors.items():
        *path, attr = name.split(".")
        owner = module
        for step in path:
            owner = getattr(owner, step)
        if not hasattr(owner, attr):
            raise KeyError(f"use_tensors: {type(module).__name__} has no parameter {name!r}")
        setattr(owner, attr, t)
