// `tessera tune`: the tuning job (search/tuner) with its progress display and results table.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "core/error.h"
#include "core/version.h"
#include "costmodel/roofline.h"
#include "graph/onnx_io.h"
#include "graph/tuning_plan.h"
#include "kernels/families.h"
#include "search/cluster.h"
#include "search/job.h"
#include "search/tuner.h"
#include "search/workload_set.h"

namespace tessera::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  g_stop = true;
  ::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the job at once
}

// Where tune's flags say to measure (all an MPI rank other than rank 0 needs).
search::JobRequest measure_request(const ParsedArgs& args) {
  search::JobRequest request;
  request.min_time_ms = static_cast<int>(args.integer("min-time-ms", 50, 1, 600000));
  std::string measure_mode = args.value_or("measure", "auto");
  if (measure_mode == "gpu") request.measure = search::MeasureMode::kGpu;
  else if (measure_mode == "none") request.measure = search::MeasureMode::kNone;
  else if (measure_mode != "auto") throw UserError("--measure must be gpu or none (got '" + measure_mode + "')");
  request.target = args.value("target");
  request.replay = args.value("replay");
  request.replay_pace = args.number("replay-pace", 0, 0, 1000);
  return request;
}

// tune's flags as a job request and the tuner's options (bad values are one-line errors).
search::JobRequest job_request(const ParsedArgs& args, std::vector<std::string>& labels) {
  search::JobRequest request;
  if (auto file = args.value("workloads")) {
    search::WorkloadSet set = search::load_workload_set(*file);
    for (search::WorkloadEntry& e : set.entries) request.workloads.push_back(std::move(e));
  }
  for (const std::string& spec : args.values("workload")) request.workloads.push_back({Workload::parse(spec), 1.0, ""});
  if (request.workloads.empty() && !args.has("model"))
    throw UserError("nothing to tune: give --workload SPEC, --workloads FILE or --model FILE.onnx");
  for (const search::WorkloadEntry& e : request.workloads) labels.push_back(e.label);
  search::JobRequest measure = measure_request(args);
  measure.workloads = std::move(request.workloads);
  return measure;
}

search::TuneOptions tune_options(const ParsedArgs& args) {
  search::TuneOptions options;
  options.top_k = args.integer("topk", 10, 1, 1000);
  options.trials = args.integer("trials", 0, 0, 1000000);
  options.time_limit_s = args.integer("time-limit", 0, 0, 100000000);
  options.tool_version = kVersion;
  std::string strategy = args.value_or("strategy", "construct");
  if (strategy == "construct") options.strategy = search::Strategy::kConstruct;
  else if (strategy == "exhaustive") options.strategy = search::Strategy::kExhaustive;
  else if (strategy == "random") options.strategy = search::Strategy::kRandom;
  else if (strategy == "evolve") options.strategy = search::Strategy::kEvolve;
  else throw UserError("--strategy must be construct, evolve, exhaustive or random (got '" + strategy + "')");
  options.epsilon = args.number("epsilon", options.epsilon, 0, 1);
  if (options.strategy == search::Strategy::kRandom && options.trials == 0)
    throw UserError("--strategy random needs --trials N (the sample size per workload)");
  options.seed = static_cast<uint64_t>(args.integer("seed", 1, 0, 1000000000));
  options.total_trials = args.integer("total-trials", 0, 0, 100000000);
  std::string scheduler = args.value_or("scheduler", "gradient");
  if (scheduler == "gradient") options.scheduler.kind = search::SchedulerKind::kGradient;
  else if (scheduler == "round-robin") options.scheduler.kind = search::SchedulerKind::kRoundRobin;
  else throw UserError("--scheduler must be gradient or round-robin (got '" + scheduler + "')");
  if (args.has("scheduler") && options.total_trials == 0)
    throw UserError("--scheduler allots a job budget: give --total-trials N too");
  options.batch = args.integer("batch", 10, 1, 1000);
  return options;
}

