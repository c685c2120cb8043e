#include "search/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace tessera::search {

TaskScheduler::TaskScheduler(std::vector<TaskInfo> tasks, SchedulerOptions options)
    : options_(options), rng_(options.seed) {
  if (options_.window < 1) throw InternalError("TaskScheduler: window must be at least 1");
  for (TaskInfo& t : tasks) {
    State s;
    s.info = std::move(t);
    state_.push_back(std::move(s));
  }
}

void TaskScheduler::prime(size_t task, int trials, std::optional<double> best_us) {
  State& s = state_.at(task);
  s.trials += trials;
  if (best_us && (!s.best || *best_us < *s.best)) s.best = best_us;
}

void TaskScheduler::update(size_t task, int trials, std::optional<double> best_us) {
  State& s = state_.at(task);
  // The history starts with where the task stood before its first batch, so the first
  // backward difference covers that batch.
  if (s.history.empty()) s.history.emplace_back(s.trials, s.best.value_or(std::numeric_limits<double>::infinity()));
  s.trials += trials;
  if (best_us && (!s.best || *best_us < *s.best)) s.best = best_us;
  if (!s.best) ++s.failing_batches;
  s.history.emplace_back(s.trials, s.best.value_or(std::numeric_limits<double>::infinity()));
}

void TaskScheduler::finish(size_t task) { state_.at(task).finished = true; }

double TaskScheduler::weighted_best_us() const {
  double sum = 0;
  for (const State& s : state_)
    if (s.best) sum += s.info.weight * *s.best;
  return sum;
}

bool TaskScheduler::all_have_results() const {
  return std::all_of(state_.begin(), state_.end(), [](const State& s) { return s.best.has_value(); });
}

int TaskScheduler::batches(size_t task) const {
  const State& s = state_.at(task);
  return s.history.empty() ? 0 : static_cast<int>(s.history.size()) - 1;
}

bool TaskScheduler::resting(size_t task) const {
  const State& s = state_.at(task);
  const size_t p = static_cast<size_t>(options_.patience);
  if (p == 0 || !s.best || s.history.size() < p + 1) return false;
  return s.history[s.history.size() - 1 - p].second <= s.history.back().second;
}

double TaskScheduler::gradient(size_t task) const {
  const State& s = state_.at(task);
  if (!s.best) return -std::numeric_limits<double>::infinity();  // blocks the end-to-end time
  const double g = *s.best;
  double backward = 0;
  if (s.history.size() >= 2) {
    const auto& [t0, g0] = s.history[s.history.size() - 1 - std::min<size_t>(options_.window, s.history.size() - 1)];
    if (std::isfinite(g0) && s.trials > t0) backward = (g - g0) / double(s.trials - t0);
  }
  double forward = s.trials > 0 ? -g / double(s.trials) : -g;
  if (s.info.floor_us > 0) {
    double best_efficiency = 0;
    for (const State& o : state_)
      if (o.info.group == s.info.group && o.best && o.info.floor_us > 0)
        best_efficiency = std::max(best_efficiency, o.info.floor_us / *o.best);
    if (best_efficiency > 0) forward = std::min(forward, options_.beta * s.info.floor_us / best_efficiency - g);
  }
  return s.info.weight * (options_.alpha * backward + (1 - options_.alpha) * forward);
}

std::optional<size_t> TaskScheduler::next() {
  // Warm-up: one batch for every task, in order.
  while (warmup_next_ < state_.size()) {
    size_t i = warmup_next_++;
    if (!state_[i].finished) return i;
  }
  std::vector<size_t> live;
  for (size_t i = 0; i < state_.size(); ++i) {
    const State& s = state_[i];
    if (s.finished) continue;
    if (!s.best && s.failing_batches >= options_.max_failing_batches) continue;  // given up
    live.push_back(i);
  }
  if (live.empty()) return std::nullopt;
  // The live task with the fewest batches, the first of them on a tie.
  auto fewest_batches = [&](const std::vector<size_t>& among) {
    return *std::min_element(among.begin(), among.end(), [&](size_t a, size_t b) { return batches(a) < batches(b); });
  };
  if (options_.kind == SchedulerKind::kRoundRobin) return fewest_batches(live);
  std::vector<size_t> awake;
  for (size_t i : live)
    if (!resting(i)) awake.push_back(i);
  if (awake.empty()) return fewest_batches(live);
  live = std::move(awake);
  if (live.size() > 1 && std::bernoulli_distribution(options_.epsilon)(rng_))
    return live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng_)];
  size_t pick = live.front();
  double best_gradient = gradient(pick);
  for (size_t i : live) {
    double d = gradient(i);
    if (d < best_gradient) {
      best_gradient = d;
      pick = i;
    }
  }
  return pick;
}

}  // namespace tessera::search
