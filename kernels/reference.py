"""The reference kernels: the hot ops written once in plain array code.

Every function here works on raw arrays (NumPy on the CPU, CuPy on a GPU: ``xp`` is
the array module of the input) and acts along the LAST axis. The ops in
``tinylm.ops`` move the axis they work on to the end, then ask the backend for a
kernel set; this module is the set called "numpy". The Numba and CuPy kernels in
``tinylm.kernels`` implement the same functions with the same signatures and are
tested against these.
"""
import math

import numpy as np

from ..backend import xp_of


def matmul(a, b):
    """C = A B over the last two axes (leading axes broadcast).

    A stack of matrices times one matrix, (..., n, k) @ (k, m), is computed as one 2-D product
    of all the rows, (rows, k) @ (k, m): one large BLAS call instead of a loop of small ones
    (NumPy's stacked matmul can be a hundred times slower on a transposed operand).
    """
    xp = xp_of(a)
    if a.ndim > 2 and b.ndim == 2:
        return xp.matmul(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    return xp.matmul(a, b)


def softmax(x):
    """y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j (001.softmax; m keeps exp finite)."""
    xp = xp_of(x)
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(y, gy):
    """dx_i = y_i (g_i - sum_j g_j y_j): the softmax Jacobian diag(y) - y yᵀ times g."""
    return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


def log_softmax(x):
    """y_i = x_i - logsumexp(x) = (x_i - m) - log sum_j exp(x_j - m)."""
    xp = xp_of(x)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(y, gy):
    """dx_i = g_i - softmax_i sum_j g_j, with softmax = exp(y) from the forward output y."""
    return gy - xp_of(y).exp(y) * gy.sum(axis=-1, keepdims=True)


def causal_softmax(scores, scale):
    """Softmax of scale*scores over the last axis with future keys masked out.

    scores has shape (..., T, S): query i (of the last T) may see key j when
    j <= i + S - T, so with S == T the usual lower triangle is kept, and with a KV
    cache (S > T) each new query also sees every earlier position.
    """
    xp = xp_of(scores)
    t, s = scores.shape[-2:]
    future = xp.arange(s)[None, :] > xp.arange(t)[:, None] + (s - t)
    return softmax(xp.where(future, -xp.inf, scores * scale))


def layer_norm(x, weight, bias, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased var).

    Returns (y, mean, rstd) with rstd = 1/sqrt(var + eps), kept for the backward.
    weight and bias may be None (no affine transform).
    """
    xp = xp_of(x)
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    rstd = 1.0 / xp.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    y = xc * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


def layer_norm_backward(gy, x, mean, rstd, weight):
    """Gradients of layer_norm, with x̂ = (x - mean) rstd and ĝ = gy * weight:

        dx = rstd (ĝ - mean(ĝ) - x̂ mean(ĝ x̂))      (means over the normalised axis)
        dweight = sum over rows of gy x̂,   dbias = sum over rows of gy

    Returns (dx, dweight, dbias); dweight/dbias are None when weight is None.
    """
    xhat = (x - mean) * rstd
    g = gy if weight is None else gy * weight
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx, None, None
    rows = tuple(range(gy.ndim - 1))
    return dx, (gy * xhat).sum(axis=rows), gy.sum(axis=rows)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _erf(xp, x):
    """erf, element-wise. NumPy has no erf ufunc, so the reference maps math.erf over the
    values (exact, slow: the Numba kernel is the fast path); CuPy has one in cupyx."""
    if xp.__name__ == "numpy":
        return _np_erf(x).astype(x.dtype, copy=False)
    from cupyx.scipy.special import erf  # pragma: no cover - GPU only

    return erf(x)


_np_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate="none"):
    """GELU(x) = x Φ(x), Φ(x) = ½(1 + erf(x/√2)); with approximate="tanh":
    ½ x (1 + tanh(√(2/π)(x + 0.044715 x³)))."""
    xp = xp_of(x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + _erf(xp, x * _INV_SQRT_2))


def gelu_backward(x, gy, approximate="none"):
    """d GELU/dx = Φ(x) + x φ(x), φ(x) = exp(-x²/2)/√(2π); for the tanh form, with
    u = √(2/π)(x + 0.044715 x³) and t = tanh u:  ½(1 + t) + ½ x (1 - t²) √(2/π)(1 + 3·0.044715 x²)."""
    xp = xp_of(x)
    if approximate == "tanh":
        t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
        d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x * x)
    else:
        d = 0.5 * (1.0 + _erf(xp, x * _INV_SQRT_2)) + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
    return gy * d.astype(x.dtype, copy=False)


def cross_entropy(logits, target, ignore_index):
    """Per-row loss_n = logsumexp(z_n) - z_n[t_n] (004.pretrain.loss: -log softmax at the target).

    logits (N, C), target (N,) integers. Rows whose target is ignore_index get loss 0.
    Returns (loss (N,), lse (N,)); lse = logsumexp per row is kept for the backward.
    """
    xp = xp_of(logits)
    m = logits.max(axis=-1)
    lse = m + xp.log(xp.exp(logits - m[:, None]).sum(axis=-1))
    keep = target != ignore_index
    safe = xp.where(keep, target, 0)
    picked = xp.take_along_axis(logits, safe[:, None], axis=-1)[:, 0]
    return xp.where(keep, lse - picked, 0).astype(logits.dtype, copy=False), lse


def cross_entropy_backward(logits, lse, target, gloss, ignore_index):
    """dz_nc = g_n (softmax(z_n)_c - [c == t_n]); rows with target == ignore_index get 0."""
    xp = xp_of(logits)
    keep = target != ignore_index
    g = xp.where(keep, gloss, 0).astype(logits.dtype, copy=False)
    grad = xp.exp(logits - lse[:, None]) * g[:, None]
    rows = xp.arange(logits.shape[0])
    grad[rows, xp.where(keep, target, 0)] -= g
    return grad


def adam_step(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam (AdamW when decoupled) update of w, m and v, in place; step t counts from 1:

        AdamW: w ← w (1 - lr λ);   Adam: g ← g + λ w
        m ← β1 m + (1-β1) g,   v ← β2 v + (1-β2) g²
        w ← w - lr/(1-β1^t) · m / (√(v/(1-β2^t)) + ε)
    """
    xp = xp_of(w)
    if weight_decay and decoupled:
        w *= 1 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * w
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    denom = xp.sqrt(v / (1 - beta2 ** step))
    denom += eps
    w -= (lr / (1 - beta1 ** step)) * (m / denom)
