// Which conv2d epilogues cuDNN's baseline runs fused (cudnnConvolutionBiasActivationForward:
// y = act(conv(x) + z + bias)), and where their inputs lie among the workload's tensors. No GPU
// or cuDNN needed; only with CUDA (the header is CUDA's).
#include <gtest/gtest.h>

#if TESSERA_HAVE_CUDA
#include "measure/cudnn_conv.h"

namespace tessera::measure {
namespace {

std::optional<CudnnFusedEpilogue> form(const char* spec) { return cudnn_fused_epilogue(Workload::parse(spec).epilogue); }

TEST(CudnnConvEpilogue, BiasResidualAndALastReluRunFused) {
  // Tensors: X 0, W 1, then the epilogue's inputs in its order.
  auto f = form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16:epilogue=bias+residual+relu");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->bias, 2);
  EXPECT_EQ(f->residual, 3);
  EXPECT_TRUE(f->relu);
  f = form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16:epilogue=residual+bias");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->residual, 2);
  EXPECT_EQ(f->bias, 3);
  EXPECT_FALSE(f->relu);
  f = form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16:epilogue=relu");  // a zero bias, identity z
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->bias, -1);
  EXPECT_EQ(f->residual, -1);
  EXPECT_TRUE(f->relu);
  EXPECT_TRUE(form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16").has_value());
}

TEST(CudnnConvEpilogue, WhatTheFusedFormCannotExpressRunsTheConvolutionAlone) {
  // GELU, and a relu before an addition (act is applied last), have no fused form.
  EXPECT_FALSE(form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16:epilogue=bias+gelu").has_value());
  EXPECT_FALSE(form("conv2d:n=1,h=8,w=8,c=16,k=16,r=1,s=1:f16:epilogue=bias+relu+residual").has_value());
}

}  // namespace
}  // namespace tessera::measure
#endif
