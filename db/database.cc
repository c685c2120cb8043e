#include "db/database.h"

#include <sqlite3.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>
#include <utility>

#include "core/hash.h"
#include "db/sqlite.h"

namespace tessera::db {
namespace {

// Schema history. Never edit a shipped migration: add the next one.
constexpr Migration kMigrations[] = {
    {0, "targets, workloads and records",
     R"sql(
CREATE TABLE targets(
  id INTEGER PRIMARY KEY,
  fingerprint TEXT NOT NULL UNIQUE,
  gpu_name TEXT NOT NULL,
  spec_name TEXT NOT NULL,
  cc_major INTEGER NOT NULL,
  cc_minor INTEGER NOT NULL,
  sm_count INTEGER NOT NULL,
  driver_version TEXT NOT NULL,
  runtime_version TEXT NOT NULL,
  toolkit_version TEXT NOT NULL);
CREATE TABLE workloads(
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  hash INTEGER NOT NULL,
  kind TEXT NOT NULL,
  json TEXT NOT NULL);
CREATE TABLE records(
  id INTEGER PRIMARY KEY,
  uid INTEGER NOT NULL,
  workload_id INTEGER NOT NULL REFERENCES workloads(id),
  target_id INTEGER NOT NULL REFERENCES targets(id),
  family TEXT NOT NULL,
  schedule_json TEXT NOT NULL,
  status TEXT NOT NULL,
  median_us REAL NOT NULL,
  min_us REAL NOT NULL,
  max_us REAL NOT NULL,
  spread REAL NOT NULL,
  repeats INTEGER NOT NULL,
  samples BLOB NOT NULL,
  registers INTEGER NOT NULL,
  smem_bytes INTEGER NOT NULL,
  spill_bytes INTEGER NOT NULL,
  predicted_us REAL,
  vendor_us REAL,
  error TEXT NOT NULL,
  feature_version INTEGER NOT NULL,
  tool_version TEXT NOT NULL,
  timestamp_s INTEGER NOT NULL);
CREATE INDEX records_best ON records(workload_id, target_id, status, median_us, uid);
)sql"},
    {1, "learned models and graph-search results",
     R"sql(
CREATE TABLE models(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  target_id INTEGER NOT NULL REFERENCES targets(id),
  feature_version INTEGER NOT NULL,
  tool_version TEXT NOT NULL,
  created_s INTEGER NOT NULL,
  metrics_json TEXT NOT NULL,
  blob BLOB NOT NULL);
CREATE INDEX models_lookup ON models(kind, target_id, feature_version, created_s);
CREATE TABLE graphs(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  model_key TEXT NOT NULL,
  target_id INTEGER NOT NULL REFERENCES targets(id),
  original_cost_us REAL NOT NULL,
  optimized_cost_us REAL NOT NULL,
  rewrites_json TEXT NOT NULL,
  graph BLOB NOT NULL,
  tool_version TEXT NOT NULL,
  created_s INTEGER NOT NULL);
CREATE INDEX graphs_model ON graphs(model_key);
)sql"},
    {2, "measurement conditions (noisy flag; clocks, throttling, vendor algorithm)",
     R"sql(
ALTER TABLE records ADD COLUMN noisy INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN conditions_json TEXT NOT NULL DEFAULT '{}';
)sql"},
    {3, "measured whole-graph runs (graph run)",
     R"sql(
CREATE TABLE graph_runs(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,
  model_key TEXT NOT NULL,
  target_id INTEGER NOT NULL REFERENCES targets(id),
  graph TEXT NOT NULL,
  kernels TEXT NOT NULL,
  dtype TEXT NOT NULL,
  median_us REAL NOT NULL,
  flushed_median_us REAL NOT NULL,
  predicted_us REAL NOT NULL,
  check_error REAL,
  result_json TEXT NOT NULL,
  tool_version TEXT NOT NULL,
  created_s INTEGER NOT NULL);
CREATE INDEX graph_runs_model ON graph_runs(model_key);
)sql"},
};
static_assert(std::size(kMigrations) == TuningDatabase::kSchemaVersion);

constexpr const char* kRecordColumns =
    "r.id, w.json, t.gpu_name, t.spec_name, t.cc_major, t.cc_minor, t.sm_count, t.driver_version, "
    "t.runtime_version, t.toolkit_version, r.schedule_json, r.status, r.median_us, r.min_us, r.max_us, "
    "r.spread, r.samples, r.registers, r.smem_bytes, r.spill_bytes, r.predicted_us, r.vendor_us, r.error, "
    "r.feature_version, r.tool_version, r.timestamp_s, r.noisy, r.conditions_json "
    "FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = r.target_id";

// Environmental SQLite failures become DatabaseError naming the file; anything else (a
// bug such as malformed SQL) stays an ApiError.
DatabaseError as_database_error(const std::string& path, const SqliteError& e) {
  switch (e.primary_code()) {
    case SQLITE_NOTADB: return DatabaseError(path + ": not an SQLite database (" + e.message() + ")");
    case SQLITE_CORRUPT: return DatabaseError(path + ": the file is damaged (" + e.message() + ")");
    case SQLITE_FULL: return DatabaseError(path + ": disk full (" + e.message() + "); nothing of this change was kept");
    case SQLITE_READONLY: return DatabaseError(path + ": the file is read-only (" + e.message() + ")");
    case SQLITE_CANTOPEN: return DatabaseError(path + ": cannot open the file (" + e.message() + ")");
    case SQLITE_IOERR: return DatabaseError(path + ": I/O error (" + e.message() + ")");
    case SQLITE_PERM: return DatabaseError(path + ": permission denied (" + e.message() + ")");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return DatabaseError(path + ": still locked by another process after the busy timeout (" + e.message() + ")");
    default: throw e;
  }
}

template <typename F>
auto guarded(const std::string& path, F&& f) {
  try {
    return f();
  } catch (const SqliteError& e) {
    throw as_database_error(path, e);
  }
}

// A write transaction takes the write lock up front (BEGIN IMMEDIATE), so concurrent writers
// wait in the busy handler instead of failing on a lock upgrade; a read transaction gives
// its reads one consistent snapshot. Rolls back unless committed.
class Transaction {
 public:
  enum Kind { kRead, kWrite };
  explicit Transaction(sqlite3* db, Kind kind = kWrite) : db_(db) {
    exec(db_, kind == kWrite ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec(db_, "COMMIT");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

int64_t pragma_int(sqlite3* db, const char* name) {
  Statement s(db, std::string("PRAGMA ") + name);
  return s.step() ? s.int64(0) : 0;
}


Target target_from_columns(const Statement& s, int first) {
  Target t;
  t.gpu_name = s.text(first);
  t.spec_name = s.text(first + 1);
  t.cc_major = static_cast<int>(s.int64(first + 2));
  t.cc_minor = static_cast<int>(s.int64(first + 3));
  t.sm_count = static_cast<int>(s.int64(first + 4));
  t.driver_version = s.text(first + 5);
  t.runtime_version = s.text(first + 6);
  t.toolkit_version = s.text(first + 7);
  return t;
}

// The id of `table`'s row with `uid` (an insert's, done or skipped as a duplicate).
int64_t id_of_uid(sqlite3* db, std::string_view table, const std::string& uid, std::string_view what) {
  Statement sel(db, "SELECT id FROM " + std::string(table) + " WHERE uid = ?1");
  sel.bind(1, uid);
  TESSERA_CHECK(sel.step(), std::string(what) + " row missing after insert");
  return sel.int64(0);
}

// The columns target_from_columns reads, of the targets table joined as t.
constexpr std::string_view kTargetColumns =
    "t.gpu_name, t.spec_name, t.cc_major, t.cc_minor, t.sm_count, t.driver_version, t.runtime_version, "
    "t.toolkit_version";

}  // namespace

std::span<const Migration> schema_migrations() { return kMigrations; }

TuningDatabase::TuningDatabase(std::string path, sqlite3* db, bool read_only)
    : path_(std::move(path)), db_(db), read_only_(read_only) {}

TuningDatabase::TuningDatabase(TuningDatabase&& o) noexcept
    : path_(std::move(o.path_)),
      db_(std::exchange(o.db_, nullptr)),
      read_only_(o.read_only_),
      target_ids_(std::move(o.target_ids_)),
      workload_ids_(std::move(o.workload_ids_)),
      statements_(std::move(o.statements_)),
      decode_cache_(std::move(o.decode_cache_)) {}

TuningDatabase& TuningDatabase::operator=(TuningDatabase&& o) noexcept {
  if (this != &o) {
    close();
    path_ = std::move(o.path_);
    db_ = std::exchange(o.db_, nullptr);
    read_only_ = o.read_only_;
    target_ids_ = std::move(o.target_ids_);
    workload_ids_ = std::move(o.workload_ids_);
    statements_ = std::move(o.statements_);
    decode_cache_ = std::move(o.decode_cache_);
  }
  return *this;
}

TuningDatabase::~TuningDatabase() { close(); }

void TuningDatabase::close() {
  statements_.clear();  // statements must be finalized before the connection closes
  sqlite3_close(db_);
  db_ = nullptr;
}

Statement& TuningDatabase::prepared(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) it = statements_.emplace(sql, std::make_unique<Statement>(db_, sql)).first;
  return *it->second;
}

TuningDatabase TuningDatabase::open(const std::string& path, const OpenOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  bool exists = fs::exists(path, ec);
  if (exists && fs::is_directory(path, ec)) throw DatabaseError(path + ": is a directory, not a database file");
  if (!exists && options.read_only) throw DatabaseError(path + ": no such database");
  // A reader of a WAL database needs its shared-memory file, which SQLite creates beside it:
  // where the directory is not writable and none exists, the file is read as immutable (a
  // snapshot of the main file: a WAL left there by a writer that crashed is not read).
  std::string name = path;
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (options.read_only) {
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty()) dir = ".";
    if (::access(dir.c_str(), W_OK) != 0 && !fs::exists(path + "-shm", ec)) {
      std::string uri = "file:";
      for (unsigned char c : fs::absolute(path, ec).string()) {
        if (std::isalnum(c) || c == '/' || c == '.' || c == '-' || c == '_') {
          uri += static_cast<char>(c);
        } else {
          char buf[4];
          std::snprintf(buf, sizeof buf, "%%%02X", c);
          uri += buf;
        }
      }
      name = uri + "?immutable=1";
      flags |= SQLITE_OPEN_URI;
    }
  }
  return guarded(path, [&] {
    sqlite3* raw = nullptr;
    int rc = sqlite3_open_v2(name.c_str(), &raw, flags, options.vfs.empty() ? nullptr : options.vfs.c_str());
    TuningDatabase db(path, raw, options.read_only);  // closes `raw` if anything below throws
    if (rc != SQLITE_OK) detail::throw_sqlite_error(raw, rc, "sqlite3_open_v2(path)", __FILE__, __LINE__);
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, options.busy_timeout_ms);
    // SQLite opens a write-protected file read-only without complaint; remember it.
    if (sqlite3_db_readonly(raw, "main") == 1) db.read_only_ = true;
    exec(raw, "PRAGMA foreign_keys = ON");

    // Everything is checked before anything is written. Reading the header is where a
    // file that is not SQLite fails (SQLITE_NOTADB). The three reads share one snapshot, so
    // a process creating the file meanwhile is seen either before or after, never halfway.
    int64_t version = 0, app_id = 0, objects = 0;
    {
      Transaction snapshot(raw, Transaction::kRead);
      version = pragma_int(raw, "user_version");
      app_id = pragma_int(raw, "application_id");
      Statement s(raw, "SELECT count(*) FROM sqlite_master");
      s.step();
      objects = s.int64(0);
      s.reset();
      snapshot.commit();
    }
    bool empty = objects == 0 && version == 0 && app_id == 0;
    if (!empty && app_id != kApplicationId)
      throw DatabaseError(path + ": not a Tessera database (SQLite application_id " + std::to_string(app_id) +
                          ", " + std::to_string(objects) + " schema objects); nothing was changed");
    if (version > kSchemaVersion)
      throw DatabaseError(path + ": schema version " + std::to_string(version) +
                          " is newer than this tessera supports (" + std::to_string(kSchemaVersion) +
                          "); use a newer tessera. Nothing was changed");
    if (version < kSchemaVersion) {
      if (db.read_only_)
        throw DatabaseError(path + (empty ? ": empty file, not a Tessera database"
                                          : ": schema version " + std::to_string(version) +
                                                " must be migrated to " + std::to_string(kSchemaVersion) +
                                                ", which needs write access"));
      Transaction txn(raw);
      // Another process may have created or migrated the file while we waited for the lock.
      version = pragma_int(raw, "user_version");
      try {
        for (const Migration& m : kMigrations)
          if (m.from_version >= version) exec(raw, m.sql);
      } catch (const SqliteError& e) {
        if (e.primary_code() != SQLITE_ERROR) throw;
        // Its tables do not match its schema version (e.g. a user_version set by hand).
        throw DatabaseError(path + ": schema version " + std::to_string(version) + " cannot be migrated to " +
                            std::to_string(kSchemaVersion) + " (" + one_line(e.message(), 200) +
                            "): the file is damaged or not Tessera's; nothing was changed");
      }
      exec(raw, "PRAGMA application_id = " + std::to_string(kApplicationId) +
                    "; PRAGMA user_version = " + std::to_string(kSchemaVersion));
      txn.commit();
    }
    {
      // A current schema has every table; one dropped by hand would otherwise surface as an
      // SQL error deep inside a query.
      std::string missing;
      for (const char* table : {"targets", "workloads", "records", "models", "graphs", "graph_runs"}) {
        Statement t(raw, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1");
        t.bind(1, std::string(table));
        if (t.step() && t.int64(0) == 0) missing += (missing.empty() ? "" : ", ") + std::string(table);
      }
      if (!missing.empty())
        throw DatabaseError(path + ": a damaged Tessera database (schema version " + std::to_string(kSchemaVersion) +
                            " without the tables " + missing + "); nothing was changed");
    }
    if (!db.read_only_) {
      // Switching to WAL needs an exclusive lock, and SQLite reports a busy file at once here
      // instead of calling the busy handler: retry until the busy timeout.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
      while (true) {
        Statement mode(raw, "PRAGMA journal_mode = WAL");  // answers the mode in force afterwards
        try {
          std::string now = mode.step() ? mode.text(0) : "";
          if (now == "wal") break;
          // Not busy, yet not WAL: this file system (or VFS) cannot do WAL at all.
          throw DatabaseError(path + ": cannot use WAL mode here (journal mode stays '" + now +
                              "'); Tessera needs it for concurrent writers");
        } catch (const SqliteError& e) {
          if (e.primary_code() != SQLITE_BUSY) throw;
        }
        if (std::chrono::steady_clock::now() > deadline)
          throw DatabaseError(path + ": could not switch to WAL mode: another process kept the file locked past the "
                                     "busy timeout");
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      // In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits.
      exec(raw, "PRAGMA synchronous = NORMAL");
      // Checkpoint every 64 MiB of WAL rather than every 4 MiB: a 10,000-record commit then
      // does not trigger a checkpoint of its own (db_bench at 1M records: 52k -> 65-70k records/s).
      exec(raw, "PRAGMA wal_autocheckpoint = 16384");
    }
    exec(raw, "PRAGMA cache_size = -131072");  // 128 MiB of page cache: index inserts stay in memory
    return db;
  });
}

void TuningDatabase::require_writable() {
  if (read_only_) throw DatabaseError(path_ + ": opened read-only (or the file is write-protected); nothing was written");
  if (checked_for_writes_) return;
  // A damaged file takes no new writes (they could land in corrupt pages or be lost with
  // them); quick_check reads every page once, linear in the file.
  Statement check(db_, "PRAGMA quick_check(1)");
  std::string verdict = check.step() ? check.text(0) : "no answer";
  if (verdict != "ok")
    throw DatabaseError(path_ + ": the file is damaged (" + one_line(verdict, 200) +
                        "); nothing was written ('tessera db check' lists the problems)");
  checked_for_writes_ = true;
}

int64_t TuningDatabase::target_id(const Target& t, const std::string& fp) {
  if (auto it = target_ids_.find(fp); it != target_ids_.end()) return it->second;
  Statement& ins = prepared(
      "INSERT INTO targets(fingerprint, gpu_name, spec_name, cc_major, cc_minor, sm_count, "
      "driver_version, runtime_version, toolkit_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
      "ON CONFLICT(fingerprint) DO NOTHING");
  ResetOnExit ins_done(ins);
  ins.bind(1, fp).bind(2, t.gpu_name).bind(3, t.spec_name).bind(4, int64_t{t.cc_major}).bind(5, int64_t{t.cc_minor});
  ins.bind(6, int64_t{t.sm_count}).bind(7, t.driver_version).bind(8, t.runtime_version).bind(9, t.toolkit_version);
  ins.step();
  Statement& sel = prepared("SELECT id FROM targets WHERE fingerprint = ?1");
  ResetOnExit sel_done(sel);
  sel.bind(1, fp);
  TESSERA_CHECK(sel.step(), "target row missing after insert");
  return target_ids_[fp] = sel.int64(0);
}

int64_t TuningDatabase::workload_id(const Workload& w, const std::string& key) {
  if (auto it = workload_ids_.find(key); it != workload_ids_.end()) return it->second;
  Statement& ins = prepared("INSERT INTO workloads(key, hash, kind, json) VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO NOTHING");
  ResetOnExit ins_done(ins);
  ins.bind(1, key).bind(2, static_cast<int64_t>(w.hash())).bind(3, op_kind_name(w.kind)).bind(4, w.to_json().dump());
  ins.step();
  Statement& sel = prepared("SELECT id FROM workloads WHERE key = ?1");
  ResetOnExit sel_done(sel);
  sel.bind(1, key);
  TESSERA_CHECK(sel.step(), "workload row missing after insert");
  return workload_ids_[key] = sel.int64(0);
}

namespace {

// Decodes a row selected with kRecordColumns; a row that does not decode is a damaged file.
StoredRecord decode_record(const Statement& s, const std::string& path, DecodeCache& cache) {
  StoredRecord out;
  out.id = s.int64(0);
  std::string what = path + ": record " + std::to_string(out.id);
  try {
    Record& r = out.record;
    std::string workload_json = s.text(1);
    auto it = cache.workloads.find(workload_json);
    if (it == cache.workloads.end())
      it = cache.workloads.emplace(workload_json, Workload::from_json(parse_json(workload_json, what))).first;
    r.workload = it->second;
    r.target = target_from_columns(s, 2);
    std::string schedule_json = s.text(10);
    auto sit = cache.schedules.find(schedule_json);
    if (sit == cache.schedules.end())
      sit = cache.schedules.emplace(schedule_json, Schedule::from_json(parse_json(schedule_json, what), what)).first;
    r.schedule = sit->second;
    Measurement& m = r.measurement;
    m.status = parse_status(s.text(11), what);
    m.median_us = s.real(12);
    m.min_us = s.real(13);
    m.max_us = s.real(14);
    m.spread = s.real(15);
    std::string samples = s.blob(16);
    if (samples.size() % sizeof(double) != 0) throw UserError(what + ": samples blob has a partial value");
    m.times_us.resize(samples.size() / sizeof(double));
    if (!samples.empty()) std::memcpy(m.times_us.data(), samples.data(), samples.size());
    m.registers = static_cast<int>(s.int64(17));
    m.smem_bytes = s.int64(18);
    m.spill_bytes = s.int64(19);
    r.predicted_us = s.optional_real(20);
    m.vendor_us = s.optional_real(21);
    m.error = s.text(22);
    r.feature_version = static_cast<int>(s.int64(23));
    r.tool_version = s.text(24);
    r.timestamp_s = s.int64(25);
    m.noisy = s.int64(26) != 0;
    m.conditions = parse_json(s.text(27), what);
    if (!m.conditions.is_object()) throw UserError(what + ": conditions_json is not a JSON object");
  } catch (const UserError& e) {
    std::string msg = e.what();
    throw DatabaseError(msg.rfind(what, 0) == 0 ? msg : what + ": " + msg);
  } catch (const Json::exception& e) {
    throw DatabaseError(what + ": " + e.what());
  }
  return out;
}
}  // namespace

// Workloads and schedules already decoded, by their stored JSON: rows share few of them, and
// parsing and validating JSON costs more than reading a row. Bounded so that a long scan
// cannot grow it without end.
DecodeCache& TuningDatabase::decode_cache() {
  if (decode_cache_.workloads.size() + decode_cache_.schedules.size() > 16384) decode_cache_ = {};
  return decode_cache_;
}

CommitResult TuningDatabase::commit(std::span<const Record> records) {
  return guarded(path_, [&] {
    require_writable();
    CommitResult result;
    if (records.empty()) return result;
    try {
      Transaction txn(db_);
      Statement ins(db_,
                    "INSERT INTO records(uid, workload_id, target_id, family, schedule_json, "
                    "status, median_us, min_us, max_us, spread, repeats, samples, registers, smem_bytes, "
                    "spill_bytes, predicted_us, vendor_us, error, feature_version, tool_version, timestamp_s, noisy, "
                    "conditions_json) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, "
                    "?20, ?21, ?22, ?23)");
      // Identical records share workload, target, status and median, so the duplicate check
      // is a lookup in records_best; a separate unique index on the (random) content hash
      // would cost a random page write per insert.
      Statement& seen = prepared(
          "SELECT 1 FROM records WHERE workload_id = ?1 AND target_id = ?2 AND status = ?3 AND median_us = ?4 "
          "AND uid = ?5 LIMIT 1");
      // Within one commit, a schedule's JSON is serialised once.
      std::map<std::string, std::string, std::less<>> schedule_json;
      // Records of one batch usually share their target (and often their workload): reuse
      // the previous record's fingerprint and key when equal.
      const Record* prev = nullptr;
      std::string wkey, fp;
      for (const Record& r : records) {
        const Measurement& m = r.measurement;
        if (!prev || !(r.workload == prev->workload)) wkey = r.workload.key();
        if (!prev || !(r.target == prev->target)) fp = r.target.fingerprint();
        prev = &r;
        int64_t wid = workload_id(r.workload, wkey), tid = target_id(r.target, fp);
        std::string schedule_key = r.schedule.key();
        auto sj = schedule_json.find(schedule_key);
        if (sj == schedule_json.end()) sj = schedule_json.emplace(schedule_key, r.schedule.to_json().dump()).first;
        std::string_view samples(reinterpret_cast<const char*>(m.times_us.data()), m.times_us.size() * sizeof(double));
        // A record's identity is all of its content: strings separated by NULs, then the
        // numbers' bytes (exact, and cheaper than printing them).
        std::string conditions = m.conditions.dump();
        std::string identity;
        identity.reserve(256 + samples.size() + m.error.size() + conditions.size());
        for (std::string_view part : {std::string_view(wkey), std::string_view(fp), std::string_view(schedule_key),
                                      status_name(m.status), std::string_view(m.error),
                                      std::string_view(r.tool_version), samples, std::string_view(conditions)}) {
          identity.append(part);
          identity.push_back('\0');
        }
        auto raw = [&](const auto& v) { identity.append(reinterpret_cast<const char*>(&v), sizeof v); };
        for (double v : {m.median_us, m.min_us, m.max_us, m.spread, r.predicted_us.value_or(-1.0),
                         m.vendor_us.value_or(-1.0)})
          raw(v);
        for (int64_t v : {int64_t{m.registers}, m.smem_bytes, m.spill_bytes, int64_t{r.feature_version},
                          r.timestamp_s, int64_t{r.predicted_us.has_value()}, int64_t{m.vendor_us.has_value()},
                          int64_t{m.noisy}})
          raw(v);
        auto uid = static_cast<int64_t>(stable_hash(identity));
        {
          ResetOnExit done(seen);
          seen.bind(1, wid).bind(2, tid).bind(3, status_name(m.status)).bind(4, m.median_us).bind(5, uid);
          if (seen.step()) {
            ++result.duplicates;
            continue;
          }
        }
        ins.bind(1, uid).bind(2, wid).bind(3, tid).bind(4, r.schedule.family).bind(5, sj->second);
        ins.bind(6, status_name(m.status)).bind(7, m.median_us).bind(8, m.min_us).bind(9, m.max_us);
        ins.bind(10, m.spread).bind(11, static_cast<int64_t>(m.times_us.size()));
        ins.bind_blob(12, samples).bind(13, int64_t{m.registers}).bind(14, m.smem_bytes);
        ins.bind(15, m.spill_bytes).bind(16, r.predicted_us).bind(17, m.vendor_us).bind(18, m.error);
        ins.bind(19, int64_t{r.feature_version}).bind(20, r.tool_version).bind(21, r.timestamp_s);
        ins.bind(22, int64_t{m.noisy}).bind(23, conditions);
        ins.step();
        ins.reset();
        ++result.inserted;
      }
      txn.commit();
    } catch (...) {
      // Ids of rows that were rolled back must not be reused.
      target_ids_.clear();
      workload_ids_.clear();
      throw;
    }
    return result;
  });
}

BestResult TuningDatabase::best(const Workload& w, const Target& target, int k, bool same_arch_fallback) {
  return guarded(path_, [&] {
    BestResult result;
    auto fetch = [&](const std::string& where, auto bind) {
      Statement& s = prepared(std::string("SELECT ") + kRecordColumns + " WHERE w.key = ?1 AND " + where +
                              " AND r.status = 'ok' ORDER BY r.median_us, r.id");
      ResetOnExit done(s);
      s.bind(1, w.key());
      bind(s);
      // A schedule measured several times counts once, at its fastest median.
      std::set<std::string> seen;
      while (static_cast<int>(result.records.size()) < k && s.step()) {
        StoredRecord rec = decode_record(s, path_, decode_cache());
        if (seen.insert(rec.record.schedule.key()).second) result.records.push_back(std::move(rec));
      }
    };
    fetch("t.fingerprint = ?2", [&](Statement& s) { s.bind(2, target.fingerprint()); });
    if (result.records.empty() && same_arch_fallback) {
      result.exact_target = false;
      fetch("t.cc_major = ?2 AND t.cc_minor = ?3", [&](Statement& s) {
        s.bind(2, int64_t{target.cc_major}).bind(3, int64_t{target.cc_minor});
      });
    }
    return result;
  });
}

std::vector<StoredRecord> TuningDatabase::query(const RecordFilter& f) {
  return guarded(path_, [&] {
    std::string sql = std::string("SELECT ") + kRecordColumns + " WHERE r.id > ?1";
    if (f.workload_key) sql += " AND w.key = ?2";
    if (f.kind) sql += " AND w.kind = ?3";
    if (f.target_fingerprint) sql += " AND t.fingerprint = ?4";
    if (f.family) sql += " AND r.family = ?5";
    if (f.status) sql += " AND r.status = ?6";
    sql += f.newest_first ? " ORDER BY r.id DESC" : " ORDER BY r.id";
    if (f.limit > 0) sql += " LIMIT ?7";
    Statement s(db_, sql);
    s.bind(1, f.after_id);
    if (f.workload_key) s.bind(2, *f.workload_key);
    if (f.kind) s.bind(3, *f.kind);
    if (f.target_fingerprint) s.bind(4, *f.target_fingerprint);
    if (f.family) s.bind(5, *f.family);
    if (f.status) s.bind(6, status_name(*f.status));
    if (f.limit > 0) s.bind(7, f.limit);
    std::vector<StoredRecord> out;
    while (s.step()) out.push_back(decode_record(s, path_, decode_cache()));
    return out;
  });
}

std::optional<StoredRecord> TuningDatabase::get(int64_t id) {
  return guarded(path_, [&]() -> std::optional<StoredRecord> {
    Statement& s = prepared(std::string("SELECT ") + kRecordColumns + " WHERE r.id = ?1");
    ResetOnExit done(s);
    s.bind(1, id);
    if (!s.step()) return std::nullopt;
    return decode_record(s, path_, decode_cache());
  });
}

std::vector<HistoryEntry> TuningDatabase::history(const Workload& w, const std::optional<Target>& target) {
  RecordFilter f;
  f.workload_key = w.key();
  if (target) f.target_fingerprint = target->fingerprint();
  std::vector<HistoryEntry> out;
  std::optional<double> best;
  for (StoredRecord& rec : query(f)) {
    const Measurement& m = rec.record.measurement;
    if (m.status == Status::kOk && (!best || m.median_us < *best)) best = m.median_us;
    out.push_back({std::move(rec), best});
  }
  return out;
}

std::vector<Target> TuningDatabase::targets() {
  return guarded(path_, [&] {
    Statement s(db_,
                "SELECT gpu_name, spec_name, cc_major, cc_minor, sm_count, driver_version, runtime_version, "
                "toolkit_version FROM targets ORDER BY id");
    std::vector<Target> out;
    while (s.step()) out.push_back(target_from_columns(s, 0));
    return out;
  });
}

std::vector<WorkloadSummary> TuningDatabase::summaries(const std::optional<std::string>& target_fingerprint) {
  return guarded(path_, [&] {
    // With a single min() aggregate, SQLite takes bare columns (r.vendor_us) from the row
    // that holds the minimum, i.e. the best ok record.
    std::string sql =
        "SELECT w.key, w.kind, t.fingerprint, count(*), sum(r.status = 'ok'), "
        "min(CASE WHEN r.status = 'ok' THEN r.median_us END), r.vendor_us "
        "FROM records r JOIN workloads w ON w.id = r.workload_id JOIN targets t ON t.id = r.target_id";
    if (target_fingerprint) sql += " WHERE t.fingerprint = ?1";
    sql += " GROUP BY r.workload_id, r.target_id ORDER BY w.key, t.id";
    Statement s(db_, sql);
    if (target_fingerprint) s.bind(1, *target_fingerprint);
    std::vector<WorkloadSummary> out;
    while (s.step()) {
      WorkloadSummary sum{s.text(0), s.text(1), s.text(2), s.int64(3), s.int64(4), s.optional_real(5), std::nullopt};
      if (sum.best_us) sum.vendor_us = s.optional_real(6);
      out.push_back(std::move(sum));
    }
    return out;
  });
}

Stats TuningDatabase::stats() {
  return guarded(path_, [&] {
    Stats st;
    st.schema_version = static_cast<int>(pragma_int(db_, "user_version"));
    auto count = [&](const char* sql) {
      Statement s(db_, sql);
      s.step();
      return s.int64(0);
    };
    st.records = count("SELECT count(*) FROM records");
    st.workloads = count("SELECT count(*) FROM workloads");
    st.targets = count("SELECT count(*) FROM targets");
    st.families = count("SELECT count(DISTINCT family) FROM records");
    st.models = count("SELECT count(*) FROM models");
    st.graphs = count("SELECT count(*) FROM graphs");
    st.graph_runs = count("SELECT count(*) FROM graph_runs");
    Statement by_status(db_, "SELECT status, count(*) FROM records GROUP BY status");
    while (by_status.step()) st.records_by_status[by_status.text(0)] = by_status.int64(1);
    st.file_bytes = pragma_int(db_, "page_count") * pragma_int(db_, "page_size");
    return st;
  });
}

CommitResult TuningDatabase::merge(const std::string& other_path) {
  std::error_code ec;
  if (std::filesystem::equivalent(path_, other_path, ec))
    throw UserError("cannot merge " + other_path + " into itself");
  OpenOptions read_only;
  read_only.read_only = true;
  TuningDatabase other = open(other_path, read_only);
  CommitResult total;
  // Batches keep memory flat for large databases; each batch is one transaction, and a
  // repeated merge adds nothing (records are deduplicated by content).
  for (int64_t after = 0;;) {
    RecordFilter f;
    f.after_id = after;
    f.limit = 5000;
    std::vector<StoredRecord> batch = other.query(f);
    if (batch.empty()) break;
    after = batch.back().id;
    std::vector<Record> records;
    records.reserve(batch.size());
    for (StoredRecord& s : batch) {
      s.record.validate(other_path + ": record " + std::to_string(s.id));
      records.push_back(std::move(s.record));
    }
    CommitResult r = commit(records);
    total.inserted += r.inserted;
    total.duplicates += r.duplicates;
  }
  for (const StoredModel& m : other.models()) save_model(m);
  for (const StoredGraph& g : other.graphs()) save_graph(g);
  for (const StoredGraphRun& r : other.graph_runs()) save_graph_run(r);
  return total;
}

std::vector<std::string> TuningDatabase::check() {
  return guarded(path_, [&] {
    std::vector<std::string> problems;
    Statement integrity(db_, "PRAGMA integrity_check");
    while (integrity.step())
      if (integrity.text(0) != "ok") problems.push_back("integrity: " + integrity.text(0));
    Statement fk(db_, "PRAGMA foreign_key_check");
    while (fk.step())
      problems.push_back("foreign key: " + fk.text(0) + " row " + std::to_string(fk.int64(1)) + " refers to a missing " +
                         fk.text(2) + " row");
    if (!problems.empty()) return problems;
    Statement s(db_, std::string("SELECT ") + kRecordColumns + " ORDER BY r.id");
    while (s.step()) {
      try {
        decode_record(s, path_, decode_cache());
      } catch (const DatabaseError& e) {
        problems.push_back(e.what());
      }
    }
    return problems;
  });
}

int64_t TuningDatabase::save_model(const StoredModel& m) {
  return guarded(path_, [&] {
    require_writable();
    std::string uid = hex64(stable_hash(m.kind + "|" + m.target.fingerprint() + "|" + std::to_string(m.feature_version) +
                                        "|" + std::to_string(m.created_s) + "|" + m.blob));
    Transaction txn(db_);
    Statement ins(db_,
                  "INSERT INTO models(uid, kind, target_id, feature_version, tool_version, created_s, "
                  "metrics_json, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(uid) DO NOTHING");
    ins.bind(1, uid).bind(2, m.kind).bind(3, target_id(m.target, m.target.fingerprint())).bind(4, int64_t{m.feature_version});
    ins.bind(5, m.tool_version).bind(6, m.created_s).bind(7, m.metrics_json).bind_blob(8, m.blob);
    ins.step();
    const int64_t id = id_of_uid(db_, "models", uid, "model");
    txn.commit();
    return id;
  });
}

namespace {
constexpr const char* kModelColumns =
    "m.id, m.kind, t.gpu_name, t.spec_name, t.cc_major, t.cc_minor, t.sm_count, t.driver_version, t.runtime_version, "
    "t.toolkit_version, m.feature_version, m.tool_version, m.created_s, m.metrics_json, m.blob "
    "FROM models m JOIN targets t ON t.id = m.target_id";

StoredModel decode_model(const Statement& s) {
  StoredModel m;
  m.id = s.int64(0);
  m.kind = s.text(1);
  m.target = target_from_columns(s, 2);
  m.feature_version = static_cast<int>(s.int64(10));
  m.tool_version = s.text(11);
  m.created_s = s.int64(12);
  m.metrics_json = s.text(13);
  m.blob = s.blob(14);
  return m;
}
}  // namespace

std::vector<StoredModel> TuningDatabase::models() {
  return guarded(path_, [&] {
    Statement s(db_, std::string("SELECT ") + kModelColumns + " ORDER BY m.id");
    std::vector<StoredModel> out;
    while (s.step()) out.push_back(decode_model(s));
    return out;
  });
}

std::optional<StoredModel> TuningDatabase::latest_model(const std::string& kind, const std::string& target_fingerprint,
                                                        int feature_version) {
  return guarded(path_, [&]() -> std::optional<StoredModel> {
    Statement s(db_, std::string("SELECT ") + kModelColumns +
                         " WHERE m.kind = ?1 AND t.fingerprint = ?2 AND m.feature_version = ?3"
                         " ORDER BY m.created_s DESC, m.id DESC LIMIT 1");
    s.bind(1, kind).bind(2, target_fingerprint).bind(3, int64_t{feature_version});
    if (!s.step()) return std::nullopt;
    return decode_model(s);
  });
}

int64_t TuningDatabase::save_graph(const StoredGraph& g) {
  return guarded(path_, [&] {
    require_writable();
    std::string uid = hex64(stable_hash(g.model_key + "|" + g.target.fingerprint() + "|" + g.rewrites_json + "|" +
                                        std::to_string(g.created_s) + "|" + g.graph));
    Transaction txn(db_);
    Statement ins(db_,
                  "INSERT INTO graphs(uid, model_key, target_id, original_cost_us, optimized_cost_us, "
                  "rewrites_json, graph, tool_version, created_s) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                  "ON CONFLICT(uid) DO NOTHING");
    ins.bind(1, uid).bind(2, g.model_key).bind(3, target_id(g.target, g.target.fingerprint())).bind(4, g.original_cost_us);
    ins.bind(5, g.optimized_cost_us).bind(6, g.rewrites_json).bind_blob(7, g.graph).bind(8, g.tool_version);
    ins.bind(9, g.created_s);
    ins.step();
    const int64_t id = id_of_uid(db_, "graphs", uid, "graph");
    txn.commit();
    return id;
  });
}

std::vector<StoredGraph> TuningDatabase::graphs(const std::optional<std::string>& model_key) {
  return guarded(path_, [&] {
    std::string sql = "SELECT g.id, g.model_key, " + std::string(kTargetColumns) +
                      ", g.original_cost_us, g.optimized_cost_us, g.rewrites_json, g.graph, g.tool_version, "
                      "g.created_s FROM graphs g JOIN targets t ON t.id = g.target_id";
    if (model_key) sql += " WHERE g.model_key = ?1";
    sql += " ORDER BY g.created_s DESC, g.id DESC";
    Statement s(db_, sql);
    if (model_key) s.bind(1, *model_key);
    std::vector<StoredGraph> out;
    while (s.step()) {
      StoredGraph g;
      g.id = s.int64(0);
      g.model_key = s.text(1);
      g.target = target_from_columns(s, 2);
      g.original_cost_us = s.real(10);
      g.optimized_cost_us = s.real(11);
      g.rewrites_json = s.text(12);
      g.graph = s.blob(13);
      g.tool_version = s.text(14);
      g.created_s = s.int64(15);
      out.push_back(std::move(g));
    }
    return out;
  });
}

int64_t TuningDatabase::save_graph_run(const StoredGraphRun& r) {
  return guarded(path_, [&] {
    require_writable();
    std::string uid = hex64(stable_hash(r.model_key + "|" + r.target.fingerprint() + "|" + r.graph + "|" + r.kernels +
                                        "|" + std::to_string(r.created_s) + "|" + r.result_json));
    Transaction txn(db_);
    Statement ins(db_,
                  "INSERT INTO graph_runs(uid, model_key, target_id, graph, kernels, dtype, median_us, "
                  "flushed_median_us, predicted_us, check_error, result_json, tool_version, created_s) VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT(uid) DO NOTHING");
    ins.bind(1, uid).bind(2, r.model_key).bind(3, target_id(r.target, r.target.fingerprint())).bind(4, r.graph);
    ins.bind(5, r.kernels).bind(6, r.dtype).bind(7, r.median_us).bind(8, r.flushed_median_us).bind(9, r.predicted_us);
    ins.bind(10, r.check_error).bind(11, r.result_json).bind(12, r.tool_version).bind(13, r.created_s);
    ins.step();
    const int64_t id = id_of_uid(db_, "graph_runs", uid, "graph run");
    txn.commit();
    return id;
  });
}

std::vector<StoredGraphRun> TuningDatabase::graph_runs(const std::optional<std::string>& model_key) {
  return guarded(path_, [&] {
    std::string sql = "SELECT g.id, g.model_key, " + std::string(kTargetColumns) +
                      ", g.graph, g.kernels, g.dtype, g.median_us, g.flushed_median_us, g.predicted_us, "
                      "g.check_error, g.result_json, g.tool_version, g.created_s FROM graph_runs g "
                      "JOIN targets t ON t.id = g.target_id";
    if (model_key) sql += " WHERE g.model_key = ?1";
    sql += " ORDER BY g.created_s DESC, g.id DESC";
    Statement s(db_, sql);
    if (model_key) s.bind(1, *model_key);
    std::vector<StoredGraphRun> out;
    while (s.step()) {
      StoredGraphRun r;
      r.id = s.int64(0);
      r.model_key = s.text(1);
      r.target = target_from_columns(s, 2);
      r.graph = s.text(10);
      r.kernels = s.text(11);
      r.dtype = s.text(12);
      r.median_us = s.real(13);
      r.flushed_median_us = s.real(14);
      r.predicted_us = s.real(15);
      r.check_error = s.optional_real(16);
      r.result_json = s.text(17);
      r.tool_version = s.text(18);
      r.created_s = s.int64(19);
      out.push_back(std::move(r));
    }
    return out;
  });
}

}  // namespace tessera::db
