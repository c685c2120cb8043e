#include "core/workload.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/hash.h"

namespace tessera {

bool valid_alpha(double alpha) {
  // A zero makes the product moot; beyond these a float overflows or flushes to zero.
  return std::isfinite(alpha) && alpha != 0 && std::fabs(alpha) <= 3.0e38 && std::fabs(alpha) >= 1.0e-30;
}

double product_scale(const Workload& w) {
  return std::holds_alternative<MatmulShape>(w.shape) ? w.matmul().alpha : 1.0;
}

Workload unscaled(Workload w) {
  if (auto* m = std::get_if<MatmulShape>(&w.shape)) m->alpha = 1.0;
  return w;
}

std::string number_text(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
  TESSERA_CHECK(ec == std::errc(), "formatting a number");
  return std::string(buf, ptr);
}

namespace {

constexpr int64_t kMaxExtent = (int64_t{1} << 31) - 1;
constexpr double kMaxTensorElements = 140737488355328.0;  // 2^47

constexpr std::array kOpKinds = {OpKind::kMatmul,  OpKind::kBatchMatmul, OpKind::kConv2d,
                                 OpKind::kSoftmax, OpKind::kLayernorm,   OpKind::kReduce,
                                 OpKind::kElementwise};
constexpr std::array kEpilogueOps = {EpilogueOp::kBias, EpilogueOp::kRelu, EpilogueOp::kGelu,
                                     EpilogueOp::kResidual};
constexpr std::array kReduceOps = {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMean};
constexpr std::array kEltwiseOps = {
    EltwiseOp::kAdd,  EltwiseOp::kSub,     EltwiseOp::kMul,  EltwiseOp::kDiv, EltwiseOp::kMax,
    EltwiseOp::kMin,  EltwiseOp::kRelu,    EltwiseOp::kGelu, EltwiseOp::kSigmoid,
    EltwiseOp::kTanh, EltwiseOp::kExp,     EltwiseOp::kNeg,  EltwiseOp::kAbs};

template <typename Enum, size_t N, typename NameFn>
std::string join_names(const std::array<Enum, N>& values, NameFn name, std::string_view sep) {
  std::string out;
  for (Enum v : values) out += (out.empty() ? "" : std::string(sep)) + std::string(name(v));
  return out;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

// key=value pairs of a spec (or JSON object) consumed by the kind's builder; whatever is
// left over afterwards is an unknown parameter.
class ParamBag {
 public:
  ParamBag(std::string context, std::string what) : context_(std::move(context)), what_(std::move(what)) {}

  void add(std::string key, std::string value) {
    if (key.empty()) fail("empty " + what_ + " name");
    for (const auto& [k, v] : items_)
      if (k == key) fail(what_ + " '" + key + "' given twice");
    items_.emplace_back(std::move(key), std::move(value));
  }

  std::optional<std::string> take(std::string_view key) {
    for (auto it = items_.begin(); it != items_.end(); ++it) {
      if (it->first == key) {
        std::string value = std::move(it->second);
        items_.erase(it);
        return value;
      }
    }
    return std::nullopt;
  }

  int64_t extent(std::string_view key) {
    auto v = take(key);
    if (!v) fail("missing " + what_ + " '" + std::string(key) + "'");
    return to_int(key, *v, 1);
  }

  int64_t extent_or(std::string_view key, int64_t fallback, int64_t min_value = 1) {
    auto v = take(key);
    return v ? to_int(key, *v, min_value) : fallback;
  }

  bool flag(std::string_view key) {
    auto v = take(key);
    if (!v || *v == "0") return false;
    if (*v == "1") return true;
    fail(std::string(key) + " must be 0 or 1 (got '" + *v + "')");
  }

  // "N" or "HxW".
  std::pair<int64_t, int64_t> pair_or(std::string_view key, int64_t fallback, int64_t min_value) {
    auto v = take(key);
    if (!v) return {fallback, fallback};
    auto parts = split(*v, 'x');
    if (parts.size() == 1) {
      int64_t x = to_int(key, parts[0], min_value);
      return {x, x};
    }
    if (parts.size() != 2) fail(std::string(key) + " must be N or HxW (got '" + *v + "')");
    return {to_int(key, parts[0], min_value), to_int(key, parts[1], min_value)};
  }

  void finish(std::string_view kind, std::string_view valid) {
    if (!items_.empty())
      fail("unknown " + what_ + " '" + items_.front().first + "' for " + std::string(kind) +
           " (valid: " + std::string(valid) + ")");
  }

  [[noreturn]] void fail(const std::string& reason) const { throw UserError(context_ + ": " + reason); }

 private:
  int64_t to_int(std::string_view key, std::string_view text, int64_t min_value) const {
    std::string what = std::string(key) + " must be " +
                       (min_value > 0 ? "a positive integer" : "a non-negative integer");
    bool digits = !text.empty() && text.size() <= 18 &&
                  std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) fail(what + " (got '" + std::string(text) + "')");
    int64_t value = std::stoll(std::string(text));
    if (value < min_value) fail(what + " (got " + std::to_string(value) + ")");
    if (value > kMaxExtent)
      fail(std::string(key) + " must be at most " + std::to_string(kMaxExtent) + " (got " +
           std::string(text) + ")");
    return value;
  }

  std::string context_;
  std::string what_;
  std::vector<std::pair<std::string, std::string>> items_;
};

template <typename Enum, size_t N, typename NameFn>
Enum parse_enum(const ParamBag& bag, std::string_view text, const std::array<Enum, N>& values,
                NameFn name, std::string_view what) {
  for (Enum v : values)
    if (name(v) == text) return v;
  bag.fail("unknown " + std::string(what) + " '" + std::string(text) + "' (valid: " +
           join_names(values, name, ", ") + ")");
}

// A layernorm epsilon: a finite number in (0, 1), as ONNX models give it (1e-5, 1e-6, 1e-12).
double parse_epsilon(const ParamBag& bag, const std::string& text) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !std::isfinite(value) || value <= 0 || value >= 1)
    bag.fail("eps must be a number between 0 and 1, exclusive (got '" + text + "')");
  return value;
}

