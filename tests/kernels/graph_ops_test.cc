// The generic kernels of a graph run (kernels/graph_ops.h) without a GPU: every kind compiles
// with NVRTC for Hopper and Ampere, the source depends on the kind and types only (never the
// shape), the parameters carry what the caller passed, and malformed calls are internal errors.
#include "kernels/graph_ops.h"
#include "tests/kernels/graph_ops_util.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "kernels/builder.h"
#include "kernels/families.h"

namespace tessera::kernels {
namespace {

using S = StoreType;

using testing::dense;

using testing::window;

// One kernel of each kind and a spread of element types.
std::vector<GenericKernel> representative_kernels() {
  const std::vector<int64_t> shape = {2, 3, 4, 5};
  const StridedRef d = dense(shape);
  std::vector<GenericKernel> ks;
  const std::pair<S, S> pairs[] = {
      {S::kF32, S::kF16}, {S::kF16, S::kF32}, {S::kF32, S::kBF16}, {S::kBF16, S::kF16}, {S::kF32, S::kI64},
      {S::kF16, S::kI64}, {S::kI64, S::kF32}, {S::kI64, S::kI64},  {S::kI64, S::kU8},   {S::kF32, S::kU8},
      {S::kU8, S::kF16},  {S::kU8, S::kI64},  {S::kU8, S::kU8},    {S::kBF16, S::kBF16}};
  for (auto [in, out] : pairs) ks.push_back(strided_copy(in, out, shape, d, d));
  const StridedRef idx{0, {0, 1, 0, 0}};
  for (S t : {S::kF16, S::kBF16, S::kF32, S::kI64, S::kU8}) ks.push_back(gather(t, shape, d, idx, 20, 7, d));
  for (S t : {S::kF16, S::kF32, S::kI64}) ks.push_back(gather_nd(t, shape, d, idx, 1, {{3, 20}, {4, 5}}, d));
  for (S t : {S::kF16, S::kF32, S::kI64}) ks.push_back(cumsum(t, shape, d, d, 2, t == S::kI64, t == S::kF16));
  for (S t : {S::kF16, S::kF32, S::kBF16})
    for (bool max : {true, false})
      ks.push_back(pool2d(t, {2, 3, 8, 8}, dense({2, 3, 8, 8}), shape, d, window(max, !max)));
  ks.push_back(map("erff(a)", {S::kF32}, S::kF16, shape, {d}, d));
  ks.push_back(map(eltwise_expression(EltwiseOp::kGelu, "a"), {S::kF16}, S::kF16, shape, {d}, d));
  ks.push_back(map("a + b", {S::kF16, S::kBF16}, S::kF32, shape, {d, d}, d));
  ks.push_back(map("a != 0.f ? b : c", {S::kU8, S::kF32, S::kF32}, S::kF32, shape, {d, d, d}, d));
  ks.push_back(map("(float)(a < b)", {S::kI64, S::kI64}, S::kU8, shape, {d, d}, d));
  ks.push_back(map("a * b + c * d", {S::kF32, S::kF16, S::kBF16, S::kI64}, S::kI64, shape, {d, d, d, d}, d));
  // Large enough for several elements per thread, moved as packs (one operand broadcast).
  ks.push_back(strided_copy(S::kF16, S::kF16, {512, 1024}, dense({512, 1024}), dense({512, 1024})));
  ks.push_back(map("a * b", {S::kF16, S::kF16}, S::kF16, {4096, 768}, {dense({4096, 768}), StridedRef{0, {0, 0}}},
                   dense({4096, 768})));
  const std::vector<int64_t> kept = {2, 1, 4, 1};
  for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kMean, ReduceOp::kMax, ReduceOp::kMin, ReduceOp::kProd})
    for (S t : {S::kF16, S::kF32, S::kI64})
      ks.push_back(reduce(op, t, kept, StridedRef{0, {60, 0, 5, 0}}, {{3, 20}, {5, 1}}, dense(kept)));
  ks.push_back(
      reduce(ReduceOp::kMax, S::kU8, kept, StridedRef{0, {60, 0, 5, 0}}, {{3, 20}, {5, 1}}, dense(kept)));
  return ks;
}

