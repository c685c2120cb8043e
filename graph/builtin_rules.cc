// The rule families data cannot express: they depend on shapes in ways a fixed pattern does
// not (concatenating weights, padding a kernel, growing an epilogue or a chain of any length).
#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <span>

#include "core/error.h"
#include "graph/ops.h"
#include "graph/rules.h"

namespace tessera::graph {
namespace {

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

Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, double lo = -1, double hi = 1) {
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

class BuiltinRule : public Rule {
 public:
  explicit BuiltinRule(std::string name) : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
};

// ---------------------------------------------------------------------------------------
// fuse_epilogue: MatMul / Conv (plain or fused) followed by bias, relu, gelu or a residual
// add becomes one fused operator with a longer epilogue.

bool is_contraction(OpType op) {
  return op == OpType::kMatMul || op == OpType::kFusedMatMul || op == OpType::kConv || op == OpType::kFusedConv;
}
bool is_matmul(OpType op) { return op == OpType::kMatMul || op == OpType::kFusedMatMul; }

// A contraction as a fused node: its inputs and epilogue steps.
struct FusedForm {
  OpType op;
  std::vector<ValueId> inputs;
  Attrs attrs;
  std::vector<std::string> steps;
};

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

class FuseEpilogue : public BuiltinRule {
 public:
  FuseEpilogue() : BuiltinRule("fuse_epilogue") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t b = 0; b < g.nodes().size(); ++b) {
      const Node& base = g.nodes()[b];
      if (base.removed || !is_contraction(base.op) || base.outputs.size() != 1) continue;
      if (is_matmul(base.op) && (g.value(base.inputs[0]).shape.size() < 2 || g.value(base.inputs[1]).shape.size() < 2)) {
        continue;
      }
      ValueId y = base.outputs[0];
      NodeId c = sole_consumer(g, consumers, y);
      if (c == kNone) continue;
      auto steps = steps_of(g, base, g.node(c), y);
      if (!steps) continue;
      // An operand computed from the contraction's own result would make a cycle.
      bool cycle = std::any_of(steps->begin(), steps->end(), [&](const Step& st) {
        return st.input != kNone && g.value(st.input).producer != kNone &&
               g.reaches(static_cast<NodeId>(b), g.value(st.input).producer);
      });
      if (!cycle) out.push_back(Match{{static_cast<NodeId>(b), c}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& base = g.node(m.nodes[0]);
    const Node& next = g.node(m.nodes[1]);
    auto steps = steps_of(g, base, next, base.outputs[0]);
    if (!steps) return std::nullopt;
    FusedForm f = fused_form(base);
    for (const Step& st : *steps) {
      f.steps.push_back(st.name);
      if (st.input != kNone) f.inputs.push_back(st.input);
    }
    f.attrs["epilogue"] = join_steps(f.steps);
    return replace_by_one(g, m.nodes, f.op, f.inputs, f.attrs, "fused");
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    // MatMul + bias + gelu, and a residual after it.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 8});
      ValueId r = g.add_input("r", ElemType::kF32, {2, 3, 6});
      ValueId w = g.add_constant("w", random_tensor({8, 6}, 1));
      ValueId b = g.add_constant("b", random_tensor({6}, 2));
      ValueId t = g.add_node(OpType::kMatMul, {x, w})[0];
      t = g.add_node(OpType::kAdd, {b, t})[0];
      t = g.add_node(OpType::kGelu, {t})[0];
      t = g.add_node(OpType::kAdd, {t, r})[0];
      g.add_output(t);
      cases.push_back(std::move(g));
    }
    // A chain of bias, relu and residual after a transposed-weight matmul.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
      ValueId r = g.add_input("r", ElemType::kF32, {4, 5});
      ValueId w = g.add_constant("w", random_tensor({5, 8}, 18));
      ValueId b = g.add_constant("b", random_tensor({5}, 19));
      Attrs tb{{"trans_a", int64_t{0}}, {"trans_b", int64_t{1}}, {"epilogue", std::string("")}};
      ValueId t = g.add_node(OpType::kFusedMatMul, {x, w}, tb)[0];
      t = g.add_node(OpType::kEltwiseChain, {t, b, r}, {{"ops", std::string("add+relu+add")}})[0];
      g.add_output(t);
      cases.push_back(std::move(g));
    }
    // Conv with bias + relu.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 6, 6});
      ValueId w = g.add_constant("w", random_tensor({4, 3, 3, 3}, 3));
      ValueId b = g.add_constant("b", random_tensor({4}, 4));
      Attrs conv{{"pads", std::vector<int64_t>{1, 1, 1, 1}}, {"strides", std::vector<int64_t>{2, 2}}};
      ValueId t = g.add_node(OpType::kConv, {x, w, b}, conv)[0];
      t = g.add_node(OpType::kRelu, {t})[0];
      g.add_output(t);
      cases.push_back(std::move(g));
    }
    return cases;
  }

