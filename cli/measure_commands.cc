// `tessera bench` (a schedule, or the database's best, beside the vendor library on the
// GPU) and `tessera worker` (the measurement worker process the pool starts).
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "core/error.h"
#include "costmodel/roofline.h"
#include "db/database.h"
#include "kernels/builder.h"
#include "kernels/families.h"
#include "measure/devices.h"
#include "measure/gpu_runner.h"
#include "measure/launch.h"
#include "measure/pool.h"
#include "measure/worker.h"

namespace tessera::cli {
namespace {


const kernels::KernelFamily* checked_family(const kernels::FamilyRegistry& families, const Schedule& s,
                                            const Workload& w) {
  const kernels::KernelFamily* family = families.find(s.family);
  if (!family) throw UserError("unknown kernel family '" + s.family + "'");
  if (!family->supports(w)) throw UserError("family " + s.family + " does not run " + w.key());
  return family;
}

int bench(const ParsedArgs& args) {
  Workload w = Workload::parse(args.positional[0]);
  if (args.has("schedule") == args.has("db")) throw UserError("give exactly one of --schedule JSON and --db FILE");
  std::optional<Schedule> schedule;
  if (auto text = args.value("schedule")) schedule = Schedule::from_json(parse_json(*text, "--schedule"), "--schedule");
  int device_index = args.integer("device", 0, 0, 1023);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  if (schedule) checked_family(families, *schedule, w);
  // A bad database file is bad input, whether or not there is a GPU.
  std::optional<db::TuningDatabase> database;
  if (auto path = args.value("db")) {
    db::OpenOptions read_only;
    read_only.read_only = true;
    database.emplace(db::TuningDatabase::open(*path, read_only));
  }
  measure::MeasureOptions options;
  options.min_total_ms = args.integer("min-time-ms", 50, 1, 600000);
  options.min_repeats = args.integer("min-repeats", 10, 1, 100000);

  measure::DeviceScan scan = measure::scan_devices();
  const measure::Device* dev = nullptr;
  for (const measure::Device& d : scan.devices)
    if (d.index == device_index) dev = &d;
  if (!dev) {
    std::cerr << "tessera: bench measures on a GPU and "
              << (scan.devices.empty() ? "none was found: " + scan.reason
                                       : "there is no GPU " + std::to_string(device_index))
              << "\n";
    return kExitNoGpu;
  }
  if (!dev->spec) throw UserError("GPU '" + dev->properties.name + "' has no known spec (tessera targets lists them)");
  if (auto path = args.value("db")) {
    db::BestResult best = database->best(w, dev->target, 1);
    if (best.records.empty())
      throw UserError(*path + ": no correct measurement of " + w.key() + " on " + dev->target.fingerprint());
    schedule = best.records.front().record.schedule;
  }
  *schedule = kernels::in_family_order(*checked_family(families, *schedule, w), *schedule, w, *dev->spec);
  kernels::BuildOptions build;
  build.arch = measure::nvrtc_arch(dev->properties.cc_major, dev->properties.cc_minor);
  build.headers = kernels::device_headers();
  build.cache_dir = kernels::Builder::default_cache_dir();
  measure::PoolOptions pool;
  pool.workers = {measure::WorkerPool::self_worker_argv(device_index)};
  pool.measure = options;
  measure::GpuRunner runner(families, *dev->spec, build, pool);
  Candidate candidate{w, *schedule, std::nullopt};
  Measurement m = runner.run(std::span<const Candidate>(&candidate, 1)).front();
  if (m.status == Status::kInvalid)
    throw UserError("schedule " + schedule->key() + " is not valid on " + dev->spec->name + ": " + m.error);

  costmodel::RooflineFloor floor = costmodel::roofline_floor(w, *dev->spec);
  auto rate = [&](double us) {
    return floor.memory_bound() ? fixed(floor.min_bytes / us / 1e3, 1) + " GB/s"
                                : fixed(floor.flops / us / 1e6, 1) + " TFLOP/s";
  };
  if (args.has("json")) {
    Json out{{"workload", w.key()}, {"target", dev->target.fingerprint()}, {"schedule", schedule->to_json()},
             {"measurement", m.to_json()}, {"roofline_floor_us", floor.floor_us}};
    if (m.status == Status::kOk && m.vendor_us) out["ratio_vs_vendor"] = *m.vendor_us / m.median_us;
    std::cout << out.dump(2) << "\n";
    return m.status == Status::kOk ? 0 : 1;
  }
  std::cout << w.key() << " on GPU " << device_index << ": " << dev->properties.name << "\n";
  std::cout << "  schedule  " << schedule->key() << "  (" << m.registers << " registers, " << m.smem_bytes
            << " B shared" << (m.spill_bytes ? ", " + std::to_string(m.spill_bytes) + " B spilled" : "") << ")\n";
  if (m.status != Status::kOk) {
    std::cout << "  result    " << status_name(m.status) << ": " << m.error << "\n";
    return 1;
  }
  std::cout << "  tessera   " << fixed(m.median_us, 2) << " us  " << rate(m.median_us) << "  "
            << fixed(100.0 * floor.floor_us / m.median_us, 1) << "% of the roofline floor (" << fixed(floor.floor_us, 2)
            << " us)  median of " << m.times_us.size() << ", spread " << fixed(100 * m.spread, 1) << "%"
            << (m.noisy ? "  NOISY" : "") << "\n";
  const Json& vendor = m.conditions.contains("vendor") ? m.conditions["vendor"] : Json::object();
  const bool copy = vendor.value("library", std::string()) == "copy";
  if (m.vendor_us) {
    std::string library = vendor.value("library", std::string("vendor"));
    library.resize(std::max<size_t>(library.size(), 8), ' ');
    std::cout << "  " << library << "  " << fixed(*m.vendor_us, 2) << " us  "
              << rate(*m.vendor_us) << "  " << fixed(100.0 * floor.floor_us / *m.vendor_us, 1)
              << "% of the roofline floor"
              << (copy ? std::string("\n")
                      : "  (best of " + std::to_string(vendor.value("algorithms_tried", 0)) + " heuristic algorithms)\n");
    std::cout << "  ratio     " << fixed(*m.vendor_us / m.median_us, 3) << "x "
              << (copy ? "the copy (1: at the copy's bandwidth)" : "the vendor library")
              << " (>1: tessera faster)\n";
    if (vendor.contains("baseline")) std::cout << "  baseline  " << vendor["baseline"].get<std::string>() << "\n";
  } else {
    std::cout << "  baseline  " << vendor.value("none", std::string("not measured")) << "\n";
  }
  if (m.conditions.contains("clocks")) std::cout << "  clocks    " << m.conditions["clocks"].dump() << "\n";
  return 0;
}

int worker(const ParsedArgs& args) { return measure::worker_main(args.integer("device", 0, 0, 1023)); }

}  // namespace

void register_measure_commands(CommandRegistry& registry) {
  registry.add({"bench",
                "Measure a schedule (or the database's best) beside the vendor library on the GPU",
                "WORKLOAD (--schedule JSON | --db FILE) [--device N] [--min-time-ms MS] [--min-repeats N] [--json]",
                "Builds the schedule's kernel, checks its output against a reference (cuBLASLt for GEMMs, "
                "the CPU reference otherwise), times it with CUPTI in an isolated worker process (L2 flushed "
                "between runs), times the vendor library (cuBLASLt for GEMMs) the same way in the same "
                "worker, and prints both, their ratio, TFLOP/s or GB/s and the share of the roofline floor.\n\n"
                "Exit status: 0 measured, 1 the kernel failed (compile error, incorrect, crashed, timeout), "
                "2 bad input, 3 no GPU.",
                {{"schedule", "JSON", "the schedule, e.g. '{\"family\":\"gemm_tc\",\"knobs\":{...}}'"},
                 {"db", "FILE", "take the fastest correct schedule of WORKLOAD on this GPU from the database"},
                 {"device", "N", "CUDA device ordinal (default 0)"},
                 {"min-time-ms", "MS", "minimum total kernel time of a timed series (default 50)"},
                 {"min-repeats", "N", "minimum timed runs (default 10)"},
                 {"json", "", "print JSON"}},
                1,
                1,
                bench});
  registry.add({"worker",
                "(Internal) measurement worker: the pool starts one per GPU; speaks a binary protocol on stdin/stdout",
                "[--device N]",
                "",
                {{"device", "N", "CUDA device ordinal (default 0)"}},
                0,
                0,
                worker});
}

}  // namespace tessera::cli
