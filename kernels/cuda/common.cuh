// common.cuh: the helpers every tinylm kernel shares.
//
// CuPy compiles these sources at run time with NVRTC, which has no C/C++ standard
// headers: nothing here includes one, and constants such as the lowest float are
// written out. Every kernel is a template over T = float or double.
//
// The row kernels give each row of a (rows, cols) array one thread block
// (blockIdx.x = row). The block's threads stride over the row, j = threadIdx.x,
// threadIdx.x + blockDim.x, ..., then combine their partial results with
// block_reduce. blockDim.x is always a whole number of warps (32 threads), <= 1024.

// ---- math in the element type: float calls expf, double calls exp, ... ----
namespace typed {
__device__ __forceinline__ float exp(float x) { return expf(x); }
__device__ __forceinline__ double exp(double x) { return ::exp(x); }
__device__ __forceinline__ float log(float x) { return logf(x); }
__device__ __forceinline__ double log(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt(double x) { return ::sqrt(x); }
__device__ __forceinline__ float erf(float x) { return erff(x); }
__device__ __forceinline__ double erf(double x) { return ::erf(x); }
__device__ __forceinline__ float tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double tanh(double x) { return ::tanh(x); }
}  // namespace typed

// The lowest finite value. It stands for the max of an empty set: unlike -inf,
// lowest - lowest is 0, so exp(m - m) never turns into exp(NaN).
template <typename T> __device__ T lowest();
template <> __device__ __forceinline__ float lowest<float>() { return -3.402823466e38f; }
template <> __device__ __forceinline__ double lowest<double>() { return -1.7976931348623157e308; }

// Not-a-number, from its bit pattern (NVRTC has no NAN macro).
template <typename T> __device__ T quiet_nan();
template <> __device__ __forceinline__ float quiet_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double quiet_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000LL);
}

// ---- online softmax statistics ----
// MaxSum describes a set of values v by m = max v and s = sum exp(v - m).
template <typename T> struct MaxSum {
    T m;
    T s;
};

template <typename T> __device__ __forceinline__ MaxSum<T> empty_max_sum() {
    MaxSum<T> e = {lowest<T>(), T(0)};
    return e;
}

// Add one value v to the set, in one pass (the "online" softmax): when v is a new
// maximum, the old sum is rescaled to it, s <- s exp(m - v) + 1, m <- v;
// otherwise s <- s + exp(v - m). One exp per value either way.
template <typename T> __device__ __forceinline__ void push(MaxSum<T>& a, T v) {
    if (v > a.m) {
        a.s = a.s * typed::exp(a.m - v) + T(1);
        a.m = v;
    } else {
        a.s += typed::exp(v - a.m);
    }
}

// ---- combining two partial results (used by block_reduce) ----
// A sum combines by adding; two MaxSum sets by rescaling both sums to the larger max:
//   m = max(m1, m2),  s = s1 exp(m1 - m) + s2 exp(m2 - m).
template <typename T> __device__ __forceinline__ T combine(T a, T b) { return a + b; }

template <typename T> __device__ __forceinline__ MaxSum<T> combine(MaxSum<T> a, MaxSum<T> b) {
    MaxSum<T> r;
    r.m = a.m > b.m ? a.m : b.m;
    r.s = a.s * typed::exp(a.m - r.m) + b.s * typed::exp(b.m - r.m);
    return r;
}

// The value held by the thread whose lane is (this lane) XOR offset in the same warp.
template <typename T> __device__ __forceinline__ T shfl_xor(T v, int offset) {
    return __shfl_xor_sync(0xffffffffu, v, offset);
}

template <typename T> __device__ __forceinline__ MaxSum<T> shfl_xor(MaxSum<T> v, int offset) {
    MaxSum<T> r = {shfl_xor(v.m, offset), shfl_xor(v.s, offset)};
    return r;
}

// Butterfly reduction inside one warp: after the steps 16, 8, 4, 2, 1 every lane
// holds the combination of all 32 lanes' values (no shared memory involved).
template <typename V> __device__ __forceinline__ V warp_reduce(V v) {
    for (int offset = 16; offset > 0; offset /= 2) v = combine(v, shfl_xor(v, offset));
    return v;
}

// Combine v over all threads of the block; every thread gets the result.
// identity is the neutral value (0 for a sum, empty_max_sum() for a MaxSum).
// Step 1 reduces each warp; step 2 lets every warp reduce the (at most 32) warp
// results, so the total reaches all threads without a broadcast step.
template <typename V> __device__ V block_reduce(V v, V identity) {
    __shared__ V warp_results[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
    v = warp_reduce(v);
    __syncthreads();  // a previous call may still be reading warp_results
    if (lane == 0) warp_results[warp] = v;
    __syncthreads();
    return warp_reduce(lane < warps ? warp_results[lane] : identity);
}

// (max, sum of exp) of scale * x[j] for j < n: each thread folds its share of the row
// in one pass, then the block combines the threads' results.
// A row without a finite maximum gets s = NaN, so that everything computed from it is
// NaN, as in the reference, whose x - m holds inf - inf = NaN there: with a +inf in the
// row, combine's exp(inf - inf) already makes s NaN; with every value -inf (or no value
// at all) m stays lowest and s = 0, which would give log s = -inf.
// The thread reads four values per round before it uses any of them, so four memory
// reads are on their way at once: one read at a time, the loop would spend most of
// its time waiting for memory rather than moving data.
template <typename T> __device__ MaxSum<T> row_max_sum(const T* __restrict__ x, int n, T scale) {
    MaxSum<T> a = empty_max_sum<T>();
    const int step = blockDim.x;
    int j = threadIdx.x;
    for (; j + 3 * step < n; j += 4 * step) {
        const T v0 = x[j], v1 = x[j + step], v2 = x[j + 2 * step], v3 = x[j + 3 * step];
        push(a, scale * v0);
        push(a, scale * v1);
        push(a, scale * v2);
        push(a, scale * v3);
    }
    for (; j < n; j += step) push(a, scale * x[j]);  // the last values of the row
    a = block_reduce(a, empty_max_sum<T>());
    if (a.s == T(0)) a.s = quiet_nan<T>();
    return a;
}
