// SIMT GEMM on the CUDA cores for f32 matmul and batch_matmul, any transposes, fused
// epilogues, predicated edges. Device code: kernels/cuda/gemm_simt.cuh.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

constexpr const char* kThreadM = "thread_m";
constexpr const char* kThreadN = "thread_n";

class GemmSimtFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_simt"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) && w.dtype == DType::kF32;
  }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{std::string(knob::kBlockM), {32, 64, 128}},
            {std::string(knob::kBlockN), {32, 64, 128}},
            {std::string(knob::kBlockK), {8, 16, 32}},
            {kThreadM, {2, 4, 8}},
            {kThreadN, {2, 4, 8}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_simt runs f32 matmul and batch_matmul";
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    int64_t tm = s.get(kThreadM), tn = s.get(kThreadN);
    if (bm % tm != 0 || bn % tn != 0) return "the thread tile must divide the block tile";
    int64_t threads = (bm / tm) * (bn / tn);
    if (threads < 32 || threads % 32 != 0 || threads > hw.max_threads_per_block)
      return "threads per block must be a multiple of 32 up to " + std::to_string(hw.max_threads_per_block);
    if (tm * tn + tm + tn + 32 > 255) return "the thread tile needs more than 255 registers";
    int64_t smem = bk * (bm + 1 + bn + 1) * 4;
    if (smem > 48 * 1024) return "static shared memory above 48 KiB";
    const MatmulShape& m = w.matmul();
    if (((m.m + bm - 1) / bm) * ((m.n + bn - 1) / bn) > (int64_t{1} << 31) - 1 || m.batch > 65535) return "grid too large";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const MatmulShape& m = w.matmul();
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    int64_t tm = s.get(kThreadM), tn = s.get(kThreadN), threads = (bm / tm) * (bn / tn);
    EpilogueCode epi = matmul_epilogue_code(w);
    std::string src =
        source_head(w.key() + " | " + s.key(), "gemm_simt.cuh", w) + epi.type +
        "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) +
        ") tessera_gemm_simt(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
        "Out* __restrict__ C) {\n"
        "  const Epilogue epilogue{" + epi.init + "};\n"
        "  gemm_simt<In, Out, " + std::to_string(m.m) + ", " + std::to_string(m.n) + ", " + std::to_string(m.k) + ", " +
        (m.trans_a ? "true" : "false") + ", " + (m.trans_b ? "true" : "false") + ", " + std::to_string(bm) + ", " +
        std::to_string(bn) + ", " + std::to_string(bk) + ", " + std::to_string(tm) + ", " + std::to_string(tn) +
        ">(A, B, C, epilogue);\n}\n";
    return KernelSource("tessera_gemm_simt", src, gemm_launch(m, bm, bn, threads, 0));
  }

  // Each thread computes a thread_m x thread_n register tile from a shared-memory k slice.
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    int64_t tm = s.get(kThreadM), tn = s.get(kThreadN);
    TilePlan p = whole_plan(w);
    set_tile(p, "b", 1);
    set_tile(p, "m", bm);
    set_tile(p, "n", bn);
    set_tile(p, "k", w.matmul().k, bk);
    p.threads = (bm / tm) * (bn / tn);
    p.stages = 1;
    p.smem_staged = true;
    p.smem_bytes = bk * (bm + 1 + bn + 1) * 4;
    p.registers = std::min<int64_t>(255, tm * tn + tm + tn + 32);
    p.load_bytes = dtype_bytes(w.dtype);
    p.loads_in_flight = std::max<int64_t>(1, (bm + bn) * bk / p.threads);
    p.instr = InstrKind::kFmaF32;
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_gemm_simt_family() { return std::make_unique<GemmSimtFamily>(); }

}  // namespace tessera::kernels
