// The GPU run's plan (graph/exec_plan.h), checked without a GPU: which operators become
// views, tuned kernels, generic kernels and copies; that every tensor a step addresses lies
// inside its buffer; that buffers sharing arena bytes are never live at once; and that the
// five bundled models plan with nothing left out.
#include "graph/exec_plan.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "core/hardware.h"
#include "costmodel/analytic.h"
#include "graph/model_run.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"
#include "graph/rules.h"
#include "kernels/families.h"
#include "tests/graph/generic_graph.h"

namespace tessera::graph {
namespace {

const std::string kGraphs = TESSERA_GRAPHS;

class ExecPlanTest : public ::testing::Test {
 protected:
  ExecPlanTest() { kernels::register_builtin_families(families_); }
  ExecPlan plan(Graph& g) {
    fold_constants(g);
    return plan_graph_run(g, DType::kF16, families_);
  }
  kernels::FamilyRegistry families_;
};

Tensor filled(std::vector<int64_t> shape, float v = 0.5f) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Tensor::floats(shape, std::vector<float>(static_cast<size_t>(n), v));
}

// The highest element a placement of `shape` addresses, plus one.
int64_t extent(const Placement& p, const std::vector<int64_t>& shape) {
  int64_t last = p.offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return p.offset;
    last += (shape[d] - 1) * p.strides[d];
  }
  return last + 1;
}

int count_steps(const ExecPlan& p, bool copies) {
  int n = 0;
  for (const ExecStep& s : p.steps) n += s.copy == copies;
  return n;
}

TEST_F(ExecPlanTest, TransposesAreViewsUntilAKernelNeedsThemDense) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {64, 32});
  ValueId t = g.add_node(OpType::kTranspose, {x}, {{"perm", std::vector<int64_t>{1, 0}}})[0];
  ValueId w = g.add_constant("w", filled({64, 128}));
  ValueId y = g.add_node(OpType::kMatMul, {t, w})[0];
  g.add_output(y);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty());
  EXPECT_EQ(p.views, 1);
  // The transposed view [32, 64] with strides {1, 32} is copied dense for the matmul.
  EXPECT_EQ(p.values[static_cast<size_t>(t)].strides, (std::vector<int64_t>{1, 32}));
  ASSERT_EQ(p.steps.size(), 2u);
  EXPECT_TRUE(p.steps[0].copy);
  EXPECT_FALSE(p.steps[0].setup);  // it reads the graph's input, so it runs every time
  ASSERT_EQ(p.steps[1].kind, ExecStep::Kind::kKernel);
  EXPECT_EQ(p.steps[1].workload->kind, OpKind::kMatmul);
  EXPECT_EQ(p.steps[1].tensors[0].strides, (std::vector<int64_t>{64, 1}));
}

// Attention's query, key and value as Gathers of one transposed projection (split_heads): the
// projection is copied dense once, and each part is a dense view of that copy, where copying
// each part on its own took three launches for the same bytes. A part of a tensor whose other
// parts are not all taken is still copied alone.
TEST_F(ExecPlanTest, PartsCoveringATensorShareOneCopyOfIt) {
  auto build = [](int parts_used) {
    Graph g;
    ValueId x = g.add_input("x", ElemType::kF32, {5, 3, 2, 4});  // tokens, q/k/v, heads, size
    ValueId t = g.add_node(OpType::kTranspose, {x}, {{"perm", std::vector<int64_t>{1, 2, 0, 3}}})[0];  // [3, 2, 5, 4]
    std::vector<ValueId> part;
    for (int64_t k = 0; k < parts_used; ++k) {
      ValueId index = g.add_constant("i" + std::to_string(k), Tensor::ints({}, {k}));
      part.push_back(g.add_node(OpType::kGather, {t, index}, {{"axis", int64_t{0}}})[0]);  // [2, 5, 4]
    }
    Attrs tb{{"trans_a", int64_t{0}}, {"trans_b", int64_t{1}}, {"epilogue", std::string("")}};
    ValueId scores = g.add_node(OpType::kFusedMatMul, {part[0], part[1]}, tb)[0];  // q k^T: [2, 5, 5]
    g.add_output(parts_used == 3 ? g.add_node(OpType::kMatMul, {scores, part[2]})[0] : scores);
    return g;
  };
  Graph all = build(3);
  ExecPlan p = plan(all);
  ASSERT_TRUE(p.unsupported.empty());
  ASSERT_EQ(count_steps(p, true), 1);  // the whole projection, [3, 2, 5, 4]
  const ExecStep* copy = nullptr;
  for (const ExecStep& s : p.steps)
    if (s.copy) copy = &s;
  ASSERT_NE(copy, nullptr);
  const int whole = copy->buffers.back();
  // Both matmuls read their operands from that one buffer, each part dense at its offset.
  int reads = 0;
  std::set<int64_t> offsets;
  for (const ExecStep& s : p.steps) {
    if (s.kind != ExecStep::Kind::kKernel) continue;
    for (size_t k = 0; k + 1 < s.tensors.size(); ++k) {
      if (s.tensors[k].buffer != whole) continue;
      ++reads;
      offsets.insert(s.tensors[k].offset);
      EXPECT_EQ(s.tensors[k].strides, (std::vector<int64_t>{20, 4, 1}));
    }
  }
  EXPECT_EQ(reads, 3);
  EXPECT_EQ(offsets, (std::set<int64_t>{0, 40, 80}));
  // Two of three parts taken: each is copied on its own (copying the whole would move more).
  Graph two = build(2);
  ExecPlan q = plan(two);
  ASSERT_TRUE(q.unsupported.empty());
  EXPECT_EQ(count_steps(q, true), 2);
}

