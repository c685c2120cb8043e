// Benchmark (not a test; needs a GPU): the gemm_tc family (or gemm_wgmma, see below) against
// cuBLAS on one f16 GEMM, both timed with CUDA events in the same process. gemm_tc: a fixed
// spread of 60 valid schedules of the sub-space vec 8, group_m 8, split-K only when
// K >= 8 max(M, N); gemm_wgmma: the whole valid sub-space group_m 8 with TMA stores (or, on
// such shapes, split-K). They are compiled and timed; the table shows the fastest and cuBLAS.
// (Choosing well among all of them is the search's job, not this.) B may be transposed (tb=1, as nn.Linear
// stores it). With an epilogue of bias, relu and gelu (e.g. epilogue=bias+gelu) the baseline is
// cuBLAS followed by a separate kernel applying it (16-byte accesses), timed together.
//
//   gemm_bench [SPEC]      default matmul:m=4096,n=4096,k=4096:f16
//
// Timing here is CUDA events around 20 back-to-back launches after 3 warm-ups (CUPTI
// timing arrives with the measurement issue). The last line is machine-readable.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "kernels/reference.h"
#include "measure/devices.h"
#include "measure/launch.h"

using namespace tessera;

namespace {
template <typename Launch>
double time_us(Launch&& launch, int reps = 20) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start);
  for (int i = 0; i < reps; ++i) launch();
  cudaEventRecord(stop);
  cudaEventSynchronize(stop);
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms * 1000.0 / reps;
}
}  // namespace

namespace {
// The vendor baseline's second kernel for an epilogue of bias / relu / gelu: out = op(c, ...),
// 8 f16 per thread.
std::string epilogue_kernel_source(const std::vector<EpilogueOp>& ops) {
  std::string body;
  for (EpilogueOp op : ops) {
    if (op == EpilogueOp::kBias) body += "    x += to_float(b.v[j]);\n";
    if (op == EpilogueOp::kRelu) body += "    x = fmaxf(x, 0.0f);\n";
    if (op == EpilogueOp::kGelu) body += "    x = gelu(x);\n";
  }
  return R"(#include "tessera/common.cuh"
using namespace tessera;
extern "C" __global__ void epilogue(const F16* __restrict__ c, const F16* __restrict__ bias, F16* __restrict__ out,
                                    long long total, int n) {
  const long long i = (blockIdx.x * (long long)blockDim.x + threadIdx.x) * 8;
  if (i >= total) return;
  Pack<F16, 8> v = *reinterpret_cast<const Pack<F16, 8>*>(c + i);
  const Pack<F16, 8> b = *reinterpret_cast<const Pack<F16, 8>*>(bias + i % n);
  (void)b;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    float x = to_float(v.v[j]);
)" + body + R"(    v.v[j] = from_float<F16>(x);
  }
  *reinterpret_cast<Pack<F16, 8>*>(out + i) = v;
}
)";
}

// The schedules timed: gemm_tc's vec 8 and group_m 8 (split-K only on split-K shapes), spread
// to 60; or with TESSERA_BENCH_FAMILY=gemm_wgmma the Hopper family's group_m 8 with the
// TMA-store epilogue (or split-K on split-K shapes), whole; TESSERA_BENCH_ONLY=<key>: that one.
std::vector<Schedule> bench_schedules(const kernels::KernelFamily& f, const Workload& w, const HardwareSpec& spec,
                                      bool hopper) {
  const MatmulShape& s = w.matmul();
  const kernels::KernelFamily* family = &f;
  // Split-K only pays when K dwarfs M and N (too few output tiles to fill the GPU).
  const bool split_k_shape = s.k >= 8 * std::max(s.m, s.n);
  std::vector<Schedule> schedules;
  for (const Schedule& sc : kernels::enumerate_space(*family, w, spec)) {
    bool keep = hopper ? sc.get("group_m") == 8 && (sc.get("split_k") > 1 ? split_k_shape : sc.get("tma_store") == 1)
                       : sc.get("vec") == 8 && sc.get("group_m") == 8 && (sc.get("split_k") == 1 || split_k_shape);
    if (keep && !family->validate(sc, w, spec)) schedules.push_back(sc);
  }
  // TESSERA_BENCH_ONLY=<schedule key> times just that schedule (e.g. to profile it with ncu).
  if (const char* only = std::getenv("TESSERA_BENCH_ONLY")) {
    std::erase_if(schedules, [&](const Schedule& sc) { return sc.key() != only; });
    if (schedules.empty()) {
      std::fprintf(stderr, "TESSERA_BENCH_ONLY: %s is not a valid schedule of the benchmarked sub-space\n", only);
      std::exit(2);
    }
  }
  // gemm_wgmma's sub-space is timed whole (about 400 schedules on the H100's large GEMMs): its
  // best tile often hinges on how the tiles fill the last wave, which a spread misses.
  if (!hopper && schedules.size() > 60) {
    std::vector<Schedule> spread;
    for (size_t i = 0; i < 60; ++i) spread.push_back(schedules[i * schedules.size() / 60]);
    schedules = std::move(spread);
  }
  return schedules;
}

}  // namespace

