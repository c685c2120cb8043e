// `tessera workload show|list`, `tessera targets`, `tessera devices`.
#include <iostream>

#include "cli/command.h"
#include "cli/format.h"
#include "core/error.h"
#include "core/hash.h"
#include "costmodel/roofline.h"
#include "measure/devices.h"
#include "search/workload_set.h"

namespace tessera::cli {
namespace {

const char* kTargetHelp =
    "GPU spec to compute the roofline for: a name from `tessera targets` or a spec .json "
    "(default: the GPU present, else h100_sxm)";

// The target to report on: --target, else the GPU present, else the default spec (its note says so).
measure::TargetChoice target_for_report(const ParsedArgs& args) {
  return measure::choose_target(args.value("target"), measure::scan_devices());
}

Json roofline_json(const costmodel::RooflineFloor& r, const HardwareSpec& spec) {
  return Json{{"target", spec.name},
              {"instruction", instr_kind_name(r.instr)},
              {"peak_tflops", *spec.peak(r.instr)},
              {"dram_bandwidth_gbps", spec.dram_bandwidth_gbps},
              {"compute_us", r.compute_us},
              {"memory_us", r.memory_us},
              {"floor_us", r.floor_us},
              {"bound", r.memory_bound() ? "memory" : "compute"}};
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int workload_show(const ParsedArgs& args) {
  Workload w = Workload::parse(args.positional[0]);
  measure::TargetChoice target = target_for_report(args);
  const std::string& note = target.note;
  TensorExpr e = w.expr();
  costmodel::RooflineFloor r = costmodel::roofline_floor(w, target.spec);

  if (args.has("json")) {
    Json axes = Json::array(), tensors = Json::array();
    for (const Axis& a : e.axes)
      axes.push_back({{"name", a.name}, {"extent", a.extent}, {"kind", a.kind == AxisKind::kSpatial ? "spatial" : "reduce"}});
    for (size_t t = 0; t < e.tensors.size(); ++t) {
      const TensorAccess& ta = e.tensors[t];
      Json index = Json::array();
      for (const AffineExpr& ix : ta.index) index.push_back(e.index_to_string(ix));
      tensors.push_back({{"name", ta.name},
                         {"role", ta.role == TensorRole::kInput ? "input" : "output"},
                         {"dtype", dtype_name(ta.dtype)},
                         {"shape", ta.shape},
                         {"index", index},
                         {"footprint_elements", e.footprint_elements(t)}});
    }
    Json out{{"key", w.key()}, {"hash", hex64(w.hash())}, {"workload", w.to_json()},
             {"axes", axes}, {"tensors", tensors}, {"flops", r.flops}, {"min_bytes", r.min_bytes},
             {"roofline", roofline_json(r, target.spec)}};
    if (!note.empty()) out["roofline"]["note"] = note;
    std::cout << out.dump(2) << "\n";
    return 0;
  }

  std::cout << "workload   " << w.key() << "\n"
            << "hash       " << hex64(w.hash()) << "\n"
            << "dtypes     " << dtype_name(w.dtype) << " in, " << dtype_name(w.out_dtype) << " out"
            << (w.allow_tf32 ? ", tf32 allowed" : "") << "\n"
            << "expr       " << e.to_string() << "\n\naxes\n";
  Table axes({"axis", "extent", "kind"});
  for (const Axis& a : e.axes)
    axes.add({a.name, std::to_string(a.extent), a.kind == AxisKind::kSpatial ? "spatial" : "reduce"});
  std::cout << axes.str("  ") << "\ntensors\n";
  Table tensors({"tensor", "role", "dtype", "shape", "index map", "elements read/written"});
  for (size_t t = 0; t < e.tensors.size(); ++t) {
    const TensorAccess& ta = e.tensors[t];
    std::string index;
    for (const AffineExpr& ix : ta.index) index += (index.empty() ? "" : ", ") + e.index_to_string(ix);
    tensors.add({ta.name, ta.role == TensorRole::kInput ? "input" : "output", std::string(dtype_name(ta.dtype)),
                 shape_text(ta.shape), "[" + index + "]", std::to_string(e.footprint_elements(t))});
  }
  std::cout << tensors.str("  ") << "\n"
            << "FLOPs      " << si(r.flops, "FLOP") << "\n"
            << "min bytes  " << si(r.min_bytes, "B") << " (each input read once, each output written once)\n"
            << "intensity  " << fixed(r.flops / r.min_bytes, 1) << " FLOP/B\n\n"
            << "roofline floor on " << target.spec.name << " (" << target.spec.gpu_name
            << (target.from_device ? ", the GPU present" : "") << (note.empty() ? "" : "; " + note) << ")\n"
            << "  compute  " << time_us(r.compute_us) << " at " << fixed(*target.spec.peak(r.instr), 1)
            << " TFLOP/s (" << instr_kind_name(r.instr) << ")\n"
            << "  memory   " << time_us(r.memory_us) << " at " << fixed(target.spec.dram_bandwidth_gbps, 0) << " GB/s\n"
            << "  floor    " << time_us(r.floor_us) << " (" << (r.memory_bound() ? "memory" : "compute")
            << "-bound)\n";
  return 0;
}

int workload_list(const ParsedArgs& args) {
  std::string path = args.value_or("workloads", "configs/workloads/default.json");
  search::WorkloadSet set = search::load_workload_set(path);
  measure::TargetChoice target = target_for_report(args);
  const std::string& note = target.note;
  Json rows = Json::array();
  Table table({"#", "workload", "weight", "FLOPs", "min bytes", "floor", "bound"});
  double total_us = 0;
  for (size_t i = 0; i < set.entries.size(); ++i) {
    const search::WorkloadEntry& entry = set.entries[i];
    costmodel::RooflineFloor r = costmodel::roofline_floor(entry.workload, target.spec);
    total_us += entry.weight * r.floor_us;
    rows.push_back({{"key", entry.workload.key()}, {"label", entry.label}, {"weight", entry.weight},
                    {"flops", r.flops}, {"min_bytes", r.min_bytes}, {"roofline", roofline_json(r, target.spec)}});
    table.add({std::to_string(i + 1), entry.workload.key(), fixed(entry.weight, 0), si(r.flops, "FLOP"),
               si(r.min_bytes, "B"), time_us(r.floor_us), r.memory_bound() ? "memory" : "compute"});
  }
  if (args.has("json")) {
    std::cout << Json{{"set", set.name}, {"target", target.spec.name}, {"workloads", rows},
                      {"weighted_floor_us", total_us}}.dump(2)
              << "\n";
    return 0;
  }
  std::cout << "workload set '" << set.name << "' (" << path << "): " << set.entries.size()
            << " workloads; roofline floors on " << target.spec.name << (note.empty() ? "" : " (" + note + ")")
            << "\n\n"
            << table.str() << "\nweighted sum of floors: " << time_us(total_us) << "\n";
  return 0;
}

int targets(const ParsedArgs& args) {
  if (args.has("json")) {
    Json out = Json::array();
    for (const HardwareSpec& s : builtin_specs()) out.push_back(s.to_json());
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  Table table({"target", "gpu", "arch", "SMs", "clock MHz", "L2 MB", "DRAM GB/s", "f16 TC TFLOP/s", "f32 TFLOP/s"});
  for (const HardwareSpec& s : builtin_specs())
    table.add({s.name, s.gpu_name, s.arch(), std::to_string(s.sm_count), fixed(s.sm_clock_mhz, 0),
               fixed(static_cast<double>(s.l2_bytes) / (1 << 20), 0), fixed(s.dram_bandwidth_gbps, 0),
               fixed(*s.peak(InstrKind::kTensorF16), 1), fixed(*s.peak(InstrKind::kFmaF32), 1)});
  std::cout << table.str() << "\nPeaks are dense (no sparsity); `tessera targets --json` lists every field.\n";
  return 0;
}

int devices(const ParsedArgs& args) {
  measure::DeviceScan scan = measure::scan_devices();
  if (args.has("json")) {
    Json list = Json::array();
    for (const measure::Device& d : scan.devices)
      list.push_back({{"index", d.index},
                      {"target", d.target.to_json()},
                      {"spec", d.spec ? d.spec->to_json() : Json(nullptr)}});
    Json out{{"devices", list}};
    if (scan.devices.empty()) out["reason"] = scan.reason;
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (scan.devices.empty()) {
    std::cout << "no GPU found: " << scan.reason << "\n";
    return 0;
  }
  for (const measure::Device& d : scan.devices) {
    std::cout << "GPU " << d.index << ": " << d.properties.name << " (" << d.target.arch() << ", "
              << d.properties.sm_count << " SMs, " << fixed(d.properties.sm_clock_mhz, 0) << " MHz, "
              << si(static_cast<double>(d.properties.dram_bytes), "B") << ", L2 "
              << si(static_cast<double>(d.properties.l2_bytes), "B") << ")\n"
              << "  fingerprint  " << d.target.fingerprint() << "\n"
              << "  spec         " << (d.spec ? d.spec->name + " (" + d.spec->refined_from + ")" : "none known") << "\n";
  }
  return 0;
}

}  // namespace

void register_core_commands(CommandRegistry& registry) {
  OptionSpec json{"json", "", "print JSON for scripts instead of a table"};
  OptionSpec target{"target", "NAME", kTargetHelp};
  registry.add({"workload show", "Show a workload's axes, index maps, FLOPs, minimum bytes and roofline floor",
                "SPEC [--target NAME] [--json]",
                "SPEC is KIND:PARAMS:DTYPE[:OPTION...], for example\n"
                "  matmul:m=4096,n=4096,k=4096:f16            (ta=1/tb=1; :epilogue=bias+gelu)\n"
                "  batch_matmul:b=384,m=128,n=128,k=64:f16\n"
                "  conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,stride=1,pad=1:f16\n"
                "         (stride/pad/dilation N or HxW, groups=G, layout=nhwc|nchw)\n"
                "  softmax:rows=16384,cols=4096:f16   layernorm:rows=4096,cols=768:f16\n"
                "  reduce:op=sum,rows=65536,cols=1024:f32   (op: sum, max, mean)\n"
                "  elementwise:ops=add+relu,n=1048576:f16\n"
                "Dtypes: f16, bf16, f32. Options: out=DTYPE, tf32=1, epilogue=bias+relu+gelu+residual.",
                {target, json}, 1, 1, workload_show});
  registry.add({"workload list", "List a workload set with FLOPs, minimum bytes and roofline floors",
                "[--workloads FILE] [--target NAME] [--json]", "",
                {{"workloads", "FILE", "workload set JSON (default: configs/workloads/default.json)"}, target, json},
                0, 0, workload_list});
  registry.add({"targets", "List the known GPU specs (configs/gpus/, built in)", "[--json]", "", {json}, 0, 0, targets});
  registry.add({"devices", "List the GPUs found, with their fingerprints, or say why there are none", "[--json]", "",
                {json}, 0, 0, devices});
}

}  // namespace tessera::cli
