// SearchStrategy: one workload's search as the tuning job (search/tuner) drives it. The job
// asks propose(n) for up to n candidates to measure next and tells observe() what they
// measured, batch after batch, until propose returns nothing or the budget is spent.
//
// make_strategy builds one from what the database already holds for the workload and target,
// so a job resumes where it stopped: the list strategies (construct, exhaustive, random) skip
// the candidates it holds and count them against their budget; evolve observes every schedule
// it holds and counts them all.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/hardware.h"
#include "core/measurement.h"
#include "costmodel/cost_model.h"
#include "costmodel/learned.h"
#include "db/database.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

/// construct: Roller construction's top-k; exhaustive: the whole valid space (or an evenly
/// spaced sample of `trials` schedules from it); random: a uniform sample of `trials`
/// schedules of the valid space drawn with `seed` (the same seed draws the same sample, so
/// a job resumes), for datasets.
/// evolve: model-guided evolutionary search (search/evolve) for `trials` measurements
/// (default 64), guided by the combined learned model, which retrains every
/// `retrain_every` new measurements and is stored in the database after the job.
enum class Strategy { kConstruct, kExhaustive, kRandom, kEvolve };

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  /// Up to `n` candidates to measure next (the list strategies: best predicted first); empty
  /// when the search has nothing left.
  virtual std::vector<Candidate> propose(int n) = 0;
  /// What the candidates of the last propose() measured, in the same order.
  virtual void observe(std::span<const Candidate> candidates, std::span<const Measurement> measurements) = 0;

  /// Valid schedules the strategy ranked (evolve: the ones it may propose, when restricted).
  int ranked() const { return ranked_; }
  /// What the database held of the workload's budget (skipped, and counted against it).
  int already() const { return already_; }
  /// The workload's budget, what the database holds included.
  int cap() const { return cap_; }
  /// Candidates it proposes at most in this job: its budget less what is held.
  int limit() const { return limit_; }
  /// The model's first choice, when the strategy ranks a list.
  const std::optional<Candidate>& predicted_best() const { return predicted_best_; }

 protected:
  int ranked_ = 0, already_ = 0, cap_ = 0, limit_ = 0;
  std::optional<Candidate> predicted_best_;
};

/// What a strategy needs besides the workload.
struct StrategyContext {
  StrategyContext(const kernels::FamilyRegistry& f, const HardwareSpec& hw, costmodel::CostModel& m)
      : families(f), spec(hw), model(m) {}

  const kernels::FamilyRegistry& families;
  const HardwareSpec& spec;
  costmodel::CostModel& model;   ///< ranks construction and the list strategies (the analytic model)
  Strategy strategy = Strategy::kConstruct;
  int top_k = 10;                ///< construct: candidates construction keeps
  int trials = 0;                ///< per-workload budget, held records included (0: the strategy's default)
  int total_trials = 0;          ///< a job budget (evolve takes it as its cap when trials is 0)
  uint64_t seed = 1;             ///< random, evolve
  double epsilon = 0.1;          ///< evolve: share of each batch chosen at random
  bool measuring = true;         ///< a runner measures: held predictions do not count as done
  std::function<costmodel::LearnedModel&()> guide;  ///< evolve's model
  /// evolve: the schedules it may propose for a workload (a replay's recorded ones); unset: any valid one.
  std::function<std::vector<Schedule>(const Workload&)> allowed;
};

/// The strategy `context` names for `w`, given the records `known` the database holds for
/// the workload and the job's target.
std::unique_ptr<SearchStrategy> make_strategy(const StrategyContext& context, const Workload& w,
                                              const std::vector<db::StoredRecord>& known);

}  // namespace tessera::search
