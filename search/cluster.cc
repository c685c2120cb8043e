#include "search/cluster.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "core/clock.h"
#include "core/error.h"

namespace tessera::search {
namespace {

// One line on stderr, written at once (the cluster's thread logs beside tune's progress lines).
void log_line(const std::string& line) {
  std::string text = "tessera: " + line + "\n";
  std::cerr.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::cerr.flush();
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

}  // namespace

std::unique_ptr<Cluster> Cluster::join(const measure::ClusterOptions& options) {
  if (measure::launched_ranks() <= 1) return nullptr;
  return std::unique_ptr<Cluster>(new Cluster(measure::MpiTransport::join(), options));
}

Cluster::Cluster(std::unique_ptr<measure::MpiTransport> transport, const measure::ClusterOptions& options)
    : transport_(std::move(transport)), options_(options) {
  if (!leader()) return;
  runner_ = std::make_unique<measure::ClusterRunner>(*transport_, options_, log_line);
}

Cluster::~Cluster() {
  try {
    if (runner_) finish("rank 0 stopped");
    transport_->leave(finalize_);
  } catch (const std::exception& e) {
    log_line(std::string("MPI: leaving the job: ") + e.what());
  }
}

int Cluster::serve(const std::function<JobRequest()>& request) {
  // Rank 0 decides when the job stops (after the batches in flight); mpirun's SIGKILL still ends it.
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  measure::RankHello hello;
  hello.host = host_name();
  hello.pid = static_cast<int>(::getpid());
  std::unique_ptr<Job> job;
  try {
    JobRequest r = request();
    r.more_workloads = nullptr;  // a model's workloads: rank 0's business
    job = plan_job(r);
    if (job->measured()) {
      hello.serves = true;
      hello.target = job->target;
      hello.capacity = std::max(1, job->devices);
      hello.deadline_s = job->deadline_s;
    } else {
      hello.why = job->unmeasured_why;
    }
  } catch (const std::exception& e) {
    hello.why = e.what();
  }
  std::string me = "rank " + std::to_string(rank()) + " (" + hello.host + "): ";
  measure::ServeOutcome outcome =
      measure::serve(*transport_, hello, job ? job->measurer() : nullptr, options_,
                     [&](const std::string& line) { log_line(me + line); });
  finalize_ = outcome.finalize;
  if (outcome.measuring) {
    // The runner is busy on another thread and cannot be destroyed: end here. Its GPU workers see
    // their pipes close and exit.
    std::fflush(nullptr);
    std::cerr.flush();
    ::_exit(outcome.exit_code);
  }
  return outcome.exit_code;
}

measure::Runner* Cluster::lead(Job& job) {
  TESSERA_CHECK(runner_, "Cluster::lead on a serving rank");
  started_s_ = monotonic_s();
  if (!job.measured()) {
    log_line("MPI: the job measures nothing (model only): the other " + std::to_string(size() - 1) +
             " ranks are not used");
    finish("the job measures nothing");
    return nullptr;
  }
  // Open MPI's mpirun ends the whole job when one rank dies, unless told to recover.
  if (std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("OMPI_MCA_orte_enable_recovery"))
    log_line(
        "MPI: mpirun runs without --enable-recovery: a rank that dies ends the whole job (the batches "
        "committed stay in the database)");
  runner_->lead(job.target, job.measurer(), std::max(1, job.devices));
  if (job.replay)
    runner_->on_remote_result = [replay = job.replay.get()](const Measurement& m) { replay->tally(m); };
  led_ = true;
  return runner_.get();
}

void Cluster::finish(const std::string& why) {
  if (!runner_ || finished_) return;
  finished_ = true;
  finalize_ = runner_->finish(why);
  if (!led_) return;
  measure::ClusterStats stats = runner_->stats();
  int total = 0;
  std::string by_rank;
  for (size_t r = 0; r < stats.measured.size(); ++r) {
    total += stats.measured[r];
    by_rank += (r ? ", " : "") + std::to_string(stats.measured[r]);
  }
  double seconds = monotonic_s() - started_s_;
  char rate[64];
  std::snprintf(rate, sizeof rate, "%.1f s (%.1f per s)", seconds, seconds > 0 ? total / seconds : 0.0);
  log_line("MPI: " + std::to_string(stats.serving) + " of " + std::to_string(stats.ranks) +
           " ranks measured " + std::to_string(total) + " candidates in " + rate + "; by rank: " + by_rank +
           (stats.lost ? "; " + std::to_string(stats.lost) + " lost, " + std::to_string(stats.resent) +
                             " candidates measured again elsewhere"
                       : std::string()));
}

}  // namespace tessera::search
