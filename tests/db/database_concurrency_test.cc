// Reliability of the tuning database under concurrent writer processes and a writer killed with
// SIGKILL mid-run (helpers in reliability_util.h).
#include <gtest/gtest.h>

#include "tests/db/reliability_util.h"

namespace tessera::db {
namespace {

using namespace reliability;

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

}  // namespace
}  // namespace tessera::db
