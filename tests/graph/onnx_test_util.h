// Helpers of the ONNX tests (onnx_import_test.cc, onnx_export_test.cc, onnx_backend_test.cc):
// small models built with the protobuf API, round trips, and value comparisons.
#pragma once

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

namespace tessera::graph::onnx_testing {

using onnx::TensorProto;

inline const std::string kNodeTests = "/usr/include/onnx/backend/test/data/node/";

inline std::string raw_floats(const std::vector<float>& values) {
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

inline void set_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}
inline void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}
inline void set_float(onnx::NodeProto& n, const std::string& name, float v) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}
inline onnx::TensorProto* set_tensor(onnx::NodeProto& n, const std::string& name) {
  auto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::TENSOR);
  return a->mutable_t();
}

inline void mark_stripped(TensorProto& t) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int64_data();
  t.set_data_location(TensorProto::EXTERNAL);
  auto* e = t.add_external_data();
  e->set_key("location");
  e->set_value(std::string(kStrippedLocation));
}

inline Graph import(const ModelBuilder& m) {
  return import_onnx_bytes(m.bytes(), "test.onnx");
}

// The UserError message `f` throws ("" and a test failure when it throws none).
inline std::string user_error(const std::function<void()>& f) {
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

inline onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

inline const TensorProto* find_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

inline std::vector<OpType> ops_in_order(const Graph& g) {
  std::vector<OpType> ops;
  for (NodeId n : g.topological_order()) ops.push_back(g.node(n).op);
  return ops;
}

inline const Node& only_node(const Graph& g, OpType op) {
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
inline void expect_strictly_inferable(const std::string& bytes) {
  onnx::ModelProto m = parse(bytes);
  try {
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(true, 1));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "strict shape inference: " << e.what();
  }
}

// Export, re-import, and the same structure and the same values on random inputs.
inline Graph expect_round_trip(const Graph& g, const ExportOptions& options = {}) {
  std::string bytes = export_onnx(g, options);
  EXPECT_EQ(bytes, export_onnx(g, options)) << "export is deterministic";
  expect_strictly_inferable(bytes);
  Graph back = import_onnx_bytes(bytes, "exported.onnx");
  EXPECT_EQ(back.structural_hash(), g.structural_hash());
  return back;
}

inline void expect_same_values(const Graph& a, const Graph& b, uint64_t seed = 7) {
  std::vector<Tensor> inputs = random_graph_inputs(a, seed);
  std::vector<Tensor> ya = run_graph(a, inputs), yb = run_graph(b, inputs);
  EXPECT_LE(max_scaled_error(yb, ya), 1.0);
}

// --- Import -----------------------------------------------------------------------------

inline ModelBuilder dense_model() {
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


inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string error = user_error(f);
  for (const auto& part : parts)
    EXPECT_NE(error.find(part), std::string::npos) << "'" << part << "' in: " << error;
}

}  // namespace tessera::graph::onnx_testing
