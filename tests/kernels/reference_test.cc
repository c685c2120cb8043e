// CPU reference: hand-computed cases per kind, layout and group equivalences, input
// generation. The ONNX conformance cases are in onnx_conformance_test.cc.
#include "kernels/reference.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "kernels/host_math.h"

namespace tessera::kernels {
namespace {

HostTensor t(std::vector<int64_t> shape, std::vector<float> data) { return {std::move(shape), std::move(data)}; }

std::vector<uint8_t> reference_bytes_for_test(const HostTensor& x) { return encode(x, DType::kF16); }

void expect_near(const HostTensor& got, const std::vector<float>& want, double tol = 1e-6) {
  ASSERT_EQ(got.data.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.data[i], want[i], tol) << "at " << i;
}

TEST(Reference, RoundsToHalfAndBfloat16) {
  EXPECT_EQ(round_to(DType::kF16, 1.0f), 1.0f);
  EXPECT_EQ(round_to(DType::kF16, 1.0f + 0x1p-11f), 1.0f);                     // tie -> even
  EXPECT_EQ(round_to(DType::kF16, 1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);       // tie -> even
  EXPECT_EQ(round_to(DType::kF16, 1.0f + 0x1p-11f + 0x1p-20f), 1.0f + 0x1p-10f);  // above the tie
  EXPECT_EQ(round_to(DType::kF16, 70000.0f), INFINITY);
  EXPECT_EQ(round_to(DType::kF16, 0x1p-24f), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(round_to(DType::kF16, 0x1p-26f), 0.0f);
  EXPECT_EQ(round_to(DType::kBF16, 1.0f + 0x1p-8f), 1.0f);
  EXPECT_EQ(round_to(DType::kBF16, 1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);
  EXPECT_EQ(round_to(DType::kBF16, -3.0f), -3.0f);
  EXPECT_EQ(round_to(DType::kF32, 0.1f), 0.1f);
}

TEST(Reference, EncodesAndDecodesStorageFormats) {
  HostTensor x = t({6}, {1.0f, -2.5f, 0x1p-24f, 65504.0f, 1.0f + 0x1p-11f, 0.1f});
  std::vector<uint8_t> h = reference_bytes_for_test(x);
  EXPECT_EQ(h[0] | (h[1] << 8), 0x3C00);   // 1.0
  EXPECT_EQ(h[2] | (h[3] << 8), 0xC100);   // -2.5
  EXPECT_EQ(h[4] | (h[5] << 8), 0x0001);   // smallest subnormal
  EXPECT_EQ(h[6] | (h[7] << 8), 0x7BFF);   // largest finite
  EXPECT_EQ(h[8] | (h[9] << 8), 0x3C00);   // tie rounds to even
  for (DType d : {DType::kF16, DType::kBF16, DType::kF32}) {
    HostTensor back = decode(encode(x, d), x.shape, d);
    for (size_t i = 0; i < x.data.size(); ++i) EXPECT_EQ(back.data[i], round_to(d, x.data[i])) << i;
  }
  std::vector<uint8_t> b = encode(t({1}, {-3.0f}), DType::kBF16);
  EXPECT_EQ(b[0] | (b[1] << 8), 0xC040);
  EXPECT_TRUE(std::isnan(decode(std::vector<uint8_t>{0xFF, 0xFF}, {1}, DType::kF16).data[0]));  // the poison value
}

TEST(Reference, RandomInputsMatchTheExpressionAndDtype) {
  Workload w = Workload::parse("matmul:m=5,n=7,k=3:bf16:out=f32:epilogue=bias+residual");
  std::vector<HostTensor> in = random_inputs(w, 42);
  ASSERT_EQ(in.size(), 4u);  // A, B, bias, residual
  EXPECT_EQ(in[0].shape, (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(in[3].shape, (std::vector<int64_t>{5, 7}));
  for (float v : in[0].data) {
    EXPECT_EQ(round_to(DType::kBF16, v), v);
    EXPECT_GE(std::fabs(v), 1.0f / 64 * 0.99f);
    EXPECT_LE(std::fabs(v), 1.0f);
  }
  EXPECT_EQ(random_inputs(w, 42)[1].data, in[1].data);
  EXPECT_NE(random_inputs(w, 43)[1].data, in[1].data);
}

TEST(Reference, MatmulTransposesAndEpilogues) {
  HostTensor a = t({2, 2}, {1, 2, 3, 4}), b = t({2, 2}, {5, 6, 7, 8});
  std::vector<HostTensor> in = {a, b};
  expect_near(reference(Workload::parse("matmul:m=2,n=2,k=2:f32"), in), {19, 22, 43, 50});
  // A stored as [k, m] and B as [n, k]: the same numbers read transposed.
  std::vector<HostTensor> tin = {t({2, 2}, {1, 3, 2, 4}), t({2, 2}, {5, 7, 6, 8})};
  expect_near(reference(Workload::parse("matmul:m=2,n=2,k=2,ta=1,tb=1:f32"), tin), {19, 22, 43, 50});
  std::vector<HostTensor> biased = {a, b, t({2}, {-20, 1})};
  expect_near(reference(Workload::parse("matmul:m=2,n=2,k=2:f32:epilogue=bias+relu"), biased), {0, 23, 23, 51});
  std::vector<HostTensor> res = {a, b, t({2, 2}, {-19, 0, 0, -50})};
  expect_near(reference(Workload::parse("matmul:m=2,n=2,k=2:f32:epilogue=residual+gelu"), res),
              {0, 22, 43, 0});
  std::vector<HostTensor> one = {t({1, 1}, {1}), t({1, 1}, {1})};
  expect_near(reference(Workload::parse("matmul:m=1,n=1,k=1:f32:epilogue=gelu"), one), {0.8413447460685429f});
  // Far out on the negative side, where 1 + erf(x / sqrt 2) cancels to zero even in double:
  // gelu(-10) = -10 Phi(-10) = -7.619853e-23.
  std::vector<HostTensor> far = {t({1, 1}, {-10}), t({1, 1}, {1})};
  HostTensor tail = reference(Workload::parse("matmul:m=1,n=1,k=1:f32:epilogue=gelu"), far);
  EXPECT_NEAR(tail.data[0] / -7.619853024160527e-23, 1.0, 1e-6);
  // alpha scales the product before the epilogue's steps: relu(0.5 * A B + bias).
  expect_near(reference(Workload::parse("matmul:m=2,n=2,k=2,alpha=0.5:f32:epilogue=bias+relu"), biased), {0, 12, 1.5, 26});
  // Non-square, with a batch.
  std::vector<HostTensor> bin = {t({2, 1, 3}, {1, 2, 3, 4, 5, 6}), t({2, 3, 1}, {1, 1, 1, 1, 0, -1})};
  expect_near(reference(Workload::parse("batch_matmul:b=2,m=1,n=1,k=3:f32"), bin), {6, -2});
}

TEST(Reference, Conv2dHandComputed) {
  HostTensor x = t({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  HostTensor ones = t({1, 2, 2, 1}, {1, 1, 1, 1});
  expect_near(reference(Workload::parse("conv2d:n=1,h=3,w=3,c=1,k=1,r=2,s=2:f32"), std::vector{x, ones}),
              {12, 16, 24, 28});
  // pad 1: the corners see one input each.
  HostTensor padded = reference(Workload::parse("conv2d:n=1,h=3,w=3,c=1,k=1,r=2,s=2,pad=1:f32"), std::vector{x, ones});
  EXPECT_EQ(padded.shape, (std::vector<int64_t>{1, 4, 4, 1}));
  expect_near(padded, {1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9});
  // stride 2 with pad 1, a 3x3 ones filter: sums of the clipped windows around (0,0), (0,2), (2,0), (2,2).
  HostTensor ones3 = t({1, 3, 3, 1}, std::vector<float>(9, 1));
  expect_near(reference(Workload::parse("conv2d:n=1,h=3,w=3,c=1,k=1,r=3,s=3,stride=2,pad=1:f32"), std::vector{x, ones3}),
              {12, 16, 24, 28});
  // dilation 2: a 2x2 filter samples the corners of the 3x3 input.
  expect_near(reference(Workload::parse("conv2d:n=1,h=3,w=3,c=1,k=1,r=2,s=2,dilation=2:f32"), std::vector{x, ones}),
              {20});
  // bias + relu epilogue on the output channel.
  HostTensor two = t({2, 1, 1, 1}, {1, -1});
  expect_near(reference(Workload::parse("conv2d:n=1,h=1,w=2,c=1,k=2,r=1,s=1:f32:epilogue=bias+relu"),
                        std::vector{t({1, 1, 2, 1}, {3, 4}), two, t({2}, {0.5f, 0})}),
              {3.5f, 0, 4.5f, 0});
}

TEST(Reference, NchwEqualsNhwcAndGroupsEqualSeparateConvs) {
  Workload nhwc = Workload::parse("conv2d:n=2,h=6,w=5,c=4,k=6,r=3,s=3,stride=2x1,pad=1,groups=2:f32");
  Workload nchw = Workload::parse("conv2d:n=2,h=6,w=5,c=4,k=6,r=3,s=3,stride=2x1,pad=1,groups=2,layout=nchw:f32");
  std::vector<HostTensor> in = random_inputs(nhwc, 7);
  // Transpose X (NHWC -> NCHW) and W (KRSC -> KCRS).
  HostTensor x2{{2, 4, 6, 5}, std::vector<float>(in[0].data.size())}, w2{{6, 2, 3, 3}, std::vector<float>(in[1].data.size())};
  for (int n = 0; n < 2; ++n)
    for (int h = 0; h < 6; ++h)
      for (int w = 0; w < 5; ++w)
        for (int c = 0; c < 4; ++c) x2.data[((n * 4 + c) * 6 + h) * 5 + w] = in[0].data[((n * 6 + h) * 5 + w) * 4 + c];
  for (int k = 0; k < 6; ++k)
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s)
        for (int c = 0; c < 2; ++c) w2.data[((k * 2 + c) * 3 + r) * 3 + s] = in[1].data[((k * 3 + r) * 3 + s) * 2 + c];
  HostTensor a = reference(nhwc, in), b = reference(nchw, std::vector{x2, w2});
  int P = 3, Q = 5;
  for (int n = 0; n < 2; ++n)
    for (int k = 0; k < 6; ++k)
      for (int p = 0; p < P; ++p)
        for (int q = 0; q < Q; ++q)
          EXPECT_NEAR(a.data[((n * P + p) * Q + q) * 6 + k], b.data[((n * 6 + k) * P + p) * Q + q], 1e-5);
  // Group 1 of the grouped conv equals an ungrouped conv on channels 2..3 with filters 3..5.
  Workload g1 = Workload::parse("conv2d:n=2,h=6,w=5,c=2,k=3,r=3,s=3,stride=2x1,pad=1:f32");
  HostTensor xs{{2, 6, 5, 2}, {}}, ws{{3, 3, 3, 2}, {}};
  for (size_t i = 0; i < in[0].data.size(); i += 4) xs.data.insert(xs.data.end(), {in[0].data[i + 2], in[0].data[i + 3]});
  ws.data.assign(in[1].data.begin() + 3 * 18, in[1].data.end());
  HostTensor sep = reference(g1, std::vector{xs, ws});
  for (int i = 0; i < 2 * P * Q; ++i)
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(a.data[i * 6 + 3 + k], sep.data[i * 3 + k], 1e-5);
}

TEST(Reference, RowOperators) {
  HostTensor sm = reference(Workload::parse("softmax:rows=2,cols=2:f32"),
                            std::vector{t({2, 2}, {0, std::log(2.0f), 5, 5})});
  expect_near(sm, {1.0f / 3, 2.0f / 3, 0.5f, 0.5f});
  HostTensor ln = reference(Workload::parse("layernorm:rows=1,cols=3:f32"),
                            std::vector{t({1, 3}, {1, 2, 3}), t({3}, {1, 1, 2}), t({3}, {0, 0, 1})});
  double inv = 1.0 / std::sqrt(2.0 / 3 + kDefaultLayernormEpsilon);
  expect_near(ln, {static_cast<float>(-inv), 0, static_cast<float>(2 * inv + 1)});
  // The workload's epsilon, not the default's.
  HostTensor ln_eps = reference(Workload::parse("layernorm:rows=1,cols=3,eps=0.25:f32"),
                                std::vector{t({1, 3}, {1, 2, 3}), t({3}, {1, 1, 2}), t({3}, {0, 0, 1})});
  const double inv_eps = 1.0 / std::sqrt(2.0 / 3 + 0.25);
  expect_near(ln_eps, {static_cast<float>(-inv_eps), 0, static_cast<float>(2 * inv_eps + 1)});
  HostTensor x = t({2, 3}, {1, -2, 3, 4, 5, -6});
  expect_near(reference(Workload::parse("reduce:op=sum,rows=2,cols=3:f32"), std::vector{x}), {2, 3});
  expect_near(reference(Workload::parse("reduce:op=max,rows=2,cols=3:f32"), std::vector{x}), {3, 5});
  expect_near(reference(Workload::parse("reduce:op=mean,rows=2,cols=3:f32"), std::vector{x}), {2.0f / 3, 1});
  expect_near(reference(Workload::parse("elementwise:ops=add+relu+mul,n=3:f32"),
                        std::vector{t({3}, {1, -5, 2}), t({3}, {1, 1, 1}), t({3}, {3, 3, -1})}),
              {6, 0, -3});
  expect_near(reference(Workload::parse("elementwise:ops=neg+abs+sigmoid,n=1:f32"), std::vector{t({1}, {0})}), {0.5f});
}

// A product large enough to be split by rows across threads (with rows left over past the
// last whole chunk) equals the plain sum, in every transpose combination and in f32 and f64.
TEST(Reference, LargeHostGemmSplitByRowsEqualsTheSum) {
  const int64_t m = 135, n = 70, k = 1800;  // 17 M multiply-adds: past the split's threshold
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n));
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>((i * 7919) % 17) / 8.0f - 1.0f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>((i * 104729) % 13) / 6.0f - 1.0f;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(std::to_string(ta) + std::to_string(tb));
      std::vector<double> want(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0;
          for (int64_t q = 0; q < k; ++q)
            acc += static_cast<double>(a[static_cast<size_t>(ta ? q * m + i : i * k + q)]) *
                   b[static_cast<size_t>(tb ? j * k + q : q * n + j)];
          want[static_cast<size_t>(i * n + j)] = acc;
        }
      std::vector<double> got64(want.size());
      std::vector<float> got32(want.size());
      host::gemm<double>(a.data(), b.data(), got64.data(), m, n, k, ta, tb);
      host::gemm<float>(a.data(), b.data(), got32.data(), m, n, k, ta, tb);
      for (size_t i = 0; i < want.size(); ++i) {
        ASSERT_NEAR(got64[i], want[i], 1e-9 * (1 + std::abs(want[i]))) << i;
        ASSERT_NEAR(got32[i], want[i], 1e-3 * (1 + std::abs(want[i]))) << i;
      }
    }
}

TEST(Reference, WrongInputsAreAnInternalError) {
  Workload w = Workload::parse("matmul:m=2,n=2,k=2:f32");
  EXPECT_THROW(reference(w, std::vector{t({2, 2}, {1, 2, 3, 4})}), InternalError);
  EXPECT_THROW(reference(w, std::vector{t({2, 3}, {1, 2, 3, 4, 5, 6}), t({2, 2}, {1, 2, 3, 4})}), InternalError);
}

}  // namespace
}  // namespace tessera::kernels
