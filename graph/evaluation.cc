// Host evaluation of the graph operators: the kernels (elementwise with broadcasting, the
// contractions and convolutions of kernels/host_math.h, pools, normalisations, data movement) and evaluate_node;
// whole graphs run in run_graph.cc.
//
// evaluate_node runs inference first (shape_inference.cc), with every input marked constant, so
// all input checks live in inference and the kernels may assume consistent shapes. Kernels
// compute floats in f32 (reductions accumulate in double) and integers in int64; evaluate_node
// then rounds floats to f16/bf16 storage and wraps integers to their width, in one place.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"
#include "core/workload.h"
#include "graph/op_semantics.h"
#include "graph/ops.h"
#include "kernels/reference.h"

namespace tessera::graph {
namespace {

using namespace op_detail;

// ---------------------------------------------------------------------------------------
// Evaluation kernels. Outputs arrive allocated with their inferred type and shape.

template <class T, class U, class F>
void binary_loop(const Tensor& a, const Tensor& b, std::vector<U>& out, const Shape& shape, F f) {
  Operand<T> x = operand<T>(a, shape), y = operand<T>(b, shape);
  for (size_t k = 0; k < out.size(); ++k) out[k] = f(x[k], y[k]);
}

void eval_binary(const OpContext& c, const Tensor& a, const Tensor& b, Tensor& y) {
  const Shape& s = y.shape;
  if (c.op() == OpType::kEqual) {
    if (is_float(a.type))
      binary_loop<float>(a, b, y.i, s, [](float p, float q) -> int64_t { return p == q; });
    else
      binary_loop<int64_t>(a, b, y.i, s, [](int64_t p, int64_t q) -> int64_t { return p == q; });
    return;
  }
  if (c.op() == OpType::kPow) {
    if (is_float(a.type)) {
      if (is_float(b.type))
        binary_loop<float>(a, b, y.f, s, [](float p, float q) { return std::pow(p, q); });
      else
        binary_loop<float>(a, Tensor::floats(b.shape, std::vector<float>(b.i.begin(), b.i.end())), y.f, s,
                           [](float p, float q) { return std::pow(p, q); });
      return;
    }
    if (is_float(b.type)) {
      Tensor base = Tensor::floats(a.shape, std::vector<float>(a.i.begin(), a.i.end()));
      Operand<float> x = operand<float>(base, s), e = operand<float>(b, s);
      for (size_t k = 0; k < y.i.size(); ++k)
        y.i[k] = float_to_int(std::pow(static_cast<double>(x[k]), static_cast<double>(e[k])));
      return;
    }
    binary_loop<int64_t>(a, b, y.i, s, [&](int64_t p, int64_t q) {
      if (q < 0) c.fail("an integer raised to a negative integer power");
      int64_t r = 1;
      for (; q > 0; q >>= 1, p = wrap_mul(p, p))
        if (q & 1) r = wrap_mul(r, p);
      return r;
    });
    return;
  }
  if (c.op() == OpType::kMod) {
    if (is_float(a.type))
      return binary_loop<float>(a, b, y.f, s, [](float p, float q) { return std::fmod(p, q); });
    bool fmod = mod_is_fmod(c);
    return binary_loop<int64_t>(a, b, y.i, s, [&](int64_t p, int64_t q) {
      if (q == 0) c.fail("integer modulo by zero");
      if (q == -1) return int64_t{0};  // INT64_MIN % -1 overflows
      int64_t r = p % q;
      return !fmod && r != 0 && (r < 0) != (q < 0) ? r + q : r;
    });
  }
  if (is_float(a.type)) {
    switch (c.op()) {
      case OpType::kAdd:
        return binary_loop<float>(a, b, y.f, s, [](float p, float q) { return p + q; });
      case OpType::kSub:
        return binary_loop<float>(a, b, y.f, s, [](float p, float q) { return p - q; });
      case OpType::kMul:
        return binary_loop<float>(a, b, y.f, s, [](float p, float q) { return p * q; });
      case OpType::kDiv:
        return binary_loop<float>(a, b, y.f, s, [](float p, float q) { return p / q; });
      default:
        TESSERA_UNREACHABLE("not a binary arithmetic operator");
    }
  }
  switch (c.op()) {
    case OpType::kAdd:
      return binary_loop<int64_t>(a, b, y.i, s, wrap_add);
    case OpType::kSub:
      return binary_loop<int64_t>(a, b, y.i, s, wrap_sub);
    case OpType::kMul:
      return binary_loop<int64_t>(a, b, y.i, s, wrap_mul);
    case OpType::kDiv:
      return binary_loop<int64_t>(a, b, y.i, s, [&](int64_t p, int64_t q) {
        if (q == 0) c.fail("integer division by zero");
        return q == -1 ? wrap_sub(0, p) : p / q;
      });
    default:
      TESSERA_UNREACHABLE("not a binary arithmetic operator");
  }
}

template <class F>
void map_floats(const Tensor& x, Tensor& y, F f) {
  for (size_t k = 0; k < y.f.size(); ++k) y.f[k] = f(x.f[k]);
}

void eval_unary(const OpContext& c, const Tensor& x, Tensor& y) {
  if (!is_float(x.type)) {
    for (size_t k = 0; k < y.i.size(); ++k) {
      int64_t v = x.i[k];
      y.i[k] = c.op() == OpType::kNeg    ? wrap_sub(0, v)
               : c.op() == OpType::kRelu ? std::max<int64_t>(v, 0)
               : c.op() == OpType::kAbs  ? (v < 0 ? wrap_sub(0, v) : v)
                                         : v;
    }
    return;
  }
  switch (c.op()) {
    case OpType::kSqrt:
      return map_floats(x, y, [](float v) { return std::sqrt(v); });
    case OpType::kExp:
      return map_floats(x, y, [](float v) { return std::exp(v); });
    case OpType::kNeg:
      return map_floats(x, y, [](float v) { return -v; });
    case OpType::kAbs:
      return map_floats(x, y, [](float v) { return std::fabs(v); });
    case OpType::kRelu:
      return map_floats(x, y, relu);
    case OpType::kSigmoid:
      return map_floats(x, y, sigmoid);
    case OpType::kTanh:
      return map_floats(x, y, [](float v) { return std::tanh(v); });
    case OpType::kErf:
      return map_floats(x, y, [](float v) { return std::erf(v); });
    case OpType::kReciprocal:
      return map_floats(x, y, [](float v) { return 1.0f / v; });
    case OpType::kLog:
      return map_floats(x, y, [](float v) { return std::log(v); });
    case OpType::kFloor:
      return map_floats(x, y, [](float v) { return std::floor(v); });
    case OpType::kCeil:
      return map_floats(x, y, [](float v) { return std::ceil(v); });
    case OpType::kHardSigmoid: {
      const float alpha = static_cast<float>(c.attr_float("alpha", 0.2)), beta = static_cast<float>(c.attr_float("beta", 0.5));
      return map_floats(x, y, [&](float v) { return std::max(0.0f, std::min(1.0f, alpha * v + beta)); });
    }
    case OpType::kHardSwish:
      return map_floats(x, y, [](float v) { return v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f)); });
    case OpType::kGelu:
      if (c.attr_string("approximate", "none") == "tanh") return map_floats(x, y, gelu_tanh);
      return map_floats(x, y, gelu_erf);
    case OpType::kIdentity:
      y.f = x.f;
      return;
    default:
      TESSERA_UNREACHABLE("not a unary operator");
  }
}

