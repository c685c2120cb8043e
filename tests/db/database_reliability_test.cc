// Reliability tests of the tuning database: concurrent writer processes, a writer killed
// with SIGKILL, bad files (not SQLite, truncated, newer schema, foreign, read-only, disk
// full through an injected VFS fault) and forward migration of a hand-built version-1 file.
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

namespace tessera::db {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------
// Files

std::string temp_db_path(const std::string& name) {
  return ::testing::TempDir() + "tessera_reliability_" + name + "_" + std::to_string(getpid()) + ".db";
}

void remove_db_files(const std::string& path) {
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

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---------------------------------------------------------------------------------------
// Records

const Workload& test_workload() {
  static const Workload w = Workload::parse("matmul:m=1024,n=1024,k=1024:f16");
  return w;
}

const Target& test_target() {
  static const Target t = Target::for_spec(find_spec("h100_sxm"), "13.0");
  return t;
}

// A distinct ok record: `family` and `i` go into the schedule and the timestamp.
Record make_record(const std::string& family, int64_t i) {
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

std::vector<Record> make_records(const std::string& family, int64_t first, int64_t count) {
  std::vector<Record> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = first; i < first + count; ++i) out.push_back(make_record(family, i));
  return out;
}

// Creates `path` with `count` records of `family` (committed in batches of 500).
void create_db(const std::string& path, int64_t count, const std::string& family = "base") {
  TuningDatabase db = TuningDatabase::open(path);
  for (int64_t first = 0; first < count; first += 500) {
    CommitResult r = db.commit(make_records(family, first, std::min<int64_t>(500, count - first)));
    ASSERT_EQ(r.inserted, std::min<int64_t>(500, count - first));
  }
}  // closing the last connection checkpoints the WAL into the main file

int64_t record_count(const std::string& path, const OpenOptions& options = {}) {
  return TuningDatabase::open(path, options).stats().records;
}

// The DatabaseError message of open(path, options), or "" when it opened. Any other
// exception type escapes (and fails the test).
std::string open_error(const std::string& path, const OpenOptions& options = {}) {
  try {
    TuningDatabase db = TuningDatabase::open(path, options);
  } catch (const DatabaseError& e) {
    return e.what();
  }
  return "";
}

// Opening `path` read-write and read-only both fail with an error that starts with the path
// and contains `needle`, and leave the file's bytes as they were.
void expect_refused_unchanged(const std::string& path, const std::string& needle) {
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

void raw_exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  ASSERT_EQ(rc, SQLITE_OK) << sql << ": " << message;
}

int64_t raw_int(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* s = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  return v;
}

sqlite3* raw_open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  EXPECT_EQ(rc, SQLITE_OK) << path;
  // Even a COMMIT that changed nothing takes the exclusive lock in rollback-journal mode:
  // wait for it like any other writer would.
  sqlite3_busy_timeout(db, 20000);
  return db;
}

// ---------------------------------------------------------------------------------------
// A wrapper VFS over the default one. "tessera-faulty" makes xWrite fail with SQLITE_FULL
// while armed (after an optional byte budget); "tessera-readonly" opens main database files
// read-only, as SQLite does for a write-protected file (root ignores chmod 0444).

struct ShimConfig {
  sqlite3_vfs* base = nullptr;
  bool read_only_main = false;
  bool interleave = false;  // run g_on_unlock at the g_unlock_countdown-th unlock of a main db
};

std::atomic<bool> g_fault_armed{false};
std::atomic<int64_t> g_fault_budget{0};  // bytes that may still be written while armed
std::atomic<int64_t> g_fault_hits{0};    // writes refused
std::atomic<int64_t> g_fault_passed{0};  // bytes written while armed, within the budget

void arm_fault(int64_t budget_bytes) {
  g_fault_hits = 0;
  g_fault_passed = 0;
  g_fault_budget = budget_bytes;
  g_fault_armed = true;
}
void disarm_fault() { g_fault_armed = false; }

// "tessera-interleave": when a main database file's lock drops to NONE for the
// g_unlock_countdown-th time, g_on_unlock runs (once). It lets another connection change
// the file between two of open()'s transactions, deterministically.
int g_unlock_countdown = 0;
std::function<void()> g_on_unlock;

struct ShimFile {
  sqlite3_file base;            // must be first: SQLite sees this
  sqlite3_io_methods methods;   // forwarding table, same version as the real file's
  sqlite3_file* real;           // the base VFS's file, stored right after this struct
  bool interleave;              // a main db file of "tessera-interleave"
};

constexpr int kShimHeader = static_cast<int>((sizeof(ShimFile) + 15) / 16 * 16);

sqlite3_file* real_of(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f)->real; }
sqlite3_vfs* base_of(sqlite3_vfs* v) { return static_cast<ShimConfig*>(v->pAppData)->base; }

int shim_close(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xClose(r);
}
int shim_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xRead(r, buf, n, off);
}
int shim_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  if (g_fault_armed.load()) {
    if (g_fault_budget.fetch_sub(n) < n) {
      ++g_fault_hits;
      return SQLITE_FULL;
    }
    g_fault_passed += n;
  }
  sqlite3_file* r = real_of(f);
  return r->pMethods->xWrite(r, buf, n, off);
}
int shim_truncate(sqlite3_file* f, sqlite3_int64 size) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xTruncate(r, size);
}
int shim_sync(sqlite3_file* f, int flags) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSync(r, flags);
}
int shim_file_size(sqlite3_file* f, sqlite3_int64* size) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileSize(r, size);
}
int shim_lock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xLock(r, level);
}
int shim_unlock(sqlite3_file* f, int level) {
  sqlite3_file* r = real_of(f);
  int rc = r->pMethods->xUnlock(r, level);
  if (reinterpret_cast<ShimFile*>(f)->interleave && level == SQLITE_LOCK_NONE && g_unlock_countdown > 0 &&
      --g_unlock_countdown == 0 && g_on_unlock) {
    std::function<void()> hook = std::move(g_on_unlock);
    g_on_unlock = nullptr;
    hook();  // must not throw
  }
  return rc;
}
int shim_check_reserved_lock(sqlite3_file* f, int* out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xCheckReservedLock(r, out);
}
int shim_file_control(sqlite3_file* f, int op, void* arg) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFileControl(r, op, arg);
}
int shim_sector_size(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xSectorSize(r);
}
int shim_device_characteristics(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xDeviceCharacteristics(r);
}
int shim_shm_map(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmMap(r, region, size, extend, out);
}
int shim_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmLock(r, offset, n, flags);
}
void shim_shm_barrier(sqlite3_file* f) {
  sqlite3_file* r = real_of(f);
  r->pMethods->xShmBarrier(r);
}
int shim_shm_unmap(sqlite3_file* f, int delete_flag) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xShmUnmap(r, delete_flag);
}
int shim_fetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xFetch(r, off, n, out);
}
int shim_unfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  sqlite3_file* r = real_of(f);
  return r->pMethods->xUnfetch(r, off, p);
}

