// Internal to graph/ (exec_plan.cc, exec_plan_generic.cc): the planner behind
// plan_graph_run() (exec_plan.h) and the layout helpers its two halves share. exec_plan.cc
// holds views, the tuned families' kernels, the arena and the driver; exec_plan_generic.cc the
// operators that run generic kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "graph/exec_plan.h"
#include "graph/op_semantics.h"
#include "graph/oracle.h"

namespace tessera::graph::plan_detail {

using kernels::StoreType;
using kernels::StridedRef;
using op_detail::Shape;
using op_detail::shape_text;

inline constexpr int64_t kArenaAlign = 256;
inline constexpr int64_t kOperandAlign = 16;  // TMA and 16-byte vector loads

inline Shape row_major(const Shape& s) {
  return op_detail::strides_of(s);
}

// An NCHW tensor stored NHWC, or a [K, C, R, S] filter stored KRSC: the same formula.
inline Shape channels_last(const Shape& s) {
  const int64_t c = s[1], h = s[2], w = s[3];
  return {h * w * c, 1, w * c, c};
}

// Whether strides a and b address the same elements of `shape` (extent-1 dimensions aside).
inline bool same_strides(const Shape& shape, const Shape& a, const Shape& b) {
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && a[d] != b[d]) return false;
  return true;
}

// The dimensions of `shape` by `strides`, outermost first: extent-1 dimensions, then the rest by
// stride, largest first.
inline std::vector<size_t> by_stride(const Shape& shape, const Shape& strides) {
  std::vector<size_t> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool unit_a = shape[a] == 1, unit_b = shape[b] == 1;
    if (unit_a != unit_b) return unit_a;
    return !unit_a && strides[a] > strides[b];
  });
  return order;
}

// The order (outermost first) in which a dense tensor of `shape` lays out its dimensions,
// or nullopt when `strides` leave gaps, repeat elements or tie.
inline std::optional<std::vector<size_t>> dense_order(const Shape& shape, const Shape& strides) {
  std::vector<size_t> order = by_stride(shape, strides);
  int64_t expect = 1;
  for (size_t k = order.size(); k-- > 0;) {
    const size_t d = order[k];
    if (shape[d] == 1) continue;
    if (strides[d] != expect) return std::nullopt;
    expect *= shape[d];
  }
  return order;
}

// The order of `strides` where they nest like a dense tensor's, gaps allowed: each non-unit
// dimension's stride is at least the span of the dimensions inside it (a channel slice of an
// NHWC tensor, for one). nullopt otherwise (broadcast, overlapping or interleaved dimensions).
inline std::optional<std::vector<size_t>> nested_order(const Shape& shape, const Shape& strides) {
  std::vector<size_t> order = by_stride(shape, strides);
  int64_t reach = 1;  // the span of the dimensions inside the current one
  for (size_t k = order.size(); k-- > 0;) {
    const size_t d = order[k];
    if (shape[d] == 1) continue;
    if (strides[d] < reach) return std::nullopt;
    reach = strides[d] * shape[d];
  }
  return order;
}

// Strides that read a tensor of shape `from` at `strides` as shape `to` (same elements, row-major
// order), without moving it: each run of dimensions of `from` that `to` splits or merges must
// step through itself densely (an inner dimension's span is the next outer one's stride).
// Nullopt where they do not (a transposed tensor flattened, say).
inline std::optional<Shape> reshaped_strides(const Shape& from, const Shape& strides, const Shape& to) {
  Shape out(to.size(), 0);
  size_t i = 0, j = 0;
  while (i < from.size() || j < to.size()) {
    // Extent-1 dimensions take any stride and match nothing.
    if (i < from.size() && from[i] == 1) {
      ++i;
      continue;
    }
    if (j < to.size() && to[j] == 1) {
      out[j++] = 1;
      continue;
    }
    if (i == from.size() || j == to.size()) return std::nullopt;
    // The smallest runs from[i, i2) and to[j, j2) of equal element count.
    size_t i2 = i + 1, j2 = j + 1;
    int64_t a = from[i], b = to[j];
    while (a != b) {
      if (a < b) {
        if (i2 == from.size()) return std::nullopt;
        a *= from[i2++];
      } else {
        if (j2 == to.size()) return std::nullopt;
        b *= to[j2++];
      }
    }
    std::optional<size_t> outer;  // the run's previous non-unit dimension
    for (size_t k = i; k < i2; ++k) {
      if (from[k] == 1) continue;
      if (outer && strides[*outer] != strides[k] * from[k]) return std::nullopt;
      outer = k;
    }
    // The run's innermost non-unit stride, stepped outwards through to[j, j2).
    int64_t stride = 1;
    for (size_t k = i2; k-- > i;)
      if (from[k] != 1) {
        stride = strides[k];
        break;
      }
    for (size_t k = j2; k-- > j;) {
      out[k] = stride;
      stride *= to[k];
    }
    i = i2;
    j = j2;
  }
  return out;
}

