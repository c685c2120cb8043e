// SIMT GEMM on the CUDA cores (f32 FMA): C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n])
// with A stored [M, K] or (TRANS_A) [K, M] and B stored [K, N] or (TRANS_B) [N, K].
//
// The classic register-blocked SGEMM. A block of (BM / TM) x (BN / TN) threads computes a
// BM x BN tile; its warps form a WARPS_M x (warps / WARPS_M) grid of warp tiles, and each
// thread a TM x TN register tile made of (TM / 4) x (TN / 4) sub-tiles of 4 x 4, strided by the
// span of the warp's lanes along m and n. Per k, a thread so reads its A column and B row as
// float4s from shared memory, where the lanes of a warp read the same or consecutive float4s:
// broadcasts, free of bank conflicts.
//
// Shared memory holds both operands k-major, A as [BK][BM] and B as [BK][BN], in two stages.
// The k loop is double buffered at both levels: the next k tile's global loads go into
// registers while the current stage is computed, then into the other stage (one barrier per
// k tile); within a tile the next k's fragments load while the current k's FMAs run. An
// operand stored with k contiguous (A, or, with TRANS_B, B) is transposed on its way into
// shared memory, its rows there padded by 4 floats so that those column stores spread over
// the banks.
//
// Global loads are float4 where the operand's rows (its contiguous extent) are a multiple of 4
// floats, scalar otherwise (decided at compile time). Loads past the matrix read zeros and
// stores past it are skipped, so any M, N, K work; loads along a dimension the tiles divide
// exactly skip the test. Stores of 4 consecutive outputs are vectorised when N is a multiple
// of 4. A batch's matrices follow each other (blockIdx.z is the batch).
#pragma once
#include "tessera/common.cuh"

namespace tessera {
namespace simt {

/// One operand's k tile on its way from global memory through registers into shared memory.
/// The operand is a ROWS x COLS row-major matrix (COLS contiguous); a tile is TR x TC of it and
/// its k axis runs down the rows (K_ROWS, TR = BK) or along the columns (TC = BK). Shared memory
/// holds the tile k-major with rows of LD floats: as it is when K_ROWS, else transposed. Each
/// of the THREADS threads moves chunks of VEC consecutive elements (VEC = 4: one float4).
template <int THREADS, int ROWS, int COLS, int TR, int TC, bool K_ROWS, int VEC, int LD>
struct TileLoad {
  static_assert(VEC == 1 || (VEC == 4 && COLS % 4 == 0 && TC % 4 == 0), "float4 chunks need aligned rows");
  static constexpr int kChunksPerRow = TC / VEC, kChunks = TR * kChunksPerRow;
  static constexpr int kPerThread = (kChunks + THREADS - 1) / THREADS;
  // Tiles start at multiples of their extent, so a dimension they divide needs no bound checks.
  static constexpr bool kRowsExact = ROWS % TR == 0, kColsExact = COLS % TC == 0;
  static constexpr bool kAllLive = kChunks % THREADS == 0;

  float v[kPerThread][VEC];

  /// Whether chunk i of this thread exists (the last round of a tile may be partial).
  __device__ __forceinline__ static bool live(int tid, int i) { return kAllLive || tid + i * THREADS < kChunks; }
  /// Row and column of chunk i of this thread within the tile. Where the threads cover whole
  /// rows per round, chunk i lies i * kRowStep rows below chunk 0: constant offsets from one
  /// address, and one column test for all of them.
  static constexpr int kRowStep = THREADS % kChunksPerRow == 0 ? THREADS / kChunksPerRow : 0;
  __device__ __forceinline__ static int row_of(int tid, int i) {
    return kRowStep ? tid / kChunksPerRow + i * kRowStep : (tid + i * THREADS) / kChunksPerRow;
  }
  __device__ __forceinline__ static int col_of(int tid, int i) {
    return (kRowStep ? tid % kChunksPerRow : (tid + i * THREADS) % kChunksPerRow) * VEC;
  }

