// Generic kernels of a graph run (graph_ops.h). Every kernel is one translation unit made of
// the shared prelude (prelude(): the GenericParams struct, element conversions, index
// decomposition) and one entry (entry_source(): the common signature and the grid-stride loop
// around a per-kind body). Each kind below builds its body and fills a GenericParams. Of the
// shape, only the walk enters the source (Walk: the rank after coalescing, the elements per
// thread step, 32- or 64-bit indices, which operands move as packs): one cubin serves every
// shape of a kind, its types and its walk, and the index arithmetic (which, not memory, bounds
// a per-element kernel of 2-byte elements) is unrolled for the rank and done once per V
// elements; copies and maps whose runs are contiguous and aligned load and store them whole.
//
// extra[] slots:
//   gather: [0] axis_stride, [1] axis_extent (graph_ops.h).
//   cumsum: [0] axis (of the index space, not reordered), [1] exclusive, [2] reverse.
//   gather_nd: [0] q (index components), [1] their stride in the indices, then for j < q
//           [2 + 2j] the extent and [3 + 2j] the element stride of the data dimension it indexes.
//   pool2d: [0] H, [1] W (input extents), [2] kh, [3] kw, [4] sh, [5] sw, [6] dh, [7] dw,
//           [8] pad_top, [9] pad_left, [10] pad_bottom, [11] pad_right, [12] count_include_pad
//           (0 or 1; average only), [13] 1 when the index space is [N, OH, OW, C] (an output
//           stored channels innermost: entries *_nhwc) instead of [N, C, OH, OW]. Max or
//           average and the index order are part of the kind (entries of their own).
//   reduce: [0] number of reduced dimensions r (0..8), then for j < r [1 + 2j] the extent and
//           [2 + 2j] the element stride of reduced dimension j (outermost first).
#include "kernels/graph_ops.h"

#include <algorithm>
#include <cstddef>

#include "core/error.h"
#include "core/hash.h"

