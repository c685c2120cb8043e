// SIMT GEMM on the CUDA cores for f32 matmul and batch_matmul: any transposes, fused epilogues,
// predicated edges. The classic register-blocked SGEMM: block, warp and thread tiles (the
// thread tile as 4 x 4 sub-tiles strided by the warp's span, read from shared memory as
// float4s without bank conflicts), two shared-memory stages fed through registers, float4
// global loads where the operands' rows allow them. Device code: kernels/cuda/gemm_simt.cuh.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

constexpr const char* kThreadM = "thread_m";
constexpr const char* kThreadN = "thread_n";
constexpr const char* kWarpsM = "warps_m";
constexpr int64_t kStaticSmemBytes = 48 * 1024;
constexpr int64_t kMaxRegisters = 255;  // per thread, on every GPU since sm_35

// What a schedule asks of the kernel on a workload: its thread and warp grids, the loads of a
// k tile and the resources they take.
struct Layout {
  int64_t bm, bn, bk, tm, tn;
  int64_t warps_m;  // 0 in schedules recorded before the kernel had warp tiles
  int64_t threads = 0, warps = 0, warps_n = 0;
  int64_t vec_a = 1, vec_b = 1;      // elements per global load of each operand (4: float4)
  int64_t loads_a = 0, loads_b = 0;  // global load instructions per thread and k tile
  int64_t smem_bytes = 0;            // both stages of both operands
  int64_t registers = 0;             // per thread (estimate)

  Layout(const Schedule& s, const MatmulShape& m)
      : bm(s.get(knob::kBlockM)), bn(s.get(knob::kBlockN)), bk(s.get(knob::kBlockK)), tm(s.get(kThreadM)),
        tn(s.get(kThreadN)), warps_m(s.find(kWarpsM).value_or(0)) {
    if (bm <= 0 || bn <= 0 || tm <= 0 || tn <= 0 || bm % tm != 0 || bn % tn != 0) return;  // validate() tells
    threads = (bm / tm) * (bn / tn);
    warps = threads / 32;
    warps_n = warps_m > 0 ? warps / warps_m : 0;
    // An operand's rows are float4-aligned when its contiguous extent is a multiple of 4.
    vec_a = (m.trans_a ? m.m : m.k) % 4 == 0 ? 4 : 1;
    vec_b = (m.trans_b ? m.k : m.n) % 4 == 0 ? 4 : 1;
    loads_a = (bm * bk / vec_a + threads - 1) / threads;
    loads_b = (bn * bk / vec_b + threads - 1) / threads;
    // An operand stored k-contiguous is transposed into shared memory, its rows padded by 4.
    smem_bytes = 2 * bk * (bm + (m.trans_a ? 0 : 4) + bn + (m.trans_b ? 4 : 0)) * 4;
    // Accumulators, two fragments of A and B, the next tile's loads, and addressing.
    registers = tm * tn + 2 * (tm + tn) + loads_a * vec_a + loads_b * vec_b + 24;
  }
};

class GemmSimtFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_simt"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) && w.dtype == DType::kF32;
  }

  // 128x128 blocks of 8x8 thread tiles (256 threads) for large GEMMs; 32- and 64-wide blocks
  // and 4-wide thread tiles for small or narrow ones.
  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{std::string(knob::kBlockM), {32, 64, 128, 256}},
            {std::string(knob::kBlockN), {32, 64, 128, 256}},
            {std::string(knob::kBlockK), {8, 16}},
            {kThreadM, {8, 4}},
            {kThreadN, {8, 4}},
            {kWarpsM, {2, 4, 1, 8}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_simt runs f32 matmul and batch_matmul";
    if (!s.find(kWarpsM)) return "schedule has no warps_m (recorded before the warp-tiled kernel)";
    const MatmulShape& m = w.matmul();
    Layout l(s, m);
    if (l.bk <= 0 || l.bk % 4 != 0) return "block_k must be a positive multiple of 4 (float4 k chunks)";
    if (l.tm <= 0 || l.tn <= 0 || l.tm % 4 != 0 || l.tn % 4 != 0)
      return "thread_m and thread_n must be multiples of 4 (float4 reads of shared memory)";
    if (l.bm <= 0 || l.bn <= 0 || l.bm % l.tm != 0 || l.bn % l.tn != 0)
      return "the thread tile must divide the block tile";
    if (l.threads < 32 || l.threads % 32 != 0 || l.threads > hw.max_threads_per_block)
      return "threads per block must be a multiple of 32 up to " + std::to_string(hw.max_threads_per_block) + ", not " +
             std::to_string(l.threads);
    if (l.warps_m <= 0 || l.warps % l.warps_m != 0)
      return "warps_m must divide the block's " + std::to_string(l.warps) + " warps";
    // The warp tile must hold whole 4x4 sub-tiles of its 32 lanes along both axes.
    if (l.bm % (l.warps_m * l.tm) != 0 || l.bn % (l.warps_n * l.tn) != 0)
      return "a " + std::to_string(l.warps_m) + "x" + std::to_string(l.warps_n) + " warp grid does not split the " +
             std::to_string(l.bm) + "x" + std::to_string(l.bn) + " block into whole thread tiles";
    const int64_t max_registers = std::min<int64_t>(kMaxRegisters, hw.registers_per_block / l.threads);
    if (l.registers > max_registers)
      return "needs about " + std::to_string(l.registers) + " registers a thread, more than the " +
             std::to_string(max_registers) + " of " + std::to_string(l.threads) + " threads";
    if (l.smem_bytes > kStaticSmemBytes)
      return "shared memory " + std::to_string(l.smem_bytes) + " B exceeds the 49152 B of static shared memory";
    if (((m.m + l.bm - 1) / l.bm) * ((m.n + l.bn - 1) / l.bn) > (int64_t{1} << 31) - 1 || m.batch > 65535)
      return "grid too large";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const MatmulShape& m = w.matmul();
    Layout l(s, m);
    EpilogueCode epi = matmul_epilogue_code(w);
    auto n = [](int64_t v) { return std::to_string(v); };
    std::string src =
        source_head(w.key() + " | " + s.key(), "gemm_simt.cuh", w) + epi.type +
        "extern \"C\" __global__ void __launch_bounds__(" + n(l.threads) +
        ") tessera_gemm_simt(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
        "Out* __restrict__ C) {\n"
        "  const Epilogue epilogue{" + epi.init + "};\n"
        "  gemm_simt<Out, " + n(m.m) + ", " + n(m.n) + ", " + n(m.k) + ", " + (m.trans_a ? "true" : "false") + ", " +
        (m.trans_b ? "true" : "false") + ", " + n(l.bm) + ", " + n(l.bn) + ", " + n(l.bk) + ", " + n(l.tm) + ", " +
        n(l.tn) + ", " + n(l.warps_m) + ">(A, B, C, epilogue);\n}\n";
    return KernelSource("tessera_gemm_simt", src, gemm_launch(m, l.bm, l.bn, l.threads, 0));
  }

  // A block of warp-tiled threads computes a block_m x block_n tile through two shared-memory
  // stages of block_k, the next tile's global loads in registers meanwhile.
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    Layout l(s, w.matmul());
    TilePlan p = whole_plan(w);
    set_tile(p, "b", 1);
    set_tile(p, "m", l.bm);
    set_tile(p, "n", l.bn);
    set_tile(p, "k", w.matmul().k, l.bk);
    p.threads = l.threads;
    p.smem_staged = true;
    p.instr = InstrKind::kFmaF32;
    if (l.warps_m == 0) {
      // Recorded before the warp-tiled kernel: describe the kernel those times were measured
      // with (one stage, scalar loads, no warp tiles), so that models learn from them as they were.
      p.smem_bytes = l.bk * (l.bm + 1 + l.bn + 1) * 4;
      p.registers = std::min(kMaxRegisters, l.tm * l.tn + l.tm + l.tn + 32);
      p.loads_in_flight = std::max<int64_t>(1, (l.bm + l.bn) * l.bk / l.threads);
      return p;
    }
    p.warps_m = l.warps_m;
    p.warps_n = l.warps_n;
    p.stages = 2;
    p.register_pipeline = true;
    p.smem_bytes = l.smem_bytes;
    p.registers = std::min(kMaxRegisters, l.registers);
    // All of a k tile's loads are issued before any is used: per thread, loads_a + loads_b
    // instructions of (on average) load_bytes each.
    p.loads_in_flight = std::max<int64_t>(1, l.loads_a + l.loads_b);
    p.load_bytes = std::max<int64_t>(4, (l.bm + l.bn) * l.bk * 4 / (l.threads * p.loads_in_flight));
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_gemm_simt_family() { return std::make_unique<GemmSimtFamily>(); }

}  // namespace tessera::kernels
