// CUDA runtime and CUPTI access: the one wrapper for each API's calls. Only with CUDA.
#pragma once

#if TESSERA_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <cupti.h>

namespace tessera::measure::detail {
[[noreturn]] void throw_cuda_error(cudaError_t rc, const char* call, const char* file, int line);
[[noreturn]] void throw_cupti_error(CUptiResult rc, const char* call, const char* file, int line);
}  // namespace tessera::measure::detail

/// Runs a CUDA runtime call; anything but cudaSuccess throws ApiError with the error text.
#define TESSERA_CUDA_CALL(call)                                                           \
  do {                                                                                    \
    cudaError_t tessera_cuda_rc_ = (call);                                                \
    if (tessera_cuda_rc_ != cudaSuccess)                                                  \
      ::tessera::measure::detail::throw_cuda_error(tessera_cuda_rc_, #call, __FILE__, __LINE__); \
  } while (false)

/// Runs a CUPTI call; anything but CUPTI_SUCCESS throws ApiError with the result text.
#define TESSERA_CUPTI_CALL(call)                                                            \
  do {                                                                                      \
    CUptiResult tessera_cupti_rc_ = (call);                                                 \
    if (tessera_cupti_rc_ != CUPTI_SUCCESS)                                                 \
      ::tessera::measure::detail::throw_cupti_error(tessera_cupti_rc_, #call, __FILE__, __LINE__); \
  } while (false)
#endif
