// Rewrite rules: every shipped rule verifies, wrong rules are rejected, a rule file whose
// shapes or integers are wrong or too large to verify is a one-line UserError naming it,
// matching respects uses outside the pattern, and the built-in families rewrite what they should.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "graph/oracle.h"
#include "graph/ops.h"
#include "graph/rules.h"

namespace tessera::graph {
namespace {

const RuleSet& shipped() {
  static const RuleSet set = load_rules();
  return set;
}

const Rule& rule(const std::string& name) {
  for (const auto& r : shipped().rules) {
    if (r->name() == name) return *r;
  }
  throw std::runtime_error("no rule " + name);
}

std::vector<std::string> shipped_names() {
  std::vector<std::string> names;
  for (const auto& r : shipped().rules) names.push_back(r->name());
  for (const auto& [name, why] : shipped().rejected) names.push_back(name);
  return names;
}

// Applies `r` at its first match in g until it no longer matches; returns how often it did.
int apply_all(const Rule& r, Graph& g) {
  int applied = 0;
  while (true) {
    auto matches = r.find(g, g.consumers());
    if (matches.empty()) return applied;
    auto next = r.apply(g, matches[0]);
    if (!next) return applied;
    g = std::move(*next);
    ++applied;
  }
}

void expect_same_outputs(const Graph& a, const Graph& b) {
  for (uint64_t seed : {1, 2}) {
    auto inputs = random_graph_inputs(a, seed);
    EXPECT_LE(max_scaled_error(run_graph(b, inputs), run_graph(a, inputs)), 1.0);
  }
}

// Live operators of type `op` in g.
int count_ops(const Graph& g, OpType op) {
  int n = 0;
  for (const Node& node : g.nodes()) n += !node.removed && node.op == op;
  return n;
}

Tensor ramp(std::vector<int64_t> shape, float scale) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) v[static_cast<size_t>(k)] = scale * static_cast<float>((k * 7) % 11 - 5);
  return Tensor::floats(std::move(shape), std::move(v));
}

TEST(GraphRules, ShippedRulesAllVerify) {
  for (const auto& [name, why] : shipped().rejected) ADD_FAILURE() << name << ": " << why;
  EXPECT_GE(shipped().rules.size(), 20u);
}

class EachRule : public ::testing::TestWithParam<std::string> {};

TEST_P(EachRule, PatternAndReplacementAgreeOnEveryCase) {
  const Rule* r = nullptr;
  for (const auto& x : shipped().rules) {
    if (x->name() == GetParam()) r = x.get();
  }
  ASSERT_NE(r, nullptr) << GetParam() << " was rejected";
  // verify_rule fails when a case does not match, so this also checks the pattern matches.
  EXPECT_EQ(verify_rule(*r, 4), std::nullopt);
  for (const Graph& g : r->verification_cases()) EXPECT_FALSE(r->find(g, g.consumers()).empty());
}

INSTANTIATE_TEST_SUITE_P(Shipped, EachRule, ::testing::ValuesIn(shipped_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

Json wrong_rule() {
  return parse_json(R"({
    "name": "relu_is_sigmoid",
    "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]},
    "replacement": {"nodes": [{"op": "Sigmoid", "inputs": ["x"], "outputs": ["y"]}]},
    "cases": [{"x": [4, 4]}]})", "test");
}

TEST(GraphRules, WrongRuleIsRejectedWithReason) {
  std::vector<std::unique_ptr<Rule>> rules;
  rules.push_back(parse_rule(wrong_rule(), "test"));
  RuleSet set = verify_rules(std::move(rules));
  EXPECT_TRUE(set.rules.empty());
  ASSERT_EQ(set.rejected.size(), 1u);
  EXPECT_EQ(set.rejected[0].first, "relu_is_sigmoid");
  EXPECT_NE(set.rejected[0].second.find("differ"), std::string::npos) << set.rejected[0].second;
}

TEST(GraphRules, WrongFoldIsRejected) {
  // Folding BatchNorm without the epsilon is close but not equal.
  Json j = parse_json(R"({
    "name": "bn_without_epsilon",
    "pattern": {"inputs": ["x", "scale", "beta", "mean", "var"],
      "nodes": [{"op": "BatchNormalization", "inputs": ["x", "scale", "beta", "mean", "var"], "outputs": ["y"],
                 "attrs": {"epsilon": {"equals": 0.5, "default": 0.5}}}], "outputs": ["y"]},
    "conditions": [{"constant": ["scale", "beta", "mean", "var"]}],
    "replacement": {"constants": [{"name": "axes", "ints": [1, 2]}], "nodes": [
      {"op": "Sqrt", "inputs": ["var"], "outputs": ["sd"]},
      {"op": "Div", "inputs": ["scale", "sd"], "outputs": ["s"]},
      {"op": "Unsqueeze", "inputs": ["s", "axes"], "outputs": ["s3"]},
      {"op": "Mul", "inputs": ["mean", "s"], "outputs": ["ms"]},
      {"op": "Sub", "inputs": ["beta", "ms"], "outputs": ["b"]},
      {"op": "Unsqueeze", "inputs": ["b", "axes"], "outputs": ["b3"]},
      {"op": "Mul", "inputs": ["x", "s3"], "outputs": ["xs"]},
      {"op": "Add", "inputs": ["xs", "b3"], "outputs": ["y"]}]},
    "cases": [{"x": [1, 3, 4, 4], "scale": [3], "beta": [3], "mean": [3], "var": {"shape": [3], "min": 0.5, "max": 2}}]
  })", "test");
  auto why = verify_rule(*parse_rule(j, "test"));
  ASSERT_TRUE(why.has_value());
}

