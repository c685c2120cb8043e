// The generic kernels of a graph run (kernels/graph_ops.h) on a real GPU (label gpu; skipped
// without one): each kind runs on inputs with irregular strides and its output, poisoned
// (0xFF bytes) before the run, is compared with a host computation written here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "kernels/graph_ops.h"
#include "tests/kernels/graph_ops_util.h"
#include "kernels/reference.h"
#include "measure/devices.h"
#include "measure/launch.h"

namespace tessera::kernels {
namespace {

using S = StoreType;

using testing::dense;
using testing::window;

template <class T>
std::vector<uint8_t> bytes_of(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
  return b;
}

template <class T>
std::vector<T> values_of(const std::vector<uint8_t>& b) {
  std::vector<T> v(b.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * sizeof(T));
  return v;
}

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> h;
  for (float x : v) h.push_back(f16_bits(x));
  return h;
}

std::vector<float> from_f16(const std::vector<uint16_t>& h) {
  std::vector<float> v;
  for (uint16_t x : h) v.push_back(f16_value(x));
  return v;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -4, float hi = 4) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Values exactly representable in f16, so a host computation in float sees what the GPU reads.
std::vector<float> f16_floats(size_t n, uint32_t seed) {
  return from_f16(to_f16(random_floats(n, seed)));
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= tol * std::max(1.0, std::fabs(static_cast<double>(want[i]))))) {
      if (++bad <= 5) ADD_FAILURE() << "element " << i << ": got " << got[i] << ", want " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << bad << " of " << want.size() << " elements off";
}

class GraphOpsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    scan_ = measure::scan_devices();
    if (scan_.devices.empty()) GTEST_SKIP() << "no GPU: " << scan_.reason;
    const measure::Device& dev = scan_.devices.front();
    options_.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
    options_.headers = device_headers();
  }

  // Runs `k` once with inputs in0.. holding `inputs` and the output starting as `out` (its
  // final contents are returned; empty on a failure, which is reported).
  std::vector<uint8_t> run(const GenericKernel& k, const std::vector<std::vector<uint8_t>>& inputs,
                           const std::vector<uint8_t>& out) {
    CompiledKernel built = Builder(options_).compile(k.source);
    if (built.status != Status::kOk) {
      ADD_FAILURE() << k.label << ": compile error: " << built.error;
      return {};
    }
    std::vector<measure::DeviceBuffer> buffers;
    void* pointers[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
    for (size_t j = 0; j < inputs.size(); ++j) {
      buffers.emplace_back(std::max<size_t>(inputs[j].size(), 1));
      buffers.back().upload(inputs[j]);
      pointers[j] = buffers.back().data();
    }
    measure::DeviceBuffer y(std::max<size_t>(out.size(), 1));
    y.upload(out);
    pointers[4] = y.data();
    GenericParams params = k.params;
    std::vector<void*> args = {&pointers[0], &pointers[1], &pointers[2], &pointers[3], &pointers[4], &params};
    measure::LaunchOutcome outcome = measure::launch_once(built, k.source, args);
    if (outcome.status != Status::kOk) {
      ADD_FAILURE() << k.label << ": " << status_name(outcome.status) << ": " << outcome.error;
      return {};
    }
    std::vector<uint8_t> got = y.download();
    got.resize(out.size());
    return got;
  }

  // `run` with an output of `bytes` poisoned bytes (NaN in every float format).
  std::vector<uint8_t> run_poisoned(const GenericKernel& k, const std::vector<std::vector<uint8_t>>& inputs,
                                    size_t bytes) {
    return run(k, inputs, std::vector<uint8_t>(bytes, 0xFF));
  }

  measure::DeviceScan scan_;
  BuildOptions options_;
};

