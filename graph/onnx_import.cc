// ONNX import (contracts in onnx_io.h).
//
// Import is one pass of Importer over a parsed ModelProto: check the opsets (rewriting 18-21
// to 17), put the nodes in topological order (refusing tensors nothing provides, cycles),
// check every node with ONNX's checker (at the model's opset and at the one export writes),
// run ONNX's shape inference (Opaque nodes take their shapes from it) behind the checks of
// shape_problem() (libonnx divides by and indexes with whatever a file holds; onnx_checks.h),
// turn graph inputs and initializers into values and add one node each. Constant nodes
// become constants; an operator of ops.h becomes its OpType when Tessera's inference accepts
// it and agrees with ONNX's; anything else becomes an Opaque node. Small integer shape
// arithmetic over constants is evaluated into constants on the way (Importer::fold_constant).
//
// What an Opaque node keeps (its attributes):
// - "onnx_node": its NodeProto without names. Name, inputs and outputs are the graph's own
//   (Node::name, Node::inputs, Node::outputs), so the text, and with it the structural hash,
//   does not depend on naming. In the stored proto a present input or output is "#", an
//   omitted one "". Node::inputs holds the present inputs in order, then one input per tensor
//   the node's subgraphs (If / Loop / Scan bodies) read from the enclosing graph by name, so
//   that dependence is visible to the graph; export binds each such name with an Identity if
//   the tensor has been renamed since.
// - "onnx_domain_version" (int): the model's opset version of the node's domain when that is
//   not the default one; export writes it back as an opset_import (the largest one wins when
//   nodes disagree). Default-domain Opaque nodes are written at opset 17 as they were read,
//   which assumes the operator did not change between the model's opset and 17.
#include "graph/onnx_io.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numbers>
#include <numeric>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/version.h"
#include "kernels/reference.h"
#include "graph/onnx_checks.h"
#include "graph/onnx_format.h"
#include "graph/onnx_opset.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

using namespace onnx_detail;

struct TensorType {
  ElemType type = ElemType::kF32;
  std::vector<int64_t> shape;
};

// The static tensor type `type` describes, or false with `why` saying what is missing.
bool static_tensor_type(const onnx::TypeProto& type, TensorType* out, std::string* why) {
  if (!type.has_tensor_type()) {
    *why = "is not a tensor";
    return false;
  }
  const auto& tensor = type.tensor_type();
  std::optional<ElemType> elem = elem_type_from_onnx(tensor.elem_type());
  if (!elem) {
    *why = "has element type " + onnx_type_name(tensor.elem_type()) + " (" + kTypesRead + ")";
    return false;
  }
  if (!tensor.has_shape()) {
    *why = "has no known shape; " + kStaticAdvice;
    return false;
  }
  out->type = *elem;
  out->shape.clear();
  for (int k = 0; k < tensor.shape().dim_size(); ++k) {
    const auto& d = tensor.shape().dim(k);
    if (d.has_dim_value() && d.dim_value() >= 0) {
      out->shape.push_back(d.dim_value());
      continue;
    }
    *why = "has dimension " + std::to_string(k) +
           (d.has_dim_param() ? " " + in_quotes(d.dim_param()) + " (symbolic)" : std::string(" unknown")) +
           "; Tessera needs static shapes: " + kStaticAdvice;
    return false;
  }
  return true;
}

// An ONNX operator of ops.h (fused and Opaque operators are Tessera's own, Constant nodes
// become constants).
std::optional<OpType> onnx_op(std::string_view op_type) {
  std::optional<OpType> op = op_type_from_name(op_type);
  if (!op) return std::nullopt;
  switch (*op) {
    case OpType::kFusedMatMul:
    case OpType::kFusedConv:
    case OpType::kEltwiseChain:
    case OpType::kOpaque:
    case OpType::kConstant:
      return std::nullopt;
    default:
      return op;
  }
}

struct ReadTensor {
  Tensor tensor;
  bool synthetic = false;
};

class Importer {
 public:
  Importer(std::string_view bytes, std::string_view what, std::string base_dir)
      : bytes_(bytes), what_(what), base_dir_(std::move(base_dir)) {}

  Graph run() {
    parse();
    read_opsets();
    sort_nodes();
    check_nodes();
    infer_shapes();
    check_shapes();
    g_.model_name = what_;
    add_inputs_and_initializers();
    for (int index : node_order()) add_node(index);
    add_outputs();
    return std::move(g_);
  }

