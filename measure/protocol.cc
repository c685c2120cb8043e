#include "measure/protocol.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tessera::measure::protocol {
namespace {

constexpr char kMagic[4] = {'T', 'S', 'R', 'W'};

void put_u32(uint8_t* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

}  // namespace

std::vector<uint8_t> encode(const Frame& frame) {
  std::string header = frame.header.dump();
  if (header.size() > kMaxHeaderBytes || frame.blob.size() > kMaxBlobBytes)
    throw ProtocolError("frame too large to send");
  std::vector<uint8_t> out(kPrefixBytes + header.size() + frame.blob.size());
  std::memcpy(out.data(), kMagic, 4);
  put_u32(out.data() + 4, kVersion);
  put_u32(out.data() + 8, static_cast<uint32_t>(header.size()));
  put_u32(out.data() + 12, static_cast<uint32_t>(frame.blob.size()));
  std::memcpy(out.data() + kPrefixBytes, header.data(), header.size());
  if (!frame.blob.empty()) std::memcpy(out.data() + kPrefixBytes + header.size(), frame.blob.data(), frame.blob.size());
  return out;
}

void FrameReader::feed(const uint8_t* data, size_t size) {
  if (offset_ > 0 && offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  buffer_.insert(buffer_.end(), data, data + size);
}

std::optional<Frame> FrameReader::next() {
  if (pending() < kPrefixBytes) return std::nullopt;
  const uint8_t* p = buffer_.data() + offset_;
  if (std::memcmp(p, kMagic, 4) != 0) throw ProtocolError("not a tessera worker frame (bad magic)");
  uint32_t version = get_u32(p + 4), header_bytes = get_u32(p + 8), blob_bytes = get_u32(p + 12);
  if (version != kVersion)
    throw ProtocolError("worker protocol version " + std::to_string(version) + ", expected " +
                        std::to_string(kVersion) + " (a tessera worker of another build?)");
  if (header_bytes > kMaxHeaderBytes || blob_bytes > kMaxBlobBytes) throw ProtocolError("oversized frame");
  size_t total = kPrefixBytes + size_t{header_bytes} + size_t{blob_bytes};
  if (pending() < total) return std::nullopt;
  Frame f;
  const char* h = reinterpret_cast<const char*>(p + kPrefixBytes);
  f.header = Json::parse(h, h + header_bytes, nullptr, /*allow_exceptions=*/false);
  if (!f.header.is_object() || !f.header.contains("type") || !f.header["type"].is_string())
    throw ProtocolError("frame header is not a JSON object with a \"type\"");
  f.blob.assign(p + kPrefixBytes + header_bytes, p + total);
  offset_ += total;
  // Keep the buffer from growing without bound over a long session.
  if (offset_ > (size_t{1} << 20) && offset_ * 2 > buffer_.size()) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(offset_));
    offset_ = 0;
  }
  return f;
}

void write_frame(int fd, const Frame& frame) {
  std::vector<uint8_t> bytes = encode(frame);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw ProtocolError(std::string("peer gone: write: ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

std::optional<Frame> read_frame(int fd, FrameReader& reader) {
  uint8_t chunk[1 << 16];
  while (true) {
    if (auto f = reader.next()) return f;
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ProtocolError(std::string("read: ") + std::strerror(errno));
    if (n == 0) {
      if (reader.pending() == 0) return std::nullopt;
      throw ProtocolError("stream ended inside a frame");
    }
    reader.feed(chunk, static_cast<size_t>(n));
  }
}

Frame message(std::string type, Json fields, std::vector<uint8_t> blob) {
  Frame f;
  f.header = Json::object();
  f.header["type"] = std::move(type);
  for (auto& [k, v] : fields.items()) f.header[k] = v;
  f.blob = std::move(blob);
  return f;
}

}  // namespace tessera::measure::protocol
