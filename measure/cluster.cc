// ClusterRunner (rank 0) and serve() (every other rank); the protocol is in cluster.h.
//
// Messages are JSON objects with a type "t": hello, beat, result and error go to rank 0; work,
// beat and stop come from it. A candidate is known by a job-wide id (ids of a batch are
// consecutive, and a later batch's are higher), so a result that arrives after its rank was
// lost, or after its batch, is told apart from a current one and ignored. Every submitted batch
// waits in one queue of ids, oldest first: a rank is handed the next candidate whichever batch
// it belongs to, and each batch is put back together, in candidate order, for its wait().
#include "measure/cluster.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/error.h"
#include "core/version.h"

namespace tessera::measure {
namespace {

std::optional<int> env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1000000) return std::nullopt;
  return static_cast<int>(n);
}

std::string fixed1(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", x);
  return buf;
}

std::string plural(size_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

Json message(const char* type) {
  return Json{{"t", type}};
}

// How often a rank that has had nothing to do for kActiveS looks for messages [s]; busier, it
// polls every ClusterOptions::poll_s, so that work starts and results leave at once.
constexpr double kIdlePollS = 0.002;
constexpr double kActiveS = 0.25;

}  // namespace

int launched_ranks() {
  if (auto n = env_int("OMPI_COMM_WORLD_SIZE")) return *n;
  if (auto n = env_int("PMI_SIZE")) return *n;
  if (std::getenv("PMIX_RANK"))
    if (auto n = env_int("SLURM_NTASKS")) return *n;
  return 1;
}

int launched_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (auto r = env_int(name)) return *r;
  return 0;
}

Json RankHello::to_json() const {
  Json j{{"serves", serves},
         {"why", why},
         {"capacity", capacity},
         {"deadline_s", deadline_s},
         {"version", version},
         {"host", host},
         {"pid", pid}};
  if (target) j["target"] = target->to_json();
  return j;
}

RankHello RankHello::from_json(const Json& j) {
  RankHello h;
  h.serves = j.at("serves").get<bool>();
  h.why = j.at("why").get<std::string>();
  h.capacity = std::max(1, j.at("capacity").get<int>());
  h.deadline_s = j.at("deadline_s").get<double>();
  h.version = j.at("version").get<std::string>();
  h.host = j.at("host").get<std::string>();
  h.pid = j.at("pid").get<int>();
  if (j.contains("target")) h.target = Target::from_json(j.at("target"), "a rank's hello");
  return h;
}

Json candidate_to_json(const Candidate& c) {
  Json j{{"workload", c.workload.to_json()}, {"schedule", c.schedule.to_json()}};
  // JSON has no infinity (a schedule the model rules out), so those travel as text.
  if (c.predicted_us)
    j["predicted_us"] =
        std::isfinite(*c.predicted_us) ? Json(*c.predicted_us) : Json(std::to_string(*c.predicted_us));
  return j;
}

