// The rule families data cannot express: they depend on shapes in ways a fixed pattern does
// not (concatenating weights, padding a kernel, growing an epilogue or a chain of any length).
//
// This file: the helpers the families share and the registry; each family is a file of
// graph/rules/.
#include "graph/builtin_rule.h"

#include <algorithm>
#include <map>
#include <random>
#include <span>

#include "core/error.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace builtin {

std::vector<std::string> split_steps(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('+', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string join_steps(const std::vector<std::string>& steps) {
  std::string out;
  for (const std::string& s : steps) out += (out.empty() ? "" : "+") + s;
  return out;
}

bool is_output(const Graph& g, ValueId v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}

// The single consumer of `v`, or kNone when it has several, none, or is a graph output.
NodeId sole_consumer(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, ValueId v) {
  const auto& users = consumers[static_cast<size_t>(v)];
  if (users.size() != 1 || is_output(g, v)) return kNone;
  const Node& n = g.node(users[0]);
  if (std::count(n.inputs.begin(), n.inputs.end(), v) != 1) return kNone;
  return users[0];
}

bool is_constant(const Graph& g, ValueId v) { return v != kNone && g.value(v).constant != nullptr; }

bool is_permutation(const std::vector<int64_t>& perm, size_t rank) {
  std::vector<bool> seen(rank, false);
  if (perm.size() != rank) return false;
  for (int64_t a : perm) {
    if (a < 0 || a >= static_cast<int64_t>(rank) || seen[static_cast<size_t>(a)]) return false;
    seen[static_cast<size_t>(a)] = true;
  }
  return true;
}

// A Transpose's permutation (its default reverses the axes).
std::vector<int64_t> transpose_perm(const Graph& g, const Node& t) {
  const auto rank = g.value(t.inputs[0]).shape.size();
  std::vector<int64_t> reverse(rank);
  for (size_t a = 0; a < rank; ++a) reverse[a] = static_cast<int64_t>(rank - 1 - a);
  return t.attr_ints("perm", reverse);
}

bool swaps_last_two_axes(const Graph& g, const Node& t) {
  if (t.op != OpType::kTranspose) return false;
  const std::vector<int64_t> perm = transpose_perm(g, t);
  const size_t rank = perm.size();
  if (rank < 2) return false;
  for (size_t a = 0; a + 2 < rank; ++a) {
    if (perm[a] != static_cast<int64_t>(a)) return false;
  }
  return perm[rank - 2] == static_cast<int64_t>(rank - 1) && perm[rank - 1] == static_cast<int64_t>(rank - 2);
}

Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, double lo, double hi) {
  std::mt19937_64 rng(seed);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(lo + (hi - lo) * (static_cast<double>(rng() >> 11) * 0x1.0p-53));
  return Tensor::floats(std::move(shape), std::move(v));
}

// The result of rewriting: folded and compacted.
Graph finish(Graph g) {
  fold_constants(g);
  return g;
}

// `g` with the nodes `fused` (in order; the last one's output is the result) replaced by one
// node `op` over `inputs`; nullopt when that node does not infer to the same shape.
std::optional<Graph> replace_by_one(const Graph& g, const std::vector<NodeId>& fused, OpType op,
                                    const std::vector<ValueId>& inputs, const Attrs& attrs, std::string_view name) {
  ValueId result = g.node(fused.back()).outputs[0];
  Graph out = g;
  std::vector<ValueId> made;
  try {
    made = out.add_node(op, inputs, attrs, out.fresh_name(name));
  } catch (const UserError&) {
    return std::nullopt;
  }
  if (out.value(made[0]).shape != g.value(result).shape) return std::nullopt;
  out.replace_uses(result, made[0]);
  for (NodeId n : fused) out.remove_node(n);
  return finish(std::move(out));
}

bool is_contraction(OpType op) {
  return op == OpType::kMatMul || op == OpType::kFusedMatMul || op == OpType::kConv || op == OpType::kFusedConv;
}

bool is_matmul(OpType op) { return op == OpType::kMatMul || op == OpType::kFusedMatMul; }

FusedForm fused_form(const Node& n) {
  FusedForm f;
  f.attrs = n.attrs;
  f.inputs = n.inputs;
  if (n.op == OpType::kMatMul) {
    f.op = OpType::kFusedMatMul;
    f.attrs = {{"trans_a", int64_t{0}}, {"trans_b", int64_t{0}}};
  } else if (n.op == OpType::kConv) {
    f.op = OpType::kFusedConv;
    if (f.inputs.size() == 3 && f.inputs[2] != kNone) {
      f.steps.push_back("bias");
    } else {
      f.inputs.resize(2);
    }
  } else {
    f.op = n.op;
    f.steps = split_steps(n.attr_string("epilogue", ""));
    f.attrs.erase("epilogue");
  }
  return f;
}

std::optional<std::string> chain_step(const Node& n) {
  auto step = chain_step_name(n.op);
  if (!step) return std::nullopt;
  if (n.op == OpType::kGelu && n.attr_string("approximate", "none") != "none") return std::nullopt;
  if ((n.op == OpType::kMax || n.op == OpType::kMin) && n.inputs.size() != 2) return std::nullopt;
  return std::string(*step);
}

// A constant holding `shape`, the second input of a Reshape to it.
ValueId add_shape(Graph& g, const std::vector<int64_t>& shape) {
  return g.add_constant(g.fresh_name("shape"), Tensor::ints({static_cast<int64_t>(shape.size())}, shape));
}

// n's "axis" attribute as an index into its first input's axes, or -1 when out of range.
int64_t normalised_axis(const Graph& g, const Node& n) {
  auto rank = static_cast<int64_t>(g.value(n.inputs[0]).shape.size());
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  return axis >= 0 && axis < rank ? axis : -1;
}

}  // namespace builtin

std::vector<std::unique_ptr<Rule>> builtin_rules() {
  using namespace builtin;
  std::vector<std::unique_ptr<Rule>> rules;
  rules.push_back(make_fuse_epilogue());
  rules.push_back(make_eltwise_chain());
  rules.push_back(make_merge_contractions(false));
  rules.push_back(make_merge_contractions(true));
  rules.push_back(make_enlarge_conv());
  rules.push_back(make_ungroup_conv());
  rules.push_back(make_transpose_compose());
  rules.push_back(make_split_activation());
  rules.push_back(make_transpose_unit_dims());
  rules.push_back(make_fused_matmul_transpose());
  rules.push_back(make_reshape_elementwise());
  rules.push_back(make_split_split());
  rules.push_back(make_split_heads());
  rules.push_back(make_gather_heads());
  rules.push_back(make_layout_chain());
  return rules;
}

}  // namespace tessera::graph
