// Kernel families on a real GPU (label gpu; skipped without one): for each family, at least
// 20 valid schedules across irregular shapes are compiled, run once on fresh random inputs
// with the output poisoned (NaN), and compared with the CPU reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "kernels/reference.h"
#include "measure/devices.h"
#include "measure/launch.h"

namespace tessera::kernels {
namespace {

struct Tolerance {
  double rel, abs;
};

// |got - want| <= abs * max|want| + rel * |want|: relative to each value, with a floor that
// scales with the output's magnitude (so tiny outputs, e.g. softmax over 4096 columns, are
// held to the same precision as large ones). Near the output dtype's rounding error.
Tolerance tolerance(DType out) {
  switch (out) {
    case DType::kF32: return {1e-4, 1e-5};
    case DType::kF16: return {2e-3, 1e-3};
    case DType::kBF16: return {1e-2, 8e-3};
  }
  return {0, 0};
}

class FamiliesGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    scan_ = measure::scan_devices();
    if (scan_.devices.empty()) GTEST_SKIP() << "no GPU: " << scan_.reason;
    ASSERT_TRUE(scan_.devices.front().spec.has_value());
  }

  // Runs `per_shape` spread-out valid schedules per workload; returns {tried, passed}.
  // Only schedules `keep` accepts (all when empty) are considered.
  std::pair<int, int> check_family(const KernelFamily& family, const std::vector<std::string>& specs, size_t per_shape,
                                   const std::function<bool(const Schedule&)>& keep = {}) {
    const measure::Device& dev = scan_.devices.front();
    BuildOptions options;
    options.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
    options.headers = device_headers();
    Builder builder(options);
    int tried = 0, passed = 0;
    for (const std::string& spec : specs) {
      Workload w = Workload::parse(spec);
      std::vector<Schedule> valid;
      for (const Schedule& s : enumerate_space(family, w, *dev.spec))
        if (!family.validate(s, w, *dev.spec) && (!keep || keep(s))) valid.push_back(s);
      size_t step = std::max<size_t>(1, valid.size() / per_shape);
      std::vector<Schedule> chosen;
      for (size_t i = 0; i < valid.size() && chosen.size() < per_shape; i += step) chosen.push_back(valid[i]);
      std::vector<KernelSource> sources;
      for (const Schedule& s : chosen) sources.push_back(family.emit(w, s));
      std::vector<CompiledKernel> built = builder.build(sources);

      TensorExpr e = w.expr();
      for (size_t i = 0; i < chosen.size(); ++i) {
        SCOPED_TRACE(spec + " | " + chosen[i].key());
        ++tried;
        if (std::getenv("TESSERA_TEST_VERBOSE")) {  // names the kernel a hang or crash stopped at
          std::printf("[ run      ] %s | %s\n", spec.c_str(), chosen[i].key().c_str());
          std::fflush(stdout);
        }
        if (built[i].status != Status::kOk) {
          ADD_FAILURE() << "compile error: " << built[i].error;
          continue;
        }
        std::vector<HostTensor> inputs = random_inputs(w, 1000 + i);
        HostTensor want = reference(w, inputs);
        std::vector<measure::DeviceBuffer> buffers;
        size_t next_input = 0;
        for (const TensorAccess& t : e.tensors) {
          if (t.role == TensorRole::kInput) {
            std::vector<uint8_t> bytes = encode(inputs[next_input++], t.dtype);
            buffers.emplace_back(bytes.size());
            buffers.back().upload(bytes);
          } else {
            buffers.emplace_back(static_cast<size_t>(t.elements() * dtype_bytes(t.dtype)));
            buffers.back().fill(0xFF);  // NaN in every float format: unwritten outputs fail
          }
        }
        std::vector<void*> pointers, args;
        for (const measure::DeviceBuffer& b : buffers) pointers.push_back(b.data());
        for (void*& p : pointers) args.push_back(&p);
        // Twice, the output poisoned again between: a plan must leave its workspace as its next
        // launch needs it.
        measure::LaunchOutcome run = measure::launch_once(built[i], sources[i], args, [&] { buffers.back().fill(0xFF); });
        if (run.status != Status::kOk) {
          ADD_FAILURE() << status_name(run.status) << ": " << run.error;
          continue;
        }
        HostTensor got = decode(buffers.back().download(), want.shape, w.out_dtype);
        Tolerance tol = tolerance(w.out_dtype);
        double scale = 0;
        for (float v : want.data) scale = std::max(scale, std::fabs(static_cast<double>(v)));
        int64_t bad = 0;
        double worst = 0;
        for (size_t j = 0; j < want.data.size(); ++j) {
          double err = std::fabs(static_cast<double>(got.data[j]) - want.data[j]);
          bool ok = std::isfinite(got.data[j]) && err <= tol.abs * scale + tol.rel * std::fabs(want.data[j]);
          if (!ok) ++bad;
          if (!(err <= worst)) worst = err;
        }
        EXPECT_EQ(bad, 0) << bad << " of " << want.data.size() << " outputs off (worst abs error " << worst << ")";
        if (bad == 0) ++passed;
      }
    }
    std::printf("[ family   ] %s: %d schedules tried, %d passed\n", std::string(family.name()).c_str(), tried, passed);
    return {tried, passed};
  }

