// The Hopper convolution family on the CPU: which convolutions it takes and how (im2col TMA,
// block-diagonal grouped tiles, gathered operands), its rules, its launch plans and tensor maps,
// and NVRTC compilation for sm_90a without stack frames or spills; with cuobjdump on the PATH
// (or in $CUDA_HOME/bin), the SASS shows HGMMA and no local-memory traffic.
#include <gtest/gtest.h>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "tests/kernels/hopper_checks.h"

namespace tessera::kernels {
namespace {

Schedule conv(int64_t bm, int64_t bn, int64_t bk = 64, int64_t stages = 4, int64_t consumers = 2, int64_t tma_store = 0,
              int64_t pingpong = 0, int64_t cluster = 1, int64_t split = 1) {
  return {"conv_wgmma",
          {{"block_m", bm}, {"block_n", bn}, {"block_k", bk}, {"stages", stages}, {"consumers", consumers}, {"group_m", 8},
           {"tma_store", tma_store}, {"pingpong", pingpong}, {"cluster_m", cluster}, {"split_k", split}}};
}

const char* kDense = "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16";
const char* kGrouped = "conv2d:n=1,h=14,w=14,c=512,k=512,r=3,s=3,pad=1,groups=32:f16:epilogue=bias";  // Cg = Kg = 16
const char* kStem = "conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16";

TEST(ConvWgmma, TakesDenseAndGroupedConvolutionsAheadOfTheMmaSyncFamily) {
  FamilyRegistry r;
  register_builtin_families(r);
  auto fams = r.for_workload(Workload::parse(kDense));
  ASSERT_GE(fams.size(), 2u);
  EXPECT_EQ(fams[0]->name(), "conv_wgmma");
  EXPECT_EQ(fams[1]->name(), "conv_tc");
  auto f = make_conv_wgmma_family();
  EXPECT_TRUE(f->supports(Workload::parse(kGrouped)));
  EXPECT_TRUE(f->supports(Workload::parse(kStem)));
  EXPECT_TRUE(f->supports(Workload::parse("conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3,pad=1,groups=8:bf16")));
  // 4-channel groups (8-byte rows) run merged in pairs; depthwise, 3-channel groups (no 2 or 4
  // of them make 16-byte rows), NCHW and f32 are other families'.
  EXPECT_TRUE(f->supports(Workload::parse("conv2d:n=1,h=56,w=56,c=128,k=128,r=3,s=3,pad=1,groups=32:f16")));
  EXPECT_FALSE(f->supports(Workload::parse("conv2d:n=1,h=56,w=56,c=144,k=144,r=3,s=3,pad=1,groups=144:f16")));
  EXPECT_FALSE(f->supports(Workload::parse("conv2d:n=1,h=8,w=8,c=96,k=96,r=3,s=3,pad=1,groups=32:f16")));
  EXPECT_FALSE(f->supports(Workload::parse("conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3,layout=nchw:f16")));
  EXPECT_FALSE(f->supports(Workload::parse("conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3:f32")));
}

TEST(ConvWgmma, ValidateSaysWhyAScheduleCannotRun) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_conv_wgmma_family();
  Workload dense = Workload::parse(kDense);
  EXPECT_FALSE(f->validate(conv(128, 64), dense, h100).has_value());
  EXPECT_FALSE(f->validate(conv(128, 64, 64, 4, 2, 1, 1, 2), dense, h100).has_value());
  EXPECT_EQ(f->validate(conv(128, 64), dense, find_spec("a100_sxm")).value_or(""),
            "wgmma and setmaxnreg need an sm_90 (Hopper) GPU");
  // 3 x 3 taps of one 64-channel chunk: 9 k steps, enough for 2 slices, not for 8.
  EXPECT_FALSE(f->validate(conv(128, 64, 64, 4, 1, 0, 0, 1, 2), dense, h100).has_value());
  EXPECT_EQ(f->validate(conv(128, 64, 64, 4, 1, 0, 0, 1, 8), dense, h100).value_or(""),
            "split_k 8 leaves a slice of the 9 k steps empty");
  EXPECT_EQ(f->validate(conv(128, 64, 32, 4, 1, 0, 0, 1, 8), Workload::parse("conv2d:n=1,h=8,w=8,c=32,k=64,r=1,s=1:f16"), h100)
                .value_or(""),
            "split_k 8 leaves a slice of the 1 k steps empty");
  // Grouped, 16 channels and filters per group: a 64-wide tile holds 4 groups, whose 64
  // channels fit one 64-wide k step; not 128 filters, not 32-wide steps, not multicast.
  Workload grouped = Workload::parse(kGrouped);
  EXPECT_FALSE(f->validate(conv(64, 64, 64, 4, 1), grouped, h100).has_value());
  EXPECT_FALSE(f->validate(conv(128, 64), grouped, h100).has_value());
  EXPECT_NE(f->validate(conv(128, 128), grouped, h100).value_or("").find("whole groups"), std::string::npos);
  EXPECT_NE(f->validate(conv(128, 64, 32), grouped, h100).value_or("").find("whole groups"), std::string::npos);
  EXPECT_EQ(f->validate(conv(128, 64, 64, 4, 2, 0, 0, 2), grouped, h100).value_or(""),
            "block-diagonal tiles load B per group: cluster_m must be 1");
  // Two groups of 128 filters: a tile lies in one group (64 or 128 wide), not across two.
  Workload two = Workload::parse("conv2d:n=2,h=28,w=28,c=256,k=256,r=3,s=3,pad=1,groups=2:f16");
  EXPECT_FALSE(f->validate(conv(128, 64), two, h100).has_value());
  EXPECT_FALSE(f->validate(conv(128, 128, 64, 4, 2, 0, 0, 2), two, h100).has_value());
  EXPECT_NE(f->validate(conv(128, 192), two, h100).value_or("").find("one group"), std::string::npos);
  // The stem's 3 channels are gathered by the producer's threads: no multicast, and its
  // accumulators share the register file with a producer that keeps 128.
  Workload stem = Workload::parse(kStem);
  EXPECT_FALSE(f->validate(conv(128, 64), stem, h100).has_value());
  EXPECT_EQ(f->validate(conv(128, 64, 64, 4, 2, 0, 0, 2), stem, h100).value_or(""),
            "gathered operands are not multicast: cluster_m must be 1");
  EXPECT_NE(f->validate(conv(256, 256), stem, h100).value_or("").find("128 registers"), std::string::npos);
  EXPECT_EQ(f->validate(conv(192, 64, 64, 4, 3), stem, h100).value_or(""),
            "gathered operands keep 120 registers for the producer: at most two consumers");
  EXPECT_FALSE(f->validate(conv(192, 64, 64, 4, 3, 1), dense, h100).has_value());
  Schedule two_per_sm = conv(64, 64, 64, 4, 1);
  two_per_sm.knobs.emplace_back("blocks_per_sm", 2);
  EXPECT_EQ(f->validate(two_per_sm, stem, h100).value_or(""), "gathered operands: one block per SM (blocks_per_sm 1)");
  EXPECT_FALSE(f->validate(two_per_sm, dense, h100).has_value());
  EXPECT_EQ(f->validate(conv(128, 60), dense, h100).value_or(""), "block_n must be a multiple of 8 up to 256 (wgmma's n)");
  EXPECT_NE(f->validate(conv(128, 64), Workload::parse("conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3,layout=nchw:f16"), h100)
                .value_or("")
                .find("conv_wgmma runs NHWC"),
            std::string::npos);
  // Every shape of the operator suite keeps a good share of the space.
  for (const char* spec : {kDense, kGrouped, kStem, "conv2d:n=1,h=7,w=7,c=512,k=512,r=3,s=3,pad=1:bf16:epilogue=bias+relu",
                           "conv2d:n=32,h=28,w=28,c=512,k=1024,r=1,s=1,stride=2:f16"}) {
    SCOPED_TRACE(spec);
    Workload w = Workload::parse(spec);
    int accepted = 0;
    for (const Schedule& s : enumerate_space(*f, w, h100)) accepted += !f->validate(s, w, h100).has_value();
    EXPECT_GE(accepted, 200);
  }
}

TEST(ConvWgmma, Im2colPlanWalksOutputPixelsWithTheConvolutionsStrides) {
  auto f = make_conv_wgmma_family();
  // 7x7/2 on 3 channels is gathered; 3x3/2 with padding 1 on 80 channels goes through TMA.
  Workload w = Workload::parse("conv2d:n=3,h=35,w=33,c=80,k=96,r=3,s=3,stride=2,pad=1:f16:epilogue=bias");
  const int64_t p = 18, q = 17, m = 3 * p * q;
  KernelSource src = f->emit(w, conv(128, 96, 32, 4, 2));
  EXPECT_TRUE(src.launch.persistent);
  EXPECT_EQ(src.launch.grid[0], (m + 127) / 128);
  EXPECT_EQ(src.entry, "tessera_conv_wgmma");
  ASSERT_EQ(src.tensor_maps.size(), 2u);
  const TensorMapSpec& a = src.tensor_maps[0];
  EXPECT_TRUE(a.im2col());
  EXPECT_EQ(a.tensor, 0);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{80, 33, 35, 3}));
  EXPECT_EQ(a.strides_bytes, (std::vector<int64_t>{160, 33 * 160, 35 * 33 * 160}));
  EXPECT_EQ(a.box, (std::vector<int64_t>{32, 128}));  // channels per pixel, pixels per column
  EXPECT_EQ(a.swizzle_bytes, 64);
  EXPECT_EQ(a.lower_corner, (std::vector<int64_t>{-1, -1}));
  // The windows' first pixels: -1, 1, ..., 31 along W (17), -1 ... 33 along H (18).
  EXPECT_EQ(a.upper_corner, (std::vector<int64_t>{(q - 1) * 2 + 1 - 33 - 1, (p - 1) * 2 + 1 - 35 - 1}));
  EXPECT_EQ(a.element_strides, (std::vector<int64_t>{1, 2, 2, 1}));
  const TensorMapSpec& b = src.tensor_maps[1];
  EXPECT_FALSE(b.im2col());
  EXPECT_EQ(b.dims, (std::vector<int64_t>{80, 9, 96}));
  EXPECT_EQ(b.box, (std::vector<int64_t>{32, 1, 96}));
  EXPECT_NE(src.source.find("ConvLoads<In, 18, 17, 3, 3, 2, 2, 1, 1, 1, 1, 80, 96, 128, 96, 32, 1>"), std::string::npos);
  // 80 channels in 32-wide chunks: 3 chunks per tap, 27 k steps of the GEMM view.
  TilePlan plan = f->tile_plan(w, conv(128, 96, 32, 4, 2));
  EXPECT_EQ(plan.modeled.matmul().m, m);
  EXPECT_EQ(plan.modeled.matmul().k, 27 * 32);
  // TMA stores of the output ([M][K]) and split-K's partial sums.
  Workload wide = Workload::parse("conv2d:n=2,h=14,w=14,c=256,k=128,r=1,s=1:f16:epilogue=bias+residual");
  KernelSource st = f->emit(wide, conv(128, 128, 64, 4, 2, 1));
  ASSERT_EQ(st.tensor_maps.size(), 4u);
  EXPECT_EQ(st.tensor_maps[2].tensor, 4);  // X, W, bias, residual, Y
  EXPECT_EQ(st.tensor_maps[2].dims, (std::vector<int64_t>{128, 2 * 14 * 14, 1}));
  // The residual comes into the staging tile by TMA, through a map over it shaped as C's.
  EXPECT_EQ(st.tensor_maps[3].tensor, 3);
  EXPECT_EQ(st.tensor_maps[3].dims, st.tensor_maps[2].dims);
  EXPECT_EQ(st.tensor_maps[3].box, st.tensor_maps[2].box);
  EXPECT_NE(st.source.find("TensorMap map_r"), std::string::npos);
  EXPECT_NE(st.source.find("kResidual = true"), std::string::npos);
  KernelSource sk = f->emit(wide, conv(64, 128, 64, 4, 1, 0, 0, 1, 4));
  EXPECT_EQ(sk.workspace_bytes, 4 * 2 * 14 * 14 * 128 * 4);
  ASSERT_EQ(sk.then.size(), 1u);
  EXPECT_EQ(sk.then[0].entry, "tessera_conv_wgmma_reduce");
  // With a cluster each block loads half of the filters' box and multicasts it.
  KernelSource cl = f->emit(Workload::parse(kDense), conv(128, 64, 64, 4, 2, 0, 0, 2));
  EXPECT_EQ(cl.launch.cluster, 2);
  EXPECT_EQ(cl.tensor_maps[1].box, (std::vector<int64_t>{64, 1, 32}));
}

