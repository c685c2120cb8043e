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

// A 3x3 pooling window, stride 2, padding 1 on every side: max or average (with or without
// count_include_pad).
inline PoolWindow window(bool max, bool include_pad) {
  PoolWindow w;
  w.max = max;
  w.count_include_pad = include_pad;
  w.kh = w.kw = 3;
  w.sh = w.sw = 2;
  w.pad_top = w.pad_left = w.pad_bottom = w.pad_right = 1;
  return w;
}

}  // namespace tessera::kernels::testing
