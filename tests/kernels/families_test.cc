// Kernel families on the CPU: the space, validate() over every schedule of several shapes,
// and NVRTC compilation of a fixed sample of accepted schedules for sm_90a and sm_80.
#include "kernels/families.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kernels/builder.h"

namespace tessera::kernels {
namespace {

const std::vector<std::string> kElementwise = {
    "elementwise:ops=add+relu,n=1048576:f16", "elementwise:ops=mul+add+gelu,n=1000003:bf16",
    "elementwise:ops=sigmoid,n=77:f32", "elementwise:ops=sub+tanh+exp+neg+abs+max+min+div,n=4099:f16:out=f32"};
const std::vector<std::string> kRows = {
    "softmax:rows=16384,cols=4096:f16", "softmax:rows=1000,cols=127:f32", "layernorm:rows=4096,cols=768:bf16",
    "layernorm:rows=333,cols=1000:f16:out=f32", "reduce:op=sum,rows=65536,cols=1024:f32",
    "reduce:op=max,rows=262144,cols=49:f16", "reduce:op=mean,rows=7,cols=4096:bf16"};

const std::vector<std::string> kGemm = {
    "matmul:m=4096,n=4096,k=4096:f16", "matmul:m=1000,n=1000,k=127:f16",
    "matmul:m=4096,n=3072,k=768:bf16:out=f32:epilogue=bias+gelu", "matmul:m=128,n=200,k=64,tb=1:f16:epilogue=residual+relu",
    "batch_matmul:b=384,m=128,n=128,k=64:f16", "matmul:m=256,n=200,k=8192:f16:epilogue=bias+relu"};

// float4 loads of both operands (and the transposing path of B), float4 loads of A with scalar
// ones of B, scalar loads of both with edges everywhere, and f16 outputs.
const std::vector<std::string> kGemmSimt = {
    "matmul:m=4096,n=4096,k=4096:f32", "matmul:m=1000,n=999,k=127,ta=1:f32:epilogue=bias+relu",
    "batch_matmul:b=4,m=33,n=65,k=17,tb=1:f32:tf32=1:epilogue=residual+gelu",
    "matmul:m=256,n=200,k=64,ta=1,tb=1:f32:out=f16:epilogue=bias"};

const std::vector<std::string> kConv = {
    "conv2d:n=32,h=56,w=56,c=144,k=144,r=3,s=3,pad=1,groups=144:f16",
    "conv2d:n=1,h=83,w=83,c=84,k=84,r=5,s=5,stride=2,pad=2,groups=84:bf16",
    "conv2d:n=2,h=9,w=7,c=8,k=12,r=3,s=2,stride=2x1,pad=1x0,dilation=2x1,groups=4,layout=nchw:f32:epilogue=bias+relu",
    "conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+residual"};

const std::vector<std::string> kConvTc = {
    "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16", "conv2d:n=32,h=56,w=56,c=256,k=64,r=1,s=1:bf16:epilogue=bias+relu",
    "conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16",
    "conv2d:n=1,h=7,w=7,c=512,k=512,r=3,s=3,pad=1,dilation=2:f16:epilogue=residual",
    "conv2d:n=8,h=28,w=28,c=128,k=256,r=1,s=1,stride=2:f16"};

const std::vector<std::string> kGemmTf32 = {
    "matmul:m=4096,n=4096,k=4096:f32:tf32=1", "matmul:m=1000,n=999,k=127,tb=1:f32:tf32=1:epilogue=bias+relu",
    "batch_matmul:b=4,m=33,n=64,k=20:f32:tf32=1:epilogue=residual+gelu"};

struct FamilyCase {
  std::unique_ptr<KernelFamily> family;
  std::vector<std::string> specs;
};

std::vector<FamilyCase> cases() {
  std::vector<FamilyCase> out;
  out.push_back({make_elementwise_family(), kElementwise});
  out.push_back({make_rows_family(), kRows});
  out.push_back({make_gemm_tc_family(), kGemm});
  out.push_back({make_gemm_simt_family(), kGemmSimt});
  out.push_back({make_gemm_tf32_family(), kGemmTf32});
  out.push_back({make_conv_direct_family(), kConv});
  out.push_back({make_conv_tc_family(), kConvTc});
  return out;
}

TEST(Families, RegistryHoldsTheBuiltins) {
  FamilyRegistry r;
  register_builtin_families(r);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"elementwise", "rows", "gemm_wgmma", "gemm_skinny", "gemm_tc", "gemm_tf32", "gemm_simt", "conv_wgmma", "conv_tc", "conv_direct"}));
  EXPECT_EQ(r.for_workload(Workload::parse("softmax:rows=8,cols=8:f16")).size(), 1u);
  EXPECT_EQ(r.for_workload(Workload::parse("matmul:m=8,n=8,k=8:f16")).size(), 3u);  // wgmma, skinny, mma.sync
  EXPECT_EQ(r.for_workload(Workload::parse("matmul:m=8,n=8,k=8:f32")).front()->name(), "gemm_simt");
  EXPECT_EQ(r.for_workload(Workload::parse("matmul:m=8,n=8,k=8:f32:tf32=1")).size(), 2u);  // tf32 and SIMT
  EXPECT_TRUE(r.for_workload(Workload::parse("matmul:m=8,n=8,k=8,ta=1:f16")).empty());
  std::set<std::string> names;
  for (const auto& [name, text] : device_headers()) {
    names.insert(name);
    EXPECT_FALSE(text.empty());
  }
  EXPECT_TRUE(names.count("tessera/common.cuh"));
  EXPECT_TRUE(names.count("tessera/rows.cuh"));
  EXPECT_TRUE(names.count("tessera/gemm_tc.cuh"));
  EXPECT_TRUE(names.count("tessera/gemm_simt.cuh"));
}