int shim_open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* cfg = static_cast<ShimConfig*>(vfs->pAppData);
  auto* shim = reinterpret_cast<ShimFile*>(file);
  shim->base.pMethods = nullptr;
  shim->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kShimHeader);
  shim->real->pMethods = nullptr;
  shim->interleave = cfg->interleave && (flags & SQLITE_OPEN_MAIN_DB);
  if (cfg->read_only_main && (flags & SQLITE_OPEN_MAIN_DB))
    flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
  int rc = cfg->base->xOpen(cfg->base, name, shim->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    if (shim->real->pMethods) shim->real->pMethods->xClose(shim->real);
    return rc;
  }
  const sqlite3_io_methods* rm = shim->real->pMethods;
  sqlite3_io_methods& m = shim->methods;
  m = sqlite3_io_methods{};
  m.iVersion = std::min(rm->iVersion, 3);
  m.xClose = shim_close;
  m.xRead = shim_read;
  m.xWrite = shim_write;
  m.xTruncate = shim_truncate;
  m.xSync = shim_sync;
  m.xFileSize = shim_file_size;
  m.xLock = shim_lock;
  m.xUnlock = shim_unlock;
  m.xCheckReservedLock = shim_check_reserved_lock;
  m.xFileControl = shim_file_control;
  m.xSectorSize = shim_sector_size;
  m.xDeviceCharacteristics = shim_device_characteristics;
  if (m.iVersion >= 2) {  // shared memory: the WAL index
    m.xShmMap = rm->xShmMap ? shim_shm_map : nullptr;
    m.xShmLock = rm->xShmLock ? shim_shm_lock : nullptr;
    m.xShmBarrier = rm->xShmBarrier ? shim_shm_barrier : nullptr;
    m.xShmUnmap = rm->xShmUnmap ? shim_shm_unmap : nullptr;
  }
  if (m.iVersion >= 3) {  // memory-mapped I/O
    m.xFetch = rm->xFetch ? shim_fetch : nullptr;
    m.xUnfetch = rm->xUnfetch ? shim_unfetch : nullptr;
  }
  shim->base.pMethods = &m;
  return SQLITE_OK;
}

sqlite3_vfs make_shim_vfs(ShimConfig* cfg, const char* name) {
  sqlite3_vfs* b = cfg->base;
  sqlite3_vfs v{};
  v.iVersion = std::min(b->iVersion, 3);
  v.szOsFile = kShimHeader + b->szOsFile;
  v.mxPathname = b->mxPathname;
  v.zName = name;
  v.pAppData = cfg;
  v.xOpen = shim_open;
  v.xDelete = [](sqlite3_vfs* s, const char* n, int sync_dir) { return base_of(s)->xDelete(base_of(s), n, sync_dir); };
  v.xAccess = [](sqlite3_vfs* s, const char* n, int flags, int* out) {
    return base_of(s)->xAccess(base_of(s), n, flags, out);
  };
  v.xFullPathname = [](sqlite3_vfs* s, const char* n, int size, char* out) {
    return base_of(s)->xFullPathname(base_of(s), n, size, out);
  };
  if (b->xDlOpen) v.xDlOpen = [](sqlite3_vfs* s, const char* n) { return base_of(s)->xDlOpen(base_of(s), n); };
  if (b->xDlError)
    v.xDlError = [](sqlite3_vfs* s, int size, char* out) { base_of(s)->xDlError(base_of(s), size, out); };
  if (b->xDlSym)
    v.xDlSym = [](sqlite3_vfs* s, void* h, const char* sym) { return base_of(s)->xDlSym(base_of(s), h, sym); };
  if (b->xDlClose) v.xDlClose = [](sqlite3_vfs* s, void* h) { base_of(s)->xDlClose(base_of(s), h); };
  v.xRandomness = [](sqlite3_vfs* s, int n, char* out) { return base_of(s)->xRandomness(base_of(s), n, out); };
  v.xSleep = [](sqlite3_vfs* s, int us) { return base_of(s)->xSleep(base_of(s), us); };
  v.xCurrentTime = [](sqlite3_vfs* s, double* out) { return base_of(s)->xCurrentTime(base_of(s), out); };
  v.xGetLastError = [](sqlite3_vfs* s, int n, char* out) {
    return base_of(s)->xGetLastError ? base_of(s)->xGetLastError(base_of(s), n, out) : 0;
  };
  if (v.iVersion >= 2 && b->xCurrentTimeInt64)
    v.xCurrentTimeInt64 = [](sqlite3_vfs* s, sqlite3_int64* out) {
      return base_of(s)->xCurrentTimeInt64(base_of(s), out);
    };
  if (v.iVersion >= 3) {
    if (b->xSetSystemCall)
      v.xSetSystemCall = [](sqlite3_vfs* s, const char* n, sqlite3_syscall_ptr p) {
        return base_of(s)->xSetSystemCall(base_of(s), n, p);
      };
    if (b->xGetSystemCall)
      v.xGetSystemCall = [](sqlite3_vfs* s, const char* n) { return base_of(s)->xGetSystemCall(base_of(s), n); };
    if (b->xNextSystemCall)
      v.xNextSystemCall = [](sqlite3_vfs* s, const char* n) { return base_of(s)->xNextSystemCall(base_of(s), n); };
  }
  return v;
}

