// `tessera model eval | train`: how well the cost models rank the database's measurements,
// and training the learned model into the database's models table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include "cli/command.h"
#include "cli/format.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/version.h"
#include "costmodel/analytic.h"
#include "costmodel/calibrate.h"
#include "costmodel/evaluate.h"
#include "costmodel/learned.h"
#include "db/database.h"
#include "kernels/families.h"
#include "search/learned_models.h"

namespace tessera::cli {
namespace {

// The ok records the command is about (one --workload, or all) and their target.
struct Selection {
  std::vector<Record> records;
  std::optional<Target> target;  ///< set when every record has the same target
};

Selection select(db::TuningDatabase& database, const ParsedArgs& args, bool one_target) {
  db::RecordFilter filter;
  filter.status = Status::kOk;
  if (auto w = args.value("workload")) filter.workload_key = Workload::parse(*w).key();
  Selection s;
  if (one_target || args.has("target")) {
    s.target = resolve_db_target(database, args, false);
    filter.target_fingerprint = s.target->fingerprint();
  }
  for (db::StoredRecord& r : database.query(filter)) s.records.push_back(std::move(r.record));
  return s;
}

costmodel::LearnedOptions learned_options(const ParsedArgs& args, bool prior) {
  costmodel::LearnedOptions o;
  std::string objective = args.value_or("objective", "rank");
  if (objective == "rank") o.objective = costmodel::Objective::kRankPairwise;
  else if (objective == "regression") o.objective = costmodel::Objective::kRegression;
  else throw UserError("--objective must be rank or regression (got '" + objective + "')");
  o.rounds = args.integer("rounds", o.rounds, 1, 5000);
  o.analytic_prior = prior;
  return o;
}

size_t workloads_in(const std::vector<Record>& records) {
  std::set<std::string> keys;
  for (const Record& r : records) keys.insert(r.workload.key());
  return keys.size();
}

int list_records(std::vector<Record> records, const kernels::FamilyRegistry& families) {
  // Every record with the model's breakdown, fastest measured first per workload and target.
  std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
    return std::make_tuple(a.workload.key(), a.target.fingerprint(), a.measurement.median_us) <
           std::make_tuple(b.workload.key(), b.target.fingerprint(), b.measurement.median_us);
  });
  std::map<std::string, std::unique_ptr<costmodel::AnalyticModel>> models;
  Table table({"workload", "measured us", "predicted us", "bound", "compute", "smem", "l2", "dram", "waves", "schedule"});
  for (const Record& r : records) {
    auto& m = models[r.target.spec_name];
    if (!m) m = std::make_unique<costmodel::AnalyticModel>(families, find_spec(r.target.spec_name));
    costmodel::Estimate e = m->explain({r.workload, r.schedule, std::nullopt});
    table.add({r.workload.key(), fixed(r.measurement.median_us, 2), fixed(e.us, 2), e.bound, fixed(e.compute_us, 1),
               fixed(e.smem_us, 1), fixed(e.l2_us, 1), fixed(e.dram_us, 1), fixed(e.waves, 0), r.schedule.key()});
  }
  std::cout << table.str();
  return 0;
}

