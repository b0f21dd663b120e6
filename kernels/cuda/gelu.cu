// gelu.cu: the GELU activation and its derivative, element by element; and with a bias
// added first (bias_gelu: a Linear layer's bias and the GELU after it, in one pass).
// Arrays are C-contiguous with n elements; a grid-stride loop lets any grid size cover
// any n: thread t handles elements t, t + (all threads), t + 2 (all threads), ...
// tanh_form = 0 is the exact GELU (approximate="none"), 1 the tanh approximation.
#include "common.cuh"

// GELU(x) = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
// tanh form: GELU(x) ~ x (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x^3)
template <typename T> __device__ __forceinline__ T gelu_value(T v, int tanh_form) {
    if (tanh_form)
        return T(0.5) * v * (T(1) + typed::tanh(T(0.7978845608028654) * (v + T(0.044715) * v * v * v)));
    return T(0.5) * v * (T(1) + typed::erf(v * T(0.7071067811865476)));
}

// GELU'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// tanh form, t = tanh u:  (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
template <typename T> __device__ __forceinline__ T gelu_slope(T v, int tanh_form) {
    if (tanh_form) {
        const T t = typed::tanh(T(0.7978845608028654) * (v + T(0.044715) * v * v * v));
        return T(0.5) * (T(1) + t) +
               T(0.5) * v * (T(1) - t * t) * T(0.7978845608028654) * (T(1) + T(3 * 0.044715) * v * v);
    }
    return T(0.5) * (T(1) + typed::erf(v * T(0.7071067811865476))) +
           v * T(0.3989422804014327) * typed::exp(T(-0.5) * v * v);
}

// y = GELU(x)
template <typename T>
__global__ void gelu_forward(const T* __restrict__ x, T* __restrict__ y, long long n, int tanh_form) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = gelu_value(x[i], tanh_form);
}

// dx = gy GELU'(x)
template <typename T>
__global__ void gelu_backward(const T* __restrict__ x, const T* __restrict__ gy, T* __restrict__ dx,
                              long long n, int tanh_form) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = gy[i] * gelu_slope(x[i], tanh_form);
}

// y = GELU(x + b) for x (n / cols rows, cols) and b (cols,): element i adds b[i % cols]
template <typename T>
__global__ void bias_gelu_forward(const T* __restrict__ x, const T* __restrict__ b, T* __restrict__ y,
                                  long long n, int cols, int tanh_form) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = gelu_value(x[i] + b[i % cols], tanh_form);
}

// dx = gy GELU'(x + b); the bias's gradient, dx summed over the rows, is one CuPy reduction
template <typename T>
__global__ void bias_gelu_backward(const T* __restrict__ x, const T* __restrict__ b, const T* __restrict__ gy,
                                   T* __restrict__ dx, long long n, int cols, int tanh_form) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = gy[i] * gelu_slope(x[i] + b[i % cols], tanh_form);
}
