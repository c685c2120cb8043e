// ONNX import and export of graphs (through Debian's libonnx / protobuf).
//
// Import reads opset 13-21 of the default domain (18-21 rewritten to their opset-17 form,
// onnx_opset.h; export writes opset 17), runs ONNX's shape inference and requires
// every tensor's shape to be static. Operators of ops.h become their OpType; any other
// (or any other domain's) becomes an Opaque node with the model's shapes. Initializers and
// Constant nodes become constants; external data is read from next to the model.
//
// Stripped weights: a model may be stored without its large weights (scripts that export
// real models do this to keep test data small). Such an initializer has data_location
// EXTERNAL and location kStrippedLocation; import makes up deterministic values for it
// (Value::synthetic; shapes and costs are real, numbers are not) and export writes it
// stripped again.
//
// Export writes IR version 8, opset 17. Fused operators are written as their standard ONNX
// decomposition (node names "<fused node>/<step>"), so the file is valid for onnx's checker
// and runs anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "graph/ir.h"

namespace tessera::graph {

/// The external-data location that marks a stripped weight.
inline constexpr std::string_view kStrippedLocation = "tessera-stripped-weights";

/// Reads an ONNX model file. A UserError naming the file for anything that is not a
/// readable model: truncated or not protobuf, unsupported opset, cyclic graph, a tensor
/// without a static shape, a missing external data file; and naming the node for one that
/// ONNX's checker refuses (an operator ONNX does not know, a wrong number of inputs or
/// outputs, an attribute of the wrong kind, one valid at the model's opset but not at the
/// opset export writes) or whose shape attributes or constant shape inputs cannot be (strides
/// 0, a weight of another rank than its input, a Reshape with two -1, ...). An attribute of a
/// later opset is dropped where its value is what the model's opset does anyway (Split's
/// num_outputs equal to its output count), else refused.
Graph import_onnx(const std::string& path);
/// The same from the serialized bytes; `what` names them in errors, `base_dir` is where
/// external data files are looked for ("" for none).
Graph import_onnx_bytes(std::string_view bytes, std::string_view what, const std::string& base_dir = {});

/// A serialised onnx::TensorProto (e.g. an ONNX test data .pb file) as a Tensor; `what`
/// names it in errors (unreadable bytes, a type the IR does not have).
Tensor tensor_from_onnx(std::string_view bytes, std::string_view what);

/// Export options.
struct ExportOptions {
  /// Constants with more elements than this are written stripped (-1: write every value).
  /// Synthetic constants are written stripped unless write_synthetic is set.
  int64_t strip_above_elements = -1;
  /// Write synthetic constants' made-up values instead of stripping them (so that a check
  /// of the written model against its input computes with the same weights).
  bool write_synthetic = false;
  std::string producer_version;  ///< written as producer_version ("" = Tessera's version)
};

/// Serialises `g` as an ONNX ModelProto, checked with onnx's checker (a failure is an
/// InternalError: export must always produce a valid model).
std::string export_onnx(const Graph& g, const ExportOptions& options = {});
/// export_onnx written to `path` (a UserError if it cannot be written).
void write_onnx(const Graph& g, const std::string& path, const ExportOptions& options = {});

}  // namespace tessera::graph
