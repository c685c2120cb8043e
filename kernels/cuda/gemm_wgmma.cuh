// Hopper GEMM (sm_90a) for f16/bf16 inputs with f32 accumulation:
// C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n]), A row-major [M, K], B row-major [K, N]
// or, with TRANS_B, [N, K].
//
// Warp-specialised and persistent. Warpgroup 0 produces: one of its threads loads the A and B
// tiles of each BK-wide k step (64 or 32) with the tensor memory accelerator
// (cp.async.bulk.tensor over tensor maps the launcher encodes; 128-byte swizzle, 64-byte for
// the K-major tiles when BK is 32) into a STAGES-deep shared-memory ring.
// Warpgroups 1..CONSUMERS consume: each multiplies its BM / CONSUMERS rows of the tile with
// wgmma.mma_async (m64 x BN x k16, both operands read from shared memory through matrix
// descriptors) and keeps one k step of MMAs in flight while it waits for the next. A full and
// an empty mbarrier per slot hand the slots between the two sides; setmaxnreg gives the
// producer's registers to the consumers. Blocks loop over the output tiles (blockIdx.x,
// + gridDim.x, ...) in GROUP_M-rasterised order, so the producer already loads the next tile
// while the consumers store the last one through the epilogue.
//
// With TMA_STORE the epilogue goes through a shared-memory staging tile and bulk tensor stores
// instead of stores from registers (where C's rows are not 16-byte aligned, the warpgroup
// copies the staged tile out row by row: kCopyOut); with PINGPONG the consumers take whole tiles in turn
// instead of sharing each one, so one's epilogue overlaps the other's MMAs.
//
// Edges: the tensor maps zero-fill whatever a box reads outside its tensor and the stores are
// predicated, so any M, N and K work; TMA needs 16-byte row strides (K, and N when B is
// [K, N], multiples of 8).
//
// What a k step loads, and B's shared-memory layout, is a policy (`Loads`): GemmLoads below for
// matrices; the implicit-GEMM convolutions (conv_wgmma.cuh) load A through im2col tensor maps,
// B as block-diagonal tiles for grouped convolutions, or gather both with the producer's
// threads where TMA cannot express the operand.
#pragma once
#include "tessera/gemm_tc.cuh"

namespace tessera {

/// A CUtensorMap (opaque, 128 bytes, 64-byte aligned), passed as a __grid_constant__ parameter.
struct alignas(64) TensorMap {
  unsigned long long opaque[16];
};

namespace wgmma {

__device__ __forceinline__ unsigned smem(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void bar_init(unsigned long long* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem(bar)), "r"(count) : "memory");
}
/// The producer's arrival on a full barrier, announcing `bytes` of copies that complete on it.
__device__ __forceinline__ void bar_expect(unsigned long long* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem(bar)), "r"(bytes) : "memory");
}
/// Announces `bytes` of copies that complete on `bar` without arriving on it (the producer's
/// threads arrive once their own stores to the slot are done).
__device__ __forceinline__ void bar_expect_only(unsigned long long* bar, unsigned bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(smem(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void bar_arrive(unsigned long long* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem(bar)) : "memory");
}
/// Waits until the phase of parity `parity` of `bar` has completed.
__device__ __forceinline__ void bar_wait(unsigned long long* bar, unsigned parity) {
  unsigned done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem(bar)), "r"(parity)
        : "memory");
  } while (!done);
}

/// Copies the box at coordinates (c0, c1, c2) (innermost first) of `map` to `dst`; the bytes
/// complete on `bar`.
__device__ __forceinline__ void load(void* dst, const TensorMap* map, unsigned long long* bar, int c0, int c1, int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], "
      "[%2];\n" ::"r"(smem(dst)),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem(bar)), "r"(c0), "r"(c1), "r"(c2)
      : "memory");
}

/// Copies the im2col box of `map` whose first pixel's window starts at (c, w, h, n) (channel,
/// then input coordinates, innermost first), shifted by the filter tap (off_w, off_h), to `dst`;
/// the bytes complete on `bar`.
__device__ __forceinline__ void load_im2col(void* dst, const TensorMap* map, unsigned long long* bar, int c, int w, int h,
                                            int n, unsigned short off_w, unsigned short off_h) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2], {%7, %8};\n" ::"r"(smem(dst)),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem(bar)), "r"(c), "r"(w), "r"(h), "r"(n), "h"(off_w), "h"(off_h)
      : "memory");
}

/// As load(), from a four-dimensional map (a batch in two levels: c2 inner, c3 outer).
__device__ __forceinline__ void load(void* dst, const TensorMap* map, unsigned long long* bar, int c0, int c1, int c2,
                                     int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5, %6}], "
      "[%2];\n" ::"r"(smem(dst)),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
      : "memory");
}

/// As load(), multicast: the box lands at the same offset of `dst` in the shared memory of every
/// block of the cluster in `mask`, and completes on the barrier at `bar`'s offset in each.
__device__ __forceinline__ void load_multicast(void* dst, const TensorMap* map, unsigned long long* bar, int c0, int c1,
                                               int c2, unsigned short mask) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, "
      "{%3, %4, %5}], [%2], %6;\n" ::"r"(smem(dst)),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem(bar)), "r"(c0), "r"(c1), "r"(c2), "h"(mask)
      : "memory");
}

