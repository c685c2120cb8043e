#include "measure/driver_api.h"

#include <string>

#include "core/error.h"
#include "measure/cuda_call.h"

namespace tessera::measure {

#if TESSERA_HAVE_CUDA
void* driver_entry_point(const char* symbol, unsigned cuda_version) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  TESSERA_CUDA_CALL(cudaGetDriverEntryPointByVersion(symbol, &fn, cuda_version, cudaEnableDefault, &found));
  if (found != cudaDriverEntryPointSuccess || fn == nullptr)
    throw ApiError("CUDA", "cudaGetDriverEntryPointByVersion(\"" + std::string(symbol) + "\")",
                   found == cudaDriverEntryPointVersionNotSufficent ? "the driver is older than the requested version"
                                                                     : "the driver has no such symbol",
                   __FILE__, __LINE__);
  return fn;
}
#else
void* driver_entry_point(const char* symbol, unsigned) {
  throw UserError(std::string("driver function ") + symbol + " needs a GPU: this tessera was built without CUDA support");
}
#endif

}  // namespace tessera::measure
