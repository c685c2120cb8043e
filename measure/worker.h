// The measurement worker (`tessera worker --device N`): one process per GPU, started by the
// WorkerPool with the protocol (measure/protocol.h) on its stdin and stdout. For each
// request it checks the kernel against a reference, times it with CUPTI, and times the
// vendor library on the same workload, all on its own CUDA context, so a kernel that faults
// or hangs takes down only this process.
#pragma once

namespace tessera::measure {

/// Serves requests on fds 0 (in) and 1 (out) until shutdown or end of input; returns the
/// exit code. Anything else the process writes to stdout is sent to stderr instead.
int worker_main(int device);

}  // namespace tessera::measure
