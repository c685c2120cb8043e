// GPU measurement on a real GPU (label gpu; skipped without one): CUPTI against CUDA events,
// repeatability of the worker's timing, and planted faulting, hanging and wrong kernels
// that cost only their own candidate.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "kernels/builder.h"
#include "kernels/families.h"
#include "measure/devices.h"
#include "measure/launch.h"
#include "measure/pool.h"
#if TESSERA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "measure/cublaslt.h"
#include "measure/cupti_timer.h"
#endif

namespace tessera::measure {
namespace {

[[maybe_unused]] double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

class MeasureGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    scan_ = scan_devices();
    if (scan_.devices.empty()) GTEST_SKIP() << "no GPU: " << scan_.reason;
    ASSERT_TRUE(scan_.devices.front().spec.has_value());
    const Device& d = scan_.devices.front();
    build_.arch = nvrtc_arch(d.properties.cc_major, d.properties.cc_minor);
    build_.headers = kernels::device_headers();
  }

  Job family_job(const std::string& spec, const Schedule& s) {
    kernels::FamilyRegistry families;
    kernels::register_builtin_families(families);
    Workload w = Workload::parse(spec);
    const kernels::KernelFamily* f = families.find(s.family);
    EXPECT_FALSE(f->validate(s, w, *scan_.devices.front().spec).has_value());
    Job job{w, s, f->emit(w, s), ""};
    kernels::CompiledKernel k = kernels::Builder(build_).compile(job.plan);
    EXPECT_EQ(k.status, Status::kOk) << k.error;
    job.cubin = k.cubin;
    return job;
  }

  // A hand-written kernel (x, y) run as the candidate of an f32 relu over 1024 elements.
  Job planted_job(const std::string& entry, const std::string& body) {
    Job job;
    job.workload = Workload::parse("elementwise:ops=relu,n=1024:f32");
    job.schedule = {"planted", {{"kind", static_cast<int64_t>(entry.size())}}};
    job.plan = kernels::KernelSource(entry, "extern \"C\" __global__ void " + entry +
                                                "(const float* x, float* y) {\n" + body + "\n}\n");
    job.plan.launch.grid[0] = 4;
    job.plan.launch.block[0] = 256;
    kernels::CompiledKernel k = kernels::Builder(build_).compile(job.plan);
    EXPECT_EQ(k.status, Status::kOk) << k.error;
    job.cubin = k.cubin;
    return job;
  }

  PoolOptions pool_options() const {
    PoolOptions o;
    o.workers = {{TESSERA_CLI, "worker", "--device", "0"}};
    o.kernel_timeout_s = 20;
    return o;
  }

  DeviceScan scan_;
  kernels::BuildOptions build_;
};

#if TESSERA_HAVE_CUDA
TEST_F(MeasureGpu, CuptiAgreesWithCudaEventsOnACublasGemm) {
  Workload w = Workload::parse("matmul:m=4096,n=4096,k=4096:f16");
  std::string why;
  std::optional<LtMatmul> lt = LtMatmul::make(w, /*reference=*/false, why);
  ASSERT_TRUE(lt.has_value()) << why;
  const size_t bytes = 4096ull * 4096 * 2;
  DeviceBuffer a(bytes), b(bytes), d(bytes);
  a.fill(0x3c);  // f16 0x3c3c, about 1.06
  b.fill(0x2c);
  cudaDeviceProp p{};
  ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
  DeviceBuffer flush(static_cast<size_t>(p.l2CacheSize) * 2);
  std::vector<void*> t = {a.data(), b.data(), d.data()};
  auto run = [&] { ASSERT_EQ(lt->launch(0, t, nullptr), ""); };
  auto between = [&] { cudaMemsetAsync(flush.data(), 1, flush.bytes(), nullptr); };
  for (int i = 0; i < 20; ++i) run();
  KernelTimer timer;
  const int n = 100;
  double cupti = median(timer.time(n, run, between));
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> events;
  for (int i = 0; i < n; ++i) {
    between();
    cudaEventRecord(start);
    run();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    events.push_back(ms * 1000.0);
  }
  double ev = median(events);
  std::printf("[ measure  ] cuBLASLt 4096^3 f16: CUPTI median %.2f us, CUDA events median %.2f us, ratio %.4f\n",
              cupti, ev, cupti / ev);
  EXPECT_NEAR(cupti / ev, 1.0, 0.05);
}
#endif

