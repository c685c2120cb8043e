#include "kernels/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "core/error.h"
#include "kernels/host_math.h"

namespace tessera::kernels {
namespace {


using host::gelu;

// Runs body(i) for i in [0, count) on the machine's cores (the references of large
// convolutions take seconds on one); each i must write its own outputs.
template <class Body>
void parallel_for(int64_t count, const Body& body) {
  host::parallel_chunks(count, [&](int64_t first, int64_t last) {
    for (int64_t i = first; i < last; ++i) body(i);
  });
}

HostTensor make(std::vector<int64_t> shape) {
  HostTensor t{std::move(shape), {}};
  t.data.assign(static_cast<size_t>(t.elements()), 0.0f);
  return t;
}

void check_inputs(const Workload& w, std::span<const HostTensor> inputs) {
  TensorExpr e = w.expr();
  size_t n_inputs = 0;
  for (const TensorAccess& t : e.tensors)
    if (t.role == TensorRole::kInput) {
      TESSERA_CHECK(n_inputs < inputs.size(), "too few inputs for " + w.key());
      TESSERA_CHECK(inputs[n_inputs].shape == t.shape, "input " + t.name + " has the wrong shape for " + w.key());
      TESSERA_CHECK(inputs[n_inputs].elements() == static_cast<int64_t>(inputs[n_inputs].data.size()),
                    "input " + t.name + " data size does not match its shape");
      ++n_inputs;
    }
  TESSERA_CHECK(n_inputs == inputs.size(), "too many inputs for " + w.key());
}

// Applies the epilogue to out[row, col] (accumulated value `v`); `extra` are the inputs after
// the operands, in epilogue order (bias is indexed by `col`, residual by `index`).
double epilogue(const Workload& w, std::span<const HostTensor> extra, double v, int64_t col, int64_t index) {
  size_t next = 0;
  v *= static_cast<float>(product_scale(w));  // the kernels' float
  for (EpilogueOp op : w.epilogue) {
    switch (op) {
      case EpilogueOp::kBias: v += extra[next++].data[static_cast<size_t>(col)]; break;
      case EpilogueOp::kRelu: v = std::max(v, 0.0); break;
      case EpilogueOp::kGelu: v = gelu(v); break;
      case EpilogueOp::kResidual: v += extra[next++].data[static_cast<size_t>(index)]; break;
    }
  }
  return v;
}

HostTensor matmul(const Workload& w, std::span<const HostTensor> in) {
  const MatmulShape& s = w.matmul();
  bool batched = w.kind == OpKind::kBatchMatmul;
  HostTensor out = batched ? make({s.batch, s.m, s.n}) : make({s.m, s.n});
  std::span<const HostTensor> extra = in.subspan(2);
  std::vector<double> c(static_cast<size_t>(s.m * s.n));
  for (int64_t b = 0; b < s.batch; ++b) {
    host::gemm<double>(in[0].data.data() + b * s.m * s.k, in[1].data.data() + b * s.k * s.n, c.data(), s.m, s.n, s.k,
                       s.trans_a, s.trans_b);
    for (int64_t i = 0; i < s.m; ++i)
      for (int64_t j = 0; j < s.n; ++j) {
        int64_t index = (b * s.m + i) * s.n + j;
        out.data[static_cast<size_t>(index)] =
            static_cast<float>(epilogue(w, extra, c[static_cast<size_t>(i * s.n + j)], j, index));
      }
  }
  return out;
}

HostTensor conv2d(const Workload& w, std::span<const HostTensor> in) {
  const Conv2dShape& s = w.conv2d();
  int64_t P = s.out_h(), Q = s.out_w(), cg = s.c / s.groups;
  bool nhwc = s.layout == Layout::kNHWC;
  HostTensor out = nhwc ? make({s.n, P, Q, s.k}) : make({s.n, s.k, P, Q});
  // The shared host convolution (host::conv, accumulating in double) reads NCHW inputs and
  // [K][Cg][R][S] filters: NHWC operands (KRSC filters) are transposed to those first.
  const float* x = in[0].data.data();
  const float* filters = in[1].data.data();
  std::vector<float> x_nchw, w_kcrs;
  if (nhwc) {
    x_nchw.resize(in[0].data.size());
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t ww = 0; ww < s.w; ++ww)
          for (int64_t c = 0; c < s.c; ++c)
            x_nchw[static_cast<size_t>(((n * s.c + c) * s.h + h) * s.w + ww)] = x[((n * s.h + h) * s.w + ww) * s.c + c];
    w_kcrs.resize(in[1].data.size());
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t r = 0; r < s.r; ++r)
        for (int64_t t = 0; t < s.s; ++t)
          for (int64_t c = 0; c < cg; ++c)
            w_kcrs[static_cast<size_t>(((k * cg + c) * s.r + r) * s.s + t)] = filters[((k * s.r + r) * s.s + t) * cg + c];
    x = x_nchw.data();
    filters = w_kcrs.data();
  }
  host::ConvWindow win;
  win.in = {1, s.h, s.w};
  win.kernel = {1, s.r, s.s};
  win.stride = {1, s.stride_h, s.stride_w};
  win.dilation = {1, s.dilation_h, s.dilation_w};
  win.pad_begin = {0, s.pad_h, s.pad_w};
  win.pad_end = {0, s.pad_h, s.pad_w};
  win.out = {1, P, Q};
  std::vector<double> acc(static_cast<size_t>(s.n * s.k * P * Q));
  // One image per task: images write disjoint outputs.
  parallel_for(s.n, [&](int64_t n) {
    host::conv<double>(x + n * s.c * s.h * s.w, filters, acc.data() + n * s.k * P * Q, 1, s.c, s.k, s.groups, win);
  });
  std::span<const HostTensor> extra = in.subspan(2);
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t k = 0; k < s.k; ++k)
      for (int64_t p = 0; p < P; ++p)
        for (int64_t q = 0; q < Q; ++q) {
          int64_t index = nhwc ? ((n * P + p) * Q + q) * s.k + k : ((n * s.k + k) * P + p) * Q + q;
          double v = acc[static_cast<size_t>(((n * s.k + k) * P + p) * Q + q)];
          out.data[static_cast<size_t>(index)] = static_cast<float>(epilogue(w, extra, v, k, index));
        }
  return out;
}

