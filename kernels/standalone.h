// Self-contained CUDA source for a chosen kernel, for use outside Tessera: the device
// templates inlined (no includes left but CUDA's own), the kernel renamed and placed in its
// own namespace so several can share a file, and a host launch function.
#pragma once

#include <string>

#include "kernels/kernel_family.h"

namespace tessera::kernels {

/// `source` as a standalone translation-unit fragment. `id` (a C identifier) names the
/// namespace `tessera_<id>`, the constant `tessera_workspace_bytes_<id>` and the host function
/// `tessera_launch_<id>(void* const* tensors, void* workspace, cudaStream_t stream)`, which
/// takes device pointers in the workload's tensor order (inputs, then the output) and that many
/// bytes of device scratch memory, runs the source's whole launch plan and returns the first
/// failing launch's cudaError_t. Include the result once the file has
/// `#include <cuda_runtime.h>` and standalone_prelude().
/// `tensors` is the number of tensor arguments (inputs and output).
std::string standalone_kernel(const KernelSource& source, const std::string& id, int tensors);

/// The device templates every standalone kernel needs, inlined once per file.
std::string standalone_prelude();

}  // namespace tessera::kernels
