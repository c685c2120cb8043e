// Runner: turns candidates into measurements. CuptiRunner measures on a GPU; ReplayRunner
// answers from measurements recorded on a real GPU and says `unmeasured` for the rest.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/measurement.h"
#include "core/schedule.h"

namespace tessera::measure {

/// Measures batches of candidates.
class Runner {
 public:
  /// A batch handed to submit(), until wait() has returned its measurements.
  using Ticket = uint64_t;

  virtual ~Runner() = default;
  /// One measurement per candidate, same order; failures are statuses, never exceptions.
  virtual std::vector<Measurement> run(std::span<const Candidate> candidates) = 0;

  /// Hands a batch over to be measured and returns at once (the candidates are copied). An
  /// asynchronous() runner starts measuring it beside the batches already submitted, after them;
  /// any other keeps it for wait(), which runs it.
  virtual Ticket submit(std::span<const Candidate> candidates) {
    Ticket ticket = next_ticket_++;
    submitted_.emplace(ticket, std::vector<Candidate>(candidates.begin(), candidates.end()));
    return ticket;
  }
  /// The measurements of a submitted batch, as run() returns them (on_result reports its
  /// candidates, by their index in that batch, from this call); each ticket is waited for once.
  virtual std::vector<Measurement> wait(Ticket ticket) {
    auto it = submitted_.find(ticket);
    TESSERA_CHECK(it != submitted_.end(), "Runner::wait for a batch not submitted, or waited for");
    std::vector<Candidate> candidates = std::move(it->second);
    submitted_.erase(it);
    return run(candidates);
  }
  /// Whether submit() starts measuring at once, so that a batch submitted before the last one is
  /// waited for overlaps it (the tuner then prepares its next batch while one is measured).
  virtual bool asynchronous() const { return false; }

  /// What run() would answer for `candidate` without measuring anything (an invalid schedule, a
  /// replay without its record), or nullopt when it needs measuring; cheap, and counted as run()
  /// counts it. Lets a ClusterRunner keep such candidates off the network.
  virtual std::optional<Measurement> settle(const Candidate& candidate) {
    (void)candidate;
    return std::nullopt;
  }

  /// Called by run() (or wait()), on its thread, as each candidate's measurement is final (its
  /// index into that batch's candidates), in the order they finish.
  std::function<void(size_t, const Measurement&)> on_result;

 private:
  std::map<Ticket, std::vector<Candidate>> submitted_;
  Ticket next_ticket_ = 0;
};

}  // namespace tessera::measure
