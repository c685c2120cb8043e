// Checks the Hopper (sm_90a) kernel suites share: kernels that compiled without a stack frame,
// spills or an ignored setmaxnreg, and the SASS of a cubin through the toolkit's cuobjdump.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "kernels/builder.h"

namespace tessera::kernels::testing {

using CompiledSample = std::vector<std::pair<KernelSource, CompiledKernel>>;

/// Every kernel of `sample` compiled with no stack frame and no spills, and ptxas honoured
/// setmaxnreg (it says so, C7508, when it ignores it).
inline void expect_compiled_without_local_memory(const CompiledSample& sample) {
  for (const auto& [src, k] : sample) {
    ASSERT_EQ(k.status, Status::kOk) << k.error << "\n" << src.source;
    EXPECT_EQ(k.usage.stack_bytes, 0) << src.source.substr(0, 200);
    EXPECT_EQ(k.usage.spill_store_bytes, 0) << src.source.substr(0, 200);
    EXPECT_EQ(k.log.find("setmaxnreg"), std::string::npos) << k.log;
  }
}

/// The toolkit's cuobjdump ($CUDA_HOME, else /usr/local/cuda), or "" when it is not there.
inline std::string cuobjdump() {
  const char* cuda = std::getenv("CUDA_HOME");
  std::string tool = std::string(cuda ? cuda : "/usr/local/cuda") + "/bin/cuobjdump";
  return std::filesystem::exists(tool) ? tool : "";
}

/// The SASS of a compiled kernel, through `tool` (cuobjdump).
inline std::string sass_of(const CompiledKernel& k, const std::string& tool) {
  auto dir = std::filesystem::temp_directory_path() / ("tessera-sass-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto cubin = dir / "k.cubin";
  std::ofstream(cubin, std::ios::binary) << k.cubin;
  std::string sass;
  if (FILE* p = ::popen((tool + " -sass " + cubin.string() + " 2>&1").c_str(), "r")) {
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) sass.append(buf, n);
    ::pclose(p);
  }
  std::filesystem::remove_all(dir);
  return sass;
}

/// The SASS of a Hopper kernel: wgmma instructions (HGMMA), no local memory (LDL/STL), and TMA
/// loads (UTMALDG) exactly when `tma_loads`.
inline void expect_hopper_sass(const std::string& sass, bool tma_loads) {
  EXPECT_NE(sass.find("HGMMA"), std::string::npos) << sass.substr(0, 2000);
  EXPECT_EQ(sass.find("LDL"), std::string::npos);
  EXPECT_EQ(sass.find("STL"), std::string::npos);
  EXPECT_EQ(sass.find("UTMALDG") != std::string::npos, tma_loads) << "TMA loads";
}

}  // namespace tessera::kernels::testing