TEST(Families, ValidateAcceptsAndRejectsWithReasons) {
  HardwareSpec h100 = find_spec("h100_sxm");
  for (FamilyCase& c : cases()) {
    for (const std::string& spec : c.specs) {
      SCOPED_TRACE(spec);
      Workload w = Workload::parse(spec);
      ASSERT_TRUE(c.family->supports(w));
      std::vector<Schedule> all = enumerate_space(*c.family, w, h100);
      int accepted = 0;
      for (const Schedule& s : all) {
        auto reason = c.family->validate(s, w, h100);
        if (!reason) ++accepted;
        else EXPECT_FALSE(reason->empty());
      }
      EXPECT_GT(accepted, 10);
      Schedule wrong = all.front();
      wrong.family = "other";
      EXPECT_TRUE(c.family->validate(wrong, w, h100).has_value());
    }
  }
  // Specific rules.
  auto ew = make_elementwise_family();
  Workload f32 = Workload::parse("elementwise:ops=relu,n=64:f32");
  EXPECT_EQ(*ew->validate({"elementwise", {{"threads", 256}, {"vec", 8}, {"items", 1}}}, f32, h100),
            "vec * element size exceeds a 16-byte load");
  EXPECT_FALSE(ew->validate({"elementwise", {{"threads", 256}, {"vec", 4}, {"items", 1}}}, f32, h100).has_value());
  auto rows = make_rows_family();
  Workload odd = Workload::parse("softmax:rows=10,cols=127:f16");
  EXPECT_EQ(*rows->validate({"rows", {{"row_threads", 32}, {"rows_per_block", 1}, {"vec", 2}, {"single_pass", 1}}}, odd, h100),
            "cols must be a multiple of vec (aligned loads)");
  EXPECT_TRUE(rows->validate({"rows", {{"row_threads", 16}, {"rows_per_block", 1}, {"vec", 1}, {"single_pass", 1}}}, odd, h100)
                  .has_value());  // half a warp
  auto gemm = make_gemm_tc_family();
  Workload odd_k = Workload::parse("matmul:m=1000,n=1000,k=127:f16");
  Schedule tile{"gemm_tc", {{"block_m", 128}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                            {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  EXPECT_EQ(*gemm->validate(tile, odd_k, h100), "k must be a multiple of vec (aligned loads)");
  tile.knobs[6].second = 1;
  EXPECT_FALSE(gemm->validate(tile, odd_k, h100).has_value());
  Schedule huge = tile;
  huge.knobs = {{"block_m", 128}, {"block_n", 256}, {"block_k", 64}, {"warps_m", 2}, {"warps_n", 4},
                {"stages", 4}, {"vec", 1}, {"group_m", 8}, {"split_k", 1}};
  EXPECT_FALSE(gemm->validate(huge, odd_k, h100).has_value());  // 192 KiB of shared memory fits
  huge.knobs[5].second = 5;
  EXPECT_EQ(*gemm->validate(huge, odd_k, h100), "shared memory 245760 B exceeds 232448 B");
  huge.knobs[3].second = 1;  // a 128x64 warp tile
  EXPECT_NE(gemm->validate(huge, odd_k, h100)->find("accumulators"), std::string::npos);
  // Split-K: every slice needs at least one of the k tiles (127 / 32 -> 4 tiles).
  tile.knobs[8].second = 4;
  EXPECT_FALSE(gemm->validate(tile, odd_k, h100).has_value());
  tile.knobs[8].second = 8;
  EXPECT_EQ(*gemm->validate(tile, odd_k, h100), "split_k 8 leaves a slice of the 4 k tiles empty");
  HardwareSpec volta = h100;
  volta.cc_major = 7;
  EXPECT_EQ(*ew->validate({"elementwise", {{"threads", 256}, {"vec", 4}, {"items", 1}}},
                          Workload::parse("elementwise:ops=relu,n=64:bf16"), volta),
            "bf16 conversions need sm_80 or newer");
}

TEST(Families, SplitKIsATwoKernelPlanWithAWorkspace) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto gemm = make_gemm_tc_family();
  Workload w = Workload::parse("batch_matmul:b=3,m=100,n=64,k=4096:f16:epilogue=bias");
  Schedule s{"gemm_tc", {{"block_m", 64}, {"block_n", 64}, {"block_k", 64}, {"warps_m", 2}, {"warps_n", 2},
                         {"stages", 3}, {"vec", 8}, {"group_m", 1}, {"split_k", 4}}};
  ASSERT_FALSE(gemm->validate(s, w, h100).has_value());
  KernelSource src = gemm->emit(w, s);
  EXPECT_EQ(src.launch.grid[0], 2);      // 2 x 1 output tiles
  EXPECT_EQ(src.launch.grid[2], 3 * 4);  // batch x slices
  ASSERT_EQ(src.then.size(), 1u);
  EXPECT_EQ(src.then[0].entry, src.entry + "_reduce");
  EXPECT_EQ(src.workspace_bytes, 4 * 3 * 100 * 64 * 4);
  EXPECT_EQ(src.plan().size(), 2u);
  EXPECT_NE(src.source.find(src.entry + "_reduce("), std::string::npos);
  s.knobs.back().second = 1;
  KernelSource plain = gemm->emit(w, s);
  EXPECT_TRUE(plain.then.empty());
  EXPECT_EQ(plain.workspace_bytes, 0);
  EXPECT_EQ(plain.source.find("float* __restrict__ W"), std::string::npos);
}

TEST(Families, OneByOneConvolutionsSkipTheTapDecomposition) {
  auto conv = make_conv_tc_family();
  Schedule s{"conv_tc", {{"block_m", 128}, {"block_n", 64}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                         {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  KernelSource dense = conv->emit(Workload::parse("conv2d:n=2,h=14,w=14,c=64,k=128,r=1,s=1:f16"), s);
  EXPECT_EQ(dense.source.find("struct ConvA"), std::string::npos);  // the input is A itself
  KernelSource strided = conv->emit(Workload::parse("conv2d:n=2,h=14,w=14,c=64,k=128,r=1,s=1,stride=2:f16"), s);
  EXPECT_NE(strided.source.find("Strided 1x1"), std::string::npos);
  EXPECT_EQ(strided.source.find("kConvR"), std::string::npos);
  KernelSource general = conv->emit(Workload::parse("conv2d:n=2,h=14,w=14,c=64,k=128,r=3,s=3,pad=1:f16"), s);
  EXPECT_NE(general.source.find("kConvR"), std::string::npos);
}

TEST(Families, SampledSchedulesCompileForHopperAndAmpere) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  HardwareSpec h100 = find_spec("h100_sxm");
  BuildOptions hopper;
  hopper.headers = device_headers();
  BuildOptions ampere = hopper;
  ampere.arch = "sm_80";
  for (FamilyCase& c : cases()) {
    std::vector<KernelSource> sources;
    for (const std::string& spec : c.specs) {
      Workload w = Workload::parse(spec);
      std::vector<Schedule> valid;
      for (const Schedule& s : enumerate_space(*c.family, w, h100))
        if (!c.family->validate(s, w, h100)) valid.push_back(s);
      // A fixed, spread-out sample: every k-th valid schedule.
      size_t want = 48 / c.specs.size() + 1, step = std::max<size_t>(1, valid.size() / want);
      for (size_t i = 0; i < valid.size(); i += step) {
        KernelSource src = c.family->emit(w, valid[i]);
        EXPECT_EQ(src.source, c.family->emit(w, valid[i]).source) << "emission must be deterministic";
        EXPECT_GT(src.launch.grid[0], 0);
        EXPECT_GT(src.launch.block[0], 0);
        sources.push_back(std::move(src));
      }
    }
    ASSERT_GE(sources.size(), 40u) << c.family->name();
    std::vector<CompiledKernel> built = Builder(hopper).build(sources);
    for (size_t i = 0; i < built.size(); ++i)
      EXPECT_EQ(built[i].status, Status::kOk) << c.family->name() << " #" << i << ": " << built[i].error << "\n"
                                              << sources[i].source;
    std::vector<KernelSource> few(sources.begin(), sources.begin() + 6);
    for (const CompiledKernel& k : Builder(ampere).build(few)) EXPECT_EQ(k.status, Status::kOk) << k.error;
  }
}

// A scaled product (alpha, attention's 1 / sqrt(d)) is multiplied in before the epilogue's
// steps by every GEMM family, and the kernels compile with it.
TEST(Families, ScaledGemmsMultiplyTheProductFirst) {
  HardwareSpec h100 = find_spec("h100_sxm");
  struct Case {
    std::unique_ptr<KernelFamily> family;
    const char* spec;
  };
  std::vector<Case> cases;
  cases.push_back({make_gemm_wgmma_family(), "batch_matmul:b=12,m=128,n=128,k=64,tb=1,alpha=0.125:f16"});
  cases.push_back({make_gemm_wgmma_family(), "matmul:m=128,n=768,k=768,alpha=-0.08838834764831845:f16:epilogue=bias+residual"});
  cases.push_back({make_gemm_tc_family(), "matmul:m=100,n=72,k=2000,alpha=0.125:f16:epilogue=bias+gelu"});
  cases.push_back({make_gemm_skinny_family(), "matmul:m=16,n=200,k=520,tb=1,alpha=0.125:bf16:epilogue=bias+gelu"});
  cases.push_back({make_gemm_simt_family(), "matmul:m=100,n=99,k=127,alpha=0.125:f32:epilogue=bias+relu"});
  cases.push_back({make_gemm_tf32_family(), "matmul:m=100,n=99,k=127,tb=1,alpha=2:f32:tf32=1:epilogue=residual"});
  std::vector<KernelSource> sources;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.spec);
    Workload w = Workload::parse(c.spec);
    const std::string scale = "v *= " + float_literal(w.matmul().alpha) + ";";
    int emitted = 0;
    for (const Schedule& s : enumerate_space(*c.family, w, h100)) {
      if (c.family->validate(s, w, h100) || emitted == 3) continue;
      KernelSource src = c.family->emit(w, s);
      // Before the epilogue's steps, in each of the epilogue's entry points.
      const size_t at = src.source.find(scale);
      ASSERT_NE(at, std::string::npos) << src.source;
      if (!w.epilogue.empty()) {
        EXPECT_LT(at, src.source.find("v +="));
      }
      EXPECT_EQ(c.family->emit(unscaled(w), s).source.find("v *= "), std::string::npos);
      sources.push_back(std::move(src));
      ++emitted;
    }
    EXPECT_EQ(emitted, 3);
  }
#if TESSERA_HAVE_CUDA
  BuildOptions hopper;
  hopper.headers = device_headers();
  for (const CompiledKernel& k : Builder(hopper).build(sources)) EXPECT_EQ(k.status, Status::kOk) << k.error;
#endif
}

// single_pass 2 holds a thread's share of the row in registers: the input is read once, as
// the plan tells the model, where the share fits (at most 16 packs); it compiles for uneven
// rows too (the last pack of a thread past the row's end is neither loaded nor used).
TEST(Families, RowsHeldInRegistersReadTheInputOnce) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto rows = make_rows_family();
  auto sched = [](int64_t rt, int64_t vec, int64_t pass) {
    return Schedule{"rows", {{"row_threads", rt}, {"rows_per_block", 1}, {"vec", vec}, {"single_pass", pass}}};
  };
  Workload big = Workload::parse("softmax:rows=16384,cols=4096:f16");
  EXPECT_FALSE(rows->validate(sched(128, 8, 2), big, h100).has_value());  // 4 packs per thread
  EXPECT_EQ(*rows->validate(sched(32, 2, 2), big, h100),
            "single_pass 2 holds the row in registers: at most 16 packs per thread");  // 64
  EXPECT_EQ(*rows->validate(sched(128, 8, 3), big, h100), "single_pass is 0, 1 or 2");
  EXPECT_EQ(rows->tile_plan(big, sched(128, 8, 2)).input_passes, 1);
  EXPECT_EQ(rows->tile_plan(big, sched(128, 8, 1)).input_passes, 2);
  EXPECT_EQ(rows->tile_plan(big, sched(128, 8, 2)).loads_in_flight, 4);
  // Layernorm's kernel adds the workload's epsilon, every digit of it (std::to_string wrote
  // 1e-12 as 0.000000).
  for (int64_t single : {0, 1, 2}) {
    EXPECT_NE(rows->emit(Workload::parse("layernorm:rows=64,cols=768,eps=1e-12:f16"), sched(32, 8, single))
                  .source.find("var + 1.000000000e-12f"),
              std::string::npos);
    EXPECT_NE(rows->emit(Workload::parse("layernorm:rows=64,cols=768:f16"), sched(32, 8, single)).source.find("var + 1.000000000e-05f"),
              std::string::npos);
  }
#if TESSERA_HAVE_CUDA
  BuildOptions hopper;
  hopper.headers = device_headers();
  std::vector<KernelSource> sources;
  for (const char* spec : {"softmax:rows=1000,cols=1000:f16", "layernorm:rows=333,cols=768,eps=1e-12:bf16",
                           "layernorm:rows=1001,cols=1000:f16:out=f32", "softmax:rows=49152,cols=128:f16"})
    for (int64_t rt : {32, 64, 128}) {
      Workload w = Workload::parse(spec);
      const int64_t vec = w.out_dtype == DType::kF32 ? 4 : 8;  // 16-byte accesses
      if (!rows->validate(sched(rt, vec, 2), w, h100)) sources.push_back(rows->emit(w, sched(rt, vec, 2)));
    }
  ASSERT_EQ(sources.size(), 12u);
  for (const CompiledKernel& k : Builder(hopper).build(sources)) EXPECT_EQ(k.status, Status::kOk) << k.error;
#endif
}

// The classic SGEMM schedule for large f32 GEMMs: 128x128 blocks of 256 threads with 8x8
// thread tiles in 64x32 warp tiles, k tiles of 8.
Schedule simt_schedule(int64_t bm = 128, int64_t bn = 128, int64_t bk = 8, int64_t tm = 8, int64_t tn = 8,
                       int64_t warps_m = 2) {
  return {"gemm_simt", {{"block_m", bm}, {"block_n", bn}, {"block_k", bk}, {"thread_m", tm}, {"thread_n", tn},
                        {"warps_m", warps_m}}};
}

TEST(GemmSimt, SpaceHoldsLargeAndSmallSchedules) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto simt = make_gemm_simt_family();
  Workload big = Workload::parse("matmul:m=4096,n=4096,k=4096:f32");
  std::vector<Schedule> all = enumerate_space(*simt, big, h100);
  EXPECT_NE(std::find(all.begin(), all.end(), simt_schedule()), all.end());
  EXPECT_FALSE(simt->validate(simt_schedule(), big, h100).has_value());
  EXPECT_FALSE(simt->validate(simt_schedule(256, 128, 8, 8, 8, 4), big, h100).has_value());  // 512 threads
  // A 32x32 block of 4x4 thread tiles: 64 threads, for shapes smaller than a 128x128 tile.
  Workload tiny = Workload::parse("batch_matmul:b=4,m=5,n=7,k=3,ta=1:f32");
  EXPECT_FALSE(simt->validate(simt_schedule(32, 32, 8, 4, 4, 1), tiny, h100).has_value());
}