constexpr const char* kFaultyVfs = "tessera-faulty";
constexpr const char* kReadOnlyVfs = "tessera-readonly";
constexpr const char* kInterleaveVfs = "tessera-interleave";

// Registers both shims once (never as the default VFS).
void register_shims() {
  static const bool registered = [] {
    static ShimConfig faulty{sqlite3_vfs_find(nullptr), false, false};
    static ShimConfig read_only{sqlite3_vfs_find(nullptr), true, false};
    static ShimConfig interleave{sqlite3_vfs_find(nullptr), false, true};
    static sqlite3_vfs faulty_vfs = make_shim_vfs(&faulty, kFaultyVfs);
    static sqlite3_vfs read_only_vfs = make_shim_vfs(&read_only, kReadOnlyVfs);
    static sqlite3_vfs interleave_vfs = make_shim_vfs(&interleave, kInterleaveVfs);
    return faulty.base != nullptr && sqlite3_vfs_register(&faulty_vfs, 0) == SQLITE_OK &&
           sqlite3_vfs_register(&read_only_vfs, 0) == SQLITE_OK &&
           sqlite3_vfs_register(&interleave_vfs, 0) == SQLITE_OK;
  }();
  ASSERT_TRUE(registered);
  ASSERT_NE(sqlite3_vfs_find(kFaultyVfs), nullptr);
  ASSERT_NE(sqlite3_vfs_find(kReadOnlyVfs), nullptr);
  ASSERT_NE(sqlite3_vfs_find(kInterleaveVfs), nullptr);
}

// ---------------------------------------------------------------------------------------
// Child processes

// Forks a child that runs `body` and leaves with _exit (never returning into gtest): 0 on
// success, body's nonzero code, 10 for a DatabaseError, 11 for another exception.
template <typename F>
pid_t spawn(F&& body) {
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
std::vector<int> wait_all(const std::vector<pid_t>& pids, std::chrono::seconds timeout) {
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

std::string describe_status(int st) {
  if (st == -1) return "killed after the deadline";
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// ---------------------------------------------------------------------------------------
// 1. Concurrent writers

TEST(DatabaseConcurrency, EightProcessesCreateAndWriteTheSameFile) {
  constexpr int kProcesses = 8;
  constexpr int kRecordsPerProcess = 1000;
  constexpr int kBatch = 10;
  TempDb tmp("concurrent");
  ASSERT_FALSE(fs::exists(tmp.path));  // they race to create it

  // Children block on `go` until the parent closes its write end: all start at once.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = spawn([&, p]() -> int {
      close(go[1]);
      std::string family = "proc" + std::to_string(p);
      std::vector<std::vector<Record>> batches;
      for (int first = 0; first < kRecordsPerProcess; first += kBatch)
        batches.push_back(make_records(family, first, kBatch));
      char c;
      while (read(go[0], &c, 1) > 0) {
      }
      TuningDatabase db = TuningDatabase::open(tmp.path);
      for (const auto& batch : batches) {
        CommitResult r = db.commit(batch);
        if (r.inserted != kBatch || r.duplicates != 0) {
          std::fprintf(stderr, "child %d: inserted %lld of %d\n", p, static_cast<long long>(r.inserted), kBatch);
          return 4;
        }
      }
      return 0;
    });
    if (pid < 0) {
      ADD_FAILURE() << "fork failed";
      break;
    }
    pids.push_back(pid);
  }
  close(go[0]);
  close(go[1]);
  std::vector<int> status = wait_all(pids, std::chrono::seconds(90));
  ASSERT_EQ(pids.size(), static_cast<size_t>(kProcesses));
  for (int p = 0; p < kProcesses; ++p)
    EXPECT_TRUE(WIFEXITED(status[p]) && WEXITSTATUS(status[p]) == 0)
        << "writer " << p << ": " << describe_status(status[p]);

  TuningDatabase db = TuningDatabase::open(tmp.path);
  Stats st = db.stats();
  EXPECT_EQ(st.schema_version, TuningDatabase::kSchemaVersion);
  EXPECT_EQ(st.records, kProcesses * kRecordsPerProcess);
  EXPECT_EQ(st.workloads, 1);
  EXPECT_EQ(st.targets, 1);
  EXPECT_EQ(st.families, kProcesses);
  EXPECT_EQ(db.check(), std::vector<std::string>{});
  for (int p = 0; p < kProcesses; ++p) {
    RecordFilter f;
    f.family = "proc" + std::to_string(p);
    std::vector<StoredRecord> recs = db.query(f);
    ASSERT_EQ(recs.size(), static_cast<size_t>(kRecordsPerProcess)) << *f.family;
    // Each process's records are all there, in its commit order.
    for (int i = 0; i < kRecordsPerProcess; ++i) ASSERT_EQ(recs[i].record, make_record(*f.family, i)) << i;
  }
}

// open() must honour the busy timeout: while another connection holds the write lock of a
// rollback-journal Tessera file (the state a new file is in between its creator's migration
// commit and its switch to WAL, which is when the writers above race), open() waits for
// it instead of failing at once.
TEST(DatabaseConcurrency, OpenWaitsForAnotherWriterInsteadOfFailingAtOnce) {
  TempDb tmp("open_waits");
  create_db(tmp.path, 5);
  sqlite3* other = raw_open(tmp.path);
  raw_exec(other, "PRAGMA journal_mode = DELETE");
  raw_exec(other, "BEGIN IMMEDIATE");  // another writer's transaction...
  int release_rc = -1;
  std::thread release([other, &release_rc] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    release_rc = sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);  // ...ends after 300 ms
  });
  OpenOptions options;
  options.busy_timeout_ms = 20000;
  auto start = std::chrono::steady_clock::now();
  std::string err;
  int64_t records = -1;
  try {
    TuningDatabase db = TuningDatabase::open(tmp.path, options);
    records = db.stats().records;
  } catch (const DatabaseError& e) {
    err = e.what();
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  release.join();
  EXPECT_EQ(release_rc, SQLITE_OK) << sqlite3_errmsg(other);
  sqlite3_close(other);
  EXPECT_EQ(err, "") << "open() gave up after " << ms << " ms of a " << options.busy_timeout_ms
                     << " ms busy timeout";
  EXPECT_EQ(records, 5);
}

