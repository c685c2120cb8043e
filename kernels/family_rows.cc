// Softmax, layernorm and reductions over the last axis. `row_threads` threads share a row
// (a warp or less through shuffles, more through shared memory), `rows_per_block` rows per
// block, `vec` elements per load; softmax and layernorm choose between one pass over the
// row for their statistics (online softmax; sum and sum of squares) and two (single_pass 1
// and 0; both read the row again for the output), or hold the row in registers (single_pass
// 2, where each thread's share fits: at most kMaxPacks packs): every load is issued at once,
// the input is read once and the two-pass statistics come from the registers.
// Softmax's exponentials are __expf (one ex2.approx after a multiply; relative error of a few
// ulp for the arguments x - max <= 0 it sees): a row held in registers computes each one twice.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"
#include "kernels/reference.h"

namespace tessera::kernels {
namespace {

std::pair<int64_t, int64_t> rows_cols(const Workload& w) {
  if (w.kind == OpKind::kReduce) return {w.reduce().rows, w.reduce().cols};
  return {w.rows().rows, w.rows().cols};
}

// Packs a thread may hold in registers (single_pass 2): 16 x 16 bytes = 64 registers.
constexpr int64_t kMaxPacks = 16;

// Loop over this thread's packs of the row: body sees `c` (first column) and `p` (the pack),
// loaded from `ptr`, or (`regs`) taken from the registers `buf` the row was loaded into.
std::string for_packs(const std::string& ptr, const std::string& body, bool regs = false) {
  if (regs)
    return "#pragma unroll\n    for (int i = 0; i < kPacks; ++i) {\n"
           "      const int c = (t + i * kRowThreads) * kVec;\n"
           "      if (kCols % (kRowThreads * kVec) != 0 && c >= kCols) break;\n"
           "      const Pack<In, kVec>& p = buf[i];\n" + body + "    }\n";
  return "    for (int c = t * kVec; c < kCols; c += kRowThreads * kVec) {\n"
         "      const Pack<In, kVec> p = *reinterpret_cast<const Pack<In, kVec>*>(" + ptr + " + c);\n" + body +
         "    }\n";
}

// This thread's packs of the row, loaded into `buf` at once (single_pass 2).
std::string load_row() {
  return "  Pack<In, kVec> buf[kPacks];\n  if (active) {\n#pragma unroll\n    for (int i = 0; i < kPacks; ++i) {\n"
         "      const int c = (t + i * kRowThreads) * kVec;\n"
         "      if (kCols % (kRowThreads * kVec) == 0 || c < kCols) buf[i] = *reinterpret_cast<const Pack<In, kVec>*>(xr + c);\n"
         "    }\n  }\n";
}

int64_t packs_per_thread(int64_t cols, int64_t rt, int64_t vec) { return (cols + rt * vec - 1) / (rt * vec); }

class RowsFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "rows"; }
  bool supports(const Workload& w) const override {
    return w.kind == OpKind::kSoftmax || w.kind == OpKind::kLayernorm || w.kind == OpKind::kReduce;
  }

