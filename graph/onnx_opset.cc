// Reading models of opsets 18-21 by rewriting them to opset 17 (see onnx_opset.h).
#include "graph/onnx_opset.h"

#include <onnx/defs/schema.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/error.h"
#include "graph/onnx_checks.h"
#include "graph/onnx_format.h"

namespace tessera::graph::onnx_detail {
namespace {

bool is_reduce_with_axes_input(const std::string& op) {
  static const std::unordered_set<std::string> ops = {"ReduceL1",      "ReduceL2",  "ReduceLogSum",
                                                      "ReduceLogSumExp", "ReduceMax", "ReduceMean",
                                                      "ReduceMin",     "ReduceProd", "ReduceSumSquare"};
  return ops.count(op) > 0;
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

void erase_attribute(onnx::NodeProto& n, const std::string& name) {
  auto* attributes = n.mutable_attribute();
  for (int k = 0; k < attributes->size(); ++k) {
    if (attributes->Get(k).name() == name) {
      attributes->DeleteSubrange(k, 1);
      return;
    }
  }
}

void set_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& values) {
  erase_attribute(n, name);
  onnx::AttributeProto* a = n.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

bool present(const onnx::NodeProto& n, int k) { return n.input_size() > k && !n.input(k).empty(); }

// Drops trailing omitted inputs (an input list may not end in "" where the schema has fewer).
void trim_inputs(onnx::NodeProto& n) {
  while (n.input_size() > 0 && n.input(n.input_size() - 1).empty()) n.mutable_input()->RemoveLast();
}

// What a graph and the graphs around it say about tensors: small integer constants (for
// axes, pads and sizes) and stated element types and dimensions (-1: not a number).
struct Scope {
  const Scope* outer = nullptr;
  std::unordered_map<std::string, std::vector<int64_t>> ints;
  std::unordered_map<std::string, int32_t> elem_types;
  std::unordered_map<std::string, std::vector<int64_t>> dims;

  const std::vector<int64_t>* constant(const std::string& name) const {
    for (const Scope* s = this; s; s = s->outer) {
      auto it = s->ints.find(name);
      if (it != s->ints.end()) return &it->second;
    }
    return nullptr;
  }
  std::optional<int32_t> elem_type(const std::string& name) const {
    for (const Scope* s = this; s; s = s->outer) {
      auto it = s->elem_types.find(name);
      if (it != s->elem_types.end()) return it->second;
    }
    return std::nullopt;
  }
  const std::vector<int64_t>* shape(const std::string& name) const {
    for (const Scope* s = this; s; s = s->outer) {
      auto it = s->dims.find(name);
      if (it != s->dims.end()) return &it->second;
    }
    return nullptr;
  }

  void add_type(const onnx::ValueInfoProto& v) {
    if (!v.has_type() || !v.type().has_tensor_type()) return;
    const auto& t = v.type().tensor_type();
    if (t.elem_type() != 0) elem_types[v.name()] = t.elem_type();
    if (!t.has_shape()) return;
    std::vector<int64_t> d;
    for (const auto& dim : t.shape().dim()) d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
    dims[v.name()] = std::move(d);
  }
  void add_constant(const std::string& name, const onnx::TensorProto& t) {
    elem_types[name] = t.data_type();
    dims[name] = dims_of(t);
    std::optional<int64_t> n = checked_elements(dims_of(t));
    if (!n || *n > kFoldLimitElements) return;
    if (std::optional<std::vector<int64_t>> v = int_values(t)) ints[name] = std::move(*v);
  }
};

class Lowering {
 public:
  Lowering(onnx::ModelProto& model, int64_t opset, const std::string& what)
      : model_(model), opset_(opset), what_(what) {}

  void run() {
    collect_names(model_.graph());
    lower_graph(*model_.mutable_graph(), nullptr);
    for (auto& o : *model_.mutable_opset_import()) {
      if (is_default_domain(o.domain())) o.set_version(17);
    }
    if (model_.ir_version() > kExportIrVersion) model_.set_ir_version(kExportIrVersion);
  }

 private:
  [[noreturn]] void fail(const onnx::NodeProto& n, int index, const std::string& why) const {
    std::string label = n.name().empty() ? "#" + std::to_string(index) : in_quotes(n.name());
    throw UserError(what_ + ": node " + label + " (" + n.op_type() + ", opset " + std::to_string(opset_) +
                    "): " + why);
  }

  void collect_names(const onnx::GraphProto& g) {
    for (const auto& v : g.input()) names_.insert(v.name());
    for (const auto& t : g.initializer()) names_.insert(t.name());
    for (const auto& n : g.node()) {
      names_.insert(n.name());
      for (const auto& o : n.output()) names_.insert(o);
      for (const auto& a : n.attribute()) {
        if (a.has_g()) collect_names(a.g());
        for (const auto& sub : a.graphs()) collect_names(sub);
      }
    }
  }

  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; !names_.insert(name).second; ++k) name = base + "_" + std::to_string(k);
    return name;
  }

