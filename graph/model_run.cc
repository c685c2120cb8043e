#include "graph/model_run.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "core/error.h"
#include "costmodel/analytic.h"
#include "db/database.h"
#include "graph/exec_plan.h"
#include "graph/graph_run.h"
#include "graph/onnx_io.h"
#include "graph/ops.h"
#include "graph/optimize.h"
#include "graph/oracle.h"
#include "graph/rules.h"
#include "kernels/builder.h"
#include "kernels/families.h"
#include "measure/devices.h"
#include "search/tile.h"

namespace tessera::graph {
namespace {

// The database's best schedule for `w` on `target` that this build runs (best_records, as the
// oracle costs it), else construction's first.
std::pair<Schedule, std::string> choose_schedule(const Workload& w, const kernels::OperandLayouts& layouts,
                                                 db::TuningDatabase* db, const Target& target,
                                                 const kernels::FamilyRegistry& families,
                                                 const HardwareSpec& hw, costmodel::AnalyticModel& model) {
  // Operands the plan left strided take a family that reads them so.
  const bool strided = kernels::any_strided(layouts);
  auto runs = [&](const kernels::KernelFamily* f) { return f && (!strided || f->reads_strided(w, layouts)); };
  if (db != nullptr) {
    // The fastest record whose schedule this build's family still runs (an older record may
    // lack a knob added since, or break a limit validate() checks now). A scaled matmul
    // (alpha) without records of its own takes its unscaled form's: the scale is one multiply
    // per output in the same kernel.
    std::vector<Workload> forms{w};
    if (product_scale(w) != 1.0) forms.push_back(unscaled(w));
    for (const Workload& form : forms) {
      for (const db::StoredRecord& r : best_records(*db, form, target, 8).records) {
        const kernels::KernelFamily* f = families.find(r.record.schedule.family);
        if (runs(f) && kernels::has_every_knob(*f, r.record.schedule, w, hw) && !f->validate(r.record.schedule, w, hw))
          return {r.record.schedule, form == w ? "database" : "database (unscaled form)"};
      }
    }
  }
  search::ConstructOptions options;
  options.top_k = strided ? 10 : 1;  // the top 10 hold each family's best
  search::Construction c = search::construct(w, families, hw, model, options);
  for (const auto& candidate : c.candidates)
    if (runs(families.find(candidate.schedule.family))) return {candidate.schedule, "construction"};
  if (strided) throw InternalError(w.key() + ": no schedule of construction reads the operands as the plan left them");
  throw UserError(w.key() + ": construction found no schedule");
}

// Kernel steps that read or write an operand strided, as it lies.
int in_place_steps(const ExecPlan& plan) {
  return static_cast<int>(std::count_if(plan.steps.begin(), plan.steps.end(),
                                        [](const ExecStep& s) { return kernels::any_strided(s.layouts); }));
}

constexpr const char* kCopies = "layout and broadcast copies";

std::string category(const Graph& g, const ExecStep& s) {
  if (s.copy) return kCopies;
  if (s.kind == ExecStep::Kind::kKernel) return std::string(op_kind_name(s.workload->kind));
  return std::string(op_type_name(g.node(s.node).op)) + " (generic)";
}

// Tessera's kernels on a Hopper GPU read matmul operands strided through tensor maps; vendor
// runs give the libraries dense ones.
PlanOptions plan_options(const ModelRunRequest& r, const HardwareSpec& hw) {
  PlanOptions o;
  o.strided_operands = hw.cc_major == 9 && !r.vendor && !r.dense;
  return o;
}

// m.graph planned for the oracle's GPU, with the oracle's sum over its operators ("oracle_us")
// and the prediction of what the plan launches (m.predicted, "predicted_us").
void plan_and_predict(PreparedModel& m, const ModelRunRequest& r, const kernels::FamilyRegistry& families,
                      CostOracle& oracle) {
  m.info["oracle_us"] = oracle.graph_cost(m.graph);
  m.info["operators"] = m.graph.live_nodes();
  m.plan = plan_graph_run(m.graph, oracle.dtype(), families, plan_options(r, oracle.hw()));
  m.predicted = predicted_by_category(m.graph, m.plan, oracle);
  m.info["predicted_us"] = planned_cost(m.predicted);
}

// A category's predicted time (0 where the prediction has none).
double predicted_in(const std::map<std::string, double>& predicted, const std::string& category) {
  auto it = predicted.find(category);
  return it == predicted.end() ? 0.0 : it->second;
}

Graph rewritten(const Graph& original, const ModelRunRequest& r, CostOracle& oracle, Json& info) {
  if (r.graph == "original") return original;
  RuleSet set = load_rules();
  std::vector<const Rule*> rules = set.all();
  SearchResult result;
  if (r.graph == "fused") {
    result = fuse_only(original, rules, oracle);
  } else if (r.graph == "optimized") {
    SearchOptions options;
    options.budget = r.budget;
    result = optimize_graph(original, rules, oracle, options);
  } else {
    throw UserError("--graph must be optimized, fused or original (got '" + r.graph + "')");
  }
  Json rewrites = Json::object();
  for (const auto& [rule, count] : result.counts()) rewrites[rule] = count;
  info["rewrites"] = rewrites;
  info["search_s"] = result.seconds;
  return std::move(result.best);
}

}  // namespace

PreparedModel prepare_model(const ModelRunRequest& r, const HardwareSpec& hw, const Target& target,
                            db::TuningDatabase* db, const kernels::FamilyRegistry& families) {
  const DType dtype = parse_dtype(r.dtype, "--dtype");
  PreparedModel m;
  m.original = import_onnx(r.model_path);
  fold_constants(m.original);
  CostOracle oracle(families, hw, target, db, dtype);
  m.graph = rewritten(m.original, r, oracle, m.info);
  plan_and_predict(m, r, families, oracle);
  return m;
}

std::map<std::string, double> predicted_by_category(const Graph& g, const ExecPlan& plan, CostOracle& oracle) {
  std::map<std::string, double> out;
  // Per operator: whether it has a step that is not a copy, or copies alone (counted as such).
  std::vector<bool> launched(g.nodes().size(), false), copied(g.nodes().size(), false);
  for (const ExecStep& s : plan.steps) {
    if (s.setup || s.node == kNone) continue;
    const size_t k = static_cast<size_t>(s.node);
    const Node& n = g.node(s.node);
    copied[k] = copied[k] || s.copy;
    if (s.copy) {
      // What the copy moves (read and written) at DRAM bandwidth, after a launch.
      const double bytes = s.generic ? 2.0 * double(s.generic->params.count) * double(dtype_bytes(plan.dtype)) : 0.0;
      out[kCopies] += costmodel::kLaunchUs + bytes / (oracle.hw().dram_bandwidth_gbps * 1e3);
    } else if (s.kind == ExecStep::Kind::kKernel) {
      // The workload the plan runs, which may differ from the operator's (a B read transposed
      // in place runs as the other layout): its cost; the operator's where no family has one.
      CostSource source;
      const double us = oracle.workload_cost(*s.workload, source);
      out[category(g, s)] += us >= 0 ? us : std::max(n.cost_us, 0.0);
    } else if (!launched[k]) {
      out[category(g, s)] += std::max(n.cost_us, 0.0);  // a generic kernel: the operator's cost, once
    }
    launched[k] = launched[k] || !s.copy;
  }
  for (size_t k = 0; k < g.nodes().size(); ++k) {
    const Node& n = g.node(static_cast<NodeId>(k));
    if (!n.removed && n.cost_us > 0 && !launched[k] && !copied[k]) out[kNoLaunch] += n.cost_us;  // a view
  }
  return out;
}

double planned_cost(const std::map<std::string, double>& by_category) {
  double total = 0;
  for (const auto& [c, us] : by_category) total += c == kNoLaunch ? 0.0 : us;
  return total;
}

Json describe_plan(const Graph& g, const ExecPlan& plan, const std::map<std::string, double>& predicted) {
  std::map<std::string, int> by_category;
  int setup = 0;
  for (const ExecStep& s : plan.steps) {
    if (s.setup) {
      ++setup;
      continue;
    }
    ++by_category[category(g, s)];
  }
  for (const auto& [c, us] : predicted) by_category.try_emplace(c, 0);
  Json cats = Json::array();
  for (const auto& [c, n] : by_category) cats.push_back({{"category", c}, {"steps", n}, {"predicted_us", predicted_in(predicted, c)}});
  return {{"steps", static_cast<int64_t>(plan.steps.size()) - setup},
          {"setup_steps", setup},
          {"views", plan.views},
          {"in_place_steps", in_place_steps(plan)},
          {"by_category", cats},
          {"arena_bytes", plan.arena_bytes},
          {"intermediate_bytes", plan.intermediate_bytes},
          {"unsupported", plan.unsupported}};
}

Json compare_gains(const Json& runs) {
  // The run of `graph` on `kernels`, if it ran.
  auto find = [&](const std::string& graph, const std::string& kernels) -> const Json* {
    for (const Json& r : runs) {
      if (r.value("graph", std::string()) == graph && r.value("kernels", std::string()) == kernels &&
          r.contains("latency_us") && r["latency_us"].contains("back_to_back"))
        return &r;
    }
    return nullptr;
  };
  auto b2b = [](const Json* r) { return (*r)["latency_us"]["back_to_back"].get<double>(); };
  Json out = Json::object();
  const Json* optimized = find("optimized", "tessera");
  const Json* fused = find("fused", "tessera");
  const Json* original = find("original", "vendor");
  if (optimized && fused && b2b(fused) > 0) {
    out["rewrite_gain"] = 1.0 - b2b(optimized) / b2b(fused);
    const double predicted_fused = (*fused).value("predicted_us", 0.0);
    if (predicted_fused > 0) out["predicted_rewrite_gain"] = 1.0 - (*optimized).value("predicted_us", 0.0) / predicted_fused;
  }
  if (optimized && original && b2b(optimized) > 0) out["speedup_vs_vendor"] = b2b(original) / b2b(optimized);
  return out;
}

Json describe_steps(const ExecPlan& plan) {
  Json steps = Json::array();
  for (const ExecStep& s : plan.steps) {
    Json step = {{"label", s.label}, {"setup", s.setup}};
    if (s.workload) step["workload"] = s.workload->key();
    if (kernels::any_strided(s.layouts)) {
      Json layouts = Json::array();
      for (const auto& o : s.layouts)
        layouts.push_back(o ? Json{{"row", o->row}, {"inner", o->inner}, {"inner_count", o->inner_count}, {"outer", o->outer}}
                            : Json());
      step["in_place"] = layouts;  // A, B and C as the kernel reads and writes them (null: dense)
    }
    if (s.generic) {
      const kernels::GenericParams& p = s.generic->params;
      Json shape = Json::array(), out_strides = Json::array(), in_strides = Json::array();
      for (int d = 0; d < p.rank; ++d) {
        shape.push_back(p.shape[d]);
        out_strides.push_back(p.out_strides[d]);
      }
      for (int j = 0; j < p.inputs; ++j) {
        Json st = Json::array();
        for (int d = 0; d < p.rank; ++d) st.push_back(p.in_strides[j][d]);
        in_strides.push_back(st);
      }
      step["walk"] = {{"shape", shape}, {"out_strides", out_strides}, {"in_strides", in_strides},
                      {"blocks", s.generic->source.launch.grid[0]}};
    }
    steps.push_back(step);
  }
  return steps;
}

namespace {

// Runs a prepared model on `dev` (run_model_on_gpu's second half).
Json run_prepared(const PreparedModel& m, const ModelRunRequest& r, const measure::Device& dev,
                  db::TuningDatabase* db, const kernels::FamilyRegistry& families) {
  const HardwareSpec& hw = *dev.spec;
  const DType dtype = parse_dtype(r.dtype, "--dtype");
  const Graph& original = m.original;
  const Graph& g = m.graph;
  const ExecPlan& plan = m.plan;
  Json out = m.info;
  out["model"] = r.model_path;
  out["target"] = dev.target.fingerprint();
  out["target_json"] = dev.target.to_json();
  out["graph"] = r.graph;
  out["dtype"] = dtype_name(dtype);
  if (!plan.unsupported.empty()) {
    std::string list;
    for (size_t k = 0; k < plan.unsupported.size() && k < 3; ++k)
      list += (k ? "; " : "") + plan.unsupported[k];
    throw UserError(r.model_path + ": " + std::to_string(plan.unsupported.size()) +
                    " operator(s) cannot run on the GPU yet: " + list);
  }
  costmodel::AnalyticModel model(families, hw);
  std::vector<std::optional<Schedule>> schedules(plan.steps.size());
  std::map<std::string, int> sources;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (plan.steps[i].kind != ExecStep::Kind::kKernel) continue;
    auto [schedule, source] =
        choose_schedule(*plan.steps[i].workload, plan.steps[i].layouts, db, dev.target, families, hw, model);
    schedules[i] = schedule;
    ++sources[source];
  }
  std::vector<Tensor> inputs = random_graph_inputs(original, r.seed);
  GpuRunOptions options;
  options.iters = r.iters;
  options.vendor = r.vendor;
  options.cache_dir = kernels::Builder::default_cache_dir();  // as the tuning job compiles
  GpuRunResult res = run_plan_on_gpu(g, plan, schedules, families, inputs, options);

