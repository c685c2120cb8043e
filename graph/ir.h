// Graph IR: a tensor program as operators (nodes) joined by tensors (values), the unit the
// graph rewrites and the graph search work on.
//
// Storage is two arrays, nodes and values, addressed by index; a node names its input and
// output values, a value names its producer. topology() gives the same program as a
// Boost.Graph adjacency list (operators as vertices, one edge per tensor use), which the
// structural algorithms use: topological order, cycle detection, reachability.
//
// Operators keep ONNX's names, attributes and input order (opset 13-17 semantics), so an
// imported model round-trips. Tessera adds three fused operators the kernel families run as
// one kernel (FusedMatMul, FusedConv, EltwiseChain, contracts below) and Opaque, an operator
// it does not model: it keeps its shapes and its ONNX text, is never matched by a rule, and
// is never reordered across.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tessera::graph {

/// Element type of a graph tensor (ONNX's types that Tessera reads).
enum class ElemType { kF32, kF16, kBF16, kF64, kI64, kI32, kI8, kU8, kBool };

/// "f32", "f16", "bf16", "f64", "i64", "i32", "i8", "u8", "bool".
std::string_view elem_type_name(ElemType t);
/// The type of an ONNX TensorProto data type number (1 float, 10 float16, 16 bfloat16,
/// 11 double, 7 int64, 6 int32, 3 int8, 2 uint8, 9 bool), or nullopt for the others.
std::optional<ElemType> elem_type_from_onnx(int64_t code);
/// Floating types keep values in Tensor::f, the others in Tensor::i.
bool is_float(ElemType t);
/// Bytes per element in memory (bool: 1).
int64_t elem_bytes(ElemType t);
/// product(shape) when every dimension is >= 0 and the product is at most `limit`, checked
/// before each multiplication so that no product overflows; nullopt otherwise. For sizes
/// that come from input files, before anything of that size is allocated.
std::optional<int64_t> bounded_elements(std::span<const int64_t> shape, int64_t limit = INT64_MAX);

/// A host tensor, row-major. Floating types hold product(shape) values in `f` (computed in
/// f32 whatever the storage type), integer and bool types hold them in `i` (bool as 0/1).
struct Tensor {
  ElemType type = ElemType::kF32;
  std::vector<int64_t> shape;  ///< extent per dimension, outermost first; {} is a scalar
  std::vector<float> f;        ///< values of a floating tensor
  std::vector<int64_t> i;      ///< values of an integer or bool tensor
  /// product(shape) (1 for a scalar).
  int64_t elements() const;
  /// Element `k` as a double, whichever array holds it.
  double at(int64_t k) const;
  static Tensor floats(std::vector<int64_t> shape, std::vector<float> values, ElemType t = ElemType::kF32);
  static Tensor ints(std::vector<int64_t> shape, std::vector<int64_t> values, ElemType t = ElemType::kI64);
};

