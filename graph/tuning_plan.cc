#include "graph/tuning_plan.h"

#include <algorithm>
#include <map>

#include "graph/optimize.h"
#include "graph/oracle.h"
#include "graph/rules.h"

namespace tessera::graph {

std::vector<search::WorkloadEntry> tuning_workloads(const Graph& g, const kernels::FamilyRegistry& families,
                                                    const HardwareSpec& hw, DType dtype, db::TuningDatabase* db,
                                                    const Target& target) {
  RuleSet set = load_rules();
  std::vector<const Rule*> rules = set.all();
  std::vector<search::WorkloadEntry> entries = graph_workloads(g, dtype);
  std::map<std::string, size_t> index;
  for (size_t k = 0; k < entries.size(); ++k) index[entries[k].workload.key()] = k;
  auto add = [&](const Graph& optimised) {
    for (search::WorkloadEntry& e : graph_workloads(optimised, dtype)) {
      auto it = index.find(e.workload.key());
      if (it == index.end()) {
        index[e.workload.key()] = entries.size();
        entries.push_back(std::move(e));
      } else {
        entries[it->second].weight = std::max(entries[it->second].weight, e.weight);
      }
    }
  };
  CostOracle model_only(families, hw, Target::for_spec(hw, "none"), nullptr, dtype);
  add(fuse_only(g, rules, model_only).best);
  add(optimize_graph(g, rules, model_only, SearchOptions{}).best);
  if (db) {
    CostOracle measured(families, hw, target, db, dtype);
    add(fuse_only(g, rules, measured).best);
    add(optimize_graph(g, rules, measured, SearchOptions{}).best);
  }
  return entries;
}

}  // namespace tessera::graph
