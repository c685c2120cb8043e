// split_heads: a Split of the last axis whose every part is reshaped alone to the same
// heads x head-size shape and transposed alone (attention's query, key and value after a
// merged projection) is one Reshape to [..., P, heads, size], one Transpose that puts P
// first, and P Gathers along that leading axis (views): one copy instead of P Transposes
// and the Split's. A part whose Transpose differs from the most common one gets the
// difference as a Transpose of its own (the key's swap of the last two axes, which a matmul
// then takes as transposed B). A part may already be such a group (split_heads applied to
// the query and key before the value's projection was merged): it counts as its heads.
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

// Whether every use of z is a Gather along axis 0 of one constant index, each index of that
// axis once (P views of a [P, ...] tensor).
bool gathers_of_each_index(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, ValueId z) {
  if (is_output(g, z) || g.value(z).shape.empty()) return false;
  const auto& users = consumers[static_cast<size_t>(z)];
  int64_t extent = g.value(z).shape[0];
  if (static_cast<int64_t>(users.size()) != extent) return false;
  std::vector<bool> seen(static_cast<size_t>(extent), false);
  for (NodeId u : users) {
    const Node& gather = g.node(u);
    if (gather.op != OpType::kGather || gather.inputs.size() != 2 || gather.inputs[0] != z ||
        gather.attr_int("axis", 0) != 0) {
      return false;
    }
    const Value& index = g.value(gather.inputs[1]);
    if (!index.constant || !index.shape.empty() || index.constant->i.size() != 1) return false;
    int64_t i = index.constant->i[0];
    if (i < 0 || i >= extent || seen[static_cast<size_t>(i)]) return false;
    seen[static_cast<size_t>(i)] = true;
  }
  return true;
}

// The Gathers of gathers_of_each_index(z), by index.
std::vector<NodeId> gathers_by_index(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, ValueId z) {
  const auto& users = consumers[static_cast<size_t>(z)];
  std::vector<NodeId> out(users.size(), kNone);
  for (NodeId u : users) out[static_cast<size_t>(g.value(g.node(u).inputs[1]).constant->i[0])] = u;
  return out;
}

