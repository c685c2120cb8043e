#include "measure/worker.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "core/error.h"
#include "kernels/builder.h"
#include "kernels/reference.h"
#include "measure/check.h"
#include "measure/devices.h"
#include "measure/job.h"
#include "measure/protocol.h"

#if TESSERA_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include "measure/cublaslt.h"
#include "measure/cudnn_conv.h"
#include "measure/cudnn_rows.h"
#include "measure/cuda_call.h"
#include "measure/cupti_timer.h"
#include "measure/launch.h"
#endif

namespace tessera::measure {
namespace {

// The protocol's own copy of stdout; fd 1 then points at stderr so that a stray printf in
// a library cannot corrupt a frame.
int claim_stdout() {
  int out = ::dup(1);
  if (out < 0 || ::dup2(2, 1) < 0) return 1;
  return out;
}

#if TESSERA_HAVE_CUDA

// GPU clocks, clock-event (throttle) reasons and temperature through NVML, loaded at run
// time from the driver (no link dependency); {"nvml": "unavailable: ..."} without it.
class Nvml {
 public:
  explicit Nvml(int device) {
    lib_ = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib_) {
      why_ = "libnvidia-ml.so.1 not found";
      return;
    }
    auto sym = [&](const char* name) { return ::dlsym(lib_, name); };
    auto init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
    auto by_pci = reinterpret_cast<int (*)(const char*, void**)>(sym("nvmlDeviceGetHandleByPciBusId_v2"));
    clock_ = reinterpret_cast<int (*)(void*, int, unsigned*)>(sym("nvmlDeviceGetClockInfo"));
    reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetCurrentClocksEventReasons"));
    if (!reasons_)
      reasons_ = reinterpret_cast<int (*)(void*, unsigned long long*)>(sym("nvmlDeviceGetCurrentClocksThrottleReasons"));
    temperature_ = reinterpret_cast<int (*)(void*, int, unsigned*)>(sym("nvmlDeviceGetTemperature"));
    char bus[64] = {};
    if (!init || !by_pci || !clock_ || init() != 0 || cudaDeviceGetPCIBusId(bus, sizeof bus, device) != cudaSuccess ||
        by_pci(bus, &device_) != 0) {
      why_ = "NVML did not initialise for this device";
      device_ = nullptr;
    }
  }
  Json read() const {
    if (!device_) return Json{{"nvml", "unavailable: " + why_}};
    Json j = Json::object();
    unsigned v = 0;
    if (clock_(device_, 1 /* NVML_CLOCK_SM */, &v) == 0) j["sm_clock_mhz"] = v;
    if (clock_(device_, 2 /* NVML_CLOCK_MEM */, &v) == 0) j["mem_clock_mhz"] = v;
    unsigned long long r = 0;
    if (reasons_ && reasons_(device_, &r) == 0) {
      char hex[32];
      std::snprintf(hex, sizeof hex, "0x%llx", r);
      j["clock_event_reasons"] = hex;  // 0x0 or 0x1 (idle): not throttled
    }
    if (temperature_ && temperature_(device_, 0 /* NVML_TEMPERATURE_GPU */, &v) == 0) j["temperature_c"] = v;
    return j;
  }

 private:
  void* lib_ = nullptr;
  void* device_ = nullptr;
  std::string why_;
  int (*clock_)(void*, int, unsigned*) = nullptr;
  int (*reasons_)(void*, unsigned long long*) = nullptr;
  int (*temperature_)(void*, int, unsigned*) = nullptr;
};

// Idle time after the vendor's series before candidates are timed [ms].
constexpr int kSettleMs = 500;

bool is_matmul(const Workload& w) { return w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul; }

// A workload's inputs on the device, its output buffer, the reference output and the
// vendor baseline, kept while consecutive requests share the workload.
struct WorkloadState {
  std::string key;
  std::vector<DeviceBuffer> tensors;  // inputs, then the output
  std::vector<void*> pointers;
  std::vector<int64_t> out_shape;
  kernels::HostTensor reference;
  std::optional<double> vendor_us;
  Json vendor = Json::object();
};

class Worker {
 public:
  Worker(int device, int out_fd) : out_(out_fd), nvml_(device) {
    TESSERA_CUDA_CALL(cudaSetDevice(device));
    TESSERA_CUDA_CALL(cudaFree(nullptr));  // create the context now, not inside a timing
    cudaDeviceProp p{};
    TESSERA_CUDA_CALL(cudaGetDeviceProperties(&p, device));
    sms_ = p.multiProcessorCount;
    arch_ = nvrtc_arch(p.major, p.minor);
    // Overwriting twice the L2 evicts everything a previous run left there.
    flush_ = std::make_unique<DeviceBuffer>(static_cast<size_t>(std::max(p.l2CacheSize, 1 << 20)) * 2);
  }

