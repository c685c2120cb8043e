// Self-contained CUDA source for a chosen kernel, for use outside Tessera: the device
// templates inlined (no includes left but CUDA's own), the kernel renamed and placed in its
// own namespace so several can share a file, and a host launch function.
#pragma once

#include <string>

#include "kernels/kernel_family.h"

namespace tessera::kernels {

/// `source` as definitions for an exported .cu file. `id` (a C identifier) names the namespace
/// `tessera_<id>` of its kernels and the host function
/// `extern "C" int tessera_launch_<id>(void* const* tensors, void* workspace, cudaStream_t stream)`,
/// which takes device pointers in the workload's tensor order (inputs, then the output) and
/// workspace_bytes of device scratch memory, runs the source's whole launch plan and returns
/// the first failing call's cudaError_t (cudaErrorNoKernelImageForDevice on a GPU the code
/// cannot run on). The file must have `#include <cuda.h>`, `#include <cuda_runtime.h>` and
/// standalone_prelude() before it. `tensors` is the number of tensor arguments.
std::string standalone_kernel(const KernelSource& source, const std::string& id, int tensors);

/// What a C or C++ file needs to call standalone_kernel's launch function, without CUDA's
/// headers: `#define TESSERA_WORKSPACE_BYTES_<ID> <bytes>ULL` and the function's prototype
/// (cudaStream_t is `struct CUstream_st*`; the int is a cudaError_t). Goes inside extern "C".
std::string standalone_declaration(const KernelSource& source, const std::string& id);

/// The device templates every standalone kernel needs, inlined once per file.
std::string standalone_prelude();

}  // namespace tessera::kernels
