#include "measure/pool.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>

#include "core/clock.h"
#include "core/error.h"
#include "measure/protocol.h"

extern char** environ;

namespace tessera::measure {
namespace {

Measurement failure(Status status, std::string error) {
  Measurement m;
  m.status = status;
  m.error = std::move(error);
  return m;
}

}  // namespace

struct WorkerPool::Slot {
  using State = SlotState;
  int index = 0;
  std::vector<std::string> argv;
  State state = State::kDown;
  pid_t pid = -1;
  int to_fd = -1, from_fd = -1;
  protocol::FrameReader reader;
  double deadline = 0;
  std::string phase;
  size_t job = 0;
  int64_t request_id = 0;
  int failed_starts = 0;
  std::string last_error;
  WorkerInfo info;
};

WorkerPool::WorkerPool(PoolOptions options) : options_(std::move(options)) {
  TESSERA_CHECK(!options_.workers.empty(), "a worker pool needs at least one worker");
  // A worker that dies while we write to it must be an EPIPE error, not our death.
  ::signal(SIGPIPE, SIG_IGN);
  for (size_t i = 0; i < options_.workers.size(); ++i) {
    auto slot = std::make_unique<Slot>();
    slot->index = static_cast<int>(i);
    slot->argv = options_.workers[i];
    slot->info.slot = static_cast<int>(i);
    slots_.push_back(std::move(slot));
  }
}

WorkerPool::~WorkerPool() {
  for (auto& s : slots_) {
    if (s->pid <= 0) continue;
    try {
      if (s->state == Slot::State::kIdle) protocol::write_frame(s->to_fd, protocol::message("shutdown"));
    } catch (const protocol::ProtocolError&) {
    }
    ::close(s->to_fd);
    s->to_fd = -1;
    // Give it a moment to exit on its own, then make sure.
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(s->pid, nullptr, WNOHANG) == s->pid) {
        s->pid = -1;
        break;
      }
      ::usleep(20000);
    }
    if (s->pid > 0) kill_slot(*s);
    if (s->from_fd >= 0) ::close(s->from_fd);
  }
}

std::vector<std::string> WorkerPool::self_worker_argv(int device) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw UserError("cannot find this executable to start a worker: " + ec.message());
  return {self.string(), "worker", "--device", std::to_string(device)};
}

