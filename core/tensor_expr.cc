#include "core/tensor_expr.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace tessera {

int64_t TensorAccess::elements() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

int TensorExpr::axis_index(std::string_view name) const {
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i].name == name) return static_cast<int>(i);
  return -1;
}

double TensorExpr::domain_points() const {
  double points = 1;
  for (const Axis& a : axes) points *= static_cast<double>(a.extent);
  return points;
}

double TensorExpr::flop_count() const {
  double outputs = 0;
  for (const TensorAccess& t : tensors)
    if (t.role == TensorRole::kOutput) outputs += static_cast<double>(t.elements());
  return domain_points() * flops_per_point + outputs * flops_per_output;
}

namespace {
// Number of i in [0, n) with 0 <= base + step*i < size.
int64_t count_in_bounds(int64_t base, int64_t step, int64_t n, int64_t size) {
  if (step == 0) return (base >= 0 && base < size) ? n : 0;
  if (step < 0) {  // mirror: index i -> n-1-i gives base' = base + step*(n-1), step' = -step
    base += step * (n - 1);
    step = -step;
  }
  // base + step*i >= 0  <=>  i >= ceil(-base/step);  base + step*i < size  <=>  i <= (size-1-base)/step
  auto floor_div = [](int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); };
  int64_t lo = std::max<int64_t>(0, -floor_div(base, step));
  int64_t hi = std::min<int64_t>(n - 1, floor_div(size - 1 - base, step));
  return hi >= lo ? hi - lo + 1 : 0;
}

// Distinct values of `e` inside [0, size) as the axes range over `tile`.
int64_t distinct_values(const AffineExpr& e, std::span<const AxisRange> tile, int64_t size) {
  int64_t base = e.offset;
  for (const AffineTerm& t : e.terms) base += t.coeff * tile[t.axis].begin;
  if (e.terms.empty()) return (base >= 0 && base < size) ? 1 : 0;
  if (e.terms.size() == 1) {
    const AffineTerm& t = e.terms[0];
    return count_in_bounds(base, t.coeff, tile[t.axis].extent, size);
  }
  // Several axes in one dimension (conv windows): mark reachable values in a bitmap. The
  // value range is small for real windows; past a limit fall back to the clipped interval.
  int64_t lo = base, hi = base;
  double combos = 1;
  for (const AffineTerm& t : e.terms) {
    int64_t span = t.coeff * (tile[t.axis].extent - 1);
    (span < 0 ? lo : hi) += span;
    combos *= static_cast<double>(tile[t.axis].extent);
  }
  lo = std::max<int64_t>(lo, 0);
  hi = std::min<int64_t>(hi, size - 1);
  if (hi < lo) return 0;
  if (combos > 1 << 24) return hi - lo + 1;
  std::vector<char> seen(static_cast<size_t>(hi - lo + 1), 0);
  std::vector<int64_t> counter(e.terms.size(), 0);
  while (true) {
    int64_t v = base;
    for (size_t i = 0; i < e.terms.size(); ++i) v += e.terms[i].coeff * counter[i];
    if (v >= lo && v <= hi) seen[static_cast<size_t>(v - lo)] = 1;
    size_t i = 0;
    for (; i < e.terms.size(); ++i) {
      if (++counter[i] < tile[e.terms[i].axis].extent) break;
      counter[i] = 0;
    }
    if (i == e.terms.size()) break;
  }
  return std::count(seen.begin(), seen.end(), 1);
}
}  // namespace

int64_t TensorExpr::footprint_elements(size_t t, std::span<const AxisRange> tile) const {
  TESSERA_CHECK(t < tensors.size(), "tensor index out of range");
  TESSERA_CHECK(tile.size() == axes.size(), "tile must give one range per axis");
  const TensorAccess& tensor = tensors[t];
  int64_t elements = 1;
  for (size_t d = 0; d < tensor.shape.size(); ++d)
    elements *= distinct_values(tensor.index[d], tile, tensor.shape[d]);
  return elements;
}

int64_t TensorExpr::footprint_elements(size_t t) const {
  std::vector<AxisRange> whole;
  for (const Axis& a : axes) whole.push_back({0, a.extent});
  return footprint_elements(t, whole);
}

double TensorExpr::min_bytes() const {
  double bytes = 0;
  for (size_t t = 0; t < tensors.size(); ++t)
    bytes += static_cast<double>(footprint_elements(t)) *
             static_cast<double>(dtype_bytes(tensors[t].dtype));
  return bytes;
}

std::string TensorExpr::index_to_string(const AffineExpr& e) const {
  std::string out;
  for (const AffineTerm& t : e.terms) {
    int64_t c = t.coeff;
    if (!out.empty()) out += c < 0 ? " - " : " + ";
    else if (c < 0) out += "-";
    if (c < 0) c = -c;
    if (c != 1) out += std::to_string(c) + "*";
    out += axes[t.axis].name;
  }
  if (e.offset != 0 || out.empty()) {
    if (out.empty()) out = std::to_string(e.offset);
    else out += (e.offset < 0 ? " - " : " + ") + std::to_string(e.offset < 0 ? -e.offset : e.offset);
  }
  return out;
}

std::string TensorExpr::to_string() const {
  auto access = [&](const TensorAccess& t) {
    std::string s = t.name + "[";
    for (size_t d = 0; d < t.index.size(); ++d) s += (d ? ", " : "") + index_to_string(t.index[d]);
    return s + "]";
  };
  std::string lhs, rhs;
  bool reduces = std::any_of(axes.begin(), axes.end(),
                             [](const Axis& a) { return a.kind == AxisKind::kReduce; });
  for (const TensorAccess& t : tensors) {
    std::string& side = t.role == TensorRole::kOutput ? lhs : rhs;
    side += (side.empty() ? "" : ", ") + access(t);
  }
  return lhs + (reduces ? " <- reduce(" : " <- f(") + rhs + ")";
}

}  // namespace tessera