/// As load_multicast(), from a four-dimensional map.
__device__ __forceinline__ void load_multicast(void* dst, const TensorMap* map, unsigned long long* bar, int c0, int c1,
                                               int c2, int c3, unsigned short mask) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, "
      "{%3, %4, %5, %6}], [%2], %7;\n" ::"r"(smem(dst)),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "h"(mask)
      : "memory");
}

/// This block's rank in its cluster.
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
/// Arrives on the barrier at `bar`'s offset in the shared memory of cluster block `rank`.
/// CTA-scope release (the default): the arrival only says this block's MMAs have finished
/// reading the slot, which wgmma.wait_group already ensured; a cluster-scope release would
/// put a full memory barrier in front of every arrival (measured: 2.4x slower on the H100).
__device__ __forceinline__ void bar_arrive_cluster(unsigned long long* bar, unsigned rank) {
  asm volatile(
      "{\n .reg .b32 remote;\n mapa.shared::cluster.u32 remote, %0, %1;\n"
      " mbarrier.arrive.shared::cluster.b64 _, [remote];\n}\n" ::"r"(smem(bar)),
      "r"(rank)
      : "memory");
}
/// Every thread of every block of the cluster (threads may arrive one by one).
__device__ __forceinline__ void sync_cluster() {
  asm volatile("barrier.cluster.arrive.release;\n barrier.cluster.wait.acquire;\n" ::: "memory");
}

/// Copies the box of `map` at (c0, c1, c2) from shared memory at `src` to global memory (a
/// bulk group of this thread; the box is clipped to the tensor).
__device__ __forceinline__ void store(const TensorMap* map, const void* src, int c0, int c1, int c2) {
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.tile.bulk_group [%0, {%2, %3, %4}], [%1];\n" ::"l"(
                   reinterpret_cast<unsigned long long>(map)),
               "r"(smem(src)), "r"(c0), "r"(c1), "r"(c2)
               : "memory");
}
/// As store(), to a four-dimensional map (a batch in two levels: c2 inner, c3 outer).
__device__ __forceinline__ void store(const TensorMap* map, const void* src, int c0, int c1, int c2, int c3) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.tile.bulk_group [%0, {%2, %3, %4, %5}], [%1];\n" ::"l"(
                   reinterpret_cast<unsigned long long>(map)),
               "r"(smem(src)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
               : "memory");
}
/// Barrier `id` (1..) among the 128 threads of one warpgroup.
__device__ __forceinline__ void sync_warpgroup(int id) { asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory"); }

/// Matrix descriptor of an operand at `p`: swizzle atoms of 8 rows of SWIZZLE bytes (128, 64
/// or 32), aligned to their 8 x SWIZZLE bytes, or (SWIZZLE 0) 8 x 16-byte core matrices of 128
/// contiguous bytes; `lbo` and `sbo` are the leading and stride byte offsets (without swizzling:
/// between core matrices adjacent along k, and along m or n). The layout field (bits 62-63) is 1
/// for 128-byte, 2 for 64-byte, 3 for 32-byte swizzling and 0 for none.
template <int SWIZZLE = 128>
__device__ __forceinline__ unsigned long long desc(const void* p, unsigned lbo, unsigned sbo) {
  static_assert(SWIZZLE == 128 || SWIZZLE == 64 || SWIZZLE == 32 || SWIZZLE == 0, "swizzle span");
  constexpr unsigned long long layout = SWIZZLE == 128 ? 1 : SWIZZLE == 64 ? 2 : SWIZZLE == 32 ? 3 : 0;
  return static_cast<unsigned long long>((smem(p) & 0x3FFFF) >> 4) |
         static_cast<unsigned long long>((lbo & 0x3FFFF) >> 4) << 16 |
         static_cast<unsigned long long>((sbo & 0x3FFFF) >> 4) << 32 | layout << 62;
}

/// A K-major tile of rows of BK 2-byte k (BK * 2 bytes, swizzled over that span): the matrix
/// descriptor of its 64 rows from `row`, k16 step kk (32 bytes into each row; 8-row groups
/// 16 * BK bytes apart).
template <int BK, class In>
__device__ __forceinline__ unsigned long long desc_kmajor(const In* tile, int row, int kk) {
  return desc<BK * 2>(tile + row * BK + kk * 16, 16, 16 * BK);
}

__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
template <int R>
__device__ __forceinline__ void grow_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
}
template <int R>
__device__ __forceinline__ void shrink_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
}