int main(int argc, char** argv) {
  Workload w = Workload::parse(argc > 1 ? argv[1] : "matmul:m=4096,n=4096,k=4096:f16");
  // With an epilogue (bias, relu, gelu) the baseline is cuBLAS followed by a separate kernel.
  const bool fused = !w.epilogue.empty();
  const bool has_bias = std::ranges::find(w.epilogue, EpilogueOp::kBias) != w.epilogue.end();
  const bool supported_epilogue = std::ranges::find(w.epilogue, EpilogueOp::kResidual) == w.epilogue.end();
  if (w.kind != OpKind::kMatmul || w.dtype != DType::kF16 || w.out_dtype != DType::kF16 || !supported_epilogue ||
      w.matmul().trans_a || w.matmul().alpha != 1.0 || (fused && w.matmul().n % 8 != 0)) {
    std::fprintf(stderr, "gemm_bench compares f16 matmul (A not transposed, no alpha; an epilogue of bias, relu and gelu only, with n %% 8 == 0) with cuBLAS\n");
    return 2;
  }
  measure::DeviceScan scan = measure::scan_devices();
  if (scan.devices.empty() || !scan.devices.front().spec) {
    std::fprintf(stderr, "gemm_bench needs a GPU with a known spec: %s\n", scan.reason.c_str());
    return 1;
  }
  const measure::Device& dev = scan.devices.front();
  const MatmulShape& s = w.matmul();
  double flops = 2.0 * s.m * s.n * s.k;

  // TESSERA_BENCH_FAMILY=gemm_wgmma times the Hopper family instead.
  const char* family_env = std::getenv("TESSERA_BENCH_FAMILY");
  const bool hopper = family_env && std::string(family_env) == "gemm_wgmma";
  auto family = hopper ? kernels::make_gemm_wgmma_family() : kernels::make_gemm_tc_family();
  std::vector<Schedule> schedules = bench_schedules(*family, w, *dev.spec, hopper);
  std::vector<kernels::KernelSource> sources;
  for (const Schedule& sc : schedules) sources.push_back(family->emit(w, sc));
  kernels::KernelSource epilogue_kernel("epilogue", epilogue_kernel_source(w.epilogue));
  epilogue_kernel.launch.grid[0] = (s.m * s.n / 8 + 255) / 256;
  epilogue_kernel.launch.block[0] = 256;
  if (fused) sources.push_back(epilogue_kernel);
  kernels::BuildOptions options;
  options.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
  options.headers = kernels::device_headers();
  std::vector<kernels::CompiledKernel> built = kernels::Builder(options).build(sources);

  // Inputs in [-1, 1] (f16; the bias in [-1, 1] too), one output buffer.
  const int64_t b_rows = s.trans_b ? s.n : s.k, b_cols = s.trans_b ? s.k : s.n;
  kernels::HostTensor a{{s.m, s.k}, {}}, b{{b_rows, b_cols}, {}}, bias{{s.n}, {}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto* t : {&a, &b, &bias}) {
    t->data.resize(static_cast<size_t>(t->elements()));
    for (float& v : t->data) v = u(rng);
  }
  measure::DeviceBuffer da(static_cast<size_t>(a.elements() * 2)), db(static_cast<size_t>(b.elements() * 2)),
      dbias(static_cast<size_t>(s.n * 2)), dc(static_cast<size_t>(s.m * s.n * 2)),
      dref(static_cast<size_t>(s.m * s.n * 2)), dtmp(static_cast<size_t>(s.m * s.n * 2));
  da.upload(kernels::encode(a, DType::kF16));
  db.upload(kernels::encode(b, DType::kF16));
  dbias.upload(kernels::encode(bias, DType::kF16));

  cublasHandle_t handle;
  cublasCreate(&handle);
  float one = 1, zero = 0;
  std::optional<measure::LoadedPlan> epilogue_plan;
  if (fused) {
    if (built.back().status != Status::kOk) {
      std::fprintf(stderr, "the epilogue kernel did not compile: %s\n", built.back().error.c_str());
      return 1;
    }
    epilogue_plan.emplace(built.back().cubin, epilogue_kernel);
    sources.pop_back();
    built.pop_back();
  }
  void* ptmp = dtmp.data();
  void* pbias = dbias.data();
  void* pref = dref.data();
  long long total = s.m * s.n;
  int n_cols = static_cast<int>(s.n);
  void* epilogue_args[] = {&ptmp, &pbias, &pref, &total, &n_cols};
  // Row-major C = A B is column-major C^T = B^T A^T (B^T is B as stored, or transposed when
  // B is [N, K]).
  auto cublas = [&] {
    cublasGemmEx(handle, s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(s.n), static_cast<int>(s.m),
                 static_cast<int>(s.k), &one, db.data(), CUDA_R_16F, static_cast<int>(s.trans_b ? s.k : s.n), da.data(),
                 CUDA_R_16F, static_cast<int>(s.k), &zero, fused ? dtmp.data() : dref.data(), CUDA_R_16F,
                 static_cast<int>(s.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (fused) (void)epilogue_plan->enqueue(epilogue_args);
  };
  double cublas_us = time_us(cublas);
  const std::vector<uint8_t> ref = dref.download();
  auto at = [](const std::vector<uint8_t>& bytes, size_t i) {
    return kernels::f16_value(static_cast<uint16_t>(bytes[2 * i] | (bytes[2 * i + 1] << 8)));
  };

  struct Result {
    size_t index;
    double us;
    int64_t blocks;  // launched (persistent kernels: capped at what the device holds at once)
  };
  std::vector<Result> results;
  int failed = 0;
  for (size_t i = 0; i < built.size(); ++i) {
    if (built[i].status != Status::kOk) {
      ++failed;
      continue;
    }
    measure::LoadedPlan plan(built[i].cubin, sources[i]);
    if (!plan.ok()) {
      std::fprintf(stderr, "%s: %s\n", schedules[i].key().c_str(), plan.error().c_str());
      return 1;
    }
    measure::DeviceBuffer workspace(static_cast<size_t>(sources[i].workspace_bytes));
    void* pa = da.data();
    void* pb = db.data();
    void* pc = dc.data();
    void* pw = workspace.data();
    std::vector<void*> args{&pa, &pb};
    if (has_bias) args.push_back(&pbias);
    args.push_back(&pc);
    if (sources[i].workspace_bytes > 0) args.push_back(&pw);
    auto launch = [&] { (void)plan.enqueue(args); };
    dc.fill(0xFF);
    launch();
    if (cudaDeviceSynchronize() != cudaSuccess) {
      std::fprintf(stderr, "%s: launch failed\n", schedules[i].key().c_str());
      return 1;
    }
    // Same answer as cuBLAS (both f32 accumulation, f16 output)? Every 97th element.
    const std::vector<uint8_t> got = dc.download();
    double worst = 0;
    for (size_t j = 0; j < static_cast<size_t>(s.m * s.n); j += 97)
      worst = std::max(worst, static_cast<double>(std::fabs(at(got, j) - at(ref, j))) / (1 + std::fabs(at(ref, j))));
    if (!(worst < 1e-2)) {
      std::fprintf(stderr, "%s: differs from cuBLAS (%g)\n", schedules[i].key().c_str(), worst);
      ++failed;
    } else {
      results.push_back({i, time_us(launch), plan.launched_blocks(0)});
    }
  }
  std::sort(results.begin(), results.end(), [](const Result& x, const Result& y) { return x.us < y.us; });
  std::printf("%s on %s: %zu schedules timed (%d failed)\n", w.key().c_str(), dev.properties.name.c_str(),
              results.size(), failed);
  std::printf("%-90s %10s %10s %8s %7s\n", "schedule", "time us", "TFLOP/s", "vs cuBLAS", "blocks");
  for (size_t r = 0; r < std::min<size_t>(5, results.size()); ++r) {
    double us = results[r].us;
    std::printf("%-90s %10.1f %10.1f %7.2fx %7lld\n", schedules[results[r].index].key().c_str(), us, flops / us / 1e6,
                cublas_us / us, static_cast<long long>(results[r].blocks));
  }
  std::printf("%-90s %10.1f %10.1f %7.2fx\n",
              fused ? "cuBLAS (cublasGemmEx, f32 compute) + epilogue kernel" : "cuBLAS (cublasGemmEx, f32 compute)",
              cublas_us, flops / cublas_us / 1e6, 1.0);
  if (results.empty()) return 1;
  std::printf("gemm=%s best_tflops=%.1f cublas_tflops=%.1f ratio=%.3f\n", w.key().c_str(), flops / results[0].us / 1e6,
              flops / cublas_us / 1e6, cublas_us / results[0].us);
  cublasDestroy(handle);
  return 0;
}
