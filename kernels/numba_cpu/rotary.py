"""Rotary position embedding (RoPE), the rotation of every pair (x_i, x_{i+d/2}) of a row of
queries or keys by its position's angles, as reference.rope:

    y_i = x_i cos - x_{i+d/2} sin,   y_{i+d/2} = x_{i+d/2} cos + x_i sin,   cos, sin (T, d/2).

The same kernel is the backward, with -sin (the rotation by the opposite angle). Both halves of
the output are written in one pass over x, with no concatenation. Attention hands over its
queries and keys as the heads' view (N, heads, T, d) of a Linear's output (N, T, heads, d): that
view is read where it lies, and the result is laid out the same way, instead of a copy first.
"""
import math

import numpy as np
from numba import prange

from .. import reference
from .machinery import TwoWays, as_float


@TwoWays
def _rope_kernel(x, cos, sin, y):
    """x and y (A, T, B, d) C-contiguous, B rows of d at each position p of the T: for every a
    and p (prange over both) and row b,
    y[a, p, b, i] = x_i cos_pi - x_{i+h} sin_pi,  y[a, p, b, i+h] = x_{i+h} cos_pi + x_i sin_pi,  h = d/2."""
    lead, t, rows, d = x.shape
    h = d // 2
    for ap in prange(lead * t):
        a, p = ap // t, ap % t
        for b in range(rows):
            for i in range(h):
                x1, x2, c, s = x[a, p, b, i], x[a, p, b, h + i], cos[p, i], sin[p, i]
                y[a, p, b, i] = x1 * c - x2 * s
                y[a, p, b, h + i] = x2 * c + x1 * s


def rope(x, cos, sin):
    """x (..., T, d) rotated pair by pair, like reference.rope; x in any layout. A contiguous x is
    seen as (lead, T, 1, d); the heads' view (..., heads, T, d) of a contiguous (..., T, heads, d)
    as that array, and y comes back as the same view; any other layout is copied first."""
    x = as_float(x, contiguous=False)
    reference.check_rope(x, np.asarray(cos), np.asarray(sin))
    shape = x.shape
    heads_view = x.ndim >= 3 and not x.flags.c_contiguous and x.swapaxes(-3, -2).flags.c_contiguous
    if heads_view:
        x4 = x.swapaxes(-3, -2).reshape((math.prod(shape[:-3]), shape[-2], shape[-3], shape[-1]))
    else:
        x4 = np.ascontiguousarray(x).reshape((math.prod(shape[:-2]), shape[-2], 1, shape[-1]))
    y = np.empty_like(x4)
    _rope_kernel(x4, as_float(cos, x.dtype), as_float(sin, x.dtype), y)
    if heads_view:
        return y.reshape(shape[:-3] + (shape[-2], shape[-3], shape[-1])).swapaxes(-3, -2)
    return y.reshape(shape)
