// Internal to graph/ (builtin_rules.cc and graph/rules/*.cc, one file per built-in rule
// family): what the built-in families share, and the factory of each.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "graph/rules.h"

namespace tessera::graph::builtin {

/// An epilogue attribute ("bias+relu") as its steps, and back.
std::vector<std::string> split_steps(const std::string& s);
std::string join_steps(const std::vector<std::string>& steps);
/// Whether `v` is one of the graph's outputs.
bool is_output(const Graph& g, ValueId v);
/// The single consumer of `v`, or kNone when it has several, none, or is a graph output.
NodeId sole_consumer(const Graph& g, const std::vector<std::vector<NodeId>>& consumers, ValueId v);
bool is_constant(const Graph& g, ValueId v);
/// Whether `perm` is a permutation of 0 .. rank - 1.
bool is_permutation(const std::vector<int64_t>& perm, size_t rank);
/// A Transpose's permutation (its default reverses the axes).
std::vector<int64_t> transpose_perm(const Graph& g, const Node& t);
/// Whether `t` is a Transpose that swaps its last two axes and keeps the others: a matmul
/// operand it feeds can be read transposed instead (trans_a / trans_b).
bool swaps_last_two_axes(const Graph& g, const Node& t);
/// Uniform values in [lo, hi) of `shape`, from `seed`: the weights of verification cases.
Tensor random_tensor(std::vector<int64_t> shape, uint64_t seed, double lo = -1, double hi = 1);
/// The result of rewriting: folded and compacted.
Graph finish(Graph g);
/// `g` with the nodes `fused` (in order; the last one's output is the result) replaced by one
/// node `op` over `inputs`; nullopt when that node does not infer to the same shape.
std::optional<Graph> replace_by_one(const Graph& g, const std::vector<NodeId>& fused, OpType op,
                                    const std::vector<ValueId>& inputs, const Attrs& attrs, std::string_view name);
/// MatMul and Conv, plain or fused.
bool is_contraction(OpType op);
bool is_matmul(OpType op);

// A contraction as a fused node: its inputs and epilogue steps.
struct FusedForm {
  OpType op;
  std::vector<ValueId> inputs;
  Attrs attrs;
  std::vector<std::string> steps;
};

FusedForm fused_form(const Node& n);

/// The chain step an elementwise node is, if it can join an EltwiseChain.
std::optional<std::string> chain_step(const Node& n);
/// A constant holding `shape`, the second input of a Reshape to it.
ValueId add_shape(Graph& g, const std::vector<int64_t>& shape);
/// n's "axis" attribute as an index into its first input's axes, or -1 when out of range.
int64_t normalised_axis(const Graph& g, const Node& n);

class BuiltinRule : public Rule {
 public:
  explicit BuiltinRule(std::string name, bool canonical = false, bool fusion = false)
      : name_(std::move(name)), canonical_(canonical), fusion_(fusion) {}
  const std::string& name() const override { return name_; }
  bool canonical() const override { return canonical_; }
  bool fusion() const override { return fusion_; }

 private:
  std::string name_;
  bool canonical_, fusion_;
};

// The families (graph/rules/<family>.cc).
std::unique_ptr<Rule> make_fuse_epilogue();
std::unique_ptr<Rule> make_eltwise_chain();
std::unique_ptr<Rule> make_merge_contractions(bool conv);  // merge_conv, else merge_matmul
std::unique_ptr<Rule> make_enlarge_conv();
std::unique_ptr<Rule> make_ungroup_conv();
std::unique_ptr<Rule> make_transpose_compose();
std::unique_ptr<Rule> make_split_activation();
std::unique_ptr<Rule> make_transpose_unit_dims();
std::unique_ptr<Rule> make_fused_matmul_transpose();
std::unique_ptr<Rule> make_reshape_elementwise();
std::unique_ptr<Rule> make_split_split();
std::unique_ptr<Rule> make_split_heads();
std::unique_ptr<Rule> make_gather_heads();
std::unique_ptr<Rule> make_layout_chain();

}  // namespace tessera::graph::builtin
