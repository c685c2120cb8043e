// Equivalence checking: whether an optimised graph computes what the original does.
#pragma once

#include <optional>
#include <string>

#include "graph/ir.h"

namespace tessera::graph {

/// Why `optimised` does not compute what `original` does, or nullopt when it does: the
/// optimised graph is written as ONNX (made-up weights included) and read back, then both run
/// with the CPU reference on `seeds` random inputs and must agree within rtol 2e-3.
///
/// Around an operator Tessera cannot evaluate (an Opaque node): in the original's run its
/// outputs are made up (seeded; floats in [-1, 1], integers 0), and the optimised graph's node
/// of the same name must receive the same inputs (within the same tolerance), then gets the
/// same outputs; so every other part of both graphs is compared, and the Opaque node's inputs
/// are too. `opaque_nodes` (if given) receives how many such nodes the original has. What
/// cannot be evaluated even so (a node that fails on the made-up values) is a reason.
std::optional<std::string> check_equivalent(const Graph& original, const Graph& optimised, int seeds = 2,
                                            int* opaque_nodes = nullptr);

}  // namespace tessera::graph