/// Keeps the compiler from moving accesses to the accumulators across a wgmma fence or wait.
template <int N>
__device__ __forceinline__ void pin(float (&acc)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

/// Batch, tile-row and tile-column of output tile `tile`: GROUP_M tile-rows at a time share
/// each tile-column's B tiles in L2.
template <int TM, int TN, int GROUP_M>
__device__ __forceinline__ void tile_coords(int tile, int& b, int& bm, int& bn) {
  b = tile / (TM * TN);
  const int r = tile % (TM * TN);
  const int first_m = r / (GROUP_M * TN) * GROUP_M;
  const int rows = TM - first_m < GROUP_M ? TM - first_m : GROUP_M;
  bm = first_m + (r % (GROUP_M * TN)) % rows;
  bn = (r % (GROUP_M * TN)) / rows;
}

}  // namespace wgmma

/// The GEMM's operand loads: per k step, A's BM x BK tile of [BATCH][M][K] and B's tile of
/// [BATCH][N][K] (TRANS_B: BN rows of BK k, K-major like A) or of [BATCH][K][N] (BN / 64 boxes
/// of BK k rows of 64 columns; a narrow tile of 32 or 16 columns is one box, its rows 64- or
/// 32-byte swizzled), through the tensor maps. With a cluster each block loads its
/// share of B's tile (BN / CLUSTER rows of a K-major B, BK / CLUSTER k rows of each box of a
/// [K, N] B) and multicasts it into the same slot of every block.
/// BATCH_INNER > 0: the maps are four-dimensional, the batch split in two levels (batch b at
/// inner b % BATCH_INNER, outer b / BATCH_INNER), for operands that lie strided that way
/// (batch x heads of attention, read in place inside the projection's output).
///
/// A Loads policy has: kSteps (k steps per tile); kMmaSteps (k16 MMAs per step that can meet
/// non-zero B, at most BK / 16); kGather (the producer warpgroup's 128 threads write part of
/// each slot with ordinary stores, else one thread issues TMA copies); tma_bytes(kt) (bytes of
/// TMA copies into the slot of k step kt); prepare(sB, slots, t) (once, by the producer's
/// threads, before the ring starts); tma(...) and gather(...) (one k step's loads into the
/// slot's A and B tiles for the tile at rows m0, columns n0 of batch b); desc_a(at, row, kk)
/// and desc_b(bt, kk) (the matrix descriptors of A's 64 rows from `row` and of B, for the k16
/// step kk of the slots at at and bt).
template <class In, int K, bool TRANS_B, int BM, int BN, int BK, int CLUSTER, int BATCH_INNER = 0>
struct GemmLoads {
  static constexpr int kSteps = (K + BK - 1) / BK;
  static constexpr int kMmaSteps = BK / 16;
  static constexpr bool kGather = false;
  static constexpr int kStepThreads = 0;  // the whole producer warpgroup fills each step
  static constexpr unsigned kTmaBytes = (BM + BN) * BK * 2;  // A, and all of B whoever loads it
  // [K, N] B: a row of a box spans the swizzle (64 columns: 128 bytes, 32: 64, 16: 32).
  static constexpr int kBoxN = TRANS_B || BN >= 64 ? 64 : BN;
  static_assert(TRANS_B || BN % 64 == 0 || BN == 32 || BN == 16, "tile shape");
  static_assert(CLUSTER == 1 || (CLUSTER == 2 && (BN / 2) % 8 == 0), "cluster shape");

  __device__ static constexpr unsigned tma_bytes(int) { return kTmaBytes; }
  __device__ static void prepare(In*, int, int) {}
  __device__ static void gather(In*, In*, const In*, const In*, int, int, int, int, int) {}
  // The box at (c0, c1) of batch b, as the maps index the batch.
  __device__ static void load(In* dst, const TensorMap& map, unsigned long long* bar, int c0, int c1, int b) {
    if constexpr (BATCH_INNER > 0) {
      wgmma::load(dst, &map, bar, c0, c1, b % BATCH_INNER, b / BATCH_INNER);
    } else {
      wgmma::load(dst, &map, bar, c0, c1, b);
    }
  }
  __device__ static void load_multicast(In* dst, const TensorMap& map, unsigned long long* bar, int c0, int c1, int b) {
    constexpr unsigned short kAll = (1u << CLUSTER) - 1;
    if constexpr (BATCH_INNER > 0) {
      wgmma::load_multicast(dst, &map, bar, c0, c1, b % BATCH_INNER, b / BATCH_INNER, kAll);
    } else {
      wgmma::load_multicast(dst, &map, bar, c0, c1, b, kAll);
    }
  }
  __device__ static void tma(In* sa, In* sb, const TensorMap& map_a, const TensorMap& map_b, unsigned long long* bar, int kt,
                             int m0, int n0, int b, int rank) {
    load(sa, map_a, bar, kt * BK, m0, b);
    if constexpr (CLUSTER > 1) {
      if constexpr (TRANS_B) {
        load_multicast(sb + rank * (BN / CLUSTER) * BK, map_b, bar, kt * BK, n0 + rank * (BN / CLUSTER), b);
      } else {
#pragma unroll
        for (int j = 0; j < BN / kBoxN; ++j)
          load_multicast(sb + j * kBoxN * BK + rank * (BK / CLUSTER) * kBoxN, map_b, bar, n0 + j * kBoxN,
                         kt * BK + rank * (BK / CLUSTER), b);
      }
    } else if constexpr (TRANS_B) {
      load(sb, map_b, bar, kt * BK, n0, b);
    } else {  // [K, N]: boxes of 64 (or BN) columns x BK k rows, one after another
#pragma unroll
      for (int j = 0; j < BN / kBoxN; ++j) load(sb + j * kBoxN * BK, map_b, bar, n0 + j * kBoxN, kt * BK, b);
    }
  }
  // K-major B (trans_b): rows of BK k (BK * 2 bytes, swizzled over that span), the k16 step 32
  // bytes into each, 8-row groups 16 * BK bytes apart. [K, N] B: 16 k rows of kBoxN columns per
  // step (swizzled over a row's kBoxN * 2 bytes); kBoxN-column blocks kBoxN * BK * 2 bytes apart
  // (leading), 8-row groups 8 rows apart.
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) { return wgmma::desc_kmajor<BK>(at, row, kk); }
  __device__ static unsigned long long desc_b(const In* bt, int kk) {
    if constexpr (TRANS_B) return wgmma::desc<BK * 2>(bt + kk * 16, 16, 16 * BK);
    return wgmma::desc<kBoxN * 2>(bt + kk * 16 * kBoxN, kBoxN * BK * 2, 8 * kBoxN * 2);
  }
};

