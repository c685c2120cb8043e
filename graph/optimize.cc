#include "graph/optimize.h"

#include <chrono>
#include <cmath>
#include <queue>
#include <random>
#include <set>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

using Clock = std::chrono::steady_clock;

struct Action {
  const Rule* rule;
  Match match;
};

// The search's rules: the actions it chooses among, and the canonical ones (Rule::canonical)
// applied to a fixed point after every action instead.
struct Rules {
  std::vector<const Rule*> actions;
  std::vector<const Rule*> canonical;
};

std::vector<Action> actions_of(const Graph& g, const Rules& rules) {
  auto consumers = g.consumers();
  std::vector<Action> out;
  for (const Rule* r : rules.actions) {
    for (Match& m : r->find(g, consumers)) out.push_back({r, std::move(m)});
  }
  return out;
}

// A graph the search reached, with how it got there.
struct State {
  Graph graph;
  double cost_us = 0;
  std::vector<std::string> path;
};
using StatePtr = std::shared_ptr<const State>;

// The best graph so far, and the bests it replaced (most recent first, at most
// kRunnersUp): the search's final candidates, which `graph optimize --measure` runs.
class Incumbent {
 public:
  explicit Incumbent(StatePtr s) : current_(std::move(s)) {}
  Incumbent& operator=(StatePtr s) {
    previous_.insert(previous_.begin(), std::move(current_));
    if (previous_.size() > kRunnersUp) previous_.pop_back();
    current_ = std::move(s);
    return *this;
  }
  const State* operator->() const { return current_.get(); }
  const State& operator*() const { return *current_; }
  const std::vector<StatePtr>& previous() const { return previous_; }

 private:
  static constexpr size_t kRunnersUp = 3;
  StatePtr current_;
  std::vector<StatePtr> previous_;
};

class Timer {
 public:
  explicit Timer(double limit_s) : start_(Clock::now()), limit_s_(limit_s) {}
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  bool expired() const { return limit_s_ > 0 && seconds() >= limit_s_; }

 private:
  Clock::time_point start_;
  double limit_s_;
};

// Applies the canonical rules to `g` until none applies, appending their names to `path`.
void canonicalise(Graph& g, const Rules& rules, std::vector<std::string>& path) {
  auto apply_one = [&] {
    auto consumers = g.consumers();
    for (const Rule* r : rules.canonical) {
      for (const Match& m : r->find(g, consumers)) {
        if (std::optional<Graph> next = r->apply(g, m)) {
          g = std::move(*next);
          path.push_back(r->name());
          return true;
        }
      }
    }
    return false;
  };
  // A canonical rewrite drops or merges data-moving operators, renames one, or moves an
  // elementwise one before a contraction's Reshape (where it does not match again), so a
  // fixed point comes within about one step per operator; the bound only guards against a
  // wrong rule.
  const size_t bound = 2 * g.nodes().size() + 16;
  for (size_t steps = 0; steps < bound && apply_one(); ++steps) {
  }
}

std::optional<State> child_of(const State& parent, const Action& a, const Rules& rules, CostOracle& oracle) {
  std::optional<Graph> g = a.rule->apply(parent.graph, a.match);
  if (!g) return std::nullopt;
  State s;
  s.path = parent.path;
  s.path.push_back(a.rule->name());
  canonicalise(*g, rules, s.path);
  s.cost_us = oracle.graph_cost(*g);
  s.graph = std::move(*g);
  return s;
}

