#include "graph/exec_plan.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "core/error.h"
#include "graph/op_semantics.h"
#include "graph/oracle.h"

namespace tessera::graph {

using kernels::StoreType;
using kernels::StridedRef;
using op_detail::Shape;
using op_detail::shape_text;

kernels::StoreType store_type(ElemType t, DType dtype) {
  switch (t) {
    case ElemType::kF32:
    case ElemType::kF16:
    case ElemType::kBF16:
    case ElemType::kF64:
      return dtype == DType::kF32 ? StoreType::kF32 : dtype == DType::kBF16 ? StoreType::kBF16 : StoreType::kF16;
    case ElemType::kBool: return StoreType::kU8;
    default: return StoreType::kI64;
  }
}

int64_t placement_byte_offset(const Placement& p) { return p.offset * kernels::store_bytes(p.type); }

namespace {

constexpr int64_t kArenaAlign = 256;
constexpr int64_t kOperandAlign = 16;  // TMA and 16-byte vector loads

Shape row_major(const Shape& s) { return op_detail::strides_of(s); }

// An NCHW tensor stored NHWC, or a [K, C, R, S] filter stored KRSC: the same formula.
Shape channels_last(const Shape& s) {
  const int64_t c = s[1], h = s[2], w = s[3];
  return {h * w * c, 1, w * c, c};
}

// Whether strides a and b address the same elements of `shape` (extent-1 dimensions aside).
bool same_strides(const Shape& shape, const Shape& a, const Shape& b) {
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1 && a[d] != b[d]) return false;
  return true;
}

// The order (outermost first) in which a dense tensor of `shape` lays out its dimensions,
// or nullopt when `strides` leave gaps, repeat elements or tie.
std::optional<std::vector<size_t>> dense_order(const Shape& shape, const Shape& strides) {
  std::vector<size_t> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const bool unit_a = shape[a] == 1, unit_b = shape[b] == 1;
    if (unit_a != unit_b) return unit_a;  // extent-1 dimensions outermost
    return !unit_a && strides[a] > strides[b];
  });
  int64_t expect = 1;
  for (size_t k = order.size(); k-- > 0;) {
    const size_t d = order[k];
    if (shape[d] == 1) continue;
    if (strides[d] != expect) return std::nullopt;
    expect *= shape[d];
  }
  return order;
}

