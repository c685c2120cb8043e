#include "core/hardware.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <unistd.h>

#include <fstream>

#include "core/error.h"

namespace tessera {
namespace {

TEST(HardwareSpec, BuiltinSpecsLoadWithTheirFigures) {
  const auto& specs = builtin_specs();
  std::vector<std::string> names;
  for (const HardwareSpec& s : specs) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a100_sxm", "h100_sxm", "h200_sxm", "l4", "rtx4090"}));
  HardwareSpec h100 = find_spec("h100_sxm");
  EXPECT_EQ(h100.sm_count, 132);
  EXPECT_EQ(h100.arch(), "sm_90");
  EXPECT_EQ(h100.l2_bytes, 50 << 20);
  EXPECT_EQ(h100.smem_per_block_bytes, 227 * 1024);
  EXPECT_DOUBLE_EQ(*h100.peak(InstrKind::kTensorF16), 989.4);
  EXPECT_FALSE(find_spec("a100_sxm").peak(InstrKind::kTensorF8).has_value());
  for (const HardwareSpec& s : specs) {
    SCOPED_TRACE(s.name);
    EXPECT_LE(s.smem_per_block_bytes, s.smem_per_sm_bytes);
    EXPECT_GT(*s.peak(InstrKind::kTensorF16), *s.peak(InstrKind::kFmaF32));
    EXPECT_FALSE(s.source.empty());
  }
}

TEST(HardwareSpec, JsonRoundTrip) {
  for (const HardwareSpec& s : builtin_specs()) {
    HardwareSpec back = HardwareSpec::from_json(s.to_json(), "round trip");
    EXPECT_EQ(back.to_json(), s.to_json());
  }
}

TEST(HardwareSpec, UnknownTargetListsKnownOnes) {
  try {
    find_spec("h800");
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown target 'h800' (known: a100_sxm, h100_sxm, h200_sxm, l4, rtx4090; or give a path to a GPU "
              "spec .json)");
  }
}

TEST(HardwareSpec, LoadsFromFileAndRejectsBadFiles) {
  std::string path = ::testing::TempDir() + "tessera_spec_test_" + std::to_string(getpid()) + ".json";
  Json j = find_spec("l4").to_json();
  j["name"] = "my_l4";
  j["sm_count"] = 60;
  std::ofstream(path) << j.dump();
  EXPECT_EQ(find_spec(path).sm_count, 60);

  j["sm_count"] = "many";
  std::ofstream(path) << j.dump();
  try {
    find_spec(path);
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": field \"sm_count\" must be an integer (got \"many\")");
  }
  j["sm_count"] = 60;
  // The mma.sync kernels' share of the tensor peak: a share, defaulting to 0.65.
  EXPECT_DOUBLE_EQ(find_spec("a100_sxm").mma_sync_efficiency, 0.65);
  EXPECT_DOUBLE_EQ(find_spec("h100_sxm").mma_sync_efficiency, 0.55);
  j["mma_sync_efficiency"] = 0.5;
  std::ofstream(path) << j.dump();
  EXPECT_DOUBLE_EQ(find_spec(path).mma_sync_efficiency, 0.5);
  j["mma_sync_efficiency"] = 1.5;
  std::ofstream(path) << j.dump();
  try {
    find_spec(path);
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("\"mma_sync_efficiency\" is a share of the peak, at most 1"), std::string::npos)
        << e.what();
  }
  j["mma_sync_efficiency"] = 0.5;
  j["peak_tflops"]["tensor_f4"] = 1.0;
  std::ofstream(path) << j.dump();
  EXPECT_THROW(find_spec(path), UserError);
  j["peak_tflops"].erase("tensor_f4");
  j.erase("l2_bytes");
  std::ofstream(path) << j.dump();
  try {
    find_spec(path);
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": missing field \"l2_bytes\"");
  }
  std::ofstream(path) << "{\"name\": ";
  EXPECT_THROW(find_spec(path), UserError);
  std::remove(path.c_str());
  EXPECT_THROW(find_spec(path), UserError);
}

DeviceProperties h100_props() {
  DeviceProperties p;
  p.name = "NVIDIA H100 80GB HBM3";
  p.cc_major = 9;
  p.cc_minor = 0;
  p.sm_count = 132;
  p.sm_clock_mhz = 1980;
  p.l2_bytes = 50 << 20;
  p.smem_per_block_bytes = 232448;
  return p;
}

TEST(HardwareSpec, DeviceMatchesItsSpecByName) {
  auto spec = spec_for_device(h100_props());
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->name, "h100_sxm");
  EXPECT_DOUBLE_EQ(*spec->peak(InstrKind::kTensorF16), 989.4);  // same SMs and clock
  EXPECT_NE(spec->refined_from.find("spec h100_sxm"), std::string::npos);
}

TEST(HardwareSpec, UnknownDeviceOfAKnownArchScalesPeaks) {
  DeviceProperties p = h100_props();
  p.name = "NVIDIA H100 PCIe";
  p.sm_count = 114;
  p.sm_clock_mhz = 1755;
  p.dram_bandwidth_gbps = 2039;
  auto spec = spec_for_device(p);
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(spec->sm_count, 114);
  EXPECT_EQ(spec->gpu_name, "NVIDIA H100 PCIe");
  EXPECT_DOUBLE_EQ(spec->dram_bandwidth_gbps, 2039);
  EXPECT_NEAR(*spec->peak(InstrKind::kTensorF16), 989.4 * (114 * 1755.0) / (132 * 1980.0), 1e-9);
  EXPECT_NE(spec->refined_from.find("same architecture"), std::string::npos);

  p.cc_major = 7;  // no Volta spec is built in
  EXPECT_FALSE(spec_for_device(p).has_value());
}

TEST(Target, FingerprintAndJsonRoundTrip) {
  Target t = Target::for_spec(find_spec("h100_sxm"), "13.0");
  EXPECT_FALSE(t.is_device());
  EXPECT_EQ(t.fingerprint(), "NVIDIA H100 SXM5 80GB|sm_90|132 SMs|driver none|runtime none|toolkit 13.0");
  t.gpu_name = "NVIDIA H100 80GB HBM3";
  t.driver_version = "13.0";
  t.runtime_version = "13.0";
  EXPECT_TRUE(t.is_device());
  EXPECT_EQ(Target::from_json(t.to_json(), "t"), t);
  EXPECT_THROW(Target::from_json(Json{{"gpu_name", "x"}}, "t"), UserError);
}

}  // namespace
}  // namespace tessera
