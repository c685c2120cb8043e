#include "db/export.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "core/clock.h"
#include "core/error.h"
#include "core/hash.h"
#include "db/export_common.h"

namespace tessera::db {
namespace export_detail {

std::string num(double v, const char* fmt) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Text from records (a family, a GPU name, a path) written into an exported file's comments:
// one line (control characters escaped), and unable to close a C comment.
std::string comment_text(std::string_view text) {
  std::string out = one_line(text, 400);
  for (size_t pos = 0; (pos = out.find("*/", pos)) != std::string::npos;) out.replace(pos, 2, "* /");
  return out;
}

// A C string literal of `text`: quotes and backslashes escaped, anything but printable ASCII
// as an octal escape.
std::string c_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\%03o", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A Python string literal of `text` (JSON's escapes are Python's).
std::string python_string(std::string_view text) { return Json(std::string(text)).dump(); }

// One CSV field (RFC 4180): on one line (control characters escaped), and quoted, quotes
// doubled, when it holds a comma or a quote.
std::string csv_field(std::string_view text) {
  const std::string flat = one_line(text, 1000);
  if (flat.find_first_of(",\"") == std::string::npos) return flat;
  std::string out = "\"";
  for (char c : flat) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

Target choose_target(TuningDatabase& db, const ExportOptions& o) {
  std::vector<Target> targets = db.targets();
  std::string known;
  for (const Target& t : targets) known += (known.empty() ? " " : "; ") + t.fingerprint();
  if (o.target_fingerprint) {
    for (const Target& t : targets)
      if (t.fingerprint() == *o.target_fingerprint) return t;
    throw UserError(db.path() + ": no records for target '" + *o.target_fingerprint + "' (targets:" +
                    (known.empty() ? " none" : known) + ")");
  }
  if (targets.empty()) throw UserError(db.path() + ": no records to export");
  if (targets.size() > 1)
    throw UserError(db.path() + ": holds records of " + std::to_string(targets.size()) +
                    " targets; choose one with --target:" + known);
  return targets.front();
}

// The top-k ok records of every workload (or the chosen one) on `target`.
std::vector<WorkloadBest> best_per_workload(TuningDatabase& db, const Target& target, const ExportOptions& o,
                                            ExportResult& result, int per_workload) {
  std::vector<WorkloadBest> out;
  for (const WorkloadSummary& s : db.summaries(target.fingerprint())) {
    if (o.workload_key && s.workload_key != *o.workload_key) continue;
    if (!s.best_us) {
      result.skipped.push_back(s.workload_key + ": no correct measurement (" + std::to_string(s.records) + " records)");
      continue;
    }
    Workload w = Workload::parse(s.workload_key);
    out.push_back({w, db.best(w, target, std::max(1, per_workload > 0 ? per_workload : o.top_k)).records});
  }
  if (o.workload_key && out.empty() && result.skipped.empty())
    throw UserError(db.path() + ": no records of " + *o.workload_key + " on " + target.fingerprint());
  return out;
}

std::string header_comment(const char* prefix, TuningDatabase& db, const Target& target, const ExportOptions& o) {
  return std::string(prefix) + " Exported by tessera " + comment_text(o.tool_version) + " from " + comment_text(db.path()) +
         ".\n" + prefix + " Target: " + comment_text(target.fingerprint()) + "\n";
}

}  // namespace export_detail

namespace {

using namespace export_detail;

// ---- jsonl ----

ExportResult export_jsonl(TuningDatabase& db, const ExportOptions& o) {
  ExportResult result;
  RecordFilter f;
  f.workload_key = o.workload_key;
  f.target_fingerprint = o.target_fingerprint;
  for (int64_t after = 0;;) {
    f.after_id = after;
    f.limit = 10000;
    std::vector<StoredRecord> batch = db.query(f);
    if (batch.empty()) break;
    after = batch.back().id;
    for (const StoredRecord& s : batch) {
      Json line;
      line["format"] = kRecordFormat;
      Json record = s.record.to_json();
      for (auto& [k, v] : record.items()) line[k] = v;
      result.text += line.dump() + "\n";
      ++result.items;
    }
  }
  return result;
}

// ---- kernel tuner ----

std::vector<int64_t> problem_size(const Workload& w) {
  switch (w.kind) {
    case OpKind::kMatmul: return {w.matmul().m, w.matmul().n, w.matmul().k};
    // Kernel Tuner takes at most three dimensions (x, y, z of the grid it divides): a batch is z,
    // a convolution is its implicit GEMM [N*P*Q pixels, K filters, C/groups*R*S].
    case OpKind::kBatchMatmul: return {w.matmul().m, w.matmul().n, w.matmul().batch};
    case OpKind::kConv2d: {
      const Conv2dShape& c = w.conv2d();
      return {c.n * c.out_h() * c.out_w(), c.k, c.c / c.groups * c.r * c.s};
    }
    case OpKind::kSoftmax:
    case OpKind::kLayernorm: return {w.rows().rows, w.rows().cols};
    case OpKind::kReduce: return {w.reduce().rows, w.reduce().cols};
    case OpKind::kElementwise: return {w.elementwise().n};
  }
  TESSERA_UNREACHABLE("unknown OpKind");
}

// Kernel Tuner writes Python's str(datetime) of a UTC time: "2024-01-01 12:00:00+00:00".
std::string utc_timestamp(int64_t seconds) { return utc_text(seconds) + "+00:00"; }

const char* kernel_tuner_error(Status s) {
  switch (s) {
    case Status::kCompileError: return "CompilationFailedConfig";
    case Status::kInvalid:
    case Status::kLaunchError: return "InvalidConfig";
    default: return "RuntimeFailedConfig";
  }
}

ExportResult export_kernel_tuner(TuningDatabase& db, const ExportOptions& o) {
  if (!o.workload_key)
    throw UserError("the kerneltuner format holds one workload: choose it with --workload (a Kernel Tuner cache "
                    "is per kernel and problem size)");
  ExportResult result;
  Target target = choose_target(db, o);
  Workload w = Workload::parse(*o.workload_key);
  RecordFilter f;
  f.workload_key = w.key();
  f.target_fingerprint = target.fingerprint();
  std::vector<StoredRecord> records = db.query(f);
  if (records.empty()) throw UserError(db.path() + ": no records of " + w.key() + " on " + target.fingerprint());
  // One family per cache: the one holding the fastest correct record (else the first).
  BestResult best = db.best(w, target, 1);
  std::string family = best.records.empty() ? records.front().record.schedule.family
                                            : best.records.front().record.schedule.family;
  std::vector<std::string> keys;
  for (const auto& [name, value] : (best.records.empty() ? records.front() : best.records.front()).record.schedule.knobs)
    keys.push_back(name);
  // Per configuration, its fastest correct measurement, else its latest failure.
  std::map<std::string, const Record*> chosen;
  std::map<std::string, std::set<int64_t>> values;
  for (const StoredRecord& s : records) {
    const Record& r = s.record;
    if (r.schedule.family != family) {
      result.skipped.push_back("record " + std::to_string(s.id) + ": family " + r.schedule.family + " (cache holds " +
                               family + ")");
      continue;
    }
    if (r.measurement.status == Status::kUnmeasured) continue;
    std::string key;
    bool complete = true;
    for (size_t i = 0; i < keys.size() && complete; ++i) {
      auto v = r.schedule.find(keys[i]);
      complete = v.has_value();
      if (complete) key += (i ? "," : "") + std::to_string(*v);
    }
    if (!complete || r.schedule.knobs.size() != keys.size()) {  // an older kernel's knobs
      result.skipped.push_back("record " + std::to_string(s.id) + ": knobs " + r.schedule.key() + " are not the cache's");
      continue;
    }
    for (const std::string& k : keys) values[k].insert(r.schedule.get(k));
    auto [it, fresh] = chosen.emplace(key, &r);
    const Measurement& old = it->second->measurement;
    bool better = r.measurement.status == Status::kOk &&
                  (old.status != Status::kOk || r.measurement.median_us < old.median_us);
    if (!fresh && (better || (old.status != Status::kOk && r.measurement.status != Status::kOk))) it->second = &r;
  }
  Json tune_params = Json::object();
  for (const std::string& k : keys) tune_params[k] = Json(std::vector<int64_t>(values[k].begin(), values[k].end()));
  Json cache = Json::object();
  for (const auto& [key, r] : chosen) {
    Json e = Json::object();
    for (const std::string& k : keys) e[k] = r->schedule.get(k);
    const Measurement& m = r->measurement;
    if (m.status == Status::kOk) {
      Json times = Json::array();
      double total_ms = 0;
      for (double t : m.times_us) {
        times.push_back(t / 1000.0);
        total_ms += t / 1000.0;
      }
      e["time"] = total_ms / static_cast<double>(std::max<size_t>(m.times_us.size(), 1));  // Kernel Tuner's: the mean
      e["times"] = times;
      e["benchmark_time"] = total_ms;
    } else {
      e["time"] = kernel_tuner_error(m.status);
      e["benchmark_time"] = 0;
    }
    // Tessera does not record these overheads; Kernel Tuner's schema requires the fields.
    e["compile_time"] = 0;
    e["verification_time"] = 0;
    e["strategy_time"] = 0;
    e["framework_time"] = 0;
    e["timestamp"] = utc_timestamp(r->timestamp_s);
    cache[key] = e;
    ++result.items;
  }
  // Kernel Tuner's simulation mode (1.4.0, runners/simulation.py) needs every configuration of
  // the product of tune_params in the cache, or outside the restrictions the caller passes; the
  // points of that product Tessera did not measure are entered as InvalidConfig, which is what
  // Kernel Tuner makes of a configuration its restrictions exclude.
  int64_t points = 1;
  for (const std::string& k : keys) points = std::min<int64_t>(points * static_cast<int64_t>(values[k].size()), 1 << 20);
  int64_t unmeasured = 0;
  if (points < (1 << 20)) {
    std::vector<std::vector<int64_t>> axes;
    for (const std::string& k : keys) axes.emplace_back(values[k].begin(), values[k].end());
    std::vector<size_t> at(keys.size(), 0);
    for (int64_t p = 0; p < points; ++p) {
      std::string key;
      Json e = Json::object();
      for (size_t i = 0; i < keys.size(); ++i) {
        key += (i ? "," : "") + std::to_string(axes[i][at[i]]);
        e[keys[i]] = axes[i][at[i]];
      }
      if (!cache.contains(key)) {
        e["time"] = "InvalidConfig";
        for (const char* t : {"compile_time", "verification_time", "benchmark_time", "strategy_time", "framework_time"}) e[t] = 0;
        e["timestamp"] = utc_timestamp(0);
        cache[key] = e;
        ++unmeasured;
      }
      for (size_t i = keys.size(); i-- > 0;) {
        if (++at[i] < axes[i].size()) break;
        at[i] = 0;
      }
    }
  } else {
    result.skipped.push_back("the product of tune_params has over 2^20 configurations: unmeasured ones are not "
                             "entered; pass Kernel Tuner the measured ones as restrictions (or use tune_cache)");
  }
  Json out;
  out["schema_version"] = "1.0.0";
  out["device_name"] = target.gpu_name;
  out["kernel_name"] = "tessera_" + family;
  out["problem_size"] = problem_size(w);
  out["tune_params_keys"] = keys;
  out["tune_params"] = tune_params;
  out["objective"] = "time";
  out["cache"] = cache;
  out["tessera_note"] = std::to_string(result.items) + " configurations measured by Tessera; " +
                        std::to_string(unmeasured) +
                        " configurations of tune_params' product it did not measure are entered as InvalidConfig "
                        "(timestamp 1970-01-01), as Kernel Tuner's simulation mode requires every configuration";
  result.text = out.dump(1) + "\n";
  return result;
}

// ---- CUTLASS-profiler-style CSV ----

std::string disposition(Status s) {
  switch (s) {
    case Status::kOk: return "passed";
    case Status::kIncorrect: return "incorrect";
    case Status::kUnmeasured: return "not_run";
    default: return "failed";
  }
}

std::string cutlass_status(Status s) {
  switch (s) {
    case Status::kOk:
    case Status::kIncorrect:
    case Status::kUnmeasured: return "success";
    case Status::kInvalid: return "not_supported";
    default: return "internal";
  }
}

std::string operation_name(const Schedule& s) {
  std::string name = "tessera_" + s.family;
  for (const auto& [k, v] : s.knobs) name += "_" + k + std::to_string(v);
  return csv_field(name);
}

// The CUTLASS profiler's GEMM columns (4.x), in its order.
constexpr const char* kCutlassGemmHeader =
    "Problem,Provider,OperationKind,Operation,Disposition,Status,gemm_kind,m,n,k,A,B,C,D,alpha,beta,split_k_mode,"
    "split_k_slices,batch_count,raster_order,runtime_input_datatype_a,runtime_input_datatype_b,use_pdl,"
    "enable_sm90_mixed_dtype_shuffle_test,swizzle_size,op_class,accum,cta_m,cta_n,cta_k,cluster_m,cluster_n,cluster_k,"
    "cluster_m_fallback,cluster_n_fallback,cluster_k_fallback,stages,warps_m,warps_n,warps_k,inst_m,inst_n,inst_k,"
    "min_cc,max_cc,Bytes,Flops,Flops/Byte,Runtime,GB/s,GFLOPs";

// The profiler's conv2d columns (conv2d_operation_profiler.cu's arguments, then the tile
// description of 4.x and the counts).
constexpr const char* kCutlassConvHeader =
    "Problem,Provider,OperationKind,Operation,Disposition,Status,conv_kind,n,h,w,c,k,r,s,p,q,pad_h,pad_w,stride_h,"
    "stride_w,dilation_h,dilation_w,Activation,Filter,Output,conv_mode,iterator_algorithm,alpha,beta,split_k_mode,"
    "split_k_slices,eq_gemm_provider,op_class,accum,cta_m,cta_n,cta_k,cluster_m,cluster_n,cluster_k,"
    "cluster_m_fallback,cluster_n_fallback,cluster_k_fallback,stages,warps_m,warps_n,warps_k,inst_m,inst_n,inst_k,"
    "min_cc,max_cc,Bytes,Flops,Flops/Byte,Runtime,GB/s,GFLOPs";

std::string optional_knob(const Schedule& s, std::string_view name) {
  auto v = s.find(name);
  return v ? std::to_string(*v) : "";
}

// Tessera's residual is C read with beta 1 in the profiler's terms.
bool has_residual(const Workload& w) {
  return std::find(w.epilogue.begin(), w.epilogue.end(), EpilogueOp::kResidual) != w.epilogue.end();
}

// One GEMM row as the CUTLASS profiler (4.x, tools/profiler: gemm_operation_profiler.cu and
// operation_profiler.cu) writes it after the six leading columns: its 39 argument columns,
// then Bytes and Flops counted as it counts them (A, B and C written, C read where beta is not
// 0; 2 * (m*n*k + m*n) per batch, whatever the epilogue), Flops/Byte, Runtime [ms], GB/s
// (GiB/s), GFLOPs. Tessera's residual is C with beta 1; split-K reduced by a second kernel is
// the profiler's parallel mode; Tessera's group_m rasterisation walks M first (along_m) in
// groups of group_m (swizzle_size).
// The profiler's tile description columns (operation_profiler.cu): op_class ... max_cc.
std::string cutlass_tile_columns(const Record& r, const ExportOptions& o) {
  const Schedule& sc = r.schedule;
  const bool wgmma = sc.family == "gemm_wgmma" || sc.family == "conv_wgmma";
  const bool tensor = wgmma || sc.family == "gemm_tc" || sc.family == "gemm_tf32" || sc.family == "gemm_skinny" ||
                      sc.family == "conv_tc";
  // Warps that compute the product, as m x n (x k = 1).
  std::optional<int64_t> total = o.mma_warps ? o.mma_warps(r) : std::nullopt;
  std::optional<int64_t> wm = sc.find("warps_m"), wn = sc.find("warps_n");
  if (wgmma && total) wm = *total, wn = 1;  // a warpgroup's 4 warps per 64 rows
  if (wm && !wn && total && *wm > 0 && *total % *wm == 0) wn = *total / *wm;
  auto opt = [](std::optional<int64_t> v) { return v ? std::to_string(*v) : std::string(); };
  std::string inst = wgmma ? "64," + optional_knob(sc, knob::kBlockN) + ",16"
                     : !tensor ? "1,1,1"
                     : r.workload.dtype == DType::kF32 ? "16,8,8" : "16,8,16";
  const std::string cc = std::to_string(r.target.cc_major * 10 + r.target.cc_minor);
  return std::string(tensor ? "tensorop," : "simt,") + "f32," + optional_knob(sc, knob::kBlockM) + "," +
         optional_knob(sc, knob::kBlockN) + "," + optional_knob(sc, knob::kBlockK) + "," +
         std::to_string(sc.find("cluster_m").value_or(1)) + ",1,1,0,0,0," + optional_knob(sc, knob::kStages) + "," +
         opt(wm) + "," + opt(wn) + ",1," + inst + "," + cc + "," + cc + ",";
}

// Bytes and Flops of the equivalent GEMM as the profiler counts them, then Flops/Byte, Runtime
// [ms], GB/s (GiB/s), GFLOPs.
std::string cutlass_counts(double m, double n, double k, double batch, double in_bytes, double out_bytes, bool beta,
                           double median_us) {
  const double bytes = (in_bytes * (m * k + k * n) + out_bytes * m * n * (beta ? 2 : 1)) * batch;
  const double flops = 2 * (m * n * k + m * n) * batch;
  const double seconds = median_us * 1e-6;
  return num(bytes, "%.0f") + "," + num(flops, "%.0f") + "," + num(flops / bytes, "%.4g") + "," +
         num(median_us / 1000.0, "%.6g") + "," + num(bytes / seconds / (1024.0 * 1024 * 1024), "%.6g") + "," +
         num(flops / seconds / 1e9, "%.6g");
}

std::string cutlass_gemm_columns(const Record& r, const ExportOptions& o) {
  const Workload& w = r.workload;
  const MatmulShape& m = w.matmul();
  const Schedule& sc = r.schedule;
  const std::string in(dtype_name(w.dtype)), out(dtype_name(w.out_dtype));
  const bool beta = has_residual(w);
  const int64_t split = sc.find(knob::kSplitK).value_or(1), group = sc.find(knob::kGroupM).value_or(1);
  std::string row = "universal," + std::to_string(m.m) + "," + std::to_string(m.n) + "," + std::to_string(m.k) + "," +
                    in + (m.trans_a ? ":column," : ":row,") + in + (m.trans_b ? ":column," : ":row,") + out + ":row," +
                    out + ":row," + number_text(m.alpha) + "," + (beta ? "1," : "0,") + (split > 1 ? "parallel," : "serial,") +
                    std::to_string(split) + "," + std::to_string(m.batch) + "," + (group > 1 ? "along_m," : "heuristic,") +
                    "invalid,invalid,false,false," + std::to_string(group) + "," + cutlass_tile_columns(r, o);
  return row + cutlass_counts(static_cast<double>(m.m), static_cast<double>(m.n), static_cast<double>(m.k),
                             static_cast<double>(m.batch), static_cast<double>(dtype_bytes(w.dtype)),
                             static_cast<double>(dtype_bytes(w.out_dtype)), beta, r.measurement.median_us);
}

ExportResult export_cutlass(TuningDatabase& db, const ExportOptions& o, bool conv) {
  ExportResult result;
  Target target = choose_target(db, o);
  std::string rows;
  int problem = 0;
  for (const WorkloadBest& wb : best_per_workload(db, target, o, result)) {
    const Workload& w = wb.workload;
    bool gemm = w.kind == OpKind::kMatmul || w.kind == OpKind::kBatchMatmul;
    if (conv ? w.kind != OpKind::kConv2d : !gemm) continue;
    for (const StoredRecord& s : wb.records) {
      const Record& r = s.record;
      const Schedule& sc = r.schedule;
      std::string row = std::to_string(problem) + ",tessera," + (conv ? "conv2d," : "gemm,") + operation_name(sc) +
                        "," + disposition(r.measurement.status) + "," + cutlass_status(r.measurement.status) + ",";
      if (!conv) {
        rows += row + cutlass_gemm_columns(r, o) + "\n";
        ++result.items;
        continue;
      }
      const Conv2dShape& c = w.conv2d();
      if (c.groups != 1) {  // the profiler's conv2d has no groups
        result.skipped.push_back(w.key() + ": the CUTLASS profiler's conv2d has no groups (" + std::to_string(c.groups) + ")");
        continue;
      }
      const std::string in(dtype_name(w.dtype)), out(dtype_name(w.out_dtype));
      const std::string layout = c.layout == Layout::kNHWC ? "nhwc" : "nchw";
      const bool beta = has_residual(w);
      const int64_t split = sc.find(knob::kSplitK).value_or(1);
      row += "fprop,";
      for (int64_t v : {c.n, c.h, c.w, c.c, c.k, c.r, c.s, c.out_h(), c.out_w(), c.pad_h, c.pad_w, c.stride_h, c.stride_w,
                        c.dilation_h, c.dilation_w})
        row += std::to_string(v) + ",";
      row += in + ":" + layout + "," + in + ":" + layout + "," + out + ":" + layout + ",cross,none,1," + (beta ? "1," : "0,") +
             (split > 1 ? "parallel," : "serial,") + std::to_string(split) + ",none," + cutlass_tile_columns(r, o) +
             cutlass_counts(static_cast<double>(c.n * c.out_h() * c.out_w()), static_cast<double>(c.k),
                            static_cast<double>(c.c * c.r * c.s), 1, static_cast<double>(dtype_bytes(w.dtype)),
                            static_cast<double>(dtype_bytes(w.out_dtype)), beta, r.measurement.median_us) +
             "\n";
      rows += row;
      ++result.items;
    }
    ++problem;
  }
  if (conv) {
    result.text = std::string(kCutlassConvHeader) + "\n" + rows;
  } else {
    result.text = std::string(kCutlassGemmHeader) + "\n" + rows;
  }
  return result;
}

// ---- C header ----

std::string c_identifier(std::string_view text) {
  std::string out;
  for (char c : text) {
    bool alnum = std::isalnum(static_cast<unsigned char>(c));
    if (alnum) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    else if (!out.empty() && out.back() != '_') out += '_';
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

ExportResult export_c_header(TuningDatabase& db, const ExportOptions& o) {
  ExportResult result;
  Target target = choose_target(db, o);
  std::string body;
  std::set<std::string> used;
  ExportOptions one = o;
  one.top_k = 1;
  for (const WorkloadBest& wb : best_per_workload(db, target, one, result)) {
    const Record& r = wb.records.front().record;
    std::string id = "TESSERA_" + c_identifier(wb.workload.key());
    if (!used.insert(id).second) id += "_" + hex64(wb.workload.hash()).substr(0, 8);
    body += "\n/* " + comment_text(wb.workload.key()) + ": " + num(r.measurement.median_us, "%.2f") + " us" +
            (r.measurement.vendor_us ? " (" + std::string(baseline_name(r.workload.kind)) + " " +
                                           num(*r.measurement.vendor_us, "%.2f") + " us)"
                                     : "") +
            " */\n";
    body += "#define " + id + "_FAMILY " + c_string(r.schedule.family) + "\n";
    for (const auto& [k, v] : r.schedule.knobs) body += "#define " + id + "_" + c_identifier(k) + " " + std::to_string(v) + "\n";
    body += "#define " + id + "_TIME_US " + num(r.measurement.median_us, "%.4f") + "\n";
    ++result.items;
  }
  result.text = "/* Exported by tessera " + comment_text(o.tool_version) + " from " + comment_text(db.path()) +
                "; do not edit.\n   Target: " + comment_text(target.fingerprint()) +
                "\n   For each workload, the fastest correct schedule: its kernel family, knobs and median time. */\n"
                "#ifndef TESSERA_SCHEDULES_H_\n#define TESSERA_SCHEDULES_H_\n" +
                body + "\n#endif /* TESSERA_SCHEDULES_H_ */\n";
  return result;
}

// ---- imports ----

Measurement failed(Status s, std::string error) {
  Measurement m;
  m.status = s;
  m.error = std::move(error);
  return m;
}

int64_t parse_utc(const std::string& text, const std::string& what) {
  std::tm tm{};
  if (text.size() < 19 || !strptime(text.substr(0, 19).c_str(), "%Y-%m-%d %H:%M:%S", &tm)) {
    std::tm alt{};
    if (text.size() < 19 || !strptime(text.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &alt))
      throw UserError(what + ": timestamp '" + text + "' is not YYYY-MM-DD HH:MM:SS");
    tm = alt;
  }
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

ExportFormat parse_export_format(std::string_view name) {
  if (name == "jsonl") return ExportFormat::kJsonLines;
  if (name == "triton") return ExportFormat::kTriton;
  if (name == "kerneltuner") return ExportFormat::kKernelTuner;
  if (name == "cutlass") return ExportFormat::kCutlassGemm;
  if (name == "cutlass-conv2d") return ExportFormat::kCutlassConv2d;
  if (name == "header") return ExportFormat::kCHeader;
  throw UserError("unknown export format '" + std::string(name) +
                  "' (valid: jsonl, triton, kerneltuner, cutlass, cutlass-conv2d, header)");
}

ExportResult export_database(TuningDatabase& db, ExportFormat format, const ExportOptions& options) {
  switch (format) {
    case ExportFormat::kJsonLines: return export_jsonl(db, options);
    case ExportFormat::kTriton: return export_triton(db, options);
    case ExportFormat::kKernelTuner: return export_kernel_tuner(db, options);
    case ExportFormat::kCutlassGemm: return export_cutlass(db, options, false);
    case ExportFormat::kCutlassConv2d: return export_cutlass(db, options, true);
    case ExportFormat::kCHeader: return export_c_header(db, options);
  }
  TESSERA_UNREACHABLE("unknown ExportFormat");
}

std::vector<Record> import_jsonl(std::string_view text, std::string_view what, const RecordCheck& check) {
  std::vector<Record> out;
  size_t start = 0;
  for (int line = 1; start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    std::string where = std::string(what) + ":" + std::to_string(line);
    Json j = parse_json(row, where);
    if (!j.is_object()) throw UserError(where + ": expected a JSON object (a Tessera record)");
    if (j.contains("format") && j["format"] != kRecordFormat)
      throw UserError(where + ": record format " + j["format"].dump() + " is not " + std::string(kRecordFormat));
    try {
      out.push_back(Record::from_json(j, where));
      if (check) check(out.back(), where);
    } catch (const UserError& e) {
      std::string msg = e.what();
      throw UserError(msg.rfind(where, 0) == 0 ? msg : where + ": " + msg);
    }
  }
  return out;
}

std::vector<Record> import_kernel_tuner(std::string_view text, const KernelTunerImport& info, std::string_view what,
                                        const RecordCheck& check) {
  std::string where(what);
  // Kernel Tuner appends entries while it runs and closes the braces at the end; a cache
  // left open ends in "," with the "}\n}" missing.
  std::string body(text);
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  if (!body.empty() && body.back() == ',') body.pop_back(), body += "}\n}";
  Json j = parse_json(body, where);
  if (!j.is_object()) throw UserError(where + ": a Kernel Tuner cache is a JSON object");
  for (const char* key : {"device_name", "tune_params_keys", "cache"})
    if (!j.contains(key)) throw UserError(where + ": missing field \"" + std::string(key) + "\" (not a Kernel Tuner cache?)");
  if (!j["tune_params_keys"].is_array() || !j["cache"].is_object())
    throw UserError(where + ": \"tune_params_keys\" must be an array and \"cache\" an object");
  std::vector<std::string> keys;
  for (const Json& k : j["tune_params_keys"]) {
    if (!k.is_string()) throw UserError(where + ": \"tune_params_keys\" must hold strings");
    keys.push_back(k.get<std::string>());
  }
  if (!j["device_name"].is_string()) throw UserError(where + ": \"device_name\" must be a string");
  Target target = info.target;
  target.gpu_name = j["device_name"].get<std::string>();
  std::vector<Record> out;
  for (const auto& [ckey, e] : j["cache"].items()) {
    std::string entry = where + ": cache entry \"" + ckey + "\"";
    if (!e.is_object()) throw UserError(entry + ": expected an object");
    Record r;
    r.workload = info.workload;
    r.target = target;
    r.schedule.family = info.family;
    for (const std::string& k : keys) {
      if (!e.contains(k)) throw UserError(entry + ": missing parameter \"" + k + "\"");
      const Json& v = e[k];
      if (!v.is_number_integer() && !(v.is_number_float() && std::nearbyint(v.get<double>()) == v.get<double>()))
        throw UserError(entry + ": parameter \"" + k + "\" = " + v.dump() + " is not an integer (Tessera knobs are)");
      r.schedule.knobs.emplace_back(k, static_cast<int64_t>(v.get<double>()));
    }
    if (!e.contains("time")) throw UserError(entry + ": missing \"time\"");
    const Json& time = e["time"];
    // A configuration Tessera's export entered without measuring it (InvalidConfig at the epoch).
    if (time == "InvalidConfig" && e.value("timestamp", Json()) == utc_timestamp(0)) continue;
    if (time.is_string()) {
      std::string err = time.get<std::string>();
      if (err == "CompilationFailedConfig") r.measurement = failed(Status::kCompileError, err);
      else if (err == "InvalidConfig") r.measurement = failed(Status::kInvalid, err);
      else if (err == "RuntimeFailedConfig") r.measurement = failed(Status::kCrashed, err);
      else throw UserError(entry + ": unknown error value \"" + err + "\" in \"time\"");
    } else if (time.is_number() && time.get<double>() > 0 && std::isfinite(time.get<double>())) {
      std::vector<double> samples;
      if (e.contains("times")) {
        if (!e["times"].is_array()) throw UserError(entry + ": \"times\" must be an array");
        for (const Json& t : e["times"]) {
          if (!t.is_number() || !(t.get<double>() > 0)) throw UserError(entry + ": \"times\" must hold positive numbers");
          samples.push_back(t.get<double>() * 1000.0);
        }
      }
      const bool only_time = samples.empty();
      if (only_time) samples.push_back(time.get<double>() * 1000.0);
      r.measurement.status = Status::kOk;
      r.measurement.set_times(samples);  // the median of "times" where given (Kernel Tuner's "time" is their mean)
      if (only_time) r.measurement.median_us = time.get<double>() * 1000.0;
    } else {
      throw UserError(entry + ": \"time\" must be a positive number of milliseconds or an error string");
    }
    r.timestamp_s = e.contains("timestamp") && e["timestamp"].is_string()
                        ? parse_utc(e["timestamp"].get<std::string>(), entry)
                        : 0;
    r.tool_version = "kernel_tuner import";
    r.validate(entry);
    if (check) check(r, entry);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tessera::db
