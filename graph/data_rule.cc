// Data rules: a rewrite given as JSON (configs/rules/README.md): a pattern of operators with
// attribute constraints and conditions, a replacement built from the match, and the cases it
// is verified on; parsed and bounded when loaded (parse_rule).
#include "graph/rules.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/hash.h"
#include "graph/ops.h"
#include "graph/rule_limits.h"

namespace tessera::graph {
namespace {

using namespace rule_detail;

bool commutative(OpType op) {
  return op == OpType::kAdd || op == OpType::kMul || op == OpType::kEqual;
}

// ---------------------------------------------------------------------------------------
// Data rules

// A constraint on one attribute of a pattern node.
struct AttrPattern {
  enum class Kind { kLiteral, kBind, kEquals } kind = Kind::kLiteral;
  AttrValue value;                  // kLiteral, kEquals: what it must be
  std::string var;                  // kBind: the variable it binds
  std::optional<AttrValue> absent;  // the value an absent attribute stands for
};

struct PatternNode {
  std::string id;
  OpType op = OpType::kIdentity;
  std::vector<std::string> inputs;   // value names; "" = omitted optional input
  std::vector<std::string> outputs;  // value names
  std::map<std::string, AttrPattern> attrs;
};

// An attribute of a replacement node: a literal, an attribute variable or a bound value's
// dimension.
struct AttrTemplate {
  enum class Kind { kLiteral, kVar, kDim } kind = Kind::kLiteral;
  AttrValue value;
  std::string name;  // kVar: variable; kDim: value name
  int64_t axis = 0;  // kDim
};

struct ReplacementNode {
  OpType op = OpType::kIdentity;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::map<std::string, AttrTemplate> attrs;
  std::string copy_attrs;  // id of a pattern node whose attributes are copied first
};

// A constant the replacement creates: a scalar (literal or attribute variable) or int list.
struct ReplacementConstant {
  std::string name;
  bool is_ints = false;
  std::vector<int64_t> ints;
  double scalar = 0;
  std::string var;  // scalar from an attribute variable
};

struct Condition {
  enum class Kind { kConstant, kRank, kDimEq, kSameShape, kScalarValue, kFloat, kScalar } kind;
  std::vector<std::string> names;
  std::vector<int64_t> axes;
  double value = 0, tolerance = 0;
};

// A value of a verification case.
struct CaseValue {
  std::vector<int64_t> shape;
  ElemType type = ElemType::kF32;
  bool constant = false;
  std::optional<double> fill;         // every element this value
  std::vector<int64_t> ints;          // integer constant's values
  double min = -1, max = 1;           // random constant range
};

struct Binding {
  std::map<std::string, ValueId> values;
  std::vector<NodeId> nodes;  // per pattern node, kNone until bound
  std::map<std::string, AttrValue> attrs;
};

[[noreturn]] void bad(const std::string& what, const std::string& msg) {
  throw UserError("rule " + what + ": " + msg);
}


// A JSON value for a message, cut short.
std::string json_text(const Json& x) {
  std::string t = x.dump();
  return t.size() > 40 ? t.substr(0, 37) + "..." : t;
}

// JSON integers past int64 (nlohmann keeps them as uint64) would wrap on the way in.
bool fits_int64(const Json& x) {
  return x.is_number_integer() &&
         (!x.is_number_unsigned() ||
          x.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
}

// `x` as an integer; a UserError naming `field` when it is not one (a float would be
// truncated silently by nlohmann).
int64_t json_int(const Json& x, const std::string& what, const std::string& field) {
  if (!fits_int64(x)) bad(what, field + " must be an integer from -2^63 to 2^63-1, not " + json_text(x));
  return x.get<int64_t>();
}

std::vector<int64_t> json_ints(const Json& x, const std::string& what, const std::string& field) {
  if (!x.is_array()) bad(what, field + " must be a list of integers, not " + std::string(x.type_name()));
  std::vector<int64_t> out;
  out.reserve(x.size());
  for (const Json& e : x) out.push_back(json_int(e, what, field));
  return out;
}

double json_finite(const Json& x, const std::string& what, const std::string& field) {
  if (!x.is_number() || !std::isfinite(x.get<double>())) bad(what, field + " must be a finite number");
  return x.get<double>();
}

AttrValue attr_from_json(const Json& j, const std::string& what) {
  if (j.is_number_integer()) return json_int(j, what, "an integer attribute");
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_array()) {
    bool all_int = std::all_of(j.begin(), j.end(), [](const Json& x) { return x.is_number_integer(); });
    if (all_int) return json_ints(j, what, "an integer list attribute");
    bool all_num = std::all_of(j.begin(), j.end(), [](const Json& x) { return x.is_number(); });
    if (all_num) return j.get<std::vector<double>>();
  }
  bad(what, "an attribute value must be a number, a string or a list of numbers, not " + std::string(j.type_name()));
}

// What shape inference (shape_inference.cc) lets through and then reads out of bounds on: a Transpose
// of a rank-0 input with a non-empty perm (its permutation check loops over the rank). Rule
// files reach it, so rules check it before adding a node; nullopt when the node is fine.
std::optional<std::string> unchecked_by_inference(const Graph& g, OpType op, const Attrs& attrs,
                                                  const std::vector<ValueId>& inputs) {
  if (op != OpType::kTranspose || inputs.empty() || inputs[0] == kNone || !g.value(inputs[0]).shape.empty()) {
    return std::nullopt;
  }
  auto it = attrs.find("perm");
  if (it == attrs.end()) return std::nullopt;
  const auto* perm = std::get_if<std::vector<int64_t>>(&it->second);
  if (!perm || perm->empty()) return std::nullopt;
  return "Transpose: perm " + dims_text(*perm) + " is not a permutation of the 0 dimensions of []";
}

// An INT or FLOAT attribute as a number.
std::optional<double> attr_number(const AttrValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

bool attr_equal(const AttrValue& a, const AttrValue& b) {
  if (a == b) return true;
  auto x = attr_number(a), y = attr_number(b);
  return x && y && *x == *y;
}

OpType parse_op(const Json& j, const std::string& what) {
  if (!j.is_string()) bad(what, "\"op\" must be a string");
  auto op = op_type_from_name(j.get<std::string>());
  if (!op || *op == OpType::kOpaque) bad(what, "unknown operator '" + j.get<std::string>() + "'");
  return *op;
}

std::vector<std::string> strings(const Json& j, const std::string& what, const char* field) {
  if (!j.contains(field)) return {};
  if (!j[field].is_array()) bad(what, std::string("\"") + field + "\" must be a list of names");
  std::vector<std::string> out;
  for (const Json& x : j[field]) {
    if (!x.is_string()) bad(what, std::string("\"") + field + "\" must be a list of names");
    out.push_back(x.get<std::string>());
  }
  return out;
}


class DataRule : public Rule {
 public:
  DataRule(const Json& j, const std::string& file) { parse(j, file); }

  const std::string& name() const override { return name_; }
  bool canonical() const override { return canonical_; }
  bool fusion() const override { return fusion_; }

  std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const override {
    std::vector<Match> out;
    std::set<std::vector<NodeId>> seen;
    const PatternNode& sink = pattern_.back();
    for (size_t n = 0; n < g.nodes().size(); ++n) {
      const Node& node = g.nodes()[n];
      if (node.removed || node.op != sink.op) continue;
      Binding b;
      b.nodes.assign(pattern_.size(), kNone);
      match_node(g, pattern_.size() - 1, static_cast<NodeId>(n), b, [&](const Binding& done) {
        if (!accept(g, consumers, done)) return;
        std::vector<NodeId> key = done.nodes;
        std::sort(key.begin(), key.end());
        if (!seen.insert(key).second) return;
        Match m;
        m.nodes = done.nodes;
        for (const std::string& v : value_order_) m.values.push_back(done.values.at(v));
        out.push_back(std::move(m));
      });
    }
    return out;
  }

  std::optional<Graph> apply(const Graph& g, const Match& m) const override {
    Binding b;
    b.nodes = m.nodes;
    for (size_t k = 0; k < value_order_.size(); ++k) b.values[value_order_[k]] = m.values[k];
    bind_attrs(g, b);
    Graph out = g;
    std::map<std::string, ValueId> made;
    auto resolve = [&](const std::string& name) -> ValueId {
      if (name.empty()) return kNone;
      if (auto it = made.find(name); it != made.end()) return it->second;
      return b.values.at(name);
    };
    for (const ReplacementConstant& c : constants_) {
      Tensor t;
      if (c.is_ints) {
        t = Tensor::ints({static_cast<int64_t>(c.ints.size())}, c.ints);
      } else {
        double v = c.var.empty() ? c.scalar : attr_number(b.attrs.at(c.var)).value_or(std::nan(""));
        t = Tensor::floats({}, {static_cast<float>(v)});
      }
      made[c.name] = out.add_constant(out.fresh_name(name_ + "." + c.name), std::move(t));
    }
    try {
      for (const ReplacementNode& r : replacement_) {
        Attrs attrs;
        if (!r.copy_attrs.empty()) attrs = g.node(b.nodes[pattern_index(r.copy_attrs)]).attrs;
        for (const auto& [key, t] : r.attrs) {
          switch (t.kind) {
            case AttrTemplate::Kind::kLiteral: attrs[key] = t.value; break;
            case AttrTemplate::Kind::kVar: attrs[key] = b.attrs.at(t.name); break;
            case AttrTemplate::Kind::kDim: {
              const Value& v = g.value(b.values.at(t.name));
              int64_t axis = norm_axis(t.axis, v.shape.size());
              if (axis < 0 || axis >= static_cast<int64_t>(v.shape.size())) return std::nullopt;
              attrs[key] = v.shape[static_cast<size_t>(axis)];
              break;
            }
          }
        }
        std::vector<ValueId> inputs;
        for (const std::string& in : r.inputs) inputs.push_back(resolve(in));
        if (unchecked_by_inference(out, r.op, attrs, inputs)) return std::nullopt;
        auto outs = out.add_node(r.op, std::move(inputs), std::move(attrs), out.fresh_name(name_),
                                 static_cast<int>(r.outputs.size()));
        for (size_t k = 0; k < r.outputs.size(); ++k) made[r.outputs[k]] = outs[k];
      }
    } catch (const UserError&) {
      return std::nullopt;  // the replacement's shapes do not infer here
    }
    for (const std::string& o : outputs_) {
      ValueId from = b.values.at(o);
      ValueId to = resolve(output_map_.count(o) ? output_map_.at(o) : o);
      if (out.value(from).shape != out.value(to).shape || out.value(from).type != out.value(to).type) {
        return std::nullopt;
      }
      out.replace_uses(from, to);
    }
    for (NodeId n : b.nodes) out.remove_node(n);
    fold_constants(out);
    return out;
  }

  std::vector<Graph> verification_cases() const override {
    std::vector<Graph> graphs;
    for (size_t c = 0; c < cases_.size(); ++c) graphs.push_back(build_case(c));
    return graphs;
  }

 private:
  // Case `c` as a graph: the pattern over the case's inputs, constants filled with seeded
  // values. Its input sizes were bounded at parse, so only those are allocated here; a shape
  // that does not infer is a UserError naming the case and the pattern node.
  Graph build_case(size_t c) const {
    Graph g;
    g.model_name = name_ + " case " + std::to_string(c);
    const std::string where = "verification case " + std::to_string(c);
    std::map<std::string, ValueId> ids;
    std::mt19937_64 rng(stable_hash(name_) + c);
    for (const std::string& in : inputs_) {
      const CaseValue& cv = cases_[c].at(in);
      if (!cv.constant) {
        ids[in] = g.add_input(in, cv.type, cv.shape);
        continue;
      }
      if (!is_float(cv.type)) {
        ids[in] = g.add_constant(in, Tensor::ints(cv.shape, cv.ints, cv.type));
        continue;
      }
      std::vector<float> values(static_cast<size_t>(*bounded_elements(cv.shape)));
      for (float& v : values) {
        double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
        v = static_cast<float>(cv.fill ? *cv.fill : cv.min + (cv.max - cv.min) * u);
      }
      ids[in] = g.add_constant(in, Tensor::floats(cv.shape, std::move(values), cv.type));
    }
    for (const PatternNode& p : pattern_) {
      Attrs attrs;
      for (const auto& [key, a] : p.attrs) {
        if (a.kind == AttrPattern::Kind::kBind) {
          if (auto it = case_attrs_[c].find(a.var); it != case_attrs_[c].end()) {
            attrs[key] = it->second;
          } else if (!a.absent) {
            bad(what_, where + " needs a value for attribute variable '$" + a.var + "' (give it as \"$" +
                           a.var + "\" in the case, or a default in the pattern)");
          }
          continue;
        }
        attrs[key] = a.value;
      }
      std::vector<ValueId> inputs;
      for (const std::string& in : p.inputs) inputs.push_back(in.empty() ? kNone : ids.at(in));
      if (auto why = unchecked_by_inference(g, p.op, attrs, inputs))
        bad(what_, where + ", pattern node '" + p.id + "': " + *why);
      std::vector<ValueId> outs;
      try {
        outs =
            g.add_node(p.op, std::move(inputs), std::move(attrs), p.id, static_cast<int>(p.outputs.size()));
      } catch (const UserError& e) {
        bad(what_, where + ", pattern node '" + p.id + "': " + e.what());
      }
      for (size_t k = 0; k < p.outputs.size(); ++k) ids[p.outputs[k]] = outs[k];
    }
    for (const std::string& o : outputs_) g.add_output(ids.at(o));
    return g;
  }

  size_t pattern_index(const std::string& id) const {
    for (size_t k = 0; k < pattern_.size(); ++k) {
      if (pattern_[k].id == id) return k;
    }
    TESSERA_UNREACHABLE("pattern node id checked at parse");
  }

  // Binds attribute variables from the matched nodes (apply() gets only node ids).
  void bind_attrs(const Graph& g, Binding& b) const {
    for (size_t k = 0; k < pattern_.size(); ++k) {
      const Node& n = g.node(b.nodes[k]);
      for (const auto& [key, a] : pattern_[k].attrs) {
        if (a.kind != AttrPattern::Kind::kBind) continue;
        auto it = n.attrs.find(key);
        b.attrs[a.var] = it != n.attrs.end() ? it->second : *a.absent;
      }
    }
  }

  bool attrs_match(const Node& n, const PatternNode& p, Binding& b) const {
    for (const auto& [key, a] : p.attrs) {
      auto it = n.attrs.find(key);
      std::optional<AttrValue> actual;
      if (it != n.attrs.end()) actual = it->second;
      else if (a.absent) actual = a.absent;
      switch (a.kind) {
        case AttrPattern::Kind::kLiteral:
          if (it == n.attrs.end() || !attr_equal(it->second, a.value)) return false;
          break;
        case AttrPattern::Kind::kEquals:
          if (!actual || !attr_equal(*actual, a.value)) return false;
          break;
        case AttrPattern::Kind::kBind: {
          if (!actual) return false;
          auto [bound, fresh] = b.attrs.emplace(a.var, *actual);
          if (!fresh && !attr_equal(bound->second, *actual)) return false;
          break;
        }
      }
    }
    return true;
  }

  using Continue = std::function<void(const Binding&)>;

  bool bind_value(Binding& b, const std::string& name, ValueId v) const {
    auto [it, fresh] = b.values.emplace(name, v);
    return fresh || it->second == v;
  }

  void match_node(const Graph& g, size_t p, NodeId n, Binding b, const Continue& k) const {
    const PatternNode& pn = pattern_[p];
    const Node& node = g.node(n);
    if (node.removed || node.op != pn.op) return;
    if (b.nodes[p] != kNone) {
      if (b.nodes[p] == n) k(b);
      return;
    }
    if (std::find(b.nodes.begin(), b.nodes.end(), n) != b.nodes.end()) return;
    if (node.inputs.size() != pn.inputs.size() || node.outputs.size() < pn.outputs.size()) return;
    if (!attrs_match(node, pn, b)) return;
    b.nodes[p] = n;
    for (size_t o = 0; o < pn.outputs.size(); ++o) {
      if (!bind_value(b, pn.outputs[o], node.outputs[o])) return;
    }
    std::vector<std::vector<size_t>> orders{{}};
    for (size_t s = 0; s < pn.inputs.size(); ++s) orders[0].push_back(s);
    if (commutative(pn.op) && pn.inputs.size() == 2) orders.push_back({1, 0});
    for (const auto& order : orders) match_inputs(g, p, n, order, 0, b, k);
  }

  void match_inputs(const Graph& g, size_t p, NodeId n, const std::vector<size_t>& order, size_t slot, Binding b,
                    const Continue& k) const {
    const PatternNode& pn = pattern_[p];
    if (slot == pn.inputs.size()) {
      k(b);
      return;
    }
    const std::string& name = pn.inputs[slot];
    ValueId v = g.node(n).inputs[order[slot]];
    if (name.empty() || v == kNone) {
      if (name.empty() && v == kNone) match_inputs(g, p, n, order, slot + 1, b, k);
      return;
    }
    auto producer = producers_.find(name);
    if (producer == producers_.end()) {
      if (bind_value(b, name, v)) match_inputs(g, p, n, order, slot + 1, b, k);
      return;
    }
    const auto [q, out_index] = producer->second;
    NodeId pn_node = g.value(v).producer;
    if (pn_node == kNone) return;
    const Node& qn = g.node(pn_node);
    if (out_index >= qn.outputs.size() || qn.outputs[out_index] != v) return;
    match_node(g, q, pn_node, b, [&](const Binding& inner) { match_inputs(g, p, n, order, slot + 1, inner, k); });
  }

  bool accept(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, const Binding& b) const {
    // Values the pattern computes and does not replace must not be seen outside it.
    for (const auto& [name, where] : producers_) {
      if (std::find(outputs_.begin(), outputs_.end(), name) != outputs_.end()) continue;
      ValueId v = b.values.at(name);
      for (NodeId user : consumers[static_cast<size_t>(v)]) {
        if (std::find(b.nodes.begin(), b.nodes.end(), user) == b.nodes.end()) return false;
      }
      if (std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end()) return false;
    }
    // A pattern input bound to a value the matched nodes compute would be read by the
    // replacement after those nodes are gone.
    for (const std::string& in : inputs_) {
      NodeId producer = g.value(b.values.at(in)).producer;
      if (producer != kNone && std::find(b.nodes.begin(), b.nodes.end(), producer) != b.nodes.end())
        return false;
    }
    // Unnamed extra outputs of matched nodes must be unused too.
    for (size_t p = 0; p < pattern_.size(); ++p) {
      const Node& n = g.node(b.nodes[p]);
      for (size_t o = pattern_[p].outputs.size(); o < n.outputs.size(); ++o) {
        if (!consumers[static_cast<size_t>(n.outputs[o])].empty()) return false;
      }
    }
    for (const Condition& c : conditions_) {
      auto val = [&](size_t k) -> const Value& { return g.value(b.values.at(c.names[k])); };
      switch (c.kind) {
        case Condition::Kind::kConstant:
          for (size_t k = 0; k < c.names.size(); ++k) {
            if (!val(k).constant) return false;
          }
          break;
        case Condition::Kind::kFloat:
          for (size_t k = 0; k < c.names.size(); ++k) {
            if (!is_float(val(k).type)) return false;
          }
          break;
        case Condition::Kind::kScalar:
          for (size_t k = 0; k < c.names.size(); ++k) {
            if (!val(k).constant || val(k).elements() != 1) return false;
          }
          break;
        case Condition::Kind::kRank:
          if (static_cast<int64_t>(val(0).shape.size()) != c.axes[0]) return false;
          break;
        case Condition::Kind::kSameShape:
          if (val(0).shape != val(1).shape) return false;
          break;
        case Condition::Kind::kDimEq: {
          int64_t d[2];
          for (size_t k = 0; k < 2; ++k) {
            const auto& shape = val(k).shape;
            int64_t axis = norm_axis(c.axes[k], shape.size());
            if (axis < 0 || axis >= static_cast<int64_t>(shape.size())) return false;
            d[k] = shape[static_cast<size_t>(axis)];
          }
          if (d[0] != d[1]) return false;
          break;
        }
        case Condition::Kind::kScalarValue: {
          const Value& v = val(0);
          if (!v.constant || v.synthetic || v.constant->elements() == 0) return false;
          for (int64_t e = 0; e < v.constant->elements(); ++e) {
            if (std::abs(v.constant->at(e) - c.value) > c.tolerance * std::max(1.0, std::abs(c.value))) return false;
          }
          break;
        }
      }
    }
    return true;
  }

  // One input of a verification case: a shape list, or an object (format in
  // configs/rules/README.md). Its size is checked before anything of that size exists.
  CaseValue parse_case_value(const Json& spec, const std::string& input, bool constant) const {
    const std::string& what = what_;
    CaseValue cv;
    cv.constant = constant;
    if (spec.is_array()) {
      cv.shape = json_ints(spec, what, input + ": the shape");
    } else if (spec.is_object()) {
      if (spec.contains("shape")) cv.shape = json_ints(spec["shape"], what, input + ": \"shape\"");
      bool typed_f32 = false;
      if (spec.contains("type")) {
        std::string t = spec["type"].get<std::string>();
        if (t == "i64")
          cv.type = ElemType::kI64;
        else if (t == "f32")
          typed_f32 = true;
        else
          bad(what, input + ": \"type\" must be f32 or i64, not '" + t + "'");
      }
      if (spec.contains("ints")) {
        if (typed_f32) bad(what, input + ": \"ints\" gives an i64 constant, not f32");
        cv.ints = json_ints(spec["ints"], what, input + ": \"ints\"");
        cv.type = ElemType::kI64;
        cv.constant = true;
        if (!spec.contains("shape")) cv.shape = {static_cast<int64_t>(cv.ints.size())};
      }
      if (spec.contains("fill")) cv.fill = json_finite(spec["fill"], what, input + ": \"fill\"");
      if (spec.contains("min")) cv.min = json_finite(spec["min"], what, input + ": \"min\"");
      if (spec.contains("max")) cv.max = json_finite(spec["max"], what, input + ": \"max\"");
      if (cv.min > cv.max) bad(what, input + ": \"min\" is above \"max\"");
      cv.constant = cv.constant || spec.value("constant", false);
    } else {
      bad(what, input + " must be a shape list or an object");
    }
    if (cv.shape.size() > kMaxCaseRank) {
      bad(what, input + " has rank " + std::to_string(cv.shape.size()) + "; verification allows at most " +
                    std::to_string(kMaxCaseRank));
    }
    // A zero extent would verify on no values at all.
    for (int64_t d : cv.shape) {
      if (d < 1)
        bad(what, input + " has shape " + dims_text(cv.shape) + "; every dimension must be at least 1");
    }
    if (!bounded_elements(cv.shape, kMaxCaseTensorElements)) {
      bad(what, input + " has shape " + dims_text(cv.shape) + ", more than the " +
                    std::to_string(kMaxCaseTensorElements) + " elements verification allows a tensor");
    }
    return cv;
  }

  void parse(const Json& j, const std::string& file) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) {
      bad(file, "each rule is an object with a \"name\"");
    }
    name_ = j["name"].get<std::string>();
    what_ = "'" + name_ + "' (" + file + ")";
    const std::string& what = what_;
    for (const char* field : {"canonical", "fusion"}) {
      if (j.contains(field) && !j[field].is_boolean()) bad(what, std::string("\"") + field + "\" must be true or false");
    }
    canonical_ = j.value("canonical", false);
    fusion_ = j.value("fusion", false);
    for (const char* field : {"pattern", "replacement", "cases"}) {
      if (!j.contains(field)) bad(what, std::string("missing \"") + field + "\"");
    }
    const std::set<std::string> known = parse_pattern(j);
    const std::set<std::string> attr_vars = parse_replacement(j, known);
    const std::set<std::string> constant_inputs = parse_conditions(j, known);
    parse_cases(j, attr_vars, constant_inputs);
  }

