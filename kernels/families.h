// The built-in kernel families and their registration.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernel_family.h"

namespace tessera::kernels {

/// Registers every built-in family (explicitly: no static-initialisation registration).
void register_builtin_families(FamilyRegistry& registry);

/// Elementwise chains: grid-stride loop, `vec` elements per load, `items` loads in flight.
std::unique_ptr<KernelFamily> make_elementwise_family();
/// Softmax, layernorm and row reductions over the last axis.
std::unique_ptr<KernelFamily> make_rows_family();
/// Tensor-core GEMM (mma.sync, cp.async pipeline) for f16/bf16 matmul and batch_matmul.
std::unique_ptr<KernelFamily> make_gemm_tc_family();
/// Hopper GEMM (sm_90a: wgmma, TMA ring, warp-specialised persistent blocks) for the same
/// workloads (registered ahead of gemm_tc; validate() refuses GPUs other than sm_90).
std::unique_ptr<KernelFamily> make_gemm_wgmma_family();
/// Skinny GEMM (M <= 64, f16/bf16): warps stream B from global memory into mma.sync fragments,
/// split-K across a cluster's blocks (sm_90) reduced in distributed shared memory.
std::unique_ptr<KernelFamily> make_gemm_skinny_family();

/// Hopper implicit-GEMM convolution (sm_90a: gemm_wgmma's kernel with im2col TMA loads,
/// block-diagonal tiles for grouped convolutions, a gathering producer where TMA cannot address
/// the input) for NHWC f16/bf16 conv2d (registered ahead of conv_tc).
std::unique_ptr<KernelFamily> make_conv_wgmma_family();

/// The parts of the Hopper wgmma kernel that gemm_wgmma and conv_wgmma share
/// (kernels/family_gemm_wgmma.cc). Knobs: block_m/n/k, stages, consumers, group_m, tma_store,
/// pingpong, cluster_m, split_k, blocks_per_sm.
std::vector<KnobDomain> wgmma_space();
/// A wgmma schedule's blocks per SM (1 for records from before the knob).
int64_t wgmma_blocks_per_sm(const Schedule& s);
/// The tile, pipeline and resource rules of a wgmma schedule for the GEMM `gemm` (a matmul, or
/// a convolution's GEMM view) whose reduction takes `k_steps` steps; `k_major_b`: B's tile is
/// K-major (rows of block_k). nullopt if it can run on `hw`, else why not.
std::optional<std::string> check_wgmma(const Schedule& s, const Workload& gemm, int64_t k_steps, const HardwareSpec& hw,
                                       bool k_major_b);
/// Source and launch plan of gemm_wgmma (kernels/cuda/gemm_wgmma.cuh, included through
/// `header`) on the GEMM `gemm` with the operand loads `loads` (a type from the header or
/// `prelude`), as `entry(A, B, <epilogue params>, C[, W], map_a, map_b[, map_c[, map_r]])` with
/// `maps` the tensor maps of A and B (none: both are gathered, and the kernel takes no map_a,
/// map_b; one: B's, A is gathered). The output's TMA-store map (none where copies_out), the residual's, split-K's
/// reduction and its workspace W follow from the schedule; `workspace`: the kernel takes W
/// anyway (the caller sizes it, e.g. for operands a kernel before it prepares there);
/// `a_pointer`: the expression the loads get as A (the kernel's parameter A by default); `c_layout`:
/// where C lies when not dense (its stores, TMA map and split-K reduction follow it).
KernelSource emit_wgmma(const Workload& gemm, const Schedule& s, const std::string& entry, const std::string& header,
                        const std::string& comment, const std::string& prelude, const std::string& loads,
                        std::vector<TensorMapSpec> maps, bool workspace = false, const std::string& a_pointer = "A",
                        const std::optional<OperandStrides>& c_layout = std::nullopt);
/// Whether gemm_wgmma's tma_store copies C out through the warpgroup rather than by TMA: C
/// dense (no `c_layout`) with rows that are not 16-byte aligned (an odd n, as attention's
/// [197, 197] scores), which no tensor map can address.
bool copies_out(const Workload& gemm, const std::optional<OperandStrides>& c_layout);
/// The analytic model's plan of a wgmma schedule over `gemm` (its k axis: the reduction as the
/// kernel runs it, padding included).
TilePlan wgmma_plan(const Workload& gemm, const Schedule& s);

/// kernels/cuda/*.cuh as (include name "tessera/<file>", text), for the Builder's headers.
std::vector<std::pair<std::string, std::string>> device_headers();

/// Every schedule of the family's space for `w` (the cartesian product of its knob domains).
std::vector<Schedule> enumerate_space(const KernelFamily& family, const Workload& w, const HardwareSpec& hw);

/// SIMT GEMM on the CUDA cores for f32 matmul and batch_matmul (any transposes).
std::unique_ptr<KernelFamily> make_gemm_simt_family();

/// f32 matmul and batch_matmul allowing tf32, on tf32 tensor cores.
std::unique_ptr<KernelFamily> make_gemm_tf32_family();
/// NHWC f16/bf16 conv2d (one group) as an implicit GEMM on the tensor-core GEMM.
std::unique_ptr<KernelFamily> make_conv_tc_family();
/// Direct convolution on the CUDA cores for any conv2d (the depthwise family and fallback).
std::unique_ptr<KernelFamily> make_conv_direct_family();

/// Device code of a matmul's epilogue: the kernel parameters after A and B (in the
/// workload's epilogue order), and a `struct Epilogue` whose operator()(v, batch, row, col)
/// applies the steps; `init` initialises it from those parameters. For stores of column
/// pairs the struct also has `Cols cols(col)` (the per-column values of columns col and
/// col + 1, the bias, loaded once per thread and tile rather than per row) and
/// `apply(v, cols, i, batch, row, col + i)`; `kResidual` says whether a residual is added, and
/// `apply_staged(v, cols, i, res)` is apply() with the residual's value read by the caller
/// (gemm_wgmma's TMA-store epilogue copies the residual tile into its staging tile).
struct EpilogueCode {
  std::string params;  ///< e.g. "const Out* __restrict__ bias, "
  std::string type;    ///< the struct definition
  std::string init;    ///< e.g. "bias"
};
EpilogueCode matmul_epilogue_code(const Workload& w);
/// `v` as a CUDA float literal with every digit a float holds ("1.250000000e-01f").
std::string float_literal(double v);

/// Split-K's second kernel for a matmul of `w`, `<entry>_reduce(A, B, <epilogue params>, C,
/// W)`: adds the `split` slices' f32 partials of W in a fixed order and applies the epilogue
/// (gemm::splitk_reduce, kernels/cuda/gemm_tc.cuh).
/// `out_at`: the type that places C (gemm::DenseOut when empty).
std::string splitk_reduce_source(const std::string& entry, const Workload& w, int64_t split, const std::string& out_at = "");
/// Appends that kernel's launch to `out` and sizes its workspace (split x batch x M x N f32).
void add_splitk_reduce(KernelSource& out, const Workload& w, int64_t split);

/// Storage type of a dtype in device code: "float", "tessera::F16", "tessera::BF16".
std::string device_type(DType t);

/// The lines every emitted source starts with: "// <comment>", the device header
/// "tessera/<header>", `using namespace tessera;` and the In/Out storage types of `w`.
std::string source_head(const std::string& comment, const std::string& header, const Workload& w);

/// Launch geometry of a tiled GEMM: one block of `threads` per bm x bn output tile along x,
/// and batch x `layers` along z (split-K slices are layers).
LaunchGeometry gemm_launch(const MatmulShape& m, int64_t bm, int64_t bn, int64_t threads, int64_t smem_bytes,
                           int64_t layers = 1);

/// A TilePlan for `modeled` whose blocks cover everything (block = step = each axis's extent);
/// families narrow it with set_tile().
TilePlan whole_plan(const Workload& modeled);
/// Sets the block (and step) extent of the axis called `axis` of plan.modeled.expr(); an axis
/// the expression lacks is ignored. A step of 0 means "as the block". The block may exceed
/// the axis (a padded edge tile still does its full work).
void set_tile(TilePlan& plan, std::string_view axis, int64_t block, int64_t step = 0);
/// The GEMM an implicit-GEMM convolution runs: [N*P*Q pixels, reduction] x [K filters,
/// reduction]^T (B K-major), with the convolution's dtypes and epilogue; `reduction` is the
/// k extent the kernel walks (R*S*C, or more with padding).
Workload conv_gemm_view(const Workload& conv, int64_t reduction);
/// The plan of a warp-tiled tensor-core GEMM (gemm_tc, gemm_tf32, conv_tc) on `gemm`, a
/// matmul or batch_matmul.
TilePlan tensor_core_gemm_plan(const Workload& gemm, const Schedule& s, InstrKind instr, int64_t element_bytes);

}  // namespace tessera::kernels