class SplitHeads : public BuiltinRule {
 public:
  SplitHeads() : BuiltinRule("split_heads") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t s = 0; s < g.nodes().size(); ++s) {
      if (auto plan = parse(g, consumers, static_cast<NodeId>(s))) out.push_back(Match{plan->remove, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    auto plan = parse(g, g.consumers(), m.nodes[0]);
    if (!plan) return std::nullopt;
    const size_t lead = plan->lead;
    const auto parts = static_cast<int64_t>(plan->parts.size());
    // The most common permutation (the first of those tied) is the one the shared Transpose does.
    std::vector<int64_t> base = plan->parts[0].perm;
    size_t best = 0;
    for (const Part& p : plan->parts) {
      auto n = static_cast<size_t>(std::count_if(plan->parts.begin(), plan->parts.end(),
                                                 [&](const Part& q) { return q.perm == p.perm; }));
      if (n > best) best = n, base = p.perm;
    }
    // y = [..., P, heads, size]: a head's axis a is y's axis a (a < lead) or a + 1.
    const auto& x_shape = g.value(plan->x).shape;
    std::vector<int64_t> y_shape(x_shape.begin(), x_shape.end() - 1);
    y_shape.push_back(parts);
    y_shape.insert(y_shape.end(), plan->heads.begin(), plan->heads.end());
    std::vector<int64_t> sigma{static_cast<int64_t>(lead)};
    for (int64_t a : base) sigma.push_back(a < static_cast<int64_t>(lead) ? a : a + 1);
    std::vector<int64_t> inverse(base.size());
    for (size_t k = 0; k < base.size(); ++k) inverse[static_cast<size_t>(base[k])] = static_cast<int64_t>(k);
    Graph out = g;
    try {
      ValueId y = out.add_node(OpType::kReshape, {plan->x, add_shape(out, y_shape)}, {}, out.fresh_name("reshape"))[0];
      ValueId z = out.add_node(OpType::kTranspose, {y}, {{"perm", sigma}}, out.fresh_name("transpose"))[0];
      for (int64_t k = 0; k < parts; ++k) {
        const Part& part = plan->parts[static_cast<size_t>(k)];
        ValueId index = out.add_constant(out.fresh_name("index"), Tensor::ints({}, {k}));
        ValueId v = out.add_node(OpType::kGather, {z, index}, {{"axis", int64_t{0}}}, out.fresh_name("gather"))[0];
        if (part.perm != base) {
          // v's axis j is the head's axis base[j]; the result's axis j must be perm[j].
          std::vector<int64_t> rest;
          for (int64_t a : part.perm) rest.push_back(inverse[static_cast<size_t>(a)]);
          v = out.add_node(OpType::kTranspose, {v}, {{"perm", rest}}, out.fresh_name("transpose"))[0];
        }
        if (out.value(v).shape != g.value(part.value).shape) return std::nullopt;
        out.replace_uses(part.value, v);
      }
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (NodeId n : plan->remove) out.remove_node(n);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    // Query, key and value of a [1, 5, 12] projection, 2 heads of 2: the key transposed apart.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {1, 5, 12});
      auto parts = g.add_node(OpType::kSplit, {x}, {{"axis", int64_t{2}}}, "split", 3);
      ValueId shape = g.add_constant("shape", Tensor::ints({4}, {1, 5, 2, 2}));
      const std::vector<std::vector<int64_t>> perms{{0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}};
      for (size_t k = 0; k < 3; ++k) {
        ValueId r = g.add_node(OpType::kReshape, {parts[k], shape})[0];
        g.add_output(g.add_node(OpType::kTranspose, {r}, {{"perm", perms[k]}})[0]);
      }
      cases.push_back(std::move(g));
    }
    // Two equal parts of a rank-2 tensor (no sizes input), each reshaped to [4, 2, 3] and
    // transposed by the default (reversing) permutation.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {4, 12});
      auto parts = g.add_node(OpType::kSplit, {x}, {{"axis", int64_t{-1}}}, "split", 2);
      ValueId shape = g.add_constant("shape", Tensor::ints({3}, {4, 2, 3}));
      for (size_t k = 0; k < 2; ++k) {
        ValueId r = g.add_node(OpType::kReshape, {parts[k], shape})[0];
        g.add_output(g.add_node(OpType::kRelu, {g.add_node(OpType::kTranspose, {r})[0]})[0]);
      }
      cases.push_back(std::move(g));
    }
    // A group already made of two parts (its gathers in reverse order, one transposed
    // after), then a third part on its own.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {1, 5, 12});
      ValueId sizes = g.add_constant("sizes", Tensor::ints({2}, {8, 4}));
      auto parts = g.add_node(OpType::kSplit, {x, sizes}, {{"axis", int64_t{2}}}, "split", 2);
      ValueId y = g.add_node(OpType::kReshape, {parts[0], g.add_constant("s5", Tensor::ints({5}, {1, 5, 2, 2, 2}))})[0];
      ValueId z = g.add_node(OpType::kTranspose, {y}, {{"perm", std::vector<int64_t>{2, 0, 3, 1, 4}}})[0];
      for (int64_t k : {1, 0}) {
        ValueId v = g.add_node(OpType::kGather, {z, g.add_constant("i" + std::to_string(k), Tensor::ints({}, {k}))},
                               {{"axis", int64_t{0}}})[0];
        g.add_output(k == 1 ? g.add_node(OpType::kTranspose, {v}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}})[0] : v);
      }
      ValueId r = g.add_node(OpType::kReshape, {parts[1], g.add_constant("s4", Tensor::ints({4}, {1, 5, 2, 2}))})[0];
      g.add_output(g.add_node(OpType::kTranspose, {r}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }

 private:
  // One head of the rewrite: the value it replaces (a part's Transpose, or a Gather of an
  // earlier group) and the permutation of [..., heads, size] that value is.
  struct Part {
    ValueId value = kNone;
    std::vector<int64_t> perm;
  };
  struct Plan {
    ValueId x = kNone;             // the Split's input
    size_t lead = 0;               // axes before the split one
    std::vector<int64_t> heads;    // the shape the last axis becomes, e.g. [heads, size]
    std::vector<Part> parts;       // in order along the last axis
    std::vector<NodeId> remove;    // the Split first, then every node replaced
  };

  static std::optional<Plan> parse(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, NodeId s) {
    const Node& split = g.node(s);
    if (split.removed || split.op != OpType::kSplit || split.outputs.size() < 2) return std::nullopt;
    Plan plan;
    plan.x = split.inputs[0];
    const auto& x_shape = g.value(plan.x).shape;
    plan.lead = x_shape.size() - 1;
    if (normalised_axis(g, split) != static_cast<int64_t>(plan.lead)) return std::nullopt;
    plan.remove.push_back(s);
    const std::vector<int64_t> lead_shape(x_shape.begin(), x_shape.end() - 1);
    for (ValueId part : split.outputs) {
      NodeId r = sole_consumer(g, consumers, part);
      if (r == kNone || g.node(r).op != OpType::kReshape || g.node(r).inputs[0] != part) return std::nullopt;
      const auto& reshaped = g.value(g.node(r).outputs[0]).shape;
      if (reshaped.size() <= plan.lead || !std::equal(lead_shape.begin(), lead_shape.end(), reshaped.begin())) {
        return std::nullopt;
      }
      NodeId t = sole_consumer(g, consumers, g.node(r).outputs[0]);
      if (t == kNone || g.node(t).op != OpType::kTranspose) return std::nullopt;
      std::vector<int64_t> perm = transpose_perm(g, g.node(t));
      if (!is_permutation(perm, reshaped.size())) return std::nullopt;
      plan.remove.push_back(r);
      plan.remove.push_back(t);
      std::vector<int64_t> heads(reshaped.begin() + static_cast<std::ptrdiff_t>(plan.lead), reshaped.end());
      if (perm[0] != static_cast<int64_t>(plan.lead) || heads.size() < 2 || !gathers_of_each_index(g, consumers, g.node(t).outputs[0])) {
        // A head: reshaped to [..., heads, size] and transposed.
        if (!same_heads(plan, heads)) return std::nullopt;
        plan.parts.push_back(Part{g.node(t).outputs[0], perm});
        continue;
      }
      // An earlier group: [..., P, heads, size] with P put first, then a Gather of each.
      heads.erase(heads.begin());
      if (!same_heads(plan, heads)) return std::nullopt;
      std::vector<int64_t> head_perm;
      for (size_t k = 1; k < perm.size(); ++k) {
        int64_t a = perm[k];
        head_perm.push_back(a < static_cast<int64_t>(plan.lead) ? a : a - 1);
      }
      for (NodeId u : gathers_by_index(g, consumers, g.node(t).outputs[0])) {
        plan.remove.push_back(u);
        plan.parts.push_back(Part{g.node(u).outputs[0], head_perm});
      }
    }
    return plan;
  }

  // Whether a part's heads shape is the first part's (which sets it).
  static bool same_heads(Plan& plan, const std::vector<int64_t>& heads) {
    if (plan.parts.empty()) plan.heads = heads;
    return heads == plan.heads;
  }
};