Shape strides_in_order(const Shape& shape, const std::vector<size_t>& order) {
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
Shape broadcast_view(const Shape& from, const Shape& strides, const Shape& to) {
  Shape st(to.size(), 0);
  const size_t off = to.size() - from.size();
  for (size_t d = 0; d < from.size(); ++d) st[off + d] = from[d] == 1 ? 0 : strides[d];
  return st;
}

std::string node_label(const Node& n, NodeId id) {
  return std::string(op_type_name(n.op)) + " '" + (n.name.empty() ? "#" + std::to_string(id) : n.name) + "'";
}

std::string float_literal(double v) {
  if (std::isinf(v)) return v > 0 ? "__int_as_float(0x7f800000)" : "__int_as_float(0xff800000)";
  return "(" + number_text(v) + "f)";
}

class Planner {
 public:
  Planner(const Graph& g, DType dtype, const kernels::FamilyRegistry& families)
      : g_(g), families_(families), placed_(g.values().size()) {
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
    return k == ExecBuffer::Kind::kConstant || k == ExecBuffer::Kind::kDerived || k == ExecBuffer::Kind::kZeros;
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
    if (val.producer != kNone && !val.constant) throw Unsupported{"reads '" + val.name + "', which nothing computes"};
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

  // A strided copy of `src` (over `shape`) into `dst`; setup when it reads constants only.
  void copy(const Placement& src, const Shape& src_strides, const Placement& dst, const Shape& dst_strides,
            int64_t dst_offset, const Shape& shape, NodeId node, bool inserted) {
    ExecStep s;
    s.kind = ExecStep::Kind::kGeneric;
    s.node = node;
    s.copy = inserted;
    s.setup = constant_buffer(src.buffer) && plan_.buffers[static_cast<size_t>(dst.buffer)].kind ==
                                                 ExecBuffer::Kind::kDerived;
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
    Placement out = fresh(shape, strides, p.type, constant_buffer(p.buffer));
    copy(p, p.strides, out, out.strides, 0, shape, node, true);
    converted_[key] = out;
    return out;
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

  // The strides an output of `shape` takes after the layout of `like` (NHWC stays NHWC),
  // row-major when `like` is not dense.
  Shape layout_like(ValueId like, const Shape& shape) {
    const Placement& p = at(like);
    if (shape_of(like).size() == shape.size())
      if (auto order = dense_order(shape_of(like), p.strides)) return strides_in_order(shape, *order);
    return row_major(shape);
  }

  void node(NodeId id);
  bool view(NodeId id, const Node& n);
  bool tuned(NodeId id, const Node& n);
  void kernel_step(NodeId id, const Node& n, const Workload& w, std::vector<Placement> tensors);
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
  ExecPlan plan_;
  std::vector<Placement> placed_;
  std::vector<ExecStep> setup_, run_;
  std::map<std::pair<ValueId, Shape>, Placement> converted_;
};


// ---------------------------------------------------------------------------------------
// Operators

void Planner::node(NodeId id) {
  const Node& n = g_.node(id);
  if (g_.inputs_constant(n) && n.op != OpType::kOpaque)
    throw Unsupported{"computes from constants only (run fold_constants first)"};
  if (view(id, n) || tuned(id, n)) return;
  generic(id, n);
}

// Operators that only re-index their input: no step.
bool Planner::view(NodeId id, const Node& n) {
  (void)id;
  std::vector<InputInfo> infos;
  switch (n.op) {
    case OpType::kReshape:
    case OpType::kFlatten:
    case OpType::kSqueeze:
    case OpType::kUnsqueeze:
    case OpType::kIdentity:
    case OpType::kDropout: {
      if (n.outputs.size() > 1 && n.outputs[1] != kNone && !g_.consumers()[static_cast<size_t>(n.outputs[1])].empty())
        throw Unsupported{"its mask output is used"};
      Placement p = require(n.inputs[0], row_major(shape_of(n.inputs[0])), id);
      p.strides = row_major(shape_of(n.outputs[0]));
      set(n.outputs[0], p);
      break;
    }
    case OpType::kTranspose: {
      auto c = infer(n, infos);
      std::vector<int64_t> perm = op_detail::transpose_perm(c);
      Placement p = at(n.inputs[0]);
      Shape st;
      for (int64_t d : perm) st.push_back(p.strides[static_cast<size_t>(d)]);
      p.strides = st;
      set(n.outputs[0], p);
      break;
    }
    case OpType::kExpand: {
      Placement p = at(n.inputs[0]);
      p.strides = broadcast_view(shape_of(n.inputs[0]), p.strides, shape_of(n.outputs[0]));
      set(n.outputs[0], p);
      break;
    }
    case OpType::kSplit: {
      auto c = infer(n, infos);
      int64_t axis = 0;
      std::vector<int64_t> sizes = op_detail::split_sizes(c, &axis);
      const Placement p = at(n.inputs[0]);
      int64_t start = 0;
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        Placement part = p;
        part.offset += start * p.strides[static_cast<size_t>(axis)];
        start += sizes[k];
        if (n.outputs[k] != kNone) set(n.outputs[k], part);
      }
      break;
    }
    case OpType::kSlice: {
      for (size_t k = 1; k < n.inputs.size(); ++k)
        if (n.inputs[k] != kNone && !g_.value(n.inputs[k]).constant) return false;
      auto c = infer(n, infos);
      std::vector<op_detail::SliceDim> dims = op_detail::slice_dims(c);
      Placement p = at(n.inputs[0]);
      for (size_t d = 0; d < dims.size(); ++d) {
        p.offset += dims[d].start * p.strides[d];
        p.strides[d] *= dims[d].step;
      }
      set(n.outputs[0], p);
      break;
    }
    case OpType::kGather: {
      const Value& index = g_.value(n.inputs[1]);
      if (!index.constant || !index.shape.empty()) return false;
      const Shape& x = shape_of(n.inputs[0]);
      auto c = infer(n, infos);
      const size_t axis = static_cast<size_t>(c.axis(n.attr_int("axis", 0), static_cast<int64_t>(x.size()), "axis"));
      int64_t k = index.constant->i.at(0);
      if (k < -x[axis] || k >= x[axis]) return false;  // the generic gather reports it
      if (k < 0) k += x[axis];
      Placement p = at(n.inputs[0]);
      p.offset += k * p.strides[axis];
      p.strides.erase(p.strides.begin() + static_cast<std::ptrdiff_t>(axis));
      set(n.outputs[0], p);
      break;
    }
    default: return false;
  }
  ++plan_.views;
  return true;
}

// Operators that map to a workload some family runs.
bool Planner::tuned(NodeId id, const Node& n) {
  std::optional<Workload> w = node_workload(g_, n, plan_.dtype);
  if (!w) return false;
  if (families_.for_workload(*w).empty()) {
    // A transposed operand no family reads as it lies is copied untransposed.
    if (w->kind != OpKind::kMatmul && w->kind != OpKind::kBatchMatmul) return false;
    MatmulShape& m = std::get<MatmulShape>(w->shape);
    const bool ta = m.trans_a, tb = m.trans_b;
    m.trans_a = m.trans_b = false;
    if (!(ta || tb) || families_.for_workload(*w).empty()) return false;
    matmul(id, n, *w, ta, tb);
    return true;
  }
  switch (w->kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: matmul(id, n, *w); return true;
    case OpKind::kConv2d: conv(id, n, *w); return true;
    case OpKind::kSoftmax:
    case OpKind::kLayernorm:
    case OpKind::kReduce: rows(id, n, *w); return true;
    case OpKind::kElementwise: return elementwise_kernel(id, n, *w);
  }
  return false;
}

void Planner::kernel_step(NodeId id, const Node& n, const Workload& w, std::vector<Placement> tensors) {
  ExecStep s;
  s.kind = ExecStep::Kind::kKernel;
  s.node = id;
  s.label = node_label(n, id) + " as " + w.key();
  s.workload = w;
  s.tensors = std::move(tensors);
  add_step(std::move(s));
}

// A matmul operand as the kernel reads it: dense row-major at `want` (its batch dims
// broadcast to the output's), with its last two dimensions swapped first when `swap` (the
// workload runs without the operator's transpose flag).
Placement Planner::operand(ValueId v, bool swap, const Shape& want, NodeId id) {
  if (!swap) return want == shape_of(v) ? require(v, row_major(want), id) : require_as(v, want, id);
  Placement p = at(v);
  Shape s = shape_of(v);
  const size_t r = s.size();
  std::swap(s[r - 1], s[r - 2]);
  std::swap(p.strides[r - 1], p.strides[r - 2]);
  Placement out = fresh(want, row_major(want), p.type, constant_buffer(p.buffer));
  copy(p, broadcast_view(s, p.strides, want), out, out.strides, 0, want, id, true);
  return out;
}

void Planner::matmul(NodeId id, const Node& n, const Workload& w, bool swap_a, bool swap_b) {
  if (n.op == OpType::kGemm) {
    if (n.attr_float("alpha", 1.0) != 1.0 || n.attr_float("beta", 1.0) != 1.0)
      throw Unsupported{"Gemm with alpha or beta other than 1"};
    if (n.inputs.size() > 2 && n.inputs[2] != kNone && shape_of(n.inputs[2]).size() != 1)
      throw Unsupported{"Gemm's C is not a bias vector"};
  }
  const MatmulShape& m = w.matmul();
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<Placement> t;
  for (int k = 0; k < 2; ++k) {
    const ValueId v = n.inputs[static_cast<size_t>(k)];
    const bool swap = k == 0 ? swap_a : swap_b;
    Shape s = shape_of(v);
    if (swap) std::swap(s[s.size() - 1], s[s.size() - 2]);
    // A plain matmul flattens A's batch dims into m (B's are all 1); a batched operand takes
    // the output's batch dims (broadcast where it has fewer or extent 1).
    Shape want = s;
    if (w.kind == OpKind::kBatchMatmul) {
      want.assign(y.begin(), y.end() - 2);
      want.push_back(s[s.size() - 2]);
      want.push_back(s.back());
    }
    t.push_back(operand(v, swap, want, id));
  }
  size_t next = 2;
  for (EpilogueOp op : w.epilogue) {
    if (op == EpilogueOp::kBias) t.push_back(require_as(n.inputs.at(next++), {m.n}, id));
    if (op == EpilogueOp::kResidual) t.push_back(require_as(n.inputs.at(next++), y, id));
  }
  t.push_back(output(n.outputs[0], row_major(y)));
  kernel_step(id, n, w, std::move(t));
}

void Planner::conv(NodeId id, const Node& n, const Workload& w) {
  auto pads = n.attr_ints("pads", {0, 0, 0, 0});
  if (pads.size() == 4 && (pads[0] != pads[2] || pads[1] != pads[3]))
    throw Unsupported{"asymmetric padding " + shape_text(pads)};
  if (n.attr_string("auto_pad", "NOTSET") != "NOTSET") throw Unsupported{"auto_pad"};
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<Placement> t;
  t.push_back(require(n.inputs[0], channels_last(shape_of(n.inputs[0])), id));
  t.push_back(require(n.inputs[1], channels_last(shape_of(n.inputs[1])), id));
  size_t next = 2;
  for (EpilogueOp op : w.epilogue) {
    if (op == EpilogueOp::kBias) t.push_back(require_as(n.inputs.at(next++), {w.conv2d().k}, id));
    if (op == EpilogueOp::kResidual) t.push_back(require(n.inputs.at(next++), channels_last(y), id));
  }
  t.push_back(output(n.outputs[0], channels_last(y)));
  kernel_step(id, n, w, std::move(t));
}

void Planner::rows(NodeId id, const Node& n, const Workload& w) {
  std::vector<Placement> t;
  t.push_back(require(n.inputs[0], row_major(shape_of(n.inputs[0])), id));
  if (w.kind == OpKind::kLayernorm) {
    const int64_t cols = w.rows().cols;
    for (size_t k = 1; k <= 2; ++k) {
      if (k < n.inputs.size() && n.inputs[k] != kNone) {
        t.push_back(require_as(n.inputs[k], {cols}, id));
      } else {
        Placement z;
        z.type = type_of(n.inputs[0]);
        z.strides = {1};
        z.buffer = add_buffer(ExecBuffer::Kind::kZeros, cols * kernels::store_bytes(z.type), kNone);
        t.push_back(z);
      }
    }
    if (n.outputs.size() > 1)
      for (size_t k = 1; k < n.outputs.size(); ++k)
        if (n.outputs[k] != kNone && !g_.consumers()[static_cast<size_t>(n.outputs[k])].empty())
          throw Unsupported{"its mean or inverse deviation output is used"};
  }
  t.push_back(output(n.outputs[0], row_major(shape_of(n.outputs[0]))));
  kernel_step(id, n, w, std::move(t));
}

// An elementwise kernel reads every operand at the output's shape in one layout; broadcast
// operands go to the generic map instead.
bool Planner::elementwise_kernel(NodeId id, const Node& n, const Workload& w) {
  const Shape& y = shape_of(n.outputs[0]);
  for (ValueId v : n.inputs)
    if (v == kNone || shape_of(v) != y) return false;
  Shape strides = row_major(y);
  for (ValueId v : n.inputs)
    if (auto order = dense_order(y, at(v).strides)) {
      strides = strides_in_order(y, *order);
      break;
    }
  std::vector<Placement> t;
  for (ValueId v : n.inputs) t.push_back(require(v, strides, id));
  t.push_back(output(n.outputs[0], strides));
  kernel_step(id, n, w, std::move(t));
  return true;
}

// The expression of an elementwise operator over a, b, c, d (inputs in order), or nullopt.
std::optional<std::string> expression_of(const Node& n, bool int_out) {
  auto f = [&](const char* attr, double fallback) { return float_literal(n.attr_float(attr, fallback)); };
  switch (n.op) {
    case OpType::kAdd: return "a + b";
    case OpType::kSub: return "a - b";
    case OpType::kMul: return "a * b";
    case OpType::kDiv: return int_out ? "truncf(a / b)" : "a / b";
    case OpType::kPow: return "powf(a, b)";
    case OpType::kSqrt: return "sqrtf(a)";
    case OpType::kExp: return "expf(a)";
    case OpType::kLog: return "logf(a)";
    case OpType::kNeg: return "-a";
    case OpType::kAbs: return "fabsf(a)";
    case OpType::kRelu: return "fmaxf(a, 0.f)";
    case OpType::kSigmoid: return "1.f / (1.f + expf(-a))";
    case OpType::kTanh: return "tanhf(a)";
    case OpType::kErf: return "erff(a)";
    case OpType::kReciprocal: return "1.f / a";
    case OpType::kFloor: return "floorf(a)";
    case OpType::kCeil: return "ceilf(a)";
    case OpType::kGelu:
      return n.attr_string("approximate", "none") == "tanh"
                 ? "0.5f * a * (1.f + tanhf(0.7978845608f * (a + 0.044715f * a * a * a)))"
                 : "0.5f * a * (1.f + erff(a * 0.70710678118654752f))";
    case OpType::kHardSigmoid: return "fmaxf(0.f, fminf(1.f, " + f("alpha", 0.2) + " * a + " + f("beta", 0.5) + "))";
    case OpType::kHardSwish: return "a * fmaxf(0.f, fminf(1.f, a / 6.f + 0.5f))";
    case OpType::kEqual: return "(float)(a == b)";
    case OpType::kLess: return "(float)(a < b)";
    case OpType::kGreater: return "(float)(a > b)";
    case OpType::kLessOrEqual: return "(float)(a <= b)";
    case OpType::kGreaterOrEqual: return "(float)(a >= b)";
    case OpType::kAnd: return "(float)(a != 0.f && b != 0.f)";
    case OpType::kOr: return "(float)(a != 0.f || b != 0.f)";
    case OpType::kXor: return "(float)((a != 0.f) != (b != 0.f))";
    case OpType::kNot: return "(float)(a == 0.f)";
    case OpType::kIsNaN: return "(float)isnan(a)";
    case OpType::kWhere: return "a != 0.f ? b : c";
    default: return std::nullopt;
  }
}

// Chain steps as one expression over a (the running value) and b, c, d (the binary steps'
// operands in turn); nullopt past four inputs.
std::optional<std::string> steps_expression(const std::vector<EltwiseOp>& steps) {
  std::string v = "a";
  char next = 'b';
  for (EltwiseOp op : steps) {
    if (eltwise_is_binary(op)) {
      if (next > 'd') return std::nullopt;
      const std::string x(1, next++);
      switch (op) {
        case EltwiseOp::kAdd: v = "(" + v + " + " + x + ")"; break;
        case EltwiseOp::kSub: v = "(" + v + " - " + x + ")"; break;
        case EltwiseOp::kMul: v = "(" + v + " * " + x + ")"; break;
        case EltwiseOp::kDiv: v = "(" + v + " / " + x + ")"; break;
        case EltwiseOp::kMax: v = "fmaxf(" + v + ", " + x + ")"; break;
        case EltwiseOp::kMin: v = "fminf(" + v + ", " + x + ")"; break;
        default: return std::nullopt;
      }
      continue;
    }
    switch (op) {
      case EltwiseOp::kRelu: v = "fmaxf(" + v + ", 0.f)"; break;
      case EltwiseOp::kGelu: v = "(0.5f * " + v + " * (1.f + erff(" + v + " * 0.70710678118654752f)))"; break;
      case EltwiseOp::kSigmoid: v = "(1.f / (1.f + expf(-" + v + ")))"; break;
      case EltwiseOp::kTanh: v = "tanhf(" + v + ")"; break;
      case EltwiseOp::kExp: v = "expf(" + v + ")"; break;
      case EltwiseOp::kNeg: v = "(-" + v + ")"; break;
      case EltwiseOp::kAbs: v = "fabsf(" + v + ")"; break;
      default: return std::nullopt;
    }
  }
  return v;
}

void Planner::generic(NodeId id, const Node& n) {
  const bool int_out = !n.outputs.empty() && !is_float(g_.value(n.outputs[0]).type);
  switch (n.op) {
    case OpType::kConcat: concat(id, n); return;
    case OpType::kGather: gather(id, n); return;
    case OpType::kGatherND: gather_nd(id, n); return;
    case OpType::kGatherElements: gather_elements(id, n); return;
    case OpType::kCumSum: cumsum(id, n); return;
    case OpType::kMaxPool:
    case OpType::kAveragePool:
    case OpType::kGlobalAveragePool: pool(id, n); return;
    case OpType::kReduceMean: reduce(id, n, kernels::ReduceOp::kMean); return;
    case OpType::kReduceSum: reduce(id, n, kernels::ReduceOp::kSum); return;
    case OpType::kReduceMax: reduce(id, n, kernels::ReduceOp::kMax); return;
    case OpType::kReduceMin: reduce(id, n, kernels::ReduceOp::kMin); return;
    case OpType::kReduceProd: reduce(id, n, kernels::ReduceOp::kProd); return;
    case OpType::kCast: {
      const Placement& p = at(n.inputs[0]);
      const Shape& y = shape_of(n.outputs[0]);
      Placement out = output(n.outputs[0], layout_like(n.inputs[0], y));
      copy(p, p.strides, out, out.strides, 0, y, id, false);
      return;
    }
    case OpType::kEltwiseChain:
      if (n.inputs.size() > 4) return long_chain(id, n);
      if (auto e = steps_expression(op_detail::chain_steps(op_detail::OpContext(n.op, n.attrs))))
        return map(id, n, *e, n.inputs);
      throw Unsupported{"an elementwise chain step no map expresses"};
    case OpType::kBatchNormalization: batch_norm(id, n); return;
    case OpType::kPad: pad(id, n); return;
    case OpType::kMax:
    case OpType::kMin: {
      std::string e = "a";
      const char* f = n.op == OpType::kMax ? "fmaxf(" : "fminf(";
      if (n.inputs.size() > 4) throw Unsupported{"more than four inputs"};
      for (size_t k = 1; k < n.inputs.size(); ++k) e = f + e + ", " + std::string(1, static_cast<char>('a' + k)) + ")";
      return map(id, n, e, n.inputs);
    }
    case OpType::kClip: {
      std::string e = "a";
      std::vector<ValueId> in{n.inputs[0]};
      for (size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
        if (n.inputs[k] == kNone) continue;
        const std::string x(1, static_cast<char>('a' + in.size()));
        e = (k == 1 ? "fmaxf(" : "fminf(") + e + ", " + x + ")";
        in.push_back(n.inputs[k]);
      }
      return map(id, n, e, in);
    }
    default: break;
  }
  if (auto e = expression_of(n, int_out)) return map(id, n, *e, n.inputs);
  throw Unsupported{"no GPU kernel runs it yet"};
}

void Planner::map(NodeId id, const Node& n, const std::string& expression, const std::vector<ValueId>& inputs) {
  if (inputs.empty() || inputs.size() > static_cast<size_t>(kernels::kGenericMaxInputs))
    throw Unsupported{"an elementwise operator of " + std::to_string(inputs.size()) + " inputs"};
  const Shape& y = shape_of(n.outputs[0]);
  Shape strides = row_major(y);
  for (ValueId v : inputs)
    if (shape_of(v) == y) {
      strides = layout_like(v, y);
      break;
    }
  std::vector<Operand> ops;
  for (ValueId v : inputs) ops.push_back({at(v), broadcast_view(shape_of(v), at(v).strides, y)});
  emit_map(id, n, expression, ops, y, output(n.outputs[0], strides));
}

// out = expression over `ops` (each a placement and its strides over y's index space).
void Planner::emit_map(NodeId id, const Node& n, const std::string& expression, const std::vector<Operand>& ops,
                       const Shape& y, const Placement& out) {
  if (y.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank above 8"};
  std::vector<StoreType> types;
  std::vector<StridedRef> refs;
  std::vector<int> buffers;
  for (const Operand& o : ops) {
    types.push_back(o.place.type);
    refs.push_back({o.place.offset, o.strides});
    buffers.push_back(o.place.buffer);
  }
  ExecStep s;
  s.node = id;
  s.generic = kernels::map(expression, types, out.type, y, refs, StridedRef{0, out.strides});
  s.label = node_label(n, id) + ": " + s.generic->label;
  buffers.resize(4, -1);
  buffers.push_back(out.buffer);
  s.buffers = buffers;
  add_step(std::move(s));
}

// A constant the plan makes (a batch norm's folded scale), uploaded once.
Placement Planner::made_constant(Tensor t) {
  Placement p;
  p.type = store_type(t.type, plan_.dtype);
  p.strides = row_major(t.shape);
  p.buffer = add_buffer(ExecBuffer::Kind::kConstant, t.elements() * kernels::store_bytes(p.type), kNone);
  plan_.buffers[static_cast<size_t>(p.buffer)].data = std::make_shared<const Tensor>(std::move(t));
  return p;
}

// Inference BatchNormalization with constant statistics: y = a x + b per channel, with
// a = scale / sqrt(var + epsilon) and b = B - mean a folded here.
void Planner::batch_norm(NodeId id, const Node& n) {
  for (size_t k = 1; k < 5; ++k)
    if (k >= n.inputs.size() || n.inputs[k] == kNone || !g_.value(n.inputs[k]).constant)
      throw Unsupported{"statistics computed at run time"};
  if (n.outputs.size() > 1)
    for (size_t k = 1; k < n.outputs.size(); ++k)
      if (n.outputs[k] != kNone) throw Unsupported{"training outputs"};
  const Shape& x = shape_of(n.inputs[0]);
  if (x.size() < 2) throw Unsupported{"an input without channels"};
  const int64_t c = x[1];
  const double eps = n.attr_float("epsilon", 1e-5);
  auto vals = [&](size_t k) { return g_.value(n.inputs[k]).constant.get(); };
  std::vector<float> a(static_cast<size_t>(c)), b(static_cast<size_t>(c));
  for (int64_t ch = 0; ch < c; ++ch) {
    const double scale = vals(1)->at(ch) / std::sqrt(vals(4)->at(ch) + eps);
    a[static_cast<size_t>(ch)] = static_cast<float>(scale);
    b[static_cast<size_t>(ch)] = static_cast<float>(vals(2)->at(ch) - vals(3)->at(ch) * scale);
  }
  Shape channel(x.size(), 0);
  channel[1] = 1;
  const Placement& in = at(n.inputs[0]);
  std::vector<Operand> ops = {{in, in.strides},
                              {made_constant(Tensor::floats({c}, a)), channel},
                              {made_constant(Tensor::floats({c}, b)), channel}};
  emit_map(id, n, "a * b + c", ops, x, output(n.outputs[0], layout_like(n.inputs[0], x)));
}

// Constant-mode Pad with non-negative pads: the output filled with the pad value, then the
// input copied into its interior.
void Planner::pad(NodeId id, const Node& n) {
  if (n.attr_string("mode", "constant") != "constant") throw Unsupported{"Pad mode " + n.attr_string("mode", "")};
  if (n.inputs.size() < 2 || !g_.value(n.inputs[1]).constant) throw Unsupported{"pads computed at run time"};
  if (n.inputs.size() > 3 && n.inputs[3] != kNone) throw Unsupported{"Pad's axes input"};
  const std::vector<int64_t>& pads = g_.value(n.inputs[1]).constant->i;
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& y = shape_of(n.outputs[0]);
  if (pads.size() != 2 * x.size()) throw Unsupported{"pads of another rank"};
  for (int64_t v : pads)
    if (v < 0) throw Unsupported{"negative pads (cropping)"};
  double fill = 0;
  if (n.inputs.size() > 2 && n.inputs[2] != kNone) {
    const Value& v = g_.value(n.inputs[2]);
    if (!v.constant || v.constant->elements() != 1) throw Unsupported{"a pad value computed at run time"};
    fill = v.constant->at(0);
  }
  const Placement& in = at(n.inputs[0]);
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], y));
  Tensor value = is_float(g_.value(n.inputs[0]).type) ? Tensor::floats({}, {static_cast<float>(fill)})
                                                      : Tensor::ints({}, {static_cast<int64_t>(fill)});
  copy(made_constant(std::move(value)), Shape(y.size(), 0), out, out.strides, 0, y, id, false);
  int64_t interior = 0;
  for (size_t d = 0; d < x.size(); ++d) interior += pads[d] * out.strides[d];
  copy(in, in.strides, out, out.strides, interior, x, id, false);
}

