// TuningDatabase: the SQLite store of every tuning result, keyed by workload and target.
//
// One file (./tessera.db by default) holds targets (fingerprints), workloads (canonical key
// and JSON), records (one measurement of one schedule, failures included; append-only),
// learned models and graph-search results. The schema is versioned (PRAGMA user_version,
// application_id marks the file as Tessera's) and migrated forward on open; a newer or
// foreign file is refused before anything is written. WAL mode and a busy timeout let
// several tuning processes write at once; every commit is one transaction.
//
// Bad files (not SQLite, truncated, read-only, disk full, foreign, newer schema) surface
// as DatabaseError, a UserError naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/measurement.h"

struct sqlite3;

namespace tessera::db {

class Statement;

/// Decoded workloads and schedules by their stored JSON (internal to TuningDatabase).
struct DecodeCache {
  std::map<std::string, Workload, std::less<>> workloads;
  std::map<std::string, Schedule, std::less<>> schedules;
};

/// A database file that cannot be used as asked: the message starts with its path.
class DatabaseError : public UserError {
 public:
  using UserError::UserError;
};

/// How to open a database.
struct OpenOptions {
  bool read_only = false;        ///< queries only; the file must exist
  int busy_timeout_ms = 60000;   ///< how long to wait for another process's write [ms]
  std::string vfs;               ///< SQLite VFS to use (tests inject I/O faults); "" = default
};

/// Which records query() returns; unset fields match everything. Results are in id order.
struct RecordFilter {
  std::optional<std::string> workload_key;        ///< canonical Workload::key()
  std::optional<std::string> kind;                ///< op_kind_name(), e.g. "matmul"
  std::optional<std::string> target_fingerprint;  ///< Target::fingerprint()
  std::optional<std::string> family;              ///< Schedule::family
  std::optional<Status> status;
  int64_t after_id = 0;                           ///< only ids greater than this
  int64_t limit = 0;                              ///< at most this many; 0 = all
  bool newest_first = false;                      ///< descending ids (else ascending)
};

/// A record with its row id (ids grow with insertion order).
struct StoredRecord {
  int64_t id = 0;
  Record record;
};

/// What best() found.
struct BestResult {
  std::vector<StoredRecord> records;  ///< fastest first, one per distinct schedule
  bool exact_target = true;           ///< false: the same-architecture fallback answered
};

/// One history entry: a record and the fastest ok median up to and including it.
struct HistoryEntry {
  StoredRecord stored;
  std::optional<double> best_so_far_us;  ///< nullopt until the first ok record [us]
};

/// Per (workload, target): counts and the best time, for `tessera db list`.
struct WorkloadSummary {
  std::string workload_key;
  std::string kind;
  std::string target_fingerprint;
  int64_t records = 0;
  int64_t ok = 0;
  std::optional<double> best_us;    ///< fastest ok median [us]
  std::optional<double> vendor_us;  ///< vendor baseline stored with that record [us]
};

/// Database-wide counts.
struct Stats {
  int schema_version = 0;
  int64_t records = 0;
  std::map<std::string, int64_t> records_by_status;  ///< status name -> count
  int64_t workloads = 0;
  int64_t targets = 0;
  int64_t families = 0;
  int64_t models = 0;
  int64_t graphs = 0;
  int64_t graph_runs = 0;
  int64_t file_bytes = 0;  ///< main file size [bytes]
};

/// How many records a commit or merge added; duplicates (identical content) are skipped.
struct CommitResult {
  int64_t inserted = 0;
  int64_t duplicates = 0;
};

/// A learned cost model stored for one target.
struct StoredModel {
  int64_t id = 0;               ///< row id (0 before saving)
  std::string kind;             ///< e.g. "xgb_rank"
  Target target;                ///< the target whose records trained it
  int feature_version = 0;
  std::string tool_version;
  int64_t created_s = 0;        ///< seconds since the Unix epoch
  std::string metrics_json;     ///< evaluation figures, JSON text
  std::string blob;             ///< serialized model bytes
};

/// A graph-search result for one model on one target.
struct StoredGraph {
  int64_t id = 0;
  std::string model_key;        ///< identifies the input graph (e.g. file name + hash)
  Target target;                ///< the target whose costs were used
  double original_cost_us = 0;
  double optimized_cost_us = 0;
  std::string rewrites_json;    ///< applied rewrites, JSON text
  std::string graph;            ///< serialized optimised graph (e.g. ONNX bytes)
  std::string tool_version;
  int64_t created_s = 0;
};

/// A whole model measured on a GPU (`graph run`): end-to-end latency of one variant.
struct StoredGraphRun {
  int64_t id = 0;
  std::string model_key;        ///< the model (file name + hash, as StoredGraph's)
  Target target;                ///< the GPU it ran on
  std::string graph;            ///< which graph ran: optimized, fused or original
  std::string kernels;          ///< whose kernels ran the tuned operators: tessera or vendor
  std::string dtype;            ///< floating tensors' type
  double median_us = 0;         ///< end-to-end median, L2 warm
  double flushed_median_us = 0; ///< end-to-end median, L2 flushed before each run
  double predicted_us = 0;      ///< the graph oracle's sum of operator costs
  std::optional<double> check_error;  ///< largest output error / peak (nullopt: not checked or not finite)
  std::string result_json;      ///< the whole result (per-step times, categories, schedules)
  std::string tool_version;
  int64_t created_s = 0;
};

/// The tuning database. Move-only; one connection per object.
class TuningDatabase {
 public:
  /// Latest schema version this build writes.
  static constexpr int kSchemaVersion = 4;
  /// PRAGMA application_id of Tessera files ("TSRA").
  static constexpr int32_t kApplicationId = 0x54535241;

