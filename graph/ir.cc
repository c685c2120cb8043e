#include "graph/ir.h"

#include <algorithm>
#include <array>
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/depth_first_search.hpp>
#include <cstring>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

using Topology =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, boost::no_property, TopologyEdge>;

struct OpName {
  OpType op;
  std::string_view name;
};

constexpr std::array kOpNames = {
    OpName{OpType::kConv, "Conv"},
    OpName{OpType::kMatMul, "MatMul"},
    OpName{OpType::kGemm, "Gemm"},
    OpName{OpType::kSoftmax, "Softmax"},
    OpName{OpType::kLayerNormalization, "LayerNormalization"},
    OpName{OpType::kBatchNormalization, "BatchNormalization"},
    OpName{OpType::kAdd, "Add"},
    OpName{OpType::kSub, "Sub"},
    OpName{OpType::kMul, "Mul"},
    OpName{OpType::kDiv, "Div"},
    OpName{OpType::kPow, "Pow"},
    OpName{OpType::kSqrt, "Sqrt"},
    OpName{OpType::kExp, "Exp"},
    OpName{OpType::kNeg, "Neg"},
    OpName{OpType::kRelu, "Relu"},
    OpName{OpType::kClip, "Clip"},
    OpName{OpType::kSigmoid, "Sigmoid"},
    OpName{OpType::kTanh, "Tanh"},
    OpName{OpType::kErf, "Erf"},
    OpName{OpType::kGelu, "Gelu"},
    OpName{OpType::kWhere, "Where"},
    OpName{OpType::kCast, "Cast"},
    OpName{OpType::kEqual, "Equal"},
    OpName{OpType::kMax, "Max"},
    OpName{OpType::kMin, "Min"},
    OpName{OpType::kAbs, "Abs"},
    OpName{OpType::kMod, "Mod"},
    OpName{OpType::kTranspose, "Transpose"},
    OpName{OpType::kReshape, "Reshape"},
    OpName{OpType::kFlatten, "Flatten"},
    OpName{OpType::kSqueeze, "Squeeze"},
    OpName{OpType::kUnsqueeze, "Unsqueeze"},
    OpName{OpType::kConcat, "Concat"},
    OpName{OpType::kSplit, "Split"},
    OpName{OpType::kSlice, "Slice"},
    OpName{OpType::kGather, "Gather"},
    OpName{OpType::kGatherElements, "GatherElements"},
    OpName{OpType::kExpand, "Expand"},
    OpName{OpType::kShape, "Shape"},
    OpName{OpType::kConstantOfShape, "ConstantOfShape"},
    OpName{OpType::kIdentity, "Identity"},
    OpName{OpType::kConstant, "Constant"},
    OpName{OpType::kMaxPool, "MaxPool"},
    OpName{OpType::kAveragePool, "AveragePool"},
    OpName{OpType::kGlobalAveragePool, "GlobalAveragePool"},
    OpName{OpType::kReduceMean, "ReduceMean"},
    OpName{OpType::kFusedMatMul, "FusedMatMul"},
    OpName{OpType::kFusedConv, "FusedConv"},
    OpName{OpType::kEltwiseChain, "EltwiseChain"},
    OpName{OpType::kOpaque, "Opaque"},
    OpName{OpType::kLess, "Less"},
    OpName{OpType::kGreater, "Greater"},
    OpName{OpType::kLessOrEqual, "LessOrEqual"},
    OpName{OpType::kGreaterOrEqual, "GreaterOrEqual"},
    OpName{OpType::kAnd, "And"},
    OpName{OpType::kOr, "Or"},
    OpName{OpType::kXor, "Xor"},
    OpName{OpType::kNot, "Not"},
    OpName{OpType::kIsNaN, "IsNaN"},
    OpName{OpType::kIsInf, "IsInf"},
    OpName{OpType::kReciprocal, "Reciprocal"},
    OpName{OpType::kLog, "Log"},
    OpName{OpType::kFloor, "Floor"},
    OpName{OpType::kCeil, "Ceil"},
    OpName{OpType::kRange, "Range"},
    OpName{OpType::kTrilu, "Trilu"},
    OpName{OpType::kCumSum, "CumSum"},
    OpName{OpType::kReduceSum, "ReduceSum"},
    OpName{OpType::kReduceMax, "ReduceMax"},
    OpName{OpType::kReduceMin, "ReduceMin"},
    OpName{OpType::kReduceProd, "ReduceProd"},
    OpName{OpType::kPad, "Pad"},
    OpName{OpType::kTile, "Tile"},
    OpName{OpType::kGatherND, "GatherND"},
    OpName{OpType::kScatterND, "ScatterND"},
    OpName{OpType::kHardSigmoid, "HardSigmoid"},
    OpName{OpType::kHardSwish, "HardSwish"},
    OpName{OpType::kDropout, "Dropout"},
    OpName{OpType::kEinsum, "Einsum"},
};

