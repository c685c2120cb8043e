#include "graph/graph_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "core/error.h"
#include "graph/op_semantics.h"
#include "kernels/families.h"
#include "kernels/reference.h"

#if TESSERA_HAVE_CUDA
#include "kernels/builder.h"
#include "measure/cublaslt.h"
#include "measure/cuda_call.h"
#include "measure/cudnn_conv.h"
#include "measure/cudnn_rows.h"
#include "measure/cupti_timer.h"
#include "measure/launch.h"
#endif

namespace tessera::graph {

#if !TESSERA_HAVE_CUDA
GpuRunResult run_plan_on_gpu(const Graph&, const ExecPlan&, const std::vector<std::optional<Schedule>>&,
                             const kernels::FamilyRegistry&, std::span<const Tensor>, const GpuRunOptions&) {
  throw UserError("this tessera was built without CUDA support");
}
#else
namespace {

using kernels::StoreType;
using measure::DeviceBuffer;

bool is_float_store(StoreType t) { return t == StoreType::kF16 || t == StoreType::kBF16 || t == StoreType::kF32; }

// The DType of a floating store type (what kernels::encode and decode speak).
DType float_dtype(StoreType t) {
  return t == StoreType::kF16 ? DType::kF16 : t == StoreType::kBF16 ? DType::kBF16 : DType::kF32;
}

// Host bytes of `t` in `type`, row-major. Floating tensors go through kernels::encode; integer
// ones are int64 (bool one byte) with their exact values.
std::vector<uint8_t> to_device_bytes(const Tensor& t, StoreType type) {
  if (is_float_store(type)) {
    kernels::HostTensor h{t.shape, t.f};
    if (type == StoreType::kF16) {
      // A finite constant beyond half's range saturates instead of becoming infinite (as
      // ONNX's float16 converters do): an attention mask's -3.4e38 must stay a number, or 0
      // times it is NaN.
      constexpr float kHalfMax = 65504;
      for (float& v : h.data)
        if (std::isfinite(v)) v = std::clamp(v, -kHalfMax, kHalfMax);
    }
    return kernels::encode(h, float_dtype(type));
  }
  std::vector<uint8_t> out(t.i.size() * static_cast<size_t>(kernels::store_bytes(type)));
  for (size_t k = 0; k < t.i.size(); ++k) {
    if (type == StoreType::kU8)
      out[k] = t.i[k] != 0;
    else
      std::memcpy(out.data() + 8 * k, &t.i[k], 8);
  }
  return out;
}

// The q-quantile of samples in any order (core's quantile).
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return quantile(v, q);
}

class GpuRun {
 public:
  GpuRun(const Graph& g, const ExecPlan& plan, const kernels::FamilyRegistry& families,
         const GpuRunOptions& o)
      : g_(g), plan_(plan), families_(families), o_(o) {}

  GpuRunResult run(const std::vector<std::optional<Schedule>>& schedules, std::span<const Tensor> inputs);

 private:
  void compile(const std::vector<std::optional<Schedule>>& schedules, GpuRunResult& r);
  void allocate(std::span<const Tensor> inputs);
  void* base(int buffer) const {
    if (buffer < 0) return nullptr;
    const ExecBuffer& b = plan_.buffers[static_cast<size_t>(buffer)];
    if (b.kind == ExecBuffer::Kind::kArena) return static_cast<uint8_t*>(arena_->data()) + b.arena_offset;
    return owned_[static_cast<size_t>(buffer)]->data();
  }
  void enqueue(size_t step, void* stream) const;
  std::vector<void*> tensor_pointers(size_t step) const;
  void choose_vendor(size_t step, GpuRunResult& r);
  Tensor download(ValueId v) const;

