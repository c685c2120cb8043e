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
  // C linkage names must be unique in a program: rename the entry.
  std::string entry = "tessera_" + id + "_kernel";
  for (size_t pos; (pos = body.find(source.entry + "(")) != std::string::npos;) body.replace(pos, source.entry.size(), entry);
  const LaunchGeometry& g = source.launch;
  std::string ns = "tessera_" + id;
  std::string out = "namespace " + ns + " {\n" + body + "}  // namespace " + ns + "\n\n";
  out += "/// Launches " + ns + " on `stream`; `tensors` are device pointers to the workload's inputs, then its output.\n";
  out += "inline cudaError_t tessera_launch_" + id + "(void* const* tensors, cudaStream_t stream) {\n";
  out += "  const void* kernel = reinterpret_cast<const void*>(&" + ns + "::" + entry + ");\n";
  if (g.dynamic_smem_bytes > 48 * 1024)
    out += "  cudaError_t rc = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, " +
           std::to_string(g.dynamic_smem_bytes) + ");\n  if (rc != cudaSuccess) return rc;\n";
  out += "  void* args[" + std::to_string(tensors) + "];\n  for (int i = 0; i < " + std::to_string(tensors) +
         "; ++i) args[i] = const_cast<void**>(&tensors[i]);\n";
  out += "  return cudaLaunchKernel(kernel, dim3(" + std::to_string(g.grid[0]) + ", " + std::to_string(g.grid[1]) + ", " +
         std::to_string(g.grid[2]) + "), dim3(" + std::to_string(g.block[0]) + ", " + std::to_string(g.block[1]) + ", " +
         std::to_string(g.block[2]) + "), args, " + std::to_string(g.dynamic_smem_bytes) + ", stream);\n}\n";
  return out;
}

}  // namespace tessera::kernels
