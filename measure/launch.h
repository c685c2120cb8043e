// Running a compiled kernel once on the GPU: device buffers and a single launch through the
// CUDA runtime's library API (cudaLibraryLoadData), so no driver library is linked.
// Used by correctness checks; timing (CUPTI) is the measurement issue's.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/measurement.h"
#include "kernels/builder.h"

namespace tessera::measure {

/// GPU memory owned by this object (cudaMalloc / cudaFree). Throws ApiError on failure.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void upload(std::span<const uint8_t> bytes);
  /// Sets every byte to `value` (0xFF poisons float outputs with NaN).
  void fill(uint8_t value);
  std::vector<uint8_t> download() const;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

/// A compiled launch plan loaded on the current device: the cubin's library and a kernel
/// handle per step of the plan, with shared-memory limits raised where a step needs it.
class LoadedPlan {
 public:
  /// Loads `cubin` and resolves every entry of `plan`; on failure ok() is false and error()
  /// says why.
  LoadedPlan(const std::string& cubin, const kernels::KernelSource& plan);
  ~LoadedPlan();
  LoadedPlan(const LoadedPlan&) = delete;
  LoadedPlan& operator=(const LoadedPlan&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  /// Enqueues the plan's kernels in order on `stream` (a cudaStream_t; null: the default
  /// stream) with `args`: one pointer to each argument's value, the tensors and then the
  /// workspace pointer when the plan has one. The plan's tensor maps are built over those
  /// tensors (again only when their addresses change) and passed after them. "" on success,
  /// else the first error. Does not wait.
  std::string enqueue(std::span<void* const> args, void* stream = nullptr) const;
  /// Blocks launched along x by step `i` (a persistent kernel's cap applied).
  int64_t launched_blocks(size_t i) const { return i < steps_.size() ? steps_[i].second.grid[0] : 0; }

 private:
  struct alignas(64) TensorMapBytes {
    unsigned char bytes[128];
  };
  void* library_ = nullptr;
  std::vector<std::pair<void*, kernels::LaunchGeometry>> steps_;  // (cudaKernel_t, geometry)
  std::vector<kernels::TensorMapSpec> map_specs_;
  mutable std::vector<TensorMapBytes> maps_;  // built for the addresses in maps_for_
  mutable std::vector<void*> maps_for_;
  std::string error_;
};

/// Encodes `spec` over the device address `base` into `map` (128 bytes, 64-byte aligned)
/// with cuTensorMapEncodeTiled (cuTensorMapEncodeIm2col for an im2col map). "" on success,
/// else why not.
std::string encode_tensor_map(const kernels::TensorMapSpec& spec, void* base, void* map);

/// How one launch ended.
struct LaunchOutcome {
  Status status = Status::kOk;  ///< kOk, kLaunchError (would not load or launch) or kCrashed (faulted)
  std::string error;
};

/// Loads the cubin, runs the source's launch plan once (its kernels in order, with a
/// workspace allocated here when the plan needs one) and waits for it. `tensors` holds one
/// pointer to each tensor's device pointer: inputs, then the output. With `again`, calls it
/// once the run is done (to poison the output, say) and runs the plan a second time on the
/// same workspace: a plan must leave its workspace as a next launch needs it.
LaunchOutcome launch_once(const kernels::CompiledKernel& kernel, const kernels::KernelSource& source,
                          std::span<void*> tensors, const std::function<void()>& again = {});

/// "sm_90a" for Hopper (its wgmma/TMA features need the a-suffix), else "sm_XY".
std::string nvrtc_arch(int cc_major, int cc_minor);

}  // namespace tessera::measure