// FNV-1a over raw bytes, continued from `h`.
uint64_t mix(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t k = 0; k < bytes; ++k) {
    h ^= p[k];
    h *= 1099511628211ull;
  }
  return h;
}
template <typename T>
uint64_t mix(uint64_t h, const T& v) {
  static_assert(std::is_trivially_copyable_v<T>);
  return mix(h, &v, sizeof(v));
}
uint64_t mix(uint64_t h, std::string_view s) {
  h = mix(h, s.size());
  return mix(h, s.data(), s.size());
}
template <typename T>
uint64_t mix(uint64_t h, const std::vector<T>& v) {
  h = mix(h, v.size());
  return v.empty() ? h : mix(h, v.data(), v.size() * sizeof(T));
}
constexpr uint64_t kHashSeed = 14695981039346656037ull;

// A word at a time: weights run to hundreds of megabytes.
uint64_t mix_words(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t k = 0;
  for (; k + 8 <= bytes; k += 8) {
    uint64_t w;
    std::memcpy(&w, p + k, 8);
    h = (h ^ w) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
  }
  return mix(h, p + k, bytes - k);
}

uint64_t hash_tensor(const Tensor& t) {
  uint64_t h = mix(kHashSeed, static_cast<int>(t.type));
  h = mix(h, t.shape);
  h = mix_words(h, t.f.data(), t.f.size() * sizeof(float));
  return mix_words(h, t.i.data(), t.i.size() * sizeof(int64_t));
}

uint64_t hash_attrs(uint64_t h, const Attrs& attrs) {
  for (const auto& [name, value] : attrs) {
    h = mix(h, std::string_view(name));
    h = mix(h, value.index());
    std::visit(
        [&h](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            h = mix(h, std::string_view(x));
          } else {
            h = mix(h, x);
          }
        },
        value);
  }
  return h;
}

Topology build_topology(const Graph& g) {
  Topology t(g.nodes().size());
  for (size_t n = 0; n < g.nodes().size(); ++n) {
    const Node& node = g.nodes()[n];
    if (node.removed) continue;
    for (size_t slot = 0; slot < node.inputs.size(); ++slot) {
      ValueId v = node.inputs[slot];
      if (v == kNone) continue;
      NodeId p = g.value(v).producer;
      if (p != kNone && !g.node(p).removed) {
        boost::add_edge(static_cast<size_t>(p), n, TopologyEdge{v, static_cast<int>(slot)}, t);
      }
    }
  }
  return t;
}

// Depth-first finish order (reverse topological) and the first back edge's target.
struct OrderVisitor : boost::default_dfs_visitor {
  std::vector<NodeId>* finished;
  NodeId* cycle_at;
  void finish_vertex(size_t v, const Topology&) const { finished->push_back(static_cast<NodeId>(v)); }
  void back_edge(boost::graph_traits<Topology>::edge_descriptor e, const Topology& t) const {
    if (*cycle_at == kNone) *cycle_at = static_cast<NodeId>(boost::target(e, t));
  }
};

}  // namespace

uint64_t folded_hash(OpType op, const Attrs& attrs, std::span<const uint64_t> input_hashes, size_t output) {
  uint64_t h = mix(mix(kHashSeed, std::string_view("folded")), static_cast<int>(op));
  h = hash_attrs(h, attrs);
  for (uint64_t x : input_hashes) h = mix(h, x);
  return mix(h, output);
}

