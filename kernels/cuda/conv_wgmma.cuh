// Hopper implicit-GEMM convolutions (sm_90a): NHWC f16/bf16 conv2d on gemm_wgmma's
// warp-specialised, persistent wgmma kernel, with operand loads for convolutions.
//
// The GEMM view: row m of A is output pixel (n, p, q) (M = N * P * Q, in that order), column j
// of B is output channel j (N = K, KRSC filters), and the reduction runs over filter taps (r, s)
// and input channels c. The output [M][K] is the NHWK tensor itself, so gemm_wgmma's epilogue,
// stores and split-K apply unchanged.
//
// Three policies fill a ring slot for one k step:
// - ConvLoads: one tap (r, s) and a BK-wide chunk of the tile's group's channels per step. A's
//   BM x BK tile comes from an im2col tensor map (cp.async.bulk.tensor ... im2col): the copy
//   engine walks BM consecutive output pixels across rows and images, applies stride, padding
//   (zero fill) and the tap's offset, so no thread computes an address. B's BN x BK tile is a
//   tiled box of the filters viewed as [K][R*S][Cg]. A tile whose columns lie in one group
//   (dense convolutions, and groups of at least BN output channels) reads that group's channels.
// - BlockDiagLoads: grouped convolutions whose groups are narrower than a tile (ResNeXt): a
//   tile of BN output channels spans BN / Kg groups, and its B tile is block-diagonal: each
//   group's Kg filters meet only its Cg channels. B is kept as 8 x 16-byte core matrices without
//   swizzling: the diagonal blocks are TMA boxes of 8 channels by Kg filters, one per core-matrix
//   column, and the rest of every slot is zeroed once and never written. One tap per step.
// - GatherLoads: what TMA cannot address (channel counts whose rows are not 16-byte aligned,
//   e.g. an RGB stem): the producer warpgroup's 128 threads gather both tiles element by element
//   into the same swizzled layout the copy engine writes, over the flattened (r, s, c)
//   reduction (no padding of C to a tap).
#pragma once
#include "tessera/gemm_wgmma.cuh"

namespace tessera {
namespace conv {

/// Output pixel `m` (flattened n, p, q) as its image and window corner in the input.
template <int P, int Q, int SH, int SW, int PH, int PW>
__device__ __forceinline__ void pixel(int m, int& n, int& h0, int& w0) {
  n = m / (P * Q);
  const int pq = m - n * (P * Q), p = pq / Q, q = pq - p * Q;
  h0 = p * SH - PH;
  w0 = q * SW - PW;
}

/// Writes KRSC filters of groups of CG channels and KG filters (TAPS = R * S taps) as groups of
/// M times as many (fm: [K][TAPS][CG * M], CG * M a multiple of 8): filter k's channels at its
/// group's place among the M merged, zeros elsewhere, so the merged grouped convolution
/// computes the original one. One 16-byte vector per thread.
template <class In, int K, int TAPS, int CG, int KG, int M>
__device__ __forceinline__ void merge_groups(const In* __restrict__ f, In* __restrict__ fm) {
  constexpr int kCm = CG * M;
  static_assert(kCm % 8 == 0, "merged groups of 16-byte rows");
  constexpr long long kVectors = (long long)K * TAPS * kCm / 8;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < kVectors; i += (long long)gridDim.x * blockDim.x) {
    const long long first = i * 8;
    const long long row = first / kCm;  // k * TAPS + tap
    const int c0 = static_cast<int>(first - row * kCm);
    const int sub = static_cast<int>(row / TAPS) / KG % M;  // filter k's group among the merged
    Pack<In, 8> v;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int c = c0 + e - sub * CG;
      v.v[e] = c >= 0 && c < CG ? f[row * CG + c] : from_float<In>(0.0f);
    }
    *reinterpret_cast<Pack<In, 8>*>(fm + first) = v;
  }
}

