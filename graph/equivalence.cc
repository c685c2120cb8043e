#include "graph/equivalence.h"

#include <map>
#include <random>
#include <sstream>

#include "core/error.h"
#include "graph/onnx_io.h"
#include "graph/op_semantics.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

// An Opaque node as the original graph's run met it: its inputs and the outputs made up for it.
struct Met {
  std::vector<Tensor> inputs, outputs;
};

// Nodes are matched across the two graphs by name (export and import keep it), or by their
// first output's name when unnamed.
std::string key_of(const Graph& g, const Node& n) {
  if (!n.name.empty()) return n.name;
  return n.outputs.empty() || n.outputs[0] == kNone ? std::string() : "value " + g.value(n.outputs[0]).name;
}

// Seeded values of the node's output types: floats uniform in [-1, 1]; integers and booleans 0,
// which every index, count and mask reading them accepts.
std::vector<Tensor> made_up_outputs(const Graph& g, const Node& n, uint64_t seed, const std::string& key) {
  std::seed_seq seq(key.begin(), key.end());
  std::vector<uint64_t> start(1);
  seq.generate(start.begin(), start.end());
  std::mt19937_64 engine(start[0] ^ (seed * 0x9E3779B97F4A7C15ull));
  std::vector<Tensor> out;
  for (ValueId v : n.outputs) {
    if (v == kNone) {
      out.emplace_back();
      continue;
    }
    Tensor t = op_detail::allocate(g.value(v).type, g.value(v).shape);
    for (float& x : t.f) x = static_cast<float>(2.0 * static_cast<double>(engine() >> 11) * 0x1p-53 - 1.0);
    op_detail::to_storage(t);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<Tensor> copies(std::span<const Tensor* const> args) {
  std::vector<Tensor> out;
  for (const Tensor* t : args) out.push_back(t ? *t : Tensor());
  return out;
}

}  // namespace

std::optional<std::string> check_equivalent(const Graph& original, const Graph& optimised, int seeds,
                                            int* opaque_nodes) {
  ExportOptions options;
  options.write_synthetic = true;
  Graph reread = import_onnx_bytes(export_onnx(optimised, options), "the optimised model");
  int around = 0;
  for (const Node& n : original.nodes()) around += !n.removed && n.op == OpType::kOpaque;
  if (opaque_nodes) *opaque_nodes = around;
  for (int s = 0; s < seeds; ++s) {
    const uint64_t seed = static_cast<uint64_t>(s + 1);
    auto inputs = random_graph_inputs(original, seed);
    std::map<std::string, Met> met;
    // The original's Opaque nodes get made-up outputs; the optimised graph's take the same ones
    // once their inputs are shown to be the same, so the rest of each graph is compared as if
    // the operator had run (it is a function of its inputs).
    OpaqueStandIn first = [&](const Node& n, std::span<const Tensor* const> args) {
      std::string key = key_of(original, n);
      Met& m = met[key];
      m.inputs = copies(args);
      m.outputs = made_up_outputs(original, n, seed, key);
      return m.outputs;
    };
    OpaqueStandIn second = [&](const Node& n, std::span<const Tensor* const> args) {
      std::string key = key_of(reread, n);
      auto it = met.find(key);
      if (it == met.end())
        throw UserError("it has no counterpart in the original graph, so what it computes cannot be compared");
      double err = max_scaled_error(copies(args), it->second.inputs, 2e-3, 1e-4);
      if (!(err <= 1)) {
        std::ostringstream msg;
        msg << "Tessera cannot evaluate this operator, and its inputs differ from the original graph's (seed "
            << seed << "): scaled error " << err;
        throw UserError(msg.str());
      }
      return it->second.outputs;
    };
    std::vector<Tensor> expected, actual;
    try {
      expected = run_graph(original, inputs, first);
      actual = run_graph(reread, inputs, second);
    } catch (const UserError& e) {
      return std::string("cannot evaluate: ") + e.what();
    }
    double err = max_scaled_error(actual, expected, 2e-3, 1e-4);
    if (!(err <= 1)) {
      std::ostringstream msg;
      msg << "outputs differ on random inputs (seed " << s + 1 << "): scaled error " << err;
      return msg.str();
    }
  }
  return std::nullopt;
}

}  // namespace tessera::graph
