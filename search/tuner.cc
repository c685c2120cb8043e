#include "search/tuner.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "core/clock.h"
#include "core/hash.h"
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

std::vector<Record> Tuner::measure_batch(const Workload& w, std::span<const Candidate> batch, WorkloadOutcome& o,
                                         TuneProgress& progress, std::chrono::steady_clock::time_point start) {
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
    r.workload = w;
    r.target = target_;
    r.schedule = batch[i].schedule;
    r.measurement = std::move(ms[i]);
    r.predicted_us = batch[i].predicted_us;
    r.feature_version = learned_ ? costmodel::kFeatureVersion : 0;
    r.tool_version = options_.tool_version;
    r.timestamp_s = now_s();
    if (runner_ && r.measurement.status != Status::kOk) ++o.failed;
    if (r.measurement.status == Status::kOk && (!progress.best_us || r.measurement.median_us < *progress.best_us))
      progress.best_us = r.measurement.median_us;
    records.push_back(std::move(r));
  }
  db_.commit(records);
  o.measured += static_cast<int>(batch.size());
  progress.done = o.measured;
  progress.elapsed_s = seconds_since(start);
  return records;
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

WorkloadOutcome Tuner::evolve(const Workload& w, TuneProgress& progress, std::chrono::steady_clock::time_point start) {
  WorkloadOutcome o;
  o.workload = w;
  auto t0 = std::chrono::steady_clock::now();
  EvolveOptions eo;
  eo.seed = options_.seed;
  eo.epsilon = options_.epsilon;
  Evolution evolution(w, families_, spec_, guide(), eo);
  if (allowed) {
    std::vector<Schedule> schedules = allowed(w);
    evolution.restrict_to(schedules);
    o.ranked = static_cast<int>(schedules.size());
  }
  db::RecordFilter f;
  f.workload_key = w.key();
  f.target_fingerprint = target_.fingerprint();
  for (const db::StoredRecord& r : db_.query(f)) {
    if (runner_ && r.record.measurement.status == Status::kUnmeasured) continue;
    evolution.observe(r.record.schedule, r.record.measurement);
    ++o.already;
  }
  o.construct_s = seconds_since(t0);
  const int limit = options_.trials > 0 ? options_.trials : 64;
  progress.planned = limit;
  if (on_progress) on_progress(progress);
  auto t1 = std::chrono::steady_clock::now();
  while (o.measured < limit) {
    if (should_stop && should_stop()) break;
    if (options_.time_limit_s > 0 && seconds_since(start) > options_.time_limit_s) break;
    std::vector<Candidate> batch = evolution.propose(std::min(std::max(1, options_.batch), limit - o.measured));
    if (batch.empty()) break;
    if (!o.predicted_best) o.predicted_best = batch.front();
    std::vector<Record> records = measure_batch(w, batch, o, progress, start);
    for (const Record& r : records) evolution.observe(r.schedule, r.measurement);
    if (runner_ && learned_->learn(records)) ++retrained_;
    if (on_progress) on_progress(progress);
  }
  o.measure_s = seconds_since(t1);
  return o;
}

std::vector<WorkloadOutcome> Tuner::run(const std::vector<std::pair<Workload, double>>& workloads) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<WorkloadOutcome> out;
  for (size_t wi = 0; wi < workloads.size(); ++wi) {
    const Workload& w = workloads[wi].first;
    WorkloadOutcome o;
    o.workload = w;
    o.weight = workloads[wi].second;
    TuneProgress progress{wi, workloads.size(), w.key(), 0, 0, std::nullopt, seconds_since(start)};
    if (options_.strategy == Strategy::kEvolve) {
      WorkloadOutcome evolved = evolve(w, progress, start);
      evolved.weight = workloads[wi].second;
      db::BestResult best = db_.best(w, target_, 1);
      if (!best.records.empty()) evolved.best = best.records.front().record;
      out.push_back(std::move(evolved));
      continue;
    }

    // Candidates, best predicted first.
    auto t0 = std::chrono::steady_clock::now();
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

    // Resume: what this target already has for the workload.
    db::RecordFilter f;
    f.workload_key = w.key();
    f.target_fingerprint = target_.fingerprint();
    std::set<std::string> done_keys;
    for (const db::StoredRecord& r : db_.query(f)) {
      bool unmeasured = r.record.measurement.status == Status::kUnmeasured;
      // A prediction does not stand in for a measurement; a measurement ends the schedule.
      if (!runner_ || !unmeasured) done_keys.insert(r.record.schedule.key());
    }
    std::vector<Candidate> todo;
    int limit = options_.trials > 0 ? options_.trials
                : options_.strategy == Strategy::kConstruct ? options_.top_k
                                                            : static_cast<int>(ranked.size());
    for (Candidate& c : ranked) {
      if (static_cast<int>(todo.size()) >= limit) break;
      if (done_keys.count(c.schedule.key())) {
        ++o.already;
        continue;
      }
      todo.push_back(std::move(c));
    }
    progress.planned = static_cast<int>(todo.size());
    if (on_progress) on_progress(progress);

    // Measure (or record the predictions) in committed batches.
    auto t1 = std::chrono::steady_clock::now();
    for (size_t b = 0; b < todo.size(); b += static_cast<size_t>(std::max(1, options_.batch))) {
      if (should_stop && should_stop()) break;
      if (options_.time_limit_s > 0 && seconds_since(start) > options_.time_limit_s) break;
      std::span<const Candidate> batch(todo.data() + b, std::min(todo.size() - b, size_t(std::max(1, options_.batch))));
      measure_batch(w, batch, o, progress, start);
      if (on_progress) on_progress(progress);
    }
    o.measure_s = seconds_since(t1);
    db::BestResult best = db_.best(w, target_, 1);
    if (!best.records.empty()) o.best = best.records.front().record;
    out.push_back(std::move(o));
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
