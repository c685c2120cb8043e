#include "core/hardware.h"

#include <algorithm>

#include "core/embedded.h"
#include "core/error.h"

namespace tessera {
namespace {

constexpr InstrKind kInstrKinds[] = {InstrKind::kTensorF16, InstrKind::kTensorTF32,
                                     InstrKind::kTensorF8, InstrKind::kFmaF32, InstrKind::kFmaF64};

int json_int32(const Json& j, std::string_view key, std::string_view what) {
  int64_t v = json_int(j, key, what);
  if (v <= 0 || v > (int64_t{1} << 30))
    throw UserError(std::string(what) + ": field \"" + std::string(key) + "\" must be positive");
  return static_cast<int>(v);
}

int64_t json_positive(const Json& j, std::string_view key, std::string_view what) {
  int64_t v = json_int(j, key, what);
  if (v <= 0) throw UserError(std::string(what) + ": field \"" + std::string(key) + "\" must be positive");
  return v;
}

double json_positive_number(const Json& j, std::string_view key, std::string_view what) {
  double v = json_number(j, key, what);
  if (!(v > 0)) throw UserError(std::string(what) + ": field \"" + std::string(key) + "\" must be positive");
  return v;
}

std::string arch_name(int major, int minor) { return "sm_" + std::to_string(major) + std::to_string(minor); }

std::vector<HardwareSpec> load_builtin_specs() {
  std::vector<HardwareSpec> specs;
  for (const EmbeddedFile& f : embedded_gpu_specs()) {
    std::string what = "configs/gpus/" + std::string(f.name);
    HardwareSpec spec = HardwareSpec::from_json(parse_json(f.text, what), what);
    std::string stem(f.name.substr(0, f.name.rfind('.')));
    TESSERA_CHECK(spec.name == stem, what + ": \"name\" must equal the file name");
    specs.push_back(std::move(spec));
  }
  return specs;
}

}  // namespace

std::string_view instr_kind_name(InstrKind k) {
  switch (k) {
    case InstrKind::kTensorF16: return "tensor_f16";
    case InstrKind::kTensorTF32: return "tensor_tf32";
    case InstrKind::kTensorF8: return "tensor_f8";
    case InstrKind::kFmaF32: return "fma_f32";
    case InstrKind::kFmaF64: return "fma_f64";
  }
  TESSERA_UNREACHABLE("unknown InstrKind");
}

std::string HardwareSpec::arch() const { return arch_name(cc_major, cc_minor); }

std::optional<double> HardwareSpec::peak(InstrKind k) const {
  auto it = peak_tflops.find(k);
  if (it == peak_tflops.end()) return std::nullopt;
  return it->second;
}

Json AsyncMmaTerms::to_json() const {
  Json j{{"efficiency", efficiency},           {"overlap", overlap},
         {"store_cycles", store_cycles},       {"op_cycles", op_cycles},
         {"tma_store_share", tma_store_share}, {"turn_hidden", turn_hidden},
         {"multicast_saving", multicast_saving}, {"cluster_cost", cluster_cost},
         {"load_latency_us", load_latency_us}};
  if (!fitted_on.empty()) j["fitted_on"] = fitted_on;
  return j;
}

AsyncMmaTerms AsyncMmaTerms::from_json(const Json& j, std::string_view what) {
  const std::string where = std::string(what) + " (async_mma_terms)";
  if (!j.is_object()) throw UserError(where + ": must be a JSON object");
  AsyncMmaTerms t;
  // Each term with the range it must lie in.
  struct Field {
    const char* key;
    double* value;
    double lo, hi;
  };
  const Field fields[] = {{"efficiency", &t.efficiency, 0.01, 1},        {"overlap", &t.overlap, 0, 1},
                          {"store_cycles", &t.store_cycles, 0, 1e3},     {"op_cycles", &t.op_cycles, 0, 1e3},
                          {"tma_store_share", &t.tma_store_share, 0, 10}, {"turn_hidden", &t.turn_hidden, 0, 1},
                          {"multicast_saving", &t.multicast_saving, 0, 1}, {"cluster_cost", &t.cluster_cost, 0, 1},
                          {"load_latency_us", &t.load_latency_us, 0, 100}};
  for (const auto& [key, value] : j.items()) {
    if (key == "fitted_on") {
      t.fitted_on = json_string(j, key, where);
      continue;
    }
    auto f = std::find_if(std::begin(fields), std::end(fields), [&](const Field& field) { return key == field.key; });
    if (f == std::end(fields))
      throw UserError(where + ": unknown field \"" + key +
                      "\" (valid: efficiency, overlap, store_cycles, op_cycles, tma_store_share, turn_hidden, "
                      "multicast_saving, cluster_cost, load_latency_us, fitted_on)");
    double v = json_number(j, key, where);
    if (!(v >= f->lo && v <= f->hi))
      throw UserError(where + ": \"" + key + "\" must lie in [" + std::to_string(f->lo) + ", " + std::to_string(f->hi) +
                      "] (got " + std::to_string(v) + ")");
    *f->value = v;
  }
  return t;
}

HardwareSpec HardwareSpec::from_json(const Json& j, std::string_view what) {
  if (!j.is_object()) throw UserError(std::string(what) + ": a GPU spec must be a JSON object");
  HardwareSpec s;
  s.name = json_string(j, "name", what);
  s.gpu_name = json_string(j, "gpu_name", what);
  if (j.contains("device_names")) {
    if (!j["device_names"].is_array())
      throw UserError(std::string(what) + ": field \"device_names\" must be an array of strings");
    for (const Json& n : j["device_names"]) {
      if (!n.is_string())
        throw UserError(std::string(what) + ": field \"device_names\" must be an array of strings");
      s.device_names.push_back(n.get<std::string>());
    }
  }
  std::string cc = json_string(j, "compute_capability", what);
  // One digit, a dot, one or two digits (the minor numbers CUDA uses); longer ones are refused
  // before any conversion could overflow.
  if (cc.size() < 3 || cc.size() > 4 || cc[1] != '.' || !isdigit(static_cast<unsigned char>(cc[0])) ||
      !std::all_of(cc.begin() + 2, cc.end(), [](char c) { return isdigit(static_cast<unsigned char>(c)); }))
    throw UserError(std::string(what) + ": field \"compute_capability\" must look like \"9.0\" (got \"" +
                    one_line(cc, 40) + "\")");
  s.cc_major = cc[0] - '0';
  s.cc_minor = cc[2] - '0';
  if (cc.size() == 4) s.cc_minor = s.cc_minor * 10 + (cc[3] - '0');
  s.sm_count = json_int32(j, "sm_count", what);
  s.sm_clock_mhz = json_positive_number(j, "sm_clock_mhz", what);
  s.dram_bandwidth_gbps = json_positive_number(j, "dram_bandwidth_gbps", what);
  s.dram_bytes = json_positive(j, "dram_bytes", what);
  s.l2_bytes = json_positive(j, "l2_bytes", what);
  s.smem_per_sm_bytes = json_positive(j, "smem_per_sm_bytes", what);
  s.smem_per_block_bytes = json_positive(j, "smem_per_block_bytes", what);
  s.registers_per_sm = json_int32(j, "registers_per_sm", what);
  s.registers_per_block = json_int32(j, "registers_per_block", what);
  s.max_registers_per_thread = json_int32(j, "max_registers_per_thread", what);
  s.max_threads_per_sm = json_int32(j, "max_threads_per_sm", what);
  s.max_threads_per_block = json_int32(j, "max_threads_per_block", what);
  s.max_blocks_per_sm = json_int32(j, "max_blocks_per_sm", what);
  s.warp_size = json_int32(j, "warp_size", what);
  if (!j.contains("peak_tflops") || !j["peak_tflops"].is_object())
    throw UserError(std::string(what) + ": missing object \"peak_tflops\"");
  for (const auto& [key, value] : j["peak_tflops"].items()) {
    auto kind = std::find_if(std::begin(kInstrKinds), std::end(kInstrKinds),
                             [&](InstrKind k) { return instr_kind_name(k) == key; });
    if (kind == std::end(kInstrKinds))
      throw UserError(std::string(what) + ": unknown instruction kind \"" + key +
                      "\" in peak_tflops (valid: tensor_f16, tensor_tf32, tensor_f8, fma_f32, fma_f64)");
    s.peak_tflops[*kind] = json_positive_number(j["peak_tflops"], key, what);
  }
  for (InstrKind k : {InstrKind::kTensorF16, InstrKind::kFmaF32})
    if (!s.peak(k))
      throw UserError(std::string(what) + ": peak_tflops needs \"" + std::string(instr_kind_name(k)) + "\"");
  if (j.contains("async_mma_terms")) s.async_mma = AsyncMmaTerms::from_json(j["async_mma_terms"], what);
  if (j.contains("mma_sync_efficiency")) {
    s.mma_sync_efficiency = json_positive_number(j, "mma_sync_efficiency", what);
    if (s.mma_sync_efficiency > 1)
      throw UserError(std::string(what) + ": \"mma_sync_efficiency\" is a share of the peak, at most 1 (got " +
                      std::to_string(s.mma_sync_efficiency) + ")");
  }
  if (j.contains("source")) s.source = json_string(j, "source", what);
  if (j.contains("refined_from")) s.refined_from = json_string(j, "refined_from", what);
  return s;
}

Json HardwareSpec::to_json() const {
  Json j;
  j["name"] = name;
  j["gpu_name"] = gpu_name;
  j["device_names"] = device_names;
  j["compute_capability"] = std::to_string(cc_major) + "." + std::to_string(cc_minor);
  j["sm_count"] = sm_count;
  j["sm_clock_mhz"] = sm_clock_mhz;
  j["dram_bandwidth_gbps"] = dram_bandwidth_gbps;
  j["dram_bytes"] = dram_bytes;
  j["l2_bytes"] = l2_bytes;
  j["smem_per_sm_bytes"] = smem_per_sm_bytes;
  j["smem_per_block_bytes"] = smem_per_block_bytes;
  j["registers_per_sm"] = registers_per_sm;
  j["registers_per_block"] = registers_per_block;
  j["max_registers_per_thread"] = max_registers_per_thread;
  j["max_threads_per_sm"] = max_threads_per_sm;
  j["max_threads_per_block"] = max_threads_per_block;
  j["max_blocks_per_sm"] = max_blocks_per_sm;
  j["warp_size"] = warp_size;
  Json peaks = Json::object();
  for (const auto& [k, v] : peak_tflops) peaks[std::string(instr_kind_name(k))] = v;
  j["peak_tflops"] = peaks;
  j["async_mma_terms"] = async_mma.to_json();
  j["mma_sync_efficiency"] = mma_sync_efficiency;
  j["source"] = source;
  if (!refined_from.empty()) j["refined_from"] = refined_from;
  return j;
}

const std::vector<HardwareSpec>& builtin_specs() {
  static const std::vector<HardwareSpec> specs = load_builtin_specs();
  return specs;
}

HardwareSpec find_spec(std::string_view name_or_path) {
  std::string name(name_or_path);
  if (name.size() > 5 && name.ends_with(".json")) return HardwareSpec::from_json(read_json_file(name), name);
  std::string known;
  for (const HardwareSpec& s : builtin_specs()) {
    if (s.name == name) return s;
    known += (known.empty() ? "" : ", ") + s.name;
  }
  throw UserError("unknown target '" + name + "' (known: " + known +
                  "; or give a path to a GPU spec .json)");
}

std::optional<HardwareSpec> spec_for_device(const DeviceProperties& props) {
  const HardwareSpec* base = nullptr;
  bool exact = false;
  for (const HardwareSpec& s : builtin_specs()) {
    if (std::find(s.device_names.begin(), s.device_names.end(), props.name) != s.device_names.end()) {
      base = &s;
      exact = true;
      break;
    }
    if (s.cc_major == props.cc_major && s.cc_minor == props.cc_minor &&
        (!base || s.sm_count > base->sm_count))
      base = &s;
  }
  if (!base) return std::nullopt;
  HardwareSpec spec = *base;
  // Peak rates scale with SMs x clock; the rest is what the device reports.
  double scale = 1;
  if (props.sm_count > 0 && props.sm_clock_mhz > 0)
    scale = (props.sm_count * props.sm_clock_mhz) / (spec.sm_count * spec.sm_clock_mhz);
  for (auto& [kind, tflops] : spec.peak_tflops) tflops *= scale;
  auto take = [](auto& field, auto reported) {
    if (reported > 0) field = reported;
  };
  take(spec.sm_count, props.sm_count);
  take(spec.sm_clock_mhz, props.sm_clock_mhz);
  take(spec.dram_bandwidth_gbps, props.dram_bandwidth_gbps);
  take(spec.dram_bytes, props.dram_bytes);
  take(spec.l2_bytes, props.l2_bytes);
  take(spec.smem_per_sm_bytes, props.smem_per_sm_bytes);
  take(spec.smem_per_block_bytes, props.smem_per_block_bytes);
  take(spec.registers_per_sm, props.registers_per_sm);
  take(spec.registers_per_block, props.registers_per_block);
  take(spec.max_threads_per_sm, props.max_threads_per_sm);
  take(spec.max_threads_per_block, props.max_threads_per_block);
  take(spec.max_blocks_per_sm, props.max_blocks_per_sm);
  take(spec.warp_size, props.warp_size);
  spec.gpu_name = props.name;
  spec.refined_from = (exact ? "spec " : "spec of the same architecture ") + base->name +
                      ", resources as reported by the device" +
                      (scale != 1 ? ", peaks scaled x" + std::to_string(scale) + " for SMs x clock" : "");
  return spec;
}

std::string Target::arch() const { return arch_name(cc_major, cc_minor); }

std::string Target::fingerprint() const {
  return gpu_name + "|" + arch() + "|" + std::to_string(sm_count) + " SMs|driver " + driver_version +
         "|runtime " + runtime_version + "|toolkit " + toolkit_version;
}

Target Target::for_spec(const HardwareSpec& spec, std::string toolkit_version) {
  Target t;
  t.gpu_name = spec.gpu_name;
  t.spec_name = spec.name;
  t.cc_major = spec.cc_major;
  t.cc_minor = spec.cc_minor;
  t.sm_count = spec.sm_count;
  t.driver_version = "none";
  t.runtime_version = "none";
  t.toolkit_version = std::move(toolkit_version);
  return t;
}

Target Target::from_json(const Json& j, std::string_view what) {
  Target t;
  t.gpu_name = json_string(j, "gpu_name", what);
  t.spec_name = json_string(j, "spec_name", what);
  t.cc_major = static_cast<int>(json_int_in(j, "cc_major", what, 0, 99));
  t.cc_minor = static_cast<int>(json_int_in(j, "cc_minor", what, 0, 99));
  t.sm_count = static_cast<int>(json_int_in(j, "sm_count", what, 0, 1 << 20));
  t.driver_version = json_string(j, "driver_version", what);
  t.runtime_version = json_string(j, "runtime_version", what);
  t.toolkit_version = json_string(j, "toolkit_version", what);
  return t;
}

Json Target::to_json() const {
  Json j;
  j["gpu_name"] = gpu_name;
  j["spec_name"] = spec_name;
  j["cc_major"] = cc_major;
  j["cc_minor"] = cc_minor;
  j["sm_count"] = sm_count;
  j["driver_version"] = driver_version;
  j["runtime_version"] = runtime_version;
  j["toolkit_version"] = toolkit_version;
  j["fingerprint"] = fingerprint();
  return j;
}

}  // namespace tessera
