// Stable 64-bit hashing for keys stored in databases (std::hash is not stable across builds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

/// FNV-1a 64-bit hash of `text`; identical on every platform and build.
uint64_t stable_hash(std::string_view text);

/// `value` as 16 lower-case hex digits.
std::string hex64(uint64_t value);

}  // namespace tessera
