#include "costmodel/evaluate.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "costmodel/metrics.h"

namespace tessera::costmodel {

EvalReport evaluate(std::span<const Record> records,
                    const std::function<std::vector<double>(std::span<const Record>)>& predict) {
  std::map<std::pair<std::string, std::string>, std::vector<Record>> groups;
  for (const Record& r : records)
    if (r.measurement.status == Status::kOk)
      groups[{r.workload.key(), r.target.fingerprint()}].push_back(r);
  EvalReport out;
  double sum_best = 0, sum_top1 = 0, sum_top5 = 0;
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
    sum_best += g.best_us;
    sum_top1 += g.best_us / g.top1;
    sum_top5 += g.best_us / g.top5;
    out.spearman += g.spearman;
    out.pairwise += g.pairwise;
    out.records += g.records;
    out.groups.push_back(g);
  }
  if (!out.groups.empty()) {
    out.spearman /= double(out.groups.size());
    out.pairwise /= double(out.groups.size());
    out.top1 = sum_best / sum_top1;
    out.top5 = sum_best / sum_top5;
  }
  return out;
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