TEST(GraphRules, MalformedRulesAreUserErrorsNamingTheRule) {
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      parse_rule(parse_json(text, "test"), "rules.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"name": "r"})", "missing");
  expect_error(R"({"name": "r", "pattern": {"inputs": ["x"], "nodes": [{"op": "Frobnicate", "inputs": ["x"],
    "outputs": ["y"]}], "outputs": ["y"]}, "replacement": {}, "cases": [{"x": [2]}]})", "unknown operator");
  expect_error(R"({"name": "r", "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["z"],
    "outputs": ["y"]}], "outputs": ["y"]}, "replacement": {}, "cases": [{"x": [2]}]})", "reads 'z'");
  expect_error(R"({"name": "r", "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"],
    "outputs": ["y"]}], "outputs": ["y"]}, "replacement": {"nodes": []}, "cases": [{"x": [2]}]})",
               "does not define pattern output 'y'");
  expect_error(R"({"name": "r", "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"],
    "outputs": ["y"]}], "outputs": ["y"]}, "replacement": {"outputs": {"y": "x"}}, "cases": []})", "cases");
  expect_error(R"({"name": "r", "canonical": 1, "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"],
    "outputs": ["y"]}], "outputs": ["y"]}, "replacement": {"outputs": {"y": "y"}}, "cases": [{"x": [2]}]})",
               "\"canonical\" must be true or false");
}

// A data rule is canonical or a fusion when its file says so; neither by default.
TEST(GraphRules, DataRulesSayWhetherTheyAreCanonicalOrFusions) {
  const std::string body = R"("pattern": {"inputs": ["x"], "nodes": [{"op": "Identity", "inputs": ["x"], "outputs": ["y"]}],
    "outputs": ["y"]}, "replacement": {"outputs": {"y": "x"}}, "cases": [{"x": [2, 3]}]})";
  auto plain = parse_rule(parse_json(R"({"name": "p", )" + body, "test"), "test");
  EXPECT_FALSE(plain->canonical());
  EXPECT_FALSE(plain->fusion());
  auto both = parse_rule(parse_json(R"({"name": "b", "canonical": true, "fusion": true, )" + body, "test"), "test");
  EXPECT_TRUE(both->canonical());
  EXPECT_TRUE(both->fusion());
  EXPECT_FALSE(verify_rule(*both).has_value());
}

TEST(GraphRules, InternalValueUsedOutsideThePatternBlocksTheMatch) {
  // x / sqrt2 is also an output, so the GELU subgraph cannot be replaced.
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
  ValueId c1 = g.add_constant("c1", Tensor::floats({}, {1.41421356f}));
  ValueId c2 = g.add_constant("c2", Tensor::floats({}, {1.0f}));
  ValueId c3 = g.add_constant("c3", Tensor::floats({}, {0.5f}));
  ValueId a = g.add_node(OpType::kDiv, {x, c1})[0];
  ValueId b = g.add_node(OpType::kErf, {a})[0];
  ValueId d = g.add_node(OpType::kAdd, {c2, b})[0];  // commuted operands match too
  ValueId e = g.add_node(OpType::kMul, {x, d})[0];
  ValueId y = g.add_node(OpType::kMul, {e, c3})[0];
  g.add_output(y);
  EXPECT_EQ(rule("gelu_from_erf").find(g, g.consumers()).size(), 1u);
  g.add_output(a);
  EXPECT_TRUE(rule("gelu_from_erf").find(g, g.consumers()).empty());
}

TEST(GraphRules, ScalarConditionsCheckValues) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
  ValueId c1 = g.add_constant("c1", Tensor::floats({}, {2.0f}));  // not sqrt(2)
  ValueId c2 = g.add_constant("c2", Tensor::floats({}, {1.0f}));
  ValueId c3 = g.add_constant("c3", Tensor::floats({}, {0.5f}));
  ValueId d = g.add_node(OpType::kAdd, {g.add_node(OpType::kErf, {g.add_node(OpType::kDiv, {x, c1})[0]})[0], c2})[0];
  g.add_output(g.add_node(OpType::kMul, {g.add_node(OpType::kMul, {x, d})[0], c3})[0]);
  EXPECT_TRUE(rule("gelu_from_erf").find(g, g.consumers()).empty());
}

TEST(GraphRules, QkvProjectionsMergeIntoOneMatmul) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {2, 6, 16});
  for (int k = 0; k < 3; ++k) {
    ValueId w = g.add_constant("w" + std::to_string(k), ramp({16, 16}, 0.1f * (k + 1)));
    ValueId b = g.add_constant("b" + std::to_string(k), ramp({16}, 0.05f));
    ValueId t = g.add_node(OpType::kMatMul, {x, w})[0];
    g.add_output(g.add_node(OpType::kAdd, {t, b})[0]);
  }
  Graph merged = g;
  EXPECT_EQ(apply_all(rule("fuse_epilogue"), merged), 3);
  EXPECT_EQ(apply_all(rule("merge_matmul"), merged), 2);
  int matmuls = 0;
  for (const Node& n : merged.nodes()) matmuls += n.op == OpType::kFusedMatMul;
  EXPECT_EQ(matmuls, 1);
  // The concatenated weights were folded into one constant of 48 columns.
  bool found = false;
  for (const Node& n : merged.nodes()) {
    if (n.op == OpType::kFusedMatMul) found = merged.value(n.inputs[1]).shape == std::vector<int64_t>{16, 48};
  }
  EXPECT_TRUE(found);
  expect_same_outputs(g, merged);
}

