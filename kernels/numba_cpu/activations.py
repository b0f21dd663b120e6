"""GELU, element-wise, exact and tanh-approximated, forward and backward; and with a bias
added first (a Linear layer's bias and the GELU after it, in one pass). SwiGLU's gate, forward
and backward.

    GELU(x) = x Φ(x),  Φ(x) = (1 + erf(x/√2)) / 2;
    tanh form: x (1 + tanh u) / 2,  u = √(2/π)(x + 0.044715 x³),   as reference.gelu;
    bias_gelu: y = GELU(x + b), b added to every row,               as reference.bias_gelu;
    swiglu:    y = SiLU(a) b = a σ(a) b,  a the gate, b the up projection, as reference.swiglu.

Φ for float32 is machinery.normal_cdf (a fitted rational function that vectorises, where
math.erf is a call into the C library for each element).
"""
import math

import numba
import numpy as np
from numba import prange

from .machinery import JIT, TwoWays, as_float, as_rows, cached_njit, exp, normal_cdf

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715


@cached_njit(**JIT)
def gelu_at(x, tanh, f):
    """GELU at one value x (f: the type of the data, so constants stay in its precision).
    Exact:  x Φ(x) = x (1 + erf(x / √2)) / 2.
    tanh:   x (1 + tanh u) / 2 = x σ(2u) = x / (1 + e^(-2u)),  u = √(2/π)(x + 0.044715 x³),
    since (1 + tanh u) / 2 = σ(2u) exactly: one e^x, which vectorises, instead of tanh."""
    if tanh:
        u = f(_SQRT_2_OVER_PI) * (x + f(_GELU_C) * x * x * x)
        return x / (f(1) + exp(f(-2) * u))
    return x * normal_cdf(x)


@cached_njit(**JIT)
def gelu_slope(x, tanh, f):
    """dGELU/dx at one value x:
    exact:  Φ(x) + x φ(x),  φ(x) = e^(-x²/2) / √(2π);
    tanh:   with s = σ(2u) = (1 + tanh u) / 2, so that 1 - tanh² u = 4 s (1 - s):
            s + 2 x s (1 - s) √(2/π) (1 + 3 · 0.044715 x²)."""
    if tanh:
        u = f(_SQRT_2_OVER_PI) * (x + f(_GELU_C) * x * x * x)
        s = f(1) / (f(1) + exp(f(-2) * u))
        du = f(_SQRT_2_OVER_PI) * (f(1) + f(3 * _GELU_C) * x * x)
        return s + f(2) * x * s * (f(1) - s) * du
    return normal_cdf(x) + x * f(_INV_SQRT_2PI) * exp(f(-0.5) * x * x)


# Each kernel tests `tanh` once, outside its loops, and calls gelu_at / gelu_slope with a
# constant True or False: Numba then compiles one branch into each loop, which LLVM vectorises
# (a test of the variable inside the loop is not moved out, and the loop stays scalar: 16x slower).

@TwoWays
def _gelu_kernel(x, tanh, y):
    """y_i = GELU(x_i) over a flat array."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            y[i] = gelu_at(x[i], True, f)
    else:
        for i in prange(x.shape[0]):
            y[i] = gelu_at(x[i], False, f)


@TwoWays
def _gelu_backward_kernel(x, gy, tanh, dx):
    """dx_i = gy_i GELU'(x_i) over flat arrays."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            dx[i] = gy[i] * gelu_slope(x[i], True, f)
    else:
        for i in prange(x.shape[0]):
            dx[i] = gy[i] * gelu_slope(x[i], False, f)


@TwoWays
def _bias_gelu_kernel(x, bias, tanh, y):
    """y_ij = GELU(x_ij + b_j) for every row i: the bias never makes an array of its own."""
    f = x.dtype.type
    for i in prange(x.shape[0]):
        if tanh:
            for j in range(x.shape[1]):
                y[i, j] = gelu_at(x[i, j] + bias[j], True, f)
        else:
            for j in range(x.shape[1]):
                y[i, j] = gelu_at(x[i, j] + bias[j], False, f)


