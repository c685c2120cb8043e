// Features of the learned cost model: one fixed-length vector per (workload, schedule) on a
// GPU spec, in a versioned layout. Three parts:
//   - the workload: kind and dtype (one-hot), its dimensions (log2), FLOPs, minimum bytes and
//     roofline floor, and the GEMM it is (a convolution's implicit GEMM) where it is one;
//   - the schedule: its family (one-hot) and every knob in a fixed slot (log2 of the value,
//     -1 where the family has no such knob);
//   - the analytic model's view of it: estimated time and its breakdown, the bounding term
//     (one-hot), occupancy, waves and the tile plan's resources.
// Records store the feature version their model used; a change to this layout (a new knob, a
// new family, a new feature) bumps kFeatureVersion so that stored models are not misread, as
// does a change to what a feature means (v4: the analytic view of wgmma plans uses the spec's
// fitted async-MMA terms and counts their epilogue; v5: gemm_wgmma's blocks_per_sm knob).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/schedule.h"
#include "kernels/kernel_family.h"

namespace tessera::costmodel {

inline constexpr int kFeatureVersion = 5;

/// The features' names, in layout order.
const std::vector<std::string>& feature_names();

/// Computes feature vectors for one GPU spec.
class FeatureExtractor {
 public:
  FeatureExtractor(const kernels::FamilyRegistry& families, HardwareSpec hw);
  /// One row of feature_names().size() values. A schedule of an unknown family, or a knob
  /// the layout has no slot for, is an internal error (bump kFeatureVersion with the layout).
  std::vector<float> row(const Workload& w, const Schedule& s) const;
  /// Rows for many candidates, concatenated (row-major).
  std::vector<float> rows(std::span<const Candidate> candidates) const;
  const HardwareSpec& hardware() const { return hw_; }

 private:
  const kernels::FamilyRegistry* families_;
  HardwareSpec hw_;
};

}  // namespace tessera::costmodel
