// The Hopper GEMM family on the CPU: its rules, its launch plan (persistent grid, tensor maps)
// and NVRTC compilation for sm_90a with no stack frame or spills; with cuobjdump on the PATH
// (or in $CUDA_HOME/bin), the SASS shows HGMMA and no local-memory traffic.
#include <gtest/gtest.h>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "tests/kernels/hopper_checks.h"

namespace tessera::kernels {
namespace {

Schedule wgmma(int64_t bm, int64_t bn, int64_t stages, int64_t consumers, int64_t group = 8, int64_t tma_store = 0,
                int64_t pingpong = 0, int64_t cluster = 1, int64_t split = 1, int64_t bk = 64) {
  return {"gemm_wgmma",
          {{"block_m", bm}, {"block_n", bn}, {"block_k", bk}, {"stages", stages}, {"consumers", consumers}, {"group_m", group},
           {"tma_store", tma_store}, {"pingpong", pingpong}, {"cluster_m", cluster}, {"split_k", split}}};
}

// The schedule with two blocks per SM.
Schedule two_per_sm(Schedule s) {
  s.knobs.emplace_back("blocks_per_sm", 2);
  return s;
}

const std::vector<std::string> kShapes = {
    "matmul:m=8192,n=8192,k=8192:f16", "matmul:m=128,n=3072,k=768,tb=1:f16:epilogue=bias+gelu",
    "matmul:m=1000,n=1000,k=128:bf16:out=f32", "batch_matmul:b=12,m=128,n=64,k=128:f16",
    "matmul:m=77,n=200,k=72,tb=1:f16:epilogue=residual+relu"};

TEST(GemmWgmma, RegisteredAheadOfTheMmaSyncGemm) {
  FamilyRegistry r;
  register_builtin_families(r);
  auto fams = r.for_workload(Workload::parse("matmul:m=128,n=64,k=64:f16"));  // not skinny
  ASSERT_EQ(fams.size(), 2u);
  EXPECT_EQ(fams[0]->name(), "gemm_wgmma");
  EXPECT_EQ(fams[1]->name(), "gemm_tc");
  EXPECT_FALSE(make_gemm_wgmma_family()->supports(Workload::parse("matmul:m=64,n=64,k=64:f32")));
  EXPECT_FALSE(make_gemm_wgmma_family()->supports(Workload::parse("matmul:m=64,n=64,k=64,ta=1:f16")));
}

TEST(GemmWgmma, ValidateEncodesTheHardwareLimits) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_gemm_wgmma_family();
  Workload big = Workload::parse("matmul:m=8192,n=8192,k=8192:f16");
  EXPECT_FALSE(f->validate(wgmma(128, 256, 4, 2), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 256, 5, 2), big, h100).value_or(""), "shared memory 246896 B exceeds 232448 B");
  EXPECT_NE(f->validate(wgmma(256, 256, 3, 2), big, h100).value_or("").find("accumulators"), std::string::npos);
  EXPECT_EQ(f->validate(wgmma(64, 128, 4, 2), big, h100).value_or(""), "block_m must be a multiple of 64 per consumer warpgroup");
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2), Workload::parse("matmul:m=64,n=64,k=60:f16"), h100).value_or(""),
            "k must be a multiple of 8 (16-byte TMA row strides)");
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2), Workload::parse("matmul:m=64,n=60,k=64:f16"), h100).value_or(""),
            "n must be a multiple of 8 when B is [K, N] (16-byte TMA row strides)");
  EXPECT_FALSE(f->validate(wgmma(128, 128, 4, 2), Workload::parse("matmul:m=64,n=60,k=64,tb=1:f16"), h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 200, 4, 2), big, h100).value_or(""),
            "block_n must be 16, 32 or a multiple of 64 when B is [K, N] (TMA boxes of a 32-, 64- or 128-byte swizzle)");
  EXPECT_EQ(f->validate(wgmma(128, 8, 4, 2), big, h100).value_or(""),
            "block_n must be 16, 32 or a multiple of 64 when B is [K, N] (TMA boxes of a 32-, 64- or 128-byte swizzle)");
  EXPECT_FALSE(f->validate(wgmma(128, 16, 4, 2), big, h100).has_value());  // one box of 32-byte rows
  EXPECT_FALSE(f->validate(wgmma(128, 8, 4, 2), Workload::parse("matmul:m=64,n=64,k=64,tb=1:f16"), h100).has_value());
  // The TMA-store epilogue stages a BM x BN tile: 4 stages of 128x256 no longer fit with it.
  EXPECT_FALSE(f->validate(wgmma(128, 256, 3, 2, 8, 1), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 256, 4, 2, 8, 1), big, h100).value_or(""), "shared memory 263264 B exceeds 232448 B");
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2, 8, 1), Workload::parse("matmul:m=64,n=64,k=64:f16:out=f32"), h100).value_or(""),
            "tma_store stages 2-byte outputs only");
  EXPECT_NE(f->validate(wgmma(128, 96, 4, 2, 8, 1), Workload::parse("matmul:m=64,n=96,k=64,tb=1:f16"), h100)
                .value_or("")
                .find("tma_store needs"),
            std::string::npos);
  // Three consumers take 64 rows each of 192-row tiles, within 152 registers, through TMA stores,
  // without ping-pong or a cluster.
  EXPECT_FALSE(f->validate(wgmma(192, 128, 4, 3, 8, 1), big, h100).has_value());
  EXPECT_FALSE(f->validate(wgmma(192, 192, 3, 3, 8, 1), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(192, 128, 4, 3), big, h100).value_or(""), "three consumer warpgroups store through TMA (tma_store 1)");
  EXPECT_EQ(f->validate(wgmma(192, 256, 3, 3, 8, 1), big, h100).value_or(""),
            "a consumer's accumulators exceed 96 registers per thread (three consumer warpgroups)");
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 3, 8, 1), big, h100).value_or(""), "block_m must be a multiple of 64 per consumer warpgroup");
  EXPECT_EQ(f->validate(wgmma(192, 128, 4, 3, 8, 1, 1), big, h100).value_or(""), "pingpong needs two consumer warpgroups");
  EXPECT_EQ(f->validate(wgmma(192, 128, 4, 3, 8, 1, 0, 2), big, h100).value_or(""),
            "three consumer warpgroups run without a cluster (cluster_m 1)");
  EXPECT_EQ(f->validate(wgmma(192, 128, 4, 2), big, h100).value_or(""), "block_m must be a multiple of 64 per consumer warpgroup");
  EXPECT_EQ(f->tile_plan(big, wgmma(192, 128, 4, 3)).threads, 512);
  EXPECT_EQ(f->tile_plan(big, wgmma(192, 128, 4, 3)).registers, 128);
  // Two blocks per SM: one consumer each, 128 registers (64 of accumulators), half the SM's
  // shared memory; the launch starts two blocks per SM and the model holds two resident.
  const Workload bmm = Workload::parse("batch_matmul:b=384,m=128,n=128,k=64:f16");
  EXPECT_FALSE(f->validate(two_per_sm(wgmma(64, 128, 3, 1, 8, 1)), bmm, h100).has_value());
  EXPECT_FALSE(f->validate(two_per_sm(wgmma(128, 64, 4, 1)), bmm, h100).has_value());
  EXPECT_EQ(f->validate(two_per_sm(wgmma(128, 128, 4, 1)), bmm, h100).value_or(""),
            "blocks_per_sm 2: a consumer's accumulators exceed 64 of its 128 registers");
  EXPECT_EQ(f->validate(two_per_sm(wgmma(128, 128, 4, 2)), bmm, h100).value_or(""),
            "blocks_per_sm 2 takes one consumer warpgroup (two blocks share the registers)");
  EXPECT_NE(f->validate(two_per_sm(wgmma(64, 128, 8, 1)), bmm, h100).value_or("").find("exceeds the SM's"), std::string::npos);
  KernelSource two = f->emit(bmm, two_per_sm(wgmma(64, 128, 3, 1, 8, 1)));
  EXPECT_EQ(two.launch.blocks_per_sm, 2);
  EXPECT_NE(two.source.find("__launch_bounds__(256, 2)"), std::string::npos);
  EXPECT_EQ(f->tile_plan(bmm, two_per_sm(wgmma(64, 128, 4, 1))).persistent_blocks, 2);
  EXPECT_EQ(f->tile_plan(bmm, wgmma(64, 128, 4, 1)).persistent_blocks, 1);
  // Records from before the knob still build, as one block per SM; a missing older knob does not.
  EXPECT_TRUE(has_every_knob(*f, wgmma(64, 128, 3, 1), bmm, h100));
  Schedule no_cluster = wgmma(64, 128, 3, 1);
  no_cluster.knobs.erase(no_cluster.knobs.begin() + 8);
  EXPECT_FALSE(has_every_knob(*f, no_cluster, bmm, h100));
  // Ping-pong: each consumer takes whole tiles (and stages a whole tile's output).
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 1, 8, 1, 1), big, h100).value_or(""), "pingpong needs two consumer warpgroups");
  EXPECT_FALSE(f->validate(wgmma(128, 128, 4, 2, 8, 1, 1), big, h100).has_value());
  EXPECT_NE(f->validate(wgmma(128, 256, 2, 2, 8, 0, 1), big, h100).value_or("").find("accumulators"), std::string::npos);
  EXPECT_FALSE(f->validate(wgmma(128, 128, 5, 2, 8, 1, 1), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 128, 6, 2, 8, 1, 1), big, h100).value_or(""), "shared memory 263296 B exceeds 232448 B");
  // Clusters of two blocks share B's tile; each multicasts half of it (whole swizzle atoms).
  EXPECT_FALSE(f->validate(wgmma(128, 256, 3, 2, 8, 1, 0, 2), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2, 8, 0, 0, 3), big, h100).value_or(""), "cluster_m must be 1 or 2 blocks");
  EXPECT_NE(f->validate(wgmma(64, 72, 4, 1, 8, 0, 0, 2), Workload::parse("matmul:m=256,n=72,k=64,tb=1:f16"), h100)
                .value_or("")
                .find("block_n / 2 must be a multiple of 8"),
            std::string::npos);
  EXPECT_FALSE(f->validate(wgmma(64, 80, 4, 1, 8, 0, 0, 2), Workload::parse("matmul:m=256,n=80,k=64,tb=1:f16"), h100)
                   .has_value());
  // Split-K stores f32 partials from registers, and every slice needs k steps.
  Workload skinny = Workload::parse("matmul:m=512,n=512,k=16384:f16");
  EXPECT_FALSE(f->validate(wgmma(128, 128, 4, 2, 8, 0, 0, 1, 8), skinny, h100).has_value());
  EXPECT_NE(f->validate(wgmma(128, 128, 4, 2, 8, 1, 0, 1, 8), skinny, h100).value_or("").find("no tma_store"), std::string::npos);
  EXPECT_NE(f->validate(wgmma(128, 128, 4, 2, 8, 0, 1, 1, 8), skinny, h100).value_or("").find("no pingpong"), std::string::npos);
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2, 8, 0, 0, 1, 8), Workload::parse("matmul:m=512,n=512,k=320:f16"), h100)
                .value_or(""),
            "split_k 8 leaves a slice of the 5 k steps empty");
  // 32-wide k steps halve a slot: 9 stages of 128x256 fit where 4 of 64 do, 10 do not.
  EXPECT_FALSE(f->validate(wgmma(128, 256, 9, 2, 8, 0, 0, 1, 1, 32), big, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(128, 256, 10, 2, 8, 0, 0, 1, 1, 32), big, h100).value_or(""),
            "shared memory 246976 B exceeds 232448 B");
  EXPECT_NE(f->validate(wgmma(128, 128, 4, 2, 8, 0, 0, 1, 1, 16), big, h100).value_or("").find("block_k must be 64 or 32"),
            std::string::npos);
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2, 8, 0, 0, 1, 8, 32), Workload::parse("matmul:m=512,n=512,k=224:f16"), h100)
                .value_or(""),
            "split_k 8 leaves a slice of the 7 k steps empty");
  // Deep rings of small tiles (cuBLASLt runs 12-16 stages on BERT's 128-token GEMMs): 12 of
  // 64x64 fit with a TMA store's staging tile, 16 do not; 16 of 64x16 do.
  const Workload bert128 = Workload::parse("matmul:m=128,n=768,k=768:f16:epilogue=bias+residual");
  EXPECT_FALSE(f->validate(wgmma(64, 64, 12, 1, 1, 1), bert128, h100).has_value());
  EXPECT_EQ(f->validate(wgmma(64, 64, 16, 1, 1, 1), bert128, h100).value_or(""), "shared memory 271648 B exceeds 232448 B");
  EXPECT_FALSE(f->validate(wgmma(64, 16, 16, 1, 1), bert128, h100).has_value());
  int deep = 0;
  for (const Schedule& s : enumerate_space(*f, bert128, h100)) deep += s.get("stages") >= 12 && !f->validate(s, bert128, h100);
  EXPECT_GE(deep, 100);
  HardwareSpec a100 = find_spec("a100_sxm");
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2), big, a100).value_or(""), "wgmma and setmaxnreg need an sm_90 (Hopper) GPU");
  for (const std::string& spec : kShapes) {
    SCOPED_TRACE(spec);
    Workload w = Workload::parse(spec);
    int accepted = 0;
    for (const Schedule& s : enumerate_space(*f, w, h100)) accepted += !f->validate(s, w, h100).has_value();
    EXPECT_GE(accepted, 20);
  }
}