TEST(ConvWgmma, GroupedTilesLoadTheDiagonalBlocksOfTheirFilters) {
  auto f = make_conv_wgmma_family();
  KernelSource src = f->emit(Workload::parse(kGrouped), conv(64, 64));
  ASSERT_EQ(src.tensor_maps.size(), 2u);
  EXPECT_EQ(src.tensor_maps[0].box, (std::vector<int64_t>{64, 64}));  // the tile's 4 groups' channels
  const TensorMapSpec& b = src.tensor_maps[1];
  EXPECT_EQ(b.dims, (std::vector<int64_t>{16, 9, 512}));
  EXPECT_EQ(b.box, (std::vector<int64_t>{8, 1, 16}));  // 8 channels of one group's 16 filters
  EXPECT_EQ(b.swizzle_bytes, 0);
  EXPECT_NE(src.source.find("BlockDiagLoads<In, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 16, 16, 64, 64, 64>"), std::string::npos);
  // One tap per k step: 9 steps of the tile's 64 channels.
  TilePlan plan = f->tile_plan(Workload::parse(kGrouped), conv(64, 64));
  EXPECT_EQ(plan.modeled.matmul().k, 9 * 64);
  // 8 filters per group and 16 channels: 8 groups of a 64-wide tile have 128 channels, too many
  // for a step; 32 filters (4 groups) have 64.
  Workload narrow = Workload::parse("conv2d:n=1,h=8,w=8,c=256,k=128,r=3,s=3,pad=1,groups=16:f16");
  EXPECT_NE(f->validate(conv(128, 64), narrow, find_spec("h100_sxm")).value_or("").find("whole groups"), std::string::npos);
  EXPECT_FALSE(f->validate(conv(128, 32), narrow, find_spec("h100_sxm")).has_value());
}