  // The pattern: its inputs, nodes and outputs; the names it defines.
  std::set<std::string> parse_pattern(const Json& j) {
    const std::string& what = what_;
    const Json& pat = j["pattern"];
    inputs_ = strings(pat, what, "inputs");
    outputs_ = strings(pat, what, "outputs");
    if (!pat.contains("nodes") || !pat["nodes"].is_array() || pat["nodes"].empty()) {
      bad(what, "the pattern needs a non-empty \"nodes\" list");
    }
    if (pat["nodes"].size() > kMaxPatternNodes) {
      bad(what, "the pattern has " + std::to_string(pat["nodes"].size()) + " nodes; at most " +
                    std::to_string(kMaxPatternNodes) + " are allowed");
    }
    std::set<std::string> known;
    for (const std::string& in : inputs_) {
      if (in.empty()) bad(what, "a pattern input needs a name");
      if (!known.insert(in).second) bad(what, "pattern input '" + in + "' is listed twice");
    }
    for (const Json& jn : pat["nodes"]) {
      PatternNode p;
      p.op = parse_op(jn.value("op", Json()), what);
      p.id = jn.value("id", "n" + std::to_string(pattern_.size()));
      p.inputs = strings(jn, what, "inputs");
      p.outputs = strings(jn, what, "outputs");
      if (p.outputs.empty()) bad(what, "pattern node '" + p.id + "' has no outputs");
      for (const std::string& o : p.outputs) {
        if (o.empty()) bad(what, "an output of pattern node '" + p.id + "' needs a name");
      }
      for (const std::string& in : p.inputs) {
        if (!in.empty() && !known.count(in)) {
          bad(what, "pattern node '" + p.id + "' reads '" + in + "', which is neither a pattern input nor an "
                    "earlier node's output");
        }
      }
      for (size_t o = 0; o < p.outputs.size(); ++o) {
        if (!known.insert(p.outputs[o]).second) bad(what, "value '" + p.outputs[o] + "' is defined twice");
        producers_[p.outputs[o]] = {pattern_.size(), o};
      }
      if (jn.contains("attrs")) {
        for (const auto& [key, ja] : jn["attrs"].items()) {
          AttrPattern a;
          if (ja.is_object()) {
            if (ja.contains("default")) a.absent = attr_from_json(ja["default"], what);
            if (ja.contains("bind")) {
              a.kind = AttrPattern::Kind::kBind;
              a.var = ja["bind"].get<std::string>();
            } else if (ja.contains("equals")) {
              a.kind = AttrPattern::Kind::kEquals;
              a.value = attr_from_json(ja["equals"], what);
            } else {
              bad(what, "attribute '" + key + "' of pattern node '" + p.id + "': an object needs \"bind\" or \"equals\"");
            }
          } else {
            a.value = attr_from_json(ja, what);
          }
          p.attrs[key] = std::move(a);
        }
      }
      pattern_.push_back(std::move(p));
    }
    for (const std::string& o : outputs_) {
      if (!producers_.count(o)) bad(what, "pattern output '" + o + "' is not computed by a pattern node");
    }
    if (outputs_.empty()) bad(what, "the pattern needs \"outputs\"");
    // find() reports a value for every pattern input, so each must be bound by a match.
    for (const std::string& in : inputs_) {
      bool read = std::any_of(pattern_.begin(), pattern_.end(), [&](const PatternNode& p) {
        return std::find(p.inputs.begin(), p.inputs.end(), in) != p.inputs.end();
      });
      if (!read) bad(what, "pattern input '" + in + "' is read by no pattern node");
    }
    // Every pattern node must feed the last one, which find() matches first.
    std::set<size_t> reached{pattern_.size() - 1};
    for (size_t p = pattern_.size(); p-- > 0;) {
      if (!reached.count(p)) bad(what, "pattern node '" + pattern_[p].id + "' does not feed the last pattern node");
      for (const std::string& in : pattern_[p].inputs) {
        if (auto it = producers_.find(in); it != producers_.end()) reached.insert(it->second.first);
      }
    }
    return known;
  }

