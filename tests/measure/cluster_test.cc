// The cluster protocol (measure/cluster.h) over an in-process transport: each "rank" is a thread
// with its own runner, so dispatch, ordering, lost and refused ranks are tested without mpirun
// (tests/cli/mpi_cli_test.cc runs the real thing).
#include "measure/cluster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/error.h"

namespace tessera::measure {
namespace {

/// Queues between the ranks of one test; a dead rank's messages, both ways, are dropped.
struct Network {
  std::mutex m;
  std::map<int, std::deque<std::pair<int, std::string>>> inbox;
  std::set<int> dead;
};

class QueueTransport : public Transport {
 public:
  QueueTransport(Network& net, int rank, int size) : net_(net), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool send(int to, const std::string& text) override {
    std::lock_guard lock(net_.m);
    if (!net_.dead.count(rank_) && !net_.dead.count(to)) net_.inbox[to].emplace_back(rank_, text);
    return true;
  }
  std::optional<std::pair<int, std::string>> receive() override {
    std::lock_guard lock(net_.m);
    auto& q = net_.inbox[rank_];
    if (q.empty() || net_.dead.count(rank_)) return std::nullopt;
    auto out = std::move(q.front());
    q.pop_front();
    return out;
  }

 private:
  Network& net_;
  int rank_, size_;
};

Target gpu(const std::string& name) {
  Target t;
  t.gpu_name = name;
  t.spec_name = "h100_sxm";
  t.cc_major = 9;
  t.sm_count = 132;
  t.driver_version = t.runtime_version = t.toolkit_version = "13.0";
  return t;
}

/// Answers from the candidate alone (so any rank gives the same answer), after `delay_ms`;
/// `hook(n)` runs before its n-th candidate (1-based).
class EchoRunner : public Runner {
 public:
  explicit EchoRunner(int delay_ms = 2) : delay_ms_(delay_ms) {}
  std::vector<Measurement> run(std::span<const Candidate> candidates) override {
    std::vector<Measurement> out;
    for (const Candidate& c : candidates) {
      int n = ++count;
      if (hook) hook(n);
      if (before) before(c);
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
      out.push_back(answer(c));
      if (on_result) on_result(out.size() - 1, out.back());
    }
    return out;
  }
  static Measurement answer(const Candidate& c) {
    Measurement m;
    m.set_times({1.0 + static_cast<double>(c.schedule.get("tile")), 2.0});
    m.status = Status::kOk;
    m.conditions["schedule"] = c.schedule.key();
    return m;
  }
  std::atomic<int> count = 0;
  std::function<void(int)> hook;
  std::function<void(const Candidate&)> before;  ///< runs before each candidate is measured

 private:
  int delay_ms_;
};

std::vector<Candidate> candidates(int n) {
  std::vector<Candidate> out;
  for (int i = 0; i < n; ++i) {
    Candidate c;
    c.workload = Workload::parse("softmax:rows=4096,cols=1024:f16");
    c.schedule.family = "rows";
    c.schedule.knobs = {{"tile", i}};
    c.predicted_us = i == 3 ? std::numeric_limits<double>::infinity() : 1.5 * i;
    out.push_back(c);
  }
  return out;
}

/// Rank 0 with its ClusterRunner, and serving ranks on threads.
struct TestCluster {
  explicit TestCluster(int size, ClusterOptions o = fast()) : options(o) {
    for (int r = 0; r < size; ++r) transports.push_back(std::make_unique<QueueTransport>(net, r, size));
    leader = std::make_unique<ClusterRunner>(*transports[0], options, [this](const std::string& line) {
      std::lock_guard lock(log_m);
      log += line + "\n";
    });
  }
  ~TestCluster() {
    leader.reset();
    for (std::thread& t : threads) t.join();
  }
  static ClusterOptions fast() {
    ClusterOptions o;
    o.beat_s = 0.02;
    o.rank_timeout_s = 0.5;
    o.hello_wait_s = 2;
    o.hello_timeout_s = 2;
    return o;
  }
  void serve(int rank, RankHello hello, Runner* runner) {
    threads.emplace_back([this, rank, hello, runner] {
      outcomes[rank] = measure::serve(*transports[rank], hello, runner, options, [](const std::string&) {});
    });
  }
  static RankHello serving(const Target& t, int capacity = 1) {
    RankHello h;
    h.serves = true;
    h.target = t;
    h.capacity = capacity;
    h.deadline_s = 0.2;
    h.host = "test";
    return h;
  }
  std::string logged() {
    std::lock_guard lock(log_m);
    return log;
  }