// open() reads the file's header (user_version, application_id, schema) and then decides.
// Another connection may create the database at any moment in between; whatever the
// moment, open() must succeed on the resulting (valid) file. The interleaving VFS runs the
// other connection at the n-th time open()'s connection drops its lock.
TEST(DatabaseConcurrency, OpenIsConsistentWhenAnotherConnectionCreatesTheFileMidway) {
  register_shims();
  for (int n = 1; n <= 5; ++n) {
    TempDb tmp("interleave_" + std::to_string(n));
    bool hook_ran = false;
    std::string hook_error;
    g_on_unlock = [&] {
      hook_ran = true;
      try {
        TuningDatabase other = TuningDatabase::open(tmp.path);
        other.commit(make_records("other", 0, 3));
      } catch (const std::exception& e) {
        hook_error = e.what();
      }
    };
    g_unlock_countdown = n;
    OpenOptions options;
    options.vfs = kInterleaveVfs;
    std::string err;
    try {
      TuningDatabase db = TuningDatabase::open(tmp.path, options);
      db.commit(make_records("mine", 0, 2));
    } catch (const std::exception& e) {
      err = e.what();
    }
    g_unlock_countdown = 0;
    g_on_unlock = nullptr;
    EXPECT_EQ(hook_error, "") << "n = " << n;
    EXPECT_EQ(err, "") << "another connection created the file at unlock number " << n
                       << " of open()'s connection";
    if (!err.empty()) continue;
    TuningDatabase db = TuningDatabase::open(tmp.path);
    EXPECT_EQ(db.stats().schema_version, TuningDatabase::kSchemaVersion);
    EXPECT_EQ(db.stats().records, hook_ran ? 5 : 2) << "n = " << n;
    EXPECT_EQ(db.check(), std::vector<std::string>{});
  }
}

// ---------------------------------------------------------------------------------------
// 2. SIGKILL mid-run

bool read_count(int fd, int64_t* out, int timeout_ms) {
  char buf[sizeof(int64_t)];
  size_t got = 0;
  while (got < sizeof buf) {
    pollfd p{fd, POLLIN, 0};
    if (timeout_ms >= 0 && poll(&p, 1, timeout_ms) <= 0) return false;
    ssize_t n = read(fd, buf + got, sizeof buf - got);
    if (n <= 0) return false;  // EOF: the writer is gone
    got += static_cast<size_t>(n);
  }
  std::memcpy(out, buf, sizeof buf);
  return true;
}

TEST(DatabaseKill, SigkillMidRunLosesNoCommittedRecord) {
  constexpr int64_t kBatch = 50;
  constexpr int kRounds = 3;
  TempDb tmp("sigkill");
  int64_t known_committed = 0;  // over all rounds: what the writers reported before dying
  for (int round = 0; round < kRounds; ++round) {
    int counts[2];
    ASSERT_EQ(pipe(counts), 0);
    pid_t pid = spawn([&]() -> int {
      close(counts[0]);
      // Each round reopens the file the last round's writer was killed on (hot WAL).
      TuningDatabase db = TuningDatabase::open(tmp.path);
      std::string family = "kill" + std::to_string(round);
      int64_t committed = 0;
      for (int64_t b = 0; b < 100000; ++b) {  // endless in practice; bounded should the parent vanish
        CommitResult r = db.commit(make_records(family, b * kBatch, kBatch));
        if (r.inserted != kBatch) return 4;
        committed += r.inserted;
        if (write(counts[1], &committed, sizeof committed) != static_cast<ssize_t>(sizeof committed)) return 5;
      }
      return 6;
    });
    ASSERT_GE(pid, 0) << "fork failed";
    close(counts[1]);

    int64_t last = 0;
    int seen = 0;
    bool alive = true;
    while (seen < 20 + 10 * round) {
      int64_t c = 0;
      if (!read_count(counts[0], &c, 30000)) {
        alive = false;
        break;
      }
      EXPECT_EQ(c, last + kBatch);
      last = c;
      ++seen;
    }
    kill(pid, SIGKILL);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(alive) << "the writer stopped reporting: " << describe_status(st);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << describe_status(st);
    for (int64_t c = 0; read_count(counts[0], &c, -1);) last = c;  // counts written before the kill
    close(counts[0]);
    known_committed += last;

    // The killed writer left its WAL behind; opening recovers it.
    TuningDatabase db = TuningDatabase::open(tmp.path);
    EXPECT_EQ(db.check(), std::vector<std::string>{}) << "round " << round;
    RecordFilter f;
    f.family = "kill" + std::to_string(round);
    int64_t this_round = static_cast<int64_t>(db.query(f).size());
    EXPECT_GE(this_round, last) << "a commit the writer saw succeed is missing (round " << round << ")";
    EXPECT_LE(this_round, last + kBatch) << "round " << round;  // at most the one batch it never reported
    EXPECT_EQ(this_round % kBatch, 0) << "a partial batch survived (round " << round << ")";
    Stats st_db = db.stats();
    EXPECT_GE(st_db.records, known_committed);
    EXPECT_EQ(st_db.records % kBatch, 0);
  }
}

// ---------------------------------------------------------------------------------------
// 3. Bad files

