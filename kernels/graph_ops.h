// Generic kernels of a whole-graph run (`tessera graph run`): the operators no tuned family
// runs. A strided copy (transposes, concatenation into slices, layout and type conversions,
// broadcasts), a gather along one axis, 2-D max and average pooling, an elementwise map of any
// expression over up to four broadcast inputs, and reductions over any set of axes.
//
// Each is a simple grid-stride kernel over the elements of its output, and each takes the
// same arguments: four input pointers (null where unused), the output pointer, and a
// GenericParams by value that carries the shapes, element strides and offsets. One compiled
// kernel therefore serves every shape of its kind and element types: the source depends only
// on the kind, the element types and (for a map) the expression, so the builder's cache and a
// run's kernel table stay small. Tensors are addressed by element offsets and element strides
// over the output's index space (0 where an input is broadcast), so views (transposes, slices,
// NHWC storage of an NCHW tensor) are read in place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/workload.h"
#include "kernels/kernel_family.h"

namespace tessera::kernels {

/// Element type of a tensor in device memory during a graph run. Floating tensors run in
/// f16, bf16 or f32; every integer tensor is stored as int64 and every bool as one byte.
enum class StoreType : int32_t { kF16, kBF16, kF32, kI64, kU8 };

/// The device type that stores it: "tessera::F16", "tessera::BF16" (the raw 16-bit storage of
/// kernels/cuda/common.cuh; NVRTC finds no cuda_fp16.h without a CUDA include path), "float",
/// "long long", "unsigned char".
std::string_view store_type_cuda(StoreType t);
/// "f16", "bf16", "f32", "i64", "u8".
std::string_view store_type_name(StoreType t);
/// Bytes per element.
int64_t store_bytes(StoreType t);

/// The CUDA expression of one elementwise chain step applied to `v` (and, for a binary step,
/// `operand`), in float: what the elementwise family and a graph run's maps compute. GELU is
/// the exact (erf) one, common.cuh's tessera::gelu.
std::string eltwise_expression(EltwiseOp op, const std::string& v, const std::string& operand = "");

/// Most dimensions a generic kernel indexes.
inline constexpr int kGenericMaxRank = 8;
/// Most inputs a generic kernel reads.
inline constexpr int kGenericMaxInputs = 4;
/// Op-specific integers a generic kernel reads (pool windows, reduced axes, ...).
inline constexpr int kGenericExtra = 24;

/// The by-value parameter of every generic kernel; the device code declares the same struct
/// (static_assert'ed to the same size). Index space: `shape` (the output's, `rank`
/// dimensions, outermost first, `count` elements). Element k of the index space, at index
/// (i_0, ..., i_{rank-1}), is written at out_offset + sum_d i_d * out_strides[d] and reads
/// input j at in_offset[j] + sum_d i_d * in_strides[j][d] (what each kind does with that
/// element is the kind's, below).
struct GenericParams {
  int64_t count = 0;
  int32_t rank = 0;
  int32_t inputs = 0;
  int64_t shape[kGenericMaxRank] = {};
  int64_t out_offset = 0;
  int64_t out_strides[kGenericMaxRank] = {};
  int64_t in_offset[kGenericMaxInputs] = {};
  int64_t in_strides[kGenericMaxInputs][kGenericMaxRank] = {};
  int64_t extra[kGenericExtra] = {};
};

/// Where a tensor's elements lie for one kernel: an element offset from the pointer passed
/// and an element stride per dimension of the kernel's index space (0: broadcast).
struct StridedRef {
  int64_t offset = 0;
  std::vector<int64_t> strides;
};

/// One generic kernel, ready to launch: its source (entry, text, grid) and its parameter. The
/// source includes "tessera/common.cuh": compile it with BuildOptions::headers =
/// device_headers(), as every family's. Launch with args {&in0, &in1, &in2, &in3, &out,
/// &params} (each a pointer to the value).
struct GenericKernel {
  KernelSource source;
  GenericParams params;
  std::string label;  ///< what it does, for reports ("copy f16->f16 [1,64,56,56]")
};

/// out[idx] = convert(in[idx]) over `shape` (rank 0..8; rank 0 is one element). Converting
/// floats to integers truncates toward zero (NaN gives 0); to u8 (bool) gives x != 0.
GenericKernel strided_copy(StoreType in, StoreType out, const std::vector<int64_t>& shape,
                           const StridedRef& src, const StridedRef& dst);

/// ONNX Gather along one axis. The index space is the output's shape; `data` gives the
/// element strides of data's dimensions other than the gathered one over that space (0 on the
/// dimensions the indices occupy) and `indices` those of the int64 indices (non-zero only on
/// their dimensions). Each index i (negative counts from the end) reads data at
/// i * axis_stride on top; an index outside [-axis_extent, axis_extent) reads nothing and
/// writes 0 (the host reference rejects it). extra[0] = axis_stride, extra[1] = axis_extent.
GenericKernel gather(StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& data,
                     const StridedRef& indices, int64_t axis_stride, int64_t axis_extent,
                     const StridedRef& out);

/// ONNX GatherND. The index space is the output's shape; `data` gives the element strides of
/// data's dimensions that are not indexed (its batch dimensions and the gathered slice's)
/// over that space, `indices` those of the int64 indices' leading dimensions (0 on the
/// slice's). Each output element reads q = indexed.size() index components at
/// `component_stride` apart and adds, per component j, index_j * indexed[j].second
/// (negative counts from indexed[j].first, the extent; any component outside the extent writes
/// 0). extra[0] = q (1..8), extra[1] = component_stride, then (extent, stride) per component.
GenericKernel gather_nd(StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& data,
                        const StridedRef& indices, int64_t component_stride,
                        const std::vector<std::pair<int64_t, int64_t>>& indexed, const StridedRef& out);

/// ONNX CumSum along dimension `axis` of the index space (the output's shape, which is the
/// input's): each output element sums the input along that axis up to its own position
/// (`exclusive`: before it; `reverse`: from the end). int64 sums in int64, floats in float.
/// extra[0] = axis, extra[1] = exclusive, extra[2] = reverse. (The index space keeps its
/// dimensions: no reordering.)
GenericKernel cumsum(StoreType type, const std::vector<int64_t>& shape, const StridedRef& in,
                     const StridedRef& out, int axis, bool exclusive, bool reverse);

/// 2-D pooling of a [N, C, H, W] tensor (any strides: NCHW or NHWC storage) into
/// [N, C, OH, OW] (any strides).
struct PoolWindow {
  bool max = true;                 ///< max, else average
  bool count_include_pad = false;  ///< average: divide by the whole window, padding included
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0;      ///< the window of output (oh, ow) starts at oh*sh - pad_top
  int64_t pad_bottom = 0, pad_right = 0;  ///< where count_include_pad's divisor stops counting
};
/// in_shape {N, C, H, W} and `in` its strides; out_shape {N, C, OH, OW} and `out` its strides.
/// Padding never wins a max; an average divides by the in-bounds taps of the window (or, with
/// count_include_pad, by those inside the padded input: ONNX's rule).
GenericKernel pool2d(StoreType type, const std::vector<int64_t>& in_shape, const StridedRef& in,
                     const std::vector<int64_t>& out_shape, const StridedRef& out, const PoolWindow& window);

/// out = expression over the inputs broadcast to `shape`. The expression is CUDA C++ over
/// float variables a, b, c, d (inputs 0..3, each loaded from its type and converted to float;
/// u8 gives 0 or 1, int64 its value) and yields a float that is stored as `out` (as
/// strided_copy converts). E.g. "a + b", "erff(a)", "a != 0.f ? b : c", "(float)(a < b)".
GenericKernel map(const std::string& expression, const std::vector<StoreType>& inputs, StoreType out,
                  const std::vector<int64_t>& shape, const std::vector<StridedRef>& refs,
                  const StridedRef& dst);

/// Reductions of ONNX's ReduceSum/Mean/Max/Min/Prod kind.
enum class ReduceOp { kSum, kMean, kMax, kMin, kProd };
/// The index space is the output's shape with the reduced dimensions kept (extent 1); `in`
/// gives the input's strides over it (the reduced dimensions' entries are ignored), and
/// `reduced` the (extent, element stride) of each reduced input dimension (at most 8). Sums
/// accumulate in float; an empty reduction gives the op's identity (0, 1, -inf, +inf).
GenericKernel reduce(ReduceOp op, StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& in,
                     const std::vector<std::pair<int64_t, int64_t>>& reduced, const StridedRef& out);

}  // namespace tessera::kernels