  Measurement measure(const Job& job, const MeasureOptions& o, int64_t id, bool& exiting) {
    Measurement m;
    auto progress = [&](const char* phase) {
      protocol::write_frame(out_, protocol::message("progress", {{"id", id}, {"phase", phase}}));
    };
    prepare(job.workload, o, progress);
    // The vendor baseline runs once per workload, before its first candidate: a power-hungry
    // library series lowers the clocks for a while (software power cap), so it must not fall
    // between two candidates' series. The clocks get a moment to recover afterwards.
    if (o.vendor && !ws_.vendor_us && !ws_.vendor.contains("none")) {
      progress("vendor");
      vendor(job.workload, o);
      std::this_thread::sleep_for(std::chrono::milliseconds(kSettleMs));
    }
    progress("kernel");
    LoadedPlan plan(job.cubin, job.plan);
    if (!plan.ok()) return fail(Status::kLaunchError, plan.error());
    std::optional<DeviceBuffer> workspace;
    if (job.plan.workspace_bytes > 0) workspace.emplace(static_cast<size_t>(job.plan.workspace_bytes));
    std::vector<void*> ptrs = ws_.pointers;
    std::vector<void*> args;
    if (workspace) ptrs.push_back(workspace->data());
    for (void*& p : ptrs) args.push_back(&p);
    std::string launch_error;  // the first launch error, if any
    auto run = [&] {
      std::string err = plan.enqueue(args);
      if (!err.empty() && launch_error.empty()) launch_error = err;
    };
    // Checked run on a poisoned output.
    ws_.tensors.back().fill(0xFF);
    run();
    if (!launch_error.empty()) return fail(Status::kLaunchError, launch_error);
    if (cudaError_t rc = cudaDeviceSynchronize(); rc != cudaSuccess) {
      exiting = true;  // a fault poisons the context: this worker cannot measure again
      return fail(Status::kCrashed, std::string("kernel faulted: ") + cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc));
    }
    if (o.check) {
      kernels::HostTensor got =
          kernels::decode(ws_.tensors.back().download(), ws_.out_shape, job.workload.out_dtype);
      Comparison c = compare(got.data, ws_.reference.data, tolerance_for(job.workload.out_dtype, job.workload.allow_tf32));
      if (!c.ok()) return fail(Status::kIncorrect, c.describe(got.data, ws_.reference.data));
    }
    // Timing.
    timed(run, o, m);
    if (!launch_error.empty()) return fail(Status::kLaunchError, launch_error);
    m.status = Status::kOk;
    m.conditions["clocks"] = nvml_.read();
    if (o.vendor) {
      m.vendor_us = ws_.vendor_us;
      m.conditions["vendor"] = ws_.vendor;
    }
    return m;
  }

 private:
  static Measurement fail(Status s, std::string error) {
    Measurement m;
    m.status = s;
    m.error = std::move(error);
    return m;
  }

