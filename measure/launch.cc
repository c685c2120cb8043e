#include "measure/launch.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "core/error.h"
#include "measure/cuda_call.h"
#include "measure/driver_api.h"

#if TESSERA_HAVE_CUDA
#include <cuda.h>
#endif

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
    kernels::LaunchGeometry g = step.geometry;
    if (g.persistent) {
      int sms = 0;
      if ((rc = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) {
        failed("cudaDeviceGetAttribute(multiProcessorCount)", rc);
        return;
      }
      int64_t most = int64_t{sms} * std::max<int64_t>(g.blocks_per_sm, 1);
      if (g.cluster > 1) {  // whole clusters, as many as fit at once (GPCs may leave SMs over)
        cudaLaunchConfig_t config{};
        config.gridDim = dim3(static_cast<unsigned>(g.grid[0]), 1, 1);
        config.blockDim = dim3(static_cast<unsigned>(g.block[0]), static_cast<unsigned>(g.block[1]),
                               static_cast<unsigned>(g.block[2]));
        config.dynamicSmemBytes = static_cast<size_t>(g.dynamic_smem_bytes);
        int clusters = 0;
        if ((rc = cudaOccupancyMaxActiveClusters(&clusters, static_cast<const void*>(k), &config)) != cudaSuccess) {
          failed("cudaOccupancyMaxActiveClusters " + step.entry, rc);
          return;
        }
        if (clusters < 1) {
          error_ = step.entry + ": no cluster of " + std::to_string(g.cluster) + " blocks fits on this device";
          return;
        }
        most = std::min<int64_t>(most / g.cluster, clusters) * g.cluster;
      }
      g.grid[0] = std::min<int64_t>(g.grid[0], most);
    }
    steps_.emplace_back(reinterpret_cast<void*>(k), g);
  }
  map_specs_ = plan.tensor_maps;
}

std::string encode_tensor_map(const kernels::TensorMapSpec& spec, void* base, void* map) {
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                              const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                              CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  using EncodeIm2col = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                    const cuuint64_t*, const int*, const int*, cuuint32_t, cuuint32_t, const cuuint32_t*,
                                    CUtensorMapInterleave, CUtensorMapSwizzle, CUtensorMapL2promotion,
                                    CUtensorMapFloatOOBfill);
  static Encode encode = nullptr;
  static EncodeIm2col encode_im2col = nullptr;
  try {
    if (!spec.im2col() && encode == nullptr) encode = driver_function<Encode>("cuTensorMapEncodeTiled", 12000);
    if (spec.im2col() && encode_im2col == nullptr)
      encode_im2col = driver_function<EncodeIm2col>("cuTensorMapEncodeIm2col", 12000);
  } catch (const std::exception& e) {
    return e.what();
  }
  const std::string what = "tensor map of tensor " + std::to_string(spec.tensor);
  size_t rank = spec.dims.size();
  if (rank < 1 || rank > 5 || spec.strides_bytes.size() + 1 != rank ||
      (!spec.element_strides.empty() && spec.element_strides.size() != rank))
    return what + ": inconsistent ranks";
  if (spec.im2col() ? spec.box.size() != 2 || rank < 3 || spec.lower_corner.size() != rank - 2 ||
                          spec.upper_corner.size() != rank - 2
                    : spec.box.size() != rank)
    return what + ": inconsistent box or corners";
  CUtensorMapDataType type = spec.dtype == DType::kBF16  ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                             : spec.dtype == DType::kF32 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
                                                         : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  CUtensorMapSwizzle swizzle = spec.swizzle_bytes == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                               : spec.swizzle_bytes == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                               : spec.swizzle_bytes == 32 ? CU_TENSOR_MAP_SWIZZLE_32B
                                                          : CU_TENSOR_MAP_SWIZZLE_NONE;
  cuuint64_t dims[5], strides[4];
  cuuint32_t box[5], element_strides[5];
  for (size_t i = 0; i < rank; ++i) {
    dims[i] = static_cast<cuuint64_t>(spec.dims[i]);
    element_strides[i] = spec.element_strides.empty() ? 1 : static_cast<cuuint32_t>(spec.element_strides[i]);
    if (i + 1 < rank) strides[i] = static_cast<cuuint64_t>(spec.strides_bytes[i]);
  }
  CUresult rc;
  if (spec.im2col()) {
    int lower[3], upper[3];
    for (size_t i = 0; i + 2 < rank; ++i) {
      lower[i] = static_cast<int>(spec.lower_corner[i]);
      upper[i] = static_cast<int>(spec.upper_corner[i]);
    }
    rc = encode_im2col(static_cast<CUtensorMap*>(map), type, static_cast<cuuint32_t>(rank), base, dims, strides, lower, upper,
                       static_cast<cuuint32_t>(spec.box[0]), static_cast<cuuint32_t>(spec.box[1]), element_strides,
                       CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                       CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  } else {
    for (size_t i = 0; i < rank; ++i) box[i] = static_cast<cuuint32_t>(spec.box[i]);
    rc = encode(static_cast<CUtensorMap*>(map), type, static_cast<cuuint32_t>(rank), base, dims, strides, box,
                element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  }
  if (rc != CUDA_SUCCESS)
    return std::string(spec.im2col() ? "cuTensorMapEncodeIm2col" : "cuTensorMapEncodeTiled") + " (tensor " +
           std::to_string(spec.tensor) + ") failed: CUresult " + std::to_string(rc);
  return "";
}

LoadedPlan::~LoadedPlan() {
  if (library_) cudaLibraryUnload(static_cast<cudaLibrary_t>(library_));
}

std::string LoadedPlan::enqueue(std::span<void* const> args, void* stream) const {
  std::vector<void*> all(args.begin(), args.end());
  if (!map_specs_.empty()) {
    maps_.resize(map_specs_.size());
    maps_for_.resize(map_specs_.size(), nullptr);
    for (size_t i = 0; i < map_specs_.size(); ++i) {
      const kernels::TensorMapSpec& spec = map_specs_[i];
      if (spec.tensor < 0 || static_cast<size_t>(spec.tensor) >= args.size())
        return "tensor map of tensor " + std::to_string(spec.tensor) + ": no such argument";
      void* base = static_cast<char*>(*static_cast<void* const*>(args[static_cast<size_t>(spec.tensor)])) + spec.offset_bytes;
      if (base != maps_for_[i]) {
        if (std::string err = encode_tensor_map(spec, base, maps_[i].bytes); !err.empty()) return err;
        maps_for_[i] = base;
      }
      all.push_back(maps_[i].bytes);
    }
  }
  for (const auto& [k, g] : steps_) {
    dim3 grid(static_cast<unsigned>(g.grid[0]), static_cast<unsigned>(g.grid[1]), static_cast<unsigned>(g.grid[2]));
    dim3 block(static_cast<unsigned>(g.block[0]), static_cast<unsigned>(g.block[1]), static_cast<unsigned>(g.block[2]));
    cudaError_t rc = cudaLaunchKernel(static_cast<const void*>(k), grid, block, all.data(),
                                      static_cast<size_t>(g.dynamic_smem_bytes), static_cast<cudaStream_t>(stream));
    if (rc != cudaSuccess) return std::string("cudaLaunchKernel: ") + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc);
  }
  return "";
}