namespace tessera::kernels {
namespace {

// The layout the device code declares (prelude()); both sides assert the size, the host also
// the offsets (NVRTC has no offsetof), so a member moved here fails to build until the device
// struct follows.
constexpr size_t kParamsBytes = 632;
static_assert(sizeof(GenericParams) == kParamsBytes,
              "GenericParams layout changed: update the device struct");
static_assert(offsetof(GenericParams, out_offset) == 80 && offsetof(GenericParams, in_offset) == 152 &&
                  offsetof(GenericParams, in_strides) == 184 && offsetof(GenericParams, extra) == 440,
              "GenericParams layout changed: update the device struct");
static_assert(kGenericMaxRank == 8 && kGenericMaxInputs == 4 && kGenericExtra == 24,
              "the device struct and the unrolled loops are written for these bounds");

constexpr int64_t kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;

// The struct, conversions and index helpers of every generic kernel. f16 and bf16 are
// common.cuh's raw storage types and conversions (round to nearest even), as every family's,
// so NVRTC needs no CUDA include path (cuda_fp16.h is not found without one). To i64
// truncates toward zero, NaN gives 0 and out-of-range values saturate; to u8 gives x != 0; u8
// reads as 0 or 1; integer to integer and same-type copies are exact (no float round trip).
std::string prelude() {
  return R"(#include "tessera/common.cuh"

struct GenericParams {
  long long count;
  int rank;
  int inputs;
  long long shape[8];
  long long out_offset;
  long long out_strides[8];
  long long in_offset[4];
  long long in_strides[4][8];
  long long extra[24];
};
static_assert(sizeof(GenericParams) == )" +
         std::to_string(kParamsBytes) + R"(, "GenericParams differs from the host's");

namespace tg {

using tessera::BF16;
using tessera::F16;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(F16 v) { return tessera::to_float(v); }
__device__ __forceinline__ float to_f32(BF16 v) { return tessera::to_float(v); }
__device__ __forceinline__ float to_f32(long long v) { return (float)v; }
__device__ __forceinline__ float to_f32(unsigned char v) { return v != 0 ? 1.0f : 0.0f; }

__device__ __forceinline__ float inf() { return tessera::inf(); }
constexpr long long kI64Max = 0x7fffffffffffffffLL;
constexpr long long kI64Min = -0x7fffffffffffffffLL - 1;

// put(o, v): o = v converted to o's type.
__device__ __forceinline__ void put(float& o, float v) { o = v; }
__device__ __forceinline__ void put(F16& o, float v) { o = tessera::from_float<F16>(v); }
__device__ __forceinline__ void put(BF16& o, float v) { o = tessera::from_float<BF16>(v); }
__device__ __forceinline__ void put(long long& o, float v) {
  if (v != v)
    o = 0;
  else if (v >= 9223372036854775808.0f)  // 2^63
    o = kI64Max;
  else if (v < -9223372036854775808.0f)
    o = kI64Min;
  else
    o = (long long)v;
}
__device__ __forceinline__ void put(unsigned char& o, float v) { o = v != 0.0f ? 1 : 0; }
__device__ __forceinline__ void put(F16& o, F16 v) { o = v; }
__device__ __forceinline__ void put(BF16& o, BF16 v) { o = v; }
__device__ __forceinline__ void put(long long& o, long long v) { o = v; }
__device__ __forceinline__ void put(long long& o, unsigned char v) { o = v != 0 ? 1 : 0; }
__device__ __forceinline__ void put(unsigned char& o, long long v) { o = v != 0 ? 1 : 0; }
__device__ __forceinline__ void put(unsigned char& o, unsigned char v) { o = v != 0 ? 1 : 0; }
// Every other pair goes through float.
template <class O, class I>
__device__ __forceinline__ void put(O& o, I v) { put(o, to_f32(v)); }

// q = k / e, r = k % e for k >= 0, e > 0; in 32 bits where both fit (a 64-bit division is
// several times slower).
__device__ __forceinline__ void divmod(long long k, long long e, long long& q, long long& r) {
  if (((unsigned long long)k | (unsigned long long)e) >> 32 == 0) {
    const unsigned q32 = (unsigned)k / (unsigned)e;
    q = q32;
    r = (unsigned)k - q32 * (unsigned)e;
  } else {
    q = k / e;
    r = k - q * e;
  }
}

// The index of element k of p.shape's first R dimensions, outermost first (zeros past R), in
// the index type Ix (int where the host found every offset within 32 bits: divisions and
// products in 32 bits are several times cheaper). The loops unroll, so idx and the parameter
// arrays are indexed by constants and stay in registers.
template <int R, class Ix>
__device__ __forceinline__ void unravel(const GenericParams& p, Ix k, Ix (&idx)[8]) {
#pragma unroll
  for (int d = 7; d >= 0; --d) {
    idx[d] = 0;
    if (d < R) {
      if (sizeof(Ix) == 4) {
        const Ix e = (Ix)p.shape[d], q = k / e;
        idx[d] = k - q * e;
        k = q;
      } else {
        long long q, r;
        divmod(k, p.shape[d], q, r);
        idx[d] = r;
        k = q;
      }
    }
  }
}

// N consecutive elements moved as one load or store (N * sizeof(T) is 2 to 16 bytes).
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <int N, class T>
__device__ __forceinline__ bool packs(const T* ptr) {
  return (unsigned long long)ptr % (sizeof(T) * N) == 0;
}

// base + sum_d idx[d] * strides[d] over the first R dimensions.
template <int R, class Ix>
__device__ __forceinline__ Ix offset(const Ix (&idx)[8], long long base, const long long (&strides)[8]) {
  Ix o = (Ix)base;
#pragma unroll
  for (int d = 0; d < R; ++d) o += idx[d] * (Ix)strides[d];
  return o;
}

}  // namespace tg
)";
}

// How a kernel walks its index space (source_shape()): the rank R, V consecutive elements of
// the innermost dimension per thread step (the index decomposed once for the V), and 32-bit
// indices where every offset fits.
struct Walk {
  int rank = 0, vec = 1;
  bool narrow = false;
};

Walk walk_of(const GenericParams& p, int max_vec = 8) {
  Walk w;
  w.rank = p.rank;
  // Offsets within 32 bits for the output and every input over the index space (the bodies
  // add gather indices and pooling taps in 64 bits), and k + the grid stride too.
  auto reach = [&](int64_t base, const int64_t* strides) {
    int64_t hi = std::abs(base);
    for (int d = 0; d < p.rank; ++d) hi += (p.shape[d] - 1) * std::abs(strides[d]);
    return hi;
  };
  int64_t most = std::max(reach(p.out_offset, p.out_strides), p.count);
  for (int j = 0; j < p.inputs; ++j) most = std::max(most, reach(p.in_offset[j], p.in_strides[j]));
  w.narrow = most < (int64_t{1} << 30);
  // Several elements per thread amortise the index decomposition; but keep enough threads
  // to fill the GPU (a small tensor gets one element per thread).
  if (p.rank > 0)
    for (int v : {8, 4, 2})
      if (v <= max_vec && p.shape[p.rank - 1] % v == 0 && p.count / v >= 64 * kThreads) {
        w.vec = v;
        break;
      }
  return w;
}

// How an entry places its body: once per element (the entry steps idx and o through the V
// elements), or once per thread step (the body handles the V elements itself).
enum class BodyPer { kElement, kStep };

// A per-element body's packed form: where the walk allows it (packable()), `check` (device
// code: the pointers are aligned for V-element packs) chooses at run time between `body`, one
// pack per thread step, and the element-by-element loop.
struct Packed {
  std::string check, body;
};

// One entry: the common signature, `setup` once per thread, `body` per element (or per step of
// V elements) with its index `idx` (type Ix) and output offset `o` in scope; R (the rank), V
// and Ix are compile-time constants of the source (walk_of(p, max_vec)), so a kernel is
// compiled per kind, types and walk.
std::string entry_source(const std::string& comment, const std::string& entry, const std::string& setup,
                         const std::string& body, const GenericParams& p, BodyPer per = BodyPer::kElement,
                         int max_vec = 8, const Packed& packed = {}) {
  const Walk w = walk_of(p, max_vec);
  std::string text = "// " + comment + "\n" + prelude() + "\nextern \"C\" __global__ void __launch_bounds__(" +
                     std::to_string(kThreads) + ") " + entry +
                     "(const void* in0, const void* in1, const void* in2, const void* in3, void* out, "
                     "GenericParams p) {\n"
                     "  constexpr int R = " + std::to_string(w.rank) + ", V = " + std::to_string(w.vec) + ";\n" +
                     "  using Ix = " + (w.narrow ? "int" : "long long") + ";\n" + setup;
  if (!packed.body.empty()) text += "  const bool packed = " + packed.check + ";\n";
  text +=
      "  const Ix grid_stride = (Ix)gridDim.x * blockDim.x * V;\n"
      "  for (Ix k = ((Ix)blockIdx.x * blockDim.x + threadIdx.x) * V; k < (Ix)p.count; k += grid_stride) {\n"
      "    Ix idx[8];\n"
      "    tg::unravel<R>(p, k, idx);\n"
      "    Ix o = tg::offset<R>(idx, p.out_offset, p.out_strides);\n";
  if (per == BodyPer::kStep) return text + body + "  }\n}\n";
  if (!packed.body.empty()) text += "    if (packed) {\n" + packed.body + "      continue;\n    }\n";
  return text +
         "#pragma unroll\n"
         "    for (int step = 0; step < V; ++step) {\n" +
         body +
         "      if (R > 0) {\n"
         "        idx[R > 0 ? R - 1 : 0] += 1;\n"
         "        o += (Ix)p.out_strides[R > 0 ? R - 1 : 0];\n"
         "      }\n"
         "    }\n"
         "  }\n}\n";
}

// Whether a per-element walk over `p` (its V from walk_of) moves whole packs: the output's
// V-runs are contiguous and start at multiples of V elements (so, on an aligned pointer, at
// aligned addresses), and each input's are too or are one broadcast element (innermost stride
// 0); every pack is at most 16 bytes. Per input: true where it is packed, false where
// broadcast. Empty: the walk does not pack.
std::vector<bool> packable(const GenericParams& p, int max_vec, int64_t out_bytes,
                           const std::vector<int64_t>& in_bytes) {
  const Walk w = walk_of(p, max_vec);
  const int R = p.rank;
  if (w.vec < 2 || R < 1 || w.vec * out_bytes > 16) return {};
  auto runs = [&](int64_t offset, const int64_t* strides) {
    if (strides[R - 1] != 1 || offset % w.vec != 0) return false;
    for (int d = 0; d + 1 < R; ++d)
      if (strides[d] % w.vec != 0) return false;
    return true;
  };
  if (!runs(p.out_offset, p.out_strides)) return {};
  std::vector<bool> packed;
  for (int j = 0; j < p.inputs; ++j) {
    if (p.in_strides[j][R - 1] == 0) {
      packed.push_back(false);
    } else if (w.vec * in_bytes[static_cast<size_t>(j)] <= 16 && runs(p.in_offset[j], p.in_strides[j])) {
      packed.push_back(true);
    } else {
      return {};
    }
  }
  return packed;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t d = 0; d < shape.size(); ++d) s += (d ? "," : "") + std::to_string(shape[d]);
  return s + "]";
}

