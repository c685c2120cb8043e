// Whole graphs on the host: run_graph (every live node in topological order through
// evaluate_node, intermediates released after their last use), random inputs for a graph, and
// the scaled error two runs are compared by.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/error.h"
#include "graph/op_semantics.h"
#include "graph/ops.h"

namespace tessera::graph {

using op_detail::allocate;
using op_detail::product;
using op_detail::shape_text;
using op_detail::to_storage;

std::vector<Tensor> run_graph(const Graph& g, std::span<const Tensor> inputs, const OpaqueStandIn& stand_in) {
  const std::vector<ValueId>& graph_inputs = g.inputs();
  if (inputs.size() != graph_inputs.size())
    throw UserError("run_graph: " + g.model_name + " has " + std::to_string(graph_inputs.size()) +
                    " inputs, got " + std::to_string(inputs.size()));
  size_t n_values = g.values().size();
  std::vector<const Tensor*> ready(n_values, nullptr);
  std::vector<Tensor> owned(n_values);
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Value& v = g.value(graph_inputs[k]);
    const Tensor& t = inputs[k];
    size_t held = is_float(t.type) ? t.f.size() : t.i.size();
    if (t.type != v.type || t.shape != v.shape || static_cast<int64_t>(held) != product(t.shape))
      throw UserError("run_graph: input '" + v.name + "' must be " + std::string(elem_type_name(v.type)) +
                      " " + shape_text(v.shape) + ", got " + std::string(elem_type_name(t.type)) + " " +
                      shape_text(t.shape) + " holding " + std::to_string(held) + " values");
    ready[static_cast<size_t>(graph_inputs[k])] = &t;
  }
  for (size_t v = 0; v < n_values; ++v)
    if (g.values()[v].constant) ready[v] = g.values()[v].constant.get();

  // A value is freed once its last reader has run, unless it is a graph output.
  std::vector<std::vector<NodeId>> readers = g.consumers();
  std::vector<size_t> uses(n_values);
  for (size_t v = 0; v < n_values; ++v) uses[v] = readers[v].size();
  std::vector<bool> keep(n_values, false);
  for (ValueId v : g.outputs()) keep[static_cast<size_t>(v)] = true;
  auto release = [&](ValueId v) {
    size_t k = static_cast<size_t>(v);
    if (keep[k] || uses[k] > 0) return;
    owned[k] = Tensor();
    if (g.value(v).producer != kNone) ready[k] = nullptr;
  };

  for (NodeId id : g.topological_order()) {
    const Node& node = g.node(id);
    std::string label = "node '" + (node.name.empty() ? "#" + std::to_string(id) : node.name) + "' (" +
                        std::string(op_type_name(node.op)) + ")";
    std::vector<const Tensor*> args;
    for (ValueId v : node.inputs) {
      if (v == kNone) {
        args.push_back(nullptr);
        continue;
      }
      const Tensor* t = ready[static_cast<size_t>(v)];
      if (!t)
        throw UserError("run_graph: " + label + " reads '" + g.value(v).name + "', which nothing computes");
      args.push_back(t);
    }
    std::vector<Tensor> results;
    try {
      if (node.op == OpType::kOpaque && stand_in) {
        results = stand_in(node, args);
      } else {
        results = evaluate_node(node.op, node.attrs, args, static_cast<int>(node.outputs.size()));
      }
    } catch (const UserError& e) {
      throw UserError("run_graph: " + label + ": " + e.what());
    }
    TESSERA_CHECK(results.size() == node.outputs.size(),
                  "evaluate_node returned the wrong number of outputs");
    for (size_t k = 0; k < results.size(); ++k) {
      ValueId v = node.outputs[k];
      if (v == kNone) continue;
      TESSERA_CHECK(results[k].type == g.value(v).type && results[k].shape == g.value(v).shape,
                    label + " computed " + shape_text(results[k].shape) + " for '" + g.value(v).name +
                        "', recorded as " + shape_text(g.value(v).shape));
      owned[static_cast<size_t>(v)] = std::move(results[k]);
      ready[static_cast<size_t>(v)] = &owned[static_cast<size_t>(v)];
    }
    std::vector<ValueId> read = node.inputs;
    std::sort(read.begin(), read.end());
    read.erase(std::unique(read.begin(), read.end()), read.end());
    for (ValueId v : read) {
      if (v == kNone) continue;
      --uses[static_cast<size_t>(v)];
      release(v);
    }
    for (ValueId v : node.outputs)
      if (v != kNone) release(v);
  }

  std::vector<Tensor> out;
  for (ValueId v : g.outputs()) {
    const Tensor* t = ready[static_cast<size_t>(v)];
    if (!t) throw UserError("run_graph: output '" + g.value(v).name + "' is not computed by any live node");
    out.push_back(*t);
  }
  return out;
}

std::vector<Tensor> random_graph_inputs(const Graph& g, uint64_t seed) {
  // mt19937_64 is specified bit for bit by the standard; the distributions are not, so the
  // values are derived from its raw output.
  std::mt19937_64 engine(seed);
  std::vector<Tensor> out;
  for (ValueId id : g.inputs()) {
    const Value& v = g.value(id);
    Tensor t = allocate(v.type, v.shape);
    for (float& x : t.f) x = static_cast<float>(2.0 * static_cast<double>(engine() >> 11) * 0x1p-53 - 1.0);
    for (int64_t& x : t.i) x = static_cast<int64_t>(engine() & 1);
    to_storage(t);
    out.push_back(std::move(t));
  }
  return out;
}

double max_scaled_error(std::span<const Tensor> a, std::span<const Tensor> b, double rtol, double atol) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (a.size() != b.size()) return kInf;
  double worst = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    const Tensor &x = a[t], &y = b[t];
    int64_t n = product(y.shape);
    if (x.shape != y.shape || x.elements() != n || y.elements() != n) return kInf;
    double peak = 0;
    for (int64_t k = 0; k < n; ++k)
      if (std::isfinite(y.at(k))) peak = std::max(peak, std::fabs(y.at(k)));
    double scale = atol + rtol * peak;
    for (int64_t k = 0; k < n; ++k) {
      double p = x.at(k), q = y.at(k);
      if (p == q || (std::isnan(p) && std::isnan(q))) continue;
      if (std::isnan(p) || std::isnan(q) || std::isinf(p) || std::isinf(q)) return kInf;
      worst = std::max(worst, std::fabs(p - q) / scale);
    }
  }
  return worst;
}

}  // namespace tessera::graph
