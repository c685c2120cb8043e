#include "costmodel/xgboost.h"

#include <gtest/gtest.h>
#include <xgboost/c_api.h>

#include "core/error.h"

namespace tessera::costmodel {
namespace {

TEST(XGBoost, VersionIsReported) { EXPECT_EQ(xgboost_version().rfind("1.", 0), 0u) << xgboost_version(); }

TEST(XGBoost, FailingCallThrowsApiErrorWithLibraryMessage) {
  BoosterHandle booster = nullptr;
  TESSERA_XGB_CALL(XGBoosterCreate(nullptr, 0, &booster));
  try {
    TESSERA_XGB_CALL(XGBoosterLoadModel(booster, "/nonexistent/tessera-model.json"));
    FAIL() << "no throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.api(), "XGBoost");
    EXPECT_NE(std::string(e.what()).find("XGBoosterLoadModel"), std::string::npos) << e.what();
    EXPECT_FALSE(e.message().empty());
  }
  TESSERA_XGB_CALL(XGBoosterFree(booster));
}

}  // namespace
}  // namespace tessera::costmodel
