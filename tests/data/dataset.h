// The measured H100 dataset of tests/data (README.md there), unpacked by tests/CMakeLists.txt
// to TESSERA_DATASET; loaded once per test process.
#pragma once

#include <fstream>
#include <sstream>
#include <vector>

#include "core/measurement.h"
#include "db/export.h"

namespace tessera::testing {

inline const std::vector<Record>& h100_dataset() {
  static const std::vector<Record> records = [] {
    std::ifstream in(TESSERA_DATASET, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return db::import_jsonl(text.str(), TESSERA_DATASET);
  }();
  return records;
}

}  // namespace tessera::testing
