// `tessera db ...` end to end: import, queries, exports, merge, check, and bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/measurement.h"
#include "tests/cli/cli_util.h"

namespace tessera {
namespace {

using testing::expect_one_line_error;
using testing::Result;
using testing::run;

class DbCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "tessera_dbcli_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    db_ = dir_ + "/t.db";
    // Synthetic records (storage and formatting under test, not kernels).
    std::ofstream out(dir_ + "/in.jsonl");
    int seq = 0;
    for (int64_t bm : {64, 128, 256}) out << record("matmul:m=4096,n=4096,k=4096:f16", bm, 400.0 + bm, ++seq) << "\n";
    out << record("conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16", 128, 90, ++seq) << "\n";
    Json failed = record("matmul:m=4096,n=4096,k=4096:f16", 512, 0, ++seq);
    failed["measurement"] = Measurement{Status::kCompileError, {}, 0, 0, 0, 0, 0, 0, 0, std::nullopt, "too many registers"}.to_json();
    out << failed.dump() << "\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Json record(const std::string& spec, int64_t block_m, double median_us, int seq) {
    Record r;
    r.workload = Workload::parse(spec);
    r.target = Target::for_spec(find_spec("h100_sxm"), "13.0");
    r.target.driver_version = "580.159.04 CUDA 13.0";
    r.target.runtime_version = "13.0";
    // gemm_tc's own knobs: imports refuse names a family does not have.
    r.schedule = {"gemm_tc", {{"block_m", block_m}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 4}, {"stages", 3}}};
    r.measurement.status = Status::kOk;
    if (median_us > 0) r.measurement.set_times({median_us, median_us * 1.01, median_us * 0.99});
    r.measurement.vendor_us = 420.0;
    r.tool_version = "test";
    r.timestamp_s = 1795000000 + seq;
    return r.to_json();
  }

  Result db(std::vector<std::string> args) {
    args.insert(args.begin(), "db");
    args.push_back("--db");
    args.push_back(db_);
    return run(args);
  }

  void import() {
    Result r = db({"import", dir_ + "/in.jsonl"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::string dir_, db_;
};

TEST_F(DbCli, ImportQueryAndShow) {
  import();
  Result again = db({"import", dir_ + "/in.jsonl", "--json"});
  EXPECT_EQ(Json::parse(again.out)["inserted"], 0);  // importing twice adds nothing

  Result list = db({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("matmul:m=4096,n=4096,k=4096:f16"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("conv2d:"), std::string::npos);
  Json lj = Json::parse(db({"list", "--json", "--kind", "matmul"}).out);
  ASSERT_EQ(lj.size(), 1u);
  EXPECT_EQ(lj[0]["records"], 4);
  EXPECT_EQ(lj[0]["ok"], 3);
  EXPECT_DOUBLE_EQ(lj[0]["best_us"].get<double>(), 464);

  Result best = db({"best", "matmul:m=4096,n=4096,k=4096:f16", "--top", "2"});
  ASSERT_EQ(best.exit_code, 0) << best.err;
  EXPECT_NE(best.out.find("block_m=64"), std::string::npos);
  EXPECT_LT(best.out.find("block_m=64"), best.out.find("block_m=128"));
  EXPECT_EQ(best.out.find("block_m=256"), std::string::npos);
  Json bj = Json::parse(db({"best", "matmul:n=4096,m=4096,k=4096:f16", "--json"}).out);
  EXPECT_TRUE(bj["exact_target"].get<bool>());
  int64_t id = bj["records"][0]["id"].get<int64_t>();

  Result show = db({"show", std::to_string(id)});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("status     ok"), std::string::npos) << show.out;
  EXPECT_NE(show.out.find("vendor     420.0 us"), std::string::npos) << show.out;
  Result hist = db({"history", "matmul:m=4096,n=4096,k=4096:f16", "--json"});
  Json hj = Json::parse(hist.out);
  ASSERT_EQ(hj.size(), 4u);
  EXPECT_DOUBLE_EQ(hj[3]["best_so_far_us"].get<double>(), 464);
  EXPECT_EQ(hj[3]["measurement"]["status"], "compile_error");

  Json stats = Json::parse(db({"stats", "--json"}).out);
  EXPECT_EQ(stats["records"], 5);
  EXPECT_EQ(stats["records_by_status"]["compile_error"], 1);
  Result check = db({"check"});
  EXPECT_EQ(check.exit_code, 0);
  EXPECT_NE(check.out.find(": ok (5 records)"), std::string::npos) << check.out;
}

TEST_F(DbCli, BestOnAnotherTargetNeedsExplicitFallback) {
  import();
  Result none = db({"best", "matmul:m=4096,n=4096,k=4096:f16", "--target", "h200_sxm"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("try --fallback-arch"), std::string::npos) << none.err;
  Result fb = db({"best", "matmul:m=4096,n=4096,k=4096:f16", "--target", "h200_sxm", "--fallback-arch"});
  ASSERT_EQ(fb.exit_code, 0) << fb.err;
  EXPECT_NE(fb.out.find("FALLBACK: none on this exact target; these are from other sm_90 targets"), std::string::npos)
      << fb.out;
  EXPECT_EQ(db({"best", "matmul:m=4096,n=4096,k=4096:f16", "--target", "a100_sxm", "--fallback-arch"}).exit_code, 1);
}

TEST_F(DbCli, ExportsEveryFormat) {
  import();
  Result jsonl = db({"export", "--format", "jsonl", "--output", dir_ + "/out.jsonl"});
  ASSERT_EQ(jsonl.exit_code, 0) << jsonl.err;
  EXPECT_NE(jsonl.err.find("exported 5 item(s) as jsonl to "), std::string::npos) << jsonl.err;
  // Lossless: a second database built from the export exports the same text.
  Result re = run({"db", "import", dir_ + "/out.jsonl", "--db", dir_ + "/copy.db"});
  ASSERT_EQ(re.exit_code, 0) << re.err;
  Result again = run({"db", "export", "--format", "jsonl", "--db", dir_ + "/copy.db"});
  EXPECT_EQ(again.out, testing::slurp(dir_ + "/out.jsonl"));

  Result triton = db({"export", "--format", "triton", "--top", "3"});
  ASSERT_EQ(triton.exit_code, 0) << triton.err;
  // These records lack gemm_tc's warps_n (an older kernel's): num_warps is left to Triton.
  EXPECT_NE(triton.out.find("triton.Config({\"BLOCK_SIZE_M\": 64, \"BLOCK_SIZE_N\": 128, \"BLOCK_SIZE_K\": 32, "
                            "\"GROUP_SIZE_M\": 1, \"INPUT_PRECISION\": \"default\"}, num_stages=3)"),
            std::string::npos)
      << triton.out;
  Result kt = db({"export", "--format", "kerneltuner", "--workload", "matmul:m=4096,n=4096,k=4096:f16"});
  ASSERT_EQ(kt.exit_code, 0) << kt.err;
  EXPECT_EQ(Json::parse(kt.out)["cache"].size(), 4u);
  Result cutlass = db({"export", "--format", "cutlass"});
  EXPECT_EQ(cutlass.out.rfind("Problem,Provider,OperationKind,Operation,Disposition,Status,", 0), 0u);
  Result conv = db({"export", "--format", "cutlass-conv2d"});
  EXPECT_NE(conv.out.find(",conv2d,"), std::string::npos);
  // Nothing to export (a matmul asked of the convolution CSV): one line, exit 2, no file.
  Result none = db({"export", "--format", "cutlass-conv2d", "--workload", "matmul:m=4096,n=4096,k=4096:f16",
                    "--output", dir_ + "/none.csv"});
  EXPECT_EQ(none.exit_code, 2) << none.err;
  EXPECT_NE(none.err.find("nothing to export as cutlass-conv2d"), std::string::npos) << none.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/none.csv"));
  Result header = db({"export", "--format", "header", "--output", dir_ + "/s.h"});
  ASSERT_EQ(header.exit_code, 0) << header.err;
  EXPECT_NE(testing::slurp(dir_ + "/s.h").find("#define TESSERA_MATMUL_M_4096_N_4096_K_4096_F16_BLOCK_M 64"),
            std::string::npos);
  // --with-kernels writes NAME.h and NAME.cu, so it needs -o NAME.h.
  Result to_stdout = db({"export", "--format", "header", "--with-kernels"});
  EXPECT_EQ(to_stdout.exit_code, 2) << to_stdout.err;
  EXPECT_NE(to_stdout.err.find("give -o NAME.h"), std::string::npos) << to_stdout.err;
  Result with = db({"export", "--format", "header", "--with-kernels", "-o", dir_ + "/k.h"});
  ASSERT_EQ(with.exit_code, 0) << with.err;
  EXPECT_NE(with.err.find("with their kernels in " + dir_ + "/k.cu)"), std::string::npos) << with.err;
  EXPECT_NE(testing::slurp(dir_ + "/k.cu").find("#include \"k.h\""), std::string::npos);
  EXPECT_NE(testing::slurp(dir_ + "/k.h").find("extern \"C\" {"), std::string::npos);

  // Kernel Tuner cache into a fresh database, attributed to a named target.
  std::ofstream(dir_ + "/cache.json") << kt.out;
  Result imp = run({"db", "import", dir_ + "/cache.json", "--format", "kerneltuner", "--workload",
                    "matmul:m=4096,n=4096,k=4096:f16", "--family", "gemm_tc", "--target", "h100_sxm", "--db",
                    dir_ + "/kt.db"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  EXPECT_NE(imp.out.find("4 new records"), std::string::npos) << imp.out;
}

TEST_F(DbCli, ReportWritesOnePage) {
  import();
  Result r = run({"report", "--db", db_, "-o", dir_ + "/r.html", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["workloads"].get<int>(), 2) << r.out;
  EXPECT_EQ(Json::parse(r.out)["records"].get<int>(), 5) << r.out;
  const std::string page = testing::slurp(dir_ + "/r.html");
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("matmul:m=4096,n=4096,k=4096:f16"), std::string::npos);
  EXPECT_NE(page.find("too many registers"), std::string::npos);  // the failure, with its error
  // Usage errors: no -o; a database without records.
  Result no_output = run({"report", "--db", db_});
  EXPECT_EQ(no_output.exit_code, 2);
  EXPECT_NE(no_output.err.find("-o FILE.html is required"), std::string::npos) << no_output.err;
  Result empty = run({"report", "--db", dir_ + "/empty.db", "-o", dir_ + "/e.html"});
  EXPECT_EQ(empty.exit_code, 2) << empty.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/e.html"));
}

TEST_F(DbCli, MergeIsRepeatSafe) {
  import();
  ASSERT_EQ(run({"db", "import", dir_ + "/in.jsonl", "--db", dir_ + "/other.db"}).exit_code, 0);
  Result m = db({"merge", dir_ + "/other.db"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_NE(m.out.find("0 new records, 5 already present"), std::string::npos) << m.out;
}

TEST_F(DbCli, BadInputIsOneClearLine) {
  expect_one_line_error({"db", "stats", "--db", dir_ + "/missing.db"}, dir_ + "/missing.db: no such database");
  std::ofstream(dir_ + "/text.db") << std::string(4096, 'x');
  expect_one_line_error({"db", "list", "--db", dir_ + "/text.db"}, "not an SQLite database");
  import();
  expect_one_line_error({"db", "show", "12345", "--db", db_}, "no record with id 12345");
  expect_one_line_error({"db", "show", "abc", "--db", db_}, "record id must be an integer");
  expect_one_line_error({"db", "best", "matmul:m=0,n=1,k=1:f16", "--db", db_}, "m must be a positive integer");
  expect_one_line_error({"db", "best", "matmul:m=8,n=8,k=8:f16", "--top", "zero", "--db", db_}, "--top must be");
  expect_one_line_error({"db", "export", "--db", db_}, "--format is required");
  expect_one_line_error({"db", "export", "--format", "xml", "--db", db_}, "unknown export format 'xml'");
  expect_one_line_error({"db", "export", "--format", "kerneltuner", "--db", db_}, "choose it with --workload");
  expect_one_line_error({"db", "import", dir_ + "/nope.jsonl", "--db", db_}, "cannot open file");
  std::ofstream(dir_ + "/bad.jsonl") << "{\"workload\": 3}\n";
  expect_one_line_error({"db", "import", dir_ + "/bad.jsonl", "--db", db_}, "bad.jsonl:1: ");
  expect_one_line_error({"db", "import", dir_ + "/in.jsonl", "--format", "kerneltuner", "--db", db_},
                        "needs --workload SPEC, --family NAME and --target NAME");
  expect_one_line_error({"db", "list", "--target", "l4", "--db", db_}, "no records for target 'l4'");
  expect_one_line_error({"db", "merge", db_, "--db", db_}, "into itself");
  // A failed import leaves the database as it was.
  EXPECT_EQ(Json::parse(db({"stats", "--json"}).out)["records"], 5);
}

// Hostile files (issue 23): each is one line and exit 2, and nothing is written.
TEST_F(DbCli, HostileFilesAreOneLineAndChangeNothing) {
  import();
  // A negative time, a family that would inject code into exports, an unknown family.
  Json neg = record("matmul:m=64,n=64,k=64:f16", 64, 10, 90);
  neg["measurement"]["median_us"] = -5.0;
  Json inject = record("matmul:m=64,n=64,k=64:f16", 64, 10, 91);
  inject["schedule"]["family"] = "gemm_tc\nimport os";
  Json unknown = record("matmul:m=64,n=64,k=64:f16", 64, 10, 92);
  unknown["schedule"]["family"] = "made_up";
  Json knob = record("matmul:m=64,n=64,k=64:f16", 64, 10, 93);
  knob["schedule"]["knobs"]["warps"] = 4;
  for (const auto& [j, text] : std::vector<std::pair<Json, std::string>>{
           {neg, "hostile.jsonl:1: median_us -5"}, {inject, "hostile.jsonl:1: kernel family \"gemm_tc\\nimport os\""},
           {unknown, "hostile.jsonl:1: unknown kernel family \"made_up\""},
           {knob, "hostile.jsonl:1: family gemm_tc has no knob \"warps\""}}) {
    std::ofstream(dir_ + "/hostile.jsonl") << j.dump() << "\n";
    expect_one_line_error({"db", "import", dir_ + "/hostile.jsonl", "--db", db_}, text);
  }
  // JSON nested 100,000 deep (a workload set; it once overflowed the stack).
  std::ofstream(dir_ + "/deep.json") << std::string(100000, '[');
  expect_one_line_error({"tune", "--workloads", dir_ + "/deep.json", "--measure", "none", "--db", db_},
                        "nested deeper than 64 levels");
  // A spec with a line break, and a 1 MB one: one line, shortened.
  expect_one_line_error({"workload", "show", "matmul:m=64,\nn=64,k=64:f16"}, "matmul:m=64,\\nn=64");
  Result huge = run({"workload", "show", "matmul:m=" + std::string(100000, '6') + ",n=1,k=1:f16"});
  EXPECT_EQ(huge.exit_code, 2);
  EXPECT_LT(huge.err.size(), 1000u);
  // An export never writes over a directory or a device, and leaves no temporary behind.
  expect_one_line_error({"db", "export", "--format", "jsonl", "--output", dir_, "--db", db_}, "is not a regular file");
  expect_one_line_error({"db", "export", "--format", "jsonl", "--output", "/dev/null", "--db", db_},
                        "is not a regular file");
  EXPECT_TRUE(std::filesystem::is_directory(dir_));
  for (const auto& e : std::filesystem::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tessera-"), std::string::npos) << "left behind: " << e.path();
  EXPECT_EQ(Json::parse(db({"stats", "--json"}).out)["records"], 5);
}

}  // namespace
}  // namespace tessera
