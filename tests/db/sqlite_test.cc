#include "db/sqlite.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>

#include "core/error.h"

namespace tessera::db {
namespace {

TEST(Sqlite, VersionIsReported) { EXPECT_EQ(sqlite_version().rfind("3.", 0), 0u) << sqlite_version(); }

TEST(Sqlite, FailingCallThrowsApiErrorWithConnectionMessage) {
  std::string path = ::testing::TempDir() + "tessera_not_a_db_" + std::to_string(getpid()) + ".sqlite";
  std::ofstream(path) << "this is not an SQLite database, it is plain text padded out to a page........"
                      << std::string(4096, 'x');
  sqlite3* db = nullptr;
  TESSERA_SQLITE_CALL(db, sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr));
  try {
    TESSERA_SQLITE_CALL(db, sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr));
    FAIL() << "no throw";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.api(), "SQLite");
    EXPECT_NE(e.message().find("file is not a database"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("code 26"), std::string::npos) << e.message();
  }
  sqlite3_close(db);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tessera::db
