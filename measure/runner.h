// Runner: turns candidates into measurements. CuptiRunner measures on a GPU; ReplayRunner
// answers from measurements recorded on a real GPU and says `unmeasured` for the rest.
#pragma once

#include <functional>
#include <optional>
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

  /// What run() would answer for `candidate` without measuring anything (an invalid schedule, a
  /// replay without its record), or nullopt when it needs measuring; cheap, and counted as run()
  /// counts it. Lets a ClusterRunner keep such candidates off the network.
  virtual std::optional<Measurement> settle(const Candidate& candidate) {
    (void)candidate;
    return std::nullopt;
  }

  /// Called by run(), on run()'s thread, as each candidate's measurement is final (its index
  /// into run()'s candidates), in the order they finish.
  std::function<void(size_t, const Measurement&)> on_result;
};

}  // namespace tessera::measure
