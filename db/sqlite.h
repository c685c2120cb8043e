// SQLite access for db/: the one wrapper for SQLite calls (TESSERA_SQLITE_CALL), an error
// type that keeps SQLite's result code, and small RAII types for connections' statements.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace tessera::db {

/// A failing SQLite call; code() is SQLite's extended result code.
class SqliteError : public ApiError {
 public:
  SqliteError(int code, std::string call, std::string message, const char* file, int line)
      : ApiError("SQLite", std::move(call), std::move(message), file, line), code_(code) {}
  int code() const { return code_; }
  int primary_code() const { return code_ & 0xff; }  ///< SQLITE_FULL, SQLITE_CORRUPT, ...

 private:
  int code_;
};

namespace detail {
[[noreturn]] void throw_sqlite_error(sqlite3* db, int rc, const char* call, const char* file, int line);
}  // namespace detail

/// "3.40.1": the SQLite library the database runs on.
std::string sqlite_version();

/// A prepared statement. Bind indexes are 1-based, column indexes 0-based (SQLite's own).
class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v);
  Statement& bind(int i, double v);
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const std::optional<double>& v);  ///< NULL when empty
  Statement& bind_blob(int i, std::string_view bytes);
  /// Runs one step: true when a row is available, false when done.
  bool step();
  /// Rewinds for another execution (bindings stay).
  void reset();

  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::optional<double> optional_real(int col) const;
  std::string text(int col) const;
  std::string blob(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// Resets a reused statement at the end of a scope, ending any read it still holds open.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

/// Runs SQL without results (may hold several statements).
void exec(sqlite3* db, std::string_view sql);

}  // namespace tessera::db

/// Runs a SQLite call on connection `conn` (may be null); any result other than SQLITE_OK,
/// SQLITE_ROW or SQLITE_DONE throws SqliteError with the connection's message and the code.
#define TESSERA_SQLITE_CALL(conn, call)                                                      \
  do {                                                                                     \
    int tessera_sqlite_rc_ = (call);                                                       \
    if (tessera_sqlite_rc_ != SQLITE_OK && tessera_sqlite_rc_ != SQLITE_ROW &&             \
        tessera_sqlite_rc_ != SQLITE_DONE)                                                 \
      ::tessera::db::detail::throw_sqlite_error((conn), tessera_sqlite_rc_, #call, __FILE__, __LINE__); \
  } while (false)
