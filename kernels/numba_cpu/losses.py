"""Cross-entropy along rows of logits, forward and backward.

    loss_n = logsumexp(z_n) - z_n[t_n]   (004.pretrain.loss: -log softmax at the target),
    dz_nc  = g_n (softmax(z_n)_c - [c == t_n]),                    as reference.cross_entropy.

logsumexp is the log-softmax's (softmax_family.max_and_log_sum).
"""
import numpy as np
from numba import prange

from .machinery import TwoWays, as_float, as_rows, exp
from .softmax_family import max_and_log_sum


@TwoWays
def _cross_entropy_kernel(z, target, ignore_index, loss, lse):
    """lse_n = logsumexp(z_n) = m_n + log sum_c e^(z_nc - m_n),  loss_n = lse_n - z_n[t_n]
    (0 where t_n == ignore_index)."""
    for n in prange(z.shape[0]):
        m, log_sum = max_and_log_sum(z[n])
        lse[n] = m + log_sum
        if target[n] == ignore_index:
            loss[n] = 0
        else:
            loss[n] = lse[n] - z[n, target[n]]


@TwoWays
def _cross_entropy_backward_kernel(z, lse, target, gloss, ignore_index, dz):
    """dz_nc = g_n (e^(z_nc - lse_n) - [c == t_n]): softmax minus one-hot, times the loss's
    gradient; rows with t_n == ignore_index get 0."""
    for n in prange(z.shape[0]):
        if target[n] == ignore_index:
            dz[n, :] = 0
            continue
        g, shift = gloss[n], lse[n]
        for c in range(z.shape[1]):
            dz[n, c] = exp(z[n, c] - shift) * g
        dz[n, target[n]] -= g


def _targets(target, logits, ignore_index):
    """target as contiguous int64, one per row of logits, checked: each is a class index in
    [0, C) or ignore_index (the kernels do not check bounds, so a bad index must stop here)."""
    t = np.ascontiguousarray(target, np.int64).reshape(-1)
    rows, classes = logits.shape
    if t.shape[0] != rows:
        raise ValueError(f"cross_entropy: target has shape {np.shape(target)}, "
                         f"expected one class index per row of logits ({rows})")
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        raise ValueError(f"cross_entropy: target {t[bad][0]} is not a class index in "
                         f"0..{classes - 1} (nor ignore_index={ignore_index})")
    return t


def cross_entropy(logits, target, ignore_index):
    """Per-row loss and logsumexp, like reference.cross_entropy: returns (loss, lse)."""
    z = as_rows(logits)
    t = _targets(target, z, ignore_index)
    loss, lse = np.empty(z.shape[0], z.dtype), np.empty(z.shape[0], z.dtype)
    _cross_entropy_kernel(z, t, ignore_index, loss, lse)
    return loss.reshape(np.shape(target)), lse.reshape(np.shape(target))


def cross_entropy_backward(logits, lse, target, gloss, ignore_index):
    """Gradient of cross_entropy with respect to the logits, like the reference."""
    z = as_rows(logits)
    t = _targets(target, z, ignore_index)
    per_row = np.shape(target)
    dz = np.empty_like(z)
    _cross_entropy_backward_kernel(z, as_float(lse, z.dtype, per_row).reshape(-1), t,
                                   as_float(gloss, z.dtype, per_row).reshape(-1),
                                   ignore_index, dz)
    return dz.reshape(np.shape(logits))