TEST(GraphRules, GroupedConvolutionUngroupsIntoABlockDiagonalWeight) {
  // A fused grouped convolution (bias + relu epilogue), as ResNeXt's 3x3s are after fusion.
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 8, 6, 6});
  ValueId w = g.add_constant("w", ramp({8, 2, 3, 3}, 0.1f));
  ValueId b = g.add_constant("b", ramp({8}, 0.05f));
  ValueId y = g.add_node(OpType::kConv, {x, w, b}, {{"group", int64_t{4}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}})[0];
  g.add_output(g.add_node(OpType::kRelu, {y})[0]);
  Graph fused = g;
  ASSERT_EQ(apply_all(rule("fuse_epilogue"), fused), 1);  // Conv(bias) + Relu
  Graph dense = fused;
  ASSERT_EQ(apply_all(rule("ungroup_conv"), dense), 1);
  int convs = 0;
  for (const Node& n : dense.nodes()) {
    if (n.removed || n.op != OpType::kFusedConv) continue;
    ++convs;
    EXPECT_EQ(n.attr_int("group", 1), 1);
    EXPECT_EQ(n.attr_string("epilogue", ""), "bias+relu");
    const Value& wd = dense.value(n.inputs[1]);
    ASSERT_EQ(wd.shape, (std::vector<int64_t>{8, 8, 3, 3}));
    // Output channel 5 is in group 2 (input channels 4 and 5): every other weight is zero.
    for (int64_t c = 0; c < 8; ++c) {
      float sum = 0;
      for (int64_t k = 0; k < 9; ++k) sum += std::abs(wd.constant->f[static_cast<size_t>((5 * 8 + c) * 9 + k)]);
      EXPECT_EQ(sum > 0, c == 4 || c == 5) << "input channel " << c;
    }
  }
  EXPECT_EQ(convs, 1);
  expect_same_outputs(g, dense);
}

TEST(GraphRules, ActivationsAfterAMergedConvolutionsSplitMoveIntoItsEpilogue) {
  // Three 1x1 branches on one input, merged before their Relus were fused (as a best-first
  // search may do): the Relus sit after the Split, one launch each, until split_activation
  // moves them before it and fuse_epilogue takes the one Relu into the merged convolution.
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 6, 5, 5});
  for (int k = 0; k < 3; ++k) {
    ValueId w = g.add_constant("w" + std::to_string(k), ramp({4 + k, 6, 1, 1}, 0.1f * (k + 1)));
    ValueId b = g.add_constant("b" + std::to_string(k), ramp({4 + k}, 0.05f));
    g.add_output(g.add_node(OpType::kRelu, {g.add_node(OpType::kConv, {x, w, b})[0]})[0]);
  }
  Graph merged = g;
  ASSERT_EQ(apply_all(rule("merge_conv"), merged), 2);
  EXPECT_TRUE(rule("fuse_epilogue").find(merged, merged.consumers()).empty());
  EXPECT_EQ(apply_all(rule("split_activation"), merged), 2);  // the inner Split, then the outer
  EXPECT_EQ(apply_all(rule("fuse_epilogue"), merged), 1);
  int convs = 0, relus = 0;
  for (const Node& n : merged.nodes()) {
    if (n.removed) continue;
    relus += n.op == OpType::kRelu;
    if (n.op == OpType::kFusedConv) {
      ++convs;
      EXPECT_EQ(n.attr_string("epilogue", ""), "bias+relu");
    }
  }
  EXPECT_EQ(convs, 1);
  EXPECT_EQ(relus, 0);
  expect_same_outputs(g, merged);
}

TEST(GraphRules, SplitActivationNeedsTheSameActivationOnEveryPartAlone) {
  auto split_graph = [](OpType second, bool shared) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {2, 8});
    auto parts = g.add_node(OpType::kSplit, {x}, {{"axis", int64_t{1}}}, "split", 2);
    g.add_output(g.add_node(OpType::kRelu, {parts[0]})[0]);
    g.add_output(g.add_node(second, {parts[1]})[0]);
    if (shared) g.add_output(parts[1]);  // the part itself is needed too
    return g;
  };
  Graph same = split_graph(OpType::kRelu, false);
  EXPECT_EQ(rule("split_activation").find(same, same.consumers()).size(), 1u);
  Graph other = split_graph(OpType::kSigmoid, false);
  EXPECT_TRUE(rule("split_activation").find(other, other.consumers()).empty());
  Graph read_twice = split_graph(OpType::kRelu, true);
  EXPECT_TRUE(rule("split_activation").find(read_twice, read_twice.consumers()).empty());
}

TEST(GraphRules, TransposeOfUnitAxesOnlyIsAReshape) {
  auto transpose = [](std::vector<int64_t> shape, std::vector<int64_t> perm) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, shape);
    g.add_output(g.add_node(OpType::kRelu, {g.add_node(OpType::kTranspose, {x}, {{"perm", perm}})[0]})[0]);
    return g;
  };
  // [1, 5, 4] -> [5, 1, 4]: only the unit axis moves, every element stays where it was.
  Graph unit = transpose({1, 5, 4}, {1, 0, 2});
  Graph reshaped = unit;
  ASSERT_EQ(apply_all(rule("transpose_unit_dims"), reshaped), 1);
  EXPECT_EQ(count_ops(reshaped, OpType::kTranspose), 0);
  EXPECT_EQ(count_ops(reshaped, OpType::kReshape), 1);
  expect_same_outputs(unit, reshaped);
  // Axes of extent > 1 that change order, or a non-unit axis moved, are real transposes.
  Graph swapped = transpose({1, 5, 4}, {0, 2, 1});
  EXPECT_TRUE(rule("transpose_unit_dims").find(swapped, swapped.consumers()).empty());
  Graph batch = transpose({2, 5, 4}, {1, 0, 2});
  EXPECT_TRUE(rule("transpose_unit_dims").find(batch, batch.consumers()).empty());
}

