// Graph search on real exported models (tests/data/graphs.tar.xz, made by
// scripts/export-models.py): the optimised graphs still compute what onnxruntime computed
// for the originals, the search lowers the cost, and MCTS finds a cheaper Inception block
// than backtracking by passing through a more expensive graph.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "kernels/families.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"
#include "graph/optimize.h"
#include "graph/tuning_plan.h"
#include "tests/db/test_util.h"

namespace tessera::graph {
namespace {

const std::string kGraphs = TESSERA_GRAPHS;

Tensor read_pb(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return tensor_from_onnx(bytes.str(), path);
}

class GraphSearch : public ::testing::Test {
 protected:
  GraphSearch() : hw_(find_spec("h100_sxm")) {
    kernels::register_builtin_families(families_);
    rule_set_ = load_rules();
    for (const auto& r : rule_set_.rules) rules_.push_back(r.get());
  }
  CostOracle oracle() { return CostOracle(families_, hw_, Target::for_spec(hw_, "none"), nullptr); }

  SearchResult search(const Graph& g, const std::string& strategy, int budget) {
    SearchOptions o;
    o.strategy = strategy;
    o.budget = budget;
    CostOracle costs = oracle();
    return optimize_graph(g, rules_, costs, o);
  }

  // The shipped rule named `name` (a test failure, and the first rule, if there is none).
  const Rule& rule(const std::string& name) const {
    for (const Rule* r : rules_)
      if (r->name() == name) return *r;
    ADD_FAILURE() << "no shipped rule named " << name;
    return *rules_.front();
  }

  kernels::FamilyRegistry families_;
  HardwareSpec hw_;
  RuleSet rule_set_;
  std::vector<const Rule*> rules_;
};

// Which shipped rules the searches apply to a fixed point (canonical) and which make the
// fused baseline (fusion): properties of the rules, set by the built-in families and by the
// data rules' "canonical" and "fusion" fields.
TEST_F(GraphSearch, CanonicalAndFusionRulesAreTheirOwnProperties) {
  std::set<std::string> canonical, fusion;
  for (const Rule* r : rules_) {
    if (r->canonical()) canonical.insert(r->name());
    if (r->fusion()) fusion.insert(r->name());
  }
  EXPECT_EQ(canonical, (std::set<std::string>{"gemm_to_fused_matmul", "identity_elim", "reshape_reshape", "reshape_noop",
                                               "transpose_unit_dims", "reshape_elementwise", "split_split", "layout_chain"}));
  EXPECT_EQ(fusion, (std::set<std::string>{"fuse_epilogue", "eltwise_chain", "gelu_from_erf", "gelu_from_erf_half_first",
                                            "gelu_from_erf_half_inner", "gemm_to_fused_matmul", "identity_elim",
                                            "reshape_reshape", "reshape_noop", "transpose_unit_dims"}));
}

// With a database, unmeasured operators are costed on the measured scale: by the ratio of a
// measured form with fewer epilogue steps, else by the kind's measured / estimated ratio.
TEST_F(GraphSearch, MeasuredCostsRescaleTheModelsEstimates) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {128, 256});
  std::vector<NodeId> plain;
  for (int64_t n : {256, 512, 768}) {
    ValueId w = g.add_constant("w" + std::to_string(n), Tensor::floats({256, n}, std::vector<float>(256 * n, 0.01f)));
    ValueId y = g.add_node(OpType::kMatMul, {x, w})[0];
    plain.push_back(g.value(y).producer);
    g.add_output(y);
  }
  ValueId w4 = g.add_constant("w4", Tensor::floats({256, 1024}, std::vector<float>(256 * 1024, 0.01f)));
  ValueId y4 = g.add_node(OpType::kMatMul, {x, w4})[0];
  g.add_output(g.add_node(OpType::kRelu, {y4})[0]);
  const NodeId mm4 = g.value(y4).producer;

