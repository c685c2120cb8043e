// Evolutionary search and replay on the measured H100 dataset (tests/data): the replay
// answers only what was recorded, and model-guided evolution finds a workload's recorded best
// within a small trial budget, guided by a model trained on the other workloads only.
#include "search/evolve.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "costmodel/learned.h"
#include "kernels/families.h"
#include "measure/replay.h"
#include "search/tuner.h"
#include "tests/data/dataset.h"
#include "tests/db/test_util.h"
#include "tests/kernels/families_fixture.h"

namespace tessera::search {
namespace {

class EvolveTest : public tessera::testing::BuiltinFamiliesTest {};

TEST_F(EvolveTest, ReplayAnswersOnlyWhatWasRecordedAndSaysSo) {
  measure::ReplayRunner replay(tessera::testing::h100_dataset(), "h100-dataset.jsonl");
  Workload w = Workload::parse("matmul:m=2048,n=2048,k=2048:f16");
  std::vector<Schedule> recorded = replay.schedules(w);
  ASSERT_GT(recorded.size(), 100u);
  Schedule absent = recorded.front();
  absent.knobs.back().second = 999;  // no such schedule was measured
  std::vector<Candidate> cs = {{w, recorded.front(), std::nullopt}, {w, absent, std::nullopt}};
  std::vector<Measurement> ms = replay.run(cs);
  EXPECT_EQ(ms[0].status, Status::kOk);
  EXPECT_GT(ms[0].median_us, 0);
  EXPECT_EQ(ms[0].conditions["replay"], "h100-dataset.jsonl");
  EXPECT_EQ(ms[1].status, Status::kUnmeasured);
  EXPECT_NE(ms[1].error.find("not in the replay records"), std::string::npos);
  EXPECT_EQ(replay.answered(), 1);
  EXPECT_EQ(replay.unmeasured(), 1);
  EXPECT_GT(replay.best_us(w), 0);
  std::vector<Record> mixed = {tessera::testing::h100_dataset().front(), tessera::testing::h100_dataset().front()};
  mixed[1].target = db::testing::test_target("a100_sxm");
  EXPECT_THROW(measure::ReplayRunner(mixed, "mixed.jsonl"), UserError);
}

TEST_F(EvolveTest, ProposesValidDistinctSchedulesWithoutMeasuring) {
  Workload w = Workload::parse("matmul:m=1024,n=1024,k=1024:f16");
  costmodel::AnalyticModel model(families_, h100_);
  Evolution evo(w, families_, h100_, model);
  std::set<std::string> seen;
  for (int generation = 0; generation < 4; ++generation) {
    std::vector<Candidate> batch = evo.propose(16);
    ASSERT_EQ(batch.size(), 16u);
    for (const Candidate& c : batch) {
      EXPECT_TRUE(seen.insert(c.schedule.key()).second) << "proposed twice: " << c.schedule.key();
      const kernels::KernelFamily* family = families_.find(c.schedule.family);
      ASSERT_NE(family, nullptr) << c.schedule.family;
      EXPECT_FALSE(family->validate(c.schedule, w, h100_).has_value()) << c.schedule.key();
      ASSERT_TRUE(c.predicted_us.has_value());
      Measurement m;  // a stand-in result that makes the first of each batch the best so far
      m.status = Status::kOk;
      m.set_times({100.0 - generation, 100.0 - generation, 100.0 - generation});
      evo.observe(c.schedule, m);
    }
  }
  EXPECT_EQ(*evo.best_us(), 97.0);
}

// `tune --replay --strategy evolve --trials 8` twice: the second run finds the budget spent.
TEST_F(EvolveTest, ReplayedEvolutionResumesWithoutSpendingItsTrialsAgain) {
  measure::ReplayRunner replay(tessera::testing::h100_dataset(), "h100-dataset.jsonl");
  Workload w = Workload::parse("softmax:rows=4096,cols=1024:f16");
  db::testing::TempDb tmp("evolve_replay_resume");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  TuneOptions o;
  o.strategy = Strategy::kEvolve;
  o.trials = 8;
  o.batch = 4;
  for (int run = 0; run < 2; ++run) {
    Tuner tuner(families_, h100_, replay.target(), database, &replay, o);
    tuner.allowed = [&](const Workload& x) { return replay.schedules(x); };
    std::vector<WorkloadOutcome> out = tuner.run({{w, 1.0}});
    EXPECT_EQ(out[0].measured, run == 0 ? 8 : 0);
    EXPECT_EQ(out[0].already, run == 0 ? 0 : 8);
    ASSERT_TRUE(out[0].best.has_value());
  }
  EXPECT_EQ(replay.answered() + replay.unmeasured(), 8);
  EXPECT_EQ(database.query({}).size(), 8u);
}

// For each held-out workload: a combined model trained on the other 38 workloads' records is
// stored in a fresh database; `tune --strategy evolve --trials 64` then replays the dataset.
TEST_F(EvolveTest, FindsTheRecordedBestWithin2PercentIn64TrialsOnHeldOutWorkloads) {
  measure::ReplayRunner replay(tessera::testing::h100_dataset(), "h100-dataset.jsonl");
  for (const std::string spec : {"matmul:m=2048,n=2048,k=2048:f16", "conv2d:n=32,h=28,w=28,c=128,k=128,r=3,s=3,pad=1:f16",
                                 "softmax:rows=2048,cols=8192:f16"}) {
    SCOPED_TRACE(spec);
    Workload w = Workload::parse(spec);
    std::vector<Record> others;
    for (const Record& r : tessera::testing::h100_dataset())
      if (r.workload.key() != w.key()) others.push_back(r);
    db::testing::TempDb tmp("evolve_replay");
    db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
    costmodel::LearnedOptions lo;
    lo.threads = 2;
    costmodel::LearnedModel model(families_, h100_, lo);
    model.train(others);
    db::StoredModel stored;
    stored.kind = lo.kind();
    stored.target = replay.target();
    stored.feature_version = costmodel::kFeatureVersion;
    stored.blob = model.serialize();
    database.save_model(stored);

    TuneOptions o;
    o.strategy = Strategy::kEvolve;
    o.trials = 64;
    o.batch = 8;
    Tuner tuner(families_, h100_, replay.target(), database, &replay, o);
    tuner.allowed = [&](const Workload& x) { return replay.schedules(x); };
    std::vector<WorkloadOutcome> out = tuner.run({{w, 1.0}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_LE(out[0].measured, 64);
    ASSERT_TRUE(out[0].best.has_value());
    double best = replay.best_us(w);
    EXPECT_LE(out[0].best->measurement.median_us, best * 1.02)
        << "found " << out[0].best->measurement.median_us << " us, recorded best " << best << " us";
    EXPECT_EQ(out[0].best->measurement.conditions["replay"], "h100-dataset.jsonl");
  }
  EXPECT_EQ(replay.unmeasured(), 0);  // restricted to the records: nothing invented
}

}  // namespace
}  // namespace tessera::search
