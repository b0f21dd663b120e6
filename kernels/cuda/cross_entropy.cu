// cross_entropy.cu: cross-entropy fused with log-softmax, forward and backward.
// logits (rows, cols) C-contiguous, one integer target per row; one thread block per
// row (see common.cuh). Rows whose target is ignore_index get loss 0 and gradient 0.
#include "common.cuh"

// loss_n = logsumexp(z_n) - z_n[t_n],  logsumexp(z) = m + log sum_c exp(z_c - m)
// lse_n is kept for the backward; a row without a finite maximum (every logit -inf, or
// a +inf) gets lse = NaN, as in the reference (see row_max_sum). A target outside
// [0, cols) gives a NaN loss instead of a read outside the row.
template <typename T>
__global__ void cross_entropy_forward(const T* __restrict__ z, const long long* __restrict__ target,
                                      T* __restrict__ loss, T* __restrict__ lse, int cols,
                                      long long ignore_index) {
    const long long row = blockIdx.x;
    z += row * cols;
    const MaxSum<T> ms = row_max_sum(z, cols, T(1));
    if (threadIdx.x == 0) {
        const T row_lse = ms.m + typed::log(ms.s);
        const long long t = target[row];
        lse[row] = row_lse;
        if (t == ignore_index) loss[row] = T(0);
        else if (t < 0 || t >= cols) loss[row] = quiet_nan<T>();
        else loss[row] = row_lse - z[t];
    }
}

// dz_nc = g_n (exp(z_nc - lse_n) - [c == t_n]),  g_n = 0 where t_n == ignore_index
template <typename T>
__global__ void cross_entropy_backward(const T* __restrict__ z, const T* __restrict__ lse,
                                       const long long* __restrict__ target,
                                       const T* __restrict__ gloss, T* __restrict__ dz, int cols,
                                       long long ignore_index) {
    const long long row = blockIdx.x;
    z += row * cols;
    dz += row * cols;
    const long long t = target[row];
    const T g = t == ignore_index ? T(0) : gloss[row];
    const T row_lse = lse[row];
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        dz[j] = g * (typed::exp(z[j] - row_lse) - (j == t ? T(1) : T(0)));
}
