// check_equivalent around operators Tessera cannot evaluate (graph/equivalence.h): the parts of
// both graphs before and after an Opaque node are compared, and its inputs are.
#include <gtest/gtest.h>

#include "graph/equivalence.h"
#include "tests/graph/onnx_test_util.h"

namespace tessera::graph {
namespace {

using namespace onnx_testing;

// X -> MatMul W -> Add B1 -> Softplus (Opaque to Tessera) -> MatMul W -> Add B2 -> Y.
ModelBuilder softplus_model(float b1, float b2, const std::string& opaque_name = "softplus") {
  ModelBuilder m;
  m.input("X", {2, 4});
  m.initializer("W", {4, 4}, std::vector<float>(16, 0.25f));
  m.initializer("B1", {4}, std::vector<float>(4, b1));
  m.initializer("B2", {4}, std::vector<float>(4, b2));
  m.node("MatMul", {"X", "W"}, {"m1"}, "mm1");
  m.node("Add", {"m1", "B1"}, {"a1"}, "add1");
  m.node("Softplus", {"a1"}, {"s"}, opaque_name);
  m.node("MatMul", {"s", "W"}, {"m2"}, "mm2");
  m.node("Add", {"m2", "B2"}, {"Y"}, "add2");
  m.output("Y");
  return m;
}

TEST(Equivalence, VerifiesAroundAnOperatorTesseraCannotEvaluate) {
  Graph g = import(softplus_model(1, 2));
  ASSERT_EQ(only_node(g, OpType::kOpaque).name, "softplus");
  int opaque = -1;
  EXPECT_EQ(check_equivalent(g, g, 2, &opaque), std::nullopt);
  EXPECT_EQ(opaque, 1);
}

TEST(Equivalence, ADifferenceBeforeTheOperatorIsFound) {
  Graph g = import(softplus_model(1, 2)), changed = import(softplus_model(1.5f, 2));
  std::optional<std::string> why = check_equivalent(g, changed);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("node 'softplus'"), std::string::npos) << *why;
  EXPECT_NE(why->find("inputs differ"), std::string::npos) << *why;
}

TEST(Equivalence, ADifferenceAfterTheOperatorIsFound) {
  Graph g = import(softplus_model(1, 2)), changed = import(softplus_model(1, 2.5f));
  std::optional<std::string> why = check_equivalent(g, changed);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("outputs differ"), std::string::npos) << *why;
}

TEST(Equivalence, AnOperatorWithoutCounterpartCannotBeCompared) {
  Graph g = import(softplus_model(1, 2)), renamed = import(softplus_model(1, 2, "other"));
  std::optional<std::string> why = check_equivalent(g, renamed);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("no counterpart"), std::string::npos) << *why;
}

// Integer outputs stand in as 0, which an index reading them accepts.
TEST(Equivalence, IntegerOutputsOfTheOperatorServeAsIndices) {
  ModelBuilder m;
  m.input("X", {3, 4});
  m.node("ArgMax", {"X"}, {"i"}, "argmax", "com.example");
  m.import_opset("com.example", 1);
  m.node("Gather", {"X", "i"}, {"Y"}, "gather");
  m.output("Y");
  // ONNX cannot infer a custom operator's outputs: the model states them.
  onnx::ValueInfoProto* info = m.graph().add_value_info();
  info->set_name("i");
  info->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::INT64);
  info->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  Graph g = import(m);
  EXPECT_EQ(check_equivalent(g, g), std::nullopt);
}

}  // namespace
}  // namespace tessera::graph
