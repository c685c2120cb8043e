// `tessera model eval`: how well the analytic cost model ranks the database's measurements.
#include <cstdio>
#include <iostream>
#include <algorithm>
#include <map>
#include <tuple>

#include "cli/command.h"
#include "cli/format.h"
#include "core/error.h"
#include "costmodel/analytic.h"
#include "costmodel/evaluate.h"
#include "db/database.h"
#include "kernels/families.h"

namespace tessera::cli {
namespace {

int model_eval(const ParsedArgs& args) {
  std::string model = args.value_or("model", "analytic");
  if (model != "analytic") throw UserError("--model must be analytic (the learned model comes with its own issue)");
  std::string path = args.value_or("db", "tessera.db");
  db::OpenOptions read_only;
  read_only.read_only = true;
  db::TuningDatabase database = db::TuningDatabase::open(path, read_only);
  db::RecordFilter filter;
  filter.status = Status::kOk;
  if (auto w = args.value("workload")) filter.workload_key = Workload::parse(*w).key();
  std::vector<Record> records;
  for (db::StoredRecord& s : database.query(filter)) records.push_back(std::move(s.record));
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  std::map<std::string, std::unique_ptr<costmodel::AnalyticModel>> models;  // per spec
  auto predict = [&](std::span<const Record> group) {
    const std::string& spec = group.front().target.spec_name;
    auto& m = models[spec];
    if (!m) m = std::make_unique<costmodel::AnalyticModel>(families, find_spec(spec));
    std::vector<Candidate> cs;
    for (const Record& r : group) cs.push_back({r.workload, r.schedule, std::nullopt});
    return m->predict(cs);
  };
  if (args.has("records")) {
    // Every record with the model's breakdown, fastest measured first per workload and target.
    std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
      return std::make_tuple(a.workload.key(), a.target.fingerprint(), a.measurement.median_us) <
             std::make_tuple(b.workload.key(), b.target.fingerprint(), b.measurement.median_us);
    });
    Table table({"workload", "measured us", "predicted us", "bound", "compute", "smem", "l2", "dram", "waves", "schedule"});
    for (const Record& r : records) {
      auto& m = models[r.target.spec_name];
      if (!m) m = std::make_unique<costmodel::AnalyticModel>(families, find_spec(r.target.spec_name));
      costmodel::Estimate e = m->explain({r.workload, r.schedule, std::nullopt});
      table.add({r.workload.key(), fixed(r.measurement.median_us, 2), fixed(e.us, 2), e.bound, fixed(e.compute_us, 1),
                 fixed(e.smem_us, 1), fixed(e.l2_us, 1), fixed(e.dram_us, 1), fixed(e.waves, 0), r.schedule.key()});
    }
    std::cout << table.str();
  }
  costmodel::EvalReport report = costmodel::evaluate(records, predict);
  if (report.groups.empty())
    throw UserError(path + ": no workload has two or more correct measurements on one target to rank");
  if (args.has("json")) {
    std::cout << report.to_json().dump(2) << "\n";
    return 0;
  }
  Table table({"workload", "target", "records", "spearman", "pairwise", "top1", "top5", "best us", "model pick us"});
  for (const costmodel::GroupEval& g : report.groups)
    table.add({g.workload, g.target.substr(0, g.target.find('|')), std::to_string(g.records), fixed(g.spearman, 3),
               fixed(g.pairwise, 3), fixed(g.top1, 3), fixed(g.top5, 3), fixed(g.best_us, 2), fixed(g.predicted_pick_us, 2)});
  std::cout << "analytic model against " << report.records << " correct measurements in " << path << "\n"
            << table.str() << report.summary_line() << "\n";
  return 0;
}

}  // namespace

void register_model_commands(CommandRegistry& registry) {
  registry.add({"model eval",
                "How well the cost model ranks the database's measurements (Spearman, pairwise accuracy, top-k)",
                "[--db FILE] [--workload SPEC] [--model analytic] [--records] [--json]",
                "For every workload and target with two or more correct measurements, ranks the measured "
                "schedules with the model and reports the Spearman rank correlation, the pairwise accuracy "
                "(pairs ordered like the measurements), and TenSet's top-1 and top-5 scores (the best time over "
                "the best time among the model's first k picks). The last line is machine-readable.",
                {{"db", "FILE", "tuning database (default ./tessera.db)"},
                 {"workload", "SPEC", "only this workload"},
                 {"model", "NAME", "analytic (default)"},
                 {"records", "", "first list every record: measured and predicted time with the model's breakdown"},
                 {"json", "", "print JSON"}},
                0,
                0,
                model_eval});
}

}  // namespace tessera::cli
