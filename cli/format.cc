#include "cli/format.h"

#include <algorithm>
#include <cstdio>

namespace tessera::cli {
namespace {
bool numeric(const std::string& s) {
  return !s.empty() && (isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-') &&
         std::all_of(s.begin(), s.end(), [](char c) { return isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == 'e' || c == '+'; });
}
}  // namespace

std::string Table::str(const std::string& indent) const {
  std::vector<size_t> width(header_.size(), 0);
  std::vector<bool> right(header_.size(), !rows_.empty());
  for (size_t c = 0; c < header_.size(); ++c) width[c] = header_[c].size();
  for (const auto& row : rows_)
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
      if (!numeric(row[c])) right[c] = false;
    }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out = indent;
    for (size_t c = 0; c < width.size(); ++c) {
      std::string cell = c < cells.size() ? cells[c] : "";
      std::string fill(width[c] - cell.size(), ' ');
      bool last = c + 1 == width.size();
      out += right[c] ? fill + cell : (last ? cell : cell + fill);
      if (!last) out += "  ";
    }
    return out + "\n";
  };
  std::string out = line(header_);
  size_t total = 0;
  for (size_t w : width) total += w + 2;
  out += indent + std::string(total - 2, '-') + "\n";
  for (const auto& row : rows_) out += line(row);
  return out;
}

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::string si(double value, const std::string& unit) {
  const char* prefixes[] = {"", "k", "M", "G", "T", "P", "E"};
  int i = 0;
  while (value >= 1000 && i < 6) {
    value /= 1000;
    ++i;
  }
  return fixed(value, i == 0 ? 0 : 1) + " " + prefixes[i] + unit;
}

std::string time_us(double us) {
  if (us >= 1e6) return fixed(us / 1e6, 3) + " s";
  if (us >= 1e3) return fixed(us / 1e3, 3) + " ms";
  return fixed(us, us >= 100 ? 1 : 2) + " us";
}

}  // namespace tessera::cli
