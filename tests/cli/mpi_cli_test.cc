// `mpirun -n N tessera tune` on this machine, without a GPU: every rank replays the bundled
// H100 measurements (tests/data), paced by their recorded kernel time x repeats, and the
// database must end up holding what one process records with the same flags, whichever ranks
// measured, died or were refused on the way. Built only with MPI; ctest runs these one at a time
// (RUN_SERIAL), as each starts several ranks on CI's two cores.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <thread>

#include "core/json.h"
#include "tests/cli/cli_util.h"

namespace tessera {
namespace {

using testing::quote;
using testing::Result;
using testing::run_shell;
using testing::slurp;

const std::string kSoftmax = "softmax:rows=4096,cols=1024:f16";
const std::string kReduceMax = "reduce:op=max,rows=4096,cols=4096:f16";
const std::string kReduceSum = "reduce:op=sum,rows=65536,cols=1024:f32";

std::string scratch(const std::string& name) {
  return ::testing::TempDir() + "tessera_mpi_" + std::to_string(getpid()) + "_" + name;
}

// mpirun with what CI needs: root allowed, more ranks than cores, no single-copy shared memory
// (containers forbid it); `recovery`: a rank that dies does not end the job.
std::string mpirun(bool recovery = true) {
  return std::string("env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ") +
         quote(TESSERA_MPIEXEC) + " --oversubscribe --mca btl_vader_single_copy_mechanism none" +
         (recovery ? " --enable-recovery" : "");
}

std::string tune_args(const std::vector<std::string>& args) {
  std::string out = quote(TESSERA_CLI) + " tune";
  for (const std::string& a : args) out += " " + quote(a);
  return out;
}

// Starts `command` under /bin/sh without waiting for it; the child's pid, or -1.
pid_t spawn_shell(const std::string& command) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

// Reads `file` every 50 ms until `pattern` occurs in it, 30 s at most; what it read last.
std::string wait_for_log(const std::string& file, const std::regex& pattern) {
  std::string log;
  for (int i = 0; i < 600 && !std::regex_search(log, pattern); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log = slurp(file);
  }
  return log;
}

// The database's records as `db export --format jsonl` writes them, minus the timestamps.
std::vector<std::string> records(const std::string& db) {
  Result r = testing::run({"db", "export", "--db", db, "--format", "jsonl"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    Json j = Json::parse(line);
    j.erase("timestamp_s");
    out.push_back(j.dump());
  }
  return out;
}

// The same tune flags in one process and under mpirun (`ranks` is mpirun's part, e.g. "-n 4");
// returns rank 0's stderr.
std::string expect_same_records(const std::string& name, const std::vector<std::string>& flags,
                                const std::string& ranks, const std::vector<std::string>& mpi_flags = {}) {
  std::string one = scratch(name + ".one.db"), many = scratch(name + ".many.db");
  std::remove(one.c_str());
  std::remove(many.c_str());
  std::vector<std::string> args = flags;
  args.insert(args.end(), {"--db", one});
  Result alone = run_shell(tune_args(args));
  EXPECT_EQ(alone.exit_code, 0) << alone.err;
  args = flags;
  args.insert(args.end(), mpi_flags.begin(), mpi_flags.end());
  args.insert(args.end(), {"--db", many});
  Result mpi = run_shell(mpirun() + " " + ranks + " " + tune_args(args));
  EXPECT_EQ(mpi.exit_code, 0) << mpi.err;
  EXPECT_EQ(mpi.out, alone.out);  // the same table
  std::vector<std::string> expected = records(one), got = records(many);
  EXPECT_GT(expected.size(), 0u);
  EXPECT_EQ(got, expected);
  std::remove(one.c_str());
  std::remove(many.c_str());
  return mpi.err;
}

// "MPI: K of N ranks measured ..." -> K.
int ranks_that_measured(const std::string& err) {
  std::smatch m;
  if (!std::regex_search(err, m, std::regex("MPI: ([0-9]+) of [0-9]+ ranks measured"))) return -1;
  return std::stoi(m[1]);
}

TEST(MpiTune, FourRanksRecordWhatOneProcessRecords) {
  std::vector<std::string> random = {
      "--replay", TESSERA_DATASET, "--workload", kReduceMax, "--workload", kSoftmax,  "--strategy",
      "random",   "--trials",      "60",         "--seed",   "3",          "--batch", "8"};
  std::string err = expect_same_records("random", random, "-n 4", {"--replay-pace", "2"});
  EXPECT_NE(err.find("tessera: MPI: "), std::string::npos) << err;
  EXPECT_GE(ranks_that_measured(err), 2) << err;  // rank 0 and at least one other
  EXPECT_EQ(err.find(" is lost"), std::string::npos) << err;
  // Evolution learns from each batch's results: the same results make the same search.
  std::vector<std::string> evolve = {"--replay", TESSERA_DATASET, "--workload", kSoftmax,  "--strategy",
                                     "evolve",   "--trials",      "24",         "--batch", "6"};
  expect_same_records("evolve", evolve, "-n 3", {"--replay-pace", "2"});
}

TEST(MpiTune, AKilledRankLosesNothing) {
  std::vector<std::string> flags = {
      "--replay", TESSERA_DATASET, "--workload", kReduceMax, "--workload", kReduceSum, "--strategy",
      "random",   "--trials",      "100",        "--seed",   "1",          "--batch",  "16"};
  std::string one = scratch("kill.one.db"), many = scratch("kill.many.db"), err = scratch("kill.err");
  std::remove(one.c_str());
  std::remove(many.c_str());
  std::vector<std::string> args = flags;
  args.insert(args.end(), {"--db", one});
  ASSERT_EQ(run_shell(tune_args(args)).exit_code, 0);
  args = flags;
  args.insert(args.end(), {"--db", many, "--replay-pace", "5", "--rank-timeout", "2"});
  std::string command = mpirun() + " -n 4 " + tune_args(args) + " >/dev/null 2>" + quote(err);
  pid_t job = spawn_shell(command);
  ASSERT_GE(job, 0);
  // Rank 2 says hello with its pid; once it has measured a while, kill it.
  std::smatch m;
  std::regex hello("rank 2 \\([^,]*, pid ([0-9]+)\\) measures");
  std::string log = wait_for_log(err, hello);
  ASSERT_TRUE(std::regex_search(log, m, hello)) << log;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  ASSERT_EQ(::kill(std::stoi(m[1]), SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(job, &status, 0), job);
  log = slurp(err);
  EXPECT_NE(log.find("is lost: silent for"), std::string::npos) << log;
  EXPECT_NE(log.find(" lost, "), std::string::npos) << log;
  std::vector<std::string> expected = records(one), got = records(many);
  EXPECT_GE(expected.size(), 100u);
  EXPECT_EQ(got, expected);  // every candidate recorded, the killed rank's measured elsewhere
  for (const std::string& f : {one, many, err}) std::remove(f.c_str());
}

TEST(MpiTune, RanksThatCannotMeasureTheTargetServeNothing) {
  std::vector<std::string> flags = {"--workload", kReduceMax, "--strategy", "random",  "--trials",
                                    "40",         "--seed",   "2",          "--batch", "8"};
  std::vector<std::string> h100 = {"--replay", TESSERA_DATASET, "--replay-pace", "5"};
  h100.insert(h100.end(), flags.begin(), flags.end());
  std::vector<std::string> h200 = {"--replay", TESSERA_WGMMA_DATASET};
  h200.insert(h200.end(), flags.begin(), flags.end());
  // Rank 1 replays another GPU's records; rank 2 has no replay and no GPU (or another GPU).
  std::string db = scratch("refuse.db");
  std::remove(db.c_str());
  std::vector<std::string> with_db = {"--db", db};
  auto cmd = [&](std::vector<std::string> a) {
    a.insert(a.end(), with_db.begin(), with_db.end());
    return tune_args(a);
  };
  Result r = run_shell(mpirun() + " -n 1 " + cmd(h100) + " : -n 1 " + cmd(h200) + " : -n 1 " + cmd(flags));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("rank 1 ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is refused: it measures on NVIDIA H200"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("and this job tunes for NVIDIA H100 80GB HBM3"), std::string::npos) << r.err;
  EXPECT_TRUE(
      std::regex_search(r.err, std::regex("rank 2 \\([^)]*\\) (serves nothing: no GPU found|is refused)")))
      << r.err;
  EXPECT_EQ(ranks_that_measured(r.err), 1) << r.err;
  EXPECT_EQ(records(db).size(), 40u);
  std::remove(db.c_str());
}

TEST(MpiTune, ModelAndModelOnlyJobsRunAsInOneProcess) {
  // tune --model: rank 0 imports the model and plans its workloads; the other ranks measure.
  std::string err = expect_same_records(
      "model", {"--replay", TESSERA_DATASET, "--model", std::string(TESSERA_GRAPHS) + "/tiny_resblock.onnx"},
      "-n 2");
  EXPECT_NE(err.find("distinct workloads"), std::string::npos) << err;
  err = expect_same_records("none", {"--measure", "none", "--workload", kSoftmax, "--workload", kReduceMax},
                            "-n 2");
  EXPECT_NE(err.find("MPI: the job measures nothing (model only)"), std::string::npos) << err;
}

TEST(MpiTune, BadInputIsOneLineFromRankZero) {
  // Without --enable-recovery mpirun passes rank 0's exit status on.
  Result r = run_shell(mpirun(false) + " -n 2 " +
                   tune_args({"--workload", kSoftmax, "--batch", "0", "--db", scratch("bad.db")}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  std::vector<std::string> ours;
  std::istringstream lines(r.err);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("tessera", 0) == 0) ours.push_back(line);
  ASSERT_EQ(ours.size(), 1u) << r.err;
  EXPECT_EQ(ours[0], "tessera: error: --batch must be an integer from 1 to 1000 (got '0')");
}

TEST(MpiTune, CtrlCStopsAfterTheBatchInFlight) {
  std::string db = scratch("interrupt.db"), err = scratch("interrupt.err");
  std::remove(db.c_str());
  std::vector<std::string> args = {"--replay",      TESSERA_DATASET,
                                   "--workload",    kReduceMax,
                                   "--workload",    kReduceSum,
                                   "--strategy",    "random",
                                   "--trials",      "100",
                                   "--seed",        "1",
                                   "--batch",       "10",
                                   "--replay-pace", "5",
                                   "--db",          db};
  std::string command = "exec " + mpirun() + " -n 3 " + tune_args(args) + " >/dev/null 2>" + quote(err);
  pid_t job = spawn_shell(command);
  ASSERT_GE(job, 0);
  std::string log = wait_for_log(err, std::regex("measured, best"));
  ASSERT_NE(log.find("measured, best"), std::string::npos) << log;
  ASSERT_EQ(::kill(job, SIGINT), 0);  // what Ctrl-C does to mpirun (sh exec'd it)
  int status = 0;
  ASSERT_EQ(::waitpid(job, &status, 0), job);
  log = slurp(err);
  EXPECT_NE(log.find("tessera: interrupted; every finished batch is in the database"), std::string::npos)
      << log;
  std::vector<std::string> got = records(db);
  EXPECT_GT(got.size(), 0u);
  EXPECT_LT(got.size(), 200u);
  EXPECT_EQ(got.size() % 10, 0u);  // whole batches only
  for (const std::string& f : {db, err}) std::remove(f.c_str());
}

}  // namespace
}  // namespace tessera