void WorkerPool::spawn(Slot& s) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0) throw ApiError("POSIX", "pipe2", std::strerror(errno), __FILE__, __LINE__);
  if (::pipe2(from_child, O_CLOEXEC) != 0) {
    ::close(to_child[0]);
    ::close(to_child[1]);
    throw ApiError("POSIX", "pipe2", std::strerror(errno), __FILE__, __LINE__);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
  posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
  std::vector<char*> argv;
  for (std::string& a : s.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(to_child[0]);
  ::close(from_child[1]);
  if (rc != 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    s.state = Slot::State::kDown;
    s.last_error = "cannot start worker " + s.argv[0] + ": " + std::strerror(rc);
    ++s.failed_starts;
    return;
  }
  ++stats_.starts;
  ::fcntl(from_child[0], F_SETFL, ::fcntl(from_child[0], F_GETFL) | O_NONBLOCK);
  s.pid = pid;
  s.to_fd = to_child[1];
  s.from_fd = from_child[0];
  s.reader = protocol::FrameReader();
  s.state = Slot::State::kStarting;
  s.deadline = monotonic_s() + options_.start_timeout_s;
  s.phase = "start";
}

void WorkerPool::kill_slot(Slot& s) {
  if (s.pid > 0) {
    ::kill(s.pid, SIGKILL);
    ::waitpid(s.pid, nullptr, 0);
    s.pid = -1;
  }
  if (s.to_fd >= 0) ::close(s.to_fd);
  if (s.from_fd >= 0) ::close(s.from_fd);
  s.to_fd = s.from_fd = -1;
  s.state = Slot::State::kDown;
}

// Waits for a worker whose pipe closed and says how it ended.
std::string WorkerPool::reap(Slot& s) {
  int status = 0;
  std::string how = "worker closed its pipe";
  pid_t r = -1;
  // The pipe closes as the process exits; give the exit a moment to become visible.
  for (int i = 0; i < 100 && (r = ::waitpid(s.pid, &status, WNOHANG)) == 0; ++i) ::usleep(10000);
  if (r == s.pid) {
    if (WIFSIGNALED(status))
      how = "worker killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
    else if (WIFEXITED(status))
      how = "worker exited with code " + std::to_string(WEXITSTATUS(status));
    s.pid = -1;
  }
  kill_slot(s);
  return how;
}

std::vector<WorkerInfo> WorkerPool::infos() const {
  std::vector<WorkerInfo> out;
  for (const auto& s : slots_)
    if (s->state == Slot::State::kIdle || s->state == Slot::State::kBusy) out.push_back(s->info);
  return out;
}

std::vector<WorkerInfo> WorkerPool::start() {
  run({});
  return infos();
}

void WorkerPool::lose(Slot& s, SlotState was, Status status, const std::string& why, const Finish& finish) {
  if (was == Slot::State::kBusy) {
    finish(s.job, failure(status, why + " (while measuring: " + s.phase + ")"));
    s.failed_starts = 0;
  } else if (was == Slot::State::kStarting) {
    ++s.failed_starts;
    s.last_error = why;
  }
  if (s.pid > 0 || s.to_fd >= 0) kill_slot(s);
  s.state = Slot::State::kDown;
}

void WorkerPool::handle_message(Slot& s, const Json& header, const Finish& finish) {
  const std::string type = header["type"].get<std::string>();
  if (type == "hello") {
    if (s.state != Slot::State::kStarting) throw protocol::ProtocolError("unexpected hello");
    if (header.contains("error")) {
      // The worker runs but cannot measure (no GPU, no driver): restarting will not help.
      s.last_error = header["error"].get<std::string>();
      kill_slot(s);
      s.state = Slot::State::kGivenUp;
      return;
    }
    s.info.pid = s.pid;
    s.info.description = header.value("device", "");
    if (header.contains("target")) s.info.target = Target::from_json(header["target"], "worker hello");
    s.state = Slot::State::kIdle;
    s.failed_starts = 0;
  } else if (type == "progress") {
    if (s.state != Slot::State::kBusy || header.value("id", int64_t{-1}) != s.request_id)
      throw protocol::ProtocolError("progress for no request");
    s.phase = header.value("phase", "");
    s.deadline = monotonic_s() + (s.phase == "reference" ? options_.reference_timeout_s : options_.kernel_timeout_s);
  } else if (type == "result") {
    if (s.state != Slot::State::kBusy || header.value("id", int64_t{-1}) != s.request_id)
      throw protocol::ProtocolError("result for no request");
    Measurement m;
    try {
      m = Measurement::from_json(header.at("measurement"), "worker result");
    } catch (const std::exception& e) {
      throw protocol::ProtocolError(std::string("malformed result: ") + e.what());
    }
    s.state = Slot::State::kIdle;
    finish(s.job, std::move(m));
    // A worker that cannot go on (a sticky CUDA error poisons its context) says so with
    // its last result: it gets no more work and is restarted.
    if (header.value("exiting", false)) {
      reap(s);
      s.state = Slot::State::kDown;
    }
  } else {
    throw protocol::ProtocolError("unknown message type '" + type + "'");
  }
}

void WorkerPool::restart_down_slots() {
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (s.state == Slot::State::kDown) {
      if (s.failed_starts >= options_.max_start_failures) {
        s.state = Slot::State::kGivenUp;
        continue;
      }
      spawn(s);
    }
  }
}

void WorkerPool::hand_out(std::span<const Job> jobs, std::deque<size_t>& pending, int64_t& next_id) {
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (s.state != Slot::State::kIdle || pending.empty()) continue;
    size_t job = pending.front();
    pending.pop_front();
    s.request_id = next_id++;
    const Job& j = jobs[job];
    protocol::Frame f;
    f.header = job_header(j, options_.measure, s.request_id);
    f.blob.assign(j.cubin.begin(), j.cubin.end());
    try {
      protocol::write_frame(s.to_fd, f);
    } catch (const protocol::ProtocolError&) {
      pending.push_front(job);  // never reached the worker: try it elsewhere
      reap(s);
      ++s.failed_starts;
      s.last_error = "worker died before taking a request";
      continue;
    }
    s.state = Slot::State::kBusy;
    s.job = job;
    s.phase = "kernel";
    s.deadline = monotonic_s() + options_.kernel_timeout_s;
  }
}

