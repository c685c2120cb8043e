// Skinny GEMM (M <= 64, f16/bf16, either B layout): every warp streams its columns of B
// from global memory into registers once and multiplies on mma.sync, split-K across the blocks
// of a cluster reduced through distributed shared memory. Device code:
// kernels/cuda/gemm_skinny.cuh.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

constexpr const char* kWarpN = "warp_n";
constexpr const char* kUnroll = "unroll";
constexpr int64_t kMaxRows = 64;
constexpr int64_t kMaxRegisters = 200;  // estimated per thread; above this the loads spill

int64_t m_tiles(const MatmulShape& m) { return (m.m + 15) / 16; }

// Registers per thread: accumulators, the operand chunks of `unroll` steps in flight, and
// about 40 for addresses and the loop.
int64_t registers(const MatmulShape& m, int64_t warp_n, int64_t unroll) {
  const int64_t mt = m_tiles(m), nt = warp_n / 8;
  // B: nt 16-byte chunks (trans_b) or 8 rows of warp_n / 8 elements: 4 nt words either way.
  return mt * nt * 4 + unroll * (nt * 4 + mt * 8) + 40;
}

int64_t smem_bytes(const MatmulShape& m, int64_t warps, int64_t warp_n) { return m.m * warps * warp_n * 4; }

class GemmSkinnyFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_skinny"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) &&
           (w.dtype == DType::kF16 || w.dtype == DType::kBF16) && !w.matmul().trans_a && w.matmul().m <= kMaxRows;
  }

  // Measured on an H100 (1 and 16 x 4096 x 4096, split_k 8): a warp's rate hardly depends on its
  // width, so with a [K, N] B the 32-column warps, twice as many, ran 1.5x faster than 64-column
  // ones; with a K-major B the 64-column warps (8 loads per step instead of 4) were faster. Two
  // steps in flight beat one and four (four take registers that cost occupancy: 18.0 against
  // 18.5-20.6 us at m = 1, 21.4 against 23.8-28.1 us at m = 16); the model cannot tell them apart.
  std::vector<KnobDomain> space(const Workload& w, const HardwareSpec&) const override {
    return {{std::string(knob::kWarps), {4, 8}},
            {kWarpN, w.matmul().trans_b ? std::vector<int64_t>{64, 32} : std::vector<int64_t>{32}},
            {kUnroll, {2}},
            {std::string(knob::kSplitK), {1, 2, 4, 8}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_skinny runs f16/bf16 matmul with A not transposed and at most 64 rows";
    if (hw.cc_major < 8) return "mma.sync m16n8k16 needs sm_80";
    const MatmulShape& m = w.matmul();
    const int64_t warps = s.get(knob::kWarps), warp_n = s.get(kWarpN), unroll = s.get(kUnroll), split = s.get(knob::kSplitK);
    const int64_t threads = 32 * warps;
    if (warps < 1 || threads > hw.max_threads_per_block)
      return "warps must be positive and at most " + std::to_string(hw.max_threads_per_block / 32);
    if (warp_n != 32 && warp_n != 64) return "warp_n must be 32 or 64";
    if (unroll < 1 || unroll > 8) return "unroll must be 1 to 8";
    if (split != 1 && split != 2 && split != 4 && split != 8) return "split_k must be 1, 2, 4 or 8 (blocks of a cluster)";
    if (split > 1 && hw.cc_major < 9) return "split_k above 1 reduces across a thread-block cluster: sm_90";
    if (m.k % 8 != 0) return "k must be a multiple of 8 (16-byte loads along k)";
    if (!m.trans_b && m.n % 8 != 0) return "n must be a multiple of 8 when B is [K, N] (aligned loads along n)";
    const int64_t steps = (m.k + 31) / 32, per_slice = (steps + split - 1) / split;
    if ((split - 1) * per_slice >= steps)
      return "split_k " + std::to_string(split) + " leaves a slice of the " + std::to_string(steps) + " k steps empty";
    if (registers(m, warp_n, unroll) > kMaxRegisters)
      return "accumulators and loads in flight need about " + std::to_string(registers(m, warp_n, unroll)) +
             " registers per thread (at most " + std::to_string(kMaxRegisters) + ")";
    if (registers(m, warp_n, unroll) * threads > hw.registers_per_block)
      return std::to_string(threads) + " threads of about " + std::to_string(registers(m, warp_n, unroll)) +
             " registers exceed the multiprocessor's register file";
    if (smem_bytes(m, warps, warp_n) > hw.smem_per_block_bytes)
      return "the partial tile needs " + std::to_string(smem_bytes(m, warps, warp_n)) + " B of shared memory";
    if (m.batch > 65535) return "batch above 65535 (grid z)";
    const int64_t tiles = (m.n + warps * warp_n - 1) / (warps * warp_n);
    if (tiles * split > (int64_t{1} << 31) - 1 || m.m * m.k > (int64_t{1} << 31) - 1) return "problem too large";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const MatmulShape& m = w.matmul();
    const int64_t warps = s.get(knob::kWarps), warp_n = s.get(kWarpN), unroll = s.get(kUnroll), split = s.get(knob::kSplitK);
    EpilogueCode epi = matmul_epilogue_code(w);
    const int64_t threads = 32 * warps;
    std::string src =
        source_head(w.key() + " | " + s.key(), "gemm_skinny.cuh", w) + epi.type +
        "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) + ", 1) " +
        (split > 1 ? "TESSERA_CLUSTER_DIMS(" + std::to_string(split) + ", 1, 1) " : std::string()) +
        "tessera_gemm_skinny(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
        "Out* __restrict__ C) {\n"
        "  const Epilogue epilogue{" + epi.init + "};\n"
        "  gemm_skinny<In, Out, " + std::to_string(m.m) + ", " + std::to_string(m.n) + ", " + std::to_string(m.k) + ", " +
        std::to_string(m.batch) + ", " + (m.trans_b ? "true" : "false") + ", " + std::to_string(warps) + ", " +
        std::to_string(warp_n) + ", " + std::to_string(unroll) + ", " + std::to_string(split) + ">(A, B, C, epilogue);\n}\n";
    LaunchGeometry g;
    g.grid[0] = (m.n + warps * warp_n - 1) / (warps * warp_n) * split;
    g.grid[2] = m.batch;
    g.block[0] = threads;
    g.dynamic_smem_bytes = smem_bytes(m, warps, warp_n);
    g.cluster = split;
    return KernelSource("tessera_gemm_skinny", src, g);
  }

  // A block: all rows (padded to m16 tiles), warps x warp_n columns, a k slice walked in steps
  // of 32 straight from global memory into registers (`unroll` steps in flight); the slices of
  // a cluster are added through shared memory (modelled as split-K's partial sums).
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    const MatmulShape& m = w.matmul();
    const int64_t warps = s.get(knob::kWarps), warp_n = s.get(kWarpN), unroll = s.get(kUnroll), split = s.get(knob::kSplitK);
    TilePlan p = whole_plan(w);
    const int64_t steps = (m.k + 31) / 32;
    set_tile(p, "b", 1);
    set_tile(p, "m", m_tiles(m) * 16);
    set_tile(p, "n", warps * warp_n);
    set_tile(p, "k", (steps + split - 1) / split * 32, 32 * unroll);
    p.threads = 32 * warps;
    p.warps_m = 1;
    p.warps_n = warps;
    p.stages = 1;
    p.register_pipeline = unroll > 1;
    p.smem_bytes = smem_bytes(m, warps, warp_n);
    p.registers = registers(m, warp_n, unroll);
    p.split = split;
    p.load_bytes = m.trans_b || warp_n == 64 ? 16 : 8;
    p.loads_in_flight = unroll * ((m.trans_b ? warp_n / 8 : 8) + 2 * m_tiles(m));
    p.instr = InstrKind::kTensorF16;
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_gemm_skinny_family() { return std::make_unique<GemmSkinnyFamily>(); }

}  // namespace tessera::kernels
