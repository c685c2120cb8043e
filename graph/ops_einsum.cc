// Shape inference and host evaluation of ONNX's Einsum (opset 12+, in ONNX's definition): an
// equation of comma-separated input terms, each a letter per dimension (a-z, A-Z) with at most
// one "..." standing for the dimensions the letters leave, and optionally "->" and the output
// term. Without "->" the output is the ellipsis' dimensions, then the letters that occur once,
// in alphabetical order. A letter repeated within a term takes that term's diagonal; letters
// not in the output are summed over. The ellipsis' dimensions broadcast across the inputs (1
// against n) as in numpy; a letter's dimensions must agree. Called from infer()
// (shape_inference.cc) and evaluate() (evaluation.cc).
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "graph/op_semantics.h"

namespace tessera::graph::op_detail {
namespace {

constexpr int kLetters = 52;  // labels 0-51 are letters; the ellipsis' dimensions come after

int letter_label(char ch) { return std::islower(static_cast<unsigned char>(ch)) ? ch - 'a' : ch - 'A' + 26; }

struct Term {
  std::vector<int> labels;  // per dimension (after the ellipsis is expanded)
  bool ellipsis = false;
};

// The equation with the ellipsis expanded: each input's labels, the output's, every label's size.
struct Plan {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
  std::vector<int64_t> size;  // by label
  std::vector<int> summed;    // labels in no output dimension
};

// One term (without spaces): letters and at most one "...".
Term parse_term(const Infer& c, const std::string& text) {
  Term t;
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (ch == '.') {
      if (t.ellipsis || text.compare(i, 3, "...") != 0) c.fail("equation term '" + text + "' has a stray '.'");
      t.ellipsis = true;
      t.labels.push_back(-1);  // where the ellipsis' dimensions go
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      t.labels.push_back(letter_label(ch));
    } else {
      c.fail(std::string("equation has the character '") + ch + "' (letters, ',', '...' and '->' only)");
    }
  }
  return t;
}

Plan plan(const Infer& c) {
  std::string eq;
  for (char ch : c.attr_string("equation", "")) {
    if (!std::isspace(static_cast<unsigned char>(ch))) eq += ch;
  }
  if (eq.empty()) c.fail("attribute 'equation' is missing or empty");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<Term> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(parse_term(c, lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != c.in.size())
    c.fail("equation '" + eq + "' has " + std::to_string(terms.size()) + " input terms for " +
           std::to_string(c.in.size()) + " inputs");
  Plan p;
  p.size.assign(kLetters, -1);
  // The ellipsis' dimensions, right-aligned across the inputs (numpy's broadcasting).
  int64_t ellipsis_rank = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    const int64_t letters = static_cast<int64_t>(terms[k].labels.size()) - (terms[k].ellipsis ? 1 : 0);
    const int64_t extra = c.rank(k) - letters;
    if (extra < 0 || (!terms[k].ellipsis && extra != 0))
      c.fail("input " + std::to_string(k) + " has rank " + std::to_string(c.rank(k)) + "; its term names " +
             std::to_string(letters) + " dimensions" + (terms[k].ellipsis ? " besides the ellipsis" : ""));
    ellipsis_rank = std::max(ellipsis_rank, extra);
  }
  p.size.resize(static_cast<size_t>(kLetters + ellipsis_rank), 1);
  std::vector<int> count(p.size.size(), 0);
  for (size_t k = 0; k < terms.size(); ++k) {
    const Shape& s = c.shape(k);
    const int64_t extra = c.rank(k) - (static_cast<int64_t>(terms[k].labels.size()) - (terms[k].ellipsis ? 1 : 0));
    std::vector<int> labels;
    for (int l : terms[k].labels) {
      if (l >= 0) {
        labels.push_back(l);
        continue;
      }
      for (int64_t e = 0; e < extra; ++e) labels.push_back(static_cast<int>(kLetters + ellipsis_rank - extra + e));
    }
    std::vector<int> seen_here;
    for (size_t d = 0; d < labels.size(); ++d) {
      const int l = labels[d];
      const int64_t n = s[d];
      int64_t& size = p.size[static_cast<size_t>(l)];
      if (l >= kLetters) {  // broadcast: 1 against n
        if (size != 1 && n != 1 && size != n)
          c.fail("the ellipsis' dimensions " + shape_text(s) + " of input " + std::to_string(k) + " do not broadcast");
        if (n != 1) size = n;
      } else if (size < 0) {
        size = n;
      } else if (size != n) {
        c.fail(std::string("label '") + static_cast<char>(l < 26 ? 'a' + l : 'A' + l - 26) + "' has sizes " +
               std::to_string(size) + " and " + std::to_string(n));
      }
      if (std::find(seen_here.begin(), seen_here.end(), l) == seen_here.end()) {
        seen_here.push_back(l);
        ++count[static_cast<size_t>(l)];
      }
    }
    p.inputs.push_back(std::move(labels));
  }
  if (arrow == std::string::npos) {
    for (int64_t e = 0; e < ellipsis_rank; ++e) p.output.push_back(static_cast<int>(kLetters + e));
    // Labels that occur once in the whole equation, alphabetically ('A'-'Z' before 'a'-'z').
    auto once = [&](int l) {
      int64_t n = 0;
      for (const auto& labels : p.inputs) n += std::count(labels.begin(), labels.end(), l);
      return n == 1;
    };
    for (int l = 26; l < kLetters; ++l)
      if (once(l)) p.output.push_back(l);
    for (int l = 0; l < 26; ++l)
      if (once(l)) p.output.push_back(l);
  } else {
    Term out = parse_term(c, eq.substr(arrow + 2));
    for (int l : out.labels) {
      if (l < 0) {
        for (int64_t e = 0; e < ellipsis_rank; ++e) p.output.push_back(static_cast<int>(kLetters + e));
        continue;
      }
      if (count[static_cast<size_t>(l)] == 0) c.fail("the output names a label no input has");
      if (std::find(p.output.begin(), p.output.end(), l) != p.output.end()) c.fail("the output names a label twice");
      p.output.push_back(l);
    }
  }
  for (size_t l = 0; l < p.size.size(); ++l) {
    if (count[l] > 0 && std::find(p.output.begin(), p.output.end(), static_cast<int>(l)) == p.output.end())
      p.summed.push_back(static_cast<int>(l));
  }
  return p;
}

// Steps the labels of `order` through their sizes (the last fastest); false when done.
bool next(std::vector<int64_t>& at, const std::vector<int>& order, const std::vector<int64_t>& size) {
  for (size_t d = order.size(); d-- > 0;) {
    int64_t& v = at[static_cast<size_t>(order[d])];
    if (++v < size[static_cast<size_t>(order[d])]) return true;
    v = 0;
  }
  return false;
}

template <class T>
void eval_einsum(const Infer& c, const Plan& p, const Tensor* const* in, Tensor& y) {
  const size_t n_in = p.inputs.size();
  // Each input's element offset as a sum over labels of index * stride (a diagonal's label
  // carries the strides of all its dimensions).
  std::vector<std::vector<int64_t>> stride(n_in, std::vector<int64_t>(p.size.size(), 0));
  for (size_t k = 0; k < n_in; ++k) {
    const Shape& s = c.shape(k);
    int64_t st = 1;
    for (size_t d = s.size(); d-- > 0;) {
      if (s[d] != 1) stride[k][static_cast<size_t>(p.inputs[k][d])] += st;  // size 1: broadcast
      st *= s[d];
    }
  }
  auto& out = vals<T>(y);
  std::vector<int64_t> at(p.size.size(), 0);
  const bool empty_sum = std::any_of(p.summed.begin(), p.summed.end(), [&](int l) { return p.size[static_cast<size_t>(l)] == 0; });
  for (size_t e = 0; e < out.size(); ++e) {
    double sum = 0;
    int64_t whole = 0;
    if (!empty_sum) {
      for (int l : p.summed) at[static_cast<size_t>(l)] = 0;
      do {
        double prod = 1;
        int64_t iprod = 1;
        for (size_t k = 0; k < n_in; ++k) {
          int64_t offset = 0;
          for (size_t l = 0; l < at.size(); ++l) offset += at[l] * stride[k][l];
          if constexpr (std::is_same_v<T, float>) {
            prod *= vals<T>(*in[k])[static_cast<size_t>(offset)];
          } else {
            iprod = wrap_mul(iprod, vals<T>(*in[k])[static_cast<size_t>(offset)]);
          }
        }
        sum += prod;
        whole = wrap_add(whole, iprod);
      } while (next(at, p.summed, p.size));
    }
    if constexpr (std::is_same_v<T, float>) {
      out[e] = static_cast<float>(sum);
    } else {
      out[e] = whole;
    }
    next(at, p.output, p.size);
  }
}

}  // namespace

std::vector<OutputSpec> infer_einsum(const Infer& c) {
  if (c.in.empty()) c.fail("takes at least one input");
  for (size_t k = 0; k < c.in.size(); ++k) {
    if (!c.present(k)) c.fail("input " + std::to_string(k) + " is required");
    c.expect_same_type(k, 0, "input " + std::to_string(k), "input 0");
  }
  Plan p = plan(c);
  Shape shape;
  for (int l : p.output) shape.push_back(p.size[static_cast<size_t>(l)]);
  return {{c.type(0), shape}};
}

void eval_einsum(const Infer& c, const Tensor* const* in, Tensor& y) {
  Plan p = plan(c);
  if (is_float(y.type)) return eval_einsum<float>(c, p, in, y);
  eval_einsum<int64_t>(c, p, in, y);
}

}  // namespace tessera::graph::op_detail
