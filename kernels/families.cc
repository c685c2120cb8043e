#include "kernels/families.h"

#include "core/embedded.h"

namespace tessera {
std::span<const EmbeddedFile> embedded_device_headers();
}

namespace tessera::kernels {

void register_builtin_families(FamilyRegistry& registry) {
  registry.add(make_elementwise_family());
  registry.add(make_rows_family());
  registry.add(make_gemm_tc_family());
}

std::vector<std::pair<std::string, std::string>> device_headers() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const EmbeddedFile& f : embedded_device_headers())
    out.emplace_back("tessera/" + std::string(f.name), std::string(f.text));
  return out;
}

std::vector<Schedule> enumerate_space(const KernelFamily& family, const Workload& w, const HardwareSpec& hw) {
  std::vector<KnobDomain> domains = family.space(w, hw);
  std::vector<Schedule> out;
  std::vector<size_t> index(domains.size(), 0);
  for (const KnobDomain& d : domains)
    if (d.values.empty()) return out;
  while (true) {
    Schedule s{std::string(family.name()), {}};
    for (size_t i = 0; i < domains.size(); ++i) s.knobs.emplace_back(domains[i].name, domains[i].values[index[i]]);
    out.push_back(std::move(s));
    size_t i = 0;
    for (; i < domains.size(); ++i) {
      if (++index[i] < domains[i].values.size()) break;
      index[i] = 0;
    }
    if (i == domains.size()) return out;
  }
}

std::string device_type(DType t) {
  switch (t) {
    case DType::kF16: return "tessera::F16";
    case DType::kBF16: return "tessera::BF16";
    case DType::kF32: return "float";
  }
  return "float";
}

}  // namespace tessera::kernels
