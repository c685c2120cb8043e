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

db::ExportResult export_header_with_kernels(db::TuningDatabase& db, const db::ExportOptions& options,
                                            const kernels::FamilyRegistry& families) {
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
  std::string kernels_text = "\n#include <cuda.h>\n#include <cuda_runtime.h>\n\n" + kernels::standalone_prelude() + "\n";
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
    int tensors = static_cast<int>(w.expr().tensors.size());
    kernels_text += "/* " + s.workload_key + " | " + schedule.key() + " */\n" +
                    kernels::standalone_kernel(family->emit(w, schedule), identifier(s.workload_key), tensors) + "\n";
    ++emitted;
  }
  const std::string endif = "#endif /* TESSERA_SCHEDULES_H_ */\n";
  size_t pos = result.text.rfind(endif);
  TESSERA_CHECK(pos != std::string::npos, "header export without its #endif");
  result.text.insert(pos, kernels_text);
  result.kernels = emitted;  // the same workloads' #define groups are the items
  return result;
}

}  // namespace tessera::search
