#include "kernels/families.h"

#include <algorithm>
#include <cstdio>

#include "core/embedded.h"

namespace tessera {
std::span<const EmbeddedFile> embedded_device_headers();
}

namespace tessera::kernels {

void register_builtin_families(FamilyRegistry& registry) {
  registry.add(make_elementwise_family());
  registry.add(make_rows_family());
  registry.add(make_gemm_wgmma_family());
  registry.add(make_gemm_skinny_family());
  registry.add(make_gemm_tc_family());
  registry.add(make_gemm_tf32_family());
  registry.add(make_gemm_simt_family());
  registry.add(make_conv_wgmma_family());
  registry.add(make_conv_tc_family());
  registry.add(make_conv_direct_family());
}

std::vector<std::pair<std::string, std::string>> device_headers() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const EmbeddedFile& f : embedded_device_headers())
    out.emplace_back("tessera/" + std::string(f.name), std::string(f.text));
  return out;
}

std::vector<Schedule> enumerate_space(const KernelFamily& family, const Workload& w, const HardwareSpec& hw) {
  std::vector<KnobDomain> domains = family.space(w, hw);
  std::vector<Schedule> out;
  std::vector<size_t> index(domains.size(), 0);
  for (const KnobDomain& d : domains)
    if (d.values.empty()) return out;
  while (true) {
    Schedule s{std::string(family.name()), {}};
    for (size_t i = 0; i < domains.size(); ++i) s.knobs.emplace_back(domains[i].name, domains[i].values[index[i]]);
    out.push_back(std::move(s));
    size_t i = 0;
    for (; i < domains.size(); ++i) {
      if (++index[i] < domains[i].values.size()) break;
      index[i] = 0;
    }
    if (i == domains.size()) return out;
  }
}

namespace {
constexpr int64_t kReduceThreads = 256;
}  // namespace

std::string splitk_reduce_source(const std::string& entry, const Workload& w, int64_t split, const std::string& out_at) {
  const MatmulShape& m = w.matmul();
  const EpilogueCode epi = matmul_epilogue_code(w);
  return "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(kReduceThreads) + ") " + entry +
         "_reduce(const In* __restrict__ A, const In* __restrict__ B, " + epi.params +
         "Out* __restrict__ C, float* __restrict__ W) {\n"
         "  (void)A; (void)B;\n"
         "  gemm::splitk_reduce<Out, " + std::to_string(m.m) + ", " + std::to_string(m.n) + ", " +
         std::to_string(m.batch) + ", " + std::to_string(split) + ", Epilogue" + (out_at.empty() ? "" : ", " + out_at) +
         ">(W, C, Epilogue{" + epi.init + "});\n}\n";
}

void add_splitk_reduce(KernelSource& out, const Workload& w, int64_t split) {
  const MatmulShape& m = w.matmul();
  KernelLaunch reduce{out.entry + "_reduce", {}};
  const int64_t outputs = m.batch * m.m * m.n;
  reduce.geometry.grid[0] = std::min<int64_t>((outputs + kReduceThreads - 1) / kReduceThreads, 65536);
  reduce.geometry.block[0] = kReduceThreads;
  out.then.push_back(reduce);
  out.workspace_bytes = split * outputs * 4;
}

std::string float_literal(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9ef", v);
  return text;
}

EpilogueCode matmul_epilogue_code(const Workload& w) {
  EpilogueCode code;
  // body: operator()'s steps; pair_body: apply()'s, with the bias from the Cols loaded once.
  // staged_body: apply_staged()'s, with the residual's value read by the caller (from the
  // staging tile a TMA copy filled).
  std::string members, body, pair_body, staged_body, cols = "  struct Cols {};\n  __device__ Cols cols(int) const { return {}; }\n";
  bool residual = false;
  // The product's scale comes before every step (the accumulator is alpha * A B).
  if (const double alpha = product_scale(w); alpha != 1.0) {
    const std::string scale = "    v *= " + float_literal(alpha) + ";\n";
    body += scale;
    pair_body += scale;
    staged_body += scale;
  }
  for (EpilogueOp op : w.epilogue) {
    switch (op) {
      case EpilogueOp::kBias:
        code.params += "const Out* __restrict__ bias, ";
        members += "  const Out* bias;\n";
        code.init += "bias, ";
        body += "    v += to_float(bias[col]);\n";
        pair_body += "    v += c.bias[i];\n";
        staged_body += "    v += c.bias[i];\n";
        cols = "  struct Cols { float bias[2]; };\n"
               "  __device__ Cols cols(int col) const {\n"
               "    return {{col < kN ? to_float(bias[col]) : 0.0f, col + 1 < kN ? to_float(bias[col + 1]) : 0.0f}};\n"
               "  }\n";
        break;
      case EpilogueOp::kResidual:
        code.params += "const Out* __restrict__ residual, ";
        members += "  const Out* residual;\n";
        code.init += "residual, ";
        body += "    v += to_float(residual[(b * kM + row) * kN + col]);\n";
        pair_body += "    v += to_float(residual[(b * kM + row) * kN + col]);\n";
        staged_body += "    v += res;\n";
        residual = true;
        break;
      case EpilogueOp::kRelu:
        body += "    v = fmaxf(v, 0.0f);\n";
        pair_body += "    v = fmaxf(v, 0.0f);\n";
        staged_body += "    v = fmaxf(v, 0.0f);\n";
        break;
      case EpilogueOp::kGelu:
        body += "    v = gelu(v);\n";
        pair_body += "    v = gelu(v);\n";
        staged_body += "    v = gelu(v);\n";
        break;
    }
  }
  if (members.empty()) members = "  int unused;\n", code.init = "0, ";
  code.init.resize(code.init.size() - 2);
  const MatmulShape& m = w.matmul();
  code.type = "[[maybe_unused]] constexpr long long kM = " + std::to_string(m.m) + ", kN = " + std::to_string(m.n) + ";\n"
              "struct Epilogue {\n"
              "  static constexpr bool kResidual = " + (residual ? "true" : "false") + ";\n" + members + cols +
              "  __device__ float operator()(float v, long long b, int row, int col) const {\n" + body +
              "    (void)b; (void)row; (void)col;\n    return v;\n  }\n"
              "  // Column col + i of a pair whose per-column values cols(col) loaded once for all its rows.\n"
              "  __device__ float apply(float v, const Cols& c, int i, long long b, int row, int col) const {\n" +
              pair_body + "    (void)c; (void)i; (void)b; (void)row; (void)col;\n    return v;\n  }\n"
              "  // As apply(), with the residual's value `res` given.\n"
              "  __device__ float apply_staged(float v, const Cols& c, int i, float res) const {\n" +
              staged_body + "    (void)c; (void)i; (void)res;\n    return v;\n  }\n};\n";
  return code;
}