// A matmul's scale on its product (valid_alpha).
double parse_alpha(const ParamBag& bag, const std::string& text) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !valid_alpha(value))
    bag.fail("alpha must be a finite, non-zero number within float's range (got '" + text + "')");
  return value;
}

std::string pair_text(int64_t a, int64_t b) {
  return a == b ? std::to_string(a) : std::to_string(a) + "x" + std::to_string(b);
}

bool has_matmul_shape(OpKind k) { return k == OpKind::kMatmul || k == OpKind::kBatchMatmul; }
bool takes_epilogue(OpKind k) { return has_matmul_shape(k) || k == OpKind::kConv2d; }

// Shared by parse() and from_json(): validates everything and builds the workload.
Workload build(OpKind kind, DType dtype, ParamBag& params, ParamBag& options) {
  Workload w;
  w.kind = kind;
  w.dtype = dtype;
  w.out_dtype = dtype;
  if (auto out = options.take("out")) w.out_dtype = parse_dtype(*out, "option out");
  w.allow_tf32 = options.flag("tf32");
  if (w.allow_tf32 && !(dtype == DType::kF32 && takes_epilogue(kind)))
    options.fail("tf32=1 applies only to f32 matmul, batch_matmul and conv2d");
  if (auto epi = options.take("epilogue")) {
    if (!takes_epilogue(kind))
      options.fail("epilogue applies only to matmul, batch_matmul and conv2d");
    for (std::string_view part : split(*epi, '+')) {
      EpilogueOp op = parse_enum(options, part, kEpilogueOps, epilogue_op_name, "epilogue op");
      if (std::find(w.epilogue.begin(), w.epilogue.end(), op) != w.epilogue.end())
        options.fail("epilogue op '" + std::string(part) + "' given twice");
      w.epilogue.push_back(op);
    }
  }
  options.finish("a workload", "out, tf32, epilogue");

  std::string_view kind_name = op_kind_name(kind);
  switch (kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: {
      MatmulShape s;
      if (kind == OpKind::kBatchMatmul) s.batch = params.extent("b");
      s.m = params.extent("m");
      s.n = params.extent("n");
      s.k = params.extent("k");
      s.trans_a = params.flag("ta");
      s.trans_b = params.flag("tb");
      if (auto alpha = params.take("alpha")) s.alpha = parse_alpha(params, *alpha);
      params.finish(kind_name, kind == OpKind::kBatchMatmul ? "b, m, n, k, ta, tb, alpha" : "m, n, k, ta, tb, alpha");
      w.shape = s;
      break;
    }
    case OpKind::kConv2d: {
      Conv2dShape s;
      s.n = params.extent("n");
      s.h = params.extent("h");
      s.w = params.extent("w");
      s.c = params.extent("c");
      s.k = params.extent("k");
      s.r = params.extent("r");
      s.s = params.extent("s");
      std::tie(s.stride_h, s.stride_w) = params.pair_or("stride", 1, 1);
      std::tie(s.pad_h, s.pad_w) = params.pair_or("pad", 0, 0);
      std::tie(s.dilation_h, s.dilation_w) = params.pair_or("dilation", 1, 1);
      s.groups = params.extent_or("groups", 1);
      if (auto layout = params.take("layout")) {
        if (*layout == "nhwc") s.layout = Layout::kNHWC;
        else if (*layout == "nchw") s.layout = Layout::kNCHW;
        else params.fail("unknown layout '" + *layout + "' (valid: nhwc, nchw)");
      }
      params.finish(kind_name, "n, h, w, c, k, r, s, stride, pad, dilation, groups, layout");
      if (s.c % s.groups != 0 || s.k % s.groups != 0)
        params.fail("groups=" + std::to_string(s.groups) + " must divide c=" + std::to_string(s.c) +
                    " and k=" + std::to_string(s.k));
      if (s.out_h() < 1 || s.out_w() < 1)
        params.fail("the output is empty: the dilated " + std::to_string(s.r) + "x" +
                    std::to_string(s.s) + " filter does not fit the padded " + std::to_string(s.h) +
                    "x" + std::to_string(s.w) + " input");
      w.shape = s;
      break;
    }
    case OpKind::kSoftmax:
    case OpKind::kLayernorm: {
      RowShape s;
      s.rows = params.extent("rows");
      s.cols = params.extent("cols");
      if (kind == OpKind::kLayernorm) {
        if (auto eps = params.take("eps")) s.epsilon = parse_epsilon(params, *eps);
        params.finish(kind_name, "rows, cols, eps");
      } else {
        params.finish(kind_name, "rows, cols");
      }
      w.shape = s;
      break;
    }
    case OpKind::kReduce: {
      ReduceShape s;
      auto op = params.take("op");
      if (!op) params.fail("missing parameter 'op' (valid: " + join_names(kReduceOps, reduce_op_name, ", ") + ")");
      s.op = parse_enum(params, *op, kReduceOps, reduce_op_name, "reduce op");
      s.rows = params.extent("rows");
      s.cols = params.extent("cols");
      params.finish(kind_name, "op, rows, cols");
      w.shape = s;
      break;
    }
    case OpKind::kElementwise: {
      ElementwiseShape s;
      auto ops = params.take("ops");
      if (!ops) params.fail("missing parameter 'ops' (a chain such as add+relu)");
      for (std::string_view part : split(*ops, '+'))
        s.ops.push_back(parse_enum(params, part, kEltwiseOps, eltwise_op_name, "elementwise op"));
      s.n = params.extent("n");
      params.finish(kind_name, "ops, n");
      w.shape = s;
      break;
    }
  }
  for (const TensorAccess& t : w.expr().tensors) {
    double elements = 1;
    for (int64_t d : t.shape) elements *= static_cast<double>(d);
    if (elements > kMaxTensorElements)
      params.fail("tensor " + t.name + " would hold " + std::to_string(elements) +
                  " elements (at most 2^47)");
  }
  return w;
}

