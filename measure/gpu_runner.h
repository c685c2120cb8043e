// GpuRunner: the Runner that measures on GPUs. Validates each candidate with its family,
// emits and compiles the kernels in parallel (NVRTC, disk cache), and measures the ones that
// compiled in the WorkerPool; invalid schedules and compile errors are statuses of their
// Measurement, and every Measurement carries the kernel's registers, shared memory and spills.
#pragma once

#include <optional>
#include <string>

#include "core/hardware.h"
#include "kernels/builder.h"
#include "kernels/kernel_family.h"
#include "measure/pool.h"
#include "measure/runner.h"

namespace tessera::measure {

class GpuRunner : public Runner {
 public:
  /// `spec` is the GPU the workers measure on (validation uses its limits); `build.arch`
  /// must be its architecture.
  GpuRunner(const kernels::FamilyRegistry& families, HardwareSpec spec, kernels::BuildOptions build,
            PoolOptions pool);

  std::vector<Measurement> run(std::span<const Candidate> candidates) override;
  /// `invalid` for a schedule its family rejects (the checks run() makes before building).
  std::optional<Measurement> settle(const Candidate& candidate) override;

  WorkerPool& pool() { return pool_; }

 private:
  /// Why the family rejects `c` (unknown family or workload, other knobs, invalid), or nullopt.
  std::optional<std::string> invalid(const Candidate& c) const;

  const kernels::FamilyRegistry& families_;
  HardwareSpec spec_;
  kernels::Builder builder_;
  WorkerPool pool_;
};

}  // namespace tessera::measure
