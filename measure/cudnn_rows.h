// cuDNN's own routines for the row operators it has (softmax: cudnnSoftmaxForward; sum, max
// and mean over the last axis: cudnnReduceTensor), timed beside the copy baseline of those
// kinds. Loaded at run time (dlopen of libcudnn.so.9) like CudnnConv; where cuDNN or the
// routine is missing (layernorm is only in cuDNN's graph API) `make` says why. Only with CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/workload.h"

namespace tessera::measure {

class CudnnRows {
 public:
  /// The routine for `w` (softmax, or reduce whose input and output types match), or nullopt
  /// with `why`.
  static std::optional<CudnnRows> make(const Workload& w, std::string& why);
  CudnnRows(CudnnRows&&) noexcept;
  CudnnRows& operator=(CudnnRows&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~CudnnRows();

  /// e.g. "cudnnSoftmaxForward (ACCURATE, INSTANCE)".
  std::string routine() const;
  /// Enqueues the routine; `tensors` in the workload's order (X, Y). cuDNN's error text, or
  /// "" on success.
  std::string launch(const std::vector<void*>& tensors, cudaStream_t stream) const;

 private:
  struct State;
  explicit CudnnRows(State* s);
  State* s_;
};

}  // namespace tessera::measure