TEST(GraphRules, ElementwiseAfterAProjectionsReshapeMovesBeforeIt) {
  // A residual added after a projection's Reshape (as ViT's and BERT's exports have it).
  auto projection = [](OpType source, bool residual_from_matmul) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {6, 8});
    ValueId w = g.add_constant("w", ramp({8, 8}, 0.1f));
    ValueId shape = g.add_constant("shape", Tensor::ints({3}, {2, 3, 8}));
    ValueId t = source == OpType::kMatMul ? g.add_node(OpType::kMatMul, {x, w})[0] : g.add_node(source, {x})[0];
    ValueId r = g.add_node(OpType::kReshape, {t, shape})[0];
    ValueId res = residual_from_matmul
                      ? g.add_node(OpType::kMatMul, {g.add_input("y", ElemType::kF32, {2, 3, 8}),
                                                     g.add_constant("w2", ramp({8, 8}, 0.2f))})[0]
                      : g.add_input("res", ElemType::kF32, {2, 3, 8});
    g.add_output(g.add_node(OpType::kAdd, {res, r})[0]);
    return g;
  };
  Graph g = projection(OpType::kMatMul, false);
  Graph moved = g;
  ASSERT_EQ(apply_all(rule("reshape_elementwise"), moved), 1);
  // The Add now reads the MatMul's result directly, so the residual fuses into its epilogue.
  bool next_to_matmul = false;
  for (const Node& n : moved.nodes()) {
    if (n.removed || n.op != OpType::kAdd) continue;
    for (ValueId v : n.inputs) {
      NodeId p = moved.value(v).producer;
      next_to_matmul = next_to_matmul || (p != kNone && moved.node(p).op == OpType::kMatMul);
    }
  }
  EXPECT_TRUE(next_to_matmul);
  expect_same_outputs(g, moved);
  ASSERT_EQ(apply_all(rule("fuse_epilogue"), moved), 1);
  for (const Node& n : moved.nodes()) {
    if (!n.removed && n.op == OpType::kFusedMatMul) {
      EXPECT_EQ(n.attr_string("epilogue", ""), "residual");
    }
  }
  EXPECT_EQ(count_ops(moved, OpType::kAdd), 0);
  expect_same_outputs(g, moved);
  // Not after a Reshape of anything but a contraction's result, and not when the other
  // operand is a contraction's result (the rewrite would then apply again to its own result,
  // the other operand now being a Reshape of a contraction).
  Graph relu = projection(OpType::kRelu, false);
  EXPECT_TRUE(rule("reshape_elementwise").find(relu, relu.consumers()).empty());
  Graph both = projection(OpType::kMatMul, true);
  EXPECT_TRUE(rule("reshape_elementwise").find(both, both.consumers()).empty());
}

TEST(GraphRules, MatmulScalarsNeedsOneElementScales) {
  auto scaled = [](std::vector<int64_t> s_shape) {
    Graph g;
    ValueId a = g.add_input("a", ElemType::kF32, {2, 3, 8});
    ValueId b = g.add_input("b", ElemType::kF32, {2, 8, 5});
    ValueId s1 = g.add_constant("s1", ramp({}, 0.5f));
    ValueId s2 = g.add_constant("s2", ramp(s_shape, 0.25f));
    ValueId ma = g.add_node(OpType::kMul, {a, s1})[0];
    ValueId mb = g.add_node(OpType::kMul, {b, s2})[0];
    g.add_output(g.add_node(OpType::kMatMul, {ma, mb})[0]);
    return g;
  };
  Graph g = scaled({1});
  Graph once = g;
  ASSERT_EQ(apply_all(rule("matmul_scalars"), once), 1);
  int muls = 0;
  for (const Node& n : once.nodes()) muls += !n.removed && n.op == OpType::kMul && !once.inputs_constant(n);
  EXPECT_EQ(muls, 1);  // one scaling of the product (the scales' product is a constant)
  expect_same_outputs(g, once);
  // A scale per row of b ([8, 1], along the axis the matmul sums over) does not come out of
  // the sum: the scalar condition rejects it.
  Graph per_row = scaled({8, 1});
  EXPECT_TRUE(rule("matmul_scalars").find(per_row, per_row.consumers()).empty());
}

TEST(GraphRules, NestedSplitsAlongOneAxisBecomeOne) {
  auto nested = [](int64_t inner_axis) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {2, 6, 12});
    auto outer = g.add_node(OpType::kSplit, {x, g.add_constant("outer", Tensor::ints({2}, {8, 4}))},
                            {{"axis", int64_t{2}}}, "outer", 2);
    auto inner = g.add_node(OpType::kSplit, {outer[0]}, {{"axis", inner_axis}}, "inner", 2);
    for (ValueId v : {inner[0], inner[1], outer[1]}) g.add_output(g.add_node(OpType::kRelu, {v})[0]);
    return g;
  };
  Graph g = nested(-1);
  Graph one = g;
  ASSERT_EQ(apply_all(rule("split_split"), one), 1);
  int splits = 0;
  for (const Node& n : one.nodes()) {
    if (n.removed || n.op != OpType::kSplit) continue;
    ++splits;
    ASSERT_EQ(n.outputs.size(), 3u);
    EXPECT_EQ(one.value(n.outputs[0]).shape, (std::vector<int64_t>{2, 6, 4}));
    EXPECT_EQ(one.value(n.outputs[2]).shape, (std::vector<int64_t>{2, 6, 4}));
  }
  EXPECT_EQ(splits, 1);
  expect_same_outputs(g, one);
  // Along another axis the parts are not slabs of one axis: no match.
  Graph across = nested(1);
  EXPECT_TRUE(rule("split_split").find(across, across.consumers()).empty());
}