// An elementwise chain of more inputs than a map reads: maps of up to four inputs in turn,
// each continuing from the previous one's result.
void Planner::long_chain(NodeId id, const Node& n) {
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<EltwiseOp> steps = op_detail::chain_steps(op_detail::OpContext(n.op, n.attrs));
  Shape strides = layout_like(n.inputs[0], y);
  Operand current{at(n.inputs[0]), broadcast_view(shape_of(n.inputs[0]), at(n.inputs[0]).strides, y)};
  size_t next = 1, step = 0;
  while (step < steps.size()) {
    std::vector<Operand> ops = {current};
    std::vector<EltwiseOp> part;
    while (step < steps.size() && (!eltwise_is_binary(steps[step]) || ops.size() < 4)) {
      if (eltwise_is_binary(steps[step])) {
        const ValueId v = n.inputs.at(next++);
        ops.push_back({at(v), broadcast_view(shape_of(v), at(v).strides, y)});
      }
      part.push_back(steps[step++]);
    }
    const std::string expr = *steps_expression(part);
    Placement out = step == steps.size() ? output(n.outputs[0], strides) : fresh(y, strides, type_of(n.outputs[0]), false);
    emit_map(id, n, expr, ops, y, out);
    current = {out, out.strides};
  }
}

void Planner::concat(NodeId id, const Node& n) {
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  const size_t axis = static_cast<size_t>(c.axis(n.attr_int("axis", 0), static_cast<int64_t>(y.size()), "axis"));
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], y));
  int64_t start = 0;
  for (ValueId v : n.inputs) {
    const Placement& p = at(v);
    const Shape& s = shape_of(v);
    if (op_detail::product(s) > 0) copy(p, p.strides, out, out.strides, start * out.strides[axis], s, id, false);
    start += s[axis];
  }
}