  // The replacement: its constants, nodes and output map; the pattern's attribute variables.
  std::set<std::string> parse_replacement(const Json& j, const std::set<std::string>& known) {
    const std::string& what = what_;
    std::set<std::string> attr_vars;
    for (const PatternNode& p : pattern_) {
      for (const auto& [key, a] : p.attrs) {
        if (a.kind == AttrPattern::Kind::kBind) attr_vars.insert(a.var);
      }
    }

    const Json& rep = j["replacement"];
    std::set<std::string> rknown(inputs_.begin(), inputs_.end());
    if (rep.contains("constants")) {
      for (const Json& jc : rep["constants"]) {
        ReplacementConstant c;
        c.name = jc.value("name", "");
        if (c.name.empty()) bad(what, "a replacement constant needs a \"name\"");
        if (jc.contains("ints")) {
          c.is_ints = true;
          c.ints = json_ints(jc["ints"], what, "replacement constant '" + c.name + "': \"ints\"");
        } else if (jc.contains("scalar") && jc["scalar"].is_number()) {
          c.scalar = json_finite(jc["scalar"], what, "replacement constant '" + c.name + "': \"scalar\"");
        } else if (jc.contains("scalar") && jc["scalar"].is_string() && jc["scalar"].get<std::string>().starts_with("$")) {
          c.var = jc["scalar"].get<std::string>().substr(1);
          if (!attr_vars.count(c.var)) bad(what, "constant '" + c.name + "' uses unbound variable '$" + c.var + "'");
        } else {
          bad(what, "replacement constant '" + c.name + "' needs \"ints\" or \"scalar\" (a number or \"$var\")");
        }
        if (!rknown.insert(c.name).second) bad(what, "value '" + c.name + "' is defined twice in the replacement");
        constants_.push_back(std::move(c));
      }
    }
    if (rep.contains("nodes")) {
      if (!rep["nodes"].is_array()) bad(what, "the replacement's \"nodes\" must be a list");
      if (rep["nodes"].size() > kMaxReplacementNodes) {
        bad(what, "the replacement has " + std::to_string(rep["nodes"].size()) + " nodes; at most " +
                      std::to_string(kMaxReplacementNodes) + " are allowed");
      }
      for (const Json& jn : rep["nodes"]) {
        ReplacementNode r;
        r.op = parse_op(jn.value("op", Json()), what);
        r.inputs = strings(jn, what, "inputs");
        r.outputs = strings(jn, what, "outputs");
        r.copy_attrs = jn.value("copy_attrs", "");
        if (!r.copy_attrs.empty()) {
          bool found = std::any_of(pattern_.begin(), pattern_.end(), [&](const PatternNode& p) { return p.id == r.copy_attrs; });
          if (!found) bad(what, "copy_attrs names '" + r.copy_attrs + "', which is no pattern node id");
        }
        for (const std::string& in : r.inputs) {
          if (!in.empty() && !rknown.count(in)) {
            bad(what, "replacement reads '" + in + "', which is neither a pattern input nor defined before");
          }
        }
        for (const std::string& o : r.outputs) {
          if (!rknown.insert(o).second) bad(what, "value '" + o + "' is defined twice in the replacement");
        }
        if (jn.contains("attrs")) {
          for (const auto& [key, ja] : jn["attrs"].items()) {
            AttrTemplate t;
            if (ja.is_string() && ja.get<std::string>().starts_with("$")) {
              t.kind = AttrTemplate::Kind::kVar;
              t.name = ja.get<std::string>().substr(1);
              if (!attr_vars.count(t.name)) bad(what, "attribute '" + key + "' uses unbound variable '$" + t.name + "'");
            } else if (ja.is_object() && ja.contains("dim")) {
              t.kind = AttrTemplate::Kind::kDim;
              t.name = ja["dim"].at(0).get<std::string>();
              t.axis = json_int(ja["dim"].at(1), what, "attribute '" + key + "': the axis of \"dim\"");
              if (!known.count(t.name)) bad(what, "attribute '" + key + "' reads the shape of unknown '" + t.name + "'");
            } else {
              t.value = attr_from_json(ja, what);
            }
            r.attrs[key] = std::move(t);
          }
        }
        replacement_.push_back(std::move(r));
      }
    }
    if (rep.contains("outputs")) {
      for (const auto& [key, jv] : rep["outputs"].items()) {
        if (std::find(outputs_.begin(), outputs_.end(), key) == outputs_.end()) {
          bad(what, "the replacement's \"outputs\" maps '" + key + "', which is no pattern output");
        }
        output_map_[key] = jv.get<std::string>();
      }
    }
    for (const std::string& o : outputs_) {
      std::string target = output_map_.count(o) ? output_map_.at(o) : o;
      if (!rknown.count(target)) bad(what, "the replacement does not define pattern output '" + o + "'");
    }
    return attr_vars;
  }

