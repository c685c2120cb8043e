#include "search/workload_set.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace tessera::search {
namespace {

std::string error_of(const Json& j) {
  try {
    parse_workload_set(j, "set.json");
  } catch (const UserError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(WorkloadSet, BundledDefaultSetLoads) {
  WorkloadSet set = load_workload_set(TESSERA_SOURCE_DIR "/configs/workloads/default.json");
  EXPECT_EQ(set.name, "default");
  ASSERT_GE(set.entries.size(), 15u);
  EXPECT_EQ(set.entries[0].workload.key(), "matmul:m=8192,n=8192,k=8192:f16");
  bool has_conv = false, has_softmax = false;
  for (const WorkloadEntry& e : set.entries) {
    has_conv |= e.workload.kind == OpKind::kConv2d;
    has_softmax |= e.workload.kind == OpKind::kSoftmax;
    EXPECT_GT(e.weight, 0);
  }
  EXPECT_TRUE(has_conv);
  EXPECT_TRUE(has_softmax);
}

TEST(WorkloadSet, AcceptsSpecStringsEntriesAndObjects) {
  WorkloadSet set = parse_workload_set(
      Json::parse(R"({"name": "t", "workloads": [
        "matmul:m=8,n=8,k=8:f16",
        {"spec": "softmax:rows=4,cols=4:f16", "weight": 12, "label": "attn"},
        {"kind": "layernorm", "rows": 4, "cols": 768, "dtype": "f16"}]})"),
      "set.json");
  ASSERT_EQ(set.entries.size(), 3u);
  EXPECT_EQ(set.entries[1].weight, 12);
  EXPECT_EQ(set.entries[1].label, "attn");
  EXPECT_EQ(set.entries[2].workload.key(), "layernorm:rows=4,cols=768:f16");
}

TEST(WorkloadSet, RejectsBadSetsNamingTheEntry) {
  EXPECT_EQ(error_of(Json::parse("[]")), "set.json: expected an object with a \"workloads\" array");
  EXPECT_EQ(error_of(Json::parse(R"({"workloads": []})")), "set.json: \"workloads\" is empty");
  std::string bad_spec = error_of(Json::parse(R"({"workloads": ["matmul:m=8,n=8,k=8:f16", "matmul:m=0,n=8,k=8:f16"]})"));
  EXPECT_EQ(bad_spec.rfind("set.json: workloads[1]: invalid workload spec 'matmul:m=0,n=8,k=8:f16'", 0), 0u) << bad_spec;
  EXPECT_EQ(error_of(Json::parse(R"({"workloads": [{"spec": "softmax:rows=4,cols=4:f16", "weight": 0}]})")),
            "set.json: workloads[0]: \"weight\" must be positive");
  EXPECT_EQ(error_of(Json::parse(R"({"workloads": [{"spec": "softmax:rows=4,cols=4:f16", "wieght": 2}]})")),
            "set.json: workloads[0]: unknown field \"wieght\" beside \"spec\" (valid: spec, weight, label)");
  std::string dup = error_of(Json::parse(R"({"workloads": ["softmax:rows=4,cols=4:f16", "softmax:cols=4,rows=4:f16"]})"));
  EXPECT_EQ(dup, "set.json: workloads[1]: softmax:rows=4,cols=4:f16 is already workloads[0] (give one entry a weight instead)");
  EXPECT_THROW(load_workload_set("/nonexistent/set.json"), UserError);
}

}  // namespace
}  // namespace tessera::search