/// Pads an NHWC input of C < 8 channels to 8 (xp: [PIXELS][8]) and KRSC filters to [K][TAPS][8]
/// (fp), one 16-byte vector per thread: the operands TapLoads and StripLoads read. Padded tap t
/// is filter tap (t / SP, t % SP) (SP taps a filter row; R = 1, S = SP = R * S for the
/// flattened taps of TapLoads); taps past the filter are zeros.
template <class In, int C, int PIXELS, int K, int R, int S, int SP, int TAPS>
__device__ __forceinline__ void pad_channels(const In* __restrict__ x, const In* __restrict__ f, In* __restrict__ xp,
                                             In* __restrict__ fp) {
  constexpr long long kTotal = (long long)PIXELS + (long long)K * TAPS;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < kTotal; i += (long long)gridDim.x * blockDim.x) {
    Pack<In, 8> v;
    if (i < PIXELS) {
      const In* src = x + i * C;
#pragma unroll
      for (int e = 0; e < 8; ++e) v.v[e] = e < C ? src[e] : from_float<In>(0.0f);
      *reinterpret_cast<Pack<In, 8>*>(xp + i * 8) = v;
    } else {
      const long long j = i - PIXELS;
      const int k = static_cast<int>(j / TAPS), tap = static_cast<int>(j - (long long)k * TAPS);
      const int r = tap / SP, s = tap - r * SP;
      const In* src = f + (((long long)k * R + r) * S + s) * C;
#pragma unroll
      for (int e = 0; e < 8; ++e) v.v[e] = e < C && r < R && s < S ? src[e] : from_float<In>(0.0f);
      *reinterpret_cast<Pack<In, 8>*>(fp + j * 8) = v;
    }
  }
}

}  // namespace conv

/// Dense (and tile-within-a-group) convolution loads: k step kt is tap kt % (R * S) of channel
/// chunk kt / (R * S). map_a is an im2col map over the NHWC input (channels per pixel BK,
/// pixels per column BM, traversal strides SH x SW, bounding box of the output's windows);
/// map_b a tiled map over the filters as {Cg, R * S, K} with boxes {BK, 1, BN / CLUSTER}. Channels
/// past the group's Cg load as zeros from B, so A's next-group or out-of-range channels (also
/// zero) never count.
template <class In, int P, int Q, int R, int S, int SH, int SW, int PH, int PW, int DH, int DW, int CG, int KG, int BM,
          int BN, int BK, int CLUSTER>
struct ConvLoads {
  static constexpr int kChunks = (CG + BK - 1) / BK;
  static constexpr int kSteps = R * S * kChunks;
  static constexpr int kMmaSteps = BK / 16;
  static constexpr bool kGather = false;
  static constexpr int kStepThreads = 0;  // the whole producer warpgroup fills each step
  static constexpr unsigned kTmaBytes = (BM + BN) * BK * 2;
  static_assert(CLUSTER == 1 || (CLUSTER == 2 && (BN / 2) % 8 == 0), "cluster shape");

  __device__ static constexpr unsigned tma_bytes(int) { return kTmaBytes; }
  __device__ static void prepare(In*, int, int) {}
  __device__ static void gather(In*, In*, const In*, const In*, int, int, int, int, int) {}
  __device__ static void tma(In* sa, In* sb, const TensorMap& map_a, const TensorMap& map_b, unsigned long long* bar, int kt,
                             int m0, int n0, int, int rank) {
    const int tap = kt % (R * S), chunk = kt / (R * S), r = tap / S, s = tap - r * S;
    int n, h0, w0;
    conv::pixel<P, Q, SH, SW, PH, PW>(m0, n, h0, w0);
    wgmma::load_im2col(sa, &map_a, bar, (n0 / KG) * CG + chunk * BK, w0, h0, n, static_cast<unsigned short>(s * DW),
                       static_cast<unsigned short>(r * DH));
    if constexpr (CLUSTER > 1) {
      constexpr unsigned short kAll = (1u << CLUSTER) - 1;
      wgmma::load_multicast(sb + rank * (BN / CLUSTER) * BK, &map_b, bar, chunk * BK, tap, n0 + rank * (BN / CLUSTER), kAll);
    } else {
      wgmma::load(sb, &map_b, bar, chunk * BK, tap, n0);
    }
  }
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) { return wgmma::desc_kmajor<BK>(at, row, kk); }
  __device__ static unsigned long long desc_b(const In* bt, int kk) { return wgmma::desc<BK * 2>(bt + kk * 16, 16, 16 * BK); }
};