  // The conditions; the values they require to be constant.
  std::set<std::string> parse_conditions(const Json& j, const std::set<std::string>& known) {
    const std::string& what = what_;
    if (j.contains("conditions")) {
      for (const Json& jc : j["conditions"]) {
        if (!jc.is_object() || jc.size() != 1) bad(what, "each condition is an object with one key");
        const std::string key = jc.begin().key();
        const Json arg = jc.begin().value();  // a copy: GCC 13 warns of a dangling reference
        Condition c{};
        auto name_of = [&](const Json& x) {
          std::string n = x.get<std::string>();
          if (!known.count(n)) bad(what, "condition '" + key + "' names unknown value '" + n + "'");
          return n;
        };
        if (key == "constant" || key == "float" || key == "scalar") {
          c.kind = key == "constant" ? Condition::Kind::kConstant
                   : key == "float"  ? Condition::Kind::kFloat
                                     : Condition::Kind::kScalar;
          if (arg.is_string()) c.names.push_back(name_of(arg));
          else for (const Json& x : arg) c.names.push_back(name_of(x));
        } else if (key == "rank") {
          c.kind = Condition::Kind::kRank;
          c.names = {name_of(arg.at(0))};
          c.axes = {json_int(arg.at(1), what, "condition 'rank': the rank")};
          if (c.axes[0] < 0)
            bad(what,
                "condition 'rank' asks for rank " + std::to_string(c.axes[0]) + "; a rank is 0 or more");
        } else if (key == "same_shape") {
          c.kind = Condition::Kind::kSameShape;
          c.names = {name_of(arg.at(0)), name_of(arg.at(1))};
        } else if (key == "dim_eq") {
          c.kind = Condition::Kind::kDimEq;
          for (int k = 0; k < 2; ++k) {
            c.names.push_back(name_of(arg.at(k).at(0)));
            c.axes.push_back(json_int(arg.at(k).at(1), what, "condition 'dim_eq': an axis"));
          }
        } else if (key == "scalar_value") {
          c.kind = Condition::Kind::kScalarValue;
          c.names = {name_of(arg.at(0))};
          c.value = json_finite(arg.at(1), what, "condition 'scalar_value': the value");
          c.tolerance =
              arg.size() > 2 ? json_finite(arg.at(2), what, "condition 'scalar_value': the tolerance") : 1e-6;
          if (c.tolerance < 0) bad(what, "condition 'scalar_value': the tolerance must be 0 or more");
        } else {
          bad(what, "unknown condition '" + key + "' (valid: constant, float, scalar, rank, same_shape, dim_eq, scalar_value)");
        }
        conditions_.push_back(std::move(c));
      }
    }
    std::set<std::string> constant_inputs;
    for (const Condition& c : conditions_) {
      if (c.kind == Condition::Kind::kConstant || c.kind == Condition::Kind::kScalarValue ||
          c.kind == Condition::Kind::kScalar) {
        constant_inputs.insert(c.names.begin(), c.names.end());
      }
    }
    return constant_inputs;
  }

