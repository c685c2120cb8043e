// ReplayRunner: answers measurement requests from measurements recorded on a real GPU (a
// dataset exported with `tessera db export --format jsonl`, or a database's records), so
// search strategies can be tested and compared without a GPU. Every answer says it is a
// replay (Measurement::conditions["replay"] names the source); a schedule the records do not
// hold is answered `unmeasured`, never invented.
#pragma once

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
  ReplayRunner(std::span<const Record> records, std::string source);

  std::vector<Measurement> run(std::span<const Candidate> candidates) override;

  /// The target whose measurements these are.
  const Target& target() const { return target_; }
  /// The schedules recorded for `w` (any status), in key order.
  std::vector<Schedule> schedules(const Workload& w) const;
  /// The fastest correct recorded time for `w`, or 0 if none.
  double best_us(const Workload& w) const;
  int answered() const { return answered_; }      ///< requests answered from the records
  int unmeasured() const { return unmeasured_; }  ///< requests the records could not answer

 private:
  std::string source_;
  Target target_;
  /// workload key -> schedule key -> (schedule, its latest measurement)
  std::map<std::string, std::map<std::string, std::pair<Schedule, Measurement>>> by_workload_;
  int answered_ = 0, unmeasured_ = 0;
};

}  // namespace tessera::measure
