// ONNX export (contracts in onnx_io.h).
//
// Export is one pass of Exporter over a graph's live nodes in topological order. Fused
// operators and Gelu are written as their opset-17 decomposition (Chain builds those). The
// finished model goes through onnx's checker before its stripped initializers lose their
// data (see Exporter::check_and_strip for why in that order).
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
#include "graph/onnx_format.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

using namespace onnx_detail;

// ---------------------------------------------------------------------------------------
// Export

onnx::ValueInfoProto value_info(const std::string& name, ElemType type, const std::vector<int64_t>& shape) {
  onnx::ValueInfoProto info;
  info.set_name(name);
  auto* tensor = info.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx_data_type(type));
  auto* s = tensor->mutable_shape();
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
  return info;
}

void set_attr(onnx::NodeProto* p, const std::string& name, const AttrValue& value) {
  onnx::AttributeProto* a = p->add_attribute();
  a->set_name(name);
  std::visit(
      [a](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          a->set_type(onnx::AttributeProto::INT);
          a->set_i(x);
        } else if constexpr (std::is_same_v<T, double>) {
          a->set_type(onnx::AttributeProto::FLOAT);
          a->set_f(static_cast<float>(x));
        } else if constexpr (std::is_same_v<T, std::string>) {
          a->set_type(onnx::AttributeProto::STRING);
          a->set_s(x);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          a->set_type(onnx::AttributeProto::INTS);
          for (int64_t v : x) a->add_ints(v);
        } else {
          a->set_type(onnx::AttributeProto::FLOATS);
          for (double v : x) a->add_floats(static_cast<float>(v));
        }
      },
      value);
}

std::vector<std::string> split_steps(const std::string& text) {
  std::vector<std::string> steps;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('+', start);
    if (end == std::string::npos) end = text.size();
    steps.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return steps;
}

std::vector<int64_t> broadcast(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> out(std::max(a.size(), b.size()), 1);
  for (size_t k = 0; k < out.size(); ++k) {
    int64_t x = k < out.size() - a.size() ? 1 : a[k - (out.size() - a.size())];
    int64_t y = k < out.size() - b.size() ? 1 : b[k - (out.size() - b.size())];
    TESSERA_CHECK(x == y || x == 1 || y == 1, "broadcast: " + shape_text(a) + " and " + shape_text(b));
    out[k] = x == 1 ? y : x;
  }
  return out;
}

class Exporter {
 public:
  Exporter(const Graph& g, const ExportOptions& options)
      : g_(g), options_(options), graph_(model_.mutable_graph()) {}

  std::string run() {
    model_.set_ir_version(kExportIrVersion);
    model_.set_producer_name("tessera");
    model_.set_producer_version(options_.producer_version.empty() ? std::string(kVersion)
                                                                  : options_.producer_version);
    graph_->set_name(g_.model_name.empty() ? "tessera" : g_.model_name);

    std::vector<NodeId> order = g_.topological_order();
    std::vector<char> used = name_values(order);
    for (ValueId v : g_.inputs())
      *graph_->add_input() = value_info(name_of(v), g_.value(v).type, g_.value(v).shape);
    for (size_t v = 0; v < g_.values().size(); ++v) {
      if (used[v] && g_.values()[v].constant) write_initializer(static_cast<ValueId>(v));
    }
    for (NodeId id : order) write_node(g_.node(id));
    write_outputs(order);

    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(kExportOpset);
    for (const auto& [domain, version] : domains_) {
      opset = model_.add_opset_import();
      opset->set_domain(domain);
      opset->set_version(version);
    }
    if (!stripped_.empty()) {
      auto* prop = model_.add_metadata_props();
      prop->set_key(kStrippedKey);
      prop->set_value("true");
    }
    check_and_strip();

    if (model_.ByteSizeLong() > static_cast<size_t>(INT_MAX)) {
      throw UserError("graph " + in_quotes(g_.model_name) +
                      ": the ONNX model would be over protobuf's 2 GiB limit; export it with "
                      "ExportOptions::strip_above_elements");
    }
    std::string bytes;
    TESSERA_CHECK(model_.SerializeToString(&bytes), "export: protobuf could not serialise the model");
    return bytes;
  }

