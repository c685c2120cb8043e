// f32 matmul and batch_matmul that allow tf32 (spec option tf32=1), on tf32 tensor cores
// (mma.sync m16n8k8). Device code: kernels/cuda/gemm_tf32.cuh.
#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

class GemmTf32Family : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_tf32"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) && w.dtype == DType::kF32 && w.allow_tf32 &&
           !w.matmul().trans_a;
  }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{std::string(knob::kBlockM), {64, 128}}, {std::string(knob::kBlockN), {64, 128}},
            {std::string(knob::kBlockK), {16, 32}},  {"warps_m", {1, 2, 4}},
            {"warps_n", {1, 2, 4}},                   {std::string(knob::kStages), {2, 3, 4}},
            {"vec", {4, 2, 1}},                       {std::string(knob::kGroupM), {1, 8}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_tf32 runs f32 matmul with tf32=1 and A not transposed";
    if (hw.cc_major < 8) return "tf32 mma.sync needs sm_80 or newer";
    const MatmulShape& m = w.matmul();
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    int64_t wm = s.get("warps_m"), wn = s.get("warps_n"), stages = s.get(knob::kStages), vec = s.get("vec");
    if (bk != 16 && bk != 32) return "block_k must be 16 or 32";
    if (bm % (wm * 16) != 0 || bn % (wn * 8) != 0) return "the warp tile must be a multiple of 16x8";
    int64_t wtm = bm / wm, wtn = bn / wn, threads = wm * wn * 32;
    int64_t regs = (wtm / 16) * (wtn / 8) * 4 + (wtm / 16) * 4 + (wtn / 8) * 2 + 40;
    if (regs > 255 || regs * threads > hw.registers_per_block) return "needs more registers than the GPU has";
    if (threads > hw.max_threads_per_block) return "too many threads per block";
    if (stages < 2) return "stages must be at least 2";
    if (vec != 4 && vec != 2 && vec != 1) return "vec must be 4, 2 or 1";
    if (m.k % vec != 0) return "k must be a multiple of vec (aligned loads)";
    if (!m.trans_b && m.n % vec != 0) return "n must be a multiple of vec (aligned loads of B)";
    int64_t smem = stages * (bm * bk + bk * bn) * 4;
    if (smem > hw.smem_per_block_bytes) return "shared memory exceeds the per-block limit";
    if (((m.m + bm - 1) / bm) * ((m.n + bn - 1) / bn) > (int64_t{1} << 31) - 1 || m.batch > 65535) return "grid too large";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const MatmulShape& m = w.matmul();
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    int64_t wm = s.get("warps_m"), wn = s.get("warps_n"), stages = s.get(knob::kStages), vec = s.get("vec");
    int64_t group = s.get(knob::kGroupM), threads = wm * wn * 32;
    EpilogueCode epi = matmul_epilogue_code(w);
    auto n = [](int64_t v) { return std::to_string(v); };
    std::string src = source_head(w.key() + " | " + s.key(), "gemm_tf32.cuh", w) + epi.type +
                      "extern \"C\" __global__ void __launch_bounds__(" + n(threads) +
                      ") tessera_gemm_tf32(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
                      "Out* __restrict__ C) {\n"
                      "  const Epilogue epilogue{" + epi.init + "};\n"
                      "  gemm_tf32<Out, " + n(m.m) + ", " + n(m.n) + ", " + n(m.k) + ", " + (m.trans_b ? "true" : "false") +
                      ", " + n(bm) + ", " + n(bn) + ", " + n(bk) + ", " + n(wm) + ", " + n(wn) + ", " + n(stages) + ", " +
                      n(vec) + ", " + n(group) + ">(A, B, C, epilogue);\n}\n";
    return KernelSource("tessera_gemm_tf32", src, gemm_launch(m, bm, bn, threads, stages * (bm * bk + bk * bn) * 4));
  }

  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    return tensor_core_gemm_plan(w, s, InstrKind::kTensorTF32, 4);
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_gemm_tf32_family() { return std::make_unique<GemmTf32Family>(); }

}  // namespace tessera::kernels