// One progress line per update: on a terminal rewritten in place, else one per finished batch.
std::function<void(const search::TuneProgress&)> progress_printer(bool measured, bool tty) {
  return [measured, tty](const search::TuneProgress& p) {
    // ETA from the share of the job done: workloads finished, or trials of the job budget.
    double share = p.job_planned > 0 ? double(p.job_done) / double(p.job_planned) : double(p.workload) / double(p.workloads);
    double eta = share > 0 ? p.elapsed_s / share * (1 - share) : 0;
    std::string line = "[" + std::to_string(p.workload + 1) + "/" + std::to_string(p.workloads) + "] " + p.key + "  " +
                       std::to_string(p.done) + "/" + std::to_string(p.planned) + (measured ? " measured" : " ranked") +
                       (p.best_us ? ", best " + fixed(*p.best_us, 2) + " us" : "") +
                       (p.job_planned > 0 ? ", job " + std::to_string(p.job_done) + "/" + std::to_string(p.job_planned) : "") +
                       ", " + fixed(p.elapsed_s, 0) + " s" + (share > 0 ? ", ETA " + fixed(eta, 0) + " s" : "");
    if (tty) {
      if (line.size() > 150) line = line.substr(0, 147) + "...";
      std::cerr << "\r\033[K" << line << std::flush;
    } else if (p.done > 0 || p.planned == 0) {  // plain log lines: one per finished batch
      std::cerr << "tessera tune: " << line << "\n";
    }
  };
}

void print_json(const search::Job& job, const std::vector<search::WorkloadOutcome>& outcomes) {
  Json out = Json::array();
  for (const search::WorkloadOutcome& o : outcomes) {
    Json j{{"workload", o.workload.key()}, {"weight", o.weight}, {"measured_on_gpu", job.gpu},
           {"replayed", job.replay != nullptr}, {"target", job.target.fingerprint()},
           {"ranked", o.ranked}, {"skipped_already_in_db", o.already}, {"measured", o.measured}, {"failed", o.failed},
           {"construct_s", o.construct_s}, {"measure_s", o.measure_s}};
    if (o.predicted_best)
      j["predicted_best"] = {{"schedule", o.predicted_best->schedule.to_json()}, {"predicted_us", *o.predicted_best->predicted_us}};
    if (o.best) j["best"] = o.best->to_json();
    out.push_back(j);
  }
  std::cout << out.dump(2) << "\n";
}

