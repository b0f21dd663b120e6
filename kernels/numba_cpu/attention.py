"""Causal self-attention without the T×T weights (flash attention, on a CPU), forward and
backward, as reference.causal_attention: the tiling is tinylm.kernels.flash (read it first: it
holds the algorithm), the tiles' products are NumPy's matmul (BLAS), and the element-wise work
of a tile is one of the two Numba kernels below, over the heads (prange) and the tile's rows.
"""
import numpy as np
from numba import prange

from .. import flash
from .machinery import TwoWays, as_float, exp, maxnum

_BLOCK = 128  # queries and keys per tile: a tile of scores is 64 KB per head in float32


# Each loop runs along the whole row of the tile and masks the future with a select, rather
# than stopping at the last key the query sees (LLVM's vector loop takes 64 values at a time,
# the rest go one by one), and a row's numbers (lse, D, m) are read into local variables first
# (read through the array, they are read again after every store, as LLVM cannot tell that the
# store does not change them): 60 -> 45 µs for the backward tile of the default GPT, one core.

@TwoWays
def _online_softmax_tile(s, scale, i0, j0, m, total, rescale):
    """One tile s (heads, rows, keys) of scores q·k for queries i0.. and keys j0..: scales them,
    masks the keys after each query, updates the running maximum m and sum `total` of each row
    (heads, rows), and turns s into P = e^(scale s - m'), m' the new maximum; rescale gets e^(m - m')."""
    heads, rows, keys = s.shape
    f = s.dtype.type
    for h in prange(heads):
        for r in range(rows):
            seen = i0 + r - j0 + 1  # keys j < seen of the tile: the query's past and itself
            m_old = m[h, r]
            m_new = m_old
            for j in range(keys):
                m_new = maxnum(m_new, scale * s[h, r, j] if j < seen else f(-np.inf))
            factor = exp(m_old - m_new)  # 0 for the first block (m = -inf)
            row_total = f(0)
            for j in range(keys):
                p = exp(scale * s[h, r, j] - m_new) if j < seen else f(0)
                s[h, r, j] = p
                row_total += p
            total[h, r] = total[h, r] * factor + row_total
            m[h, r], rescale[h, r] = m_new, factor


@TwoWays
def _softmax_grad_tile(s, dp, i0, j0, lse, big_d, scale):
    """One tile of the backward, in place: s (heads, rows, keys) holds q·k and becomes
    P = e^(scale s - lse) (0 after each query); dp holds gy·v and becomes dS = scale P (dp - D)."""
    heads, rows, keys = s.shape
    f = s.dtype.type
    for h in prange(heads):
        for r in range(rows):
            seen = i0 + r - j0 + 1
            row_lse, row_d = lse[h, r], big_d[h, r]
            for j in range(keys):
                p = exp(scale * s[h, r, j] - row_lse) if j < seen else f(0)
                s[h, r, j] = p
                dp[h, r, j] = scale * p * (dp[h, r, j] - row_d)


def _operand(x, dtype, shape, what):
    """x as an array of `dtype` (float32 or float64) after checking that it has `shape`; a
    strided view stays a view: np.matmul reads it in place, and the Numba kernels only see the
    contiguous tiles that flash makes."""
    if tuple(np.shape(x)) != tuple(shape):
        raise ValueError(f"causal_attention: {what} has shape {tuple(np.shape(x))}, expected {tuple(shape)}")
    return as_float(x, dtype, contiguous=False)


def causal_attention(q, k, v, scale):
    """Causal self-attention without the T×T weights, like reference.causal_attention: (y, lse)."""
    shape = np.shape(q)
    if len(shape) < 2:
        raise ValueError(f"causal_attention: q must be (..., T, d), got shape {shape}")
    q = as_float(q, contiguous=False)
    k = _operand(k, q.dtype, shape, "k")
    v = _operand(v, q.dtype, shape[:-1] + np.shape(v)[-1:], "v")
    return flash.forward(q, k, v, q.dtype.type(scale), _online_softmax_tile, _BLOCK)


def causal_attention_backward(q, k, v, y, lse, gy, scale):
    """Gradients of causal_attention, like reference.causal_attention_backward: (dq, dk, dv)."""
    shape = np.shape(q)
    q = as_float(q, contiguous=False)
    k = _operand(k, q.dtype, shape, "k")
    v_shape = shape[:-1] + np.shape(v)[-1:]
    v, y, gy = (_operand(a, q.dtype, v_shape, name) for a, name in ((v, "v"), (y, "y"), (gy, "gy")))
    lse = _operand(lse, q.dtype, shape[:-1], "lse")
    return flash.backward(q, k, v, y, lse, gy, q.dtype.type(scale), _softmax_grad_tile, _BLOCK)
