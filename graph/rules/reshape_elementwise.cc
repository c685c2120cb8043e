// reshape_elementwise: an elementwise Add, Sub, Mul or Div of a Reshape's result and a tensor
// of the same shape is the operation on the Reshape's input (the other operand reshaped to
// it), then the Reshape. Applied where the Reshape's input is a contraction's result: a
// residual added after a projection's Reshape thus comes next to the projection, where
// fuse_epilogue can take it.
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

class ReshapeElementwise : public BuiltinRule {
 public:
  ReshapeElementwise() : BuiltinRule("reshape_elementwise", /*canonical=*/true) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& e = g.nodes()[n];
      if (e.removed || !binary(e.op) || e.inputs.size() != 2 || e.inputs[0] == e.inputs[1]) continue;
      const auto& y = g.value(e.outputs[0]);
      for (int side = 0; side < 2; ++side) {
        ValueId r = e.inputs[static_cast<size_t>(side)];
        ValueId other = e.inputs[static_cast<size_t>(1 - side)];
        NodeId p = g.value(r).producer;
        if (p == kNone || g.node(p).op != OpType::kReshape ||
            sole_consumer(g, consumers, r) != static_cast<NodeId>(n)) {
          continue;
        }
        // The Reshape's input is a contraction's result it alone reads (what fuse_epilogue can
        // extend); the other operand is not one, or the rewrite would undo itself on the result.
        ValueId x = g.node(p).inputs[0];
        if (!produced_by_contraction(g, x) || sole_consumer(g, consumers, x) != p ||
            produced_by_contraction(g, other)) {
          continue;
        }
        const Value& before = g.value(x);
        if (g.value(other).shape != y.shape || g.value(r).shape != y.shape || before.type != y.type ||
            g.value(other).type != y.type || before.shape == y.shape) {
          continue;
        }
        out.push_back(Match{{p, static_cast<NodeId>(n)}, {}});
        break;
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& reshape = g.node(m.nodes[0]);
    const Node& e = g.node(m.nodes[1]);
    ValueId r = reshape.outputs[0];
    ValueId x = reshape.inputs[0];
    const auto& before = g.value(x).shape;
    const auto& after = g.value(e.outputs[0]).shape;
    Graph out = g;
    try {
      ValueId to_before = add_shape(out, before);
      ValueId to_after = add_shape(out, after);
      bool left = e.inputs[0] == r;
      ValueId other = out.add_node(OpType::kReshape, {left ? e.inputs[1] : e.inputs[0], to_before}, {},
                                   out.fresh_name("reshape"))[0];
      std::vector<ValueId> operands = left ? std::vector<ValueId>{x, other} : std::vector<ValueId>{other, x};
      ValueId inner = out.add_node(e.op, operands, e.attrs, out.fresh_name(e.name))[0];
      ValueId result = out.add_node(OpType::kReshape, {inner, to_after}, {}, out.fresh_name("reshape"))[0];
      if (out.value(result).shape != after) return std::nullopt;
      out.replace_uses(e.outputs[0], result);
    } catch (const UserError&) {
      return std::nullopt;
    }
    out.remove_node(m.nodes[1]);
    out.remove_node(m.nodes[0]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {6, 8});
    ValueId w = g.add_constant("w", random_tensor({8, 8}, 24));
    ValueId res = g.add_input("res", ElemType::kF32, {2, 3, 8});
    ValueId shape = g.add_constant("shape", Tensor::ints({3}, {2, 3, 8}));
    ValueId t = g.add_node(OpType::kMatMul, {x, w})[0];
    t = g.add_node(OpType::kReshape, {t, shape})[0];
    g.add_output(g.add_node(OpType::kAdd, {res, t})[0]);
    // The reshaped value as the right operand of a Sub.
    ValueId w2 = g.add_constant("w2", random_tensor({8, 8}, 25));
    ValueId u = g.add_node(OpType::kReshape, {g.add_node(OpType::kMatMul, {x, w2})[0], shape})[0];
    g.add_output(g.add_node(OpType::kSub, {res, u})[0]);
    return {std::move(g)};
  }

 private:
  static bool binary(OpType op) {
    return op == OpType::kAdd || op == OpType::kSub || op == OpType::kMul || op == OpType::kDiv;
  }
  static bool produced_by_contraction(const Graph& g, ValueId v) {
    NodeId p = g.value(v).producer;
    return p != kNone && is_contraction(g.node(p).op);
  }
};

}  // namespace

std::unique_ptr<Rule> make_reshape_elementwise() { return std::make_unique<ReshapeElementwise>(); }

}  // namespace tessera::graph::builtin
