// `tessera graph run`'s work on a GPU: small models run end to end with the tuned families'
// kernels and the generic ones, and their outputs match the host reference. Skipped without a
// GPU.
#include <gtest/gtest.h>

#include "graph/model_run.h"
#include "measure/devices.h"

namespace tessera::graph {
namespace {

const std::string kGraphs = TESSERA_GRAPHS;

class GraphRunGpu : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    measure::DeviceScan scan = measure::scan_devices();
    if (scan.devices.empty()) GTEST_SKIP() << "no GPU: " << scan.reason;
  }
};

TEST_P(GraphRunGpu, RunsEndToEndAndMatchesTheReference) {
  for (const std::string which : {"original", "optimized"}) {
    ModelRunRequest r;
    r.model_path = kGraphs + "/" + GetParam() + ".onnx";
    r.graph = which;
    r.iters = 5;
    Json out = run_model_on_gpu(r);
    ASSERT_FALSE(out.contains("no_gpu"));
    ASSERT_TRUE(out.contains("check")) << out.dump();
    EXPECT_TRUE(out["check"]["ok"].get<bool>()) << which << ": " << out["check"].dump();
    EXPECT_GT(out["latency_us"]["median"].get<double>(), 0);
    EXPECT_GT(out["sum_of_steps_us"].get<double>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(SmallModels, GraphRunGpu, ::testing::Values("tiny_resblock", "tiny_bert", "tiny_inception"));

}  // namespace
}  // namespace tessera::graph
