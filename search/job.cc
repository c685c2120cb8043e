#include "search/job.h"

#include <fstream>
#include <sstream>

#include "db/export.h"
#include "kernels/builder.h"
#include "kernels/families.h"
#include "kernels/nvrtc.h"
#include "measure/devices.h"
#include "measure/launch.h"

namespace tessera::search {
namespace {

// What building (NVRTC) a chunk of candidates may take, in a candidate's deadline [s].
constexpr double kBuildAllowanceS = 60;

std::unique_ptr<measure::ReplayRunner> load_replay(const std::string& file, double pace) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw UserError(file + ": cannot read the replay records");
  std::stringstream text;
  text << in.rdbuf();
  std::vector<Record> recorded = db::import_jsonl(text.str(), file);
  return std::make_unique<measure::ReplayRunner>(recorded, file, pace);
}

// Whether the job measures on the GPU present (the first one with a known spec), and if not,
// why (the start of the MODEL ONLY line).
bool measures_on_gpu(const JobRequest& request, const measure::Device* dev, const std::optional<HardwareSpec>& named,
                     const measure::DeviceScan& scan, std::string* why) {
  if (request.measure == MeasureMode::kGpu) {
    if (!dev)
      throw NoGpuError("--measure gpu needs a GPU and " +
                       (scan.devices.empty() ? "none was found: " + scan.reason : std::string("its spec is unknown")));
    if (named && named->name != dev->spec->name)
      throw UserError("cannot measure for " + named->name + " on " + dev->properties.name + " (" + dev->spec->name +
                      "); use --measure none to rank for it");
    return true;
  }
  if (request.measure == MeasureMode::kNone) return false;
  if (dev && (!named || named->name == dev->spec->name)) return true;
  *why = dev ? "target " + named->name + " is not the GPU present (" + dev->spec->name + "): "
             : "no GPU found (" + (scan.devices.empty() ? scan.reason : std::string("unknown spec")) + "): ";
  return false;
}

// The GPU's workers: one per device of the same model and spec as `dev`.
std::unique_ptr<measure::GpuRunner> gpu_runner(const Job& job, const measure::Device& dev, const measure::DeviceScan& scan,
                                               int min_time_ms) {
  kernels::BuildOptions build;
  build.arch = measure::nvrtc_arch(dev.properties.cc_major, dev.properties.cc_minor);
  build.headers = kernels::device_headers();
  build.cache_dir = kernels::Builder::default_cache_dir();
  measure::PoolOptions pool;
  pool.measure.min_total_ms = min_time_ms;
  for (const measure::Device& d : scan.devices)
    if (d.spec && d.spec->name == job.spec.name && d.properties.name == dev.properties.name)
      pool.workers.push_back(measure::WorkerPool::self_worker_argv(d.index));
  return std::make_unique<measure::GpuRunner>(job.families, job.spec, build, pool);
}

}  // namespace

measure::Runner* Job::measurer() const {
  return replay ? static_cast<measure::Runner*>(replay.get()) : runner.get();
}

std::unique_ptr<Job> plan_job(const JobRequest& request) {
  auto job = std::make_unique<Job>();
  kernels::register_builtin_families(job->families);
  // A replay answers from measurements recorded on a GPU (a jsonl export), for that GPU.
  if (request.replay_pace > 0 && !request.replay) throw UserError("--replay-pace paces a --replay: give --replay FILE");
  if (request.replay) {
    if (request.measure != MeasureMode::kAuto || request.target)
      throw UserError("--replay answers for the GPU its records were measured on: drop --measure and --target");
    job->replay = load_replay(*request.replay, request.replay_pace);
  }
  std::optional<HardwareSpec> named;
  if (request.target) named = find_spec(*request.target);  // bad names are bad input, GPU or not

  measure::DeviceScan scan = measure::scan_devices();
  const measure::Device* dev = scan.devices.empty() || !scan.devices.front().spec ? nullptr : &scan.devices.front();
  std::string why;
  job->gpu = !job->replay && measures_on_gpu(request, dev, named, scan, &why);
  if (job->replay) {
    job->spec = find_spec(job->replay->target().spec_name);
    job->target = job->replay->target();
    job->notice = "REPLAY: answers come from the records in " + *request.replay + ", measured on " +
                  job->target.fingerprint() + "; a schedule they do not hold is `unmeasured`";
  } else if (job->gpu) {
    job->spec = *dev->spec;
    job->target = dev->target;
  } else {
    measure::TargetChoice choice = measure::choose_target(request.target, scan);
    job->spec = choice.spec;
    // Model-only predictions carry the spec's fingerprint, not the GPU's, even with one present.
    job->target = choice.from_device ? Target::for_spec(choice.spec, kernels::nvrtc_version()) : choice.target;
    if (!choice.note.empty()) why = choice.note + "; ";
    job->notice = "MODEL ONLY: " + why + "nothing is measured; records are `unmeasured` predictions for " +
                  job->target.fingerprint();
    job->unmeasured_why = why.empty() ? std::string("--measure none") : why.substr(0, why.size() - 2);
  }
  job->workloads = request.workloads;
  if (request.more_workloads)
    for (WorkloadEntry& e : request.more_workloads(job->spec, job->target)) job->workloads.push_back(std::move(e));
  if (job->gpu) job->runner = gpu_runner(*job, *dev, scan, request.min_time_ms);
  if (job->replay) {
    job->devices = 1;
    job->deadline_s = 1 + job->replay->max_wait_s();
  } else if (job->runner) {
    // A candidate's worst case within the pool's watchdogs: a worker start, the workload's
    // reference, then a checked run, a timed series and the vendor baseline.
    const measure::PoolOptions& pool = job->runner->pool().options();
    job->devices = static_cast<int>(pool.workers.size());
    job->deadline_s = kBuildAllowanceS + pool.start_timeout_s + pool.reference_timeout_s + 3 * pool.kernel_timeout_s;
  }
  return job;
}

}  // namespace tessera::search
