// Model-guided evolutionary search over a family's valid space (search/evolve).
//
// Each generation breeds children from the measured schedules (parents drawn by rank of their
// measured time, the best most often) and from construction's seeds: mutation changes one or
// two knobs to another value of their domain, crossover takes each knob from one of two
// parents of the same family. Invalid children and schedules already measured or proposed are
// dropped; the cost model scores the rest, and a batch takes the best predicted ones, except
// that each slot is, with probability epsilon, a random child instead (exploration). Results
// are fed back with observe(); a learned model retrains between batches (the tuner does that).
#pragma once

#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/measurement.h"
#include "costmodel/cost_model.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

struct EvolveOptions {
  int children = 1024;     ///< children bred (and scored) per generation
  double epsilon = 0.1;    ///< share of a batch drawn at random from the children
  int seeds = 16;          ///< construction's top candidates that seed the first generation
  uint64_t seed = 1;       ///< random seed (the same seed makes the same choices)
};

class Evolution {
 public:
  /// Searches `w` over every registered family that supports it (a workload no family
  /// supports is a UserError).
  Evolution(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
            costmodel::CostModel& model, EvolveOptions options = {});

  /// Only these schedules may be proposed (e.g. the ones a replay holds); default: any valid
  /// one. A replay's few recorded schedules are rarely a mutation apart, so each generation
  /// then also offers every allowed schedule not yet measured to the model.
  void restrict_to(std::span<const Schedule> allowed);
  /// A result (from the database or a batch just measured): never proposed again, and an ok
  /// one becomes a parent.
  void observe(const Schedule& s, const Measurement& m);
  /// Up to `n` new candidates to measure, best predicted first; empty when nothing is left.
  std::vector<Candidate> propose(int n);

  /// Fastest correct time observed, if any.
  std::optional<double> best_us() const;

 private:
  std::optional<Schedule> mutate(const Schedule& parent);
  std::optional<Schedule> crossover(const Schedule& a, const Schedule& b);
  bool admissible(const Schedule& s) const;
  const Schedule& pick_parent();

  Workload workload_;
  const kernels::FamilyRegistry& families_;
  HardwareSpec hw_;
  costmodel::CostModel& model_;
  EvolveOptions options_;
  std::mt19937_64 rng_;
  std::vector<Schedule> seeds_;                       ///< construction's best, for the first generations
  std::vector<std::pair<double, Schedule>> parents_;  ///< measured ok: (time, schedule), sorted
  std::set<std::string> done_;                        ///< measured or proposed
  std::optional<std::set<std::string>> allowed_;
  std::vector<Schedule> allowed_list_;
};

}  // namespace tessera::search