// On a Hopper GPU Tessera's heads' matmuls read the query, key and value where the projection
// wrote them, through tensor maps with the heads' strides, and the context matmul writes
// straight into [batch, tokens, heads x 64], which its transpose then reads dense: no copy.
// Batch 1: the heads are one level of batch (stride 64); batch 2: two levels, heads inside
// batches. A vendor run (dense operands) copies the projection once and the context back.
TEST_F(ExecPlanTest, AttentionHeadsAreReadInPlaceOnHopper) {
  const HardwareSpec h100 = find_spec("h100_sxm");
  for (int64_t batch : {1, 2}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const std::string path =
        ::testing::TempDir() + "attention_" + std::to_string(getpid()) + "_" + std::to_string(batch) + ".onnx";
    write_onnx(attention_graph(batch, 32, 4, 64), path);
    ModelRunRequest r;
    r.model_path = path;
    // The original graph's q k^T is a MatMul of a transposed view of k: read as the other
    // layout of B (trans_b), as the rewrites make it.
    for (const std::string graph : {"original", "optimized"}) {
      SCOPED_TRACE(graph);
      r.graph = graph;
      PreparedModel m = prepare_model(r, h100, Target::for_spec(h100, "none"), nullptr, families_);
      ASSERT_TRUE(m.plan.unsupported.empty()) << m.plan.unsupported[0];
      EXPECT_EQ(count_steps(m.plan, true), 0);
      const kernels::OperandStrides heads{768, 64, 4, batch == 1 ? 0 : 32 * 768};
      int scores = 0, contexts = 0;
      for (const ExecStep& s : m.plan.steps) {
        if (!s.workload || s.workload->kind != OpKind::kBatchMatmul) continue;
        const MatmulShape& mm = s.workload->matmul();
        EXPECT_EQ(mm.batch, 4 * batch);
        if (mm.trans_b) {  // q k^T: both read in place, k 256 elements after q
          ++scores;
          EXPECT_EQ(s.layouts[0], heads);
          EXPECT_EQ(s.layouts[1], heads);
          EXPECT_EQ(s.tensors[1].buffer, s.tensors[0].buffer);
          EXPECT_EQ(s.tensors[1].offset - s.tensors[0].offset, 256);
        } else {  // p v: the probabilities dense, v in place
          ++contexts;
          EXPECT_FALSE(s.layouts[0]);
          EXPECT_EQ(s.layouts[1], heads);
          EXPECT_EQ(s.layouts[2], (kernels::OperandStrides{256, 64, 4, batch == 1 ? 0 : 32 * 256}));
        }
        // What the tensor maps will address lies inside the buffers.
        for (size_t k = 0; k < 2; ++k) {
          if (!s.layouts[k]) continue;
          const kernels::OperandStrides& o = *s.layouts[k];
          const int64_t rows = k == 0 ? mm.m : mm.trans_b ? mm.n : mm.k, cols = k == 0 || mm.trans_b ? mm.k : mm.n;
          const int64_t last = s.tensors[k].offset + (rows - 1) * o.row + (cols - 1) + (o.inner_count - 1) * o.inner +
                               (mm.batch / o.inner_count - 1) * o.outer;
          EXPECT_LE((last + 1) * 2, m.plan.buffers[static_cast<size_t>(s.tensors[k].buffer)].bytes);
        }
      }
      EXPECT_EQ(scores, 1);
      EXPECT_EQ(contexts, 1);
    }
    r.vendor = true;
    PreparedModel v = prepare_model(r, h100, Target::for_spec(h100, "none"), nullptr, families_);
    EXPECT_EQ(count_steps(v.plan, true), 2);  // the projection once, and the context
    for (const ExecStep& s : v.plan.steps) EXPECT_FALSE(kernels::any_strided(s.layouts)) << s.label;
    std::filesystem::remove(path);
  }
}

