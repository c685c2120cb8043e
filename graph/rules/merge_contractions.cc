// merge_matmul / merge_conv: two contractions that read the same input with constant
// weights become one over concatenated weights, and a Split.
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

class MergeContractions : public BuiltinRule {
 public:
  explicit MergeContractions(bool conv) : BuiltinRule(conv ? "merge_conv" : "merge_matmul"), conv_(conv) {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t v = 0; v < consumers.size(); ++v) {
      const auto& users = consumers[v];
      for (size_t i = 0; i < users.size(); ++i) {
        for (size_t j = i + 1; j < users.size(); ++j) {
          if (mergeable(g, consumers, g.node(users[i]), g.node(users[j]), static_cast<ValueId>(v))) {
            out.push_back(Match{{users[i], users[j]}, {}});
          }
        }
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& a = g.node(m.nodes[0]);
    const Node& b = g.node(m.nodes[1]);
    FusedForm fa = fused_form(a), fb = fused_form(b);
    Graph out = g;
    try {
      int64_t weight_axis = conv_ ? 0 : (fa.attrs.count("trans_b") && std::get<int64_t>(fa.attrs.at("trans_b")) ? 0 : 1);
      std::vector<ValueId> inputs{fa.inputs[0]};
      inputs.push_back(out.add_node(OpType::kConcat, {fa.inputs[1], fb.inputs[1]}, {{"axis", weight_axis}})[0]);
      for (size_t k = 2; k < fa.inputs.size(); ++k) {
        inputs.push_back(out.add_node(OpType::kConcat, {fa.inputs[k], fb.inputs[k]}, {{"axis", int64_t{0}}})[0]);
      }
      Attrs attrs = fa.attrs;
      attrs["epilogue"] = join_steps(fa.steps);
      ValueId merged = out.add_node(fa.op, inputs, attrs, out.fresh_name(conv_ ? "merged_conv" : "merged_matmul"))[0];
      const Value& ya = g.value(a.outputs[0]);
      const Value& yb = g.value(b.outputs[0]);
      int64_t axis = conv_ ? 1 : static_cast<int64_t>(ya.shape.size()) - 1;
      ValueId sizes = out.add_constant(out.fresh_name("split"),
                                       Tensor::ints({2}, {ya.shape[static_cast<size_t>(axis)], yb.shape[static_cast<size_t>(axis)]}));
      auto parts = out.add_node(OpType::kSplit, {merged, sizes}, {{"axis", axis}}, out.fresh_name("split"), 2);
      if (out.value(parts[0]).shape != ya.shape || out.value(parts[1]).shape != yb.shape) return std::nullopt;
      out.replace_uses(a.outputs[0], parts[0]);
      out.replace_uses(b.outputs[0], parts[1]);
    } catch (const UserError&) {
      return std::nullopt;
    }
    out.remove_node(m.nodes[0]);
    out.remove_node(m.nodes[1]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    if (conv_) {
      ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 7, 7});
      Attrs attrs{{"pads", std::vector<int64_t>{1, 1, 1, 1}}};
      ValueId w1 = g.add_constant("w1", random_tensor({4, 3, 3, 3}, 5));
      ValueId w2 = g.add_constant("w2", random_tensor({2, 3, 3, 3}, 6));
      ValueId b1 = g.add_constant("b1", random_tensor({4}, 7));
      ValueId b2 = g.add_constant("b2", random_tensor({2}, 8));
      g.add_output(g.add_node(OpType::kConv, {x, w1, b1}, attrs)[0]);
      g.add_output(g.add_node(OpType::kConv, {x, w2, b2}, attrs)[0]);
    } else {
      ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 8});
      ValueId w1 = g.add_constant("w1", random_tensor({8, 5}, 9));
      ValueId w2 = g.add_constant("w2", random_tensor({8, 7}, 10));
      ValueId w3 = g.add_constant("w3", random_tensor({6, 8}, 11));
      ValueId w4 = g.add_constant("w4", random_tensor({4, 8}, 12));
      ValueId b3 = g.add_constant("b3", random_tensor({6}, 13));
      ValueId b4 = g.add_constant("b4", random_tensor({4}, 14));
      g.add_output(g.add_node(OpType::kMatMul, {x, w1})[0]);
      g.add_output(g.add_node(OpType::kMatMul, {x, w2})[0]);
      Attrs tb{{"trans_a", int64_t{0}}, {"trans_b", int64_t{1}}, {"epilogue", std::string("bias+relu")}};
      g.add_output(g.add_node(OpType::kFusedMatMul, {x, w3, b3}, tb)[0]);
      g.add_output(g.add_node(OpType::kFusedMatMul, {x, w4, b4}, tb)[0]);
    }
    return {std::move(g)};
  }

 private:
  // Whether n's result goes only to an Add of a constant vector (a bias to fuse).
  static bool pending_bias(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, const Node& n) {
    NodeId c = sole_consumer(g, consumers, n.outputs[0]);
    if (c == kNone || g.node(c).op != OpType::kAdd || g.node(c).inputs.size() != 2) return false;
    const Node& add = g.node(c);
    ValueId other = add.inputs[0] == n.outputs[0] ? add.inputs[1] : add.inputs[0];
    return is_constant(g, other) && g.value(other).shape.size() == 1;
  }

  bool mergeable(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, const Node& a, const Node& b,
                 ValueId shared) const {
    if (a.removed || b.removed || a.outputs.size() != 1 || b.outputs.size() != 1) return false;
    if (a.inputs.empty() || a.inputs[0] != shared || b.inputs[0] != shared) return false;
    if (conv_) {
      bool ok = (a.op == OpType::kConv || a.op == OpType::kFusedConv) && (b.op == OpType::kConv || b.op == OpType::kFusedConv);
      if (!ok) return false;
    } else if (!is_matmul(a.op) || !is_matmul(b.op)) {
      return false;
    }
    FusedForm fa = fused_form(a), fb = fused_form(b);
    if (fa.steps != fb.steps || fa.inputs.size() != fb.inputs.size()) return false;
    if (std::find(fa.steps.begin(), fa.steps.end(), "residual") != fa.steps.end()) return false;
    for (size_t k = 1; k < fa.inputs.size(); ++k) {
      if (!is_constant(g, fa.inputs[k]) || !is_constant(g, fb.inputs[k])) return false;
    }
    const auto& wa = g.value(fa.inputs[1]).shape;
    const auto& wb = g.value(fb.inputs[1]).shape;
    if (conv_) {
      Attrs xa = fa.attrs, xb = fb.attrs;
      if (xa != xb || a.attr_int("group", 1) != 1) return false;
      return wa.size() == 4 && wb.size() == 4 && std::equal(wa.begin() + 1, wa.end(), wb.begin() + 1);
    }
    if (fa.attrs != fb.attrs || wa.size() != 2 || wb.size() != 2) return false;
    // A bias still waiting to be fused could not be once the outputs go through a Split:
    // merge after fuse_epilogue has taken it (the merge then concatenates the biases).
    if (pending_bias(g, consumers, a) || pending_bias(g, consumers, b)) return false;
    if (std::get<int64_t>(fa.attrs.at("trans_a")) != 0) return false;
    bool tb = std::get<int64_t>(fa.attrs.at("trans_b")) != 0;
    return tb ? wa[1] == wb[1] : wa[0] == wb[0];
  }

  bool conv_;
};

}  // namespace

std::unique_ptr<Rule> make_merge_contractions(bool conv) { return std::make_unique<MergeContractions>(conv); }

}  // namespace tessera::graph::builtin