  const Target target = db::testing::test_target();
  CostOracle model(families_, hw_, target, nullptr);
  db::testing::TempDb tmp("graph_calibration");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  std::vector<Record> records;
  int seq = 0;
  for (NodeId n : plain) {  // measured at 3x the model's estimate
    Workload w = *node_workload(g, g.node(n), DType::kF16);
    records.push_back(db::testing::gemm_record(w.key(), 64, 3 * model.cost(g, g.node(n)).time_us, ++seq, Status::kOk, target));
  }
  Workload w4_plain = *node_workload(g, g.node(mm4), DType::kF16);
  const double est4 = model.cost(g, g.node(mm4)).time_us;
  records.push_back(db::testing::gemm_record(w4_plain.key(), 64, 2 * est4, ++seq, Status::kOk, target));
  database.commit(records);

  CostOracle measured(families_, hw_, target, &database);
  measured.calibrate(g);
  EXPECT_NEAR(measured.calibration(OpKind::kMatmul), std::pow(3.0 * 3 * 3 * 2, 0.25), 1e-6);
  EXPECT_EQ(measured.calibration(OpKind::kSoftmax), 1.0);
  EXPECT_EQ(measured.cost(g, g.node(mm4)).source, CostSource::kMeasured);

  // The MatMul with its relu fused: unmeasured, scaled by its measured unfused form (2x).
  Graph fused = g;
  for (const auto& r : rule_set_.rules) {
    if (r->name() != "fuse_epilogue") continue;
    auto matches = r->find(fused, fused.consumers());
    ASSERT_EQ(matches.size(), 1u);
    auto applied = r->apply(fused, matches.front());
    ASSERT_TRUE(applied.has_value());
    fused = std::move(*applied);
  }
  NodeId fused_node = kNone;
  for (size_t n = 0; n < fused.nodes().size(); ++n)
    if (!fused.nodes()[n].removed && fused.nodes()[n].op == OpType::kFusedMatMul) fused_node = static_cast<NodeId>(n);
  ASSERT_NE(fused_node, kNone);
  OpCost c = measured.cost(fused, fused.node(fused_node));
  EXPECT_EQ(c.source, CostSource::kModel);
  EXPECT_EQ(c.workload->key(), w4_plain.key() + ":epilogue=relu");
  EXPECT_NEAR(c.time_us, 2 * model.cost(fused, fused.node(fused_node)).time_us, 1e-6);
}

// A LayerNormalization maps to a layernorm workload with the model's epsilon, as written
// (BERT's f32 attribute 1e-12 is 1e-12 in the key, not the float's 9.999999960041972e-13, so a
// workload file's "eps=1e-12" is the same workload); ONNX's default, given or not, leaves the
// key as it was.
TEST_F(GraphSearch, LayernormWorkloadsKeepTheModelsEpsilon) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {2, 128, 768});
  ValueId gamma = g.add_constant("gamma", Tensor::floats({768}, std::vector<float>(768, 1.0f)));
  ValueId beta = g.add_constant("beta", Tensor::floats({768}, std::vector<float>(768, 0.0f)));
  ValueId y = g.add_node(OpType::kLayerNormalization, {x, gamma, beta}, {{"epsilon", double(1e-12f)}})[0];
  ValueId z = g.add_node(OpType::kLayerNormalization, {y, gamma, beta})[0];
  ValueId explicit_default = g.add_node(OpType::kLayerNormalization, {z, gamma, beta}, {{"epsilon", double(1e-5f)}})[0];
  g.add_output(explicit_default);
  const std::optional<Workload> bert = node_workload(g, g.node(g.value(y).producer), DType::kF16);
  ASSERT_TRUE(bert.has_value());
  EXPECT_EQ(bert->rows().epsilon, 1e-12);
  EXPECT_EQ(bert->key(), "layernorm:rows=256,cols=768,eps=1e-12:f16");
  EXPECT_EQ(*bert, Workload::parse("layernorm:rows=256,cols=768,eps=1e-12:f16"));
  EXPECT_EQ(node_workload(g, g.node(g.value(z).producer), DType::kF16)->key(), "layernorm:rows=256,cols=768:f16");
  EXPECT_EQ(node_workload(g, g.node(g.value(explicit_default).producer), DType::kF16)->key(),
            "layernorm:rows=256,cols=768:f16");
  // The oracle costs it from a record of the same shape with the default epsilon (the
  // constant does not change the kernel's time; older records have no other).
  const Target target = db::testing::test_target();
  db::testing::TempDb tmp("layernorm_epsilon");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Record r = db::testing::gemm_record("layernorm:rows=256,cols=768:f16", 64, 3.5, 1, Status::kOk, target);
  r.schedule = {"rows", {{"row_threads", 32}, {"rows_per_block", 4}, {"vec", 8}, {"single_pass", 2}}};
  database.commit(std::vector<Record>{r});
  CostOracle measured(families_, hw_, target, &database);
  const OpCost c = measured.cost(g, g.node(g.value(y).producer));
  EXPECT_EQ(c.source, CostSource::kMeasured);
  EXPECT_DOUBLE_EQ(c.time_us, 3.5);
  EXPECT_EQ(c.workload->key(), bert->key());
}