TEST_F(MeasureGpu, WorkerTimingIsRepeatableAndBesideTheVendor) {
  Schedule s{"gemm_tc", {{"block_m", 256}, {"block_n", 128}, {"block_k", 64}, {"warps_m", 4}, {"warps_n", 2},
                         {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  Job job = family_job("matmul:m=4096,n=4096,k=4096:f16", s);
  std::vector<Job> jobs(5, job);
  WorkerPool pool(pool_options());
  std::vector<Measurement> out = pool.run(jobs);
  std::vector<double> medians;
  for (const Measurement& m : out) {
    ASSERT_EQ(m.status, Status::kOk) << m.error;
    ASSERT_TRUE(m.vendor_us.has_value()) << m.conditions.dump();
    EXPECT_TRUE(m.conditions.contains("clocks"));
    EXPECT_GE(m.times_us.size(), 10u);
    medians.push_back(m.median_us);
  }
  double lo = *std::min_element(medians.begin(), medians.end()), hi = *std::max_element(medians.begin(), medians.end());
  std::printf("[ measure  ] gemm_tc 4096^3: 5 measurements, medians %.2f..%.2f us (spread of medians %.2f%%), "
              "series spread %.2f%%, cuBLASLt %.2f us, ratio %.3f, conditions %s\n",
              lo, hi, 100 * (hi - lo) / lo, 100 * out[0].spread, *out[0].vendor_us, *out[0].vendor_us / out[0].median_us,
              out[0].conditions.dump().c_str());
  EXPECT_LT((hi - lo) / lo, 0.02);
}

TEST_F(MeasureGpu, FaultingHangingAndWrongKernelsCostOnlyThemselves) {
  Job good = family_job("elementwise:ops=relu,n=1024:f32", {"elementwise", {{"threads", 256}, {"vec", 4}, {"items", 1}}});
  Job fault = planted_job("planted_fault", "  *reinterpret_cast<volatile int*>(16) = 1; (void)x; (void)y;");
  Job hang = planted_job("planted_hang", "  while (clock64() >= 0) {}\n  (void)x; (void)y;");
  Job wrong = planted_job("planted_wrong",
                          "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i < 1024) y[i] = x[i];  // no relu");
  PoolOptions o = pool_options();
  o.kernel_timeout_s = 10;
  WorkerPool pool(o);
  std::vector<Measurement> out = pool.run(std::vector<Job>{good, fault, good, hang, good, wrong, good});
  ASSERT_EQ(out.size(), 7u);
  for (size_t i : {0, 2, 4, 6}) EXPECT_EQ(out[i].status, Status::kOk) << i << ": " << out[i].error;
  EXPECT_EQ(out[1].status, Status::kCrashed) << out[1].error;
  EXPECT_EQ(out[3].status, Status::kTimeout) << out[3].error;
  EXPECT_EQ(out[5].status, Status::kIncorrect) << out[5].error;
  std::printf("[ measure  ] planted: fault -> %s (%s); hang -> %s (%s); wrong -> %s (%s); %d worker starts\n",
              std::string(status_name(out[1].status)).c_str(), out[1].error.c_str(),
              std::string(status_name(out[3].status)).c_str(), out[3].error.c_str(),
              std::string(status_name(out[5].status)).c_str(), out[5].error.c_str(), pool.stats().starts);
}

TEST_F(MeasureGpu, ConvolutionsAreCheckedAndTimedBesideCudnn) {
  Schedule s{"conv_tc", {{"block_m", 128}, {"block_n", 64}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                         {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  Job job = family_job("conv2d:n=8,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16", s);
  WorkerPool pool(pool_options());
  Measurement m = pool.run(std::span<const Job>(&job, 1)).front();
  ASSERT_EQ(m.status, Status::kOk) << m.error;
  const Json& vendor = m.conditions["vendor"];
  std::printf("[ measure  ] conv_tc n=8 56x56x64 3x3: %.2f us; vendor %s\n", m.median_us, vendor.dump().c_str());
  if (vendor.contains("none")) {
    // Only acceptable when cuDNN is not installed on this machine.
    EXPECT_NE(vendor["none"].get<std::string>().find("cuDNN 9 not found"), std::string::npos);
  } else {
    EXPECT_EQ(vendor["library"], "cuDNN");
    ASSERT_TRUE(m.vendor_us.has_value());
    EXPECT_GT(*m.vendor_us, 0);
  }
}

TEST_F(MeasureGpu, CudnnRunsTheEpilogueFusedWhereItHasTheForm) {
  // bias + residual + relu, and bias alone (identity activation), are cuDNN's fused form: the
  // baseline does the workload's whole work, checked against the reference by the worker, and
  // the convolution alone is timed beside it. GELU has no fused form: the record says so.
  Schedule s{"conv_tc", {{"block_m", 128}, {"block_n", 64}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                         {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  const char* fused[] = {"conv2d:n=1,h=56,w=56,c=64,k=256,r=1,s=1:f16:epilogue=bias+residual+relu",
                         "conv2d:n=2,h=28,w=28,c=64,k=64,r=3,s=3,pad=1:f16:epilogue=bias"};
  std::vector<Job> jobs;
  for (const char* spec : fused) jobs.push_back(family_job(spec, s));
  jobs.push_back(family_job("conv2d:n=2,h=28,w=28,c=64,k=64,r=3,s=3,pad=1:f16:epilogue=bias+gelu", s));
  WorkerPool pool(pool_options());
  std::vector<Measurement> out = pool.run(jobs);
  for (size_t i = 0; i < out.size(); ++i) {
    const Measurement& m = out[i];
    ASSERT_EQ(m.status, Status::kOk) << m.error;
    const Json& vendor = m.conditions["vendor"];
    std::printf("[ measure  ] %s: %.2f us; vendor %s\n", jobs[i].workload.key().c_str(), m.median_us, vendor.dump().c_str());
    if (vendor.contains("none")) {
      EXPECT_NE(vendor["none"].get<std::string>().find("cuDNN 9 not found"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(m.vendor_us.has_value());
    const std::string epilogue = vendor["epilogue"].get<std::string>();
    if (i < 2) {
      EXPECT_EQ(epilogue, "fused by cuDNN (cudnnConvolutionBiasActivationForward)");
      ASSERT_TRUE(vendor.contains("convolution_only_us")) << vendor.dump();
      EXPECT_GT(vendor["convolution_only_us"].get<double>(), 0);
    } else {
      EXPECT_NE(epilogue.find("not run: convolution only"), std::string::npos) << epilogue;
      EXPECT_FALSE(vendor.contains("convolution_only_us"));
    }
  }
}

TEST_F(MeasureGpu, RowOperatorsAreTimedBesideTheCopyAndCudnn) {
  // softmax and reduce: the copy is the baseline, cuDNN's routine is checked and timed beside it;
  // layernorm: the copy only, and the record says why cuDNN is not there.
  struct Case {
    const char* spec;
    Schedule schedule;
    bool cudnn;
  };
  const Case cases[] = {
      {"softmax:rows=4096,cols=1024:f16",
       {"rows", {{"row_threads", 32}, {"rows_per_block", 4}, {"vec", 8}, {"single_pass", 2}}}, true},
      {"reduce:op=max,rows=4096,cols=1000:f32", {"rows", {{"row_threads", 32}, {"rows_per_block", 4}, {"vec", 4}}}, true},
      {"layernorm:rows=1024,cols=768:f16",
       {"rows", {{"row_threads", 32}, {"rows_per_block", 4}, {"vec", 8}, {"single_pass", 2}}}, false}};
  WorkerPool pool(pool_options());
  for (const Case& c : cases) {
    Job job = family_job(c.spec, c.schedule);
    Measurement m = pool.run(std::span<const Job>(&job, 1)).front();
    ASSERT_EQ(m.status, Status::kOk) << c.spec << ": " << m.error;
    const Json& vendor = m.conditions["vendor"];
    std::printf("[ measure  ] %s: %.2f us; vendor %s\n", c.spec, m.median_us, vendor.dump().c_str());
    EXPECT_EQ(vendor["library"], "copy") << c.spec;
    ASSERT_TRUE(m.vendor_us.has_value()) << c.spec;
    ASSERT_TRUE(vendor.contains("cudnn")) << c.spec;
    const Json& dnn = vendor["cudnn"];
    if (!c.cudnn) {
      EXPECT_NE(dnn.value("none", std::string()).find("graph API"), std::string::npos) << dnn.dump();
    } else if (dnn.contains("none")) {
      // Only acceptable when cuDNN is not installed on this machine.
      EXPECT_NE(dnn["none"].get<std::string>().find("cuDNN 9 not found"), std::string::npos) << dnn.dump();
    } else {
      EXPECT_GT(dnn["us"].get<double>(), 0) << c.spec;
    }
  }
}

TEST_F(MeasureGpu, SeveralGpusGiveTheSameResultsAsOne) {
  if (scan_.devices.size() < 2) GTEST_SKIP() << "one GPU";
  std::vector<Job> jobs;
  for (int64_t vec : {1, 2, 4})
    for (const char* spec : {"elementwise:ops=add+relu,n=100003:f16", "elementwise:ops=mul+gelu,n=4097:f32"})
      jobs.push_back(family_job(spec, {"elementwise", {{"threads", 128}, {"vec", vec}, {"items", 2}}}));
  jobs.push_back(planted_job("planted_wrong", "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i < 1024) y[i] = 1;"));
  PoolOptions one = pool_options(), all = pool_options();
  all.workers.clear();
  for (const Device& d : scan_.devices) all.workers.push_back({TESSERA_CLI, "worker", "--device", std::to_string(d.index)});
  std::vector<Measurement> a = WorkerPool(one).run(jobs), b = WorkerPool(all).run(jobs);
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(a[i].status, b[i].status) << i;
    EXPECT_EQ(a[i].error, b[i].error) << i;
  }
  std::printf("[ measure  ] %zu jobs on 1 and on %zu GPUs: same statuses and checks\n", jobs.size(), scan_.devices.size());
}

}  // namespace
}  // namespace tessera::measure
