// SQLite access: the one wrapper for SQLite calls, and the library version.
#pragma once

#include <sqlite3.h>

#include <string>

namespace tessera::db::detail {
[[noreturn]] void throw_sqlite_error(sqlite3* db, int rc, const char* call, const char* file, int line);
}  // namespace tessera::db::detail

/// Runs a SQLite call on connection `db` (may be null); any result other than SQLITE_OK,
/// SQLITE_ROW or SQLITE_DONE throws ApiError with the connection's message and the code.
#define TESSERA_SQLITE_CALL(db, call)                                                      \
  do {                                                                                     \
    int tessera_sqlite_rc_ = (call);                                                       \
    if (tessera_sqlite_rc_ != SQLITE_OK && tessera_sqlite_rc_ != SQLITE_ROW &&             \
        tessera_sqlite_rc_ != SQLITE_DONE)                                                 \
      ::tessera::db::detail::throw_sqlite_error((db), tessera_sqlite_rc_, #call, __FILE__, __LINE__); \
  } while (false)

namespace tessera::db {

/// "3.40.1": the SQLite library the database runs on.
std::string sqlite_version();

}  // namespace tessera::db
