#include "core/error.h"

namespace tessera {
ApiError::ApiError(std::string api, std::string call, std::string message, const char* file,
                   int line)
    : std::runtime_error(api + " error in `" + call + "` at " + std::string(file) +
                         ":" + std::to_string(line) + ": " + message),
      api_(std::move(api)),
      call_(std::move(call)),
      message_(std::move(message)) {}

namespace detail {
void throw_check_failure(const char* condition, const char* file, int line,
                         std::string_view message) {
  std::string text = "internal error at " + std::string(file) + ":" +
                     std::to_string(line) + ": check `" + condition + "` failed";
  if (!message.empty()) text += ": " + std::string(message);
  throw InternalError(text);
}
}  // namespace detail

std::string one_line(std::string_view message, size_t max_bytes) {
  std::string out;
  for (unsigned char c : message) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > max_bytes && max_bytes >= 16) {
    // Keep both ends: the input's name usually leads, what would be valid usually trails.
    const size_t head = max_bytes * 2 / 3, tail = max_bytes - head - 5;
    out = out.substr(0, head) + " ... " + out.substr(out.size() - tail);
  }
  return out;
}

}  // namespace tessera
