// enlarge_conv: a convolution's kernel grows (zero-padded, with matching padding) to the
// size of a sibling convolution that reads the same input, so that merge_conv can merge
// them. Costs more on its own; it pays only with the merge that follows (TASO's example).
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

class EnlargeConv : public BuiltinRule {
 public:
  EnlargeConv() : BuiltinRule("enlarge_conv") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (const auto& users : consumers) {
      for (NodeId a : users) {
        for (NodeId b : users) {
          if (a != b && enlargeable(g, g.node(a), g.node(b))) out.push_back(Match{{a, b}, {}});
        }
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& a = g.node(m.nodes[0]);
    const Node& b = g.node(m.nodes[1]);
    const auto& wa = g.value(a.inputs[1]);
    const auto& wb = g.value(b.inputs[1]);
    int64_t k = wa.shape[0], c = wa.shape[1], r = wa.shape[2], s = wa.shape[3];
    int64_t R = wb.shape[2], S = wb.shape[3];
    int64_t dr = (R - r) / 2, ds = (S - s) / 2;
    const Tensor& src = *wa.constant;
    std::vector<float> dst(static_cast<size_t>(k * c * R * S), 0.0f);
    for (int64_t i = 0; i < k * c; ++i) {
      for (int64_t y = 0; y < r; ++y) {
        for (int64_t x = 0; x < s; ++x) {
          dst[static_cast<size_t>((i * R + y + dr) * S + x + ds)] = src.f[static_cast<size_t>((i * r + y) * s + x)];
        }
      }
    }
    Graph out = g;
    ValueId w = out.add_constant(out.fresh_name(wa.name + "~enlarged"), Tensor::floats({k, c, R, S}, std::move(dst), src.type),
                                 wa.synthetic);
    Attrs attrs = a.attrs;
    attrs["kernel_shape"] = std::vector<int64_t>{R, S};
    std::vector<int64_t> pads = a.attr_ints("pads", {0, 0, 0, 0});
    attrs["pads"] = std::vector<int64_t>{pads[0] + dr, pads[1] + ds, pads[2] + dr, pads[3] + ds};
    std::vector<ValueId> inputs = a.inputs;
    inputs[1] = w;
    std::vector<ValueId> made;
    try {
      made = out.add_node(a.op, inputs, attrs, out.fresh_name(a.name + "~enlarged"));
    } catch (const UserError&) {
      return std::nullopt;
    }
    if (out.value(made[0]).shape != g.value(a.outputs[0]).shape) return std::nullopt;
    out.replace_uses(a.outputs[0], made[0]);
    out.remove_node(m.nodes[0]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 6, 6});
    ValueId w1 = g.add_constant("w1", random_tensor({4, 3, 1, 1}, 15));
    ValueId w3 = g.add_constant("w3", random_tensor({2, 3, 3, 3}, 16));
    ValueId b1 = g.add_constant("b1", random_tensor({4}, 17));
    g.add_output(g.add_node(OpType::kConv, {x, w1, b1})[0]);
    g.add_output(g.add_node(OpType::kConv, {x, w3}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}})[0]);
    return {std::move(g)};
  }

 private:
  static bool enlargeable(const Graph& g, const Node& a, const Node& b) {
    auto conv = [](const Node& n) { return n.op == OpType::kConv || n.op == OpType::kFusedConv; };
    if (a.removed || b.removed || !conv(a) || !conv(b) || a.inputs[0] != b.inputs[0]) return false;
    if (!is_constant(g, a.inputs[1]) || !is_float(g.value(a.inputs[1]).type)) return false;
    if (a.attr_int("group", 1) != 1 || b.attr_int("group", 1) != 1) return false;
    if (a.attr_string("auto_pad", "NOTSET") != "NOTSET" || b.attr_string("auto_pad", "NOTSET") != "NOTSET") return false;
    std::vector<int64_t> one{1, 1};
    if (a.attr_ints("strides", one) != b.attr_ints("strides", one)) return false;
    if (a.attr_ints("dilations", one) != one || b.attr_ints("dilations", one) != one) return false;
    const auto& wa = g.value(a.inputs[1]).shape;
    const auto& wb = g.value(b.inputs[1]).shape;
    if (wa.size() != 4 || wb.size() != 4 || wa[1] != wb[1]) return false;
    int64_t dr = wb[2] - wa[2], ds = wb[3] - wa[3];
    if (dr < 0 || ds < 0 || dr + ds == 0 || dr % 2 || ds % 2) return false;
    std::vector<int64_t> pa = a.attr_ints("pads", {0, 0, 0, 0}), pb = b.attr_ints("pads", {0, 0, 0, 0});
    return pb == std::vector<int64_t>{pa[0] + dr / 2, pa[1] + ds / 2, pa[2] + dr / 2, pa[3] + ds / 2};
  }
};

}  // namespace

std::unique_ptr<Rule> make_enlarge_conv() { return std::make_unique<EnlargeConv>(); }

}  // namespace tessera::graph::builtin
