// What the parent sends a measurement worker, and how it wants it measured.
#pragma once

#include <string>

#include "core/json.h"
#include "core/schedule.h"
#include "core/workload.h"
#include "kernels/kernel_family.h"

namespace tessera::measure {

/// The timing and checking protocol (ARCHITECTURE.md, "Measurement protocol").
struct MeasureOptions {
  int warmup_runs = 3;             ///< untimed runs first, at least this many...
  double warmup_ms = 10;           ///< ...and at least this long in total
  int min_repeats = 10;            ///< timed runs: at least this many...
  double min_total_ms = 50;        ///< ...and at least this much kernel time in total
  int max_repeats = 2000;          ///< never more than this many
  bool flush_l2 = true;            ///< overwrite a buffer of 2x the L2 before every timed run
  double noise_threshold = 0.05;   ///< spread (p90 - p10) / median above which to re-measure
  int max_attempts = 3;            ///< timed series per candidate while noisy
  bool check = true;               ///< compare the output with a reference first
  bool vendor = true;              ///< time the vendor library on the same workload
  uint64_t seed = 1;               ///< input data seed

  Json to_json() const;
  static MeasureOptions from_json(const Json& j);
};

/// One candidate ready to measure: its launch plan and compiled cubin.
struct Job {
  Workload workload;
  Schedule schedule;
  kernels::KernelSource plan;  ///< entry, geometry, `then`, workspace (the source text is not sent)
  std::string cubin;
};

/// Header JSON of a "measure" request (the cubin travels as the frame's blob).
Json job_header(const Job& job, const MeasureOptions& options, int64_t id);
/// Inverse of job_header (plus the blob); malformed input is a UserError.
Job job_from_header(const Json& header, std::string cubin);

}  // namespace tessera::measure