// A merged query/key/value projection's result [1, 5, 24] split in three, each part reshaped
// to 2 heads of 4 and transposed (the key to [1, 2, 4, 5], as BERT's export does).
Graph attention_heads(std::vector<int64_t> value_heads, bool value_read_twice) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 5, 24});
  auto parts = g.add_node(OpType::kSplit, {x}, {{"axis", int64_t{-1}}}, "split", 3);
  const std::vector<std::vector<int64_t>> perms{{0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}};
  for (size_t k = 0; k < 3; ++k) {
    std::vector<int64_t> shape = k == 2 ? value_heads : std::vector<int64_t>{1, 5, 2, 4};
    ValueId r = g.add_node(OpType::kReshape, {parts[k], g.add_constant("shape" + std::to_string(k),
                                                                        Tensor::ints({4}, shape))})[0];
    g.add_output(g.add_node(OpType::kTranspose, {r}, {{"perm", perms[k]}})[0]);
    if (k == 2 && value_read_twice) g.add_output(r);
  }
  return g;
}

TEST(GraphRules, SplitHeadsTransposesTheMergedProjectionOnce) {
  Graph g = attention_heads({1, 5, 2, 4}, false);
  Graph heads = g;
  ASSERT_EQ(apply_all(rule("split_heads"), heads), 1);
  EXPECT_EQ(count_ops(heads, OpType::kSplit), 0);
  EXPECT_EQ(count_ops(heads, OpType::kGather), 3);
  std::vector<std::vector<int64_t>> perms;
  for (const Node& n : heads.nodes()) {
    if (!n.removed && n.op == OpType::kTranspose) perms.push_back(n.attr_ints("perm"));
  }
  // One Transpose of [1, 5, 3, 2, 4] that puts the three first, and the key's swap of its
  // last two axes.
  std::sort(perms.begin(), perms.end());
  EXPECT_EQ(perms, (std::vector<std::vector<int64_t>>{{0, 1, 3, 2}, {2, 0, 3, 1, 4}}));
  expect_same_outputs(g, heads);
  // Parts of other head shapes, or a part also needed untransposed, are left alone.
  Graph other = attention_heads({1, 5, 4, 2}, false);
  EXPECT_TRUE(rule("split_heads").find(other, other.consumers()).empty());
  Graph twice = attention_heads({1, 5, 2, 4}, true);
  EXPECT_TRUE(rule("split_heads").find(twice, twice.consumers()).empty());
}

// ViT's attention input: a packed projection's [5, 1, 24] reshaped to [5, 1, 3, 8], moved
// to [3, 5, 1, 8] by one Transpose, and each of query, key and value (a Gather) split into 2
// heads of 4 by a Reshape and a Transpose of its own.
Graph vit_heads(bool key_differs) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {5, 1, 24});
  ValueId v = g.add_node(OpType::kReshape, {x, g.add_constant("s1", Tensor::ints({4}, {5, 1, 3, 8}))})[0];
  v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{2, 0, 1, 3}}})[0];
  ValueId heads = g.add_constant("heads", Tensor::ints({3}, {5, 2, 4}));
  for (int64_t k = 0; k < 3; ++k) {
    ValueId part = g.add_node(OpType::kGather, {v, g.add_constant("i" + std::to_string(k), Tensor::ints({}, {k}))},
                              {{"axis", int64_t{0}}})[0];
    ValueId r = g.add_node(OpType::kReshape, {part, heads})[0];
    std::vector<int64_t> perm = key_differs && k == 1 ? std::vector<int64_t>{1, 2, 0} : std::vector<int64_t>{1, 0, 2};
    g.add_output(g.add_node(OpType::kTranspose, {r}, {{"perm", perm}})[0]);
  }
  return g;
}

TEST(GraphRules, GatherHeadsThenLayoutChainLeaveOneTranspose) {
  Graph g = vit_heads(false);
  Graph heads = g;
  ASSERT_EQ(apply_all(rule("gather_heads"), heads), 1);
  EXPECT_EQ(count_ops(heads, OpType::kTranspose), 2);  // the packed one, then the heads'
  EXPECT_EQ(count_ops(heads, OpType::kGather), 3);
  expect_same_outputs(g, heads);
  // The two Transposes, with the Reshapes between them, compose into one.
  ASSERT_EQ(apply_all(rule("layout_chain"), heads), 1);
  EXPECT_EQ(count_ops(heads, OpType::kTranspose), 1);
  expect_same_outputs(g, heads);
  EXPECT_TRUE(rule("layout_chain").find(heads, heads.consumers()).empty());  // a fixed point
  // A head transposed differently is not one of the group.
  Graph differs = vit_heads(true);
  EXPECT_TRUE(rule("gather_heads").find(differs, differs.consumers()).empty());
}

TEST(GraphRules, LayoutChainStopsWhereAMatmulTakesTheTranspose) {
  // x [2, 4, 6] transposed to [4, 2, 6], reshaped to [4, 12], then the swap of its last two
  // axes, scaled by a scalar, read by a matmul: the swap is the matmul's transposed operand.
  auto chain = [](bool into_matmul) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {2, 4, 6});
    ValueId v = g.add_node(OpType::kTranspose, {x}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0];
    v = g.add_node(OpType::kReshape, {v, g.add_constant("s", Tensor::ints({2}, {4, 12}))})[0];
    v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{1, 0}}})[0];  // [12, 4]
    v = g.add_node(OpType::kMul, {v, g.add_constant("scale", Tensor::floats({}, {0.5f}))})[0];
    if (into_matmul) v = g.add_node(OpType::kMatMul, {g.add_input("a", ElemType::kF32, {3, 12}), v})[0];
    g.add_output(v);
    return g;
  };
  Graph matmul = chain(true);
  EXPECT_TRUE(rule("layout_chain").find(matmul, matmul.consumers()).empty());
  Graph alone = chain(false);
  Graph one = alone;
  ASSERT_EQ(apply_all(rule("layout_chain"), one), 1);
  EXPECT_EQ(count_ops(one, OpType::kTranspose), 1);
  expect_same_outputs(alone, one);
}