  out["device"] = res.device;
  out["kernels"] = r.vendor ? "vendor" : "tessera";
  std::map<std::string, int> runners;
  for (size_t i = 0; i < plan.steps.size(); ++i)
    if (plan.steps[i].kind == ExecStep::Kind::kKernel)
      ++runners[res.runner[i].substr(0, res.runner[i].find(' '))];
  out["tuned_operators_on"] = runners;
  out["latency_us"] = {{"median", res.median_us},
                       {"min", res.min_us},
                       {"p90", res.p90_us},
                       {"flushed_median", res.flushed_median_us},
                       {"flushed_p90", res.flushed_p90_us},
                       {"replays", r.iters},
                       {"back_to_back", res.back_to_back_us}};
  out["gpu"] = {{"busy_us", res.busy_us},
                {"idle_us", std::max(0.0, res.back_to_back_us - res.busy_us)},
                {"largest_gap_us", res.largest_gap_us},
                {"kernels", res.kernels_per_replay}};
  out["schedules"] = sources;
  out["plan"] = {{"steps", plan.steps.size()},      {"views", plan.views},  {"in_place_steps", in_place_steps(plan)},
                 {"arena_bytes", plan.arena_bytes}, {"intermediate_bytes", plan.intermediate_bytes},
                 {"compiled", res.compiled},        {"compile_s", res.compile_s}};
  Json steps = Json::array();
  std::map<std::string, std::pair<double, int>> by_category;
  double sum = 0;
  for (const StepTime& t : res.steps) {
    const ExecStep& s = plan.steps[t.step];
    const std::string c = category(g, s);
    by_category[c].first += t.us;
    by_category[c].second += 1;
    sum += t.us;
    Json step = {{"label", s.label}, {"category", c}, {"us", t.us}};
    if (schedules[t.step])
      step["schedule"] = res.runner[t.step] == "tessera" ? schedules[t.step]->key() : res.runner[t.step];
    steps.push_back(step);
  }
  for (const auto& [c, us] : m.predicted) by_category.try_emplace(c, 0.0, 0);
  Json cats = Json::array();
  for (const auto& [c, v] : by_category)
    cats.push_back({{"category", c}, {"us", v.first}, {"steps", v.second}, {"predicted_us", predicted_in(m.predicted, c)}});
  out["steps"] = steps;
  out["by_category"] = cats;
  out["sum_of_steps_us"] = sum;
  if (r.check) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> computed;
    if (!r.reference) computed = run_graph(original, inputs);
    const std::vector<Tensor>& expected = r.reference ? *r.reference : computed;
    const double error = max_scaled_error(res.outputs, expected, 1.0, 0.0);
    Json per_output = Json::array();
    for (size_t k = 0; k < expected.size() && k < res.outputs.size(); ++k)
      per_output.push_back(
          max_scaled_error(std::span(&res.outputs[k], 1), std::span(&expected[k], 1), 1.0, 0.0));
    out["check"] = {
        {"error", error},
        {"bound", r.rtol},
        {"ok", error <= r.rtol},
        {"per_output", per_output},
        {"reference_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
        {"reference", r.reference ? "shared" : "computed"}};
  }
  return out;
}

// The first GPU, or why there is none.
std::optional<measure::Device> first_gpu(std::string& why) {
  measure::DeviceScan scan = measure::scan_devices();
  if (scan.devices.empty()) {
    why = scan.reason;
    return std::nullopt;
  }
  if (!scan.devices.front().spec)
    throw UserError("GPU '" + scan.devices.front().properties.name + "' matches no known spec");
  return scan.devices.front();
}

// What a run needs besides the graph: the database (if any) and the families.
struct RunContext {
  explicit RunContext(const std::string& db_path) {
    if (!db_path.empty()) database.emplace(db::TuningDatabase::open(db_path));
    kernels::register_builtin_families(families);
  }
  db::TuningDatabase* db() { return database ? &*database : nullptr; }
  std::optional<db::TuningDatabase> database;
  kernels::FamilyRegistry families;
};

}  // namespace

