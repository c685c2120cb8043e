// CostOracle: what an operator of a graph costs on the target, for the graph search.
//
// An operator that maps to a Tessera workload (convolutions, matmuls, softmax, layernorm,
// row reductions, elementwise chains) costs the best time measured for that workload in the
// tuning database, else the analytic model's estimate of its best constructed schedule,
// flagged as estimated. Data movement (Transpose, Concat, Split, Slice, Gather, pools, ...)
// and the operators no family runs cost a memory-bound estimate: one launch plus the bytes
// read and written at the GPU's DRAM bandwidth. Reshapes, identities, shape arithmetic, and
// Splits and single-index Gathers that take contiguous blocks, are free (views). Floating
// tensors are costed in one dtype (f16 by default: an H100 deployment runs the model in half
// precision) and convolutions in NHWC, the layout the tensor-core kernels run (a deployment
// converts once at the graph's edges), so a channel Split of a convolution's output takes
// strided slabs: a copy (as `graph run` measures it), not a view.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "core/hardware.h"
#include "core/workload.h"
#include "costmodel/analytic.h"
#include "db/database.h"
#include "kernels/kernel_family.h"
#include "graph/ir.h"
#include "search/workload_set.h"

namespace tessera::graph {

/// Where an operator's cost came from.
enum class CostSource { kFree, kMeasured, kModel, kMemory };
/// "free", "measured", "model", "memory".
std::string_view cost_source_name(CostSource s);

/// One operator's cost.
struct OpCost {
  double time_us = 0;
  CostSource source = CostSource::kFree;
  std::optional<Workload> workload;  ///< the workload it was costed as, if any
};

/// The Tessera workload `n` runs as, with floating tensors in `dtype`; nullopt for operators
/// that map to none (data movement, free operators, unsupported shapes).
std::optional<Workload> node_workload(const Graph& g, const Node& n, DType dtype);

/// The distinct workloads of `g`'s live operators, each weighted by how many operators run
/// it and labelled with the operator kinds, in first-occurrence order.
std::vector<search::WorkloadEntry> graph_workloads(const Graph& g, DType dtype);

/// The database's k best records of `w` on `target` (or, without any, a target of the same
/// architecture). A layernorm whose epsilon is not the default takes the records of the same
/// shape with the default's: the constant changes neither the kernel's time nor its schedule.
db::BestResult best_records(db::TuningDatabase& db, const Workload& w, const Target& target, int k = 1);

/// Costs operators, caching by workload (and by operator signature for the rest).
class CostOracle {
 public:
  /// `db` may be null (model only); records of `target` answer first, then records of a
  /// target of the same architecture.
  CostOracle(const kernels::FamilyRegistry& families, HardwareSpec hw, Target target, db::TuningDatabase* db,
             DType dtype = DType::kF16);

  /// With a database: rescales the model's estimates, per workload kind, to the measured
  /// times of `g`'s workloads that have records (the geometric mean of measured / estimated
  /// over at least kMinCalibration of them), so that an unmeasured rewrite competes on the
  /// scale of the measured operators instead of the model's. Forgets costs given so far.
  /// An unmeasured operator whose form with fewer epilogue steps was measured is scaled by
  /// that measurement's ratio instead.
  void calibrate(const Graph& g);
  /// The factor calibrate() set for workloads of `kind` (1 when none).
  double calibration(OpKind kind) const;
  /// Every factor calibrate() set.
  const std::map<OpKind, double>& calibrations() const { return calibration_; }
  /// Whether calibrate() ran (optimize_graph calibrates on its input graph when it has not).
  bool calibrated() const { return calibrated_; }
  static constexpr int kMinCalibration = 3;

  /// The cost of `n` in `g`.
  OpCost cost(const Graph& g, const Node& n);
  /// Sum over live nodes, costing the ones not costed yet (Node::cost_us is set) [us].
  double graph_cost(Graph& g);

  /// Distinct workloads costed so far, by source.
  int measured_workloads() const { return measured_; }
  int estimated_workloads() const { return estimated_; }
  DType dtype() const { return dtype_; }
  const Target& target() const { return target_; }
  const HardwareSpec& hw() const { return hw_; }
  /// A workload's cost as cost() gives an operator of it (measured, else estimated and
  /// calibrated); -1 where no family runs it.
  double workload_cost(const Workload& w, CostSource& source);

 private:
  std::optional<double> measured(const Workload& w) const;
  std::optional<double> estimated(const Workload& w);
  // measured / estimated of the same workload with fewer epilogue steps, if one was measured.
  std::optional<double> relative_scale(const Workload& w);

  const kernels::FamilyRegistry& families_;
  HardwareSpec hw_;
  Target target_;
  db::TuningDatabase* db_;
  DType dtype_;
  costmodel::AnalyticModel model_;
  std::map<std::string, std::pair<double, CostSource>> by_workload_;
  std::map<OpKind, double> calibration_;
  bool calibrated_ = false;
  int measured_ = 0, estimated_ = 0;
};

}  // namespace tessera::graph
