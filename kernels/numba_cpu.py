"""The hot ops as Numba kernels for the CPU: the same functions, signatures and results as
tinylm.kernels.reference (read that first: it is the specification, in plain NumPy).

Each public function is a thin NumPy wrapper: it checks the dtype, lays the inputs out as
C-contiguous arrays of shape (rows, last axis), allocates the outputs and calls an @njit
kernel that fills them. The kernels share the rows among the CPU cores (prange) and keep the
loop along a row simple enough for LLVM to vectorise it: SIMD instructions that work on 8 or
16 floats at once. Three things matter for that, and are handled once, near the top:

* e^x. math.exp is a call into the C library, one element at a time. For float32 the kernels
  use _exp_f32, a range reduction and a polynomial that LLVM turns into SIMD code; float64
  keeps math.exp (float64 is for gradient checks, where the last bits count, not for speed).
  GELU's Φ(x) (math.erf) gets the same treatment: _normal_cdf_f32.
* max. Numba compiles max(a, b) to a compare and a select, which LLVM will not vectorise as a
  reduction; the row maximum uses _max (LLVM's maxnum, promised that no NaN occurs).
* types. Numba types a literal such as 1.0 as float64, and float32 * float64 is float64, so
  a constant that meets float32 data is made with x.dtype.type(...) first.

Fast-math: the kernels let LLVM reorder sums (reassoc: a vectorised sum keeps 8 or 16 partial
sums), fuse multiply-adds (contract), use reciprocals (arcp) and ignore the sign of zero (nsz),
but never assume "no NaN" or "no inf": masked scores are -inf, and a NaN in the input must
reach the output as it does in the reference. Division follows NumPy (error_model="numpy":
x / 0 is inf or nan, as in the reference) rather than Python, whose ZeroDivisionError check
before every division would stop LLVM from vectorising a loop that divides.

Every kernel is compiled once per dtype (float32, float64) on first use and cached on disk
(cache=True), so later runs start in well under a second.
"""
import math
import types as types_module

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

_FAST = {"reassoc", "contract", "arcp", "nsz"}  # fast-math without nnan/ninf (see above)
_JIT = dict(fastmath=_FAST, error_model="numpy", cache=True)  # the options of every kernel


_PARALLEL_MIN = 1 << 16  # elements: below this, waking the second core costs more than it saves


class _TwoWays:
    """A kernel compiled twice: with its prange loops shared among the cores, and as plain
    loops on one core. A call picks by the size of its first array: a small array is done
    before the other core would have woken up (a 64x512 softmax: 6 ms parallel on a busy
    machine, 0.03 ms on one core), a large one is worth sharing."""

    def __init__(self, fn):
        serial = types_module.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                           fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"  # its own file in Numba's cache
        self.parallel, self.serial = njit(parallel=True, **_JIT)(fn), njit(**_JIT)(serial)
        self.__doc__, self.__name__ = fn.__doc__, fn.__name__

    def __call__(self, *args):
        return (self.parallel if args[0].size >= _PARALLEL_MIN else self.serial)(*args)


# ---------------------------------------------------------------------------------------
# Building blocks: 2^n, max and e^x in a form LLVM vectorises
# ---------------------------------------------------------------------------------------

@intrinsic
def _pow2(typingctx, n):
    """2^n for a float32 n holding an integer in [-126, 127], made from bits, not arithmetic.

    A float32 is 1 sign bit, 8 exponent bits e and 23 mantissa bits; with the sign and the
    mantissa 0 it is worth 2^(e - 127). So the 32 bits of 2^n are the integer (n + 127) << 23,
    reinterpreted as a float (C: *(float *)&bits). Written in LLVM IR because Python has no
    such reinterpretation of a scalar.
    """
    if n != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _max(typingctx, a, b):
    """max(a, b) of two floats of one type as LLVM's maxnum, flagged "no NaN" so that a loop
    m = _max(m, x[j]) vectorises. A NaN in x still reaches the softmax output, through x - m."""
    if a != b or not isinstance(a, types.Float):
        return None

    def codegen(context, builder, signature, args):
        t = args[0].type
        maxnum = builder.module.declare_intrinsic("llvm.maxnum", [t], ir.FunctionType(t, [t, t]))
        return builder.call(maxnum, args, fastmath=("nnan", "nsz"))

    return a(a, b), codegen