/// A consumer warpgroup's part of gemm_wgmma: MMAs on rows [c * BM / CONSUMERS, ...) of every
/// tile of this block, then the epilogue.
template <class In, class Out, int M, int N, int BATCH, int BM, int BN, int BK, int STAGES, int CONSUMERS, int GROUP_M,
          bool TMA_STORE, bool PINGPONG, int CLUSTER, int SPLIT_K, class Loads, class Epilogue, class Mma, class OutAt>
__device__ __forceinline__ void consume(Out* __restrict__ C, float* __restrict__ W, const Epilogue& epilogue, const In* sA, const In* sB,
                                        Out* sC, const TensorMap* map_c, const TensorMap* map_r,
                                        unsigned long long* full, unsigned long long* empty, unsigned long long* turn,
                                        unsigned long long* staged, int c, int t) {
  // Rows and m64 MMAs per consumer: a share of every tile, or (ping-pong) whole tiles in turn.
  constexpr int WM = PINGPONG ? BM : BM / CONSUMERS, MI = WM / 64;
  const int row0 = PINGPONG ? 0 : c * WM;
  constexpr int kTileA = BM * BK, kTileB = BN * BK;
  constexpr int kTilesM = (M + BM - 1) / BM, kTilesN = (N + BN - 1) / BN;
  constexpr int kTilesMC = (kTilesM + CLUSTER - 1) / CLUSTER;  // tile-rows of cluster tiles
  constexpr int kUnits = kTilesMC * kTilesN * BATCH * SPLIT_K;
  constexpr int kTilesK = Loads::kSteps, kSliceK = (kTilesK + SPLIT_K - 1) / SPLIT_K;
  static_assert(!PINGPONG || SPLIT_K == 1, "ping-pong assumes every tile takes kTilesK steps");
  // With TMA stores, a residual comes into the staging tile by TMA while the tile computes.
  constexpr bool kStagedResidual = TMA_STORE && Epilogue::kResidual;
  // C's rows not 16-byte aligned (an odd N): no tensor map can store them, so the warpgroup
  // copies its staged tile out, consecutive threads consecutive columns of a row, every store
  // instruction a warp's 64 contiguous bytes (from registers, a warp's pair stores would cover
  // 8 rows, a quarter of each sector). No residual then (it would come by TMA).
  constexpr bool kCopyOut = TMA_STORE && (OutAt::kRow * (long long)sizeof(Out)) % 16 != 0;
  static_assert(!(kCopyOut && kStagedResidual), "a staged residual is loaded by TMA");
  // Element (r, cl) of the staging tile: [BN / 64][WM][64], 16-byte chunks swizzled by row.
  auto staged_at = [](int r, int cl) { return (cl / 64) * WM * 64 + r * 64 + ((((cl % 64) / 8) ^ (r % 8)) * 8) + cl % 8; };
  unsigned staged_phase = 0;
  // See the producer's share.
  if constexpr (CONSUMERS == 3) wgmma::grow_registers<152>();
  if constexpr (CONSUMERS == 2) wgmma::grow_registers<Loads::kGather ? 192 : 232>();
  const int rank = CLUSTER > 1 ? static_cast<int>(wgmma::cluster_rank()) : 0;
  const int warp = t / 32, lane = t % 32;
  // A slot goes back once every block it was multicast into has read it: a warp's lane 0
  // arrives on the slot's empty barrier in each block of the cluster.
  auto release = [&](int slot) {
    if (lane != 0) return;
#pragma unroll
    for (int r = 0; r < CLUSTER; ++r) {
      if (r == rank) {
        wgmma::bar_arrive(&empty[slot]);
      } else {
        wgmma::bar_arrive_cluster(&empty[slot], r);
      }
    }
  };
  float acc[MI][BN / 2];
  int stage = 0;
  unsigned phase = 0;
  int i = 0;  // the tile's place in this block's sequence
  for (int unit = blockIdx.x / CLUSTER; unit < kUnits; unit += gridDim.x / CLUSTER, ++i) {
    if constexpr (PINGPONG) {
      // Consumers take the block's tiles in turn, so one's epilogue overlaps the other's MMAs;
      // the producer fills the ring in tile order, so this tile's first slot is known. A
      // consumer starts a tile's MMAs only once the other has waited for all of its previous
      // tile's slots: a slot's full barrier is then never two phases behind its waiter.
      if (i % CONSUMERS != c) continue;
      stage = (i * kTilesK) % STAGES;
      phase = ((i * kTilesK) / STAGES) & 1;
      const int j = i / CONSUMERS;  // this consumer's j-th tile
      wgmma::bar_wait(&turn[c], c == 0 ? (j & 1) ^ 1 : j & 1);
    }
    int b, bm, bn;
    const int slice = unit % SPLIT_K;  // split-K: this unit's share of the k steps
    const int k_begin = slice * kSliceK, k_end = k_begin + kSliceK < kTilesK ? k_begin + kSliceK : kTilesK;
    wgmma::tile_coords<kTilesMC, kTilesN, GROUP_M>(unit / SPLIT_K, b, bm, bn);
    bm = bm * CLUSTER + rank;  // the blocks of a cluster take adjacent tile-rows of one tile-column
    if constexpr (kStagedResidual) {
      // Once the previous tile's stores have read the staging tile, the residual's boxes (the
      // output's, zero-filled outside the tensor) land in it during this tile's MMAs.
      if (t == 0) {
        asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
        wgmma::bar_expect(staged, WM * BN * 2);
#pragma unroll
        for (int jb = 0; jb < BN / 64; ++jb) wgmma::load(sC + jb * WM * 64, map_r, staged, bn * BN + jb * 64, bm * BM + row0, b);
      }
    }
    int previous = -1;  // the slot whose MMAs may still be in flight
    for (int kt = k_begin; kt < k_end; ++kt) {
      wgmma::bar_wait(&full[stage], phase);
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) wgmma::pin(acc[mi]);
      wgmma::fence();
      const In* a = sA + stage * kTileA;
      const In* bt = sB + stage * kTileB;
#pragma unroll
      for (int kk = 0; kk < Loads::kMmaSteps; ++kk) {
        // The operands' layouts are the policy's (for A mostly wgmma::desc_kmajor's).
        const unsigned long long db = Loads::desc_b(bt, kk);
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
          Mma::run(acc[mi], Loads::desc_a(a, row0 + mi * 64, kk), db, kt > k_begin || kk > 0);
      }
      wgmma::commit();
      // This step's MMAs stay in flight; the previous step's are done: its slot goes back.
      wgmma::wait<1>();
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) wgmma::pin(acc[mi]);
      if (previous >= 0) release(previous);
      previous = stage;
      if (++stage == STAGES) {
        stage = 0;
        phase ^= 1;
      }
    }
    if constexpr (PINGPONG) {
      if (lane == 0) wgmma::bar_arrive(&turn[1 - c]);  // the other consumer's turn
    }
    wgmma::wait<0>();
