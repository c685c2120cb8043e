#include "search/learned_models.h"

#include "core/clock.h"

namespace tessera::search {

std::optional<costmodel::LearnedModel> load_learned_model(db::TuningDatabase& db, const kernels::FamilyRegistry& families,
                                                          const HardwareSpec& spec, const std::string& kind,
                                                          const Target& target) {
  std::optional<db::StoredModel> stored = db.latest_model(kind, target.fingerprint(), costmodel::kFeatureVersion);
  if (!stored) return std::nullopt;
  return costmodel::LearnedModel::deserialize(families, spec, stored->kind, stored->blob);
}

db::StoredModel store_learned_model(db::TuningDatabase& db, const costmodel::LearnedModel& model, const Target& target,
                            const Json& metrics, const std::string& tool_version) {
  db::StoredModel m;
  m.kind = model.options().kind();
  m.target = target;
  m.feature_version = costmodel::kFeatureVersion;
  m.tool_version = tool_version;
  m.created_s = now_s();
  m.metrics_json = metrics.dump();
  m.blob = model.serialize();
  m.id = db.save_model(m);
  return m;
}

}  // namespace tessera::search
