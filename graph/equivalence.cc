#include "graph/equivalence.h"

#include <sstream>

#include "core/error.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"

namespace tessera::graph {

std::optional<std::string> check_equivalent(const Graph& original, const Graph& optimised, int seeds) {
  ExportOptions options;
  options.write_synthetic = true;
  Graph reread = import_onnx_bytes(export_onnx(optimised, options), "the optimised model");
  for (int s = 0; s < seeds; ++s) {
    auto inputs = random_graph_inputs(original, static_cast<uint64_t>(s + 1));
    std::vector<Tensor> expected, actual;
    try {
      expected = run_graph(original, inputs);
      actual = run_graph(reread, inputs);
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
