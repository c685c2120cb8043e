// Measurement spread over the ranks of an MPI job (`mpirun -n N tessera tune ...`), whatever
// carries the messages (measure/mpi.h: MPI; the tests: in-process queues).
//
// Rank 0 runs the search, the task scheduler and the one database; its Runner is a
// ClusterRunner. Each batch's candidates go out in chunks to whichever rank has room (a chunk is
// as many candidates as the rank measures at once, its GPUs; each rank holds up to
// `prefetch` chunks, so that it never waits for the next one), rank 0's own runner included,
// on a thread of its own; results stream back as they come, and run() (or wait()) returns them
// in candidate order: the same content as one process. Batches may overlap: submit() queues a
// batch behind those in flight and returns at once, so that the ranks that finish early in a
// batch's last round start on the next one instead of idling until the search has seen the
// whole batch; wait() returns one batch's measurements. Every other rank runs serve(): it says
// hello (the target it measures on and how many candidates at once, or why it measures
// nothing), then measures what it is sent with its own runner, on a thread, so that it keeps
// answering and beating while a measurement runs.
//
// Faults. Nothing here blocks on another rank: sends are queued and receives polled. Ranks
// beat every `beat_s`. A rank silent for `rank_timeout_s`, or whose measurement in flight
// outlives what its runner allows one candidate (RankHello::deadline_s, from its measurement
// timeouts) plus `rank_timeout_s`, is lost: its candidates in flight go back to the front of
// the queue for the other ranks (whichever batch each belongs to), and whatever it sends later
// is ignored. A rank that says hello with another target than the job's is refused. wait()
// fails (UserError) only when no rank is left to measure. Serving ranks stop when rank 0 says
// so, or when rank 0 has been silent for 3 x `rank_timeout_s`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/hardware.h"
#include "core/json.h"
#include "measure/runner.h"

namespace tessera::measure {

/// Carries messages (JSON text) between the ranks of a job. Used by one thread at a time.
class Transport {
 public:
  virtual ~Transport() = default;
  /// This process's rank; rank 0 leads.
  virtual int rank() const = 0;
  /// Ranks in the job.
  virtual int size() const = 0;
  /// Queues `text` for rank `to` and returns at once; false if it is known not to arrive.
  virtual bool send(int to, const std::string& text) = 0;
  /// A message that has arrived (sender's rank, text), or nullopt; never blocks.
  virtual std::optional<std::pair<int, std::string>> receive() = 0;
  /// Rank `rank` is gone: drops what is still queued for it.
  virtual void abandon(int rank) { (void)rank; }
  /// Waits until what was queued (for ranks not abandoned) has left, or `timeout_s` passed.
  virtual void flush(double timeout_s) { (void)timeout_s; }
};

/// Ranks in the job of the launcher that started this process (mpirun's OMPI_COMM_WORLD_SIZE,
/// PMI's PMI_SIZE, Slurm's PMIX-launched SLURM_NTASKS with PMIX_RANK); 1 without a launcher.
int launched_ranks();
/// This process's rank in that job (0 without a launcher).
int launched_rank();

/// What a serving rank says when it starts.
struct RankHello {
  bool serves = false;           ///< it measures candidates (else `why` says why not)
  std::string why;               ///< why it does not (no GPU, bad input, ...)
  std::optional<Target> target;  ///< the GPU (or the replay's records) it measures on
  int capacity = 1;              ///< candidates it measures at once (its GPUs)
  double deadline_s = 0;         ///< the longest one candidate may take there, build included [s]
  std::string version;           ///< its tessera version, filled in by serve() (a job's ranks run one)
  std::string host;              ///< its host name
  int pid = 0;                   ///< its process id