/// Operators. ONNX ones keep ONNX's semantics (opset 13-17); the fused ones are Tessera's.
enum class OpType {
  // ONNX, contractions and normalisations
  kConv, kMatMul, kGemm, kSoftmax, kLayerNormalization, kBatchNormalization,
  // ONNX, elementwise
  kAdd, kSub, kMul, kDiv, kPow, kSqrt, kExp, kNeg, kRelu, kClip, kSigmoid, kTanh, kErf, kGelu,
  kWhere, kCast, kEqual, kMax, kMin, kAbs, kMod,
  // ONNX, data movement and shapes
  kTranspose, kReshape, kFlatten, kSqueeze, kUnsqueeze, kConcat, kSplit, kSlice, kGather, kGatherElements,
  kExpand, kShape, kConstantOfShape, kIdentity, kConstant,
  // ONNX, pooling and reductions
  kMaxPool, kAveragePool, kGlobalAveragePool, kReduceMean,
  // Tessera's fused operators (domain "ai.tessera")
  /// Y = epilogue(op(A) @ op(B)). Inputs: A, B, then one input per "bias" / "residual" step
  /// of the epilogue, in epilogue order. Attributes: trans_a, trans_b (int 0/1: op transposes
  /// the last two dimensions), epilogue (string, steps joined by '+': bias, relu, gelu,
  /// residual; bias is broadcast along the last dimension, residual has Y's shape, gelu is
  /// the exact erf form). Batch dimensions broadcast as in MatMul.
  kFusedMatMul,
  /// Conv (NCHW, ONNX's attributes) followed by an epilogue. Inputs: X, W, then one per
  /// "bias" (shape [K], per output channel) / "residual" (Y's shape) step. Attribute
  /// epilogue as for FusedMatMul.
  kFusedConv,
  /// An elementwise chain: v = x0, then each step of attribute ops (string, names joined by
  /// '+': add sub mul div max min relu gelu sigmoid tanh exp neg abs) updates v; a binary step
  /// reads the next input as its right operand (v = v - x_k). Inputs broadcast as in ONNX.
  kEltwiseChain,
  /// An operator Tessera does not model: attribute "onnx_node" (string) holds its serialised
  /// onnx::NodeProto without names (details in onnx_import.cc); output types and shapes come
  /// from the model.
  kOpaque,
  // ONNX operators of attention masks, index arithmetic and reductions in current exports,
  // added after the rest (structural hashes use the enumerators' values): comparisons and
  // logic to bool, IsNaN / IsInf, elementwise Reciprocal, Log, Floor, Ceil; Range, Trilu,
  // CumSum; ReduceSum / ReduceMax / ReduceMin / ReduceProd.
  kLess, kGreater, kLessOrEqual, kGreaterOrEqual, kAnd, kOr, kXor, kNot, kIsNaN, kIsInf,
  kReciprocal, kLog, kFloor, kCeil, kRange, kTrilu, kCumSum, kReduceSum, kReduceMax, kReduceMin,
  kReduceProd,
  // ONNX padding, tiling and N-dimensional indexing (appended for the same reason).
  kPad, kTile, kGatherND, kScatterND,
  // MobileNetV3's activations, and Dropout (an identity outside training).
  kHardSigmoid, kHardSwish, kDropout,
  // Einsum (ops_einsum.cc), appended likewise.
  kEinsum,
};

/// ONNX spelling ("Conv", "LayerNormalization", ...) or Tessera's ("FusedMatMul", "Opaque").
std::string_view op_type_name(OpType op);
/// The operator called `name` (as op_type_name spells it), if any.
std::optional<OpType> op_type_from_name(std::string_view name);

/// The EltwiseChain step (and elementwise workload op) an ONNX elementwise operator is:
/// "add", "sub", "mul", "div", "max", "min", "relu", "gelu", "sigmoid", "tanh", "exp", "neg",
/// "abs"; nullopt for any other operator. (Gelu's tanh form and Max/Min with other than two
/// inputs are not chain steps: callers check the node.)
std::optional<std::string_view> chain_step_name(OpType op);

/// An attribute value (ONNX's INT, FLOAT, STRING, INTS, FLOATS).
using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
/// Attributes by name (ordered, so hashing and printing are deterministic).
using Attrs = std::map<std::string, AttrValue>;

/// Index of a node / value in its graph. kNone marks an omitted optional input.
using NodeId = int32_t;
using ValueId = int32_t;
inline constexpr int32_t kNone = -1;

/// A tensor of the graph: a graph input, a constant (initializer) or a node's output.
struct Value {
  std::string name;
  ElemType type = ElemType::kF32;
  std::vector<int64_t> shape;              ///< static shape (every dimension known)
  std::shared_ptr<const Tensor> constant;  ///< the value, for constants; shared between graph copies
  /// The constant's values are made up (the model was stored with its weights stripped):
  /// costs and structure are real, numbers are not. Export writes such tensors stripped.
  bool synthetic = false;
  NodeId producer = kNone;                 ///< the node computing it; kNone for inputs and constants
  uint64_t content_hash = 0;               ///< hash of the constant's values (set by add_constant)
  int64_t elements() const;
  int64_t bytes() const;
};

/// An operator applied to values.
struct Node {
  OpType op = OpType::kIdentity;
  std::string name;
  std::vector<ValueId> inputs;   ///< ONNX input order; kNone for an omitted optional input
  std::vector<ValueId> outputs;  ///< ONNX output order
  Attrs attrs;
  bool removed = false;          ///< dropped by a rewrite (compact() erases it)
  /// The node's cost as the graph search's oracle last gave it [us] (negative: not costed
  /// yet). Copied with the graph, so a rewrite only costs the nodes it adds.
  double cost_us = -1;

  bool has(std::string_view attr) const;
  int64_t attr_int(std::string_view attr, int64_t fallback) const;
  double attr_float(std::string_view attr, double fallback) const;
  std::string attr_string(std::string_view attr, std::string_view fallback) const;
  std::vector<int64_t> attr_ints(std::string_view attr, std::vector<int64_t> fallback = {}) const;
};

