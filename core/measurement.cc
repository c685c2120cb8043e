#include "core/measurement.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"

namespace tessera {
namespace {
constexpr std::array kStatuses = {Status::kOk,         Status::kCompileError, Status::kInvalid,
                                  Status::kLaunchError, Status::kIncorrect,   Status::kTimeout,
                                  Status::kCrashed,    Status::kUnmeasured};

std::optional<double> optional_number(const Json& j, std::string_view key, std::string_view what) {
  if (!j.contains(key) || j[std::string(key)].is_null()) return std::nullopt;
  return json_number(j, key, what);
}

Json optional_json(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
}  // namespace

double quantile(const std::vector<double>& sorted, double q) {
  TESSERA_CHECK(!sorted.empty(), "quantile of no samples");
  double pos = q * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] * (1 - frac) + sorted[hi] * frac;
}

std::string_view status_name(Status s) {
  switch (s) {
    case Status::kOk: return "ok";
    case Status::kCompileError: return "compile_error";
    case Status::kInvalid: return "invalid";
    case Status::kLaunchError: return "launch_error";
    case Status::kIncorrect: return "incorrect";
    case Status::kTimeout: return "timeout";
    case Status::kCrashed: return "crashed";
    case Status::kUnmeasured: return "unmeasured";
  }
  TESSERA_UNREACHABLE("unknown Status");
}

Status parse_status(std::string_view text, std::string_view what) {
  for (Status s : kStatuses)
    if (status_name(s) == text) return s;
  throw UserError(std::string(what) + ": unknown status '" + std::string(text) +
                  "' (valid: ok, compile_error, invalid, launch_error, incorrect, timeout, crashed, unmeasured)");
}

void Measurement::set_times(std::vector<double> samples_us) {
  TESSERA_CHECK(!samples_us.empty(), "no samples");
  times_us = std::move(samples_us);
  std::vector<double> sorted = times_us;
  std::sort(sorted.begin(), sorted.end());
  median_us = quantile(sorted, 0.5);
  min_us = sorted.front();
  max_us = sorted.back();
  spread = median_us > 0 ? (quantile(sorted, 0.9) - quantile(sorted, 0.1)) / median_us : 0;
}

Measurement Measurement::from_json(const Json& j, std::string_view what) {
  Measurement m;
  m.status = parse_status(json_string(j, "status", what), what);
  if (j.contains("times_us")) {
    if (!j["times_us"].is_array()) throw UserError(std::string(what) + ": \"times_us\" must be an array");
    for (const Json& t : j["times_us"]) {
      if (!t.is_number()) throw UserError(std::string(what) + ": \"times_us\" must hold numbers");
      m.times_us.push_back(t.get<double>());
    }
  }
  m.median_us = json_number(j, "median_us", what);
  m.min_us = json_number(j, "min_us", what);
  m.max_us = json_number(j, "max_us", what);
  m.spread = json_number(j, "spread", what);
  m.registers = static_cast<int>(json_int_in(j, "registers", what, 0, 65536));
  m.smem_bytes = json_int(j, "smem_bytes", what);
  m.spill_bytes = json_int(j, "spill_bytes", what);
  m.vendor_us = optional_number(j, "vendor_us", what);
  if (j.contains("error")) m.error = json_string(j, "error", what);
  if (j.contains("noisy")) {
    if (!j["noisy"].is_boolean()) throw UserError(std::string(what) + ": \"noisy\" must be true or false");
    m.noisy = j["noisy"].get<bool>();
  }
  if (j.contains("conditions")) {
    if (!j["conditions"].is_object()) throw UserError(std::string(what) + ": \"conditions\" must be an object");
    m.conditions = j["conditions"];
  }
  return m;
}

Json Measurement::to_json() const {
  Json j;
  j["status"] = status_name(status);
  j["times_us"] = times_us;
  j["median_us"] = median_us;
  j["min_us"] = min_us;
  j["max_us"] = max_us;
  j["spread"] = spread;
  j["registers"] = registers;
  j["smem_bytes"] = smem_bytes;
  j["spill_bytes"] = spill_bytes;
  j["vendor_us"] = optional_json(vendor_us);
  j["error"] = error;
  j["noisy"] = noisy;
  j["conditions"] = conditions;
  return j;
}

Record Record::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) throw UserError(std::string(what) + ": a record must be a JSON object");
  for (const char* key : {"workload", "target", "schedule", "measurement"})
    if (!j.contains(key)) throw UserError(std::string(what) + ": missing field \"" + key + "\"");
  Record r;
  r.workload = Workload::from_json(j["workload"]);
  r.target = Target::from_json(j["target"], what);
  r.schedule = Schedule::from_json(j["schedule"], what);
  r.measurement = Measurement::from_json(j["measurement"], what);
  r.predicted_us = optional_number(j, "predicted_us", what);
  r.feature_version = static_cast<int>(json_int_in(j, "feature_version", what, 0, 1 << 20));
  r.tool_version = json_string(j, "tool_version", what);
  r.timestamp_s = json_int(j, "timestamp_s", what);
  r.validate(what);
  return r;
}

