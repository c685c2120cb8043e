// Operator semantics (graph/ops.h): inference and evaluation against the ONNX backend
// node tests of Debian's libonnx-testdata, the fused operators against their decompositions,
// error messages, run_graph on a hand-built graph, and the random inputs and comparison.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>

#include "core/error.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

const std::string kNodeTests = "/usr/include/onnx/backend/test/data/node/";

// A TensorProto as a Tensor; nullopt for element types the IR does not have. `declared` is
// the model's type for it: onnx 1.12 stores its bfloat16 test data as uint16.
std::optional<Tensor> to_tensor(onnx::TensorProto p, int declared = onnx::TensorProto::UNDEFINED) {
  if (p.data_type() == onnx::TensorProto::UINT16 && declared == onnx::TensorProto::BFLOAT16) {
    p.set_data_type(onnx::TensorProto::BFLOAT16);  // same bits, same fields
  }
  if (!elem_type_from_onnx(p.data_type())) return std::nullopt;
  return tensor_from_onnx(p.SerializeAsString(), "test tensor " + p.name());
}

std::optional<Tensor> read_tensor(const std::string& path, const onnx::ValueInfoProto& info) {
  std::ifstream in(path, std::ios::binary);
  onnx::TensorProto p;
  EXPECT_TRUE(in && p.ParseFromIstream(&in)) << path;
  return to_tensor(p, info.type().tensor_type().elem_type());
}

// The node's attributes in the IR's form; ConstantOfShape's tensor "value" becomes "value"
// (a double) and "dtype" (its ONNX data type).
Attrs to_attrs(const onnx::NodeProto& node) {
  Attrs attrs;
  for (const onnx::AttributeProto& a : node.attribute()) {
    switch (a.type()) {
      case onnx::AttributeProto::INT:
        attrs[a.name()] = a.i();
        break;
      case onnx::AttributeProto::FLOAT:
        attrs[a.name()] = static_cast<double>(a.f());
        break;
      case onnx::AttributeProto::STRING:
        attrs[a.name()] = a.s();
        break;
      case onnx::AttributeProto::INTS:
        attrs[a.name()] = std::vector<int64_t>(a.ints().begin(), a.ints().end());
        break;
      case onnx::AttributeProto::FLOATS:
        attrs[a.name()] = std::vector<double>(a.floats().begin(), a.floats().end());
        break;
      case onnx::AttributeProto::TENSOR: {
        EXPECT_EQ(node.op_type(), "ConstantOfShape") << "tensor attribute " << a.name();
        std::optional<Tensor> t = to_tensor(a.t());
        EXPECT_TRUE(t && t->elements() == 1) << "ConstantOfShape value";
        if (t && t->elements() == 1) attrs["value"] = t->at(0);
        attrs["dtype"] = static_cast<int64_t>(a.t().data_type());
        break;
      }
      default:
        ADD_FAILURE() << "attribute " << a.name() << " of an unsupported type";
    }
  }
  return attrs;
}

struct NodeCase {
  onnx::NodeProto node;
  int64_t opset = 0;
  std::vector<std::optional<Tensor>> inputs;  // node input order; nullopt for an omitted one
  std::vector<Tensor> outputs;                // the expected outputs present in the data set
};

NodeCase load(const std::string& name) {
  NodeCase c;
  std::string dir = kNodeTests + name;
  std::ifstream in(dir + "/model.onnx", std::ios::binary);
  onnx::ModelProto model;
  EXPECT_TRUE(in && model.ParseFromIstream(&in)) << dir;
  EXPECT_EQ(model.graph().node_size(), 1) << name;
  if (model.graph().node_size() == 0) return c;
  c.node = model.graph().node(0);
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") c.opset = o.version();
  std::map<std::string, Tensor> by_name;
  for (int k = 0; k < model.graph().input_size(); ++k) {
    std::string path = dir + "/test_data_set_0/input_" + std::to_string(k) + ".pb";
    std::optional<Tensor> t = read_tensor(path, model.graph().input(k));
    EXPECT_TRUE(t.has_value()) << path << " has an element type the IR lacks";
    if (t) by_name[model.graph().input(k).name()] = *t;
  }
  for (const std::string& input : c.node.input()) {
    if (input.empty()) {
      c.inputs.push_back(std::nullopt);
      continue;
    }
    EXPECT_TRUE(by_name.count(input)) << "input " << input << " of " << name;
    c.inputs.push_back(by_name[input]);
  }
  for (int k = 0; k < model.graph().output_size(); ++k) {
    std::string path = dir + "/test_data_set_0/output_" + std::to_string(k) + ".pb";
    std::optional<Tensor> t = read_tensor(path, model.graph().output(k));
    EXPECT_TRUE(t.has_value()) << path << " has an element type the IR lacks";
    if (t) c.outputs.push_back(*t);
  }
  return c;
}

std::string dims(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d) s += (d ? "," : "") + std::to_string(shape[d]);
  return s + "]";
}

class OnnxNode : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxNode, InfersAndEvaluatesLikeOnnx) {
  std::string dir = kNodeTests + GetParam();
  ASSERT_TRUE(std::filesystem::exists(dir + "/model.onnx"))
      << dir << " is missing: scripts/setup.sh installs Debian's libonnx-testdata";
  NodeCase c = load(GetParam());
  ASSERT_FALSE(c.outputs.empty());
  // Some cases were stored at an older opset where the operator's semantics are those of
  // 13-17 (Squeeze / Unsqueeze with an "axes" attribute are accepted too); none is newer.
  EXPECT_LE(c.opset, 17) << "the IR follows opset 13-17";
  std::optional<OpType> op = op_type_from_name(c.node.op_type());
  ASSERT_TRUE(op.has_value()) << c.node.op_type();
  Attrs attrs = to_attrs(c.node);