// y = transpose(x, perm (0, 2, 3, 1)) in f16, then back to f32: y[a, c, d, b] = x[a, b, c, d].
TEST_F(GraphOpsGpu, TransposeToF16AndBack) {
  const std::vector<int64_t> xs = {2, 3, 4, 5}, ys = {2, 4, 5, 3};
  std::vector<float> x = random_floats(120, 1);
  GenericKernel there = strided_copy(S::kF32, S::kF16, ys, StridedRef{0, {60, 5, 1, 20}}, dense(ys));
  std::vector<uint16_t> y = values_of<uint16_t>(run_poisoned(there, {bytes_of(x)}, 240));
  ASSERT_EQ(y.size(), 120u);
  std::vector<uint16_t> want;
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 4; ++c)
      for (int d = 0; d < 5; ++d)
        for (int b = 0; b < 3; ++b)
          want.push_back(f16_bits(x[static_cast<size_t>(a * 60 + b * 20 + c * 5 + d)]));
  EXPECT_EQ(y, want);
  GenericKernel back = strided_copy(S::kF16, S::kF32, xs, StridedRef{0, {60, 1, 15, 3}}, dense(xs));
  std::vector<float> round = values_of<float>(run_poisoned(back, {bytes_of(y)}, 480));
  expect_near(round, from_f16(to_f16(x)), 0);
}

// An NCHW f32 tensor written as NHWC bf16.
TEST_F(GraphOpsGpu, NchwToNhwcConversion) {
  const int64_t n = 2, c = 5, h = 3, w = 7;
  std::vector<float> x = random_floats(static_cast<size_t>(n * c * h * w), 2);
  GenericKernel k = strided_copy(S::kF32, S::kBF16, {n, c, h, w}, dense({n, c, h, w}),
                                 StridedRef{0, {h * w * c, 1, w * c, c}});
  std::vector<uint16_t> y = values_of<uint16_t>(run_poisoned(k, {bytes_of(x)}, x.size() * 2));
  std::vector<uint16_t> want(x.size());
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t ih = 0; ih < h; ++ih)
        for (int64_t iw = 0; iw < w; ++iw)
          want[static_cast<size_t>(((in * h + ih) * w + iw) * c + ic)] =
              bf16_bits(x[static_cast<size_t>(((in * c + ic) * h + ih) * w + iw)]);
  EXPECT_EQ(y, want);
}

// Concat([2, 3, 4], [2, 5, 4]) along axis 1: each part copied into its slice of [2, 8, 4].
TEST_F(GraphOpsGpu, ConcatIntoStridedSlices) {
  std::vector<float> a = random_floats(24, 3), b = random_floats(40, 4);
  const StridedRef first{0, {32, 4, 1}}, second{12, {32, 4, 1}};
  std::vector<uint8_t> y =
      run_poisoned(strided_copy(S::kF32, S::kF32, {2, 3, 4}, dense({2, 3, 4}), first), {bytes_of(a)}, 256);
  ASSERT_EQ(y.size(), 256u);
  y = run(strided_copy(S::kF32, S::kF32, {2, 5, 4}, dense({2, 5, 4}), second), {bytes_of(b)}, y);
  std::vector<float> want;
  for (int i = 0; i < 2; ++i) {
    want.insert(want.end(), a.begin() + i * 12, a.begin() + i * 12 + 12);
    want.insert(want.end(), b.begin() + i * 20, b.begin() + i * 20 + 20);
  }
  expect_near(values_of<float>(y), want, 0);
}

// x [3, 1] broadcast to [2, 3, 4] (stride 0 on the broadcast dimensions), f16 to f32.
TEST_F(GraphOpsGpu, BroadcastCopy) {
  std::vector<float> x = f16_floats(3, 5);
  GenericKernel k = strided_copy(S::kF16, S::kF32, {2, 3, 4}, StridedRef{0, {0, 1, 0}}, dense({2, 3, 4}));
  std::vector<float> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int l = 0; l < 4; ++l) want.push_back(x[static_cast<size_t>(j)]);
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(to_f16(x))}, 96)), want, 0);
}

