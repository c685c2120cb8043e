// Files compiled into the binary by cmake/TesseraEmbed.cmake (GPU specs, later the device
// templates), so nothing is looked up on disk at run time.
#pragma once

#include <span>
#include <string_view>

namespace tessera {

/// One embedded file: its base name and its whole text.
struct EmbeddedFile {
  std::string_view name;  ///< file name without directories, e.g. "h100_sxm.json"
  std::string_view text;  ///< the file's contents
};

/// configs/gpus/*.json, in file-name order.
std::span<const EmbeddedFile> embedded_gpu_specs();

}  // namespace tessera
