// Host semantics of the graph operators.
//
// Map of this file: small shape and tensor helpers; OpContext (attribute reads and messages
// that name the operator); Infer (one inference function per operator family, then
// infer_node); the evaluation kernels (elementwise with broadcasting, Eigen contractions,
// im2col convolution, pools, normalisations, data movement), then evaluate_node, run_graph,
// random_graph_inputs and max_scaled_error.
//
// evaluate_node runs inference first, with every input marked constant, so all input checks
// live in inference and the kernels may assume consistent shapes. Kernels compute floats in
// f32 (reductions accumulate in double) and integers in int64; evaluate_node then rounds
// floats to f16/bf16 storage and wraps integers to their width, in one place.
#include "graph/ops.h"

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"
#include "core/workload.h"
#include "kernels/reference.h"

namespace tessera::graph {
namespace {

using Shape = std::vector<int64_t>;
using OutputSpec = std::pair<ElemType, Shape>;
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// ---------------------------------------------------------------------------------------
// Shapes and tensors

std::string shape_text(std::span<const int64_t> s) {
  std::string out = "[";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + "]";
}

int64_t product(std::span<const int64_t> s) {
  int64_t p = 1;
  for (int64_t d : s) p *= d;
  return p;
}

int64_t product(const Shape& s, size_t from, size_t to) {
  return product(std::span<const int64_t>(s).subspan(from, to - from));
}

Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// Whether `from` broadcasts to `to` without changing `to` (ONNX's unidirectional broadcast).
bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d)
    if (from[d] != 1 && from[d] != to[off + d]) return false;
  return true;
}

// Element strides of `from` read as `to` (dimensions aligned right, 0 where broadcast).
Shape broadcast_strides(const Shape& from, const Shape& to) {
  Shape st(to.size(), 0);
  Shape fs = strides_of(from);
  size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d) st[off + d] = from[d] == 1 ? 0 : fs[d];
  return st;
}


bool is_int_index(ElemType t) {
  return t == ElemType::kI64 || t == ElemType::kI32;
}

Tensor allocate(ElemType type, Shape shape) {
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
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t wrap_sub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t wrap_mul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}

int64_t wrap_to(ElemType t, int64_t v) {
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
int64_t float_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

float gelu_erf(float x) {
  return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
}
float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
float sigmoid(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}
float relu(float x) {
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

// Geometry of a sliding window (Conv and the pools) over 1 to 3 spatial dimensions, stored
// as 3 with leading unit dimensions so one kernel covers them all.
struct Window {
  int spatial = 0;
  std::array<int64_t, 3> in{1, 1, 1}, kernel{1, 1, 1}, stride{1, 1, 1}, dilation{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0}, pad_end{0, 0, 0}, out{1, 1, 1};

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
  Shape out_shape(int64_t n, int64_t c) const {
    Shape s = {n, c};
    for (int d = 3 - spatial; d < 3; ++d) s.push_back(out[static_cast<size_t>(d)]);
    return s;
  }
};

Window make_window(const Infer& c, const Shape& x, const Shape& kernel, bool ceil_mode) {
  Window w;
  w.spatial = static_cast<int>(x.size()) - 2;
  if (w.spatial < 1 || w.spatial > 3)
    c.fail("X must be [N, C, D1 ... Dn] with 1 to 3 spatial dimensions, got " + shape_text(x));
  size_t ns = static_cast<size_t>(w.spatial);
  if (kernel.size() != ns)
    c.fail("kernel_shape " + shape_text(kernel) + " must have " + std::to_string(ns) + " dimensions for X " +
           shape_text(x));
  auto per_dim = [&](const std::string& attr, size_t count, int64_t fallback, int64_t min) {
    std::vector<int64_t> v = c.attr_ints(attr, std::vector<int64_t>(count, fallback));
    if (v.size() != count)
      c.fail(attr + " " + shape_text(v) + " must have " + std::to_string(count) + " values for X " +
             shape_text(x));
    for (int64_t e : v)
      if (e < min) c.fail(attr + " " + shape_text(v) + " must be >= " + std::to_string(min));
    return v;
  };
  std::vector<int64_t> strides = per_dim("strides", ns, 1, 1), dilations = per_dim("dilations", ns, 1, 1);
  std::vector<int64_t> pads = per_dim("pads", 2 * ns, 0, 0);
  std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    c.fail("auto_pad '" + auto_pad + "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER");
  for (size_t s = 0; s < ns; ++s) {
    size_t d = 3 - ns + s;
    int64_t in = x[2 + s], k = kernel[s], st = strides[s], dil = dilations[s];
    if (k < 1) c.fail("kernel_shape " + shape_text(kernel) + " must be positive");
    int64_t extent = (k - 1) * dil + 1;
    int64_t pb = pads[s], pe = pads[s + ns], out = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out = (in + st - 1) / st;
      int64_t total = std::max<int64_t>(0, (out - 1) * st + extent - in);
      pb = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    } else {
      if (auto_pad == "VALID") pb = pe = 0;
      int64_t span = in + pb + pe - extent;
      if (span < 0)
        c.fail("window extent " + std::to_string(extent) + " exceeds padded input " +
               std::to_string(in + pb + pe) + " of X " + shape_text(x));
      out = (ceil_mode ? (span + st - 1) / st : span / st) + 1;
      // A last window that would start in the end padding is dropped (as PyTorch and
      // onnxruntime do with ceil_mode).
      if (ceil_mode && (out - 1) * st >= in + pb) --out;
    }
    w.in[d] = in;
    w.kernel[d] = k;
    w.stride[d] = st;
    w.dilation[d] = dil;
    w.pad_begin[d] = pb;
    w.pad_end[d] = pe;
    w.out[d] = out;
  }
  return w;
}

std::vector<OutputSpec> infer_unary(const Infer& c, bool float_only) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  if (float_only) c.expect_float(0, "input");
  return {{c.type(0), c.shape(0)}};
}

std::vector<OutputSpec> infer_binary(const Infer& c) {
  c.expect_inputs(2, 2);
  c.expect_outputs(1, 1);
  if (c.op() != OpType::kPow) c.expect_same_type(0, 1, "A", "B");
  if (c.op() == OpType::kPow && c.type(0) == ElemType::kBool) c.fail("X must be numeric, not bool");
  ElemType out = c.op() == OpType::kEqual ? ElemType::kBool : c.type(0);
  return {{out, c.broadcast(c.shape(0), c.shape(1))}};
}

// Mod's fmod attribute: 0 takes the divisor's sign (Python's %), 1 the dividend's (C's fmod).
bool mod_is_fmod(const OpContext& c) {
  int64_t fmod = c.attr_int("fmod", 0);
  if (fmod != 0 && fmod != 1) c.fail("fmod " + std::to_string(fmod) + " must be 0 or 1");
  return fmod == 1;
}