std::string_view elem_type_name(ElemType t) {
  switch (t) {
    case ElemType::kF32: return "f32";
    case ElemType::kF16: return "f16";
    case ElemType::kBF16: return "bf16";
    case ElemType::kF64: return "f64";
    case ElemType::kI64: return "i64";
    case ElemType::kI32: return "i32";
    case ElemType::kI8: return "i8";
    case ElemType::kU8: return "u8";
    case ElemType::kBool: return "bool";
  }
  TESSERA_UNREACHABLE("ElemType");
}

std::optional<ElemType> elem_type_from_onnx(int64_t code) {
  switch (code) {
    case 1: return ElemType::kF32;
    case 10: return ElemType::kF16;
    case 16: return ElemType::kBF16;
    case 11: return ElemType::kF64;
    case 7: return ElemType::kI64;
    case 6: return ElemType::kI32;
    case 3: return ElemType::kI8;
    case 2: return ElemType::kU8;
    case 9: return ElemType::kBool;
    default: return std::nullopt;
  }
}

bool is_float(ElemType t) {
  return t == ElemType::kF32 || t == ElemType::kF16 || t == ElemType::kBF16 || t == ElemType::kF64;
}

int64_t elem_bytes(ElemType t) {
  switch (t) {
    case ElemType::kF64:
    case ElemType::kI64: return 8;
    case ElemType::kF32:
    case ElemType::kI32: return 4;
    case ElemType::kF16:
    case ElemType::kBF16: return 2;
    case ElemType::kI8:
    case ElemType::kU8:
    case ElemType::kBool: return 1;
  }
  TESSERA_UNREACHABLE("ElemType");
}

std::optional<int64_t> bounded_elements(std::span<const int64_t> shape, int64_t limit) {
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) return std::nullopt;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end())
    return limit >= 0 ? std::optional<int64_t>(0) : std::nullopt;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > limit / d) return std::nullopt;
    n *= d;
  }
  if (n > limit) return std::nullopt;
  return n;
}

int64_t Tensor::elements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

double Tensor::at(int64_t k) const {
  return is_float(type) ? static_cast<double>(f.at(static_cast<size_t>(k)))
                        : static_cast<double>(i.at(static_cast<size_t>(k)));
}

Tensor Tensor::floats(std::vector<int64_t> shape, std::vector<float> values, ElemType t) {
  Tensor x;
  x.type = t;
  x.shape = std::move(shape);
  x.f = std::move(values);
  TESSERA_CHECK(is_float(t) && static_cast<int64_t>(x.f.size()) == x.elements(), "Tensor::floats: size or type");
  return x;
}

Tensor Tensor::ints(std::vector<int64_t> shape, std::vector<int64_t> values, ElemType t) {
  Tensor x;
  x.type = t;
  x.shape = std::move(shape);
  x.i = std::move(values);
  TESSERA_CHECK(!is_float(t) && static_cast<int64_t>(x.i.size()) == x.elements(), "Tensor::ints: size or type");
  return x;
}

std::string_view op_type_name(OpType op) {
  for (const OpName& n : kOpNames) {
    if (n.op == op) return n.name;
  }
  TESSERA_UNREACHABLE("OpType");
}

std::optional<std::string_view> chain_step_name(OpType op) {
  switch (op) {
    case OpType::kAdd: return "add";
    case OpType::kSub: return "sub";
    case OpType::kMul: return "mul";
    case OpType::kDiv: return "div";
    case OpType::kMax: return "max";
    case OpType::kMin: return "min";
    case OpType::kRelu: return "relu";
    case OpType::kGelu: return "gelu";
    case OpType::kSigmoid: return "sigmoid";
    case OpType::kTanh: return "tanh";
    case OpType::kExp: return "exp";
    case OpType::kNeg: return "neg";
    case OpType::kAbs: return "abs";
    default: return std::nullopt;
  }
}

std::optional<OpType> op_type_from_name(std::string_view name) {
  for (const OpName& n : kOpNames) {
    if (n.name == name) return n.op;
  }
  return std::nullopt;
}

int64_t Value::elements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

int64_t Value::bytes() const { return elements() * elem_bytes(type); }

bool Node::has(std::string_view attr) const { return attrs.find(std::string(attr)) != attrs.end(); }

int64_t Node::attr_int(std::string_view attr, int64_t fallback) const {
  auto it = attrs.find(std::string(attr));
  if (it == attrs.end()) return fallback;
  if (const auto* v = std::get_if<int64_t>(&it->second)) return *v;
  throw UserError("node '" + name + "' (" + std::string(op_type_name(op)) + "): attribute '" + std::string(attr) +
                  "' is not an integer");
}

