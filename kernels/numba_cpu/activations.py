"""GELU, element-wise, exact and tanh-approximated, forward and backward.

    GELU(x) = x Φ(x),  Φ(x) = (1 + erf(x/√2)) / 2;
    tanh form: x (1 + tanh u) / 2,  u = √(2/π)(x + 0.044715 x³),   as reference.gelu.

Φ for float32 is machinery.normal_cdf (a fitted polynomial that vectorises, where math.erf
is a call into the C library for each element).
"""
import math

import numpy as np
from numba import prange

from .machinery import TwoWays, as_float, exp, normal_cdf

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715


@TwoWays
def _gelu_kernel(x, tanh, y):
    """Exact:  y = x Φ(x) = x (1 + erf(x / √2)) / 2.
    tanh:   y = x (1 + tanh u) / 2 = x σ(2u) = x / (1 + e^(-2u)),  u = √(2/π)(x + 0.044715 x³),
    since (1 + tanh u) / 2 = σ(2u) exactly: one e^x, which vectorises, instead of tanh."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            u = f(_SQRT_2_OVER_PI) * (x[i] + f(_GELU_C) * x[i] * x[i] * x[i])
            y[i] = x[i] / (f(1) + exp(f(-2) * u))
    else:
        for i in prange(x.shape[0]):
            y[i] = x[i] * normal_cdf(x[i], exp(f(-0.5) * x[i] * x[i]))


@TwoWays
def _gelu_backward_kernel(x, gy, tanh, dx):
    """dx = gy dGELU/dx with
    exact:  dGELU/dx = Φ(x) + x φ(x),  φ(x) = e^(-x²/2) / √(2π);
    tanh:   with s = σ(2u) = (1 + tanh u) / 2, so that 1 - tanh² u = 4 s (1 - s):
            dGELU/dx = s + 2 x s (1 - s) √(2/π) (1 + 3 · 0.044715 x²)."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            u = f(_SQRT_2_OVER_PI) * (x[i] + f(_GELU_C) * x[i] * x[i] * x[i])
            s = f(1) / (f(1) + exp(f(-2) * u))
            du = f(_SQRT_2_OVER_PI) * (f(1) + f(3 * _GELU_C) * x[i] * x[i])
            dx[i] = gy[i] * (s + f(2) * x[i] * s * (f(1) - s) * du)
    else:
        for i in prange(x.shape[0]):
            e = exp(f(-0.5) * x[i] * x[i])  # e^(-x²/2): serves Φ (float32) and φ
            dx[i] = gy[i] * (normal_cdf(x[i], e) + x[i] * f(_INV_SQRT_2PI) * e)


def _is_tanh(approximate):
    """True for approximate="tanh", False for "none"; anything else is an error."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


def gelu(x, approximate="none"):
    """GELU, element-wise, like reference.gelu (approximate: "none" or "tanh")."""
    x1 = as_float(x).reshape(-1)
    y = np.empty_like(x1)
    _gelu_kernel(x1, _is_tanh(approximate), y)
    return y.reshape(np.shape(x))


def gelu_backward(x, gy, approximate="none"):
    """Gradient of gelu at x times the incoming gradient gy, like reference.gelu_backward."""
    x1 = as_float(x).reshape(-1)
    gy1 = as_float(gy, x1.dtype, np.shape(x)).reshape(-1)
    dx = np.empty_like(x1)
    _gelu_backward_kernel(x1, gy1, _is_tanh(approximate), dx)
    return dx.reshape(np.shape(x))
