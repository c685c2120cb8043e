#include "measure/check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace tessera::measure {

Tolerance tolerance_for(DType out, bool tf32) {
  Tolerance t;
  switch (out) {
    case DType::kF32: t = tf32 ? Tolerance{2e-3, 1e-3} : Tolerance{1e-4, 1e-5}; break;
    case DType::kF16: t = {2e-3, 1e-3}; break;
    case DType::kBF16: t = {1e-2, 8e-3}; break;
  }
  return t;
}

Comparison compare(std::span<const float> got, std::span<const float> want, Tolerance tol) {
  TESSERA_CHECK(got.size() == want.size(), "compare: sizes differ");
  Comparison c;
  for (float v : want) c.scale = std::max(c.scale, std::fabs(static_cast<double>(v)));
  for (size_t i = 0; i < want.size(); ++i) {
    double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    bool ok = std::isfinite(got[i]) && err <= tol.abs * c.scale + tol.rel * std::fabs(want[i]);
    if (!ok) {
      if (c.bad++ == 0) c.first_bad = static_cast<int64_t>(i);
    }
    if (!std::isnan(c.worst_abs) && !(err <= c.worst_abs)) c.worst_abs = err;  // NaN is the worst, and stays
  }
  return c;
}

std::string Comparison::describe(std::span<const float> got, std::span<const float> want) const {
  char buf[256];
  if (bad == 0) {
    std::snprintf(buf, sizeof buf, "all %zu outputs within tolerance (worst abs error %g)", want.size(), worst_abs);
  } else {
    auto i = static_cast<size_t>(first_bad);
    std::snprintf(buf, sizeof buf, "%lld of %zu outputs off (first at %zu: got %g, want %g; worst abs error %g)",
                  static_cast<long long>(bad), want.size(), i, static_cast<double>(got[i]),
                  static_cast<double>(want[i]), worst_abs);
  }
  return buf;
}

int planned_repeats(double estimate_us, const MeasureOptions& o) {
  double by_time = estimate_us > 0 ? std::ceil(o.min_total_ms * 1000.0 / estimate_us) : o.max_repeats;
  double n = std::max<double>(o.min_repeats, by_time);
  return static_cast<int>(std::clamp<double>(n, 1, std::max(1, o.max_repeats)));
}

bool is_noisy(const Measurement& m, const MeasureOptions& o) { return m.spread > o.noise_threshold; }

}  // namespace tessera::measure
