// split_activation: a Split whose every output goes only to the same elementwise activation
// becomes that activation on the whole tensor, then the Split. A merged contraction whose
// epilogue stopped at its bias (merge_conv and merge_matmul split their result) thus gets
// its activation back into the epilogue: one fused kernel instead of one launch per part.
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

// An activation a Split's parts can share: a unary elementwise operator (or a chain of
// only unary steps) reading the part as its only input.
bool unary_activation(const Node& n) {
  if (n.inputs.size() != 1 || n.outputs.size() != 1) return false;
  if (n.op == OpType::kEltwiseChain) return true;
  auto step = chain_step(n);
  return step && (n.op == OpType::kRelu || n.op == OpType::kGelu || n.op == OpType::kSigmoid ||
                  n.op == OpType::kTanh || n.op == OpType::kExp || n.op == OpType::kNeg || n.op == OpType::kAbs);
}

class SplitActivation : public BuiltinRule {
 public:
  SplitActivation() : BuiltinRule("split_activation") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t s = 0; s < g.nodes().size(); ++s) {
      const Node& split = g.nodes()[s];
      if (split.removed || split.op != OpType::kSplit || !is_float(g.value(split.inputs[0]).type)) continue;
      Match m{{static_cast<NodeId>(s)}, {}};
      for (ValueId part : split.outputs) {
        NodeId c = sole_consumer(g, consumers, part);
        if (c == kNone || !unary_activation(g.node(c))) break;
        const Node& first = g.node(m.nodes.size() > 1 ? m.nodes[1] : c);
        if (g.node(c).op != first.op || g.node(c).attrs != first.attrs) break;
        m.nodes.push_back(c);
      }
      if (m.nodes.size() == split.outputs.size() + 1) out.push_back(std::move(m));
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& split = g.node(m.nodes[0]);
    const Node& act = g.node(m.nodes[1]);
    Graph out = g;
    std::vector<ValueId> parts;
    try {
      ValueId whole = out.add_node(act.op, {split.inputs[0]}, act.attrs, out.fresh_name(act.name))[0];
      std::vector<ValueId> inputs = split.inputs;
      inputs[0] = whole;
      parts = out.add_node(OpType::kSplit, inputs, split.attrs, out.fresh_name(split.name),
                           static_cast<int>(split.outputs.size()));
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      ValueId old = g.node(m.nodes[k + 1]).outputs[0];
      if (out.value(parts[k]).shape != g.value(old).shape) return std::nullopt;
      out.replace_uses(old, parts[k]);
    }
    for (NodeId n : m.nodes) out.remove_node(n);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    // Relu after each of three parts along the channels (a merged convolution's split).
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {1, 9, 3, 3});
      ValueId sizes = g.add_constant("sizes", Tensor::ints({3}, {2, 4, 3}));
      auto parts = g.add_node(OpType::kSplit, {x, sizes}, {{"axis", int64_t{1}}}, "split", 3);
      for (ValueId p : parts) g.add_output(g.add_node(OpType::kRelu, {p})[0]);
      cases.push_back(std::move(g));
    }
    // An exact GELU after two equal parts of the last axis (no sizes input).
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 8});
      auto parts = g.add_node(OpType::kSplit, {x}, {{"axis", int64_t{-1}}}, "split", 2);
      for (ValueId p : parts) g.add_output(g.add_node(OpType::kGelu, {p})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }
};

}  // namespace

std::unique_ptr<Rule> make_split_activation() { return std::make_unique<SplitActivation>(); }

}  // namespace tessera::graph::builtin
