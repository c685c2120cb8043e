#include "costmodel/analytic.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "costmodel/roofline.h"

namespace tessera::costmodel {
namespace {

// Figures the spec files do not carry, as fractions or multiples of what they do. Those
// marked "calibrated" were set against 776 records measured on the H200 (three shapes,
// scripts/bench-tune.sh; `tessera model eval` reports the fit); the rest are hardware facts
// or first estimates.
constexpr double kFmaEfficiency = 0.8;          // CUDA-core FMA loops
constexpr double kSmemBytesPerClock = 128;      // per SM
constexpr double kL2BandwidthVsDram = 2.5;      // L2 -> SM bandwidth as a multiple of DRAM's
// DRAM round trip at the bandwidth a kernel is after, for Little's law (latency climbs under
// load well above the idle ~0.6 us); calibrated: from 0.8 to 2.0 us the H200 records'
// pairwise accuracy moves 0.892 -> 0.889, but the model's top 5 for the convolutions,
// streaming GEMMs with few k steps, goes 0.842 -> 1.000 (1x1) and 0.924 -> 0.947 (3x3).
constexpr double kMemoryLatencyUs = 2.0;
constexpr double kL2UsableFraction = 0.5;       // of L2 a wave's tiles may occupy and stay resident
constexpr double kCyclesPerWarpLoad = 16;       // issue of one warp-wide global (cp.async) load; calibrated
constexpr double kCyclesPerStep = 80;           // barrier and wait of one pipeline step of a block; calibrated
// mma.sync plans (gemm_tc, conv_tc; calibrated against the H100's batch-1 convolutions,
// configs/workloads/batch1-conv.json, 822 records): resident warps that keep an SM's four
// schedulers' tensor cores busy (two each), and the latency of a k tile's cp.async loads, which
// the tiles in flight ahead of it hide. With them, the analytic model's top-1 on those records
// went 0.466 -> 0.887 (top-5 0.847 -> 0.923), on the H100 dataset 0.822 -> 0.861, and on the
// graph benchmark's H100 records pairwise 0.33 -> 0.78 (`tessera model eval --model analytic`).
constexpr double kWarpsToFeedMma = 8;
constexpr double kCpAsyncLoadLatencyUs = 0.6;
constexpr double kFragmentOverhead = 4;         // non-MMA instructions per k-step of a warp tile, besides ldmatrix
// The fragment-issue factor HardwareSpec::mma_sync_efficiency was calibrated against (a
// constant scale of the compute term).
constexpr double kReferenceIssueFactor = 64.0 / (64.0 + 8 + kFragmentOverhead);
// A gathering producer (TilePlan::gather_elements): per round trip to L2 of a batch of loads,
// and per element loaded, converted and stored (first estimates from the RGB stem on the H100:
// about 2.9 us per step with a round trip per row).
constexpr double kGatherRoundTripUs = 0.3;
constexpr double kGatherCyclesPerElement = 8;
// Direct kernels' scattered loads (TilePlan::l1_lines): cycles per 128-byte L1 line a warp's
// load touches. Fitted on the H100's 166 conv_direct records: measured over predicted went from
// 6.3x to 1.4x on dense convolutions and 5.7x to 0.8x on grouped ones (depthwise 0.67x to
// 0.57x, RGB stems 2.3x to 0.5x).
constexpr double kCyclesPerL1Line = 0.85;
// Of the input tiles that do not stay resident in L2 across a wave, the share fetched from
// DRAM again (the rest still hits L2 through reuse within the wave); calibrated.
constexpr double kRefetchedShare = 0.25;

// Index of the axis called `name`, or -1.
int axis_named(const TensorExpr& e, std::string_view name) {
  for (size_t a = 0; a < e.axes.size(); ++a)
    if (e.axes[a].name == name) return static_cast<int>(a);
  return -1;
}

std::vector<AxisRange> ranges(const std::vector<int64_t>& extents) {
  std::vector<AxisRange> r;
  for (int64_t e : extents) r.push_back({0, e});
  return r;
}

// The share of the instruction's peak a plan reaches, `concurrent` blocks resident per SM.
double compute_efficiency(const kernels::TilePlan& p, const HardwareSpec& hw, bool tensor, double concurrent, int m_axis,
                          int n_axis) {
  double warps_per_sm = concurrent * double(p.threads) / 32;
  // The tensor pipe needs a few warps per scheduler to stay busy.
  double issue = p.async_mma ? 1.0 : std::min(1.0, 0.6 + 0.4 * warps_per_sm / 16);
  // mma.sync runs on the tensor cores of the issuing warp's scheduler: with fewer resident
  // warps than kWarpsToFeedMma, part of the SM's tensor cores idle.
  if (tensor && !p.async_mma) issue *= std::min(1.0, warps_per_sm / kWarpsToFeedMma);
  double eff = (p.async_mma ? hw.async_mma.efficiency : tensor ? hw.mma_sync_efficiency : kFmaEfficiency) * issue;
  // A warp tile's MMAs share the issue slots with the ldmatrix loads that feed them: per
  // 16-deep k step, (wtm/16)(wtn/8) MMAs against wtm/16 + wtn/16 fragment loads.
  if (tensor && !p.async_mma && p.warps_m > 0 && p.warps_n > 0) {
    if (m_axis >= 0 && n_axis >= 0) {
      double wtm = std::max(16.0, double(p.block[m_axis]) / double(p.warps_m));
      double wtn = std::max(16.0, double(p.block[n_axis]) / double(p.warps_n));
      double mma = (wtm / 16) * (wtn / 8), loads = wtm / 16 + wtn / 16;
      eff *= mma / (mma + loads + kFragmentOverhead) / kReferenceIssueFactor;
    }
  }
  return eff;
}

// The extent of the tiles a wave of `wave_blocks` blocks covers together: blocks are rastered
// over the two innermost spatial axes (m, n for GEMMs), `group_m` block-rows at a time.
std::vector<int64_t> wave_footprint(const kernels::TilePlan& p, const TensorExpr& e, double wave_blocks) {
  std::vector<int64_t> wave_extent = p.block;
  std::vector<size_t> spatial;
  for (size_t a = 0; a < e.axes.size(); ++a)
    if (e.axes[a].kind == AxisKind::kSpatial && std::ceil(double(e.axes[a].extent) / double(p.block[a])) > 1)
      spatial.push_back(a);
  double per_slice = wave_blocks / double(p.split);
  if (spatial.size() >= 2) {
    size_t am = spatial[spatial.size() - 2], an = spatial.back();
    double grid_m = std::ceil(double(e.axes[am].extent) / double(p.block[am]));
    double grid_n = std::ceil(double(e.axes[an].extent) / double(p.block[an]));
    double rows = p.group_m > 1 ? std::min(double(p.group_m), grid_m) : std::ceil(per_slice / grid_n);
    rows = std::clamp(rows, 1.0, grid_m);
    double cols = std::clamp(std::ceil(per_slice / rows), 1.0, grid_n);
    // Further spatial axes (batch) are covered one block at a time.
    double outer = std::max(1.0, per_slice / (rows * cols));
    wave_extent[am] = std::min<int64_t>(e.axes[am].extent, static_cast<int64_t>(rows) * p.block[am]);
    wave_extent[an] = std::min<int64_t>(e.axes[an].extent, static_cast<int64_t>(cols) * p.block[an]);
    if (spatial.size() >= 3) {
      size_t ab = spatial[spatial.size() - 3];
      wave_extent[ab] = std::min<int64_t>(e.axes[ab].extent, static_cast<int64_t>(std::ceil(outer)) * p.block[ab]);
    }
  } else if (spatial.size() == 1) {
    size_t a = spatial[0];
    wave_extent[a] = std::min<int64_t>(e.axes[a].extent, static_cast<int64_t>(std::ceil(per_slice)) * p.block[a]);
  }  return wave_extent;
}

// Stores from registers one element at a time (TilePlan::element_stores): twice the store
// instructions of the pairs store_cycles was fitted on. Not fitted: ViT's [384, 197, 197]
// scores measured 91.2 us on such stores (H100, batch 32) where the model said 44.8 counting
// pairs, 73.2 with this.
constexpr double kElementStoreFactor = 2.0;

// A tensor-core GEMM plan's epilogue per wave [us]: its tile's outputs stored (from registers,
// or staged for TMA stores) and its steps applied, at the spec's fitted cycles.
double epilogue_wave_us(const kernels::TilePlan& p, const HardwareSpec& hw, const TensorExpr& e,
                        const std::vector<AxisRange>& block_ranges, double concurrent) {
  const AsyncMmaTerms& t = hw.async_mma;
  double out_elements = 0;
  for (size_t i = 0; i < e.tensors.size(); ++i)
    if (e.tensors[i].role == TensorRole::kOutput) out_elements += double(e.footprint_elements(i, block_ranges));
  const double steps = p.split > 1 ? 0.0 : double(p.modeled.epilogue.size());
  const double store = p.async_store ? t.tma_store_share : p.element_stores ? kElementStoreFactor : 1.0;
  const double cycles = out_elements * (t.store_cycles * store + t.op_cycles * steps);
  return concurrent * cycles / (hw.sm_clock_mhz * 1e6) * 1e6 * (p.epilogue_turns ? 1.0 - t.turn_hidden : 1.0);
}

// What a wave moves through DRAM, and how much of the bandwidth its loads in flight can use.
struct DramWave {
  double bytes = 0;           // per wave
  double latency_factor = 1;  // share of the bandwidth the bytes in flight cover (Little's law)
};

DramWave dram_wave_of(const kernels::TilePlan& p, const HardwareSpec& hw, const TensorExpr& e,
                      const std::vector<AxisRange>& block_ranges, const std::vector<int64_t>& wave_extent,
                      double wave_blocks, double concurrent) {
  const double sms = hw.sm_count;
  // DRAM holds an input once even where the modelled view repeats it (an implicit GEMM's A):
  // its footprints count at the plan's dram_share.
  auto dram_share = [&](size_t t) { return t < p.dram_share.size() ? p.dram_share[t] : 1.0; };
  double wave_in = 0, wave_out = 0, block_in_dram = 0;
  std::vector<AxisRange> wave_ranges = ranges(wave_extent);
  for (size_t t = 0; t < e.tensors.size(); ++t) {
    double bytes = double(e.footprint_elements(t, wave_ranges)) * dtype_bytes(e.tensors[t].dtype);
    if (e.tensors[t].role == TensorRole::kInput) {
      wave_in += bytes * dram_share(t);
      block_in_dram += double(e.footprint_elements(t, block_ranges)) * dtype_bytes(e.tensors[t].dtype) * p.input_passes *
                       dram_share(t);
    } else {
      wave_out += p.split > 1 ? double(e.footprint_elements(t, wave_ranges)) * 4 : bytes;
    }
  }
  // Tiles that do not stay resident in L2 are fetched once per block instead.
  double all_blocks_in = wave_blocks * block_in_dram;
  double resident = std::clamp(double(hw.l2_bytes) * kL2UsableFraction / std::max(wave_in, 1.0), 0.0, 1.0);
  double dram_wave_bytes = wave_in + (all_blocks_in - wave_in) * (1.0 - resident) * kRefetchedShare + wave_out;
  double dram_bw = hw.dram_bandwidth_gbps * 1e9;
  // Little's law: enough bytes in flight per SM to cover the memory latency.
  double in_flight = concurrent * double(p.threads) * double(p.load_bytes) * double(p.loads_in_flight);
  double needed = dram_bw * kMemoryLatencyUs * 1e-6 / sms;
  double latency_factor = std::clamp(in_flight / needed, 0.15, 1.0);
  return {dram_wave_bytes, latency_factor};
}

// Blocks of the plan an SM holds at once (threads, registers, shared memory, the block limit).
double resident_blocks(const kernels::TilePlan& p, const HardwareSpec& hw) {
  int64_t regs = (std::max<int64_t>(p.registers, 16) + 7) / 8 * 8;
  double by_threads = std::floor(double(hw.max_threads_per_sm) / double(p.threads));
  double by_regs = std::floor(double(hw.registers_per_sm) / double(regs * p.threads));
  double by_smem = p.smem_bytes > 0 ? std::floor(double(hw.smem_per_sm_bytes) / double(p.smem_bytes + 1024)) : 1e9;
  double per_sm = std::min({by_threads, by_regs, by_smem, double(hw.max_blocks_per_sm)});
  if (p.persistent_blocks > 0) per_sm = std::min(per_sm, double(p.persistent_blocks));
  return per_sm;
}

// Whether tensor t of `e` is indexed by `axis`.
bool indexes(const TensorExpr& e, size_t t, int axis) {
  for (const AffineExpr& ix : e.tensors[t].index)
    for (const AffineTerm& term : ix.terms)
      if (term.axis == axis) return true;
  return false;
}

// Bytes a block reads from shared memory into registers: each warp its rows of the A-like
// tiles and its columns of the B-like tiles (inputs indexed by the m axis but not n are read by
// every warp column, and vice versa); without warp tiling, the staged inputs once.
double smem_bytes_read(const kernels::TilePlan& p, const TensorExpr& e, const std::vector<AxisRange>& block_ranges,
                       double in_bytes, int m_axis, int n_axis) {
  double smem_block = 0;
  if (p.warps_m > 0 && p.smem_bytes > 0) {
    for (size_t t = 0; t < e.tensors.size() && t < 2; ++t) {
      const bool uses_m = indexes(e, t, m_axis), uses_n = indexes(e, t, n_axis);
      double bytes = double(e.footprint_elements(t, block_ranges)) * dtype_bytes(e.tensors[t].dtype);
      smem_block += bytes * (uses_m && !uses_n ? double(p.warps_n) : uses_n && !uses_m ? double(p.warps_m) : 1.0);
    }
  } else if (p.smem_staged) {
    smem_block = in_bytes;
  }
  return smem_block;
}

}  // namespace

Json Estimate::to_json() const {
  return Json{{"us", us},           {"bound", bound},       {"compute_us", compute_us},
              {"smem_us", smem_us}, {"l2_us", l2_us},       {"dram_us", dram_us},
              {"dram_bytes", dram_bytes}, {"blocks", blocks}, {"blocks_per_sm", blocks_per_sm},
              {"waves", waves},     {"overlap", overlap},   {"epilogue_us", epilogue_us}, {"feasible", feasible}};
}

// A block's bytes: its inputs' footprint (`in`), what its load instructions fetch (`loaded`:
// the plan's l2_share of it), what L2 delivers (`l2_in`: inputs shared by multicast come once
// per cluster) and its output (f32 partial sums under split-K).
struct BlockBytes {
  double in = 0, loaded = 0, l2_in = 0, out = 0;
};
BlockBytes block_bytes(const kernels::TilePlan& p, const TensorExpr& e, const HardwareSpec& hw,
                       const std::vector<AxisRange>& block_ranges, int m_axis) {
  BlockBytes b;
  auto l2_share = [&](size_t t) { return t < p.l2_share.size() ? p.l2_share[t] : 1.0; };
  for (size_t t = 0; t < e.tensors.size(); ++t) {
    const double bytes = double(e.footprint_elements(t, block_ranges)) * dtype_bytes(e.tensors[t].dtype);
    if (e.tensors[t].role == TensorRole::kInput) {
      b.in += bytes * p.input_passes;
      b.loaded += bytes * p.input_passes * l2_share(t);
      // Multicast would cut these to 1 / multicast; the fitted share of that saving shows.
      const bool shared = p.multicast > 1 && m_axis >= 0 && !indexes(e, t, m_axis);
      const double saving = shared ? hw.async_mma.multicast_saving * (1.0 - 1.0 / double(p.multicast)) : 0.0;
      b.l2_in += bytes * p.input_passes * (1.0 - saving) * l2_share(t);
    } else {
      b.out += p.split > 1 ? double(e.footprint_elements(t, block_ranges)) * 4 : bytes;
    }
  }
  return b;
}

Estimate estimate(const kernels::TilePlan& p, const HardwareSpec& hw) {
  Estimate est;
  const TensorExpr e = p.modeled.expr();
  TESSERA_CHECK(p.block.size() == e.axes.size() && p.step.size() == e.axes.size(), "tile plan does not match the expression");
  const double clock_hz = hw.sm_clock_mhz * 1e6;
  const double sms = hw.sm_count;

  // Grid: spatial axes are tiled; reduction axes are split into `split` slices.
  double blocks = spatial_blocks(p) * static_cast<double>(p.split);
  est.blocks = blocks;

  // Occupancy.
  double per_sm = resident_blocks(p, hw);
  if (per_sm < 1) {
    est.feasible = false;
    est.us = std::numeric_limits<double>::infinity();
    est.bound = "infeasible";
    return est;
  }
  est.blocks_per_sm = per_sm;
  double slots = sms * per_sm;
  est.waves = std::ceil(blocks / slots);
  // Blocks one SM runs concurrently in a full wave (fewer when the grid is small).
  double concurrent = std::min(per_sm, std::ceil(blocks / sms));

  // One block's work.
  std::vector<AxisRange> block_ranges = ranges(p.block);
  double points = 1;
  for (int64_t b : p.block) points *= double(b);
  double flops_block = points * e.flops_per_point;
  const int m_axis = axis_named(e, "m"), n_axis = axis_named(e, "n");
  const BlockBytes io = block_bytes(p, e, hw, block_ranges, m_axis);
  const double in_bytes = io.in, out_bytes = io.out, l2_in_bytes = io.l2_in, loaded_bytes = io.loaded;

  // Compute at the instruction's achievable peak, shared by the SM's resident blocks.
  InstrKind instr = p.instr;
  std::optional<double> peak = hw.peak(instr);
  if (!peak) peak = hw.peak(InstrKind::kFmaF32);
  bool tensor = instr == InstrKind::kTensorF16 || instr == InstrKind::kTensorTF32 || instr == InstrKind::kTensorF8;
  double eff = compute_efficiency(p, hw, tensor, concurrent, m_axis, n_axis);
  double per_sm_flops = *peak * 1e12 / sms * eff;
  double steps_per_block = 1;
  for (size_t a = 0; a < e.axes.size(); ++a) steps_per_block *= std::ceil(double(p.block[a]) / double(p.step[a]));
  // Barriers between pipeline steps stall the block (other resident blocks fill in part).
  double sync_wave = p.stages > 1 ? steps_per_block * kCyclesPerStep / clock_hz * 1e6 : 0;
  double compute_wave = concurrent * flops_block / per_sm_flops * 1e6;

  // Shared memory -> registers: each warp reads its rows of the A-like tiles and its columns
  // of the B-like tiles; without warp tiling, each thread reads the staged tile once.
  double smem_block = smem_bytes_read(p, e, block_ranges, in_bytes, m_axis, n_axis);
  double smem_wave = concurrent * smem_block / (kSmemBytesPerClock * clock_hz) * 1e6;

  // L2 -> SM: every block loads its input footprint, one warp-wide load instruction per
  // 32 x load_bytes (narrow loads cost as many issue cycles as wide ones).
  double l2_per_sm = hw.dram_bandwidth_gbps * 1e9 * kL2BandwidthVsDram / sms;
  double warp_loads = loaded_bytes / (32.0 * double(std::max<int64_t>(p.load_bytes, 1)));
  double l2_wave = concurrent * std::max((l2_in_bytes + out_bytes) / l2_per_sm * 1e6,
                                         warp_loads * kCyclesPerWarpLoad / clock_hz * 1e6);

  // DRAM: the footprint of the tiles a wave covers together. Blocks are rastered over the
  // two innermost spatial axes (m, n for GEMMs), `group_m` block-rows at a time.
  double wave_blocks = std::min(blocks, slots);
  std::vector<int64_t> wave_extent = wave_footprint(p, e, wave_blocks);

  const DramWave dram = dram_wave_of(p, hw, e, block_ranges, wave_extent, wave_blocks, concurrent);
  const double dram_wave_bytes = dram.bytes, latency_factor = dram.latency_factor;
  const double dram_bw = hw.dram_bandwidth_gbps * 1e9;
  double dram_wave = dram_wave_bytes / (dram_bw * latency_factor) * 1e6;

  // Overlap: a pipeline of S stages hides up to (S-1)/S of the other terms; register double
  // buffering hides part of the shared-memory term as well.
  // Async-MMA plans (one producer thread keeps stages - 1 slots in flight) use the fitted
  // share instead; their depth shows in the latency factor and the pipeline fill.
  static constexpr double kStageOverlap[] = {0.3, 0.3, 0.8, 0.82, 0.84, 0.85};
  double stage_overlap = p.async_mma ? hw.async_mma.overlap : kStageOverlap[std::clamp<int64_t>(p.stages, 0, 5)];
  std::vector<std::pair<double, const char*>> terms = {
      {compute_wave, "compute"}, {smem_wave * (p.register_pipeline ? 0.6 : 1.0), "smem"}, {l2_wave, "l2"},
      {dram_wave, latency_factor < 1 ? "latency" : "dram"}};
  // Async-MMA plans: a k step waits for its slot, loaded stages - 1 steps earlier; when the
  // load latency exceeds that many steps' MMAs, the latency bounds the block.
  if (p.async_mma && hw.async_mma.load_latency_us > 0)
    terms.push_back({concurrent * steps_per_block * hw.async_mma.load_latency_us / double(std::max<int64_t>(p.stages - 1, 1)),
                     "load latency"});
  // A gathering producer fills the slots one step after the other, whatever the stages.
  if (p.gather_elements > 0)
    terms.push_back({concurrent * steps_per_block *
                         (p.gather_round_trips * kGatherRoundTripUs +
                          double(p.gather_elements) * kGatherCyclesPerElement / clock_hz * 1e6),
                     "gather"});
  // Loads that go to global memory as the threads need them, line by line.
  if (p.l1_lines > 0) terms.push_back({concurrent * p.l1_lines * kCyclesPerL1Line / clock_hz * 1e6, "l1"});
  // cp.async rings: the same wait, for the tile loaded stages - 1 steps earlier by the block's
  // own warps (resident blocks wait side by side).
  if (tensor && !p.async_mma && p.stages > 1)
    terms.push_back({steps_per_block * kCpAsyncLoadLatencyUs / double(p.stages - 1), "load latency"});
  auto top = std::max_element(terms.begin(), terms.end());
  double rest = 0;
  for (auto& t : terms)
    if (&t != &*top) rest += t.first;
  // Barrier stalls add to whichever term bounds the wave.
  double wave_us = top->first + (1 - stage_overlap) * rest * 0.5 + sync_wave;
  // Tensor-core GEMM plans: the epilogue of a tile (from registers, or staged for TMA stores)
  // keeps the MMA warps off the tensor cores, unless the other consumer computes meanwhile
  // (turns). With split-K the slices store f32 partials and the second kernel applies the
  // epilogue. The cycles are the spec's fitted async-MMA ones; mma.sync plans store from
  // registers alike (charging them too made the model rank mma.sync against wgmma plans better:
  // pairwise across the families 0.81 -> 0.83 on the H100 convolutions, 0.91 -> 0.94 on the
  // H200 GEMMs of tests/data).
  double epilogue_wave = 0;
  if (p.async_mma || (tensor && p.warps_m > 0)) {
    epilogue_wave = epilogue_wave_us(p, hw, e, block_ranges, concurrent);
    wave_us += epilogue_wave;
  }
  // Pipeline fill: the first S-1 steps of a block's reduction are not overlapped. An async-MMA
  // block's ring fills once for all the steps of the blocks resident on an SM (persistent, its
  // producer runs on into the next tile), as fast as one step's loads land (one thread issues
  // every slot's copies at once). Charged as stages - 1 steps, it ranked deep rings behind
  // shallow ones on short reductions, where they measured fastest (ResNeXt's batch-32 7x7
  // grouped 3x3: 2 stages predicted best, 13.5 us against 10.4 us for 4); as one step, model
  // eval pairwise / top-1 on tests/data h100-narrow 0.694 / 0.896 -> 0.791 / 0.940, h100-strips
  // 0.674 / 0.954 -> 0.806 / 0.962, h100-conv 0.825 -> 0.820, h200-wgmma 0.914 -> 0.916.
  if (p.stages > 1) {
    const double steps = p.async_mma ? steps_per_block * est.waves * concurrent : steps_per_block;
    wave_us *= 1 + (p.async_mma ? 1.0 : double(p.stages - 1)) / std::max(steps, 1.0) * 0.5;
  }
  // The blocks of a cluster wait on each other (a multicast slot is refilled once every block
  // has read it): measured, clusters of two cost more than their L2 saving (async_mma terms).
  if (p.async_mma && p.multicast > 1) wave_us *= 1 + hw.async_mma.cluster_cost;

  est.overlap = stage_overlap;
  est.compute_us = compute_wave * est.waves;
  est.smem_us = smem_wave * est.waves;
  est.epilogue_us = epilogue_wave * est.waves;
  est.l2_us = l2_wave * est.waves;
  est.dram_us = dram_wave * est.waves;
  est.dram_bytes = dram_wave_bytes * est.waves;
  est.bound = top->second;
  est.us = wave_us * est.waves + kLaunchUs;
  if (p.split > 1) {
    // The reduction kernel: read every slice's partials, write the output once.
    double outputs = 0;
    for (size_t t = 0; t < e.tensors.size(); ++t)
      if (e.tensors[t].role == TensorRole::kOutput) outputs += double(e.footprint_elements(t));
    est.us += outputs * (4.0 * double(p.split) + dtype_bytes(p.modeled.out_dtype)) / dram_bw * 1e6 + kLaunchUs;
  }
  if (p.prepass_bytes > 0) est.us += double(p.prepass_bytes) / dram_bw * 1e6 + kLaunchUs;  // the kernel before
  if (est.us < 2 * kLaunchUs + 1e-9) est.bound = "launch";
  return est;
}

double spatial_blocks(const kernels::TilePlan& p) {
  const TensorExpr e = p.modeled.expr();
  double blocks = 1;
  for (size_t a = 0; a < e.axes.size(); ++a)
    if (e.axes[a].kind == AxisKind::kSpatial) blocks *= std::ceil(double(e.axes[a].extent) / double(p.block[a]));
  return blocks;
}

AnalyticModel::AnalyticModel(const kernels::FamilyRegistry& families, HardwareSpec hw)
    : families_(families), hw_(std::move(hw)) {}

Estimate AnalyticModel::explain(const Candidate& c) const {
  const kernels::KernelFamily* f = families_.find(c.schedule.family);
  if (!f) {
    Estimate e;
    e.feasible = false;
    e.us = std::numeric_limits<double>::infinity();
    e.bound = "unknown family";
    return e;
  }
  return estimate(f->tile_plan(c.workload, c.schedule), hw_);
}

std::vector<double> AnalyticModel::predict(std::span<const Candidate> candidates) {
  std::vector<double> out;
  out.reserve(candidates.size());
  for (const Candidate& c : candidates) out.push_back(explain(c).us);
  return out;
}

}  // namespace tessera::costmodel