// ResNeXt-50 32x4d's first stage: 32 groups of 4 channels and 4 filters run as 16 groups of 8
// and 8, whose filters a kernel before the GEMM writes block-diagonally to the workspace.
TEST(ConvWgmma, GroupsOfFewChannelsRunMergedOnFiltersWrittenFirst) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_conv_wgmma_family();
  const Workload w = Workload::parse("conv2d:n=32,h=56,w=56,c=128,k=128,r=3,s=3,pad=1,groups=32:f16:epilogue=bias+relu");
  EXPECT_FALSE(f->validate(conv(128, 64), w, h100).has_value());
  EXPECT_FALSE(f->validate(conv(128, 8, 32), w, h100).has_value());  // a tile in one merged group
  EXPECT_EQ(f->validate(conv(128, 64, 64, 4, 2, 0, 0, 1, 2), w, h100).value_or(""),
            "merged groups take the workspace for their filters: cluster_m and split_k must be 1");
  EXPECT_NE(f->validate(conv(128, 64, 32), w, h100).value_or("").find("whole groups"), std::string::npos);

  KernelSource src = f->emit(w, conv(128, 64));
  ASSERT_EQ(src.before.size(), 1u);
  EXPECT_EQ(src.before[0].entry, "tessera_conv_wgmma_merge");
  EXPECT_EQ(src.before[0].geometry.grid[0], (128 * 9 * 8 / 8 + 255) / 256);
  EXPECT_NE(src.source.find("conv::merge_groups<In, 128, 9, 4, 4, 2>(B, reinterpret_cast<In*>(W))"), std::string::npos);
  // A tile of 64 filters holds 8 merged groups of 8 channels: one 64-wide step a tap.
  EXPECT_NE(src.source.find("BlockDiagLoads<In, 56, 56, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 128, 64, 64>"), std::string::npos);
  EXPECT_EQ(src.workspace_bytes, 128 * 9 * 8 * 2);
  ASSERT_EQ(src.tensor_maps.size(), 2u);
  EXPECT_EQ(src.tensor_maps[0].tensor, 0);  // A: the input as it is
  EXPECT_EQ(src.tensor_maps[0].box, (std::vector<int64_t>{64, 128}));
  const TensorMapSpec& b = src.tensor_maps[1];  // B: the merged filters (the workspace, argument 4: bias first)
  EXPECT_EQ(b.tensor, 4);
  EXPECT_EQ(b.offset_bytes, 0);
  EXPECT_EQ(b.dims, (std::vector<int64_t>{8, 9, 128}));
  EXPECT_EQ(b.box, (std::vector<int64_t>{8, 1, 8}));
  TilePlan plan = f->tile_plan(w, conv(128, 64));
  EXPECT_EQ(plan.modeled.matmul().k, 9 * 64);
  EXPECT_EQ(plan.prepass_bytes, 128 * 9 * (4 + 8) * 2);
  EXPECT_EQ(f->tile_plan(Workload::parse(kGrouped), conv(64, 64)).prepass_bytes, 0);
  // 2 channels and 4 filters a group: 4 merged (8 channels, 16 filters).
  KernelSource four = f->emit(Workload::parse("conv2d:n=1,h=9,w=9,c=64,k=128,r=3,s=3,pad=1,groups=32:bf16"), conv(64, 32, 32));
  EXPECT_NE(four.source.find("conv::merge_groups<In, 128, 9, 2, 4, 4>"), std::string::npos);
  EXPECT_EQ(four.tensor_maps[1].dims, (std::vector<int64_t>{8, 9, 128}));
  EXPECT_EQ(four.tensor_maps[1].box, (std::vector<int64_t>{8, 1, 16}));
  // The construction proposes it ahead of the direct convolution.
  EXPECT_FALSE(enumerate_space(*f, w, h100).empty());
}

