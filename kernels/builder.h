// Builder: CUDA source -> cubin through NVRTC, with the kernel's resource usage read back
// from ptxas, an on-disk compile cache and parallel compilation. Works without a GPU.
//
// A compile error is a status of the result (Status::kCompileError with the compiler's
// message), never an exception. The cache is keyed by the hash of source, entry, headers,
// architecture, flags and NVRTC version; entries are written to a temporary file and
// renamed into place, so concurrent jobs sharing a cache directory never see half a file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/measurement.h"
#include "kernels/kernel_family.h"

namespace tessera::kernels {

/// How the builder compiles.
struct BuildOptions {
  std::string arch = "sm_90a";                              ///< --gpu-architecture (sm_90a, sm_80, ...)
  std::vector<std::string> flags;                           ///< extra NVRTC options, e.g. "-DTILE=128"
  std::vector<std::pair<std::string, std::string>> headers; ///< (include name, text) available to #include
  std::string cache_dir;                                    ///< on-disk cache directory; "" = no cache
  int threads = 0;                                          ///< parallel compiles; 0 = hardware concurrency
};

/// What ptxas reported for one entry function.
struct ResourceUsage {
  int registers = 0;                ///< registers per thread
  int64_t smem_bytes = 0;           ///< static shared memory per block as allocated (cubin) [bytes]
  int64_t stack_bytes = 0;          ///< stack frame per thread (local memory) [bytes]
  int64_t spill_store_bytes = 0;    ///< register spill stores per thread [bytes]
  int64_t spill_load_bytes = 0;     ///< register spill loads per thread [bytes]
};

/// Resource usage of `entry` in a ptxas verbose log (`--ptxas-options=-v`); if the log
/// names no such entry, the first function's. All zero if the log has none.
ResourceUsage parse_ptxas_log(std::string_view log, std::string_view entry);

/// Registers, static shared memory and stack frame of `entry` read from the cubin itself
/// (ELF sections .nv.info and .nv.shared.<entry>); spills are not recorded there. The
/// builder's authority for these (not every NVRTC build forwards ptxas's report). All zero
/// if absent.
ResourceUsage parse_cubin_usage(std::string_view cubin, std::string_view entry);

/// One compiled kernel, or why it did not compile.
struct CompiledKernel {
  Status status = Status::kUnmeasured;  ///< kOk, or kCompileError
  std::string entry;                    ///< __global__ function name
  std::string arch;                     ///< architecture compiled for
  std::string cubin;                    ///< the binary (empty unless kOk)
  std::string log;                      ///< NVRTC and ptxas output
  ResourceUsage usage;                  ///< from ptxas (kOk only)
  bool from_cache = false;              ///< answered by the on-disk cache
  std::string error;                    ///< first error lines; set iff status != kOk
};

/// Compiles kernel sources with NVRTC.
class Builder {
 public:
  explicit Builder(BuildOptions options);
  /// Compiles one source (or answers from the cache).
  CompiledKernel compile(const KernelSource& source) const;
  /// Compiles many in parallel; results in the order of `sources`.
  std::vector<CompiledKernel> build(std::span<const KernelSource> sources) const;
  /// Cache file name (hex hash) of a source under these options.
  std::string cache_key(const KernelSource& source) const;
  const BuildOptions& options() const { return options_; }

  /// $TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera/kernels, else ~/.cache/tessera/kernels.
  static std::string default_cache_dir();

 private:
  CompiledKernel compile_uncached(const KernelSource& source) const;
  BuildOptions options_;
};

}  // namespace tessera::kernels