  std::vector<InputInfo> infos;
  std::vector<const Tensor*> args;
  for (const std::optional<Tensor>& t : c.inputs) {
    InputInfo info;
    info.present = t.has_value();
    if (t) {
      info.type = t->type;
      info.shape = t->shape;
      info.constant = &*t;
    }
    infos.push_back(info);
    args.push_back(t ? &*t : nullptr);
  }
  int num_outputs = c.node.output_size();
  auto inferred = infer_node(*op, attrs, infos, num_outputs);
  ASSERT_EQ(inferred.size(), static_cast<size_t>(num_outputs));
  std::vector<Tensor> got = evaluate_node(*op, attrs, args, num_outputs);
  ASSERT_EQ(got.size(), static_cast<size_t>(num_outputs));
  ASSERT_EQ(c.outputs.size(), got.size());
  for (size_t k = 0; k < got.size(); ++k) {
    const Tensor& want = c.outputs[k];
    EXPECT_EQ(inferred[k].first, want.type) << "output " << k << ": " << elem_type_name(inferred[k].first);
    EXPECT_EQ(inferred[k].second, want.shape)
        << "output " << k << ": " << dims(inferred[k].second) << " vs " << dims(want.shape);
    EXPECT_EQ(got[k].type, want.type) << "output " << k;
    // f16 / bf16 outputs differ by a rounding step where ONNX's generator truncated.
    bool narrow = want.type == ElemType::kF16 || want.type == ElemType::kBF16;
    double err = max_scaled_error(std::span(&got[k], 1), std::span(&want, 1), narrow ? 1e-2 : 1e-5, 1e-6);
    EXPECT_LE(err, 1.0) << "output " << k << " of " << GetParam();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Conformance, OnnxNode,
    ::testing::Values(
        // contractions and normalisations
        "test_basic_conv_with_padding", "test_basic_conv_without_padding", "test_conv_with_strides_padding",
        "test_conv_with_strides_no_padding", "test_conv_with_strides_and_asymmetric_padding",
        "test_conv_with_autopad_same", "test_matmul_2d", "test_matmul_3d", "test_matmul_4d",
        "test_gemm_all_attributes", "test_gemm_alpha", "test_gemm_beta", "test_gemm_default_matrix_bias",
        "test_gemm_default_no_bias", "test_gemm_default_scalar_bias",
        "test_gemm_default_single_elem_vector_bias", "test_gemm_default_vector_bias",
        "test_gemm_default_zero_bias", "test_gemm_transposeA", "test_gemm_transposeB", "test_softmax_axis_0",
        "test_softmax_axis_1", "test_softmax_axis_2", "test_softmax_default_axis", "test_softmax_example",
        "test_softmax_large_number", "test_softmax_negative_axis", "test_layer_normalization_2d_axis0",
        "test_layer_normalization_2d_axis1", "test_layer_normalization_2d_axis_negative_1",
        "test_layer_normalization_2d_axis_negative_2", "test_layer_normalization_3d_axis0_epsilon",
        "test_layer_normalization_3d_axis1_epsilon", "test_layer_normalization_3d_axis2_epsilon",
        "test_layer_normalization_3d_axis_negative_1_epsilon",
        "test_layer_normalization_3d_axis_negative_2_epsilon",
        "test_layer_normalization_3d_axis_negative_3_epsilon", "test_layer_normalization_4d_axis0",
        "test_layer_normalization_4d_axis1", "test_layer_normalization_4d_axis2",
        "test_layer_normalization_4d_axis3", "test_layer_normalization_4d_axis_negative_1",
        "test_layer_normalization_4d_axis_negative_2", "test_layer_normalization_4d_axis_negative_3",
        "test_layer_normalization_4d_axis_negative_4", "test_layer_normalization_default_axis",
        "test_batchnorm_example", "test_batchnorm_epsilon",
        // elementwise
        "test_add", "test_add_bcast", "test_add_uint8", "test_sub", "test_sub_bcast", "test_sub_example",
        "test_sub_uint8", "test_mul", "test_mul_bcast", "test_mul_example", "test_mul_uint8", "test_div",
        "test_div_bcast", "test_div_example", "test_div_uint8", "test_pow", "test_pow_bcast_array",
        "test_pow_bcast_scalar", "test_pow_example", "test_pow_types_float32_int32",
        "test_pow_types_float32_int64", "test_pow_types_int32_float32", "test_pow_types_int32_int32",
        "test_pow_types_int64_float32", "test_pow_types_int64_int64", "test_sqrt", "test_sqrt_example",
        "test_exp", "test_exp_example", "test_neg", "test_neg_example", "test_relu", "test_clip",
        "test_clip_default_inbounds", "test_clip_default_int8_inbounds", "test_clip_default_int8_max",
        "test_clip_default_int8_min", "test_clip_default_max", "test_clip_default_min", "test_clip_example",
        "test_clip_inbounds", "test_clip_outbounds", "test_clip_splitbounds", "test_sigmoid",
        "test_sigmoid_example", "test_tanh", "test_tanh_example", "test_erf", "test_where_example",
        "test_where_long_example", "test_cast_BFLOAT16_to_FLOAT", "test_cast_DOUBLE_to_FLOAT",
        "test_cast_DOUBLE_to_FLOAT16", "test_cast_FLOAT16_to_DOUBLE", "test_cast_FLOAT16_to_FLOAT",
        "test_cast_FLOAT_to_BFLOAT16", "test_cast_FLOAT_to_DOUBLE", "test_cast_FLOAT_to_FLOAT16",
        "test_equal", "test_equal_bcast", "test_abs", "test_max_example", "test_max_float16",
        "test_max_float32", "test_max_float64", "test_max_int8", "test_max_int32", "test_max_int64",
        "test_max_uint8", "test_max_one_input", "test_max_two_inputs", "test_min_example", "test_min_float16",
        "test_min_float32", "test_min_float64", "test_min_int8", "test_min_int32", "test_min_int64",
        "test_min_uint8", "test_min_one_input", "test_min_two_inputs", "test_mod_broadcast",
        "test_mod_int64_fmod", "test_mod_mixed_sign_float16", "test_mod_mixed_sign_float32",
        "test_mod_mixed_sign_float64", "test_mod_mixed_sign_int8", "test_mod_mixed_sign_int32",
        "test_mod_mixed_sign_int64", "test_mod_uint8",
        // data movement and shapes
        "test_transpose_all_permutations_0", "test_transpose_all_permutations_1",
        "test_transpose_all_permutations_2", "test_transpose_all_permutations_3",
        "test_transpose_all_permutations_4", "test_transpose_all_permutations_5", "test_transpose_default",
        "test_reshape_allowzero_reordered", "test_reshape_extended_dims", "test_reshape_negative_dim",
        "test_reshape_negative_extended_dims", "test_reshape_one_dim", "test_reshape_reduced_dims",
        "test_reshape_reordered_all_dims", "test_reshape_reordered_last_dims",
        "test_reshape_zero_and_negative_dim", "test_reshape_zero_dim", "test_flatten_axis0",
        "test_flatten_axis1", "test_flatten_axis2", "test_flatten_axis3", "test_flatten_default_axis",
        "test_flatten_negative_axis1", "test_flatten_negative_axis2", "test_flatten_negative_axis3",
        "test_flatten_negative_axis4", "test_squeeze", "test_squeeze_negative_axes", "test_unsqueeze_axis_0",
        "test_unsqueeze_axis_1", "test_unsqueeze_axis_2", "test_unsqueeze_axis_3",
        "test_unsqueeze_negative_axes", "test_unsqueeze_three_axes", "test_unsqueeze_two_axes",
        "test_unsqueeze_unsorted_axes", "test_concat_1d_axis_0", "test_concat_1d_axis_negative_1",
        "test_concat_2d_axis_0", "test_concat_2d_axis_1", "test_concat_2d_axis_negative_1",
        "test_concat_2d_axis_negative_2", "test_concat_3d_axis_0", "test_concat_3d_axis_1",
        "test_concat_3d_axis_2", "test_concat_3d_axis_negative_1", "test_concat_3d_axis_negative_2",
        "test_concat_3d_axis_negative_3", "test_split_equal_parts_1d", "test_split_equal_parts_2d",
        "test_split_equal_parts_default_axis", "test_split_variable_parts_1d", "test_split_variable_parts_2d",
        "test_split_variable_parts_default_axis", "test_split_zero_size_splits", "test_slice",
        "test_slice_default_axes", "test_slice_default_steps", "test_slice_end_out_of_bounds",
        "test_slice_neg", "test_slice_neg_steps", "test_slice_negative_axes",
        "test_slice_start_out_of_bounds", "test_gather_0", "test_gather_1", "test_gather_2d_indices",
        "test_gather_negative_indices", "test_gather_elements_0", "test_gather_elements_1",
        "test_gather_elements_negative_indices", "test_expand_dim_changed", "test_expand_dim_unchanged",
        "test_shape", "test_shape_clip_end", "test_shape_clip_start", "test_shape_end_1",
        "test_shape_end_negative_1", "test_shape_example", "test_shape_start_1", "test_shape_start_1_end_2",
        "test_shape_start_1_end_negative_1", "test_shape_start_negative_1", "test_constantofshape_float_ones",
        "test_constantofshape_int_shape_zero", "test_constantofshape_int_zeros", "test_identity",
        // pooling and reductions
        "test_maxpool_1d_default", "test_maxpool_2d_ceil", "test_maxpool_2d_default",
        "test_maxpool_2d_dilations", "test_maxpool_2d_pads", "test_maxpool_2d_precomputed_pads",
        "test_maxpool_2d_precomputed_same_upper", "test_maxpool_2d_precomputed_strides",
        "test_maxpool_2d_same_lower", "test_maxpool_2d_same_upper", "test_maxpool_2d_strides",
        "test_maxpool_2d_uint8", "test_maxpool_3d_default", "test_averagepool_1d_default",
        "test_averagepool_2d_ceil", "test_averagepool_2d_default", "test_averagepool_2d_pads",
        "test_averagepool_2d_pads_count_include_pad", "test_averagepool_2d_precomputed_pads",
        "test_averagepool_2d_precomputed_pads_count_include_pad",
        "test_averagepool_2d_precomputed_same_upper", "test_averagepool_2d_precomputed_strides",
        "test_averagepool_2d_same_lower", "test_averagepool_2d_same_upper", "test_averagepool_2d_strides",
        "test_averagepool_3d_default", "test_globalaveragepool", "test_globalaveragepool_precomputed",
        "test_reduce_mean_default_axes_keepdims_example", "test_reduce_mean_default_axes_keepdims_random",
        "test_reduce_mean_do_not_keepdims_example", "test_reduce_mean_do_not_keepdims_random",
        "test_reduce_mean_keepdims_example", "test_reduce_mean_keepdims_random",
        "test_reduce_mean_negative_axes_keepdims_example", "test_reduce_mean_negative_axes_keepdims_random",
        "test_and2d", "test_and_bcast4v4d", "test_or_bcast4v3d", "test_xor_bcast4v2d", "test_not_3d",
        "test_less_bcast", "test_greater", "test_less_equal_bcast", "test_greater_equal", "test_isnan", "test_isinf",
        "test_isinf_negative", "test_isinf_positive", "test_reciprocal", "test_log", "test_floor", "test_ceil",
        "test_range_float_type_positive_delta", "test_range_int32_type_negative_delta",
        "test_cumsum_1d_reverse_exclusive", "test_cumsum_2d_negative_axis", "test_tril_neg", "test_tril_out_pos",
        "test_triu_one_row", "test_triu_out_neg_out", "test_triu_square_neg",
        "test_reduce_sum_empty_axes_input_noop_random", "test_reduce_sum_negative_axes_keepdims_random",
        "test_reduce_max_do_not_keepdims_random", "test_reduce_min_keepdims_random",
        "test_reduce_prod_default_axes_keepdims_random",
                    "test_constant_pad", "test_edge_pad", "test_reflect_pad", "test_tile", "test_tile_precomputed", "test_gathernd_example_float32",
                    "test_gathernd_example_int32", "test_gathernd_example_int32_batch_dim1", "test_scatternd", "test_scatternd_add", "test_scatternd_multiply",
                    "test_hardsigmoid", "test_hardsigmoid_default", "test_hardsigmoid_example", "test_hardswish",
                    "test_dropout_default", "test_dropout_default_mask", "test_dropout_default_ratio"),
    [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// ---------------------------------------------------------------------------------------
// Fused operators against their decompositions

Tensor random_floats(std::vector<int64_t> shape, uint64_t seed) {
  std::mt19937_64 engine(seed);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  for (float& v : values) v = static_cast<float>(static_cast<double>(engine() >> 11) * 0x1p-52 - 1.0);
  return Tensor::floats(std::move(shape), std::move(values));
}

Tensor eval1(OpType op, std::vector<const Tensor*> inputs, const Attrs& attrs = {}) {
  std::vector<Tensor> out = evaluate_node(op, attrs, inputs, 1);
  EXPECT_EQ(out.size(), 1u);
  return out.at(0);
}

double error(const Tensor& a, const Tensor& b) {
  return max_scaled_error(std::span(&a, 1), std::span(&b, 1), 1e-5, 1e-6);
}

Tensor swap_last_two(const Tensor& t) {
  std::vector<int64_t> perm;
  for (size_t d = 0; d < t.shape.size(); ++d) perm.push_back(static_cast<int64_t>(d));
  std::swap(perm[perm.size() - 1], perm[perm.size() - 2]);
  return eval1(OpType::kTranspose, {&t}, {{"perm", perm}});
}

TEST(FusedMatMul, MatchesTransposeMatMulAndEpilogueOps) {
  const std::vector<std::string> epilogues = {
      "", "bias", "relu", "gelu", "bias+relu", "bias+gelu", "bias+gelu+residual", "residual+relu"};
  uint64_t seed = 1;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const std::string& epilogue : epilogues) {
        SCOPED_TRACE("trans_a " + std::to_string(ta) + " trans_b " + std::to_string(tb) + " epilogue '" +
                     epilogue + "'");
        // A broadcasts its batch [2, 1] against B's [3].
        Tensor a =
            random_floats(ta ? std::vector<int64_t>{2, 1, 5, 4} : std::vector<int64_t>{2, 1, 4, 5}, seed++);
        Tensor b = random_floats(tb ? std::vector<int64_t>{3, 6, 5} : std::vector<int64_t>{3, 5, 6}, seed++);
        Tensor bias = random_floats({6}, seed++), residual = random_floats({2, 3, 4, 6}, seed++);
        Tensor a_op = ta ? swap_last_two(a) : a, b_op = tb ? swap_last_two(b) : b;
        Tensor want = eval1(OpType::kMatMul, {&a_op, &b_op});
        std::vector<const Tensor*> fused_inputs = {&a, &b};
        size_t start = 0;
        while (start < epilogue.size()) {
          size_t end = std::min(epilogue.find('+', start), epilogue.size());
          std::string step = epilogue.substr(start, end - start);
          start = end + 1;
          if (step == "bias") {
            want = eval1(OpType::kAdd, {&want, &bias});
            fused_inputs.push_back(&bias);
          } else if (step == "residual") {
            want = eval1(OpType::kAdd, {&want, &residual});
            fused_inputs.push_back(&residual);
          } else {
            want = eval1(step == "relu" ? OpType::kRelu : OpType::kGelu, {&want});
          }
        }
        Tensor got = eval1(OpType::kFusedMatMul, fused_inputs,
                           {{"trans_a", int64_t{ta}}, {"trans_b", int64_t{tb}}, {"epilogue", epilogue}});
        EXPECT_EQ(got.shape, (std::vector<int64_t>{2, 3, 4, 6}));
        EXPECT_LE(error(got, want), 1.0);
      }
}

TEST(FusedConv, MatchesConvAddRelu) {
  // Grouped, strided, padded and dilated, so the im2col path is exercised; the residual
  // has the output's shape.
  Tensor x = random_floats({2, 4, 9, 8}, 11), w = random_floats({6, 2, 3, 3}, 12);
  Tensor bias = random_floats({6}, 13);
  Attrs conv = {{"group", int64_t{2}},
                {"strides", std::vector<int64_t>{2, 1}},
                {"pads", std::vector<int64_t>{1, 2, 0, 1}},
                {"dilations", std::vector<int64_t>{1, 2}}};
  Tensor y = eval1(OpType::kConv, {&x, &w}, conv);
  ASSERT_EQ(y.shape, (std::vector<int64_t>{2, 6, 4, 7}));
  Tensor residual = random_floats(y.shape, 14);
  Tensor bias_nchw = bias;
  bias_nchw.shape = {6, 1, 1};
  Tensor want = eval1(OpType::kAdd, {&y, &bias_nchw});
  want = eval1(OpType::kRelu, {&want});
  want = eval1(OpType::kAdd, {&want, &residual});

  Attrs fused = conv;
  fused["epilogue"] = std::string("bias+relu+residual");
  Tensor got = eval1(OpType::kFusedConv, {&x, &w, &bias, &residual}, fused);
  EXPECT_LE(error(got, want), 1.0);
  // Conv's own bias input is the same as the bias epilogue.
  Tensor with_bias = eval1(OpType::kConv, {&x, &w, &bias}, conv);
  Tensor bias_only = eval1(OpType::kFusedConv, {&x, &w, &bias}, [&] {
    Attrs a = conv;
    a["epilogue"] = std::string("bias");
    return a;
  }());
  EXPECT_LE(error(with_bias, bias_only), 1.0);
}

TEST(FusedConv, DepthwiseAndPointwiseMatchDirectSums) {
  Tensor x = random_floats({1, 3, 5, 5}, 21), dw = random_floats({3, 1, 3, 3}, 22),
         pw = random_floats({4, 3, 1, 1}, 23);
  Tensor y =
      eval1(OpType::kConv, {&x, &dw}, {{"group", int64_t{3}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  ASSERT_EQ(y.shape, (std::vector<int64_t>{1, 3, 5, 5}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t h = 0; h < 5; ++h)
      for (int64_t w = 0; w < 5; ++w) {
        double sum = 0;
        for (int64_t r = 0; r < 3; ++r)
          for (int64_t s = 0; s < 3; ++s) {
            int64_t ih = h + r - 1, iw = w + s - 1;
            if (ih >= 0 && ih < 5 && iw >= 0 && iw < 5)
              sum += x.f[(c * 5 + ih) * 5 + iw] * dw.f[(c * 3 + r) * 3 + s];
          }
        EXPECT_NEAR(y.f[(c * 5 + h) * 5 + w], sum, 1e-5);
      }
  Tensor z = eval1(OpType::kConv, {&x, &pw});
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t p = 0; p < 25; ++p) {
      double sum = 0;
      for (int64_t c = 0; c < 3; ++c) sum += x.f[c * 25 + p] * pw.f[k * 3 + c];
      EXPECT_NEAR(z.f[k * 25 + p], sum, 1e-5);
    }
}

TEST(EltwiseChain, MatchesTheChainOfSingleOperators) {
  Tensor x0 = random_floats({2, 3, 4}, 31), x1 = random_floats({4}, 32), x2 = random_floats({3, 1}, 33);
  Tensor x3 = random_floats({}, 34), x4 = random_floats({2, 3, 4}, 35);
  for (float& v : x3.f) v += 3.0f;  // a divisor away from 0
  Tensor got = eval1(OpType::kEltwiseChain, {&x0, &x1, &x2, &x3, &x4},
                     {{"ops", std::string("add+relu+mul+sigmoid+tanh+div+exp+neg+sub+gelu")}});
  Tensor want = eval1(OpType::kAdd, {&x0, &x1});
  want = eval1(OpType::kRelu, {&want});
  want = eval1(OpType::kMul, {&want, &x2});
  want = eval1(OpType::kSigmoid, {&want});
  want = eval1(OpType::kTanh, {&want});
  want = eval1(OpType::kDiv, {&want, &x3});
  want = eval1(OpType::kExp, {&want});
  want = eval1(OpType::kNeg, {&want});
  want = eval1(OpType::kSub, {&want, &x4});
  want = eval1(OpType::kGelu, {&want});
  EXPECT_EQ(got.shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_LE(error(got, want), 1.0);
}

TEST(EltwiseChain, MaxMinAbsAndBroadcastFirstInput) {
  Tensor x0 = Tensor::floats({2}, {-3.0f, 0.5f}), x1 = Tensor::floats({2, 1}, {-1.0f, 2.0f});
  Tensor x2 = Tensor::floats({}, {1.0f});
  Tensor got = eval1(OpType::kEltwiseChain, {&x0, &x1, &x2}, {{"ops", std::string("max+abs+min")}});
  // max: [[-1, 0.5], [2, 2]]; abs: [[1, 0.5], [2, 2]]; min with 1: [[1, 0.5], [1, 1]].
  EXPECT_EQ(got.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(got.f, (std::vector<float>{1.0f, 0.5f, 1.0f, 1.0f}));
}

TEST(EltwiseChain, MaxMinAbsStepsMatchTheOnnxOperators) {
  Tensor x0 = random_floats({2, 3, 4}, 36), x1 = random_floats({4}, 37), x2 = random_floats({3, 1}, 38);
  Tensor got = eval1(OpType::kEltwiseChain, {&x0, &x1, &x2}, {{"ops", std::string("max+abs+min")}});
  Tensor want = eval1(OpType::kMax, {&x0, &x1});
  want = eval1(OpType::kAbs, {&want});
  want = eval1(OpType::kMin, {&want, &x2});
  EXPECT_EQ(got.shape, want.shape);
  EXPECT_EQ(error(got, want), 0.0);
}

// ---------------------------------------------------------------------------------------
// Inference details and errors

std::string user_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "(no UserError)";
}

InputInfo info(std::vector<int64_t> shape, ElemType type = ElemType::kF32, const Tensor* constant = nullptr) {
  InputInfo i;
  i.type = type;
  i.shape = std::move(shape);
  i.constant = constant;
  return i;
}

TEST(InferNode, ErrorsNameTheOperatorAndTheProblem) {
  Tensor a = random_floats({2, 3}, 41), b = random_floats({4}, 42);
  std::string add = user_error([&] { eval1(OpType::kAdd, {&a, &b}); });
  EXPECT_NE(add.find("Add"), std::string::npos) << add;
  EXPECT_NE(add.find("[2, 3]"), std::string::npos) << add;

  std::string matmul = user_error([&] {
    infer_node(OpType::kMatMul, {}, std::vector{info({2, 3}), info({4, 5})}, 1);
  });
  EXPECT_NE(matmul.find("MatMul"), std::string::npos) << matmul;

  std::string reshape = user_error([&] {
    infer_node(OpType::kReshape, {}, std::vector{info({2, 3}), info({1}, ElemType::kI64)}, 1);
  });
  EXPECT_NE(reshape.find("Reshape"), std::string::npos) << reshape;
  EXPECT_NE(reshape.find("constant"), std::string::npos) << reshape;

  Tensor shape = Tensor::ints({2}, {4, 2});
  std::string bad_reshape = user_error([&] {
    infer_node(OpType::kReshape, {}, std::vector{info({2, 3}), info({2}, ElemType::kI64, &shape)}, 1);
  });
  EXPECT_NE(bad_reshape.find("Reshape"), std::string::npos) << bad_reshape;

  std::string conv = user_error([&] {
    infer_node(OpType::kConv, {}, std::vector{info({1, 3, 8, 8}), info({4, 2, 3, 3})}, 1);
  });
  EXPECT_NE(conv.find("Conv"), std::string::npos) << conv;

  std::string epilogue = user_error([&] {
    infer_node(OpType::kFusedMatMul, {{"epilogue", std::string("bias+swish")}},
               std::vector{info({2, 3}), info({3, 4}), info({4})}, 1);
  });
  EXPECT_NE(epilogue.find("FusedMatMul"), std::string::npos) << epilogue;
  EXPECT_NE(epilogue.find("swish"), std::string::npos) << epilogue;

  std::string missing_bias = user_error([&] {
    infer_node(OpType::kFusedMatMul, {{"epilogue", std::string("bias")}},
               std::vector{info({2, 3}), info({3, 4})}, 1);
  });
  EXPECT_NE(missing_bias.find("FusedMatMul"), std::string::npos) << missing_bias;

  std::string opaque =
      user_error([&] { evaluate_node(OpType::kOpaque, {}, std::vector<const Tensor*>{&a}, 1); });
  EXPECT_NE(opaque.find("Opaque"), std::string::npos) << opaque;

  std::string index = user_error([&] {
    Tensor idx = Tensor::ints({1}, {2});
    eval1(OpType::kGather, {&a, &idx});
  });
  EXPECT_NE(index.find("Gather"), std::string::npos) << index;

  std::string attr = user_error([&] { eval1(OpType::kSoftmax, {&a}, {{"axis", std::string("last")}}); });
  EXPECT_NE(attr.find("Softmax"), std::string::npos) << attr;
}

TEST(InferNode, ShapesOfContractionsAndWindows) {
  using Shapes = std::vector<std::pair<ElemType, std::vector<int64_t>>>;
  // MatMul with 1-D operands and broadcast batches.
  EXPECT_EQ(infer_node(OpType::kMatMul, {}, std::vector{info({3}), info({2, 3, 4})}, 1),
            (Shapes{{ElemType::kF32, {2, 4}}}));
  EXPECT_EQ(infer_node(OpType::kMatMul, {}, std::vector{info({5, 1, 2, 3}), info({3})}, 1),
            (Shapes{{ElemType::kF32, {5, 1, 2}}}));
  EXPECT_EQ(infer_node(OpType::kMatMul, {}, std::vector{info({5, 1, 2, 3}), info({4, 3, 6})}, 1),
            (Shapes{{ElemType::kF32, {5, 4, 2, 6}}}));
  // FusedMatMul transposes the last two dimensions.
  EXPECT_EQ(infer_node(OpType::kFusedMatMul, {{"trans_a", int64_t{1}}, {"trans_b", int64_t{1}}},
                       std::vector{info({8, 3, 2}, ElemType::kF16), info({4, 3}, ElemType::kF16)}, 1),
            (Shapes{{ElemType::kF16, {8, 2, 4}}}));
  // ResNet's stem: 7x7 stride 2 pad 3, then a 3x3 stride 2 max pool.
  EXPECT_EQ(infer_node(OpType::kConv,
                       {{"strides", std::vector<int64_t>{2, 2}}, {"pads", std::vector<int64_t>{3, 3, 3, 3}}},
                       std::vector{info({1, 3, 224, 224}), info({64, 3, 7, 7})}, 1),
            (Shapes{{ElemType::kF32, {1, 64, 112, 112}}}));
  EXPECT_EQ(infer_node(OpType::kMaxPool,
                       {{"kernel_shape", std::vector<int64_t>{3, 3}},
                        {"strides", std::vector<int64_t>{2, 2}},
                        {"pads", std::vector<int64_t>{1, 1, 1, 1}}},
                       std::vector{info({1, 64, 112, 112})}, 1),
            (Shapes{{ElemType::kF32, {1, 64, 56, 56}}}));
  EXPECT_EQ(infer_node(OpType::kConv,
                       {{"auto_pad", std::string("SAME_UPPER")}, {"strides", std::vector<int64_t>{2}}},
                       std::vector{info({1, 2, 7}), info({3, 2, 4})}, 1),
            (Shapes{{ElemType::kF32, {1, 3, 4}}}));
  // LayerNormalization's Mean and InvStdDev keep the leading dimensions.
  EXPECT_EQ(
      infer_node(OpType::kLayerNormalization, {}, std::vector{info({2, 5, 8}), info({8}), info({8})}, 3),
      (Shapes{{ElemType::kF32, {2, 5, 8}}, {ElemType::kF32, {2, 5, 1}}, {ElemType::kF32, {2, 5, 1}}}));
  // Shape depends on the values of a constant.
  Tensor shape = Tensor::ints({3}, {0, -1, 4});
  EXPECT_EQ(
      infer_node(OpType::kReshape, {}, std::vector{info({2, 6, 2}), info({3}, ElemType::kI64, &shape)}, 1),
      (Shapes{{ElemType::kF32, {2, 3, 4}}}));
  Tensor dims = Tensor::ints({2}, {3, 0});
  EXPECT_EQ(infer_node(OpType::kConstantOfShape, {{"value", 1.0}, {"dtype", int64_t{7}}},
                       std::vector{info({2}, ElemType::kI64, &dims)}, 1),
            (Shapes{{ElemType::kI64, {3, 0}}}));
}

TEST(EvaluateNode, RoundsToHalfStorageAndWrapsIntegers) {
  Tensor a = Tensor::floats({2}, {1.0f, 1.0f}, ElemType::kF16),
         b = Tensor::floats({2}, {0.0004f, 0.0007f}, ElemType::kF16);
  b.f = {0.000244140625f, 0.000732421875f};  // 2^-12 and 3 * 2^-12, exact in f16
  Tensor sum = eval1(OpType::kAdd, {&a, &b});
  EXPECT_EQ(sum.type, ElemType::kF16);
  // 1 + 2^-12 ties to 1 (even); 1 + 3 * 2^-12 rounds to 1 + 2^-10.
  EXPECT_EQ(sum.f, (std::vector<float>{1.0f, 1.0009765625f}));
  Tensor u = Tensor::ints({2}, {200, 100}, ElemType::kU8), v = Tensor::ints({2}, {100, 100}, ElemType::kU8);
  EXPECT_EQ(eval1(OpType::kAdd, {&u, &v}).i, (std::vector<int64_t>{44, 200}));
  Tensor f = Tensor::floats({3}, {-1.7f, 0.5f, 0.0f});
  EXPECT_EQ(eval1(OpType::kCast, {&f}, {{"to", int64_t{7}}}).i, (std::vector<int64_t>{-1, 0, 0}));
  EXPECT_EQ(eval1(OpType::kCast, {&f}, {{"to", int64_t{9}}}).i, (std::vector<int64_t>{1, 1, 0}));
}

TEST(EvaluateNode, GeluExactAndTanhForms) {
  // onnx 1.12's node tests have no Gelu (opset 20); values from the definitions in double.
  Tensor x = Tensor::floats({3}, {-2.0f, 1.0f, 3.0f});
  std::vector<Tensor> exact = {eval1(OpType::kGelu, {&x})};
  std::vector<Tensor> tanh = {eval1(OpType::kGelu, {&x}, {{"approximate", std::string("tanh")}})};
  std::vector<Tensor> want_exact = {Tensor::floats({3}, {-0.04550026389f, 0.8413447461f, 2.995950306f})};
  std::vector<Tensor> want_tanh = {Tensor::floats({3}, {-0.04540230591f, 0.8411919906f, 2.996362608f})};
  EXPECT_LE(max_scaled_error(exact, want_exact, 1e-6, 1e-7), 1.0);
  EXPECT_LE(max_scaled_error(tanh, want_tanh, 1e-6, 1e-7), 1.0);
  EXPECT_GT(max_scaled_error(tanh, want_exact, 1e-6, 1e-7), 1.0);
  EXPECT_NE(user_error([&] {
              eval1(OpType::kGelu, {&x}, {{"approximate", std::string("fast")}});
            }).find("Gelu"),
            std::string::npos);
}

TEST(EvaluateNode, ConstantAndSplitOutputs) {
  EXPECT_EQ(eval1(OpType::kConstant, {}, {{"value_ints", std::vector<int64_t>{3, 4}}}).i,
            (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(eval1(OpType::kConstant, {}, {{"value_float", 2.5}}).f, (std::vector<float>{2.5f}));
  EXPECT_NE(user_error([] { eval1(OpType::kConstant, {}, {}); }).find("Constant"), std::string::npos);
  Tensor x = Tensor::floats({2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<Tensor> parts =
      evaluate_node(OpType::kSplit, {{"axis", int64_t{1}}}, std::vector<const Tensor*>{&x}, 3);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[2].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(parts[2].f, (std::vector<float>{3, 6}));
  EXPECT_NE(
      user_error([&] { evaluate_node(OpType::kSplit, {}, std::vector<const Tensor*>{&x}, 4); }).find("Split"),
      std::string::npos);
}

TEST(EvaluateNode, ModTakesTheDivisorsSignUnlessFmod) {
  Tensor a = Tensor::ints({6}, {-7, 7, -7, 7, 6, std::numeric_limits<int64_t>::min()});
  Tensor b = Tensor::ints({6}, {3, -3, -3, 3, -1, -1});
  EXPECT_EQ(eval1(OpType::kMod, {&a, &b}).i, (std::vector<int64_t>{2, -2, -1, 1, 0, 0}));
  EXPECT_EQ(eval1(OpType::kMod, {&a, &b}, {{"fmod", int64_t{1}}}).i,
            (std::vector<int64_t>{-1, 1, -1, 1, 0, 0}));
  Tensor x = Tensor::floats({2}, {-7.5f, 7.5f}), y = Tensor::floats({2}, {2.0f, -2.0f});
  EXPECT_EQ(eval1(OpType::kMod, {&x, &y}, {{"fmod", int64_t{1}}}).f, (std::vector<float>{-1.5f, 1.5f}));
  std::string float_mod = user_error([&] { eval1(OpType::kMod, {&x, &y}); });
  EXPECT_NE(float_mod.find("Mod"), std::string::npos) << float_mod;
  EXPECT_NE(float_mod.find("fmod"), std::string::npos) << float_mod;
  Tensor zero = Tensor::ints({}, {0});
  std::string by_zero = user_error([&] { eval1(OpType::kMod, {&a, &zero}); });
  EXPECT_NE(by_zero.find("Mod"), std::string::npos) << by_zero;
  EXPECT_NE(user_error([&] {
              eval1(OpType::kMod, {&a, &b}, {{"fmod", int64_t{2}}});
            }).find("fmod"),
            std::string::npos);
}

TEST(EvaluateNode, MaxMinTakeAnyNumberOfInputsAndPropagateNan) {
  Tensor x = Tensor::floats({3}, {1.0f, -2.0f, NAN}), y = Tensor::floats({2, 1}, {0.0f, NAN});
  Tensor z = Tensor::floats({}, {-1.0f});
  std::vector<Tensor> max = {eval1(OpType::kMax, {&x, &y, &z})};
  std::vector<Tensor> min = {eval1(OpType::kMin, {&x, &y, &z})};
  std::vector<Tensor> want_max = {Tensor::floats({2, 3}, {1.0f, 0.0f, NAN, NAN, NAN, NAN})};
  std::vector<Tensor> want_min = {Tensor::floats({2, 3}, {-1.0f, -2.0f, NAN, NAN, NAN, NAN})};
  EXPECT_EQ(max_scaled_error(max, want_max, 0, 0), 0.0);
  EXPECT_EQ(max_scaled_error(min, want_min, 0, 0), 0.0);
  Tensor i = Tensor::ints({3}, {4, -5, 6}, ElemType::kI32), j = Tensor::ints({1}, {0}, ElemType::kI32);
  EXPECT_EQ(eval1(OpType::kMax, {&i}).i, i.i);
  EXPECT_EQ(eval1(OpType::kMin, {&i, &j}).i, (std::vector<int64_t>{0, -5, 0}));
  EXPECT_NE(user_error([] { eval1(OpType::kMax, {}); }).find("Max"), std::string::npos);
  std::string mixed = user_error([&] { eval1(OpType::kMin, {&x, &i}); });
  EXPECT_NE(mixed.find("Min"), std::string::npos) << mixed;
  EXPECT_NE(mixed.find("same type"), std::string::npos) << mixed;
}

TEST(EvaluateNode, AbsOfIntegersWrapsAtTheMinimum) {
  Tensor i = Tensor::ints({3}, {std::numeric_limits<int32_t>::min(), -3, 4}, ElemType::kI32);
  EXPECT_EQ(eval1(OpType::kAbs, {&i}).i, (std::vector<int64_t>{std::numeric_limits<int32_t>::min(), 3, 4}));
  Tensor h = Tensor::floats({2}, {-1.5f, 0.25f}, ElemType::kF16);
  Tensor abs = eval1(OpType::kAbs, {&h});
  EXPECT_EQ(abs.type, ElemType::kF16);
  EXPECT_EQ(abs.f, (std::vector<float>{1.5f, 0.25f}));
  Tensor flags = Tensor::ints({1}, {1}, ElemType::kBool);
  EXPECT_NE(user_error([&] { eval1(OpType::kAbs, {&flags}); }).find("Abs"), std::string::npos);
}

TEST(EvaluateNode, GatherElementsReplacesTheAxisCoordinate) {
  Tensor data = Tensor::floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor rows = Tensor::ints({2, 2}, {2, 0, -1, 1});
  Tensor along_1 = eval1(OpType::kGatherElements, {&data, &rows}, {{"axis", int64_t{1}}});
  EXPECT_EQ(along_1.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(along_1.f, (std::vector<float>{3, 1, 6, 5}));
  Tensor cols = Tensor::ints({1, 3}, {1, 0, 1}, ElemType::kI32);
  Tensor along_0 = eval1(OpType::kGatherElements, {&data, &cols});
  EXPECT_EQ(along_0.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(along_0.f, (std::vector<float>{4, 2, 6}));
  // More index positions than data along the axis is fine; off it, not.
  Tensor many = Tensor::ints({3, 1}, {1, 0, 1});
  EXPECT_EQ(eval1(OpType::kGatherElements, {&data, &many}).f, (std::vector<float>{4, 1, 4}));
  Tensor wide = Tensor::ints({1, 4}, {0, 0, 0, 0});
  std::string too_wide = user_error([&] { eval1(OpType::kGatherElements, {&data, &wide}); });
  EXPECT_NE(too_wide.find("GatherElements"), std::string::npos) << too_wide;
  Tensor out_of_range = Tensor::ints({1, 1}, {3});
  std::string range = user_error([&] {
    eval1(OpType::kGatherElements, {&data, &out_of_range}, {{"axis", int64_t{1}}});
  });
  EXPECT_NE(range.find("GatherElements"), std::string::npos) << range;
  EXPECT_NE(range.find("out of range"), std::string::npos) << range;
  Tensor flat = Tensor::ints({2}, {0, 1});
  std::string rank = user_error([&] { eval1(OpType::kGatherElements, {&data, &flat}); });
  EXPECT_NE(rank.find("rank"), std::string::npos) << rank;
}

// ---------------------------------------------------------------------------------------
// Whole graphs, random inputs and the comparison

TEST(RunGraph, MatchesNodeByNodeEvaluation) {
  Graph g;
  g.model_name = "hand-built";
  ValueId x = g.add_input("x", ElemType::kF32, {2, 3});
  ValueId ids = g.add_input("ids", ElemType::kI64, {4});
  ValueId w = g.add_constant("w", random_floats({3, 4}, 51));
  ValueId table = g.add_constant("table", random_floats({2, 2}, 52));
  ValueId shape = g.add_constant("shape", Tensor::ints({2}, {2, 4}));
  ValueId h = g.add_node(OpType::kMatMul, {x, w}).at(0);
  ValueId r = g.add_node(OpType::kRelu, {h}).at(0);
  ValueId e = g.add_node(OpType::kGather, {table, ids}).at(0);
  ValueId s = g.add_node(OpType::kAdd, {r, g.add_node(OpType::kReshape, {e, shape}).at(0)}).at(0);
  ValueId m =
      g.add_node(OpType::kReduceMean, {s}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}})
          .at(0);
  g.add_output(m);
  g.add_output(h);
  g.add_output(x);

  std::vector<Tensor> in = random_graph_inputs(g, 7);
  ASSERT_EQ(in.size(), 2u);
  std::vector<Tensor> got = run_graph(g, in);
  ASSERT_EQ(got.size(), 3u);

  Tensor want_h = eval1(OpType::kMatMul, {&in[0], g.value(w).constant.get()});
  Tensor want_r = eval1(OpType::kRelu, {&want_h});
  Tensor want_e = eval1(OpType::kGather, {g.value(table).constant.get(), &in[1]});
  Tensor want_e2 = eval1(OpType::kReshape, {&want_e, g.value(shape).constant.get()});
  Tensor want_s = eval1(OpType::kAdd, {&want_r, &want_e2});
  Tensor want_m =
      eval1(OpType::kReduceMean, {&want_s}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}});
  std::vector<Tensor> want = {want_m, want_h, in[0]};
  EXPECT_EQ(max_scaled_error(got, want, 0, 0), 0.0);
  EXPECT_EQ(got[0].shape, (std::vector<int64_t>{2}));
}

TEST(RunGraph, RejectsWrongInputsAndOpaqueNodes) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {2});
  g.add_output(g.add_node(OpType::kNeg, {x}, {}, "negate").at(0));
  EXPECT_NE(user_error([&] { run_graph(g, {}); }).find("inputs"), std::string::npos);
  std::vector<Tensor> wrong = {Tensor::floats({3}, {1, 2, 3})};
  EXPECT_NE(user_error([&] { run_graph(g, wrong); }).find("'x'"), std::string::npos);
  std::vector<Tensor> right = {Tensor::floats({2}, {1, -2})};
  EXPECT_EQ(run_graph(g, right).at(0).f, (std::vector<float>{-1, 2}));

  Graph o;
  ValueId y = o.add_input("y", ElemType::kF32, {2});
  o.add_output(o.add_node_with_outputs(OpType::kOpaque, {y}, {{"onnx_node", std::string()}}, "custom",
                                       {{ElemType::kF32, {2}}})
                   .at(0));
  std::string message = user_error([&] { run_graph(o, right); });
  EXPECT_NE(message.find("custom"), std::string::npos) << message;
}

TEST(RandomGraphInputs, DeterministicPerSeedAndInRange) {
  Graph g;
  g.add_input("a", ElemType::kF32, {64});
  g.add_input("b", ElemType::kBF16, {3, 5});
  g.add_input("c", ElemType::kI64, {32});
  g.add_input("d", ElemType::kBool, {8});
  std::vector<Tensor> first = random_graph_inputs(g, 3), again = random_graph_inputs(g, 3);
  std::vector<Tensor> other = random_graph_inputs(g, 4);
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first[0].f, again[0].f);
  EXPECT_EQ(first[2].i, again[2].i);
  EXPECT_NE(first[0].f, other[0].f);
  EXPECT_EQ(first[1].type, ElemType::kBF16);
  EXPECT_EQ(first[1].shape, (std::vector<int64_t>{3, 5}));
  for (const Tensor& t : first) {
    for (float v : t.f) {
      EXPECT_GE(v, -1.0f);
      EXPECT_LE(v, 1.0f);
    }
    for (int64_t v : t.i) EXPECT_TRUE(v == 0 || v == 1);
  }
  for (float v : first[1].f) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    EXPECT_EQ(bits & 0xFFFFu, 0u) << "not a bf16 value: " << v;
  }
}

TEST(MaxScaledError, ScalesByTheLargestExpectedValue) {
  std::vector<Tensor> want = {Tensor::floats({3}, {100.0f, 1.0f, -2.0f})};
  std::vector<Tensor> close = {Tensor::floats({3}, {100.0f, 1.05f, -2.0f})};
  // scale = 1e-5 + 1e-3 * 100: an error of 0.05 is half of it.
  EXPECT_NEAR(max_scaled_error(close, want), 0.05 / (1e-5 + 0.1), 1e-6);
  EXPECT_EQ(max_scaled_error(want, want), 0.0);
  std::vector<Tensor> reshaped = {Tensor::floats({1, 3}, {100.0f, 1.0f, -2.0f})};
  EXPECT_TRUE(std::isinf(max_scaled_error(reshaped, want)));
  EXPECT_TRUE(std::isinf(max_scaled_error(std::span<const Tensor>(), want)));
  std::vector<Tensor> nan = {Tensor::floats({3}, {100.0f, NAN, -2.0f})};
  EXPECT_TRUE(std::isinf(max_scaled_error(nan, want)));
  EXPECT_EQ(max_scaled_error(nan, nan), 0.0);
  std::vector<Tensor> ints = {Tensor::ints({2}, {1, 2})}, other_ints = {Tensor::ints({2}, {1, 3})};
  EXPECT_GT(max_scaled_error(other_ints, ints), 1.0);
}

}  // namespace
}  // namespace tessera::graph
