// Skinny GEMM (M <= 64) for f16/bf16 inputs with f32 accumulation, streaming B once:
// C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n]), A row-major [M, K], B row-major [K, N]
// or, with TRANS_B, [N, K].
//
// With few rows the GEMM is bound by reading B (K x N elements) from DRAM, not by arithmetic;
// tile-based kernels lose bandwidth to their pipeline fill, their padding of M to a 64- or
// 128-row tile and, for split-K, the second kernel. Here every warp owns WN columns of B and
// all of A's rows (MT = ceil(M / 16) m16 tiles, rows past M zero) and walks the block's k
// range in steps of 32 with 16-byte (TN = 8 columns) or 8-byte (TN = 4) loads straight from global
// memory into registers, UNROLL steps in flight, then multiplies on the tensor cores
// (mma.sync m16n8k16; no shared memory in the main loop).
//
// The loads are coalesced because mma's k (and, for a [K, N] B, its n) order is free: within a
// step, thread (g, c) = (lane / 4, lane % 4) loads k = 8c .. 8c + 7, which serve the two k16
// MMAs as the fragment positions {2c, 2c + 1, 2c + 8, 2c + 9} of each (the same permutation on
// A and B, so the sum is unchanged):
// - TRANS_B ([N, K]): one 16-byte load of row n0 + 8j + g per n8 tile j holds exactly the four
//   B fragment registers of both MMAs; A's rows g and g + 8 of each m16 tile likewise.
// - [K, N]: the thread loads rows k of TN consecutive columns n0 + TN g .. + TN - 1; pairs of
//   rows are interleaved with byte permutes into fragment registers, and MMA t (t < TN) takes
//   column TN g + t as its n = g. Output column 2c + e of MMA t is then n0 + TN (2c + e) + t:
//   each thread ends with 2 TN consecutive columns of its rows.
//
// Split-K across the blocks of a thread-block cluster (SPLIT <= 8 blocks along x, sm_90): each
// block reduces a slice of the k steps, leaves its partial tile in shared memory, and after a
// cluster barrier block r sums slice r / SPLIT of the tile's columns over every block's shared
// memory (distributed shared memory), applies the epilogue and stores. No workspace, no second
// kernel. SPLIT 1 does the same within the block.
#pragma once
#include "tessera/gemm_tc.cuh"

namespace tessera {
namespace skinny {

/// TN 2-byte elements from global memory (16 or 8 bytes, aligned), or zeros. STREAM: read once
/// (no L1 allocation). Not volatile: the compiler may hoist the next steps' loads.
template <int TN, bool STREAM>
struct Chunk {
  unsigned w[TN / 2];
  __device__ __forceinline__ void load(const void* p, bool valid) {
    if constexpr (TN == 8) {
      if (valid) {
        if constexpr (STREAM) {
          asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                       : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3]) : "l"(p));
        } else {
          asm("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(w[0]), "=r"(w[1]), "=r"(w[2]), "=r"(w[3]) : "l"(p));
        }
      } else {
        w[0] = w[1] = w[2] = w[3] = 0;
      }
    } else {
      static_assert(TN == 4 && STREAM, "chunks of 8 elements, or streamed chunks of 4 (B's, 32-column warps)");
      if (valid) {
        asm("ld.global.nc.L1::no_allocate.v2.u32 {%0, %1}, [%2];\n" : "=r"(w[0]), "=r"(w[1]) : "l"(p));
      } else {
        w[0] = w[1] = 0;
      }
    }
  }
  /// Element pair (i of x, i of y) as one register: x's element low, y's high.
  __device__ __forceinline__ static unsigned interleave(const Chunk& x, const Chunk& y, int i) {
    return __byte_perm(x.w[i / 2], y.w[i / 2], i % 2 ? 0x7632 : 0x5410);
  }
};

__device__ __forceinline__ unsigned smem_addr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

/// Two floats at `p`'s offset in the shared memory of cluster block `rank`.
__device__ __forceinline__ float2 load_cluster(const float* p, unsigned rank) {
  float2 v{0.0f, 0.0f};
#if TESSERA_SM90
  asm volatile(
      "{\n .reg .b32 remote;\n mapa.shared::cluster.u32 remote, %2, %3;\n"
      " ld.shared::cluster.v2.f32 {%0, %1}, [remote];\n}\n"
      : "=f"(v.x), "=f"(v.y)
      : "r"(smem_addr(p)), "r"(rank)
      : "memory");
#else
  (void)p, (void)rank;
  __trap();  // no clusters before sm_90 (an export built for older GPUs too)
#endif
  return v;
}

__device__ __forceinline__ void sync_cluster() {
#if TESSERA_SM90
  asm volatile("barrier.cluster.arrive.release;\n barrier.cluster.wait.acquire;\n" ::: "memory");
#else
  __trap();
#endif
}

}  // namespace skinny

/// The kernel body: block x = tile * SPLIT + slice (a cluster is one tile's SPLIT slices),
/// z = batch. WARPS warps of WN columns each make a tile of WARPS * WN columns. Dynamic shared
/// memory: M * WARPS * WN floats (the block's partial tile).
template <class In, class Out, int M, int N, int K, int BATCH, bool TRANS_B, int WARPS, int WN, int UNROLL, int SPLIT,
          class Epilogue>
