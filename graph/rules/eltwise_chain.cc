// eltwise_chain: two elementwise operators in a row become one chain.
#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "graph/builtin_rule.h"
#include "graph/ops.h"

namespace tessera::graph::builtin {
namespace {

bool chainable(const Node& n) { return n.op == OpType::kEltwiseChain || chain_step(n).has_value(); }

class EltwiseChainRule : public BuiltinRule {
 public:
  EltwiseChainRule() : BuiltinRule("eltwise_chain", /*canonical=*/false, /*fusion=*/true) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t p = 0; p < g.nodes().size(); ++p) {
      const Node& first = g.nodes()[p];
      if (first.removed || !chainable(first) || !is_float(g.value(first.outputs[0]).type)) continue;
      ValueId v = first.outputs[0];
      NodeId c = sole_consumer(g, consumers, v);
      if (c == kNone || !fits(g, static_cast<NodeId>(p), g.node(c), v)) continue;
      out.push_back(Match{{static_cast<NodeId>(p), c}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& first = g.node(m.nodes[0]);
    const Node& next = g.node(m.nodes[1]);
    ValueId v = first.outputs[0];
    std::vector<std::string> steps;
    std::vector<ValueId> inputs = first.inputs;
    if (first.op == OpType::kEltwiseChain) steps = split_steps(first.attr_string("ops", ""));
    else steps.push_back(*chain_step(first));
    std::vector<std::string> next_steps;
    std::vector<ValueId> next_inputs;
    if (next.op == OpType::kEltwiseChain) {
      next_steps = split_steps(next.attr_string("ops", ""));
      next_inputs.assign(next.inputs.begin() + 1, next.inputs.end());
    } else {
      next_steps.push_back(*chain_step(next));
      if (next.inputs.size() == 2) next_inputs.push_back(next.inputs[0] == v ? next.inputs[1] : next.inputs[0]);
    }
    steps.insert(steps.end(), next_steps.begin(), next_steps.end());
    inputs.insert(inputs.end(), next_inputs.begin(), next_inputs.end());
    return replace_by_one(g, m.nodes, OpType::kEltwiseChain, inputs, {{"ops", join_steps(steps)}}, "chain");
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
    ValueId y = g.add_input("y", ElemType::kF32, {4, 8});
    ValueId s = g.add_constant("s", Tensor::floats({}, {0.125f}));
    ValueId t = g.add_node(OpType::kDiv, {x, s})[0];
    t = g.add_node(OpType::kAdd, {y, t})[0];
    t = g.add_node(OpType::kSigmoid, {t})[0];
    t = g.add_node(OpType::kSub, {t, y})[0];
    g.add_output(t);
    return {std::move(g)};
  }

 private:
  // Whether `next` continues the chain ending in `first` (output v): v must be the running
  // (left) operand, and the chain must keep v's shape.
  static bool fits(const Graph& g, NodeId first, const Node& next, ValueId v) {
    if (!chainable(next) || g.value(next.outputs[0]).shape != g.value(v).shape) return false;
    if (next.op == OpType::kEltwiseChain) return next.inputs[0] == v && count_uses(next, v) == 1 && !depends(g, first, next);
    if (next.inputs.size() == 1) return next.inputs[0] == v;
    bool left = next.inputs[0] == v;
    bool commutes = next.op == OpType::kAdd || next.op == OpType::kMul;
    if (!left && !commutes) return false;
    if (next.inputs[0] == next.inputs[1]) return false;
    return !depends(g, first, next);
  }
  static int count_uses(const Node& n, ValueId v) { return static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), v)); }
  // Whether another operand of `next` is computed from `first` (fusing would make a cycle).
  static bool depends(const Graph& g, NodeId first, const Node& next) {
    for (ValueId in : next.inputs) {
      if (in == g.node(first).outputs[0]) continue;
      NodeId p = g.value(in).producer;
      if (p != kNone && g.reaches(first, p)) return true;
    }
    return false;
  }
};

}  // namespace

std::unique_ptr<Rule> make_eltwise_chain() { return std::make_unique<EltwiseChainRule>(); }

}  // namespace tessera::graph::builtin
