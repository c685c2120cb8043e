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

// Options without random exploration, so every choice is the scheduler's own.
SchedulerOptions deterministic() {
  SchedulerOptions o;
  o.epsilon = 0;
  return o;
}

// Expects `task` to get the next batch, then reports that batch: 4 trials, best so far `best`.
void expect_batch(TaskScheduler& s, size_t task, std::optional<double> best) {
  EXPECT_EQ(s.next(), task);
  s.update(task, 4, best);
}

// Runs a job of `total` trials in batches of `batch`; returns sum weight * best.
double simulate(std::vector<TaskInfo> infos, const std::vector<Curve>& curves, SchedulerKind kind, int total,
                int batch, std::vector<int>* trials = nullptr) {
  SchedulerOptions o = deterministic();
  o.kind = kind;
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
  expect_batch(s, 0, 10.0);
  expect_batch(s, 2, 10.0);
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
  SchedulerOptions o = deterministic();
  o.patience = 2;
  // Task 0 is heavy but stops improving; task 1 is light and keeps improving.
  TaskScheduler s({{10, 0, "g"}, {1, 0, "g"}}, o);
  expect_batch(s, 0, 100.0);
  expect_batch(s, 1, 100.0);
  // Heavy task: two batches without improvement.
  expect_batch(s, 0, 100.0);
  expect_batch(s, 0, 100.0);
  EXPECT_TRUE(s.resting(0));
  double light = 100;
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE("batch " + std::to_string(i));
    light *= 0.8;
    expect_batch(s, 1, light);
  }
  // An improvement wakes the heavy task.
  s.update(0, 4, 90.0);
  EXPECT_FALSE(s.resting(0));
  EXPECT_EQ(s.next(), 0u);
}

TEST(TaskSchedulerTest, ATaskFarBehindASimilarPeerGetsTheBatch) {
  SchedulerOptions o = deterministic();
  o.patience = 0;
  // Same weight, floor and time; task 1 has a peer in its group (task 2) at the floor.
  TaskScheduler s({{1, 10, "a"}, {1, 10, "b"}, {1, 10, "b"}}, o);
  for (size_t i = 0; i < 3; ++i) expect_batch(s, i, i == 2 ? 10.0 : 100.0);
  EXPECT_LT(s.gradient(1), s.gradient(0));
  EXPECT_EQ(s.next(), 1u);
}

TEST(TaskSchedulerTest, ATaskWithoutACorrectResultGoesFirstThenIsGivenUp) {
  SchedulerOptions o = deterministic();
  o.max_failing_batches = 2;
  TaskScheduler s({{1, 0, "g"}, {100, 0, "g"}}, o);
  expect_batch(s, 0, std::nullopt);
  expect_batch(s, 1, 50.0);
  EXPECT_EQ(s.gradient(0), -std::numeric_limits<double>::infinity());
  expect_batch(s, 0, std::nullopt);  // despite the other's weight
  for (int i = 0; i < 3; ++i) expect_batch(s, 1, 50.0 - i);
  EXPECT_FALSE(s.all_have_results());
  EXPECT_EQ(s.weighted_best_us(), 100 * 48.0);
  s.finish(1);
  EXPECT_EQ(s.next(), std::nullopt);
}

TEST(TaskSchedulerTest, PrimedResultsSetTheStartingPoint) {
  TaskScheduler s({{1, 0, "g"}, {1, 0, "g"}}, deterministic());
  s.prime(0, 100, 10.0);  // already tuned at length
  EXPECT_FALSE(s.all_have_results());
  expect_batch(s, 0, 10.0);  // the warm-up still visits it
  expect_batch(s, 1, 10.0);
  // Same best, but task 0's 104 trials make its optimistic estimate small.
  EXPECT_LT(s.gradient(1), s.gradient(0));
  EXPECT_EQ(s.next(), 1u);
}

}  // namespace
}  // namespace tessera::search
