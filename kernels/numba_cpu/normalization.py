"""Layer norm and RMSNorm over the last axis, forward and backward, one pass of the cores over the rows.

    layer norm:  y = (x - mean) / sqrt(var + eps) * weight + bias   (biased var), as reference.layer_norm
    RMSNorm:     y = x / sqrt(mean(x²) + eps) * weight                          as reference.rms_norm
"""
import numba
import numpy as np
from numba import prange

from .machinery import TwoWays, as_float, as_rows


@TwoWays
def _layer_norm_kernel(x, weight, bias, eps, y, mean, rstd):
    """For every row i, over its n values:
    mean_i = sum_j x_ij / n,  rstd_i = 1 / sqrt(sum_j (x_ij - mean_i)² / n + eps),
    y_ij = (x_ij - mean_i) rstd_i weight_j + bias_j."""
    inv_n = x.dtype.type(1 / x.shape[1])
    for i in prange(x.shape[0]):
        total = x.dtype.type(0)
        for j in range(x.shape[1]):
            total += x[i, j]
        mu = total * inv_n
        squares = x.dtype.type(0)  # a second pass over the centred values: no cancellation
        for j in range(x.shape[1]):
            squares += (x[i, j] - mu) * (x[i, j] - mu)
        r = x.dtype.type(1) / np.sqrt(squares * inv_n + eps)
        for j in range(x.shape[1]):
            y[i, j] = (x[i, j] - mu) * r * weight[j] + bias[j]
        mean[i], rstd[i] = mu, r


