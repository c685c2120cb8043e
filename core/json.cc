#include "core/json.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace tessera {
namespace {
const Json& require(const Json& obj, std::string_view key, std::string_view what) {
  if (!obj.is_object()) throw UserError(std::string(what) + ": expected a JSON object");
  auto it = obj.find(std::string(key));
  if (it == obj.end())
    throw UserError(std::string(what) + ": missing field \"" + std::string(key) + "\"");
  return *it;
}

[[noreturn]] void wrong_type(std::string_view what, std::string_view key, const char* expected,
                             const Json& value) {
  throw UserError(std::string(what) + ": field \"" + std::string(key) + "\" must be " +
                  expected + " (got " + value.dump() + ")");
}
}  // namespace

Json parse_json(std::string_view text, std::string_view what) {
  // Deep nesting is refused before parsing: nlohmann's values are destroyed and dumped
  // recursively, so about 60,000 levels (120 KB of brackets) overflow the stack.
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw UserError(std::string(what) + ": invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) +
                        " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number too large
    // nlohmann's message starts with "[json.exception.parse_error.101] "; drop the tag.
    std::string msg = e.what();
    if (auto pos = msg.find("] "); pos != std::string::npos) msg = msg.substr(pos + 2);
    throw UserError(std::string(what) + ": invalid JSON: " + msg);
  }
}

Json read_json_file(const std::string& path) { return parse_json(read_file(path), path); }

int64_t json_int(const Json& obj, std::string_view key, std::string_view what) {
  const Json& v = require(obj, key, what);
  if (!v.is_number_integer()) wrong_type(what, key, "an integer", v);
  return v.get<int64_t>();
}

int64_t json_int_in(const Json& obj, std::string_view key, std::string_view what, int64_t lo, int64_t hi) {
  const int64_t v = json_int(obj, key, what);
  if (v < lo || v > hi)
    throw UserError(std::string(what) + ": field \"" + std::string(key) + "\" = " + std::to_string(v) +
                    " is out of range (" + std::to_string(lo) + " to " + std::to_string(hi) + ")");
  return v;
}

double json_number(const Json& obj, std::string_view key, std::string_view what) {
  const Json& v = require(obj, key, what);
  if (!v.is_number()) wrong_type(what, key, "a number", v);
  return v.get<double>();
}

std::string json_string(const Json& obj, std::string_view key, std::string_view what) {
  const Json& v = require(obj, key, what);
  if (!v.is_string()) wrong_type(what, key, "a string", v);
  return v.get<std::string>();
}

}  // namespace tessera
