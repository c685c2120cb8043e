#include "costmodel/evaluate.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/hash.h"
#include "costmodel/metrics.h"

namespace tessera::costmodel {

std::vector<Candidate> candidates_of(std::span<const Record> records) {
  std::vector<Candidate> cs;
  cs.reserve(records.size());
  for (const Record& r : records) cs.push_back({r.workload, r.schedule, std::nullopt});
  return cs;
}

EvalReport evaluate(std::span<const Record> records, const Predictor& predict) {
  std::map<std::pair<std::string, std::string>, std::vector<Record>> groups;
  for (const Record& r : records)
    if (r.measurement.status == Status::kOk)
      groups[{r.workload.key(), r.target.fingerprint()}].push_back(r);
  std::vector<GroupEval> scored;
  for (auto& [key, recs] : groups) {
    if (recs.size() < 2) continue;
    std::vector<double> predicted = predict(recs), measured;
    for (const Record& r : recs) measured.push_back(r.measurement.median_us);
    GroupEval g;
    g.workload = key.first;
    g.target = key.second;
    g.records = static_cast<int>(recs.size());
    g.spearman = spearman(predicted, measured);
    g.pairwise = pairwise_accuracy(predicted, measured);
    g.top1 = top_k_score(predicted, measured, 1);
    g.top5 = top_k_score(predicted, measured, 5);
    g.best_us = *std::min_element(measured.begin(), measured.end());
    g.predicted_pick_us = g.best_us / g.top1;
    scored.push_back(g);
  }
  return combine(std::move(scored));
}

EvalReport combine(std::vector<GroupEval> groups) {
  EvalReport out;
  double sum_best = 0, sum_top1 = 0, sum_top5 = 0;
  for (const GroupEval& g : groups) {
    sum_best += g.best_us;
    sum_top1 += g.best_us / g.top1;
    sum_top5 += g.best_us / g.top5;
    out.spearman += g.spearman;
    out.pairwise += g.pairwise;
    out.records += g.records;
  }
  out.groups = std::move(groups);
  if (!out.groups.empty()) {
    out.spearman /= double(out.groups.size());
    out.pairwise /= double(out.groups.size());
    out.top1 = sum_best / sum_top1;
    out.top5 = sum_best / sum_top5;
  }
  return out;
}

std::map<std::string, int> assign_folds(std::span<const Record> records, int folds) {
  std::vector<std::pair<uint64_t, std::string>> keys;
  std::map<std::string, int> fold_of;
  for (const Record& r : records)
    if (!fold_of.count(r.workload.key())) {
      fold_of[r.workload.key()] = 0;
      keys.emplace_back(stable_hash(r.workload.key()), r.workload.key());
    }
  std::sort(keys.begin(), keys.end());
  folds = std::max(1, std::min<int>(folds, static_cast<int>(keys.size())));
  for (size_t i = 0; i < keys.size(); ++i) fold_of[keys[i].second] = static_cast<int>(i % static_cast<size_t>(folds));
  return fold_of;
}

EvalReport cross_validate(std::span<const Record> records, int folds, const Trainer& train) {
  std::map<std::string, int> fold_of = assign_folds(records, folds);
  // Each record's prediction by the model that did not see its workload.
  auto id = [](const Record& r) { return r.workload.key() + "|" + r.target.fingerprint() + "|" + r.schedule.key(); };
  std::map<std::string, double> held_out;
  for (int f = 0; f < folds; ++f) {  // folds beyond the workloads' count are empty
    std::vector<Record> training, test;
    for (const Record& r : records) (fold_of[r.workload.key()] == f ? test : training).push_back(r);
    if (test.empty()) continue;
    Predictor predict = train(training);
    std::map<std::pair<std::string, std::string>, std::vector<Record>> groups;
    for (const Record& r : test) groups[{r.workload.key(), r.target.fingerprint()}].push_back(r);
    for (auto& [key, group] : groups) {
      std::vector<double> p = predict(group);
      for (size_t i = 0; i < group.size(); ++i) held_out[id(group[i])] = p[i];
    }
  }
  return evaluate(records, [&](std::span<const Record> group) {
    std::vector<double> p;
    for (const Record& r : group) p.push_back(held_out.at(id(r)));
    return p;
  });
}

Json EvalReport::to_json() const {
  Json gs = Json::array();
  for (const GroupEval& g : groups)
    gs.push_back(Json{{"workload", g.workload}, {"target", g.target}, {"records", g.records}, {"spearman", g.spearman},
                      {"pairwise", g.pairwise}, {"top1", g.top1}, {"top5", g.top5}, {"best_us", g.best_us},
                      {"predicted_pick_us", g.predicted_pick_us}});
  return Json{{"groups", gs},        {"records", records}, {"spearman", spearman},
              {"pairwise", pairwise}, {"top1", top1},       {"top5", top5}};
}

std::string EvalReport::summary_line() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "pairwise=%.3f spearman=%.3f top1=%.3f top5=%.3f groups=%zu records=%d", pairwise,
                spearman, top1, top5, groups.size(), records);
  return buf;
}

}  // namespace tessera::costmodel