// A run's prediction is of what its plan launches: the heads' transposes read in place cost
// nothing (their memory estimate is shown apart, under kNoLaunch), copies the plan inserts cost
// their bytes, and q k^T is costed as the workload that runs.
TEST_F(ExecPlanTest, ThePredictionIsOfWhatThePlanLaunches) {
  const HardwareSpec h100 = find_spec("h100_sxm");
  const std::string path = ::testing::TempDir() + "attention_predicted_" + std::to_string(getpid()) + ".onnx";
  write_onnx(attention_graph(2, 32, 4, 64), path);
  ModelRunRequest r;
  r.model_path = path;
  r.graph = "original";
  auto sum = [](const std::map<std::string, double>& m, bool views) {
    double t = 0;
    for (const auto& [c, us] : m) t += (c == kNoLaunch) == views ? us : 0.0;
    return t;
  };
  PreparedModel in_place = prepare_model(r, h100, Target::for_spec(h100, "none"), nullptr, families_);
  const double oracle_us = in_place.info["oracle_us"].get<double>(), predicted_us = in_place.info["predicted_us"].get<double>();
  EXPECT_DOUBLE_EQ(predicted_us, planned_cost(in_place.predicted));
  EXPECT_DOUBLE_EQ(predicted_us, sum(in_place.predicted, false));
  ASSERT_TRUE(in_place.predicted.count(kNoLaunch));
  EXPECT_GT(in_place.predicted.at(kNoLaunch), 0);  // the transposes
  EXPECT_FALSE(in_place.predicted.count("layout and broadcast copies"));
  EXPECT_LT(predicted_us, oracle_us);
  ASSERT_TRUE(in_place.predicted.count("batch_matmul"));
  // Every category the plan reports has its prediction, views with no launches.
  Json plan = describe_plan(in_place.graph, in_place.plan, in_place.predicted);
  double listed = 0;
  for (const Json& c : plan["by_category"]) {
    listed += c["category"] == kNoLaunch ? 0.0 : c["predicted_us"].get<double>();
    if (c["category"] == kNoLaunch) {
      EXPECT_EQ(c["steps"], 0);
    }
  }
  EXPECT_NEAR(listed, predicted_us, 1e-9);
  // Dense operands: the heads are copied, and the copies cost what they move.
  r.dense = true;
  PreparedModel dense = prepare_model(r, h100, Target::for_spec(h100, "none"), nullptr, families_);
  ASSERT_TRUE(dense.predicted.count("layout and broadcast copies"));
  const double copies = dense.predicted.at("layout and broadcast copies");
  EXPECT_GE(copies, costmodel::kLaunchUs * count_steps(dense.plan, true));
  EXPECT_GT(dense.info["predicted_us"].get<double>(), predicted_us);
  std::filesystem::remove(path);
}

