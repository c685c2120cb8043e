// The tuning job (search/tuner): the one place that wires construction, the cost model,
// measurement and the database together. The measurer never writes the database and the
// database never calls the model.
//
// Per workload: construct (or rank the whole space), drop the schedules the database
// already holds for this target (so a job resumes where it stopped), measure the rest in
// batches and commit each batch, failures too (an interrupted job loses at most the batch
// in flight). What the database holds counts against the budgets: a candidate of the list
// it already measured, and for evolve every schedule held for the workload, so a rerun of a
// finished job measures nothing. Without a runner ("--measure none") the model's ranking is
// recorded as `unmeasured` predictions.
//
// Workloads go one after another, each to its own budget; or, with a job budget
// (`total_trials`), the task scheduler (search/scheduler) hands each batch to the workload
// where it buys the most end-to-end time, weighted by occurrence.
//
// One after another, with a runner that measures batches asynchronously (an MPI job's), the
// next batch is proposed and submitted while the last one is measured whenever nothing it
// proposes can depend on that one's results (the list strategies: construct, exhaustive,
// random; not evolve, which learns from every batch), so that the ranks never wait for the
// search between batches. Batches are still committed whole and in the order they were
// proposed, and the records are those of one batch at a time.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/measurement.h"
#include "costmodel/analytic.h"
#include "costmodel/learned.h"
#include "db/database.h"
#include "kernels/kernel_family.h"
#include "measure/runner.h"
#include "search/scheduler.h"
#include "search/search_strategy.h"

namespace tessera::search {

struct TuneOptions {
  int top_k = 10;             ///< candidates construction keeps per workload
  int trials = 0;             ///< measurements per workload at most, those the database holds included
                              ///< (evolve: every schedule held for the workload and target; the list
                              ///< strategies: their candidates held) (0: top_k; exhaustive: the whole
                              ///< space; evolve: 64, or total_trials when there is one)
  double time_limit_s = 0;    ///< stop starting new batches after this long (0: no limit)
  int batch = 10;             ///< candidates per measured, committed batch
  Strategy strategy = Strategy::kConstruct;  ///< search/search_strategy.h
  uint64_t seed = 1;          ///< random, evolve: the seed (mixed with the workload's key)
  double epsilon = 0.1;       ///< evolve: share of each batch chosen at random (exploration)
  int retrain_every = 64;     ///< evolve: retrain the learned model after this many new ok records
  int total_trials = 0;       ///< job budget shared by the workloads through the scheduler, what the
                              ///< database holds counted as for `trials`, each workload's up to its cap
                              ///< (0: none)
  SchedulerOptions scheduler; ///< with total_trials: how batches are allotted
  std::string tool_version;
};

/// What the job did for one workload.
struct WorkloadOutcome {
  Workload workload;
  double weight = 1;
  int ranked = 0;                ///< valid schedules the model ranked
  int already = 0;               ///< candidates the database already held (skipped; evolve: distinct
                                 ///< schedules held for the workload), counted against the budget
  int measured = 0;              ///< candidates measured (or recorded unmeasured) now
  int failed = 0;                ///< of those, not ok (compile error, incorrect, crashed, ...)
  double construct_s = 0;        ///< construction (or ranking) time
  double measure_s = 0;          ///< build + measurement time: submitting its batches, waiting for them
                                 ///< and committing them (where batches overlap, not the time spent on
                                 ///< another workload's meanwhile: the outcomes' construct_s + measure_s
                                 ///< add up to the job's time)
  std::optional<Candidate> predicted_best;  ///< the model's first choice
  std::optional<Record> best;    ///< fastest correct record for this target, from the database
};

/// Where the job is, for progress displays.
struct TuneProgress {
  size_t workload = 0, workloads = 0;  ///< index of the current workload, count
  std::string key;                     ///< its key
  int done = 0, planned = 0;           ///< candidates finished / planned for it
  int job_done = 0, job_planned = 0;   ///< with a job budget: trials spent / the budget (else 0)
  std::optional<double> best_us;       ///< best correct time so far for it
  double elapsed_s = 0;                ///< since the job started
};

class Tuner {
 public:
  /// `runner` null: rank only, record `unmeasured` predictions for `target`.
  Tuner(const kernels::FamilyRegistry& families, HardwareSpec spec, Target target, db::TuningDatabase& db,
        measure::Runner* runner, TuneOptions options);

  std::function<void(const TuneProgress&)> on_progress;
  /// Checked between batches: true stops the job cleanly (e.g. after Ctrl-C).
  std::function<bool()> should_stop;

  /// evolve: the schedules it may propose for a workload (a replay's recorded ones); unset: any valid one.
  std::function<std::vector<Schedule>(const Workload&)> allowed;

  /// Outcomes in the order of `workloads` (weight: occurrences in the model).
  std::vector<WorkloadOutcome> run(const std::vector<std::pair<Workload, double>>& workloads);
  /// Times the learned model retrained during run() (evolve).
  int retrained() const { return retrained_; }

 private:
  struct Task;
  struct Flight;
  void prepare(Task& task);
  std::optional<Flight> launch(Task& task, int n);
  void land(Flight& flight);
  int step(Task& task, int n);
  void run_in_turn(std::vector<Task>& tasks, int batch);
  void run_scheduled(std::vector<Task>& tasks, int batch);
  void report(Task& task);
  bool out_of_time() const;
  costmodel::LearnedModel& guide();

  const kernels::FamilyRegistry& families_;
  HardwareSpec spec_;
  Target target_;
  db::TuningDatabase& db_;
  measure::Runner* runner_;
  TuneOptions options_;
  costmodel::AnalyticModel model_;
  std::unique_ptr<costmodel::LearnedModel> learned_;
  int retrained_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace tessera::search
