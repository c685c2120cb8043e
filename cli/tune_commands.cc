// `tessera tune`: the tuning job (search/tuner) with its progress display and results table.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "core/error.h"
#include "core/version.h"
#include "db/export.h"
#include "costmodel/roofline.h"
#include "kernels/builder.h"
#include "kernels/families.h"
#include "kernels/nvrtc.h"
#include "measure/devices.h"
#include "measure/gpu_runner.h"
#include "measure/launch.h"
#include "measure/replay.h"
#include "graph/onnx_io.h"
#include "graph/optimize.h"
#include "graph/tuning_plan.h"
#include "search/tuner.h"
#include "search/workload_set.h"

namespace tessera::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_interrupt(int) {
  g_stop = true;
  ::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the job at once
}

int tune(const ParsedArgs& args) {
  // Workloads.
  std::vector<std::pair<Workload, double>> workloads;
  std::vector<std::string> labels;
  if (auto file = args.value("workloads")) {
    search::WorkloadSet set = search::load_workload_set(*file);
    for (const search::WorkloadEntry& e : set.entries) {
      workloads.emplace_back(e.workload, e.weight);
      labels.push_back(e.label);
    }
  }
  for (const std::string& spec : args.values("workload")) {
    workloads.emplace_back(Workload::parse(spec), 1.0);
    labels.push_back("");
  }
  if (workloads.empty() && !args.has("model"))
    throw UserError("nothing to tune: give --workload SPEC, --workloads FILE or --model FILE.onnx");
  search::TuneOptions options;
  options.top_k = args.integer("topk", 10, 1, 1000);
  options.trials = args.integer("trials", 0, 0, 1000000);
  options.time_limit_s = args.integer("time-limit", 0, 0, 100000000);
  options.tool_version = kVersion;
  const int min_time_ms = args.integer("min-time-ms", 50, 1, 600000);
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
  std::string measure_mode = args.value_or("measure", "auto");
  if (measure_mode != "auto" && measure_mode != "gpu" && measure_mode != "none")
    throw UserError("--measure must be gpu or none (got '" + measure_mode + "')");
  // A replay answers from measurements recorded on a GPU (a jsonl export), for that GPU.
  std::unique_ptr<measure::ReplayRunner> replay;
  if (auto file = args.value("replay")) {
    if (args.has("measure") || args.has("target"))
      throw UserError("--replay answers for the GPU its records were measured on: drop --measure and --target");
    std::ifstream in(*file, std::ios::binary);
    if (!in) throw UserError(*file + ": cannot read the replay records");
    std::stringstream text;
    text << in.rdbuf();
    std::vector<Record> recorded = db::import_jsonl(text.str(), *file);
    replay = std::make_unique<measure::ReplayRunner>(recorded, *file);
  }
  std::optional<std::string> target_name = args.value("target");
  std::optional<HardwareSpec> named;
  if (target_name) named = find_spec(*target_name);  // bad names are bad input, GPU or not
  db::TuningDatabase database = db::TuningDatabase::open(args.value_or("db", "tessera.db"));

  // Where to measure, and for which target.
  measure::DeviceScan scan = measure::scan_devices();
  const measure::Device* dev = scan.devices.empty() || !scan.devices.front().spec ? nullptr : &scan.devices.front();
  bool gpu = false;
  std::string notice;
  if (measure_mode == "gpu") {
    if (!dev) {
      std::cerr << "tessera: --measure gpu needs a GPU and "
                << (scan.devices.empty() ? "none was found: " + scan.reason : "its spec is unknown") << "\n";
      return kExitNoGpu;
    }
    if (named && named->name != dev->spec->name)
      throw UserError("cannot measure for " + named->name + " on " + dev->properties.name + " (" + dev->spec->name +
                      "); use --measure none to rank for it");
    gpu = true;
  } else if (measure_mode == "auto") {
    gpu = dev && (!named || named->name == dev->spec->name);
    if (!gpu)
      notice = dev ? "target " + named->name + " is not the GPU present (" + dev->spec->name + "): "
                   : "no GPU found (" + (scan.devices.empty() ? scan.reason : std::string("unknown spec")) + "): ";
  }
  HardwareSpec spec;
  Target target;
  if (replay) {
    gpu = false;
    spec = find_spec(replay->target().spec_name);
    target = replay->target();
  } else if (gpu) {
    spec = *dev->spec;
    target = dev->target;
  } else {
    spec = named ? *named : dev ? *dev->spec : find_spec("h100_sxm");
    target = Target::for_spec(spec, kernels::nvrtc_version());
    if (!named && !dev) notice += "ranking for h100_sxm (pass --target to choose); ";
  }
  if (replay) {
    std::cerr << "tessera: REPLAY: answers come from the records in " << *args.value("replay") << ", measured on "
              << target.fingerprint() << "; a schedule they do not hold is `unmeasured`\n";
  } else if (!gpu) {
    std::cerr << "tessera: MODEL ONLY: " << notice << "nothing is measured; records are `unmeasured` predictions for "
              << target.fingerprint() << "\n";
  }

  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  if (auto model = args.value("model")) {
    // The model's operators and those of its fused and optimised graphs: with model-only costs, and with
    // the costs this database holds for the job's target (a second job then measures the
    // rewrites the first one's measurements favour).
    graph::Graph g = graph::import_onnx(*model);
    auto entries = graph::tuning_workloads(g, families, spec,
                                           parse_dtype(args.value_or("model-dtype", "f16"), "--model-dtype"),
                                           &database, target);
    std::cerr << "tessera: " << *model << ": " << entries.size() << " distinct workloads (the model's and its "
              << "fused and optimised graphs'), weighted by occurrences\n";
    std::string name = std::filesystem::path(*model).filename().string();
    for (search::WorkloadEntry& e : entries) {
      workloads.emplace_back(e.workload, e.weight);
      labels.push_back(name + ":" + e.label);
    }
  }
  std::unique_ptr<measure::GpuRunner> runner;
  if (gpu) {
    kernels::BuildOptions build;
    build.arch = measure::nvrtc_arch(dev->properties.cc_major, dev->properties.cc_minor);
    build.headers = kernels::device_headers();
    build.cache_dir = kernels::Builder::default_cache_dir();
    measure::PoolOptions pool;
    pool.measure.min_total_ms = min_time_ms;
    for (const measure::Device& d : scan.devices)
      if (d.spec && d.spec->name == spec.name && d.properties.name == dev->properties.name)
        pool.workers.push_back(measure::WorkerPool::self_worker_argv(d.index));
    runner = std::make_unique<measure::GpuRunner>(families, spec, build, pool);
  }
  measure::Runner* measurer = replay ? static_cast<measure::Runner*>(replay.get()) : runner.get();
  search::Tuner tuner(families, spec, target, database, measurer, options);
  if (replay) tuner.allowed = [&](const Workload& w) { return replay->schedules(w); };
  const bool measured = gpu || replay;
  g_stop = false;
  ::signal(SIGINT, on_interrupt);
  tuner.should_stop = [] { return g_stop.load(); };
  const bool tty = ::isatty(2);
  tuner.on_progress = [&](const search::TuneProgress& p) {
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
  std::vector<search::WorkloadOutcome> outcomes = tuner.run(workloads);
  ::signal(SIGINT, SIG_DFL);
  if (tty) std::cerr << "\r\033[K";
  if (g_stop) std::cerr << "tessera: interrupted; every finished batch is in the database (run again to resume)\n";

  // Results.
  if (args.has("json")) {
    Json out = Json::array();
    for (const search::WorkloadOutcome& o : outcomes) {
      Json j{{"workload", o.workload.key()}, {"weight", o.weight}, {"measured_on_gpu", gpu}, {"replayed", replay != nullptr},
             {"target", target.fingerprint()},
             {"ranked", o.ranked}, {"skipped_already_in_db", o.already}, {"measured", o.measured}, {"failed", o.failed},
             {"construct_s", o.construct_s}, {"measure_s", o.measure_s}};
      if (o.predicted_best)
        j["predicted_best"] = {{"schedule", o.predicted_best->schedule.to_json()}, {"predicted_us", *o.predicted_best->predicted_us}};
      if (o.best) j["best"] = o.best->to_json();
      out.push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return g_stop ? 130 : 0;
  }
  std::cout << (replay ? "REPLAYED from " + *args.value("replay") + " (measured earlier on " + target.fingerprint() + ")"
                 : gpu ? "tuned on " + target.fingerprint()
                       : "MODEL ONLY (nothing measured) for " + target.fingerprint())
            << "\n";
  Table table(measured ? std::vector<std::string>{"workload", "best us", "vendor us", "vs vendor", "rate", "of floor",
                                             "measured", "failed", "schedule"}
                  : std::vector<std::string>{"workload", "PREDICTED us", "of floor", "ranked", "schedule"});
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const search::WorkloadOutcome& o = outcomes[i];
    std::string name = labels[i].empty() ? o.workload.key() : labels[i];
    costmodel::RooflineFloor floor = costmodel::roofline_floor(o.workload, spec);
    auto rate = [&](double us) {
      return floor.memory_bound() ? fixed(floor.min_bytes / us / 1e3, 0) + " GB/s"
                                  : fixed(floor.flops / us / 1e6, 1) + " TFLOP/s";
    };
    if (measured) {
      if (!o.best) {
        table.add({name, "-", "-", "-", "-", "-", std::to_string(o.measured), std::to_string(o.failed), "no correct result"});
        continue;
      }
      const Measurement& m = o.best->measurement;
      table.add({name, fixed(m.median_us, 2), m.vendor_us ? fixed(*m.vendor_us, 2) : "-",
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
  if (replay)
    std::cout << "(replay: " << replay->answered() << " answers from the records, " << replay->unmeasured()
              << " unmeasured)\n";
  return g_stop ? 130 : 0;
}

}  // namespace

void register_tune_commands(CommandRegistry& registry) {
  registry.add(
      {"tune",
       "Construct, rank, measure and record the best schedules of workloads",
       "(--workload SPEC ... | --workloads FILE | --model FILE.onnx) [--db FILE] [--topk K] [--trials N] [--time-limit S] "
       "[--measure gpu|none] [--target NAME] [--strategy construct|evolve|exhaustive|random] [--total-trials N] "
       "[--scheduler gradient|round-robin] [--seed N] [--epsilon E] [--replay FILE.jsonl] [--batch N] [--min-time-ms MS] [--json]",
       "For each workload: Roller-style construction ranks candidate schedules with the analytic cost model "
       "(or --strategy exhaustive|random ranks the family's whole valid space or a sample of it), schedules the database already holds "
       "for this target are skipped (a job resumes where it stopped), the rest are built and measured on the "
       "GPU in batches, and every result, failures too, is committed to the database after each batch. The "
       "table shows each workload's best beside the vendor library.\n\n"
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
        {"batch", "N", "candidates built together and committed together (default 10)"},
        {"min-time-ms", "MS", "minimum total kernel time of each timed series (default 50)"},
        {"json", "", "print JSON"}},
       0,
       0,
       tune});
}

}  // namespace tessera::cli