LaunchOutcome launch_once(const kernels::CompiledKernel& kernel, const kernels::KernelSource& source,
                          std::span<void*> tensors, const std::function<void()>& again) {
  if (kernel.status != Status::kOk) return {Status::kLaunchError, "kernel did not compile: " + kernel.error};
  std::optional<DeviceBuffer> workspace;
  if (source.workspace_bytes > 0) workspace.emplace(static_cast<size_t>(source.workspace_bytes));
  void* workspace_ptr = workspace ? workspace->data() : nullptr;
  std::vector<void*> args(tensors.begin(), tensors.end());
  if (workspace) args.push_back(&workspace_ptr);
  LoadedPlan plan(kernel.cubin, source);
  if (!plan.ok()) return {Status::kLaunchError, plan.error()};
  for (int run = 0; run < (again ? 2 : 1); ++run) {
    if (run > 0) again();
    if (std::string err = plan.enqueue(args); !err.empty()) return {Status::kLaunchError, err};
    if (cudaError_t rc = cudaDeviceSynchronize(); rc != cudaSuccess)
      return {Status::kCrashed, std::string("kernel execution: ") + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc)};
  }
  return {};
}
#else
LoadedPlan::LoadedPlan(const std::string&, const kernels::KernelSource&)
    : error_("this tessera was built without CUDA support") {}
LoadedPlan::~LoadedPlan() = default;
std::string LoadedPlan::enqueue(std::span<void* const>, void*) const { return error_; }
std::string encode_tensor_map(const kernels::TensorMapSpec&, void*, void*) {
  return "this tessera was built without CUDA support";
}
DeviceBuffer::DeviceBuffer(size_t) { throw UserError("GPU memory needs a GPU: this tessera was built without CUDA support"); }
DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {}
void DeviceBuffer::upload(std::span<const uint8_t>) {}
void DeviceBuffer::fill(uint8_t) {}
std::vector<uint8_t> DeviceBuffer::download() const { return {}; }
LaunchOutcome launch_once(const kernels::CompiledKernel&, const kernels::KernelSource&, std::span<void*>,
                          const std::function<void()>&) {
  return {Status::kLaunchError, "this tessera was built without CUDA support"};
}
#endif

}  // namespace tessera::measure
