#include "graph/exec_planner.h"

namespace tessera::graph {

using kernels::StoreType;

kernels::StoreType store_type(ElemType t, DType dtype) {
  switch (t) {
    case ElemType::kF32:
    case ElemType::kF16:
    case ElemType::kBF16:
    case ElemType::kF64:
      return dtype == DType::kF32    ? StoreType::kF32
             : dtype == DType::kBF16 ? StoreType::kBF16
                                     : StoreType::kF16;
    case ElemType::kBool:
      return StoreType::kU8;
    default:
      return StoreType::kI64;
  }
}

int64_t placement_byte_offset(const Placement& p) {
  return p.offset * kernels::store_bytes(p.type);
}

namespace plan_detail {

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
  std::vector<InputInfo> infos;
  switch (n.op) {
    case OpType::kReshape:
    case OpType::kFlatten:
    case OpType::kSqueeze:
    case OpType::kUnsqueeze:
    case OpType::kIdentity:
    case OpType::kDropout: {
      if (n.outputs.size() > 1 && n.outputs[1] != kNone &&
          !g_.consumers()[static_cast<size_t>(n.outputs[1])].empty())
        throw Unsupported{"its mask output is used"};
      // A view of the input as it lies where its strides allow (splitting or merging only
      // dimensions that step through each other), else of a row-major copy.
      const Placement& in = at(n.inputs[0]);
      Placement p;
      if (auto st = reshaped_strides(shape_of(n.inputs[0]), in.strides, shape_of(n.outputs[0]))) {
        p = in;
        p.strides = *st;
        if (auto it = part_of_.find(n.inputs[0]); it != part_of_.end()) {  // a part still
          std::vector<NodeId> chain = it->second.second;
          chain.push_back(id);
          part_of_[n.outputs[0]] = {it->second.first, chain};
        }
      } else {
        p = require(n.inputs[0], row_major(shape_of(n.inputs[0])), id);
        p.strides = row_major(shape_of(n.outputs[0]));
      }
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
        if (n.outputs[k] != kNone) {
          set(n.outputs[k], part);
          part_of_[n.outputs[k]] = {n.inputs[0], {id}};
        }
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
      const size_t axis = axis_attr(n, x.size());
      int64_t k = index.constant->i.at(0);
      if (k < -x[axis] || k >= x[axis]) return false;  // the generic gather reports it
      if (k < 0) k += x[axis];
      Placement p = at(n.inputs[0]);
      p.offset += k * p.strides[axis];
      p.strides.erase(p.strides.begin() + static_cast<std::ptrdiff_t>(axis));
      set(n.outputs[0], p);
      part_of_[n.outputs[0]] = {n.inputs[0], {id}};
      break;
    }
    default:
      return false;
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
    case OpKind::kBatchMatmul:
      matmul(id, n, *w);
      return true;
    case OpKind::kConv2d:
      conv(id, n, *w);
      return true;
    case OpKind::kSoftmax:
    case OpKind::kLayernorm:
    case OpKind::kReduce:
      rows(id, n, *w);
      return true;
    case OpKind::kElementwise:
      return elementwise_kernel(id, n, *w);
  }
  return false;
}

void Planner::kernel_step(NodeId id, const Node& n, const Workload& w, std::vector<Placement> tensors,
                          kernels::OperandLayouts layouts) {
  ExecStep s;
  s.kind = ExecStep::Kind::kKernel;
  s.node = id;
  s.label = node_label(n, id) + " as " + w.key();
  s.workload = w;
  s.tensors = std::move(tensors);
  s.layouts = layouts;
  add_step(std::move(s));
}

// Strides for `v` under which its only reader, a Transpose (not a graph output itself), reads
// it as a dense row-major tensor; nullopt where `v` has other readers or is an output.
std::optional<Shape> Planner::transposed_order(ValueId v) {
  if (consumers_.empty()) consumers_ = g_.consumers();
  const std::vector<NodeId>& readers = consumers_[static_cast<size_t>(v)];
  if (readers.size() != 1 || is_graph_output(v)) return std::nullopt;
  const Node& t = g_.node(readers[0]);
  if (t.op != OpType::kTranspose || t.inputs[0] != v) return std::nullopt;
  std::vector<InputInfo> infos;
  auto c = infer(t, infos);
  const std::vector<int64_t> perm = op_detail::transpose_perm(c);
  const Shape dense = row_major(shape_of(t.outputs[0]));
  Shape strides(perm.size(), 0);
  for (size_t i = 0; i < perm.size(); ++i) strides[static_cast<size_t>(perm[i])] = dense[i];
  return strides;
}

// How `p` lies as a matmul operand of shape `want` (no broadcast), if not dense:
// columns contiguous, its rows at one stride, and the dimensions before them (a batched
// operand's; a plain matmul's A folds them into its rows) at strides that step through them
// in at most two levels. Nullopt when it is dense or lies otherwise, or is not 16-byte aligned.
std::optional<kernels::OperandStrides> Planner::strided_operand(const Placement& p, const Shape& want, bool batched) {
  const size_t r = want.size();
  if (r < 2) return std::nullopt;
  if (same_strides(want, p.strides, row_major(want)) || placement_byte_offset(p) % kOperandAlign != 0) return std::nullopt;
  if (want[r - 1] != 1 && p.strides[r - 1] != 1) return std::nullopt;
  // The dimensions before the columns, extent-1 ones dropped, each merged into the one before
  // it where that one steps over it whole: (extent, stride), outermost first.
  std::vector<std::pair<int64_t, int64_t>> dims;
  for (size_t d = 0; d + 1 < r; ++d) {
    if (want[d] == 1) continue;
    if (!dims.empty() && dims.back().second == p.strides[d] * want[d] && (batched ? d != r - 2 : true)) {
      dims.back() = {dims.back().first * want[d], p.strides[d]};
    } else {
      dims.emplace_back(want[d], p.strides[d]);
    }
  }
  const int64_t rows = want[r - 2], cols = want[r - 1];
  kernels::OperandStrides o;
  if (!batched) {  // a plain matmul: everything before the columns is its rows
    if (dims.size() > 1) return std::nullopt;
    o.row = dims.empty() ? cols : dims[0].second;
    o.inner = o.row * op_detail::product(Shape(want.begin(), want.end() - 1));
    o.inner_count = 1;
    return o;
  }
  // Rows: the last of the dims unless the rows are one (then they take any stride).
  o.row = rows == 1 ? cols : dims.back().second;
  if (rows != 1) dims.pop_back();
  const int64_t batch = op_detail::product(Shape(want.begin(), want.end() - 2));
  if (dims.size() > 2) return std::nullopt;
  if (dims.empty()) {
    o.inner = o.row * rows;
    o.inner_count = batch;
  } else {
    o.inner = dims.back().second;
    o.inner_count = dims.back().first;
    if (dims.size() == 2) o.outer = dims.front().second;
  }
  for (int64_t stride : {o.row, o.inner, o.outer})
    if (stride < 0) return std::nullopt;
  return o;
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
  std::array<Shape, 2> wants;
  std::array<Placement, 2> as_read;  // where the operands lie, as the kernel reads them
  kernels::OperandLayouts layouts;
  bool flip_b = false;
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
    wants[static_cast<size_t>(k)] = want;
    // Operands read as they lie, where some family reads them so (a copy fewer each).
    Placement p = at(v);
    if (swap) std::swap(p.strides[s.size() - 1], p.strides[s.size() - 2]);
    if (options_.strided_operands && want == s)
      layouts[static_cast<size_t>(k)] = strided_operand(p, want, w.kind == OpKind::kBatchMatmul);
    // A B whose rows are its contiguous dimension (k^T as a transposed view of attention's key)
    // is the other layout of B: read so, the workload's trans_b flipped.
    const size_t r = s.size();
    if (k == 1 && options_.strided_operands && want == s && !layouts[1] && r >= 2 && want[r - 1] != 1 &&
        p.strides[r - 1] != 1 && p.strides[r - 2] == 1) {
      Placement q = p;
      Shape flipped = want;
      std::swap(q.strides[r - 1], q.strides[r - 2]);
      std::swap(flipped[r - 1], flipped[r - 2]);
      if ((layouts[1] = strided_operand(q, flipped, w.kind == OpKind::kBatchMatmul))) {
        p = q;
        flip_b = true;
      }
    }
    as_read[static_cast<size_t>(k)] = p;
  }
  Workload wk = w;  // as the kernel runs it
  if (flip_b) std::get<MatmulShape>(wk.shape).trans_b = !m.trans_b;
  // The output in the order its one reader, a transpose, wants, so that the transpose is dense.
  std::optional<Shape> out_strides;
  if (options_.strided_operands)
    if ((out_strides = transposed_order(n.outputs[0])))
      layouts[2] = strided_operand(Placement{0, 0, *out_strides, type_of(n.outputs[0])}, y,
                                   w.kind == OpKind::kBatchMatmul);
  auto readable = [&] {
    for (const kernels::KernelFamily* f : families_.for_workload(wk))
      if (f->reads_strided(wk, layouts)) return true;
    return false;
  };
  if (layouts[2] && !readable()) layouts[2].reset();
  if (kernels::any_strided(layouts) && !readable()) layouts = {};
  if (!layouts[1]) wk = w;  // B dense as the operator has it
  for (size_t k = 0; k < 2; ++k) {
    const ValueId v = n.inputs[k];
    if (layouts[k]) {
      if (auto it = part_of_.find(v); it != part_of_.end()) read_in_place_.insert(it->second.first);
      t.push_back(as_read[k]);
    } else {
      t.push_back(operand(v, k == 0 ? swap_a : swap_b, wants[k], id));
    }
  }
  size_t next = 2;
  for (EpilogueOp op : w.epilogue) {
    if (op == EpilogueOp::kBias) t.push_back(require_as(n.inputs.at(next++), {m.n}, id));
    if (op == EpilogueOp::kResidual) t.push_back(require_as(n.inputs.at(next++), y, id));
  }
  t.push_back(output(n.outputs[0], layouts[2] ? *out_strides : row_major(y)));
  kernel_step(id, n, wk, std::move(t), layouts);
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

}  // namespace plan_detail

ExecPlan plan_graph_run(const Graph& g, DType dtype, const kernels::FamilyRegistry& families, const PlanOptions& options) {
  return plan_detail::Planner(g, dtype, families, options).run();
}

}  // namespace tessera::graph
