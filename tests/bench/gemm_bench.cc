// Benchmark (not a test; needs a GPU): the gemm_tc family (or gemm_wgmma, see below) against cuBLAS on one GEMM, both
// timed with CUDA events in the same process. A fixed spread of 60 valid schedules of the
// sub-space vec 8, group_m 8 (split-K only when K >= 8 max(M, N)) is compiled and timed; the table shows the
// fastest and cuBLAS. (Choosing well among all of them is the search's job, not this.)
//
//   gemm_bench [SPEC]      default matmul:m=4096,n=4096,k=4096:f16
//
// Timing here is CUDA events around 20 back-to-back launches after 3 warm-ups (CUPTI
// timing arrives with the measurement issue). The last line is machine-readable.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
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

int main(int argc, char** argv) {
  Workload w = Workload::parse(argc > 1 ? argv[1] : "matmul:m=4096,n=4096,k=4096:f16");
  if (w.kind != OpKind::kMatmul || w.dtype != DType::kF16 || w.out_dtype != DType::kF16 || !w.epilogue.empty() ||
      w.matmul().trans_a || w.matmul().trans_b) {
    std::fprintf(stderr, "gemm_bench compares plain f16 matmul (no transposes, no epilogue) with cuBLAS\n");
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

  // Split-K only pays when K dwarfs M and N (too few output tiles to fill the GPU).
  const bool split_k_shape = s.k >= 8 * std::max(s.m, s.n);
  // TESSERA_BENCH_FAMILY=gemm_wgmma times the Hopper family instead (its whole valid space
  // with group_m 8 and 16).
  const char* family_env = std::getenv("TESSERA_BENCH_FAMILY");
  const bool hopper = family_env && std::string(family_env) == "gemm_wgmma";
  auto family = hopper ? kernels::make_gemm_wgmma_family() : kernels::make_gemm_tc_family();
  std::vector<Schedule> schedules;
  for (const Schedule& sc : kernels::enumerate_space(*family, w, *dev.spec)) {
    bool keep = hopper ? sc.get("group_m") > 1
                       : sc.get("vec") == 8 && sc.get("group_m") == 8 && (sc.get("split_k") == 1 || split_k_shape);
    if (keep && !family->validate(sc, w, *dev.spec)) schedules.push_back(sc);
  }
  // TESSERA_BENCH_ONLY=<schedule key> times just that schedule (e.g. to profile it with ncu).
  if (const char* only = std::getenv("TESSERA_BENCH_ONLY")) {
    std::erase_if(schedules, [&](const Schedule& sc) { return sc.key() != only; });
    if (schedules.empty()) {
      std::fprintf(stderr, "TESSERA_BENCH_ONLY: %s is not a valid schedule of the benchmarked sub-space\n", only);
      return 2;
    }
  }
  if (schedules.size() > 60) {
    std::vector<Schedule> spread;
    for (size_t i = 0; i < 60; ++i) spread.push_back(schedules[i * schedules.size() / 60]);
    schedules = std::move(spread);
  }
  std::vector<kernels::KernelSource> sources;
  for (const Schedule& sc : schedules) sources.push_back(family->emit(w, sc));
  kernels::BuildOptions options;
  options.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
  options.headers = kernels::device_headers();
  std::vector<kernels::CompiledKernel> built = kernels::Builder(options).build(sources);

  // Inputs in [-1, 1] (f16), one output buffer.
  kernels::HostTensor a{{s.m, s.k}, {}}, b{{s.k, s.n}, {}};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto* t : {&a, &b}) {
    t->data.resize(static_cast<size_t>(t->elements()));
    for (float& v : t->data) v = u(rng);
  }
  measure::DeviceBuffer da(static_cast<size_t>(a.elements() * 2)), db(static_cast<size_t>(b.elements() * 2)),
      dc(static_cast<size_t>(s.m * s.n * 2)), dref(static_cast<size_t>(s.m * s.n * 2));
  da.upload(kernels::encode(a, DType::kF16));
  db.upload(kernels::encode(b, DType::kF16));

  cublasHandle_t handle;
  cublasCreate(&handle);
  float one = 1, zero = 0;
  // Row-major C = A B is column-major C^T = B^T A^T.
  auto cublas = [&] {
    cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(s.n), static_cast<int>(s.m), static_cast<int>(s.k),
                 &one, db.data(), CUDA_R_16F, static_cast<int>(s.n), da.data(), CUDA_R_16F, static_cast<int>(s.k), &zero,
                 dref.data(), CUDA_R_16F, static_cast<int>(s.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  double cublas_us = time_us(cublas);
  kernels::HostTensor ref = kernels::decode(dref.download(), {s.m, s.n}, DType::kF16);

  struct Result {
    size_t index;
    double us;
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
    void* args[] = {&pa, &pb, &pc, &pw};
    std::span<void* const> passed(args, sources[i].workspace_bytes > 0 ? 4 : 3);
    auto launch = [&] { (void)plan.enqueue(passed); };
    dc.fill(0xFF);
    launch();
    if (cudaDeviceSynchronize() != cudaSuccess) {
      std::fprintf(stderr, "%s: launch failed\n", schedules[i].key().c_str());
      return 1;
    }
    // Same answer as cuBLAS (both f32 accumulation, f16 output)?
    kernels::HostTensor got = kernels::decode(dc.download(), {s.m, s.n}, DType::kF16);
    double worst = 0;
    for (size_t j = 0; j < got.data.size(); j += 97)
      worst = std::max(worst, static_cast<double>(std::fabs(got.data[j] - ref.data[j])) / (1 + std::fabs(ref.data[j])));
    if (!(worst < 1e-2)) {
      std::fprintf(stderr, "%s: differs from cuBLAS (%g)\n", schedules[i].key().c_str(), worst);
      ++failed;
    } else {
      results.push_back({i, time_us(launch)});
    }
  }
  std::sort(results.begin(), results.end(), [](const Result& x, const Result& y) { return x.us < y.us; });
  std::printf("%s on %s: %zu schedules timed (%d failed)\n", w.key().c_str(), dev.properties.name.c_str(),
              results.size(), failed);
  std::printf("%-90s %10s %10s %8s\n", "schedule", "time us", "TFLOP/s", "vs cuBLAS");
  for (size_t r = 0; r < std::min<size_t>(5, results.size()); ++r) {
    double us = results[r].us;
    std::printf("%-90s %10.1f %10.1f %7.2fx\n", schedules[results[r].index].key().c_str(), us, flops / us / 1e6,
                cublas_us / us);
  }
  std::printf("%-90s %10.1f %10.1f %7.2fx\n", "cuBLAS (cublasGemmEx, f32 compute)", cublas_us, flops / cublas_us / 1e6, 1.0);
  if (results.empty()) return 1;
  std::printf("gemm=%s best_tflops=%.1f cublas_tflops=%.1f ratio=%.3f\n", w.key().c_str(), flops / results[0].us / 1e6,
              flops / cublas_us / 1e6, cublas_us / results[0].us);
  cublasDestroy(handle);
  return 0;
}
