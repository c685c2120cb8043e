// The C/CUDA export: the header export's #defines with declarations of a launch function per
// workload, and a .cu with each workload's best kernel as self-contained CUDA source: the
// database (db/export.h) joined with the kernel families' emission (kernels/standalone.h).
// Lives here because it needs both modules.
#pragma once

#include <string>
#include <vector>

#include "db/export.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

/// The C/CUDA export: `header` is the `header` export of `db` (its #defines) plus, for each
/// workload's best record, C declarations any C or C++ file can include (no CUDA header needed)
/// of a launch function defined in `cuda`, the .cu with the kernels as standalone CUDA, which
/// includes the header as `header_name`. Workloads whose schedule no registered family builds
/// are listed in header.skipped.
struct KernelExport {
  db::ExportResult header;
  std::string cuda;
};
KernelExport export_header_with_kernels(db::TuningDatabase& db, const db::ExportOptions& options,
                                        const kernels::FamilyRegistry& families, const std::string& header_name);

}  // namespace tessera::search
