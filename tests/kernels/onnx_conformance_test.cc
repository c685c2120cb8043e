// The CPU reference against the ONNX backend node tests (Debian's libonnx-testdata): each
// case's model attributes are mapped to a Tessera workload, its input protobufs evaluated
// by the reference and compared with its output protobuf. Only cases a Tessera workload
// expresses are listed (no asymmetric pads, no alpha/beta scaling, last-axis reductions).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <onnx/onnx_pb.h>

#include "kernels/reference.h"

namespace tessera::kernels {
namespace {

const std::string kNodeTests = "/usr/include/onnx/backend/test/data/node/";

HostTensor read_tensor(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::TensorProto p;
  EXPECT_TRUE(in && p.ParseFromIstream(&in)) << path;
  EXPECT_EQ(p.data_type(), onnx::TensorProto::FLOAT) << path;
  HostTensor t;
  for (int64_t d : p.dims()) t.shape.push_back(d);
  t.data.resize(static_cast<size_t>(t.elements()));
  if (!p.raw_data().empty()) {
    EXPECT_EQ(p.raw_data().size(), t.data.size() * sizeof(float)) << path;
    std::memcpy(t.data.data(), p.raw_data().data(), std::min(p.raw_data().size(), t.data.size() * sizeof(float)));
  } else {
    EXPECT_EQ(static_cast<size_t>(p.float_data_size()), t.data.size()) << path;
    std::copy(p.float_data().begin(), p.float_data().end(), t.data.begin());
  }
  return t;
}

struct OnnxCase {
  onnx::NodeProto node;
  std::vector<HostTensor> inputs, outputs;

