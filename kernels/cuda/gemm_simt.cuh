// SIMT GEMM on the CUDA cores (f32 FMA): C[b, m, n] = epilogue(sum_k A[b, m, k] * B[b, k, n])
// with A stored [M, K] or (TRANS_A) [K, M] and B stored [K, N] or (TRANS_B) [N, K].
// A block computes BM x BN through a BK-deep shared-memory tile; each thread a TM x TN
// register tile. Loads are predicated, so any M, N, K work.
#pragma once
#include "tessera/common.cuh"

namespace tessera {

template <class In, class Out, int M, int N, int K, bool TRANS_A, bool TRANS_B, int BM, int BN, int BK, int TM,
          int TN, class Epilogue>
__device__ __forceinline__ void gemm_simt(const In* __restrict__ A, const In* __restrict__ B, Out* __restrict__ C,
                                          const Epilogue& epilogue) {
  constexpr int kThreadsN = BN / TN, kThreads = (BM / TM) * kThreadsN;
  __shared__ float sA[BK][BM + 1];  // A transposed: a k-slice of the tile is contiguous
  __shared__ float sB[BK][BN + 1];
  const long long batch = blockIdx.z;
  A += batch * (long long)M * K;
  B += batch * (long long)K * N;
  C += batch * (long long)M * N;
  constexpr int kGridN = (N + BN - 1) / BN;
  const int bm = blockIdx.x / kGridN, bn = blockIdx.x % kGridN;
  const int tid = threadIdx.x, tx = tid % kThreadsN, ty = tid / kThreadsN;

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += kThreads) {
      // Consecutive threads read consecutive addresses of whichever layout A has.
      const int r = TRANS_A ? i % BM : i / BK, c = TRANS_A ? i / BM : i % BK;
      const int gm = bm * BM + r, gk = k0 + c;
      float v = 0.0f;
      if (gm < M && gk < K) v = to_float(TRANS_A ? A[(long long)gk * M + gm] : A[(long long)gm * K + gk]);
      sA[c][r] = v;
    }
    for (int i = tid; i < BK * BN; i += kThreads) {
      const int r = TRANS_B ? i % BK : i / BN, c = TRANS_B ? i / BK : i % BN;
      const int gk = k0 + r, gn = bn * BN + c;
      float v = 0.0f;
      if (gk < K && gn < N) v = to_float(TRANS_B ? B[(long long)gn * K + gk] : B[(long long)gk * N + gn]);
      sB[r][c] = v;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = sA[kk][ty * TM + i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = sB[kk][tx * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int row = bm * BM + ty * TM + i, col = bn * BN + tx * TN + j;
      if (row < M && col < N) C[(long long)row * N + col] = from_float<Out>(epilogue(acc[i][j], batch, row, col));
    }
}

}  // namespace tessera
