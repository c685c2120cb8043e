// KernelFamily: a parameterised kernel template. The search asks a family for its knob
// domains, which points are valid on a GPU, and the CUDA source of a chosen point. Families
// are registered explicitly in a FamilyRegistry (no static-initialisation tricks).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/hardware.h"
#include "core/schedule.h"
#include "core/workload.h"

namespace tessera::kernels {

/// The values one knob may take, in the order the search should try them.
struct KnobDomain {
  std::string name;             ///< knob name, as in Schedule::knobs
  std::vector<int64_t> values;  ///< allowed values
  /// A knob added after schedules were recorded without it: the value those schedules have
  /// (the family reads a missing knob as this); nullopt: every schedule must have the knob.
  std::optional<int64_t> absent = std::nullopt;
};

/// Grid, block and shared memory of one kernel launch.
struct LaunchGeometry {
  int64_t grid[3] = {1, 1, 1};   ///< blocks per grid dimension
  int64_t block[3] = {1, 1, 1};  ///< threads per block dimension
  int64_t dynamic_smem_bytes = 0;
  /// A persistent kernel: grid[0] counts work tiles, and the launcher starts at most
  /// `blocks_per_sm` blocks per multiprocessor of the device (grid[0] if fewer), which loop over
  /// the tiles.
  bool persistent = false;
  int64_t blocks_per_sm = 1;
  /// Blocks per thread-block cluster along x, as the kernel declares with __cluster_dims__
  /// (grid[0] is a multiple). A persistent launch then starts at most as many clusters as the
  /// device can hold at once.
  int64_t cluster = 1;
};

/// A TMA tensor map the launcher builds (cuTensorMapEncodeTiled, or cuTensorMapEncodeIm2col
/// when it has corners) over one of the plan's tensors and passes by value after the other
/// arguments, in order (a kernel declares it as `const __grid_constant__ tessera::TensorMap`).
/// Dimensions run innermost first.
struct TensorMapSpec {
  TensorMapSpec() = default;
  /// A tiled map.
  TensorMapSpec(int tensor_index, DType type, std::vector<int64_t> extents, std::vector<int64_t> strides,
                std::vector<int64_t> box_extents, int swizzle)
      : tensor(tensor_index), dtype(type), dims(std::move(extents)), strides_bytes(std::move(strides)),
        box(std::move(box_extents)), swizzle_bytes(swizzle) {}

  /// Which argument the map is over: a tensor (inputs, then the output), or the number of
  /// tensors for the plan's workspace, which follows them.
  int tensor = 0;
  int64_t offset_bytes = 0;            ///< where the map's base lies in that argument (multiple of 16)
  DType dtype = DType::kF16;           ///< element type (f16, bf16 or f32)
  std::vector<int64_t> dims;           ///< extent per dimension, innermost first (rank 1..5)
  std::vector<int64_t> strides_bytes;  ///< byte stride of dimensions 1..rank-1 (multiples of 16)
  /// Box extent per dimension copied per load (each <= 256); an im2col map's is {channels per
  /// pixel, pixels per column}.
  std::vector<int64_t> box;
  int swizzle_bytes = 0;               ///< shared-memory swizzle span: 0 (none), 32, 64 or 128
  /// Im2col maps (over an NHWC tensor, dims {C, W, H, N}): the bounding box of the first pixels
  /// of the windows a load walks, per spatial dimension innermost first (W, H), from
  /// lower_corner to the tensor's last pixel plus upper_corner. Empty for a tiled map.
  std::vector<int64_t> lower_corner, upper_corner;
  std::vector<int64_t> element_strides;  ///< traversal stride per dimension (empty: all 1)

  bool im2col() const { return !lower_corner.empty(); }
};

/// One kernel of a launch plan: an entry of the source and its geometry.
struct KernelLaunch {
  std::string entry;
  LaunchGeometry geometry;
};

/// Deterministic CUDA source for one (workload, schedule) and how to launch it: the kernels
/// in `before`, the main kernel `entry`, then the kernels in `then` (same source, same stream,
/// in order), e.g. a convolution's operands padded into the workspace before it, or the
/// reduction of a split-K GEMM after it. Every kernel of the plan takes the same arguments: the
/// workload's tensors (inputs, then the output) and, when workspace_bytes > 0, a pointer to
/// that much scratch global memory whose contents are undefined at the start, then the
/// tensor maps of `tensor_maps`, if any.
struct KernelSource {
  KernelSource() = default;
  KernelSource(std::string entry_name, std::string text, LaunchGeometry geometry = {})
      : entry(std::move(entry_name)), source(std::move(text)), launch(geometry) {}