// Max / Min over one or more inputs. A NaN wins, as in numpy's maximum and minimum (ONNX's
// reference implementation).
template <class T>
void eval_extremum(bool max, const Tensor* const* in, size_t n_in, Tensor& y) {
  auto& v = vals<T>(y);
  Operand<T> first = operand<T>(*in[0], y.shape);
  for (size_t k = 0; k < v.size(); ++k) v[k] = first[k];
  for (size_t j = 1; j < n_in; ++j) {
    Operand<T> x = operand<T>(*in[j], y.shape);
    for (size_t k = 0; k < v.size(); ++k) {
      T q = x[k];
      bool nan = false;
      if constexpr (std::is_same_v<T, float>) nan = std::isnan(q);
      if (nan || (max ? q > v[k] : q < v[k])) v[k] = q;
    }
  }
}

void eval_clip(const Tensor* const* in, size_t n, Tensor& y) {
  const Tensor& x = *in[0];
  const Tensor* lo = n > 1 ? in[1] : nullptr;
  const Tensor* hi = n > 2 ? in[2] : nullptr;
  if (is_float(x.type)) {
    float a = lo ? lo->f[0] : -std::numeric_limits<float>::infinity();
    float b = hi ? hi->f[0] : std::numeric_limits<float>::infinity();
    for (size_t k = 0; k < y.f.size(); ++k) y.f[k] = std::min(std::max(x.f[k], a), b);
  } else {
    int64_t a = lo ? lo->i[0] : std::numeric_limits<int64_t>::min();
    int64_t b = hi ? hi->i[0] : std::numeric_limits<int64_t>::max();
    for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = std::min(std::max(x.i[k], a), b);
  }
}

template <class T>
void where_loop(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& y) {
  Operand<int64_t> m = operand<int64_t>(cond, y.shape);
  Operand<T> p = operand<T>(a, y.shape), q = operand<T>(b, y.shape);
  auto& out = vals<T>(y);
  for (size_t k = 0; k < out.size(); ++k) out[k] = m[k] ? p[k] : q[k];
}

void eval_cast(const Tensor& x, Tensor& y) {
  if (is_float(y.type)) {
    if (is_float(x.type))
      y.f = x.f;
    else
      for (size_t k = 0; k < y.f.size(); ++k) y.f[k] = static_cast<float>(x.i[k]);
  } else if (is_float(x.type)) {
    for (size_t k = 0; k < y.i.size(); ++k)
      y.i[k] = y.type == ElemType::kBool ? x.f[k] != 0.0f : float_to_int(static_cast<double>(x.f[k]));
  } else {
    y.i = x.i;
  }
}

// C (m x n, row-major) = op(A) op(B); A is m x k (or k x m stored when transposed), B k x n
// (or n x k).

