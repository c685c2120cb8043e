// Wall-clock time as stored in records: whole seconds since the Unix epoch, shown in UTC; and a
// monotonic clock for intervals.
#pragma once

#include <cstdint>
#include <string>

namespace tessera {

/// Seconds since the Unix epoch, now.
int64_t now_s();

/// Seconds on a monotonic clock (steady_clock), for intervals and deadlines.
double monotonic_s();

/// "2026-11-21 05:30:00" for `seconds` since the Unix epoch, in UTC.
std::string utc_text(int64_t seconds);

}  // namespace tessera
