// Internal to graph/ (onnx_import.cc): what import checks in an ONNX model's nodes before
// ONNX's shape inference runs over them.
//
// libonnx trusts the model it is given: its shape inference divides by a Conv's strides,
// indexes a list by a weight's rank, and reads an attribute of the wrong type as 0. So a
// model's nodes go through ONNX's checker first (known operators, numbers of inputs and
// outputs, kinds of attributes), and shape inference goes through GuardedSchemas, which runs
// shape_problem() on a node just before ONNX's inference of it and makes ONNX skip a node it
// refuses. After inference shape_problem() runs over the graph's nodes again, with every
// shape ONNX found, to name the node in the error.
#pragma once

#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::graph::onnx_detail {

/// An ONNX checker or inference message on one line.
std::string flat_message(std::string message);
/// "INTS", "GRAPH", ... for an AttributeProto type.
std::string attribute_type_name(int type);
/// "1 input", "3 inputs" (what: the singular).
std::string count_text(int count, const char* what);
/// "2", "2 to 3", "at least 2" for a range of counts (hi INT_MAX: unbounded).
std::string range_text(int lo, int hi);
/// A TensorProto's dimensions.
std::vector<int64_t> dims_of(const onnx::TensorProto& t);
/// A TensorProto's values as integers or floats, when it holds them in a form read here.
std::optional<std::vector<int64_t>> int_values(const onnx::TensorProto& t);
std::optional<std::vector<double>> float_values(const onnx::TensorProto& t);
/// The dimensions a TypeProto states (-1 for an unknown extent); nothing without a shape.
std::optional<std::vector<int64_t>> stated_dims(const onnx::TypeProto* type);

// What the shape checks know of one node: its attributes, and of each input its dimensions
// (-1 for an unknown extent; nothing when its rank is unknown) and its value when constant.
struct NodeFacts {
  std::string op;
  std::function<const onnx::AttributeProto*(const std::string&)> attribute;
  std::vector<std::optional<std::vector<int64_t>>> dims;
  std::vector<const onnx::TensorProto*> values;
  int num_outputs = 0;

  std::optional<std::vector<int64_t>> input_dims(size_t k) const {
    return k < dims.size() ? dims[k] : std::nullopt;
  }
  std::optional<int64_t> extent(size_t input, size_t d) const {
    auto x = input_dims(input);
    if (!x || d >= x->size() || (*x)[d] < 0) return std::nullopt;
    return (*x)[d];
  }
  std::optional<std::vector<int64_t>> input_ints(size_t k) const {
    return k < values.size() && values[k] ? int_values(*values[k]) : std::nullopt;
  }
  std::optional<std::vector<double>> input_floats(size_t k) const {
    return k < values.size() && values[k] ? float_values(*values[k]) : std::nullopt;
  }
  // An attribute of the kind the checks read (the checker has refused other kinds already).
  const onnx::AttributeProto* attr(const std::string& name, onnx::AttributeProto::AttributeType type) const {
    const onnx::AttributeProto* a = attribute(name);
    return a && a->type() == type ? a : nullptr;
  }
  std::optional<int64_t> int_attr(const std::string& name) const {
    const auto* a = attr(name, onnx::AttributeProto::INT);
    return a ? std::optional<int64_t>(a->i()) : std::nullopt;
  }
  std::optional<std::vector<int64_t>> ints_attr(const std::string& name) const {
    const auto* a = attr(name, onnx::AttributeProto::INTS);
    return a ? std::optional<std::vector<int64_t>>(std::in_place, a->ints().begin(), a->ints().end())
             : std::nullopt;
  }
  std::optional<std::string> string_attr(const std::string& name) const {
    const auto* a = attr(name, onnx::AttributeProto::STRING);
    return a ? std::optional<std::string>(a->s()) : std::nullopt;
  }
};

/// Why ONNX's shape inference must not run on this node (empty: it may).
std::string shape_problem(const NodeFacts& n);
/// Whether shape_problem() checks operator `op`.
bool has_shape_check(std::string_view op);

// ONNX's schemas, where the inference of an operator that shape_problem() checks runs those
// checks first: a node they refuse is reported to ONNX as an inference error, so ONNX skips
// it, and remembered, instead of reaching an inference that divides by zero or reads past a
// list.
class GuardedSchemas final : public onnx::ISchemaRegistry {
 public:
  const onnx::OpSchema* GetSchema(const std::string& op, const int version,
                                  const std::string& domain) const override {
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Instance()->GetSchema(op, version, domain);
    if (!schema || !domain.empty() || !schema->has_type_and_shape_inference_function() ||
        !has_shape_check(op))
      return schema;
    std::unique_ptr<onnx::OpSchema>& guarded = guarded_[schema];
    if (!guarded) {
      guarded = std::make_unique<onnx::OpSchema>(*schema);
      guarded->TypeAndShapeInferenceFunction(
          [this, op, infer = schema->GetTypeAndShapeInferenceFunction()](onnx::InferenceContext& ctx) {
            NodeFacts facts;
            facts.op = op;
            facts.attribute = [&ctx](const std::string& name) { return ctx.getAttribute(name); };
            for (size_t k = 0; k < ctx.getNumInputs(); ++k) {
              facts.dims.push_back(stated_dims(ctx.getInputType(k)));
              facts.values.push_back(ctx.getInputData(k));
            }
            facts.num_outputs = static_cast<int>(ctx.getNumOutputs());
            std::string why = shape_problem(facts);
            if (!why.empty()) {
              refused_.emplace_back(op, why);
              fail_shape_inference(why);
            }
            infer(ctx);
          });
    }
    return guarded.get();
  }

  /// (operator, why) for each node refused so far.
  const std::vector<std::pair<std::string, std::string>>& refused() const { return refused_; }

 private:
  mutable std::map<const onnx::OpSchema*, std::unique_ptr<onnx::OpSchema>> guarded_;
  mutable std::vector<std::pair<std::string, std::string>> refused_;
};

// Attributes that a later opset added to an operator. Exporters sometimes write them under an
// older declared opset (PyTorch writes Split's num_outputs under opset 17); import drops one
// whose value says what the declared opset does anyway and refuses any other.
struct NewerAttribute {
  std::string_view op, name;
  int64_t opset;  // where ONNX added it
  std::function<bool(const onnx::NodeProto&, const onnx::AttributeProto&)> implied;
};

/// The attribute `name` of `op` that a later opset added, or null.
const NewerAttribute* find_newer_attribute(std::string_view op, std::string_view name);

}  // namespace tessera::graph::onnx_detail