/// Grouped convolution loads with block-diagonal B tiles: a tile's BN output channels are
/// BN / KG whole groups, whose KW = BN / KG * CG input channels (at most BK) are one k step per
/// tap. A: the im2col map as in ConvLoads, from the tile's first group's channels. B: a tiled
/// map over the filters as {CG, R * S, K} with boxes {8, 1, KG} (no swizzle): core-matrix column
/// j (8 channels of group j * 8 / CG) of the diagonal lands at rows of that group.
template <class In, int P, int Q, int R, int S, int SH, int SW, int PH, int PW, int DH, int DW, int CG, int KG, int BM,
          int BN, int BK>
struct BlockDiagLoads {
  static constexpr int kWidth = BN / KG * CG;  // the tile's input channels
  static_assert(BN % KG == 0 && CG % 8 == 0 && KG % 8 == 0 && kWidth <= BK, "block-diagonal tile");
  static constexpr int kSteps = R * S;
  static constexpr int kMmaSteps = (kWidth + 15) / 16;
  static constexpr bool kGather = false;
  static constexpr int kStepThreads = 0;  // the whole producer warpgroup fills each step
  static constexpr unsigned kTmaBytes = BM * BK * 2 + BN * CG * 2;

  __device__ static constexpr unsigned tma_bytes(int) { return kTmaBytes; }
  /// Zeroes every slot's B tile: the diagonal boxes overwrite the same places each step.
  __device__ static void prepare(In* sB, int slots, int t) {
    uint4* p = reinterpret_cast<uint4*>(sB);
    const int vectors = slots * BN * BK * 2 / 16;
    for (int i = t; i < vectors; i += 128) p[i] = make_uint4(0, 0, 0, 0);
  }
  __device__ static void gather(In*, In*, const In*, const In*, int, int, int, int, int) {}
  __device__ static void tma(In* sa, In* sb, const TensorMap& map_a, const TensorMap& map_b, unsigned long long* bar, int kt,
                             int m0, int n0, int, int) {
    const int r = kt / S, s = kt - r * S;
    int n, h0, w0;
    conv::pixel<P, Q, SH, SW, PH, PW>(m0, n, h0, w0);
    wgmma::load_im2col(sa, &map_a, bar, (n0 / KG) * CG, w0, h0, n, static_cast<unsigned short>(s * DW),
                       static_cast<unsigned short>(r * DH));
#pragma unroll
    for (int j = 0; j < kWidth / 8; ++j) {
      const int group = j * 8 / CG;  // within the tile
      wgmma::load(sb + (j * BN + group * KG) * 8, &map_b, bar, j * 8 - group * CG, kt, n0 + group * KG);
    }
  }
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) { return wgmma::desc_kmajor<BK>(at, row, kk); }
  // Core matrices of 8 rows x 16 bytes: along n 128 bytes apart, along k BN * 16 bytes.
  __device__ static unsigned long long desc_b(const In* bt, int kk) { return wgmma::desc<0>(bt + kk * 2 * BN * 8, BN * 16, 128); }
};