TEST(GraphRules, ScalarAfterAMatmulBecomesItsAlpha) {
  // Attention's scores: (q k^T) / sqrt(d), then a softmax. The Div folds into the matmul as its
  // alpha, and the workload the kernel runs says so.
  Graph g;
  ValueId q = g.add_input("q", ElemType::kF32, {1, 12, 16, 64});
  ValueId k = g.add_input("k", ElemType::kF32, {1, 12, 64, 16});
  ValueId s = g.add_constant("s", Tensor::floats({}, {8.0f}));
  ValueId t = g.add_node(OpType::kMatMul, {q, k})[0];
  t = g.add_node(OpType::kDiv, {t, s})[0];
  g.add_output(g.add_node(OpType::kSoftmax, {t}, {{"axis", int64_t{-1}}})[0]);
  Graph fused = g;
  ASSERT_EQ(apply_all(rule("fuse_epilogue"), fused), 1);
  const Node* mm = nullptr;
  for (const Node& n : fused.nodes()) {
    if (!n.removed && n.op == OpType::kFusedMatMul) mm = &n;
  }
  ASSERT_NE(mm, nullptr);
  EXPECT_DOUBLE_EQ(mm->attr_float("alpha", 1.0), 0.125);
  EXPECT_EQ(mm->attr_string("epilogue", "x"), "");
  auto w = node_workload(fused, *mm, DType::kF16);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->key(), "batch_matmul:b=12,m=16,n=16,k=64,alpha=0.125:f16");
  expect_same_outputs(g, fused);
  // A scale that is a product of float constants (ViT's exporter splits 1 / sqrt(d) between q
  // and k) is keyed as the shortest decimal of the float the kernel multiplies by.
  {
    Graph h;
    ValueId x = h.add_input("x", ElemType::kF32, {4, 8});
    ValueId y = h.add_input("y", ElemType::kF32, {8, 4});
    const float half_scale = 0.35355339f;
    Attrs a{{"trans_a", int64_t{0}}, {"trans_b", int64_t{0}}, {"epilogue", std::string("")},
            {"alpha", static_cast<double>(half_scale * half_scale)}};
    ValueId z = h.add_node(OpType::kFusedMatMul, {x, y}, a)[0];
    h.add_output(z);
    auto scaled = node_workload(h, h.node(h.value(z).producer), DType::kF16);
    ASSERT_TRUE(scaled.has_value());
    EXPECT_EQ(scaled->key(), "matmul:m=4,n=4,k=8,alpha=0.12499999:f16");
  }

  // A scale after a bias would scale the bias too: it stays a separate operator. So does a
  // divisor that is not one element, one that is zero, and a scalar divided by the product.
  auto blocked = [&](auto build) {
    Graph h;
    ValueId x = h.add_input("x", ElemType::kF32, {4, 8});
    ValueId wt = h.add_constant("w", ramp({8, 8}, 0.1f));
    ValueId y = h.add_node(OpType::kMatMul, {x, wt})[0];
    h.add_output(build(h, y));
    Graph copy = h;
    int fused_ops = apply_all(rule("fuse_epilogue"), copy);
    for (const Node& n : copy.nodes()) {
      if (!n.removed && n.op == OpType::kFusedMatMul) {
        EXPECT_DOUBLE_EQ(n.attr_float("alpha", 1.0), 1.0);
      }
    }
    if (fused_ops > 0) expect_same_outputs(h, copy);
    return fused_ops;
  };
  EXPECT_EQ(blocked([](Graph& h, ValueId y) {
              ValueId b = h.add_constant("b", ramp({8}, 0.05f));
              ValueId two = h.add_constant("two", Tensor::floats({}, {2.0f}));
              return h.add_node(OpType::kMul, {h.add_node(OpType::kAdd, {y, b})[0], two})[0];
            }),
            1);  // the bias only
  EXPECT_EQ(blocked([](Graph& h, ValueId y) {
              return h.add_node(OpType::kMul, {y, h.add_constant("v", ramp({8}, 0.5f))})[0];
            }),
            0);
  EXPECT_EQ(blocked([](Graph& h, ValueId y) {
              return h.add_node(OpType::kDiv, {y, h.add_constant("z", Tensor::floats({}, {0.0f}))})[0];
            }),
            0);
  EXPECT_EQ(blocked([](Graph& h, ValueId y) {
              return h.add_node(OpType::kDiv, {h.add_constant("one", Tensor::floats({}, {1.0f})), y})[0];
            }),
            0);
}

TEST(GraphRules, EpilogueFusionStopsAtSharedValues) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
  ValueId w = g.add_constant("w", ramp({8, 8}, 0.1f));
  ValueId t = g.add_node(OpType::kMatMul, {x, w})[0];
  ValueId r = g.add_node(OpType::kRelu, {t})[0];
  g.add_output(r);
  g.add_output(t);  // the pre-activation is needed too
  EXPECT_TRUE(rule("fuse_epilogue").find(g, g.consumers()).empty());
}

TEST(GraphRules, ElementwiseChainsGrowAndKeepSemantics) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {2, 4, 8});
  ValueId m = g.add_input("m", ElemType::kF32, {2, 4, 8});
  ValueId s = g.add_constant("s", Tensor::floats({}, {0.125f}));
  ValueId t = g.add_node(OpType::kMul, {x, s})[0];
  t = g.add_node(OpType::kAdd, {m, t})[0];
  t = g.add_node(OpType::kTanh, {t})[0];
  t = g.add_node(OpType::kSub, {t, m})[0];
  g.add_output(g.add_node(OpType::kSoftmax, {t})[0]);
  Graph chained = g;
  EXPECT_EQ(apply_all(rule("eltwise_chain"), chained), 3);
  int chains = 0;
  for (const Node& n : chained.nodes()) {
    if (n.op == OpType::kEltwiseChain) {
      ++chains;
      EXPECT_EQ(n.attr_string("ops", ""), "mul+add+tanh+sub");
    }
  }
  EXPECT_EQ(chains, 1);
  expect_same_outputs(g, chained);
}