TEST(GemmSimt, ValidateNamesEachRule) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto simt = make_gemm_simt_family();
  Workload w = Workload::parse("matmul:m=1000,n=999,k=127,ta=1:f32");
  EXPECT_EQ(*simt->validate(simt_schedule(128, 128, 6), w, h100),
            "block_k must be a positive multiple of 4 (float4 k chunks)");
  EXPECT_EQ(*simt->validate(simt_schedule(128, 128, 8, 2, 8), w, h100),
            "thread_m and thread_n must be multiples of 4 (float4 reads of shared memory)");
  EXPECT_EQ(*simt->validate(simt_schedule(100, 128, 8, 8, 8), w, h100), "the thread tile must divide the block tile");
  EXPECT_EQ(*simt->validate(simt_schedule(256, 256, 8, 4, 4, 4), w, h100),
            "threads per block must be a multiple of 32 up to 1024, not 4096");
  EXPECT_EQ(*simt->validate(simt_schedule(32, 32, 8, 8, 8, 1), w, h100),
            "threads per block must be a multiple of 32 up to 1024, not 16");
  EXPECT_EQ(*simt->validate(simt_schedule(128, 128, 8, 8, 8, 3), w, h100), "warps_m must divide the block's 8 warps");
  // 8 warps side by side along n need 8 x 8 columns of 8-wide thread tiles.
  EXPECT_EQ(*simt->validate(simt_schedule(256, 32, 8, 4, 8, 1), w, h100),
            "a 1x8 warp grid does not split the 256x32 block into whole thread tiles");
  // 512 threads of 8x8 tiles fit 128 registers a thread with 8-deep k tiles, not 16-deep ones
  // (their loads take 12 registers).
  EXPECT_FALSE(simt->validate(simt_schedule(256, 128, 8, 8, 8, 4), w, h100).has_value());
  EXPECT_EQ(*simt->validate(simt_schedule(256, 128, 16, 8, 8, 4), w, h100),
            "needs about 132 registers a thread, more than the 128 of 512 threads");
  // 256x256 blocks of 8x8 tiles: 1024 threads, too many registers (and shared memory at k 16).
  EXPECT_NE(simt->validate(simt_schedule(256, 256, 8, 8, 8, 4), w, h100)->find("registers"), std::string::npos);
  HardwareSpec roomy = h100;
  roomy.registers_per_block = 1 << 20;
  EXPECT_EQ(*simt->validate(simt_schedule(256, 256, 16, 8, 8, 4), w, roomy),
            "shared memory 65536 B exceeds the 49152 B of static shared memory");
  Workload tall = Workload::parse("batch_matmul:b=70000,m=8,n=8,k=8:f32");
  EXPECT_EQ(*simt->validate(simt_schedule(32, 32, 8, 4, 4, 1), tall, h100), "grid too large");
}