inline Shape strides_in_order(const Shape& shape, const std::vector<size_t>& order) {
  Shape st(shape.size(), 0);
  int64_t next = 1;
  for (size_t k = order.size(); k-- > 0;) {
    st[order[k]] = next;
    next *= shape[order[k]];
  }
  return st;
}

// Strides of `p` (over `from`) read at shape `to` (dimensions aligned right, 0 where
// broadcast).
inline Shape broadcast_view(const Shape& from, const Shape& strides, const Shape& to) {
  Shape st(to.size(), 0);
  const size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d) st[off + d] = from[d] == 1 ? 0 : strides[d];
  return st;
}

inline std::string node_label(const Node& n, NodeId id) {
  return std::string(op_type_name(n.op)) + " '" + (n.name.empty() ? "#" + std::to_string(id) : n.name) + "'";
}

inline std::string float_literal(double v) {
  if (std::isinf(v)) return v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
  return "(" + number_text(v) + "f)";
}

class Planner {
 public:
  Planner(const Graph& g, DType dtype, const kernels::FamilyRegistry& families, const PlanOptions& options)
      : g_(g), families_(families), options_(options), placed_(g.values().size()) {
    plan_.dtype = dtype;
  }

  ExecPlan run();

 private:
  struct Unsupported {
    std::string why;
  };

  StoreType type_of(ValueId v) const { return store_type(g_.value(v).type, plan_.dtype); }
  const Shape& shape_of(ValueId v) const { return g_.value(v).shape; }
  bool constant_buffer(int b) const {
    const auto k = plan_.buffers[static_cast<size_t>(b)].kind;
    return k == ExecBuffer::Kind::kConstant || k == ExecBuffer::Kind::kDerived ||
           k == ExecBuffer::Kind::kZeros;
  }

  int add_buffer(ExecBuffer::Kind kind, int64_t bytes, ValueId value) {
    ExecBuffer b;
    b.kind = kind;
    b.bytes = std::max<int64_t>(bytes, 1);
    b.value = value;
    plan_.buffers.push_back(b);
    return static_cast<int>(plan_.buffers.size()) - 1;
  }

  // Where `v` lies; inputs and constants get their buffers on first use.
  const Placement& at(ValueId v) {
    Placement& p = placed_[static_cast<size_t>(v)];
    if (p.buffer >= 0) return p;
    const Value& val = g_.value(v);
    if (val.producer != kNone && !val.constant)
      throw Unsupported{"reads '" + val.name + "', which nothing computes"};
    const auto kind = val.constant ? ExecBuffer::Kind::kConstant : ExecBuffer::Kind::kInput;
    p.type = type_of(v);
    p.buffer = add_buffer(kind, val.elements() * kernels::store_bytes(p.type), v);
    p.strides = row_major(val.shape);
    return p;
  }

  // A fresh dense placement for `shape` in the arena (or, when `derived`, a buffer of its own
  // written once before the runs).
  Placement fresh(const Shape& shape, const Shape& strides, StoreType type, bool derived) {
    Placement p;
    p.type = type;
    p.strides = strides;
    p.buffer = add_buffer(derived ? ExecBuffer::Kind::kDerived : ExecBuffer::Kind::kArena,
                          op_detail::product(shape) * kernels::store_bytes(type), kNone);
    return p;
  }

  void add_step(ExecStep s) { (s.setup ? setup_ : run_).push_back(std::move(s)); }

  // Attribute "axis" (default 0) of `n` over `rank` dimensions, negative counted from the end
  // (a UserError when out of range).
  static size_t axis_attr(const Node& n, size_t rank) {
    return static_cast<size_t>(
        op_detail::OpContext(n.op, n.attrs).axis(n.attr_int("axis", 0), static_cast<int64_t>(rank), "axis"));
  }

  // A generic kernel computing node `id`; `buffers` for in0..in3 and out (-1: none).
  void generic_step(NodeId id, const Node& n, kernels::GenericKernel k, std::vector<int> buffers) {
    ExecStep s;
    s.node = id;
    s.label = node_label(n, id) + ": " + k.label;
    s.generic = std::move(k);
    s.buffers = std::move(buffers);
    add_step(std::move(s));
  }