# float32 constants of _exp_f32. ln 2 is split in two, ln 2 = _LN2_HI + _LN2_LO, with _LN2_HI
# ln 2 rounded to 9 significant bits, so that n * _LN2_HI is exact for every n used.
_LOG2E = np.float32(1 / math.log(2))
_LN2_HI = np.float32(round(math.log(2) * 512) / 512)
_LN2_LO = np.float32(math.log(2) - round(math.log(2) * 512) / 512)
_C2, _C3, _C4, _C5, _C6, _C7 = (np.float32(1 / math.factorial(k)) for k in range(2, 8))
_ZERO, _HALF, _ONE, _INF = np.float32(0), np.float32(0.5), np.float32(1), np.float32(np.inf)
_EXP_MIN, _EXP_MAX = np.float32(-87.3), np.float32(88.3)  # 2^n stays a normal float32 between


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _exp_f32(x):
    """e^x for float32 x in [-87.3, 88.3] with relative error < 2e-7; 0 below, inf above.

    e^x = 2^n e^r,  n = round(x log2(e)),  r = x - n ln 2  in [-ln(2)/2, ln(2)/2]:
      e^r = 1 + r + r²/2! + ... + r^7/7!  (Taylor; the first term left out, r^8/8! < 6e-9,
            is below float32's rounding), evaluated by Horner's rule as 7 multiply-adds;
      2^n by _pow2.
    r is computed in two steps (n _LN2_HI is exact) so it keeps its bits when n is large.
    No call and no branch (the range checks become selects): LLVM vectorises loops over it.
    Its own fast-math is only "contract", so LLVM cannot reorder the two-step reduction.
    """
    n = np.floor(x * _LOG2E + _HALF)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    e_r = _ONE + r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * (_C6 + r * _C7))))))
    y = e_r * _pow2(n)
    y = _ZERO if x < _EXP_MIN else y
    return _INF if x > _EXP_MAX else y


def _exp(x):
    """e^x. Plain Python runs this body; inside @njit code Numba compiles the overload below
    instead: _exp_f32 for float32, math.exp for float64."""
    return math.exp(x)


@overload(_exp)
def _exp_for_type(x):
    """Numba picks the implementation of _exp from the argument's type, when compiling."""
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@njit(**_JIT)
def _row_max(x, scale):
    """m = max_j scale x_j over a 1-D row (-inf when the row is empty)."""
    m = x.dtype.type(-np.inf)
    for j in range(x.shape[0]):
        m = _max(m, scale * x[j])
    return m


@njit(**_JIT)
def _max_and_log_sum(x):
    """(m, l) with m = max_j x_j and l = log sum_j e^(x_j - m): logsumexp(x) = m + l.

    Subtracting m keeps every e^(x_j - m) <= 1 (no overflow) and the largest equal to 1."""
    m = _row_max(x, x.dtype.type(1))
    total = x.dtype.type(0)
    for j in range(x.shape[0]):
        total += _exp(x[j] - m)
    return m, np.log(total)


# ---------------------------------------------------------------------------------------
# matmul: a 4x4 register tile, columns of B packed as rows, blocks of B kept in cache
# ---------------------------------------------------------------------------------------

_NC = 64  # columns of B per block: 64 columns x K floats stay in the L2 cache while used