// "  const T* name = static_cast<const T*>(var);" for the CUDA type T of `t`.
std::string typed(const std::string& name, StoreType t, const std::string& var) {
  std::string c(store_type_cuda(t));
  return "  const " + c + "* " + name + " = static_cast<const " + c + "*>(" + var + ");\n";
}

std::string typed_out(StoreType t) {
  std::string c(store_type_cuda(t));
  return "  " + c + "* y = static_cast<" + c + "*>(out);\n";
}

// The params of an index space `shape` written through `dst`; no inputs yet.
GenericParams base_params(const std::vector<int64_t>& shape, const StridedRef& dst) {
  TESSERA_CHECK(shape.size() <= static_cast<size_t>(kGenericMaxRank),
                "generic kernel of rank " + std::to_string(shape.size()) + " (at most 8)");
  TESSERA_CHECK(dst.strides.size() == shape.size(), "output strides " + std::to_string(dst.strides.size()) +
                                                        " for rank " + std::to_string(shape.size()));
  GenericParams p;
  p.count = 1;
  p.rank = static_cast<int32_t>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    TESSERA_CHECK(shape[d] >= 0, "negative extent in " + shape_text(shape));
    p.shape[d] = shape[d];
    p.count *= shape[d];
    p.out_strides[d] = dst.strides[d];
  }
  p.out_offset = dst.offset;
  return p;
}

// Sets input j of `p` (its strides over p's index space).
void set_input(GenericParams& p, int j, const StridedRef& ref) {
  TESSERA_CHECK(ref.strides.size() == static_cast<size_t>(p.rank),
                "input " + std::to_string(j) + " has " + std::to_string(ref.strides.size()) +
                    " strides for rank " + std::to_string(p.rank));
  p.in_offset[j] = ref.offset;
  for (int d = 0; d < p.rank; ++d) p.in_strides[j][d] = ref.strides[static_cast<size_t>(d)];
  p.inputs = std::max(p.inputs, j + 1);
}

// Rewrites p's index space to address the same elements faster: dimensions of extent 1 go,
// the rest are ordered by the output's stride (largest first, so consecutive threads write
// consecutive elements: an NHWC tensor is walked channels innermost), and neighbours that are
// contiguous in the output and in each of p's inputs merge into one. Every
// element still maps to the same output and input offsets; only the order of the walk changes.
void coalesce(GenericParams& p) {
  const int inputs = p.inputs;
  if (p.count == 0) return;
  struct Dim {
    int64_t extent, out, in[kGenericMaxInputs];
  };
  std::vector<Dim> dims;
  for (int d = 0; d < p.rank; ++d) {
    if (p.shape[d] == 1) continue;
    Dim x{p.shape[d], p.out_strides[d], {}};
    for (int j = 0; j < inputs; ++j) x.in[j] = p.in_strides[j][d];
    dims.push_back(x);
  }
  std::stable_sort(dims.begin(), dims.end(), [](const Dim& a, const Dim& b) { return a.out > b.out; });
  std::vector<Dim> merged;
  for (const Dim& x : dims) {
    bool joins = !merged.empty() && merged.back().out == x.out * x.extent;
    for (int j = 0; j < inputs && joins; ++j) joins = merged.back().in[j] == x.in[j] * x.extent;
    if (joins) {
      const int64_t outer = merged.back().extent;
      merged.back() = x;
      merged.back().extent *= outer;
    } else {
      merged.push_back(x);
    }
  }
  p.rank = static_cast<int32_t>(merged.size());
  for (int d = 0; d < kGenericMaxRank; ++d) {
    const bool live = d < p.rank;
    p.shape[d] = live ? merged[static_cast<size_t>(d)].extent : 0;
    p.out_strides[d] = live ? merged[static_cast<size_t>(d)].out : 0;
    for (int j = 0; j < inputs; ++j) p.in_strides[j][d] = live ? merged[static_cast<size_t>(d)].in[j] : 0;
  }
}

