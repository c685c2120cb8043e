// End-to-end checks of the tessera executable: help, version, output, and that every kind
// of bad input exits non-zero with one clear line on stderr and no stack trace.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "core/json.h"
#include "tests/cli/cli_util.h"

namespace tessera {
namespace {

using testing::expect_one_line_error;
using testing::quote;
using testing::Result;
using testing::run;

TEST(Cli, HelpListsCommands) {
  Result r = run({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"workload show", "workload list", "targets", "devices"})
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd;
  Result sub = run({"workload", "show", "--help"});
  EXPECT_EQ(sub.exit_code, 0);
  EXPECT_NE(sub.out.find("Usage: tessera workload show SPEC"), std::string::npos) << sub.out;
  EXPECT_NE(sub.out.find("--target NAME"), std::string::npos);
  Result group = run({"workload", "--help"});
  EXPECT_EQ(group.exit_code, 0);
  EXPECT_NE(group.out.find("workload list"), std::string::npos);
  Result none = run({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("Usage: tessera <command>"), std::string::npos);
}

TEST(Cli, VersionNamesLibraries) {
  Result r = run({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("tessera 0.", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("SQLite 3."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("XGBoost 1."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(TESSERA_MPI_BUILT ? "Open MPI v" : "built without MPI"), std::string::npos) << r.out;
}

TEST(Cli, WorkloadShowPrintsExprAndRoofline) {
  Result r = run({"workload", "show", "matmul:m=4096,n=4096,k=4096:f16", "--target", "h100_sxm"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("C[m, n] <- reduce(A[m, k], B[k, n])"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("137.4 GFLOP"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("100.7 MB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("floor    138.9 us (compute-bound)"), std::string::npos) << r.out;

  Result j = run({"workload", "show", "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16", "--json", "--target=a100_sxm"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  Json out = Json::parse(j.out);
  EXPECT_EQ(out["key"], "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16");
  EXPECT_EQ(out["roofline"]["target"], "a100_sxm");
  EXPECT_EQ(out["tensors"][0]["index"][1], "p + r - 1");
  EXPECT_DOUBLE_EQ(out["flops"].get<double>(), 2.0 * 32 * 56 * 56 * 64 * 64 * 9);
}

TEST(Cli, WorkloadListCoversTheDefaultSet) {
  Result r = run({"workload", "list", "--workloads", TESSERA_SOURCE_DIR "/configs/workloads/default.json",
                  "--target", "h100_sxm", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json out = Json::parse(r.out);
  EXPECT_EQ(out["set"], "default");
  EXPECT_GE(out["workloads"].size(), 15u);
  EXPECT_GT(out["weighted_floor_us"].get<double>(), 0);
}

TEST(Cli, TargetsAndDevices) {
  Result t = run({"targets"});
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_NE(t.out.find("h100_sxm"), std::string::npos);
  Result tj = run({"targets", "--json"});
  EXPECT_EQ(Json::parse(tj.out).size(), 5u);
  Result d = run({"devices", "--json"});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  Json dev = Json::parse(d.out);
  if (dev["devices"].empty()) {
    EXPECT_FALSE(dev["reason"].get<std::string>().empty());
    EXPECT_NE(run({"devices"}).out.find("no GPU found: "), std::string::npos);
  } else {
    EXPECT_NE(dev["devices"][0]["target"]["fingerprint"].get<std::string>().find("|sm_"), std::string::npos);
  }
}

TEST(Cli, BadInputExitsWithOneClearLine) {
  expect_one_line_error({"workload", "show", "matmul:m=0,n=1,k=1:f16"}, "m must be a positive integer (got 0)");
  expect_one_line_error({"workload", "show", "convolution:n=1:f16"}, "unknown workload kind 'convolution'");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f64"}, "unknown dtype 'f64'");
  expect_one_line_error({"workload", "show", "matmul:m=-8,n=8,k=8:f16"}, "m must be a positive integer (got '-8')");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8"}, "expected KIND:PARAMS:DTYPE");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f16", "--target", "h800"}, "unknown target 'h800'");
  expect_one_line_error({"workload", "show"}, "expected 1 argument(s), got 0");
  expect_one_line_error({"workload", "show", "a", "b"}, "expected 1 argument(s), got 2");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f16", "--frobnicate"}, "unknown option '--frobnicate'");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f16", "--target"}, "option --target needs a value");
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f16", "--json=yes"}, "option --json takes no value");
  expect_one_line_error({"workload", "frobnicate"}, "unknown command 'tessera workload frobnicate'");
  expect_one_line_error({"tune-everything"}, "unknown command 'tune-everything'");
  expect_one_line_error({"workload", "list", "--workloads", "/nonexistent/set.json"}, "/nonexistent/set.json: cannot open file");

  std::string bad_json = ::testing::TempDir() + "tessera_bad_set_" + std::to_string(getpid()) + ".json";
  std::ofstream(bad_json) << "{\"workloads\": [\"matmul:m=8,n=8,k=8:f16\",";
  expect_one_line_error({"workload", "list", "--workloads", bad_json}, bad_json + ": invalid JSON: ");
  std::ofstream(bad_json) << R"({"workloads": ["matmul:m=8,n=8,k=8:f16", "softmax:rows=0,cols=8:f16"]})";
  expect_one_line_error({"workload", "list", "--workloads", bad_json, "--target", "l4"},
                        "workloads[1]: invalid workload spec 'softmax:rows=0,cols=8:f16'");
  std::string bad_spec = ::testing::TempDir() + "tessera_bad_gpu_" + std::to_string(getpid()) + ".json";
  std::ofstream(bad_spec) << R"({"name": "x", "gpu_name": "X"})";
  expect_one_line_error({"workload", "show", "matmul:m=8,n=8,k=8:f16", "--target", bad_spec},
                        bad_spec + ": missing field \"compute_capability\"");
}

TEST(Cli, BinaryDoesNotNeedTheGpuDriver) {
  // Linking libcuda.so.1 would stop the binary from starting on machines without a driver.
  std::string cmd = "readelf -d " + quote(TESSERA_CLI) + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string text;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe)) text += buf;
  ASSERT_EQ(pclose(pipe), 0) << text;
  EXPECT_NE(text.find("(NEEDED)"), std::string::npos) << text;
  EXPECT_EQ(text.find("libcuda.so"), std::string::npos) << text;
  EXPECT_EQ(text.find("libcudart.so"), std::string::npos) << text;
}


const char* kGemmSchedule =
    R"({"family":"gemm_tc","knobs":{"block_m":64,"block_n":64,"block_k":32,"warps_m":2,"warps_n":2,"stages":2,"vec":8,"group_m":1,"split_k":1}})";

TEST(CliBench, BadInputIsCaughtBeforeLookingForAGpu) {
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f16"}, "give exactly one of --schedule JSON and --db FILE");
  expect_one_line_error({"bench", "matmul:m=64,n=64:f16", "--schedule", kGemmSchedule}, "matmul:m=64,n=64:f16");
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f16", "--schedule", "{\"family\":"}, "--schedule: invalid JSON");
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f16", "--schedule", R"({"family":"nope","knobs":{}})"},
                        "unknown kernel family 'nope'");
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f32", "--schedule", kGemmSchedule},
                        "family gemm_tc does not run matmul:m=64,n=64,k=64:f32");
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f16", "--schedule", kGemmSchedule, "--device", "-1"},
                        "--device must be an integer from 0 to 1023");
  expect_one_line_error({"bench", "matmul:m=64,n=64,k=64:f16", "--db", "/nonexistent/tessera.db"},
                        "/nonexistent/tessera.db: no such database");
}

TEST(CliBench, WithoutAGpuSaysSoAndFails) {
  Result devices = run({"devices", "--json"});
  if (devices.out.find("\"devices\": []") == std::string::npos) GTEST_SKIP() << "a GPU is present";
  Result r = run({"bench", "matmul:m=64,n=64,k=64:f16", "--schedule", kGemmSchedule});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("bench measures on a GPU and none was found"), std::string::npos) << r.err;
  Result help = run({"bench", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("3 no GPU"), std::string::npos) << help.out;
}

TEST(CliBench, WorkerWithoutAGpuSaysSoInItsHello) {
  Result devices = run({"devices", "--json"});
  if (devices.out.find("\"devices\": []") == std::string::npos) GTEST_SKIP() << "a GPU is present";
  Result r = run({"worker", "--device", "0"});
  EXPECT_EQ(r.exit_code, 1);
  // One protocol frame on stdout: magic, then a hello whose error names the missing GPU.
  ASSERT_GE(r.out.size(), 16u);
  EXPECT_EQ(r.out.substr(0, 4), "TSRW");
  EXPECT_NE(r.out.find("\"type\":\"hello\""), std::string::npos);
  EXPECT_NE(r.out.find("\"error\":\"no GPU"), std::string::npos) << r.out;
}


TEST(CliTune, ModelOnlyWithoutAGpuSaysSoEverywhereAndResumes) {
  Result devices = run({"devices", "--json"});
  bool gpu = devices.out.find("\"devices\": []") == std::string::npos;
  std::string db = ::testing::TempDir() + "tessera_tune_" + std::to_string(getpid()) + ".db";
  std::remove(db.c_str());
  // --measure none behaves the same with or without a GPU.
  Result r = run({"tune", "--workload", "matmul:m=1024,n=1024,k=1024:f16", "--workload", "softmax:rows=4096,cols=1024:f16",
                  "--db", db, "--measure", "none", "--target", "a100_sxm", "--topk", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("MODEL ONLY"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("MODEL ONLY"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("gemm_tc:block_m="), std::string::npos);
  EXPECT_NE(r.out.find("rows:row_threads="), std::string::npos);
  Result list = run({"db", "history", "matmul:m=1024,n=1024,k=1024:f16", "--db", db, "--target", "a100_sxm", "--json"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  Json h = Json::parse(list.out);
  ASSERT_TRUE(h.is_array());
  EXPECT_EQ(h.size(), 4u);  // the top 4, recorded
  EXPECT_EQ(h[0]["measurement"]["status"], "unmeasured");
  Result again = run({"tune", "--workload", "matmul:m=1024,n=1024,k=1024:f16", "--db", db, "--measure", "none",
                      "--target", "a100_sxm", "--topk", "4", "--json"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  Json j = Json::parse(again.out);
  EXPECT_EQ(j[0]["skipped_already_in_db"], 4);
  EXPECT_EQ(j[0]["measured"], 0);
  EXPECT_EQ(j[0]["measured_on_gpu"], false);
  if (!gpu) {
    Result gpu_run = run({"tune", "--workload", "matmul:m=64,n=64,k=64:f16", "--db", db, "--measure", "gpu"});
    EXPECT_EQ(gpu_run.exit_code, 3);
    EXPECT_NE(gpu_run.err.find("--measure gpu needs a GPU"), std::string::npos) << gpu_run.err;
    Result automatic = run({"tune", "--workload", "matmul:m=64,n=64,k=64:f16", "--db", db});
    EXPECT_EQ(automatic.exit_code, 0);
    EXPECT_NE(automatic.err.find("no GPU found"), std::string::npos) << automatic.err;
  }
  std::remove(db.c_str());
}

TEST(CliTune, BadInputIsOneClearLine) {
  expect_one_line_error({"tune"}, "nothing to tune: give --workload SPEC, --workloads FILE or --model FILE.onnx");
  expect_one_line_error({"tune", "--workload", "matmul:m=1,n=1:f16"}, "matmul:m=1,n=1:f16");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--measure", "cpu"},
                        "--measure must be gpu or none (got 'cpu')");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--strategy", "annealing"},
                        "--strategy must be construct, evolve, exhaustive or random");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--strategy", "random"},
                        "--strategy random needs --trials N");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--batch", "0"},
                        "--batch must be an integer from 1 to 1000");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--topk", "0"},
                        "--topk must be an integer from 1 to 1000");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--target", "v100"}, "v100");
  expect_one_line_error({"tune", "--workloads", "/nonexistent/set.json"}, "/nonexistent/set.json");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--scheduler", "gradient"},
                        "--scheduler allots a job budget: give --total-trials N too");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--total-trials", "8", "--scheduler", "fifo"},
                        "--scheduler must be gradient or round-robin (got 'fifo')");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--replay-pace", "1"},
                        "--replay-pace paces a --replay: give --replay FILE");
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--rank-timeout", "0"},
                        "--rank-timeout must be a number from 1 to 86400");
}

// A build without MPI run as one of several ranks (what mpirun's environment says) refuses
// the job in one line; a build with MPI is tested under mpirun (mpi_cli_test).
TEST(CliTune, UnderMpirunWithoutMpiSaysSo) {
  if (TESSERA_MPI_BUILT) GTEST_SKIP() << "built with MPI: tests/cli/mpi_cli_test.cc runs it under mpirun";
  ::setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  ::setenv("OMPI_COMM_WORLD_RANK", "0", 1);
  expect_one_line_error({"tune", "--workload", "matmul:m=8,n=8,k=8:f16", "--measure", "none", "--db", "/nonexistent/x.db"},
                        "tessera was built without MPI, and this process is one of 4 ranks started by mpirun");
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
  ::unsetenv("OMPI_COMM_WORLD_RANK");
}

TEST(CliModel, CalibrateFitsTheWgmmaTermsAndChecksThemHeldOut) {
  std::string db = ::testing::TempDir() + "tessera_calibrate_" + std::to_string(getpid()) + ".db";
  std::string spec = db + ".spec.json";
  std::remove(db.c_str());
  ASSERT_EQ(run({"db", "import", TESSERA_WGMMA_DATASET, "--db", db}).exit_code, 0);
  Result fit = run({"model", "calibrate", "--db", db, "--output", spec});
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_NE(fit.out.find("fitted to 351 correct records of 11 workloads measured on NVIDIA H200"), std::string::npos)
      << fit.out;
  EXPECT_NE(fit.out.find("held out (4 folds by workload, fitted to the others)"), std::string::npos) << fit.out;
  std::string last = fit.out.substr(fit.out.rfind('\n', fit.out.size() - 2) + 1);
  ASSERT_EQ(last.rfind("\"async_mma_terms\": ", 0), 0u) << last;
  Json terms = Json::parse(last.substr(last.find('{')));
  EXPECT_GT(terms["store_cycles"].get<double>(), 0.0);
  // The written spec is a usable target.
  Result show = run({"workload", "show", "matmul:m=4096,n=4096,k=4096:f16", "--target", spec});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  Result json = run({"model", "calibrate", "--db", db, "--folds", "0", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  Json j = Json::parse(json.out);
  EXPECT_EQ(j["records"], 351);
  EXPECT_LT(j["rmse_after"].get<double>(), j["rmse_before"].get<double>() + 1e-12);
  EXPECT_FALSE(j.contains("held_out"));
  // Too few records of wgmma schedules: the dataset of the learned model has none.
  std::string other = db + ".other";
  std::remove(other.c_str());
  ASSERT_EQ(run({"db", "import", TESSERA_DATASET, "--db", other}).exit_code, 0);
  expect_one_line_error({"model", "calibrate", "--db", other}, "needs at least 20 correct records of async-MMA");
  std::remove(db.c_str());
  std::remove(other.c_str());
  std::remove(spec.c_str());
}

TEST(CliModel, EvalTrainAndReplayedEvolutionOnTheDataset) {
  std::string db = ::testing::TempDir() + "tessera_model_" + std::to_string(getpid()) + ".db";
  std::string tuned = db + ".tuned";
  std::remove(db.c_str());
  std::remove(tuned.c_str());
  ASSERT_EQ(run({"db", "import", TESSERA_DATASET, "--db", db}).exit_code, 0);
  Result eval = run({"model", "eval", "--db", db, "--model", "analytic"});
  ASSERT_EQ(eval.exit_code, 0) << eval.err;
  std::string last = eval.out.substr(eval.out.rfind('\n', eval.out.size() - 2) + 1);
  EXPECT_EQ(last.rfind("pairwise=", 0), 0u) << last;
  EXPECT_NE(last.find("groups=44 records=7534"), std::string::npos) << last;
  Result train = run({"model", "train", "--db", db, "--rounds", "20", "--folds", "0"});
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.out.find("trained xgb_rank+analytic on 7534 correct records of 44 workloads"), std::string::npos)
      << train.out;
  Result stats = run({"db", "stats", "--db", db, "--json"});
  EXPECT_EQ(Json::parse(stats.out)["models"], 1) << stats.out;
  Result tune = run({"tune", "--replay", TESSERA_DATASET, "--workload", "softmax:rows=2048,cols=8192:f16", "--strategy",
                     "evolve", "--trials", "16", "--db", tuned, "--json"});
  ASSERT_EQ(tune.exit_code, 0) << tune.err;
  EXPECT_NE(tune.err.find("REPLAY: answers come from the records in"), std::string::npos) << tune.err;
  Json j = Json::parse(tune.out);
  EXPECT_EQ(j[0]["replayed"], true);
  EXPECT_EQ(j[0]["measured_on_gpu"], false);
  EXPECT_EQ(j[0]["measured"], 16);
  EXPECT_EQ(j[0]["best"]["measurement"]["conditions"]["replay"], TESSERA_DATASET);
  // A job budget shared by two workloads (weights from --workloads; here both 1).
  Result job = run({"tune", "--replay", TESSERA_DATASET, "--workload", "softmax:rows=4096,cols=1024:f16", "--workload",
                    "layernorm:rows=4096,cols=768:f16", "--strategy", "evolve", "--total-trials", "12", "--batch", "3",
                    "--db", tuned});
  ASSERT_EQ(job.exit_code, 0) << job.err;
  EXPECT_NE(job.out.find("weighted total (sum of weight x best): "), std::string::npos) << job.out;
  EXPECT_NE(job.err.find("job 12/12"), std::string::npos) << job.err;
  expect_one_line_error({"model", "eval", "--db", db, "--model", "forest"}, "--model must be analytic, learned");
  expect_one_line_error({"model", "train", "--db", db, "--objective", "listwise"}, "--objective must be rank or regression");
  expect_one_line_error({"tune", "--replay", "/nonexistent/records.jsonl", "--workload", "softmax:rows=8,cols=8:f16"},
                        "/nonexistent/records.jsonl");
  expect_one_line_error({"tune", "--replay", TESSERA_DATASET, "--target", "h100_sxm", "--workload", "softmax:rows=8,cols=8:f16"},
                        "--replay answers for the GPU its records were measured on");
  expect_one_line_error({"tune", "--workload", "softmax:rows=8,cols=8:f16", "--strategy", "evolve", "--epsilon", "2"},
                        "--epsilon must be a number from 0 to 1");
  std::remove(db.c_str());
  std::remove(tuned.c_str());
}

}  // namespace
}  // namespace tessera
