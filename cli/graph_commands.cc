// `tessera graph optimize | show | rules`: graph substitutions on ONNX models.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "cli/command.h"
#include "cli/format.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/hash.h"
#include "core/version.h"
#include "db/database.h"
#include "kernels/families.h"
#include "kernels/nvrtc.h"
#include "graph/onnx_io.h"
#include "graph/equivalence.h"
#include "measure/devices.h"
#include "graph/optimize.h"
#include "graph/model_run.h"
#include "measure/isolate.h"

namespace tessera::cli {
namespace {

// The target whose costs the search uses: --target (with a database, one it holds or a spec),
// else the database's target, else as every command chooses (measure::choose_target).
std::pair<HardwareSpec, Target> graph_target(db::TuningDatabase* database, const ParsedArgs& args) {
  std::optional<Target> stored;
  if (database != nullptr && (args.has("target") || database->stats().targets > 0)) {
    try {
      stored = resolve_db_target(*database, args, true);
    } catch (const UserError&) {
      if (args.has("target")) throw;
    }
  }
  measure::TargetChoice choice = measure::choose_target(stored ? std::nullopt : args.value("target"),
                                                        measure::scan_devices(), stored);
  return {choice.spec, choice.target};
}

DType cost_dtype(const ParsedArgs& args) { return parse_dtype(args.value_or("dtype", "f16"), "--dtype"); }

std::vector<const graph::Rule*> usable_rules(const graph::RuleSet& set) {
  std::vector<const graph::Rule*> rules = set.all();
  for (const auto& [name, why] : set.rejected) std::cerr << "tessera: rule '" << name << "' rejected: " << why << "\n";
  return rules;
}

std::string file_hash(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return hex64(stable_hash(s.str()));
}

// How calibrate() rescaled the model's estimates, e.g. " (rescaled to the measured: conv2d x2.10)".
std::string calibration_note(const graph::CostOracle& oracle) {
  std::string out;
  for (const auto& [kind, factor] : oracle.calibrations())
    out += (out.empty() ? "" : ", ") + std::string(op_kind_name(kind)) + " x" + fixed(factor, 2);
  return out.empty() ? out : " (rescaled to the measured: " + out + ")";
}

// The first GPU's spec and target, asked in a child (the caller forks more children to run
// graphs later, which a process that has touched CUDA cannot). nullopt (said on stderr) when
// there is no GPU.
std::optional<std::pair<HardwareSpec, Target>> measured_target() {
  Json t = measure::run_isolated([] { return graph::first_gpu_target(); }, 300);
  if (t.contains("user_error")) throw UserError(t["user_error"].get<std::string>());
  if (t.contains("error")) throw InternalError("graph optimize --measure: " + t["error"].get<std::string>());
  if (!t.contains("target")) {
    std::cerr << "tessera: graph optimize --measure needs a GPU: "
              << (t.contains("no_gpu") ? t["no_gpu"] : t.value("crashed", t.value("failed", Json("no answer")))).get<std::string>() << "\n";
    return std::nullopt;
  }
  return std::make_pair(find_spec(t["spec"].get<std::string>()), Target::from_json(t["target"], "the GPU's target"));
}

// `graph optimize --measure`: the search's best, the bests it replaced and the fused graph, each
// run end to end on the GPU (graph run's machinery, a child each); the fastest whose outputs
// match the reference becomes result.best. Prints the candidates; returns them as JSON (empty
// when none ran).
Json measure_candidates(const graph::Graph& input, graph::SearchResult& result, const graph::Graph& fused,
                        graph::CostOracle& oracle, const std::string& model_path, const ParsedArgs& args, DType dtype) {
  std::vector<std::pair<std::string, graph::Graph>> candidates = {{"search's best", result.best}};
  for (size_t k = 0; k < result.runners_up.size(); ++k)
    candidates.push_back({"runner-up " + std::to_string(k + 1), result.runners_up[k]});
  candidates.push_back({"fused only", fused});
  std::set<uint64_t> seen;
  Json out = Json::array();
  Table table({"candidate", "predicted us", "measured us", "per call us", "check"});
  // Every candidate is checked against the same reference: computed once, inherited by each child.
  std::shared_ptr<const std::vector<graph::Tensor>> reference;
  double best_us = 0;
  for (auto& [name, cand] : candidates) {
    if (!seen.insert(cand.structural_hash()).second) continue;
    graph::ModelRunRequest r;
    r.model_path = model_path;
    r.db_path = args.value_or("db", "tessera.db");
    r.graph = name;
    r.dtype = std::string(dtype_name(dtype));
    r.iters = static_cast<int>(args.integer("iters", 50, 1, 100000));
    if (!reference) reference = std::make_shared<const std::vector<graph::Tensor>>(graph::reference_outputs(input, r.seed));
    r.reference = reference;
    const double predicted = oracle.graph_cost(cand);
    Json res = measure::run_isolated([&] { return graph::run_graph_on_gpu(input, cand, r); }, 1800);
    const bool ran = res.contains("latency_us");
    const bool ok = ran && res["check"]["ok"].get<bool>();
    // Candidates are compared by a replay's time on the GPU, launched back to back: the
    // per-call median also holds the host's launch of the graph, which varies by about 10 %
    // from run to run (two graphs of the same steps measured 359 and 400 us per call).
    const double us = ran ? res["latency_us"]["back_to_back"].get<double>() : 0;
    const double per_call = ran ? res["latency_us"]["median"].get<double>() : 0;
    std::string why = ran ? (ok ? "ok" : "outputs differ")
                          : res.value("user_error", res.value("crashed", res.value("failed", res.value("error", std::string("no answer")))));
    table.add({name, fixed(predicted, 1), ran ? fixed(us, 1) : "-", ran ? fixed(per_call, 1) : "-", why});
    out.push_back({{"candidate", name},
                   {"predicted_us", predicted},
                   {"measured_us", ran ? Json(us) : Json()},
                   {"per_call_us", ran ? Json(per_call) : Json()},
                   {"ok", ok}});
    if (ok && (best_us == 0 || us < best_us)) {
      best_us = us;
      result.best = cand;
      result.cost_after_us = predicted;
    }
  }
  std::cerr << "tessera: candidates run end to end on the GPU (measured: a CUDA-graph replay's GPU time, replays "
               "launched back to back; per call: the median with each replay waited for):\n"
            << table.str();
  if (best_us == 0) {
    std::cerr << "tessera: no candidate ran and matched the reference; nothing written\n";
    return Json::array();
  }
  return out;
}

int run_optimize(const ParsedArgs& args) {
  const std::string model_path = args.positional.at(0);
  auto out_path = args.value("output");
  if (!out_path) throw UserError("graph optimize needs -o/--output OUT.onnx");
  graph::SearchOptions options;
  options.strategy = args.value_or("strategy", "backtrack");
  options.alpha = args.number("alpha", 1.05, 1.0, 10.0);
  options.budget = args.integer("budget", options.strategy == "mcts" ? 3000 : 200, 0, 10000000);
  options.time_limit_s = args.number("time-limit", 0, 0, 1e7);
  options.seed = static_cast<uint64_t>(args.integer("seed", 1, 0, 1000000000));
  if (options.strategy != "backtrack" && options.strategy != "mcts") {
    throw UserError("--strategy must be backtrack or mcts (got '" + options.strategy + "')");
  }
  const DType dtype = cost_dtype(args);
  const bool json = args.has("json");

  graph::Graph g = graph::import_onnx(model_path);
  graph::RuleSet rule_set = graph::load_rules(args.value_or("rules", ""));
  std::vector<const graph::Rule*> rules = usable_rules(rule_set);
  db::TuningDatabase database = db::TuningDatabase::open(args.value_or("db", "tessera.db"));
  // --measure runs graphs in forked children, so this process must not touch CUDA: the GPU's
  // target comes from a child too.
  const bool measuring = args.has("measure");
  std::optional<std::pair<HardwareSpec, Target>> gpu;
  if (measuring) {
    gpu = measured_target();
    if (!gpu) return 3;
  }
  auto [spec, target] = gpu ? *gpu : graph_target(&database, args);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  graph::CostOracle oracle(families, spec, target, &database, dtype);

  std::cerr << "tessera: " << model_path << ": " << g.live_nodes() << " operators, " << rules.size()
            << " verified rules; costs for " << target.fingerprint() << " in " << dtype_name(dtype)
            << (g.weights_stripped ? "; weights stripped (made-up values: costs and structure are real)" : "") << "\n";
  const bool tty = ::isatty(2);
  graph::SearchProgress progress;
  if (tty) {
    progress = [](int explored, double best_us, double seconds) {
      std::fprintf(stderr, "\r  %d graphs costed, best %.1f us, %.1f s   ", explored, best_us, seconds);
    };
  }
  graph::SearchResult result = graph::optimize_graph(g, rules, oracle, options, progress);
  if (tty) std::cerr << "\n";

  Json measured = Json::array();
  if (measuring) {
    measured = measure_candidates(g, result, graph::fuse_only(g, rules, oracle).best, oracle, model_path, args, dtype);
    if (measured.empty()) return 1;
  }
  graph::ExportOptions exported;
  exported.producer_version = kVersion;
  std::string bytes = graph::export_onnx(result.best, exported);
  bool verified = false;
  int opaque = 0;  // operators Tessera cannot evaluate, verified around (equivalence.h)
  if (!args.has("no-verify")) {
    // A model stored without its weights is written without them; the check computes with
    // the made-up weights on both sides.
    if (auto failure = graph::check_equivalent(g, result.best, 2, &opaque)) {
      std::cerr << "tessera: the optimised graph failed verification against " << model_path << ": " << *failure
                << "; " << *out_path << " not written\n";
      return 1;
    }
    verified = true;
  }
  write_file_atomic(*out_path, bytes, "the optimised model");

  Json rewrites = Json::object();
  for (const auto& [rule, count] : result.counts()) rewrites[rule] = count;
  db::StoredGraph stored;
  stored.model_key = std::filesystem::path(model_path).filename().string() + ":" + file_hash(model_path);
  stored.target = target;
  stored.original_cost_us = result.cost_before_us;
  stored.optimized_cost_us = result.cost_after_us;
  stored.rewrites_json = Json{{"strategy", options.strategy}, {"alpha", options.alpha}, {"budget", options.budget},
                              {"dtype", dtype_name(dtype)}, {"rewrites", rewrites}, {"search_s", result.seconds},
                              {"verified", verified}, {"measured", measured}}
                             .dump();
  graph::ExportOptions structure;
  structure.strip_above_elements = 4096;  // the database keeps the structure, not the weights
  structure.producer_version = kVersion;
  stored.graph = graph::export_onnx(result.best, structure);
  stored.tool_version = kVersion;
  stored.created_s = now_s();
  int64_t id = database.save_graph(stored);

  double reduction = result.cost_before_us > 0 ? 100.0 * (1 - result.cost_after_us / result.cost_before_us) : 0;
  if (json) {
    std::cout << Json{{"model", model_path}, {"output", *out_path}, {"target", target.fingerprint()},
                      {"cost_before_us", result.cost_before_us}, {"cost_after_us", result.cost_after_us},
                      {"reduction_percent", reduction}, {"rewrites", rewrites}, {"graphs_costed", result.explored},
                      {"search_s", result.seconds}, {"verified", verified}, {"verified_around_opaque", opaque},
                      {"graph_id", id}, {"measured_runs", measured}, {"measured_workloads", oracle.measured_workloads()},
                      {"estimated_workloads", oracle.estimated_workloads()}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << "cost before: " << fixed(result.cost_before_us, 1) << " us (" << g.live_nodes() << " operators)\n"
            << "cost after:  " << fixed(result.cost_after_us, 1) << " us (" << result.best.live_nodes()
            << " operators)\n"
            << "operator costs: " << oracle.measured_workloads() << " workloads measured in the database, "
            << oracle.estimated_workloads() << " estimated by the model" << calibration_note(oracle)
            << "; data movement at DRAM bandwidth\n"
            << "rewrites applied:\n";
  for (const auto& [rule, count] : result.counts()) std::cout << "  " << rule << " x" << count << "\n";
  std::cout << "search: " << options.strategy << ", " << result.explored << " graphs costed in "
            << fixed(result.seconds, 2) << " s\n"
            << "wrote " << *out_path << (verified ? " (verified against the input on random inputs)" : " (not verified)")
            << "; database graph id " << id << "\n";
  if (verified && opaque > 0) {
    std::cout << "verified around " << opaque << " operator" << (opaque == 1 ? "" : "s")
              << " Tessera cannot evaluate: their inputs compared, their outputs made up alike on both sides\n";
  }
  std::printf("cost_before_us=%.1f cost_after_us=%.1f reduction=%.1f%% search_s=%.2f verified=%s\n",
              result.cost_before_us, result.cost_after_us, reduction, result.seconds, verified ? "yes" : "no");
  return 0;
}

int run_show(const ParsedArgs& args) {
  graph::Graph g = graph::import_onnx(args.positional.at(0));
  const DType dtype = cost_dtype(args);
  std::optional<db::TuningDatabase> database;
  if (auto path = args.value("db")) database.emplace(db::TuningDatabase::open(*path));
  auto [spec, target] = graph_target(database ? &*database : nullptr, args);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  graph::CostOracle oracle(families, spec, target, database ? &*database : nullptr, dtype);
  oracle.calibrate(g);  // as graph optimize costs it
  std::map<std::string, std::pair<int, double>> by_op;
  double total = 0;
  for (const graph::Node& n : g.nodes()) {
    if (n.removed) continue;
    graph::OpCost c = oracle.cost(g, n);
    auto& e = by_op[std::string(graph::op_type_name(n.op))];
    e.first += 1;
    e.second += c.time_us;
    total += c.time_us;
  }
  std::cout << g.model_name << ": " << g.live_nodes() << " operators, " << g.inputs().size() << " inputs, "
            << g.outputs().size() << " outputs" << (g.weights_stripped ? ", weights stripped" : "") << "\n"
            << "estimated cost on " << target.fingerprint() << " in " << dtype_name(dtype) << ": " << fixed(total, 1)
            << " us\n";
  Table ops({"operator", "count", "cost us"});
  for (const auto& [op, e] : by_op) ops.add({op, std::to_string(e.first), fixed(e.second, 1)});
  std::cout << ops.str();
  Table workloads({"workload", "occurrences", "operators"});
  for (const search::WorkloadEntry& e : graph::graph_workloads(g, dtype)) {
    workloads.add({e.workload.key(), fixed(e.weight, 0), e.label});
  }
  std::cout << "distinct workloads:\n" << workloads.str();
  return 0;
}

int run_rules(const ParsedArgs& args) {
  graph::RuleSet set = graph::load_rules(args.value_or("rules", ""));
  for (const auto& r : set.rules) std::cout << "verified  " << r->name() << "\n";
  for (const auto& [name, why] : set.rejected) std::cout << "REJECTED  " << name << ": " << why << "\n";
  return set.rejected.empty() ? 0 : 1;
}


// The check's error as a share of the output's peak; JSON has no infinity (NaN or infinite
// outputs, or a shape that differs, come back as null).
std::string error_text(const Json& error) {
  return error.is_number() ? fixed(100 * error.get<double>(), 2) + "%" : "infinite (NaN, infinity or another shape)";
}

// Keeps a measured run in the database (`db graphs` lists them).
void save_run(const graph::ModelRunRequest& r, const Json& res) {
  db::StoredGraphRun run;
  run.model_key = std::filesystem::path(r.model_path).filename().string() + ":" + file_hash(r.model_path);
  run.target = Target::from_json(res["target_json"], "the run's target");
  run.graph = r.graph;
  run.kernels = r.vendor ? "vendor" : "tessera";
  run.dtype = r.dtype;
  run.median_us = res["latency_us"]["median"].get<double>();
  run.flushed_median_us = res["latency_us"]["flushed_median"].get<double>();
  run.predicted_us = res["predicted_us"].get<double>();
  if (res.contains("check") && res["check"]["error"].is_number()) run.check_error = res["check"]["error"].get<double>();
  run.result_json = res.dump();
  run.tool_version = kVersion;
  run.created_s = now_s();
  db::TuningDatabase::open(r.db_path).save_graph_run(run);
}

// One variant's run in a child process of its own (a faulting kernel ends it, not us). A
// missing GPU or a crash is said on stderr and returned as such.
Json run_child(const graph::ModelRunRequest& r, double timeout_s) {
  Json res = measure::run_isolated([&] { return graph::run_model_on_gpu(r); }, timeout_s);
  if (res.contains("no_gpu"))
    std::cerr << "tessera: graph run needs a GPU: " << res["no_gpu"].get<std::string>() << "\n";
  if (res.contains("user_error")) throw UserError(res["user_error"].get<std::string>());
  if (res.contains("error")) throw InternalError("graph run: " + res["error"].get<std::string>());
  if (res.contains("failed")) res["crashed"] = res["failed"];  // a CUDA call failed: said alike, exit 1
  if (res.contains("crashed"))
    std::cerr << "tessera: graph run of " << r.model_path << " (" << r.graph << ", "
              << (r.vendor ? "vendor" : "tessera") << " kernels) failed: " << res["crashed"].get<std::string>() << "\n";
  if (res.contains("latency_us") && !r.db_path.empty()) save_run(r, res);
  return res;
}

// `graph run --compare`: the optimised and the fused graph on Tessera's kernels, and the fused
// and the original graph on the vendor library, one child each.
int run_compare(graph::ModelRunRequest r, double timeout_s, bool json) {
  struct Variant {
    const char* graph;
    bool vendor;
    const char* name;
  };
  const Variant variants[] = {{"optimized", false, "optimized graph, Tessera's kernels"},
                              {"fused", false, "fused graph, Tessera's kernels"},
                              {"fused", true, "fused graph, vendor library"},
                              {"original", true, "original graph, vendor library"}};
  // Whether there is a GPU, asked in a child before the reference's minutes are spent.
  const Json probe = measure::run_isolated([] { return graph::first_gpu_target(); }, 300);
  if (probe.contains("no_gpu")) {
    std::cerr << "tessera: graph run needs a GPU: " << probe["no_gpu"].get<std::string>() << "\n";
    return 3;
  }
  if (r.check) {  // once, here on the CPU; the four children inherit it
    const auto t0 = std::chrono::steady_clock::now();
    r.reference = std::make_shared<const std::vector<graph::Tensor>>(
        graph::reference_outputs(graph::import_onnx(r.model_path), r.seed));
    std::cerr << "tessera: host reference computed in "
              << fixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1)
              << " s, for the four runs' checks\n";
  }
  Json all = Json::array();
  Table table({"variant", "median us", "flushed us", "back to back us", "predicted us", "steps alone us", "check"});
  bool ok = true;
  for (const Variant& v : variants) {
    r.graph = v.graph;
    r.vendor = v.vendor;
    Json res = run_child(r, timeout_s);
    if (res.contains("no_gpu")) return 3;
    res["variant"] = v.name;
    all.push_back(res);
    if (res.contains("crashed")) {
      ok = false;
      table.add({v.name, "crashed", "", "", "", "", ""});
      continue;
    }
    const bool good = !res.contains("check") || res["check"]["ok"].get<bool>();
    ok = ok && good;
    table.add({v.name, fixed(res["latency_us"]["median"].get<double>(), 1),
               fixed(res["latency_us"]["flushed_median"].get<double>(), 1),
               fixed(res["latency_us"]["back_to_back"].get<double>(), 1), fixed(res["predicted_us"].get<double>(), 1),
               fixed(res["sum_of_steps_us"].get<double>(), 1),
               res.contains("check") ? (good ? "ok " : "DIFFERS ") + error_text(res["check"]["error"]) : "not run"});
  }
  const Json gains = graph::compare_gains(all);
  if (json) {
    std::cout << Json{{"runs", all}, {"gains", gains}}.dump(2) << "\n";
  } else {
    std::cout << r.model_path << " on " << all[0].value("device", std::string("the GPU")) << " ("
              << r.dtype << ", end-to-end medians over CUDA-graph replays)\n"
              << table.str();
    auto percent = [](double v) { return fixed(100.0 * v, 1) + " %"; };
    if (gains.contains("rewrite_gain")) {
      std::cout << "rewrites (fused -> optimized, Tessera's kernels, back to back): " << percent(gains["rewrite_gain"].get<double>());
      if (gains.contains("predicted_rewrite_gain"))
        std::cout << " measured, " << percent(gains["predicted_rewrite_gain"].get<double>()) << " predicted";
      std::cout << "\n";
    }
    if (gains.contains("speedup_vs_vendor"))
      std::cout << "optimized on Tessera's kernels vs original on the vendor library (back to back): "
                << fixed(gains["speedup_vs_vendor"].get<double>(), 2) << "x\n";
  }
  return ok ? 0 : 1;
}

// `graph run --plan`: how the model would run, without a GPU.
int print_plan(const graph::ModelRunRequest& r, const ParsedArgs& args) {
  std::optional<db::TuningDatabase> database;
  if (!r.db_path.empty() && std::filesystem::exists(r.db_path)) database.emplace(db::TuningDatabase::open(r.db_path));
  auto [spec, target] = graph_target(database ? &*database : nullptr, args);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  graph::PreparedModel m = graph::prepare_model(r, spec, target, database ? &*database : nullptr, families);
  Json plan = graph::describe_plan(m.graph, m.plan, m.predicted);
  if (args.has("json")) {
    Json out = m.info;
    out["plan"] = plan;
    out["steps"] = graph::describe_steps(m.plan);
    std::cout << out.dump(2) << "\n";
    return m.plan.unsupported.empty() ? 0 : 2;
  }
  std::cout << r.model_path << " (" << r.graph << " graph, " << m.info["operators"].get<int>() << " operators): "
            << plan["steps"].get<int64_t>() << " launches per run, " << plan["setup_steps"].get<int>()
            << " before the runs, " << plan["views"].get<int>() << " views, " << plan["in_place_steps"].get<int>()
            << " kernels reading or writing operands in place; arena "
            << fixed(static_cast<double>(m.plan.arena_bytes) / (1 << 20), 1) << " MiB (intermediates "
            << fixed(static_cast<double>(m.plan.intermediate_bytes) / (1 << 20), 1) << " MiB without reuse)\n";
  Table table({"launches", "what", "predicted us"});
  for (const Json& c : plan["by_category"])
    table.add({std::to_string(c["steps"].get<int>()), c["category"].get<std::string>(),
               fixed(c["predicted_us"].get<double>(), 1)});
  std::cout << table.str();
  for (const std::string& u : m.plan.unsupported) std::cout << "  cannot run: " << u << "\n";
  if (!m.plan.unsupported.empty())
    throw UserError(r.model_path + ": " + std::to_string(m.plan.unsupported.size()) +
                    " operator(s) cannot run on the GPU yet (listed above)");
  return 0;
}

int run_graph_run(const ParsedArgs& args) {
  graph::ModelRunRequest r;
  r.model_path = args.positional.at(0);
  if (!std::filesystem::is_regular_file(r.model_path)) throw UserError(r.model_path + ": no such file");
  r.db_path = args.value_or("db", "tessera.db");
  if (args.has("no-db")) r.db_path.clear();
  r.graph = args.value_or("graph", "optimized");
  if (r.graph != "optimized" && r.graph != "fused" && r.graph != "original")
    throw UserError("--graph must be optimized, fused or original (got '" + r.graph + "')");
  r.dtype = args.value_or("dtype", "f16");
  parse_dtype(r.dtype, "--dtype");
  r.iters = static_cast<int>(args.integer("iters", 100, 1, 100000));
  r.budget = static_cast<int>(args.integer("budget", 200, 0, 10000000));
  r.seed = static_cast<uint64_t>(args.integer("seed", 1, 0, 1000000000));
  r.check = !args.has("no-check");
  r.vendor = args.has("vendor");
  r.dense = args.has("dense");
  if (args.has("plan")) return print_plan(r, args);
  if (args.has("target")) throw UserError("--target is for --plan: a run plans for the GPU it runs on");
  const double timeout_s = args.number("timeout", 1800, 10, 1e6);
  if (args.has("compare")) return run_compare(r, timeout_s, args.has("json"));
  Json res = run_child(r, timeout_s);
  if (res.contains("no_gpu")) return 3;
  if (res.contains("crashed")) return 1;
  const bool ok = !res.contains("check") || res["check"]["ok"].get<bool>();
  if (args.has("json")) {
    std::cout << res.dump(2) << "\n";
    return ok ? 0 : 1;
  }
  const Json& lat = res["latency_us"];
  std::cout << r.model_path << " (" << res["graph"].get<std::string>() << " graph, " << res["operators"].get<int>()
            << " operators, " << res["dtype"].get<std::string>() << ") on " << res["device"].get<std::string>() << "\n"
            << "  end to end   " << fixed(lat["median"].get<double>(), 1) << " us median (min "
            << fixed(lat["min"].get<double>(), 1) << ", p90 " << fixed(lat["p90"].get<double>(), 1) << ") over "
            << lat["replays"].get<int>() << " CUDA-graph replays, L2 warm\n"
            << "               " << fixed(lat["flushed_median"].get<double>(), 1) << " us median with L2 flushed before each replay\n"
            << "  on the GPU   " << fixed(lat["back_to_back"].get<double>(), 1)
            << " us a replay launched back to back (kernels busy " << fixed(res["gpu"]["busy_us"].get<double>(), 1)
            << " us, " << res["gpu"]["kernels"].get<int>() << " kernels, longest idle gap "
            << fixed(res["gpu"]["largest_gap_us"].get<double>(), 1) << " us)\n"
            << "  predicted    " << fixed(res["predicted_us"].get<double>(), 1)
            << " us (the oracle's cost of what the plan launches; its sum over the graph's operators "
            << fixed(res["oracle_us"].get<double>(), 1) << " us)\n"
            << "  steps alone  " << fixed(res["sum_of_steps_us"].get<double>(), 1)
            << " us (each step's kernels timed alone, summed)\n";
  Table table({"category", "steps", "us alone", "share", "predicted us"});
  const double sum = std::max(res["sum_of_steps_us"].get<double>(), 1e-9);
  for (const Json& c : res["by_category"])
    table.add({c["category"].get<std::string>(), std::to_string(c["steps"].get<int>()), fixed(c["us"].get<double>(), 1),
               fixed(100 * c["us"].get<double>() / sum, 1) + "%", fixed(c["predicted_us"].get<double>(), 1)});
  std::cout << table.str();
  std::string on;
  for (const auto& [k, v] : res["tuned_operators_on"].items()) on += (on.empty() ? "" : ", ") + std::to_string(v.get<int>()) + " on " + k;
  std::cout << "  tuned ops    " << on << "\n";
  std::string sources;
  for (const auto& [k, v] : res["schedules"].items()) sources += (sources.empty() ? "" : ", ") + std::to_string(v.get<int>()) + " from the " + k;
  std::cout << "  schedules    " << (sources.empty() ? "none" : sources) << "\n";
  if (res.contains("check")) {
    const Json& c = res["check"];
    std::cout << "  check        " << (ok ? "outputs match" : "OUTPUTS DIFFER from") << " the host reference (largest error "
              << error_text(c["error"]) << " of the output's peak, bound "
              << fixed(100 * c["bound"].get<double>(), 1) << "%)\n";
  }
  return ok ? 0 : 1;
}

}  // namespace

void register_graph_commands(CommandRegistry& registry) {
  registry.add(
      {"graph optimize",
       "Find a cheaper equivalent graph of an ONNX model with verified rewrites",
       "MODEL.onnx -o OUT.onnx [--db FILE] [--target NAME] [--alpha A] [--budget N] [--strategy backtrack|mcts] "
       "[--time-limit S] [--seed N] [--rules DIR] [--dtype f16|f32] [--no-verify] [--measure [--iters N]] [--json]",
       "Imports the model (ONNX opset 13-21, static shapes), folds its constants, then searches for a cheaper "
       "equivalent graph with the verified rewrite rules (the built-in families and configs/rules, plus --rules "
       "DIR): --strategy backtrack is TASO's cost-based backtracking (a priority queue on total cost, a visited "
       "set, graphs up to --alpha x the best kept), --strategy mcts a Monte Carlo tree search over (rule, "
       "location) decisions that may pass through a more expensive graph. --budget is graphs expanded "
       "(backtrack, default 200) or tree iterations (mcts, default 3000; it stops earlier when its decisions stop improving). Both end with a steepest "
       "descent to a local optimum.\n\n"
       "A graph's cost is the sum of its operators': the best time measured in the database for the operator's "
       "workload (tune them with `tessera tune --model`), else the analytic model's estimate, else (data "
       "movement) its bytes at DRAM bandwidth. Floating tensors are costed in --dtype (default f16).\n\n"
       "Before OUT.onnx is written, it is read back and checked against the input with the CPU reference on "
       "random inputs; a graph that fails, or that cannot be evaluated (an operator Tessera does not model), is "
       "not written (exit 1) unless --no-verify. The result is recorded in the database's "
       "graph table. The last line is machine-readable.\n\n"
       "With --measure, the search's best, the graphs it held best before it (up to 3) and the fused graph "
       "are each run end to end on the GPU as `graph run` runs them (a child process each), and the fastest "
       "whose outputs match the reference is written instead of the oracle's choice; without a GPU it says so "
       "and exits 3.",
       {{"output", "OUT.onnx", "where to write the optimised model (also -o)"},
        {"db", "FILE", "tuning database for measured costs and the result (default ./tessera.db)"},
        {"target", "NAME", "GPU whose costs to use (default: the database's only target, else the GPU present, else h100_sxm)"},
        {"alpha", "A", "backtrack: keep graphs costing up to A x the best (default 1.05)"},
        {"budget", "N", "graphs expanded (backtrack) or iterations (mcts)"},
        {"strategy", "NAME", "backtrack (default) or mcts"},
        {"time-limit", "S", "stop searching after S seconds"},
        {"seed", "N", "mcts: random seed (default 1)"},
        {"rules", "DIR", "more rules (*.json) to load and verify"},
        {"dtype", "T", "precision the operators are costed in: f16 (default), bf16 or f32"},
        {"no-verify", "", "skip checking the result against the input"},
        {"measure", "",
         "run the search's final candidates and the fused graph on the GPU (graph run) and write the fastest "
         "(GPU time of a replay, launched back to back)"},
        {"iters", "N", "with --measure: CUDA-graph replays per candidate (default 50)"},
        {"json", "", "print JSON"}},
       1,
       1,
       run_optimize});
  registry.add({"graph show",
                "List an ONNX model's operators, costs and distinct workloads",
                "MODEL.onnx [--db FILE] [--target NAME] [--dtype f16|f32]",
                "Costs each operator as `graph optimize` does (measured in --db if given, else estimated).",
                {{"db", "FILE", "tuning database with measured costs"},
                 {"target", "NAME", "GPU whose costs to use (default: the GPU present, else h100_sxm)"},
                 {"dtype", "T", "precision the operators are costed in (default f16)"}},
                1,
                1,
                run_show});
  registry.add({"graph run",
                "Run an ONNX model on the GPU with its tuned kernels and measure its end-to-end latency",
                "MODEL.onnx [--db FILE | --no-db] [--graph optimized|fused|original] [--iters N] [--budget N] "
                "[--dtype f16|bf16|f32] [--seed N] [--no-check] [--timeout S] [--vendor | --compare] [--dense] [--plan [--target NAME]] [--json]",
                "Imports the model, folds its constants and rewrites it (--graph optimized: the backtracking search "
                "of `graph optimize` with --budget; fused: the fusions alone; original: as imported), then runs it "
                "on the first GPU: each operator that maps to a workload runs the database's best schedule for this "
                "GPU (construction's first choice where the database has none), the others run generic kernels "
                "(copies, gathers, pooling, elementwise maps, reductions), tensors share one arena, and the run is "
                "one CUDA graph. Reports the end-to-end latency of --iters replays (median, min, p90; L2 warm, and "
                "L2 flushed before each replay; each replay waited for, as a caller that waits for its result sees it), the "
                "GPU time of a replay launched back to back (CUPTI: from its first kernel to its last, what its kernels "
                "were busy and its longest idle gap), the oracle's predicted latency, each step's time alone summed by "
                "category, and checks the outputs against the host reference of the original model on random "
                "inputs (exit 1 when they differ by more than 5% of an output's peak). --compare runs four children: the "
                "optimized and the fused graph on Tessera's kernels, the fused and the original graph on the vendor "
                "library, and states the rewrites' measured gain (fused to optimized, back to back) beside the "
                "predicted one and the speedup over the original graph on the vendor library (with --json: "
                "{\"runs\": [...], \"gains\": {...}}). Each run is kept in --db's database (`db graphs` lists them). All GPU work runs in a child "
                "process; without a GPU it says so in one line and exits 3.",
                {{"db", "FILE", "tuning database whose best schedules to run (default ./tessera.db)"},
                 {"no-db", "", "use construction's first choice for every operator"},
                 {"graph", "WHICH", "optimized (default), fused or original"},
                 {"iters", "N", "CUDA-graph replays timed (default 100)"},
                 {"budget", "N", "the optimizing search's budget (default 200)"},
                 {"dtype", "T", "floating tensors' type on the GPU: f16 (default), bf16 or f32"},
                 {"seed", "N", "random inputs' seed (default 1)"},
                 {"no-check", "", "skip the comparison with the host reference"},
                 {"timeout", "S", "give up on the run after S seconds (default 1800)"},
                 {"plan", "", "print how the model would run (launches by kind, arena; with --vendor, as the vendor run) and stop; needs no GPU"},
                 {"target", "NAME", "with --plan: the GPU spec to plan for, a name from `tessera targets` or a spec .json (default: the GPU present, else h100_sxm)"},
                 {"vendor", "", "run the tuned operators on cuBLASLt / cuDNN instead (Tessera's kernels where they cannot)"},
                 {"dense", "", "give every kernel dense operands, copying where they lie strided (by default Hopper kernels read attention's heads in place)"},
                 {"compare", "", "run the optimized and the fused graph on Tessera's kernels and the fused and the original graph on the vendor library, and compare"},
                 {"json", "", "print JSON"}},
                1,
                1,
                run_graph_run});
  registry.add({"graph rules",
                "Verify the rewrite rules and list them",
                "[--rules DIR]",
                "Each rule's pattern and replacement are evaluated with the CPU reference on random inputs for "
                "each of its verification cases; exit 1 if any is rejected.",
                {{"rules", "DIR", "more rules (*.json) to load and verify"}},
                0,
                0,
                run_rules});
}

}  // namespace tessera::cli