OpKind parse_kind(const ParamBag& bag, std::string_view text) {
  return parse_enum(bag, text, kOpKinds, op_kind_name, "workload kind");
}

AffineExpr ax(int axis, int64_t coeff = 1, int64_t offset = 0) { return {{{axis, coeff}}, offset}; }

AffineExpr ax2(int a, int64_t ca, int b, int64_t cb, int64_t offset) {
  return {{{a, ca}, {b, cb}}, offset};
}

void add_epilogue_inputs(TensorExpr& e, const Workload& w, TensorAccess bias, const TensorAccess& out) {
  for (EpilogueOp op : w.epilogue) {
    if (op == EpilogueOp::kBias) e.tensors.push_back(bias);
    if (op == EpilogueOp::kResidual) {
      TensorAccess res = out;
      res.name = "residual";
      res.role = TensorRole::kInput;
      e.tensors.push_back(res);
    }
  }
}

TensorExpr matmul_expr(const Workload& w) {
  const MatmulShape& s = w.matmul();
  TensorExpr e;
  bool batched = w.kind == OpKind::kBatchMatmul;
  if (batched) e.axes.push_back({"b", s.batch, AxisKind::kSpatial});
  int m = static_cast<int>(e.axes.size());
  e.axes.push_back({"m", s.m, AxisKind::kSpatial});
  e.axes.push_back({"n", s.n, AxisKind::kSpatial});
  e.axes.push_back({"k", s.k, AxisKind::kReduce});
  int n = m + 1, k = m + 2;
  auto tensor = [&](std::string name, TensorRole role, DType dt, int row, int col) {
    TensorAccess t{std::move(name), role, dt, {}, {}};
    if (batched) {
      t.shape.push_back(s.batch);
      t.index.push_back(ax(0));
    }
    t.shape.push_back(e.axes[row].extent);
    t.shape.push_back(e.axes[col].extent);
    t.index.push_back(ax(row));
    t.index.push_back(ax(col));
    return t;
  };
  e.tensors.push_back(s.trans_a ? tensor("A", TensorRole::kInput, w.dtype, k, m)
                                : tensor("A", TensorRole::kInput, w.dtype, m, k));
  e.tensors.push_back(s.trans_b ? tensor("B", TensorRole::kInput, w.dtype, n, k)
                                : tensor("B", TensorRole::kInput, w.dtype, k, n));
  TensorAccess c = tensor("C", TensorRole::kOutput, w.out_dtype, m, n);
  add_epilogue_inputs(e, w, {"bias", TensorRole::kInput, w.out_dtype, {s.n}, {ax(n)}}, c);
  e.tensors.push_back(c);
  e.flops_per_point = 2;
  e.flops_per_output = static_cast<double>(w.epilogue.size());
  return e;
}

