// `tessera graph run`'s work: a model imported, its constants folded, rewritten (optimised by
// the graph search, fused only, or as it is), planned for the GPU (exec_plan.h), each tuned
// operator given the database's best schedule for this GPU (construction's top choice where
// the database has none), run (graph_run.h), and its outputs checked against the host
// reference of the original model. Everything here runs in the isolated child process.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/json.h"
#include "db/database.h"
#include "graph/exec_plan.h"
#include "graph/ir.h"
#include "graph/oracle.h"

namespace tessera::graph {

struct ModelRunRequest {
  std::string model_path;
  std::string db_path;              ///< "" none: construction chooses every schedule
  std::string graph = "optimized";  ///< optimized, fused or original
  std::string dtype = "f16";
  int iters = 100;
  int budget = 200;     ///< the backtracking search's budget (optimized)
  uint64_t seed = 1;    ///< random inputs
  bool check = true;    ///< compare with the host reference
  double rtol = 0.05;   ///< the check's scaled-error bound
  bool vendor = false;  ///< tuned operators on cuBLASLt / cuDNN (graph_run.h)
  /// Every kernel gets dense operands (copies where they lie strided), as vendor runs do:
  /// PlanOptions::strided_operands off, to measure what reading in place gains.
  bool dense = false;
  /// The host reference's outputs (reference_outputs for this model and seed), computed once
  /// by a caller that runs several variants of one model; null: the run computes them.
  std::shared_ptr<const std::vector<Tensor>> reference;
};

/// A model made ready to run: the original (constants folded, the reference's graph), the
/// graph that runs, its plan, and what the rewrite did ("rewrites", "search_s",
/// "predicted_us" of the plan, "oracle_us" of the graph, "operators").
struct PreparedModel {
  Graph original;
  Graph graph;
  ExecPlan plan;
  Json info = Json::object();
  std::map<std::string, double> predicted;  ///< predicted_by_category of the plan
};

/// Imports, folds, rewrites and plans `request`'s model for `hw` / `target`, costing with `db`
/// (may be null). Does not touch the GPU.
PreparedModel prepare_model(const ModelRunRequest& request, const HardwareSpec& hw, const Target& target,
                            db::TuningDatabase* db, const kernels::FamilyRegistry& families);

/// The oracle's prediction of what `plan` launches, by the category its steps' times are
/// reported under: each tuned kernel at its workload's cost (the plan's workload: a B read
/// transposed in place runs as the other layout), each generic kernel at its operator's cost
/// (Node::cost_us, as CostOracle::graph_cost left it), each copy at its bytes (read and
/// written) at DRAM bandwidth after a launch; and under kNoLaunch, apart, the cost the oracle
/// gives operators the plan runs without a launch (views: reshapes, transposes and slices read
/// in place), which the run does not spend.
inline constexpr const char* kNoLaunch = "no launch (views, folded)";
std::map<std::string, double> predicted_by_category(const Graph& g, const ExecPlan& plan, CostOracle& oracle);

/// The predicted latency of a plan: predicted_by_category's sum, kNoLaunch left out. A run's
/// "predicted_us" (its "oracle_us" is the graph search's sum over operators, views included).
double planned_cost(const std::map<std::string, double>& by_category);

/// The plan in brief: steps by category (tuned kernels by workload kind, generic kernels by
/// operator, inserted copies) with the predicted time of each (predicted_by_category), setup
/// steps, views, arena and intermediate bytes, and the operators that cannot run
/// ("unsupported").
Json describe_plan(const Graph& g, const ExecPlan& plan, const std::map<std::string, double>& predicted);

/// Each step of the plan: its label, whether it runs before the timed runs, a tuned kernel's
/// workload, a generic kernel's walk (its index space after merging, in storage order: shape,
/// the output's and each input's strides, and its blocks).
Json describe_steps(const ExecPlan& plan);

/// What `graph run --compare`'s four runs (results as run_model_on_gpu gives them, each with
/// "graph" and "kernels") say together, from the GPU time of a replay launched back to back
/// (latency_us.back_to_back; the per-call median jitters by about 10 %):
/// - "rewrite_gain": 1 - optimized / fused, both on Tessera's kernels, beside
///   "predicted_rewrite_gain", the oracle's 1 - optimized / fused;
/// - "speedup_vs_vendor": original graph on the vendor library / optimized on Tessera's.
/// A figure whose runs are missing (crashed, not run) is left out.
Json compare_gains(const Json& runs);

/// Runs `graph`, a rewrite of `original` (the model as imported), as run_model_on_gpu runs
/// its rewrite: planned, scheduled, run on the first GPU and checked against the reference of
/// `original`. The request's graph field only labels the result.
Json run_graph_on_gpu(const Graph& original, const Graph& graph, const ModelRunRequest& request);

/// The host reference's outputs of `original` (as imported: its constants are folded here) on
/// the random inputs of `seed`, what a run's check compares with. CPU only (a batch-32 model
/// takes tens of seconds on 16 cores): callers that run one model several times compute it
/// once, before their children fork, and pass it in ModelRunRequest::reference.
std::vector<Tensor> reference_outputs(Graph original, uint64_t seed);

/// The first GPU's target, {"target": Target JSON, "spec": spec name}, or {"no_gpu": why}.
/// (Run it in a child: the process that asks initialises CUDA.)
Json first_gpu_target();

/// Runs the request on the first GPU and answers with the result (fields: see the README's
/// `graph run`), or {"no_gpu": why} when there is none. A model Tessera cannot run is a
/// UserError naming the operators.
Json run_model_on_gpu(const ModelRunRequest& request);

}  // namespace tessera::graph
