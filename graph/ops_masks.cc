// Shape inference and host evaluation of the ONNX operators that current exporters write for
// attention masks and index arithmetic (opsets 13-17, in ONNX's own definitions): the
// comparisons Less, Greater, LessOrEqual, GreaterOrEqual and the logic And, Or, Xor, Not (to
// bool, stored as 0/1 integers), IsNaN and IsInf, Range, Trilu and CumSum. Called from infer()
// (shape_inference.cc) and evaluate() (evaluation.cc).
#include <algorithm>
#include <cmath>

#include "graph/op_semantics.h"

namespace tessera::graph::op_detail {
namespace {

bool is_comparison(OpType op) {
  return op == OpType::kLess || op == OpType::kGreater || op == OpType::kLessOrEqual || op == OpType::kGreaterOrEqual;
}

bool is_logic(OpType op) { return op == OpType::kAnd || op == OpType::kOr || op == OpType::kXor; }

template <class T>
bool compare(OpType op, T a, T b) {
  switch (op) {
    case OpType::kLess: return a < b;
    case OpType::kGreater: return a > b;
    case OpType::kLessOrEqual: return a <= b;
    default: return a >= b;
  }
}

// Range's scalar input k (start, limit or delta) as a double, from a constant.
double range_scalar(const Infer& c, size_t k, const char* what) {
  const InputInfo& x = c.in[k];
  if (!x.shape.empty()) c.fail(std::string(what) + " must be a scalar, got shape " + shape_text(x.shape));
  if (!x.constant) c.fail(std::string(what) + " must be a constant to infer the output's length");
  return is_float(x.type) ? static_cast<double>(x.constant->f.at(0)) : static_cast<double>(x.constant->i.at(0));
}

// Range's length: max(ceil((limit - start) / delta), 0), bounded so that it can be allocated.
int64_t range_length(const Infer& c) {
  double start = range_scalar(c, 0, "start"), limit = range_scalar(c, 1, "limit"), delta = range_scalar(c, 2, "delta");
  if (delta == 0) c.fail("delta is 0");
  double n = std::ceil((limit - start) / delta);
  if (!(n >= 0)) return 0;  // also NaN
  if (n > static_cast<double>(int64_t{1} << 40)) c.fail("the range has more than 2^40 elements");
  return static_cast<int64_t>(n);
}

// CumSum's axis (input 1, a scalar or 1-element integer tensor) within rank r.
int64_t cumsum_axis(const Infer& c, const Tensor* axis) {
  const std::vector<int64_t>& v = axis->i;
  if (!is_int_index(axis->type) || v.size() != 1) c.fail("axis must be one int32 or int64 value");
  return c.axis(v[0], c.rank(0), "axis");
}

template <class T>
void eval_cumsum(const Infer& c, const Tensor& x, int64_t axis, Tensor& y) {
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  const bool exclusive = c.attr_int("exclusive", 0) != 0, reverse = c.attr_int("reverse", 0) != 0;
  const Shape& s = x.shape;
  const int64_t n = s.empty() ? 1 : s[static_cast<size_t>(axis)];
  const int64_t inner = s.empty() ? 1 : product(s, static_cast<size_t>(axis) + 1, s.size());
  const int64_t outer = n == 0 || inner == 0 ? 0 : product(s) / (n * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      T sum{};
      for (int64_t j = 0; j < n; ++j) {
        const int64_t e = reverse ? n - 1 - j : j;
        const size_t at = static_cast<size_t>((o * n + e) * inner + i);
        if (exclusive) out[at] = sum;
        if constexpr (std::is_same_v<T, float>)
          sum += in[at];
        else
          sum = wrap_add(sum, in[at]);
        if (!exclusive) out[at] = sum;
      }
    }
}

template <class T>
void eval_trilu(const Infer& c, const Tensor& x, int64_t k, Tensor& y) {
  const bool upper = c.attr_int("upper", 1) != 0;
  const Shape& s = x.shape;
  const int64_t rows = s[s.size() - 2], cols = s.back();
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  // Diagonals beyond the matrix keep all or nothing; clamped, k - (j - i) cannot overflow.
  const int64_t kc = std::clamp<int64_t>(k, -(rows + cols), rows + cols);
  for (size_t e = 0; e < out.size(); ++e) {
    const int64_t j = static_cast<int64_t>(e) % cols, i = static_cast<int64_t>(e) / cols % rows;
    const bool keep = upper ? j - i >= kc : j - i <= kc;
    out[e] = keep ? in[e] : T{};
  }
}

}  // namespace

bool is_mask_op(OpType op) {
  return is_comparison(op) || is_logic(op) || op == OpType::kNot || op == OpType::kIsNaN || op == OpType::kIsInf ||
         op == OpType::kRange || op == OpType::kTrilu || op == OpType::kCumSum;
}

std::vector<OutputSpec> infer_mask_op(const Infer& c) {
  const OpType op = c.op();
  if (is_comparison(op) || is_logic(op)) {
    c.expect_inputs(2, 2);
    c.expect_outputs(1, 1);
    c.expect_same_type(0, 1, "A", "B");
    if (is_logic(op) && c.type(0) != ElemType::kBool)
      c.fail("inputs must be bool, not " + std::string(elem_type_name(c.type(0))));
    if (is_comparison(op) && c.type(0) == ElemType::kBool) c.fail("inputs must be numeric, not bool");
    return {{ElemType::kBool, c.broadcast(c.shape(0), c.shape(1))}};
  }
  switch (op) {
    case OpType::kNot:
      c.expect_inputs(1, 1);
      c.expect_outputs(1, 1);
      if (c.type(0) != ElemType::kBool) c.fail("input must be bool, not " + std::string(elem_type_name(c.type(0))));
      return {{ElemType::kBool, c.shape(0)}};
    case OpType::kIsNaN:
    case OpType::kIsInf:
      c.expect_inputs(1, 1);
      c.expect_outputs(1, 1);
      c.expect_float(0, "X");
      return {{ElemType::kBool, c.shape(0)}};
    case OpType::kRange: {
      c.expect_inputs(3, 3);
      c.expect_outputs(1, 1);
      c.expect_same_type(0, 1, "start", "limit");
      c.expect_same_type(0, 2, "start", "delta");
      if (c.type(0) == ElemType::kBool) c.fail("inputs must be numeric, not bool");
      return {{c.type(0), {range_length(c)}}};
    }
    case OpType::kTrilu:
      c.expect_inputs(1, 2);
      c.expect_outputs(1, 1);
      if (c.rank(0) < 2) c.fail("input must have rank >= 2, got shape " + shape_text(c.shape(0)));
      if (c.present(1)) {
        if (!is_int_index(c.type(1)) || !c.shape(1).empty())
          c.fail("k must be an int64 scalar, got " + std::string(elem_type_name(c.type(1))) + " " + shape_text(c.shape(1)));
      }
      return {{c.type(0), c.shape(0)}};
    case OpType::kCumSum:
      c.expect_inputs(2, 2);
      c.expect_outputs(1, 1);
      if (c.type(0) == ElemType::kBool) c.fail("x must be numeric, not bool");
      if (c.rank(0) < 1) c.fail("x must have rank >= 1");
      if (c.in[1].constant) cumsum_axis(c, c.in[1].constant);
      return {{c.type(0), c.shape(0)}};
    default:
      TESSERA_UNREACHABLE("not a mask operator");
  }
}

void eval_mask_op(const Infer& c, const Tensor* const* in, Tensor& y) {
  const OpType op = c.op();
  const Shape& s = y.shape;
  if (is_comparison(op)) {
    if (is_float(in[0]->type)) {
      Operand<float> a = operand<float>(*in[0], s), b = operand<float>(*in[1], s);
      for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = compare(op, a[k], b[k]);
    } else {
      Operand<int64_t> a = operand<int64_t>(*in[0], s), b = operand<int64_t>(*in[1], s);
      for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = compare(op, a[k], b[k]);
    }
    return;
  }
  if (is_logic(op)) {
    Operand<int64_t> a = operand<int64_t>(*in[0], s), b = operand<int64_t>(*in[1], s);
    for (size_t k = 0; k < y.i.size(); ++k) {
      const bool p = a[k] != 0, q = b[k] != 0;
      y.i[k] = op == OpType::kAnd ? (p && q) : op == OpType::kOr ? (p || q) : (p != q);
    }
    return;
  }
  switch (op) {
    case OpType::kNot:
      for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = in[0]->i[k] == 0;
      return;
    case OpType::kIsNaN:
      for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = std::isnan(in[0]->f[k]);
      return;
    case OpType::kIsInf: {
      const bool negative = c.attr_int("detect_negative", 1) != 0, positive = c.attr_int("detect_positive", 1) != 0;
      for (size_t k = 0; k < y.i.size(); ++k) {
        const float v = in[0]->f[k];
        y.i[k] = std::isinf(v) && ((v < 0 && negative) || (v > 0 && positive));
      }
      return;
    }
    case OpType::kRange:
      if (is_float(y.type)) {
        const double start = in[0]->f.at(0), delta = in[2]->f.at(0);
        for (size_t k = 0; k < y.f.size(); ++k) y.f[k] = static_cast<float>(start + static_cast<double>(k) * delta);
      } else {
        const int64_t start = in[0]->i.at(0), delta = in[2]->i.at(0);
        for (size_t k = 0; k < y.i.size(); ++k) y.i[k] = wrap_add(start, wrap_mul(static_cast<int64_t>(k), delta));
      }
      return;
    case OpType::kTrilu: {
      const int64_t k = c.present(1) ? in[1]->i.at(0) : 0;
      if (is_float(y.type)) return eval_trilu<float>(c, *in[0], k, y);
      return eval_trilu<int64_t>(c, *in[0], k, y);
    }
    case OpType::kCumSum: {
      const int64_t axis = cumsum_axis(c, in[1]);
      if (is_float(y.type)) return eval_cumsum<float>(c, *in[0], axis, y);
      return eval_cumsum<int64_t>(c, *in[0], axis, y);
    }
    default:
      TESSERA_UNREACHABLE("not a mask operator");
  }
}

}  // namespace tessera::graph::op_detail