/// Loads gathered by the producer warpgroup's 128 threads, for operands TMA cannot address. The
/// reduction is the flattened (r, s, c) of one group (groups of at least BN output channels;
/// KRS = R * S * CG), in BK-wide steps. Each thread fills 16-byte vectors of the slot (8
/// consecutive k of one row) in the swizzled layout of the TMA copies it stands in for; what
/// lies outside the input, the filters or the reduction is zero.
template <class In, int H, int W, int C, int K, int P, int Q, int R, int S, int SH, int SW, int PH, int PW, int DH, int DW,
          int CG, int KG, int BM, int BN, int BK, int M>
struct GatherLoads {
  static constexpr int KRS = R * S * CG;
  static constexpr int kSteps = (KRS + BK - 1) / BK;
  static constexpr int kMmaSteps = BK / 16;
  static constexpr bool kGather = true;
  static constexpr int kStepThreads = 0;  // the whole producer warpgroup fills each step
  static constexpr unsigned kTmaBytes = 0;
  static constexpr int kVectors = BK / 8;  // per row

  __device__ static constexpr unsigned tma_bytes(int) { return kTmaBytes; }
  __device__ static void prepare(In*, int, int) {}
  __device__ static void tma(In*, In*, const TensorMap&, const TensorMap&, unsigned long long*, int, int, int, int, int) {}
  /// Offset of the 16-byte vector v of row `row` in a swizzled tile of BK-wide rows.
  __device__ static int slot_offset(int row, int v) {
    return row * BK + ((BK == 64 ? (v ^ (row & 7)) : (v ^ ((row >> 1) & 3))) * 8);
  }
  __device__ static void gather(In* sa, In* sb, const In* x, const In* f, int kt, int m0, int n0, int, int t) {
    // This thread's 8 columns of the step: the same for every row it fills.
    const int v = t % kVectors, k0 = kt * BK + v * 8;
    int dh[8], dw[8], off[8];
    bool in_k[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int k = k0 + e, r = k / (S * CG), sc = k - r * (S * CG), s = sc / CG, c = sc - s * CG;
      in_k[e] = k < KRS;
      dh[e] = r * DH;
      dw[e] = s * DW;
      off[e] = (dh[e] * W + dw[e]) * C + c;
    }
    const int channel0 = (n0 / KG) * CG;
    // Rows in batches of kBatch: every load of a batch is issued before its stores, so a step
    // costs a round trip or two to L2 rather than one per row.
    constexpr int kRowStep = 128 / kVectors, kBatch = 4;
    constexpr int kRowsA = (BM + kRowStep - 1) / kRowStep, kRowsB = (BN + kRowStep - 1) / kRowStep;
    const int first = t / kVectors;  // this thread's first row; then every kRowStep-th
#pragma unroll
    for (int i0 = 0; i0 < kRowsA; i0 += kBatch) {
      Pack<In, 8> packs[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (i0 + i >= kRowsA) break;
        const int row = first + (i0 + i) * kRowStep, m = m0 + row;
        int n, h0, w0;
        conv::pixel<P, Q, SH, SW, PH, PW>(m, n, h0, w0);
        const In* px = x + ((long long)(n * H + h0) * W + w0) * C + channel0;
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const bool ok = m < M && in_k[e] && static_cast<unsigned>(h0 + dh[e]) < static_cast<unsigned>(H) &&
                          static_cast<unsigned>(w0 + dw[e]) < static_cast<unsigned>(W);
          packs[i].v[e] = ok ? px[off[e]] : from_float<In>(0.0f);
        }
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int row = first + (i0 + i) * kRowStep;
        if (i0 + i >= kRowsA || row >= BM) break;
        *reinterpret_cast<Pack<In, 8>*>(sa + slot_offset(row, v)) = packs[i];
      }
    }
#pragma unroll
    for (int i0 = 0; i0 < kRowsB; i0 += kBatch) {
      Pack<In, 8> packs[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (i0 + i >= kRowsB) break;
        const int j = n0 + first + (i0 + i) * kRowStep;
        const In* fj = f + (long long)j * KRS;
#pragma unroll
        for (int e = 0; e < 8; ++e) packs[i].v[e] = j < K && in_k[e] ? fj[k0 + e] : from_float<In>(0.0f);
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        const int row = first + (i0 + i) * kRowStep;
        if (i0 + i >= kRowsB || row >= BN) break;
        *reinterpret_cast<Pack<In, 8>*>(sb + slot_offset(row, v)) = packs[i];
      }
    }
  }
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) { return wgmma::desc_kmajor<BK>(at, row, kk); }
  __device__ static unsigned long long desc_b(const In* bt, int kk) { return wgmma::desc<BK * 2>(bt + kk * 16, 16, 16 * BK); }
};

