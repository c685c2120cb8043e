// CPU reference: every workload kind evaluated on the host in double precision from inputs
// that are exactly representable in the workload's dtypes. It says whether a kernel computed
// the right thing, and later verifies graph rewrites.
//
// Conventions the GPU kernels follow too: GELU is the exact erf form
// 0.5 * x * (1 + erf(x / sqrt(2))); layernorm uses the population variance and
// the workload's epsilon; epilogue steps apply in the order the workload lists them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/workload.h"

namespace tessera::kernels {

/// A dense row-major tensor on the host.
struct HostTensor {
  std::vector<int64_t> shape;  ///< extent per dimension, outermost first
  std::vector<float> data;     ///< product(shape) values, row-major
  int64_t elements() const;
};

/// `v` rounded to the nearest value of `dtype` (round to nearest even; f32: unchanged).
float round_to(DType dtype, float v);

/// IEEE half bits of `v`, rounded to nearest even (overflow gives infinity, NaN stays NaN).
uint16_t f16_bits(float v);
/// The value of IEEE half bits `h` (exact in f32).
float f16_value(uint16_t h);
/// bfloat16 bits of `v`, rounded to nearest even (NaN stays NaN).
uint16_t bf16_bits(float v);
/// The value of bfloat16 bits `b` (exact in f32).
float bf16_value(uint16_t b);

/// `t`'s values in `dtype`'s storage format (little-endian bytes, round to nearest even).
std::vector<uint8_t> encode(const HostTensor& t, DType dtype);
/// A tensor of `shape` from `dtype` storage bytes (as written by a kernel).
HostTensor decode(std::span<const uint8_t> bytes, std::vector<int64_t> shape, DType dtype);

/// Seeded random inputs for `w`: one per input tensor of w.expr(), in that order, with
/// values in [-1, -1/64] u [1/64, 1] (never zero) exactly representable in the tensor's dtype
/// (and, for the operands of a tf32-allowing f32 contraction, in tf32).
std::vector<HostTensor> random_inputs(const Workload& w, uint64_t seed);

/// The output of `w` for `inputs` (in w.expr() order), computed in double and returned as
/// float. Shapes must match w.expr(); a mismatch is an internal error.
HostTensor reference(const Workload& w, std::span<const HostTensor> inputs);

/// A matmul's output from its accumulated products (f32, [batch, m, n] row-major, e.g. from
/// cuBLAS) and its inputs (w.expr() order): the epilogue applied on the host.
HostTensor matmul_epilogue_reference(const Workload& w, const HostTensor& accumulated,
                                     std::span<const HostTensor> inputs);

/// Layernorm over the last axis with an explicit epsilon (for outside conformance data).
HostTensor layernorm_reference(const HostTensor& x, const HostTensor& gamma, const HostTensor& beta, double epsilon);

}  // namespace tessera::kernels
