// Tensor-core GEMM for f16/bf16 inputs with f32 accumulation (mma.sync m16n8k16, sm_80+):
// C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n]), A row-major, B row-major ([K, N])
// or, with TRANS_B, [N, K].
//
// A block computes a BM x BN tile with WM x WN warps; each warp a (BM/WM) x (BN/WN) tile.
// Two pipelining levels (ALCOP): a STAGES-deep cp.async ring of shared-memory tiles from
// global memory, and per 16-wide k step the next fragments loaded by ldmatrix while the
// current ones feed the tensor cores. Shared memory is XOR-swizzled by 16-byte chunks so
// that ldmatrix is free of bank conflicts. Edges are predicated (zero-filled loads, guarded
// stores), so any M and N work; K and (row-major) N need to be multiples of VEC.
//
// Split-K: with SPLIT_K > 1, blockIdx.z is batch * SPLIT_K + slice; each slice sums its own
// contiguous range of k tiles and writes raw f32 partials to the workspace W[slice][batch][M][N];
// gemm::splitk_reduce then adds the slices in a fixed order (deterministic) and applies the
// epilogue.
#pragma once
#include "tessera/common.cuh"

namespace tessera {
namespace gemm {

/// Physical 16-byte chunk of logical chunk `c` in row `r` of a tile whose rows hold `C` chunks.
template <int C>
__device__ __forceinline__ int swizzle(int r, int c) {
  if constexpr (C >= 8) return c ^ (r & 7);
  else if constexpr (C == 4) return c ^ ((r >> 1) & 3);
  else return c;
}

/// Copies VEC elements of 2 bytes from global to shared memory; `valid` false writes zeros.
template <int VEC>
__device__ __forceinline__ void copy(void* smem, const void* gmem, bool valid) {
  if constexpr (VEC >= 2) {
    unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    int src_bytes = valid ? VEC * 2 : 0;
    if constexpr (VEC == 8)
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
    else
      asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(s), "l"(gmem), "n"(VEC * 2), "r"(src_bytes));
  } else {
    *static_cast<unsigned short*>(smem) = valid ? *static_cast<const unsigned short*>(gmem) : 0;
  }
}

__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* p) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* p) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

