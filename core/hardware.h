// What a GPU can do (HardwareSpec, from configs/gpus/*.json refined by the device) and which
// GPU and software stack a measurement was taken on (Target, the key of every record).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"

namespace tessera {

/// Instruction classes with their own peak rate.
enum class InstrKind {
  kTensorF16,   ///< f16/bf16 tensor-core MMA with f32 accumulate
  kTensorTF32,  ///< tf32 tensor-core MMA
  kTensorF8,    ///< fp8 tensor-core MMA
  kFmaF32,      ///< f32 FMA on the CUDA cores
  kFmaF64,      ///< f64 FMA
};

/// "tensor_f16", "tensor_tf32", "tensor_f8", "fma_f32", "fma_f64" (the JSON keys).
std::string_view instr_kind_name(InstrKind k);

/// The analytic model's terms for GEMM plans whose tensor cores read both operands from
/// shared memory asynchronously (wgmma; TilePlan::async_mma). They describe how such kernels
/// behave on the GPU, not the GPU's datasheet, so they are fitted to measured records
/// (`tessera model calibrate`, costmodel/calibrate.h); a spec without them gets the defaults.
struct AsyncMmaTerms {
  double efficiency = 0.8;       ///< share of the tensor peak the MMAs sustain
  double overlap = 0.84;         ///< share of the non-bounding terms (smem, L2, DRAM) the pipeline hides
  double store_cycles = 0;       ///< SM cycles per output element of a tile's epilogue from registers
  double op_cycles = 0;          ///< SM cycles per output element and epilogue step (bias, relu, ...)
  double tma_store_share = 1;    ///< an epilogue staged for TMA stores costs this share of the above
  double turn_hidden = 0;        ///< share of the epilogue hidden when the consumers take tiles in turn
  double multicast_saving = 1;   ///< share of a cluster multicast's L2 saving that shows
  double cluster_cost = 0;       ///< share of the kernel's time a cluster of blocks adds (their coupling)
  double load_latency_us = 0;    ///< a slot's load latency, hidden by the stages - 1 slots ahead [us]
  std::string fitted_on;         ///< what they were fitted to (empty: the defaults)

  Json to_json() const;
  /// Parses the object of a spec's "async_mma_terms"; a missing field keeps its default.
  static AsyncMmaTerms from_json(const Json& j, std::string_view what);
};

/// Capabilities of one GPU model. Units are in the field names.
struct HardwareSpec {
  std::string name;                      ///< spec id, e.g. "h100_sxm" (the file's base name)
  std::string gpu_name;                  ///< marketing name, e.g. "NVIDIA H100 SXM5 80GB"
  std::vector<std::string> device_names; ///< names a device reports for this spec (exact match)
  int cc_major = 0, cc_minor = 0;        ///< compute capability
  int sm_count = 0;                      ///< streaming multiprocessors
  double sm_clock_mhz = 0;               ///< clock the peak rates assume [MHz]
  double dram_bandwidth_gbps = 0;        ///< DRAM bandwidth [GB/s, 1e9 bytes]
  int64_t dram_bytes = 0;                ///< DRAM capacity [bytes]
  int64_t l2_bytes = 0;                  ///< L2 cache [bytes]
  int64_t smem_per_sm_bytes = 0;         ///< shared memory per SM [bytes]
  int64_t smem_per_block_bytes = 0;      ///< opt-in shared memory per block [bytes]
  int registers_per_sm = 0;              ///< 32-bit registers per SM
  int registers_per_block = 0;           ///< 32-bit registers per block
  int max_registers_per_thread = 0;
  int max_threads_per_sm = 0;
  int max_threads_per_block = 0;
  int max_blocks_per_sm = 0;
  int warp_size = 32;
  std::map<InstrKind, double> peak_tflops;  ///< dense peak per instruction kind [TFLOP/s]
  AsyncMmaTerms async_mma;               ///< fitted terms of the analytic model (wgmma plans)
  /// Share of the tensor peak Tessera's mma.sync kernels (gemm_tc, conv_tc, gemm_tf32) sustain:
  /// the analytic model's compute term for them (a kernel figure, not the datasheet's).
  double mma_sync_efficiency = 0.65;
  std::string source;                    ///< where the figures come from
  std::string refined_from;              ///< set when refined by a device: what was changed

  /// "sm_90"-style architecture name (sm_90a is chosen by the builder, not here).
  std::string arch() const;
  /// Peak of `k` [TFLOP/s], or nullopt if this GPU has no such instructions.
  std::optional<double> peak(InstrKind k) const;

  /// Parses a spec object; a missing or ill-typed field is a UserError naming `what`.
  static HardwareSpec from_json(const Json& j, std::string_view what);
  Json to_json() const;
};

/// What a present device reports (filled by measure/, used to refine a spec).
struct DeviceProperties {
  std::string name;                 ///< e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  double sm_clock_mhz = 0;          ///< peak SM clock [MHz]
  double dram_bandwidth_gbps = 0;   ///< from memory clock and bus width, 0 if unknown [GB/s]
  int64_t dram_bytes = 0;
  int64_t l2_bytes = 0;
  int64_t smem_per_sm_bytes = 0;
  int64_t smem_per_block_bytes = 0;  ///< opt-in maximum
  int registers_per_sm = 0;
  int registers_per_block = 0;
  int max_threads_per_sm = 0;
  int max_threads_per_block = 0;
  int max_blocks_per_sm = 0;
  int warp_size = 32;
};

/// The known GPU specs: those embedded from configs/gpus/ at build time.
const std::vector<HardwareSpec>& builtin_specs();

/// A spec by name ("h100_sxm") or, if `name_or_path` ends in ".json", loaded from that file.
/// An unknown name is a UserError listing the known ones.
HardwareSpec find_spec(std::string_view name_or_path);

/// The spec for a present device: the builtin one whose device_names holds props.name, or
/// else the builtin of the same compute capability with the most SMs, with its peaks scaled
/// by SMs x clock; in both cases resources come from the device and refined_from says so.
/// nullopt if no builtin spec shares the device's compute capability.
std::optional<HardwareSpec> spec_for_device(const DeviceProperties& props);

/// The GPU and software a record was measured (or ranked) for.
struct Target {
  std::string gpu_name;         ///< device name, or the spec's gpu_name for a model-only target
  std::string spec_name;        ///< HardwareSpec::name used for models
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  std::string driver_version;   ///< e.g. "13.0"; "none" for a model-only target
  std::string runtime_version;  ///< CUDA runtime linked into tessera; "none" without CUDA
  std::string toolkit_version;  ///< CUDA toolkit (NVRTC) that compiles kernels; "none" without CUDA

  /// "sm_90".
  std::string arch() const;
  /// One line that identifies the target in the database, e.g.
  /// "NVIDIA H100 80GB HBM3|sm_90|132 SMs|driver 13.0|runtime 13.0|toolkit 13.0".
  std::string fingerprint() const;
  /// A device was present (driver_version != "none").
  bool is_device() const { return driver_version != "none"; }

  /// A model-only target for a known spec (no device; driver "none").
  static Target for_spec(const HardwareSpec& spec, std::string toolkit_version);

  static Target from_json(const Json& j, std::string_view what);
  Json to_json() const;
  bool operator==(const Target&) const = default;
};

}  // namespace tessera
