// `tessera graph run`'s work on a GPU: small models run end to end with the tuned families'
// kernels and the generic ones, and their outputs match the host reference. Skipped without a
// GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "graph/model_run.h"
#include "graph/onnx_io.h"
#include "measure/devices.h"
#include "tests/graph/generic_graph.h"

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

// A reference computed once (as --compare and optimize --measure share it between their
// children) is the one the check uses: the right one passes, a perturbed one fails.
TEST_P(GraphRunGpu, ASharedReferenceIsTheOneChecked) {
  ModelRunRequest r;
  r.model_path = kGraphs + "/" + GetParam() + ".onnx";
  r.graph = "fused";
  r.iters = 3;
  std::vector<Tensor> expected = reference_outputs(import_onnx(r.model_path), r.seed);
  r.reference = std::make_shared<const std::vector<Tensor>>(expected);
  Json out = run_model_on_gpu(r);
  ASSERT_TRUE(out.contains("check")) << out.dump();
  EXPECT_TRUE(out["check"]["ok"].get<bool>()) << out["check"].dump();
  EXPECT_EQ(out["check"]["reference"], "shared");
  for (Tensor& t : expected)
    for (float& v : t.f) v = 2 * v + 1;
  r.reference = std::make_shared<const std::vector<Tensor>>(expected);
  out = run_model_on_gpu(r);
  EXPECT_FALSE(out["check"]["ok"].get<bool>()) << out["check"].dump();
}

// On the vendor library (cuBLASLt, cuDNN; an algorithm timed once per workload and reused by
// the steps that repeat it), the same check, and the new back-to-back figures: a replay's
// GPU span holds its kernels' busy time.
TEST_P(GraphRunGpu, VendorRunMatchesTheReference) {
  ModelRunRequest r;
  r.model_path = kGraphs + "/" + GetParam() + ".onnx";
  r.graph = "fused";
  r.iters = 5;
  r.vendor = true;
  Json out = run_model_on_gpu(r);
  ASSERT_TRUE(out.contains("check")) << out.dump();
  EXPECT_TRUE(out["check"]["ok"].get<bool>()) << out["check"].dump();
  EXPECT_EQ(out["kernels"], "vendor");
  int vendor_steps = 0;
  for (const auto& [runner, n] : out["tuned_operators_on"].items()) vendor_steps += runner == "tessera" ? 0 : n.get<int>();
  EXPECT_GT(vendor_steps, 0) << out["tuned_operators_on"].dump();
  const double span = out["latency_us"]["back_to_back"].get<double>(), busy = out["gpu"]["busy_us"].get<double>();
  EXPECT_GT(busy, 0);
  EXPECT_GE(span * 1.001, busy) << "kernels of one stream do not overlap";
  EXPECT_GE(out["gpu"]["kernels"].get<int>(), 1);
}

// The generic kernels' operators in one graph, written as ONNX and run: a channel split of a
// convolution's NHWC output, a concat, a constant Pad, an inference BatchNormalization, a
// transpose feeding a reshape, a gather of several indices, Erf, Where over a comparison, a
// reduction over a middle axis, average and max pools, and a long elementwise sum.
class GenericOpsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    measure::DeviceScan scan = measure::scan_devices();
    if (scan.devices.empty()) GTEST_SKIP() << "no GPU: " << scan.reason;
  }
};

TEST_F(GenericOpsGpu, GenericOperatorsMatchTheReference) {
  Graph g = generic_operators_graph();
  const std::string path = ::testing::TempDir() + "generic_ops_" + std::to_string(getpid()) + ".onnx";
  write_onnx(g, path);
  for (const std::string which : {"original", "fused"}) {
    ModelRunRequest req;
    req.model_path = path;
    req.graph = which;
    req.iters = 3;
    Json out = run_model_on_gpu(req);
    ASSERT_TRUE(out.contains("check")) << out.dump();
    EXPECT_TRUE(out["check"]["ok"].get<bool>()) << which << ": " << out["check"].dump();
  }
  std::filesystem::remove(path);
}

// Self-attention whose heads' matmuls read q, k and v in place (Hopper: strided tensor maps;
// batch 2: heads inside batches, four-dimensional maps), against the reference, and the same
// on the vendor library with dense copies.
TEST_F(GenericOpsGpu, AttentionHeadsReadInPlaceMatchTheReference) {
  for (int64_t batch : {1, 2}) {
    const std::string path =
        ::testing::TempDir() + "attention_" + std::to_string(getpid()) + "_" + std::to_string(batch) + ".onnx";
    write_onnx(attention_graph(batch, 40, 4, 64), path);
    // The original graph's k^T is read as trans_b; the optimized one's as the rewrites made it.
    for (const auto& [graph, vendor] : {std::pair{"original", false}, {"optimized", false}, {"optimized", true}}) {
      ModelRunRequest req;
      req.model_path = path;
      req.graph = graph;
      req.iters = 3;
      req.vendor = vendor;
      Json out = run_model_on_gpu(req);
      ASSERT_TRUE(out.contains("check")) << out.dump();
      EXPECT_TRUE(out["check"]["ok"].get<bool>())
          << "batch " << batch << " " << graph << (vendor ? " vendor: " : ": ") << out["check"].dump();
      if (!vendor) {
        EXPECT_GE(out["plan"]["in_place_steps"].get<int>(), 2) << out["plan"].dump();
      }
    }
    std::filesystem::remove(path);
  }
}

// graph optimize --measure: the candidates run on the GPU and the fastest that matches the
// reference is written.
TEST_F(GenericOpsGpu, OptimizeMeasureWritesAMeasuredCandidate) {
  const std::string out = ::testing::TempDir() + "measured_" + std::to_string(getpid()) + ".onnx";
  const std::string db = ::testing::TempDir() + "measured_" + std::to_string(getpid()) + ".db";
  const std::string cmd = std::string(TESSERA_CLI) + " graph optimize " + kGraphs +
                          "/tiny_bert.onnx --measure --iters 5 --json --db " + db + " -o " + out + " > " + out + ".json";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_TRUE(std::filesystem::exists(out));
  std::ifstream in(out + ".json");
  Json result = Json::parse(in);
  ASSERT_FALSE(result["measured_runs"].empty()) << result.dump();
  int ok = 0;
  for (const Json& c : result["measured_runs"]) ok += c["ok"].get<bool>();
  EXPECT_GE(ok, 1) << result.dump();
  for (const std::string& f : {out, out + ".json", db}) std::filesystem::remove(f);
}

INSTANTIATE_TEST_SUITE_P(SmallModels, GraphRunGpu,
                         ::testing::Values("tiny_resblock", "tiny_bert", "tiny_inception"));

}  // namespace
}  // namespace tessera::graph