  // Warm-up, then timed series until one is quiet (or attempts run out); fills `m`.
  void timed(const std::function<void()>& run, const MeasureOptions& o, Measurement& m) {
    auto flush = [&] {
      if (o.flush_l2) cudaMemsetAsync(flush_->data(), ++flush_value_, flush_->bytes(), nullptr);
    };
    std::vector<double> first = timer_.time(1, run, flush);
    double estimate = first.front();
    int warm = std::max(o.warmup_runs, static_cast<int>(o.warmup_ms * 1000.0 / std::max(estimate, 1.0)));
    warm = std::min(warm, std::max(o.warmup_runs, o.max_repeats));
    for (int i = 0; i < warm; ++i) run();
    TESSERA_CUDA_CALL(cudaDeviceSynchronize());
    int repeats = planned_repeats(estimate, o);
    for (int attempt = 1; attempt <= std::max(1, o.max_attempts); ++attempt) {
      m.set_times(timer_.time(repeats, run, flush));
      m.conditions["attempts"] = attempt;
      m.noisy = is_noisy(m, o);
      if (!m.noisy) break;
    }
  }

  void prepare(const Workload& w, const MeasureOptions& o, const std::function<void(const char*)>& progress) {
    std::string key = w.key() + "|seed=" + std::to_string(o.seed);
    if (ws_.key == key) return;
    progress("reference");
    ws_ = WorkloadState();
    TensorExpr e = w.expr();
    std::vector<kernels::HostTensor> inputs = kernels::random_inputs(w, o.seed);
    size_t next = 0;
    for (const TensorAccess& t : e.tensors) {
      if (t.role == TensorRole::kInput) {
        std::vector<uint8_t> bytes = kernels::encode(inputs[next++], t.dtype);
        ws_.tensors.emplace_back(bytes.size());
        ws_.tensors.back().upload(bytes);
      } else {
        ws_.tensors.emplace_back(static_cast<size_t>(t.elements() * dtype_bytes(t.dtype)));
        ws_.out_shape = t.shape;
      }
    }
    for (const DeviceBuffer& b : ws_.tensors) ws_.pointers.push_back(b.data());
    if (is_matmul(w)) {
      // cuBLASLt with f32 accumulation into f32; the host applies the epilogue.
      std::string why;
      std::optional<LtMatmul> ref = LtMatmul::make(w, /*reference=*/true, why);
      if (!ref) throw UserError("no cuBLASLt reference for " + w.key() + ": " + why);
      DeviceBuffer acc(static_cast<size_t>(e.tensors.back().elements()) * 4);
      std::vector<void*> t = ws_.pointers;
      t.back() = acc.data();
      std::string err = ref->launch(0, t, nullptr);
      if (!err.empty()) throw UserError("cuBLASLt reference for " + w.key() + ": " + err);
      TESSERA_CUDA_CALL(cudaDeviceSynchronize());
      kernels::HostTensor accumulated = kernels::decode(acc.download(), ws_.out_shape, DType::kF32);
      ws_.reference = kernels::matmul_epilogue_reference(w, accumulated, inputs);
    } else {
      ws_.reference = kernels::reference(w, inputs);
    }
    ws_.key = key;
  }

