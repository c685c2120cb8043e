// Rewrite rules: equivalences between subgraphs that the graph search applies.
//
// Most rules are data (configs/rules/*.json): a pattern graph, a replacement graph, shape
// conditions and the shapes to verify on (format in configs/rules/README.md). A few
// families data cannot express are built in (merging contractions that share an input,
// enlarging a convolution kernel, epilogue and elementwise-chain fusion, transpose
// composition).
//
// Every rule is verified when it is loaded: on each verification case its pattern and its
// replacement are evaluated by the CPU reference (ops.h) on several random inputs and must
// agree; a rule that does not is rejected with the reason.
//
// After every rewrite, nodes whose inputs are all constants are folded into constants
// (weights are prepared once, before inference) and dead nodes are dropped.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "graph/ir.h"

namespace tessera::graph {

/// One place where a rule applies.
struct Match {
  std::vector<NodeId> nodes;   ///< matched nodes (the rule's own order)
  std::vector<ValueId> values; ///< bound values (the rule's own order)
};

/// A rewrite rule.
class Rule {
 public:
  virtual ~Rule() = default;
  /// Unique name, e.g. "fuse_epilogue", "conv_batchnorm_fold".
  virtual const std::string& name() const = 0;
  /// Every place the rule applies in `g` (consumers = g.consumers()), in a deterministic order.
  virtual std::vector<Match> find(const Graph& g, const std::vector<std::vector<NodeId>>& consumers) const = 0;
  /// `g` rewritten at `m` (a match find() returned for `g`), folded and compacted; nullopt
  /// when the replacement does not fit there after all (e.g. its shapes do not infer).
  virtual std::optional<Graph> apply(const Graph& g, const Match& m) const = 0;
  /// Small graphs that contain the pattern, for verification.
  virtual std::vector<Graph> verification_cases() const = 0;
  /// A canonical rule moves a graph toward one normal form and never makes it slower (folding
  /// reshapes and identities, Gemm to a fused matmul, unit-axis transposes as reshapes, an
  /// elementwise operator moved before a contraction's Reshape): the searches apply the
  /// canonical rules to a fixed point after every rewrite instead of choosing them, so a
  /// projection's Gemm, Reshape, unit-axis Transpose and residual Add are one fuse_epilogue
  /// away from fused, not five rewrites that each gain nothing.
  virtual bool canonical() const { return false; }
  /// A fusion is one that every inference framework does on its own (epilogue, elementwise
  /// chain and GELU fusion, Gemm to a fused matmul, identity and reshape folding, transposes of
  /// unit axes as reshapes): the graph made with these alone is the baseline a search's gain is
  /// measured from, as TASO's and Tensat's were (against TensorRT and TensorFlow XLA).
  virtual bool fusion() const { return false; }
};

/// Why `rule` is wrong (its first verification case where pattern and replacement differ,
/// or where it does not match at all), or nullopt when it holds on every case.
std::optional<std::string> verify_rule(const Rule& rule, int seeds = 3);

/// A data rule parsed from JSON; a malformed one is a UserError naming `what` and the field.
/// Its verification cases are built (shapes inferred, nothing evaluated) and bounded here,
/// so a case that does not fit its pattern's attributes, a dimension below 1, or a case too
/// large to verify (over 2^20 elements a tensor, 2^22 a case, 2^26 multiply-adds, rank 8)
/// is a UserError too, naming the case.
std::unique_ptr<Rule> parse_rule(const Json& j, const std::string& what);

/// The built-in rule families.
std::vector<std::unique_ptr<Rule>> builtin_rules();

/// Verified rules, and the ones rejected with their reasons.
struct RuleSet {
  std::vector<std::unique_ptr<Rule>> rules;
  std::vector<std::pair<std::string, std::string>> rejected;  ///< (rule name, why)
  /// The rules as the searches take them (owned here).
  std::vector<const Rule*> all() const {
    std::vector<const Rule*> out;
    for (const auto& r : rules) out.push_back(r.get());
    return out;
  }
};

/// The rules Tessera ships: the built-in families and configs/rules/*.json (compiled into
/// the binary), plus every rule of the *.json files in `extra_dir` if given (each file holds
/// one rule object or an array of them), each verified. A file that does not parse (see
/// parse_rule), or a rule named like one loaded before, is a UserError; a rule that fails
/// verification goes to `rejected`.
RuleSet load_rules(const std::string& extra_dir = {});
/// verify_rule over `rules`, splitting them into accepted and rejected.
RuleSet verify_rules(std::vector<std::unique_ptr<Rule>> rules);

/// Folds every node whose inputs are all constants (Opaque nodes, results over 2^24
/// elements, and nodes past a budget of about 2^30 multiply-adds or element visits a call
/// excepted) into a constant, and compacts `g`. Returns the number folded.
int fold_constants(Graph& g);

}  // namespace tessera::graph