@njit(**_JIT)
def _dot(a, b):
    """sum_k a_k b_k over two 1-D arrays."""
    total = a.dtype.type(0)
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@njit(**_JIT)
def _tile_4x4(a, bt, c, i, j):
    """C[i:i+4, j:j+4] = A[i:i+4, :] B[:, j:j+4], with B given as bt = Bᵀ: 16 dot products.

    They run together, over k: each step loads 4 values of A and 4 of B and does 16
    multiply-adds, so each loaded value serves 4 times. The 16 accumulators are named
    variables (not an array) so that LLVM keeps them in registers; with reassoc it
    vectorises the loop over k, and each accumulator becomes a SIMD register of 8 or 16
    partial sums, added up once at the end.
    """
    c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = a.dtype.type(0)
    c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = a.dtype.type(0)
    for k in range(a.shape[1]):
        a0, a1, a2, a3 = a[i, k], a[i + 1, k], a[i + 2, k], a[i + 3, k]
        b0, b1, b2, b3 = bt[j, k], bt[j + 1, k], bt[j + 2, k], bt[j + 3, k]
        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3  # noqa: E702
        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3  # noqa: E702
        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3  # noqa: E702
        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3  # noqa: E702
    c[i, j], c[i, j + 1], c[i, j + 2], c[i, j + 3] = c00, c01, c02, c03
    c[i + 1, j], c[i + 1, j + 1], c[i + 1, j + 2], c[i + 1, j + 3] = c10, c11, c12, c13
    c[i + 2, j], c[i + 2, j + 1], c[i + 2, j + 2], c[i + 2, j + 3] = c20, c21, c22, c23
    c[i + 3, j], c[i + 3, j + 1], c[i + 3, j + 2], c[i + 3, j + 3] = c30, c31, c32, c33


@_TwoWays
def _matmul_kernel(a, bt, c):
    """c[p] = a[p] @ bt[p]ᵀ for every batch p:  C_ij = sum_k A_ik B_kj, B packed as bt = Bᵀ.

    With B transposed, row i of A and column j of B are both contiguous along k. Whole 4x4
    tiles of C come from _tile_4x4; the rows and columns left over (M or N not a multiple
    of 4) are plain dot products.
    """
    batch, m, _ = a.shape
    n = bt.shape[1]
    m4, n4 = m - m % 4, n - n % 4  # the part of C covered by whole tiles
    strips = m4 // 4
    for j0 in range(0, n4, _NC):  # one block of _NC columns of B at a time, while...
        for s in prange(batch * strips):  # ...the cores share the 4-row strips of A
            p, i = s // strips, s % strips
            for j in range(j0, min(j0 + _NC, n4), 4):
                _tile_4x4(a[p], bt[p], c[p], 4 * i, j)
    for s in prange(batch * m):
        p, i = s // m, s % m
        for j in range(n4 if i < m4 else 0, n):
            c[p, i, j] = _dot(a[p, i], bt[p, j])


def matmul(a, b):
    """C = A B over the last two axes (leading axes broadcast), like reference.matmul."""
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.result_type(a, b)
    if a.ndim < 2 or b.ndim < 2 or dtype not in (np.float32, np.float64):
        # vectors and other dtypes (integers, float16, complex): NumPy's own matmul
        return np.matmul(a, b)
    (m, k), (k_b, n) = a.shape[-2:], b.shape[-2:]
    if k != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match: "
                         f"the last axis of a ({k}) must equal the second-last of b ({k_b})")
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    if b.ndim == 2:  # (..., M, K) @ (K, N), as in a linear layer: all rows of a times one b
        count, rows, b_batch = 1, math.prod(batch) * m, ()
    else:
        count, rows, b_batch = math.prod(batch), m, batch
    a3 = _as_float(a, dtype, batch + (m, k)).reshape(count, rows, k)
    bt = _as_float(np.swapaxes(b, -1, -2), dtype, b_batch + (n, k)).reshape(count, n, k)  # pack Bᵀ
    c = np.empty((count, rows, n), dtype)
    _matmul_kernel(a3, bt, c)
    return c.reshape(batch + (m, n))


# ---------------------------------------------------------------------------------------
# softmax family, along rows
# ---------------------------------------------------------------------------------------

@njit(**_JIT)
def _softmax_row(x, scale, y):
    """y_j = e^(s x_j - m) / sum_k e^(s x_k - m), m = max_k s x_k, for one row x and scale s."""
    m = _row_max(x, scale)
    total = x.dtype.type(0)
    for j in range(x.shape[0]):
        e = _exp(scale * x[j] - m)
        y[j] = e
        total += e
    for j in range(x.shape[0]):
        y[j] = y[j] / total  # arcp: LLVM multiplies by 1/total instead


