#include "search/tuner.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "core/clock.h"
#include "core/hash.h"
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

std::vector<WorkloadOutcome> Tuner::run(const std::vector<std::pair<Workload, double>>& workloads) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<WorkloadOutcome> out;
  for (size_t wi = 0; wi < workloads.size(); ++wi) {
    const Workload& w = workloads[wi].first;
    WorkloadOutcome o;
    o.workload = w;
    o.weight = workloads[wi].second;
    TuneProgress progress{wi, workloads.size(), w.key(), 0, 0, std::nullopt, seconds_since(start)};

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
        r.tool_version = options_.tool_version;
        r.timestamp_s = now_s();
        if (runner_ && r.measurement.status != Status::kOk) ++o.failed;
        if (r.measurement.status == Status::kOk &&
            (!progress.best_us || r.measurement.median_us < *progress.best_us))
          progress.best_us = r.measurement.median_us;
        records.push_back(std::move(r));
      }
      db_.commit(records);
      o.measured += static_cast<int>(batch.size());
      progress.done = o.measured;
      progress.elapsed_s = seconds_since(start);
      if (on_progress) on_progress(progress);
    }
    o.measure_s = seconds_since(t1);
    db::BestResult best = db_.best(w, target_, 1);
    if (!best.records.empty()) o.best = best.records.front().record;
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace tessera::search