 private:
  // A running value through the ONNX nodes that compute one Tessera node: each step reads
  // `value`; finish() makes the last step write the node's own output.
  struct Chain {
    const Node* node = nullptr;
    ElemType type = ElemType::kF32;
    std::string value;
    std::vector<int64_t> shape;
    onnx::NodeProto* last = nullptr;
    size_t last_info = 0;  // index of the last step's entry in temp_infos_
  };
  struct TempInfo {
    onnx::ValueInfoProto info;
    bool dropped = false;  // became the node's output, described with the graph's values
  };

  std::string unique_name(const std::string& base) {
    std::string name = base.empty() ? "tensor" : base;
    for (int k = 1; used_names_.count(name); ++k)
      name = (base.empty() ? "tensor" : base) + "_" + std::to_string(k);
    used_names_.insert(name);
    return name;
  }

  // Gives every written value a unique name, its own where it can; returns which values are
  // read by live nodes or are outputs.
  std::vector<char> name_values(const std::vector<NodeId>& order) {
    std::vector<char> used(g_.values().size(), 0);
    for (NodeId id : order) {
      for (ValueId v : g_.node(id).inputs) {
        if (v != kNone) used[static_cast<size_t>(v)] = 1;
      }
    }
    for (ValueId v : g_.outputs()) used[static_cast<size_t>(v)] = 1;
    names_.assign(g_.values().size(), {});
    for (ValueId v : g_.inputs()) names_[static_cast<size_t>(v)] = unique_name(g_.value(v).name);
    for (size_t v = 0; v < g_.values().size(); ++v) {
      if (used[v] && g_.values()[v].constant) names_[v] = unique_name(g_.values()[v].name);
    }
    for (NodeId id : order) {
      for (ValueId v : g_.node(id).outputs) names_[static_cast<size_t>(v)] = unique_name(g_.value(v).name);
    }
    return used;
  }

  const std::string& name_of(ValueId v) const {
    const std::string& name = names_.at(static_cast<size_t>(v));
    TESSERA_CHECK(!name.empty(),
                  "export: value '" + g_.value(v).name +
                      "' is read but is neither a graph input, a constant nor a live node's output");
    return name;
  }

  std::string base_name(const Node& n) const {
    return n.name.empty() ? std::string(op_type_name(n.op)) : n.name;
  }

  void write_initializer(ValueId v) {
    const Value& value = g_.value(v);
    const Tensor& t = *value.constant;
    TESSERA_CHECK(t.type == value.type && t.shape == value.shape,
                  "export: constant '" + value.name + "' differs from its value's type or shape");
    onnx::TensorProto* p = graph_->add_initializer();
    p->set_name(name_of(v));
    p->set_data_type(onnx_data_type(t.type));
    for (int64_t d : t.shape) p->add_dims(d);
    bool strip = (value.synthetic && !options_.write_synthetic) ||
                 (options_.strip_above_elements >= 0 && t.elements() > options_.strip_above_elements);
    if (strip) {
      p->set_raw_data(std::string(static_cast<size_t>(t.elements() * elem_bytes(t.type)), '\0'));
      stripped_.push_back(graph_->initializer_size() - 1);
    } else {
      p->set_raw_data(encode_raw(t));
    }
  }

  // A scalar initializer of type `t` holding `v` (one per constant and type).
  std::string scalar(ElemType t, double v, const std::string& what) {
    auto key = std::make_pair(what, static_cast<int>(t));
    auto it = scalars_.find(key);
    if (it != scalars_.end()) return it->second;
    std::string name = unique_name("tessera/" + what + "_" + std::string(elem_type_name(t)));
    onnx::TensorProto* p = graph_->add_initializer();
    p->set_name(name);
    p->set_data_type(onnx_data_type(t));
    std::string raw;
    store_le(raw, bits_of(t, v), elem_bytes(t));
    p->set_raw_data(raw);
    scalars_[key] = name;
    return name;
  }

  onnx::NodeProto* emit(const std::string& op_type, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name) {
    onnx::NodeProto* p = graph_->add_node();
    p->set_op_type(op_type);
    p->set_name(name);
    for (const auto& in : inputs) p->add_input(in);
    for (const auto& out : outputs) p->add_output(out);
    return p;
  }

  // Emits `op_type` over `inputs` into a new value "<node>/<step>"; returns the node.
  onnx::NodeProto* emit_temp(const Node& n, const std::string& op_type,
                             const std::vector<std::string>& inputs, const std::string& step, ElemType type,
                             const std::vector<int64_t>& shape, std::string* out) {
    *out = unique_name(base_name(n) + "/" + step);
    temp_infos_.push_back({value_info(*out, type, shape), false});
    return emit(op_type, inputs, {*out}, *out);
  }

