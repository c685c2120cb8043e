// The tuning report (`tessera report`): one self-contained HTML page (inline CSS and SVG, no
// network) about a database's records for one target: per workload the tuning curve (best so
// far against measurements, with the vendor baseline), a roofline chart of every workload's best
// and baseline, the cost model's predicted against measured times with its pairwise accuracy,
// the failures by status, and the stored graph-search results.
#pragma once

#include <cstdint>
#include <string>

#include "core/hardware.h"
#include "db/database.h"

namespace tessera::search {

struct ReportOptions {
  std::string source;         ///< the database, as the page names it
  std::string tool_version;
  int64_t generated_s = 0;    ///< when the page was made [s since the epoch, UTC]
  size_t max_curves = 200;    ///< tuning curves drawn (the workloads with the most records)
  size_t max_points = 4000;   ///< records drawn in the predicted-against-measured chart (evenly sampled)
};

struct Report {
  std::string html;
  int64_t workloads = 0;  ///< workloads of the target with records
  int64_t records = 0;    ///< records of the target
  int64_t charts = 0;     ///< <svg class="chart"> elements on the page
};

/// The report of `target`'s records in `db`. A page without records says so.
Report tuning_report(db::TuningDatabase& db, const Target& target, const ReportOptions& options);

}  // namespace tessera::search
