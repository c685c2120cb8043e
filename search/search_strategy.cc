#include "search/search_strategy.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>

#include "core/hash.h"
#include "search/evolve.h"
#include "search/tile.h"

namespace tessera::search {
namespace {

// construct, exhaustive, random: a ranked list of candidates, less what the database holds,
// proposed in order.
class ListStrategy : public SearchStrategy {
 public:
  ListStrategy(const StrategyContext& c, const Workload& w, const std::vector<db::StoredRecord>& known) {
    std::vector<Candidate> list = ranked_list(c, w);
    if (!list.empty()) predicted_best_ = list.front();
    std::set<std::string> done_keys;
    for (const db::StoredRecord& r : known) {
      bool unmeasured = r.record.measurement.status == Status::kUnmeasured;
      // A prediction does not stand in for a measurement; a measurement ends the schedule.
      if (!c.measuring || !unmeasured) done_keys.insert(r.record.schedule.key());
    }
    const int cap = c.trials > 0                         ? c.trials
                    : c.strategy == Strategy::kConstruct ? c.top_k
                                                         : static_cast<int>(list.size());
    cap_ = cap;
    // The held candidates count against the cap: with --trials below construction's top-k, a
    // rerun would otherwise go on down the list and measure `trials` more each time.
    for (Candidate& cand : list) {
      if (static_cast<int>(todo_.size()) + already_ >= cap) break;
      if (done_keys.count(cand.schedule.key())) {
        ++already_;
        continue;
      }
      todo_.push_back(std::move(cand));
    }
    limit_ = static_cast<int>(todo_.size());
  }

  std::vector<Candidate> propose(int n) override {
    size_t end = std::min(todo_.size(), cursor_ + static_cast<size_t>(std::max(n, 0)));
    std::vector<Candidate> out(todo_.begin() + static_cast<std::ptrdiff_t>(cursor_),
                               todo_.begin() + static_cast<std::ptrdiff_t>(end));
    cursor_ = end;
    return out;
  }
  void observe(std::span<const Candidate>, std::span<const Measurement>) override {}

 private:
  // Construction's top-k; or the whole valid space, with a trial budget below its size an
  // evenly spaced (exhaustive) or seeded uniform (random) sample of it in enumeration order
  // (not the model's favourites: this is the yardstick), best predicted first.
  std::vector<Candidate> ranked_list(const StrategyContext& c, const Workload& w) {
    if (c.strategy == Strategy::kConstruct) {
      ConstructOptions co;
      co.top_k = c.top_k;
      Construction built = construct(w, c.families, c.spec, c.model, co);
      ranked_ = static_cast<int>(built.ranked);
      return std::move(built.candidates);
    }
    std::vector<Candidate> all = rank_all(w, c.families, c.spec, c.model, /*sorted=*/false);
    ranked_ = static_cast<int>(all.size());
    if (c.trials > 0 && all.size() > static_cast<size_t>(c.trials)) {
      std::vector<Candidate> sample;
      if (c.strategy == Strategy::kRandom) {
        // Partial Fisher-Yates: the first `trials` of a seeded shuffle.
        std::mt19937_64 rng(c.seed ^ stable_hash(w.key()));
        for (size_t i = 0; i < static_cast<size_t>(c.trials); ++i) {
          size_t j = i + static_cast<size_t>(rng() % (all.size() - i));
          std::swap(all[i], all[j]);
          sample.push_back(all[i]);
        }
      } else {
        for (int i = 0; i < c.trials; ++i)
          sample.push_back(all[static_cast<size_t>(double(i) * double(all.size()) / double(c.trials))]);
      }
      all = std::move(sample);
    }
    std::stable_sort(all.begin(), all.end(),
                     [](const Candidate& a, const Candidate& b) { return *a.predicted_us < *b.predicted_us; });
    return all;
  }

  std::vector<Candidate> todo_;
  size_t cursor_ = 0;
};

// evolve: model-guided evolution, which has no fixed candidate list to resume along: what it
// proposes depends on everything measured, so every schedule the database holds for the
// workload and target is a trial spent. A rerun of a finished job then measures nothing, a
// killed one only the remainder.
class EvolveStrategy : public SearchStrategy {
 public:
  EvolveStrategy(const StrategyContext& c, const Workload& w, const std::vector<db::StoredRecord>& known) {
    EvolveOptions eo;
    eo.seed = c.seed;
    eo.epsilon = c.epsilon;
    evolution_ = std::make_unique<Evolution>(w, c.families, c.spec, c.guide(), eo);
    if (c.allowed) {
      std::vector<Schedule> schedules = c.allowed(w);
      evolution_->restrict_to(schedules);
      ranked_ = static_cast<int>(schedules.size());
    }
    std::set<std::string> held;
    for (const db::StoredRecord& r : known) {
      if (c.measuring && r.record.measurement.status == Status::kUnmeasured) continue;
      evolution_->observe(r.record.schedule, r.record.measurement);
      held.insert(r.record.schedule.key());
    }
    already_ = static_cast<int>(held.size());
    // Without a cap of its own, a workload may take the whole job budget if the scheduler says so.
    cap_ = c.trials > 0 ? c.trials : c.total_trials > 0 ? c.total_trials : 64;
    limit_ = std::max(0, cap_ - already_);
  }

  std::vector<Candidate> propose(int n) override { return evolution_->propose(n); }
  void observe(std::span<const Candidate> candidates, std::span<const Measurement> measurements) override {
    for (size_t i = 0; i < candidates.size() && i < measurements.size(); ++i)
      evolution_->observe(candidates[i].schedule, measurements[i]);
  }

 private:
  std::unique_ptr<Evolution> evolution_;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_strategy(const StrategyContext& context, const Workload& w,
                                              const std::vector<db::StoredRecord>& known) {
  if (context.strategy == Strategy::kEvolve) return std::make_unique<EvolveStrategy>(context, w, known);
  return std::make_unique<ListStrategy>(context, w, known);
}

}  // namespace tessera::search
