// CPU-side behaviour of device discovery: what happens when there is no GPU.
#include "measure/devices.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "measure/cuda_call.h"
#include "measure/driver_api.h"

namespace tessera::measure {
namespace {

bool gpu_present() { return !scan_devices().devices.empty(); }

TEST(Devices, NoGpuGivesAReasonNotAnException) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  DeviceScan scan = scan_devices();
  EXPECT_TRUE(scan.devices.empty());
  EXPECT_FALSE(scan.reason.empty());
}

TEST(Devices, ResolveTargetWithoutGpuNeedsANamedTarget) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  try {
    resolve_target("");
    FAIL() << "no throw";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("no GPU found (", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("--target"), std::string::npos);
  }
}

TEST(Devices, NamedTargetIsModelOnly) {
  ResolvedTarget t = resolve_target("a100_sxm");
  EXPECT_FALSE(t.from_device);
  EXPECT_EQ(t.spec.name, "a100_sxm");
  EXPECT_EQ(t.target.spec_name, "a100_sxm");
  EXPECT_EQ(t.target.driver_version, "none");
  EXPECT_FALSE(t.target.is_device());
  EXPECT_THROW(resolve_target("no_such_gpu"), UserError);
}

TEST(Devices, ParsesTheKernelDriverRelease) {
  EXPECT_EQ(parse_nvidia_driver_release("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue Oct 7 2025\n"
                                        "GCC version:  gcc version 12.2.0\n"),
            "580.159.04");
  EXPECT_EQ(parse_nvidia_driver_release("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release"),
            "550.54.15");
  EXPECT_EQ(parse_nvidia_driver_release("no driver here"), "");
  EXPECT_EQ(parse_nvidia_driver_release(""), "");
}

#if TESSERA_HAVE_CUDA
TEST(Devices, CudaCallWrapperReportsTheDriverProblem) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  int count = 0;
  try {
    TESSERA_CUDA_CALL(cudaGetDeviceCount(&count));
    FAIL() << "no throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.api(), "CUDA");
    EXPECT_NE(std::string(e.what()).find("cudaGetDeviceCount(&count)"), std::string::npos) << e.what();
  }
}

TEST(Devices, RuntimeVersionIsKnownWithoutDriver) { EXPECT_NE(cuda_runtime_version(), "none"); }

TEST(Devices, DriverEntryPointWithoutDriverIsAnApiError) {
  if (gpu_present()) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  EXPECT_THROW(driver_entry_point("cuDriverGetVersion", 12000), ApiError);
}
#else
TEST(Devices, BuiltWithoutCudaSaysSo) {
  EXPECT_EQ(scan_devices().reason, "this tessera was built without CUDA support");
  EXPECT_THROW(driver_entry_point("cuDriverGetVersion", 12000), UserError);
}
#endif

}  // namespace
}  // namespace tessera::measure