// Reshapes of strided tensors are views where the dimensions they split or merge step through
// each other: a head split of a projection's column slice is, a merge of transposed axes is not.
TEST_F(ExecPlanTest, ReshapesOfStridedTensorsAreViewsWhereTheyNest) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {5, 2304});
  auto ints = [](std::vector<int64_t> v) { return Tensor::ints({static_cast<int64_t>(v.size())}, v); };
  ValueId slice = g.add_node(OpType::kSlice, {x, g.add_constant("b", ints({768})), g.add_constant("e", ints({1536})),
                                              g.add_constant("a", ints({1}))})[0];
  ValueId heads = g.add_node(OpType::kReshape, {slice, g.add_constant("s1", ints({1, 5, 12, 64}))})[0];
  ValueId t = g.add_node(OpType::kTranspose, {heads}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}})[0];
  ValueId merged = g.add_node(OpType::kReshape, {t, g.add_constant("s2", ints({60, 64}))})[0];
  g.add_output(g.add_node(OpType::kErf, {merged})[0]);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty()) << p.unsupported[0];
  EXPECT_EQ(p.values[static_cast<size_t>(heads)].strides, (std::vector<int64_t>{1, 2304, 64, 1}));  // extent 1: any stride
  EXPECT_EQ(p.values[static_cast<size_t>(heads)].offset, 768);
  EXPECT_EQ(p.values[static_cast<size_t>(t)].strides, (std::vector<int64_t>{1, 64, 2304, 1}));
  EXPECT_EQ(p.values[static_cast<size_t>(merged)].strides, (std::vector<int64_t>{64, 1}));  // of a dense copy
  EXPECT_EQ(p.views, 4);
  EXPECT_EQ(count_steps(p, true), 1);
}

TEST_F(ExecPlanTest, ConvolutionsRunChannelsLastAndConvertTheirFiltersBeforeTheRuns) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 16, 8, 8});
  ValueId w1 = g.add_constant("w1", filled({32, 16, 3, 3}));
  ValueId w2 = g.add_constant("w2", filled({32, 32, 1, 1}));
  ValueId y1 = g.add_node(OpType::kConv, {x, w1}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}})[0];
  ValueId r = g.add_node(OpType::kRelu, {y1})[0];
  ValueId y2 = g.add_node(OpType::kConv, {r, w2})[0];
  g.add_output(y2);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty());
  const std::vector<int64_t> nhwc{8 * 8 * 32, 1, 8 * 32, 32};
  EXPECT_EQ(p.values[static_cast<size_t>(y1)].strides, nhwc);
  EXPECT_EQ(p.values[static_cast<size_t>(r)].strides, nhwc) << "the relu keeps its input's layout";
  int setup = 0, input_copies = 0;
  for (const ExecStep& s : p.steps) {
    setup += s.setup;
    input_copies += s.copy && !s.setup;
    if (s.kind == ExecStep::Kind::kKernel && s.workload->kind == OpKind::kConv2d) {
      const auto& xs = s.tensors[0].strides;
      EXPECT_EQ(xs[1], 1) << s.label << ": channels innermost";
    }
  }
  // The 3x3 filter goes to KRSC once; the 1x1 one already is. The NCHW input is copied
  // channels-last on every run.
  EXPECT_EQ(setup, 1);
  EXPECT_EQ(input_copies, 1);
}

// x [1, 8, 4, 4] through a 1x1 convolution to 16 channels, split into two halves of 8 (the
// parts of merged convolutions); returns the halves.
std::vector<ValueId> split_conv_output(Graph& g) {
  ValueId x = g.add_input("x", ElemType::kF32, {1, 8, 4, 4});
  ValueId w = g.add_constant("w", filled({16, 8, 1, 1}));
  ValueId y = g.add_node(OpType::kConv, {x, w})[0];
  return g.add_node(OpType::kSplit, {y}, {{"axis", int64_t{1}}, {"split", std::vector<int64_t>{8, 8}}}, "", 2);
}

TEST_F(ExecPlanTest, ChannelSplitsOfNhwcTensorsAreCopiedAndConcatsWriteSlices) {
  Graph g;
  const std::vector<ValueId> parts = split_conv_output(g);
  ValueId wa = g.add_constant("wa", filled({8, 8, 1, 1}));
  ValueId a = g.add_node(OpType::kConv, {parts[0], wa})[0];
  ValueId c = g.add_node(OpType::kConcat, {a, parts[1]}, {{"axis", int64_t{1}}})[0];
  g.add_output(c);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty()) << p.unsupported[0];
  // The split's halves are views at channel offsets 0 and 8 of the NHWC output.
  EXPECT_EQ(p.values[static_cast<size_t>(parts[1])].offset - p.values[static_cast<size_t>(parts[0])].offset,
            8);
  int concat_copies = 0;
  for (const ExecStep& s : p.steps)
    if (!s.copy && s.generic && s.node != kNone && g.node(s.node).op == OpType::kConcat) {
      ++concat_copies;
      EXPECT_EQ(s.buffers[4], p.values[static_cast<size_t>(c)].buffer);
    }
  EXPECT_EQ(concat_copies, 2);
  EXPECT_GE(count_steps(p, true), 2) << "the input's layout copy and the strided half the second conv reads";
}

