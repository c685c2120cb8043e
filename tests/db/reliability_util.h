// Helpers of the database reliability tests (database_reliability_test.cc,
// database_concurrency_test.cc, database_migration_test.cc): temporary database files, records,
// raw SQLite access and child processes.
#pragma once

#include "db/database.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/hardware.h"
#include "core/measurement.h"
#include "core/schedule.h"
#include "core/workload.h"

namespace tessera::db::reliability {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Files

inline std::string temp_db_path(const std::string& name) {
  return ::testing::TempDir() + "tessera_reliability_" + name + "_" + std::to_string(getpid()) + ".db";
}

inline void remove_db_files(const std::string& path) {
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ec);
}

// A database path that is removed (with its -wal, -shm and -journal siblings) before and after.
struct TempDb {
  std::string path;
  explicit TempDb(const std::string& name) : path(temp_db_path(name)) { remove_db_files(path); }
  ~TempDb() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, ec);  // undo a chmod 0444
    remove_db_files(path);
  }
  TempDb(const TempDb&) = delete;
  TempDb& operator=(const TempDb&) = delete;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

inline bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------
// Records

inline const Workload& test_workload() {
  static const Workload w = Workload::parse("matmul:m=1024,n=1024,k=1024:f16");
  return w;
}

inline const Target& test_target() {
  static const Target t = Target::for_spec(find_spec("h100_sxm"), "13.0");
  return t;
}

// A distinct ok record: `family` and `i` go into the schedule and the timestamp.
inline Record make_record(const std::string& family, int64_t i) {
  Record r;
  r.workload = test_workload();
  r.target = test_target();
  r.schedule = Schedule{family, {{"bm", 64 << (i % 3)}, {"bn", 128}, {"index", i}}};
  r.measurement.status = Status::kOk;
  r.measurement.set_times({100.0 + static_cast<double>(i % 97), 101.0, 99.5});
  r.measurement.registers = 128;
  r.measurement.smem_bytes = 49152;
  r.predicted_us = 110.0;
  r.feature_version = 1;
  r.tool_version = "0.1.0-test";
  r.timestamp_s = 1795000000 + i;
  return r;
}

inline std::vector<Record> make_records(const std::string& family, int64_t first, int64_t count) {
  std::vector<Record> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = first; i < first + count; ++i) out.push_back(make_record(family, i));
  return out;
}

// Creates `path` with `count` records of `family` (committed in batches of 500).
inline void create_db(const std::string& path, int64_t count, const std::string& family = "base") {
  TuningDatabase db = TuningDatabase::open(path);
  for (int64_t first = 0; first < count; first += 500) {
    CommitResult r = db.commit(make_records(family, first, std::min<int64_t>(500, count - first)));
    ASSERT_EQ(r.inserted, std::min<int64_t>(500, count - first));
  }
}  // closing the last connection checkpoints the WAL into the main file

inline int64_t record_count(const std::string& path, const OpenOptions& options = {}) {
  return TuningDatabase::open(path, options).stats().records;
}

// The DatabaseError message of open(path, options), or "" when it opened. Any other
// exception type escapes (and fails the test).
inline std::string open_error(const std::string& path, const OpenOptions& options = {}) {
  try {
    TuningDatabase db = TuningDatabase::open(path, options);
  } catch (const DatabaseError& e) {
    return e.what();
  }
  return "";
}

// Opening `path` read-write and read-only both fail with an error that starts with the path
// and contains `needle`, and leave the file's bytes as they were.
inline void expect_refused_unchanged(const std::string& path, const std::string& needle) {
  const std::string before = read_bytes(path);
  for (bool read_only : {false, true}) {
    OpenOptions o;
    o.read_only = read_only;
    std::string err = open_error(path, o);
    EXPECT_TRUE(starts_with(err, path)) << err;
    EXPECT_TRUE(contains(err, needle)) << err;
    EXPECT_EQ(read_bytes(path), before) << "read_only=" << read_only;
  }
}

// ---------------------------------------------------------------------------------------
// Raw SQLite (outside TuningDatabase)

inline void raw_exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << message;
}

inline int64_t raw_int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

inline sqlite3* raw_open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  EXPECT_EQ(rc, SQLITE_OK) << path;
  // Even a COMMIT that changed nothing takes the exclusive lock in rollback-journal mode:
  // wait for it like any other writer would.
  sqlite3_busy_timeout(db, 20000);
  return db;
}

// ---------------------------------------------------------------------------------------
// Child processes

// Forks a child that runs `body` and leaves with _exit (never returning into gtest): 0 on
// success, body's nonzero code, 10 for a DatabaseError, 11 for another exception.
template <typename F>
inline pid_t spawn(F&& body) {
  std::fflush(nullptr);  // nothing buffered is written twice
  pid_t pid = fork();
  if (pid != 0) return pid;
  int code = 0;
  try {
    code = body();
  } catch (const DatabaseError& e) {
    std::fprintf(stderr, "child %d: DatabaseError: %s\n", static_cast<int>(getpid()), e.what());
    code = 10;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child %d: exception: %s\n", static_cast<int>(getpid()), e.what());
    code = 11;
  } catch (...) {
    code = 12;
  }
  std::fflush(nullptr);
  _exit(code);
}

// Waits for `pids` until `timeout`; children still running then are killed. Returns the
// wait statuses (-1 for a child that had to be killed).
inline std::vector<int> wait_all(const std::vector<pid_t>& pids, std::chrono::seconds timeout) {
  std::vector<int> status(pids.size(), -1);
  std::vector<bool> done(pids.size(), false);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t remaining = pids.size();
  while (remaining > 0 && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int st = 0;
      if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
        status[i] = st;
        done[i] = true;
        --remaining;
      }
    }
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (size_t i = 0; i < pids.size(); ++i) {
    if (done[i]) continue;
    kill(pids[i], SIGKILL);
    int st = 0;
    waitpid(pids[i], &st, 0);
    ADD_FAILURE() << "child " << pids[i] << " did not finish within " << timeout.count() << " s; killed";
  }
  return status;
}

inline std::string describe_status(int st) {
  if (st == -1) return "killed after the deadline";
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

}  // namespace tessera::db::reliability