void eval_matmul(const Tensor& a, const Tensor& b, bool ta, bool tb, Tensor& y) {
  Shape as = a.shape, bs = b.shape;
  if (as.size() == 1) as.insert(as.begin(), 1);
  if (bs.size() == 1) bs.push_back(1);
  int64_t m = as[as.size() - (ta ? 1 : 2)], k = as[as.size() - (ta ? 2 : 1)];
  int64_t n = bs[bs.size() - (tb ? 2 : 1)];
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  size_t r = std::max(a_batch.size(), b_batch.size());
  Shape batch(r);
  for (size_t d = 0; d < r; ++d) {
    int64_t p = d + a_batch.size() >= r ? a_batch[d + a_batch.size() - r] : 1;
    int64_t q = d + b_batch.size() >= r ? b_batch[d + b_batch.size() - r] : 1;
    batch[d] = std::max(p, q);
  }
  Shape a_strides = broadcast_strides(a_batch, batch), b_strides = broadcast_strides(b_batch, batch);
  int64_t count = product(batch);
  for (int64_t t = 0; t < count; ++t) {
    int64_t rest = t, ai = 0, bi = 0;
    for (size_t d = r; d-- > 0;) {
      int64_t idx = rest % batch[d];
      rest /= batch[d];
      ai += idx * a_strides[d];
      bi += idx * b_strides[d];
    }
    kernels::host::gemm<float>(a.f.data() + ai * m * k, b.f.data() + bi * k * n, y.f.data() + t * m * n, m, n, k, ta, tb);
  }
}

void eval_gemm(const OpContext& c, const Tensor* const* in, size_t n_in, Tensor& y) {
  bool ta = c.attr_int("transA", 0) != 0, tb = c.attr_int("transB", 0) != 0;
  const Tensor &a = *in[0], &b = *in[1];
  int64_t m = y.shape[0], n = y.shape[1], k = a.shape[ta ? 0 : 1];
  kernels::host::gemm<float>(a.f.data(), b.f.data(), y.f.data(), m, n, k, ta, tb);
  float alpha = static_cast<float>(c.attr_float("alpha", 1.0)),
        beta = static_cast<float>(c.attr_float("beta", 1.0));
  if (alpha != 1.0f)
    for (float& v : y.f) v *= alpha;
  if (n_in > 2 && in[2]) {
    Operand<float> bias = operand<float>(*in[2], y.shape);
    for (size_t j = 0; j < y.f.size(); ++j) y.f[j] += beta * bias[j];
  }
}

// Applies an epilogue to y; `extra` are its bias / residual inputs in order. A bias adds
// along the last dimension (matmul) or per channel of an NC... output (conv).
void apply_epilogue(const std::vector<EpilogueStep>& steps, const Tensor* const* extra, bool conv,
                    Tensor& y) {
  size_t next = 0;
  for (EpilogueStep s : steps) {
    switch (s) {
      case EpilogueStep::kBias: {
        // y is [outer, n, inner]: inner = 1 for a matmul, the spatial size for a conv.
        const std::vector<float>& bias = extra[next++]->f;
        size_t n = bias.size(), inner = conv ? static_cast<size_t>(product(y.shape, 2, y.shape.size())) : 1;
        if (n * inner == 0) break;
        float* p = y.f.data();
        for (size_t o = 0; o < y.f.size() / (n * inner); ++o)
          for (size_t ch = 0; ch < n; ++ch)
            for (size_t j = 0; j < inner; ++j) *p++ += bias[ch];
        break;
      }
      case EpilogueStep::kResidual: {
        const std::vector<float>& r = extra[next++]->f;
        for (size_t j = 0; j < y.f.size(); ++j) y.f[j] += r[j];
        break;
      }
      case EpilogueStep::kRelu:
        for (float& v : y.f) v = relu(v);
        break;
      case EpilogueStep::kGelu:
        for (float& v : y.f) v = gelu_erf(v);
        break;
    }
  }
}

void eval_conv(const Tensor& x, const Tensor& w, const Window& win, int64_t group, Tensor& y) {
  kernels::host::conv<float>(x.f.data(), w.f.data(), y.f.data(), x.shape[0], x.shape[1], w.shape[0], group, win);
}

template <class T>
void max_pool(const std::vector<T>& x, std::vector<T>& y, int64_t planes, const Window& w) {
  const auto &in = w.in, &out = w.out;
  T lowest = std::numeric_limits<T>::lowest();
  for (int64_t p = 0; p < planes; ++p) {
    const T* src = x.data() + p * w.in_size();
    T* dst = y.data() + p * w.out_size();
    for (int64_t od = 0; od < out[0]; ++od)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow) {
          T best = lowest;
          for (int64_t kd = 0; kd < w.kernel[0]; ++kd) {
            int64_t zd = od * w.stride[0] - w.pad_begin[0] + kd * w.dilation[0];
            if (zd < 0 || zd >= in[0]) continue;
            for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
              int64_t zh = oh * w.stride[1] - w.pad_begin[1] + kh * w.dilation[1];
              if (zh < 0 || zh >= in[1]) continue;
              const T* line = src + (zd * in[1] + zh) * in[2];
              for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
                int64_t zw = ow * w.stride[2] - w.pad_begin[2] + kw * w.dilation[2];
                if (zw >= 0 && zw < in[2]) best = std::max(best, line[zw]);
              }
            }
          }
          *dst++ = best;
        }
  }
}

