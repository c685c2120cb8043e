#include "kernels/nvrtc.h"

namespace tessera::kernels {

#if TESSERA_HAVE_CUDA
namespace detail {
void throw_nvrtc_error(nvrtcResult rc, const char* call, const char* file, int line) {
  throw ApiError("NVRTC", call, nvrtcGetErrorString(rc), file, line);
}
}  // namespace detail

std::string nvrtc_version() {
  int major = 0, minor = 0;
  TESSERA_NVRTC_CALL(nvrtcVersion(&major, &minor));
  return std::to_string(major) + "." + std::to_string(minor);
}
#else
std::string nvrtc_version() { return "none"; }
#endif

}  // namespace tessera::kernels
