"""matmul: a 4x4 register tile, columns of B packed as rows, blocks of B kept in cache.

C_ij = sum_k A_ik B_kj, as reference.matmul. (The CPU default takes matmul from NumPy's
BLAS, which is faster: this kernel is here to be read, and lesson 18 rebuilds it.)

The plan, from the inside out:
  tile_4x4        16 entries of C as 16 dot products over k at once: each loaded value
                  serves 4 multiply-adds (lesson 18: arithmetic intensity t/4 for t x t).
  packed Bᵀ       columns of B become rows, contiguous along k like the rows of A, each row
                  starting on a cache line (_packed_transpose).
  column blocks   _NC columns of Bᵀ stay in the L2 cache while every 4-row strip of A passes.
  one prange      over all (block, strip) pieces: the cores share them in one parallel region.

Measured at 1024³ float32 on a 2-core Zen 5 (README, Speed): 0.71-0.74x OpenBLAS. Tried and
dropped there: 5x5 and 4x6 tiles (25 or 24 accumulators still fit the 32 vector registers;
no gain once the packing is counted), blocks of k (each k block costs every tile 16 more
horizontal sums and a read-modify-write of C: -25% at 256), packing A as well (+1% in the
kernel, spent on the copy), and an outer-product micro-kernel (acc[r, :] += a_rk B[k, :]),
which LLVM does not keep in registers from Numba code (16 GFLOP/s).
"""
import math

import numpy as np
from numba import prange

from .machinery import JIT, TwoWays, as_float, cached_njit

_NC = 128  # columns of B per block: 128 rows of Bᵀ (512 KB for K = 1024) stay in the L2 cache while used
           # (measured on a 1 MB L2, 1024³: 128 beats 64 and 96 by 2-3%, 192 loses 10%)
_LINE = 64  # bytes in a cache line, and in one 512-bit vector
_NT = 8  # rows and columns of a block of the transpose (measured: 8 beats 16, 32 and 64)


@cached_njit(**JIT)
def dot(a, b):
    """sum_k a_k b_k over two 1-D arrays."""
    total = a.dtype.type(0)
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@cached_njit(**JIT)
def tile_4x4(a, bt, c, i, j):
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


@TwoWays
def _matmul_kernel(a, bt, c):
    """c[p] = a[p] @ bt[p]ᵀ for every batch p:  C_ij = sum_k A_ik B_kj, B packed as bt = Bᵀ.

    With B transposed, row i of A and column j of B are both contiguous along k. Whole 4x4
    tiles of C come from tile_4x4; the rows and columns left over (M or N not a multiple
    of 4) are plain dot products.

    The work is cut into (batch p, block of _NC columns, strip of 4 rows) pieces, all in one
    prange: the cores share out the pieces in order, so each core takes whole column blocks
    and keeps its block of Bᵀ in its own L2 cache while the strips of A pass over it. One
    prange is one parallel region: each region wakes the other core's thread, which sleeps
    between regions (OMP_WAIT_POLICY=PASSIVE, backend._load), and with a region per column
    block (16 for N = 1024) the wake-ups cost 1 ms of a 7 ms 1024³ product.
    """
    batch, m, _ = a.shape
    n = bt.shape[1]
    m4, n4 = m - m % 4, n - n % 4  # the part of C covered by whole tiles
    strips, blocks = m4 // 4, (n4 + _NC - 1) // _NC
    for s in prange(batch * blocks * strips):
        p, j0, i = s // (blocks * strips), (s // strips) % blocks * _NC, s % strips
        ap, btp, cp = a[p], bt[p], c[p]  # once per piece: a view made for each tile costs a tenth
        for j in range(j0, min(j0 + _NC, n4), 4):
            tile_4x4(ap, btp, cp, 4 * i, j)
    if m4 < m or n4 < n:
        for s in prange(batch * m):
            p, i = s // m, s % m
            for j in range(n4 if i < m4 else 0, n):
                c[p, i, j] = dot(a[p, i], bt[p, j])


@TwoWays
def _transpose_kernel(b, bt):
    """bt[p] = b[p]ᵀ for every batch p, in blocks of _NT x _NT, each written row by row (a
    contiguous run of bt) from a column of b: the _NT rows of b a block reads stay in the L1
    cache. A NumPy copy of the transposed view walks one array with a stride of a whole row,
    which for a power of two (4 KB) also lands every access in the same few cache sets: a
    1024² float32 matrix took 3.7-4.8 ms there, a third of the product's time; 0.7 ms here
    (blocks of 32 and the other loop order: 2-6 ms)."""
    batch, k, n = b.shape
    row_blocks = (k + _NT - 1) // _NT
    for s in prange(batch * row_blocks):
        p, i0 = s // row_blocks, (s % row_blocks) * _NT
        for j0 in range(0, n, _NT):
            for j in range(j0, min(j0 + _NT, n)):
                for i in range(i0, min(i0 + _NT, k)):
                    bt[p, j, i] = b[p, i, j]


def _line_aligned_empty(count, n, k, dtype):
    """An uninitialised (count, n, K') array, K' = k rounded up to whole cache lines, whose
    data begin at an address divisible by _LINE: every row starts on a cache line."""
    itemsize = np.dtype(dtype).itemsize
    k_padded = -(-k * itemsize // _LINE) * _LINE // itemsize
    nbytes = count * n * k_padded * itemsize
    raw = np.empty(nbytes + _LINE, np.uint8)
    start = -raw.ctypes.data % _LINE  # bytes to skip to the next line
    return raw[start:start + nbytes].view(dtype).reshape(count, n, k_padded)


def _packed_transpose(b, dtype, b_batch, k, n):
    """Bᵀ of b (..., K, N) as a (count, N, K') array, K' >= K, each row of Bᵀ starting on a
    cache line (rows padded to K' values; the kernel reads the first K). b itself when b is
    already laid out so (x @ weight.T with an aligned weight), else made by _transpose_kernel.

    Why aligned: a 512-bit vector is 64 bytes, a cache line too. A vector load that starts
    mid-line reads two lines. tile_4x4 loads rows of A and of Bᵀ 16 floats at a time; with
    both misaligned (NumPy aligns large arrays to 16 bytes only), every load straddles two
    lines, and the 1024³ product measured 290-330 GFLOP/s instead of 360-400 (2 cores)."""
    count = math.prod(b_batch)
    bt = np.swapaxes(b, -1, -2)
    if (bt.flags.c_contiguous and bt.dtype == dtype and b.shape[:-2] == b_batch
            and bt.ctypes.data % _LINE == 0 and (k * bt.itemsize) % _LINE == 0):
        return bt.reshape(count, n, k)
    out = _line_aligned_empty(count, n, k, dtype)
    _transpose_kernel(as_float(b, dtype, b_batch + (k, n)).reshape(count, k, n), out)  # fills [..., :k]
    return out


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
    a3 = as_float(a, dtype, batch + (m, k)).reshape(count, rows, k)
    bt = _packed_transpose(b, dtype, b_batch, k, n)  # pack Bᵀ
    c = np.empty((count, rows, n), dtype)
    _matmul_kernel(a3, bt, c)
    return c.reshape(batch + (m, n))
