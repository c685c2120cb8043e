#include "measure/gpu_runner.h"

namespace tessera::measure {

GpuRunner::GpuRunner(const kernels::FamilyRegistry& families, HardwareSpec spec, kernels::BuildOptions build,
                     PoolOptions pool)
    : families_(families), spec_(std::move(spec)), builder_(std::move(build)), pool_(std::move(pool)) {}

std::vector<Measurement> GpuRunner::run(std::span<const Candidate> candidates) {
  std::vector<Measurement> out(candidates.size());
  std::vector<size_t> emitted;  // candidate index of each source
  std::vector<kernels::KernelSource> sources;
  auto finish = [&](size_t i, Status s, std::string error) {
    out[i].status = s;
    out[i].error = std::move(error);
    if (on_result) on_result(i, out[i]);
  };
  for (size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    const kernels::KernelFamily* family = families_.find(c.schedule.family);
    if (!family) {
      finish(i, Status::kInvalid, "unknown kernel family '" + c.schedule.family + "'");
      continue;
    }
    if (!family->supports(c.workload)) {
      finish(i, Status::kInvalid, "family " + c.schedule.family + " does not run " + c.workload.key());
      continue;
    }
    std::string want, got;
    for (const kernels::KnobDomain& d : family->space(c.workload, spec_)) want += d.name + ",";
    for (const auto& knob : c.schedule.knobs) got += knob.first + ",";
    if (want != got) {
      finish(i, Status::kInvalid, "knobs " + got + " are not the family's " + want);
      continue;
    }
    if (auto why = family->validate(c.schedule, c.workload, spec_)) {
      finish(i, Status::kInvalid, *why);
      continue;
    }
    emitted.push_back(i);
    sources.push_back(family->emit(c.workload, c.schedule));
  }
  std::vector<kernels::CompiledKernel> built = builder_.build(sources);
  std::vector<Job> jobs;
  std::vector<size_t> job_candidate;
  for (size_t j = 0; j < built.size(); ++j) {
    size_t i = emitted[j];
    const kernels::ResourceUsage& u = built[j].usage;
    out[i].registers = u.registers;
    out[i].smem_bytes = u.smem_bytes + sources[j].launch.dynamic_smem_bytes;
    out[i].spill_bytes = u.spill_store_bytes + u.spill_load_bytes;
    if (built[j].status != Status::kOk) {
      finish(i, Status::kCompileError, built[j].error);
      continue;
    }
    jobs.push_back({candidates[i].workload, candidates[i].schedule, std::move(sources[j]), std::move(built[j].cubin)});
    job_candidate.push_back(i);
  }
  std::vector<Measurement> measured = pool_.run(jobs, [&](size_t k, const Measurement& m) {
    size_t i = job_candidate[k];
    Measurement full = m;
    full.registers = out[i].registers;
    full.smem_bytes = out[i].smem_bytes;
    full.spill_bytes = out[i].spill_bytes;
    out[i] = std::move(full);
    if (on_result) on_result(i, out[i]);
  });
  (void)measured;
  return out;
}

}  // namespace tessera::measure
