// The learned cost model: XGBoost (C API) over the versioned features of costmodel/features,
// trained on one target's measured records.
//
// Two objectives: rank:pairwise with the records of each workload as a query group (only the
// order within a workload matters to a tuner), and a regression on log2 time to compare. With
// the analytic prior (the "combined" model) boosting starts from the analytic model's log2
// estimate as the base margin, so the trees learn its correction and an untrained or thinly
// trained model ranks like the analytic one; without it ("learned"), from zero.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "costmodel/cost_model.h"
#include "costmodel/evaluate.h"
#include "costmodel/features.h"
#include "kernels/kernel_family.h"

namespace tessera::costmodel {

enum class Objective { kRankPairwise, kRegression };

struct LearnedOptions {
  Objective objective = Objective::kRankPairwise;
  bool analytic_prior = true;  ///< start from the analytic model's estimate (the combined model)
  int rounds = 200;            ///< boosting rounds
  int max_depth = 8;           // 8 beat 4 and 6 on held-out top-1 on the H100 dataset (model eval)
  double eta = 0.1;            ///< learning rate
  int threads = 0;             ///< XGBoost threads (0: its default, every core)
  uint64_t seed = 0;
  int min_records = 32;        ///< fewer ok records than this: stay untrained (the prior, or analytic, ranks)
  int retrain_every = 64;      ///< update(): retrain after this many new ok records

  /// "xgb_rank+analytic", "xgb_regression": the name models are stored under.
  std::string kind() const;
  /// Parses kind(); a bad name is a UserError.
  static LearnedOptions from_kind(const std::string& kind);
};

class LearnedModel : public CostModel {
 public:
  LearnedModel(const kernels::FamilyRegistry& families, HardwareSpec hw, LearnedOptions options = {});
  ~LearnedModel() override;
  LearnedModel(LearnedModel&&) noexcept;
  LearnedModel& operator=(LearnedModel&&) noexcept;

  /// Trains from scratch on the ok records among `records` (other statuses are ignored),
  /// grouped by workload. With fewer than options.min_records the model stays untrained.
  void train(std::span<const Record> records);
  bool trained() const { return booster_ != nullptr; }
  int trained_records() const { return trained_records_; }

  /// Lower is faster. Trained: with the analytic prior or the regression objective, an
  /// estimated time [us]; the pairwise ranker alone gives 2^-score, a ranking score only.
  /// Untrained: the analytic model's estimate.
  std::vector<double> predict(std::span<const Candidate> candidates) override;
  /// Keeps the records and retrains on everything kept after every options.retrain_every new
  /// ok records (online learning during a tuning job). True if it retrained.
  bool learn(std::span<const Record> records);
  void update(std::span<const Record> records) override { learn(records); }
  /// Keeps the ok records for later retraining without counting them as new (records the
  /// current model has already seen, e.g. the database's at the start of a job).
  void remember(std::span<const Record> records);

  /// XGBoost's own model format (UBJSON bytes), for the database's models table.
  std::string serialize() const;
  /// A model serialize() wrote, with the options of its kind. Bad bytes are a UserError.
  static LearnedModel deserialize(const kernels::FamilyRegistry& families, HardwareSpec hw, const std::string& kind,
                                  const std::string& bytes);

  const LearnedOptions& options() const { return options_; }

 private:
  std::vector<float> margins(std::span<const Candidate> candidates, const std::vector<float>& rows) const;

  const kernels::FamilyRegistry* families_;
  LearnedOptions options_;
  FeatureExtractor features_;
  struct BoosterDeleter {
    void operator()(void* booster) const;  ///< XGBoosterFree
  };
  std::unique_ptr<void, BoosterDeleter> booster_;  ///< BoosterHandle; null: untrained
  int trained_records_ = 0;
  std::vector<Record> kept_;  ///< ok records seen by learn()
  int new_since_training_ = 0;
};

/// Held-out (by workload) evaluation of learned models with `options`: cross_validate() with
/// a model trained on each fold's complement.
EvalReport cross_validate_learned(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                  const HardwareSpec& hw, const LearnedOptions& options, int folds);

}  // namespace tessera::costmodel