// With count_include_pad, the divisor counts the window's positions inside the padded input
// (explicit pads included, the overhang of a ceil_mode window not), as onnxruntime does.
void average_pool(const std::vector<float>& x, std::vector<float>& y, int64_t planes, const Window& w,
                  bool count_include_pad) {
  const auto &in = w.in, &out = w.out;
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = x.data() + p * w.in_size();
    float* dst = y.data() + p * w.out_size();
    for (int64_t od = 0; od < out[0]; ++od)
      for (int64_t oh = 0; oh < out[1]; ++oh)
        for (int64_t ow = 0; ow < out[2]; ++ow) {
          double sum = 0;
          int64_t valid = 0, padded = 0;
          for (int64_t kd = 0; kd < w.kernel[0]; ++kd) {
            int64_t zd = od * w.stride[0] - w.pad_begin[0] + kd * w.dilation[0];
            bool pd = zd >= -w.pad_begin[0] && zd < in[0] + w.pad_end[0], vd = zd >= 0 && zd < in[0];
            for (int64_t kh = 0; kh < w.kernel[1]; ++kh) {
              int64_t zh = oh * w.stride[1] - w.pad_begin[1] + kh * w.dilation[1];
              bool ph = zh >= -w.pad_begin[1] && zh < in[1] + w.pad_end[1], vh = zh >= 0 && zh < in[1];
              for (int64_t kw = 0; kw < w.kernel[2]; ++kw) {
                int64_t zw = ow * w.stride[2] - w.pad_begin[2] + kw * w.dilation[2];
                bool pw = zw >= -w.pad_begin[2] && zw < in[2] + w.pad_end[2], vw = zw >= 0 && zw < in[2];
                padded += pd && ph && pw;
                if (vd && vh && vw) {
                  sum += src[(zd * in[1] + zh) * in[2] + zw];
                  ++valid;
                }
              }
            }
          }
          int64_t count = count_include_pad ? padded : valid;
          *dst++ = count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
        }
  }
}

void eval_global_average_pool(const Tensor& x, Tensor& y) {
  int64_t planes = x.shape[0] * x.shape[1], size = product(x.shape, 2, x.shape.size());
  for (int64_t p = 0; p < planes; ++p) {
    double sum = 0;
    for (int64_t j = 0; j < size; ++j) sum += x.f[static_cast<size_t>(p * size + j)];
    y.f[static_cast<size_t>(p)] = static_cast<float>(sum / static_cast<double>(size));
  }
}

void eval_softmax(const OpContext& c, const Tensor& x, Tensor& y) {
  size_t axis =
      static_cast<size_t>(c.axis(c.attr_int("axis", -1), static_cast<int64_t>(x.shape.size()), "axis"));
  int64_t outer = product(x.shape, 0, axis), n = x.shape[axis],
          inner = product(x.shape, axis + 1, x.shape.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      kernels::host::softmax(x.f.data() + o * n * inner + i, y.f.data() + o * n * inner + i, n, inner);
    }
}

void eval_layer_norm(const OpContext& c, const Tensor* const* in, size_t n_in, std::vector<Tensor>& out) {
  const Tensor& x = *in[0];
  size_t axis =
      static_cast<size_t>(c.axis(c.attr_int("axis", -1), static_cast<int64_t>(x.shape.size()), "axis"));
  double epsilon = c.attr_float("epsilon", 1e-5);
  Shape normalised(x.shape.begin() + static_cast<int64_t>(axis), x.shape.end());
  int64_t rows = product(x.shape, 0, axis), d = product(normalised);
  Operand<float> scale = operand<float>(*in[1], normalised);
  std::optional<Operand<float>> bias;
  if (n_in > 2 && in[2]) bias = operand<float>(*in[2], normalised);
  Tensor& y = out[0];
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = x.f.data() + r * d;
    float* dst = y.f.data() + r * d;
    const kernels::host::RowStats st = kernels::host::layernorm_stats(src, d, epsilon);
    const double mean = st.mean, inv = st.inv;
    for (size_t j = 0; j < static_cast<size_t>(d); ++j) {
      float v = static_cast<float>((src[j] - mean) * inv) * scale[j];
      dst[j] = bias ? v + (*bias)[j] : v;
    }
    if (out.size() > 1) out[1].f[static_cast<size_t>(r)] = static_cast<float>(mean);
    if (out.size() > 2) out[2].f[static_cast<size_t>(r)] = static_cast<float>(inv);
  }
}

void eval_batch_norm(const OpContext& c, const Tensor* const* in, Tensor& y) {
  const Tensor& x = *in[0];
  double epsilon = c.attr_float("epsilon", 1e-5);
  int64_t batch = x.shape[0], channels = x.shape[1], size = product(x.shape, 2, x.shape.size());
  for (int64_t ch = 0; ch < channels; ++ch) {
    size_t k = static_cast<size_t>(ch);
    float a = static_cast<float>(in[1]->f[k] / std::sqrt(static_cast<double>(in[4]->f[k]) + epsilon));
    float b = in[2]->f[k] - a * in[3]->f[k];
    for (int64_t n = 0; n < batch; ++n) {
      size_t base = static_cast<size_t>((n * channels + ch) * size);
      for (size_t j = base; j < base + static_cast<size_t>(size); ++j) y.f[j] = a * x.f[j] + b;
    }
  }
}