#if TESSERA_HAVE_CUDA
// Compiles for sm_90a and sm_80. The kernels keep their index and the parameter arrays in
// registers and parameter space: a stack frame would mean a local copy of the 632-byte
// parameter per thread.
TEST(GraphOps, EveryKindCompilesForHopperAndAmpere) {
  std::vector<GenericKernel> ks = representative_kernels();
  std::vector<KernelSource> sources;
  for (const GenericKernel& k : ks) sources.push_back(k.source);
  for (const char* arch : {"sm_90a", "sm_80"}) {
    SCOPED_TRACE(arch);
    BuildOptions o;
    o.arch = arch;
    o.headers = device_headers();
    std::vector<CompiledKernel> built = Builder(o).build(sources);
    ASSERT_EQ(built.size(), ks.size());
    for (size_t i = 0; i < ks.size(); ++i) {
      SCOPED_TRACE(ks[i].source.entry);
      ASSERT_EQ(built[i].status, Status::kOk) << built[i].error << "\n" << built[i].log;
      EXPECT_FALSE(built[i].cubin.empty());
      EXPECT_GT(built[i].usage.registers, 0);
      EXPECT_EQ(built[i].usage.stack_bytes, 0);
    }
  }
}

// A map's expression is compiled as written: a variable beyond its inputs is a compile error
// (reported as a status, not thrown).
TEST(GraphOps, MapExpressionUsingAMissingInputDoesNotCompile) {
  const StridedRef d = dense({4});
  BuildOptions o;
  o.headers = device_headers();
  Builder builder(o);
  ASSERT_EQ(builder.compile(map("a + b", {S::kF32, S::kF32}, S::kF32, {4}, {d, d}, d).source).status,
            Status::kOk);
  CompiledKernel built = builder.compile(map("a + c", {S::kF32, S::kF32}, S::kF32, {4}, {d, d}, d).source);
  EXPECT_EQ(built.status, Status::kCompileError);
  EXPECT_NE(built.log.find("identifier \"c\" is undefined"), std::string::npos) << built.log;
}
#else
TEST(GraphOps, EveryKindCompilesForHopperAndAmpere) {
  GTEST_SKIP() << "built without CUDA: no NVRTC";
}
#endif

TEST(GraphOps, EntriesAreDistinctPerKindAndTypes) {
  std::vector<GenericKernel> ks = representative_kernels();
  std::set<std::string> entries;
  for (const GenericKernel& k : ks) {
    EXPECT_NE(k.source.source.find("void __launch_bounds__(256) " + k.source.entry + "("), std::string::npos)
        << k.source.entry;
    EXPECT_TRUE(entries.insert(k.source.entry).second) << "two kernels named " << k.source.entry;
  }
  const StridedRef d = dense({2, 3});
  EXPECT_EQ(strided_copy(S::kF16, S::kF32, {2, 3}, d, d).source.entry, "tessera_copy_f16_f32");
  EXPECT_EQ(strided_copy(S::kF32, S::kF16, {2, 3}, d, d).source.entry, "tessera_copy_f32_f16");
  EXPECT_EQ(gather(S::kBF16, {2, 3}, d, d, 1, 3, d).source.entry, "tessera_gather_bf16");
  EXPECT_EQ(reduce(ReduceOp::kMean, S::kF32, {2, 3}, d, {{4, 6}}, d).source.entry, "tessera_reduce_mean_f32");
  // A map differs by expression, and by its inputs' and output's types.
  std::string add = map("a + b", {S::kF32, S::kF32}, S::kF32, {2, 3}, {d, d}, d).source.entry;
  EXPECT_EQ(add.rfind("tessera_map_f32_f32_to_f32_", 0), 0u) << add;
  EXPECT_NE(map("a - b", {S::kF32, S::kF32}, S::kF32, {2, 3}, {d, d}, d).source.entry, add);
  EXPECT_NE(map("a + b", {S::kF32, S::kF16}, S::kF32, {2, 3}, {d, d}, d).source.entry, add);
  EXPECT_NE(map("a + b", {S::kF32, S::kF32}, S::kF16, {2, 3}, {d, d}, d).source.entry, add);
}