HostTensor softmax(const HostTensor& x, int64_t rows, int64_t cols) {
  HostTensor out = make({rows, cols});
  for (int64_t i = 0; i < rows; ++i) host::softmax(x.data.data() + i * cols, out.data.data() + i * cols, cols, 1);
  return out;
}

HostTensor reduce(const ReduceShape& s, const HostTensor& x) {
  HostTensor out = make({s.rows});
  for (int64_t i = 0; i < s.rows; ++i) {
    const float* row = x.data.data() + i * s.cols;
    double v = s.op == ReduceOp::kMax ? -INFINITY : 0.0;
    for (int64_t j = 0; j < s.cols; ++j) v = s.op == ReduceOp::kMax ? std::max<double>(v, row[j]) : v + row[j];
    if (s.op == ReduceOp::kMean) v /= static_cast<double>(s.cols);
    out.data[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return out;
}

HostTensor elementwise(const ElementwiseShape& s, std::span<const HostTensor> in) {
  HostTensor out = make({s.n});
  for (int64_t i = 0; i < s.n; ++i) {
    size_t next = 1;
    double v = in[0].data[static_cast<size_t>(i)];
    for (EltwiseOp op : s.ops) {
      double o = eltwise_is_binary(op) ? in[next++].data[static_cast<size_t>(i)] : 0.0;
      switch (op) {
        case EltwiseOp::kAdd: v += o; break;
        case EltwiseOp::kSub: v -= o; break;
        case EltwiseOp::kMul: v *= o; break;
        case EltwiseOp::kDiv: v /= o; break;
        case EltwiseOp::kMax: v = std::max(v, o); break;
        case EltwiseOp::kMin: v = std::min(v, o); break;
        case EltwiseOp::kRelu: v = std::max(v, 0.0); break;
        case EltwiseOp::kGelu: v = gelu(v); break;
        case EltwiseOp::kSigmoid: v = 1.0 / (1.0 + std::exp(-v)); break;
        case EltwiseOp::kTanh: v = std::tanh(v); break;
        case EltwiseOp::kExp: v = std::exp(v); break;
        case EltwiseOp::kNeg: v = -v; break;
        case EltwiseOp::kAbs: v = std::abs(v); break;
      }
    }
    out.data[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return out;
}

}  // namespace

int64_t HostTensor::elements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

float round_to(DType dtype, float v) {
  if (dtype == DType::kF32 || !std::isfinite(v)) return v;
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if (dtype == DType::kBF16) {
    bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest even on the upper 16 bits
    bits &= 0xFFFF0000u;
  } else {
    float a = std::fabs(v);
    if (a >= 65520.0f) return std::copysign(INFINITY, v);
    if (a < 6.103515625e-05f) return std::nearbyint(v * 16777216.0f) / 16777216.0f;  // f16 subnormals: 2^-24 steps
    bits += 0xFFF + ((bits >> 13) & 1);  // 10 mantissa bits, round to nearest even
    bits &= 0xFFFFE000u;
  }
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

uint16_t f16_bits(float v) {
  uint32_t f;
  std::memcpy(&f, &v, sizeof f);
  uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  float a = std::fabs(v);
  if (std::isnan(v)) return static_cast<uint16_t>(sign | 0x7E00u);
  if (a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7C00u);
  if (a < 6.103515625e-05f) return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f)));
  float r = round_to(DType::kF16, a);
  uint32_t rb;
  std::memcpy(&rb, &r, sizeof rb);
  uint32_t exponent = ((rb >> 23) & 0xFFu) - 127 + 15, mantissa = (rb >> 13) & 0x3FFu;
  return static_cast<uint16_t>(sign | (exponent << 10) | mantissa);
}

float f16_value(uint16_t h) {
  float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 1024.0f, exponent - 15);
}

