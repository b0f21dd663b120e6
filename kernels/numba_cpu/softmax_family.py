"""The softmax family, along rows: softmax, log-softmax, causal softmax and their backwards.

    softmax:      y_j = e^(x_j - m) / sum_k e^(x_k - m),  m = max_k x_k  (001.softmax)
    log-softmax:  y_j = (x_j - m) - log sum_k e^(x_k - m)
    causal:       softmax of scale x over the keys a query may see; the others get 0

Subtracting m keeps every e^(x_k - m) <= 1 (no overflow) and the largest equal to 1. Each
kernel gives the CPU cores whole rows (prange); the loop along a row vectorises, with e^x
from machinery.exp and the maximum from machinery.maxnum.
"""
import math

import numpy as np
from numba import prange

from .machinery import JIT, TwoWays, as_float, cached_njit, exp, maxnum, row_op
from .matrix_product import dot


@cached_njit(**JIT)
def softmax_row(x, scale, y):
    """y_j = e^(s x_j - m) / sum_k e^(s x_k - m), m = max_k s x_k, for one row x and scale s."""
    m = row_max(x, scale)
    total = x.dtype.type(0)
    for j in range(x.shape[0]):
        e = exp(scale * x[j] - m)
        y[j] = e
        total += e
    for j in range(x.shape[0]):
        y[j] = y[j] / total  # arcp: LLVM multiplies by 1/total instead


@cached_njit(**JIT)
def row_max(x, scale):
    """m = max_j scale x_j over a 1-D row (-inf when the row is empty)."""
    m = x.dtype.type(-np.inf)
    for j in range(x.shape[0]):
        m = maxnum(m, scale * x[j])
    return m


@cached_njit(**JIT)
def max_and_log_sum(x):
    """(m, l) with m = max_j x_j and l = log sum_j e^(x_j - m): logsumexp(x) = m + l."""
    m = row_max(x, x.dtype.type(1))
    total = x.dtype.type(0)
    for j in range(x.shape[0]):
        total += exp(x[j] - m)
    return m, np.log(total)


@TwoWays
def _softmax_kernel(x, y):
    """y_ij = e^(x_ij - m_i) / sum_k e^(x_ik - m_i), m_i = max_k x_ik, for every row i."""
    for i in prange(x.shape[0]):
        softmax_row(x[i], x.dtype.type(1), y[i])


@TwoWays
def _softmax_backward_kernel(y, gy, dx):
    """dx_ij = y_ij (g_ij - sum_k g_ik y_ik) for every row i."""
    for i in prange(y.shape[0]):
        total = dot(gy[i], y[i])
        for j in range(y.shape[1]):
            dx[i, j] = y[i, j] * (gy[i, j] - total)


@TwoWays
def _log_softmax_kernel(x, y):
    """y_ij = (x_ij - m_i) - log sum_k e^(x_ik - m_i), m_i = max_k x_ik, for every row i."""
    for i in prange(x.shape[0]):
        m, log_sum = max_and_log_sum(x[i])
        for j in range(x.shape[1]):
            y[i, j] = (x[i, j] - m) - log_sum


@TwoWays
def _log_softmax_backward_kernel(y, gy, dx):
    """dx_ij = g_ij - e^(y_ij) sum_k g_ik for every row i (e^y is the softmax)."""
    for i in prange(y.shape[0]):
        total = gy.dtype.type(0)
        for j in range(y.shape[1]):
            total += gy[i, j]
        for j in range(y.shape[1]):
            dx[i, j] = gy[i, j] - exp(y[i, j]) * total


@TwoWays
def _causal_softmax_kernel(x, scale, y):
    """y[b, i] = softmax(scale x[b, i, :v]) followed by zeros, v = i + S - T + 1 for x of
    shape (B, T, S): query i sees keys j <= i + S - T; the masked keys get weight 0."""
    batch, t, s = x.shape
    for r in prange(batch * t):
        b, i = r // t, r % t
        v = i + s - t + 1
        if v <= 0:  # T > S and this query sees no key: softmax over nothing, NaN as in the reference
            y[b, i, :] = np.nan
            continue
        softmax_row(x[b, i, :v], scale, y[b, i, :v])
        y[b, i, v:] = 0


def softmax(x):
    """Softmax over the last axis, like reference.softmax."""
    return row_op(_softmax_kernel, x)


def softmax_backward(y, gy):
    """Gradient of softmax from its output y and the incoming gradient gy, like the reference."""
    return row_op(_softmax_backward_kernel, y, gy)


def log_softmax(x):
    """Log-softmax over the last axis, like reference.log_softmax."""
    return row_op(_log_softmax_kernel, x)


def log_softmax_backward(y, gy):
    """Gradient of log_softmax from its output y and the incoming gradient gy, like the reference."""
    return row_op(_log_softmax_backward_kernel, y, gy)


def causal_softmax(scores, scale):
    """Softmax of scale*scores (..., T, S) with future keys masked, like reference.causal_softmax."""
    shape = np.shape(scores)
    x = as_float(scores).reshape((math.prod(shape[:-2]),) + shape[-2:])
    y = np.empty_like(x)
    _causal_softmax_kernel(x, x.dtype.type(scale), y)
    return y.reshape(shape)