GenericKernel finish(std::string entry, std::string text, const GenericParams& p, std::string label,
                    int max_vec = 8) {
  GenericKernel k;
  k.source.entry = std::move(entry);
  k.source.source = std::move(text);
  const int64_t vec = walk_of(p, max_vec).vec, threads = (p.count + vec - 1) / vec;
  k.source.launch.grid[0] = std::clamp<int64_t>((threads + kThreads - 1) / kThreads, 1, kMaxBlocks);
  k.source.launch.block[0] = kThreads;
  k.params = p;
  k.label = std::move(label);
  return k;
}

}  // namespace

std::string eltwise_expression(EltwiseOp op, const std::string& v, const std::string& operand) {
  switch (op) {
    case EltwiseOp::kAdd: return "(" + v + " + " + operand + ")";
    case EltwiseOp::kSub: return "(" + v + " - " + operand + ")";
    case EltwiseOp::kMul: return "(" + v + " * " + operand + ")";
    case EltwiseOp::kDiv: return "(" + v + " / " + operand + ")";
    case EltwiseOp::kMax: return "fmaxf(" + v + ", " + operand + ")";
    case EltwiseOp::kMin: return "fminf(" + v + ", " + operand + ")";
    case EltwiseOp::kRelu: return "fmaxf(" + v + ", 0.0f)";
    case EltwiseOp::kGelu: return "tessera::gelu(" + v + ")";
    case EltwiseOp::kSigmoid: return "(1.0f / (1.0f + expf(-" + v + ")))";
    case EltwiseOp::kTanh: return "tanhf(" + v + ")";
    case EltwiseOp::kExp: return "expf(" + v + ")";
    case EltwiseOp::kNeg: return "(-" + v + ")";
    case EltwiseOp::kAbs: return "fabsf(" + v + ")";
  }
  TESSERA_UNREACHABLE("elementwise op");
}

namespace {

// What each store type is called, its device type and its size, in StoreType's order.
struct StoreInfo {
  std::string_view name, cuda;
  int64_t bytes;
};
const StoreInfo& store_info(StoreType t) {
  static constexpr StoreInfo kInfo[] = {{"f16", "tessera::F16", 2},
                                        {"bf16", "tessera::BF16", 2},
                                        {"f32", "float", 4},
                                        {"i64", "long long", 8},
                                        {"u8", "unsigned char", 1}};
  const auto k = static_cast<size_t>(t);
  TESSERA_CHECK(k < std::size(kInfo), "store type " + std::to_string(static_cast<int>(t)));
  return kInfo[k];
}

}  // namespace

std::string_view store_type_cuda(StoreType t) { return store_info(t).cuda; }
std::string_view store_type_name(StoreType t) { return store_info(t).name; }
int64_t store_bytes(StoreType t) { return store_info(t).bytes; }

GenericKernel strided_copy(StoreType in, StoreType out, const std::vector<int64_t>& shape,
                           const StridedRef& src, const StridedRef& dst) {
  GenericParams p = base_params(shape, dst);
  set_input(p, 0, src);
  coalesce(p);
  std::string types = std::string(store_type_name(in)) + "->" + std::string(store_type_name(out));
  std::string entry =
      "tessera_copy_" + std::string(store_type_name(in)) + "_" + std::string(store_type_name(out));
  // Packed: V elements read as one pack (or one broadcast element) and written as one.
  // Runs of up to 16 bytes of the wider type: a pack is one load or store.
  const int max_vec = static_cast<int>(16 / std::max(store_bytes(in), store_bytes(out)));
  Packed packed;
  const std::vector<bool> packs = packable(p, max_vec, store_bytes(out), {store_bytes(in)});
  if (!packs.empty()) {
    const std::string tin(store_type_cuda(in)), tout(store_type_cuda(out));
    packed.check = packs[0] ? "tg::packs<V>(y) && tg::packs<V>(x)" : "tg::packs<V>(y)";
    packed.body = "      const Ix i0 = tg::offset<R>(idx, p.in_offset[0], p.in_strides[0]);\n"
                  "      tg::Pack<" + tout + ", V> r;\n" +
                  (packs[0] ? "      const tg::Pack<" + tin + ", V> a = *reinterpret_cast<const tg::Pack<" + tin +
                                  ", V>*>(x + i0);\n"
                            : "      const " + tin + " a = x[i0];\n") +
                  "#pragma unroll\n"
                  "      for (int tg_lane = 0; tg_lane < V; ++tg_lane) tg::put(r.v[tg_lane], a" +
                  (packs[0] ? ".v[tg_lane]" : "") + ");\n" +
                  "      *reinterpret_cast<tg::Pack<" + tout + ", V>*>(y + o) = r;\n";
  }
  std::string text =
      entry_source("tessera generic kernel: copy " + types, entry, typed("x", in, "in0") + typed_out(out),
                   "    tg::put(y[o], x[tg::offset<R>(idx, p.in_offset[0], p.in_strides[0])]);\n", p,
                   BodyPer::kElement, max_vec, packed);
  return finish(entry, text, p, "copy " + types + " " + shape_text(shape), max_vec);
}