std::vector<OutputSpec> infer_mod(const Infer& c) {
  c.expect_inputs(2, 2);
  if (c.type(0) == ElemType::kBool) c.fail("inputs must be numeric, not bool");
  bool fmod = mod_is_fmod(c);
  if (is_float(c.type(0)) && !fmod)
    c.fail("floating inputs (" + std::string(elem_type_name(c.type(0))) + ") need fmod = 1");
  return infer_binary(c);
}

// Max and Min: one or more inputs of one numeric type, broadcast together.
std::vector<OutputSpec> infer_variadic(const Infer& c) {
  if (c.in.empty()) c.fail("takes at least one input");
  c.expect_inputs(c.in.size(), c.in.size());
  c.expect_outputs(1, 1);
  if (c.type(0) == ElemType::kBool) c.fail("inputs must be numeric, not bool");
  Shape y = c.shape(0);
  for (size_t k = 1; k < c.in.size(); ++k) {
    c.expect_same_type(k, 0, "input " + std::to_string(k), "input 0");
    y = c.broadcast(y, c.shape(k));
  }
  return {{c.type(0), y}};
}

// MatMul's output shape (numpy semantics: 1-D operands, batch broadcasting), with op(A) and
// op(B) transposing the last two dimensions (FusedMatMul).
Shape matmul_shape(const Infer& c, const Shape& a0, const Shape& b0, bool trans_a, bool trans_b) {
  if (a0.empty() || b0.empty())
    c.fail("A " + shape_text(a0) + " and B " + shape_text(b0) + " must have rank >= 1");
  if ((trans_a && a0.size() < 2) || (trans_b && b0.size() < 2))
    c.fail("trans_a / trans_b need operands of rank >= 2, got A " + shape_text(a0) + ", B " + shape_text(b0));
  Shape a = a0, b = b0;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  if (trans_a) std::swap(a[a.size() - 1], a[a.size() - 2]);
  if (trans_b) std::swap(b[b.size() - 1], b[b.size() - 2]);
  if (a.back() != b[b.size() - 2])
    c.fail("A " + shape_text(a0) + " and B " + shape_text(b0) + " disagree on the contracted dimension (" +
           std::to_string(a.back()) + " vs " + std::to_string(b[b.size() - 2]) + ")");
  Shape out = c.broadcast(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2));
  if (a0.size() > 1) out.push_back(a[a.size() - 2]);
  if (b0.size() > 1) out.push_back(b.back());
  return out;
}

enum class EpilogueStep { kBias, kRelu, kGelu, kResidual };

std::vector<EpilogueStep> epilogue_steps(const OpContext& c) {
  std::string text = c.attr_string("epilogue", "");
  std::vector<EpilogueStep> steps;
  for (size_t start = 0; !text.empty() && start <= text.size();) {
    size_t end = std::min(text.find('+', start), text.size());
    std::string step = text.substr(start, end - start);
    if (step == "bias")
      steps.push_back(EpilogueStep::kBias);
    else if (step == "relu")
      steps.push_back(EpilogueStep::kRelu);
    else if (step == "gelu")
      steps.push_back(EpilogueStep::kGelu);
    else if (step == "residual")
      steps.push_back(EpilogueStep::kResidual);
    else
      c.fail("epilogue step '" + step + "' in '" + text + "' is not one of bias, relu, gelu, residual");
    start = end + 1;
  }
  return steps;
}

size_t epilogue_inputs(const std::vector<EpilogueStep>& steps) {
  return static_cast<size_t>(std::count_if(steps.begin(), steps.end(), [](EpilogueStep s) {
    return s == EpilogueStep::kBias || s == EpilogueStep::kResidual;
  }));
}

// Checks the epilogue's inputs (from index 2) against output `y`; conv biases are per channel.
void check_epilogue_inputs(const Infer& c, const std::vector<EpilogueStep>& steps, const Shape& y,
                           bool conv) {
  c.expect_inputs(2 + epilogue_inputs(steps), 2 + epilogue_inputs(steps));
  size_t k = 2;
  for (EpilogueStep s : steps) {
    if (s != EpilogueStep::kBias && s != EpilogueStep::kResidual) continue;
    c.expect_same_type(k, 0, "epilogue input " + std::to_string(k), "the first input");
    const Shape& x = c.shape(k);
    if (s == EpilogueStep::kResidual && x != y)
      c.fail("residual (input " + std::to_string(k) + ") has shape " + shape_text(x) + ", the output " +
             shape_text(y));
    if (s == EpilogueStep::kBias && conv && x != Shape{y[1]})
      c.fail("bias (input " + std::to_string(k) + ") has shape " + shape_text(x) + ", must be [" +
             std::to_string(y[1]) + "] (one per output channel)");
    int64_t n = y.empty() ? 1 : y.back();
    if (s == EpilogueStep::kBias && !conv &&
        (x.empty() || x.back() != n || product(x) != n || x.size() > y.size()))
      c.fail("bias (input " + std::to_string(k) + ") has shape " + shape_text(x) + ", must be [" +
             std::to_string(n) + "] (along the output's last dimension)");
    ++k;
  }
}