  // The vendor library for the workload (cuBLASLt for matmuls, cuDNN for convolutions):
  // every algorithm its heuristic offers gets a short series, the fastest a full one. Kept
  // while requests share the workload.
  void vendor(const Workload& w, const MeasureOptions& o) {
    if (ws_.vendor_us || ws_.vendor.contains("none")) return;
    std::string why, library;
    int algorithms = 0;
    std::function<std::string(int, const std::vector<void*>&)> launch;
    std::function<std::string(int)> algorithm_name = [](int i) { return std::to_string(i); };
    Json notes = Json::object();
    std::optional<LtMatmul> lt;
    std::optional<CudnnConv> dnn;
    // The algorithms, launch and names of a cuDNN convolution (fused, or the convolution alone).
    auto use_cudnn = [&](const CudnnConv& c) {
      algorithms = c.algorithms();
      launch = [&c](int a, const std::vector<void*>& ts) { return c.launch(a, ts, nullptr); };
      algorithm_name = [&c](int a) { return c.algorithm_name(a); };
    };
    std::optional<DeviceBuffer> copy_src, copy_dst;
    std::unique_ptr<LoadedPlan> copy_kernel;
    size_t copy_bytes = 0;
    if (is_matmul(w)) {
      lt = LtMatmul::make(w, /*reference=*/false, why);
      if (lt) {
        library = "cuBLASLt";
        algorithms = lt->algorithms();
        launch = [&](int a, const std::vector<void*>& t) { return lt->launch(a, t, nullptr); };
        notes["epilogue"] = w.epilogue.empty() ? "none" : "fused by cuBLASLt (its GELU is the tanh form)";
      }
    } else if (w.kind == OpKind::kConv2d) {
      // The epilogue fused where cuDNN has the form (bias, residual, a final relu), else the
      // convolution alone.
      std::string unfused;
      if (!w.epilogue.empty()) dnn = CudnnConv::make(w, unfused, /*fuse=*/true);
      if (!dnn) dnn = CudnnConv::make(w, why);
      if (dnn) {
        library = "cuDNN";
        use_cudnn(*dnn);
        notes["epilogue"] = w.epilogue.empty() ? "none"
                            : dnn->fused() ? "fused by cuDNN (cudnnConvolutionBiasActivationForward)"
                                           : "not run: convolution only (less work than the workload; " + unfused + ")";
      }
    } else {
      // Memory-bound kinds: a device-to-device copy that reads and writes the workload's
      // compulsory DRAM traffic (its bandwidth limit on this GPU), timed as a candidate is.
      // Two ways, the faster counts: cudaMemcpyAsync, and a copy kernel of 16-byte vectors
      // (cudaMemcpy is slower on a few MB).
      copy_bytes = static_cast<size_t>(w.expr().min_bytes() / 2) / 16 * 16;
      if (copy_bytes >= 16) {
        copy_src.emplace(copy_bytes);
        copy_dst.emplace(copy_bytes);
        copy_src->fill(0);
        library = "copy";
        algorithms = 1;
        copy_kernel = build_copy_kernel(copy_bytes / 16);
        if (copy_kernel) algorithms = 2;
        algorithm_name = [](int a) { return std::string(a == 0 ? "cudaMemcpyAsync" : "copy kernel (16-byte vectors)"); };
        launch = [&](int a, const std::vector<void*>&) {
          if (a == 1) {
            void* src = copy_src->data();
            void* dst = copy_dst->data();
            void* args[] = {&src, &dst};
            return copy_kernel->enqueue(args);
          }
          const cudaError_t e =
              cudaMemcpyAsync(copy_dst->data(), copy_src->data(), copy_bytes, cudaMemcpyDeviceToDevice, nullptr);
          return e == cudaSuccess ? std::string() : std::string(cudaGetErrorString(e));
        };
        notes["baseline"] = "device-to-device copy of " + std::to_string(copy_bytes) +
                            " bytes (read and written: the workload's compulsory DRAM traffic), the faster of "
                            "cudaMemcpyAsync and a copy kernel";
        notes["bytes_moved"] = 2 * static_cast<int64_t>(copy_bytes);
      } else {
        why = "too few bytes for a copy baseline";
      }
    }
    if (algorithms == 0) {
      ws_.vendor = Json{{"none", why.empty() ? library + " offers no algorithm" : why}};
      return;
    }
    DeviceBuffer out(ws_.tensors.back().bytes());
    std::vector<void*> t = ws_.pointers;
    t.back() = out.data();
    MeasureOptions quick = o;
    quick.min_total_ms = std::min(o.min_total_ms, 10.0);
    // Every algorithm that runs gets a short series; the fastest is `best`.
    int best = -1;
    double best_us = 0, heuristic_us = 0;
    auto choose = [&] {
      best = -1;
      for (int a = 0; a < algorithms; ++a) {
        std::string err = launch(a, t);
        if (!err.empty() || cudaDeviceSynchronize() != cudaSuccess) continue;
        Measurement m;
        timed([&] { (void)launch(a, t); }, quick, m);
        if (a == 0) heuristic_us = m.median_us;
        if (best < 0 || m.median_us < best_us) best = a, best_us = m.median_us;
      }
    };
    choose();
    if (dnn && dnn->fused()) {
      // The fused call must compute the workload (its output checked against the reference);
      // the convolution alone is timed beside it, as earlier records' baseline was.
      std::string wrong = best < 0 ? "no algorithm ran fused" : "";
      if (wrong.empty()) {
        (void)launch(best, t);
        TESSERA_CUDA_CALL(cudaDeviceSynchronize());
        kernels::HostTensor got = kernels::decode(out.download(), ws_.out_shape, w.out_dtype);
        const Comparison c = compare(got.data, ws_.reference.data, tolerance_for(w.out_dtype));
        if (!c.ok()) wrong = "the fused call does not match the reference: " + c.describe(got.data, ws_.reference.data);
      }
      const int fused_best = best;
      const double fused_us = best_us, fused_heuristic_us = heuristic_us;
      std::optional<CudnnConv> alone = CudnnConv::make(w, why);
      if (alone) {
        use_cudnn(*alone);
        choose();
        if (best >= 0) notes["convolution_only_us"] = best_us;
      }
      if (!wrong.empty()) {
        notes["epilogue"] = "not run: convolution only (less work than the workload; " + wrong + ")";
        notes.erase("convolution_only_us");
        if (!alone) best = -1;
        dnn = std::move(alone);
        if (dnn) use_cudnn(*dnn);
      } else {
        use_cudnn(*dnn);
        best = fused_best, best_us = fused_us, heuristic_us = fused_heuristic_us;
      }
    }
    if (best < 0) {
      ws_.vendor = Json{{"none", "no " + library + " algorithm ran"}};
      return;
    }
    Measurement m;
    timed([&] { (void)launch(best, t); }, o, m);
    ws_.vendor_us = m.median_us;
    ws_.vendor = Json{{"library", library},
                      {"algorithms_tried", algorithms},
                      {"chosen", algorithm_name(best)},
                      {"heuristic_first_us", heuristic_us},
                      {"spread", m.spread},
                      {"clocks", nvml_.read()}};
    for (auto& [k, v] : notes.items()) ws_.vendor[k] = v;
    if (w.kind == OpKind::kSoftmax || w.kind == OpKind::kReduce || w.kind == OpKind::kLayernorm) cudnn_rows(w, o);
  }

