// Replay benchmark of the search (not a test): on a measured dataset (tests/data; a `db export
// --format jsonl`), with combined models that never saw the workloads they guide.
//
//   replay_bench DATASET.jsonl [--folds N] [--set FILE] [--seeds S] [--epsilon E] [--only evolve|schedule]
//
// evolve: the workloads are dealt into N folds (default 0: one per workload, leave one out);
//   for each workload, a model trained on the other folds guides `tune --strategy evolve`
//   over the replay, restricted to the recorded schedules. Reported per workload: the best
//   found with 1/40 of the recorded schedules as the budget (one batch), over the recorded
//   best; and how many trials an unlimited run (batches of 4) needs to reach 99 % and 100 %
//   of it. Beside them, the same figures expected of a uniformly random order.
// schedule: a weighted workload set (default configs/workloads/default.json, workloads the
//   dataset lacks are left out) tuned as one job with `--total-trials` budgets of 2, 4 and 8
//   batches per workload, by the gradient task scheduler and by round-robin, over S seeds
//   (default 5), with a model trained on the workloads outside the set. Reported: the
//   weighted total (sum of weight x best) over the best the records allow.
//
// The last lines are machine-readable summaries.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "costmodel/evaluate.h"
#include "costmodel/learned.h"
#include "db/database.h"
#include "db/export.h"
#include "kernels/families.h"
#include "measure/replay.h"
#include "search/tuner.h"
#include "search/workload_set.h"

using namespace tessera;

namespace {

struct Context {
  kernels::FamilyRegistry families;
  HardwareSpec spec;
  std::vector<Record> records;
  std::unique_ptr<measure::ReplayRunner> replay;
};

// A fresh database holding `model_blob` as the target's stored combined model.
class ScratchDb {
 public:
  ScratchDb(const Context& c, const std::string& model_blob)
      : path_(std::filesystem::temp_directory_path() / ("tessera_replay_bench_" + std::to_string(getpid()) + ".db")) {
    remove();
    db_ = std::make_unique<db::TuningDatabase>(db::TuningDatabase::open(path_.string()));
    db::StoredModel m;
    m.kind = costmodel::LearnedOptions{}.kind();
    m.target = c.replay->target();
    m.feature_version = costmodel::kFeatureVersion;
    m.blob = model_blob;
    db_->save_model(m);
  }
  ~ScratchDb() {
    db_.reset();
    remove();
  }
  db::TuningDatabase& db() { return *db_; }

 private:
  void remove() const {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path_.string() + suffix);
  }
  std::filesystem::path path_;
  std::unique_ptr<db::TuningDatabase> db_;
};

std::string train_without(const Context& c, const std::set<std::string>& held_out) {
  std::vector<Record> training;
  for (const Record& r : c.records)
    if (!held_out.count(r.workload.key())) training.push_back(r);
  costmodel::LearnedModel model(c.families, c.spec, {});
  model.train(training);
  return model.serialize();
}

// Correct recorded times of a workload, fastest first.
std::vector<double> recorded_times(const Context& c, const Workload& w) {
  std::map<std::string, double> latest;
  for (const Record& r : c.records)
    if (r.workload == w) {
      if (r.measurement.status == Status::kOk) latest[r.schedule.key()] = r.measurement.median_us;
      else latest.erase(r.schedule.key());
    }
  std::vector<double> t;
  for (const auto& [key, us] : latest) t.push_back(us);
  std::sort(t.begin(), t.end());
  return t;
}

// Expected best/found of `b` schedules drawn without replacement from `n` recorded ones (of
// which the correct ones are `times`, fastest first; the rest fail).
double random_ratio(const std::vector<double>& times, size_t n, size_t b) {
  // P(the fastest drawn is the j-th fastest) = C(n-1-j, b-1) / C(n, b), in logs.
  auto log_choose = [](double a, double k) { return std::lgamma(a + 1) - std::lgamma(k + 1) - std::lgamma(a - k + 1); };
  double expected = 0;
  for (size_t j = 0; j < times.size() && n - 1 - j >= b - 1; ++j)
    expected += std::exp(log_choose(double(n - 1 - j), double(b - 1)) - log_choose(double(n), double(b))) *
                times.front() / times[j];
  return expected;  // a draw with no correct schedule counts as 0
}

// Expected position of the first of `k` good schedules among `n` in a random order.
double random_trials_to(size_t n, size_t k) { return double(n + 1) / double(k + 1); }

