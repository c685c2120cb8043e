// The tuning plan of a model: which operator workloads a tuning job for a graph should measure
// so that the graph searches find measured costs on both sides of their rewrites.
#pragma once

#include <vector>

#include "core/dtype.h"
#include "core/hardware.h"
#include "db/database.h"
#include "graph/ir.h"
#include "kernels/kernel_family.h"
#include "search/workload_set.h"

namespace tessera::graph {

/// The workloads a tuning job for `g` should cover: those of `g`, of its fused graph
/// (fuse_only) and of the graphs a backtracking search with the shipped rules finds, with model-only costs for `hw` and, when
/// `db` is given, with the costs it measured for `target` (what `graph optimize --db` would
/// pick, so a second job measures the rewrites the first one's measurements made attractive);
/// so that both sides of the rewrites (and the fused baseline) get measured costs. Weighted by occurrences (the largest
/// of the graphs' counts), floating tensors in `dtype`.
std::vector<search::WorkloadEntry> tuning_workloads(const Graph& g, const kernels::FamilyRegistry& families,
                                                    const HardwareSpec& hw, DType dtype,
                                                    db::TuningDatabase* db = nullptr, const Target& target = {});

}  // namespace tessera::graph
