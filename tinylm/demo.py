"""The demo main job: a tiny character model fitted by the engine, then its gradients checked.

The model predicts the next character from the previous `context` characters
(001.model in miniature: embedding -> hidden layer -> output layer -> softmax), trained by
gradient descent on cross-entropy (001.train, 002.loop, 004.pretrain.loss), on the Python
documentation text that ships with CPython (pydoc_data), so nothing is downloaded.
The loop is written out on purpose, micrograd style: the forward, backward() and the update
w <- w - lr dL/dw in plain sight. The library's one training loop is tinylm.train.Trainer.
"""
import numbers
import time

import numpy as np

from .nn import functional as F
from .check import gradcheck
from .factories import randn, zeros
from .random import manual_seed


def corpus_text(limit=None):
    """The English documentation text inside CPython (pydoc_data.topics, about 460 KB)."""
    from pydoc_data.topics import topics

    text = "".join(topics[key] for key in sorted(topics))
    return text[:limit] if limit else text


def init_params(vocab, context, embed=16, hidden=64):
    """Embedding table C, hidden layer W1, b1, output layer W2, b2 (small random weights)."""
    return {"C": randn(vocab, embed) * 0.5, "W1": randn(context * embed, hidden) * (context * embed) ** -0.5,
            "b1": zeros(hidden), "W2": randn(hidden, vocab) * hidden ** -0.5, "b2": zeros(vocab)}


def loss_fn(C, W1, b1, W2, b2, x, y):
    """Mean of -log P(y | x): logits = tanh(flatten(C[x]) W1 + b1) W2 + b2."""
    h = (F.embedding(x, C).flatten(1) @ W1 + b1).tanh()
    return F.cross_entropy(h @ W2 + b2, y)


def _check(steps, context, batch, lr, seed, log_every):
    """One line naming the first argument of run out of range (and its option, for the CLI's two)."""
    integers = (("steps (--steps)", steps, 1), ("seed (--seed)", seed, 0), ("context", context, 1),
                ("batch", batch, 1), ("log_every", log_every, 1))
    for name, value, low in integers:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < float("inf"):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")


def run(steps=300, context=3, batch=64, lr=0.5, seed=0, log_every=30, out=print):
    """Train the model for `steps` steps (>= 1) from `seed` (>= 0), printing the loss every
    `log_every` steps, then check its gradients; returns (losses, gradient-check report)."""
    _check(steps, context, batch, lr, seed, log_every)
    manual_seed(seed)
    text = corpus_text(200_000)
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(ids, context + 1)
    gen = np.random.default_rng(seed)
    params = {k: v.requires_grad_() for k, v in init_params(len(chars), context).items()}
    out(f"tinylm demo: a {context}-character context model, vocabulary {len(chars)}, "
        f"{sum(p.numel() for p in params.values())} parameters, {len(ids)} characters of text")
    out(f"{'step':>5}  {'loss':>7}")
    start = time.perf_counter()
    losses = []
    for step in range(steps + 1):
        rows = windows[gen.integers(0, len(windows), batch)]
        loss = loss_fn(**params, x=rows[:, :-1], y=rows[:, -1])
        for p in params.values():
            p.grad = None
        loss.backward()
        for p in params.values():  # plain gradient descent: w <- w - lr dL/dw (002.mse)
            p.data -= lr * p.grad.data
        losses.append(loss.item())
        if step % log_every == 0:
            out(f"{step:>5}  {np.mean(losses[-log_every:]):7.4f}")
    out(f"trained {steps} steps in {time.perf_counter() - start:.1f}s; uniform guessing would give "
        f"{np.log(len(chars)):.4f}")

    out("\ngradient check of the same model, small and in float64 (autograd vs central differences):")
    small = {k: v.double().requires_grad_() for k, v in init_params(5, 2, embed=3, hidden=4).items()}
    x, y = np.array([[0, 1], [2, 3], [4, 0]]), np.array([2, 4, 1])
    report = gradcheck(lambda **p: loss_fn(**p, x=x, y=y), small)
    out(report.table())
    return losses, report
