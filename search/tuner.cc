#include "search/tuner.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "core/clock.h"
#include "core/hash.h"
#include "costmodel/roofline.h"
#include "search/evolve.h"
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

// One workload's search: its candidate list (construct, exhaustive, random) or its
// evolution, what it has measured, and where its progress display stands.
struct Tuner::Task {
  WorkloadOutcome o;
  TuneProgress progress;
  int cap = 0;                      ///< the workload's budget, held records included
  int limit = 0;                    ///< measurements at most in this run (cap less what is held)
  std::vector<Candidate> todo;      ///< list strategies: what is left to measure, in order
  size_t cursor = 0;
  std::unique_ptr<Evolution> evolution;
  std::optional<double> best_us;    ///< best correct time, from the database and this job
  bool exhausted = false;
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
  if (auto stored = db_.latest_model(lo.kind(), target_.fingerprint(), costmodel::kFeatureVersion)) {
    learned_ = std::make_unique<costmodel::LearnedModel>(
        costmodel::LearnedModel::deserialize(families_, spec_, stored->kind, stored->blob));
    learned_->remember(known);
  } else {
    learned_ = std::make_unique<costmodel::LearnedModel>(families_, spec_, lo);
    learned_->remember(known);
    learned_->learn({});
  }
  return *learned_;
}

// Candidates, best predicted first, less what this target already has for the workload.
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

  if (options_.strategy == Strategy::kEvolve) {
    EvolveOptions eo;
    eo.seed = options_.seed;
    eo.epsilon = options_.epsilon;
    task.evolution = std::make_unique<Evolution>(w, families_, spec_, guide(), eo);
    if (allowed) {
      std::vector<Schedule> schedules = allowed(w);
      task.evolution->restrict_to(schedules);
      o.ranked = static_cast<int>(schedules.size());
    }
    // Evolution has no fixed candidate list to resume along: what it proposes depends on
    // everything measured, so every schedule the database holds for the workload and target
    // is a trial spent. A rerun of a finished job then measures nothing, a killed one only
    // the remainder.
    std::set<std::string> held;
    for (const db::StoredRecord& r : known) {
      if (runner_ && r.record.measurement.status == Status::kUnmeasured) continue;
      task.evolution->observe(r.record.schedule, r.record.measurement);
      held.insert(r.record.schedule.key());
    }
    o.already = static_cast<int>(held.size());
    // Without a cap of its own, a workload may take the whole job budget if the scheduler says so.
    task.cap = options_.trials > 0 ? options_.trials : options_.total_trials > 0 ? options_.total_trials : 64;
    task.limit = std::max(0, task.cap - o.already);
    o.construct_s = seconds_since(t0);
    return;
  }

  std::vector<Candidate> ranked;
  if (options_.strategy == Strategy::kConstruct) {
    ConstructOptions co;
    co.top_k = options_.top_k;
    Construction c = construct(w, families_, spec_, model_, co);
    o.ranked = static_cast<int>(c.ranked);
    ranked = std::move(c.candidates);
  } else {
    // The whole valid space; with a trial budget below its size, an evenly spaced sample
    // of it in enumeration order (not the model's favourites: this is the yardstick).
    ranked = rank_all(w, families_, spec_, model_, /*sorted=*/false);
    o.ranked = static_cast<int>(ranked.size());
    if (options_.trials > 0 && ranked.size() > static_cast<size_t>(options_.trials)) {
      std::vector<Candidate> sample;
      if (options_.strategy == Strategy::kRandom) {
        // Partial Fisher-Yates: the first `trials` of a seeded shuffle.
        std::mt19937_64 rng(options_.seed ^ stable_hash(w.key()));
        for (size_t i = 0; i < static_cast<size_t>(options_.trials); ++i) {
          size_t j = i + static_cast<size_t>(rng() % (ranked.size() - i));
          std::swap(ranked[i], ranked[j]);
          sample.push_back(ranked[i]);
        }
      } else {
        for (int i = 0; i < options_.trials; ++i)
          sample.push_back(ranked[static_cast<size_t>(double(i) * double(ranked.size()) / double(options_.trials))]);
      }
      ranked = std::move(sample);
    }
    std::stable_sort(ranked.begin(), ranked.end(),
                     [](const Candidate& a, const Candidate& b) { return *a.predicted_us < *b.predicted_us; });
  }
  o.construct_s = seconds_since(t0);
  if (!ranked.empty()) o.predicted_best = ranked.front();

  std::set<std::string> done_keys;
  for (const db::StoredRecord& r : known) {
    bool unmeasured = r.record.measurement.status == Status::kUnmeasured;
    // A prediction does not stand in for a measurement; a measurement ends the schedule.
    if (!runner_ || !unmeasured) done_keys.insert(r.record.schedule.key());
  }
  task.cap = options_.trials > 0                         ? options_.trials
             : options_.strategy == Strategy::kConstruct ? options_.top_k
                                                         : static_cast<int>(ranked.size());
  // The held candidates count against the cap: with --trials below construction's top-k, a
  // rerun would otherwise go on down the list and measure `trials` more each time.
  for (Candidate& c : ranked) {
    if (static_cast<int>(task.todo.size()) + o.already >= task.cap) break;
    if (done_keys.count(c.schedule.key())) {
      ++o.already;
      continue;
    }
    task.todo.push_back(std::move(c));
  }
  task.limit = static_cast<int>(task.todo.size());
}

