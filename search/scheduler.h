// Task scheduler for multi-workload tuning jobs (search/scheduler): which workload gets the
// next batch of trials, so that a shared trial budget buys the most end-to-end time.
//
// The job minimises f = sum_i w_i * g_i, where w_i is how often workload i occurs in the
// model and g_i its best measured time so far (Ansor, OSDI'20, section 6). After a warm-up
// round that gives every task one batch, each batch goes to the task with the most negative
// estimate of df/dt_i (t_i: trials spent on task i):
//
//   df/dt_i ~ w_i * ( alpha * backward_i + (1 - alpha) * forward_i )
//   backward_i = (g_i(t_i) - g_i(t_i - dt)) / dt            over the last `window` batches
//   forward_i  = min(-g_i / t_i,  beta * floor_i / e_max - g_i)
//
// where floor_i is the workload's roofline floor and e_max the best efficiency (floor / best)
// reached by a similar task (same operator kind and dtype): a task far behind its peers is
// worth more trials. With probability epsilon a random live task gets the batch instead. A
// task with no correct result yet goes first, for at most `max_failing_batches` batches; a
// task whose search is exhausted or whose per-task cap is reached leaves the schedule.
//
// One addition to Ansor: a task whose best has not improved in its last `patience` batches
// is resting. The optimistic forward term never decays to zero, so without this a heavy
// task that has converged, or one that lags behind a dissimilar peer, takes batch after
// batch (on the replay benchmark this lost to round-robin). Resting tasks get batches, in
// turn, only when every live task rests; an improvement wakes a task.
#pragma once

#include <optional>
#include <random>
#include <string>
#include <vector>

namespace tessera::search {

enum class SchedulerKind {
  kGradient,    ///< Ansor's gradient-based allocation (above)
  kRoundRobin,  ///< one batch per live task in turn (the baseline)
};

struct SchedulerOptions {
  SchedulerKind kind = SchedulerKind::kGradient;
  double alpha = 0.2;            ///< weight of the backward (observed) improvement rate
  double beta = 2.0;             ///< pessimism of the similar-task estimate
  int window = 3;                ///< batches in the backward difference
  double epsilon = 0.05;         ///< probability of a random live task
  int max_failing_batches = 3;   ///< batches a task without a correct result may take first
  int patience = 3;              ///< batches without improvement before a task rests (0: never)
  uint64_t seed = 1;
};

/// What the scheduler knows about one task before it starts.
struct TaskInfo {
  double weight = 1;        ///< occurrences in the model
  double floor_us = 0;      ///< roofline floor (0: unknown, no similarity estimate)
  std::string group;        ///< tasks of one group are "similar" (e.g. "matmul/f16/compute")
};

class TaskScheduler {
 public:
  TaskScheduler(std::vector<TaskInfo> tasks, SchedulerOptions options = {});

  /// Results the task already has (e.g. from the database) before the job starts: they set
  /// its best and count as trials, but do not replace its warm-up batch.
  void prime(size_t task, int trials, std::optional<double> best_us);
  /// The task for the next batch, or nullopt when every task is finished.
  std::optional<size_t> next();
  /// A batch of `trials` finished for `task`; `best_us` is its best correct time so far.
  void update(size_t task, int trials, std::optional<double> best_us);
  /// The task has nothing more to measure (search exhausted, cap reached, or given up).
  void finish(size_t task);

  /// sum_i weight_i * best_i over tasks with a correct result, and whether every task has one.
  double weighted_best_us() const;
  bool all_have_results() const;
  /// The current gradient estimate of a task (after warm-up; for reports and tests).
  double gradient(size_t task) const;
  /// Batches the task has had in this job.
  int batches(size_t task) const;
  /// Whether the task is resting (no improvement in its last `patience` batches).
  bool resting(size_t task) const;

 private:
  struct State {
    TaskInfo info;
    int trials = 0;                               ///< trials so far, primed ones included
    std::optional<double> best;                   ///< best correct time
    std::vector<std::pair<int, double>> history;  ///< after each batch: (trials, best or +inf)
    int failing_batches = 0;                      ///< batches without a correct result
    bool finished = false;
  };

  std::vector<State> state_;
  SchedulerOptions options_;
  std::mt19937_64 rng_;
  size_t warmup_next_ = 0;
};

}  // namespace tessera::search
