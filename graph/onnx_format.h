// Internal to graph/ (onnx_import.cc, onnx_export.cc, onnx_checks.cc): the parts of the ONNX
// format that import and export share: the opsets Tessera reads and writes, element types and
// their raw little-endian encodings, and the names a node's subgraphs capture.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "graph/ir.h"

namespace tessera::graph::onnx_detail {

inline constexpr int64_t kMinOpset = 13;
inline constexpr int64_t kMaxOpset = 17;  // read as it is; 18-21 through onnx_opset.h
inline constexpr int64_t kExportOpset = 17;
inline constexpr int64_t kExportIrVersion = 8;
inline const std::string kOpsetAdvice = "Tessera reads opset 13-21; re-export with opset_version=17";
inline const std::string kStaticAdvice = "export with static shapes (a fixed batch size and sequence length)";
inline const std::string kTypesRead =
    "Tessera reads float, float16, bfloat16, double, int64, int32, int8, uint8 and bool";
inline const std::string kStrippedKey = "tessera.weights_stripped";
inline constexpr int64_t kFoldLimitElements = 4096;  // largest integer result import folds to a constant

bool is_default_domain(std::string_view domain);
std::string in_quotes(std::string_view s);
/// "[2, 3]"; with the element type: "float32[2, 3]".
std::string shape_text(const std::vector<int64_t>& shape);
std::string type_text(ElemType type, const std::vector<int64_t>& shape);

/// TensorProto::DataType of an element type, and the name of a DataType value.
int32_t onnx_data_type(ElemType t);
std::string onnx_type_name(int64_t t);
/// `v` rounded to what type `t` stores (f16, bf16, integers).
float round_to_storage(float v, ElemType t);
/// Little-endian integers of `bytes` bytes, and element values from and to their bits.
uint64_t load_le(const char* p, int64_t bytes);
void store_le(std::string& out, uint64_t v, int64_t bytes);
float float_from_bits(ElemType t, uint64_t b);
int64_t int_from_bits(ElemType t, uint64_t b);
uint64_t bits_of(ElemType t, double v);
/// A tensor's raw_data.
std::string encode_raw(const Tensor& t);
/// The number of elements of `shape`, or nothing if a dimension is negative or it overflows.
std::optional<int64_t> checked_elements(const std::vector<int64_t>& shape);
/// Deterministic stand-in values for an initializer whose data was stripped.
Tensor synthetic_tensor(const std::string& name, ElemType type, std::vector<int64_t> shape, int64_t elements);
/// The names the subgraphs of `n` (GRAPH / GRAPHS attributes) read from enclosing scopes, in
/// first-use order, each once.
std::vector<std::string> captures_of(const onnx::NodeProto& n);

}  // namespace tessera::graph::onnx_detail