Json run_model_on_gpu(const ModelRunRequest& r) {
  std::string why;
  std::optional<measure::Device> dev = first_gpu(why);
  if (!dev) return Json{{"no_gpu", why}};
  RunContext ctx(r.db_path);
  PreparedModel m = prepare_model(r, *dev->spec, dev->target, ctx.db(), ctx.families);
  return run_prepared(m, r, *dev, ctx.db(), ctx.families);
}

Json run_graph_on_gpu(const Graph& original, const Graph& graph, const ModelRunRequest& r) {
  std::string why;
  std::optional<measure::Device> dev = first_gpu(why);
  if (!dev) return Json{{"no_gpu", why}};
  RunContext ctx(r.db_path);
  db::TuningDatabase* db = ctx.db();
  const kernels::FamilyRegistry& families = ctx.families;
  const DType dtype = parse_dtype(r.dtype, "--dtype");
  PreparedModel m;
  m.original = original;
  fold_constants(m.original);
  m.graph = graph;
  CostOracle oracle(families, *dev->spec, dev->target, db, dtype);
  plan_and_predict(m, r, families, oracle);
  return run_prepared(m, r, *dev, db, families);
}

std::vector<Tensor> reference_outputs(Graph original, uint64_t seed) {
  fold_constants(original);
  return run_graph(original, random_graph_inputs(original, seed));
}

Json first_gpu_target() {
  std::string why;
  std::optional<measure::Device> dev = first_gpu(why);
  if (!dev) return Json{{"no_gpu", why}};
  return Json{{"target", dev->target.to_json()}, {"spec", dev->spec->name}};
}

}  // namespace tessera::graph