  // The bytes as one serialised TensorProto (ONNX's test data files).
  Tensor read_tensor_proto() const {
    onnx::TensorProto p;
    if (bytes_.size() > static_cast<size_t>(INT_MAX) || !p.ParseFromArray(bytes_.data(), static_cast<int>(bytes_.size()))) {
      fail("not a serialised ONNX tensor");
    }
    return read_tensor(p, "tensor " + in_quotes(p.name()), p.name()).tensor;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const { throw UserError(what_ + ": " + message); }

  const onnx::GraphProto& graph() const { return model_.graph(); }

  std::string node_label(int index) const {
    const onnx::NodeProto& n = graph().node(index);
    std::string op = n.op_type();
    if (!is_default_domain(n.domain())) op = n.domain() + "." + op;
    return "node " + (n.name().empty() ? "#" + std::to_string(index) : in_quotes(n.name())) + " (" + op + ")";
  }

  bool parse_bytes() {
    model_.Clear();
    return model_.ParseFromArray(bytes_.data(), static_cast<int>(bytes_.size()));
  }

  void parse() {
    if (bytes_.size() > static_cast<size_t>(INT_MAX)) {
      fail("not a readable ONNX model (" + std::to_string(bytes_.size()) +
           " bytes, over protobuf's 2 GiB limit; store the weights as external data)");
    }
    if (!parse_bytes())
      fail("not a readable ONNX model (the bytes do not parse as an onnx.ModelProto: truncated?)");
    if (!model_.has_graph()) fail("not a readable ONNX model (it has no graph)");
  }

  // The nodes in topological order (files need not list them so) before ONNX's inference, which
  // dereferences an input type it has not met (a Shape of a tensor nothing writes crashed it);
  // node_order() refuses tensors nothing provides or two nodes write, and cycles.
  void sort_nodes() {
    std::vector<int> order = node_order();
    bool in_order = true;
    for (size_t i = 0; i < order.size(); ++i) in_order = in_order && order[i] == static_cast<int>(i);
    if (in_order) return;
    google::protobuf::RepeatedPtrField<onnx::NodeProto> sorted;
    for (int i : order) *sorted.Add() = graph().node(i);
    model_.mutable_graph()->mutable_node()->Swap(&sorted);
    node_order();  // the captures of the nodes at their new places
  }

  void read_opsets() {
    int64_t opset = -1;
    for (const auto& o : model_.opset_import()) {
      if (is_default_domain(o.domain())) {
        opset = o.version();
      } else {
        domain_versions_[o.domain()] = o.version();
      }
    }
    if (opset < 0) fail("the model imports no opset of the default ONNX domain; " + kOpsetAdvice);
    if (opset < kMinOpset || opset > kMaxLoweredOpset)
      fail("the model uses opset " + std::to_string(opset) + "; " + kOpsetAdvice);
    if (opset > kMaxOpset) lower_to_opset17(model_, opset, what_);  // onnx_opset.h
    opset_ = std::min(opset, kMaxOpset);
  }

  // ONNX's checker on every node of the main graph (and through it their subgraphs), at the
  // model's opsets and, for the default domain, at the opset export writes, so that a node
  // export could not write is refused now rather than after a search.
  void check_nodes() {
    onnx::checker::CheckerContext declared = checker_context(opset_), written = checker_context(kExportOpset);
    // Subgraphs may read any tensor of the main graph, whose nodes need not be in order.
    onnx::checker::LexicalScopeContext scope;
    for (const auto& v : graph().input()) scope.add(v.name());
    for (const auto& t : graph().initializer()) scope.add(t.name());
    for (const auto& n : graph().node()) {
      for (const auto& out : n.output()) {
        if (!out.empty()) scope.add(out);
      }
    }
    for (int i = 0; i < graph().node_size(); ++i) check_onnx_node(i, declared, written, scope);
    drop_newer_attributes();
  }

  onnx::checker::CheckerContext checker_context(int64_t default_opset) const {
    onnx::checker::CheckerContext ctx;
    ctx.set_ir_version(static_cast<int>(std::clamp<int64_t>(model_.ir_version(), 0, INT_MAX)));
    std::unordered_map<std::string, int> opsets;
    for (const auto& [domain, version] : domain_versions_)
      opsets[domain] = static_cast<int>(std::clamp<int64_t>(version, 0, INT_MAX));
    opsets[""] = opsets["ai.onnx"] = static_cast<int>(default_opset);
    ctx.set_opset_imports(std::move(opsets));
    ctx.set_model_dir(base_dir_);
    return ctx;
  }

  void check_onnx_node(int index, const onnx::checker::CheckerContext& declared,
                       const onnx::checker::CheckerContext& written,
                       const onnx::checker::LexicalScopeContext& scope) {
    const onnx::NodeProto& n = graph().node(index);
    // The checker only warns about ONNX's experimental operators, on stderr.
    if (onnx::checker::check_is_experimental_op(n.op_type())) return;
    std::string label = node_label(index);
    bool default_domain = is_default_domain(n.domain());
    std::string domain = default_domain ? "" : n.domain();
    auto version = domain_versions_.find(domain);
    if (!default_domain && version == domain_versions_.end())
      fail(label + ": the model imports no opset of domain " + in_quotes(domain) +
           "; add one to its opset_import");
    int64_t opset = default_domain ? opset_ : version->second;
    const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Instance()->GetSchema(
        n.op_type(), static_cast<int>(std::clamp<int64_t>(opset, 0, INT_MAX)), domain);
    // ONNX's own domains: the checker requires a schema there; other domains are custom.
    if (!schema && (default_domain || domain == "ai.onnx.ml" || domain == "ai.onnx.training")) {
      fail(label + ": " + in_quotes(n.op_type()) + " is not an operator of ONNX opset " +
           std::to_string(opset) + (default_domain ? "" : " of domain " + in_quotes(domain)) +
           "; a custom operator needs a domain of its own and an opset_import for it");
    }
    onnx::NodeProto checked = n;
    checked.set_domain(domain);
    if (schema) {
      std::string why = schema_problem(index, checked, *schema, opset);
      if (!why.empty()) fail(label + ": " + why);
    }
    for (auto& a : *checked.mutable_attribute()) {
      if (a.has_t()) stand_in_for_stripped(*a.mutable_t());
      for (auto& t : *a.mutable_tensors()) stand_in_for_stripped(t);
    }
    try {
      onnx::checker::check_node(checked, declared, scope);
    } catch (const std::exception& e) {
      std::string why = flat_message(e.what());
      if (schema && why.find("Unrecognized attribute") != std::string::npos)
        why = unknown_attribute(checked, *schema, opset);
      fail(label + ": " + why);
    }
    if (!default_domain || opset_ >= kExportOpset) return;
    const onnx::OpSchema* later =
        onnx::OpSchemaRegistry::Instance()->GetSchema(n.op_type(), kExportOpset, "");
    if (later == schema) return;
    std::string why = "ONNX has no such operator there";
    if (later) {
      why.clear();
      try {
        onnx::checker::check_node(checked, written, scope);
      } catch (const std::exception& e) {
        why = flat_message(e.what());
      }
    }
    if (!why.empty()) {
      fail(label + " is valid at opset " + std::to_string(opset_) + " but not at opset " +
           std::to_string(kExportOpset) + ", which Tessera writes (" + why + "); " + kOpsetAdvice);
    }
  }

  // What the checker refuses about a node's inputs, outputs and attributes, said with what
  // would be valid ("" when none of it applies). Drops from `node` the attributes of a later
  // opset that their values imply (and records them for drop_newer_attributes()).
  std::string schema_problem(int index, onnx::NodeProto& node, const onnx::OpSchema& schema, int64_t opset) {
    std::string op = node.op_type() + " (opset " + std::to_string(opset) + ")";
    if (schema.Deprecated()) {
      return "ONNX deprecated " + node.op_type() + " in opset " + std::to_string(schema.since_version()) +
             ", before the model's opset " + std::to_string(opset);
    }
    if (node.input_size() < schema.min_input() || node.input_size() > schema.max_input()) {
      return "has " + count_text(node.input_size(), "input") + "; " + op + " takes " +
             range_text(schema.min_input(), schema.max_input());
    }
    if (node.output_size() < schema.min_output() || node.output_size() > schema.max_output()) {
      return "has " + count_text(node.output_size(), "output") + "; " + op + " has " +
             range_text(schema.min_output(), schema.max_output());
    }
    google::protobuf::RepeatedPtrField<onnx::AttributeProto> kept;
    for (const auto& a : node.attribute()) {
      auto it = schema.attributes().find(a.name());
      if (it == schema.attributes().end()) {
        if (const NewerAttribute* newer = find_newer_attribute(node.op_type(), a.name())) {
          if (!newer->implied(node, a)) {
            return "attribute " + in_quotes(a.name()) + " came with opset " + std::to_string(newer->opset) +
                   ", after the model's opset " + std::to_string(opset) + "; " + kOpsetAdvice;
          }
          drops_.emplace_back(index, a.name());
          continue;
        }
      } else if (a.type() != it->second.type) {
        return "attribute " + in_quotes(a.name()) + " is " + attribute_type_name(a.type()) + "; " + op +
               " takes " + attribute_type_name(it->second.type);
      }
      *kept.Add() = a;
    }
    node.mutable_attribute()->Swap(&kept);
    for (const auto& [name, attribute] : schema.attributes()) {
      bool given = std::any_of(node.attribute().begin(), node.attribute().end(),
                               [&](const onnx::AttributeProto& a) { return a.name() == name; });
      if (attribute.required && !given)
        return "lacks attribute " + in_quotes(name) + ", which " + op + " requires";
    }
    return {};
  }

  static std::string unknown_attribute(const onnx::NodeProto& node, const onnx::OpSchema& schema,
                                       int64_t opset) {
    std::string known;
    for (const auto& [name, attribute] : schema.attributes()) known += (known.empty() ? "" : ", ") + name;
    for (const auto& a : node.attribute()) {
      if (!schema.attributes().count(a.name())) {
        return "attribute " + in_quotes(a.name()) + " is not one of " + node.op_type() + "'s at opset " +
               std::to_string(opset) + " (" + (known.empty() ? "it has none" : known) + ")";
      }
    }
    return "an attribute is not one of " + node.op_type() + "'s";
  }

  // onnx's checker (1.12) requires an EXTERNAL tensor's file to exist, and a stripped weight
  // has none; it never compares data size with shape, so one byte stands in for the data.
  static void stand_in_for_stripped(onnx::TensorProto& t) {
    bool stripped = std::any_of(t.external_data().begin(), t.external_data().end(), [](const auto& e) {
      return e.key() == "location" && e.value() == kStrippedLocation;
    });
    if (!stripped) return;
    t.clear_external_data();
    t.clear_data_location();
    std::optional<int64_t> n = checked_elements(dims_of(t));
    if (n && *n > 0) t.set_raw_data(std::string(1, '\0'));
  }

  // Removes the attributes check_nodes() found implied by the declared opset, so that shape
  // inference and export see the node as that opset has it.
  void drop_newer_attributes() {
    for (const auto& [index, name] : drops_) {
      auto* attributes = model_.mutable_graph()->mutable_node(index)->mutable_attribute();
      for (int k = 0; k < attributes->size(); ++k) {
        if (attributes->Get(k).name() == name) {
          attributes->DeleteSubrange(k, 1);
          break;
        }
      }
    }
  }

  // shape_problem() over the main graph's nodes with the shapes ONNX inferred, to name the
  // node (GuardedSchemas knows only its operator), and for the nodes ONNX could not infer.
  void check_shapes() {
    std::unordered_map<std::string, const onnx::TensorProto*> constants;
    for (const auto& t : graph().initializer()) constants[t.name()] = &t;
    for (const auto& n : graph().node()) {
      if (!is_default_domain(n.domain()) || n.op_type() != "Constant" || n.output_size() != 1) continue;
      for (const auto& a : n.attribute()) {
        if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) constants[n.output(0)] = &a.t();
      }
    }
    for (int i = 0; i < graph().node_size(); ++i) {
      const onnx::NodeProto& n = graph().node(i);
      if (!is_default_domain(n.domain())) continue;
      NodeFacts facts;
      facts.op = n.op_type();
      facts.attribute = [&n](const std::string& name) -> const onnx::AttributeProto* {
        for (const auto& a : n.attribute()) {
          if (a.name() == name) return &a;
        }
        return nullptr;
      };
      for (const auto& name : n.input()) {
        auto c = constants.find(name);
        const onnx::TensorProto* value = c != constants.end() ? c->second : nullptr;
        auto t = types_.find(name);
        std::optional<std::vector<int64_t>> dims;
        if (t != types_.end()) {
          dims = stated_dims(t->second);
        } else if (value) {
          dims = dims_of(*value);
        }
        facts.dims.push_back(std::move(dims));
        facts.values.push_back(value);
      }
      facts.num_outputs = n.output_size();
      std::string why = shape_problem(facts);
      if (!why.empty()) fail(node_label(i) + ": " + why);
    }
    if (!guard_.refused().empty()) fail(refused_text());
  }

