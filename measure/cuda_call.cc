#include "measure/cuda_call.h"

#if TESSERA_HAVE_CUDA
#include <string>

#include "core/error.h"

namespace tessera::measure::detail {

void throw_cuda_error(cudaError_t rc, const char* call, const char* file, int line) {
  throw ApiError("CUDA", call, std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc),
                 file, line);
}

void throw_cupti_error(CUptiResult rc, const char* call, const char* file, int line) {
  const char* text = nullptr;
  if (cuptiGetResultString(rc, &text) != CUPTI_SUCCESS || text == nullptr) text = "unknown CUPTI result";
  throw ApiError("CUPTI", call, text, file, line);
}

}  // namespace tessera::measure::detail
#endif
