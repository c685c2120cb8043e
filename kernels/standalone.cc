#include "kernels/standalone.h"

#include <cctype>
#include <set>
#include <sstream>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

// `text` with every #include "tessera/x" replaced by that header's text (each once).
std::string inline_headers(const std::string& text, std::set<std::string>& done) {
  static const auto headers = device_headers();
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    size_t q = line.find("#include \"tessera/");
    if (q == std::string::npos) {
      if (line != "#pragma once") out += line + "\n";
      continue;
    }
    std::string name = line.substr(q + 10, line.rfind('"') - (q + 10));
    if (!done.insert(name).second) continue;
    bool found = false;
    for (const auto& [n, body] : headers)
      if (n == name) {
        out += "// ---- " + name + " ----\n" + inline_headers(body, done);
        found = true;
      }
    TESSERA_CHECK(found, "unknown device header " + name);
  }
  return out;
}

}  // namespace

std::string standalone_prelude() {
  std::set<std::string> done;
  std::string all;
  for (const auto& [name, body] : device_headers()) all += "#include \"" + name + "\"\n";
  return inline_headers(all, done);
}

std::string standalone_kernel(const KernelSource& source, const std::string& id, int tensors) {
  std::string body;
  std::istringstream in(source.source);
  for (std::string line; std::getline(in, line);)
    if (line.find("#include \"tessera/") == std::string::npos) body += line + "\n";
  // C linkage names must be unique in a program: rename every entry of the plan.
  std::vector<KernelLaunch> plan = source.plan();
  std::vector<std::string> names;
  for (size_t i = 0; i < plan.size(); ++i) {
    names.push_back("tessera_" + id + "_kernel" + (i == 0 ? "" : "_" + std::to_string(i)));
    const std::string from = plan[i].entry + "(";
    for (size_t pos = 0; (pos = body.find(from, pos)) != std::string::npos; pos += names[i].size())
      body.replace(pos, plan[i].entry.size(), names[i]);
  }
  std::string ns = "tessera_" + id;
  std::string out = "namespace " + ns + " {\n" + body + "}  // namespace " + ns + "\n\n";
  out += "extern \"C\" int tessera_launch_" + id + "(void* const* tensors, void* workspace, cudaStream_t stream) {\n";
  const size_t fixed = static_cast<size_t>(tensors) + (source.workspace_bytes > 0 ? 1 : 0);
  const size_t count = fixed + source.tensor_maps.size();
  out += "  void* args[" + std::to_string(count) + "];\n  for (int i = 0; i < " + std::to_string(tensors) +
         "; ++i) args[i] = const_cast<void**>(&tensors[i]);\n";
  if (source.workspace_bytes > 0) out += "  args[" + std::to_string(tensors) + "] = &workspace;\n";
  else out += "  (void)workspace;\n";
  out += "  cudaError_t rc = cudaSuccess;\n";
  // The GPU must have what the code uses: sm_90a's instructions need exactly 9.0 (elsewhere
  // they were compiled to a trap), clusters 9.0 or later.
  bool clusters = false, persistent = false;
  for (const KernelLaunch& k : plan) {
    clusters = clusters || k.geometry.cluster > 1;
    persistent = persistent || k.geometry.persistent;
  }
  if (source.sm90a || clusters || persistent)
    out += "  int device = 0;\n  if ((rc = cudaGetDevice(&device)) != cudaSuccess) return rc;\n";
  if (source.sm90a || clusters) {
    out += "  {\n    int major = 0, minor = 0;\n"
           "    if ((rc = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) != cudaSuccess) return rc;\n"
           "    if ((rc = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device)) != cudaSuccess) return rc;\n";
    out += source.sm90a ? "    if (major != 9 || minor != 0) return cudaErrorNoKernelImageForDevice;  // sm_90a code\n"
                        : "    if (major < 9) return cudaErrorNoKernelImageForDevice;  // thread-block clusters\n";
    out += "  }\n";
  }
  if (!source.tensor_maps.empty()) {
    // TMA tensor maps over the tensors, through the runtime's driver entry points.
    bool tiled = false, im2col = false;
    for (const TensorMapSpec& m : source.tensor_maps) (m.im2col() ? im2col : tiled) = true;
    out += "  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;\n";
    if (tiled)
      out += "  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,\n"
             "                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,\n"
             "                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);\n"
             "  void* encode = nullptr;\n"
             "  rc = cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeTiled\", &encode, 12000, cudaEnableDefault, &found);\n"
             "  if (rc != cudaSuccess) return rc;\n  if (found != cudaDriverEntryPointSuccess) return cudaErrorNotSupported;\n";
    if (im2col)
      out += "  using EncodeIm2col = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,\n"
             "                                    const cuuint64_t*, const int*, const int*, cuuint32_t, cuuint32_t,\n"
             "                                    const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,\n"
             "                                    CUtensorMapL2promotion, CUtensorMapFloatOOBfill);\n"
             "  void* encode_im2col = nullptr;\n"
             "  rc = cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeIm2col\", &encode_im2col, 12000, cudaEnableDefault, "
             "&found);\n"
             "  if (rc != cudaSuccess) return rc;\n  if (found != cudaDriverEntryPointSuccess) return cudaErrorNotSupported;\n";
    for (size_t i = 0; i < source.tensor_maps.size(); ++i) {
      const TensorMapSpec& m = source.tensor_maps[i];
      auto list = [](const std::vector<int64_t>& v) {
        std::string t;
        for (int64_t x : v) t += (t.empty() ? "" : ", ") + std::to_string(x);
        return t;
      };
      std::string n = std::to_string(i), steps;
      // Over a tensor, or (the index after them) the workspace, from offset_bytes on.
      std::string base = m.tensor < tensors ? "tensors[" + std::to_string(m.tensor) + "]" : std::string("workspace");
      if (m.offset_bytes != 0) base = "static_cast<char*>(" + base + ") + " + std::to_string(m.offset_bytes);
      for (size_t d = 0; d < m.dims.size(); ++d)
        steps += (d ? ", " : "") + std::to_string(m.element_strides.empty() ? 1 : m.element_strides[d]);
      const char* type = m.dtype == DType::kBF16  ? "CU_TENSOR_MAP_DATA_TYPE_BFLOAT16"
                         : m.dtype == DType::kF32 ? "CU_TENSOR_MAP_DATA_TYPE_FLOAT32"
                                                  : "CU_TENSOR_MAP_DATA_TYPE_FLOAT16";
      const char* swizzle = m.swizzle_bytes == 128  ? "CU_TENSOR_MAP_SWIZZLE_128B"
                            : m.swizzle_bytes == 64 ? "CU_TENSOR_MAP_SWIZZLE_64B"
                            : m.swizzle_bytes == 32 ? "CU_TENSOR_MAP_SWIZZLE_32B"
                                                    : "CU_TENSOR_MAP_SWIZZLE_NONE";
      const std::string tail = std::string(swizzle) + ", CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE)";
      out += "  alignas(64) CUtensorMap map" + n + ";  // copied into the launch's parameters\n  {\n"
             "    const cuuint64_t dims[] = {" + list(m.dims) + "}, strides[] = {" + list(m.strides_bytes) + "};\n"
             "    const cuuint32_t steps[] = {" + steps + "};\n";
      if (m.im2col()) {
        out += "    const int lower[] = {" + list(m.lower_corner) + "}, upper[] = {" + list(m.upper_corner) + "};\n"
               "    if (reinterpret_cast<EncodeIm2col>(encode_im2col)(&map" + n + ", " + type + ", " +
               std::to_string(m.dims.size()) + ", " + base + ", dims, strides, lower, upper, " +
               std::to_string(m.box[0]) + ", " + std::to_string(m.box[1]) + ", steps, CU_TENSOR_MAP_INTERLEAVE_NONE, " +
               tail + " != CUDA_SUCCESS)\n";
      } else {
        out += "    const cuuint32_t box[] = {" + list(m.box) + "};\n"
               "    if (reinterpret_cast<Encode>(encode)(&map" + n + ", " + type + ", " + std::to_string(m.dims.size()) +
               ", " + base + ", dims, strides, box, steps, CU_TENSOR_MAP_INTERLEAVE_NONE, " +
               tail + " != CUDA_SUCCESS)\n";
      }
      out += "      return cudaErrorInvalidValue;\n  }\n  args[" + std::to_string(fixed + i) + "] = &map" + n + ";\n";
    }
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const LaunchGeometry& g = plan[i].geometry;
    std::string kernel = "reinterpret_cast<const void*>(&" + ns + "::" + names[i] + ")";
    if (g.dynamic_smem_bytes > 48 * 1024)
      out += "  rc = cudaFuncSetAttribute(" + kernel + ", cudaFuncAttributeMaxDynamicSharedMemorySize, " +
             std::to_string(g.dynamic_smem_bytes) + ");\n  if (rc != cudaSuccess) return rc;\n";
    std::string grid_x = std::to_string(g.grid[0]);
    out += "  {\n";
    if (g.persistent) {  // blocks_per_sm blocks per multiprocessor at most; they loop over the tiles
      out += "  int sms = 0;\n"
             "  if ((rc = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) != cudaSuccess) return rc;\n";
      if (g.blocks_per_sm > 1) out += "  sms *= " + std::to_string(g.blocks_per_sm) + ";\n";
      if (g.cluster > 1) {  // whole clusters, as many as the device holds at once
        const std::string c = std::to_string(g.cluster);
        out += "  {\n    cudaLaunchConfig_t config{};\n    config.gridDim = dim3(" + grid_x + ", 1, 1);\n"
               "    config.blockDim = dim3(" + std::to_string(g.block[0]) + ", " + std::to_string(g.block[1]) + ", " +
               std::to_string(g.block[2]) + ");\n    config.dynamicSmemBytes = " + std::to_string(g.dynamic_smem_bytes) +
               ";\n    int clusters = 0;\n"
               "    if ((rc = cudaOccupancyMaxActiveClusters(&clusters, " + kernel + ", &config)) != cudaSuccess) return rc;\n"
               "    sms = (sms / " + c + " < clusters ? sms / " + c + " : clusters) * " + c + ";\n  }\n";
      }
      grid_x = "static_cast<unsigned>(sms < " + grid_x + " ? sms : " + grid_x + ")";
    }
    out += "  rc = cudaLaunchKernel(" + kernel + ", dim3(" + grid_x + ", " + std::to_string(g.grid[1]) + ", " +
           std::to_string(g.grid[2]) + "), dim3(" + std::to_string(g.block[0]) + ", " + std::to_string(g.block[1]) +
           ", " + std::to_string(g.block[2]) + "), args, " + std::to_string(g.dynamic_smem_bytes) +
           ", stream);\n  if (rc != cudaSuccess) return rc;\n  }\n";
  }
  out += "  return rc;\n}\n";
  return out;
}

std::string standalone_declaration(const KernelSource& source, const std::string& id) {
  std::string upper;
  for (char c : id) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return "#define TESSERA_WORKSPACE_BYTES_" + upper + " " + std::to_string(source.workspace_bytes) + "ULL\n" +
         "int tessera_launch_" + id + "(void* const* tensors, void* workspace, struct CUstream_st* stream);\n";
}

}  // namespace tessera::kernels