template <class T>
void eval_transpose(const std::vector<int64_t>& perm, const Tensor& x, Tensor& y) {
  Shape in_strides = strides_of(x.shape), strides;
  for (int64_t p : perm) strides.push_back(in_strides[static_cast<size_t>(p)]);
  strided_copy(vals<T>(x).data(), 0, y.shape, strides, vals<T>(y).data());
}

template <class T>
void eval_slice(const std::vector<SliceDim>& dims, const Tensor& x, Tensor& y) {
  Shape in_strides = strides_of(x.shape), strides(dims.size());
  int64_t base = 0;
  for (size_t d = 0; d < dims.size(); ++d) {
    base += dims[d].start * in_strides[d];
    strides[d] = dims[d].step * in_strides[d];
  }
  if (product(y.shape) > 0) strided_copy(vals<T>(x).data(), base, y.shape, strides, vals<T>(y).data());
}

template <class T>
void eval_concat(const Tensor* const* in, size_t n_in, size_t axis, Tensor& y) {
  int64_t outer = product(y.shape, 0, axis), inner = product(y.shape, axis + 1, y.shape.size());
  int64_t out_chunk = y.shape[axis] * inner, offset = 0;
  auto& dst = vals<T>(y);
  for (size_t k = 0; k < n_in; ++k) {
    const auto& src = vals<T>(*in[k]);
    int64_t chunk = in[k]->shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::copy(src.begin() + o * chunk, src.begin() + (o + 1) * chunk, dst.begin() + o * out_chunk + offset);
    offset += chunk;
  }
}

template <class T>
void eval_split(const Tensor& x, size_t axis, std::vector<Tensor>& out) {
  int64_t outer = product(x.shape, 0, axis), inner = product(x.shape, axis + 1, x.shape.size());
  int64_t in_chunk = x.shape[axis] * inner, offset = 0;
  const auto& src = vals<T>(x);
  for (Tensor& y : out) {
    auto& dst = vals<T>(y);
    int64_t chunk = y.shape[axis] * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::copy(src.begin() + o * in_chunk + offset, src.begin() + o * in_chunk + offset + chunk,
                dst.begin() + o * chunk);
    offset += chunk;
  }
}

template <class T>
void eval_gather(const OpContext& c, const Tensor& x, const Tensor& indices, Tensor& y) {
  size_t axis =
      static_cast<size_t>(c.axis(c.attr_int("axis", 0), static_cast<int64_t>(x.shape.size()), "axis"));
  int64_t outer = product(x.shape, 0, axis), dim = x.shape[axis],
          inner = product(x.shape, axis + 1, x.shape.size());
  std::vector<int64_t> idx = indices.i;
  for (int64_t& k : idx) {
    if (k < -dim || k >= dim)
      c.fail("index " + std::to_string(k) + " is out of range for dimension " + std::to_string(axis) +
             " of " + shape_text(x.shape));
    if (k < 0) k += dim;
  }
  const auto& src = vals<T>(x);
  auto dst = vals<T>(y).begin();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : idx) {
      auto from = src.begin() + (o * dim + k) * inner;
      dst = std::copy(from, from + inner, dst);
    }
}

// y[i] = x[i with its axis coordinate replaced by indices[i]], over the positions i of indices.
template <class T>
void eval_gather_elements(const OpContext& c, const Tensor& x, const Tensor& indices, Tensor& y) {
  size_t r = x.shape.size();
  size_t axis = static_cast<size_t>(c.axis(c.attr_int("axis", 0), static_cast<int64_t>(r), "axis"));
  int64_t dim = x.shape[axis];
  Shape strides = strides_of(x.shape), pos(r, 0);
  const auto& src = vals<T>(x);
  auto& dst = vals<T>(y);
  // Offset in x of the current index position, its axis coordinate left out.
  int64_t base = 0;
  for (size_t k = 0; k < dst.size(); ++k) {
    int64_t j = indices.i[k];
    if (j < -dim || j >= dim)
      c.fail("index " + std::to_string(j) + " is out of range for dimension " + std::to_string(axis) +
             " of " + shape_text(x.shape));
    if (j < 0) j += dim;
    dst[k] = src[static_cast<size_t>(base + j * strides[axis])];
    for (size_t d = r; d-- > 0;) {
      int64_t step = d == axis ? 0 : strides[d];
      base += step;
      if (++pos[d] < indices.shape[d]) break;
      base -= step * indices.shape[d];
      pos[d] = 0;
    }
  }
}

