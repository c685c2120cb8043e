#include "core/schedule.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/measurement.h"

namespace tessera {
namespace {

Schedule gemm_schedule() { return {"gemm_tc", {{"bm", 128}, {"bn", 256}, {"bk", 32}, {"stages", 4}}}; }

TEST(Schedule, KeyKeepsKnobOrder) {
  Schedule s = gemm_schedule();
  EXPECT_EQ(s.key(), "gemm_tc:bm=128,bn=256,bk=32,stages=4");
  EXPECT_EQ(s.get("bn"), 256);
  EXPECT_FALSE(s.find("split_k").has_value());
  EXPECT_THROW(s.get("split_k"), InternalError);
  Schedule swapped{"gemm_tc", {{"bn", 256}, {"bm", 128}, {"bk", 32}, {"stages", 4}}};
  EXPECT_NE(swapped.key(), s.key());
}

TEST(Schedule, JsonRoundTripKeepsOrder) {
  Schedule s = gemm_schedule();
  Json j = s.to_json();
  EXPECT_EQ(j.dump(), R"({"family":"gemm_tc","knobs":{"bm":128,"bn":256,"bk":32,"stages":4}})");
  EXPECT_EQ(Schedule::from_json(Json::parse(j.dump()), "s"), s);
}

TEST(Schedule, RejectsBadJson) {
  auto message = [](const Json& j) {
    try {
      Schedule::from_json(j, "--schedule");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(Json{{"knobs", Json::object()}}), "--schedule: missing field \"family\"");
  EXPECT_EQ(message(Json{{"family", "gemm_tc"}}), "--schedule: field \"knobs\" must be an object of integers");
  EXPECT_EQ(message(Json{{"family", "gemm_tc"}, {"knobs", {{"bm", "big"}}}}),
            "--schedule: knob \"bm\" must be an integer (got \"big\")");
  EXPECT_EQ(message(Json{{"family", ""}, {"knobs", Json::object()}}), "--schedule: field \"family\" must not be empty");
}

TEST(Measurement, StatisticsFromSamples) {
  Measurement m;
  m.set_times({5, 1, 4, 2, 3});
  EXPECT_DOUBLE_EQ(m.median_us, 3);
  EXPECT_DOUBLE_EQ(m.min_us, 1);
  EXPECT_DOUBLE_EQ(m.max_us, 5);
  // p10 = 1.4, p90 = 4.6 by linear interpolation.
  EXPECT_NEAR(m.spread, (4.6 - 1.4) / 3, 1e-12);
  EXPECT_EQ(m.times_us, (std::vector<double>{5, 1, 4, 2, 3}));  // raw order kept
  Measurement even;
  even.set_times({10, 20});
  EXPECT_DOUBLE_EQ(even.median_us, 15);
  EXPECT_THROW(even.set_times({}), InternalError);
}

TEST(Measurement, StatusNames) {
  for (const char* name : {"ok", "compile_error", "invalid", "launch_error", "incorrect", "timeout", "crashed", "unmeasured"})
    EXPECT_EQ(status_name(parse_status(name, "s")), name);
  EXPECT_THROW(parse_status("fast", "s"), UserError);
}

TEST(Record, JsonRoundTrip) {
  Record r;
  r.workload = Workload::parse("matmul:m=4096,n=4096,k=4096:f16:epilogue=bias");
  r.target = Target::for_spec(find_spec("h100_sxm"), "13.0");
  r.schedule = gemm_schedule();
  r.measurement.status = Status::kOk;
  r.measurement.set_times({101.5, 99.25, 100.0});
  r.measurement.registers = 168;
  r.measurement.smem_bytes = 98304;
  r.measurement.vendor_us = 97.5;
  r.predicted_us = 120.25;
  r.feature_version = 1;
  r.tool_version = "0.1.0";
  r.timestamp_s = 1795000000;
  EXPECT_EQ(Record::from_json(Json::parse(r.to_json().dump()), "r"), r);

  Record failed = r;
  failed.measurement = Measurement{};
  failed.measurement.status = Status::kCompileError;
  failed.measurement.error = "ptxas: too many resources";
  failed.predicted_us.reset();
  EXPECT_EQ(Record::from_json(Json::parse(failed.to_json().dump()), "r"), failed);

  Json bad = r.to_json();
  bad["measurement"]["status"] = "great";
  EXPECT_THROW(Record::from_json(bad, "r"), UserError);
  bad.erase("workload");
  EXPECT_THROW(Record::from_json(bad, "r"), UserError);
}

}  // namespace
}  // namespace tessera