  Json to_json() const;
  static RankHello from_json(const Json& j);
};

/// Timing of the cluster's protocol.
struct ClusterOptions {
  double beat_s = 0.5;           ///< how often a rank says it is alive [s]
  double rank_timeout_s = 10;    ///< silence after which a rank is lost (serving ranks: 3x for rank 0) [s]
  double hello_wait_s = 60;      ///< how long lead() waits for every rank's hello before it starts [s]
  double hello_timeout_s = 300;  ///< how long rank 0 waits for a rank's hello when no rank measures [s]
  double poll_s = 0.0002;        ///< wait between polls while candidates are in flight [s]
  int prefetch = 4;              ///< chunks a rank holds at most (one measured, the next ones waiting)
};

/// What the ranks did, for the summary line.
struct ClusterStats {
  int ranks = 0;              ///< ranks in the job
  int serving = 0;            ///< ranks that measured for the job (rank 0 included)
  int lost = 0;               ///< ranks lost during the job
  int resent = 0;             ///< candidates handed to another rank after their rank was lost
  std::vector<int> measured;  ///< candidates measured, by rank
};

/// Rank 0's runner: the candidates of each batch go to every rank that measures the job's target.
class ClusterRunner : public Runner {
 public:
  /// Starts listening and beating at once (before the job is planned, so that the other ranks
  /// know rank 0 is alive); `log` gets one line per event (a rank serving, refused, lost), from
  /// the cluster's thread.
  ClusterRunner(Transport& transport, ClusterOptions options, std::function<void(const std::string&)> log);
  /// finish()es if that was not done.
  ~ClusterRunner() override;
  ClusterRunner(const ClusterRunner&) = delete;
  ClusterRunner& operator=(const ClusterRunner&) = delete;

  /// Starts serving a job for `target`: ranks that said or say hello with another target are
  /// refused. `local` (null: none) is this process's own runner, which measures `local_capacity`
  /// candidates at once on a thread of the cluster's; it must outlive the ClusterRunner. Waits
  /// until every rank has said hello, `hello_wait_s` at most (a late rank joins when it does).
  void lead(const Target& target, Runner* local, int local_capacity);

  /// One measurement per candidate, in order; a UserError when no rank is left to measure.
  /// wait(submit(candidates)).
  std::vector<Measurement> run(std::span<const Candidate> candidates) override;
  /// Queues the batch behind the batches in flight; their candidates go to the ranks first. What
  /// settle() answers (rank 0's runner's) is final at once.
  Ticket submit(std::span<const Candidate> candidates) override;
  /// The batch's measurements, in candidate order, once all are final (on_result reports them
  /// as they come, from this call; another batch's wait for them); a UserError when no rank is
  /// left to measure it. Each ticket is waited for once, by the thread that submitted it.
  std::vector<Measurement> wait(Ticket ticket) override;
  /// True: batches submitted one after another are measured together.
  bool asynchronous() const override { return true; }

  /// Called on the cluster's thread with each measurement another rank made.
  std::function<void(const Measurement&)> on_remote_result;

  /// Tells every other rank to stop (`why` is for their logs). Returns whether every rank is
  /// still there, i.e. whether MPI_Finalize, which waits for all of them, may be called.
  bool finish(const std::string& why);

  ClusterStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// How serve() ended.
struct ServeOutcome {
  int exit_code = 0;       ///< 0: rank 0 said stop; 1: rank 0 went silent
  bool finalize = true;    ///< rank 0 said every rank is still there (MPI_Finalize is safe)
  bool measuring = false;  ///< a measurement was still running (rank 0 gave up on this rank): the
                           ///< runner is still in use, on a thread of its own, and must not be
                           ///< destroyed (the process should end without unwinding)
};

/// A serving rank's part of the job: says `hello` to rank 0, then measures what rank 0 sends
/// with `runner` (null when hello.serves is false: it then only waits to be told to stop).
/// `log` gets a line when something goes wrong.
ServeOutcome serve(Transport& transport, const RankHello& hello, Runner* runner,
                   const ClusterOptions& options, const std::function<void(const std::string&)>& log);

/// A candidate as it travels between ranks (workload, schedule, predicted_us).
Json candidate_to_json(const Candidate& c);
/// Inverse of candidate_to_json; a UserError on a malformed one.
Candidate candidate_from_json(const Json& j);

}  // namespace tessera::measure