// The Reduce operators over the dimensions `reduced` (none: an identity): sums and means in
// double for floats, integers wrapped; an empty reduction gives the operator's
// identity (0, 1, the lowest or highest value).
template <class T>
void eval_reduce(OpType op, const std::vector<bool>& reduced, const Tensor& x, Tensor& y) {
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  if (x.shape.empty()) {
    out = in;
    return;
  }
  Shape kept = x.shape;
  for (size_t d = 0; d < kept.size(); ++d)
    if (reduced[d]) kept[d] = 1;
  Shape strides = strides_of(kept);
  for (size_t d = 0; d < kept.size(); ++d)
    if (reduced[d]) strides[d] = 0;
  using Acc = std::conditional_t<std::is_same_v<T, float>, double, int64_t>;
  const Acc first = op == OpType::kReduceProd  ? Acc{1}
                    : op == OpType::kReduceMax ? std::numeric_limits<Acc>::lowest()
                    : op == OpType::kReduceMin ? std::numeric_limits<Acc>::max()
                                               : Acc{0};
  std::vector<Acc> acc(out.size(), first);
  auto add = [&](Acc& a, T v) {
    switch (op) {
      case OpType::kReduceProd:
        if constexpr (std::is_same_v<T, float>)
          a *= v;
        else
          a = wrap_mul(a, v);
        break;
      case OpType::kReduceMax: a = std::max<Acc>(a, v); break;
      case OpType::kReduceMin: a = std::min<Acc>(a, v); break;
      default:
        if constexpr (std::is_same_v<T, float>)
          a += v;
        else
          a = wrap_add(a, v);
    }
  };
  int64_t n = x.shape.back(), step = strides.back();
  for_each_row(x.shape, strides, 0, [&](int64_t row, int64_t offset) {
    for (int64_t j = 0; j < n; ++j) add(acc[static_cast<size_t>(offset + j * step)], in[static_cast<size_t>(row * n + j)]);
  });
  if (op == OpType::kReduceMean) {
    const double count = static_cast<double>(product(x.shape)) / static_cast<double>(std::max<size_t>(out.size(), 1));
    for (size_t k = 0; k < out.size(); ++k) out[k] = static_cast<T>(static_cast<double>(acc[k]) / count);
    return;
  }
  for (size_t k = 0; k < out.size(); ++k) {
    if constexpr (std::is_same_v<T, float>)
      out[k] = static_cast<float>(acc[k]);
    else
      out[k] = acc[k];
  }
}

template <class T>
void eval_chain(const OpContext& c, const std::vector<ChainStep>& steps, const Tensor* const* in, Tensor& y) {
  auto& v = vals<T>(y);
  {
    Operand<T> x0 = operand<T>(*in[0], y.shape);
    for (size_t k = 0; k < v.size(); ++k) v[k] = x0[k];
  }
  size_t next = 1;
  auto unary = [&](auto f) {
    for (T& e : v) e = f(e);
  };
  for (ChainStep s : steps) {
    if (eltwise_is_binary(s)) {
      Operand<T> r = operand<T>(*in[next++], y.shape);
      auto binary = [&](auto f) {
        for (size_t k = 0; k < v.size(); ++k) v[k] = f(v[k], r[k]);
      };
      if constexpr (std::is_same_v<T, float>) {
        switch (s) {
          case ChainStep::kAdd:
            binary([](T p, T q) { return p + q; });
            break;
          case ChainStep::kSub:
            binary([](T p, T q) { return p - q; });
            break;
          case ChainStep::kMul:
            binary([](T p, T q) { return p * q; });
            break;
          case ChainStep::kDiv:
            binary([](T p, T q) { return p / q; });
            break;
          case ChainStep::kMax:
            binary([](T p, T q) { return std::max(p, q); });
            break;
          case ChainStep::kMin:
            binary([](T p, T q) { return std::min(p, q); });
            break;
          default:
            TESSERA_UNREACHABLE("not a binary step");
        }
      } else {
        switch (s) {
          case ChainStep::kAdd:
            binary(wrap_add);
            break;
          case ChainStep::kSub:
            binary(wrap_sub);
            break;
          case ChainStep::kMul:
            binary(wrap_mul);
            break;
          case ChainStep::kDiv:
            binary([&](T p, T q) {
              if (q == 0) c.fail("integer division by zero");
              return q == -1 ? wrap_sub(0, p) : p / q;
            });
            break;
          case ChainStep::kMax:
            binary([](T p, T q) { return std::max(p, q); });
            break;
          case ChainStep::kMin:
            binary([](T p, T q) { return std::min(p, q); });
            break;
          default:
            TESSERA_UNREACHABLE("not a binary step");
        }
      }
      continue;
    }
    switch (s) {
      case ChainStep::kRelu:
        unary([](T e) { return e < 0 ? T(0) : e; });
        break;
      case ChainStep::kNeg:
        if constexpr (std::is_same_v<T, float>)
          unary([](T e) { return -e; });
        else
          unary([](T e) { return wrap_sub(0, e); });
        break;
      case ChainStep::kAbs:
        if constexpr (std::is_same_v<T, float>)
          unary([](T e) { return std::fabs(e); });
        else
          unary([](T e) { return e < 0 ? wrap_sub(0, e) : e; });
        break;
      case ChainStep::kGelu:
      case ChainStep::kSigmoid:
      case ChainStep::kTanh:
      case ChainStep::kExp:
        if constexpr (std::is_same_v<T, float>) {
          if (s == ChainStep::kGelu) unary(gelu_erf);
          if (s == ChainStep::kSigmoid) unary(sigmoid);
          if (s == ChainStep::kTanh) unary([](T e) { return std::tanh(e); });
          if (s == ChainStep::kExp) unary([](T e) { return std::exp(e); });
        } else {
          TESSERA_UNREACHABLE("inference rejects transcendental steps on integers");
        }
        break;
      default:
        TESSERA_UNREACHABLE("not a unary step");
    }
  }
}

