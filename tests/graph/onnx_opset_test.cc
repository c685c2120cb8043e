// Models of opsets 18-21: each rewrite to opset 17 (graph/onnx_opset.h) against the same
// computation written at opset 17, or against the operator's definition; what has no
// opset-17 form is refused with the node's name.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "tests/graph/onnx_test_util.h"

namespace tessera::graph {
namespace {

using namespace onnx_testing;

void set_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

// The two models compute the same on random inputs, and the newer one exports (at opset 17).
void expect_same(const ModelBuilder& newer, const ModelBuilder& at17) {
  Graph a = import(newer), b = import(at17);
  expect_same_values(a, b);
  expect_round_trip(a);
}

TEST(OnnxOpsets, ImportsOpset18To21AndRefusesOthers) {
  for (int64_t opset : {18, 19, 20, 21}) {
    ModelBuilder m(opset);
    m.model().set_ir_version(opset >= 21 ? 10 : 9);
    m.input("X", {2});
    m.node("Relu", {"X"}, {"Y"});
    m.output("Y");
    Graph g = import(m);
    EXPECT_EQ(only_node(g, OpType::kRelu).inputs.size(), 1u) << "opset " << opset;
    onnx::ModelProto exported = parse(export_onnx(g));
    EXPECT_EQ(exported.opset_import(0).version(), 17);
    EXPECT_EQ(exported.ir_version(), 8);
  }
  for (int64_t opset : {12, 22}) {
    ModelBuilder m(opset);
    m.input("X", {2});
    m.node("Relu", {"X"}, {"Y"});
    m.output("Y");
    expect_error([&] { import(m); }, {"opset " + std::to_string(opset), "Tessera reads opset 13-21"});
  }
}

TEST(OnnxOpsets, ReduceAxesInputBecomesTheAttribute) {
  for (const char* op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd"}) {
    ModelBuilder newer(18), at17(17);
    for (ModelBuilder* m : {&newer, &at17}) m->input("X", {2, 3, 4});
    newer.int_initializer("axes", {2}, {-1, 1});
    set_int(newer.node(op, {"X", "axes"}, {"Y"}, "r"), "keepdims", 0);
    onnx::NodeProto& r = at17.node(op, {"X"}, {"Y"}, "r");
    set_ints(r, "axes", {-1, 1});
    set_int(r, "keepdims", 0);
    for (ModelBuilder* m : {&newer, &at17}) m->output("Y");
    SCOPED_TRACE(op);
    expect_same(newer, at17);
  }
  // No axes: every axis; no axes with noop_with_empty_axes: nothing (an Identity).
  ModelBuilder all(18), all17(17), none(18);
  for (ModelBuilder* m : {&all, &all17, &none}) m->input("X", {2, 3});
  all.node("ReduceMean", {"X"}, {"Y"});
  all17.node("ReduceMean", {"X"}, {"Y"});
  set_int(none.node("ReduceMean", {"X"}, {"Y"}), "noop_with_empty_axes", 1);
  for (ModelBuilder* m : {&all, &all17, &none}) m->output("Y");
  expect_same(all, all17);
  Graph identity = import(none);
  std::vector<Tensor> in = random_graph_inputs(identity, 3);
  EXPECT_EQ(run_graph(identity, in)[0].f, in[0].f);
}

TEST(OnnxOpsets, ComputedReduceAxesAreRefused) {
  ModelBuilder m(18);
  m.input("X", {2, 3});
  m.input("A", {1}, TensorProto::INT64);
  m.node("ReduceMax", {"X", "A"}, {"Y"}, "rmax");
  m.output("Y");
  expect_error([&] { import(m); }, {"node 'rmax' (ReduceMax, opset 18)", "computed tensor"});
}

TEST(OnnxOpsets, PadAxesBecomeFullPads) {
  ModelBuilder newer(18), at17(17);
  for (ModelBuilder* m : {&newer, &at17}) m->input("X", {2, 3, 4});
  newer.int_initializer("pads", {4}, {1, 2, 0, 3});
  newer.int_initializer("axes", {2}, {2, -2});
  newer.node("Pad", {"X", "pads", "", "axes"}, {"Y"}, "pad");
  at17.int_initializer("pads", {6}, {0, 2, 1, 0, 3, 0});
  at17.node("Pad", {"X", "pads"}, {"Y"}, "pad");
  for (ModelBuilder* m : {&newer, &at17}) m->output("Y");
  expect_same(newer, at17);
  EXPECT_EQ(import(newer).value(only_node(import(newer), OpType::kPad).outputs[0]).shape,
            (std::vector<int64_t>{2, 8, 5}));

  ModelBuilder wrap(19);
  wrap.input("X", {2, 3});
  wrap.int_initializer("pads", {4}, {1, 1, 1, 1});
  set_string(wrap.node("Pad", {"X", "pads"}, {"Y"}, "pad"), "mode", "wrap");
  wrap.output("Y");
  expect_error([&] { import(wrap); }, {"node 'pad' (Pad, opset 19)", "\"wrap\""});
}

TEST(OnnxOpsets, UnevenSplitGetsItsSizes) {
  ModelBuilder newer(18), at17(17);
  for (ModelBuilder* m : {&newer, &at17}) m->input("X", {2, 7});
  onnx::NodeProto& s = newer.node("Split", {"X"}, {"A", "B", "C"}, "split");
  set_int(s, "axis", 1);
  set_int(s, "num_outputs", 3);
  at17.int_initializer("sizes", {3}, {3, 3, 1});
  set_int(at17.node("Split", {"X", "sizes"}, {"A", "B", "C"}, "split"), "axis", 1);
  for (ModelBuilder* m : {&newer, &at17}) {
    for (const char* o : {"A", "B", "C"}) m->output(o);
  }
  expect_same(newer, at17);
}

// Gelu-20 in both forms and Mish-18, against their definitions in double precision; f16 too.
TEST(OnnxOpsets, GeluAndMishAreWrittenOut) {
  const std::vector<float> x = {-3.0f, -1.0f, -0.25f, 0.0f, 0.5f, 2.0f};
  auto gelu = [](double v, bool tanh_form) {
    if (tanh_form) return 0.5 * v * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
    return 0.5 * v * (1 + std::erf(v / std::numbers::sqrt2));
  };
  for (const char* form : {"none", "tanh", "mish"}) {
    SCOPED_TRACE(form);
    ModelBuilder m(20);
    m.input("X", {6});
    // Between them a Relu-free chain with no value_info: the type is followed back to X.
    m.node("Identity", {"X"}, {"T"});
    if (std::string(form) == "mish") {
      m.node("Mish", {"T"}, {"Y"}, "act");
    } else {
      set_string(m.node("Gelu", {"T"}, {"Y"}, "act"), "approximate", form);
    }
    m.output("Y");
    Graph g = import(m);
    std::vector<Tensor> y = run_graph(g, std::vector<Tensor>{Tensor::floats({6}, x)});
    ASSERT_EQ(y[0].f.size(), x.size());
    for (size_t k = 0; k < x.size(); ++k) {
      double v = x[k];
      double want = std::string(form) == "mish" ? v * std::tanh(std::log1p(std::exp(v))) : gelu(v, std::string(form) == "tanh");
      EXPECT_NEAR(y[0].f[k], want, 1e-5) << "x = " << v;
    }
    expect_round_trip(g);
  }
  ModelBuilder half(20);
  half.input("X", {6}, TensorProto::FLOAT16);
  half.node("Gelu", {"X"}, {"Y"}, "gelu");
  half.output("Y", TensorProto::FLOAT16);
  Graph g = import(half);
  std::vector<Tensor> y = run_graph(g, std::vector<Tensor>{Tensor::floats({6}, x, ElemType::kF16)});
  EXPECT_EQ(y[0].type, ElemType::kF16);
  for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(y[0].f[k], gelu(x[k], false), 1e-2) << "x = " << x[k];
}

// Resize is Opaque to Tessera: its node is exported as it was read, now without the axes.
TEST(OnnxOpsets, ResizeAxesOverEveryDimensionAreDropped) {
  auto resize = [](const std::vector<int64_t>& axes, int64_t scales) {
    ModelBuilder m(18);
    m.input("X", {1, 1, 2, 2});
    m.initializer("scales", {scales}, std::vector<float>(static_cast<size_t>(scales), 2.0f));
    set_ints(m.node("Resize", {"X", "", "scales"}, {"Y"}, "resize"), "axes", axes);
    m.output("Y");
    return m;
  };
  Graph g = import(resize({0, 1, 2, -1}, 4));
  EXPECT_EQ(g.value(only_node(g, OpType::kOpaque).outputs[0]).shape, (std::vector<int64_t>{2, 2, 4, 4}));
  onnx::ModelProto exported = parse(export_onnx(g));
  for (const auto& n : exported.graph().node()) {
    for (const auto& a : n.attribute()) EXPECT_NE(a.name(), "axes");
  }
  expect_error([&] { import(resize({2, 3}, 2)); }, {"node 'resize' (Resize, opset 18)", "axes"});
}

TEST(OnnxOpsets, WhatOpset17CannotSayIsRefusedByName) {
  ModelBuilder group(18);
  group.input("X", {1, 4, 2, 2});
  group.initializer("s", {2}, {1, 1});
  group.initializer("b", {2}, {0, 0});
  set_int(group.node("GroupNormalization", {"X", "s", "b"}, {"Y"}, "gn"), "num_groups", 2);
  group.output("Y");
  expect_error([&] { import(group); }, {"node 'gn' (GroupNormalization, opset 18)", "no such operator at opset 17"});

  ModelBuilder scatter(18);
  scatter.input("X", {4});
  scatter.int_initializer("i", {1, 1}, {1});
  scatter.initializer("u", {1}, {5});
  set_string(scatter.node("ScatterND", {"X", "i", "u"}, {"Y"}, "sc"), "reduction", "max");
  scatter.output("Y");
  expect_error([&] { import(scatter); }, {"node 'sc' (ScatterND, opset 18)", "'max'"});
}

// Subgraphs are rewritten too: an If whose branches reduce with an axes input imports.
TEST(OnnxOpsets, SubgraphsAreRewritten) {
  ModelBuilder m(18);
  m.input("X", {2, 3});
  m.input("C", {}, TensorProto::BOOL);
  m.int_initializer("axes", {1}, {1});
  onnx::NodeProto& branch = m.node("If", {"C"}, {"Y"}, "if");
  for (const char* name : {"then_branch", "else_branch"}) {
    auto* a = branch.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::GRAPH);
    onnx::GraphProto* g = a->mutable_g();
    g->set_name(name);
    onnx::NodeProto* r = g->add_node();
    r->set_op_type(std::string(name) == "then_branch" ? "ReduceMax" : "ReduceMin");
    r->add_input("X");
    r->add_input("axes");
    r->add_output(std::string(name) + "_y");
    auto* out = g->add_output();
    out->set_name(std::string(name) + "_y");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
  }
  m.output("Y");
  Graph g = import(m);
  const Node& opaque = only_node(g, OpType::kOpaque);
  EXPECT_EQ(opaque.name, "if");
  onnx::ModelProto exported = parse(export_onnx(g));
  EXPECT_EQ(exported.opset_import(0).version(), 17);
}

}  // namespace
}  // namespace tessera::graph
