// TensorExpr: an operator as an iteration domain over named axes plus, for each tensor, an
// affine map from axes to element indices. Matmul is C[m,n] += A[m,k] * B[k,n]; conv2d's
// input row is h = p*stride + r*dilation - pad. Cost models derive data footprints and
// traffic from these maps, so they work for any operator, not only those with templates.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"

namespace tessera {

/// Whether an axis indexes the output (spatial) or is summed over (reduce).
enum class AxisKind { kSpatial, kReduce };

/// One loop of the iteration domain.
struct Axis {
  std::string name;  ///< short name used in index maps, e.g. "m", "p", "r"
  int64_t extent;    ///< number of iterations, >= 1
  AxisKind kind;     ///< spatial or reduce
  bool operator==(const Axis&) const = default;
};

/// coeff * axes[axis], one term of an AffineExpr.
struct AffineTerm {
  int axis;        ///< index into TensorExpr::axes
  int64_t coeff;   ///< integer multiplier (non-zero)
  bool operator==(const AffineTerm&) const = default;
};

/// sum(terms) + offset: the element index along one tensor dimension.
struct AffineExpr {
  std::vector<AffineTerm> terms;  ///< in axis order of appearance
  int64_t offset = 0;             ///< constant part (e.g. -pad)
  bool operator==(const AffineExpr&) const = default;
};

/// Whether the operator reads or writes a tensor.
enum class TensorRole { kInput, kOutput };

/// A tensor the operator touches, with one AffineExpr per dimension.
struct TensorAccess {
  std::string name;                ///< "A", "B", "C", "X", "W", "bias", ...
  TensorRole role;                 ///< input (read) or output (written)
  DType dtype;                     ///< element type
  std::vector<int64_t> shape;      ///< extent of each dimension, outermost first
  std::vector<AffineExpr> index;   ///< one map per dimension, same order as shape
  int64_t elements() const;        ///< product of shape
  bool operator==(const TensorAccess&) const = default;
};

/// A half-open range of one axis: [begin, begin + extent).
struct AxisRange {
  int64_t begin;   ///< first iteration
  int64_t extent;  ///< number of iterations, >= 1
};

/// An operator's iteration domain and tensor accesses.
struct TensorExpr {
  std::vector<Axis> axes;               ///< loops, outermost first
  std::vector<TensorAccess> tensors;    ///< inputs first, outputs last
  double flops_per_point = 0;           ///< arithmetic per point of the domain [FLOP]
  double flops_per_output = 0;          ///< epilogue arithmetic per output element [FLOP]

  /// Index of the axis called `name`, or -1.
  int axis_index(std::string_view name) const;
  /// Number of points of the iteration domain (product of extents).
  double domain_points() const;
  /// Total arithmetic [FLOP]: domain points * flops_per_point + outputs * flops_per_output.
  double flop_count() const;

  /// Distinct in-bounds elements of tensors[t] touched when the axes range over `tile`
  /// (one AxisRange per axis). Exact when each axis indexes at most one dimension of the
  /// tensor (true for every built-in kind); otherwise an upper bound.
  int64_t footprint_elements(size_t t, std::span<const AxisRange> tile) const;
  /// footprint_elements over the whole domain.
  int64_t footprint_elements(size_t t) const;
  /// Minimum DRAM traffic [bytes]: each input's footprint read once, each output written once.
  double min_bytes() const;

  /// "p*2 + r - 3" for tensor t's dimension d.
  std::string index_to_string(const AffineExpr& e) const;
  /// "C[m, n] += A[m, k] * B[k, n]" style summary: outputs, then the inputs read.
  std::string to_string() const;
};

}  // namespace tessera