// One cubin per kind, types and walk (the rank after coalescing, elements per thread step,
// index width): shapes, strides and offsets of the same walk change the parameters only.
TEST(GraphOps, SourceIsTheSameForEveryShapeOfAWalk) {
  // Transposed operands (ta, tb: the first dimension fastest) keep all four dimensions.
  const std::vector<int64_t> a = {2, 3, 4, 5}, b = {7, 2, 9, 3};
  const StridedRef da = dense(a), db = dense(b, 11), ta{3, {1, 2, 6, 24}}, tb{5, {1, 7, 14, 126}};
  auto same = [](const GenericKernel& x, const GenericKernel& y) {
    EXPECT_EQ(x.source.entry, y.source.entry);
    EXPECT_EQ(x.source.source, y.source.source) << x.source.entry;
    EXPECT_NE(x.label, y.label);
  };
  same(strided_copy(S::kF32, S::kF16, a, ta, da), strided_copy(S::kF32, S::kF16, b, tb, db));
  same(gather(S::kF16, a, da, da, 5, 4, da), gather(S::kF16, b, db, db, 1, 9, db));
  same(pool2d(S::kF16, {2, 3, 8, 8}, dense({2, 3, 8, 8}), a, da, window(true, false)),
       pool2d(S::kF16, {1, 16, 7, 7}, dense({1, 16, 7, 7}), {1, 16, 1, 1}, dense({1, 16, 1, 1}),
              PoolWindow{}));
  same(map("a * b", {S::kF16, S::kF32}, S::kF16, a, {da, ta}, da),
       map("a * b", {S::kF16, S::kF32}, S::kF16, b, {db, tb}, db));
  same(reduce(ReduceOp::kSum, S::kF32, a, da, {{3, 1}}, da),
       reduce(ReduceOp::kSum, S::kF32, {7, 9}, dense({7, 9}), {{2, 5}, {4, 1}}, dense({7, 9})));
  // So are pools whose output is stored NHWC (walked channels innermost).
  const StridedRef nhwc{0, {8 * 8 * 3, 1, 8 * 3, 3}};
  same(pool2d(S::kF16, {2, 3, 8, 8}, nhwc, {2, 3, 8, 8}, nhwc, window(true, false)),
       pool2d(S::kF16, {1, 4, 9, 9}, dense({1, 4, 9, 9}), {1, 4, 3, 3}, StridedRef{0, {36, 1, 12, 4}},
              PoolWindow{}));
  EXPECT_NE(pool2d(S::kF16, {2, 3, 8, 8}, nhwc, {2, 3, 8, 8}, nhwc, window(true, false)).source.entry,
            pool2d(S::kF16, {2, 3, 8, 8}, nhwc, {2, 3, 8, 8}, dense({2, 3, 8, 8}), window(true, false))
                .source.entry);
  // Max and average pooling are different kernels.
  EXPECT_NE(pool2d(S::kF16, {2, 3, 8, 8}, dense({2, 3, 8, 8}), a, da, window(true, false)).source.entry,
            pool2d(S::kF16, {2, 3, 8, 8}, dense({2, 3, 8, 8}), a, da, window(false, false)).source.entry);
}

