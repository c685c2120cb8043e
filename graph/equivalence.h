// Equivalence checking: whether an optimised graph computes what the original does.
#pragma once

#include <optional>
#include <string>

#include "graph/ir.h"

namespace tessera::graph {

/// Why `optimised` does not compute what `original` does, or nullopt when it does: the
/// optimised graph is written as ONNX (made-up weights included) and read back, then both run
/// with the CPU reference on `seeds` random inputs and must agree within rtol 2e-3. A graph
/// that cannot be evaluated (an Opaque node) is a reason too.
std::optional<std::string> check_equivalent(const Graph& original, const Graph& optimised, int seeds = 2);

}  // namespace tessera::graph