GenericKernel gather(StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& data,
                     const StridedRef& indices, int64_t axis_stride, int64_t axis_extent,
                     const StridedRef& out) {
  GenericParams p = base_params(out_shape, out);
  set_input(p, 0, data);
  set_input(p, 1, indices);
  coalesce(p);
  TESSERA_CHECK(axis_extent >= 0, "gather axis extent " + std::to_string(axis_extent));
  p.extra[0] = axis_stride;
  p.extra[1] = axis_extent;
  std::string t(store_type_name(type));
  std::string entry = "tessera_gather_" + t;
  std::string setup = typed("x", type, "in0") + typed("ix", StoreType::kI64, "in1") + typed_out(type) +
                      "  const long long axis_stride = p.extra[0], extent = p.extra[1];\n";
  std::string body =
      "    long long i = ix[tg::offset<R>(idx, p.in_offset[1], p.in_strides[1])];\n"
      "    if (i < 0) i += extent;\n"
      "    if (i >= 0 && i < extent)\n"
      "      tg::put(y[o], x[tg::offset<R>(idx, p.in_offset[0], p.in_strides[0]) + i * axis_stride]);\n"
      "    else\n"
      "      tg::put(y[o], 0.0f);\n";
  return finish(entry, entry_source("tessera generic kernel: gather " + t, entry, setup, body, p), p,
                "gather " + t + " " + shape_text(out_shape));
}

GenericKernel gather_nd(StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& data,
                        const StridedRef& indices, int64_t component_stride,
                        const std::vector<std::pair<int64_t, int64_t>>& indexed, const StridedRef& out) {
  TESSERA_CHECK(!indexed.empty() && indexed.size() <= 8,
                "gather_nd of " + std::to_string(indexed.size()) + " index components (1..8)");
  GenericParams p = base_params(out_shape, out);
  set_input(p, 0, data);
  set_input(p, 1, indices);
  coalesce(p);
  p.extra[0] = static_cast<int64_t>(indexed.size());
  p.extra[1] = component_stride;
  for (size_t j = 0; j < indexed.size(); ++j) {
    TESSERA_CHECK(indexed[j].first >= 0, "gather_nd extent " + std::to_string(indexed[j].first));
    p.extra[2 + 2 * j] = indexed[j].first;
    p.extra[3 + 2 * j] = indexed[j].second;
  }
  std::string t(store_type_name(type));
  std::string entry = "tessera_gather_nd_" + t;
  std::string setup = typed("x", type, "in0") + typed("ix", StoreType::kI64, "in1") + typed_out(type) +
                      "  const int q = (int)p.extra[0];\n"
                      "  const long long component = p.extra[1];\n";
  std::string body =
      "    const long long ib = tg::offset<R>(idx, p.in_offset[1], p.in_strides[1]);\n"
      "    long long at = tg::offset<R>(idx, p.in_offset[0], p.in_strides[0]);\n"
      "    bool inside = true;\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < 8; ++j) {\n"
      "      if (j >= q) continue;\n"
      "      const long long extent = p.extra[2 + 2 * j];\n"
      "      long long i = ix[ib + j * component];\n"
      "      if (i < 0) i += extent;\n"
      "      inside = inside && i >= 0 && i < extent;\n"
      "      at += i * p.extra[3 + 2 * j];\n"
      "    }\n"
      "    if (inside)\n"
      "      tg::put(y[o], x[at]);\n"
      "    else\n"
      "      tg::put(y[o], 0.0f);\n";
  return finish(entry, entry_source("tessera generic kernel: gather_nd " + t, entry, setup, body, p), p,
                "gather_nd " + t + " " + shape_text(out_shape));
}

GenericKernel cumsum(StoreType type, const std::vector<int64_t>& shape, const StridedRef& in,
                     const StridedRef& out, int axis, bool exclusive, bool reverse) {
  TESSERA_CHECK(axis >= 0 && static_cast<size_t>(axis) < shape.size(),
                "cumsum axis " + std::to_string(axis) + " of rank " + std::to_string(shape.size()));
  GenericParams p = base_params(shape, out);
  set_input(p, 0, in);
  p.extra[0] = axis;
  p.extra[1] = exclusive ? 1 : 0;
  p.extra[2] = reverse ? 1 : 0;
  const bool i64 = type == StoreType::kI64;
  std::string t(store_type_name(type));
  std::string entry = "tessera_cumsum_" + t;
  std::string setup = typed("x", type, "in0") + typed_out(type) +
                      "  const int ax = (int)p.extra[0];\n"
                      "  const bool exclusive = p.extra[1] != 0, reverse = p.extra[2] != 0;\n";
  std::string body =
      std::string(
          "    long long i = 0, n = 0, st = 0;\n"
          "#pragma unroll\n"
          "    for (int d = 0; d < 8; ++d)\n"
          "      if (d == ax) i = idx[d], n = p.shape[d], st = p.in_strides[0][d];\n"
          "    const long long base = tg::offset<R>(idx, p.in_offset[0], p.in_strides[0]) - i * st;\n"
          "    const long long lo = reverse ? (exclusive ? i + 1 : i) : 0;\n"
          "    const long long hi = reverse ? n : (exclusive ? i : i + 1);\n") +
      (i64 ? "    long long acc = 0;\n    for (long long j = lo; j < hi; ++j) acc += x[base + j * st];\n"
           : "    float acc = 0.0f;\n"
             "    for (long long j = lo; j < hi; ++j) acc += tg::to_f32(x[base + j * st]);\n") +
      "    tg::put(y[o], acc);\n";
  return finish(entry, entry_source("tessera generic kernel: cumsum " + t, entry, setup, body, p), p,
                "cumsum " + t + " " + shape_text(shape));
}

