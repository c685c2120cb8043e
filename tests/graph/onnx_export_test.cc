// ONNX export (graph/onnx_io.h): Opaque operators and subgraphs kept through export, stripped
// weights, round trips of structure and values, fused operators written as their
// decomposition, outputs that repeat, unwritable paths.
#include "tests/graph/onnx_test_util.h"

namespace tessera::graph {
namespace {

using namespace onnx_testing;

TEST(OnnxOpaque, UnknownOperatorsKeepTheirShapesAndSurviveExport) {
  ModelBuilder m;
  m.import_opset("com.example", 3);
  m.input("X", {2, 4});
  onnx::NodeProto& foo = m.node("Foo", {"X"}, {"F"}, "foo", "com.example");
  set_int(foo, "size", 4);
  std::vector<int64_t> dims{2, 4};
  onnx::ValueInfoProto* f = m.graph().add_value_info();
  f->set_name("F");
  f->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
  for (int64_t d : dims)
    f->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  m.node("Relu", {"F"}, {"R"}, "relu");
  set_int(m.node("Hardmax", {"R"}, {"H"}, "hardmax"), "axis", 1);
  m.node("Add", {"H", "X"}, {"Y"}, "add");
  m.output("Y");

  Graph g = import(m);
  EXPECT_EQ(ops_in_order(g),
            (std::vector<OpType>{OpType::kOpaque, OpType::kRelu, OpType::kOpaque, OpType::kAdd}));
  const Node& first = g.node(g.topological_order()[0]);
  EXPECT_EQ(first.name, "foo");
  EXPECT_EQ(first.attr_int("onnx_domain_version", 0), 3);
  EXPECT_EQ(g.value(first.outputs[0]).shape, dims);
  const Node& hardmax = g.node(g.topological_order()[2]);
  EXPECT_EQ(hardmax.name, "hardmax");
  EXPECT_EQ(g.value(hardmax.outputs[0]).shape, dims);
  EXPECT_FALSE(hardmax.has("onnx_domain_version"));

  onnx::ModelProto exported = parse(export_onnx(g));  // checked by onnx's checker inside
  bool has_domain = false;
  for (const auto& o : exported.opset_import())
    has_domain = has_domain || (o.domain() == "com.example" && o.version() == 3);
  EXPECT_TRUE(has_domain);
  ASSERT_EQ(exported.graph().node_size(), 4);
  const onnx::NodeProto& foo_out = exported.graph().node(0);
  EXPECT_EQ(foo_out.op_type(), "Foo");
  EXPECT_EQ(foo_out.domain(), "com.example");
  EXPECT_EQ(foo_out.name(), "foo");
  EXPECT_EQ(foo_out.input(0), "X");
  EXPECT_EQ(foo_out.output(0), "F");
  ASSERT_EQ(foo_out.attribute_size(), 1);
  EXPECT_EQ(foo_out.attribute(0).i(), 4);
  EXPECT_EQ(exported.graph().node(2).op_type(), "Hardmax");
  expect_round_trip(g);

  // The Opaque node follows a rename of the tensor it reads.
  Graph renamed = g;
  renamed.value(renamed.inputs()[0]).name = "input";
  onnx::ModelProto again = parse(export_onnx(renamed));
  EXPECT_EQ(again.graph().node(0).input(0), "input");
}

TEST(OnnxOpaque, SubgraphsReadingOuterTensorsKeepThatDependence) {
  ModelBuilder m;
  m.input("cond", {}, TensorProto::BOOL);
  m.input("X", {3});
  m.initializer("K", {3}, {1, 2, 3});
  onnx::NodeProto& node = m.node("If", {"cond"}, {"Y"}, "branch");
  std::vector<int64_t> dims{3};
  for (auto [attr, op] :
       {std::pair<const char*, const char*>{"then_branch", "Add"}, {"else_branch", "Mul"}}) {
    auto* a = node.add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::GRAPH);
    onnx::GraphProto* body = a->mutable_g();
    body->set_name(attr);
    onnx::NodeProto* inner = body->add_node();
    inner->set_op_type(op);
    inner->add_input("X");
    inner->add_input("K");
    inner->add_output(std::string(attr) + "_out");
    auto* out = body->add_output();
    out->set_name(std::string(attr) + "_out");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
    out->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);
  }
  m.output("Y");
  Graph g = import(m);
  const Node& branch = only_node(g, OpType::kOpaque);
  ASSERT_EQ(branch.inputs.size(), 3u);  // cond, then X and K read by the branches
  EXPECT_EQ(g.value(branch.inputs[1]).name, "X");
  EXPECT_EQ(g.value(branch.inputs[2]).name, "K");
  EXPECT_EQ(g.value(branch.outputs[0]).shape, dims);
  expect_round_trip(g);