  void lower_graph(onnx::GraphProto& g, const Scope* outer) {
    Scope scope;
    scope.outer = outer;
    for (const auto& v : g.input()) scope.add_type(v);
    for (const auto& v : g.output()) scope.add_type(v);
    for (const auto& v : g.value_info()) scope.add_type(v);
    for (const auto& t : g.initializer()) scope.add_constant(t.name(), t);
    for (const auto& n : g.node()) {
      if (!is_default_domain(n.domain()) || n.op_type() != "Constant" || n.output_size() != 1) continue;
      const onnx::AttributeProto* value = find_attribute(n, "value");
      if (value && value->type() == onnx::AttributeProto::TENSOR) scope.add_constant(n.output(0), value->t());
    }
    // The graph's nodes as read (the rewritten ones go into `lowered`), by the tensors they write.
    const google::protobuf::RepeatedPtrField<onnx::NodeProto> original = g.node();
    std::unordered_map<std::string, const onnx::NodeProto*> outer_producers = std::move(producers_);
    producers_ = outer_producers;
    for (const auto& n : original) {
      for (const auto& o : n.output()) producers_[o] = &n;
    }
    graph_ = &g;
    google::protobuf::RepeatedPtrField<onnx::NodeProto> lowered;
    for (int i = 0; i < g.node_size(); ++i) {
      onnx::NodeProto n = g.node(i);
      for (auto& a : *n.mutable_attribute()) {
        if (a.has_g()) lower_graph(*a.mutable_g(), &scope);
        for (auto& sub : *a.mutable_graphs()) lower_graph(sub, &scope);
      }
      graph_ = &g;
      if (is_default_domain(n.domain())) {
        lower_node(n, i, scope, lowered);
      } else {
        *lowered.Add() = std::move(n);
      }
    }
    g.mutable_node()->Swap(&lowered);
    producers_ = std::move(outer_producers);
  }

  void lower_node(onnx::NodeProto& n, int index, const Scope& scope,
                  google::protobuf::RepeatedPtrField<onnx::NodeProto>& out) {
    const std::string& op = n.op_type();
    if (op == "Gelu") return gelu(n, index, scope, out);
    if (op == "Mish") return mish(n, index, scope, out);
    if (is_reduce_with_axes_input(op)) {
      reduce(n, index, scope);
    } else if (op == "Pad") {
      pad(n, index, scope);
    } else if (op == "Split") {
      split(n, scope);
    } else if (op == "Resize") {
      resize(n, index, scope);
    } else if (op == "GridSample") {
      grid_sample(n, index, scope);
    } else if (op == "ScatterND" || op == "ScatterElements") {
      const onnx::AttributeProto* r = find_attribute(n, "reduction");
      if (r && (r->s() == "max" || r->s() == "min"))
        fail(n, index, "reduction " + in_quotes(r->s()) + " came with opset 18; opset 17, which Tessera reads, has none");
    } else if (!onnx::OpSchemaRegistry::Instance()->GetSchema(op, 17, "")) {
      fail(n, index,
           "ONNX has no such operator at opset 17, the newest that Tessera's ONNX library (1.12) knows; "
           "Tessera reads opset 18-21 by rewriting each node to its opset-17 form, and this one has none");
    }
    *out.Add() = std::move(n);
  }