  std::vector<KnobDomain> space(const Workload& w, const HardwareSpec&) const override {
    std::vector<KnobDomain> d = {{"row_threads", {8, 16, 32, 64, 128, 256, 512, 1024}},
                                 {"rows_per_block", {1, 2, 4, 8, 16, 32}},
                                 {"vec", {1, 2, 4, 8}}};
    if (w.kind != OpKind::kReduce) d.push_back({"single_pass", {0, 1, 2}});
    return d;
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    int64_t cols = rows_cols(w).second;
    int64_t rt = s.get("row_threads"), rpb = s.get("rows_per_block"), vec = s.get("vec");
    auto pow2 = [](int64_t v) { return v > 0 && (v & (v - 1)) == 0; };
    if (!pow2(rt) || !pow2(rpb) || !pow2(vec)) return "row_threads, rows_per_block and vec must be powers of two";
    int64_t threads = rt * rpb;
    if (threads % 32 != 0 || threads > hw.max_threads_per_block)
      return "row_threads * rows_per_block must be a multiple of 32 up to " + std::to_string(hw.max_threads_per_block);
    if (cols % vec != 0) return "cols must be a multiple of vec (aligned loads)";
    if (vec * std::max(dtype_bytes(w.dtype), dtype_bytes(w.out_dtype)) > 16) return "vec * element size exceeds 16 bytes";
    if (w.kind != OpKind::kReduce && !s.find("single_pass")) return "missing knob single_pass";
    if (w.kind != OpKind::kReduce && (s.get("single_pass") < 0 || s.get("single_pass") > 2))
      return "single_pass is 0, 1 or 2";
    if (w.kind != OpKind::kReduce && s.get("single_pass") == 2 && packs_per_thread(cols, rt, vec) > kMaxPacks)
      return "single_pass 2 holds the row in registers: at most " + std::to_string(kMaxPacks) + " packs per thread";
    if ((w.dtype == DType::kBF16 || w.out_dtype == DType::kBF16) && hw.cc_major < 8)
      return "bf16 conversions need sm_80 or newer";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    auto [rows, cols] = rows_cols(w);
    int64_t rt = s.get("row_threads"), rpb = s.get("rows_per_block"), vec = s.get("vec");
    const int64_t pass = w.kind == OpKind::kReduce ? 0 : s.get("single_pass");
    const bool single = pass == 1, regs = pass == 2;
    std::string head =
        source_head(w.key() + " | " + s.key(), "rows.cuh", w) +
        "constexpr long long kRows = " + std::to_string(rows) + ";\n"
        "constexpr int kCols = " + std::to_string(cols) + ";\n"
        "constexpr int kRowThreads = " + std::to_string(rt) + ", kRowsPerBlock = " + std::to_string(rpb) +
        ", kVec = " + std::to_string(vec) + ";\n"
        "constexpr int kThreads = kRowThreads * kRowsPerBlock;\n"
        "constexpr int kPacks = (kCols + kRowThreads * kVec - 1) / (kRowThreads * kVec);\n"
        "constexpr int kScratch = kRowsPerBlock * (kRowThreads > 32 ? kRowThreads / 32 : 1);\n";
    std::string params = w.kind == OpKind::kLayernorm
                             ? "const In* __restrict__ x, const In* __restrict__ gamma, const In* __restrict__ beta, "
                             : "const In* __restrict__ x, ";
    std::string open =
        "extern \"C\" __global__ void __launch_bounds__(kThreads) tessera_rows(" + params + "Out* __restrict__ y) {\n"
        "  __shared__ float scratch[kScratch];\n"
        "  const long long row = (long long)blockIdx.x * kRowsPerBlock + threadIdx.x / kRowThreads;\n"
        "  const int t = threadIdx.x % kRowThreads;\n"
        "  const bool active = row < kRows;  // inactive threads still join the reductions\n"
        "  const In* xr = x + (active ? row : 0) * (long long)kCols;\n";
    auto reduce = [](const char* var, bool max) {
      return std::string("  ") + var + " = row_reduce<kRowThreads, kRowsPerBlock, " + (max ? "true" : "false") +
             ">(" + var + ", scratch);\n";
    };
    std::string body;
    if (w.kind == OpKind::kSoftmax) {
      if (single) {
        body += "  float m = -inf(), s = 0.0f;\n  if (active) {\n" +
                for_packs("xr",
                          "#pragma unroll\n      for (int j = 0; j < kVec; ++j) {\n"
                          "        const float v = to_float(p.v[j]);\n"
                          "        if (v > m) { s *= __expf(m - v); m = v; }\n"
                          "        s += __expf(v - m);\n      }\n") +
                "  }\n  float mx = m;\n" + reduce("mx", true) +
                "  float sum = m == -inf() ? 0.0f : s * __expf(m - mx);\n" + reduce("sum", false);
      } else {
        if (regs) body += load_row();
        body += "  float mx = -inf();\n  if (active) {\n" +
                for_packs("xr", "#pragma unroll\n      for (int j = 0; j < kVec; ++j) mx = fmaxf(mx, to_float(p.v[j]));\n",
                          regs) +
                "  }\n" + reduce("mx", true) + "  float sum = 0.0f;\n  if (active) {\n" +
                for_packs("xr", "#pragma unroll\n      for (int j = 0; j < kVec; ++j) sum += __expf(to_float(p.v[j]) - mx);\n",
                          regs) +
                "  }\n" + reduce("sum", false);
      }
      body += "  const float inv = 1.0f / sum;\n  if (active) {\n    Out* yr = y + row * (long long)kCols;\n" +
              for_packs("xr",
                        "      Pack<Out, kVec> r;\n#pragma unroll\n      for (int j = 0; j < kVec; ++j) "
                        "r.v[j] = from_float<Out>(__expf(to_float(p.v[j]) - mx) * inv);\n"
                        "      *reinterpret_cast<Pack<Out, kVec>*>(yr + c) = r;\n",
                        regs) +
              "  }\n";
    } else if (w.kind == OpKind::kLayernorm) {
      const std::string eps = float_literal(w.rows().epsilon);  // every digit kept
      if (single) {
        body += "  float sum = 0.0f, sq = 0.0f;\n  if (active) {\n" +
                for_packs("xr",
                          "#pragma unroll\n      for (int j = 0; j < kVec; ++j) { const float v = to_float(p.v[j]); "
                          "sum += v; sq += v * v; }\n") +
                "  }\n" + reduce("sum", false) + reduce("sq", false) +
                "  const float mean = sum / kCols;\n"
                "  const float var = fmaxf(sq / kCols - mean * mean, 0.0f);\n";
      } else {
        if (regs) body += load_row();
        body += "  float sum = 0.0f;\n  if (active) {\n" +
                for_packs("xr", "#pragma unroll\n      for (int j = 0; j < kVec; ++j) sum += to_float(p.v[j]);\n", regs) +
                "  }\n" + reduce("sum", false) + "  const float mean = sum / kCols;\n  float sq = 0.0f;\n  if (active) {\n" +
                for_packs("xr",
                          "#pragma unroll\n      for (int j = 0; j < kVec; ++j) { const float d = to_float(p.v[j]) - mean; "
                          "sq += d * d; }\n",
                          regs) +
                "  }\n" + reduce("sq", false) + "  const float var = sq / kCols;\n";
      }
      body += "  const float rstd = rsqrtf(var + " + eps + ");\n  if (active) {\n    Out* yr = y + row * (long long)kCols;\n" +
              for_packs("xr",
                        "      const Pack<In, kVec> g = *reinterpret_cast<const Pack<In, kVec>*>(gamma + c);\n"
                        "      const Pack<In, kVec> b = *reinterpret_cast<const Pack<In, kVec>*>(beta + c);\n"
                        "      Pack<Out, kVec> r;\n#pragma unroll\n      for (int j = 0; j < kVec; ++j) "
                        "r.v[j] = from_float<Out>((to_float(p.v[j]) - mean) * rstd * to_float(g.v[j]) + to_float(b.v[j]));\n"
                        "      *reinterpret_cast<Pack<Out, kVec>*>(yr + c) = r;\n",
                        regs) +
              "  }\n";
    } else {
      ReduceOp op = w.reduce().op;
      bool max = op == ReduceOp::kMax;
      body += std::string("  float acc = ") + (max ? "-inf()" : "0.0f") + ";\n  if (active) {\n" +
              for_packs("xr", std::string("#pragma unroll\n      for (int j = 0; j < kVec; ++j) acc = ") +
                                  (max ? "fmaxf(acc, to_float(p.v[j]));\n" : "acc + to_float(p.v[j]);\n")) +
              "  }\n" + reduce("acc", max) + "  if (active && t == 0) y[row] = from_float<Out>(acc" +
              (op == ReduceOp::kMean ? " / kCols" : "") + ");\n";
    }
    KernelSource out;
    out.entry = "tessera_rows";
    out.source = head + open + body + "}\n";
    out.launch.grid[0] = (rows + rpb - 1) / rpb;
    out.launch.block[0] = rt * rpb;
    return out;
  }