/// Convolutions of fewer than 8 input channels (RGB stems) on operands that conv::pad_channels
/// padded to 8 channels in the workspace before the kernel: a k step is BK / 8 filter taps of 8
/// channels (the flattened (r, s); taps past R * S are zeros), so a 7 x 7 x 3 window costs 7
/// steps of 64 instead of 49 of 32. A: the producer's threads load one 16-byte pixel per (row,
/// tap) from the padded input, up to 16 loads in flight, into columns of 8-row x 16-byte core
/// matrices, one column per tap (no swizzle): warp w fills taps w, w + 4, ... of 32 consecutive
/// rows at a time, so a warp's stores are 512 contiguous bytes. (An im2col copy of 16-byte
/// pixels ran at a fraction of the bandwidth: 221 us for the batch-32 ResNet-50 stem against 113
/// us gathered; cp.async copies arriving on the slot's barrier, with the consumers fencing them
/// for the tensor cores, took 200 us.) B: the padded filters as [K][taps][8], one BN x BK TMA
/// box per step (K-major rows, swizzled).
template <class In, int H, int W, int P, int Q, int R, int S, int SH, int SW, int PH, int PW, int DH, int DW, int BM,
          int BN, int BK, int M>
struct TapLoads {
  static constexpr int kTapsPerStep = BK / 8, kTaps = R * S;
  static constexpr int kSteps = (kTaps + kTapsPerStep - 1) / kTapsPerStep;
  static constexpr int kMmaSteps = BK / 16;
  static constexpr bool kGather = true;
  static constexpr int kStepThreads = 0;  // the whole producer warpgroup fills each step
  static constexpr int kRowBlocks = BM / 32, kTapsPerWarp = kTapsPerStep / 4;
  static constexpr int kBatch = 16;  // loads in flight per thread
  static_assert(BM % 32 == 0 && kTapsPerStep % 4 == 0, "tap tile");

  __device__ static constexpr unsigned tma_bytes(int) { return BN * BK * 2; }
  __device__ static void prepare(In*, int, int) {}
  /// x: the padded input ([N * H * W][8]).
  __device__ static void gather(In* sa, In*, const In* x, const In*, int kt, int m0, int, int, int t) {
    const int warp = t / 32, lane = t % 32;
    constexpr int kLoads = kRowBlocks * kTapsPerWarp;
#pragma unroll
    for (int i0 = 0; i0 < kLoads; i0 += kBatch) {
      uint4 v[kBatch];
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        v[i] = make_uint4(0, 0, 0, 0);
        if (i0 + i >= kLoads) break;
        const int rb = (i0 + i) % kRowBlocks, j = warp + 4 * ((i0 + i) / kRowBlocks);
        const int tap = kt * kTapsPerStep + j, m = m0 + rb * 32 + lane;
        int n, h0, w0;
        conv::pixel<P, Q, SH, SW, PH, PW>(m, n, h0, w0);
        const int r = tap / S, h = h0 + r * DH, w = w0 + (tap - r * S) * DW;
        if (tap < kTaps && m < M && static_cast<unsigned>(h) < static_cast<unsigned>(H) &&
            static_cast<unsigned>(w) < static_cast<unsigned>(W))
          v[i] = *reinterpret_cast<const uint4*>(x + ((long long)(n * H + h) * W + w) * 8);
      }
#pragma unroll
      for (int i = 0; i < kBatch; ++i) {
        if (i0 + i >= kLoads) break;
        const int rb = (i0 + i) % kRowBlocks, j = warp + 4 * ((i0 + i) / kRowBlocks);
        reinterpret_cast<uint4*>(sa + j * BM * 8)[rb * 32 + lane] = v[i];
      }
    }
  }
  __device__ static void tma(In*, In* sb, const TensorMap&, const TensorMap& map_b, unsigned long long* bar, int kt, int, int n0,
                             int, int) {
    wgmma::load(sb, &map_b, bar, kt * BK, n0, 0);
  }
  // A: core matrices of 8 rows x 16 bytes, along m 128 bytes apart, along k (a tap) BM * 16.
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) {
    return wgmma::desc<0>(at + row * 8 + kk * 2 * BM * 8, BM * 16, 128);
  }
  __device__ static unsigned long long desc_b(const In* bt, int kk) { return wgmma::desc<BK * 2>(bt + kk * 16, 16, 16 * BK); }
};

