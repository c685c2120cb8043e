// Exports of the tuning database to other compilers and tools, and imports back.
//
//   jsonl           every record, one JSON object per line, in Tessera's record schema
//                   (lossless: import_jsonl reads it back identically)
//   triton          a Python file of triton.Config lists per matmul workload key
//   kerneltuner     a Kernel Tuner cache file (one workload, one family)
//   cutlass         CUTLASS-profiler-style CSV of GEMM results
//   cutlass-conv2d  the same for conv2d results
//   header          a C header with the best schedule's knobs per workload (#defines)
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/measurement.h"
#include "db/database.h"

namespace tessera::db {

/// Output formats of export_database().
enum class ExportFormat { kJsonLines, kTriton, kKernelTuner, kCutlassGemm, kCutlassConv2d, kCHeader };

/// "jsonl", "triton", "kerneltuner", "cutlass", "cutlass-conv2d", "header"; else UserError.
ExportFormat parse_export_format(std::string_view name);

/// What to export.
struct ExportOptions {
  std::optional<std::string> target_fingerprint;  ///< one target; required where the db has several
  std::optional<std::string> workload_key;        ///< one workload (required for kerneltuner)
  int top_k = 1;                                  ///< best schedules per workload (triton, cutlass)
  std::string tool_version;                       ///< written into headers
  /// The warps of a record's schedule that compute the product, as Triton's num_warps counts
  /// them (a Hopper kernel's consumer warpgroups, not its producer), from the kernel family's
  /// tile plan (db/ cannot see kernels/; the CLI fills this in). Unset or nullopt: the
  /// schedule's own "warps" knob, else the config leaves num_warps to Triton.
  std::function<std::optional<int64_t>(const Record&)> mma_warps;
};

/// The exported text and what was left out.
struct ExportResult {
  std::string text;
  int64_t items = 0;                  ///< records, configs, rows or #define groups written
  int64_t kernels = 0;                ///< of those, with their kernel's code (header --with-kernels)
  std::vector<std::string> skipped;   ///< one line per workload or record not expressible
};

/// Renders `format` from `db`. A request that cannot be answered (no records, several
/// targets and none chosen) is a UserError saying what to add.
ExportResult export_database(TuningDatabase& db, ExportFormat format, const ExportOptions& options);

/// Version tag on every JSON line Tessera writes ("format" field).
inline constexpr std::string_view kRecordFormat = "tessera-record-1";

/// A further check of each imported record (e.g. that its kernel family and knobs are ones
/// this tessera knows); throws a UserError naming `where` to refuse it.
using RecordCheck = std::function<void(const Record& record, const std::string& where)>;

/// Parses JSON lines written by the jsonl export; blank lines are skipped. Every record is
/// validated (Record::validate, then `check`). A bad line is a UserError "what:LINE: reason".
std::vector<Record> import_jsonl(std::string_view text, std::string_view what, const RecordCheck& check = {});

/// Who a Kernel Tuner cache's measurements belong to (a cache names only the device).
struct KernelTunerImport {
  Workload workload;   ///< the problem the cache tuned
  std::string family;  ///< Tessera family whose knobs are the cache's tune_params_keys
  Target target;       ///< where it was measured; gpu_name is replaced by the cache's device_name
};

/// Parses a Kernel Tuner cache file (also one still open, without its closing braces).
/// Times (ms) become microseconds; error strings become statuses. Every record is validated
/// (Record::validate, then `check`). Bad input is a UserError naming `what` and the entry.
std::vector<Record> import_kernel_tuner(std::string_view text, const KernelTunerImport& info, std::string_view what,
                                        const RecordCheck& check = {});

}  // namespace tessera::db
