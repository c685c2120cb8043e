// ONNX import and export (contracts in onnx_io.h).
//
// Import is one pass of Importer over a parsed ModelProto: check the opsets, check every node
// with ONNX's checker (at the model's opset and at the one export writes), run ONNX's shape
// inference (Opaque nodes take their shapes from it) behind the checks of shape_problem()
// (libonnx divides by and indexes with whatever a file holds; see "Checks before shape
// inference"), turn graph inputs and initializers into values, order the NodeProtos
// topologically (a file need not list them in order) and add one node each. Constant nodes
// become constants; an operator of ops.h becomes its OpType when Tessera's inference accepts
// it and agrees with ONNX's; anything else becomes an Opaque node. Small integer shape
// arithmetic over constants is evaluated into constants on the way (Importer::fold_constant).
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
#include "graph/ops.h"

namespace tessera::graph {
namespace {

constexpr int64_t kMinOpset = 13;
constexpr int64_t kMaxOpset = 17;
constexpr int64_t kExportOpset = 17;
constexpr int64_t kExportIrVersion = 8;
const std::string kOpsetAdvice = "Tessera reads opset 13-17; re-export with opset_version=17";
const std::string kStaticAdvice = "export with static shapes (a fixed batch size and sequence length)";
const std::string kTypesRead =
    "Tessera reads float, float16, bfloat16, double, int64, int32, int8, uint8 and bool";
const std::string kStrippedKey = "tessera.weights_stripped";
constexpr int64_t kFoldLimitElements = 4096;  // largest integer result import folds to a constant

bool is_default_domain(std::string_view domain) {
  return domain.empty() || domain == "ai.onnx";
}

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

std::string type_text(ElemType type, const std::vector<int64_t>& shape) {
  return std::string(elem_type_name(type)) + shape_text(shape);
}

// ---------------------------------------------------------------------------------------
// Element types and their encodings


int32_t onnx_data_type(ElemType t) {
  switch (t) {
    case ElemType::kF32:
      return onnx::TensorProto::FLOAT;
    case ElemType::kF16:
      return onnx::TensorProto::FLOAT16;
    case ElemType::kBF16:
      return onnx::TensorProto::BFLOAT16;
    case ElemType::kF64:
      return onnx::TensorProto::DOUBLE;
    case ElemType::kI64:
      return onnx::TensorProto::INT64;
    case ElemType::kI32:
      return onnx::TensorProto::INT32;
    case ElemType::kI8:
      return onnx::TensorProto::INT8;
    case ElemType::kU8:
      return onnx::TensorProto::UINT8;
    case ElemType::kBool:
      return onnx::TensorProto::BOOL;
  }
  TESSERA_UNREACHABLE("ElemType");
}

std::string onnx_type_name(int64_t t) {
  if (t >= INT_MIN && t <= INT_MAX && onnx::TensorProto_DataType_IsValid(static_cast<int>(t))) {
    return onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t));
  }
  return "data type " + std::to_string(t);
}

// `v` rounded to what a tensor of type `t` can hold (f16 / bf16 values are exact in f32).
float round_to_storage(float v, ElemType t) {
  if (t == ElemType::kF16) return kernels::round_to(DType::kF16, v);
  if (t == ElemType::kBF16) return kernels::round_to(DType::kBF16, v);
  return v;
}

uint64_t load_le(const char* p, int64_t bytes) {
  uint64_t v = 0;
  for (int64_t k = 0; k < bytes; ++k) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[k])) << (8 * k);
  return v;
}

void store_le(std::string& out, uint64_t v, int64_t bytes) {
  for (int64_t k = 0; k < bytes; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xffu));
}

// Element `k` of a float tensor of storage type `t` from its little-endian bits `b`.
float float_from_bits(ElemType t, uint64_t b) {
  switch (t) {
    case ElemType::kF32:
      return std::bit_cast<float>(static_cast<uint32_t>(b));
    case ElemType::kF16:
      return kernels::f16_value(static_cast<uint16_t>(b));
    case ElemType::kBF16:
      return kernels::bf16_value(static_cast<uint16_t>(b));
    case ElemType::kF64:
      return static_cast<float>(std::bit_cast<double>(b));
    default:
      TESSERA_UNREACHABLE("float_from_bits: not a float type");
  }
}