TEST(GemmWgmma, PlanIsPersistentWithTensorMapsOverAAndB) {
  auto f = make_gemm_wgmma_family();
  Workload w = Workload::parse("batch_matmul:b=3,m=1000,n=520,k=136:f16");
  KernelSource src = f->emit(w, wgmma(128, 128, 4, 2));
  EXPECT_TRUE(src.launch.persistent);
  EXPECT_EQ(src.launch.grid[0], 8 * 5 * 3);  // tiles; the launcher caps the blocks at the SM count
  EXPECT_EQ(src.launch.block[0], 384);
  EXPECT_EQ(src.launch.dynamic_smem_bytes, 4 * 256 * 64 * 2 + 1024 + 96);
  ASSERT_EQ(src.tensor_maps.size(), 2u);
  const TensorMapSpec& a = src.tensor_maps[0];
  EXPECT_EQ(a.tensor, 0);
  EXPECT_EQ(a.dims, (std::vector<int64_t>{136, 1000, 3}));
  EXPECT_EQ(a.strides_bytes, (std::vector<int64_t>{272, 272000}));
  EXPECT_EQ(a.box, (std::vector<int64_t>{64, 128, 1}));
  EXPECT_EQ(a.swizzle_bytes, 128);
  const TensorMapSpec& b = src.tensor_maps[1];  // row-major [K, N]: 64-column boxes
  EXPECT_EQ(b.tensor, 1);
  EXPECT_EQ(b.dims, (std::vector<int64_t>{520, 136, 3}));
  EXPECT_EQ(b.box, (std::vector<int64_t>{64, 64, 1}));
  // The TMA-store epilogue adds the output's map (tensor 3: A, B, bias, C) and a staging tile.
  KernelSource st = f->emit(Workload::parse("matmul:m=1000,n=520,k=136:f16:epilogue=bias"), wgmma(128, 128, 4, 2, 8, 1));
  ASSERT_EQ(st.tensor_maps.size(), 3u);
  EXPECT_EQ(st.tensor_maps[2].tensor, 3);
  EXPECT_EQ(st.tensor_maps[2].dims, (std::vector<int64_t>{520, 1000, 1}));
  EXPECT_EQ(st.tensor_maps[2].box, (std::vector<int64_t>{64, 64, 1}));
  EXPECT_EQ(st.launch.dynamic_smem_bytes, 4 * 256 * 64 * 2 + 128 * 128 * 2 + 1024 + 96);
  EXPECT_NE(st.source.find("const __grid_constant__ TensorMap map_c"), std::string::npos);
  KernelSource t = f->emit(Workload::parse("matmul:m=64,n=96,k=64,tb=1:bf16"), wgmma(64, 96, 2, 1));
  EXPECT_EQ(t.tensor_maps[1].dims, (std::vector<int64_t>{64, 96, 1}));
  EXPECT_EQ(t.tensor_maps[1].box, (std::vector<int64_t>{64, 96, 1}));
  EXPECT_EQ(t.tensor_maps[1].dtype, DType::kBF16);
  EXPECT_NE(t.source.find("wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16"), std::string::npos);
  EXPECT_NE(src.source.find("m64n128k16.f32.f16.f16"), std::string::npos);
  EXPECT_EQ(src.launch.cluster, 1);
  EXPECT_EQ(src.source.find("CLUSTER_DIMS"), std::string::npos);
}

