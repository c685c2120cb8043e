// Hopper GEMM (sm_90a: wgmma, TMA, mbarrier ring, warp specialisation, persistent tiles) for
// f16/bf16 matmul and batch_matmul with f32 accumulation, and the parts of it the Hopper
// convolutions share (knobs, rules, source and launch, tile plan). Device code:
// kernels/cuda/gemm_wgmma.cuh; the wgmma wrapper for the chosen tile width is generated here.
#include <algorithm>

#include "core/error.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

constexpr const char* kConsumers = "consumers";
constexpr const char* kTmaStore = "tma_store";
constexpr const char* kPingpong = "pingpong";
constexpr const char* kClusterM = "cluster_m";
constexpr const char* kBlocksPerSm = "blocks_per_sm";
constexpr int64_t kOneBlockPerSm = 1;  // what records from before the blocks_per_sm knob ran
// f32 accumulators per consumer thread: of the 232 registers setmaxnreg gives each of two
// consumer warpgroups (and of the 255 of one), or of the 152 of each of three.
int64_t max_accumulators(int64_t consumers) { return consumers == 3 ? 96 : 160; }
constexpr int64_t kAlignSlack = 1024;    // dynamic shared memory is aligned to 1024 bytes in the kernel
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;  // split-K partial sums

// Output rows a consumer warpgroup computes per tile: its share, or the whole tile (ping-pong).
int64_t consumer_rows(int64_t bm, int64_t consumers, bool pingpong) { return pingpong ? bm : bm / consumers; }

int64_t smem_bytes(int64_t bm, int64_t bn, int64_t bk, int64_t stages, int64_t consumers, bool tma_store, bool pingpong) {
  return stages * (bm + bn) * bk * 2 + (tma_store ? consumers * consumer_rows(bm, consumers, pingpong) * bn * 2 : 0) +
         kAlignSlack + (2 * stages + 4) * 8;
}

int64_t smem_bytes(const Schedule& s) {
  return smem_bytes(s.get(knob::kBlockM), s.get(knob::kBlockN), s.get(knob::kBlockK), s.get(knob::kStages), s.get(kConsumers),
                    s.get(kTmaStore) != 0, s.get(kPingpong) != 0);
}

// `struct Mma { static void run(float (&d)[BN / 2], desc_a, desc_b, accumulate); }` for one
// wgmma.mma_async m64 x BN x k16 with f32 accumulators; `trans_b` is wgmma's imm-trans-b
// (1: B is N-major, i.e. a row-major [K, N] matrix).
std::string mma_struct(int64_t bn, DType dtype, bool n_major_b) {
  const int64_t regs = bn / 2;
  const std::string type = dtype == DType::kBF16 ? "bf16" : "f16";
  std::string list, operands;
  for (int64_t i = 0; i < regs; ++i) {
    list += (i ? ", %" : "%") + std::to_string(i);
    operands += std::string(i ? ", " : "") + "\"+f\"(d[" + std::to_string(i) + "])";
  }
  const std::string a = std::to_string(regs), b = std::to_string(regs + 1), p = std::to_string(regs + 2);
  return "struct Mma {\n"
         "  __device__ __forceinline__ static void run(float (&d)[" + std::to_string(regs) +
         "], unsigned long long a, unsigned long long b, int accumulate) {\n"
         "    asm volatile(\"{\\n .reg .pred p;\\n setp.ne.b32 p, %" + p + ", 0;\\n\"\n"
         "                 \"wgmma.mma_async.sync.aligned.m64n" + std::to_string(bn) + "k16.f32." + type + "." + type +
         " {" + list + "}, %" + a + ", %" + b + ", p, 1, 1, 0, " + (n_major_b ? "1" : "0") + ";\\n}\\n\"\n"
         "                 : " + operands + "\n"
         "                 : \"l\"(a), \"l\"(b), \"r\"(accumulate));\n"
         "  }\n"
         "};\n";
}

