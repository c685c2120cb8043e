// XGBoost C API access: the one wrapper for its calls, and the library version.
#pragma once

#include <string>

namespace tessera::costmodel::detail {
[[noreturn]] void throw_xgb_error(const char* call, const char* file, int line);
}  // namespace tessera::costmodel::detail

/// Runs an XGBoost C API call; a non-zero return throws ApiError with XGBGetLastError().
#define TESSERA_XGB_CALL(call)                                                          \
  do {                                                                                  \
    if ((call) != 0) ::tessera::costmodel::detail::throw_xgb_error(#call, __FILE__, __LINE__); \
  } while (false)

namespace tessera::costmodel {

/// "1.7.4": the XGBoost library the learned model runs on.
std::string xgboost_version();

}  // namespace tessera::costmodel
