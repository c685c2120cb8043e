// Files Tessera reads and writes for its users: every output is written atomically (a unique
// temporary file in the same directory, then a rename), so a failure leaves the old file as it
// was, and nothing but a regular file is ever replaced.
#pragma once

#include <string>
#include <string_view>

namespace tessera {

/// Writes `bytes` to `path`: into a temporary file created exclusively, with a unique name, in
/// the directory of the file `path` names (a symbolic link is followed, and stays), flushed to
/// disk, then renamed over it. On failure the temporary file is removed and `path` is left as
/// it was. A `path` that exists and is not a regular file (a directory, a device, a socket) is
/// refused. Errors are UserErrors naming `path` and `what` (e.g. "the optimised model").
void write_file_atomic(const std::string& path, std::string_view bytes, std::string_view what);

/// The whole of a regular file; a UserError naming `path` when it cannot be read (missing, a
/// directory, unreadable).
std::string read_file(const std::string& path);

}  // namespace tessera