// int64 values beyond 2^53 copy exactly (no float on the way), here reversed by a negative stride.
TEST_F(GraphOpsGpu, Int64CopyIsExact) {
  const std::vector<int64_t> x = {(int64_t{1} << 53) + 1,
                                  -(int64_t{1} << 62) + 3,
                                  std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(),
                                  9007199254740993,
                                  -1,
                                  0};
  const int64_t n = static_cast<int64_t>(x.size());
  GenericKernel k = strided_copy(S::kI64, S::kI64, {n}, StridedRef{n - 1, {-1}}, dense({n}));
  std::vector<int64_t> want(x.rbegin(), x.rend());
  EXPECT_EQ(values_of<int64_t>(run_poisoned(k, {bytes_of(x)}, x.size() * 8)), want);
}

// Floats to bool (x != 0, NaN true), to int64 (toward zero, NaN 0, saturating), and bool back.
TEST_F(GraphOpsGpu, FloatToBoolAndInt64) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {0.0f, -0.0f, 1.5f, -2.7f, 2.7f, nan, inf, -inf, 1e20f, -1e20f, 1e-30f};
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> b =
      run_poisoned(strided_copy(S::kF32, S::kU8, {n}, dense({n}), dense({n})), {bytes_of(x)}, x.size());
  EXPECT_EQ(b, (std::vector<uint8_t>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  const int64_t big = std::numeric_limits<int64_t>::max(), small = std::numeric_limits<int64_t>::min();
  std::vector<int64_t> i = values_of<int64_t>(
      run_poisoned(strided_copy(S::kF32, S::kI64, {n}, dense({n}), dense({n})), {bytes_of(x)}, x.size() * 8));
  EXPECT_EQ(i, (std::vector<int64_t>{0, 0, 1, -2, 2, 0, big, small, big, small, 0}));
  const std::vector<uint8_t> flags = {0, 1, 7, 0};
  std::vector<float> f =
      values_of<float>(run_poisoned(strided_copy(S::kU8, S::kF32, {4}, dense({4}), dense({4})), {flags}, 16));
  EXPECT_EQ(f, (std::vector<float>{0, 1, 1, 0}));
}

// Gather along axis 0 of data [5, 4]: indices [2, 3] with negatives and two out of range (0s).
TEST_F(GraphOpsGpu, GatherAxis0WithNegativeIndices) {
  std::vector<float> data = random_floats(20, 6);
  const std::vector<int64_t> idx = {0, -1, 4, -5, 5, -6};
  GenericKernel k =
      gather(S::kF32, {2, 3, 4}, StridedRef{0, {0, 0, 1}}, StridedRef{0, {3, 1, 0}}, 4, 5, dense({2, 3, 4}));
  std::vector<float> want;
  for (int64_t i : idx)
    for (int l = 0; l < 4; ++l)
      want.push_back(i < -5 || i >= 5 ? 0.0f : data[static_cast<size_t>((i < 0 ? i + 5 : i) * 4 + l)]);
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(data), bytes_of(idx)}, 96)), want, 0);
}