void print_table(const search::Job& job, const std::vector<search::WorkloadOutcome>& outcomes,
                 const std::vector<std::string>& labels, const std::string& replay_file) {
  const bool measured = job.measured();
  std::cout << (job.replay ? "REPLAYED from " + replay_file + " (measured earlier on " + job.target.fingerprint() + ")"
                : job.gpu  ? "tuned on " + job.target.fingerprint()
                           : "MODEL ONLY (nothing measured) for " + job.target.fingerprint())
            << "\n";
  Table table(measured ? std::vector<std::string>{"workload", "best us", "baseline", "baseline us", "vs baseline", "rate",
                                             "of floor", "measured", "failed", "schedule"}
                  : std::vector<std::string>{"workload", "PREDICTED us", "of floor", "ranked", "schedule"});
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const search::WorkloadOutcome& o = outcomes[i];
    std::string name = labels[i].empty() ? o.workload.key() : labels[i];
    costmodel::RooflineFloor floor = costmodel::roofline_floor(o.workload, job.spec);
    auto rate = [&](double us) {
      return floor.memory_bound() ? fixed(floor.min_bytes / us / 1e3, 0) + " GB/s"
                                  : fixed(floor.flops / us / 1e6, 1) + " TFLOP/s";
    };
    if (measured) {
      if (!o.best) {
        table.add({name, "-", std::string(baseline_name(o.workload.kind)), "-", "-", "-", "-", std::to_string(o.measured),
                   std::to_string(o.failed), "no correct result"});
        continue;
      }
      const Measurement& m = o.best->measurement;
      table.add({name, fixed(m.median_us, 2), std::string(baseline_name(o.workload.kind)),
                 m.vendor_us ? fixed(*m.vendor_us, 2) : "-",
                 m.vendor_us ? fixed(*m.vendor_us / m.median_us, 2) + "x" : "-", rate(m.median_us),
                 fixed(100 * floor.floor_us / m.median_us, 0) + "%", std::to_string(o.measured + o.already),
                 std::to_string(o.failed), o.best->schedule.key()});
    } else {
      if (!o.predicted_best) {
        table.add({name, "-", "-", std::to_string(o.ranked), "no valid schedule"});
        continue;
      }
      double us = *o.predicted_best->predicted_us;
      table.add({name, fixed(us, 2), fixed(100 * floor.floor_us / us, 0) + "%", std::to_string(o.ranked),
                 o.predicted_best->schedule.key()});
    }
  }
  std::cout << table.str();
  if (measured)
    std::cout << "'vs baseline': the baseline's time over the best, timed in the same worker (above 1x: Tessera is "
                 "faster); the baseline is the vendor library (cuBLASLt, cuDNN) or, for memory-bound kinds, a "
                 "device-to-device copy of the workload's compulsory traffic (1x: at the copy's bandwidth).\n";
  // Row operators that cuDNN also has: its routine, timed beside the copy in the same worker.
  for (size_t i = 0; measured && i < outcomes.size(); ++i) {
    const search::WorkloadOutcome& o = outcomes[i];
    if (!o.best) continue;
    const Json& c = o.best->measurement.conditions;
    if (!c.contains("vendor") || !c["vendor"].contains("cudnn") || !c["vendor"]["cudnn"].contains("us")) continue;
    const Json& d = c["vendor"]["cudnn"];
    const double us = d["us"].get<double>();
    std::cout << "cuDNN beside the copy: " << (labels[i].empty() ? o.workload.key() : labels[i]) << ": "
              << d.value("routine", std::string("cuDNN")) << " " << fixed(us, 2) << " us (its time over the best: "
              << fixed(us / o.best->measurement.median_us, 2) << "x)\n";
  }
  if (measured && outcomes.size() > 1) {
    // What the job buys end to end: each workload's best times its occurrences.
    double total = 0;
    size_t with = 0;
    for (const search::WorkloadOutcome& o : outcomes)
      if (o.best) {
        total += o.weight * o.best->measurement.median_us;
        ++with;
      }
    std::cout << "weighted total (sum of weight x best): " << fixed(total, 2) << " us over " << with << " of "
              << outcomes.size() << " workloads" << (with < outcomes.size() ? " (some have no correct result)" : "")
              << "\n";
  }
  if (!measured) std::cout << "(predictions of the analytic model; run on a GPU to measure)\n";
  if (job.replay)
    std::cout << "(replay: " << job.replay->answered() << " answers from the records, " << job.replay->unmeasured()
              << " unmeasured)\n";
}

