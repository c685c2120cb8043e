// layout_chain: a chain of Reshapes (Flatten, Squeeze, Unsqueeze) and Transposes, each value
// read only by the next, with two Transposes or more, is at most one: a Reshape of the input
// into the finest axes the chain distinguishes, one Transpose of those, a Reshape to the
// result. (ViT's packed projection is reshaped, transposed, then split into heads and
// transposed again.)
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

bool is_reshape_op(OpType op) {
  return op == OpType::kReshape || op == OpType::kFlatten || op == OpType::kSqueeze || op == OpType::kUnsqueeze;
}

class LayoutChain : public BuiltinRule {
 public:
  LayoutChain() : BuiltinRule("layout_chain", /*canonical=*/true) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    std::vector<bool> seen(g.nodes().size(), false);
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& t = g.nodes()[n];
      if (t.removed || t.op != OpType::kTranspose || seen[n]) continue;
      // Back to the chain's first node, then forward to its last.
      auto first = static_cast<NodeId>(n);
      while (true) {
        NodeId p = g.value(g.node(first).inputs[0]).producer;
        if (p == kNone || !layout_op(g.node(p).op) || sole_consumer(g, consumers, g.node(p).outputs[0]) != first) break;
        first = p;
      }
      Match m{{first}, {}};
      while (true) {
        ValueId v = g.node(m.nodes.back()).outputs[0];
        NodeId c = sole_consumer(g, consumers, v);
        if (c == kNone || !layout_op(g.node(c).op) || g.node(c).inputs[0] != v || folds_into_matmul(g, consumers, c)) {
          break;
        }
        m.nodes.push_back(c);
      }
      int transposes = 0;
      for (NodeId c : m.nodes) {
        seen[static_cast<size_t>(c)] = true;
        transposes += g.node(c).op == OpType::kTranspose;
      }
      if (transposes < 1) continue;
      auto plan = compose(g, m.nodes);
      if (plan && (transposes >= 2 || plan->identity)) out.push_back(std::move(m));
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    auto plan = compose(g, m.nodes);
    if (!plan) return std::nullopt;
    ValueId x = g.node(m.nodes.front()).inputs[0];
    ValueId old = g.node(m.nodes.back()).outputs[0];
    Graph out = g;
    try {
      ValueId v = x;
      if (!plan->identity) {
        v = out.add_node(OpType::kReshape, {v, add_shape(out, plan->atoms)}, {}, out.fresh_name("reshape"))[0];
        v = out.add_node(OpType::kTranspose, {v}, {{"perm", plan->perm}}, out.fresh_name("transpose"))[0];
      }
      v = out.add_node(OpType::kReshape, {v, add_shape(out, g.value(old).shape)}, {}, out.fresh_name("reshape"))[0];
      if (out.value(v).shape != g.value(old).shape) return std::nullopt;
      out.replace_uses(old, v);
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (NodeId n : m.nodes) out.remove_node(n);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    // ViT: [5, 1, 24] -> [5, 1, 3, 8] -> [1, 5, 1, 3, 8] -> transposed [3, 5, 1, 1, 8] ->
    // squeezed [3, 5, 1, 8] -> [3, 5, 2, 4] -> transposed [3, 2, 5, 4].
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {5, 1, 24});
      ValueId v = g.add_node(OpType::kReshape, {x, g.add_constant("s1", Tensor::ints({4}, {5, 1, 3, 8}))})[0];
      v = g.add_node(OpType::kUnsqueeze, {v, g.add_constant("a1", Tensor::ints({1}, {0}))})[0];
      v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{3, 1, 2, 0, 4}}})[0];
      v = g.add_node(OpType::kSqueeze, {v, g.add_constant("a2", Tensor::ints({1}, {3}))})[0];
      v = g.add_node(OpType::kReshape, {v, g.add_constant("s2", Tensor::ints({4}, {3, 5, 2, 4}))})[0];
      v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}})[0];
      g.add_output(g.add_node(OpType::kRelu, {v})[0]);
      cases.push_back(std::move(g));
    }
    // Two transposes that cancel, with a merge of axes between them: a Reshape.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 4});
      ValueId v = g.add_node(OpType::kTranspose, {x}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0];
      v = g.add_node(OpType::kReshape, {v, g.add_constant("s", Tensor::ints({2}, {3, 8}))})[0];
      v = g.add_node(OpType::kReshape, {v, g.add_constant("s2", Tensor::ints({3}, {3, 2, 4}))})[0];
      v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0];
      g.add_output(g.add_node(OpType::kSigmoid, {v})[0]);
      cases.push_back(std::move(g));
    }
    // A split axis moved, then merged with a neighbour (the result is a Reshape of a Transpose).
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {6, 4});
      ValueId v = g.add_node(OpType::kTranspose, {x})[0];  // [4, 6]
      v = g.add_node(OpType::kReshape, {v, g.add_constant("s", Tensor::ints({3}, {4, 2, 3}))})[0];
      v = g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{1, 2, 0}}})[0];  // [2, 3, 4]
      v = g.add_node(OpType::kFlatten, {v}, {{"axis", int64_t{2}}})[0];  // [6, 4]
      g.add_output(g.add_node(OpType::kTanh, {v})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }

 private:
  struct Plan {
    std::vector<int64_t> atoms;  // the input reshaped: its finest axes (extents > 1), in order
    std::vector<int64_t> perm;   // the Transpose of those
    bool identity = false;       // no Transpose needed: the chain is a Reshape
  };

  static bool layout_op(OpType op) { return op == OpType::kTranspose || is_reshape_op(op); }

  // Whether `t` is a swap of the last two axes read only by a matmul, directly or through
  // scalings by one-element constants (which matmul_scalars moves past it): the matmul takes
  // it as a transposed operand (matmul_transpose_*), so it stays out of the chain.
  static bool folds_into_matmul(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, NodeId t) {
    const Node& node = g.node(t);
    if (!swaps_last_two_axes(g, node)) return false;
    ValueId v = node.outputs[0];
    while (true) {
      NodeId c = sole_consumer(g, consumers, v);
      if (c == kNone) return false;
      const Node& use = g.node(c);
      if (is_matmul(use.op)) return true;
      bool scaling = (use.op == OpType::kMul || use.op == OpType::kDiv) && use.inputs.size() == 2 &&
                     use.inputs[0] == v && is_constant(g, use.inputs[1]) && g.value(use.inputs[1]).elements() == 1;
      if (!scaling) return false;
      v = use.outputs[0];
    }
  }

  // Follows the chain's axes as lists of atoms (factors of the input's axes, extents > 1):
  // a Transpose permutes the lists, a Reshape regroups the atoms in order, splitting one
  // where a new axis ends inside it. Nullopt when an axis would end inside an atom at a
  // point that does not divide it.
  static std::optional<Plan> compose(const Graph& g, const std::vector<NodeId>& chain) {
    std::vector<int64_t> extent;                 // by atom
    std::vector<std::vector<int>> source, axes;  // atoms of each input axis, each current axis
    for (int64_t d : g.value(g.node(chain.front()).inputs[0]).shape) {
      std::vector<int> atoms;
      if (d > 1) {
        atoms.push_back(static_cast<int>(extent.size()));
        extent.push_back(d);
      }
      source.push_back(atoms);
      axes.push_back(atoms);
    }
    for (NodeId n : chain) {
      const Node& node = g.node(n);
      if (node.op == OpType::kTranspose) {
        std::vector<int64_t> perm = transpose_perm(g, node);
        if (!is_permutation(perm, axes.size())) return std::nullopt;
        std::vector<std::vector<int>> next;
        for (int64_t a : perm) next.push_back(axes[static_cast<size_t>(a)]);
        axes = std::move(next);
        continue;
      }
      std::vector<int> flat;
      for (const auto& a : axes) flat.insert(flat.end(), a.begin(), a.end());
      std::vector<std::vector<int>> next;
      size_t k = 0;
      for (int64_t d : g.value(node.outputs[0]).shape) {
        std::vector<int> atoms;
        int64_t need = d;
        while (need > 1) {
          if (k == flat.size()) return std::nullopt;
          int atom = flat[k];
          int64_t e = extent[static_cast<size_t>(atom)];
          if (e <= need) {
            if (need % e != 0) return std::nullopt;
            atoms.push_back(atom);
            need /= e;
            ++k;
            continue;
          }
          if (e % need != 0) return std::nullopt;
          // Split the atom: its outer `need` ends this axis, the inner rest begins the next.
          int outer = static_cast<int>(extent.size());
          int inner = outer + 1;
          extent.push_back(need);
          extent.push_back(e / need);
          for (auto* lists : {&source, &axes}) {
            for (auto& list : *lists) {
              auto it = std::find(list.begin(), list.end(), atom);
              if (it != list.end()) {
                *it = inner;
                list.insert(it, outer);
              }
            }
          }
          flat[k] = inner;
          atoms.push_back(outer);
          need = 1;
        }
        next.push_back(atoms);
      }
      if (k != flat.size()) return std::nullopt;
      axes = std::move(next);
    }
    Plan plan;
    std::vector<int> in_order, out_order;
    for (const auto& a : source) in_order.insert(in_order.end(), a.begin(), a.end());
    for (const auto& a : axes) out_order.insert(out_order.end(), a.begin(), a.end());
    if (in_order.size() != out_order.size()) return std::nullopt;
    for (int a : in_order) plan.atoms.push_back(extent[static_cast<size_t>(a)]);
    plan.identity = true;
    for (size_t j = 0; j < out_order.size(); ++j) {
      auto at = std::find(in_order.begin(), in_order.end(), out_order[j]) - in_order.begin();
      plan.perm.push_back(at);
      plan.identity = plan.identity && at == static_cast<int64_t>(j);
    }
    return plan;
  }
};

}  // namespace

std::unique_ptr<Rule> make_layout_chain() { return std::make_unique<LayoutChain>(); }

}  // namespace tessera::graph::builtin