  std::string entry;    ///< name of the main __global__ function (its resources are reported)
  std::string source;   ///< complete CUDA C++ translation unit
  LaunchGeometry launch;            ///< geometry of `entry`
  std::vector<KernelLaunch> before; ///< kernels launched before `entry`, in order
  std::vector<KernelLaunch> then;   ///< kernels launched after `entry`, in order
  int64_t workspace_bytes = 0;      ///< scratch memory passed after the tensors when > 0
  std::vector<TensorMapSpec> tensor_maps;  ///< passed after the tensors and the workspace
  /// Uses sm_90a's arch-specific instructions (wgmma, setmaxnreg): it runs on compute
  /// capability 9.0 only, from code compiled for sm_90a (an export's launcher checks the GPU).
  bool sm90a = false;

  /// The whole plan: `before`, `entry`, then `then`.
  std::vector<KernelLaunch> plan() const;
};

/// A matmul operand (A or B, or its output C) that lies strided rather than dense, for a family
/// that reads (writes) it through a tensor map and so can take it as it lies (attention's query
/// heads inside the projection's output, its context written straight into [tokens, heads x
/// size], say): the element strides of its rows and of its batch, the batch in
/// two levels where one stride cannot step through it (batch index = outer * inner_count +
/// inner: batch x heads). Its innermost dimension (K for A; K, or N when B is [K, N]) is
/// contiguous, as in the dense operand.
struct OperandStrides {
  int64_t row = 0;          ///< between rows
  int64_t inner = 0;        ///< between batches of the inner level
  int64_t inner_count = 0;  ///< batches in the inner level (the workload's batch: one level)
  int64_t outer = 0;        ///< between groups of inner_count batches (two levels only)
  bool operator==(const OperandStrides&) const = default;
};
/// A matmul's A, B and output C, each strided (OperandStrides; for C, its N contiguous) or
/// dense (nullopt).
using OperandLayouts = std::array<std::optional<OperandStrides>, 3>;
inline bool any_strided(const OperandLayouts& l) { return l[0] || l[1] || l[2]; }

/// How a kernel divides its work, for the analytic cost model: per axis of `modeled.expr()`
/// the extent one block covers and the extent staged per pipeline step, plus the block's
/// resources and pipelining. Families describe their schedules with it; the model reads
/// traffic at each memory level off the TensorExpr's footprints.
struct TilePlan {
  Workload modeled;                 ///< the workload whose expr() axes these follow (a conv's GEMM view)
  std::vector<int64_t> block;       ///< per axis: extent one block computes (may exceed the axis: padded work)
  std::vector<int64_t> step;        ///< per axis: extent staged per pipeline step (else as `block`)
  int64_t threads = 32;             ///< per block
  int64_t warps_m = 0, warps_n = 0; ///< warp grid of a tensor-core GEMM block (0: not a warp-tiled GEMM)
  int64_t stages = 1;               ///< shared-memory pipeline depth (1: loads go straight to registers)
  bool register_pipeline = false;   ///< next step's fragments load while the current ones compute
  /// The tensor cores read both operands from shared memory (wgmma): no fragment loads share
  /// the issue slots; warps_m then counts the warpgroups issuing MMAs, each reading B once.
  bool async_mma = false;
  bool smem_staged = false;         ///< inputs pass through shared memory on their way to registers
  int64_t smem_bytes = 0;           ///< dynamic + static shared memory per block [bytes]
  int64_t registers = 32;           ///< per thread (estimate)
  /// A persistent kernel's blocks per SM (its launch starts no more, whatever else would fit);
  /// 0: one block per tile, as many resident as fit.
  int64_t persistent_blocks = 0;
  int64_t split = 1;                ///< slices of the reduction axes; a second kernel adds them
  int64_t group_m = 1;              ///< block rasterisation: block-rows that share B tiles in L2
  /// Blocks of a cluster (adjacent along m) that share the loads of the inputs not indexed by
  /// the m axis (B) by TMA multicast: L2 delivers those bytes once per cluster.
  int64_t multicast = 1;
  /// Async-MMA plans (wgmma): the epilogue goes through shared memory and TMA stores; the
  /// consumers take whole tiles in turn, so one's epilogue overlaps the other's MMAs.
  bool async_store = false;
  /// Stores from registers one element at a time (an odd n: C's rows are not 4-byte aligned),
  /// twice the instructions of the pairs the store cycles were fitted on.
  bool element_stores = false;
  bool epilogue_turns = false;
  int64_t load_bytes = 4;           ///< bytes per global load instruction per thread
  int64_t loads_in_flight = 1;      ///< independent global loads a thread issues before using them
  double input_passes = 1;          ///< times a block reads its inputs (a two-pass row kernel: 2)
  /// A producer whose threads gather a step's tiles with ordinary loads (0: TMA copies): the
  /// elements each thread loads per pipeline step, and the round trips to L2 a step waits for
  /// (loads issued together share one; fractional where a family fits it to measurements, as
  /// the row strips do). The pipeline stages do not hide this: the producer does it in turn.
  int64_t gather_elements = 0;
  double gather_round_trips = 0;
  /// Kernels whose threads read their operands from global memory as they need them (no
  /// staging; conv_direct): the 128-byte L1 lines one block's warp-wide loads touch in all,
  /// counting a line once per load instruction that touches it (a warp whose lanes read 32
  /// different filters touches 32 lines a load). 0: not such a kernel.
  double l1_lines = 0;
  /// Per tensor of `modeled` (empty: all 1): the share of its modelled footprint that is distinct
  /// data in DRAM, where the view repeats a tensor (an implicit GEMM's A repeats each input
  /// pixel once per filter tap that reads it).
  std::vector<double> dram_share;
  /// Per tensor of `modeled` (empty: all 1): the share of a block's modelled footprint that its
  /// loads fetch from L2, where the producer loads a tile that the view repeats once (row
  /// strips: a Toeplitz A tile from one strip of the input row).
  std::vector<double> l2_share;
  /// Bytes a kernel of the plan before the main one moves through DRAM (0: none), e.g. a
  /// convolution's operands padded into the workspace.
  int64_t prepass_bytes = 0;
  InstrKind instr = InstrKind::kFmaF32;
};

/// A family of kernels for some workload kinds.
class KernelFamily {
 public:
  virtual ~KernelFamily() = default;
  /// Unique name stored in Schedule::family, e.g. "gemm_tc".
  virtual std::string_view name() const = 0;
  /// Whether this family implements `w` at all.
  virtual bool supports(const Workload& w) const = 0;
  /// Knob domains for `w` on `hw`, in Schedule knob order.
  virtual std::vector<KnobDomain> space(const Workload& w, const HardwareSpec& hw) const = 0;
  /// nullopt if the schedule can run on `hw`, else the reason it cannot.
  virtual std::optional<std::string> validate(const Schedule& s, const Workload& w,
                                              const HardwareSpec& hw) const = 0;
  /// Source and launch geometry; only called on schedules validate() accepts.
  virtual KernelSource emit(const Workload& w, const Schedule& s) const = 0;
  /// Whether emit_strided() can read (and write) `w`'s operands laid out as `layouts` says, with
  /// every schedule validate() accepts for `w`.
  virtual bool reads_strided(const Workload&, const OperandLayouts&) const { return false; }
  /// emit() with A, B and C laid out as `layouts` says; only where reads_strided() holds.
  virtual KernelSource emit_strided(const Workload& w, const Schedule& s, const OperandLayouts& layouts) const;
  /// How a schedule validate() accepts divides the work (for the analytic model).
  virtual TilePlan tile_plan(const Workload& w, const Schedule& s) const = 0;
  /// Which of the family's kinds of code `s` runs where a knob picks between them (conv_wgmma:
  /// how it loads fewer than 8 channels), "" where there is one: construction keeps the best of
  /// each, as of each family, the model being least sure between different code.
  virtual std::string variant(const Schedule&) const { return ""; }
};

/// Whether `s` has every knob of `f`'s space for `w` that has no `absent` value (a stored record
/// of an older kernel may lack one; validate(), emit() and tile_plan() assume them all).
bool has_every_knob(const KernelFamily& f, const Schedule& s, const Workload& w, const HardwareSpec& hw);

/// `s` with its knobs in the order of `f`'s space for `w` (a schedule's key and the
/// measurement expect it; a user's JSON object has no order of its own). A knob missing or
/// unknown is a UserError.
Schedule in_family_order(const KernelFamily& f, const Schedule& s, const Workload& w, const HardwareSpec& hw);

/// The families known to a process, by name.
class FamilyRegistry {
 public:
  /// Adds a family; a second family of the same name is an internal error.
  void add(std::unique_ptr<KernelFamily> family);
  /// The family called `name`, or nullptr.
  const KernelFamily* find(std::string_view name) const;
  /// Families that support `w`, in registration order.
  std::vector<const KernelFamily*> for_workload(const Workload& w) const;
  /// All names, in registration order.
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<KernelFamily>> families_;
};

}  // namespace tessera::kernels