std::vector<OutputSpec> infer_matmul(const Infer& c) {
  bool fused = c.op() == OpType::kFusedMatMul;
  if (!fused) c.expect_inputs(2, 2);
  if (c.in.size() < 2) c.fail("takes A and B, got " + std::to_string(c.in.size()) + " inputs");
  c.expect_outputs(1, 1);
  c.expect_float(0, "A");
  c.expect_same_type(0, 1, "A", "B");
  bool ta = fused && c.attr_int("trans_a", 0) != 0, tb = fused && c.attr_int("trans_b", 0) != 0;
  Shape y = matmul_shape(c, c.shape(0), c.shape(1), ta, tb);
  if (fused) check_epilogue_inputs(c, epilogue_steps(c), y, false);
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_gemm(const Infer& c) {
  c.expect_inputs(2, 3);
  c.expect_outputs(1, 1);
  c.expect_float(0, "A");
  c.expect_same_type(0, 1, "A", "B");
  if (c.rank(0) != 2 || c.rank(1) != 2)
    c.fail("A " + shape_text(c.shape(0)) + " and B " + shape_text(c.shape(1)) + " must be 2-D");
  bool ta = c.attr_int("transA", 0) != 0, tb = c.attr_int("transB", 0) != 0;
  int64_t m = c.shape(0)[ta ? 1 : 0], k = c.shape(0)[ta ? 0 : 1];
  int64_t kb = c.shape(1)[tb ? 1 : 0], n = c.shape(1)[tb ? 0 : 1];
  if (k != kb)
    c.fail("A " + shape_text(c.shape(0)) + " and B " + shape_text(c.shape(1)) + " disagree on K (transA " +
           std::to_string(ta) + ", transB " + std::to_string(tb) + ")");
  Shape y = {m, n};
  if (c.present(2)) {
    c.expect_same_type(2, 0, "C", "A");
    if (!broadcasts_to(c.shape(2), y))
      c.fail("C " + shape_text(c.shape(2)) + " does not broadcast to the output " + shape_text(y));
  }
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_conv(const Infer& c, Window* window) {
  bool fused = c.op() == OpType::kFusedConv;
  if (!fused) c.expect_inputs(2, 3);
  if (c.in.size() < 2) c.fail("takes X and W, got " + std::to_string(c.in.size()) + " inputs");
  c.expect_outputs(1, 1);
  c.expect_float(0, "X");
  c.expect_same_type(0, 1, "X", "W");
  const Shape &x = c.shape(0), &w = c.shape(1);
  if (x.size() < 3 || w.size() != x.size())
    c.fail("X " + shape_text(x) + " and W " + shape_text(w) +
           " must be [N, C, spatial...] and [M, C/group, kernel...]");
  int64_t group = c.attr_int("group", 1);
  if (group < 1 || x[1] % group != 0 || w[0] % group != 0)
    c.fail("group " + std::to_string(group) + " must divide the channels of X " + shape_text(x) + " and W " +
           shape_text(w));
  if (w[1] * group != x[1])
    c.fail("W " + shape_text(w) + " expects " + std::to_string(w[1] * group) + " input channels, X " +
           shape_text(x) + " has " + std::to_string(x[1]) + " (group " + std::to_string(group) + ")");
  Shape kernel(w.begin() + 2, w.end());
  if (c.has("kernel_shape") && c.attr_ints("kernel_shape") != kernel)
    c.fail("kernel_shape " + shape_text(c.attr_ints("kernel_shape")) + " disagrees with W " + shape_text(w));
  Window win = make_window(c, x, kernel, false);
  Shape y = win.out_shape(x[0], w[0]);
  if (fused) {
    check_epilogue_inputs(c, epilogue_steps(c), y, true);
  } else if (c.present(2)) {
    c.expect_same_type(2, 0, "B", "X");
    if (c.shape(2) != Shape{w[0]})
      c.fail("B " + shape_text(c.shape(2)) + " must be [" + std::to_string(w[0]) + "]");
  }
  if (window) *window = win;
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_pool(const Infer& c, Window* window) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  const Shape& x = c.shape(0);
  if (c.op() == OpType::kGlobalAveragePool) {
    c.expect_float(0, "X");
    if (x.size() < 3) c.fail("X " + shape_text(x) + " must be [N, C, spatial...]");
    Shape y = {x[0], x[1]};
    y.resize(x.size(), 1);
    return {{c.type(0), y}};
  }
  if (c.op() == OpType::kAveragePool) c.expect_float(0, "X");
  if (c.type(0) == ElemType::kBool) c.fail("X must be numeric, not bool");
  if (!c.has("kernel_shape")) c.fail("attribute 'kernel_shape' is required");
  if (c.attr_int("storage_order", 0) != 0) c.fail("storage_order 1 (column major) is not supported");
  Window win = make_window(c, x, c.attr_ints("kernel_shape"), c.attr_int("ceil_mode", 0) != 0);
  if (window) *window = win;
  return {{c.type(0), win.out_shape(x[0], x[1])}};
}

std::vector<OutputSpec> infer_layer_norm(const Infer& c) {
  c.expect_inputs(2, 3);
  c.expect_outputs(1, 3);
  c.expect_float(0, "X");
  const Shape& x = c.shape(0);
  int64_t axis = c.axis(c.attr_int("axis", -1), static_cast<int64_t>(x.size()), "axis");
  Shape normalised(x.begin() + axis, x.end());
  for (size_t k = 1; k < 3; ++k) {
    if (!c.present(k)) continue;
    std::string what = k == 1 ? "Scale" : "B";
    c.expect_same_type(k, 0, what, "X");
    if (!broadcasts_to(c.shape(k), normalised))
      c.fail(what + " " + shape_text(c.shape(k)) + " does not broadcast to the normalised shape " +
             shape_text(normalised) + " of X " + shape_text(x) + " (axis " + std::to_string(axis) + ")");
  }
  Shape stats(x.begin(), x.begin() + axis);
  stats.resize(x.size(), 1);
  std::vector<OutputSpec> out = {{c.type(0), x}};
  for (int k = 1; k < c.outputs; ++k) out.push_back({ElemType::kF32, stats});
  return out;
}

std::vector<OutputSpec> infer_batch_norm(const Infer& c) {
  c.expect_inputs(5, 5);
  if (c.attr_int("training_mode", 0) != 0) c.fail("training_mode 1 is not supported (inference only)");
  c.expect_outputs(1, 1);
  c.expect_float(0, "X");
  const Shape& x = c.shape(0);
  if (x.size() < 2) c.fail("X " + shape_text(x) + " must be [N, C, ...]");
  const char* names[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (size_t k = 1; k < 5; ++k) {
    c.expect_same_type(k, 0, names[k], "X");
    if (c.shape(k) != Shape{x[1]})
      c.fail(std::string(names[k]) + " " + shape_text(c.shape(k)) + " must be [" + std::to_string(x[1]) +
             "]");
  }
  return {{c.type(0), x}};
}

std::vector<OutputSpec> infer_clip(const Infer& c) {
  c.expect_inputs(1, 3);
  c.expect_outputs(1, 1);
  if (c.type(0) == ElemType::kBool) c.fail("input must be numeric, not bool");
  for (size_t k = 1; k < 3; ++k) {
    if (!c.present(k)) continue;
    std::string what = k == 1 ? "min" : "max";
    c.expect_same_type(k, 0, what, "input");
    if (product(c.shape(k)) != 1) c.fail(what + " " + shape_text(c.shape(k)) + " must be a scalar");
  }
  return {{c.type(0), c.shape(0)}};
}

std::vector<OutputSpec> infer_where(const Infer& c) {
  c.expect_inputs(3, 3);
  c.expect_outputs(1, 1);
  if (c.type(0) != ElemType::kBool)
    c.fail("condition must be bool, not " + std::string(elem_type_name(c.type(0))));
  c.expect_same_type(1, 2, "X", "Y");
  return {{c.type(1), c.broadcast(c.broadcast(c.shape(0), c.shape(1)), c.shape(2))}};
}

std::vector<OutputSpec> infer_cast(const Infer& c) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  if (!c.has("to")) c.fail("attribute 'to' is required");
  std::optional<ElemType> to = elem_type_from_onnx(c.attr_int("to", 0));
  if (!to)
    c.fail("to = " + std::to_string(c.attr_int("to", 0)) +
           " is not a supported ONNX data type (1 float, 10 float16, 16 bfloat16, 11 double, 7 int64, 6 "
           "int32, 3 int8, "
           "2 uint8, 9 bool)");
  return {{*to, c.shape(0)}};
}

std::vector<int64_t> transpose_perm(const Infer& c) {
  int64_t r = c.rank(0);
  std::vector<int64_t> reversed(static_cast<size_t>(r));
  for (int64_t d = 0; d < r; ++d) reversed[static_cast<size_t>(d)] = r - 1 - d;
  std::vector<int64_t> perm = c.attr_ints("perm", reversed);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  // The size first: a rank-0 input with a non-empty perm would pass a loop over its rank.
  bool ok = static_cast<int64_t>(sorted.size()) == r;
  for (int64_t d = 0; ok && d < r; ++d) ok = sorted[static_cast<size_t>(d)] == d;
  if (!ok)
    c.fail("perm " + shape_text(perm) + " is not a permutation of the " + std::to_string(r) + " dimensions of " +
           shape_text(c.shape(0)));
  return perm;
}

std::vector<OutputSpec> infer_transpose(const Infer& c) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  std::vector<int64_t> perm = transpose_perm(c);
  Shape y;
  for (int64_t p : perm) y.push_back(c.shape(0)[static_cast<size_t>(p)]);
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_reshape(const Infer& c) {
  c.expect_inputs(2, 2);
  c.expect_outputs(1, 1);
  const Shape& x = c.shape(0);
  std::vector<int64_t> target = c.constant_ints(1, "shape");
  bool allow_zero = c.attr_int("allowzero", 0) != 0;
  Shape y = target;
  int64_t known = 1;
  std::optional<size_t> infer_at;
  for (size_t d = 0; d < y.size(); ++d) {
    if (y[d] == -1) {
      if (infer_at) c.fail("shape " + shape_text(target) + " has more than one -1");
      infer_at = d;
      continue;
    }
    if (y[d] == 0 && !allow_zero) {
      if (d >= x.size())
        c.fail("shape " + shape_text(target) + " copies dimension " + std::to_string(d) +
               " (0) that the input " + shape_text(x) + " lacks");
      y[d] = x[d];
    }
    if (y[d] < 0) c.fail("shape " + shape_text(target) + " has a negative dimension");
    known *= y[d];
  }
  int64_t total = product(x);
  if (infer_at) {
    if (known == 0 || total % known != 0)
      c.fail("cannot reshape " + shape_text(x) + " to " + shape_text(target) + " (-1 has no integral value)");
    y[*infer_at] = total / known;
  } else if (known != total) {
    c.fail("cannot reshape " + shape_text(x) + " (" + std::to_string(total) + " elements) to " +
           shape_text(target));
  }
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_flatten(const Infer& c) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  const Shape& x = c.shape(0);
  int64_t r = c.rank(0), axis = c.attr_int("axis", 1);
  if (axis < -r || axis > r)
    c.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r) +
           " (valid: " + std::to_string(-r) + " to " + std::to_string(r) + ")");
  size_t a = static_cast<size_t>(axis < 0 ? axis + r : axis);
  return {{c.type(0), {product(x, 0, a), product(x, a, x.size())}}};
}