template <bool BF16>
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  if constexpr (BF16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Where element (m, k) of a row-major [M, K] A lives; `ok` false outside the matrix.
/// Implicit-GEMM convolutions substitute their own map (an im2col view of the input). A map
/// splits the lookup in two: row(m) does the work that depends on the row only (a block's rows
/// are fixed for its whole k loop, so the kernel computes them once), at(row, k) the rest.
template <int M, int K>
struct DenseA {
  struct Row {
    int m;
  };
  __device__ __forceinline__ static Row row(int m) { return {m}; }
  template <class T>
  __device__ __forceinline__ static const T* at(const T* a, const Row& row, int k, bool& ok) {
    ok = row.m < M && k < K;
    return a + (ok ? (long long)row.m * K + k : 0);
  }
};

/// This block's tile coordinates under block rasterisation: GROUP_M block-rows share each
/// block-column's B tiles in L2.
template <int M, int N, int BM, int BN, int GROUP_M>
__device__ __forceinline__ void raster(int& bm, int& bn) {
  constexpr int kGridM = (M + BM - 1) / BM, kGridN = (N + BN - 1) / BN;
  const int pid = blockIdx.x;
  const int first_m = pid / (GROUP_M * kGridN) * GROUP_M;
  const int rows_in_group = (kGridM - first_m) < GROUP_M ? (kGridM - first_m) : GROUP_M;
  bm = first_m + (pid % (GROUP_M * kGridN)) % rows_in_group;
  bn = (pid % (GROUP_M * kGridN)) / rows_in_group;
}

/// Stores accumulators (v0, v1) of columns (col, col + 1) of `row` through the epilogue, with
/// those columns' values `cols` = epilogue.cols(col): one aligned pair store where possible, else
/// element by element; outside the matrix nothing.
/// `C` is the batch's first element; its rows lie LD elements apart (N: dense).
template <int M, int N, class Out, class Epilogue, long long LD = N>
__device__ __forceinline__ void store_pair(Out* C, int row, int col, long long batch, float v0, float v1,
                                           const Epilogue& epilogue, const typename Epilogue::Cols& cols) {
  if (row >= M) return;
  Out* dst = C + (long long)row * LD + col;
  if (N % 2 == 0 && col + 1 < N) {
    Pack<Out, 2> p;
    p.v[0] = from_float<Out>(epilogue.apply(v0, cols, 0, batch, row, col));
    p.v[1] = from_float<Out>(epilogue.apply(v1, cols, 1, batch, row, col + 1));
    *reinterpret_cast<Pack<Out, 2>*>(dst) = p;
  } else {
    if (col < N) dst[0] = from_float<Out>(epilogue.apply(v0, cols, 0, batch, row, col));
    if (col + 1 < N) dst[1] = from_float<Out>(epilogue.apply(v1, cols, 1, batch, row, col + 1));
  }
}

/// The shared-memory level of the pipeline: a STAGES-deep cp.async ring over `tiles` k tiles.
/// load(stage, kt) issues tile kt's copies into ring slot `stage`; compute(stage) consumes the
/// slot holding the current tile once it has landed. STAGES - 1 tiles are in flight while one
/// is computed.
template <int STAGES, class Load, class Compute>
__device__ __forceinline__ void pipeline(int tiles, Load&& load, Compute&& compute) {
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < tiles) load(s, s);
    commit();
  }
  for (int kt = 0; kt < tiles; ++kt) {
    wait<STAGES - 2>();
    __syncthreads();
    const int next = kt + STAGES - 1;
    if (next < tiles) load(next % STAGES, next);
    commit();
    compute(kt % STAGES);
  }
  wait<0>();
}

/// Sets every accumulator to zero.
template <int MT, int NT>
__device__ __forceinline__ void zero(float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
}

/// Where a GEMM's output lies: batch b's first element at batch(b), rows kRow elements apart.
/// Dense [BATCH][M][N] here; a generated struct of the same form (kSplit > 0: the batch in two
/// levels, b % kSplit inner) writes it strided, e.g. attention's context straight into
/// [batch, tokens, heads, size].
template <int M, int N>
struct DenseOut {
  static constexpr long long kRow = N;
  static constexpr int kSplit = 0;
  __device__ static long long batch(long long b) { return b * M * N; }
};

/// Second kernel of a split-K GEMM: C = epilogue(sum over slices of W[slice]), for BATCH x M x N
/// outputs, grid-stride over all of them, stored where At says.
template <class Out, int M, int N, int BATCH, int SPLIT_K, class Epilogue, class At = DenseOut<M, N>>
__device__ __forceinline__ void splitk_reduce(const float* __restrict__ W, Out* __restrict__ C,
                                              const Epilogue& epilogue) {
  constexpr long long kTotal = (long long)BATCH * M * N;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < kTotal;
       i += (long long)gridDim.x * blockDim.x) {
    float v = 0.0f;
#pragma unroll
    for (int s = 0; s < SPLIT_K; ++s) v += W[s * kTotal + i];
    const long long b = i / ((long long)M * N);
    const int rem = (int)(i - b * M * N);
    C[At::batch(b) + (long long)(rem / N) * At::kRow + rem % N] = from_float<Out>(epilogue(v, b, rem / N, rem % N));
  }
}

}  // namespace gemm

/// The kernel body. `Epilogue` maps (accumulator, batch, row, col) to the stored float.
/// `W` is the split-K workspace (unused when SPLIT_K is 1).
template <class In, class Out, int M, int N, int K, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int STAGES,
          int VEC, int GROUP_M, int SPLIT_K, class Epilogue, class AMap = gemm::DenseA<M, K>>