  // The verification cases, each built (and bounded) here.
  void parse_cases(const Json& j, const std::set<std::string>& attr_vars,
                   const std::set<std::string>& constant_inputs) {
    const std::string& what = what_;
    if (!j["cases"].is_array() || j["cases"].empty()) bad(what, "\"cases\" must be a non-empty list");
    if (j["cases"].size() > kMaxCases) {
      bad(what, "it has " + std::to_string(j["cases"].size()) + " verification cases; at most " +
                    std::to_string(kMaxCases) + " are allowed");
    }
    for (const Json& jcase : j["cases"]) {
      const std::string where = "verification case " + std::to_string(cases_.size());
      if (!jcase.is_object()) bad(what, where + " must be an object of input shapes");
      std::map<std::string, AttrValue> attrs;
      for (const auto& [key, jv] : jcase.items()) {
        if (key.starts_with("$")) {
          if (!attr_vars.count(key.substr(1)))
            bad(what, where + " sets '" + key + "', which no pattern attribute binds");
          attrs[key.substr(1)] = attr_from_json(jv, what);
        } else if (std::find(inputs_.begin(), inputs_.end(), key) == inputs_.end()) {
          bad(what, where + " gives '" + key + "', which is no pattern input");
        }
      }
      case_attrs_.push_back(std::move(attrs));
      std::map<std::string, CaseValue> values;
      int64_t case_elements = 0;
      for (const std::string& in : inputs_) {
        if (!jcase.contains(in)) bad(what, where + " gives no shape for input '" + in + "'");
        const std::string input = where + ", input '" + in + "'";
        values[in] = parse_case_value(jcase[in], input, constant_inputs.count(in) > 0);
        CaseValue& cv = values[in];
        for (const Condition& c : conditions_) {
          if (c.kind == Condition::Kind::kScalarValue && c.names[0] == in && !cv.fill) cv.fill = c.value;
        }
        const int64_t n = *bounded_elements(cv.shape);
        if (cv.constant && !is_float(cv.type) && cv.ints.empty()) {
          if (!cv.fill || *cv.fill != std::trunc(*cv.fill) || std::abs(*cv.fill) >= 0x1p63) {
            bad(what, input + ": an integer constant needs its values as \"ints\"");
          }
          cv.ints.assign(static_cast<size_t>(n), static_cast<int64_t>(*cv.fill));
        }
        if (!cv.ints.empty() && static_cast<int64_t>(cv.ints.size()) != n) {
          bad(what, input + ": \"ints\" has " + std::to_string(cv.ints.size()) + " values for shape " +
                        dims_text(cv.shape) + " (" + std::to_string(n) +
                        " elements); give one value per element");
        }
        case_elements += n;
        if (case_elements > kMaxCaseElements) {
          bad(what, where + ": its inputs hold more than " + std::to_string(kMaxCaseElements) +
                        " elements together, the most verification allows");
        }
      }
      cases_.push_back(std::move(values));
    }
    // Building each case runs shape inference over the pattern with the case's shapes and
    // attributes: an axis, permutation or split that does not fit, or an intermediate too
    // large to evaluate, is the file's error, reported now rather than found in verification.
    for (size_t c = 0; c < cases_.size(); ++c) {
      Graph g = build_case(c);
      if (auto why = oversized(g)) bad(what, "verification case " + std::to_string(c) + ": " + *why);
    }
    for (const auto& [name, where] : producers_) value_order_.push_back(name);
    value_order_.insert(value_order_.end(), inputs_.begin(), inputs_.end());
  }


  std::string name_;
  bool canonical_ = false, fusion_ = false;
  std::string what_;  // "'name' (file)", for messages
  std::vector<std::string> inputs_, outputs_;
  std::vector<PatternNode> pattern_;
  std::map<std::string, std::pair<size_t, size_t>> producers_;  // value -> (pattern node, output)
  std::vector<ReplacementConstant> constants_;
  std::vector<ReplacementNode> replacement_;
  std::map<std::string, std::string> output_map_;
  std::vector<Condition> conditions_;
  std::vector<std::map<std::string, CaseValue>> cases_;
  std::vector<std::map<std::string, AttrValue>> case_attrs_;  // per case: attribute variables
  std::vector<std::string> value_order_;  // Match::values order
};


}  // namespace

std::unique_ptr<Rule> parse_rule(const Json& j, const std::string& what) {
  try {
    return std::make_unique<DataRule>(j, what);
  } catch (const Json::exception& e) {
    throw UserError("rule in " + what + ": a field has the wrong type or is missing (" + e.what() + ")");
  }
}

}  // namespace tessera::graph