int64_t int_from_bits(ElemType t, uint64_t b) {
  switch (t) {
    case ElemType::kI64:
      return static_cast<int64_t>(b);
    case ElemType::kI32:
      return static_cast<int32_t>(static_cast<uint32_t>(b));
    case ElemType::kI8:
      return static_cast<int8_t>(static_cast<uint8_t>(b));
    case ElemType::kU8:
      return static_cast<uint8_t>(b);
    case ElemType::kBool:
      return b != 0 ? 1 : 0;
    default:
      TESSERA_UNREACHABLE("int_from_bits: not an integer type");
  }
}

// Little-endian bits of `v` in storage type `t` (the low elem_bytes(t) bytes matter).
uint64_t bits_of(ElemType t, double v) {
  switch (t) {
    case ElemType::kF32:
      return std::bit_cast<uint32_t>(static_cast<float>(v));
    case ElemType::kF16:
      return kernels::f16_bits(static_cast<float>(v));
    case ElemType::kBF16:
      return kernels::bf16_bits(static_cast<float>(v));
    case ElemType::kF64:
      return std::bit_cast<uint64_t>(v);
    case ElemType::kBool:
      return v != 0 ? 1 : 0;
    default:
      return static_cast<uint64_t>(static_cast<int64_t>(v));
  }
}

// The tensor's values as ONNX raw_data.
std::string encode_raw(const Tensor& t) {
  int64_t n = t.elements();
  int64_t bytes = elem_bytes(t.type);
  std::string out;
  out.reserve(static_cast<size_t>(n * bytes));
  if (is_float(t.type)) {
    TESSERA_CHECK(static_cast<int64_t>(t.f.size()) == n,
                  "encode_raw: a float tensor's values do not fit its shape");
    for (float v : t.f) {
      uint64_t b =
          t.type == ElemType::kF64 ? std::bit_cast<uint64_t>(static_cast<double>(v)) : bits_of(t.type, v);
      store_le(out, b, bytes);
    }
  } else {
    TESSERA_CHECK(static_cast<int64_t>(t.i.size()) == n,
                  "encode_raw: an integer tensor's values do not fit its shape");
    for (int64_t v : t.i)
      store_le(out, t.type == ElemType::kBool ? (v != 0) : static_cast<uint64_t>(v), bytes);
  }
  return out;
}

// product(shape), or nothing for a negative extent or an overflow.
std::optional<int64_t> checked_elements(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > INT64_MAX / d)) return std::nullopt;
    n *= d;
  }
  return n;
}

