// Tensor-core GEMM (mma.sync m16n8k16, ldmatrix, cp.async multi-stage ring, swizzled shared
// memory, block rasterisation, fused epilogues, predicated edges) for f16/bf16 matmul and
// batch_matmul with f32 accumulation. Device code: kernels/cuda/gemm_tc.cuh.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

constexpr const char* kWarpsM = "warps_m";
constexpr const char* kWarpsN = "warps_n";
constexpr const char* kVec = "vec";
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;

// The tile, pipeline and resource rules for the GEMM `w` (a matmul, or the GEMM view of an
// implicit-GEMM convolution).
std::optional<std::string> check_gemm_tc(const Schedule& s, const Workload& w, const HardwareSpec& hw) {
  if (hw.cc_major < 8) return "mma.sync m16n8k16 needs sm_80 or newer";
  const MatmulShape& m = w.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
  int64_t wm = s.get(kWarpsM), wn = s.get(kWarpsN), stages = s.get(knob::kStages), vec = s.get(kVec);
  int64_t group = s.get(knob::kGroupM);
  if (bk != 32 && bk != 64) return "block_k must be 32 or 64";
  if (bm % (wm * 16) != 0 || bn % (wn * 16) != 0) return "the warp tile must be a multiple of 16x16";
  if (bn % 64 != 0) return "block_n must be a multiple of 64 (swizzled rows of B)";
  int64_t wtm = bm / wm, wtn = bn / wn;
  if (wtm * wtn > 4096) return "warp tile above 64x64: its accumulators alone exceed the register file";
  int64_t threads = wm * wn * 32;
  if (threads > hw.max_threads_per_block) return "too many threads per block";
  // Accumulators + two sets of fragments + addressing, against 255 registers per thread.
  int64_t regs = (wtm / 16) * (wtn / 8) * 4 + 2 * ((wtm / 16) * 4 + (wtn / 16) * 4) + 40;
  if (regs > 255 || regs * threads > hw.registers_per_block) return "needs more registers than the GPU has";
  if (stages < 2) return "stages must be at least 2";
  if (vec != 8 && vec != 4 && vec != 2 && vec != 1) return "vec must be 8, 4, 2 or 1";
  if (m.k % vec != 0) return "k must be a multiple of vec (aligned loads)";
  if (!m.trans_b && m.n % vec != 0) return "n must be a multiple of vec (aligned loads of B)";
  if (group < 1) return "group_m must be positive";
  int64_t smem = stages * (bm * bk + bk * bn) * 2;
  if (smem > hw.smem_per_block_bytes)
    return "shared memory " + std::to_string(smem) + " B exceeds " + std::to_string(hw.smem_per_block_bytes) + " B";
  int64_t split = s.get(knob::kSplitK);
  if (split < 1) return "split_k must be positive";
  int64_t tiles_k = (m.k + bk - 1) / bk, per_slice = (tiles_k + split - 1) / split;
  if ((split - 1) * per_slice >= tiles_k)
    return "split_k " + std::to_string(split) + " leaves a slice of the " + std::to_string(tiles_k) +
           " k tiles empty";
  if (split > 1 && split * m.batch * m.m * m.n * 4 > kMaxWorkspaceBytes) return "split-K workspace above 1 GiB";
  int64_t blocks = ((m.m + bm - 1) / bm) * ((m.n + bn - 1) / bn);
  if (blocks > (int64_t{1} << 31) - 1 || m.batch * split > 65535) return "grid too large";
  return std::nullopt;
}


