// The tuning job with a scripted runner (a test double standing in for the GPU runner; its
// "measurements" exist only in this test): resume, batches, failures, stop, model-only,
// batches that overlap.
#include "search/tuner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "kernels/families.h"
#include "tests/db/test_util.h"
#include "tests/kernels/families_fixture.h"

namespace tessera::search {
namespace {

// Answers each candidate with a time derived from its schedule key; a third of the schedules
// (by hash) "fail" as incorrect.
class ScriptedRunner : public measure::Runner {
 public:
  std::vector<Measurement> run(std::span<const Candidate> cs) override {
    std::vector<Measurement> out;
    for (const Candidate& c : cs) {
      ++calls;
      Measurement m;
      if (c.schedule.hash() % 3 == 0) {
        m.status = Status::kIncorrect;
        m.error = "scripted failure";
      } else {
        m.status = Status::kOk;
        double t = 100.0 + static_cast<double>(c.schedule.hash() % 1000) / 10.0;
        m.set_times({t, t, t});
        m.vendor_us = 90.0;
      }
      out.push_back(m);
    }
    return out;
  }
  int calls = 0;
};

// Batches that overlap as an MPI job's (measure::ClusterRunner) do: submit() only queues a batch,
// measured when it is waited for; it remembers how many batches were submitted and not yet waited
// for at once.
class OverlappingRunner : public ScriptedRunner {
 public:
  Ticket submit(std::span<const Candidate> cs) override {
    queued_.emplace(next_, std::vector<Candidate>(cs.begin(), cs.end()));
    most_in_flight = std::max(most_in_flight, queued_.size());
    return next_++;
  }
  std::vector<Measurement> wait(Ticket ticket) override {
    EXPECT_EQ(ticket, waited_++) << "batches are waited for in the order they were submitted";
    std::vector<Candidate> cs = std::move(queued_.at(ticket));
    queued_.erase(ticket);
    return run(cs);
  }
  bool asynchronous() const override { return true; }
  size_t most_in_flight = 0;

 private:
  std::map<Ticket, std::vector<Candidate>> queued_;
  Ticket next_ = 0, waited_ = 0;
};

// What a job left: the database's records without their timestamps, and the progress reports.
struct JobTrace {
  std::vector<std::string> records;
  std::vector<std::string> progress;
  std::vector<std::string> outcomes;
  bool operator==(const JobTrace&) const = default;
};

class TunerTest : public tessera::testing::BuiltinFamiliesTest {
 protected:
  Target target_ = db::testing::test_target();
  std::vector<std::pair<Workload, double>> workloads_ = {{Workload::parse("matmul:m=4096,n=4096,k=4096:f16"), 1},
                                                         {Workload::parse("softmax:rows=4096,cols=1024:f16"), 12}};

