#include "core/tensor_expr.h"

#include <gtest/gtest.h>

#include "core/workload.h"

namespace tessera {
namespace {

// Tile ranges by axis name; axes not named span their whole extent.
std::vector<AxisRange> tile(const TensorExpr& e, std::initializer_list<std::tuple<const char*, int64_t, int64_t>> ranges) {
  std::vector<AxisRange> out;
  for (const Axis& a : e.axes) out.push_back({0, a.extent});
  for (auto [name, begin, extent] : ranges) {
    int i = e.axis_index(name);
    EXPECT_GE(i, 0) << name;
    out[i] = {begin, extent};
  }
  return out;
}

size_t tensor(const TensorExpr& e, const std::string& name) {
  for (size_t t = 0; t < e.tensors.size(); ++t)
    if (e.tensors[t].name == name) return t;
  ADD_FAILURE() << "no tensor " << name;
  return 0;
}

TEST(TensorExpr, MatmulAxesMapsFlopsAndBytes) {
  TensorExpr e = Workload::parse("matmul:m=4096,n=2048,k=1024:f16").expr();
  ASSERT_EQ(e.axes.size(), 3u);
  EXPECT_EQ(e.axes[2].name, "k");
  EXPECT_EQ(e.axes[2].kind, AxisKind::kReduce);
  EXPECT_EQ(e.to_string(), "C[m, n] <- reduce(A[m, k], B[k, n])");
  EXPECT_DOUBLE_EQ(e.flop_count(), 2.0 * 4096 * 2048 * 1024);
  EXPECT_DOUBLE_EQ(e.min_bytes(), 2.0 * (4096 * 1024 + 1024 * 2048 + 4096 * 2048));
}

TEST(TensorExpr, MatmulTileFootprints) {
  TensorExpr e = Workload::parse("matmul:m=4096,n=2048,k=1024:f16").expr();
  auto t = tile(e, {{"m", 128, 128}, {"n", 256, 64}, {"k", 0, 32}});
  EXPECT_EQ(e.footprint_elements(tensor(e, "A"), t), 128 * 32);
  EXPECT_EQ(e.footprint_elements(tensor(e, "B"), t), 32 * 64);
  EXPECT_EQ(e.footprint_elements(tensor(e, "C"), t), 128 * 64);
  // A tile hanging over the edge only touches in-bounds elements.
  auto edge = tile(e, {{"m", 4032, 128}, {"n", 0, 64}, {"k", 0, 32}});
  EXPECT_EQ(e.footprint_elements(tensor(e, "A"), edge), 64 * 32);
}

TEST(TensorExpr, TransposedMatmulMapsAndEpilogueTensors) {
  Workload w = Workload::parse("matmul:m=64,n=32,k=16,ta=1,tb=1:f16:out=f32:epilogue=bias+gelu+residual");
  TensorExpr e = w.expr();
  const TensorAccess& a = e.tensors[tensor(e, "A")];
  EXPECT_EQ(a.shape, (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(e.index_to_string(a.index[0]), "k");
  EXPECT_EQ(e.tensors[tensor(e, "B")].shape, (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(e.tensors[tensor(e, "bias")].shape, (std::vector<int64_t>{32}));
  EXPECT_EQ(e.tensors[tensor(e, "residual")].dtype, DType::kF32);
  EXPECT_EQ(e.tensors.back().name, "C");
  EXPECT_EQ(e.tensors.back().role, TensorRole::kOutput);
  // 2 FLOP per multiply-add plus one per epilogue step per output.
  EXPECT_DOUBLE_EQ(e.flop_count(), 2.0 * 64 * 32 * 16 + 3.0 * 64 * 32);
  double bytes = 2.0 * (64 * 16 + 16 * 32) + 4.0 * 32 + 4.0 * 64 * 32 + 4.0 * 64 * 32;
  EXPECT_DOUBLE_EQ(e.min_bytes(), bytes);
}

TEST(TensorExpr, BatchMatmulHasBatchAxis) {
  TensorExpr e = Workload::parse("batch_matmul:b=384,m=128,n=128,k=64:f16").expr();
  EXPECT_EQ(e.axes[0].name, "b");
  EXPECT_EQ(e.tensors[tensor(e, "A")].shape, (std::vector<int64_t>{384, 128, 64}));
  EXPECT_DOUBLE_EQ(e.flop_count(), 2.0 * 384 * 128 * 128 * 64);
}

TEST(TensorExpr, ConvInputMapAndPaddedHalo) {
  TensorExpr e = Workload::parse("conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16").expr();
  size_t x = tensor(e, "X");
  EXPECT_EQ(e.index_to_string(e.tensors[x].index[1]), "p + r - 1");
  EXPECT_DOUBLE_EQ(e.flop_count(), 2.0 * 32 * 56 * 56 * 64 * 64 * 9);
  // The whole input is read once; the weights are KRSC.
  EXPECT_EQ(e.footprint_elements(x), 32 * 56 * 56 * 64);
  EXPECT_EQ(e.tensors[tensor(e, "W")].shape, (std::vector<int64_t>{64, 3, 3, 64}));
  // An 8x8 output tile at the corner reads a 9x9 window (the padding row/column is not
  // memory); one in the interior reads 10x10.
  auto corner = tile(e, {{"n", 0, 1}, {"p", 0, 8}, {"q", 0, 8}});
  EXPECT_EQ(e.footprint_elements(x, corner), 9 * 9 * 64);
  auto interior = tile(e, {{"n", 0, 1}, {"p", 8, 8}, {"q", 8, 8}});
  EXPECT_EQ(e.footprint_elements(x, interior), 10 * 10 * 64);
  // One reduction step (c, r, s fixed) of the same tile reads 8x8 pixels of one channel.
  auto step = tile(e, {{"n", 0, 1}, {"p", 8, 8}, {"q", 8, 8}, {"c", 5, 1}, {"r", 1, 1}, {"s", 2, 1}});
  EXPECT_EQ(e.footprint_elements(x, step), 8 * 8);
}

TEST(TensorExpr, StridedConvFootprints) {
  // 1x1 stride 2 reads only every other row and column of its input.
  TensorExpr ds = Workload::parse("conv2d:n=32,h=28,w=28,c=512,k=1024,r=1,s=1,stride=2:f16").expr();
  EXPECT_EQ(ds.footprint_elements(tensor(ds, "X")), 32 * 14 * 14 * 512);
  EXPECT_DOUBLE_EQ(ds.min_bytes(), 2.0 * (32 * 14 * 14 * 512 + 1024 * 512 + 32 * 14 * 14 * 1024));
  // The 7x7/2 stem covers the whole input despite the stride.
  TensorExpr stem = Workload::parse("conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16").expr();
  EXPECT_EQ(stem.axes[stem.axis_index("p")].extent, 112);
  EXPECT_EQ(stem.footprint_elements(tensor(stem, "X")), 32 * 224 * 224 * 3);
}

TEST(TensorExpr, DilatedConvLeavesGaps) {
  TensorExpr e = Workload::parse("conv2d:n=1,h=10,w=10,c=1,k=1,r=3,s=3,dilation=2:f32").expr();
  size_t x = tensor(e, "X");
  EXPECT_EQ(e.footprint_elements(x), 100);
  // One output pixel reads rows {0, 2, 4} and columns {0, 2, 4}.
  auto one = tile(e, {{"p", 0, 1}, {"q", 0, 1}});
  EXPECT_EQ(e.footprint_elements(x, one), 9);
}

TEST(TensorExpr, GroupedAndNchwConv) {
  TensorExpr dw = Workload::parse("conv2d:n=32,h=56,w=56,c=144,k=144,r=3,s=3,pad=1,groups=144:f16").expr();
  ASSERT_GE(dw.axis_index("g"), 0);
  EXPECT_EQ(dw.axes[dw.axis_index("k")].extent, 1);
  EXPECT_EQ(dw.axes[dw.axis_index("c")].extent, 1);
  EXPECT_EQ(dw.index_to_string(dw.tensors[tensor(dw, "X")].index[3]), "g + c");
  EXPECT_EQ(dw.tensors[tensor(dw, "W")].shape, (std::vector<int64_t>{144, 3, 3, 1}));
  EXPECT_DOUBLE_EQ(dw.flop_count(), 2.0 * 32 * 56 * 56 * 144 * 9);
  auto eight_groups = tile(dw, {{"g", 16, 8}});
  EXPECT_EQ(dw.footprint_elements(tensor(dw, "X"), eight_groups), 32 * 56 * 56 * 8);

  TensorExpr g2 = Workload::parse("conv2d:n=2,h=8,w=8,c=8,k=16,r=3,s=3,pad=1,groups=2,layout=nchw:f16").expr();
  size_t x = tensor(g2, "X");
  EXPECT_EQ(g2.tensors[x].shape, (std::vector<int64_t>{2, 8, 8, 8}));
  EXPECT_EQ(g2.index_to_string(g2.tensors[x].index[1]), "4*g + c");
  EXPECT_EQ(g2.tensors[tensor(g2, "W")].shape, (std::vector<int64_t>{16, 4, 3, 3}));
  EXPECT_EQ(g2.index_to_string(g2.tensors[tensor(g2, "Y")].index[1]), "8*g + k");
}

TEST(TensorExpr, RowOperators) {
  TensorExpr sm = Workload::parse("softmax:rows=16384,cols=4096:f16").expr();
  EXPECT_DOUBLE_EQ(sm.min_bytes(), 2.0 * 2 * 16384 * 4096);
  TensorExpr ln = Workload::parse("layernorm:rows=4096,cols=768:f16:out=f32").expr();
  EXPECT_DOUBLE_EQ(ln.min_bytes(), 2.0 * 4096 * 768 + 2 * 2.0 * 768 + 4.0 * 4096 * 768);
  TensorExpr red = Workload::parse("reduce:op=mean,rows=65536,cols=1024:f32").expr();
  EXPECT_EQ(red.axes[1].kind, AxisKind::kReduce);
  EXPECT_DOUBLE_EQ(red.min_bytes(), 4.0 * 65536 * 1024 + 4.0 * 65536);
  EXPECT_DOUBLE_EQ(red.flop_count(), 65536.0 * 1024 + 65536);
  TensorExpr ew = Workload::parse("elementwise:ops=add+relu+mul,n=1000:f16").expr();
  EXPECT_EQ(ew.tensors.size(), 4u);  // x0, x1 (add), x2 (mul), y
  EXPECT_DOUBLE_EQ(ew.flop_count(), 3000);
  EXPECT_DOUBLE_EQ(ew.min_bytes(), 4 * 2.0 * 1000);
}

}  // namespace
}  // namespace tessera