// `tune --model` tunes the workloads of the graphs a search picks with model-only costs and,
// given a database, with its measured costs: a grouped convolution measured far slower than
// the model thinks is worth ungrouping, so the dense form is then among the workloads.
TEST_F(GraphSearch, TuningWorkloadsFollowTheDatabasesMeasuredCosts) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 64, 14, 14});
  ValueId w = g.add_constant("w", Tensor::floats({64, 2, 3, 3}, std::vector<float>(64 * 2 * 9, 0.01f)));
  ValueId b = g.add_constant("b", Tensor::floats({64}, std::vector<float>(64, 0.1f)));
  Attrs grouped{{"group", int64_t{32}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}};
  ValueId y = g.add_node(OpType::kConv, {x, w, b}, grouped)[0];
  g.add_output(g.add_node(OpType::kRelu, {y})[0]);
  auto dense_convs = [](const std::vector<search::WorkloadEntry>& entries) {
    int n = 0;
    for (const search::WorkloadEntry& e : entries)
      n += e.workload.kind == OpKind::kConv2d && e.workload.conv2d().groups == 1;
    return n;
  };

  const Target target = db::testing::test_target();
  db::testing::TempDb tmp("graph_tuning_workloads");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  EXPECT_EQ(dense_convs(tuning_workloads(g, families_, hw_, DType::kF16, &database, target)), 0);

  CostOracle model(families_, hw_, target, nullptr);
  const Node& conv = g.node(g.value(y).producer);
  Workload slow = *node_workload(g, conv, DType::kF16);
  std::vector<Record> measured{db::testing::gemm_record(slow.key(), 64, 50 * model.cost(g, conv).time_us, 1, Status::kOk, target)};
  database.commit(measured);
  std::vector<search::WorkloadEntry> entries = tuning_workloads(g, families_, hw_, DType::kF16, &database, target);
  EXPECT_EQ(dense_convs(entries), 1);
  // The model-only search's workloads are still there: the grouped convolution, fused or not.
  int grouped_convs = 0;
  for (const search::WorkloadEntry& e : entries)
    grouped_convs += e.workload.kind == OpKind::kConv2d && e.workload.conv2d().groups == 32;
  EXPECT_GE(grouped_convs, 2);
  EXPECT_EQ(dense_convs(tuning_workloads(g, families_, hw_, DType::kF16)), 0);  // without the database
}