@_TwoWays
def _softmax_kernel(x, y):
    """y_ij = e^(x_ij - m_i) / sum_k e^(x_ik - m_i), m_i = max_k x_ik, for every row i."""
    for i in prange(x.shape[0]):
        _softmax_row(x[i], x.dtype.type(1), y[i])


@_TwoWays
def _softmax_backward_kernel(y, gy, dx):
    """dx_ij = y_ij (g_ij - sum_k g_ik y_ik) for every row i."""
    for i in prange(y.shape[0]):
        total = _dot(gy[i], y[i])
        for j in range(y.shape[1]):
            dx[i, j] = y[i, j] * (gy[i, j] - total)


@_TwoWays
def _log_softmax_kernel(x, y):
    """y_ij = (x_ij - m_i) - log sum_k e^(x_ik - m_i), m_i = max_k x_ik, for every row i."""
    for i in prange(x.shape[0]):
        m, log_sum = _max_and_log_sum(x[i])
        for j in range(x.shape[1]):
            y[i, j] = (x[i, j] - m) - log_sum


@_TwoWays
def _log_softmax_backward_kernel(y, gy, dx):
    """dx_ij = g_ij - e^(y_ij) sum_k g_ik for every row i (e^y is the softmax)."""
    for i in prange(y.shape[0]):
        total = gy.dtype.type(0)
        for j in range(y.shape[1]):
            total += gy[i, j]
        for j in range(y.shape[1]):
            dx[i, j] = gy[i, j] - _exp(y[i, j]) * total


@_TwoWays
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
        _softmax_row(x[b, i, :v], scale, y[b, i, :v])
        y[b, i, v:] = 0


def _as_float(x, dtype=None, shape=None):
    """x as a C-contiguous array of float32 or float64 (dtype, or x's own), broadcast to
    `shape` when given: the layout the kernels take."""
    x = np.asarray(x)
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"the numba kernels take float32 or float64 arrays, got {dtype}")
    if shape is not None and x.shape != tuple(shape):
        out = np.empty(shape, dtype)
        out[...] = x  # a broadcasting copy
        return out
    return np.ascontiguousarray(x, dtype)


def _rows(x, dtype=None, shape=None):
    """_as_float(x, dtype, shape) seen as a 2-D array (rows, last axis)."""
    shape = np.shape(x) if shape is None else shape
    return _as_float(x, dtype, shape).reshape(math.prod(shape[:-1]), shape[-1])


def _row_op(kernel, x, other=None):
    """Run a row kernel kernel(x, [other,] out) on x's rows; `other` is broadcast to x's shape
    and cast to x's dtype. Returns out in x's shape."""
    x2 = _rows(x)
    out = np.empty_like(x2)
    if other is None:
        kernel(x2, out)
    else:
        kernel(x2, _rows(other, x2.dtype, np.shape(x)), out)
    return out.reshape(np.shape(x))


def softmax(x):
    """Softmax over the last axis, like reference.softmax."""
    return _row_op(_softmax_kernel, x)


def softmax_backward(y, gy):
    """Gradient of softmax from its output y and the incoming gradient gy, like the reference."""
    return _row_op(_softmax_backward_kernel, y, gy)


def log_softmax(x):
    """Log-softmax over the last axis, like reference.log_softmax."""
    return _row_op(_log_softmax_kernel, x)


def log_softmax_backward(y, gy):
    """Gradient of log_softmax from its output y and the incoming gradient gy, like the reference."""
    return _row_op(_log_softmax_backward_kernel, y, gy)


def causal_softmax(scores, scale):
    """Softmax of scale*scores (..., T, S) with future keys masked, like reference.causal_softmax."""
    shape = np.shape(scores)
    x = _as_float(scores).reshape((math.prod(shape[:-2]),) + shape[-2:])
    y = np.empty_like(x)
    _causal_softmax_kernel(x, x.dtype.type(scale), y)
    return y.reshape(shape)


