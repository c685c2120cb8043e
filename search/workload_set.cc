#include "search/workload_set.h"

#include "core/error.h"

namespace tessera::search {

WorkloadSet parse_workload_set(const Json& j, std::string_view what) {
  std::string where(what);
  if (!j.is_object() || !j.contains("workloads") || !j["workloads"].is_array())
    throw UserError(where + ": expected an object with a \"workloads\" array");
  WorkloadSet set;
  if (j.contains("name")) set.name = json_string(j, "name", what);
  if (j.contains("description")) set.description = json_string(j, "description", what);
  const Json& list = j["workloads"];
  if (list.empty()) throw UserError(where + ": \"workloads\" is empty");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string item = where + ": workloads[" + std::to_string(i) + "]";
    const Json& e = list[i];
    WorkloadEntry entry;
    try {
      if (e.is_object() && e.contains("spec")) {
        for (const auto& [key, value] : e.items())
          if (key != "spec" && key != "weight" && key != "label")
            throw UserError("unknown field \"" + key + "\" beside \"spec\" (valid: spec, weight, label)");
        entry.workload = Workload::parse(json_string(e, "spec", item));
        if (e.contains("weight")) entry.weight = json_number(e, "weight", item);
        if (e.contains("label")) entry.label = json_string(e, "label", item);
      } else {
        entry.workload = Workload::from_json(e);
      }
    } catch (const UserError& err) {
      throw UserError(item + ": " + err.what());
    }
    if (!(entry.weight > 0)) throw UserError(item + ": \"weight\" must be positive");
    for (size_t k = 0; k < set.entries.size(); ++k)
      if (set.entries[k].workload == entry.workload)
        throw UserError(item + ": " + entry.workload.key() + " is already workloads[" + std::to_string(k) +
                        "] (give one entry a weight instead)");
    set.entries.push_back(std::move(entry));
  }
  return set;
}

WorkloadSet load_workload_set(const std::string& path) { return parse_workload_set(read_json_file(path), path); }

}  // namespace tessera::search