uint16_t bf16_bits(float v) {
  float r = std::isnan(v) ? NAN : round_to(DType::kBF16, v);
  uint32_t f;
  std::memcpy(&f, &r, 4);
  return static_cast<uint16_t>(f >> 16);
}

float bf16_value(uint16_t b) {
  uint32_t f = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &f, 4);
  return v;
}

namespace {
float tf32_value(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits += 0xFFF + ((bits >> 13) & 1);
  bits &= 0xFFFFE000u;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}
}  // namespace

std::vector<uint8_t> encode(const HostTensor& t, DType dtype) {
  std::vector<uint8_t> out(t.data.size() * static_cast<size_t>(dtype_bytes(dtype)));
  for (size_t i = 0; i < t.data.size(); ++i) {
    float v = t.data[i];
    if (dtype == DType::kF32) {
      std::memcpy(out.data() + 4 * i, &v, 4);
      continue;
    }
    uint16_t bits = dtype == DType::kF16 ? f16_bits(v) : bf16_bits(v);
    std::memcpy(out.data() + 2 * i, &bits, 2);
  }
  return out;
}

HostTensor decode(std::span<const uint8_t> bytes, std::vector<int64_t> shape, DType dtype) {
  HostTensor t = make(std::move(shape));
  TESSERA_CHECK(bytes.size() == t.data.size() * static_cast<size_t>(dtype_bytes(dtype)), "byte count does not match the shape");
  for (size_t i = 0; i < t.data.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&t.data[i], bytes.data() + 4 * i, 4);
      continue;
    }
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    t.data[i] = dtype == DType::kF16 ? f16_value(bits) : bf16_value(bits);
  }
  return t;
}

std::vector<HostTensor> random_inputs(const Workload& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> mag(1.0f / 64, 1.0f);
  std::vector<HostTensor> out;
  for (const TensorAccess& t : w.expr().tensors) {
    if (t.role != TensorRole::kInput) continue;
    HostTensor h = make(t.shape);
    for (float& v : h.data) {
      v = round_to(t.dtype, (rng() & 1 ? 1.0f : -1.0f) * mag(rng));
      // Operands that tf32 tensor cores will read keep tf32's 10 mantissa bits (as f16 does).
      if (w.allow_tf32 && t.dtype == DType::kF32 && (t.name == "A" || t.name == "B" || t.name == "X" || t.name == "W"))
        v = tf32_value(v);
    }
    out.push_back(std::move(h));
  }
  return out;
}

HostTensor matmul_epilogue_reference(const Workload& w, const HostTensor& accumulated,
                                     std::span<const HostTensor> inputs) {
  TESSERA_CHECK(w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul, "not a matmul: " + w.key());
  const MatmulShape& s = w.matmul();
  TESSERA_CHECK(accumulated.elements() == s.batch * s.m * s.n, "accumulator shape differs from " + w.key());
  TESSERA_CHECK(inputs.size() >= 2, "matmul inputs missing");
  HostTensor out = accumulated;
  std::span<const HostTensor> extra = inputs.subspan(2);
  for (int64_t index = 0; index < accumulated.elements(); ++index)
    out.data[static_cast<size_t>(index)] =
        static_cast<float>(epilogue(w, extra, accumulated.data[static_cast<size_t>(index)], index % s.n, index));
  return out;
}

HostTensor reference(const Workload& w, std::span<const HostTensor> inputs) {
  check_inputs(w, inputs);
  switch (w.kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: return matmul(w, inputs);
    case OpKind::kConv2d: return conv2d(w, inputs);
    case OpKind::kSoftmax: return softmax(inputs[0], w.rows().rows, w.rows().cols);
    case OpKind::kLayernorm: return layernorm_reference(inputs[0], inputs[1], inputs[2], w.rows().epsilon);
    case OpKind::kReduce: return reduce(w.reduce(), inputs[0]);
    case OpKind::kElementwise: return elementwise(w.elementwise(), inputs);
  }
  TESSERA_UNREACHABLE("unknown OpKind");
}

HostTensor layernorm_reference(const HostTensor& x, const HostTensor& gamma, const HostTensor& beta, double epsilon) {
  TESSERA_CHECK(!x.shape.empty(), "layernorm of a scalar");
  int64_t cols = x.shape.back(), rows = x.elements() / cols;
  TESSERA_CHECK(gamma.elements() == cols && beta.elements() == cols, "gamma and beta must have the last extent");
  HostTensor out{x.shape, std::vector<float>(x.data.size())};
  for (int64_t i = 0; i < rows; ++i) {
    const float* row = x.data.data() + i * cols;
    const host::RowStats st = host::layernorm_stats(row, cols, epsilon);
    for (int64_t j = 0; j < cols; ++j)
      out.data[static_cast<size_t>(i * cols + j)] = static_cast<float>(
          (row[j] - st.mean) * st.inv * gamma.data[static_cast<size_t>(j)] + beta.data[static_cast<size_t>(j)]);
  }
  return out;
}

}  // namespace tessera::kernels