TEST(ConvWgmma, TheStemIsGatheredWithoutTensorMaps) {
  auto f = make_conv_wgmma_family();
  KernelSource src = f->emit(Workload::parse(kStem), conv(128, 64));
  EXPECT_TRUE(src.tensor_maps.empty());
  EXPECT_EQ(src.source.find("__grid_constant__ TensorMap map_a"), std::string::npos);
  EXPECT_NE(src.source.find("const TensorMap map_a{}"), std::string::npos);
  EXPECT_NE(src.source.find("GatherLoads<In, 224, 224, 3, 64, 112, 112, 7, 7, 2, 2, 3, 3, 1, 1, 3, 64, 128, 64, 64, "),
            std::string::npos);
  // 147 reduction elements in 64-wide steps: 3 steps, 192 with the padding.
  TilePlan plan = f->tile_plan(Workload::parse(kStem), conv(128, 64));
  EXPECT_EQ(plan.modeled.matmul().k, 192);
  // Padding past the im2col box's reach (corners are 8-bit) is gathered too.
  KernelSource wide_pad = f->emit(Workload::parse("conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3,pad=200:f16"), conv(128, 64));
  EXPECT_TRUE(wide_pad.tensor_maps.empty());
}

Schedule with_pad_channels(Schedule s, int64_t mode) {
  s.knobs.emplace_back("pad_channels", mode);
  return s;
}
Schedule padded(Schedule s) { return with_pad_channels(std::move(s), 1); }

