// Runner: turns candidates into measurements. CuptiRunner measures on a GPU; ReplayRunner
// answers from measurements recorded on a real GPU and says `unmeasured` for the rest.
#pragma once

#include <span>
#include <vector>

#include "core/measurement.h"
#include "core/schedule.h"

namespace tessera::measure {

/// Measures batches of candidates.
class Runner {
 public:
  virtual ~Runner() = default;
  /// One measurement per candidate, same order; failures are statuses, never exceptions.
  virtual std::vector<Measurement> run(std::span<const Candidate> candidates) = 0;
};

}  // namespace tessera::measure
