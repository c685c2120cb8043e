// Roller-style construction of candidate schedules (search/tile): from a workload to the
// top-k schedules by the analytic model, in well under a second, without a GPU.
//
// For tiled families (the block_m/block_n/block_k knobs of the GEMM-like families) an rTile
// starts at the smallest hardware-aligned tile the family offers (its domains are multiples
// of the mma shape and of 128-byte rows; validate() rules out the rest) and is scaled up one
// axis at a time, taking the step with the best gain in arithmetic intensity (FLOPs per byte
// loaded, from the TensorExpr footprints) per added byte of shared memory, until shared
// memory or registers run out, or the grid would no longer fill the SMs (scale-out). Every
// tile on that path is completed with the family's other knobs; pipeline stages, warps,
// vector width, rasterisation and split-K are chosen by the model within the limits. The
// top k holds each family's best first, then the best schedule of each distinct block shape
// (tile and warp layout), then the next best: the measurements then decide where the model is
// least sure.
// Families without tile knobs have small spaces: every valid schedule is ranked.
#pragma once

#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/schedule.h"
#include "costmodel/cost_model.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

struct ConstructOptions {
  int top_k = 10;  ///< candidates returned
};

struct Construction {
  std::vector<Candidate> candidates;  ///< best first, predicted_us set
  std::vector<std::string> path;      ///< the rTiles visited, e.g. "gemm_tc 64x64x32"
  int64_t ranked = 0;                 ///< valid schedules the model ranked
  double seconds = 0;                 ///< time taken
};

/// Candidates for `w` over every registered family that supports it, ranked by `model` (one
/// batched predict; the analytic model in a tuning job). A workload no family supports is a
/// UserError.
Construction construct(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
                       costmodel::CostModel& model, const ConstructOptions& options = {});

/// Every valid schedule of every family supporting `w` with the model's prediction, best
/// first (or, with `sorted` false, in the families' enumeration order). For benchmarks that
/// compare construction with the whole space.
std::vector<Candidate> rank_all(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
                                costmodel::CostModel& model, bool sorted = true);

}  // namespace tessera::search