TEST(GemmWgmma, ClusterPlanPairsTileRowsAndHalvesBsBoxes) {
  auto f = make_gemm_wgmma_family();
  // 1000 rows are 8 tile-rows of 128 (4 clusters), 333 rows are 3 (2 clusters, the last one's
  // second tile below M).
  KernelSource kn = f->emit(Workload::parse("batch_matmul:b=3,m=1000,n=520,k=136:f16"), wgmma(128, 128, 4, 2, 8, 0, 0, 2));
  EXPECT_EQ(kn.launch.cluster, 2);
  EXPECT_EQ(kn.launch.grid[0], 4 * 5 * 3 * 2);
  EXPECT_NE(kn.source.find("TESSERA_CLUSTER_DIMS(2, 1, 1)"), std::string::npos);
  EXPECT_EQ(kn.tensor_maps[0].box, (std::vector<int64_t>{64, 128, 1}));  // A: each block its own
  EXPECT_EQ(kn.tensor_maps[1].box, (std::vector<int64_t>{64, 32, 1}));   // [K, N] B: half the k rows of a box
  KernelSource nk = f->emit(Workload::parse("matmul:m=333,n=192,k=64,tb=1:f16"), wgmma(128, 192, 3, 2, 8, 1, 0, 2));
  EXPECT_EQ(nk.launch.grid[0], 2 * 1 * 2);
  EXPECT_EQ(nk.tensor_maps[1].box, (std::vector<int64_t>{64, 96, 1}));  // [N, K] B: half the rows
  // Split-K: units per slice, a workspace of f32 partials and a second kernel that adds them.
  KernelSource sk = f->emit(Workload::parse("matmul:m=512,n=512,k=16384:f16:epilogue=bias"), wgmma(128, 128, 4, 2, 8, 0, 0, 1, 8));
  EXPECT_EQ(sk.launch.grid[0], 4 * 4 * 8);
  EXPECT_EQ(sk.workspace_bytes, 8 * 512 * 512 * 4);
  ASSERT_EQ(sk.then.size(), 1u);
  EXPECT_EQ(sk.then[0].entry, "tessera_gemm_wgmma_reduce");
  EXPECT_NE(sk.source.find("float* __restrict__ W, const __grid_constant__ TensorMap map_a"), std::string::npos);
  // 32-wide k steps: K-major boxes of 32 elements swizzled over 64 bytes; a [K, N] B keeps its
  // 128-byte swizzled 64-column boxes, of 32 k rows (16 per block of a cluster).
  KernelSource k32 = f->emit(Workload::parse("matmul:m=1000,n=520,k=136,tb=1:f16"), wgmma(128, 128, 8, 2, 8, 0, 0, 1, 1, 32));
  EXPECT_EQ(k32.tensor_maps[0].box, (std::vector<int64_t>{32, 128, 1}));
  EXPECT_EQ(k32.tensor_maps[0].swizzle_bytes, 64);
  EXPECT_EQ(k32.tensor_maps[1].box, (std::vector<int64_t>{32, 128, 1}));
  EXPECT_EQ(k32.tensor_maps[1].swizzle_bytes, 64);
  EXPECT_EQ(k32.launch.dynamic_smem_bytes, 8 * 256 * 32 * 2 + 1024 + 160);
  KernelSource kn32 = f->emit(Workload::parse("matmul:m=1000,n=520,k=136:f16"), wgmma(128, 128, 4, 2, 8, 0, 0, 2, 1, 32));
  EXPECT_EQ(kn32.tensor_maps[0].swizzle_bytes, 64);
  EXPECT_EQ(kn32.tensor_maps[1].box, (std::vector<int64_t>{64, 16, 1}));
  EXPECT_EQ(kn32.tensor_maps[1].swizzle_bytes, 128);
  EXPECT_NE(kn32.source.find("128, 128, 32, 4, 2, 8"), std::string::npos);  // BM, BN, BK, STAGES, ...
  // The model counts B's bytes from L2 once per cluster.
  EXPECT_EQ(f->tile_plan(Workload::parse("matmul:m=333,n=192,k=64,tb=1:f16"), wgmma(128, 192, 3, 2, 8, 1, 0, 2)).multicast, 2);
}

