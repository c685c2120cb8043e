// CUDA driver API entry points, reached through the runtime (cudaGetDriverEntryPointByVersion)
// so the binary never links libcuda.so.1 and still starts on machines without a driver.
#pragma once

namespace tessera::measure {

/// Address of driver function `symbol` (e.g. "cuTensorMapEncodeTiled") as of the CUDA
/// version `cuda_version` (e.g. 12000 for 12.0). Throws ApiError when there is no driver or
/// the driver lacks it; with CUDA off, a UserError saying the build has no CUDA support.
void* driver_entry_point(const char* symbol, unsigned cuda_version);

/// driver_entry_point cast to the function-pointer type of the symbol, e.g.
/// `driver_function<decltype(&cuDriverGetVersion)>("cuDriverGetVersion", 12000)`.
template <typename Fn>
Fn driver_function(const char* symbol, unsigned cuda_version) {
  return reinterpret_cast<Fn>(driver_entry_point(symbol, cuda_version));
}

}  // namespace tessera::measure