  measure::DeviceScan scan_;
};

TEST_F(FamiliesGpu, ElementwiseMatchesReference) {
  auto [tried, passed] = check_family(*make_elementwise_family(),
                                      {"elementwise:ops=add+relu,n=1000003:f16", "elementwise:ops=mul+gelu,n=4097:bf16",
                                       "elementwise:ops=sigmoid+neg,n=333:f32:out=f16",
                                       "elementwise:ops=sub+tanh+exp+abs+max+div,n=77777:f16:out=f32"},
                                      6);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

// The device GELU (common.cuh) against the double-precision reference over its whole range,
// in f32 and tighter than the family tolerance: 2e-5 of each value. The old erff form,
// 0.5 x (1 + erff(x / sqrt 2)), fails this below x = -4 where 1 + erff cancels.
TEST_F(FamiliesGpu, GeluIsAccurateOverItsRange) {
  const int64_t n = 1 << 20;
  Workload w = Workload::parse("elementwise:ops=gelu,n=" + std::to_string(n) + ":f32");
  std::unique_ptr<KernelFamily> family = make_elementwise_family();
  const measure::Device& dev = scan_.devices.front();
  std::optional<Schedule> schedule;
  for (const Schedule& s : enumerate_space(*family, w, *dev.spec))
    if (!family->validate(s, w, *dev.spec)) {
      schedule = s;
      break;
    }
  ASSERT_TRUE(schedule.has_value());
  BuildOptions options;
  options.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
  options.headers = device_headers();
  KernelSource source = family->emit(w, *schedule);
  std::vector<CompiledKernel> built = Builder(options).build(std::vector<KernelSource>{source});
  ASSERT_EQ(built[0].status, Status::kOk) << built[0].error;

  HostTensor x{{n}, std::vector<float>(static_cast<size_t>(n))};
  for (int64_t i = 0; i < n; ++i) x.data[static_cast<size_t>(i)] = -12.0f + 24.0f * static_cast<float>(i) / (n - 1);
  HostTensor want = reference(w, std::vector<HostTensor>{x});
  measure::DeviceBuffer in(static_cast<size_t>(n * 4)), out(static_cast<size_t>(n * 4));
  in.upload(encode(x, DType::kF32));
  out.fill(0xFF);
  void* pin = in.data();
  void* pout = out.data();
  std::vector<void*> args{&pin, &pout};
  measure::LaunchOutcome run = measure::launch_once(built[0], source, args);
  ASSERT_EQ(run.status, Status::kOk) << run.error;
  HostTensor got = decode(out.download(), want.shape, DType::kF32);
  int64_t bad = 0;
  double worst = 0, worst_x = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got.data[i]) - want.data[i]);
    const double rel = err / std::max(std::fabs(static_cast<double>(want.data[i])), 1e-30);
    if (!(err <= 2e-5 * std::fabs(want.data[i]) + 1e-30)) ++bad;
    if (!(rel <= worst)) worst = rel, worst_x = x.data[i];
  }
  std::printf("[ gelu     ] worst relative error %.3g at x = %.4f over [-12, 12]\n", worst, worst_x);
  EXPECT_EQ(bad, 0) << bad << " of " << n << " outside 2e-5 relative (worst " << worst << " at x = " << worst_x << ")";
}

