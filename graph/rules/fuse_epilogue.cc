// fuse_epilogue: MatMul / Conv (plain or fused) followed by bias, relu, gelu or a residual
// add becomes one fused operator with a longer epilogue; a matmul's product multiplied or
// divided by a one-element constant first (attention's 1 / sqrt(d)) becomes its `alpha`.
#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/workload.h"
#include "graph/builtin_rule.h"
#include "graph/ops.h"

namespace tessera::graph::builtin {
namespace {

class FuseEpilogue : public BuiltinRule {
 public:
  FuseEpilogue() : BuiltinRule("fuse_epilogue", /*canonical=*/false, /*fusion=*/true) {}

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
      if (st.name == kScale) {
        const auto it = f.attrs.find("alpha");
        f.attrs["alpha"] = (it == f.attrs.end() ? 1.0 : std::get<double>(it->second)) * st.scale;
        continue;
      }
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
    // Attention's scores: a batched matmul divided by a scalar (alpha), then a relu.
    {
      Graph g;
      ValueId q = g.add_input("q", ElemType::kF32, {2, 3, 8});
      ValueId k = g.add_input("k", ElemType::kF32, {2, 8, 5});
      ValueId s = g.add_constant("s", Tensor::floats({}, {2.828427f}));
      ValueId t = g.add_node(OpType::kMatMul, {q, k})[0];
      t = g.add_node(OpType::kDiv, {t, s})[0];
      t = g.add_node(OpType::kRelu, {t})[0];
      g.add_output(t);
      cases.push_back(std::move(g));
    }
    // A scalar multiply, a bias and a relu in one elementwise chain after a transposed-weight
    // matmul: alpha, then the epilogue.
    {
      Graph g;
      ValueId x = g.add_input("x", ElemType::kF32, {4, 8});
      ValueId w = g.add_constant("w", random_tensor({5, 8}, 20));
      ValueId s = g.add_constant("s", Tensor::floats({1}, {-0.125f}));
      ValueId b = g.add_constant("b", random_tensor({5}, 21));
      Attrs tb{{"trans_a", int64_t{0}}, {"trans_b", int64_t{1}}, {"epilogue", std::string("")}};
      ValueId t = g.add_node(OpType::kFusedMatMul, {x, w}, tb)[0];
      t = g.add_node(OpType::kEltwiseChain, {t, s, b}, {{"ops", std::string("mul+add+relu")}})[0];
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
  static constexpr const char* kScale = "scale";
  // One epilogue step and the input it reads (kNone for an activation); kScale: the product
  // multiplied by `scale`.
  struct Step {
    std::string name;
    ValueId input = kNone;
    double scale = 1.0;
  };

  // The factor a Mul by (or, `divide`, a Div by) `other` applies, when `other` is a one-element
  // constant of y's type that keeps y's shape and the factor is finite and non-zero.
  static std::optional<double> scale_of(const Graph& g, ValueId y, ValueId other, bool divide) {
    if (!is_constant(g, other)) return std::nullopt;
    const Value& o = g.value(other);
    const Value& yv = g.value(y);
    if (o.synthetic || o.type != yv.type || o.elements() != 1 || o.shape.size() > yv.shape.size() ||
        o.constant->f.size() != 1) {
      return std::nullopt;
    }
    const double v = o.constant->f[0];
    if (v == 0) return std::nullopt;
    const double factor = divide ? 1.0 / v : v;
    if (!valid_alpha(factor)) return std::nullopt;
    return factor;
  }

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
    // A scale applies to the product: only a matmul's, and only before any other step.
    const bool can_scale = is_matmul(base.op) && fused_form(base).steps.empty();
    if ((next.op == OpType::kMul || next.op == OpType::kDiv) && next.inputs.size() == 2) {
      const bool divide = next.op == OpType::kDiv;
      if (!can_scale || (divide && next.inputs[0] != y)) return std::nullopt;
      auto factor = scale_of(g, y, next.inputs[0] == y ? next.inputs[1] : next.inputs[0], divide);
      if (!factor) return std::nullopt;
      steps.push_back({kScale, kNone, *factor});
    } else if (next.op == OpType::kRelu) {
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
        if ((op == "mul" || op == "div") && operand < next.inputs.size()) {
          if (!can_scale || !steps.empty()) return std::nullopt;
          auto factor = scale_of(g, y, next.inputs[operand++], op == "div");
          if (!factor) return std::nullopt;
          steps.push_back({kScale, kNone, *factor});
        } else if (op == "relu" || op == "gelu") {
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

}  // namespace

std::unique_ptr<Rule> make_fuse_epilogue() { return std::make_unique<FuseEpilogue>(); }

}  // namespace tessera::graph::builtin
