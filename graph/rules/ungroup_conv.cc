// ungroup_conv: a grouped convolution becomes an ordinary one whose weight is block-diagonal
// (zeros between the groups). It does `group` times the arithmetic, but an ordinary
// convolution runs on the tensor-core implicit GEMM while a grouped one runs on CUDA cores;
// the cost oracle decides (TASO's ResNeXt-50 rewrite).
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

class UngroupConv : public BuiltinRule {
 public:
  UngroupConv() : BuiltinRule("ungroup_conv") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>&) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& conv = g.nodes()[n];
      if (conv.removed || (conv.op != OpType::kConv && conv.op != OpType::kFusedConv)) continue;
      if (conv.attr_int("group", 1) <= 1 || !is_constant(g, conv.inputs[1])) continue;
      const Value& w = g.value(conv.inputs[1]);
      if (w.shape.size() == 4 && is_float(w.type)) out.push_back(Match{{static_cast<NodeId>(n)}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& conv = g.node(m.nodes[0]);
    const Value& wv = g.value(conv.inputs[1]);
    int64_t groups = conv.attr_int("group", 1);
    int64_t k = wv.shape[0], cg = wv.shape[1], rs = wv.shape[2] * wv.shape[3];
    if (k % groups != 0) return std::nullopt;
    int64_t kg = k / groups, c = cg * groups;
    // The search tries the same rewrite on many graphs: build each dense weight once.
    uint64_t hash = wv.content_hash;
    Attrs provenance{{"group", groups}};
    uint64_t dense_hash = folded_hash(OpType::kConv, provenance, std::span<const uint64_t>(&hash, 1), 0);
    std::shared_ptr<const Tensor> dense;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = built_.find(dense_hash); it != built_.end()) dense = it->second;
    }
    if (!dense) {
      const Tensor& src = *wv.constant;
      std::vector<float> dst(static_cast<size_t>(k * c * rs), 0.0f);
      for (int64_t o = 0; o < k; ++o) {
        int64_t first = (o / kg) * cg;  // the group's first input channel
        std::copy_n(src.f.begin() + o * cg * rs, cg * rs, dst.begin() + (o * c + first) * rs);
      }
      dense = std::make_shared<const Tensor>(Tensor::floats({k, c, wv.shape[2], wv.shape[3]}, std::move(dst), src.type));
      std::lock_guard<std::mutex> lock(mutex_);
      built_.emplace(dense_hash, dense);
    }
    Graph out = g;
    ValueId w = out.add_constant(out.fresh_name(wv.name + "~ungrouped"), dense, wv.synthetic, dense_hash);
    Attrs attrs = conv.attrs;
    attrs.erase("group");
    std::vector<ValueId> inputs = conv.inputs;
    inputs[1] = w;
    return replace_by_one(out, {m.nodes[0]}, conv.op, inputs, attrs, conv.name + "~ungrouped");
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {1, 6, 5, 5});
    ValueId w = g.add_constant("w", random_tensor({4, 3, 3, 3}, 21));
    ValueId b = g.add_constant("b", random_tensor({4}, 22));
    Attrs attrs{{"group", int64_t{2}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}};
    g.add_output(g.add_node(OpType::kConv, {x, w, b}, attrs)[0]);
    ValueId w2 = g.add_constant("w2", random_tensor({6, 2, 1, 1}, 23));
    g.add_output(g.add_node(OpType::kConv, {x, w2}, {{"group", int64_t{3}}, {"strides", std::vector<int64_t>{2, 2}}})[0]);
    return {std::move(g)};
  }

 private:
  mutable std::mutex mutex_;
  mutable std::map<uint64_t, std::shared_ptr<const Tensor>> built_;  // by folded hash of the dense weight
};

}  // namespace

std::unique_ptr<Rule> make_ungroup_conv() { return std::make_unique<UngroupConv>(); }

}  // namespace tessera::graph::builtin