// ---------------------------------------------------------------------------------------
// gather_heads: P Gathers along the leading axis of z [P, ...] (each index once), each read
// alone by a Reshape to the same shape and that by a Transpose of the same permutation (a
// packed projection's query, key and value split into heads), are the Reshape and the
// Transpose of z, then the Gathers: one copy instead of P.

class GatherHeads : public BuiltinRule {
 public:
  GatherHeads() : BuiltinRule("gather_heads") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t v = 0; v < g.values().size(); ++v) {
      auto z = static_cast<ValueId>(v);
      if (consumers[v].size() < 2 || !gathers_of_each_index(g, consumers, z)) continue;
      Match m;
      std::vector<NodeId> gathers = gathers_by_index(g, consumers, z);
      m.nodes = gathers;
      const Node* first_t = nullptr;
      for (NodeId u : gathers) {
        NodeId r = sole_consumer(g, consumers, g.node(u).outputs[0]);
        if (r == kNone || g.node(r).op != OpType::kReshape || g.node(r).inputs[0] != g.node(u).outputs[0]) break;
        NodeId t = sole_consumer(g, consumers, g.node(r).outputs[0]);
        if (t == kNone || g.node(t).op != OpType::kTranspose) break;
        if (first_t == nullptr) first_t = &g.node(t);
        if (g.value(g.node(r).outputs[0]).shape != g.value(first_t->inputs[0]).shape ||
            transpose_perm(g, g.node(t)) != transpose_perm(g, *first_t)) {
          break;
        }
        m.nodes.push_back(r);
        m.nodes.push_back(t);
      }
      if (m.nodes.size() == 3 * gathers.size()) out.push_back(std::move(m));
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const size_t parts = m.nodes.size() / 3;
    ValueId z = g.node(m.nodes[0]).inputs[0];
    const Node& t0 = g.node(m.nodes[parts + 1]);
    std::vector<int64_t> perm = transpose_perm(g, t0);
    if (!is_permutation(perm, g.value(t0.inputs[0]).shape.size())) return std::nullopt;
    std::vector<int64_t> shape{static_cast<int64_t>(parts)};
    const auto& head = g.value(t0.inputs[0]).shape;
    shape.insert(shape.end(), head.begin(), head.end());
    std::vector<int64_t> sigma{0};
    for (int64_t a : perm) sigma.push_back(a + 1);
    Graph out = g;
    try {
      ValueId y = out.add_node(OpType::kReshape, {z, add_shape(out, shape)}, {}, out.fresh_name("reshape"))[0];
      ValueId w = out.add_node(OpType::kTranspose, {y}, {{"perm", sigma}}, out.fresh_name("transpose"))[0];
      for (size_t k = 0; k < parts; ++k) {
        ValueId index = out.add_constant(out.fresh_name("index"), Tensor::ints({}, {static_cast<int64_t>(k)}));
        ValueId v = out.add_node(OpType::kGather, {w, index}, {{"axis", int64_t{0}}}, out.fresh_name("gather"))[0];
        ValueId old = g.node(m.nodes[parts + 2 * k + 1]).outputs[0];
        if (out.value(v).shape != g.value(old).shape) return std::nullopt;
        out.replace_uses(old, v);
      }
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (NodeId n : m.nodes) out.remove_node(n);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    // ViT's form: [3, 5, 1, 8] (query, key, value of 5 tokens), 2 heads of 4 each.
    Graph g;
    ValueId z = g.add_input("z", ElemType::kF32, {3, 5, 1, 8});
    ValueId shape = g.add_constant("shape", Tensor::ints({3}, {5, 2, 4}));
    for (int64_t k : {2, 0, 1}) {
      ValueId v = g.add_node(OpType::kGather, {z, g.add_constant("i" + std::to_string(k), Tensor::ints({}, {k}))},
                             {{"axis", int64_t{0}}})[0];
      ValueId r = g.add_node(OpType::kReshape, {v, shape})[0];
      g.add_output(g.add_node(OpType::kTranspose, {r}, {{"perm", std::vector<int64_t>{1, 0, 2}}})[0]);
    }
    return {std::move(g)};
  }
};

}  // namespace

std::unique_ptr<Rule> make_split_heads() { return std::make_unique<SplitHeads>(); }

std::unique_ptr<Rule> make_gather_heads() { return std::make_unique<GatherHeads>(); }

}  // namespace tessera::graph::builtin
