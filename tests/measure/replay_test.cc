// ReplayRunner's pacing: a paced replay takes as long as the GPU did, so that throughput over
// replaying ranks means something; unpaced it answers at once, as before.
#include "measure/replay.h"

#include <gtest/gtest.h>

#include <chrono>

namespace tessera::measure {
namespace {

Record recorded(int tile, double median_us, int repeats) {
  Record r;
  r.workload = Workload::parse("softmax:rows=4096,cols=1024:f16");
  r.target.gpu_name = "NVIDIA H100 80GB HBM3";
  r.target.spec_name = "h100_sxm";
  r.target.cc_major = 9;
  r.target.sm_count = 132;
  r.target.driver_version = r.target.runtime_version = r.target.toolkit_version = "13.0";
  r.schedule.family = "rows";
  r.schedule.knobs = {{"tile", tile}};
  r.measurement.status = Status::kOk;
  r.measurement.set_times(std::vector<double>(static_cast<size_t>(repeats), median_us));
  return r;
}

double seconds(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(Replay, PacedAnswersTakeTheirRecordedKernelTimeTimesRepeats) {
  // 2000 us x 50 repeats = 0.1 s and 1000 us x 100 = 0.1 s of GPU time.
  std::vector<Record> records = {recorded(1, 2000, 50), recorded(2, 1000, 100)};
  std::vector<Candidate> cs;
  for (const Record& r : records) cs.push_back({r.workload, r.schedule, std::nullopt});
  Candidate unknown{records[0].workload, {"rows", {{"tile", 3}}}, std::nullopt};
  cs.push_back(unknown);

  ReplayRunner paced(records, "paced.jsonl", 1.0);
  EXPECT_DOUBLE_EQ(paced.max_wait_s(), 0.1);
  std::vector<size_t> reported;
  paced.on_result = [&](size_t i, const Measurement&) { reported.push_back(i); };
  std::vector<Measurement> ms;
  double took = seconds([&] { ms = paced.run(cs); });
  EXPECT_GE(took, 0.2);
  EXPECT_LT(took, 2.0);
  EXPECT_EQ(reported, (std::vector<size_t>{0, 1, 2}));  // each as it is answered
  EXPECT_EQ(ms[2].status, Status::kUnmeasured);         // not recorded: no wait, no number

  ReplayRunner instant(records, "paced.jsonl");
  std::vector<Measurement> again;
  EXPECT_LT(seconds([&] { again = instant.run(cs); }), 0.05);
  EXPECT_EQ(again, ms);  // the same answers, paced or not
  EXPECT_EQ(instant.max_wait_s(), 0);

  // Another rank's answers count as this runner's.
  instant.tally(again[0]);
  instant.tally(again[2]);
  EXPECT_EQ(instant.answered(), 3);
  EXPECT_EQ(instant.unmeasured(), 2);
}

}  // namespace
}  // namespace tessera::measure