TEST(GraphRules, ChainDoesNotTakeTheRightOperandOfSub) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {8});
  ValueId y = g.add_input("y", ElemType::kF32, {8});
  ValueId t = g.add_node(OpType::kRelu, {x})[0];
  g.add_output(g.add_node(OpType::kSub, {y, t})[0]);  // y - relu(x): relu's value is the right operand
  EXPECT_TRUE(rule("eltwise_chain").find(g, g.consumers()).empty());
}

TEST(GraphRules, FoldConstantsEvaluatesConstantSubgraphs) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {3});
  ValueId a = g.add_constant("a", Tensor::floats({3}, {1, 2, 3}));
  ValueId b = g.add_constant("b", Tensor::floats({3}, {4, 5, 6}));
  ValueId s = g.add_node(OpType::kMul, {a, b})[0];
  g.add_output(g.add_node(OpType::kAdd, {x, s})[0]);
  EXPECT_EQ(fold_constants(g), 1);
  EXPECT_EQ(g.live_nodes(), 1);
  const Node& add = g.nodes()[0];
  const Value& folded = g.value(add.inputs[1]);
  ASSERT_TRUE(folded.constant);
  EXPECT_EQ(folded.constant->f, (std::vector<float>{4, 10, 18}));
}

// A rules directory holding `text` as bad.json, removed again when the test ends.
class RuleFile {
 public:
  explicit RuleFile(const std::string& text) {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("tessera_rules_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "bad.json") << text;
  }
  ~RuleFile() { std::filesystem::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  std::string file() const { return (dir_ / "bad.json").string(); }

 private:
  std::filesystem::path dir_;
};

// A Transpose rule over input x whose case is `case_json` (pattern and replacement agree).
std::string transpose_rule(const std::string& case_json) {
  return R"({"name": "transpose_twice",
    "pattern": {"inputs": ["x"], "nodes": [
      {"id": "t1", "op": "Transpose", "inputs": ["x"], "outputs": ["a"], "attrs": {"perm": [1, 0]}},
      {"id": "t2", "op": "Transpose", "inputs": ["a"], "outputs": ["y"], "attrs": {"perm": [1, 0]}}],
      "outputs": ["y"]},
    "replacement": {"outputs": {"y": "x"}},
    "cases": [)" +
         case_json + "]}";
}

// Loading the shipped rules plus the file's is a UserError naming the file and the rule and
// containing every one of `needles`.
void expect_load_error(const std::string& text, const std::vector<std::string>& needles) {
  RuleFile f(text);
  try {
    RuleSet set = load_rules(f.dir());
    ADD_FAILURE() << "no error for " << text << " (" << set.rejected.size() << " rejected)";
  } catch (const UserError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(f.file()), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    for (const std::string& n : needles)
      EXPECT_NE(what.find(n), std::string::npos) << "no '" << n << "' in: " << what;
  }
}

TEST(GraphRules, AGoodRuleFileLoadsAndVerifiesBesideTheShippedOnes) {
  RuleFile f(transpose_rule(R"({"x": [3, 5]})"));
  RuleSet set = load_rules(f.dir());
  EXPECT_TRUE(set.rejected.empty());
  EXPECT_EQ(set.rules.size(), shipped().rules.size() + 1);
}

TEST(GraphRules, ARuleNamedLikeAShippedOneIsAUserErrorNamingBothFiles) {
  std::string text = transpose_rule(R"({"x": [3, 5]})");
  text.replace(text.find("transpose_twice"), std::string("transpose_twice").size(), "identity_elim");
  expect_load_error(text, {"'identity_elim'", "configs/rules/layout.json"});
}

TEST(GraphRules, IntegersThatDisagreeWithTheirShapeAreUserErrors) {
  // Before: an internal error (Tensor::ints: size or type) in ir.cc.
  expect_load_error(R"({"name": "reshape_ints",
    "pattern": {"inputs": ["x", "s"], "nodes": [{"id": "r", "op": "Reshape", "inputs": ["x", "s"], "outputs": ["y"]}],
                "outputs": ["y"]},
    "replacement": {"outputs": {"y": "x"}},
    "cases": [{"x": [2, 3], "s": {"shape": [3], "ints": [2, 3]}}]})",
                    {"'reshape_ints'", "case 0", "input 's'", "\"ints\" has 2 values for shape [3]"});
  // An i64 constant without its values.
  expect_load_error(R"({"name": "reshape_no_ints",
    "pattern": {"inputs": ["x", "s"], "nodes": [{"id": "r", "op": "Reshape", "inputs": ["x", "s"], "outputs": ["y"]}],
                "outputs": ["y"]},
    "conditions": [{"constant": "s"}],
    "replacement": {"outputs": {"y": "x"}},
    "cases": [{"x": [2, 3], "s": {"shape": [2], "type": "i64"}}]})",
                    {"'reshape_no_ints'", "needs its values as \"ints\""});
  // Attribute integers that do not fit the case's shapes: a permutation of the wrong rank.
  expect_load_error(R"({"name": "bad_perm",
    "pattern": {"inputs": ["x"], "nodes": [{"id": "t", "op": "Transpose", "inputs": ["x"], "outputs": ["y"],
                "attrs": {"perm": [2, 0, 1]}}], "outputs": ["y"]},
    "replacement": {"outputs": {"y": "x"}},
    "cases": [{"x": [2, 3]}]})",
                    {"'bad_perm'", "case 0", "pattern node 't'", "perm"});
  // A permutation of a scalar (shape inference would read past the shape).
  expect_load_error(transpose_rule(R"({"x": []})"),
                    {"'transpose_twice'", "pattern node 't1'", "perm [1, 0]"});
  // Split sizes that do not sum to the axis.
  expect_load_error(R"({"name": "bad_split",
    "pattern": {"inputs": ["x"], "nodes": [{"id": "s", "op": "Split", "inputs": ["x"], "outputs": ["a", "b"],
                "attrs": {"axis": 1, "split": [2, 5]}}, {"id": "c", "op": "Concat", "inputs": ["a", "b"],
                "outputs": ["y"], "attrs": {"axis": 1}}], "outputs": ["y"]},
    "replacement": {"outputs": {"y": "x"}},
    "cases": [{"x": [2, 6]}]})",
                    {"'bad_split'", "pattern node 's'", "sums to 7"});
  // A shape entry that is no integer, and a case that names no pattern input.
  expect_load_error(transpose_rule(R"({"x": [2.5, 3]})"), {"'transpose_twice'", "must be an integer"});
  expect_load_error(transpose_rule(R"({"x": [2, 3], "z": [1]})"), {"'z', which is no pattern input"});
}