Workload conv_gemm_view(const Workload& conv, int64_t reduction) {
  const Conv2dShape& c = conv.conv2d();
  Workload g = conv;
  g.kind = OpKind::kMatmul;
  MatmulShape m;
  m.m = c.n * c.out_h() * c.out_w();
  m.n = c.k;
  m.k = reduction;
  m.trans_b = true;
  g.shape = m;
  return g;
}

TilePlan whole_plan(const Workload& modeled) {
  TilePlan p;
  p.modeled = modeled;
  for (const Axis& a : modeled.expr().axes) {
    p.block.push_back(a.extent);
    p.step.push_back(a.extent);
  }
  return p;
}

void set_tile(TilePlan& plan, std::string_view axis, int64_t block, int64_t step) {
  TensorExpr e = plan.modeled.expr();
  for (size_t i = 0; i < e.axes.size(); ++i)
    if (e.axes[i].name == axis) {
      // Not clipped to the axis: a tile wider than the axis still runs (predicated) at its
      // full size, and footprints clip to the tensors themselves.
      plan.block[i] = std::max<int64_t>(block, 1);
      plan.step[i] = std::clamp<int64_t>(step > 0 ? step : block, 1, plan.block[i]);
    }
}

TilePlan tensor_core_gemm_plan(const Workload& gemm, const Schedule& s, InstrKind instr, int64_t element_bytes) {
  const MatmulShape& m = gemm.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
  int64_t wm = s.get("warps_m"), wn = s.get("warps_n"), stages = s.get(knob::kStages), vec = s.get("vec");
  int64_t split = s.find(knob::kSplitK).value_or(1);
  TilePlan p = whole_plan(gemm);
  set_tile(p, "b", 1);
  set_tile(p, "m", bm);
  set_tile(p, "n", bn);
  int64_t tiles_k = (m.k + bk - 1) / bk;
  set_tile(p, "k", (tiles_k + split - 1) / split * bk, bk);
  p.threads = wm * wn * 32;
  p.warps_m = wm;
  p.warps_n = wn;
  p.stages = stages;
  p.register_pipeline = true;
  p.smem_staged = true;
  p.smem_bytes = stages * (bm * bk + bk * bn) * element_bytes;
  int64_t wtm = bm / wm, wtn = bn / wn;
  int64_t mma_n = instr == InstrKind::kTensorTF32 ? 8 : 16;
  p.registers = std::min<int64_t>(255, (wtm / 16) * (wtn / 8) * 4 + 2 * ((wtm / 16) * 4 + (wtn / mma_n) * 4) + 40);
  p.split = split;
  p.group_m = s.get(knob::kGroupM);
  p.load_bytes = vec * element_bytes;
  p.loads_in_flight = std::max<int64_t>(1, (stages - 1) * ((bm + bn) * bk / vec) / p.threads);
  p.instr = instr;
  return p;
}

std::string source_head(const std::string& comment, const std::string& header, const Workload& w) {
  return "// " + comment + "\n#include \"tessera/" + header + "\"\nusing namespace tessera;\nusing In = " +
         device_type(w.dtype) + ";\nusing Out = " + device_type(w.out_dtype) + ";\n";
}

LaunchGeometry gemm_launch(const MatmulShape& m, int64_t bm, int64_t bn, int64_t threads, int64_t smem_bytes,
                           int64_t layers) {
  LaunchGeometry g;
  g.grid[0] = ((m.m + bm - 1) / bm) * ((m.n + bn - 1) / bn);
  g.grid[2] = m.batch * layers;
  g.block[0] = threads;
  g.dynamic_smem_bytes = smem_bytes;
  return g;
}

std::string device_type(DType t) {
  switch (t) {
    case DType::kF16: return "tessera::F16";
    case DType::kBF16: return "tessera::BF16";
    case DType::kF32: return "float";
  }
  return "float";
}

}  // namespace tessera::kernels