// The walk in the source: the rank after coalescing, V elements of the innermost dimension
// per thread step where it divides and leaves at least 64 blocks' worth of steps, 32-bit
// indices unless an offset may pass 2^30; the grid covers the steps.
TEST(GraphOps, WalkTakesSeveralElementsPerThreadAndNarrowIndices) {
  struct Case {
    std::vector<int64_t> shape;
    StridedRef src;
    const char* walk;
    int64_t grid;
  };
  const int64_t big = int64_t{1} << 31;
  const Case cases[] = {
      {{4096, 768}, dense({4096, 768}), "R = 1, V = 8;\n  using Ix = int;", 4096 * 768 / 8 / 256},
      // A row broadcast down 40000 rows: the rows do not merge with the 6 columns.
      {{40000, 6}, StridedRef{0, {0, 1}}, "R = 2, V = 2;\n  using Ix = int;", 240000 / 2 / 256 + 1},
      // Transposed: two dimensions; 100 x 3 is too small to share out.
      {{100, 3}, StridedRef{0, {1, 100}}, "R = 2, V = 1;\n  using Ix = int;", 2},
      // A source offset past 2^30 needs 64-bit indices.
      {{4096, 768}, dense({4096, 768}, big), "R = 1, V = 8;\n  using Ix = long long;", 1536},
      {{}, StridedRef{0, {}}, "R = 0, V = 1;\n  using Ix = int;", 1},
  };
  for (const Case& c : cases) {
    GenericKernel k = strided_copy(S::kF16, S::kF16, c.shape, c.src, dense(c.shape));
    EXPECT_NE(k.source.source.find(c.walk), std::string::npos) << k.label << ": " << c.walk;
    EXPECT_EQ(k.source.launch.grid[0], c.grid) << k.label;
  }
  // Packs: contiguous runs of V at multiples of V, V at most 16 bytes of the widest type (8 f16,
  // 4 f32); not a transposed input, nor a run starting off a multiple of V.
  auto packs = [](const GenericKernel& k) { return k.source.source.find("const bool packed") != std::string::npos; };
  EXPECT_TRUE(packs(strided_copy(S::kF16, S::kF16, {4096, 768}, dense({4096, 768}), dense({4096, 768}))));
  EXPECT_TRUE(packs(strided_copy(S::kF16, S::kF16, {4096, 768}, StridedRef{5, {0, 0}}, dense({4096, 768}))));
  EXPECT_FALSE(packs(strided_copy(S::kF16, S::kF16, {768, 4096}, StridedRef{0, {1, 768}}, dense({768, 4096}))));
  const GenericKernel f32 = strided_copy(S::kF32, S::kF32, {4096, 768}, dense({4096, 768}), dense({4096, 768}));
  EXPECT_TRUE(packs(f32));
  EXPECT_NE(f32.source.source.find("V = 4;"), std::string::npos);
  EXPECT_FALSE(packs(strided_copy(S::kF16, S::kF16, {4096, 768}, dense({4096, 768}, 4), dense({4096, 768}))));
  // NHWC pooling takes 16 bytes of channels per step, read and written as packs.
  const StridedRef nhwc_in{0, {64 * 64 * 64, 1, 64 * 64, 64}};
  GenericKernel nhwc = pool2d(S::kF16, {8, 64, 64, 64}, nhwc_in, {8, 64, 64, 64}, nhwc_in, window(true, false));
  EXPECT_NE(nhwc.source.source.find("V = 8;"), std::string::npos);
  EXPECT_NE(nhwc.source.source.find("const bool packed"), std::string::npos);
  GenericKernel nhwc32 = pool2d(S::kF32, {8, 64, 64, 64}, nhwc_in, {8, 64, 64, 64}, nhwc_in, window(true, false));
  EXPECT_NE(nhwc32.source.source.find("V = 4;"), std::string::npos);
  // NCHW pooling keeps one element per step (its innermost dimension is a window position).
  GenericKernel nchw = pool2d(S::kF16, {8, 64, 64, 64}, dense({8, 64, 64, 64}), {8, 64, 64, 64},
                              dense({8, 64, 64, 64}), window(true, false));
  EXPECT_NE(nchw.source.source.find("V = 1;"), std::string::npos);
}