// Attention's heads read in place: Q, K and V are [tokens, 3, heads, 64] rows of the
// projection's output (row stride 3 * 768, head stride 64), so the scores' A and B and the
// context's B lie strided. One level of batch: the maps only change their strides; batch x
// heads in two levels: four-dimensional maps, the heads third.
TEST(GemmWgmma, StridedOperandsAreReadThroughTheirMaps) {
  auto f = make_gemm_wgmma_family();
  const Workload scores = Workload::parse("batch_matmul:b=12,m=128,n=128,k=64,tb=1,alpha=0.125:f16");
  const OperandStrides head{2304, 64, 12, 0};
  EXPECT_TRUE(f->reads_strided(scores, {head, head}));
  KernelSource one = f->emit_strided(scores, wgmma(128, 128, 4, 2), {head, std::nullopt});
  EXPECT_EQ(one.tensor_maps[0].dims, (std::vector<int64_t>{64, 128, 12}));
  EXPECT_EQ(one.tensor_maps[0].strides_bytes, (std::vector<int64_t>{4608, 128}));
  EXPECT_EQ(one.tensor_maps[1].strides_bytes, (std::vector<int64_t>{128, 16384}));  // B dense
  EXPECT_EQ(one.source, f->emit(scores, wgmma(128, 128, 4, 2)).source);  // the same kernel

  const Workload scores32 = Workload::parse("batch_matmul:b=384,m=128,n=128,k=64,tb=1,alpha=0.125:f16");
  const OperandStrides heads{2304, 64, 12, 128 * 2304};
  KernelSource two = f->emit_strided(scores32, wgmma(128, 128, 4, 2, 8, 0, 0, 2), {heads, heads});
  for (int t = 0; t < 2; ++t) {
    EXPECT_EQ(two.tensor_maps[t].dims, (std::vector<int64_t>{64, 128, 12, 32}));
    EXPECT_EQ(two.tensor_maps[t].strides_bytes, (std::vector<int64_t>{4608, 128, 589824}));
  }
  EXPECT_EQ(two.tensor_maps[1].box, (std::vector<int64_t>{64, 64, 1, 1}));  // half of B's rows per block
  EXPECT_NE(two.source.find("GemmLoads<In, 64, true, 128, 128, 64, 2, 12>"), std::string::npos);
  // The context: dense probabilities times V ([K, N]: tokens x 64, strided), batch in two levels.
  const Workload context = Workload::parse("batch_matmul:b=384,m=128,n=64,k=128:f16");
  KernelSource ctx = f->emit_strided(context, wgmma(128, 64, 4, 1, 8, 1), {std::nullopt, heads});
  EXPECT_EQ(ctx.tensor_maps[0].dims, (std::vector<int64_t>{128, 128, 12, 32}));
  EXPECT_EQ(ctx.tensor_maps[0].strides_bytes, (std::vector<int64_t>{256, 32768, 393216}));
  EXPECT_EQ(ctx.tensor_maps[1].dims, (std::vector<int64_t>{64, 128, 12, 32}));
  EXPECT_EQ(ctx.tensor_maps[2].dims, (std::vector<int64_t>{64, 128, 384}));  // C: dense, three dimensions
  // The context written straight into [batch 32, tokens 128, heads 12, 64]: the TMA store's map
  // (four dimensions), the stores from registers and split-K's reduction at OutAt's offsets.
  const OperandStrides merged{768, 64, 12, 128 * 768};
  EXPECT_TRUE(f->reads_strided(context, {std::nullopt, heads, merged}));
  KernelSource out = f->emit_strided(context, wgmma(128, 64, 4, 1, 8, 1), {std::nullopt, heads, merged});
  EXPECT_EQ(out.tensor_maps[2].dims, (std::vector<int64_t>{64, 128, 12, 32}));
  EXPECT_EQ(out.tensor_maps[2].strides_bytes, (std::vector<int64_t>{1536, 128, 196608}));
  EXPECT_EQ(out.tensor_maps[2].box, (std::vector<int64_t>{64, 128, 1, 1}));
  EXPECT_NE(out.source.find("return (b % 12) * 64 + (b / 12) * 98304;"), std::string::npos);
  EXPECT_NE(out.source.find("Epilogue, Mma, OutAt>"), std::string::npos);
  KernelSource regs = f->emit_strided(context, wgmma(128, 64, 4, 1, 8, 0, 0, 1, 2), {std::nullopt, heads, merged});
  EXPECT_NE(regs.source.find(", Epilogue, OutAt>(W, C"), std::string::npos);  // split-K's reduction
  // Not with a residual, whose staged copy shares C's map.
  EXPECT_FALSE(f->reads_strided(Workload::parse("batch_matmul:b=384,m=128,n=64,k=128:f16:epilogue=residual"),
                                {std::nullopt, std::nullopt, merged}));

  // What TMA cannot take: strides off 16 bytes, a broadcast batch, batch levels that disagree.
  EXPECT_FALSE(f->reads_strided(scores, {OperandStrides{2300, 64, 12, 0}, std::nullopt}));
  EXPECT_FALSE(f->reads_strided(scores, {OperandStrides{2304, 0, 12, 0}, std::nullopt}));
  EXPECT_FALSE(f->reads_strided(scores32, {heads, OperandStrides{2304, 64, 6, 64 * 6}}));
  EXPECT_FALSE(f->reads_strided(scores32, {OperandStrides{2304, 64, 7, 64 * 7}, std::nullopt}));
  EXPECT_FALSE(f->reads_strided(Workload::parse("batch_matmul:b=12,m=128,n=128,k=64:f32"), {head, std::nullopt}));
#if TESSERA_HAVE_CUDA
  BuildOptions hopper;
  hopper.headers = device_headers();
  std::vector<KernelSource> sources{one, two, ctx, out, regs,
                                    f->emit_strided(context, wgmma(64, 64, 4, 1, 8, 0, 0, 2), {std::nullopt, heads}),
                                    f->emit_strided(context, wgmma(128, 64, 4, 1, 8, 0), {std::nullopt, heads, merged}),
                                    f->emit_strided(scores, wgmma(128, 128, 4, 2, 8, 1), {head, head, OperandStrides{768, 64, 12, 0}})};
  for (const CompiledKernel& k : Builder(hopper).build(sources)) EXPECT_EQ(k.status, Status::kOk) << k.error;
#endif
}

