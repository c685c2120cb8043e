#include "measure/devices.h"

#include <cctype>
#include <fstream>
#include <sstream>

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

std::string parse_nvidia_driver_release(std::string_view text) {
  // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue ..." (proprietary) or
  // "... UNIX Open Kernel Module for x86_64  550.54.15  Release Build ..." (open modules):
  // the first dotted number after "Kernel Module" on that line.
  size_t pos = text.find("Kernel Module");
  if (pos == std::string_view::npos) return "";
  std::string_view line = text.substr(pos, text.find('\n', pos) - pos);
  std::istringstream words{std::string(line)};
  for (std::string word; words >> word;) {
    bool dotted = word.find('.') != std::string::npos && isdigit(static_cast<unsigned char>(word.front())) &&
                  word.find_first_not_of("0123456789.") == std::string::npos;
    if (dotted) return word;
  }
  return "";
}

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
  int driver_api = 0;
  TESSERA_CUDA_CALL(cudaDriverGetVersion(&driver_api));
  // Kernels can run differently under two driver releases of the same CUDA version, so the
  // fingerprint carries the release when the kernel module says it.
  std::ifstream proc("/proc/driver/nvidia/version");
  std::stringstream text;
  text << proc.rdbuf();
  std::string release = parse_nvidia_driver_release(text.str());
  std::string driver = (release.empty() ? "" : release + " ") + "CUDA " + version_text(driver_api);
  for (int i = 0; i < count; ++i) scan.devices.push_back(query_device(i, driver));
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

TargetChoice choose_target(const std::optional<std::string>& requested, const DeviceScan& scan,
                           const std::optional<Target>& fallback) {
  if (requested) {
    HardwareSpec spec = find_spec(*requested);
    return {spec, Target::for_spec(spec, kernels::nvrtc_version()), false, ""};
  }
  if (fallback) return {find_spec(fallback->spec_name), *fallback, false, ""};
  if (!scan.devices.empty() && scan.devices.front().spec)
    return {*scan.devices.front().spec, scan.devices.front().target, true, ""};
  HardwareSpec spec = find_spec(kDefaultSpec);
  std::string why = scan.devices.empty() ? "no GPU found (" + scan.reason + ")"
                                         : "GPU '" + scan.devices.front().properties.name + "' has no known spec";
  return {spec, Target::for_spec(spec, kernels::nvrtc_version()), false,
          why + ": ranking for " + kDefaultSpec + " (pass --target to choose)"};
}

}  // namespace tessera::measure