GenericKernel pool2d(StoreType type, const std::vector<int64_t>& in_shape, const StridedRef& in,
                     const std::vector<int64_t>& out_shape, const StridedRef& out, const PoolWindow& window) {
  TESSERA_CHECK(in_shape.size() == 4 && out_shape.size() == 4, "pool2d needs [N, C, H, W] shapes");
  TESSERA_CHECK(in.strides.size() == 4, "pool2d input needs 4 strides");
  TESSERA_CHECK(in_shape[0] == out_shape[0] && in_shape[1] == out_shape[1], "pool2d changes N or C");
  const PoolWindow& w = window;
  TESSERA_CHECK(w.kh >= 1 && w.kw >= 1 && w.sh >= 1 && w.sw >= 1 && w.dh >= 1 && w.dw >= 1,
                "pool2d window, strides and dilations must be positive");
  TESSERA_CHECK(w.pad_top >= 0 && w.pad_left >= 0 && w.pad_bottom >= 0 && w.pad_right >= 0,
                "pool2d pads must be non-negative");
  GenericParams p = base_params(out_shape, out);
  set_input(p, 0, in);
  // An output stored channels innermost (NHWC) is walked in that order, [N, OH, OW, C], so that
  // consecutive threads read and write consecutive channels; extra[13] says so. The input's
  // strides stay in N, C, H, W order.
  const bool channels_last = out.strides[1] == 1 && out_shape[1] > 1 && out_shape[2] * out_shape[3] > 1;
  if (channels_last) {
    const int order[4] = {0, 2, 3, 1};
    for (int d = 0; d < 4; ++d) {
      p.shape[d] = out_shape[static_cast<size_t>(order[d])];
      p.out_strides[d] = out.strides[static_cast<size_t>(order[d])];
    }
  }
  int64_t* e = p.extra;
  e[13] = channels_last ? 1 : 0;
  e[0] = in_shape[2], e[1] = in_shape[3];
  e[2] = w.kh, e[3] = w.kw, e[4] = w.sh, e[5] = w.sw, e[6] = w.dh, e[7] = w.dw;
  e[8] = w.pad_top, e[9] = w.pad_left, e[10] = w.pad_bottom, e[11] = w.pad_right;
  e[12] = w.count_include_pad ? 1 : 0;
  std::string t(store_type_name(type)),
      kind = std::string(w.max ? "maxpool2d" : "avgpool2d") + (channels_last ? "_nhwc" : "");
  std::string entry = "tessera_" + kind + "_" + t;
  // Channels innermost: V channels of a pixel per thread step, moved as one pack of up to 16
  // bytes per tap and one per result where the input's and the output's channel runs are
  // contiguous and start at multiples of V (and, at run time, the pointers are aligned).
  const int max_vec = channels_last ? static_cast<int>(16 / store_bytes(type)) : 1;
  const int64_t vec = walk_of(p, max_vec).vec;
  auto multiples = [&](int64_t offset, const int64_t* strides, int skip) {
    bool ok = offset % vec == 0;
    for (int d = 0; d < 4; ++d) ok = ok && (d == skip || strides[d] % vec == 0);
    return ok && strides[skip] == 1;
  };
  const bool packs =
      vec > 1 && multiples(p.in_offset[0], p.in_strides[0], 1) && multiples(p.out_offset, p.out_strides, 3);
  const std::string tc(store_type_cuda(type));
  std::string setup =
      typed("x", type, "in0") + typed_out(type) +
      (packs ? "  const bool packed = tg::packs<V>(x) && tg::packs<V>(y);\n" : "  constexpr bool packed = false;\n") +
      "  const long long H = p.extra[0], W = p.extra[1], kh = p.extra[2], kw = p.extra[3];\n"
      "  const long long sh = p.extra[4], sw = p.extra[5], dh = p.extra[6], dw = p.extra[7];\n"
      "  const long long pt = p.extra[8], pl = p.extra[9], pb = p.extra[10], pr = p.extra[11];\n"
      "  const long long s0 = p.in_strides[0][0], s1 = p.in_strides[0][1];\n"
      "  const long long s2 = p.in_strides[0][2], s3 = p.in_strides[0][3];\n";
  // Taps outside the input are skipped; `padded` counts the taps inside the padded extent. A
  // thread step takes V consecutive channels of one output pixel (channels innermost only), so
  // the window's bounds are worked out once for them.
  std::string body =
      std::string(channels_last ? "    const long long c = idx[3], oh = idx[1], ow = idx[2];\n"
                                : "    const long long c = idx[1], oh = idx[2], ow = idx[3];\n") +
      "    const long long base = p.in_offset[0] + idx[0] * s0 + c * s1;\n" +
      "    float acc[V];\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < V; ++j) acc[j] = " + (w.max ? "-tg::inf()" : "0.0f") + ";\n" +
      "    long long taps = 0, padded = 0;\n"
      "    for (long long r = 0; r < kh; ++r) {\n"
      "      const long long ih = oh * sh - pt + r * dh;\n"
      "      const bool vh = ih >= 0 && ih < H, ph = ih >= -pt && ih < H + pb;\n"
      "      for (long long s = 0; s < kw; ++s) {\n"
      "        const long long iw = ow * sw - pl + s * dw;\n"
      "        padded += ph && iw >= -pl && iw < W + pr;\n"
      "        if (!vh || iw < 0 || iw >= W) continue;\n"
      "        const long long at = base + ih * s2 + iw * s3;\n"
      "        tg::Pack<" + tc + ", V> tap;\n"
      "        if (packed) {\n"
      "          tap = *reinterpret_cast<const tg::Pack<" + tc + ", V>*>(x + at);\n"
      "        } else {\n"
      "#pragma unroll\n"
      "          for (int j = 0; j < V; ++j) tap.v[j] = x[at + j * s1];\n"
      "        }\n"
      "#pragma unroll\n"
      "        for (int j = 0; j < V; ++j) {\n"
      "          const float v = tg::to_f32(tap.v[j]);\n" +
      (w.max ? "          acc[j] = fmaxf(acc[j], v);\n" : "          acc[j] += v;\n") +
      "        }\n"
      "        ++taps;\n"
      "      }\n"
      "    }\n" +
      (w.max ? "" : "    const long long n = p.extra[12] ? padded : taps;\n") +
      "    const Ix os = (Ix)p.out_strides[R - 1];\n"
      "    tg::Pack<" + tc + ", V> res;\n"
      "#pragma unroll\n"
      "    for (int j = 0; j < V; ++j)\n" +
      (w.max ? "      tg::put(res.v[j], acc[j]);\n" : "      tg::put(res.v[j], n > 0 ? acc[j] / (float)n : 0.0f);\n") +
      "    if (packed) {\n"
      "      *reinterpret_cast<tg::Pack<" + tc + ", V>*>(y + o) = res;\n"
      "    } else {\n"
      "#pragma unroll\n"
      "      for (int j = 0; j < V; ++j) y[o + j * os] = res.v[j];\n"
      "    }\n";
  return finish(entry,
                entry_source("tessera generic kernel: " + kind + " " + t, entry, setup, body, p, BodyPer::kStep,
                             max_vec),
                p, kind + " " + t + " " + shape_text(in_shape) + "->" + shape_text(out_shape), max_vec);
}

