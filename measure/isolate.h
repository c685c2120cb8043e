// Running a piece of GPU work in a child process of its own (fork), so that a kernel that
// faults or hangs ends that process only: the caller gets a JSON answer either way.
//
// The child must be the first to touch CUDA: a process that has initialised the CUDA runtime
// cannot use it in a forked child. Call this before anything in the process calls CUDA.
#pragma once

#include <functional>

#include "core/json.h"

namespace tessera::measure {

/// Runs `work` in a forked child and returns what it returned. When the child throws a
/// UserError: {"user_error": message}; an InternalError (a bug): {"error": message}; any other
/// exception (an ApiError from CUDA, say): {"failed": message}; when it dies (a signal, an exit
/// without answering) or runs past `timeout_s` (then it is killed): {"crashed": why}.
Json run_isolated(const std::function<Json()>& work, double timeout_s);

}  // namespace tessera::measure