// Squeeze / Unsqueeze / ReduceMean axes: input 1 (opset 13+) or else attribute "axes".
std::optional<std::vector<int64_t>> axes_of(const Infer& c) {
  if (c.present(1)) return c.constant_ints(1, "axes");
  if (c.has("axes")) return c.attr_ints("axes");
  return std::nullopt;
}

std::vector<OutputSpec> infer_squeeze(const Infer& c) {
  c.expect_inputs(1, 2);
  c.expect_outputs(1, 1);
  const Shape& x = c.shape(0);
  std::vector<bool> drop(x.size(), false);
  if (auto axes = axes_of(c)) {
    for (int64_t a : *axes) {
      size_t d = static_cast<size_t>(c.axis(a, c.rank(0), "axis"));
      if (x[d] != 1)
        c.fail("cannot squeeze dimension " + std::to_string(a) + " of " + shape_text(x) + " (not 1)");
      drop[d] = true;
    }
  } else {
    for (size_t d = 0; d < x.size(); ++d) drop[d] = x[d] == 1;
  }
  Shape y;
  for (size_t d = 0; d < x.size(); ++d)
    if (!drop[d]) y.push_back(x[d]);
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_unsqueeze(const Infer& c) {
  c.expect_inputs(1, 2);
  c.expect_outputs(1, 1);
  auto axes = axes_of(c);
  if (!axes) c.fail("axes are required (input 1)");
  const Shape& x = c.shape(0);
  int64_t r = c.rank(0) + static_cast<int64_t>(axes->size());
  std::vector<bool> inserted(static_cast<size_t>(r), false);
  for (int64_t a : *axes) {
    size_t d = static_cast<size_t>(c.axis(a, r, "axis"));
    if (inserted[d]) c.fail("axes " + shape_text(*axes) + " repeat a dimension");
    inserted[d] = true;
  }
  Shape y;
  size_t next = 0;
  for (size_t d = 0; d < inserted.size(); ++d) y.push_back(inserted[d] ? 1 : x[next++]);
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_concat(const Infer& c) {
  if (c.in.empty()) c.fail("takes at least one input");
  c.expect_inputs(c.in.size(), c.in.size());
  c.expect_outputs(1, 1);
  if (!c.has("axis")) c.fail("attribute 'axis' is required");
  const Shape& first = c.shape(0);
  if (first.empty()) c.fail("inputs must have rank >= 1");
  size_t axis = static_cast<size_t>(c.axis(c.attr_int("axis", 0), c.rank(0), "axis"));
  Shape y = first;
  y[axis] = 0;
  for (size_t k = 0; k < c.in.size(); ++k) {
    c.expect_same_type(k, 0, "input " + std::to_string(k), "input 0");
    const Shape& s = c.shape(k);
    bool fits = s.size() == first.size();
    for (size_t d = 0; fits && d < s.size(); ++d) fits = d == axis || s[d] == first[d];
    if (!fits)
      c.fail("input " + std::to_string(k) + " " + shape_text(s) + " does not match input 0 " +
             shape_text(first) + " outside axis " + std::to_string(axis));
    y[axis] += s[axis];
  }
  return {{c.type(0), y}};
}

std::vector<int64_t> split_sizes(const Infer& c, int64_t* axis_out) {
  const Shape& x = c.shape(0);
  if (x.empty()) c.fail("input must have rank >= 1");
  int64_t axis = c.axis(c.attr_int("axis", 0), c.rank(0), "axis");
  int64_t dim = x[static_cast<size_t>(axis)];
  std::vector<int64_t> sizes;
  if (c.present(1))
    sizes = c.constant_ints(1, "split");
  else if (c.has("split"))
    sizes = c.attr_ints("split");
  if (sizes.empty()) {
    if (c.outputs < 1 || dim % c.outputs != 0)
      c.fail("dimension " + std::to_string(axis) + " of " + shape_text(x) + " does not split into " +
             std::to_string(c.outputs) + " equal parts");
    sizes.assign(static_cast<size_t>(c.outputs), dim / c.outputs);
  }
  if (static_cast<int64_t>(sizes.size()) != c.outputs)
    c.fail("split " + shape_text(sizes) + " has " + std::to_string(sizes.size()) + " parts for " +
           std::to_string(c.outputs) + " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) c.fail("split " + shape_text(sizes) + " has a negative part");
    total += s;
  }
  if (total != dim)
    c.fail("split " + shape_text(sizes) + " sums to " + std::to_string(total) + ", dimension " +
           std::to_string(axis) + " of " + shape_text(x) + " is " + std::to_string(dim));
  *axis_out = axis;
  return sizes;
}

std::vector<OutputSpec> infer_split(const Infer& c) {
  c.expect_inputs(1, 2);
  int64_t axis = 0;
  std::vector<int64_t> sizes = split_sizes(c, &axis);
  std::vector<OutputSpec> out;
  for (int64_t s : sizes) {
    Shape y = c.shape(0);
    y[static_cast<size_t>(axis)] = s;
    out.push_back({c.type(0), y});
  }
  return out;
}

struct SliceDim {
  int64_t start = 0, step = 1, count = 0;
};

std::vector<SliceDim> slice_dims(const Infer& c) {
  const Shape& x = c.shape(0);
  std::vector<int64_t> starts = c.constant_ints(1, "starts"), ends = c.constant_ints(2, "ends");
  std::vector<int64_t> axes, steps;
  if (c.present(3)) {
    axes = c.constant_ints(3, "axes");
  } else {
    for (size_t j = 0; j < starts.size(); ++j) axes.push_back(static_cast<int64_t>(j));
  }
  steps = c.present(4) ? c.constant_ints(4, "steps") : std::vector<int64_t>(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.fail("starts " + shape_text(starts) + ", ends " + shape_text(ends) + ", axes " + shape_text(axes) +
           " and steps " + shape_text(steps) + " must have the same length");
  std::vector<SliceDim> dims(x.size());
  for (size_t d = 0; d < x.size(); ++d) dims[d].count = x[d];
  std::vector<bool> seen(x.size(), false);
  for (size_t j = 0; j < starts.size(); ++j) {
    size_t d = static_cast<size_t>(c.axis(axes[j], c.rank(0), "axis"));
    if (seen[d]) c.fail("axes " + shape_text(axes) + " repeat a dimension");
    seen[d] = true;
    int64_t step = steps[j], dim = x[d], s = starts[j], e = ends[j];
    if (step == 0 || step == std::numeric_limits<int64_t>::min())
      c.fail("steps " + shape_text(steps) + " has an invalid step");
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    SliceDim& out = dims[d];
    out.step = step;
    if (dim == 0) {
      out.start = out.count = 0;
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      out.start = s;
      out.count = e > s ? 1 + (e - s - 1) / step : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      out.start = s;
      out.count = s > e ? 1 + (s - e - 1) / -step : 0;
    }
  }
  return dims;
}

std::vector<OutputSpec> infer_slice(const Infer& c) {
  c.expect_inputs(3, 5);
  c.expect_outputs(1, 1);
  Shape y;
  for (const SliceDim& d : slice_dims(c)) y.push_back(d.count);
  return {{c.type(0), y}};
}

// Gather's and GatherElements' common checks: data of rank >= 1, integer indices; the axis.
size_t gather_axis(const Infer& c) {
  c.expect_inputs(2, 2);
  c.expect_outputs(1, 1);
  if (c.shape(0).empty()) c.fail("data must have rank >= 1");
  if (!is_int_index(c.type(1)))
    c.fail("indices must be int64 or int32, not " + std::string(elem_type_name(c.type(1))));
  return static_cast<size_t>(c.axis(c.attr_int("axis", 0), c.rank(0), "axis"));
}

std::vector<OutputSpec> infer_gather(const Infer& c) {
  size_t axis = gather_axis(c);
  const Shape &x = c.shape(0), &idx = c.shape(1);
  Shape y(x.begin(), x.begin() + static_cast<int64_t>(axis));
  y.insert(y.end(), idx.begin(), idx.end());
  y.insert(y.end(), x.begin() + static_cast<int64_t>(axis) + 1, x.end());
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer_gather_elements(const Infer& c) {
  size_t axis = gather_axis(c);
  const Shape &x = c.shape(0), &idx = c.shape(1);
  if (idx.size() != x.size())
    c.fail("indices " + shape_text(idx) + " must have the rank of data " + shape_text(x));
  // Off the axis an index position is also a data position, so it must lie inside data.
  for (size_t d = 0; d < x.size(); ++d)
    if (d != axis && idx[d] > x[d])
      c.fail("indices " + shape_text(idx) + " exceed data " + shape_text(x) + " in dimension " +
             std::to_string(d) + " (only the axis, " + std::to_string(axis) + ", may differ freely)");
  return {{c.type(0), idx}};
}

std::vector<OutputSpec> infer_expand(const Infer& c) {
  c.expect_inputs(2, 2);
  c.expect_outputs(1, 1);
  std::vector<int64_t> shape = c.constant_ints(1, "shape");
  return {{c.type(0), c.broadcast(c.shape(0), shape)}};
}

std::pair<int64_t, int64_t> shape_range(const Infer& c) {
  int64_t r = c.rank(0);
  auto clamp_end = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
  int64_t start = clamp_end(c.attr_int("start", 0)), end = clamp_end(c.attr_int("end", r));
  return {start, std::max(start, end)};
}

std::vector<OutputSpec> infer_shape(const Infer& c) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  auto [start, end] = shape_range(c);
  return {{ElemType::kI64, {end - start}}};
}

ElemType constant_of_shape_type(const OpContext& c) {
  std::optional<ElemType> t = elem_type_from_onnx(c.attr_int("dtype", 1));
  if (!t) c.fail("dtype " + std::to_string(c.attr_int("dtype", 1)) + " is not a supported ONNX data type");
  return *t;
}

std::vector<OutputSpec> infer_constant_of_shape(const Infer& c) {
  c.expect_inputs(1, 1);
  c.expect_outputs(1, 1);
  std::vector<int64_t> shape = c.constant_ints(0, "input");
  for (int64_t d : shape)
    if (d < 0) c.fail("shape " + shape_text(shape) + " has a negative dimension");
  return {{constant_of_shape_type(c), shape}};
}

// Constant nodes carry their value in value_float(s) / value_int(s); a tensor-valued
// "value" cannot be an attribute of the IR (import turns such nodes into constants).
const char* const kConstantAttrs[] = {"value_float", "value_floats", "value_int", "value_ints"};

std::vector<OutputSpec> infer_constant(const Infer& c) {
  c.expect_inputs(0, 0);
  c.expect_outputs(1, 1);
  int given = 0;
  for (const char* a : kConstantAttrs) given += c.has(a);
  if (given != 1)
    c.fail(
        "needs exactly one of the attributes value_float, value_floats, value_int, value_ints (a tensor "
        "'value' "
        "is imported as a graph constant)");
  if (c.has("value_float")) return {{ElemType::kF32, {}}};
  if (c.has("value_int")) return {{ElemType::kI64, {}}};
  if (c.has("value_floats"))
    return {{ElemType::kF32, {static_cast<int64_t>(c.attr_floats("value_floats").size())}}};
  return {{ElemType::kI64, {static_cast<int64_t>(c.attr_ints("value_ints").size())}}};
}

// Which dimensions ReduceMean reduces (empty when it is an identity).
std::vector<bool> reduced_dims(const Infer& c) {
  size_t r = c.shape(0).size();
  auto axes = axes_of(c);
  if (!axes || axes->empty()) {
    bool noop = c.attr_int("noop_with_empty_axes", 0) != 0;
    return std::vector<bool>(r, !noop);
  }
  std::vector<bool> reduced(r, false);
  for (int64_t a : *axes) {
    size_t d = static_cast<size_t>(c.axis(a, static_cast<int64_t>(r), "axis"));
    if (reduced[d]) c.fail("axes " + shape_text(*axes) + " repeat a dimension");
    reduced[d] = true;
  }
  return reduced;
}

std::vector<OutputSpec> infer_reduce_mean(const Infer& c) {
  c.expect_inputs(1, 2);
  c.expect_outputs(1, 1);
  c.expect_float(0, "data");
  std::vector<bool> reduced = reduced_dims(c);
  bool keep = c.attr_int("keepdims", 1) != 0;
  Shape y;
  for (size_t d = 0; d < reduced.size(); ++d) {
    if (!reduced[d])
      y.push_back(c.shape(0)[d]);
    else if (keep)
      y.push_back(1);
  }
  return {{c.type(0), y}};
}

// Chain steps are the elementwise workload's ops (core/workload.h), with the same names.
using ChainStep = EltwiseOp;
constexpr EltwiseOp kLastStep = EltwiseOp::kAbs;

bool needs_float(ChainStep s) {
  return s == ChainStep::kGelu || s == ChainStep::kSigmoid || s == ChainStep::kTanh || s == ChainStep::kExp;
}

std::vector<ChainStep> chain_steps(const OpContext& c) {
  std::string text = c.attr_string("ops", "");
  if (text.empty()) c.fail("attribute 'ops' is required (steps joined by '+')");
  std::vector<ChainStep> steps;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('+', start);
    if (end == std::string::npos) end = text.size();
    std::string name = text.substr(start, end - start);
    std::optional<ChainStep> step;
    for (int k = 0; k <= static_cast<int>(kLastStep); ++k) {
      if (eltwise_op_name(static_cast<EltwiseOp>(k)) == name) step = static_cast<EltwiseOp>(k);
    }
    if (!step)
      c.fail("step '" + name + "' in ops '" + text +
             "' is not one of add sub mul div max min relu gelu sigmoid tanh exp neg abs");
    steps.push_back(*step);
    start = end + 1;
  }
  return steps;
}

std::vector<OutputSpec> infer_chain(const Infer& c) {
  std::vector<ChainStep> steps = chain_steps(c);
  size_t binary = static_cast<size_t>(std::count_if(steps.begin(), steps.end(), eltwise_is_binary));
  c.expect_inputs(1 + binary, 1 + binary);
  c.expect_outputs(1, 1);
  Shape y = c.shape(0);
  for (size_t k = 1; k < c.in.size(); ++k) {
    c.expect_same_type(k, 0, "input " + std::to_string(k), "input 0");
    y = c.broadcast(y, c.shape(k));
  }
  if (c.type(0) == ElemType::kBool) c.fail("inputs must be numeric, not bool");
  for (ChainStep s : steps)
    if (needs_float(s)) c.expect_float(0, "input 0 of a chain with transcendental steps");
  return {{c.type(0), y}};
}

std::vector<OutputSpec> infer(const Infer& c) {
  switch (c.op()) {
    case OpType::kConv:
    case OpType::kFusedConv:
      return infer_conv(c, nullptr);
    case OpType::kMatMul:
    case OpType::kFusedMatMul:
      return infer_matmul(c);
    case OpType::kGemm:
      return infer_gemm(c);
    case OpType::kSoftmax: {
      c.expect_inputs(1, 1);
      c.expect_outputs(1, 1);
      c.expect_float(0, "input");
      if (c.shape(0).empty()) c.fail("input must have rank >= 1");
      c.axis(c.attr_int("axis", -1), c.rank(0), "axis");
      return {{c.type(0), c.shape(0)}};
    }
    case OpType::kLayerNormalization:
      return infer_layer_norm(c);
    case OpType::kBatchNormalization:
      return infer_batch_norm(c);
    case OpType::kAdd:
    case OpType::kSub:
    case OpType::kMul:
    case OpType::kDiv:
    case OpType::kPow:
    case OpType::kEqual: {
      if (c.op() != OpType::kEqual && c.in.size() == 2 && c.type(0) == ElemType::kBool)
        c.fail("inputs must be numeric, not bool");
      return infer_binary(c);
    }
    case OpType::kMod:
      return infer_mod(c);
    case OpType::kMax:
    case OpType::kMin:
      return infer_variadic(c);
    case OpType::kSqrt:
    case OpType::kExp:
    case OpType::kSigmoid:
    case OpType::kTanh:
    case OpType::kErf:
      return infer_unary(c, true);
    case OpType::kGelu: {
      std::string approximate = c.attr_string("approximate", "none");
      if (approximate != "none" && approximate != "tanh")
        c.fail("approximate '" + approximate + "' is not one of none, tanh");
      return infer_unary(c, true);
    }
    case OpType::kNeg:
    case OpType::kRelu:
    case OpType::kAbs: {
      auto out = infer_unary(c, false);
      if (c.type(0) == ElemType::kBool) c.fail("input must be numeric, not bool");
      return out;
    }
    case OpType::kIdentity:
      return infer_unary(c, false);
    case OpType::kClip:
      return infer_clip(c);
    case OpType::kWhere:
      return infer_where(c);
    case OpType::kCast:
      return infer_cast(c);
    case OpType::kTranspose:
      return infer_transpose(c);
    case OpType::kReshape:
      return infer_reshape(c);
    case OpType::kFlatten:
      return infer_flatten(c);
    case OpType::kSqueeze:
      return infer_squeeze(c);
    case OpType::kUnsqueeze:
      return infer_unsqueeze(c);
    case OpType::kConcat:
      return infer_concat(c);
    case OpType::kSplit:
      return infer_split(c);
    case OpType::kSlice:
      return infer_slice(c);
    case OpType::kGather:
      return infer_gather(c);
    case OpType::kGatherElements:
      return infer_gather_elements(c);
    case OpType::kExpand:
      return infer_expand(c);
    case OpType::kShape:
      return infer_shape(c);
    case OpType::kConstantOfShape:
      return infer_constant_of_shape(c);
    case OpType::kConstant:
      return infer_constant(c);
    case OpType::kMaxPool:
    case OpType::kAveragePool:
    case OpType::kGlobalAveragePool:
      return infer_pool(c, nullptr);
    case OpType::kReduceMean:
      return infer_reduce_mean(c);
    case OpType::kEltwiseChain:
      return infer_chain(c);
    case OpType::kOpaque:
      c.fail("an Opaque node's outputs come from its model; they cannot be inferred or evaluated");
  }
  TESSERA_UNREACHABLE("unknown OpType");
}

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
void gemm(const float* a, const float* b, float* y, int64_t m, int64_t n, int64_t k, bool ta, bool tb) {
  Eigen::Map<RowMajor> ym(y, m, n);
  if (!ta && !tb)
    ym.noalias() = Eigen::Map<const RowMajor>(a, m, k) * Eigen::Map<const RowMajor>(b, k, n);
  else if (ta && !tb)
    ym.noalias() = Eigen::Map<const ColMajor>(a, m, k) * Eigen::Map<const RowMajor>(b, k, n);
  else if (!ta && tb)
    ym.noalias() = Eigen::Map<const RowMajor>(a, m, k) * Eigen::Map<const ColMajor>(b, k, n);
  else
    ym.noalias() = Eigen::Map<const ColMajor>(a, m, k) * Eigen::Map<const ColMajor>(b, k, n);
}

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
    gemm(a.f.data() + ai * m * k, b.f.data() + bi * k * n, y.f.data() + t * m * n, m, n, k, ta, tb);
  }
}