TEST(ConvWgmma, FewChannelsCanBePaddedToTapsInTheWorkspaceFirst) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_conv_wgmma_family();
  const Workload stem = Workload::parse(kStem);
  // The knob is in the space of convolutions of fewer than 8 channels only.
  auto has_knob = [&](const Workload& w) {
    for (const KnobDomain& d : f->space(w, h100))
      if (d.name == "pad_channels") return true;
    return false;
  };
  EXPECT_TRUE(has_knob(stem));
  EXPECT_FALSE(has_knob(Workload::parse(kDense)));
  EXPECT_FALSE(has_knob(Workload::parse("conv2d:n=1,h=9,w=9,c=12,k=40,r=3,s=3,pad=1:f16")));
  EXPECT_FALSE(f->validate(padded(conv(128, 64)), stem, h100).has_value());
  EXPECT_EQ(f->validate(padded(conv(128, 64)), Workload::parse(kDense), h100).value_or(""),
            "pad_channels 1 needs one group, fewer than 8 input channels and windows an im2col tensor map can walk");
  EXPECT_EQ(f->validate(padded(conv(128, 64, 64, 4, 1, 0, 0, 1, 2)), stem, h100).value_or(""),
            "padded operands take the workspace: cluster_m and split_k must be 1");
  EXPECT_EQ(f->validate(padded(conv(128, 64, 64, 4, 1, 0, 0, 2)), stem, h100).value_or(""),
            "padded operands take the workspace: cluster_m and split_k must be 1");

  // 49 taps, 8 a step (64 = 8 taps x 8 channels): 7 steps, 56 padded taps.
  KernelSource src = f->emit(stem, padded(conv(128, 64)));
  ASSERT_EQ(src.before.size(), 1u);
  EXPECT_EQ(src.before[0].entry, "tessera_conv_wgmma_pad");
  EXPECT_EQ(src.plan().size(), 2u);
  EXPECT_EQ(src.plan()[1].entry, "tessera_conv_wgmma");
  EXPECT_NE(src.source.find("conv::pad_channels<In, 3, 1605632, 64, 1, 49, 56, 56>"), std::string::npos);
  EXPECT_NE(src.source.find("TapLoads<In, 224, 224, 112, 112, 7, 7, 2, 2, 3, 3, 1, 1, 128, 64, 64, 401408>"),
            std::string::npos);
  // A gathered from the padded input at the workspace's start; B from a tiled map after it.
  EXPECT_NE(src.source.find("float* __restrict__ W, const __grid_constant__ TensorMap map_b"), std::string::npos);
  EXPECT_NE(src.source.find("Epilogue, Mma>(reinterpret_cast<const In*>(W), B, C, "), std::string::npos);
  const int64_t pixels = 32 * 224 * 224, filters_offset = pixels * 16;  // already 1 KB aligned
  EXPECT_EQ(src.workspace_bytes, filters_offset + 64 * 56 * 16);
  ASSERT_EQ(src.tensor_maps.size(), 1u);
  const TensorMapSpec& b = src.tensor_maps[0];  // the padded filters in the workspace (argument 3)
  EXPECT_EQ(b.tensor, 3);
  EXPECT_EQ(b.offset_bytes, filters_offset);
  EXPECT_EQ(b.dims, (std::vector<int64_t>{56 * 8, 64, 1}));
  EXPECT_EQ(b.box, (std::vector<int64_t>{64, 64, 1}));
  EXPECT_EQ(b.swizzle_bytes, 128);
  // The model runs the GEMM of 7 steps of 64 and counts the kernel before.
  TilePlan plan = f->tile_plan(stem, padded(conv(128, 64)));
  EXPECT_EQ(plan.modeled.matmul().k, 7 * 64);
  EXPECT_EQ(plan.prepass_bytes, pixels * (3 + 8) * 2 + 64 * (49 * 3 * 2 + 56 * 16));
  EXPECT_EQ(f->tile_plan(stem, conv(128, 64)).prepass_bytes, 0);
  // 32-wide steps: 4 taps each, 13 steps (the last one tap).
  EXPECT_NE(f->emit(stem, padded(conv(128, 64, 32))).source.find("conv::pad_channels<In, 3, 1605632, 64, 1, 49, 52, 52>"),
            std::string::npos);
}