TEST_F(FamiliesGpu, RowsMatchReference) {
  auto [tried, passed] = check_family(*make_rows_family(),
                                      {"softmax:rows=1000,cols=1000:f16", "softmax:rows=37,cols=4096:f32",
                                       "layernorm:rows=333,cols=768:bf16", "layernorm:rows=1001,cols=1000:f16:out=f32",
                                       "reduce:op=sum,rows=999,cols=1024:f32", "reduce:op=max,rows=4097,cols=49:f16",
                                       "reduce:op=mean,rows=7,cols=4096:bf16"},
                                      4);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, TensorCoreGemmMatchesReference) {
  if (scan_.devices.front().properties.cc_major < 8) GTEST_SKIP() << "mma.sync m16n8k16 needs sm_80";
  auto [tried, passed] = check_family(*make_gemm_tc_family(),
                                      {"matmul:m=1000,n=1000,k=127:f16", "matmul:m=333,n=264,k=96:bf16:out=f32:epilogue=bias+gelu",
                                       "matmul:m=128,n=200,k=64,tb=1:f16:epilogue=residual+relu",
                                       "batch_matmul:b=3,m=77,n=64,k=40:f16", "matmul:m=512,n=512,k=512:f16"},
                                      5);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, HopperGemmMatchesReference) {
  if (scan_.devices.front().properties.cc_major != 9) GTEST_SKIP() << "wgmma needs an sm_90 GPU";
  // Edges in m, n and k (TMA zero-fill, predicated stores), both layouts of B, batches, more
  // tiles than multiprocessors (the persistent loop), epilogues and bf16.
  const std::vector<std::string> shapes = {
      "matmul:m=1000,n=1000,k=136:f16", "matmul:m=333,n=264,k=96:bf16:out=f32:epilogue=bias+gelu",
      "matmul:m=128,n=200,k=64,tb=1:f16:epilogue=residual+relu", "batch_matmul:b=3,m=77,n=64,k=40:f16",
      "matmul:m=2048,n=2048,k=512:f16", "matmul:m=384,n=3072,k=768,tb=1:f16:epilogue=bias+gelu"};
  // Both epilogues (stores from registers; staged through shared memory for TMA stores), with
  // the consumers sharing each tile or taking whole tiles in turn (ping-pong).
  // Clusters of two blocks multicasting B's tile: odd tile-row counts (333 rows) leave the last
  // cluster's second tile below M.
  for (int64_t cluster : {1, 2})
    for (int64_t pingpong : {0, 1})
      for (int64_t tma_store : {0, 1}) {
        SCOPED_TRACE("cluster_m=" + std::to_string(cluster) + " pingpong=" + std::to_string(pingpong) +
                     " tma_store=" + std::to_string(tma_store));
        const size_t per_shape = cluster == 2 ? 2 : pingpong ? 3 : 5;
        auto [tried, passed] = check_family(*make_gemm_wgmma_family(), shapes, per_shape, [&](const Schedule& s) {
          return s.get("tma_store") == tma_store && s.get("pingpong") == pingpong && s.get("cluster_m") == cluster;
        });
        EXPECT_GE(tried, cluster == 2 ? 8 : pingpong ? 12 : tma_store ? 20 : 30);
        EXPECT_EQ(passed, tried);
      }
  // 32-wide k steps: 64-byte swizzled K-major tiles (A, and B when tb=1), 32-row boxes of a
  // [K, N] B; k = 40 and 136 leave a partial last step.
  {
    auto [tried, passed] = check_family(*make_gemm_wgmma_family(), shapes, 4,
                                        [](const Schedule& s) { return s.get("block_k") == 32; });
    EXPECT_GE(tried, 20);
    EXPECT_EQ(passed, tried);
  }
  // Three consumer warpgroups of 64 rows each (192-row tiles): both epilogues, clusters.
  {
    auto [tried, passed] = check_family(*make_gemm_wgmma_family(), shapes, 4,
                                        [](const Schedule& s) { return s.get("consumers") == 3; });
    EXPECT_GE(tried, 20);
    EXPECT_EQ(passed, tried);
  }
  // Two blocks per SM (one consumer each, 128 registers), the persistent loop over twice as many
  // blocks.
  {
    auto [tried, passed] = check_family(*make_gemm_wgmma_family(), shapes, 4,
                                        [](const Schedule& s) { return s.find("blocks_per_sm").value_or(1) == 2; });
    EXPECT_GE(tried, 20);
    EXPECT_EQ(passed, tried);
  }
  // Narrow tiles (block_n 8, 16 and 32 of a K-major B; 16 and 32 of a [K, N] B, one box of
  // 32- or 64-byte swizzled rows), columns short of a tile (n = 200, 264, 72), a partial last
  // k step (k = 40, 136), clusters, stores from registers.
  {
    auto [tried, passed] = check_family(*make_gemm_wgmma_family(),
                                        {"matmul:m=128,n=200,k=64,tb=1:f16:epilogue=residual+relu",
                                         "matmul:m=384,n=3072,k=768,tb=1:f16:epilogue=bias+gelu",
                                         "batch_matmul:b=3,m=77,n=264,k=40,tb=1:bf16:out=f32:epilogue=bias",
                                         "matmul:m=128,n=768,k=768:f16:epilogue=bias+residual",
                                         "matmul:m=333,n=200,k=136:bf16:out=f32:epilogue=bias+gelu",
                                         "batch_matmul:b=3,m=77,n=72,k=40:f16"},
                                        6, [](const Schedule& s) { return s.get("block_n") < 64; });
    EXPECT_GE(tried, 30);
    EXPECT_EQ(passed, tried);
  }
  // Odd n (rows of 2 * n bytes, not 16-byte aligned), staged and copied out by the warpgroup:
  // attention's scores at 197 tokens, an odd batch, shared, ping-pong and three-consumer tiles.
  {
    auto [tried, passed] = check_family(*make_gemm_wgmma_family(),
                                        {"batch_matmul:b=6,m=197,n=197,k=64,tb=1,alpha=0.125:f16",
                                         "matmul:m=300,n=1001,k=128,tb=1:f16:epilogue=bias+gelu",
                                         "batch_matmul:b=3,m=77,n=69,k=40,tb=1:bf16"},
                                        6, [](const Schedule& s) { return s.get("tma_store") == 1; });
    EXPECT_GE(tried, 15);
    EXPECT_EQ(passed, tried);
  }
  // Split-K: partial sums of each slice, added (and the epilogue applied) by a second kernel;
  // an uneven last slice (k = 2000 is 32 steps of 64, the last one short).
  auto [tried, passed] = check_family(
      *make_gemm_wgmma_family(),
      {"matmul:m=100,n=72,k=2000,tb=1:f16:epilogue=bias+gelu", "batch_matmul:b=2,m=64,n=136,k=1032:bf16:out=f32:epilogue=residual",
       "matmul:m=512,n=512,k=16384:f16"},
      4, [](const Schedule& s) { return s.get("split_k") > 1; });
  EXPECT_GE(tried, 12);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, HopperGemmDeepRingsMatchReference) {
  if (scan_.devices.front().properties.cc_major != 9) GTEST_SKIP() << "wgmma needs an sm_90 GPU";
  // Deep rings (12 and 16 stages of small tiles): the slot and phase arithmetic past 8 slots,
  // k loops shorter and longer than the ring.
  auto [tried, passed] = check_family(*make_gemm_wgmma_family(),
                                      {"matmul:m=128,n=768,k=768:f16:epilogue=bias+residual",
                                       "matmul:m=333,n=200,k=136:bf16:out=f32:epilogue=bias+gelu",
                                       "matmul:m=128,n=384,k=4096,tb=1:f16", "batch_matmul:b=3,m=77,n=72,k=1040:f16"},
                                      6, [](const Schedule& s) { return s.get("stages") >= 12; });
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
  // The convolutions' loads on the same rings: im2col, block-diagonal groups, row strips.
  auto [conv_tried, conv_passed] = check_family(
      *make_conv_wgmma_family(),
      {"conv2d:n=1,h=14,w=14,c=256,k=256,r=3,s=3,pad=1:f16:epilogue=bias", "conv2d:n=2,h=7,w=7,c=256,k=256,r=3,s=3,pad=1,groups=8:f16",
       "conv2d:n=1,h=29,w=29,c=3,k=32,r=3,s=3,stride=2:f16:epilogue=bias"},
      4, [](const Schedule& s) { return s.get("stages") >= 12; });
  EXPECT_GE(conv_tried, 10);
  EXPECT_EQ(conv_passed, conv_tried);
}