// The fused baseline is the graph with the fusions alone, and tune --model tunes its
// workloads too: three 1x1 branches on one input are merged by the search (the input is large,
// so reading it once pays for copying the three parts out of the merged output), but each
// branch's convolution with its relu fused is what the merge competes with, so it is measured
// as well.
TEST_F(GraphSearch, TuningWorkloadsCoverTheFusedBaseline) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 1024, 14, 14});
  for (int64_t k : {32, 48, 64}) {
    ValueId w = g.add_constant("w" + std::to_string(k),
                               Tensor::floats({k, 1024, 1, 1}, std::vector<float>(k * 1024, 0.01f)));
    ValueId b = g.add_constant("b" + std::to_string(k), Tensor::floats({k}, std::vector<float>(k, 0.1f)));
    g.add_output(g.add_node(OpType::kRelu, {g.add_node(OpType::kConv, {x, w, b})[0]})[0]);
  }
  EXPECT_TRUE(rule("fuse_epilogue").fusion());
  EXPECT_FALSE(rule("merge_conv").fusion());
  CostOracle costs = oracle();
  SearchResult fused = fuse_only(g, rules_, costs);
  std::map<std::string, int> counts = fused.counts();
  EXPECT_EQ(counts["fuse_epilogue"], 3);
  EXPECT_EQ(counts.count("merge_conv"), 0u);

  SearchResult searched = search(g, "backtrack", 50);
  ASSERT_GE(searched.counts()["merge_conv"], 1) << "the test needs a search that merges the branches";
  std::set<std::string> keys;
  for (const search::WorkloadEntry& e : tuning_workloads(g, families_, hw_, DType::kF16)) keys.insert(e.workload.key());
  for (const search::WorkloadEntry& e : graph_workloads(fused.best, DType::kF16)) {
    EXPECT_TRUE(keys.count(e.workload.key())) << e.workload.key();
    EXPECT_NE(e.workload.key().find("epilogue=bias+relu"), std::string::npos) << e.workload.key();
  }
}

// The optimised model, exported and read back, reproduces onnxruntime's outputs.
void expect_matches_onnxruntime(const Graph& optimised, const std::string& name) {
  Graph reread = import_onnx_bytes(export_onnx(optimised), name + " (optimised)");
  std::vector<Tensor> inputs{read_pb(kGraphs + "/" + name + ".input_0.pb")};
  std::vector<Tensor> expected{read_pb(kGraphs + "/" + name + ".output_0.pb")};
  EXPECT_LE(max_scaled_error(run_graph(reread, inputs), expected, 1e-3, 1e-4), 1.0) << name;
}

TEST_F(GraphSearch, OptimisedModelsStillMatchOnnxruntime) {
  for (const std::string name : {"tiny_resblock", "tiny_inception", "tiny_bert"}) {
    Graph g = import_onnx(kGraphs + "/" + name + ".onnx");
    SearchResult r = search(g, "backtrack", 100);
    EXPECT_LT(r.cost_after_us, r.cost_before_us) << name;
    EXPECT_FALSE(r.rewrites.empty()) << name;
    expect_matches_onnxruntime(r.best, name);
  }
}

// The zoo's models kept whole (tests/data/README.md): Tessera's evaluation of the model as
// imported, and of its optimised graph exported and read back, gives onnxruntime's outputs.
TEST_F(GraphSearch, ZooModelsKeptWholeMatchOnnxruntime) {
  int models = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TESSERA_ZOO)) {
    const std::string path = entry.path().string(), suffix = ".output_0.pb";
    if (path.size() <= suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string base = path.substr(0, path.size() - suffix.size());
    SCOPED_TRACE(base);
    ++models;
    Graph g = import_onnx(base + ".onnx");
    std::vector<Tensor> inputs, expected;
    for (size_t k = 0; k < g.inputs().size(); ++k) inputs.push_back(read_pb(base + ".input_" + std::to_string(k) + ".pb"));
    for (size_t k = 0; k < g.outputs().size(); ++k) expected.push_back(read_pb(base + ".output_" + std::to_string(k) + ".pb"));
    EXPECT_LE(max_scaled_error(run_graph(g, inputs), expected, 1e-3, 1e-4), 1.0) << "as imported";
    SearchResult r = search(g, "backtrack", 50);
    EXPECT_LT(r.cost_after_us, r.cost_before_us);
    Graph reread = import_onnx_bytes(export_onnx(r.best), base + " (optimised)");
    EXPECT_LE(max_scaled_error(run_graph(reread, inputs), expected, 1e-3, 1e-4), 1.0) << "optimised";
  }
  EXPECT_GE(models, 4) << "the zoo's whole models (with onnxruntime's outputs) are missing from " << TESSERA_ZOO;
}

