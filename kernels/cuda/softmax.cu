// softmax.cu: softmax and log-softmax over the last axis, forward and backward,
// and the causal (masked, scaled) softmax of attention scores.
// One thread block per row of a C-contiguous (rows, cols) array; see common.cuh.
#include "common.cuh"

// y_j = exp(x_j - m) / s,   m = max_k x_k,  s = sum_k exp(x_k - m)
// Pass 1 finds m and s together (online softmax), pass 2 writes y.
template <typename T>
__global__ void softmax_forward(const T* __restrict__ x, T* __restrict__ y, int cols) {
    const long long row = blockIdx.x;
    x += row * cols;
    y += row * cols;
    const MaxSum<T> ms = row_max_sum(x, cols, T(1));
    const T inv_s = T(1) / ms.s;  // one division per row, then a multiplication per value
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[j] = typed::exp(x[j] - ms.m) * inv_s;
}

// y_j = x_j - logsumexp(x) = x_j - m - log s
template <typename T>
__global__ void log_softmax_forward(const T* __restrict__ x, T* __restrict__ y, int cols) {
    const long long row = blockIdx.x;
    x += row * cols;
    y += row * cols;
    const MaxSum<T> ms = row_max_sum(x, cols, T(1));
    const T log_s = typed::log(ms.s);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) y[j] = x[j] - ms.m - log_s;
}

// dx_j = y_j (g_j - sum_k g_k y_k)   (the Jacobian diag(y) - y y^T applied to g)
template <typename T>
__global__ void softmax_backward(const T* __restrict__ y, const T* __restrict__ gy,
                                 T* __restrict__ dx, int cols) {
    const long long row = blockIdx.x;
    y += row * cols;
    gy += row * cols;
    dx += row * cols;
    T dot = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dot += gy[j] * y[j];
    dot = block_reduce(dot, T(0));
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[j] = y[j] * (gy[j] - dot);
}

// dx_j = g_j - exp(y_j) sum_k g_k   (exp(y) is the softmax, y the log-softmax output)
template <typename T>
__global__ void log_softmax_backward(const T* __restrict__ y, const T* __restrict__ gy,
                                     T* __restrict__ dx, int cols) {
    const long long row = blockIdx.x;
    y += row * cols;
    gy += row * cols;
    dx += row * cols;
    T sum = T(0);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) sum += gy[j];
    sum = block_reduce(sum, T(0));
    for (int j = threadIdx.x; j < cols; j += blockDim.x) dx[j] = gy[j] - typed::exp(y[j]) * sum;
}

// Causal softmax of attention scores (..., queries, keys), seen as rows of length
// keys = cols: row r is query i = r mod queries, which may see the keys
// j <= i + keys - queries (the queries are the last positions; with more keys than
// queries, a KV cache holds the earlier ones).
//   y_j = exp(scale x_j - m) / s  over the visible j (m, s taken over them), 0 beyond.
template <typename T>
__global__ void causal_softmax_forward(const T* __restrict__ x, T* __restrict__ y, int queries,
                                       int cols, T scale) {
    const long long row = blockIdx.x;
    x += row * cols;
    y += row * cols;
    const int i = (int)(row % queries);
    // query i sees keys 0 .. visible-1: none for the first queries when keys < queries
    const int visible = i + cols - queries + 1;
    const MaxSum<T> ms = row_max_sum(x, visible, scale);  // no key: the row stays 0 (j < visible never holds)
    const T inv_s = T(1) / ms.s;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        y[j] = j < visible ? typed::exp(scale * x[j] - ms.m) * inv_s : T(0);
}