TEST_F(FamiliesGpu, HopperConvMatchesReference) {
  if (scan_.devices.front().properties.cc_major != 9) GTEST_SKIP() << "wgmma needs an sm_90 GPU";
  // im2col TMA: padding, strides (asymmetric too), dilation, channels short of a k step or
  // spilling into a second one, output pixels crossing rows and images and ending mid-tile,
  // filters short of a tile; epilogues, bf16, f32 outputs.
  const std::vector<std::string> dense = {
      "conv2d:n=2,h=13,w=11,c=16,k=64,r=3,s=3,pad=1:f16", "conv2d:n=3,h=9,w=9,c=32,k=72,r=1,s=1,stride=2:bf16:epilogue=bias+relu",
      "conv2d:n=2,h=8,w=8,c=24,k=40,r=3,s=3,pad=2,dilation=2:f16:out=f32:epilogue=residual+gelu",
      "conv2d:n=2,h=17,w=17,c=80,k=96,r=1,s=7,pad=0x3:f16:epilogue=bias",
      "conv2d:n=4,h=7,w=7,c=256,k=128,r=3,s=3,pad=1:f16:epilogue=bias+residual+relu",
      "conv2d:n=2,h=15,w=13,c=64,k=64,r=3,s=3,stride=2x1,pad=1x0:f16"};
  // Block-diagonal grouped tiles (8, 16 and 32 channels per group, twice as many filters),
  // groups of whole tiles, and merged groups (4 channels and filters a group, as ResNeXt-50
  // 32x4d's first stage; 2 channels and 4 filters; merged groups of whole tiles).
  const std::vector<std::string> grouped = {
      "conv2d:n=2,h=14,w=14,c=128,k=128,r=3,s=3,pad=1,groups=32:f16:epilogue=bias+relu",
      "conv2d:n=1,h=9,w=9,c=64,k=128,r=3,s=3,stride=2,pad=1,groups=32:bf16:epilogue=residual",
      "conv2d:n=2,h=6,w=6,c=16,k=16,r=3,s=3,pad=1,groups=4:f16",
      "conv2d:n=2,h=14,w=14,c=256,k=256,r=3,s=3,pad=1,groups=16:f16:epilogue=bias+relu",
      "conv2d:n=1,h=9,w=9,c=64,k=64,r=3,s=3,stride=2,pad=1,groups=8:bf16",
      "conv2d:n=2,h=7,w=7,c=256,k=256,r=3,s=3,pad=1,groups=8:f16", "conv2d:n=2,h=10,w=10,c=128,k=256,r=3,s=3,pad=1,groups=8:f16",
      "conv2d:n=2,h=12,w=12,c=256,k=256,r=1,s=1,groups=2:f16:epilogue=residual"};
  // Gathered by the producer's threads: RGB stems and a channel count TMA rows cannot hold.
  const std::vector<std::string> gathered = {
      "conv2d:n=2,h=33,w=31,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+relu",
      "conv2d:n=1,h=29,w=29,c=3,k=32,r=3,s=3,stride=2:bf16", "conv2d:n=2,h=9,w=9,c=12,k=40,r=3,s=3,pad=1:f16:out=f32"};
  std::unique_ptr<KernelFamily> family = make_conv_wgmma_family();
  std::vector<std::string> all = dense;
  all.insert(all.end(), grouped.begin(), grouped.end());
  all.insert(all.end(), gathered.begin(), gathered.end());
  auto [tried, passed] = check_family(*family, all, 4);
  EXPECT_GE(tried, 50);
  EXPECT_EQ(passed, tried);
  // The epilogue variants and the multi-block features, each on its own.
  const std::vector<std::pair<std::string, std::function<bool(const Schedule&)>>> variants = {
      {"tma_store", [](const Schedule& s) { return s.get("tma_store") == 1; }},
      {"pingpong", [](const Schedule& s) { return s.get("pingpong") == 1; }},
      {"cluster_m", [](const Schedule& s) { return s.get("cluster_m") == 2; }},
      {"split_k", [](const Schedule& s) { return s.get("split_k") > 1; }},
      {"block_k 32", [](const Schedule& s) { return s.get("block_k") == 32; }},
      {"three consumers", [](const Schedule& s) { return s.get("consumers") == 3; }},
      {"two blocks per SM", [](const Schedule& s) { return s.find("blocks_per_sm").value_or(1) == 2; }},
      {"narrow tiles", [](const Schedule& s) { return s.get("block_n") < 64; }}};
  for (const auto& [label, keep] : variants) {
    SCOPED_TRACE(label);
    auto [t, p] = check_family(*family, all, 2, keep);
    EXPECT_GE(t, 8);
    EXPECT_EQ(p, t);
  }
  // Fewer than 8 channels padded to 8 by a kernel before the GEMM, block_k / 8 taps a step (the
  // last step's spare taps zeroed): strides, dilation, 1 to 4 channels, epilogues.
  const std::vector<std::string> few = {
      gathered[0], gathered[1], "conv2d:n=2,h=20,w=20,c=4,k=72,r=5,s=5,pad=2:bf16:epilogue=bias+residual+relu",
      "conv2d:n=3,h=16,w=15,c=1,k=16,r=3,s=3,pad=2,dilation=2:f16:out=f32"};
  auto [t, p] = check_family(*family, few, 6, [](const Schedule& s) { return s.find("pad_channels").value_or(0) == 1; });
  EXPECT_GE(t, 20);
  EXPECT_EQ(p, t);
  // Row strips (the filters padded, the input as it is): strides 2, 1 and 4 along the width
  // (the k16 step's taps in one phase array or two), filter rows of 3 to 11 taps (two steps a
  // row past 8), dilation down the height, rows of a tile past the output row, epilogues; more
  // output rows than blocks, so the producer's groups take their steps across a block's tiles;
  // pixels of 1 to 7 channels (loaded as 2-, 4- or 8-byte words).
  const std::vector<std::string> strip_convs = {
      gathered[0], gathered[1], "conv2d:n=2,h=20,w=20,c=4,k=72,r=5,s=5,pad=2:bf16:epilogue=bias+residual+relu",
      "conv2d:n=1,h=47,w=45,c=1,k=24,r=11,s=11,stride=4,pad=2:f16:out=f32",
      "conv2d:n=3,h=16,w=15,c=2,k=16,r=3,s=3,pad=2:f16:epilogue=bias",
      "conv2d:n=5,h=112,w=112,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+relu",
      "conv2d:n=2,h=30,w=33,c=6,k=40,r=3,s=5,stride=2,pad=1:f16:epilogue=bias",
      "conv2d:n=2,h=21,w=26,c=7,k=24,r=2,s=3,pad=1:bf16"};
  auto [ts, ps] = check_family(*family, strip_convs, 6, [](const Schedule& s) { return s.find("pad_channels").value_or(0) == 2; });
  EXPECT_GE(ts, 40);
  EXPECT_EQ(ps, ts);
}