double Node::attr_float(std::string_view attr, double fallback) const {
  auto it = attrs.find(std::string(attr));
  if (it == attrs.end()) return fallback;
  if (const auto* v = std::get_if<double>(&it->second)) return *v;
  if (const auto* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  throw UserError("node '" + name + "' (" + std::string(op_type_name(op)) + "): attribute '" + std::string(attr) +
                  "' is not a number");
}

std::string Node::attr_string(std::string_view attr, std::string_view fallback) const {
  auto it = attrs.find(std::string(attr));
  if (it == attrs.end()) return std::string(fallback);
  if (const auto* v = std::get_if<std::string>(&it->second)) return *v;
  throw UserError("node '" + name + "' (" + std::string(op_type_name(op)) + "): attribute '" + std::string(attr) +
                  "' is not a string");
}

std::vector<int64_t> Node::attr_ints(std::string_view attr, std::vector<int64_t> fallback) const {
  auto it = attrs.find(std::string(attr));
  if (it == attrs.end()) return fallback;
  if (const auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  throw UserError("node '" + name + "' (" + std::string(op_type_name(op)) + "): attribute '" + std::string(attr) +
                  "' is not a list of integers");
}

ValueId Graph::add_value(Value v) {
  values_.push_back(std::move(v));
  return static_cast<ValueId>(values_.size() - 1);
}

std::string Graph::fresh_name(std::string_view prefix) {
  // Names only need to be unique among values; a counter past every name this graph made
  // is enough because imported names never end in "~N".
  return std::string(prefix) + "~" + std::to_string(next_name_++);
}

ValueId Graph::add_input(std::string name, ElemType type, std::vector<int64_t> shape) {
  Value v;
  v.name = std::move(name);
  v.type = type;
  v.shape = std::move(shape);
  ValueId id = add_value(std::move(v));
  inputs_.push_back(id);
  return id;
}

ValueId Graph::add_constant(std::string name, Tensor value, bool synthetic, std::optional<uint64_t> content_hash) {
  uint64_t hash = content_hash ? *content_hash : hash_tensor(value);
  return add_constant(std::move(name), std::make_shared<const Tensor>(std::move(value)), synthetic, hash);
}

ValueId Graph::add_constant(std::string name, std::shared_ptr<const Tensor> value, bool synthetic, uint64_t content_hash) {
  TESSERA_CHECK(value != nullptr, "add_constant of no tensor");
  Value v;
  v.name = std::move(name);
  v.type = value->type;
  v.shape = value->shape;
  v.content_hash = content_hash;
  v.constant = std::move(value);
  v.synthetic = synthetic;
  return add_value(std::move(v));
}

std::vector<ValueId> Graph::add_node(OpType op, std::vector<ValueId> inputs, Attrs attrs, std::string name,
                                     int num_outputs) {
  TESSERA_CHECK(op != OpType::kOpaque, "Opaque nodes need their output shapes: use add_node_with_outputs");
  std::vector<InputInfo> info;
  info.reserve(inputs.size());
  for (ValueId v : inputs) {
    InputInfo in;
    if (v == kNone) {
      in.present = false;
    } else {
      const Value& val = value(v);
      in.type = val.type;
      in.shape = val.shape;
      in.constant = val.constant.get();
    }
    info.push_back(std::move(in));
  }
  auto outputs = infer_node(op, attrs, info, num_outputs);
  if (name.empty()) name = fresh_name(op_type_name(op));
  std::vector<std::string> names;
  for (size_t k = 0; k < outputs.size(); ++k) names.push_back(fresh_name(name));
  return add_node_with_outputs(op, std::move(inputs), std::move(attrs), std::move(name), std::move(outputs),
                               std::move(names));
}

std::vector<ValueId> Graph::add_node_with_outputs(OpType op, std::vector<ValueId> inputs, Attrs attrs,
                                                  std::string name,
                                                  std::vector<std::pair<ElemType, std::vector<int64_t>>> outputs,
                                                  std::vector<std::string> output_names) {
  for (ValueId v : inputs) {
    TESSERA_CHECK(v == kNone || (v >= 0 && static_cast<size_t>(v) < values_.size()), "add_node: input id");
  }
  Node node;
  node.op = op;
  node.name = name.empty() ? fresh_name(op_type_name(op)) : std::move(name);
  node.inputs = std::move(inputs);
  node.attrs = std::move(attrs);
  NodeId id = static_cast<NodeId>(nodes_.size());
  for (size_t k = 0; k < outputs.size(); ++k) {
    Value v;
    v.name = k < output_names.size() && !output_names[k].empty() ? output_names[k] : fresh_name(node.name);
    v.type = outputs[k].first;
    v.shape = std::move(outputs[k].second);
    v.producer = id;
    node.outputs.push_back(add_value(std::move(v)));
  }
  nodes_.push_back(std::move(node));
  return nodes_.back().outputs;
}

void Graph::add_output(ValueId v) {
  TESSERA_CHECK(v >= 0 && static_cast<size_t>(v) < values_.size(), "add_output: value id");
  outputs_.push_back(v);
}

void Graph::replace_uses(ValueId from, ValueId to) {
  TESSERA_CHECK(value(from).shape == value(to).shape && value(from).type == value(to).type,
                "replace_uses: '" + value(from).name + "' and '" + value(to).name + "' differ in type or shape");
  for (Node& n : nodes_) {
    if (n.removed) continue;
    std::replace(n.inputs.begin(), n.inputs.end(), from, to);
  }
  std::replace(outputs_.begin(), outputs_.end(), from, to);
}

void Graph::remove_node(NodeId n) { node(n).removed = true; }

bool Graph::inputs_constant(const Node& n) const {
  return std::all_of(n.inputs.begin(), n.inputs.end(), [&](ValueId v) { return v == kNone || value(v).constant; });
}

int Graph::live_nodes() const {
  return static_cast<int>(std::count_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return !n.removed; }));
}

