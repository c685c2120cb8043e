// Checks of an ONNX model's nodes before and after ONNX's shape inference (onnx_checks.h).
#include "graph/onnx_checks.h"

#include <onnx/defs/schema.h>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numbers>
#include <numeric>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/version.h"
#include "kernels/reference.h"
#include "graph/onnx_format.h"

namespace tessera::graph::onnx_detail {
// ---------------------------------------------------------------------------------------
// Checks before shape inference
//
// libonnx trusts the model it is given: its shape inference divides by a Conv's strides,
// indexes a list by a weight's rank, and reads an attribute of the wrong type as 0. So a
// model's nodes go through ONNX's checker first (known operators, numbers of inputs and
// outputs, kinds of attributes), and shape inference goes through GuardedSchemas, which runs
// shape_problem() on a node just before ONNX's inference of it and makes ONNX skip a node it
// refuses. After inference shape_problem() runs over the graph's nodes again, with every
// shape ONNX found, to name the node in the error.

// An ONNX checker or inference message on one line (a subgraph's error carries its context
// after a blank line).
std::string flat_message(std::string message) {
  for (std::string_view context : {"\n\n==> Context: ", "\n"}) {
    for (size_t at = message.find(context); at != std::string::npos; at = message.find(context, at + 1))
      message.replace(at, context.size(), context.size() > 1 ? "; " : " ");
  }
  return message;
}

std::string attribute_type_name(int type) {
  if (onnx::AttributeProto::AttributeType_IsValid(type))
    return onnx::AttributeProto::AttributeType_Name(static_cast<onnx::AttributeProto::AttributeType>(type));
  return "type " + std::to_string(type);
}

std::string count_text(int count, const char* what) {
  return std::to_string(count) + " " + what + (count == 1 ? "" : "s");
}

// "2", "2 to 3", "at least 1": how many inputs or outputs a schema takes.
std::string range_text(int lo, int hi) {
  if (lo == hi) return std::to_string(lo);
  if (hi == INT_MAX) return "at least " + std::to_string(lo);
  return std::to_string(lo) + " to " + std::to_string(hi);
}

std::vector<int64_t> dims_of(const onnx::TensorProto& t) {
  std::vector<int64_t> dims;
  for (int64_t d : t.dims()) dims.push_back(d);
  return dims;
}

// The values of an integer tensor, or nothing when they are not at hand (another type,
// external data, a size that does not fit its shape).
std::optional<std::vector<int64_t>> int_values(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  std::optional<int64_t> n = checked_elements(dims_of(t));
  if (!n) return std::nullopt;
  std::vector<int64_t> v;
  if (t.data_type() == onnx::TensorProto::INT64 || t.data_type() == onnx::TensorProto::INT32) {
    int64_t bytes = t.data_type() == onnx::TensorProto::INT64 ? 8 : 4;
    if (t.has_raw_data()) {
      if (t.raw_data().size() % static_cast<size_t>(bytes) != 0 ||
          static_cast<int64_t>(t.raw_data().size() / static_cast<size_t>(bytes)) != *n)
        return std::nullopt;
      for (int64_t k = 0; k < *n; ++k) {
        uint64_t b = load_le(t.raw_data().data() + k * bytes, bytes);
        v.push_back(bytes == 8 ? static_cast<int64_t>(b) : static_cast<int32_t>(static_cast<uint32_t>(b)));
      }
    } else if (bytes == 8) {
      v.assign(t.int64_data().begin(), t.int64_data().end());
    } else {
      v.assign(t.int32_data().begin(), t.int32_data().end());
    }
  } else {
    return std::nullopt;
  }
  if (static_cast<int64_t>(v.size()) != *n) return std::nullopt;
  return v;
}

// The values of a float32 / float64 tensor, or nothing when they are not at hand.
std::optional<std::vector<double>> float_values(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  std::optional<int64_t> n = checked_elements(dims_of(t));
  if (!n) return std::nullopt;
  std::vector<double> v;
  if (t.data_type() == onnx::TensorProto::FLOAT || t.data_type() == onnx::TensorProto::DOUBLE) {
    bool f64 = t.data_type() == onnx::TensorProto::DOUBLE;
    int64_t bytes = f64 ? 8 : 4;
    if (t.has_raw_data()) {
      if (t.raw_data().size() % static_cast<size_t>(bytes) != 0 ||
          static_cast<int64_t>(t.raw_data().size() / static_cast<size_t>(bytes)) != *n)
        return std::nullopt;
      for (int64_t k = 0; k < *n; ++k) {
        uint64_t b = load_le(t.raw_data().data() + k * bytes, bytes);
        v.push_back(f64 ? std::bit_cast<double>(b) : std::bit_cast<float>(static_cast<uint32_t>(b)));
      }
    } else if (f64) {
      v.assign(t.double_data().begin(), t.double_data().end());
    } else {
      v.assign(t.float_data().begin(), t.float_data().end());
    }
  } else {
    return std::nullopt;
  }
  if (static_cast<int64_t>(v.size()) != *n) return std::nullopt;
  return v;
}

// The dimensions a type states (-1 for an extent it leaves open), or nothing without a rank.
std::optional<std::vector<int64_t>> stated_dims(const onnx::TypeProto* type) {
  if (!type || !type->has_tensor_type() || !type->tensor_type().has_shape()) return std::nullopt;
  std::vector<int64_t> dims;
  for (const auto& d : type->tensor_type().shape().dim())
    dims.push_back(d.has_dim_value() && d.dim_value() >= 0 ? d.dim_value() : -1);
  return dims;
}

namespace {

// Conv, ConvInteger, QLinearConv, ConvTranspose and the windowed pools: ONNX's inference
// divides by strides, sizes its lists by the input's rank and indexes them by the weight's.
std::string window_problem(const NodeFacts& n) {
  bool transpose = n.op == "ConvTranspose";
  bool conv = transpose || n.op == "Conv" || n.op == "ConvInteger" || n.op == "QLinearConv";
  size_t w_input = n.op == "QLinearConv" ? 3 : 1;
  std::optional<std::vector<int64_t>> x = n.input_dims(0), w;
  if (conv) w = n.input_dims(w_input);
  std::string w_layout = transpose ? "[C, M/group, k1, ...]" : "[M, C/group, k1, ...]";
  if (x && x->size() < 3)
    return "X " + shape_text(*x) + " must be [N, C, D1, ...] with at least one spatial dimension";
  if (w && w->size() < 3) return "W " + shape_text(*w) + " must be " + w_layout;
  if (x && w && x->size() != w->size())
    return "W " + shape_text(*w) + " must have the rank of X " + shape_text(*x) + " (W is " + w_layout + ")";

  // The number of spatial dimensions, and what says so: X, else W, else the first list.
  std::optional<size_t> spatial;
  std::string source;
  if (x) {
    spatial = x->size() - 2;
    source = "X " + shape_text(*x);
  } else if (w) {
    spatial = w->size() - 2;
    source = "W " + shape_text(*w);
  }
  struct ListRule {
    const char* name;
    int64_t min;
    size_t per_dimension;
  };
  for (ListRule rule :
       {ListRule{"kernel_shape", 1, 1}, ListRule{"strides", 1, 1}, ListRule{"dilations", 1, 1},
        ListRule{"pads", 0, 2}, ListRule{"output_padding", 0, 1}, ListRule{"output_shape", 1, 1}}) {
    std::optional<std::vector<int64_t>> v = n.ints_attr(rule.name);
    if (!v) continue;
    std::string text = std::string(rule.name) + " " + shape_text(*v);
    for (int64_t e : *v) {
      if (e < rule.min) return text + " must be " + (rule.min > 0 ? "positive" : "non-negative");
    }
    if (!spatial && v->size() % rule.per_dimension == 0) {
      spatial = v->size() / rule.per_dimension;
      source = text;
    } else if (!spatial || v->size() != *spatial * rule.per_dimension) {
      std::string per = rule.per_dimension == 2 ? "a begin and an end" : "one";
      return text + " must have " +
             (spatial ? std::to_string(*spatial * rule.per_dimension) + " values, " : "") + per +
             " per spatial dimension" + (spatial ? " of " + source : "");
    }
  }
  std::optional<std::vector<int64_t>> kernel = n.ints_attr("kernel_shape");
  if (kernel && w) {
    for (size_t d = 0; d < kernel->size(); ++d) {
      int64_t k = (*w)[d + 2];
      if (k >= 0 && k != (*kernel)[d])
        return "kernel_shape " + shape_text(*kernel) + " must be the spatial dimensions of W " +
               shape_text(*w);
    }
  }
  std::string auto_pad = n.string_attr("auto_pad").value_or("NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" && auto_pad != "VALID")
    return "auto_pad " + in_quotes(auto_pad) + " must be NOTSET, SAME_UPPER, SAME_LOWER or VALID";
  // Without SAME padding a sliding window must fit the padded input: else there is no output,
  // and ONNX's arithmetic overflows on the way (a dilation near 2^63 wraps the window to -1).
  // ConvTranspose and MaxUnpool grow their input instead.
  bool slides = !transpose && n.op != "MaxUnpool";
  if (slides && x && spatial && (auto_pad == "NOTSET" || auto_pad == "VALID")) {
    std::vector<int64_t> window = kernel.value_or(std::vector<int64_t>{});
    if (!kernel && w) window.assign(w->begin() + 2, w->end());
    std::vector<int64_t> dilations = n.ints_attr("dilations").value_or(std::vector<int64_t>(*spatial, 1));
    std::vector<int64_t> pads = n.ints_attr("pads").value_or(std::vector<int64_t>(2 * *spatial, 0));
    if (auto_pad == "VALID") pads.assign(2 * *spatial, 0);
    for (size_t d = 0; d < window.size() && d < *spatial; ++d) {
      int64_t in = (*x)[d + 2], k = window[d];
      if (in < 0 || k < 1) continue;
      int64_t extent = 0, padded = 0;
      bool too_wide =
          __builtin_mul_overflow(k - 1, dilations[d], &extent) || __builtin_add_overflow(extent, 1, &extent);
      bool too_padded = __builtin_add_overflow(in, pads[d], &padded) ||
                        __builtin_add_overflow(padded, pads[d + *spatial], &padded);
      if (too_padded) return "pads " + shape_text(pads) + " overflow the extents of X " + shape_text(*x);
      if (too_wide || extent > padded) {
        return "a window of kernel " + shape_text(window) + " with dilations " + shape_text(dilations) +
               " does not fit X " + shape_text(*x) + " with pads " + shape_text(pads);
      }
    }
  }
  if (!conv) return {};

  int64_t group = n.int_attr("group").value_or(1);
  std::string group_text = "group " + std::to_string(group);
  if (group < 1) return group_text + " must be positive";
  std::optional<int64_t> channels = n.extent(0, 1);
  if (channels && *channels % group != 0)
    return group_text + " must divide the " + std::to_string(*channels) + " channels of X " + shape_text(*x);
  std::optional<int64_t> w0 = n.extent(w_input, 0), w1 = n.extent(w_input, 1);
  if (transpose) {
    if (channels && w0 && *w0 != *channels)
      return "W " + shape_text(*w) + " must have X's " + std::to_string(*channels) +
             " channels as its first dimension";
    return {};
  }
  if (w0 && *w0 % group != 0)
    return group_text + " must divide the " + std::to_string(*w0) + " output channels of W " + shape_text(*w);
  if (channels && w1 && *channels / group != *w1) {
    return "W " + shape_text(*w) + " takes " + std::to_string(*w1) + " channels per group, X " +
           shape_text(*x) + " gives " + std::to_string(*channels / group) + " (" + group_text + ")";
  }
  return {};
}

// DepthToSpace / SpaceToDepth: ONNX's inference divides by blocksize.
std::string block_problem(const NodeFacts& n) {
  std::optional<int64_t> block = n.int_attr("blocksize");
  if (!block) return {};
  std::string text = "blocksize " + std::to_string(*block);
  if (*block < 1) return text + " must be positive";
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (!x) return {};
  if (x->size() != 4) return "input " + shape_text(*x) + " must be [N, C, H, W]";
  if (n.op == "DepthToSpace") {
    int64_t c = (*x)[1];
    if (c >= 0 && (c % *block != 0 || (c / *block) % *block != 0))
      return text + " squared must divide the " + std::to_string(c) + " channels of input " + shape_text(*x);
    return {};
  }
  for (size_t d : {size_t{2}, size_t{3}}) {
    if ((*x)[d] >= 0 && (*x)[d] % *block != 0)
      return text + " must divide the height and width of input " + shape_text(*x);
  }
  return {};
}

// An `axis` attribute that indexes input 0's dimensions.
std::string axis_problem(const NodeFacts& n) {
  std::optional<int64_t> axis = n.int_attr("axis");
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (!axis || !x || x->empty()) return {};
  auto rank = static_cast<int64_t>(x->size());
  // Flatten's and LayerNormalization's axis may be the rank itself (everything before it).
  int64_t last = n.op == "Flatten" || n.op == "LayerNormalization" ? rank : rank - 1;
  if (*axis < -rank || *axis > last) {
    return "axis " + std::to_string(*axis) + " is out of range for input " + shape_text(*x) +
           " (valid: " + std::to_string(-rank) + " to " + std::to_string(last) + ")";
  }
  return {};
}

std::string reshape_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> shape = n.input_ints(1);
  if (!shape) return {};
  std::string text = "shape " + shape_text(*shape);
  bool allow_zero = n.int_attr("allowzero").value_or(0) != 0;
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  int inferred = 0;
  bool zero = false, known = true;
  int64_t elements = 1;  // of the target without its -1, while every extent is known
  for (size_t d = 0; d < shape->size(); ++d) {
    int64_t e = (*shape)[d];
    if (e < -1) return text + " may hold -1 (inferred) and 0 (copied), no other negative value";
    if (e == -1) {
      ++inferred;
      continue;
    }
    if (e == 0) zero = true;
    if (e == 0 && !allow_zero) {
      if (x && d >= x->size())
        return text + " copies dimension " + std::to_string(d) + " (a 0), which input " + shape_text(*x) +
               " lacks";
      e = x ? (*x)[d] : -1;
    }
    if (e < 0) {
      known = false;
    } else if (e == 0 || elements <= INT64_MAX / e) {
      elements *= e;
    } else {
      known = false;
    }
  }
  if (inferred > 1) return text + " may hold one -1 at most";
  if (inferred == 1 && allow_zero && zero) return text + " cannot hold both 0 and -1 with allowzero=1";
  if (inferred == 1 && known && elements == 0)
    return text + " leaves its -1 undefined: the other dimensions hold no elements";
  return {};
}

std::string split_problem(const NodeFacts& n) {
  int64_t axis = n.int_attr("axis").value_or(0);
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  std::optional<int64_t> extent;
  if (x) {
    auto rank = static_cast<int64_t>(x->size());
    if (axis >= -rank && axis < rank)
      extent = n.extent(0, static_cast<size_t>(axis < 0 ? axis + rank : axis));
  }
  std::string axis_text = extent ? "axis " + std::to_string(axis) + " of input " + shape_text(*x) : "";
  std::optional<std::vector<int64_t>> split = n.input_ints(1);
  if (!split) {
    if (extent && n.num_outputs > 0 && *extent % n.num_outputs != 0)
      return axis_text + " does not split into " + std::to_string(n.num_outputs) +
             " equal parts; give the sizes";
    return {};
  }
  std::string text = "split " + shape_text(*split);
  if (static_cast<int>(split->size()) != n.num_outputs)
    return text + " must hold one size per output (" + count_text(n.num_outputs, "output") + ")";
  int64_t sum = 0;
  for (int64_t e : *split) {
    if (e < 0 || e > INT64_MAX - sum) return text + " must hold non-negative sizes";
    sum += e;
  }
  if (extent && sum != *extent)
    return text + " must add up to the extent " + std::to_string(*extent) + " of " + axis_text;
  return {};
}

// Tile's repeats and Expand's shape: ONNX's inference multiplies by them.
std::string repeat_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> v = n.input_ints(1);
  if (!v) return {};
  std::string text = (n.op == "Tile" ? "repeats " : "shape ") + shape_text(*v);
  for (int64_t e : *v) {
    if (e < 0) return text + " must be non-negative";
  }
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (n.op == "Tile" && x && x->size() != v->size())
    return text + " must have one value per dimension of input " + shape_text(*x);
  return {};
}