__device__ __forceinline__ void gemm_tc(const In* __restrict__ A, const In* __restrict__ B, Out* __restrict__ C,
                                        const Epilogue& epilogue, float* __restrict__ W = nullptr) {
  constexpr bool kBf16 = IsBf16<In>::value;
  constexpr int kThreads = WM * WN * 32;
  constexpr int WTM = BM / WM, WTN = BN / WN;  // warp tile
  constexpr int MT = WTM / 16, NT = WTN / 8;    // mma tiles per warp
  constexpr int kChunksK = BK / 8;              // 16-byte chunks per row of a [*, BK] tile
  constexpr int kChunksN = BN / 8;              // per row of a [BK, BN] tile
  constexpr int kTileA = BM * BK, kTileB = BK * BN;  // elements per stage
  constexpr int kTilesK = (K + BK - 1) / BK;
  constexpr int kTilesPerSlice = (kTilesK + SPLIT_K - 1) / SPLIT_K;

  extern __shared__ __align__(128) unsigned char smem_raw[];
  In* sA = reinterpret_cast<In*>(smem_raw);
  In* sB = sA + STAGES * kTileA;

  int bm, bn;
  gemm::raster<M, N, BM, BN, GROUP_M>(bm, bn);
  const int slice = SPLIT_K > 1 ? blockIdx.z % SPLIT_K : 0;
  const long long batch = SPLIT_K > 1 ? blockIdx.z / SPLIT_K : blockIdx.z;
  const int kt_begin = slice * kTilesPerSlice;  // this slice's k tiles: [kt_begin, kt_begin + KT)
  const int KT = kTilesK - kt_begin < kTilesPerSlice ? kTilesK - kt_begin : kTilesPerSlice;
  A += batch * (long long)M * K;
  B += batch * (long long)K * N;
  C += batch * (long long)M * N;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp / WN, wn = warp % WN;

  // The A rows this thread loads are the same at every k tile: their row-only address work
  // (an im2col map's pixel decomposition) is done once, when it fits in a few registers.
  constexpr int kVecsA = BM * BK / VEC, kLoadsA = (kVecsA + kThreads - 1) / kThreads;
  constexpr bool kCacheRows = kLoadsA <= 8;
  typename AMap::Row rows[kCacheRows ? kLoadsA : 1];
  if constexpr (kCacheRows) {
#pragma unroll
    for (int j = 0; j < kLoadsA; ++j) rows[j] = AMap::row(bm * BM + (tid + j * kThreads) / (BK / VEC));
  }

  auto load_tile = [&](int stage, int kt) {
    const int k0 = (kt_begin + kt) * BK;
    In* a = sA + stage * kTileA;
#pragma unroll 8
    for (int j = 0; j < kLoadsA; ++j) {
      const int i = tid + j * kThreads;
      if (kVecsA % kThreads != 0 && i >= kVecsA) break;
      const int r = i / (BK / VEC), col = (i % (BK / VEC)) * VEC;
      bool ok;
      const In* src;
      if constexpr (kCacheRows) src = AMap::at(A, rows[j], k0 + col, ok);
      else src = AMap::at(A, AMap::row(bm * BM + r), k0 + col, ok);
      In* dst = a + r * BK + gemm::swizzle<kChunksK>(r, col / 8) * 8 + col % 8;
      gemm::copy<VEC>(dst, src, ok);
    }
    In* b = sB + stage * kTileB;
    if constexpr (TRANS_B) {  // B is [N, K]: tile rows are n, like A
      for (int i = tid; i < BN * BK / VEC; i += kThreads) {
        const int r = i / (BK / VEC), col = (i % (BK / VEC)) * VEC;
        const int gn = bn * BN + r, gk = k0 + col;
        const bool ok = gn < N && gk < K;
        In* dst = b + r * BK + gemm::swizzle<kChunksK>(r, col / 8) * 8 + col % 8;
        gemm::copy<VEC>(dst, B + (ok ? (long long)gn * K + gk : 0), ok);
      }
    } else {  // B is [K, N]: tile rows are k
      for (int i = tid; i < BK * BN / VEC; i += kThreads) {
        const int r = i / (BN / VEC), col = (i % (BN / VEC)) * VEC;
        const int gk = k0 + r, gn = bn * BN + col;
        const bool ok = gk < K && gn < N;
        In* dst = b + r * BN + gemm::swizzle<kChunksN>(r, col / 8) * 8 + col % 8;
        gemm::copy<VEC>(dst, B + (ok ? (long long)gk * N + gn : 0), ok);
      }
    }
  };

  float acc[MT][NT][4];
  gemm::zero(acc);

  // Fragments of one 16-wide k step.
  auto load_fragments = [&](int stage, int ks, unsigned (&fa)[MT][4], unsigned (&fb)[NT / 2][4]) {
    const In* a = sA + stage * kTileA;
    const In* b = sB + stage * kTileB;
#pragma unroll
    for (int i = 0; i < MT; ++i) {
      const int r = wm * WTM + i * 16 + lane % 16;
      const int c = ks * 2 + lane / 16;
      gemm::ldmatrix_x4(fa[i], a + r * BK + gemm::swizzle<kChunksK>(r, c) * 8);
    }
#pragma unroll
    for (int j = 0; j < NT / 2; ++j) {
      if constexpr (TRANS_B) {
        const int r = wn * WTN + j * 16 + (lane & 7) + ((lane >> 4) << 3);
        const int c = ks * 2 + ((lane >> 3) & 1);
        gemm::ldmatrix_x4(fb[j], b + r * BK + gemm::swizzle<kChunksK>(r, c) * 8);
      } else {
        const int r = ks * 16 + (lane & 7) + (((lane >> 3) & 1) << 3);
        const int c = (wn * WTN + j * 16) / 8 + (lane >> 4);
        gemm::ldmatrix_x4_trans(fb[j], b + r * BN + gemm::swizzle<kChunksN>(r, c) * 8);
      }
    }
  };

  gemm::pipeline<STAGES>(KT, load_tile, [&](int stage) {
    unsigned fa[2][MT][4], fb[2][NT / 2][4];
    load_fragments(stage, 0, fa[0], fb[0]);
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      if (ks + 1 < BK / 16) load_fragments(stage, ks + 1, fa[(ks + 1) % 2], fb[(ks + 1) % 2]);
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
          gemm::mma<kBf16>(acc[i][j], fa[ks % 2][i], fb[ks % 2][j / 2][(j % 2) * 2], fb[ks % 2][j / 2][(j % 2) * 2 + 1]);
    }
  });

  // Each thread holds pairs of adjacent columns in rows lane/4 and lane/4 + 8.
  [[maybe_unused]] float* partial = nullptr;
  if constexpr (SPLIT_K > 1) partial = W + ((long long)slice * (gridDim.z / SPLIT_K) + batch) * M * N;
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = bm * BM + wm * WTM + i * 16 + lane / 4 + half * 8;
        const int col = bn * BN + wn * WTN + j * 8 + (lane % 4) * 2;
        const float v0 = acc[i][j][half * 2], v1 = acc[i][j][half * 2 + 1];
        if constexpr (SPLIT_K > 1) {
          if (row >= M) continue;
          float* dst = partial + (long long)row * N + col;
          if (N % 2 == 0 && col + 1 < N) {
            *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
          } else {
            if (col < N) dst[0] = v0;
            if (col + 1 < N) dst[1] = v1;
          }
        } else {
          gemm::store_pair<M, N>(C, row, col, batch, v0, v1, epilogue, epilogue.cols(col));
        }
      }
}

}  // namespace tessera
