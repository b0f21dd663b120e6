// layer_norm.cu: layer normalisation over the last axis, forward and backward.
// x is a C-contiguous (rows, cols) array; the row kernels give each row one thread
// block (see common.cuh). weight and bias always come as arrays: the wrapper passes
// ones and zeros when the layer has no affine transform.
#include "common.cuh"

// mean = (1/C) sum_j x_j,   var = (1/C) sum_j (x_j - mean)^2,   rstd = 1 / sqrt(var + eps)
// y_j = (x_j - mean) rstd w_j + b_j            (mean and rstd are kept for the backward)
// var is summed from x - mean (two passes over the row) rather than from E[x^2] - mean^2,
// which loses every digit when |mean| is large against the spread.
template <typename T>
__global__ void layer_norm_forward(const T* __restrict__ x, const T* __restrict__ w,
                                   const T* __restrict__ b, T* __restrict__ y,
                                   T* __restrict__ mean_out, T* __restrict__ rstd_out, int cols,
                                   T eps) {
    const long long row = blockIdx.x;
    x += row * cols;
    y += row * cols;
    T sum = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += x[j];
    const T mean = block_reduce(sum, T(0)) / cols;
    T squares = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) squares += (x[j] - mean) * (x[j] - mean);
    const T rstd = T(1) / typed::sqrt(block_reduce(squares, T(0)) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[j] = (x[j] - mean) * rstd * w[j] + b[j];
    if (threadIdx.x == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

// With x^_j = (x_j - mean) rstd and g^_j = gy_j w_j:
//   dx_j = rstd (g^_j - mean_k g^_k - x^_j mean_k g^_k x^_k)
template <typename T>
__global__ void layer_norm_backward(const T* __restrict__ gy, const T* __restrict__ x,
                                    const T* __restrict__ mean, const T* __restrict__ rstd,
                                    const T* __restrict__ w, T* __restrict__ dx, int cols) {
    const long long row = blockIdx.x;
    gy += row * cols;
    x += row * cols;
    dx += row * cols;
    const T mu = mean[row], r = rstd[row];
    T sum_g = T(0), sum_gx = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const T g = gy[j] * w[j];
        sum_g += g;
        sum_gx += g * (x[j] - mu) * r;
    }
    const T mean_g = block_reduce(sum_g, T(0)) / cols;
    const T mean_gx = block_reduce(sum_gx, T(0)) / cols;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        dx[j] = r * (gy[j] * w[j] - mean_g - (x[j] - mu) * r * mean_gx);
}

// dweight_c = sum_n gy_nc x^_nc,   dbias_c = sum_n gy_nc      (sums down the columns)
// One thread per column c, summing a chunk of rows_per_chunk rows: blockIdx.x picks the
// chunk, blockIdx.y * blockDim.x + threadIdx.x the column, so the threads of a warp
// read neighbouring columns of a row together. Row chunk k writes its partial sums to
// row k of dw_part and db_part (chunks, cols); the wrapper adds those rows up.
template <typename T>
__global__ void layer_norm_backward_params(const T* __restrict__ gy, const T* __restrict__ x,
                                           const T* __restrict__ mean,
                                           const T* __restrict__ rstd, T* __restrict__ dw_part,
                                           T* __restrict__ db_part, int rows, int cols,
                                           int rows_per_chunk) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    const int first = blockIdx.x * rows_per_chunk;
    const int end = first + rows_per_chunk < rows ? first + rows_per_chunk : rows;
    T dw = T(0), db = T(0);
    for (int n = first; n < end; ++n) {
        const long long at = (long long)n * cols + c;
        dw += gy[at] * (x[at] - mean[n]) * rstd[n];
        db += gy[at];
    }
    dw_part[(long long)blockIdx.x * cols + c] = dw;
    db_part[(long long)blockIdx.x * cols + c] = db;
}
