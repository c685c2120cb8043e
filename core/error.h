// Error types shared by every module.
//
// Two kinds of failure are kept apart, as DuckDB does: a UserError is bad input (a
// malformed spec, an unknown target, a foreign database) and its message is meant for the
// person who typed it; an InternalError is a broken invariant, i.e. a bug in Tessera.
// ApiError carries a failing C API call (CUDA, NVRTC, CUPTI, SQLite, XGBoost) with the call
// text, file and line; each module wraps its C API once with a TESSERA_<API>_CALL macro.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace tessera {

/// Bad input. `what()` names the input and, where possible, what would be valid.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A violated internal invariant (a bug). `what()` carries file:line and the condition.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// A C API call that returned an error. `what()` is "<api> error in `<call>` at file:line: msg".
class ApiError : public std::runtime_error {
 public:
  ApiError(std::string api, std::string call, std::string message, const char* file, int line);
  const std::string& api() const { return api_; }          ///< "CUDA", "NVRTC", "SQLite", ...
  const std::string& call() const { return call_; }        ///< the call's source text
  const std::string& message() const { return message_; }  ///< the library's own error text

 private:
  std::string api_, call_, message_;
};

/// `message` as one line of at most about `max_bytes`: control characters (newlines, tabs, ...)
/// written as escapes (\n, \x01), and the middle of a longer text cut to " ... ". For error
/// messages that carry a user's input, which may be long or hold line breaks.
std::string one_line(std::string_view message, size_t max_bytes = 600);

namespace detail {
[[noreturn]] void throw_check_failure(const char* condition, const char* file, int line,
                                      std::string_view message);
}  // namespace detail

}  // namespace tessera

/// Internal invariant check: throws InternalError naming the condition, file and line.
#define TESSERA_CHECK(cond, msg)                                                   \
  do {                                                                             \
    if (!(cond)) ::tessera::detail::throw_check_failure(#cond, __FILE__, __LINE__, \
                                                        (msg));                    \
  } while (false)

/// Marks a path that valid data never reaches (e.g. after a switch over every enum value).
#define TESSERA_UNREACHABLE(msg) \
  ::tessera::detail::throw_check_failure("unreachable", __FILE__, __LINE__, (msg))