// Every k-th valid schedule of each shape, compiled for sm_90a.
// C's rows of an odd n (attention's [197, 197] scores: 394 bytes) take no tensor map: with
// tma_store the warpgroup copies its staged tile out; a residual (loaded by TMA) cannot come.
TEST(GemmWgmma, UnalignedRowsOfCAreCopiedOutOfTheStagingTile) {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_gemm_wgmma_family();
  const Workload scores = Workload::parse("batch_matmul:b=384,m=197,n=197,k=64,tb=1:f16");
  EXPECT_FALSE(f->validate(wgmma(128, 256, 3, 2, 8, 1), scores, h100).has_value());
  EXPECT_FALSE(f->validate(wgmma(192, 128, 4, 3, 8, 1), scores, h100).has_value());  // three consumers store staged
  EXPECT_EQ(f->validate(wgmma(128, 128, 4, 2, 8, 1), Workload::parse("matmul:m=64,n=197,k=64,tb=1:f16:epilogue=residual"),
                        h100)
                .value_or(""),
            "tma_store with a residual loads it by TMA: n must be a multiple of 8 (16-byte row strides)");
  EXPECT_TRUE(copies_out(scores, std::nullopt));
  EXPECT_FALSE(copies_out(Workload::parse("matmul:m=64,n=200,k=64:f16"), std::nullopt));
  KernelSource src = f->emit(scores, wgmma(128, 256, 3, 2, 8, 1));
  ASSERT_EQ(src.tensor_maps.size(), 2u);  // A and B only
  EXPECT_EQ(src.source.find("TensorMap map_c"), std::string::npos);
  EXPECT_NE(src.source.find(", epilogue, map_a, map_b, nullptr, nullptr);"), std::string::npos);
  EXPECT_EQ(src.launch.dynamic_smem_bytes, f->emit(Workload::parse("batch_matmul:b=384,m=197,n=200,k=64,tb=1:f16"),
                                                   wgmma(128, 256, 3, 2, 8, 1)).launch.dynamic_smem_bytes);
  // The model: the stores wait, as from registers.
  EXPECT_FALSE(f->tile_plan(scores, wgmma(128, 256, 3, 2, 8, 1)).async_store);
  EXPECT_TRUE(f->tile_plan(Workload::parse("batch_matmul:b=384,m=197,n=200,k=64,tb=1:f16"), wgmma(128, 256, 3, 2, 8, 1))
                  .async_store);
}