void Planner::gather(NodeId id, const Node& n) {
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& ind = shape_of(n.inputs[1]);
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  const size_t axis = static_cast<size_t>(c.axis(n.attr_int("axis", 0), static_cast<int64_t>(x.size()), "axis"));
  if (y.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank above 8"};
  const Placement& p = at(n.inputs[0]);
  const Placement& q = at(n.inputs[1]);
  StridedRef data{p.offset, Shape(y.size(), 0)}, indices{q.offset, Shape(y.size(), 0)};
  for (size_t d = 0; d < axis; ++d) data.strides[d] = p.strides[d];
  for (size_t d = 0; d < ind.size(); ++d) indices.strides[axis + d] = q.strides[d];
  for (size_t d = axis + 1; d < x.size(); ++d) data.strides[d - 1 + ind.size()] = p.strides[d];
  Placement out = output(n.outputs[0], row_major(y));
  ExecStep s;
  s.node = id;
  s.generic = kernels::gather(p.type, y, data, indices, p.strides[axis], x[axis], StridedRef{0, out.strides});
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, q.buffer, -1, -1, out.buffer};
  add_step(std::move(s));
}

// ONNX GatherND: each output row reads q index components (the indices' last dimension) that
// pick one of data's slices; batch_dims leading dimensions are shared by data and indices.
void Planner::gather_nd(NodeId id, const Node& n) {
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& ind = shape_of(n.inputs[1]);
  const Shape& y = shape_of(n.outputs[0]);
  const size_t batch = static_cast<size_t>(n.attr_int("batch_dims", 0));
  if (ind.empty()) throw Unsupported{"scalar indices"};
  const size_t q = static_cast<size_t>(ind.back()), rows = ind.size() - 1;
  if (q < 1 || q > 8 || batch + q > x.size()) throw Unsupported{"GatherND of " + std::to_string(q) + " components"};
  if (y.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank above 8"};
  const Placement& p = at(n.inputs[0]);
  const Placement& qi = at(n.inputs[1]);
  StridedRef data{p.offset, Shape(y.size(), 0)}, indices{qi.offset, Shape(y.size(), 0)};
  for (size_t d = 0; d < batch; ++d) data.strides[d] = p.strides[d];
  for (size_t d = 0; d < rows; ++d) indices.strides[d] = qi.strides[d];
  for (size_t d = rows; d < y.size(); ++d) data.strides[d] = p.strides[batch + q + (d - rows)];
  std::vector<std::pair<int64_t, int64_t>> indexed;
  for (size_t j = 0; j < q; ++j) indexed.emplace_back(x[batch + j], p.strides[batch + j]);
  Placement out = output(n.outputs[0], row_major(y));
  ExecStep s;
  s.node = id;
  s.generic = kernels::gather_nd(p.type, y, data, indices, qi.strides[rows], indexed, StridedRef{0, out.strides});
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, qi.buffer, -1, -1, out.buffer};
  add_step(std::move(s));
}

