// Reliability tests of the tuning database: bad files (not SQLite, truncated, newer schema,
// foreign, read-only, disk full through an injected VFS fault) and an open interleaved with
// another connection creating the file, through VFS shims. Concurrent writers and SIGKILL are
// in database_concurrency_test.cc, migrations in database_migration_test.cc.
#include <gtest/gtest.h>

#include "tests/db/reliability_util.h"

namespace tessera::db {
namespace {

using namespace reliability;

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

}  // namespace
}  // namespace tessera::db
