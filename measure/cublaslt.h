// cuBLASLt for matmul and batch_matmul workloads (row-major, any transposes): the GPU
// reference (f32 accumulation into f32, no epilogue: the host applies it) and the vendor
// baseline (the workload's dtypes, with the epilogue fused where cuBLASLt can). Only with CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/workload.h"

namespace tessera::measure {

/// One prepared cuBLASLt matmul: D = epilogue(A B [+ C]) over device pointers in the
/// workload's tensor order (A, B, then bias / residual, and D).
class LtMatmul {
 public:
  /// The reference form (f32 out, exact f32 compute, no epilogue) or the vendor form.
  /// nullopt with `why` set if cuBLASLt cannot express it (e.g. an epilogue order it has no
  /// fused form for). Throws ApiError on cuBLASLt failures.
  static std::optional<LtMatmul> make(const Workload& w, bool reference, std::string& why);
  LtMatmul(LtMatmul&&) noexcept;
  LtMatmul& operator=(LtMatmul&& o) noexcept {
    std::swap(s_, o.s_);
    std::swap(algos_, o.algos_);
    return *this;
  }
  ~LtMatmul();

  /// Number of algorithms the heuristic offered (at most `limit` asked).
  int algorithms() const { return static_cast<int>(algos_.size()); }
  /// Enqueues the matmul with algorithm `algo` on `stream`; `tensors` are device pointers
  /// (A, B, epilogue inputs, D). Returns the cuBLAS status as text, or "" on success.
  std::string launch(int algo, const std::vector<void*>& tensors, cudaStream_t stream) const;

 private:
  struct State;
  explicit LtMatmul(State* s);
  State* s_;
  std::vector<int> algos_;
};

}  // namespace tessera::measure
