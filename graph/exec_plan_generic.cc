// The operators of a GPU run that take generic kernels (kernels/graph_ops.h): elementwise maps
// and chains, concatenation, gathers, pooling, reductions, CumSum, Pad and BatchNormalization.
#include "graph/exec_planner.h"

namespace tessera::graph::plan_detail {

// The chain step an ONNX elementwise operator is, if any (chain_step_name's, by value).
std::optional<EltwiseOp> chain_step_of(const Node& n) {
  std::optional<std::string_view> name = chain_step_name(n.op);
  if (!name || (n.op == OpType::kGelu && n.attr_string("approximate", "none") != "none")) return std::nullopt;
  for (int k = 0; k <= static_cast<int>(EltwiseOp::kAbs); ++k)
    if (eltwise_op_name(static_cast<EltwiseOp>(k)) == *name) return static_cast<EltwiseOp>(k);
  return std::nullopt;
}

// The expression of an elementwise operator over a, b, c (inputs in order), or nullopt: a
// chain step as the elementwise family computes it, else ONNX's definition.
std::optional<std::string> expression_of(const Node& n, bool int_out) {
  if (auto step = chain_step_of(n)) {
    if (*step == EltwiseOp::kDiv && int_out) return "truncf(a / b)";
    return kernels::eltwise_expression(*step, "a", "b");
  }
  auto f = [&](const char* attr, double fallback) { return float_literal(n.attr_float(attr, fallback)); };
  switch (n.op) {
    case OpType::kPow: return "powf(a, b)";
    case OpType::kSqrt: return "sqrtf(a)";
    case OpType::kLog: return "logf(a)";
    case OpType::kErf: return "erff(a)";
    case OpType::kReciprocal: return "1.f / a";
    case OpType::kFloor: return "floorf(a)";
    case OpType::kCeil: return "ceilf(a)";
    case OpType::kGelu:  // the tanh form (the exact one is a chain step)
      return "0.5f * a * (1.f + tanhf(0.7978845608f * (a + 0.044715f * a * a * a)))";
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
    std::string operand;
    if (eltwise_is_binary(op)) {
      if (next > 'd') return std::nullopt;
      operand = std::string(1, next++);
    }
    v = kernels::eltwise_expression(op, v, operand);
  }
  return v;
}

void Planner::generic(NodeId id, const Node& n) {
  const bool int_out = !n.outputs.empty() && !is_float(g_.value(n.outputs[0]).type);
  switch (n.op) {
    case OpType::kConcat: return concat(id, n);
    case OpType::kGather: return gather(id, n);
    case OpType::kGatherND: return gather_nd(id, n);
    case OpType::kGatherElements: return gather_elements(id, n);
    case OpType::kCumSum: return cumsum(id, n);
    case OpType::kMaxPool:
    case OpType::kAveragePool:
    case OpType::kGlobalAveragePool: return pool(id, n);
    case OpType::kReduceMean: return reduce(id, n, kernels::ReduceOp::kMean);
    case OpType::kReduceSum: return reduce(id, n, kernels::ReduceOp::kSum);
    case OpType::kReduceMax: return reduce(id, n, kernels::ReduceOp::kMax);
    case OpType::kReduceMin: return reduce(id, n, kernels::ReduceOp::kMin);
    case OpType::kReduceProd: return reduce(id, n, kernels::ReduceOp::kProd);
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
    case OpType::kBatchNormalization: return batch_norm(id, n);
    case OpType::kPad: return pad(id, n);
    case OpType::kMax:
    case OpType::kMin: {  // variadic: a chain of the binary step
      const EltwiseOp step = n.op == OpType::kMax ? EltwiseOp::kMax : EltwiseOp::kMin;
      if (auto e = steps_expression(std::vector<EltwiseOp>(n.inputs.size() - 1, step)))
        return map(id, n, *e, n.inputs);
      throw Unsupported{"more than four inputs"};
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
    default:
      break;
  }
  if (auto e = expression_of(n, int_out)) return map(id, n, *e, n.inputs);
  throw Unsupported{"no GPU kernel runs it yet"};
}

void Planner::map(NodeId id, const Node& n, const std::string& expression,
                  const std::vector<ValueId>& inputs) {
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
void Planner::emit_map(NodeId id, const Node& n, const std::string& expression,
                       const std::vector<Operand>& ops, const Shape& y, const Placement& out) {
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
  if (n.attr_string("mode", "constant") != "constant")
    throw Unsupported{"Pad mode " + n.attr_string("mode", "")};
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
    Placement out = step == steps.size() ? output(n.outputs[0], strides)
                                         : fresh(y, strides, type_of(n.outputs[0]), false);
    emit_map(id, n, expr, ops, y, out);
    current = {out, out.strides};
  }
}

void Planner::concat(NodeId id, const Node& n) {
  const Shape& y = shape_of(n.outputs[0]);
  const size_t axis = axis_attr(n, y.size());
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], y));
  int64_t start = 0;
  for (ValueId v : n.inputs) {
    const Placement& p = at(v);
    const Shape& s = shape_of(v);
    if (op_detail::product(s) > 0)
      copy(p, p.strides, out, out.strides, start * out.strides[axis], s, id, false);
    start += s[axis];
  }
}