std::vector<search::WorkloadOutcome> tune(const Context& c, db::TuningDatabase& db,
                                          const std::vector<std::pair<Workload, double>>& ws, search::TuneOptions o) {
  search::Tuner tuner(c.families, c.spec, c.replay->target(), db, c.replay.get(), o);
  tuner.allowed = [&](const Workload& x) { return c.replay->schedules(x); };
  return tuner.run(ws);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void bench_evolve(const Context& c, int folds, double epsilon) {
  std::set<std::string> keys;
  for (const Record& r : c.records) keys.insert(r.workload.key());
  if (folds <= 0) folds = static_cast<int>(keys.size());
  std::map<std::string, int> fold_of = costmodel::assign_folds(c.records, folds);
  std::printf("evolve over the replay, %zu workloads, models trained without the workload's fold (%d folds)\n",
              keys.size(), folds);
  std::printf("%-58s %5s %6s %8s %8s %7s %7s %8s %8s\n", "workload", "n", "1/40", "evolve", "random", "to99%",
              "to100%", "rnd99%", "rnd100%");
  std::vector<double> ratios, random_ratios, to99, to100, rnd99, rnd100;
  int hit99 = 0;
  for (int f = 0; f < folds; ++f) {
    std::set<std::string> fold;
    for (const auto& [key, g] : fold_of)
      if (g == f) fold.insert(key);
    if (fold.empty()) continue;
    std::string blob = train_without(c, fold);
    for (const std::string& key : fold) {
      Workload w = Workload::parse(key);
      size_t n = c.replay->schedules(w).size();
      std::vector<double> times = recorded_times(c, w);
      if (times.empty()) continue;
      const double best = times.front();
      const int budget = static_cast<int>((n + 39) / 40);
      search::TuneOptions o;
      o.strategy = search::Strategy::kEvolve;
      o.epsilon = epsilon;
      o.trials = budget;
      o.batch = budget;
      double found;
      {
        ScratchDb scratch(c, blob);
        std::vector<search::WorkloadOutcome> out = tune(c, scratch.db(), {{w, 1.0}}, o);
        found = out[0].best ? best / out[0].best->measurement.median_us : 0;
      }
      o.trials = static_cast<int>(n);
      o.batch = 4;
      int t99 = 0, t100 = 0;
      {
        ScratchDb scratch(c, blob);
        tune(c, scratch.db(), {{w, 1.0}}, o);
        std::vector<db::StoredRecord> rs = scratch.db().query({});
        std::sort(rs.begin(), rs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
        for (size_t i = 0; i < rs.size(); ++i) {
          const Measurement& m = rs[i].record.measurement;
          if (m.status != Status::kOk) continue;
          if (!t99 && m.median_us <= best / 0.99) t99 = static_cast<int>(i + 1);
          if (!t100 && m.median_us <= best) t100 = static_cast<int>(i + 1);
        }
      }
      auto within_99 = [&](double t) { return t <= best / 0.99; };
      size_t good = static_cast<size_t>(std::count_if(times.begin(), times.end(), within_99));
      double r_ratio = random_ratio(times, n, static_cast<size_t>(budget));
      double r99 = random_trials_to(n, good), r100 = random_trials_to(n, 1);
      std::printf("%-58s %5zu %6d %8.3f %8.3f %7d %7d %8.1f %8.1f\n", key.c_str(), n, budget, found, r_ratio, t99, t100,
                  r99, r100);
      ratios.push_back(found);
      random_ratios.push_back(r_ratio);
      hit99 += found >= 0.99;
      to99.push_back(t99);
      to100.push_back(t100);
      rnd99.push_back(r99);
      rnd100.push_back(r100);
    }
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0 : s / double(v.size());
  };
  auto min = [](const std::vector<double>& v) { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); };
  std::printf("evolve: at 1/40 of the recorded schedules, mean %.3f of the best (min %.3f), %d of %zu at >= 0.99; "
              "random order: mean %.3f\n",
              mean(ratios), min(ratios), hit99, ratios.size(), mean(random_ratios));
  std::printf("evolve: trials to 99%% median %.1f mean %.1f, to 100%% median %.1f mean %.1f; random order: to 99%% "
              "mean %.1f, to 100%% mean %.1f\n",
              median(to99), mean(to99), median(to100), mean(to100), mean(rnd99), mean(rnd100));
  std::printf("evolve_summary workloads=%zu ratio_at_1_40=%.3f min_ratio=%.3f at_least_99=%d to99_median=%.1f "
              "to100_median=%.1f random_ratio=%.3f random_to99_mean=%.1f\n",
              ratios.size(), mean(ratios), min(ratios), hit99, median(to99), median(to100), mean(random_ratios),
              mean(rnd99));
}

// The schedulers compared: kind, name in the table, tag in the summary line.
struct Scheduler {
  search::SchedulerKind kind;
  const char* name;
  const char* tag;
};
constexpr Scheduler kSchedulers[] = {{search::SchedulerKind::kGradient, "gradient", "gradient"},
                                     {search::SchedulerKind::kRoundRobin, "round-robin", "rr"}};

void bench_schedule(const Context& c, const std::string& set_file, int seeds) {
  search::WorkloadSet set = search::load_workload_set(set_file);
  std::vector<std::pair<Workload, double>> ws;
  std::set<std::string> held_out;
  double optimum = 0;
  for (const search::WorkloadEntry& e : set.entries) {
    std::vector<double> times = recorded_times(c, e.workload);
    if (times.empty()) continue;  // not in the dataset
    ws.emplace_back(e.workload, e.weight);
    held_out.insert(e.workload.key());
    optimum += e.weight * times.front();
  }
  std::printf("\ntask scheduler over the replay: %zu workloads of %s (%zu in the set), weighted best the records "
              "allow %.1f us; model trained without them\n",
              ws.size(), set_file.c_str(), set.entries.size(), optimum);
  std::string blob = train_without(c, held_out);
  const int batch = 4;
  std::printf("%-12s %-12s %10s %10s %10s\n", "budget", "scheduler", "mean", "worst", "best");
  std::string summary = "schedule_summary";
  // Where each scheduler put its trials (seed 1, 4 batches per workload on average).
  std::map<search::SchedulerKind, std::vector<search::WorkloadOutcome>> allocation;
  for (int per_task : {2, 4, 8}) {
    const int total = per_task * batch * static_cast<int>(ws.size());
    for (const auto& [kind, name, tag] : kSchedulers) {
      std::vector<double> excess;
      for (int seed = 1; seed <= seeds; ++seed) {
        ScratchDb scratch(c, blob);
        search::TuneOptions o;
        o.strategy = search::Strategy::kEvolve;
        o.total_trials = total;
        o.batch = batch;
        o.seed = static_cast<uint64_t>(seed);
        o.scheduler.kind = kind;
        double weighted = 0;
        std::vector<search::WorkloadOutcome> outs = tune(c, scratch.db(), ws, o);
        for (const search::WorkloadOutcome& out : outs)
          weighted += out.weight * (out.best ? out.best->measurement.median_us : 1e9);
        if (seed == 1 && per_task == 4) allocation[kind] = outs;
        excess.push_back(weighted / optimum);
      }
      double mean = 0;
      for (double x : excess) mean += x / double(excess.size());
      std::printf("%-12s %-12s %10.4f %10.4f %10.4f\n", (std::to_string(total) + " trials").c_str(), name, mean,
                  *std::max_element(excess.begin(), excess.end()), *std::min_element(excess.begin(), excess.end()));
      char part[96];
      std::snprintf(part, sizeof part, " %s_%d=%.4f", tag, total, mean);
      summary += part;
    }
  }
  std::printf("(weighted total over the weighted best the records allow: 1.0000 is the best possible)\n\n");
  std::printf("%-58s %6s %10s | %-16s | %-16s\n", "allocation, seed 1, 4 batches/workload", "weight", "best us",
              "gradient: trials", "round-robin");
  for (size_t i = 0; i < ws.size(); ++i) {
    double best = recorded_times(c, ws[i].first).front();
    auto cell = [&](search::SchedulerKind k) {
      const search::WorkloadOutcome& out = allocation[k][i];
      char text[64];
      double ratio = out.best ? best / out.best->measurement.median_us : 0.0;
      std::snprintf(text, sizeof text, "%4d  %.3f", out.measured, ratio);
      return std::string(text);
    };
    std::printf("%-58s %6.0f %10.2f | %-16s | %-16s\n", ws[i].first.key().c_str(), ws[i].second, best,
                cell(search::SchedulerKind::kGradient).c_str(), cell(search::SchedulerKind::kRoundRobin).c_str());
  }
  std::printf("%s\n", summary.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: replay_bench DATASET.jsonl [--folds N] [--set FILE] [--seeds S] [--epsilon E] "
                 "[--only evolve|schedule]\n");
    return 2;
  }
  std::string dataset = argv[1], set_file = "configs/workloads/default.json", only;
  int folds = 0, seeds = 5;
  double epsilon = search::TuneOptions{}.epsilon;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--folds") folds = std::stoi(argv[i + 1]);
    else if (a == "--set") set_file = argv[i + 1];
    else if (a == "--seeds") seeds = std::stoi(argv[i + 1]);
    else if (a == "--only") only = argv[i + 1];
    else if (a == "--epsilon") epsilon = std::stod(argv[i + 1]);
    else {
      std::fprintf(stderr, "replay_bench: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  try {
    Context c;
    kernels::register_builtin_families(c.families);
    std::ifstream in(dataset, std::ios::binary);
    if (!in) throw UserError(dataset + ": cannot read");
    std::stringstream text;
    text << in.rdbuf();
    c.records = db::import_jsonl(text.str(), dataset);
    c.replay = std::make_unique<measure::ReplayRunner>(c.records, dataset);
    c.spec = find_spec(c.replay->target().spec_name);
    std::printf("replay of %s: %zu records measured on %s\n\n", dataset.c_str(), c.records.size(),
                c.replay->target().fingerprint().c_str());
    if (only.empty() || only == "evolve") bench_evolve(c, folds, epsilon);
    if (only.empty() || only == "schedule") bench_schedule(c, set_file, seeds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "replay_bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