// Made-up values for a stripped weight, the same on every machine: a splitmix64 stream
// seeded with the tensor's name. Vectors (norm scales, biases) get [0.5, 1], matrices and
// kernels a fan-in-scaled uniform range (unit variance through a layer), integers 0.
Tensor synthetic_tensor(const std::string& name, ElemType type, std::vector<int64_t> shape,
                        int64_t elements) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  if (!is_float(type)) {
    t.i.assign(static_cast<size_t>(elements), 0);
    return t;
  }
  double lo = 0.5, hi = 1.0;
  if (t.shape.size() >= 2 && elements > 0) {
    double fan_in = static_cast<double>(elements) / static_cast<double>(t.shape[0]);
    double a = std::sqrt(3.0 / fan_in);
    lo = -a;
    hi = a;
  }
  uint64_t state = stable_hash(name);
  t.f.resize(static_cast<size_t>(elements));
  for (float& v : t.f) {
    state += 0x9e3779b97f4a7c15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double unit = static_cast<double>(z >> 11) * 0x1.0p-53;
    v = round_to_storage(static_cast<float>(lo + (hi - lo) * unit), type);
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// Subgraphs

void outer_names_of_graph(const onnx::GraphProto& g, std::vector<std::string>& out);

// Names the subgraphs of `n` (GRAPH / GRAPHS attributes) read from enclosing scopes, in
// first-use order, each once.
std::vector<std::string> captures_of(const onnx::NodeProto& n) {
  std::vector<std::string> names;
  for (const auto& a : n.attribute()) {
    if (a.has_g()) outer_names_of_graph(a.g(), names);
    for (const auto& g : a.graphs()) outer_names_of_graph(g, names);
  }
  std::vector<std::string> unique;
  std::unordered_set<std::string> seen;
  for (auto& name : names) {
    if (seen.insert(name).second) unique.push_back(std::move(name));
  }
  return unique;
}

void outer_names_of_graph(const onnx::GraphProto& g, std::vector<std::string>& out) {
  std::unordered_set<std::string> local;
  for (const auto& v : g.input()) local.insert(v.name());
  for (const auto& t : g.initializer()) local.insert(t.name());
  for (const auto& t : g.sparse_initializer()) local.insert(t.values().name());
  for (const auto& n : g.node()) {
    for (const auto& name : n.output()) local.insert(name);
  }
  for (const auto& n : g.node()) {
    for (const auto& name : n.input()) {
      if (!name.empty() && !local.count(name)) out.push_back(name);
    }
    for (auto& name : captures_of(n)) {
      if (!local.count(name)) out.push_back(std::move(name));
    }
  }
}

// ---------------------------------------------------------------------------------------
// Import

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

// ---------------------------------------------------------------------------------------
// Checks before shape inference
//
// libonnx trusts the model it is given: its shape inference divides by a Conv's strides,
// indexes a list by a weight's rank, and reads an attribute of the wrong type as 0. So a
// model's nodes go through ONNX's checker first (known operators, numbers of inputs and
// outputs, kinds of attributes), and shape inference goes through GuardedSchemas, which runs
// shape_problem() on a node just before ONNX's inference of it and makes ONNX skip a node it
// refuses. After inference shape_problem() runs over the graph's nodes again, with every
// shape ONNX found, to name the node in the error.

// An ONNX checker or inference message on one line (a subgraph's error carries its context
// after a blank line).
std::string flat_message(std::string message) {
  for (std::string_view context : {"\n\n==> Context: ", "\n"}) {
    for (size_t at = message.find(context); at != std::string::npos; at = message.find(context, at + 1))
      message.replace(at, context.size(), context.size() > 1 ? "; " : " ");
  }
  return message;
}

std::string attribute_type_name(int type) {
  if (onnx::AttributeProto::AttributeType_IsValid(type))
    return onnx::AttributeProto::AttributeType_Name(static_cast<onnx::AttributeProto::AttributeType>(type));
  return "type " + std::to_string(type);
}

std::string count_text(int count, const char* what) {
  return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
}

// "2", "2 to 3", "at least 1": how many inputs or outputs a schema takes.
std::string range_text(int lo, int hi) {
  if (lo == hi) return std::to_string(lo);
  if (hi == INT_MAX) return "at least " + std::to_string(lo);
  return std::to_string(lo) + " to " + std::to_string(hi);
}

std::vector<int64_t> dims_of(const onnx::TensorProto& t) {
  std::vector<int64_t> dims;
  for (int64_t d : t.dims()) dims.push_back(d);
  return dims;
}

// The values of an integer tensor, or nothing when they are not at hand (another type,
// external data, a size that does not fit its shape).
std::optional<std::vector<int64_t>> int_values(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  std::optional<int64_t> n = checked_elements(dims_of(t));
  if (!n) return std::nullopt;
  std::vector<int64_t> v;
  if (t.data_type() == onnx::TensorProto::INT64 || t.data_type() == onnx::TensorProto::INT32) {
    int64_t bytes = t.data_type() == onnx::TensorProto::INT64 ? 8 : 4;
    if (t.has_raw_data()) {
      if (t.raw_data().size() % static_cast<size_t>(bytes) != 0 ||
          static_cast<int64_t>(t.raw_data().size() / static_cast<size_t>(bytes)) != *n)
        return std::nullopt;
      for (int64_t k = 0; k < *n; ++k) {
        uint64_t b = load_le(t.raw_data().data() + k * bytes, bytes);
        v.push_back(bytes == 8 ? static_cast<int64_t>(b) : static_cast<int32_t>(static_cast<uint32_t>(b)));
      }
    } else if (bytes == 8) {
      v.assign(t.int64_data().begin(), t.int64_data().end());
    } else {
      v.assign(t.int32_data().begin(), t.int32_data().end());
    }
  } else {
    return std::nullopt;
  }
  if (static_cast<int64_t>(v.size()) != *n) return std::nullopt;
  return v;
}

// The values of a float32 / float64 tensor, or nothing when they are not at hand.
std::optional<std::vector<double>> float_values(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  std::optional<int64_t> n = checked_elements(dims_of(t));
  if (!n) return std::nullopt;
  std::vector<double> v;
  if (t.data_type() == onnx::TensorProto::FLOAT || t.data_type() == onnx::TensorProto::DOUBLE) {
    bool f64 = t.data_type() == onnx::TensorProto::DOUBLE;
    int64_t bytes = f64 ? 8 : 4;
    if (t.has_raw_data()) {
      if (t.raw_data().size() % static_cast<size_t>(bytes) != 0 ||
          static_cast<int64_t>(t.raw_data().size() / static_cast<size_t>(bytes)) != *n)
        return std::nullopt;
      for (int64_t k = 0; k < *n; ++k) {
        uint64_t b = load_le(t.raw_data().data() + k * bytes, bytes);
        v.push_back(f64 ? std::bit_cast<double>(b) : std::bit_cast<float>(static_cast<uint32_t>(b)));
      }
    } else if (f64) {
      v.assign(t.double_data().begin(), t.double_data().end());
    } else {
      v.assign(t.float_data().begin(), t.float_data().end());
    }
  } else {
    return std::nullopt;
  }
  if (static_cast<int64_t>(v.size()) != *n) return std::nullopt;
  return v;
}

// The dimensions a type states (-1 for an extent it leaves open), or nothing without a rank.
std::optional<std::vector<int64_t>> stated_dims(const onnx::TypeProto* type) {
  if (!type || !type->has_tensor_type() || !type->tensor_type().has_shape()) return std::nullopt;
  std::vector<int64_t> dims;
  for (const auto& d : type->tensor_type().shape().dim())
    dims.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : -1);
  return dims;
}

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

