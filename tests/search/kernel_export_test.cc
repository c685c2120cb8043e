// The C/CUDA export: a header of declarations that C and C++ include, and a .cu with every
// kernel inlined, uniquely named, with a launch function; nvcc builds it for sm_90a alone and
// with other targets, and it links with the C and C++ objects (as a user of the export would).
#include "search/kernel_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "kernels/families.h"
#include "tests/db/test_util.h"

namespace tessera::search {
namespace {

Record with_schedule(const std::string& spec, Schedule s, double us, int seq) {
  Record r = db::testing::gemm_record(spec, 64, us, seq);
  r.schedule = std::move(s);
  return r;
}

// The C/CUDA export of `records`, committed to a fresh database, with `family` the only family.
KernelExport export_of(const std::string& db_name, const std::vector<Record>& records,
                       std::unique_ptr<kernels::KernelFamily> family) {
  db::testing::TempDb tmp(db_name);
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  database.commit(records);
  kernels::FamilyRegistry families;
  families.add(std::move(family));
  db::ExportOptions o;
  o.tool_version = "test";
  return export_header_with_kernels(database, o, families, "kernels.h");
}

const char* const kNvcc = "/usr/local/cuda/bin/nvcc";

int run(const std::string& cmd) { return std::system((cmd + " > /dev/null 2>&1").c_str()); }

// Writes the export as NAME.h and NAME.cu, as `db export --with-kernels -o NAME.h` does, and
// checks what a user does with them: a C file and a C++ file include the header (no CUDA
// header, no include path for CUDA) and call `launch`; the .cu is compiled by nvcc with
// `-arch=sm_90a`, and with -gencode for sm_90a and sm_80 together; both link into one program.
void compile_and_link(const KernelExport& e, const std::string& launch) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / ("tessera_kexport_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "kernels.h") << e.header.text;
  std::ofstream(dir / "kernels.cu") << e.cuda;
  std::ofstream(dir / "a.c") << "#include \"kernels.h\"\nint call_c(void* const* t, void* w) { return " << launch
                             << "(t, w, 0); }\n";
  std::ofstream(dir / "b.cpp") << "#include \"kernels.h\"\nextern \"C\" int call_c(void* const*, void*);\n"
                               << "int main(int argc, char**) {\n  void* t[8] = {};\n"
                               << "  return argc > 8 ? " << launch << "(t, nullptr, nullptr) + call_c(t, nullptr) : 0;\n}\n";
  const std::string d = dir.string() + "/";
  EXPECT_EQ(run("cc -std=c99 -Wall -Wextra -Werror -c " + d + "a.c -o " + d + "a.o"), 0) << "the header in C";
  EXPECT_EQ(run("c++ -std=c++17 -Wall -Wextra -Werror -c " + d + "b.cpp -o " + d + "b.o"), 0) << "the header in C++";
  const std::string gencode = "-gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80";
  for (const std::string& arch : {std::string("-arch=sm_90a"), gencode}) {
    EXPECT_EQ(run(std::string(kNvcc) + " " + arch + " -c " + d + "kernels.cu -o " + d + "k.o"), 0) << arch;
    EXPECT_EQ(run(std::string(kNvcc) + " " + d + "a.o " + d + "b.o " + d + "k.o -o " + d + "prog"), 0) << "link, " << arch;
  }
  fs::remove_all(dir);
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
  const KernelExport e = export_header_with_kernels(database, o, families, "kernels.h");
  const db::ExportResult& out = e.header;
  const std::string& h = out.text;
  const std::string& cu = e.cuda;
  EXPECT_EQ(out.items, 3);    // three workloads' #define groups (counted once each)
  EXPECT_EQ(out.kernels, 2);  // two of them with their kernels
  ASSERT_EQ(out.skipped.size(), 1u);
  EXPECT_NE(out.skipped[0].find("mystery_family"), std::string::npos);
  // The header: declarations only, C-compatible; the .cu: the kernels, self-contained.
  EXPECT_EQ(h.find("__global__"), std::string::npos);
  EXPECT_EQ(h.find("#include <cuda"), std::string::npos);
  EXPECT_NE(h.find("int tessera_launch_softmax_rows_1024_cols_4096_f16(void* const* tensors, void* workspace, "
                   "struct CUstream_st* stream);"),
            std::string::npos);
  EXPECT_LT(h.find("tessera_launch_"), h.rfind("#endif /* TESSERA_SCHEDULES_H_ */"));
  EXPECT_EQ(cu.find("#include \"tessera/"), std::string::npos);  // self-contained
  EXPECT_NE(cu.find("#include \"kernels.h\""), std::string::npos);
  EXPECT_NE(cu.find("namespace tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu {"), std::string::npos);
  EXPECT_NE(cu.find("extern \"C\" int tessera_launch_softmax_rows_1024_cols_4096_f16(void* const* tensors, "
                    "void* workspace, cudaStream_t stream)"),
            std::string::npos);
  // The split-K GEMM runs two kernels and needs 4 slices x 512 x 512 f32 of workspace.
  EXPECT_NE(h.find("#define TESSERA_WORKSPACE_BYTES_MATMUL_M_512_N_512_K_512_F16_EPILOGUE_BIAS_GELU 4194304ULL"),
            std::string::npos);
  EXPECT_NE(cu.find("&tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu::"
                    "tessera_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu_kernel_1)"),
            std::string::npos);
  if (!std::filesystem::exists(kNvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  compile_and_link(e, "tessera_launch_matmul_m_512_n_512_k_512_f16_epilogue_bias_gelu");
}

TEST(KernelExport, HopperGemmExportsItsTensorMapsAndPersistentGrid) {
  Schedule gemm{"gemm_wgmma", {{"block_m", 128}, {"block_n", 256}, {"block_k", 64}, {"stages", 3}, {"consumers", 2},
                               {"group_m", 8}, {"tma_store", 1}, {"pingpong", 0}, {"cluster_m", 2}, {"split_k", 1}}};
  const KernelExport e = export_of("kernel_export_wgmma", {with_schedule("matmul:m=4096,n=4096,k=4096:f16", gemm, 200, 1)},
                                   kernels::make_gemm_wgmma_family());
  const std::string& h = e.cuda;
  EXPECT_NE(e.header.text.find("sm_90a code: runs on compute capability 9.0 GPUs only"), std::string::npos);
  // The launcher refuses other GPUs: elsewhere the sm_90a code is a trap.
  EXPECT_NE(h.find("if (major != 9 || minor != 0) return cudaErrorNoKernelImageForDevice;"), std::string::npos);
  EXPECT_NE(h.find("nvcc -arch=sm_90a -c kernels.cu"), std::string::npos);
  EXPECT_NE(h.find("cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeTiled\""), std::string::npos);
  EXPECT_NE(h.find("const cuuint64_t dims[] = {4096, 4096, 1}"), std::string::npos);
  EXPECT_NE(h.find("args[5] = &map2;"), std::string::npos);  // A, B, C, then the maps of A, B and C
  EXPECT_NE(h.find("cudaDevAttrMultiProcessorCount"), std::string::npos);
  // Clusters of two: the kernel declares them and the launcher starts whole clusters only.
  EXPECT_NE(h.find("TESSERA_CLUSTER_DIMS(2, 1, 1)"), std::string::npos);
  EXPECT_NE(h.find("cudaOccupancyMaxActiveClusters"), std::string::npos);
  if (!std::filesystem::exists(kNvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  compile_and_link(e, "tessera_launch_matmul_m_4096_n_4096_k_4096_f16");
}

TEST(KernelExport, HopperConvExportsItsIm2colMapAndGatheredStem) {
  Schedule conv{"conv_wgmma", {{"block_m", 128}, {"block_n", 64}, {"block_k", 64}, {"stages", 4}, {"consumers", 2},
                               {"group_m", 8}, {"tma_store", 0}, {"pingpong", 0}, {"cluster_m", 1}, {"split_k", 1}}};
  // The stem's space has pad_channels (fewer than 8 channels): 0 gathers, 1 pads the taps.
  Schedule gathered = conv;
  gathered.knobs.emplace_back("pad_channels", 0);
  // A stem on padded taps: a kernel before the GEMM, a map over the workspace past its start.
  Schedule padded = conv;
  padded.knobs.emplace_back("pad_channels", 1);
  const KernelExport e = export_of(
      "kernel_export_conv_wgmma",
      {with_schedule("conv2d:n=2,h=28,w=28,c=64,k=64,r=3,s=3,stride=2,pad=1:f16:epilogue=bias+relu", conv, 20, 1),
       with_schedule("conv2d:n=2,h=32,w=32,c=3,k=64,r=7,s=7,stride=2,pad=3:f16", gathered, 30, 2),
       with_schedule("conv2d:n=4,h=32,w=32,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+relu", padded, 25, 3)},
      kernels::make_conv_wgmma_family());
  const std::string& h = e.cuda;
  // The 3x3/2 convolution: an im2col map over the input (corners and strides) and a tiled one
  // over the filters; the stem gathers its operands and has no maps.
  EXPECT_NE(h.find("cudaGetDriverEntryPointByVersion(\"cuTensorMapEncodeIm2col\""), std::string::npos);
  EXPECT_NE(h.find("const int lower[] = {-1, -1}, upper[] = {-2, -2};"), std::string::npos);
  EXPECT_NE(h.find("const cuuint32_t steps[] = {1, 2, 2, 1};"), std::string::npos);
  EXPECT_NE(h.find("GatherLoads<"), std::string::npos);
  EXPECT_NE(h.find("TapLoads<"), std::string::npos);
  EXPECT_NE(h.find("static_cast<char*>(workspace) + 65536, dims, strides, box"), std::string::npos);
  if (!std::filesystem::exists(kNvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  compile_and_link(e, "tessera_launch_conv2d_n_2_h_28_w_28_c_64_k_64_r_3_s_3_stride_2_pad_1_f16_epilogue_bias_relu");
}

// Two blocks per SM: the exported launcher starts twice as many persistent blocks as SMs.
TEST(KernelExport, TwoBlocksPerSmLaunchTwiceTheSms) {
  Schedule gemm{"gemm_wgmma", {{"block_m", 64}, {"block_n", 128}, {"block_k", 64}, {"stages", 3}, {"consumers", 1},
                               {"group_m", 8}, {"tma_store", 1}, {"pingpong", 0}, {"cluster_m", 1}, {"split_k", 1},
                               {"blocks_per_sm", 2}}};
  const KernelExport e = export_of("kernel_export_two_per_sm",
                                   {with_schedule("batch_matmul:b=384,m=128,n=128,k=64:f16", gemm, 10, 1)},
                                   kernels::make_gemm_wgmma_family());
  EXPECT_EQ(e.header.kernels, 1);
  EXPECT_NE(e.cuda.find("sms *= 2;"), std::string::npos);
  EXPECT_NE(e.cuda.find("__launch_bounds__(256, 2)"), std::string::npos);
  if (!std::filesystem::exists(kNvcc)) GTEST_SKIP() << "no nvcc to compile the export with";
  compile_and_link(e, "tessera_launch_batch_matmul_b_384_m_128_n_128_k_64_f16");
}

}  // namespace
}  // namespace tessera::search
