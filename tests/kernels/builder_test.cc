// NVRTC builder: compiles without a GPU, reads resource usage back, caches on disk, builds in
// parallel, and reports compile errors as a status.
#include "kernels/builder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tessera::kernels {
namespace {

[[maybe_unused]] BuildOptions for_arch(const std::string& arch) {
  BuildOptions o;
  o.arch = arch;
  return o;
}

// Uses a 64-float local array indexed at run time (so it lives on the stack) and 1 KiB of
// shared memory: ptxas must report both.
KernelSource sample_kernel(const std::string& entry = "scale", int factor = 2) {
  return {entry,
          "extern \"C\" __global__ void " + entry + "(float* x, int n) {\n"
          "  __shared__ float s[256];\n"
          "  float r[64];\n"
          "  for (int i = 0; i < 64; ++i) r[i] = x[i * n + threadIdx.x];\n"
          "  s[threadIdx.x] = r[n % 64];\n"
          "  __syncthreads();\n"
          "  x[threadIdx.x] = " + std::to_string(factor) + " * s[255 - threadIdx.x] + r[(n * 3) % 64];\n"
          "}\n",
          {}};
}

class TempDir {
 public:
  TempDir() : path_(::testing::TempDir() + "tessera_builder_" + std::to_string(getpid())) {
    std::filesystem::remove_all(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(PtxasLog, ParsesTheNamedEntry) {
  std::string log =
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'first' for 'sm_90a'\n"
      "ptxas info    : Function properties for first\n"
      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 16 registers, used 0 barriers\n"
      "ptxas info    : Compiling entry function 'second' for 'sm_90a'\n"
      "ptxas info    : Function properties for second\n"
      "ptxas         .     48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads\n"
      "ptxas info    : Used 255 registers, used 1 barriers, 48 bytes cumulative stack size, 49152 bytes smem\n";
  ResourceUsage second = parse_ptxas_log(log, "second");
  EXPECT_EQ(second.registers, 255);
  EXPECT_EQ(second.smem_bytes, 49152);
  EXPECT_EQ(second.stack_bytes, 48);
  EXPECT_EQ(second.spill_store_bytes, 40);
  EXPECT_EQ(second.spill_load_bytes, 36);
  ResourceUsage first = parse_ptxas_log(log, "first");
  EXPECT_EQ(first.registers, 16);
  EXPECT_EQ(first.smem_bytes, 0);
  EXPECT_EQ(parse_ptxas_log(log, "missing").registers, 16);  // falls back to the first entry
  EXPECT_EQ(parse_ptxas_log("", "x").registers, 0);
}

#if TESSERA_HAVE_CUDA
TEST(Builder, CubinReportsTheSameUsageAsPtxas) {
  for (const char* arch : {"sm_90a", "sm_80"}) {
    SCOPED_TRACE(arch);
    CompiledKernel k = Builder(for_arch(arch)).compile(sample_kernel());
    ASSERT_EQ(k.status, Status::kOk) << k.error;
    ResourceUsage elf = parse_cubin_usage(k.cubin, "scale");
    EXPECT_GT(elf.registers, 0);
    // The 1 KiB array; sm_90's section also holds a 1 KiB block reserved for the system.
    EXPECT_EQ(elf.smem_bytes, std::string(arch) == "sm_80" ? 1024 : 2048);
    EXPECT_EQ(elf.stack_bytes, 256);
    ResourceUsage log = parse_ptxas_log(k.log, "scale");
    if (log.registers > 0) {  // when this NVRTC forwards the report
      EXPECT_EQ(elf.registers, log.registers);
    }
    EXPECT_EQ(parse_cubin_usage(k.cubin, "no_such_kernel").registers, 0);
    EXPECT_EQ(parse_cubin_usage("not an elf", "scale").registers, 0);
  }
}

TEST(Builder, CompilesForHopperAndAmpereWithoutAGpu) {
  for (const char* arch : {"sm_90a", "sm_80"}) {
    SCOPED_TRACE(arch);
    CompiledKernel k = Builder(for_arch(arch)).compile(sample_kernel());
    ASSERT_EQ(k.status, Status::kOk) << k.error << "\n" << k.log;
    EXPECT_EQ(k.arch, arch);
    EXPECT_EQ(k.cubin.substr(0, 4), std::string("\x7f" "ELF"));
    EXPECT_GT(k.usage.registers, 0) << k.log;
    EXPECT_GE(k.usage.smem_bytes, 1024);
    EXPECT_EQ(k.usage.stack_bytes, 256);
    EXPECT_FALSE(k.from_cache);
    EXPECT_TRUE(k.error.empty());
  }
}

TEST(Builder, CompileErrorIsAStatusNotAnException) {
  KernelSource bad{"broken", "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }\n", {}};
  CompiledKernel k = Builder({}).compile(bad);
  EXPECT_EQ(k.status, Status::kCompileError);
  EXPECT_TRUE(k.cubin.empty());
  EXPECT_NE(k.error.find("undefined_name"), std::string::npos) << k.error;
  CompiledKernel bad_arch = Builder(for_arch("sm_1")).compile(sample_kernel());
  EXPECT_EQ(bad_arch.status, Status::kCompileError);
  EXPECT_FALSE(bad_arch.error.empty());
}

TEST(Builder, OutputIsDeterministic) {
  Builder b({});
  EXPECT_EQ(b.compile(sample_kernel()).cubin, b.compile(sample_kernel()).cubin);
  EXPECT_NE(b.compile(sample_kernel("scale", 2)).cubin, b.compile(sample_kernel("scale", 3)).cubin);
}

TEST(Builder, HeadersAndFlagsReachTheCompiler) {
  BuildOptions o;
  o.headers = {{"tessera/scale.cuh", "#pragma once\n__device__ inline float scale(float v) { return FACTOR * v; }\n"}};
  o.flags = {"-DFACTOR=3.0f"};
  KernelSource src{"use_header",
                   "#include \"tessera/scale.cuh\"\nextern \"C\" __global__ void use_header(float* x) { x[0] = scale(x[0]); }\n",
                   {}};
  CompiledKernel k = Builder(o).compile(src);
  EXPECT_EQ(k.status, Status::kOk) << k.error;
  o.flags.clear();  // FACTOR undefined now
  EXPECT_EQ(Builder(o).compile(src).status, Status::kCompileError);
}

TEST(Builder, DiskCacheAnswersRepeatsAndSurvivesDamage) {
  TempDir dir;
  BuildOptions o;
  o.cache_dir = dir.path();
  Builder b(o);
  CompiledKernel first = b.compile(sample_kernel());
  ASSERT_EQ(first.status, Status::kOk);
  EXPECT_FALSE(first.from_cache);
  CompiledKernel again = b.compile(sample_kernel());
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.cubin, first.cubin);
  EXPECT_EQ(again.usage.registers, first.usage.registers);
  EXPECT_EQ(again.usage.smem_bytes, first.usage.smem_bytes);
  EXPECT_EQ(again.usage.stack_bytes, 256);

  // Different flags or architecture: a different entry.
  BuildOptions other = o;
  other.flags = {"-DUNUSED=1"};
  EXPECT_NE(Builder(other).cache_key(sample_kernel()), b.cache_key(sample_kernel()));
  EXPECT_FALSE(Builder(other).compile(sample_kernel()).from_cache);
  other = o;
  other.arch = "sm_80";
  EXPECT_FALSE(Builder(other).compile(sample_kernel()).from_cache);

  // Compile errors are cached too (they are deterministic).
  KernelSource bad{"broken", "extern \"C\" __global__ void broken() { nope(); }\n", {}};
  EXPECT_FALSE(b.compile(bad).from_cache);
  CompiledKernel bad_again = b.compile(bad);
  EXPECT_TRUE(bad_again.from_cache);
  EXPECT_EQ(bad_again.status, Status::kCompileError);

  // A damaged entry is recompiled and replaced.
  std::string path = dir.path() + "/" + b.cache_key(sample_kernel()) + ".cubin";
  ASSERT_TRUE(std::filesystem::exists(path));
  std::ofstream(path, std::ios::trunc) << "{\"status\": \"ok\", trunc";
  CompiledKernel repaired = b.compile(sample_kernel());
  EXPECT_EQ(repaired.status, Status::kOk);
  EXPECT_FALSE(repaired.from_cache);
  EXPECT_TRUE(b.compile(sample_kernel()).from_cache);
}

TEST(Builder, ParallelBuildKeepsOrderAndSharesTheCache) {
  TempDir dir;
  BuildOptions o;
  o.cache_dir = dir.path();
  o.threads = 4;
  std::vector<KernelSource> sources;
  for (int i = 0; i < 8; ++i) sources.push_back(sample_kernel("k" + std::to_string(i), i + 1));
  for (int i = 0; i < 8; ++i) sources.push_back(sample_kernel("k0", 1));  // the same kernel, 8 more times at once
  std::vector<CompiledKernel> out = Builder(o).build(sources);
  ASSERT_EQ(out.size(), sources.size());
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].status, Status::kOk) << i << ": " << out[i].error;
    EXPECT_EQ(out[i].entry, sources[i].entry);
  }
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().extension(), ".cubin") << e.path();  // no temporary files left behind
    ++files;
  }
  EXPECT_EQ(files, 8u);
}
#else
TEST(Builder, BuiltWithoutCudaSaysSo) {
  CompiledKernel k = Builder({}).compile(sample_kernel());
  EXPECT_EQ(k.status, Status::kCompileError);
  EXPECT_NE(k.error.find("without CUDA support"), std::string::npos);
}
#endif

}  // namespace
}  // namespace tessera::kernels
