#include "measure/devices.h"

#include "core/error.h"
#include "kernels/nvrtc.h"
#include "measure/cuda_call.h"

namespace tessera::measure {
namespace {
#if TESSERA_HAVE_CUDA
std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

int attribute(cudaDeviceAttr attr, int device) {
  int value = 0;
  TESSERA_CUDA_CALL(cudaDeviceGetAttribute(&value, attr, device));
  return value;
}

Device query_device(int index, const std::string& driver) {
  cudaDeviceProp p{};
  TESSERA_CUDA_CALL(cudaGetDeviceProperties(&p, index));
  Device d;
  d.index = index;
  DeviceProperties& props = d.properties;
  props.name = p.name;
  props.cc_major = p.major;
  props.cc_minor = p.minor;
  props.sm_count = p.multiProcessorCount;
  props.sm_clock_mhz = attribute(cudaDevAttrClockRate, index) / 1000.0;
  // DDR memory moves data on both clock edges: bytes/s = 2 * clock * bus width / 8.
  double mem_clock_khz = attribute(cudaDevAttrMemoryClockRate, index);
  double bus_bits = attribute(cudaDevAttrGlobalMemoryBusWidth, index);
  props.dram_bandwidth_gbps = 2.0 * mem_clock_khz * 1e3 * bus_bits / 8 / 1e9;
  props.dram_bytes = static_cast<int64_t>(p.totalGlobalMem);
  props.l2_bytes = p.l2CacheSize;
  props.smem_per_sm_bytes = static_cast<int64_t>(p.sharedMemPerMultiprocessor);
  props.smem_per_block_bytes = static_cast<int64_t>(p.sharedMemPerBlockOptin);
  props.registers_per_sm = p.regsPerMultiprocessor;
  props.registers_per_block = p.regsPerBlock;
  props.max_threads_per_sm = p.maxThreadsPerMultiProcessor;
  props.max_threads_per_block = p.maxThreadsPerBlock;
  props.max_blocks_per_sm = p.maxBlocksPerMultiProcessor;
  props.warp_size = p.warpSize;
  d.spec = spec_for_device(props);
  d.target.gpu_name = props.name;
  d.target.spec_name = d.spec ? d.spec->name : "unknown";
  d.target.cc_major = props.cc_major;
  d.target.cc_minor = props.cc_minor;
  d.target.sm_count = props.sm_count;
  d.target.driver_version = driver;
  d.target.runtime_version = cuda_runtime_version();
  d.target.toolkit_version = kernels::nvrtc_version();
  return d;
}
#endif
}  // namespace

#if TESSERA_HAVE_CUDA
std::string cuda_runtime_version() {
  int v = 0;
  TESSERA_CUDA_CALL(cudaRuntimeGetVersion(&v));
  return version_text(v);
}

DeviceScan scan_devices() {
  DeviceScan scan;
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    scan.reason = std::string("the CUDA runtime found no usable GPU: ") + cudaGetErrorString(rc);
    return scan;
  }
  if (count == 0) {
    scan.reason = "the CUDA driver reports no GPU";
    return scan;
  }
  int driver = 0;
  TESSERA_CUDA_CALL(cudaDriverGetVersion(&driver));
  for (int i = 0; i < count; ++i) scan.devices.push_back(query_device(i, version_text(driver)));
  return scan;
}
#else
std::string cuda_runtime_version() { return "none"; }

DeviceScan scan_devices() { return {{}, "this tessera was built without CUDA support"}; }
#endif

ResolvedTarget resolve_target(const std::string& name_or_path) {
  if (!name_or_path.empty()) {
    HardwareSpec spec = find_spec(name_or_path);
    return {spec, Target::for_spec(spec, kernels::nvrtc_version()), false};
  }
  DeviceScan scan = scan_devices();
  if (scan.devices.empty())
    throw UserError("no GPU found (" + scan.reason + "); name a target with --target (see `tessera targets`)");
  const Device& d = scan.devices.front();
  if (!d.spec)
    throw UserError("GPU '" + d.properties.name + "' (" + d.target.arch() +
                    ") matches no known spec; pass --target with a spec .json for it");
  return {*d.spec, d.target, true};
}

}  // namespace tessera::measure
