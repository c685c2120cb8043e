// Running a planned graph on the GPU (`tessera graph run`): every step's kernel compiled with
// NVRTC, the tensors placed as the plan says, the run's steps captured into one CUDA graph
// and replayed for the end-to-end latency (median and spread; with L2 warm and with L2
// flushed before each replay), each step timed alone for the per-operator breakdown, and the
// graph's outputs downloaded for the check against the host reference.
//
// Call it in a process of its own (measure::run_isolated): a faulting kernel takes the
// process down with it.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/schedule.h"
#include "graph/exec_plan.h"
#include "kernels/kernel_family.h"

namespace tessera::graph {

struct GpuRunOptions {
  int device = 0;
  int iters = 100;        ///< timed replays of the whole graph (each of warm and flushed L2)
  int step_iters = 20;    ///< launches per step for the per-step times
  std::string cache_dir;  ///< NVRTC cache ("" none)
  /// Run the tuned operators on the vendor library instead (cuBLASLt for matmuls, cuDNN for
  /// convolutions and softmax, each with its fastest algorithm here and the epilogue fused
  /// where the library can); Tessera's kernel only where it cannot.
  bool vendor = false;
};

/// One step's time alone (L2 warm: each step right after itself).
struct StepTime {
  size_t step = 0;
  double us = 0;
};

struct GpuRunResult {
  std::string device;                                ///< the GPU's name
  double median_us = 0, min_us = 0, p90_us = 0;      ///< replays with L2 warm
  double flushed_median_us = 0, flushed_p90_us = 0;  ///< replays after an L2 flush
  /// Replays launched back to back (the host ahead of the GPU), L2 warm: the median replay's
  /// time on the GPU from its first kernel's start to its last one's end (CUPTI), what its
  /// kernels were busy in that time, and its longest idle stretch. The median above also holds
  /// the host's launch of the graph, as a caller that waits for each run sees it.
  double back_to_back_us = 0, busy_us = 0, largest_gap_us = 0;
  int kernels_per_replay = 0;
  std::vector<StepTime> steps;                       ///< run steps only, in plan order
  std::vector<Tensor> outputs;                       ///< the graph's outputs, as f32 (floats) or int64
  double compile_s = 0;
  int compiled = 0;                   ///< steps NVRTC compiled (the others came from its cache)
  std::vector<std::string> runner;  ///< per step: "tessera", or the vendor routine that ran it
};

/// Runs `plan` of `g` on GPU options.device: kernel steps with schedules[i] (for steps[i]; set
/// for every kernel step), `inputs` in the graph's input order. Throws UserError (a kernel that
/// does not compile or launch, no GPU) or ApiError.
GpuRunResult run_plan_on_gpu(const Graph& g, const ExecPlan& plan,
                             const std::vector<std::optional<Schedule>>& schedules,
                             const kernels::FamilyRegistry& families, std::span<const Tensor> inputs,
                             const GpuRunOptions& options);

}  // namespace tessera::graph