// alpha: the product scaled before the epilogue (attention's 1 / sqrt(d) folded into its matmul),
// in every GEMM family: staged residuals and TMA stores, split-K's second kernel, the skinny
// family's cluster reduction, SIMT and tf32.
TEST_F(FamiliesGpu, GemmsScaleTheirProduct) {
  const int cc = scan_.devices.front().properties.cc_major;
  if (cc < 8) GTEST_SKIP() << "mma.sync m16n8k16 needs sm_80";
  struct Case {
    std::unique_ptr<KernelFamily> family;
    std::vector<std::string> specs;
  };
  std::vector<Case> cases;
  cases.push_back({make_gemm_tc_family(), {"batch_matmul:b=12,m=128,n=128,k=64,tb=1,alpha=0.125:f16",
                                           "matmul:m=333,n=200,k=136,alpha=0.3:bf16:out=f32:epilogue=bias+gelu",
                                           "matmul:m=100,n=72,k=2000,alpha=-0.25:f16:epilogue=bias+gelu"}});
  cases.push_back({make_gemm_skinny_family(), {"matmul:m=16,n=200,k=520,tb=1,alpha=0.125:bf16:epilogue=bias+gelu",
                                               "matmul:m=1,n=4096,k=4096,alpha=3:f16"}});
  cases.push_back({make_gemm_simt_family(), {"matmul:m=100,n=99,k=127,alpha=0.125:f32:epilogue=bias+relu"}});
  cases.push_back({make_gemm_tf32_family(), {"matmul:m=100,n=99,k=127,tb=1,alpha=2:f32:tf32=1:epilogue=residual"}});
  if (cc == 9) {
    cases.push_back({make_gemm_wgmma_family(), {"batch_matmul:b=12,m=128,n=128,k=64,tb=1,alpha=0.125:f16",
                                                "matmul:m=128,n=768,k=768,alpha=0.5:f16:epilogue=bias+residual",
                                                "matmul:m=100,n=72,k=2000,tb=1,alpha=-0.25:f16:epilogue=bias+gelu"}});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.family->name()));
    auto [tried, passed] = check_family(*c.family, c.specs, 4);
    EXPECT_GE(tried, static_cast<int>(c.specs.size()) * 2);
    EXPECT_EQ(passed, tried);
  }
}

