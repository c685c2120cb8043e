// Hostile input at the core: JSON too deep to destroy recursively, error messages that carry
// long or multi-line inputs, records whose fields are out of range (the import's gate), compute
// capabilities that would overflow a conversion, and atomic file writes that never damage or
// redirect an existing file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hardware.h"
#include "core/json.h"
#include "core/measurement.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

TEST(HostileJson, DeepNestingIsAUserErrorNotAStackOverflow) {
  // About 60,000 levels overflowed the stack (SIGSEGV) when the value was destroyed.
  for (const std::string& open : {std::string("["), std::string("{\"a\":")}) {
    std::string text;
    for (int i = 0; i < 100000; ++i) text += open;
    try {
      parse_json(text, "deep.json");
      FAIL() << "accepted";
    } catch (const UserError& e) {
      EXPECT_EQ(std::string(e.what()), "deep.json: invalid JSON: nested deeper than 64 levels");
    }
  }
  // Brackets inside strings do not count, and the limit itself parses.
  std::string ok(64, '[');
  ok += "\"[[[[{{{{\"" + std::string(64, ']');
  EXPECT_NO_THROW(parse_json(ok, "ok.json"));
  EXPECT_THROW(parse_json("[" + ok + "]", "too.json"), UserError);
}

TEST(HostileJson, OneLineEscapesBreaksAndShortensLongInputs) {
  EXPECT_EQ(one_line("a\nb\tc\x01"), "a\\nb\\tc\\x01");
  const std::string spec(1 << 20, 'x');  // a 1 MB spec once gave a 2 MB message
  const std::string line = one_line("bad spec '" + spec + "': expected KIND:PARAMS:DTYPE");
  EXPECT_LE(line.size(), 600u);
  EXPECT_EQ(line.rfind("bad spec '", 0), 0u);
  EXPECT_NE(line.find(" ... "), std::string::npos);
  EXPECT_NE(line.find("expected KIND:PARAMS:DTYPE"), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

Record valid_record() {
  Record r;
  r.workload = Workload::parse("matmul:m=64,n=64,k=64:f16");
  r.target = Target::for_spec(find_spec("h100_sxm"), "13.0");
  r.schedule = {"gemm_tc", {{"block_m", 64}, {"block_n", 64}}};
  r.measurement.status = Status::kOk;
  r.measurement.set_times({10.0, 11.0, 12.0});
  r.tool_version = "test";
  r.timestamp_s = 1795000000;
  return r;
}

// The record's JSON with one field replaced, read back.
void expect_refused(const std::function<void(Json&)>& edit, const std::string& message_part) {
  Json j = valid_record().to_json();
  edit(j);
  try {
    Record::from_json(j, "in.jsonl:7");
    FAIL() << "accepted " << j.dump();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("in.jsonl:7: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(message_part), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(HostileRecord, FieldsOutsideTheirRangeAreRefusedOnImport) {
  EXPECT_NO_THROW(Record::from_json(valid_record().to_json(), "in.jsonl:1"));
  // A negative median once became the best record ("db best" showed -5.00 us).
  expect_refused([](Json& j) { j["measurement"]["median_us"] = -5.0; }, "median_us -5");
  expect_refused([](Json& j) { j["measurement"]["median_us"] = 0.0; }, "median_us 0");
  expect_refused([](Json& j) { j["measurement"]["times_us"] = Json::array({1.0, -2.0}); }, "times_us");
  expect_refused([](Json& j) { j["measurement"]["vendor_us"] = -1.0; }, "vendor_us");
  // Registers of 2^40 were stored as 0, a compute capability of 2^40 as sm_00.
  expect_refused([](Json& j) { j["measurement"]["registers"] = int64_t{1} << 40; }, "\"registers\"");
  expect_refused([](Json& j) { j["target"]["cc_major"] = int64_t{1} << 40; }, "\"cc_major\"");
  expect_refused([](Json& j) { j["target"]["sm_count"] = -1; }, "\"sm_count\"");
  // Names end up in exported Python and C: no line breaks, no punctuation.
  expect_refused([](Json& j) { j["schedule"]["family"] = "gemm_tc\nimport os"; }, "kernel family");
  expect_refused([](Json& j) { j["schedule"]["knobs"]["block m"] = 1; }, "knob \"block m\" is not a name");
  expect_refused([](Json& j) { j["target"]["gpu_name"] = "H100\n#include <evil.h>"; }, "control character");
  expect_refused([](Json& j) { j["target"]["gpu_name"] = std::string(300, 'g'); }, "at most 256");
  expect_refused([](Json& j) { j["timestamp_s"] = -1; }, "timestamp_s");
  // A failure keeps no time, a measured record must have one.
  Json failure = valid_record().to_json();
  failure["measurement"]["status"] = "crashed";
  failure["measurement"]["median_us"] = 0.0;
  failure["measurement"]["times_us"] = Json::array();
  EXPECT_NO_THROW(Record::from_json(failure, "in.jsonl:2"));
  Record inf = valid_record();
  inf.measurement.median_us = std::numeric_limits<double>::infinity();
  EXPECT_THROW(inf.validate("cache.json: cache entry \"1\""), UserError);
  EXPECT_TRUE(is_identifier("block_m"));
  EXPECT_FALSE(is_identifier("9lives"));
  EXPECT_FALSE(is_identifier(std::string(65, 'a')));
}

TEST(HostileSpec, ComputeCapabilityThatWouldOverflowIsOneClearLine) {
  Json j = find_spec("l4").to_json();
  for (const char* cc : {"9.99999999999999999999", "9.123", "x.0", "9.0\n"}) {
    j["compute_capability"] = cc;
    try {
      HardwareSpec::from_json(j, "my.json");
      FAIL() << "accepted " << cc;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("must look like \"9.0\""), std::string::npos) << e.what();
    }
  }
  j["compute_capability"] = "8.9";
  EXPECT_EQ(HardwareSpec::from_json(j, "my.json").cc_minor, 9);
  j["compute_capability"] = "9.10";
  EXPECT_EQ(HardwareSpec::from_json(j, "my.json").cc_minor, 10);
}

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("tessera_atomic_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string slurp(const fs::path& p) { return read_file(p.string()); }
  // Files in the directory other than `keep` (leftover temporaries).
  int strays(std::initializer_list<std::string> keep) {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      if (std::find(keep.begin(), keep.end(), e.path().filename().string()) == keep.end()) ++n;
    return n;
  }
  fs::path dir_;
};

TEST_F(AtomicWrite, ReplacesARegularFileWholeAndLeavesNoTemporary) {
  const fs::path out = dir_ / "out.txt";
  write_file_atomic(out.string(), "first", "the export");
  write_file_atomic(out.string(), "second, longer", "the export");
  EXPECT_EQ(slurp(out), "second, longer");
  EXPECT_EQ(strays({"out.txt"}), 0);
  // A fixed "OUT.tmp" was once used: a link planted there redirected the write.
  fs::create_symlink(dir_ / "victim", dir_ / "out.txt.tmp");
  write_file_atomic(out.string(), "third", "the export");
  EXPECT_EQ(slurp(out), "third");
  EXPECT_FALSE(fs::exists(dir_ / "victim"));
}

TEST_F(AtomicWrite, RefusesWhatIsNotARegularFileAndChangesNothing) {
  try {
    write_file_atomic(dir_.string(), "x", "the export");
    FAIL() << "wrote over a directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file (a directory"), std::string::npos) << e.what();
  }
  EXPECT_EQ(strays({}), 0) << "a temporary file was left behind";
  EXPECT_THROW(write_file_atomic("/dev/null", "x", "the export"), UserError);
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
  // A missing directory: nothing is created, the error names the file.
  try {
    write_file_atomic((dir_ / "no" / "such" / "out.txt").string(), "x", "the model");
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("out.txt: cannot write the model"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_ / "no"));
}

TEST_F(AtomicWrite, WritesThroughASymbolicLinkWhichStays) {
  const fs::path real = dir_ / "real.txt", link = dir_ / "link.txt";
  write_file_atomic(real.string(), "old", "the export");
  fs::create_symlink(real, link);
  write_file_atomic(link.string(), "new", "the export");
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(slurp(real), "new");
}

TEST_F(AtomicWrite, ReadFileNamesWhatCannotBeRead) {
  EXPECT_THROW(read_file((dir_ / "missing").string()), UserError);
  try {
    read_file(dir_.string());
    FAIL() << "read a directory";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera
