// ReplayRunner: answers measurement requests from measurements recorded on a real GPU (a
// dataset exported with `tessera db export --format jsonl`, or a database's records), so
// search strategies can be tested and compared without a GPU. Every answer says it is a
// replay (Measurement::conditions["replay"] names the source); a schedule the records do not
// hold is answered `unmeasured`, never invented.
//
// Paced (pace > 0), it also takes as long as the GPU did: each answer waits pace x the recorded
// kernel time x its repeats, so that throughput means something without a GPU (MPI tests and
// benchmarks); unpaced, it answers at once.
#pragma once

#include <atomic>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/measurement.h"
#include "measure/runner.h"

namespace tessera::measure {

class ReplayRunner : public Runner {
 public:
  /// `records` of one target (several targets are a UserError naming `source`); of repeated
  /// (workload, schedule) records the latest answers.
  /// `pace`: each answer waits pace x its recorded median x repeats (0: answers at once).
  ReplayRunner(std::span<const Record> records, std::string source, double pace = 0);

  std::vector<Measurement> run(std::span<const Candidate> candidates) override;
  /// `unmeasured` for a schedule the records do not hold.
  std::optional<Measurement> settle(const Candidate& candidate) override;

  /// The target whose measurements these are.
  const Target& target() const { return target_; }
  /// The schedules recorded for `w` (any status), in key order.
  std::vector<Schedule> schedules(const Workload& w) const;
  /// The fastest correct recorded time for `w`, or 0 if none.
  double best_us(const Workload& w) const;
  /// The longest an answer waits [s] (0 unpaced).
  double max_wait_s() const;
  int answered() const { return answered_; }      ///< requests answered from the records
  int unmeasured() const { return unmeasured_; }  ///< requests the records could not answer
  /// Counts an answer another ReplayRunner of the same records gave (an MPI rank's) as if
  /// this one had given it. Safe beside a run() on another thread.
  void tally(const Measurement& m);

 private:
  const Measurement* recorded(const Candidate& c) const;
  Measurement unrecorded() const;

  std::string source_;
  Target target_;
  /// workload key -> schedule key -> (schedule, its latest measurement)
  std::map<std::string, std::map<std::string, std::pair<Schedule, Measurement>>> by_workload_;
  double pace_ = 0;
  std::atomic<int> answered_ = 0, unmeasured_ = 0;
};

}  // namespace tessera::measure