  Graph renamed = g;
  renamed.value(renamed.inputs()[1]).name = "X_renamed";
  onnx::ModelProto exported = parse(export_onnx(renamed));
  ASSERT_EQ(exported.graph().node_size(), 2);
  EXPECT_EQ(exported.graph().node(0).op_type(), "Identity");  // binds the name the branches read
  EXPECT_EQ(exported.graph().node(0).input(0), "X_renamed");
  EXPECT_EQ(exported.graph().node(0).output(0), "X");
}

// --- Stripped weights --------------------------------------------------------------------

TEST(OnnxStripped, StrippedWeightsImportSyntheticAndExportStripped) {
  ModelBuilder m;
  m.input("X", {2, 16});
  mark_stripped(m.initializer("W", {16, 8}, {}));
  mark_stripped(m.initializer("B", {8}, {}));
  mark_stripped(m.int_initializer("S", {2}, {}));
  m.node("MatMul", {"X", "W"}, {"M"}, "mm");
  m.node("Add", {"M", "B"}, {"Y"}, "add");
  m.output("Y");
  std::vector<int64_t> s_dims{2};
  m.output("S", TensorProto::INT64, &s_dims);

  Graph g = import(m);
  EXPECT_TRUE(g.weights_stripped);
  const Value& w = g.value(only_node(g, OpType::kMatMul).inputs[1]);
  const Value& b = g.value(only_node(g, OpType::kAdd).inputs[1]);
  const Value& s = g.value(g.outputs()[1]);
  EXPECT_TRUE(w.synthetic && b.synthetic && s.synthetic);
  float a = std::sqrt(3.0f / 8.0f);
  for (float v : w.constant->f) EXPECT_TRUE(v >= -a && v <= a) << v;
  for (float v : b.constant->f) EXPECT_TRUE(v >= 0.5f && v <= 1.0f) << v;
  EXPECT_NE(w.constant->f[0], w.constant->f[1]);
  EXPECT_EQ(s.constant->i, (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(import(m).value(only_node(g, OpType::kMatMul).inputs[1]).constant->f, w.constant->f)
      << "synthetic values are deterministic";

  std::string bytes = export_onnx(g);
  onnx::ModelProto exported = parse(bytes);
  for (const char* name : {"W", "B", "S"}) {
    const TensorProto* t = find_initializer(exported, name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->data_location(), TensorProto::EXTERNAL) << name;
    EXPECT_FALSE(t->has_raw_data()) << name;
    ASSERT_EQ(t->external_data_size(), 3) << name;
    EXPECT_EQ(t->external_data(0).key(), "location");
    EXPECT_EQ(t->external_data(0).value(), kStrippedLocation);
  }
  EXPECT_EQ(find_initializer(exported, "W")->external_data(2).value(), std::to_string(16 * 8 * 4));
  ASSERT_EQ(exported.metadata_props_size(), 1);
  EXPECT_EQ(exported.metadata_props(0).key(), "tessera.weights_stripped");
  Graph back = expect_round_trip(g);
  EXPECT_TRUE(back.weights_stripped);
  expect_same_values(g, back);
}

TEST(OnnxStripped, LargeConstantsAreStrippedOnRequest) {
  Graph g = import(dense_model());
  ExportOptions options;
  options.strip_above_elements = 4;
  onnx::ModelProto exported = parse(export_onnx(g, options));
  EXPECT_EQ(find_initializer(exported, "W")->data_location(), TensorProto::EXTERNAL);
  EXPECT_EQ(find_initializer(exported, "B")->data_location(), TensorProto::DEFAULT);
  Graph back = import_onnx_bytes(export_onnx(g, options), "stripped.onnx");
  EXPECT_TRUE(back.weights_stripped);
  EXPECT_TRUE(back.value(only_node(back, OpType::kMatMul).inputs[1]).synthetic);
  EXPECT_FALSE(back.value(only_node(back, OpType::kAdd).inputs[1]).synthetic);
  EXPECT_EQ(parse(export_onnx(g)).metadata_props_size(), 0);
}

// --- Export ------------------------------------------------------------------------------

TEST(OnnxExport, RoundTripKeepsStructureAndValues) {
  ModelBuilder m;
  m.input("X", {2, 3, 8});
  m.input("img", {1, 3, 6, 6});
  std::vector<float> scale(8, 1.5f), bias(8, 0.25f), w(8 * 16), conv_w(4 * 3 * 3 * 3),
      conv_b = {0.1f, 0.2f, 0.3f, 0.4f};
  for (size_t k = 0; k < w.size(); ++k) w[k] = static_cast<float>(k % 7) * 0.1f - 0.3f;
  for (size_t k = 0; k < conv_w.size(); ++k) conv_w[k] = static_cast<float>(k % 5) * 0.1f - 0.2f;
  m.initializer("ln_scale", {8}, scale);
  m.initializer("ln_bias", {8}, bias);
  m.initializer("W", {8, 16}, w);
  m.initializer("conv_w", {4, 3, 3, 3}, conv_w);
  m.initializer("conv_b", {4}, conv_b);
  m.int_initializer("shape", {2}, {6, 16});
  set_int(m.node("LayerNormalization", {"X", "ln_scale", "ln_bias"}, {"ln"}, "ln"), "axis", -1);
  m.node("MatMul", {"ln", "W"}, {"proj"}, "proj");
  set_int(m.node("Softmax", {"proj"}, {"probs"}, "softmax"), "axis", -1);
  m.node("Reshape", {"probs", "shape"}, {"flat"}, "reshape");
  set_ints(m.node("Transpose", {"flat"}, {"Y"}, "transpose"), "perm", {1, 0});
  onnx::NodeProto& conv = m.node("Conv", {"img", "conv_w", "conv_b"}, {"c"}, "conv");
  set_ints(conv, "pads", {1, 1, 1, 1});
  set_ints(conv, "kernel_shape", {3, 3});
  m.node("Relu", {"c"}, {"r"}, "relu");
  onnx::NodeProto& pool = m.node("MaxPool", {"r"}, {"p"}, "pool");
  set_ints(pool, "kernel_shape", {2, 2});
  set_ints(pool, "strides", {2, 2});
  m.node("GlobalAveragePool", {"p"}, {"Z"}, "gap");
  m.output("Y");
  m.output("Z");

  Graph g = import(m);
  EXPECT_EQ(g.value(g.outputs()[0]).shape, (std::vector<int64_t>{16, 6}));
  EXPECT_EQ(g.value(g.outputs()[1]).shape, (std::vector<int64_t>{1, 4, 1, 1}));
  for (const Node& n : g.nodes()) EXPECT_NE(n.op, OpType::kOpaque) << n.name;
  Graph back = expect_round_trip(g);
  expect_same_values(g, back);
  std::vector<Tensor> inputs = random_graph_inputs(g, 3);
  EXPECT_EQ(max_scaled_error(run_graph(back, inputs), run_graph(g, inputs), 0, 0), 0.0) << "bit-identical";
}

// A graph with every fused operator, built directly.
Graph fused_graph() {
  Graph g;
  g.model_name = "fused";
  auto floats = [](std::vector<int64_t> shape, float scale) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t k = 0; k < v.size(); ++k) v[k] = scale * static_cast<float>(static_cast<int>(k % 11) - 5);
    return Tensor::floats(std::move(shape), std::move(v));
  };
  ValueId a = g.add_input("a", ElemType::kF32, {2, 3, 8});
  ValueId res = g.add_input("res", ElemType::kF32, {2, 3, 16});
  ValueId b = g.add_constant("b", floats({16, 8}, 0.05f));
  ValueId bias = g.add_constant("bias", floats({16}, 0.1f));
  ValueId fc =
      g.add_node(OpType::kFusedMatMul, {a, b, bias, res},
                 {{"trans_b", int64_t{1}}, {"epilogue", std::string("bias+gelu+residual")}, {"alpha", 0.25}}, "fc")[0];
  ValueId at = g.add_input("at", ElemType::kF32, {8, 2});
  ValueId b2 = g.add_constant("b2", floats({8, 4}, 0.1f));
  ValueId plain = g.add_node(OpType::kFusedMatMul, {at, b2}, {{"trans_a", int64_t{1}}}, "plain")[0];

  ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 6, 6});
  ValueId w1 = g.add_constant("w1", floats({4, 3, 3, 3}, 0.05f));
  ValueId cb1 = g.add_constant("cb1", floats({4}, 0.1f));
  ValueId c1 = g.add_node(
      OpType::kFusedConv, {x, w1, cb1},
      {{"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"epilogue", std::string("bias+relu")}}, "conv1")[0];
  ValueId w2 = g.add_constant("w2", floats({4, 4, 1, 1}, 0.1f));
  ValueId cb2 = g.add_constant("cb2", floats({4}, 0.2f));
  ValueId c2 = g.add_node(OpType::kFusedConv, {c1, w2, cb2, c1},
                          {{"epilogue", std::string("relu+bias+residual")}}, "conv2")[0];

  ValueId k = g.add_constant("k", floats({16}, 0.1f));
  ValueId m2 = g.add_constant("m2", floats({1}, 0.3f));
  ValueId chain =
      g.add_node(OpType::kEltwiseChain, {fc, k, res, m2},
                 {{"ops", std::string("add+relu+mul+gelu+tanh+neg+sigmoid+div+exp")}}, "chain")[0];
  ValueId gelu = g.add_node(OpType::kGelu, {chain}, {}, "gelu")[0];
  ValueId gelu_tanh =
      g.add_node(OpType::kGelu, {gelu}, {{"approximate", std::string("tanh")}}, "gelu_tanh")[0];
  g.add_output(gelu_tanh);
  g.add_output(plain);
  g.add_output(c2);
  return g;
}

TEST(OnnxExport, FusedOperatorsAreWrittenAsTheirDecomposition) {
  Graph g = fused_graph();
  onnx::ModelProto exported = parse(export_onnx(g));
  ASSERT_EQ(exported.opset_import_size(), 1);
  EXPECT_EQ(exported.opset_import(0).version(), 17);
  std::set<std::string> names, op_types;
  for (const auto& n : exported.graph().node()) {
    EXPECT_TRUE(n.domain().empty()) << n.name();
    names.insert(n.name());
    op_types.insert(n.op_type());
  }
  for (const char* fused : {"FusedMatMul", "FusedConv", "EltwiseChain", "Gelu"})
    EXPECT_FALSE(op_types.count(fused));
  for (const char* name :
       {"fc/transpose_b", "fc/matmul", "fc/alpha", "fc/bias", "fc/gelu_erf", "fc/residual", "plain/transpose_a",
        "conv1/conv", "conv2/bias_reshape", "chain/add", "chain/gelu_div", "gelu_tanh/gelu_tanh"}) {
    EXPECT_TRUE(names.count(name)) << name;
  }
  // conv1's bias is its first epilogue step: Conv's own third input.
  for (const auto& n : exported.graph().node()) {
    if (n.name() == "conv1/conv") {
      EXPECT_EQ(n.input_size(), 3);
    }
    if (n.name() == "conv2/conv") {
      EXPECT_EQ(n.input_size(), 2);
    }
  }
  expect_strictly_inferable(export_onnx(g));
  Graph back = import_onnx_bytes(export_onnx(g), "fused.onnx");
  EXPECT_GT(back.live_nodes(), g.live_nodes());
  for (const Node& n : back.nodes()) EXPECT_NE(n.op, OpType::kOpaque) << n.name;
  for (size_t k = 0; k < g.outputs().size(); ++k) {
    EXPECT_EQ(back.value(back.outputs()[k]).shape, g.value(g.outputs()[k]).shape);
    EXPECT_EQ(back.value(back.outputs()[k]).name, g.value(g.outputs()[k]).name);
  }
  expect_same_values(g, back, 1);
  expect_same_values(g, back, 2);
}

// A chain's max, min and abs steps export as ONNX's Max, Min and Abs, which read back as
// known operators computing what the chain does.
TEST(OnnxExport, ChainMaxMinAbsStepsReadBackAsKnownOperators) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {2, 3});
  ValueId y = g.add_input("y", ElemType::kF32, {3});
  ValueId c = g.add_constant("c", Tensor::floats({1}, {0.5f}));
  ValueId out =
      g.add_node(OpType::kEltwiseChain, {x, y, c, y}, {{"ops", std::string("max+sub+abs+min")}}, "mm")[0];
  g.add_output(out);
  onnx::ModelProto exported = parse(export_onnx(g));
  std::vector<std::string> op_types;
  for (const auto& n : exported.graph().node()) op_types.push_back(n.op_type());
  EXPECT_EQ(op_types, (std::vector<std::string>{"Max", "Sub", "Abs", "Min"}));
  Graph back = import_onnx_bytes(export_onnx(g), "chain.onnx");
  EXPECT_EQ(ops_in_order(back),
            (std::vector<OpType>{OpType::kMax, OpType::kSub, OpType::kAbs, OpType::kMin}));
  EXPECT_EQ(back.value(back.outputs()[0]).shape, (std::vector<int64_t>{2, 3}));
  for (uint64_t seed : {1, 2, 3}) {
    std::vector<Tensor> inputs = random_graph_inputs(g, seed);
    std::vector<Tensor> want = run_graph(g, inputs), got = run_graph(back, inputs);
    EXPECT_EQ(max_scaled_error(got, want, 0, 0), 0.0) << "seed " << seed;
  }
}