TEST(GemmSimt, PlanFollowsTheKernel) {
  auto simt = make_gemm_simt_family();
  // Both operands in float4 loads: one of A and one of B per thread and k tile; A transposed
  // into [8][128 + 4] floats, B as [8][128], two stages.
  TilePlan p = simt->tile_plan(Workload::parse("matmul:m=4096,n=4096,k=4096:f32"), simt_schedule());
  EXPECT_EQ(p.threads, 256);
  EXPECT_EQ(p.warps_m, 2);
  EXPECT_EQ(p.warps_n, 4);
  EXPECT_EQ(p.stages, 2);
  EXPECT_EQ(p.smem_bytes, 2 * 8 * (132 + 128) * 4);
  EXPECT_EQ(p.load_bytes, 16);
  EXPECT_EQ(p.loads_in_flight, 2);
  EXPECT_EQ(p.registers, 128);
  EXPECT_EQ(p.instr, InstrKind::kFmaF32);
  // k = 127 and n = 999: scalar loads of both, 4 of each per thread.
  TilePlan odd = simt->tile_plan(Workload::parse("matmul:m=1000,n=999,k=127:f32"), simt_schedule());
  EXPECT_EQ(odd.load_bytes, 4);
  EXPECT_EQ(odd.loads_in_flight, 8);
  // Transposed A is stored as it is (no padding), transposed B is padded.
  TilePlan tt = simt->tile_plan(Workload::parse("matmul:m=256,n=256,k=256,ta=1,tb=1:f32"), simt_schedule());
  EXPECT_EQ(tt.smem_bytes, 2 * 8 * (128 + 132) * 4);
  // A schedule recorded before the warp-tiled kernel (databases, tests/data) no longer runs,
  // and is planned as the kernel its times were measured with: one stage, no warp tiles.
  Schedule old{"gemm_simt", {{"block_m", 64}, {"block_n", 128}, {"block_k", 32}, {"thread_m", 4}, {"thread_n", 2}}};
  Workload big = Workload::parse("matmul:m=4096,n=4096,k=4096:f32");
  EXPECT_EQ(*simt->validate(old, big, find_spec("h100_sxm")),
            "schedule has no warps_m (recorded before the warp-tiled kernel)");
  TilePlan legacy = simt->tile_plan(big, old);
  EXPECT_EQ(legacy.threads, 16 * 64);
  EXPECT_EQ(legacy.stages, 1);
  EXPECT_EQ(legacy.warps_m, 0);
  EXPECT_EQ(legacy.smem_bytes, 32 * (64 + 1 + 128 + 1) * 4);
}

// The 128x128 schedule fits two blocks of 256 threads per multiprocessor (at most 128
// registers a thread) without spilling, on both architectures the targets use.
TEST(GemmSimt, LargeScheduleFitsTwoBlocksPerMultiprocessor) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  auto simt = make_gemm_simt_family();
  std::vector<KernelSource> sources = {
      simt->emit(Workload::parse("matmul:m=4096,n=4096,k=4096:f32"), simt_schedule()),
      simt->emit(Workload::parse("matmul:m=4096,n=4096,k=4096,ta=1,tb=1:f32:epilogue=bias+gelu"), simt_schedule())};
  for (const char* arch : {"sm_90a", "sm_80"}) {
    BuildOptions options;
    options.arch = arch;
    options.headers = device_headers();
    for (const CompiledKernel& k : Builder(options).build(sources)) {
      SCOPED_TRACE(arch);
      ASSERT_EQ(k.status, Status::kOk) << k.error;
      EXPECT_LE(k.usage.registers, 128);
      EXPECT_EQ(k.usage.stack_bytes, 0);
    }
  }
}

}  // namespace
}  // namespace tessera::kernels