TensorExpr conv2d_expr(const Workload& w) {
  const Conv2dShape& s = w.conv2d();
  TensorExpr e;
  bool grouped = s.groups > 1;
  int64_t cg = s.c / s.groups, kg = s.k / s.groups;
  auto add = [&](std::string name, int64_t extent, AxisKind kind) {
    e.axes.push_back({std::move(name), extent, kind});
    return static_cast<int>(e.axes.size()) - 1;
  };
  int n = add("n", s.n, AxisKind::kSpatial);
  int g = grouped ? add("g", s.groups, AxisKind::kSpatial) : -1;
  int p = add("p", s.out_h(), AxisKind::kSpatial);
  int q = add("q", s.out_w(), AxisKind::kSpatial);
  int k = add("k", kg, AxisKind::kSpatial);
  int c = add("c", cg, AxisKind::kReduce);
  int r = add("r", s.r, AxisKind::kReduce);
  int sx = add("s", s.s, AxisKind::kReduce);
  // Channel index across groups: g*per_group + axis.
  auto channel = [&](int axis, int64_t per_group) {
    return grouped ? ax2(g, per_group, axis, 1, 0) : ax(axis);
  };
  AffineExpr in_h = ax2(p, s.stride_h, r, s.dilation_h, -s.pad_h);
  AffineExpr in_w = ax2(q, s.stride_w, sx, s.dilation_w, -s.pad_w);
  bool nhwc = s.layout == Layout::kNHWC;
  TensorAccess x{"X", TensorRole::kInput, w.dtype, {}, {}};
  TensorAccess wt{"W", TensorRole::kInput, w.dtype, {}, {}};
  TensorAccess y{"Y", TensorRole::kOutput, w.out_dtype, {}, {}};
  if (nhwc) {
    x.shape = {s.n, s.h, s.w, s.c};
    x.index = {ax(n), in_h, in_w, channel(c, cg)};
    wt.shape = {s.k, s.r, s.s, cg};
    wt.index = {channel(k, kg), ax(r), ax(sx), ax(c)};
    y.shape = {s.n, s.out_h(), s.out_w(), s.k};
    y.index = {ax(n), ax(p), ax(q), channel(k, kg)};
  } else {
    x.shape = {s.n, s.c, s.h, s.w};
    x.index = {ax(n), channel(c, cg), in_h, in_w};
    wt.shape = {s.k, cg, s.r, s.s};
    wt.index = {channel(k, kg), ax(c), ax(r), ax(sx)};
    y.shape = {s.n, s.k, s.out_h(), s.out_w()};
    y.index = {ax(n), channel(k, kg), ax(p), ax(q)};
  }
  e.tensors = {x, wt};
  add_epilogue_inputs(e, w, {"bias", TensorRole::kInput, w.out_dtype, {s.k}, {channel(k, kg)}}, y);
  e.tensors.push_back(y);
  e.flops_per_point = 2;
  e.flops_per_output = static_cast<double>(w.epilogue.size());
  return e;
}

