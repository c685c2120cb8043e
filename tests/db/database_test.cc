// Functional tests of TuningDatabase: storage round trip, best/query/history/summaries,
// merge, check, models and graphs. Reliability (concurrency, kills, bad files) is in
// database_reliability_test.cc.
#include "db/database.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>

#include "tests/db/test_util.h"

namespace tessera::db {
namespace {

using testing::gemm_record;
using testing::TempDb;
using testing::test_target;

const char* kGemm = "matmul:m=4096,n=4096,k=4096:f16";
const char* kSmall = "matmul:m=128,n=128,k=128:f16";

TEST(Database, CreatesVersionedWalFile) {
  TempDb tmp("create");
  {
    TuningDatabase db = TuningDatabase::open(tmp.path());
    EXPECT_EQ(db.stats().schema_version, TuningDatabase::kSchemaVersion);
    EXPECT_EQ(db.stats().records, 0);
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(tmp.path().c_str(), &raw), SQLITE_OK);
  auto pragma = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(raw, sql, -1, &s, nullptr);
    sqlite3_step(s);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA application_id"), std::to_string(TuningDatabase::kApplicationId));
  EXPECT_EQ(pragma("PRAGMA user_version"), std::to_string(TuningDatabase::kSchemaVersion));
  sqlite3_close(raw);
}

TEST(Database, RecordsRoundTripExactly) {
  TempDb tmp("roundtrip");
  std::vector<Record> in = {gemm_record(kGemm, 128, 512.25, 1), gemm_record(kGemm, 64, 0, 2, Status::kCompileError),
                            gemm_record(kSmall, 32, 7.5, 3)};
  in[2].predicted_us.reset();
  in[2].measurement.vendor_us.reset();
  in[0].measurement.noisy = true;
  in[0].measurement.conditions = Json{{"attempts", 3}, {"clocks", {{"sm_clock_mhz", 1980}}}};
  in[1].workload = Workload::parse("conv2d:n=1,h=9,w=7,c=4,k=8,r=3,s=2,stride=2x1,pad=1,groups=2,layout=nchw:f32");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  CommitResult r = db.commit(in);
  EXPECT_EQ(r.inserted, 3);
  EXPECT_EQ(r.duplicates, 0);
  std::vector<StoredRecord> out = db.query({});
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].record, in[i]) << i;
    EXPECT_EQ(out[i].record.to_json().dump(), in[i].to_json().dump()) << i;
  }
  EXPECT_LT(out[0].id, out[1].id);
  ASSERT_TRUE(db.get(out[1].id).has_value());
  EXPECT_EQ(db.get(out[1].id)->record, in[1]);
  EXPECT_FALSE(db.get(999).has_value());
}

TEST(Database, IdenticalRecordsAreStoredOnce) {
  TempDb tmp("dedupe");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  Record a = gemm_record(kGemm, 128, 500, 1);
  EXPECT_EQ(db.commit(std::vector<Record>{a, a}).inserted, 1);
  CommitResult again = db.commit(std::vector<Record>{a, gemm_record(kGemm, 128, 500, 2)});
  EXPECT_EQ(again.inserted, 1);
  EXPECT_EQ(again.duplicates, 1);
  EXPECT_EQ(db.stats().records, 2);
}

TEST(Database, BestIsFastestCorrectOnePerScheduleOnExactTarget) {
  TempDb tmp("best");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  Target h200 = test_target("h200_sxm");
  db.commit(std::vector<Record>{
      gemm_record(kGemm, 128, 500, 1), gemm_record(kGemm, 64, 450, 2), gemm_record(kGemm, 64, 470, 3),
      gemm_record(kGemm, 256, 300, 4, Status::kIncorrect),  // wrong results never count
      gemm_record(kGemm, 32, 600, 5), gemm_record(kGemm, 16, 100, 6, Status::kOk, h200),
      gemm_record(kSmall, 16, 5, 7)});
  Workload w = Workload::parse(kGemm);
  BestResult best = db.best(w, test_target(), 3);
  EXPECT_TRUE(best.exact_target);
  ASSERT_EQ(best.records.size(), 3u);
  EXPECT_DOUBLE_EQ(best.records[0].record.measurement.median_us, 450);  // block_m 64, its faster run
  EXPECT_EQ(best.records[0].record.schedule.get("block_m"), 64);
  EXPECT_EQ(best.records[1].record.schedule.get("block_m"), 128);
  EXPECT_EQ(best.records[2].record.schedule.get("block_m"), 32);
  EXPECT_EQ(db.best(w, test_target(), 1).records.size(), 1u);
  EXPECT_EQ(db.best(w, h200, 5).records.size(), 1u);
}