/// A word of `Bytes` bytes (8, 4 or 2), what a row strip loads a pixel's channels as.
template <int Bytes>
struct WordOf;
template <>
struct WordOf<8> {
  using type = uint2;
};
template <>
struct WordOf<4> {
  using type = unsigned;
};
template <>
struct WordOf<2> {
  using type = unsigned short;
};

/// Row strips for convolutions of fewer than 8 input channels (RGB stems), on the filters
/// conv::pad_channels padded to 8 channels and the input as it is: the GEMM view is batched by
/// output row (batch n * P + p, M = Q output columns, so a tile's rows are consecutive pixels of
/// one output row), and a k step is BK / 8 consecutive taps of one filter row (kChunks steps a
/// filter row; taps past S are zeros in the padded filters). The A tile of such a step is a
/// Toeplitz matrix: row m, tap s reads input column (q0 + m) * SW + s. So the producer loads,
/// per step, the input row's strip once, split by column phase (E_phi[u] = column (q0 + u) * SW
/// + phi, one pixel each, phi < SW), each pixel's C channels as the widest words that divide
/// them, and stores it as 16-byte pixels of 8 channels (the last 8 - C zeros) instead of BK / 8
/// pixels for every row; the consumers' matrix descriptors read it in place: the core matrix of
/// rows 8i.. and tap s starts at E_{s % SW}[8i + s / SW], and the k16 step's second tap lies a
/// fixed offset after its first (SW of 1, 2 or 4). A step's strip is loaded by STEP_THREADS of
/// the producer's threads (a warp, two or the four: the fewest that hold it in 48 registers a
/// thread, more spill under the gathering producer's 120; the family chooses them, as its cost
/// model counts them), so the warpgroup's groups load several steps at once (gemm_wgmma's
/// produce_split). B: the padded filters as
/// [K][R * kChunks * BK / 8][8], one BN x BK TMA box per step. The input must be aligned to its
/// words (8 bytes for C = 4).
template <class In, int C, int H, int W, int P, int R, int S, int SH, int SW, int PH, int PW, int DH, int BM, int BN, int BK,
          int STEP_THREADS>
