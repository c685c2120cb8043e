// Only with CUDA: the whole file is compiled out otherwise.
#if TESSERA_HAVE_CUDA
#include "measure/cupti_timer.h"

#include <cuda_runtime_api.h>
#include <cupti.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "measure/cuda_call.h"

namespace tessera::measure {
namespace {

constexpr size_t kBufferBytes = size_t{8} << 20;

struct Collected {
  std::mutex mu;
  std::unordered_map<uint32_t, uint64_t> external;  // CUPTI correlation id -> our run id
  struct Interval {
    uint32_t corr;
    uint64_t start, end;  // ns
  };
  std::vector<Interval> kernels;  // kernels and copies
};
Collected& collected() {
  static Collected c;
  return c;
}

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI buffer_completed(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  Collected& c = collected();
  std::lock_guard<std::mutex> lock(c.mu);
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      auto* k = reinterpret_cast<CUpti_ActivityKernel10*>(record);
      c.kernels.push_back({k->correlationId, k->start, k->end});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {  // a copy baseline's cudaMemcpyAsync
      auto* m = reinterpret_cast<CUpti_ActivityMemcpy6*>(record);
      c.kernels.push_back({m->correlationId, m->start, m->end});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION) {
      auto* e = reinterpret_cast<CUpti_ActivityExternalCorrelation*>(record);
      const uint32_t corr = e->correlationId;
      const uint64_t external = e->externalId;
      c.external[corr] = external;
    }
  }
  std::free(buffer);
}

uint64_t next_run_id = 1;

}  // namespace

KernelTimer::KernelTimer() {
  TESSERA_CUPTI_CALL(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed));
  TESSERA_CUPTI_CALL(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL));
  TESSERA_CUPTI_CALL(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY));
  TESSERA_CUPTI_CALL(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION));
  // External correlations are recorded only for API calls CUPTI is tracing: trace the
  // runtime and driver launch APIs (their own records are dropped).
  TESSERA_CUPTI_CALL(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_RUNTIME));
  TESSERA_CUPTI_CALL(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_DRIVER));
}

KernelTimer::~KernelTimer() {
  cuptiActivityFlushAll(1);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_RUNTIME);
  cuptiActivityDisable(CUPTI_ACTIVITY_KIND_DRIVER);
}

std::vector<double> KernelTimer::time(int repeats, const std::function<void()>& run,
                                      const std::function<void()>& between) {
  std::vector<double> us;
  for (const Span& s : spans(repeats, run, between)) us.push_back(s.busy_us);
  return us;
}

std::vector<KernelTimer::Span> KernelTimer::spans(int repeats, const std::function<void()>& run,
                                                  const std::function<void()>& between) {
  const uint64_t first = next_run_id;
  next_run_id += static_cast<uint64_t>(repeats);
  for (int i = 0; i < repeats; ++i) {
    if (between) between();
    TESSERA_CUPTI_CALL(cuptiActivityPushExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, first + i));
    run();
    uint64_t popped = 0;
    TESSERA_CUPTI_CALL(cuptiActivityPopExternalCorrelationId(CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0, &popped));
  }
  TESSERA_CUDA_CALL(cudaDeviceSynchronize());
  TESSERA_CUPTI_CALL(cuptiActivityFlushAll(1));
  Collected& c = collected();
  std::lock_guard<std::mutex> lock(c.mu);
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> runs(static_cast<size_t>(repeats));
  const size_t kernel_records = c.kernels.size(), external_records = c.external.size();
  for (const Collected::Interval& k : c.kernels) {
    auto it = c.external.find(k.corr);
    if (it == c.external.end() || it->second < first || it->second >= first + static_cast<uint64_t>(repeats)) continue;
    runs[static_cast<size_t>(it->second - first)].emplace_back(k.start, k.end);
  }
  c.kernels.clear();
  c.external.clear();
  std::vector<Span> out;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::vector<std::pair<uint64_t, uint64_t>>& r = runs[i];
    TESSERA_CHECK(!r.empty(), "CUPTI recorded no kernel for timed run " + std::to_string(i) + " (" +
                                  std::to_string(kernel_records) + " kernel records, " +
                                  std::to_string(external_records) + " external correlations)");
    std::sort(r.begin(), r.end());
    Span s;
    s.kernels = static_cast<int>(r.size());
    uint64_t busy = 0, reach = r.front().first, gap = 0;
    for (const auto& [start, end] : r) {
      busy += end - start;
      if (start > reach) gap = std::max(gap, start - reach);
      reach = std::max(reach, end);
    }
    s.busy_us = static_cast<double>(busy) / 1000.0;
    s.span_us = static_cast<double>(reach - r.front().first) / 1000.0;
    s.largest_gap_us = static_cast<double>(gap) / 1000.0;
    out.push_back(s);
  }
  return out;
}

}  // namespace tessera::measure
#endif