// Gather along axis 1 of int64 data [5, 4] with indices [2, 3]: y[r, i, j] = data[r, idx[i, j]].
TEST_F(GraphOpsGpu, GatherAxis1WithNegativeIndices) {
  std::vector<int64_t> data(20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = (int64_t{1} << 60) + static_cast<int64_t>(i) * 1000003;
  const std::vector<int64_t> idx = {3, -1, -4, 0, 2, -3};
  GenericKernel k =
      gather(S::kI64, {5, 2, 3}, StridedRef{0, {4, 0, 0}}, StridedRef{0, {0, 3, 1}}, 1, 4, dense({5, 2, 3}));
  std::vector<int64_t> want;
  for (int r = 0; r < 5; ++r)
    for (int64_t i : idx) want.push_back(data[static_cast<size_t>(r * 4 + (i < 0 ? i + 4 : i))]);
  EXPECT_EQ(values_of<int64_t>(run_poisoned(k, {bytes_of(data), bytes_of(idx)}, 240)), want);
}

// GatherND of data [2, 3, 4] with indices [2, 2] (q = 2, no batch dims): y[r, l] =
// data[idx[r, 0], idx[r, 1], l], negative components counted from the end; an out-of-range
// row writes zeros. Then with batch_dims 1: indices [2, 1] pick a row of each batch.
TEST_F(GraphOpsGpu, GatherNdWithAndWithoutBatchDims) {
  std::vector<float> data = random_floats(24, 11);
  const std::vector<int64_t> idx = {1, -1, 0, 2, 3, 0};  // the last row's 3 is out of range for extent 2
  GenericKernel k = gather_nd(S::kF32, {3, 4}, StridedRef{0, {0, 1}}, StridedRef{0, {2, 0}}, 1,
                              {{2, 12}, {3, 4}}, dense({3, 4}));
  std::vector<float> want;
  for (int r = 0; r < 3; ++r) {
    int64_t a = idx[static_cast<size_t>(2 * r)], b = idx[static_cast<size_t>(2 * r + 1)];
    if (a < 0) a += 2;
    if (b < 0) b += 3;
    for (int l = 0; l < 4; ++l)
      want.push_back(a >= 2 || b >= 3 ? 0.0f : data[static_cast<size_t>(a * 12 + b * 4 + l)]);
  }
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(data), bytes_of(idx)}, 48)), want, 0);
  // batch_dims 1: y[b, l] = data[b, idx[b, 0], l] over data [2, 3, 4], indices [2, 1].
  const std::vector<int64_t> rows = {2, -3};
  GenericKernel kb =
      gather_nd(S::kF32, {2, 4}, StridedRef{0, {12, 1}}, StridedRef{0, {1, 0}}, 1, {{3, 4}}, dense({2, 4}));
  std::vector<float> want_b;
  for (int b = 0; b < 2; ++b)
    for (int l = 0; l < 4; ++l)
      want_b.push_back(data[static_cast<size_t>(
          b * 12 + (rows[static_cast<size_t>(b)] + (rows[static_cast<size_t>(b)] < 0 ? 3 : 0)) * 4 + l)]);
  expect_near(values_of<float>(run_poisoned(kb, {bytes_of(data), bytes_of(rows)}, 32)), want_b, 0);
}

// CumSum of int64 [2, 5] along axis 1 in its four forms (inclusive / exclusive, forward /
// reverse), and of f32 [3, 2] along axis 0 read transposed.
TEST_F(GraphOpsGpu, CumSumInEveryDirection) {
  const std::vector<int64_t> x = {1, 2, 3, 4, 5, (int64_t{1} << 55), 10, 20, 30, 40};
  for (bool exclusive : {false, true})
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(std::string(exclusive ? "exclusive" : "inclusive") + (reverse ? " reverse" : ""));
      GenericKernel k = cumsum(S::kI64, {2, 5}, dense({2, 5}), dense({2, 5}), 1, exclusive, reverse);
      std::vector<int64_t> want;
      for (int r = 0; r < 2; ++r)
        for (int i = 0; i < 5; ++i) {
          int64_t acc = 0;
          for (int j = 0; j < 5; ++j) {
            const bool in = reverse ? (exclusive ? j > i : j >= i) : (exclusive ? j < i : j <= i);
            if (in) acc += x[static_cast<size_t>(r * 5 + j)];
          }
          want.push_back(acc);
        }
      EXPECT_EQ(values_of<int64_t>(run_poisoned(k, {bytes_of(x)}, 80)), want);
    }
  const std::vector<float> f = {1.5f, -2.0f, 0.25f, 4.0f, 8.0f, -1.0f};  // stored [2, 3]
  GenericKernel t = cumsum(S::kF32, {3, 2}, StridedRef{0, {1, 3}}, dense({3, 2}), 0, false, false);
  const std::vector<float> want_t = {
      1.5f, 4.0f, 1.5f - 2.0f, 4.0f + 8.0f, 1.5f - 2.0f + 0.25f, 4.0f + 8.0f - 1.0f};
  expect_near(values_of<float>(run_poisoned(t, {bytes_of(f)}, 24)), want_t, 1e-6);
}