TensorExpr row_expr(const Workload& w) {
  TensorExpr e;
  if (w.kind == OpKind::kReduce) {
    const ReduceShape& s = w.reduce();
    e.axes = {{"row", s.rows, AxisKind::kSpatial}, {"col", s.cols, AxisKind::kReduce}};
    e.tensors = {{"X", TensorRole::kInput, w.dtype, {s.rows, s.cols}, {ax(0), ax(1)}},
                 {"Y", TensorRole::kOutput, w.out_dtype, {s.rows}, {ax(0)}}};
    e.flops_per_point = 1;                                   // one add or max per element
    e.flops_per_output = s.op == ReduceOp::kMean ? 1 : 0;    // the final division
    return e;
  }
  const RowShape& s = w.rows();
  e.axes = {{"row", s.rows, AxisKind::kSpatial}, {"col", s.cols, AxisKind::kSpatial}};
  e.tensors.push_back({"X", TensorRole::kInput, w.dtype, {s.rows, s.cols}, {ax(0), ax(1)}});
  if (w.kind == OpKind::kLayernorm) {
    e.tensors.push_back({"gamma", TensorRole::kInput, w.dtype, {s.cols}, {ax(1)}});
    e.tensors.push_back({"beta", TensorRole::kInput, w.dtype, {s.cols}, {ax(1)}});
  }
  e.tensors.push_back({"Y", TensorRole::kOutput, w.out_dtype, {s.rows, s.cols}, {ax(0), ax(1)}});
  // Softmax: max, subtract, exp, sum, divide. Layernorm: sum; subtract, square, sum for the
  // variance; subtract and scale to normalise; gamma multiply and beta add.
  e.flops_per_point = w.kind == OpKind::kSoftmax ? 5 : 8;
  return e;
}