// Conv, ConvInteger, QLinearConv, ConvTranspose and the windowed pools: ONNX's inference
// divides by strides, sizes its lists by the input's rank and indexes them by the weight's.
std::string window_problem(const NodeFacts& n) {
  bool transpose = n.op == "ConvTranspose";
  bool conv = transpose || n.op == "Conv" || n.op == "ConvInteger" || n.op == "QLinearConv";
  size_t w_input = n.op == "QLinearConv" ? 3 : 1;
  std::optional<std::vector<int64_t>> x = n.input_dims(0), w;
  if (conv) w = n.input_dims(w_input);
  std::string w_layout = transpose ? "[C, M/group, k1, ...]" : "[M, C/group, k1, ...]";
  if (x && x->size() < 3)
    return "X " + shape_text(*x) + " must be [N, C, D1, ...] with at least one spatial dimension";
  if (w && w->size() < 3) return "W " + shape_text(*w) + " must be " + w_layout;
  if (x && w && x->size() != w->size())
    return "W " + shape_text(*w) + " must have the rank of X " + shape_text(*x) + " (W is " + w_layout + ")";

  // The number of spatial dimensions, and what says so: X, else W, else the first list.
  std::optional<size_t> spatial;
  std::string source;
  if (x) {
    spatial = x->size() - 2;
    source = "X " + shape_text(*x);
  } else if (w) {
    spatial = w->size() - 2;
    source = "W " + shape_text(*w);
  }
  struct ListRule {
    const char* name;
    int64_t min;
    size_t per_dimension;
  };
  for (ListRule rule :
       {ListRule{"kernel_shape", 1, 1}, ListRule{"strides", 1, 1}, ListRule{"dilations", 1, 1},
        ListRule{"pads", 0, 2}, ListRule{"output_padding", 0, 1}, ListRule{"output_shape", 1, 1}}) {
    std::optional<std::vector<int64_t>> v = n.ints_attr(rule.name);
    if (!v) continue;
    std::string text = std::string(rule.name) + " " + shape_text(*v);
    for (int64_t e : *v) {
      if (e < rule.min) return text + " must be " + (rule.min > 0 ? "positive" : "non-negative");
    }
    if (!spatial && v->size() % rule.per_dimension == 0) {
      spatial = v->size() / rule.per_dimension;
      source = text;
    } else if (!spatial || v->size() != *spatial * rule.per_dimension) {
      std::string per = rule.per_dimension == 2 ? "a begin and an end" : "one";
      return text + " must have " +
             (spatial ? std::to_string(*spatial * rule.per_dimension) + " values, " : "") + per +
             " per spatial dimension" + (spatial ? " of " + source : "");
    }
  }
  std::optional<std::vector<int64_t>> kernel = n.ints_attr("kernel_shape");
  if (kernel && w) {
    for (size_t d = 0; d < kernel->size(); ++d) {
      int64_t k = (*w)[d + 2];
      if (k >= 0 && k != (*kernel)[d])
        return "kernel_shape " + shape_text(*kernel) + " must be the spatial dimensions of W " +
               shape_text(*w);
    }
  }
  std::string auto_pad = n.string_attr("auto_pad").value_or("NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" && auto_pad != "VALID")
    return "auto_pad " + in_quotes(auto_pad) + " must be NOTSET, SAME_UPPER, SAME_LOWER or VALID";
  // Without SAME padding a sliding window must fit the padded input: else there is no output,
  // and ONNX's arithmetic overflows on the way (a dilation near 2^63 wraps the window to -1).
  // ConvTranspose and MaxUnpool grow their input instead.
  bool slides = !transpose && n.op != "MaxUnpool";
  if (slides && x && spatial && (auto_pad == "NOTSET" || auto_pad == "VALID")) {
    std::vector<int64_t> window = kernel.value_or(std::vector<int64_t>{});
    if (!kernel && w) window.assign(w->begin() + 2, w->end());
    std::vector<int64_t> dilations = n.ints_attr("dilations").value_or(std::vector<int64_t>(*spatial, 1));
    std::vector<int64_t> pads = n.ints_attr("pads").value_or(std::vector<int64_t>(2 * *spatial, 0));
    if (auto_pad == "VALID") pads.assign(2 * *spatial, 0);
    for (size_t d = 0; d < window.size() && d < *spatial; ++d) {
      int64_t in = (*x)[d + 2], k = window[d];
      if (in < 0 || k < 1) continue;
      int64_t extent = 0, padded = 0;
      bool too_wide =
          __builtin_mul_overflow(k - 1, dilations[d], &extent) || __builtin_add_overflow(extent, 1, &extent);
      bool too_padded = __builtin_add_overflow(in, pads[d], &padded) ||
                        __builtin_add_overflow(padded, pads[d + *spatial], &padded);
      if (too_padded) return "pads " + shape_text(pads) + " overflow the extents of X " + shape_text(*x);
      if (too_wide || extent > padded) {
        return "a window of kernel " + shape_text(window) + " with dilations " + shape_text(dilations) +
               " does not fit X " + shape_text(*x) + " with pads " + shape_text(pads);
      }
    }
  }
  if (!conv) return {};

  int64_t group = n.int_attr("group").value_or(1);
  std::string group_text = "group " + std::to_string(group);
  if (group < 1) return group_text + " must be positive";
  std::optional<int64_t> channels = n.extent(0, 1);
  if (channels && *channels % group != 0)
    return group_text + " must divide the " + std::to_string(*channels) + " channels of X " + shape_text(*x);
  std::optional<int64_t> w0 = n.extent(w_input, 0), w1 = n.extent(w_input, 1);
  if (transpose) {
    if (channels && w0 && *w0 != *channels)
      return "W " + shape_text(*w) + " must have X's " + std::to_string(*channels) +
             " channels as its first dimension";
    return {};
  }
  if (w0 && *w0 % group != 0)
    return group_text + " must divide the " + std::to_string(*w0) + " output channels of W " + shape_text(*w);
  if (channels && w1 && *channels / group != *w1) {
    return "W " + shape_text(*w) + " takes " + std::to_string(*w1) + " channels per group, X " +
           shape_text(*x) + " gives " + std::to_string(*channels / group) + " (" + group_text + ")";
  }
  return {};
}

