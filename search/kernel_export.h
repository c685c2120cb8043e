// The C header export with each workload's best kernel as self-contained CUDA source and a
// host launch function: the database's #defines (db/export.h) joined with the kernel
// families' emission (kernels/standalone.h). Lives here because it needs both modules.
#pragma once

#include <string>
#include <vector>

#include "db/export.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

/// The `header` export of `db` plus, for each workload's best record, its kernel as
/// standalone CUDA (compile the file with nvcc). Workloads whose schedule no registered
/// family emits are listed in `skipped`.
db::ExportResult export_header_with_kernels(db::TuningDatabase& db, const db::ExportOptions& options,
                                            const kernels::FamilyRegistry& families);

}  // namespace tessera::search
