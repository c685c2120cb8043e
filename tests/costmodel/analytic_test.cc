// The analytic model's behaviour: it responds to tiles, rasterisation, pipelining, split-K,
// occupancy and vector width the way the hardware does, never predicts below the roofline
// floor, and is fast enough to rank whole spaces.
#include "costmodel/analytic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

#include "costmodel/roofline.h"
#include "kernels/families.h"
#include "tests/data/dataset.h"
#include "tests/kernels/families_fixture.h"

namespace tessera::costmodel {
namespace {

Schedule gemm(int64_t bm, int64_t bn, int64_t bk, int64_t wm, int64_t wn, int64_t stages, int64_t group, int64_t split) {
  return {"gemm_tc", {{"block_m", bm}, {"block_n", bn}, {"block_k", bk}, {"warps_m", wm}, {"warps_n", wn},
                      {"stages", stages}, {"vec", 8}, {"group_m", group}, {"split_k", split}}};
}

class Analytic : public tessera::testing::BuiltinFamiliesTest {
 protected:
  Estimate est(const std::string& spec, const Schedule& s) {
    return AnalyticModel(families_, h100_).explain({Workload::parse(spec), s, std::nullopt});
  }
};

// Per workload of measured records: the one the model predicts fastest (its prediction, measured
// time and schedule), and the fastest measured.
struct Picks {
  struct Pick {
    double predicted = 0, measured = 0;
    Schedule schedule;
  };
  std::map<std::string, Pick> pick;  // by workload
  std::map<std::string, double> best;
  void add(const Record& r, double predicted) {
    const double measured = r.measurement.median_us;
    const std::string key = r.workload.key();
    auto it = pick.find(key);
    if (it == pick.end() || predicted < it->second.predicted) pick[key] = {predicted, measured, r.schedule};
    best[key] = best.count(key) ? std::min(best[key], measured) : measured;
  }
  // Sum of the fastest over the sum of the picked (TenSet's top-1 score over the workloads).
  double top1() const {
    double fastest = 0, picked = 0;
    for (const auto& [key, p] : pick) {
      fastest += best.at(key);
      picked += p.measured;
    }
    return fastest / picked;
  }
};

// The model's picks among the correct records of a dataset.
Picks picks_of(const AnalyticModel& model, const char* path) {
  Picks picks;
  for (const Record& r : tessera::testing::load_records(path))
    if (r.measurement.status == Status::kOk) picks.add(r, model.explain({r.workload, r.schedule, std::nullopt}).us);
  return picks;
}

// The Hopper convolutions as measured on the lent H100 (tests/data/h100-conv.tar.xz: 567
// conv_wgmma records of 74 workloads: ResNet-50, Inception-v3 and ResNeXt-50 layers at batch 1
// and 32, construction's top 10 each): the model is unbiased within 25 %, off by a typical
// 1.21x (exp of the log RMSE; 1.35x allowed), and its first pick among each workload's
// records is within 10 % of the fastest on the whole (TenSet's top-1 score 0.91; 0.85 allowed).
// Its im2col A counts at the input's distinct bytes in DRAM, and the gathering producer (the RGB
// stems) as a serial cost per step.
TEST_F(Analytic, FollowsTheMeasuredHopperConvolutions) {
  const std::vector<Record> records = tessera::testing::load_records(TESSERA_CONV_DATASET);
  AnalyticModel model(families_, h100_);
  double sum = 0, squares = 0;
  int n = 0;
  Picks picks;
  for (const Record& r : records) {
    if (r.measurement.status != Status::kOk || r.schedule.family != "conv_wgmma") continue;
    const double predicted = model.explain({r.workload, r.schedule, std::nullopt}).us;
    const double d = std::log(r.measurement.median_us / predicted);
    sum += d;
    squares += d * d;
    ++n;
    picks.add(r, predicted);
  }
  ASSERT_GE(n, 500);
  ASSERT_GE(picks.best.size(), 70u);
  const double bias = std::exp(sum / n), typical = std::exp(std::sqrt(squares / n));
  EXPECT_GT(bias, 0.8);
  EXPECT_LT(bias, 1.25);
  EXPECT_LT(typical, 1.35);
  EXPECT_GT(picks.top1(), 0.85) << "bias " << bias << ", typical error " << typical;
}

// tests/data/h100-narrow.tar.xz (1240 records of 70 workloads, the lent H100, 2026-12-07:
// ResNet-50's, Inception-v3's and ResNeXt-50's convolutions at batch 1 and 32 and BERT's
// 128-token GEMMs, construction's top 10 with narrow tiles in the space, beside cuDNN fusing the
// epilogue): the model's first pick among each workload's records is within 12 % of the fastest
// on the whole (0.94; 0.90 before the ring's fill cost one step), and on the batch-1 14x14 1x1
// (1024 -> 256), where a 64x8 tile measured 4.45 us against 5.95 us for the best before narrow
// tiles, it picks a narrow one.
TEST_F(Analytic, PicksTheMeasuredBestOfTheNarrowTiles) {
  const Picks picks = picks_of(AnalyticModel(families_, h100_), TESSERA_NARROW_DATASET);
  ASSERT_EQ(picks.best.size(), 70u);
  EXPECT_GT(picks.top1(), 0.88);
  const std::string narrow = Workload::parse("conv2d:n=1,h=14,w=14,c=1024,k=256,r=1,s=1:f16:epilogue=bias+relu").key();
  ASSERT_TRUE(picks.pick.count(narrow));
  EXPECT_LT(picks.pick.at(narrow).schedule.get("block_n"), 64);
}

// tests/data/h100-deep.tar.xz: resnet50-conv.json and batch32-conv.json re-measured on the lent
// H100 (2026-12-07, fourteenth session) once rings of 12 and 16 stages were in the space and
// the ring's fill cost one step: 47 workloads, construction's top 10 each. Its picks among them
// sum to 1 / 0.925 of the measured best (the worst: the batch-32 8x8 3x3, 28.8 against 16.4 us).
TEST_F(Analytic, PicksTheMeasuredBestOfTheDeepRings) {
  const Picks picks = picks_of(AnalyticModel(families_, h100_), TESSERA_DEEP_DATASET);
  ASSERT_EQ(picks.best.size(), 47u);
  EXPECT_GT(picks.top1(), 0.90);
}

// conv_direct's threads read each filter element from global memory as they need it; with NHWC,
// a warp's lanes take consecutive output channels, whose filters lie a line or more apart, so
// every filter load touches a line a lane (TilePlan::l1_lines). Uncounted, the model put the
// dense and grouped convolutions of tests/data/h100-conv.tar.xz at 1/6 of their measured time
// and took top-10 slots from the tensor-core families; counted, measured over predicted is
// near 1 (1.4x dense, 0.8x grouped), while depthwise, whose lanes' filters share lines, stays
// as it was.
TEST_F(Analytic, CountsTheScatteredFilterLoadsOfDirectConvolutions) {
  AnalyticModel model(families_, h100_);
  // Geomean of measured over predicted of the conv_direct records of `path` that `keep` takes.
  auto bias = [&](const char* path, const std::function<bool(const Conv2dShape&)>& keep, int& n) {
    double sum = 0;
    n = 0;
    for (const Record& r : tessera::testing::load_records(path)) {
      if (r.measurement.status != Status::kOk || r.schedule.family != "conv_direct" || !keep(r.workload.conv2d())) continue;
      sum += std::log(r.measurement.median_us / model.explain({r.workload, r.schedule, std::nullopt}).us);
      ++n;
    }
    return n > 0 ? std::exp(sum / n) : 0.0;
  };
  int n = 0;
  const double scattered = bias(TESSERA_CONV_DATASET, [](const Conv2dShape& c) { return c.groups != c.c && c.c / c.groups >= 8; }, n);
  ASSERT_GE(n, 50);
  EXPECT_GT(scattered, 0.6);
  EXPECT_LT(scattered, 2.0);
  // The depthwise records (the main job's, in h100-strips) keep their lines uncounted.
  const double depthwise = bias(TESSERA_STRIPS_DATASET, [](const Conv2dShape& c) { return c.groups == c.c; }, n);
  ASSERT_GE(n, 10);
  EXPECT_GT(depthwise, 0.4);
  EXPECT_LT(depthwise, 1.2);
  EXPECT_NE(est("conv2d:n=32,h=56,w=56,c=144,k=144,r=3,s=3,pad=1,groups=144:f16", {"conv_direct", {{"threads", 256}, {"vec_k", 2}}}).bound,
            "l1");
  // A dense 1x1's filter loads bound it: 64 filters of 256 channels, each a lane's.
  const Estimate dense = est("conv2d:n=1,h=56,w=56,c=256,k=128,r=1,s=1:f16", {"conv_direct", {{"threads", 256}, {"vec_k", 1}}});
  EXPECT_EQ(dense.bound, "l1");
}

// The H100's records of tests/data/h100-strips.tar.xz (867 of 78 workloads: the README's main
// job, four RGB stems and the convolution sets at batch 1 and 32, construction's top 10 each,
// and hand-picked row strips of the stems): the model's first pick among each workload's records
// is within 7 % of the fastest on the whole (0.96; 0.95 before the ring's fill cost one step),
// and on the batch-32 ResNet-50 stem, where the strips' ring depth decides (54.4-112.3 us for 8
// to 5 stages), its pick is the fastest.
TEST_F(Analytic, PicksTheMeasuredBestOfTheDefaultJobAndTheStems) {
  const Picks picks = picks_of(AnalyticModel(families_, h100_), TESSERA_STRIPS_DATASET);
  ASSERT_EQ(picks.best.size(), 78u);
  EXPECT_GT(picks.top1(), 0.93);
  const std::string stem = Workload::parse("conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16").key();
  EXPECT_EQ(picks.pick.at(stem).measured, picks.best.at(stem));
}

TEST_F(Analytic, NeverBelowTheRooflineFloor) {
  HardwareSpec h100 = find_spec("h100_sxm");
  for (const char* spec : {"matmul:m=4096,n=4096,k=4096:f16", "matmul:m=16,n=4096,k=4096:f16",
                           "batch_matmul:b=384,m=128,n=128,k=64:f16"}) {
    Workload w = Workload::parse(spec);
    double floor = roofline_floor(w, h100).floor_us;
    for (const Schedule& s : kernels::enumerate_space(*families_.find("gemm_tc"), w, h100))
      if (!families_.find("gemm_tc")->validate(s, w, h100)) {
        Estimate e = est(spec, s);
        ASSERT_TRUE(e.feasible) << s.key();
        ASSERT_GE(e.us, floor) << spec << " " << s.key();
      }
  }
}

TEST_F(Analytic, BiggerTilesMoveLessDataAndRasterisationReusesL2) {
  const char* w = "matmul:m=8192,n=8192,k=8192:f16";
  Estimate small = est(w, gemm(64, 64, 32, 2, 2, 3, 8, 1)), big = est(w, gemm(128, 256, 32, 2, 4, 3, 8, 1));
  EXPECT_LT(big.l2_us, small.l2_us);
  EXPECT_LT(big.us, small.us);
  Estimate rows = est(w, gemm(128, 128, 32, 2, 2, 3, 1, 1)), grouped = est(w, gemm(128, 128, 32, 2, 2, 3, 8, 1));
  EXPECT_LT(grouped.dram_bytes, rows.dram_bytes);
}

TEST_F(Analytic, DeeperPipelinesHideMoreUntilSharedMemoryRunsOut) {
  const char* w = "matmul:m=4096,n=4096,k=4096:f16";
  Estimate two = est(w, gemm(128, 128, 32, 2, 2, 2, 8, 1)), four = est(w, gemm(128, 128, 32, 2, 2, 4, 8, 1));
  EXPECT_GT(four.overlap, two.overlap);
  EXPECT_LT(four.us, two.us);
  // A tile that leaves no room for a second block halves occupancy.
  EXPECT_LT(est(w, gemm(256, 256, 64, 4, 4, 3, 8, 1)).blocks_per_sm, two.blocks_per_sm);
}

// A persistent kernel's launch starts blocks_per_sm blocks per SM, however many more would fit.
TEST_F(Analytic, PersistentKernelsHoldTheBlocksTheirLaunchStarts) {
  auto wgmma = [](int64_t per_sm) {
    return Schedule{"gemm_wgmma",
                    {{"block_m", 64}, {"block_n", 64}, {"block_k", 64}, {"stages", 2}, {"consumers", 1}, {"group_m", 8},
                     {"tma_store", 0}, {"pingpong", 0}, {"cluster_m", 1}, {"split_k", 1}, {"blocks_per_sm", per_sm}}};
  };
  const char* w = "batch_matmul:b=384,m=128,n=128,k=64:f16";
  Estimate one = est(w, wgmma(1)), two = est(w, wgmma(2));
  EXPECT_EQ(one.blocks_per_sm, 1);
  EXPECT_EQ(two.blocks_per_sm, 2);
  EXPECT_EQ(two.waves * 2, one.waves);
}

TEST_F(Analytic, SplitKFillsTheGpuForSkinnyShapes) {
  const char* w = "matmul:m=512,n=512,k=16384:f16";
  Estimate one = est(w, gemm(128, 128, 32, 2, 2, 3, 8, 1)), eight = est(w, gemm(128, 128, 32, 2, 2, 3, 8, 8));
  EXPECT_EQ(one.blocks, 16);
  EXPECT_EQ(eight.blocks, 128);
  EXPECT_LT(eight.us, one.us / 2);
}

TEST_F(Analytic, MemoryBoundKernelsNeedWideLoadsAndEnoughInFlight) {
  const char* w = "softmax:rows=16384,cols=4096:f16";
  Schedule wide{"rows", {{"row_threads", 256}, {"rows_per_block", 1}, {"vec", 8}, {"single_pass", 1}}};
  Schedule narrow{"rows", {{"row_threads", 32}, {"rows_per_block", 1}, {"vec", 1}, {"single_pass", 0}}};
  Estimate a = est(w, wide), b = est(w, narrow);
  EXPECT_LT(a.us, b.us);
  EXPECT_NE(a.bound, "compute");
  double floor = roofline_floor(Workload::parse(w), find_spec("h100_sxm")).floor_us;
  EXPECT_LT(a.us, 2.5 * floor);  // a good schedule stays near the floor
}

TEST_F(Analytic, UnknownFamilyOrNoRoomIsInfinite) {
  EXPECT_FALSE(std::isfinite(est("matmul:m=64,n=64,k=64:f16", {"nope", {}}).us));
  kernels::TilePlan p = families_.find("gemm_tc")->tile_plan(Workload::parse("matmul:m=64,n=64,k=64:f16"),
                                                             gemm(64, 64, 32, 2, 2, 2, 1, 1));
  p.smem_bytes = 10 << 20;  // more than an SM has
  Estimate e = estimate(p, find_spec("h100_sxm"));
  EXPECT_FALSE(e.feasible);
  EXPECT_FALSE(std::isfinite(e.us));
}

TEST_F(Analytic, RanksAWholeSpace) {
  HardwareSpec h100 = find_spec("h100_sxm");
  Workload w = Workload::parse("matmul:m=4096,n=3072,k=768:f16:epilogue=bias+gelu");
  std::vector<Candidate> cs;
  for (Schedule& s : kernels::enumerate_space(*families_.find("gemm_tc"), w, h100)) cs.push_back({w, s, std::nullopt});
  AnalyticModel model(families_, h100);
  std::vector<double> us = model.predict(cs);
  ASSERT_EQ(us.size(), cs.size());
  for (size_t i = 0; i < us.size(); ++i)
    if (!families_.find("gemm_tc")->validate(cs[i].schedule, w, h100)) {
      EXPECT_TRUE(std::isfinite(us[i]) && us[i] > 0) << cs[i].schedule.key();
    }
}

}  // namespace
}  // namespace tessera::costmodel