 private:
  // One epilogue step and the input it reads (kNone for an activation).
  struct Step {
    std::string name;
    ValueId input = kNone;
  };

  // The step an Add of `other` to the contraction's result y is: a residual (y's shape) or,
  // for a matmul, a bias (a constant vector over the output features).
  static std::optional<std::string> add_step(const Graph& g, const Node& base, ValueId y, ValueId other) {
    const Value& o = g.value(other);
    const Value& yv = g.value(y);
    if (o.type != yv.type) return std::nullopt;
    if (o.shape == yv.shape) return "residual";
    // A conv's bias comes as Conv's third input in ONNX, not as an Add.
    if (is_matmul(base.op) && is_constant(g, other) && o.shape.size() == 1 && o.shape[0] == yv.shape.back()) {
      return "bias";
    }
    return std::nullopt;
  }

  // The epilogue steps `next` (an activation, an Add, or an elementwise chain made only of
  // those, reading y as its running value) adds after `base`, if it is that; each step at
  // most once in the whole epilogue.
  static std::optional<std::vector<Step>> steps_of(const Graph& g, const Node& base, const Node& next, ValueId y) {
    std::vector<Step> steps;
    if (next.op == OpType::kRelu) {
      steps.push_back({"relu"});
    } else if (next.op == OpType::kGelu && next.attr_string("approximate", "none") == "none") {
      steps.push_back({"gelu"});
    } else if (next.op == OpType::kAdd && next.inputs.size() == 2) {
      ValueId other = next.inputs[0] == y ? next.inputs[1] : next.inputs[0];
      auto name = add_step(g, base, y, other);
      if (!name) return std::nullopt;
      steps.push_back({*name, other});
    } else if (next.op == OpType::kEltwiseChain && !next.inputs.empty() && next.inputs[0] == y) {
      size_t operand = 1;
      for (const std::string& op : split_steps(next.attr_string("ops", ""))) {
        if (op == "relu" || op == "gelu") {
          steps.push_back({op});
        } else if (op == "add" && operand < next.inputs.size()) {
          ValueId other = next.inputs[operand++];
          auto name = add_step(g, base, y, other);
          if (!name) return std::nullopt;
          steps.push_back({*name, other});
        } else {
          return std::nullopt;
        }
      }
    } else {
      return std::nullopt;
    }
    std::vector<std::string> all = fused_form(base).steps;
    for (const Step& st : steps) {
      if (std::find(all.begin(), all.end(), st.name) != all.end()) return std::nullopt;
      all.push_back(st.name);
    }
    return steps;
  }
};

// ---------------------------------------------------------------------------------------
// eltwise_chain: two elementwise operators in a row become one chain.

std::optional<std::string> chain_step(const Node& n) {
  auto step = chain_step_name(n.op);
  if (!step) return std::nullopt;
  if (n.op == OpType::kGelu && n.attr_string("approximate", "none") != "none") return std::nullopt;
  if ((n.op == OpType::kMax || n.op == OpType::kMin) && n.inputs.size() != 2) return std::nullopt;
  return std::string(*step);
}

bool chainable(const Node& n) { return n.op == OpType::kEltwiseChain || chain_step(n).has_value(); }