  // A strided copy of `src` (over `shape`) into `dst`; setup when it reads constants only.
  void copy(const Placement& src, const Shape& src_strides, const Placement& dst, const Shape& dst_strides,
            int64_t dst_offset, const Shape& shape, NodeId node, bool inserted) {
    ExecStep s;
    s.kind = ExecStep::Kind::kGeneric;
    s.node = node;
    s.copy = inserted;
    s.setup = constant_buffer(src.buffer) &&
              plan_.buffers[static_cast<size_t>(dst.buffer)].kind == ExecBuffer::Kind::kDerived;
    s.generic = kernels::strided_copy(src.type, dst.type, shape, StridedRef{src.offset, src_strides},
                                      StridedRef{dst_offset, dst_strides});
    s.label = s.generic->label;
    s.buffers = {src.buffer, -1, -1, -1, dst.buffer};
    add_step(std::move(s));
  }

  // `v` dense at `strides` and aligned for a kernel operand: as it lies, or a copy made once.
  Placement require(ValueId v, const Shape& strides, NodeId node) {
    const Placement& p = at(v);
    const Shape& shape = shape_of(v);
    if (same_strides(shape, p.strides, strides) && placement_byte_offset(p) % kOperandAlign == 0) return p;
    auto key = std::make_pair(v, strides);
    if (auto it = converted_.find(key); it != converted_.end()) return it->second;
    if (auto part = part_of_copied_whole(v, strides, node)) return *part;
    Placement out = fresh(shape, strides, p.type, constant_buffer(p.buffer));
    copy(p, p.strides, out, out.strides, 0, shape, node, true);
    converted_[key] = out;
    return out;
  }

  // `v`, a part (a Gather or Split view) of a tensor its siblings and it cover exactly, wanted
  // dense row-major: the whole tensor is copied once, row-major, and every part is then a dense
  // view of that copy (attention's query, key and value split off one projection: one launch
  // instead of three, the same bytes). Nullopt where that does not hold, or where a kernel
  // reads a sibling in place.
  std::optional<Placement> part_of_copied_whole(ValueId v, const Shape& strides, NodeId node) {
    const auto it = part_of_.find(v);
    if (it == part_of_.end() || strides != row_major(shape_of(v))) return std::nullopt;
    const auto [whole, chain] = it->second;
    if (read_in_place_.count(whole) || !covered_by_parts(whole)) return std::nullopt;
    const Placement dense = require(whole, row_major(shape_of(whole)), node);  // made once
    const Placement as_it_lies = at(whole);
    set(whole, dense);
    for (NodeId view_node : chain)  // the part again, now of the copy (its views counted once)
      if (view(view_node, g_.node(view_node))) --plan_.views;
    set(whole, as_it_lies);
    const Placement& p = at(v);
    if (!same_strides(shape_of(v), p.strides, strides) || placement_byte_offset(p) % kOperandAlign != 0) return std::nullopt;
    return p;
  }

  // Whether every reader of `whole` takes a part of it as a view (Gathers of distinct constant
  // indices along one axis, or one Split), and the parts cover it with nothing left over.
  bool covered_by_parts(ValueId whole) {
    if (consumers_.empty()) consumers_ = g_.consumers();
    const std::vector<NodeId>& readers = consumers_[static_cast<size_t>(whole)];
    if (readers.empty() || is_graph_output(whole)) return false;
    const Shape& shape = shape_of(whole);
    if (readers.size() == 1 && g_.node(readers[0]).op == OpType::kSplit) return true;
    std::set<int64_t> indices;
    std::optional<size_t> axis;
    for (NodeId r : readers) {
      const Node& n = g_.node(r);
      if (n.op != OpType::kGather || n.inputs[0] != whole) return false;
      const Value& index = g_.value(n.inputs[1]);
      if (!index.constant || !index.shape.empty()) return false;
      const size_t a = axis_attr(n, shape.size());
      if (axis && *axis != a) return false;
      axis = a;
      int64_t k = index.constant->i.at(0);
      if (k < 0) k += shape[a];
      indices.insert(k);
    }
    return axis && static_cast<int64_t>(indices.size()) == shape[*axis] && indices.size() == readers.size() &&
           *indices.begin() == 0 && *indices.rbegin() == shape[*axis] - 1;
  }

  bool is_graph_output(ValueId v) const {
    const auto& outs = g_.outputs();
    return std::find(outs.begin(), outs.end(), v) != outs.end();
  }