  JobTrace traced(const std::string& name, measure::Runner& runner, const TuneOptions& o,
                  const std::vector<std::pair<Workload, double>>& workloads, int stop_after = 0) {
    db::testing::TempDb tmp(name);
    db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
    Tuner tuner(families_, h100_, target_, database, &runner, o);
    JobTrace trace;
    int batches = 0;
    tuner.on_progress = [&](const TuneProgress& p) {
      batches += p.done > 0;
      trace.progress.push_back(p.key + " " + std::to_string(p.workload) + " " + std::to_string(p.done) + "/" +
                               std::to_string(p.planned) + " " +
                               (p.best_us ? std::to_string(*p.best_us) : "-"));
    };
    if (stop_after > 0) tuner.should_stop = [&] { return batches >= stop_after; };
    for (const WorkloadOutcome& out : tuner.run(workloads))
      trace.outcomes.push_back(out.workload.key() + " " + std::to_string(out.ranked) + " " +
                               std::to_string(out.already) + " " + std::to_string(out.measured) + " " +
                               std::to_string(out.failed) + " " +
                               (out.best ? out.best->schedule.key() : "-"));
    for (db::StoredRecord& r : database.query({})) {
      r.record.timestamp_s = 0;
      trace.records.push_back(r.record.to_json().dump());
    }
    return trace;
  }
};

TEST_F(TunerTest, ModelOnlyRecordsPredictionsOnceAndResumes) {
  db::testing::TempDb tmp("tuner_model_only");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Tuner tuner(families_, h100_, target_, database, nullptr, {});
  std::vector<WorkloadOutcome> first = tuner.run(workloads_);
  ASSERT_EQ(first.size(), 2u);
  for (const WorkloadOutcome& o : first) {
    EXPECT_EQ(o.measured, 10);
    EXPECT_EQ(o.failed, 0);
    EXPECT_FALSE(o.best.has_value());  // predictions are never "best"
    ASSERT_TRUE(o.predicted_best.has_value());
  }
  EXPECT_EQ(first[1].weight, 12);
  std::vector<db::StoredRecord> recs = database.query({});
  ASSERT_EQ(recs.size(), 20u);
  for (const db::StoredRecord& r : recs) {
    EXPECT_EQ(r.record.measurement.status, Status::kUnmeasured);
    EXPECT_TRUE(r.record.predicted_us.has_value());
  }
  std::vector<WorkloadOutcome> again = tuner.run(workloads_);
  EXPECT_EQ(again[0].already, 10);
  EXPECT_EQ(again[0].measured, 0);
  EXPECT_EQ(database.query({}).size(), 20u);
}

TEST_F(TunerTest, MeasuresCommitsFailuresAndSkipsWhatItHas) {
  db::testing::TempDb tmp("tuner_measure");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  // Predictions from an earlier model-only run do not count as measured.
  Tuner(families_, h100_, target_, database, nullptr, {}).run({workloads_[0]});
  ScriptedRunner runner;
  TuneOptions o;
  o.batch = 4;
  Tuner tuner(families_, h100_, target_, database, &runner, o);
  std::vector<TuneProgress> seen;
  tuner.on_progress = [&](const TuneProgress& p) { seen.push_back(p); };
  std::vector<WorkloadOutcome> out = tuner.run(workloads_);
  EXPECT_EQ(runner.calls, 20);
  EXPECT_EQ(out[0].measured, 10);
  EXPECT_EQ(out[0].already, 0);
  ASSERT_TRUE(out[0].best.has_value());
  EXPECT_EQ(out[0].best->measurement.status, Status::kOk);
  // The best is the fastest ok record of the batch.
  double fastest = 1e300;
  db::RecordFilter f;
  f.workload_key = workloads_[0].first.key();
  f.status = Status::kOk;
  for (const db::StoredRecord& r : database.query(f)) fastest = std::min(fastest, r.record.measurement.median_us);
  EXPECT_EQ(out[0].best->measurement.median_us, fastest);
  int failed = 0;
  f.status = Status::kIncorrect;
  failed = static_cast<int>(database.query(f).size());
  EXPECT_EQ(out[0].failed, failed);  // failures are recorded too
  // Progress: a first report, then one per batch of 4 (3 batches) for each workload.
  EXPECT_EQ(seen.size(), 2u * 4u);
  EXPECT_EQ(seen[3].done, 10);
  // Everything is measured now: a second run measures nothing.
  std::vector<WorkloadOutcome> again = tuner.run(workloads_);
  EXPECT_EQ(runner.calls, 20);
  EXPECT_EQ(again[0].already, 10);
}

TEST_F(TunerTest, StopsBetweenBatchesAndHonoursTrials) {
  db::testing::TempDb tmp("tuner_stop");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  ScriptedRunner runner;
  TuneOptions o;
  o.batch = 3;
  Tuner tuner(families_, h100_, target_, database, &runner, o);
  int batches = 0;
  tuner.on_progress = [&](const TuneProgress& p) { batches += p.done > 0; };
  tuner.should_stop = [&] { return batches >= 1; };
  tuner.run({workloads_[0]});
  EXPECT_EQ(database.query({}).size(), 3u);  // the first batch only
  TuneOptions limited;
  limited.trials = 2;
  Tuner few(families_, h100_, target_, database, &runner, limited);
  std::vector<WorkloadOutcome> out = few.run({workloads_[1]});
  EXPECT_EQ(out[0].measured, 2);
}

TEST_F(TunerTest, RandomSampleIsDistinctValidSeededAndResumes) {
  const auto& w = workloads_[0];
  auto sample = [&](uint64_t seed, int trials, const std::string& name) {
    db::testing::TempDb tmp(name);
    db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
    TuneOptions o;
    o.strategy = Strategy::kRandom;
    o.trials = trials;
    o.seed = seed;
    Tuner(families_, h100_, target_, database, nullptr, o).run({w});
    std::set<std::string> keys;
    for (const db::StoredRecord& r : database.query({})) {
      keys.insert(r.record.schedule.key());
      const kernels::KernelFamily* family = families_.find(r.record.schedule.family);
      EXPECT_TRUE(family && !family->validate(r.record.schedule, w.first, h100_).has_value()) << r.record.schedule.key();
    }
    EXPECT_EQ(database.query({}).size(), keys.size()) << "a schedule was drawn twice";
    // A second run with the same seed draws the same sample: nothing new.
    std::vector<WorkloadOutcome> again = Tuner(families_, h100_, target_, database, nullptr, o).run({w});
    EXPECT_EQ(again[0].measured, 0);
    EXPECT_EQ(again[0].already, trials);
    return keys;
  };
  std::set<std::string> a = sample(7, 40, "tuner_random_a"), b = sample(7, 40, "tuner_random_b"),
                        c = sample(8, 40, "tuner_random_c");
  EXPECT_EQ(a.size(), 40u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Not the evenly spaced sample either.
  db::testing::TempDb tmp("tuner_even");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  TuneOptions even;
  even.strategy = Strategy::kExhaustive;
  even.trials = 40;
  Tuner(families_, h100_, target_, database, nullptr, even).run({w});
  std::set<std::string> spaced;
  for (const db::StoredRecord& r : database.query({})) spaced.insert(r.record.schedule.key());
  EXPECT_NE(a, spaced);
}

TEST_F(TunerTest, AJobBudgetIsSharedByTheWorkloadsAndResumes) {
  db::testing::TempDb tmp("tuner_job_budget");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  ScriptedRunner runner;
  std::vector<std::pair<Workload, double>> three = workloads_;
  three.emplace_back(Workload::parse("layernorm:rows=4096,cols=768:f16"), 24);
  TuneOptions o;
  o.strategy = Strategy::kEvolve;
  o.batch = 4;
  o.total_trials = 40;
  o.trials = 20;  // still caps each workload
  Tuner tuner(families_, h100_, target_, database, &runner, o);
  std::vector<TuneProgress> seen;
  tuner.on_progress = [&](const TuneProgress& p) { seen.push_back(p); };
  std::vector<WorkloadOutcome> out = tuner.run(three);
  ASSERT_EQ(out.size(), 3u);
  int total = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].workload, three[i].first);  // outcomes keep the workloads' order
    EXPECT_GE(out[i].measured, 4) << "every workload gets its warm-up batch";
    EXPECT_LE(out[i].measured, 20);
    EXPECT_TRUE(out[i].best.has_value());
    total += out[i].measured;
  }
  EXPECT_EQ(total, 40);
  EXPECT_EQ(runner.calls, 40);
  EXPECT_EQ(static_cast<int>(database.query({}).size()), 40);
  ASSERT_EQ(seen.size(), 10u);  // one report per batch, with the job's progress
  EXPECT_EQ(seen.back().job_done, 40);
  EXPECT_EQ(seen.back().job_planned, 40);
  // The same job again: the database holds its whole budget, so it measures nothing.
  std::vector<WorkloadOutcome> again = tuner.run(three);
  total = 0;
  for (size_t i = 0; i < again.size(); ++i) {
    EXPECT_EQ(again[i].already, out[i].measured);
    total += again[i].measured;
  }
  EXPECT_EQ(total, 0);
  EXPECT_EQ(runner.calls, 40);
  // A larger budget measures only the difference, nothing twice.
  TuneOptions more = o;
  more.total_trials = 52;
  total = 0;
  for (const WorkloadOutcome& o2 : Tuner(families_, h100_, target_, database, &runner, more).run(three))
    total += o2.measured;
  EXPECT_EQ(total, 12);
  std::set<std::string> keys;
  for (const db::StoredRecord& r : database.query({})) keys.insert(r.record.workload.key() + r.record.schedule.key());
  EXPECT_EQ(keys.size(), 52u);
  // Without --trials, evolve's cap of 64 per workload does not cut a larger job budget short:
  // the workload's records and this run make 100.
  db::RecordFilter f;
  f.workload_key = workloads_[0].first.key();
  const int held = static_cast<int>(database.query(f).size());
  TuneOptions uncapped = o;
  uncapped.trials = 0;
  uncapped.total_trials = 100;
  uncapped.batch = 25;
  std::vector<WorkloadOutcome> one = Tuner(families_, h100_, target_, database, &runner, uncapped).run({workloads_[0]});
  EXPECT_EQ(one[0].already, held);
  EXPECT_EQ(one[0].measured, 100 - held);
}