// Measures (or records the predictions of) up to `n` more candidates of the task as one
// committed batch; returns how many, 0 when its search has nothing left.
int Tuner::step(Task& task, int n) {
  WorkloadOutcome& o = task.o;
  n = std::min(n, task.limit - o.measured);
  std::vector<Candidate> batch;
  if (n > 0 && task.evolution) {
    batch = task.evolution->propose(n);
    if (!o.predicted_best && !batch.empty()) o.predicted_best = batch.front();
  } else if (n > 0) {
    size_t end = std::min(task.todo.size(), task.cursor + static_cast<size_t>(n));
    auto first = task.todo.begin();
    batch.assign(first + static_cast<std::ptrdiff_t>(task.cursor), first + static_cast<std::ptrdiff_t>(end));
    task.cursor = end;
  }
  if (batch.empty()) {
    task.exhausted = true;
    return 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Measurement> ms;
  if (runner_) {
    ms = runner_->run(batch);
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
  if (task.evolution) {
    for (const Record& r : records) task.evolution->observe(r.schedule, r.measurement);
    if (runner_ && learned_->learn(records)) ++retrained_;
  }
  if (o.measured >= task.limit) task.exhausted = true;
  o.measure_s += seconds_since(t0);
  task.progress.done = o.measured;
  task.progress.best_us = task.best_us;
  return static_cast<int>(batch.size());
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
  auto report = [&](Task& task) {
    if (!on_progress) return;
    task.progress.elapsed_s = seconds_since(start_);
    on_progress(task.progress);
  };

  if (options_.total_trials <= 0) {
    // One workload after another, each to its own budget.
    for (Task& task : tasks) {
      prepare(task);
      task.progress.planned = task.limit;
      report(task);
      while (!task.exhausted && !out_of_time()) {
        if (step(task, batch) == 0) break;
        report(task);
      }
    }
  } else {
    // One job budget: every workload is prepared, then the scheduler hands out the batches.
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
    for (const Task& task : tasks) held += std::min(task.o.already, task.cap);
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

  std::vector<WorkloadOutcome> out;
  for (Task& task : tasks) {
    db::BestResult best = db_.best(task.o.workload, target_, 1);
    if (!best.records.empty()) task.o.best = best.records.front().record;
    out.push_back(std::move(task.o));
  }
  if (learned_ && retrained_ > 0 && learned_->trained()) {
    db::StoredModel m;
    m.kind = learned_->options().kind();
    m.target = target_;
    m.feature_version = costmodel::kFeatureVersion;
    m.tool_version = options_.tool_version;
    m.created_s = now_s();
    m.metrics_json = Json{{"records", learned_->trained_records()}, {"online", true}}.dump();
    m.blob = learned_->serialize();
    db_.save_model(m);
  }
  return out;
}

}  // namespace tessera::search
