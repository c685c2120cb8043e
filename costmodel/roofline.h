// Roofline floor: the time below which no kernel can run a workload on a GPU, the larger of
// its arithmetic at the peak rate and its minimum DRAM traffic at full bandwidth.
#pragma once

#include "core/hardware.h"
#include "core/workload.h"

namespace tessera::costmodel {

/// The floor and the two bounds it is made of.
struct RooflineFloor {
  InstrKind instr = InstrKind::kFmaF32;  ///< instruction kind whose peak bounds the arithmetic
  double flops = 0;                      ///< TensorExpr::flop_count() [FLOP]
  double min_bytes = 0;                  ///< TensorExpr::min_bytes() [bytes]
  double compute_us = 0;                 ///< flops at the peak of `instr` [us]
  double memory_us = 0;                  ///< min_bytes at DRAM bandwidth [us]
  double floor_us = 0;                   ///< max(compute_us, memory_us) [us]
  bool memory_bound() const { return memory_us >= compute_us; }
};

/// The instruction kind that runs `w`'s arithmetic: f16/bf16 matmul, batch_matmul and conv2d
/// on tensor cores (tf32 when allowed for f32); everything else as f32 FMA.
InstrKind bounding_instruction(const Workload& w);

/// Floor of `w` on `hw`. A GPU without the needed tensor-core kind falls back to fma_f32.
RooflineFloor roofline_floor(const Workload& w, const HardwareSpec& hw);

}  // namespace tessera::costmodel
