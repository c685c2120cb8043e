#include "graph/oracle.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "search/tile.h"

namespace tessera::graph {
namespace {

int64_t product(const std::vector<int64_t>& v, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t k = begin; k < end && k < v.size(); ++k) p *= v[k];
  return p;
}

bool free_op(OpType op) {
  switch (op) {
    case OpType::kReshape:
    case OpType::kFlatten:
    case OpType::kSqueeze:
    case OpType::kUnsqueeze:
    case OpType::kIdentity:
    case OpType::kConstant:
    case OpType::kShape: return true;
    default: return false;
  }
}

std::string epilogue_option(const std::string& steps) {
  return steps.empty() ? "" : ":epilogue=" + steps;
}

// The shortest decimal that reads back as the same float, as a double: a float attribute as
// its writer spelled it.
double float_decimal(double v) {
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof(text), static_cast<float>(v));
  if (ec != std::errc()) return v;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

std::optional<std::string> matmul_spec(const Graph& g, const Node& n, bool ta, bool tb, const std::string& steps,
                                       std::string_view dtype, double alpha = 1.0) {
  const auto& a = g.value(n.inputs[0]).shape;
  const auto& b = g.value(n.inputs[1]).shape;
  if (a.size() < 2 || b.size() < 2) return std::nullopt;
  int64_t m = ta ? a[a.size() - 1] : a[a.size() - 2];
  int64_t k = ta ? a[a.size() - 2] : a[a.size() - 1];
  int64_t nn = tb ? b[b.size() - 2] : b[b.size() - 1];
  int64_t batch_a = product(a, 0, a.size() - 2), batch_b = product(b, 0, b.size() - 2);
  std::ostringstream s;
  std::string flags = std::string(ta ? ",ta=1" : "") + (tb ? ",tb=1" : "") + (alpha != 1.0 ? ",alpha=" + number_text(alpha) : "");
  if (batch_b == 1 && !ta) {
    // Weights shared by every row: one matmul over the flattened batch.
    s << "matmul:m=" << batch_a * m << ",n=" << nn << ",k=" << k << flags;
  } else {
    s << "batch_matmul:b=" << std::max(batch_a, batch_b) << ",m=" << m << ",n=" << nn << ",k=" << k << flags;
  }
  s << ":" << dtype << epilogue_option(steps);
  return s.str();
}

std::optional<std::string> conv_spec(const Graph& g, const Node& n, const std::string& steps, std::string_view dtype) {
  const auto& x = g.value(n.inputs[0]).shape;
  const auto& w = g.value(n.inputs[1]).shape;
  const auto& y = g.value(n.outputs[0]).shape;
  if (x.size() != 4 || w.size() != 4) return std::nullopt;
  std::vector<int64_t> one{1, 1};
  auto strides = n.attr_ints("strides", one), dil = n.attr_ints("dilations", one);
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  if (n.attr_string("auto_pad", "NOTSET") != "NOTSET") {
    // The padding that gives the output size ONNX inferred (the smaller half first).
    for (int d = 0; d < 2; ++d) {
      int64_t total = (y[2 + d] - 1) * strides[d] + (w[2 + d] - 1) * dil[d] + 1 - x[2 + d];
      pads[d] = std::max<int64_t>(total, 0) / 2;
    }
  }
  std::ostringstream s;
  s << "conv2d:n=" << x[0] << ",h=" << x[2] << ",w=" << x[3] << ",c=" << x[1] << ",k=" << w[0] << ",r=" << w[2]
    << ",s=" << w[3] << ",stride=" << strides[0] << "x" << strides[1] << ",pad=" << pads[0] << "x" << pads[1]
    << ",dilation=" << dil[0] << "x" << dil[1] << ",groups=" << n.attr_int("group", 1) << ":" << dtype
    << epilogue_option(steps);
  return s.str();
}

}  // namespace

std::string_view cost_source_name(CostSource s) {
  switch (s) {
    case CostSource::kFree: return "free";
    case CostSource::kMeasured: return "measured";
    case CostSource::kModel: return "model";
    case CostSource::kMemory: return "memory";
  }
  TESSERA_UNREACHABLE("CostSource");
}

