// The ONNX backend node tests of Debian's libonnx-testdata: every model Tessera evaluates
// computes the expected outputs, and every model (and every one with hostile integers) imports
// or is refused cleanly.
#include "tests/graph/onnx_test_util.h"

namespace tessera::graph {
namespace {

using namespace onnx_testing;

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

// The model with its integer and scalar inputs (shapes, axes, indices, Range's bounds) turned
// into initializers holding test_data_set_0's values: Tessera needs the tensors shapes depend
// on to be constant.
TEST_P(OnnxBackendNode, ImportedModelComputesTheExpectedOutputs) {
  std::string dir = kNodeTests + GetParam();
  std::ifstream in(dir + "/model.onnx", std::ios::binary);
  onnx::ModelProto model;
  ASSERT_TRUE(in && model.ParseFromIstream(&in)) << dir;
  int64_t opset = 0;
  for (auto& o : *model.mutable_opset_import()) {
    if (!o.domain().empty()) continue;
    // An older model of an operator that did not change since (And-7, Not-1, IsInf-10,
    // Range-11) is the same model at opset 13.
    if (o.version() < 13) o.set_version(13);
    opset = o.version();
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
    if (p.data_type() == TensorProto::INT64 || p.data_type() == TensorProto::INT32 || p.dims_size() == 0) {
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
                    "test_sigmoid", "test_shape", "test_and2d", "test_and_bcast4v4d", "test_or2d",
                    "test_or_bcast4v3d", "test_xor2d", "test_xor_bcast4v2d", "test_not_2d", "test_less",
                    "test_less_bcast", "test_greater", "test_greater_bcast", "test_less_equal",
                    "test_less_equal_bcast", "test_greater_equal", "test_greater_equal_bcast", "test_isnan",
                    "test_isinf", "test_isinf_negative", "test_isinf_positive", "test_reciprocal", "test_log",
                    "test_floor", "test_ceil", "test_range_float_type_positive_delta",
                    "test_range_int32_type_negative_delta", "test_cumsum_1d", "test_cumsum_1d_exclusive",
                    "test_cumsum_1d_reverse", "test_cumsum_1d_reverse_exclusive", "test_cumsum_2d_axis_0",
                    "test_cumsum_2d_axis_1", "test_cumsum_2d_negative_axis", "test_tril", "test_tril_neg",
                    "test_tril_one_row_neg", "test_tril_out_neg", "test_tril_out_pos", "test_tril_pos",
                    "test_tril_square", "test_tril_square_neg", "test_tril_zero", "test_triu", "test_triu_neg",
                    "test_triu_one_row", "test_triu_out_neg_out", "test_triu_out_pos", "test_triu_pos",
                    "test_triu_square", "test_triu_square_neg", "test_triu_zero",
                    "test_reduce_sum_default_axes_keepdims_random", "test_reduce_sum_do_not_keepdims_random",
                    "test_reduce_sum_empty_axes_input_noop_random", "test_reduce_sum_keepdims_random",
                    "test_reduce_sum_negative_axes_keepdims_random", "test_reduce_max_default_axes_keepdim_example",
                    "test_reduce_max_do_not_keepdims_random", "test_reduce_max_keepdims_random",
                    "test_reduce_max_negative_axes_keepdims_random", "test_reduce_min_keepdims_random",
                    "test_reduce_min_do_not_keepdims_example", "test_reduce_prod_keepdims_random",
                    "test_reduce_prod_do_not_keepdims_random",
                    "test_constant_pad", "test_edge_pad", "test_reflect_pad", "test_tile", "test_tile_precomputed", "test_gathernd_example_float32",
                    "test_gathernd_example_int32", "test_gathernd_example_int32_batch_dim1", "test_scatternd", "test_scatternd_add", "test_scatternd_multiply",
                    "test_hardsigmoid", "test_hardsigmoid_default", "test_hardsigmoid_example", "test_hardswish",
                    "test_dropout_default", "test_dropout_default_mask", "test_dropout_default_ratio",
                    "test_einsum_batch_diagonal", "test_einsum_batch_matmul", "test_einsum_inner_prod",
                    "test_einsum_sum", "test_einsum_transpose"),
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
