// The JSON type used across Tessera: nlohmann's ordered_json, so objects keep the order in
// which fields are written (knob order is meaningful, and output reads naturally).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace tessera {

using Json = nlohmann::ordered_json;

/// Deepest nesting of arrays and objects parse_json accepts (Tessera's own files use a few).
inline constexpr size_t kMaxJsonDepth = 64;

/// Parses `text`; a syntax error, or nesting deeper than kMaxJsonDepth, becomes a UserError
/// naming `what` (a file name or "--schedule").
Json parse_json(std::string_view text, std::string_view what);

/// Reads and parses a JSON file; a missing file or bad JSON is a UserError naming `path`.
Json read_json_file(const std::string& path);

/// `obj[key]` as the requested type, or a UserError naming `what`, the key and the expected type.
int64_t json_int(const Json& obj, std::string_view key, std::string_view what);
/// json_int, and a UserError unless it lies in [lo, hi].
int64_t json_int_in(const Json& obj, std::string_view key, std::string_view what, int64_t lo, int64_t hi);
double json_number(const Json& obj, std::string_view key, std::string_view what);
std::string json_string(const Json& obj, std::string_view key, std::string_view what);

}  // namespace tessera