TEST_F(GraphSearch, BertBlockGetsItsFusionsAndMergedProjections) {
  Graph g = import_onnx(kGraphs + "/tiny_bert.onnx");
  SearchResult r = search(g, "backtrack", 200);
  auto counts = r.counts();
  // Two layers: Q, K and V merge into one projection per layer (two merges each), the erf
  // GELU is recognised once per layer, and the biases go into the matmuls' epilogues.
  EXPECT_EQ(counts["merge_matmul"], 4);
  EXPECT_EQ(counts["gelu_from_erf_half_inner"], 2);
  EXPECT_GE(counts["fuse_epilogue"], 12);
  // The merged projection's result is split into heads by one Transpose (split_heads), the
  // key's remaining swap of its last two axes goes into the scores' matmul (before or after
  // the scores' scale became the matmul's alpha).
  EXPECT_EQ(counts["split_heads"], 2);
  EXPECT_EQ(counts["matmul_transpose_b_4d"] + counts["fused_matmul_transpose"], 2);
  int gelus = 0, erfs = 0, splits = 0, scaled = 0;
  for (const Node& n : r.best.nodes()) {
    if (n.removed) continue;
    scaled += n.op == OpType::kFusedMatMul && n.attr_int("trans_b", 0) == 1 && n.attr_float("alpha", 1.0) != 1.0;
    gelus += n.op == OpType::kFusedMatMul && n.attr_string("epilogue", "").find("gelu") != std::string::npos;
    erfs += n.op == OpType::kErf;
    splits += n.op == OpType::kSplit;
  }
  EXPECT_EQ(gelus, 2);
  EXPECT_EQ(scaled, 2);  // 1 / sqrt(d) in the scores' matmuls
  EXPECT_EQ(erfs, 0);
  EXPECT_EQ(splits, 0);
  expect_matches_onnxruntime(r.best, "tiny_bert");
}

TEST_F(GraphSearch, MctsPassesThroughACostlierGraphToBeatBacktracking) {
  // Inception's branches read one input with 1x1, 3x3 and 5x5 kernels. Merging them needs
  // their kernels enlarged first, a step that costs more than alpha (1.05) allows on its own.
  Graph g = import_onnx(kGraphs + "/tiny_inception.onnx");
  SearchResult backtrack = search(g, "backtrack", 200);
  SearchResult mcts = search(g, "mcts", 300);
  EXPECT_LT(mcts.cost_after_us, backtrack.cost_after_us * 0.95);
  // Since a channel split of a convolution's (NHWC) output is costed as the copy it is, only
  // one merge of enlarged branches pays (merging all three splits the result three ways).
  EXPECT_GE(mcts.counts()["enlarge_conv"], 1);
  EXPECT_GE(mcts.counts()["merge_conv"], 1);
  expect_matches_onnxruntime(mcts.best, "tiny_inception");
  // Where backtracking stopped, the enlargement MCTS went on with is a loss: every
  // enlarge_conv from backtracking's best costs more than that graph.
  CostOracle costs = oracle();
  const Rule* enlarge = nullptr;
  for (const Rule* r : rules_) {
    if (r->name() == "enlarge_conv") enlarge = r;
  }
  ASSERT_NE(enlarge, nullptr);
  auto matches = enlarge->find(backtrack.best, backtrack.best.consumers());
  ASSERT_FALSE(matches.empty());
  for (const Match& m : matches) {
    Graph e = *enlarge->apply(backtrack.best, m);
    EXPECT_GT(costs.graph_cost(e), backtrack.cost_after_us);
  }
}