// Waits for messages or the nearest deadline (`nearest` at the latest) and handles them.
void WorkerPool::read_messages(double nearest, const Finish& finish) {
  std::vector<pollfd> fds;
  std::vector<Slot*> polled;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (s.state != Slot::State::kStarting && s.state != Slot::State::kIdle && s.state != Slot::State::kBusy) continue;
    fds.push_back({s.from_fd, POLLIN, 0});
    polled.push_back(&s);
    if (s.state != Slot::State::kIdle) nearest = std::min(nearest, s.deadline);
  }
  int wait_ms = std::max(0, static_cast<int>((nearest - monotonic_s()) * 1000) + 1);
  int n = ::poll(fds.data(), fds.size(), wait_ms);
  if (n < 0 && errno != EINTR) throw ApiError("POSIX", "poll", std::strerror(errno), __FILE__, __LINE__);
  for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
    if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    Slot& s = *polled[i];
    uint8_t chunk[1 << 16];
    ssize_t got = ::read(s.from_fd, chunk, sizeof chunk);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) {
      // The worker is gone. An idle one may have exited on purpose (after a sticky CUDA
      // error it cannot measure again); either way the slot restarts.
      Slot::State was = s.state;
      std::string how = reap(s);
      lose(s, was, Status::kCrashed, how, finish);
      continue;
    }
    s.reader.feed(chunk, static_cast<size_t>(got));
    try {
      while (s.state == Slot::State::kStarting || s.state == Slot::State::kIdle || s.state == Slot::State::kBusy) {
        std::optional<protocol::Frame> f = s.reader.next();
        if (!f) break;
        handle_message(s, f->header, finish);
      }
    } catch (const std::runtime_error& e) {  // a malformed frame (ProtocolError) or message (UserError)
      lose(s, s.state, Status::kCrashed, std::string("worker broke the protocol: ") + e.what(), finish);
    }
  }
}

void WorkerPool::enforce_deadlines(const Finish& finish) {
  double now = monotonic_s();
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if ((s.state == Slot::State::kBusy || s.state == Slot::State::kStarting) && now > s.deadline) {
      double limit = s.state == Slot::State::kStarting ? options_.start_timeout_s
                     : s.phase == "reference"          ? options_.reference_timeout_s
                                                       : options_.kernel_timeout_s;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", limit);
      lose(s, s.state, Status::kTimeout, std::string("no answer within ") + buf + " s; worker killed", finish);
    }
  }
}

std::vector<Measurement> WorkerPool::run(std::span<const Job> jobs,
                                         const std::function<void(size_t, const Measurement&)>& on_result) {
  std::vector<std::optional<Measurement>> results(jobs.size());
  std::deque<size_t> pending;
  for (size_t i = 0; i < jobs.size(); ++i) pending.push_back(i);
  size_t done = 0;
  int64_t next_id = 1;
  const Finish finish = [&](size_t job, Measurement m) {
    if (m.status == Status::kCrashed) ++stats_.crashes;
    if (m.status == Status::kTimeout) ++stats_.timeouts;
    results[job] = std::move(m);
    ++done;
    if (on_result) on_result(job, *results[job]);
  };
  while (true) {
    if (!jobs.empty() && done == jobs.size()) break;
    restart_down_slots();
    bool any_alive = false, any_starting = false;
    for (auto& s : slots_) {
      any_alive |= s->state != Slot::State::kGivenUp;
      any_starting |= s->state == Slot::State::kStarting || s->state == Slot::State::kDown;
    }
    if (!any_alive) {
      std::string why;
      for (auto& s : slots_) why += (why.empty() ? "" : "; ") + s->last_error;
      throw UserError("no measurement worker could run: " + why);
    }
    if (jobs.empty() && !any_starting) break;  // start(): every worker has said hello (or was given up)
    hand_out(jobs, pending, next_id);
    read_messages(monotonic_s() + 1.0, finish);
    enforce_deadlines(finish);
  }
  std::vector<Measurement> out;
  out.reserve(results.size());
  for (auto& r : results) out.push_back(std::move(*r));
  return out;
}

}  // namespace tessera::measure
