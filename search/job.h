// A tuning job planned from its options: the target it tunes for, where it measures (the GPU
// present, measurements recorded on a GPU, or nowhere: model only), its workloads, and the
// line that tells the user which of these it is. `tessera tune` parses its flags into a
// JobRequest, calls plan_job, runs a Tuner over the job and prints; the planning is here.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/hardware.h"
#include "kernels/kernel_family.h"
#include "measure/gpu_runner.h"
#include "measure/replay.h"
#include "measure/runner.h"
#include "search/workload_set.h"

namespace tessera::search {

/// Where a job measures: on the GPU present if it is the target (auto), on it or not at all
/// (gpu), or nowhere (none: the model's ranking only).
enum class MeasureMode { kAuto, kGpu, kNone };

/// What a job is asked to do (tune's flags).
struct JobRequest {
  std::vector<WorkloadEntry> workloads;     ///< --workloads FILE, --workload SPEC
  std::optional<std::string> target;        ///< --target: a spec name or .json
  MeasureMode measure = MeasureMode::kAuto; ///< --measure
  std::optional<std::string> replay;        ///< --replay: a jsonl export measured on a GPU
  double replay_pace = 0;                   ///< --replay-pace: each answer waits this x its recorded
                                            ///< kernel time x repeats (0: at once)
  int min_time_ms = 50;                     ///< --min-time-ms: each timed series' minimum
  /// More workloads once the target is known (a model's operators: the caller's, since graph/
  /// is above search/); empty for none.
  std::function<std::vector<WorkloadEntry>(const HardwareSpec& spec, const Target& target)> more_workloads;
};

/// --measure gpu with no usable GPU (`tessera tune` exits 3 on it).
class NoGpuError : public UserError {
 public:
  using UserError::UserError;
};

/// A planned job. Not movable: its runner keeps a reference to its families.
struct Job {
  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  kernels::FamilyRegistry families;  ///< the built-in kernel families
  HardwareSpec spec;                 ///< the target's spec
  Target target;                     ///< the fingerprint its records carry
  bool gpu = false;                  ///< measured on the GPU present
  std::unique_ptr<measure::ReplayRunner> replay;  ///< answers from recorded measurements
  std::unique_ptr<measure::GpuRunner> runner;     ///< the GPU's workers
  int devices = 0;                                ///< GPUs the runner measures on at once
  double deadline_s = 0;                          ///< the longest one candidate may take to measure,
                                                  ///< build included, within the runner's timeouts [s]
  std::vector<WorkloadEntry> workloads;           ///< the request's, then more_workloads'
  /// Why a model-only job measures nothing ("no GPU found (...)", "--measure none", ...); empty
  /// when it measures.
  std::string unmeasured_why;
  /// For the user before the job runs: "REPLAY: ..." or "MODEL ONLY: ..."; empty when the job
  /// measures on the GPU.
  std::string notice;

  bool measured() const { return gpu || replay != nullptr; }
  /// The runner the Tuner measures with (null: model only).
  measure::Runner* measurer() const;
};

/// Plans the job `request` asks for. A request that contradicts itself (a replay with a target,
/// a target that is not the GPU --measure gpu is to measure on), an unknown target or an
/// unreadable replay file is a UserError; --measure gpu without a usable GPU is a NoGpuError.
std::unique_ptr<Job> plan_job(const JobRequest& request);

}  // namespace tessera::search
