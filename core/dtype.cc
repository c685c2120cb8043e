#include "core/dtype.h"

#include "core/error.h"

namespace tessera {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF16: return "f16";
    case DType::kBF16: return "bf16";
    case DType::kF32: return "f32";
  }
  TESSERA_UNREACHABLE("unknown DType");
}

int64_t dtype_bytes(DType t) { return t == DType::kF32 ? 4 : 2; }

DType parse_dtype(std::string_view text, std::string_view what) {
  for (DType t : {DType::kF16, DType::kBF16, DType::kF32})
    if (text == dtype_name(t)) return t;
  throw UserError(std::string(what) + ": unknown dtype '" + std::string(text) +
                  "' (valid: f16, bf16, f32)");
}

}  // namespace tessera
