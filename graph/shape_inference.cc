// Shape inference of the graph operators: one inference function per operator family, then
// infer(), which checks an operator's inputs and attributes and gives its outputs' types and
// shapes (infer_node in ops.h). All input checks live here: evaluation (evaluation.cc) runs
// inference first, so its kernels may assume consistent shapes.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/workload.h"
#include "graph/op_semantics.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace op_detail {


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

// Dropout outside training, or with ratio 0 (an exporter may write training_mode true with a
// ratio of 0, torchvision's Swin does): the data unchanged, and a mask of all true when asked.
std::vector<OutputSpec> infer_dropout(const Infer& c) {
  c.expect_inputs(1, 3);
  c.expect_outputs(1, 2);
  c.expect_float(0, "data");
  if (c.present(2)) {
    const InputInfo& mode = c.in[2];
    if (!mode.constant || mode.constant->i.size() != 1)
      c.fail("training_mode must be a constant (only inference, training_mode false, is modelled)");
    const InputInfo* ratio = c.present(1) ? &c.in[1] : nullptr;
    const bool zero_ratio = ratio && ratio->constant && ratio->constant->f.size() == 1 && ratio->constant->f[0] == 0.0f;
    if (mode.constant->i[0] != 0 && !zero_ratio)
      c.fail("training_mode is true with a ratio that is not a constant 0: only inference is modelled");
  }
  std::vector<OutputSpec> out = {{c.type(0), c.shape(0)}};
  if (c.outputs == 2) out.push_back({ElemType::kBool, c.shape(0)});
  return out;
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
  if (fused) {
    check_epilogue_inputs(c, epilogue_steps(c), y, false);
    const double alpha = c.attr_float("alpha", 1.0);
    if (!valid_alpha(alpha))
      c.fail("alpha " + number_text(alpha) + " must be a finite, non-zero number within float's range");
  }
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

// Which dimensions a Reduce operator reduces (none when it is an identity).
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

// ReduceMean (floating data), ReduceSum, ReduceMax, ReduceMin, ReduceProd (numeric).
std::vector<OutputSpec> infer_reduce(const Infer& c) {
  c.expect_inputs(1, 2);
  c.expect_outputs(1, 1);
  if (c.op() == OpType::kReduceMean) c.expect_float(0, "data");
  if (c.type(0) == ElemType::kBool) c.fail("data must be numeric, not bool");
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
    case OpType::kReciprocal:
    case OpType::kLog:
    case OpType::kFloor:
    case OpType::kCeil:
    case OpType::kHardSigmoid:
    case OpType::kHardSwish:
      return infer_unary(c, true);
    case OpType::kDropout:
      return infer_dropout(c);
    case OpType::kEinsum:
      return infer_einsum(c);
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
    case OpType::kReduceSum:
    case OpType::kReduceMax:
    case OpType::kReduceMin:
    case OpType::kReduceProd:
      return infer_reduce(c);
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
      return infer_mask_op(c);
    case OpType::kPad:
    case OpType::kTile:
    case OpType::kGatherND:
    case OpType::kScatterND:
      return infer_indexing_op(c);
    case OpType::kEltwiseChain:
      return infer_chain(c);
    case OpType::kOpaque:
      c.fail("an Opaque node's outputs come from its model; they cannot be inferred or evaluated");
  }
  TESSERA_UNREACHABLE("unknown OpType");
}


// infer(), with every output's element count within kMaxOutputElements, for evaluation: a
// shape a file's numbers blow up (Tile, Expand, Pad, ConstantOfShape of 2^40 per dimension) is
// one error, not an int64 overflow or an allocation that fails. (Inference alone leaves the
// bound to its callers: rule verification states its own.)
std::vector<OutputSpec> infer_bounded(const Infer& c) {
  std::vector<OutputSpec> out = infer(c);
  for (const OutputSpec& o : out)
    if (!bounded_elements(o.second, kMaxOutputElements))
      c.fail("output shape " + shape_text(o.second) + " has more than 2^40 elements");
  return out;
}

}  // namespace op_detail


std::vector<std::pair<ElemType, std::vector<int64_t>>> infer_node(OpType op, const Attrs& attrs,
                                                                  std::span<const InputInfo> inputs,
                                                                  int num_outputs) {
  return op_detail::infer(op_detail::Infer(op, attrs, inputs, num_outputs));
}

}  // namespace tessera::graph
