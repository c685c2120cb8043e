// Schedule (a kernel family's knob values) and Candidate (a workload paired with one).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/workload.h"

namespace tessera {

/// A point in a kernel family's space: the family name and its knobs in the family's order.
struct Schedule {
  std::string family;                                  ///< e.g. "gemm_tc"
  std::vector<std::pair<std::string, int64_t>> knobs;  ///< (name, value), family order

  /// Value of knob `name`; a missing knob is an internal error (families know their knobs).
  int64_t get(std::string_view name) const;
  /// Value of knob `name`, or nullopt.
  std::optional<int64_t> find(std::string_view name) const;

  /// "gemm_tc:bm=128,bn=128,bk=32" (knobs in order); equal schedules have equal keys.
  std::string key() const;
  uint64_t hash() const;  ///< stable_hash(key())

  /// {"family": "gemm_tc", "knobs": {"bm": 128, ...}}; bad JSON is a UserError naming `what`.
  static Schedule from_json(const Json& j, std::string_view what);
  Json to_json() const;
  bool operator==(const Schedule&) const = default;
};

/// Knob names shared by every tiled GEMM-like family, so that exports (Triton configs,
/// CUTLASS-style reports) can read a schedule without knowing the family.
namespace knob {
inline constexpr std::string_view kBlockM = "block_m";  ///< thread-block tile rows
inline constexpr std::string_view kBlockN = "block_n";  ///< thread-block tile columns
inline constexpr std::string_view kBlockK = "block_k";  ///< reduction step per main-loop iteration
inline constexpr std::string_view kWarps = "warps";     ///< warps per thread block
inline constexpr std::string_view kStages = "stages";   ///< shared-memory pipeline stages
inline constexpr std::string_view kSplitK = "split_k";  ///< slices of the reduction axis
inline constexpr std::string_view kGroupM = "group_m";  ///< block rasterisation group (L2 reuse)
}  // namespace knob

/// A workload with a schedule to try, and the cost model's prediction once ranked.
struct Candidate {
  Workload workload;
  Schedule schedule;
  std::optional<double> predicted_us;  ///< cost model estimate [us], nullopt before ranking
};

}  // namespace tessera
