#include "costmodel/roofline.h"

#include <gtest/gtest.h>

namespace tessera::costmodel {
namespace {

TEST(Roofline, LargeGemmIsComputeBoundOnTensorCores) {
  RooflineFloor r = roofline_floor(Workload::parse("matmul:m=4096,n=4096,k=4096:f16"), find_spec("h100_sxm"));
  EXPECT_EQ(r.instr, InstrKind::kTensorF16);
  EXPECT_DOUBLE_EQ(r.flops, 2.0 * 4096 * 4096 * 4096);
  EXPECT_NEAR(r.compute_us, 2.0 * 4096 * 4096 * 4096 / 989.4e12 * 1e6, 1e-9);  // 138.9 us
  EXPECT_NEAR(r.memory_us, 3.0 * 4096 * 4096 * 2 / 3350e9 * 1e6, 1e-9);        // 30.0 us
  EXPECT_DOUBLE_EQ(r.floor_us, r.compute_us);
  EXPECT_FALSE(r.memory_bound());
}

TEST(Roofline, SkinnyGemmAndRowOpsAreMemoryBound) {
  HardwareSpec h100 = find_spec("h100_sxm");
  RooflineFloor gemv = roofline_floor(Workload::parse("matmul:m=1,n=4096,k=4096:f16"), h100);
  EXPECT_TRUE(gemv.memory_bound());
  EXPECT_NEAR(gemv.floor_us, (4096.0 * 4096 + 4096 + 4096) * 2 / 3350e9 * 1e6, 1e-9);
  RooflineFloor sm = roofline_floor(Workload::parse("softmax:rows=16384,cols=4096:f16"), h100);
  EXPECT_EQ(sm.instr, InstrKind::kFmaF32);
  EXPECT_TRUE(sm.memory_bound());
  // Faster memory lowers a memory-bound floor in proportion.
  RooflineFloor sm200 = roofline_floor(Workload::parse("softmax:rows=16384,cols=4096:f16"), find_spec("h200_sxm"));
  EXPECT_NEAR(sm.floor_us / sm200.floor_us, 4800.0 / 3350.0, 1e-9);
}

TEST(Roofline, InstructionKindFollowsDtypeAndKind) {
  EXPECT_EQ(bounding_instruction(Workload::parse("matmul:m=8,n=8,k=8:bf16")), InstrKind::kTensorF16);
  EXPECT_EQ(bounding_instruction(Workload::parse("matmul:m=8,n=8,k=8:f32")), InstrKind::kFmaF32);
  EXPECT_EQ(bounding_instruction(Workload::parse("matmul:m=8,n=8,k=8:f32:tf32=1")), InstrKind::kTensorTF32);
  EXPECT_EQ(bounding_instruction(Workload::parse("conv2d:n=1,h=8,w=8,c=16,k=16,r=3,s=3,pad=1:f16")),
            InstrKind::kTensorF16);
  EXPECT_EQ(bounding_instruction(Workload::parse("conv2d:n=1,h=8,w=8,c=16,k=16,r=3,s=3,pad=1,groups=16:f16")),
            InstrKind::kFmaF32);
  EXPECT_EQ(bounding_instruction(Workload::parse("layernorm:rows=8,cols=8:f16")), InstrKind::kFmaF32);
}

TEST(Roofline, Fp32GemmUsesCudaCorePeak) {
  RooflineFloor r = roofline_floor(Workload::parse("matmul:m=4096,n=4096,k=4096:f32"), find_spec("a100_sxm"));
  EXPECT_NEAR(r.compute_us, 2.0 * 4096 * 4096 * 4096 / 19.5e12 * 1e6, 1e-6);
}

}  // namespace
}  // namespace tessera::costmodel