#pragma unroll
    for (int mi = 0; mi < MI; ++mi) wgmma::pin(acc[mi]);
    if (previous >= 0) release(previous);

    // Accumulator i of a thread: columns 8 * (i / 4) + 2 * (lane % 4) + (i % 2) of row
    // 16 * warp + lane / 4 + 8 * ((i / 2) % 2) of its m64 block.
    if constexpr (SPLIT_K > 1) {
      // Partial sums of this slice, in f32, for the second kernel to add up and finish.
      float* part = W + ((long long)slice * BATCH + b) * M * N;
#pragma unroll
      for (int mi = 0; mi < MI; ++mi)
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int row = bm * BM + row0 + mi * 64 + warp * 16 + lane / 4 + half * 8;
            const int col = bn * BN + j * 8 + (lane % 4) * 2;
            if (row >= M) continue;
            float* dst = part + (long long)row * N + col;
            const float v0 = acc[mi][j * 4 + half * 2], v1 = acc[mi][j * 4 + half * 2 + 1];
            if (N % 2 == 0 && col + 1 < N) {
              *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
            } else {
              if (col < N) dst[0] = v0;
              if (col + 1 < N) dst[1] = v1;
            }
          }
    } else if constexpr (TMA_STORE) {
      // Through this warpgroup's staging tile ([BN / 64][WM][64], 128-byte swizzled, so the
      // pair writes are free of bank conflicts) and bulk tensor stores that run on while the
      // next tile computes. The previous tile's stores must have read the staging tile first.
      if constexpr (kStagedResidual) {
        wgmma::bar_wait(staged, staged_phase);
        staged_phase ^= 1;
      } else {
        if (t == 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
        wgmma::sync_warpgroup(1 + c);
      }
      // Column pairs outer, so the epilogue's per-column values (the bias) load once per tile.
      // The tensor store drops what lies outside C; the checks only keep the epilogue's own
      // reads (bias, residual) in bounds, and vanish where the tiles divide M and N.
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int cl = j * 8 + (lane % 4) * 2, col = bn * BN + cl;
        const typename Epilogue::Cols cols = epilogue.cols(col);
        const bool in0 = N % BN == 0 || col < N, in1 = N % BN == 0 || col + 1 < N;
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = mi * 64 + warp * 16 + lane / 4 + half * 8;
            const int row = bm * BM + row0 + r;
            const bool in_row = M % (BM * CLUSTER) == 0 || row < M;
            Out* dst = sC + staged_at(r, cl);
            Pack<Out, 2> p;
            if constexpr (kStagedResidual) {
              const Pack<Out, 2> res = *reinterpret_cast<const Pack<Out, 2>*>(dst);
              p.v[0] = from_float<Out>(epilogue.apply_staged(acc[mi][j * 4 + half * 2], cols, 0, to_float(res.v[0])));
              p.v[1] = from_float<Out>(epilogue.apply_staged(acc[mi][j * 4 + half * 2 + 1], cols, 1, to_float(res.v[1])));
            } else {
              p.v[0] = from_float<Out>(in_row && in0 ? epilogue.apply(acc[mi][j * 4 + half * 2], cols, 0, b, row, col) : 0.0f);
              p.v[1] = from_float<Out>(in_row && in1 ? epilogue.apply(acc[mi][j * 4 + half * 2 + 1], cols, 1, b, row, col + 1) : 0.0f);
            }
            *reinterpret_cast<Pack<Out, 2>*>(dst) = p;
          }
      }
      if constexpr (kCopyOut) {
        wgmma::sync_warpgroup(1 + c);
        Out* out = C + OutAt::batch(b);
        for (int i = t; i < WM * BN; i += 128) {
          const int r = i / BN, cl = i - r * BN;
          const int row = bm * BM + row0 + r, col = bn * BN + cl;
          if (row < M && col < N)
            out[(long long)row * OutAt::kRow + col] = sC[staged_at(r, cl)];
        }
      } else {
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to the bulk copies
        wgmma::sync_warpgroup(1 + c);
        if (t == 0) {
#pragma unroll
          for (int jb = 0; jb < BN / 64; ++jb) {
            if constexpr (OutAt::kSplit > 0) {
              wgmma::store(map_c, sC + jb * WM * 64, bn * BN + jb * 64, bm * BM + row0, b % OutAt::kSplit, b / OutAt::kSplit);
            } else {
              wgmma::store(map_c, sC + jb * WM * 64, bn * BN + jb * 64, bm * BM + row0, b);
            }
          }
          asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
        }
      }
    } else {
      Out* out = C + OutAt::batch(b);
#pragma unroll
      for (int j = 0; j < BN / 8; ++j) {
        const int col = bn * BN + j * 8 + (lane % 4) * 2;
        const typename Epilogue::Cols cols = epilogue.cols(col);
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int row = bm * BM + row0 + mi * 64 + warp * 16 + lane / 4 + half * 8;
            gemm::store_pair<M, N, Out, Epilogue, OutAt::kRow>(out, row, col, b, acc[mi][j * 4 + half * 2], acc[mi][j * 4 + half * 2 + 1], epilogue,
                                   cols);
          }
      }
    }
  }
  // The block's shared memory must outlive the stores that read it.
  if constexpr (TMA_STORE) {
    if (t == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  }
}

