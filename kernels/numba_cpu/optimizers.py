"""Adam / AdamW: the whole update in one pass over the weights.

    AdamW: w ← w (1 - lr λ);   Adam: g ← g + λ w
    m ← β1 m + (1-β1) g,   v ← β2 v + (1-β2) g²
    w ← w - lr/(1-β1^t) · m / (√(v/(1-β2^t)) + ε)            as reference.adam_step.

The reference runs a dozen array operations, each a pass over memory with a temporary
array; this kernel reads w, g, m and v once and writes w, m and v once.
"""
import math

import numpy as np
from numba import njit


@njit(error_model="numpy", cache=True)
def _adam_kernel(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """For each weight, as reference.adam_step (no fast-math: the same rounding as the
    reference's sequence of array operations, step by step):
        w ← w (1 - lr λ) (AdamW) or g ← g + λ w (Adam);  m ← β1 m + (1-β1) g;
        v ← β2 v + (1-β2) g²;  w ← w - lr/(1-β1^t) · m / (√(v/(1-β2^t)) + ε)."""
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    for i in range(w.shape[0]):
        gi = g[i]
        if weight_decay != 0 and decoupled:
            w[i] = w[i] * (1 - lr * weight_decay)
        elif weight_decay != 0:
            gi = gi + weight_decay * w[i]
        m[i] = m[i] * beta1 + (1 - beta1) * gi
        v[i] = v[i] * beta2 + (1 - beta2) * gi * gi
        w[i] = w[i] - (lr / bias1) * (m[i] / (math.sqrt(v[i] / bias2) + eps))


def adam_step(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW update of w, m and v in place, like reference.adam_step, in one pass.

    The kernel walks four contiguous arrays of w's dtype (float32 or float64) as flat vectors.
    w, m and v come from the optimizer, contiguous; g may be any layout — Linear's weight
    gradient is a transposed view (from x @ weight.T) — and is copied contiguous first.
    Measured on the 809,856 parameters of the default GPT (2 cores): the copy plus the kernel
    take 1.2 ms, the reference 2.5 ms, and a kernel that reads g through its strides 3 ms
    (a strided read does not vectorise). An m, v or w that is a view or of another dtype is
    updated through a contiguous copy, written back.
    """
    dtype = np.dtype(w.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"adam_step: the numba kernel updates float32 or float64 weights, got {dtype}")
    if not g.shape == m.shape == v.shape == w.shape:
        raise ValueError(f"adam_step: w {w.shape}, g {g.shape}, m {m.shape} and v {v.shape} must have one shape")
    state = [a if a.flags.c_contiguous and a.dtype == dtype else a.astype(dtype, order="C") for a in (w, m, v)]
    wc, mc, vc = (a.reshape(-1) for a in state)
    t = dtype.type
    _adam_kernel(wc, np.ascontiguousarray(g, dtype).reshape(-1), mc, vc, t(lr), t(beta1), t(beta2), t(eps),
                 t(weight_decay), bool(decoupled), int(step))
    for array, copy in zip((w, m, v), state):
        if copy is not array:
            array[...] = copy
