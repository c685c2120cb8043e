#include "measure/job.h"

#include "core/error.h"

namespace tessera::measure {
namespace {

Json geometry_json(const kernels::LaunchGeometry& g) {
  return Json{{"grid", {g.grid[0], g.grid[1], g.grid[2]}},
              {"block", {g.block[0], g.block[1], g.block[2]}},
              {"smem", g.dynamic_smem_bytes},
              {"persistent", g.persistent},
              {"cluster", g.cluster},
              {"blocks_per_sm", g.blocks_per_sm}};
}

kernels::LaunchGeometry geometry_from(const Json& j) {
  kernels::LaunchGeometry g;
  for (int i = 0; i < 3; ++i) {
    g.grid[i] = j.at("grid").at(i).get<int64_t>();
    g.block[i] = j.at("block").at(i).get<int64_t>();
  }
  g.dynamic_smem_bytes = j.at("smem").get<int64_t>();
  g.persistent = j.value("persistent", false);
  g.cluster = j.value("cluster", int64_t{1});
  g.blocks_per_sm = j.value("blocks_per_sm", int64_t{1});
  return g;
}

Json tensor_map_json(const kernels::TensorMapSpec& m) {
  Json j{{"tensor", m.tensor},           {"dtype", std::string(dtype_name(m.dtype))},
         {"dims", m.dims},               {"strides_bytes", m.strides_bytes},
         {"box", m.box},                 {"swizzle_bytes", m.swizzle_bytes}};
  if (m.im2col()) {
    j["lower_corner"] = m.lower_corner;
    j["upper_corner"] = m.upper_corner;
  }
  if (!m.element_strides.empty()) j["element_strides"] = m.element_strides;
  if (m.offset_bytes != 0) j["offset_bytes"] = m.offset_bytes;
  return j;
}

kernels::TensorMapSpec tensor_map_from(const Json& j) {
  kernels::TensorMapSpec m;
  m.tensor = j.at("tensor").get<int>();
  m.dtype = parse_dtype(j.at("dtype").get<std::string>(), "tensor map dtype");
  m.dims = j.at("dims").get<std::vector<int64_t>>();
  m.strides_bytes = j.at("strides_bytes").get<std::vector<int64_t>>();
  m.box = j.at("box").get<std::vector<int64_t>>();
  m.swizzle_bytes = j.at("swizzle_bytes").get<int>();
  m.lower_corner = j.value("lower_corner", std::vector<int64_t>{});
  m.upper_corner = j.value("upper_corner", std::vector<int64_t>{});
  m.element_strides = j.value("element_strides", std::vector<int64_t>{});
  m.offset_bytes = j.value("offset_bytes", int64_t{0});
  if (m.offset_bytes < 0 || m.offset_bytes % 16 != 0) throw UserError("tensor map offset_bytes must be a multiple of 16");
  return m;
}

}  // namespace

Json MeasureOptions::to_json() const {
  return Json{{"warmup_runs", warmup_runs},   {"warmup_ms", warmup_ms},         {"min_repeats", min_repeats},
              {"min_total_ms", min_total_ms}, {"max_repeats", max_repeats},     {"flush_l2", flush_l2},
              {"noise_threshold", noise_threshold}, {"max_attempts", max_attempts}, {"check", check},
              {"vendor", vendor},             {"seed", seed}};
}

MeasureOptions MeasureOptions::from_json(const Json& j) {
  MeasureOptions o;
  o.warmup_runs = j.at("warmup_runs").get<int>();
  o.warmup_ms = j.at("warmup_ms").get<double>();
  o.min_repeats = j.at("min_repeats").get<int>();
  o.min_total_ms = j.at("min_total_ms").get<double>();
  o.max_repeats = j.at("max_repeats").get<int>();
  o.flush_l2 = j.at("flush_l2").get<bool>();
  o.noise_threshold = j.at("noise_threshold").get<double>();
  o.max_attempts = j.at("max_attempts").get<int>();
  o.check = j.at("check").get<bool>();
  o.vendor = j.at("vendor").get<bool>();
  o.seed = j.at("seed").get<uint64_t>();
  return o;
}

Json job_header(const Job& job, const MeasureOptions& options, int64_t id) {
  Json plan = Json::array();
  for (const kernels::KernelLaunch& step : job.plan.plan())
    plan.push_back(Json{{"entry", step.entry}, {"geometry", geometry_json(step.geometry)}});
  Json maps = Json::array();
  for (const kernels::TensorMapSpec& m : job.plan.tensor_maps) maps.push_back(tensor_map_json(m));
  return Json{{"type", "measure"},
              {"id", id},
              {"workload", job.workload.to_json()},
              {"schedule", job.schedule.to_json()},
              {"plan", plan},
              {"main", job.plan.before.size()},
              {"workspace_bytes", job.plan.workspace_bytes},
              {"tensor_maps", maps},
              {"options", options.to_json()}};
}

Job job_from_header(const Json& h, std::string cubin) {
  try {
    Job job;
    job.workload = Workload::from_json(h.at("workload"));
    job.schedule = Schedule::from_json(h.at("schedule"), "measure request");
    const Json& plan = h.at("plan");
    if (!plan.is_array() || plan.empty()) throw UserError("measure request: empty launch plan");
    const size_t main = h.value("main", size_t{0});  // the plan's entry; kernels before it run first
    if (main >= plan.size()) throw UserError("measure request: the launch plan has no kernel " + std::to_string(main));
    for (size_t i = 0; i < plan.size(); ++i) {
      kernels::KernelLaunch step{plan[i].at("entry").get<std::string>(), geometry_from(plan[i].at("geometry"))};
      if (i < main) job.plan.before.push_back(std::move(step));
      else if (i > main) job.plan.then.push_back(std::move(step));
      else job.plan.entry = std::move(step.entry), job.plan.launch = step.geometry;
    }
    job.plan.workspace_bytes = h.at("workspace_bytes").get<int64_t>();
    for (const Json& m : h.value("tensor_maps", Json::array())) job.plan.tensor_maps.push_back(tensor_map_from(m));
    job.cubin = std::move(cubin);
    return job;
  } catch (const Json::exception& e) {
    throw UserError(std::string("measure request: ") + e.what());
  }
}

}  // namespace tessera::measure