TEST(DatabaseBadFile, NotSqliteIsRefusedUnchanged) {
  TempDb tmp("not_sqlite");
  std::string text;
  while (text.size() < 8192) text += "this is a plain text file, not an SQLite database; line " + std::to_string(text.size()) + "\n";
  text.resize(8192);
  write_bytes(tmp.path, text);

  expect_refused_unchanged(tmp.path, "not an SQLite database");
  EXPECT_THROW(TuningDatabase::open(tmp.path), UserError);  // DatabaseError is a UserError
  EXPECT_EQ(read_bytes(tmp.path), text);
  EXPECT_FALSE(fs::exists(tmp.path + "-wal"));
  EXPECT_FALSE(fs::exists(tmp.path + "-journal"));
}

TEST(DatabaseBadFile, TruncatedIsReportedAndTheOriginalIsIntact) {
  constexpr int64_t kRecords = 3000;
  TempDb original("truncated_original");
  TempDb truncated("truncated_copy");
  create_db(original.path, kRecords);
  ASSERT_FALSE(fs::exists(original.path + "-wal")) << "the last close should have checkpointed";
  std::string bytes = read_bytes(original.path);
  ASSERT_GT(bytes.size(), 64u * 1024) << "too small to truncate meaningfully";
  std::string cut = bytes.substr(0, bytes.size() * 4 / 10);
  write_bytes(truncated.path, cut);

  auto attempt = [&](const OpenOptions& options) {
    bool reported = false;
    auto expect_named = [&](const DatabaseError& e) {
      reported = true;
      EXPECT_TRUE(starts_with(e.what(), truncated.path)) << e.what();
    };
    try {
      TuningDatabase db = TuningDatabase::open(truncated.path, options);
      try {
        db.stats();
        db.query({});
        std::vector<std::string> problems = db.check();
        if (!problems.empty()) reported = true;
      } catch (const DatabaseError& e) {
        expect_named(e);
      }
    } catch (const DatabaseError& e) {
      expect_named(e);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "a truncated file must give DatabaseError, not: " << e.what();
      reported = true;
    }
    EXPECT_TRUE(reported) << "a file cut to 40% was opened, read and checked without complaint (read_only="
                          << options.read_only << ")";
    EXPECT_EQ(read_bytes(truncated.path), cut) << "the damaged file was changed (read_only=" << options.read_only
                                               << ")";
  };
  OpenOptions ro;
  ro.read_only = true;
  attempt(ro);
  attempt(OpenOptions{});

  TuningDatabase db = TuningDatabase::open(original.path);
  EXPECT_EQ(db.stats().records, kRecords);
  EXPECT_EQ(db.check(), std::vector<std::string>{});
}

TEST(DatabaseBadFile, NewerSchemaIsRefusedUnchanged) {
  TempDb tmp("newer");
  create_db(tmp.path, 10);
  sqlite3* raw = raw_open(tmp.path);
  raw_exec(raw, "PRAGMA user_version = " + std::to_string(TuningDatabase::kSchemaVersion + 1));
  sqlite3_close(raw);
  ASSERT_FALSE(fs::exists(tmp.path + "-wal"));

  expect_refused_unchanged(tmp.path, "newer");
  raw = raw_open(tmp.path);
  EXPECT_EQ(raw_int(raw, "PRAGMA user_version"), TuningDatabase::kSchemaVersion + 1);
  EXPECT_EQ(raw_int(raw, "SELECT count(*) FROM records"), 10);
  sqlite3_close(raw);
}

TEST(DatabaseBadFile, DamagedFileTakesNoWritesAndStaysUnchanged) {
  // `db import` into a file `db check` called damaged once reported new records and exit 0.
  TempDb tmp("damaged_write");
  create_db(tmp.path, 3000);
  std::string bytes = read_bytes(tmp.path);
  const size_t page = 4096, victim = bytes.size() / page / 2 * page;
  ASSERT_GT(victim, 4 * page);
  for (size_t i = victim; i < victim + page; ++i) bytes[i] = static_cast<char>(0xA5 ^ (i * 131));
  write_bytes(tmp.path, bytes);
  bool refused = false;
  try {
    TuningDatabase db = TuningDatabase::open(tmp.path);
    db.commit(make_records("more", 0, 10));
  } catch (const DatabaseError& e) {
    refused = true;
    EXPECT_TRUE(starts_with(e.what(), tmp.path)) << e.what();
    EXPECT_TRUE(contains(e.what(), "damaged")) << e.what();
    EXPECT_FALSE(contains(e.what(), "\n")) << e.what();
  }
  EXPECT_TRUE(refused) << "a commit into a damaged file succeeded";
  EXPECT_EQ(read_bytes(tmp.path), bytes) << "the damaged file was changed";
}

TEST(DatabaseBadFile, DroppedTablesAreOneLineNotAnSqlError) {
  TempDb tmp("dropped");
  create_db(tmp.path, 10);
  sqlite3* raw = raw_open(tmp.path);
  raw_exec(raw, "DROP TABLE graphs; DROP TABLE models");
  sqlite3_close(raw);
  expect_refused_unchanged(tmp.path, "without the tables models, graphs");
}

TEST(DatabaseBadFile, SchemaVersionThatDisagreesWithTheTablesIsRefusedUnchanged) {
  // A user_version set back by hand once printed the failing migration's SQL, 25 lines of it.
  TempDb tmp("wrong_version");
  create_db(tmp.path, 10);
  sqlite3* raw = raw_open(tmp.path);
  raw_exec(raw, "PRAGMA user_version = 1");
  sqlite3_close(raw);
  const std::string before = read_bytes(tmp.path);
  const std::string err = open_error(tmp.path);
  EXPECT_TRUE(starts_with(err, tmp.path + ": schema version 1 cannot be migrated")) << err;
  EXPECT_FALSE(contains(err, "CREATE")) << err;
  EXPECT_EQ(read_bytes(tmp.path), before);
}