  /// Loads the tile whose first element is (row0, col0) of `g` into registers (zeros outside).
  __device__ __forceinline__ void load(const float* __restrict__ g, int row0, int col0, int tid) {
    const float* tile = g + ((long long)row0 * COLS + col0);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int r = row_of(tid, i), c = col_of(tid, i);
      const float* p = tile + ((long long)r * COLS + c);
      // COLS % VEC == 0 and c % VEC == 0: a chunk is wholly inside or wholly outside.
      const bool ok = live(tid, i) && (kRowsExact || row0 + r < ROWS) && (kColsExact || col0 + c < COLS);
      if constexpr (VEC == 4) {
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (ok) x = __ldg(reinterpret_cast<const float4*>(p));
        v[i][0] = x.x, v[i][1] = x.y, v[i][2] = x.z, v[i][3] = x.w;
      } else {
        v[i][0] = ok ? __ldg(p) : 0.0f;
      }
    }
  }

  /// Writes the registers into the stage `s` ([BK][LD] floats).
  __device__ __forceinline__ void store(float* s, int tid) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      if (!live(tid, i)) continue;
      const int r = row_of(tid, i), c = col_of(tid, i);
      if constexpr (K_ROWS && VEC == 4) {
        *reinterpret_cast<float4*>(s + r * LD + c) = make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
      } else {
#pragma unroll
        for (int j = 0; j < VEC; ++j) {
          if constexpr (K_ROWS) s[r * LD + c + j] = v[i][j];
          else s[(c + j) * LD + r] = v[i][j];
        }
      }
    }
  }
};

/// TM x TN products of one k: a[] (TM rows of A's column) times b[] (TN columns of B's row).
template <int TM, int TN>
__device__ __forceinline__ void outer_product(float (&acc)[TM][TN], const float (&a)[TM], const float (&b)[TN]) {
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
}

/// Reads N values as N / 4 float4s, the q-th at s[q * STRIDE] (the sub-tiles of a thread).
template <int N, int STRIDE>
__device__ __forceinline__ void read_fragment(float (&f)[N], const float* s) {
#pragma unroll
  for (int q = 0; q < N / 4; ++q) {
    const float4 x = *reinterpret_cast<const float4*>(s + q * STRIDE);
    f[q * 4 + 0] = x.x, f[q * 4 + 1] = x.y, f[q * 4 + 2] = x.z, f[q * 4 + 3] = x.w;
  }
}

/// Stores the thread's tile through the epilogue: rows row0 + q * ROW_STRIDE + i and columns
/// col0 + q * COL_STRIDE + j (q a sub-tile, i, j < 4 within it); 4 columns at once where N
/// allows aligned stores, nothing outside the matrix.
template <class Out, int M, int N, int TM, int TN, int ROW_STRIDE, int COL_STRIDE, class Epilogue>
__device__ __forceinline__ void store_tile(Out* __restrict__ C, const float (&acc)[TM][TN], long long batch, int row0,
                                           int col0, const Epilogue& epilogue) {
#pragma unroll
  for (int qm = 0; qm < TM / 4; ++qm)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int row = row0 + qm * ROW_STRIDE + i;
      if (row >= M) continue;
      Out* dst = C + (long long)row * N;
#pragma unroll
      for (int qn = 0; qn < TN / 4; ++qn) {
        const int col = col0 + qn * COL_STRIDE;
        const float* v = &acc[qm * 4 + i][qn * 4];
        if constexpr (N % 4 == 0) {
          if (col >= N) continue;  // the 4 columns are wholly inside or wholly outside
          Pack<Out, 4> p;
#pragma unroll
          for (int j = 0; j < 4; ++j) p.v[j] = from_float<Out>(epilogue(v[j], batch, row, col + j));
          *reinterpret_cast<Pack<Out, 4>*>(dst + col) = p;
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (col + j < N) dst[col + j] = from_float<Out>(epilogue(v[j], batch, row, col + j));
        }
      }
    }
}

}  // namespace simt

template <class Out, int M, int N, int K, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM, int TN,
          int WARPS_M, class Epilogue>
