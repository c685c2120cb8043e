// transpose_unit_dims: a Transpose that moves only axes of extent 1 (the batch axis of a
// batch-1 sequence, say) keeps every element where it was: it is a Reshape, a view.
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

class TransposeUnitDims : public BuiltinRule {
 public:
  TransposeUnitDims() : BuiltinRule("transpose_unit_dims", /*canonical=*/true, /*fusion=*/true) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>&) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& t = g.nodes()[n];
      if (t.removed || t.op != OpType::kTranspose) continue;
      const auto& shape = g.value(t.inputs[0]).shape;
      std::vector<int64_t> perm = transpose_perm(g, t);
      // The axes of extent > 1, in their new order, must keep their old order.
      int64_t last = -1;
      bool order_kept = perm.size() == shape.size();
      for (size_t k = 0; k < perm.size() && order_kept; ++k) {
        if (perm[k] < 0 || perm[k] >= static_cast<int64_t>(shape.size())) {
          order_kept = false;
        } else if (shape[static_cast<size_t>(perm[k])] != 1) {
          order_kept = perm[k] > last;
          last = perm[k];
        }
      }
      if (order_kept) out.push_back(Match{{static_cast<NodeId>(n)}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& t = g.node(m.nodes[0]);
    const auto& shape = g.value(t.outputs[0]).shape;
    Graph out = g;
    return replace_by_one(out, {m.nodes[0]}, OpType::kReshape, {t.inputs[0], add_shape(out, shape)}, {},
                          t.name + "~reshape");
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    for (auto [shape, perm] :
         {std::pair<std::vector<int64_t>, std::vector<int64_t>>{{1, 5, 4}, {1, 0, 2}},
          std::pair<std::vector<int64_t>, std::vector<int64_t>>{{3, 1, 1, 4}, {0, 2, 1, 3}},
          std::pair<std::vector<int64_t>, std::vector<int64_t>>{{6, 1, 5}, {1, 0, 2}}}) {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, shape);
      ValueId y = g.add_node(OpType::kTranspose, {x}, {{"perm", perm}})[0];
      g.add_output(g.add_node(OpType::kRelu, {y})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }
};

}  // namespace

std::unique_ptr<Rule> make_transpose_unit_dims() { return std::make_unique<TransposeUnitDims>(); }

}  // namespace tessera::graph::builtin