bool is_identifier(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  if (!alpha(name[0])) return false;
  for (char c : name)
    if (!alpha(c) && !(c >= '0' && c <= '9')) return false;
  return true;
}

namespace {

[[noreturn]] void out_of_range(std::string_view what, std::string_view field, const std::string& value,
                               std::string_view valid) {
  throw UserError(std::string(what) + ": " + std::string(field) + " " + value + " is out of range (" +
                  std::string(valid) + ")");
}

void check_count(std::string_view what, std::string_view field, int64_t v, int64_t hi) {
  if (v < 0 || v > hi) out_of_range(what, field, std::to_string(v), "0 to " + std::to_string(hi));
}

void check_time(std::string_view what, std::string_view field, double v, bool positive) {
  if (!std::isfinite(v) || v < 0 || (positive && v == 0))
    out_of_range(what, field, std::isnan(v) ? "nan" : std::to_string(v),
                 positive ? "a finite positive number of microseconds" : "a finite number of microseconds, >= 0");
}

// Printable text (no control characters), at most `max` bytes: these strings reach exported
// files' comments and headers.
void check_text(std::string_view what, std::string_view field, const std::string& v, size_t max) {
  if (v.size() > max)
    throw UserError(std::string(what) + ": " + std::string(field) + " is " + std::to_string(v.size()) +
                    " bytes long (at most " + std::to_string(max) + ")");
  for (unsigned char c : v)
    if (c < 0x20 || c == 0x7f)
      throw UserError(std::string(what) + ": " + std::string(field) + " holds a control character (printable text only)");
}

}  // namespace

void Record::validate(std::string_view what) const {
  if (!is_identifier(schedule.family))
    throw UserError(std::string(what) + ": kernel family \"" + one_line(schedule.family, 80) +
                    "\" is not a name (letters, digits and '_', at most 64)");
  for (size_t i = 0; i < schedule.knobs.size(); ++i) {
    const std::string& name = schedule.knobs[i].first;
    if (!is_identifier(name))
      throw UserError(std::string(what) + ": knob \"" + one_line(name, 80) +
                      "\" is not a name (letters, digits and '_', at most 64)");
    for (size_t k = 0; k < i; ++k)
      if (schedule.knobs[k].first == name) throw UserError(std::string(what) + ": knob \"" + name + "\" appears twice");
  }
  const Measurement& m = measurement;
  const bool ok = m.status == Status::kOk;
  for (double t : m.times_us) check_time(what, "a sample of times_us", t, true);
  check_time(what, "median_us", m.median_us, ok);
  check_time(what, "min_us", m.min_us, false);
  check_time(what, "max_us", m.max_us, false);
  if (!std::isfinite(m.spread) || m.spread < 0)
    out_of_range(what, "spread", std::to_string(m.spread), "a finite share, >= 0");
  if (m.vendor_us) check_time(what, "vendor_us", *m.vendor_us, true);
  if (predicted_us) check_time(what, "predicted_us", *predicted_us, false);
  check_count(what, "registers", m.registers, 65536);
  check_count(what, "smem_bytes", m.smem_bytes, int64_t{1} << 32);
  check_count(what, "spill_bytes", m.spill_bytes, int64_t{1} << 40);
  check_text(what, "error", m.error, 1 << 16);
  check_count(what, "target cc_major", target.cc_major, 99);
  check_count(what, "target cc_minor", target.cc_minor, 99);
  check_count(what, "target sm_count", target.sm_count, 1 << 20);
  if (target.gpu_name.empty()) throw UserError(std::string(what) + ": target gpu_name is empty");
  check_text(what, "target gpu_name", target.gpu_name, 256);
  check_text(what, "target spec_name", target.spec_name, 256);
  check_text(what, "target driver_version", target.driver_version, 64);
  check_text(what, "target runtime_version", target.runtime_version, 64);
  check_text(what, "target toolkit_version", target.toolkit_version, 64);
  check_text(what, "tool_version", tool_version, 256);
  check_count(what, "feature_version", feature_version, 1 << 20);
  check_count(what, "timestamp_s", timestamp_s, int64_t{1} << 40);
}

Json Record::to_json() const {
  Json j;
  j["workload"] = workload.to_json();
  j["target"] = target.to_json();
  j["schedule"] = schedule.to_json();
  j["measurement"] = measurement.to_json();
  j["predicted_us"] = optional_json(predicted_us);
  j["feature_version"] = feature_version;
  j["tool_version"] = tool_version;
  j["timestamp_s"] = timestamp_s;
  return j;
}

}  // namespace tessera
