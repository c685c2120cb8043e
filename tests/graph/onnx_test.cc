// ONNX import and export (graph/onnx_io.h): small models built with the protobuf API
// and imported; export -> import round trips (structure and computed values); errors that
// name their input; Opaque operators, stripped and external weights, half-precision
// initializers, fused operators written as their decomposition; and the ONNX backend node
// tests of Debian's libonnx-testdata.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

using onnx::TensorProto;

const std::string kNodeTests = "/usr/include/onnx/backend/test/data/node/";

std::string raw_floats(const std::vector<float>& values) {
  std::string raw(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(raw.data(), values.data(), raw.size());
  return raw;
}

// A model under construction, opset 17 of the default domain unless told otherwise.
class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 17) {
    model_.set_ir_version(8);
    if (opset > 0) import_opset("", opset);
    model_.mutable_graph()->set_name("test");
  }

  onnx::ModelProto& model() { return model_; }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }

  void import_opset(const std::string& domain, int64_t version) {
    auto* o = model_.add_opset_import();
    o->set_domain(domain);
    o->set_version(version);
  }

  onnx::ValueInfoProto& input(const std::string& name, const std::vector<int64_t>& dims,
                              int type = TensorProto::FLOAT) {
    onnx::ValueInfoProto* v = graph().add_input();
    describe(v, name, type, &dims);
    return *v;
  }
  /// A graph output; without dims its shape is left to ONNX's inference.
  void output(const std::string& name, int type = TensorProto::FLOAT,
              const std::vector<int64_t>* dims = nullptr) {
    describe(graph().add_output(), name, type, dims);
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "",
                        const std::string& domain = "") {
    onnx::NodeProto* n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name);
    n->set_domain(domain);
    for (const auto& in : inputs) n->add_input(in);
    for (const auto& out : outputs) n->add_output(out);
    return *n;
  }

  TensorProto& initializer(const std::string& name, const std::vector<int64_t>& dims,
                           const std::vector<float>& values) {
    TensorProto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(raw_floats(values));
    return *t;
  }
  TensorProto& int_initializer(const std::string& name, const std::vector<int64_t>& dims,
                               const std::vector<int64_t>& values) {
    TensorProto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::INT64);
    for (int64_t d : dims) t->add_dims(d);
    for (int64_t v : values) t->add_int64_data(v);
    return *t;
  }

  std::string bytes() const { return model_.SerializeAsString(); }

 private:
  static void describe(onnx::ValueInfoProto* v, const std::string& name, int type,
                       const std::vector<int64_t>* dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    if (!dims) return;
    auto* shape = t->mutable_shape();
    for (int64_t d : *dims) shape->add_dim()->set_dim_value(d);
  }

  onnx::ModelProto model_;
};

void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
void set_float(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
onnx::TensorProto* set_tensor(onnx::NodeProto& n, const std::string& name) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::TENSOR);
  return a->mutable_t();
}

void mark_stripped(TensorProto& t) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int64_data();
  t.set_data_location(TensorProto::EXTERNAL);
  auto* e = t.add_external_data();
  e->set_key("location");
  e->set_value(std::string(kStrippedLocation));
}

Graph import(const ModelBuilder& m) {
  return import_onnx_bytes(m.bytes(), "test.onnx");
}

// The UserError message `f` throws ("" and a test failure when it throws none).
std::string user_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a UserError: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no error";
  return {};
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

const TensorProto* find_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<OpType> ops_in_order(const Graph& g) {
  std::vector<OpType> ops;
  for (NodeId n : g.topological_order()) ops.push_back(g.node(n).op);
  return ops;
}

const Node& only_node(const Graph& g, OpType op) {
  const Node* found = nullptr;
  for (const Node& n : g.nodes()) {
    if (n.op != op || n.removed) continue;
    EXPECT_EQ(found, nullptr) << "two nodes of " << op_type_name(op);
    found = &n;
  }
  EXPECT_NE(found, nullptr) << "no node of " << op_type_name(op);
  return *found;
}

// ONNX's strict shape inference accepts the exported model and agrees with its value_info.
void expect_strictly_inferable(const std::string& bytes) {
  onnx::ModelProto m = parse(bytes);
  try {
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "strict shape inference: " << e.what();
  }
}

// Export, re-import, and the same structure and the same values on random inputs.
Graph expect_round_trip(const Graph& g, const ExportOptions& options = {}) {
  std::string bytes = export_onnx(g, options);
  EXPECT_EQ(bytes, export_onnx(g, options)) << "export is deterministic";
  expect_strictly_inferable(bytes);
  Graph back = import_onnx_bytes(bytes, "exported.onnx");
  EXPECT_EQ(back.structural_hash(), g.structural_hash());
  return back;
}

void expect_same_values(const Graph& a, const Graph& b, uint64_t seed = 7) {
  std::vector<Tensor> inputs = random_graph_inputs(a, seed);
  std::vector<Tensor> ya = run_graph(a, inputs), yb = run_graph(b, inputs);
  EXPECT_LE(max_scaled_error(yb, ya), 1.0);
}

// --- Import -----------------------------------------------------------------------------

