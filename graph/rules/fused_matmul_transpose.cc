// fused_matmul_transpose: a FusedMatMul reading an operand through a Transpose of its last two
// axes reads the operand itself, transposed by its trans_a / trans_b (the data rules
// matmul_transpose_* do this for a plain MatMul; once a scale or an epilogue is fused, the
// operator is a FusedMatMul with inputs a fixed pattern cannot list).
#include <memory>
#include <optional>
#include <vector>

#include "graph/builtin_rule.h"
#include "graph/ops.h"

namespace tessera::graph::builtin {
namespace {

class FusedMatmulTranspose : public BuiltinRule {
 public:
  FusedMatmulTranspose() : BuiltinRule("fused_matmul_transpose") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>&) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      for (int operand = 0; operand < 2; ++operand) {
        if (auto t = folded_transpose(g, g.nodes()[n], operand)) out.push_back(Match{{*t, static_cast<NodeId>(n)}, {}});
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& mm = g.node(m.nodes[1]);
    const int operand = mm.inputs[0] == g.node(m.nodes[0]).outputs[0] ? 0 : 1;
    if (folded_transpose(g, mm, operand) != m.nodes[0]) return std::nullopt;
    std::vector<ValueId> inputs = mm.inputs;
    inputs[static_cast<size_t>(operand)] = g.node(m.nodes[0]).inputs[0];
    Attrs attrs = mm.attrs;
    attrs[operand == 0 ? "trans_a" : "trans_b"] = int64_t{1};
    return replace_by_one(g, {m.nodes[1]}, OpType::kFusedMatMul, inputs, attrs, mm.name + "~transposed");
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    // Attention's scores with their scale fused (alpha), k transposed; and a transposed A with
    // a bias epilogue.
    {
      Graph g;
      ValueId q = g.add_input("q", ElemType::kF32, {1, 2, 5, 8});
      ValueId k = g.add_input("k", ElemType::kF32, {1, 2, 6, 8});
      ValueId kt = g.add_node(OpType::kTranspose, {k}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}})[0];
      Attrs a{{"trans_a", int64_t{0}}, {"trans_b", int64_t{0}}, {"epilogue", std::string("")}, {"alpha", 0.125}};
      g.add_output(g.add_node(OpType::kFusedMatMul, {q, kt}, a)[0]);
      cases.push_back(std::move(g));
    }
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {8, 4});
      ValueId w = g.add_constant("w", random_tensor({8, 5}, 22));
      ValueId b = g.add_constant("b", random_tensor({5}, 23));
      ValueId xt = g.add_node(OpType::kTranspose, {x}, {{"perm", std::vector<int64_t>{1, 0}}})[0];
      Attrs a{{"trans_a", int64_t{0}}, {"trans_b", int64_t{0}}, {"epilogue", std::string("bias+relu")}};
      g.add_output(g.add_node(OpType::kFusedMatMul, {xt, w, b}, a)[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }

 private:
  // The Transpose (of the last two axes only) that operand `operand` of FusedMatMul `n` is read
  // through, when the operand is not transposed already.
  static std::optional<NodeId> folded_transpose(const Graph& g, const Node& n, int operand) {
    if (n.removed || n.op != OpType::kFusedMatMul || n.inputs.size() < 2) return std::nullopt;
    if (n.attr_int(operand == 0 ? "trans_a" : "trans_b", 0) != 0) return std::nullopt;
    const ValueId v = n.inputs[static_cast<size_t>(operand)];
    const NodeId p = g.value(v).producer;
    if (p == kNone || !swaps_last_two_axes(g, g.node(p))) return std::nullopt;
    return p;
  }
};

}  // namespace

std::unique_ptr<Rule> make_fused_matmul_transpose() { return std::make_unique<FusedMatmulTranspose>(); }

}  // namespace tessera::graph::builtin