TensorExpr elementwise_expr(const Workload& w) {
  const ElementwiseShape& s = w.elementwise();
  TensorExpr e;
  e.axes = {{"i", s.n, AxisKind::kSpatial}};
  int64_t inputs = 1 + std::count_if(s.ops.begin(), s.ops.end(), eltwise_is_binary);
  for (int64_t i = 0; i < inputs; ++i)
    e.tensors.push_back({"x" + std::to_string(i), TensorRole::kInput, w.dtype, {s.n}, {ax(0)}});
  e.tensors.push_back({"y", TensorRole::kOutput, w.out_dtype, {s.n}, {ax(0)}});
  e.flops_per_point = static_cast<double>(s.ops.size());  // one per step, gelu included
  return e;
}

std::string join_ops(const auto& ops, auto name) {
  std::string out;
  for (auto op : ops) out += (out.empty() ? "" : "+") + std::string(name(op));
  return out;
}

}  // namespace

int64_t Conv2dShape::out_h() const { return (h + 2 * pad_h - dilation_h * (r - 1) - 1) / stride_h + 1; }
int64_t Conv2dShape::out_w() const { return (w + 2 * pad_w - dilation_w * (s - 1) - 1) / stride_w + 1; }

std::string_view baseline_name(OpKind k) {
  switch (k) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: return "cuBLASLt";
    case OpKind::kConv2d: return "cuDNN";
    default: return "copy";
  }
}

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kMatmul: return "matmul";
    case OpKind::kBatchMatmul: return "batch_matmul";
    case OpKind::kConv2d: return "conv2d";
    case OpKind::kSoftmax: return "softmax";
    case OpKind::kLayernorm: return "layernorm";
    case OpKind::kReduce: return "reduce";
    case OpKind::kElementwise: return "elementwise";
  }
  TESSERA_UNREACHABLE("unknown OpKind");
}

std::string_view epilogue_op_name(EpilogueOp op) {
  switch (op) {
    case EpilogueOp::kBias: return "bias";
    case EpilogueOp::kRelu: return "relu";
    case EpilogueOp::kGelu: return "gelu";
    case EpilogueOp::kResidual: return "residual";
  }
  TESSERA_UNREACHABLE("unknown EpilogueOp");
}

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kMax: return "max";
    case ReduceOp::kMean: return "mean";
  }
  TESSERA_UNREACHABLE("unknown ReduceOp");
}

std::string_view eltwise_op_name(EltwiseOp op) {
  switch (op) {
    case EltwiseOp::kAdd: return "add";
    case EltwiseOp::kSub: return "sub";
    case EltwiseOp::kMul: return "mul";
    case EltwiseOp::kDiv: return "div";
    case EltwiseOp::kMax: return "max";
    case EltwiseOp::kMin: return "min";
    case EltwiseOp::kRelu: return "relu";
    case EltwiseOp::kGelu: return "gelu";
    case EltwiseOp::kSigmoid: return "sigmoid";
    case EltwiseOp::kTanh: return "tanh";
    case EltwiseOp::kExp: return "exp";
    case EltwiseOp::kNeg: return "neg";
    case EltwiseOp::kAbs: return "abs";
  }
  TESSERA_UNREACHABLE("unknown EltwiseOp");
}

bool eltwise_is_binary(EltwiseOp op) {
  switch (op) {
    case EltwiseOp::kAdd:
    case EltwiseOp::kSub:
    case EltwiseOp::kMul:
    case EltwiseOp::kDiv:
    case EltwiseOp::kMax:
    case EltwiseOp::kMin: return true;
    default: return false;
  }
}

