#include "measure/launch.h"

#include <optional>
#include <vector>

#include "core/error.h"
#include "measure/cuda_call.h"

namespace tessera::measure {

std::string nvrtc_arch(int cc_major, int cc_minor) {
  return "sm_" + std::to_string(cc_major) + std::to_string(cc_minor) + (cc_major == 9 && cc_minor == 0 ? "a" : "");
}

#if TESSERA_HAVE_CUDA
DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) { TESSERA_CUDA_CALL(cudaMalloc(&ptr_, std::max<size_t>(bytes, 1))); }
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {}
void DeviceBuffer::upload(std::span<const uint8_t> bytes) {
  TESSERA_CHECK(bytes.size() == bytes_, "upload size differs from the buffer's");
  TESSERA_CUDA_CALL(cudaMemcpy(ptr_, bytes.data(), bytes.size(), cudaMemcpyHostToDevice));
}
void DeviceBuffer::fill(uint8_t value) { TESSERA_CUDA_CALL(cudaMemset(ptr_, value, bytes_)); }
std::vector<uint8_t> DeviceBuffer::download() const {
  std::vector<uint8_t> out(bytes_);
  TESSERA_CUDA_CALL(cudaMemcpy(out.data(), ptr_, bytes_, cudaMemcpyDeviceToHost));
  return out;
}

LoadedPlan::LoadedPlan(const std::string& cubin, const kernels::KernelSource& plan) {
  auto failed = [&](const std::string& what, cudaError_t rc) {
    error_ = what + ": " + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc);
  };
  cudaLibrary_t lib = nullptr;
  cudaError_t rc = cudaLibraryLoadData(&lib, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (rc != cudaSuccess) {
    failed("cudaLibraryLoadData", rc);
    return;
  }
  library_ = lib;
  int device = 0;
  cudaGetDevice(&device);
  for (const kernels::KernelLaunch& step : plan.plan()) {
    cudaKernel_t k = nullptr;
    if ((rc = cudaLibraryGetKernel(&k, lib, step.entry.c_str())) != cudaSuccess) {
      failed("cudaLibraryGetKernel " + step.entry, rc);
      return;
    }
    if (step.geometry.dynamic_smem_bytes > 48 * 1024 &&
        (rc = cudaKernelSetAttributeForDevice(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              static_cast<int>(step.geometry.dynamic_smem_bytes), device)) != cudaSuccess) {
      failed("cudaKernelSetAttributeForDevice " + step.entry, rc);
      return;
    }
    steps_.emplace_back(reinterpret_cast<void*>(k), step.geometry);
  }
}

LoadedPlan::~LoadedPlan() {
  if (library_) cudaLibraryUnload(static_cast<cudaLibrary_t>(library_));
}

std::string LoadedPlan::enqueue(void** args, void* stream) const {
  for (const auto& [k, g] : steps_) {
    dim3 grid(static_cast<unsigned>(g.grid[0]), static_cast<unsigned>(g.grid[1]), static_cast<unsigned>(g.grid[2]));
    dim3 block(static_cast<unsigned>(g.block[0]), static_cast<unsigned>(g.block[1]), static_cast<unsigned>(g.block[2]));
    cudaError_t rc = cudaLaunchKernel(static_cast<const void*>(k), grid, block, args,
                                      static_cast<size_t>(g.dynamic_smem_bytes), static_cast<cudaStream_t>(stream));
    if (rc != cudaSuccess) return std::string("cudaLaunchKernel: ") + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc);
  }
  return "";
}

LaunchOutcome launch_once(const kernels::CompiledKernel& kernel, const kernels::KernelSource& source,
                          std::span<void*> tensors) {
  if (kernel.status != Status::kOk) return {Status::kLaunchError, "kernel did not compile: " + kernel.error};
  std::optional<DeviceBuffer> workspace;
  if (source.workspace_bytes > 0) workspace.emplace(static_cast<size_t>(source.workspace_bytes));
  void* workspace_ptr = workspace ? workspace->data() : nullptr;
  std::vector<void*> args(tensors.begin(), tensors.end());
  if (workspace) args.push_back(&workspace_ptr);
  LoadedPlan plan(kernel.cubin, source);
  if (!plan.ok()) return {Status::kLaunchError, plan.error()};
  if (std::string err = plan.enqueue(args.data()); !err.empty()) return {Status::kLaunchError, err};
  if (cudaError_t rc = cudaDeviceSynchronize(); rc != cudaSuccess)
    return {Status::kCrashed, std::string("kernel execution: ") + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc)};
  return {};
}
#else
LoadedPlan::LoadedPlan(const std::string&, const kernels::KernelSource&)
    : error_("this tessera was built without CUDA support") {}
LoadedPlan::~LoadedPlan() = default;
std::string LoadedPlan::enqueue(void**, void*) const { return error_; }
DeviceBuffer::DeviceBuffer(size_t) { throw UserError("GPU memory needs a GPU: this tessera was built without CUDA support"); }
DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {}
void DeviceBuffer::upload(std::span<const uint8_t>) {}
void DeviceBuffer::fill(uint8_t) {}
std::vector<uint8_t> DeviceBuffer::download() const { return {}; }
LaunchOutcome launch_once(const kernels::CompiledKernel&, const kernels::KernelSource&, std::span<void*>) {
  return {Status::kLaunchError, "this tessera was built without CUDA support"};
}
#endif

}  // namespace tessera::measure