/// A hash of an operator applied to constants: what Graph::structural_hash sees for the
/// constant a fold makes, so that folding does not read the result's values again.
uint64_t folded_hash(OpType op, const Attrs& attrs, std::span<const uint64_t> input_hashes, size_t output);

/// Boost.Graph view of a graph: vertex = node id, edge = one use of a value.
struct TopologyEdge {
  ValueId value = kNone;
  int input_slot = 0;  ///< position among the consumer's inputs
};

/// A tensor program. Copies are cheap in constants (shared), linear in nodes and values.
class Graph {
 public:
  /// Adds a graph input of the given type and shape.
  ValueId add_input(std::string name, ElemType type, std::vector<int64_t> shape);
  /// Adds a constant tensor (an initializer). `content_hash` stands for the values in
  /// structural_hash(); by default it is computed from them (linear in their size).
  ValueId add_constant(std::string name, Tensor value, bool synthetic = false,
                       std::optional<uint64_t> content_hash = std::nullopt);
  /// The same over a tensor that may be shared with other graphs; `content_hash` stands for it.
  ValueId add_constant(std::string name, std::shared_ptr<const Tensor> value, bool synthetic, uint64_t content_hash);
  /// Adds a node over existing values; output types and shapes are inferred (infer_node in
  /// ops.h; a UserError if the inputs do not fit the operator). Returns the output ids.
  std::vector<ValueId> add_node(OpType op, std::vector<ValueId> inputs, Attrs attrs = {}, std::string name = {},
                                int num_outputs = 1);
  /// Adds a node whose outputs are given (an Opaque node, whose shapes come from the model).
  std::vector<ValueId> add_node_with_outputs(OpType op, std::vector<ValueId> inputs, Attrs attrs, std::string name,
                                             std::vector<std::pair<ElemType, std::vector<int64_t>>> outputs,
                                             std::vector<std::string> output_names = {});
  /// Marks `v` a graph output (in call order).
  void add_output(ValueId v);

  /// Every use of `from` (node inputs and graph outputs) now reads `to` (same type and shape).
  void replace_uses(ValueId from, ValueId to);
  /// Marks a node removed; compact() erases it and whatever only it used.
  void remove_node(NodeId n);
  /// Drops removed nodes and every node and value no graph output depends on (graph inputs
  /// always stay), renumbering ids; node order becomes topological.
  void compact();

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<Value>& values() const { return values_; }
  const Node& node(NodeId n) const { return nodes_.at(static_cast<size_t>(n)); }
  Node& node(NodeId n) { return nodes_.at(static_cast<size_t>(n)); }
  const Value& value(ValueId v) const { return values_.at(static_cast<size_t>(v)); }
  Value& value(ValueId v) { return values_.at(static_cast<size_t>(v)); }
  const std::vector<ValueId>& inputs() const { return inputs_; }
  const std::vector<ValueId>& outputs() const { return outputs_; }

  /// Live nodes in an order where producers come first (Boost topological_sort); a cycle is
  /// a UserError naming a node on it.
  std::vector<NodeId> topological_order() const;
  /// For each value, the live nodes that read it (each once, in node order).
  std::vector<std::vector<NodeId>> consumers() const;
  /// Whether `to` depends on `from` through live nodes (from == to counts).
  bool reaches(NodeId from, NodeId to) const;
  /// Number of live nodes.
  int live_nodes() const;
  /// Whether every (present) input of `n` is a constant, i.e. `n` can be folded.
  bool inputs_constant(const Node& n) const;
  /// A hash of the program's structure (operators, attributes, shapes, constants' contents),
  /// independent of node and value numbering and names: equal programs hash equal.
  uint64_t structural_hash() const;

  /// Name of the model this graph came from (file name), for messages and the database.
  std::string model_name;
  /// Constants made up for stripped weights are present (see Value::synthetic).
  bool weights_stripped = false;

  /// A fresh value name with `prefix` not used in this graph.
  std::string fresh_name(std::string_view prefix);

 private:
  ValueId add_value(Value v);
  /// Live nodes the outputs depend on, producers first (a depth-first walk from the outputs;
  /// cheaper than topological_order for the rewrites' bookkeeping).
  std::vector<NodeId> output_cone() const;

  std::vector<Node> nodes_;
  std::vector<Value> values_;
  std::vector<ValueId> inputs_;
  std::vector<ValueId> outputs_;
  int64_t next_name_ = 0;
};

}  // namespace tessera::graph