std::optional<Workload> node_workload(const Graph& g, const Node& n, DType dtype) {
  if (n.outputs.empty() || !is_float(g.value(n.outputs[0]).type)) return std::nullopt;
  std::string_view dt = dtype_name(dtype);
  const auto& y = g.value(n.outputs[0]).shape;
  std::optional<std::string> spec;
  switch (n.op) {
    case OpType::kMatMul: spec = matmul_spec(g, n, false, false, "", dt); break;
    case OpType::kFusedMatMul:
      // alpha as the shortest decimal of the float the kernels multiply by (ViT's product of two
      // float scales is 0.12499999, not 0.1249999925494194).
      spec = matmul_spec(g, n, n.attr_int("trans_a", 0) != 0, n.attr_int("trans_b", 0) != 0,
                         n.attr_string("epilogue", ""), dt, float_decimal(n.attr_float("alpha", 1.0)));
      break;
    case OpType::kGemm: {
      bool bias = n.inputs.size() > 2 && n.inputs[2] != kNone && g.value(n.inputs[2]).shape.size() == 1;
      spec = matmul_spec(g, n, n.attr_int("transA", 0) != 0, n.attr_int("transB", 0) != 0, bias ? "bias" : "", dt);
      break;
    }
    case OpType::kConv: {
      bool bias = n.inputs.size() > 2 && n.inputs[2] != kNone;
      spec = conv_spec(g, n, bias ? "bias" : "", dt);
      break;
    }
    case OpType::kFusedConv: spec = conv_spec(g, n, n.attr_string("epilogue", ""), dt); break;
    case OpType::kSoftmax:
    case OpType::kLayerNormalization: {
      int64_t axis = n.attr_int("axis", -1);
      if (axis != -1 && axis != static_cast<int64_t>(y.size()) - 1) break;
      std::ostringstream s;
      s << (n.op == OpType::kSoftmax ? "softmax" : "layernorm") << ":rows=" << product(y, 0, y.size() - 1)
        << ",cols=" << y.back();
      if (n.op == OpType::kLayerNormalization) {
        // The model's epsilon, as the kernel must compute it (BERT's 1e-12, ViT's 1e-6); one
        // outside the kernels' range leaves the operator to the memory-bound estimate.
        // ONNX stores it as a float: the decimal it was written as (1e-12, not the float's
        // 9.999999960041972e-13), so a model's layernorm has the key a workload file gives it
        // and an explicit 1e-5 is the default's.
        const double eps = float_decimal(n.attr_float("epsilon", kDefaultLayernormEpsilon));
        if (!(eps > 0 && eps < 1)) break;
        if (eps != kDefaultLayernormEpsilon) s << ",eps=" << number_text(eps);
      }
      s << ":" << dt;
      spec = s.str();
      break;
    }
    case OpType::kReduceMean: {
      const auto& x = g.value(n.inputs[0]).shape;
      auto axes = n.attr_ints("axes", {});
      if (axes.size() != 1 || (axes[0] != -1 && axes[0] != static_cast<int64_t>(x.size()) - 1)) break;
      std::ostringstream s;
      s << "reduce:op=mean,rows=" << product(x, 0, x.size() - 1) << ",cols=" << x.back() << ":" << dt;
      spec = s.str();
      break;
    }
    case OpType::kEltwiseChain: {
      std::ostringstream s;
      s << "elementwise:ops=" << n.attr_string("ops", "") << ",n=" << product(y, 0, y.size()) << ":" << dt;
      spec = s.str();
      break;
    }
    default:
      if (auto name = chain_step_name(n.op)) {
        std::ostringstream s;
        s << "elementwise:ops=" << *name << ",n=" << product(y, 0, y.size()) << ":" << dt;
        spec = s.str();
      }
      break;
  }
  if (!spec) return std::nullopt;
  try {
    return Workload::parse(*spec);
  } catch (const UserError&) {
    return std::nullopt;  // a shape Tessera's workloads do not express (e.g. an empty axis)
  }
}

std::vector<search::WorkloadEntry> graph_workloads(const Graph& g, DType dtype) {
  std::vector<search::WorkloadEntry> entries;
  std::map<std::string, size_t> index;
  for (NodeId id : g.topological_order()) {
    const Node& n = g.node(id);
    if (g.inputs_constant(n)) continue;
    auto w = node_workload(g, n, dtype);
    if (!w) continue;
    auto [it, fresh] = index.emplace(w->key(), entries.size());
    if (fresh) {
      entries.push_back({*w, 0, std::string(op_type_name(n.op))});
    }
    search::WorkloadEntry& e = entries[it->second];
    e.weight += 1;
    std::string op(op_type_name(n.op));
    if (e.label.find(op) == std::string::npos) e.label += "," + op;
  }
  return entries;
}

CostOracle::CostOracle(const kernels::FamilyRegistry& families, HardwareSpec hw, Target target, db::TuningDatabase* db,
                       DType dtype)
    : families_(families), hw_(hw), target_(std::move(target)), db_(db), dtype_(dtype), model_(families, std::move(hw)) {}