struct StripLoads {
  static constexpr int kTapsPerStep = BK / 8;
  static constexpr int kChunks = (S + kTapsPerStep - 1) / kTapsPerStep;
  static constexpr int kSteps = R * kChunks;
  static constexpr int kMmaSteps = ((S < kTapsPerStep ? S : kTapsPerStep) + 1) / 2;
  static constexpr bool kGather = true;
  static constexpr int kU = BM + (kTapsPerStep - 1) / SW;  // strip entries a phase
  static constexpr int kVectors = SW * kU;
  static constexpr int kPixelBytes = 2 * C;
  static constexpr int kWordBytes = kPixelBytes % 8 == 0 ? 8 : kPixelBytes % 4 == 0 ? 4 : 2;
  static constexpr int kWords = kPixelBytes / kWordBytes;
  static constexpr int kRegisters = kWords * (kWordBytes == 8 ? 2 : 1);  // a pixel's
  static constexpr int kStepThreads = STEP_THREADS;
  static_assert(STEP_THREADS == 32 || STEP_THREADS == 64 || STEP_THREADS == 128, "a warp, two or the four a step");
  static constexpr int kPerThread = (kVectors + kStepThreads - 1) / kStepThreads;
  using Word = typename WordOf<kWordBytes>::type;
  static_assert(C >= 1 && C < 8, "fewer than 8 channels");
  static_assert(SW == 1 || SW == 2 || SW == 4, "the k16 step's two taps a fixed offset apart");
  static_assert(kVectors * 8 <= BM * BK, "the strip fits the slot's A tile");
  static_assert(kPerThread * kRegisters <= 48, "at most 48 registers of loads a thread");
  struct Regs {
    Word v[kPerThread][kWords];
  };

  __device__ static constexpr unsigned tma_bytes(int) { return BN * BK * 2; }
  __device__ static void prepare(In*, int, int) {}
  __device__ static void gather(In*, In*, const In*, const In*, int, int, int, int, int) {}
  /// x: the input ([N * H * W][C]). Loads the strip entries of step kt of the tile at columns
  /// m0.. of output row b (image b / P, row b % P) that thread t of the step's group loads.
  __device__ static void fetch(Regs& regs, const In* x, int kt, int m0, int b, int t) {
    const int n = b / P, p = b - n * P, r = kt / kChunks, chunk = kt - r * kChunks;
    const int h = p * SH - PH + r * DH;
    const bool row_in = static_cast<unsigned>(h) < static_cast<unsigned>(H);
    const Word* row = reinterpret_cast<const Word*>(x + (long long)(n * H + h) * W * C);
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int idx = t + i * kStepThreads, phase = idx / kU, u = idx - phase * kU;
      const int w = (m0 + u) * SW + phase - PW + chunk * kTapsPerStep;
      const bool in = idx < kVectors && row_in && static_cast<unsigned>(w) < static_cast<unsigned>(W);
#pragma unroll
      for (int j = 0; j < kWords; ++j) regs.v[i][j] = in ? __ldg(row + w * kWords + j) : Word{};
    }
  }
  /// Stores them into the slot's A tile ([SW][kU] pixels of 8 channels, past C zeros).
  __device__ static void put(const Regs& regs, In* sa, int t) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int idx = t + i * kStepThreads;
      if (idx < kVectors) {
        union {
          uint4 whole;
          Word words[16 / kWordBytes];
        } pixel;
        pixel.whole = make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int j = 0; j < kWords; ++j) pixel.words[j] = regs.v[i][j];
        reinterpret_cast<uint4*>(sa)[idx] = pixel.whole;
      }
    }
  }
  __device__ static void tma(In*, In* sb, const TensorMap&, const TensorMap& map_b, unsigned long long* bar, int kt, int, int n0,
                             int, int) {
    wgmma::load(sb, &map_b, bar, kt * BK, n0, 0);
  }
  // A: the k16 step's taps 2kk and 2kk + 1, 8-row core matrices 128 bytes apart along m.
  __device__ static unsigned long long desc_a(const In* at, int row, int kk) {
    constexpr int kNone = 0;
    const int first = ((2 * kk) % SW) * kU + (2 * kk) / SW, second = ((2 * kk + 1) % SW) * kU + (2 * kk + 1) / SW;
    return wgmma::desc<kNone>(at + (first + row) * 8, (second - first) * 16, 128);
  }
  __device__ static unsigned long long desc_b(const In* bt, int kk) { return wgmma::desc<BK * 2>(bt + kk * 16, 16, 16 * BK); }
};

}  // namespace tessera
