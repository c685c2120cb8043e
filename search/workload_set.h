// Workload sets: the JSON files (configs/workloads/*.json) that name the operators a tuning
// job covers and how often each occurs in the model it stands for.
//
//   {"name": "default", "description": "...",
//    "workloads": ["matmul:m=4096,n=4096,k=4096:f16",
//                  {"spec": "softmax:rows=16384,cols=4096:f16", "weight": 12, "label": "bert.attn"},
//                  {"kind": "layernorm", "rows": 4096, "cols": 768, "dtype": "f16"}]}
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "core/workload.h"

namespace tessera::search {

/// One operator of a set.
struct WorkloadEntry {
  Workload workload;
  double weight = 1;   ///< occurrences in the model (end-to-end time = sum weight * time)
  std::string label;   ///< optional human name, e.g. "bert.ffn1"
};

/// A named list of distinct workloads.
struct WorkloadSet {
  std::string name;
  std::string description;
  std::vector<WorkloadEntry> entries;  ///< file order; keys are distinct
};

/// Parses a set; a bad entry is a UserError naming `what` and the entry's position.
WorkloadSet parse_workload_set(const Json& j, std::string_view what);
/// Reads and parses a set file.
WorkloadSet load_workload_set(const std::string& path);

}  // namespace tessera::search
