#include "search/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>

#include "core/clock.h"
#include "core/error.h"
#include "core/json.h"
#include "costmodel/evaluate.h"
#include "costmodel/roofline.h"
#include "search/svg.h"

namespace tessera::search {
namespace {

using svg::escape;
using svg::number;

// One workload of the target and what the page says of it. Its records are read once, one
// workload at a time (memory is bounded by the largest workload, not the database); only the
// workloads whose curve is drawn keep their points.
struct Row {
  Workload workload;
  db::WorkloadSummary summary;
  std::string best_family;     ///< of the fastest correct record (set by the scan)
  std::optional<costmodel::RooflineFloor> floor;
  std::optional<double> pick;  ///< the smallest prediction: the record the model ranked first
  bool drawn = false;          ///< its tuning curve is on the page
  int64_t measurements = 0;    ///< its records, in insertion order
  std::vector<std::tuple<double, double, std::string>> points;  ///< (index, median, schedule) of correct ones
  std::vector<std::pair<double, double>> best;                  ///< (index, best so far) where it changes
};

// What the page says of all records: failures, and the model's accuracy group by group.
struct Scan {
  std::map<std::string, std::map<std::string, int64_t>> failures;  ///< status -> family -> records
  std::map<std::string, std::string> example;                      ///< status -> its first error
  int64_t total = 0, failed = 0, unmeasured = 0, predicted = 0;
  std::vector<costmodel::GroupEval> groups;
  std::vector<std::tuple<double, double, std::string>> scatter;  ///< (measured, predicted, label), sampled
};

// Reads `r`'s records on `target` once: its curve (if drawn), the model's pick and accuracy,
// the failures, and every `stride`-th correct record with a prediction for the scatter.
void scan_workload(db::TuningDatabase& db, const Target& target, Row& r, Scan& scan, size_t stride) {
  db::RecordFilter f;
  f.workload_key = r.summary.workload_key;
  f.target_fingerprint = target.fingerprint();
  std::vector<Record> scored;
  std::optional<double> best;
  for (db::StoredRecord& stored : db.query(f)) {
    Record& rec = stored.record;
    const Measurement& m = rec.measurement;
    const double index = static_cast<double>(++r.measurements);
    ++scan.total;
    if (rec.predicted_us && (!r.pick || *rec.predicted_us < *r.pick)) r.pick = rec.predicted_us;
    if (m.status == Status::kOk) {
      if (r.drawn) r.points.emplace_back(index, m.median_us, rec.schedule.key());
      if (!best || m.median_us < *best) {  // the first fastest, as best() orders them
        best = m.median_us;
        r.best_family = rec.schedule.family;
        if (r.drawn) r.best.emplace_back(index, *best);
      }
      if (rec.predicted_us) {
        if (scan.predicted++ % stride == 0)
          scan.scatter.emplace_back(m.median_us, *rec.predicted_us, rec.workload.key() + " | " + rec.schedule.key());
        rec.measurement.times_us.clear();  // only the median is scored
        rec.measurement.conditions = Json();
        scored.push_back(std::move(rec));
      }
    } else if (m.status == Status::kUnmeasured) {  // a model-only job's ranking, not a failure
      ++scan.unmeasured;
    } else {
      ++scan.failed;
      const std::string st(status_name(m.status));
      ++scan.failures[st][rec.schedule.family];
      if (!scan.example.count(st)) scan.example[st] = m.error.substr(0, 160);
    }
  }
  if (r.drawn && !r.best.empty()) r.best.emplace_back(static_cast<double>(r.measurements), r.best.back().second);
  costmodel::EvalReport eval = costmodel::evaluate(scored, [](std::span<const Record> group) {
    std::vector<double> p;
    for (const Record& x : group) p.push_back(*x.predicted_us);
    return p;
  });
  for (costmodel::GroupEval& g : eval.groups) scan.groups.push_back(std::move(g));
}

std::string us(double v) { return number(v, v >= 100 ? 5 : 4) + " us"; }

std::string utc(int64_t s) { return utc_text(s) + " UTC"; }

const char* const kStyle = R"(<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 8px; border-bottom: 1px solid #eaeef2; text-align: right; white-space: nowrap; }
td.text { white-space: normal; text-align: left; } .wide { overflow-x: auto; }
td:first-child, th:first-child { text-align: left; font-family: ui-monospace, monospace; font-size: 12px; }
th { background: #f6f8fa; } .meta { color: #57606a; } .faster { color: #1a7f37; } .slower { color: #cf222e; }
.grid-charts { display: flex; flex-wrap: wrap; gap: 8px; }
svg.chart { background: #fff; border: 1px solid #eaeef2; }
svg .frame { fill: none; stroke: #8c959f; } svg .grid { stroke: #eaeef2; } svg .tick, svg .note { font-size: 10px; fill: #57606a; }
svg .title { font-size: 12px; font-weight: 600; fill: #1b1f24; } svg .label { font-size: 11px; fill: #1b1f24; }
svg .meas { fill: #8c959f; opacity: 0.6; } svg .best { fill: #0969da; stroke: #0969da; }
svg polyline.best { fill: none; stroke-width: 2; } svg .vendor { fill: none; stroke: #cf222e; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg circle.vendor { fill: #fff; stroke-dasharray: none; } svg .roof { fill: none; stroke: #1b1f24; stroke-width: 1.5; }
svg .pair { stroke: #d0d7de; } svg .ideal { fill: none; stroke: #8c959f; stroke-dasharray: 4 3; }
svg .pred { fill: #8250df; opacity: 0.5; } svg .swatch { stroke-dasharray: none; }
svg rect.vendor { fill: #cf222e; } svg rect.best { fill: #0969da; } svg rect.meas { fill: #8c959f; } svg rect.roof { fill: #1b1f24; }
.bar { display: inline-block; height: 10px; background: #cf222e; vertical-align: middle; }
</style>
)";

// Marks every chart's rendered size and mark count on <body data-rendered>, so that a headless
// browser's DOM dump shows what was laid out (tests/scripts/report.sh reads it).
const char* const kRenderCheck = R"(<script>
(function () {
  var out = [];
  document.querySelectorAll('svg.chart').forEach(function (s) {
    var b = s.getBBox();
    out.push({id: s.id, marks: s.querySelectorAll('circle, polyline, line.vendor, line.roof').length,
              width: Math.round(b.width), height: Math.round(b.height)});
  });
  document.body.setAttribute('data-rendered', JSON.stringify(out));
})();
</script>
)";

std::string workloads_section(const std::vector<Row>& rows) {
  std::string s = "<h2 id=\"workloads\">Workloads</h2>\n<div class=\"wide\"><table>\n<tr><th>workload</th><th>records</th><th>ok</th>"
                  "<th>best family</th><th>best</th><th>baseline</th><th>baseline / best</th><th>roofline floor</th>"
                  "<th>floor / best</th><th>model's pick (predicted)</th></tr>\n";
  for (const Row& r : rows) {
    const auto& m = r.summary;
    s += "<tr><td>" + escape(m.workload_key) + "</td><td>" + std::to_string(m.records) + "</td><td>" +
         std::to_string(m.ok) + "</td><td>" + escape(r.best_family) + "</td><td>" + (m.best_us ? us(*m.best_us) : "-") +
         "</td><td>" + (m.vendor_us ? us(*m.vendor_us) + " " + std::string(baseline_name(r.workload.kind)) : "-") + "</td>";
    if (m.best_us && m.vendor_us) {
      const double ratio = *m.vendor_us / *m.best_us;
      s += std::string("<td class=\"") + (ratio >= 1 ? "faster" : "slower") + "\">" + number(ratio, 3) + "x</td>";
    } else {
      s += "<td>-</td>";
    }
    s += "<td>" + (r.floor ? us(r.floor->floor_us) : std::string("-")) + "</td><td>" +
         (r.floor && m.best_us ? number(100 * r.floor->floor_us / *m.best_us, 3) + " %" : std::string("-")) + "</td>";
    s += "<td>" + (r.pick ? us(*r.pick) : std::string("-")) + "</td></tr>\n";
  }
  return s + "</table></div>\n<p class=\"meta\">baseline / best above 1x: Tessera's best is faster than the baseline timed "
             "beside it in the same worker: the vendor library (cuBLASLt, cuDNN) or, for memory-bound kinds, a "
             "device-to-device copy of the workload's compulsory traffic (1x: at the copy's bandwidth). The roofline floor is the larger of the arithmetic at the GPU's peak and the "
             "compulsory DRAM traffic at its bandwidth. The model's pick is the smallest time the cost model predicted for a "
             "record of the workload.</p>\n";
}

// Intensity (FLOP/byte) against achieved TFLOP/s, log-log, under the GPU's roofs.
std::string roofline_section(const std::vector<Row>& rows, const std::optional<HardwareSpec>& hw, int64_t& charts) {
  std::string s = "<h2 id=\"roofline\">Roofline</h2>\n";
  if (!hw) return s + "<p>No roofline: this tessera has no spec of the target's GPU.</p>\n";
  // A workload's measured best, else (nothing measured: a model-only job) the model's pick.
  auto placed = [](const Row& r) -> std::optional<double> {
    if (!r.floor || r.floor->flops <= 0 || r.floor->min_bytes <= 0) return std::nullopt;
    return r.summary.best_us ? r.summary.best_us : r.pick;
  };
  std::vector<double> xs, ys;
  std::map<InstrKind, double> roofs;
  bool predicted = false;
  for (const Row& r : rows) {
    const std::optional<double> t = placed(r);
    if (!t) continue;
    predicted = predicted || !r.summary.best_us;
    xs.push_back(r.floor->flops / r.floor->min_bytes);
    ys.push_back(r.floor->flops / *t * 1e-6);
    if (r.summary.vendor_us) ys.push_back(r.floor->flops / *r.summary.vendor_us * 1e-6);
    if (auto p = hw->peak(r.floor->instr)) roofs[r.floor->instr] = *p;
  }
  if (xs.empty()) return s + "<p>No workload with arithmetic to place.</p>\n";
  for (const auto& [k, p] : roofs) ys.push_back(p);
  const double bw = hw->dram_bandwidth_gbps * 1e-3;  // TB/s: TFLOP/s per FLOP/byte
  svg::Axis x = svg::fit(xs, true, "arithmetic intensity [FLOP/byte of compulsory DRAM traffic]", 0.1);
  svg::Axis y = svg::fit(ys, true, "achieved [TFLOP/s]", 0.08);
  svg::Plot plot("roofline", "Roofline on " + hw->name + " (" + number(hw->dram_bandwidth_gbps, 4) + " GB/s)", 900, 460,
                 x, y);
  for (const auto& [k, peak] : roofs) {
    const double ridge = peak / bw;
    plot.line({{x.lo, bw * x.lo}, {std::clamp(ridge, x.lo, x.hi), std::min(peak, bw * std::clamp(ridge, x.lo, x.hi))},
               {x.hi, std::min(peak, bw * x.hi)}},
              "roof", false, std::string(instr_kind_name(k)) + " peak " + number(peak, 4) + " TFLOP/s");
  }
  for (const Row& r : rows) {
    const std::optional<double> t = placed(r);
    if (!t) continue;
    const double i = r.floor->flops / r.floor->min_bytes, best = r.floor->flops / *t * 1e-6;
    if (!r.summary.best_us) {
      plot.point(i, best, "pred", r.summary.workload_key + ": the model's pick, predicted " + us(*t), 3.5);
      continue;
    }
    if (r.summary.vendor_us) {
      const double v = r.floor->flops / *r.summary.vendor_us * 1e-6;
      plot.line({{i, best}, {i, v}}, "pair");
      plot.point(i, v, "vendor",
                 r.summary.workload_key + ": " + std::string(baseline_name(r.workload.kind)) + " " + us(*r.summary.vendor_us),
                 3.5);
    }
    plot.point(i, best, "best", r.summary.workload_key + ": best " + us(*r.summary.best_us), 3.5);
  }
  plot.legend("best", "Tessera's best");
  if (predicted) plot.legend("pred", "the model's pick, predicted (not measured)");
  plot.legend("vendor", "baseline (vendor library, or a copy)");
  plot.legend("roof", "roofs: DRAM bandwidth, then each peak");
  ++charts;
  return s + plot.str() + "<p class=\"meta\">Hover a point for its workload. Roofs: " +
         [&] {
           std::string t;
           for (const auto& [k, p] : roofs) t += std::string(t.empty() ? "" : ", ") + std::string(instr_kind_name(k)) + " " + number(p, 4) + " TFLOP/s";
           return t;
         }() +
         "; DRAM " + number(hw->dram_bandwidth_gbps, 4) + " GB/s (the spec's figures).</p>\n";
}

// Best so far against the measurement count, every correct measurement, and the vendor line.
std::string curves_section(const std::vector<Row>& rows, int64_t& charts) {
  std::string s = "<h2 id=\"curves\">Tuning curves</h2>\n";
  int64_t with_ok = 0, drawn = 0;
  for (const Row& r : rows) with_ok += r.summary.ok > 0, drawn += r.drawn;
  if (drawn == 0) return s + "<p>No correct measurement yet.</p>\n";
  if (drawn < with_ok)
    s += "<p class=\"meta\">The " + std::to_string(drawn) + " workloads with the most records of " +
         std::to_string(with_ok) + ".</p>\n";
  s += "<div class=\"grid-charts\">\n";
  for (const Row& r : rows) {
    if (!r.drawn) continue;
    std::vector<double> ys;
    for (const auto& p : r.points) ys.push_back(std::get<1>(p));
    if (r.summary.vendor_us) ys.push_back(*r.summary.vendor_us);
    svg::Axis x = svg::fit({1.0, static_cast<double>(r.measurements)}, false, "measurements", 0.02);
    svg::Plot plot("curve-" + std::to_string(charts), r.summary.workload_key, 440, 240, x,
                   svg::fit(ys, true, "time [us]", 0.06));
    for (const auto& [i, median, schedule] : r.points) plot.point(i, median, "meas", schedule + ": " + us(median), 1.8);
    if (r.summary.best_us) plot.line(r.best, "best", true, "best so far: " + us(*r.summary.best_us));
    if (r.summary.vendor_us)
      plot.hline(*r.summary.vendor_us, "vendor", std::string(baseline_name(r.workload.kind)) + " " + us(*r.summary.vendor_us));
    ++charts;
    s += plot.str();
  }
  return s + "</div>\n<p class=\"meta\">Blue: the best correct time so far; grey: each correct measurement; red "
             "dashes: the baseline's time stored with the best record (the vendor library, or a copy of the "
             "workload's compulsory traffic).</p>\n";
}

// The predictions stored with the records (the model's estimate when each was chosen).
std::string model_section(const Scan& scan, int64_t& charts) {
  std::string s = "<h2 id=\"model\">Cost model</h2>\n";
  if (scan.scatter.empty()) return s + "<p>No correct record carries a prediction.</p>\n";
  const costmodel::EvalReport eval = costmodel::combine(scan.groups);
  std::vector<double> xs, ys;
  for (const auto& [m, p, label] : scan.scatter) xs.push_back(m), ys.push_back(p);
  svg::Axis x = svg::fit(xs, true, "measured [us]", 0.05), y = svg::fit(ys, true, "predicted [us]", 0.05);
  svg::Plot plot("model", "Predicted against measured (" + std::to_string(scan.predicted) + " records)", 560, 460, x, y);
  const double lo = std::max(x.lo, y.lo), hi = std::min(x.hi, y.hi);
  if (lo < hi) plot.line({{lo, lo}, {hi, hi}}, "ideal", false, "predicted = measured");
  for (const auto& [m, p, label] : scan.scatter) plot.point(m, p, "pred", label, 1.8);
  ++charts;
  s += "<p>Pairwise accuracy <b>" + number(eval.pairwise, 3) + "</b> (the share of pairs of records of one workload "
       "that the predictions order as the measurements do; 0.5 is chance), Spearman " + number(eval.spearman, 3) +
       ", over " + std::to_string(eval.groups.size()) + " workloads and " + std::to_string(eval.records) +
       " records with two or more correct records; top-1 " + number(eval.top1, 3) + ", top-5 " + number(eval.top5, 3) +
       " (best time over that of the model's first pick, of its best of five).</p>\n" + plot.str() +
       (scan.scatter.size() < static_cast<size_t>(scan.predicted)
            ? "<p class=\"meta\">" + std::to_string(scan.scatter.size()) + " of the records are drawn, evenly spaced.</p>\n"
            : "");
  return s;
}

std::string failures_section(const Scan& scan) {
  std::string s = "<h2 id=\"failures\">Failures</h2>\n<p>" + std::to_string(scan.failed) + " of " +
                  std::to_string(scan.total) + " records failed (did not build, run or match the reference)" +
                  (scan.unmeasured ? "; " + std::to_string(scan.unmeasured) + " are the model's predictions, not measured"
                                   : "") +
                  ".</p>\n";
  if (scan.failures.empty()) return s;
  s += "<table>\n<tr><th>status</th><th>records</th><th></th><th>by family</th><th>first error</th></tr>\n";
  for (const auto& [st, families] : scan.failures) {
    int64_t n = 0;
    std::string fam;
    for (const auto& [f, c] : families) n += c, fam += (fam.empty() ? "" : ", ") + escape(f) + " " + std::to_string(c);
    s += "<tr><td>" + escape(st) + "</td><td>" + std::to_string(n) + "</td><td style=\"text-align:left\"><span class=\"bar\" "
         "style=\"width:" + std::to_string(static_cast<int>(std::ceil(200.0 * n / scan.failed))) + "px\"></span></td><td>" +
         fam + "</td><td class=\"text\">" + escape(scan.example.at(st)) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

std::string graphs_section(db::TuningDatabase& db, const Target& target) {
  std::string s = "<h2 id=\"graphs\">Graphs</h2>\n";
  std::string rows;
  for (const db::StoredGraph& g : db.graphs()) {
    if (g.target.fingerprint() != target.fingerprint()) continue;
    size_t rewrites = 0;
    try {
      Json j = Json::parse(g.rewrites_json);
      rewrites = j.is_array() ? j.size() : 0;
    } catch (const std::exception&) {
    }
    const double gain = g.original_cost_us > 0 ? 100 * (1 - g.optimized_cost_us / g.original_cost_us) : 0;
    rows += "<tr><td>" + escape(g.model_key) + "</td><td>" + std::to_string(g.id) + "</td><td>" + us(g.original_cost_us) +
            "</td><td>" + us(g.optimized_cost_us) + "</td><td>" + number(gain, 3) + " %</td><td>" +
            std::to_string(rewrites) + "</td><td>" + utc(g.created_s) + "</td></tr>\n";
  }
  if (rows.empty()) return s + "<p>No graph-search result stored for this target.</p>\n";
  return s + "<table>\n<tr><th>model</th><th>id</th><th>original</th><th>optimised</th><th>gain</th><th>rewrites</th>"
             "<th>stored</th></tr>\n" + rows + "</table>\n<p class=\"meta\">Costs are the oracle's sums of per-operator "
             "times (measured where the database has them); `tessera db graphs --id N -o FILE.onnx` writes a graph.</p>\n";
}

}  // namespace

Report tuning_report(db::TuningDatabase& db, const Target& target, const ReportOptions& options) {
  Report out;
  std::optional<HardwareSpec> hw;
  try {
    hw = find_spec(target.spec_name);
  } catch (const UserError&) {  // a spec this tessera does not have: no roofline
  }
  std::vector<Row> rows;
  int64_t correct = 0;
  for (const db::WorkloadSummary& s : db.summaries(target.fingerprint())) {
    Row r;
    r.workload = Workload::parse(s.workload_key);
    r.summary = s;
    if (hw) r.floor = costmodel::roofline_floor(r.workload, *hw);
    out.records += s.records;
    correct += s.ok;
    rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.summary.workload_key < b.summary.workload_key; });
  {  // the curves drawn: those of the workloads with the most records
    std::vector<Row*> order;
    for (Row& r : rows)
      if (r.summary.ok > 0) order.push_back(&r);
    std::stable_sort(order.begin(), order.end(), [](const Row* a, const Row* b) { return a->summary.records > b->summary.records; });
    for (size_t i = 0; i < order.size() && i < options.max_curves; ++i) order[i]->drawn = true;
  }
  Scan scan;
  const size_t stride = std::max<size_t>(1, (static_cast<size_t>(correct) + options.max_points - 1) / std::max<size_t>(options.max_points, 1));
  for (Row& r : rows) scan_workload(db, target, r, scan, stride);
  out.workloads = static_cast<int64_t>(rows.size());
  std::string body = "<h1>Tessera tuning report</h1>\n<p class=\"meta\">" + escape(target.fingerprint()) + "<br>" +
                     escape(options.source) + ": " + std::to_string(out.workloads) + " workloads, " +
                     std::to_string(out.records) + " records" + (target.is_device() ? "" : " (model only: no GPU measured them)") +
                     ". Made by tessera " + escape(options.tool_version) + " at " + utc(options.generated_s) + ".</p>\n" +
                     "<p><a href=\"#workloads\">workloads</a> · <a href=\"#roofline\">roofline</a> · <a href=\"#curves\">"
                     "tuning curves</a> · <a href=\"#model\">cost model</a> · <a href=\"#failures\">failures</a> · "
                     "<a href=\"#graphs\">graphs</a></p>\n";
  if (rows.empty()) {
    body += "<p>No records of this target.</p>\n";
  } else {
    body += workloads_section(rows) + roofline_section(rows, hw, out.charts) + curves_section(rows, out.charts) +
            model_section(scan, out.charts) + failures_section(scan);
  }
  body += graphs_section(db, target);
  out.html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Tessera tuning report: " +
             escape(target.gpu_name) + "</title>\n" + kStyle + "</head>\n<body>\n" + body + kRenderCheck +
             "</body>\n</html>\n";
  return out;
}

}  // namespace tessera::search