  // cuDNN's own routine for the row operators it has, checked against the reference and
  // timed the same way, beside the copy (which stays the record's baseline):
  // conditions.vendor.cudnn is {routine, us, spread}, or {none: why}.
  void cudnn_rows(const Workload& w, const MeasureOptions& o) {
    std::string why;
    std::optional<CudnnRows> routine = CudnnRows::make(w, why);
    if (!routine) {
      ws_.vendor["cudnn"] = Json{{"none", why}};
      return;
    }
    DeviceBuffer out(ws_.tensors.back().bytes());
    const std::vector<void*> t = {ws_.pointers.front(), out.data()};
    std::string err = routine->launch(t, nullptr);
    if (err.empty() && cudaDeviceSynchronize() != cudaSuccess) err = "it failed on the GPU";
    if (!err.empty()) {
      ws_.vendor["cudnn"] = Json{{"none", routine->routine() + ": " + err}};
      return;
    }
    kernels::HostTensor got = kernels::decode(out.download(), ws_.out_shape, w.out_dtype);
    const Comparison c = compare(got.data, ws_.reference.data, tolerance_for(w.out_dtype));
    if (!c.ok()) {
      ws_.vendor["cudnn"] = Json{{"none", routine->routine() + " does not match the reference: " +
                                              c.describe(got.data, ws_.reference.data)}};
      return;
    }
    Measurement m;
    timed([&] { (void)routine->launch(t, nullptr); }, o, m);
    ws_.vendor["cudnn"] = Json{{"routine", routine->routine()}, {"us", m.median_us}, {"spread", m.spread}};
  }