// DepthToSpace / SpaceToDepth: ONNX's inference divides by blocksize.
std::string block_problem(const NodeFacts& n) {
  std::optional<int64_t> block = n.int_attr("blocksize");
  if (!block) return {};
  std::string text = "blocksize " + std::to_string(*block);
  if (*block < 1) return text + " must be positive";
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (!x) return {};
  if (x->size() != 4) return "input " + shape_text(*x) + " must be [N, C, H, W]";
  if (n.op == "DepthToSpace") {
    int64_t c = (*x)[1];
    if (c >= 0 && (c % *block != 0 || (c / *block) % *block != 0))
      return text + " squared must divide the " + std::to_string(c) + " channels of input " + shape_text(*x);
    return {};
  }
  for (size_t d : {size_t{2}, size_t{3}}) {
    if ((*x)[d] >= 0 && (*x)[d] % *block != 0)
      return text + " must divide the height and width of input " + shape_text(*x);
  }
  return {};
}

// An `axis` attribute that indexes input 0's dimensions.
std::string axis_problem(const NodeFacts& n) {
  std::optional<int64_t> axis = n.int_attr("axis");
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (!axis || !x || x->empty()) return {};
  auto rank = static_cast<int64_t>(x->size());
  // Flatten's and LayerNormalization's axis may be the rank itself (everything before it).
  int64_t last = n.op == "Flatten" || n.op == "LayerNormalization" ? rank : rank - 1;
  if (*axis < -rank || *axis > last) {
    return "axis " + std::to_string(*axis) + " is out of range for input " + shape_text(*x) +
           " (valid: " + std::to_string(-rank) + " to " + std::to_string(last) + ")";
  }
  return {};
}

