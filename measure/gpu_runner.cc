#include "measure/gpu_runner.h"

namespace tessera::measure {

GpuRunner::GpuRunner(const kernels::FamilyRegistry& families, HardwareSpec spec, kernels::BuildOptions build,
                     PoolOptions pool)
    : families_(families), spec_(std::move(spec)), builder_(std::move(build)), pool_(std::move(pool)) {}

std::optional<std::string> GpuRunner::invalid(const Candidate& c) const {
  const kernels::KernelFamily* family = families_.find(c.schedule.family);
  if (!family) return "unknown kernel family '" + c.schedule.family + "'";
  if (!family->supports(c.workload)) return "family " + c.schedule.family + " does not run " + c.workload.key();
  std::string want, got;
  for (const kernels::KnobDomain& d : family->space(c.workload, spec_)) want += d.name + ",";
  for (const auto& knob : c.schedule.knobs) got += knob.first + ",";
  if (want != got) return "knobs " + got + " are not the family's " + want;
  return family->validate(c.schedule, c.workload, spec_);
}

std::optional<Measurement> GpuRunner::settle(const Candidate& candidate) {
  std::optional<std::string> why = invalid(candidate);
  if (!why) return std::nullopt;
  Measurement m;
  m.status = Status::kInvalid;
  m.error = std::move(*why);
  return m;
}

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
    if (std::optional<std::string> why = invalid(c)) {
      finish(i, Status::kInvalid, std::move(*why));
      continue;
    }
    emitted.push_back(i);
    sources.push_back(families_.find(c.schedule.family)->emit(c.workload, c.schedule));
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
