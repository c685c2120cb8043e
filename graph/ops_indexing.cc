// Shape inference and host evaluation of ONNX's padding, tiling and N-dimensional indexing
// operators (opsets 13-17, in ONNX's own definitions): Pad (constant, reflect and edge modes;
// negative pads crop), Tile, GatherND and ScatterND (batch_dims, the reductions of opset 16).
// Called from infer() (shape_inference.cc) and evaluate() (evaluation.cc).
#include <algorithm>

#include "graph/op_semantics.h"

namespace tessera::graph::op_detail {
namespace {

// Advances the row-major position `pos` within `shape` by one element.
void next_position(Shape& pos, const Shape& shape) {
  for (size_t d = pos.size(); d-- > 0;) {
    if (++pos[d] < shape[d]) return;
    pos[d] = 0;
  }
}

// Pad's pads (constant, 2 x rank: all begins, then all ends).
std::vector<int64_t> pads_of(const Infer& c) {
  std::vector<int64_t> pads = c.constant_ints(1, "pads");
  if (pads.size() != 2 * static_cast<size_t>(c.rank(0)))
    c.fail("pads has " + std::to_string(pads.size()) + " values; data of rank " + std::to_string(c.rank(0)) + " needs " +
           std::to_string(2 * c.rank(0)));
  return pads;
}

std::string pad_mode(const OpContext& c) {
  std::string mode = c.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    c.fail("mode '" + mode + "' is not one of constant, reflect, edge");
  return mode;
}

// GatherND / ScatterND: the last dimension of indices addresses q leading dimensions of data
// after its batch_dims batch dimensions.
struct NdIndex {
  int64_t batch_dims = 0, q = 0;
};

NdIndex nd_index(const Infer& c, size_t data, size_t indices) {
  const Shape &x = c.shape(data), &idx = c.shape(indices);
  if (!is_int_index(c.type(indices))) c.fail("indices must be int64, not " + std::string(elem_type_name(c.type(indices))));
  if (x.empty() || idx.empty()) c.fail("data " + shape_text(x) + " and indices " + shape_text(idx) + " must have rank >= 1");
  NdIndex n;
  n.batch_dims = c.attr_int("batch_dims", 0);
  n.q = idx.back();
  const int64_t rank = static_cast<int64_t>(x.size()), irank = static_cast<int64_t>(idx.size());
  if (n.batch_dims < 0 || n.batch_dims >= std::min(rank, irank))
    c.fail("batch_dims " + std::to_string(n.batch_dims) + " must be in [0, " + std::to_string(std::min(rank, irank)) + ")");
  for (int64_t d = 0; d < n.batch_dims; ++d)
    if (x[static_cast<size_t>(d)] != idx[static_cast<size_t>(d)])
      c.fail("the batch dimensions of data " + shape_text(x) + " and indices " + shape_text(idx) + " differ");
  if (n.q < 1 || n.q > rank - n.batch_dims)
    c.fail("the last dimension of indices " + shape_text(idx) + " must be 1 to " + std::to_string(rank - n.batch_dims));
  return n;
}

// The offset in data (row-major) of the slice that indices row `row` addresses in batch `b`.
int64_t nd_offset(const Infer& c, const Shape& x, const NdIndex& n, const std::vector<int64_t>& idx, int64_t row,
                  int64_t b, const Shape& strides) {
  int64_t offset = 0;
  for (int64_t d = 0; d < n.batch_dims; ++d) {
    // b's coordinate in batch dimension d.
    const int64_t inner = product(x, static_cast<size_t>(d) + 1, static_cast<size_t>(n.batch_dims));
    offset += (b / inner) % x[static_cast<size_t>(d)] * strides[static_cast<size_t>(d)];
  }
  for (int64_t k = 0; k < n.q; ++k) {
    const size_t d = static_cast<size_t>(n.batch_dims + k);
    int64_t v = idx[static_cast<size_t>(row * n.q + k)];
    if (v < -x[d] || v >= x[d])
      c.fail("index " + std::to_string(v) + " is out of range for dimension " + std::to_string(d) + " of " + shape_text(x));
    offset += (v < 0 ? v + x[d] : v) * strides[d];
  }
  return offset;
}

template <class T>
void eval_pad(const Infer& c, const Tensor& x, const Tensor* value, Tensor& y) {
  const std::vector<int64_t> pads = pads_of(c);
  const std::string mode = pad_mode(c);
  const size_t r = x.shape.size();
  T fill{};
  if (value && !vals<T>(*value).empty()) fill = vals<T>(*value)[0];
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  const Shape in_strides = strides_of(x.shape);
  Shape pos(r, 0);
  for (size_t e = 0; e < out.size(); ++e) {
    int64_t offset = 0;
    bool inside = true;
    for (size_t d = 0; d < r; ++d) {
      const int64_t n = x.shape[d];
      int64_t i = pos[d] - pads[d];
      if (i < 0 || i >= n) {
        if (mode == "constant" || n == 0) {
          inside = false;
          break;
        }
        if (mode == "edge") {
          i = std::clamp<int64_t>(i, 0, n - 1);
        } else {  // reflect about the edges without repeating them
          const int64_t period = n == 1 ? 1 : 2 * (n - 1);
          i = ((i % period) + period) % period;
          if (i >= n) i = period - i;
        }
      }
      offset += i * in_strides[d];
    }
    out[e] = inside ? in[static_cast<size_t>(offset)] : fill;
    next_position(pos, y.shape);
  }
}

template <class T>
void eval_tile(const Tensor& x, Tensor& y) {
  const size_t r = x.shape.size();
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  const Shape in_strides = strides_of(x.shape);
  Shape pos(r, 0);
  for (size_t e = 0; e < out.size(); ++e) {
    int64_t offset = 0;
    for (size_t d = 0; d < r; ++d) offset += pos[d] % x.shape[d] * in_strides[d];
    out[e] = in[static_cast<size_t>(offset)];
    next_position(pos, y.shape);
  }
}

template <class T>
void eval_gather_nd(const Infer& c, const Tensor& x, const Tensor& indices, Tensor& y) {
  const NdIndex n = nd_index(c, 0, 1);
  const Shape strides = strides_of(x.shape);
  const int64_t slice = product(x.shape, static_cast<size_t>(n.batch_dims + n.q), x.shape.size());
  const int64_t rows = product(indices.shape) / n.q;
  const int64_t per_batch = rows / std::max<int64_t>(1, product(x.shape, 0, static_cast<size_t>(n.batch_dims)));
  const auto& in = vals<T>(x);
  auto& out = vals<T>(y);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t at = nd_offset(c, x.shape, n, indices.i, row, per_batch ? row / per_batch : 0, strides);
    std::copy(in.begin() + at, in.begin() + at + slice, out.begin() + row * slice);
  }
}

template <class T>
void eval_scatter_nd(const Infer& c, const Tensor& x, const Tensor& indices, const Tensor& updates, Tensor& y) {
  const NdIndex n = nd_index(c, 0, 1);
  const std::string reduction = c.attr_string("reduction", "none");
  const Shape strides = strides_of(x.shape);
  const int64_t slice = product(x.shape, static_cast<size_t>(n.q), x.shape.size());
  const int64_t rows = product(indices.shape) / n.q;
  auto& out = vals<T>(y);
  out = vals<T>(x);
  const auto& up = vals<T>(updates);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t at = nd_offset(c, x.shape, n, indices.i, row, 0, strides);
    for (int64_t k = 0; k < slice; ++k) {
      T& dst = out[static_cast<size_t>(at + k)];
      const T v = up[static_cast<size_t>(row * slice + k)];
      if (reduction == "add") {
        if constexpr (std::is_same_v<T, float>)
          dst += v;
        else
          dst = wrap_add(dst, v);
      } else if (reduction == "mul") {
        if constexpr (std::is_same_v<T, float>)
          dst *= v;
        else
          dst = wrap_mul(dst, v);
      } else {
        dst = v;
      }
    }
  }
}

}  // namespace

