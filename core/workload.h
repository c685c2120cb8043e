// Workload: one operator instance (kind, shapes, dtypes, layout, epilogue), the unit that is
// tuned and keyed in the database.
//
// Spec grammar (CLI and configs): KIND:PARAMS:DTYPE[:OPTION...], PARAMS = key=value,...,
// OPTION = key=value (several may share a section, comma-separated):
//   matmul:m=4096,n=4096,k=4096:f16[:epilogue=bias+gelu]      (ta=1 / tb=1 transpose A / B)
//   batch_matmul:b=384,m=128,n=128,k=64:f16
//   conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,stride=1,pad=1:f16
//          (stride/pad/dilation as N or HxW, groups=G, layout=nhwc|nchw; NHWC by default)
//   softmax:rows=16384,cols=4096:f16      layernorm:rows=4096,cols=768:f16
//   reduce:op=sum,rows=65536,cols=1024:f32 (op = sum|max|mean over the last axis)
//   elementwise:ops=add+relu,n=1048576:f16 (a chain; each binary op reads one more input)
// Options: out=DTYPE (output type, default the input type), tf32=1 (f32 matmul/conv on
// tensor cores), epilogue=OP+OP (matmul, batch_matmul, conv2d: bias, relu, gelu, residual).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/json.h"
#include "core/tensor_expr.h"

namespace tessera {

/// Operator kinds Tessera knows.
enum class OpKind { kMatmul, kBatchMatmul, kConv2d, kSoftmax, kLayernorm, kReduce, kElementwise };

/// Operations fused after a matmul or convolution, applied in order to each output element.
enum class EpilogueOp { kBias, kRelu, kGelu, kResidual };

/// Row reductions over the last axis.
enum class ReduceOp { kSum, kMax, kMean };

/// Steps of an elementwise chain; binary steps combine the running value with a new input.
enum class EltwiseOp { kAdd, kSub, kMul, kDiv, kMax, kMin, kRelu, kGelu, kSigmoid, kTanh, kExp, kNeg, kAbs };

/// Activation tensor layout of conv2d.
enum class Layout { kNHWC, kNCHW };

/// Layernorm's epsilon when a spec gives none (ONNX LayerNormalization's default).
inline constexpr double kDefaultLayernormEpsilon = 1e-5;

/// C[b, m, n] = A[b, m, k] * B[b, k, n] (batch = 1 for plain matmul).
struct MatmulShape {
  int64_t batch = 1;     ///< number of independent products (batch_matmul's b)
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false;  ///< A stored as [k, m]
  bool trans_b = false;  ///< B stored as [n, k]
  /// C = epilogue(alpha * A B): a scale on the product before the epilogue's steps (attention's
  /// 1 / sqrt(d) folded into its matmul); 1 is left out of the spec, any other kept as `alpha=`.
  double alpha = 1.0;
  bool operator==(const MatmulShape&) const = default;
};

/// 2-D convolution; weights are KRSC for NHWC and KCRS for NCHW, C and K per group.
struct Conv2dShape {
  int64_t n = 0, h = 0, w = 0, c = 0;  ///< batch, input height, width, channels
  int64_t k = 0, r = 0, s = 0;         ///< output channels, filter height, width
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;        ///< zero padding on each side
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;                  ///< divides c and k; groups == c is depthwise
  Layout layout = Layout::kNHWC;
  int64_t out_h() const;               ///< output height p
  int64_t out_w() const;               ///< output width q
  bool operator==(const Conv2dShape&) const = default;
};

/// Softmax or layernorm over the last axis of a [rows, cols] tensor.
struct RowShape {
  int64_t rows = 0, cols = 0;
  /// Layernorm: y = (x - mean) / sqrt(var + epsilon) * gamma + beta. ONNX's default; models
  /// differ (BERT 1e-12, ViT 1e-6), and the spec keeps any other as `eps=`.
  double epsilon = kDefaultLayernormEpsilon;
  bool operator==(const RowShape&) const = default;
};

/// Y[rows] = reduce_op over cols of X[rows, cols].
struct ReduceShape {
  ReduceOp op = ReduceOp::kSum;
  int64_t rows = 0, cols = 0;
  bool operator==(const ReduceShape&) const = default;
};

/// y[i] = ops applied in order to x0[i] (binary ops also read x1[i], x2[i], ...).
struct ElementwiseShape {
  std::vector<EltwiseOp> ops;
  int64_t n = 0;  ///< elements
  bool operator==(const ElementwiseShape&) const = default;
};

/// An operator instance. Construct with parse() / from_json(), which validate everything.
struct Workload {
  OpKind kind = OpKind::kMatmul;
  DType dtype = DType::kF16;      ///< input element type
  DType out_dtype = DType::kF16;  ///< output element type
  bool allow_tf32 = false;        ///< f32 inputs may run on tensor cores as tf32
  std::vector<EpilogueOp> epilogue;
  std::variant<MatmulShape, Conv2dShape, RowShape, ReduceShape, ElementwiseShape> shape;

  /// Parses a CLI spec; a malformed one is a UserError quoting the spec and what is valid.
  static Workload parse(std::string_view spec);
  /// From a JSON spec string or object ({"kind": "matmul", "m": 4096, ..., "dtype": "f16"}).
  static Workload from_json(const Json& j);
  Json to_json() const;

  /// Canonical spec: parse(key()) == *this, and equal workloads have equal keys.
  std::string key() const;
  /// stable_hash(key()).
  uint64_t hash() const;
  /// Iteration domain and tensor accesses.
  TensorExpr expr() const;

  const MatmulShape& matmul() const;        ///< kMatmul, kBatchMatmul
  const Conv2dShape& conv2d() const;        ///< kConv2d
  const RowShape& rows() const;             ///< kSoftmax, kLayernorm
  const ReduceShape& reduce() const;        ///< kReduce
  const ElementwiseShape& elementwise() const;  ///< kElementwise

  bool operator==(const Workload&) const = default;
};

/// Whether `alpha` can scale a matmul's product: finite, non-zero and within float's range (the
/// kernels multiply by it as a float).
bool valid_alpha(double alpha);
/// A matmul's scale on its product (MatmulShape::alpha); 1 for every other kind.
double product_scale(const Workload& w);
/// `w` without its scale (alpha 1): what it costs and which schedules run it are the same.
Workload unscaled(Workload w);

/// The shortest text that reads back as exactly `v` (a spec's numbers, such as layernorm's eps).
std::string number_text(double v);
std::string_view op_kind_name(OpKind k);
/// What a measurement of kind `k` is timed beside (Measurement::vendor_us): "cuBLASLt" for
/// matmul and batch_matmul, "cuDNN" for conv2d, "copy" for the memory-bound kinds (a
/// device-to-device copy of the workload's compulsory DRAM traffic: its bandwidth limit).
std::string_view baseline_name(OpKind k);
std::string_view epilogue_op_name(EpilogueOp op);
std::string_view reduce_op_name(ReduceOp op);
std::string_view eltwise_op_name(EltwiseOp op);
/// Whether an elementwise step reads one more input.
bool eltwise_is_binary(EltwiseOp op);

}  // namespace tessera