TEST(GraphOps, CopyParamsCarryShapeStridesAndOffsets) {
  GenericKernel k =
      strided_copy(S::kF32, S::kF16, {2, 3, 4}, StridedRef{7, {1, 2, 6}}, StridedRef{5, {12, 4, 1}});
  const GenericParams& p = k.params;
  EXPECT_EQ(p.count, 24);
  EXPECT_EQ(p.rank, 3);
  EXPECT_EQ(p.inputs, 1);
  EXPECT_EQ(std::vector<int64_t>(p.shape, p.shape + 4), (std::vector<int64_t>{2, 3, 4, 0}));
  EXPECT_EQ(p.out_offset, 5);
  EXPECT_EQ(std::vector<int64_t>(p.out_strides, p.out_strides + 4), (std::vector<int64_t>{12, 4, 1, 0}));
  EXPECT_EQ(p.in_offset[0], 7);
  EXPECT_EQ(std::vector<int64_t>(p.in_strides[0], p.in_strides[0] + 4), (std::vector<int64_t>{1, 2, 6, 0}));
  EXPECT_EQ(p.in_strides[1][0], 0);
  EXPECT_EQ(k.source.launch.block[0], 256);
  EXPECT_EQ(k.source.launch.grid[0], 1);
  EXPECT_EQ(k.label, "copy f32->f16 [2,3,4]");
  // ceil(count / 256) blocks, at least 1 and at most 8192.
  EXPECT_EQ(strided_copy(S::kF32, S::kF32, {1000}, dense({1000}), dense({1000})).source.launch.grid[0], 4);
  EXPECT_EQ(strided_copy(S::kF32, S::kF32, {0, 5}, dense({0, 5}), dense({0, 5})).source.launch.grid[0], 1);
  const std::vector<int64_t> big = {4096, 4097};
  EXPECT_EQ(strided_copy(S::kF32, S::kF32, big, dense(big), dense(big)).source.launch.grid[0], 8192);
  // Rank 0 is one element.
  GenericKernel scalar = strided_copy(S::kI64, S::kI64, {}, StridedRef{3, {}}, StridedRef{});
  EXPECT_EQ(scalar.params.count, 1);
  EXPECT_EQ(scalar.params.rank, 0);
  EXPECT_EQ(scalar.params.in_offset[0], 3);
}

TEST(GraphOps, ExtraSlotsCarryTheWindowAxesAndReducedDimensions) {
  const std::vector<int64_t> out = {2, 5, 3};
  GenericKernel g =
      gather(S::kF16, out, StridedRef{4, {40, 0, 1}}, StridedRef{9, {0, 1, 0}}, 8, 6, dense(out));
  EXPECT_EQ(g.params.inputs, 2);
  EXPECT_EQ(g.params.extra[0], 8);
  EXPECT_EQ(g.params.extra[1], 6);
  EXPECT_EQ(g.params.in_offset[0], 4);
  EXPECT_EQ(g.params.in_offset[1], 9);
  EXPECT_EQ(g.params.in_strides[1][1], 1);

  PoolWindow w;
  w.max = false;
  w.count_include_pad = true;
  w.kh = 3, w.kw = 4, w.sh = 2, w.sw = 3, w.dh = 1, w.dw = 2;
  w.pad_top = 1, w.pad_left = 2, w.pad_bottom = 3, w.pad_right = 4;
  const StridedRef nhwc{0, {11 * 13 * 6, 1, 13 * 6, 6}};
  GenericKernel pool = pool2d(S::kBF16, {2, 6, 11, 13}, nhwc, {2, 6, 6, 5}, dense({2, 6, 6, 5}), w);
  EXPECT_EQ(std::vector<int64_t>(pool.params.extra, pool.params.extra + 14),
            (std::vector<int64_t>{11, 13, 3, 4, 2, 3, 1, 2, 1, 2, 3, 4, 1, 0}));
  EXPECT_EQ(std::vector<int64_t>(pool.params.in_strides[0], pool.params.in_strides[0] + 4), nhwc.strides);
  EXPECT_EQ(pool.params.count, 2 * 6 * 6 * 5);
  w.count_include_pad = false;
  EXPECT_EQ(pool2d(S::kBF16, {2, 6, 11, 13}, nhwc, {2, 6, 6, 5}, dense({2, 6, 6, 5}), w).params.extra[12], 0);

  GenericKernel r = reduce(ReduceOp::kProd, S::kI64, {2, 1, 4, 1}, StridedRef{1, {60, 0, 5, 0}},
                           {{3, 20}, {5, 1}}, dense({2, 1, 4, 1}));
  EXPECT_EQ(std::vector<int64_t>(r.params.extra, r.params.extra + 6),
            (std::vector<int64_t>{2, 3, 20, 5, 1, 0}));
  EXPECT_EQ(r.params.in_offset[0], 1);
  EXPECT_EQ(r.params.count, 8);

  const StridedRef a{0, {3, 1}}, b{2, {0, 1}}, c{5, {1, 0}};
  GenericKernel m =
      map("a != 0.f ? b : c", {S::kU8, S::kF32, S::kF32}, S::kF32, {4, 3}, {a, b, c}, dense({4, 3}));
  EXPECT_EQ(m.params.inputs, 3);
  EXPECT_EQ(m.params.in_offset[2], 5);
  EXPECT_EQ(m.params.in_strides[1][0], 0);
  EXPECT_EQ(m.params.in_strides[2][0], 1);
}

