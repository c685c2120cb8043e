#include "kernels/kernel_family.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/families.h"
#include "kernels/nvrtc.h"

namespace tessera::kernels {
namespace {

// A minimal family for exercising the registry: supports matmul only.
class FakeMatmulFamily : public KernelFamily {
 public:
  explicit FakeMatmulFamily(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  bool supports(const Workload& w) const override { return w.kind == OpKind::kMatmul; }
  std::vector<KnobDomain> space(const Workload&, const HardwareSpec&) const override { return {{"bm", {64, 128}}}; }
  std::optional<std::string> validate(const Schedule& s, const Workload&, const HardwareSpec&) const override {
    if (s.get("bm") > 128) return "bm too large";
    return std::nullopt;
  }
  KernelSource emit(const Workload&, const Schedule&) const override { return {"k", "__global__ void k() {}", {}}; }
  TilePlan tile_plan(const Workload& w, const Schedule&) const override { return whole_plan(w); }

 private:
  std::string name_;
};

TEST(FamilyRegistry, FindsFamiliesByNameAndWorkload) {
  FamilyRegistry registry;
  registry.add(std::make_unique<FakeMatmulFamily>("fake_a"));
  registry.add(std::make_unique<FakeMatmulFamily>("fake_b"));
  EXPECT_EQ(registry.names(), (std::vector<std::string>{"fake_a", "fake_b"}));
  ASSERT_NE(registry.find("fake_b"), nullptr);
  EXPECT_EQ(registry.find("fake_b")->name(), "fake_b");
  EXPECT_EQ(registry.find("gemm_tc"), nullptr);
  EXPECT_EQ(registry.for_workload(Workload::parse("matmul:m=8,n=8,k=8:f16")).size(), 2u);
  EXPECT_TRUE(registry.for_workload(Workload::parse("softmax:rows=8,cols=8:f16")).empty());
  EXPECT_THROW(registry.add(std::make_unique<FakeMatmulFamily>("fake_a")), InternalError);
}

// A schedule a user writes (bench --schedule) comes in the family's knob order whatever its
// JSON's; a knob missing or unknown is one line of user error.
TEST(FamilyKnobs, UserSchedulesTakeTheFamilysOrder) {
  FamilyRegistry families;
  register_builtin_families(families);
  const KernelFamily* f = families.find("conv_wgmma");
  ASSERT_NE(f, nullptr);
  const Workload w = Workload::parse("conv2d:n=32,h=7,w=7,c=1024,k=1024,r=3,s=3,pad=1,groups=32:f16:epilogue=bias");
  const HardwareSpec& hw = find_spec("h100_sxm");
  const std::vector<KnobDomain> space = f->space(w, hw);
  Schedule reversed{"conv_wgmma", {}};
  for (auto d = space.rbegin(); d != space.rend(); ++d) reversed.knobs.emplace_back(d->name, d->values.front());
  const Schedule ordered = in_family_order(*f, reversed, w, hw);
  ASSERT_EQ(ordered.knobs.size(), space.size());
  for (size_t k = 0; k < space.size(); ++k) {
    EXPECT_EQ(ordered.knobs[k].first, space[k].name);
    EXPECT_EQ(ordered.knobs[k].second, space[k].values.front());
  }
  Schedule missing = ordered;
  missing.knobs.pop_back();
  EXPECT_THROW(in_family_order(*f, missing, w, hw), UserError);
  Schedule unknown = ordered;
  unknown.knobs.emplace_back("warps", 4);
  EXPECT_THROW(in_family_order(*f, unknown, w, hw), UserError);
}

#if TESSERA_HAVE_CUDA
TEST(Nvrtc, ReportsItsVersionWithoutAGpu) {
  std::string v = nvrtc_version();
  EXPECT_EQ(v.find('.') != std::string::npos && v != "none", true) << v;
}

TEST(Nvrtc, FailingCallThrowsApiError) {
  try {
    TESSERA_NVRTC_CALL(nvrtcCreateProgram(nullptr, "", "x.cu", 0, nullptr, nullptr));
    FAIL() << "no throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.api(), "NVRTC");
    EXPECT_NE(std::string(e.what()).find("nvrtcCreateProgram"), std::string::npos) << e.what();
    EXPECT_EQ(e.message().rfind("NVRTC_ERROR_", 0), 0u) << e.message();
  }
}
#else
TEST(Nvrtc, ReportsNoneWithoutCuda) { EXPECT_EQ(nvrtc_version(), "none"); }
#endif

}  // namespace
}  // namespace tessera::kernels