void eval_gemm(const OpContext& c, const Tensor* const* in, size_t n_in, Tensor& y) {
  bool ta = c.attr_int("transA", 0) != 0, tb = c.attr_int("transB", 0) != 0;
  const Tensor &a = *in[0], &b = *in[1];
  int64_t m = y.shape[0], n = y.shape[1], k = a.shape[ta ? 0 : 1];
  gemm(a.f.data(), b.f.data(), y.f.data(), m, n, k, ta, tb);
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

// col[(c, kd, kh, kw), (od, oh, ow)] = x[c, od*s - p + kd*d, ...] (0 in the padding).
void im2col(const float* x, int64_t channels, const Window& w, float* col) {
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

void eval_conv(const Tensor& x, const Tensor& w, const Window& win, int64_t group, Tensor& y) {
  int64_t batch = x.shape[0], channels = x.shape[1], m = w.shape[0];
  int64_t cg = channels / group, mg = m / group;
  int64_t in_size = win.in_size(), out_size = win.out_size(), rows = cg * win.kernel_size();
  bool pointwise = win.kernel_size() == 1;
  for (size_t d = 0; d < 3; ++d)
    pointwise = pointwise && win.stride[d] == 1 && win.pad_begin[d] == 0 && win.pad_end[d] == 0;
  std::vector<float> col(pointwise ? 0 : static_cast<size_t>(rows * out_size));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t g = 0; g < group; ++g) {
      const float* xg = x.f.data() + (b * channels + g * cg) * in_size;
      if (!pointwise) im2col(xg, cg, win, col.data());
      Eigen::Map<const RowMajor> wm(w.f.data() + g * mg * rows, mg, rows);
      Eigen::Map<const RowMajor> cm(pointwise ? xg : col.data(), rows, out_size);
      Eigen::Map<RowMajor> ym(y.f.data() + (b * m + g * mg) * out_size, mg, out_size);
      ym.noalias() = wm * cm;
    }
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
      const float* src = x.f.data() + o * n * inner + i;
      float* dst = y.f.data() + o * n * inner + i;
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) top = std::max(top, src[j * inner]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        dst[j * inner] = std::exp(src[j * inner] - top);
        sum += dst[j * inner];
      }
      float scale = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < n; ++j) dst[j * inner] *= scale;
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
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += src[j];
    mean /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j) var += (src[j] - mean) * (src[j] - mean);
    var /= static_cast<double>(d);
    double inv = 1.0 / std::sqrt(var + epsilon);
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