TEST_F(FamiliesGpu, SplitKGemmMatchesReference) {
  if (scan_.devices.front().properties.cc_major < 8) GTEST_SKIP() << "mma.sync m16n8k16 needs sm_80";
  auto [tried, passed] = check_family(*make_gemm_tc_family(),
                                      {"matmul:m=100,n=72,k=2000:f16:epilogue=bias+gelu",
                                       "batch_matmul:b=2,m=64,n=130,k=1032,tb=1:bf16:out=f32:epilogue=residual",
                                       "matmul:m=256,n=256,k=4096:f16", "matmul:m=33,n=64,k=520:f16:out=f32"},
                                      6, [](const Schedule& s) { return s.get("split_k") > 1; });
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, SkinnyGemmMatchesReference) {
  if (scan_.devices.front().properties.cc_major < 8) GTEST_SKIP() << "mma.sync m16n8k16 needs sm_80";
  // Both B layouts, m16 tiles with rows past M, k slices across clusters, odd n with a K-major B,
  // batches and every epilogue.
  auto [tried, passed] = check_family(*make_gemm_skinny_family(),
                                      {"matmul:m=1,n=4096,k=4096:f16", "matmul:m=16,n=200,k=520,tb=1:bf16:epilogue=bias+gelu",
                                       "batch_matmul:b=3,m=33,n=72,k=264:f16:out=f32:epilogue=residual",
                                       "matmul:m=64,n=136,k=1000:f16:epilogue=bias+residual+relu",
                                       "matmul:m=5,n=77,k=96,tb=1:f16"},
                                      8);
  EXPECT_GE(tried, 30);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, SimtGemmMatchesReference) {
  // Global loads in float4s of A only (its rows of 1000), of neither (k = 17), of B only (its
  // rows of 300), of both (whole tiles; and B transposed into shared memory, with edges in m),
  // plus batches, epilogues and f16 outputs.
  const std::vector<std::string> shapes = {"matmul:m=1000,n=999,k=127,ta=1:f32:epilogue=bias+relu",
                                           "batch_matmul:b=4,m=33,n=65,k=17,tb=1:f32:epilogue=residual+gelu",
                                           "matmul:m=257,n=130,k=300,ta=1,tb=1:f32:out=f16",
                                           "matmul:m=64,n=64,k=64:f32",
                                           "matmul:m=256,n=256,k=256:f32",
                                           "batch_matmul:b=2,m=200,n=136,k=52,tb=1:f32:epilogue=bias"};
  auto [tried, passed] = check_family(*make_gemm_simt_family(), shapes, 6);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
  // The schedules the large GEMMs run: 8x8 thread tiles.
  auto [t, p] = check_family(*make_gemm_simt_family(), shapes, 3,
                             [](const Schedule& s) { return s.get("thread_m") == 8 && s.get("thread_n") == 8; });
  EXPECT_GE(t, 12);
  EXPECT_EQ(p, t);
}

