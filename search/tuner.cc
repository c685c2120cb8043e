#include "search/tuner.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <random>
#include <set>

#include "core/clock.h"
#include "core/hash.h"
#include "costmodel/roofline.h"
#include "search/evolve.h"
#include "search/learned_models.h"
#include "search/tile.h"

namespace tessera::search {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Tuner::Tuner(const kernels::FamilyRegistry& families, HardwareSpec spec, Target target, db::TuningDatabase& db,
             measure::Runner* runner, TuneOptions options)
    : families_(families),
      spec_(spec),
      target_(std::move(target)),
      db_(db),
      runner_(runner),
      options_(std::move(options)),
      model_(families, std::move(spec)) {}

// One workload's search (its SearchStrategy), what it has measured, and where its progress
// display stands.
struct Tuner::Task {
  WorkloadOutcome o;
  TuneProgress progress;
  int limit = 0;                    ///< measurements at most in this run (its budget less what is held)
  int proposed = 0;                 ///< candidates proposed so far (measured, or in flight)
  std::unique_ptr<SearchStrategy> strategy;
  std::optional<double> best_us;    ///< best correct time, from the database and this job
  bool exhausted = false;
};

// A batch proposed and handed to the runner, not yet committed.
struct Tuner::Flight {
  Task* task = nullptr;
  std::vector<Candidate> batch;
  measure::Runner::Ticket ticket = 0;
};

bool Tuner::out_of_time() const {
  return (should_stop && should_stop()) || (options_.time_limit_s > 0 && seconds_since(start_) > options_.time_limit_s);
}

// The combined model that guides evolution: the database's stored one for this target if
// there is one, else trained on the target's records there (the analytic model until enough
// exist); it keeps learning from every batch.
costmodel::LearnedModel& Tuner::guide() {
  if (learned_) return *learned_;
  costmodel::LearnedOptions lo;
  lo.retrain_every = options_.retrain_every;
  db::RecordFilter f;
  f.target_fingerprint = target_.fingerprint();
  f.status = Status::kOk;
  std::vector<Record> known;
  for (db::StoredRecord& r : db_.query(f)) known.push_back(std::move(r.record));
  if (auto stored = load_learned_model(db_, families_, spec_, lo.kind(), target_)) {
    learned_ = std::make_unique<costmodel::LearnedModel>(std::move(*stored));
    learned_->remember(known);
  } else {
    learned_ = std::make_unique<costmodel::LearnedModel>(families_, spec_, lo);
    learned_->remember(known);
    learned_->learn({});
  }
  return *learned_;
}

// The workload's search strategy, from what this target already has for the workload.
void Tuner::prepare(Task& task) {
  const Workload& w = task.o.workload;
  WorkloadOutcome& o = task.o;
  auto t0 = std::chrono::steady_clock::now();
  db::RecordFilter f;
  f.workload_key = w.key();
  f.target_fingerprint = target_.fingerprint();
  std::vector<db::StoredRecord> known = db_.query(f);
  for (const db::StoredRecord& r : known)
    if (r.record.measurement.status == Status::kOk &&
        (!task.best_us || r.record.measurement.median_us < *task.best_us))
      task.best_us = r.record.measurement.median_us;
  task.progress.best_us = task.best_us;

  StrategyContext context(families_, spec_, model_);
  context.strategy = options_.strategy;
  context.top_k = options_.top_k;
  context.trials = options_.trials;
  context.total_trials = options_.total_trials;
  context.seed = options_.seed;
  context.epsilon = options_.epsilon;
  context.measuring = runner_ != nullptr;
  context.guide = [this]() -> costmodel::LearnedModel& { return guide(); };
  context.allowed = allowed;
  task.strategy = make_strategy(context, w, known);
  o.ranked = task.strategy->ranked();
  o.already = task.strategy->already();
  o.predicted_best = task.strategy->predicted_best();
  task.limit = task.strategy->limit();
  o.construct_s = seconds_since(t0);
}

// Proposes up to `n` more candidates of the task and hands them to the runner; nullopt when
// its search has nothing left.
std::optional<Tuner::Flight> Tuner::launch(Task& task, int n) {
  WorkloadOutcome& o = task.o;
  n = std::min(n, task.limit - task.proposed);
  std::vector<Candidate> batch;
  if (n > 0) batch = task.strategy->propose(n);
  if (!o.predicted_best && !batch.empty()) o.predicted_best = batch.front();
  if (batch.empty()) {
    task.exhausted = true;
    return std::nullopt;
  }
  task.proposed += static_cast<int>(batch.size());
  auto t0 = std::chrono::steady_clock::now();
  Flight flight{&task, std::move(batch), 0};
  if (runner_) flight.ticket = runner_->submit(flight.batch);
  o.measure_s += seconds_since(t0);
  return flight;
}

// Waits for the flight's measurements (or records the predictions) and commits them as one batch.
void Tuner::land(Flight& flight) {
  Task& task = *flight.task;
  WorkloadOutcome& o = task.o;
  const std::vector<Candidate>& batch = flight.batch;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Measurement> ms;
  if (runner_) {
    ms = runner_->wait(flight.ticket);
  } else {
    ms.resize(batch.size());
    for (Measurement& m : ms) {
      m.status = Status::kUnmeasured;
      m.error = "model only: not measured on a GPU";
    }
  }
  std::vector<Record> records;
  for (size_t i = 0; i < batch.size(); ++i) {
    Record r;
    r.workload = o.workload;
    r.target = target_;
    r.schedule = batch[i].schedule;
    r.measurement = std::move(ms[i]);
    r.predicted_us = batch[i].predicted_us;
    r.feature_version = learned_ ? costmodel::kFeatureVersion : 0;
    r.tool_version = options_.tool_version;
    r.timestamp_s = now_s();
    if (runner_ && r.measurement.status != Status::kOk) ++o.failed;
    if (r.measurement.status == Status::kOk && (!task.best_us || r.measurement.median_us < *task.best_us))
      task.best_us = r.measurement.median_us;
    records.push_back(std::move(r));
  }
  db_.commit(records);
  o.measured += static_cast<int>(batch.size());
  std::vector<Measurement> measured;
  for (const Record& r : records) measured.push_back(r.measurement);
  task.strategy->observe(batch, measured);
  // Evolution's guide keeps learning from what the job measures.
  if (options_.strategy == Strategy::kEvolve && runner_ && learned_->learn(records)) ++retrained_;
  if (o.measured >= task.limit) task.exhausted = true;
  o.measure_s += seconds_since(t0);
  task.progress.done = o.measured;
  task.progress.best_us = task.best_us;
}

// Measures (or records the predictions of) up to `n` more candidates of the task as one
// committed batch; returns how many, 0 when its search has nothing left.
int Tuner::step(Task& task, int n) {
  std::optional<Flight> flight = launch(task, n);
  if (!flight) return 0;
  land(*flight);
  return static_cast<int>(flight->batch.size());
}

void Tuner::report(Task& task) {
  if (!on_progress) return;
  task.progress.elapsed_s = seconds_since(start_);
  on_progress(task.progress);
}

// One workload after another, each to its own budget. With an asynchronous runner, a second
// batch is proposed and submitted while one is measured, when its proposal cannot depend on that
// one's results: a list strategy's candidates were fixed when its workload was prepared, from
// what the database holds of that workload alone. Evolution proposes from every result, and the
// guide it shares with the next workload learns from them, so it waits for each batch. Batches
// land (are committed, observed, reported) in the order they were proposed, each workload's
// first report after the last of the one before: the records and the progress are those of one
// batch at a time.
void Tuner::run_in_turn(std::vector<Task>& tasks, int batch) {
  const bool overlap = runner_ && runner_->asynchronous() && options_.strategy != Strategy::kEvolve;
  const size_t depth = overlap ? 2 : 1;
  std::deque<Flight> flights;
  size_t next = 0;       // the task that proposes next
  size_t prepared = 0;   // tasks [0, prepared) are prepared
  size_t announced = 0;  // and [0, announced) have had their first report
  auto announce_through = [&](size_t k) {
    for (; announced <= k && announced < prepared; ++announced) report(tasks[announced]);
  };
  // A repeated workload is prepared from what the database holds once its earlier batches are in.
  auto waits_for_flights = [&](const Task& task) {
    return std::any_of(flights.begin(), flights.end(),
                       [&](const Flight& f) { return f.task->o.workload.key() == task.o.workload.key(); });
  };
  for (;;) {
    while (next < tasks.size() && flights.size() < depth) {
      Task& task = tasks[next];
      if (next == prepared) {
        if (waits_for_flights(task)) break;
        prepare(task);
        task.progress.planned = task.limit;
        ++prepared;
        if (flights.empty()) announce_through(next);
      }
      std::optional<Flight> flight;
      if (!task.exhausted && task.proposed < task.limit && !out_of_time()) flight = launch(task, batch);
      if (!flight) {
        ++next;
        continue;
      }
      flights.push_back(std::move(*flight));
    }
    if (flights.empty()) break;
    Flight flight = std::move(flights.front());
    flights.pop_front();
    announce_through(static_cast<size_t>(flight.task - tasks.data()));
    land(flight);
    report(*flight.task);
  }
  if (!tasks.empty()) announce_through(tasks.size() - 1);
}

// One job budget: every workload is prepared, then the scheduler hands out the batches.
void Tuner::run_scheduled(std::vector<Task>& tasks, int batch) {
  std::vector<TaskInfo> infos;
  for (Task& task : tasks) {
    prepare(task);
    costmodel::RooflineFloor floor = costmodel::roofline_floor(task.o.workload, spec_);
    // Similar tasks: the same operator, dtype and bound (a memory-bound 1x1 convolution is no
    // yardstick for a compute-bound 3x3 one).
    const Workload& w = task.o.workload;
    std::string group = std::string(op_kind_name(w.kind)) + "/" + std::string(dtype_name(w.dtype)) +
                        (floor.memory_bound() ? "/memory" : "/compute");
    infos.push_back({task.o.weight, floor.floor_us, group});
    task.progress.planned = task.limit;
  }
  SchedulerOptions so = options_.scheduler;
  so.seed ^= options_.seed;
  TaskScheduler scheduler(std::move(infos), so);
  for (size_t i = 0; i < tasks.size(); ++i) {
    scheduler.prime(i, tasks[i].o.already, tasks[i].best_us);
    if (tasks[i].limit <= 0) scheduler.finish(i);
  }
  // The records the job's workloads hold count as spent, each workload's up to its own
  // cap: a rerun of a finished job measures nothing, a resumed one only the remainder.
  int64_t held = 0;
  for (const Task& task : tasks) held += std::min(task.o.already, task.strategy->cap());
  int spent = static_cast<int>(std::min<int64_t>(held, options_.total_trials));
  while (spent < options_.total_trials && !out_of_time()) {
    std::optional<size_t> pick = scheduler.next();
    if (!pick) break;
    Task& task = tasks[*pick];
    int done = step(task, std::min(batch, options_.total_trials - spent));
    spent += done;
    if (done > 0) {
      scheduler.update(*pick, done, task.best_us);
      task.progress.job_done = spent;
      task.progress.job_planned = options_.total_trials;
      report(task);
    }
    if (task.exhausted) scheduler.finish(*pick);
  }
}

std::vector<WorkloadOutcome> Tuner::run(const std::vector<std::pair<Workload, double>>& workloads) {
  start_ = std::chrono::steady_clock::now();
  std::vector<Task> tasks(workloads.size());
  for (size_t i = 0; i < workloads.size(); ++i) {
    tasks[i].o.workload = workloads[i].first;
    tasks[i].o.weight = workloads[i].second;
    tasks[i].progress.workload = i;
    tasks[i].progress.workloads = workloads.size();
    tasks[i].progress.key = workloads[i].first.key();
  }
  const int batch = std::max(1, options_.batch);
  if (options_.total_trials <= 0)
    run_in_turn(tasks, batch);
  else
    run_scheduled(tasks, batch);

  std::vector<WorkloadOutcome> out;
  for (Task& task : tasks) {
    db::BestResult best = db_.best(task.o.workload, target_, 1);
    if (!best.records.empty()) task.o.best = best.records.front().record;
    out.push_back(std::move(task.o));
  }
  if (learned_ && retrained_ > 0 && learned_->trained()) {
    store_learned_model(db_, *learned_, target_, Json{{"records", learned_->trained_records()}, {"online", true}},
                        options_.tool_version);
  }
  return out;
}

}  // namespace tessera::search
