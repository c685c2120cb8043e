#include "costmodel/xgboost.h"

#include <xgboost/c_api.h>

#include "core/error.h"

namespace tessera::costmodel {
namespace detail {
void throw_xgb_error(const char* call, const char* file, int line) {
  throw ApiError("XGBoost", call, XGBGetLastError(), file, line);
}
}  // namespace detail

std::string xgboost_version() {
  int major = 0, minor = 0, patch = 0;
  XGBoostVersion(&major, &minor, &patch);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace tessera::costmodel
