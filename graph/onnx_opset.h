// Internal to graph/ (onnx_import.cc): reading models of opsets 18-21.
//
// Debian's libonnx (1.12), whose checker and shape inference import runs, knows the operator
// schemas up to opset 17. Exporters today write 18-20 (PyTorch's torch.export-based exporter
// writes 18 or 20 by default), and between 17 and 21 most operators changed only in the
// element types they accept (float8, int4). So a model of opset 18-21 is rewritten into its
// opset-17 form before the checks, node by node, where the meaning is the same:
//
// - Reduce* (opset 18: axes as an input): a constant axes input becomes the attribute; no
//   axes with noop_with_empty_axes 1 is an Identity. Computed axes have no opset-17 form.
// - Pad (18: an optional axes input): with constant pads and axes and a data rank the model
//   states, the pads of every axis. Mode "wrap" (19) has no opset-17 form.
// - Split (18: num_outputs): an equal split stays for import's own reading of it; an uneven
//   one whose dimension the model states gets its sizes as an input.
// - Resize (18: axes; 19: half_pixel_symmetric): axes naming every dimension in order are
//   dropped; anything else has no opset-17 form.
// - GridSample (20: "linear", "cubic"): 4-D ones take opset 16's names of the same modes.
// - Gelu (20) and Mish (18): written out in opset-17 operators, as Tessera's export writes
//   Gelu (0.5 * x * (1 + erf(x / sqrt 2)), or the tanh form), and Mish as
//   x * tanh(log(1 + exp(x))).
// - Attributes of a newer opset whose value means what opset 17 does (Cast's saturate, ...)
//   are left for import's newer-attribute table (onnx_checks.h) to drop.
// - Operators opset 17 does not have (GroupNormalization, Col2Im, the Bitwise family, ...)
//   and reductions ScatterND / ScatterElements gained in 18 (max, min) are refused with the
//   node's name.
//
// Nodes of subgraphs (If, Loop, Scan bodies) are rewritten the same way. The model then
// imports opset 17 of the default domain and, when it said more, IR version 8 (9 and 10 add
// only types and function overloads).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>

namespace tessera::graph::onnx_detail {

/// The highest default-domain opset import reads (through lower_to_opset17()).
inline constexpr int64_t kMaxLoweredOpset = 21;

/// Rewrites `model`, whose default-domain opset is `opset` (18 to kMaxLoweredOpset), to opset
/// 17 in place. Throws UserError("<what>: node ...: why") for a node with no opset-17 form.
void lower_to_opset17(onnx::ModelProto& model, int64_t opset, const std::string& what);

}  // namespace tessera::graph::onnx_detail