  std::string refused_text() const {
    const auto& [op, why] = guard_.refused().front();
    return "a " + op + " node in a subgraph or function body: " + why;
  }

  // Strict inference first, so that a broken model is reported with ONNX's own words; a
  // model whose inference only trips over details (an attribute of a newer opset, a node
  // ONNX cannot infer) is read with lenient inference, and a tensor that then lacks a shape
  // is reported with the strict error attached. Data propagation (shape arithmetic such as
  // Shape -> Gather -> Concat -> Reshape) gives more static shapes, but libonnx 1.12's fails
  // on some valid models (a Concat of an empty initializer), so the last try goes without.
  void infer_shapes() {
    struct Attempt {
      int error_mode;
      bool data_propagation;
    };
    std::string error;
    for (Attempt attempt : {Attempt{1, true}, Attempt{0, true}, Attempt{0, false}}) {
      try {
        onnx::shape_inference::InferShapes(
            model_, &guard_,
            onnx::ShapeInferenceOptions(false, attempt.error_mode, attempt.data_propagation));
        error.clear();
        break;
      } catch (const std::exception& e) {
        error = e.what();
        if (strict_error_.empty()) strict_error_ = error;
        TESSERA_CHECK(parse_bytes(), "the model parsed once but not twice");
        sort_nodes();
        drop_newer_attributes();
      }
    }
    if (!error.empty() && !guard_.refused().empty()) fail(refused_text());
    if (!error.empty()) fail("ONNX shape inference failed: " + error);
    for (const auto& v : graph().input()) types_[v.name()] = &v.type();
    for (const auto& v : graph().value_info()) types_[v.name()] = &v.type();
    for (const auto& v : graph().output()) types_[v.name()] = &v.type();
  }