db::BestResult best_records(db::TuningDatabase& db, const Workload& w, const Target& target, int k) {
  db::BestResult best = db.best(w, target, k, /*same_arch_fallback=*/true);
  if (best.records.empty() && w.kind == OpKind::kLayernorm && w.rows().epsilon != kDefaultLayernormEpsilon) {
    // Epsilon is one constant in the kernel, not its time: a layernorm of the same shape
    // measured with the default's (every record from before workloads kept it) costs the same.
    Workload same = w;
    std::get<RowShape>(same.shape).epsilon = kDefaultLayernormEpsilon;
    best = db.best(same, target, k, /*same_arch_fallback=*/true);
  }
  return best;
}

std::optional<double> CostOracle::measured(const Workload& w) const {
  if (db_ == nullptr) return std::nullopt;
  db::BestResult best = best_records(*db_, w, target_, 1);
  if (best.records.empty()) return std::nullopt;
  return best.records[0].record.measurement.median_us;
}

std::optional<double> CostOracle::estimated(const Workload& w) {
  try {
    search::ConstructOptions options;
    options.top_k = 1;
    search::Construction c = search::construct(w, families_, hw_, model_, options);
    if (!c.candidates.empty() && c.candidates[0].predicted_us) return *c.candidates[0].predicted_us;
  } catch (const UserError&) {
    // No family runs it: the caller falls back to the memory estimate.
  }
  return std::nullopt;
}

void CostOracle::calibrate(const Graph& g) {
  calibration_.clear();
  by_workload_.clear();
  measured_ = estimated_ = 0;
  calibrated_ = true;
  if (db_ == nullptr) return;
  std::map<OpKind, std::pair<double, int>> log_ratios;  // sum of log(measured / estimated), count
  for (const search::WorkloadEntry& e : graph_workloads(g, dtype_)) {
    auto m = measured(e.workload);
    if (!m || *m <= 0) continue;
    auto est = estimated(e.workload);
    if (!est || *est <= 0) continue;
    auto& [sum, count] = log_ratios[e.workload.kind];
    sum += std::log(*m / *est);
    count += 1;
  }
  for (const auto& [kind, acc] : log_ratios)
    if (acc.second >= kMinCalibration) calibration_[kind] = std::exp(acc.first / acc.second);
}

std::optional<double> CostOracle::relative_scale(const Workload& w) {
  // A matmul's scale on its product costs one multiply per output: its unscaled form stands in.
  const bool scaled = product_scale(w) != 1.0;
  if (db_ == nullptr || (w.epilogue.empty() && !scaled)) return std::nullopt;
  // The same operator with fewer epilogue steps (every step too, when scaled), most steps
  // first: a fused operator whose unfused form was measured costs about what the measurement
  // says, scaled by the model.
  const size_t n = w.epilogue.size();
  const uint32_t forms = (1u << n) - (scaled ? 0 : 1);
  std::vector<uint32_t> subsets;
  for (uint32_t mask = 0; mask < forms; ++mask) subsets.push_back(mask);
  std::stable_sort(subsets.begin(), subsets.end(),
                   [](uint32_t a, uint32_t b) { return std::popcount(a) > std::popcount(b); });
  for (uint32_t mask : subsets) {
    Workload relative = unscaled(w);
    relative.epilogue.clear();
    for (size_t i = 0; i < n; ++i)
      if (mask & (1u << i)) relative.epilogue.push_back(w.epilogue[i]);
    try {
      relative = Workload::parse(relative.key());  // a combination the workload rules allow
    } catch (const UserError&) {
      continue;
    }
    auto m = measured(relative);
    if (!m || *m <= 0) continue;
    auto est = estimated(relative);
    if (est && *est > 0) return *m / *est;
  }
  return std::nullopt;
}

double CostOracle::calibration(OpKind kind) const {
  auto it = calibration_.find(kind);
  return it == calibration_.end() ? 1.0 : it->second;
}

double CostOracle::workload_cost(const Workload& w, CostSource& source) {
  std::string key = w.key();
  if (auto it = by_workload_.find(key); it != by_workload_.end()) {
    source = it->second.second;
    return it->second.first;
  }
  source = CostSource::kMeasured;
  std::optional<double> time_us = measured(w);
  if (!time_us) {
    source = CostSource::kModel;
    time_us = estimated(w);
    if (time_us) *time_us *= relative_scale(w).value_or(calibration(w.kind));
  }
  if (!time_us) {
    by_workload_[key] = {-1, CostSource::kMemory};  // no family runs it: remembered too
    return -1;
  }
  (source == CostSource::kMeasured ? measured_ : estimated_) += 1;
  by_workload_[key] = {*time_us, source};
  return *time_us;
}