  const onnx::AttributeProto* attr(const std::string& name) const {
    for (const auto& a : node.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  int64_t int_attr(const std::string& name, int64_t fallback) const {
    auto* a = attr(name);
    return a ? a->i() : fallback;
  }
  float float_attr(const std::string& name, float fallback) const {
    auto* a = attr(name);
    return a ? a->f() : fallback;
  }
  std::vector<int64_t> ints_attr(const std::string& name) const {
    auto* a = attr(name);
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }
};

OnnxCase load(const std::string& name) {
  OnnxCase c;
  std::string dir = kNodeTests + name;
  std::ifstream in(dir + "/model.onnx", std::ios::binary);
  onnx::ModelProto model;
  EXPECT_TRUE(in && model.ParseFromIstream(&in)) << dir;
  EXPECT_EQ(model.graph().node_size(), 1) << name;
  if (model.graph().node_size() > 0) c.node = model.graph().node(0);
  for (int i = 0;; ++i) {
    std::string p = dir + "/test_data_set_0/input_" + std::to_string(i) + ".pb";
    if (!std::filesystem::exists(p)) break;
    c.inputs.push_back(read_tensor(p));
  }
  for (int i = 0;; ++i) {
    std::string p = dir + "/test_data_set_0/output_" + std::to_string(i) + ".pb";
    if (!std::filesystem::exists(p)) break;
    c.outputs.push_back(read_tensor(p));
  }
  return c;
}

std::string dims(const std::vector<int64_t>& shape) {
  std::string s;
  for (int64_t d : shape) s += (s.empty() ? "" : "x") + std::to_string(d);
  return s;
}

int64_t product(const std::vector<int64_t>& shape, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= shape[i];
  return p;
}

// The Tessera evaluation of an ONNX node, with inputs reshaped as the workload expects.
HostTensor evaluate(const OnnxCase& c) {
  const std::string& op = c.node.op_type();
  std::vector<HostTensor> in = c.inputs;
  auto flat = [](HostTensor t, std::vector<int64_t> shape) {
    t.shape = std::move(shape);
    return t;
  };
  if (op == "MatMul") {
    const auto& a = in[0].shape;
    const auto& b = in[1].shape;
    int64_t m = a[a.size() - 2], k = a.back(), n = b.back(), batch = product(a, 0, a.size() - 2);
    if (batch == 1) {
      in = {flat(in[0], {m, k}), flat(in[1], {k, n})};
      return reference(Workload::parse("matmul:m=" + std::to_string(m) + ",n=" + std::to_string(n) + ",k=" +
                                       std::to_string(k) + ":f32"),
                       in);
    }
    in = {flat(in[0], {batch, m, k}), flat(in[1], {batch, k, n})};
    return reference(Workload::parse("batch_matmul:b=" + std::to_string(batch) + ",m=" + std::to_string(m) + ",n=" +
                                     std::to_string(n) + ",k=" + std::to_string(k) + ":f32"),
                     in);
  }
  if (op == "Gemm") {
    EXPECT_EQ(c.float_attr("alpha", 1), 1.0f);
    EXPECT_EQ(c.float_attr("beta", 1), 1.0f);
    bool ta = c.int_attr("transA", 0), tb = c.int_attr("transB", 0);
    int64_t m = ta ? in[0].shape[1] : in[0].shape[0], k = ta ? in[0].shape[0] : in[0].shape[1];
    int64_t n = tb ? in[1].shape[0] : in[1].shape[1];
    std::string spec = "matmul:m=" + std::to_string(m) + ",n=" + std::to_string(n) + ",k=" + std::to_string(k) +
                       (ta ? ",ta=1" : "") + (tb ? ",tb=1" : "") + ":f32";
    if (in.size() == 3) {
      bool vector = in[2].elements() == n && (in[2].shape.size() == 1 || in[2].shape[0] == 1);
      EXPECT_TRUE(vector || in[2].shape == (std::vector<int64_t>{m, n})) << "C of shape " << dims(in[2].shape);
      in[2] = flat(in[2], vector ? std::vector<int64_t>{n} : std::vector<int64_t>{m, n});
      spec += vector ? ":epilogue=bias" : ":epilogue=residual";
    }
    return reference(Workload::parse(spec), in);
  }
  if (op == "Conv") {
    const auto& x = in[0].shape;
    const auto& w = in[1].shape;
    std::vector<int64_t> pads = c.ints_attr("pads"), strides = c.ints_attr("strides"), dil = c.ints_attr("dilations");
    if (pads.empty()) pads = {0, 0, 0, 0};
    if (strides.empty()) strides = {1, 1};
    if (dil.empty()) dil = {1, 1};
    EXPECT_EQ(pads[0], pads[2]);
    EXPECT_EQ(pads[1], pads[3]);
    std::string spec = "conv2d:n=" + std::to_string(x[0]) + ",h=" + std::to_string(x[2]) + ",w=" + std::to_string(x[3]) +
                       ",c=" + std::to_string(x[1]) + ",k=" + std::to_string(w[0]) + ",r=" + std::to_string(w[2]) +
                       ",s=" + std::to_string(w[3]) + ",stride=" + std::to_string(strides[0]) + "x" +
                       std::to_string(strides[1]) + ",pad=" + std::to_string(pads[0]) + "x" + std::to_string(pads[1]) +
                       ",dilation=" + std::to_string(dil[0]) + "x" + std::to_string(dil[1]) +
                       ",groups=" + std::to_string(c.int_attr("group", 1)) + ",layout=nchw:f32";
    return reference(Workload::parse(spec), in);
  }
  if (op == "Softmax") {
    const auto& x = in[0].shape;
    int64_t axis = c.int_attr("axis", -1);
    EXPECT_TRUE(axis == -1 || axis == static_cast<int64_t>(x.size()) - 1) << "softmax over a non-last axis";
    int64_t cols = x.back(), rows = in[0].elements() / cols;
    HostTensor out = reference(Workload::parse("softmax:rows=" + std::to_string(rows) + ",cols=" +
                                               std::to_string(cols) + ":f32"),
                               std::vector{flat(in[0], {rows, cols})});
    out.shape = x;
    return out;
  }
  if (op == "LayerNormalization") {
    int64_t axis = c.int_attr("axis", -1);
    EXPECT_TRUE(axis == -1 || axis == static_cast<int64_t>(in[0].shape.size()) - 1);
    return layernorm_reference(in[0], in[1], in[2], c.float_attr("epsilon", 1e-5f));
  }
  static const std::map<std::string, std::string> kElementwise = {
      {"Relu", "relu"}, {"Add", "add"},         {"Sub", "sub"},   {"Mul", "mul"}, {"Div", "div"},
      {"Sigmoid", "sigmoid"}, {"Tanh", "tanh"}, {"Exp", "exp"},   {"Neg", "neg"}, {"Abs", "abs"}};
  auto it = kElementwise.find(op);
  EXPECT_NE(it, kElementwise.end()) << "no mapping for ONNX op " << op;
  if (it == kElementwise.end()) return {};
  int64_t n = in[0].elements();
  for (HostTensor& t : in) {
    EXPECT_EQ(t.elements(), n) << "broadcasting is not an elementwise workload";
    t.shape = {n};
  }
  HostTensor out = reference(Workload::parse("elementwise:ops=" + it->second + ",n=" + std::to_string(n) + ":f32"), in);
  out.shape = c.inputs[0].shape;
  return out;
}

class OnnxNode : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxNode, ReferenceMatchesExpectedOutput) {
  std::string dir = kNodeTests + GetParam();
  ASSERT_TRUE(std::filesystem::exists(dir + "/model.onnx"))
      << dir << " is missing: scripts/setup.sh installs Debian's libonnx-testdata";
  OnnxCase c = load(GetParam());
  ASSERT_FALSE(c.outputs.empty());
  HostTensor got = evaluate(c);
  const HostTensor& want = c.outputs[0];
  ASSERT_EQ(got.elements(), want.elements()) << dims(got.shape) << " vs " << dims(want.shape);
  double worst = 0;
  for (size_t i = 0; i < want.data.size(); ++i) {
    double err = std::fabs(got.data[i] - want.data[i]) / (1e-6 + std::fabs(want.data[i]));
    worst = std::max(worst, std::min(err, static_cast<double>(std::fabs(got.data[i] - want.data[i]))));
  }
  // ONNX's expected outputs are float32 computations; ours are double rounded to float.
  EXPECT_LT(worst, 1e-5) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(
    Conformance, OnnxNode,
    ::testing::Values("test_matmul_2d", "test_matmul_3d", "test_matmul_4d", "test_gemm_default_no_bias",
                      "test_gemm_default_vector_bias", "test_gemm_default_matrix_bias", "test_gemm_default_zero_bias",
                      "test_basic_conv_with_padding", "test_basic_conv_without_padding",
                      "test_conv_with_strides_padding", "test_conv_with_strides_no_padding", "test_softmax_example",
                      "test_softmax_large_number", "test_softmax_axis_2", "test_softmax_default_axis",
                      "test_softmax_negative_axis", "test_layer_normalization_2d_axis1",
                      "test_layer_normalization_2d_axis_negative_1", "test_layer_normalization_3d_axis2_epsilon",
                      "test_layer_normalization_3d_axis_negative_1_epsilon", "test_layer_normalization_4d_axis3",
                      "test_layer_normalization_4d_axis_negative_1", "test_layer_normalization_default_axis",
                      "test_relu", "test_add", "test_sub", "test_mul", "test_div", "test_sigmoid", "test_tanh",
                      "test_exp", "test_neg", "test_abs"),
    [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

}  // namespace
}  // namespace tessera::kernels
