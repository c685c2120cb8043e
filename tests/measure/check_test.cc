// The CPU parts of the measurement protocol: tolerances, comparison, repeat planning, noise.
#include "measure/check.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tessera::measure {
namespace {

TEST(Check, ToleranceFollowsTheOutputType) {
  EXPECT_LT(tolerance_for(DType::kF32).rel, tolerance_for(DType::kF16).rel);
  EXPECT_LT(tolerance_for(DType::kF16).rel, tolerance_for(DType::kBF16).rel);
  EXPECT_EQ(tolerance_for(DType::kF32, /*tf32=*/true).rel, tolerance_for(DType::kF16).rel);
}

TEST(Check, CompareCountsEveryBadOutputAndNaN) {
  std::vector<float> want = {1.0f, -2.0f, 100.0f, 0.0f};
  Tolerance tol{1e-3, 1e-4};  // abs floor: 1e-4 * 100 = 0.01
  std::vector<float> got = want;
  got[3] = 0.005f;  // within the magnitude-scaled floor
  EXPECT_TRUE(compare(got, want, tol).ok());
  got[1] = -2.1f;
  got[2] = std::numeric_limits<float>::quiet_NaN();
  Comparison c = compare(got, want, tol);
  EXPECT_EQ(c.bad, 2);
  EXPECT_EQ(c.first_bad, 1);
  EXPECT_TRUE(std::isnan(c.worst_abs));
  EXPECT_EQ(c.scale, 100.0);
  std::string text = c.describe(got, want);
  EXPECT_NE(text.find("2 of 4 outputs off (first at 1: got -2.1, want -2"), std::string::npos) << text;
  std::vector<float> poisoned(4, std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(compare(poisoned, want, tol).bad, 4);  // an output nobody wrote fails
}

TEST(Check, RepeatsReachBothTheCountAndTheTime) {
  MeasureOptions o;
  o.min_repeats = 10;
  o.min_total_ms = 50;
  o.max_repeats = 2000;
  EXPECT_EQ(planned_repeats(1000.0, o), 50);    // 1 ms kernels: time decides
  EXPECT_EQ(planned_repeats(10000.0, o), 10);   // 10 ms kernels: the count decides
  EXPECT_EQ(planned_repeats(1.0, o), 2000);     // 1 us kernels: capped
  EXPECT_EQ(planned_repeats(0.0, o), 2000);
}

TEST(Check, NoisyMeansSpreadAboveTheThreshold) {
  MeasureOptions o;
  o.noise_threshold = 0.02;
  Measurement quiet, noisy;
  quiet.set_times({100, 100.5, 101, 100.2, 99.9, 100.1, 100, 100.3, 100.2, 100});
  noisy.set_times({100, 130, 90, 100, 150, 100, 95, 120, 100, 80});
  EXPECT_FALSE(is_noisy(quiet, o));
  EXPECT_TRUE(is_noisy(noisy, o));
}

}  // namespace
}  // namespace tessera::measure
