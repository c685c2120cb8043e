// Internal to graph/ (shape_inference.cc, evaluation.cc): what the operators' shape inference
// and their host evaluation share: shape and tensor helpers, OpContext (attribute reads and
// messages that name the operator), Infer (an operator's inputs as inference sees them), the
// window and slice geometry, and the inference functions evaluation reuses.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/workload.h"
#include "graph/ops.h"
#include "kernels/host_math.h"

namespace tessera::graph::op_detail {

using Shape = std::vector<int64_t>;
using OutputSpec = std::pair<ElemType, Shape>;

// ---------------------------------------------------------------------------------------
// Shapes and tensors

inline std::string shape_text(std::span<const int64_t> s) {
  std::string out = "[";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + "]";
}

inline int64_t product(std::span<const int64_t> s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}

inline int64_t product(const Shape& s, size_t from, size_t to) {
  return product(std::span<const int64_t>(s).subspan(from, to - from));
}

inline Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// Whether `from` broadcasts to `to` without changing `to` (ONNX's unidirectional broadcast).
inline bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d)
    if (from[d] != 1 && from[d] != to[off + d]) return false;
  return true;
}

// Element strides of `from` read as `to` (dimensions aligned right, 0 where broadcast).
inline Shape broadcast_strides(const Shape& from, const Shape& to) {
  Shape st(to.size(), 0);
  Shape fs = strides_of(from);
  size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d) st[off + d] = from[d] == 1 ? 0 : fs[d];
  return st;
}


inline bool is_int_index(ElemType t) {
  return t == ElemType::kI64 || t == ElemType::kI32;
}

inline Tensor allocate(ElemType type, Shape shape) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  size_t n = static_cast<size_t>(product(t.shape));
  if (is_float(type))
    t.f.resize(n);
  else
    t.i.resize(n);
  return t;
}

template <class T>
auto& vals(Tensor& t) {
  if constexpr (std::is_same_v<T, float>)
    return t.f;
  else
    return t.i;
}

template <class T>
const auto& vals(const Tensor& t) {
  if constexpr (std::is_same_v<T, float>)
    return t.f;
  else
    return t.i;
}

