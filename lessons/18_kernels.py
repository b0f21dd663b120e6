# %% [markdown]
# # 计算内核 Kernels: how matmul and softmax run fast (000.attn, 001.softmax, 004.speed)
#
# **术语 Glossary** (中文 — English — what it is)
#
# * 计算内核 — kernel — the loop that actually computes one op.
# * 矩阵乘法 — matrix multiplication — C_ij = Σ_k A_ik B_kj.
# * 内存布局 — memory layout — the order in which an array's numbers lie in memory.
# * 分块 — tiling (blocking) — computing a matrix product block by block so the blocks stay in the
#   cache.
# * 缓存 — cache — the small fast memory next to the CPU's cores.
# * 软最大函数 — softmax function — e^{z_i}/Σ_j e^{z_j} (article 000 writes 软件函数, "software
#   function").
# * 指数函数 — exponential function — e^x, the costly part of the softmax.
# * 线程束归约 — warp reduction — 32 GPU threads combining their values in five exchange steps.
# * 训练速度 — training speed — what faster hardware and better algorithms buy (004.speed).
#
# Article 004 (§8.2) lists ways to raise 训练速度 (training speed): 更强大的硬件 (stronger
# hardware, GPUs and TPUs) and 更高效的训练算法 (more efficient training algorithms)
# (**004.speed**). Beneath both sits a layer the articles never open: the *kernels*, the
# loops that actually compute each op. A Transformer step spends most of its time in two of
# them. One is the matrix product: every linear layer, and the `QKᵀ` and `·V` of attention
# (**000.attn**). The other is the softmax (**001.softmax**) over the attention scores and
# the vocabulary.
#
# tinylm keeps three *kernel sets* (tinylm/backend.py):
#
# * **"numpy"**: kernels/reference.py, plain NumPy. This is the *specification*: every
#   other kernel must give the same numbers. Its `CONTRACT` lists the kernels every set
#   provides, with their arguments, dtypes and the memory layouts they accept.
# * **"numba"**: kernels/numba_cpu/, loops compiled for the CPU by Numba, one file per family
#   (matrix_product.py, softmax_family.py, …); machinery.py holds how they are compiled.
# * **"cupy"**: kernels/cupy_gpu.py plus the CUDA C sources in kernels/cuda/, for NVIDIA GPUs.
#
# This lesson rebuilds the ideas inside those kernels in small NumPy steps: loop order,
# tiles, the stable and the one-pass softmax, a fast `e^x`, and a GPU warp's reduction. Each
# part ends by checking tinylm's real kernels against the reference. You write two pieces:
# a 2×2 tile of a matmul and the online softmax update.

# %%
import contextlib
import math
import time
from importlib import resources

import numpy as np

import tinylm
import tinylm.nn.functional as F
from tinylm.backend import kernels_for
from tinylm.check import compare
from tinylm.kernels import numba_cpu
from tinylm.kernels.numba_cpu import machinery, matrix_product
from tinylm.lesson import check, fast, graded, picture, pyplot
from tinylm.kernels import reference

rng = np.random.default_rng(0)
tinylm.manual_seed(0)


@contextlib.contextmanager
def kernel_set(name):
    """Run a block with the kernel set `name`, then go back to the default (or TINYLM_KERNELS)."""
    tinylm.set_kernels(name)
    try:
        yield
    finally:
        tinylm.set_kernels(None)


# %% [markdown]
# ## 矩阵乘法 The matrix product as three loops
#
# `C_ij = Σ_k A_ik B_kj`: entry (i, j) of C is row i of A dotted with column j of B. Written
# as loops, that is an i loop, a j loop and a k loop, with `M·N·K` multiply-adds in all. Here
# it is on a 4×4 example. The loop also counts its *loads*: every multiply-add reads one
# value of A and one of B.

# %%
A4 = np.array([[1.0, 2, 0, 1], [0, 1, 3, 0], [2, 0, 1, 1], [1, 1, 0, 2]])
B4 = np.array([[1.0, 0, 2, 0], [0, 1, 0, 1], [1, 1, 0, 0], [0, 2, 1, 1]])


def matmul_ijk(A, B):
    """C = A B by three loops in the order i, j, k; returns (C, number of values loaded)."""
    M, K = A.shape
    N = B.shape[1]
    C, loads = np.zeros((M, N)), 0
    for i in range(M):
        for j in range(N):
            for k in range(K):          # the innermost loop walks down column j of B
                C[i, j] += A[i, k] * B[k, j]
                loads += 2
    return C, loads


