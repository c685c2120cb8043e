#include "search/kernel_export.h"

#include <cctype>

#include "core/error.h"
#include "kernels/standalone.h"

namespace tessera::search {
namespace {
std::string identifier(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (std::isalnum(static_cast<unsigned char>(c))) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}
}  // namespace

KernelExport export_header_with_kernels(db::TuningDatabase& db, const db::ExportOptions& options,
                                        const kernels::FamilyRegistry& families, const std::string& header_name) {
  db::ExportResult result = db::export_database(db, db::ExportFormat::kCHeader, options);
  // The same target the #defines were written for.
  Target target;
  std::vector<Target> targets = db.targets();
  bool found = false;
  for (const Target& t : targets)
    if ((options.target_fingerprint && t.fingerprint() == *options.target_fingerprint) ||
        (!options.target_fingerprint && targets.size() == 1)) {
      target = t;
      found = true;
    }
  TESSERA_CHECK(found, "the header export succeeded without a single target");
  std::string declarations, kernels_text;
  bool any_sm90a = false;
  int64_t emitted = 0;
  for (const db::WorkloadSummary& s : db.summaries(target.fingerprint())) {
    if (options.workload_key && s.workload_key != *options.workload_key) continue;
    if (!s.best_us) continue;
    Workload w = Workload::parse(s.workload_key);
    db::BestResult best = db.best(w, target, 1);
    if (best.records.empty()) continue;
    const Schedule& schedule = best.records.front().record.schedule;
    const kernels::KernelFamily* family = families.find(schedule.family);
    if (!family || !family->supports(w)) {
      result.skipped.push_back(s.workload_key + ": no kernel family '" + schedule.family + "' in this tessera");
      continue;
    }
    // A record of a kernel this tessera no longer builds (knobs it lacks, or ones validate()
    // refuses now) is not emitted as another kernel's code.
    const HardwareSpec hw = find_spec(target.spec_name);
    std::optional<std::string> why;
    if (!kernels::has_every_knob(*family, schedule, w, hw)) why = "lacks knobs of " + schedule.family + " as built now";
    if (!why) why = family->validate(schedule, w, hw);
    if (why) {
      result.skipped.push_back(s.workload_key + ": best schedule " + schedule.key() + " cannot be built: " + *why);
      continue;
    }
    const int tensors = static_cast<int>(w.expr().tensors.size());
    const kernels::KernelSource source = family->emit(w, schedule);
    const std::string id = identifier(s.workload_key), comment = "/* " + s.workload_key + " | " + schedule.key();
    any_sm90a = any_sm90a || source.sm90a;
    declarations += comment + (source.sm90a ? "\n   (sm_90a code: runs on compute capability 9.0 GPUs only)" : "") +
                    " */\n" + kernels::standalone_declaration(source, id);
    kernels_text += comment + " */\n" + kernels::standalone_kernel(source, id, tensors) + "\n";
    ++emitted;
  }
  const std::string cu_name = header_name.substr(0, header_name.rfind('.')) + ".cu";
  const std::string endif = "#endif /* TESSERA_SCHEDULES_H_ */\n";
  size_t pos = result.text.rfind(endif);
  TESSERA_CHECK(pos != std::string::npos, "header export without its #endif");
  result.text.insert(pos, "/* Kernels: each workload's best kernel, launched by the function below, is in " + cu_name +
                              ".\n   tessera_launch_<workload>(tensors, workspace, stream) takes device pointers to "
                              "the workload's\n   inputs, then its output, TESSERA_WORKSPACE_BYTES_<WORKLOAD> bytes "
                              "of device memory (or null\n   when 0) and a cudaStream_t, and returns a cudaError_t "
                              "(cudaErrorNoKernelImageForDevice on a\n   GPU the kernel cannot run on). C and C++ "
                              "files include this header without CUDA's. */\n"
                              "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\nstruct CUstream_st; /* cudaStream_t */\n\n" +
                              declarations + "\n#ifdef __cplusplus\n}\n#endif\n\n");
  result.kernels = emitted;  // the same workloads' #define groups are the items
  // The .cu: compiled once with nvcc, linked with the C or C++ objects that call it.
  std::string build = any_sm90a ? "nvcc -arch=sm_90a -c " + cu_name +
                                      "\n   or with -gencode arch=compute_90a,code=sm_90a and any other targets (its "
                                      "sm_90a kernels\n   run on compute capability 9.0 only: elsewhere they are built "
                                      "as a trap their launch functions never reach)"
                                : "nvcc -arch=" + target.arch() + " -c " + cu_name +
                                      " (or -gencode for several targets)";
  std::string cuda = "/* Exported by tessera " + options.tool_version + ": the kernels " + header_name +
                     " declares; do not edit.\n   Build (CUDA 12.5 or later): " + build +
                     ";\n   link the object with the programs that call it (nvcc links libcudart; with another "
                     "linker add -lcudart). */\n"
                     "#include <cuda.h>\n#include <cuda_runtime.h>\n\n#include \"" + header_name + "\"\n\n" +
                     kernels::standalone_prelude() + "\n" + kernels_text;
  return {std::move(result), std::move(cuda)};
}

}  // namespace tessera::search
