// transpose_compose: two transposes in a row become one, or none.
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

class TransposeCompose : public BuiltinRule {
 public:
  TransposeCompose() : BuiltinRule("transpose_compose") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& first = g.nodes()[n];
      if (first.removed || first.op != OpType::kTranspose) continue;
      NodeId c = sole_consumer(g, consumers, first.outputs[0]);
      if (c != kNone && g.node(c).op == OpType::kTranspose) out.push_back(Match{{static_cast<NodeId>(n), c}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& first = g.node(m.nodes[0]);
    const Node& second = g.node(m.nodes[1]);
    size_t rank = g.value(first.inputs[0]).shape.size();
    std::vector<int64_t> p1 = transpose_perm(g, first), p2 = transpose_perm(g, second), q(rank);
    bool identity = true;
    for (size_t k = 0; k < rank; ++k) {
      q[k] = p1[static_cast<size_t>(p2[k])];
      identity = identity && q[k] == static_cast<int64_t>(k);
    }
    Graph out = g;
    ValueId result = first.inputs[0];
    if (!identity) result = out.add_node(OpType::kTranspose, {first.inputs[0]}, {{"perm", q}}, out.fresh_name("transpose"))[0];
    if (out.value(result).shape != g.value(second.outputs[0]).shape) return std::nullopt;
    out.replace_uses(second.outputs[0], result);
    out.remove_node(m.nodes[0]);
    out.remove_node(m.nodes[1]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    for (auto perms : {std::pair<std::vector<int64_t>, std::vector<int64_t>>{{0, 2, 1, 3}, {0, 2, 3, 1}},
                       std::pair<std::vector<int64_t>, std::vector<int64_t>>{{1, 0, 2}, {1, 0, 2}}}) {
      Graph g;
      std::vector<int64_t> shape = perms.first.size() == 4 ? std::vector<int64_t>{2, 3, 4, 5} : std::vector<int64_t>{3, 4, 5};
      ValueId x = g.add_input("x", ElemType::kF32, shape);
      ValueId t = g.add_node(OpType::kTranspose, {x}, {{"perm", perms.first}})[0];
      t = g.add_node(OpType::kTranspose, {t}, {{"perm", perms.second}})[0];
      g.add_output(g.add_node(OpType::kRelu, {t})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }
};

}  // namespace

std::unique_ptr<Rule> make_transpose_compose() { return std::make_unique<TransposeCompose>(); }

}  // namespace tessera::graph::builtin
