#include "db/sqlite.h"

#include "core/error.h"

namespace tessera::db {
namespace detail {
void throw_sqlite_error(sqlite3* db, int rc, const char* call, const char* file, int line) {
  // The connection's message is more specific than the code's, when there is a connection.
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw ApiError("SQLite", call, message + " (" + sqlite3_errstr(rc) + ", code " + std::to_string(rc) + ")",
                 file, line);
}
}  // namespace detail

std::string sqlite_version() { return sqlite3_libversion(); }

}  // namespace tessera::db