TEST_F(ExecPlanTest, EveryTensorLiesInsideItsBufferAndLiveBuffersNeverShareBytes) {
  for (const std::string name : {"bert_base", "resnet50", "inception_v3"}) {
    Graph g = import_onnx(kGraphs + "/" + name + ".onnx");
    ExecPlan p = plan(g);
    ASSERT_TRUE(p.unsupported.empty()) << name << ": " << p.unsupported[0];
    for (const ExecStep& s : p.steps) {
      if (s.kind != ExecStep::Kind::kKernel) continue;
      const TensorExpr e = s.workload->expr();
      for (size_t k = 0; k < s.tensors.size(); ++k) {
        const Placement& t = s.tensors[k];
        const auto& shape = e.tensors[k].shape;
        int64_t elements = 1;
        for (int64_t d : shape) elements *= d;
        const int64_t bytes = p.buffers[static_cast<size_t>(t.buffer)].bytes;
        EXPECT_LE((t.offset + elements) * kernels::store_bytes(t.type), bytes) << name << ": " << s.label;
        EXPECT_EQ(placement_byte_offset(t) % 16, 0) << name << ": " << s.label;
      }
    }
    for (size_t v = 0; v < p.values.size(); ++v) {
      const Placement& t = p.values[v];
      if (t.buffer < 0) continue;
      EXPECT_LE(extent(t, g.values()[v].shape) * kernels::store_bytes(t.type),
                p.buffers[static_cast<size_t>(t.buffer)].bytes)
          << name << ": " << g.values()[v].name;
    }
    EXPECT_GT(p.arena_bytes, 0);
    EXPECT_LT(p.arena_bytes, p.intermediate_bytes) << name << ": the arena reuses bytes";
    for (size_t a = 0; a < p.buffers.size(); ++a)
      for (size_t b = a + 1; b < p.buffers.size(); ++b) {
        const ExecBuffer &x = p.buffers[a], &y = p.buffers[b];
        if (x.kind != ExecBuffer::Kind::kArena || y.kind != ExecBuffer::Kind::kArena) continue;
        const bool live_together = x.first_step <= y.last_step && y.first_step <= x.last_step;
        const bool share =
            x.arena_offset < y.arena_offset + y.bytes && y.arena_offset < x.arena_offset + x.bytes;
        EXPECT_FALSE(live_together && share) << name << ": buffers " << a << " and " << b;
        EXPECT_LE(x.arena_offset + x.bytes, p.arena_bytes);
      }
  }
}

// A generic operator on a channel slice of an NHWC tensor (a part of merged convolutions)
// writes NHWC too, so the convolution after it reads it as it lies: no layout copy.
TEST_F(ExecPlanTest, OperatorsOnChannelSlicesKeepTheLayout) {
  Graph g;
  const std::vector<ValueId> parts = split_conv_output(g);
  ValueId e = g.add_node(OpType::kErf, {parts[0]})[0];
  ValueId w2 = g.add_constant("w2", filled({8, 8, 1, 1}));
  g.add_output(g.add_node(OpType::kConv, {e, w2})[0]);
  g.add_output(parts[1]);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty()) << p.unsupported[0];
  EXPECT_EQ(p.values[static_cast<size_t>(e)].strides, (std::vector<int64_t>{128, 1, 32, 8}));
  EXPECT_EQ(count_steps(p, true), 1) << "the input's layout copy only";
}