void eval_reduce_mean(const std::vector<bool>& reduced, const Tensor& x, Tensor& y) {
  if (x.shape.empty()) {
    y.f = x.f;
    return;
  }
  Shape kept = x.shape;
  for (size_t d = 0; d < kept.size(); ++d)
    if (reduced[d]) kept[d] = 1;
  Shape strides = strides_of(kept);
  for (size_t d = 0; d < kept.size(); ++d)
    if (reduced[d]) strides[d] = 0;
  std::vector<double> sum(y.f.size(), 0.0);
  int64_t n = x.shape.back(), step = strides.back();
  for_each_row(x.shape, strides, 0, [&](int64_t row, int64_t offset) {
    const float* src = x.f.data() + row * n;
    for (int64_t j = 0; j < n; ++j) sum[static_cast<size_t>(offset + j * step)] += src[j];
  });
  double count = static_cast<double>(product(x.shape)) / static_cast<double>(std::max<size_t>(y.f.size(), 1));
  for (size_t k = 0; k < y.f.size(); ++k) y.f[k] = static_cast<float>(sum[k] / count);
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
      return eval_unary(c, *in[0], y);
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
      return by_storage(y.type, [&]<class T>() {
        if (product(y.shape) > 0)
          strided_copy(vals<T>(*in[0]).data(), 0, y.shape, broadcast_strides(in[0]->shape, y.shape),
                       vals<T>(y).data());
      });
    case OpType::kShape: {
      auto [start, end] = shape_range(c);
      y.i.assign(in[0]->shape.begin() + start, in[0]->shape.begin() + end);
      return;
    }
    case OpType::kConstantOfShape: {
      double value = c.attr_float("value", 0.0);
      if (is_float(y.type))
        std::fill(y.f.begin(), y.f.end(), static_cast<float>(value));
      else
        std::fill(y.i.begin(), y.i.end(), float_to_int(value));
      return;
    }
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
    case OpType::kMaxPool: {
      Window win;
      infer_pool(c, &win);
      int64_t planes = y.shape[0] * y.shape[1];
      return by_storage(y.type, [&]<class T>() { max_pool(vals<T>(*in[0]), vals<T>(y), planes, win); });
    }
    case OpType::kAveragePool: {
      Window win;
      infer_pool(c, &win);
      return average_pool(in[0]->f, y.f, y.shape[0] * y.shape[1], win,
                          c.attr_int("count_include_pad", 0) != 0);
    }
    case OpType::kGlobalAveragePool:
      return eval_global_average_pool(*in[0], y);
    case OpType::kReduceMean:
      return eval_reduce_mean(reduced_dims(c), *in[0], y);
    case OpType::kEltwiseChain: {
      std::vector<ChainStep> steps = chain_steps(c);
      return by_storage(y.type, [&]<class T>() { eval_chain<T>(c, steps, in, y); });
    }
    case OpType::kOpaque:
      c.fail("an Opaque node cannot be evaluated");
  }
  TESSERA_UNREACHABLE("unknown OpType");
}