// The entry's first thread (the TMA producer) fetches the tensor maps' descriptors into the
// descriptor cache while the barriers are set up, rather than at each map's first copy (sm_90a
// only: an export also builds the kernel for other GPUs, where it never runs).
std::string prefetch_maps(size_t loaded, bool tma_store, bool staged_residual) {
  std::vector<std::string> maps;
  if (loaded == 2) maps.push_back("map_a");
  if (loaded >= 1) maps.push_back("map_b");
  if (tma_store) maps.push_back("map_c");
  if (staged_residual) maps.push_back("map_r");
  if (maps.empty()) return "";
  std::string code = "#if TESSERA_SM90A\n  if (threadIdx.x == 0) {\n";
  for (const std::string& map : maps)
    code += "    asm volatile(\"prefetch.tensormap [%0];\\n\" ::\"l\"(reinterpret_cast<unsigned long long>(&" + map +
            ")) : \"memory\");\n";
  return code + "  }\n#endif\n";
}

// Sets the strides of `spec`, a map over [batch][rows][cols] 2-byte matrices (dims {cols, rows,
// batch}), for the operand laid out as `o` (dense when nullopt); `split` > 0: the batch in two
// levels of `split`, as a four-dimensional map (the inner level third).
void lay_out(TensorMapSpec& spec, const std::optional<OperandStrides>& o, int64_t split) {
  const int64_t cols = spec.dims[0], rows = spec.dims[1], batch = spec.dims[2];
  const OperandStrides st = o ? *o : OperandStrides{cols, rows * cols, batch, 0};
  spec.strides_bytes = {st.row * 2, st.inner * 2};
  if (split) {
    spec.dims = {cols, rows, split, batch / split};
    spec.strides_bytes.push_back((st.inner_count < batch ? st.outer : st.inner * split) * 2);
    spec.box.push_back(1);
  }
}

class GemmWgmmaFamily : public KernelFamily {
 public:
  std::string_view name() const override { return "gemm_wgmma"; }

  bool supports(const Workload& w) const override {
    return (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) &&
           (w.dtype == DType::kF16 || w.dtype == DType::kBF16) && !w.matmul().trans_a;
  }

  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override { return wgmma_space(); }

  std::optional<std::string> validate(const Schedule& s, const Workload& w, const HardwareSpec& hw) const override {
    if (s.family != name()) return "schedule is for family " + s.family;
    if (!supports(w)) return "gemm_wgmma runs f16/bf16 matmul with A not transposed";
    const MatmulShape& m = w.matmul();
    if (m.k % 8 != 0) return "k must be a multiple of 8 (16-byte TMA row strides)";
    if (!m.trans_b && m.n % 8 != 0) return "n must be a multiple of 8 when B is [K, N] (16-byte TMA row strides)";
    const int64_t bn = s.get(knob::kBlockN);
    if (!m.trans_b && bn % 64 != 0 && bn != 32 && bn != 16)
      return "block_n must be 16, 32 or a multiple of 64 when B is [K, N] (TMA boxes of a 32-, 64- or 128-byte swizzle)";
    const int64_t bk = s.get(knob::kBlockK);
    return check_wgmma(s, w, bk == 64 || bk == 32 ? (m.k + bk - 1) / bk : 1, hw, m.trans_b);
  }

  KernelSource emit(const Workload& w, const Schedule& s) const override { return emit_strided(w, s, {}); }