// Source and launch of `w` (a matmul) on gemm_tc; `a_map` names a gemm::DenseA-like map of
// A defined in `prelude`, or is empty for a dense A.
KernelSource emit_gemm_tc(const Workload& w, const Schedule& s, const std::string& entry, const std::string& prelude,
                        const std::string& a_map, const std::string& comment) {
  const MatmulShape& m = w.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
  int64_t wm = s.get(kWarpsM), wn = s.get(kWarpsN), stages = s.get(knob::kStages), vec = s.get(kVec);
  int64_t group = s.get(knob::kGroupM), split = s.get(knob::kSplitK);
  EpilogueCode epi = matmul_epilogue_code(w);
  int64_t threads = wm * wn * 32;
  std::string params = "(const In* __restrict__ A, const In* __restrict__ B, " + epi.params + "Out* __restrict__ C" +
                       (split > 1 ? ", float* __restrict__ W)" : ")");
  std::string src =
      source_head(comment + " | " + s.key(), "gemm_tc.cuh", w) + epi.type + prelude +
      "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) +
      ") " + entry + params + " {\n"
      "  const Epilogue epilogue{" + epi.init + "};\n"
      "  gemm_tc<In, Out, " + std::to_string(m.m) + ", " + std::to_string(m.n) + ", " + std::to_string(m.k) + ", " +
      (m.trans_b ? "true" : "false") + ", " + std::to_string(bm) + ", " + std::to_string(bn) + ", " +
      std::to_string(bk) + ", " + std::to_string(wm) + ", " + std::to_string(wn) + ", " + std::to_string(stages) +
      ", " + std::to_string(vec) + ", " + std::to_string(group) + ", " + std::to_string(split) + ", Epilogue" +
      (a_map.empty() ? "" : ", " + a_map) + ">(A, B, C, epilogue" + (split > 1 ? ", W" : "") + ");\n}\n";
  if (split > 1) src += splitk_reduce_source(entry, w, split);
  KernelSource out(entry, src, gemm_launch(m, bm, bn, threads, stages * (bm * bk + bk * bn) * 2, split));
  if (split > 1) add_splitk_reduce(out, w, split);
  return out;
}

class GemmTcFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_tc"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) &&
           (w.dtype == DType::kF16 || w.dtype == DType::kBF16) && !w.matmul().trans_a;
  }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{std::string(knob::kBlockM), {64, 128, 256}}, {std::string(knob::kBlockN), {64, 128, 256}},
            {std::string(knob::kBlockK), {32, 64}},       {kWarpsM, {1, 2, 4}},
            {kWarpsN, {1, 2, 4}},                          {std::string(knob::kStages), {2, 3, 4}},
            {kVec, {8, 4, 2, 1}},                          {std::string(knob::kGroupM), {1, 8}},
            {std::string(knob::kSplitK), {1, 2, 4, 8}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_tc runs f16/bf16 matmul with A not transposed";
    return check_gemm_tc(s, w, hw);
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    return emit_gemm_tc(w, s, "tessera_gemm_tc", "", "", w.key());
  }

  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    return tensor_core_gemm_plan(w, s, InstrKind::kTensorF16, 2);
  }
};