@TwoWays
def _bias_gelu_backward_kernel(x, bias, gy, tanh, dx, dbias_parts):
    """dx_ij = gy_ij GELU'(x_ij + b_j), and the column sums dbias_j = sum_i dx_ij in the same pass.

    The rows are cut into as many parts as dbias_parts has rows, one per thread; each part
    adds its rows into its own row of dbias_parts (no two threads write to the same place),
    and the wrapper adds up the parts (as normalization's dweight)."""
    f = x.dtype.type
    rows, n = x.shape
    parts = dbias_parts.shape[0]
    for p in prange(parts):
        for i in range(p * rows // parts, (p + 1) * rows // parts):
            if tanh:
                for j in range(n):
                    dx[i, j] = gy[i, j] * gelu_slope(x[i, j] + bias[j], True, f)
                    dbias_parts[p, j] += dx[i, j]
            else:
                for j in range(n):
                    dx[i, j] = gy[i, j] * gelu_slope(x[i, j] + bias[j], False, f)
                    dbias_parts[p, j] += dx[i, j]


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


def bias_gelu(x, bias, approximate="none"):
    """GELU(x + bias) over rows, like reference.bias_gelu."""
    x2 = as_rows(x)
    y = np.empty_like(x2)
    _bias_gelu_kernel(x2, as_float(bias, x2.dtype).reshape(x2.shape[1]), _is_tanh(approximate), y)
    return y.reshape(np.shape(x))


def bias_gelu_backward(x, bias, gy, approximate="none"):
    """Gradients of bias_gelu, like reference.bias_gelu_backward: (dx, dbias)."""
    x2 = as_rows(x)
    n = x2.shape[1]
    dx = np.empty_like(x2)
    parts = np.zeros((numba.get_num_threads(), n), x2.dtype)
    _bias_gelu_backward_kernel(x2, as_float(bias, x2.dtype).reshape(n), as_rows(gy, x2.dtype, np.shape(x)),
                               _is_tanh(approximate), dx, parts)
    return dx.reshape(np.shape(x)), parts.sum(axis=0).reshape(np.shape(bias))


@TwoWays
def _swiglu_kernel(a, b, y):
    """y_i = SiLU(a_i) b_i = a_i b_i / (1 + e^(-a_i)) over flat arrays (e^(-a) = inf for a < -88
    in float32 gives σ(a) = 0, as it should)."""
    one = a.dtype.type(1)
    for i in prange(a.shape[0]):
        y[i] = a[i] / (one + exp(-a[i])) * b[i]


@TwoWays
def _swiglu_backward_kernel(a, b, gy, da, db):
    """With s = σ(a_i), in one pass:  da_i = gy_i b_i s (1 + a_i (1 - s)),   db_i = gy_i a_i s."""
    one = a.dtype.type(1)
    for i in prange(a.shape[0]):
        s = one / (one + exp(-a[i]))
        da[i] = gy[i] * b[i] * s * (one + a[i] * (one - s))
        db[i] = gy[i] * a[i] * s


def swiglu(gate, up):
    """SiLU(gate) ⊙ up, element-wise, like reference.swiglu."""
    a = as_float(gate).reshape(-1)
    y = np.empty_like(a)
    _swiglu_kernel(a, as_float(up, a.dtype, np.shape(gate)).reshape(-1), y)
    return y.reshape(np.shape(gate))


def swiglu_backward(gate, up, gy):
    """Gradients of swiglu for the gradient gy of its output, like reference.swiglu_backward: (dgate, dup)."""
    a = as_float(gate).reshape(-1)
    b, g = (as_float(v, a.dtype, np.shape(gate)).reshape(-1) for v in (up, gy))
    da, db = np.empty_like(a), np.empty_like(a)
    _swiglu_backward_kernel(a, b, g, da, db)
    return da.reshape(np.shape(gate)), db.reshape(np.shape(gate))