# ---------------------------------------------------------------------------------------
# layer norm
# ---------------------------------------------------------------------------------------

@_TwoWays
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


@_TwoWays
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
    return np.full(n, fill, dtype) if value is None else _as_float(value, dtype).reshape(n)


def layer_norm(x, weight, bias, eps):
    """Layer norm over the last axis, like reference.layer_norm: returns (y, mean, rstd)."""
    x2 = _rows(x)
    rows, n = x2.shape
    y, mean, rstd = np.empty_like(x2), np.empty(rows, x2.dtype), np.empty(rows, x2.dtype)
    _layer_norm_kernel(x2, _weight_or(weight, n, x2.dtype, 1), _weight_or(bias, n, x2.dtype, 0),
                       x2.dtype.type(eps), y, mean, rstd)
    stats_shape = np.shape(x)[:-1] + (1,)
    return y.reshape(np.shape(x)), mean.reshape(stats_shape), rstd.reshape(stats_shape)


def layer_norm_backward(gy, x, mean, rstd, weight):
    """Gradients of layer_norm, like the reference: (dx, dweight, dbias), None, None without weight."""
    x2 = _rows(x)
    rows, n = x2.shape
    gy2 = _rows(gy, x2.dtype, np.shape(x))
    dx = np.empty_like(x2)
    parts = np.zeros((2, numba.get_num_threads(), n), x2.dtype)  # dweight and dbias, per thread
    _layer_norm_backward_kernel(gy2, x2, _as_float(mean, x2.dtype).reshape(rows),
                                _as_float(rstd, x2.dtype).reshape(rows),
                                _weight_or(weight, n, x2.dtype, 1), dx, parts[0], parts[1])
    dx = dx.reshape(np.shape(x))
    if weight is None:
        return dx, None, None
    dweight, dbias = parts.sum(axis=1)
    return dx, dweight.reshape(np.shape(weight)), dbias.reshape(np.shape(weight))


# ---------------------------------------------------------------------------------------
# GELU, element-wise
# ---------------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2 = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_GELU_C = 0.044715


def _fit_erfcx(degree=9, z_max=9.5):
    """Coefficients c_degree..c_0 (highest power first), as float32, of
    erfc(z) e^(z²) ≈ sum_k c_k t^k,  t = 1 / (1 + z/2),  for 0 <= z <= z_max: a least-squares
    fit of the relative error at 2001 points, computed here, at import, from math.erfc in
    float64. (Past z = 9.4, e^(-z²) is 0 in float32.)

    erfc(z) e^(z²) falls smoothly from 1 to about 1/(z √π); in t, which maps [0, ∞) to (0, 1],
    a polynomial of degree 9 follows it to 3e-7 (float32 rounding included).
    """
    z = np.linspace(0.0, z_max, 2001)
    erfcx = np.array([math.erfc(v) * math.exp(v * v) for v in z])
    powers = np.vander(1 / (1 + z / 2), degree + 1)  # t^degree, ..., t, 1
    coeffs = np.linalg.lstsq(powers / erfcx[:, None], np.ones_like(z), rcond=None)[0]
    return tuple(np.float32(c) for c in coeffs)


_ERFCX = _fit_erfcx()
_INV_SQRT_2_F32 = np.float32(_INV_SQRT_2)


@njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _normal_cdf_f32(x, e):
    """Φ(x) = P(N(0, 1) <= x) for float32 x, given e = e^(-x²/2); absolute error < 4e-7.

    Φ(x) = erfc(-x/√2) / 2, and with z = |x|/√2, erfc(z) = e^(-z²) Q(z) = e Q(z), where
    Q(z) = erfc(z) e^(z²) is the smooth polynomial in t = 1/(1 + z/2) of _fit_erfcx. So
      Φ(-|x|) = e Q(z) / 2   (no cancellation: accurate far into the left tail),
      Φ(|x|)  = 1 - e Q(z) / 2.
    Only multiply-adds, one division and a select: LLVM vectorises loops over it (math.erf is
    a call into the C library, one element at a time).
    """
    t = _ONE / (_ONE + _HALF * abs(x) * _INV_SQRT_2_F32)
    q = _ZERO
    for c in _ERFCX:  # Horner's rule: q = (...(c_9 t + c_8) t + ...) t + c_0
        q = q * t + c
    tail = _HALF * e * q
    return tail if x < _ZERO else _ONE - tail