std::vector<NodeId> Graph::topological_order() const {
  Topology t = build_topology(*this);
  std::vector<NodeId> finished;
  NodeId cycle_at = kNone;
  OrderVisitor visitor;
  visitor.finished = &finished;
  visitor.cycle_at = &cycle_at;
  boost::depth_first_search(t, boost::visitor(visitor));
  if (cycle_at != kNone) {
    throw UserError("graph '" + model_name + "' has a cycle through node '" + node(cycle_at).name + "'");
  }
  std::vector<NodeId> order;
  order.reserve(finished.size());
  for (auto it = finished.rbegin(); it != finished.rend(); ++it) {
    if (!node(*it).removed) order.push_back(*it);
  }
  return order;
}

std::vector<std::vector<NodeId>> Graph::consumers() const {
  std::vector<std::vector<NodeId>> users(values_.size());
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (nodes_[n].removed) continue;
    for (ValueId v : nodes_[n].inputs) {
      if (v == kNone) continue;
      auto& u = users[static_cast<size_t>(v)];
      if (u.empty() || u.back() != static_cast<NodeId>(n)) u.push_back(static_cast<NodeId>(n));
    }
  }
  return users;
}

bool Graph::reaches(NodeId from, NodeId to) const {
  if (from == to) return true;
  // Walk backwards from `to` through producers: graphs are shallow next to their width, and
  // a search is limited to `to`'s ancestors.
  std::vector<char> seen(nodes_.size(), 0);
  std::vector<NodeId> stack{to};
  seen[static_cast<size_t>(to)] = 1;
  while (!stack.empty()) {
    NodeId n = stack.back();
    stack.pop_back();
    for (ValueId v : node(n).inputs) {
      if (v == kNone) continue;
      NodeId p = value(v).producer;
      if (p == kNone || node(p).removed || seen[static_cast<size_t>(p)]) continue;
      if (p == from) return true;
      seen[static_cast<size_t>(p)] = 1;
      stack.push_back(p);
    }
  }
  return false;
}