  // ONNX's static type for tensor `name`, or false with `why`.
  bool onnx_type(const std::string& name, TensorType* out, std::string* why) const {
    auto it = types_.find(name);
    if (it == types_.end()) {
      *why = "has no type: ONNX's shape inference could not infer it";
      return false;
    }
    return static_tensor_type(*it->second, out, why);
  }

  void define(const std::string& name, ValueId v) { values_[name] = v; }

  ValueId value_of(const std::string& name) const {
    auto it = values_.find(name);
    TESSERA_CHECK(it != values_.end(), "import: tensor '" + name + "' read before it was defined");
    return it->second;
  }

  void add_inputs_and_initializers() {
    std::unordered_set<std::string> initializers;
    for (const auto& t : graph().initializer()) initializers.insert(t.name());
    for (const auto& input : graph().input()) {
      if (initializers.count(input.name())) continue;
      TensorType t;
      std::string why;
      if (!static_tensor_type(input.type(), &t, &why)) fail("input " + in_quotes(input.name()) + " " + why);
      for (size_t k = 0; k < t.shape.size(); ++k) {
        if (t.shape[k] == 0) {
          fail("input " + in_quotes(input.name()) + " has dimension " + std::to_string(k) +
               " of extent 0; Tessera needs non-empty inputs");
        }
      }
      define(input.name(), g_.add_input(input.name(), t.type, t.shape));
    }
    for (const auto& t : graph().initializer()) {
      ReadTensor r = read_tensor(t, "initializer " + in_quotes(t.name()), t.name());
      add_constant(t.name(), std::move(r));
    }
    if (graph().sparse_initializer_size() > 0) {
      fail("sparse initializer " + in_quotes(graph().sparse_initializer(0).values().name()) +
           " is not supported; store it dense");
    }
  }

