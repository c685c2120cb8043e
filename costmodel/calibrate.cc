#include "costmodel/calibrate.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "costmodel/analytic.h"

namespace tessera::costmodel {
namespace {

constexpr int kTerms = 9;
using Point = std::array<double, kTerms>;

double logistic(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double logit(double p) { return std::log(p / (1.0 - p)); }

// Unconstrained coordinates of the terms and back: shares through a logistic (kept off the
// bounds at the start), positive values through exp (zero starts at a small value).
Point to_point(const AsyncMmaTerms& t) {
  auto share = [](double v) { return logit(std::clamp(v, 0.02, 0.98)); };
  auto positive = [](double v, double floor) { return std::log(std::max(v, floor)); };
  return {share((t.efficiency - 0.01) / 0.99), share(t.overlap),       positive(t.store_cycles, 0.01),
          positive(t.op_cycles, 0.01),         positive(t.tma_store_share, 0.05), share(t.turn_hidden),
          share(t.multicast_saving),           positive(t.load_latency_us, 0.2), share(t.cluster_cost)};
}

AsyncMmaTerms to_terms(const Point& x) {
  AsyncMmaTerms t;
  t.efficiency = 0.01 + 0.99 * logistic(x[0]);
  t.overlap = logistic(x[1]);
  t.store_cycles = std::min(std::exp(x[2]), 1e3);
  t.op_cycles = std::min(std::exp(x[3]), 1e3);
  t.tma_store_share = std::min(std::exp(x[4]), 10.0);
  t.turn_hidden = logistic(x[5]);
  t.multicast_saving = logistic(x[6]);
  t.load_latency_us = std::min(std::exp(x[7]), 100.0);
  t.cluster_cost = logistic(x[8]);
  return t;
}

// The tile plans of the async-MMA records and their measured times.
struct Sample {
  kernels::TilePlan plan;
  double measured_us;
  std::string workload;
};

std::vector<Sample> samples_of(std::span<const Record> records, const kernels::FamilyRegistry& families) {
  std::vector<Sample> out;
  for (const Record& r : records) {
    if (r.measurement.status != Status::kOk || !(r.measurement.median_us > 0)) continue;
    const kernels::KernelFamily* f = families.find(r.schedule.family);
    if (!f) continue;
    kernels::TilePlan p = f->tile_plan(r.workload, r.schedule);
    if (!p.async_mma) continue;
    out.push_back({std::move(p), r.measurement.median_us, r.workload.key()});
  }
  return out;
}

// ln(predicted / measured); an infeasible estimate of a kernel that ran counts as a factor of e^4.
double log_error(double predicted_us, double measured_us) {
  return std::isfinite(predicted_us) && predicted_us > 0 ? std::log(predicted_us / measured_us) : 4.0;
}

double mean_squared_log_error(const std::vector<Sample>& samples, const HardwareSpec& hw) {
  double sum = 0;
  for (const Sample& s : samples) {
    const double d = log_error(estimate(s.plan, hw).us, s.measured_us);
    sum += d * d;
  }
  return samples.empty() ? 0.0 : sum / double(samples.size());
}

// Nelder-Mead (reflection 1, expansion 2, contraction 1/2, shrink 1/2) from `start` with
// steps of `step` along each axis; stops after `budget` evaluations or when the simplex's
// values agree to `tolerance`.
Point nelder_mead(const std::function<double(const Point&)>& f, Point start, double step, int budget, double tolerance,
                  int& evaluations) {
  std::array<Point, kTerms + 1> x;
  std::array<double, kTerms + 1> fx;
  x[0] = start;
  for (int i = 0; i < kTerms; ++i) {
    x[i + 1] = start;
    x[i + 1][i] += step;
  }
  for (int i = 0; i <= kTerms; ++i) fx[i] = f(x[i]);
  evaluations += kTerms + 1;
  auto along = [](const Point& from, const Point& to, double t) {
    Point p;
    for (int i = 0; i < kTerms; ++i) p[i] = from[i] + t * (to[i] - from[i]);
    return p;
  };
  while (evaluations < budget) {
    std::array<int, kTerms + 1> order;
    for (int i = 0; i <= kTerms; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return fx[a] < fx[b]; });
    const int best = order.front(), worst = order.back(), second = order[kTerms - 1];
    if (fx[worst] - fx[best] < tolerance) break;
    Point centroid{};
    for (int i = 0; i <= kTerms; ++i)
      if (i != worst)
        for (int d = 0; d < kTerms; ++d) centroid[d] += x[i][d] / kTerms;
    Point reflected = along(centroid, x[worst], -1.0);
    double fr = f(reflected);
    ++evaluations;
    if (fr < fx[best]) {
      Point expanded = along(centroid, x[worst], -2.0);
      double fe = f(expanded);
      ++evaluations;
      if (fe < fr) {
        x[worst] = expanded, fx[worst] = fe;
      } else {
        x[worst] = reflected, fx[worst] = fr;
      }
    } else if (fr < fx[second]) {
      x[worst] = reflected, fx[worst] = fr;
    } else {
      Point contracted = fr < fx[worst] ? along(centroid, reflected, 0.5) : along(centroid, x[worst], 0.5);
      double fc = f(contracted);
      ++evaluations;
      if (fc < std::min(fr, fx[worst])) {
        x[worst] = contracted, fx[worst] = fc;
      } else {
        for (int i = 0; i <= kTerms; ++i) {
          if (i == best) continue;
          x[i] = along(x[best], x[i], 0.5);
          fx[i] = f(x[i]);
          ++evaluations;
        }
      }
    }
  }
  int best = static_cast<int>(std::min_element(fx.begin(), fx.end()) - fx.begin());
  return x[best];
}

}  // namespace

std::vector<Record> async_mma_records(std::span<const Record> records, const kernels::FamilyRegistry& families) {
  std::vector<Record> out;
  for (const Record& r : records) {
    if (r.measurement.status != Status::kOk) continue;
    const kernels::KernelFamily* f = families.find(r.schedule.family);
    if (f && f->tile_plan(r.workload, r.schedule).async_mma) out.push_back(r);
  }
  return out;
}

double async_mma_rmse(std::span<const Record> records, const kernels::FamilyRegistry& families, const HardwareSpec& hw) {
  return std::sqrt(mean_squared_log_error(samples_of(records, families), hw));
}

AsyncMmaFit fit_async_mma_terms(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                const HardwareSpec& hw, int min_records) {
  const std::vector<Sample> samples = samples_of(records, families);
  if (static_cast<int>(samples.size()) < min_records)
    throw UserError("fitting the async-MMA terms needs at least " + std::to_string(min_records) +
                    " correct records of async-MMA (wgmma) schedules (found " + std::to_string(samples.size()) + ")");
  AsyncMmaFit fit;
  fit.records = static_cast<int>(samples.size());
  std::set<std::string> workloads;
  for (const Sample& s : samples) workloads.insert(s.workload);
  fit.workloads = static_cast<int>(workloads.size());
  fit.rmse_before = std::sqrt(mean_squared_log_error(samples, hw));
  HardwareSpec trial = hw;
  auto objective = [&](const Point& x) {
    trial.async_mma = to_terms(x);
    return mean_squared_log_error(samples, trial);
  };
  // Restarts from the best point with a smaller simplex get the search out of the flat
  // valleys a single run stalls in.
  Point x = to_point(hw.async_mma);
  double step = 1.0;
  for (int round = 0; round < 6; ++round, step *= 0.6)
    x = nelder_mead(objective, x, step, fit.evaluations + 1200, 1e-10, fit.evaluations);
  fit.terms = to_terms(x);
  trial.async_mma = fit.terms;
  fit.rmse_after = std::sqrt(mean_squared_log_error(samples, trial));
  if (fit.rmse_after > fit.rmse_before) {  // never worse than where it started
    fit.terms = hw.async_mma;
    fit.rmse_after = fit.rmse_before;
  }
  return fit;
}

EvalReport cross_validate_async_mma(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                    const HardwareSpec& hw, int folds, double* rmse) {
  const std::vector<Record> mine = async_mma_records(records, families);
  double squared = 0;
  int counted = 0;
  EvalReport report = cross_validate(mine, folds, [&](std::span<const Record> training) -> Predictor {
    auto fitted = std::make_shared<HardwareSpec>(hw);
    fitted->async_mma = fit_async_mma_terms(training, families, hw, 1).terms;
    return [&, fitted](std::span<const Record> group) {
      std::vector<double> p = AnalyticModel(families, *fitted).predict(candidates_of(group));
      for (size_t i = 0; i < group.size(); ++i) {
        const double d = log_error(p[i], group[i].measurement.median_us);
        squared += d * d;
        ++counted;
      }
      return p;
    };
  });
  if (rmse) *rmse = counted ? std::sqrt(squared / counted) : 0.0;
  return report;
}

}  // namespace tessera::costmodel
