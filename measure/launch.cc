#include "measure/launch.h"

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

LaunchOutcome launch_once(const kernels::CompiledKernel& kernel, const kernels::LaunchGeometry& g,
                          std::span<void*> args) {
  auto failed = [](Status s, const char* what, cudaError_t rc) {
    return LaunchOutcome{s, std::string(what) + ": " + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc)};
  };
  if (kernel.status != Status::kOk) return {Status::kLaunchError, "kernel did not compile: " + kernel.error};
  cudaLibrary_t lib = nullptr;
  cudaError_t rc = cudaLibraryLoadData(&lib, kernel.cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (rc != cudaSuccess) return failed(Status::kLaunchError, "cudaLibraryLoadData", rc);
  LaunchOutcome out;
  cudaKernel_t k = nullptr;
  rc = cudaLibraryGetKernel(&k, lib, kernel.entry.c_str());
  if (rc != cudaSuccess) {
    out = failed(Status::kLaunchError, "cudaLibraryGetKernel", rc);
  } else {
    int device = 0;
    cudaGetDevice(&device);
    if (g.dynamic_smem_bytes > 48 * 1024)
      rc = cudaKernelSetAttributeForDevice(k, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(g.dynamic_smem_bytes), device);
    if (rc == cudaSuccess) {
      dim3 grid(static_cast<unsigned>(g.grid[0]), static_cast<unsigned>(g.grid[1]), static_cast<unsigned>(g.grid[2]));
      dim3 block(static_cast<unsigned>(g.block[0]), static_cast<unsigned>(g.block[1]), static_cast<unsigned>(g.block[2]));
      rc = cudaLaunchKernel(reinterpret_cast<const void*>(k), grid, block, args.data(),
                            static_cast<size_t>(g.dynamic_smem_bytes), nullptr);
      if (rc != cudaSuccess) {
        out = failed(Status::kLaunchError, "cudaLaunchKernel", rc);
      } else if ((rc = cudaDeviceSynchronize()) != cudaSuccess) {
        out = failed(Status::kCrashed, "kernel execution", rc);
      }
    } else {
      out = failed(Status::kLaunchError, "cudaKernelSetAttributeForDevice", rc);
    }
  }
  cudaLibraryUnload(lib);
  return out;
}
#else
DeviceBuffer::DeviceBuffer(size_t) { throw UserError("GPU memory needs a GPU: this tessera was built without CUDA support"); }
DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {}
void DeviceBuffer::upload(std::span<const uint8_t>) {}
void DeviceBuffer::fill(uint8_t) {}
std::vector<uint8_t> DeviceBuffer::download() const { return {}; }
LaunchOutcome launch_once(const kernels::CompiledKernel&, const kernels::LaunchGeometry&, std::span<void*>) {
  return {Status::kLaunchError, "this tessera was built without CUDA support"};
}
#endif

}  // namespace tessera::measure