  // `v` broadcast to `shape` and dense row-major (a copy unless it already is).
  Placement require_as(ValueId v, const Shape& shape, NodeId node) {
    if (shape_of(v) == shape) return require(v, row_major(shape), node);
    const Placement& p = at(v);
    Placement out = fresh(shape, row_major(shape), p.type, constant_buffer(p.buffer));
    copy(p, broadcast_view(shape_of(v), p.strides, shape), out, out.strides, 0, shape, node, true);
    return out;
  }

  void set(ValueId v, Placement p) { placed_[static_cast<size_t>(v)] = std::move(p); }

  // A fresh output of node `id` in the arena, dense at `strides`.
  Placement output(ValueId v, const Shape& strides) {
    Placement p = fresh(shape_of(v), strides, type_of(v), false);
    set(v, p);
    return p;
  }

  // The strides an output of `shape` takes after the layout of `like` (NHWC stays NHWC, and so
  // does a channel slice of an NHWC tensor: a part of merged convolutions' output), row-major
  // when `like`'s strides do not nest.
  Shape layout_like(ValueId like, const Shape& shape) {
    const Placement& p = at(like);
    if (shape_of(like).size() == shape.size())
      if (auto order = nested_order(shape_of(like), p.strides)) return strides_in_order(shape, *order);
    return row_major(shape);
  }

  void node(NodeId id);
  bool view(NodeId id, const Node& n);
  bool tuned(NodeId id, const Node& n);
  void kernel_step(NodeId id, const Node& n, const Workload& w, std::vector<Placement> tensors,
                   kernels::OperandLayouts layouts = {});
  std::optional<kernels::OperandStrides> strided_operand(const Placement& p, const Shape& want, bool batched);
  std::optional<Shape> transposed_order(ValueId v);
  Placement operand(ValueId v, bool swap, const Shape& want, NodeId id);
  void matmul(NodeId id, const Node& n, const Workload& w, bool swap_a = false, bool swap_b = false);
  void conv(NodeId id, const Node& n, const Workload& w);
  void rows(NodeId id, const Node& n, const Workload& w);
  bool elementwise_kernel(NodeId id, const Node& n, const Workload& w);
  void generic(NodeId id, const Node& n);
  struct Operand {
    Placement place;
    Shape strides;  // over the output's index space
  };
  void map(NodeId id, const Node& n, const std::string& expression, const std::vector<ValueId>& inputs);
  void emit_map(NodeId id, const Node& n, const std::string& expression, const std::vector<Operand>& ops,
                const Shape& y, const Placement& out);
  Placement made_constant(Tensor t);
  void batch_norm(NodeId id, const Node& n);
  void pad(NodeId id, const Node& n);
  void long_chain(NodeId id, const Node& n);
  void concat(NodeId id, const Node& n);
  void gather(NodeId id, const Node& n);
  void gather_nd(NodeId id, const Node& n);
  void gather_elements(NodeId id, const Node& n);
  void gather_step(NodeId id, const Node& n, const StridedRef& data, const StridedRef& indices, size_t axis);
  void cumsum(NodeId id, const Node& n);
  void pool(NodeId id, const Node& n);
  void reduce(NodeId id, const Node& n, kernels::ReduceOp op);
  void assign_arena();

  op_detail::Infer infer(const Node& n, std::vector<InputInfo>& infos) const {
    infos.clear();
    for (ValueId v : n.inputs) {
      InputInfo info;
      if (v == kNone) {
        info.present = false;
      } else {
        info.type = g_.value(v).type;
        info.shape = g_.value(v).shape;
        info.constant = g_.value(v).constant.get();
      }
      infos.push_back(std::move(info));
    }
    return op_detail::Infer(n.op, n.attrs, infos, static_cast<int>(n.outputs.size()));
  }

  const Graph& g_;
  const kernels::FamilyRegistry& families_;
  const PlanOptions options_;
  ExecPlan plan_;
  std::vector<Placement> placed_;
  std::vector<ExecStep> setup_, run_;
  std::map<std::pair<ValueId, Shape>, Placement> converted_;
  // A Gather's or Split's view output (or a reshape of one): the tensor it is a part of, and
  // the view nodes that took it from there, in order.
  std::map<ValueId, std::pair<ValueId, std::vector<NodeId>>> part_of_;
  // Tensors some of whose parts a kernel reads in place (strided): a part wanted dense is then
  // copied alone, not the whole.
  std::set<ValueId> read_in_place_;
  std::vector<std::vector<NodeId>> consumers_;  // the graph's, once asked for
};

}  // namespace tessera::graph::plan_detail
