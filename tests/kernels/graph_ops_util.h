// What the generic kernels' CPU and GPU tests share.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/graph_ops.h"

namespace tessera::kernels::testing {

// Contiguous row-major strides of `shape`, from element `offset`.
inline StridedRef dense(const std::vector<int64_t>& shape, int64_t offset = 0) {
  StridedRef r{offset, std::vector<int64_t>(shape.size(), 1)};
  for (size_t d = shape.size(); d-- > 1;) r.strides[d - 1] = r.strides[d] * shape[d];
  return r;
}

}  // namespace tessera::kernels::testing
