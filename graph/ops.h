// Operator semantics on the host: output types and shapes (inference) and values (the CPU
// reference evaluation, Eigen for the contractions). Rules are verified with these, and an
// optimised graph is checked against its input with them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <utility>
#include <vector>

#include "graph/ir.h"

namespace tessera::graph {

/// What shape inference sees of one input: its type and shape, and its values when it is
/// a constant (Reshape's shape, Slice's starts, ...). `present` is false for an omitted
/// optional input.
struct InputInfo {
  bool present = true;
  ElemType type = ElemType::kF32;
  std::vector<int64_t> shape;
  const Tensor* constant = nullptr;  ///< non-null when the input's value is known
};

/// Output types and shapes of `op` with `attrs` over `inputs`. A UserError (naming the
/// operator and what is wrong) when the inputs do not fit, or when an output shape depends
/// on an input that is not constant. Not defined for Opaque.
std::vector<std::pair<ElemType, std::vector<int64_t>>> infer_node(OpType op, const Attrs& attrs,
                                                                  std::span<const InputInfo> inputs,
                                                                  int num_outputs);

/// The outputs of `op` with `attrs` on `inputs` (nullptr for an omitted optional input).
/// Floating results are computed in f32 and rounded to the output's storage type (f16/bf16
/// values are exact in f32). A UserError for Opaque and for inputs that do not fit.
std::vector<Tensor> evaluate_node(OpType op, const Attrs& attrs, std::span<const Tensor* const> inputs,
                                  int num_outputs);

/// What stands in for an Opaque node's outputs (which cannot be evaluated): called with the
/// node and its input tensors, it returns one tensor per output, of the recorded types and
/// shapes (equivalence.h runs graphs around operators Tessera does not model with one).
using OpaqueStandIn = std::function<std::vector<Tensor>(const Node&, std::span<const Tensor* const>)>;

/// Runs the whole graph: one tensor per graph input (graph.inputs() order) -> one tensor per
/// graph output (graph.outputs() order). A UserError naming the node if one cannot be
/// evaluated (an Opaque node, unless `stand_in` gives its outputs).
std::vector<Tensor> run_graph(const Graph& g, std::span<const Tensor> inputs, const OpaqueStandIn& stand_in = {});

/// Seeded random values for `g`'s inputs: floats uniform in [-1, 1], integers in {0, 1}
/// (valid as indices of any non-empty axis, as masks and as token types).
std::vector<Tensor> random_graph_inputs(const Graph& g, uint64_t seed);

/// Largest |a - b| / (atol + rtol * max|b|) over the elements of two tensor lists of equal
/// shapes; <= 1 means they agree. Different counts or shapes give +infinity, NaN in a and
/// not in b too.
double max_scaled_error(std::span<const Tensor> a, std::span<const Tensor> b, double rtol = 1e-3,
                        double atol = 1e-5);

}  // namespace tessera::graph