TEST_F(GraphSearch, BudgetZeroOnlyFoldsConstantsAndDescends) {
  Graph g = import_onnx(kGraphs + "/tiny_resblock.onnx");
  SearchOptions o;
  o.budget = 0;
  o.descend = false;
  CostOracle costs = oracle();
  SearchResult none = optimize_graph(g, rules_, costs, o);
  // Only the canonical rules (applied to the input, not chosen) may have rewritten it.
  for (const std::string& r : none.rewrites) EXPECT_TRUE(rule(r).canonical()) << r;
  EXPECT_LE(none.cost_after_us, none.cost_before_us);
  // The descent alone reaches a local optimum: no single rewrite of its result is cheaper.
  o.descend = true;
  SearchResult descent = optimize_graph(g, rules_, costs, o);
  EXPECT_FALSE(descent.rewrites.empty());
  EXPECT_LT(descent.cost_after_us, none.cost_after_us);
  for (const Rule* r : rules_) {
    for (const Match& m : r->find(descent.best, descent.best.consumers())) {
      auto next = r->apply(descent.best, m);
      if (next) {
        EXPECT_GE(costs.graph_cost(*next), descent.cost_after_us) << r->name();
      }
    }
  }
}

// A projection as ViT's export has it: Gemm, Reshape, a Transpose of the unit batch axis and
// the residual Add. The canonical rules turn it into a MatMul whose result the Add reads
// (listed in rewrites, even with no budget); the search then fuses the residual into it.
Graph vit_projection() {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {6, 16});
  ValueId w = g.add_constant("w", Tensor::floats({16, 16}, std::vector<float>(256, 0.01f)));
  ValueId b = g.add_constant("b", Tensor::floats({16}, std::vector<float>(16, 0.1f)));
  ValueId res = g.add_input("res", ElemType::kF32, {1, 6, 16});
  ValueId t = g.add_node(OpType::kGemm, {x, w, b})[0];
  t = g.add_node(OpType::kReshape, {t, g.add_constant("shape", Tensor::ints({3}, {6, 1, 16}))})[0];
  t = g.add_node(OpType::kTranspose, {t}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0];
  g.add_output(g.add_node(OpType::kAdd, {res, t})[0]);
  return g;
}

TEST_F(GraphSearch, CanonicalRewritesAreAppliedAndListed) {
  Graph g = vit_projection();
  SearchOptions o;
  o.budget = 0;
  o.descend = false;
  CostOracle costs = oracle();
  SearchResult none = optimize_graph(g, rules_, costs, o);
  auto counts = none.counts();
  EXPECT_EQ(counts["gemm_to_fused_matmul"], 1);
  EXPECT_EQ(counts["transpose_unit_dims"], 1);
  EXPECT_EQ(counts["reshape_elementwise"], 1);
  for (const std::string& r : none.rewrites) EXPECT_TRUE(rule(r).canonical()) << r;
  for (const Node& n : none.best.nodes()) EXPECT_FALSE(!n.removed && n.op == OpType::kTranspose);

  SearchResult fused = search(g, "backtrack", 50);
  int adds = 0, matmuls = 0;
  for (const Node& n : fused.best.nodes()) {
    if (n.removed) continue;
    adds += n.op == OpType::kAdd;
    if (n.op == OpType::kFusedMatMul) {
      ++matmuls;
      EXPECT_EQ(n.attr_string("epilogue", ""), "bias+residual");
    }
  }
  EXPECT_EQ(adds, 0);
  EXPECT_EQ(matmuls, 1);
  EXPECT_LT(fused.cost_after_us, none.cost_after_us);
  for (uint64_t seed : {1, 2}) {
    auto inputs = random_graph_inputs(g, seed);
    EXPECT_LE(max_scaled_error(run_graph(fused.best, inputs), run_graph(g, inputs)), 1.0);
  }
}

