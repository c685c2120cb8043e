// The header export with self-contained kernels: every kernel inlined, uniquely named, with
// a launch function, and the file compiles with nvcc (as a user of the export would).
#include "search/kernel_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kernels/families.h"
#include "tests/db/test_util.h"

namespace tessera::search {
namespace {

Record with_schedule(const std::string& spec, Schedule s, double us, int seq) {
  Record r = db::testing::gemm_record(spec, 64, us, seq);
  r.schedule = std::move(s);
  return r;
}

TEST(KernelExport, HeaderCarriesSelfContainedKernelsThatNvccCompiles) {
  db::testing::TempDb tmp("kernel_export");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Schedule gemm{"gemm_tc", {{"block_m", 128}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                            {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 4}}};
  Schedule rows{"rows", {{"row_threads", 128}, {"rows_per_block", 1}, {"vec", 8}, {"single_pass", 1}}};
  database.commit(std::vector<Record>{
      with_schedule("matmul:m=512,n=512,k=512:f16:epilogue=bias+gelu", gemm, 20, 1),
      with_schedule("softmax:rows=1024,cols=4096:f16", rows, 15, 2),
      with_schedule("layernorm:rows=64,cols=768:f16", {"mystery_family", {{"x", 1}}}, 5, 3)});
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  db::ExportOptions o;
  o.tool_version = "test";
  db::ExportResult out = export_header_with_kernels(database, o, families);
  const std::string& h = out.text;
  EXPECT_EQ(out.items, 3);    // three workloads' #define groups (counted once each)
  EXPECT_EQ(out.kernels, 2);  // two of them with their kernels
  ASSERT_EQ(out.skipped.size(), 1u);
  EXPECT_NE(out.skipped[0].find("mystery_family"), std::string::npos);
  EXPECT_EQ(h.find("#include \"tessera/"), std::string::npos);  // self-contained
  EXPECT_NE(h.find("namespace tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu {"), std::string::npos);
  EXPECT_NE(h.find("inline cudaError_t tessera_launch_softmax_rows_1024_cols_4096_f16(void* const* tensors, "
                   "void* workspace, cudaStream_t stream)"),
            std::string::npos);
  // The split-K GEMM runs two kernels and needs 4 slices x 512 x 512 f32 of workspace.
  EXPECT_NE(h.find("tessera_workspace_bytes_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu = 4194304ULL"),
            std::string::npos);
  EXPECT_NE(h.find("&tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu::"
                   "tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu_kernel_1)"),
            std::string::npos);
  EXPECT_LT(h.find("tessera_launch_"), h.rfind("#endif /* TESSERA_SCHEDULES_H_ */"));

  const char* nvcc = "/usr/local/cuda/bin/nvcc";
  if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  std::string path = ::testing::TempDir() + "tessera_kernels_" + std::to_string(getpid()) + ".cu";
  std::ofstream(path) << h << "\nint main() { return 0; }\n";
  for (const char* arch : {"sm_90a", "sm_80"}) {
    std::string cmd = std::string(nvcc) + " -std=c++17 -arch=" + arch + " -c -o /dev/null " + path + " 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::filesystem::remove(path);
}

TEST(KernelExport, HopperGemmExportsItsTensorMapsAndPersistentGrid) {
  db::testing::TempDb tmp("kernel_export_wgmma");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Schedule gemm{"gemm_wgmma", {{"block_m", 128}, {"block_n", 256}, {"block_k", 64}, {"stages", 3}, {"consumers", 2},
                               {"group_m", 8}, {"tma_store", 1}, {"pingpong", 0}, {"cluster_m", 2}, {"split_k", 1}}};
  database.commit(std::vector<Record>{with_schedule("matmul:m=4096,n=4096,k=4096:f16", gemm, 200, 1)});
  kernels::FamilyRegistry families;
  families.add(kernels::make_gemm_wgmma_family());
  db::ExportOptions o;
  o.tool_version = "test";
  const std::string h = export_header_with_kernels(database, o, families).text;
  EXPECT_NE(h.find("cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeTiled\""), std::string::npos);
  EXPECT_NE(h.find("const cuuint64_t dims[] = {4096, 4096, 1}"), std::string::npos);
  EXPECT_NE(h.find("args[5] = &map2;"), std::string::npos);  // A, B, C, then the maps of A, B and C
  EXPECT_NE(h.find("cudaDevAttrMultiProcessorCount"), std::string::npos);
  // Clusters of two: the kernel declares them and the launcher starts whole clusters only.
  EXPECT_NE(h.find("__cluster_dims__(2, 1, 1)"), std::string::npos);
  EXPECT_NE(h.find("cudaOccupancyMaxActiveClusters"), std::string::npos);
  const char* nvcc = "/usr/local/cuda/bin/nvcc";
  if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  std::string path = ::testing::TempDir() + "tessera_wgmma_" + std::to_string(getpid()) + ".cu";
  std::ofstream(path) << h << "\nint main() { return 0; }\n";
  std::string cmd = std::string(nvcc) + " -std=c++17 -gencode=arch=compute_90a,code=sm_90a -c -o /dev/null " + path + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove(path);
}

TEST(KernelExport, HopperConvExportsItsIm2colMapAndGatheredStem) {
  db::testing::TempDb tmp("kernel_export_conv_wgmma");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Schedule conv{"conv_wgmma", {{"block_m", 128}, {"block_n", 64}, {"block_k", 64}, {"stages", 4}, {"consumers", 2},
                               {"group_m", 8}, {"tma_store", 0}, {"pingpong", 0}, {"cluster_m", 1}, {"split_k", 1}}};
  // The stem's space has pad_channels (fewer than 8 channels): 0 gathers, 1 pads the taps.
  Schedule gathered = conv;
  gathered.knobs.emplace_back("pad_channels", 0);
  database.commit(std::vector<Record>{
      with_schedule("conv2d:n=2,h=28,w=28,c=64,k=64,r=3,s=3,stride=2,pad=1:f16:epilogue=bias+relu", conv, 20, 1),
      with_schedule("conv2d:n=2,h=32,w=32,c=3,k=64,r=7,s=7,stride=2,pad=3:f16", gathered, 30, 2)});
  // A stem on padded taps: a kernel before the GEMM, a map over the workspace past its start.
  Schedule padded = conv;
  padded.knobs.emplace_back("pad_channels", 1);
  database.commit(std::vector<Record>{
      with_schedule("conv2d:n=4,h=32,w=32,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+relu", padded, 25, 3)});
  kernels::FamilyRegistry families;
  families.add(kernels::make_conv_wgmma_family());
  db::ExportOptions o;
  o.tool_version = "test";
  const std::string h = export_header_with_kernels(database, o, families).text;
  // The 3x3/2 convolution: an im2col map over the input (corners and strides) and a tiled one
  // over the filters; the stem gathers its operands and has no maps.
  EXPECT_NE(h.find("cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeIm2col\""), std::string::npos);
  EXPECT_NE(h.find("const int lower[] = {-1, -1}, upper[] = {-2, -2};"), std::string::npos);
  EXPECT_NE(h.find("const cuuint32_t steps[] = {1, 2, 2, 1};"), std::string::npos);
  EXPECT_NE(h.find("GatherLoads<"), std::string::npos);
  EXPECT_NE(h.find("TapLoads<"), std::string::npos);
  EXPECT_NE(h.find("static_cast<char*>(workspace) + 65536, dims, strides, box"), std::string::npos);
  const char* nvcc = "/usr/local/cuda/bin/nvcc";
  if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  std::string path = ::testing::TempDir() + "tessera_conv_wgmma_" + std::to_string(getpid()) + ".cu";
  std::ofstream(path) << h << "\nint main() { return 0; }\n";
  std::string cmd = std::string(nvcc) + " -std=c++17 -gencode=arch=compute_90a,code=sm_90a -c -o /dev/null " + path + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace tessera::search