// ONNX GatherElements: y[i] = data[i with its `axis` component replaced by indices[i]], on the
// gather kernel (data's stride along the axis comes from the index, not the position).
void Planner::gather_elements(NodeId id, const Node& n) {
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& y = shape_of(n.outputs[0]);
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  const size_t axis = static_cast<size_t>(c.axis(n.attr_int("axis", 0), static_cast<int64_t>(x.size()), "axis"));
  if (y.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank above 8"};
  const Placement& p = at(n.inputs[0]);
  const Placement& qi = at(n.inputs[1]);
  StridedRef data{p.offset, p.strides}, indices{qi.offset, qi.strides};
  data.strides[axis] = 0;
  Placement out = output(n.outputs[0], row_major(y));
  ExecStep s;
  s.node = id;
  s.generic = kernels::gather(p.type, y, data, indices, p.strides[axis], x[axis], StridedRef{0, out.strides});
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, qi.buffer, -1, -1, out.buffer};
  add_step(std::move(s));
}

void Planner::cumsum(NodeId id, const Node& n) {
  const Value& axis_value = g_.value(n.inputs.at(1));
  if (!axis_value.constant || axis_value.constant->elements() != 1) throw Unsupported{"an axis computed at run time"};
  const Shape& x = shape_of(n.inputs[0]);
  if (x.empty() || x.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank 0 or above 8"};
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  const int64_t axis = c.axis(static_cast<int64_t>(axis_value.constant->at(0)), static_cast<int64_t>(x.size()), "axis");
  const Placement& p = at(n.inputs[0]);
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], x));
  ExecStep s;
  s.node = id;
  s.generic = kernels::cumsum(p.type, x, StridedRef{p.offset, p.strides}, StridedRef{0, out.strides},
                              static_cast<int>(axis), n.attr_int("exclusive", 0) != 0, n.attr_int("reverse", 0) != 0);
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, -1, -1, -1, out.buffer};
  add_step(std::move(s));
}