ModelBuilder dense_model() {
  ModelBuilder m;
  m.input("X", {2, 3});
  m.initializer("W", {3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  m.initializer("B", {4}, {0.5f, -0.5f, 1, -1});
  // Listed out of order: an ONNX file need not be sorted.
  m.node("Relu", {"S"}, {"Y"}, "relu");
  m.node("Add", {"M", "B"}, {"S"}, "add");
  m.node("MatMul", {"X", "W"}, {"M"}, "matmul");
  m.output("Y");
  return m;
}

TEST(OnnxImport, ReadsNodesShapesAndConstantsInAnyOrder) {
  Graph g = import(dense_model());
  EXPECT_EQ(g.model_name, "test.onnx");
  EXPECT_FALSE(g.weights_stripped);
  ASSERT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(g.value(g.inputs()[0]).name, "X");
  EXPECT_EQ(g.value(g.inputs()[0]).shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ops_in_order(g), (std::vector<OpType>{OpType::kMatMul, OpType::kAdd, OpType::kRelu}));
  const Node& matmul = only_node(g, OpType::kMatMul);
  EXPECT_EQ(matmul.name, "matmul");
  EXPECT_EQ(g.value(matmul.outputs[0]).name, "M");
  const Value& w = g.value(matmul.inputs[1]);
  ASSERT_TRUE(w.constant);
  EXPECT_EQ(w.name, "W");
  EXPECT_EQ(w.constant->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(w.constant->f[11], 12.0f);
  ASSERT_EQ(g.outputs().size(), 1u);
  const Value& y = g.value(g.outputs()[0]);
  EXPECT_EQ(y.name, "Y");
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 4}));

  Tensor x = Tensor::floats({2, 3}, {1, 0, 0, 0, 1, -1});
  std::vector<Tensor> out = run_graph(g, std::vector<Tensor>{x});
  // Row 0: W's row 0 + B = [1.5, 1.5, 4, 3]; row 1: W's row 1 - row 2 + B = [-3.5, -4.5, -3, -5] -> relu.
  EXPECT_EQ(out[0].f, (std::vector<float>{1.5f, 1.5f, 4, 3, 0, 0, 0, 0}));
}

