// The tuning report's page and its SVG charts, without a browser (tests/scripts/report.sh
// renders the page of the H100 records in headless Chromium).
#include "search/report.h"

#include <gtest/gtest.h>

#include <regex>

#include "search/svg.h"
#include "tests/db/test_util.h"

namespace tessera::search {
namespace {

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(Report, PageHasEverySectionAndEscapesText) {
  db::testing::TempDb tmp("report");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  std::vector<Record> records;
  // A tuning history: 120, 80 (best so far), a failure, 90; and a second workload.
  records.push_back(db::testing::gemm_record("matmul:m=4096,n=4096,k=4096:f16", 64, 120, 1));
  records.push_back(db::testing::gemm_record("matmul:m=4096,n=4096,k=4096:f16", 128, 80, 2));
  records.push_back(db::testing::gemm_record("matmul:m=4096,n=4096,k=4096:f16", 256, 0, 3, Status::kIncorrect));
  records.push_back(db::testing::gemm_record("matmul:m=4096,n=4096,k=4096:f16", 32, 90, 4));
  records.push_back(db::testing::gemm_record("softmax:rows=1024,cols=4096:f16", 64, 15, 5));
  database.commit(records);
  db::StoredGraph g;
  g.model_key = "bert<&>.onnx";
  g.target = db::testing::test_target();
  g.original_cost_us = 200;
  g.optimized_cost_us = 150;
  g.rewrites_json = R"([{"rule":"fuse"},{"rule":"merge"}])";
  g.tool_version = "test";
  g.created_s = 1795000000;
  database.save_graph(g);

  ReportOptions o;
  o.source = "t<1>.db";
  o.tool_version = "test";
  o.generated_s = 1795000000;
  Report r = tuning_report(database, db::testing::test_target(), o);
  EXPECT_EQ(r.workloads, 2);
  EXPECT_EQ(r.records, 5);
  EXPECT_EQ(r.charts, 4);  // roofline, two tuning curves, predicted against measured
  EXPECT_EQ(count(r.html, "<svg "), 4u);
  EXPECT_EQ(count(r.html, "class=\"chart\""), 4u);
  for (const char* id : {"workloads", "roofline", "curves", "model", "failures", "graphs"})
    EXPECT_NE(r.html.find(std::string("<h2 id=\"") + id + "\">"), std::string::npos) << id;
  // Text from the database is escaped: no raw '<' from it reaches the page.
  EXPECT_NE(r.html.find("t&lt;1&gt;.db"), std::string::npos);
  EXPECT_NE(r.html.find("bert&lt;&amp;&gt;.onnx"), std::string::npos);
  EXPECT_EQ(r.html.find("bert<&>"), std::string::npos);
  // The best, the vendor and their ratio (vendor 100 us over best 80 us).
  EXPECT_NE(r.html.find("<td>80 us</td><td>100 us cuBLASLt</td><td class=\"faster\">1.25x</td>"), std::string::npos);
  // The failure, by status and family, with its error.
  EXPECT_NE(r.html.find("1 of 5 records failed (did not build, run or match the reference)."), std::string::npos);
  EXPECT_NE(r.html.find("<td>incorrect</td><td>1</td>"), std::string::npos);
  EXPECT_NE(r.html.find("gemm_tc 1</td><td class=\"text\">synthetic failure"), std::string::npos);
  // The graph: 25 % cheaper by two rewrites.
  EXPECT_NE(r.html.find("<td>200 us</td><td>150 us</td><td>25 %</td><td>2</td>"), std::string::npos);
  // Every prediction is the measurement x 1.1: the order is right in every pair.
  EXPECT_NE(r.html.find("Pairwise accuracy <b>1</b>"), std::string::npos);
  // The tuning curve's best so far is a staircase ending at the last measurement.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.html, m, std::regex("<polyline class=\"best\" points=\"([^\"]+)\"")));
  // (1, 120), then down to 80 at 2: (2, 120) (2, 80), and on to the 4th: (4, 80).
  EXPECT_EQ(count(m[1].str(), ","), 4u);
  // No network: nothing is fetched.
  EXPECT_EQ(r.html.find("http://"), r.html.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(r.html.find("https://"), std::string::npos);
  EXPECT_EQ(r.html.find(" src="), std::string::npos);
}

// A model-only job's records (unmeasured, with predictions): no curve, but the roofline places
// each workload's predicted pick, marked as predicted, and no failure is counted.
TEST(Report, ModelOnlyRecordsArePlacedAsPredictions) {
  db::testing::TempDb tmp("report_model_only");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Target t = db::testing::test_target();
  t.driver_version = "none";
  std::vector<Record> records;
  for (int i = 0; i < 3; ++i) {
    Record r = db::testing::gemm_record("matmul:m=4096,n=4096,k=4096:f16", 64 << i, 0, i + 1, Status::kUnmeasured, t);
    r.measurement.error.clear();
    r.predicted_us = 200.0 + i;
    records.push_back(r);
  }
  database.commit(records);
  Report r = tuning_report(database, t, {});
  EXPECT_EQ(r.charts, 1);  // the roofline
  EXPECT_NE(r.html.find("model only: no GPU measured them"), std::string::npos);
  EXPECT_NE(r.html.find("the model&#39;s pick, predicted (not measured)"), std::string::npos);
  EXPECT_NE(r.html.find("<title>matmul:m=4096,n=4096,k=4096:f16: the model&#39;s pick, predicted 200 us</title>"),
            std::string::npos);
  EXPECT_NE(r.html.find("0 of 3 records failed (did not build, run or match the reference); 3 are the model's "
                        "predictions, not measured."),
            std::string::npos);
}

TEST(Report, TargetWithoutRecordsSaysSo) {
  db::testing::TempDb tmp("report_empty");
  db::TuningDatabase database = db::TuningDatabase::open(tmp.path());
  Report r = tuning_report(database, db::testing::test_target(), {});
  EXPECT_EQ(r.charts, 0);
  EXPECT_NE(r.html.find("No records of this target."), std::string::npos);
  EXPECT_NE(r.html.find("</html>"), std::string::npos);
}

TEST(Svg, AxesTicksAndMarks) {
  EXPECT_EQ(svg::escape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
  EXPECT_EQ(svg::number(1234.5678, 4), "1235");
  EXPECT_EQ(svg::number(0.012345), "0.0123");
  svg::Axis one = svg::fit({5.0}, true, "t");  // a single value gets a range around it
  EXPECT_LT(one.lo, 5.0);
  EXPECT_GT(one.hi, 5.0);
  svg::Axis none = svg::fit({}, false, "t");
  EXPECT_LT(none.lo, none.hi);
  svg::Plot p("p", "title <x>", 300, 200, svg::fit({1, 1000}, true, "x"), svg::fit({0, 10}, false, "y"));
  p.point(10, 5, "best", "a point");
  p.point(1e6, 5, "best", "outside the axes");  // not drawn
  p.point(-1, 5, "best");                        // not on a log axis
  p.hline(2, "vendor", "vendor 2 us");
  const std::string s = p.str();
  EXPECT_EQ(count(s, "<circle"), 1u);
  EXPECT_NE(s.find("<title>a point</title>"), std::string::npos);
  EXPECT_NE(s.find("title &lt;x&gt;"), std::string::npos);
  for (const char* t : {">1<", ">10<", ">100<", ">1000<"}) EXPECT_NE(s.find(t), std::string::npos) << t;  // decades
  EXPECT_NE(s.find(">vendor 2 us</text>"), std::string::npos);
}

}  // namespace
}  // namespace tessera::search