// conv2d (NHWC, one group, f16/bf16) as an implicit GEMM on gemm_tc: M = N*P*Q output
// pixels, N = K output channels, K = R*S*C; A is an im2col view of the input computed on the
// fly (ConvA), B the KRSC weights read as a transposed [K, R*S*C] matrix.
class ConvTcFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "conv_tc"; }

  bool supports(const Workload& w) const override {
    return w.kind == OpKind::kConv2d && w.conv2d().layout == Layout::kNHWC && w.conv2d().groups == 1 &&
           (w.dtype == DType::kF16 || w.dtype == DType::kBF16);
  }

  std::vector<KnobDomain> space(const Workload& w, const HardwareSpec& hw) const override {
    return GemmTcFamily().space(w, hw);
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "conv_tc runs NHWC f16/bf16 conv2d with one group";
    // A vector of the im2col row must stay within one (r, s) filter tap.
    if (w.conv2d().c % s.get(kVec) != 0) return "c must be a multiple of vec (aligned input loads)";
    return check_gemm_tc(s, gemm_view(w), hw);
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const Conv2dShape& c = w.conv2d();
    auto def = [](const char* name, int64_t v) {
      return std::string("constexpr int ") + name + " = " + std::to_string(v) + ";\n";
    };
    // 1x1 fast paths: without padding an output pixel reads exactly one input pixel, so the
    // im2col view needs no tap decomposition or bounds tests; at stride 1 it is the input itself.
    if (c.r == 1 && c.s == 1 && c.pad_h == 0 && c.pad_w == 0) {
      if (c.stride_h == 1 && c.stride_w == 1)
        return emit_gemm_tc(gemm_view(w), s, "tessera_conv_tc", "// 1x1 stride-1 convolution: A is the input as [N*H*W, C]\n",
                            "", w.key());
      std::string prelude = def("kConvN", c.n) + def("kConvH", c.h) + def("kConvW", c.w) + def("kConvC", c.c) +
                            def("kConvP", c.out_h()) + def("kConvQ", c.out_w()) + def("kStrideH", c.stride_h) +
                            def("kStrideW", c.stride_w) +
                            "// Strided 1x1 convolution: row m of the implicit GEMM is output pixel (n, p, q), column k\n"
                            "// is channel k of input pixel (n, p * stride_h, q * stride_w).\n"
                            "struct ConvA {\n"
                            "  struct Row {\n"
                            "    long long pixel;  // offset of input pixel (n, p * stride_h, q * stride_w)\n"
                            "    bool valid;\n"
                            "  };\n"
                            "  __device__ __forceinline__ static Row row(int m) {\n"
                            "    const int q = m % kConvQ, t = m / kConvQ, p = t % kConvP, n = t / kConvP;\n"
                            "    return {((long long)(n * kConvH + p * kStrideH) * kConvW + q * kStrideW) * kConvC, n < kConvN};\n"
                            "  }\n"
                            "  template <class T>\n"
                            "  __device__ __forceinline__ static const T* at(const T* x, const Row& row, int k, bool& ok) {\n"
                            "    ok = row.valid && k < kConvC;\n"
                            "    return x + (ok ? row.pixel + k : 0);\n"
                            "  }\n"
                            "};\n";
      return emit_gemm_tc(gemm_view(w), s, "tessera_conv_tc", prelude, "ConvA", w.key());
    }
    std::string prelude = def("kConvN", c.n) + def("kConvH", c.h) + def("kConvW", c.w) + def("kConvC", c.c) +
                          def("kConvR", c.r) + def("kConvS", c.s) + def("kConvP", c.out_h()) + def("kConvQ", c.out_w()) +
                          def("kStrideH", c.stride_h) + def("kStrideW", c.stride_w) + def("kPadH", c.pad_h) +
                          def("kPadW", c.pad_w) + def("kDilH", c.dilation_h) + def("kDilW", c.dilation_w) +
                          "// Row m of the implicit GEMM is output pixel (n, p, q); column k is tap (r, s, c).\n"
                          "struct ConvA {\n"
                          "  struct Row {\n"
                          "    int nh, h0, w0;  // n * H, and the window's top-left corner (out of range for rows past M)\n"
                          "  };\n"
                          "  __device__ __forceinline__ static Row row(int m) {\n"
                          "    const int q = m % kConvQ, t = m / kConvQ, p = t % kConvP, n = t / kConvP;\n"
                          "    if (n >= kConvN) return {0, -(1 << 29), 0};\n"
                          "    return {n * kConvH, p * kStrideH - kPadH, q * kStrideW - kPadW};\n"
                          "  }\n"
                          "  template <class T>\n"
                          "  __device__ __forceinline__ static const T* at(const T* x, const Row& row, int k, bool& ok) {\n"
                          "    const int ch = k % kConvC, rs = k / kConvC, s = rs % kConvS, r = rs / kConvS;\n"
                          "    const int h = row.h0 + r * kDilH, w = row.w0 + s * kDilW;\n"
                          "    ok = r < kConvR && h >= 0 && h < kConvH && w >= 0 && w < kConvW;\n"
                          "    return x + (ok ? ((long long)(row.nh + h) * kConvW + w) * kConvC + ch : 0);\n"
                          "  }\n"
                          "};\n";
    return emit_gemm_tc(gemm_view(w), s, "tessera_conv_tc", prelude, "ConvA", w.key());
  }

  // Modelled as its GEMM view: the im2col rows of A are gathered from the input.
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    return tensor_core_gemm_plan(gemm_view(w), s, InstrKind::kTensorF16, 2);
  }

 private:
  // The GEMM this convolution is: [N*P*Q, R*S*C] x [K, R*S*C]^T, same dtypes and epilogue.
  static Workload gemm_view(const Workload& w) {
    const Conv2dShape& c = w.conv2d();
    return conv_gemm_view(w, c.r * c.s * c.c);
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_gemm_tc_family() { return std::make_unique<GemmTcFamily>(); }
std::unique_ptr<KernelFamily> make_conv_tc_family() { return std::make_unique<ConvTcFamily>(); }

}  // namespace tessera::kernels
