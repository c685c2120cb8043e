// Hopper implicit-GEMM convolution (sm_90a) for NHWC f16/bf16 conv2d: gemm_wgmma's kernel
// (warp-specialised, persistent, wgmma, TMA ring, fused epilogue, TMA stores, clusters,
// split-K) over the convolution's GEMM view, with the operand loads of
// kernels/cuda/conv_wgmma.cuh:
// - im2col: A through an im2col tensor map (stride, padding and dilation done by the copy
//   engine), B as boxes of the filters; dense convolutions, and grouped ones whose groups hold
//   whole tiles of output channels;
// - block-diagonal: grouped convolutions whose tiles hold several whole groups (ResNeXt's);
// - merged groups: groups of fewer than 8 channels or filters (ResNeXt-50 32x4d's first stage:
//   4 and 4) run as groups of M times as many, whose filters a kernel before the GEMM writes
//   to the workspace block-diagonally (each filter's channels at its own group's place in the
//   merged group, zeros elsewhere); then as above;
// - gather: the producer's threads gather both operands where TMA cannot address them (input
//   channels not a multiple of 8, as in an RGB stem, or windows beyond the im2col box's range);
// - padded taps (knob pad_channels 1, fewer than 8 input channels): a kernel before the GEMM
//   pads the input and filters to 8 channels in the workspace, and a k step takes block_k / 8
//   taps (A gathered as 16-byte pixels by the producer's threads, B by TMA);
// - row strips (pad_channels 2, filters padded the same way, the input read as it is): the GEMM
//   view is batched by output row and a k step is block_k / 8 taps of one filter row, so A's
//   tile is a Toeplitz matrix the producer loads as one strip of the input row (a pixel per
//   column and phase of the stride, a warp or more a step) and the MMAs read in place.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

enum class Mode { kIm2col, kBlockDiag, kGather, kPaddedTaps, kStrips };

constexpr std::string_view kPadChannels = "pad_channels";
constexpr int64_t kPadThreads = 256;

// How the family runs a convolution with a given tile width: which loads, and the reduction
// they walk.
struct ConvRun {
  Mode mode = Mode::kIm2col;
  int64_t cg = 0, kg = 0;      // input channels and filters per group (merged groups: per merged group)
  int64_t merge = 1;           // groups per merged group
  int64_t k_steps = 0;         // k steps per output tile
  int64_t k_per_step = 0;      // reduction elements the MMAs of a step cover (the GEMM view's)
};

// The im2col map's bounding-box corners (W, H) and the filter offsets fit their fields (signed
// 8 bits each for a 4-D map), and its traversal strides are at most 8.
bool im2col_expressible(const Conv2dShape& c) {
  auto fits = [](int64_t v) { return v >= -128 && v <= 127; };
  const int64_t upper_w = (c.out_w() - 1) * c.stride_w + 1 - c.w - c.pad_w;
  const int64_t upper_h = (c.out_h() - 1) * c.stride_h + 1 - c.h - c.pad_h;
  return fits(-c.pad_w) && fits(-c.pad_h) && fits(upper_w) && fits(upper_h) && c.stride_h <= 8 && c.stride_w <= 8 &&
         (c.r - 1) * c.dilation_h <= 127 && (c.s - 1) * c.dilation_w <= 127;
}

// Fewer than 8 input channels, one group: the padded-taps loads can run it (pad_channels = 1).
bool paddable(const Conv2dShape& c) { return c.groups == 1 && c.c < 8 && im2col_expressible(c); }

// The row strips (pad_channels = 2): fewer than 8 channels, one group, consecutive taps along a
// row (no dilation across) and a stride along it whose phases keep a k16 step's two taps a fixed
// offset apart.
bool stripable(const Conv2dShape& c) {
  return c.groups == 1 && c.c < 8 && c.dilation_w == 1 && (c.stride_w == 1 || c.stride_w == 2 || c.stride_w == 4);
}

