// Learned cost models kept in the tuning database: loading the one a job should start from and
// storing a trained one, in one place for the tuning job (evolve's guide) and `model train`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/hardware.h"
#include "core/json.h"
#include "costmodel/learned.h"
#include "db/database.h"
#include "kernels/kernel_family.h"

namespace tessera::search {

/// The latest model of `kind` stored for `target` with this build's feature layout, or nullopt.
std::optional<costmodel::LearnedModel> load_learned_model(db::TuningDatabase& db, const kernels::FamilyRegistry& families,
                                                          const HardwareSpec& spec, const std::string& kind,
                                                          const Target& target);

/// Stores `model`, trained on `target`'s records, with its evaluation figures; returns what
/// was stored (its id set).
db::StoredModel store_learned_model(db::TuningDatabase& db, const costmodel::LearnedModel& model, const Target& target,
                            const Json& metrics, const std::string& tool_version);

}  // namespace tessera::search
