"""matmul: a 4x4 register tile, blocks of B packed as rows and kept in cache.

C_ij = sum_k A_ik B_kj, as reference.matmul. (The CPU default takes matmul from NumPy's
BLAS, which is faster: this kernel is here to be read, and lesson 18 rebuilds it.)

The plan, from the inside out:
  tile_4x4        16 entries of C as 16 dot products over k at once: each loaded value
                  serves 4 multiply-adds (lesson 18: arithmetic intensity t/4 for t x t).
  packed_block    a block of columns of B copied as rows (Bᵀ), contiguous along k like the
                  rows of A, each row starting on a cache line.
  _matmul_kernel  the cores share the blocks; each packs one and passes every 4-row strip
                  of A over it while it sits in the core's L2 cache: one parallel region.

Measured at 1024³ float32 on a 2-core Zen 5 (README, Speed): 0.73-0.79x OpenBLAS, from
0.57-0.59x; the gains, in order: the packed rows aligned to cache lines, one parallel region
instead of one per block (and one for the packing), blocks of 128 columns. Tried and dropped
there: 5x5 and 4x6 tiles (25 or 24 accumulators still fit the 32 vector registers; 0-2%
once the packing is counted), blocks of k (each k block costs every tile 16 more
horizontal sums and a read-modify-write of C: -25% at 256), packing A as well (+1% in the
product, spent on the copy), fastmath=True (no change), and an outer-product micro-kernel
(acc[r, :] += a_rk B[k, :]), which LLVM does not keep in registers from Numba code (16
GFLOP/s).
"""
import math

import numba
import numpy as np
from numba import prange

from .machinery import JIT, TwoWays, as_float, cached_njit

_NC = 128  # columns of B per block: 128 rows of Bᵀ (512 KB for K = 1024) stay in the L2 cache while used
           # (measured on a 1 MB L2, 1024³: 128 beats 64 and 96 by 2-3%, 192 loses 10%)
_LINE = 64  # bytes in a cache line (and in one AVX-512 vector)
_NT = 8  # values of k packed at a time (packed_block; transposing a whole 1024² B: 8 beats 16, 32 and 64)


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


@cached_njit(**JIT)
def packed_block(b, j0, cols):
    """Columns j0 .. j0+cols of b (K, N), packed as the rows of a new array bt (cols, K'):
    bt[j, k] = b[k, j0 + j], so that a column of B is contiguous along k like a row of A.

    Each row of bt starts on a cache line: bt begins at an address divisible by _LINE bytes,
    and its rows are padded to K' >= K values, a whole number of lines (the kernel reads the
    first K). Why: with AVX-512 the k loop of tile_4x4 loads 16 float32 at a time, 64 bytes,
    one cache line, and a load that starts mid-line reads two lines. NumPy aligns large
    arrays to 16 bytes only; with both A and Bᵀ misaligned, the 1024³ product ran at 290-330
    GFLOP/s instead of 360-400 (2 cores). The copy goes _NT values of k at a time, so the
    _NT rows of b it reads stay in the L1 cache while it walks the columns.
    """
    k = b.shape[0]
    per_line = _LINE // b.itemsize
    k_padded = (k + per_line - 1) // per_line * per_line
    raw = np.empty(cols * k_padded + per_line, b.dtype)
    start = -(raw.ctypes.data // b.itemsize) % per_line  # values to skip to the next line
    bt = raw[start:start + cols * k_padded].reshape(cols, k_padded)
    for k0 in range(0, k, _NT):
        for j in range(cols):
            for kk in range(k0, min(k0 + _NT, k)):
                bt[j, kk] = b[kk, j0 + j]
    return bt


def block_width(n, batch, cores):
    """Columns of B per block: at most _NC, a multiple of 4, and enough blocks for every core
    to get as many pieces (batch x blocks) as the others, so that none waits at the end
    (N = 1024 on 2 cores: 8 blocks of 128; N = 384: 4 blocks of 96, not 3 of 128)."""
    blocks = max(1, -(-n // _NC))  # ceil(n / _NC)
    while batch * blocks % cores:
        blocks += 1
    return max(4, (-(-n // blocks) + 3) // 4 * 4)


@TwoWays
def _matmul_kernel(a, b, c, width):
    """c[p] = a[p] @ b[p] for every batch p:  C_ij = sum_k A_ik B_kj.

    The columns of B are cut into blocks of `width` (block_width: at most _NC), and the
    cores share out the (batch p, block) pieces, all in one prange. For its piece a core
    packs the block as bt (packed_block: column j of B becomes row j of bt, contiguous along
    k like a row of A), then every 4-row strip of A passes over it: whole 4x4 tiles of C come
    from tile_4x4, the rows and columns left over (M or the block's width not a multiple of
    4) are plain dot products. bt (_NC x K values: 512 KB for K = 1024) is written and then
    read by the same core, and stays in its L2 cache while the strips pass.

    Why one prange, packing included: each prange is a parallel region that wakes the other
    core's thread, which sleeps between regions (OMP_WAIT_POLICY=PASSIVE, backend._load).
    Measured at 1024³ on 2 cores: a region per column block (16 of them) cost 1 ms of 7;
    packing all of Bᵀ in a region of its own before the product, about 0.4 ms (7%) more than
    packing here.
    """
    batch, m, _ = a.shape
    n = b.shape[2]
    m4 = m - m % 4  # the rows covered by whole tiles
    blocks = (n + width - 1) // width
    for s in prange(batch * blocks):
        p, j0 = s // blocks, s % blocks * width
        cols = min(width, n - j0)
        cols4 = cols - cols % 4
        ap, bt, cp = a[p], packed_block(b[p], j0, cols), c[p, :, j0:j0 + cols]
        for i in range(0, m4, 4):
            for j in range(0, cols4, 4):
                tile_4x4(ap, bt, cp, i, j)
        for i in range(m):  # what whole tiles left over
            for j in range(cols4 if i < m4 else 0, cols):
                cp[i, j] = dot(ap[i], bt[j])


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
    # b as it is (packed_block copies it): a transposed view, as in x @ weight.T, stays a view
    b3 = as_float(b, dtype, b_batch + (k, n), contiguous=False).reshape(count, k, n)
    c = np.empty((count, rows, n), dtype)
    _matmul_kernel(a3, b3, c, block_width(n, count, numba.get_num_threads()))
    return c.reshape(batch + (m, n))