// Host pooling of x (NCHW values read through `at(n, c, h, w)`) into dense NCHW [n, c, oh, ow].
std::vector<float> host_pool(const std::function<float(int64_t, int64_t, int64_t, int64_t)>& at,
                             const std::vector<int64_t>& in, const std::vector<int64_t>& out,
                             const PoolWindow& w) {
  std::vector<float> y;
  for (int64_t n = 0; n < out[0]; ++n)
    for (int64_t c = 0; c < out[1]; ++c)
      for (int64_t oh = 0; oh < out[2]; ++oh)
        for (int64_t ow = 0; ow < out[3]; ++ow) {
          double acc = w.max ? -std::numeric_limits<double>::infinity() : 0;
          int64_t taps = 0, padded = 0;
          for (int64_t r = 0; r < w.kh; ++r)
            for (int64_t s = 0; s < w.kw; ++s) {
              const int64_t ih = oh * w.sh - w.pad_top + r * w.dh, iw = ow * w.sw - w.pad_left + s * w.dw;
              padded += ih >= -w.pad_top && ih < in[2] + w.pad_bottom && iw >= -w.pad_left &&
                        iw < in[3] + w.pad_right;
              if (ih < 0 || ih >= in[2] || iw < 0 || iw >= in[3]) continue;
              const double v = at(n, c, ih, iw);
              acc = w.max ? std::max(acc, v) : acc + v;
              ++taps;
            }
          const int64_t count = w.count_include_pad ? padded : taps;
          y.push_back(static_cast<float>(w.max ? acc : count > 0 ? acc / static_cast<double>(count) : 0.0));
        }
  return y;
}

// MaxPool 3x3, stride 2, pad 1 of an f16 [2, 3, 9, 10] tensor stored NHWC.
TEST_F(GraphOpsGpu, MaxPoolOfNhwcInput) {
  const std::vector<int64_t> in = {2, 3, 9, 10}, out = {2, 3, 5, 5};
  const StridedRef nhwc{0, {9 * 10 * 3, 1, 10 * 3, 3}};
  std::vector<float> x = f16_floats(540, 7);
  const PoolWindow w = window(true, false);
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t ww) {
    return x[static_cast<size_t>(n * nhwc.strides[0] + c * nhwc.strides[1] + h * nhwc.strides[2] +
                                 ww * nhwc.strides[3])];
  };
  GenericKernel k = pool2d(S::kF16, in, nhwc, out, dense(out), w);
  std::vector<float> got = from_f16(values_of<uint16_t>(run_poisoned(k, {bytes_of(to_f16(x))}, 150 * 2)));
  const std::vector<float> want = host_pool(at, in, out, w);
  expect_near(got, want, 0);
  // The output stored NHWC too: the kernel walks it channels innermost.
  const StridedRef out_nhwc{0, {5 * 5 * 3, 1, 5 * 3, 3}};
  GenericKernel cl = pool2d(S::kF16, in, nhwc, out, out_nhwc, w);
  EXPECT_EQ(cl.params.extra[13], 1);
  std::vector<float> got_cl = from_f16(values_of<uint16_t>(run_poisoned(cl, {bytes_of(to_f16(x))}, 150 * 2)));
  std::vector<float> as_nchw(150);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t ww = 0; ww < 5; ++ww)
          as_nchw[static_cast<size_t>(((n * 3 + c) * 5 + h) * 5 + ww)] =
              got_cl[static_cast<size_t>(n * 75 + c + h * 15 + ww * 3)];
  expect_near(as_nchw, want, 0);
}