TEST_F(ExecPlanTest, FiveModelsPlanWithEveryOperatorOnTheGpu) {
  for (const std::string name : {"bert_base", "vit_b16", "resnet50", "resnext50", "inception_v3"}) {
    Graph g = import_onnx(kGraphs + "/" + name + ".onnx");
    ExecPlan p = plan(g);
    EXPECT_TRUE(p.unsupported.empty()) << name << ": " << (p.unsupported.empty() ? "" : p.unsupported[0]);
    int kernels = 0;
    for (const ExecStep& s : p.steps) kernels += s.kind == ExecStep::Kind::kKernel;
    EXPECT_GT(kernels, 40) << name;
  }
}

TEST_F(ExecPlanTest, OperatorsWithoutAKernelAreNamed) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 8, 8});
  ValueId pads = g.add_constant("pads", Tensor::ints({8}, {0, 0, 1, 1, 0, 0, 1, 1}));
  ValueId y = g.add_node(OpType::kPad, {x, pads}, {{"mode", std::string("reflect")}}, "pad_me")[0];
  g.add_output(g.add_node(OpType::kRelu, {y})[0]);
  ExecPlan p = plan(g);
  ASSERT_EQ(p.unsupported.size(), 1u);
  EXPECT_NE(p.unsupported[0].find("Pad 'pad_me': Pad mode reflect"), std::string::npos) << p.unsupported[0];
}

// A constant Pad fills the output from a one-element constant and copies the input into the
// interior; an inference BatchNormalization is one map with its statistics folded per channel.
TEST_F(ExecPlanTest, ConstantPadsAndBatchNormsRunAsGenericKernels) {
  Graph g;
  ValueId x = g.add_input("x", ElemType::kF32, {1, 3, 4, 5});
  ValueId pads = g.add_constant("pads", Tensor::ints({8}, {0, 0, 1, 2, 0, 0, 1, 2}));
  ValueId y = g.add_node(OpType::kPad, {x, pads})[0];
  std::vector<ValueId> stats;
  for (const char* name : {"scale", "bias", "mean", "var"})
    stats.push_back(g.add_constant(name, Tensor::floats({3}, {1.0f, 2.0f, 4.0f})));
  ValueId z = g.add_node(OpType::kBatchNormalization, {y, stats[0], stats[1], stats[2], stats[3]},
                         {{"epsilon", 0.0}})[0];
  g.add_output(z);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty()) << p.unsupported[0];
  ASSERT_EQ(p.steps.size(), 3u);
  // The fill reads a one-element constant made by the plan at stride 0 everywhere.
  const ExecStep& fill = p.steps[0];
  ASSERT_TRUE(fill.generic);
  const ExecBuffer& value = p.buffers[static_cast<size_t>(fill.buffers[0])];
  ASSERT_TRUE(value.data);
  EXPECT_EQ(value.data->elements(), 1);
  EXPECT_EQ(fill.generic->params.count, 1 * 3 * 6 * 9);
  // The interior copy starts one row and two columns in: (1 * 9 + 2) elements.
  EXPECT_EQ(p.steps[1].generic->params.out_offset, 11);
  // The batch norm's folded scale is scale / sqrt(var) per channel.
  const ExecStep& bn = p.steps[2];
  const ExecBuffer& a = p.buffers[static_cast<size_t>(bn.buffers[1])];
  ASSERT_TRUE(a.data);
  EXPECT_FLOAT_EQ(static_cast<float>(a.data->at(2)), 4.0f / 2.0f);
}

TEST_F(ExecPlanTest, BroadcastOperandsGoToTheGenericMapAndTransposedOperandsAreCopied) {
  Graph g;
  ValueId a = g.add_input("a", ElemType::kF32, {2, 4, 8, 16});
  ValueId b = g.add_input("b", ElemType::kF32, {2, 4, 8, 16});
  ValueId bias = g.add_constant("bias", filled({8}));
  ValueId s = g.add_node(OpType::kAdd, {a, g.add_constant("one", filled({16}, 1.0f))})[0];
  ValueId mm =
      g.add_node(OpType::kFusedMatMul, {s, b, bias},
                 {{"trans_a", int64_t{0}}, {"trans_b", int64_t{1}}, {"epilogue", std::string("bias")}})[0];
  g.add_output(mm);
  ExecPlan p = plan(g);
  ASSERT_TRUE(p.unsupported.empty()) << p.unsupported[0];
  bool map = false, kernel = false;
  for (const ExecStep& st : p.steps) {
    if (st.generic && !st.copy && g.node(st.node).op == OpType::kAdd) {
      map = true;
      EXPECT_EQ(st.generic->params.in_strides[1][0], 0) << "the [16] operand is read broadcast";
    }
    if (st.kind == ExecStep::Kind::kKernel) {
      kernel = true;
      EXPECT_EQ(st.workload->kind, OpKind::kBatchMatmul);
      for (const Placement& t : st.tensors) EXPECT_EQ(t.strides.back(), 1) << st.label;
    }
  }
  EXPECT_TRUE(map);
  EXPECT_TRUE(kernel);
}

