#include "search/evolve.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/hash.h"
#include "costmodel/analytic.h"
#include "search/tile.h"

namespace tessera::search {

Evolution::Evolution(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
                     costmodel::CostModel& model, EvolveOptions options)
    : workload_(w),
      families_(families),
      hw_(hw),
      model_(model),
      options_(options),
      rng_(options.seed ^ stable_hash(w.key())) {
  // Seeds: construction's top candidates by the analytic model (one per block shape first).
  costmodel::AnalyticModel analytic(families, hw);
  ConstructOptions co;
  co.top_k = std::max(1, options_.seeds);
  for (Candidate& c : construct(w, families, hw, analytic, co).candidates) seeds_.push_back(std::move(c.schedule));
}

void Evolution::restrict_to(std::span<const Schedule> allowed) {
  allowed_.emplace();
  for (const Schedule& s : allowed) allowed_->insert(s.key());
  allowed_list_.assign(allowed.begin(), allowed.end());
  // Seeds outside the allowed set cannot be proposed; they still breed children.
}

void Evolution::observe(const Schedule& s, const Measurement& m) {
  done_.insert(s.key());
  if (m.status == Status::kOk && m.median_us > 0) {
    auto at = std::lower_bound(parents_.begin(), parents_.end(), std::make_pair(m.median_us, Schedule{}),
                               [](const auto& a, const auto& b) { return a.first < b.first; });
    parents_.insert(at, {m.median_us, s});
  }
}

std::optional<double> Evolution::best_us() const {
  if (parents_.empty()) return std::nullopt;
  return parents_.front().first;
}

bool Evolution::admissible(const Schedule& s) const {
  if (done_.count(s.key())) return false;
  if (allowed_ && !allowed_->count(s.key())) return false;
  const kernels::KernelFamily* f = families_.find(s.family);
  return f && kernels::has_every_knob(*f, s, workload_, hw_) && !f->validate(s, workload_, hw_);
}

// Parents by rank: the i-th fastest measured with weight 1/(i+1), so the best breed most
// while the rest keep the population diverse; before anything is measured, the seeds.
const Schedule& Evolution::pick_parent() {
  bool from_seeds = parents_.empty() || (!seeds_.empty() && std::uniform_real_distribution<>(0, 1)(rng_) < 0.2);
  if (from_seeds) return seeds_[std::uniform_int_distribution<size_t>(0, seeds_.size() - 1)(rng_)];
  std::vector<double> weights;
  for (size_t i = 0; i < parents_.size(); ++i) weights.push_back(1.0 / double(i + 1));
  return parents_[std::discrete_distribution<size_t>(weights.begin(), weights.end())(rng_)].second;
}

std::optional<Schedule> Evolution::mutate(const Schedule& parent) {
  const kernels::KernelFamily* f = families_.find(parent.family);
  if (!f) return std::nullopt;
  std::vector<kernels::KnobDomain> domains = f->space(workload_, hw_);
  Schedule child = parent;
  int changes = std::uniform_int_distribution<int>(1, 2)(rng_);
  for (int c = 0; c < changes; ++c) {
    size_t k = std::uniform_int_distribution<size_t>(0, domains.size() - 1)(rng_);
    const std::vector<int64_t>& values = domains[k].values;
    if (values.size() < 2 || k >= child.knobs.size()) continue;
    child.knobs[k].second = values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng_)];
  }
  return child;
}

std::optional<Schedule> Evolution::crossover(const Schedule& a, const Schedule& b) {
  if (a.family != b.family || a.knobs.size() != b.knobs.size()) return std::nullopt;
  Schedule child = a;
  for (size_t k = 0; k < child.knobs.size(); ++k)
    if (std::bernoulli_distribution(0.5)(rng_)) child.knobs[k].second = b.knobs[k].second;
  return child;
}

std::vector<Candidate> Evolution::propose(int n) {
  std::vector<Candidate> pool;
  std::set<std::string> in_pool;
  auto add = [&](const std::optional<Schedule>& s) {
    if (s && !in_pool.count(s->key()) && admissible(*s)) {
      in_pool.insert(s->key());
      pool.push_back({workload_, *s, std::nullopt});
    }
  };
  for (const Schedule& s : seeds_) add(s);
  for (const Schedule& s : allowed_list_) add(s);
  if (seeds_.empty() && parents_.empty() && pool.empty()) return {};
  for (int i = 0; i < options_.children; ++i) {
    bool cross = parents_.size() + seeds_.size() >= 2 && std::bernoulli_distribution(0.3)(rng_);
    add(cross ? crossover(pick_parent(), pick_parent()) : mutate(pick_parent()));
  }
  if (pool.empty()) return {};
  std::vector<double> predicted = model_.predict(pool);
  for (size_t i = 0; i < pool.size(); ++i) pool[i].predicted_us = predicted[i];
  std::vector<size_t> order(pool.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return predicted[a] < predicted[b]; });
  std::vector<Candidate> out;
  std::vector<bool> taken(pool.size(), false);
  size_t next_best = 0;
  while (static_cast<int>(out.size()) < n && out.size() < pool.size()) {
    size_t pick;
    if (std::bernoulli_distribution(options_.epsilon)(rng_)) {
      std::vector<size_t> free;
      for (size_t i = 0; i < pool.size(); ++i)
        if (!taken[i]) free.push_back(i);
      pick = free[std::uniform_int_distribution<size_t>(0, free.size() - 1)(rng_)];
    } else {
      while (taken[order[next_best]]) ++next_best;
      pick = order[next_best];
    }
    taken[pick] = true;
    done_.insert(pool[pick].schedule.key());
    out.push_back(pool[pick]);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Candidate& a, const Candidate& b) { return *a.predicted_us < *b.predicted_us; });
  return out;
}

}  // namespace tessera::search