GenericKernel map(const std::string& expression, const std::vector<StoreType>& inputs, StoreType out,
                  const std::vector<int64_t>& shape, const std::vector<StridedRef>& refs,
                  const StridedRef& dst) {
  TESSERA_CHECK(inputs.size() == refs.size(), "map with " + std::to_string(inputs.size()) +
                                                  " input types and " + std::to_string(refs.size()) +
                                                  " input refs");
  TESSERA_CHECK(!inputs.empty() && inputs.size() <= static_cast<size_t>(kGenericMaxInputs),
                "map with " + std::to_string(inputs.size()) + " inputs (1..4)");
  TESSERA_CHECK(!expression.empty() && expression.find('\n') == std::string::npos,
                "map expression must be one non-empty line");
  GenericParams p = base_params(shape, dst);
  std::string types, setup, body;
  for (size_t j = 0; j < inputs.size(); ++j) {
    const int i = static_cast<int>(j);
    set_input(p, i, refs[j]);
    std::string n = std::to_string(j), var(1, static_cast<char>('a' + i));
    types += std::string(store_type_name(inputs[j])) + "_";
    setup += typed("x" + n, inputs[j], "in" + n);
    body += "    const float " + var + " = tg::to_f32(x" + n + "[tg::offset<R>(idx, p.in_offset[" + n +
            "], p.in_strides[" + n + "])]);\n";
  }
  coalesce(p);
  types += "to_" + std::string(store_type_name(out));
  std::string entry = "tessera_map_" + types + "_" + hex64(stable_hash(expression));
  body += "    tg::put(y[o], (float)(" + expression + "));\n";
  // Packed: each input read as one pack of V (or one broadcast element), the V results written
  // as one pack.
  std::vector<int64_t> in_bytes;
  for (StoreType t : inputs) in_bytes.push_back(store_bytes(t));
  const int64_t widest = std::max(store_bytes(out), *std::max_element(in_bytes.begin(), in_bytes.end()));
  const int max_vec = static_cast<int>(16 / widest);
  Packed packed;
  const std::vector<bool> packs = packable(p, max_vec, store_bytes(out), in_bytes);
  if (!packs.empty()) {
    const std::string tout(store_type_cuda(out));
    std::string loads, lanes;
    packed.check = "tg::packs<V>(y)";
    for (size_t j = 0; j < inputs.size(); ++j) {
      const std::string n = std::to_string(j), t(store_type_cuda(inputs[j])), var(1, static_cast<char>('a' + j));
      const std::string at = "x" + n + " + tg::offset<R>(idx, p.in_offset[" + n + "], p.in_strides[" + n + "])";
      if (packs[j]) {
        packed.check += " && tg::packs<V>(x" + n + ")";
        loads += "      const tg::Pack<" + t + ", V> pk" + n + " = *reinterpret_cast<const tg::Pack<" + t + ", V>*>(" +
                 at + ");\n";
        lanes += "        const float " + var + " = tg::to_f32(pk" + n + ".v[tg_lane]);\n";
      } else {
        loads += "      const float s" + n + " = tg::to_f32(*(" + at + "));\n";
        lanes += "        const float " + var + " = s" + n + ";\n";
      }
    }
    packed.body = loads + "      tg::Pack<" + tout + ", V> r;\n#pragma unroll\n" +
                  "      for (int tg_lane = 0; tg_lane < V; ++tg_lane) {\n" + lanes +
                  "        tg::put(r.v[tg_lane], (float)(" + expression + "));\n      }\n" +
                  "      *reinterpret_cast<tg::Pack<" + tout + ", V>*>(y + o) = r;\n";
  }
  std::string text = entry_source("tessera generic kernel: map " + types + ": " + expression, entry,
                                  setup + typed_out(out), body, p, BodyPer::kElement, max_vec, packed);
  return finish(entry, text, p, "map " + expression + " " + shape_text(shape), max_vec);
}

