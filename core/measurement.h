// Measurement (the outcome of timing one candidate; a failure is a field, never an
// exception) and Record (what the tuning database keeps).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hardware.h"
#include "core/json.h"
#include "core/schedule.h"
#include "core/workload.h"

namespace tessera {

/// How a measurement ended. Only kOk results are eligible for "best".
enum class Status {
  kOk,            ///< ran, correct, timed
  kCompileError,  ///< NVRTC rejected the source
  kInvalid,       ///< the family's validate() rejected the schedule (or resources exceeded)
  kLaunchError,   ///< the launch failed (too many resources, bad geometry)
  kIncorrect,     ///< ran but disagreed with the reference
  kTimeout,       ///< did not finish within the watchdog
  kCrashed,       ///< faulted or killed its worker
  kUnmeasured,    ///< not run on a GPU (model-only, or a replay without this record)
};

/// "ok", "compile_error", "invalid", "launch_error", "incorrect", "timeout", "crashed", "unmeasured".
std::string_view status_name(Status s);
/// Inverse of status_name; anything else is a UserError naming `what`.
Status parse_status(std::string_view text, std::string_view what);

/// The q-quantile (0..1) of a sorted, non-empty sample: linear interpolation between the
/// closest ranks (what Measurement's median and spread use).
double quantile(const std::vector<double>& sorted, double q);

/// Outcome of timing one candidate. Never thrown; inspect `status`.
struct Measurement {
  Status status = Status::kUnmeasured;
  std::vector<double> times_us;          ///< kernel time of each repeat [us]
  double median_us = 0;                  ///< median of times_us [us]
  double min_us = 0;                     ///< fastest repeat [us]
  double max_us = 0;                     ///< slowest repeat [us]
  double spread = 0;                     ///< (p90 - p10) / median of times_us [fraction]
  int registers = 0;                     ///< registers per thread of the compiled kernel
  int64_t smem_bytes = 0;                ///< static + dynamic shared memory per block [bytes]
  int64_t spill_bytes = 0;               ///< local-memory spill stores + loads [bytes]
  std::optional<double> vendor_us;       ///< vendor library median, same worker [us]
  std::string error;                     ///< set iff status != kOk
  bool noisy = false;                    ///< spread stayed above the threshold after re-measuring
  Json conditions = Json::object();      ///< how it was measured: clocks, throttling, vendor algorithm, ...

  /// Fills times_us, median_us, min_us, max_us and spread from raw samples (non-empty).
  void set_times(std::vector<double> samples_us);

  static Measurement from_json(const Json& j, std::string_view what);
  Json to_json() const;
  bool operator==(const Measurement&) const = default;
};

/// One row of the tuning database: what was tried, where, and what happened.
struct Record {
  Workload workload;
  Target target;
  Schedule schedule;
  Measurement measurement;
  std::optional<double> predicted_us;  ///< the cost model's estimate when it was chosen [us]
  int feature_version = 0;             ///< version of the learned model's feature layout
  std::string tool_version;            ///< tessera version that produced the record
  int64_t timestamp_s = 0;             ///< seconds since the Unix epoch (UTC)

  /// A UserError naming `what` unless every field lies in its range: the schedule's family and
  /// knob names are identifiers (they end up in exported code), times are finite and positive
  /// where measured, counts and the target's compute capability in range, text fields printable
  /// and short. Every import checks its records with it (from_json does).
  void validate(std::string_view what) const;

  /// Parses and validates a record.
  static Record from_json(const Json& j, std::string_view what);
  Json to_json() const;
  bool operator==(const Record&) const = default;
};

/// Whether `name` is an identifier as kernel families and knobs are named: a letter or '_',
/// then letters, digits and '_', at most 64 characters.
bool is_identifier(std::string_view name);

}  // namespace tessera
