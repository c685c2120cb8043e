#include "costmodel/learned.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "costmodel/analytic.h"
#include "costmodel/xgboost.h"

namespace tessera::costmodel {
namespace {

// An owned DMatrix over row-major features.
struct Matrix {
  DMatrixHandle h = nullptr;
  Matrix(const std::vector<float>& rows, size_t n) {
    size_t cols = feature_names().size();
    TESSERA_XGB_CALL(XGDMatrixCreateFromMat(rows.data(), n, cols, std::nanf(""), &h));
  }
  ~Matrix() {
    if (h) XGDMatrixFree(h);
  }
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;
  void set(const char* field, const std::vector<float>& v) {
    TESSERA_XGB_CALL(XGDMatrixSetFloatInfo(h, field, v.data(), v.size()));
  }
};

void set_params(BoosterHandle b, const LearnedOptions& o) {
  auto set = [&](const char* k, const std::string& v) { TESSERA_XGB_CALL(XGBoosterSetParam(b, k, v.c_str())); };
  set("objective", o.objective == Objective::kRankPairwise ? "rank:pairwise" : "reg:squarederror");
  set("tree_method", "hist");
  set("max_depth", std::to_string(o.max_depth));
  set("eta", std::to_string(o.eta));
  set("seed", std::to_string(o.seed));
  set("verbosity", "0");
  if (o.threads > 0) set("nthread", std::to_string(o.threads));
}

}  // namespace

std::string LearnedOptions::kind() const {
  return std::string(objective == Objective::kRankPairwise ? "xgb_rank" : "xgb_regression") +
         (analytic_prior ? "+analytic" : "");
}

LearnedOptions LearnedOptions::from_kind(const std::string& kind) {
  LearnedOptions o;
  std::string base = kind;
  o.analytic_prior = false;
  if (auto plus = kind.find('+'); plus != std::string::npos) {
    if (kind.substr(plus) != "+analytic") throw UserError("unknown learned model kind '" + kind + "'");
    base = kind.substr(0, plus);
    o.analytic_prior = true;
  }
  if (base == "xgb_rank") o.objective = Objective::kRankPairwise;
  else if (base == "xgb_regression") o.objective = Objective::kRegression;
  else throw UserError("unknown learned model kind '" + kind + "' (xgb_rank or xgb_regression, optionally +analytic)");
  return o;
}

LearnedModel::LearnedModel(const kernels::FamilyRegistry& families, HardwareSpec hw, LearnedOptions options)
    : families_(&families), options_(std::move(options)), features_(families, std::move(hw)) {}

void LearnedModel::BoosterDeleter::operator()(void* booster) const {
  XGBoosterFree(static_cast<BoosterHandle>(booster));
}

LearnedModel::~LearnedModel() = default;
LearnedModel::LearnedModel(LearnedModel&&) noexcept = default;
LearnedModel& LearnedModel::operator=(LearnedModel&&) noexcept = default;

// The analytic model's log2 estimate, oriented like the objective's predictions (the ranker
// scores faster schedules higher).
std::vector<float> LearnedModel::margins(std::span<const Candidate> candidates, const std::vector<float>& rows) const {
  static const size_t col = static_cast<size_t>(
      std::find(feature_names().begin(), feature_names().end(), "analytic.log2_us") - feature_names().begin());
  size_t width = feature_names().size();
  std::vector<float> m(candidates.size(), 0.0f);
  if (!options_.analytic_prior) return m;
  for (size_t i = 0; i < candidates.size(); ++i) {
    float log2_us = rows[i * width + col];
    m[i] = options_.objective == Objective::kRankPairwise ? -log2_us : log2_us;
  }
  return m;
}

void LearnedModel::train(std::span<const Record> records) {
  // Ok records grouped by workload (query groups must be contiguous).
  std::map<std::string, std::vector<const Record*>> groups;
  for (const Record& r : records)
    if (r.measurement.status == Status::kOk && r.measurement.median_us > 0) groups[r.workload.key()].push_back(&r);
  std::vector<Candidate> cs;
  std::vector<float> labels;
  std::vector<unsigned> sizes;
  for (auto& [key, rs] : groups) {
    double best = 1e300;
    for (const Record* r : rs) best = std::min(best, r->measurement.median_us);
    for (const Record* r : rs) {
      cs.push_back({r->workload, r->schedule, std::nullopt});
      double t = r->measurement.median_us;
      labels.push_back(static_cast<float>(options_.objective == Objective::kRankPairwise ? -std::log2(t / best)
                                                                                         : std::log2(t)));
    }
    sizes.push_back(static_cast<unsigned>(rs.size()));
  }
  if (static_cast<int>(cs.size()) < options_.min_records) return;
  std::vector<float> rows = features_.rows(cs);
  Matrix m(rows, cs.size());
  m.set("label", labels);
  std::vector<float> margin = margins(cs, rows);
  if (options_.analytic_prior) m.set("base_margin", margin);
  if (options_.objective == Objective::kRankPairwise)
    TESSERA_XGB_CALL(XGDMatrixSetUIntInfo(m.h, "group", sizes.data(), sizes.size()));
  BoosterHandle b = nullptr;
  TESSERA_XGB_CALL(XGBoosterCreate(&m.h, 1, &b));
  std::unique_ptr<void, BoosterDeleter> owned(b);
  set_params(b, options_);
  for (int it = 0; it < options_.rounds; ++it) TESSERA_XGB_CALL(XGBoosterUpdateOneIter(b, it, m.h));
  booster_ = std::move(owned);
  trained_records_ = static_cast<int>(cs.size());
}

std::vector<double> LearnedModel::predict(std::span<const Candidate> candidates) {
  std::vector<double> out;
  out.reserve(candidates.size());
  if (!trained()) {
    AnalyticModel analytic(*families_, features_.hardware());
    return analytic.predict(candidates);
  }
  if (candidates.empty()) return out;
  std::vector<float> rows = features_.rows(candidates);
  Matrix m(rows, candidates.size());
  if (options_.analytic_prior) m.set("base_margin", margins(candidates, rows));
  bst_ulong n = 0;
  const float* result = nullptr;
  TESSERA_XGB_CALL(XGBoosterPredict(static_cast<BoosterHandle>(booster_.get()), m.h, /*option_mask=*/0, /*ntree_limit=*/0,
                                    /*training=*/0, &n, &result));
  TESSERA_CHECK(n == candidates.size(), "XGBoost returned the wrong number of predictions");
  for (bst_ulong i = 0; i < n; ++i)
    out.push_back(std::exp2(options_.objective == Objective::kRankPairwise ? -double(result[i]) : double(result[i])));
  return out;
}

bool LearnedModel::learn(std::span<const Record> records) {
  for (const Record& r : records)
    if (r.measurement.status == Status::kOk) {
      kept_.push_back(r);
      ++new_since_training_;
    }
  if (new_since_training_ < options_.retrain_every && trained()) return false;
  if (static_cast<int>(kept_.size()) < options_.min_records) return false;
  train(kept_);
  new_since_training_ = 0;
  return trained();
}

void LearnedModel::remember(std::span<const Record> records) {
  for (const Record& r : records)
    if (r.measurement.status == Status::kOk) kept_.push_back(r);
}

std::string LearnedModel::serialize() const {
  TESSERA_CHECK(trained(), "an untrained model has nothing to serialize");
  bst_ulong len = 0;
  const char* buf = nullptr;
  TESSERA_XGB_CALL(XGBoosterSaveModelToBuffer(static_cast<BoosterHandle>(booster_.get()), R"({"format": "ubj"})", &len, &buf));
  return std::string(buf, len);
}

LearnedModel LearnedModel::deserialize(const kernels::FamilyRegistry& families, HardwareSpec hw, const std::string& kind,
                                       const std::string& bytes) {
  LearnedModel m(families, std::move(hw), LearnedOptions::from_kind(kind));
  BoosterHandle b = nullptr;
  TESSERA_XGB_CALL(XGBoosterCreate(nullptr, 0, &b));
  std::unique_ptr<void, BoosterDeleter> owned(b);
  if (XGBoosterLoadModelFromBuffer(b, bytes.data(), bytes.size()) != 0) {
    std::string why = XGBGetLastError();
    throw UserError("stored model of kind " + kind + " does not load: " + why.substr(0, why.find('\n')));
  }
  m.booster_ = std::move(owned);
  m.trained_records_ = -1;  // unknown: trained elsewhere
  return m;
}

EvalReport cross_validate_learned(std::span<const Record> records, const kernels::FamilyRegistry& families,
                                  const HardwareSpec& hw, const LearnedOptions& options, int folds) {
  return cross_validate(records, folds, [&](std::span<const Record> training) {
    auto model = std::make_shared<LearnedModel>(families, hw, options);
    model->train(training);
    return Predictor([model](std::span<const Record> group) { return model->predict(candidates_of(group)); });
  });
}

}  // namespace tessera::costmodel