std::string reshape_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> shape = n.input_ints(1);
  if (!shape) return {};
  std::string text = "shape " + shape_text(*shape);
  bool allow_zero = n.int_attr("allowzero").value_or(0) != 0;
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  int inferred = 0;
  bool zero = false, known = true;
  int64_t elements = 1;  // of the target without its -1, while every extent is known
  for (size_t d = 0; d < shape->size(); ++d) {
    int64_t e = (*shape)[d];
    if (e < -1) return text + " may hold -1 (inferred) and 0 (copied), no other negative value";
    if (e == -1) {
      ++inferred;
      continue;
    }
    if (e == 0) zero = true;
    if (e == 0 && !allow_zero) {
      if (x && d >= x->size())
        return text + " copies dimension " + std::to_string(d) + " (a 0), which input " + shape_text(*x) +
               " lacks";
      e = x ? (*x)[d] : -1;
    }
    if (e < 0) {
      known = false;
    } else if (e == 0 || elements <= INT64_MAX / e) {
      elements *= e;
    } else {
      known = false;
    }
  }
  if (inferred > 1) return text + " may hold one -1 at most";
  if (inferred == 1 && allow_zero && zero) return text + " cannot hold both 0 and -1 with allowzero=1";
  if (inferred == 1 && known && elements == 0)
    return text + " leaves its -1 undefined: the other dimensions hold no elements";
  return {};
}

