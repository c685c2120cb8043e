// NVRTC access: the one wrapper for NVRTC calls, and the toolkit version it reports.
#pragma once

#include <string>

#if TESSERA_HAVE_CUDA
#include <nvrtc.h>

#include "core/error.h"

namespace tessera::kernels::detail {
[[noreturn]] void throw_nvrtc_error(nvrtcResult rc, const char* call, const char* file, int line);
}  // namespace tessera::kernels::detail

/// Runs an NVRTC call; a result other than NVRTC_SUCCESS throws ApiError with the call text.
#define TESSERA_NVRTC_CALL(call)                                                          \
  do {                                                                                    \
    nvrtcResult tessera_nvrtc_rc_ = (call);                                               \
    if (tessera_nvrtc_rc_ != NVRTC_SUCCESS)                                               \
      ::tessera::kernels::detail::throw_nvrtc_error(tessera_nvrtc_rc_, #call, __FILE__, __LINE__); \
  } while (false)
#endif

namespace tessera::kernels {

/// "13.0": the NVRTC (CUDA toolkit) version kernels are compiled with; "none" without CUDA.
std::string nvrtc_version();

}  // namespace tessera::kernels