/// Groups of a split producer (Loads::kStepThreads > 0): as many of the warpgroup's
/// 128 / kStepThreads groups as divide the ring (a power of two), so that every slot is filled
/// by one group only.
template <class Loads, int STAGES>
__host__ __device__ constexpr int producer_groups() {
  int g = Loads::kStepThreads > 0 ? 128 / Loads::kStepThreads : 1;
  while (g > 1 && STAGES % g != 0) g /= 2;
  return g;
}

/// The producer of a Loads policy whose steps are each gathered by kStepThreads threads
/// (StripLoads): the warpgroup's G groups (producer_groups) take the block's k steps in turn,
/// group j steps j, j + G, ..., tile after tile, so G steps' round trips to L2 overlap. An
/// arrival on a slot's barrier releases the thread's earlier accesses, so a thread with loads
/// of later steps in flight would wait for them there; a group's threads hold only their own
/// step's, which their stores consumed already. As G divides STAGES, a slot is only ever filled
/// by one group, in order, and its parity waits see one phase at a time, as with one producer.
/// Each step's full barrier counts kStepThreads arrivals (and B's TMA bytes). One slice, no
/// cluster.
template <class In, int BM, int BN, int BK, int STAGES, int kTilesMC, int kTilesN, int kTilesK, int kUnits, int GROUP_M,
          class Loads>