TEST_F(FamiliesGpu, Tf32GemmMatchesReference) {
  if (scan_.devices.front().properties.cc_major < 8) GTEST_SKIP() << "tf32 mma.sync needs sm_80";
  auto [tried, passed] = check_family(*make_gemm_tf32_family(),
                                      {"matmul:m=1000,n=999,k=127,tb=1:f32:tf32=1:epilogue=bias+relu",
                                       "batch_matmul:b=4,m=33,n=64,k=20:f32:tf32=1:epilogue=residual+gelu",
                                       "matmul:m=256,n=192,k=96:f32:tf32=1:out=bf16", "matmul:m=130,n=64,k=64:f32:tf32=1"},
                                      6);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, DirectConvMatchesReference) {
  auto [tried, passed] = check_family(
      *make_conv_direct_family(),
      {"conv2d:n=2,h=29,w=31,c=36,k=36,r=3,s=3,pad=1,groups=36:f16",
       "conv2d:n=1,h=23,w=23,c=12,k=12,r=5,s=5,stride=2,pad=2,groups=12:bf16:epilogue=bias+relu",
       "conv2d:n=2,h=9,w=7,c=8,k=12,r=3,s=2,stride=2x1,pad=1x0,dilation=2x1,groups=4,layout=nchw:f32:epilogue=bias+gelu",
       "conv2d:n=1,h=15,w=15,c=3,k=16,r=7,s=7,stride=2,pad=3:f16:epilogue=residual"},
      6);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

TEST_F(FamiliesGpu, ImplicitGemmConvMatchesReference) {
  if (scan_.devices.front().properties.cc_major < 8) GTEST_SKIP() << "mma.sync m16n8k16 needs sm_80";
  auto [tried, passed] = check_family(
      *make_conv_tc_family(),
      {"conv2d:n=2,h=13,w=11,c=16,k=64,r=3,s=3,pad=1:f16", "conv2d:n=3,h=9,w=9,c=32,k=72,r=1,s=1,stride=2:bf16:epilogue=bias+relu",
       "conv2d:n=1,h=15,w=15,c=3,k=16,r=7,s=7,stride=2,pad=3:f16", "conv2d:n=2,h=8,w=8,c=24,k=40,r=3,s=3,pad=2,dilation=2:f16:out=f32:epilogue=residual+gelu",
       "conv2d:n=2,h=7,w=9,c=40,k=24,r=1,s=1:f16:epilogue=bias"},
      6);
  EXPECT_GE(tried, 20);
  EXPECT_EQ(passed, tried);
}

}  // namespace
}  // namespace tessera::kernels
