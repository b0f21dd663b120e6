"""The "cupy" kernel set: the hot ops as CUDA kernels on CuPy arrays.

The functions, signatures and results are those of tinylm.kernels.reference, which is the
specification (its CONTRACT lists them): read it first. Everything acts along the last
axis. Each function makes its inputs C-contiguous (so any layout is accepted, transposed
and strided views included), views them as a (rows, cols) array, cols being the last axis,
and launches a kernel from the CUDA C sources in kernels/cuda/: one file per family,
common.cuh for the helpers they share. The kernels are templates; NVRTC compiles each
file on first use, for float and for double.

matmul is cuBLAS (cupy.matmul); matmul_tiled is the teaching kernel of matmul.cu. adam_step,
swiglu, swiglu_backward and rope are the reference's array code, run on CuPy arrays.

Scalars passed to a kernel must have the exact C type of its parameter: CuPy hands a
Python int over as a long long and a Python float as a double, so the wrappers convert
(np.int32 for int, np.int64 for long long, the array's dtype for T).
"""
import functools
import math
import re
from pathlib import Path

import cupy
import numpy as np

from . import flash  # causal attention's tiling, shared with the Numba set
# Adam/AdamW: the reference's array code runs on CuPy arrays as it is (CuPy's element-wise
# kernels), in place on w, m and v whatever their layout
from .reference import adam_step  # noqa: F401
# SwiGLU's gate and RoPE: the reference's array code on CuPy arrays too (a few element-wise
# kernels and a concatenation each; no .cu kernel of their own yet)
from .reference import rope, swiglu, swiglu_backward  # noqa: F401

_SOURCES = Path(__file__).with_name("cuda")
_C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
_KERNEL_NAME = re.compile(r"__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s+)?(\w+)")

_MAX_ROW_THREADS = 256  # threads per row block; longer rows are walked in strides
_ELEMENTWISE_THREADS = 256
_ELEMENTWISE_BLOCKS = 4096  # at most: the grid-stride loop covers any size
_PARAM_GRAD_ROWS, _PARAM_GRAD_COLS = 32, 256  # the rows x columns one block of a norm's weight gradient sums
_TILE = 128  # the C tile of one matmul_tiled block (TILE_M = TILE_N in matmul.cu)
_TILE_THREADS = 256
# What one launch can cover: a grid has at most 2**31 - 1 blocks along x and 65535 along y, and
# the kernels take sizes as C ints (at most 2**31 - 1). The wrappers refuse larger sizes.
_MAX_INT = _MAX_GRID_X = 2**31 - 1
_MAX_GRID_Y = 65535


@functools.cache
def _module(family):
    """kernels/cuda/<family>.cu as a CuPy module holding every kernel of the file for float and double."""
    source = (_SOURCES / f"{family}.cu").read_text()
    # Paste common.cuh in instead of letting NVRTC include it: CuPy caches compiled code
    # by source text, so a change to the header must be part of the text to be seen.
    source = source.replace('#include "common.cuh"', (_SOURCES / "common.cuh").read_text())
    names = _KERNEL_NAME.findall(source)
    return cupy.RawModule(code=source, name_expressions=[f"{n}<{t}>" for n in names for t in _C_TYPES.values()])


@functools.cache
def _kernel(family, name, dtype):
    """The kernel `name` of kernels/cuda/<family>.cu for arrays of `dtype`."""
    if dtype not in _C_TYPES:
        raise TypeError(f"the CUDA kernel {name} computes in float32 or float64, not {dtype}")
    return _module(family).get_function(f"{name}<{_C_TYPES[dtype]}>")


def _at_most(size, limit, what):
    """Refuse, in one line and before any launch, a size beyond what a kernel's launch can cover."""
    if size > limit:
        raise ValueError(f"{what} is {size:,}: the CUDA kernel takes at most {limit:,} (its launch grid and C ints)")