// Tensors large enough that each thread takes several elements of the innermost dimension
// (8, 2, 4 and 4 here: graph_ops_test checks the walks), so the index is stepped, not
// recomputed; the copy and the maps move them as packs (one load or store per operand).
TEST_F(GraphOpsGpu, SeveralElementsPerThread) {
  // A transpose [8, 32, 16, 64] -> [8, 16, 32, 64] (perm 0, 2, 1, 3), f16.
  std::vector<float> x = f16_floats(8 * 32 * 16 * 64, 21);
  const std::vector<int64_t> ys = {8, 16, 32, 64};
  GenericKernel t = strided_copy(S::kF16, S::kF16, ys, StridedRef{0, {32 * 16 * 64, 64, 16 * 64, 1}}, dense(ys));
  ASSERT_NE(t.source.source.find("V = 8;"), std::string::npos);
  ASSERT_NE(t.source.source.find("const bool packed"), std::string::npos);
  std::vector<float> got = from_f16(values_of<uint16_t>(run_poisoned(t, {bytes_of(to_f16(x))}, x.size() * 2)));
  std::vector<float> want;
  for (int64_t a = 0; a < 8; ++a)
    for (int64_t c = 0; c < 16; ++c)
      for (int64_t b = 0; b < 32; ++b)
        for (int64_t d = 0; d < 64; ++d) want.push_back(x[static_cast<size_t>(((a * 32 + b) * 16 + c) * 64 + d)]);
  expect_near(got, want, 0);

  // [40000, 6] f32 + [6] broadcast along the rows.
  std::vector<float> a = random_floats(240000, 22), b = random_floats(6, 23);
  GenericKernel m = map("a + b", {S::kF32, S::kF32}, S::kF32, {40000, 6}, {dense({40000, 6}), StridedRef{0, {0, 1}}},
                        dense({40000, 6}));
  ASSERT_NE(m.source.source.find("V = 2;"), std::string::npos);
  std::vector<float> sum;
  for (size_t i = 0; i < a.size(); ++i) sum.push_back(a[i] + b[i % 6]);
  expect_near(values_of<float>(run_poisoned(m, {bytes_of(a), bytes_of(b)}, a.size() * 4)), sum, 0);

  // [300000] f16 times one f32 (a scale): packs of 4 (the f32 operand's width) and a broadcast
  // element.
  std::vector<float> halves = f16_floats(300000, 25);
  const std::vector<float> scale = {0.125f};
  GenericKernel sc = map("a * b", {S::kF16, S::kF32}, S::kF16, {300000}, {dense({300000}), StridedRef{0, {0}}},
                         dense({300000}));
  ASSERT_NE(sc.source.source.find("V = 4;"), std::string::npos);
  ASSERT_NE(sc.source.source.find("const bool packed"), std::string::npos);
  std::vector<float> scaled;
  for (float v : halves) scaled.push_back(v * 0.125f);
  expect_near(from_f16(values_of<uint16_t>(run_poisoned(sc, {bytes_of(to_f16(halves)), bytes_of(scale)}, halves.size() * 2))),
              from_f16(to_f16(scaled)), 0);  // the product rounded to f16 (small ones are subnormal)

  // MaxPool 3x3 / 2, pad 1 of [4, 64, 34, 34] stored NHWC into NHWC: 4 channels per step.
  const std::vector<int64_t> in = {4, 64, 34, 34}, out = {4, 64, 17, 17};
  const StridedRef in_nhwc{0, {34 * 34 * 64, 1, 34 * 64, 64}}, out_nhwc{0, {17 * 17 * 64, 1, 17 * 64, 64}};
  std::vector<float> px = f16_floats(4 * 64 * 34 * 34, 24);
  const PoolWindow w = window(true, false);
  GenericKernel pk = pool2d(S::kF16, in, in_nhwc, out, out_nhwc, w);
  ASSERT_NE(pk.source.source.find("V = 4;"), std::string::npos);
  ASSERT_NE(pk.source.source.find("const bool packed"), std::string::npos);  // taps read as packs
  std::vector<float> pooled =
      from_f16(values_of<uint16_t>(run_poisoned(pk, {bytes_of(to_f16(px))}, 4 * 64 * 17 * 17 * 2)));
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t ww) {
    return px[static_cast<size_t>(n * in_nhwc.strides[0] + c + h * in_nhwc.strides[2] + ww * 64)];
  };
  const std::vector<float> want_nchw = host_pool(at, in, out, w);
  std::vector<float> got_nchw(want_nchw.size());
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t c = 0; c < 64; ++c)
      for (int64_t h = 0; h < 17; ++h)
        for (int64_t ww = 0; ww < 17; ++ww)
          got_nchw[static_cast<size_t>(((n * 64 + c) * 17 + h) * 17 + ww)] =
              pooled[static_cast<size_t>(n * out_nhwc.strides[0] + c + h * out_nhwc.strides[2] + ww * 64)];
  expect_near(got_nchw, want_nchw, 0);
}

