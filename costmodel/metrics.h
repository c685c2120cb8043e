// How well a model ranks: per workload, between predicted and measured times.
#pragma once

#include <span>
#include <vector>

namespace tessera::costmodel {

/// Spearman rank correlation (average ranks for ties); 0 for fewer than two points or no
/// variation.
double spearman(std::span<const double> predicted, std::span<const double> measured);

/// Fraction of pairs with different measured times that the prediction orders the same way
/// (a predicted tie counts half); 1 when no pair differs.
double pairwise_accuracy(std::span<const double> predicted, std::span<const double> measured);

/// TenSet's top-k score for one workload: the best measured time divided by the best
/// measured time among the k lowest predictions (1.0: the model's top k holds the best).
double top_k_score(std::span<const double> predicted, std::span<const double> measured, int k);

}  // namespace tessera::costmodel