bool is_indexing_op(OpType op) {
  return op == OpType::kPad || op == OpType::kTile || op == OpType::kGatherND || op == OpType::kScatterND;
}

std::vector<OutputSpec> infer_indexing_op(const Infer& c) {
  switch (c.op()) {
    case OpType::kPad: {
      c.expect_inputs(2, 3);
      c.expect_outputs(1, 1);
      pad_mode(c);
      const std::vector<int64_t> pads = pads_of(c);
      if (c.present(2)) {
        c.expect_same_type(2, 0, "constant_value", "data");
        if (product(c.shape(2)) != 1) c.fail("constant_value must be one value, got shape " + shape_text(c.shape(2)));
      }
      Shape y = c.shape(0);
      for (size_t d = 0; d < y.size(); ++d) {
        const int64_t begin = pads[d], end = pads[d + y.size()];
        if (begin > (int64_t{1} << 40) || end > (int64_t{1} << 40) || begin < -y[d] || end < -y[d] || y[d] + begin + end < 0)
          c.fail("pads " + shape_text(pads) + " do not fit data " + shape_text(c.shape(0)));
        y[d] += begin + end;
        if (c.attr_string("mode", "constant") != "constant" && y[d] > 0 && c.shape(0)[d] == 0)
          c.fail("mode '" + c.attr_string("mode", "") + "' cannot pad an empty dimension");
      }
      return {{c.type(0), y}};
    }
    case OpType::kTile: {
      c.expect_inputs(2, 2);
      c.expect_outputs(1, 1);
      const std::vector<int64_t> repeats = c.constant_ints(1, "repeats");
      if (repeats.size() != static_cast<size_t>(c.rank(0)))
        c.fail("repeats has " + std::to_string(repeats.size()) + " values; data has rank " + std::to_string(c.rank(0)));
      Shape y = c.shape(0);
      for (size_t d = 0; d < y.size(); ++d) {
        if (repeats[d] < 0 || repeats[d] > (int64_t{1} << 40)) c.fail("repeats " + shape_text(repeats) + " must be >= 0");
        y[d] *= repeats[d];
      }
      return {{c.type(0), y}};
    }
    case OpType::kGatherND: {
      c.expect_inputs(2, 2);
      c.expect_outputs(1, 1);
      const NdIndex n = nd_index(c, 0, 1);
      const Shape &x = c.shape(0), &idx = c.shape(1);
      Shape y(idx.begin(), idx.end() - 1);
      y.insert(y.end(), x.begin() + n.batch_dims + n.q, x.end());
      return {{c.type(0), y}};
    }
    case OpType::kScatterND: {
      c.expect_inputs(3, 3);
      c.expect_outputs(1, 1);
      if (c.has("batch_dims")) c.fail("takes no attribute batch_dims");
      const NdIndex n = nd_index(c, 0, 1);
      const std::string reduction = c.attr_string("reduction", "none");
      if (reduction != "none" && reduction != "add" && reduction != "mul")
        c.fail("reduction '" + reduction + "' is not one of none, add, mul");
      c.expect_same_type(2, 0, "updates", "data");
      const Shape &x = c.shape(0), &idx = c.shape(1);
      Shape want(idx.begin(), idx.end() - 1);
      want.insert(want.end(), x.begin() + n.q, x.end());
      if (c.shape(2) != want) c.fail("updates " + shape_text(c.shape(2)) + " must have shape " + shape_text(want));
      return {{c.type(0), x}};
    }
    default:
      TESSERA_UNREACHABLE("not an indexing operator");
  }
}

template <class T>
void eval_indexing(const Infer& c, const Tensor* const* in, Tensor& y) {
  switch (c.op()) {
    case OpType::kPad: return eval_pad<T>(c, *in[0], c.present(2) ? in[2] : nullptr, y);
    case OpType::kTile: return eval_tile<T>(*in[0], y);
    case OpType::kGatherND: return eval_gather_nd<T>(c, *in[0], *in[1], y);
    case OpType::kScatterND: return eval_scatter_nd<T>(c, *in[0], *in[1], *in[2], y);
    default: TESSERA_UNREACHABLE("not an indexing operator");
  }
}

void eval_indexing_op(const Infer& c, const Tensor* const* in, Tensor& y) {
  if (is_float(y.type)) return eval_indexing<float>(c, in, y);
  return eval_indexing<int64_t>(c, in, y);
}

}  // namespace tessera::graph::op_detail