std::vector<NodeId> Graph::output_cone() const {
  // 0: not seen, 1: on the walk's stack, 2: done.
  std::vector<char> state(nodes_.size(), 0);
  std::vector<NodeId> order;
  std::vector<std::pair<NodeId, size_t>> stack;
  for (ValueId out : outputs_) {
    NodeId root = value(out).producer;
    if (root == kNone || state[static_cast<size_t>(root)] == 2) continue;
    stack.push_back({root, 0});
    state[static_cast<size_t>(root)] = 1;
    while (!stack.empty()) {
      auto& [n, next] = stack.back();
      const Node& node = nodes_[static_cast<size_t>(n)];
      TESSERA_CHECK(!node.removed, "a graph output depends on node '" + node.name + "', which was removed");
      if (next == node.inputs.size()) {
        state[static_cast<size_t>(n)] = 2;
        order.push_back(n);
        stack.pop_back();
        continue;
      }
      ValueId in = node.inputs[next++];
      if (in == kNone) continue;
      NodeId p = value(in).producer;
      if (p == kNone || state[static_cast<size_t>(p)] == 2) continue;
      if (state[static_cast<size_t>(p)] == 1) {
        throw UserError("graph '" + model_name + "' has a cycle through node '" + nodes_[static_cast<size_t>(p)].name +
                        "'");
      }
      state[static_cast<size_t>(p)] = 1;
      stack.push_back({p, 0});
    }
  }
  return order;
}

void Graph::compact() {
  std::vector<NodeId> order = output_cone();
  std::vector<char> live_value(values_.size(), 0);
  for (ValueId v : inputs_) live_value[static_cast<size_t>(v)] = 1;
  for (ValueId v : outputs_) live_value[static_cast<size_t>(v)] = 1;
  for (NodeId n : order) {
    for (ValueId v : nodes_[static_cast<size_t>(n)].inputs) {
      if (v != kNone) live_value[static_cast<size_t>(v)] = 1;
    }
    for (ValueId v : nodes_[static_cast<size_t>(n)].outputs) live_value[static_cast<size_t>(v)] = 1;
  }
  std::vector<ValueId> value_map(values_.size(), kNone);
  std::vector<Value> values;
  values.reserve(values_.size());
  for (size_t v = 0; v < values_.size(); ++v) {
    if (!live_value[v]) continue;
    value_map[v] = static_cast<ValueId>(values.size());
    values.push_back(std::move(values_[v]));
  }
  std::vector<Node> nodes;
  nodes.reserve(order.size());
  for (NodeId old : order) {
    Node n = std::move(nodes_[static_cast<size_t>(old)]);
    NodeId id = static_cast<NodeId>(nodes.size());
    for (ValueId& v : n.inputs) {
      if (v != kNone) v = value_map[static_cast<size_t>(v)];
    }
    for (ValueId& v : n.outputs) {
      v = value_map[static_cast<size_t>(v)];
      values[static_cast<size_t>(v)].producer = id;
    }
    nodes.push_back(std::move(n));
  }
  for (ValueId& v : inputs_) v = value_map[static_cast<size_t>(v)];
  for (ValueId& v : outputs_) v = value_map[static_cast<size_t>(v)];
  nodes_ = std::move(nodes);
  values_ = std::move(values);
}

uint64_t Graph::structural_hash() const {
  std::vector<uint64_t> h(values_.size(), 0);
  for (size_t k = 0; k < inputs_.size(); ++k) {
    const Value& v = value(inputs_[k]);
    uint64_t x = mix(mix(kHashSeed, std::string_view("input")), k);
    x = mix(x, static_cast<int>(v.type));
    h[static_cast<size_t>(inputs_[k])] = mix(x, v.shape);
  }
  for (size_t v = 0; v < values_.size(); ++v) {
    if (values_[v].constant) h[v] = mix(mix(kHashSeed, std::string_view("const")), values_[v].content_hash);
  }
  for (NodeId n : output_cone()) {
    const Node& node = nodes_[static_cast<size_t>(n)];
    uint64_t x = mix(kHashSeed, static_cast<int>(node.op));
    x = hash_attrs(x, node.attrs);
    for (ValueId in : node.inputs) x = mix(x, in == kNone ? uint64_t{0} : h[static_cast<size_t>(in)]);
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      const Value& out = value(node.outputs[k]);
      uint64_t y = mix(mix(x, k), static_cast<int>(out.type));
      h[static_cast<size_t>(node.outputs[k])] = mix(y, out.shape);
    }
  }
  uint64_t total = kHashSeed;
  for (ValueId v : outputs_) total = mix(total, h[static_cast<size_t>(v)]);
  return total;
}

}  // namespace tessera::graph