TEST(DatabaseBadFile, ReadOnlyDirectoryCanStillBeRead) {
  if (::geteuid() == 0) GTEST_SKIP() << "root is not held back by a directory's permissions";
  const std::string dir = ::testing::TempDir() + "tessera_ro_dir_" + std::to_string(getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = dir + "/t.db";
  create_db(path, 20);
  ASSERT_FALSE(fs::exists(path + "-shm"));
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec);
  OpenOptions ro;
  ro.read_only = true;
  int64_t records = -1;
  std::string err;
  try {
    records = TuningDatabase::open(path, ro).stats().records;
  } catch (const std::exception& e) {
    err = e.what();
  }
  fs::permissions(dir, fs::perms::owner_all);
  fs::remove_all(dir);
  EXPECT_EQ(records, 20) << err;
}

TEST(DatabaseBadFile, MergeRefusesRecordsOutOfRange) {
  TempDb into("merge_into"), other("merge_other");
  create_db(into.path, 10);
  create_db(other.path, 10, "other");
  sqlite3* raw = raw_open(other.path);
  raw_exec(raw, "UPDATE records SET median_us = -5 WHERE id = 3");  // once the "best" record
  sqlite3_close(raw);
  TuningDatabase db = TuningDatabase::open(into.path);
  try {
    db.merge(other.path);
    FAIL() << "merged a negative time";
  } catch (const UserError& e) {
    EXPECT_TRUE(starts_with(e.what(), other.path + ": record 3: median_us -5")) << e.what();
  }
  EXPECT_EQ(db.stats().records, 10);
}

TEST(DatabaseBadFile, ForeignSqliteIsRefusedUnchanged) {
  TempDb tmp("foreign");
  sqlite3* raw = raw_open(tmp.path);
  raw_exec(raw, "CREATE TABLE foo(x); INSERT INTO foo VALUES (42)");
  sqlite3_close(raw);

  expect_refused_unchanged(tmp.path, "not a Tessera database");
  raw = raw_open(tmp.path);
  EXPECT_EQ(raw_int(raw, "SELECT x FROM foo"), 42);
  EXPECT_EQ(raw_int(raw, "SELECT count(*) FROM sqlite_master"), 1);
  EXPECT_EQ(raw_int(raw, "PRAGMA user_version"), 0);
  EXPECT_EQ(raw_int(raw, "PRAGMA application_id"), 0);
  sqlite3_close(raw);
}

