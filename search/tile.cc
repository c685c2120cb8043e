#include "search/tile.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "costmodel/analytic.h"
#include "core/error.h"
#include "kernels/families.h"

namespace tessera::search {
namespace {

struct Tile {
  int64_t bm, bn;
  auto operator<=>(const Tile&) const = default;
};

// Every schedule of `f` with block_m = t.bm, block_n = t.bn that validate() accepts, taking
// for each combination of the other knobs only the first valid value of "vec" in the
// family's order (the widest aligned load).
std::vector<Schedule> complete(const kernels::KernelFamily& f, const Workload& w, const HardwareSpec& hw,
                               std::vector<kernels::KnobDomain> domains, Tile t) {
  // The tile's own values only: the other tiles' combinations are never built.
  for (kernels::KnobDomain& d : domains) {
    if (d.name == knob::kBlockM) d.values = {t.bm};
    if (d.name == knob::kBlockN) d.values = {t.bn};
  }
  std::vector<Schedule> out;
  std::vector<size_t> index(domains.size(), 0);
  std::set<std::string> seen;  // schedules without their vec
  while (true) {
    Schedule s{std::string(f.name()), {}};
    for (size_t i = 0; i < domains.size(); ++i) s.knobs.emplace_back(domains[i].name, domains[i].values[index[i]]);
    if (!f.validate(s, w, hw)) {
      std::string without_vec;
      for (const auto& [name, value] : s.knobs)
        if (name != "vec") without_vec += name + "=" + std::to_string(value) + ",";
      if (seen.insert(without_vec).second) out.push_back(s);
    }
    size_t i = 0;
    for (; i < domains.size(); ++i) {
      if (++index[i] < domains[i].values.size()) break;
      index[i] = 0;
    }
    if (i == domains.size()) break;
  }
  return out;
}

// FLOPs per byte a block loads, and bytes staged per pipeline step, of a completed tile.
std::pair<double, double> intensity(const kernels::KernelFamily& f, const Workload& w, const Schedule& s) {
  kernels::TilePlan p = f.tile_plan(w, s);
  TensorExpr e = p.modeled.expr();
  std::vector<AxisRange> block, step;
  double points = 1;  // useful work: a tile wider than its axis does the rest for nothing
  for (size_t a = 0; a < e.axes.size(); ++a) {
    block.push_back({0, p.block[a]});
    step.push_back({0, p.step[a]});
    points *= double(std::min(p.block[a], e.axes[a].extent));
  }
  double in_bytes = 0, step_bytes = 0;
  for (size_t t = 0; t < e.tensors.size(); ++t)
    if (e.tensors[t].role == TensorRole::kInput) {
      in_bytes += double(e.footprint_elements(t, block)) * dtype_bytes(e.tensors[t].dtype);
      step_bytes += double(e.footprint_elements(t, step)) * dtype_bytes(e.tensors[t].dtype);
    }
  return {points * e.flops_per_point / std::max(in_bytes, 1.0), step_bytes};
}

double grid_blocks(const kernels::KernelFamily& f, const Workload& w, const Schedule& s) {
  return costmodel::spatial_blocks(f.tile_plan(w, s));
}

std::vector<int64_t> domain_of(const std::vector<kernels::KnobDomain>& domains, std::string_view name) {
  for (const auto& d : domains)
    if (d.name == name) {
      std::vector<int64_t> v = d.values;
      std::sort(v.begin(), v.end());
      return v;
    }
  return {};
}

// The rTile path of one tiled family, with every tile's completions.
std::vector<Schedule> roller(const kernels::KernelFamily& f, const Workload& w, const HardwareSpec& hw,
                             std::vector<std::string>& path) {
  std::vector<kernels::KnobDomain> domains = f.space(w, hw);
  std::vector<int64_t> ms = domain_of(domains, knob::kBlockM), ns = domain_of(domains, knob::kBlockN);
  std::map<Tile, std::vector<Schedule>> completed;
  auto completions = [&](Tile t) -> const std::vector<Schedule>& {
    auto it = completed.find(t);
    if (it == completed.end()) it = completed.emplace(t, complete(f, w, hw, domains, t)).first;
    return it->second;
  };
  // The smallest aligned tile that fits.
  std::optional<Tile> cur;
  for (int64_t m : ms) {
    for (int64_t n : ns)
      if (!completions({m, n}).empty()) {
        cur = Tile{m, n};
        break;
      }
    if (cur) break;
  }
  if (!cur) return {};
  auto label = [&](Tile t) {
    return std::string(f.name()) + " " + std::to_string(t.bm) + "x" + std::to_string(t.bn);
  };
  std::set<Tile> tiles{*cur};
  std::vector<Tile> walked{*cur};
  path.push_back(label(*cur));
  auto next_value = [](const std::vector<int64_t>& d, int64_t v) -> std::optional<int64_t> {
    auto it = std::upper_bound(d.begin(), d.end(), v);
    return it == d.end() ? std::nullopt : std::optional<int64_t>(*it);
  };
  // Blocks a tile's grid can run: its tiles times the deepest split-K among its completions
  // (a split tile's slices are blocks too). Counting the tiles alone stopped the path at the
  // narrowest tiles of small problems (a batch-1 14x14 convolution: 64x8 tiles fill 132 SMs,
  // 64x16 ones do not), short of the split 64x64 tiles the model ranked best.
  auto most_blocks = [&](const std::vector<Schedule>& c) {
    int64_t split = 1;
    for (const Schedule& s : c) split = std::max(split, s.find(knob::kSplitK).value_or(1));
    return grid_blocks(f, w, c.front()) * double(split);
  };
  while (true) {
    const Schedule& here = completions(*cur).front();
    auto [ai, step_bytes] = intensity(f, w, here);
    double blocks_here = most_blocks(completions(*cur));
    std::optional<Tile> best;
    double best_gain = 0;
    for (int axis = 0; axis < 2; ++axis) {
      std::optional<int64_t> v = next_value(axis == 0 ? ms : ns, axis == 0 ? cur->bm : cur->bn);
      if (!v) continue;
      Tile t = axis == 0 ? Tile{*v, cur->bn} : Tile{cur->bm, *v};
      const std::vector<Schedule>& c = completions(t);
      if (c.empty()) continue;  // out of shared memory or registers
      tiles.insert(t);          // a neighbour: ranked by the model even if not taken
      auto [bi, bytes] = intensity(f, w, c.front());
      // Scale-out: keep at least one block per SM.
      double blocks = most_blocks(c);
      if (blocks < hw.sm_count && blocks < blocks_here) continue;
      double gain = (bi - ai) / std::max(bytes - step_bytes, 1.0);
      if (gain > best_gain) best_gain = gain, best = t;
    }
    if (!best) break;
    cur = best;
    walked.push_back(*cur);
    path.push_back(label(*cur));
  }
  // The model also ranks the path's other neighbours in the tile lattice, down and diagonal
  // ones included: where scale-up stops short of a wave, trading rows for columns (128x128 ->
  // 64x192) often fills the last wave better.
  auto step_in = [](const std::vector<int64_t>& d, int64_t v, int dir) -> std::optional<int64_t> {
    auto it = std::find(d.begin(), d.end(), v);
    if (it == d.end()) return std::nullopt;
    const auto i = static_cast<std::ptrdiff_t>(it - d.begin()) + dir;
    if (i < 0 || i >= static_cast<std::ptrdiff_t>(d.size())) return std::nullopt;
    return d[static_cast<size_t>(i)];
  };
  for (const Tile& t : walked)
    for (int dm = -1; dm <= 1; ++dm)
      for (int dn = -1; dn <= 1; ++dn) {
        std::optional<int64_t> m = step_in(ms, t.bm, dm), n = step_in(ns, t.bn, dn);
        if (m && n && !completions({*m, *n}).empty()) tiles.insert({*m, *n});
      }
  std::vector<Schedule> out;
  for (const Tile& t : tiles) {
    const std::vector<Schedule>& c = completions(t);
    out.insert(out.end(), c.begin(), c.end());
  }
  return out;
}

std::vector<Candidate> rank(std::vector<Candidate> cs, costmodel::CostModel& model) {
  const std::vector<double> us = model.predict(cs);
  for (size_t i = 0; i < cs.size(); ++i) cs[i].predicted_us = us[i];
  std::stable_sort(cs.begin(), cs.end(),
                   [](const Candidate& a, const Candidate& b) { return *a.predicted_us < *b.predicted_us; });
  return cs;
}

}  // namespace

Construction construct(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
                       costmodel::CostModel& model, const ConstructOptions& options) {
  auto start = std::chrono::steady_clock::now();
  std::vector<const kernels::KernelFamily*> fs = families.for_workload(w);
  if (fs.empty()) throw UserError("no kernel family runs " + w.key());
  Construction out;
  std::vector<Candidate> pool;
  std::set<std::string> untiled;  // families whose whole space is ranked (no block tile)
  for (const kernels::KernelFamily* f : fs) {
    std::vector<kernels::KnobDomain> domains = f->space(w, hw);
    bool tiled = !domain_of(domains, knob::kBlockM).empty() && !domain_of(domains, knob::kBlockN).empty();
    if (!tiled) untiled.insert(std::string(f->name()));
    if (tiled) {
      for (Schedule& s : roller(*f, w, hw, out.path)) pool.push_back({w, std::move(s), std::nullopt});
    } else {
      for (Schedule& s : kernels::enumerate_space(*f, w, hw))
        if (!f->validate(s, w, hw)) pool.push_back({w, std::move(s), std::nullopt});
    }
  }
  out.ranked = static_cast<int64_t>(pool.size());
  pool = rank(std::move(pool), model);
  // The model is least sure between families (different code, different constants; on the
  // H100's convolutions it was 1.17x optimistic for mma.sync plans and right for wgmma ones) and
  // between schedules that share a block shape and differ only in pipelining or rasterisation,
  // so the top k first takes each family's best (of each of its variants: on the H100's
  // Inception-v3 stem at batch 1, conv_wgmma's gathered loads measured 4.99 us and its row
  // strips 6.08, where the model put the strips 2 % ahead), then the best schedule of each
  // distinct shape (tile and thread layout), then fills up with the next best. Families without a block tile
  // (row operators, elementwise, direct and skinny kernels) first get their best schedule of
  // each value of their first knob, the threads given a row or a block: on the H200's BERT
  // layernorm (4096x768) the model's 8 best all had 8 or 16 threads a row, 0.84x the copy
  // baseline, while 64 threads a row measured 0.97x.
  auto layout = [](const Schedule& s) {
    return s.knobs.empty() ? s.family : s.family + "," + s.knobs.front().first + "=" + std::to_string(s.knobs.front().second);
  };
  auto shape = [](const Schedule& s) {
    std::string key = s.family;
    for (const auto& [name, value] : s.knobs)
      if (name != knob::kStages && name != knob::kGroupM && name != knob::kSplitK && name != knob::kBlockK &&
          name != "vec" && name != "single_pass" && name != "items")
        key += "," + name + "=" + std::to_string(value);
    return key;
  };
  // The slots kept for diversity go only to schedules within kDiversityReach of the best
  // prediction: the model's errors between families and layouts were below 2x where measured,
  // while a family far off the mark (conv_direct's best on a dense 1x1 convolution, predicted
  // 48x the best, measured at 670x cuDNN's time on the H100) would take slots from the tiles that
  // compete. Beyond the reach a schedule still comes in by rank if slots are left.
  constexpr double kDiversityReach = 3.0;
  const double reach = pool.empty() || !pool.front().predicted_us ? 0.0 : *pool.front().predicted_us * kDiversityReach;
  std::set<std::string> families_taken, layouts, shapes, keys;
  // The model also misjudges how deep a ring a load-bound tile needs: measured on the H100,
  // 6272x256x1024 on 128x128 tiles took 14.0 us with 3 stages and 11.3 us with 5, and BERT's
  // attention output GEMM (4096x768x768 + bias + residual) 16.6 us on 192x128 tiles with 3 and
  // 14.5 us with 4, where the model ranked 3 ahead and a 128x192 tile first. So after the
  // families' bests, the twins with the most stages the pool holds (within reach) of the two
  // best distinct shapes take a slot each.
  auto twin = [](const Schedule& s) {
    Schedule t = s;
    std::erase_if(t.knobs, [](const auto& k) { return k.first == knob::kStages; });
    return t.key();
  };
  auto add_deepest_twins = [&] {
    std::set<std::string> done;
    for (const Candidate& lead : pool) {
      if (done.size() == 2 || !std::isfinite(*lead.predicted_us) || *lead.predicted_us > reach) break;
      if (!lead.schedule.find(knob::kStages) || !done.insert(shape(lead.schedule)).second) continue;
      const std::string key = twin(lead.schedule);
      const Candidate* deepest = &lead;
      for (const Candidate& c : pool)
        if (std::isfinite(*c.predicted_us) && *c.predicted_us <= reach && twin(c.schedule) == key &&
            c.schedule.find(knob::kStages).value_or(0) > *deepest->schedule.find(knob::kStages))
          deepest = &c;
      if (deepest != &lead && static_cast<int>(out.candidates.size()) < options.top_k &&
          keys.insert(deepest->schedule.key()).second)
        out.candidates.push_back(*deepest);
    }
  };
  for (int pass = 0; pass < 4; ++pass) {
    if (pass == 1) add_deepest_twins();
    for (Candidate& c : pool) {
      if (static_cast<int>(out.candidates.size()) >= options.top_k) break;
      if (!std::isfinite(*c.predicted_us) || keys.count(c.schedule.key())) continue;
      if (pass < 3 && *c.predicted_us > reach) continue;
      const std::string variant = c.schedule.family + "/" + families.find(c.schedule.family)->variant(c.schedule);
      if (pass == 0 && !families_taken.insert(variant).second) continue;
      const bool whole_space = untiled.count(c.schedule.family) > 0;
      if (pass == 1 && !whole_space) continue;
      if (pass <= 1 && whole_space && !layouts.insert(layout(c.schedule)).second) continue;
      if (pass <= 2 && !shapes.insert(shape(c.schedule)).second) continue;
      keys.insert(c.schedule.key());
      out.candidates.push_back(c);
    }
  }
  std::stable_sort(out.candidates.begin(), out.candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return *a.predicted_us < *b.predicted_us; });
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

std::vector<Candidate> rank_all(const Workload& w, const kernels::FamilyRegistry& families, const HardwareSpec& hw,
                                costmodel::CostModel& model, bool sorted) {
  std::vector<Candidate> all;
  for (const kernels::KernelFamily* f : families.for_workload(w))
    for (Schedule& s : kernels::enumerate_space(*f, w, hw))
      if (!f->validate(s, w, hw)) all.push_back({w, std::move(s), std::nullopt});
  if (sorted) return rank(std::move(all), model);
  const std::vector<double> us = model.predict(all);
  for (size_t i = 0; i < all.size(); ++i) all[i].predicted_us = us[i];
  return all;
}

}  // namespace tessera::search
