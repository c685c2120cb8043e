// Internal to graph/ (rules.cc, data_rule.cc): what verifying a rule may cost, and the helpers
// the rule loader and the data rules share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "graph/ir.h"

namespace tessera::graph::rule_detail {

// What verifying one case may cost. Every rule is verified whenever rules load (each `graph
// optimize` too): both graphs, on 3 seeds, with the CPU reference. The shipped cases hold at
// most 256 elements; these bounds leave room for far larger ones while keeping a hostile
// file to seconds and a few hundred MB.
inline constexpr size_t kMaxCaseRank = 8;
inline constexpr int64_t kMaxCaseTensorElements = int64_t{1} << 20;  // any one tensor (or buffer) of a case
inline constexpr int64_t kMaxCaseElements = int64_t{1} << 22;        // all the tensors of a case together
inline constexpr int64_t kMaxCaseWork = int64_t{1} << 26;            // multiply-adds (or element visits) of a case
inline constexpr size_t kMaxCases = 8;
// Matching a pattern tries both operand orders of every commutative node, so its cost can
// double with each node; the shipped patterns have at most 5.
inline constexpr size_t kMaxPatternNodes = 16;
inline constexpr size_t kMaxReplacementNodes = 64;

/// Why a rule's case graph is too large to verify (a tensor, the case's elements or its work
/// past the bounds above), or nullopt.
std::optional<std::string> oversized(const Graph& g);

/// "[2, 3]".
std::string dims_text(std::span<const int64_t> s);

inline int64_t norm_axis(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

}  // namespace tessera::graph::rule_detail
