// The analytic cost model: estimated time of a (workload, schedule) on a GPU from the
// family's TilePlan and the workload's TensorExpr, without running anything.
//
// Traffic at each level comes from the index maps' footprints: global -> L2 -> shared
// memory is each block's input footprint over its tile; L2 -> DRAM is the footprint of the
// tiles a wave of concurrently running blocks covers together, in rasterisation order (so
// block-row grouping shows up as L2 reuse); shared memory -> registers is each warp's slice
// of the staged tiles. Compute time is the instruction kind's peak per SM. Occupancy comes
// from registers, shared memory and threads; waves are quantised over the SMs; load/compute
// overlap grows with the pipeline stages (ALCOP's two levels: stages and register double
// buffering). The largest term bounds the time; the rest overlap only partly.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "costmodel/cost_model.h"
#include "kernels/kernel_family.h"

namespace tessera::costmodel {

/// Fixed cost the model charges per kernel launch [us].
inline constexpr double kLaunchUs = 2.5;

/// Where the estimated time goes.
struct Estimate {
  double us = 0;           ///< estimated kernel time (all kernels of the plan) [us]
  std::string bound;       ///< the term that bounds it: "compute", "smem", "l2", "dram", "latency", "launch"
  double compute_us = 0;   ///< arithmetic at the instruction's achievable peak [us]
  double smem_us = 0;      ///< shared memory -> registers [us]
  double l2_us = 0;        ///< L2 -> SM traffic [us]
  double dram_us = 0;      ///< DRAM traffic after L2 reuse [us]
  double dram_bytes = 0;   ///< modelled DRAM traffic [bytes]
  double epilogue_us = 0;  ///< tensor-core GEMM plans: epilogue time not hidden behind MMAs [us]
  double blocks = 0;       ///< blocks in the grid
  double blocks_per_sm = 0;///< resident blocks per SM (occupancy)
  double waves = 0;        ///< ceil(blocks / (SMs x blocks_per_sm))
  double overlap = 0;      ///< share of the non-bounding terms hidden by pipelining [0, 1]
  bool feasible = true;    ///< false if no block fits on an SM

  Json to_json() const;
};

/// Blocks a plan's grid has over its spatial axes (without split-K slices).
double spatial_blocks(const kernels::TilePlan& plan);

/// Estimate of one tile plan on `hw`.
Estimate estimate(const kernels::TilePlan& plan, const HardwareSpec& hw);

/// CostModel over the registered families: predict() is estimate(...).us, or +inf for a
/// schedule of an unknown family. It does not learn (update() is a no-op).
class AnalyticModel : public CostModel {
 public:
  AnalyticModel(const kernels::FamilyRegistry& families, HardwareSpec hw);
  std::vector<double> predict(std::span<const Candidate> candidates) override;
  void update(std::span<const Record>) override {}
  /// The full breakdown of one candidate.
  Estimate explain(const Candidate& c) const;
  const HardwareSpec& hardware() const { return hw_; }

 private:
  const kernels::FamilyRegistry& families_;
  HardwareSpec hw_;
};

}  // namespace tessera::costmodel