TEST_F(GraphSearch, GatherOfOneIndexAlongLeadingUnitAxesIsAView) {
  auto gather = [](std::vector<int64_t> shape, int64_t axis) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, shape);
    ValueId i = g.add_constant("i", Tensor::ints({}, {1}));
    g.add_output(g.add_node(OpType::kGather, {x, i}, {{"axis", axis}})[0]);
    return g;
  };
  CostOracle costs = oracle();
  // q, k or v of a packed [3, 1, 12, 64] projection: a contiguous block, no copy.
  Graph packed = gather({3, 1, 12, 64}, 0);
  EXPECT_EQ(costs.graph_cost(packed), 0.0);
  // Along axis 1 of [1, 3, 12, 64] too (the axes before it have extent 1) ...
  Graph leading_unit = gather({1, 3, 12, 64}, 1);
  EXPECT_EQ(costs.graph_cost(leading_unit), 0.0);
  // ... but along axis 1 of [2, 3, 12, 64] it gathers strided slabs: a copy that costs time.
  Graph strided = gather({2, 3, 12, 64}, 1);
  EXPECT_GT(costs.graph_cost(strided), 0.0);
}

// A convolution's output is held NHWC: splitting the channels of a batch-1 image (the parts of
// merged convolutions) copies strided slabs; splitting its rows (H) is a contiguous block. The
// same split of a tensor no convolution wrote stays a view.
TEST_F(GraphSearch, ChannelSplitsOfConvolutionOutputsAreCopies) {
  auto split = [](bool conv, int64_t axis) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {1, 64, 14, 14});
    ValueId y = x;
    if (conv) {
      ValueId w = g.add_constant("w", Tensor::floats({128, 64, 1, 1}, std::vector<float>(128 * 64, 0.01f)));
      y = g.add_node(OpType::kConv, {x, w})[0];
    } else {
      y = g.add_node(OpType::kRelu, {x})[0];
    }
    const int64_t half = g.value(y).shape[static_cast<size_t>(axis)] / 2;
    ValueId sizes = g.add_constant("split", Tensor::ints({2}, {half, half}));
    for (ValueId v : g.add_node(OpType::kSplit, {y, sizes}, {{"axis", axis}}, "", 2)) g.add_output(v);
    return g;
  };
  CostOracle costs = oracle();
  auto split_cost = [&](Graph g) {
    for (const Node& n : g.nodes())
      if (n.op == OpType::kSplit) return costs.cost(g, n);
    return OpCost{};
  };
  EXPECT_EQ(split_cost(split(true, 1)).source, CostSource::kMemory);
  EXPECT_GT(split_cost(split(true, 1)).time_us, 0.0);
  EXPECT_EQ(split_cost(split(true, 2)).source, CostSource::kFree);
  EXPECT_EQ(split_cost(split(false, 1)).source, CostSource::kFree);
}

TEST_F(GraphSearch, BadOptionsAreUserErrors) {
  Graph g = import_onnx(kGraphs + "/tiny_resblock.onnx");
  CostOracle costs = oracle();
  SearchOptions o;
  o.strategy = "anneal";
  EXPECT_THROW(optimize_graph(g, rules_, costs, o), UserError);
  o.strategy = "backtrack";
  o.alpha = 0.9;
  EXPECT_THROW(optimize_graph(g, rules_, costs, o), UserError);
}

TEST_F(GraphSearch, OracleMapsOperatorsToWorkloads) {
  Graph g = import_onnx(kGraphs + "/tiny_bert.onnx");
  auto entries = graph_workloads(g, DType::kF16);
  ASSERT_FALSE(entries.empty());
  bool softmax = false, layernorm = false, matmul = false;
  double weight = 0;
  for (const auto& e : entries) {
    softmax = softmax || e.workload.kind == OpKind::kSoftmax;
    layernorm = layernorm || e.workload.kind == OpKind::kLayernorm;
    matmul = matmul || e.workload.kind == OpKind::kMatmul;
    weight += e.weight;
  }
  EXPECT_TRUE(softmax && layernorm && matmul);
  // Every costed operator of the graph is counted once.
  int mapped = 0;
  for (const Node& n : g.nodes()) {
    mapped += !g.inputs_constant(n) && node_workload(g, n, DType::kF16).has_value();
  }
  EXPECT_EQ(weight, mapped);
}

}  // namespace
}  // namespace tessera::graph