TEST(DatabaseBadFile, WriteProtectedFileAllowsQueriesButNotCommits) {
  constexpr int64_t kRecords = 20;
  TempDb tmp("write_protected");
  create_db(tmp.path, kRecords);
  std::string before = read_bytes(tmp.path);

  OpenOptions options;
  if (geteuid() != 0) {
    fs::permissions(tmp.path, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  } else {
    // Root writes through chmod 0444; open the file read-only the way SQLite does for a
    // write-protected file, through a VFS shim.
    register_shims();
    options.vfs = kReadOnlyVfs;
  }
  {
    TuningDatabase db = TuningDatabase::open(tmp.path, options);
    EXPECT_EQ(db.query({}).size(), static_cast<size_t>(kRecords));
    EXPECT_EQ(db.stats().records, kRecords);
    try {
      db.commit(make_records("more", 0, 5));
      ADD_FAILURE() << "commit to a write-protected file succeeded";
    } catch (const DatabaseError& e) {
      EXPECT_TRUE(starts_with(e.what(), tmp.path)) << e.what();
      EXPECT_TRUE(contains(e.what(), "read-only")) << e.what();
    }
    EXPECT_EQ(db.stats().records, kRecords);
  }
  EXPECT_EQ(read_bytes(tmp.path), before);
  std::error_code ec;
  fs::permissions(tmp.path, fs::perms::owner_read | fs::perms::owner_write, ec);
  EXPECT_EQ(record_count(tmp.path), kRecords);
}

TEST(DatabaseBadFile, ReadOnlyOption) {
  TempDb missing("read_only_missing");
  OpenOptions ro;
  ro.read_only = true;
  std::string err = open_error(missing.path, ro);
  EXPECT_TRUE(starts_with(err, missing.path)) << err;
  EXPECT_TRUE(contains(err, "no such database")) << err;
  EXPECT_FALSE(fs::exists(missing.path)) << "a read-only open created the file";

  TempDb tmp("read_only_option");
  create_db(tmp.path, 7);
  std::string before = read_bytes(tmp.path);
  {
    TuningDatabase db = TuningDatabase::open(tmp.path, ro);
    EXPECT_EQ(db.stats().records, 7);
    EXPECT_THROW(db.commit(make_records("more", 0, 3)), DatabaseError);
    StoredModel m;
    m.kind = "xgb_rank";
    m.target = test_target();
    m.blob = "model";
    EXPECT_THROW(db.save_model(m), DatabaseError);
    EXPECT_EQ(db.stats().records, 7);
  }
  EXPECT_EQ(read_bytes(tmp.path), before);
  EXPECT_EQ(record_count(tmp.path), 7);
}

TEST(DatabaseReliability, FaultyVfsPassesThroughWhenDisarmed) {
  register_shims();
  disarm_fault();
  TempDb tmp("vfs_passthrough");
  OpenOptions faulty;
  faulty.vfs = kFaultyVfs;
  {
    TuningDatabase db = TuningDatabase::open(tmp.path, faulty);  // created through the shim
    EXPECT_EQ(db.commit(make_records("shim", 0, 300)).inserted, 300);
    EXPECT_EQ(db.stats().records, 300);
  }
  EXPECT_EQ(record_count(tmp.path), 300);
  OpenOptions unknown;
  unknown.vfs = "no-such-vfs";
  EXPECT_THROW(TuningDatabase::open(tmp.path, unknown), std::exception);
}

// budget: bytes written normally after arming before writes fail (0: the first write fails).
void disk_full_case(int64_t budget) {
  register_shims();
  constexpr int64_t kRecords = 100;
  TempDb tmp("disk_full_" + std::to_string(budget));
  create_db(tmp.path, kRecords);
  OpenOptions faulty;
  faulty.vfs = kFaultyVfs;
  {
    TuningDatabase db = TuningDatabase::open(tmp.path, faulty);
    ASSERT_EQ(db.stats().records, kRecords);
    arm_fault(budget);
    try {
      // A new workload and family too: rows of every table are rolled back.
      std::vector<Record> more = make_records("full", 0, 1000);
      for (size_t i = 0; i < more.size(); i += 2) more[i].workload = Workload::parse("softmax:rows=4096,cols=1024:f16");
      db.commit(more);
      ADD_FAILURE() << "commit succeeded on a full disk (writes refused: " << g_fault_hits.load() << ")";
    } catch (const DatabaseError& e) {
      EXPECT_TRUE(starts_with(e.what(), tmp.path)) << e.what();
      EXPECT_TRUE(contains(e.what(), "disk full")) << e.what();
    }
    disarm_fault();
    EXPECT_GT(g_fault_hits.load(), 0);
    if (budget > 0) {
      EXPECT_GT(g_fault_passed.load(), 0) << "the fault was meant to strike mid-commit";
    }
    EXPECT_EQ(db.stats().records, kRecords) << "the failed commit left records behind";
  }
  TuningDatabase db = TuningDatabase::open(tmp.path);
  Stats st = db.stats();
  EXPECT_EQ(st.records, kRecords);
  EXPECT_EQ(st.workloads, 1);
  EXPECT_EQ(db.check(), std::vector<std::string>{});
  RecordFilter f;
  f.family = "base";
  EXPECT_EQ(db.query(f).size(), static_cast<size_t>(kRecords));
}

TEST(DatabaseBadFile, DiskFullOnFirstWriteKeepsNothingOfTheCommit) { disk_full_case(0); }
TEST(DatabaseBadFile, DiskFullMidCommitKeepsNothingOfTheCommit) { disk_full_case(96 * 1024); }

TEST(DatabaseBadFile, ConnectionWorksAgainAfterDiskFull) {
  register_shims();
  TempDb tmp("disk_full_recover");
  create_db(tmp.path, 10);
  OpenOptions faulty;
  faulty.vfs = kFaultyVfs;
  Workload other = Workload::parse("softmax:rows=4096,cols=1024:f16");
  {
    TuningDatabase db = TuningDatabase::open(tmp.path, faulty);
    std::vector<Record> more = make_records("retry", 0, 200);
    for (Record& r : more) r.workload = other;  // its workload row is created, then rolled back
    arm_fault(0);
    EXPECT_THROW(db.commit(more), DatabaseError);
    disarm_fault();
    // The same connection, the same records: they go in, referring to a live workload row.
    CommitResult r = db.commit(more);
    EXPECT_EQ(r.inserted, 200);
    EXPECT_EQ(r.duplicates, 0);
    EXPECT_EQ(db.check(), std::vector<std::string>{});
  }
  TuningDatabase db = TuningDatabase::open(tmp.path);
  EXPECT_EQ(db.stats().records, 210);
  EXPECT_EQ(db.stats().workloads, 2);
  EXPECT_EQ(db.check(), std::vector<std::string>{});
  RecordFilter f;
  f.workload_key = other.key();
  EXPECT_EQ(db.query(f).size(), 200u);
}

// ---------------------------------------------------------------------------------------
// 4. Migrations

// A value for one column of a hand-written row.
struct Blob {
  std::string bytes;
};
using Value = std::variant<int64_t, double, std::string, Blob, std::nullptr_t>;

// INSERTs one row into `table` with raw SQLite, naming the columns the table really has
// (PRAGMA table_info): every column must have a value in `values` (else the test fails,
// naming it); values for columns the table lacks are skipped.
void raw_insert(sqlite3* db, const std::string& table, const std::map<std::string, Value>& values) {
  std::vector<std::string> columns;
  {
    sqlite3_stmt* info = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, ("PRAGMA table_info(" + table + ")").c_str(), -1, &info, nullptr), SQLITE_OK);
    while (sqlite3_step(info) == SQLITE_ROW) columns.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info, 1)));
    sqlite3_finalize(info);
  }
  ASSERT_FALSE(columns.empty()) << "no table " << table;
  std::string names, params;
  for (size_t i = 0; i < columns.size(); ++i) {
    ASSERT_TRUE(values.count(columns[i])) << "the test has no value for " << table << "." << columns[i]
                                          << " of the version-1 schema";
    names += (i ? ", " : "") + columns[i];
    params += (i ? ", ?" : "?") + std::to_string(i + 1);
  }
  std::string sql = "INSERT INTO " + table + "(" + names + ") VALUES (" + params + ")";
  sqlite3_stmt* ins = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &ins, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
  for (size_t i = 0; i < columns.size(); ++i) {
    int idx = static_cast<int>(i + 1);
    const Value& v = values.at(columns[i]);
    if (auto* n = std::get_if<int64_t>(&v)) sqlite3_bind_int64(ins, idx, *n);
    else if (auto* d = std::get_if<double>(&v)) sqlite3_bind_double(ins, idx, *d);
    else if (auto* t = std::get_if<std::string>(&v))
      sqlite3_bind_text(ins, idx, t->data(), static_cast<int>(t->size()), SQLITE_TRANSIENT);
    else if (auto* b = std::get_if<Blob>(&v))
      sqlite3_bind_blob(ins, idx, b->bytes.data(), static_cast<int>(b->bytes.size()), SQLITE_TRANSIENT);
    else sqlite3_bind_null(ins, idx);
  }
  int rc = sqlite3_step(ins);
  std::string message = sqlite3_errmsg(db);
  sqlite3_finalize(ins);
  ASSERT_EQ(rc, SQLITE_DONE) << sql << ": " << message;
}