  ClusterOptions options;
  Network net;
  std::vector<std::unique_ptr<QueueTransport>> transports;
  std::unique_ptr<ClusterRunner> leader;
  std::vector<std::thread> threads;
  std::map<int, ServeOutcome> outcomes;
  std::mutex log_m;
  std::string log;
};

void expect_answers(const std::vector<Candidate>& cs, const std::vector<Measurement>& ms) {
  ASSERT_EQ(ms.size(), cs.size());
  for (size_t i = 0; i < cs.size(); ++i) EXPECT_EQ(ms[i], EchoRunner::answer(cs[i])) << "candidate " << i;
}

TEST(Cluster, EveryRankMeasuresAndResultsComeBackInCandidateOrder) {
  EchoRunner local, one, two;
  TestCluster job(3);
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.serve(2, TestCluster::serving(gpu("H100"), 2), &two);
  job.leader->lead(gpu("H100"), &local, 1);
  std::vector<Candidate> cs = candidates(60);
  std::vector<int> reported(20, 0);
  job.leader->on_result = [&](size_t i, const Measurement&) { ++reported.at(i); };
  for (int batch = 0; batch < 3; ++batch) {
    std::vector<Candidate> part(cs.begin() + batch * 20, cs.begin() + (batch + 1) * 20);
    expect_answers(part, job.leader->run(part));
  }
  EXPECT_EQ(reported, std::vector<int>(20, 3));  // each candidate of each batch, once
  EXPECT_GT(one.count, 0);
  EXPECT_GT(two.count, 0);
  EXPECT_EQ(local.count + one.count + two.count, 60);
  EXPECT_TRUE(job.leader->finish("done"));
  job.leader.reset();
  for (std::thread& t : job.threads) t.join();
  job.threads.clear();
  EXPECT_TRUE(job.outcomes[1].finalize);
  EXPECT_EQ(job.outcomes[2].exit_code, 0);
  EXPECT_NE(job.logged().find("rank 2 (test, pid 0) measures 2 candidates at a time"), std::string::npos)
      << job.logged();
}

TEST(Cluster, ALaterBatchFillsTheRanksWhileAnEarlierOneIsMeasured) {
  EchoRunner local, one, two;
  // Whichever rank measures the first batch's first candidate holds it until a candidate of the
  // second batch has started elsewhere (or 5 s passed): only overlapping batches get there.
  std::mutex m;
  std::condition_variable cv;
  int later_started = 0;
  bool overlapped = false;
  auto before = [&](const Candidate& c) {
    std::unique_lock lock(m);
    if (c.schedule.get("tile") >= 3) {
      ++later_started;
      cv.notify_all();
    } else if (c.schedule.get("tile") == 0) {
      overlapped = cv.wait_for(lock, std::chrono::seconds(5), [&] { return later_started > 0; });
    }
  };
  for (EchoRunner* r : {&local, &one, &two}) r->before = before;
  TestCluster job(3);
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.serve(2, TestCluster::serving(gpu("H100")), &two);
  job.leader->lead(gpu("H100"), &local, 1);
  EXPECT_TRUE(job.leader->asynchronous());
  std::vector<Candidate> cs = candidates(12);
  std::vector<Candidate> first(cs.begin(), cs.begin() + 3), second(cs.begin() + 3, cs.end());
  Runner::Ticket a = job.leader->submit(first);
  Runner::Ticket b = job.leader->submit(second);
  std::vector<int> reported(9, 0);
  job.leader->on_result = [&](size_t i, const Measurement&) { ++reported.at(i); };
  // Waited for out of order: each comes back whole, in its own candidate order, and on_result
  // reports its candidates (the other batch's wait for their own wait).
  expect_answers(second, job.leader->wait(b));
  EXPECT_EQ(reported, std::vector<int>(9, 1));
  expect_answers(first, job.leader->wait(a));
  EXPECT_EQ(reported, std::vector<int>({2, 2, 2, 1, 1, 1, 1, 1, 1}));
  EXPECT_TRUE(overlapped);
  EXPECT_EQ(local.count + one.count + two.count, 12);
  EXPECT_TRUE(job.leader->finish("done"));
}

TEST(Cluster, ARankLostWithTwoBatchesInFlightLosesNothing) {
  EchoRunner one(5), two(5);
  TestCluster job(3);
  // Rank 2 measures 4 candidates at once, so that rank 0 hands it more than the first batch holds
  // (up to `prefetch` chunks of 4); it dies on its first, once both batches are queued: none of
  // its results arrive.
  std::atomic<bool> both_submitted = false;
  two.hook = [&](int n) {
    if (n != 1) return;
    while (!both_submitted) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::lock_guard lock(job.net.m);
    job.net.dead.insert(2);
  };
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.serve(2, TestCluster::serving(gpu("H100"), 4), &two);
  job.leader->lead(gpu("H100"), nullptr, 1);
  std::vector<Candidate> cs = candidates(26);
  std::vector<Candidate> first(cs.begin(), cs.begin() + 6), second(cs.begin() + 6, cs.end());
  Runner::Ticket a = job.leader->submit(first);
  Runner::Ticket b = job.leader->submit(second);
  both_submitted = true;
  expect_answers(first, job.leader->wait(a));
  expect_answers(second, job.leader->wait(b));
  ClusterStats stats = job.leader->stats();
  EXPECT_EQ(stats.lost, 1);
  EXPECT_GT(stats.resent, 6);  // more than the first batch: the second's were in flight there too
  EXPECT_EQ(stats.measured[2], 0);
  EXPECT_EQ(stats.measured[1], 26);
  EXPECT_NE(job.logged().find("rank 2 (test, pid 0) is lost: silent for"), std::string::npos) << job.logged();
  EXPECT_FALSE(job.leader->finish("done"));
}

TEST(Cluster, ARankThatDiesLosesOnlyItsCandidatesInFlight) {
  EchoRunner local(5), one(5), two(5);
  TestCluster job(3);
  // Rank 2 dies as it starts its third candidate: neither that result nor anything after arrives.
  two.hook = [&](int n) {
    if (n == 3) {
      std::lock_guard lock(job.net.m);
      job.net.dead.insert(2);
    }
  };
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.serve(2, TestCluster::serving(gpu("H100")), &two);
  job.leader->lead(gpu("H100"), &local, 1);
  std::vector<Candidate> cs = candidates(40);
  expect_answers(cs, job.leader->run(cs));
  ClusterStats stats = job.leader->stats();
  EXPECT_EQ(stats.lost, 1);
  EXPECT_GE(stats.resent, 1);       // the candidate it died on, at least
  EXPECT_GE(stats.measured[2], 1);  // its second result may die with it, unsent
  EXPECT_LE(stats.measured[2], 2);
  EXPECT_EQ(stats.measured[0] + stats.measured[1] + stats.measured[2], 40);
  EXPECT_NE(job.logged().find("rank 2 (test, pid 0) is lost: silent for"), std::string::npos) << job.logged();
  EXPECT_FALSE(job.leader->finish("done"));  // MPI_Finalize would wait for the lost rank
}

TEST(Cluster, AHungMeasurementIsGivenToAnotherRankAfterItsDeadline) {
  EchoRunner local(5), one(5);
  static EchoRunner stuck(5);  // still measuring when the test ends: must outlive it
  stuck.hook = [](int n) {
    if (n == 2) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  };
  TestCluster job(3);
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.serve(2, TestCluster::serving(gpu("H100")), &stuck);  // beats on, measures no more
  job.leader->lead(gpu("H100"), &local, 1);
  std::vector<Candidate> cs = candidates(30);
  expect_answers(cs, job.leader->run(cs));
  EXPECT_NE(job.logged().find("rank 2 (test, pid 0) is lost: no result for"), std::string::npos)
      << job.logged();
  job.leader->finish("done");
  job.leader.reset();
  for (std::thread& t : job.threads) t.join();
  job.threads.clear();
  EXPECT_TRUE(job.outcomes[2].measuring);  // told to stop mid-measurement
  EXPECT_FALSE(job.outcomes[2].finalize);
  EXPECT_TRUE(job.outcomes[1].finalize == false);                // a rank was lost: nobody may MPI_Finalize
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let the stuck measurement end
}

TEST(Cluster, RanksOfAnotherTargetAreRefusedAndRanksWithoutAGpuServeNothing) {
  EchoRunner local, other, ok;
  TestCluster job(4);
  job.serve(1, TestCluster::serving(gpu("H200")), &other);
  RankHello none;
  none.why = "no GPU found (no driver)";
  none.host = "cpu-node";
  job.serve(2, none, nullptr);
  job.serve(3, TestCluster::serving(gpu("H100")), &ok);
  job.leader->lead(gpu("H100"), &local, 1);
  std::vector<Candidate> cs = candidates(30);
  expect_answers(cs, job.leader->run(cs));
  // Wait for every hello to be judged (a slow one may come after the batch).
  for (int i = 0; i < 200 && job.logged().find("rank 1") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(other.count, 0);
  EXPECT_NE(job.logged().find("rank 1 (test, pid 0) is refused: it measures on H200|sm_90|132 SMs"),
            std::string::npos)
      << job.logged();
  for (int i = 0; i < 200 && job.logged().find("rank 2") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(job.logged().find("rank 2 (cpu-node, pid 0) serves nothing: no GPU found (no driver)"),
            std::string::npos)
      << job.logged();
  EXPECT_TRUE(job.leader->finish("done"));
}

TEST(Cluster, ABatchNoRankIsLeftToMeasureIsAUserError) {
  EchoRunner one(5);
  one.hook = [&](int n) {
    if (n == 2) throw std::runtime_error("every worker given up");
  };
  TestCluster job(2);
  job.serve(1, TestCluster::serving(gpu("H100")), &one);
  job.leader->lead(gpu("H100"), nullptr, 1);  // rank 0 measures nothing itself
  std::vector<Candidate> cs = candidates(5);
  try {
    job.leader->run(cs);
    ADD_FAILURE() << "a batch with no rank left to measure it returned";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no rank is left to measure"), std::string::npos) << e.what();
  }
  EXPECT_NE(job.logged().find("is lost: its runner failed: every worker given up"), std::string::npos)
      << job.logged();
}

TEST(Cluster, CandidatesTravelWhole) {
  for (const Candidate& c : candidates(5)) {
    Candidate back = candidate_from_json(Json::parse(candidate_to_json(c).dump()));
    EXPECT_EQ(back.workload.key(), c.workload.key());
    EXPECT_EQ(back.schedule, c.schedule);
    ASSERT_TRUE(back.predicted_us.has_value());
    if (std::isinf(*c.predicted_us))
      EXPECT_TRUE(std::isinf(*back.predicted_us));
    else
      EXPECT_EQ(*back.predicted_us, *c.predicted_us);
  }
  EXPECT_THROW(candidate_from_json(Json::parse(R"({"schedule": {}})")), UserError);
}

TEST(Cluster, TheLauncherSaysHowManyRanks) {
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
  ::unsetenv("PMI_SIZE");
  ::unsetenv("PMIX_RANK");
  EXPECT_EQ(launched_ranks(), 1);
  EXPECT_EQ(launched_rank(), 0);
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "3", 1);
  EXPECT_EQ(launched_ranks(), 4);
  EXPECT_EQ(launched_rank(), 3);
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
}

}  // namespace
}  // namespace tessera::measure
