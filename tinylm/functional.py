"""Functions over tensors, PyTorch's ``torch.nn.functional`` names and arguments.

Each is a thin wrapper that checks its arguments and calls the ops in tinylm.ops.
"""
import numpy as np

from . import ops
from .random import generator
from .tensor import Tensor, get_default_dtype

cat, stack, split, where, matmul = ops.cat, ops.stack, ops.split, ops.where, ops.matmul


def relu(x):
    return x.relu()


def sigmoid(x):
    return x.sigmoid()


def tanh(x):
    return x.tanh()


def gelu(x, approximate="none"):
    """x Φ(x); approximate='tanh' uses the tanh formula (GPT-2's)."""
    return ops.Gelu.apply(x, approximate=approximate)


def softmax(x, dim=-1):
    return x.softmax(dim)


def log_softmax(x, dim=-1):
    return x.log_softmax(dim)


def cross_entropy(input, target, ignore_index=-100, reduction="mean"):
    """Mean (or sum, or per-item) of -log softmax(input)[target] (004.pretrain.loss).

    input: logits (N, C), (C,) or (N, C, d1, ...); target: class indices (N,), () or (N, d1, ...).
    Targets equal to ignore_index (e.g. padding) add nothing and are not counted in the mean.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype {target.dtype}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must be logits of shape (N, C), (C,) or (N, C, ...), got a scalar")
    if input.ndim == 1:
        logits, expected = input.unsqueeze(0), ()
    else:
        logits, expected = input, (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"cross_entropy: target of shape {target.shape} does not fit logits of shape "
                         f"{input.shape}: expected target shape {expected}")
    classes = logits.shape[1]
    bad = (target != ignore_index) & ((target < 0) | (target >= classes))
    if bad.any():
        raise IndexError(f"cross_entropy: target {int(target[bad].flat[0])} is out of range for "
                         f"{classes} classes (expected 0..{classes - 1} or ignore_index={ignore_index})")
    if logits.ndim > 2:  # (N, C, d1, ...) -> (N*d1*..., C)
        logits = logits.permute((0,) + tuple(range(2, logits.ndim)) + (1,)).reshape(-1, classes)
    rows = target.reshape(-1)
    loss = ops.CrossEntropy.apply(logits, target=logits.xp.asarray(rows), ignore_index=ignore_index,
                                  reduction=reduction)
    return loss.reshape(target.shape) if reduction == "none" else loss


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the trailing `normalized_shape` axes."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {shape}")
    flat = x.reshape(x.shape[:x.ndim - len(shape)] + (-1,))
    if weight is None and bias is None:
        y = ops.LayerNorm.apply(flat, eps=eps)
    else:  # a missing weight is 1 and a missing bias 0, constants without gradient
        weight = weight if weight is not None else Tensor(x.xp.ones(shape, dtype=x.dtype))
        bias = bias if bias is not None else Tensor(x.xp.zeros(shape, dtype=x.dtype))
        y = ops.LayerNorm.apply(flat, weight.reshape(-1), bias.reshape(-1), eps=eps)
    return y.reshape(x.shape)


def embedding(input, weight):
    """Rows of `weight` picked by the integer ids in `input`: out[..., :] = weight[input[...], :].
    Its gradient adds each output row's gradient into the row it came from (a scatter-add)."""
    ids = input.data if isinstance(input, Tensor) else np.asarray(input)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    rows = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= rows):
        bad = int(ids.min() if ids.min() < 0 else ids.max())
        raise IndexError(f"embedding: id {bad} is out of range for a table of {rows} rows (expected 0..{rows - 1})")
    return weight[weight.xp.asarray(ids)]


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p), so the expected
    value is unchanged (001.overfit). A no-op when not training or p == 0; the gradient flows
    through the same mask, since this is a plain multiplication."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be between 0 and 1, got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = generator().random(x.shape) >= p
    scale = (keep / (1 - p)).astype(x.dtype if x.dtype.kind == "f" else get_default_dtype())
    return x * Tensor(x.xp.asarray(scale))