def _normal_cdf(x, e):
    """Φ(x), given e = e^(-x²/2). Plain Python runs this body, (1 + erf(x/√2)) / 2; inside
    @njit code Numba compiles the overload below: _normal_cdf_f32 for float32, this for float64."""
    return 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


@overload(_normal_cdf)
def _normal_cdf_for_type(x, e):
    """Numba picks the implementation of _normal_cdf from the argument's type, when compiling."""
    if x == types.float32:
        return lambda x, e: _normal_cdf_f32(x, e)
    return lambda x, e: 0.5 * (1.0 + math.erf(x * _INV_SQRT_2))


@_TwoWays
def _gelu_kernel(x, tanh, y):
    """Exact:  y = x Φ(x) = x (1 + erf(x / √2)) / 2.
    tanh:   y = x (1 + tanh u) / 2 = x σ(2u) = x / (1 + e^(-2u)),  u = √(2/π)(x + 0.044715 x³),
    since (1 + tanh u) / 2 = σ(2u) exactly: one e^x, which vectorises, instead of tanh."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            u = f(_SQRT_2_OVER_PI) * (x[i] + f(_GELU_C) * x[i] * x[i] * x[i])
            y[i] = x[i] / (f(1) + _exp(f(-2) * u))
    else:
        for i in prange(x.shape[0]):
            y[i] = x[i] * _normal_cdf(x[i], _exp(f(-0.5) * x[i] * x[i]))


@_TwoWays
def _gelu_backward_kernel(x, gy, tanh, dx):
    """dx = gy dGELU/dx with
    exact:  dGELU/dx = Φ(x) + x φ(x),  φ(x) = e^(-x²/2) / √(2π);
    tanh:   with s = σ(2u) = (1 + tanh u) / 2, so that 1 - tanh² u = 4 s (1 - s):
            dGELU/dx = s + 2 x s (1 - s) √(2/π) (1 + 3 · 0.044715 x²)."""
    f = x.dtype.type
    if tanh:
        for i in prange(x.shape[0]):
            u = f(_SQRT_2_OVER_PI) * (x[i] + f(_GELU_C) * x[i] * x[i] * x[i])
            s = f(1) / (f(1) + _exp(f(-2) * u))
            du = f(_SQRT_2_OVER_PI) * (f(1) + f(3 * _GELU_C) * x[i] * x[i])
            dx[i] = gy[i] * (s + f(2) * x[i] * s * (f(1) - s) * du)
    else:
        for i in prange(x.shape[0]):
            e = _exp(f(-0.5) * x[i] * x[i])  # e^(-x²/2): serves Φ (float32) and φ
            dx[i] = gy[i] * (_normal_cdf(x[i], e) + x[i] * f(_INV_SQRT_2PI) * e)


def _is_tanh(approximate):
    """True for approximate="tanh", False for "none"; anything else is an error."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return approximate == "tanh"


def gelu(x, approximate="none"):
    """GELU, element-wise, like reference.gelu (approximate: "none" or "tanh")."""
    x1 = _as_float(x).reshape(-1)
    y = np.empty_like(x1)
    _gelu_kernel(x1, _is_tanh(approximate), y)
    return y.reshape(np.shape(x))


def gelu_backward(x, gy, approximate="none"):
    """Gradient of gelu at x times the incoming gradient gy, like reference.gelu_backward."""
    x1 = _as_float(x).reshape(-1)
    gy1 = _as_float(gy, x1.dtype, np.shape(x)).reshape(-1)
    dx = np.empty_like(x1)
    _gelu_backward_kernel(x1, gy1, _is_tanh(approximate), dx)
    return dx.reshape(np.shape(x))


