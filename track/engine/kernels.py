"""Kernels: the loops under two ops, compiled for the CPU by Numba.

Step 5: softmax_rows, a numerically stable softmax of each row. Step 6: matmul_tiled, a
matrix product computed tile by tile. Write them as plain loops over array elements: Numba
compiles them to machine code (@njit). The first call compiles (a second or so); cache=True
keeps the machine code on disk for the next run. The wrappers at the end apply them to any
batch shape.
"""
import numpy as np
from numba import njit

TILE = 16  # the side of a tile in matmul_tiled: three 16×16 float64 tiles (6 KB) fit in the L1 cache


@njit(cache=True)
def softmax_rows(x):
    """y[i, j] = e^(x[i, j] − m_i) / Σ_k e^(x[i, k] − m_i) for a 2-D array x, m_i = max_k x[i, k].

    Subtracting the row's maximum changes nothing mathematically (it cancels) but keeps every
    exponent ≤ 0, so e^x never overflows: rows like [1000, 999] work. Rows may hold −inf
    (a masked position; its y is 0) as long as one value in the row is finite.
    """
    # BEGIN SOLUTION hint: step 5: y = np.empty_like(x); for each row i: its maximum, then e^(x − max) into y and their sum, then divide the row by the sum
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            m = max(m, x[i, j])
        total = 0.0
        for j in range(x.shape[1]):
            y[i, j] = np.exp(x[i, j] - m)
            total += y[i, j]
        for j in range(x.shape[1]):
            y[i, j] /= total
    return y
    # END SOLUTION


@njit(cache=True)
def matmul_tiled(a, b):
    """C = A B for 2-D arrays A (n, k) and B (k, m) of one dtype: C_ij = Σ_p A_ip B_pj.

    Tile by tile: C is cut into TILE × TILE blocks, and each block of C accumulates the products
    of a TILE-wide strip of A's columns with the matching strip of B's rows. The three tiles in
    use stay in the cache while they are reused TILE times, where a plain triple loop streams a
    whole column of B from memory for every element of C. n, k and m need not be multiples of
    TILE.
    """
    # BEGIN SOLUTION hint: step 6: c = np.zeros((n, m), a.dtype); loop over row tiles of C, then over tiles of k, then column tiles; inside, the three loops i, p, j over the tile (j innermost: contiguous in B and C)
    n, k = a.shape
    m = b.shape[1]
    c = np.zeros((n, m), dtype=a.dtype)
    for i0 in range(0, n, TILE):
        for p0 in range(0, k, TILE):
            for j0 in range(0, m, TILE):
                for i in range(i0, min(i0 + TILE, n)):
                    for p in range(p0, min(p0 + TILE, k)):
                        a_ip = a[i, p]
                        for j in range(j0, min(j0 + TILE, m)):
                            c[i, j] += a_ip * b[p, j]
    return c
    # END SOLUTION


def softmax(x):
    """softmax over the last axis of an array of any shape, by softmax_rows."""
    x = np.ascontiguousarray(x)
    return softmax_rows(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def matmul(a, b):
    """a @ b over the last two axes for arrays of one shape of batch (..., n, k) @ (..., k, m), by
    matmul_tiled on each matrix of the batch."""
    batch = a.shape[:-2]
    a3 = np.ascontiguousarray(a).reshape(-1, *a.shape[-2:])
    b3 = np.ascontiguousarray(b).reshape(-1, *b.shape[-2:])
    return np.stack([matmul_tiled(x, y) for x, y in zip(a3, b3)]).reshape(batch + (a.shape[-2], b.shape[-1]))