namespace {

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kMean:
      return "mean";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
    case ReduceOp::kProd:
      return "prod";
  }
  TESSERA_UNREACHABLE("reduce op " + std::to_string(static_cast<int>(op)));
}

// The accumulation of one reduce kind, as device code declaring Acc (the accumulator type),
// `identity`, load(x) -> Acc, combine(acc, v) and result(acc, n) (n: the reduced element count).
// Floats accumulate in float; int64 in int64, exactly, sums and products wrapping as the host
// evaluation's do.
std::string reduce_code(ReduceOp op, StoreType type) {
  const bool i64 = type == StoreType::kI64;
  std::string identity, step, result = "acc";
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean:
      identity = i64 ? "0" : "0.0f";
      step = i64 ? "(long long)((unsigned long long)acc + (unsigned long long)v)" : "acc + v";
      if (op == ReduceOp::kMean) result = i64 ? "n > 0 ? acc / n : 0LL" : "acc / (float)n";
      break;
    case ReduceOp::kProd:
      identity = i64 ? "1" : "1.0f";
      step = i64 ? "(long long)((unsigned long long)acc * (unsigned long long)v)" : "acc * v";
      break;
    case ReduceOp::kMax:
      identity = i64 ? "tg::kI64Min" : "-tg::inf()";
      step = i64 ? "v > acc ? v : acc" : "fmaxf(acc, v)";
      break;
    case ReduceOp::kMin:
      identity = i64 ? "tg::kI64Max" : "tg::inf()";
      step = i64 ? "v < acc ? v : acc" : "fminf(acc, v)";
      break;
  }
  const std::string cuda(store_type_cuda(type));
  std::string code = std::string("  using Acc = ") + (i64 ? "long long" : "float") + ";\n";
  code += "  const Acc identity = " + identity + ";\n";
  code += "  auto load = [](" + cuda + " x) -> Acc { return " + (i64 ? "x" : "tg::to_f32(x)") + "; };\n";
  code += "  auto combine = [](Acc acc, Acc v) -> Acc { return " + step + "; };\n";
  return code + "  auto result = [](Acc acc, long long n) -> Acc { return " + result + "; };\n";
}

}  // namespace

GenericKernel reduce(ReduceOp op, StoreType type, const std::vector<int64_t>& out_shape, const StridedRef& in,
                     const std::vector<std::pair<int64_t, int64_t>>& reduced, const StridedRef& out) {
  TESSERA_CHECK(reduced.size() <= 8,
                "reduce over " + std::to_string(reduced.size()) + " dimensions (at most 8)");
  GenericParams p = base_params(out_shape, out);
  set_input(p, 0, in);
  p.extra[0] = static_cast<int64_t>(reduced.size());
  for (size_t j = 0; j < reduced.size(); ++j) {
    TESSERA_CHECK(reduced[j].first >= 0, "negative reduced extent");
    p.extra[1 + 2 * j] = reduced[j].first;
    p.extra[2 + 2 * j] = reduced[j].second;
  }
  coalesce(p);
  std::string t(store_type_name(type)), name = reduce_name(op);
  std::string entry = "tessera_reduce_" + name + "_" + t;
  std::string setup = typed("x", type, "in0") + typed_out(type) + reduce_code(op, type) +
                      "  const int r = (int)p.extra[0];\n"
                      "  long long n = 1;\n"
                      "#pragma unroll\n"
                      "  for (int j = 0; j < 8; ++j)\n"
                      "    if (j < r) n *= p.extra[1 + 2 * j];\n";
  const std::string body =
      "    const long long base = tg::offset<R>(idx, p.in_offset[0], p.in_strides[0]);\n"
      "    Acc acc = identity;\n"
      "    for (long long t = 0; t < n; ++t) {\n"
      "      long long rest = t, at = base;\n"
      "#pragma unroll\n"
      "      for (int j = 7; j >= 0; --j) {\n"
      "        if (j >= r) continue;\n"
      "        long long i;\n"
      "        tg::divmod(rest, p.extra[1 + 2 * j], rest, i);\n"
      "        at += i * p.extra[2 + 2 * j];\n"
      "      }\n"
      "      acc = combine(acc, load(x[at]));\n"
      "    }\n"
      "    tg::put(y[o], result(acc, n));\n";
  return finish(entry, entry_source("tessera generic kernel: reduce " + name + " " + t, entry, setup, body, p),
                p, "reduce " + name + " " + t + " " + shape_text(out_shape));
}

}  // namespace tessera::kernels