  // A and B are read only through their tensor maps, which take any 16-byte strides; a batch in
  // two levels needs both to split it alike (four-dimensional maps). C is written through its
  // map, or from registers and by split-K's reduction at OutAt's offsets; not with a residual
  // (whose staged copy shares C's map).
  bool reads_strided(const Workload& w, const OperandLayouts& layouts) const override {
    if (!supports(w)) return false;
    const MatmulShape& m = w.matmul();
    if (m.k % 8 != 0 || (!m.trans_b && m.n % 8 != 0)) return false;  // as validate() requires
    if (layouts[2] && std::find(w.epilogue.begin(), w.epilogue.end(), EpilogueOp::kResidual) != w.epilogue.end())
      return false;
    const int64_t batch = m.batch;
    std::optional<int64_t> split;
    for (size_t k = 0; k < layouts.size(); ++k) {
      const auto& o = layouts[k];
      if (!o) continue;
      for (int64_t stride : {o->row, o->inner, o->outer})
        if (stride < 0 || stride % 8 != 0) return false;  // 16-byte TMA strides
      if (o->row == 0 || (batch > 1 && o->inner == 0)) return false;
      if (o->inner_count < 1 || batch % o->inner_count != 0) return false;
      if (o->inner_count < batch) {
        if (o->outer == 0) return false;
        if (k == 2) continue;  // C splits the batch on its own
        if (split && *split != o->inner_count) return false;
        split = o->inner_count;
      }
    }
    return true;
  }

  KernelSource emit_strided(const Workload& w, const Schedule& s, const OperandLayouts& layouts) const override {
    TESSERA_CHECK(reads_strided(w, layouts), "gemm_wgmma cannot read the operands of " + w.key() + " as laid out");
    const MatmulShape& m = w.matmul();
    int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
    const int64_t cluster = s.get(kClusterM);
    // A batch in two levels (batch x heads, say): four-dimensional maps, the inner level third.
    int64_t split = 0;  // A's and B's
    for (size_t k = 0; k < 2; ++k)
      if (layouts[k] && layouts[k]->inner_count < m.batch) split = layouts[k]->inner_count;
    const std::string loads = "GemmLoads<In, " + std::to_string(m.k) + ", " + (m.trans_b ? "true" : "false") + ", " +
                              std::to_string(bm) + ", " + std::to_string(bn) + ", " + std::to_string(bk) + ", " +
                              std::to_string(cluster) + (split ? ", " + std::to_string(split) : "") + ">";
    // A: [batch][M][K]; B: [batch][N][K] (trans_b) or [batch][K][N], read in 64-column boxes (a
    // narrow tile: one box of its 32 or 16).
    // K-major boxes are swizzled over their rows of bk elements (128 or 64 bytes).
    const int k_swizzle = static_cast<int>(bk * 2);
    // The map of an operand of `rows` x `cols` matrices (cols innermost), dense or as laid out.
    auto map = [&](int tensor, int64_t cols, int64_t rows, const std::optional<OperandStrides>& o,
                   std::vector<int64_t> box, int swizzle) {
      TensorMapSpec spec{tensor, w.dtype, {cols, rows, m.batch}, {}, std::move(box), swizzle};
      lay_out(spec, o, split);
      return spec;
    };
    TensorMapSpec a = map(0, m.k, m.m, layouts[0], {bk, bm, 1}, k_swizzle);
    // With a cluster each block loads 1 / cluster of B's tile and multicasts it.
    // A [K, N] B: boxes of 64 columns (128-byte rows), or one box of a narrow tile's 32 or 16.
    const int64_t box_n = std::min<int64_t>(bn, 64);
    TensorMapSpec b = m.trans_b ? map(1, m.k, m.n, layouts[1], {bk, bn / cluster, 1}, k_swizzle)
                                : map(1, m.n, m.k, layouts[1], {box_n, bk / cluster, 1}, static_cast<int>(box_n * 2));
    return emit_wgmma(w, s, "tessera_gemm_wgmma", "gemm_wgmma.cuh", w.key(), "", loads, {a, b}, false, "A", layouts[2]);
  }

  TilePlan tile_plan(const Workload& w, const Schedule& s) const override { return wgmma_plan(w, s); }
};

}  // namespace