__device__ __forceinline__ void gemm_skinny(const In* __restrict__ A, const In* __restrict__ B, Out* __restrict__ C,
                                            const Epilogue& epilogue) {
  constexpr bool kBf16 = IsBf16<In>::value;
  constexpr int MT = (M + 15) / 16, NT = WN / 8, BN = WARPS * WN;
  constexpr int TN = TRANS_B ? 8 : WN / 8;  // [K, N]: columns per thread and row (NT MMAs)
  constexpr int kSteps = (K + 31) / 32, kSlice = (kSteps + SPLIT - 1) / SPLIT;
  static_assert(M <= 64 && WN % 32 == 0 && WN <= 64 && K % 8 == 0, "shape");
  extern __shared__ __align__(16) float partial[];  // [M][BN]

  const int slice = blockIdx.x % SPLIT, tile = blockIdx.x / SPLIT;
  const long long b = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int n0 = tile * BN + warp * WN;
  const In* a_rows = A + b * M * K;
  const In* b_mat = B + b * (long long)K * N;

  float acc[MT][NT][4];
  gemm::zero(acc);

  const int first = slice * kSlice, last = first + kSlice < kSteps ? first + kSlice : kSteps;
  for (int step = first; step < last; step += UNROLL) {
    // Loads of UNROLL steps first (all in flight), then their MMAs.
    skinny::Chunk<8, false> qa[UNROLL][MT][2];
    skinny::Chunk<TN, true> qb[UNROLL][TRANS_B ? NT : 8];
#pragma unroll
    for (int u = 0; u < UNROLL; ++u) {
      const int k = (step + u) * 32 + 8 * c;  // this thread's 8 k of the step
      const bool k_ok = step + u < last && k < K;
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int row = 16 * i + 8 * h + g;
          qa[u][i][h].load(a_rows + (long long)(row < M ? row : 0) * K + (k_ok ? k : 0), k_ok && row < M);
        }
      if constexpr (TRANS_B) {
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          const int n = n0 + 8 * j + g;
          qb[u][j].load(b_mat + (long long)(n < N ? n : 0) * K + (k_ok ? k : 0), k_ok && n < N);
        }
      } else {
        const int n = n0 + TN * g;  // N % 8 == 0: a chunk lies wholly inside or outside
#pragma unroll
        for (int r = 0; r < 8; ++r) {
          const bool ok = k_ok && n < N && k + r < K;
          qb[u][r].load(b_mat + (ok ? (long long)(k + r) * N + n : 0), ok);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < UNROLL; ++u)
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // the step's two k16 MMAs: k 8c + 4h .. + 3 of each thread
        unsigned fa[MT][4];
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          fa[i][0] = qa[u][i][0].w[2 * h];
          fa[i][1] = qa[u][i][1].w[2 * h];
          fa[i][2] = qa[u][i][0].w[2 * h + 1];
          fa[i][3] = qa[u][i][1].w[2 * h + 1];
        }
#pragma unroll
        for (int j = 0; j < NT; ++j) {
          unsigned b0, b1;
          if constexpr (TRANS_B) {
            b0 = qb[u][j].w[2 * h];
            b1 = qb[u][j].w[2 * h + 1];
          } else {
            b0 = skinny::Chunk<TN, true>::interleave(qb[u][4 * h], qb[u][4 * h + 1], j);
            b1 = skinny::Chunk<TN, true>::interleave(qb[u][4 * h + 2], qb[u][4 * h + 3], j);
          }
#pragma unroll
          for (int i = 0; i < MT; ++i) gemm::mma<kBf16>(acc[i][j], fa[i], b0, b1);
        }
      }
  }

  // The warp's partial sums into the block's tile: acc[i][j][2 * hr + e] is row 16 i + 8 hr + g,
  // fragment column 2c + e of MMA j.
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = 16 * i + 8 * hr + g;
        if (row >= M) continue;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = warp * WN + (TRANS_B ? 8 * j + 2 * c + e : TN * (2 * c + e) + j);
          partial[row * BN + col] = acc[i][j][2 * hr + e];
        }
      }
  if constexpr (SPLIT > 1) {
    skinny::sync_cluster();
  } else {
    __syncthreads();
  }
  // This block's share of the tile's columns, summed over the cluster's slices, in pairs.
  constexpr int kShare = BN / SPLIT, kPairs = M * kShare / 2;
  static_assert(kShare % 2 == 0, "column pairs");
  Out* out = C + b * M * N;
  for (int p = threadIdx.x; p < kPairs; p += WARPS * 32) {
    const int row = p / (kShare / 2), cl = slice * kShare + 2 * (p % (kShare / 2)), col = tile * BN + cl;
    float2 v = make_float2(0.0f, 0.0f);
    if constexpr (SPLIT > 1) {
#pragma unroll
      for (int r = 0; r < SPLIT; ++r) {
        const float2 part = skinny::load_cluster(&partial[row * BN + cl], r);
        v.x += part.x;
        v.y += part.y;
      }
    } else {
      v = *reinterpret_cast<const float2*>(&partial[row * BN + cl]);
    }
    gemm::store_pair<M, N>(out, row, col, b, v.x, v.y, epilogue, epilogue.cols(col));
  }
  // No block may exit while another may still read its shared memory.
  if constexpr (SPLIT > 1) skinny::sync_cluster();
}

}  // namespace tessera
