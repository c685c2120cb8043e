// A GoogleTest fixture with the built-in kernel families registered and the H100 spec, for
// the suites that rank, model or search schedules.
#pragma once

#include <gtest/gtest.h>

#include "core/hardware.h"
#include "kernels/families.h"

namespace tessera::testing {

class BuiltinFamiliesTest : public ::testing::Test {
 protected:
  void SetUp() override { kernels::register_builtin_families(families_); }
  kernels::FamilyRegistry families_;
  HardwareSpec h100_ = find_spec("h100_sxm");
};

}  // namespace tessera::testing
