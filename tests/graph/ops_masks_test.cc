// The operators of attention masks and index arithmetic (graph/ops_masks.cc), padding, tiling
// and N-dimensional indexing (graph/ops_indexing.cc) and the Reduce family at their edges: what
// the ONNX backend node tests do not reach (diagonals far outside the matrix, 2-D exclusive
// reverse sums, int64 wrap-around, empty reductions, cropping pads, reflections longer than
// the data, batch dimensions, duplicate scatter indices) and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "graph/ops.h"

namespace tessera::graph {
namespace {

Tensor eval1(OpType op, std::vector<const Tensor*> inputs, const Attrs& attrs = {}) {
  std::vector<Tensor> out = evaluate_node(op, attrs, inputs, 1);
  EXPECT_EQ(out.size(), 1u);
  return out.at(0);
}

std::string error_of(OpType op, std::vector<const Tensor*> inputs, const Attrs& attrs = {}) {
  try {
    evaluate_node(op, attrs, inputs, 1);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(MaskOps, ComparisonsAndLogicGiveBools) {
  Tensor a = Tensor::ints({3}, {1, 5, 9}), b = Tensor::ints({}, {5});
  EXPECT_EQ(eval1(OpType::kLess, {&a, &b}).i, (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(eval1(OpType::kLessOrEqual, {&a, &b}).i, (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(eval1(OpType::kGreater, {&a, &b}).i, (std::vector<int64_t>{0, 0, 1}));
  Tensor x = Tensor::floats({2, 1}, {0.5f, NAN}), y = Tensor::floats({2}, {0.5f, 1.0f});
  Tensor ge = eval1(OpType::kGreaterOrEqual, {&x, &y});
  EXPECT_EQ(ge.type, ElemType::kBool);
  EXPECT_EQ(ge.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ge.i, (std::vector<int64_t>{1, 0, 0, 0}));  // NaN compares false
  Tensor p = Tensor::ints({4}, {0, 0, 1, 1}, ElemType::kBool), q = Tensor::ints({4}, {0, 1, 0, 1}, ElemType::kBool);
  EXPECT_EQ(eval1(OpType::kAnd, {&p, &q}).i, (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_EQ(eval1(OpType::kOr, {&p, &q}).i, (std::vector<int64_t>{0, 1, 1, 1}));
  EXPECT_EQ(eval1(OpType::kXor, {&p, &q}).i, (std::vector<int64_t>{0, 1, 1, 0}));
  EXPECT_EQ(eval1(OpType::kNot, {&p}).i, (std::vector<int64_t>{1, 1, 0, 0}));
  EXPECT_NE(error_of(OpType::kAnd, {&a, &a}).find("must be bool"), std::string::npos);
  EXPECT_NE(error_of(OpType::kLess, {&p, &q}).find("numeric"), std::string::npos);
  EXPECT_NE(error_of(OpType::kLess, {&a, &x}).find("same type"), std::string::npos);
}

TEST(MaskOps, IsNanAndIsInfWithTheirFlags) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::floats({4}, {NAN, inf, -inf, 1.0f});
  EXPECT_EQ(eval1(OpType::kIsNaN, {&x}).i, (std::vector<int64_t>{1, 0, 0, 0}));
  EXPECT_EQ(eval1(OpType::kIsInf, {&x}).i, (std::vector<int64_t>{0, 1, 1, 0}));
  EXPECT_EQ(eval1(OpType::kIsInf, {&x}, {{"detect_negative", int64_t{0}}}).i, (std::vector<int64_t>{0, 1, 0, 0}));
  EXPECT_EQ(eval1(OpType::kIsInf, {&x}, {{"detect_positive", int64_t{0}}}).i, (std::vector<int64_t>{0, 0, 1, 0}));
  Tensor i = Tensor::ints({1}, {3});
  EXPECT_NE(error_of(OpType::kIsNaN, {&i}).find("floating"), std::string::npos);
}

TEST(MaskOps, RangeNeedsConstantScalarsAndBoundsItsLength) {
  Tensor start = Tensor::ints({}, {10}), limit = Tensor::ints({}, {1}), delta = Tensor::ints({}, {-3});
  EXPECT_EQ(eval1(OpType::kRange, {&start, &limit, &delta}).i, (std::vector<int64_t>{10, 7, 4}));
  Tensor fs = Tensor::floats({}, {0.0f}), fl = Tensor::floats({}, {1.0f}), fd = Tensor::floats({}, {0.25f});
  EXPECT_EQ(eval1(OpType::kRange, {&fs, &fl, &fd}).f, (std::vector<float>{0.0f, 0.25f, 0.5f, 0.75f}));
  Tensor empty_delta = Tensor::ints({}, {1});
  EXPECT_TRUE(eval1(OpType::kRange, {&start, &limit, &empty_delta}).i.empty());  // limit below start
  Tensor zero = Tensor::ints({}, {0});
  EXPECT_NE(error_of(OpType::kRange, {&start, &limit, &zero}).find("delta is 0"), std::string::npos);
  Tensor huge = Tensor::ints({}, {std::numeric_limits<int64_t>::max()}), low = Tensor::ints({}, {0}), one = Tensor::ints({}, {1});
  EXPECT_NE(error_of(OpType::kRange, {&low, &huge, &one}).find("2^40"), std::string::npos);
  Tensor vec = Tensor::ints({1}, {1});
  EXPECT_NE(error_of(OpType::kRange, {&vec, &limit, &delta}).find("scalar"), std::string::npos);
}

TEST(MaskOps, TriluKeepsDiagonalsEvenFarOutside) {
  Tensor x = Tensor::ints({2, 2, 3}, {1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6});
  Tensor k1 = Tensor::ints({}, {1});
  EXPECT_EQ(eval1(OpType::kTrilu, {&x, &k1}).i, (std::vector<int64_t>{0, 2, 3, 0, 0, 6, 0, 2, 3, 0, 0, 6}));
  EXPECT_EQ(eval1(OpType::kTrilu, {&x}, {{"upper", int64_t{0}}}).i,
            (std::vector<int64_t>{1, 0, 0, 4, 5, 0, 1, 0, 0, 4, 5, 0}));
  Tensor far = Tensor::ints({}, {std::numeric_limits<int64_t>::min()});
  EXPECT_EQ(eval1(OpType::kTrilu, {&x, &far}).i, x.i);                                   // upper: everything
  EXPECT_EQ(eval1(OpType::kTrilu, {&x, &far}, {{"upper", int64_t{0}}}).i, std::vector<int64_t>(12, 0));
  Tensor v = Tensor::ints({3}, {1, 2, 3});
  EXPECT_NE(error_of(OpType::kTrilu, {&v}).find("rank >= 2"), std::string::npos);
}

TEST(MaskOps, CumSumAlongAnyAxisExclusiveAndReversed) {
  Tensor x = Tensor::floats({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor axis0 = Tensor::ints({}, {0}), axis1 = Tensor::ints({1}, {-1}, ElemType::kI32);
  EXPECT_EQ(eval1(OpType::kCumSum, {&x, &axis0}).f, (std::vector<float>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(eval1(OpType::kCumSum, {&x, &axis1}, {{"exclusive", int64_t{1}}, {"reverse", int64_t{1}}}).f,
            (std::vector<float>{5, 3, 0, 11, 6, 0}));
  Tensor i = Tensor::ints({2}, {std::numeric_limits<int64_t>::max(), 1});
  EXPECT_EQ(eval1(OpType::kCumSum, {&i, &axis0}).i,
            (std::vector<int64_t>{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}));
  Tensor bad = Tensor::ints({}, {2});
  EXPECT_NE(error_of(OpType::kCumSum, {&x, &bad}).find("axis"), std::string::npos);
}

TEST(ReduceOps, SumMaxMinProdOverAxesAndEmptyReductions) {
  Tensor x = Tensor::floats({2, 3}, {1, -2, 3, 4, 5, -6});
  Attrs rows = {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}};
  EXPECT_EQ(eval1(OpType::kReduceMax, {&x}, rows).f, (std::vector<float>{3, 5}));
  EXPECT_EQ(eval1(OpType::kReduceMin, {&x}, rows).f, (std::vector<float>{-2, -6}));
  EXPECT_EQ(eval1(OpType::kReduceProd, {&x}, rows).f, (std::vector<float>{-6, -120}));
  Tensor axes = Tensor::ints({1}, {0});
  Tensor sum = eval1(OpType::kReduceSum, {&x, &axes});
  EXPECT_EQ(sum.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(sum.f, (std::vector<float>{5, 3, -3}));
  Tensor all = eval1(OpType::kReduceSum, {&x});
  EXPECT_EQ(all.f, (std::vector<float>{5}));
  Tensor i = Tensor::ints({2}, {std::numeric_limits<int64_t>::max(), 2});
  EXPECT_EQ(eval1(OpType::kReduceProd, {&i}).i, (std::vector<int64_t>{-2}));  // wraps
  Tensor empty = Tensor::floats({0, 2}, {});
  Attrs first = {{"axes", std::vector<int64_t>{0}}};
  EXPECT_EQ(eval1(OpType::kReduceSum, {&empty, &axes}).f, (std::vector<float>{0, 0}));
  EXPECT_EQ(eval1(OpType::kReduceProd, {&empty}, first).f, (std::vector<float>{1, 1}));
  EXPECT_EQ(eval1(OpType::kReduceMax, {&empty}, first).f[0], -std::numeric_limits<float>::infinity());
  Tensor flags = Tensor::ints({1}, {1}, ElemType::kBool);
  EXPECT_NE(error_of(OpType::kReduceSum, {&flags}).find("numeric"), std::string::npos);
}

TEST(IndexingOps, PadCropsReflectsAndRepeatsEdges) {
  Tensor x = Tensor::ints({1, 3}, {1, 2, 3});
  Tensor pads = Tensor::ints({4}, {0, 2, 0, -1});  // 2 before, crop 1 after, along the columns
  EXPECT_EQ(eval1(OpType::kPad, {&x, &pads}).i, (std::vector<int64_t>{0, 0, 1, 2}));
  Tensor value = Tensor::ints({}, {9});
  EXPECT_EQ(eval1(OpType::kPad, {&x, &pads, &value}).i, (std::vector<int64_t>{9, 9, 1, 2}));
  Tensor wide = Tensor::ints({4}, {0, 4, 0, 4});
  EXPECT_EQ(eval1(OpType::kPad, {&x, &wide}, {{"mode", std::string("reflect")}}).i,
            (std::vector<int64_t>{1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3}));
  EXPECT_EQ(eval1(OpType::kPad, {&x, &wide}, {{"mode", std::string("edge")}}).i,
            (std::vector<int64_t>{1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3}));
  EXPECT_NE(error_of(OpType::kPad, {&x, &wide}, {{"mode", std::string("wrap")}}).find("mode"), std::string::npos);
  Tensor short_pads = Tensor::ints({2}, {1, 1});
  EXPECT_NE(error_of(OpType::kPad, {&x, &short_pads}).find("needs 4"), std::string::npos);
  Tensor over_crop = Tensor::ints({4}, {0, -4, 0, 0});
  EXPECT_NE(error_of(OpType::kPad, {&x, &over_crop}).find("do not fit"), std::string::npos);
}

TEST(IndexingOps, TileRepeatsEachDimension) {
  Tensor x = Tensor::floats({2, 1}, {1, 2});
  Tensor reps = Tensor::ints({2}, {2, 3});
  Tensor y = eval1(OpType::kTile, {&x, &reps});
  EXPECT_EQ(y.shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(y.f, (std::vector<float>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}));
  Tensor none = Tensor::ints({2}, {0, 3});
  EXPECT_TRUE(eval1(OpType::kTile, {&x, &none}).f.empty());
  // Outputs past 2^40 elements, or past int64, are refused before anything is allocated.
  Tensor over = Tensor::ints({2}, {int64_t{1} << 21, int64_t{1} << 20});
  EXPECT_NE(error_of(OpType::kTile, {&x, &over}).find("more than 2^40 elements"), std::string::npos);
  Tensor wrap = Tensor::ints({2}, {int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_NE(error_of(OpType::kTile, {&x, &wrap}).find("more than 2^40 elements"), std::string::npos);
  Tensor one = Tensor::floats({1}, {1}), shape = Tensor::ints({2}, {int64_t{1} << 40, int64_t{1} << 40});
  EXPECT_NE(error_of(OpType::kExpand, {&one, &shape}).find("more than 2^40 elements"), std::string::npos);
  Tensor negative = Tensor::ints({2}, {-1, 3});
  EXPECT_NE(error_of(OpType::kTile, {&x, &negative}).find(">= 0"), std::string::npos);
}

TEST(IndexingOps, GatherAndScatterNdWithBatchesAndReductions) {
  Tensor data = Tensor::floats({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor idx = Tensor::ints({2, 1}, {1, 0});  // batch 0 takes row 1, batch 1 row 0
  Tensor y = eval1(OpType::kGatherND, {&data, &idx}, {{"batch_dims", int64_t{1}}});
  EXPECT_EQ(y.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(y.f, (std::vector<float>{2, 3, 4, 5}));
  Tensor negative = Tensor::ints({1, 2}, {-1, -2});
  EXPECT_EQ(eval1(OpType::kGatherND, {&data, &negative}).f, (std::vector<float>{4, 5}));
  Tensor out_of_range = Tensor::ints({1, 1}, {2});
  EXPECT_NE(error_of(OpType::kGatherND, {&data, &out_of_range}).find("out of range"), std::string::npos);
  Tensor v = Tensor::ints({4}, {1, 1, 1, 1}), at = Tensor::ints({3, 1}, {1, 1, 3}), up = Tensor::ints({3}, {5, 6, 7});
  EXPECT_EQ(eval1(OpType::kScatterND, {&v, &at, &up}, {{"reduction", std::string("add")}}).i,
            (std::vector<int64_t>{1, 12, 1, 8}));
  EXPECT_EQ(eval1(OpType::kScatterND, {&v, &at, &up}, {{"reduction", std::string("mul")}}).i,
            (std::vector<int64_t>{1, 30, 1, 7}));
  Tensor wrong = Tensor::ints({2}, {5, 6});
  EXPECT_NE(error_of(OpType::kScatterND, {&v, &at, &wrong}).find("must have shape"), std::string::npos);
  EXPECT_NE(error_of(OpType::kScatterND, {&v, &at, &up}, {{"reduction", std::string("max")}}).find("reduction"),
            std::string::npos);
}

// Einsum (graph/ops_einsum.cc) beyond ONNX's five node tests: the implicit output's order,
// broadcast ellipses, traces, integers and the equation's errors.
TEST(Einsum, ImplicitOutputsEllipsesTracesAndErrors) {
  auto eq = [](const std::string& e) { return Attrs{{"equation", e}}; };
  Tensor a = Tensor::floats({2, 3}, {1, 2, 3, 4, 5, 6}), b = Tensor::floats({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor mm = eval1(OpType::kEinsum, {&a, &b}, eq("ij,jk"));  // implicit: "ik"
  EXPECT_EQ(mm.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(mm.f, (std::vector<float>{4, 5, 10, 11}));
  // Implicit order is alphabetical with capitals first: "Ba" -> "Ba", "aB" -> "Ba".
  EXPECT_EQ(eval1(OpType::kEinsum, {&a}, eq("aB")).shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(eval1(OpType::kEinsum, {&a}, eq("ba")).f, (std::vector<float>{1, 4, 2, 5, 3, 6}));
  // Ellipses broadcast 1 against n: [2, 1, 2, 3] x [4, 3, 2] -> [2, 4, 2, 2].
  Tensor x = Tensor::floats({2, 1, 2, 3}, std::vector<float>(12, 1.0f)), y = Tensor::floats({4, 3, 2}, std::vector<float>(24, 0.5f));
  Tensor bm = eval1(OpType::kEinsum, {&x, &y}, eq("...ij, ...jk -> ...ik"));
  EXPECT_EQ(bm.shape, (std::vector<int64_t>{2, 4, 2, 2}));
  EXPECT_EQ(bm.f, std::vector<float>(32, 1.5f));
  // A trace (repeated label, implicit output: nothing), and integers.
  Tensor sq = Tensor::ints({2, 2}, {1, 2, 3, 4});
  Tensor tr = eval1(OpType::kEinsum, {&sq}, eq("ii"));
  EXPECT_TRUE(tr.shape.empty());
  EXPECT_EQ(tr.i, (std::vector<int64_t>{5}));
  EXPECT_EQ(eval1(OpType::kEinsum, {&sq}, eq("ii->i")).i, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(eval1(OpType::kEinsum, {&sq, &sq}, eq("ij,ij->")).i, (std::vector<int64_t>{30}));

  EXPECT_NE(error_of(OpType::kEinsum, {&a, &a}, eq("ij,jk->ik")).find("label 'j' has sizes 3 and 2"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, eq("ij,jk")).find("2 input terms for 1 inputs"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, eq("ij->iz")).find("label no input has"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, eq("i1")).find("character '1'"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, eq("ijk")).find("rank 2"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, eq("i.j")).find("stray '.'"), std::string::npos);
  EXPECT_NE(error_of(OpType::kEinsum, {&a}, {}).find("'equation'"), std::string::npos);
}

}  // namespace
}  // namespace tessera::graph