__device__ __forceinline__ void gemm_simt(const float* __restrict__ A, const float* __restrict__ B, Out* __restrict__ C,
                                          const Epilogue& epilogue) {
  static_assert(TM % 4 == 0 && TN % 4 == 0 && BK % 4 == 0, "4 x 4 sub-tiles and float4 k chunks");
  constexpr int kThreads = (BM / TM) * (BN / TN), kWarps = kThreads / 32, kWarpsN = kWarps / WARPS_M;
  constexpr int kWarpTileM = BM / WARPS_M, kWarpTileN = BN / kWarpsN;
  constexpr int kLanesM = kWarpTileM / TM, kLanesN = kWarpTileN / TN;  // a warp's lane grid
  static_assert(kThreads % 32 == 0 && kWarps % WARPS_M == 0 && kLanesM * kLanesN == 32, "warp tiling");
  // Operand rows as stored: A [M, K] (TRANS_A: [K, M]), B [K, N] (TRANS_B: [N, K]).
  constexpr int kRowsA = TRANS_A ? K : M, kColsA = TRANS_A ? M : K;
  constexpr int kRowsB = TRANS_B ? N : K, kColsB = TRANS_B ? K : N;
  constexpr int kLdA = BM + (TRANS_A ? 0 : 4), kLdB = BN + (TRANS_B ? 4 : 0);
  using LoadA = simt::TileLoad<kThreads, kRowsA, kColsA, TRANS_A ? BK : BM, TRANS_A ? BM : BK, TRANS_A,
                               kColsA % 4 == 0 ? 4 : 1, kLdA>;
  using LoadB = simt::TileLoad<kThreads, kRowsB, kColsB, TRANS_B ? BN : BK, TRANS_B ? BK : BN, !TRANS_B,
                               kColsB % 4 == 0 ? 4 : 1, kLdB>;
  constexpr int kTilesK = (K + BK - 1) / BK;
  __shared__ __align__(16) float sA[2][BK][kLdA];
  __shared__ __align__(16) float sB[2][BK][kLdB];

  const long long batch = blockIdx.z;
  A += batch * (long long)M * K;
  B += batch * (long long)K * N;
  C += batch * (long long)M * N;
  constexpr int kGridN = (N + BN - 1) / BN;
  const int m0 = blockIdx.x / kGridN * BM, n0 = blockIdx.x % kGridN * BN;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  // The thread's first sub-tile within the block tile; the others follow kLanesM * 4 rows and
  // kLanesN * 4 columns apart.
  const int tm0 = warp / kWarpsN * kWarpTileM + lane / kLanesN * 4;
  const int tn0 = warp % kWarpsN * kWarpTileN + lane % kLanesN * 4;

  // Where k tile kt starts in each operand, as (row, column) of its stored matrix.
  auto a_row = [&](int kt) { return TRANS_A ? kt * BK : m0; };
  auto a_col = [&](int kt) { return TRANS_A ? m0 : kt * BK; };
  auto b_row = [&](int kt) { return TRANS_B ? n0 : kt * BK; };
  auto b_col = [&](int kt) { return TRANS_B ? kt * BK : n0; };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  LoadA load_a;
  LoadB load_b;
  load_a.load(A, a_row(0), a_col(0), tid);
  load_b.load(B, b_row(0), b_col(0), tid);
  load_a.store(&sA[0][0][0], tid);
  load_b.store(&sB[0][0][0], tid);
  __syncthreads();

#pragma unroll 1
  for (int kt = 0; kt < kTilesK; ++kt) {
    const int stage = kt & 1;
    const bool more = kt + 1 < kTilesK;
    // The next tile's loads are in flight while this one is computed.
    if (more) {
      load_a.load(A, a_row(kt + 1), a_col(kt + 1), tid);
      load_b.load(B, b_row(kt + 1), b_col(kt + 1), tid);
    }
    const float* sa = &sA[stage][0][tm0];
    const float* sb = &sB[stage][0][tn0];
    float a[2][TM], b[2][TN];
    simt::read_fragment<TM, kLanesM * 4>(a[0], sa);
    simt::read_fragment<TN, kLanesN * 4>(b[0], sb);
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      if (kk + 1 < BK) {
        simt::read_fragment<TM, kLanesM * 4>(a[(kk + 1) & 1], sa + (kk + 1) * kLdA);
        simt::read_fragment<TN, kLanesN * 4>(b[(kk + 1) & 1], sb + (kk + 1) * kLdB);
      }
      simt::outer_product(acc, a[kk & 1], b[kk & 1]);
    }
    // The other stage was last read before the previous barrier: free to overwrite.
    if (more) {
      load_a.store(&sA[stage ^ 1][0][0], tid);
      load_b.store(&sB[stage ^ 1][0][0], tid);
      __syncthreads();
    }
  }
  simt::store_tile<Out, M, N, TM, TN, kLanesM * 4, kLanesN * 4>(C, acc, batch, m0 + tm0, n0 + tn0, epilogue);
}

}  // namespace tessera
