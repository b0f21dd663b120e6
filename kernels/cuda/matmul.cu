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
//
// Shared memory is split into 32 banks, 4 bytes wide; a warp's load takes one pass per
// 128 bytes it moves when its threads' addresses spread evenly over the banks, and more
// passes when several addresses fall into one bank (a "bank conflict"). The layouts below
// are chosen so that every load and store of the tiles takes the fewest passes.

constexpr int TILE_M = 128, TILE_N = 128, TILE_K = 8;  // the C tile of a block, and the k step
constexpr int SUB = 8;                                 // each thread's C sub-tile is SUB x SUB
constexpr int THREADS = (TILE_M / SUB) * (TILE_N / SUB);  // 16 x 16 = 256 threads per block

// Values of T that one 16-byte load moves: 4 floats or 2 doubles (a "run").
template <typename T> __device__ constexpr int vec() { return 16 / sizeof(T); }

// out[0 .. vec) = p[0 .. vec), one 16-byte load from 16-byte aligned shared memory.
template <typename T> __device__ __forceinline__ void load_run(const T* p, T* out) {
    struct alignas(16) Run {
        T v[vec<T>()];
    };
    const Run run = *reinterpret_cast<const Run*>(p);
#pragma unroll
    for (int q = 0; q < vec<T>(); ++q) out[q] = run.v[q];
}

// The tile column of the j-th of a thread's SUB columns (tx: the thread's column of
// threads, 0..15). Its columns come in runs (one 16-byte load each), and the 16 threads of
// a row of threads take consecutive runs: one load instruction of the warp then covers
// 16 x 16 = 256 consecutive bytes, every bank twice, 2 passes, the least for 256 bytes.
// floats: columns 4 tx + j and 64 + 4 tx + j, j < 4; doubles: 2 tx + j, 32 + 2 tx + j, ...
// (With 8 consecutive columns, 8 tx + j, the threads' runs would lie 32 (64) bytes apart,
// reach half (a quarter) of the banks and take 4 (8) passes.)
template <typename T> __device__ __forceinline__ int sub_column(int tx, int j) {
    constexpr int runs = SUB / vec<T>();  // a thread's runs
    return (j / vec<T>()) * (TILE_N / runs) + tx * vec<T>() + j % vec<T>();
}

template <typename T>
__global__ void __launch_bounds__(THREADS)
matmul_tiled(const T* __restrict__ A, const T* __restrict__ B, T* __restrict__ C, int M, int N, int K) {
    // The A tile is stored transposed, a_tile[k][m], so that the 8 values of A a thread
    // needs for one k sit side by side, like its values of B. A warp writes it 8 k by 4 m
    // (below); the PAD = 16 bytes of extra columns shift each k row by 4 banks, so that
    // these 32 writes land in 32 different banks (float), or the 16 writes of each half
    // warp in 16 different bank pairs (double, 8 bytes = 2 banks). Without the padding,
    // the 8 threads writing one m would all hit one bank.
    constexpr int PAD = vec<T>();
    __shared__ __align__(16) T a_tile[TILE_K][TILE_M + PAD];
    __shared__ __align__(16) T b_tile[TILE_K][TILE_N];

    const int tid = threadIdx.x;
    const int tx = tid % (TILE_N / SUB);                // this thread's columns: sub_column(tx, j)
    const int sub_row = (tid / (TILE_N / SUB)) * SUB;  // and its 8 rows, in the block's tile
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
        // an outer product of two 8-vectors, 64 multiply-adds from 16 values loaded, in runs.
        // (The A values are the same for the 16 threads of a row: one load serves them all.)
#pragma unroll
        for (int k = 0; k < TILE_K; ++k) {
            T a[SUB], b[SUB];
#pragma unroll
            for (int r = 0; r < SUB; r += vec<T>()) {
                load_run(&a_tile[k][sub_row + r], a + r);
                load_run(&b_tile[k][sub_column<T>(tx, r)], b + r);
            }
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
            const int n = n0 + sub_column<T>(tx, j);
            if (m < M && n < N) C[(long long)m * N + n] = acc[i][j];
        }
    }
}
