#include "costmodel/roofline.h"

#include <algorithm>

namespace tessera::costmodel {

InstrKind bounding_instruction(const Workload& w) {
  bool contraction = w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul ||
                     w.kind == OpKind::kConv2d;
  if (!contraction) return InstrKind::kFmaF32;
  // Depthwise convolutions have too little reuse per output for tensor cores.
  if (w.kind == OpKind::kConv2d && w.conv2d().groups == w.conv2d().c && w.conv2d().groups > 1)
    return InstrKind::kFmaF32;
  if (w.dtype == DType::kF32) return w.allow_tf32 ? InstrKind::kTensorTF32 : InstrKind::kFmaF32;
  return InstrKind::kTensorF16;
}

RooflineFloor roofline_floor(const Workload& w, const HardwareSpec& hw) {
  TensorExpr e = w.expr();
  RooflineFloor r;
  r.instr = bounding_instruction(w);
  if (!hw.peak(r.instr)) r.instr = InstrKind::kFmaF32;
  r.flops = e.flop_count();
  r.min_bytes = e.min_bytes();
  r.compute_us = r.flops / (*hw.peak(r.instr) * 1e12) * 1e6;
  r.memory_us = r.min_bytes / (hw.dram_bandwidth_gbps * 1e9) * 1e6;
  r.floor_us = std::max(r.compute_us, r.memory_us);
  return r;
}

}  // namespace tessera::costmodel