// TASO's cost-based backtracking.
void backtrack(const StatePtr& root, const Rules& rules, CostOracle& oracle,
               const SearchOptions& options, const SearchProgress& progress, Incumbent& best, int& explored,
               const Timer& timer) {
  struct Entry {
    double cost_us;
    int64_t order;  // FIFO among equal costs, for determinism
    StatePtr parent;
    std::shared_ptr<const Action> action;  // null: the parent itself
    bool operator>(const Entry& o) const { return cost_us != o.cost_us ? cost_us > o.cost_us : order > o.order; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> queue;
  std::unordered_set<uint64_t> visited{root->graph.structural_hash()};
  int64_t order = 0;
  queue.push({root->cost_us, order++, root, nullptr});
  int expanded = 0;
  while (!queue.empty() && expanded < options.budget && !timer.expired()) {
    Entry e = queue.top();
    queue.pop();
    if (e.cost_us > options.alpha * best->cost_us) continue;
    StatePtr current = e.parent;
    if (e.action) {
      auto s = child_of(*e.parent, *e.action, rules, oracle);
      if (!s) continue;
      current = std::make_shared<const State>(std::move(*s));
    }
    ++expanded;
    for (const Action& a : actions_of(current->graph, rules)) {
      auto child = child_of(*current, a, rules, oracle);
      ++explored;
      if (!child) continue;
      if (!visited.insert(child->graph.structural_hash()).second) continue;
      // TASO's order: queue against the best so far, then update the best.
      if (child->cost_us < options.alpha * best->cost_us) {
        queue.push({child->cost_us, order++, current, std::make_shared<const Action>(a)});
      }
      if (child->cost_us < best->cost_us) best = std::make_shared<const State>(*child);
    }
    if (progress) progress(explored, best->cost_us, timer.seconds());
  }
}

// Monte Carlo tree search over rewrite actions, as a sequence of decisions: a few
// iterations of search from the current graph, then a commitment to the child with the best
// mean reward (which may cost more than the current graph), until `patience` decisions in a
// row find nothing cheaper than the best so far or the budget runs out.
void mcts(const StatePtr& start, const Rules& rules, CostOracle& oracle,
          const SearchOptions& options, const SearchProgress& progress, Incumbent& best, int& explored,
          const Timer& timer) {
  struct TreeNode {
    StatePtr state;
    std::vector<Action> untried;
    std::vector<int> children;
    int visits = 0;
    double reward = 0;
    bool listed = false;  // untried holds the state's actions
  };
  std::mt19937_64 rng(options.seed);
  const double start_cost = start->cost_us;
  auto note = [&](const State& s) {
    if (s.cost_us < best->cost_us) best = std::make_shared<const State>(s);
  };
  StatePtr root_state = start;
  double lowest_root = start_cost;
  int iterations = 0, stale = 0;
  while (iterations < options.budget && !timer.expired() && stale < options.patience) {
    double best_before = best->cost_us;
    std::vector<TreeNode> tree;
    tree.push_back(TreeNode{root_state, {}, {}, 0, 0, false});
    auto list_actions = [&](TreeNode& n) {
      if (n.listed) return;
      n.untried = actions_of(n.state->graph, rules);
      std::shuffle(n.untried.begin(), n.untried.end(), rng);
      n.listed = true;
    };
    for (int it = 0; it < options.iterations_per_decision && iterations < options.budget && !timer.expired();
         ++it, ++iterations) {
      std::vector<int> path{0};
      int cur = 0;
      // Selection: descend through fully expanded nodes by UCT.
      while (true) {
        list_actions(tree[static_cast<size_t>(cur)]);
        const TreeNode& n = tree[static_cast<size_t>(cur)];
        if (!n.untried.empty() || n.children.empty()) break;
        int pick = n.children[0];
        double best_score = -INFINITY;
        for (int c : n.children) {
          const TreeNode& ch = tree[static_cast<size_t>(c)];
          double score = ch.reward / std::max(ch.visits, 1) +
                         options.exploration * std::sqrt(std::log(n.visits + 1.0) / std::max(ch.visits, 1));
          if (score > best_score) {
            best_score = score;
            pick = c;
          }
        }
        cur = pick;
        path.push_back(cur);
      }
      // Expansion: one untried action that applies.
      while (!tree[static_cast<size_t>(cur)].untried.empty()) {
        Action a = std::move(tree[static_cast<size_t>(cur)].untried.back());
        tree[static_cast<size_t>(cur)].untried.pop_back();
        auto child = child_of(*tree[static_cast<size_t>(cur)].state, a, rules, oracle);
        ++explored;
        if (!child) continue;
        note(*child);
        tree.push_back(TreeNode{std::make_shared<const State>(std::move(*child)), {}, {}, 0, 0, false});
        int id = static_cast<int>(tree.size()) - 1;
        tree[static_cast<size_t>(cur)].children.push_back(id);
        cur = id;
        path.push_back(cur);
        break;
      }
      // Rollout: a few more rewrites, each the cheapest of a few random actions, worse or not.
      StatePtr roll = tree[static_cast<size_t>(cur)].state;
      double lowest = roll->cost_us;
      for (int d = 0; d < options.rollout_depth; ++d) {
        std::vector<Action> acts = actions_of(roll->graph, rules);
        std::optional<State> pick;
        for (int k = 0; k < options.rollout_samples && !acts.empty(); ++k) {
          size_t i = std::uniform_int_distribution<size_t>(0, acts.size() - 1)(rng);
          auto s = child_of(*roll, acts[i], rules, oracle);
          ++explored;
          acts[i] = std::move(acts.back());
          acts.pop_back();
          if (s && (!pick || s->cost_us < pick->cost_us)) pick = std::move(s);
        }
        if (!pick) break;
        note(*pick);
        lowest = std::min(lowest, pick->cost_us);
        roll = std::make_shared<const State>(std::move(*pick));
      }
      // Reward: the cost the iteration reached, as a fraction of the search's starting cost.
      double reward = (start_cost - lowest) / start_cost;
      for (int id : path) {
        tree[static_cast<size_t>(id)].visits += 1;
        tree[static_cast<size_t>(id)].reward += reward;
      }
      if (progress) progress(explored, best->cost_us, timer.seconds());
    }
    // Decision: the child with the best mean reward.
    const TreeNode& root = tree[0];
    if (root.children.empty()) break;
    int chosen = root.children[0];
    for (int c : root.children) {
      const TreeNode& ch = tree[static_cast<size_t>(c)];
      const TreeNode& cur = tree[static_cast<size_t>(chosen)];
      if (ch.reward / std::max(ch.visits, 1) > cur.reward / std::max(cur.visits, 1)) chosen = c;
    }
    root_state = tree[static_cast<size_t>(chosen)].state;
    bool progressed = best->cost_us < best_before || root_state->cost_us < lowest_root;
    lowest_root = std::min(lowest_root, root_state->cost_us);
    stale = progressed ? 0 : stale + 1;
  }
}

// Steepest descent from `best` until no single rewrite lowers the cost: the searches end in
// a local optimum even when their budget ran out on the way to one.
void descend(const Rules& rules, CostOracle& oracle, const SearchProgress& progress,
             Incumbent& best, int& explored, const Timer& timer) {
  while (!timer.expired()) {
    std::optional<State> step;
    for (const Action& a : actions_of(best->graph, rules)) {
      auto child = child_of(*best, a, rules, oracle);
      ++explored;
      if (child && child->cost_us < best->cost_us && (!step || child->cost_us < step->cost_us)) step = std::move(child);
    }
    if (!step) return;
    best = std::make_shared<const State>(std::move(*step));
    if (progress) progress(explored, best->cost_us, timer.seconds());
  }
}

}  // namespace

std::map<std::string, int> SearchResult::counts() const {
  std::map<std::string, int> c;
  if (folded_up_front > 0) c["constant_folding"] = folded_up_front;
  for (const std::string& r : rewrites) c[r] += 1;
  return c;
}

SearchResult optimize_graph(const Graph& g, const std::vector<const Rule*>& rules, CostOracle& oracle,
                            const SearchOptions& options, const SearchProgress& progress) {
  if (options.strategy != "backtrack" && options.strategy != "mcts") {
    throw UserError("unknown graph search strategy '" + options.strategy + "' (valid: backtrack, mcts)");
  }
  if (options.alpha < 1) throw UserError("--alpha must be at least 1, not " + std::to_string(options.alpha));
  if (options.budget < 0) throw UserError("--budget must not be negative");
  Timer timer(options.time_limit_s);
  SearchResult result;
  if (!oracle.calibrated()) oracle.calibrate(g);
  Graph input = g;
  result.cost_before_us = oracle.graph_cost(input);

  Rules split;
  for (const Rule* r : rules) (r->canonical() ? split.canonical : split.actions).push_back(r);

  // Weights are prepared before inference: fold what is constant first.
  State start;
  start.graph = g;
  result.folded_up_front = fold_constants(start.graph);
  canonicalise(start.graph, split, start.path);
  start.cost_us = oracle.graph_cost(start.graph);
  auto root = std::make_shared<const State>(std::move(start));
  Incumbent best(root);
  int explored = 1;
  if (options.strategy == "backtrack") {
    backtrack(root, split, oracle, options, progress, best, explored, timer);
  } else {
    mcts(root, split, oracle, options, progress, best, explored, timer);
  }
  if (options.descend) descend(split, oracle, progress, best, explored, timer);
  result.best = best->graph;
  result.cost_after_us = best->cost_us;
  result.rewrites = best->path;
  for (const StatePtr& s : best.previous())
    if (s && s->graph.structural_hash() != best->graph.structural_hash()) result.runners_up.push_back(s->graph);
  result.explored = explored;
  result.seconds = timer.seconds();
  return result;
}

SearchResult fuse_only(const Graph& g, const std::vector<const Rule*>& rules, CostOracle& oracle) {
  std::vector<const Rule*> fusions;
  for (const Rule* r : rules) {
    if (r->fusion()) fusions.push_back(r);
  }
  SearchOptions greedy;
  greedy.alpha = 1.0;
  greedy.budget = 0;
  return optimize_graph(g, fusions, oracle, greedy);
}

}  // namespace tessera::graph