  // Reduce* of opset 18 take their axes as an input.
  void reduce(onnx::NodeProto& n, int index, const Scope& scope) {
    const onnx::AttributeProto* noop = find_attribute(n, "noop_with_empty_axes");
    bool noop_empty = noop && noop->i() != 0;
    std::vector<int64_t> axes;
    if (present(n, 1)) {
      const std::vector<int64_t>* c = scope.constant(n.input(1));
      if (!c) fail(n, index, "its axes come from a computed tensor; at opset 17 they are a constant attribute");
      axes = *c;
    }
    if (axes.empty() && noop_empty) {  // reduces nothing
      n.set_op_type("Identity");
      n.clear_attribute();
      n.mutable_input()->DeleteSubrange(1, n.input_size() - 1);
      return;
    }
    erase_attribute(n, "noop_with_empty_axes");
    if (n.input_size() > 1) n.mutable_input()->DeleteSubrange(1, n.input_size() - 1);
    if (!axes.empty()) set_ints(n, "axes", axes);
  }

  void pad(onnx::NodeProto& n, int index, const Scope& scope) {
    const onnx::AttributeProto* mode = find_attribute(n, "mode");
    if (mode && mode->s() == "wrap") fail(n, index, "mode \"wrap\" came with opset 19; opset 17 has no such padding");
    if (!present(n, 3)) {
      trim_inputs(n);
      if (n.input_size() > 3) n.mutable_input()->DeleteSubrange(3, n.input_size() - 3);
      return;
    }
    const std::vector<int64_t>* axes = scope.constant(n.input(3));
    const std::vector<int64_t>* pads = present(n, 1) ? scope.constant(n.input(1)) : nullptr;
    const std::vector<int64_t>* data = scope.shape(n.input(0));
    if (!axes || !pads || !data)
      fail(n, index, "its axes input needs constant pads and axes and a stated rank of the data to be written at opset 17");
    const int64_t rank = static_cast<int64_t>(data->size());
    const size_t k = axes->size();
    if (pads->size() != 2 * k) fail(n, index, "pads has " + std::to_string(pads->size()) + " values for " + std::to_string(k) + " axes");
    std::vector<int64_t> full(2 * static_cast<size_t>(rank), 0);
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (size_t i = 0; i < k; ++i) {
      int64_t a = (*axes)[i];
      if (a < -rank || a >= rank) fail(n, index, "axis " + std::to_string(a) + " is outside rank " + std::to_string(rank));
      if (a < 0) a += rank;
      if (seen[static_cast<size_t>(a)]) fail(n, index, "axis " + std::to_string(a) + " is named twice");
      seen[static_cast<size_t>(a)] = true;
      full[static_cast<size_t>(a)] = (*pads)[i];
      full[static_cast<size_t>(a + rank)] = (*pads)[i + k];
    }
    n.set_input(1, add_int64(n.name() + "/pads", full));
    n.mutable_input()->DeleteSubrange(3, n.input_size() - 3);
    trim_inputs(n);
  }

  // Split-18's num_outputs over a dimension it does not divide: the last part is smaller.
  void split(onnx::NodeProto& n, const Scope& scope) {
    const onnx::AttributeProto* count = find_attribute(n, "num_outputs");
    if (!count || present(n, 1) || count->i() != n.output_size() || count->i() <= 0) return;
    const std::vector<int64_t>* data = scope.shape(n.input(0));
    const onnx::AttributeProto* axis_attr = find_attribute(n, "axis");
    int64_t axis = axis_attr ? axis_attr->i() : 0;
    if (!data) return;
    const int64_t rank = static_cast<int64_t>(data->size());
    if (axis < -rank || axis >= rank) return;
    const int64_t length = (*data)[static_cast<size_t>(axis < 0 ? axis + rank : axis)];
    if (length < 0 || length % count->i() == 0) return;  // an equal split reads as opset 13's
    const int64_t part = (length + count->i() - 1) / count->i();
    std::vector<int64_t> sizes;
    for (int64_t left = length; left > 0; left -= part) sizes.push_back(std::min(part, left));
    if (static_cast<int64_t>(sizes.size()) != count->i()) return;  // the checker says why
    erase_attribute(n, "num_outputs");
    if (n.input_size() < 2) n.add_input();
    n.set_input(1, add_int64(n.name() + "/split", sizes));
  }

