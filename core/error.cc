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
}  // namespace tessera
