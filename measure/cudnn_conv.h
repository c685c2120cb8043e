// cuDNN for conv2d workloads: the vendor baseline, loaded at run time (dlopen of
// libcudnn.so.9) so that tessera neither links nor requires it; where it is absent the
// baseline says so. An epilogue of bias, residual and a final relu runs fused, through
// cudnnConvolutionBiasActivationForward (y = act(conv(x) + z + bias)); other epilogues (GELU)
// have no fused form there, and the convolution then runs alone, which the record's
// conditions say. Only with CUDA.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/workload.h"

namespace tessera::measure {

/// Where a conv2d epilogue's inputs lie among the workload's tensors (X, W, epilogue inputs, Y)
/// when cuDNN's fused form y = act(conv(x) + z + bias), act relu or identity, expresses it: a
/// bias and a residual at most once each, a relu only last, no GELU; nullopt otherwise.
struct CudnnFusedEpilogue {
  int bias = -1, residual = -1;  ///< tensor indices, or -1
  bool relu = false;
};
std::optional<CudnnFusedEpilogue> cudnn_fused_epilogue(const std::vector<EpilogueOp>& ops);

class CudnnConv {
 public:
  /// Prepared convolution for `w` with up to 8 algorithms from cuDNN's heuristic, or nullopt
  /// with `why` (cuDNN missing, or the shape unsupported). With `fuse`, the workload's epilogue
  /// runs in the same call, or nullopt if cuDNN has no fused form of it.
  static std::optional<CudnnConv> make(const Workload& w, std::string& why, bool fuse = false);
  CudnnConv(CudnnConv&&) noexcept;
  CudnnConv& operator=(CudnnConv&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~CudnnConv();

  int algorithms() const;
  /// cuDNN's name for algorithm `i`, e.g. "IMPLICIT_PRECOMP_GEMM".
  std::string algorithm_name(int i) const;
  /// Whether launch() applies the workload's epilogue.
  bool fused() const;
  /// Enqueues Y = conv(X, W) (fused: with the epilogue) with algorithm `i`; `tensors` in the
  /// workload's order (X, W, epilogue inputs, Y). Returns cuDNN's error text, or "" on success.
  /// A fused call may fail for some algorithms (identity activation: implicit precomputed GEMM
  /// only).
  std::string launch(int i, const std::vector<void*>& tensors, cudaStream_t stream) const;

 private:
  struct State;
  explicit CudnnConv(State* s);
  State* s_;
};

}  // namespace tessera::measure
