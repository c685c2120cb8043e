// Calibration report: how a model's predictions rank measured records, per workload and
// target (the groups a tuner chooses within), with the overall figures.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/measurement.h"

namespace tessera::costmodel {

struct GroupEval {
  std::string workload, target;  ///< workload key, target fingerprint
  int records = 0;               ///< correct (ok) records in the group
  double spearman = 0, pairwise = 0, top1 = 0, top5 = 0;
  double best_us = 0;            ///< fastest measured
  double predicted_pick_us = 0;  ///< measured time of the model's first pick
};

struct EvalReport {
  std::vector<GroupEval> groups;  ///< groups with at least two ok records
  int records = 0;
  double spearman = 0, pairwise = 0;  ///< means over groups
  double top1 = 0, top5 = 0;          ///< TenSet: sum of best / sum of best among the top-k picks
  Json to_json() const;
  /// "pairwise=0.87 spearman=0.91 top1=0.93 top5=0.98 groups=12 records=3400"
  std::string summary_line() const;
};

/// The (workload, schedule) of each record, as candidates for a model to predict.
std::vector<Candidate> candidates_of(std::span<const Record> records);

/// Predicted times (lower is faster) for records of one workload and target.
using Predictor = std::function<std::vector<double>(std::span<const Record>)>;
/// Makes a predictor from training records (trains a model on them).
using Trainer = std::function<Predictor(std::span<const Record> training)>;

/// Groups `records` (ok ones only) by workload and target and scores `predict`, which
/// returns one predicted time per record of a group.
EvalReport evaluate(std::span<const Record> records, const Predictor& predict);

/// The overall figures of groups scored separately (what evaluate() reports of them together):
/// for callers that score one group at a time to bound memory.
EvalReport combine(std::vector<GroupEval> groups);

/// The fold (0..folds-1) of each workload key of `records`: the keys in the order of their
/// stable hash, dealt round-robin, so the split does not depend on the records' order.
std::map<std::string, int> assign_folds(std::span<const Record> records, int folds);

/// Held-out evaluation: the workloads are dealt into `folds` folds (in the order of a stable
/// hash of their keys, so the split does not depend on the database's order), and each
/// fold's records are ranked by a predictor trained on the other folds' records only.
EvalReport cross_validate(std::span<const Record> records, int folds, const Trainer& train);

}  // namespace tessera::costmodel