def _rows(x, max_cols=_MAX_INT):
    """x as a C-contiguous (rows, cols) array: every axis but the last is flattened into rows.
    A row kernel gets one block per row: at most _MAX_GRID_X rows, and at most max_cols columns."""
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"these kernels work along a non-empty last axis, got an array of shape {x.shape}")
    _at_most(math.prod(x.shape[:-1]), _MAX_GRID_X, f"the number of rows of an array of shape {tuple(x.shape)}")
    _at_most(x.shape[-1], max_cols, f"the last axis of an array of shape {tuple(x.shape)}")
    x = cupy.ascontiguousarray(x)
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _operand(a, shape, dtype, what):
    """a as a C-contiguous array of `dtype`, after checking its shape (a kernel would read past a smaller one)."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    return cupy.ascontiguousarray(a, dtype=dtype).reshape(shape)


def _per_row(family, name, x2, *args):
    """Launch a row kernel on the (rows, cols) array x2: one block per row, whole warps covering
    the row once up to _MAX_ROW_THREADS. args are the kernel's arguments."""
    kernel = _kernel(family, name, x2.dtype)
    rows, cols = x2.shape
    if rows:
        kernel((rows,), (min(_MAX_ROW_THREADS, 32 * -(-cols // 32)),), args)


def _elementwise(name, x, *arrays_and_flags):
    """Launch an element-wise kernel of gelu.cu over the n elements of the contiguous array x."""
    kernel = _kernel("gelu", name, x.dtype)
    if x.size:
        blocks = min(_ELEMENTWISE_BLOCKS, -(-x.size // _ELEMENTWISE_THREADS))
        kernel((blocks,), (_ELEMENTWISE_THREADS,), arrays_and_flags)


# ---- matmul ----

def matmul(a, b):
    """C = A B over the last two axes (leading axes broadcast): cuBLAS, through cupy.matmul."""
    return cupy.matmul(a, b)


def matmul_tiled(a, b):
    """C = A B for 2-D A (M, K) and B (K, N), float32 or float64, with the tiled kernel of matmul.cu."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_tiled multiplies (M, K) by (K, N), got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul_tiled needs one dtype, got {a.dtype} and {b.dtype}")
    _at_most(a.shape[0], _MAX_GRID_Y * _TILE, "matmul_tiled: M (rows of A, 128 per block along y)")
    _at_most(max(a.shape[1], b.shape[1]), _MAX_INT, "matmul_tiled: the larger of K and N")
    kernel = _kernel("matmul", "matmul_tiled", a.dtype)
    a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
    (m, k), n = a.shape, b.shape[1]
    c = cupy.empty((m, n), dtype=a.dtype)
    if c.size:  # with K == 0 the kernel writes zeros
        grid = (-(-n // _TILE), -(-m // _TILE))
        kernel(grid, (_TILE_THREADS,), (a, b, c, np.int32(m), np.int32(n), np.int32(k)))
    return c


# ---- softmax family ----

def _softmax_forward(name, x):
    x2 = _rows(x)
    y = cupy.empty_like(x2)
    _per_row("softmax", name, x2, x2, y, np.int32(x2.shape[1]))
    return y.reshape(x.shape)


def _softmax_backward(name, y, gy):
    y2 = _rows(y)
    gy2 = _operand(gy, y.shape, y2.dtype, "gy").reshape(y2.shape)
    dx = cupy.empty_like(y2)
    _per_row("softmax", name, y2, y2, gy2, dx, np.int32(y2.shape[1]))
    return dx.reshape(y.shape)


def softmax(x):
    """y_i = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j."""
    return _softmax_forward("softmax_forward", x)


def softmax_backward(y, gy):
    """dx_i = y_i (g_i - sum_j g_j y_j)."""
    return _softmax_backward("softmax_backward", y, gy)


def log_softmax(x):
    """y_i = x_i - logsumexp(x)."""
    return _softmax_forward("log_softmax_forward", x)


def log_softmax_backward(y, gy):
    """dx_i = g_i - exp(y_i) sum_j g_j."""
    return _softmax_backward("log_softmax_backward", y, gy)


def causal_softmax(scores, scale):
    """Softmax of scale*scores (..., T, S) over the last axis, query i seeing keys j <= i + S - T.

    A query that sees no key (only when S < T) gets a row of zeros; the reference gives NaN.
    """
    if scores.ndim < 2:
        raise ValueError(f"causal_softmax needs scores of shape (..., T, S), got {scores.shape}")
    x2 = _rows(scores)
    y = cupy.empty_like(x2)
    queries, keys = scores.shape[-2:]
    _per_row("softmax", "causal_softmax_forward", x2, x2, y, np.int32(queries), np.int32(keys),
             x2.dtype.type(scale))
    return y.reshape(scores.shape)


# ---- layer norm ----

def _affine(a, cols, dtype, fill, what):
    """weight or bias as a contiguous (cols,) array; None (no affine transform) becomes `fill`."""
    if a is None:
        return cupy.full(cols, fill, dtype=dtype)
    return _operand(a, (cols,), dtype, what)


def layer_norm(x, weight, bias, eps):
    """y = (x - mean) / sqrt(var + eps) * weight + bias; returns (y, mean, rstd), mean and rstd (..., 1)."""
    x2 = _rows(x)
    rows, cols = x2.shape
    w = _affine(weight, cols, x2.dtype, 1, "weight")
    b = _affine(bias, cols, x2.dtype, 0, "bias")
    y = cupy.empty_like(x2)
    mean = cupy.empty(rows, dtype=x2.dtype)
    rstd = cupy.empty(rows, dtype=x2.dtype)
    _per_row("layer_norm", "layer_norm_forward", x2, x2, w, b, y, mean, rstd,
             np.int32(cols), x2.dtype.type(eps))
    stats = x.shape[:-1] + (1,)
    return y.reshape(x.shape), mean.reshape(stats), rstd.reshape(stats)


def layer_norm_backward(gy, x, mean, rstd, weight):
    """(dx, dweight, dbias) of layer_norm; dweight and dbias are None when weight is None."""
    # with a weight, layer_norm_backward_params's blocks cover _PARAM_GRAD_COLS columns each, along y
    x2 = _rows(x, _MAX_INT if weight is None else _MAX_GRID_Y * _PARAM_GRAD_COLS)
    rows, cols = x2.shape
    stats = x.shape[:-1] + (1,)
    gy2 = _operand(gy, x.shape, x2.dtype, "gy").reshape(rows, cols)
    mean1 = _operand(mean, stats, x2.dtype, "mean").reshape(rows)
    rstd1 = _operand(rstd, stats, x2.dtype, "rstd").reshape(rows)
    w = _affine(weight, cols, x2.dtype, 1, "weight")
    dx = cupy.empty_like(x2)
    _per_row("layer_norm", "layer_norm_backward", x2, gy2, x2, mean1, rstd1, w, dx, np.int32(cols))
    if weight is None:
        return dx.reshape(x.shape), None, None
    # dweight, dbias: a block sums a chunk of rows of its columns; then the chunks' sums are added.
    chunks = -(-rows // _PARAM_GRAD_ROWS)
    dw_part = cupy.empty((chunks, cols), dtype=x2.dtype)
    db_part = cupy.empty((chunks, cols), dtype=x2.dtype)
    kernel = _kernel("layer_norm", "layer_norm_backward_params", x2.dtype)
    if rows:
        kernel((chunks, -(-cols // _PARAM_GRAD_COLS)), (_PARAM_GRAD_COLS,),
               (gy2, x2, mean1, rstd1, dw_part, db_part,
                np.int32(rows), np.int32(cols), np.int32(_PARAM_GRAD_ROWS)))
    return dx.reshape(x.shape), dw_part.sum(axis=0), db_part.sum(axis=0)


# ---- RMSNorm ----

def rms_norm(x, weight, eps):
    """y = x / sqrt(mean(x²) + eps) * weight; returns (y, rstd), rstd (..., 1)."""
    x2 = _rows(x)
    rows, cols = x2.shape
    y = cupy.empty_like(x2)
    rstd = cupy.empty(rows, dtype=x2.dtype)
    _per_row("rms_norm", "rms_norm_forward", x2, x2, _affine(weight, cols, x2.dtype, 1, "weight"), y, rstd,
             np.int32(cols), x2.dtype.type(eps))
    return y.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,))


def rms_norm_backward(gy, x, rstd, weight):
    """(dx, dweight) of rms_norm; dweight is None when weight is None."""
    # with a weight, rms_norm_backward_weight's blocks cover _PARAM_GRAD_COLS columns each, along y
    x2 = _rows(x, _MAX_INT if weight is None else _MAX_GRID_Y * _PARAM_GRAD_COLS)
    rows, cols = x2.shape
    gy2 = _operand(gy, x.shape, x2.dtype, "gy").reshape(rows, cols)
    rstd1 = _operand(rstd, x.shape[:-1] + (1,), x2.dtype, "rstd").reshape(rows)
    dx = cupy.empty_like(x2)
    _per_row("rms_norm", "rms_norm_backward", x2, gy2, x2, rstd1, _affine(weight, cols, x2.dtype, 1, "weight"),
             dx, np.int32(cols))
    if weight is None:
        return dx.reshape(x.shape), None
    # dweight: a block sums a chunk of rows of its columns; then the chunks' sums are added (as layer_norm)
    chunks = -(-rows // _PARAM_GRAD_ROWS)
    dw_part = cupy.empty((chunks, cols), dtype=x2.dtype)
    if rows:
        _kernel("rms_norm", "rms_norm_backward_weight", x2.dtype)(
            (chunks, -(-cols // _PARAM_GRAD_COLS)), (_PARAM_GRAD_COLS,),
            (gy2, x2, rstd1, dw_part, np.int32(rows), np.int32(cols), np.int32(_PARAM_GRAD_ROWS)))
    return dx.reshape(x.shape), dw_part.sum(axis=0)


# ---- GELU ----

def _tanh_form(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return np.int32(approximate == "tanh")


def gelu(x, approximate="none"):
    """GELU(x) = x Φ(x), or its tanh approximation with approximate="tanh"."""
    tanh_form = _tanh_form(approximate)
    x1 = cupy.ascontiguousarray(x)
    y = cupy.empty_like(x1)
    _elementwise("gelu_forward", x1, x1, y, np.int64(x1.size), tanh_form)
    return y.reshape(x.shape)


def gelu_backward(x, gy, approximate="none"):
    """dx = gy GELU'(x)."""
    tanh_form = _tanh_form(approximate)
    x1 = cupy.ascontiguousarray(x)
    gy1 = _operand(gy, x.shape, x1.dtype, "gy")
    dx = cupy.empty_like(x1)
    _elementwise("gelu_backward", x1, x1, gy1, dx, np.int64(x1.size), tanh_form)
    return dx.reshape(x.shape)


def bias_gelu(x, bias, approximate="none"):
    """y = GELU(x + bias), the bias added to every row (a Linear's bias, then GELU)."""
    tanh_form = _tanh_form(approximate)
    x2 = _rows(x)
    b = _operand(bias, x.shape[-1:], x2.dtype, "bias")
    y = cupy.empty_like(x2)
    _elementwise("bias_gelu_forward", x2, x2, b, y, np.int64(x2.size), np.int32(x2.shape[1]), tanh_form)
    return y.reshape(x.shape)


def bias_gelu_backward(x, bias, gy, approximate="none"):
    """dx = gy GELU'(x + bias), dbias = dx summed over the rows; returns (dx, dbias)."""
    tanh_form = _tanh_form(approximate)
    x2 = _rows(x)
    b = _operand(bias, x.shape[-1:], x2.dtype, "bias")
    gy2 = _operand(gy, x.shape, x2.dtype, "gy").reshape(x2.shape)
    dx = cupy.empty_like(x2)
    _elementwise("bias_gelu_backward", x2, x2, b, gy2, dx, np.int64(x2.size), np.int32(x2.shape[1]), tanh_form)
    return dx.reshape(x.shape), dx.sum(axis=0).reshape(bias.shape)


# ---- causal attention (flash attention: kernels/flash.py tiles it, attention.cu does a tile's rows) ----

_ATTENTION_BLOCK = 256  # queries and keys per tile: a tile of scores is 256 KB per head in float32


def _attention_tile(name, s, *row_arrays_and_args):
    """Launch a tile kernel of attention.cu on s (heads, rows, keys): one block per row."""
    heads, rows, keys = s.shape
    _at_most(heads * rows, _MAX_GRID_X, "heads x rows of an attention tile")
    kernel = _kernel("attention", name, s.dtype)
    kernel((heads * rows,), (min(_MAX_ROW_THREADS, 32 * -(-keys // 32)),), (s, *row_arrays_and_args))


def _online_softmax_tile(s, scale, i0, j0, m, total, rescale):
    heads, rows, keys = s.shape
    _attention_tile("online_softmax_tile", s, m, total, rescale, np.int32(rows), np.int32(keys), np.int32(i0),
                    np.int32(j0), s.dtype.type(scale))


def _softmax_grad_tile(s, dp, i0, j0, lse, big_d, scale):
    heads, rows, keys = s.shape
    _attention_tile("softmax_grad_tile", s, dp, cupy.ascontiguousarray(lse), cupy.ascontiguousarray(big_d),
                    np.int32(rows), np.int32(keys), np.int32(i0), np.int32(j0), s.dtype.type(scale))


def _heads(x, shape, dtype, what):
    """x (of `shape`) as a contiguous (heads, T, sides) array of `dtype`; (heads, T) for lse."""
    return _operand(x, shape, dtype, what).reshape((-1,) + tuple(shape[-2:]))


def causal_attention(q, k, v, scale):
    """Causal self-attention without the T×T weights (kernels/flash.py): (y, lse)."""
    if q.ndim < 2:
        raise ValueError(f"causal_attention: q must be (..., T, d), got shape {q.shape}")
    dtype = q.dtype
    q3, k3 = _heads(q, q.shape, dtype, "q"), _heads(k, q.shape, dtype, "k")
    v3 = _heads(v, q.shape[:-1] + v.shape[-1:], dtype, "v")
    y, lse = flash.forward(q3, k3, v3, dtype.type(scale), _online_softmax_tile, _ATTENTION_BLOCK)
    return y.reshape(q.shape[:-1] + v.shape[-1:]), lse.reshape(q.shape[:-1])


def causal_attention_backward(q, k, v, y, lse, gy, scale):
    """Gradients of causal_attention (kernels/flash.py): (dq, dk, dv)."""
    dtype, v_shape = q.dtype, q.shape[:-1] + v.shape[-1:]
    q3, k3 = _heads(q, q.shape, dtype, "q"), _heads(k, q.shape, dtype, "k")
    v3, y3, gy3 = (_heads(a, v_shape, dtype, name) for a, name in ((v, "v"), (y, "y"), (gy, "gy")))
    lse2 = _operand(lse, q.shape[:-1], dtype, "lse").reshape(q3.shape[:2])
    dq, dk, dv = flash.backward(q3, k3, v3, y3, lse2, gy3, dtype.type(scale), _softmax_grad_tile, _ATTENTION_BLOCK)
    return dq.reshape(q.shape), dk.reshape(q.shape), dv.reshape(v_shape)


# ---- cross-entropy ----

def _targets(target, shape):
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross-entropy targets must be integers, got {target.dtype}")
    return _operand(target, shape, np.int64, "target").reshape(-1)


def cross_entropy(logits, target, ignore_index):
    """loss_n = logsumexp(z_n) - z_n[t_n] (0 where t_n == ignore_index); returns (loss, lse)."""
    z = _rows(logits)
    t = _targets(target, logits.shape[:-1])
    loss = cupy.empty(z.shape[0], dtype=z.dtype)
    lse = cupy.empty(z.shape[0], dtype=z.dtype)
    _per_row("cross_entropy", "cross_entropy_forward", z, z, t, loss, lse, np.int32(z.shape[1]),
             np.int64(ignore_index))
    return loss.reshape(target.shape), lse.reshape(target.shape)


def cross_entropy_backward(logits, lse, target, gloss, ignore_index):
    """dz_nc = g_n (softmax(z_n)_c - [c == t_n]); 0 in rows where t_n == ignore_index."""
    z = _rows(logits)
    rows_shape = logits.shape[:-1]
    t = _targets(target, rows_shape)
    lse1 = _operand(lse, rows_shape, z.dtype, "lse").reshape(-1)
    g = _operand(cupy.broadcast_to(cupy.asarray(gloss), rows_shape), rows_shape, z.dtype, "gloss").reshape(-1)
    dz = cupy.empty_like(z)
    _per_row("cross_entropy", "cross_entropy_backward", z, z, lse1, t, g, dz, np.int32(z.shape[1]),
             np.int64(ignore_index))
    return dz.reshape(logits.shape)
