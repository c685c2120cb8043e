// Row operators over the last axis (softmax, layernorm, reductions): ROW_THREADS threads
// share a row, ROWS_PER_BLOCK rows per block, VEC elements per load.
#pragma once
#include "tessera/common.cuh"

namespace tessera {

/// Reduction of `v` over the ROW_THREADS threads of a row (threads of one row are
/// consecutive; rows of more than a warp combine their warps through shared memory).
template <int ROW_THREADS, int ROWS_PER_BLOCK, bool MAX>
__device__ __forceinline__ float row_reduce(float v, float* scratch) {
  constexpr int kWidth = ROW_THREADS < 32 ? ROW_THREADS : 32;
  v = MAX ? group_max<kWidth>(v) : group_sum<kWidth>(v);
  if constexpr (ROW_THREADS > 32) {
    constexpr int kWarps = ROW_THREADS / 32;
    int row = threadIdx.x / ROW_THREADS, warp = (threadIdx.x % ROW_THREADS) / 32, lane = threadIdx.x % 32;
    __syncthreads();  // scratch may still be read by the previous reduction
    if (lane == 0) scratch[row * kWarps + warp] = v;
    __syncthreads();
    v = scratch[row * kWarps];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) v = MAX ? fmaxf(v, scratch[row * kWarps + w]) : v + scratch[row * kWarps + w];
  }
  return v;
}

}  // namespace tessera
