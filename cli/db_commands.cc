// `tessera db ...`: query, merge, check, export and import the tuning database.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "cli/format.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/version.h"
#include "db/database.h"
#include "db/export.h"
#include "kernels/families.h"
#include "measure/devices.h"
#include "search/kernel_export.h"
#include "search/report.h"

namespace tessera::cli {
namespace {

constexpr const char* kDefaultDb = "tessera.db";

db::TuningDatabase open_db(const ParsedArgs& args, bool read_only) {
  db::OpenOptions options;
  options.read_only = read_only;
  return db::TuningDatabase::open(args.value_or("db", kDefaultDb), options);
}

// One line (errors are one line): " A; B".
std::string target_list(const std::vector<Target>& targets) {
  std::string out;
  for (const Target& t : targets) out += (out.empty() ? " " : "; ") + t.fingerprint();
  return out.empty() ? " none" : out;
}

}  // namespace

Target resolve_db_target(db::TuningDatabase& db, const ParsedArgs& args, bool allow_unstored) {
  std::vector<Target> stored = db.targets();
  if (auto name = args.value("target")) {
    std::vector<Target> matches;
    for (const Target& t : stored) {
      if (t.fingerprint() == *name) return t;
      if (t.spec_name == *name || t.gpu_name == *name) matches.push_back(t);
    }
    if (matches.size() == 1) return matches.front();
    if (matches.size() > 1)
      throw UserError("--target '" + *name + "' matches " + std::to_string(matches.size()) + " targets in " +
                      db.path() + "; give a fingerprint:" + target_list(matches));
    if (allow_unstored) return measure::resolve_target(*name).target;
    throw UserError(db.path() + ": no records for target '" + *name + "' (targets:" + target_list(stored) + ")");
  }
  if (stored.size() == 1) return stored.front();
  measure::DeviceScan scan = measure::scan_devices();
  if (!scan.devices.empty()) {
    for (const Target& t : stored)
      if (t == scan.devices.front().target) return t;
    if (allow_unstored) return scan.devices.front().target;
  }
  if (stored.empty()) throw UserError(db.path() + ": no records yet");
  throw UserError(db.path() + " holds records of " + std::to_string(stored.size()) +
                  " targets; choose one with --target:" + target_list(stored));
}

OptionSpec db_target_option() {
  return {"target", "NAME", "a target fingerprint, spec name (h100_sxm) or GPU name (default: the only one)"};
}

namespace {

std::string short_target(const Target& t) { return t.spec_name + (t.is_device() ? "" : " (model-only)"); }

std::string ratio(const std::optional<double>& vendor_us, double us) {
  return vendor_us && us > 0 ? fixed(*vendor_us / us, 2) + "x" : "-";
}

Json stored_json(const db::StoredRecord& s) {
  Json j;
  j["id"] = s.id;
  Json r = s.record.to_json();
  for (auto& [k, v] : r.items()) j[k] = v;
  return j;
}

int db_list(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  std::optional<std::string> fp;
  if (args.has("target")) fp = resolve_db_target(db, args, false).fingerprint();
  auto kind = args.value("kind");
  std::map<std::string, std::string> short_names;
  for (const Target& t : db.targets()) short_names[t.fingerprint()] = short_target(t);
  Json rows = Json::array();
  Table table({"workload", "target", "records", "ok", "best", "baseline", "vs baseline"});
  for (const db::WorkloadSummary& s : db.summaries(fp)) {
    if (kind && s.kind != *kind) continue;
    rows.push_back({{"workload", s.workload_key}, {"target", s.target_fingerprint}, {"records", s.records}, {"ok", s.ok},
                    {"best_us", s.best_us ? Json(*s.best_us) : Json(nullptr)},
                    {"vendor_us", s.vendor_us ? Json(*s.vendor_us) : Json(nullptr)}});
    table.add({s.workload_key, short_names[s.target_fingerprint], std::to_string(s.records), std::to_string(s.ok),
               s.best_us ? time_us(*s.best_us) : "-",
               s.vendor_us ? time_us(*s.vendor_us) + " " + std::string(baseline_name(Workload::parse(s.workload_key).kind)) : "-",
               s.best_us ? ratio(s.vendor_us, *s.best_us) : "-"});
  }
  if (args.has("json")) {
    std::cout << rows.dump(2) << "\n";
    return 0;
  }
  if (rows.empty()) {
    std::cout << db.path() << ": no records" << (kind || fp ? " match" : "") << "\n";
    return 0;
  }
  std::cout << table.str() << "\n'vs baseline' is the baseline's time over Tessera's best (above 1x: Tessera is faster); the "
               "baseline is the vendor library (cuBLASLt, cuDNN) or, for memory-bound kinds, a device-to-device copy of "
               "the workload's compulsory traffic.\n";
  return 0;
}

int db_best(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  Workload w = Workload::parse(args.positional[0]);
  Target target = resolve_db_target(db, args, true);
  int k = args.integer("top", 1, 1, 10000);
  db::BestResult best = db.best(w, target, k, args.has("fallback-arch"));
  if (args.has("json")) {
    Json out{{"workload", w.key()}, {"target", target.fingerprint()}, {"exact_target", best.exact_target}};
    out["records"] = Json::array();
    for (const db::StoredRecord& s : best.records) out["records"].push_back(stored_json(s));
    std::cout << out.dump(2) << "\n";
    return best.records.empty() ? 1 : 0;
  }
  if (best.records.empty()) {
    std::cerr << "tessera: no correct measurement of " << w.key() << " on " << target.fingerprint()
              << (args.has("fallback-arch") ? " or any " + target.arch() + " target" : " (try --fallback-arch)")
              << "\n";
    return 1;
  }
  std::cout << "best of " << w.key() << " on " << target.fingerprint() << "\n";
  if (!best.exact_target)
    std::cout << "FALLBACK: none on this exact target; these are from other " << target.arch() << " targets\n";
  Table table({"#", "id", "median", "spread", std::string(baseline_name(w.kind)), "vs baseline", "target", "schedule"});
  int rank = 0;
  for (const db::StoredRecord& s : best.records) {
    const Measurement& m = s.record.measurement;
    table.add({std::to_string(++rank), std::to_string(s.id), time_us(m.median_us), fixed(100 * m.spread, 1) + "%",
               m.vendor_us ? time_us(*m.vendor_us) : "-", ratio(m.vendor_us, m.median_us),
               short_target(s.record.target), s.record.schedule.key()});
  }
  std::cout << table.str();
  return 0;
}

int db_show(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  int64_t id = 0;
  try {
    id = std::stoll(args.positional[0]);
  } catch (const std::exception&) {
    throw UserError("record id must be an integer (got '" + args.positional[0] + "')");
  }
  auto s = db.get(id);
  if (!s) throw UserError(db.path() + ": no record with id " + args.positional[0]);
  if (args.has("json")) {
    std::cout << stored_json(*s).dump(2) << "\n";
    return 0;
  }
  const Record& r = s->record;
  const Measurement& m = r.measurement;
  std::cout << "record     " << s->id << "\n"
            << "workload   " << r.workload.key() << "\n"
            << "target     " << r.target.fingerprint() << "\n"
            << "schedule   " << r.schedule.key() << "\n"
            << "status     " << status_name(m.status) << (m.error.empty() ? "" : ": " + m.error) << "\n";
  if (m.status == Status::kOk)
    std::cout << "time       median " << time_us(m.median_us) << ", min " << time_us(m.min_us) << ", max "
              << time_us(m.max_us) << ", spread " << fixed(100 * m.spread, 1) << "% over " << m.times_us.size()
              << " repeats\n";
  if (m.vendor_us) std::cout << "vendor     " << time_us(*m.vendor_us) << " (" << ratio(m.vendor_us, m.median_us) << ")\n";
  if (r.predicted_us) std::cout << "predicted  " << time_us(*r.predicted_us) << "\n";
  std::cout << "resources  " << m.registers << " registers, " << m.smem_bytes << " B shared memory, " << m.spill_bytes
            << " B spilled\n"
            << "measured   " << utc_text(r.timestamp_s) << " UTC by tessera " << r.tool_version << " (features v"
            << r.feature_version << ")\n";
  return 0;
}

int db_history(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  Workload w = Workload::parse(args.positional[0]);
  std::optional<Target> target;
  if (args.has("target")) target = resolve_db_target(db, args, false);
  std::vector<db::HistoryEntry> entries = db.history(w, target);
  if (args.has("json")) {
    Json out = Json::array();
    for (const db::HistoryEntry& e : entries) {
      Json j = stored_json(e.stored);
      j["best_so_far_us"] = e.best_so_far_us ? Json(*e.best_so_far_us) : Json(nullptr);
      out.push_back(j);
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (entries.empty()) {
    std::cout << db.path() << ": no records of " << w.key() << "\n";
    return 0;
  }
  Table table({"id", "measured (UTC)", "status", "median", "best so far", "target", "schedule"});
  for (const db::HistoryEntry& e : entries) {
    const Record& r = e.stored.record;
    bool ok = r.measurement.status == Status::kOk;
    table.add({std::to_string(e.stored.id), utc_text(r.timestamp_s), std::string(status_name(r.measurement.status)),
               ok ? time_us(r.measurement.median_us) : "-", e.best_so_far_us ? time_us(*e.best_so_far_us) : "-",
               short_target(r.target), r.schedule.key()});
  }
  std::cout << table.str();
  return 0;
}

int db_stats(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  db::Stats st = db.stats();
  if (args.has("json")) {
    std::cout << Json{{"path", db.path()}, {"schema_version", st.schema_version}, {"records", st.records},
                      {"records_by_status", st.records_by_status}, {"workloads", st.workloads},
                      {"targets", st.targets}, {"families", st.families}, {"models", st.models},
                      {"graphs", st.graphs}, {"graph_runs", st.graph_runs}, {"file_bytes", st.file_bytes}}
                     .dump(2)
              << "\n";
    return 0;
  }
  std::cout << db.path() << " (schema v" << st.schema_version << ", " << si(static_cast<double>(st.file_bytes), "B")
            << ")\n"
            << "  records    " << st.records << "\n";
  for (const auto& [status, n] : st.records_by_status) std::cout << "    " << status << ": " << n << "\n";
  std::cout << "  workloads  " << st.workloads << "\n  targets    " << st.targets << "\n  families   " << st.families
            << "\n  models     " << st.models << "\n  graphs     " << st.graphs << "\n  graph runs " << st.graph_runs << "\n";
  return 0;
}

int db_merge(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, false);
  db::CommitResult r = db.merge(args.positional[0]);
  if (args.has("json")) {
    std::cout << Json{{"inserted", r.inserted}, {"duplicates", r.duplicates}}.dump() << "\n";
    return 0;
  }
  std::cout << "merged " << args.positional[0] << " into " << db.path() << ": " << r.inserted << " new records, "
            << r.duplicates << " already present\n";
  return 0;
}

int db_check(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  std::vector<std::string> problems = db.check();
  if (args.has("json")) {
    std::cout << Json{{"path", db.path()}, {"ok", problems.empty()}, {"problems", problems}}.dump(2) << "\n";
  } else if (problems.empty()) {
    std::cout << db.path() << ": ok (" << db.stats().records << " records)\n";
  } else {
    std::cout << db.path() << ": " << problems.size() << " problem(s)\n";
    for (const std::string& p : problems) std::cout << "  " << p << "\n";
  }
  return problems.empty() ? 0 : 1;
}


int db_export(const ParsedArgs& args) {
  auto format_name = args.value("format");
  if (!format_name)
    throw UserError("tessera db export: --format is required (jsonl, triton, kerneltuner, cutlass, cutlass-conv2d, header)");
  db::ExportFormat format = db::parse_export_format(*format_name);
  db::TuningDatabase db = open_db(args, true);
  db::ExportOptions options;
  options.tool_version = kVersion;
  if (args.has("target")) options.target_fingerprint = resolve_db_target(db, args, false).fingerprint();
  if (auto w = args.value("workload")) options.workload_key = Workload::parse(*w).key();
  if (args.has("top")) options.top_k = args.integer("top", 1, 1, 1000000);
  if (args.has("with-kernels") && format != db::ExportFormat::kCHeader)
    throw UserError("--with-kernels goes with --format header");
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  // Triton's num_warps: the warps that compute the product, from the family's tile plan.
  options.mma_warps = [&families](const Record& r) -> std::optional<int64_t> {
    const kernels::KernelFamily* f = families.find(r.schedule.family);
    kernels::TilePlan p;
    try {
      if (!f) return std::nullopt;
      const HardwareSpec hw = find_spec(r.target.spec_name);
      if (!kernels::has_every_knob(*f, r.schedule, r.workload, hw) || f->validate(r.schedule, r.workload, hw))
        return std::nullopt;
      p = f->tile_plan(r.workload, r.schedule);
    } catch (const UserError&) {  // a target spec this tessera does not have
      return std::nullopt;
    }
    if (p.async_mma) return 4 * p.warps_m;  // consumer warpgroups
    if (p.warps_m > 0 && p.warps_n > 0) return p.warps_m * p.warps_n;
    return p.threads / 32;
  };
  auto output = args.value("output");
  // --with-kernels writes two files: NAME.h (declarations) and NAME.cu (the kernels).
  std::string cuda, cuda_path;
  if (args.has("with-kernels")) {
    if (!output || output->size() < 3 || output->substr(output->size() - 2) != ".h")
      throw UserError("--with-kernels writes NAME.h and NAME.cu: give -o NAME.h");
    cuda_path = output->substr(0, output->size() - 2) + ".cu";
  }
  db::ExportResult result;
  if (args.has("with-kernels")) {
    search::KernelExport k = search::export_header_with_kernels(
        db, options, families, std::filesystem::path(*output).filename().string());
    result = std::move(k.header);
    cuda = std::move(k.cuda);
  } else {
    result = db::export_database(db, format, options);
  }
  // Nothing to export is said, and no file is written (an empty export would pass for one).
  if (result.items == 0) {
    std::string why = result.skipped.empty() ? "" : " (" + result.skipped.front() +
                                                        (result.skipped.size() > 1 ? ", ..." : "") + ")";
    throw UserError(db.path() + ": nothing to export as " + *format_name + why);
  }
  if (!cuda_path.empty()) write_file_atomic(cuda_path, cuda, "the kernels' export");
  if (output) write_file_atomic(*output, result.text, "the export");
  else std::cout << result.text;
  std::cerr << "exported " << result.items << " item(s) as " << *format_name
            << (args.has("with-kernels") ? " (" + std::to_string(result.kernels) + " with their kernels in " + cuda_path + ")"
                                         : "")
            << (output ? " to " + *output : "") << "\n";
  for (const std::string& s : result.skipped) std::cerr << "  skipped: " << s << "\n";
  return 0;
}

int report(const ParsedArgs& args) {
  auto output = args.value("output");
  if (!output) throw UserError("tessera report: -o FILE.html is required");
  db::TuningDatabase db = open_db(args, true);
  db::RecordFilter newest;
  newest.newest_first = true;
  newest.limit = 1;
  const std::vector<db::StoredRecord> last = db.query(newest);
  if (last.empty()) throw UserError(db.path() + ": no records to report");
  // --target, else the only target, else the GPU present's (resolve_db_target), else that of
  // the newest record (the job just run).
  std::optional<Target> target;
  try {
    target = resolve_db_target(db, args, false);
  } catch (const UserError&) {
    if (args.has("target")) throw;
    target = last.front().record.target;
  }
  search::ReportOptions options;
  options.source = db.path();
  options.tool_version = kVersion;
  options.generated_s = now_s();
  search::Report r = search::tuning_report(db, *target, options);
  write_file_atomic(*output, r.html, "the report");
  if (args.has("json")) {
    std::cout << Json{{"output", *output}, {"target", target->fingerprint()}, {"workloads", r.workloads},
                      {"records", r.records}, {"charts", r.charts}}.dump(2) << "\n";
  } else {
    std::cout << "wrote " << *output << ": " << r.workloads << " workload(s), " << r.records << " record(s), "
              << r.charts << " chart(s) for " << target->fingerprint() << "\n";
  }
  return 0;
}

// Refuses records of kernel families this tessera does not know, or with knobs their family
// lacks: exported code is generated from these names.
db::RecordCheck known_schedules() {
  auto families = std::make_shared<kernels::FamilyRegistry>();
  kernels::register_builtin_families(*families);
  return [families](const Record& r, const std::string& where) {
    const kernels::KernelFamily* f = families->find(r.schedule.family);
    if (!f) {
      std::string known;
      for (const std::string& n : families->names()) known += (known.empty() ? "" : ", ") + n;
      throw UserError(where + ": unknown kernel family \"" + r.schedule.family + "\" (known: " + known + ")");
    }
    std::vector<kernels::KnobDomain> space = f->space(r.workload, find_spec("h100_sxm"));
    for (const auto& [name, value] : r.schedule.knobs)
      if (std::none_of(space.begin(), space.end(), [&](const kernels::KnobDomain& d) { return d.name == name; })) {
        std::string knobs;
        for (const kernels::KnobDomain& d : space) knobs += (knobs.empty() ? "" : ", ") + d.name;
        throw UserError(where + ": family " + r.schedule.family + " has no knob \"" + name + "\" (its knobs: " + knobs +
                        ")");
      }
  };
}

int db_import(const ParsedArgs& args) {
  const std::string& path = args.positional[0];
  std::string format = args.value_or("format", "jsonl");
  std::string text = read_file(path);
  std::vector<Record> records;
  if (format == "jsonl") {
    records = db::import_jsonl(text, path, known_schedules());
  } else if (format == "kerneltuner") {
    auto spec = args.value("workload");
    auto family = args.value("family");
    auto target_name = args.value("target");
    if (!spec || !family || !target_name)
      throw UserError("importing a Kernel Tuner cache needs --workload SPEC, --family NAME and --target NAME "
                      "(a cache names only the device)");
    db::KernelTunerImport info{Workload::parse(*spec), *family, measure::resolve_target(*target_name).target};
    // The cache says which GPU (its device_name) but not which driver or CUDA versions.
    info.target.driver_version = info.target.runtime_version = info.target.toolkit_version = "unknown";
    records = db::import_kernel_tuner(text, info, path, known_schedules());
  } else {
    throw UserError("unknown import format '" + format + "' (valid: jsonl, kerneltuner)");
  }
  db::TuningDatabase db = open_db(args, false);
  db::CommitResult r = db.commit(records);
  if (args.has("json")) {
    std::cout << Json{{"read", records.size()}, {"inserted", r.inserted}, {"duplicates", r.duplicates}}.dump() << "\n";
    return 0;
  }
  std::cout << "imported " << path << " into " << db.path() << ": " << r.inserted << " new records, " << r.duplicates
            << " already present\n";
  return 0;
}

int db_graphs(const ParsedArgs& args) {
  db::TuningDatabase db = open_db(args, true);
  std::optional<std::string> model;
  if (!args.positional.empty()) model = args.positional[0];
  std::vector<db::StoredGraph> graphs = db.graphs(model);
  if (auto out = args.value("output")) {
    auto id = args.value("id");
    if (!id) throw UserError("--output writes one stored graph: give --id ID too");
    auto it = std::find_if(graphs.begin(), graphs.end(), [&](const db::StoredGraph& g) { return std::to_string(g.id) == *id; });
    if (it == graphs.end()) throw UserError("no stored graph with id " + *id + " in " + db.path());
    write_file_atomic(*out, it->graph, "the stored graph");
    std::cout << "wrote graph " << *id << " (" << it->model_key << ") to " << *out << "\n";
    return 0;
  }
  std::vector<db::StoredGraphRun> runs = db.graph_runs(model);
  if (args.has("json") && args.has("runs")) {
    Json out = Json::array();
    for (const db::StoredGraphRun& r : runs)
      out.push_back({{"id", r.id}, {"model", r.model_key}, {"target", r.target.fingerprint()}, {"graph", r.graph},
                     {"kernels", r.kernels}, {"dtype", r.dtype}, {"median_us", r.median_us},
                     {"flushed_median_us", r.flushed_median_us}, {"predicted_us", r.predicted_us},
                     {"check_error", r.check_error ? Json(*r.check_error) : Json()},
                     {"result", Json::parse(r.result_json.empty() ? "{}" : r.result_json)},
                     {"tool_version", r.tool_version}, {"created", utc_text(r.created_s)}});
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (args.has("json")) {
    Json out = Json::array();
    for (const db::StoredGraph& g : graphs) {
      out.push_back({{"id", g.id}, {"model", g.model_key}, {"target", g.target.fingerprint()},
                     {"original_cost_us", g.original_cost_us}, {"optimized_cost_us", g.optimized_cost_us},
                     {"search", Json::parse(g.rewrites_json.empty() ? "{}" : g.rewrites_json)},
                     {"tool_version", g.tool_version}, {"created", utc_text(g.created_s)}});
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  Table table({"id", "model", "before us", "after us", "reduction", "target", "created"});
  for (const db::StoredGraph& g : graphs) {
    double reduction = g.original_cost_us > 0 ? 100 * (1 - g.optimized_cost_us / g.original_cost_us) : 0;
    table.add({std::to_string(g.id), g.model_key, fixed(g.original_cost_us, 1), fixed(g.optimized_cost_us, 1),
               fixed(reduction, 1) + "%", g.target.spec_name, utc_text(g.created_s)});
  }
  if (!graphs.empty() || runs.empty()) std::cout << table.str();
  if (!runs.empty()) {
    Table measured({"run", "model", "graph", "kernels", "median us", "flushed us", "predicted us", "check", "GPU", "created"});
    for (const db::StoredGraphRun& r : runs)
      measured.add({std::to_string(r.id), r.model_key, r.graph, r.kernels, fixed(r.median_us, 1),
                    fixed(r.flushed_median_us, 1), fixed(r.predicted_us, 1),
                    r.check_error ? fixed(100 * *r.check_error, 2) + "%" : "-", r.target.gpu_name, utc_text(r.created_s)});
    std::cout << (graphs.empty() ? "" : "\n") << "measured runs (graph run):\n" << measured.str();
  }
  return 0;
}

}  // namespace

void register_db_commands(CommandRegistry& registry) {
  OptionSpec dbopt{"db", "FILE", "tuning database (default: ./tessera.db)"};
  OptionSpec json{"json", "", "print JSON for scripts instead of a table"};
  OptionSpec target = db_target_option();
  registry.add({"db list", "List the workloads in the database with their best time per target",
                "[--db FILE] [--target NAME] [--kind KIND] [--json]", "",
                {dbopt, target, {"kind", "KIND", "only workloads of this kind (matmul, conv2d, ...)"}, json}, 0, 0,
                db_list});
  registry.add({"db best", "Show the fastest correct schedules of a workload on a target",
                "WORKLOAD [--db FILE] [--target NAME] [--top K] [--fallback-arch] [--json]",
                "Records of the exact target only, unless --fallback-arch: then, when the exact target has\n"
                "none, those of other targets with the same compute capability, labelled FALLBACK.",
                {dbopt, target, {"top", "K", "how many schedules (default 1)"},
                 {"fallback-arch", "", "fall back to targets of the same architecture"}, json},
                1, 1, db_best});
  registry.add({"db show", "Show one record", "ID [--db FILE] [--json]", "", {dbopt, json}, 1, 1, db_show});
  registry.add({"db history", "Show a workload's records in the order they were measured, with the best so far",
                "WORKLOAD [--db FILE] [--target NAME] [--json]", "", {dbopt, target, json}, 1, 1, db_history});
  registry.add({"db stats", "Count records, workloads, targets, models and graphs", "[--db FILE] [--json]", "",
                {dbopt, json}, 0, 0, db_stats});
  registry.add({"db graphs", "List the graph-search results (`graph optimize`) and measured runs (`graph run`), or write one out as ONNX",
                "[MODEL_KEY] [--db FILE] [--id ID --output FILE.onnx] [--json [--runs]]",
                "Each result keeps the optimised graph's structure as ONNX (weights over 4096 elements stripped), "
                "the costs before and after, and the search settings and rewrites. Each measured run keeps the "
                "model, the GPU, which graph ran on whose kernels, the end-to-end latency (L2 warm and flushed), "
                "the oracle's prediction, the check's error and the whole result (per-step times).",
                {dbopt, {"id", "ID", "the stored graph to write"}, {"output", "FILE.onnx", "where to write it (also -o)"},
                 json, {"runs", "", "with --json: print the measured runs instead of the search results"}},
                0, 1, db_graphs});
  registry.add({"db merge", "Add every record, model and graph of another database (repeat-safe)",
                "OTHER.db [--db FILE] [--json]", "", {dbopt, json}, 1, 1, db_merge});
  registry.add({"db check", "Check the database's integrity (exit status 1 if it finds problems)",
                "[--db FILE] [--json]", "", {dbopt, json}, 0, 0, db_check});
  registry.add({"report", "Write a self-contained HTML page about a target's tuning results",
                "-o FILE.html [--db FILE] [--target NAME] [--json]",
                "One page, no network needed (inline CSS and SVG): per workload the tuning curve (best so far\n"
                "against measurements, the vendor library's time beside it), a roofline chart of every\n"
                "workload's best and vendor time on the target's GPU, the cost model's predicted against\n"
                "measured times with its pairwise accuracy, the failures by status, and the stored\n"
                "graph-search results. The target: --target, else the database's only one, else the GPU\n"
                "present's, else that of the newest record.",
                {{"output", "FILE.html", "where to write the page (also -o)"}, dbopt, target, json}, 0, 0, report});
  registry.add({"db export", "Export records or best schedules for other compilers and tools",
                "--format FORMAT [--output FILE] [--db FILE] [--target NAME] [--workload SPEC] [--top K] [--with-kernels]",
                "Formats:\n"
                "  jsonl           every record (or those of --workload/--target), one JSON object per line;\n"
                "                  lossless: `tessera db import` reads it back\n"
                "  triton          Python file of triton.Config lists per matmul workload key (--top per key)\n"
                "  kerneltuner     Kernel Tuner cache file of one workload (--workload) and family\n"
                "  cutlass         CUTLASS-profiler-style CSV of GEMM results (--top per workload)\n"
                "  cutlass-conv2d  the same for conv2d results\n"
                "  header          C header with the best schedule's knobs per workload; --with-kernels -o NAME.h\n"
                "                  also writes NAME.cu, each best kernel as self-contained CUDA with a launch\n"
                "                  function (nvcc -arch=sm_90a -c NAME.cu), declared in NAME.h for C and C++\n"
                "Without --output the export goes to standard output; a summary goes to standard error.",
                {{"format", "FORMAT", "jsonl, triton, kerneltuner, cutlass, cutlass-conv2d or header"},
                 {"output", "FILE", "write here instead of standard output"},
                 dbopt,
                 target,
                 {"workload", "SPEC", "only this workload"},
                 {"top", "K", "best schedules per workload (default 1)"},
                 {"with-kernels", "", "header: also write each best kernel as self-contained CUDA to NAME.cu beside -o NAME.h, "
                                     "with a launch function the header declares for C and C++"}},
                0, 0, db_export});
  registry.add({"db import", "Import records from a jsonl export or a Kernel Tuner cache",
                "FILE [--format jsonl|kerneltuner] [--db FILE] [--workload SPEC --family NAME --target NAME]",
                "Records already present (identical content) are skipped, so importing twice adds nothing.\n"
                "A Kernel Tuner cache names only its device: say which workload it tuned, which Tessera\n"
                "family its parameters belong to, and the target spec (its GPU name is taken from the cache).",
                {{"format", "FORMAT", "jsonl (default) or kerneltuner"},
                 dbopt,
                 {"workload", "SPEC", "kerneltuner: the workload the cache tuned"},
                 {"family", "NAME", "kerneltuner: the kernel family of its parameters"},
                 {"target", "NAME", "kerneltuner: the GPU spec it was measured on (see `tessera targets`)"},
                 json},
                1, 1, db_import});
}

}  // namespace tessera::cli