// Calls f(row, offset) for each innermost row of `shape` (row-major, rank >= 1), where
// offset is where that row starts in a tensor with element `strides`, plus `base`.
template <class F>
void for_each_row(const Shape& shape, const Shape& strides, int64_t base, F&& f) {
  if (product(shape) == 0) return;
  size_t r = shape.size();
  int64_t rows = product(shape, 0, r - 1);
  Shape idx(r - 1, 0);
  int64_t offset = base;
  for (int64_t row = 0; row < rows; ++row) {
    f(row, offset);
    for (size_t d = r - 1; d-- > 0;) {
      offset += strides[d];
      if (++idx[d] < shape[d]) break;
      offset -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

// dst (row-major over `shape`) = src[base + sum_d index_d * strides[d]].
template <class T>
void strided_copy(const T* src, int64_t base, const Shape& shape, const Shape& strides, T* dst) {
  if (shape.empty()) {
    dst[0] = src[base];
    return;
  }
  int64_t n = shape.back(), step = strides.back();
  for_each_row(shape, strides, base, [&](int64_t row, int64_t offset) {
    T* out = dst + row * n;
    const T* in = src + offset;
    if (step == 1)
      std::copy(in, in + n, out);
    else
      for (int64_t j = 0; j < n; ++j) out[j] = in[j * step];
  });
}

// An input of an elementwise kernel read at the output's shape: its own values when the
// shapes agree, a stride-0 scalar, or else a broadcast copy.
template <class T>
struct Operand {
  std::vector<T> owned;
  const T* data = nullptr;
  int64_t step = 1;
  T operator[](size_t k) const { return data[static_cast<int64_t>(k) * step]; }
};

template <class T>
Operand<T> operand(const Tensor& t, const Shape& shape) {
  Operand<T> o;
  const auto& v = vals<T>(t);
  if (t.shape == shape) {
    o.data = v.data();
  } else if (v.size() == 1) {
    o.data = v.data();
    o.step = 0;
  } else {
    o.owned.resize(static_cast<size_t>(product(shape)));
    strided_copy(v.data(), 0, shape, broadcast_strides(t.shape, shape), o.owned.data());
    o.data = o.owned.data();
  }
  return o;
}

// Two's-complement arithmetic on int64 (wrapping, as the narrower ONNX integer types do).
inline int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
inline int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
inline int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

inline int64_t wrap_to(ElemType t, int64_t v) {
  switch (t) {
    case ElemType::kI32:
      return static_cast<int32_t>(v);
    case ElemType::kI8:
      return static_cast<int8_t>(v);
    case ElemType::kU8:
      return static_cast<uint8_t>(v);
    case ElemType::kBool:
      return v != 0;
    default:
      return v;
  }
}

// Float to integer as a C cast does (toward zero), saturating instead of undefined.
inline int64_t float_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

inline float gelu_erf(float x) { return static_cast<float>(kernels::host::gelu(x)); }
inline float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
inline float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}
inline float relu(float x) {
  return x < 0 ? 0.0f : x;
}

// ---------------------------------------------------------------------------------------
// Attributes and messages

class OpContext {
 public:
  OpContext(OpType op, const Attrs& attrs) : op_(op), attrs_(attrs) {}

  OpType op() const { return op_; }
  std::string name() const { return std::string(op_type_name(op_)); }
  [[noreturn]] void fail(const std::string& what) const { throw UserError(name() + ": " + what); }

  bool has(const std::string& attr) const { return attrs_.count(attr) != 0; }

  int64_t attr_int(const std::string& attr, int64_t fallback) const {
    const AttrValue* v = find(attr);
    if (!v) return fallback;
    if (auto* x = std::get_if<int64_t>(v)) return *x;
    wrong_type(attr, "an int");
  }
  double attr_float(const std::string& attr, double fallback) const {
    const AttrValue* v = find(attr);
    if (!v) return fallback;
    if (auto* x = std::get_if<double>(v)) return *x;
    if (auto* x = std::get_if<int64_t>(v)) return static_cast<double>(*x);
    wrong_type(attr, "a float");
  }
  std::string attr_string(const std::string& attr, std::string fallback) const {
    const AttrValue* v = find(attr);
    if (!v) return fallback;
    if (auto* x = std::get_if<std::string>(v)) return *x;
    wrong_type(attr, "a string");
  }
  std::vector<int64_t> attr_ints(const std::string& attr, std::vector<int64_t> fallback = {}) const {
    const AttrValue* v = find(attr);
    if (!v) return fallback;
    if (auto* x = std::get_if<std::vector<int64_t>>(v)) return *x;
    wrong_type(attr, "a list of ints");
  }
  std::vector<double> attr_floats(const std::string& attr) const {
    const AttrValue* v = find(attr);
    if (!v) return {};
    if (auto* x = std::get_if<std::vector<double>>(v)) return *x;
    if (auto* x = std::get_if<std::vector<int64_t>>(v)) return {x->begin(), x->end()};
    wrong_type(attr, "a list of floats");
  }

  // `axis` of a tensor of rank `rank` in [0, rank); negative counts from the end.
  int64_t axis(int64_t axis, int64_t rank, const std::string& what) const {
    if (axis < -rank || axis >= rank)
      fail(what + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank) +
           " (valid: " + std::to_string(-rank) + " to " + std::to_string(rank - 1) + ")");
    return axis < 0 ? axis + rank : axis;
  }

 private:
  const AttrValue* find(const std::string& attr) const {
    auto it = attrs_.find(attr);
    return it == attrs_.end() ? nullptr : &it->second;
  }
  [[noreturn]] void wrong_type(const std::string& attr, const char* expected) const {
    fail("attribute '" + attr + "' must be " + expected);
  }

  OpType op_;
  const Attrs& attrs_;
};


// ---------------------------------------------------------------------------------------
// Inference

class Infer : public OpContext {
 public:
  Infer(OpType op, const Attrs& attrs, std::span<const InputInfo> inputs, int num_outputs)
      : OpContext(op, attrs), in(inputs), outputs(num_outputs) {}

  std::span<const InputInfo> in;
  int outputs;

  // Between `min` and `max` inputs, the first `min` present.
  void expect_inputs(size_t min, size_t max) const {
    if (in.size() < min || in.size() > max)
      fail("takes " +
           (min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max)) +
           " inputs, got " + std::to_string(in.size()));
    for (size_t k = 0; k < min; ++k)
      if (!in[k].present) fail("input " + std::to_string(k) + " is required");
  }
  void expect_outputs(int min, int max) const {
    if (outputs < min || outputs > max)
      fail("has " + (min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max)) +
           " outputs here, asked for " + std::to_string(outputs));
  }
  bool present(size_t k) const { return k < in.size() && in[k].present; }
  const Shape& shape(size_t k) const { return in[k].shape; }
  int64_t rank(size_t k) const { return static_cast<int64_t>(in[k].shape.size()); }
  ElemType type(size_t k) const { return in[k].type; }

  void expect_float(size_t k, const std::string& what) const {
    if (!is_float(in[k].type))
      fail(what + " must be floating, not " + std::string(elem_type_name(in[k].type)));
  }
  void expect_same_type(size_t a, size_t b, const std::string& what_a, const std::string& what_b) const {
    if (in[a].type != in[b].type)
      fail(what_a + " (" + std::string(elem_type_name(in[a].type)) + ") and " + what_b + " (" +
           std::string(elem_type_name(in[b].type)) + ") must have the same type");
  }

  // The values of integer input `k` (rank 0 or 1), which must be a constant.
  std::vector<int64_t> constant_ints(size_t k, const std::string& what) const {
    const InputInfo& x = in[k];
    if (!x.constant)
      fail(what + " (input " + std::to_string(k) + ") must be a constant to infer the output shape");
    if (!is_int_index(x.type))
      fail(what + " must be int64 or int32, not " + std::string(elem_type_name(x.type)));
    if (x.shape.size() > 1) fail(what + " must be 1-D, got shape " + shape_text(x.shape));
    return x.constant->i;
  }

  Shape broadcast(const Shape& a, const Shape& b) const {
    size_t r = std::max(a.size(), b.size());
    Shape out(r);
    for (size_t d = 0; d < r; ++d) {
      int64_t x = d + a.size() >= r ? a[d + a.size() - r] : 1;
      int64_t y = d + b.size() >= r ? b[d + b.size() - r] : 1;
      if (x != y && x != 1 && y != 1)
        fail("shapes " + shape_text(a) + " and " + shape_text(b) + " do not broadcast");
      out[d] = x == 1 ? y : x;
    }
    return out;
  }
};

