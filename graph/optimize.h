// Graph search: from a graph to a cheaper equivalent one by applying verified rewrites.
//
// backtrack (TASO): best-first over graphs with a priority queue on total cost, a visited
// set of structural hashes, and an alpha relaxation: a rewritten graph joins the queue if it
// costs less than alpha x the best so far, so the search may pass through slightly worse
// graphs, never through much worse ones. A child is costed when its parent is expanded and
// rebuilt when it is popped, so the queue holds (parent, rewrite) pairs, not graphs.
//
// mcts (sequential decisions, after X-RLflow): the graph is rewritten one committed decision
// at a time. Before each decision a Monte Carlo tree search over (rule, location) actions
// runs a few iterations: each walks the tree by UCT, expands one untried action, rolls out a
// few more rewrites (each the cheapest of a few random actions, worse or not) and backs up
// the relative cost reduction the iteration reached. The decision is the child with the
// best mean reward, so it can take a rewrite that costs more (enlarging a kernel) to reach
// one that saves more (merging). It stops when `patience` decisions in a row neither found
// a new best nor moved to a graph cheaper than every earlier decision's.
//
// Both finish with a steepest descent from the cheapest graph they saw (the best single
// rewrite while one lowers the cost), so a budget that runs out on the way still ends in a
// local optimum, and return that graph and the rewrites that lead to it.
//
// Neither chooses among the canonical rules (Rule::canonical): those are applied to a fixed
// point to the input and after every rewrite, and listed among the rewrites.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/oracle.h"
#include "graph/rules.h"

namespace tessera::graph {

/// How to search.
struct SearchOptions {
  std::string strategy = "backtrack";  ///< "backtrack" or "mcts"
  double alpha = 1.05;                 ///< backtrack: queue graphs cheaper than alpha x best
  int budget = 200;                    ///< backtrack: graphs expanded; mcts: tree iterations in all
  double time_limit_s = 0;             ///< stop after this long (0: no limit) [s]
  bool descend = true;                 ///< finish with steepest descent to a local optimum
  uint64_t seed = 1;                   ///< mcts: random choices
  int iterations_per_decision = 8;     ///< mcts: tree iterations before each committed rewrite
  int patience = 8;                    ///< mcts: stop after this many decisions that neither find a
                                       ///< new best nor reach a cheaper graph than before
  int rollout_depth = 3;               ///< mcts: rewrites per rollout
  int rollout_samples = 2;             ///< mcts: random actions compared per rollout step
  double exploration = 0.05;           ///< mcts: UCT exploration constant (rewards are fractions)
};

/// Progress of a search: graphs explored so far, the best cost [us], seconds elapsed.
using SearchProgress = std::function<void(int explored, double best_us, double seconds)>;

/// What a search found.
struct SearchResult {
  Graph best;                          ///< the cheapest graph seen
  double cost_before_us = 0;           ///< the input graph's cost [us]
  double cost_after_us = 0;            ///< best's cost [us]
  std::vector<std::string> rewrites;   ///< rules applied from the input to best, in order
  /// The graphs the search held best before `best`, most recent first (at most 3), each
  /// costing more than the next by the oracle: candidates for a measurement to choose among,
  /// where the oracle's ranking of close graphs may be wrong.
  std::vector<Graph> runners_up;
  int explored = 0;                    ///< graphs costed
  double seconds = 0;                  ///< search time [s]
  /// rewrites counted per rule (plus "constant_folding" for the nodes folded up front).
  std::map<std::string, int> counts() const;
  int folded_up_front = 0;             ///< nodes folded before the search
};

/// `g` after the fusions alone: a greedy descent (no alpha relaxation, no budget) over the
/// rules of `rules` that are fusions (Rule::fusion), to a fixed point.
SearchResult fuse_only(const Graph& g, const std::vector<const Rule*>& rules, CostOracle& oracle);

/// Searches for a cheaper graph equivalent to `g` with `rules`, costed by `oracle`.
/// An unknown strategy is a UserError.
SearchResult optimize_graph(const Graph& g, const std::vector<const Rule*>& rules, CostOracle& oracle,
                            const SearchOptions& options, const SearchProgress& progress = {});

}  // namespace tessera::graph
