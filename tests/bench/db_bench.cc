// Benchmark of the tuning database (not a test): commit throughput in batches, and the
// latency of best() on a large database.
//
//   db_bench [--records N] [--workloads W] [--batch B] [--path FILE]
//
// Defaults: 1,000,000 records over 10,000 matmul workloads in batches of 10,000, into a
// fresh file in /tmp. The records are synthetic (this measures storage, not kernels).
// Prints a table; the last line is machine-readable.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "db/database.h"

using namespace tessera;
using Clock = std::chrono::steady_clock;

namespace {
double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

int main(int argc, char** argv) {
  int64_t n_records = 1000000, n_workloads = 10000, batch = 10000;
  std::string path = "/tmp/tessera_db_bench.db";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--records") n_records = std::stoll(argv[i + 1]);
    else if (a == "--workloads") n_workloads = std::stoll(argv[i + 1]);
    else if (a == "--batch") batch = std::stoll(argv[i + 1]);
    else if (a == "--path") path = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: db_bench [--records N] [--workloads W] [--batch B] [--path FILE]\n");
      return 2;
    }
  }
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);

  std::vector<Workload> workloads;
  for (int64_t i = 0; i < n_workloads; ++i)
    workloads.push_back(Workload::parse("matmul:m=" + std::to_string(64 * (1 + i % 100)) + ",n=" +
                                        std::to_string(64 * (1 + i / 100 % 100)) + ",k=" +
                                        std::to_string(64 * (1 + i / 10000)) + ":f16"));
  Target target = Target::for_spec(find_spec("h100_sxm"), "13.0");
  target.driver_version = "bench";
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> time_us(10, 1000);

  db::TuningDatabase db = db::TuningDatabase::open(path);
  std::vector<double> batch_rates;
  auto t_all = Clock::now();
  for (int64_t done = 0; done < n_records;) {
    std::vector<Record> rs;
    for (int64_t j = 0; j < batch && done + j < n_records; ++j) {
      int64_t i = done + j;
      Record r;
      r.workload = workloads[static_cast<size_t>(i % n_workloads)];
      r.target = target;
      r.schedule = {"gemm_tc",
                    {{"block_m", 16 << (i % 4)}, {"block_n", 16 << (i / 4 % 4)}, {"block_k", 32}, {"warps", 4},
                     {"stages", 2 + i % 3}}};
      // Every tenth record of each workload is a failure (failures are stored too).
      r.measurement.status = (i / n_workloads % 10 == 9) ? Status::kCompileError : Status::kOk;
      if (r.measurement.status == Status::kOk) {
        double t = time_us(rng);
        r.measurement.set_times({t, t * 1.01, t * 0.99, t * 1.02, t * 1.005});
      }
      r.tool_version = "bench";
      r.timestamp_s = 1795000000 + i;
      rs.push_back(std::move(r));
    }
    auto t0 = Clock::now();
    db.commit(rs);
    batch_rates.push_back(static_cast<double>(rs.size()) / seconds_since(t0));
    done += static_cast<int64_t>(rs.size());
  }
  double commit_s = seconds_since(t_all);

  std::vector<double> best1_us, best10_us;
  std::uniform_int_distribution<size_t> pick(0, workloads.size() - 1);
  for (int i = 0; i < 2000; ++i) {
    const Workload& w = workloads[pick(rng)];
    auto t0 = Clock::now();
    auto b = db.best(w, target, 1);
    best1_us.push_back(seconds_since(t0) * 1e6);
    if (b.records.empty()) {
      std::fprintf(stderr, "best() found nothing for %s\n", w.key().c_str());
      return 1;
    }
    t0 = Clock::now();
    db.best(w, target, 10);
    best10_us.push_back(seconds_since(t0) * 1e6);
  }
  db::Stats st = db.stats();

  std::printf("%-34s %s\n", "database", path.c_str());
  std::printf("%-34s %lld records, %lld workloads, %.1f MB\n", "contents", static_cast<long long>(st.records),
              static_cast<long long>(st.workloads), static_cast<double>(st.file_bytes) / 1e6);
  std::printf("%-34s %.0f records/s overall (%.1f s); batch median %.0f, p10 %.0f records/s\n",
              ("commit, batches of " + std::to_string(batch)).c_str(), static_cast<double>(n_records) / commit_s,
              commit_s, percentile(batch_rates, 0.5), percentile(batch_rates, 0.1));
  std::printf("%-34s median %.1f us, p90 %.1f us, p99 %.1f us\n", "best(k=1), 2000 random workloads",
              percentile(best1_us, 0.5), percentile(best1_us, 0.9), percentile(best1_us, 0.99));
  std::printf("%-34s median %.1f us, p90 %.1f us\n", "best(k=10)", percentile(best10_us, 0.5),
              percentile(best10_us, 0.9));
  std::printf("records=%lld commit_rps=%.0f best1_median_us=%.1f best1_p99_us=%.1f best10_median_us=%.1f\n",
              static_cast<long long>(st.records), static_cast<double>(n_records) / commit_s, percentile(best1_us, 0.5),
              percentile(best1_us, 0.99), percentile(best10_us, 0.5));
  return 0;
}