// Rounds floats to their storage type and wraps integers to their width.
void to_storage(Tensor& t) {
  if (t.type == ElemType::kF16 || t.type == ElemType::kBF16) {
    DType d = t.type == ElemType::kF16 ? DType::kF16 : DType::kBF16;
    for (float& v : t.f) v = kernels::round_to(d, v);
  } else if (!is_float(t.type) && t.type != ElemType::kI64) {
    for (int64_t& v : t.i) v = wrap_to(t.type, v);
  }
}

}  // namespace

std::vector<std::pair<ElemType, std::vector<int64_t>>> infer_node(OpType op, const Attrs& attrs,
                                                                  std::span<const InputInfo> inputs,
                                                                  int num_outputs) {
  return infer(Infer(op, attrs, inputs, num_outputs));
}

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
  for (auto& [type, shape] : infer(ctx)) out.push_back(allocate(type, shape));
  evaluate(ctx, inputs.data(), out);
  for (Tensor& t : out) to_storage(t);
  return out;
}

std::vector<Tensor> run_graph(const Graph& g, std::span<const Tensor> inputs) {
  const std::vector<ValueId>& graph_inputs = g.inputs();
  if (inputs.size() != graph_inputs.size())
    throw UserError("run_graph: " + g.model_name + " has " + std::to_string(graph_inputs.size()) +
                    " inputs, got " + std::to_string(inputs.size()));
  size_t n_values = g.values().size();
  std::vector<const Tensor*> ready(n_values, nullptr);
  std::vector<Tensor> owned(n_values);
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Value& v = g.value(graph_inputs[k]);
    const Tensor& t = inputs[k];
    size_t held = is_float(t.type) ? t.f.size() : t.i.size();
    if (t.type != v.type || t.shape != v.shape || static_cast<int64_t>(held) != product(t.shape))
      throw UserError("run_graph: input '" + v.name + "' must be " + std::string(elem_type_name(v.type)) +
                      " " + shape_text(v.shape) + ", got " + std::string(elem_type_name(t.type)) + " " +
                      shape_text(t.shape) + " holding " + std::to_string(held) + " values");
    ready[static_cast<size_t>(graph_inputs[k])] = &t;
  }
  for (size_t v = 0; v < n_values; ++v)
    if (g.values()[v].constant) ready[v] = g.values()[v].constant.get();

  // A value is freed once its last reader has run, unless it is a graph output.
  std::vector<std::vector<NodeId>> readers = g.consumers();
  std::vector<size_t> uses(n_values);
  for (size_t v = 0; v < n_values; ++v) uses[v] = readers[v].size();
  std::vector<bool> keep(n_values, false);
  for (ValueId v : g.outputs()) keep[static_cast<size_t>(v)] = true;
  auto release = [&](ValueId v) {
    size_t k = static_cast<size_t>(v);
    if (keep[k] || uses[k] > 0) return;
    owned[k] = Tensor();
    if (g.value(v).producer != kNone) ready[k] = nullptr;
  };

  for (NodeId id : g.topological_order()) {
    const Node& node = g.node(id);
    std::string label = "node '" + (node.name.empty() ? "#" + std::to_string(id) : node.name) + "' (" +
                        std::string(op_type_name(node.op)) + ")";
    std::vector<const Tensor*> args;
    for (ValueId v : node.inputs) {
      if (v == kNone) {
        args.push_back(nullptr);
        continue;
      }
      const Tensor* t = ready[static_cast<size_t>(v)];
      if (!t)
        throw UserError("run_graph: " + label + " reads '" + g.value(v).name + "', which nothing computes");
      args.push_back(t);
    }
    std::vector<Tensor> results;
    try {
      results = evaluate_node(node.op, node.attrs, args, static_cast<int>(node.outputs.size()));
    } catch (const UserError& e) {
      throw UserError("run_graph: " + label + ": " + e.what());
    }
    TESSERA_CHECK(results.size() == node.outputs.size(),
                  "evaluate_node returned the wrong number of outputs");
    for (size_t k = 0; k < results.size(); ++k) {
      ValueId v = node.outputs[k];
      if (v == kNone) continue;
      TESSERA_CHECK(results[k].type == g.value(v).type && results[k].shape == g.value(v).shape,
                    label + " computed " + shape_text(results[k].shape) + " for '" + g.value(v).name +
                        "', recorded as " + shape_text(g.value(v).shape));
      owned[static_cast<size_t>(v)] = std::move(results[k]);
      ready[static_cast<size_t>(v)] = &owned[static_cast<size_t>(v)];
    }
    std::vector<ValueId> read = node.inputs;
    std::sort(read.begin(), read.end());
    read.erase(std::unique(read.begin(), read.end()), read.end());
    for (ValueId v : read) {
      if (v == kNone) continue;
      --uses[static_cast<size_t>(v)];
      release(v);
    }
    for (ValueId v : node.outputs)
      if (v != kNone) release(v);
  }

  std::vector<Tensor> out;
  for (ValueId v : g.outputs()) {
    const Tensor* t = ready[static_cast<size_t>(v)];
    if (!t) throw UserError("run_graph: output '" + g.value(v).name + "' is not computed by any live node");
    out.push_back(*t);
  }
  return out;
}

