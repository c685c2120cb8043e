#include "measure/replay.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "core/error.h"

namespace tessera::measure {
namespace {

// What the GPU spent on a recorded measurement: its kernel time times its repeats [s].
double recorded_gpu_s(const Measurement& m) { return m.median_us * static_cast<double>(m.times_us.size()) * 1e-6; }

}  // namespace

ReplayRunner::ReplayRunner(std::span<const Record> records, std::string source, double pace)
    : source_(std::move(source)), pace_(pace) {
  if (records.empty()) throw UserError(source_ + ": no records to replay");
  target_ = records.front().target;
  for (const Record& r : records) {
    if (r.target.fingerprint() != target_.fingerprint())
      throw UserError(source_ + ": records of more than one target (" + target_.fingerprint() + "; " +
                      r.target.fingerprint() + "); a replay answers for one GPU");
    by_workload_[r.workload.key()][r.schedule.key()] = {r.schedule, r.measurement};
  }
}

const Measurement* ReplayRunner::recorded(const Candidate& c) const {
  if (auto w = by_workload_.find(c.workload.key()); w != by_workload_.end())
    if (auto s = w->second.find(c.schedule.key()); s != w->second.end()) return &s->second.second;
  return nullptr;
}

Measurement ReplayRunner::unrecorded() const {
  Measurement m;
  m.status = Status::kUnmeasured;
  m.error = "not in the replay records (" + source_ + ")";
  return m;
}

std::optional<Measurement> ReplayRunner::settle(const Candidate& candidate) {
  if (recorded(candidate)) return std::nullopt;
  ++unmeasured_;
  return unrecorded();
}

std::vector<Measurement> ReplayRunner::run(std::span<const Candidate> candidates) {
  std::vector<Measurement> out;
  for (const Candidate& c : candidates) {
    Measurement m;
    if (const Measurement* answer = recorded(c)) {
      if (pace_ > 0) std::this_thread::sleep_for(std::chrono::duration<double>(pace_ * recorded_gpu_s(*answer)));
      m = *answer;
      m.conditions["replay"] = source_;
      ++answered_;
    } else {
      m = unrecorded();
      ++unmeasured_;
    }
    out.push_back(std::move(m));
    if (on_result) on_result(out.size() - 1, out.back());
  }
  return out;
}

double ReplayRunner::max_wait_s() const {
  double longest = 0;
  for (const auto& [workload, schedules] : by_workload_)
    for (const auto& [key, entry] : schedules) longest = std::max(longest, pace_ * recorded_gpu_s(entry.second));
  return longest;
}

void ReplayRunner::tally(const Measurement& m) {
  if (m.conditions.contains("replay")) ++answered_;
  else ++unmeasured_;
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