std::string split_problem(const NodeFacts& n) {
  int64_t axis = n.int_attr("axis").value_or(0);
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  std::optional<int64_t> extent;
  if (x) {
    auto rank = static_cast<int64_t>(x->size());
    if (axis >= -rank && axis < rank)
      extent = n.extent(0, static_cast<size_t>(axis < 0 ? axis + rank : axis));
  }
  std::string axis_text = extent ? "axis " + std::to_string(axis) + " of input " + shape_text(*x) : "";
  std::optional<std::vector<int64_t>> split = n.input_ints(1);
  if (!split) {
    if (extent && n.num_outputs > 0 && *extent % n.num_outputs != 0)
      return axis_text + " does not split into " + std::to_string(n.num_outputs) +
             " equal parts; give the sizes";
    return {};
  }
  std::string text = "split " + shape_text(*split);
  if (static_cast<int>(split->size()) != n.num_outputs)
    return text + " must hold one size per output (" + count_text(n.num_outputs, "output") + ")";
  int64_t sum = 0;
  for (int64_t e : *split) {
    if (e < 0 || e > INT64_MAX - sum) return text + " must hold non-negative sizes";
    sum += e;
  }
  if (extent && sum != *extent)
    return text + " must add up to the extent " + std::to_string(*extent) + " of " + axis_text;
  return {};
}

// Tile's repeats and Expand's shape: ONNX's inference multiplies by them.
std::string repeat_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> v = n.input_ints(1);
  if (!v) return {};
  std::string text = (n.op == "Tile" ? "repeats " : "shape ") + shape_text(*v);
  for (int64_t e : *v) {
    if (e < 0) return text + " must be non-negative";
  }
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (n.op == "Tile" && x && x->size() != v->size())
    return text + " must have one value per dimension of input " + shape_text(*x);
  return {};
}

std::string resize_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  std::string per_dimension = x ? " one value per dimension of X " + shape_text(*x) : "";
  if (std::optional<std::vector<double>> scales = n.input_floats(2); scales && !scales->empty()) {
    for (double s : *scales) {
      if (!(s > 0) || !std::isfinite(s)) return "scales must be positive and finite";
    }
    if (x && scales->size() != x->size()) return "scales must have" + per_dimension;
  }
  if (std::optional<std::vector<int64_t>> sizes = n.input_ints(3); sizes && !sizes->empty()) {
    for (int64_t s : *sizes) {
      if (s < 0) return "sizes " + shape_text(*sizes) + " must be non-negative";
    }
    if (x && sizes->size() != x->size()) return "sizes " + shape_text(*sizes) + " must have" + per_dimension;
  }
  return {};
}

std::string slice_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> starts = n.input_ints(1), ends = n.input_ints(2),
                                      axes = n.input_ints(3), steps = n.input_ints(4);
  std::vector<size_t> lengths;
  for (const auto* list : {&starts, &ends, &axes, &steps}) {
    if (*list) lengths.push_back((*list)->size());
  }
  if (std::adjacent_find(lengths.begin(), lengths.end(), std::not_equal_to<>()) != lengths.end())
    return "starts, ends, axes and steps must be as long as each other";
  if (steps) {
    for (int64_t s : *steps) {
      if (s == 0) return "steps " + shape_text(*steps) + " must be non-zero";
    }
  }
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (axes && x) {
    auto rank = static_cast<int64_t>(x->size());
    std::set<int64_t> seen;
    for (int64_t a : *axes) {
      if (a < -rank || a >= rank || !seen.insert(a < 0 ? a + rank : a).second)
        return "axes " + shape_text(*axes) + " must be distinct dimensions of input " + shape_text(*x);
    }
  }
  return {};
}

std::string range_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> delta = n.input_ints(2);
  std::optional<std::vector<double>> delta_f = n.input_floats(2);
  if ((delta && delta->size() == 1 && (*delta)[0] == 0) ||
      (delta_f && delta_f->size() == 1 && (*delta_f)[0] == 0))
    return "delta 0 makes an endless range";
  return {};
}

std::string constant_of_shape_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> shape = n.input_ints(0);
  for (int64_t e : shape.value_or(std::vector<int64_t>{})) {
    if (e < 0) return "shape " + shape_text(*shape) + " must be non-negative";
  }
  return {};
}

