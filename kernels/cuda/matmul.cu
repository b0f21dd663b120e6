// matmul.cu: C = A B for row-major A (M, K), B (K, N), C (M, N),
//   C_mn = sum_k A_mk B_kn,
// by tiling through shared memory with register blocking. This is the teaching kernel:
// cuBLAS (cupy.matmul) is the fast path, built on the same ideas and many more.
//
// One block of 256 threads computes a 128 x 128 tile of C. It walks along k in steps
// of 8. Each step the threads first copy a 128 x 8 tile of A and an 8 x 128 tile of B
// from global into shared memory (every value is read from global memory once per
// block instead of once per thread); then each thread updates its own 8 x 8 sub-tile
// of C, held in registers. For one k it loads 8 values of A and 8 of B from shared
// memory and does 8 x 8 = 64 multiply-adds: this reuse of registers is what lets the
// arithmetic, not the memory traffic, set the speed.

constexpr int TILE_M = 128, TILE_N = 128, TILE_K = 8;  // the C tile of a block, and the k step
constexpr int SUB = 8;                                 // each thread's C sub-tile is SUB x SUB
constexpr int THREADS = (TILE_M / SUB) * (TILE_N / SUB);  // 16 x 16 = 256 threads per block

template <typename T>
__global__ void __launch_bounds__(THREADS)
matmul_tiled(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K) {
    // The A tile is stored transposed, a_tile[k][m], so that the 8 values of A a thread
    // needs for one k sit side by side, like its 8 values of B. The 4 extra columns
    // spread the transposing writes over all 32 shared-memory banks (without them
    // the 8 threads writing one m would all hit one bank).
    __shared__ T a_tile[TILE_K][TILE_M + 4];
    __shared__ T b_tile[TILE_K][TILE_N];

    const int tid = threadIdx.x;
    const int sub_row = (tid / (TILE_N / SUB)) * SUB;  // this thread's sub-tile, in the block's tile
    const int sub_col = (tid % (TILE_N / SUB)) * SUB;
    const int m0 = blockIdx.y * TILE_M, n0 = blockIdx.x * TILE_N;  // the block's tile, in C

    T acc[SUB][SUB];
#pragma unroll
    for (int i = 0; i < SUB; ++i)
#pragma unroll
        for (int j = 0; j < SUB; ++j) acc[i][j] = T(0);

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        // Copy the tiles, 1024 values each, 4 per thread; outside the matrices copy 0.
        // Consecutive threads read consecutive addresses: along a row of A (8 threads per
        // row of the tile), along a row of B (128 threads per row).
#pragma unroll
        for (int i = 0; i < TILE_M * TILE_K / THREADS; ++i) {
            const int r = tid / TILE_K + i * (THREADS / TILE_K), c = tid % TILE_K;
            const int m = m0 + r, k = k0 + c;
            a_tile[c][r] = (m < M && k < K) ? A[(long long)m * K + k] : T(0);
        }
#pragma unroll
        for (int i = 0; i < TILE_K * TILE_N / THREADS; ++i) {
            const int r = tid / TILE_N + i * (THREADS / TILE_N), c = tid % TILE_N;
            const int k = k0 + r, n = n0 + c;
            b_tile[r][c] = (k < K && n < N) ? B[(long long)k * N + n] : T(0);
        }
        __syncthreads();  // the tiles are complete

        // acc += (column k of the A sub-tile) x (row k of the B sub-tile), for each k:
        // an outer product of two 8-vectors, 64 multiply-adds from 16 loads.
#pragma unroll
        for (int k = 0; k < TILE_K; ++k) {
            T a[SUB], b[SUB];
#pragma unroll
            for (int i = 0; i < SUB; ++i) a[i] = a_tile[k][sub_row + i];
#pragma unroll
            for (int j = 0; j < SUB; ++j) b[j] = b_tile[k][sub_col + j];
#pragma unroll
            for (int i = 0; i < SUB; ++i)
#pragma unroll
                for (int j = 0; j < SUB; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();  // everyone is done with the tiles before the next copy
    }

    // Write the sub-tile, leaving out the part that lies outside C.
#pragma unroll
    for (int i = 0; i < SUB; ++i) {
        const int m = m0 + sub_row + i;
#pragma unroll
        for (int j = 0; j < SUB; ++j) {
            const int n = n0 + sub_col + j;
            if (m < M && n < N) C[(long long)m * N + n] = acc[i][j];
        }
    }
}
