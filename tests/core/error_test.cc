#include "core/error.h"

#include <gtest/gtest.h>

namespace tessera {
namespace {

int checked_half(int x) {
  TESSERA_CHECK(x % 2 == 0, "x=" + std::to_string(x));
  return x / 2;
}

TEST(Error, CheckThrowsInternalErrorWithLocation) {
  EXPECT_EQ(checked_half(4), 2);
  try {
    checked_half(3);
    FAIL() << "no throw";
  } catch (const InternalError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("tests/core/error_test.cc:"), std::string::npos) << msg;
    EXPECT_NE(msg.find("check `x % 2 == 0` failed: x=3"), std::string::npos) << msg;
  }
}

TEST(Error, UserAndInternalErrorsAreDistinct) {
  // The CLI relies on catching UserError alone for bad input.
  EXPECT_FALSE((std::is_base_of_v<UserError, InternalError>));
  EXPECT_FALSE((std::is_base_of_v<InternalError, UserError>));
  EXPECT_FALSE((std::is_base_of_v<UserError, ApiError>));
}

TEST(Error, ApiErrorCarriesCallAndLocation) {
  ApiError e("SQLite", "sqlite3_open(path)", "unable to open database file", "db/database.cc", 42);
  EXPECT_EQ(std::string(e.what()),
            "SQLite error in `sqlite3_open(path)` at db/database.cc:42: unable to open database file");
  EXPECT_EQ(e.api(), "SQLite");
  EXPECT_EQ(e.call(), "sqlite3_open(path)");
}

}  // namespace
}  // namespace tessera