C4, loads_4 = matmul_ijk(A4, B4)
print("C = A B =\n", C4)
print(f"{loads_4} values loaded for 4·4·4 = 64 multiply-adds")
# C[0, 1] = 1·0 + 2·1 + 0·1 + 1·2 = 4
check("C[0, 1] by hand is 4", C4[0, 1] == 4)
check("the three loops equal A @ B", np.array_equal(C4, A4 @ B4))


# %% [markdown]
# ### 内存布局 Memory layout and loop order
#
# NumPy stores a matrix *row-major* (C order): entry (r, c) of an N-column float matrix lies
# `(r·N + c)·itemsize` bytes from the start, so a row is contiguous and a column is not.
# Memory reaches the CPU in *cache lines* of 64 bytes (16 float32 values). When a loop reads
# neighbouring addresses, one line serves 16 reads. When it jumps by a whole row each time,
# every read pulls in a new line and uses 4 of its 64 bytes.
#
# In the i-j-k order the inner loop walks k, down a *column* of B. Swap the two inner loops
# into i-k-j and the inner loop walks j, along a *row* of B, updating a row of C:
# `C[i, :] += A[i, k] · B[k, :]`. The sum and the result stay the same; only the order of
# the additions changes. (numba_cpu.matmul takes a third route: it copies B transposed, a
# block of columns at a time, `bt` = rows of Bᵀ, so row i of A and column j of B are *both*
# contiguous along k.)

# %%
def matmul_ikj(A, B):
    """C = A B in the loop order i, k, j: the inner loop runs along row k of B and row i of C."""
    M, K = A.shape
    C = np.zeros((M, B.shape[1]))
    for i in range(M):
        for k in range(K):
            a = A[i, k]                 # loaded once, used for a whole row of B
            for j in range(B.shape[1]):
                C[i, j] += a * B[k, j]
    return C


check("the i-k-j order gives the same C", np.array_equal(matmul_ikj(A4, B4), C4))

N_big = 512
B_big = np.zeros((N_big, N_big), np.float32)
print("a 512×512 float32 B: strides", B_big.strides, "bytes (next row, next column)")