// Runs `body.template operator()<T>()` with T = float for floating `t`, int64_t otherwise.
template <class Body>
void by_storage(ElemType t, Body&& body) {
  if (is_float(t))
    body.template operator()<float>();
  else
    body.template operator()<int64_t>();
}

void copy_values(const Tensor& x, Tensor& y) {
  y.f = x.f;
  y.i = x.i;
}

// Expand, Shape and ConstantOfShape: outputs made from their input's shape.
void eval_shapes(const Infer& c, const Tensor& x, Tensor& y) {
  if (c.op() == OpType::kExpand) {
    return by_storage(y.type, [&]<class T>() {
      if (product(y.shape) > 0)
        strided_copy(vals<T>(x).data(), 0, y.shape, broadcast_strides(x.shape, y.shape), vals<T>(y).data());
    });
  }
  if (c.op() == OpType::kShape) {
    auto [start, end] = shape_range(c);
    y.i.assign(x.shape.begin() + start, x.shape.begin() + end);
    return;
  }
  const double value = c.attr_float("value", 0.0);
  if (is_float(y.type))
    std::fill(y.f.begin(), y.f.end(), static_cast<float>(value));
  else
    std::fill(y.i.begin(), y.i.end(), float_to_int(value));
}

void eval_pool(const Infer& c, const Tensor& x, Tensor& y) {
  if (c.op() == OpType::kGlobalAveragePool) return eval_global_average_pool(x, y);
  Window win;
  infer_pool(c, &win);
  const int64_t planes = y.shape[0] * y.shape[1];
  if (c.op() == OpType::kAveragePool)
    return average_pool(x.f, y.f, planes, win, c.attr_int("count_include_pad", 0) != 0);
  return by_storage(y.type, [&]<class T>() { max_pool(vals<T>(x), vals<T>(y), planes, win); });
}