std::vector<Tensor> random_graph_inputs(const Graph& g, uint64_t seed) {
  // mt19937_64 is specified bit for bit by the standard; the distributions are not, so the
  // values are derived from its raw output.
  std::mt19937_64 engine(seed);
  std::vector<Tensor> out;
  for (ValueId id : g.inputs()) {
    const Value& v = g.value(id);
    Tensor t = allocate(v.type, v.shape);
    for (float& x : t.f) x = static_cast<float>(2.0 * static_cast<double>(engine() >> 11) * 0x1p-53 - 1.0);
    for (int64_t& x : t.i) x = static_cast<int64_t>(engine() & 1);
    to_storage(t);
    out.push_back(std::move(t));
  }
  return out;
}

double max_scaled_error(std::span<const Tensor> a, std::span<const Tensor> b, double rtol, double atol) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (a.size() != b.size()) return kInf;
  double worst = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    const Tensor &x = a[t], &y = b[t];
    int64_t n = product(y.shape);
    if (x.shape != y.shape || x.elements() != n || y.elements() != n) return kInf;
    double peak = 0;
    for (int64_t k = 0; k < n; ++k)
      if (std::isfinite(y.at(k))) peak = std::max(peak, std::fabs(y.at(k)));
    double scale = atol + rtol * peak;
    for (int64_t k = 0; k < n; ++k) {
      double p = x.at(k), q = y.at(k);
      if (p == q || (std::isnan(p) && std::isnan(q))) continue;
      if (std::isnan(p) || std::isnan(q) || std::isinf(p) || std::isinf(q)) return kInf;
      worst = std::max(worst, std::fabs(p - q) / scale);
    }
  }
  return worst;
}

}  // namespace tessera::graph