def cache_lines(byte_offsets):
    """How many different 64-byte cache lines the addresses fall into."""
    return len(set(np.asarray(byte_offsets) // 64))


col_walk = [(k * N_big + 0) * 4 for k in range(N_big)]    # i-j-k: B[k, j] for k = 0..511, j = 0
row_walk = [(0 * N_big + j) * 4 for j in range(N_big)]    # i-k-j: B[k, j] for j = 0..511, k = 0
print(f"one inner loop over 512 values of B: i-j-k touches {cache_lines(col_walk)} cache lines, "
      f"i-k-j touches {cache_lines(row_walk)}")
check("down a column, every value costs a whole cache line", cache_lines(col_walk) == 512)
check("along a row, one cache line serves 16 float32 values", cache_lines(row_walk) == 512 // 16)


# %% [markdown]
# ### 分块 Tiling: the register tile and cache blocks
#
# Even in the good order, each multiply-add loads two values. A core can start two SIMD
# multiply-adds per cycle but only two SIMD loads, so a loop needing two loads per
# multiply-add runs at half speed at best, and far slower when the values come from main
# memory rather than cache: the loads set the speed. The cure is *reuse*.
# tile_4x4 in kernels/numba_cpu/matrix_product.py computes a 4×4 tile of C at once, with 16
# accumulators held in registers (c00 … c33). For each k it loads 4 values of A (column k of
# rows i..i+3) and 4 of Bᵀ (rows j..j+3), and does all 4 × 4 = 16 multiply-adds: *each
# loaded value is used 4 times*. On top of that, _matmul_kernel packs B in blocks of (at
# most) _NC = 128 columns, so a block stays in cache while every strip of A passes over it.
#
# A measure of this is the *arithmetic intensity*: flops (a multiply-add is 2) per byte
# loaded. With t×t tiles, each k loads 2t values and does t² multiply-adds:
#
#     naive:  2 flops / (2 loads × 4 bytes)     = 0.25 flop/byte   (float32)
#     t × t:  2t² flops / (2t loads × 4 bytes)  = t/4  flop/byte   → 1.0 for t = 4
#
# Here is the same structure in NumPy, with the tiles written out and the loads counted. The
# t×t block of multiply-adds is one outer product, `acc += outer(a, b)`.

# %%
def tiled_matmul(A, B, tile=4, block=8):
    """C = A B from tile×tile register tiles, with B packed as Bᵀ in blocks of `block` columns.

    M and N must be multiples of `tile` (numba_cpu handles leftover rows and columns with
    plain dot products). Returns (C, number of values loaded).
    """
    M, K = A.shape
    N = B.shape[1]
    assert M % tile == 0 and N % tile == 0, "this teaching version takes whole tiles only"
    C, loads = np.zeros((M, N), np.result_type(A, B)), 0
    for j0 in range(0, N, block):                   # one cache block of B at a time ...
        Bt = np.ascontiguousarray(B[:, j0:j0 + block].T)   # ... packed: row j of Bt is column j0 + j of B
        for i in range(0, M, tile):                 # ... while every strip of A passes over it
            for j in range(j0, min(j0 + block, N), tile):
                acc = np.zeros((tile, tile), C.dtype)   # the tile² accumulators ("registers")
                for k in range(K):
                    a = A[i:i + tile, k]                # tile loads
                    b = Bt[j - j0:j - j0 + tile, k]     # tile loads
                    acc += np.outer(a, b)               # tile² multiply-adds
                    loads += 2 * tile
                C[i:i + tile, j:j + tile] = acc
    return C, loads


A_r = rng.standard_normal((12, 9))
B_r = rng.standard_normal((9, 16))
C_tiled, loads_tiled = tiled_matmul(A_r, B_r)
check("the 4×4-tiled product of a 12×9 and a 9×16 equals A @ B", np.allclose(C_tiled, A_r @ B_r))
check("2×2 tiles on the 4×4 example give C too", np.allclose(tiled_matmul(A4, B4, tile=2)[0], C4))

_, loads_naive = matmul_ijk(A_r, B_r)
flops = 2 * 12 * 9 * 16
intensity = {}
for name, loads in [("naive i-j-k", loads_naive), ("2×2 tiles", tiled_matmul(A_r, B_r, tile=2)[1]),
                    ("4×4 tiles", loads_tiled)]:
    intensity[name] = flops / (4 * loads)                  # flops per byte, 4 bytes per float32
    print(f"{name:12s} {loads:5d} loads  {intensity[name]:.2f} flop/byte (float32)")
check("naive: 0.25 flop/byte", intensity["naive i-j-k"] == 0.25)
check("4×4 tiles: 1 flop/byte, four times the naive", intensity["4×4 tiles"] == 1.0)

# %% [markdown]
# The GPU teaching kernel kernels/cuda/matmul.cu does the same one level up. A block of 256
# threads copies a 128×8 slice of A and an 8×128 slice of B into fast shared memory. Then
# each thread keeps an **8×8** tile of C in registers: 16 loads feed 64 multiply-adds, so
# t/4 = 2 flop/byte.
#
# Now you: one 2×2 tile, as tile_4x4 does it but smaller. Four named accumulators;
# for each k, load two values of A and two of Bᵀ, then do the four multiply-adds.

# %%
def tile_2x2(A, Bt, i, j):
    """C[i:i+2, j:j+2] of C = A B, given Bt = Bᵀ, with four scalar accumulators."""
    c00 = c01 = c10 = c11 = 0.0
    for k in range(A.shape[1]):
        # BEGIN SOLUTION hint: a0, a1 = A[i, k], A[i+1, k]; b0, b1 = Bt[j, k], Bt[j+1, k]; then c_rs += a_r * b_s for r, s in {0, 1}
        a0, a1 = A[i, k], A[i + 1, k]
        b0, b1 = Bt[j, k], Bt[j + 1, k]
        c00 += a0 * b0
        c01 += a0 * b1
        c10 += a1 * b0
        c11 += a1 * b1
        # END SOLUTION
    return np.array([[c00, c01], [c10, c11]])


def matmul_from_tiles(A, B):
    """C = A B assembled from your 2×2 tiles (M and N even)."""
    Bt = np.ascontiguousarray(B.T)
    C = np.zeros((A.shape[0], B.shape[1]))
    for i in range(0, A.shape[0], 2):
        for j in range(0, B.shape[1], 2):
            C[i:i + 2, j:j + 2] = tile_2x2(A, Bt, i, j)
    return C


# %%
A_t, B_t = rng.standard_normal((6, 7)), rng.standard_normal((7, 8))
graded("your 2×2 tile at (0, 2) of the 4×4 example is [[3, 3], [0, 1]]",
       lambda: np.array_equal(tile_2x2(A4, np.ascontiguousarray(B4.T), 0, 2), C4[0:2, 2:4]))
graded("your tiles assemble a 6×7 @ 7×8 product", lambda: np.allclose(matmul_from_tiles(A_t, B_t), A_t @ B_t))

# %% [markdown]
# ### The Numba kernel
#
# numba_cpu.matmul runs the same plan compiled: blocks of (at most) 128 columns of B, each
# packed as rows of Bᵀ (packed_block), 4×4 register tiles that LLVM turns into SIMD code,
# and the blocks shared among the CPU cores: each core packs a block and passes every strip
# of A over it while it sits in that core's cache. Shapes that are not multiples of 4
# exercise its leftover path.
#
# Two details of the compiled version are about the machine, not the formula. LLVM turns
# the k loop into loads of 16 float32 values (with AVX-512: one vector, 64 bytes, a cache
# line), and a load that starts in the middle of a line has to read two lines. So the packed
# block starts on a line, and each of its rows too (a row is padded to a whole number of
# lines). On the 2-core machine of the README this alone took the 1024³ product from about
# 310 to 380 GFLOP/s (the product without the packing). And each parallel loop wakes the
# other core's thread, which costs tens of microseconds: the kernel is one parallel loop,
# packing included, not one loop per block plus one to pack.

# %%
A32 = rng.standard_normal((37, 50)).astype(np.float32)
B32 = rng.standard_normal((50, 23)).astype(np.float32)
Bt_packed = matrix_product.packed_block(B32, 8, 12)   # columns 8..19 of B, as numba_cpu.matmul packs them
print("columns 8..19 of a 50×23 B, packed:", Bt_packed.shape, "with the padding; row stride",
      Bt_packed.strides[0], "bytes; start address mod 64:", Bt_packed.ctypes.data % 64)
check("the packed block holds Bᵀ's rows 8..19 in its first 50 columns", np.array_equal(Bt_packed[:, :50], B32[:, 8:20].T))
check("each row of the packed block starts on a 64-byte cache line",
      Bt_packed.ctypes.data % 64 == 0 and Bt_packed.strides[0] % 64 == 0)
check("numba_cpu.matmul on the 4×4 example", np.allclose(numba_cpu.matmul(A4, B4), C4))
C_numba = numba_cpu.matmul(A32, B32)
print("37×50 @ 50×23 float32: largest difference from the reference",
      np.abs(C_numba - reference.matmul(A32, B32)).max())
check("numba_cpu.matmul equals the reference (float32, leftover rows and columns)",
      np.allclose(C_numba, reference.matmul(A32, B32), rtol=1e-5, atol=1e-5))
A_batch, B_batch = rng.standard_normal((2, 5, 6)), rng.standard_normal((2, 6, 7))
check("... and a batch (2, 5, 6) @ (2, 6, 7) in float64",
      np.allclose(numba_cpu.matmul(A_batch, B_batch), reference.matmul(A_batch, B_batch), atol=1e-12))

# %% [markdown]
# The gradient runs through the same kernel: for `C = A B` with upstream gradient G,
# `∂L/∂A = G Bᵀ` and `∂L/∂B = Aᵀ G`, two more products. With the "numba" kernel set chosen,
# tinylm's autograd computes them with numba_cpu.matmul. The formula column computes them
# with the NumPy tiled_matmul above.

# %%
def matmul_formula(grad_out, A, B):
    return {"A": tiled_matmul(grad_out, B.T)[0], "B": tiled_matmul(A.T, grad_out)[0]}


with kernel_set("numba"):
    report = compare(lambda A, B: A @ B, matmul_formula,
                     {"A": tinylm.Tensor(rng.standard_normal((4, 8)), requires_grad=True),
                      "B": tinylm.Tensor(rng.standard_normal((8, 4)), requires_grad=True)})
print(report.table("C = A B with the Numba kernel: autograd vs numeric vs tiled formula"))
check("matmul gradients agree three ways", report.passed)

# %% [markdown]
# ## Softmax 软最大函数 (001.softmax, 000.attn)
#
# `softmax(x)_i = e^{x_i} / Σ_j e^{x_j}` (001.softmax). Article 000 calls it 软件函数, a slip
# for 软最大函数. In attention it turns each row of scores `QKᵀ/√d_k` into weights
# (000.attn). The textbook formula overflows: `e^x` is ∞ in float64 above x ≈ 709.8, and in
# float32, the training dtype, already above 88.7. At scores of 10⁴ it computes ∞/∞ = NaN.
# Subtracting the row maximum m changes nothing (`e^{-m}` cancels between numerator and
# denominator), and then every exponent is ≤ 0 and the largest term is exactly 1:
#
#     softmax(x)_i = e^{x_i − m} / Σ_j e^{x_j − m},   m = max_j x_j

# %%
x_hot = np.array([1e4, 0.0, -1e4])
with np.errstate(over="ignore", invalid="ignore"):
    naive = np.exp(x_hot) / np.exp(x_hot).sum()            # [∞, 1, 0] / ∞
    over32 = np.exp(np.float32(100.0))
shifted = np.exp(x_hot - x_hot.max()) / np.exp(x_hot - x_hot.max()).sum()   # [1, e⁻¹⁰⁰⁰⁰, 0] / 1
print("naive:", naive, " float32 e^100:", over32, " shifted:", shifted)
check("the naive formula gives NaN at 1e4", np.isnan(naive[0]))
check("float32 overflows already at e^100", np.isinf(over32))
check("with the maximum subtracted: [1, 0, 0], as reference.softmax", np.array_equal(shifted, reference.softmax(x_hot)))

# %% [markdown]
# ### 一遍与两遍 One pass or two: the online softmax
#
# The stable formula reads the row twice before it can write anything: once for m, once for
# `s = Σ_j e^{x_j − m}`, and a third time to write `y`. A long row that does not fit in cache
# comes from memory each time, and on a GPU that memory traffic *is* the cost. The
# **online softmax** finds m and s in one pass. It keeps a running maximum m and a sum s
# taken *relative to m*. When a value v raises the maximum, the sum so far is rescaled to
# the new maximum:
#
#     m_new = max(m, v)
#     s     ← s · e^{m − m_new} + e^{v − m_new}
#     m     ← m_new
#
# By hand on `[1, 3, 2]`: after 1, `m = 1, s = 1`. After 3, `m = 3, s = 1·e^{1−3} + 1 =
# 1.1353`. After 2, `m = 3, s = 1.1353 + e^{−1} = 1.5032`. The two-pass values are `m = 3`,
# `s = e^{−2} + e^0 + e^{−1} = 1.5032`. The same numbers.
#
# The running maximum starts at the lowest finite float, as in the CUDA code
# (common.cuh `lowest()`), not at −∞: when the first value is −∞ (a masked key), `−∞ − (−∞)`
# would be NaN.

# %%
s_after = [1.0, 1.0 * np.exp(1 - 3) + np.exp(3 - 3)]
s_after.append(s_after[1] * np.exp(3 - 3) + np.exp(2 - 3))
two_pass_s = np.exp(np.array([1.0, 3, 2]) - 3).sum()
print("s after each value:", np.round(s_after, 4), " two-pass s:", round(two_pass_s, 4))
check("the online sum after the last value is the two-pass sum", np.isclose(s_after[-1], two_pass_s))


def max_sum(x):
    """(m, s) by two passes: m = max x, s = Σ e^(x - m)."""
    m = x.max()
    return m, np.exp(x - m).sum()


# %%
def online_max_sum(x):
    """(m, s) = (max x, Σ e^(x - m)) of a 1-D float64 row, in one pass over it."""
    m, s = np.finfo(np.float64).min, 0.0
    for v in x:
        # BEGIN SOLUTION hint: m_new = max(m, v); s = s * e^(m − m_new) + e^(v − m_new); then m = m_new
        m_new = max(m, v)
        s = s * np.exp(m - m_new) + np.exp(v - m_new)
        m = m_new
        # END SOLUTION
    return m, s


def online_softmax(x):
    """softmax of a 1-D row: one pass for (m, s), one to write e^(x - m) / s."""
    m, s = online_max_sum(x)
    return np.exp(x - m) / s


# %%
test_rows = [rng.standard_normal(9) * scale for scale in (1.0, 30.0, 1e3, 1e4)]
test_rows += [np.arange(8) * 1e3,                                     # a new maximum at every step
              np.array([-np.inf, 2.0, -np.inf, 5.0, 1.0]),            # masked keys, the first among them
              np.array([1e4, -1e4, 0.0, 1e4 - 1, -3e3])]
graded("your (m, s) equal the two-pass max and sum",
       lambda: all(np.isclose(online_max_sum(r)[0], max_sum(r)[0]) and np.isclose(online_max_sum(r)[1], max_sum(r)[1])
                   for r in test_rows))
graded("your online softmax equals reference.softmax, extreme rows included",
       lambda: all(np.allclose(online_softmax(r), reference.softmax(r), rtol=1e-12, atol=1e-300) for r in test_rows))

# %% [markdown]
# ### 指数函数 A fast e^x: range reduction and a polynomial
#
# On the CPU the kernels avoid `math.exp`, a call into the C library, one value at a time.
# For float32 they use exp_f32 (kernels/numba_cpu/machinery.py), a few multiply-adds that
# the compiler turns into SIMD code working on 8 or 16 values at once:
#
# 1. `x = n ln 2 + r` with `n = round(x log₂e)` and `|r| ≤ ln(2)/2 ≈ 0.347`, so `e^x = 2ⁿ · e^r`.
#    `r` is computed in two steps, with ln 2 split into a short part `355/512` (so `n · 355/512`
#    is exact) and a tiny rest; a large n then costs r none of its bits.
# 2. `2ⁿ` comes straight from the bits. A float32 is a sign bit, 8 exponent bits e and 23
#    mantissa bits, worth `1.mantissa × 2^(e−127)`. With a zero mantissa the 32 bits
#    `(n + 127) << 23` *are* the float 2ⁿ.
# 3. `e^r = 1 + r + r²/2! + … + r⁷/7!` on this short interval: the next term, `r⁸/8! < 6e-9`,
#    is below float32's rounding. Evaluated by Horner's rule: 7 multiply-adds.
#
# By hand for x = 10: `n = round(14.427) = 14`, `r = 10 − 14 · 0.693147 = 0.295939`,
# `e^r = 1.344389`, `2¹⁴ = 16384`, and `16384 · 1.344389 = 22026.47 = e^10`.

# %%
f32 = np.float32
LOG2E, LN2_HI = f32(1 / math.log(2)), f32(355 / 512)
LN2_LO = f32(math.log(2) - 355 / 512)
TAYLOR = [f32(1 / math.factorial(k)) for k in range(8)]      # 1/0!, 1/1!, ..., 1/7!


def pow2_from_bits(n):
    """2^n for integer-valued float32 n in [-126, 127]: the exponent field set to n + 127."""
    return ((n.astype(np.int32) + 127) << 23).view(np.float32)


def exp_f32(x):
    """e^x in float32 arithmetic only, by range reduction and a degree-7 polynomial."""
    x = np.asarray(x, np.float32)
    n = np.floor(x * LOG2E + f32(0.5))
    r = (x - n * LN2_HI) - n * LN2_LO
    poly = TAYLOR[7]
    for c in TAYLOR[6::-1]:                                     # Horner: (((c7 r + c6) r + c5) r ...) + c0
        poly = poly * r + c
    return poly * pow2_from_bits(n)


n10 = np.floor(f32(10) * LOG2E + f32(0.5))
print(f"x = 10: n = {n10:.0f}, bits of 2^n = {int(n10 + 127) << 23:#010x}, "
      f"2^n = {pow2_from_bits(np.array([n10]))[0]}, e^x ≈ {exp_f32([10.0])[0]}")
check("the bits (14 + 127) << 23 are the float 2¹⁴", pow2_from_bits(np.array([n10]))[0] == 2.0 ** 14)
check("all of exp_f32 stays in float32", exp_f32([1.0]).dtype == np.float32)

xs = np.linspace(-87, 88, 20_001 if fast() else 200_001, dtype=np.float32)
truth = np.exp(xs.astype(np.float64))                           # the exact value of each float32 x
rel_err = np.abs(exp_f32(xs) / truth - 1)
rel_err_numpy = np.abs(np.exp(xs) / truth - 1)
print(f"max relative error over [-87, 88]: exp_f32 {rel_err.max():.2e}, NumPy's float32 exp "
      f"{rel_err_numpy.max():.2e} (float32 rounding alone: up to {2.0 ** -24:.2e})")
check("exp_f32 is accurate to 2e-7 relative", rel_err.max() < 2e-7)
few = np.float32([-80.0, -3.3, 0.1, 1.0, 10.0, 50.0, 88.0])
check("machinery.exp_f32 gives the same values",
      np.allclose([machinery.exp_f32(v) for v in few], exp_f32(few), rtol=2e-7, atol=0))

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(xs[::10], rel_err[::10], ",", label="exp_f32")
    ax.axhline(2.0 ** -24, color="gray", lw=0.8, label="float32 rounding, 2⁻²⁴")
    ax.set_xlabel("x")
    ax.set_ylabel("relative error vs exact e^x")
    ax.legend(loc="upper right")
    fig.tight_layout()
    picture(fig, "18_exp_error.png")
except ImportError:
    print("(matplotlib not installed: no error plot)")

# %% [markdown]
# ### The Numba softmax
#
# softmax_row (kernels/numba_cpu/softmax_family.py) puts it together for one row: a maximum
# pass (vectorised), a pass writing `e^{x−m}` with the fast exp and summing it, and a pass
# multiplying by `1/s`. The rows are shared among the cores. On the CPU a row usually sits
# in cache after the first pass, so the plain two-pass form is cheap. The online form pays
# off on the GPU (next section). Here it is against the reference, with extreme and masked
# rows:

# %%
X = rng.standard_normal((64, 300)).astype(np.float32) * 5
X[0, :3] = [1e4, -1e4, 0.0]
X[1, ::2] = -np.inf                                         # masked keys, as in causal attention
X64 = X.astype(np.float64)
err32 = np.abs(numba_cpu.softmax(X) - reference.softmax(X)).max()
print(f"float32: largest difference {err32:.1e};  float64: "
      f"{np.abs(numba_cpu.softmax(X64) - reference.softmax(X64)).max():.1e}")
check("numba_cpu.softmax equals the reference in float32", np.allclose(numba_cpu.softmax(X), reference.softmax(X),
                                                                         rtol=1e-5, atol=1e-7))
check("... and in float64", np.allclose(numba_cpu.softmax(X64), reference.softmax(X64), rtol=1e-12, atol=1e-15))


def softmax_formula(grad_out, x):
    """dL/dx = y ⊙ (g − Σ_j g_j y_j) for y = softmax(x) along the last axis."""
    y = reference.softmax(x)
    return {"x": y * (grad_out - (grad_out * y).sum(axis=-1, keepdims=True))}


with kernel_set("numba"):
    report = compare(lambda x: F.softmax(x, dim=-1), softmax_formula,
                     {"x": tinylm.Tensor(rng.normal(0, 3, (3, 6)), requires_grad=True)})
print(report.table("softmax with the Numba kernels: autograd vs numeric vs formula"))
check("softmax gradients agree three ways", report.passed)

# %% [markdown]
# ## GPU 内核 The CUDA softmax (no GPU needed to read it)
#
# kernels/cuda/softmax.cu gives **one thread block per row** (`blockIdx.x` is the row). The
# block's threads stride along the row, thread t taking values t, t + blockDim, t + 2·blockDim,
# …. Each thread folds its values into its own online (m, s) in one pass (`row_max_sum`).
# Then the block combines the threads' pairs, and a second pass writes `e^{x−m}/s`. The
# source, installed with tinylm:

# %%
cuda_dir = resources.files("tinylm.kernels") / "cuda"
softmax_cu = (cuda_dir / "softmax.cu").read_text()
common_cuh = (cuda_dir / "common.cuh").read_text()


def excerpt(source, start):
    """The lines of `source` from the one containing `start` to the next closing brace at column 0."""
    lines = source.splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i in range(first, len(lines)) if lines[i].startswith("}"))
    return "\n".join(lines[first:last + 1])


print(excerpt(softmax_cu, "__global__ void softmax_forward"))
print()
print(excerpt(common_cuh, "V warp_reduce(V v)"))
check("the kernel takes its row from blockIdx.x", "const long long row = blockIdx.x;" in softmax_cu)
check("the warp reduction uses __shfl_xor_sync", "__shfl_xor_sync" in common_cuh)

# %% [markdown]
# ### 线程束归约 The warp-shuffle reduction, simulated
#
# A warp is 32 threads (*lanes*) that run in lockstep. `__shfl_xor_sync(v, offset)` hands
# each lane the value held by lane `lane XOR offset`, register to register, with no memory
# involved. With offsets 16, 8, 4, 2, 1 every lane adds its partner's value. After step 1
# each lane holds a sum of 2 values, after step 2 of 4, …, and after log₂32 = 5 steps the
# whole warp's sum sits in *every* lane. A sequential loop would need 31 additions, one
# after another. As arrays, with `lanes ^ offset` as the shuffle:

# %%
lanes = np.arange(32)
values = rng.integers(0, 10, 32).astype(np.float64)
v = values.copy()
for step, offset in enumerate((16, 8, 4, 2, 1), 1):
    v = v + v[lanes ^ offset]                      # x += shuffle_xor(x, offset), in all 32 lanes at once
    print(f"step {step} (offset {offset:2d}): lane 0 holds {v[0]:5.0f}, the sum of {2 ** step} values")
check("after 5 butterfly steps every lane holds the total", np.all(v == values.sum()))

# %% [markdown]
# The softmax reduces (m, s) pairs, not plain numbers. Two partial results, one for each
# part of a row, combine by rescaling both sums to the larger maximum:
# `m = max(m₁, m₂)`, `s = s₁ e^{m₁−m} + s₂ e^{m₂−m}` (common.cuh `combine`). Here is a
# whole row of 100 values in one warp. Lane t takes values t, t + 32, t + 64, …, the butterfly
# combines the 32 pairs, and the second pass writes the softmax:

# %%
def combine(m1, s1, m2, s2):
    """Two (max, sum of e^(x - max)) pairs of disjoint parts -> the pair of their union."""
    m = np.maximum(m1, m2)
    return m, s1 * np.exp(m1 - m) + s2 * np.exp(m2 - m)


row = rng.normal(0, 4, 100)
m_lane, s_lane = np.array([max_sum(row[t::32]) for t in lanes]).T    # each lane's one-pass (m, s)
for offset in (16, 8, 4, 2, 1):
    m_lane, s_lane = combine(m_lane, s_lane, m_lane[lanes ^ offset], s_lane[lanes ^ offset])
y_gpu = np.exp(row - m_lane[0]) / s_lane[0]                           # pass 2, with lane 0's (m, s)
check("after the butterfly every lane holds the row's (m, s)",
      np.allclose(m_lane, row.max()) and np.allclose(s_lane, max_sum(row)[1]))
check("the simulated GPU softmax equals reference.softmax", np.allclose(y_gpu, reference.softmax(row)))

try:
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for step, offset in enumerate((16, 8, 4, 2, 1)):
        for lane in range(32):
            ax.plot([step, step + 1], [lane, lane ^ offset], color=f"C{step}", lw=0.6)
    ax.set_xticks(range(6), ["start", "16", "8", "4", "2", "1"])
    ax.set_xlabel("shuffle offset")
    ax.set_ylabel("lane")
    ax.set_title("warp butterfly: lane ← lane + lane XOR offset")
    fig.tight_layout()
    picture(fig, "18_butterfly.png")
except ImportError:
    print("(matplotlib not installed: no butterfly plot)")

# %% [markdown]
# A block of more warps runs one more stage (common.cuh `block_reduce`). Each warp's lane 0
# writes its result to shared memory, and then every warp reduces those (at most 32)
# results with the same butterfly. Rows longer than the block are handled by the stride
# loop. Each thread also reads four values before it uses any of them, so several memory
# reads are in flight at once.
#
# ## 选择内核 Choosing kernels (004.speed)
#
# `tinylm.get_kernels()` names the set serving the CPU now. `tinylm.set_kernels("numpy" |
# "numba" | "cupy")` chooses one for every op, and `set_kernels(None)` goes back to the
# default. The environment variable `TINYLM_KERNELS` does the same for a whole run
# (`TINYLM_KERNELS=numpy tinylm train …`). The default is chosen *per kernel*. The CPU gets
# the Numba set, except for matmul, where NumPy's BLAS (OpenBLAS, tuned far beyond the
# teaching kernel) measured faster (`tinylm bench kernels`):

# %%
probe = np.zeros((2, 2), np.float32)
default_set = tinylm.get_kernels()
print("default CPU kernel set:", tinylm.get_kernels(),
      "| softmax from", kernels_for(probe).softmax.__module__,
      "| matmul from", kernels_for(probe).matmul.__module__)
with kernel_set("numpy"):
    check("set_kernels('numpy') is reported by get_kernels", tinylm.get_kernels() == "numpy")
    check("... and every op takes the reference", kernels_for(probe).matmul is reference.matmul)
with kernel_set("numba"):
    check("set_kernels('numba') gives Numba's matmul too", kernels_for(probe).matmul is numba_cpu.matmul)


def best_time(fn, repeats=5):
    """The shortest of `repeats` timings of fn(), in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


rows_n, cols_n = (64, 512) if fast() else (512, 2048)
scores = tinylm.Tensor(rng.normal(0, 3, (rows_n, cols_n)).astype(np.float32))
a_mm, b_mm = (rng.standard_normal((256, 256)).astype(np.float32) for _ in range(2))
results, timings = {}, {}
for name in ("numpy", "numba"):
    with kernel_set(name), tinylm.no_grad():
        results[name] = F.softmax(scores, dim=-1).numpy()       # also compiles / loads Numba's code
        timings[name] = best_time(lambda: F.softmax(scores, dim=-1))
        timings[name + " matmul"] = best_time(lambda: kernels_for(a_mm).matmul(a_mm, b_mm))
print(f"softmax of {rows_n}×{cols_n} float32: numpy {timings['numpy'] * 1e3:.2f} ms, "
      f"numba {timings['numba'] * 1e3:.2f} ms, ratio numpy/numba {timings['numpy'] / timings['numba']:.2f}")
print(f"matmul 256×256 float32: numpy (BLAS) {timings['numpy matmul'] * 1e3:.2f} ms, "
      f"numba {timings['numba matmul'] * 1e3:.2f} ms")
check("both kernel sets give the same softmax", np.allclose(results["numpy"], results["numba"], rtol=1e-5, atol=1e-7))
check("after the blocks, the default kernel set is back", tinylm.get_kernels() == default_set)

# %% [markdown]
# The timings vary from machine to machine and run to run (other programs share the cores),
# which is why the lesson prints them and checks only that the answers agree. Size matters
# too. On a small array (fast mode) waking the parallel threads can cost more than the work,
# and the Numba softmax loses; on a large one its vectorised exp and the extra cores win. Speed is
# `tinylm bench`'s job: it prints such ratios against the reference, NumPy's BLAS and
# PyTorch.