class EltwiseChainRule : public BuiltinRule {
 public:
  EltwiseChainRule() : BuiltinRule("eltwise_chain") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t p = 0; p < g.nodes().size(); ++p) {
      const Node& first = g.nodes()[p];
      if (first.removed || !chainable(first) || !is_float(g.value(first.outputs[0]).type)) continue;
      ValueId v = first.outputs[0];
      NodeId c = sole_consumer(g, consumers, v);
      if (c == kNone || !fits(g, static_cast<NodeId>(p), g.node(c), v)) continue;
      out.push_back(Match{{static_cast<NodeId>(p), c}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& first = g.node(m.nodes[0]);
    const Node& next = g.node(m.nodes[1]);
    ValueId v = first.outputs[0];
    std::vector<std::string> steps;
    std::vector<ValueId> inputs = first.inputs;
    if (first.op == OpType::kEltwiseChain) steps = split_steps(first.attr_string("ops", ""));
    else steps.push_back(*chain_step(first));
    std::vector<std::string> next_steps;
    std::vector<ValueId> next_inputs;
    if (next.op == OpType::kEltwiseChain) {
      next_steps = split_steps(next.attr_string("ops", ""));
      next_inputs.assign(next.inputs.begin() + 1, next.inputs.end());
    } else {
      next_steps.push_back(*chain_step(next));
      if (next.inputs.size() == 2) next_inputs.push_back(next.inputs[0] == v ? next.inputs[1] : next.inputs[0]);
    }
    steps.insert(steps.end(), next_steps.begin(), next_steps.end());
    inputs.insert(inputs.end(), next_inputs.begin(), next_inputs.end());
    return replace_by_one(g, m.nodes, OpType::kEltwiseChain, inputs, {{"ops", join_steps(steps)}}, "chain");
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
    ValueId y = g.add_input("y", ElemType::kF32, {4, 8});
    ValueId s = g.add_constant("s", Tensor::floats({}, {0.125f}));
    ValueId t = g.add_node(OpType::kDiv, {x, s})[0];
    t = g.add_node(OpType::kAdd, {y, t})[0];
    t = g.add_node(OpType::kSigmoid, {t})[0];
    t = g.add_node(OpType::kSub, {t, y})[0];
    g.add_output(t);
    return {std::move(g)};
  }

 private:
  // Whether `next` continues the chain ending in `first` (output v): v must be the running
  // (left) operand, and the chain must keep v's shape.
  static bool fits(const Graph& g, NodeId first, const Node& next, ValueId v) {
    if (!chainable(next) || g.value(next.outputs[0]).shape != g.value(v).shape) return false;
    if (next.op == OpType::kEltwiseChain) return next.inputs[0] == v && count_uses(next, v) == 1 && !depends(g, first, next);
    if (next.inputs.size() == 1) return next.inputs[0] == v;
    bool left = next.inputs[0] == v;
    bool commutes = next.op == OpType::kAdd || next.op == OpType::kMul;
    if (!left && !commutes) return false;
    if (next.inputs[0] == next.inputs[1]) return false;
    return !depends(g, first, next);
  }
  static int count_uses(const Node& n, ValueId v) { return static_cast<int>(std::count(n.inputs.begin(), n.inputs.end(), v)); }
  // Whether another operand of `next` is computed from `first` (fusing would make a cycle).
  static bool depends(const Graph& g, NodeId first, const Node& next) {
    for (ValueId in : next.inputs) {
      if (in == g.node(first).outputs[0]) continue;
      NodeId p = g.value(in).producer;
      if (p != kNone && g.reaches(first, p)) return true;
    }
    return false;
  }
};

// ---------------------------------------------------------------------------------------
// merge_matmul / merge_conv: two contractions that read the same input with constant
// weights become one over concatenated weights, and a Split.

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

// ---------------------------------------------------------------------------------------
// enlarge_conv: a convolution's kernel grows (zero-padded, with matching padding) to the
// size of a sibling convolution that reads the same input, so that merge_conv can merge
// them. Costs more on its own; it pays only with the merge that follows (TASO's example).

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

// ---------------------------------------------------------------------------------------
// ungroup_conv: a grouped convolution becomes an ordinary one whose weight is block-diagonal
// (zeros between the groups). It does `group` times the arithmetic, but an ordinary
// convolution runs on the tensor-core implicit GEMM while a grouped one runs on CUDA cores;
// the cost oracle decides (TASO's ResNeXt-50 rewrite).

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

// ---------------------------------------------------------------------------------------
// transpose_compose: two transposes in a row become one, or none.

class TransposeCompose : public BuiltinRule {
 public:
  TransposeCompose() : BuiltinRule("transpose_compose") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& first = g.nodes()[n];
      if (first.removed || first.op != OpType::kTranspose) continue;
      NodeId c = sole_consumer(g, consumers, first.outputs[0]);
      if (c != kNone && g.node(c).op == OpType::kTranspose) out.push_back(Match{{static_cast<NodeId>(n), c}, {}});
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& first = g.node(m.nodes[0]);
    const Node& second = g.node(m.nodes[1]);
    size_t rank = g.value(first.inputs[0]).shape.size();
    std::vector<int64_t> p1 = transpose_perm(g, first), p2 = transpose_perm(g, second), q(rank);
    bool identity = true;
    for (size_t k = 0; k < rank; ++k) {
      q[k] = p1[static_cast<size_t>(p2[k])];
      identity = identity && q[k] == static_cast<int64_t>(k);
    }
    Graph out = g;
    ValueId result = first.inputs[0];
    if (!identity) result = out.add_node(OpType::kTranspose, {first.inputs[0]}, {{"perm", q}}, out.fresh_name("transpose"))[0];
    if (out.value(result).shape != g.value(second.outputs[0]).shape) return std::nullopt;
    out.replace_uses(second.outputs[0], result);
    out.remove_node(m.nodes[0]);
    out.remove_node(m.nodes[1]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> cases;
    for (auto perms : {std::pair<std::vector<int64_t>, std::vector<int64_t>>{{0, 2, 1, 3}, {0, 2, 3, 1}},
                       std::pair<std::vector<int64_t>, std::vector<int64_t>>{{1, 0, 2}, {1, 0, 2}}}) {
      Graph g;
      std::vector<int64_t> shape = perms.first.size() == 4 ? std::vector<int64_t>{2, 3, 4, 5} : std::vector<int64_t>{3, 4, 5};
      ValueId x = g.add_input("x", ElemType::kF32, shape);
      ValueId t = g.add_node(OpType::kTranspose, {x}, {{"perm", perms.first}})[0];
      t = g.add_node(OpType::kTranspose, {t}, {{"perm", perms.second}})[0];
      g.add_output(g.add_node(OpType::kRelu, {t})[0]);
      cases.push_back(std::move(g));
    }
    return cases;
  }
};


// ---------------------------------------------------------------------------------------
// split_activation: a Split whose every output goes only to the same elementwise activation
// becomes that activation on the whole tensor, then the Split. A merged contraction whose
// epilogue stopped at its bias (merge_conv and merge_matmul split their result) thus gets
// its activation back into the epilogue: one fused kernel instead of one launch per part.

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

// A constant holding `shape`, the second input of a Reshape to it.
ValueId add_shape(Graph& g, const std::vector<int64_t>& shape) {
  return g.add_constant(g.fresh_name("shape"), Tensor::ints({static_cast<int64_t>(shape.size())}, shape));
}

// ---------------------------------------------------------------------------------------
// transpose_unit_dims: a Transpose that moves only axes of extent 1 (the batch axis of a
// batch-1 sequence, say) keeps every element where it was: it is a Reshape, a view.

class TransposeUnitDims : public BuiltinRule {
 public:
  TransposeUnitDims() : BuiltinRule("transpose_unit_dims") {}

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

// ---------------------------------------------------------------------------------------
// reshape_elementwise: an elementwise Add, Sub, Mul or Div of a Reshape's result and a tensor
// of the same shape is the operation on the Reshape's input (the other operand reshaped to
// it), then the Reshape. Applied where the Reshape's input is a contraction's result: a
// residual added after a projection's Reshape thus comes next to the projection, where
// fuse_epilogue can take it.

class ReshapeElementwise : public BuiltinRule {
 public:
  ReshapeElementwise() : BuiltinRule("reshape_elementwise") {}

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

// ---------------------------------------------------------------------------------------
// split_split: a Split of one part of a Split, along the same axis, is one Split into all the
// parts (merging three projections pairwise leaves two nested Splits; one copies less).

// n's "axis" attribute as an index into its first input's axes, or -1 when out of range.
int64_t normalised_axis(const Graph& g, const Node& n) {
  auto rank = static_cast<int64_t>(g.value(n.inputs[0]).shape.size());
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += rank;
  return axis >= 0 && axis < rank ? axis : -1;
}

class SplitSplit : public BuiltinRule {
 public:
  SplitSplit() : BuiltinRule("split_split") {}

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    for (size_t s = 0; s < g.nodes().size(); ++s) {
      const Node& outer = g.nodes()[s];
      if (outer.removed || outer.op != OpType::kSplit) continue;
      int64_t axis = normalised_axis(g, outer);
      if (axis < 0) continue;
      for (ValueId part : outer.outputs) {
        NodeId c = sole_consumer(g, consumers, part);
        if (c != kNone && g.node(c).op == OpType::kSplit && g.node(c).inputs[0] == part &&
            normalised_axis(g, g.node(c)) == axis) {
          out.push_back(Match{{static_cast<NodeId>(s), c}, {}});
          break;
        }
      }
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    const Node& outer = g.node(m.nodes[0]);
    const Node& inner = g.node(m.nodes[1]);
    auto axis = static_cast<size_t>(normalised_axis(g, outer));
    // The parts in order, the inner Split's in place of the part it splits.
    std::vector<ValueId> parts;
    for (ValueId p : outer.outputs) {
      if (p == inner.inputs[0]) {
        parts.insert(parts.end(), inner.outputs.begin(), inner.outputs.end());
      } else {
        parts.push_back(p);
      }
    }
    std::vector<int64_t> sizes;
    for (ValueId p : parts) sizes.push_back(g.value(p).shape[axis]);
    Graph out = g;
    std::vector<ValueId> made;
    try {
      ValueId sizes_v = out.add_constant(out.fresh_name("sizes"), Tensor::ints({static_cast<int64_t>(sizes.size())}, sizes));
      made = out.add_node(OpType::kSplit, {outer.inputs[0], sizes_v}, {{"axis", static_cast<int64_t>(axis)}},
                          out.fresh_name(outer.name), static_cast<int>(sizes.size()));
    } catch (const UserError&) {
      return std::nullopt;
    }
    for (size_t k = 0; k < parts.size(); ++k) {
      if (out.value(made[k]).shape != g.value(parts[k]).shape) return std::nullopt;
      out.replace_uses(parts[k], made[k]);
    }
    out.remove_node(m.nodes[1]);
    out.remove_node(m.nodes[0]);
    return finish(std::move(out));
  }

  std::vector<Graph> verification_cases() const override {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {2, 3, 12});
    ValueId outer_sizes = g.add_constant("outer", Tensor::ints({2}, {7, 5}));
    auto parts = g.add_node(OpType::kSplit, {x, outer_sizes}, {{"axis", int64_t{-1}}}, "outer", 2);
    ValueId inner_sizes = g.add_constant("inner", Tensor::ints({2}, {3, 4}));
    auto inner = g.add_node(OpType::kSplit, {parts[0], inner_sizes}, {{"axis", int64_t{2}}}, "inner", 2);
    g.add_output(g.add_node(OpType::kRelu, {inner[0]})[0]);
    g.add_output(g.add_node(OpType::kSigmoid, {inner[1]})[0]);
    g.add_output(g.add_node(OpType::kTanh, {parts[1]})[0]);
    return {std::move(g)};
  }
};

// ---------------------------------------------------------------------------------------
// split_heads: a Split of the last axis whose every part is reshaped alone to the same
// heads x head-size shape and transposed alone (attention's query, key and value after a
// merged projection) is one Reshape to [..., P, heads, size], one Transpose that puts P
// first, and P Gathers along that leading axis (views): one copy instead of P Transposes
// and the Split's. A part whose Transpose differs from the most common one gets the
// difference as a Transpose of its own (the key's swap of the last two axes, which a matmul
// then takes as transposed B). A part may already be such a group (split_heads applied to
// the query and key before the value's projection was merged): it counts as its heads.

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

// ---------------------------------------------------------------------------------------
// layout_chain: a chain of Reshapes (Flatten, Squeeze, Unsqueeze) and Transposes, each value
// read only by the next, with two Transposes or more, is at most one: a Reshape of the input
// into the finest axes the chain distinguishes, one Transpose of those, a Reshape to the
// result. (ViT's packed projection is reshaped, transposed, then split into heads and
// transposed again.)

bool is_reshape_op(OpType op) {
  return op == OpType::kReshape || op == OpType::kFlatten || op == OpType::kSqueeze || op == OpType::kUnsqueeze;
}

class LayoutChain : public BuiltinRule {
 public:
  LayoutChain() : BuiltinRule("layout_chain") {}

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
    if (node.op != OpType::kTranspose) return false;
    std::vector<int64_t> perm = transpose_perm(g, node);
    const size_t rank = perm.size();
    if (rank < 2) return false;
    for (size_t k = 0; k + 2 < rank; ++k) {
      if (perm[k] != static_cast<int64_t>(k)) return false;
    }
    if (perm[rank - 2] != static_cast<int64_t>(rank - 1) || perm[rank - 1] != static_cast<int64_t>(rank - 2)) {
      return false;
    }
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

std::vector<std::unique_ptr<Rule>> builtin_rules() {
  std::vector<std::unique_ptr<Rule>> rules;
  rules.push_back(std::make_unique<FuseEpilogue>());
  rules.push_back(std::make_unique<EltwiseChainRule>());
  rules.push_back(std::make_unique<MergeContractions>(false));
  rules.push_back(std::make_unique<MergeContractions>(true));
  rules.push_back(std::make_unique<EnlargeConv>());
  rules.push_back(std::make_unique<UngroupConv>());
  rules.push_back(std::make_unique<TransposeCompose>());
  rules.push_back(std::make_unique<SplitActivation>());
  rules.push_back(std::make_unique<TransposeUnitDims>());
  rules.push_back(std::make_unique<ReshapeElementwise>());
  rules.push_back(std::make_unique<SplitSplit>());
  rules.push_back(std::make_unique<SplitHeads>());
  rules.push_back(std::make_unique<GatherHeads>());
  rules.push_back(std::make_unique<LayoutChain>());
  return rules;
}

}  // namespace tessera::graph