__device__ __forceinline__ void produce_split(const In* A, const TensorMap& map_a, const TensorMap& map_b, In* sA, In* sB,
                                              unsigned long long* full, unsigned long long* empty, int t) {
  constexpr int T = Loads::kStepThreads, G = producer_groups<Loads, STAGES>();
  constexpr int kTileA = BM * BK, kTileB = BN * BK;
  const int group = t / T, lt = t % T;
  if (group >= G) return;
  const int units = static_cast<int>(blockIdx.x) < kUnits ? (kUnits - 1 - static_cast<int>(blockIdx.x)) / gridDim.x + 1 : 0;
  const int total = units * kTilesK;  // this block's k steps, tile after tile
  for (int g = group; g < total; g += G) {
    const int unit = static_cast<int>(blockIdx.x) + (g / kTilesK) * static_cast<int>(gridDim.x);
    const int kt = g % kTilesK;
    int b, bm, bn;
    wgmma::tile_coords<kTilesMC, kTilesN, GROUP_M>(unit, b, bm, bn);
    typename Loads::Regs regs;
    Loads::fetch(regs, A, kt, bm * BM, b, lt);  // in flight while the slot may still be read
    const int stage = g % STAGES;
    wgmma::bar_wait(&empty[stage], ((g / STAGES) & 1) ^ 1);
    In* sa = sA + stage * kTileA;
    In* sb = sB + stage * kTileB;
    if (lt == 0) {
      wgmma::bar_expect_only(&full[stage], Loads::tma_bytes(kt));
      Loads::tma(sa, sb, map_a, map_b, &full[stage], kt, bm * BM, bn * BN, b, 0);
    }
    Loads::put(regs, sa, lt);
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to the tensor cores
    wgmma::bar_arrive(&full[stage]);
  }
}

/// The kernel body. `Mma::run(acc, desc_a, desc_b, accumulate)` issues one
/// wgmma.mma_async m64 x BN x k16 (generated per BN and dtype); `Loads` (GemmLoads above, or a
/// convolution's) fills each ring slot for a k step. A and B are the operands' global tensors,
/// for policies whose producer threads gather them. Dynamic shared memory: STAGES * (BM + BN)
/// * BK * 2 bytes of tiles (BK 64 or 32: A's rows are 128- or 64-byte swizzled), with TMA_STORE
/// a BM x BN staging tile of the output per consumer (stored through `map_c`, 2-byte outputs),
/// 1024 bytes of alignment slack and the barriers. PINGPONG: the consumers take whole tiles in
/// turn instead of sharing each. CLUSTER (1 or 2; the kernel is declared with
/// __cluster_dims__(CLUSTER, 1, 1)): the blocks of a cluster compute vertically adjacent tiles
/// of one tile-column, so they need the same B tile, which the policy multicasts, halving B's
/// traffic from L2. SPLIT_K > 1: each tile's k steps are cut into SPLIT_K slices, scheduled as
/// separate work units; a unit stores its f32 partial sums to W ([SPLIT_K][BATCH][M][N]) and a
/// second kernel (gemm::splitk_reduce) adds them and applies the epilogue. For skinny shapes
/// whose tiles cannot fill the multiprocessors.
template <class In, class Out, int M, int N, int BATCH, int BM, int BN, int BK, int STAGES, int CONSUMERS, int GROUP_M,
          bool TMA_STORE, bool PINGPONG, int CLUSTER, int SPLIT_K, class Loads, class Epilogue, class Mma,
          class OutAt = gemm::DenseOut<M, N>>
