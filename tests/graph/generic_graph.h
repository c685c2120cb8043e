// A small graph of the operators `graph run` gives generic kernels (shared by the plan's CPU
// test and the GPU run's test): a channel split of a convolution's NHWC output, a concat, a
// constant Pad, an inference BatchNormalization, average and max pools, a transpose feeding a
// reshape, a gather of several indices, GatherND, GatherElements, CumSum, Erf, Where over a comparison, a
// long chain of broadcast adds, and a reduction over a middle axis. And self-attention.
#pragma once

#include <string>
#include <vector>

#include "graph/ir.h"

namespace tessera::graph {

inline Graph generic_operators_graph() {
  Graph g;
  auto filled = [](std::vector<int64_t> shape, float base) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t k = 0; k < v.size(); ++k) v[k] = base + 0.01f * static_cast<float>(k % 17);
    return Tensor::floats(shape, v);
  };
  ValueId x = g.add_input("x", ElemType::kF32, {1, 8, 6, 6});
  ValueId w = g.add_constant("w", filled({16, 8, 3, 3}, -0.05f));
  ValueId y = g.add_node(OpType::kConv, {x, w}, {{"pads", std::vector<int64_t>{1, 1, 1, 1}}})[0];
  auto parts = g.add_node(OpType::kSplit, {y, g.add_constant("s", Tensor::ints({2}, {6, 10}))},
                          {{"axis", int64_t{1}}}, "", 2);
  ValueId cat = g.add_node(OpType::kConcat, {parts[1], parts[0]}, {{"axis", int64_t{1}}})[0];
  ValueId padded =
      g.add_node(OpType::kPad, {cat, g.add_constant("p", Tensor::ints({8}, {0, 0, 1, 0, 0, 0, 0, 1}))})[0];
  std::vector<ValueId> st;
  for (float b : {1.0f, 0.1f, 0.2f, 2.0f})
    st.push_back(g.add_constant("bn" + std::to_string(st.size()), filled({16}, b)));
  ValueId bn = g.add_node(OpType::kBatchNormalization, {padded, st[0], st[1], st[2], st[3]})[0];
  ValueId avg = g.add_node(
      OpType::kAveragePool, {bn},
      {{"kernel_shape", std::vector<int64_t>{3, 3}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}})[0];
  ValueId mx =
      g.add_node(OpType::kMaxPool, {avg},
                 {{"kernel_shape", std::vector<int64_t>{2, 2}}, {"strides", std::vector<int64_t>{2, 2}}})[0];
  ValueId t = g.add_node(OpType::kTranspose, {mx}, {{"perm", std::vector<int64_t>{0, 2, 3, 1}}})[0];
  ValueId r = g.add_node(OpType::kReshape, {t, g.add_constant("shape", Tensor::ints({2}, {9, 16}))})[0];
  ValueId gathered = g.add_node(OpType::kGather, {r, g.add_constant("i", Tensor::ints({3}, {0, -1, 5}))},
                                {{"axis", int64_t{0}}})[0];
  ValueId e = g.add_node(OpType::kErf, {gathered})[0];
  ValueId cond =
      g.add_node(OpType::kGreater, {gathered, g.add_constant("zero", Tensor::floats({}, {0.0f}))})[0];
  ValueId where = g.add_node(OpType::kWhere, {cond, e, gathered})[0];
  ValueId sum = where;
  for (int k = 0; k < 5; ++k)
    sum = g.add_node(OpType::kAdd, {sum, g.add_constant("c" + std::to_string(k), filled({16}, 0.1f * k))})[0];
  g.add_output(sum);
  g.add_output(g.add_node(OpType::kGatherND, {r, g.add_constant("nd", Tensor::ints({3, 1}, {1, 8, -2}))})[0]);
  ValueId picks = g.add_constant("ge", Tensor::ints({2, 16}, std::vector<int64_t>(32, 3)));
  g.add_output(g.add_node(OpType::kGatherElements, {r, picks}, {{"axis", int64_t{0}}})[0]);
  g.add_output(g.add_node(OpType::kCumSum, {r, g.add_constant("ax", Tensor::ints({}, {1}))},
                          {{"reverse", int64_t{1}}})[0]);
  g.add_output(g.add_node(OpType::kReduceMean, {bn},
                          {{"axes", std::vector<int64_t>{2}}, {"keepdims", int64_t{0}}})[0]);
  return g;
}

// Self-attention as exporters write it: one projection of [batch, tokens, 3 * heads * size],
// reshaped and transposed to [3, batch, heads, tokens, size], its query, key and value taken
// by Gathers; softmax(q k^T / sqrt(size)) v, transposed back and merged, then an output
// projection. On a Hopper GPU the heads' matmuls read q, k and v in place.
inline Graph attention_graph(int64_t batch, int64_t tokens, int64_t heads, int64_t size) {
  Graph g;
  const int64_t e = heads * size;
  auto filled = [](std::vector<int64_t> shape, float scale) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (size_t k = 0; k < v.size(); ++k) v[k] = scale * (static_cast<float>((k * 7919) % 61) / 30.0f - 1.0f);
    return Tensor::floats(shape, v);
  };
  auto ints = [](std::vector<int64_t> v) { return Tensor::ints({static_cast<int64_t>(v.size())}, v); };
  ValueId x = g.add_input("x", ElemType::kF32, {batch, tokens, e});
  ValueId qkv = g.add_node(OpType::kMatMul, {x, g.add_constant("w_qkv", filled({e, 3 * e}, 0.05f))})[0];
  ValueId split = g.add_node(OpType::kReshape, {qkv, g.add_constant("heads", ints({batch, tokens, 3, heads, size}))})[0];
  ValueId t = g.add_node(OpType::kTranspose, {split}, {{"perm", std::vector<int64_t>{2, 0, 3, 1, 4}}})[0];
  std::vector<ValueId> part;
  for (int64_t k = 0; k < 3; ++k)
    part.push_back(g.add_node(OpType::kGather, {t, g.add_constant("i" + std::to_string(k), Tensor::ints({}, {k}))},
                              {{"axis", int64_t{0}}})[0]);
  ValueId kt = g.add_node(OpType::kTranspose, {part[1]}, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}})[0];
  ValueId scores = g.add_node(OpType::kMatMul, {part[0], kt})[0];
  ValueId scaled = g.add_node(OpType::kMul, {scores, g.add_constant("scale", Tensor::floats({}, {0.125f}))})[0];
  ValueId p = g.add_node(OpType::kSoftmax, {scaled}, {{"axis", int64_t{-1}}})[0];
  ValueId ctx = g.add_node(OpType::kMatMul, {p, part[2]})[0];
  ValueId back = g.add_node(OpType::kTranspose, {ctx}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}})[0];
  ValueId merged = g.add_node(OpType::kReshape, {back, g.add_constant("merge", ints({batch, tokens, e}))})[0];
  g.add_output(g.add_node(OpType::kMatMul, {merged, g.add_constant("w_out", filled({e, e}, 0.05f))})[0]);
  return g;
}

}  // namespace tessera::graph
