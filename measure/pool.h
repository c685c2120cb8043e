// WorkerPool: measurement in isolated worker processes (`tessera worker`, one per GPU).
//
// The parent spawns each worker with pipes on its stdin/stdout and speaks measure/protocol.h.
// A worker that faults, is killed, or stops answering (a watchdog per phase: start-up,
// reference, kernel) costs only the candidate it was running, which is recorded as
// `crashed` or `timeout`; the worker is restarted and the job goes on. Candidates are
// handed to whichever worker is free; results come back in the order of the jobs, with the
// same content whatever the number of workers.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/hardware.h"
#include "core/json.h"
#include "core/measurement.h"
#include "measure/job.h"

namespace tessera::measure {

struct PoolOptions {
  std::vector<std::vector<std::string>> workers;  ///< argv of each worker (e.g. one per GPU)
  double start_timeout_s = 120;      ///< from spawn to the worker's hello
  double kernel_timeout_s = 30;      ///< a checked run, a timed series or a vendor baseline
  double reference_timeout_s = 900;  ///< computing a workload's reference output
  int max_start_failures = 3;        ///< consecutive failed starts before a worker slot is given up
  MeasureOptions measure;
};

/// What a worker said when it started.
struct WorkerInfo {
  int slot = 0;
  int pid = 0;
  std::optional<Target> target;  ///< the GPU it measures on
  std::string description;       ///< e.g. "GPU 0: NVIDIA H100 ..."
};

/// Counters over the pool's life.
struct PoolStats {
  int starts = 0;    ///< worker processes spawned
  int crashes = 0;   ///< candidates recorded as crashed
  int timeouts = 0;  ///< candidates recorded as timeout
};

class WorkerPool {
 public:
  explicit WorkerPool(PoolOptions options);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Starts the workers (if not running) and waits for their hellos. Throws UserError if
  /// none can start, naming why (e.g. "no GPU").
  std::vector<WorkerInfo> start();

  /// Measures every job; one Measurement per job, in order. `on_result(i, m)` is called as
  /// each job finishes. Throws UserError if every worker has been given up.
  std::vector<Measurement> run(std::span<const Job> jobs,
                               const std::function<void(size_t, const Measurement&)>& on_result = {});

  const PoolStats& stats() const { return stats_; }
  const PoolOptions& options() const { return options_; }

  /// argv of a worker for GPU `device` run by this executable (`<self> worker --device N`).
  static std::vector<std::string> self_worker_argv(int device);

 private:
  enum class SlotState { kDown, kStarting, kIdle, kBusy, kGivenUp };
  struct Slot;
  /// Records a finished job's measurement (run()'s bookkeeping).
  using Finish = std::function<void(size_t job, Measurement m)>;
  void spawn(Slot& slot);
  void kill_slot(Slot& slot);
  std::string reap(Slot& slot);
  // run()'s steps: restart the slots that are down; the worker in `s` is gone while in state
  // `was` (its job, if it had one, finishes with `status`); a message from a worker; the
  // pending jobs handed to idle workers; workers past their deadlines.
  void restart_down_slots();
  void lose(Slot& s, SlotState was, Status status, const std::string& why, const Finish& finish);
  void handle_message(Slot& s, const Json& header, const Finish& finish);
  void hand_out(std::span<const Job> jobs, std::deque<size_t>& pending, int64_t& next_id);
  void read_messages(double nearest, const Finish& finish);
  void enforce_deadlines(const Finish& finish);
  std::vector<WorkerInfo> infos() const;

  PoolOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  PoolStats stats_;
};

}  // namespace tessera::measure