  onnx::NodeProto* step(Chain& c, const std::string& op_type, const std::vector<std::string>& inputs,
                        const std::string& step_name, const std::vector<int64_t>& shape) {
    std::string out;
    c.last = emit_temp(*c.node, op_type, inputs, step_name, c.type, shape, &out);
    c.last_info = temp_infos_.size() - 1;
    c.value = out;
    c.shape = shape;
    return c.last;
  }

  void finish(Chain& c) {
    TESSERA_CHECK(c.node->outputs.size() == 1, "export: a decomposed node has one output");
    const std::string& out = name_of(c.node->outputs[0]);
    if (!c.last) {
      emit("Identity", {c.value}, {out}, unique_name(base_name(*c.node) + "/identity"));
      return;
    }
    c.last->set_output(0, out);
    temp_infos_[c.last_info].dropped = true;
  }

  // gelu(x) = 0.5 x (1 + erf(x / sqrt 2)), or with tanh(sqrt(2/pi) (x + 0.044715 x^3)) in
  // place of the erf; opset 17 has no Gelu.
  void gelu(Chain& c, bool tanh_form) {
    TESSERA_CHECK(is_float(c.type), "export: gelu of a non-float tensor");
    std::string x = c.value;
    std::vector<int64_t> shape = c.shape;
    if (tanh_form) {
      step(c, "Mul", {x, x}, "gelu_square", shape);
      step(c, "Mul", {c.value, x}, "gelu_cube", shape);
      step(c, "Mul", {c.value, scalar(c.type, 0.044715, "gelu_coefficient")}, "gelu_scale_cube", shape);
      step(c, "Add", {x, c.value}, "gelu_inner", shape);
      step(c, "Mul", {c.value, scalar(c.type, std::sqrt(2 / std::numbers::pi), "sqrt_2_over_pi")},
           "gelu_scale", shape);
      step(c, "Tanh", {c.value}, "gelu_tanh", shape);
    } else {
      step(c, "Div", {x, scalar(c.type, std::numbers::sqrt2, "sqrt2")}, "gelu_div", shape);
      step(c, "Erf", {c.value}, "gelu_erf", shape);
    }
    step(c, "Add", {c.value, scalar(c.type, 1.0, "one")}, "gelu_add", shape);
    step(c, "Mul", {c.value, x}, "gelu_mul", shape);
    step(c, "Mul", {c.value, scalar(c.type, 0.5, "half")}, "gelu_half", shape);
  }

  // The epilogue `steps` of a FusedMatMul / FusedConv, reading bias and residual inputs from
  // `next_input` on. A conv bias is per channel, so it is reshaped to [1, K, 1, ...] first.
  void epilogue(Chain& c, const std::vector<std::string>& steps, size_t next_input, bool conv) {
    const Node& n = *c.node;
    std::vector<int64_t> shape = c.shape;
    for (const std::string& s : steps) {
      if (s == "bias" || s == "residual") {
        TESSERA_CHECK(next_input < n.inputs.size(), "export: node '" + n.name + "' lacks an epilogue input");
        ValueId in = n.inputs[next_input++];
        std::string operand = name_of(in);
        if (s == "bias" && conv) {
          std::vector<int64_t> target(shape.size(), 1);
          TESSERA_CHECK(shape.size() >= 2, "export: FusedConv output of rank < 2");
          target[1] = shape[1];
          std::string target_name = unique_name(base_name(n) + "/bias_shape");
          onnx::TensorProto* p = graph_->add_initializer();
          p->set_name(target_name);
          p->set_data_type(onnx::TensorProto::INT64);
          p->add_dims(static_cast<int64_t>(target.size()));
          p->set_raw_data(encode_raw(Tensor::ints({static_cast<int64_t>(target.size())}, target)));
          std::string reshaped;
          emit_temp(n, "Reshape", {operand, target_name}, "bias_reshape", g_.value(in).type, target,
                    &reshaped);
          operand = reshaped;
        }
        step(c, "Add", {c.value, operand}, s, shape);
      } else if (s == "relu") {
        step(c, "Relu", {c.value}, "relu", shape);
      } else if (s == "gelu") {
        gelu(c, false);
      } else {
        TESSERA_CHECK(false, "export: node '" + n.name + "' has epilogue step '" + s + "'");
      }
    }
    TESSERA_CHECK(next_input == n.inputs.size(),
                  "export: node '" + n.name + "' has inputs its epilogue does not read");
  }