// AveragePool 3x3, stride 2, pads 1 of [1, 2, 6, 6] with ceil_mode's output 4x4: the last
// window overhangs the padded input, whose overhang count_include_pad does not count.
TEST_F(GraphOpsGpu, AveragePoolWithAndWithoutPadding) {
  const std::vector<int64_t> in = {1, 2, 6, 6}, out = {1, 2, 4, 4};
  std::vector<float> x = random_floats(72, 8);
  auto at = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
    return x[static_cast<size_t>(((n * 2 + c) * 6 + h) * 6 + w)];
  };
  for (bool include : {false, true}) {
    SCOPED_TRACE(include ? "count_include_pad 1" : "count_include_pad 0");
    const PoolWindow w = window(false, include);
    GenericKernel k = pool2d(S::kF32, in, dense(in), out, dense(out), w);
    std::vector<float> want = host_pool(at, in, out, w);
    expect_near(values_of<float>(run_poisoned(k, {bytes_of(x)}, 128)), want, 1e-6);
    // The corner window (rows and columns -1..1) has 4 taps in the input and 9 in the padding.
    EXPECT_NEAR(want[0] * (include ? 9.0f : 4.0f),
                at(0, 0, 0, 0) + at(0, 0, 0, 1) + at(0, 0, 1, 0) + at(0, 0, 1, 1), 1e-5);
  }
}

// GlobalAveragePool of [2, 4, 7, 7]: one window over the whole image.
TEST_F(GraphOpsGpu, GlobalAveragePool) {
  const std::vector<int64_t> in = {2, 4, 7, 7}, out = {2, 4, 1, 1};
  std::vector<float> x = random_floats(392, 9);
  PoolWindow w;
  w.max = false;
  w.kh = w.kw = 7;
  GenericKernel k = pool2d(S::kF32, in, dense(in), out, dense(out), w);
  std::vector<float> want;
  for (int p = 0; p < 8; ++p) {
    double sum = 0;
    for (int j = 0; j < 49; ++j) sum += x[static_cast<size_t>(p * 49 + j)];
    want.push_back(static_cast<float>(sum / 49));
  }
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(x)}, 32)), want, 1e-6);
}

TEST_F(GraphOpsGpu, MapErf) {
  std::vector<float> x = random_floats(1000, 10, -3, 3);
  GenericKernel k = map("erff(a)", {S::kF32}, S::kF32, {1000}, {dense({1000})}, dense({1000}));
  std::vector<float> want;
  for (float v : x) want.push_back(static_cast<float>(std::erf(static_cast<double>(v))));
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(x)}, 4000)), want, 1e-6);
}

// a [4, 5] f16 + b [5] f32 broadcast along the rows, into f32.
TEST_F(GraphOpsGpu, MapAddWithBroadcast) {
  std::vector<float> a = f16_floats(20, 11), b = random_floats(5, 12);
  GenericKernel k = map("a + b", {S::kF16, S::kF32}, S::kF32, {4, 5}, {dense({4, 5}), StridedRef{0, {0, 1}}},
                        dense({4, 5}));
  std::vector<float> want;
  for (size_t i = 0; i < 20; ++i) want.push_back(a[i] + b[i % 5]);
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(to_f16(a)), bytes_of(b)}, 80)), want, 0);
}