TEST_F(ExecPlanTest, EveryGenericOperatorPlans) {
  Graph g = generic_operators_graph();
  ExecPlan p = plan(g);
  EXPECT_TRUE(p.unsupported.empty()) << (p.unsupported.empty() ? "" : p.unsupported[0]);
  std::set<OpType> generic;
  for (const ExecStep& s : p.steps)
    if (s.generic && s.node != kNone) generic.insert(g.node(s.node).op);
  for (OpType op : {OpType::kConcat, OpType::kPad, OpType::kBatchNormalization, OpType::kAveragePool,
                    OpType::kMaxPool, OpType::kGather, OpType::kGatherND, OpType::kGatherElements,
                    OpType::kCumSum, OpType::kErf, OpType::kWhere, OpType::kReduceMean})
    EXPECT_TRUE(generic.count(op)) << op_type_name(op);
  // As the GPU test runs it: written as ONNX, read back, planned, and evaluated on the host.
  const std::string path = ::testing::TempDir() + "generic_plan_" + std::to_string(::getpid()) + ".onnx";
  write_onnx(generic_operators_graph(), path);
  Graph back = import_onnx(path);
  std::filesystem::remove(path);
  ExecPlan q = plan(back);
  EXPECT_TRUE(q.unsupported.empty()) << (q.unsupported.empty() ? "" : q.unsupported[0]);
  std::vector<Tensor> outputs = run_graph(back, random_graph_inputs(back, 1));
  ASSERT_EQ(outputs.size(), 5u);
  EXPECT_EQ(outputs[0].shape, (std::vector<int64_t>{3, 16}));
}

// graph run --compare's summary of its four runs, from their back-to-back GPU times: the
// rewrites' gain (fused -> optimized on Tessera's kernels) measured and predicted, and the
// speedup over the original graph on the vendor library; a run that is missing leaves its
// figures out.
TEST(GraphRunCompare, GainsComeFromTheBackToBackTimes) {
  auto run = [](const char* graph, const char* kernels, double b2b, double median, double predicted) {
    return Json{{"graph", graph},
                {"kernels", kernels},
                {"latency_us", {{"median", median}, {"back_to_back", b2b}}},
                {"predicted_us", predicted}};
  };
  Json runs = Json::array({run("optimized", "tessera", 800, 900, 600), run("fused", "tessera", 1000, 950, 750),
                           run("fused", "vendor", 1100, 1200, 750), run("original", "vendor", 2000, 2100, 900)});
  Json gains = compare_gains(runs);
  EXPECT_NEAR(gains["rewrite_gain"].get<double>(), 0.2, 1e-12);            // 1 - 800 / 1000, not the medians'
  EXPECT_NEAR(gains["predicted_rewrite_gain"].get<double>(), 0.2, 1e-12);  // 1 - 600 / 750
  EXPECT_NEAR(gains["speedup_vs_vendor"].get<double>(), 2.5, 1e-12);       // 2000 / 800
  // The fused run crashed: no rewrite gain; the vendor comparison stands.
  Json crashed = Json::array({runs[0], Json{{"graph", "fused"}, {"kernels", "tessera"}, {"crashed", "signal 11"}}, runs[2], runs[3]});
  Json partial = compare_gains(crashed);
  EXPECT_FALSE(partial.contains("rewrite_gain"));
  EXPECT_FALSE(partial.contains("predicted_rewrite_gain"));
  EXPECT_NEAR(partial["speedup_vs_vendor"].get<double>(), 2.5, 1e-12);
  EXPECT_TRUE(compare_gains(Json::array()).empty());
}

}  // namespace
}  // namespace tessera::graph
