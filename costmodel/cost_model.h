// CostModel: predicts how long candidates take, and learns from measured records.
#pragma once

#include <span>
#include <vector>

#include "core/measurement.h"
#include "core/schedule.h"

namespace tessera::costmodel {

/// A model that ranks candidates. Implementations: analytic, XGBoost, their combination.
class CostModel {
 public:
  virtual ~CostModel() = default;
  /// One score per candidate, same order; lower is faster [estimated us].
  virtual std::vector<double> predict(std::span<const Candidate> candidates) = 0;
  /// Learns from measured records (a model that does not learn ignores them).
  virtual void update(std::span<const Record> records) = 0;
};

}  // namespace tessera::costmodel