  void add_constant(const std::string& name, ReadTensor r) {
    if (r.synthetic) g_.weights_stripped = true;
    define(name, g_.add_constant(name, std::move(r.tensor), r.synthetic));
  }

  // The values of `p`; `label` names it in errors, `seed_name` seeds made-up values.
  ReadTensor read_tensor(const onnx::TensorProto& p, const std::string& label,
                         const std::string& seed_name) const {
    std::optional<ElemType> type = elem_type_from_onnx(p.data_type());
    if (!type) fail(label + " has element type " + onnx_type_name(p.data_type()) + " (" + kTypesRead + ")");
    ReadTensor r;
    Tensor& t = r.tensor;
    t.type = *type;
    t.shape.assign(p.dims().begin(), p.dims().end());
    std::optional<int64_t> n = checked_elements(t.shape);
    if (!n) fail(label + " has an invalid shape " + shape_text(t.shape));

    if (p.data_location() == onnx::TensorProto::EXTERNAL) {
      std::string location, offset, length;
      for (const auto& e : p.external_data()) {
        if (e.key() == "location") location = e.value();
        if (e.key() == "offset") offset = e.value();
        if (e.key() == "length") length = e.value();
      }
      if (location == kStrippedLocation) {
        r.tensor = synthetic_tensor(seed_name, *type, t.shape, *n);
        r.synthetic = true;
        return r;
      }
      decode_raw(label, read_external(label, location, offset, length), *n, t);
      return r;
    }
    if (p.has_raw_data()) {
      decode_raw(label, p.raw_data(), *n, t);
      return r;
    }
    auto expect_count = [&](int count, const char* field) {
      if (count != *n) {
        fail(label + " has " + std::to_string(count) + " values in " + field + "; its shape " +
             shape_text(t.shape) + " needs " + std::to_string(*n));
      }
    };
    switch (t.type) {
      case ElemType::kF32:
        expect_count(p.float_data_size(), "float_data");
        t.f.assign(p.float_data().begin(), p.float_data().end());
        break;
      case ElemType::kF64:
        expect_count(p.double_data_size(), "double_data");
        for (double v : p.double_data()) t.f.push_back(static_cast<float>(v));
        break;
      case ElemType::kF16:
      case ElemType::kBF16:
        expect_count(p.int32_data_size(), "int32_data");
        for (int32_t v : p.int32_data()) t.f.push_back(float_from_bits(t.type, static_cast<uint16_t>(v)));
        break;
      case ElemType::kI64:
        expect_count(p.int64_data_size(), "int64_data");
        t.i.assign(p.int64_data().begin(), p.int64_data().end());
        break;
      case ElemType::kI32:
      case ElemType::kI8:
      case ElemType::kU8:
      case ElemType::kBool:
        expect_count(p.int32_data_size(), "int32_data");
        for (int32_t v : p.int32_data()) t.i.push_back(t.type == ElemType::kBool ? (v != 0) : v);
        break;
    }
    return r;
  }

  void decode_raw(const std::string& label, std::string_view raw, int64_t n, Tensor& t) const {
    int64_t bytes = elem_bytes(t.type);
    if (static_cast<int64_t>(raw.size()) != n * bytes) {
      fail(label + " has " + std::to_string(raw.size()) + " bytes of data; " + type_text(t.type, t.shape) +
           " needs " + std::to_string(n * bytes));
    }
    if (is_float(t.type)) {
      t.f.resize(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k)
        t.f[static_cast<size_t>(k)] = float_from_bits(t.type, load_le(raw.data() + k * bytes, bytes));
    } else {
      t.i.resize(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k)
        t.i[static_cast<size_t>(k)] = int_from_bits(t.type, load_le(raw.data() + k * bytes, bytes));
    }
  }