int model_eval(const ParsedArgs& args) {
  std::string which = args.value_or("model", "all");
  if (which != "analytic" && which != "learned" && which != "combined" && which != "all")
    throw UserError("--model must be analytic, learned, combined or all (got '" + which + "')");
  const int folds = args.integer("folds", 5, 2, 100);
  std::string path = args.value_or("db", "tessera.db");
  db::OpenOptions read_only;
  read_only.read_only = true;
  db::TuningDatabase database = db::TuningDatabase::open(path, read_only);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  // The learned models are per target: their evaluation needs one.
  Selection sel = select(database, args, which != "analytic");
  if (args.has("records")) list_records(sel.records, families);

  std::map<std::string, std::unique_ptr<costmodel::AnalyticModel>> analytic;  // per spec
  costmodel::EvalReport a = costmodel::evaluate(sel.records, [&](std::span<const Record> group) {
    const std::string& spec = group.front().target.spec_name;
    auto& m = analytic[spec];
    if (!m) m = std::make_unique<costmodel::AnalyticModel>(families, find_spec(spec));
    return m->predict(costmodel::candidates_of(group));
  });
  if (a.groups.empty())
    throw UserError(path + ": no workload has two or more correct measurements on one target to rank");
  if (which == "analytic") {
    if (args.has("json")) {
      std::cout << a.to_json().dump(2) << "\n";
      return 0;
    }
    Table table({"workload", "target", "records", "spearman", "pairwise", "top1", "top5", "best us", "model pick us"});
    for (const costmodel::GroupEval& g : a.groups)
      table.add({g.workload, g.target.substr(0, g.target.find('|')), std::to_string(g.records), fixed(g.spearman, 3),
                 fixed(g.pairwise, 3), fixed(g.top1, 3), fixed(g.top5, 3), fixed(g.best_us, 2),
                 fixed(g.predicted_pick_us, 2)});
    std::cout << "analytic model against " << a.records << " correct measurements in " << path << "\n"
              << table.str() << a.summary_line() << "\n";
    return 0;
  }

  size_t workloads = workloads_in(sel.records);
  if (workloads < 2)
    throw UserError(path + ": the held-out evaluation of a learned model needs correct records of two or more workloads "
                           "for the target (found " + std::to_string(workloads) + ")");
  const HardwareSpec hw = find_spec(sel.target->spec_name);
  std::vector<std::pair<std::string, costmodel::EvalReport>> reports = {{"analytic", a}};
  auto started = std::chrono::steady_clock::now();
  auto held_out = [&](bool prior) {
    return costmodel::cross_validate_learned(sel.records, families, hw, learned_options(args, prior), folds);
  };
  if (which == "learned" || which == "all") reports.emplace_back("learned", held_out(false));
  if (which == "combined" || which == "all") reports.emplace_back("combined", held_out(true));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const costmodel::EvalReport& last = reports.back().second;
  if (args.has("json")) {
    Json j = Json::object();
    for (auto& [name, r] : reports) j[name] = r.to_json();
    j["folds"] = folds;
    j["objective"] = args.value_or("objective", "rank");
    j["target"] = sel.target->fingerprint();
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  Table per({"workload", "records", "analytic pairwise", "top1", "top5", reports.back().first + " pairwise", "top1 ",
             "top5 "});
  for (size_t i = 0; i < last.groups.size(); ++i) {
    const costmodel::GroupEval& g = last.groups[i];
    auto it = std::find_if(a.groups.begin(), a.groups.end(),
                           [&](const costmodel::GroupEval& x) { return x.workload == g.workload; });
    per.add({g.workload, std::to_string(g.records), fixed(it->pairwise, 3), fixed(it->top1, 3), fixed(it->top5, 3),
             fixed(g.pairwise, 3), fixed(g.top1, 3), fixed(g.top5, 3)});
  }
  Table summary({"model", "pairwise", "spearman", "top1", "top5"});
  for (auto& [name, r] : reports)
    summary.add({name, fixed(r.pairwise, 3), fixed(r.spearman, 3), fixed(r.top1, 3), fixed(r.top5, 3)});
  std::cout << "held-out evaluation: " << last.records << " correct measurements of " << workloads << " workloads on "
            << sel.target->fingerprint() << " in " << path << "; each workload ranked by a model trained on the other "
            << folds - 1 << " of " << folds << " folds (objective " << args.value_or("objective", "rank") << ", "
            << fixed(seconds, 1) << " s)\n"
            << per.str() << "\n"
            << summary.str() << last.summary_line() << "\n";
  return 0;
}

int model_train(const ParsedArgs& args) {
  std::string which = args.value_or("model", "combined");
  if (which != "learned" && which != "combined")
    throw UserError("--model must be learned or combined (got '" + which + "')");
  std::string path = args.value_or("db", "tessera.db");
  db::TuningDatabase database = db::TuningDatabase::open(path);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  Selection sel = select(database, args, true);
  costmodel::LearnedOptions options = learned_options(args, which == "combined");
  const HardwareSpec hw = find_spec(sel.target->spec_name);
  size_t workloads = workloads_in(sel.records);
  if (static_cast<int>(sel.records.size()) < options.min_records)
    throw UserError(path + ": " + std::to_string(sel.records.size()) + " correct records for " +
                    sel.target->fingerprint() + "; training needs at least " + std::to_string(options.min_records));
  auto started = std::chrono::steady_clock::now();
  costmodel::LearnedModel model(families, hw, options);
  model.train(sel.records);
  double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  Json metrics = {{"records", model.trained_records()}, {"workloads", workloads}, {"rounds", options.rounds},
                  {"train_s", train_s}};
  const int folds = args.integer("folds", 5, 0, 100);
  std::string held_out;
  if (folds >= 2 && workloads >= 2) {
    costmodel::EvalReport r = costmodel::cross_validate_learned(sel.records, families, hw, options, folds);
    metrics["held_out"] = {{"folds", folds},       {"pairwise", r.pairwise}, {"spearman", r.spearman},
                           {"top1", r.top1},       {"top5", r.top5}};
    held_out = r.summary_line();
  }
  const db::StoredModel stored = search::store_learned_model(database, model, *sel.target, metrics, kVersion);
  std::cout << "trained " << stored.kind << " on " << model.trained_records() << " correct records of " << workloads
            << " workloads for " << sel.target->fingerprint() << " in " << fixed(train_s, 1) << " s; stored as model "
            << stored.id << " in " << path << " (" << stored.blob.size() << " bytes, feature layout "
            << costmodel::kFeatureVersion << ")\n";
  if (!held_out.empty()) std::cout << "held-out (" << folds << " folds by workload): " << held_out << "\n";
  return 0;
}

int model_calibrate(const ParsedArgs& args) {
  std::string path = args.value_or("db", "tessera.db");
  const int folds = args.integer("folds", 4, 0, 100);
  db::OpenOptions read_only;
  read_only.read_only = true;
  db::TuningDatabase database = db::TuningDatabase::open(path, read_only);
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  Selection sel = select(database, args, true);
  const HardwareSpec hw = find_spec(sel.target->spec_name);
  std::vector<Record> mine = costmodel::async_mma_records(sel.records, families);
  auto started = std::chrono::steady_clock::now();
  costmodel::AsyncMmaFit fit = costmodel::fit_async_mma_terms(mine, families, hw);
  fit.terms.fitted_on = std::to_string(fit.records) + " records of " + std::to_string(fit.workloads) +
                        " workloads measured on " + sel.target->fingerprint();
  double fit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  HardwareSpec fitted = hw;
  fitted.async_mma = fit.terms;
  // Ranking within each workload, in sample, with the spec's terms and with the fitted ones;
  // then held out: each fold's workloads ranked with terms fitted to the other folds.
  auto in_sample = [&](const HardwareSpec& spec) {
    costmodel::AnalyticModel model(families, spec);
    return costmodel::evaluate(mine, [&](std::span<const Record> g) { return model.predict(costmodel::candidates_of(g)); });
  };
  costmodel::EvalReport before = in_sample(hw), after = in_sample(fitted);
  std::optional<costmodel::EvalReport> held;
  double held_rmse = 0;
  if (folds >= 2 && fit.workloads >= 2)
    held = costmodel::cross_validate_async_mma(mine, families, hw, folds, &held_rmse);
  if (args.has("output")) {
    const std::string out = *args.value("output");
    write_file_atomic(out, fitted.to_json().dump(2) + "\n", "the fitted spec");
  }
  if (args.has("json")) {
    Json j = {{"target", sel.target->fingerprint()},
              {"spec", hw.name},
              {"records", fit.records},
              {"workloads", fit.workloads},
              {"terms_before", hw.async_mma.to_json()},
              {"terms", fit.terms.to_json()},
              {"rmse_before", fit.rmse_before},
              {"rmse_after", fit.rmse_after},
              {"in_sample_before", before.to_json()},
              {"in_sample_after", after.to_json()},
              {"fit_s", fit_s}};
    if (held) j["held_out"] = {{"folds", folds}, {"rmse", held_rmse}, {"report", held->to_json()}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const Json b = hw.async_mma.to_json(), a = fit.terms.to_json();
  Table table({"term", hw.name, "fitted"});
  for (const char* key :
       {"efficiency", "overlap", "store_cycles", "op_cycles", "tma_store_share", "turn_hidden", "multicast_saving",
        "cluster_cost", "load_latency_us"})
    table.add({key, fixed(b[key].get<double>(), 4), fixed(a[key].get<double>(), 4)});
  auto error_factor = [](double rmse) { return fixed(std::exp(rmse), 2) + "x"; };
  std::cout << "analytic model's async-MMA terms fitted to " << fit.records << " correct records of " << fit.workloads
            << " workloads measured on " << sel.target->fingerprint() << " in " << path << " ("
            << fixed(fit_s, 1) << " s, " << fit.evaluations << " evaluations)\n"
            << table.str() << "typical error (exp of the log RMSE): " << error_factor(fit.rmse_before) << " -> "
            << error_factor(fit.rmse_after) << " in sample\n"
            << "in sample, " << hw.name << "'s terms: " << before.summary_line() << "\n"
            << "in sample, fitted terms: " << after.summary_line() << "\n";
  if (held)
    std::cout << "held out (" << folds << " folds by workload, fitted to the others): typical error "
              << error_factor(held_rmse) << "; " << held->summary_line() << "\n";
  if (args.has("output"))
    std::cout << "wrote the spec with the fitted terms to " << *args.value("output")
              << " (use it as --target FILE, or copy its async_mma_terms into configs/gpus/" << hw.name << ".json)\n";
  std::cout << "\"async_mma_terms\": " << a.dump() << "\n";
  return 0;
}

}  // namespace

void register_model_commands(CommandRegistry& registry) {
  OptionSpec db{"db", "FILE", "tuning database (default ./tessera.db)"};
  OptionSpec target = db_target_option();
  OptionSpec objective{"objective", "NAME", "rank (XGBoost rank:pairwise per workload, default) or regression (log2 time)"};
  OptionSpec rounds{"rounds", "N", "boosting rounds (default 200)"};
  registry.add({"model eval",
                "How well the cost models rank the database's measurements (Spearman, pairwise accuracy, top-k)",
                "[--db FILE] [--target NAME] [--workload SPEC] [--model analytic|learned|combined|all] "
                "[--objective rank|regression] [--folds K] [--rounds N] [--records] [--json]",
                "For every workload with two or more correct measurements, ranks the measured schedules with a model "
                "and reports the Spearman rank correlation, the pairwise accuracy (pairs ordered like the "
                "measurements), and TenSet's top-1 and top-5 scores (the best time over the best time among the "
                "model's first k picks). The analytic model needs no training. The learned model (XGBoost on the "
                "schedule's features) and the combined one (the same, boosted from the analytic model's estimate) are "
                "evaluated on held-out workloads: the workloads are dealt into K folds and each fold is ranked by a "
                "model trained on the other folds' records of the target. The last line is machine-readable, for "
                "the last model evaluated (combined with --model all).",
                {db,
                 target,
                 {"workload", "SPEC", "only this workload (analytic)"},
                 {"model", "NAME", "analytic, learned, combined or all (default)"},
                 objective,
                 {"folds", "K", "folds of the held-out evaluation (default 5)"},
                 rounds,
                 {"records", "", "first list every record: measured and predicted time with the analytic breakdown"},
                 {"json", "", "print JSON"}},
                0,
                0,
                model_eval});
  registry.add({"model train",
                "Train the learned cost model on a target's records and store it in the database",
                "[--db FILE] [--target NAME] [--model combined|learned] [--objective rank|regression] [--rounds N] "
                "[--folds K]",
                "Trains XGBoost on every correct record of the target (features: workload dimensions, schedule "
                "knobs and the analytic model's breakdown, feature layout " +
                    std::to_string(costmodel::kFeatureVersion) +
                    ") and stores it in the database's models table, where `tessera tune --strategy evolve` finds it. "
                    "combined (default) boosts from the analytic model's estimate; learned starts from zero. Also "
                    "reports the held-out figures of `model eval` (--folds 0 skips them).",
                {db, target, {"model", "NAME", "combined (default) or learned"}, objective, rounds,
                 {"folds", "K", "folds of the held-out evaluation reported and stored with the model (default 5; 0: none)"}},
                0,
                0,
                model_train});
  registry.add({"model calibrate",
                "Fit the analytic model's async-MMA (wgmma) terms to a target's measured records",
                "[--db FILE] [--target NAME] [--folds K] [--output FILE.json] [--json]",
                "The analytic model's terms for wgmma GEMMs describe kernels, not the datasheet: the share of the "
                "tensor peak the MMAs sustain, the share of the memory terms the pipeline hides, the epilogue's cycles "
                "per output element (plus per epilogue step), the share of that TMA stores cost, the share ping-pong "
                "hides, the share of a multicast's L2 saving that shows, and the load latency the stages must hide. "
                "This fits them to the target's correct records of async-MMA schedules (at least 20) by least squares "
                "on the log of predicted over measured time, and reports the error and the ranking figures of `model eval` before and after, in sample and "
                "on held-out workloads (each fold fitted to the others). The last line is the fitted "
                "\"async_mma_terms\" object for configs/gpus/<spec>.json; --output writes the whole spec with "
                "them, usable as --target FILE. Nothing is written to the database.",
                {db,
                 target,
                 {"folds", "K", "folds of the held-out check (default 4; 0: none)"},
                 {"output", "FILE", "write the target's spec with the fitted terms to FILE"},
                 {"json", "", "print JSON"}},
                0,
                0,
                model_calibrate});
}

}  // namespace tessera::cli
