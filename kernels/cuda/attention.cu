// attention.cu: the element-wise work of one tile of causal self-attention without the
// T x T weights (flash attention). kernels/flash.py holds the algorithm and the tiling;
// cupy_gpu does a tile's matrix products with cuBLAS and launches these kernels between them.
// A tile s is C-contiguous (heads * rows, keys): one thread block per row (see common.cuh).
// Row `row` is query i0 + r of its head (r = row mod rows); the tile's keys start at j0, so
// the query sees the tile's keys j < seen = i0 + r - j0 + 1 (its past and itself), never 0 of them.
#include "common.cuh"

// The online softmax step of a row with running maximum m and sum `total`:
//   m' = max(m, max_j scale s_j),  total <- total e^(m - m') + sum_j e^(scale s_j - m'),
//   s_j <- e^(scale s_j - m') (0 for the keys in the query's future),  rescale = e^(m - m').
template <typename T>
__global__ void online_softmax_tile(T* __restrict__ s, T* __restrict__ m, T* __restrict__ total,
                                    T* __restrict__ rescale, int rows, int keys, int i0, int j0, T scale) {
    const long long row = blockIdx.x;
    const int r = (int)(row % rows);
    const int seen = min(keys, i0 + r - j0 + 1);
    s += row * keys;
    const MaxSum<T> tile = row_max_sum(s, seen, scale);  // this tile's max and sum of e^(scale s - max)
    const T m_old = m[row];
    const T m_new = tile.m > m_old ? tile.m : m_old;
    for (int j = threadIdx.x; j < keys; j += blockDim.x)
        s[j] = j < seen ? typed::exp(scale * s[j] - m_new) : T(0);
    __syncthreads();  // every thread has read m[row] before thread 0 writes it
    if (threadIdx.x == 0) {
        const T factor = typed::exp(m_old - m_new);  // 0 for the first tile (m = lowest)
        total[row] = total[row] * factor + tile.s * typed::exp(tile.m - m_new);
        m[row] = m_new;
        rescale[row] = factor;
    }
}

// One tile of the backward, in place: s holds q.k and becomes P = e^(scale s - lse) (0 in the
// query's future); dp holds gy.v and becomes dS = scale P (dp - D), D = gy.y of the query.
template <typename T>
__global__ void softmax_grad_tile(T* __restrict__ s, T* __restrict__ dp, const T* __restrict__ lse,
                                  const T* __restrict__ big_d, int rows, int keys, int i0, int j0, T scale) {
    const long long row = blockIdx.x;
    const int r = (int)(row % rows);
    const int seen = min(keys, i0 + r - j0 + 1);
    s += row * keys;
    dp += row * keys;
    const T l = lse[row], d = big_d[row];
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {
        const T p = j < seen ? typed::exp(scale * s[j] - l) : T(0);
        s[j] = p;
        dp[j] = scale * p * (dp[j] - d);
    }
}
