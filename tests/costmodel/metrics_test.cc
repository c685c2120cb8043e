// Ranking metrics and the evaluation report on hand-checked cases.
#include "costmodel/metrics.h"

#include <gtest/gtest.h>

#include "costmodel/evaluate.h"

namespace tessera::costmodel {
namespace {

TEST(Metrics, SpearmanOfPerfectReversedAndTiedRankings) {
  std::vector<double> m = {1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(spearman(std::vector<double>{10, 20, 30, 40, 50}, m), 1.0);
  EXPECT_DOUBLE_EQ(spearman(std::vector<double>{5, 4, 3, 2, 1}, m), -1.0);
  // Ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): cov 4.5 / sqrt(4.5 * 5) = 0.9487.
  EXPECT_NEAR(spearman(std::vector<double>{1, 2, 2, 3}, std::vector<double>{1, 2, 3, 4}), 0.9487, 1e-4);
  EXPECT_EQ(spearman(std::vector<double>{1}, std::vector<double>{1}), 0.0);
}

TEST(Metrics, PairwiseAccuracyCountsOrderedPairs) {
  std::vector<double> m = {1, 2, 3};
  EXPECT_DOUBLE_EQ(pairwise_accuracy(std::vector<double>{1, 2, 3}, m), 1.0);
  EXPECT_DOUBLE_EQ(pairwise_accuracy(std::vector<double>{2, 1, 3}, m), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(pairwise_accuracy(std::vector<double>{1, 1, 3}, m), 2.5 / 3.0);  // a predicted tie is half
  EXPECT_DOUBLE_EQ(pairwise_accuracy(std::vector<double>{3, 2, 1}, std::vector<double>{5, 5, 5}), 1.0);
}

TEST(Metrics, TopKScoreIsBestOverBestAmongTheModelsPicks) {
  std::vector<double> measured = {10, 8, 12, 20};
  std::vector<double> predicted = {1, 3, 2, 4};  // picks 10, then 12, then 8
  EXPECT_DOUBLE_EQ(top_k_score(predicted, measured, 1), 0.8);
  EXPECT_DOUBLE_EQ(top_k_score(predicted, measured, 2), 0.8);
  EXPECT_DOUBLE_EQ(top_k_score(predicted, measured, 3), 1.0);
}


Record measured(const std::string& spec, int64_t knob, double us, Status status = Status::kOk) {
  Record r;
  r.workload = Workload::parse(spec);
  r.target = Target::for_spec(find_spec("h100_sxm"), "13.0");
  r.schedule = {"f", {{"x", knob}}};
  r.measurement.status = status;
  if (status == Status::kOk) r.measurement.set_times({us});
  return r;
}

TEST(Evaluate, GroupsByWorkloadAndScoresThePredictor) {
  std::vector<Record> rs = {measured("matmul:m=8,n=8,k=8:f16", 1, 10), measured("matmul:m=8,n=8,k=8:f16", 2, 20),
                            measured("matmul:m=8,n=8,k=8:f16", 3, 30),
                            measured("matmul:m=8,n=8,k=8:f16", 4, 0, Status::kIncorrect),
                            measured("softmax:rows=8,cols=8:f16", 1, 5), measured("softmax:rows=8,cols=8:f16", 2, 4),
                            measured("reduce:op=sum,rows=8,cols=8:f32", 1, 1)};  // a lone record: not ranked
  // Predicts the knob: right for the matmul, reversed for the softmax.
  auto by_knob = [](std::span<const Record> g) {
    std::vector<double> p;
    for (const Record& r : g) p.push_back(double(r.schedule.get("x")));
    return p;
  };
  EvalReport e = evaluate(rs, by_knob);
  ASSERT_EQ(e.groups.size(), 2u);
  EXPECT_EQ(e.records, 5);
  EXPECT_DOUBLE_EQ(e.groups[0].spearman, 1.0);  // matmul sorts before softmax
  EXPECT_DOUBLE_EQ(e.groups[1].spearman, -1.0);
  EXPECT_DOUBLE_EQ(e.pairwise, 0.5);
  EXPECT_DOUBLE_EQ(e.groups[1].top1, 4.0 / 5.0);
  EXPECT_DOUBLE_EQ(e.top1, (10.0 + 4.0) / (10.0 + 5.0));
  EXPECT_DOUBLE_EQ(e.top5, 1.0);
  EXPECT_EQ(e.summary_line(), "pairwise=0.500 spearman=0.000 top1=0.933 top5=1.000 groups=2 records=5");
}

}  // namespace
}  // namespace tessera::costmodel
