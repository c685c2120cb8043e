#include "costmodel/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace tessera::costmodel {
namespace {

std::vector<double> ranks(std::span<const double> v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    double avg = (double(i) + double(j)) / 2.0 + 1.0;
    for (size_t t = i; t <= j; ++t) r[order[t]] = avg;
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman(std::span<const double> predicted, std::span<const double> measured) {
  TESSERA_CHECK(predicted.size() == measured.size(), "spearman: sizes differ");
  if (predicted.size() < 2) return 0;
  std::vector<double> a = ranks(predicted), b = ranks(measured);
  double ma = std::accumulate(a.begin(), a.end(), 0.0) / double(a.size());
  double mb = std::accumulate(b.begin(), b.end(), 0.0) / double(b.size());
  double cov = 0, va = 0, vb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    cov += (a[i] - ma) * (b[i] - mb);
    va += (a[i] - ma) * (a[i] - ma);
    vb += (b[i] - mb) * (b[i] - mb);
  }
  return va > 0 && vb > 0 ? cov / std::sqrt(va * vb) : 0;
}

double pairwise_accuracy(std::span<const double> predicted, std::span<const double> measured) {
  TESSERA_CHECK(predicted.size() == measured.size(), "pairwise_accuracy: sizes differ");
  double right = 0, pairs = 0;
  for (size_t i = 0; i < measured.size(); ++i)
    for (size_t j = i + 1; j < measured.size(); ++j) {
      if (measured[i] == measured[j]) continue;
      pairs += 1;
      if (predicted[i] == predicted[j]) right += 0.5;
      else if ((predicted[i] < predicted[j]) == (measured[i] < measured[j])) right += 1;
    }
  return pairs > 0 ? right / pairs : 1.0;
}

double top_k_score(std::span<const double> predicted, std::span<const double> measured, int k) {
  TESSERA_CHECK(predicted.size() == measured.size() && !measured.empty(), "top_k_score: bad sizes");
  std::vector<size_t> order(predicted.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return predicted[a] < predicted[b]; });
  double best = *std::min_element(measured.begin(), measured.end());
  double best_in_top = measured[order[0]];
  for (size_t i = 0; i < order.size() && i < static_cast<size_t>(k); ++i) best_in_top = std::min(best_in_top, measured[order[i]]);
  return best / best_in_top;
}

}  // namespace tessera::costmodel
