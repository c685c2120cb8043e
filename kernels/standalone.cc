#include "kernels/standalone.h"

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
  out += "/// Bytes of device scratch memory tessera_launch_" + id + " needs as `workspace` (0: none).\n";
  out += "inline constexpr unsigned long long tessera_workspace_bytes_" + id + " = " +
         std::to_string(source.workspace_bytes) + "ULL;\n";
  out += "/// Launches " + ns + " on `stream`; `tensors` are device pointers to the workload's inputs, then its\n"
         "/// output; `workspace` points to tessera_workspace_bytes_" + id + " bytes of device memory (or is null when 0).\n";
  out += "inline cudaError_t tessera_launch_" + id + "(void* const* tensors, void* workspace, cudaStream_t stream) {\n";
  out += "  void* args[" + std::to_string(tensors + 1) + "];\n  for (int i = 0; i < " + std::to_string(tensors) +
         "; ++i) args[i] = const_cast<void**>(&tensors[i]);\n  args[" + std::to_string(tensors) + "] = &workspace;\n";
  out += "  cudaError_t rc = cudaSuccess;\n";
  for (size_t i = 0; i < plan.size(); ++i) {
    const LaunchGeometry& g = plan[i].geometry;
    std::string kernel = "reinterpret_cast<const void*>(&" + ns + "::" + names[i] + ")";
    if (g.dynamic_smem_bytes > 48 * 1024)
      out += "  rc = cudaFuncSetAttribute(" + kernel + ", cudaFuncAttributeMaxDynamicSharedMemorySize, " +
             std::to_string(g.dynamic_smem_bytes) + ");\n  if (rc != cudaSuccess) return rc;\n";
    out += "  rc = cudaLaunchKernel(" + kernel + ", dim3(" + std::to_string(g.grid[0]) + ", " +
           std::to_string(g.grid[1]) + ", " + std::to_string(g.grid[2]) + "), dim3(" + std::to_string(g.block[0]) + ", " +
           std::to_string(g.block[1]) + ", " + std::to_string(g.block[2]) + "), args, " +
           std::to_string(g.dynamic_smem_bytes) + ", stream);\n  if (rc != cudaSuccess) return rc;\n";
  }
  out += "  return rc;\n}\n";
  return out;
}

}  // namespace tessera::kernels
