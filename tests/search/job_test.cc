// Planning a tuning job (search/job.h) without a GPU: the target it tunes for, the notice that
// says nothing is measured, the contradictions and bad names that are the user's errors, and
// the workloads added once the target is known. (With a GPU present, the GPU plans are
// exercised by the cli tests and scripts/run.sh.)
#include "search/job.h"

#include <gtest/gtest.h>

#include "measure/devices.h"

namespace tessera::search {
namespace {

bool gpu_present() { return !measure::scan_devices().devices.empty(); }

JobRequest one_matmul() {
  JobRequest r;
  r.workloads.push_back({Workload::parse("matmul:m=64,n=64,k=64:f16"), 2.0, "mm"});
  return r;
}

TEST(PlanJob, WithoutAGpuItRanksForTheNamedOrDefaultSpecAndSaysSo) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present: the plan would measure on it";
  std::unique_ptr<Job> plain = plan_job(one_matmul());
  EXPECT_FALSE(plain->measured());
  EXPECT_EQ(plain->measurer(), nullptr);
  EXPECT_EQ(plain->spec.name, measure::kDefaultSpec);
  EXPECT_EQ(plain->notice.rfind("MODEL ONLY: no GPU found", 0), 0u) << plain->notice;
  EXPECT_NE(plain->notice.find("ranking for h100_sxm (pass --target to choose)"), std::string::npos) << plain->notice;
  ASSERT_EQ(plain->workloads.size(), 1u);
  EXPECT_EQ(plain->workloads[0].label, "mm");

  JobRequest named = one_matmul();
  named.target = "a100_sxm";
  std::unique_ptr<Job> a100 = plan_job(named);
  EXPECT_EQ(a100->spec.name, "a100_sxm");
  EXPECT_EQ(a100->target.spec_name, "a100_sxm");
  EXPECT_EQ(a100->notice.find("ranking for"), std::string::npos) << a100->notice;

  JobRequest gpu = one_matmul();
  gpu.measure = MeasureMode::kGpu;
  EXPECT_THROW(plan_job(gpu), NoGpuError);
}

TEST(PlanJob, ContradictionsAndBadNamesAreUserErrors) {
  JobRequest bad = one_matmul();
  bad.target = "no_such_gpu";
  EXPECT_THROW(plan_job(bad), UserError);
  JobRequest replay = one_matmul();
  replay.replay = "/nonexistent/records.jsonl";
  replay.target = "h100_sxm";
  try {
    plan_job(replay);
    ADD_FAILURE() << "a replay with a target was planned";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("drop --measure and --target"), std::string::npos) << e.what();
  }
  replay.target.reset();
  EXPECT_THROW(plan_job(replay), UserError);  // unreadable records
}

TEST(PlanJob, MoreWorkloadsComeOnceTheTargetIsKnown) {
  JobRequest r = one_matmul();
  r.measure = MeasureMode::kNone;
  r.target = "h200_sxm";
  std::string seen;
  r.more_workloads = [&](const HardwareSpec& spec, const Target& target) {
    seen = spec.name + "/" + target.spec_name;
    return std::vector<WorkloadEntry>{{Workload::parse("softmax:rows=8,cols=128:f16"), 3.0, "sm"}};
  };
  std::unique_ptr<Job> job = plan_job(r);
  EXPECT_EQ(seen, "h200_sxm/h200_sxm");
  ASSERT_EQ(job->workloads.size(), 2u);
  EXPECT_EQ(job->workloads[1].label, "sm");
  EXPECT_EQ(job->workloads[1].weight, 3.0);
  EXPECT_FALSE(job->measured());
}

TEST(ChooseTarget, RequestedThenStoredThenTheGpuThenTheDefault) {
  measure::DeviceScan none;
  none.reason = "test";
  measure::TargetChoice d = measure::choose_target(std::nullopt, none);
  EXPECT_EQ(d.spec.name, measure::kDefaultSpec);
  EXPECT_FALSE(d.from_device);
  EXPECT_EQ(d.note, "no GPU found (test): ranking for h100_sxm (pass --target to choose)");
  measure::TargetChoice named = measure::choose_target(std::string("a100_sxm"), none);
  EXPECT_EQ(named.spec.name, "a100_sxm");
  EXPECT_TRUE(named.note.empty());
  Target stored = Target::for_spec(find_spec("h200_sxm"), "12.0");
  measure::TargetChoice from_db = measure::choose_target(std::nullopt, none, stored);
  EXPECT_EQ(from_db.spec.name, "h200_sxm");
  EXPECT_EQ(from_db.target, stored);
  EXPECT_THROW(measure::choose_target(std::string("no_such_gpu"), none), UserError);
}

}  // namespace
}  // namespace tessera::search