@TwoWays
def _layer_norm_backward_kernel(gy, x, mean, rstd, weight, dx, dweight_parts, dbias_parts):
    """With x̂_ij = (x_ij - mean_i) rstd_i and ĝ_ij = gy_ij weight_j, for every row i:
    dx_ij = rstd_i (ĝ_ij - mean_j ĝ_ij - x̂_ij mean_j(ĝ_ij x̂_ij)),
    and the column sums dweight_j = sum_i gy_ij x̂_ij, dbias_j = sum_i gy_ij.

    The rows are cut into as many parts as dweight_parts has rows, one per thread; each part
    adds its rows into its own row of dweight_parts and dbias_parts (no two threads write to
    the same place), and the wrapper adds up the parts.
    """
    rows, n = x.shape
    parts = dweight_parts.shape[0]
    inv_n = x.dtype.type(1 / n)
    for p in prange(parts):
        for i in range(p * rows // parts, (p + 1) * rows // parts):
            mu, r = mean[i], rstd[i]
            mean_g = x.dtype.type(0)
            mean_gx = x.dtype.type(0)
            for j in range(n):
                xhat = (x[i, j] - mu) * r
                mean_g += gy[i, j] * weight[j]
                mean_gx += gy[i, j] * weight[j] * xhat
                dweight_parts[p, j] += gy[i, j] * xhat
                dbias_parts[p, j] += gy[i, j]
            mean_g *= inv_n
            mean_gx *= inv_n
            for j in range(n):
                xhat = (x[i, j] - mu) * r
                dx[i, j] = r * (gy[i, j] * weight[j] - mean_g - xhat * mean_gx)


def _weight_or(value, n, dtype, fill):
    """weight or bias as a contiguous (n,) array; None becomes `fill` (1: no scale, 0: no shift)."""
    return np.full(n, fill, dtype) if value is None else as_float(value, dtype).reshape(n)


def layer_norm(x, weight, bias, eps):
    """Layer norm over the last axis, like reference.layer_norm: returns (y, mean, rstd)."""
    x2 = as_rows(x)
    rows, n = x2.shape
    y, mean, rstd = np.empty_like(x2), np.empty(rows, x2.dtype), np.empty(rows, x2.dtype)
    _layer_norm_kernel(x2, _weight_or(weight, n, x2.dtype, 1), _weight_or(bias, n, x2.dtype, 0),
                       x2.dtype.type(eps), y, mean, rstd)
    stats_shape = np.shape(x)[:-1] + (1,)
    return y.reshape(np.shape(x)), mean.reshape(stats_shape), rstd.reshape(stats_shape)


def layer_norm_backward(gy, x, mean, rstd, weight):
    """Gradients of layer_norm, like the reference: (dx, dweight, dbias), None, None without weight."""
    x2 = as_rows(x)
    rows, n = x2.shape
    gy2 = as_rows(gy, x2.dtype, np.shape(x))
    dx = np.empty_like(x2)
    parts = np.zeros((2, numba.get_num_threads(), n), x2.dtype)  # dweight and dbias, per thread
    _layer_norm_backward_kernel(gy2, x2, as_float(mean, x2.dtype).reshape(rows),
                                as_float(rstd, x2.dtype).reshape(rows),
                                _weight_or(weight, n, x2.dtype, 1), dx, parts[0], parts[1])
    dx = dx.reshape(np.shape(x))
    if weight is None:
        return dx, None, None
    dweight, dbias = parts.sum(axis=1)
    return dx, dweight.reshape(np.shape(weight)), dbias.reshape(np.shape(weight))


@TwoWays
def _rms_norm_kernel(x, weight, eps, y, rstd):
    """For every row i, over its n values:
    rstd_i = 1 / sqrt(sum_j x_ij² / n + eps),   y_ij = x_ij rstd_i weight_j."""
    inv_n = x.dtype.type(1 / x.shape[1])
    for i in prange(x.shape[0]):
        squares = x.dtype.type(0)
        for j in range(x.shape[1]):
            squares += x[i, j] * x[i, j]
        r = x.dtype.type(1) / np.sqrt(squares * inv_n + eps)
        for j in range(x.shape[1]):
            y[i, j] = x[i, j] * r * weight[j]
        rstd[i] = r


@TwoWays
def _rms_norm_backward_kernel(gy, x, rstd, weight, dx, dweight_parts):
    """With x̂_ij = x_ij rstd_i and ĝ_ij = gy_ij weight_j, for every row i:
    dx_ij = rstd_i (ĝ_ij - x̂_ij mean_j(ĝ_ij x̂_ij)), and the column sums dweight_j = sum_i gy_ij x̂_ij,
    added up per thread in dweight_parts as in _layer_norm_backward_kernel."""
    rows, n = x.shape
    parts = dweight_parts.shape[0]
    inv_n = x.dtype.type(1 / n)
    for p in prange(parts):
        for i in range(p * rows // parts, (p + 1) * rows // parts):
            r = rstd[i]
            mean_gx = x.dtype.type(0)
            for j in range(n):
                xhat = x[i, j] * r
                mean_gx += gy[i, j] * weight[j] * xhat
                dweight_parts[p, j] += gy[i, j] * xhat
            mean_gx *= inv_n
            for j in range(n):
                dx[i, j] = r * (gy[i, j] * weight[j] - x[i, j] * r * mean_gx)


def rms_norm(x, weight, eps):
    """RMSNorm over the last axis, like reference.rms_norm: returns (y, rstd)."""
    x2 = as_rows(x)
    rows, n = x2.shape
    y, rstd = np.empty_like(x2), np.empty(rows, x2.dtype)
    _rms_norm_kernel(x2, _weight_or(weight, n, x2.dtype, 1), x2.dtype.type(eps), y, rstd)
    return y.reshape(np.shape(x)), rstd.reshape(np.shape(x)[:-1] + (1,))


def rms_norm_backward(gy, x, rstd, weight):
    """Gradients of rms_norm, like the reference: (dx, dweight), dweight None without weight."""
    x2 = as_rows(x)
    rows, n = x2.shape
    dx = np.empty_like(x2)
    parts = np.zeros((numba.get_num_threads(), n), x2.dtype)  # dweight, per thread
    _rms_norm_backward_kernel(as_rows(gy, x2.dtype, np.shape(x)), x2, as_float(rstd, x2.dtype).reshape(rows),
                              _weight_or(weight, n, x2.dtype, 1), dx, parts)
    dx = dx.reshape(np.shape(x))
    if weight is None:
        return dx, None
    return dx, parts.sum(axis=0).reshape(np.shape(weight))
