#include "kernels/kernel_family.h"

#include "core/error.h"

namespace tessera::kernels {

std::vector<KernelLaunch> KernelSource::plan() const {
  std::vector<KernelLaunch> out = before;
  out.push_back({entry, launch});
  out.insert(out.end(), then.begin(), then.end());
  return out;
}

KernelSource KernelFamily::emit_strided(const Workload& w, const Schedule&, const OperandLayouts&) const {
  TESSERA_CHECK(false, std::string(name()) + " cannot read the strided operands of " + w.key());
  return {};
}

void FamilyRegistry::add(std::unique_ptr<KernelFamily> family) {
  TESSERA_CHECK(family != nullptr, "null family");
  TESSERA_CHECK(find(family->name()) == nullptr,
                "family '" + std::string(family->name()) + "' registered twice");
  families_.push_back(std::move(family));
}

const KernelFamily* FamilyRegistry::find(std::string_view name) const {
  for (const auto& f : families_)
    if (f->name() == name) return f.get();
  return nullptr;
}

bool has_every_knob(const KernelFamily& f, const Schedule& s, const Workload& w, const HardwareSpec& hw) {
  for (const KnobDomain& d : f.space(w, hw))
    if (!s.find(d.name) && !d.absent) return false;
  return true;
}

Schedule in_family_order(const KernelFamily& f, const Schedule& s, const Workload& w, const HardwareSpec& hw) {
  Schedule out{s.family, {}};
  for (const KnobDomain& d : f.space(w, hw)) {
    std::optional<int64_t> v = s.find(d.name);
    if (!v) throw UserError("schedule of " + s.family + " lacks knob '" + d.name + "'");
    out.knobs.emplace_back(d.name, *v);
  }
  for (const auto& [name, value] : s.knobs)
    if (!out.find(name)) throw UserError(s.family + " has no knob '" + name + "'");
  return out;
}

std::vector<const KernelFamily*> FamilyRegistry::for_workload(const Workload& w) const {
  std::vector<const KernelFamily*> out;
  for (const auto& f : families_)
    if (f->supports(w)) out.push_back(f.get());
  return out;
}

std::vector<std::string> FamilyRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& f : families_) out.emplace_back(f->name());
  return out;
}

}  // namespace tessera::kernels