int tune(const ParsedArgs& args) {
  // Under mpirun with several ranks, every rank but rank 0 only measures (search/cluster.h).
  measure::ClusterOptions cluster_options;
  cluster_options.rank_timeout_s = args.number("rank-timeout", cluster_options.rank_timeout_s, 1, 86400);
  std::unique_ptr<search::Cluster> cluster = search::Cluster::join(cluster_options);
  if (cluster && !cluster->leader()) return cluster->serve([&] { return measure_request(args); });
  std::vector<std::string> labels;
  search::JobRequest request = job_request(args, labels);
  search::TuneOptions options = tune_options(args);
  // Opened once the request is known to be good (a bad --target leaves no database behind).
  std::optional<db::TuningDatabase> opened;
  auto database = [&]() -> db::TuningDatabase& {
    if (!opened) opened.emplace(db::TuningDatabase::open(args.value_or("db", "tessera.db")));
    return *opened;
  };
  if (auto model = args.value("model")) {
    // The model's operators and those of its fused and optimised graphs: with model-only costs, and with
    // the costs this database holds for the job's target (a second job then measures the
    // rewrites the first one's measurements favour).
    DType dtype = parse_dtype(args.value_or("model-dtype", "f16"), "--model-dtype");
    std::string name = std::filesystem::path(*model).filename().string();
    request.more_workloads = [&, model = *model, dtype, name](const HardwareSpec& spec, const Target& target) {
      graph::Graph g = graph::import_onnx(model);
      kernels::FamilyRegistry families;
      kernels::register_builtin_families(families);
      auto entries = graph::tuning_workloads(g, families, spec, dtype, &database(), target);
      std::cerr << "tessera: " << model << ": " << entries.size() << " distinct workloads (the model's and its "
                << "fused and optimised graphs'), weighted by occurrences\n";
      for (search::WorkloadEntry& e : entries) labels.push_back(name + ":" + e.label);
      return entries;
    };
  }
  std::unique_ptr<search::Job> job;
  try {
    job = search::plan_job(request);
  } catch (const search::NoGpuError& e) {
    std::cerr << "tessera: " << e.what() << "\n";
    return kExitNoGpu;
  }
  if (!job->notice.empty()) std::cerr << "tessera: " << job->notice << "\n";

  measure::Runner* runner = cluster ? cluster->lead(*job) : job->measurer();
  search::Tuner tuner(job->families, job->spec, job->target, database(), runner, options);
  if (job->replay) tuner.allowed = [&](const Workload& w) { return job->replay->schedules(w); };
  g_stop = false;
  ::signal(SIGINT, on_interrupt);
  if (cluster) ::signal(SIGTERM, on_interrupt);  // mpirun passes Ctrl-C on as SIGTERM
  tuner.should_stop = [] { return g_stop.load(); };
  const bool tty = ::isatty(2);
  tuner.on_progress = progress_printer(job->measured(), tty);
  std::vector<std::pair<Workload, double>> workloads;
  for (const search::WorkloadEntry& e : job->workloads) workloads.emplace_back(e.workload, e.weight);
  std::vector<search::WorkloadOutcome> outcomes = tuner.run(workloads);
  ::signal(SIGINT, SIG_DFL);
  if (cluster) cluster->finish(g_stop ? "rank 0 was interrupted" : "the job is done");
  if (tty) std::cerr << "\r\033[K";
  if (g_stop) std::cerr << "tessera: interrupted; every finished batch is in the database (run again to resume)\n";
  if (args.has("json")) {
    print_json(*job, outcomes);
  } else {
    print_table(*job, outcomes, labels, args.value_or("replay", ""));
  }
  return g_stop ? 130 : 0;
}

}  // namespace