Workload Workload::parse(std::string_view spec) {
  std::string context = "invalid workload spec '" + std::string(spec) + "'";
  ParamBag params(context, "parameter"), options(context, "option");
  auto sections = split(spec, ':');
  if (sections.size() < 3)
    params.fail("expected KIND:PARAMS:DTYPE, e.g. matmul:m=4096,n=4096,k=4096:f16");
  OpKind kind = parse_kind(params, sections[0]);
  auto add_pairs = [](ParamBag& bag, std::string_view section, const char* what) {
    for (std::string_view item : split(section, ',')) {
      size_t eq = item.find('=');
      if (eq == std::string_view::npos)
        bag.fail(std::string("expected key=value in ") + what + ", got '" + std::string(item) + "'");
      bag.add(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
    }
  };
  add_pairs(params, sections[1], "the parameters");
  DType dtype;
  try {
    dtype = parse_dtype(sections[2], "dtype");
  } catch (const UserError& e) {
    params.fail(e.what());
  }
  for (size_t i = 3; i < sections.size(); ++i) add_pairs(options, sections[i], "the options");
  try {
    return build(kind, dtype, params, options);
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind(context, 0) == 0) throw;
    params.fail(msg);
  }
}

Workload Workload::from_json(const Json& j) {
  if (j.is_string()) return parse(j.get<std::string>());
  std::string context = "invalid workload JSON " + j.dump();
  ParamBag params(context, "parameter"), options(context, "option");
  if (!j.is_object()) params.fail("expected a spec string or an object with \"kind\" and \"dtype\"");
  std::optional<OpKind> kind;
  std::optional<DType> dtype;
  for (const auto& [key, value] : j.items()) {
    std::string text;
    if (value.is_string()) text = value.get<std::string>();
    else if (value.is_boolean()) text = value.get<bool>() ? "1" : "0";
    else if (value.is_number_integer()) text = std::to_string(value.get<int64_t>());
    else if (value.is_number_float()) text = number_text(value.get<double>());
    else params.fail("field \"" + key + "\" must be a string or a number");
    if (key == "kind") kind = parse_kind(params, text);
    else if (key == "dtype") {
      try {
        dtype = parse_dtype(text, "dtype");
      } catch (const UserError& e) {
        params.fail(e.what());
      }
    } else if (key == "out" || key == "tf32" || key == "epilogue") options.add(key, text);
    else params.add(key, text);
  }
  if (!kind) params.fail("missing field \"kind\"");
  if (!dtype) params.fail("missing field \"dtype\"");
  try {
    return build(*kind, *dtype, params, options);
  } catch (const UserError& e) {
    std::string msg = e.what();
    if (msg.rfind(context, 0) == 0) throw;
    params.fail(msg);
  }
}

