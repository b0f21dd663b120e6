// rms_norm.cu: RMSNorm over the last axis, forward and backward: layer normalisation
// without the mean subtracted and without a bias (Llama's norm). x is a C-contiguous
// (rows, cols) array; the row kernels give each row one thread block (see common.cuh).
// weight always comes as an array: the wrapper passes ones when the layer has none.
#include "common.cuh"

// rstd = 1 / sqrt((1/C) sum_j x_j^2 + eps),   y_j = x_j rstd w_j     (rstd kept for the backward)
template <typename T>
__global__ void rms_norm_forward(const T* __restrict__ x, const T* __restrict__ w,
                                 T* __restrict__ y, T* __restrict__ rstd_out, int cols, T eps) {
    const long long row = blockIdx.x;
    x += row * cols;
    y += row * cols;
    T squares = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) squares += x[j] * x[j];
    const T rstd = T(1) / typed::sqrt(block_reduce(squares, T(0)) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[j] = x[j] * rstd * w[j];
    if (threadIdx.x == 0) rstd_out[row] = rstd;
}

// With x^_j = x_j rstd and g^_j = gy_j w_j:   dx_j = rstd (g^_j - x^_j mean_k g^_k x^_k)
template <typename T>
__global__ void rms_norm_backward(const T* __restrict__ gy, const T* __restrict__ x,
                                  const T* __restrict__ rstd, const T* __restrict__ w,
                                  T* __restrict__ dx, int cols) {
    const long long row = blockIdx.x;
    gy += row * cols;
    x += row * cols;
    dx += row * cols;
    const T r = rstd[row];
    T sum_gx = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) sum_gx += gy[j] * w[j] * x[j] * r;
    const T mean_gx = block_reduce(sum_gx, T(0)) / cols;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[j] = r * (gy[j] * w[j] - x[j] * r * mean_gx);
}

// dweight_c = sum_n gy_nc x^_nc (sums down the columns), as layer_norm_backward_params in
// layer_norm.cu: blockIdx.x picks a chunk of rows_per_chunk rows, blockIdx.y * blockDim.x +
// threadIdx.x the column; chunk k writes its partial sums to row k of dw_part (chunks, cols).
template <typename T>
__global__ void rms_norm_backward_weight(const T* __restrict__ gy, const T* __restrict__ x,
                                         const T* __restrict__ rstd, T* __restrict__ dw_part,
                                         int rows, int cols, int rows_per_chunk) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const int first = blockIdx.x * rows_per_chunk;
    const int end = first + rows_per_chunk < rows ? first + rows_per_chunk : rows;
    T dw = T(0);
    for (int n = first; n < end; ++n) {
        const long long at = (long long)n * cols + c;
        dw += gy[at] * x[at] * rstd[n];
    }
    dw_part[(long long)blockIdx.x * cols + c] = dw;
}
