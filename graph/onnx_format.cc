// The parts of the ONNX format that import and export share (onnx_format.h).
#include "graph/onnx_format.h"

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

namespace tessera::graph::onnx_detail {

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


}  // namespace tessera::graph::onnx_detail