// Where(cond, b, c) with a bool condition and c a broadcast scalar.
TEST_F(GraphOpsGpu, MapSelectOnBoolCondition) {
  const std::vector<uint8_t> cond = {0, 1, 3, 0, 255, 1};
  std::vector<float> b = random_floats(6, 13);
  const std::vector<float> c = {-7.5f};
  GenericKernel k = map("a != 0.f ? b : c", {S::kU8, S::kF32, S::kF32}, S::kF32, {6},
                        {dense({6}), dense({6}), StridedRef{0, {0}}}, dense({6}));
  std::vector<float> want;
  for (size_t i = 0; i < 6; ++i) want.push_back(cond[i] != 0 ? b[i] : c[0]);
  expect_near(values_of<float>(run_poisoned(k, {cond, bytes_of(b), bytes_of(c)}, 24)), want, 0);
  // A comparison stored as bool.
  GenericKernel less =
      map("(float)(a < b)", {S::kF32, S::kF32}, S::kU8, {6}, {dense({6}), StridedRef{0, {0}}}, dense({6}));
  std::vector<uint8_t> flags;
  for (float v : b) flags.push_back(v < 0.5f ? 1 : 0);
  EXPECT_EQ(run_poisoned(less, {bytes_of(b), bytes_of(std::vector<float>{0.5f})}, 6), flags);
}

// ReduceMean over the last axis of [3, 4, 50].
TEST_F(GraphOpsGpu, ReduceMeanOverLastAxis) {
  std::vector<float> x = random_floats(600, 14);
  GenericKernel k =
      reduce(ReduceOp::kMean, S::kF32, {3, 4, 1}, StridedRef{0, {200, 50, 0}}, {{50, 1}}, dense({3, 4, 1}));
  std::vector<float> want;
  for (int r = 0; r < 12; ++r) {
    double sum = 0;
    for (int j = 0; j < 50; ++j) sum += x[static_cast<size_t>(r * 50 + j)];
    want.push_back(static_cast<float>(sum / 50));
  }
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(x)}, 48)), want, 1e-5);
}

// ReduceSum over axes {0, 2} of [3, 4, 5] in f32, and of int64 values beyond 2^53 (exact).
TEST_F(GraphOpsGpu, ReduceSumOverAxes0And2) {
  std::vector<float> x = random_floats(60, 15);
  std::vector<int64_t> xi(60);
  for (size_t i = 0; i < 60; ++i) xi[i] = (int64_t{1} << 55) + static_cast<int64_t>(i) * 7 - 100;
  // The reduced dimensions' own strides (20, 1) are passed too: the kernel ignores them.
  const StridedRef in{0, {20, 5, 1}};
  const std::vector<std::pair<int64_t, int64_t>> axes = {{3, 20}, {5, 1}};
  std::vector<float> want(4, 0.0f);
  std::vector<int64_t> want_i(4, 0);
  for (int a = 0; a < 3; ++a)
    for (int b = 0; b < 4; ++b)
      for (int c = 0; c < 5; ++c) {
        const size_t at = static_cast<size_t>(a * 20 + b * 5 + c);
        want[static_cast<size_t>(b)] += x[at];
        want_i[static_cast<size_t>(b)] += xi[at];
      }
  GenericKernel k = reduce(ReduceOp::kSum, S::kF32, {1, 4, 1}, in, axes, dense({1, 4, 1}));
  expect_near(values_of<float>(run_poisoned(k, {bytes_of(x)}, 16)), want, 1e-5);
  GenericKernel ki = reduce(ReduceOp::kSum, S::kI64, {1, 4, 1}, in, axes, dense({1, 4, 1}));
  EXPECT_EQ(values_of<int64_t>(run_poisoned(ki, {bytes_of(xi)}, 32)), want_i);
}

}  // namespace
}  // namespace tessera::kernels