  Chain chain_of(const Node& n) {
    Chain c;
    c.node = &n;
    TESSERA_CHECK(n.outputs.size() == 1, "export: node '" + n.name + "' should have one output");
    c.type = g_.value(n.outputs[0]).type;
    return c;
  }

  void write_fused_matmul(const Node& n) {
    TESSERA_CHECK(n.inputs.size() >= 2, "export: FusedMatMul '" + n.name + "' has fewer than two inputs");
    Chain c = chain_of(n);
    const std::vector<int64_t>& y = g_.value(n.outputs[0]).shape;
    std::string operands[2];
    const char* steps[2] = {"transpose_a", "transpose_b"};
    const char* attrs[2] = {"trans_a", "trans_b"};
    for (int k = 0; k < 2; ++k) {
      const Value& v = g_.value(n.inputs[static_cast<size_t>(k)]);
      operands[k] = name_of(n.inputs[static_cast<size_t>(k)]);
      if (n.attr_int(attrs[k], 0) == 0) continue;
      size_t rank = v.shape.size();
      TESSERA_CHECK(rank >= 2, "export: FusedMatMul '" + n.name + "' transposes an operand of rank < 2");
      std::vector<int64_t> perm(rank), shape = v.shape;
      std::iota(perm.begin(), perm.end(), 0);
      std::swap(perm[rank - 1], perm[rank - 2]);
      std::swap(shape[rank - 1], shape[rank - 2]);
      std::string out;
      set_attr(emit_temp(n, "Transpose", {operands[k]}, steps[k], v.type, shape, &out), "perm", perm);
      operands[k] = out;
    }
    step(c, "MatMul", {operands[0], operands[1]}, "matmul", y);
    if (const double alpha = n.attr_float("alpha", 1.0); alpha != 1.0) step(c, "Mul", {c.value, scalar(c.type, alpha, "alpha")}, "alpha", y);
    epilogue(c, split_steps(n.attr_string("epilogue", "")), 2, false);
    finish(c);
  }

  void write_fused_conv(const Node& n) {
    TESSERA_CHECK(n.inputs.size() >= 2, "export: FusedConv '" + n.name + "' has fewer than two inputs");
    Chain c = chain_of(n);
    std::vector<std::string> steps = split_steps(n.attr_string("epilogue", ""));
    std::vector<std::string> inputs = {name_of(n.inputs[0]), name_of(n.inputs[1])};
    bool bias_in_conv = !steps.empty() && steps[0] == "bias";
    if (bias_in_conv) {
      TESSERA_CHECK(n.inputs.size() >= 3, "export: FusedConv '" + n.name + "' lacks its bias");
      inputs.push_back(name_of(n.inputs[2]));
      steps.erase(steps.begin());
    }
    onnx::NodeProto* conv = step(c, "Conv", inputs, "conv", g_.value(n.outputs[0]).shape);
    for (const auto& [key, value] : n.attrs) {
      if (key != "epilogue") set_attr(conv, key, value);
    }
    epilogue(c, steps, bias_in_conv ? 3 : 2, true);
    finish(c);
  }

  void write_eltwise_chain(const Node& n) {
    static const std::map<std::string, std::string> kBinary = {
        {"add", "Add"}, {"sub", "Sub"}, {"mul", "Mul"}, {"div", "Div"}, {"max", "Max"}, {"min", "Min"}};
    static const std::map<std::string, std::string> kUnary = {{"relu", "Relu"}, {"sigmoid", "Sigmoid"},
                                                              {"tanh", "Tanh"}, {"exp", "Exp"},
                                                              {"neg", "Neg"},   {"abs", "Abs"}};
    TESSERA_CHECK(!n.inputs.empty(), "export: EltwiseChain '" + n.name + "' has no input");
    Chain c = chain_of(n);
    c.value = name_of(n.inputs[0]);
    c.shape = g_.value(n.inputs[0]).shape;
    size_t next = 1;
    for (const std::string& s : split_steps(n.attr_string("ops", ""))) {
      if (auto b = kBinary.find(s); b != kBinary.end()) {
        TESSERA_CHECK(next < n.inputs.size(), "export: EltwiseChain '" + n.name + "' lacks an operand");
        ValueId rhs = n.inputs[next++];
        step(c, b->second, {c.value, name_of(rhs)}, s, broadcast(c.shape, g_.value(rhs).shape));
      } else if (auto u = kUnary.find(s); u != kUnary.end()) {
        step(c, u->second, {c.value}, s, c.shape);
      } else if (s == "gelu") {
        gelu(c, false);
      } else {
        TESSERA_CHECK(false, "export: EltwiseChain '" + n.name + "' has step '" + s + "'");
      }
    }
    TESSERA_CHECK(next == n.inputs.size(), "export: EltwiseChain '" + n.name + "' has inputs no step reads");
    finish(c);
  }