std::vector<KnobDomain> wgmma_space() {
  return {{std::string(knob::kBlockM), {64, 128, 192, 256}},
          {std::string(knob::kBlockN), {8, 16, 32, 64, 128, 192, 256}},
          {std::string(knob::kBlockK), {64, 32}},
          {std::string(knob::kStages), {2, 3, 4, 5, 6, 8, 12, 16}},
          {kConsumers, {1, 2, 3}},
          {std::string(knob::kGroupM), {1, 8, 16}},
          {kTmaStore, {0, 1}},
          {kPingpong, {0, 1}},
          {kClusterM, {1, 2}},
          {std::string(knob::kSplitK), {1, 2, 4, 8}},
          {kBlocksPerSm, {1, 2}, kOneBlockPerSm}};
}

int64_t wgmma_blocks_per_sm(const Schedule& s) { return s.find(kBlocksPerSm).value_or(kOneBlockPerSm); }

std::optional<std::string> check_wgmma(const Schedule& s, const Workload& gemm, int64_t k_steps, const HardwareSpec& hw,
                                       bool k_major_b) {
  if (hw.cc_major != 9) return "wgmma and setmaxnreg need an sm_90 (Hopper) GPU";
  const MatmulShape& m = gemm.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
  int64_t stages = s.get(knob::kStages), consumers = s.get(kConsumers), group = s.get(knob::kGroupM);
  if (bk != 64 && bk != 32) return "block_k must be 64 or 32 (one 128- or 64-byte swizzle row)";
  if (consumers < 1 || consumers > 3) return "consumers must be 1, 2 or 3 warpgroups";
  int64_t pingpong = s.get(kPingpong);
  if (pingpong != 0 && pingpong != 1) return "pingpong must be 0 or 1";
  if (pingpong && consumers != 2) return "pingpong needs two consumer warpgroups";
  if (bm % 64 != 0 || consumer_rows(bm, consumers, pingpong) % 64 != 0)
    return "block_m must be a multiple of 64 per consumer warpgroup";
  if (bn % 8 != 0 || bn < 8 || bn > 256) return "block_n must be a multiple of 8 up to 256 (wgmma's n)";
  if (bm > 256) return "block_m above 256 exceeds a TMA box";
  if ((consumer_rows(bm, consumers, pingpong) / 64) * (bn / 2) > max_accumulators(consumers))
    return "a consumer's accumulators exceed " + std::to_string(max_accumulators(consumers)) + " registers per thread" +
           (consumers == 3 ? " (three consumer warpgroups)" : "");
  if (stages < 2) return "stages must be at least 2";
  if (group < 1) return "group_m must be positive";
  int64_t tma_store = s.get(kTmaStore);
  if (tma_store != 0 && tma_store != 1) return "tma_store must be 0 or 1";
  if (tma_store && dtype_bytes(gemm.out_dtype) != 2) return "tma_store stages 2-byte outputs only";
  if (tma_store && bn % 64 != 0) return "tma_store needs block_n a multiple of 64 (the staging tile's 128-byte rows)";
  // Rows of C that are not 16-byte aligned (n not a multiple of 8) take no tensor map: the
  // warpgroup copies its staged tile out (copies_out); a residual is still loaded by TMA.
  if (tma_store && copies_out(gemm, std::nullopt) &&
      std::find(gemm.epilogue.begin(), gemm.epilogue.end(), EpilogueOp::kResidual) != gemm.epilogue.end())
    return "tma_store with a residual loads it by TMA: n must be a multiple of 8 (16-byte row strides)";
  // Measured on the H100 (BERT's 4096-token GEMMs, 192x128 tiles): three consumers storing
  // from registers took 1.5-2.6x as long as through the staging tile.
  if (consumers == 3 && !tma_store) return "three consumer warpgroups store through TMA (tma_store 1)";
  int64_t cluster = s.get(kClusterM);
  if (cluster != 1 && cluster != 2) return "cluster_m must be 1 or 2 blocks";
  // Measured on the H100 (BERT's 4096-token GEMMs, 192x128 and 192x192 tiles): pairs were 7-16 %
  // slower than single blocks, and a staged residual left the consumers spilling.
  if (cluster == 2 && consumers == 3) return "three consumer warpgroups run without a cluster (cluster_m 1)";
  if (cluster == 2 && k_major_b && (bn / 2) % 8 != 0)
    return "cluster_m 2 multicasts halves of B's tile: block_n / 2 must be a multiple of 8 (swizzle atoms)";
  int64_t split = s.get(knob::kSplitK);
  if (split < 1) return "split_k must be positive";
  if (split > 1 && (pingpong || tma_store))
    return "split_k above 1 stores f32 partial sums from registers: no pingpong, no tma_store";
  int64_t per_slice = (k_steps + split - 1) / split;
  if ((split - 1) * per_slice >= k_steps)
    return "split_k " + std::to_string(split) + " leaves a slice of the " + std::to_string(k_steps) + " k steps empty";
  if (split > 1 && split * m.batch * m.m * m.n * 4 > kMaxWorkspaceBytes) return "split-K workspace above 1 GiB";
  int64_t smem = smem_bytes(s);
  if (smem > hw.smem_per_block_bytes)
    return "shared memory " + std::to_string(smem) + " B exceeds " + std::to_string(hw.smem_per_block_bytes) + " B";
  // Two blocks per SM: one block's epilogue and pipeline fill overlap the other's MMAs. Each
  // keeps 128 registers a thread (no setmaxnreg: one consumer warpgroup) and half the SM's
  // shared memory.
  const int64_t per_sm = wgmma_blocks_per_sm(s);
  if (per_sm != 1 && per_sm != 2) return "blocks_per_sm must be 1 or 2";
  if (per_sm == 2) {
    if (consumers != 1) return "blocks_per_sm 2 takes one consumer warpgroup (two blocks share the registers)";
    if ((bm / 64) * (bn / 2) > 64) return "blocks_per_sm 2: a consumer's accumulators exceed 64 of its 128 registers";
    if (2 * (smem + 1024) > hw.smem_per_sm_bytes)
      return "blocks_per_sm 2: two blocks' shared memory (2 x " + std::to_string(smem + 1024) + " B) exceeds the SM's " +
             std::to_string(hw.smem_per_sm_bytes) + " B";
  }
  int64_t tiles = ((m.m + bm - 1) / bm + 1) * ((m.n + bn - 1) / bn) * m.batch * split;
  if (tiles > (int64_t{1} << 31) - 1 || m.m * m.n > (int64_t{1} << 31) - 1 || k_steps * bk > (int64_t{1} << 31) - 1)
    return "problem too large for 32-bit tile indices";
  return std::nullopt;
}