TEST(OnnxExport, OutputsThatRepeatOrAreInputsStayValid) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {4});
  ValueId y = g.add_node(OpType::kRelu, {x}, {}, "relu")[0];
  g.value(y).name = "y";
  g.add_output(y);
  g.add_output(x);
  g.add_output(y);
  onnx::ModelProto exported = parse(export_onnx(g));
  ASSERT_EQ(exported.graph().output_size(), 3);
  EXPECT_EQ(exported.graph().output(0).name(), "y");
  EXPECT_EQ(exported.graph().output(1).name(), "x");
  EXPECT_NE(exported.graph().output(2).name(), "y");
  Graph back = import_onnx_bytes(export_onnx(g), "outputs.onnx");
  ASSERT_EQ(back.outputs().size(), 3u);
  EXPECT_EQ(back.outputs()[1], back.inputs()[0]);
  expect_same_values(g, back);
}

TEST(OnnxExport, WritesAReadableFileAndNamesAnUnwritablePath) {
  Graph g = import(dense_model());
  auto path =
      std::filesystem::temp_directory_path() / ("tessera_onnx_write_" + std::to_string(::getpid()) + ".onnx");
  write_onnx(g, path.string());
  Graph back = import_onnx(path.string());
  EXPECT_EQ(back.structural_hash(), g.structural_hash());
  EXPECT_EQ(back.model_name, path.filename().string());
  std::filesystem::remove(path);
  expect_error([&] { write_onnx(g, "/nonexistent/dir/out.onnx"); }, {"/nonexistent/dir/out.onnx"});
}

// --- ONNX backend node tests --------------------------------------------------------------

// A test data tensor as a Tensor.

}  // namespace
}  // namespace tessera::graph