  void write_gelu(const Node& n) {
    TESSERA_CHECK(n.inputs.size() == 1, "export: Gelu '" + n.name + "' should have one input");
    Chain c = chain_of(n);
    c.value = name_of(n.inputs[0]);
    c.shape = g_.value(n.inputs[0]).shape;
    gelu(c, n.attr_string("approximate", "none") == "tanh");
    finish(c);
  }

  void write_plain(const Node& n) {
    std::vector<std::string> inputs, outputs;
    for (ValueId v : n.inputs) inputs.push_back(v == kNone ? std::string() : name_of(v));
    while (!inputs.empty() && inputs.back().empty()) inputs.pop_back();
    for (ValueId v : n.outputs) outputs.push_back(name_of(v));
    onnx::NodeProto* p = emit(std::string(op_type_name(n.op)), inputs, outputs, n.name);
    bool constant_of_shape = n.op == OpType::kConstantOfShape;
    for (const auto& [key, value] : n.attrs) {
      if (constant_of_shape && (key == "value" || key == "dtype")) continue;
      set_attr(p, key, value);
    }
    if (constant_of_shape && n.has("value")) {
      int64_t dtype = n.attr_int("dtype", onnx::TensorProto::FLOAT);
      std::optional<ElemType> type = elem_type_from_onnx(dtype);
      TESSERA_CHECK(type.has_value(),
                    "export: ConstantOfShape '" + n.name + "' has dtype " + std::to_string(dtype));
      onnx::AttributeProto* a = p->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      onnx::TensorProto* t = a->mutable_t();
      t->set_data_type(static_cast<int32_t>(dtype));
      t->add_dims(1);
      std::string raw;
      store_le(raw, bits_of(*type, n.attr_float("value", 0)), elem_bytes(*type));
      t->set_raw_data(raw);
    }
  }

  void write_opaque(const Node& n) {
    onnx::NodeProto p;
    TESSERA_CHECK(p.ParseFromString(n.attr_string("onnx_node", "")),
                  "export: Opaque node '" + n.name + "' holds no readable onnx_node");
    size_t next = 0;
    for (int k = 0; k < p.input_size(); ++k) {
      if (p.input(k).empty()) continue;
      TESSERA_CHECK(next < n.inputs.size(),
                    "export: Opaque node '" + n.name + "' has fewer inputs than its proto");
      p.set_input(k, name_of(n.inputs[next++]));
    }
    std::vector<std::string> captures = captures_of(p);
    TESSERA_CHECK(n.inputs.size() == next + captures.size(),
                  "export: Opaque node '" + n.name + "' has inputs its proto and subgraphs do not read");
    for (size_t k = 0; k < captures.size(); ++k) bind_capture(n, captures[k], n.inputs[next + k]);
    next = 0;
    for (int k = 0; k < p.output_size(); ++k) {
      if (p.output(k).empty()) continue;
      TESSERA_CHECK(next < n.outputs.size(),
                    "export: Opaque node '" + n.name + "' has fewer outputs than its proto");
      p.set_output(k, name_of(n.outputs[next++]));
    }
    TESSERA_CHECK(next == n.outputs.size(),
                  "export: Opaque node '" + n.name + "' has more outputs than its proto");
    p.set_name(n.name);
    if (!is_default_domain(p.domain())) {
      int64_t version = n.attr_int("onnx_domain_version", 1);
      auto [it, inserted] = domains_.emplace(p.domain(), version);
      if (!inserted) it->second = std::max(it->second, version);
    }
    *graph_->add_node() = std::move(p);
  }