// Geometry of a sliding window (Conv and the pools) over 1 to 3 spatial dimensions
// (kernels::host::ConvWindow, shared with the workload reference), and how many are real.
struct Window : kernels::host::ConvWindow {
  int spatial = 0;
  Shape out_shape(int64_t n, int64_t c) const {
    Shape s = {n, c};
    for (int d = 3 - spatial; d < 3; ++d) s.push_back(out[static_cast<size_t>(d)]);
    return s;
  }
};

struct SliceDim {
  int64_t start = 0, step = 1, count = 0;
};

enum class EpilogueStep { kBias, kRelu, kGelu, kResidual };
// Chain steps are the elementwise workload's ops (core/workload.h), with the same names.
using ChainStep = EltwiseOp;

// Inference (shape_inference.cc) that evaluation also needs. infer_bounded() is infer() with
// every output's element count at most kMaxOutputElements (what evaluation allocates).
inline constexpr int64_t kMaxOutputElements = int64_t{1} << 40;
std::vector<OutputSpec> infer(const Infer& c);
std::vector<OutputSpec> infer_bounded(const Infer& c);
std::vector<OutputSpec> infer_conv(const Infer& c, Window* window);
std::vector<OutputSpec> infer_pool(const Infer& c, Window* window);
std::vector<EpilogueStep> epilogue_steps(const OpContext& c);
std::vector<ChainStep> chain_steps(const OpContext& c);
bool mod_is_fmod(const OpContext& c);
std::vector<int64_t> transpose_perm(const Infer& c);
std::vector<int64_t> split_sizes(const Infer& c, int64_t* axis_out);
std::vector<SliceDim> slice_dims(const Infer& c);
std::pair<int64_t, int64_t> shape_range(const Infer& c);
std::vector<bool> reduced_dims(const Infer& c);

// The operators of attention masks and index arithmetic (ops_masks.cc): comparisons, logic,
// IsNaN / IsInf, Range, Trilu, CumSum.
bool is_mask_op(OpType op);
std::vector<OutputSpec> infer_mask_op(const Infer& c);
void eval_mask_op(const Infer& c, const Tensor* const* in, Tensor& y);
// Padding, tiling and N-dimensional indexing (ops_indexing.cc): Pad, Tile, GatherND, ScatterND.
bool is_indexing_op(OpType op);
std::vector<OutputSpec> infer_indexing_op(const Infer& c);
void eval_indexing_op(const Infer& c, const Tensor* const* in, Tensor& y);

// Einsum (ops_einsum.cc).
std::vector<OutputSpec> infer_einsum(const Infer& c);
void eval_einsum(const Infer& c, const Tensor* const* in, Tensor& y);

// Evaluation (evaluation.cc): floats rounded to their f16/bf16 storage, integers wrapped to
// their width.
void to_storage(Tensor& t);

}  // namespace tessera::graph::op_detail
