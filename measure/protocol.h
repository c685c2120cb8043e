// The parent <-> worker wire format: versioned, length-prefixed frames over pipes.
//
// A frame is a 16-byte prefix, then a JSON header, then an optional binary blob (a cubin):
//   "TSRW"  u32 version  u32 header bytes  u32 blob bytes   (integers little-endian)
// A frame of another version, an oversized frame or a header that is not a JSON object is a
// ProtocolError: the peer is not a worker of this build, and it is restarted, never trusted.
//
// Messages (header "type"):
//   worker -> parent  hello     {pid, device, target} or {pid, error} when it cannot measure
//   parent -> worker  measure   {id, workload, schedule, plan, workspace_bytes, options} + cubin blob
//   worker -> parent  progress  {id, phase: "reference" | "kernel" | "vendor"} (resets the watchdog)
//   worker -> parent  result    {id, measurement, exiting?}; exiting: the worker stops after this
//   parent -> worker  shutdown  {}
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/json.h"

namespace tessera::measure::protocol {

inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kMaxHeaderBytes = 64u << 20;  ///< 64 MiB
inline constexpr uint32_t kMaxBlobBytes = 1u << 30;     ///< 1 GiB
inline constexpr size_t kPrefixBytes = 16;

/// A broken peer or a malformed frame.
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Frame {
  Json header = Json::object();  ///< always has "type"
  std::vector<uint8_t> blob;
};

/// The frame's bytes on the wire.
std::vector<uint8_t> encode(const Frame& frame);

/// Accumulates bytes read from a pipe and cuts them into frames.
class FrameReader {
 public:
  /// Appends bytes as read from the peer.
  void feed(const uint8_t* data, size_t size);
  /// The next complete frame, or nullopt until more bytes arrive. Throws ProtocolError.
  std::optional<Frame> next();
  /// Bytes received but not yet returned as a frame.
  size_t pending() const { return buffer_.size() - offset_; }

 private:
  std::vector<uint8_t> buffer_;
  size_t offset_ = 0;
};

/// Writes the whole frame to `fd` (blocking). Throws ProtocolError when the peer is gone.
void write_frame(int fd, const Frame& frame);

/// Reads one whole frame from `fd` (blocking); nullopt at a clean end of stream between
/// frames. Throws ProtocolError on a truncated or malformed frame. For the worker's side.
std::optional<Frame> read_frame(int fd, FrameReader& reader);

/// Makes a frame with header {"type": type, ...fields}.
Frame message(std::string type, Json fields = Json::object(), std::vector<uint8_t> blob = {});

}  // namespace tessera::measure::protocol