void Planner::pool(NodeId id, const Node& n) {
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& y = shape_of(n.outputs[0]);
  if (x.size() != 4) throw Unsupported{"pooling over other than two spatial dimensions"};
  if (n.outputs.size() > 1 && n.outputs[1] != kNone) throw Unsupported{"MaxPool's indices output"};
  kernels::PoolWindow win;
  win.max = n.op == OpType::kMaxPool;
  if (n.op == OpType::kGlobalAveragePool) {
    win.kh = x[2];
    win.kw = x[3];
  } else {
    std::vector<InputInfo> infos;
    auto c = infer(n, infos);
    op_detail::Window w;
    op_detail::infer_pool(c, &w);
    win.kh = w.kernel[1];
    win.kw = w.kernel[2];
    win.sh = w.stride[1];
    win.sw = w.stride[2];
    win.dh = w.dilation[1];
    win.dw = w.dilation[2];
    win.pad_top = w.pad_begin[1];
    win.pad_left = w.pad_begin[2];
    win.pad_bottom = w.pad_end[1];
    win.pad_right = w.pad_end[2];
    win.count_include_pad = n.attr_int("count_include_pad", 0) != 0;
  }
  const Placement& p = at(n.inputs[0]);
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], y));
  ExecStep s;
  s.node = id;
  s.generic = kernels::pool2d(p.type, x, StridedRef{p.offset, p.strides}, y, StridedRef{0, out.strides}, win);
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, -1, -1, -1, out.buffer};
  add_step(std::move(s));
}