// `struct OutAt` (gemm::DenseOut's form) for an output that lies as `o` says.
std::string out_at_struct(const OperandStrides& o, int64_t batch) {
  const bool two = o.inner_count < batch;
  return "struct OutAt {\n  static constexpr long long kRow = " + std::to_string(o.row) +
         ";\n  static constexpr int kSplit = " + std::to_string(two ? o.inner_count : 0) +
         ";\n  __device__ static long long batch(long long b) { return " +
         (two ? "(b % " + std::to_string(o.inner_count) + ") * " + std::to_string(o.inner) + " + (b / " +
                    std::to_string(o.inner_count) + ") * " + std::to_string(o.outer)
              : "b * " + std::to_string(o.inner)) +
         "; }\n};\n";
}

bool copies_out(const Workload& gemm, const std::optional<OperandStrides>& c_layout) {
  return !c_layout && (gemm.matmul().n * dtype_bytes(gemm.out_dtype)) % 16 != 0;
}

KernelSource emit_wgmma(const Workload& gemm, const Schedule& s, const std::string& entry, const std::string& header,
                        const std::string& comment, const std::string& prelude, const std::string& loads,
                        std::vector<TensorMapSpec> maps, bool workspace, const std::string& a_pointer,
                        const std::optional<OperandStrides>& c_layout) {
  const MatmulShape& m = gemm.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN);
  int64_t stages = s.get(knob::kStages), consumers = s.get(kConsumers), group = s.get(knob::kGroupM);
  const bool tma_store = s.get(kTmaStore) != 0, pingpong = s.get(kPingpong) != 0;
  const int64_t cluster = s.get(kClusterM), split = s.get(knob::kSplitK);
  // C's TMA-store map; none where the staged tile is copied out by the warpgroup instead
  // (gemm_wgmma.cuh's kCopyOut).
  const bool map_c = tma_store && !copies_out(gemm, c_layout);
  EpilogueCode epi = matmul_epilogue_code(gemm);
  // With TMA stores, a residual is copied by TMA into the staging tile (map_r, over the
  // residual as map_c is over C) while the tile computes.
  const bool staged_residual =
      tma_store && std::find(gemm.epilogue.begin(), gemm.epilogue.end(), EpilogueOp::kResidual) != gemm.epilogue.end();
  int64_t threads = 128 * (consumers + 1), per_sm = wgmma_blocks_per_sm(s);
  std::string src =
      source_head(comment + " | " + s.key(), header, gemm) + epi.type + mma_struct(bn, gemm.dtype, !m.trans_b) + prelude +
      (c_layout ? out_at_struct(*c_layout, m.batch) : std::string()) +
      "extern \"C\" __global__ void __launch_bounds__(" + std::to_string(threads) + ", " + std::to_string(per_sm) + ") " +
      (cluster > 1 ? "TESSERA_CLUSTER_DIMS(" + std::to_string(cluster) + ", 1, 1) " : std::string()) + entry +
      "(const In* __restrict__ A, const In* __restrict__ B, " + epi.params + "Out* __restrict__ C" +
      (split > 1 || workspace ? ", float* __restrict__ W" : "") +
      (maps.empty()       ? ""
       : maps.size() == 1 ? ", const __grid_constant__ TensorMap map_b"
                          : ", const __grid_constant__ TensorMap map_a, const __grid_constant__ TensorMap map_b") +
      (map_c ? ", const __grid_constant__ TensorMap map_c" : "") +
      (staged_residual ? ", const __grid_constant__ TensorMap map_r" : "") + ") {\n" +
      (maps.empty()       ? "  const TensorMap map_a{}, map_b{};  // unused: the producer's threads gather both operands\n"
       : maps.size() == 1 ? "  const TensorMap map_a{};  // unused: the producer's threads gather A\n"
                          : "") +
      prefetch_maps(maps.size(), map_c, staged_residual) +
      "  const Epilogue epilogue{" + epi.init + "};\n"
      "  gemm_wgmma<In, Out, " + std::to_string(m.m) + ", " + std::to_string(m.n) + ", " + std::to_string(m.batch) + ", " +
      std::to_string(bm) + ", " + std::to_string(bn) + ", " + std::to_string(s.get(knob::kBlockK)) + ", " +
      std::to_string(stages) + ", " + std::to_string(consumers) + ", " + std::to_string(group) + ", " +
      (tma_store ? "true" : "false") + ", " + (pingpong ? "true" : "false") + ", " + std::to_string(cluster) + ", " +
      std::to_string(split) + ", " + loads + ", Epilogue, Mma" + (c_layout ? ", OutAt" : "") + ">(" + a_pointer + ", B, C, " +
      (split > 1 ? "W" : "nullptr") +
      ", epilogue, map_a, map_b, " + (map_c ? "&map_c" : "nullptr") + ", " + (staged_residual ? "&map_r" : "nullptr") +
      ");\n}\n";
  if (split > 1) src += splitk_reduce_source(entry, gemm, split, c_layout ? "OutAt" : "");  // sums the slices, applies the epilogue
  LaunchGeometry g;
  // Work units: clusters of `cluster` vertically adjacent tiles (the last one's second tile
  // may lie below M: its loads zero-fill and its stores drop).
  g.grid[0] = ((m.m + bm * cluster - 1) / (bm * cluster)) * ((m.n + bn - 1) / bn) * m.batch * split * cluster;
  g.block[0] = threads;
  g.dynamic_smem_bytes = smem_bytes(s);
  g.persistent = true;
  g.blocks_per_sm = per_sm;
  g.cluster = cluster;
  KernelSource out(entry, src, g);
  out.tensor_maps = std::move(maps);
  out.sm90a = true;
  if (split > 1) add_splitk_reduce(out, gemm, split);
  if (map_c) {  // C: [batch][M][N], stored in 64-column boxes of a consumer's rows
    int out_index = static_cast<int>(gemm.expr().tensors.size()) - 1;
    TensorMapSpec c{out_index, gemm.out_dtype, {m.n, m.m, m.batch}, {m.n * 2, m.m * m.n * 2},
                    {64, consumer_rows(bm, consumers, pingpong), 1}, 128};
    if (c_layout)  // strided (no residual then: reads_strided)
      lay_out(c, c_layout, c_layout->inner_count < m.batch ? c_layout->inner_count : 0);
    out.tensor_maps.push_back(c);
    if (staged_residual) {  // the tensor after A, B and the epilogue's inputs before it
      c.tensor = 2;
      for (EpilogueOp op : gemm.epilogue) {
        if (op == EpilogueOp::kResidual) break;
        if (op == EpilogueOp::kBias) ++c.tensor;
      }
      out.tensor_maps.push_back(c);
    }
  }
  return out;
}

