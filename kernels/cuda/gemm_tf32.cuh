// Tensor-core GEMM for f32 data on tf32 tensor cores (mma.sync m16n8k8, sm_80+), for
// workloads that allow tf32: inputs are rounded to tf32 (cvt.rna) and products accumulate
// in f32. Same structure as gemm_tc.cuh (cp.async ring, swizzled 16-byte chunks, predicated
// edges, rasterisation, epilogue functor); fragments are read with scalar shared loads,
// since ldmatrix moves 16-bit elements.
#pragma once
#include "tessera/gemm_tc.cuh"

namespace tessera {
namespace gemm {

__device__ __forceinline__ unsigned to_tf32(float f) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(f));
  return r;
}

__device__ __forceinline__ void mma_tf32(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Copies VEC floats (VEC = 4, 2 or 1) from global to shared memory; zeros when !valid.
template <int VEC>
__device__ __forceinline__ void copy_f32(float* smem, const float* gmem, bool valid) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  int src_bytes = valid ? VEC * 4 : 0;
  if constexpr (VEC == 4)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(s), "l"(gmem), "n"(VEC * 4), "r"(src_bytes));
}

/// Element (r, c) of a float tile with ROW floats (CHUNKS 16-byte chunks) per row, swizzled.
template <int ROW, int CHUNKS>
__device__ __forceinline__ float* element(float* base, int r, int c) {
  return base + r * ROW + swizzle<CHUNKS>(r, c / 4) * 4 + c % 4;
}

}  // namespace gemm

template <class Out, int M, int N, int K, bool TRANS_B, int BM, int BN, int BK, int WM, int WN, int STAGES, int VEC,
          int GROUP_M, class Epilogue>
__device__ __forceinline__ void gemm_tf32(const float* __restrict__ A, const float* __restrict__ B,
                                          Out* __restrict__ C, const Epilogue& epilogue) {
  constexpr int kThreads = WM * WN * 32;
  constexpr int WTM = BM / WM, WTN = BN / WN, MT = WTM / 16, NT = WTN / 8;
  constexpr int kChunksK = BK / 4, kChunksN = BN / 4;  // 16-byte chunks of 4 floats
  constexpr int kTileA = BM * BK, kTileB = BK * BN;
  constexpr int KT = (K + BK - 1) / BK;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  float* sA = reinterpret_cast<float*>(smem_raw);
  float* sB = sA + STAGES * kTileA;

  int bm, bn;
  gemm::raster<M, N, BM, BN, GROUP_M>(bm, bn);
  const long long batch = blockIdx.z;
  A += batch * (long long)M * K;
  B += batch * (long long)K * N;
  C += batch * (long long)M * N;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, wm = warp / WN, wn = warp % WN;
  const int g = lane / 4, t = lane % 4;


  auto load_tile = [&](int stage, int kt) {
    const int k0 = kt * BK;
    float* a = sA + stage * kTileA;
    for (int i = tid; i < BM * BK / VEC; i += kThreads) {
      const int r = i / (BK / VEC), col = (i % (BK / VEC)) * VEC;
      const long long gm = (long long)bm * BM + r;
      const int gk = k0 + col;
      const bool ok = gm < M && gk < K;
      gemm::copy_f32<VEC>(gemm::element<BK, kChunksK>(a, r, col), A + (ok ? gm * K + gk : 0), ok);
    }
    float* b = sB + stage * kTileB;
    if constexpr (TRANS_B) {
      for (int i = tid; i < BN * BK / VEC; i += kThreads) {
        const int r = i / (BK / VEC), col = (i % (BK / VEC)) * VEC;
        const int gn = bn * BN + r, gk = k0 + col;
        const bool ok = gn < N && gk < K;
        gemm::copy_f32<VEC>(gemm::element<BK, kChunksK>(b, r, col), B + (ok ? (long long)gn * K + gk : 0), ok);
      }
    } else {
      for (int i = tid; i < BK * BN / VEC; i += kThreads) {
        const int r = i / (BN / VEC), col = (i % (BN / VEC)) * VEC;
        const int gk = k0 + r, gn = bn * BN + col;
        const bool ok = gk < K && gn < N;
        gemm::copy_f32<VEC>(gemm::element<BN, kChunksN>(b, r, col), B + (ok ? (long long)gk * N + gn : 0), ok);
      }
    }
  };

  float acc[MT][NT][4];
  gemm::zero(acc);

  gemm::pipeline<STAGES>(KT, load_tile, [&](int stage) {
    float* a = sA + stage * kTileA;
    float* b = sB + stage * kTileB;
#pragma unroll
    for (int ks = 0; ks < BK / 8; ++ks) {
      unsigned fa[MT][4], fb[NT][2];
#pragma unroll
      for (int i = 0; i < MT; ++i) {
        const int r = wm * WTM + i * 16 + g, c = ks * 8 + t;
        fa[i][0] = gemm::to_tf32(*gemm::element<BK, kChunksK>(a, r, c));
        fa[i][1] = gemm::to_tf32(*gemm::element<BK, kChunksK>(a, r + 8, c));
        fa[i][2] = gemm::to_tf32(*gemm::element<BK, kChunksK>(a, r, c + 4));
        fa[i][3] = gemm::to_tf32(*gemm::element<BK, kChunksK>(a, r + 8, c + 4));
      }
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int n = wn * WTN + j * 8 + g, k = ks * 8 + t;
        if constexpr (TRANS_B) {
          fb[j][0] = gemm::to_tf32(*gemm::element<BK, kChunksK>(b, n, k));
          fb[j][1] = gemm::to_tf32(*gemm::element<BK, kChunksK>(b, n, k + 4));
        } else {
          fb[j][0] = gemm::to_tf32(*gemm::element<BN, kChunksN>(b, k, n));
          fb[j][1] = gemm::to_tf32(*gemm::element<BN, kChunksN>(b, k + 4, n));
        }
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) gemm::mma_tf32(acc[i][j], fa[i], fb[j][0], fb[j][1]);
    }
  });

#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const int col = bn * BN + wn * WTN + j * 8 + t * 2;
    const typename Epilogue::Cols cols = epilogue.cols(col);
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int half = 0; half < 2; ++half)
        gemm::store_pair<M, N>(C, bm * BM + wm * WTM + i * 16 + g + half * 8, col, batch, acc[i][j][half * 2],
                               acc[i][j][half * 2 + 1], epilogue, cols);
  }
}

}  // namespace tessera