void Planner::reduce(NodeId id, const Node& n, kernels::ReduceOp op) {
  for (size_t k = 1; k < n.inputs.size(); ++k)
    if (n.inputs[k] != kNone && !g_.value(n.inputs[k]).constant) throw Unsupported{"axes computed at run time"};
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  std::vector<bool> reduced = op_detail::reduced_dims(c);
  const Shape& x = shape_of(n.inputs[0]);
  const Placement& p = at(n.inputs[0]);
  Shape kept = x, in_strides = p.strides;
  std::vector<std::pair<int64_t, int64_t>> axes;
  for (size_t d = 0; d < x.size(); ++d)
    if (reduced[d]) {
      axes.emplace_back(x[d], p.strides[d]);
      kept[d] = 1;
      in_strides[d] = 0;
    }
  if (axes.size() > 8) throw Unsupported{"more than eight reduced dimensions"};
  Placement out = output(n.outputs[0], row_major(shape_of(n.outputs[0])));
  Shape out_strides = row_major(kept);  // the output's elements in kept's order, extent-1 dims aside
  ExecStep s;
  s.node = id;
  s.generic = kernels::reduce(op, p.type, kept, StridedRef{p.offset, in_strides}, axes, StridedRef{0, out_strides});
  s.label = node_label(n, id) + ": " + s.generic->label;
  s.buffers = {p.buffer, -1, -1, -1, out.buffer};
  add_step(std::move(s));
}