// With a runner whose batches overlap (an MPI job's), the list strategies propose and submit the
// next batch while one is measured, and the job records, reports and returns exactly what it does
// one batch at a time; a workload listed twice still sees its first turn's records.
TEST_F(TunerTest, OverlappedBatchesRecordWhatOneBatchAtATimeRecords) {
  std::vector<std::pair<Workload, double>> four = workloads_;
  four.emplace_back(workloads_[1]);  // again, right after its first turn
  four.emplace_back(Workload::parse("layernorm:rows=4096,cols=768:f16"), 3);
  for (Strategy strategy : {Strategy::kConstruct, Strategy::kRandom}) {
    TuneOptions o;
    o.strategy = strategy;
    o.trials = 10;
    o.batch = 4;  // 4 + 4 + 2 a workload
    ScriptedRunner plain;
    OverlappingRunner overlapping;
    std::string name = "tuner_overlap_" + std::to_string(static_cast<int>(strategy));
    JobTrace expected = traced(name + "_plain", plain, o, four);
    JobTrace got = traced(name + "_overlapped", overlapping, o, four);
    EXPECT_EQ(overlapping.most_in_flight, 2u);
    EXPECT_EQ(expected.records.size(), 30u);  // the repeated workload measures nothing more
    EXPECT_EQ(got.records, expected.records);
    EXPECT_EQ(got.progress, expected.progress);
    EXPECT_EQ(got.outcomes, expected.outcomes);
    EXPECT_EQ(overlapping.calls, plain.calls);
    // Stopped after the first committed batch, it still commits the one in flight, whole.
    OverlappingRunner stopped;
    JobTrace part = traced(name + "_stopped", stopped, o, four, 1);
    ASSERT_EQ(part.records.size(), 8u);
    EXPECT_TRUE(std::equal(part.records.begin(), part.records.end(), expected.records.begin()));
  }
  // Evolution proposes from every result: one batch at a time, whatever the runner.
  TuneOptions o;
  o.strategy = Strategy::kEvolve;
  o.trials = 8;
  o.batch = 4;
  ScriptedRunner plain;
  OverlappingRunner overlapping;
  JobTrace expected = traced("tuner_overlap_evolve_plain", plain, o, workloads_);
  EXPECT_EQ(traced("tuner_overlap_evolve", overlapping, o, workloads_), expected);
  EXPECT_EQ(overlapping.most_in_flight, 1u);
}

