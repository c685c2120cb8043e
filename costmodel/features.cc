#include "costmodel/features.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "costmodel/analytic.h"
#include "costmodel/roofline.h"

namespace tessera::costmodel {
namespace {

// Layout version 5 (2: gemm_wgmma and its consumers, tma_store and pingpong knobs; 3: its cluster_m knob; 5: its
// blocks_per_sm knob); version 4 kept layout 3 but changed the analytic features of wgmma plans (features.h).
// Appending or reordering anything here means kFeatureVersion + 1.
constexpr const char* kKinds[] = {"matmul", "batch_matmul", "conv2d", "softmax", "layernorm", "reduce", "elementwise"};
constexpr OpKind kKindValues[] = {OpKind::kMatmul,    OpKind::kBatchMatmul, OpKind::kConv2d,     OpKind::kSoftmax,
                                  OpKind::kLayernorm, OpKind::kReduce,      OpKind::kElementwise};
constexpr const char* kDtypes[] = {"f16", "bf16", "f32"};
constexpr DType kDtypeValues[] = {DType::kF16, DType::kBF16, DType::kF32};
constexpr int kShapeSlots = 11;
constexpr const char* kFamilies[] = {"gemm_tc", "gemm_tf32", "gemm_simt", "conv_tc", "conv_direct", "rows", "elementwise",
                                     "gemm_wgmma"};
constexpr const char* kKnobs[] = {"block_m", "block_n", "block_k",        "warps_m",     "warps_n", "stages",
                                  "vec",     "group_m", "split_k",        "thread_m",    "thread_n", "threads",
                                  "vec_k",   "items",   "row_threads",    "rows_per_block", "single_pass", "consumers", "tma_store", "pingpong",
                                  "cluster_m", "blocks_per_sm"};
constexpr const char* kBounds[] = {"compute", "smem", "l2", "dram", "latency", "launch"};

double lg(double x) { return std::log2(std::max(x, 0.0) + 1.0); }

// The workload's dimensions in kShapeSlots slots (their meaning depends on the kind, which
// the one-hot kind features tell the trees).
std::vector<double> shape_slots(const Workload& w) {
  std::vector<double> v;
  switch (w.kind) {
    case OpKind::kMatmul:
    case OpKind::kBatchMatmul: {
      const MatmulShape& m = w.matmul();
      v = {double(m.batch), double(m.m), double(m.n), double(m.k), double(m.trans_a), double(m.trans_b)};
      break;
    }
    case OpKind::kConv2d: {
      const Conv2dShape& c = w.conv2d();
      v = {double(c.n), double(c.h), double(c.w), double(c.c), double(c.k), double(c.r), double(c.s),
           double(c.stride_h), double(c.pad_h), double(c.dilation_h), double(c.groups)};
      break;
    }
    case OpKind::kSoftmax:
    case OpKind::kLayernorm: {
      const RowShape& r = w.rows();
      v = {double(r.rows), double(r.cols)};
      break;
    }
    case OpKind::kReduce: {
      const ReduceShape& r = w.reduce();
      v = {double(r.rows), double(r.cols), double(r.op == ReduceOp::kMax)};
      break;
    }
    case OpKind::kElementwise: {
      const ElementwiseShape& e = w.elementwise();
      v = {double(e.n), double(e.ops.size())};
      break;
    }
  }
  v.resize(kShapeSlots, 0.0);
  return v;
}

std::vector<std::string> make_names() {
  std::vector<std::string> n;
  for (const char* k : kKinds) n.push_back(std::string("kind.") + k);
  for (const char* d : kDtypes) n.push_back(std::string("dtype.") + d);
  n.insert(n.end(), {"out_f32", "tf32", "epilogue_ops"});
  for (int i = 0; i < kShapeSlots; ++i) n.push_back("shape." + std::to_string(i));
  n.insert(n.end(), {"log2_flops", "log2_min_bytes", "log2_floor_us", "floor_memory_bound", "gemm.m", "gemm.n", "gemm.k",
                     "gemm.batch"});
  for (const char* f : kFamilies) n.push_back(std::string("family.") + f);
  for (const char* k : kKnobs) n.push_back(std::string("knob.") + k);
  n.insert(n.end(), {"analytic.log2_us", "analytic.log2_over_floor", "analytic.compute", "analytic.smem", "analytic.l2",
                     "analytic.dram", "analytic.log2_blocks", "analytic.blocks_per_sm", "analytic.waves",
                     "analytic.last_wave_fill", "analytic.overlap", "analytic.feasible"});
  for (const char* b : kBounds) n.push_back(std::string("bound.") + b);
  n.insert(n.end(), {"plan.threads", "plan.smem_bytes", "plan.registers", "plan.load_bytes", "plan.loads_in_flight",
                     "plan.stages", "plan.split", "plan.input_passes", "plan.warp_tile_m", "plan.warp_tile_n"});
  return n;
}

}  // namespace

const std::vector<std::string>& feature_names() {
  static const std::vector<std::string> names = make_names();
  return names;
}

FeatureExtractor::FeatureExtractor(const kernels::FamilyRegistry& families, HardwareSpec hw)
    : families_(&families), hw_(std::move(hw)) {}

std::vector<float> FeatureExtractor::row(const Workload& w, const Schedule& s) const {
  std::vector<double> f;
  f.reserve(feature_names().size());
  for (OpKind k : kKindValues) f.push_back(w.kind == k);
  for (DType d : kDtypeValues) f.push_back(w.dtype == d);
  f.push_back(w.out_dtype == DType::kF32);
  f.push_back(w.allow_tf32);
  f.push_back(double(w.epilogue.size()));
  for (double d : shape_slots(w)) f.push_back(lg(d));
  RooflineFloor floor = roofline_floor(w, hw_);
  f.push_back(lg(floor.flops));
  f.push_back(lg(floor.min_bytes));
  f.push_back(std::log2(std::max(floor.floor_us, 1e-3)));
  f.push_back(floor.memory_bound());

  const kernels::KernelFamily* family = families_->find(s.family);
  TESSERA_CHECK(family != nullptr, "no kernel family '" + s.family + "' for the features");
  for (const auto& knob : s.knobs)
    TESSERA_CHECK(std::find_if(std::begin(kKnobs), std::end(kKnobs), [&](const char* k) { return knob.first == k; }) !=
                      std::end(kKnobs),
                  "knob '" + knob.first + "' has no slot in feature layout " + std::to_string(kFeatureVersion));
  kernels::TilePlan plan = family->tile_plan(w, s);
  // The GEMM the workload is (a convolution's implicit GEMM), where it is one.
  if (plan.modeled.kind == OpKind::kMatmul || plan.modeled.kind == OpKind::kBatchMatmul) {
    const MatmulShape& m = plan.modeled.matmul();
    f.insert(f.end(), {lg(double(m.m)), lg(double(m.n)), lg(double(m.k)), lg(double(m.batch))});
  } else {
    f.insert(f.end(), {0.0, 0.0, 0.0, 0.0});
  }
  bool known = false;
  for (const char* name : kFamilies) {
    f.push_back(s.family == name);
    known |= s.family == name;
  }
  TESSERA_CHECK(known, "family '" + s.family + "' has no slot in feature layout " + std::to_string(kFeatureVersion));
  for (const char* k : kKnobs) {
    std::optional<int64_t> v = s.find(k);
    f.push_back(v ? (std::string_view(k) == "single_pass" ? double(*v) : std::log2(double(std::max<int64_t>(*v, 1))))
                  : -1.0);
  }

  Estimate e = estimate(plan, hw_);
  double us = e.feasible ? e.us : 1e7;
  f.push_back(std::log2(std::max(us, 1e-3)));
  f.push_back(std::log2(std::max(us, 1e-3) / std::max(floor.floor_us, 1e-3)));
  for (double t : {e.compute_us, e.smem_us, e.l2_us, e.dram_us}) f.push_back(lg(t));
  f.push_back(lg(e.blocks));
  f.push_back(e.blocks_per_sm);
  f.push_back(e.waves);
  double slots = e.blocks_per_sm * double(hw_.sm_count);
  f.push_back(slots > 0 && e.waves > 0 ? (e.blocks - (e.waves - 1) * slots) / slots : 0.0);
  f.push_back(e.overlap);
  f.push_back(e.feasible);
  for (const char* b : kBounds) f.push_back(e.bound == b);
  f.push_back(lg(double(plan.threads)));
  f.push_back(lg(double(plan.smem_bytes)));
  f.push_back(double(plan.registers));
  f.push_back(double(plan.load_bytes));
  f.push_back(lg(double(plan.loads_in_flight)));
  f.push_back(double(plan.stages));
  f.push_back(double(plan.split));
  f.push_back(plan.input_passes);
  double wtm = 0, wtn = 0;
  if (plan.warps_m > 0 && plan.warps_n > 0) {
    const TensorExpr ex = plan.modeled.expr();
    for (size_t a = 0; a < ex.axes.size(); ++a) {
      if (ex.axes[a].name == "m") wtm = double(plan.block[a]) / double(plan.warps_m);
      if (ex.axes[a].name == "n") wtn = double(plan.block[a]) / double(plan.warps_n);
    }
  }
  f.push_back(lg(wtm));
  f.push_back(lg(wtn));
  TESSERA_CHECK(f.size() == feature_names().size(), "feature row does not match the layout");
  return std::vector<float>(f.begin(), f.end());
}

std::vector<float> FeatureExtractor::rows(std::span<const Candidate> candidates) const {
  std::vector<float> out;
  out.reserve(candidates.size() * feature_names().size());
  for (const Candidate& c : candidates) {
    std::vector<float> r = row(c.workload, c.schedule);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

}  // namespace tessera::costmodel
