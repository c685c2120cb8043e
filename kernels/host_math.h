// Host math that the CPU reference of workloads (kernels/reference.cc) and the evaluation of
// graph nodes (graph/evaluation.cc) share, so an operator means the same in both: the matrix
// product and the convolution (accumulated in double for the reference, which checks kernels,
// in f32 for graph nodes, which run whole models), GELU, the softmax of a row, and a layer
// normalisation's row statistics.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

namespace tessera::kernels::host {

/// Whether this thread is one of parallel_chunks' workers (which then run their bodies serially).
inline bool& in_parallel_chunks() {
  static thread_local bool inside = false;
  return inside;
}

/// Runs body(begin, end) over [0, count) in up to one chunk per core, each on a thread of its
/// own, or body(0, count) at once where there is one core or the caller is already one of these
/// workers. Each chunk must write its own outputs.
template <class Body>
void parallel_chunks(int64_t count, const Body& body) {
  const int64_t threads =
      in_parallel_chunks() ? 1 : std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(count, 1));
  if (threads <= 1) {
    body(int64_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      in_parallel_chunks() = true;
      body(count * t / threads, count * (t + 1) / threads);
    });
  for (std::thread& th : pool) th.join();
}

/// C = op(A) op(B) for row-major f32 operands, accumulated and stored in T (float or double):
/// A is [M, K] (ta: stored [K, M]), B is [K, N] (tb: stored [N, K]), C is [M, N]. A large
/// product is split by rows of C across the cores (a batch-32 model's reference takes minutes
/// on one).
template <class T>
void gemm(const float* a, const float* b, T* c, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  using Row = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Col = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> cm(c, m, n);
  // A stored [K, M] row-major is [M, K] column-major; likewise B.
  auto product = [&](const auto& am, const auto& bm) {
    constexpr int64_t kRowsPerChunk = 16, kParallelFlops = int64_t{1} << 24;
    if (m < 2 * kRowsPerChunk || m * n * k < kParallelFlops) {
      cm.noalias() = am.template cast<T>() * bm.template cast<T>();
      return;
    }
    const int64_t chunks = m / kRowsPerChunk;  // the last one also takes the rows left over
    parallel_chunks(chunks, [&](int64_t first, int64_t last) {
      const int64_t r0 = first * kRowsPerChunk, r1 = last == chunks ? m : last * kRowsPerChunk;
      if (r1 > r0)
        cm.middleRows(r0, r1 - r0).noalias() = am.middleRows(r0, r1 - r0).template cast<T>() * bm.template cast<T>();
    });
  };
  if (!ta && !tb) product(Eigen::Map<const Row>(a, m, k), Eigen::Map<const Row>(b, k, n));
  else if (ta && !tb) product(Eigen::Map<const Col>(a, m, k), Eigen::Map<const Row>(b, k, n));
  else if (!ta && tb) product(Eigen::Map<const Row>(a, m, k), Eigen::Map<const Col>(b, k, n));
  else product(Eigen::Map<const Col>(a, m, k), Eigen::Map<const Col>(b, k, n));
}

/// A sliding window (convolutions, pools) over 1 to 3 spatial dimensions, stored as 3 with
/// leading unit dimensions so one loop nest covers them all.
struct ConvWindow {
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, stride{1, 1, 1}, dilation{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0}, pad_end{0, 0, 0}, out{1, 1, 1};

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
};

/// The windows of `channels` planes of `x` (each in_size() values) as columns: row (channel,
/// tap) of `col` holds, for every output position, the input value that tap reads (0 in the
/// padding).
inline void im2col(const float* x, int64_t channels, const ConvWindow& w, float* col) {
  const auto &in = w.in, &out = w.out;
  int64_t out_size = w.out_size();
  float* dst = col;
  for (int64_t ch = 0; ch < channels; ++ch)
    for (int64_t kd = 0; kd < w.kernel[0]; ++kd)
      for (int64_t kh = 0; kh < w.kernel[1]; ++kh)
        for (int64_t kw = 0; kw < w.kernel[2]; ++kw, dst += out_size)
          for (int64_t od = 0; od < out[0]; ++od) {
            int64_t zd = od * w.stride[0] - w.pad_begin[0] + kd * w.dilation[0];
            for (int64_t oh = 0; oh < out[1]; ++oh) {
              float* line = dst + (od * out[1] + oh) * out[2];
              int64_t zh = oh * w.stride[1] - w.pad_begin[1] + kh * w.dilation[1];
              if (zd < 0 || zd >= in[0] || zh < 0 || zh >= in[1]) {
                std::fill(line, line + out[2], 0.0f);
                continue;
              }
              const float* src = x + ((ch * in[0] + zd) * in[1] + zh) * in[2];
              int64_t zw = kw * w.dilation[2] - w.pad_begin[2];
              for (int64_t ow = 0; ow < out[2]; ++ow, zw += w.stride[2])
                line[ow] = zw >= 0 && zw < in[2] ? src[zw] : 0.0f;
            }
          }
}

/// A grouped convolution, accumulated and stored in T: x is [batch][channels][in] (NC + 1 to 3
/// spatial dimensions), w is [m][channels / group][taps], y is [batch][m][out]. Each group's
/// filters times its im2col columns (a pointwise window reads x as they are).
template <class T>
void conv(const float* x, const float* w, T* y, int64_t batch, int64_t channels, int64_t m, int64_t group,
          const ConvWindow& win) {
  const int64_t cg = channels / group, mg = m / group;
  const int64_t in_size = win.in_size(), out_size = win.out_size(), rows = cg * win.kernel_size();
  bool pointwise = win.kernel_size() == 1;
  for (size_t d = 0; d < 3; ++d)
    pointwise = pointwise && win.stride[d] == 1 && win.pad_begin[d] == 0 && win.pad_end[d] == 0;
  std::vector<float> col(pointwise ? 0 : static_cast<size_t>(rows * out_size));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t g = 0; g < group; ++g) {
      const float* xg = x + (b * channels + g * cg) * in_size;
      if (!pointwise) im2col(xg, cg, win, col.data());
      gemm<T>(w + g * mg * rows, pointwise ? xg : col.data(), y + (b * m + g * mg) * out_size, mg, out_size, rows, false,
              false);
    }
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
