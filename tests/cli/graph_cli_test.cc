// `tessera graph optimize | show | rules` and `tune --model`, end to end on the exported
// test models.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <fstream>
#include <regex>

#include "core/json.h"
#include "tests/cli/cli_util.h"

namespace tessera {
namespace {

using testing::expect_one_line_error;
using testing::Result;
using testing::run;

const std::string kGraphs = TESSERA_GRAPHS;

std::string temp(const std::string& name) {
  return ::testing::TempDir() + "graph_cli_" + std::to_string(getpid()) + "_" + name;
}

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') + 1);
}

TEST(GraphCli, OptimizeWritesAVerifiedModelAndRecordsIt) {
  std::string db = temp("opt.db"), out = temp("opt.onnx");
  Result r = run({"graph", "optimize", kGraphs + "/tiny_bert.onnx", "-o", out, "--db", db, "--budget", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::regex machine(R"(cost_before_us=([0-9.]+) cost_after_us=([0-9.]+) reduction=([0-9.]+)% search_s=[0-9.]+ verified=yes)");
  std::smatch m;
  std::string last = last_line(r.out);
  ASSERT_TRUE(std::regex_match(last, m, machine)) << last;
  EXPECT_LT(std::stod(m[2]), std::stod(m[1]));
  EXPECT_NE(r.out.find("merge_matmul x"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::file_size(out) > 1000);

  // The output is a model Tessera reads back, and the database holds the result.
  Result show = run({"graph", "show", out});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  Result stats = run({"db", "stats", "--db", db, "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(Json::parse(stats.out)["graphs"], 1) << stats.out;
  Result listed = run({"db", "graphs", "--db", db, "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  Json graphs = Json::parse(listed.out);
  ASSERT_EQ(graphs.size(), 1u);
  EXPECT_EQ(graphs[0]["model"].get<std::string>().rfind("tiny_bert.onnx:", 0), 0u) << listed.out;
  EXPECT_TRUE(graphs[0]["search"]["verified"].get<bool>());
  std::string stored = temp("stored.onnx");
  Result written = run({"db", "graphs", "--db", db, "--id", std::to_string(graphs[0]["id"].get<int>()), "-o", stored});
  ASSERT_EQ(written.exit_code, 0) << written.err;
  EXPECT_EQ(run({"graph", "show", stored}).exit_code, 0);
  std::filesystem::remove(stored);

  Result j = run({"graph", "optimize", kGraphs + "/tiny_resblock.onnx", "-o", out, "--db", db, "--strategy", "mcts",
                  "--budget", "20", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  Json doc = Json::parse(j.out);
  EXPECT_TRUE(doc["verified"].get<bool>());
  EXPECT_LE(doc["cost_after_us"].get<double>(), doc["cost_before_us"].get<double>());
  std::filesystem::remove(db);
  std::filesystem::remove(out);
}

TEST(GraphCli, BadModelsAreOneLineErrors) {
  std::string bad = temp("truncated.onnx");
  {
    std::ifstream in(kGraphs + "/tiny_resblock.onnx", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(bad, std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  }
  std::string db = temp("bad.db");
  expect_one_line_error({"graph", "optimize", bad, "-o", temp("x.onnx"), "--db", db}, "truncated.onnx");
  expect_one_line_error({"graph", "optimize", temp("missing.onnx"), "-o", temp("x.onnx"), "--db", db}, "missing.onnx");
  expect_one_line_error({"graph", "optimize", kGraphs + "/tiny_resblock.onnx", "-o", temp("x.onnx"), "--db", db,
                         "--strategy", "anneal"},
                        "--strategy");
  expect_one_line_error({"graph", "optimize", kGraphs + "/tiny_resblock.onnx", "-o", temp("x.onnx"), "--db", db,
                         "--alpha", "0.5"},
                        "--alpha");
  expect_one_line_error({"graph", "optimize", kGraphs + "/tiny_resblock.onnx", "--db", db}, "--output");
  std::filesystem::remove(bad);
  std::filesystem::remove(db);
}

TEST(GraphCli, RulesVerifyAndABadRuleIsReported) {
  Result r = run({"graph", "rules"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("verified  conv_batchnorm_fold"), std::string::npos) << r.out;
  std::string dir = temp("rules");
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/wrong.json") << R"({"name": "relu_is_identity",
    "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]},
    "replacement": {"outputs": {"y": "x"}}, "cases": [{"x": [8]}]})";
  Result bad = run({"graph", "rules", "--rules", dir});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("REJECTED  relu_is_identity"), std::string::npos) << bad.out;
  std::filesystem::remove_all(dir);
}

TEST(GraphCli, TuneModelCoversTheGraphsWorkloads) {
  std::string db = temp("tune.db");
  Result r = run({"tune", "--model", kGraphs + "/tiny_bert.onnx", "--measure", "none", "--db", db, "--topk", "2",
                  "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("distinct workloads"), std::string::npos) << r.err;
  Json doc = Json::parse(r.out);
  bool merged_qkv = false, softmax = false;
  ASSERT_TRUE(doc.is_array());
  for (const Json& w : doc) {
    std::string key = w["workload"].get<std::string>();
    merged_qkv = merged_qkv || key.find("n=192") != std::string::npos;  // 3 x 64 columns
    softmax = softmax || key.rfind("softmax:", 0) == 0;
  }
  EXPECT_TRUE(merged_qkv) << r.out;
  EXPECT_TRUE(softmax) << r.out;
  std::filesystem::remove(db);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

bool gpu_present() {
  Json dev = Json::parse(testing::run({"devices", "--json"}).out);
  return !dev["devices"].empty();
}

TEST(GraphRunCli, WithoutAGpuSaysSoInOneLineAndExitsThree) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present: graph_gpu_test runs models on it";
  testing::Result r = testing::run({"graph", "run", kGraphs + "/tiny_resblock.onnx", "--no-db"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("tessera: graph run needs a GPU: ", 0), 0u) << r.err;
}

// --compare asks for the GPU before it spends time on the host reference its runs share.
TEST(GraphRunCli, CompareWithoutAGpuSaysSoInOneLineAndExitsThree) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present: graph_gpu_test runs models on it";
  testing::Result r = testing::run({"graph", "run", kGraphs + "/tiny_resblock.onnx", "--no-db", "--compare"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("tessera: graph run needs a GPU: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(GraphRunCli, PlanSaysHowEachModelWouldRunWithoutAGpu) {
  testing::Result r = testing::run({"graph", "run", kGraphs + "/tiny_inception.onnx", "--plan", "--no-db", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json out = Json::parse(r.out);
  EXPECT_TRUE(out["plan"]["unsupported"].empty()) << r.out;
  std::map<std::string, int> launches;
  for (const Json& c : out["plan"]["by_category"]) launches[c["category"].get<std::string>()] = c["steps"].get<int>();
  EXPECT_GE(launches["conv2d"], 1) << r.out;
  EXPECT_GE(launches["Concat (generic)"], 2) << r.out;
  EXPECT_GT(out["plan"]["arena_bytes"].get<int64_t>(), 0);
  // Each step says what it runs: a tuned kernel its workload, a generic one its walk (the index
  // space in storage order, an input's strides per dimension of it).
  int workloads = 0, walks = 0;
  for (const Json& s : out["steps"]) {
    workloads += s.contains("workload");
    if (!s.contains("walk")) continue;
    ++walks;
    const Json& w = s["walk"];
    EXPECT_EQ(w["out_strides"].size(), w["shape"].size()) << s.dump();
    for (const Json& in : w["in_strides"]) EXPECT_EQ(in.size(), w["shape"].size()) << s.dump();
    EXPECT_GE(w["blocks"].get<int64_t>(), 1) << s.dump();
  }
  EXPECT_EQ(workloads, launches["conv2d"] + launches["matmul"]) << r.out;
  EXPECT_GE(walks, launches["Concat (generic)"]) << r.out;
  testing::Result text = testing::run({"graph", "run", kGraphs + "/resnet50.onnx", "--plan", "--no-db", "--graph", "fused"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("conv2d"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("launches per run"), std::string::npos) << text.out;
}

// On a Hopper target (--target: the plan needs no GPU) Tessera's attention kernels read q, k
// and v in place and write the context where its transpose wants it; --dense and --vendor plan
// every operand dense, with the copies that takes, as does a GPU without tensor maps.
TEST(GraphRunCli, PlanReadsAttentionInPlaceUnlessDense) {
  auto plan = [](std::vector<std::string> extra, const std::string& target = "h100_sxm") {
    std::vector<std::string> args{"graph", "run", kGraphs + "/tiny_bert.onnx", "--plan", "--no-db", "--json", "--target",
                                  target};
    args.insert(args.end(), extra.begin(), extra.end());
    testing::Result r = testing::run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out.empty() ? "{}" : r.out);
  };
  auto copies = [](const Json& out) {
    for (const Json& c : out["plan"]["by_category"])
      if (c["category"] == "layout and broadcast copies") return c["steps"].get<int>();
    return 0;
  };
  const Json in_place = plan({}), dense = plan({"--dense"}), vendor = plan({"--vendor"});
  EXPECT_GE(in_place["plan"]["in_place_steps"].get<int>(), 4) << in_place.dump();  // 2 layers x (scores, context)
  int annotated = 0;
  for (const Json& s : in_place["steps"]) annotated += s.contains("in_place");
  EXPECT_EQ(annotated, in_place["plan"]["in_place_steps"].get<int>());
  EXPECT_EQ(dense["plan"]["in_place_steps"].get<int>(), 0);
  EXPECT_EQ(vendor["plan"]["in_place_steps"].get<int>(), 0);
  EXPECT_LT(copies(in_place), copies(dense)) << in_place.dump();
  EXPECT_EQ(copies(dense), copies(vendor));
  EXPECT_EQ(dense["plan"]["steps"].get<int>() - in_place["plan"]["steps"].get<int>(), copies(dense) - copies(in_place));
  EXPECT_EQ(plan({}, "a100_sxm")["plan"]["in_place_steps"].get<int>(), 0);
}

TEST(GraphRunCli, BadArgumentsAreOneLineUserErrors) {
  testing::expect_one_line_error({"graph", "run", kGraphs + "/tiny_bert.onnx", "--graph", "best"},
                                 "--graph must be optimized, fused or original");
  testing::expect_one_line_error({"graph", "run", "/no/such/model.onnx"}, "no such file");
  testing::expect_one_line_error({"graph", "run", kGraphs + "/tiny_bert.onnx", "--iters", "0"}, "--iters");
  testing::expect_one_line_error({"graph", "run", kGraphs + "/tiny_bert.onnx", "--target", "h100_sxm"}, "--target is for --plan");
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

TEST(GraphRunCli, OptimizeMeasureWithoutAGpuSaysSoAndWritesNothing) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present";
  const std::string out = temp("measured.onnx");
  testing::Result r = testing::run({"graph", "optimize", kGraphs + "/tiny_bert.onnx", "-o", out, "--measure", "--db",
                                    temp("measured.db")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("tessera: graph optimize --measure needs a GPU: ", 0), 0u) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace tessera