std::string resize_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  std::string per_dimension = x ? " one value per dimension of X " + shape_text(*x) : "";
  if (std::optional<std::vector<double>> scales = n.input_floats(2); scales && !scales->empty()) {
    for (double s : *scales) {
      if (!(s > 0) || !std::isfinite(s)) return "scales must be positive and finite";
    }
    if (x && scales->size() != x->size()) return "scales must have" + per_dimension;
  }
  if (std::optional<std::vector<int64_t>> sizes = n.input_ints(3); sizes && !sizes->empty()) {
    for (int64_t s : *sizes) {
      if (s < 0) return "sizes " + shape_text(*sizes) + " must be non-negative";
    }
    if (x && sizes->size() != x->size()) return "sizes " + shape_text(*sizes) + " must have" + per_dimension;
  }
  return {};
}

std::string slice_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> starts = n.input_ints(1), ends = n.input_ints(2),
                                      axes = n.input_ints(3), steps = n.input_ints(4);
  std::vector<size_t> lengths;
  for (const auto* list : {&starts, &ends, &axes, &steps}) {
    if (*list) lengths.push_back((*list)->size());
  }
  if (std::adjacent_find(lengths.begin(), lengths.end(), std::not_equal_to<>()) != lengths.end())
    return "starts, ends, axes and steps must be as long as each other";
  if (steps) {
    for (int64_t s : *steps) {
      if (s == 0) return "steps " + shape_text(*steps) + " must be non-zero";
    }
  }
  std::optional<std::vector<int64_t>> x = n.input_dims(0);
  if (axes && x) {
    auto rank = static_cast<int64_t>(x->size());
    std::set<int64_t> seen;
    for (int64_t a : *axes) {
      if (a < -rank || a >= rank || !seen.insert(a < 0 ? a + rank : a).second)
        return "axes " + shape_text(*axes) + " must be distinct dimensions of input " + shape_text(*x);
    }
  }
  return {};
}

