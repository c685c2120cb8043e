// The task scheduler on synthetic tasks: each "task" is a known improvement curve, so the
// tests can tell whether trials went where they buy the most weighted time.
#include "search/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tessera::search {
namespace {

// Best time after t trials: from `start` towards `limit`, e-folding every `tau` trials.
struct Curve {
  double start, limit, tau;
  double at(int t) const { return limit + (start - limit) * std::exp(-double(t) / tau); }
};

// Runs a job of `total` trials in batches of `batch`; returns sum weight * best.
double simulate(std::vector<TaskInfo> infos, const std::vector<Curve>& curves, SchedulerKind kind, int total,
                int batch, std::vector<int>* trials = nullptr) {
  SchedulerOptions o;
  o.kind = kind;
  o.epsilon = 0;
  TaskScheduler s(infos, o);
  std::vector<int> t(curves.size(), 0);
  for (int spent = 0; spent < total;) {
    std::optional<size_t> i = s.next();
    if (!i) break;
    t[*i] += batch;
    spent += batch;
    s.update(*i, batch, curves[*i].at(t[*i]));
  }
  if (trials) *trials = t;
  double sum = 0;
  for (size_t i = 0; i < curves.size(); ++i) sum += infos[i].weight * curves[i].at(t[i]);
  return sum;
}

TEST(TaskSchedulerTest, WarmUpGivesEveryLiveTaskOneBatchInOrder) {
  TaskScheduler s({{1, 0, "a"}, {1, 0, "a"}, {1, 0, "a"}});
  s.finish(1);
  EXPECT_EQ(s.next(), 0u);
  s.update(0, 4, 10.0);
  EXPECT_EQ(s.next(), 2u);
  s.update(2, 4, 10.0);
  EXPECT_EQ(s.batches(0), 1);
  EXPECT_EQ(s.batches(1), 0);
  s.finish(0);
  s.finish(2);
  EXPECT_EQ(s.next(), std::nullopt);
}

TEST(TaskSchedulerTest, GradientBeatsRoundRobinWhenOneTaskDominatesTheModel) {
  // Task 0 occurs 40 times and keeps improving; the others are light and converge early.
  std::vector<TaskInfo> infos = {{40, 0, "gemm"}, {1, 0, "gemm"}, {1, 0, "gemm"}, {1, 0, "gemm"}};
  std::vector<Curve> curves = {{100, 20, 60}, {100, 80, 8}, {50, 45, 8}, {80, 70, 8}};
  std::vector<int> grad_trials, rr_trials;
  double gradient = simulate(infos, curves, SchedulerKind::kGradient, 160, 4, &grad_trials);
  double round_robin = simulate(infos, curves, SchedulerKind::kRoundRobin, 160, 4, &rr_trials);
  EXPECT_LT(gradient, 0.9 * round_robin);
  EXPECT_GT(grad_trials[0], rr_trials[0]);
  for (int t : grad_trials) EXPECT_GE(t, 4);  // the warm-up batch
  EXPECT_EQ(rr_trials, (std::vector<int>{40, 40, 40, 40}));
}

TEST(TaskSchedulerTest, EqualTasksShareTheBudget) {
  std::vector<TaskInfo> infos(3, TaskInfo{1, 0, "g"});
  std::vector<Curve> curves(3, Curve{100, 10, 30});
  std::vector<int> trials;
  simulate(infos, curves, SchedulerKind::kGradient, 120, 4, &trials);
  for (int t : trials) EXPECT_NEAR(t, 40, 8);
}

TEST(TaskSchedulerTest, AConvergedTaskRestsUntilEveryTaskDoes) {
  SchedulerOptions o;
  o.epsilon = 0;
  o.patience = 2;
  // Task 0 is heavy but stops improving; task 1 is light and keeps improving.
  TaskScheduler s({{10, 0, "g"}, {1, 0, "g"}}, o);
  ASSERT_EQ(s.next(), 0u);
  s.update(0, 4, 100.0);
  ASSERT_EQ(s.next(), 1u);
  s.update(1, 4, 100.0);
  // Heavy task: two batches without improvement.
  EXPECT_EQ(s.next(), 0u);
  s.update(0, 4, 100.0);
  EXPECT_EQ(s.next(), 0u);
  s.update(0, 4, 100.0);
  EXPECT_TRUE(s.resting(0));
  double light = 100;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(s.next(), 1u) << "batch " << i;
    light *= 0.8;
    s.update(1, 4, light);
  }
  // An improvement wakes the heavy task.
  s.update(0, 4, 90.0);
  EXPECT_FALSE(s.resting(0));
  EXPECT_EQ(s.next(), 0u);
}

TEST(TaskSchedulerTest, ATaskFarBehindASimilarPeerGetsTheBatch) {
  SchedulerOptions o;
  o.epsilon = 0;
  o.patience = 0;
  // Same weight, floor and time; task 1 has a peer in its group (task 2) at the floor.
  TaskScheduler s({{1, 10, "a"}, {1, 10, "b"}, {1, 10, "b"}}, o);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(s.next(), i);
    s.update(i, 4, i == 2 ? 10.0 : 100.0);
  }
  EXPECT_LT(s.gradient(1), s.gradient(0));
  EXPECT_EQ(s.next(), 1u);
}

TEST(TaskSchedulerTest, ATaskWithoutACorrectResultGoesFirstThenIsGivenUp) {
  SchedulerOptions o;
  o.epsilon = 0;
  o.max_failing_batches = 2;
  TaskScheduler s({{1, 0, "g"}, {100, 0, "g"}}, o);
  ASSERT_EQ(s.next(), 0u);
  s.update(0, 4, std::nullopt);
  ASSERT_EQ(s.next(), 1u);
  s.update(1, 4, 50.0);
  EXPECT_EQ(s.gradient(0), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.next(), 0u);  // despite the other's weight
  s.update(0, 4, std::nullopt);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.next(), 1u);
    s.update(1, 4, 50.0 - i);
  }
  EXPECT_FALSE(s.all_have_results());
  EXPECT_EQ(s.weighted_best_us(), 100 * 48.0);
  s.finish(1);
  EXPECT_EQ(s.next(), std::nullopt);
}

TEST(TaskSchedulerTest, PrimedResultsSetTheStartingPoint) {
  SchedulerOptions o;
  o.epsilon = 0;
  TaskScheduler s({{1, 0, "g"}, {1, 0, "g"}}, o);
  s.prime(0, 100, 10.0);  // already tuned at length
  EXPECT_FALSE(s.all_have_results());
  ASSERT_EQ(s.next(), 0u);  // the warm-up still visits it
  s.update(0, 4, 10.0);
  ASSERT_EQ(s.next(), 1u);
  s.update(1, 4, 10.0);
  // Same best, but task 0's 104 trials make its optimistic estimate small.
  EXPECT_LT(s.gradient(1), s.gradient(0));
  EXPECT_EQ(s.next(), 1u);
}

}  // namespace
}  // namespace tessera::search