  const Graph& g_;
  const ExecPlan& plan_;
  const kernels::FamilyRegistry& families_;
  GpuRunOptions o_;
  std::vector<kernels::KernelSource> sources_;                // per step
  std::vector<std::unique_ptr<measure::LoadedPlan>> loaded_;  // per step
  std::unique_ptr<DeviceBuffer> arena_;
  std::vector<std::unique_ptr<DeviceBuffer>> owned_;      // per buffer (not the arena's)
  std::vector<std::unique_ptr<DeviceBuffer>> workspace_;  // per step
  // Per step: the vendor routine that runs it instead of loaded_[step] (vendor runs).
  std::vector<std::function<std::string(cudaStream_t)>> vendor_;
  std::vector<std::shared_ptr<void>> vendor_state_;
  // The algorithm chosen per workload (a model repeats its layers: BERT-base's 96 matmuls are
  // 4 workloads), so each is timed once.
  std::map<std::string, int> vendor_choice_;
  std::unique_ptr<measure::KernelTimer> timer_;  // one per process, made before the first timing
};

// The fastest of `algorithms` by their kernels' time (CUPTI, as the tuning worker chooses the
// baseline's: a library call's host work is not the GPU's), or -1 if none runs.
int fastest(measure::KernelTimer& timer, int algorithms, const std::function<std::string(int)>& launch) {
  int best = -1;
  double best_us = 0;
  for (int k = 0; k < algorithms; ++k) {
    if (!launch(k).empty() || cudaDeviceSynchronize() != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    std::vector<double> t = timer.time(
        5, [&] { (void)launch(k); }, [] {});
    const double us = percentile(t, 0.5);
    if (best < 0 || us < best_us) {
      best = k;
      best_us = us;
    }
  }
  return best;
}

// The vendor routine for a kernel step, if the library runs the whole workload (epilogue
// included): cuBLASLt, cuDNN's convolution or its softmax.
void GpuRun::choose_vendor(size_t i, GpuRunResult& r) {
  if (kernels::any_strided(plan_.steps[i].layouts)) return;  // the libraries read dense operands
  const Workload& w = *plan_.steps[i].workload;
  const std::vector<void*> t = tensor_pointers(i);
  std::string why;
  // The fastest algorithm, timed once per workload; a later step of the same workload takes it
  // if it launches there.
  auto fastest_for = [&](int algorithms, const std::function<std::string(int)>& launch) {
    auto it = vendor_choice_.find(w.key());
    if (it != vendor_choice_.end() && it->second >= 0 && launch(it->second).empty() &&
        cudaDeviceSynchronize() == cudaSuccess)
      return it->second;
    cudaGetLastError();
    const int a = fastest(*timer_, algorithms, launch);
    vendor_choice_[w.key()] = a;
    return a;
  };
  if (w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul) {
    auto lt = measure::LtMatmul::make(w, /*reference=*/false, why);
    if (!lt) return;
    auto state = std::make_shared<measure::LtMatmul>(std::move(*lt));
    const int a = fastest_for(state->algorithms(), [&](int k) { return state->launch(k, t, nullptr); });
    if (a < 0) return;
    vendor_[i] = [state, a, t](cudaStream_t s) { return state->launch(a, t, s); };
    vendor_state_.push_back(state);
    r.runner[i] = "cuBLASLt";
  } else if (w.kind == OpKind::kConv2d) {
    auto dnn = w.epilogue.empty() ? measure::CudnnConv::make(w, why) : measure::CudnnConv::make(w, why, true);
    if (!dnn || (!w.epilogue.empty() && !dnn->fused())) return;
    auto state = std::make_shared<measure::CudnnConv>(std::move(*dnn));
    const int a = fastest_for(state->algorithms(), [&](int k) { return state->launch(k, t, nullptr); });
    if (a < 0) return;
    vendor_[i] = [state, a, t](cudaStream_t s) { return state->launch(a, t, s); };
    vendor_state_.push_back(state);
    r.runner[i] = "cuDNN " + state->algorithm_name(a);
  } else if (w.kind == OpKind::kSoftmax) {
    auto rows = measure::CudnnRows::make(w, why);
    if (!rows) return;
    auto state = std::make_shared<measure::CudnnRows>(std::move(*rows));
    vendor_[i] = [state, t](cudaStream_t s) { return state->launch(t, s); };
    vendor_state_.push_back(state);
    r.runner[i] = "cuDNN softmax";
  }
}

void GpuRun::compile(const std::vector<std::optional<Schedule>>& schedules, GpuRunResult& r) {
  cudaDeviceProp p{};
  TESSERA_CUDA_CALL(cudaGetDeviceProperties(&p, o_.device));
  r.device = p.name;
  for (size_t i = 0; i < plan_.steps.size(); ++i) {
    const ExecStep& s = plan_.steps[i];
    if (s.kind == ExecStep::Kind::kGeneric) {
      sources_.push_back(s.generic->source);
      continue;
    }
    TESSERA_CHECK(i < schedules.size() && schedules[i], "no schedule for kernel step " + s.label);
    const kernels::KernelFamily* f = families_.find(schedules[i]->family);
    if (f == nullptr) throw UserError(s.label + ": unknown family " + schedules[i]->family);
    sources_.push_back(kernels::any_strided(s.layouts) ? f->emit_strided(*s.workload, *schedules[i], s.layouts)
                                                    : f->emit(*s.workload, *schedules[i]));
  }
  kernels::BuildOptions build;
  build.arch = measure::nvrtc_arch(p.major, p.minor);
  build.headers = kernels::device_headers();
  build.cache_dir = o_.cache_dir;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<kernels::CompiledKernel> built = kernels::Builder(build).build(sources_);
  r.compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < built.size(); ++i) {
    if (built[i].status != Status::kOk)
      throw UserError(plan_.steps[i].label + " did not compile: " + built[i].error);
    r.compiled += built[i].from_cache ? 0 : 1;
    loaded_.push_back(std::make_unique<measure::LoadedPlan>(built[i].cubin, sources_[i]));
    if (!loaded_.back()->ok())
      throw UserError(plan_.steps[i].label + " did not load: " + loaded_.back()->error());
    workspace_.push_back(sources_[i].workspace_bytes > 0 ? std::make_unique<DeviceBuffer>(static_cast<size_t>(
                                                               sources_[i].workspace_bytes))
                                                         : nullptr);
    if (workspace_.back()) workspace_.back()->fill(0);
  }
}

void GpuRun::allocate(std::span<const Tensor> inputs) {
  arena_ = std::make_unique<DeviceBuffer>(static_cast<size_t>(std::max<int64_t>(plan_.arena_bytes, 256)));
  owned_.resize(plan_.buffers.size());
  for (size_t b = 0; b < plan_.buffers.size(); ++b) {
    const ExecBuffer& buf = plan_.buffers[b];
    if (buf.kind == ExecBuffer::Kind::kArena) continue;
    owned_[b] = std::make_unique<DeviceBuffer>(static_cast<size_t>(buf.bytes));
    owned_[b]->fill(0);
    if (buf.kind == ExecBuffer::Kind::kConstant) {
      const Tensor& t = buf.data ? *buf.data : *g_.value(buf.value).constant;
      owned_[b]->upload(to_device_bytes(t, store_type(t.type, plan_.dtype)));
    } else if (buf.kind == ExecBuffer::Kind::kInput) {
      const auto& ins = g_.inputs();
      const size_t k = static_cast<size_t>(std::find(ins.begin(), ins.end(), buf.value) - ins.begin());
      TESSERA_CHECK(k < inputs.size(), "no tensor for a graph input");
      owned_[b]->upload(to_device_bytes(inputs[k], store_type(inputs[k].type, plan_.dtype)));
    }
  }
}

std::vector<void*> GpuRun::tensor_pointers(size_t i) const {
  std::vector<void*> ptrs;
  for (const Placement& t : plan_.steps[i].tensors)
    ptrs.push_back(static_cast<uint8_t*>(base(t.buffer)) + placement_byte_offset(t));
  return ptrs;
}

void GpuRun::enqueue(size_t i, void* stream) const {
  const ExecStep& s = plan_.steps[i];
  if (i < vendor_.size() && vendor_[i]) {
    std::string err = vendor_[i](static_cast<cudaStream_t>(stream));
    if (!err.empty()) throw UserError(s.label + ": the vendor library failed: " + err);
    return;
  }
  std::vector<void*> ptrs;
  kernels::GenericParams params;
  if (s.kind == ExecStep::Kind::kKernel) {
    ptrs = tensor_pointers(i);
    if (workspace_[i]) ptrs.push_back(workspace_[i]->data());
  } else {
    for (int b : s.buffers) ptrs.push_back(base(b));
    params = s.generic->params;
  }
  std::vector<void*> args;
  for (void*& p : ptrs) args.push_back(&p);
  if (s.kind == ExecStep::Kind::kGeneric) args.push_back(&params);
  std::string err = loaded_[i]->enqueue(args, stream);
  if (!err.empty()) throw UserError(s.label + " did not launch: " + err);
}

Tensor GpuRun::download(ValueId v) const {
  const Placement& p = plan_.values[static_cast<size_t>(v)];
  const Value& val = g_.value(v);
  const int64_t eb = kernels::store_bytes(p.type);
  const int64_t elements = plan_.buffers[static_cast<size_t>(p.buffer)].bytes / eb;
  std::vector<uint8_t> host(static_cast<size_t>(elements * eb));
  TESSERA_CUDA_CALL(cudaMemcpy(host.data(), base(p.buffer), host.size(), cudaMemcpyDeviceToHost));
  std::vector<float> floats;
  if (is_float_store(p.type)) floats = kernels::decode(host, {elements}, float_dtype(p.type)).data;
  Tensor t = op_detail::allocate(val.type, val.shape);
  const op_detail::Shape rm = op_detail::strides_of(val.shape);
  for (int64_t k = 0; k < t.elements(); ++k) {
    int64_t off = p.offset, rest = k;
    for (size_t d = 0; d < val.shape.size(); ++d) {
      off += rest / rm[d] * p.strides[d];
      rest %= rm[d];
    }
    TESSERA_CHECK(off >= 0 && off < elements, "an output lies outside its buffer");
    const size_t at = static_cast<size_t>(off);
    if (is_float_store(p.type))
      t.f[static_cast<size_t>(k)] = floats[at];
    else if (p.type == StoreType::kU8)
      t.i[static_cast<size_t>(k)] = host[at];
    else
      std::memcpy(&t.i[static_cast<size_t>(k)], host.data() + 8 * at, 8);
  }
  return t;
}

GpuRunResult GpuRun::run(const std::vector<std::optional<Schedule>>& schedules,
                         std::span<const Tensor> inputs) {
  TESSERA_CUDA_CALL(cudaSetDevice(o_.device));
  GpuRunResult r;
  compile(schedules, r);
  allocate(inputs);
  timer_ = std::make_unique<measure::KernelTimer>();
  r.runner.assign(plan_.steps.size(), "tessera");
  vendor_.resize(plan_.steps.size());
  if (o_.vendor)
    for (size_t i = 0; i < plan_.steps.size(); ++i)
      if (plan_.steps[i].kind == ExecStep::Kind::kKernel) choose_vendor(i, r);
  size_t first_run = 0;
  while (first_run < plan_.steps.size() && plan_.steps[first_run].setup) enqueue(first_run++, nullptr);
  // The checked run.
  for (size_t i = first_run; i < plan_.steps.size(); ++i) enqueue(i, nullptr);
  TESSERA_CUDA_CALL(cudaDeviceSynchronize());
  for (ValueId v : g_.outputs()) r.outputs.push_back(download(v));

  // The whole run as one CUDA graph, replayed.
  cudaStream_t stream;
  TESSERA_CUDA_CALL(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  TESSERA_CUDA_CALL(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (size_t i = first_run; i < plan_.steps.size(); ++i) enqueue(i, stream);
  cudaGraph_t graph;
  TESSERA_CUDA_CALL(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec;
  TESSERA_CUDA_CALL(cudaGraphInstantiate(&exec, graph, 0));
  cudaDeviceProp p{};
  TESSERA_CUDA_CALL(cudaGetDeviceProperties(&p, o_.device));
  DeviceBuffer flush(static_cast<size_t>(std::max(p.l2CacheSize, 1 << 20)) * 2);
  cudaEvent_t start, stop;
  TESSERA_CUDA_CALL(cudaEventCreate(&start));
  TESSERA_CUDA_CALL(cudaEventCreate(&stop));
  auto series = [&](bool flushed) {
    std::vector<double> times;
    for (int k = -5; k < o_.iters; ++k) {
      if (flushed) TESSERA_CUDA_CALL(cudaMemsetAsync(flush.data(), k & 0xFF, flush.bytes(), stream));
      TESSERA_CUDA_CALL(cudaEventRecord(start, stream));
      TESSERA_CUDA_CALL(cudaGraphLaunch(exec, stream));
      TESSERA_CUDA_CALL(cudaEventRecord(stop, stream));
      TESSERA_CUDA_CALL(cudaEventSynchronize(stop));
      float ms = 0;
      TESSERA_CUDA_CALL(cudaEventElapsedTime(&ms, start, stop));
      if (k >= 0) times.push_back(1e3 * ms);
    }
    return times;
  };
  std::vector<double> warm = series(false), cold = series(true);
  // Back to back, on the GPU's clock: only the first replay waits for the host.
  std::vector<measure::KernelTimer::Span> spans = timer_->spans(
      std::max(o_.iters, 3), [&] { TESSERA_CUDA_CALL(cudaGraphLaunch(exec, stream)); }, [] {});
  std::sort(spans.begin() + 1, spans.end(), [](const auto& a, const auto& b) { return a.span_us < b.span_us; });
  const measure::KernelTimer::Span& mid = spans[1 + (spans.size() - 1) / 2];
  r.back_to_back_us = mid.span_us;
  r.busy_us = mid.busy_us;
  r.largest_gap_us = mid.largest_gap_us;
  r.kernels_per_replay = mid.kernels;
  r.median_us = percentile(warm, 0.5);
  r.min_us = percentile(warm, 0);
  r.p90_us = percentile(warm, 0.9);
  r.flushed_median_us = percentile(cold, 0.5);
  r.flushed_p90_us = percentile(cold, 0.9);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);

  // Each step alone: its kernels' summed time (CUPTI), L2 warm (each step right after itself).
  // One timed series for all of them: CUPTI's buffers are flushed once, not once a step.
  const size_t steps = plan_.steps.size() - first_run, per = static_cast<size_t>(o_.step_iters);
  if (steps > 0) {
    size_t launched = 0;
    std::vector<double> t = timer_->time(
        static_cast<int>(steps * per), [&] { enqueue(first_run + launched++ / per, nullptr); }, [] {});
    for (size_t i = 0; i < steps; ++i) {
      const auto first = t.begin() + static_cast<std::ptrdiff_t>(i * per);
      r.steps.push_back({first_run + i, percentile({first, first + static_cast<std::ptrdiff_t>(per)}, 0.5)});
    }
  }
  return r;
}

}  // namespace

GpuRunResult run_plan_on_gpu(const Graph& g, const ExecPlan& plan,
                             const std::vector<std::optional<Schedule>>& schedules,
                             const kernels::FamilyRegistry& families, std::span<const Tensor> inputs,
                             const GpuRunOptions& options) {
  TESSERA_CHECK(plan.unsupported.empty(), "run_plan_on_gpu: the plan has unsupported operators");
  return GpuRun(g, plan, families, options).run(schedules, inputs);
}
#endif

}  // namespace tessera::graph
