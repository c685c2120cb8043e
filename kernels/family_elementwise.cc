// Elementwise chains: y[i] = op_k(...op_1(x0[i], x1[i])...). Each thread moves `vec`
// elements per aligned load and keeps `items` loads in flight per grid-stride step.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"
#include "kernels/graph_ops.h"

namespace tessera::kernels {
namespace {

std::string chain_code(const ElementwiseShape& s, const std::string& element) {
  std::string code;
  int next = 1;
  for (EltwiseOp op : s.ops) {
    std::string o = eltwise_is_binary(op) ? "to_float(a" + std::to_string(next++) + element + ")" : "";
    code += "v = " + eltwise_expression(op, "v", o) + "; ";
  }
  return code;
}

class ElementwiseFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "elementwise"; }
  bool supports(const Workload& w) const override { return w.kind == OpKind::kElementwise; }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{"threads", {64, 128, 256, 512, 1024}}, {"vec", {1, 2, 4, 8}}, {"items", {1, 2, 4}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    int64_t threads = s.get("threads"), vec = s.get("vec"), items = s.get("items");
    if (threads < 32 || threads % 32 != 0 || threads > hw.max_threads_per_block)
      return "threads must be a multiple of 32 up to " + std::to_string(hw.max_threads_per_block);
    if (vec < 1 || (vec & (vec - 1)) != 0) return "vec must be a power of two";
    int64_t widest = std::max(dtype_bytes(w.dtype), dtype_bytes(w.out_dtype));
    if (vec * widest > 16) return "vec * element size exceeds a 16-byte load";
    if (items < 1 || items > 8) return "items must be 1..8";
    if ((w.dtype == DType::kBF16 || w.out_dtype == DType::kBF16) && hw.cc_major < 8)
      return "bf16 conversions need sm_80 or newer";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const ElementwiseShape& e = w.elementwise();
    int64_t threads = s.get("threads"), vec = s.get("vec"), items = s.get("items");
    int inputs = 1 + static_cast<int>(std::count_if(e.ops.begin(), e.ops.end(), eltwise_is_binary));
    std::string params, loads, tail_loads;
    for (int i = 0; i < inputs; ++i) {
      std::string n = std::to_string(i);
      params += "const In* __restrict__ x" + n + ", ";
      loads += "        const Pack<In, kVec> a" + n + " = reinterpret_cast<const Pack<In, kVec>*>(x" + n + ")[vi];\n";
      tail_loads += "    const In* a" + n + " = x" + n + " + i;\n";
    }
    std::string src =
        source_head(w.key() + " | " + s.key(), "common.cuh", w) +
        "constexpr long long kN = " + std::to_string(e.n) + ";\n"
        "constexpr int kThreads = " + std::to_string(threads) + ", kVec = " + std::to_string(vec) +
        ", kItems = " + std::to_string(items) + ";\n"
        "extern \"C\" __global__ void __launch_bounds__(kThreads) tessera_elementwise(" + params +
        "Out* __restrict__ y) {\n"
        "  const long long vecs = kN / kVec;\n"
        "  const long long stride = (long long)gridDim.x * kThreads * kItems;\n"
        "  for (long long base = (long long)blockIdx.x * kThreads * kItems + threadIdx.x; base < vecs; base += stride) {\n"
        "#pragma unroll\n"
        "    for (int it = 0; it < kItems; ++it) {\n"
        "      const long long vi = base + (long long)it * kThreads;\n"
        "      if (vi < vecs) {\n" + loads +
        "        Pack<Out, kVec> r;\n"
        "#pragma unroll\n"
        "        for (int j = 0; j < kVec; ++j) {\n"
        "          float v = to_float(a0.v[j]);\n"
        "          " + chain_code(e, ".v[j]") + "\n"
        "          r.v[j] = from_float<Out>(v);\n"
        "        }\n"
        "        reinterpret_cast<Pack<Out, kVec>*>(y)[vi] = r;\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "  // The last kN % kVec elements, one per thread of block 0.\n"
        "  for (long long i = vecs * kVec + threadIdx.x; blockIdx.x == 0 && i < kN; i += kThreads) {\n" + tail_loads +
        "    float v = to_float(*a0);\n"
        "    " + chain_code(e, "[0]") + "\n"
        "    y[i] = from_float<Out>(v);\n"
        "  }\n"
        "}\n";
    int64_t vecs = e.n / vec;
    int64_t blocks = std::max<int64_t>(1, (vecs + threads * items - 1) / (threads * items));
    KernelSource out;
    out.entry = "tessera_elementwise";
    out.source = src;
    out.launch.grid[0] = std::min<int64_t>(blocks, (int64_t{1} << 31) - 1);
    out.launch.block[0] = threads;
    return out;
  }

  // A block's threads each take `items` packs of `vec` elements per pass of a grid-stride loop.
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    int64_t threads = s.get("threads"), vec = s.get("vec"), items = s.get("items");
    TilePlan p = whole_plan(w);
    set_tile(p, "i", threads * vec * items);
    p.threads = threads;
    p.load_bytes = vec * dtype_bytes(w.dtype);
    p.loads_in_flight = items;
    p.registers = 24 + 4 * vec * items;
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_elementwise_family() { return std::make_unique<ElementwiseFamily>(); }

}  // namespace tessera::kernels