  void resize(onnx::NodeProto& n, int index, const Scope& scope) {
    const onnx::AttributeProto* mode = find_attribute(n, "coordinate_transformation_mode");
    if (mode && mode->s() == "half_pixel_symmetric")
      fail(n, index, "coordinate_transformation_mode \"half_pixel_symmetric\" came with opset 19; opset 17 has none");
    const onnx::AttributeProto* axes = find_attribute(n, "axes");
    if (!axes) return;
    const std::vector<int64_t>* data = scope.shape(n.input(0));
    bool every = data && static_cast<size_t>(axes->ints_size()) == data->size();
    for (int i = 0; every && i < axes->ints_size(); ++i) {
      int64_t a = axes->ints(i);
      every = a == i || a + static_cast<int64_t>(data->size()) == i;
    }
    if (!every) fail(n, index, "attribute \"axes\" (opset 18) names a part of the dimensions; at opset 17 Resize scales all");
    erase_attribute(n, "axes");
  }

  void grid_sample(onnx::NodeProto& n, int index, const Scope& scope) {
    const std::vector<int64_t>* data = scope.shape(n.input(0));
    if (!data || data->size() != 4) fail(n, index, "opset 17's GridSample is 4-D only, and this input's rank is not stated as 4");
    for (auto& a : *n.mutable_attribute()) {
      if (a.name() != "mode") continue;
      if (a.s() == "linear") a.set_s("bilinear");
      if (a.s() == "cubic") a.set_s("bicubic");
    }
  }

  // Gelu-20 as Tessera's export writes it (onnx_export.cc), in x's element type.
  void gelu(const onnx::NodeProto& n, int index, const Scope& scope, google::protobuf::RepeatedPtrField<onnx::NodeProto>& out) {
    const std::string x = n.input_size() > 0 ? n.input(0) : "";
    if (x.empty() || n.output_size() != 1) fail(n, index, "Gelu takes one input and has one output");
    const int32_t type = float_type(n, index, scope, x);
    const onnx::AttributeProto* approximate = find_attribute(n, "approximate");
    const std::string form = approximate ? approximate->s() : "none";
    const std::string base = n.name().empty() ? n.output(0) : n.name();
    std::string v = x;
    if (form == "tanh") {
      v = emit(out, "Mul", {x, x}, base + "/square");
      v = emit(out, "Mul", {v, x}, base + "/cube");
      v = emit(out, "Mul", {v, add_scalar(base + "/coefficient", type, 0.044715)}, base + "/scale_cube");
      v = emit(out, "Add", {x, v}, base + "/inner");
      v = emit(out, "Mul", {v, add_scalar(base + "/sqrt_2_over_pi", type, std::sqrt(2 / std::numbers::pi))}, base + "/scale");
      v = emit(out, "Tanh", {v}, base + "/tanh");
    } else if (form == "none") {
      v = emit(out, "Div", {x, add_scalar(base + "/sqrt2", type, std::numbers::sqrt2)}, base + "/div");
      v = emit(out, "Erf", {v}, base + "/erf");
    } else {
      fail(n, index, "approximate is " + in_quotes(form) + "; Gelu's are \"none\" and \"tanh\"");
    }
    v = emit(out, "Add", {v, add_scalar(base + "/one", type, 1.0)}, base + "/add");
    v = emit(out, "Mul", {v, x}, base + "/mul");
    emit(out, "Mul", {v, add_scalar(base + "/half", type, 0.5)}, base + "/half_mul", n.output(0));
  }

  // Mish-18: x * tanh(softplus(x)), softplus(x) = log(1 + exp(x)).
  void mish(const onnx::NodeProto& n, int index, const Scope& scope, google::protobuf::RepeatedPtrField<onnx::NodeProto>& out) {
    if (n.input_size() != 1 || n.output_size() != 1) fail(n, index, "Mish takes one input and has one output");
    const std::string x = n.input(0);
    const int32_t type = float_type(n, index, scope, x);
    const std::string base = n.name().empty() ? n.output(0) : n.name();
    std::string v = emit(out, "Exp", {x}, base + "/exp");
    v = emit(out, "Add", {v, add_scalar(base + "/one", type, 1.0)}, base + "/add");
    v = emit(out, "Log", {v}, base + "/softplus");
    v = emit(out, "Tanh", {v}, base + "/tanh");
    emit(out, "Mul", {x, v}, base + "/mul", n.output(0));
  }