TEST(OnnxImport, ConstantNodesBecomeConstants) {
  ModelBuilder m;
  m.input("X", {2, 3});
  TensorProto* shape = set_tensor(m.node("Constant", {}, {"shape"}, "shape_const"), "value");
  shape->set_data_type(TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(3);
  shape->add_int64_data(-1);
  set_float(m.node("Constant", {}, {"two"}, "two_const"), "value_float", 2.0f);
  set_ints(m.node("Constant", {}, {"axes"}, "axes_const"), "value_ints", {0});
  m.node("Reshape", {"X", "shape"}, {"R"}, "reshape");
  m.node("Mul", {"R", "two"}, {"M"}, "mul");
  m.node("Unsqueeze", {"M", "axes"}, {"Y"}, "unsqueeze");
  m.output("Y");
  Graph g = import(m);
  EXPECT_EQ(ops_in_order(g), (std::vector<OpType>{OpType::kReshape, OpType::kMul, OpType::kUnsqueeze}));
  EXPECT_EQ(g.value(g.outputs()[0]).shape, (std::vector<int64_t>{1, 3, 2}));
  const Value& two = g.value(only_node(g, OpType::kMul).inputs[1]);
  ASSERT_TRUE(two.constant);
  EXPECT_EQ(two.name, "two");
  EXPECT_TRUE(two.shape.empty());
  EXPECT_EQ(two.constant->f, std::vector<float>{2.0f});
  const Value& axes = g.value(only_node(g, OpType::kUnsqueeze).inputs[1]);
  EXPECT_EQ(axes.type, ElemType::kI64);
  EXPECT_EQ(axes.constant->i, std::vector<int64_t>{0});
  expect_round_trip(g);
}

// Exporters leave shape arithmetic in graphs; import evaluates it so that Reshape and Expand
// see constant shapes. Float computations (here the Mul of X) stay nodes.
TEST(OnnxImport, ShapeArithmeticOverConstantsIsFolded) {
  ModelBuilder m;
  m.input("X", {2, 3, 4});
  set_int(m.node("Shape", {"X"}, {"batch"}, "shape"), "end", 1);
  TensorProto* dims = set_tensor(m.node("Constant", {}, {"dims"}, "dims_const"), "value");
  dims->set_data_type(TensorProto::INT64);
  dims->add_dims(1);
  dims->add_int64_data(1);
  TensorProto* one = set_tensor(m.node("ConstantOfShape", {"dims"}, {"ones"}, "ones"), "value");
  one->set_data_type(TensorProto::INT64);
  one->add_dims(1);
  one->add_int64_data(-1);
  m.node("Mul", {"ones", "ones"}, {"rest"}, "rest");  // [1]
  m.node("Neg", {"rest"}, {"minus_one"}, "neg");      // [-1]
  set_int(m.node("Concat", {"batch", "minus_one"}, {"target"}, "concat"), "axis", 0);
  m.node("Reshape", {"X", "target"}, {"R"}, "reshape");
  m.node("Mul", {"R", "R"}, {"Y"}, "square");
  m.output("Y");
  Graph g = import(m);
  EXPECT_EQ(ops_in_order(g), (std::vector<OpType>{OpType::kReshape, OpType::kMul}));
  const Value& target = g.value(only_node(g, OpType::kReshape).inputs[1]);
  EXPECT_EQ(target.name, "target");
  ASSERT_TRUE(target.constant);
  EXPECT_EQ(target.constant->i, (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(g.value(g.outputs()[0]).shape, (std::vector<int64_t>{2, 12}));
  expect_round_trip(g);
}

TEST(OnnxImport, ReadsEveryElementTypeFromRawAndTypedFields) {
  ModelBuilder m;
  auto add = [&](const std::string& name, int type, std::vector<int64_t> dims) -> TensorProto& {
    TensorProto* t = m.graph().add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    m.output(name, type, &dims);
    return *t;
  };
  add("f32_typed", TensorProto::FLOAT, {2}).mutable_float_data()->Add(1.5f);
  m.graph().mutable_initializer(0)->add_float_data(-2.0f);
  TensorProto& f16 = add("f16_typed", TensorProto::FLOAT16, {3});
  for (int bits : {0x3c00, 0x0001, 0xc000}) f16.add_int32_data(bits);
  TensorProto& bf16 = add("bf16_raw", TensorProto::BFLOAT16, {2});
  bf16.set_raw_data(std::string("\x80\x3f\x49\x40", 4));  // 1.0, 3.140625
  TensorProto& f64 = add("f64_typed", TensorProto::DOUBLE, {2});
  f64.add_double_data(0.25);
  f64.add_double_data(-3.5);
  TensorProto& i64 = add("i64_raw", TensorProto::INT64, {2});
  int64_t i64_values[2] = {-5, int64_t{1} << 40};
  i64.set_raw_data(std::string(reinterpret_cast<const char*>(i64_values), sizeof i64_values));
  add("i32_typed", TensorProto::INT32, {1}).add_int32_data(-7);
  add("i8_raw", TensorProto::INT8, {2}).set_raw_data(std::string("\x80\x7f", 2));
  add("u8_typed", TensorProto::UINT8, {1}).add_int32_data(255);
  add("bool_raw", TensorProto::BOOL, {3}).set_raw_data(std::string("\x01\x00\x01", 3));

  Graph g = import(m);
  auto constant = [&](size_t k) -> const Tensor& { return *g.value(g.outputs().at(k)).constant; };
  EXPECT_EQ(constant(0).f, (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(constant(1).type, ElemType::kF16);
  EXPECT_EQ(constant(1).f, (std::vector<float>{1.0f, std::ldexp(1.0f, -24), -2.0f}));
  EXPECT_EQ(constant(2).f, (std::vector<float>{1.0f, 3.140625f}));
  EXPECT_EQ(constant(3).f, (std::vector<float>{0.25f, -3.5f}));
  EXPECT_EQ(constant(4).i, (std::vector<int64_t>{-5, int64_t{1} << 40}));
  EXPECT_EQ(constant(5).i, (std::vector<int64_t>{-7}));
  EXPECT_EQ(constant(6).i, (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(constant(7).i, (std::vector<int64_t>{255}));
  EXPECT_EQ(constant(8).type, ElemType::kBool);
  EXPECT_EQ(constant(8).i, (std::vector<int64_t>{1, 0, 1}));
  Graph back = expect_round_trip(g);
  for (size_t k = 0; k < g.outputs().size(); ++k) {
    EXPECT_EQ(back.value(back.outputs()[k]).constant->f, constant(k).f) << k;
    EXPECT_EQ(back.value(back.outputs()[k]).constant->i, constant(k).i) << k;
  }
}

TEST(OnnxImport, HalfPrecisionInitializersRoundTripBitExactly) {
  // Every f16 bit pattern but the NaNs (whose payloads are not kept), and bf16 samples.
  std::string f16_raw, bf16_raw;
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    bool nan = (bits & 0x7c00u) == 0x7c00u && (bits & 0x3ffu) != 0;
    if (nan) continue;
    f16_raw.push_back(static_cast<char>(bits & 0xffu));
    f16_raw.push_back(static_cast<char>(bits >> 8));
    if (bits % 97 == 0 && !((bits & 0x7f80u) == 0x7f80u && (bits & 0x7fu) != 0)) {
      bf16_raw.push_back(static_cast<char>(bits & 0xffu));
      bf16_raw.push_back(static_cast<char>(bits >> 8));
    }
  }
  ModelBuilder m;
  for (auto [name, type, raw] :
       {std::tuple<std::string, int, std::string*>{"h", TensorProto::FLOAT16, &f16_raw},
        {"b", TensorProto::BFLOAT16, &bf16_raw}}) {
    TensorProto* t = m.graph().add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    t->add_dims(static_cast<int64_t>(raw->size() / 2));
    t->set_raw_data(*raw);
    std::vector<int64_t> dims{static_cast<int64_t>(raw->size() / 2)};
    m.output(name, type, &dims);
  }
  Graph g = import(m);
  EXPECT_EQ(g.value(g.outputs()[0]).constant->f[0x3c00], 1.0f);
  onnx::ModelProto exported = parse(export_onnx(g));
  ASSERT_NE(find_initializer(exported, "h"), nullptr);
  EXPECT_TRUE(find_initializer(exported, "h")->raw_data() == f16_raw);
  EXPECT_TRUE(find_initializer(exported, "b")->raw_data() == bf16_raw);
}

TEST(OnnxImport, ExternalDataIsReadNextToTheModel) {
  auto dir = std::filesystem::temp_directory_path() / ("tessera_onnx_external_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::vector<float> w = {1, 2, 3, 4, 5, 6};
  {
    std::ofstream out(dir / "weights.bin", std::ios::binary);
    out << "pad!" << raw_floats(w);
  }
  ModelBuilder m;
  m.input("X", {1, 2});
  TensorProto& t = m.initializer("W", {2, 3}, {});
  t.clear_raw_data();
  t.set_data_location(TensorProto::EXTERNAL);
  for (auto [key, value] :
       {std::pair<const char*, const char*>{"location", "weights.bin"}, {"offset", "4"}, {"length", "24"}}) {
    auto* e = t.add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
  m.node("MatMul", {"X", "W"}, {"Y"}, "mm");
  m.output("Y");
  {
    std::ofstream out(dir / "model.onnx", std::ios::binary);
    out << m.bytes();
  }
  Graph g = import_onnx((dir / "model.onnx").string());
  EXPECT_EQ(g.model_name, "model.onnx");
  EXPECT_EQ(g.value(only_node(g, OpType::kMatMul).inputs[1]).constant->f, w);

  std::filesystem::remove(dir / "weights.bin");
  std::string error = user_error([&] { import_onnx((dir / "model.onnx").string()); });
  EXPECT_NE(error.find("model.onnx"), std::string::npos) << error;
  EXPECT_NE(error.find("'W'"), std::string::npos) << error;
  EXPECT_NE(error.find("weights.bin"), std::string::npos) << error;
  error = user_error([&] { import_onnx_bytes(m.bytes(), "bytes.onnx"); });
  EXPECT_NE(error.find("'W'"), std::string::npos) << error;
  EXPECT_NE(error.find("no directory"), std::string::npos) << error;
  std::filesystem::remove_all(dir);
}

// --- Errors -----------------------------------------------------------------------------

void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string error = user_error(f);
  for (const auto& part : parts)
    EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' in: " << error;
}

TEST(OnnxImport, UnreadableBytesNameTheModel) {
  std::string bytes = dense_model().bytes();
  expect_error([&] { import_onnx_bytes(bytes.substr(0, bytes.size() / 2), "half.onnx"); },
               {"half.onnx: not a readable ONNX model"});
  expect_error([&] { import_onnx_bytes("this is not a model", "text.onnx"); },
               {"text.onnx: not a readable ONNX model"});
  expect_error([&] { import_onnx_bytes("", "empty.onnx"); }, {"empty.onnx: not a readable ONNX model"});
  expect_error([&] { import_onnx("/nonexistent/dir/model.onnx"); }, {"/nonexistent/dir/model.onnx"});
}

TEST(OnnxImport, OpsetsOutside13To17AreRejected) {
  for (int64_t opset : {11, 18}) {
    ModelBuilder m(opset);
    m.input("X", {2});
    m.node("Relu", {"X"}, {"Y"});
    m.output("Y");
    expect_error([&] { import_onnx_bytes(m.bytes(), "old.onnx"); },
                 {"old.onnx", "opset " + std::to_string(opset), "re-export with opset_version=17"});
  }
  ModelBuilder none(0);
  none.import_opset("com.example", 1);
  none.input("X", {2});
  none.output("X");
  expect_error([&] { import_onnx_bytes(none.bytes(), "none.onnx"); },
               {"none.onnx", "no opset of the default"});
}

TEST(OnnxImport, CyclesAndDanglingTensorsAreRejected) {
  ModelBuilder cyclic;
  cyclic.input("X", {2});
  cyclic.node("Add", {"X", "C"}, {"A"}, "first");
  cyclic.node("Relu", {"A"}, {"C"}, "second");
  cyclic.output("C");
  expect_error([&] { import_onnx_bytes(cyclic.bytes(), "cyclic.onnx"); },
               {"cyclic.onnx", "cycle through node"});

  ModelBuilder dangling;
  dangling.input("X", {2});
  dangling.node("Add", {"X", "nowhere"}, {"Y"}, "add");
  dangling.output("Y");
  expect_error([&] { import_onnx_bytes(dangling.bytes(), "dangling.onnx"); },
               {"dangling.onnx", "'add'", "'nowhere'", "no node, input or initializer"});
}

TEST(OnnxImport, SymbolicInputDimensionsAreRejected) {
  ModelBuilder m;
  m.input("tokens", {0, 8})
      .mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->set_dim_param("batch");
  m.node("Relu", {"tokens"}, {"Y"});
  m.output("Y");
  expect_error([&] { import_onnx_bytes(m.bytes(), "dynamic.onnx"); },
               {"dynamic.onnx", "'tokens'", "dimension 0", "'batch'", "export with static shapes"});

  ModelBuilder unknown;
  unknown.input("X", {4})
      .mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->clear_dim_value();
  unknown.output("X");
  expect_error([&] { import_onnx_bytes(unknown.bytes(), "unknown.onnx"); }, {"'X'", "dimension 0 unknown"});
}

TEST(OnnxImport, OpaqueOutputsWithoutShapesAreRejected) {
  ModelBuilder m;
  m.import_opset("com.example", 1);
  m.input("X", {2});
  m.node("Foo", {"X"}, {"F"}, "foo", "com.example");
  m.node("Relu", {"F"}, {"Y"}, "relu");
  m.output("Y");
  expect_error([&] { import_onnx_bytes(m.bytes(), "custom.onnx"); },
               {"custom.onnx", "'F'", "'foo' (com.example.Foo)", "could not infer"});
}

// --- Hostile models ------------------------------------------------------------------------
//
// What is wrong with a model file is a one-line UserError at import naming the file and the
// node, never a signal from libonnx's shape inference and never an error after a search. A
// signal here ends the whole test program.

// X [1, 2, 8, 8] -> Conv "conv" (W [4, 2, 3, 3]) -> Y, with `edit` applied to the Conv.
ModelBuilder conv_model(const std::function<void(onnx::NodeProto&)>& edit) {
  ModelBuilder m;
  m.input("X", {1, 2, 8, 8});
  m.initializer("W", {4, 2, 3, 3}, std::vector<float>(72, 0.5f));
  edit(m.node("Conv", {"X", "W"}, {"Y"}, "conv"));
  m.output("Y");
  return m;
}

// The import error of `m` contains every one of `parts` and is one line.
void expect_import_error(const ModelBuilder& m, const std::vector<std::string>& parts) {
  std::string error = user_error([&] { import_onnx_bytes(m.bytes(), "bad.onnx"); });
  EXPECT_EQ(error.rfind("bad.onnx: ", 0), 0u) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  for (const auto& part : parts)
    EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' in: " << error;
}

// libonnx 1.12 divides by a Conv's or a pool's strides (SIGFPE) and indexes a Conv's lists by
// its weight's rank (SIGSEGV).
TEST(OnnxImportChecks, ZeroStridesAreRefusedBeforeShapeInference) {
  expect_import_error(conv_model([](onnx::NodeProto& n) {
                        set_ints(n, "strides", {0, 0});
                      }),
                      {"node 'conv' (Conv)", "strides [0, 0] must be positive"});

  ModelBuilder pool;
  pool.input("X", {1, 2, 8, 8});
  onnx::NodeProto& max = pool.node("MaxPool", {"X"}, {"Y"}, "pool");
  set_ints(max, "kernel_shape", {2, 2});
  set_ints(max, "strides", {1, 0});
  pool.output("Y");
  expect_import_error(pool, {"node 'pool' (MaxPool)", "strides [1, 0] must be positive"});

  // The Conv's input has a rank only once ONNX has inferred the Relu, so this is caught
  // inside shape inference, just before ONNX's inference of the Conv.
  ModelBuilder deep;
  deep.input("X", {1, 2, 8, 8});
  deep.initializer("W", {4, 2, 3, 3, 1, 1}, std::vector<float>(72, 0.5f));
  deep.node("Relu", {"X"}, {"R"}, "relu");
  deep.node("Conv", {"R", "W"}, {"Y"}, "conv");
  deep.output("Y");
  expect_import_error(deep,
                      {"node 'conv' (Conv)", "W [4, 2, 3, 3, 1, 1] must have the rank of X [1, 2, 8, 8]"});

  // Inside an If's branches ONNX's inference of the Conv is reached through the If's.
  ModelBuilder branch;
  branch.input("cond", {}, TensorProto::BOOL);
  branch.input("X", {1, 2, 8, 8});
  branch.initializer("W", {4, 2, 3, 3}, std::vector<float>(72, 0.5f));
  onnx::NodeProto& node = branch.node("If", {"cond"}, {"Y"}, "branch");
  for (const char* attr : {"then_branch", "else_branch"}) {
    auto* a = node.add_attribute();
    a->set_name(attr);
    a->set_type(onnx::AttributeProto::GRAPH);
    onnx::GraphProto* body = a->mutable_g();
    body->set_name(attr);
    onnx::NodeProto* inner = body->add_node();
    inner->set_op_type("Conv");
    inner->add_input("X");
    inner->add_input("W");
    inner->add_output(std::string(attr) + "_out");
    set_ints(*inner, "strides", {0, 0});
    auto* out = body->add_output();
    out->set_name(std::string(attr) + "_out");
    out->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
  }
  branch.output("Y");
  expect_import_error(branch, {"a Conv node in a subgraph", "strides [0, 0] must be positive"});
}

TEST(OnnxImportChecks, OperatorsOnnxDoesNotKnowAreRefused) {
  ModelBuilder m;
  m.input("X", {2, 4});
  m.node("Frobnicate", {"X"}, {"Y"}, "frob");
  std::vector<int64_t> dims{2, 4};
  m.output("Y", TensorProto::FLOAT, &dims);
  expect_import_error(m, {"node 'frob' (Frobnicate)", "not an operator of ONNX opset 17",
                          "a custom operator needs a domain of its own"});

  ModelBuilder undeclared;
  undeclared.input("X", {2, 4});
  undeclared.node("Foo", {"X"}, {"Y"}, "foo", "com.example");
  undeclared.output("Y");
  expect_import_error(undeclared, {"node 'foo' (com.example.Foo)", "no opset of domain 'com.example'"});

  // An operator of a declared custom domain is no error: it stays an Opaque node.
  ModelBuilder custom;
  custom.import_opset("com.example", 1);
  custom.input("X", {2, 4});
  custom.node("Foo", {"X"}, {"F"}, "foo", "com.example");
  custom.output("F", TensorProto::FLOAT, &dims);
  EXPECT_EQ(only_node(import(custom), OpType::kOpaque).name, "foo");
}

TEST(OnnxImportChecks, WrongInputAndOutputCountsAreRefused) {
  ModelBuilder inputs;
  inputs.input("X", {2, 4});
  inputs.node("Relu", {"X", "X"}, {"Y"}, "relu");
  inputs.output("Y");
  expect_import_error(inputs, {"node 'relu' (Relu)", "has 2 inputs; Relu (opset 17) takes 1"});

  ModelBuilder too_few;
  too_few.input("X", {2, 4});
  too_few.node("MatMul", {"X"}, {"Y"}, "mm");
  too_few.output("Y");
  expect_import_error(too_few, {"node 'mm' (MatMul)", "has 1 input; MatMul (opset 17) takes 2"});

  ModelBuilder outputs;
  outputs.input("X", {2, 4});
  outputs.node("Relu", {"X"}, {"Y", "Z"}, "relu");
  outputs.output("Y");
  expect_import_error(outputs, {"node 'relu' (Relu)", "has 2 outputs; Relu (opset 17) has 1"});
}

TEST(OnnxImportChecks, AttributesOfTheWrongKindAreRefused) {
  expect_import_error(conv_model([](onnx::NodeProto& n) { set_float(n, "strides", 2.0f); }),
                      {"node 'conv' (Conv)", "attribute 'strides' is FLOAT; Conv (opset 17) takes INTS"});
  // A group written as a float would read as 0 in ONNX's inference.
  expect_import_error(conv_model([](onnx::NodeProto& n) { set_float(n, "group", 1.0f); }),
                      {"attribute 'group' is FLOAT; Conv (opset 17) takes INT"});
  expect_import_error(
      conv_model([](onnx::NodeProto& n) {
        set_ints(n, "stride", {1, 1});
      }),
      {"node 'conv' (Conv)", "attribute 'stride' is not one of Conv's at opset 17", "strides"});
  ModelBuilder cast;
  cast.input("X", {2});
  cast.node("Cast", {"X"}, {"Y"}, "cast");
  cast.output("Y", TensorProto::FLOAT16);
  expect_import_error(cast, {"node 'cast' (Cast)", "lacks attribute 'to'"});
}

// The other attributes and constant inputs ONNX's shape inference divides by, allocates from
// or indexes with.
TEST(OnnxImportChecks, ShapeAttributesOfOtherOperatorsAreChecked) {
  auto conv = [](const std::function<void(onnx::NodeProto&)>& edit, const std::string& why) {
    SCOPED_TRACE(why);
    expect_import_error(conv_model(edit), {"node 'conv' (Conv)", why});
  };
  conv([](onnx::NodeProto& n) { set_ints(n, "dilations", {1, 0}); }, "dilations [1, 0] must be positive");
  conv(
      [](onnx::NodeProto& n) {
        set_ints(n, "pads", {0, -1, 0, 0});
      },
      "pads [0, -1, 0, 0] must be non-negative");
  conv(
      [](onnx::NodeProto& n) {
        set_ints(n, "kernel_shape", {0, 3});
      },
      "kernel_shape [0, 3] must be positive");
  conv([](onnx::NodeProto& n) { set_ints(n, "strides", {1}); },
       "strides [1] must have 2 values, one per spatial dimension of X [1, 2, 8, 8]");
  conv(
      [](onnx::NodeProto& n) {
        set_ints(n, "pads", {1, 1});
      },
      "pads [1, 1] must have 4 values, a begin and an end per spatial dimension");
  conv([](onnx::NodeProto& n) { set_int(n, "group", 0); }, "group 0 must be positive");
  conv([](onnx::NodeProto& n) { set_int(n, "group", 3); }, "group 3 must divide the 2 channels of X");
  conv([](onnx::NodeProto& n) { set_int(n, "group", 2); }, "W [4, 2, 3, 3] takes 2 channels per group");

  struct Case {
    std::string op;
    std::function<void(ModelBuilder&, onnx::NodeProto&)> edit;
    std::vector<std::string> inputs;
    int outputs;
    std::string why;
  };
  std::vector<Case> cases = {
      {"ConvTranspose",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.initializer("W", {2}, {1, 1});
       },
       {"X", "W"},
       1,
       "W [2] must be [C, M/group, k1, ...]"},
      {"AveragePool",
       [](ModelBuilder&, onnx::NodeProto& n) {
         set_ints(n, "kernel_shape", {2, 2});
         set_ints(n, "strides", {0, 1});
       },
       {"X"},
       1,
       "strides [0, 1] must be positive"},
      {"LpPool",
       [](ModelBuilder&, onnx::NodeProto& n) {
         set_ints(n, "kernel_shape", {2, 2});
         set_ints(n, "strides", {0, 0});
       },
       {"X"},
       1,
       "strides [0, 0] must be positive"},
      {"DepthToSpace",
       [](ModelBuilder&, onnx::NodeProto& n) { set_int(n, "blocksize", 0); },
       {"X"},
       1,
       "blocksize 0 must be positive"},
      {"SpaceToDepth",
       [](ModelBuilder&, onnx::NodeProto& n) { set_int(n, "blocksize", 3); },
       {"X"},
       1,
       "blocksize 3 must divide the height and width"},
      {"Reshape",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.int_initializer("S", {2}, {-1, -1});
       },
       {"X", "S"},
       1,
       "shape [-1, -1] may hold one -1 at most"},
      {"Split",
       [](ModelBuilder& m, onnx::NodeProto& n) {
         m.int_initializer("S", {2}, {1, 2});
         set_int(n, "axis", 1);
       },
       {"X", "S"},
       2,
       "split [1, 2] must add up to the extent 2 of axis 1"},
      {"Tile",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.int_initializer("S", {4}, {1, -1, 1, 1});
       },
       {"X", "S"},
       1,
       "repeats [1, -1, 1, 1] must be non-negative"},
      {"Expand",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.int_initializer("S", {2}, {-3, 8});
       },
       {"X", "S"},
       1,
       "shape [-3, 8] must be non-negative"},
      {"Gather",
       [](ModelBuilder& m, onnx::NodeProto& n) {
         m.int_initializer("S", {1}, {0});
         set_int(n, "axis", 4);
       },
       {"X", "S"},
       1,
       "axis 4 is out of range for input [1, 2, 8, 8] (valid: -4 to 3)"},
      {"Resize",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.initializer("S", {4}, {1, 1, 0, 2});
       },
       {"X", "", "S"},
       1,
       "scales must be positive and finite"},
      {"Slice",
       [](ModelBuilder& m, onnx::NodeProto&) {
         m.int_initializer("B", {1}, {0});
         m.int_initializer("E", {1}, {4});
         m.int_initializer("A", {1}, {2});
         m.int_initializer("S", {1}, {0});
       },
       {"X", "B", "E", "A", "S"},
       1,
       "steps [0] must be non-zero"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    ModelBuilder m;
    m.input("X", {1, 2, 8, 8});
    std::vector<std::string> outputs;
    for (int k = 0; k < c.outputs; ++k) outputs.push_back("Y" + std::to_string(k));
    onnx::NodeProto& n = m.node(c.op, c.inputs, outputs, "hostile");
    c.edit(m, n);
    for (const auto& out : outputs) m.output(out);
    expect_import_error(m, {"node 'hostile' (" + c.op + ")", c.why});
  }
}

// PyTorch writes Split's num_outputs (opset 18) under opset 17, in an IR version 10 file:
// where it says what Split-13 does anyway it is dropped, so the model imports and exports
// valid at opset 17.
TEST(OnnxImportChecks, AttributesOfALaterOpsetAreDroppedWhenImplied) {
  auto split_model = [](int64_t num_outputs) {
    ModelBuilder m;
    m.model().set_ir_version(10);
    m.input("X", {2, 6});
    onnx::NodeProto& split = m.node("Split", {"X"}, {"A", "B"}, "split");
    set_int(split, "axis", 1);
    set_int(split, "num_outputs", num_outputs);
    m.output("A");
    m.output("B");
    return m;
  };
  Graph g = import(split_model(2));
  const Node& split = only_node(g, OpType::kSplit);
  EXPECT_FALSE(split.has("num_outputs"));
  EXPECT_EQ(g.value(split.outputs[1]).shape, (std::vector<int64_t>{2, 3}));
  onnx::ModelProto exported = parse(export_onnx(g));  // checked by onnx's checker inside
  for (const auto& a : exported.graph().node(0).attribute()) EXPECT_NE(a.name(), "num_outputs");
  expect_round_trip(g);

  expect_import_error(split_model(3), {"node 'split' (Split)", "attribute 'num_outputs' came with opset 18",
                                       "re-export with opset_version=17"});
}

// Export writes opset 17: a node that is valid at the model's older opset but not at 17
// (BatchNormalization-9's training outputs) is refused at import, not by export's checker
// after a search.
TEST(OnnxImportChecks, NodesExportCannotWriteAreRefused) {
  ModelBuilder m(13);
  m.input("X", {1, 2, 4, 4});
  for (const char* name : {"scale", "bias", "mean", "var"}) m.initializer(name, {2}, {1, 1});
  m.node("BatchNormalization", {"X", "scale", "bias", "mean", "var"}, {"Y", "M", "V", "SM", "SV"}, "bn");
  m.output("Y");
  expect_import_error(m, {"node 'bn' (BatchNormalization) is valid at opset 13 but not at opset 17",
                          "re-export with opset_version=17"});
}

// --- Opaque operators --------------------------------------------------------------------

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
                 {{"trans_b", int64_t{1}}, {"epilogue", std::string("bias+gelu+residual")}}, "fc")[0];
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
       {"fc/transpose_b", "fc/matmul", "fc/bias", "fc/gelu_erf", "fc/residual", "plain/transpose_a",
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
Tensor read_test_tensor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return tensor_from_onnx(bytes.str(), path);
}

std::vector<Tensor> read_test_tensors(const std::string& dir, const std::string& prefix) {
  std::vector<Tensor> out;
  for (int k = 0;; ++k) {
    std::string path = dir + "/" + prefix + "_" + std::to_string(k) + ".pb";
    if (!std::filesystem::exists(path)) break;
    out.push_back(read_test_tensor(path));
  }
  return out;
}

class OnnxBackendNode : public testing::TestWithParam<std::string> {};

// The model with its integer inputs (shapes, axes, indices) turned into initializers holding
// test_data_set_0's values: Tessera needs the tensors shapes depend on to be constant.
TEST_P(OnnxBackendNode, ImportedModelComputesTheExpectedOutputs) {
  std::string dir = kNodeTests + GetParam();
  std::ifstream in(dir + "/model.onnx", std::ios::binary);
  onnx::ModelProto model;
  ASSERT_TRUE(in && model.ParseFromIstream(&in)) << dir;
  int64_t opset = 0;
  for (const auto& o : model.opset_import()) {
    if (o.domain().empty()) opset = o.version();
  }
  ASSERT_TRUE(opset >= 13 && opset <= 17) << GetParam() << " uses opset " << opset;
  std::vector<Tensor> inputs;
  onnx::GraphProto* graph = model.mutable_graph();
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> kept;
  for (int k = 0; k < graph->input_size(); ++k) {
    std::string path = dir + "/test_data_set_0/input_" + std::to_string(k) + ".pb";
    std::ifstream data(path, std::ios::binary);
    TensorProto p;
    ASSERT_TRUE(data && p.ParseFromIstream(&data)) << path;
    if (p.data_type() == TensorProto::INT64) {
      p.set_name(graph->input(k).name());
      *graph->add_initializer() = p;
    } else {
      *kept.Add() = graph->input(k);
      inputs.push_back(read_test_tensor(path));
    }
  }
  graph->mutable_input()->Swap(&kept);

  Graph g = import_onnx_bytes(model.SerializeAsString(), GetParam());
  for (const Node& n : g.nodes()) EXPECT_NE(n.op, OpType::kOpaque) << n.name;
  std::vector<Tensor> expected = read_test_tensors(dir + "/test_data_set_0", "output");
  std::vector<Tensor> got = run_graph(g, inputs);
  EXPECT_LE(max_scaled_error(got, expected, 1e-4, 1e-5), 1.0);

  Graph back = import_onnx_bytes(export_onnx(g), GetParam());
  EXPECT_EQ(back.structural_hash(), g.structural_hash());
  EXPECT_LE(max_scaled_error(run_graph(back, inputs), expected, 1e-4, 1e-5), 1.0);
}

INSTANTIATE_TEST_SUITE_P(
    Conformance, OnnxBackendNode,
    testing::Values("test_matmul_4d", "test_gemm_all_attributes", "test_gemm_transposeB",
                    "test_softmax_axis_1", "test_layer_normalization_4d_axis1",
                    "test_layer_normalization_3d_axis1_epsilon", "test_batchnorm_epsilon",
                    "test_mvn_expanded", "test_transpose_all_permutations_2", "test_reshape_negative_dim",
                    "test_concat_3d_axis_1", "test_slice", "test_gather_0", "test_expand_dim_changed",
                    "test_where_example", "test_clip", "test_erf", "test_pow",
                    "test_reduce_mean_keepdims_random", "test_flatten_axis2", "test_squeeze",
                    "test_unsqueeze_axis_1", "test_cast_FLOAT_to_FLOAT16", "test_split_equal_parts_1d",
                    "test_sigmoid", "test_shape"),
    [](const testing::TestParamInfo<std::string>& param) { return param.param.substr(5); });

// Every backend node test of opset 13-17 either imports or is refused with a UserError;
// what imports exports checker-valid and reads back as the same structure.
TEST(OnnxBackendSweep, EveryModelImportsOrIsRefusedCleanly) {
  int imported = 0, refused = 0, opaque = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kNodeTests)) {
    std::string path = (entry.path() / "model.onnx").string();
    std::ifstream in(path, std::ios::binary);
    onnx::ModelProto model;
    if (!in || !model.ParseFromIstream(&in)) continue;  // a few use newer protobuf fields
    int64_t opset = 0;
    for (const auto& o : model.opset_import()) {
      if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
    }
    if (opset < 13 || opset > 17) continue;
    std::optional<Graph> g;
    try {
      g = import_onnx(path);
    } catch (const UserError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      continue;
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << ": " << e.what();
      continue;
    }
    ++imported;
    for (const Node& n : g->nodes()) opaque += n.op == OpType::kOpaque;
    try {
      Graph back = import_onnx_bytes(export_onnx(*g), path);
      EXPECT_EQ(back.structural_hash(), g->structural_hash()) << path;
    } catch (const std::exception& e) {
      ADD_FAILURE() << path << " after export: " << e.what();
    }
  }
  std::cout << "backend node tests of opset 13-17: " << imported << " imported (" << opaque
            << " Opaque nodes), " << refused << " refused\n";
  EXPECT_GT(imported, 300);
}