  /// Opens (and creates, unless read_only) the database at `path`, migrating it forward.
  static TuningDatabase open(const std::string& path, const OpenOptions& options = {});
  TuningDatabase(TuningDatabase&&) noexcept;
  TuningDatabase& operator=(TuningDatabase&&) noexcept;
  ~TuningDatabase();

  const std::string& path() const { return path_; }

  /// Appends records in one transaction; a record identical to a stored one is skipped.
  CommitResult commit(std::span<const Record> records);
  /// Up to k fastest ok records of `w` on exactly `target`, one per schedule. With
  /// same_arch_fallback and none on the exact target, those of targets with the same
  /// architecture (compute capability), with exact_target = false.
  BestResult best(const Workload& w, const Target& target, int k, bool same_arch_fallback = false);
  /// Records matching `filter`, in id order.
  std::vector<StoredRecord> query(const RecordFilter& filter);
  /// The record with row id `id`, or nullopt.
  std::optional<StoredRecord> get(int64_t id);
  /// Records of `w` (on `target` if given) in insertion order, with the running best.
  std::vector<HistoryEntry> history(const Workload& w, const std::optional<Target>& target);
  /// Stored targets, in insertion order.
  std::vector<Target> targets();
  /// Per (workload, target) summaries, by workload key.
  std::vector<WorkloadSummary> summaries(const std::optional<std::string>& target_fingerprint = std::nullopt);
  Stats stats();
  /// Adds every record, model and graph of the database at `other_path` (read-only there).
  CommitResult merge(const std::string& other_path);
  /// Integrity problems (SQLite's integrity and foreign-key checks, undecodable rows);
  /// empty when clean.
  std::vector<std::string> check();

  /// Stores a model (an identical one is not stored twice); returns its id.
  int64_t save_model(const StoredModel& model);
  /// Every stored model, oldest first.
  std::vector<StoredModel> models();
  /// The newest model of `kind` for the target and feature version, or nullopt.
  std::optional<StoredModel> latest_model(const std::string& kind, const std::string& target_fingerprint,
                                          int feature_version);
  /// Stores a graph result (an identical one is not stored twice); returns its id.
  int64_t save_graph(const StoredGraph& graph);
  /// Graph results, newest first (all models, or one model_key).
  std::vector<StoredGraph> graphs(const std::optional<std::string>& model_key = std::nullopt);
  /// Stores a measured run; returns its row id (the same run stored twice is one row).
  int64_t save_graph_run(const StoredGraphRun& run);
  /// Measured runs, newest first (all models, or one model_key).
  std::vector<StoredGraphRun> graph_runs(const std::optional<std::string>& model_key = std::nullopt);

 private:
  TuningDatabase(std::string path, sqlite3* db, bool read_only);
  /// Row id of a target / workload (inserted if new); `fp` / `key` are its fingerprint / key.
  int64_t target_id(const Target& t, const std::string& fp);
  int64_t workload_id(const Workload& w, const std::string& key);
  /// Throws unless the database may be written: opened read-write, and (checked once per
  /// handle, before the first write) not damaged: a file `PRAGMA quick_check` finds fault
  /// with is refused for writing, unchanged.
  void require_writable();
  void close();

  /// A prepared statement kept for this connection (reset by the caller after use).
  Statement& prepared(const std::string& sql);
  /// Decoded workloads and schedules, shared by this connection's queries.
  DecodeCache& decode_cache();

  std::string path_;
  sqlite3* db_ = nullptr;
  bool read_only_ = false;
  bool checked_for_writes_ = false;  // quick_check passed on this handle
  std::map<std::string, int64_t> target_ids_;    ///< fingerprint -> id (this connection's cache)
  std::map<std::string, int64_t> workload_ids_;  ///< key -> id
  std::map<std::string, std::unique_ptr<Statement>> statements_;  ///< SQL -> prepared statement
  DecodeCache decode_cache_;
};

/// One forward migration of the schema: from `from_version` to from_version + 1.
struct Migration {
  int from_version;
  const char* description;
  const char* sql;
};
/// Every migration in order; the schema of version N is migrations 0..N-1 applied to an
/// empty file.
std::span<const Migration> schema_migrations();

}  // namespace tessera::db