TEST(Database, SameArchitectureFallbackIsExplicitAndLabelled) {
  TempDb tmp("fallback");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  db.commit(std::vector<Record>{gemm_record(kGemm, 64, 450, 1, Status::kOk, test_target("h200_sxm")),
                                gemm_record(kGemm, 64, 900, 2, Status::kOk, test_target("a100_sxm"))});
  Workload w = Workload::parse(kGemm);
  Target other_h100 = test_target("h100_sxm", "999.1 CUDA 13.1");
  EXPECT_TRUE(db.best(w, other_h100, 3).records.empty());
  BestResult fb = db.best(w, other_h100, 3, true);
  EXPECT_FALSE(fb.exact_target);
  ASSERT_EQ(fb.records.size(), 1u);  // sm_90 only, not the A100
  EXPECT_EQ(fb.records[0].record.target.spec_name, "h200_sxm");
  EXPECT_TRUE(db.best(w, test_target("l4"), 3, true).records.empty());
}

TEST(Database, QueryFiltersHistoryAndSummaries) {
  TempDb tmp("query");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  Record conv = gemm_record("conv2d:n=1,h=8,w=8,c=16,k=16,r=3,s=3,pad=1:f16", 64, 9, 10);
  conv.schedule.family = "conv_implicit_gemm";
  db.commit(std::vector<Record>{gemm_record(kGemm, 128, 500, 1), gemm_record(kGemm, 64, 0, 2, Status::kCrashed),
                                gemm_record(kGemm, 32, 450, 3), gemm_record(kGemm, 16, 470, 4), conv});
  RecordFilter f;
  f.workload_key = Workload::parse(kGemm).key();
  EXPECT_EQ(db.query(f).size(), 4u);
  f.status = Status::kCrashed;
  EXPECT_EQ(db.query(f).size(), 1u);
  RecordFilter by_kind;
  by_kind.kind = "conv2d";
  EXPECT_EQ(db.query(by_kind).size(), 1u);
  RecordFilter by_family;
  by_family.family = "gemm_tc";
  by_family.limit = 2;
  auto page = db.query(by_family);
  ASSERT_EQ(page.size(), 2u);
  by_family.after_id = page.back().id;
  EXPECT_EQ(db.query(by_family).size(), 2u);

  auto h = db.history(Workload::parse(kGemm), test_target());
  ASSERT_EQ(h.size(), 4u);
  EXPECT_EQ(h[0].best_so_far_us, 500);
  EXPECT_EQ(h[1].best_so_far_us, 500);  // a crash does not change the best
  EXPECT_EQ(h[2].best_so_far_us, 450);
  EXPECT_EQ(h[3].best_so_far_us, 450);

  auto sums = db.summaries();
  ASSERT_EQ(sums.size(), 2u);
  const WorkloadSummary& g = sums[1].workload_key == Workload::parse(kGemm).key() ? sums[1] : sums[0];
  EXPECT_EQ(g.records, 4);
  EXPECT_EQ(g.ok, 3);
  EXPECT_EQ(g.best_us, 450);
  EXPECT_EQ(g.vendor_us, 100);
  Stats st = db.stats();
  EXPECT_EQ(st.records, 5);
  EXPECT_EQ(st.records_by_status["ok"], 4);
  EXPECT_EQ(st.records_by_status["crashed"], 1);
  EXPECT_EQ(st.workloads, 2);
  EXPECT_EQ(st.targets, 1);
  EXPECT_EQ(st.families, 2);
  EXPECT_GT(st.file_bytes, 0);
  EXPECT_TRUE(db.check().empty());
}

TEST(Database, MergeAddsEverythingOnce) {
  TempDb a("merge_a"), b("merge_b");
  {
    TuningDatabase db = TuningDatabase::open(b.path());
    std::vector<Record> rs;
    for (int i = 0; i < 12000; ++i) rs.push_back(gemm_record(kGemm, 16 + i % 7, 400 + i, i));
    db.commit(rs);
    db.save_model({0, "xgb_rank", test_target(), 1, "test", 1795000000, "{}", std::string("model\0bytes", 11)});
    db.save_graph({0, "bert.onnx#1", test_target(), 100, 80, "[]", "graph", "test", 1795000000});
    db.save_graph_run({0, "bert.onnx#1", test_target(), "fused", "vendor", "f16", 780, 785, 860, 0.002, "{}", "test", 1795000001});
  }
  TuningDatabase db = TuningDatabase::open(a.path());
  db.commit(std::vector<Record>{gemm_record(kGemm, 16, 400, 0), gemm_record(kSmall, 8, 3, 1)});
  CommitResult r = db.merge(b.path());
  EXPECT_EQ(r.inserted, 11999);
  EXPECT_EQ(r.duplicates, 1);
  EXPECT_EQ(db.stats().records, 12001);
  EXPECT_EQ(db.merge(b.path()).inserted, 0);  // repeat-safe
  EXPECT_EQ(db.stats().records, 12001);
  EXPECT_EQ(db.models().size(), 1u);
  EXPECT_EQ(db.graphs().size(), 1u);
  EXPECT_EQ(db.graph_runs().size(), 1u);
  EXPECT_THROW(db.merge(a.path()), UserError);
  EXPECT_TRUE(db.check().empty());
}