void Planner::gather(NodeId id, const Node& n) {
  const Shape& x = shape_of(n.inputs[0]);
  const Shape& ind = shape_of(n.inputs[1]);
  const size_t axis = axis_attr(n, x.size()), rank = shape_of(n.outputs[0]).size();
  const Placement& p = at(n.inputs[0]);
  const Placement& q = at(n.inputs[1]);
  StridedRef data{p.offset, Shape(rank, 0)}, indices{q.offset, Shape(rank, 0)};
  for (size_t d = 0; d < axis; ++d) data.strides[d] = p.strides[d];
  for (size_t d = 0; d < ind.size(); ++d) indices.strides[axis + d] = q.strides[d];
  for (size_t d = axis + 1; d < x.size(); ++d) data.strides[d - 1 + ind.size()] = p.strides[d];
  gather_step(id, n, data, indices, axis);
}

// The gather kernel for `n` (Gather or GatherElements): `data` and `indices` are the strides
// over the output's index space; the index adds data's stride along `axis`.
void Planner::gather_step(NodeId id, const Node& n, const StridedRef& data, const StridedRef& indices, size_t axis) {
  const Shape& y = shape_of(n.outputs[0]);
  if (y.size() > static_cast<size_t>(kernels::kGenericMaxRank)) throw Unsupported{"rank above 8"};
  const Placement& p = at(n.inputs[0]);
  const Placement& q = at(n.inputs[1]);
  Placement out = output(n.outputs[0], row_major(y));
  generic_step(id, n,
               kernels::gather(p.type, y, data, indices, p.strides[axis], shape_of(n.inputs[0])[axis],
                               StridedRef{0, out.strides}),
               {p.buffer, q.buffer, -1, -1, out.buffer});
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
  if (q < 1 || q > 8 || batch + q > x.size())
    throw Unsupported{"GatherND of " + std::to_string(q) + " components"};
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
  generic_step(
      id, n,
      kernels::gather_nd(p.type, y, data, indices, qi.strides[rows], indexed, StridedRef{0, out.strides}),
      {p.buffer, qi.buffer, -1, -1, out.buffer});
}

// ONNX GatherElements: y[i] = data[i with its `axis` component replaced by indices[i]], on the
// gather kernel (data's stride along the axis comes from the index, not the position).
void Planner::gather_elements(NodeId id, const Node& n) {
  const size_t axis = axis_attr(n, shape_of(n.inputs[0]).size());
  const Placement& p = at(n.inputs[0]);
  const Placement& q = at(n.inputs[1]);
  StridedRef data{p.offset, p.strides}, indices{q.offset, q.strides};
  data.strides[axis] = 0;
  gather_step(id, n, data, indices, axis);
}

void Planner::cumsum(NodeId id, const Node& n) {
  const Value& axis_value = g_.value(n.inputs.at(1));
  if (!axis_value.constant || axis_value.constant->elements() != 1)
    throw Unsupported{"an axis computed at run time"};
  const Shape& x = shape_of(n.inputs[0]);
  if (x.empty() || x.size() > static_cast<size_t>(kernels::kGenericMaxRank))
    throw Unsupported{"rank 0 or above 8"};
  std::vector<InputInfo> infos;
  auto c = infer(n, infos);
  const int64_t axis =
      c.axis(static_cast<int64_t>(axis_value.constant->at(0)), static_cast<int64_t>(x.size()), "axis");
  const Placement& p = at(n.inputs[0]);
  Placement out = output(n.outputs[0], layout_like(n.inputs[0], x));
  generic_step(
      id, n,
      kernels::cumsum(p.type, x, StridedRef{p.offset, p.strides}, StridedRef{0, out.strides},
                      static_cast<int>(axis), n.attr_int("exclusive", 0) != 0, n.attr_int("reverse", 0) != 0),
      {p.buffer, -1, -1, -1, out.buffer});
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
  generic_step(
      id, n, kernels::pool2d(p.type, x, StridedRef{p.offset, p.strides}, y, StridedRef{0, out.strides}, win),
      {p.buffer, -1, -1, -1, out.buffer});
}

void Planner::reduce(NodeId id, const Node& n, kernels::ReduceOp op) {
  for (size_t k = 1; k < n.inputs.size(); ++k)
    if (n.inputs[k] != kNone && !g_.value(n.inputs[k]).constant)
      throw Unsupported{"axes computed at run time"};
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
  generic_step(
      id, n,
      kernels::reduce(op, p.type, kept, StridedRef{p.offset, in_strides}, axes, StridedRef{0, out_strides}),
      {p.buffer, -1, -1, -1, out.buffer});
}

}  // namespace tessera::graph::plan_detail