// --trials is the workload's budget across runs: a second run of a finished evolve job measures
// nothing, and one stopped half way (as by a kill after a committed batch) only finishes it.
TEST_F(TunerTest, EvolveCountsWhatTheDatabaseHoldsAgainstItsTrials) {
  db::testing::TempDb tmp("tuner_evolve_resume");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  ScriptedRunner runner;
  TuneOptions o;
  o.strategy = Strategy::kEvolve;
  o.trials = 16;
  o.batch = 4;
  std::vector<std::pair<Workload, double>> one = {workloads_[0]};
  std::vector<WorkloadOutcome> first = Tuner(families_, h100_, target_, database, &runner, o).run(one);
  EXPECT_EQ(first[0].measured, 16);
  EXPECT_EQ(runner.calls, 16);
  std::vector<WorkloadOutcome> again = Tuner(families_, h100_, target_, database, &runner, o).run(one);
  EXPECT_EQ(again[0].already, 16);
  EXPECT_EQ(again[0].measured, 0);
  EXPECT_EQ(runner.calls, 16);
  EXPECT_EQ(database.query({}).size(), 16u);
  // Predictions from a model-only run are no measurements: they do not use up the budget.
  Tuner(families_, h100_, target_, database, nullptr, o).run({workloads_[1]});
  Tuner interrupted(families_, h100_, target_, database, &runner, o);
  int batches = 0;
  interrupted.on_progress = [&](const TuneProgress& p) { batches += p.done > 0; };
  interrupted.should_stop = [&] { return batches >= 2; };
  std::vector<WorkloadOutcome> half = interrupted.run({workloads_[1]});
  EXPECT_EQ(half[0].already, 0);
  EXPECT_EQ(half[0].measured, 8);
  std::vector<WorkloadOutcome> resumed =
      Tuner(families_, h100_, target_, database, &runner, o).run({workloads_[1]});
  EXPECT_EQ(resumed[0].already, 8);
  EXPECT_EQ(resumed[0].measured, 8);
  EXPECT_EQ(runner.calls, 32);
  db::RecordFilter f;
  f.workload_key = workloads_[1].first.key();
  f.status = Status::kUnmeasured;
  const size_t predictions = database.query(f).size();
  EXPECT_EQ(predictions, 16u);
  std::set<std::string> measured;
  f.status.reset();
  for (const db::StoredRecord& r : database.query(f))
    if (r.record.measurement.status != Status::kUnmeasured) measured.insert(r.record.schedule.key());
  EXPECT_EQ(measured.size(), 16u);
  // The list strategies count their held candidates too: with --trials below construction's
  // top-k, a rerun does not go on down the list.
  TuneOptions few;
  few.trials = 4;
  few.batch = 2;
  const std::vector<std::pair<Workload, double>> layernorm = {
      {Workload::parse("layernorm:rows=4096,cols=768:f16"), 1}};
  EXPECT_EQ(Tuner(families_, h100_, target_, database, &runner, few).run(layernorm)[0].measured, 4);
  std::vector<WorkloadOutcome> rerun =
      Tuner(families_, h100_, target_, database, &runner, few).run(layernorm);
  EXPECT_EQ(rerun[0].already, 4);
  EXPECT_EQ(rerun[0].measured, 0);
}

}  // namespace
}  // namespace tessera::search
