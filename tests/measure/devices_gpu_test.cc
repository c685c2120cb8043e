// Device discovery on a real GPU (label gpu): skipped, never passed, without one.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>

#include "core/error.h"
#include "measure/cuda_call.h"
#include "measure/devices.h"
#include "measure/driver_api.h"
#if TESSERA_HAVE_CUDA
#include <cuda.h>
#endif

namespace tessera::measure {
namespace {

class DevicesGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    scan_ = scan_devices();
    if (scan_.devices.empty()) GTEST_SKIP() << "no GPU: " << scan_.reason;
  }
  DeviceScan scan_;
};

TEST_F(DevicesGpu, ReportsPropertiesAndFingerprint) {
  for (const Device& d : scan_.devices) {
    SCOPED_TRACE(d.properties.name);
    EXPECT_FALSE(d.properties.name.empty());
    EXPECT_GE(d.properties.cc_major, 7);
    EXPECT_GT(d.properties.sm_count, 0);
    EXPECT_GT(d.properties.sm_clock_mhz, 500);
    EXPECT_GT(d.properties.dram_bandwidth_gbps, 100);
    EXPECT_GT(d.properties.l2_bytes, 1 << 20);
    EXPECT_GE(d.properties.smem_per_block_bytes, 48 * 1024);
    EXPECT_TRUE(d.target.is_device());
    EXPECT_NE(d.target.runtime_version, "none");
    EXPECT_NE(d.target.driver_version.find("CUDA "), std::string::npos) << d.target.driver_version;
    if (FILE* f = std::fopen("/proc/driver/nvidia/version", "r")) {
      std::fclose(f);
      EXPECT_TRUE(isdigit(static_cast<unsigned char>(d.target.driver_version[0]))) << d.target.driver_version;
    }
    EXPECT_EQ(d.target.fingerprint().rfind(d.properties.name + "|sm_", 0), 0u) << d.target.fingerprint();
  }
}

TEST_F(DevicesGpu, HopperDeviceMatchesItsBuiltinSpec) {
  const Device& d = scan_.devices.front();
  if (d.properties.cc_major != 9) GTEST_SKIP() << "not a Hopper GPU: " << d.properties.name;
  ASSERT_TRUE(d.spec.has_value());
  EXPECT_EQ(d.spec->sm_count, d.properties.sm_count);
  EXPECT_EQ(d.spec->l2_bytes, d.properties.l2_bytes);
  EXPECT_TRUE(d.spec->name == "h100_sxm" || d.spec->name == "h200_sxm") << d.spec->name;
  ResolvedTarget t = resolve_target("");
  EXPECT_TRUE(t.from_device);
  EXPECT_EQ(t.target, d.target);
}

#if TESSERA_HAVE_CUDA
TEST_F(DevicesGpu, CudaCallWrapperThrowsOnBadDevice) {
  try {
    TESSERA_CUDA_CALL(cudaSetDevice(1 << 20));
    FAIL() << "no throw";
  } catch (const ApiError& e) {
    EXPECT_NE(e.message().find("cudaErrorInvalidDevice"), std::string::npos) << e.message();
  }
}

TEST_F(DevicesGpu, DriverEntryPointReachesTheDriverWithoutLinkingIt) {
  auto get_version = driver_function<decltype(&cuDriverGetVersion)>("cuDriverGetVersion", 12000);
  int via_driver = 0, via_runtime = 0;
  ASSERT_EQ(get_version(&via_driver), CUDA_SUCCESS);
  TESSERA_CUDA_CALL(cudaDriverGetVersion(&via_runtime));
  EXPECT_EQ(via_driver, via_runtime);
  EXPECT_NE(driver_entry_point("cuTensorMapEncodeTiled", 12000), nullptr);
  EXPECT_THROW(driver_entry_point("cuNoSuchFunction", 12000), ApiError);
}
#endif

}  // namespace
}  // namespace tessera::measure