  // A block covers rows_per_block whole rows. The statistics pass and the output pass each
  // read the row (a two-pass kernel adds one more pass for the second statistic).
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    int64_t rt = s.get("row_threads"), rpb = s.get("rows_per_block"), vec = s.get("vec");
    TilePlan p = whole_plan(w);
    set_tile(p, "row", rpb);
    p.threads = rt * rpb;
    p.load_bytes = vec * dtype_bytes(w.dtype);
    int64_t cols = rows_cols(w).second;
    const int64_t pass = w.kind == OpKind::kReduce ? 0 : s.get("single_pass");
    const int64_t packs = packs_per_thread(cols, rt, vec);
    // Held in registers, every pack's load is in flight at once and the row is read once.
    p.loads_in_flight = pass == 2 ? std::clamp<int64_t>(packs, 1, kMaxPacks) : std::clamp<int64_t>(cols / (rt * vec), 1, 8);
    p.input_passes = w.kind == OpKind::kReduce || pass == 2 ? 1 : pass == 1 ? 2 : 3;
    p.registers = 32 + 4 * vec + (pass == 2 ? packs * ((vec * dtype_bytes(w.dtype) + 3) / 4) : 0);
    p.smem_bytes = rt > 32 ? 4 * 32 * rpb : 0;
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_rows_family() { return std::make_unique<RowsFamily>(); }

}  // namespace tessera::kernels
