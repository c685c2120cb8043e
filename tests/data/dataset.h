// The measured H100 dataset of tests/data (README.md there), unpacked by tests/CMakeLists.txt
// to TESSERA_DATASET; loaded once per test process.
#pragma once

#include <fstream>
#include <sstream>
#include <vector>

#include "core/measurement.h"
#include "db/export.h"

namespace tessera::testing {

/// The records of a `db export --format jsonl` file.
inline std::vector<Record> load_records(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return db::import_jsonl(text.str(), path);
}

inline const std::vector<Record>& h100_dataset() {
  static const std::vector<Record> records = load_records(TESSERA_DATASET);
  return records;
}

}  // namespace tessera::testing
