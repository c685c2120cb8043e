#include "db/sqlite.h"

namespace tessera::db {
namespace detail {
void throw_sqlite_error(sqlite3* db, int rc, const char* call, const char* file, int line) {
  // The connection's message is more specific than the code's, when there is a connection.
  int code = db ? sqlite3_extended_errcode(db) : rc;
  if ((code & 0xff) != (rc & 0xff)) code = rc;
  std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw SqliteError(code, call, message + " (" + sqlite3_errstr(rc) + ", code " + std::to_string(rc) + ")", file,
                    line);
}
}  // namespace detail

std::string sqlite_version() { return sqlite3_libversion(); }

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  TESSERA_SQLITE_CALL(db_, sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr));
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, int64_t v) {
  TESSERA_SQLITE_CALL(db_, sqlite3_bind_int64(stmt_, i, v));
  return *this;
}

Statement& Statement::bind(int i, double v) {
  TESSERA_SQLITE_CALL(db_, sqlite3_bind_double(stmt_, i, v));
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  TESSERA_SQLITE_CALL(db_, sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  return *this;
}

Statement& Statement::bind(int i, const std::optional<double>& v) {
  if (v) return bind(i, *v);
  TESSERA_SQLITE_CALL(db_, sqlite3_bind_null(stmt_, i));
  return *this;
}

Statement& Statement::bind_blob(int i, std::string_view bytes) {
  // sqlite3_bind_blob with a null pointer binds NULL, not an empty blob.
  if (bytes.empty()) TESSERA_SQLITE_CALL(db_, sqlite3_bind_zeroblob(stmt_, i, 0));
  else TESSERA_SQLITE_CALL(db_, sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
  return *this;
}

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  detail::throw_sqlite_error(db_, rc, sqlite3_sql(stmt_), __FILE__, __LINE__);
}

void Statement::reset() {
  sqlite3_reset(stmt_);  // its return code repeats the last step's, already reported
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::real(int col) const { return sqlite3_column_double(stmt_, col); }

std::optional<double> Statement::optional_real(int col) const {
  if (is_null(col)) return std::nullopt;
  return real(col);
}

std::string Statement::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

std::string Statement::blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

void exec(sqlite3* db, std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) detail::throw_sqlite_error(db, rc, text.c_str(), __FILE__, __LINE__);
}

}  // namespace tessera::db