TEST(DatabaseMigration, VersionOneFileIsMigratedForward) {
  ASSERT_GE(schema_migrations().size(), 2u);
  ASSERT_EQ(schema_migrations()[0].from_version, 0);
  TempDb tmp("migrate_v1");
  Workload w = Workload::parse("matmul:m=512,n=256,k=128:f16:epilogue=bias");
  Target t = test_target();
  Schedule s{"gemm_tc", {{"bm", 128}, {"bn", 64}, {"bk", 32}, {"stages", 3}}};
  const std::vector<double> samples{1.0, 2.0};

  sqlite3* raw = raw_open(tmp.path);
  raw_exec(raw, schema_migrations()[0].sql);
  raw_exec(raw, "PRAGMA application_id = " + std::to_string(TuningDatabase::kApplicationId) +
                    "; PRAGMA user_version = 1");
  raw_insert(raw, "targets",
             {{"id", int64_t{1}}, {"fingerprint", t.fingerprint()}, {"gpu_name", t.gpu_name},
              {"spec_name", t.spec_name}, {"cc_major", int64_t{t.cc_major}}, {"cc_minor", int64_t{t.cc_minor}},
              {"sm_count", int64_t{t.sm_count}}, {"driver_version", t.driver_version},
              {"runtime_version", t.runtime_version}, {"toolkit_version", t.toolkit_version}});
  raw_insert(raw, "workloads",
             {{"id", int64_t{1}}, {"key", w.key()}, {"hash", static_cast<int64_t>(w.hash())},
              {"kind", std::string(op_kind_name(w.kind))}, {"json", w.to_json().dump()}});
  raw_insert(raw, "records",
             {{"id", int64_t{1}}, {"uid", int64_t{0x7e55e4a}}, {"workload_id", int64_t{1}}, {"target_id", int64_t{1}},
              {"family", s.family}, {"schedule_key", s.key()}, {"schedule_json", s.to_json().dump()},
              {"status", std::string("ok")}, {"median_us", 1.5}, {"min_us", 1.0}, {"max_us", 2.0},
              {"spread", 0.6}, {"repeats", int64_t{2}},
              // the samples, in whichever form the version-1 schema keeps them
              {"samples_json", std::string("[1.0,2.0]")},
              {"samples", Blob{std::string(reinterpret_cast<const char*>(samples.data()), samples.size() * sizeof(double))}},
              {"registers", int64_t{168}}, {"smem_bytes", int64_t{98304}}, {"spill_bytes", int64_t{0}},
              {"predicted_us", 1.75}, {"vendor_us", 1.25}, {"error", std::string()},
              {"feature_version", int64_t{1}}, {"tool_version", std::string("0.0.1")},
              {"timestamp_s", int64_t{1700000000}}});
  EXPECT_EQ(raw_int(raw, "SELECT count(*) FROM sqlite_master WHERE name = 'models'"), 0);
  sqlite3_close(raw);

  {
    TuningDatabase db = TuningDatabase::open(tmp.path);
    Stats st = db.stats();
    EXPECT_EQ(st.schema_version, TuningDatabase::kSchemaVersion);
    EXPECT_EQ(st.records, 1);
    EXPECT_EQ(st.models, 0);
    EXPECT_EQ(st.graphs, 0);
    RecordFilter f;
    f.workload_key = w.key();
    std::vector<StoredRecord> recs = db.query(f);
    ASSERT_EQ(recs.size(), 1u);
    const Record& r = recs[0].record;
    EXPECT_FALSE(r.measurement.noisy);  // columns added by the version-3 migration
    EXPECT_EQ(r.measurement.conditions, Json::object());
    EXPECT_EQ(recs[0].id, 1);
    EXPECT_EQ(r.workload, w);
    EXPECT_EQ(r.target, t);
    EXPECT_EQ(r.schedule, s);
    EXPECT_EQ(r.measurement.status, Status::kOk);
    EXPECT_EQ(r.measurement.times_us, (std::vector<double>{1.0, 2.0}));
    EXPECT_DOUBLE_EQ(r.measurement.median_us, 1.5);
    EXPECT_DOUBLE_EQ(r.measurement.min_us, 1.0);
    EXPECT_DOUBLE_EQ(r.measurement.max_us, 2.0);
    EXPECT_EQ(r.measurement.registers, 168);
    EXPECT_EQ(r.measurement.smem_bytes, 98304);
    EXPECT_EQ(r.measurement.vendor_us, std::optional<double>(1.25));
    EXPECT_EQ(r.predicted_us, std::optional<double>(1.75));
    EXPECT_EQ(r.feature_version, 1);
    EXPECT_EQ(r.tool_version, "0.0.1");
    EXPECT_EQ(r.timestamp_s, 1700000000);
    BestResult best = db.best(w, t, 3);
    ASSERT_EQ(best.records.size(), 1u);
    EXPECT_EQ(best.records[0].id, 1);

    StoredModel m;
    m.kind = "xgb_rank";
    m.target = t;
    m.feature_version = 1;
    m.tool_version = "0.1.0";
    m.created_s = 1795000000;
    m.metrics_json = "{}";
    m.blob = std::string("\0model\xff", 7);
    int64_t id = db.save_model(m);
    EXPECT_GT(id, 0);
    std::optional<StoredModel> latest = db.latest_model("xgb_rank", t.fingerprint(), 1);
    ASSERT_TRUE(latest.has_value());
    EXPECT_EQ(latest->blob, m.blob);
    EXPECT_EQ(db.stats().targets, 1);  // the model refers to the migrated target row
    EXPECT_EQ(db.commit(make_records("after", 0, 5)).inserted, 5);
    EXPECT_EQ(db.check(), std::vector<std::string>{});
  }
  // Reopening a migrated file migrates nothing more.
  TuningDatabase db = TuningDatabase::open(tmp.path);
  Stats st = db.stats();
  EXPECT_EQ(st.schema_version, TuningDatabase::kSchemaVersion);
  EXPECT_EQ(st.records, 6);
  EXPECT_EQ(st.models, 1);
  raw = raw_open(tmp.path);
  EXPECT_EQ(raw_int(raw, "PRAGMA application_id"), TuningDatabase::kApplicationId);
  sqlite3_close(raw);
}

}  // namespace
}  // namespace tessera::db
