// Fitting the analytic model's async-MMA terms (HardwareSpec::async_mma: the share of the
// tensor peak wgmma sustains, the share of the memory terms the pipeline hides, the epilogue's
// cycles per output element and how much TMA stores and ping-pong turns take off them, the
// share of a multicast's L2 saving that shows, the load latency the stages hide) to
// measured records of the GPU.
//
// The model's other constants stay as they are; only these eight move. The fit minimises the
// mean squared log error, ln(predicted / measured)^2, over the correct records of async-MMA
// plans, by Nelder-Mead in an unconstrained parametrisation (shares through a logistic, cycle
// counts and factors through exp), starting from the spec's current terms.
#pragma once

#include <span>
#include <vector>

#include "core/hardware.h"
#include "core/measurement.h"
#include "costmodel/evaluate.h"
#include "kernels/kernel_family.h"

namespace tessera::costmodel {

struct AsyncMmaFit {
  AsyncMmaTerms terms;      ///< the fitted terms (fitted_on left for the caller to fill)
  int records = 0;          ///< correct records of async-MMA plans fitted to
  int workloads = 0;        ///< distinct workloads among them
  double rmse_before = 0;   ///< root mean square of ln(predicted / measured) with the spec's terms
  double rmse_after = 0;    ///< the same with the fitted terms
  int evaluations = 0;      ///< objective evaluations the search took
};

/// The correct records among `records` whose schedules are async-MMA plans of a family in
/// `families` (e.g. gemm_wgmma); records of other families are left out.
std::vector<Record> async_mma_records(std::span<const Record> records, const kernels::FamilyRegistry& families);

/// Root mean square of ln(predicted / measured) over the async-MMA records with `hw`'s terms.
double async_mma_rmse(std::span<const Record> records, const kernels::FamilyRegistry& families, const HardwareSpec& hw);

/// Fits `hw.async_mma` to the async-MMA records among `records` (all measured on `hw`'s GPU;
/// the caller selects them). Throws UserError with fewer than `min_records` of them.
AsyncMmaFit fit_async_mma_terms(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                const HardwareSpec& hw, int min_records = 20);

/// Held-out check of the fit: the workloads are dealt into `folds` folds (as
/// cross_validate does) and each fold's records are ranked by the analytic model with terms
/// fitted to the other folds only. `rmse` (optional) receives the held-out log error.
EvalReport cross_validate_async_mma(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                    const HardwareSpec& hw, int folds, double* rmse = nullptr);

}  // namespace tessera::costmodel