void register_tune_commands(CommandRegistry& registry) {
  registry.add(
      {"tune",
       "Construct, rank, measure and record the best schedules of workloads",
       "(--workload SPEC ... | --workloads FILE | --model FILE.onnx) [--db FILE] [--topk K] [--trials N] [--time-limit S] "
       "[--measure gpu|none] [--target NAME] [--strategy construct|evolve|exhaustive|random] [--total-trials N] "
       "[--scheduler gradient|round-robin] [--seed N] [--epsilon E] [--replay FILE.jsonl [--replay-pace F]] [--batch N] [--min-time-ms MS] [--rank-timeout S] [--json]",
       "For each workload: Roller-style construction ranks candidate schedules with the analytic cost model "
       "(or --strategy exhaustive|random ranks the family's whole valid space or a sample of it), schedules the database already holds "
       "for this target are skipped (a job resumes where it stopped), the rest are built and measured on the "
       "GPU in batches, and every result, failures too, is committed to the database after each batch. The "
       "table shows each workload's best beside its baseline, timed in the same worker: the vendor library "
       "(cuBLASLt, cuDNN) or, for memory-bound kinds, a device-to-device copy of the workload's compulsory "
       "traffic.\n\n"
       "Without a GPU (or with --measure none, or a --target that is not the GPU present) nothing is "
       "measured: the model's ranking is recorded as `unmeasured` predictions, and every output says MODEL "
       "ONLY. Ctrl-C stops after the batch in flight.\n\n"
       "--strategy evolve searches with the combined learned model (the database's stored one for the target, "
       "else trained on its records; the analytic model until enough exist), retrains it as results come in "
       "and stores it after the job. --replay answers from recorded measurements instead of a GPU, for the GPU "
       "they were measured on; a schedule they lack is `unmeasured`.\n\n"
       "--total-trials N gives the job one budget shared by its workloads: after one batch each, the task "
       "scheduler gives every batch to the workload where it is expected to cut the most end-to-end time "
       "(sum of weight x best, weights from the workload set; Ansor's gradient-based allocation), or in turn "
       "with --scheduler round-robin. --trials still caps each workload.\n\n"
       "Under `mpirun -n N` (a build with MPI), rank 0 runs the search, the scheduler and the database as one "
       "process would, and every rank, rank 0 included, measures candidates on its own node's GPUs (or from "
       "--replay); results and records are those of one process. A rank without a GPU, or whose GPU is not "
       "rank 0's, serves nothing and says so; a rank that dies or hangs loses only its candidates in flight, which "
       "other ranks measure (give mpirun --enable-recovery, or Open MPI ends the whole job when one rank dies). "
       "With construct, exhaustive and random, rank 0 submits the next batch while one is measured, so that no "
       "rank waits for the search between batches. mpirun passes Ctrl-C on as SIGTERM: rank 0 stops after the "
       "batches in flight.\n\n"
       "Exit status: 0 done, 2 bad input, 3 --measure gpu without a GPU, 130 interrupted.",
       {{"workload", "SPEC", "a workload to tune (repeatable)"},
        {"workloads", "FILE", "a workload set (.json, e.g. configs/workloads/default.json)"},
        {"model", "FILE.onnx", "the distinct operator workloads of an ONNX model, of its fused graph (the "
                               "fusions alone) and of its optimised graphs (searched with model-only costs, and "
                               "with --db's measured ones), weighted by occurrences"},
        {"model-dtype", "T", "with --model: the precision its operators run in (default f16)"},
        {"db", "FILE", "tuning database (default ./tessera.db; created if missing)"},
        {"topk", "K", "candidates construction keeps per workload (default 10)"},
        {"trials", "N", "measurements per workload at most, those the database already holds for it included "
                        "(default: top-k; exhaustive: all; evolve: 64, or no cap below --total-trials)"},
        {"time-limit", "S", "start no new batch after S seconds"},
        {"measure", "MODE", "gpu or none (default: gpu when one is present)"},
        {"target", "NAME", "GPU spec to tune for (default: the GPU present, else h100_sxm)"},
        {"strategy", "NAME",
         "construct (default), evolve (model-guided evolutionary search for --trials measurements, default 64), "
         "exhaustive (the whole valid space, or --trials of it evenly spaced) or random "
         "(--trials of it drawn at random, for datasets)"},
        {"total-trials", "N", "one budget for the whole job, allotted to workloads by the task scheduler"},
        {"scheduler", "NAME", "with --total-trials: gradient (default) or round-robin"},
        {"seed", "N", "random, evolve: the seed (default 1; the same seed makes the same choices)"},
        {"epsilon", "E", "evolve: share of each batch picked at random instead of by the model (default 0.1)"},
        {"replay", "FILE", "answer from the measurements in FILE (a `db export --format jsonl`) instead of a GPU"},
        {"replay-pace", "F", "with --replay: wait F x each answer's recorded kernel time x repeats, as the GPU "
                             "did (1: real time; default 0: answer at once)"},
        {"batch", "N", "candidates built together and committed together (default 10)"},
        {"min-time-ms", "MS", "minimum total kernel time of each timed series (default 50)"},
        {"rank-timeout", "S", "under mpirun: a rank silent this long is lost and its candidates go to other "
                              "ranks (default 10)"},
        {"json", "", "print JSON"}},
       0,
       0,
       tune});
}

}  // namespace tessera::cli
