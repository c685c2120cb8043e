#include "core/schedule.h"

#include "core/error.h"
#include "core/hash.h"

namespace tessera {

std::optional<int64_t> Schedule::find(std::string_view name) const {
  for (const auto& [k, v] : knobs)
    if (k == name) return v;
  return std::nullopt;
}

int64_t Schedule::get(std::string_view name) const {
  auto v = find(name);
  TESSERA_CHECK(v.has_value(), "schedule " + key() + " has no knob '" + std::string(name) + "'");
  return *v;
}

std::string Schedule::key() const {
  std::string out = family + ":";
  for (size_t i = 0; i < knobs.size(); ++i)
    out += (i ? "," : "") + knobs[i].first + "=" + std::to_string(knobs[i].second);
  return out;
}

uint64_t Schedule::hash() const { return stable_hash(key()); }

Schedule Schedule::from_json(const Json& j, std::string_view what) {
  Schedule s;
  s.family = json_string(j, "family", what);
  if (s.family.empty()) throw UserError(std::string(what) + ": field \"family\" must not be empty");
  if (!j.contains("knobs") || !j["knobs"].is_object())
    throw UserError(std::string(what) + ": field \"knobs\" must be an object of integers");
  for (const auto& [name, value] : j["knobs"].items()) {
    if (!value.is_number_integer())
      throw UserError(std::string(what) + ": knob \"" + name + "\" must be an integer (got " +
                      value.dump() + ")");
    s.knobs.emplace_back(name, value.get<int64_t>());
  }
  return s;
}

Json Schedule::to_json() const {
  Json knob_obj = Json::object();
  for (const auto& [k, v] : knobs) knob_obj[k] = v;
  return Json{{"family", family}, {"knobs", knob_obj}};
}

}  // namespace tessera