// ---------------------------------------------------------------------------------------
// The arena

void Planner::assign_arena() {
  // Live ranges over the final step list (setup steps touch no arena buffer).
  const int n_steps = static_cast<int>(plan_.steps.size());
  std::vector<int> first(plan_.buffers.size(), n_steps), last(plan_.buffers.size(), -1);
  for (int i = 0; i < n_steps; ++i) {
    const ExecStep& s = plan_.steps[static_cast<size_t>(i)];
    auto touch = [&](int b) {
      if (b < 0) return;
      first[static_cast<size_t>(b)] = std::min(first[static_cast<size_t>(b)], i);
      last[static_cast<size_t>(b)] = std::max(last[static_cast<size_t>(b)], i);
    };
    for (const Placement& t : s.tensors) touch(t.buffer);
    for (int b : s.buffers) touch(b);
  }
  for (ValueId v : g_.outputs()) last[static_cast<size_t>(placed_[static_cast<size_t>(v)].buffer)] = n_steps;
  std::vector<size_t> arena;
  for (size_t b = 0; b < plan_.buffers.size(); ++b) {
    ExecBuffer& buf = plan_.buffers[b];
    buf.first_step = first[b];
    buf.last_step = std::max(last[b], first[b]);
    if (buf.kind == ExecBuffer::Kind::kArena) {
      arena.push_back(b);
      plan_.intermediate_bytes += (buf.bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    }
  }
  // Largest first, each at the lowest offset free of the buffers placed before it whose
  // lives overlap its own.
  std::stable_sort(arena.begin(), arena.end(),
                   [&](size_t a, size_t b) { return plan_.buffers[a].bytes > plan_.buffers[b].bytes; });
  std::vector<size_t> placed;
  for (size_t b : arena) {
    ExecBuffer& buf = plan_.buffers[b];
    const int64_t size = (buf.bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    std::vector<std::pair<int64_t, int64_t>> taken;
    for (size_t o : placed) {
      const ExecBuffer& other = plan_.buffers[o];
      if (other.first_step <= buf.last_step && buf.first_step <= other.last_step)
        taken.emplace_back(other.arena_offset, other.arena_offset + other.bytes);
    }
    std::sort(taken.begin(), taken.end());
    int64_t offset = 0;
    for (const auto& [begin, end] : taken) {
      if (offset + size <= begin) break;
      offset = std::max(offset, (end + kArenaAlign - 1) / kArenaAlign * kArenaAlign);
    }
    buf.arena_offset = offset;
    plan_.arena_bytes = std::max(plan_.arena_bytes, offset + size);
    placed.push_back(b);
  }
}

ExecPlan Planner::run() {
  for (NodeId id : g_.topological_order()) {
    const Node& n = g_.node(id);
    try {
      node(id);
    } catch (const Unsupported& u) {
      plan_.unsupported.push_back(node_label(n, id) + ": " + u.why);
      // Its outputs still get places, so that later operators are planned (and reported).
      for (ValueId v : n.outputs)
        if (v != kNone && placed_[static_cast<size_t>(v)].buffer < 0) output(v, row_major(shape_of(v)));
    } catch (const UserError& e) {
      plan_.unsupported.push_back(node_label(n, id) + ": " + e.what());
      for (ValueId v : n.outputs)
        if (v != kNone && placed_[static_cast<size_t>(v)].buffer < 0) output(v, row_major(shape_of(v)));
    }
  }
  for (ValueId v : g_.outputs()) at(v);
  plan_.steps = std::move(setup_);
  for (ExecStep& s : run_) plan_.steps.push_back(std::move(s));
  plan_.values = placed_;
  assign_arena();
  return std::move(plan_);
}
}  // namespace

ExecPlan plan_graph_run(const Graph& g, DType dtype, const kernels::FamilyRegistry& families) {
  return Planner(g, dtype, families).run();
}

}  // namespace tessera::graph
