// Forward migration of a hand-built version-1 tuning database (helpers in reliability_util.h).
#include <gtest/gtest.h>

#include "tests/db/reliability_util.h"

namespace tessera::db {
namespace {

using namespace reliability;

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