__device__ __forceinline__ void gemm_wgmma(const In* __restrict__ A, const In* __restrict__ B, Out* __restrict__ C,
                                           float* __restrict__ W, const Epilogue& epilogue, const TensorMap& map_a,
                                           const TensorMap& map_b, const TensorMap* map_c, const TensorMap* map_r) {
#if !TESSERA_SM90A
  __trap();  // built for a GPU without wgmma (an export's other targets); never launched there
#else
  static_assert(BK == 64 || BK == 32, "a k step is one 128- or 64-byte swizzle row of 2-byte elements");
  constexpr int kTileA = BM * BK, kTileB = BN * BK;  // elements per slot
  constexpr int kTilesM = (M + BM - 1) / BM, kTilesN = (N + BN - 1) / BN;
  constexpr int kTilesMC = (kTilesM + CLUSTER - 1) / CLUSTER;  // tile-rows of cluster tiles
  constexpr int kUnits = kTilesMC * kTilesN * BATCH * SPLIT_K;
  constexpr int kTilesK = Loads::kSteps, kSliceK = (kTilesK + SPLIT_K - 1) / SPLIT_K;
  constexpr int WM = PINGPONG ? BM : BM / CONSUMERS;  // output rows per consumer and tile
  static_assert(WM % 64 == 0, "tile shape");
  static_assert(CONSUMERS <= 2 || (!Loads::kGather && !PINGPONG), "three consumers: TMA loads, no ping-pong");
  static_assert(Loads::kStepThreads == 0 || (SPLIT_K == 1 && CLUSTER == 1), "split producers: one slice, no cluster");

  extern __shared__ __align__(1024) unsigned char smem_wgmma[];
  unsigned char* base = smem_wgmma + ((1024 - (wgmma::smem(smem_wgmma) & 1023)) & 1023);  // swizzle atoms
  In* sA = reinterpret_cast<In*>(base);
  In* sB = sA + STAGES * kTileA;
  Out* sC = reinterpret_cast<Out*>(sB + STAGES * kTileB);  // staging tiles of the TMA stores (WM x BN each)
  unsigned long long* full = reinterpret_cast<unsigned long long*>(sC + (TMA_STORE ? CONSUMERS * WM * BN : 0));
  unsigned long long* empty = full + STAGES;
  unsigned long long* turn = empty + STAGES;  // ping-pong: whose turn to start a tile's MMAs
  unsigned long long* staged = turn + 2;       // per consumer: its staging tile holds the residual

  const int wg = threadIdx.x / 128, t = threadIdx.x % 128;
  if (wg == 0) {
    // Whatever the loads never write (a block-diagonal B's zeros), for the tensor cores.
    Loads::prepare(sB, STAGES, t);
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  }
  if (threadIdx.x == 0) {
    for (int s = 0; s < STAGES; ++s) {
      // The TMA thread's arrival with the bytes it expects, or every gathering producer thread's
      // (of the group that fills the step, for a split producer).
      wgmma::bar_init(&full[s], Loads::kGather ? (Loads::kStepThreads > 0 ? Loads::kStepThreads : 128) : 1);
      // Lane 0 of every warp that reads the slot, in every block of the cluster.
      wgmma::bar_init(&empty[s], (PINGPONG ? 4 : CONSUMERS * 4) * CLUSTER);
    }
    if constexpr (PINGPONG) {
      wgmma::bar_init(&turn[0], 4);
      wgmma::bar_init(&turn[1], 4);
    }
    if constexpr (TMA_STORE && Epilogue::kResidual) {
      for (int c = 0; c < CONSUMERS; ++c) wgmma::bar_init(&staged[c], 1);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  // The peer's barriers must be initialised before anything arrives on them from here.
  if constexpr (CLUSTER > 1) {
    wgmma::sync_cluster();
  } else {
    __syncthreads();
  }

  if (wg == 0) {
    // The producer keeps 40 registers (120 when its threads gather) and gives the rest to the
    // consumers (232 or 192 each of two, 152 each of three): the 384 threads' 168 registers at
    // launch (the 512 threads' 128), 64512 (65536) in all, are what setmaxnreg moves; asking
    // for more than that waits forever.
    if constexpr (CONSUMERS > 1) wgmma::shrink_registers<Loads::kGather ? 120 : 40>();
    if constexpr (Loads::kStepThreads > 0) {
      produce_split<In, BM, BN, BK, STAGES, kTilesMC, kTilesN, kTilesK, kUnits, GROUP_M, Loads>(A, map_a, map_b, sA, sB, full,
                                                                                                empty, t);
    } else if (Loads::kGather || t == 0) {
      int stage = 0;
      unsigned phase = 0;
      const int rank = CLUSTER > 1 ? static_cast<int>(wgmma::cluster_rank()) : 0;
      for (int unit = blockIdx.x / CLUSTER; unit < kUnits; unit += gridDim.x / CLUSTER) {
        int b, bm, bn;
        const int k_begin = unit % SPLIT_K * kSliceK;
        const int k_end = k_begin + kSliceK < kTilesK ? k_begin + kSliceK : kTilesK;
        wgmma::tile_coords<kTilesMC, kTilesN, GROUP_M>(unit / SPLIT_K, b, bm, bn);
        bm = bm * CLUSTER + rank;
        for (int kt = k_begin; kt < k_end; ++kt) {
          wgmma::bar_wait(&empty[stage], phase ^ 1);
          In* sa = sA + stage * kTileA;
          In* sb = sB + stage * kTileB;
          if constexpr (Loads::kGather) {
            if (Loads::tma_bytes(kt) > 0 && t == 0) {
              wgmma::bar_expect_only(&full[stage], Loads::tma_bytes(kt));
              Loads::tma(sa, sb, map_a, map_b, &full[stage], kt, bm * BM, bn * BN, b, rank);
            }
            Loads::gather(sa, sb, A, B, kt, bm * BM, bn * BN, b, t);
            asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // visible to the tensor cores
            wgmma::bar_arrive(&full[stage]);
          } else {
            wgmma::bar_expect(&full[stage], Loads::tma_bytes(kt));
            Loads::tma(sa, sb, map_a, map_b, &full[stage], kt, bm * BM, bn * BN, b, rank);
          }
          if (++stage == STAGES) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
  } else {
    consume<In, Out, M, N, BATCH, BM, BN, BK, STAGES, CONSUMERS, GROUP_M, TMA_STORE, PINGPONG, CLUSTER, SPLIT_K, Loads,
            Epilogue, Mma, OutAt>(C, W, epilogue, sA, sB, sC + (wg - 1) * WM * BN, map_c, map_r, full, empty, turn,
                                              staged + (wg - 1), wg - 1, t);
  }
  // No block may exit while the other may still multicast into its slots or arrive on its
  // barriers.
  if constexpr (CLUSTER > 1) wgmma::sync_cluster();
#endif
}

}  // namespace tessera
