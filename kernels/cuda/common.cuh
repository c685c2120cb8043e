// Shared device helpers for every Tessera kernel family. Self-contained (no CUDA headers,
// so NVRTC needs no include path): storage types for f16/bf16 with PTX conversions, GELU,
// vector packs and group reductions.
#pragma once

// sm_90a's arch-specific instructions (wgmma, setmaxnreg) exist only in code compiled for
// sm_90a. Tessera's builder always compiles Hopper kernels so; an exported .cu may also be
// built for other GPUs (nvcc -arch=sm_90a adds compute_90 PTX, -gencode may add sm_80), where
// those kernels keep their signatures and trap (their launch functions refuse such GPUs first).
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TESSERA_SM90A 1
#else
#define TESSERA_SM90A 0
#endif
// Thread-block clusters exist from sm_90 on; elsewhere the kernel is declared without them and
// its cluster instructions trap.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
#define TESSERA_SM90 1
#define TESSERA_CLUSTER_DIMS(x, y, z) __cluster_dims__(x, y, z)
#else
#define TESSERA_SM90 0
#define TESSERA_CLUSTER_DIMS(x, y, z)
#endif

namespace tessera {

/// f16 / bf16 storage (the raw 16 bits); arithmetic happens in float.
struct F16 { unsigned short bits; };
struct BF16 { unsigned short bits; };

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(F16 v) {
  float f;
  asm("{.reg .f16 t;\n mov.b16 t, %1;\n cvt.f32.f16 %0, t;}" : "=f"(f) : "h"(v.bits));
  return f;
}
__device__ __forceinline__ float to_float(BF16 v) { return __uint_as_float(static_cast<unsigned>(v.bits) << 16); }

template <class T> __device__ __forceinline__ T from_float(float f);
template <> __device__ __forceinline__ float from_float<float>(float f) { return f; }
template <> __device__ __forceinline__ F16 from_float<F16>(float f) {
  F16 h;
  asm("{.reg .f16 t;\n cvt.rn.f16.f32 t, %1;\n mov.b16 %0, t;}" : "=h"(h.bits) : "f"(f));
  return h;
}
template <> __device__ __forceinline__ BF16 from_float<BF16>(float f) {
  BF16 h;
  asm("{.reg .b16 t;\n cvt.rn.bf16.f32 t, %1;\n mov.b16 %0, t;}" : "=h"(h.bits) : "f"(f));
  return h;
}

/// Whether T is BF16 (NVRTC has no <type_traits>).
template <class T> struct IsBf16 { static constexpr bool value = false; };
template <> struct IsBf16<BF16> { static constexpr bool value = true; };

/// +infinity (no CUDA headers here to define INFINITY).
__device__ __forceinline__ float inf() { return __int_as_float(0x7f800000); }

/// The exact (erf) GELU, x Phi(x), as in the CPU reference, to a few float ulps everywhere,
/// also for x < -3 where 0.5 x (1 + erff(x / sqrt 2)) cancels to nothing. With t = |x| / sqrt 2,
/// c = 0.5 erfc(t) = exp(-x^2 / 2) R(t) and Phi(x) = c for x < 0, 1 - c otherwise; R is a rational
/// function of degree 3 over 4 fitted (weighted least squares, then minimax reweighting) to
/// 0.5 erfc(t) exp(t^2) on [0, 10] to a relative error of 4e-7. In float on [-8, 8] the result is
/// within 3e-6 relative of the double reference (erff's form loses every digit at -8). Cost:
/// one ex2 and one rcp on the special-function unit and 13 FMA-pipe operations, about half of
/// the erff form's, which matters in a GEMM epilogue where it runs once per output.
__device__ __forceinline__ float gelu(float x) {
  const float t = fminf(fabsf(x) * 0.70710678118654752f, 10.0f);  // exp(-x^2 / 2) underflows beyond
  const float p = fmaf(fmaf(fmaf(4.831932871e-02f, t, 2.393648710e-01f), t, 5.122756387e-01f), t, 4.999998075e-01f);
  const float q =
      fmaf(fmaf(fmaf(fmaf(1.713072368e-01f, t, 8.479597620e-01f), t, 1.908323116e+00f), t, 2.152903456e+00f), t, 1.0f);
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(x * (x * -0.72134752044448170f)));  // exp(-x^2 / 2)
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(q));
  const float c = e * p * r;
  return x * (x < 0.0f ? c : 1.0f - c);
}

/// N consecutive elements moved with one aligned load or store.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};

/// Sum / max over the `Width` consecutive lanes of a warp that share a row (Width <= 32).
template <int Width>
__device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = Width / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, Width);
  return v;
}
template <int Width>
__device__ __forceinline__ float group_max(float v) {
#pragma unroll
  for (int o = Width / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o, Width));
  return v;
}

}  // namespace tessera