# ---------------------------------------------------------------------------------------
# cross-entropy, along rows of logits
# ---------------------------------------------------------------------------------------

@_TwoWays
def _cross_entropy_kernel(z, target, ignore_index, loss, lse):
    """lse_n = logsumexp(z_n) = m_n + log sum_c e^(z_nc - m_n),  loss_n = lse_n - z_n[t_n]
    (0 where t_n == ignore_index)."""
    for n in prange(z.shape[0]):
        m, log_sum = _max_and_log_sum(z[n])
        lse[n] = m + log_sum
        if target[n] == ignore_index:
            loss[n] = 0
        else:
            loss[n] = lse[n] - z[n, target[n]]


@_TwoWays
def _cross_entropy_backward_kernel(z, lse, target, gloss, ignore_index, dz):
    """dz_nc = g_n (e^(z_nc - lse_n) - [c == t_n]): softmax minus one-hot, times the loss's
    gradient; rows with t_n == ignore_index get 0."""
    for n in prange(z.shape[0]):
        if target[n] == ignore_index:
            dz[n, :] = 0
            continue
        g, shift = gloss[n], lse[n]
        for c in range(z.shape[1]):
            dz[n, c] = _exp(z[n, c] - shift) * g
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
    z = _rows(logits)
    t = _targets(target, z, ignore_index)
    loss, lse = np.empty(z.shape[0], z.dtype), np.empty(z.shape[0], z.dtype)
    _cross_entropy_kernel(z, t, ignore_index, loss, lse)
    return loss.reshape(np.shape(target)), lse.reshape(np.shape(target))


def cross_entropy_backward(logits, lse, target, gloss, ignore_index):
    """Gradient of cross_entropy with respect to the logits, like the reference."""
    z = _rows(logits)
    t = _targets(target, z, ignore_index)
    per_row = np.shape(target)
    dz = np.empty_like(z)
    _cross_entropy_backward_kernel(z, _as_float(lse, z.dtype, per_row).reshape(-1), t,
                                   _as_float(gloss, z.dtype, per_row).reshape(-1),
                                   ignore_index, dz)
    return dz.reshape(np.shape(logits))


# ---------------------------------------------------------------------------------------
# Adam / AdamW: the whole update in one pass over the weights
# ---------------------------------------------------------------------------------------

@njit(error_model="numpy", cache=True)
def _adam_kernel(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """For each weight, as reference.adam_step (no fast-math: the same rounding as the
    reference's sequence of array operations, step by step):
        w ← w (1 - lr λ) (AdamW) or g ← g + λ w (Adam);  m ← β1 m + (1-β1) g;
        v ← β2 v + (1-β2) g²;  w ← w - lr/(1-β1^t) · m / (√(v/(1-β2^t)) + ε)."""
    bias1, bias2 = 1 - beta1 ** step, 1 - beta2 ** step
    for i in range(w.shape[0]):
        gi = g[i]
        if weight_decay != 0 and decoupled:
            w[i] = w[i] * (1 - lr * weight_decay)
        elif weight_decay != 0:
            gi = gi + weight_decay * w[i]
        m[i] = m[i] * beta1 + (1 - beta1) * gi
        v[i] = v[i] * beta2 + (1 - beta2) * gi * gi
        w[i] = w[i] - (lr / bias1) * (m[i] / (math.sqrt(v[i] / bias2) + eps))


def adam_step(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """One Adam/AdamW update in place, like reference.adam_step, in a single pass. Arrays
    that are not contiguous float32/float64 of one dtype go to the reference."""
    arrays = (w, g, m, v)
    if len({a.dtype for a in arrays}) > 1 or w.dtype not in (np.float32, np.float64) or \
            not all(a.flags.c_contiguous for a in arrays):
        from tinylm.kernels import reference

        return reference.adam_step(w, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step)
    t = w.dtype.type
    _adam_kernel(w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), t(lr), t(beta1), t(beta2), t(eps),
                 t(weight_decay), bool(decoupled), int(step))