Schedule strips(Schedule s) { return with_pad_channels(std::move(s), 2); }

TEST(ConvWgmma, RowStripsRunTheStemBatchedByOutputRow) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_conv_wgmma_family();
  const Workload stem = Workload::parse(kStem);
  auto pad_domain = [&](const char* spec) {
    for (const KnobDomain& d : f->space(Workload::parse(spec), h100))
      if (d.name == "pad_channels") return d.values;
    return std::vector<int64_t>{};
  };
  EXPECT_EQ(pad_domain(kStem), (std::vector<int64_t>{0, 1, 2}));
  // Strides of 3 along the width, and dilation along it, keep the padded taps only.
  EXPECT_EQ(pad_domain("conv2d:n=1,h=30,w=30,c=3,k=16,r=3,s=3,stride=3:f16"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(pad_domain("conv2d:n=1,h=30,w=30,c=3,k=16,r=3,s=3,dilation=2:f16"), (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(pad_domain(kDense).empty());
  EXPECT_FALSE(f->validate(strips(conv(128, 64)), stem, h100).has_value());
  EXPECT_EQ(f->validate(strips(conv(128, 64)), Workload::parse("conv2d:n=1,h=30,w=30,c=3,k=16,r=3,s=3,stride=3:f16"), h100)
                .value_or(""),
            "pad_channels 2 (row strips) needs one group, fewer than 8 input channels, no dilation along the width and a "
            "stride of 1, 2 or 4 along it");
  EXPECT_EQ(f->validate(strips(conv(128, 64, 64, 4, 1, 0, 0, 1, 2)), stem, h100).value_or(""),
            "padded operands take the workspace: cluster_m and split_k must be 1");
  // Stride 4 over 256 rows: a strip of 4 x 257 pixels.
  EXPECT_NE(f->validate(strips(conv(256, 64)), Workload::parse("conv2d:n=1,h=227,w=227,c=3,k=96,r=11,s=11,stride=4:f16"),
                        h100)
                .value_or("")
                .find("exceeds 640 pixels"),
            std::string::npos);

  // 7 filter rows of 7 taps, 8 a step: 7 steps of 64, the padded filters [64][7 x 8][8] (the
  // kernel before pads only them; the strips read the input as it is).
  KernelSource src = f->emit(stem, strips(conv(128, 64)));
  ASSERT_EQ(src.before.size(), 1u);
  EXPECT_EQ(src.before[0].entry, "tessera_conv_wgmma_pad");
  EXPECT_NE(src.source.find("conv::pad_channels<In, 3, 0, 64, 7, 7, 8, 56>"), std::string::npos);
  // A step's strip, 2 x 131 pixels of three 2-byte words, by one warp (9 pixels a thread).
  EXPECT_NE(src.source.find("StripLoads<In, 3, 224, 224, 112, 7, 7, 2, 2, 3, 3, 1, 128, 64, 64, 32>"), std::string::npos);
  // The GEMM is batched by output row: 32 x 112 rows of 112 columns; its output map clips the
  // tiles' rows past 112.
  EXPECT_NE(src.source.find("gemm_wgmma<In, Out, 112, 64, 3584, 128, 64, 64,"), std::string::npos);
  const int64_t pixels = 32 * 224 * 224;
  EXPECT_EQ(src.workspace_bytes, 64 * 56 * 16);
  ASSERT_EQ(src.tensor_maps.size(), 1u);
  EXPECT_EQ(src.tensor_maps[0].dims, (std::vector<int64_t>{56 * 8, 64, 1}));
  KernelSource stored = f->emit(stem, strips(conv(128, 64, 64, 4, 2, 1)));
  ASSERT_EQ(stored.tensor_maps.size(), 2u);
  EXPECT_EQ(stored.tensor_maps[1].dims, (std::vector<int64_t>{64, 112, 3584}));
  EXPECT_EQ(stored.tensor_maps[1].box, (std::vector<int64_t>{64, 64, 1}));
  // One persistent block per tile at most: 3584 output rows of one 128-row tile.
  EXPECT_EQ(src.launch.grid[0], 3584);
  TilePlan plan = f->tile_plan(stem, strips(conv(128, 64)));
  EXPECT_EQ(plan.modeled.matmul().batch, 3584);
  EXPECT_EQ(plan.modeled.matmul().m, 112);
  EXPECT_EQ(plan.modeled.matmul().k, 7 * 64);
  EXPECT_EQ(plan.prepass_bytes, 64 * (49 * 3 * 2 + 56 * 16));
  EXPECT_DOUBLE_EQ(plan.dram_share[0], double(pixels * 3) / (3584.0 * 112 * 7 * 64));
  // 2 x 131 strip pixels a step, 9 a thread of a warp, each 3 loads of a channel; four warps
  // fill 4 slots at once.
  EXPECT_EQ(plan.gather_elements, 7);
  EXPECT_DOUBLE_EQ(plan.gather_round_trips, 0.25);
  // Five stages: one warp fills a slot at a time (a slot is only ever filled by one group).
  EXPECT_DOUBLE_EQ(f->tile_plan(stem, strips(conv(128, 64, 64, 5))).gather_round_trips, 1.0);
  // 256 rows: 518 pixels, 9 a thread of two warps (a warp's 17 would spill), two groups of them.
  const TilePlan wide = f->tile_plan(stem, strips(conv(256, 64, 64, 4)));
  EXPECT_EQ(wide.gather_elements, 14);
  EXPECT_DOUBLE_EQ(wide.gather_round_trips, 0.5);
  // Seven channels: a pixel is 7 loads, so two warps load the 262 pixels of a step.
  const Workload seven = Workload::parse("conv2d:n=2,h=64,w=64,c=7,k=64,r=7,s=7,stride=2,pad=3:f16");
  EXPECT_DOUBLE_EQ(f->tile_plan(seven, strips(conv(128, 64, 64, 4))).gather_round_trips, 0.5);
  // Four channels: one 8-byte load a pixel (9 a thread of a warp).
  const TilePlan four = f->tile_plan(Workload::parse("conv2d:n=2,h=64,w=64,c=4,k=64,r=7,s=7,stride=2,pad=3:f16"),
                                     strips(conv(128, 64, 64, 4)));
  EXPECT_EQ(four.gather_elements, 3);
  // 32-wide steps: 4 taps, two steps a filter row (the second 3 taps and a zero one).
  EXPECT_NE(f->emit(stem, strips(conv(128, 64, 32))).source.find("conv::pad_channels<In, 3, 0, 64, 7, 7, 8, 56>"),
            std::string::npos);
  EXPECT_EQ(f->tile_plan(stem, strips(conv(128, 64, 32))).modeled.matmul().k, 14 * 32);
  // An 11 x 11 stride-4 filter (AlexNet's): two steps of 8 taps a row, 16 padded taps.
  const Workload alex = Workload::parse("conv2d:n=2,h=227,w=227,c=3,k=96,r=11,s=11,stride=4:f16");
  EXPECT_NE(f->emit(alex, strips(conv(64, 96, 64, 4, 1))).source.find("conv::pad_channels<In, 3, 0, 96, 11, 11, 16, 176>"),
            std::string::npos);
}

// Schedules of every kind of load, compiled for sm_90a.
std::vector<std::pair<KernelSource, CompiledKernel>> compiled_sample() {
  auto f = make_conv_wgmma_family();
  std::vector<KernelSource> sources;
  Workload dense = Workload::parse("conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16:epilogue=bias+relu");
  Workload strided = Workload::parse("conv2d:n=32,h=28,w=28,c=512,k=1024,r=1,s=1,stride=2:bf16:epilogue=bias+residual");
  Workload grouped = Workload::parse(kGrouped);
  Workload stem = Workload::parse("conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+relu");
  for (int64_t tma_store : {0, 1}) {
    sources.push_back(f->emit(dense, conv(128, 64, 64, 6, 2, tma_store)));
    sources.push_back(f->emit(dense, conv(128, 64, 64, 4, 2, tma_store, 1)));
    sources.push_back(f->emit(strided, conv(128, 256, 64, 4, 2, tma_store, 0, 2)));
    sources.push_back(f->emit(grouped, conv(64, 64, 64, 6, 1, tma_store)));
    sources.push_back(f->emit(stem, conv(128, 64, 64, 4, 2, tma_store)));
    sources.push_back(f->emit(stem, conv(256, 64, 32, 6, 2, tma_store, 1)));
  }
  sources.push_back(f->emit(Workload::parse("conv2d:n=1,h=7,w=7,c=512,k=512,r=3,s=3,pad=1:f16:epilogue=bias"),
                            conv(64, 128, 64, 4, 1, 0, 0, 1, 4)));
  sources.push_back(f->emit(grouped, conv(64, 32, 32, 8, 1)));
  // Merged groups: pairs of 4-channel groups (block-diagonal tiles, and a tile in one merged
  // group), and fours of 2-channel ones.
  Workload merged = Workload::parse("conv2d:n=32,h=56,w=56,c=128,k=128,r=3,s=3,pad=1,groups=32:f16:epilogue=bias+relu");
  sources.push_back(f->emit(merged, conv(128, 64, 64, 6, 2, 1)));
  sources.push_back(f->emit(merged, conv(128, 8, 32, 8, 2)));
  sources.push_back(f->emit(Workload::parse("conv2d:n=1,h=9,w=9,c=64,k=128,r=3,s=3,pad=1,groups=32:bf16"), conv(64, 32, 32, 4, 1)));
  // Three consumers of 64 rows (192-row tiles) on im2col and strided 1x1 loads.
  sources.push_back(f->emit(dense, conv(192, 64, 64, 6, 3, 1)));
  sources.push_back(f->emit(strided, conv(192, 128, 64, 4, 3, 1)));
  Schedule two = conv(64, 128, 64, 4, 1, 1);
  two.knobs.emplace_back("blocks_per_sm", 2);
  sources.push_back(f->emit(dense, two));
  // Padded taps: 8 (and 4) taps a step, shared and ping-pong tiles, a residual staged by TMA.
  Workload stem_residual = Workload::parse("conv2d:n=2,h=33,w=31,c=3,k=64,r=7,s=7,stride=2,pad=3:f16:epilogue=bias+residual");
  sources.push_back(f->emit(stem, padded(conv(128, 64, 64, 4, 2, 1))));
  sources.push_back(f->emit(stem, padded(conv(256, 64, 32, 6, 2, 1, 1))));
  sources.push_back(f->emit(stem_residual, padded(conv(64, 64, 64, 4, 1, 1))));
  // Row strips: strides 2, 1 and 4, 8 and 4 taps a step, shared and ping-pong tiles, a staged
  // residual; a warp or two a step (up to 16 loads a thread), in 4, 2 or 1 groups.
  sources.push_back(f->emit(stem, strips(conv(128, 64, 64, 4, 2, 1))));
  sources.push_back(f->emit(stem_residual, strips(conv(128, 64, 32, 6, 2, 1, 1))));
  sources.push_back(f->emit(Workload::parse("conv2d:n=2,h=40,w=40,c=3,k=32,r=3,s=3,pad=1:bf16:epilogue=bias+relu"),
                            strips(conv(64, 32, 64, 4, 1))));
  sources.push_back(f->emit(Workload::parse("conv2d:n=2,h=227,w=227,c=3,k=96,r=11,s=11,stride=4:f16"),
                            strips(conv(128, 96, 64, 4, 2))));
  sources.push_back(f->emit(Workload::parse("conv2d:n=2,h=227,w=227,c=3,k=96,r=11,s=11,stride=4:f16"),
                            strips(conv(128, 96, 32, 8, 2))));
  sources.push_back(f->emit(stem, strips(conv(192, 64, 64, 5, 2, 0, 1))));
  sources.push_back(f->emit(stem, strips(conv(256, 64, 64, 4, 2, 1, 1))));
  // Pixels of 7, 6 and 4 channels: 2-, 4- and 8-byte words; and 45 registers of loads a thread
  // (a warp's 9 pixels of 5 channels).
  for (int64_t c : {7, 6, 4})
    sources.push_back(f->emit(Workload::parse("conv2d:n=2,h=64,w=64,c=" + std::to_string(c) + ",k=64,r=7,s=7,stride=2,pad=3:f16"),
                              strips(conv(128, 64, 64, 4, 2))));
  sources.push_back(f->emit(Workload::parse("conv2d:n=2,h=64,w=300,c=5,k=64,r=3,s=7,pad=1x3:f16:epilogue=bias+relu"),
                            strips(conv(256, 64, 64, 4, 2, 1, 1))));
  BuildOptions hopper;
  hopper.headers = device_headers();
  std::vector<CompiledKernel> built = Builder(hopper).build(sources);
  std::vector<std::pair<KernelSource, CompiledKernel>> out;
  for (size_t i = 0; i < built.size(); ++i) out.emplace_back(sources[i], built[i]);
  return out;
}

TEST(ConvWgmma, SchedulesCompileForHopperWithoutLocalMemory) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  auto sample = compiled_sample();
  ASSERT_GE(sample.size(), 28u);
  testing::expect_compiled_without_local_memory(sample);
}

TEST(ConvWgmma, SassShowsHgmmaAndNoLocalMemory) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  const std::string tool = testing::cuobjdump();
  if (tool.empty()) GTEST_SKIP() << "no cuobjdump here (the toolkit's binary utilities)";
  for (const auto& [src, k] : compiled_sample()) {
    ASSERT_EQ(k.status, Status::kOk);
    SCOPED_TRACE(src.source.substr(0, 160));
    // TMA loads in every policy but the gathering one, which has no maps of its inputs (the
    // padded taps' filters are mapped in the workspace, after the tensors).
    const bool maps_inputs = !src.tensor_maps.empty() && (src.tensor_maps[0].tensor == 0 || src.tensor_maps[0].offset_bytes > 0);
    testing::expect_hopper_sass(testing::sass_of(k, tool), maps_inputs);
  }
}

}  // namespace
}  // namespace tessera::kernels