  // The element type of tensor `name`: stated, or followed back through the operators whose
  // output has their first input's type (value_info is optional).
  std::optional<int32_t> traced_type(const std::string& name, const Scope& scope) const {
    static const std::unordered_set<std::string> same_as_first = {
        "Add", "Sub", "Mul", "Div", "Pow", "Neg", "Abs", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Erf", "Exp", "Log",
        "Sqrt", "Reciprocal", "Identity", "MatMul", "Gemm", "Conv", "ConvTranspose", "LayerNormalization",
        "BatchNormalization", "InstanceNormalization", "Softmax", "LogSoftmax", "Reshape", "Transpose", "Flatten",
        "Squeeze", "Unsqueeze", "Slice", "Gather", "Concat", "Split", "Expand", "Pad", "Tile", "MaxPool", "AveragePool",
        "GlobalAveragePool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "Clip", "HardSigmoid", "HardSwish",
        "Dropout", "Resize", "Min", "Max", "Gelu", "Mish"};
    std::string current = name;
    for (int depth = 0; depth < 64; ++depth) {
      if (std::optional<int32_t> t = scope.elem_type(current)) return t;
      auto it = producers_.find(current);
      if (it == producers_.end()) return std::nullopt;
      const onnx::NodeProto& p = *it->second;
      if (!is_default_domain(p.domain())) return std::nullopt;
      if (p.op_type() == "Cast") {
        const onnx::AttributeProto* to = find_attribute(p, "to");
        return to ? std::optional<int32_t>(static_cast<int32_t>(to->i())) : std::nullopt;
      }
      if (p.op_type() == "Where" && p.input_size() > 1) {
        current = p.input(1);
        continue;
      }
      if (!same_as_first.count(p.op_type()) || p.input_size() == 0) return std::nullopt;
      current = p.input(0);
    }
    return std::nullopt;
  }

  int32_t float_type(const onnx::NodeProto& n, int index, const Scope& scope, const std::string& x) const {
    std::optional<int32_t> type = traced_type(x, scope);
    if (!type && n.output_size() > 0) type = scope.elem_type(n.output(0));
    if (!type) fail(n, index, "the element type of its input is not stated (value_info), and opset 17 writes it with constants of that type");
    switch (*type) {
      case onnx::TensorProto::FLOAT:
      case onnx::TensorProto::FLOAT16:
      case onnx::TensorProto::BFLOAT16:
      case onnx::TensorProto::DOUBLE:
        return *type;
      default:
        fail(n, index, "its input is " + onnx_type_name(*type) + "; it takes floating-point tensors");
    }
  }

  std::string emit(google::protobuf::RepeatedPtrField<onnx::NodeProto>& out, const std::string& op,
                   const std::vector<std::string>& inputs, const std::string& name, std::string output = "") {
    onnx::NodeProto* p = out.Add();
    p->set_op_type(op);
    p->set_name(fresh(name));
    for (const auto& in : inputs) p->add_input(in);
    if (output.empty()) output = fresh(name);
    p->add_output(output);
    return output;
  }

  std::string add_int64(const std::string& base, const std::vector<int64_t>& values) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(fresh(base));
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return t->name();
  }

  std::string add_scalar(const std::string& base, int32_t onnx_type, double value) {
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(fresh(base));
    t->set_data_type(onnx_type);
    if (onnx_type == onnx::TensorProto::DOUBLE) {
      t->add_double_data(value);
    } else if (onnx_type == onnx::TensorProto::FLOAT) {
      t->add_float_data(static_cast<float>(value));
    } else {
      ElemType e = onnx_type == onnx::TensorProto::FLOAT16 ? ElemType::kF16 : ElemType::kBF16;
      std::string raw;
      store_le(raw, bits_of(e, value), 2);
      t->set_raw_data(raw);
    }
    return t->name();
  }

  onnx::ModelProto& model_;
  int64_t opset_;
  const std::string& what_;
  onnx::GraphProto* graph_ = nullptr;  // where new initializers go
  std::unordered_set<std::string> names_;
  std::unordered_map<std::string, const onnx::NodeProto*> producers_;  // in this graph and around it
};

}  // namespace

void lower_to_opset17(onnx::ModelProto& model, int64_t opset, const std::string& what) {
  Lowering(model, opset, what).run();
}

}  // namespace tessera::graph::onnx_detail