TilePlan wgmma_plan(const Workload& gemm, const Schedule& s) {
  const MatmulShape& m = gemm.matmul();
  int64_t bm = s.get(knob::kBlockM), bn = s.get(knob::kBlockN), bk = s.get(knob::kBlockK);
  int64_t stages = s.get(knob::kStages), consumers = s.get(kConsumers);
  TilePlan p = whole_plan(gemm);
  set_tile(p, "b", 1);
  set_tile(p, "m", bm);
  set_tile(p, "n", bn);
  const int64_t tiles_k = (m.k + bk - 1) / bk, split = s.get(knob::kSplitK);
  set_tile(p, "k", (tiles_k + split - 1) / split * bk, bk);  // a slice of the k steps
  p.threads = 128 * (consumers + 1);
  p.warps_m = consumers;  // warpgroups issuing MMAs: each reads its rows of A and all of B
  p.warps_n = 1;
  p.async_mma = true;
  p.stages = stages;
  p.register_pipeline = true;  // one k step of MMAs in flight while the next slot lands
  p.smem_staged = true;
  p.smem_bytes = smem_bytes(s);
  // Two or three consumers: the launch allocates the SM's 64K registers over the block's 384 or
  // 512 threads (168 or 128 each), which setmaxnreg then moves between the warpgroups (40 to
  // the producer, 232 or 152 to each consumer); the allocation is what occupancy sees.
  const int64_t per_sm = wgmma_blocks_per_sm(s);
  p.registers = consumers == 3 ? 128 : consumers == 2 ? 168 : std::min<int64_t>(per_sm == 2 ? 128 : 255, (bm / 64) * (bn / 2) + 48);
  p.persistent_blocks = per_sm;
  p.group_m = s.get(knob::kGroupM);
  p.multicast = s.get(kClusterM);
  p.split = split;
  p.async_store = s.get(kTmaStore) != 0 && !copies_out(gemm, std::nullopt);
  // From registers, an odd n's rows take element stores (gemm::store_pair); split-K's second
  // kernel stores the output.
  p.element_stores = s.get(kTmaStore) == 0 && split == 1 && m.n % 2 != 0;
  p.epilogue_turns = s.get(kPingpong) != 0;
  // TMA: one thread's bulk copies keep stages - 1 slots in flight (a slot's bytes spread
  // over the block's threads, for the model's per-thread bookkeeping).
  p.load_bytes = std::max<int64_t>(16, (bm + bn) * bk * 2 / p.threads);
  p.loads_in_flight = stages - 1;
  p.instr = InstrKind::kTensorF16;
  return p;
}

std::unique_ptr<KernelFamily> make_gemm_wgmma_family() { return std::make_unique<GemmWgmmaFamily>(); }

}  // namespace tessera::kernels
