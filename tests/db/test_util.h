// Helpers shared by the database tests: temporary database paths and synthetic records.
// The records' times are made up for testing storage, never presented as measurements.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/measurement.h"

namespace tessera::db::testing {

/// A fresh path in the test temp dir; its files (and -wal, -shm) are removed on destruction.
class TempDb {
 public:
  explicit TempDb(const std::string& name)
      : path_(::testing::TempDir() + "tessera_" + name + "_" + std::to_string(getpid()) + ".db") {
    remove();
  }
  ~TempDb() { remove(); }
  const std::string& path() const { return path_; }
  void remove() const {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(path_ + suffix);
  }

 private:
  std::string path_;
};

inline Target test_target(const std::string& spec = "h100_sxm", const std::string& driver = "580.159.04 CUDA 13.0") {
  Target t = Target::for_spec(find_spec(spec), "13.0");
  t.gpu_name = t.gpu_name + " (test)";
  t.driver_version = driver;
  t.runtime_version = "13.0";
  return t;
}

/// A gemm_tc record with the given tile and median; `seq` makes otherwise equal records distinct.
inline Record gemm_record(const std::string& spec, int64_t block_m, double median_us, int64_t seq = 0,
                          Status status = Status::kOk, const Target& target = test_target()) {
  Record r;
  r.workload = Workload::parse(spec);
  r.target = target;
  r.schedule = {"gemm_tc", {{"block_m", block_m}, {"block_n", 128}, {"block_k", 32}, {"warps", 4}, {"stages", 3}}};
  r.measurement.status = status;
  if (status == Status::kOk) {
    r.measurement.set_times({median_us * 0.99, median_us, median_us * 1.02});
    r.measurement.vendor_us = 100.0;
  } else {
    r.measurement.error = "synthetic failure";
  }
  r.measurement.registers = 128;
  r.measurement.smem_bytes = 49152;
  r.predicted_us = median_us * 1.1;
  r.feature_version = 1;
  r.tool_version = "test";
  r.timestamp_s = 1795000000 + seq;
  return r;
}

}  // namespace tessera::db::testing