// Groups per merged group: 1 where a group's channels and filters are 16-byte rows (multiples
// of 8), else the fewest groups (2 or 4) whose channels and filters together are; 0 where none
// is (depthwise convolutions stay on conv_direct: merging 8 would multiply their MMAs by 8).
int64_t group_merge(const Conv2dShape& c) {
  const int64_t cg = c.c / c.groups, kg = c.k / c.groups;
  for (int64_t m : {1, 2, 4})
    if (c.groups % m == 0 && (m * cg) % 8 == 0 && (m * kg) % 8 == 0) return m;
  return 0;
}

ConvRun conv_run(const Conv2dShape& c, int64_t bn, int64_t bk, int64_t pad) {
  ConvRun run;
  run.merge = c.groups > 1 ? std::max<int64_t>(group_merge(c), 1) : 1;
  run.cg = c.c / c.groups * run.merge;
  run.kg = c.k / c.groups * run.merge;
  bk = std::max<int64_t>(bk, 1);
  if (pad == 2 && stripable(c)) {
    run.mode = Mode::kStrips;
    const int64_t taps_per_step = std::max<int64_t>(bk / 8, 1);
    run.k_steps = c.r * ((c.s + taps_per_step - 1) / taps_per_step);
    run.k_per_step = bk;
  } else if (pad == 1 && paddable(c)) {
    run.mode = Mode::kPaddedTaps;
    const int64_t taps_per_step = std::max<int64_t>(bk / 8, 1);
    run.k_steps = (c.r * c.s + taps_per_step - 1) / taps_per_step;
    run.k_per_step = bk;
  } else if (c.groups == 1 && (c.c % 8 != 0 || !im2col_expressible(c))) {
    run.mode = Mode::kGather;
    run.k_steps = (c.r * c.s * c.c + bk - 1) / bk;
    run.k_per_step = bk;
  } else if (c.groups == 1 || run.kg % std::max<int64_t>(bn, 1) == 0) {
    run.mode = Mode::kIm2col;
    run.k_steps = c.r * c.s * ((run.cg + bk - 1) / bk);
    run.k_per_step = bk;
  } else {
    run.mode = Mode::kBlockDiag;
    run.k_steps = c.r * c.s;
    run.k_per_step = (bn / std::max<int64_t>(run.kg, 1) * run.cg + 15) / 16 * 16;
  }
  return run;
}

// The GEMM the kernel runs: its reduction is the k steps it walks, padding included. Row strips
// run it batched by output row: N * P products of Q output columns.
Workload gemm_view(const Workload& w, const ConvRun& run) {
  Workload g = conv_gemm_view(w, run.k_steps * run.k_per_step);
  if (run.mode == Mode::kStrips) {
    const Conv2dShape& c = w.conv2d();
    MatmulShape m = g.matmul();
    m.batch = c.n * c.out_h();
    m.m = c.out_w();
    g.kind = OpKind::kBatchMatmul;
    g.shape = m;
  }
  return g;
}

ConvRun conv_run(const Conv2dShape& c, const Schedule& s) {
  return conv_run(c, s.get(knob::kBlockN), s.get(knob::kBlockK), s.find(kPadChannels).value_or(0));
}