// Whether every axis of n's first input before n's "axis" has extent 1, so that a slab along
// that axis is a contiguous block of the input.
bool leading_axes_unit(const Graph& g, const Node& n) {
  const auto& shape = g.value(n.inputs[0]).shape;
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  return axis >= 0 && product(shape, 0, static_cast<size_t>(axis)) == 1;
}

// Whether n's first input is a convolution's output, which the graph run holds NHWC.
bool nhwc_input(const Graph& g, const Node& n) {
  const Value& x = g.value(n.inputs[0]);
  return x.shape.size() == 4 && x.producer != kNone &&
         (g.node(x.producer).op == OpType::kConv || g.node(x.producer).op == OpType::kFusedConv);
}

// A Split whose parts are contiguous blocks of its input hands out views: no copy. A
// convolution's output is held NHWC (the layout its kernels write), so its parts are
// contiguous only when every axis before the split one in that order (N, H, W, C) has extent
// 1: the channels of a batch-1 image are strided there, and splitting them (the parts of
// merged convolutions) is a copy.
bool contiguous_split(const Graph& g, const Node& n) {
  if (n.op != OpType::kSplit) return false;
  const Value& x = g.value(n.inputs[0]);
  if (!nhwc_input(g, n)) return leading_axes_unit(g, n);
  int64_t axis = n.attr_int("axis", 0);
  if (axis < 0) axis += 4;
  const std::vector<int64_t>& s = x.shape;  // N, C, H, W
  switch (axis) {
    case 0: return true;
    case 2: return s[0] == 1;                       // H: after N
    case 3: return s[0] * s[2] == 1;                // W: after N, H
    case 1: return s[0] * s[2] * s[3] == 1;         // C: after N, H, W
    default: return false;
  }
}

// So does a Gather of one constant index along such an axis (the query, key or value of a
// packed projection, a batch-1 row).
bool contiguous_gather(const Graph& g, const Node& n) {
  if (n.op != OpType::kGather || n.inputs.size() != 2) return false;
  const Value& index = g.value(n.inputs[1]);
  return index.constant && index.shape.empty() && leading_axes_unit(g, n);
}

OpCost CostOracle::cost(const Graph& g, const Node& n) {
  OpCost c;
  if (free_op(n.op) || contiguous_split(g, n) || contiguous_gather(g, n)) return c;
  if (g.inputs_constant(n) && n.op != OpType::kOpaque) return c;  // folded before inference
  if (auto w = node_workload(g, n, dtype_)) {
    double t = workload_cost(*w, c.source);
    if (t >= 0) {
      c.time_us = t;
      c.workload = std::move(w);
      return c;
    }
  }
  auto bytes = [&](ValueId v) {
    const Value& val = g.value(v);
    return val.elements() * (is_float(val.type) ? dtype_bytes(dtype_) : elem_bytes(val.type));
  };
  double total = 0;
  for (ValueId v : n.outputs) total += static_cast<double>(bytes(v));
  if (n.op == OpType::kGather || n.op == OpType::kSlice) {
    total *= 2;  // reads only what it writes (plus indices)
    if (n.op == OpType::kGather) total += static_cast<double>(bytes(n.inputs[1]));
  } else {
    for (ValueId v : n.inputs) {
      if (v != kNone) total += static_cast<double>(bytes(v));
    }
  }
  c.source = CostSource::kMemory;
  // A convolution's output split along channels (NHWC: the parts are strided) is a copy per
  // part, each its own launch: the graph run copies every part the next convolution reads
  // whole, where unmerged convolutions would each have written their own dense output. (A
  // matmul's output split into Q, K and V is copied for the heads either way.)
  const bool conv_parts = n.op == OpType::kSplit && nhwc_input(g, n);
  const double launches = conv_parts ? static_cast<double>(n.outputs.size()) : 1.0;
  c.time_us = costmodel::kLaunchUs * launches + total / (hw_.dram_bandwidth_gbps * 1e3);
  return c;
}

double CostOracle::graph_cost(Graph& g) {
  double total = 0;
  for (size_t k = 0; k < g.nodes().size(); ++k) {
    Node& n = g.node(static_cast<NodeId>(k));
    if (n.removed) continue;
    if (n.cost_us < 0) n.cost_us = cost(g, n).time_us;
    total += n.cost_us;
  }
  return total;
}

}  // namespace tessera::graph
