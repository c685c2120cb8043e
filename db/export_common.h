// Internal to db/ (export.cc, export_triton.cc): what the exporters share.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "db/database.h"
#include "db/export.h"

namespace tessera::db::export_detail {

std::string num(double v, const char* fmt = "%.6g");
/// Text from records written into an exported file's comments: one line, unable to close a C
/// comment.
std::string comment_text(std::string_view text);
/// A C string literal, a Python string literal, one CSV field (RFC 4180).
std::string c_string(std::string_view text);
std::string python_string(std::string_view text);
std::string csv_field(std::string_view text);

/// The export's target: the chosen one, or the database's only one (a UserError otherwise).
Target choose_target(TuningDatabase& db, const ExportOptions& o);

struct WorkloadBest {
  Workload workload;
  std::vector<StoredRecord> records;  // fastest first
};
/// The best ok records of every workload (or the chosen one) on `target`: `per_workload` of
/// each (0: the options' top_k); workloads without a correct measurement go to `skipped`.
std::vector<WorkloadBest> best_per_workload(TuningDatabase& db, const Target& target, const ExportOptions& o,
                                            ExportResult& result, int per_workload = 0);
/// "<prefix> Exported by tessera V from DB.\n<prefix> Target: T\n".
std::string header_comment(const char* prefix, TuningDatabase& db, const Target& target, const ExportOptions& o);

ExportResult export_triton(TuningDatabase& db, const ExportOptions& o);

}  // namespace tessera::db::export_detail
