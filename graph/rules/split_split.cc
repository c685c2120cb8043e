// split_split: a Split of one part of a Split, along the same axis, is one Split into all the
// parts (merging three projections pairwise leaves two nested Splits; one copies less).
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

class SplitSplit : public BuiltinRule {
 public:
  SplitSplit() : BuiltinRule("split_split", /*canonical=*/true) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t s = 0; s < g.nodes().size(); ++s) {
      const Node& outer = g.nodes()[s];
      if (outer.removed || outer.op != OpType::kSplit) continue;
      int64_t axis = normalised_axis(g, outer);
      if (axis < 0) continue;
      for (ValueId part : outer.outputs) {
        NodeId c = sole_consumer(g, consumers, part);
        if (c != kNone && g.node(c).op == OpType::kSplit && g.node(c).inputs[0] == part &&
            normalised_axis(g, g.node(c)) == axis) {
          out.push_back(Match{{static_cast<NodeId>(s), c}, {}});
          break;
        }
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& outer = g.node(m.nodes[0]);
    const Node& inner = g.node(m.nodes[1]);
    auto axis = static_cast<size_t>(normalised_axis(g, outer));
    // The parts in order, the inner Split's in place of the part it splits.
    std::vector<ValueId> parts;
    for (ValueId p : outer.outputs) {
      if (p == inner.inputs[0]) {
        parts.insert(parts.end(), inner.outputs.begin(), inner.outputs.end());
      } else {
        parts.push_back(p);
      }
    }
    std::vector<int64_t> sizes;
    for (ValueId p : parts) sizes.push_back(g.value(p).shape[axis]);
    Graph out = g;
    std::vector<ValueId> made;
    try {
      ValueId sizes_v = out.add_constant(out.fresh_name("sizes"), Tensor::ints({static_cast<int64_t>(sizes.size())}, sizes));
      made = out.add_node(OpType::kSplit, {outer.inputs[0], sizes_v}, {{"axis", static_cast<int64_t>(axis)}},
                          out.fresh_name(outer.name), static_cast<int>(sizes.size()));
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      if (out.value(made[k]).shape != g.value(parts[k]).shape) return std::nullopt;
      out.replace_uses(parts[k], made[k]);
    }
    out.remove_node(m.nodes[1]);
    out.remove_node(m.nodes[0]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 12});
    ValueId outer_sizes = g.add_constant("outer", Tensor::ints({2}, {7, 5}));
    auto parts = g.add_node(OpType::kSplit, {x, outer_sizes}, {{"axis", int64_t{-1}}}, "outer", 2);
    ValueId inner_sizes = g.add_constant("inner", Tensor::ints({2}, {3, 4}));
    auto inner = g.add_node(OpType::kSplit, {parts[0], inner_sizes}, {{"axis", int64_t{2}}}, "inner", 2);
    g.add_output(g.add_node(OpType::kRelu, {inner[0]})[0]);
    g.add_output(g.add_node(OpType::kSigmoid, {inner[1]})[0]);
    g.add_output(g.add_node(OpType::kTanh, {parts[1]})[0]);
    return {std::move(g)};
  }
};

}  // namespace

std::unique_ptr<Rule> make_split_split() { return std::make_unique<SplitSplit>(); }

}  // namespace tessera::graph::builtin
