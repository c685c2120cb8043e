// Kernel-only durations from the CUPTI activity API (concurrent-kernel records). Only with CUDA.
//
// Each timed run's launches are tagged with an external correlation id, so the kernels of one
// run (a launch plan of several kernels, or whatever a vendor library launches) are summed
// per run, and anything else on the GPU between runs (an L2 flush memset) is not counted.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace tessera::measure {

class KernelTimer {
 public:
  /// Enables CUPTI activity collection for this process (one timer per process).
  KernelTimer();
  ~KernelTimer();
  KernelTimer(const KernelTimer&) = delete;
  KernelTimer& operator=(const KernelTimer&) = delete;

  /// Runs `between()` then `run()` `repeats` times (both only enqueue work on the current
  /// device's default stream), waits, and returns each run's summed kernel (and memory copy) time [us].
  /// Throws ApiError on a CUDA or CUPTI failure, InternalError if a run recorded no kernel.
  std::vector<double> time(int repeats, const std::function<void()>& run, const std::function<void()>& between);

  /// One timed run's kernels (and copies) on the GPU's clock.
  struct Span {
    double busy_us = 0;  ///< their summed durations, as time() returns
    double span_us = 0;  ///< from the first one's start to the last one's end
    int kernels = 0;
    double largest_gap_us = 0;  ///< the longest idle stretch between two of them
  };
  /// As time(), with each run's span: what a whole CUDA graph replay spends between its kernels.
  std::vector<Span> spans(int repeats, const std::function<void()>& run, const std::function<void()>& between);
};

}  // namespace tessera::measure
