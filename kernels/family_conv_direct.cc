// Direct convolution on the CUDA cores for any conv2d (NHWC or NCHW, stride, padding,
// dilation, groups): each thread computes `vec_k` consecutive output channels of one output
// pixel, accumulating in f32. The depthwise case (groups == channels) reads adjacent input
// channels for adjacent threads in NHWC. General fallback and the depthwise family; dense
// convolutions get the implicit-GEMM tensor-core family later.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

class ConvDirectFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "conv_direct"; }
  bool supports(const Workload& w) const override { return w.kind == OpKind::kConv2d; }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override {
    return {{"threads", {64, 128, 256, 512}}, {"vec_k", {1, 2, 4}}};
  }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "conv_direct runs conv2d";
    int64_t threads = s.get("threads"), vk = s.get("vec_k");
    if (threads % 32 != 0 || threads > hw.max_threads_per_block) return "threads must be a multiple of 32 up to the limit";
    if (vk < 1 || w.conv2d().k % vk != 0) return "vec_k must divide k";
    if ((w.dtype == DType::kBF16 || w.out_dtype == DType::kBF16) && hw.cc_major < 8)
      return "bf16 conversions need sm_80 or newer";
    const Conv2dShape& c = w.conv2d();
    int64_t work = c.n * c.out_h() * c.out_w() * (c.k / vk);
    if ((work + threads - 1) / threads > (int64_t{1} << 31) - 1) return "grid too large";
    return std::nullopt;
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override {
    const Conv2dShape& c = w.conv2d();
    int64_t threads = s.get("threads"), vk = s.get("vec_k");
    bool nhwc = c.layout == Layout::kNHWC;
    std::string params, epilogue;
    for (EpilogueOp op : w.epilogue) {
      switch (op) {
        case EpilogueOp::kBias:
          params += "const Out* __restrict__ bias, ";
          epilogue += "      v += to_float(bias[k]);\n";
          break;
        case EpilogueOp::kResidual:
          params += "const Out* __restrict__ residual, ";
          epilogue += "      v += to_float(residual[out_index]);\n";
          break;
        case EpilogueOp::kRelu: epilogue += "      v = fmaxf(v, 0.0f);\n"; break;
        case EpilogueOp::kGelu: epilogue += "      v = gelu(v);\n"; break;
      }
    }
    auto def = [](const char* name, int64_t v) { return std::string("constexpr long long ") + name + " = " + std::to_string(v) + ";\n"; };
    std::string src =
        source_head(w.key() + " | " + s.key(), "common.cuh", w) +
        def("kN", c.n) + def("kH", c.h) + def("kW", c.w) + def("kC", c.c) + def("kK", c.k) + def("kR", c.r) +
        def("kS", c.s) + def("kP", c.out_h()) + def("kQ", c.out_w()) + def("kStrideH", c.stride_h) +
        def("kStrideW", c.stride_w) + def("kPadH", c.pad_h) + def("kPadW", c.pad_w) + def("kDilH", c.dilation_h) +
        def("kDilW", c.dilation_w) + def("kCg", c.c / c.groups) + def("kKg", c.k / c.groups) + def("kVecK", vk) +
        "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) +
        ") tessera_conv_direct(const In* __restrict__ x, const In* __restrict__ wt, " + params +
        "Out* __restrict__ y) {\n"
        "  const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "  if (idx >= kN * kP * kQ * (kK / kVecK)) return;\n" +
        (nhwc ? "  // NHWC: channel blocks fastest, then q, p, n.\n"
                "  const long long k0 = (idx % (kK / kVecK)) * kVecK;\n"
                "  long long rest = idx / (kK / kVecK);\n"
                "  const long long q = rest % kQ; rest /= kQ;\n"
                "  const long long p = rest % kP; const long long n = rest / kP;\n"
              : "  // NCHW: q fastest, then p, channel blocks, n.\n"
                "  const long long q = idx % kQ; long long rest = idx / kQ;\n"
                "  const long long p = rest % kP; rest /= kP;\n"
                "  const long long k0 = (rest % (kK / kVecK)) * kVecK; const long long n = rest / (kK / kVecK);\n") +
        "  float acc[kVecK];\n"
        "#pragma unroll\n"
        "  for (int j = 0; j < kVecK; ++j) acc[j] = 0.0f;\n"
        "  for (int r = 0; r < kR; ++r) {\n"
        "    const long long h = p * kStrideH + r * kDilH - kPadH;\n"
        "    if (h < 0 || h >= kH) continue;\n"
        "    for (int s = 0; s < kS; ++s) {\n"
        "      const long long w = q * kStrideW + s * kDilW - kPadW;\n"
        "      if (w < 0 || w >= kW) continue;\n"
        "#pragma unroll\n"
        "      for (int j = 0; j < kVecK; ++j) {\n"
        "        const long long k = k0 + j, g = k / kKg;\n"
        "        for (int c = 0; c < kCg; ++c) {\n" +
        (nhwc ? "          const float xv = to_float(x[((n * kH + h) * kW + w) * kC + g * kCg + c]);\n"
                "          const float wv = to_float(wt[((k * kR + r) * kS + s) * kCg + c]);\n"
              : "          const float xv = to_float(x[((n * kC + g * kCg + c) * kH + h) * kW + w]);\n"
                "          const float wv = to_float(wt[((k * kCg + c) * kR + r) * kS + s]);\n") +
        "          acc[j] = fmaf(xv, wv, acc[j]);\n"
        "        }\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "#pragma unroll\n"
        "  for (int j = 0; j < kVecK; ++j) {\n"
        "    const long long k = k0 + j;\n" +
        (nhwc ? "    const long long out_index = ((n * kP + p) * kQ + q) * kK + k;\n"
              : "    const long long out_index = ((n * kK + k) * kP + p) * kQ + q;\n") +
        "    float v = acc[j];\n    {\n" + epilogue + "    }\n"
        "    y[out_index] = from_float<Out>(v);\n"
        "  }\n"
        "}\n";
    KernelSource out;
    out.entry = "tessera_conv_direct";
    out.source = src;
    int64_t work = c.n * c.out_h() * c.out_w() * (c.k / vk);
    out.launch.grid[0] = (work + threads - 1) / threads;
    out.launch.block[0] = threads;
    return out;
  }

  // Distinct channel blocks among a warp's lanes: NHWC lanes take consecutive ones (up to
  // K / vec_k of them), NCHW lanes consecutive pixels of one.
  static int64_t nhwc_lanes(const Conv2dShape& c, int64_t vk) {
    return c.layout == Layout::kNHWC ? std::clamp<int64_t>(c.k / vk, 1, 32) : 1;
  }

  // Each thread computes vec_k output channels of one output pixel straight from global
  // memory (no shared-memory staging): a block covers `threads` such pieces along q and k.
  TilePlan tile_plan(const Workload& w, const Schedule& s) const override {
    const Conv2dShape& c = w.conv2d();
    int64_t threads = s.get("threads"), vk = s.get("vec_k");
    TilePlan p = whole_plan(w);
    int64_t per_group_k = c.k / c.groups;
    int64_t k_threads = std::max<int64_t>(1, std::min(threads, per_group_k / vk));
    set_tile(p, "n", 1);
    set_tile(p, "g", 1);
    set_tile(p, "p", 1);
    set_tile(p, "k", k_threads * vk);
    set_tile(p, "q", std::max<int64_t>(1, threads / k_threads));
    p.threads = threads;
    p.load_bytes = dtype_bytes(w.dtype);
    p.loads_in_flight = vk;
    p.registers = 32 + 2 * vk;
    // Per (r, s, c) and output channel of a thread, one filter load. NHWC: a warp's lanes take
    // consecutive channel blocks, whose filters lie vec_k * R * S * Cg elements apart, so a load
    // touches one line a lane (the input loads of a pixel are shared). NCHW: the lanes take
    // consecutive pixels of one channel block and share its filter lines.
    // Counted where lanes are a line or more apart, or half a line for groups of several
    // channels (a warp's load then touches lanes x stride / 128 lines); closer ones (depthwise
    // filters, 9 elements apart) share lines, and the other terms already rank those (measured
    // over predicted 0.67x on the H100's depthwise records; counting their lines made it 0.3x and
    // ranked vec_k 1 first where 2 measured fastest). Groups of 4 channels (72 bytes apart) were
    // not counted at all: predicted 7.4 and 137.6 us, measured 12.7 and 361.6 (ResNeXt-50's
    // 56x56 grouped 3x3 at batch 1 and 32, H100), the only grouped shapes it put below their
    // measurement; counted, 34.3 and 922, as over as the 8-channel groups' records (0.42x). Over
    // the H100 records, pairwise 0.805 -> 0.806, top-1 unchanged.
    const int64_t lanes_k = nhwc_lanes(c, vk);
    const int64_t stride = vk * c.r * c.s * (c.c / c.groups) * dtype_bytes(w.dtype);
    if (lanes_k > 1 && (stride >= 128 || (stride >= 64 && c.c / c.groups > 1))) {
      // The modelled block may reach past the axes (q by `threads`): count its useful threads.
      const double outputs = double(std::min(k_threads * vk, c.k) * std::min(threads / k_threads, c.out_w()));
      const double lines = std::min(double(lanes_k), std::ceil(double(lanes_k * stride) / 128.0));
      p.l1_lines = outputs / double(vk) / 32.0 * double(c.r * c.s * (c.c / c.groups) * vk) * lines;
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<KernelFamily> make_conv_direct_family() { return std::make_unique<ConvDirectFamily>(); }

}  // namespace tessera::kernels