Candidate candidate_from_json(const Json& j) {
  if (!j.is_object() || !j.contains("workload") || !j.contains("schedule"))
    throw UserError("a candidate needs a workload and a schedule");
  Candidate c;
  c.workload = Workload::from_json(j.at("workload"));
  c.schedule = Schedule::from_json(j.at("schedule"), "a candidate's schedule");
  if (j.contains("predicted_us")) {
    const Json& p = j.at("predicted_us");
    c.predicted_us = p.is_string() ? std::strtod(p.get<std::string>().c_str(), nullptr) : p.get<double>();
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Rank 0.

namespace {

/// Candidates handed to a rank together (ids, in order).
using Chunk = std::vector<uint64_t>;

/// One rank as rank 0 sees it; slot 0 is rank 0's own runner.
struct Slot {
  enum class Phase { kWaiting, kServing, kIdle, kLost };
  Phase phase = Phase::kWaiting;
  std::string name;                ///< "rank 2 (host, pid 123)"
  std::optional<RankHello> hello;  ///< kept until lead() judges it
  int capacity = 1;
  double deadline_s = 0;
  double last_heard_s = 0;   ///< last message from it
  double progress_s = 0;     ///< last result, or the send that gave it work when it had none
  std::deque<Chunk> chunks;  ///< in flight, oldest first
  int measured = 0;
};

/// A submitted batch, until wait() returns it: candidate i has the job-wide id base_id + i.
struct Batch {
  Runner::Ticket ticket = 0;
  uint64_t base_id = 0;
  std::vector<Candidate> candidates;
  std::vector<Measurement> results;
  std::vector<char> done;
  size_t remaining = 0;
  std::vector<size_t> finished;  ///< measured since wait() last looked, for on_result
};

}  // namespace

struct ClusterRunner::State {
  State(Transport& t, ClusterOptions o, std::function<void(const std::string&)> l)
      : transport(t), options(o), log(std::move(l)) {}

  Transport& transport;
  ClusterOptions options;
  std::function<void(const std::string&)> log;
  std::mutex m;
  std::condition_variable hub_cv, batch_cv, local_cv;
  std::vector<Slot> slots;
  bool led = false, quit = false, finished = false;
  Target target;
  Runner* local = nullptr;
  std::deque<Chunk> local_queue;
  // The batches submitted and not yet waited for, oldest first (a list: wait() may take one from
  // the middle while the others are referred to); their ids ascend.
  std::list<Batch> batches;
  Runner::Ticket next_ticket = 0;
  uint64_t next_id = 0;
  size_t in_flight = 0;          // candidates of every batch not yet measured
  std::deque<uint64_t> pending;  // ids to hand out, oldest batch first
  std::optional<std::string> failure;
  double started_s = 0, last_beat_s = 0;
  size_t next_slot = 0;
  int resent = 0, lost = 0;
  std::function<void(const Measurement&)>* on_remote = nullptr;
  std::thread hub, local_thread;

  void hub_loop();
  void local_loop();
  void handle(int from, const std::string& text, double now);
  void judge(size_t rank);
  void deliver(size_t rank, uint64_t id, const Measurement& result, double now);
  void lose(size_t rank, const std::string& why);
  void check_faults(double now);
  void dispatch(double now);
  void send_chunk(size_t rank, double now);
  void check_capacity(double now);
  void drop(const Batch& b);
  /// The batch candidate `id` belongs to, or null (one waited for, or given up).
  Batch* batch_of(uint64_t id) {
    for (Batch& b : batches)
      if (id >= b.base_id && id < b.base_id + b.candidates.size()) return &b;
    return nullptr;
  }
};

ClusterRunner::ClusterRunner(Transport& transport, ClusterOptions options,
                             std::function<void(const std::string&)> log)
    : state_(std::make_unique<State>(transport, options, std::move(log))) {
  State& s = *state_;
  s.slots.resize(static_cast<size_t>(transport.size()));
  for (size_t r = 0; r < s.slots.size(); ++r) s.slots[r].name = "rank " + std::to_string(r);
  s.started_s = monotonic_s();
  s.on_remote = &on_remote_result;
  s.hub = std::thread([&s] { s.hub_loop(); });
}

ClusterRunner::~ClusterRunner() {
  if (!state_->finished) finish("rank 0 ended");
}

void ClusterRunner::lead(const Target& target, Runner* local, int local_capacity) {
  State& s = *state_;
  std::unique_lock lock(s.m);
  s.target = target;
  s.led = true;
  Slot& own = s.slots[0];
  own.name = "rank 0";
  if (local) {
    s.local = local;
    own.phase = Slot::Phase::kServing;
    own.capacity = std::max(1, local_capacity);
    s.local_thread = std::thread([&s] { s.local_loop(); });
  } else {
    own.phase = Slot::Phase::kIdle;
  }
  for (size_t r = 1; r < s.slots.size(); ++r)
    if (s.slots[r].hello) s.judge(r);
  // The job starts with every rank that has planned where it measures (a GPU scan, a replay's
  // records) in time; a later one joins when it says hello.
  auto all_said_hello = [&] {
    return std::none_of(s.slots.begin(), s.slots.end(),
                        [](const Slot& x) { return x.phase == Slot::Phase::kWaiting; });
  };
  if (!s.batch_cv.wait_for(lock, std::chrono::duration<double>(s.options.hello_wait_s), all_said_hello)) {
    std::string late;
    for (size_t r = 1; r < s.slots.size(); ++r)
      if (s.slots[r].phase == Slot::Phase::kWaiting) late += (late.empty() ? "" : ", ") + std::to_string(r);
    s.log("ranks " + late + " have not said hello after " + fixed1(s.options.hello_wait_s) +
          " s: the job starts without them (each joins when it does)");
  }
}

std::vector<Measurement> ClusterRunner::run(std::span<const Candidate> candidates) {
  return wait(submit(candidates));
}

Runner::Ticket ClusterRunner::submit(std::span<const Candidate> candidates) {
  State& s = *state_;
  std::lock_guard lock(s.m);
  TESSERA_CHECK(s.led && !s.finished, "ClusterRunner::submit before lead() or after finish()");
  Batch& b = s.batches.emplace_back();
  b.ticket = s.next_ticket++;
  b.base_id = s.next_id;
  s.next_id += candidates.size();
  b.candidates.assign(candidates.begin(), candidates.end());
  b.results.assign(candidates.size(), Measurement{});
  b.done.assign(candidates.size(), 0);
  b.remaining = candidates.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    // What needs no measuring (an invalid schedule, a replay without the record) stays here.
    std::optional<Measurement> settled = s.local ? s.local->settle(candidates[i]) : std::nullopt;
    if (!settled) {
      s.pending.push_back(b.base_id + i);
      continue;
    }
    b.results[i] = std::move(*settled);
    b.done[i] = 1;
    b.finished.push_back(i);
    --b.remaining;
  }
  s.in_flight += b.remaining;
  s.hub_cv.notify_all();
  return b.ticket;
}

std::vector<Measurement> ClusterRunner::wait(Ticket ticket) {
  State& s = *state_;
  std::unique_lock lock(s.m);
  auto it =
      std::find_if(s.batches.begin(), s.batches.end(), [&](const Batch& b) { return b.ticket == ticket; });
  TESSERA_CHECK(it != s.batches.end(), "ClusterRunner::wait for a batch not submitted, or waited for");
  Batch& b = *it;
  for (;;) {
    s.batch_cv.wait(lock, [&] { return !b.finished.empty() || b.remaining == 0 || s.failure; });
    std::vector<size_t> finished;
    finished.swap(b.finished);
    if (on_result) {
      // A finished measurement is never written again, and only this thread removes batches: it
      // can be read without the lock.
      lock.unlock();
      for (size_t i : finished) on_result(i, b.results[i]);
      lock.lock();
    }
    if (b.finished.empty() && (b.remaining == 0 || s.failure)) break;
  }
  if (b.remaining > 0) {
    std::string why = *s.failure;
    s.drop(b);
    s.batches.erase(it);
    throw UserError(why);
  }
  std::vector<Measurement> out = std::move(b.results);
  s.batches.erase(it);
  return out;
}

bool ClusterRunner::finish(const std::string& why) {
  State& s = *state_;
  {
    std::lock_guard lock(s.m);
    if (s.finished) return s.lost == 0;
    s.finished = s.quit = true;
  }
  s.hub_cv.notify_all();
  s.local_cv.notify_all();
  s.hub.join();
  if (s.local_thread.joinable()) s.local_thread.join();
  // The cluster's thread has ended: this thread may use the transport now.
  Json stop = message("stop");
  stop["why"] = why;
  stop["finalize"] = s.lost == 0;
  for (size_t r = 1; r < s.slots.size(); ++r)
    if (s.slots[r].phase != Slot::Phase::kLost) s.transport.send(static_cast<int>(r), stop.dump());
  // The stops must leave before the caller leaves MPI.
  s.transport.flush(5);
  return s.lost == 0;
}

ClusterStats ClusterRunner::stats() const {
  State& s = *state_;
  std::lock_guard lock(s.m);
  ClusterStats out;
  out.ranks = static_cast<int>(s.slots.size());
  out.lost = s.lost;
  out.resent = s.resent;
  for (const Slot& slot : s.slots) {
    out.measured.push_back(slot.measured);
    if (slot.phase == Slot::Phase::kServing || (slot.phase == Slot::Phase::kLost && slot.measured > 0))
      ++out.serving;
  }
  return out;
}

void ClusterRunner::State::hub_loop() {
  std::unique_lock lock(m);
  while (!quit) {
    double now = monotonic_s();
    // Bounded, so that a flood of messages cannot starve the checks below.
    for (int i = 0; i < 1000; ++i) {
      auto msg = transport.receive();
      if (!msg) break;
      handle(msg->first, msg->second, now);
    }
    if (led) {
      check_faults(now);
      dispatch(now);
      check_capacity(now);
    }
    if (now - last_beat_s >= options.beat_s) {
      last_beat_s = now;
      std::string beat = message("beat").dump();
      for (size_t r = 1; r < slots.size(); ++r)
        if (slots[r].phase != Slot::Phase::kLost) transport.send(static_cast<int>(r), beat);
    }
    double wait_s = in_flight > 0 ? options.poll_s : std::min(kIdlePollS * 5, options.beat_s);
    hub_cv.wait_for(lock, std::chrono::duration<double>(wait_s));
  }
}

void ClusterRunner::State::handle(int from, const std::string& text, double now) {
  if (from <= 0 || static_cast<size_t>(from) >= slots.size()) return;
  size_t r = static_cast<size_t>(from);
  Slot& slot = slots[r];
  if (slot.phase == Slot::Phase::kLost) return;
  slot.last_heard_s = now;
  try {
    Json j = Json::parse(text);
    std::string type = j.at("t").get<std::string>();
    if (type == "hello") {
      slot.hello = RankHello::from_json(j);
      slot.name = "rank " + std::to_string(r) + " (" + slot.hello->host + ", pid " +
                  std::to_string(slot.hello->pid) + ")";
      if (led) {
        judge(r);
        batch_cv.notify_all();  // lead() may be waiting for it
      }
    } else if (type == "result") {
      deliver(r, j.at("id").get<uint64_t>(), Measurement::from_json(j.at("measurement"), "a rank's result"),
              now);
    } else if (type == "error") {
      lose(r, "its runner failed: " + j.at("why").get<std::string>());
    }
  } catch (const std::exception& e) {
    lose(r, std::string("it sent a message rank 0 cannot read (") + e.what() + ")");
  }
}

// A hello, once the job's target is known: the rank serves, serves nothing, or is refused.
void ClusterRunner::State::judge(size_t r) {
  Slot& slot = slots[r];
  const RankHello& h = *slot.hello;
  if (!h.serves) {
    slot.phase = Slot::Phase::kIdle;
    log(slot.name + " serves nothing: " + h.why);
  } else if (h.version != kVersion) {
    slot.phase = Slot::Phase::kIdle;
    log(slot.name + " is refused: it runs tessera " + h.version + ", rank 0 runs " + kVersion +
        " (every rank runs the same build)");
  } else if (!h.target || h.target->fingerprint() != target.fingerprint()) {
    slot.phase = Slot::Phase::kIdle;
    log(slot.name + " is refused: it measures on " +
        (h.target ? h.target->fingerprint() : std::string("nothing")) + ", and this job tunes for " +
        target.fingerprint() + " (one job tunes for one target)");
  } else {
    slot.phase = Slot::Phase::kServing;
    slot.capacity = h.capacity;
    slot.deadline_s = h.deadline_s;
    failure.reset();  // a rank to measure again, for the batches not yet given up
    log(slot.name + " measures " + plural(static_cast<size_t>(h.capacity), "candidate") + " at a time");
  }
}

void ClusterRunner::State::deliver(size_t r, uint64_t id, const Measurement& result, double now) {
  Slot& slot = slots[r];
  // Only the rank that holds the candidate now may answer for it.
  auto chunk = std::find_if(slot.chunks.begin(), slot.chunks.end(),
                            [&](const Chunk& c) { return std::find(c.begin(), c.end(), id) != c.end(); });
  if (chunk == slot.chunks.end()) return;
  chunk->erase(std::find(chunk->begin(), chunk->end(), id));
  if (chunk->empty()) slot.chunks.erase(chunk);
  slot.progress_s = now;
  Batch* b = batch_of(id);
  if (!b) return;
  size_t i = static_cast<size_t>(id - b->base_id);
  if (b->done[i]) return;
  b->done[i] = 1;
  b->results[i] = result;
  ++slot.measured;
  if (r != 0 && on_remote && *on_remote) (*on_remote)(result);
  b->finished.push_back(i);
  --b->remaining;
  --in_flight;
  batch_cv.notify_all();
}

void ClusterRunner::State::lose(size_t r, const std::string& why) {
  Slot& slot = slots[r];
  if (slot.phase == Slot::Phase::kLost) return;
  bool was_serving = slot.phase == Slot::Phase::kServing;
  slot.phase = Slot::Phase::kLost;
  ++lost;
  // Back to the front of the queue, oldest first, whichever batch each belongs to.
  size_t back = 0;
  for (auto c = slot.chunks.rbegin(); c != slot.chunks.rend(); ++c)
    for (auto id = c->rbegin(); id != c->rend(); ++id)
      if (Batch* b = batch_of(*id); b && !b->done[*id - b->base_id]) {
        pending.push_front(*id);
        ++back;
      }
  slot.chunks.clear();
  resent += static_cast<int>(back);
  log(slot.name + " is lost: " + why +
      (was_serving ? "; its " + plural(back, "candidate") + " in flight go to the other ranks"
                   : std::string()));
  if (r != 0) {
    // If it is alive after all (a hung measurement), it should stop rather than go on alone.
    Json stop = message("stop");
    stop["why"] = "rank 0 gave up on it: " + why;
    stop["finalize"] = false;
    transport.send(static_cast<int>(r), stop.dump());
    transport.abandon(static_cast<int>(r));
  }
}

void ClusterRunner::State::check_faults(double now) {
  for (size_t r = 1; r < slots.size(); ++r) {
    Slot& slot = slots[r];
    if (slot.phase != Slot::Phase::kServing) continue;
    if (now - slot.last_heard_s > options.rank_timeout_s) {
      lose(r, "silent for " + fixed1(now - slot.last_heard_s) + " s (it died, hangs or cannot be reached)");
    } else if (!slot.chunks.empty() && now - slot.progress_s > slot.deadline_s + options.rank_timeout_s) {
      lose(r, "no result for " + fixed1(now - slot.progress_s) +
                  " s, more than a candidate may take there (" + fixed1(slot.deadline_s) + " s)");
    }
  }
}

// Hands pending candidates to ranks with room, in turn, so that no rank is always served first:
// first a chunk to every idle rank, then a chunk more to each (prefetch) while there is a full
// round of work left. The queue holds every submitted batch's candidates, oldest batch first, so
// a later batch's fill the ranks that finish early in an earlier one's last round; only near the
// end of the last batch submitted do candidates go just to ranks that are free, so that none
// waits queued behind a slow one while another rank idles.
void ClusterRunner::State::dispatch(double now) {
  size_t round = 0;
  for (const Slot& slot : slots)
    if (slot.phase == Slot::Phase::kServing) round += static_cast<size_t>(slot.capacity);
  for (size_t depth = 1; depth <= static_cast<size_t>(std::max(1, options.prefetch)); ++depth) {
    if (depth > 1 && pending.size() < 2 * round) break;
    for (size_t k = 0; k < slots.size() && !pending.empty(); ++k) {
      size_t r = (next_slot + k) % slots.size();
      if (slots[r].phase == Slot::Phase::kServing && slots[r].chunks.size() < depth) send_chunk(r, now);
    }
  }
  next_slot = (next_slot + 1) % slots.size();
}

void ClusterRunner::State::send_chunk(size_t r, double now) {
  Slot& slot = slots[r];
  Chunk chunk;
  Json items = Json::array();
  while (!pending.empty() && chunk.size() < static_cast<size_t>(slot.capacity)) {
    uint64_t id = pending.front();
    pending.pop_front();
    Batch* b = batch_of(id);
    if (!b) continue;
    chunk.push_back(id);
    if (r != 0)
      items.push_back(Json{{"id", id}, {"candidate", candidate_to_json(b->candidates[id - b->base_id])}});
  }
  if (chunk.empty()) return;
  if (slot.chunks.empty()) slot.progress_s = now;
  slot.chunks.push_back(chunk);
  if (r == 0) {
    local_queue.push_back(std::move(chunk));
    local_cv.notify_all();
    return;
  }
  Json work = message("work");
  work["items"] = std::move(items);
  if (!transport.send(static_cast<int>(r), work.dump())) lose(r, "it cannot be reached");
}

// A batch that no rank is left to measure fails, unless a rank may still say hello.
void ClusterRunner::State::check_capacity(double now) {
  if (in_flight == 0 || failure) return;
  bool waiting = false;
  for (const Slot& slot : slots) {
    if (slot.phase == Slot::Phase::kServing) return;
    if (slot.phase == Slot::Phase::kWaiting && now - started_s < options.hello_timeout_s) waiting = true;
  }
  if (waiting) return;
  failure =
      "no rank is left to measure (" + std::to_string(lost) + " lost, the others serve nothing; see above)";
  batch_cv.notify_all();
}

// A batch given up (no rank left): its candidates are no one's work any more.
void ClusterRunner::State::drop(const Batch& b) {
  auto ours = [&](uint64_t id) { return id >= b.base_id && id < b.base_id + b.candidates.size(); };
  std::erase_if(pending, ours);
  for (Slot& slot : slots) {
    for (Chunk& c : slot.chunks) std::erase_if(c, ours);
    std::erase_if(slot.chunks, [](const Chunk& c) { return c.empty(); });
  }
  in_flight -= b.remaining;
}

void ClusterRunner::State::local_loop() {
  std::unique_lock lock(m);
  for (;;) {
    local_cv.wait(lock, [&] { return quit || !local_queue.empty(); });
    if (quit) return;
    Chunk chunk = std::move(local_queue.front());
    local_queue.pop_front();
    Chunk ids;  // those still wanted (not of a batch given up meanwhile)
    std::vector<Candidate> candidates;
    for (uint64_t id : chunk)
      if (Batch* b = batch_of(id)) {
        ids.push_back(id);
        candidates.push_back(b->candidates[id - b->base_id]);
      }
    if (candidates.empty()) continue;
    lock.unlock();
    local->on_result = [&](size_t i, const Measurement& meas) {
      std::lock_guard inner(m);
      if (i < ids.size()) deliver(0, ids[i], meas, monotonic_s());
    };
    std::optional<std::string> error;
    std::vector<Measurement> out;
    try {
      out = local->run(candidates);
    } catch (const std::exception& e) {
      error = e.what();
    }
    local->on_result = nullptr;
    lock.lock();
    if (error) {
      lose(0, std::string("its runner failed: ") + *error);
      return;
    }
    for (size_t i = 0; i < out.size() && i < ids.size(); ++i) deliver(0, ids[i], out[i], monotonic_s());
  }
}

// ---------------------------------------------------------------------------------------------
// Serving ranks.

namespace {

/// A serving rank's measuring thread and what it has to say to rank 0.
struct Server {
  std::mutex m;
  std::condition_variable cv, posted;  // work queued; something for rank 0 waits in the outbox
  std::deque<std::pair<std::vector<uint64_t>, std::vector<Candidate>>> queue;
  std::vector<std::pair<uint64_t, Measurement>> results;  // for rank 0, serialised by serve()'s thread
  std::vector<std::string> outbox;                        // other messages for rank 0
  bool quit = false, busy = false, failed = false;

  bool has_mail() const { return !results.empty() || !outbox.empty(); }

  void loop(Runner& runner) {
    std::unique_lock lock(m);
    for (;;) {
      cv.wait(lock, [&] { return quit || (!queue.empty() && !failed); });
      if (quit) return;
      auto [ids, candidates] = std::move(queue.front());
      queue.pop_front();
      busy = true;
      lock.unlock();
      std::vector<char> sent(ids.size(), 0);
      auto post = [&](size_t i, const Measurement& meas) {
        if (i >= ids.size() || sent[i]) return;
        sent[i] = 1;
        std::lock_guard inner(m);
        results.emplace_back(ids[i], meas);
        posted.notify_all();
      };
      runner.on_result = post;
      try {
        std::vector<Measurement> out = runner.run(candidates);
        for (size_t i = 0; i < out.size(); ++i) post(i, out[i]);
      } catch (const std::exception& e) {
        Json j = message("error");
        j["why"] = e.what();
        std::lock_guard inner(m);
        outbox.push_back(j.dump());
        failed = true;
        posted.notify_all();
      }
      runner.on_result = nullptr;
      lock.lock();
      busy = false;
    }
  }
};

}  // namespace

ServeOutcome serve(Transport& transport, const RankHello& hello, Runner* runner,
                   const ClusterOptions& options, const std::function<void(const std::string&)>& log) {
  TESSERA_CHECK(!hello.serves || runner, "a rank that serves needs a runner");
  Json h = hello.to_json();
  h["t"] = "hello";
  h["version"] = kVersion;
  transport.send(0, h.dump());
  // Shared with the measuring thread, which may outlive this call (see ServeOutcome::measuring).
  auto shared = std::make_shared<Server>();
  Server& server = *shared;
  std::thread worker;
  if (hello.serves) worker = std::thread([shared, runner] { shared->loop(*runner); });
  ServeOutcome outcome;
  double heard_s = monotonic_s(), beat_s = 0, active_s = 0;
  const double leader_timeout_s = 3 * options.rank_timeout_s;
  for (bool stop = false; !stop;) {
    double now = monotonic_s();
    while (auto msg = transport.receive()) {
      if (msg->first != 0) continue;
      heard_s = now;
      Json j = Json::parse(msg->second, nullptr, false);
      std::string type = j.is_object() ? j.value("t", "") : "";
      if (type == "stop") {
        outcome.finalize = j.value("finalize", true);
        stop = true;
      } else if (type == "work" && hello.serves) {
        active_s = now;
        std::vector<uint64_t> ids;
        std::vector<Candidate> candidates;
        std::lock_guard lock(server.m);
        try {
          for (const Json& item : j.at("items")) {
            ids.push_back(item.at("id").get<uint64_t>());
            candidates.push_back(candidate_from_json(item.at("candidate")));
          }
          server.queue.emplace_back(std::move(ids), std::move(candidates));
          server.cv.notify_all();
        } catch (const std::exception& e) {
          // Rank 0 then loses this rank and gives its candidates to the others.
          Json error = message("error");
          error["why"] = std::string("cannot read the work rank 0 sent: ") + e.what();
          server.outbox.push_back(error.dump());
          server.failed = true;
        }
      }
    }
    std::vector<std::pair<uint64_t, Measurement>> results;
    std::vector<std::string> out;
    bool busy = false;
    {
      std::lock_guard lock(server.m);
      results.swap(server.results);
      out.swap(server.outbox);
      busy = server.busy || !server.queue.empty();
    }
    if (busy || !results.empty()) active_s = now;
    for (const auto& [id, measurement] : results) {
      Json j = message("result");
      j["id"] = id;
      j["measurement"] = measurement.to_json();
      transport.send(0, j.dump());
    }
    for (const std::string& text : out) transport.send(0, text);
    if (now - beat_s >= options.beat_s) {
      beat_s = now;
      transport.send(0, message("beat").dump());
    }
    if (!stop && now - heard_s > leader_timeout_s) {
      log("rank 0 has been silent for " + fixed1(now - heard_s) + " s; this rank stops");
      outcome = {1, false};
      stop = true;
    }
    if (!stop) {
      // Results leave as soon as they are posted; otherwise poll for rank 0's messages.
      std::unique_lock lock(server.m);
      double wait_s = now - active_s < kActiveS ? options.poll_s : kIdlePollS;
      server.posted.wait_for(lock, std::chrono::duration<double>(wait_s), [&] { return server.has_mail(); });
    }
  }
  {
    std::lock_guard lock(server.m);
    server.quit = true;
    server.cv.notify_all();
  }
  transport.flush(5);
  if (worker.joinable()) {
    {
      std::lock_guard lock(server.m);
      outcome.measuring = server.busy;
    }
    if (outcome.measuring) {
      // Only when rank 0 gave up on this rank, or went silent: the runner cannot be interrupted.
      log("stopping with a measurement in flight");
      worker.detach();
    } else {
      worker.join();
    }
  }
  return outcome;
}

}  // namespace tessera::measure