// `model` of backend test `dir` with its int64 inputs (shapes, axes, indices) turned into
// initializers holding test_data_set_0's values, as ImportedModelComputesTheExpectedOutputs does.
onnx::ModelProto with_int64_inputs_constant(onnx::ModelProto model, const std::filesystem::path& dir) {
  onnx::GraphProto* graph = model.mutable_graph();
  google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> kept;
  for (int k = 0; k < graph->input_size(); ++k) {
    std::ifstream data(dir / "test_data_set_0" / ("input_" + std::to_string(k) + ".pb"), std::ios::binary);
    TensorProto p;
    if (data && p.ParseFromIstream(&data) && p.data_type() == TensorProto::INT64) {
      p.set_name(graph->input(k).name());
      *graph->add_initializer() = p;
    } else {
      *kept.Add() = graph->input(k);
    }
  }
  graph->mutable_input()->Swap(&kept);
  return model;
}

// The backend node models with hostile integers in each integer attribute (given, or added
// where the operator has one) and in each int64 initializer (shapes, axes, sizes, indices):
// every one imports or is refused with a UserError. A division by zero or a read past a list
// in libonnx's shape inference or Tessera's constant folding would end the program.
TEST(OnnxBackendSweep, HostileIntegersNeverEscapeAsCrashesOrInternalErrors) {
  int tried = 0, refused = 0;
  auto try_import = [&](const onnx::ModelProto& model, const std::string& what) {
    ++tried;
    try {
      import_onnx_bytes(model.SerializeAsString(), what);
    } catch (const UserError&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << ": " << e.what();
    }
  };
  for (const auto& entry : std::filesystem::directory_iterator(kNodeTests)) {
    std::ifstream in(entry.path() / "model.onnx", std::ios::binary);
    onnx::ModelProto model;
    if (!in || !model.ParseFromIstream(&in)) continue;
    int64_t opset = 0;
    for (auto& o : *model.mutable_opset_import()) {
      if (!o.domain().empty() && o.domain() != "ai.onnx") continue;
      // An older model read at opset 13 still covers the operators that did not change since.
      if (o.version() < 13) o.set_version(13);
      opset = o.version();
    }
    if (opset < 13 || opset > 17) continue;
    std::string name = entry.path().filename().string();
    model = with_int64_inputs_constant(std::move(model), entry.path());
    for (int n = 0; n < model.graph().node_size(); ++n) {
      const onnx::NodeProto& node = model.graph().node(n);
      const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Instance()->GetSchema(
          node.op_type(), static_cast<int>(opset), node.domain());
      std::set<std::string> given;
      for (const auto& a : node.attribute()) given.insert(a.name());
      for (int64_t v : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) {
        // Each given integer attribute: the value, as the last element, as every element.
        for (int a = 0; a < node.attribute_size(); ++a) {
          for (bool every : {false, true}) {
            onnx::ModelProto m = model;
            onnx::AttributeProto* attr = m.mutable_graph()->mutable_node(n)->mutable_attribute(a);
            if (attr->type() == onnx::AttributeProto::INT && !every) {
              attr->set_i(v);
            } else if (attr->type() == onnx::AttributeProto::INTS && attr->ints_size() > 0) {
              for (int k = every ? 0 : attr->ints_size() - 1; k < attr->ints_size(); ++k)
                attr->set_ints(k, v);
            } else {
              continue;
            }
            try_import(m, name + " " + attr->name() + "=" + std::to_string(v));
          }
        }
        // Each integer attribute the operator has and the node leaves at its default.
        if (!schema) continue;
        for (const auto& [attr_name, attribute] : schema->attributes()) {
          if (given.count(attr_name)) continue;
          for (int length : {0, 1, 4}) {
            onnx::ModelProto m = model;
            onnx::AttributeProto* attr = m.mutable_graph()->mutable_node(n)->add_attribute();
            attr->set_name(attr_name);
            if (attribute.type == onnx::AttributeProto::INT && length == 0) {
              attr->set_type(onnx::AttributeProto::INT);
              attr->set_i(v);
            } else if (attribute.type == onnx::AttributeProto::INTS && length > 0) {
              attr->set_type(onnx::AttributeProto::INTS);
              for (int k = 0; k < length; ++k) attr->add_ints(v);
            } else {
              continue;
            }
            try_import(m, name + " +" + attr_name + "=" + std::to_string(v) + " x" + std::to_string(length));
          }
        }
      }
    }
    for (int t = 0; t < model.graph().initializer_size(); ++t) {
      for (int64_t v : {int64_t{0}, int64_t{-1}, INT64_MAX, INT64_MIN}) {
        onnx::ModelProto m = model;
        TensorProto* init = m.mutable_graph()->mutable_initializer(t);
        if (init->data_type() != TensorProto::INT64) continue;
        if (init->has_raw_data()) {
          std::string& raw = *init->mutable_raw_data();
          if (raw.size() < sizeof(v)) continue;
          std::memcpy(raw.data() + raw.size() - sizeof(v), &v, sizeof(v));
        } else if (init->int64_data_size() > 0) {
          init->set_int64_data(init->int64_data_size() - 1, v);
        } else {
          continue;
        }
        try_import(m, name + " " + init->name() + "=" + std::to_string(v));
      }
    }
  }
  std::cout << "hostile integers in backend node models: " << tried << " imports, " << refused
            << " refused\n";
  EXPECT_GT(tried, 5000);
}

}  // namespace
}  // namespace tessera::graph
