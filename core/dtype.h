// Element types of tensors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tessera {

/// Storage type of a tensor's elements.
enum class DType { kF16, kBF16, kF32 };

/// Canonical spelling: "f16", "bf16", "f32".
std::string_view dtype_name(DType t);

/// Bytes per element.
int64_t dtype_bytes(DType t);

/// Parses a canonical spelling; anything else is a UserError naming `what` and the valid set.
DType parse_dtype(std::string_view text, std::string_view what);

}  // namespace tessera