void evaluate(const Infer& c, const Tensor* const* in, std::vector<Tensor>& out) {
  size_t n_in = c.in.size();
  Tensor& y = out[0];
  switch (c.op()) {
    case OpType::kConv:
    case OpType::kFusedConv: {
      Window win;
      infer_conv(c, &win);
      eval_conv(*in[0], *in[1], win, c.attr_int("group", 1), y);
      if (c.op() == OpType::kConv) {
        if (n_in > 2 && in[2]) apply_epilogue({EpilogueStep::kBias}, in + 2, true, y);
      } else {
        apply_epilogue(epilogue_steps(c), in + 2, true, y);
      }
      return;
    }
    case OpType::kMatMul:
      return eval_matmul(*in[0], *in[1], false, false, y);
    case OpType::kFusedMatMul:
      eval_matmul(*in[0], *in[1], c.attr_int("trans_a", 0) != 0, c.attr_int("trans_b", 0) != 0, y);
      if (const auto alpha = static_cast<float>(c.attr_float("alpha", 1.0)); alpha != 1.0f)
        for (float& v : y.f) v *= alpha;  // the product's scale, before the epilogue
      return apply_epilogue(epilogue_steps(c), in + 2, false, y);
    case OpType::kGemm:
      return eval_gemm(c, in, n_in, y);
    case OpType::kSoftmax:
      return eval_softmax(c, *in[0], y);
    case OpType::kLayerNormalization:
      return eval_layer_norm(c, in, n_in, out);
    case OpType::kBatchNormalization:
      return eval_batch_norm(c, in, y);
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kDiv:
    case OpType::kPow:
    case OpType::kEqual:
    case OpType::kMod:
      return eval_binary(c, *in[0], *in[1], y);
    case OpType::kMax:
    case OpType::kMin:
      return by_storage(y.type, [&]<class T>() { eval_extremum<T>(c.op() == OpType::kMax, in, n_in, y); });
    case OpType::kSqrt:
    case OpType::kExp:
    case OpType::kNeg:
    case OpType::kAbs:
    case OpType::kRelu:
    case OpType::kSigmoid:
    case OpType::kTanh:
    case OpType::kErf:
    case OpType::kGelu:
    case OpType::kIdentity:
    case OpType::kReciprocal:
    case OpType::kLog:
    case OpType::kFloor:
    case OpType::kCeil:
    case OpType::kHardSigmoid:
    case OpType::kHardSwish:
      return eval_unary(c, *in[0], y);
    case OpType::kEinsum:
      return eval_einsum(c, in, y);
    case OpType::kDropout:
      copy_values(*in[0], y);
      if (out.size() > 1) std::fill(out[1].i.begin(), out[1].i.end(), 1);
      return;
    case OpType::kClip:
      return eval_clip(in, n_in, y);
    case OpType::kWhere:
      return by_storage(y.type, [&]<class T>() { where_loop<T>(*in[0], *in[1], *in[2], y); });
    case OpType::kCast:
      return eval_cast(*in[0], y);
    case OpType::kTranspose: {
      std::vector<int64_t> perm = transpose_perm(c);
      return by_storage(y.type, [&]<class T>() { eval_transpose<T>(perm, *in[0], y); });
    }
    case OpType::kReshape:
    case OpType::kFlatten:
    case OpType::kSqueeze:
    case OpType::kUnsqueeze:
      return copy_values(*in[0], y);
    case OpType::kConcat: {
      size_t axis = static_cast<size_t>(c.axis(c.attr_int("axis", 0), c.rank(0), "axis"));
      return by_storage(y.type, [&]<class T>() { eval_concat<T>(in, n_in, axis, y); });
    }
    case OpType::kSplit: {
      int64_t axis = 0;
      split_sizes(c, &axis);
      return by_storage(y.type, [&]<class T>() { eval_split<T>(*in[0], static_cast<size_t>(axis), out); });
    }
    case OpType::kSlice: {
      std::vector<SliceDim> dims = slice_dims(c);
      return by_storage(y.type, [&]<class T>() { eval_slice<T>(dims, *in[0], y); });
    }
    case OpType::kGather:
      return by_storage(y.type, [&]<class T>() { eval_gather<T>(c, *in[0], *in[1], y); });
    case OpType::kGatherElements:
      return by_storage(y.type, [&]<class T>() { eval_gather_elements<T>(c, *in[0], *in[1], y); });
    case OpType::kExpand:
    case OpType::kShape:
    case OpType::kConstantOfShape:
      return eval_shapes(c, *in[0], y);
    case OpType::kConstant: {
      if (c.has("value_float")) y.f = {static_cast<float>(c.attr_float("value_float", 0))};
      if (c.has("value_int")) y.i = {c.attr_int("value_int", 0)};
      if (c.has("value_ints")) y.i = c.attr_ints("value_ints");
      if (c.has("value_floats")) {
        std::vector<double> v = c.attr_floats("value_floats");
        y.f.assign(v.begin(), v.end());
      }
      return;
    }
    case OpType::kMaxPool:
    case OpType::kAveragePool:
    case OpType::kGlobalAveragePool:
      return eval_pool(c, *in[0], y);
    case OpType::kReduceMean:
    case OpType::kReduceSum:
    case OpType::kReduceMax:
    case OpType::kReduceMin:
    case OpType::kReduceProd:
      return by_storage(y.type, [&]<class T>() { eval_reduce<T>(c.op(), reduced_dims(c), *in[0], y); });
    case OpType::kLess:
    case OpType::kGreater:
    case OpType::kLessOrEqual:
    case OpType::kGreaterOrEqual:
    case OpType::kAnd:
    case OpType::kOr:
    case OpType::kXor:
    case OpType::kNot:
    case OpType::kIsNaN:
    case OpType::kIsInf:
    case OpType::kRange:
    case OpType::kTrilu:
    case OpType::kCumSum:
      return eval_mask_op(c, in, y);
    case OpType::kPad:
    case OpType::kTile:
    case OpType::kGatherND:
    case OpType::kScatterND:
      return eval_indexing_op(c, in, y);
    case OpType::kEltwiseChain: {
      std::vector<ChainStep> steps = chain_steps(c);
      return by_storage(y.type, [&]<class T>() { eval_chain<T>(c, steps, in, y); });
    }
    case OpType::kOpaque:
      c.fail("an Opaque node cannot be evaluated");
  }
  TESSERA_UNREACHABLE("unknown OpType");
}



}  // namespace

namespace op_detail {

// Rounds floats to their storage type and wraps integers to their width.
void to_storage(Tensor& t) {
  if (t.type == ElemType::kF16 || t.type == ElemType::kBF16) {
    DType d = t.type == ElemType::kF16 ? DType::kF16 : DType::kBF16;
    for (float& v : t.f) v = kernels::round_to(d, v);
  } else if (!is_float(t.type) && t.type != ElemType::kI64) {
    for (int64_t& v : t.i) v = wrap_to(t.type, v);
  }
}

}  // namespace op_detail

std::vector<Tensor> evaluate_node(OpType op, const Attrs& attrs, std::span<const Tensor* const> inputs,
                                  int num_outputs) {
  OpContext c(op, attrs);
  std::vector<InputInfo> infos(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor* t = inputs[k];
    if (!t) {
      infos[k].present = false;
      continue;
    }
    size_t held = is_float(t->type) ? t->f.size() : t->i.size();
    if (static_cast<int64_t>(held) != product(t->shape))
      c.fail("input " + std::to_string(k) + " holds " + std::to_string(held) + " values for shape " +
             shape_text(t->shape));
    infos[k].type = t->type;
    infos[k].shape = t->shape;
    infos[k].constant = t;
  }
  Infer ctx(op, attrs, infos, num_outputs);
  std::vector<Tensor> out;
  try {
    for (auto& [type, shape] : infer_bounded(ctx)) out.push_back(allocate(type, shape));
  } catch (const std::bad_alloc&) {
    c.fail("its outputs need more memory than this machine can allocate");
  }
  evaluate(ctx, inputs.data(), out);
  for (Tensor& t : out) to_storage(t);
  return out;
}

}  // namespace tessera::graph
