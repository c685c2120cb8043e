// A tuning job spread over the ranks of an MPI job: `mpirun -n N tessera tune ...` starts N
// copies of tune with the same flags; this is what each of them does besides what tune does
// alone. Rank 0 plans the job, runs the search, the task scheduler and the one database
// exactly as one process would, and measures through a measure::ClusterRunner, which hands the
// candidates to every rank that measures the job's target, rank 0's own GPUs (or replay)
// included. Every other rank plans only where it measures (its node's GPUs, or the replay's
// records), never opens the database, and serves rank 0 until it is told to stop
// (measure/cluster.h has the protocol and what happens on faults).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "measure/cluster.h"
#include "measure/mpi.h"
#include "search/job.h"

namespace tessera::search {

class Cluster {
 public:
  /// Joins the MPI job when the launcher started more than one rank; null when this process
  /// runs alone (it then does exactly what it does without MPI). In a build without MPI, more
  /// than one rank is a UserError that says so.
  static std::unique_ptr<Cluster> join(const measure::ClusterOptions& options);
  /// Rank 0: stops the other ranks if finish() was not called (e.g. a UserError); every rank:
  /// leaves MPI (MPI_Finalize only while every rank is still there).
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  int rank() const { return transport_->rank(); }
  int size() const { return transport_->size(); }
  bool leader() const { return rank() == 0; }

  /// A serving rank's whole part: plans where it measures from `request()` (without workloads
  /// that need the database; a UserError, or no GPU, is told to rank 0, which prints it), then
  /// measures what rank 0 sends until it is told to stop. SIGINT and SIGTERM do not stop it
  /// (mpirun passes Ctrl-C on as SIGTERM: rank 0 decides). Returns the exit code.
  int serve(const std::function<JobRequest()>& request);

  /// Rank 0: the runner to tune `job` with, which measures on every rank serving job's target,
  /// job's own runner included; null when the job measures nothing (model only).
  measure::Runner* lead(Job& job);

  /// Rank 0, when the job is over: stops the other ranks and prints what each did.
  void finish(const std::string& why);

 private:
  Cluster(std::unique_ptr<measure::MpiTransport> transport, const measure::ClusterOptions& options);

  std::unique_ptr<measure::MpiTransport> transport_;
  measure::ClusterOptions options_;
  std::unique_ptr<measure::ClusterRunner> runner_;  ///< rank 0's
  bool finalize_ = true;                            ///< every rank is still there: MPI_Finalize is safe
  bool led_ = false, finished_ = false;
  double started_s_ = 0;
};

}  // namespace tessera::search
