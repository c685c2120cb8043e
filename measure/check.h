// The CPU parts of the measurement protocol: output tolerances and comparison, how many
// timed repeats to take, and when a timed series is too noisy to keep.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/dtype.h"
#include "core/measurement.h"
#include "measure/job.h"

namespace tessera::measure {

/// An output element passes if |got - want| <= abs * max|want| + rel * |want|: relative to
/// each value, with a floor scaled by the output's magnitude (so tiny outputs, e.g. softmax
/// over 4096 columns, are held to the same precision as large ones).
struct Tolerance {
  double rel = 0, abs = 0;
};

/// Near the output dtype's rounding error: f32 1e-4/1e-5, f16 2e-3/1e-3, bf16 1e-2/8e-3.
/// tf32 inputs (f32 with tf32=1) are held to 2e-3/1e-3, their 10-bit mantissa's precision.
Tolerance tolerance_for(DType out, bool tf32 = false);

/// How an output compares with the reference.
struct Comparison {
  int64_t bad = 0;          ///< elements outside the tolerance (non-finite ones included)
  int64_t first_bad = -1;   ///< index of the first, or -1
  double worst_abs = 0;     ///< largest |got - want|
  double scale = 0;         ///< max |want|
  bool ok() const { return bad == 0; }
  /// "3 of 1048576 outputs off (first at 17: got nan, want 1.25; worst abs error 0.5)".
  std::string describe(std::span<const float> got, std::span<const float> want) const;
};

/// Compares element by element; sizes must match.
Comparison compare(std::span<const float> got, std::span<const float> want, Tolerance tol);

/// Timed runs for a kernel that takes about `estimate_us`: enough to reach both
/// options.min_repeats and options.min_total_ms, never more than options.max_repeats.
int planned_repeats(double estimate_us, const MeasureOptions& options);

/// Whether a series' spread ((p90 - p10) / median) exceeds the options' threshold.
bool is_noisy(const Measurement& m, const MeasureOptions& options);

}  // namespace tessera::measure