  // A subgraph reads `capture` by name; if the graph now calls that tensor otherwise, an
  // Identity gives it the name back.
  void bind_capture(const Node& n, const std::string& capture, ValueId source) {
    const std::string& name = name_of(source);
    if (name == capture) return;
    auto it = bound_captures_.find(capture);
    if (it != bound_captures_.end()) {
      if (it->second == source) return;
    } else if (!used_names_.count(capture)) {
      used_names_.insert(capture);
      bound_captures_[capture] = source;
      emit("Identity", {name}, {capture}, unique_name(base_name(n) + "/capture"));
      temp_infos_.push_back({value_info(capture, g_.value(source).type, g_.value(source).shape), false});
      return;
    }
    throw UserError("graph " + in_quotes(g_.model_name) + ": cannot export Opaque node " + in_quotes(n.name) +
                    ": its subgraph reads tensor " + in_quotes(capture) +
                    ", a name that now belongs to another tensor");
  }

  void write_node(const Node& n) {
    switch (n.op) {
      case OpType::kFusedMatMul:
        return write_fused_matmul(n);
      case OpType::kFusedConv:
        return write_fused_conv(n);
      case OpType::kEltwiseChain:
        return write_eltwise_chain(n);
      case OpType::kGelu:
        return write_gelu(n);
      case OpType::kOpaque:
        return write_opaque(n);
      default:
        return write_plain(n);
    }
  }

  void write_outputs(const std::vector<NodeId>& order) {
    std::unordered_set<ValueId> written;
    for (ValueId v : g_.outputs()) {
      std::string name = name_of(v);
      if (!written.insert(v).second) {
        // ONNX names each output once; a value listed twice is copied.
        std::string copy = unique_name(name + "/copy");
        emit("Identity", {name}, {copy}, copy);
        name = copy;
      }
      *graph_->add_output() = value_info(name, g_.value(v).type, g_.value(v).shape);
    }
    for (NodeId id : order) {
      for (ValueId v : g_.node(id).outputs) {
        if (!written.count(v))
          *graph_->add_value_info() = value_info(name_of(v), g_.value(v).type, g_.value(v).shape);
      }
    }
    for (const TempInfo& t : temp_infos_) {
      if (!t.dropped) *graph_->add_value_info() = t.info;
    }
  }

  // onnx's checker (1.12) requires an EXTERNAL tensor's file to exist next to the model, and
  // a stripped weight has none. It does not compare a tensor's data size with its shape, so
  // checking the model while stripped initializers still hold zeros of their full size
  // checks everything that the stripped model states; then the zeros are dropped.
  void check_and_strip() {
    std::string error;
    try {
      onnx::checker::check_model(model_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    TESSERA_CHECK(error.empty(), "export of graph '" + g_.model_name + "' fails onnx's checker: " + error);
    for (int index : stripped_) {
      onnx::TensorProto* p = graph_->mutable_initializer(index);
      size_t bytes = p->raw_data().size();
      p->clear_raw_data();
      p->set_data_location(onnx::TensorProto::EXTERNAL);
      for (const auto& [key, value] :
           {std::pair<std::string, std::string>{"location", std::string(kStrippedLocation)},
            {"offset", "0"},
            {"length", std::to_string(bytes)}}) {
        auto* entry = p->add_external_data();
        entry->set_key(key);
        entry->set_value(value);
      }
    }
  }

  const Graph& g_;
  const ExportOptions& options_;
  onnx::ModelProto model_;
  onnx::GraphProto* graph_;
  std::vector<std::string> names_;              // export name per value ("" = not written)
  std::unordered_set<std::string> used_names_;  // every tensor name written so far
  std::map<std::string, int64_t> domains_;      // non-default opset imports
  std::vector<int> stripped_;                   // initializer indices to strip after the check
  std::map<std::pair<std::string, int>, std::string> scalars_;  // (constant, type) -> initializer
  std::vector<TempInfo> temp_infos_;                            // value_info of decomposition intermediates
  std::unordered_map<std::string, ValueId> bound_captures_;     // subgraph names bound by an Identity
};


}  // namespace

std::string export_onnx(const Graph& g, const ExportOptions& options) {
  return Exporter(g, options).run();
}

void write_onnx(const Graph& g, const std::string& path, const ExportOptions& options) {
  write_file_atomic(path, export_onnx(g, options), "the ONNX model");
}


}  // namespace tessera::graph