// The operators whose shape-related attributes and constant inputs import checks, each with
// its check: what is wrong ("" when nothing is).
const std::map<std::string, std::string (*)(const NodeFacts&), std::less<>>& shape_checks() {
  static const std::map<std::string, std::string (*)(const NodeFacts&), std::less<>> checks = [] {
    std::map<std::string, std::string (*)(const NodeFacts&), std::less<>> m;
    for (const char* op : {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "MaxPool", "AveragePool",
                           "LpPool", "MaxUnpool"})
      m[op] = window_problem;
    for (const char* op : {"Gather", "GatherElements", "Concat", "Softmax", "LogSoftmax", "Hardmax",
                           "Flatten", "ArgMax", "ArgMin", "TopK", "LayerNormalization"})
      m[op] = axis_problem;
    m["DepthToSpace"] = m["SpaceToDepth"] = block_problem;
    m["Reshape"] = reshape_problem;
    m["Split"] = [](const NodeFacts& n) {
      std::string why = axis_problem(n);
      return why.empty() ? split_problem(n) : why;
    };
    m["Tile"] = m["Expand"] = repeat_problem;
    m["Resize"] = resize_problem;
    m["Slice"] = slice_problem;
    m["Range"] = range_problem;
    m["ConstantOfShape"] = constant_of_shape_problem;
    return m;
  }();
  return checks;
}

// What is wrong with a default-domain node's shape-related attributes and constant inputs,
// "" when nothing is (or when import does not check its operator).
std::string shape_problem(const NodeFacts& n) {
  auto it = shape_checks().find(n.op);
  return it == shape_checks().end() ? std::string() : it->second(n);
}

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
        !shape_checks().count(op))
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

const std::vector<NewerAttribute>& newer_attributes() {
  auto int_is = [](int64_t v) {
    return [v](const onnx::NodeProto&, const onnx::AttributeProto& a) {
      return a.type() == onnx::AttributeProto::INT && a.i() == v;
    };
  };
  auto all_ones = [](const onnx::NodeProto&, const onnx::AttributeProto& a) {
    return a.type() == onnx::AttributeProto::INTS &&
           std::all_of(a.ints().begin(), a.ints().end(), [](int64_t v) { return v == 1; });
  };
  // Split-18's num_outputs equal to the number of outputs, without sizes, is Split-13's equal split.
  auto equal_split = [](const onnx::NodeProto& n, const onnx::AttributeProto& a) {
    return a.type() == onnx::AttributeProto::INT && a.i() == n.output_size() &&
           (n.input_size() < 2 || n.input(1).empty());
  };
  static const std::vector<NewerAttribute> table = [&] {
    std::vector<NewerAttribute> t = {
        {"Split", "num_outputs", 18, equal_split},
        {"Resize", "antialias", 18, int_is(0)},
        {"Resize", "keep_aspect_ratio_policy", 18,
         [](const onnx::NodeProto&, const onnx::AttributeProto& a) {
           return a.type() == onnx::AttributeProto::STRING && a.s() == "stretch";
         }},
        {"LpPool", "ceil_mode", 18, int_is(0)},
        {"LpPool", "dilations", 18, all_ones},
        {"AveragePool", "dilations", 19, all_ones},
        {"Cast", "saturate", 19, int_is(1)},
    };
    for (std::string_view op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
      t.push_back({op, "noop_with_empty_axes", 18, int_is(0)});
    return t;
  }();
  return table;
}

const NewerAttribute* find_newer_attribute(std::string_view op, std::string_view name) {
  for (const NewerAttribute& a : newer_attributes()) {
    if (a.op == op && a.name == name) return &a;
  }
  return nullptr;
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
    if (opset < kMinOpset || opset > kMaxOpset)
      fail("the model uses opset " + std::to_string(opset) + "; " + kOpsetAdvice);
    opset_ = opset;
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

std::string export_onnx(const Graph& g, const ExportOptions& options) {
  return Exporter(g, options).run();
}

void write_onnx(const Graph& g, const std::string& path, const ExportOptions& options) {
  write_file_atomic(path, export_onnx(g, options), "the ONNX model");
}

}  // namespace tessera::graph