TEST(GraphOps, MalformedCallsAreInternalErrors) {
  const std::vector<int64_t> nine(9, 1);
  const StridedRef d9 = dense(nine), d2 = dense({2, 3});
  EXPECT_THROW(strided_copy(S::kF32, S::kF32, nine, d9, d9), InternalError);
  EXPECT_THROW(strided_copy(S::kF32, S::kF32, {2, 3}, StridedRef{0, {1}}, d2), InternalError);
  EXPECT_THROW(strided_copy(S::kF32, S::kF32, {2, 3}, d2, StridedRef{0, {3, 1, 1}}), InternalError);
  EXPECT_THROW(gather(S::kF32, {2, 3}, d2, StridedRef{0, {1}}, 1, 3, d2), InternalError);
  EXPECT_THROW(map("a", {S::kF32, S::kF32}, S::kF32, {2, 3}, {d2}, d2), InternalError);
  EXPECT_THROW(map("a", {}, S::kF32, {2, 3}, {}, d2), InternalError);
  EXPECT_THROW(map("a", std::vector<S>(5, S::kF32), S::kF32, {2, 3}, std::vector<StridedRef>(5, d2), d2),
               InternalError);
  EXPECT_THROW(map("a", {S::kF32}, S::kF32, nine, {d9}, d9), InternalError);
  EXPECT_THROW(map("a + b", {S::kF32, S::kF32}, S::kF32, {2, 3}, {d2, StridedRef{0, {1, 1, 1}}}, d2),
               InternalError);
  EXPECT_THROW(
      reduce(ReduceOp::kSum, S::kF32, {2, 3}, d2, std::vector<std::pair<int64_t, int64_t>>(9, {1, 1}), d2),
      InternalError);
  EXPECT_THROW(reduce(ReduceOp::kSum, S::kF32, {2, 3}, StridedRef{0, {1}}, {{3, 1}}, d2), InternalError);
  const StridedRef d4 = dense({1, 2, 4, 4});
  EXPECT_THROW(pool2d(S::kF32, {2, 4, 4}, dense({2, 4, 4}), {1, 2, 2, 2}, dense({1, 2, 2, 2}), PoolWindow{}),
               InternalError);
  EXPECT_THROW(pool2d(S::kF32, {1, 2, 4, 4}, StridedRef{0, {1, 1, 1}}, {1, 2, 4, 4}, d4, PoolWindow{}),
               InternalError);
  EXPECT_THROW(pool2d(S::kF32, {1, 2, 4, 4}, d4, {1, 2, 4, 4}, StridedRef{0, {1}}, PoolWindow{}),
               InternalError);
  PoolWindow zero_stride;
  zero_stride.sh = 0;
  EXPECT_THROW(pool2d(S::kF32, {1, 2, 4, 4}, d4, {1, 2, 4, 4}, d4, zero_stride), InternalError);
}