TEST(GraphRules, AHugeDimensionIsAUserErrorSayingTheBound) {
  // Before: `graph rules` ran past two minutes with 8.6 GB resident.
  expect_load_error(
      transpose_rule(R"({"x": [1000000007, 1]})"),
      {"'transpose_twice'", "case 0", "[1000000007, 1]", std::to_string(1 << 20) + " elements"});
  // Each tensor within the bound, but not all of a case's together.
  expect_load_error(R"({"name": "big_add",
    "pattern": {"inputs": ["a", "b", "c", "d", "e"], "nodes": [
      {"id": "n0", "op": "Add", "inputs": ["a", "b"], "outputs": ["s0"]},
      {"id": "n1", "op": "Add", "inputs": ["s0", "c"], "outputs": ["s1"]},
      {"id": "n2", "op": "Add", "inputs": ["s1", "d"], "outputs": ["s2"]},
      {"id": "n3", "op": "Add", "inputs": ["s2", "e"], "outputs": ["y"]}], "outputs": ["y"]},
    "replacement": {"nodes": [{"op": "Add", "inputs": ["a", "b"], "outputs": ["y"]}]},
    "cases": [{"a": [1024, 1024], "b": [1024, 1024], "c": [1024, 1024], "d": [1024, 1024], "e": [1024, 1024]}]})",
                    {"'big_add'", "case 0", "together", std::to_string(1 << 22)});
  // An intermediate the pattern computes from small inputs (a constant shape for Expand).
  expect_load_error(R"({"name": "big_expand",
    "pattern": {"inputs": ["x", "s"], "nodes": [{"id": "e", "op": "Expand", "inputs": ["x", "s"], "outputs": ["y"]}],
                "outputs": ["y"]},
    "replacement": {"nodes": [{"op": "Expand", "inputs": ["x", "s"], "outputs": ["y"]}]},
    "cases": [{"x": [1], "s": {"ints": [65536, 65536]}}]})",
                    {"'big_expand'", "node 'e'", "[65536, 65536]", std::to_string(1 << 20) + " elements"});
}

TEST(GraphRules, AnOverflowingProductIsAUserErrorNotZeroElements) {
  // Before: 2^32 x 2^32 x 16 wrapped to 0 elements and the rule was reported verified.
  expect_load_error(
      transpose_rule(R"({"x": [4294967296, 4294967296, 16]})"),
      {"'transpose_twice'", "[4294967296, 4294967296, 16]", std::to_string(1 << 20) + " elements"});
  // Past int64 altogether.
  expect_load_error(transpose_rule(R"({"x": [18446744073709551615, 1]})"), {"'transpose_twice'", "integer"});
}

TEST(GraphRules, ANegativeOrZeroDimensionIsAUserError) {
  // Before: std::bad_alloc or vector::_M_default_append.
  expect_load_error(transpose_rule(R"({"x": [-3, 2]})"), {"'transpose_twice'", "[-3, 2]", "at least 1"});
  expect_load_error(transpose_rule(R"({"x": [0, 2]})"), {"'transpose_twice'", "[0, 2]", "at least 1"});
  expect_load_error(transpose_rule(R"({"x": {"shape": [2, -1], "min": 0, "max": 1}})"),
                    {"[2, -1]", "at least 1"});
}

TEST(GraphRules, AReplacementTooLargeToEvaluateIsRejectedWithTheBound) {
  // The replacement's intermediate is only known once it is applied: a rejection, not a run.
  Json j = parse_json(R"({"name": "expand_back",
    "pattern": {"inputs": ["x"], "nodes": [{"op": "Relu", "inputs": ["x"], "outputs": ["y"]}], "outputs": ["y"]},
    "replacement": {"constants": [{"name": "s", "ints": [4294967296, 4294967296]}], "nodes": [
      {"op": "Expand", "inputs": ["x", "s"], "outputs": ["big"]},
      {"op": "ReduceMean", "inputs": ["big"], "outputs": ["y"], "attrs": {"keepdims": 0}}]},
    "cases": [{"x": []}]})",
                      "test");
  auto why = verify_rule(*parse_rule(j, "test"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("elements verification allows"), std::string::npos) << *why;
}

TEST(GraphRules, MissingRulesDirectoryIsAUserErrorNamingIt) {
  try {
    load_rules("/nonexistent/rules");
    ADD_FAILURE() << "no error for a missing rules directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/rules"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera::graph
