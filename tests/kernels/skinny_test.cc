// The skinny GEMM family on the CPU: what it runs, its rules, its launch plan (clusters along
// the k slices) and NVRTC compilation of every valid schedule of a few shapes for sm_90a, and
// of some cluster-free ones for sm_80, without a stack frame or spills.
#include <gtest/gtest.h>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "tests/kernels/hopper_checks.h"

namespace tessera::kernels {
namespace {

Schedule skinny(int64_t warps, int64_t warp_n, int64_t unroll, int64_t split) {
  return {"gemm_skinny", {{"warps", warps}, {"warp_n", warp_n}, {"unroll", unroll}, {"split_k", split}}};
}

const std::vector<std::string> kShapes = {
    "matmul:m=1,n=4096,k=4096:f16", "matmul:m=16,n=4096,k=4096,tb=1:bf16:epilogue=bias+gelu",
    "batch_matmul:b=3,m=33,n=72,k=264:f16:out=f32:epilogue=residual", "matmul:m=64,n=136,k=1000:f16:epilogue=bias+relu",
    "matmul:m=5,n=77,k=96,tb=1:f16"};

TEST(GemmSkinny, RunsHalfPrecisionGemmsOfAtMost64Rows) {
  auto f = make_gemm_skinny_family();
  EXPECT_TRUE(f->supports(Workload::parse("matmul:m=64,n=4096,k=4096:f16")));
  EXPECT_TRUE(f->supports(Workload::parse("batch_matmul:b=8,m=1,n=64,k=64,tb=1:bf16")));
  EXPECT_FALSE(f->supports(Workload::parse("matmul:m=65,n=4096,k=4096:f16")));
  EXPECT_FALSE(f->supports(Workload::parse("matmul:m=16,n=4096,k=4096:f32")));
  EXPECT_FALSE(f->supports(Workload::parse("matmul:m=16,n=4096,k=4096,ta=1:f16")));
  FamilyRegistry r;
  register_builtin_families(r);
  auto fams = r.for_workload(Workload::parse("matmul:m=16,n=64,k=64:f16"));
  ASSERT_EQ(fams.size(), 3u);
  EXPECT_EQ(fams[1]->name(), "gemm_skinny");
}

TEST(GemmSkinny, ValidateGivesReasons) {
  HardwareSpec h100 = find_spec("h100_sxm"), a100 = find_spec("a100_sxm");
  auto f = make_gemm_skinny_family();
  const Workload w = Workload::parse(kShapes[0]);
  EXPECT_FALSE(f->validate(skinny(4, 64, 2, 8), w, h100).has_value());
  EXPECT_FALSE(f->validate(skinny(4, 64, 2, 1), w, a100).has_value());
  auto why = [&](const Schedule& s, const std::string& spec, const HardwareSpec& hw) {
    return f->validate(s, Workload::parse(spec), hw).value_or("");
  };
  EXPECT_NE(why(skinny(4, 64, 2, 8), kShapes[0], a100).find("cluster"), std::string::npos);
  EXPECT_NE(why(skinny(4, 48, 2, 1), kShapes[0], h100).find("warp_n"), std::string::npos);
  EXPECT_NE(why(skinny(4, 64, 2, 3), kShapes[0], h100).find("split_k"), std::string::npos);
  EXPECT_NE(why(skinny(4, 64, 2, 1), "matmul:m=4,n=64,k=100:f16", h100).find("multiple of 8"), std::string::npos);
  EXPECT_NE(why(skinny(4, 64, 2, 1), "matmul:m=4,n=63,k=64:f16", h100).find("n must"), std::string::npos);
  EXPECT_EQ(why(skinny(4, 64, 2, 1), "matmul:m=4,n=63,k=64,tb=1:f16", h100), "");  // rows of B are K-major
  EXPECT_NE(why(skinny(4, 64, 1, 8), "matmul:m=4,n=64,k=64:f16", h100).find("empty"), std::string::npos);
  EXPECT_NE(why(skinny(64, 64, 2, 1), kShapes[0], h100).find("at most 32"), std::string::npos);
  EXPECT_NE(why(skinny(32, 64, 2, 1), kShapes[0], h100).find("register file"), std::string::npos);
  EXPECT_NE(why(skinny(4, 64, 4, 1), "matmul:m=64,n=64,k=4096:f16", h100).find("registers"), std::string::npos);
  EXPECT_NE(why(skinny(4, 64, 1, 1), "matmul:m=65,n=64,k=64:f16", h100).find("64 rows"), std::string::npos);
  HardwareSpec volta = a100;
  volta.cc_major = 7;
  EXPECT_NE(why(skinny(4, 64, 1, 1), "matmul:m=16,n=64,k=64:f16", volta).find("sm_80"), std::string::npos);
}

TEST(GemmSkinny, PlanIsOneClusterOfSlicesPerColumnTile) {
  auto f = make_gemm_skinny_family();
  const Workload w = Workload::parse("batch_matmul:b=3,m=33,n=1000,k=4096,tb=1:f16:epilogue=bias");
  KernelSource src = f->emit(w, skinny(4, 64, 2, 8));
  EXPECT_EQ(src.entry, "tessera_gemm_skinny");
  EXPECT_EQ(src.launch.grid[0], 4 * 8);  // ceil(1000 / 256) tiles x 8 slices
  EXPECT_EQ(src.launch.grid[2], 3);
  EXPECT_EQ(src.launch.block[0], 128);
  EXPECT_EQ(src.launch.cluster, 8);
  EXPECT_EQ(src.launch.dynamic_smem_bytes, 33 * 256 * 4);
  EXPECT_TRUE(src.then.empty());  // the slices meet in shared memory: no second kernel
  EXPECT_EQ(src.workspace_bytes, 0);
  EXPECT_NE(src.source.find("TESSERA_CLUSTER_DIMS(8, 1, 1)"), std::string::npos);
  KernelSource one = f->emit(w, skinny(8, 32, 1, 1));
  EXPECT_EQ(one.launch.cluster, 1);
  EXPECT_EQ(one.launch.block[0], 256);
  EXPECT_EQ(one.launch.dynamic_smem_bytes, 33 * 256 * 4);
  EXPECT_EQ(one.source.find("CLUSTER_DIMS"), std::string::npos);
  TilePlan p = f->tile_plan(w, skinny(4, 64, 2, 8));
  EXPECT_EQ(p.threads, 128);
  EXPECT_EQ(p.split, 8);
  EXPECT_EQ(p.load_bytes, 16);
}

TEST(GemmSkinny, EveryValidScheduleCompilesWithoutLocalMemory) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_gemm_skinny_family();
  std::vector<KernelSource> sources, ampere_sources;
  for (const std::string& spec : kShapes) {
    Workload w = Workload::parse(spec);
    for (const Schedule& s : enumerate_space(*f, w, h100)) {
      if (f->validate(s, w, h100)) continue;
      sources.push_back(f->emit(w, s));
      if (s.get("split_k") == 1 && ampere_sources.size() < 6) ampere_sources.push_back(sources.back());
    }
  }
  ASSERT_GE(sources.size(), 40u);
  BuildOptions hopper;
  hopper.headers = device_headers();
  std::vector<CompiledKernel> built = Builder(hopper).build(sources);
  testing::CompiledSample sample;
  for (size_t i = 0; i < built.size(); ++i) sample.emplace_back(sources[i], built[i]);
  testing::expect_compiled_without_local_memory(sample);
  BuildOptions ampere = hopper;
  ampere.arch = "sm_80";
  for (const CompiledKernel& k : Builder(ampere).build(ampere_sources)) EXPECT_EQ(k.status, Status::kOk) << k.error;
}

}  // namespace
}  // namespace tessera::kernels
