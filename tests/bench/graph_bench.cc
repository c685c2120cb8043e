// Graph-search benchmark: for each model, the estimated cost of the graph as exported, after
// the fusions every inference framework does (epilogue, elementwise-chain and GELU fusion,
// identity and reshape folding: a greedy pass over those rules only), and after the search
// with every rule (backtrack and mcts); the search's gain over the fused graph is what
// compares with TASO's and Tensat's published gains, which were measured against fused
// baselines (TensorRT, TensorFlow XLA).
//
//   graph_bench [--db FILE] [--target SPEC] [--detail] MODEL.onnx...
//
// --target names the GPU spec whose costs to use (default h100_sxm): the database's target of
// that spec answers first, then its records of the same architecture.
//
// --detail also prints, per model, the fused and the backtracking graph's costs summed by
// operator type and the source of each cost (measured, model, memory), on stderr.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include "core/error.h"
#include "db/database.h"
#include "kernels/families.h"
#include "graph/onnx_io.h"
#include "graph/equivalence.h"
#include "graph/optimize.h"

using namespace tessera;
using namespace tessera::graph;

namespace {

// Costs of `g`'s live operators summed by operator type and cost source, on stderr.
void print_detail(const char* label, const Graph& g, CostOracle& oracle) {
  std::map<std::string, std::pair<int, double>> by_kind;
  for (const Node& n : g.nodes()) {
    if (n.removed) continue;
    OpCost c = oracle.cost(g, n);
    if (c.source == CostSource::kFree) continue;
    auto& [count, us] = by_kind[std::string(op_type_name(n.op)) + " (" + std::string(cost_source_name(c.source)) + ")"];
    ++count;
    us += c.time_us;
  }
  std::fprintf(stderr, "  %s:\n", label);
  for (const auto& [kind, cu] : by_kind) std::fprintf(stderr, "    %-28s %4d %9.1f us\n", kind.c_str(), cu.first, cu.second);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::optional<db::TuningDatabase> database;
    std::vector<std::string> models;
    bool detail = false;
    std::string spec = "h100_sxm";
    for (int k = 1; k < argc; ++k) {
      if (std::strcmp(argv[k], "--detail") == 0) {
        detail = true;
      } else if (std::strcmp(argv[k], "--target") == 0 && k + 1 < argc) {
        spec = argv[++k];
      } else if (std::strcmp(argv[k], "--db") == 0 && k + 1 < argc) {
        database.emplace(db::TuningDatabase::open(argv[++k]));
      } else {
        models.push_back(argv[k]);
      }
    }
    kernels::FamilyRegistry families;
    kernels::register_builtin_families(families);
    HardwareSpec hw = find_spec(spec);
    // The database's target of that spec when it has one (as `graph optimize` resolves it), else a
    // model-only target.
    Target target = Target::for_spec(hw, "none");
    if (database) {
      for (const Target& t : database->targets()) {
        if (t.spec_name == hw.name) target = t;
      }
    }
    RuleSet set = load_rules();
    std::vector<const Rule*> all;
    for (const auto& r : set.rules) all.push_back(r.get());
    std::printf("%-14s %5s %10s %10s %6s | %10s %6s %7s %6s %4s | %10s %6s %7s %4s\n", "model", "ops", "as-is us",
                "fused us", "fused", "backtrack", "gain", "search", "ops", "ok", "mcts", "gain", "search", "ok");
    for (const std::string& path : models) {
      Graph g = import_onnx(path);
      CostOracle oracle(families, hw, target, database ? &*database : nullptr);
      SearchOptions backtrack;
      SearchResult b = optimize_graph(g, all, oracle, backtrack);
      SearchOptions mcts;
      mcts.strategy = "mcts";
      mcts.budget = 3000;
      SearchResult m = optimize_graph(g, all, oracle, mcts);
      // The fusions alone (after the timed searches: its long run leaves the heap fragmented).
      SearchResult fused = fuse_only(g, all, oracle);
      auto gain = [&](double cost) { return 100.0 * (1 - cost / fused.cost_after_us); };
      std::printf("%-14s %5d %10.1f %10.1f %5.1f%% | %10.1f %5.1f%% %6.2fs %6d %4s | %10.1f %5.1f%% %6.2fs %4s\n",
                  std::filesystem::path(path).stem().c_str(), g.live_nodes(), fused.cost_before_us,
                  fused.cost_after_us, 100.0 * (1 - fused.cost_after_us / fused.cost_before_us), b.cost_after_us,
                  gain(b.cost_after_us), b.seconds, b.best.live_nodes(), check_equivalent(g, b.best, 1) ? "NO" : "yes",
                  m.cost_after_us, gain(m.cost_after_us), m.seconds, check_equivalent(g, m.best, 1) ? "NO" : "yes");
      std::fprintf(stderr, "%s: backtrack costed %d graphs, mcts %d\n", path.c_str(), b.explored, m.explored);
      if (detail) {
        print_detail("fused", fused.best, oracle);
        print_detail("backtrack", b.best, oracle);
      }
      std::fflush(stdout);
    }
    std::printf("costs: %s model estimates for %s in f16%s; gain = reduction from the fused graph\n",
                database ? "measured records where the database has them, else" : "analytic", spec.c_str(),
                database ? "" : " (no database)");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "graph_bench: " << e.what() << "\n";
    return 1;
  }
}
