// Host math that the CPU reference of workloads (kernels/reference.cc) and the evaluation of
// graph nodes (graph/evaluation.cc) share, so an operator means the same in both: the matrix
// product (accumulated in double for the reference, which checks kernels, in f32 for graph
// nodes, which run whole models), GELU, the softmax of a row, and a layer normalisation's row
// statistics.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

namespace tessera::kernels::host {

/// C = op(A) op(B) for row-major f32 operands, accumulated and stored in T (float or double):
/// A is [M, K] (ta: stored [K, M]), B is [K, N] (tb: stored [N, K]), C is [M, N].
template <class T>
void gemm(const float* a, const float* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  using Row = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Col = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> cm(c, m, n);
  // A stored [K, M] row-major is [M, K] column-major; likewise B.
  auto product = [&](const auto& am, const auto& bm) {
    cm.noalias() = am.template cast<T>() * bm.template cast<T>();
  };
  if (!ta && !tb) product(Eigen::Map<const Row>(a, m, k), Eigen::Map<const Row>(b, k, n));
  else if (ta && !tb) product(Eigen::Map<const Col>(a, m, k), Eigen::Map<const Row>(b, k, n));
  else if (!ta && tb) product(Eigen::Map<const Row>(a, m, k), Eigen::Map<const Col>(b, k, n));
  else product(Eigen::Map<const Col>(a, m, k), Eigen::Map<const Col>(b, k, n));
}

/// GELU, the exact form x Phi(x), through erfc: 1 + erf(x / sqrt 2) cancels to nothing for x
/// below about -8 even in double, while erfc keeps every digit.
inline double gelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }

/// Softmax of the `n` values of `src` that lie `stride` apart, into the same places of `dst`:
/// the row's maximum subtracted, exponentials and their sum in double.
inline void softmax(const float* src, float* dst, int64_t n, int64_t stride) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) top = std::max(top, static_cast<double>(src[j * stride]));
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(src[j * stride]) - top);
  for (int64_t j = 0; j < n; ++j)
    dst[j * stride] = static_cast<float>(std::exp(static_cast<double>(src[j * stride]) - top) / sum);
}

/// A layer normalisation's statistics of one row of `n` values: its mean and 1 / sqrt(variance
/// + epsilon), the population variance, in double.
struct RowStats {
  double mean = 0, inv = 0;
};
inline RowStats layernorm_stats(const float* row, int64_t n, double epsilon) {
  double mean = 0, var = 0;
  for (int64_t j = 0; j < n; ++j) mean += row[j];
  mean /= static_cast<double>(n);
  for (int64_t j = 0; j < n; ++j) var += (row[j] - mean) * (row[j] - mean);
  var /= static_cast<double>(n);
  return {mean, 1.0 / std::sqrt(var + epsilon)};
}

}  // namespace tessera::kernels::host
