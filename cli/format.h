// Text output helpers for the CLI: aligned tables and human-readable quantities.
#pragma once

#include <string>
#include <vector>

namespace tessera::cli {

/// Column-aligned text table; numbers are right-aligned when a column is numeric.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  /// Rendered with two spaces between columns and a rule under the header.
  std::string str(const std::string& indent = "") const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// `value` with `digits` decimals.
std::string fixed(double value, int digits);
/// 1.37e11 FLOP -> "137.4 GFLOP"; bytes -> "100.7 MB" (decimal prefixes).
std::string si(double value, const std::string& unit);
/// Microseconds with a sensible precision: "12.3 us", "1.234 ms".
std::string time_us(double us);

}  // namespace tessera::cli