std::string range_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> delta = n.input_ints(2);
  std::optional<std::vector<double>> delta_f = n.input_floats(2);
  if ((delta && delta->size() == 1 && (*delta)[0] == 0) ||
      (delta_f && delta_f->size() == 1 && (*delta_f)[0] == 0))
    return "delta 0 makes an endless range";
  return {};
}

std::string constant_of_shape_problem(const NodeFacts& n) {
  std::optional<std::vector<int64_t>> shape = n.input_ints(0);
  for (int64_t e : shape.value_or(std::vector<int64_t>{})) {
    if (e < 0) return "shape " + shape_text(*shape) + " must be non-negative";
  }
  return {};
}

// The operators whose shape-related attributes and constant inputs import checks, each with
// its check: what is wrong ("" when nothing is).
const std::map<std::string, std::string (*)(const NodeFacts&), std::less<>>& shape_checks() {
  static const std::map<std::string, std::string (*)(const NodeFacts&), std::less<>> checks = [] {
    std::map<std::string, std::string (*)(const NodeFacts&), std::less<>> m;
    for (const char* op : {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "MaxPool", "AveragePool",
                           "LpPool", "MaxUnpool"})
      m[op] = window_problem;
    for (const char* op : {"Gather", "GatherElements", "Concat", "Softmax", "LogSoftmax", "Hardmax",
                           "Flatten", "ArgMax", "ArgMin", "TopK", "LayerNormalization"})
      m[op] = axis_problem;
    m["DepthToSpace"] = m["SpaceToDepth"] = block_problem;
    m["Reshape"] = reshape_problem;
    m["Split"] = [](const NodeFacts& n) {
      std::string why = axis_problem(n);
      return why.empty() ? split_problem(n) : why;
    };
    m["Tile"] = m["Expand"] = repeat_problem;
    m["Resize"] = resize_problem;
    m["Slice"] = slice_problem;
    m["Range"] = range_problem;
    m["ConstantOfShape"] = constant_of_shape_problem;
    return m;
  }();
  return checks;
}

// What is wrong with a default-domain node's shape-related attributes and constant inputs,
// "" when nothing is (or when import does not check its operator).

const std::vector<NewerAttribute>& newer_attributes() {
  auto int_is = [](int64_t v) {
    return [v](const onnx::NodeProto&, const onnx::AttributeProto& a) {
      return a.type() == onnx::AttributeProto::INT && a.i() == v;
    };
  };
  auto all_ones = [](const onnx::NodeProto&, const onnx::AttributeProto& a) {
    return a.type() == onnx::AttributeProto::INTS &&
           std::all_of(a.ints().begin(), a.ints().end(), [](int64_t v) { return v == 1; });
  };
  // Split-18's num_outputs equal to the number of outputs, without sizes, is Split-13's equal split.
  auto equal_split = [](const onnx::NodeProto& n, const onnx::AttributeProto& a) {
    return a.type() == onnx::AttributeProto::INT && a.i() == n.output_size() &&
           (n.input_size() < 2 || n.input(1).empty());
  };
  static const std::vector<NewerAttribute> table = [&] {
    std::vector<NewerAttribute> t = {
        {"Split", "num_outputs", 18, equal_split},
        {"Resize", "antialias", 18, int_is(0)},
        {"Resize", "keep_aspect_ratio_policy", 18,
         [](const onnx::NodeProto&, const onnx::AttributeProto& a) {
           return a.type() == onnx::AttributeProto::STRING && a.s() == "stretch";
         }},
        {"LpPool", "ceil_mode", 18, int_is(0)},
        {"LpPool", "dilations", 18, all_ones},
        {"AveragePool", "dilations", 19, all_ones},
        {"Cast", "saturate", 19, int_is(1)},
    };
    for (std::string_view op : {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                                "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
      t.push_back({op, "noop_with_empty_axes", 18, int_is(0)});
    return t;
  }();
  return table;
}

}  // namespace

bool has_shape_check(std::string_view op) { return shape_checks().find(op) != shape_checks().end(); }

std::string shape_problem(const NodeFacts& n) {
  auto it = shape_checks().find(n.op);
  return it == shape_checks().end() ? std::string() : it->second(n);
}

const NewerAttribute* find_newer_attribute(std::string_view op, std::string_view name) {
  for (const NewerAttribute& a : newer_attributes()) {
    if (a.op == op && a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace tessera::graph::onnx_detail
