#include "core/json.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

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
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number too large
    // nlohmann's message starts with "[json.exception.parse_error.101] "; drop the tag.
    std::string msg = e.what();
    if (auto pos = msg.find("] "); pos != std::string::npos) msg = msg.substr(pos + 2);
    throw UserError(std::string(what) + ": invalid JSON: " + msg);
  }
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json(text.str(), path);
}

int64_t json_int(const Json& obj, std::string_view key, std::string_view what) {
  const Json& v = require(obj, key, what);
  if (!v.is_number_integer()) wrong_type(what, key, "an integer", v);
  return v.get<int64_t>();
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