  // A grid-stride copy of `vectors` 16-byte vectors, four loads in flight per thread, a full
  // grid of 512-thread blocks; null if it does not build or load (cudaMemcpyAsync remains).
  std::unique_ptr<LoadedPlan> build_copy_kernel(size_t vectors) const {
    const std::string n = std::to_string(vectors) + "ULL";
    kernels::KernelSource src(
        "tessera_copy",
        "struct alignas(16) V { unsigned x, y, z, w; };\n"
        "extern \"C\" __global__ void __launch_bounds__(512) tessera_copy(const V* __restrict__ s, V* __restrict__ d) {\n"
        "  const unsigned long long n = " + n + ", stride = (unsigned long long)gridDim.x * blockDim.x;\n"
        "  unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
        "  for (; i + 3 * stride < n; i += 4 * stride) {\n"
        "    const V a = s[i], b = s[i + stride], c = s[i + 2 * stride], e = s[i + 3 * stride];\n"
        "    d[i] = a; d[i + stride] = b; d[i + 2 * stride] = c; d[i + 3 * stride] = e;\n"
        "  }\n"
        "  for (; i < n; i += stride) d[i] = s[i];\n"
        "}\n");
    src.launch.grid[0] = std::max<int64_t>(1, std::min<int64_t>(int64_t{sms_} * 4, (static_cast<int64_t>(vectors) + 511) / 512));
    src.launch.block[0] = 512;
    kernels::BuildOptions options;
    options.arch = arch_;
    options.threads = 1;
    kernels::CompiledKernel k = kernels::Builder(options).compile(src);
    if (k.status != Status::kOk) return nullptr;
    auto plan = std::make_unique<LoadedPlan>(k.cubin, src);
    return plan->ok() ? std::move(plan) : nullptr;
  }

  int sms_ = 0;
  std::string arch_;
  int out_;
  Nvml nvml_;
  KernelTimer timer_;
  std::unique_ptr<DeviceBuffer> flush_;
  uint8_t flush_value_ = 0;
  WorkloadState ws_;
};

#endif

}  // namespace

int worker_main(int device) {
  // Ctrl-C on a terminal reaches the whole process group: the parent decides when the job
  // stops (after the batch in flight), so a worker must not die of it mid-measurement. It
  // still ends when the parent does, at end of input.
  ::signal(SIGINT, SIG_IGN);
  const int out = claim_stdout();
#if TESSERA_HAVE_CUDA
  std::unique_ptr<Worker> worker;
  Json hello{{"pid", ::getpid()}};
  try {
    DeviceScan scan = scan_devices();
    auto it = std::find_if(scan.devices.begin(), scan.devices.end(), [&](const Device& d) { return d.index == device; });
    if (it == scan.devices.end()) {
      hello["error"] = scan.devices.empty() ? "no GPU: " + scan.reason
                                            : "no GPU " + std::to_string(device) + " (" +
                                                  std::to_string(scan.devices.size()) + " found)";
    } else {
      worker = std::make_unique<Worker>(device, out);
      hello["device"] = "GPU " + std::to_string(device) + ": " + it->properties.name;
      hello["target"] = it->target.to_json();
    }
  } catch (const std::exception& e) {
    hello["error"] = std::string("cannot measure on GPU ") + std::to_string(device) + ": " + e.what();
  }
  protocol::write_frame(out, protocol::message("hello", hello));
  if (!worker) return 1;
  protocol::FrameReader reader;
  while (auto frame = protocol::read_frame(0, reader)) {
    const std::string type = frame->header["type"].get<std::string>();
    if (type == "shutdown") return 0;
    if (type != "measure") throw protocol::ProtocolError("unknown request '" + type + "'");
    const int64_t id = frame->header.at("id").get<int64_t>();
    bool exiting = false;
    Measurement m;
    try {
      Job job = job_from_header(frame->header, std::string(frame->blob.begin(), frame->blob.end()));
      m = worker->measure(job, MeasureOptions::from_json(frame->header.at("options")), id, exiting);
    } catch (const ApiError& e) {
      // A CUDA error outside the kernel's own run (e.g. a sticky one surfacing later).
      m.status = Status::kCrashed;
      m.error = e.what();
      exiting = true;
    } catch (const std::exception& e) {
      m.status = Status::kLaunchError;
      m.error = e.what();
    }
    Json result{{"id", id}, {"measurement", m.to_json()}};
    if (exiting) result["exiting"] = true;
    protocol::write_frame(out, protocol::message("result", result));
    if (exiting) return 3;
  }
  return 0;
#else
  protocol::write_frame(out, protocol::message("hello", {{"pid", ::getpid()},
                                                         {"error", "no GPU: this tessera was built without CUDA support"}}));
  (void)device;
  return 1;
#endif
}

}  // namespace tessera::measure