TEST(GraphOps, StoreTypesNameTheirCudaTypesAndSizes) {
  EXPECT_EQ(store_type_cuda(S::kBF16), "tessera::BF16");
  EXPECT_EQ(store_type_cuda(S::kI64), "long long");
  EXPECT_EQ(store_type_name(S::kU8), "u8");
  EXPECT_EQ(store_bytes(S::kF16), 2);
  EXPECT_EQ(store_bytes(S::kF32), 4);
  EXPECT_EQ(store_bytes(S::kI64), 8);
  EXPECT_EQ(store_bytes(S::kU8), 1);
}

}  // namespace
}  // namespace tessera::kernels

namespace tessera::kernels {
namespace {

// (output offset, input 0 offset) of every element a kernel's params address, sorted.
std::vector<std::pair<int64_t, int64_t>> addressed(const GenericParams& p) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t k = 0; k < p.count; ++k) {
    int64_t rest = k, o = p.out_offset, i = p.in_offset[0];
    for (int d = p.rank - 1; d >= 0; --d) {
      const int64_t x = rest % p.shape[d];
      rest /= p.shape[d];
      o += x * p.out_strides[d];
      i += x * p.in_strides[0][d];
    }
    out.emplace_back(o, i);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::pair<int64_t, int64_t>> addressed(const std::vector<int64_t>& shape, const StridedRef& src,
                                                   const StridedRef& dst) {
  GenericParams p;
  p.count = 1;
  p.rank = static_cast<int32_t>(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    p.shape[d] = shape[d];
    p.count *= shape[d];
    p.out_strides[d] = dst.strides[d];
    p.in_strides[0][d] = src.strides[d];
  }
  p.out_offset = dst.offset;
  p.in_offset[0] = src.offset;
  return addressed(p);
}

// The index space is reordered (output stride largest first) and contiguous neighbours merge:
// the same elements go to the same places, in fewer dimensions, channels innermost for NHWC.
TEST(GraphOps, CoalescedIndexSpacesAddressTheSameElements) {
  struct Case {
    std::vector<int64_t> shape;
    StridedRef src, dst;
    int rank;  // after coalescing
  };
  const Case cases[] = {
      // A dense copy is one dimension.
      {{2, 3, 4, 5}, StridedRef{0, {60, 20, 5, 1}}, StridedRef{7, {60, 20, 5, 1}}, 1},
      // An NCHW -> NHWC conversion walks channels innermost.
      {{1, 8, 4, 4}, StridedRef{0, {128, 16, 4, 1}}, StridedRef{0, {128, 1, 32, 8}}, 2},
      // A channel slice of an NHWC tensor (a split's part) into a dense NHWC buffer: pixels x channels.
      {{1, 16, 7, 7}, StridedRef{16, {49 * 64, 1, 7 * 64, 64}}, StridedRef{0, {49 * 16, 1, 7 * 16, 16}}, 2},
      // A broadcast row (stride 0) and a unit dimension.
      {{3, 1, 5}, StridedRef{2, {0, 9, 1}}, StridedRef{0, {5, 5, 1}}, 2},
  };
  for (const Case& c : cases) {
    GenericKernel k = strided_copy(S::kF16, S::kF16, c.shape, c.src, c.dst);
    EXPECT_EQ(k.params.rank, c.rank) << k.label;
    EXPECT_EQ(k.params.count, [&] {
      int64_t n = 1;
      for (int64_t e : c.shape) n *= e;
      return n;
    }());
    EXPECT_EQ(addressed(k.params), addressed(c.shape, c.src, c.dst)) << k.label;
    for (int d = 1; d < k.params.rank; ++d)
      EXPECT_GT(k.params.out_strides[d - 1], k.params.out_strides[d]) << k.label;
  }
}

}  // namespace
}  // namespace tessera::kernels