TEST(Database, ModelsAndGraphs) {
  TempDb tmp("models");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  std::string blob(1000, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7);
  db.save_model({0, "xgb_rank", test_target(), 1, "test", 100, "{\"pairwise\":0.9}", blob});
  int64_t newer = db.save_model({0, "xgb_rank", test_target(), 1, "test", 200, "{}", "newer"});
  db.save_model({0, "xgb_rank", test_target(), 2, "test", 300, "{}", "v2 features"});
  auto m = db.latest_model("xgb_rank", test_target().fingerprint(), 1);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->id, newer);
  EXPECT_EQ(m->blob, "newer");
  auto old = db.models().front();
  EXPECT_EQ(old.blob, blob);  // binary-safe
  EXPECT_EQ(old.metrics_json, "{\"pairwise\":0.9}");
  EXPECT_FALSE(db.latest_model("xgb_rank", test_target("a100_sxm").fingerprint(), 1).has_value());
  db.save_graph({0, "resnet50", test_target(), 2000, 1500, "[\"fold_bn\"]", "onnx bytes", "test", 5});
  db.save_graph({0, "bert", test_target(), 900, 700, "[]", "b", "test", 6});
  EXPECT_EQ(db.graphs().size(), 2u);
  ASSERT_EQ(db.graphs("resnet50").size(), 1u);
  EXPECT_DOUBLE_EQ(db.graphs("resnet50")[0].optimized_cost_us, 1500);
  EXPECT_EQ(db.stats().models, 3);
}

TEST(Database, GraphRunsRoundTripNewestFirst) {
  TempDb tmp("runs");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  StoredGraphRun run{0, "resnet50.onnx:ab", test_target(), "optimized", "tessera", "f16", 324.4, 349.9, 310.8,
                     0.00063, "{\"steps\":[]}", "test", 10};
  const int64_t first = db.save_graph_run(run);
  EXPECT_EQ(db.save_graph_run(run), first) << "the same run is one row";
  run.kernels = "vendor";
  run.median_us = 2310.7;
  run.check_error.reset();  // not checked
  run.created_s = 11;
  db.save_graph_run(run);
  db.save_graph_run({0, "bert.onnx:cd", test_target(), "fused", "tessera", "f16", 717, 787, 862, 0.0016, "{}", "test", 12});
  std::vector<StoredGraphRun> all = db.graph_runs();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].model_key, "bert.onnx:cd");
  std::vector<StoredGraphRun> resnet = db.graph_runs("resnet50.onnx:ab");
  ASSERT_EQ(resnet.size(), 2u);
  EXPECT_EQ(resnet[0].kernels, "vendor");
  EXPECT_FALSE(resnet[0].check_error.has_value());
  EXPECT_EQ(resnet[1].kernels, "tessera");
  EXPECT_DOUBLE_EQ(resnet[1].median_us, 324.4);
  EXPECT_DOUBLE_EQ(resnet[1].flushed_median_us, 349.9);
  EXPECT_DOUBLE_EQ(*resnet[1].check_error, 0.00063);
  EXPECT_EQ(resnet[1].result_json, "{\"steps\":[]}");
  EXPECT_EQ(resnet[1].target.fingerprint(), test_target().fingerprint());
  EXPECT_EQ(db.stats().graph_runs, 3);
}

TEST(Database, ReadOnlyOpenRefusesWrites) {
  TempDb tmp("readonly_open");
  { TuningDatabase::open(tmp.path()).commit(std::vector<Record>{gemm_record(kGemm, 64, 450, 1)}); }
  OpenOptions ro;
  ro.read_only = true;
  TuningDatabase db = TuningDatabase::open(tmp.path(), ro);
  EXPECT_EQ(db.stats().records, 1);
  try {
    db.commit(std::vector<Record>{gemm_record(kGemm, 64, 450, 2)});
    FAIL() << "no throw";
  } catch (const DatabaseError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(tmp.path() + ": opened read-only", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace tessera::db

namespace tessera::db {
namespace {

TEST(Database, FileSystemWithoutWalIsAClearErrorAtOnce) {
  testing::TempDb tmp("nowal");
  OpenOptions options;
  options.vfs = "unix-dotfile";  // SQLite's VFS without shared memory: WAL is impossible
  auto start = std::chrono::steady_clock::now();
  try {
    TuningDatabase::open(tmp.path(), options);
    FAIL() << "no throw";
  } catch (const DatabaseError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot use WAL mode here"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));  // no wait for the busy timeout
}

}  // namespace
}  // namespace tessera::db