  std::string read_external(const std::string& label, const std::string& location,
                            const std::string& offset_text, const std::string& length_text) const {
    if (location.empty()) fail(label + " keeps its data externally but names no location");
    if (base_dir_.empty()) {
      fail(label + " keeps its data in external file " + in_quotes(location) +
           ", but the model was given as bytes with no directory to look in");
    }
    std::filesystem::path relative(location);
    bool escapes = relative.is_absolute();
    for (const auto& part : relative) escapes = escapes || part == "..";
    if (escapes)
      fail(label + ": external data location " + in_quotes(location) +
           " is not inside the model's directory");
    std::filesystem::path file = std::filesystem::path(base_dir_) / relative;
    auto parse = [&](const std::string& key, const std::string& text, int64_t fallback) {
      if (text.empty()) return fallback;
      int64_t v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
        fail(label + ": external data " + key + " " + in_quotes(text) + " is not a byte count");
      }
      return v;
    };
    int64_t offset = parse("offset", offset_text, 0);
    int64_t length = parse("length", length_text, -1);
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      fail(label + ": its external data file " + in_quotes(file.string()) + " cannot be opened (" +
           std::strerror(errno) + ")");
    }
    in.seekg(0, std::ios::end);
    auto size = static_cast<int64_t>(in.tellg());
    if (length < 0) length = std::max<int64_t>(size - offset, 0);
    if (offset > size || length > size - offset) {
      fail(label + ": its external data file " + in_quotes(file.string()) + " has " + std::to_string(size) +
           " bytes, too few for offset " + std::to_string(offset) + " and length " + std::to_string(length));
    }
    std::string data(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(data.data(), length);
    if (!in) fail(label + ": reading its external data file " + in_quotes(file.string()) + " failed");
    return data;
  }

  // Kahn's algorithm over the NodeProtos, taking ready nodes in file order, so an ordered
  // file keeps its order.
  std::vector<int> node_order() {
    const auto& nodes = graph().node();
    int count = nodes.size();
    std::unordered_set<std::string> given;
    for (const auto& t : graph().initializer()) given.insert(t.name());
    for (const auto& v : graph().input()) given.insert(v.name());
    std::unordered_map<std::string, int> producer;
    for (int i = 0; i < count; ++i) {
      for (const auto& out : nodes[i].output()) {
        if (out.empty()) continue;
        if (given.count(out)) {
          fail(node_label(i) + " writes tensor " + in_quotes(out) +
               ", which is already a graph input or initializer");
        }
        auto [it, inserted] = producer.emplace(out, i);
        if (!inserted) {
          fail("tensor " + in_quotes(out) + " is written by two nodes, " + node_label(it->second) + " and " +
               node_label(i));
        }
      }
    }
    captures_.assign(static_cast<size_t>(count), {});
    std::vector<std::vector<int>> deps(static_cast<size_t>(count)), readers(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) {
      captures_[static_cast<size_t>(i)] = captures_of(nodes[i]);
      std::set<int> from;
      auto need = [&](const std::string& name) {
        if (name.empty() || given.count(name)) return;
        auto it = producer.find(name);
        if (it == producer.end()) {
          fail(node_label(i) + " reads tensor " + in_quotes(name) +
               ", which no node, input or initializer provides");
        }
        from.insert(it->second);
      };
      for (const auto& name : nodes[i].input()) need(name);
      for (const auto& name : captures_[static_cast<size_t>(i)]) need(name);
      for (int d : from) readers[static_cast<size_t>(d)].push_back(i);
      deps[static_cast<size_t>(i)].assign(from.begin(), from.end());
    }
    std::vector<size_t> pending(static_cast<size_t>(count));
    std::priority_queue<int, std::vector<int>, std::greater<>> ready;
    for (int i = 0; i < count; ++i) {
      pending[static_cast<size_t>(i)] = deps[static_cast<size_t>(i)].size();
      if (pending[static_cast<size_t>(i)] == 0) ready.push(i);
    }
    std::vector<int> order;
    while (!ready.empty()) {
      int i = ready.top();
      ready.pop();
      order.push_back(i);
      for (int r : readers[static_cast<size_t>(i)]) {
        if (--pending[static_cast<size_t>(r)] == 0) ready.push(r);
      }
    }
    if (static_cast<int>(order.size()) < count) {
      // Every node left waits on another node left; walking back along such dependencies
      // must repeat a node, and that node is on a cycle.
      int at = 0;
      while (pending[static_cast<size_t>(at)] == 0) ++at;
      std::vector<char> seen(static_cast<size_t>(count), 0);
      while (!seen[static_cast<size_t>(at)]) {
        seen[static_cast<size_t>(at)] = 1;
        for (int d : deps[static_cast<size_t>(at)]) {
          if (pending[static_cast<size_t>(d)] > 0) {
            at = d;
            break;
          }
        }
      }
      fail("graph has a cycle through " + node_label(at));
    }
    return order;
  }

  void add_node(int index) {
    const onnx::NodeProto& n = graph().node(index);
    bool default_domain = is_default_domain(n.domain());
    if (default_domain && n.op_type() == "Constant" && add_constant_node(index)) return;
    std::optional<OpType> op = default_domain ? onnx_op(n.op_type()) : std::nullopt;
    Attrs attrs;
    std::string why_opaque;
    if (op && captures_[static_cast<size_t>(index)].empty() && convert_attrs(index, *op, &attrs)) {
      why_opaque = add_known(index, *op, std::move(attrs));
      if (why_opaque.empty()) return;
    }
    add_opaque(index, why_opaque);
  }

  // A Constant node as a graph constant; false for a kind of value the IR cannot hold
  // (strings, sparse tensors), which becomes an Opaque node.
  bool add_constant_node(int index) {
    const onnx::NodeProto& n = graph().node(index);
    if (n.attribute_size() != 1 || n.output_size() != 1) return false;
    const onnx::AttributeProto& a = n.attribute(0);
    const std::string& out = n.output(0);
    ReadTensor r;
    if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR &&
        elem_type_from_onnx(a.t().data_type())) {
      r = read_tensor(a.t(), node_label(index) + " value", out);
    } else if (a.name() == "value_float" && a.type() == onnx::AttributeProto::FLOAT) {
      r.tensor = Tensor::floats({}, {a.f()});
    } else if (a.name() == "value_floats" && a.type() == onnx::AttributeProto::FLOATS) {
      r.tensor = Tensor::floats({a.floats_size()}, {a.floats().begin(), a.floats().end()});
    } else if (a.name() == "value_int" && a.type() == onnx::AttributeProto::INT) {
      r.tensor = Tensor::ints({}, {a.i()});
    } else if (a.name() == "value_ints" && a.type() == onnx::AttributeProto::INTS) {
      r.tensor = Tensor::ints({a.ints_size()}, {a.ints().begin(), a.ints().end()});
    } else {
      return false;
    }
    add_constant(out, std::move(r));
    return true;
  }

  // The node's attributes in the IR; false when one has no IR form (graphs, most tensors).
  bool convert_attrs(int index, OpType op, Attrs* attrs) const {
    for (const auto& a : graph().node(index).attribute()) {
      switch (a.type()) {
        case onnx::AttributeProto::INT:
          (*attrs)[a.name()] = static_cast<int64_t>(a.i());
          break;
        case onnx::AttributeProto::FLOAT:
          (*attrs)[a.name()] = static_cast<double>(a.f());
          break;
        case onnx::AttributeProto::STRING:
          (*attrs)[a.name()] = a.s();
          break;
        case onnx::AttributeProto::INTS:
          (*attrs)[a.name()] = std::vector<int64_t>(a.ints().begin(), a.ints().end());
          break;
        case onnx::AttributeProto::FLOATS:
          (*attrs)[a.name()] = std::vector<double>(a.floats().begin(), a.floats().end());
          break;
        case onnx::AttributeProto::TENSOR: {
          if (op != OpType::kConstantOfShape || a.name() != "value" ||
              !elem_type_from_onnx(a.t().data_type())) {
            return false;
          }
          Tensor t = read_tensor(a.t(), node_label(index) + " attribute 'value'", a.t().name()).tensor;
          if (t.elements() != 1) return false;
          (*attrs)["value"] = t.at(0);
          (*attrs)["dtype"] = static_cast<int64_t>(a.t().data_type());
          break;
        }
        default:
          return false;
      }
    }
    return true;
  }

  static int present_count(const google::protobuf::RepeatedPtrField<std::string>& names) {
    int n = names.size();
    while (n > 0 && names[n - 1].empty()) --n;
    return n;
  }

  // Adds a node of ops.h; returns why it must be Opaque instead ("" when it was added).
  std::string add_known(int index, OpType op, Attrs attrs) {
    const onnx::NodeProto& n = graph().node(index);
    std::vector<ValueId> inputs;
    std::vector<InputInfo> infos;
    for (int k = 0; k < present_count(n.input()); ++k) {
      InputInfo info;
      if (n.input(k).empty()) {
        inputs.push_back(kNone);
        info.present = false;
      } else {
        ValueId v = value_of(n.input(k));
        const Value& value = g_.value(v);
        inputs.push_back(v);
        info.type = value.type;
        info.shape = value.shape;
        info.constant = value.constant.get();
      }
      infos.push_back(std::move(info));
    }
    int num_outputs = present_count(n.output());
    std::vector<std::pair<ElemType, std::vector<int64_t>>> inferred;
    try {
      inferred = infer_node(op, attrs, infos, num_outputs);
    } catch (const UserError& e) {
      return e.what();
    }
    TESSERA_CHECK(static_cast<int>(inferred.size()) == num_outputs, "infer_node: output count");
    for (int k = 0; k < num_outputs; ++k) {
      TensorType onnx;
      std::string unknown;
      const auto& [type, shape] = inferred[static_cast<size_t>(k)];
      if (!n.output(k).empty() && onnx_type(n.output(k), &onnx, &unknown) &&
          (onnx.type != type || onnx.shape != shape)) {
        return "Tessera infers " + type_text(type, shape) + " for " + in_quotes(n.output(k)) + ", ONNX " +
               type_text(onnx.type, onnx.shape);
      }
    }
    if (fold_constant(index, op, attrs, inputs, inferred)) return {};
    std::vector<ValueId> outputs;
    try {
      outputs = g_.add_node(op, std::move(inputs), std::move(attrs), n.name(), num_outputs);
    } catch (const UserError& e) {
      fail(node_label(index) + ": " + e.what());
    }
    for (int k = 0; k < num_outputs; ++k) {
      if (n.output(k).empty()) continue;
      g_.value(outputs[static_cast<size_t>(k)]).name = n.output(k);
      define(n.output(k), outputs[static_cast<size_t>(k)]);
    }
    return {};
  }

  // Shape arithmetic that exporters leave in a graph (Shape of a static tensor, and
  // ConstantOfShape / Mul / Equal / Where over constants feeding an Expand or Reshape) is
  // evaluated here: Tessera's inference needs the tensors shapes depend on to be constant,
  // and such nodes are no work for a GPU. Only small integer and bool results over constant
  // inputs are folded, so computations on weights keep their structure.
  bool fold_constant(int index, OpType op, const Attrs& attrs, const std::vector<ValueId>& inputs,
                     const std::vector<std::pair<ElemType, std::vector<int64_t>>>& outputs) {
    const onnx::NodeProto& n = graph().node(index);
    if (op == OpType::kShape) {
      // Reads only its input's shape, which is static. Slicing as ONNX's Shape-15 does.
      const std::vector<int64_t>& shape = g_.value(inputs.at(0)).shape;
      auto rank = static_cast<int64_t>(shape.size());
      auto clamp = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
      int64_t start =
          clamp(std::get<int64_t>(attrs.count("start") ? attrs.at("start") : AttrValue(int64_t{0})));
      int64_t end = clamp(std::get<int64_t>(attrs.count("end") ? attrs.at("end") : AttrValue(rank)));
      std::vector<int64_t> dims(shape.begin() + start, shape.begin() + std::max(start, end));
      auto count = static_cast<int64_t>(dims.size());
      add_constant(n.output(0), ReadTensor{Tensor::ints({count}, std::move(dims)), false});
      return true;
    }
    int64_t elements = 0;
    for (const auto& [type, shape] : outputs) {
      std::optional<int64_t> count = checked_elements(shape);
      if (is_float(type) || !count) return false;
      elements += *count;
    }
    if (elements > kFoldLimitElements) return false;
    std::vector<const Tensor*> operands;
    bool synthetic = false;
    for (ValueId v : inputs) {
      if (v == kNone) {
        operands.push_back(nullptr);
        continue;
      }
      const Value& value = g_.value(v);
      if (!value.constant) return false;
      operands.push_back(value.constant.get());
      synthetic = synthetic || value.synthetic;
    }
    std::vector<Tensor> results;
    try {
      results = evaluate_node(op, attrs, operands, static_cast<int>(outputs.size()));
    } catch (const UserError&) {
      return false;
    }
    TESSERA_CHECK(results.size() == outputs.size(), "evaluate_node: output count");
    for (size_t k = 0; k < results.size(); ++k) {
      const std::string& name = n.output(static_cast<int>(k));
      if (!name.empty()) add_constant(name, ReadTensor{std::move(results[k]), synthetic});
    }
    return true;
  }

  void add_opaque(int index, const std::string& why_not_known) {
    const onnx::NodeProto& n = graph().node(index);
    onnx::NodeProto stored = n;
    stored.clear_name();
    std::vector<ValueId> inputs;
    for (int k = 0; k < n.input_size(); ++k) {
      stored.set_input(k, n.input(k).empty() ? "" : "#");
      if (!n.input(k).empty()) inputs.push_back(value_of(n.input(k)));
    }
    for (const auto& name : captures_[static_cast<size_t>(index)]) inputs.push_back(value_of(name));
    std::vector<std::pair<ElemType, std::vector<int64_t>>> outputs;
    std::vector<std::string> names;
    for (int k = 0; k < n.output_size(); ++k) {
      stored.set_output(k, n.output(k).empty() ? "" : "#");
      if (n.output(k).empty()) continue;
      TensorType t;
      std::string why;
      if (!onnx_type(n.output(k), &t, &why)) {
        std::string message =
            "tensor " + in_quotes(n.output(k)) + " (output of " + node_label(index) + ") " + why;
        if (!why_not_known.empty()) message += "; Tessera's inference: " + why_not_known;
        if (!strict_error_.empty()) message += "; ONNX's shape inference: " + strict_error_;
        fail(message);
      }
      outputs.emplace_back(t.type, std::move(t.shape));
      names.push_back(n.output(k));
    }
    Attrs attrs;
    attrs["onnx_node"] = stored.SerializeAsString();
    if (!is_default_domain(n.domain())) {
      auto it = domain_versions_.find(n.domain());
      if (it != domain_versions_.end()) attrs["onnx_domain_version"] = it->second;
    }
    std::vector<ValueId> ids = g_.add_node_with_outputs(OpType::kOpaque, std::move(inputs), std::move(attrs),
                                                        n.name(), outputs, names);
    for (size_t k = 0; k < ids.size(); ++k) define(names[k], ids[k]);
  }

  void add_outputs() {
    for (const auto& out : graph().output()) {
      auto it = values_.find(out.name());
      if (it == values_.end())
        fail("graph output " + in_quotes(out.name()) + " is not produced by any node, input or initializer");
      g_.add_output(it->second);
    }
  }

  std::string_view bytes_;
  std::string what_;
  std::string base_dir_;
  onnx::ModelProto model_;
  int64_t opset_ = 0;                               // the default domain's opset
  std::map<std::string, int64_t> domain_versions_;  // non-default opset imports
  std::vector<std::pair<int, std::string>> drops_;  // (node, attribute) of a later opset, implied
  GuardedSchemas guard_;                            // the schemas shape inference uses
  std::string strict_error_;                        // strict shape inference's error, if it failed
  std::unordered_map<std::string, const onnx::TypeProto*> types_;  // ONNX's types by tensor name
  std::vector<std::vector<std::string>> captures_;                 // per NodeProto: names its subgraphs read
  std::unordered_map<std::string, ValueId> values_;                // graph values by ONNX name
  Graph g_;
};

}  // namespace

Graph import_onnx(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UserError(path + ": is a directory, not an ONNX model");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open the ONNX model (" + std::strerror(errno) + ")");
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::streamoff>(in.tellg());
  in.seekg(0);
  std::string bytes(static_cast<size_t>(std::max<std::streamoff>(size, 0)), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!in) throw UserError(path + ": reading the ONNX model failed");
  std::filesystem::path p(path);
  std::string dir = p.parent_path().string();
  Graph g = import_onnx_bytes(bytes, path, dir.empty() ? "." : dir);
  g.model_name = p.filename().string();
  return g;
}

Graph import_onnx_bytes(std::string_view bytes, std::string_view what, const std::string& base_dir) {
  return Importer(bytes, what, base_dir).run();
}

Tensor tensor_from_onnx(std::string_view bytes, std::string_view what) {
  return Importer(bytes, what, "").read_tensor_proto();
}


}  // namespace tessera::graph