std::vector<std::pair<KernelSource, CompiledKernel>> compiled_sample() {
  HardwareSpec h100 = find_spec("h100_sxm");
  auto f = make_gemm_wgmma_family();
  std::vector<KernelSource> sources;
  for (const std::string& spec : kShapes) {
    Workload w = Workload::parse(spec);
    std::vector<Schedule> valid;
    for (const Schedule& s : enumerate_space(*f, w, h100))
      if (!f->validate(s, w, h100)) valid.push_back(s);
    size_t step = std::max<size_t>(1, valid.size() / 6);
    for (size_t i = 0; i < valid.size(); i += step) sources.push_back(f->emit(w, valid[i]));
  }
  // Both epilogues of the fastest shapes on the H100.
  for (int64_t tma_store : {0, 1}) {
    sources.push_back(f->emit(Workload::parse(kShapes[0]), wgmma(128, 192, 4, 2, 8, tma_store)));
    sources.push_back(f->emit(Workload::parse(kShapes[1]), wgmma(128, 128, 3, 2, 8, tma_store)));
    sources.push_back(f->emit(Workload::parse(kShapes[1]), wgmma(128, 128, 4, 2, 8, tma_store, 1)));
    sources.push_back(f->emit(Workload::parse(kShapes[0]), wgmma(128, 256, 3, 2, 8, tma_store, 0, 2)));
    sources.push_back(f->emit(Workload::parse(kShapes[1]), wgmma(128, 128, 4, 2, 8, tma_store, 1, 2)));
  }
  // A residual through the staging tile (TMA-copied there while the tile computes): shared
  // and ping-pong tiles, with a cluster, and the BERT shape.
  const Workload residual = Workload::parse("matmul:m=4096,n=768,k=768,tb=1:f16:epilogue=bias+residual+relu");
  sources.push_back(f->emit(residual, wgmma(128, 128, 4, 2, 8, 1)));
  sources.push_back(f->emit(residual, wgmma(128, 128, 4, 2, 8, 1, 1, 2)));
  sources.push_back(f->emit(residual, wgmma(64, 256, 4, 1, 8, 1)));
  // Two blocks per SM, each within 128 registers: staged and from registers, split-K, a cluster.
  sources.push_back(f->emit(Workload::parse(kShapes[3]), two_per_sm(wgmma(64, 128, 3, 1, 8, 1))));
  sources.push_back(f->emit(Workload::parse(kShapes[1]), two_per_sm(wgmma(64, 128, 4, 1, 8, 0, 0, 2, 4))));
  sources.push_back(f->emit(residual, two_per_sm(wgmma(128, 64, 3, 1, 8, 1, 0, 2))));
  // Three consumer warpgroups of 64 rows (192-row tiles), staged, and the widest tile their 152
  // registers take.
  const Workload bert_out = Workload::parse("matmul:m=4096,n=768,k=768:f16:epilogue=bias+residual");
  sources.push_back(f->emit(bert_out, wgmma(192, 128, 4, 3, 8, 1)));
  sources.push_back(f->emit(bert_out, wgmma(192, 128, 4, 3, 1, 1)));
  sources.push_back(f->emit(Workload::parse("matmul:m=4096,n=2304,k=768,tb=1:f16:epilogue=bias+gelu"), wgmma(192, 192, 3, 3, 8, 1)));
  sources.push_back(f->emit(Workload::parse("matmul:m=512,n=512,k=16384:f16:epilogue=bias+gelu"),
                            wgmma(128, 128, 4, 2, 8, 0, 0, 2, 8)));
  // C's rows copied out of the staging tile (odd n): shared and ping-pong tiles, three consumers.
  const Workload scores = Workload::parse("batch_matmul:b=384,m=197,n=197,k=64,tb=1:f16");
  sources.push_back(f->emit(scores, wgmma(128, 256, 3, 2, 8, 1)));
  sources.push_back(f->emit(scores, wgmma(128, 128, 4, 2, 8, 1, 1)));
  sources.push_back(f->emit(Workload::parse("matmul:m=300,n=1001,k=128,tb=1:f16:epilogue=bias+gelu"), wgmma(192, 128, 4, 3, 8, 1)));
  // 32-wide k steps (64-byte swizzled K-major tiles), both layouts of B, with clusters.
  sources.push_back(f->emit(Workload::parse(kShapes[0]), wgmma(128, 256, 8, 2, 8, 1, 0, 2, 1, 32)));
  sources.push_back(f->emit(Workload::parse(kShapes[1]), wgmma(128, 128, 6, 2, 8, 1, 1, 2, 1, 32)));
  BuildOptions hopper;
  hopper.headers = device_headers();
  std::vector<CompiledKernel> built = Builder(hopper).build(sources);
  std::vector<std::pair<KernelSource, CompiledKernel>> out;
  for (size_t i = 0; i < built.size(); ++i) out.emplace_back(sources[i], built[i]);
  return out;
}

TEST(GemmWgmma, SampledSchedulesCompileForHopperWithoutLocalMemory) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  auto sample = compiled_sample();
  ASSERT_GE(sample.size(), 25u);
  testing::expect_compiled_without_local_memory(sample);
}

TEST(GemmWgmma, SassShowsHgmmaAndNoLocalMemory) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  const std::string tool = testing::cuobjdump();
  if (tool.empty()) GTEST_SKIP() << "no cuobjdump here (the toolkit's binary utilities)";
  auto sample = compiled_sample();
  for (size_t i = 0; i < sample.size(); i += 5) {
    const auto& [src, k] = sample[i];
    ASSERT_EQ(k.status, Status::kOk);
    SCOPED_TRACE(src.source.substr(0, 160));
    testing::expect_hopper_sass(testing::sass_of(k, tool), true);
  }
}

}  // namespace
}  // namespace tessera::kernels