namespace {
// The canonical fields of a workload, in key order: parameters (defaults left out), then
// options. `emit(name, value)` gets an int64_t or a std::string. Shared by to_json() and
// key(), so the two always agree.
template <typename Emit>
void visit_params(const Workload& w, Emit&& emit) {
  switch (w.kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: {
      const MatmulShape& s = w.matmul();
      if (w.kind == OpKind::kBatchMatmul) emit("b", s.batch);
      emit("m", s.m);
      emit("n", s.n);
      emit("k", s.k);
      if (s.trans_a) emit("ta", int64_t{1});
      if (s.trans_b) emit("tb", int64_t{1});
      if (s.alpha != 1.0) emit("alpha", number_text(s.alpha));
      break;
    }
    case OpKind::kConv2d: {
      const Conv2dShape& s = w.conv2d();
      for (auto [name, v] : {std::pair{"n", s.n}, {"h", s.h}, {"w", s.w}, {"c", s.c}, {"k", s.k},
                             {"r", s.r}, {"s", s.s}})
        emit(name, v);
      auto put_pair = [&](const char* name, int64_t a, int64_t b, int64_t dflt) {
        if (a == b && a != dflt) emit(name, a);
        else if (a != b) emit(name, pair_text(a, b));
      };
      put_pair("stride", s.stride_h, s.stride_w, 1);
      put_pair("pad", s.pad_h, s.pad_w, 0);
      put_pair("dilation", s.dilation_h, s.dilation_w, 1);
      if (s.groups != 1) emit("groups", s.groups);
      if (s.layout == Layout::kNCHW) emit("layout", std::string("nchw"));
      break;
    }
    case OpKind::kSoftmax:
    case OpKind::kLayernorm:
      emit("rows", w.rows().rows);
      emit("cols", w.rows().cols);
      if (w.rows().epsilon != kDefaultLayernormEpsilon) emit("eps", number_text(w.rows().epsilon));
      break;
    case OpKind::kReduce:
      emit("op", std::string(reduce_op_name(w.reduce().op)));
      emit("rows", w.reduce().rows);
      emit("cols", w.reduce().cols);
      break;
    case OpKind::kElementwise:
      emit("ops", join_ops(w.elementwise().ops, eltwise_op_name));
      emit("n", w.elementwise().n);
      break;
  }
}

template <typename Emit>
void visit_options(const Workload& w, Emit&& emit) {
  if (w.out_dtype != w.dtype) emit("out", std::string(dtype_name(w.out_dtype)));
  if (w.allow_tf32) emit("tf32", int64_t{1});
  if (!w.epilogue.empty()) emit("epilogue", join_ops(w.epilogue, epilogue_op_name));
}
}  // namespace

Json Workload::to_json() const {
  Json j;
  j["kind"] = op_kind_name(kind);
  auto put = [&](const char* name, const auto& value) { j[name] = value; };
  visit_params(*this, put);
  j["dtype"] = dtype_name(dtype);
  visit_options(*this, put);
  return j;
}

std::string Workload::key() const {
  std::string out(op_kind_name(kind));
  char sep = ':';
  auto text = [](const auto& value) {
    if constexpr (std::is_integral_v<std::decay_t<decltype(value)>>) return std::to_string(value);
    else return value;
  };
  visit_params(*this, [&](const char* name, const auto& value) {
    out += sep;
    out += name;
    out += '=';
    out += text(value);
    sep = ',';
  });
  out += ':';
  out += dtype_name(dtype);
  visit_options(*this, [&](const char* name, const auto& value) {
    out += ':';
    out += name;
    out += '=';
    out += text(value);
  });
  return out;
}

uint64_t Workload::hash() const { return stable_hash(key()); }

TensorExpr Workload::expr() const {
  switch (kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: return matmul_expr(*this);
    case OpKind::kConv2d: return conv2d_expr(*this);
    case OpKind::kSoftmax:
    case OpKind::kLayernorm:
    case OpKind::kReduce: return row_expr(*this);
    case OpKind::kElementwise: return elementwise_expr(*this);
  }
  TESSERA_UNREACHABLE("unknown OpKind");
}

const MatmulShape& Workload::matmul() const {
  TESSERA_CHECK(has_matmul_shape(kind), "not a matmul workload");
  return std::get<MatmulShape>(shape);
}
const Conv2dShape& Workload::conv2d() const {
  TESSERA_CHECK(kind == OpKind::kConv2d, "not a conv2d workload");
  return std::get<Conv2dShape>(shape);
}
const RowShape& Workload::rows() const {
  TESSERA_CHECK(kind == OpKind::kSoftmax || kind == OpKind::kLayernorm, "not a row workload");
  return std::get<RowShape>(shape);
}
const ReduceShape& Workload::reduce() const {
  TESSERA_CHECK(kind == OpKind::kReduce, "not a reduce workload");
  return std::get<ReduceShape>(shape);
}
const ElementwiseShape& Workload::elementwise() const {
  TESSERA_CHECK(kind == OpKind::kElementwise, "not an elementwise workload");
  return std::get<ElementwiseShape>(shape);
}

}  // namespace tessera
