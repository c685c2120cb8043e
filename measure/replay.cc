#include "measure/replay.h"

#include "core/error.h"

namespace tessera::measure {

ReplayRunner::ReplayRunner(std::span<const Record> records, std::string source) : source_(std::move(source)) {
  if (records.empty()) throw UserError(source_ + ": no records to replay");
  target_ = records.front().target;
  for (const Record& r : records) {
    if (r.target.fingerprint() != target_.fingerprint())
      throw UserError(source_ + ": records of more than one target (" + target_.fingerprint() + "; " +
                      r.target.fingerprint() + "); a replay answers for one GPU");
    by_workload_[r.workload.key()][r.schedule.key()] = {r.schedule, r.measurement};
  }
}

std::vector<Measurement> ReplayRunner::run(std::span<const Candidate> candidates) {
  std::vector<Measurement> out;
  for (const Candidate& c : candidates) {
    Measurement m;
    const Measurement* recorded = nullptr;
    if (auto w = by_workload_.find(c.workload.key()); w != by_workload_.end())
      if (auto s = w->second.find(c.schedule.key()); s != w->second.end()) recorded = &s->second.second;
    if (recorded) {
      m = *recorded;
      m.conditions["replay"] = source_;
      ++answered_;
    } else {
      m.status = Status::kUnmeasured;
      m.error = "not in the replay records (" + source_ + ")";
      ++unmeasured_;
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<Schedule> ReplayRunner::schedules(const Workload& w) const {
  std::vector<Schedule> out;
  if (auto it = by_workload_.find(w.key()); it != by_workload_.end())
    for (const auto& [key, entry] : it->second) out.push_back(entry.first);
  return out;
}

double ReplayRunner::best_us(const Workload& w) const {
  double best = 0;
  auto it = by_workload_.find(w.key());
  if (it == by_workload_.end()) return 0;
  for (const auto& [key, entry] : it->second) {
    const Measurement& m = entry.second;
    if (m.status == Status::kOk && (best == 0 || m.median_us < best)) best = m.median_us;
  }
  return best;
}

}  // namespace tessera::measure