// 16-byte pixels of a row strip's k step: stride x (block_m + the taps past a row's first)
// (StripLoads::kVectors).
int64_t strip_entries(const Conv2dShape& c, int64_t bm, int64_t bk) { return c.stride_w * (bm + (bk / 8 - 1) / c.stride_w); }
// How a row strip's producer loads it (StripLoads and gemm_wgmma's produce_split): a pixel's C
// channels as the widest aligned words (8, 4 or 2 bytes), a step by a warp, two or the four, the
// fewest whose threads hold at most 48 registers of them; as many groups of those as divide the
// ring fill slots at once.
struct StripProducer {
  int64_t words = 1;         // a pixel's loads
  int64_t step_threads = 32;  // the threads that load a step (StripLoads' STEP_THREADS)
  int64_t per_thread = 0;    // a thread's pixels
  int64_t groups = 1;        // groups of step_threads that fill slots at once
};
StripProducer strip_producer(const Conv2dShape& c, int64_t bm, int64_t bk, int64_t stages) {
  StripProducer sp;
  const int64_t pixel_bytes = 2 * c.c, entries = strip_entries(c, bm, bk);
  const int64_t word_bytes = pixel_bytes % 8 == 0 ? 8 : pixel_bytes % 4 == 0 ? 4 : 2;
  sp.words = pixel_bytes / word_bytes;
  const int64_t registers = sp.words * (word_bytes == 8 ? 2 : 1);  // a pixel's
  while (sp.step_threads < 128 && (entries + sp.step_threads - 1) / sp.step_threads * registers > 48) sp.step_threads *= 2;
  sp.per_thread = (entries + sp.step_threads - 1) / sp.step_threads;
  sp.groups = 128 / sp.step_threads;
  while (sp.groups > 1 && stages % sp.groups != 0) sp.groups /= 2;
  return sp;
}

// The padded operands in the workspace: the input as [pixels][8] (padded taps only), then the
// filters as [K][taps][8] (taps: the k steps' taps, past R * S zeros), 1 KB aligned.
struct PaddedOperands {
  int64_t pixels = 0, taps = 0, filters_offset = 0, bytes = 0;
};
PaddedOperands padded_operands(const Conv2dShape& c, const ConvRun& run) {
  PaddedOperands p;
  p.pixels = run.mode == Mode::kStrips ? 0 : c.n * c.h * c.w;  // the strips read the input as it is
  p.taps = run.k_steps * run.k_per_step / 8;
  p.filters_offset = (p.pixels * 16 + 1023) / 1024 * 1024;
  p.bytes = p.filters_offset + c.k * p.taps * 16;
  return p;
}

std::string list(std::initializer_list<int64_t> values) {
  std::string out;
  for (int64_t v : values) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

// A kernel before the GEMM that prepares operands in the workspace: `entry` takes the GEMM's
// arguments (A, B, the epilogue's, C, W) and runs `body`, one 16-byte vector of `vectors` a
// thread.
std::string prepass_source(const std::string& entry, const EpilogueCode& epi, const std::string& body) {
  return "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(kPadThreads) + ") " + entry +
         "(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
         "Out* __restrict__ C, float* __restrict__ W) {\n  (void)A;\n  (void)C;\n" + body + "}\n";
}
KernelLaunch prepass_launch(const std::string& entry, int64_t vectors) {
  KernelLaunch launch{entry, {}};
  launch.geometry.grid[0] = std::min<int64_t>((vectors + kPadThreads - 1) / kPadThreads, 65536);
  launch.geometry.block[0] = kPadThreads;
  return launch;
}

class ConvWgmmaFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "conv_wgmma"; }

  // Grouped convolutions need 16-byte rows of each group's channels and filters, or of 2 or 4
  // groups' merged (depthwise ones stay on conv_direct).
  bool supports(const Workload& w) const override {
    if (w.kind != OpKind::kConv2d || (w.dtype != DType::kF16 && w.dtype != DType::kBF16)) return false;
    const Conv2dShape& c = w.conv2d();
    return c.layout == Layout::kNHWC && (c.groups == 1 || group_merge(c) > 0);
  }

  // Fewer than 8 input channels: gathered (pad_channels 0) or padded to 8 by a kernel before
  // (1: taps gathered per row, 2: row strips).
  std::vector<KnobDomain> space(const Workload& w, const HardwareSpec&) const override {
    std::vector<KnobDomain> d = wgmma_space();
    if (!supports(w)) return d;
    const Conv2dShape& c = w.conv2d();
    std::vector<int64_t> pad = {0};
    if (paddable(c)) pad.push_back(1);
    if (stripable(c)) pad.push_back(2);
    if (pad.size() > 1) d.push_back({std::string(kPadChannels), pad});
    return d;
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w))
      return "conv_wgmma runs NHWC f16/bf16 conv2d with one group, or groups whose channels and filters (of 1, 2 or 4 "
             "groups together) are multiples of 8";
    const Conv2dShape& c = w.conv2d();
    const int64_t bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    if (bn < 8 || bn % 8 != 0) return "block_n must be a multiple of 8 up to 256 (wgmma's n)";
    const int64_t pad = s.find(kPadChannels).value_or(0);
    if (pad < 0 || pad > 2) return "pad_channels must be 0, 1 or 2";
    if (pad == 1 && !paddable(c))
      return "pad_channels 1 needs one group, fewer than 8 input channels and windows an im2col tensor map can walk";
    if (pad == 2 && !stripable(c))
      return "pad_channels 2 (row strips) needs one group, fewer than 8 input channels, no dilation along the width "
             "and a stride of 1, 2 or 4 along it";
    const ConvRun run = conv_run(c, bn, bk, pad);
    if ((run.mode == Mode::kPaddedTaps || run.mode == Mode::kStrips) &&
        (s.get("cluster_m") != 1 || s.get(knob::kSplitK) != 1))
      return "padded operands take the workspace: cluster_m and split_k must be 1";
    if (run.mode == Mode::kStrips && strip_entries(c, s.get(knob::kBlockM), bk) > 640)
      return "row strips: a step's strip exceeds 640 pixels (block_m x stride_w above about 512)";
    if (c.groups > 1) {
      if (!im2col_expressible(c)) return "grouped convolutions need windows an im2col tensor map can walk (pads, strides)";
      if (run.merge > 1 && (s.get("cluster_m") != 1 || s.get(knob::kSplitK) != 1))
        return "merged groups take the workspace for their filters: cluster_m and split_k must be 1";
      if (run.mode == Mode::kBlockDiag) {
        if (bn % run.kg != 0 || bn / run.kg * run.cg > bk)
          return "a tile must lie in one group (filters per group a multiple of block_n) or hold whole groups whose "
                 "channels fit one k step (block_n a multiple of them, block_n / Kg * Cg <= block_k)";
        if (s.get("cluster_m") != 1) return "block-diagonal tiles load B per group: cluster_m must be 1";
      }
    }
    if (run.mode == Mode::kGather || run.mode == Mode::kPaddedTaps || run.mode == Mode::kStrips) {
      if (s.get("cluster_m") != 1) return "gathered operands are not multicast: cluster_m must be 1";
      const int64_t consumers = s.get("consumers"), bm = s.get(knob::kBlockM);
      const int64_t rows = s.get("pingpong") ? bm : bm / std::max<int64_t>(consumers, 1);
      if (consumers == 3) return "gathered operands keep 120 registers for the producer: at most two consumers";
      if (wgmma_blocks_per_sm(s) != 1) return "gathered operands: one block per SM (blocks_per_sm 1)";
      if (consumers == 2 && (rows / 64) * (bn / 2) > 128)
        return "a consumer's accumulators exceed 128 registers (the gathering producer keeps 120 of the 168)";
    }
    const int64_t pixels = c.n * c.out_h() * c.out_w();
    if (c.n * c.h * c.w * c.c >= (int64_t{1} << 31) || pixels >= (int64_t{1} << 31))
      return "tensors too large for 32-bit pixel indices";
    return check_wgmma(s, gemm_view(w, run), run.k_steps, hw, true);
  }

  // The loads of fewer than 8 channels: gathered, padded taps or row strips.
  std::string variant(const Schedule& s) const override {
    const std::optional<int64_t> pad = s.find(kPadChannels);
    return pad ? std::string(kPadChannels) + "=" + std::to_string(*pad) : "";
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const Conv2dShape& c = w.conv2d();
    const int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    const int64_t cluster = s.get("cluster_m");
    const ConvRun run = conv_run(c, s);
    const Workload view = gemm_view(w, run);
    const int64_t p = c.out_h(), q = c.out_w();
    const std::string geometry = list({p, q, c.r, c.s, c.stride_h, c.stride_w, c.pad_h, c.pad_w, c.dilation_h,
                                       c.dilation_w, run.cg, run.kg, bm, bn, bk});
    std::string loads;
    std::vector<TensorMapSpec> maps;
    if (run.mode == Mode::kGather) {
      loads = "GatherLoads<In, " + list({c.h, c.w, c.c, c.k}) + ", " + geometry + ", " + std::to_string(view.matmul().m) + ">";
    } else if (run.mode == Mode::kPaddedTaps || run.mode == Mode::kStrips) {
      return emit_padded(w, s, run);
    } else {
      loads = run.mode == Mode::kIm2col ? "ConvLoads<In, " + geometry + ", " + std::to_string(cluster) + ">"
                                        : "BlockDiagLoads<In, " + geometry + ">";
      // A: the NHWC input walked by output pixels (the windows' first pixels run from -pad to
      // (P - 1) * stride - pad), BK channels of BM pixels per copy, swizzled like a K-major tile.
      TensorMapSpec a{0, w.dtype, {c.c, c.w, c.h, c.n}, {c.c * 2, c.w * c.c * 2, c.h * c.w * c.c * 2}, {bk, bm}, int(bk * 2)};
      a.lower_corner = {-c.pad_w, -c.pad_h};
      a.upper_corner = {(q - 1) * c.stride_w + 1 - c.w - c.pad_w, (p - 1) * c.stride_h + 1 - c.h - c.pad_h};
      a.element_strides = {1, c.stride_w, c.stride_h, 1};
      // B: the KRSC filters as {Cg, R * S, K}; dense boxes of BK channels by a tile's (or, with
      // a cluster, its share of) filters, or 8 channels by one group's filters, unswizzled.
      TensorMapSpec b{1, w.dtype, {run.cg, c.r * c.s, c.k}, {run.cg * 2, c.r * c.s * run.cg * 2}, {bk, 1, bn / cluster},
                      int(bk * 2)};
      if (run.mode == Mode::kBlockDiag) {
        b.box = {8, 1, run.kg};
        b.swizzle_bytes = 0;
      }
      if (run.merge > 1) return emit_merged(w, s, run, view, loads, a, b);
      maps = {a, b};
    }
    return emit_wgmma(view, s, "tessera_conv_wgmma", "conv_wgmma.cuh", w.key(), "", loads, std::move(maps));
  }

  // Modelled as the GEMM the kernel runs (the k axis is its padded reduction, k_per_step a step).
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    const ConvRun run = conv_run(w.conv2d(), s);
    TilePlan p = wgmma_plan(gemm_view(w, run), s);
    const int64_t split = s.get(knob::kSplitK);
    set_tile(p, "k", (run.k_steps + split - 1) / split * run.k_per_step, run.k_per_step);
    // A repeats each input pixel once per tap that reads it; DRAM holds it once.
    const Conv2dShape& c = w.conv2d();
    const MatmulShape& vm = p.modeled.matmul();
    const double view_a = double(vm.batch) * double(vm.m) * double(vm.k);
    p.dram_share = {std::min(1.0, double(c.n * c.h * c.w * c.c) / std::max(view_a, 1.0)), 1.0};
    if (run.merge > 1)  // the kernel before reads the filters and writes them merged
      p.prepass_bytes = c.k * c.r * c.s * (c.c / c.groups + run.cg) * 2;
    if (run.mode == Mode::kPaddedTaps || run.mode == Mode::kStrips) {
      // The kernel before reads the filters (and for the padded taps the input) and writes them
      // padded; the padded taps' GEMM reads the padded input (8 channels a pixel).
      const PaddedOperands po = padded_operands(c, run);
      if (run.mode == Mode::kPaddedTaps) p.dram_share[0] = std::min(1.0, double(po.pixels * 8) / std::max(view_a, 1.0));
      p.prepass_bytes = po.pixels * (c.c + 8) * 2 + c.k * (c.r * c.s * c.c * 2 + po.taps * 16);
    }
    if (run.mode == Mode::kStrips) {
      // Every output row's product reads the same filters: DRAM holds B once.
      p.dram_share[1] = 1.0 / double(std::max<int64_t>(vm.batch, 1));
      // A step's strip: a few words a pixel a thread of the group that fills the step, one round
      // trip to L2 shared by the groups that fill slots at once.
      const int64_t bm = s.get(knob::kBlockM), bk = s.get(knob::kBlockK);
      const StripProducer sp = strip_producer(c, bm, bk, s.get(knob::kStages));
      // A step loads its strip's C channels a pixel, not block_m x block_k elements.
      p.l2_share = {std::min(1.0, double(strip_entries(c, bm, bk) * c.c) / double(bm * bk)), 1.0};
      const int64_t loads = sp.per_thread * sp.words;
      p.gather_elements = (loads + sp.groups - 1) / sp.groups;  // the groups' warps issue side by side
      p.gather_round_trips = 1.0 / double(sp.groups);
      // L2 serves a warp's words as whole sectors (32 pixels of one channel span 64 x C bytes):
      // counted as 16-byte loads of the same bytes. Counted as 2-byte instructions, the L2 term
      // put the stems' strips at 4x what they measured (287-333 us predicted, 54-112 measured).
      p.load_bytes = 16;
    }
    if (run.mode == Mode::kPaddedTaps) {
      // The producer's threads load one 16-byte pixel per row and tap (counted as one element
      // each: one instruction), 16 in flight (TapLoads::kBatch).
      const int64_t loads = s.get(knob::kBlockM) / 32 * (s.get(knob::kBlockK) / 8 / 4);
      p.gather_elements = loads;
      p.gather_round_trips = (loads + 15) / 16;
      p.load_bytes = 16;
    }
    if (run.mode == Mode::kGather) {
      // The producer's 128 threads fill 16-byte vectors of 2-byte loads: each thread a column of
      // 8 k of every 128 / (block_k / 8)-th row of A and B, loads issued in batches of 4 rows
      // (kBatch in GatherLoads: 8 spills under the 120 registers a gathering producer keeps).
      const int64_t bk = s.get(knob::kBlockK), row_step = 128 / (bk / 8);
      const int64_t rows_a = (s.get(knob::kBlockM) + row_step - 1) / row_step;
      const int64_t rows_b = (s.get(knob::kBlockN) + row_step - 1) / row_step;
      p.gather_elements = 8 * (rows_a + rows_b);
      // Two round trips a batch: a fit. Once the ring's fill was charged once a block, one a
      // batch put the batch-32 stems' gathered loads at half what they measured (ResNet-50's
      // 96 us predicted, 185-200 measured), ahead of the strips; with two, model eval's pairwise
      // on h100-gemm-conv 0.742 -> 0.747 (top-1 0.949 -> 0.960), h100-conv unchanged.
      p.gather_round_trips = 2.0 * double((rows_a + 3) / 4 + (rows_b + 3) / 4);
      p.load_bytes = 16;
    }
    return p;
  }

 private:
  // Merged groups: tessera_conv_wgmma_merge (conv::merge_groups) writes the filters as groups
  // of run.cg channels to the workspace, where B's map reads them; the GEMM is the grouped one
  // of run.cg channels and run.kg filters a group.
  KernelSource emit_merged(const Workload& w, const Schedule& s, const ConvRun& run, const Workload& view,
                           const std::string& loads, const TensorMapSpec& a, TensorMapSpec b) const {
    const Conv2dShape& c = w.conv2d();
    const int64_t taps = c.r * c.s;
    b.tensor = static_cast<int>(w.expr().tensors.size());  // the workspace, the argument after the tensors
    b.offset_bytes = 0;
    const std::string prelude =
        prepass_source("tessera_conv_wgmma_merge", matmul_epilogue_code(view),
                       "  conv::merge_groups<In, " + list({c.k, taps, c.c / c.groups, c.k / c.groups, run.merge}) +
                           ">(B, reinterpret_cast<In*>(W));\n");
    KernelSource out = emit_wgmma(view, s, "tessera_conv_wgmma", "conv_wgmma.cuh", w.key(), prelude, loads, {a, b}, true);
    out.before.push_back(prepass_launch("tessera_conv_wgmma_merge", c.k * taps * run.cg / 8));
    out.workspace_bytes = c.k * taps * run.cg * 2;
    return out;
  }

  // Padded taps and row strips: tessera_conv_wgmma_pad (conv::pad_channels) writes the padded
  // operands to the workspace (the filters, and for the padded taps the input); then the GEMM's
  // producer threads gather A (from there, or the strips from the input as it is) and TMA
  // copies B.
  KernelSource emit_padded(const Workload& w, const Schedule& s, const ConvRun& run) const {
    const Conv2dShape& c = w.conv2d();
    const int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    const Workload view = gemm_view(w, run);
    const PaddedOperands po = padded_operands(c, run);
    const int workspace = static_cast<int>(w.expr().tensors.size());  // the argument after the tensors
    const EpilogueCode epi = matmul_epilogue_code(view);
    // The padded taps: a filter row of `row_taps` (the strips' k steps of a row), or (padded
    // taps) the flattened R * S as one row.
    const bool strips = run.mode == Mode::kStrips;
    const int64_t row_taps = strips ? po.taps / c.r : po.taps;
    const std::string taps = strips ? list({c.r, c.s, row_taps}) : list({int64_t{1}, c.r * c.s, row_taps});
    const std::string prelude = prepass_source(
        "tessera_conv_wgmma_pad", epi,
        "  conv::pad_channels<In, " + list({c.c, po.pixels, c.k}) + ", " + taps + ", " + std::to_string(po.taps) +
            ">(A, B, reinterpret_cast<In*>(W), reinterpret_cast<In*>(reinterpret_cast<char*>(W) + " +
            std::to_string(po.filters_offset) + "));\n");
    const std::string loads =
        strips ? "StripLoads<In, " + list({c.c, c.h, c.w, c.out_h(), c.r, c.s, c.stride_h, c.stride_w, c.pad_h, c.pad_w,
                                           c.dilation_h, bm, bn, bk,
                                           strip_producer(c, bm, bk, s.get(knob::kStages)).step_threads}) + ">"
               : "TapLoads<In, " + list({c.h, c.w, c.out_h(), c.out_w(), c.r, c.s, c.stride_h, c.stride_w, c.pad_h, c.pad_w,
                                         c.dilation_h, c.dilation_w, bm, bn, bk, view.matmul().m}) + ">";
    // B by TMA from the padded filters; A gathered from the padded input at the workspace's start
    // (the strips: from the input).
    TensorMapSpec b{workspace, w.dtype, {po.taps * 8, c.k, 1}, {po.taps * 16, c.k * po.taps * 16}, {bk, bn, 1}, int(bk * 2)};
    b.offset_bytes = po.filters_offset;
    KernelSource out = emit_wgmma(view, s, "tessera_conv_wgmma", "conv_wgmma.cuh", w.key(), prelude, loads, {b}, true,
                                  strips ? "A" : "reinterpret_cast<const In*>(W)");
    out.before.push_back(prepass_launch("tessera_conv_wgmma_pad", po.pixels + c.k * po.taps));
    out.workspace_bytes = po.bytes;
    return out;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_conv_wgmma_family() { return std::make_unique<ConvWgmmaFamily>(); }

}  // namespace tessera::kernels
