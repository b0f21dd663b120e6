"""Rotary position embedding (RoPE), the rotation of every pair (x_i, x_{i+d/2}) of a row of
queries or keys by its position's angles, as reference.rope:

    y_i = x_i cos - x_{i+d/2} sin,   y_{i+d/2} = x_{i+d/2} cos + x_i sin,   cos, sin (T, d/2).

The same kernel is the backward, with -sin (the rotation by the opposite angle). Both halves of
the output are written in one pass over x, with no concatenation; x is read through its strides,
so the transposed view of the heads that attention hands over (a Linear's output (B, T, heads, d)
seen as (B, heads, T, d)) is not copied first.
"""
import math

import numpy as np
from numba import prange

from .. import reference
from .machinery import TwoWays, as_float


@TwoWays
def _rope_kernel(x, cos, sin, y):
    """For every (a, b) (prange over both axes at once) and position p of x (A, B, T, d):
    y[a, b, p, i] = x_i cos_pi - x_{i+h} sin_pi,  y[a, b, p, i+h] = x_{i+h} cos_pi + x_i sin_pi,  h = d/2."""
    lead, heads, t, d = x.shape
    h = d // 2
    for ab in prange(lead * heads):
        a, b = ab // heads, ab % heads
        for p in range(t):
            for i in range(h):
                x1, x2, c, s = x[a, b, p, i], x[a, b, p, h + i], cos[p, i], sin[p, i]
                y[a, b, p, i] = x1 * c - x2 * s
                y[a, b, p, h + i] = x2 * c + x1 * s


def _four_axes(x):
    """x (..., T, d) as (A, B, T, d): a view with leading axes of 1 added (2 to 4 axes), or the
    leading axes merged into A (more than 4: a copy when they cannot be merged in place)."""
    if x.ndim > 4:
        return x.reshape((math.prod(x.shape[:-3]),) + x.shape[-3:])
    return x.reshape((1,) * (4 - x.ndim) + x.shape)


def rope(x, cos, sin):
    """x (..., T, d) rotated pair by pair, like reference.rope; x in any layout."""
    x = as_float(x, contiguous=False)
    reference.check_rope(x, np.asarray(cos), np.asarray(sin))
    x4 = _four_axes(x)
    y = np.empty(x4.shape, x.dtype)
    _rope_kernel(x4, as_float(cos, x.dtype), as_float(sin, x.dtype), y)
    return y.reshape(x.shape)
